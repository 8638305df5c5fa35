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
pub mod find;
pub mod localtime;
pub mod procfs;
pub mod recent;
pub mod record;

use std::path::PathBuf;

/// The runtime directory a server started in this environment records itself
/// in: the first candidate that is a directory of ours, or that does not exist
/// yet but could be created (then it holds nothing yet). Reading only that one
/// keeps stacks of another environment (another `XDG_RUNTIME_DIR`) apart, as
/// their servers keep them.
pub fn runtime_dir() -> Option<PathBuf> {
    dir::candidates()
        .0
        .into_iter()
        .find(|d| dir::check(d).is_ok() || (!d.exists() && d.parent().is_some_and(|p| p.is_dir())))
}

/// Every running server's record, oldest first. Records of servers that are
/// gone are removed on the way.
pub fn running() -> Vec<record::Record> {
    runtime_dir().map(|d| record::live(&d)).unwrap_or_default()
}

/// The stacks that ran recently, newest first.
pub fn recent() -> Vec<recent::Recent> {
    runtime_dir().map(|d| recent::read(&d)).unwrap_or_default()
}
