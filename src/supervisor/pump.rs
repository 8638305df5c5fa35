//! Pump threads (`pump:<svc>:<stream>`): one per pipe, reading big chunks, cutting
//! them into lines in place and sending each chunk's complete lines to the state
//! thread as one `Lines` batch (one string plus spans: no allocation per line).
//!
//! A pump only waits on its pipe and on its byte credit. The credit bounds what
//! may wait on the bus, so a state thread that falls behind slows the child down
//! instead of growing memory; nothing behind the state thread (disk, terminal,
//! clients) can block it.

use crate::bus::{BusTx, Msg, Stream, SvcId};
use crate::credit::Credit;
use crate::logs::Lines;
use std::io::{ErrorKind, Read};
use std::time::Duration;

/// Longest line kept whole; longer ones are split (server.md section 6).
pub const MAX_LINE: usize = 64 * 1024;
/// How much one `read` may take from the pipe.
const READ_CHUNK: usize = 256 * 1024;
/// Kernel pipe buffer sizes asked for, largest first, so a bursty child rarely
/// waits on a full pipe while its pump is off the CPU. Unprivileged users may not
/// go past /proc/sys/fs/pipe-max-size (1 MiB by default); the kernel allocates
/// the pages only as data arrives.
pub const PIPE_SIZES: [i32; 3] = [8 * 1024 * 1024, 4 * 1024 * 1024, 1024 * 1024];
/// Bytes of read lines one pump may have waiting for the state thread.
pub const IN_FLIGHT: usize = 8 * 1024 * 1024;
/// A read at least this big that still emptied the pipe means a flood is on...
const NAP_AFTER: usize = 16 * 1024;
/// ...so the pump sleeps this long before reading again, letting the child's
/// writes pile up in the pipe (1 MiB lasts a child ~1 ms at 1 GB/s). Blocked in
/// `read`, the pump is woken by each of the child's writes, and the kernel moves
/// a thread woken that way onto the writer's CPU: pump and child then take turns
/// on one core while the other idles. W1 with the lines going nowhere else
/// (no `logs.dir`, terminal to /dev/null): 1.14x a plain pipe reader without
/// the nap, 1.00x with it (medians of 6). Idle pipes never nap, nor do pipes
/// the kernel would not grow (a 64 KiB pipe fills during a nap).
const NAP: Duration = Duration::from_micros(200);
/// Smallest block glibc does not keep in a thread's cache (its tcache holds
/// blocks up to 1032 bytes). A block of the pump's heap freed by another
/// thread (`state`, the writer) into that thread's cache still counts as in
/// use in the pump's heap, and near its top it keeps the heap from shrinking
/// once a flood is over. So the few small batches a flooding pump sends (the
/// end of a burst) are given at least this much room. Four floods at once
/// left 10.3-18.8 MB behind without it, 10.2-10.7 MB with it (RSS ~2 s
/// after, four and six runs).
const UNCACHED: usize = 1040;

pub struct Pump<R> {
    pub pipe: R,
    pub svc: SvcId,
    pub stream: Stream,
    pub bus: BusTx,
    pub credit: Credit,
    /// The pipe holds at least 1 MiB, so the pump may nap during a flood.
    pub nap: bool,
}

