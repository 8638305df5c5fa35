//! `flowlayer logs [SERVICE...] [-f] [-n N] [--since SEQ|10m] [--stream ...]
//! [--grep RE]`: print log lines and exit, or follow them (stacks.md
//! section 3, spec/cli.md).
//!
//! Printing pages back from the newest line with `before_seq` until it has
//! `-n` matching lines (or reaches `--since`). Following reads the live `log`
//! events and keeps a cursor, the highest `seq` it has accounted for: a line
//! at or below it is a repeat and is skipped, and a hole in the event
//! stream (the server drops events for a session that falls behind, seqs
//! are consecutive within a server run) is filled with `get_logs`
//! `after_seq` = cursor. When the server goes away (a restart), the same
//! fill runs on the next server once it is back, so every line is printed
//! exactly once: seqs never go backwards across server runs (server.md
//! section 6), and with `logs.dir` the lines of the previous run come back
//! from the files.

use super::Session;
use crate::args::{Args, Output};
use crate::error::CliError;
use crate::grep::Pattern;
use crate::out::{LogFormat, Out};
use crate::stack::{Stack, CONNECT_TIMEOUT};
use crate::when::{now_ms, timestamp_ms, Since};
use flowlayer_client::{ClientError, Connection};
use flowlayer_protocol::{Command, Event, LogEntry, LogQuery, LogsPage, Stream};
use serde::Serialize;
use std::time::Duration;

/// Entries asked for per `get_logs` page, doubling while a search goes back
/// through history (a `--grep` that matches little), up to `PAGE_MAX`.
const PAGE_FIRST: usize = 1000;
const PAGE_MAX: usize = 16_000;
/// Waits between attempts to reach a stack that went away.
const RECONNECT_BACKOFF: [Duration; 5] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Which lines to print.
struct Filter {
    /// Empty: every service.
    services: Vec<String>,
    /// Empty: every stream.
    streams: Vec<Stream>,
    grep: Option<Pattern>,
}

impl Filter {
    fn keep(&self, e: &LogEntry) -> bool {
        (self.services.is_empty() || self.services.contains(&e.service))
            && (self.streams.is_empty() || self.streams.contains(&e.stream))
            && self.grep.as_ref().is_none_or(|p| p.is_match(&e.message))
    }

    /// One service is selected on the server; several are filtered here.
    fn query_service(&self) -> Option<String> {
        match self.services.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }
}

/// A range of entries to read back: newest first, until `want` are kept or
/// the range (or `from_ms`) is exhausted.
struct Range {
    after: Option<u64>,
    before: Option<u64>,
    /// `None`: every entry of the range (the first page's size when the
    /// server picks it: `server_default`).
    want: Option<usize>,
    /// `--since 10m`: entries older than this end the range.
    from_ms: Option<i64>,
    /// Ask without a `limit`: the server's own view size becomes `want`.
    server_default: bool,
}

#[derive(Serialize)]
struct Doc<'a> {
    entries: &'a [LogEntry],
}

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let mut s = Session::open(args)?;
    s.check(&args.names)?;
    let filter = Filter {
        services: args.names.clone(),
        streams: args.streams.clone(),
        grep: args.grep.clone(),
    };
    let all = s.names();
    let shown: &[String] = if args.names.is_empty() { &all } else { &args.names };
    let fmt = LogFormat {
        width: shown.iter().map(|n| n.chars().count()).max().unwrap_or(0),
        color: out.color,
        names: all.clone(),
        raw: args.output == Output::Raw,
    };
    let (after, from_ms) = match args.since {
        Some(Since::Seq(n)) => (Some(n), None),
        Some(Since::Ago(d)) => (None, Some(now_ms() - d.as_millis() as i64)),
        None => (None, None),
    };
    let range = Range {
        after,
        before: None,
        want: args.lines,
        from_ms,
        server_default: args.lines.is_none() && args.since.is_none(),
    };
    let (entries, cursor) = read_range(&mut s, &filter, range)?;
    let json = args.output == Output::Json;
    if !args.follow {
        s.close();
        if json {
            return out.json(&Doc { entries: &entries });
        }
        for e in &entries {
            out.line(&fmt.line(e))?;
        }
        return Ok(());
    }
    let mut printer = Printer { out, fmt, json };
    for e in &entries {
        printer.print(e)?;
    }
    printer.out.flush()?;
    follow(s, &filter, cursor, &mut printer)
}

struct Printer<'a> {
    out: &'a mut Out,
    fmt: LogFormat,
    /// JSON lines.
    json: bool,
}

impl Printer<'_> {
    fn print(&mut self, e: &LogEntry) -> Result<(), CliError> {
        if self.json {
            self.out.json_line(e)
        } else {
            let line = self.fmt.line(e);
            self.out.line(&line)
        }
    }
}

