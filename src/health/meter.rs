//! The meter: turns /proc readings of the services' process trees into their
//! figures (health.md section 2), remembering what a figure needs from the
//! reading before (the CPU time then, the processes that were in the tree).
//!
//! Shared, behind one lock, by every thread that reads figures: the `sampler`
//! thread (`get_stats`, `watch_stats`, and whoever else subscribes) and the
//! `metrics` threads answering `/metrics`. Never the state thread: it gives
//! them `ServiceView`s, which say which process is whose.

use super::procs::{Reader, TreeReading};
use crate::bus::{RunId, SvcId};
use crate::logs::format_timestamp;
use crate::state::ServiceView;
use flowlayer_protocol::{ServiceStats, Stats};
use std::collections::HashSet;

/// A CPU figure covers at least this long: readers that come closer together
/// (a scrape right after a sample) get the figure of the last interval, not
/// the noise of a few clock ticks.
const MIN_CPU_WINDOW_MS: i64 = 200;

/// One service's figures at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub svc: SvcId,
    /// The run whose tree was read (the view's): a reading that reaches the
    /// guard after a restart is told apart from the new run's.
    pub run: RunId,
    pub name: String,
    /// Cores in use over the last interval (1.0: one core busy).
    pub cpu: f64,
    pub rss_bytes: u64,
    pub processes: u32,
    /// CPU time of the tree since the run started, reaped children included.
    /// Never goes down within a run.
    pub cpu_seconds: f64,
    pub restarts: u32,
    pub uptime_ms: u64,
}

/// Every service's figures at one moment, by name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Sample {
    pub ts_ms: i64,
    pub services: Vec<Reading>,
}

impl Sample {
    /// The `get_stats` data and the `service_stats` payload: CPU in cores to
    /// three decimals, CPU seconds to the clock tick's hundredths.
    pub fn to_stats(&self) -> Stats {
        let services = self
            .services
            .iter()
            .map(|r| ServiceStats {
                name: r.name.clone(),
                cpu: (r.cpu * 1000.0).round() / 1000.0,
                rss_bytes: r.rss_bytes,
                processes: r.processes,
                cpu_seconds: (r.cpu_seconds * 100.0).round() / 100.0,
                restarts: r.restarts,
                uptime_ms: r.uptime_ms,
            })
            .collect();
        Stats { timestamp: format_timestamp(self.ts_ms), services }
    }
}

/// What the meter keeps about a service's current run between readings.
#[derive(Clone, Debug)]
struct Track {
    run: RunId,
    /// The main process's start: another one means its pid was reused.
    root_start: u64,
    /// The CPU seconds and the time of the reading that began the interval.
    last: Option<(i64, f64)>,
    cpu: f64,
    /// Highest CPU seconds seen in this run: a process of the tree that ends
    /// unreaped by it takes its time away, and a counter must not go down.
    high: f64,
    /// The processes found last time, `(pid, start)`: one that has left the
    /// tree since (its parent died) is still the service's.
    known: Vec<(u32, u64)>,
}

pub struct Meter {
    reader: Reader,
    tracks: Vec<Option<Track>>,
}

impl Meter {
    pub fn new(services: usize) -> Meter {
        Meter { reader: Reader::new(), tracks: vec![None; services] }
    }

    /// Something reads periodically (a subscription): the files of the
    /// processes read are kept open from one reading to the next. Off, they
    /// are closed: on-demand readings open what they read.
    pub fn set_periodic(&mut self, periodic: bool) {
        self.reader.keep_open(periodic);
    }

    /// The server's own figures (`process_*` in `/metrics`).
    pub fn own_figures(&mut self) -> super::procs::OwnFigures {
        super::procs::own_figures(&mut self.reader)
    }

