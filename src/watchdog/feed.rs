//! The server's `watchdog` thread: keeps the record of running groups
//! (`runtime/groups.rs`) up to date. The watchdog process reads that record
//! when its server is gone, and so does the next start of the config when the
//! watchdog is gone too.
//!
//! It owns the groups record file. `started`/`ended` are called by whoever
//! starts or reaps a service process (`supervisor/children.rs`, on the state
//! thread and the waiter threads): they only push onto an unbounded channel,
//! so no caller ever waits for `/proc` or the disk. It sleeps in `recv` while
//! nothing starts or ends; after a change it gathers what follows until
//! `QUIET` passes without news (a whole wave of spawns), then rewrites the
//! record once. It runs under `SCHED_IDLE`, so a stack that starts keeps the
//! CPU. Lagging costs little: every process of the run is found by its
//! environment marker anyway; the groups add the ones that cleared their
//! environment without leaving their group. The watchdog is not told each
//! group over its pipe: that woke it on every spawn, on the CPUs a starting
//! stack needs (BENCH.md, "Crash safety").

use crate::runtime::groups::{self, Group, GroupsRecord};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long after the last change the record is written.
const QUIET: Duration = Duration::from_millis(50);
/// The longest a change waits to be written while changes keep coming.
const LATEST: Duration = Duration::from_millis(500);

enum Note {
    Started {
        pgid: u32,
        label: String,
    },
    Ended {
        pgid: u32,
    },
    /// Clean exit: remove the record, then acknowledge.
    Finish(Sender<()>),
}

static FEED: OnceLock<Sender<Note>> = OnceLock::new();

/// A service process group started (its leader `pgid`, a child of the server).
pub fn started(pgid: u32, label: &str) {
    if let Some(tx) = FEED.get() {
        // The thread lives as long as the process; nothing to do if it is gone.
        let _ = tx.send(Note::Started { pgid, label: label.to_string() });
    }
}

/// A service process group is gone (its leader reaped, the rest killed).
pub fn ended(pgid: u32) {
    if let Some(tx) = FEED.get() {
        let _ = tx.send(Note::Ended { pgid });
    }
}

/// Clean exit: removes the groups record, waiting at most `within` for the
/// thread to have done it.
pub fn finish(within: Duration) {
    let Some(tx) = FEED.get() else { return };
    let (ack, done) = crossbeam_channel::bounded(1);
    if tx.send(Note::Finish(ack)).is_ok() {
        // A timeout leaves a record the next start finds with its leaders gone.
        let _ = done.recv_timeout(within);
    }
}

/// Where the record of running groups goes, and whose run it describes.
pub struct GroupsFile {
    pub path: PathBuf,
    /// The record with no groups yet.
    pub head: GroupsRecord,
}

/// Starts the thread (only with a runtime directory: the record is all it keeps).
pub fn spawn_feed(file: GroupsFile) -> std::io::Result<()> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new().name("watchdog".into()).spawn(move || run_feed(rx, file))?;
    // Set once, at boot, before any service starts.
    let _ = FEED.set(tx);
    Ok(())
}

/// The start time of group leader `pgid` while it is still the server's child
/// (a leader stays unreaped until its `Ended` is queued, so a pid that is no
/// longer our child, or gone, means the group is over; a later child of ours
/// with a reused pid gives that child's start time, which the sweep's check
/// of the leader then refuses for the group that was).
fn leader_start(pgid: u32) -> Option<u64> {
    crate::procfs::stat(pgid).filter(|s| s.ppid == std::process::id()).map(|s| s.start)
}

/// What the thread knows: the live groups, and whether the file lags them.
struct Groups {
    live: BTreeMap<u32, (u64, String)>,
    unwritten: bool,
}

impl Groups {
    /// Applies a note; the acknowledgement route when it is `Finish`.
    fn apply(&mut self, note: Note) -> Option<Sender<()>> {
        match note {
            Note::Started { pgid, label } => {
                if let Some(start) = leader_start(pgid) {
                    self.live.insert(pgid, (start, label));
                    self.unwritten = true;
                }
            }
            Note::Ended { pgid } => self.unwritten |= self.live.remove(&pgid).is_some(),
            Note::Finish(ack) => return Some(ack),
        }
        None
    }
}

fn run_feed(rx: Receiver<Note>, mut file: GroupsFile) {
    crate::background::run_in_background();
    let mut g = Groups { live: BTreeMap::new(), unwritten: false };
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut finish = g.apply(first);
        let latest = Instant::now() + LATEST;
        while finish.is_none() && g.unwritten && Instant::now() < latest {
            match rx.recv_timeout(QUIET) {
                Ok(note) => finish = g.apply(note),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if let Some(ack) = finish {
            // Already gone is as good as removed.
            let _ = std::fs::remove_file(&file.path);
            // The caller may have stopped waiting.
            let _ = ack.send(());
            return;
        }
        if !g.unwritten || failed {
            continue;
        }
        g.unwritten = false;
        file.head.groups = g
            .live
            .iter()
            .map(|(&pgid, (start, label))| Group { service: label.clone(), pgid, start: *start })
            .collect();
        if let Err(e) = groups::write(&file.path, &file.head) {
            eprintln!(
                "[flowlayer] runtime: cannot write {}: {e} (not retried: if the server and its \
                 watchdog are both killed, the next start may not find every process they left)",
                file.path.display()
            );
            failed = true;
        }
    }
}
