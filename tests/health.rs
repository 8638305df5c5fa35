//! Issue 12, service health: the restart policy on real processes, resources
//! read from /proc, the timeline's `why`, `/metrics` and the new commands.

use crate::support::ws::Client;
use crate::support::{
    free_port, http_get, metric, promtool_check, wait_for, wait_until, Opts, Server,
};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn connect(s: &Server) -> Client {
    let mut c = Client::connect(&s.addr(), &s.token);
    let hello = c.recv(T).expect("hello");
    assert_eq!(hello["name"], "hello");
    let snap = c.recv(T).expect("snapshot");
    assert_eq!(snap["name"], "snapshot", "{snap}");
    c
}

/// The restart fixture with its variables; the client is connected before
/// `crashy` first starts.
fn restarting(policy: &str, code: i32, backoff_ms: u64, max: u32) -> (Server, Client) {
    let vars = [
        ("POLICY", policy.to_string()),
        ("CODE", code.to_string()),
        ("BACKOFF", backoff_ms.to_string()),
        ("MAX", max.to_string()),
    ];
    let mut s = Server::start_with("tests/restart.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_stdout("boot: session API", T);
    let c = connect(&s);
    std::fs::write(s.dir.join("go"), "go").unwrap();
    (s, c)
}

/// Milliseconds since the epoch of an RFC 3339 `...T14:55:21.123Z` stamp of
/// today (enough to subtract two of them a few seconds apart).
fn ms_of(ts: &Value) -> i64 {
    let t = ts.as_str().unwrap();
    let clock = &t[11..23];
    let h: i64 = clock[0..2].parse().unwrap();
    let m: i64 = clock[3..5].parse().unwrap();
    let s: i64 = clock[6..8].parse().unwrap();
    let ms: i64 = clock[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

/// `service_status` events of `service` seen so far: (status, payload).
fn transitions(c: &Client, service: &str) -> Vec<(String, Value)> {
    c.seen
        .iter()
        .filter(|v| v["name"] == "service_status" && v["payload"]["service"] == service)
        .map(|v| (v["payload"]["status"].as_str().unwrap().to_string(), v["payload"].clone()))
        .collect()
}

fn get_logs(c: &mut Client, service: &str) -> Vec<String> {
    let (_, res) = c.call("get_logs", json!({"service": service, "limit": 1000}));
    res["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn issue_12_a_failing_service_is_restarted_with_growing_delays_then_given_up() {
    let (mut s, mut c) = restarting("on-failure", 1, 200, 3);
    // Three restarts, then the fourth exit is a crash loop.
    c.until(T, "crash loop line", |v| {
        v["name"] == "log"
            && v["payload"]["service"] == "crashy"
            && v["payload"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("crash loop: 4 exits in"))
    });
    let seen = transitions(&c, "crashy");
    let statuses: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "starting").count(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == "failed").count(), 4, "{statuses:?}");
    // failed -> starting gaps: the backoff, doubling with at most 20 % jitter.
    let mut delays = Vec::new();
    let mut failed_at = None;
    for (st, p) in &seen {
        match st.as_str() {
            "failed" => {
                failed_at = Some(ms_of(&p["timestamp"]));
                if delays.len() < 3 {
                    let due = p["restart_in_ms"].as_u64().expect("a pending restart says when");
                    assert!((160..=240 << delays.len()).contains(&due), "restart_in_ms {due}");
                } else {
                    assert!(p.get("restart_in_ms").is_none(), "no restart after the crash loop");
                }
                assert_eq!(p["restarts"].as_u64(), Some(delays.len() as u64), "{p}");
            }
            "starting" if failed_at.is_some() => {
                delays.push(ms_of(&p["timestamp"]) - failed_at.take().unwrap());
            }
            _ => {}
        }
    }
    assert_eq!(delays.len(), 3, "{delays:?}");
    assert!(delays[0] >= 150 && delays[1] > delays[0] && delays[2] > delays[1], "{delays:?}");
    // The dependent was started once and never touched again.
    let steady: Vec<String> = transitions(&c, "steady").into_iter().map(|(s, _)| s).collect();
    assert_eq!(steady, vec!["starting", "running"], "{steady:?}");
    let logs = get_logs(&mut c, "crashy");
    assert!(logs.iter().any(|l| l.starts_with("restart 1 in 0.")), "{logs:#?}");
    let (_, res) = c.call("get_snapshot", json!({}));
    let crashy =
        res["data"]["services"].as_array().unwrap().iter().find(|e| e["name"] == "crashy").cloned();
    let want = json!({"name": "crashy", "status": "failed", "restarts": 3, "kind": "daemon", "probe": "none"});
    assert_eq!(crashy, Some(want));
    let (_, res) = c.call("get_timeline", json!({"service": "crashy"}));
    let why = res["data"]["why"].as_str().unwrap();
    assert!(why.starts_with("failed: exited with code 1 after 0."), "{why}");
    assert!(why.ends_with("; crash loop, not restarting"), "{why}");
    let kinds: Vec<&str> = res["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "restart_scheduled").count(), 3, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"crash_loop"));
    assert!(s.shutdown().success());
    // The timeline reached its file too.
    let file = s.jsonl("timeline.jsonl");
    assert!(
        file.iter().any(|e| e["kind"] == "crash_loop" && e["service"] == "crashy"),
        "{file:#?}"
    );
    assert!(file.iter().any(|e| e["kind"] == "stop_requested" && e["by"] == "shutdown"));
}

#[test]
fn issue_12_a_user_stop_during_the_backoff_cancels_the_restart() {
    let (mut s, mut c) = restarting("on-failure", 1, 1500, 5);
    let failed = c.until(T, "crashy failed", |v| {
        v["name"] == "service_status"
            && v["payload"]["service"] == "crashy"
            && v["payload"]["status"] == "failed"
    });
    let due = Instant::now()
        + Duration::from_millis(failed["payload"]["restart_in_ms"].as_u64().unwrap());
    let (ack, res) = c.call("stop_service", json!({"service": "crashy"}));
    assert_eq!(ack["accepted"], true);
    assert_eq!(res["data"], json!({"service": "crashy", "status": "stopped"}));
    c.wait_status("crashy", "stopped", T);
    c.seen.clear();
    // Past the time the restart was due (plus a margin), nothing started: the
    // snapshot's result comes after any event sent before it.
    wait_until(T, "the restart's due time", || Instant::now() > due + Duration::from_millis(500));
    let (_, snap) = c.call("get_snapshot", json!({}));
    let crashy = snap["data"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "crashy")
        .cloned();
    let want = json!({"name": "crashy", "status": "stopped", "restarts": 0, "kind": "daemon", "probe": "none"});
    assert_eq!(crashy, Some(want));
    assert_eq!(transitions(&c, "crashy"), vec![], "nothing after the stop");
    let (_, res) = c.call("get_timeline", json!({"service": "crashy", "limit": 3}));
    let entries = res["data"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries.iter().any(|e| e["kind"] == "stop_requested" && e["by"] == "client"),
        "{entries:#?}"
    );
    assert_eq!(res["data"]["why"], "stopped: restart cancelled by stop_service from a client");
    // A user start begins again (and the next failure is restarted again).
    let (_, res) = c.call("start_service", json!({"service": "crashy"}));
    assert_eq!(res["ok"], true, "{res}");
    s.shutdown();
}

#[test]
fn issue_12_always_restarts_a_clean_exit() {
    let (mut s, mut c) = restarting("always", 0, 100, 5);
    c.until(T, "a second start of crashy", |v| {
        v["name"] == "service_status"
            && v["payload"]["service"] == "crashy"
            && v["payload"]["status"] == "running"
            && v["payload"]["restarts"] == 1
    });
    let seen = transitions(&c, "crashy");
    let stopped = seen.iter().find(|(s, _)| s == "stopped").expect("a clean exit is stopped");
    assert!(stopped.1["restart_in_ms"].as_u64().is_some(), "{:?}", stopped.1);
    assert!(seen.iter().all(|(s, _)| s != "failed"), "{seen:?}");
    let logs = get_logs(&mut c, "crashy");
    assert!(logs.iter().any(|l| l == "exited with code 0"), "{logs:#?}");
    assert!(
        logs.iter().any(|l| l.starts_with("restart 1 in ") && l.ends_with("(always)")),
        "{logs:#?}"
    );
    s.shutdown();
}

/// `get_stats` data for one service.
fn stats_of(c: &mut Client, name: &str) -> Value {
    let (ack, res) = c.call("get_stats", json!({}));
    assert_eq!(ack["accepted"], true, "{ack}");
    let data = &res["data"];
    assert!(data["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let list = data["services"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    list.iter().find(|e| e["name"] == name).cloned().unwrap()
}

fn resources() -> Server {
    let mut s = Server::start("tests/resources.jsonc");
    s.wait_started();
    s
}

#[test]
fn issue_12_cpu_and_memory_count_a_grandchild_that_left_the_session() {
    let mut s = Server::start("tests/spin.jsonc");
    s.wait_started();
    let mut c = connect(&s);
    // The spinner works two generations down, after setsid: the whole tree is
    // the service's. A busy machine may take a moment to give it a core.
    let spin = wait_for(T, "spin at >= 0.8 cores", || {
        let st = stats_of(&mut c, "spin");
        (st["cpu"].as_f64().unwrap() >= 0.8).then_some(st)
    });
    assert_eq!(spin["processes"], 3, "{spin}");
    assert!(spin["cpu_seconds"].as_f64().unwrap() > 0.0);
    // Seen: the core goes back to the other tests running beside this one.
    let (_, res) = c.call("stop_service", json!({"service": "spin"}));
    assert_eq!(res["data"]["status"], "stopped", "{res}");
    let gone = stats_of(&mut c, "spin");
    assert_eq!((gone["processes"].clone(), gone["cpu"].clone()), (json!(0), json!(0.0)));
    let hold = wait_for(T, "hold at >= 100 MiB", || {
        let st = stats_of(&mut c, "hold");
        (st["rss_bytes"].as_u64().unwrap() >= 100 << 20).then_some(st)
    });
    assert_eq!(hold["processes"], 3, "{hold}");
    assert!(hold["uptime_ms"].as_u64().unwrap() > 0);
    let never = stats_of(&mut c, "never");
    assert_eq!(
        never,
        json!({"name":"never","cpu":0.0,"rss_bytes":0,"processes":0,"cpu_seconds":0.0,"restarts":0,"uptime_ms":0})
    );
    // watch_stats: events every interval, and they stop when disabled.
    let (ack, res) = c.call("watch_stats", json!({"enabled": true, "interval_ms": 250}));
    assert_eq!((ack["accepted"].clone(), res["ok"].clone()), (json!(true), json!(true)));
    let first = c.until(T, "service_stats", |v| v["name"] == "service_stats");
    let second = c.until(T, "another service_stats", |v| v["name"] == "service_stats");
    let gap = ms_of(&second["payload"]["timestamp"]) - ms_of(&first["payload"]["timestamp"]);
    assert!(gap >= 200, "events {gap} ms apart");
    assert_eq!(second["payload"]["services"].as_array().unwrap().len(), 3);
    let (_, res) = c.call("watch_stats", json!({"enabled": false}));
    assert_eq!(res["ok"], true);
}

#[test]
fn issue_12_a_tree_of_500_processes_and_zombies_are_read_without_failing() {
    let mut s = Server::start("tests/big_tree.jsonc");
    s.wait_started();
    let mut c = connect(&s);
    let many = wait_for(Duration::from_secs(25), "501 processes in many", || {
        let st = stats_of(&mut c, "many");
        (st["processes"] == 501).then_some(st)
    });
    assert!(many["rss_bytes"].as_u64().unwrap() > 500 * 100_000, "{many}");
    wait_until(T, "undead's children exited", || {
        get_logs(&mut c, "undead").iter().any(|l| l.starts_with("zombie: 3 children left"))
    });
    // Zombies are not processes any more; their parent is.
    assert_eq!(stats_of(&mut c, "undead")["processes"], 1);
    let (_, res) = c.call("stop_service", json!({"service": "many"}));
    assert_eq!(res["data"]["status"], "stopped", "{res}");
    let gone = stats_of(&mut c, "many");
    assert_eq!((gone["processes"].clone(), gone["rss_bytes"].clone()), (json!(0), json!(0)));
    let (code, _, text) = http_get(&s.addr(), "/metrics", Some(&s.token));
    assert_eq!(code, 200);
    assert_eq!(metric(&text, "flowlayer_service_processes{service=\"undead\"}"), 1.0);
    assert!(s.shutdown().success());
}

#[test]
fn issue_12_stats_commands_follow_the_error_rules() {
    let s = resources();
    let mut c = Client::connect(&s.addr(), &s.token);
    let hello = c.recv(T).unwrap();
    let caps = hello["payload"]["capabilities"].as_array().unwrap();
    for name in ["get_stats", "watch_stats", "get_timeline"] {
        assert!(caps.iter().any(|c| c == name), "{name} in {caps:?}");
    }
    for (name, payload, code) in [
        ("watch_stats", json!({"enabled": true, "interval_ms": 100}), "invalid_payload"),
        ("watch_stats", json!({"enabled": true, "interval_ms": 249}), "invalid_payload"),
        ("watch_stats", json!({"enabled": true, "interval_ms": "1s"}), "invalid_payload"),
        ("watch_stats", json!({}), "invalid_payload"),
        ("watch_stats", json!({"enabled": "yes"}), "invalid_payload"),
        ("get_timeline", json!({"limit": 0}), "invalid_payload"),
        ("get_timeline", json!({"service": 7}), "invalid_payload"),
        ("get_timeline", json!({"service": "ghost"}), "unknown_service"),
    ] {
        let (ack, _) = c.call(name, payload.clone());
        assert_eq!(ack["accepted"], false, "{name} {payload}");
        assert_eq!(ack["error"]["code"], code, "{name} {payload}: {ack}");
    }
    // The connection is still usable.
    let (_, res) = c.call("get_timeline", json!({"limit": 5}));
    let entries = res["data"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert!(res["data"].get("why").is_none(), "why only for one service");
    let stamps: Vec<&str> = entries.iter().map(|e| e["timestamp"].as_str().unwrap()).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "ascending: {stamps:?}");
}

#[test]
fn issue_12_why_names_the_dependency_and_its_probe_error() {
    let vars = [("P1", free_port().to_string())];
    let s = Server::start_with("tests/waiting.jsonc", Opts { vars: &vars, ..Opts::default() });
    let mut c =
        wait_for(T, "the session API", || TcpStream::connect(s.addr()).ok().map(|_| connect(&s)));
    let why = wait_for(T, "a why with a count", || {
        let (_, res) = c.call("get_timeline", json!({"service": "api"}));
        let why = res["data"]["why"].as_str().unwrap_or("").to_string();
        why.contains('×').then_some(why)
    });
    let port = &vars[0].1;
    let want =
        format!("waiting for db: running, not ready: tcp 127.0.0.1:{port}: connection refused ×");
    assert!(why.starts_with(&want), "{why}");
    let (_, res) = c.call("get_timeline", json!({"service": "db"}));
    let entries = res["data"]["entries"].as_array().unwrap();
    let probe: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "probe").collect();
    assert_eq!(probe.len(), 1, "one entry while the error stays the same: {entries:#?}");
    assert_eq!(probe[0]["error"], "connection refused");
    let (_, res) = c.call("get_timeline", json!({"service": "api"}));
    let waiting = &res["data"]["entries"][0];
    assert_eq!(waiting["kind"], "waiting", "{waiting}");
    assert_eq!(waiting["dependencies"], json!([{"service": "db", "status": "starting"}]));
}

#[test]
fn issue_12_metrics_pass_promtool_and_match_get_stats() {
    let s = resources();
    let mut c = connect(&s);
    let a = s.addr();
    assert_eq!(http_get(&a, "/metrics", None).0, 401);
    assert_eq!(http_get(&a, "/metrics", Some("wrong")).0, 403);
    // Wait until the holder holds its memory (and said so): then its RSS is steady.
    wait_until(T, "hold at 100 MiB", || {
        stats_of(&mut c, "hold")["rss_bytes"].as_u64().unwrap() >= 100 << 20
            && get_logs(&mut c, "hold").iter().any(|l| l.starts_with("alloc: holding"))
    });
    let (code, head, text) = http_get(&a, "/metrics", Some(&s.token));
    assert_eq!(code, 200, "{head}\n{text}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
    promtool_check(&text);
    let hold = stats_of(&mut c, "hold");
    let rss = metric(&text, "flowlayer_service_resident_memory_bytes{service=\"hold\"}");
    let stats_rss = hold["rss_bytes"].as_f64().unwrap();
    assert!((rss - stats_rss).abs() / stats_rss < 0.05, "metrics {rss}, get_stats {stats_rss}");
    assert_eq!(metric(&text, "flowlayer_service_processes{service=\"hold\"}"), 3.0);
    assert_eq!(
        metric(&text, "flowlayer_service_processes{service=\"idle\"}"),
        stats_of(&mut c, "idle")["processes"].as_f64().unwrap()
    );
    let idle_secs = metric(&text, "flowlayer_service_cpu_seconds_total{service=\"idle\"}");
    assert!((idle_secs - stats_of(&mut c, "idle")["cpu_seconds"].as_f64().unwrap()).abs() < 0.05);
    assert_eq!(metric(&text, "flowlayer_service_up{service=\"idle\"}"), 1.0);
    assert_eq!(metric(&text, "flowlayer_service_status{service=\"never\",status=\"failed\"}"), 1.0);
    assert_eq!(
        metric(&text, "flowlayer_service_status{service=\"later\",status=\"stopped\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "flowlayer_service_status{service=\"later\",status=\"running\"}"),
        0.0
    );
    assert!(metric(&text, "flowlayer_log_lines_total{service=\"hold\",stream=\"stdout\"}") >= 3.0);
    assert_eq!(metric(&text, "flowlayer_sessions"), 1.0);
    assert!(metric(&text, "process_resident_memory_bytes") > 0.0);
    assert!(metric(&text, "process_open_fds") > 0.0);
    assert!(text.contains("# TYPE flowlayer_guard_incidents_total counter"));
}
