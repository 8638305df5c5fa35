use crate::support::{free_port, ws, Opts, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn session() -> Server {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/session.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    s
}

/// One raw HTTP/1.1 request; returns (status, body).
fn get(addr: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn every_route_needs_the_token() {
    let mut s = session();
    let a = s.addr();
    let bearer = format!("Bearer {}", s.token);
    assert_eq!(get(&a, "/health", Some(&bearer)), (200, r#"{"ok":true}"#.to_string()));
    for path in ["/health", "/ws", "/nope"] {
        let (code, body) = get(&a, path, None);
        assert_eq!(code, 401, "{path}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "unauthorized");
        let (code, body) = get(&a, path, Some("Bearer wrong-token"));
        assert_eq!(code, 403, "{path}");
        assert!(body.contains("\"forbidden\""));
    }
    let (code, body) = get(&a, "/nope", Some(&bearer));
    assert_eq!(code, 404);
    assert!(body.contains("\"not_found\""));
    // The WebSocket upgrade itself is refused before any upgrade without a token.
    let stream = TcpStream::connect(&a).unwrap();
    let err = tungstenite::client::client(ws::request(&a, Some("nope")), stream).unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // The boot output says how to connect without echoing a configured secret.
    let out = s.stdout();
    assert!(
        out.contains(&format!(
            "[flowlayer] boot: session API: 127.0.0.1:{} (/ws, /health)",
            s.port
        )),
        "{out}"
    );
    assert!(out.contains("boot: connect: flowlayer-client-tui -addr"), "{out}");
    assert!(!out.contains(&s.token), "token echoed:\n{out}");
    s.shutdown();
}

#[test]
fn generated_token_is_printed_and_works() {
    let vars = [("P1", free_port().to_string())];
    let port = free_port();
    let p = port.to_string();
    let mut s = Server::start_with(
        "tests/session.jsonc",
        Opts { vars: &vars, session: false, extra: &["-s", &p], ..Opts::default() },
    );
    s.wait_started();
    let out = s.stdout();
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("[flowlayer] boot: session token: "))
        .expect("token line")
        .to_string();
    assert!(token.starts_with("fl_") && token.len() == 39, "{token}");
    assert!(
        out.contains(&format!(
            "connect: flowlayer-client-tui -addr 127.0.0.1:{port} -token {token}"
        )),
        "{out}"
    );
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(get(&addr, "/health", Some(&format!("Bearer {token}"))).0, 200);
    s.shutdown();
}