    /// Reads every service in `views` now (`now_ms`: Unix ms).
    pub fn read(&mut self, views: &[ServiceView], now_ms: i64) -> Sample {
        let mut trees: Vec<Option<TreeReading>> = Vec::with_capacity(views.len());
        let mut counted: HashSet<u32> = HashSet::new();
        for v in views {
            let tree = v.pid.and_then(|pid| self.tree(v, pid));
            if let Some(t) = &tree {
                counted.extend(t.members.iter().map(|(p, _)| *p));
            } else if let Some(slot) = self.tracks.get_mut(v.svc.0) {
                *slot = None;
            }
            trees.push(tree);
        }
        self.adopted(views, &mut trees, &mut counted);
        self.reader.sweep();
        let hz = self.reader.machine.ticks_per_sec as f64;
        let services = views
            .iter()
            .zip(trees)
            .map(|(v, tree)| {
                let mut r = Reading {
                    svc: v.svc,
                    run: v.run,
                    name: v.name.clone(),
                    cpu: 0.0,
                    rss_bytes: 0,
                    processes: 0,
                    cpu_seconds: 0.0,
                    restarts: v.restarts,
                    uptime_ms: 0,
                };
                let (Some(tree), Some(Some(track))) = (tree, self.tracks.get_mut(v.svc.0)) else {
                    return r;
                };
                track.known = tree.members;
                track.high = track.high.max(tree.ticks as f64 / hz);
                let started = v.started_ms.unwrap_or(now_ms);
                track.cpu = match track.last {
                    Some((at, _)) if now_ms - at < MIN_CPU_WINDOW_MS => track.cpu,
                    Some((at, secs)) => (track.high - secs) / ((now_ms - at) as f64 / 1000.0),
                    // The first reading of a run: its average so far.
                    None if now_ms - started >= MIN_CPU_WINDOW_MS => {
                        track.high / ((now_ms - started) as f64 / 1000.0)
                    }
                    None => 0.0,
                };
                if track.last.is_none_or(|(at, _)| now_ms - at >= MIN_CPU_WINDOW_MS) {
                    track.last = Some((now_ms, track.high));
                }
                r.cpu = track.cpu.max(0.0);
                r.rss_bytes = tree.rss_bytes;
                r.processes = tree.processes;
                r.cpu_seconds = track.high;
                r.uptime_ms = (now_ms - started).max(0) as u64;
                r
            })
            .collect();
        Sample { ts_ms: now_ms, services }
    }

    /// The tree of a service's main process `pid`, with what left it since
    /// the last reading; `None` when the process is gone or is not the one
    /// this run started (its pid was reused).
    fn tree(&mut self, v: &ServiceView, pid: u32) -> Option<TreeReading> {
        let mut tree = self.reader.tree(pid)?;
        let slot = self.tracks.get_mut(v.svc.0)?;
        let track = match slot {
            Some(t) if t.run == v.run => t,
            _ => slot.insert(Track {
                run: v.run,
                root_start: tree.root_start,
                last: None,
                cpu: 0.0,
                high: 0.0,
                known: Vec::new(),
            }),
        };
        if track.root_start != tree.root_start {
            return None;
        }
        let known = std::mem::take(&mut track.known);
        for (p, start) in known {
            if tree.members.iter().any(|(m, _)| *m == p) {
                continue;
            }
            // Gone, or its pid now names another process: nothing to add.
            let Some(st) = self.reader.stat(p).filter(|s| s.start == start && !s.zombie()) else {
                continue;
            };
            self.reader.add_subtree(p, st, &mut tree);
        }
        Some(tree)
    }

