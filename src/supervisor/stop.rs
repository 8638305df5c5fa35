//! Signalling process groups and running `stopCmd`.
//!
//! `signal_group` is called from the state thread (a non-blocking syscall) and
//! from waiter threads. `run_stop_cmd` (state thread) spawns the stop command
//! with the service's env and cwd; its output joins the service's log under the
//! current run. It sends nothing itself: a failure is returned, and the state
//! thread queues it locally (it must never send on the bus it drains).

use super::spawn::{spawn_piped, SpawnError};
use crate::bus::{Producers, RunId, SvcId};
use crate::config::ServiceCfg;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GroupSignal {
    Term,
    Kill,
}

/// Sends a signal to the process group led by `pid`. A group that is already
/// gone (ESRCH) is not an error: that is the outcome we wanted.
pub fn signal_group(pid: u32, sig: GroupSignal) {
    let sig = match sig {
        GroupSignal::Term => Signal::SIGTERM,
        GroupSignal::Kill => Signal::SIGKILL,
    };
    if pid > 1 {
        // ESRCH or EPERM: nothing of ours left to signal.
        let _ = killpg(Pid::from_raw(pid as i32), sig);
    }
}

/// Spawns the service's `stopCmd` (caller checked it is set) as its own run
/// `stop_run`: its lines join the service's log, its `Exited` tells the state
/// thread how it ended. On failure the state thread falls back to SIGTERM.
pub fn run_stop_cmd(
    cfg: &ServiceCfg,
    svc: SvcId,
    stop_run: RunId,
    bus: &Producers,
) -> Result<(), SpawnError> {
    let Some(argv) = &cfg.stop_cmd else { return Ok(()) };
    let label = format!("{}:stop", cfg.name);
    spawn_piped(argv, cfg, svc, stop_run, bus, &label).map(drop)
}
