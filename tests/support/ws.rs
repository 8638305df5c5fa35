//! A protocol V1 client for tests, on tungstenite's blocking client.

use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

pub struct Client {
    pub ws: WebSocket<TcpStream>,
    next_id: u64,
    /// Frames read while waiting for something else, in order.
    pub seen: Vec<Value>,
}

pub fn request(addr: &str, token: Option<&str>) -> tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/ws").into_client_request().expect("request");
    if let Some(t) = token {
        req.headers_mut().insert("Authorization", format!("Bearer {t}").parse().expect("header"));
    }
    req
}

impl Client {
    /// A client over a WebSocket made some other way (another handshake).
    pub fn over(ws: WebSocket<TcpStream>) -> Client {
        Client { ws, next_id: 0, seen: Vec::new() }
    }

    pub fn connect(addr: &str, token: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (ws, _) = tungstenite::client::client(request(addr, Some(token)), stream)
            .expect("websocket handshake");
        Client { ws, next_id: 0, seen: Vec::new() }
    }

    /// Reads one frame (JSON) within `timeout`; `None` on timeout.
    pub fn recv(&mut self, timeout: Duration) -> Option<Value> {
        self.ws.get_ref().set_read_timeout(Some(timeout.max(Duration::from_millis(1)))).ok()?;
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sends JSON"))
                }
                Ok(Message::Close(f)) => panic!("server closed the connection: {f:?}"),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("websocket read failed: {e}"),
            }
        }
    }

    /// Returns the first frame matching `pred`, from `seen` (taken out of it) or
    /// read from now on; frames read before the match go to `seen`.
    pub fn until(&mut self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("timed out after {timeout:?} waiting for {what}; seen: {:#?}", self.tail());
            }
            if let Some(v) = self.recv(left) {
                if pred(&v) {
                    return v;
                }
                self.seen.push(v);
            }
        }
    }

    fn tail(&self) -> &[Value] {
        &self.seen[self.seen.len().saturating_sub(20)..]
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).expect("send");
    }

    /// Sends a command; returns its id.
    pub fn command(&mut self, name: &str, payload: Value) -> String {
        self.next_id += 1;
        let id = format!("c{}", self.next_id);
        let frame = json!({"type": "command", "id": id, "name": name, "payload": payload});
        self.send_text(&frame.to_string());
        id
    }

    pub fn ack(&mut self, id: &str) -> Value {
        let id = id.to_string();
        self.until(Duration::from_secs(10), &format!("ack {id}"), |v| {
            v["type"] == "ack" && v["id"] == id.as_str()
        })
    }

    pub fn result(&mut self, id: &str, timeout: Duration) -> Value {
        let id = id.to_string();
        self.until(timeout, &format!("result {id}"), |v| {
            v["type"] == "result" && v["id"] == id.as_str()
        })
    }

    /// Sends a command and returns (ack payload, result payload).
    pub fn call(&mut self, name: &str, payload: Value) -> (Value, Value) {
        let id = self.command(name, payload);
        let ack = self.ack(&id);
        if ack["payload"]["accepted"] != true {
            return (ack["payload"].clone(), Value::Null);
        }
        let res = self.result(&id, Duration::from_secs(20));
        (ack["payload"].clone(), res["payload"].clone())
    }

    /// Waits for `service_status` of `service` reaching `status`.
    pub fn wait_status(&mut self, service: &str, status: &str, timeout: Duration) {
        let (s, st) = (service.to_string(), status.to_string());
        self.until(timeout, &format!("{service} -> {status}"), |v| {
            v["name"] == "service_status"
                && v["payload"]["service"] == s.as_str()
                && v["payload"]["status"] == st.as_str()
        });
    }

    /// The statuses of `service` in `seen` and beyond, in order (after a wait).
    pub fn statuses_seen(&self, service: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|v| v["name"] == "service_status" && v["payload"]["service"] == service)
            .map(|v| v["payload"]["status"].as_str().unwrap_or("").to_string())
            .collect()
    }
}
