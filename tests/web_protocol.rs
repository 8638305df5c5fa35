//! The web cockpit's HTTP side without a browser: the page and its assets
//! served without the token and with their headers, the token as a
//! subprotocol, the `Origin` rule of `/ws`, and the connect line's address.

use crate::support::{free_port, ws, Opts, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;

fn origins() -> Server {
    let mut s = Server::start("tests/origins.jsonc");
    s.wait_started();
    s
}

/// One raw request (`head` lines after the request line, without the final
/// blank line); returns the answer's status, head and body.
fn raw(addr: &str, method: &str, path: &str, head: &[String]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in head {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    // An upgrade stays open: read what came until the server pauses.
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if bytes.starts_with(b"HTTP/1.1 101") && bytes.windows(4).any(|w| w == b"\r\n\r\n")
                {
                    break;
                }
            }
            Err(e) => panic!("reading the answer to {method} {path}: {e}"),
        }
    }
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
    let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, bytes[end..].to_vec())
}

/// The value of header `name` in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn upgrade(extra: &[&str]) -> Vec<String> {
    let mut h = vec![
        "Upgrade: websocket".to_string(),
        "Connection: Upgrade".into(),
        "Sec-WebSocket-Version: 13".into(),
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".into(),
    ];
    h.extend(extra.iter().map(|s| s.to_string()));
    h
}

#[test]
fn the_page_and_its_assets_are_served_without_the_token() {
    let s = origins();
    let a = s.addr();
    let (code, head, body) = raw(&a, "GET", "/", &[]);
    assert_eq!(code, 200, "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        header(&head, "content-security-policy"),
        Some("default-src 'self'; connect-src 'self'")
    );
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&head, "cache-control"), Some("no-cache"));
    assert_eq!(header(&head, "content-length"), Some(body.len().to_string().as_str()));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#), "{html}");
    // Every asset the page names is there, with its type; the largest ones do
    // not fit a socket's first write, so this also covers answers written in parts.
    let mut total = html.len();
    for (path, kind) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/logview.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let (code, head, body) = raw(&a, "GET", path, &[]);
        assert_eq!(code, 200, "{path}: {head}");
        assert_eq!(header(&head, "content-type"), Some(kind), "{path}");
        assert_eq!(header(&head, "content-length"), Some(body.len().to_string().as_str()));
        total += body.len();
    }
    assert!(total > 10_000, "the page is more than a stub: {total} bytes");
    // HEAD: the same head, no body.
    let (code, head, body) = raw(&a, "HEAD", "/assets/app.js", &[]);
    assert_eq!((code, body.len()), (200, 0), "{head}");
    assert!(header(&head, "content-length").unwrap().parse::<usize>().unwrap() > 1000);
    // Unknown assets and other methods.
    let (code, _, body) = raw(&a, "GET", "/assets/missing.js", &[]);
    assert_eq!(code, 404);
    assert!(String::from_utf8(body).unwrap().contains("\"not_found\""));
    let (code, head, _) = raw(&a, "POST", "/", &["Content-Length: 0".into()]);
    assert_eq!(code, 405);
    assert_eq!(header(&head, "allow"), Some("GET, HEAD"));
    // Everything else keeps its token.
    assert_eq!(raw(&a, "GET", "/health", &[]).0, 401);
    assert_eq!(raw(&a, "GET", "/index.html", &[]).0, 401);
}

#[test]
fn a_browser_sends_the_token_as_a_subprotocol_and_gets_flowlayer_v1_back() {
    let s = origins();
    let a = s.addr();
    let offer = format!("Sec-WebSocket-Protocol: flowlayer.v1, bearer.{}", s.token);
    let (code, head, _) = raw(&a, "GET", "/ws", &upgrade(&[&offer]));
    assert_eq!(code, 101, "{head}");
    assert_eq!(header(&head, "sec-websocket-protocol"), Some("flowlayer.v1"));
    // The token alone, without flowlayer.v1: accepted, and no subprotocol named
    // (naming one the client did not offer fails its handshake).
    let bare = format!("Sec-WebSocket-Protocol: bearer.{}", s.token);
    let (code, head, _) = raw(&a, "GET", "/ws", &upgrade(&[&bare]));
    assert_eq!(code, 101, "{head}");
    assert_eq!(header(&head, "sec-websocket-protocol"), None, "{head}");
    // A whole session through tungstenite, which checks the answer as a browser does.
    let mut req = format!("ws://{a}/ws").into_client_request().unwrap();
    let offer = format!("flowlayer.v1, bearer.{}", s.token);
    req.headers_mut().insert("Sec-WebSocket-Protocol", offer.parse().unwrap());
    let stream = TcpStream::connect(&a).unwrap();
    let (socket, _) = tungstenite::client::client(req, stream).expect("handshake");
    let mut c = ws::Client::over(socket);
    let hello = c.until(Duration::from_secs(10), "hello", |v| v["name"] == "hello");
    assert_eq!(hello["payload"]["server"], "flowlayer");
    let (ack, res) = c.call("get_snapshot", serde_json::Value::Null);
    assert_eq!((ack["accepted"].clone(), res["ok"].clone()), (true.into(), true.into()));
}

