//! WebSocket session thread (`session:<id>`, started by the accept thread for an
//! authorized `/ws`): owns the socket, reads commands, writes frames queued by
//! the state thread. Sends `Opened`, `Command`, `Closed` through its `SessionTx`,
//! which never waits.
//!
//! It sleeps in `mio::Poll` on the socket and a `Waker` with no timeout: the state
//! thread queues a frame and wakes it, so an idle session costs no CPU. It pulls
//! frames from its queues only while the socket takes them; a client that stops
//! reading leaves them full, and the state thread then drops its `log` events or,
//! for a status event or a reply, asks it to close (protocol.md). The queues
//! are bounded in bytes (`REPLY_QUEUE_BYTES`, `LOG_QUEUE_BYTES`), not frames:
//! 1,024 frames of up to 8 MiB let one client that asked and never read take
//! gigabytes (issue 14).
//!
//! It reads the client only while the state thread has none of its commands
//! (`SessionTx::ready`) and while its own replies waiting to be written are
//! few (`READ_PAUSE`): a client that sends faster than it is answered is held
//! back by TCP, not queued for in memory. One that asks and never reads fills
//! its reply queue and is closed.
//!
//! Outgoing frames arrive already encoded for the wire (shared by all sessions),
//! so sending one is a copy. tungstenite reads and answers pings and closes; its
//! writes land in the same ordered buffer (`Conn::out`) as ours, so frames never
//! interleave on the socket.

use super::http::Head;
use crate::bus::{
    frame_queue, CtlTx, FrameRx, Outbox, SessionId, SessionTx, CAPABILITIES, KICK_NONE,
    KICK_SHUTDOWN, KICK_TOO_SLOW,
};
use crate::state::MAX_RESULT_BYTES;
use crate::wire;
use flowlayer_protocol::{parse_incoming, ErrorBody, ErrorCode, Incoming};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

/// Bytes of replies and status events a session may have queued before it is
/// closed (1008): two full `get_logs` pages and room for status events, so a
/// client that reads while it pages is never closed.
pub const REPLY_QUEUE_BYTES: usize = 2 * MAX_RESULT_BYTES + 1024 * 1024;
/// Bytes of `log` events a session may have queued before further ones are
/// dropped (counted): twice the live-log burst (`state/budget.rs`).
pub const LOG_QUEUE_BYTES: usize = 2 * 1024 * 1024;
/// Kernel send buffer of a session socket: a reply waits behind at most this
/// much of log events already handed to the kernel (BENCH.md: 64 KiB answered
/// `get_logs` during a flood faster than 256 KiB, at no cost to throughput).
const SEND_BUFFER: usize = 64 * 1024;
/// Largest client message (protocol.md: close 1009 beyond).
pub const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;
/// How long a session closed for an oversized message keeps reading it away.
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);
/// Bytes of frames taken from the queues at a time (then written to the socket).
const WRITE_CHUNK: usize = 64 * 1024;
/// The client is not read while more than this of the session's own replies
/// (errors, pongs) waits to be written to it.
const READ_PAUSE: usize = WRITE_CHUNK;

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);

