//! Readiness probe threads (`probe:<svc>`): one per run that has a `ready` probe.
//!
//! Adaptive polling (server.md section 4): a TCP connect every `CONNECT_EVERY`
//! until the port accepts (invisible to the service), then for `http` GETs
//! starting `FIRST_GET_GAP` apart and doubling up to `ready.intervalMs`. The thread
//! sleeps on its cancel channel, so the state thread stops it by dropping the
//! sender (process exited, stop requested) and it never outlives its run.

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
        let outcome = run_probe(&ready, &cancel);
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

/// Sleeps `gap` unless cancelled; false when the probe must end.
fn pause(cancel: &Receiver<()>, gap: Duration) -> bool {
    matches!(cancel.recv_timeout(gap), Err(RecvTimeoutError::Timeout))
}

fn run_probe(ready: &Ready, cancel: &Receiver<()>) -> Outcome {
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
        if addrs.iter().any(|a| TcpStream::connect_timeout(a, ATTEMPT_TIMEOUT).is_ok()) {
            break;
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
        if addrs.iter().any(|a| http_ok(a, url)) {
            return Outcome::Ready;
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

/// One `GET`; true on a 2xx or 3xx status (redirects are not followed).
fn http_ok(addr: &SocketAddr, url: &HttpUrl) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(addr, ATTEMPT_TIMEOUT) else { return false };
    let _ = s.set_read_timeout(Some(ATTEMPT_TIMEOUT));
    let _ = s.set_write_timeout(Some(ATTEMPT_TIMEOUT));
    let host = if url.port == 80 { url.host.clone() } else { format!("{}:{}", url.host, url.port) };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: flowlayer-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 32];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    status_is_ok(&head[..got])
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
    fn only_2xx_and_3xx_count_as_ready() {
        assert!(status_is_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_ok(b"HTTP/1.0 302 Found"));
        assert!(!status_is_ok(b"HTTP/1.1 503 Busy"));
        assert!(!status_is_ok(b"HTTP/1.1 404 x"));
        assert!(!status_is_ok(b"garbage"));
    }
}
