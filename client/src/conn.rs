//! One session with a server, on the caller's thread: the handshake, `hello`
//! and `snapshot`, commands (one at a time or several in flight), events.
//!
//! Everything the server sends is read in order by one loop (`read_one`):
//! acks and results are filed under their command's id, events are kept in
//! a queue that `next_event` hands out. While a caller waits for a reply, the
//! events that arrive meanwhile are kept, not lost: status events always,
//! `log` events up to `STASH_MAX_LOGS` (beyond that they are counted and
//! dropped, as the server itself may drop them for a slow session; a client
//! that needs every line recovers them with `get_logs` + `after_seq`).

use crate::error::ClientError;
use crate::target::{Stream, Target};
use flowlayer_protocol::{
    read_log_event, Command, CommandName, ErrorBody, Event, Hello, ResultPayload, ServerMessage,
    Snapshot,
};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// `log` events kept while nobody reads events; beyond, they are dropped and
/// counted (`Connection::missed_logs`). A flood of 100-byte lines fills this
/// in about 2 MB.
pub const STASH_MAX_LOGS: usize = 10_000;

/// How a command was answered, once it has been.
enum Reply {
    /// `ack` `accepted:false`.
    Rejected(ErrorBody),
    /// An `error` message carrying the command's id.
    Error(ErrorBody),
    /// The `result`, whatever its `ok`.
    Done(ResultPayload),
}

pub struct Connection {
    ws: WebSocket<Stream>,
    target: String,
    hello: Hello,
    snapshot: Snapshot,
    next_id: u64,
    /// Commands sent and not answered yet, by id.
    waiting: HashMap<String, CommandName>,
    /// Answers read, not yet taken by `reply`.
    replies: HashMap<String, Reply>,
    events: VecDeque<Event>,
    stashed_logs: usize,
    missed_logs: u64,
    /// `hello` and `snapshot` have been read.
    greeted: bool,
}

