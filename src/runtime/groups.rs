//! The record of running groups, `config-<key>.groups`: which process groups a
//! server's services run in, with their start times, so that when the server
//! and its watchdog both died (a machine-wide OOM kill, `kill -9` of both) the
//! next start of the same config can find and kill what they left.
//!
//! Written by the server's `watchdog` thread (`watchdog/feed.rs`) whenever the
//! set of groups changes, removed at a clean exit, and read once at boot, under
//! the config's lock, by the next server of the same config.

use super::record::write_json;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One service process group: its leader's pid is the group id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The service (`<name>:stop` for a stopCmd).
    pub service: String,
    pub pgid: u32,
    /// The leader's start time (clock ticks after boot): a member of the
    /// group cannot have started before it.
    pub start: u64,
}

/// The whole record: whose run it was, and its groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupsRecord {
    pub config: PathBuf,
    pub instance_id: String,
    /// The server that ran them, and its start time: nothing of its run can
    /// have started before it.
    pub pid: u32,
    pub pid_start: u64,
    /// Start times mean nothing after a reboot (nor does anything survive one).
    pub boot_id: String,
    pub groups: Vec<Group>,
}

pub fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.groups"))
}

pub fn write(path: &Path, rec: &GroupsRecord) -> std::io::Result<()> {
    write_json(path, rec)
}

pub fn read(path: &Path) -> Option<GroupsRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
