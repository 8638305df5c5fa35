//! Issue 13, the runaway guard: every program of the corpus (fl-helper) under
//! the guard with short windows, each action's outcome checked on the real
//! processes; dry run; the restart budget; incidents across server runs;
//! `get_incidents`; `/metrics`; the timeline and `why`.

use crate::support::ws::Client;
use crate::support::{
    alive, http_get, marks, metric, promtool_check, read_jsonl, temp_dir, wait_for, wait_until,
    Opts, Server,
};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn connect(s: &Server) -> Client {
    let mut c = Client::connect(&s.addr(), &s.token);
    let hello = c.recv(T).expect("hello");
    let caps = hello["payload"]["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "get_incidents"), "{caps:?}");
    let snap = c.recv(T).expect("snapshot");
    assert_eq!(snap["name"], "snapshot", "{snap}");
    c
}

/// The next `incident` event whose record matches `pred`.
fn incident(c: &mut Client, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    c.until(T, what, |v| v["name"] == "incident" && pred(&v["payload"]))["payload"].clone()
}

/// `get_incidents` with `payload`: the records.
fn incidents(c: &mut Client, payload: Value) -> Vec<Value> {
    let (ack, res) = c.call("get_incidents", payload.clone());
    assert_eq!(ack["accepted"], true, "{payload}: {ack}");
    assert_eq!(res["ok"], true, "{res}");
    res["data"]["incidents"].as_array().unwrap().clone()
}

/// The first incident of the stack whose action has ended (outcome known,
/// closed), polled with `get_incidents`.
fn acted(c: &mut Client) -> Value {
    wait_for(T, "an incident acted on and closed", || {
        incidents(c, json!({})).into_iter().find(|i| !i["closed_at"].is_null())
    })
}

/// The pid of each run of a service, from its helper's `--mark` file.
fn runs(mark: &Path) -> Vec<i32> {
    marks(mark).into_iter().filter(|(e, ..)| e == "start").map(|(.., pid)| pid).collect()
}

fn first_run(mark: &Path) -> i32 {
    wait_for(T, "the service's first run", || runs(mark).first().copied())
}

/// Live processes of process group `pgid` (a service's tree, which it leads).
fn group(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if fields.get(2).and_then(|p| p.parse::<i32>().ok()) == Some(pgid) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

fn status(c: &mut Client, service: &str) -> String {
    let (_, res) = c.call("get_snapshot", json!({}));
    let list = res["data"]["services"].as_array().unwrap();
    let entry = list.iter().find(|e| e["name"] == service).unwrap();
    entry["status"].as_str().unwrap().to_string()
}

fn timeline(c: &mut Client, service: &str) -> (Vec<Value>, String) {
    let (_, res) = c.call("get_timeline", json!({"service": service}));
    let entries = res["data"]["entries"].as_array().unwrap().clone();
    (entries, res["data"]["why"].as_str().unwrap().to_string())
}

fn runaway(dry: bool) -> (Server, Client) {
    let vars = [("DRY", dry.to_string())];
    let mut s =
        Server::start_with("tests/guard_runaway.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_stdout("boot: session API", T);
    let c = connect(&s);
    std::fs::write(s.dir.join("go"), "go").unwrap();
    (s, c)
}

#[test]
fn issue_13_a_runaway_is_restarted_with_a_new_pid_then_stopped_once_the_budget_is_spent() {
    let (mut s, mut c) = runaway(false);
    let mut other = connect(&s);
    let mark = s.dir.join("loop.mark");
    let first = first_run(&mark);
    let opened = incident(&mut c, "the runaway's incident", |p| p["id"] == "inc-1");
    assert_eq!(
        (&opened["rule"], &opened["action"], &opened["dry_run"]),
        (&json!("runaway"), &json!("restart"), &json!(false)),
        "{opened:#}"
    );
    assert!(opened["outcome"].is_null() && opened["closed_at"].is_null(), "{opened:#}");
    let template = "retry <n> failed at <ts>: connection refused";
    let evidence = &opened["evidence"];
    assert_eq!(evidence["template"], template);
    assert!(evidence["template_count"].as_u64().unwrap() >= 45, "{evidence:#}");
    let last = evidence["last_lines"].as_array().unwrap();
    assert_eq!(last.len(), 20);
    assert!(last.iter().all(|l| l.as_str().unwrap().starts_with("retry ")), "{last:?}");
    let cpu = evidence["cpu"].as_array().unwrap();
    assert!(!cpu.is_empty() && cpu.iter().all(|c| c.as_f64().unwrap() > 0.3), "{cpu:?}");
    assert_eq!(evidence["threshold"]["cpu"], json!({"above": 0.3, "forMs": 1000}));
    let summary = opened["summary"].as_str().unwrap();
    assert!(summary.starts_with("cpu ") && summary.ends_with(&format!("were \"{template}\"")));
    // Restarted: the first run's tree is gone, the second runs with a new pid.
    let restarted =
        incident(&mut c, "the restart", |p| p["id"] == "inc-1" && p["outcome"] != Value::Null);
    let both = wait_for(T, "the second run", || runs(&mark).get(1).map(|p| (first, *p)));
    let outcome = restarted["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("restarted in ")
            && outcome.ends_with(&format!("(pid {} → {})", both.0, both.1)),
        "{outcome}"
    );
    assert_ne!(both.0, both.1);
    assert!(group(first).is_empty(), "the first run's tree is gone");
    let closed =
        incident(&mut c, "inc-1 closed", |p| p["id"] == "inc-1" && p["closed_at"] != Value::Null);
    assert_eq!(closed["close_reason"], "service restarted");
    // The new run loops again: the budget (one a minute) is spent, so it is stopped.
    let stopped =
        incident(&mut c, "the stop", |p| p["id"] == "inc-2" && p["outcome"] != Value::Null);
    assert_eq!(stopped["action"], "stop");
    let outcome = stopped["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("restart budget spent (max 1 per 60 s): stopped in "), "{outcome}");
    assert!(group(both.1).is_empty(), "the second run's tree is gone");
    assert_eq!(runs(&mark).len(), 2, "not started again");
    c.wait_status("loop", "failed", T);
    let loop_statuses = c.statuses_seen("loop");
    let after_first: Vec<&str> = loop_statuses.iter().map(String::as_str).collect();
    assert_eq!(
        after_first,
        ["starting", "running", "stopping", "stopped", "starting", "running", "stopping"],
        "the guard's restart is a stop and a start"
    );
    // Every session hears of every change.
    incident(&mut other, "inc-2 on the other session", |p| {
        p["id"] == "inc-2" && p["close_reason"] == "service stopped"
    });
    // The timeline tells it, and `why` says why it is down.
    let (entries, why) = timeline(&mut c, "loop");
    assert!(
        why.starts_with("failed: stopped by the guard: runaway incident inc-2: cpu ")
            && why.ends_with("(killed by signal 15 (SIGTERM))"),
        "{why}"
    );
    let changes: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["kind"] == "incident")
        .map(|e| (e["id"].as_str().unwrap().into(), e["change"].as_str().unwrap().into()))
        .collect();
    let want: Vec<(String, String)> = [
        ("inc-1", "opened"),
        ("inc-1", "acted"),
        ("inc-1", "closed"),
        ("inc-2", "opened"),
        ("inc-2", "acted"),
        ("inc-2", "closed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(changes, want);
    let by_guard = entries.iter().filter(|e| e["kind"] == "stop_requested" && e["by"] == "guard");
    assert_eq!(by_guard.count(), 2);
    assert!(entries.iter().any(|e| e["cause"] == "guard restart: runaway incident inc-1"));
    // The service's stream and the terminal say it too.
    let (_, logs) = c.call("get_logs", json!({"service": "loop", "limit": 5000}));
    let system: Vec<&str> = logs["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stream"] == "system")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(system.iter().any(|l| l.starts_with("guard: runaway (cpu ")), "{system:#?}");
    // (The terminal runs at idle priority, behind the loop's spinning core.)
    s.wait_stdout(&format!("% \"{template}\") → restart\n"), T);
    s.wait_stdout(") → stop (restart budget spent)\n", T);
    assert!(s.stdout().contains("[flowlayer] guard: loop: runaway (cpu "));
    // /metrics counts both incidents and the guard's restart, and stays valid.
    let (code, _, text) = http_get(&s.addr(), "/metrics", Some(&s.token));
    assert_eq!(code, 200);
    let series = |action: &str| {
        format!("flowlayer_guard_incidents_total{{service=\"loop\",rule=\"runaway\",action=\"{action}\",dry_run=\"false\"}}")
    };
    assert_eq!(metric(&text, &series("restart")), 1.0);
    assert_eq!(metric(&text, &series("stop")), 1.0);
    assert_eq!(
        metric(&text, "flowlayer_service_restarts_total{service=\"loop\",reason=\"guard\"}"),
        1.0
    );
    promtool_check(&text);
    assert!(s.shutdown().success());
    // incidents.jsonl: one line per change.
    let lines: Vec<(String, String)> = s
        .jsonl("incidents.jsonl")
        .iter()
        .map(|l| (l["id"].as_str().unwrap().into(), l["change"].as_str().unwrap().into()))
        .collect();
    assert_eq!(lines, want);
}

#[test]
fn issue_13_dry_run_records_what_it_would_do_and_acts_on_nothing() {
    let (mut s, mut c) = runaway(true);
    let mut other = connect(&s);
    let mark = s.dir.join("loop.mark");
    let pid = first_run(&mark);
    let inc = incident(&mut c, "the runaway's incident", |p| p["rule"] == "runaway");
    assert_eq!(
        (&inc["action"], &inc["dry_run"], &inc["outcome"]),
        (&json!("restart"), &json!(true), &json!("would have restarted")),
        "{inc:#}"
    );
    assert_eq!(other.until(T, "the event", |v| v["name"] == "incident")["payload"], inc);
    // Nothing was done: the same process still runs, and nothing else started.
    assert!(alive(pid));
    assert_eq!(runs(&mark), vec![pid]);
    assert_eq!(status(&mut c, "loop"), "running");
    s.wait_stdout(") → would restart (dry run)\n", T);
    let (_, why) = timeline(&mut c, "loop");
    assert!(why.starts_with("running; guard incident inc-1 open: runaway: cpu "), "{why}");
    let (_, _, text) = http_get(&s.addr(), "/metrics", Some(&s.token));
    let series = "flowlayer_guard_incidents_total{service=\"loop\",rule=\"runaway\",action=\"restart\",dry_run=\"true\"}";
    assert_eq!(metric(&text, series), 1.0);
    // Its stop closes the incident (and gives the core back).
    let (_, res) = c.call("stop_service", json!({"service": "loop"}));
    assert_eq!(res["data"]["status"], "stopped", "{res}");
    let closed =
        incident(&mut c, "closed", |p| p["id"] == "inc-1" && p["closed_at"] != Value::Null);
    assert_eq!(closed["close_reason"], "service stopped");
    assert_eq!(closed["outcome"], "would have restarted");
    assert!(!alive(pid));
    s.shutdown();
}

#[test]
fn issue_13_a_leak_is_caught_and_stopped() {
    let mut s = Server::start("tests/guard_leak.jsonc");
    s.wait_started();
    let mut c = connect(&s);
    let pid = first_run(&s.dir.join("leaky.mark"));
    let inc = acted(&mut c);
    let rule = inc["rule"].as_str().unwrap();
    assert!(rule == "growth" || rule == "memory", "{inc:#}");
    assert_eq!(inc["action"], "stop");
    assert!(inc["outcome"].as_str().unwrap().starts_with("stopped in "), "{inc:#}");
    let rss: Vec<u64> = inc["evidence"]["rss_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(rss.len() >= 4 && rss.last() > rss.first(), "{rss:?}");
    assert!(group(pid).is_empty(), "the leaker is gone");
    assert_eq!(status(&mut c, "leaky"), "failed");
    let (_, why) = timeline(&mut c, "leaky");
    assert!(
        why.starts_with(&format!("failed: stopped by the guard: {rule} incident inc-1: rss ")),
        "{why}"
    );
}

#[test]
fn issue_13_a_fork_explosion_is_stopped_with_every_child() {
    let mut s = Server::start("tests/guard_forker.jsonc");
    s.wait_started();
    let mut c = connect(&s);
    let pid = first_run(&s.dir.join("forker.mark"));
    let inc = acted(&mut c);
    assert_eq!((&inc["rule"], &inc["action"]), (&json!("processes"), &json!("stop")), "{inc:#}");
    let counts = inc["evidence"]["processes"].as_array().unwrap();
    let seen = counts.last().and_then(Value::as_u64).unwrap();
    assert!(seen > 30, "{counts:?}");
    assert_eq!(inc["summary"], format!("{seen} processes, above 30"));
    assert!(inc["outcome"].as_str().unwrap().starts_with("stopped in "), "{inc:#}");
    assert!(group(pid).is_empty(), "the forker and its children are gone");
    assert_eq!(status(&mut c, "forker"), "failed");
}

#[test]
fn issue_13_a_log_storm_is_a_rate_incident_and_never_a_repeat() {
    let mut s = Server::start("tests/guard_storm.jsonc");
    s.wait_started();
    let mut c = connect(&s);
    let pid = first_run(&s.dir.join("storm.mark"));
    let inc = acted(&mut c);
    assert_eq!((&inc["rule"], &inc["action"]), (&json!("rate"), &json!("stop")), "{inc:#}");
    assert!(inc["evidence"]["lines_per_sec"].as_f64().unwrap() >= 5000.0, "{inc:#}");
    assert!(inc["outcome"].as_str().unwrap().starts_with("stopped in "), "{inc:#}");
    assert!(group(pid).is_empty(), "the storm is over");
    let all = incidents(&mut c, json!({}));
    assert_eq!(all.len(), 1, "no repeat incident: {all:#?}");
}

#[test]
fn issue_13_healthy_programs_open_no_incident() {
    let mut s = Server::start("tests/guard_healthy.jsonc");
    s.wait_started();
    let mut c = connect(&s);
    // The guard is watching: the control's loop of one line opens its incident.
    let control = wait_for(T, "the control's incident", || {
        incidents(&mut c, json!({"service": "control"})).first().cloned()
    });
    assert_eq!((&control["rule"], &control["outcome"]), (&json!("repeat"), &json!("alerted")));
    // Several windows of both: four spikes of 0.5 s (the cpu window is 1.5 s),
    // four seconds of the access log at 1,000 lines a second.
    wait_until(T, "four spikes", || {
        let (_, res) = c.call("get_logs", json!({"service": "spike", "limit": 100}));
        let entries = res["data"]["entries"].as_array().unwrap().clone();
        entries.iter().any(|e| e["message"].as_str().unwrap().starts_with("spike 4: built"))
    });
    wait_until(T, "4,000 access log lines", || {
        let (_, _, text) = http_get(&s.addr(), "/metrics", Some(&s.token));
        metric(&text, "flowlayer_log_lines_total{service=\"accesslog\",stream=\"stdout\"}")
            >= 4000.0
    });
    let all = incidents(&mut c, json!({}));
    let healthy: Vec<&Value> = all.iter().filter(|i| i["service"] != "control").collect();
    assert!(healthy.is_empty(), "{healthy:#?}");
    for svc in ["spike", "accesslog"] {
        assert_eq!(status(&mut c, svc), "running");
    }
}

#[test]
fn issue_13_incidents_survive_a_server_restart_and_get_incidents_filters() {
    let dir = temp_dir("guard-history").keep();
    let opts = || Opts { dir: Some(dir.clone()), ..Opts::default() };
    let mut s = Server::start_with("tests/guard_history.jsonc", opts());
    s.wait_started();
    let mut c = connect(&s);
    let open = wait_for(T, "chatty's incident", || {
        incidents(&mut c, json!({"open": true})).first().cloned()
    });
    assert_eq!(
        (&open["id"], &open["service"], &open["rule"], &open["action"], &open["outcome"]),
        (&json!("inc-1"), &json!("chatty"), &json!("repeat"), &json!("alert"), &json!("alerted"))
    );
    // Killed while the incident is open: the next server closes it.
    let file = dir.join("logs/incidents.jsonl");
    wait_until(T, "the opened line on disk", || {
        std::fs::read_to_string(&file).unwrap_or_default().contains("\"change\":\"opened\"")
    });
    let chatty = first_run(&dir.join("chatty.mark"));
    s.signal(Signal::SIGKILL);
    s.wait_exit(T);
    // What the killed server left running.
    let _ = killpg(Pid::from_raw(chatty), Signal::SIGKILL);
    wait_until(T, "chatty gone", || group(chatty).is_empty());
    let mut s2 = Server::start_with("tests/guard_history.jsonc", opts());
    s2.wait_started();
    let mut c = connect(&s2);
    let before = incidents(&mut c, json!({"service": "chatty", "open": false}));
    assert_eq!(before.len(), 1, "{before:#?}");
    assert_eq!(before[0]["id"], "inc-1");
    assert_eq!(before[0]["close_reason"], "the server stopped before it closed");
    assert!(before[0]["closed_at"].as_str().is_some());
    // Ids count on across runs.
    let new =
        wait_for(T, "a new incident", || incidents(&mut c, json!({"open": true})).first().cloned());
    assert_eq!(new["id"], "inc-2");
    let ids = |list: Vec<Value>| -> Vec<String> {
        list.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(incidents(&mut c, json!({}))), ["inc-1", "inc-2"], "oldest first");
    assert_eq!(ids(incidents(&mut c, json!({"limit": 1}))), ["inc-2"], "the newest");
    assert_eq!(ids(incidents(&mut c, json!({"open": true}))), ["inc-2"]);
    assert_eq!(ids(incidents(&mut c, json!({"service": "quiet"}))), Vec::<String>::new());
    assert_eq!(ids(incidents(&mut c, Value::Null)), ["inc-1", "inc-2"]);
    for (payload, code) in [
        (json!({"service": "ghost"}), "unknown_service"),
        (json!({"service": 7}), "invalid_payload"),
        (json!({"limit": 0}), "invalid_payload"),
        (json!({"limit": "many"}), "invalid_payload"),
        (json!({"open": "yes"}), "invalid_payload"),
    ] {
        let (ack, _) = c.call("get_incidents", payload.clone());
        assert_eq!(ack["accepted"], false, "{payload}");
        assert_eq!(ack["error"]["code"], code, "{payload}: {ack}");
    }
    assert_eq!(ids(incidents(&mut c, json!({"service": "chatty", "limit": 5}))).len(), 2);
    assert!(s2.shutdown().success());
    // One line per change: opened by the first server, closed by the second
    // at its start; opened, then closed by the shutdown.
    let lines: Vec<(String, String, String)> = read_jsonl(&file)
        .iter()
        .map(|l| {
            let reason = l["close_reason"].as_str().unwrap_or("").to_string();
            (l["id"].as_str().unwrap().into(), l["change"].as_str().unwrap().into(), reason)
        })
        .collect();
    let want = [
        ("inc-1", "opened", ""),
        ("inc-1", "closed", "the server stopped before it closed"),
        ("inc-2", "opened", ""),
        ("inc-2", "closed", "service stopped"),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(lines, want);
}
