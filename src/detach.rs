//! `--detach` / `-d` (stacks.md section 2): validate, bind, and only then go
//! to the background.
//!
//! Runs on the main thread, before and during boot. There is no `fork` (the
//! workspace forbids `unsafe`): the process the user started, the
//! foreground, runs this same binary again with the same arguments and
//! `CHILD_VAR` set, and relays what it prints. That second process is the
//! server. It leaves the terminal's session first (`setsid`: Ctrl-C and a
//! closed terminal no longer reach it), boots as usual, and once its session
//! API listens and the stack is recorded it moves its stdout and stderr to
//! its log file and says so in `MARKER`, its last line on the pipe. The
//! foreground then exits 0. A server that stops before that (bad config,
//! address in use, stack already running) has had its error relayed, and
//! the foreground exits with its code.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// Set in the environment of the background server by its foreground.
const CHILD_VAR: &str = "FLOWLAYER_DETACHED";
/// The background server's last line to the foreground.
pub const MARKER: &str = "[flowlayer] boot: running in the background";
/// How long the foreground relays the stderr of a server that stopped
/// before detaching, after its stdout ended.
const STDERR_GRACE: Duration = Duration::from_secs(1);

/// Whether this process is the server a `--detach` foreground started. The
/// variable is removed, so services do not inherit it. Call first thing in
/// `main`, while the process has one thread.
pub fn is_background() -> bool {
    let set = std::env::var_os(CHILD_VAR).is_some();
    if set {
        std::env::remove_var(CHILD_VAR);
    }
    set
}

/// The background server leaves the terminal's session and process group.
pub fn leave_terminal() {
    // Fails only for a process group leader, which a child that std spawned
    // without `process_group` is not; either way the server goes on.
    let _ = nix::unistd::setsid();
}

/// The foreground: runs the server in the background and relays its output
/// until it has detached (exit 0) or stopped (its exit code).
pub fn run_foreground() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: --detach: cannot find this program to run it again: {e}");
            return ExitCode::from(1);
        }
    };
    let spawned = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_VAR, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: --detach: cannot start the server: {e}");
            return ExitCode::from(1);
        }
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    if let Some(mut err) = child.stderr.take() {
        // The server's stderr, as it comes; the thread ends with the pipe
        // (or with this process, when the server detached).
        let _ = std::thread::Builder::new().name("relay-stderr".into()).spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                let mut e = std::io::stderr().lock();
                if e.write_all(&buf[..n]).and_then(|()| e.flush()).is_err() {
                    break;
                }
            }
            let _ = done_tx.send(());
        });
    }
    if let Some(out) = child.stdout.take() {
        let mut stdout = std::io::stdout().lock();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // A closed stdout does not stop the relay: the server must go on.
            let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
            if line.starts_with(MARKER) {
                return ExitCode::SUCCESS;
            }
        }
    }
    let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(1);
    // The server's last words on stderr come before the exit code. Its
    // watchdog may hold the pipe open longer: wait a moment, not for it.
    let _ = done_rx.recv_timeout(STDERR_GRACE);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The background server, once it listens and is recorded: says where its
/// output goes from now on (the foreground's cue to exit), and sends it
/// there. `name` and the pid are in the line for the user.
pub fn settle(name: &str, log: &Path) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        // `logs.dir` is created by the writer, later in boot.
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(log)?;
    let pid = std::process::id();
    println!("{MARKER}: stack \"{name}\", pid {pid}, log {}", log.display());
    std::io::stdout().flush()?;
    nix::unistd::dup2_stdout(&file)?;
    nix::unistd::dup2_stderr(&file)?;
    println!("[flowlayer] boot: stack \"{name}\" running in the background, pid {pid}");
    Ok(())
}
