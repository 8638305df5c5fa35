//! The runtime directory (stacks.md section 1): where a FlowLayer server
//! records itself while it runs, and where clients find running stacks.
//!
//! `$XDG_RUNTIME_DIR/flowlayer/` (else `flowlayer-<uid>/` in the temp
//! directory), 0700, holds per server `<instance_id>.json` (its record),
//! `<instance_id>.sock` (its control socket) and `recent.json` (the stacks
//! that ran last). Records are trusted only while their process is the one
//! that wrote them (pid, start time, boot id: `procfs`).
//!
//! No thread of its own, no I/O but files and `/proc`: the server writes
//! through this crate, the `flowlayer` command and the terminal client read
//! through it.

pub mod dir;
pub mod localtime;
pub mod procfs;
pub mod recent;
pub mod record;

use std::path::PathBuf;

/// The runtime directories that exist and are ours, in the order servers
/// try them: where records are to be read.
pub fn readable_dirs() -> Vec<PathBuf> {
    dir::candidates().0.into_iter().filter(|d| dir::check(d).is_ok()).collect()
}

/// Every running server's record, in every runtime directory, oldest first.
/// Records of servers that are gone are removed on the way.
pub fn running() -> Vec<record::Record> {
    let mut all: Vec<record::Record> =
        readable_dirs().iter().flat_map(|d| record::live(d)).collect();
    all.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    all
}

/// The stacks that ran recently, newest first, one per config, from every
/// runtime directory.
pub fn recent() -> Vec<recent::Recent> {
    let mut all: Vec<recent::Recent> =
        readable_dirs().iter().flat_map(|d| recent::read(d)).collect();
    all.sort_by(|a, b| b.stopped_at.cmp(&a.stopped_at));
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|r| seen.insert(r.config.clone()));
    all
}