#[test]
fn a_wrong_subprotocol_token_is_403_and_none_is_401() {
    let s = origins();
    let a = s.addr();
    let (code, _, body) =
        raw(&a, "GET", "/ws", &upgrade(&["Sec-WebSocket-Protocol: flowlayer.v1, bearer.nope"]));
    assert_eq!(code, 403);
    assert!(String::from_utf8(body).unwrap().contains("\"forbidden\""));
    let (code, _, body) =
        raw(&a, "GET", "/ws", &upgrade(&["Sec-WebSocket-Protocol: flowlayer.v1"]));
    assert_eq!(code, 401);
    assert!(String::from_utf8(body).unwrap().contains("bearer.<token>"));
    // The subprotocol is for /ws only: other routes want the header.
    let offer = format!("Sec-WebSocket-Protocol: bearer.{}", s.token);
    assert_eq!(raw(&a, "GET", "/health", &[offer]).0, 401);
}

#[test]
fn a_client_that_offers_no_subprotocol_gets_none_named() {
    let s = origins();
    let auth = format!("Authorization: Bearer {}", s.token);
    let (code, head, _) = raw(&s.addr(), "GET", "/ws", &upgrade(&[&auth]));
    assert_eq!(code, 101, "{head}");
    assert_eq!(header(&head, "sec-websocket-protocol"), None, "{head}");
}

#[test]
fn a_foreign_origin_is_403_unless_allowed_and_no_origin_is_unaffected() {
    let s = origins();
    let a = s.addr();
    let auth = format!("Authorization: Bearer {}", s.token);
    let (code, _, body) = raw(&a, "GET", "/ws", &upgrade(&[&auth, "Origin: http://evil.example"]));
    assert_eq!(code, 403, "the right token from another site's page");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("\"forbidden_origin\"") && body.contains("http://evil.example"),
        "{body}"
    );
    // Same host, other port: another origin.
    let other_port = format!("Origin: http://127.0.0.1:{}", s.port + 1);
    assert_eq!(raw(&a, "GET", "/ws", &upgrade(&[&auth, &other_port])).0, 403);
    let own = format!("Origin: http://{a}");
    assert_eq!(raw(&a, "GET", "/ws", &upgrade(&[&auth, &own])).0, 101);
    let allowed = "Origin: http://DEV.example:5173";
    assert_eq!(raw(&a, "GET", "/ws", &upgrade(&[&auth, allowed])).0, 101);
    assert_eq!(raw(&a, "GET", "/ws", &upgrade(&[&auth])).0, 101, "no Origin: not a browser");
    // A foreign page gets no further with the subprotocol.
    let offer = format!("Sec-WebSocket-Protocol: flowlayer.v1, bearer.{}", s.token);
    assert_eq!(raw(&a, "GET", "/ws", &upgrade(&[&offer, "Origin: null"])).0, 403);
}

#[test]
fn the_connect_line_gives_the_page_with_a_generated_token_only() {
    let port = free_port();
    let p = port.to_string();
    let mut s = Server::start_with(
        "tests/origins.jsonc",
        Opts { session: false, extra: &["-s", &p], ..Opts::default() },
    );
    s.wait_started();
    let out = s.stdout();
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("[flowlayer] boot: session token: "))
        .expect("token line");
    let web = format!("[flowlayer] boot: web: http://127.0.0.1:{port}/#token={token}\n");
    assert!(out.contains(&web), "{out}");
    s.shutdown();
    // A token the user gave stays out of the terminal; the line says where it is.
    let mut s = origins();
    let out = s.stdout();
    let line = out.lines().find(|l| l.contains("boot: web:")).expect("web line").to_string();
    assert_eq!(
        line,
        format!(
            "[flowlayer] boot: web: http://127.0.0.1:{}/ (the page asks for the token given with -token)",
            s.port
        )
    );
    assert!(!out.contains(&s.token), "{out}");
    s.shutdown();
}