impl Connection {
    /// Connects, upgrades to a WebSocket and reads `hello` and `snapshot`,
    /// all within `timeout`.
    pub fn open(target: &Target, timeout: Duration) -> Result<Connection, ClientError> {
        let deadline = Instant::now() + timeout;
        let name = target.to_string();
        let connect_err = |error| ClientError::Connect { target: name.clone(), error };
        let stream = Stream::connect(target, timeout).map_err(connect_err)?;
        stream.set_read_timeout(Some(timeout)).map_err(connect_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(connect_err)?;
        let (url, token) = match target {
            Target::Tcp { addr, token } => (format!("ws://{addr}/ws"), token.as_deref()),
            Target::Unix { .. } => ("ws://localhost/ws".to_string(), None),
        };
        let handshake = |message: String| ClientError::Handshake { target: name.clone(), message };
        let mut req = url.into_client_request().map_err(|e| handshake(e.to_string()))?;
        if let Some(t) = token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| handshake("the token is not a valid header value".into()))?;
            req.headers_mut().insert("Authorization", value);
        }
        let (ws, _) = tungstenite::client::client(req, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
                let code = resp.status().as_u16();
                let said = resp.body().as_deref().and_then(error_message);
                match (code, target) {
                    (401, Target::Tcp { .. }) => {
                        ClientError::TokenRequired { target: name.clone() }
                    }
                    (403, Target::Tcp { .. }) => {
                        ClientError::TokenRejected { target: name.clone() }
                    }
                    _ => handshake(match said {
                        Some(m) => format!("HTTP {code}: {m}"),
                        None => format!("HTTP {code}"),
                    }),
                }
            }
            tungstenite::HandshakeError::Interrupted(_) => {
                ClientError::TimedOut { what: format!("the handshake with {name}"), after: timeout }
            }
            tungstenite::HandshakeError::Failure(e) => handshake(e.to_string()),
        })?;
        let mut conn = Connection {
            ws,
            target: name,
            hello: Hello {
                protocol_version: 0,
                server: String::new(),
                capabilities: Vec::new(),
                server_version: None,
                instance_id: None,
            },
            snapshot: Snapshot { services: Vec::new() },
            next_id: 0,
            waiting: HashMap::new(),
            replies: HashMap::new(),
            events: VecDeque::new(),
            stashed_logs: 0,
            missed_logs: 0,
            greeted: false,
        };
        conn.greet(deadline, timeout)?;
        conn.ws
            .get_ref()
            .set_write_timeout(None)
            .map_err(|e| ClientError::Lost { error: e.to_string() })?;
        Ok(conn)
    }

    /// Reads `hello`, then `snapshot`: the first two messages of every session.
    fn greet(&mut self, deadline: Instant, timeout: Duration) -> Result<(), ClientError> {
        let timed_out = |what: &str| ClientError::TimedOut { what: what.into(), after: timeout };
        let target = self.target.clone();
        let not_ours =
            |message: String| ClientError::NotFlowLayer { target: target.clone(), message };
        match self.read_one(Some(deadline))? {
            Some(Some(ServerMessage::Event(Event::Hello(h)))) => self.hello = h,
            Some(_) => return Err(not_ours("the first message is not hello".into())),
            None => return Err(timed_out("hello")),
        }
        match self.read_one(Some(deadline))? {
            Some(Some(ServerMessage::Event(Event::Snapshot(s)))) => self.snapshot = s,
            Some(_) => return Err(not_ours("the second message is not a snapshot".into())),
            None => return Err(timed_out("the snapshot")),
        }
        self.greeted = true;
        Ok(())
    }

    /// The server's `hello`.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The services as they were when the session opened.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The `instance_id` of the server's run, when it says.
    pub fn instance_id(&self) -> Option<&str> {
        self.hello.instance_id.as_deref()
    }

    /// Whether the server serves this command (its `hello` capabilities).
    pub fn serves(&self, name: CommandName) -> bool {
        self.hello.capabilities.iter().any(|c| c == name.as_str())
    }

    /// `log` events dropped so far because nobody read events while
    /// `STASH_MAX_LOGS` of them were waiting.
    pub fn missed_logs(&self) -> u64 {
        self.missed_logs
    }

    /// Sends a command; returns its id, for `reply`.
    pub fn send(&mut self, cmd: &Command) -> Result<String, ClientError> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.ws.send(Message::text(cmd.to_json(&id))).map_err(disconnected)?;
        self.waiting.insert(id.clone(), cmd.name());
        Ok(id)
    }

    /// Waits until the command `id` is answered, or `deadline`. A refused
    /// command is an error; a result is returned whatever its `ok`.
    pub fn reply(&mut self, id: &str, deadline: Instant) -> Result<ResultPayload, ClientError> {
        let command = *self.waiting.get(id).ok_or_else(|| ClientError::BadReply {
            command: CommandName::GetSnapshot,
            message: format!("no command with id \"{id}\" was sent"),
        })?;
        let started = Instant::now();
        loop {
            if let Some(r) = self.replies.remove(id) {
                self.waiting.remove(id);
                return match r {
                    Reply::Done(payload) => Ok(payload),
                    Reply::Rejected(error) => Err(ClientError::Rejected { command, error }),
                    Reply::Error(error) => {
                        Err(ClientError::BadReply { command, message: error.to_string() })
                    }
                };
            }
            if self.read_one(Some(deadline))?.is_none() {
                return Err(ClientError::TimedOut {
                    what: command.as_str().to_string(),
                    after: deadline.saturating_duration_since(started),
                });
            }
        }
    }

    /// Sends a command and waits for its result, within `timeout`.
    pub fn call(&mut self, cmd: &Command, timeout: Duration) -> Result<ResultPayload, ClientError> {
        let id = self.send(cmd)?;
        self.reply(&id, Instant::now() + timeout)
    }

    /// Sends a command and reads its result data as `T` (the data type of
    /// that command, e.g. `LogsPage` for `get_logs`). `ok:false` is
    /// `ClientError::Failed`.
    pub fn call_as<T: DeserializeOwned>(
        &mut self,
        cmd: &Command,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let payload = self.call(cmd, timeout)?;
        data_of(cmd.name(), payload)
    }

    /// The next event: one kept while waiting for a reply, else one read now.
    /// `None` when `deadline` passes first (`None` deadline: wait as long as
    /// it takes).
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                if matches!(e, Event::Log(_)) {
                    self.stashed_logs -= 1;
                }
                return Ok(Some(e));
            }
            if self.read_one(deadline)?.is_none() {
                return Ok(None);
            }
        }
    }

    /// Closes the session politely (a close frame, not waiting for the echo).
    pub fn close(mut self) {
        // Leaving anyway: a server that is gone needs no goodbye.
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }

    /// Reads one message and files it. `Ok(None)`: the deadline passed.
    /// `Ok(Some(None))`: a message this crate cannot read (from a newer
    /// server), skipped. Messages are returned only during `greet`; after it
    /// they are filed and `Some(None)` is returned for them too.
    fn read_one(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Option<ServerMessage>>, ClientError> {
        loop {
            let timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left.max(Duration::from_millis(1)))
                }
                None => None,
            };
            self.ws
                .get_ref()
                .set_read_timeout(timeout)
                .map_err(|e| ClientError::Lost { error: e.to_string() })?;
            let text = match self.ws.read() {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(frame)) => {
                    let reason = frame.map(|f| f.reason.to_string());
                    return Err(ClientError::Closed { reason });
                }
                // Pings are answered by tungstenite itself.
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(disconnected(e)),
            };
            if !self.greeted {
                // Still greeting: hand the message back as it is.
                if let Some(entry) = read_log_event(text.as_str()) {
                    return Ok(Some(Some(ServerMessage::Event(Event::Log(entry)))));
                }
                return Ok(Some(ServerMessage::from_json(text.as_str()).ok()));
            }
            if let Some(entry) = read_log_event(text.as_str()) {
                self.keep(Event::Log(entry));
                return Ok(Some(None));
            }
            match ServerMessage::from_json(text.as_str()) {
                Ok(ServerMessage::Event(e)) => self.keep(e),
                Ok(ServerMessage::Ack { id, payload }) => {
                    if !payload.accepted {
                        let error = payload.error.unwrap_or_else(|| {
                            ErrorBody::new(
                                flowlayer_protocol::ErrorCode::Unrecognized,
                                "refused without a reason",
                            )
                        });
                        self.replies.insert(id, Reply::Rejected(error));
                    }
                }
                Ok(ServerMessage::Result { id, payload }) => {
                    self.replies.insert(id, Reply::Done(payload));
                }
                Ok(ServerMessage::Error { id: Some(id), payload }) => {
                    self.replies.insert(id, Reply::Error(payload));
                }
                // An error about no command of ours, or a message from a newer
                // server: nothing waits for it.
                Ok(ServerMessage::Error { id: None, .. }) | Err(_) => {}
            }
            return Ok(Some(None));
        }
    }

    fn keep(&mut self, e: Event) {
        if matches!(e, Event::Log(_)) {
            if self.stashed_logs >= STASH_MAX_LOGS {
                self.missed_logs += 1;
                return;
            }
            self.stashed_logs += 1;
        }
        self.events.push_back(e);
    }
}

fn disconnected(e: tungstenite::Error) -> ClientError {
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ClientError::Closed { reason: None }
        }
        other => ClientError::Lost { error: other.to_string() },
    }
}

/// The message of an HTTP error body, `{"ok":false,"error":{"code","message"}}`.
fn error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("error")?.get("message")?.as_str().map(str::to_string)
}

/// A result's data as `T`; `ok:false` is `ClientError::Failed`.
pub fn data_of<T: DeserializeOwned>(
    command: CommandName,
    payload: ResultPayload,
) -> Result<T, ClientError> {
    if !payload.ok {
        let error = payload.error.clone().unwrap_or_else(|| {
            ErrorBody::new(flowlayer_protocol::ErrorCode::Unrecognized, "failed without a reason")
        });
        return Err(ClientError::Failed {
            command,
            error,
            failed_services: payload.failed_services.unwrap_or_default(),
        });
    }
    payload.data_as().ok_or_else(|| ClientError::BadReply {
        command,
        message: "the result data does not have the expected shape".into(),
    })
}
