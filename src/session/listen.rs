//! Accept thread (`session-accept`): owns the listeners (TCP on `session.bind`,
//! the control socket in the runtime directory) and every connection until its
//! request is authorized. It reads request heads without blocking (one
//! `mio::Poll` for all of them), serves the web cockpit's files (`web.rs`,
//! no token: they hold no data), checks the `Origin` of `/ws` and the bearer
//! token, answers `/health` and every refusal itself, and starts a session
//! thread (`ws.rs`) only for an authorized `/ws` upgrade, a `metrics` thread
//! only for an authorized `/metrics` (`health/metrics.rs`). Sends nothing to
//! the state thread; a session thread gets the control channel's sender
//! (`CtlTx`).
//!
//! A thread per accepted connection let half-open connections grow the server
//! to thousands of threads until it aborted (issue 14). Here threads are capped
//! by `MAX_SESSIONS`, and what an unauthenticated peer may hold is capped too
//! (spec/protocol.md, "Limits"):
//! - `MAX_UNAUTHENTICATED` connections whose head is being read; a new one
//!   pushes out the one that has waited longest, which is answered 503. A real
//!   client sends its head as soon as it connects, so stalled connections
//!   (slowloris) cannot keep it out;
//! - failed authentication is answered 403 after a delay that doubles with
//!   each failure from the same address (`FIRST_DELAY` to `MAX_DELAY`), and an
//!   address with `ATTEMPTS_PER_ADDRESS` failures still in their delay gets 429
//!   without its token being looked at: guessing costs time. At most
//!   `MAX_PARKED` connections wait for their delayed answer (past that the 403
//!   goes at once, the attempt counted all the same), and `MAX_ADDRESSES`
//!   addresses are remembered;
//! - `MAX_WRITING` connections whose answer (a file of the cockpit) did not
//!   fit the socket at once and is written as the peer reads it, for
//!   `WRITE_DEADLINE` at most; a new one pushes out the oldest.
//!
//! The control socket serves the same routes. Its connections are
//! authorized once, on accept, by the kernel's word on who connected
//! (`SO_PEERCRED`: the server's own user only) and need no token (`Peer`).
//!
//! Our own listener instead of tiny_http: tiny_http's upgraded stream has no
//! clone, no timeout and no file descriptor, so a session could not both read
//! commands and push events on it.

use super::http::{error_body, parse_head, response, Head, HeadError, MAX_HEAD};
use super::sock::{Peer, Sock};
use super::web;
use super::ws;
use crate::bus::{CtlTx, SessionId};
use crate::config::{parse_origin, same_host, BindAddr, Origin};
use crate::credit::Credit;
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// WebSocket sessions open at once (one thread each). Past it, `/ws` gets 503.
pub const MAX_SESSIONS: usize = 64;
/// `/metrics` scrapes answered at once (one thread each). Past it, 503.
pub const MAX_SCRAPES: usize = 4;
/// Connections whose request head is being read.
pub const MAX_UNAUTHENTICATED: usize = 16;
/// Time a client gets to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Delay of the 403 for an address's first failed authentication; it doubles
/// with each further failure, up to `MAX_DELAY`. A mistyped token costs a
/// person a fifth of a second.
pub const FIRST_DELAY: Duration = Duration::from_millis(200);
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failed attempts an address may have in their delay at once; with `MAX_DELAY`
/// that is at most one guess every 2.5 s.
pub const ATTEMPTS_PER_ADDRESS: usize = 4;
/// Connections that wait for their delayed 403.
pub const MAX_PARKED: usize = 16;
/// An address's failures are forgotten after this long without one.
const FORGET: Duration = Duration::from_secs(600);
/// Addresses whose failures are remembered.
const MAX_ADDRESSES: usize = 1024;
/// Connections whose answer is being written as the peer reads it.
pub const MAX_WRITING: usize = 16;
/// Time a peer gets to read an answer that did not fit its socket at once.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// The subprotocol a browser offers with its token (spec/protocol.md, "From a
/// browser"); the 101 names it when, and only when, the client offered it.
pub const SUBPROTOCOL: &str = "flowlayer.v1";
/// Prefix of the subprotocol that carries the token from a browser, which
/// cannot set `Authorization` on a WebSocket.
const BEARER_PROTOCOL: &str = "bearer.";
/// After shutdown begins, how long heads already being read may take to
/// finish and be answered (server.md section 5: in-flight requests get 2 s).
pub const HTTP_GRACE: Duration = Duration::from_secs(2);

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
const LOCAL_LISTENER: Token = Token(2);
/// The first token of a connection.
const FIRST_CONN: usize = 3;
/// How long writing a `/metrics` answer may take.
const METRICS_WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// The running Session API.
pub struct SessionHandle {
    /// The TCP address it listens on, when `session.bind` is set.
    pub addr: Option<SocketAddr>,
    /// The control socket, when there is one.
    pub socket: Option<PathBuf>,
    stopper: Stopper,
    thread: JoinHandle<()>,
}

