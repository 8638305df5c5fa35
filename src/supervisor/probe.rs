//! Readiness probe threads (`probe:<svc>`): one per run that has a `ready` probe.
//!
//! Adaptive polling (server.md section 4): a TCP connect every `CONNECT_EVERY`
//! until the port accepts (invisible to the service), then for `http` GETs
//! starting `FIRST_GET_GAP` apart and doubling up to `ready.intervalMs`. The thread
//! sleeps on its cancel channel, so the state thread stops it by dropping the
//! sender (process exited, stop requested) and it never outlives its run.
//!
//! Failures are reported sparingly (`Msg::ProbeFailing`): the first one, each
//! change of the error text, and the running count at most once a
//! `PROBE_REPORT_EVERY`, so the timeline can say "connection refused ×12 in
//! 6.0 s" without a message per attempt.

use crate::bus::{BusTx, Msg, RunId, SvcId};
use crate::config::{HttpUrl, Probe, Ready};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Gap between connect attempts while the port is closed.
const CONNECT_EVERY: Duration = Duration::from_millis(10);
/// Gap before the second HTTP GET; doubles up to `ready.intervalMs`.
const FIRST_GET_GAP: Duration = Duration::from_millis(25);
/// Per-attempt limit on connecting and on reading the status line.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// While the error stays the same, how often its count is reported.
pub const PROBE_REPORT_EVERY: Duration = Duration::from_secs(1);

/// The run to probe, and how.
pub struct ProbeJob {
    pub svc: SvcId,
    pub run: RunId,
    pub name: String,
    pub ready: Ready,
}

pub fn spawn_probe(job: ProbeJob, bus: BusTx, cancel: Receiver<()>) {
    let ProbeJob { svc, run, name, ready } = job;
    let name = format!("probe:{name}");
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let mut failures = Failures::default();
        let mut report = |error: String| {
            if let Some((error, count)) = failures.note(error, Instant::now()) {
                // A failed send means the state thread is gone.
                let _ = bus.send(Msg::ProbeFailing { svc, run, error, count });
            }
        };
        let outcome = run_probe(&ready, &cancel, &mut report);
        let msg = match outcome {
            Outcome::Ready => Msg::ProbeReady { svc, run },
            Outcome::TimedOut => Msg::ProbeTimedOut { svc, run },
            Outcome::Cancelled => return,
        };
        // A failed send means the state thread is gone.
        let _ = bus.send(msg);
    });
    if spawned.is_err() {
        // Without a thread there is no probe: the service stays `running`, never `ready`.
        eprintln!("[flowlayer] cannot start a readiness probe thread");
    }
}

enum Outcome {
    Ready,
    TimedOut,
    Cancelled,
}

/// The current run of failures with one error text, and when it was last told.
#[derive(Default)]
struct Failures {
    error: String,
    count: u32,
    told: Option<Instant>,
}

impl Failures {
    /// Counts a failure; returns what to report now, if anything.
    fn note(&mut self, error: String, now: Instant) -> Option<(String, u32)> {
        if error != self.error || self.told.is_none() {
            self.error = error;
            self.count = 1;
        } else {
            self.count += 1;
            if self.told.is_some_and(|t| now < t + PROBE_REPORT_EVERY) {
                return None;
            }
        }
        self.told = Some(now);
        Some((self.error.clone(), self.count))
    }
}

