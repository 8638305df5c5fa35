//! Pump threads (`pump:<svc>:<stream>`): one per pipe, reading big chunks, cutting
//! them into lines and sending each chunk's lines to the state thread as one batch.
//!
//! A pump only waits on its pipe and on the bus. The bus is bounded, so a state
//! thread that falls behind slows the child down instead of growing memory; nothing
//! behind the state thread (disk, terminal, clients) can block it.

use crate::bus::{BusTx, Msg, Stream, SvcId};
use std::io::{ErrorKind, Read};

/// Longest line kept whole; longer ones are split (server.md section 6).
pub const MAX_LINE: usize = 64 * 1024;
/// How much one `read` may take from the pipe.
const READ_CHUNK: usize = 256 * 1024;
/// Kernel pipe buffer asked for, so a bursty child rarely waits on a full pipe.
pub const PIPE_SIZE: i32 = 1024 * 1024;

pub struct Pump<R> {
    pub pipe: R,
    pub svc: SvcId,
    pub stream: Stream,
    pub bus: BusTx,
}

impl<R: Read> Pump<R> {
    /// Reads until end of file (or the state thread is gone).
    pub fn run(mut self) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let n = match self.pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let mut lines = Vec::new();
            split_lines(&buf[..n], &mut partial, &mut lines);
            if !lines.is_empty() && !self.send(lines) {
                return;
            }
        }
        if !partial.is_empty() {
            let mut lines = Vec::new();
            push_line(&partial, &mut lines);
            self.send(lines);
        }
    }

    fn send(&self, lines: Vec<String>) -> bool {
        self.bus.send(Msg::Lines { svc: self.svc, stream: self.stream, lines }).is_ok()
    }
}

/// Cuts `chunk` into complete lines, carrying an unfinished one in `partial`.
pub fn split_lines(chunk: &[u8], partial: &mut Vec<u8>, out: &mut Vec<String>) {
    let mut rest = chunk;
    while let Some(i) = rest.iter().position(|b| *b == b'\n') {
        if partial.is_empty() {
            push_line(&rest[..i], out);
        } else {
            partial.extend_from_slice(&rest[..i]);
            push_line(partial, out);
            partial.clear();
        }
        rest = &rest[i + 1..];
    }
    partial.extend_from_slice(rest);
    // An unfinished line may not grow past the cap: emit whole pieces of it now.
    if partial.len() > MAX_LINE {
        let mut start = 0;
        while partial.len() - start > MAX_LINE {
            let cut = char_boundary(&partial[start..], MAX_LINE);
            out.push(String::from_utf8_lossy(&partial[start..start + cut]).into_owned());
            start += cut;
        }
        partial.drain(..start);
    }
}

/// Pushes one line (without its `\n`), dropping a trailing `\r` and splitting it
/// at `MAX_LINE` bytes on character boundaries.
fn push_line(line: &[u8], out: &mut Vec<String>) {
    let mut line = line.strip_suffix(b"\r").unwrap_or(line);
    while line.len() > MAX_LINE {
        let cut = char_boundary(line, MAX_LINE);
        out.push(String::from_utf8_lossy(&line[..cut]).into_owned());
        line = &line[cut..];
    }
    out.push(match std::str::from_utf8(line) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(line).into_owned(),
    });
}

/// Largest cut ≤ `max` that does not fall inside a UTF-8 sequence (when it can).
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    for _ in 0..3 {
        if cut < bytes.len() && cut > 0 && (bytes[cut] & 0xC0) == 0x80 {
            cut -= 1;
        } else {
            break;
        }
    }
    if cut == 0 {
        max.min(bytes.len())
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> (Vec<String>, Vec<u8>) {
        let mut partial = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            split_lines(c, &mut partial, &mut out);
        }
        (out, partial)
    }

    #[test]
    fn lines_are_joined_across_chunks_and_cr_is_dropped() {
        let (out, partial) = split_all(&[b"ab", b"c\r\nde\n\nf"]);
        assert_eq!(out, vec!["abc", "de", ""]);
        assert_eq!(partial, b"f");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let (out, _) = split_all(&[b"a\xffb\n"]);
        assert_eq!(out, vec!["a\u{fffd}b"]);
    }

    #[test]
    fn long_lines_split_at_64k_on_char_boundaries() {
        let mut line = vec![b'x'; MAX_LINE - 1];
        line.extend_from_slice("é".as_bytes()); // straddles the cap
        line.extend_from_slice(b"yz\n");
        let (out, _) = split_all(&[&line]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE - 1);
        assert_eq!(out[1], "éyz");
        let big = vec![b'q'; MAX_LINE * 2 + 10];
        let (out, partial) = split_all(&[&big]);
        assert_eq!(out.len(), 2);
        assert_eq!(partial.len(), 10);
    }
}