/// Stops the accept thread without waiting for it (the state thread's part of
/// shutdown: it must not wait).
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Stops accepting new connections (shutdown step 1). Sessions already open
    /// keep working until the state thread closes them.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // A failed wake means the accept thread is gone already.
        let _ = self.waker.wake();
    }
}

impl SessionHandle {
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Stops accepting (if not done yet) and waits for the accept thread, which
    /// ends at most `HTTP_GRACE` after the stop.
    pub fn finish(self) {
        self.stopper.stop();
        // The accept thread does not panic; if it did, there is nothing to wait for.
        let _ = self.thread.join();
    }
}

/// The address a local client dials for a listening address (`0.0.0.0` -> loopback).
pub fn dial_addr(addr: &SocketAddr) -> String {
    let mut a = *addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a.to_string()
}

/// Who may use the Session API.
pub struct Access {
    /// The bearer token.
    pub token: String,
    /// Origins besides the listener's own whose pages may open `/ws`
    /// (`session.allowedOrigins`).
    pub allowed_origins: Vec<Origin>,
}

/// Where the Session API listens: TCP with who may use it, the control
/// socket, or both.
pub struct Listen<'a> {
    pub tcp: Option<(&'a BindAddr, Access)>,
    pub socket: Option<&'a Path>,
}

/// Why the Session API could not start.
#[derive(Debug)]
pub enum ListenError {
    /// `session.bind` (the address as configured).
    Tcp { bind: String, error: std::io::Error },
    /// The control socket.
    Socket { path: PathBuf, error: std::io::Error },
    /// The accept thread's poll, waker or thread.
    Setup(std::io::Error),
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::Tcp { bind, error } => {
                write!(f, "session API: cannot listen on {bind}: {error}")
            }
            ListenError::Socket { path, error } => {
                write!(f, "control socket {}: {error}", path.display())
            }
            ListenError::Setup(e) => write!(f, "session API: {e}"),
        }
    }
}

/// Binds the listeners now (so a busy address fails before any service
/// starts) and starts the accept thread. `instance_id` is the run's
/// (`runtime::Instance`), sent in every `hello`.
pub fn start(
    listen: Listen,
    ctl: CtlTx,
    instance_id: Arc<str>,
) -> Result<SessionHandle, ListenError> {
    let poll = Poll::new().map_err(ListenError::Setup)?;
    let (mut tcp, mut addr) = (None, None);
    // Without TCP nobody can present a token: it is never compared.
    let mut access = Access { token: String::new(), allowed_origins: Vec::new() };
    if let Some((bind, a)) = listen.tcp {
        let tcp_err = |error| ListenError::Tcp { bind: bind.to_string(), error };
        let mut l = bind_tcp(bind).map_err(tcp_err)?;
        addr = Some(l.local_addr().map_err(tcp_err)?);
        poll.registry().register(&mut l, LISTENER, Interest::READABLE).map_err(tcp_err)?;
        tcp = Some(l);
        access = a;
    }
    let mut local = None;
    if let Some(path) = listen.socket {
        let sock_err = |error| ListenError::Socket { path: path.to_path_buf(), error };
        let mut l = bind_local(path).map_err(sock_err)?;
        poll.registry().register(&mut l, LOCAL_LISTENER, Interest::READABLE).map_err(sock_err)?;
        local = Some((l, path.to_path_buf()));
    }
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(ListenError::Setup)?);
    let stopper = Stopper { flag: Arc::new(AtomicBool::new(false)), waker };
    let socket = local.as_ref().map(|(_, p)| p.clone());
    let acceptor = Acceptor {
        poll,
        listener: tcp,
        local,
        uid: nix::unistd::geteuid().as_raw(),
        access,
        ctl,
        seats: Credit::new(MAX_SESSIONS),
        scrapes: Credit::new(MAX_SCRAPES),
        instance_id,
        next_session: 1,
        next_conn: FIRST_CONN,
        conns: HashMap::new(),
        reading: VecDeque::new(),
        writing: VecDeque::new(),
        penalties: Penalties::default(),
        stop: stopper.flag.clone(),
        grace_end: None,
    };
    let thread = std::thread::Builder::new()
        .name("session-accept".into())
        .spawn(move || acceptor.run())
        .map_err(ListenError::Setup)?;
    Ok(SessionHandle { addr, socket, stopper, thread })
}

