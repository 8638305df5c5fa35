//! Accept thread (`session-accept`) and connection threads (`http-conn`): reads
//! each request head, checks the bearer token, answers `/health` and errors, and
//! hands `/ws` upgrades to a WebSocket session thread (`ws.rs`).
//!
//! Our own listener instead of tiny_http: tiny_http's upgraded stream has no
//! clone, no timeout and no file descriptor, so a session could not both read
//! commands and push events on it.

use super::http::{error_body, read_head, respond, Head, HeadError};
use super::ws;
use crate::bus::{BusTx, SessionId};
use crate::config::BindAddr;
use crate::credit::Credit;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub struct SessionHandle {
    pub addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    /// Plain HTTP requests being answered, one permit each: shutdown waits for
    /// them (server.md section 5: up to 2 s).
    pub requests: Credit,
}

impl SessionHandle {
    /// Stops accepting new connections (shutdown step 1). Sessions already open
    /// keep working until the server exits.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread out of accept(); it then sees the flag.
        let _ = TcpStream::connect(dial_socket(&self.addr));
    }
}

fn dial_socket(addr: &SocketAddr) -> SocketAddr {
    let mut a = *addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// The address a local client dials for a listening address (`0.0.0.0` -> loopback).
pub fn dial_addr(addr: &SocketAddr) -> String {
    dial_socket(addr).to_string()
}

/// Binds the listener now (so a busy address fails before any service starts)
/// and starts the accept thread.
pub fn start(bind: &BindAddr, token: String, bus: BusTx) -> std::io::Result<SessionHandle> {
    let host = bind.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, bind.port).to_socket_addrs()?.collect();
    let listener = TcpListener::bind(&addrs[..])?;
    let addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let requests = Credit::new(usize::MAX);
    let ctx = Arc::new(Ctx {
        token,
        bus,
        next_id: AtomicU64::new(1),
        instance_id: crate::token::uuid_v4()?,
        requests: requests.clone(),
    });
    let flag = stopping.clone();
    std::thread::Builder::new()
        .name("session-accept".into())
        .spawn(move || run_accept(listener, ctx, flag))?;
    Ok(SessionHandle { addr, stopping, requests })
}

pub struct Ctx {
    token: String,
    pub bus: BusTx,
    next_id: AtomicU64,
    pub instance_id: String,
    requests: Credit,
}

fn run_accept(listener: TcpListener, ctx: Arc<Ctx>, stopping: Arc<AtomicBool>) {
    for conn in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        let ctx = ctx.clone();
        let spawned =
            std::thread::Builder::new().name("http-conn".into()).spawn(move || serve(stream, ctx));
        if spawned.is_err() {
            // Out of threads: this connection is dropped, the server goes on.
            continue;
        }
    }
}

/// Constant-time comparison: the time taken does not depend on where the
/// strings first differ.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ b);
    }
    diff == 0
}

fn authorize(head: &Head, token: &str) -> Result<(), (u16, String)> {
    let Some(value) = head.header("authorization") else {
        return Err((401, error_body("unauthorized", "missing Authorization: Bearer <token>")));
    };
    let given =
        value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or("");
    if same_token(given.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err((403, error_body("forbidden", "invalid token")))
    }
}

fn serve(mut stream: TcpStream, ctx: Arc<Ctx>) {
    let request = ctx.requests.take(1);
    let _ = stream.set_nodelay(true);
    let head = match read_head(&mut stream) {
        Ok(h) => h,
        Err(HeadError::TooLarge) => {
            return respond(&mut stream, 431, &error_body("bad_request", "request head too large"))
        }
        Err(HeadError::Malformed) => {
            return respond(&mut stream, 400, &error_body("bad_request", "malformed request"))
        }
        Err(HeadError::Gone) => return,
    };
    if let Err((code, body)) = authorize(&head, &ctx.token) {
        return respond(&mut stream, code, &body);
    }
    let path = head.path.split('?').next().unwrap_or("");
    match (head.method.as_str(), path) {
        ("GET", "/health") => respond(&mut stream, 200, r#"{"ok":true}"#),
        ("GET", "/ws") => {
            // A session is not a request in flight: shutdown closes it instead.
            drop(request);
            let id = SessionId(ctx.next_id.fetch_add(1, Ordering::Relaxed));
            ws::run_session(stream, head, id, &ctx);
        }
        _ => respond(&mut stream, 404, &error_body("not_found", &format!("no route {path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"ab", b"abc"));
        assert!(!same_token(b"abcd", b"abc"));
        assert!(!same_token(b"", b"abc"));
    }
}
