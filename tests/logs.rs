use crate::support::{read_jsonl, temp_dir, wait_until, Opts, Server};
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn messages(entries: &[Value], stream: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["stream"] == stream)
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn seqs(entries: &[Value]) -> Vec<u64> {
    entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[test]
fn jsonl_holds_exactly_the_lines_written_and_seq_continues_across_runs() {
    let mut s = Server::start_with("tests/lines.jsonc", Opts { session: false, ..Opts::default() });
    s.wait_started();
    s.wait_stdout("printer | [flowlayer] completed", T);
    s.wait_stdout("errs    | [flowlayer] completed", T);
    // The files fill while the server runs, not only when it exits.
    wait_until(T, "both services' last lines in all.jsonl", || {
        let all = s.jsonl("all.jsonl");
        all.len() == 1000 + 5 + 2 && all.iter().filter(|e| e["stream"] == "system").count() == 2
    });
    assert!(s.shutdown().success());
    let printer = s.jsonl("printer.jsonl");
    let expect: Vec<String> = (1..=1000).map(|i| format!("line {i}")).collect();
    assert_eq!(messages(&printer, "stdout"), expect, "partial last line is captured too");
    let errs = s.jsonl("errs.jsonl");
    assert_eq!(messages(&errs, "stderr"), (1..=5).map(|i| format!("line {i}")).collect::<Vec<_>>());
    assert_eq!(messages(&errs, "system"), vec!["completed (exited with code 0)"]);
    let all = s.jsonl("all.jsonl");
    assert_eq!(all.len(), printer.len() + errs.len());
    let first_run = seqs(&all);
    assert!(first_run.windows(2).all(|w| w[0] < w[1]), "seq strictly increasing");
    for e in &all {
        let ts = e["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert!(
            ["starting", "running", "stopped", "stopping"].contains(&e["phase"].as_str().unwrap())
        );
    }
    // Second run into the same log directory: history appended, seq continues.
    let dir = s.dir.clone();
    std::mem::forget(s); // keep the directory (the server has exited)
    let mut s2 = Server::start_with(
        "tests/lines.jsonc",
        Opts { session: false, dir: Some(dir), ..Opts::default() },
    );
    s2.wait_started();
    s2.wait_stdout("printer | [flowlayer] completed", T);
    s2.wait_stdout("errs    | [flowlayer] completed", T);
    assert!(s2.shutdown().success());
    let all2 = read_jsonl(&s2.dir.join("logs/all.jsonl"));
    assert_eq!(all2.len(), 2 * all.len());
    let both = seqs(&all2);
    assert!(both.windows(2).all(|w| w[0] < w[1]), "seq increases across runs");
}

#[test]
fn a_burst_of_200000_lines_lands_whole_and_in_order() {
    let vars = [("LINES", "200000".to_string())];
    let mut s = Server::start_with(
        "tests/flood.jsonc",
        Opts { vars: &vars, session: false, ..Opts::default() },
    );
    s.wait_started();
    s.wait_stdout("flood | [flowlayer] completed", T);
    assert!(s.shutdown().success());
    let text = std::fs::read_to_string(s.dir.join("logs/flood.jsonl")).unwrap();
    let mut n = 0usize;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["stream"] != "stdout" {
            continue;
        }
        let msg = v["message"].as_str().unwrap();
        let expect = format!("FLOOD1:{n:07}:");
        assert!(msg.starts_with(&expect), "line {n} is {msg:?}");
        assert_eq!(msg.len(), 99);
        n += 1;
    }
    assert_eq!(n, 200_000);
    let all = std::fs::read_to_string(s.dir.join("logs/all.jsonl")).unwrap();
    assert_eq!(all.lines().filter(|l| l.contains("FLOOD1:")).count(), 200_000);
    // Disk space reserved ahead during the burst was given back at exit.
    for file in ["flood.jsonl", "all.jsonl"] {
        let meta = std::fs::metadata(s.dir.join("logs").join(file)).unwrap();
        let held = meta.blocks() * 512;
        assert!(held < meta.len() + 1024 * 1024, "{file}: {held} bytes held for {}", meta.len());
    }
}

/// Scheduling policy of each of the server's threads, by thread name
/// (`policy` in /proc/<pid>/task/<tid>/sched: 0 normal, 5 `SCHED_IDLE`).
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let sched = std::fs::read_to_string(task.path().join("sched")).unwrap_or_default();
        let policy = sched
            .lines()
            .find(|l| l.starts_with("policy"))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|v| v.trim().parse().ok());
        if let Some(policy) = policy {
            out.push((name.trim().to_string(), policy));
        }
    }
    out
}

#[test]
fn the_jsonl_writer_and_the_terminal_yield_the_cpu_and_the_rest_do_not() {
    let mut s = Server::start_with("tests/lines.jsonc", Opts { session: false, ..Opts::default() });
    s.wait_started();
    let pid = s.child.id();
    // The watchdog thread too: it only copies what it is told to the watchdog
    // process and the groups record.
    let background = ["jsonl-writer", "terminal", "watchdog"];
    let mut policies = Vec::new();
    // Each thread sets its own policy as it starts: wait for both.
    wait_until(T, "writer and terminal under SCHED_IDLE", || {
        policies = thread_policies(pid);
        background.iter().all(|b| policies.iter().any(|(n, p)| n == b && *p == 5))
    });
    assert!(policies.iter().any(|(n, _)| n == "state"), "{policies:?}");
    for (name, policy) in &policies {
        if !background.contains(&name.as_str()) {
            assert_eq!(*policy, 0, "thread {name}: {policies:?}");
        }
    }
    assert!(s.shutdown().success());
}

