//! Crash safety: when the server dies, however it dies, its services die too.
//!
//! The watchdog is this same binary run as a separate process (`process.rs`),
//! started by the server at boot before any service. It waits on a pipe from
//! the server; when the pipe closes it kills every process of the run
//! (`sweep.rs`) and exits. The server's `watchdog` thread (`feed.rs`) keeps
//! the record of the run's process groups that it then reads.
//! Every service inherits `FLOWLAYER_INSTANCE=<instance id>`, which is how
//! processes that left their group (`setsid`, double forks) are still found.

mod feed;
mod process;
pub mod sweep;

pub use feed::{ended, finish, spawn_feed, started, GroupsFile};

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

/// The hidden first argument that turns this binary into a watchdog.
pub const ARG: &str = "--internal-watchdog";
/// The environment variable every service inherits: the run's instance id.
pub const MARKER_VAR: &str = "FLOWLAYER_INSTANCE";
/// Variables the server sets for its services (see `runtime::service_env`),
/// which the watchdog must not carry: a server run as a service of another
/// server has its own watchdog, which must outlive the outer one's sweep.
pub const SERVICE_VARS: [&str; 3] = [MARKER_VAR, "FLOWLAYER_CONFIG", "FLOWLAYER_SERVICE"];

/// `main` calls this first: in watchdog mode it runs the watchdog to its end.
pub fn run_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(ARG.as_ref()) {
        return None;
    }
    let instance = args.next()?.into_string().ok()?;
    let groups = args.next().map(PathBuf::from);
    Some(process::run(&instance, groups.as_deref()))
}

/// Starts the watchdog for run `instance` (with `groups`, the path of its
/// record of running groups): this binary, through `/proc/self/exe` so a
/// rebuilt binary on disk cannot be a different program; in its own process
/// group; stdin the pipe, stderr the server's.
pub fn spawn(instance: &str, groups: Option<&Path>) -> std::io::Result<Child> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("flowlayer-watchdog")
        .args([ARG, instance])
        .args(groups)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .current_dir("/")
        .process_group(0);
    for var in SERVICE_VARS {
        cmd.env_remove(var);
    }
    cmd.spawn()
}
