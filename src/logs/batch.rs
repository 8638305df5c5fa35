//! Log lines in batches: what one pump read in one go, stored as one string.
//!
//! A batch is created once by the state thread and shared (`Arc`) by the ring,
//! the JSONL writer, the terminal and the sessions: no per-line allocation and
//! one clock read per batch. The JSON encoder is hand-written because it runs
//! once per line on the hottest path; it escapes only what JSON requires.

use crate::bus::{Status, Stream, SvcId};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Complete lines, back to back in `text`; line `i` is `text[spans[i].0..spans[i].1]`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Lines {
    pub text: String,
    pub spans: Vec<(u32, u32)>,
}

impl Lines {
    pub fn one(line: String) -> Lines {
        let end = line.len() as u32;
        Lines { text: line, spans: vec![(0, end)] }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, i: usize) -> &str {
        let (a, b) = self.spans[i];
        &self.text[a as usize..b as usize]
    }

    /// The same lines in buffers of their own size, when these have more than
    /// twice the room they use: a pump gives even a one-line batch a block too
    /// big for glibc's per-thread caches (`UNCACHED` in supervisor/pump.rs),
    /// which would otherwise stay that big in the ring for as long as it is kept.
    pub fn fitted(self) -> Lines {
        let roomy = |cap: usize, len: usize| cap > 2 * len;
        if !roomy(self.text.capacity(), self.text.len())
            && !roomy(self.spans.capacity(), self.spans.len())
        {
            return self;
        }
        Lines { text: self.text.as_str().to_owned(), spans: self.spans.to_vec() }
    }

    /// Appends one line.
    #[cfg(test)]
    pub fn push(&mut self, line: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(line);
        self.spans.push((start, self.text.len() as u32));
    }

    /// Appends one line of bytes, each invalid UTF-8 sequence replaced by
    /// U+FFFD (as `String::from_utf8_lossy` does, without a copy of the line).
    pub fn push_lossy(&mut self, line: &[u8]) {
        let start = self.text.len() as u32;
        for chunk in line.utf8_chunks() {
            self.text.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                self.text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        self.spans.push((start, self.text.len() as u32));
    }
}

/// Lines of one service and stream, with their seq, phase and timestamp.
#[derive(Debug)]
pub struct Batch {
    pub svc: SvcId,
    pub stream: Stream,
    /// The service's status when the lines were read.
    pub phase: Status,
    /// Unix time in milliseconds (one clock read for the batch).
    pub ts_ms: i64,
    /// Seq of the first line; line `i` has `seq0 + i`.
    pub seq0: u64,
    pub lines: Lines,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn seq(&self, i: usize) -> u64 {
        self.seq0 + i as u64
    }

    pub fn message(&self, i: usize) -> &str {
        self.lines.get(i)
    }

    pub fn timestamp(&self) -> Timestamp {
        timestamp(self.ts_ms)
    }

    /// Lines `from..` in a buffer of their own, just big enough for them.
    pub fn copy_from(&self, from: usize) -> Batch {
        let spans = &self.lines.spans[from..];
        let base = spans.first().map_or(0, |s| s.0);
        let end = spans.last().map_or(base, |s| s.1);
        let lines = Lines {
            text: self.lines.text[base as usize..end as usize].to_owned(),
            spans: spans.iter().map(|&(a, b)| (a - base, b - base)).collect(),
        };
        Batch { lines, seq0: self.seq(from), ..*self }
    }

