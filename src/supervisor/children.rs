//! Every child the server starts, and the reaper thread (`reaper`) for the
//! ones it did not start.
//!
//! While it runs the server is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a
//! service's descendant whose parent dies (a double-forked daemon, a `setsid`
//! grandchild) becomes the server's child instead of init's, so it stays in
//! reach until the server exits. Those orphans must be reaped, but without
//! stealing an exit status a waiter thread is about to read (waiters look with
//! `WNOWAIT`, then reap). So every process the server spawns goes through
//! `spawn`, which records its pid as owned under one lock, and its waiter
//! reaps it through `reap` under the same lock; the reaper thread sleeps in
//! `waitid(P_ALL, WNOWAIT)` and reaps only zombies that are not owned. The
//! lock is also held across `fork`/`exec`, so a child that dies at once is
//! owned before the reaper can look at it (std reaps a child whose `exec`
//! failed itself, and must find it there). Each spawn and reap is also told to
//! the watchdog (`watchdog::started`/`ended`).

use crate::procfs;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Owned {
    pids: BTreeSet<u32>,
    /// Bumped on every spawn and reap, so a reaper with no child to wait for
    /// knows when there may be one.
    generation: u64,
}

static OWNED: Mutex<Owned> = Mutex::new(Owned { pids: BTreeSet::new(), generation: 0 });
static CHANGED: Condvar = Condvar::new();
/// The watchdog's pid, so the reaper can say when it is gone.
static WATCHDOG: AtomicU32 = AtomicU32::new(0);

fn owned() -> MutexGuard<'static, Owned> {
    // Every critical section leaves the set consistent; a panic in one cannot
    // leave it half changed.
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `cmd` (which puts the child in a group of its own) and owns its pid
/// until `reap`. `label` names the group in the groups record.
pub fn spawn(cmd: &mut Command, label: &str) -> std::io::Result<Child> {
    let mut g = owned();
    let child = cmd.spawn()?;
    let pid = child.id();
    g.pids.insert(pid);
    g.generation += 1;
    crate::watchdog::started(pid, label);
    drop(g);
    CHANGED.notify_all();
    Ok(child)
}

/// Reaps owned child `pid` (a zombie already, or about to be) and forgets it.
pub fn reap(pid: u32) {
    let mut g = owned();
    // Only its waiter reaps an owned pid, and the zombie is there: no wait.
    let _ = waitpid(Pid::from_raw(pid as i32), None);
    g.pids.remove(&pid);
    g.generation += 1;
    crate::watchdog::ended(pid);
    drop(g);
    CHANGED.notify_all();
}

/// Gives up owned child `pid` (no waiter will reap it): the reaper reaps it.
pub fn disown(pid: u32) {
    let mut g = owned();
    g.pids.remove(&pid);
    g.generation += 1;
    crate::watchdog::ended(pid);
    drop(g);
    CHANGED.notify_all();
}

/// Tells the reaper which child is the watchdog: if it dies, the server says
/// so. 0: none (at a clean exit, once the watchdog was told goodbye).
pub fn watch_over(watchdog: u32) {
    WATCHDOG.store(watchdog, Ordering::Relaxed);
}

/// Makes the server a child subreaper and starts the reaper thread.
pub fn start_reaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    std::thread::Builder::new().name("reaper".into()).spawn(run_reaper)?;
    Ok(())
}

/// Reaper thread: sleeps until some child is a zombie; reaps it when it is not
/// owned, else waits for its waiter to reap it before looking again.
fn run_reaper() {
    loop {
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                let pid = pid.as_raw() as u32;
                let mut g = owned();
                while g.pids.contains(&pid) {
                    g = CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                // Not (or no longer) owned: an orphan, or the watchdog. Under
                // the lock, so no spawn can make the pid owned meanwhile.
                let _ = waitpid(Some(Pid::from_raw(pid as i32)), Some(WaitPidFlag::WNOHANG));
                if pid == WATCHDOG.load(Ordering::Relaxed) {
                    eprintln!(
                        "[flowlayer] watchdog: the watchdog process (pid {pid}) is gone: if the \
                         server is killed, its services will be left running"
                    );
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => {
                // No child at all: sleep until one is spawned.
                let mut g = owned();
                let seen = g.generation;
                while g.generation == seen {
                    g = CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
                }
            }
            Err(_) => return,
        }
    }
}

/// How long `kill_orphans` waits for the orphans it killed to die before it
/// looks for their own children, which become the server's.
const ORPHAN_DEATH: Duration = Duration::from_millis(500);
/// Rounds of `kill_orphans` at most (one per generation of descendants).
const ORPHAN_ROUNDS: usize = 10;

/// At exit, once every service is down: SIGKILLs the server's children that
/// it did not spawn (descendants of services whose parents died, reparented
/// here), except `spare` (the watchdog), round after round while their own
/// children become ours. Returns how many it killed.
pub fn kill_orphans(spare: Option<u32>) -> usize {
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..ORPHAN_ROUNDS {
        let owned_now = owned().pids.clone();
        let orphans: Vec<u32> = procfs::pids()
            .into_iter()
            .filter(|&p| Some(p) != spare && !owned_now.contains(&p))
            .filter(|&p| procfs::stat(p).is_some_and(|s| s.ppid == me && !s.is_zombie()))
            .collect();
        if orphans.is_empty() {
            break;
        }
        for &p in &orphans {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        killed += orphans.len();
        let deadline = Instant::now() + ORPHAN_DEATH;
        while orphans.iter().any(|&p| procfs::live_start(p).is_some()) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    killed
}
