use crate::support::ws::{self, Client};
use crate::support::{proc_status, wait_for, wait_until, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
/// `session::listen::MAX_UNAUTHENTICATED`, `MAX_SESSIONS`, `FIRST_DELAY`.
const MAX_UNAUTHENTICATED: usize = 16;
const MAX_SESSIONS: usize = 64;
const FIRST_DELAY: Duration = Duration::from_millis(200);

fn quiet() -> Server {
    let mut s = Server::start("tests/quiet.jsonc");
    s.wait_started();
    s
}

/// Sends `head` (the request line and headers, without the blank line that ends
/// them) and reads the whole answer: (status, JSON body, time to the answer).
fn ask(addr: &str, head: &str) -> (u16, Value, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    let t0 = Instant::now();
    write!(s, "{head}\r\n\r\n").unwrap();
    let (code, body) = answer(&mut s);
    (code, body, t0.elapsed())
}

/// The status and JSON body of the answer on `s`, read to its end.
fn answer(s: &mut TcpStream) -> (u16, Value) {
    s.set_read_timeout(Some(T)).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn health(token: &str) -> String {
    format!("GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}")
}

/// A connection that sends half a request head and then nothing.
fn half_open(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    s
}

fn connect(s: &Server) -> Client {
    let mut c = Client::connect(&s.addr(), &s.token);
    assert_eq!(c.recv(T).expect("hello")["name"], "hello");
    assert_eq!(c.recv(T).expect("snapshot")["name"], "snapshot");
    c
}

#[test]
fn issue_14_half_open_connections_take_no_thread_and_a_real_client_still_gets_in() {
    let s = quiet();
    let pid = s.child.id();
    let threads = proc_status(pid, "Threads");
    let mut stalled: Vec<TcpStream> = (0..300).map(|_| half_open(&s.addr())).collect();
    // The oldest are pushed out first: once this one is, every one has been accepted.
    let last_pushed_out = stalled.len() - MAX_UNAUTHENTICATED - 1;
    let (code, body) = answer(&mut stalled[last_pushed_out]);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"]["code"], "busy");
    assert_eq!(proc_status(pid, "Threads"), threads, "no thread for an unauthenticated connection");
    // Meanwhile a real client is answered, and gets a session.
    let (code, ..) = ask(&s.addr(), &health(&s.token));
    assert_eq!(code, 200);
    let _c = connect(&s);
    assert_eq!(proc_status(pid, "Threads"), threads + 1, "one thread for the session");
}

#[test]
fn issue_14_past_the_caps_the_answer_is_503_busy() {
    let s = quiet();
    // Heads being read: a new connection pushes out the one waiting longest.
    let mut waiting: Vec<TcpStream> =
        (0..MAX_UNAUTHENTICATED).map(|_| half_open(&s.addr())).collect();
    let _newest = half_open(&s.addr());
    let (code, body) = answer(&mut waiting[0]);
    assert_eq!(code, 503);
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["code"], "busy", "{body}");
    drop(waiting);
    // Sessions: one past the cap is refused before the upgrade.
    let mut sessions: Vec<Client> = (0..MAX_SESSIONS).map(|_| connect(&s)).collect();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        s.token
    );
    let (code, body, _) = ask(&s.addr(), &upgrade);
    assert_eq!(code, 503);
    assert_eq!(body["error"]["code"], "busy", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("too many sessions"), "{body}");
    // The other sessions are unaffected, and a closed one makes room.
    let (_, res) = sessions[0].call("get_snapshot", Value::Null);
    assert_eq!(res["ok"], true);
    sessions.pop();
    wait_until(T, "a session to fit again", || {
        let stream = TcpStream::connect(s.addr()).unwrap();
        tungstenite::client::client(ws::request(&s.addr(), Some(&s.token)), stream).is_ok()
    });
}

#[test]
fn issue_14_wrong_tokens_are_answered_ever_later_and_only_a_few_at_once() {
    let s = quiet();
    let a = s.addr();
    let mut delay = FIRST_DELAY;
    for _ in 0..3 {
        let (code, body, took) = ask(&a, &health("wrong-guess"));
        assert_eq!(code, 403);
        assert_eq!(body["error"]["code"], "forbidden");
        assert!(took >= delay, "a failure answered after {took:?}, before its delay {delay:?}");
        delay *= 2;
    }
    // The right token is not held back by the address's past failures.
    assert_eq!(ask(&a, &health(&s.token)).0, 200);
    // Four failures in their delay at once: the address may not try more, not
    // even with the right token, until the first one's delay is over.
    let mut guesses: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(&a).unwrap();
            write!(c, "{}\r\n\r\n", health("wrong-guess")).unwrap();
            c
        })
        .collect();
    wait_until(T, "a fifth attempt to be refused", || {
        let (code, body, _) = ask(&a, &health(&s.token));
        assert!(code == 429 || code == 200, "{code} {body}");
        code == 429 && body["error"]["code"] == "too_many_attempts"
    });
    assert_eq!(answer(&mut guesses[0]).0, 403);
    wait_until(T, "the address to be let in again", || ask(&a, &health(&s.token)).0 == 200);
}

/// VmRSS of `pid` in MB.
fn rss_mb(pid: u32) -> u64 {
    proc_status(pid, "VmRSS") / 1024
}

#[test]
fn issue_14_a_client_that_asks_for_pages_and_never_reads_is_closed_and_bounded() {
    let mut s = Server::start("tests/pages.jsonc");
    s.wait_started();
    let pid = s.child.id();
    let mut other = connect(&s);
    wait_until(T, "10,000 lines in memory", || {
        let (_, res) = other.call("get_logs", json!({"service": "big", "limit": 1}));
        res["data"]["entries"][0]["message"].as_str().is_some_and(|m| m.starts_with("line 10000"))
    });
    let threads = proc_status(pid, "Threads");
    let before = rss_mb(pid);
    // 20 pages of 8 MiB asked for, none read.
    let mut greedy = Client::connect(&s.addr(), &s.token);
    for _ in 0..20 {
        greedy.command("get_logs", json!({"limit": 10000}));
    }
    let mut peak = before;
    wait_until(T, "the greedy session to be closed", || {
        peak = peak.max(rss_mb(pid));
        proc_status(pid, "Threads") == threads
    });
    let grew = peak - before;
    // Two queued pages and one being written, and what encoding them takes;
    // 20 pages queued would be 160 MiB.
    assert!(grew < 90, "RSS grew by {grew} MB while the client did not read");
    // The other client was not affected.
    let (_, res) = other.call("get_logs", json!({"limit": 5}));
    assert_eq!(res["data"]["entries"].as_array().map(Vec::len), Some(5));
    // What the greedy client finds when it reads at last: the end of it.
    greedy.ws.get_ref().set_read_timeout(Some(T)).unwrap();
    let end = wait_for(T, "the greedy client to see the end", || match greedy.ws.read() {
        Ok(tungstenite::Message::Close(f)) => Some(f.map(|f| u16::from(f.code))),
        Ok(_) => None,
        Err(_) => Some(None),
    });
    assert!(matches!(end, Some(1008) | None), "{end:?}");
}