impl<R: Read> Pump<R> {
    /// Reads until end of file (or the state thread is gone).
    pub fn run(mut self) {
        let mut buf = vec![0u8; READ_CHUNK + MAX_LINE];
        // Bytes at the start of `buf` that belong to an unfinished line.
        let mut kept = 0;
        // The last read was a big one.
        let mut flooding = false;
        loop {
            let n = match self.pipe.read(&mut buf[kept..kept + READ_CHUNK]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let (lines, used) = split_lines(&buf[..kept + n], false);
            buf.copy_within(used..kept + n, 0);
            kept = kept + n - used;
            if !lines.is_empty() && !self.send(lines, flooding) {
                return;
            }
            flooding = n >= NAP_AFTER;
            if self.nap && (NAP_AFTER..READ_CHUNK).contains(&n) {
                std::thread::sleep(NAP);
            }
        }
        if kept > 0 {
            let (lines, _) = split_lines(&buf[..kept], true);
            self.send(lines, flooding);
        }
    }

    /// Sends a batch to the state thread; `after_flood`: the read before it was
    /// a big one, so the batch gets at least `UNCACHED` bytes of room.
    fn send(&self, mut lines: Lines, after_flood: bool) -> bool {
        if after_flood {
            make_room(&mut lines);
        }
        let permit = self.credit.take(lines.text.len());
        self.bus.send(Msg::Lines { svc: self.svc, stream: self.stream, lines, permit }).is_ok()
    }
}

/// Cuts `data` into lines: every line ended by `\n` (a trailing `\r` dropped),
/// pieces of at most `MAX_LINE` bytes of an unfinished one, and, at end of file,
/// the unfinished rest. Returns the lines and how many bytes of `data` they used.
pub fn split_lines(data: &[u8], eof: bool) -> (Lines, usize) {
    let mut spans = Vec::new();
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', data) {
        let mut end = nl;
        if end > start && data[end - 1] == b'\r' {
            end -= 1;
        }
        push_spans(data, start, end, &mut spans);
        start = nl + 1;
    }
    let mut used = start;
    if eof && used < data.len() {
        push_spans(data, used, data.len(), &mut spans);
        used = data.len();
    } else if data.len() - used > MAX_LINE {
        // An unfinished line may not grow past the cap: emit whole pieces of it now.
        while data.len() - used > MAX_LINE {
            let cut = char_boundary(&data[used..], MAX_LINE);
            spans.push((used as u32, (used + cut) as u32));
            used += cut;
        }
    }
    let region = &data[..used];
    let lines = match std::str::from_utf8(region) {
        // The usual case: one copy of the whole region, spans stay as they are.
        Ok(text) => Lines { text: text.to_owned(), spans },
        Err(_) => {
            let mut lines = Lines::default();
            for (a, b) in spans {
                lines.push(&String::from_utf8_lossy(&data[a as usize..b as usize]));
            }
            lines
        }
    };
    (lines, used)
}

/// Gives a batch's buffers at least `UNCACHED` bytes each.
fn make_room(lines: &mut Lines) {
    lines.text.reserve(UNCACHED.saturating_sub(lines.text.len()));
    let span = std::mem::size_of::<(u32, u32)>();
    lines.spans.reserve((UNCACHED / span).saturating_sub(lines.spans.len()));
}

/// Spans for one line, split at `MAX_LINE` bytes on character boundaries.
fn push_spans(data: &[u8], mut start: usize, end: usize, spans: &mut Vec<(u32, u32)>) {
    while end - start > MAX_LINE {
        let cut = char_boundary(&data[start..end], MAX_LINE);
        spans.push((start as u32, (start + cut) as u32));
        start += cut;
    }
    spans.push((start as u32, end as u32));
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

    fn all(lines: &Lines) -> Vec<String> {
        (0..lines.len()).map(|i| lines.get(i).to_string()).collect()
    }

    #[test]
    fn complete_lines_are_cut_and_cr_is_dropped() {
        let (lines, used) = split_lines(b"abc\r\nde\n\nf", false);
        assert_eq!(all(&lines), vec!["abc", "de", ""]);
        assert_eq!(used, 9);
        let (lines, used) = split_lines(b"f", true);
        assert_eq!((all(&lines), used), (vec!["f".to_string()], 1));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let (lines, _) = split_lines(b"ok\na\xffb\n", false);
        assert_eq!(all(&lines), vec!["ok", "a\u{fffd}b"]);
    }

    #[test]
    fn long_lines_split_at_64k_on_char_boundaries() {
        let mut line = vec![b'x'; MAX_LINE - 1];
        line.extend_from_slice("é".as_bytes()); // straddles the cap
        line.extend_from_slice(b"yz\n");
        let (lines, _) = split_lines(&line, false);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines.get(0).len(), MAX_LINE - 1);
        assert_eq!(lines.get(1), "éyz");
        let big = vec![b'q'; MAX_LINE * 2 + 10];
        let (lines, used) = split_lines(&big, false);
        assert_eq!(lines.len(), 2);
        assert_eq!(big.len() - used, 10);
    }
}
