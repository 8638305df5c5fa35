//! Everything `flowlayer` prints on stdout: aligned tables, log lines, JSON;
//! colour only on a terminal and never with `NO_COLOR` (stacks.md section 3).
//!
//! Errors go to stderr, from `main` alone. A closed stdout (`| head`) ends
//! the command quietly (`CliError::StdoutClosed`) instead of a panic.

use crate::error::CliError;
use flowlayer_protocol::{LogEntry, Status, Stream};
use serde::Serialize;
use std::io::{BufWriter, IsTerminal, StdoutLock, Write};

pub const RESET: &str = "\x1b[0m";
pub const DIM: &str = "\x1b[2m";
pub const RED: &str = "\x1b[31m";
/// Service name colours, as the server's terminal uses them.
const PALETTE: [&str; 6] = ["\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[32m", "\x1b[96m"];

/// Whether colour is on: a terminal, no `--no-color`, no non-empty `NO_COLOR`.
pub fn color_wanted(no_color: bool) -> bool {
    !no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal()
}

pub fn status_color(s: Status) -> &'static str {
    match s {
        Status::Ready | Status::Running => "\x1b[32m",
        Status::Starting | Status::Stopping => "\x1b[33m",
        Status::Failed => RED,
        Status::Stopped | Status::Unknown => "\x1b[90m",
    }
}

pub struct Out {
    w: BufWriter<StdoutLock<'static>>,
    pub color: bool,
}

impl Out {
    pub fn new(color: bool) -> Out {
        Out { w: BufWriter::new(std::io::stdout().lock()), color }
    }

    pub fn line(&mut self, text: &str) -> Result<(), CliError> {
        self.w
            .write_all(text.as_bytes())
            .and_then(|()| self.w.write_all(b"\n"))
            .map_err(|_| CliError::StdoutClosed)
    }

    pub fn flush(&mut self) -> Result<(), CliError> {
        self.w.flush().map_err(|_| CliError::StdoutClosed)
    }

    /// One JSON document, pretty-printed.
    pub fn json<T: Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value).expect("plain data always encodes");
        self.line(&text)
    }

    /// One JSON line.
    pub fn json_line<T: Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        let text = serde_json::to_string(value).expect("plain data always encodes");
        self.line(&text)
    }

    /// `text` in `color` when colour is on.
    pub fn paint(&self, color: &str, text: &str) -> String {
        if self.color && !color.is_empty() {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    pub fn table(&mut self, table: &Table) -> Result<(), CliError> {
        for line in table.render(self.color) {
            self.line(&line)?;
        }
        Ok(())
    }
}

/// One cell: its text and, when colour is on, its colour.
pub struct Cell {
    pub text: String,
    pub color: &'static str,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), color: "" }
    }

    pub fn colored(text: impl Into<String>, color: &'static str) -> Cell {
        Cell { text: text.into(), color }
    }
}

/// Columns aligned on the widest cell, two spaces apart; the last column is
/// not padded (no trailing blanks). Headers are upper case, dim on a terminal.
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    /// Columns whose content is aligned to the right (numbers).
    pub right: Vec<usize>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table { headers, rows: Vec::new(), right: Vec::new() }
    }

    pub fn render(&self, color: bool) -> Vec<String> {
        let cols = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.text.chars().count());
            }
        }
        let mut out = Vec::with_capacity(self.rows.len() + 1);
        let header: Vec<Cell> =
            self.headers.iter().map(|h| Cell::colored(h.to_string(), DIM)).collect();
        for row in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, c) in row.iter().enumerate().take(cols) {
                let pad = width[i] - c.text.chars().count();
                let last = i + 1 == cols;
                let text = if color && !c.color.is_empty() {
                    format!("{}{}{RESET}", c.color, c.text)
                } else {
                    c.text.clone()
                };
                if self.right.contains(&i) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&text);
                } else {
                    line.push_str(&text);
                    if !last {
                        line.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    line.push_str("  ");
                }
            }
            out.push(line.trim_end().to_string());
        }
        out
    }
}

/// Log lines as `<service padded> | <message>`, the way the server's terminal
/// prints them (stderr and the server's own lines marked).
pub struct LogFormat {
    pub width: usize,
    pub color: bool,
    /// Service names in the order that picks their colour.
    pub names: Vec<String>,
    pub raw: bool,
}

impl LogFormat {
    pub fn line(&self, e: &LogEntry) -> String {
        if self.raw {
            return e.message.clone();
        }
        let pad = self.width.saturating_sub(e.service.chars().count());
        let marker = match (e.stream, self.color) {
            (Stream::Stdout, _) => "",
            (Stream::Stderr, false) => "[stderr] ",
            (Stream::System, false) => "[flowlayer] ",
            (Stream::Stderr, true) => "\x1b[31m[stderr]\x1b[0m ",
            (Stream::System, true) => "\x1b[1m[flowlayer]\x1b[0m ",
        };
        if self.color {
            let i = self.names.iter().position(|n| *n == e.service).unwrap_or(0);
            let c = PALETTE[i % PALETTE.len()];
            format!("{c}{}{RESET}{} | {marker}{}", e.service, " ".repeat(pad), e.message)
        } else {
            format!("{}{} | {marker}{}", e.service, " ".repeat(pad), e.message)
        }
    }
}

/// Bytes for people: `512 B`, `3.4 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell_without_trailing_blanks() {
        let mut t = Table::new(vec!["SERVICE", "STATUS", "CPU"]);
        t.right = vec![2];
        t.rows.push(vec![Cell::plain("api"), Cell::plain("ready"), Cell::plain("0.25")]);
        t.rows.push(vec![Cell::plain("worker-long"), Cell::plain("failed"), Cell::plain("")]);
        assert_eq!(
            t.render(false),
            ["SERVICE      STATUS   CPU", "api          ready   0.25", "worker-long  failed"]
        );
        let colored = t.render(true);
        assert!(colored[0].starts_with(DIM), "headers dim: {colored:?}");
    }

    #[test]
    fn log_lines_are_padded_and_marked_like_the_server_terminal() {
        let f = LogFormat { width: 6, color: false, names: vec![], raw: false };
        let e = |stream, message: &str| LogEntry {
            seq: 1,
            service: "api".into(),
            phase: Status::Running,
            stream,
            message: message.into(),
            timestamp: "t".into(),
        };
        assert_eq!(f.line(&e(Stream::Stdout, "hi")), "api    | hi");
        assert_eq!(f.line(&e(Stream::Stderr, "bad")), "api    | [stderr] bad");
        assert_eq!(f.line(&e(Stream::System, "exited")), "api    | [flowlayer] exited");
        let raw = LogFormat { raw: true, ..f };
        assert_eq!(raw.line(&e(Stream::Stderr, "bad")), "bad");
    }

    #[test]
    fn byte_counts_pick_a_binary_unit() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
    }
}