#[test]
fn while_the_disk_copy_is_far_behind_the_terminal_skips_lines_and_the_files_get_every_one() {
    let dir = temp_dir("stalled-disk").keep();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    // A FIFO that nobody reads yet: the writer blocks opening it, as on a
    // stalled disk, and 50 MB of lines pile up behind it.
    let fifo = dir.join("logs/flood.jsonl");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let vars = [("LINES", "500000".to_string())];
    let opts = Opts { vars: &vars, dir: Some(dir), ..Opts::default() };
    let mut s = Server::start_with("tests/flood_gated.jsonc", opts);
    s.wait_stdout("boot: session API", T);
    std::fs::write(s.dir.join("go"), "go").unwrap();
    // The server's own lines about a service are never skipped.
    s.wait_stdout("flood | [flowlayer] completed", T);
    s.wait_stdout("terminal behind: ", T);
    // Once 32 MiB (~335,000 lines of 100 bytes) wait for the file, the terminal
    // is sent nothing more: the flood's later lines are not shown.
    let shown: Vec<usize> = s
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("flood | FLOOD1:")?.get(..7)?.parse().ok())
        .collect();
    let last = shown.iter().max().copied().unwrap_or(0);
    assert!((1..400_000).contains(&last), "last line shown: {last}");
    // The disk comes back while every CPU is busy with other work: every line
    // still reaches the file, in order, by exit (the writer thread, at idle
    // priority, would get almost none of the CPU).
    let _busy = Busy::start();
    let reader = std::thread::spawn(move || {
        let text = std::io::read_to_string(std::fs::File::open(&fifo).unwrap()).unwrap();
        text.lines().filter(|l| l.contains("\"FLOOD1:")).count()
    });
    assert!(s.shutdown().success());
    assert_eq!(reader.join().unwrap(), 500_000);
}

/// One CPU-bound process per CPU until dropped.
struct Busy(Vec<std::process::Child>);

impl Busy {
    fn start() -> Busy {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let spin = || Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        Busy((0..n).map(|_| spin()).collect())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `/proc/<pid>/status` value in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The last `n` bytes of a file (empty when it cannot be read).
fn tail(path: &std::path::Path, n: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = Vec::new();
    if f.seek(SeekFrom::Start(len.saturating_sub(n))).is_ok() {
        let _ = f.read_to_end(&mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts `fixture` (a 1M-line flood gated by a `gate` service), lets the
/// flood go, waits until `over`, then for the server's RSS to come within 8 MB
/// of what it was before the flood.
fn memory_goes_back_after_a_flood(fixture: &str, over: impl Fn(&mut Server)) {
    let vars = [("LINES", "1000000".to_string())];
    let opts = Opts { vars: &vars, session: false, ..Opts::default() };
    let mut s = Server::start_with(fixture, opts);
    s.wait_stdout("gate → running", T);
    let pid = s.child.id();
    let before = status_kb(pid, "VmRSS");
    std::fs::write(s.dir.join("go"), "go").unwrap();
    over(&mut s);
    // What stays is the rings' copy of the newest 10,000 lines (~1 MB): 1-2 MB
    // more than before the flood, where the heaps it grew used to stay
    // (13-78 MB more).
    let deadline = Instant::now() + T;
    let more = loop {
        let more = status_kb(pid, "VmRSS").saturating_sub(before);
        if more < 8_000 || Instant::now() > deadline {
            break more;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let peak = status_kb(pid, "VmHWM") - before;
    assert!(
        more < 8_000,
        "{more} kB more than before the flood {T:?} after it (peak {peak} kB more)"
    );
    assert!(peak > 30_000, "the flood took memory in the first place: {peak} kB more at its peak");
    assert!(s.shutdown().success());
}

#[test]
fn the_memory_a_flood_took_goes_back_once_it_is_over() {
    memory_goes_back_after_a_flood("tests/flood_gated.jsonc", |s| {
        s.wait_stdout("flood | [flowlayer] completed", T)
    });
}

/// Issue 14 item 7: the flooding process keeps running (and so does the pipe
/// and its pump); its memory still goes back, as a oneshot's does.
#[test]
fn issue_14_the_memory_of_a_flood_goes_back_while_the_daemon_that_flooded_keeps_running() {
    memory_goes_back_after_a_flood("tests/flood_stay_gated.jsonc", |s| {
        // The terminal may skip the line; the file has every one.
        let file = s.dir.join("logs/flood.jsonl");
        wait_until(T, "the flood's last line in flood.jsonl", || {
            tail(&file, 4096).contains("flood over, staying")
        });
    });
}

#[test]
fn a_log_file_that_cannot_be_written_is_said_once_and_the_rest_goes_on() {
    let dir = temp_dir("unwritable").keep();
    // A directory where all.jsonl should be: every write to it fails.
    std::fs::create_dir_all(dir.join("logs/all.jsonl")).unwrap();
    let opts = Opts { session: false, dir: Some(dir.clone()), ..Opts::default() };
    let mut s = Server::start_with("tests/lines.jsonc", opts);
    s.wait_started();
    s.wait_stdout("printer | [flowlayer] completed", T);
    s.wait_stdout("errs    | [flowlayer] completed", T);
    assert!(s.shutdown().success());
    let said: Vec<String> =
        s.stderr().lines().filter(|l| l.contains("cannot write")).map(String::from).collect();
    let expect = format!("{}: Is a directory", dir.join("logs/all.jsonl").display());
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("[flowlayer] logs: cannot write") && said[0].contains(&expect));
    // The services' own files got every line all the same.
    assert_eq!(messages(&s.jsonl("printer.jsonl"), "stdout").len(), 1000);
    assert_eq!(messages(&s.jsonl("errs.jsonl"), "stderr").len(), 5);
}
