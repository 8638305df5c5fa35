//! `flowlayer up [CONFIG] [--wait]` and `flowlayer down`: start a stack in
//! the background, stop one gracefully (spec/cli.md).
//!
//! `up` runs `flowlayer-server --detach` and relays what it prints; a stack
//! that already runs is left alone (exit 0), also when two `up` race: the
//! server refuses a second run of one config, and the loser finds the
//! winner's record. `down` sends SIGTERM to the recorded server, the same
//! clean shutdown as Ctrl-C, after checking that the pid still belongs to
//! that server (pid, start time and boot, `flowlayer_runtime::record`), and
//! waits until the server is gone.

use super::wait::{until_settled, WAIT_DEFAULT};
use super::Session;
use crate::args::Args;
use crate::error::CliError;
use crate::out::Out;
use crate::select::{nearest, pick, Pick};
use crate::stack::{candidates, cwd, Stack};
use flowlayer_runtime::find::{config_in, server_binary, CONFIG_NAMES};
use flowlayer_runtime::record::Record;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `down --timeout` when none is given.
const DOWN_DEFAULT: Duration = Duration::from_secs(60);
/// How often `down` looks whether the server has exited.
const DOWN_POLL: Duration = Duration::from_millis(10);

/// The config in the current directory or the nearest parent that has one.
fn config_here() -> Option<PathBuf> {
    cwd().ancestors().find_map(config_in)
}

/// The running server of `config` (canonical), if any.
fn running_of(config: &Path) -> Option<Record> {
    flowlayer_runtime::running().into_iter().find(|r| r.config == config)
}

/// Where a stack runs, for a message: its address, else its socket.
fn reach(r: &Record) -> String {
    match (&r.addr, &r.socket) {
        (Some(a), _) => a.clone(),
        (None, Some(s)) => s.display().to_string(),
        (None, None) => "no session API".into(),
    }
}

pub fn up(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let given = args.names.first().map(PathBuf::from);
    let config = match &given {
        Some(p) if p.is_dir() => config_in(p),
        Some(p) => Some(p.clone()),
        None => config_here(),
    };
    let Some(config) = config else {
        let here = given.unwrap_or_else(cwd);
        return Err(CliError::Local {
            what: "up".into(),
            error: format!(
                "no config found in {} or its parents (looked for {})",
                here.display(),
                CONFIG_NAMES.join(", ")
            ),
        });
    };
    let canonical = std::fs::canonicalize(&config).map_err(|e| CliError::Local {
        what: format!("config {}", config.display()),
        error: e.to_string(),
    })?;
    let record = match running_of(&canonical) {
        Some(r) => {
            out.line(&format!(
                "stack \"{}\" is already running (pid {}, {})",
                r.name,
                r.pid,
                reach(&r)
            ))?;
            r
        }
        None => start(&canonical, out)?,
    };
    if !args.wait {
        return Ok(());
    }
    out.flush()?;
    let stack = Stack::of(record)?;
    let conn = stack.connect()?;
    let mut s = Session { stack, conn };
    let names = s.names();
    let (_, outcome) = until_settled(&mut s, &names, args.timeout.unwrap_or(WAIT_DEFAULT));
    s.close();
    outcome?;
    out.line(&format!("stack ready: {}", names.join(", ")))
}

/// Runs `flowlayer-server --detach <config>`; its record once it detached.
fn start(config: &Path, out: &mut Out) -> Result<Record, CliError> {
    let server = server_binary().ok_or_else(|| CliError::Local {
        what: "up".into(),
        error: "flowlayer-server is neither next to flowlayer nor on the PATH".into(),
    })?;
    let mut child = Command::new(&server)
        .arg(config)
        .arg("--detach")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Local {
            what: format!("cannot run {}", server.display()),
            error: e.to_string(),
        })?;
    // Both pipes are the foreground's alone (the server's own output goes to
    // it through pipes of its own): they end when it exits.
    let mut err_pipe = child.stderr.take();
    let errs = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = err_pipe.as_mut() {
            // What could be read is what there is to show.
            let _ = e.read_to_string(&mut text);
        }
        text
    });
    let mut text = String::new();
    if let Some(mut o) = child.stdout.take() {
        // As above.
        let _ = o.read_to_string(&mut text);
    }
    let status = child.wait().map_err(|e| CliError::Local {
        what: "waiting for flowlayer-server".into(),
        error: e.to_string(),
    })?;
    let err_text = errs.join().unwrap_or_default();
    let code = status.code().unwrap_or(1);
    if code != 0 {
        // Lost a race with another `up` of this config: that one runs it.
        if let Some(r) = running_of(config) {
            out.line(&format!(
                "stack \"{}\" is already running (pid {}, {})",
                r.name,
                r.pid,
                reach(&r)
            ))?;
            return Ok(r);
        }
        out.line(text.trim_end())?;
        out.flush()?;
        eprint!("{err_text}");
        return Err(CliError::ServerExit { code });
    }
    out.line(text.trim_end())?;
    eprint!("{err_text}");
    running_of(config).ok_or_else(|| CliError::Local {
        what: "up".into(),
        error: format!("the server of {} detached but is not listed as running", config.display()),
    })
}

pub fn down(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let records = flowlayer_runtime::running();
    let cands = candidates(&records);
    let here = cwd();
    let ambiguous = |why, hits: Vec<usize>| CliError::Ambiguous {
        why,
        candidates: hits.iter().map(|&i| cands[i].label()).collect(),
    };
    // `down` is idempotent: a stack that is named, or whose config is here,
    // and does not run is down already.
    let picked = if let Some(name) = &args.stack {
        match pick(&cands, Some(name), &here) {
            Pick::One(i) => i,
            Pick::None(_) => return out.line(&format!("stack \"{name}\" is not running")),
            Pick::Many(why, hits) => return Err(ambiguous(why, hits)),
        }
    } else if let Some(p) = nearest(&cands, &here) {
        match p {
            Pick::One(i) => i,
            Pick::None(why) => return Err(CliError::NoStack { why }),
            Pick::Many(why, hits) => return Err(ambiguous(why, hits)),
        }
    } else if let Some(c) = config_here() {
        return out.line(&format!("the stack of {} is not running", c.display()));
    } else {
        match pick(&cands, None, &here) {
            Pick::One(i) => i,
            Pick::None(why) => return Err(CliError::NoStack { why }),
            Pick::Many(why, hits) => return Err(ambiguous(why, hits)),
        }
    };
    let record = &records[picked];
    let pid = nix::unistd::Pid::from_raw(record.pid as i32);
    // `running()` just checked pid, start time and boot: the pid is this server's.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).map_err(|e| {
        CliError::Local {
            what: format!("stopping stack \"{}\" (pid {})", record.name, record.pid),
            error: e.to_string(),
        }
    })?;
    let timeout = args.timeout.unwrap_or(DOWN_DEFAULT);
    let deadline = Instant::now() + timeout;
    while record.is_live() {
        if Instant::now() >= deadline {
            let pending =
                vec![format!("stack \"{}\" (pid {}) is still stopping", record.name, record.pid)];
            return Err(CliError::TimedOut { after: timeout, pending });
        }
        std::thread::sleep(DOWN_POLL);
    }
    out.line(&format!("stack \"{}\" stopped", record.name))
}
