//! WebSocket session thread (the `http-conn` thread that accepted `/ws`): owns the
//! socket, reads commands, writes frames queued by the state thread.
//!
//! It sleeps in `mio::Poll` on the socket and a `Waker` with no timeout: the state
//! thread queues a frame and wakes it, so an idle session costs no CPU. It pulls
//! frames from its bounded queue only while the socket takes them; a client that
//! stops reading leaves the queue full, and the state thread then drops its `log`
//! events or, for a status event, asks it to close (protocol.md).

use super::http::{error_body, respond, Head};
use super::listen::Ctx;
use super::wire::{self, Incoming, CAPABILITIES};
use crate::bus::{Msg, Outbox, SessionId, KICK_NONE, KICK_SHUTDOWN, KICK_TOO_SLOW};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

/// Frames a session may have queued before its `log` events are dropped.
pub const OUTBOX_FRAMES: usize = 4096;
/// Largest client message (protocol.md: close 1009 beyond).
pub const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;
/// Frames moved from the queue to the socket between two flushes.
const BATCH: usize = 256;

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
        .write_buffer_size(64 * 1024);
    let ws = WebSocket::from_partially_read(sock, head.rest, Role::Server, Some(config));
    let (tx, rx) = crossbeam_channel::bounded(OUTBOX_FRAMES);
    let kick = Arc::new(AtomicU8::new(KICK_NONE));
    let outbox = Outbox { frames: tx, kick: kick.clone(), waker: Arc::new(waker) };
    let mut s = Session { ws, id, ctx, frames: rx, kick, blocked: false };
    let hello = wire::event(
        "hello",
        serde_json::json!({
            "protocol_version": 1,
            "server": "flowlayer",
            "capabilities": CAPABILITIES,
            "server_version": env!("CARGO_PKG_VERSION"),
            "instance_id": ctx.instance_id,
        }),
    );
    if s.ws.write(Message::text(hello.to_string())).is_err() || s.flush() == Flow::Done {
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

struct Session<'a> {
    ws: WebSocket<mio::net::TcpStream>,
    id: SessionId,
    ctx: &'a Ctx,
    frames: crossbeam_channel::Receiver<crate::bus::Frame>,
    kick: Arc<AtomicU8>,
    /// The socket refused our last flush: wait for it to become writable.
    blocked: bool,
}

impl Session<'_> {
    fn run(&mut self, mut poll: Poll) {
        let mut events = Events::with_capacity(8);
        loop {
            if self.read_all() == Flow::Done || self.check_kick() == Flow::Done {
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

    fn flush(&mut self) -> Flow {
        match self.ws.flush() {
            Ok(()) => {
                self.blocked = false;
                Flow::Go
            }
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                self.blocked = true;
                Flow::Go
            }
            Err(_) => Flow::Done,
        }
    }

    /// Moves queued frames to the socket while it takes them.
    fn write_queued(&mut self) -> Flow {
        loop {
            if self.flush() == Flow::Done {
                return Flow::Done;
            }
            if self.blocked {
                return Flow::Go;
            }
            let mut moved = 0;
            while moved < BATCH {
                let Ok(frame) = self.frames.try_recv() else { break };
                match self.ws.write(Message::text(frame.to_string())) {
                    Ok(()) => {}
                    Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => return Flow::Done,
                }
                moved += 1;
            }
            if moved == 0 {
                return Flow::Go;
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
        let _ = self.ws.close(Some(CloseFrame { code, reason: reason.into() }));
        // Best effort: the client may not be reading at all.
        let _ = self.ws.flush();
        Flow::Done
    }

    fn read_all(&mut self) -> Flow {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => self.on_text(t.as_str()),
                Ok(Message::Binary(_)) => {
                    self.reply(wire::error(None, "invalid_json", "binary frames are not accepted"))
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Flow::Go,
                Err(WsError::Capacity(_)) => {
                    let _ = self.ws.close(Some(CloseFrame {
                        code: CloseCode::Size,
                        reason: "message larger than 1 MiB".into(),
                    }));
                    let _ = self.ws.flush();
                    return Flow::Done;
                }
                Err(_) => return Flow::Done,
            }
        }
    }

    fn reply(&mut self, frame: crate::bus::Frame) {
        // Errors surface on the next read or flush, which ends the session.
        let _ = self.ws.write(Message::text(frame.to_string()));
    }

    fn on_text(&mut self, text: &str) {
        match wire::parse_incoming(text) {
            Incoming::Command { id, cmd } => {
                // A failed send means shutdown; the close follows.
                let _ = self.ctx.bus.send(Msg::Command { session: self.id, id, cmd });
            }
            Incoming::Error { id, code, message } => {
                self.reply(wire::error(id.as_deref(), code, &message))
            }
            Incoming::Reject { id, code, message } => {
                let f = crate::state::Failure::new(code, message);
                self.reply(wire::ack(&id, &Err(f)))
            }
        }
    }
}