/// An I/O error as a probe failure says it: `connection refused`, `timed out`.
fn describe(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        TimedOut | WouldBlock => "timed out".into(),
        ConnectionReset => "connection reset".into(),
        ConnectionAborted => "connection aborted".into(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

/// One connect to any of `addrs`: the first that accepts, or why none did.
fn connect(addrs: &[SocketAddr], host: &str) -> Result<TcpStream, String> {
    let mut last = format!("cannot resolve \"{host}\"");
    for a in addrs {
        match TcpStream::connect_timeout(a, ATTEMPT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = describe(&e),
        }
    }
    Err(last)
}

/// Sleeps `gap` unless cancelled; false when the probe must end.
fn pause(cancel: &Receiver<()>, gap: Duration) -> bool {
    matches!(cancel.recv_timeout(gap), Err(RecvTimeoutError::Timeout))
}

fn run_probe(ready: &Ready, cancel: &Receiver<()>, report: &mut dyn FnMut(String)) -> Outcome {
    let deadline = ready.timeout.map(|t| Instant::now() + t);
    let (host, port) = match &ready.probe {
        Probe::Tcp { port } => ("127.0.0.1".to_string(), *port),
        Probe::Http { url } => (url.host.clone(), url.port),
    };
    let timed_out = || deadline.is_some_and(|d| Instant::now() >= d);
    let mut addrs: Vec<SocketAddr> = Vec::new();
    // Phase 1: wait until the port accepts.
    loop {
        if addrs.is_empty() {
            addrs =
                (host.as_str(), port).to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
        }
        match connect(&addrs, &host) {
            Ok(_) => break,
            Err(e) => report(e),
        }
        if timed_out() {
            return Outcome::TimedOut;
        }
        if !pause(cancel, CONNECT_EVERY) {
            return Outcome::Cancelled;
        }
    }
    let Probe::Http { url } = &ready.probe else { return Outcome::Ready };
    // Phase 2: GET until 2xx/3xx.
    let mut gap = FIRST_GET_GAP;
    loop {
        match http_ok(&addrs, url) {
            Ok(()) => return Outcome::Ready,
            Err(e) => report(e),
        }
        if timed_out() {
            return Outcome::TimedOut;
        }
        if !pause(cancel, gap) {
            return Outcome::Cancelled;
        }
        gap = (gap * 2).min(ready.interval);
    }
}

/// One `GET`: ok on a 2xx or 3xx status (redirects are not followed), else
/// what went wrong (`HTTP 503`, `connection refused`).
fn http_ok(addrs: &[SocketAddr], url: &HttpUrl) -> Result<(), String> {
    let mut s = connect(addrs, &url.host)?;
    let _ = s.set_read_timeout(Some(ATTEMPT_TIMEOUT));
    let _ = s.set_write_timeout(Some(ATTEMPT_TIMEOUT));
    let host = if url.port == 80 { url.host.clone() } else { format!("{}:{}", url.host, url.port) };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: flowlayer-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path
    );
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Err(describe(&e));
    }
    let mut head = [0u8; 32];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut head[got..]) {
            Ok(0) => break,
            Err(e) if got == 0 => return Err(describe(&e)),
            Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let head = &head[..got];
    if status_is_ok(head) {
        return Ok(());
    }
    if head.len() >= 12 && head.starts_with(b"HTTP/1.") {
        return Err(format!("HTTP {}", String::from_utf8_lossy(&head[9..12])));
    }
    Err(if got == 0 { "closed without an answer".into() } else { "not an HTTP answer".into() })
}

fn status_is_ok(head: &[u8]) -> bool {
    // "HTTP/1.1 204 ..."
    if head.len() < 12 || !head.starts_with(b"HTTP/1.") {
        return false;
    }
    matches!(head[9], b'2' | b'3') && head[10].is_ascii_digit() && head[11].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_first_on_change_and_then_once_a_second() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(
            f.note("connection refused".into(), ms(0)),
            Some(("connection refused".into(), 1))
        );
        assert_eq!(f.note("connection refused".into(), ms(10)), None);
        assert_eq!(f.note("connection refused".into(), ms(990)), None);
        assert_eq!(
            f.note("connection refused".into(), ms(1000)),
            Some(("connection refused".into(), 4))
        );
        assert_eq!(f.note("HTTP 503".into(), ms(1010)), Some(("HTTP 503".into(), 1)));
    }

    #[test]
    fn only_2xx_and_3xx_count_as_ready() {
        assert!(status_is_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_ok(b"HTTP/1.0 302 Found"));
        assert!(!status_is_ok(b"HTTP/1.1 503 Busy"));
        assert!(!status_is_ok(b"HTTP/1.1 404 x"));
        assert!(!status_is_ok(b"garbage"));
    }
}
