//! The instance record `<instance_id>.json` (stacks.md section 1): what a running
//! server tells the `flowlayer` CLI and the terminal client about itself.
//!
//! No thread of its own; std, serde and serde_json only, so the clients can
//! share it. Files are written whole under a temporary name, then renamed, so
//! a reader never sees half a record. A reader trusts a record only while its
//! process is the one that wrote it: same boot of the machine, same pid, same
//! process start time (pids are reused, start times are not); any other
//! record is ignored and removed.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One running server. Field names are the contract of stacks.md section 1;
/// `pid_start` and `boot_id` are additions that let a reader tell the
/// recorded process from a later one with the same pid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The config file, canonical path.
    pub config: PathBuf,
    /// The config file's directory.
    pub dir: PathBuf,
    pub pid: u32,
    /// RFC 3339 UTC with milliseconds, like log timestamps.
    pub started_at: String,
    pub instance_id: String,
    pub version: String,
    /// The unix socket, once the server has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// The TCP session address a local client dials, when the session is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The server process's start time (clock ticks after boot, `/proc/<pid>/stat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// `<instance_id>.json`.
pub fn path(dir: &Path, instance_id: &str) -> PathBuf {
    dir.join(format!("{instance_id}.json"))
}

/// Writes `value` as JSON to `path`, mode 0600, atomically (temporary file, rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        // The temporary file is ours; nothing else would remove it.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

pub fn write(dir: &Path, rec: &Record) -> std::io::Result<()> {
    write_json(&path(dir, &rec.instance_id), rec)
}

pub fn read(path: &Path) -> Option<Record> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Whether process `pid` is still the one that started at `pid_start` during
/// boot `boot_id` (either may be unknown: then only what is known is compared).
pub fn process_is(pid: u32, pid_start: Option<u64>, boot_id: Option<&str>) -> bool {
    if boot_id.is_some_and(|b| crate::procfs::boot_id().as_deref() != Some(b)) {
        return false;
    }
    match crate::procfs::live_start(pid) {
        None => false,
        Some(start) => pid_start.is_none_or(|s| s == start),
    }
}

impl Record {
    /// Whether the server that wrote this record still runs.
    pub fn is_live(&self) -> bool {
        self.pid > 0 && process_is(self.pid, self.pid_start, self.boot_id.as_deref())
    }
}

/// The records of running servers in `dir`, oldest first. Records of servers
/// that are gone are removed (with the socket they named), files that are not
/// records are left alone.
pub fn live(dir: &Path) -> Vec<Record> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let Some(stem) =
            p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let Some(rec) = read(&p).filter(|r| r.instance_id == stem) else { continue };
        if rec.is_live() {
            out.push(rec);
        } else {
            // Another reader may have removed it first; either way it is gone.
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_file(dir.join(format!("{stem}.sock")));
        }
    }
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fl-unit-rec-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(id: &str, pid: u32, pid_start: Option<u64>) -> Record {
        Record {
            name: "demo".into(),
            config: "/p/flowlayer.jsonc".into(),
            dir: "/p".into(),
            pid,
            started_at: "2026-11-27T10:31:00.000Z".into(),
            instance_id: id.into(),
            version: "1.0.0".into(),
            socket: None,
            addr: Some("127.0.0.1:6999".into()),
            token: Some("t".into()),
            pid_start,
            boot_id: crate::procfs::boot_id(),
        }
    }

    #[test]
    fn a_record_round_trips_with_the_contract_field_names() {
        let r = record("a", 1, Some(2));
        let v = serde_json::to_value(&r).unwrap();
        for k in ["name", "config", "dir", "pid", "started_at", "instance_id", "version", "addr"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert!(v.get("socket").is_none(), "absent until the server has one");
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        // Fields this version does not know are ignored, not refused.
        let mut v = serde_json::to_value(&r).unwrap();
        v["later"] = serde_json::json!(1);
        assert_eq!(serde_json::from_value::<Record>(v).unwrap(), r);
    }

    #[test]
    fn records_of_dead_or_other_processes_are_ignored_and_removed() {
        let d = scratch("live");
        let me = std::process::id();
        let start = crate::procfs::live_start(me);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        write(&d, &record("mine", me, start)).unwrap();
        write(&d, &record("dead", dead, None)).unwrap();
        write(&d, &record("reused", me, start.map(|s| s + 1))).unwrap();
        std::fs::write(d.join("other.json"), "not a record").unwrap();
        let live = live(&d);
        assert_eq!(live.iter().map(|r| r.instance_id.as_str()).collect::<Vec<_>>(), ["mine"]);
        assert!(path(&d, "mine").exists());
        assert!(!path(&d, "dead").exists());
        assert!(!path(&d, "reused").exists());
        assert!(d.join("other.json").exists());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn records_are_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("mode");
        write(&d, &record("m", 1, None)).unwrap();
        let mode = std::fs::metadata(path(&d, "m")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(d).unwrap();
    }
}
