//! The watchdog process: `flowlayer-server --internal-watchdog <instance id>
//! [<groups record>]`, started by the server before any service, one thread.
//!
//! It sleeps in `read()` on a pipe whose only writer is its server, which
//! writes nothing but `bye` before a clean exit. When the pipe closes (the
//! server exited, however: SIGKILL, OOM kill, abort) it reads the record of
//! running groups the server kept (`feed.rs`), kills every process of the run
//! (`sweep.rs`), says so on stderr unless the exit was clean, and exits.
//! It runs in its own process group with SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! blocked, so a Ctrl-C or a closed terminal meant for the server cannot take
//! it down before the services.

use super::sweep::{sweep, Run};
use super::MARKER_VAR;
use crate::procfs;
use nix::sys::signal::{SigSet, Signal};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

/// The process name shown by `ps` and matched by `pgrep` (at most 15 bytes).
pub const NAME: &std::ffi::CStr = c"fl-watchdog";

/// The groups of the record at `path` (none when it is absent or unreadable:
/// the marker still finds every process that kept its environment).
fn recorded_groups(path: Option<&Path>, instance: &str) -> BTreeMap<u32, u64> {
    let rec = path.and_then(crate::runtime::groups::read);
    rec.filter(|r| r.instance_id == instance)
        .map(|r| r.groups.iter().map(|g| (g.pgid, g.start)).collect())
        .unwrap_or_default()
}

/// The watchdog's whole life. `instance` is the run's instance id, `groups`
/// its record of running groups.
pub fn run(instance: &str, groups: Option<&Path>) -> ExitCode {
    let mut block = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        block.add(s);
    }
    // Without the mask a terminal's signals could still end it; it works anyway.
    let _ = block.thread_block();
    let _ = nix::sys::prctl::set_name(NAME);
    let server = nix::unistd::getppid().as_raw();
    let (Some(uid), Some(since)) = (procfs::own_uid(), procfs::own_start()) else {
        eprintln!("[flowlayer] watchdog: cannot read its own /proc entry: not watching");
        return ExitCode::FAILURE;
    };
    let mut clean = false;
    let mut line = String::new();
    let mut input = std::io::stdin().lock();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => clean |= line.trim_end() == "bye",
        }
    }
    let run = Run {
        uid,
        since,
        marker: format!("{MARKER_VAR}={instance}").into_bytes(),
        // After a clean exit every group has ended.
        groups: if clean { BTreeMap::new() } else { recorded_groups(groups, instance) },
        spare: std::process::id(),
    };
    let victims = sweep(&run);
    if !clean && !victims.is_empty() {
        eprintln!(
            "[flowlayer] watchdog: the server (pid {server}) is gone: killed {} process(es) of its services",
            victims.len()
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_record_of_this_run_gives_groups() {
        use crate::runtime::groups::{write, Group, GroupsRecord};
        let path = std::env::temp_dir().join(format!("fl-unit-wd-{}.groups", std::process::id()));
        let rec = GroupsRecord {
            config: "/c".into(),
            instance_id: "run-a".into(),
            pid: 1,
            pid_start: 2,
            boot_id: "b".into(),
            groups: vec![Group { service: "s".into(), pgid: 200, start: 556 }],
        };
        write(&path, &rec).unwrap();
        assert_eq!(recorded_groups(Some(&path), "run-a"), BTreeMap::from([(200, 556)]));
        assert!(recorded_groups(Some(&path), "run-b").is_empty());
        assert!(recorded_groups(None, "run-a").is_empty());
        std::fs::remove_file(&path).unwrap();
        assert!(recorded_groups(Some(&path), "run-a").is_empty());
    }
}
