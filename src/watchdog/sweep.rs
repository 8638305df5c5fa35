//! Finding and killing every process of one run of a stack: used by the
//! watchdog process when its server is gone, and at boot for what a killed
//! run left behind.
//!
//! A process is the run's when all of these hold: it is owned by the same
//! user; it started no earlier than the run began (so no process older than
//! the run, whatever its pid, ever matches); and either the environment it
//! was started with holds the run's marker (`FLOWLAYER_INSTANCE=<instance
//! id>`, which every service inherits, also after `setsid` or a double fork),
//! or it is in one of the run's process groups whose leader is still there
//! with the recorded start time. A group id is the leader's pid, and a pid is
//! not reused while its process exists (zombie included), so only then is the
//! group the one recorded: once the leader is gone its number may name
//! another program's group, started later. No thread of its own.

use crate::procfs::{self, Stat};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};

/// Passes over `/proc` at most: each pass catches the children that the
/// previous pass's victims forked before they died.
const MAX_PASSES: usize = 20;
/// Length of the command line kept for messages.
const CMD_CHARS: usize = 60;

/// What identifies one run's processes.
pub struct Run {
    pub uid: u32,
    /// Start time (clock ticks after boot) of the run's first process.
    pub since: u64,
    /// `FLOWLAYER_INSTANCE=<id>`.
    pub marker: Vec<u8>,
    /// Process group id (the leader's pid) -> the leader's start time.
    pub groups: BTreeMap<u32, u64>,
    /// A pid never to touch (the sweeper itself).
    pub spare: u32,
}

/// A process the sweep killed.
#[derive(Debug, Clone, PartialEq)]
pub struct Victim {
    pub pid: u32,
    pub cmd: String,
}

impl Run {
    /// The recorded groups whose leader is still the recorded process (alive
    /// or a zombie). Taken once, before a sweep kills any leader: a killed
    /// leader may be reaped before the members of its group are looked at.
    pub fn live_groups(&self) -> BTreeMap<u32, u64> {
        let same = |(&pgid, &start): (&u32, &u64)| {
            procfs::stat(pgid).is_some_and(|l| l.start == start).then_some((pgid, start))
        };
        self.groups.iter().filter_map(same).collect()
    }

    /// Whether `pid` (with `stat`) belongs to the run, `groups` being its
    /// `live_groups`. Reads `/proc` only for processes that pass the cheap checks.
    pub fn owns(&self, pid: u32, stat: &Stat, groups: &BTreeMap<u32, u64>) -> bool {
        if pid == self.spare || pid <= 1 || stat.is_zombie() || stat.start < self.since {
            return false;
        }
        let in_group = groups.get(&stat.pgid).is_some_and(|&leader| stat.start >= leader);
        // uid before environ: another user's environ is not readable anyway.
        procfs::uid(pid) == Some(self.uid) && (in_group || procfs::environ_has(pid, &self.marker))
    }
}

/// SIGKILLs every process of `run`, pass after pass until one finds no new
/// one. Returns them in the order they were killed.
pub fn sweep(run: &Run) -> Vec<Victim> {
    let mut seen = BTreeSet::new();
    let mut victims = Vec::new();
    let groups = run.live_groups();
    for _ in 0..MAX_PASSES {
        let mut new = false;
        for pid in procfs::pids() {
            let Some(stat) = procfs::stat(pid) else { continue };
            if !run.owns(pid, &stat, &groups) {
                continue;
            }
            if seen.insert(pid) {
                new = true;
                // Read before the kill: a dying process has no command line.
                let cmd = procfs::cmdline(pid, CMD_CHARS).unwrap_or_default();
                victims.push(Victim { pid, cmd });
            }
            // SIGKILL again a process already hit: it may not have died yet.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        if !new {
            break;
        }
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_for(marker: &str, groups: BTreeMap<u32, u64>) -> Run {
        Run {
            uid: procfs::own_uid().unwrap(),
            since: 0,
            marker: format!("FLOWLAYER_INSTANCE={marker}").into_bytes(),
            groups,
            spare: 0,
        }
    }

    #[test]
    fn a_process_is_ours_by_marker_or_by_live_group_never_when_older_than_the_run() {
        use std::os::unix::process::CommandExt;
        let none = BTreeMap::new();
        // Unique to this test process: the same test running at once in
        // another build (another checkout) must not find our process, nor we its.
        let a = format!("unit-a-{}", std::process::id());
        let a = a.as_str();
        let mut marked = std::process::Command::new("sleep")
            .arg("30")
            .env("FLOWLAYER_INSTANCE", a)
            .spawn()
            .unwrap();
        let mut plain =
            std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let (m, p) = (marked.id(), plain.id());
        let ms = procfs::stat(m).unwrap();
        let ps = procfs::stat(p).unwrap();
        assert_eq!(ps.pgid, p, "a group leader");
        let by_marker = run_for(a, BTreeMap::new());
        assert!(by_marker.owns(m, &ms, &none));
        assert!(!by_marker.owns(p, &ps, &none), "no marker, not in a group of the run");
        assert!(!run_for("unit-b", BTreeMap::new()).owns(m, &ms, &none), "another run's marker");
        // By group: only while the leader is the recorded process.
        let by_group = run_for("x", BTreeMap::from([(p, ps.start)]));
        assert!(by_group.owns(p, &ps, &by_group.live_groups()));
        let reused = run_for("x", BTreeMap::from([(p, ps.start.saturating_sub(1))]));
        assert!(reused.live_groups().is_empty(), "the leader is not the recorded process");
        assert!(!reused.owns(p, &ps, &reused.live_groups()));
        let later = BTreeMap::from([(p, ps.start + 1)]);
        assert!(!run_for("x", later.clone()).owns(p, &ps, &later), "older than the leader");
        let later_run = Run { since: ms.start + 1, ..run_for(a, BTreeMap::new()) };
        assert!(!later_run.owns(m, &ms, &none), "older than the run");
        let spared = Run { spare: m, ..run_for(a, BTreeMap::new()) };
        assert!(!spared.owns(m, &ms, &none));
        let other_user = Run { uid: 12345, ..run_for(a, BTreeMap::new()) };
        assert!(!other_user.owns(m, &ms, &none));
        // Only the marked process goes.
        let victims = sweep(&run_for(a, BTreeMap::new()));
        assert_eq!(victims.iter().map(|v| v.pid).collect::<Vec<_>>(), vec![m]);
        assert!(victims[0].cmd.starts_with("sleep 30"), "{victims:?}");
        marked.wait().unwrap();
        assert!(plain.try_wait().unwrap().is_none(), "the unmarked process lives");
        plain.kill().unwrap();
        plain.wait().unwrap();
    }
}