/// The `Sec-WebSocket-Accept` value for a valid upgrade request, else `None`.
pub fn upgrade_key(head: &Head) -> Option<String> {
    let has = |name: &str, want: &str| {
        head.header(name).is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(want)))
    };
    if head.method != "GET" || !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return None;
    }
    if head.header("sec-websocket-version").map(str::trim) != Some("13") {
        return None;
    }
    let key = head.header("sec-websocket-key")?.trim();
    Some(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// What the accept thread hands a new session thread.
pub struct Start {
    /// Non-blocking, registered with no poll.
    pub sock: super::sock::Sock,
    /// Bytes the client sent after its request head.
    pub rest: Vec<u8>,
    /// `Sec-WebSocket-Accept` for the 101.
    pub accept: String,
    /// The subprotocol the 101 names: only one the client offered (a client
    /// that offered none drops a 101 that names one).
    pub protocol: Option<&'static str>,
    pub id: SessionId,
    pub ctl: CtlTx,
    pub instance_id: Arc<str>,
    /// Its place under `MAX_SESSIONS`.
    pub seat: crate::credit::Permit,
}

pub fn run_session(start: Start) {
    let Start { mut sock, rest, accept, protocol, id, ctl, instance_id, seat } = start;
    // A smaller buffer only costs throughput to a client that reads at full speed.
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER);
    let Ok(poll) = Poll::new() else { return };
    let Ok(waker) = Waker::new(poll.registry(), WAKE) else { return };
    let waker = Arc::new(waker);
    if poll.registry().register(&mut sock, SOCKET, Interest::READABLE | Interest::WRITABLE).is_err()
    {
        return;
    }
    let tx = SessionTx::new(&ctl, waker.clone(), seat);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
        .write_buffer_size(0);
    // The 101 and `hello` go out first, through the same buffer as every frame.
    let protocol = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{protocol}\r\n"
    )
    .into_bytes();
    out.extend_from_slice(&wire::hello(&instance_id));
    let conn = Conn { sock, out, sent: 0, local: Vec::new() };
    let ws = WebSocket::from_partially_read(conn, rest, Role::Server, Some(config));
    let (frames, frames_rx) = frame_queue(REPLY_QUEUE_BYTES);
    let (logs, logs_rx) = frame_queue(LOG_QUEUE_BYTES);
    let kick = Arc::new(AtomicU8::new(KICK_NONE));
    let outbox = Outbox { frames, logs, kick: kick.clone(), waker };
    let mut s =
        Session { ws, id, tx, frames: frames_rx, logs: logs_rx, kick, drain_before_close: false };
    if s.write_out(true) == Flow::Done {
        return;
    }
    if s.tx.opened(id, outbox).is_err() {
        return;
    }
    s.run(poll);
    // The state thread may be gone at shutdown; then nobody needs to know.
    let _ = s.tx.closed(id);
}

#[derive(PartialEq)]
enum Flow {
    Go,
    Done,
}

/// How far `read_all` got.
#[derive(PartialEq)]
enum Input {
    /// Everything the socket had is read.
    Drained,
    /// Stopped early: a command in flight or too much to write (see the header).
    Paused,
    /// The connection is over.
    Done,
}

/// The socket as tungstenite sees it: reads come from the socket, writes go to
/// `local`. The session writes `out` to the socket, and refills it at frame
/// boundaries with `local` first, then frames from its queues: frames never
/// interleave, and what the session writes of its own (pongs, errors, the
/// close) is counted apart from what the state thread queued.
struct Conn {
    sock: super::sock::Sock,
    /// Being written: whole frames.
    out: Vec<u8>,
    /// Bytes of `out` already on the socket.
    sent: usize,
    /// tungstenite's frames and the session's own replies, waiting for `out`.
    local: Vec<u8>,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.local.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Session {
    ws: WebSocket<Conn>,
    id: SessionId,
    tx: SessionTx,
    frames: FrameRx,
    logs: FrameRx,
    kick: Arc<AtomicU8>,
    /// Closed for an oversized message: read and discard the rest of it before
    /// dropping the socket, or the kernel answers the unread bytes with a reset
    /// that can destroy the close frame before the client reads it.
    drain_before_close: bool,
}

impl Session {
    fn run(&mut self, mut poll: Poll) {
        let mut events = Events::with_capacity(8);
        loop {
            let read = self.read_all();
            if read == Input::Done {
                // Best effort: the answer to a client's close, if any, and
                // nothing queued after it.
                self.write_out(false);
                if self.drain_before_close {
                    self.drain(&mut poll, &mut events);
                }
                return;
            }
            if self.check_kick() == Flow::Done {
                return;
            }
            if self.write_out(true) == Flow::Done {
                return;
            }
            // Paused for replies of its own, which the socket has now taken:
            // no event would come for the client's bytes already read by the
            // kernel.
            if read == Input::Paused && self.may_read() {
                continue;
            }
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() != ErrorKind::Interrupted {
                    return;
                }
            }
        }
    }

