//! WebSocket session thread (the `http-conn` thread that accepted `/ws`): owns the
//! socket, reads commands, writes frames queued by the state thread.
//!
//! It sleeps in `mio::Poll` on the socket and a `Waker` with no timeout: the state
//! thread queues a frame and wakes it, so an idle session costs no CPU. It pulls
//! frames from its bounded queue only while the socket takes them; a client that
//! stops reading leaves the queue full, and the state thread then drops its `log`
//! events or, for a status event, asks it to close (protocol.md).
//!
//! Outgoing frames arrive already encoded for the wire (shared by all sessions),
//! so sending one is a copy. tungstenite reads and answers pings and closes; its
//! writes land in the same ordered buffer (`Conn::out`) as ours, so frames never
//! interleave on the socket.

use super::http::{error_body, respond, Head};
use super::listen::Ctx;
use crate::bus::{Msg, Outbox, SessionId, CAPABILITIES, KICK_NONE, KICK_SHUTDOWN, KICK_TOO_SLOW};
use crate::wire;
use flowlayer_protocol::{parse_incoming, ErrorBody, ErrorCode, Incoming};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

/// Status events and replies a session may have queued before it is closed.
pub const OUTBOX_FRAMES: usize = 1024;
/// `log` events a session may have queued before further ones are dropped.
pub const OUTBOX_LOGS: usize = 4096;
/// Kernel send buffer of a session socket: a reply waits behind at most this
/// much of log events already handed to the kernel. 64 KiB answered `get_logs`
/// during a flood in 1.0-1.3 ms (medians) where 256 KiB took 1.5-1.8 ms, and
/// cost the log throughput to 19 reading clients nothing measurable.
const SEND_BUFFER: usize = 64 * 1024;
/// Largest client message (protocol.md: close 1009 beyond).
pub const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;
/// How long a session closed for an oversized message keeps reading it away.
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);
/// Bytes of frames taken from the queues at a time (then written to the socket).
const WRITE_CHUNK: usize = 64 * 1024;

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);

fn upgrade_ok(head: &Head) -> Option<String> {
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

pub fn run_session(mut stream: TcpStream, head: Head, id: SessionId, ctx: &Ctx) {
    let Some(accept) = upgrade_ok(&head) else {
        let body = error_body("bad_request", "expected a WebSocket upgrade (version 13)");
        return respond(&mut stream, 400, &body);
    };
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(reply.as_bytes()).is_err()
        || stream.set_read_timeout(None).is_err()
        || stream.set_nonblocking(true).is_err()
    {
        return;
    }
    // A smaller buffer only costs throughput to a client that reads at full speed.
    let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER);
    let Ok(poll) = Poll::new() else { return };
    let Ok(waker) = Waker::new(poll.registry(), WAKE) else { return };
    let mut sock = mio::net::TcpStream::from_std(stream);
    if poll.registry().register(&mut sock, SOCKET, Interest::READABLE | Interest::WRITABLE).is_err()
    {
        return;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
        .write_buffer_size(0);
    let conn = Conn { sock, out: Vec::new(), sent: 0 };
    let ws = WebSocket::from_partially_read(conn, head.rest, Role::Server, Some(config));
    let (tx, rx) = crossbeam_channel::bounded(OUTBOX_FRAMES);
    let (log_tx, log_rx) = crossbeam_channel::bounded(OUTBOX_LOGS);
    let kick = Arc::new(AtomicU8::new(KICK_NONE));
    let outbox = Outbox { frames: tx, logs: log_tx, kick: kick.clone(), waker: Arc::new(waker) };
    let mut s = Session { ws, id, ctx, frames: rx, logs: log_rx, kick, drain_before_close: false };
    let hello = wire::hello(&ctx.instance_id);
    s.ws.get_mut().out.extend_from_slice(&hello);
    if s.write_queued() == Flow::Done {
        return;
    }
    if ctx.bus.send(Msg::Opened { session: id, outbox }).is_err() {
        return;
    }
    s.run(poll);
    // The state thread may be gone at shutdown; then nobody needs to know.
    let _ = ctx.bus.send(Msg::Closed { session: id });
}

#[derive(PartialEq)]
enum Flow {
    Go,
    Done,
}

/// The socket as tungstenite sees it: reads come from the socket, writes go to
/// `out`, which the session writes to the socket in order.
struct Conn {
    sock: mio::net::TcpStream,
    out: Vec<u8>,
    /// Bytes of `out` already on the socket.
    sent: usize,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Session<'a> {
    ws: WebSocket<Conn>,
    id: SessionId,
    ctx: &'a Ctx,
    frames: crossbeam_channel::Receiver<crate::bus::Frame>,
    logs: crossbeam_channel::Receiver<crate::bus::Frame>,
    kick: Arc<AtomicU8>,
    /// Closed for an oversized message: read and discard the rest of it before
    /// dropping the socket, or the kernel answers the unread bytes with a reset
    /// that can destroy the close frame before the client reads it.
    drain_before_close: bool,
}

impl Session<'_> {
    fn run(&mut self, mut poll: Poll) {
        let mut events = Events::with_capacity(8);
        loop {
            if self.read_all() == Flow::Done {
                // Best effort: the answer to a client's close, if any.
                self.write_queued();
                if self.drain_before_close {
                    self.drain(&mut poll, &mut events);
                }
                return;
            }
            if self.check_kick() == Flow::Done {
                return;
            }
            if self.write_queued() == Flow::Done {
                return;
            }
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() != ErrorKind::Interrupted {
                    return;
                }
            }
        }
    }

    /// Writes `out`, refilling it from the queue, while the socket takes it.
    fn write_queued(&mut self) -> Flow {
        // tungstenite's own frames (pongs, close) into `out`; it cannot block.
        if self.ws.flush().is_err() {
            return Flow::Done;
        }
        loop {
            let c = self.ws.get_mut();
            if c.sent == c.out.len() {
                c.out.clear();
                c.sent = 0;
                // Replies and status events first, then log events.
                while c.out.len() < WRITE_CHUNK {
                    let Ok(frame) = self.frames.try_recv().or_else(|_| self.logs.try_recv()) else {
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
        let _ = self.ws.flush();
        let c = self.ws.get_mut();
        let _ = c.sock.write(&c.out[c.sent..]);
    }

    fn read_all(&mut self) -> Flow {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => self.on_text(t.as_str()),
                Ok(Message::Binary(_)) => {
                    let e =
                        ErrorBody::new(ErrorCode::InvalidJson, "binary frames are not accepted");
                    self.reply(wire::error(None, e))
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Flow::Go,
                Err(WsError::Capacity(_)) => {
                    self.close(CloseCode::Size, "message larger than 1 MiB");
                    self.drain_before_close = true;
                    return Flow::Done;
                }
                Err(_) => return Flow::Done,
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
        self.ws.get_mut().out.extend_from_slice(&frame);
    }

    fn on_text(&mut self, text: &str) {
        match parse_incoming(text, CAPABILITIES) {
            Incoming::Command { id, cmd } => {
                // A failed send means shutdown; the close follows.
                let _ = self.ctx.bus.send(Msg::Command { session: self.id, id, cmd });
            }
            Incoming::Error { id, error } => self.reply(wire::error(id, error)),
            Incoming::Reject { id, error } => self.reply(wire::ack(id, Some(error))),
        }
    }
}
