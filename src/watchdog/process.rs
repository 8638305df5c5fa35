//! The watchdog process: `flowlayer-server --internal-watchdog <instance id>`,
//! started by the server before any service, one thread, no allocation beyond
//! the list of groups.
//!
//! It sleeps in `read()` on a pipe whose only writer is its server. The server
//! writes `+<pgid> <start>` when a service's group starts, `-<pgid>` when it
//! is gone, and `bye` before a clean exit. When the pipe closes (the server
//! exited, however: SIGKILL, OOM kill, abort) it kills every process of the
//! run (`sweep.rs`), says so on stderr unless the exit was clean, and exits.
//! It runs in its own process group with SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! blocked, so a Ctrl-C or a closed terminal meant for the server cannot take
//! it down before the services.

use super::sweep::{sweep, Run};
use super::MARKER_VAR;
use crate::procfs;
use nix::sys::signal::{SigSet, Signal};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;

/// The process name shown by `ps` and matched by `pgrep` (at most 15 bytes).
pub const NAME: &std::ffi::CStr = c"fl-watchdog";

/// One line from the server, applied to the groups; true for `bye`.
fn apply(line: &str, groups: &mut BTreeMap<u32, u64>) -> bool {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix('+') {
        let mut it = rest.split(' ');
        if let (Some(Ok(pgid)), Some(Ok(start))) =
            (it.next().map(str::parse::<u32>), it.next().map(str::parse::<u64>))
        {
            groups.insert(pgid, start);
        }
    } else if let Some(Ok(pgid)) = line.strip_prefix('-').map(str::parse::<u32>) {
        groups.remove(&pgid);
    }
    line == "bye"
}

/// The watchdog's whole life. `instance` is the run's instance id.
pub fn run(instance: &str) -> ExitCode {
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
    let mut groups = BTreeMap::new();
    let mut clean = false;
    let mut line = String::new();
    let mut input = std::io::stdin().lock();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => clean |= apply(&line, &mut groups),
        }
    }
    let run = Run {
        uid,
        since,
        marker: format!("{MARKER_VAR}={instance}").into_bytes(),
        groups,
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
    fn lines_add_and_remove_groups_and_bye_means_clean() {
        let mut g = BTreeMap::new();
        assert!(!apply("+100 555\n", &mut g));
        assert!(!apply("+200 556\n", &mut g));
        assert!(!apply("-100\n", &mut g));
        assert!(!apply("+x 1\n", &mut g));
        assert!(!apply("garbage\n", &mut g));
        assert_eq!(g, BTreeMap::from([(200, 556)]));
        assert!(apply("bye\n", &mut g));
    }
}