    /// For tests: a batch of service 0 read at 2026-11-27T14:55:21.123Z.
    #[cfg(test)]
    pub fn sample(phase: Status, stream: Stream, seq0: u64, lines: Lines) -> Batch {
        Batch { svc: SvcId(0), phase, stream, ts_ms: 1_795_791_321_123, seq0, lines }
    }
}

/// One line of a shared batch.
#[derive(Debug, Clone)]
pub struct LineRef {
    pub batch: Arc<Batch>,
    pub i: u32,
}

impl LineRef {
    #[cfg(test)]
    pub fn seq(&self) -> u64 {
        self.batch.seq(self.i as usize)
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// An RFC 3339 UTC timestamp with milliseconds: `2026-11-27T14:55:21.123Z`.
pub type Timestamp = [u8; 24];

pub fn format_timestamp(ms: i64) -> String {
    String::from_utf8(timestamp(ms).to_vec()).expect("timestamp is ASCII")
}

pub fn timestamp(ms: i64) -> Timestamp {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for k in (at..at + width).rev() {
            out[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 3, millis);
    out
}

/// True for bytes a JSON string cannot hold as they are.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// True when some byte of `bytes` must be escaped: the common case, a line with
/// nothing to escape, in one pass that never looks for where.
fn any_escape(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |acc, &b| acc | needs_escape(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| needs_escape(b))
}

/// Index of the first byte at or after `from` that must be escaped. Checks 16
/// bytes at a time without branching inside a block, which the compiler turns
/// into vector code, so text between escapes (after an ANSI colour code, say)
/// is skipped a block at a time.
pub(super) fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut blocks = bytes[from..].chunks_exact(16);
    let mut at = from;
    for block in &mut blocks {
        if block.iter().fold(false, |acc, &b| acc | needs_escape(b)) {
            return block.iter().position(|&b| needs_escape(b)).map(|i| at + i);
        }
        at += 16;
    }
    blocks.remainder().iter().position(|&b| needs_escape(b)).map(|i| at + i)
}

/// Appends `s` as a JSON string literal.
#[inline]
pub fn push_json_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.push(b'"');
    if any_escape(bytes) {
        push_escaped(bytes, out);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// The body of a string literal that has something to escape. Out of line, so
/// the plain case stays small where it is inlined. Lines with colour codes (an
/// escaped ESC each) encode at 24 ns a line instead of 56 ns with a
/// byte-by-byte scan after the first escape (100-byte lines; plain ones take
/// 13.5 ns, as before).
#[inline(never)]
fn push_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    let mut done = 0;
    while let Some(i) = next_escape(bytes, done) {
        out.extend_from_slice(&bytes[done..i]);
        match bytes[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            // serde_json's short forms too, so a line encodes as serde would.
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
        }
        done = i + 1;
    }
    out.extend_from_slice(&bytes[done..]);
}

fn push_u64(v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(Digits::new(v).as_bytes());
}

/// A number as decimal digits that can be incremented in place.
struct Digits {
    buf: [u8; 20],
    /// Index of the first digit.
    start: usize,
}

impl Digits {
    fn new(mut v: u64) -> Digits {
        // Zeros to the left, so `increment` can carry into them.
        let mut buf = [b'0'; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Digits { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn increment(&mut self) {
        for k in (0..20).rev() {
            if self.buf[k] == b'9' {
                self.buf[k] = b'0';
            } else {
                self.buf[k] += 1;
                self.start = self.start.min(k);
                return;
            }
        }
    }
}

/// The parts of a line's JSON that are the same for the whole batch.
pub struct BatchJson {
    /// `,"service":"api","phase":"running","stream":"stdout","message":`
    middle: Vec<u8>,
    /// `,"timestamp":"…"}`
    tail: Vec<u8>,
}

impl BatchJson {
    pub fn new(batch: &Batch, service: &str) -> BatchJson {
        let mut middle = Vec::with_capacity(96);
        middle.extend_from_slice(b",\"service\":");
        push_json_str(service, &mut middle);
        middle.extend_from_slice(b",\"phase\":\"");
        middle.extend_from_slice(batch.phase.as_str().as_bytes());
        middle.extend_from_slice(b"\",\"stream\":\"");
        middle.extend_from_slice(batch.stream.as_str().as_bytes());
        middle.extend_from_slice(b"\",\"message\":");
        let mut tail = Vec::with_capacity(40);
        tail.extend_from_slice(b",\"timestamp\":\"");
        tail.extend_from_slice(&batch.timestamp());
        tail.extend_from_slice(b"\"}");
        BatchJson { middle, tail }
    }

    /// Appends every line of the batch as JSONL (one object and a newline each).
    /// The seq is kept as decimal digits and incremented in place rather than
    /// formatted from scratch for each line (with the one reservation for the
    /// batch: the writer's CPU in a 1M-line flood 81-88 ms -> 69-73 ms).
    pub fn write_all(&self, batch: &Batch, out: &mut Vec<u8>) {
        let per_line = 24 + self.middle.len() + self.tail.len();
        out.reserve(batch.lines.text.len() + batch.len() * per_line);
        let mut seq = Digits::new(batch.seq0);
        for i in 0..batch.len() {
            out.extend_from_slice(b"{\"seq\":");
            out.extend_from_slice(seq.as_bytes());
            out.extend_from_slice(&self.middle);
            push_json_str(batch.message(i), out);
            out.extend_from_slice(&self.tail);
            out.push(b'\n');
            seq.increment();
        }
    }

    /// Appends line `i` as one JSON object (no newline): the shape of protocol.md's
    /// `log` payload and of each JSONL line.
    pub fn write(&self, batch: &Batch, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"seq\":");
        push_u64(batch.seq(i), out);
        out.extend_from_slice(&self.middle);
        push_json_str(batch.message(i), out);
        out.extend_from_slice(&self.tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roomy_lines_are_copied_to_their_size_and_others_kept_as_they_are() {
        let mut roomy = Lines { text: String::with_capacity(1040), spans: Vec::with_capacity(130) };
        roomy.push_lossy(b"ok");
        roomy.push_lossy(b"a\xffb");
        let fitted = roomy.fitted();
        assert_eq!((fitted.get(0), fitted.get(1)), ("ok", "a\u{fffd}b"));
        assert!(fitted.text.capacity() < 16 && fitted.spans.capacity() == 2);
        let exact = Lines::one("exact".to_string());
        let ptr = exact.text.as_ptr();
        assert_eq!(exact.fitted().text.as_ptr(), ptr, "not copied");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(1_795_791_321_123), "2026-11-27T14:55:21.123Z");
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn seq_digits_carry_and_grow() {
        for v in [0u64, 8, 9, 99, 1_795_791_321_123_999, 9_999_999_999_999_999] {
            let mut d = Digits::new(v);
            assert_eq!(d.as_bytes(), v.to_string().as_bytes());
            d.increment();
            assert_eq!(d.as_bytes(), (v + 1).to_string().as_bytes(), "after {v}");
        }
    }

    #[test]
    fn a_whole_batch_encodes_as_its_lines_do_one_by_one() {
        let mut lines = Lines::default();
        (0..25).for_each(|i| lines.push(&format!("line \"{i}\"")));
        let b = Batch::sample(Status::Running, Stream::Stdout, 99_999_990, lines);
        let json = BatchJson::new(&b, "api");
        let mut one_by_one = Vec::new();
        for i in 0..b.len() {
            json.write(&b, i, &mut one_by_one);
            one_by_one.push(b'\n');
        }
        let mut all = Vec::new();
        json.write_all(&b, &mut all);
        assert_eq!(String::from_utf8(all).unwrap(), String::from_utf8(one_by_one).unwrap());
    }

    #[test]
    fn escapes_anywhere_in_a_line_round_trip_through_serde() {
        let plain = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        for at in [0, 1, 15, 16, 17, 31, 32, 33, plain.len()] {
            for esc in ["\x1b[32m", "\"", "\\", "\n", "\t\r", "\u{1}\u{1f}"] {
                let s = format!("{}{esc}{}{esc}", &plain[..at], &plain[at..]);
                let mut out = Vec::new();
                push_json_str(&s, &mut out);
                let back: String = serde_json::from_slice(&out).unwrap();
                assert_eq!(back, s, "escape {esc:?} at {at}");
            }
        }
    }

    #[test]
    fn jsonl_lines_are_what_serde_writes_for_a_log_entry() {
        let mut lines = Lines::default();
        let awkward =
            ["", "plain", "q\" b\\ \u{7f} é \u{2028}", "\u{0}\u{8}\t\n\u{c}\r\u{1b}[0m\u{1f}"];
        awkward.iter().for_each(|l| lines.push(l));
        let b = Batch::sample(Status::Starting, Stream::System, 9, lines);
        let mut out = Vec::new();
        BatchJson::new(&b, "a\"pi").write_all(&b, &mut out);
        let text = String::from_utf8(out).unwrap();
        let want: String = (0..b.len())
            .map(|i| {
                let e = flowlayer_protocol::LogEntry {
                    seq: b.seq(i),
                    service: "a\"pi".into(),
                    phase: b.phase,
                    stream: b.stream,
                    message: b.message(i).into(),
                    timestamp: format_timestamp(b.ts_ms),
                };
                serde_json::to_string(&e).unwrap() + "\n"
            })
            .collect();
        assert_eq!(text, want);
    }

    #[test]
    fn line_json_round_trips_through_serde() {
        let mut lines = Lines::default();
        lines.push("first");
        lines.push("quote \" back \\ tab \t bell \u{7} é");
        let b = Batch::sample(Status::Ready, Stream::Stderr, 41, lines);
        let json = BatchJson::new(&b, "a\"pi");
        let mut out = Vec::new();
        json.write(&b, 1, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["seq"], 42);
        assert_eq!(v["service"], "a\"pi");
        assert_eq!(v["phase"], "ready");
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["message"], b.message(1));
        assert_eq!(v["timestamp"], "2026-11-27T14:55:21.123Z");
    }
}