fn bind_tcp(bind: &BindAddr) -> std::io::Result<TcpListener> {
    let host = bind.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, bind.port).to_socket_addrs()?.collect();
    let l = std::net::TcpListener::bind(&addrs[..])?;
    l.set_nonblocking(true)?;
    Ok(TcpListener::from_std(l))
}

/// The control socket, mode 0600. Its directory (0700) already keeps other
/// users out; the mode and `SO_PEERCRED` on accept are the next two doors.
fn bind_local(path: &Path) -> std::io::Result<UnixListener> {
    // Instance ids are unique, so a file there is a leftover of nothing alive.
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

struct Conn {
    sock: Sock,
    peer: Peer,
    stage: Stage,
}

enum Stage {
    /// Its head is being read; closed unanswered at `until`.
    Reading { buf: Vec<u8>, until: Instant },
    /// Failed authentication: `answer` goes out at `at`.
    Parked { at: Instant, answer: Vec<u8> },
    /// An answer too large for the socket at once: the rest goes out as the
    /// peer reads; closed unfinished at `until`.
    Writing { answer: web::Answer, sent: usize, until: Instant },
}

impl Conn {
    fn due(&self) -> Instant {
        match &self.stage {
            Stage::Reading { until, .. } => *until,
            Stage::Parked { at, .. } => *at,
            Stage::Writing { until, .. } => *until,
        }
    }
}

struct Acceptor {
    poll: Poll,
    /// `None` once shutdown began, or without `session.bind`.
    listener: Option<TcpListener>,
    /// The control socket and its path; `None` once shutdown began, or
    /// without one.
    local: Option<(UnixListener, PathBuf)>,
    /// This process's user: the only one the control socket serves.
    uid: u32,
    access: Access,
    ctl: CtlTx,
    /// One permit per open session, held until the state thread has its `Closed`.
    seats: Credit,
    /// One permit per `/metrics` scrape being answered.
    scrapes: Credit,
    instance_id: Arc<str>,
    next_session: u64,
    next_conn: usize,
    conns: HashMap<Token, Conn>,
    /// The connections whose head is being read, oldest first.
    reading: VecDeque<Token>,
    /// The connections whose answer is being written, oldest first.
    writing: VecDeque<Token>,
    penalties: Penalties,
    stop: Arc<AtomicBool>,
    /// Set when shutdown began: the moment the last connections are dropped.
    grace_end: Option<Instant>,
}

impl Acceptor {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            // No connection waiting, no timeout: an idle accept thread sleeps.
            let next = self.conns.values().map(Conn::due).chain(self.grace_end).min();
            let timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    return;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    LOCAL_LISTENER => self.accept_local(),
                    WAKE => {}
                    t => self.ready(t),
                }
            }
            if self.stop.load(Ordering::SeqCst) && self.grace_end.is_none() {
                self.begin_stop();
            }
            self.expire(Instant::now());
            if let Some(end) = self.grace_end {
                if self.conns.is_empty() || Instant::now() >= end {
                    return;
                }
            }
        }
    }

    /// Shutdown: no new connections; delayed answers go now; heads being read
    /// get `HTTP_GRACE` at most.
    fn begin_stop(&mut self) {
        let end = Instant::now() + HTTP_GRACE;
        self.grace_end = Some(end);
        self.listener = None;
        if let Some((_, path)) = self.local.take() {
            // Nobody should find a socket that no longer answers.
            let _ = std::fs::remove_file(path);
        }
        for conn in self.conns.values_mut() {
            match &mut conn.stage {
                Stage::Reading { until, .. } | Stage::Writing { until, .. } => {
                    *until = (*until).min(end)
                }
                Stage::Parked { at, .. } => *at = Instant::now(),
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((sock, peer)) => self.admit(Sock::Tcp(sock), Peer::Ip(peer.ip())),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock: all taken. Anything else (out of file descriptors):
                // the connection stays in the kernel's queue until the next one.
                Err(_) => return,
            }
        }
    }

    /// Takes every connection waiting on the control socket: its own user's,
    /// that is; anyone else's (who got past the file modes, root for one) is
    /// answered 403.
    fn accept_local(&mut self) {
        loop {
            let Some((listener, _)) = &self.local else { return };
            match listener.accept() {
                Ok((sock, _)) => {
                    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
                    let uid = getsockopt(&sock, PeerCredentials).map(|c| c.uid()).ok();
                    if uid == Some(self.uid) {
                        self.admit(Sock::Unix(sock), Peer::Local);
                    } else {
                        let who = uid.map_or("an unknown user".into(), |u| format!("uid {u}"));
                        let message =
                            format!("this control socket serves uid {} only, not {who}", self.uid);
                        let body = error_body("forbidden", &message);
                        send_and_close(Sock::Unix(sock), &response(403, &body, None));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn admit(&mut self, mut sock: Sock, peer: Peer) {
        if self.reading.len() >= MAX_UNAUTHENTICATED {
            self.push_out_oldest();
        }
        let token = Token(self.next_conn);
        self.next_conn += 1;
        if self.poll.registry().register(&mut sock, token, Interest::READABLE).is_err() {
            return;
        }
        sock.set_nodelay();
        let until = Instant::now() + HEAD_DEADLINE;
        let stage = Stage::Reading { buf: Vec::new(), until };
        self.conns.insert(token, Conn { sock, peer, stage });
        self.reading.push_back(token);
        // Its head may be here already (a client writes it right after connecting).
        self.read(token);
    }

    /// Takes a connection out of the tables.
    fn take(&mut self, token: Token) -> Option<Conn> {
        self.reading.retain(|t| *t != token);
        self.writing.retain(|t| *t != token);
        self.conns.remove(&token)
    }

    /// The socket of `token` can be read or written.
    fn ready(&mut self, token: Token) {
        match self.conns.get(&token).map(|c| &c.stage) {
            Some(Stage::Reading { .. }) => self.read(token),
            Some(Stage::Writing { .. }) => self.write(token),
            Some(Stage::Parked { .. }) | None => {}
        }
    }

    /// Writes an answer (a file of the cockpit): what the socket takes now,
    /// the rest as the peer reads.
    fn serve(&mut self, token: Token, mut conn: Conn, answer: web::Answer) {
        let mut sent = 0;
        if write_answer(&mut conn.sock, &answer, &mut sent) != Written::Partly {
            return;
        }
        if self.writing.len() >= MAX_WRITING {
            // The oldest has had the longest to read its answer: it goes.
            if let Some(oldest) = self.writing.front().copied() {
                self.take(oldest);
            }
        }
        let registry = self.poll.registry();
        if registry.reregister(&mut conn.sock, token, Interest::WRITABLE).is_err() {
            return;
        }
        let until = Instant::now() + WRITE_DEADLINE;
        conn.stage = Stage::Writing { answer, sent, until };
        self.conns.insert(token, conn);
        self.writing.push_back(token);
    }

    fn write(&mut self, token: Token) {
        let done = {
            let Some(conn) = self.conns.get_mut(&token) else { return };
            let Stage::Writing { answer, sent, .. } = &mut conn.stage else { return };
            write_answer(&mut conn.sock, answer, sent) != Written::Partly
        };
        if done {
            self.take(token);
        }
    }

    /// Makes room for a new connection: the one that has waited longest for
    /// its head is told the server is busy.
    fn push_out_oldest(&mut self) {
        let Some(conn) = self.reading.front().copied().and_then(|t| self.take(t)) else { return };
        let body = error_body("busy", "too many connections waiting to be read: try again");
        send_and_close(conn.sock, &response(503, &body, Some(1)));
    }

    /// Reads what `token`'s connection sent, and acts once its head is complete.
    fn read(&mut self, token: Token) {
        let got = {
            let Some(conn) = self.conns.get_mut(&token) else { return };
            let Stage::Reading { buf, .. } = &mut conn.stage else { return };
            read_head(&mut conn.sock, buf)
        };
        let head = match got {
            Got::Waiting => return,
            Got::Gone => {
                self.take(token);
                return;
            }
            Got::Head(head) => head,
        };
        let Some(conn) = self.take(token) else { return };
        match head {
            Ok(head) => self.route(token, conn, head),
            Err(HeadError::TooLarge) => {
                let body = error_body("bad_request", "request head too large");
                send_and_close(conn.sock, &response(431, &body, None));
            }
            Err(HeadError::Malformed) => {
                let body = error_body("bad_request", "malformed request");
                send_and_close(conn.sock, &response(400, &body, None));
            }
        }
    }

    /// Answers a complete request, or hands an authorized `/ws` to a session thread.
    fn route(&mut self, token: Token, conn: Conn, head: Head) {
        let path = head.path.split('?').next().unwrap_or("").to_string();
        if let Some(answer) = web::public(&head.method, &path) {
            return self.serve(token, conn, answer);
        }
        match conn.peer {
            // The control socket: the kernel and `SO_PEERCRED` vouched for it,
            // and no browser page can open it.
            Peer::Local => self.dispatch(conn, head, &path),
            Peer::Ip(ip) => self.authorize(token, conn, ip, head, &path),
        }
    }

    /// A TCP request: the page's origin, the bearer token, with penalties
    /// for failures.
    fn authorize(&mut self, token: Token, mut conn: Conn, peer: IpAddr, head: Head, path: &str) {
        let now = Instant::now();
        let upgrade = path == "/ws";
        if upgrade {
            if let Some(origin) = foreign_origin(&head, &self.access.allowed_origins) {
                let message = format!(
                    "origin \"{origin}\" may not open /ws: pages of other sites are refused unless session.allowedOrigins lists them"
                );
                let body = error_body("forbidden_origin", &message);
                return send_and_close(conn.sock, &response(403, &body, None));
            }
        }
        // A browser cannot set Authorization on a WebSocket: it offers the
        // token as a subprotocol instead. The header wins when both are there.
        let given = match head.header("authorization") {
            Some(credentials) => bearer(credentials).unwrap_or("").to_string(),
            None => match upgrade.then(|| protocol_token(&head)).flatten() {
                Some(t) => t,
                None => {
                    let body = error_body(
                        "unauthorized",
                        "missing Authorization: Bearer <token> (from a browser: the subprotocol bearer.<token>)",
                    );
                    return send_and_close(conn.sock, &response(401, &body, None));
                }
            },
        };
        if let Some(wait) = self.penalties.refused(peer, now) {
            let secs = wait.as_secs_f64().ceil() as u64;
            let message =
                format!("too many failed authentications from {peer}: try again in {secs} s");
            let body = error_body("too_many_attempts", &message);
            return send_and_close(conn.sock, &response(429, &body, Some(secs)));
        }
        if !same_token(given.as_bytes(), self.access.token.as_bytes()) {
            let delay = self.penalties.fail(peer, now);
            let answer = response(403, &error_body("forbidden", "invalid token"), None);
            if self.parked_count() < MAX_PARKED && self.grace_end.is_none() {
                conn.stage = Stage::Parked { at: now + delay, answer };
                self.conns.insert(token, conn);
            } else {
                send_and_close(conn.sock, &answer);
            }
            return;
        }
        self.dispatch(conn, head, path);
    }

    /// An authorized request: `/health`, `/metrics`, `/ws`, or 404.
    fn dispatch(&mut self, conn: Conn, head: Head, path: &str) {
        match (head.method.as_str(), path) {
            ("GET", "/health") => send_and_close(conn.sock, &response(200, r#"{"ok":true}"#, None)),
            ("GET", "/metrics") => self.scrape(conn),
            ("GET", "/ws") => self.open_session(conn, head),
            _ => {
                let body = error_body("not_found", &format!("no route {path}"));
                send_and_close(conn.sock, &response(404, &body, None))
            }
        }
    }

    /// Hands an authorized `/metrics` to a thread of its own: it waits for the
    /// state thread and reads /proc (`health/metrics.rs`), which this thread
    /// must not. At most `MAX_SCRAPES` at once; past it, 503.
    fn scrape(&mut self, mut conn: Conn) {
        let permit = self.scrapes.try_take(1).filter(|_| self.grace_end.is_none());
        let Some(permit) = permit else {
            let body = error_body("busy", "too many scrapes at once, or shutting down");
            return send_and_close(conn.sock, &response(503, &body, Some(1)));
        };
        let _ = self.poll.registry().deregister(&mut conn.sock);
        let ctl = self.ctl.clone();
        // Out of threads: the connection (moved into the closure) is dropped.
        let _ = std::thread::Builder::new().name("metrics".into()).spawn(move || {
            // The accept thread read the request without blocking; this answer
            // blocks, with a deadline.
            if let Ok(mut stream) = conn.sock.into_blocking(METRICS_WRITE_DEADLINE) {
                crate::health::metrics::serve_metrics(&mut stream, &ctl);
            }
            drop(permit);
        });
    }

    fn parked_count(&self) -> usize {
        self.conns.values().filter(|c| matches!(c.stage, Stage::Parked { .. })).count()
    }

    fn open_session(&mut self, mut conn: Conn, head: Head) {
        if self.grace_end.is_some() {
            let body = error_body("busy", "server shutting down");
            return send_and_close(conn.sock, &response(503, &body, None));
        }
        let Some(accept) = ws::upgrade_key(&head) else {
            let body = error_body("bad_request", "expected a WebSocket upgrade (version 13)");
            return send_and_close(conn.sock, &response(400, &body, None));
        };
        let Some(seat) = self.seats.try_take(1) else {
            let message = format!("too many sessions ({MAX_SESSIONS} open): try again later");
            let body = error_body("busy", &message);
            return send_and_close(conn.sock, &response(503, &body, Some(1)));
        };
        // The session thread registers it with its own poll.
        let _ = self.poll.registry().deregister(&mut conn.sock);
        let id = SessionId(self.next_session);
        self.next_session += 1;
        let protocol = offered_protocols(&head).any(|p| p == SUBPROTOCOL).then_some(SUBPROTOCOL);
        let start = ws::Start {
            sock: conn.sock,
            rest: head.rest,
            accept,
            protocol,
            id,
            ctl: self.ctl.clone(),
            instance_id: self.instance_id.clone(),
            seat,
        };
        // Out of threads: the connection (moved into the closure) is dropped,
        // the server goes on.
        let _ = std::thread::Builder::new()
            .name(format!("session:{}", id.0))
            .spawn(move || ws::run_session(start));
    }

    /// Closes heads that took too long, and sends delayed answers that are due.
    fn expire(&mut self, now: Instant) {
        let due: Vec<Token> =
            self.conns.iter().filter(|(_, c)| c.due() <= now).map(|(t, _)| *t).collect();
        for token in due {
            let Some(conn) = self.take(token) else { continue };
            if let Stage::Parked { answer, .. } = &conn.stage {
                send_and_close(conn.sock, answer);
            }
            // A head not complete in time, or an answer not read in time:
            // nothing more to say, the socket closes.
        }
    }
}

enum Got {
    /// The head is not complete and the socket has nothing more for now.
    Waiting,
    /// The peer closed, or the socket failed.
    Gone,
    Head(Result<Head, HeadError>),
}

/// Reads what the socket has into `buf`, until the head in it is complete.
fn read_head(sock: &mut Sock, buf: &mut Vec<u8>) -> Got {
    let mut chunk = [0u8; 4096];
    loop {
        let want = chunk.len().min(MAX_HEAD - buf.len());
        match sock.read(&mut chunk[..want]) {
            Ok(0) => return Got::Gone,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                match parse_head(buf) {
                    Ok(None) => continue,
                    Ok(Some(head)) => return Got::Head(Ok(head)),
                    Err(e) => return Got::Head(Err(e)),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Got::Waiting,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Got::Gone,
        }
    }
}

/// Writes a short answer without waiting and closes. It fits the socket's empty
/// send buffer; a peer that does not read it loses it, and nothing waits for it.
fn send_and_close(mut sock: Sock, answer: &[u8]) {
    let _ = sock.write(answer);
}

#[derive(PartialEq)]
enum Written {
    /// All of it is on the socket.
    Done,
    /// The socket took part of it and would block.
    Partly,
    /// The peer is gone.
    Failed,
}

/// Writes what is left of `answer` after `sent` bytes, while the socket takes it.
fn write_answer(sock: &mut Sock, answer: &web::Answer, sent: &mut usize) -> Written {
    loop {
        let h = answer.head.len();
        let rest = if *sent < h { &answer.head[*sent..] } else { &answer.body[*sent - h..] };
        if rest.is_empty() {
            return Written::Done;
        }
        match sock.write(rest) {
            Ok(0) => return Written::Failed,
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Written::Partly,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Written::Failed,
        }
    }
}

/// The `Origin` of a request when it names a site other than the listener's
/// own address (its `Host`) and not one of `allowed`: a page of another site
/// trying to open `/ws` with the visitor's browser (cross-site WebSocket
/// hijacking). Requests without `Origin` (programs, not browsers) pass.
fn foreign_origin<'h>(head: &'h Head, allowed: &[Origin]) -> Option<&'h str> {
    let text = head.header("origin")?;
    match parse_origin(text) {
        Some(o) if head.header("host").is_some_and(|h| same_host(&o, h)) => None,
        Some(o) if allowed.contains(&o) => None,
        _ => Some(text),
    }
}

/// The subprotocols a WebSocket client offered, in order, over every
/// `Sec-WebSocket-Protocol` header.
fn offered_protocols(head: &Head) -> impl Iterator<Item = &str> {
    head.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
}

/// The token a browser offered as the subprotocol `bearer.<token>`.
fn protocol_token(head: &Head) -> Option<String> {
    offered_protocols(head).find_map(|p| p.strip_prefix(BEARER_PROTOCOL)).map(String::from)
}

/// The token of an `Authorization` value whose scheme is `Bearer`, in any case
/// (RFC 7235: schemes are case-insensitive).
fn bearer(credentials: &str) -> Option<&str> {
    let (scheme, token) = credentials.trim().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
fn token_matches(credentials: &str, expected: &str) -> bool {
    let given = bearer(credentials).unwrap_or("");
    same_token(given.as_bytes(), expected.as_bytes())
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

/// Failed authentications per address: how many (for the growing delay) and
/// which are still in their delay (for the concurrency cap).
#[derive(Default)]
struct Penalties {
    by_addr: HashMap<IpAddr, Record>,
}

struct Record {
    failures: u32,
    last: Instant,
    /// When the delayed answers of its attempts go out; those still ahead count
    /// against `ATTEMPTS_PER_ADDRESS`, whether or not their connection is open.
    busy: Vec<Instant>,
}

impl Penalties {
    /// How long until `addr` may try again, when it has `ATTEMPTS_PER_ADDRESS`
    /// failures still in their delay.
    fn refused(&mut self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let r = self.by_addr.get_mut(&addr)?;
        r.busy.retain(|t| *t > now);
        if r.busy.len() < ATTEMPTS_PER_ADDRESS {
            return None;
        }
        r.busy.iter().min().map(|t| t.saturating_duration_since(now))
    }

    /// Counts a failure of `addr`; returns how long its answer waits.
    fn fail(&mut self, addr: IpAddr, now: Instant) -> Duration {
        if !self.by_addr.contains_key(&addr) && self.by_addr.len() >= MAX_ADDRESSES {
            self.forget_some(now);
        }
        let r = self.by_addr.entry(addr).or_insert(Record { failures: 0, last: now, busy: vec![] });
        if now.saturating_duration_since(r.last) >= FORGET {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let doublings = (r.failures - 1).min(16);
        let delay = (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY);
        r.busy.retain(|t| *t > now);
        r.busy.push(now + delay);
        delay
    }

    /// Makes room for one more address: drops the forgotten ones, else the one
    /// whose last failure is oldest.
    fn forget_some(&mut self, now: Instant) {
        self.by_addr.retain(|_, r| now.saturating_duration_since(r.last) < FORGET);
        if self.by_addr.len() >= MAX_ADDRESSES {
            let oldest = self.by_addr.iter().min_by_key(|(_, r)| r.last).map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.by_addr.remove(&a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"ab", b"abc"));
        assert!(!same_token(b"abcd", b"abc"));
        assert!(!same_token(b"", b"abc"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k ", " Bearer\tt0k"] {
            assert!(token_matches(v, "t0k"), "{v:?}");
        }
        for v in ["Basic t0k", "Bearert0k", "Bearer", "t0k", "Bearer t0k x"] {
            assert!(!token_matches(v, "t0k"), "{v:?}");
        }
    }

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            method: "GET".into(),
            path: "/ws".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            rest: Vec::new(),
        }
    }

    #[test]
    fn only_pages_of_this_address_or_allowed_origins_may_open_the_socket() {
        let allowed = [parse_origin("http://localhost:5173").unwrap()];
        let host = ("Host", "127.0.0.1:6999");
        assert_eq!(foreign_origin(&head(&[host]), &[]), None, "no Origin: not a browser");
        assert_eq!(foreign_origin(&head(&[host, ("Origin", "http://127.0.0.1:6999")]), &[]), None);
        let evil = head(&[host, ("Origin", "http://evil.example")]);
        assert_eq!(foreign_origin(&evil, &allowed), Some("http://evil.example"));
        let dev = head(&[host, ("Origin", "http://LOCALHOST:5173")]);
        assert_eq!(foreign_origin(&dev, &allowed), None);
        assert_eq!(foreign_origin(&dev, &[]), Some("http://LOCALHOST:5173"));
        let null = head(&[host, ("Origin", "null")]);
        assert_eq!(foreign_origin(&null, &allowed), Some("null"));
        let no_host = head(&[("Origin", "http://127.0.0.1:6999")]);
        assert!(foreign_origin(&no_host, &[]).is_some(), "nothing to compare with");
    }

    #[test]
    fn a_browser_token_is_read_from_the_offered_subprotocols() {
        let h = head(&[("Sec-WebSocket-Protocol", "flowlayer.v1, bearer.fl_abc")]);
        assert_eq!(protocol_token(&h).as_deref(), Some("fl_abc"));
        assert!(offered_protocols(&h).any(|p| p == SUBPROTOCOL));
        let split = head(&[
            ("Sec-WebSocket-Protocol", "flowlayer.v1"),
            ("sec-websocket-protocol", "bearer.t"),
        ]);
        assert_eq!(protocol_token(&split).as_deref(), Some("t"));
        assert_eq!(protocol_token(&head(&[("Sec-WebSocket-Protocol", "flowlayer.v1")])), None);
        assert_eq!(offered_protocols(&head(&[])).count(), 0);
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn failures_wait_longer_each_time_and_few_at_once_per_address() {
        let mut p = Penalties::default();
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..4).map(|_| p.fail(ip(1), t0)).collect();
        assert_eq!(delays, [200, 400, 800, 1600].map(Duration::from_millis));
        assert_eq!(p.refused(ip(1), t0), Some(Duration::from_millis(200)), "four in their delay");
        assert_eq!(p.refused(ip(2), t0), None, "another address is not held back");
        let later = t0 + Duration::from_millis(200);
        assert_eq!(p.refused(ip(1), later), None, "the first delay is over");
        assert_eq!(p.fail(ip(1), later), Duration::from_millis(3200));
        for _ in 0..10 {
            p.fail(ip(1), later);
        }
        assert_eq!(p.fail(ip(1), later), MAX_DELAY);
        // Forgotten after a quiet spell: a person who mistyped long ago starts over.
        assert_eq!(p.fail(ip(1), later + FORGET + MAX_DELAY), FIRST_DELAY);
    }

    #[test]
    fn remembered_addresses_are_bounded() {
        let mut p = Penalties::default();
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESSES + 10 {
            let addr = IpAddr::from((i as u128 + 1).to_be_bytes());
            p.fail(addr, t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(p.by_addr.len(), MAX_ADDRESSES);
        assert!(!p.by_addr.contains_key(&IpAddr::from(1u128.to_be_bytes())), "oldest went");
    }
}