    /// Writes `out` while the socket takes it, refilling it with `local`, then
    /// (`queued`) with frames from the queues.
    fn write_out(&mut self, queued: bool) -> Flow {
        // tungstenite's own frames (pongs, close) into `local`; it cannot block.
        if self.ws.flush().is_err() {
            return Flow::Done;
        }
        loop {
            let c = self.ws.get_mut();
            if c.sent == c.out.len() {
                c.out.clear();
                c.sent = 0;
                // A page (up to 8 MiB) grew it: memory goes back once it is out.
                if c.out.capacity() > 4 * WRITE_CHUNK {
                    c.out = Vec::new();
                }
                if !c.local.is_empty() {
                    std::mem::swap(&mut c.out, &mut c.local);
                    continue;
                }
                if !queued {
                    return Flow::Go;
                }
                // Replies and status events first, then log events.
                while c.out.len() < WRITE_CHUNK {
                    let Some(frame) = self.frames.try_recv().or_else(|| self.logs.try_recv())
                    else {
                        break;
                    };
                    c.out.extend_from_slice(&frame);
                }
                if c.out.is_empty() {
                    return Flow::Go;
                }
            }
            match c.sock.write(&c.out[c.sent..]) {
                Ok(0) => return Flow::Done,
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Go,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Flow::Done,
            }
        }
    }

    fn check_kick(&mut self) -> Flow {
        let (code, reason) = match self.kick.load(Ordering::Relaxed) {
            KICK_TOO_SLOW => (
                CloseCode::Policy,
                "client too slow: events could not be delivered; reconnect for a fresh snapshot",
            ),
            KICK_SHUTDOWN => (CloseCode::Away, "server shutting down"),
            _ => return Flow::Go,
        };
        self.close(code, reason);
        Flow::Done
    }

    /// Queues a close frame and writes what the socket takes (the client may not
    /// be reading at all).
    fn close(&mut self, code: CloseCode, reason: &'static str) {
        let _ = self.ws.close(Some(CloseFrame { code, reason: reason.into() }));
        self.write_out(false);
    }

    /// The state thread has no command of this session, and its own replies
    /// waiting to be written are few: the client may be read.
    fn may_read(&mut self) -> bool {
        self.tx.ready() && self.ws.get_mut().local.len() <= READ_PAUSE
    }

    fn read_all(&mut self) -> Input {
        loop {
            if !self.may_read() {
                return Input::Paused;
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => self.on_text(t.as_str()),
                Ok(Message::Binary(_)) => {
                    let e =
                        ErrorBody::new(ErrorCode::InvalidJson, "binary frames are not accepted");
                    self.reply(wire::error(None, e))
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Input::Drained,
                Err(WsError::Capacity(_)) => {
                    self.close(CloseCode::Size, "message larger than 1 MiB");
                    self.drain_before_close = true;
                    return Input::Done;
                }
                Err(_) => return Input::Done,
            }
        }
    }

    /// Reads and discards until the client closes, for at most `CLOSE_DRAIN`.
    fn drain(&mut self, poll: &mut Poll, events: &mut Events) {
        let end = std::time::Instant::now() + CLOSE_DRAIN;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.ws.get_mut().sock.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let left = end.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() || poll.poll(events, Some(left)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn reply(&mut self, frame: crate::bus::Frame) {
        self.ws.get_mut().local.extend_from_slice(&frame);
    }

    fn on_text(&mut self, text: &str) {
        match parse_incoming(text, CAPABILITIES) {
            Incoming::Command { id, cmd } => {
                // A failed post means shutdown; the close follows.
                let _ = self.tx.command(self.id, id, cmd);
            }
            Incoming::Error { id, error } => self.reply(wire::error(id, error)),
            Incoming::Reject { id, error } => self.reply(wire::ack(id, Some(error))),
        }
    }
}
