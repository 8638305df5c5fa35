//! The link to one server: thread `link:<n>` connects (with backoff), reads
//! frames and hands them to the UI tagged with the link's id; thread
//! `link-writer:<n>` sends the UI's commands. One link per stack shown.
//!
//! Both share one socket through `Shared`: reads come from one clone, every write
//! (ours, and tungstenite's automatic pongs) goes whole through one mutex, so two
//! frames never interleave. The reader blocks in `read` and the writer in `recv`:
//! nothing wakes while nothing happens. A link that is closed (its stack
//! stopped) shuts its socket down, which ends both threads.

use crate::event::{Event, LinkState};
use crossbeam_channel::{Receiver, Sender};
use flowlayer_client::Stream;
pub use flowlayer_client::Target;
use flowlayer_protocol::{read_log_event, ServerMessage};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// Which link an event came from: one per stack the client shows.
pub type LinkId = u64;

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
    read: Stream,
    write: Arc<Mutex<Stream>>,
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

/// Events of one link, tagged with its id.
#[derive(Clone)]
struct Tagged {
    id: LinkId,
    events: Sender<(LinkId, Event)>,
}

impl Tagged {
    fn send(&self, ev: Event) -> bool {
        self.events.send((self.id, ev)).is_ok()
    }
}

/// A running link: where its commands go, and how to end it.
pub struct Link {
    pub commands: Sender<Outgoing>,
    closed: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<Stream>>>,
}

impl Link {
    /// Ends the link: no more reconnects, the socket is shut down, both
    /// threads end (the reader at once, the writer once `self` is dropped).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(s) = self.socket.lock() {
            if let Some(s) = s.as_ref() {
                // Closing anyway: a socket already gone needs no shutdown.
                let _ = s.shutdown();
            }
        }
    }
}

pub fn spawn_link(
    id: LinkId,
    target: Target,
    events: Sender<(LinkId, Event)>,
) -> std::io::Result<Link> {
    let slot: Slot = Arc::new(Mutex::new(None));
    let (tx, rx) = crossbeam_channel::unbounded();
    let tagged = Tagged { id, events };
    let closed = Arc::new(AtomicBool::new(false));
    let socket = Arc::new(Mutex::new(None));
    let (w_slot, w_events) = (slot.clone(), tagged.clone());
    std::thread::Builder::new()
        .name(format!("link-writer:{id}"))
        .spawn(move || run_writer(rx, w_slot, w_events))?;
    let (r_closed, r_socket) = (closed.clone(), socket.clone());
    std::thread::Builder::new()
        .name(format!("link:{id}"))
        .spawn(move || run_reader(target, slot, tagged, r_closed, r_socket))?;
    Ok(Link { commands: tx, closed, socket })
}

fn run_writer(rx: Receiver<Outgoing>, slot: Slot, events: Tagged) {
    for out in rx {
        let sent = match slot.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(ws) => ws.send(Message::text(out.frame)).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        if !sent && !events.send(Event::SendFailed { id: out.id }) {
            return;
        }
    }
}

fn run_reader(
    target: Target,
    slot: Slot,
    events: Tagged,
    closed: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<Stream>>>,
) {
    let mut attempt: u32 = 0;
    loop {
        if closed.load(Ordering::SeqCst)
            || !events.send(Event::Link(LinkState::Connecting { attempt }))
        {
            return;
        }
        match connect(&target) {
            Ok((mut reader, writer, raw)) => {
                if let Ok(mut s) = socket.lock() {
                    *s = Some(raw);
                }
                // Closed while connecting: the shutdown missed this socket.
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(mut s) = slot.lock() {
                    *s = Some(writer);
                }
                attempt = 0;
                if !events.send(Event::Link(LinkState::Connected)) {
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
                                if !events.send(ev) {
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
                if closed.load(Ordering::SeqCst) || !events.send(Event::Link(LinkState::Lost(why)))
                {
                    return;
                }
            }
            Err(state) => {
                if closed.load(Ordering::SeqCst) || !events.send(Event::Link(state)) {
                    return;
                }
            }
        }
        std::thread::sleep(BACKOFF[(attempt as usize).min(BACKOFF.len() - 1)]);
        attempt += 1;
    }
}

/// A socket to `target`, and the URL and token of its WebSocket handshake.
fn open(target: &Target) -> Result<(Stream, String, Option<&str>), LinkState> {
    let stream = Stream::connect(target, CONNECT_TIMEOUT)
        .map_err(|e| LinkState::Unreachable(e.to_string()))?;
    Ok(match target {
        Target::Tcp { addr, token } => (stream, format!("ws://{addr}/ws"), token.as_deref()),
        Target::Unix { .. } => (stream, "ws://localhost/ws".into(), None),
    })
}

fn connect(target: &Target) -> Result<(WebSocket<Shared>, WebSocket<Shared>, Stream), LinkState> {
    let unreachable = |e: &dyn std::fmt::Display| LinkState::Unreachable(e.to_string());
    let (stream, url, token) = open(target)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(|e| unreachable(&e))?;
    let write = Arc::new(Mutex::new(stream.try_clone().map_err(|e| unreachable(&e))?));
    let reader_io =
        Shared { read: stream.try_clone().map_err(|e| unreachable(&e))?, write: write.clone() };
    let raw = stream.try_clone().map_err(|e| unreachable(&e))?;
    let mut req = url.into_client_request().map_err(|e| unreachable(&e))?;
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
    Ok((reader, writer, raw))
}
