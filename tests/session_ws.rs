use crate::support::ws::Client;
use crate::support::{free_port, wait_until, Opts, Server};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn session() -> Server {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/session.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    s
}

fn connect(s: &Server) -> Client {
    let mut c = Client::connect(&s.addr(), &s.token);
    let hello = c.recv(T).expect("hello");
    assert_eq!(hello["type"], "event");
    assert_eq!(hello["name"], "hello");
    let snap = c.recv(T).expect("snapshot");
    assert_eq!(snap["name"], "snapshot", "{snap}");
    c
}

#[test]
fn handshake_sends_hello_then_a_sorted_snapshot() {
    let s = session();
    let mut c = Client::connect(&s.addr(), &s.token);
    let hello = c.recv(T).unwrap();
    assert_eq!(hello["name"], "hello");
    let p = &hello["payload"];
    assert_eq!(p["protocol_version"], 1);
    assert_eq!(p["server"], "flowlayer");
    assert_eq!(p["server_version"], "1.0.0");
    assert_eq!(p["instance_id"].as_str().unwrap().len(), 36);
    let caps: Vec<&str> =
        p["capabilities"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let served = [
        "get_snapshot",
        "get_logs",
        "start_service",
        "stop_service",
        "restart_service",
        "start_all",
        "stop_all",
        "get_stats",
        "watch_stats",
        "get_timeline",
        "get_incidents",
    ];
    assert_eq!(caps, served, "exactly the commands the server serves");
    assert!(hello.get("id").is_none(), "fields that do not apply are omitted");
    let snap = c.recv(T).unwrap();
    assert_eq!(snap["name"], "snapshot");
    let names: Vec<&str> = snap["payload"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["once", "stubborn", "tick", "web"]);
    let status = |n: &str| {
        snap["payload"]["services"].as_array().unwrap().iter().find(|s| s["name"] == n).unwrap()
            ["status"]
            .clone()
    };
    assert_eq!(status("web"), "ready");
    assert_eq!(status("once"), "stopped");
}

#[test]
fn stop_start_restart_drive_real_processes_with_every_transition() {
    let s = session();
    let mut c = connect(&s);
    c.seen.clear();
    let (ack, res) = c.call("stop_service", json!({"service": "tick"}));
    assert_eq!(ack, json!({"accepted": true}));
    assert_eq!(res, json!({"ok": true, "data": {"service": "tick", "status": "stopped"}}));
    assert_eq!(c.statuses_seen("tick"), vec!["stopping", "stopped"]);
    c.seen.clear();
    let (_, res) = c.call("start_service", json!({"service": "tick"}));
    assert_eq!(res["data"]["status"], "running", "{res}");
    assert_eq!(c.statuses_seen("tick"), vec!["starting", "running"]);
    c.seen.clear();
    let (_, res) = c.call("restart_service", json!({"service": "web"}));
    assert_eq!(res["ok"], true, "{res}");
    c.wait_status("web", "ready", T);
    assert_eq!(c.statuses_seen("web"), vec!["stopping", "stopped", "starting", "running"]);
    // start on a running service: ok, nothing changes.
    let (_, res) = c.call("start_service", json!({"service": "tick"}));
    assert_eq!(res["data"]["status"], "running");
    // stop on a stopped oneshot: ok at once.
    let (_, res) = c.call("stop_service", json!({"service": "once"}));
    assert_eq!(res["data"]["status"], "stopped");
}

#[test]
fn rejections_and_protocol_errors_keep_the_connection_usable() {
    let s = session();
    let mut c = connect(&s);
    let (ack, _) = c.call("start_service", json!({"service": "ghost"}));
    assert_eq!(ack["accepted"], false);
    assert_eq!(ack["error"]["code"], "unknown_service");
    let (ack, _) = c.call("fly", Value::Null);
    assert_eq!(ack["error"]["code"], "unknown_command");
    let (ack, _) = c.call("get_logs", json!({"limit": 0}));
    assert_eq!(ack["error"]["code"], "invalid_payload");
    let (ack, _) = c.call("get_logs", json!({"before_seq": -5}));
    assert_eq!(ack["error"]["code"], "invalid_payload");
    let (ack, _) = c.call("stop_service", json!({"service": 7}));
    assert_eq!(ack["error"]["code"], "invalid_payload");
    let cases = [
        ("not json", "invalid_json"),
        ("[1,2]", "invalid_json"),
        (r#"{"id":"x"}"#, "missing_type"),
        (r#"{"type":"telepathy"}"#, "unknown_type"),
        (r#"{"type":"result","id":"r1"}"#, "unsupported_message_type"),
        (r#"{"type":"command","name":"get_snapshot"}"#, "missing_id"),
        (r#"{"type":"command","id":null,"name":"get_snapshot"}"#, "invalid_id"),
        (r#"{"type":"command","id":"n1"}"#, "missing_name"),
    ];
    for (text, code) in cases {
        c.send_text(text);
        let v = c.until(T, code, |v| v["type"] == "error");
        assert_eq!(v["payload"]["code"], code, "{text}");
    }
    let v = {
        c.send_text(r#"{"type":"command","id":"n1"}"#);
        c.until(T, "error with id", |v| v["type"] == "error")
    };
    assert_eq!(v["id"], "n1", "the id is echoed when the bad message had one");
    c.ws.send(tungstenite::Message::binary(vec![1u8, 2, 3])).unwrap();
    let v = c.until(T, "binary error", |v| v["type"] == "error");
    assert_eq!(v["payload"]["code"], "invalid_json");
    // Still usable: a payload-less command with a null payload.
    c.send_text(r#"{"type":"command","id":"snap","name":"get_snapshot","payload":null}"#);
    let r = c.result("snap", T);
    assert_eq!(r["payload"]["ok"], true);
    assert_eq!(r["payload"]["data"]["services"].as_array().unwrap().len(), 4);
}

#[test]
fn busy_rules_and_stop_grace_on_a_stubborn_service() {
    let s = session();
    let mut c = connect(&s);
    let id = c.command("stop_service", json!({"service": "stubborn"}));
    assert_eq!(c.ack(&id)["payload"]["accepted"], true);
    c.wait_status("stubborn", "stopping", T);
    let (ack, _) = c.call("stop_service", json!({"service": "stubborn"}));
    assert_eq!(ack["error"]["code"], "service_busy");
    let (ack, _) = c.call("start_service", json!({"service": "stubborn"}));
    assert_eq!(ack["error"]["code"], "service_busy");
    let (ack, _) = c.call("restart_service", json!({"service": "stubborn"}));
    assert_eq!(ack["error"]["code"], "service_busy");
    // Other commands are not held up by the long stop.
    let (_, res) = c.call("get_snapshot", Value::Null);
    assert_eq!(res["ok"], true);
    let res = c.result(&id, T);
    assert_eq!(res["payload"]["data"]["status"], "stopped");
}

#[test]
fn stop_all_and_start_all_walk_the_waves() {
    let s = session();
    let mut c = connect(&s);
    let (_, res) = c.call("stop_all", Value::Null);
    assert_eq!(res["ok"], true, "{res}");
    let acting: Vec<&str> =
        res["data"]["services"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(acting, vec!["stubborn", "tick", "web"]);
    let (ack, _) = c.call("start_all", Value::Null);
    assert_eq!(ack["error"]["code"], "service_busy", "stop_all is still in progress (stubborn)");
    c.wait_status("stubborn", "stopped", T);
    c.wait_status("tick", "stopped", T);
    let (_, res) = c.call("start_all", Value::Null);
    assert_eq!(res["ok"], true, "{res}");
    c.wait_status("web", "ready", T);
    c.wait_status("tick", "running", T);
}

#[test]
fn many_clients_all_get_every_status_change() {
    let s = session();
    let mut clients: Vec<Client> = (0..50).map(|_| connect(&s)).collect();
    let (_, res) = clients[0].call("restart_service", json!({"service": "tick"}));
    assert_eq!(res["ok"], true);
    for c in clients.iter_mut() {
        c.wait_status("tick", "stopping", T);
        c.wait_status("tick", "running", T);
    }
}

#[test]
fn a_stalled_client_does_not_hold_back_the_others_or_the_children() {
    let vars = [("LINES", "200000".to_string())];
    let mut s =
        Server::start_with("tests/flood_gated.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_stdout("boot: session API", T);
    // The stalled client never reads a byte; the live one reads everything.
    let stalled = Client::connect(&s.addr(), &s.token);
    let mut live = connect(&s);
    std::fs::write(s.dir.join("go"), "go").unwrap();
    s.wait_stdout("flood | [flowlayer] completed", T);
    live.wait_status("flood", "stopped", T);
    assert_eq!(live.statuses_seen("flood"), vec!["starting", "running"]);
    assert_eq!(live.statuses_seen("gate"), vec!["stopped"]);
    // The live client can still talk.
    let (_, res) = live.call("get_snapshot", Value::Null);
    assert_eq!(res["ok"], true);
    drop(stalled);
    assert!(s.shutdown().success());
    let text = std::fs::read_to_string(s.dir.join("logs/flood.jsonl")).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("FLOOD1:")).count(), 200_000);
}

/// Starts a fixture whose burst waits for `go`, connects a client, then lets it go.
fn start_gated(fixture: &str) -> (Server, Client) {
    let (s, c, _) = start_gated_with(fixture, 0);
    (s, c)
}

/// `start_gated` with `others` more clients connected (returned, so they stay).
fn start_gated_with(fixture: &str, others: usize) -> (Server, Client, Vec<Client>) {
    let mut s = Server::start(fixture);
    s.wait_stdout("boot: session API", T);
    let c = connect(&s);
    let rest = (0..others).map(|_| connect(&s)).collect();
    std::fs::write(s.dir.join("go"), "go").unwrap();
    (s, c, rest)
}

/// Seqs of the stdout `log` events of `service` a client has seen, in order.
fn live_stdout_seqs(c: &Client, service: &str) -> Vec<u64> {
    c.seen
        .iter()
        .filter(|v| v["name"] == "log" && v["payload"]["service"] == service)
        .filter(|v| v["payload"]["stream"] == "stdout")
        .map(|v| v["payload"]["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_burst_beyond_the_live_log_budget_is_streamed_in_part_and_fetched_whole() {
    let (_s, mut c) = start_gated("tests/burst_gated.jsonc");
    // 4,000 frames of ~1.1 KB come in batches of ~250 that the log queue of a
    // client that reads (2 MiB) takes, so without a budget every one would
    // arrive; the marker comes after all of them.
    let marker = c
        .until(T, "the marker line", |v| v["name"] == "log" && v["payload"]["service"] == "marker");
    let live = live_stdout_seqs(&c, "burst");
    assert!(!live.is_empty(), "the start of the burst is streamed");
    assert!(live.len() < 4000, "the budget held back part of the burst: {} sent", live.len());
    assert!(live.windows(2).all(|w| w[0] < w[1]));
    // What the stream missed is all there for get_logs.
    let upto = marker["payload"]["seq"].as_u64().unwrap();
    let p = json!({"service": "burst", "before_seq": upto, "limit": 5000});
    let (_, res) = c.call("get_logs", p);
    assert_eq!(res["data"]["truncated"], false);
    let fetched: Vec<u64> = res["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["service"] == "burst" && e["stream"] == "stdout")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(fetched.len(), 4000);
    assert!(live.iter().all(|q| fetched.contains(q)), "the streamed lines are the same entries");
}

#[test]
fn the_end_of_a_burst_reaches_a_live_view_even_when_nothing_follows_it() {
    let (_s, mut c) = start_gated("tests/tail_gated.jsonc");
    // The burst spends the budget long before its last line is read; that line
    // comes once the budget has refilled, with no later line to carry it.
    let last = c.until(T, "the burst's last line", |v| {
        v["name"] == "log"
            && v["payload"]["message"].as_str().is_some_and(|m| m.starts_with("FLOOD1:0003999:"))
    });
    let live = live_stdout_seqs(&c, "burst");
    let last = last["payload"]["seq"].as_u64().unwrap();
    assert!(live.len() < 3999, "the budget held back part of the burst: {} sent", live.len() + 1);
    assert!(live.windows(2).all(|w| w[0] < w[1]), "live events keep seq order");
    assert!(live.last().is_some_and(|q| *q < last), "the last line comes last");
}

/// On-CPU time of all of a process's threads so far, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e6
}

#[test]
fn a_line_longer_than_every_sessions_budget_share_leaves_the_server_idle() {
    let (s, mut c, _others) = start_gated_with("tests/long_line_gated.jsonc", 19);
    c.wait_status("long", "running", T);
    // Once the line has been read and offered, nothing is left to do.
    wait_until(T, "the line in the log store", || {
        let (_, res) = c.call("get_logs", json!({"service": "long", "limit": 5}));
        res["data"]["entries"].as_array().is_some_and(|e| !e.is_empty())
    });
    let before = cpu_ms(s.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ms(s.child.id()) - before;
    assert!(spent < 100.0, "the server used {spent:.0} ms of CPU in 1 s with nothing to do");
}

#[test]
fn pings_are_answered_and_oversized_messages_close_with_1009() {
    let s = session();
    let mut c = connect(&s);
    c.ws.send(tungstenite::Message::Ping(b"hi".to_vec().into())).unwrap();
    let pong = loop {
        match c.ws.read().unwrap() {
            tungstenite::Message::Pong(p) => break p,
            _ => continue,
        }
    };
    assert_eq!(&pong[..], b"hi");
    let big = format!(
        r#"{{"type":"command","id":"x","name":"get_snapshot","pad":"{}"}}"#,
        "x".repeat(1100 * 1024)
    );
    // The server may close before the whole message is sent; what counts is the close.
    let _ = c.ws.send(tungstenite::Message::text(big));
    let code = loop {
        match c.ws.read() {
            Ok(tungstenite::Message::Close(f)) => break f.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    };
    assert_eq!(code, Some(1009));
}
