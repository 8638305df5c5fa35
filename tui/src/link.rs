//! The link to the server: thread `link` connects (with backoff), reads frames
//! and hands them to the UI; thread `link-writer` sends the UI's commands.
//!
//! Both share one socket through `Shared`: reads come from one clone, every write
//! (ours, and tungstenite's automatic pongs) goes whole through one mutex, so two
//! frames never interleave. The reader blocks in `read` and the writer in `recv`:
//! nothing wakes while nothing happens.

use crate::event::{Event, LinkState};
use crossbeam_channel::{Receiver, Sender};
use flowlayer_protocol::{read_log_event, ServerMessage};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// Waits between connection attempts (tui.md): 500 ms, 1 s, 2 s, then 5 s.
pub const BACKOFF: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A socket whose writes are serialised across the reader and the writer.
struct Shared {
    read: TcpStream,
    write: Arc<Mutex<TcpStream>>,
}

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut w = self.write.lock().map_err(|_| std::io::Error::other("writer poisoned"))?;
        w.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let mut w = self.write.lock().map_err(|_| std::io::Error::other("writer poisoned"))?;
        w.flush()
    }
}

type Slot = Arc<Mutex<Option<WebSocket<Shared>>>>;

/// A command for the writer: its id (to report a failure) and its frame.
pub struct Outgoing {
    pub id: String,
    pub frame: String,
}

pub fn spawn_link(
    addr: String,
    token: Option<String>,
    events: Sender<Event>,
) -> std::io::Result<Sender<Outgoing>> {
    let slot: Slot = Arc::new(Mutex::new(None));
    let (tx, rx) = crossbeam_channel::unbounded();
    let (w_slot, w_events) = (slot.clone(), events.clone());
    std::thread::Builder::new()
        .name("link-writer".into())
        .spawn(move || run_writer(rx, w_slot, w_events))?;
    std::thread::Builder::new()
        .name("link".into())
        .spawn(move || run_reader(addr, token, slot, events))?;
    Ok(tx)
}

fn run_writer(rx: Receiver<Outgoing>, slot: Slot, events: Sender<Event>) {
    for out in rx {
        let sent = match slot.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(ws) => ws.send(Message::text(out.frame)).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        if !sent && events.send(Event::SendFailed { id: out.id }).is_err() {
            return;
        }
    }
}

fn run_reader(addr: String, token: Option<String>, slot: Slot, events: Sender<Event>) {
    let mut attempt: u32 = 0;
    loop {
        if events.send(Event::Link(LinkState::Connecting { attempt })).is_err() {
            return;
        }
        match connect(&addr, token.as_deref()) {
            Ok((mut reader, writer)) => {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(writer);
                }
                attempt = 0;
                if events.send(Event::Link(LinkState::Connected)).is_err() {
                    return;
                }
                let why = loop {
                    match reader.read() {
                        Ok(Message::Text(t)) => {
                            // Messages this client cannot read (an event from a
                            // newer server) are skipped.
                            let ev = match read_log_event(t.as_str()) {
                                Some(entry) => Some(Event::Log(entry)),
                                None => {
                                    ServerMessage::from_json(t.as_str()).ok().map(Event::Server)
                                }
                            };
                            if let Some(ev) = ev {
                                if events.send(ev).is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(Message::Close(frame)) => {
                            break frame
                                .map(|f| f.reason.to_string())
                                .unwrap_or_else(|| "closed".into())
                        }
                        Ok(_) => {}
                        Err(e) => break e.to_string(),
                    }
                };
                if let Ok(mut s) = slot.lock() {
                    *s = None;
                }
                if events.send(Event::Link(LinkState::Lost(why))).is_err() {
                    return;
                }
            }
            Err(state) => {
                if events.send(Event::Link(state)).is_err() {
                    return;
                }
            }
        }
        std::thread::sleep(BACKOFF[(attempt as usize).min(BACKOFF.len() - 1)]);
        attempt += 1;
    }
}

fn connect(
    addr: &str,
    token: Option<&str>,
) -> Result<(WebSocket<Shared>, WebSocket<Shared>), LinkState> {
    let unreachable = |e: &dyn std::fmt::Display| LinkState::Unreachable(e.to_string());
    let target = addr
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .next()
        .ok_or_else(|| LinkState::Unreachable(format!("cannot resolve {addr}")))?;
    let stream =
        TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).map_err(|e| unreachable(&e))?;
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(|e| unreachable(&e))?;
    let write = Arc::new(Mutex::new(stream.try_clone().map_err(|e| unreachable(&e))?));
    let reader_io =
        Shared { read: stream.try_clone().map_err(|e| unreachable(&e))?, write: write.clone() };
    let mut req = format!("ws://{addr}/ws").into_client_request().map_err(|e| unreachable(&e))?;
    if let Some(t) = token {
        let value = format!("Bearer {t}").parse().map_err(|_| LinkState::InvalidToken)?;
        req.headers_mut().insert("Authorization", value);
    }
    let (reader, _) = tungstenite::client::client(req, reader_io).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
            match resp.status().as_u16() {
                401 => LinkState::TokenRequired,
                403 => LinkState::InvalidToken,
                code => LinkState::Unreachable(format!("HTTP {code}")),
            }
        }
        other => unreachable(&other),
    })?;
    stream.set_read_timeout(None).map_err(|e| unreachable(&e))?;
    let writer_io = Shared { read: stream, write };
    let writer = WebSocket::from_raw_socket(writer_io, Role::Client, None);
    Ok((reader, writer))
}