    /// Orphans the server adopted (when it is a subreaper, a service's
    /// orphaned processes become its children): each one in a service's
    /// process group joins that service's tree.
    fn adopted(
        &mut self,
        views: &[ServiceView],
        trees: &mut [Option<TreeReading>],
        counted: &mut HashSet<u32>,
    ) {
        let leaders: HashSet<u32> = views.iter().filter_map(|v| v.pid).collect();
        for kid in self.reader.own_children() {
            if leaders.contains(&kid) || counted.contains(&kid) {
                continue;
            }
            let Some(st) = self.reader.stat(kid).filter(|s| !s.zombie()) else { continue };
            let Some(i) = views.iter().position(|v| v.pid == Some(st.pgrp)) else { continue };
            let Some(tree) = trees[i].as_mut() else { continue };
            let from = tree.members.len();
            self.reader.add_subtree(kid, st, tree);
            counted.extend(tree.members[from..].iter().map(|(p, _)| *p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Status;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    /// A `sleep` leading its own process group, as a service's main process does.
    fn leader() -> Child {
        Command::new("sleep").arg("30").process_group(0).spawn().expect("sleep runs")
    }

    fn view(pid: u32, run: u64) -> ServiceView {
        ServiceView {
            svc: SvcId(0),
            name: "s".into(),
            status: Status::Running,
            pid: Some(pid),
            run: RunId(run),
            started_ms: Some(0),
            ready_ms: None,
            restarts: 0,
            counters: Default::default(),
        }
    }

    #[test]
    fn a_live_tree_is_read_and_a_gone_or_reused_pid_reads_as_nothing() {
        let mut child = leader();
        let pid = child.id();
        let mut m = Meter::new(1);
        let r = &m.read(&[view(pid, 1)], 1000).services[0];
        // (Its RSS may still read 0: the kernel's count in `stat` lags a fresh process.)
        assert_eq!((r.processes, r.uptime_ms), (1, 1000), "{r:?}");
        // The same pid, now (as far as the meter can tell) another process.
        m.tracks[0].as_mut().unwrap().root_start += 1;
        let r = &m.read(&[view(pid, 1)], 2000).services[0];
        assert_eq!((r.processes, r.rss_bytes), (0, 0));
        // A new run starts over; a process that is gone reads as nothing.
        assert_eq!(m.read(&[view(pid, 2)], 3000).services[0].processes, 1);
        child.kill().unwrap();
        child.wait().unwrap();
        let r = &m.read(&[view(pid, 2)], 4000).services[0];
        assert_eq!((r.processes, r.cpu_seconds), (0, 0.0));
        assert!(m.tracks[0].is_none());
    }

    #[test]
    fn a_periodic_reader_keeps_files_open_and_closes_those_of_gone_processes() {
        let mut a = leader();
        let mut b = leader();
        let mut m = Meter::new(2);
        let views = |pa, pb| {
            let mut vb = view(pb, 1);
            vb.svc = SvcId(1);
            vec![view(pa, 1), vb]
        };
        m.set_periodic(true);
        for at in [1000, 2000, 3000] {
            let s = m.read(&views(a.id(), b.id()), at);
            assert_eq!((s.services[0].processes, s.services[1].processes), (1, 1), "at {at}");
            assert_eq!(m.reader.kept(), 2);
        }
        b.kill().unwrap();
        b.wait().unwrap();
        let s = m.read(&views(a.id(), b.id()), 4000);
        assert_eq!((s.services[0].processes, s.services[1].processes), (1, 0));
        assert_eq!(m.reader.kept(), 1, "the gone process's files are closed");
        m.set_periodic(false);
        assert_eq!(m.reader.kept(), 0);
        assert_eq!(m.read(&views(a.id(), b.id()), 5000).services[0].processes, 1);
        assert_eq!(m.reader.kept(), 0, "an on-demand reading keeps nothing open");
        a.kill().unwrap();
        a.wait().unwrap();
    }

    #[test]
    fn a_process_that_does_not_lead_its_group_is_not_a_tree() {
        // This test process belongs to the test runner's group.
        let me = std::process::id();
        let mut m = Meter::new(1);
        if crate::health::procs::Reader::new().stat(me).is_some_and(|s| s.pgrp != me) {
            assert_eq!(m.read(&[view(me, 1)], 1000).services[0].processes, 0);
        }
    }
}