/// Reads `range` back from the server; returns the entries kept by `filter`
/// in ascending `seq`, and the highest `seq` the server returned (or the
/// range's `after`): the cursor a follow starts from.
fn read_range(
    s: &mut Session,
    filter: &Filter,
    range: Range,
) -> Result<(Vec<LogEntry>, u64), CliError> {
    let mut kept = Vec::new(); // newest first
    let mut cursor = range.after.unwrap_or(0);
    let mut before = range.before;
    let mut want = range.want;
    let mut page_size = PAGE_FIRST;
    let mut first = true;
    loop {
        let limit = if first && range.server_default {
            None
        } else {
            // At least 1: even `-n 0` learns where the log ends (the cursor).
            Some(want.map_or(page_size, |w| w.saturating_sub(kept.len()).clamp(1, page_size)))
        };
        let q = LogQuery {
            service: filter.query_service(),
            limit,
            after_seq: range.after,
            before_seq: before,
        };
        let page: LogsPage = s.call_as(&Command::GetLogs(q), "logs")?;
        if first {
            if let Some(last) = page.entries.last() {
                cursor = cursor.max(last.seq);
            }
            if range.server_default {
                want = Some(page.effective_limit as usize);
            }
            first = false;
        }
        let mut done = !page.truncated || page.entries.is_empty();
        for e in page.entries.iter().rev() {
            if want.is_some_and(|w| kept.len() >= w) {
                done = true;
                break;
            }
            let too_old = range.from_ms.zip(timestamp_ms(&e.timestamp)).is_some_and(|(f, t)| t < f);
            if too_old {
                done = true;
                break;
            }
            if filter.keep(e) {
                kept.push(e.clone());
            }
        }
        if done || want.is_some_and(|w| kept.len() >= w) {
            break;
        }
        before = page.entries.first().map(|e| e.seq);
        page_size = (page_size * 2).min(PAGE_MAX);
    }
    kept.reverse();
    Ok((kept, cursor))
}

/// Follows the live stream until the process is ended; across server
/// restarts.
fn follow(
    mut s: Session,
    filter: &Filter,
    mut cursor: u64,
    p: &mut Printer,
) -> Result<(), CliError> {
    // The seq of the last `log` event of this connection, any service.
    let mut stream_seq: u64 = 0;
    let mut missed = s.conn.missed_logs();
    loop {
        match s.conn.next_event(None) {
            Ok(Some(Event::Log(e))) => {
                let dropped = s.conn.missed_logs() != missed;
                let last = cursor.max(stream_seq);
                if dropped || e.seq > last + 1 {
                    cursor = fill(&mut s, filter, cursor, Some(e.seq), p)?;
                    missed = s.conn.missed_logs();
                }
                stream_seq = e.seq;
                if e.seq > cursor {
                    if filter.keep(&e) {
                        p.print(&e)?;
                    }
                    cursor = e.seq;
                }
                p.out.flush()?;
            }
            Ok(Some(_)) | Ok(None) => {}
            Err(e) if e.is_disconnect() => {
                let before = s.conn.instance_id().map(str::to_string);
                s = come_back(&s.stack, &e)?;
                let restarted = s.conn.instance_id().map(str::to_string) != before;
                if restarted {
                    eprintln!("flowlayer: stack \"{}\" is back (server restarted)", s.stack.name);
                }
                let gone: Vec<&String> =
                    filter.services.iter().filter(|n| !s.names().contains(n)).collect();
                for n in gone {
                    eprintln!(
                        "flowlayer: stack \"{}\" has no service \"{n}\" any more",
                        s.stack.name
                    );
                }
                stream_seq = 0;
                missed = s.conn.missed_logs();
                cursor = fill(&mut s, filter, cursor, None, p)?;
                p.out.flush()?;
            }
            Err(e) => return Err(CliError::from_client(&s.stack.name, "logs -f", e)),
        }
    }
}

/// Prints the lines between `cursor` and `before` (or the newest); returns
/// the new cursor.
fn fill(
    s: &mut Session,
    filter: &Filter,
    cursor: u64,
    before: Option<u64>,
    p: &mut Printer,
) -> Result<u64, CliError> {
    let range =
        Range { after: Some(cursor), before, want: None, from_ms: None, server_default: false };
    let (entries, newest) = read_range(s, filter, range)?;
    for e in &entries {
        p.print(e)?;
    }
    // Below `before`, everything is now accounted for.
    Ok(match before {
        Some(b) => cursor.max(b - 1),
        None => newest,
    })
}

/// Waits until the stack can be reached again; says so once on stderr.
fn come_back(stack: &Stack, why: &ClientError) -> Result<Session, CliError> {
    eprintln!("flowlayer: stack \"{}\" went away ({why}); waiting for it to come back", stack.name);
    let mut attempt = 0;
    loop {
        std::thread::sleep(RECONNECT_BACKOFF[attempt.min(RECONNECT_BACKOFF.len() - 1)]);
        attempt += 1;
        let Some(found) = stack.find_again() else { continue };
        match Connection::open(&found.target, CONNECT_TIMEOUT) {
            Ok(conn) => return Ok(Session { stack: found, conn }),
            Err(e @ (ClientError::TokenRequired { .. } | ClientError::TokenRejected { .. })) => {
                return Err(CliError::Client { stack: stack.name.clone(), error: e })
            }
            Err(_) => {}
        }
    }
}
