//! Terminal thread (`terminal`): prints boot lines, status changes and every log
//! line as `<service> | <message>`, coloured when allowed.
//!
//! The state thread never waits for the terminal: log lines beyond `MAX_BACKLOG`
//! queued ones are not printed (counted, and said once the terminal catches up);
//! status and boot lines are never dropped. A paused terminal (Ctrl-S, a stuck
//! pipe) therefore cannot slow a child. Nor is the terminal sent log lines while
//! the JSONL writer is far behind (`behind`): both run at idle priority,
//! so during a flood that outruns the CPU they would share what the services
//! leave, and the services wait for the writer, not for the terminal. W1x4 with
//! the terminal to a file: 2.33x -> 2.07x the pipe baseline (medians of 5), the
//! terminal's CPU in it 182 ms -> 3-5 ms.

use crate::bus::{Status, Stream};
use crate::logs::Batch;
use crate::state::StatusNote;
use crossbeam_channel::{Receiver, Sender};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Log lines that may wait for the terminal before new ones are skipped.
const MAX_BACKLOG: usize = 50_000;

enum Out {
    Say { text: String, prefixed: bool },
    Status { name: usize, status: Status, note: StatusNote },
    Logs(Arc<Batch>),
    Sync(Sender<()>),
}

/// The state thread's handle.
pub struct Printer {
    tx: Sender<Out>,
    backlog: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

pub struct Style {
    pub color: bool,
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const PALETTE: [&str; 6] = ["\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[32m", "\x1b[96m"];

fn status_color(s: Status) -> &'static str {
    match s {
        Status::Ready | Status::Running => "\x1b[32m",
        Status::Starting | Status::Stopping => "\x1b[33m",
        Status::Failed => "\x1b[31m",
        Status::Stopped | Status::Unknown => "\x1b[90m",
    }
}

impl Printer {
    pub fn say(&self, text: impl Into<String>, prefixed: bool) {
        // The terminal thread lives as long as the process.
        let _ = self.tx.send(Out::Say { text: text.into(), prefixed });
    }

    pub fn status(&self, svc: usize, status: Status, note: StatusNote) {
        if note != StatusNote::Quiet {
            let _ = self.tx.send(Out::Status { name: svc, status, note });
        }
    }

    /// Queues a batch for printing. Its lines are counted as not shown instead
    /// when `MAX_BACKLOG` lines are waiting already or the disk copy is `behind`,
    /// unless they are the server's own lines about a service (exit codes,
    /// probe timeouts): those are few and always shown.
    pub fn logs(&self, batch: &Arc<Batch>, behind: bool) {
        let n = batch.len();
        let own = batch.stream == Stream::System;
        if !own && (behind || self.backlog.load(Ordering::Relaxed) + n > MAX_BACKLOG) {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        self.backlog.fetch_add(n, Ordering::Relaxed);
        let _ = self.tx.send(Out::Logs(batch.clone()));
    }

    /// Waits (bounded) until everything queued has been written.
    pub fn sync(&self, timeout: std::time::Duration) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Out::Sync(tx)).is_ok() {
            // Past the timeout the terminal is stuck; exiting matters more.
            let _ = rx.recv_timeout(timeout);
        }
    }
}

pub fn spawn_printer(names: Arc<[String]>, style: Style) -> std::io::Result<Printer> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let backlog = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let prefixes = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let pad = " ".repeat(width.saturating_sub(name.chars().count()));
            let text = if style.color {
                let c = PALETTE[i % PALETTE.len()];
                format!("{c}{name}{RESET}{pad} {DIM}|{RESET} ")
            } else {
                format!("{name}{pad} | ")
            };
            text.into_bytes()
        })
        .collect();
    let term = Terminal {
        prefixes,
        names,
        style,
        backlog: backlog.clone(),
        dropped: dropped.clone(),
        reported: 0,
        out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        broken: false,
    };
    std::thread::Builder::new().name("terminal".into()).spawn(move || term.run(rx))?;
    Ok(Printer { tx, backlog, dropped })
}

struct Terminal {
    names: Arc<[String]>,
    /// `<service padded> | `, coloured when allowed, per service.
    prefixes: Vec<Vec<u8>>,
    style: Style,
    backlog: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    reported: u64,
    out: std::io::BufWriter<std::io::Stdout>,
    /// stdout is gone (closed pipe): keep draining, stop writing.
    broken: bool,
}

impl Terminal {
    fn run(mut self, rx: Receiver<Out>) {
        crate::background::run_in_background();
        loop {
            let msg = match rx.try_recv() {
                Ok(m) => m,
                Err(_) => {
                    self.flush();
                    match rx.recv() {
                        Ok(m) => m,
                        Err(_) => return,
                    }
                }
            };
            match msg {
                Out::Say { text, prefixed } => {
                    let line = if prefixed { format!("{}{text}", self.prefix()) } else { text };
                    self.line(&line);
                }
                Out::Status { name, status, note } => self.status(name, status, note),
                Out::Logs(batch) => {
                    self.batch(&batch);
                    let left = self.backlog.fetch_sub(batch.len(), Ordering::Relaxed);
                    if left == batch.len() {
                        self.report_dropped();
                    }
                }
                Out::Sync(done) => {
                    self.report_dropped();
                    self.flush();
                    let _ = done.send(());
                }
            }
        }
    }

    fn prefix(&self) -> String {
        if self.style.color {
            format!("{DIM}[flowlayer]{RESET} ")
        } else {
            "[flowlayer] ".into()
        }
    }

    fn status(&mut self, svc: usize, status: Status, note: StatusNote) {
        let name = self.names[svc].clone();
        let st = if self.style.color {
            format!("{}{}{RESET}", status_color(status), status.as_str())
        } else {
            status.as_str().to_string()
        };
        let text = match note {
            StatusNote::Boot { wave, detail } => {
                let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
                format!("{}boot: wave {wave} │ {name} → {st}{detail}", self.prefix())
            }
            StatusNote::Runtime | StatusNote::Quiet => format!("{}{name} → {st}", self.prefix()),
        };
        self.line(&text);
    }

    fn batch(&mut self, b: &Batch) {
        if self.broken {
            return;
        }
        let marker: &[u8] = match (b.stream, self.style.color) {
            (Stream::Stdout, _) => b"",
            (Stream::Stderr, false) => b"[stderr] ",
            (Stream::System, false) => b"[flowlayer] ",
            (Stream::Stderr, true) => b"\x1b[31m[stderr]\x1b[0m ",
            (Stream::System, true) => b"\x1b[1m[flowlayer]\x1b[0m ",
        };
        let prefix = &self.prefixes[b.svc.0];
        for i in 0..b.len() {
            let r = self
                .out
                .write_all(prefix)
                .and_then(|_| self.out.write_all(marker))
                .and_then(|_| self.out.write_all(b.message(i).as_bytes()))
                .and_then(|_| self.out.write_all(b"\n"));
            if r.is_err() {
                self.broken = true;
                return;
            }
        }
    }

    fn report_dropped(&mut self) {
        let d = self.dropped.load(Ordering::Relaxed);
        if d > self.reported {
            let n = d - self.reported;
            self.reported = d;
            let text = format!(
                "{}terminal behind: {n} log line(s) not shown here (kept in the log store)",
                self.prefix()
            );
            self.line(&text);
        }
    }

    fn line(&mut self, text: &str) {
        if self.broken {
            return;
        }
        if writeln!(self.out, "{text}").is_err() {
            self.broken = true;
        }
    }

    fn flush(&mut self) {
        if !self.broken && self.out.flush().is_err() {
            self.broken = true;
        }
    }
}
