//! The server's `watchdog` thread: tells the watchdog process about every
//! service process group as it starts and ends, and keeps the record of
//! running groups (`runtime/groups.rs`) up to date.
//!
//! It owns the write end of the watchdog's pipe and the groups record file.
//! `started`/`ended` are called by whoever starts or reaps a service process
//! (`supervisor/children.rs`, on the state thread and the waiter threads):
//! they only push onto an unbounded channel, so no caller ever waits for the
//! pipe, `/proc` or the disk. Each wake-up takes everything queued, writes it
//! to the pipe in one write and rewrites the record once. It sleeps in `recv`
//! while nothing starts or ends, and runs under `SCHED_IDLE`: while a stack
//! starts it gives the CPU to the spawns and then handles the whole wave in
//! one wake-up. Lagging costs little: the watchdog finds every process of the
//! run by its environment marker anyway; the groups add the ones that cleared
//! their environment without leaving their group.

use crate::runtime::groups::{self, Group, GroupsRecord};
use crossbeam_channel::{Receiver, Sender};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::OnceLock;
use std::time::Duration;

enum Note {
    Started {
        pgid: u32,
        label: String,
    },
    Ended {
        pgid: u32,
    },
    /// Clean exit: tell the watchdog, remove the record, then acknowledge.
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

/// The start time of group leader `pgid` while it is still the server's child
/// (a leader stays unreaped until its `Ended` is queued, so a pid that is no
/// longer our child, or gone, means the group is over; a later child of ours
/// with a reused pid only gives a later start time, which matches less).
fn leader_start(pgid: u32) -> Option<u64> {
    crate::procfs::stat(pgid).filter(|s| s.ppid == std::process::id()).map(|s| s.start)
}

/// A service process group is gone (its leader reaped, the rest killed).
pub fn ended(pgid: u32) {
    if let Some(tx) = FEED.get() {
        let _ = tx.send(Note::Ended { pgid });
    }
}

/// Clean exit: says `bye` to the watchdog and removes the groups record,
/// waiting at most `within` for the thread to have done it.
pub fn finish(within: Duration) {
    let Some(tx) = FEED.get() else { return };
    let (ack, done) = crossbeam_channel::bounded(1);
    if tx.send(Note::Finish(ack)).is_ok() {
        // A timeout leaves a record the next start will find empty.
        let _ = done.recv_timeout(within);
    }
}

/// Where the record of running groups goes, and whose run it describes.
pub struct GroupsFile {
    pub path: PathBuf,
    /// The record with no groups yet.
    pub head: GroupsRecord,
}

/// Starts the thread. `pipe` is the watchdog's stdin (none when it could not
/// be started); `file` the groups record (none without a runtime directory).
pub fn spawn_feed(pipe: Option<ChildStdin>, file: Option<GroupsFile>) -> std::io::Result<()> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new().name("watchdog".into()).spawn(move || run_feed(rx, pipe, file))?;
    // Set once, at boot, before any service starts.
    let _ = FEED.set(tx);
    Ok(())
}

fn run_feed(rx: Receiver<Note>, mut pipe: Option<ChildStdin>, mut file: Option<GroupsFile>) {
    crate::background::run_in_background();
    let mut live: BTreeMap<u32, (u64, String)> = BTreeMap::new();
    let mut text = String::new();
    while let Ok(first) = rx.recv() {
        text.clear();
        let mut finish = None;
        let mut changed = false;
        for note in std::iter::once(first).chain(rx.try_iter()) {
            match note {
                Note::Started { pgid, label } => {
                    let Some(start) = leader_start(pgid) else { continue };
                    text.push_str(&format!("+{pgid} {start}\n"));
                    live.insert(pgid, (start, label));
                    changed = true;
                }
                Note::Ended { pgid } => {
                    text.push_str(&format!("-{pgid}\n"));
                    changed |= live.remove(&pgid).is_some();
                }
                Note::Finish(ack) => finish = Some(ack),
            }
        }
        if finish.is_some() {
            text.push_str("bye\n");
        }
        if let Some(p) = &mut pipe {
            if let Err(e) = p.write_all(text.as_bytes()) {
                eprintln!(
                    "[flowlayer] watchdog: cannot reach the watchdog process ({e}): if the \
                     server is killed, its services will be left running"
                );
                pipe = None;
            }
        }
        if let Some(ack) = finish {
            if let Some(f) = &file {
                // Already gone is as good as removed.
                let _ = std::fs::remove_file(&f.path);
            }
            // The caller may have stopped waiting.
            let _ = ack.send(());
            return;
        }
        if !changed {
            continue;
        }
        if let Some(f) = &mut file {
            f.head.groups = live
                .iter()
                .map(|(&pgid, (start, label))| Group {
                    service: label.clone(),
                    pgid,
                    start: *start,
                })
                .collect();
            if let Err(e) = groups::write(&f.path, &f.head) {
                eprintln!(
                    "[flowlayer] runtime: cannot write {}: {e} (not retried: a later crash \
                     may leave processes that the next start cannot find)",
                    f.path.display()
                );
                file = None;
            }
        }
    }
}
