use crate::support::cli::{cli, Background, Run};
use crate::support::{free_port, read_jsonl, wait_until, Opts, Server};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// `flowlayer <args> --addr <server> --token <token>`, in the server's directory.
fn on(s: &Server, args: &[&str]) -> Run {
    let addr = s.addr();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--addr", &addr, "--token", &s.token]);
    cli(&all, &s.dir, &[])
}

fn session_stack() -> Server {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/session.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    s
}

fn seqs(lines: &str) -> Vec<u64> {
    lines
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            v["seq"].as_u64().expect("seq")
        })
        .collect()
}

#[test]
fn status_lists_every_service_in_a_table_and_as_stable_json() {
    let s = session_stack();
    let r = on(&s, &["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("SERVICE") && lines[0].contains("STATUS"), "{r:?}");
    for col in ["RESTARTS", "CPU", "MEM", "UPTIME", "WHY"] {
        assert!(lines[0].contains(col), "{col} missing: {r:?}");
    }
    let web = lines.iter().find(|l| l.starts_with("web ")).expect("a web row");
    assert!(web.contains("ready") && web.ends_with("ready"), "status, and why last: {web}");
    assert!(r.stderr.is_empty(), "nothing on stderr: {r:?}");
    assert!(!r.stdout.contains('\x1b'), "no colour off a terminal");
    let v = on(&s, &["status", "-o", "json"]).json();
    let names: Vec<&str> =
        v["services"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["once", "stubborn", "tick", "web"]);
    for row in v["services"].as_array().unwrap() {
        for key in ["name", "status", "restarts", "cpu", "rss_bytes", "uptime_ms", "why"] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
    }
    assert!(v["stack"]["instance_id"].is_string());
    let web = &v["services"][3];
    assert!(web["rss_bytes"].as_u64().is_some_and(|b| b > 0), "{web}");
    let r = on(&s, &["why", "web"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("web: ready\n"), "{r:?}");
    assert!(r.stdout.contains("running → ready"), "the timeline follows: {r:?}");
}

#[test]
fn logs_n_prints_the_last_lines_of_a_service_and_streams_filter() {
    let mut s = Server::start("tests/lines.jsonc");
    s.wait_started();
    // A oneshot that is done counts as ready for wait.
    let r = on(&s, &["wait", "printer", "errs", "--timeout", "10s"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "printer: stopped\nerrs: stopped\n");
    let r = on(&s, &["logs", "printer", "-n", "5", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let got: Vec<Value> = r.json()["entries"].as_array().unwrap().clone();
    let file: Vec<Value> = s.jsonl("printer.jsonl");
    assert_eq!(got, file[file.len() - 5..], "the newest 5, oldest first, as in the file");
    let r = on(&s, &["logs", "-n", "3", "-o", "raw", "--stream", "err"]);
    assert_eq!(r.stdout, "line 3\nline 4\nline 5\n", "{r:?}");
    let r = on(&s, &["logs", "printer", "errs", "-n", "5", "--grep", "^line (999|4)$"]);
    let mut got: Vec<&str> = r.stdout.lines().collect();
    got.sort();
    assert_eq!(got, ["errs    | [stderr] line 4", "printer | line 4", "printer | line 999"]);
    let seq = file[900]["seq"].as_u64().unwrap().to_string();
    let r = on(&s, &["logs", "printer", "--since", &seq, "-o", "raw"]);
    let want: Vec<String> =
        file[901..].iter().map(|e| e["message"].as_str().unwrap().to_string()).collect();
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), want, "everything after that seq");
}

#[test]
fn an_unknown_service_is_a_usage_error_that_lists_the_services() {
    let s = session_stack();
    for args in [&["logs", "-f", "wbe"][..], &["restart", "wbe", "tick"], &["wait", "wbe"]] {
        let r = on(&s, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(
            r.stderr,
            format!(
                "Error: stack \"{}\" has no service \"wbe\"; its services: once, stubborn, tick, web\n",
                s.addr()
            )
        );
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn restart_answers_once_the_service_runs_again_and_wait_times_out_with_exit_3() {
    let s = session_stack();
    let before = on(&s, &["logs", "tick", "-n", "1", "-o", "json"]).json();
    let r = on(&s, &["restart", "tick", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["services"][0]["status"], "running");
    // The restart is in the log: an exit line after the line seen before it.
    let seq = before["entries"][0]["seq"].as_u64().unwrap().to_string();
    let r = on(&s, &["logs", "tick", "--since", &seq, "--stream", "system", "-o", "raw"]);
    assert!(r.stdout.contains("exited"), "{r:?}");
    let r = on(&s, &["stop", "tick"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "tick: stopped\n"), "{r:?}");
    let r = on(&s, &["wait", "web", "tick", "--timeout", "300ms"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("timed out after 300 ms; not ready: tick"), "{r:?}");
    let r = on(&s, &["start", "tick"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "tick: running\n"), "{r:?}");
    let r = on(&s, &["wait", "--all", "-o", "json", "--timeout", "10s"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["ok"], true);
}

#[test]
fn logs_follow_prints_every_line_exactly_once_across_a_server_restart() {
    let port = free_port();
    let mut a =
        Server::start_with("tests/follow.jsonc", Opts { port: Some(port), ..Opts::default() });
    a.wait_started();
    let (addr, dir) = (a.addr(), a.dir.clone());
    let args = ["logs", "-f", "tick", "-o", "json", "--addr", &addr, "--token", "test-token"];
    let follow = Background::start(&args, &dir, &[], "follow");
    follow.wait_stdout("20 lines", |o| o.lines().count() >= 20);
    a.signal(Signal::SIGINT);
    assert!(a.wait_exit(T).success());
    let last_of_a =
        read_jsonl(&dir.join("logs/tick.jsonl")).last().unwrap()["seq"].as_u64().unwrap();
    let mut b = Server::start_with(
        "tests/follow.jsonc",
        Opts { port: Some(port), dir: Some(dir.clone()), ..Opts::default() },
    );
    b.wait_started();
    follow.wait_stdout("20 lines of the second run", |o| {
        o.lines().filter(|l| seqs(l).first().is_some_and(|s| *s > last_of_a)).count() >= 20
    });
    let printed = seqs(&follow.stdout());
    drop(follow);
    let unique: BTreeSet<u64> = printed.iter().copied().collect();
    assert_eq!(unique.len(), printed.len(), "a line printed twice");
    assert!(printed.windows(2).all(|w| w[0] < w[1]), "out of order");
    let (first, last) = (printed[0], *printed.last().unwrap());
    let on_disk: Vec<u64> = read_jsonl(&dir.join("logs/tick.jsonl"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .filter(|s| (first..=last).contains(s))
        .collect();
    assert_eq!(printed, on_disk, "every line of both runs, none missing");
    assert!(printed.iter().any(|s| *s <= last_of_a) && last > last_of_a);
    drop(b);
}

#[test]
fn a_stack_that_stops_during_a_command_says_so_and_exits_non_zero() {
    let mut s = session_stack();
    assert_eq!(on(&s, &["stop", "tick"]).code, 0);
    let addr = s.addr();
    let args = ["wait", "tick", "--timeout", "20s", "--addr", &addr, "--token", "test-token"];
    let mut w = Background::start(&args, &s.dir, &[], "wait");
    wait_until(T, "the wait to connect", || connected(w.child.id(), s.port));
    s.signal(Signal::SIGINT);
    let code = w.wait_exit(T);
    assert_eq!(code, 1, "{}", w.stderr());
    // Mostly during the wait; during the connect when the shutdown was quicker.
    assert!(w.stderr().contains(&format!("stack \"{addr}\" stopped during")), "{}", w.stderr());
    s.wait_exit(T);
}

/// Whether process `pid` has an established TCP connection to `port`.
fn connected(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    let inodes: Vec<String> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).unwrap_or_default().lines().skip(1).any(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            c.len() > 9
                && c[3] == "01"
                && c[2].ends_with(&format!(":{port:04X}"))
                && inodes.iter().any(|i| i == c[9])
        })
    })
}

#[test]
fn incidents_lists_the_guards_incidents_as_a_table_and_json() {
    let mut s = Server::start("tests/guard_history.jsonc");
    s.wait_started();
    let mut doc = Value::Null;
    wait_until(T, "an open incident", || {
        doc = on(&s, &["incidents", "--open", "-o", "json"]).json();
        doc["incidents"].as_array().is_some_and(|a| !a.is_empty())
    });
    let i = &doc["incidents"][0];
    assert_eq!((i["service"].as_str(), i["rule"].as_str()), (Some("chatty"), Some("repeat")));
    let r = on(&s, &["incidents", "chatty"]);
    assert_eq!(r.code, 0, "{r:?}");
    let row: Vec<&str> = r.stdout.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(row[1..5], ["chatty", "repeat", "alert", "open"], "{r:?}");
    let r = on(&s, &["incidents", "quiet"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "no incidents\n"), "{r:?}");
}

#[test]
fn session_bind_port_0_picks_a_free_port_that_the_connect_line_names() {
    let vars = [("P1", free_port().to_string())];
    let extra = ["-s", "127.0.0.1:0", "-token", "test-token"];
    let opts = Opts { vars: &vars, session: false, extra: &extra, ..Opts::default() };
    let mut s = Server::start_with("tests/session.jsonc", opts);
    s.wait_started();
    let out = s.stdout();
    let line = out.lines().find(|l| l.contains("boot: connect:")).expect("a connect line");
    let addr = line.split("-addr ").nth(1).and_then(|r| r.split(' ').next()).expect("-addr");
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{line}");
    assert!(out.contains(&format!("session API: {addr} ")), "{out}");
    let r = cli(&["status", "--addr", addr, "--token", "test-token"], &s.dir, &[]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn wait_on_a_service_that_failed_ends_at_once_with_exit_1_and_why() {
    let mut s = Server::start("tests/oneshot_fail.jsonc");
    s.wait_started();
    let r = on(&s, &["wait", "other", "setup", "--timeout", "20s"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("Error: setup will not come up: failed: exited with code 3"),
        "{r:?}"
    );
    let r = on(&s, &["wait", "other", "-o", "json", "--timeout", "5s"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["services"][0]["ready"], true, "no probe: running is ready");
}
