use crate::support::ws::Client;
use crate::support::{free_port, temp_dir, Opts, Server};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn connect(s: &Server) -> Client {
    let mut c = Client::connect(&s.addr(), &s.token);
    c.until(T, "snapshot", |v| v["name"] == "snapshot");
    c
}

fn seqs(res: &Value) -> Vec<u64> {
    res["data"]["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[test]
fn limits_come_from_the_client_then_the_config_then_500() {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/session.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    s.wait_stdout("tick     | tick 100", T);
    let mut c = connect(&s);
    let (_, all) = c.call("get_logs", Value::Null);
    assert_eq!(all["data"]["effective_limit"], 80, "logView.all.maxEntries");
    assert_eq!(seqs(&all).len(), 80);
    assert_eq!(all["data"]["truncated"], true);
    let (_, tick) = c.call("get_logs", json!({"service": "tick"}));
    assert_eq!(tick["data"]["effective_limit"], 30, "service logView");
    let (_, web) = c.call("get_logs", json!({"service": "web"}));
    assert_eq!(web["data"]["effective_limit"], 50, "global logView");
    let (_, five) = c.call("get_logs", json!({"service": "tick", "limit": 5}));
    let s5 = seqs(&five);
    assert_eq!(s5.len(), 5);
    assert!(s5.windows(2).all(|w| w[0] < w[1]), "ascending");
    let e = &five["data"]["entries"][0];
    for k in ["seq", "service", "phase", "stream", "message", "timestamp"] {
        assert!(e.get(k).is_some(), "entry lacks {k}: {e}");
    }
    assert!(five["data"]["entries"].as_array().unwrap().iter().all(|e| e["service"] == "tick"));
    // after_seq and before_seq bound the range; the newest `limit` are returned.
    let (_, mid) = c.call(
        "get_logs",
        json!({"service": "tick", "after_seq": s5[0], "before_seq": s5[4], "limit": 100}),
    );
    assert_eq!(seqs(&mid), vec![s5[1], s5[2], s5[3]]);
    assert_eq!(mid["data"]["truncated"], false);
    let (_, newest) =
        c.call("get_logs", json!({"service": "tick", "before_seq": s5[4], "limit": 2}));
    assert_eq!(seqs(&newest), vec![s5[2], s5[3]]);
    assert_eq!(newest["data"]["truncated"], true);
    // Merged view is in seq order across services.
    let (_, merged) = c.call("get_logs", json!({"limit": 1000}));
    let m = seqs(&merged);
    assert!(m.windows(2).all(|w| w[0] < w[1]));
    assert!(merged["data"]["entries"].as_array().unwrap().iter().any(|e| e["service"] == "web"));
}

#[test]
fn paging_back_reaches_into_the_jsonl_history() {
    let mut s = Server::start_with("tests/history.jsonc", Opts::default());
    s.wait_started();
    s.wait_stdout("many | line 12000", T);
    let mut c = connect(&s);
    // Walk back from the newest entry to the first line, 1000 at a time.
    let mut before: Option<u64> = None;
    let mut got: Vec<String> = Vec::new();
    loop {
        let mut p = json!({"service": "many", "limit": 1000});
        if let Some(b) = before {
            p["before_seq"] = json!(b);
        }
        let (_, res) = c.call("get_logs", p);
        let entries = res["data"]["entries"].as_array().unwrap().clone();
        if entries.is_empty() {
            break;
        }
        before = entries[0]["seq"].as_u64();
        let mut page: Vec<String> =
            entries.iter().map(|e| e["message"].as_str().unwrap().to_string()).collect();
        page.append(&mut got);
        got = page;
        if res["data"]["truncated"] == false {
            break;
        }
    }
    let expect: Vec<String> = (1..=12000).map(|i| format!("line {i}")).collect();
    assert_eq!(got, expect);
    // The merged view pages into all.jsonl the same way.
    let b = before.unwrap() + 5;
    let (_, res) = c.call("get_logs", json!({"before_seq": b, "limit": 10}));
    let on_disk: Vec<u64> = crate::support::read_jsonl(&s.dir.join("logs/all.jsonl"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .filter(|q| *q < b)
        .collect();
    assert_eq!(seqs(&res), on_disk[on_disk.len().saturating_sub(10)..].to_vec());
}

#[test]
fn a_restarted_server_keeps_seq_increasing_for_a_reconnecting_client() {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/session.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    let mut c = connect(&s);
    let (_, res) = c.call("get_logs", json!({"limit": 1}));
    let last = seqs(&res)[0];
    let first_id = {
        let mut c2 = Client::connect(&s.addr(), &s.token);
        c2.recv(T).unwrap()["payload"]["instance_id"].clone()
    };
    assert!(s.shutdown().success());
    let dir = s.dir.clone();
    std::mem::forget(s);
    let mut s2 = Server::start_with(
        "tests/session.jsonc",
        Opts { vars: &vars, dir: Some(dir), ..Opts::default() },
    );
    s2.wait_started();
    let mut c = Client::connect(&s2.addr(), &s2.token);
    let hello = c.recv(T).unwrap();
    assert_ne!(hello["payload"]["instance_id"], first_id, "a new instance id tells the client");
    c.until(T, "snapshot", |v| v["name"] == "snapshot");
    let (_, res) = c.call("get_logs", json!({"after_seq": last, "limit": 100000}));
    let after = seqs(&res);
    assert!(!after.is_empty());
    assert!(after.iter().all(|s| *s > last));
}

#[test]
fn a_result_frame_stays_under_8_mib() {
    let mut s = Server::start_with("tests/big.jsonc", Opts::default());
    s.wait_started();
    let mut c = connect(&s);
    crate::support::wait_until(T, "200 big lines", || {
        let (_, r) = c.call("get_logs", json!({"service": "big", "limit": 1, "after_seq": 0}));
        r["data"]["entries"][0]["message"].as_str().is_some_and(|m| m.starts_with("line 200x"))
    });
    let id = c.command("get_logs", json!({"service": "big", "limit": 1000}));
    c.ack(&id);
    let res = c.result(&id, T);
    let size = res.to_string().len();
    assert!(size < 8 * 1024 * 1024, "result of {size} bytes");
    let entries = res["payload"]["data"]["entries"].as_array().unwrap();
    assert!(entries.len() > 100 && entries.len() < 200, "{} entries", entries.len());
    assert_eq!(res["payload"]["data"]["truncated"], true);
    // The newest are kept: the last one is line 200.
    assert!(entries.last().unwrap()["message"].as_str().unwrap().starts_with("line 200x"));
}

/// JSONL lines as an earlier run of the server wrote them: `service` printed
/// `old <seq>` at each seq.
fn earlier_run(service: &str, seqs: std::ops::RangeInclusive<u64>) -> String {
    seqs.map(|seq| {
        format!(
            r#"{{"seq":{seq},"service":"{service}","phase":"running","stream":"stdout","message":"old {seq}","timestamp":"2026-11-27T14:55:21.123Z"}}"#
        ) + "\n"
    })
    .collect()
}

/// A logs directory holding `text` in `all.jsonl` and in `<service>.jsonl`.
fn history_dir(tag: &str, service: &str, text: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag).keep();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("logs/all.jsonl"), text).unwrap();
    std::fs::write(dir.join(format!("logs/{service}.jsonl")), text).unwrap();
    dir
}

/// Issue 14 item 6: an earlier run ended in the middle of a line (a full disk,
/// a kill). That line is skipped and counted, never copied into a frame nor
/// glued to the next run's first line, and paging back goes on into the
/// earlier run.
#[test]
fn issue_14_a_line_an_earlier_run_left_cut_is_skipped_and_paging_reaches_that_run() {
    let mut text = earlier_run("many", 1..=3);
    text.push_str(&earlier_run("many", 4..=4)[..40]);
    let dir = history_dir("cut-history", "many", &text);
    let mut s =
        Server::start_with("tests/history.jsonc", Opts { dir: Some(dir), ..Opts::default() });
    s.wait_started();
    s.wait_stdout("many | line 12000", T);
    let mut c = connect(&s);
    let mut before: Option<u64> = None;
    let mut got: Vec<String> = Vec::new();
    let mut damaged = 0;
    loop {
        let mut p = json!({"service": "many", "limit": 1000});
        if let Some(b) = before {
            p["before_seq"] = json!(b);
        }
        // Each frame parses as JSON (the client helper insists).
        let (_, res) = c.call("get_logs", p);
        damaged += res["data"]["damaged"].as_u64().unwrap_or(0);
        let entries = res["data"]["entries"].as_array().unwrap().clone();
        if entries.is_empty() {
            break;
        }
        before = entries[0]["seq"].as_u64();
        let mut page: Vec<String> =
            entries.iter().map(|e| e["message"].as_str().unwrap().to_string()).collect();
        page.append(&mut got);
        got = page;
        if res["data"]["truncated"] == false {
            break;
        }
    }
    let mut expect: Vec<String> = (1..=3).map(|i| format!("old {i}")).collect();
    expect.extend((1..=12000).map(|i| format!("line {i}")));
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "first lines: {:?}", &got[..5]);
    assert_eq!(damaged, 1, "the cut line is counted once");
    assert!(s.shutdown().success());
    // The cut line stands alone; every other line of the files is a whole entry.
    for file in ["logs/many.jsonl", "logs/all.jsonl"] {
        let text = std::fs::read_to_string(s.dir.join(file)).unwrap();
        let bad: Vec<&str> =
            text.lines().filter(|l| serde_json::from_str::<Value>(l).is_err()).collect();
        assert_eq!(bad, vec![&earlier_run("many", 4..=4)[..40]], "{file}");
    }
}

/// Issue 14 item 6: a last line in another JSON shape (spaces) still counts
/// when the next run picks its first seq, so seq never goes backwards.
#[test]
fn issue_14_seq_continues_after_a_last_line_that_is_json_but_not_ours() {
    let high = 5_000_000_000_000_000u64; // far above boot time x 1000
    let mut text = earlier_run("api", high - 10..=high - 10);
    text.push_str(&format!(
        r#"{{"seq": {high}, "service": "api", "phase": "running", "stream": "stdout", "message": "spaced", "timestamp": "2026-11-27T14:55:21.123Z"}}"#
    ));
    text.push('\n');
    let dir = history_dir("spaced-history", "api", &text);
    let mut s =
        Server::start_with("tests/history_runs.jsonc", Opts { dir: Some(dir), ..Opts::default() });
    s.wait_started();
    s.wait_stdout("api | line 5", T);
    let mut c = connect(&s);
    // The newest page is this run's, and says there is more.
    let (_, res) = c.call("get_logs", json!({"service": "api", "limit": 100}));
    let this_run = seqs(&res);
    assert_eq!(this_run.len(), 5, "{res}");
    assert!(this_run[0] > high && this_run.windows(2).all(|w| w[0] < w[1]), "{this_run:?}");
    assert_eq!(res["data"]["truncated"], true);
    // Paging back reaches the earlier run, the spaced line in our shape.
    let p = json!({"service": "api", "before_seq": this_run[0], "limit": 100});
    let (_, res) = c.call("get_logs", p);
    assert_eq!(seqs(&res), vec![high - 10, high], "{res}");
    assert_eq!(
        res["data"]["entries"][1],
        json!({"seq": high, "service": "api", "phase": "running", "stream": "stdout",
               "message": "spaced", "timestamp": "2026-11-27T14:55:21.123Z"})
    );
    assert_eq!(res["data"]["truncated"], false);
    assert!(res["data"].get("damaged").is_none() && res["data"].get("history_error").is_none());
}

/// Issue 14 item 6: history on disk that cannot be read makes the page say
/// so (`truncated` and the `history_error` extension), with what memory holds.
#[test]
fn issue_14_a_history_file_that_cannot_be_read_is_said_in_the_page() {
    // An earlier run in all.jsonl, and a directory where api.jsonl should
    // be: reading it fails (for root too).
    let dir = history_dir("unreadable-history", "other", &earlier_run("api", 1..=3));
    std::fs::create_dir_all(dir.join("logs/api.jsonl")).unwrap();
    let opts = Opts { dir: Some(dir), ..Opts::default() };
    let mut s = Server::start_with("tests/history_runs.jsonc", opts);
    s.wait_started();
    s.wait_stdout("api | line 5", T);
    let mut c = connect(&s);
    let (_, res) = c.call("get_logs", json!({"service": "api", "limit": 100}));
    let first = seqs(&res)[0];
    assert_eq!((seqs(&res).len(), &res["data"]["truncated"]), (5, &json!(true)), "{res}");
    assert!(res["data"].get("history_error").is_none(), "memory's page reads no file");
    // Paging back needs the file, which cannot be read: the page says so.
    for p in [
        json!({"service": "api", "before_seq": first, "limit": 100}),
        json!({"service": "api", "before_seq": first + 2, "limit": 100}),
    ] {
        let (_, res) = c.call("get_logs", p);
        assert_eq!(res["data"]["truncated"], true);
        let why = res["data"]["history_error"].as_str().unwrap_or_default();
        assert!(why.starts_with("cannot read ") && why.contains("api.jsonl: "), "{res}");
        assert!(seqs(&res).iter().all(|s| *s >= first), "what memory holds: {res}");
    }
}
