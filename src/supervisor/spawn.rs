//! Spawning one run of a service: port preflight, the `Command` (own process group,
//! no shell, merged env, cwd), the two pump threads and the waiter thread.
//!
//! Called on the state thread (`launch` returns as soon as the child exists). The
//! waiter thread (`wait:<svc>`) owns the child's pid until it reports `Exited`.

use super::children;
use super::port_owner::Holder;
use super::pump::{Pump, IN_FLIGHT, PIPE_SIZES};
use super::stop::{signal_group, GroupSignal};
use crate::bus::{BusTx, ExitInfo, Msg, Producers, RunId, Stream, SvcId};
use crate::config::ServiceCfg;
use crate::credit::Credit;
use crossbeam_channel::Receiver;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// After the leader exits, how long its output may take to drain before `Exited`
/// is reported anyway (a grandchild that left the group can hold the pipe open).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// Connect timeout of the port preflight (loopback answers at once either way).
const PREFLIGHT_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq)]
pub enum SpawnError {
    /// The preflight found `port` taken; `holder` when the server can see who.
    PortInUse {
        port: u16,
        holder: Option<Holder>,
    },
    Spawn {
        program: String,
        error: String,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::PortInUse { port, holder: Some(h) } => {
                write!(f, "port {port} is in use by {h}")
            }
            SpawnError::PortInUse { port, holder: None } => {
                write!(f, "port {port} is already in use")
            }
            SpawnError::Spawn { program, error } => {
                write!(f, "cannot start \"{program}\": {error}")
            }
        }
    }
}

/// Resolves a relative program path containing `/` against the service's cwd, so
/// `./bin/api` means the same whatever directory the server was started from.
fn program_path(program: &str, cwd: &Path) -> PathBuf {
    let p = Path::new(program);
    if p.is_relative() && program.contains('/') {
        cwd.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Builds the command for `argv` with the service's env and cwd, in its own group.
pub fn command(argv: &[String], cfg: &ServiceCfg) -> Command {
    let mut cmd = Command::new(program_path(&argv[0], &cfg.cwd));
    cmd.args(&argv[1..])
        .current_dir(&cfg.cwd)
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

pub fn port_in_use(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, PREFLIGHT_TIMEOUT).is_ok()
}

/// Starts one run of a service. Returns its pid; the waiter reports its end.
/// A port in use is reported without its holder (`port_owner::report` finds it).
pub fn launch(
    cfg: &ServiceCfg,
    svc: SvcId,
    run: RunId,
    bus: &Producers,
) -> Result<u32, SpawnError> {
    if cfg.port > 0 && port_in_use(cfg.port) {
        return Err(SpawnError::PortInUse { port: cfg.port, holder: None });
    }
    let pid = spawn_piped(&cfg.cmd, cfg, svc, run, bus, &cfg.name)?;
    Ok(pid)
}

/// Spawns `argv`, starts its pumps and its waiter. Used for `cmd` and `stopCmd`.
pub fn spawn_piped(
    argv: &[String],
    cfg: &ServiceCfg,
    svc: SvcId,
    run: RunId,
    bus: &Producers,
    label: &str,
) -> Result<u32, SpawnError> {
    let mut child = children::spawn(&mut command(argv, cfg), label).map_err(|e| {
        SpawnError::Spawn { program: argv[0].clone(), error: describe_io(&e, &cfg.cwd) }
    })?;
    let pid = child.id();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    // One credit for both pipes of the run: together they hold at most IN_FLIGHT bytes.
    let credit = Credit::new(IN_FLIGHT);
    let pipes: [(Option<std::os::fd::OwnedFd>, Stream); 2] = [
        (child.stdout.take().map(Into::into), Stream::Stdout),
        (child.stderr.take().map(Into::into), Stream::Stderr),
    ];
    for (fd, stream) in pipes {
        let Some(fd) = fd else { continue };
        let (pipe, nap) = grow_pipe(fd);
        let pump = Pump { pipe, svc, stream, bus: bus.sender(), credit: credit.clone(), nap };
        let done = done_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("pump:{label}:{}", stream.as_str()))
            .spawn(move || {
                pump.run();
                drop(done);
            });
        if let Err(e) = spawned {
            // No thread, no reader: the child would block on a full pipe. Stop it
            // now; with no waiter to reap it, the reaper will.
            signal_group(pid, GroupSignal::Kill);
            children::disown(pid);
            return Err(SpawnError::Spawn { program: argv[0].clone(), error: e.to_string() });
        }
    }
    drop(done_tx);
    // The std handle is dropped without waiting: the waiter thread owns the pid now.
    drop(child);
    let bus = bus.sender();
    let waiter = std::thread::Builder::new()
        .name(format!("wait:{label}"))
        .spawn(move || run_waiter(pid, svc, run, bus, done_rx));
    if let Err(e) = waiter {
        signal_group(pid, GroupSignal::Kill);
        children::disown(pid);
        return Err(SpawnError::Spawn { program: argv[0].clone(), error: e.to_string() });
    }
    Ok(pid)
}

/// The pipe as a file to read, and whether it grew big enough for its pump to nap.
fn grow_pipe(fd: std::os::fd::OwnedFd) -> (std::fs::File, bool) {
    // A bigger pipe lets a bursty child write without waiting for the pump. If
    // the kernel refuses every size (past the user's pipe quota), the default
    // pipe still works, but too small to hold a nap's worth of a flood.
    let grown = PIPE_SIZES
        .iter()
        .any(|&size| nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size)).is_ok());
    (std::fs::File::from(fd), grown)
}

fn describe_io(e: &std::io::Error, cwd: &Path) -> String {
    if !cwd.is_dir() {
        return format!("working directory {} does not exist", cwd.display());
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => "program not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Waiter thread: waits for the leader without reaping it (so its pid, which is
/// also the group id, cannot be reused), kills what is left of its group, lets the
/// pumps drain, reports `Exited`, then reaps.
fn run_waiter(pid: u32, svc: SvcId, run: RunId, bus: BusTx, pumps_done: Receiver<()>) {
    let nix_pid = Pid::from_raw(pid as i32);
    let exit = loop {
        match waitid(Id::Pid(nix_pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::Exited(_, code)) => break ExitInfo::Code(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => break ExitInfo::Signal(sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break ExitInfo::Code(-1),
        }
    };
    // Grandchildren left in the group would hold the pipes and the ports: the
    // service is over, so is its group (spec/config.md, "Processes").
    signal_group(pid, GroupSignal::Kill);
    // Returns when both pumps dropped their sender (EOF) or the grace passed.
    let _ = pumps_done.recv_timeout(DRAIN_GRACE);
    let sent = bus.send(Msg::Exited { svc, run, exit });
    // Reap the zombie; nothing else waits for this pid.
    children::reap(pid);
    drop(sent);
}
