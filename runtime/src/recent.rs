//! `recent.json` in the runtime directory: the last `RECENT_MAX` stacks that ran
//! (name, config path, last stop time), newest first, so a cockpit can start a
//! stopped one again (stacks.md section 1).
//!
//! No thread of its own; std and serde only. Servers of different configs may
//! stop at the same moment, so an update holds an exclusive lock on
//! `recent.lock` while it reads, changes and replaces the file.

use crate::record::write_json;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How many stacks `recent.json` remembers.
pub const RECENT_MAX: usize = 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    pub name: String,
    pub config: PathBuf,
    /// RFC 3339 UTC with milliseconds.
    pub stopped_at: String,
}

pub fn read(dir: &Path) -> Vec<Recent> {
    std::fs::read(dir.join("recent.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Puts `entry` first, dropping an older entry of the same config and any
/// beyond `RECENT_MAX`.
pub fn push(dir: &Path, entry: Recent) -> std::io::Result<()> {
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("recent.lock"))?;
    lock.lock()?;
    let mut list = read(dir);
    list.retain(|r| r.config != entry.config);
    list.insert(0, entry);
    list.truncate(RECENT_MAX);
    write_json(&dir.join("recent.json"), &list)
    // The lock goes with the file handle.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_one_entry_per_config_at_most_twenty() {
        let d = std::env::temp_dir().join(format!("fl-unit-recent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let e = |i: usize| Recent {
            name: format!("s{i}"),
            config: format!("/p{i}/flowlayer.jsonc").into(),
            stopped_at: format!("2026-01-01T00:00:{:02}.000Z", i % 60),
        };
        for i in 0..25 {
            push(&d, e(i)).unwrap();
        }
        push(&d, e(22)).unwrap();
        let list = read(&d);
        assert_eq!(list.len(), RECENT_MAX);
        assert_eq!(list[0], e(22));
        assert_eq!(list[1], e(24));
        assert_eq!(list.iter().filter(|r| r.name == "s22").count(), 1);
        assert!(!list.iter().any(|r| r.name == "s4"), "the oldest are dropped");
        std::fs::remove_dir_all(d).unwrap();
    }
}
