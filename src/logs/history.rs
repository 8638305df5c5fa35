//! Reading the JSONL history back: the last `seq` of earlier runs (main thread,
//! at boot) and the older part of a `get_logs` page (a `logs-page` thread).
//!
//! The files are ours, but not always pristine: a line cut by a full disk or a
//! killed server, a line some other tool wrote or reformatted (`{"seq": 5, ...}`
//! with spaces), anything at all. A line is taken as it is only when it is
//! byte for byte the shape the writer produces (checked in one pass, the fast
//! path for nearly every line); any other line is parsed as JSON and, when it
//! is a whole entry, written again in our shape (the slow path); what is left
//! is damaged: skipped, and counted in the page. Nothing but whole entries
//! ever reaches a frame.

use super::batch::next_escape;
use flowlayer_protocol::LogEntry;
use serde::Deserialize;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read from the end of a file at a time.
const CHUNK: u64 = 256 * 1024;

/// The older part of a `get_logs` answer, read from one JSONL file.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// The entries' JSON objects back to back, oldest first.
    json: Vec<u8>,
    /// Where each entry ends in `json`.
    ends: Vec<usize>,
    /// Older matching entries remain in the file.
    pub more: bool,
    /// Lines in the range read that were not whole entries (skipped).
    pub damaged: u64,
}

impl HistoryPage {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Entry `i` (0 = the oldest) as a JSON object.
    pub fn entry(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.json[start..self.ends[i]]
    }
}

/// What one line of a JSONL file turned out to be.
#[derive(Debug, PartialEq)]
enum Line {
    /// Written by us, byte for byte: usable as it is.
    Ours(u64),
    /// A whole entry in another shape, written again in ours.
    Entry(u64, Vec<u8>),
    /// Not an entry; the seq it claims, if any can be told.
    Damaged(Option<u64>),
}

/// A JSON object with a numeric `seq`, whatever else it has.
#[derive(Deserialize)]
struct AnySeq {
    seq: u64,
}

fn classify(line: &[u8]) -> Line {
    if let Some(seq) = ours(line) {
        return Line::Ours(seq);
    }
    // An entry as any JSON writer may have written it: fields in any order,
    // spaces, other escapes, fields we do not know.
    if let Ok(e) = serde_json::from_slice::<LogEntry>(line) {
        let json = serde_json::to_vec(&e).expect("strings, words and a number encode");
        return Line::Entry(e.seq, json);
    }
    let seq = serde_json::from_slice::<AnySeq>(line).ok().map(|s| s.seq).or_else(|| line_seq(line));
    Line::Damaged(seq)
}

/// Parses the leading `{"seq":N` of a line (whatever follows).
pub(super) fn line_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The seq of a line that is exactly what `BatchJson` writes:
/// `{"seq":N,"service":S,"phase":"p","stream":"s","message":M,"timestamp":"T"}`
/// with S and M valid JSON strings and T of the form `2026-11-27T14:55:21.123Z`,
/// all valid UTF-8. One pass over the bytes, no allocation.
fn ours(line: &[u8]) -> Option<u64> {
    let mut r = Cursor { s: line, at: 0 };
    r.expect(b"{\"seq\":")?;
    let seq = r.number()?;
    r.expect(b",\"service\":")?;
    r.string()?;
    r.expect(b",\"phase\":")?;
    r.word()?;
    r.expect(b",\"stream\":")?;
    r.word()?;
    r.expect(b",\"message\":")?;
    r.string()?;
    r.expect(b",\"timestamp\":\"")?;
    let ts = r.take(24)?;
    r.expect(b"\"}")?;
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let ts_ok =
        ts.iter().zip(shape).all(|(b, s)| if *s == b'd' { b.is_ascii_digit() } else { b == s });
    (ts_ok && r.at == line.len() && std::str::from_utf8(line).is_ok()).then_some(seq)
}

/// Reads a line from the front.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn expect(&mut self, lit: &[u8]) -> Option<()> {
        self.s[self.at..].starts_with(lit).then(|| self.at += lit.len())
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.s.get(self.at..self.at + n)?;
        self.at += n;
        Some(out)
    }

    /// A JSON integer that fits a u64 (no sign, no leading zero).
    fn number(&mut self) -> Option<u64> {
        let digits = self.s[self.at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let text = &self.s[self.at..self.at + digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        self.at += digits;
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    /// A string of lowercase letters and `_` (a status or a stream).
    fn word(&mut self) -> Option<()> {
        self.expect(b"\"")?;
        let n =
            self.s[self.at..].iter().take_while(|b| b.is_ascii_lowercase() || **b == b'_').count();
        self.at += n;
        (n > 0).then_some(())?;
        self.expect(b"\"")
    }

    /// A JSON string: no raw control character, only valid escapes.
    fn string(&mut self) -> Option<()> {
        self.expect(b"\"")?;
        loop {
            let i = next_escape(self.s, self.at)?;
            match self.s[i] {
                b'"' => {
                    self.at = i + 1;
                    return Some(());
                }
                b'\\' => {
                    self.at = i + 1;
                    match *self.s.get(self.at)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.s.get(self.at + 1..self.at + 5)?;
                            hex.iter().all(u8::is_ascii_hexdigit).then_some(())?;
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }
}

/// Reads a file backwards in chunks, calling `f` with each line (without its
/// newline) from the last to the first until `f` returns false. A missing file
/// has no lines.
fn for_each_line_backwards(path: &Path, mut f: impl FnMut(&[u8]) -> bool) -> std::io::Result<()> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut pos = file.seek(SeekFrom::End(0))?;
    let mut tail: Vec<u8> = Vec::new();
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut buf = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&tail);
        pos = start;
        // Everything after the first newline is whole lines (unless at file start).
        let cut = if pos == 0 {
            0
        } else {
            match memchr::memchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    tail = buf;
                    continue;
                }
            }
        };
        // Line ends found from the back at memory speed, as the pumps find them.
        let whole = &buf[cut..];
        let mut end = whole.len();
        let starts = memchr::memrchr_iter(b'\n', whole).map(|nl| nl + 1).chain([0]);
        for start in starts {
            let line = &whole[start..end];
            if !line.is_empty() && !f(line) {
                return Ok(());
            }
            end = start.saturating_sub(1);
        }
        tail = buf[..cut].to_vec();
    }
    Ok(())
}

/// What `all.jsonl` tells at boot of the runs before this one.
#[derive(Debug, Default, PartialEq)]
pub struct HistoryEnd {
    /// The seq of its last whole entry, or higher if a damaged line after it
    /// still tells its seq (a line cut short was sent to clients before it
    /// was cut); 0 when it tells none.
    pub last_seq: u64,
    /// It exists but could not be read: it may hold anything.
    pub unreadable: bool,
}

impl HistoryEnd {
    /// Reads the end of `all.jsonl` (none without a log directory).
    pub fn read(logs_dir: Option<&Path>) -> HistoryEnd {
        let mut end = HistoryEnd::default();
        let Some(dir) = logs_dir else { return end };
        let read = for_each_line_backwards(&dir.join("all.jsonl"), |line| match classify(line) {
            Line::Ours(seq) | Line::Entry(seq, _) => {
                end.last_seq = end.last_seq.max(seq);
                false
            }
            Line::Damaged(seq) => {
                end.last_seq = end.last_seq.max(seq.unwrap_or(0));
                true
            }
        });
        end.unreadable = read.is_err();
        end
    }

    /// The first seq of this run: after the last one of the files, and never
    /// below boot time in microseconds-ish units, so seq never goes backwards
    /// across restarts even without a log directory (server.md section 6).
    pub fn first_seq(&self, boot_ms: i64) -> u64 {
        (self.last_seq + 1).max(boot_ms.max(1) as u64 * 1000)
    }

    /// The files may hold entries of earlier runs.
    pub fn earlier_runs(&self) -> bool {
        self.last_seq > 0 || self.unreadable
    }
}

/// Reads the newest `need` entries with `after < seq <= upto` from a JSONL file,
/// and whether older ones remain. Damaged lines in that range are skipped and
/// counted. A missing file is an empty history; a file that cannot be read is
/// an error.
pub fn read_page(path: &Path, after: u64, upto: u64, need: usize) -> std::io::Result<HistoryPage> {
    // Newest first while reading: `spans` index into `found`.
    let mut found: Vec<u8> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut page = HistoryPage::default();
    // A line at or below `upto` has been seen: damaged lines that tell no seq
    // are in the range from here on.
    let mut in_range = false;
    for_each_line_backwards(path, |line| {
        // Lines newer than the range are passed over on their leading seq alone.
        if line_seq(line).is_some_and(|seq| seq > upto) {
            return true;
        }
        let (seq, json) = match classify(line) {
            Line::Ours(seq) => (seq, None),
            Line::Entry(seq, json) => (seq, Some(json)),
            // What a damaged line claims is not trusted to end the search.
            Line::Damaged(seq) => {
                let inside = match seq {
                    Some(seq) => seq > after && seq <= upto,
                    None => in_range,
                };
                in_range |= inside;
                if inside && spans.len() < need {
                    page.damaged += 1;
                }
                return true;
            }
        };
        if seq <= after {
            return false;
        }
        if seq > upto {
            return true;
        }
        in_range = true;
        if spans.len() == need {
            page.more = true;
            return false;
        }
        let start = found.len();
        found.extend_from_slice(json.as_deref().unwrap_or(line));
        spans.push((start, found.len()));
        true
    })?;
    page.json.reserve(found.len());
    for (a, b) in spans.iter().rev() {
        page.json.extend_from_slice(&found[*a..*b]);
        page.ends.push(page.json.len());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Status, Stream};
    use crate::logs::{Batch, BatchJson, Lines};

    /// Our own JSONL for `n` lines from seq `seq0`, as the writer writes it.
    fn ours_jsonl(seq0: u64, messages: &[&str]) -> String {
        let mut lines = Lines::default();
        messages.iter().for_each(|m| lines.push(m));
        let b = Batch::sample(Status::Running, Stream::Stdout, seq0, lines);
        let mut out = Vec::new();
        BatchJson::new(&b, "api").write_all(&b, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn seqs(page: &HistoryPage) -> Vec<u64> {
        (0..page.len())
            .map(|i| serde_json::from_slice::<LogEntry>(page.entry(i)).unwrap().seq)
            .collect()
    }

    #[test]
    fn our_lines_take_the_fast_path_whatever_their_message() {
        let text = ours_jsonl(7, &["plain", "quote \" back \\ tab \t ctl \u{1} é", ""]);
        let got: Vec<Line> = text.lines().map(|l| classify(l.as_bytes())).collect();
        assert_eq!(got, vec![Line::Ours(7), Line::Ours(8), Line::Ours(9)]);
    }

    #[test]
    fn valid_json_in_another_shape_is_an_entry_written_again_in_ours() {
        let spaced = br#"{"seq": 5, "service": "api", "phase": "running", "stream": "stdout", "message": "hi", "timestamp": "2026-11-27T14:55:21.123Z", "extra": 1}"#;
        let Line::Entry(5, json) = classify(spaced) else { panic!("not an entry") };
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["message"], "hi");
        assert_eq!(v.as_object().unwrap().len(), 6, "{v}");
        // Valid JSON with a seq, but not an entry: damaged, its seq still known.
        assert_eq!(classify(br#"{ "seq": 9 }"#), Line::Damaged(Some(9)));
    }

    #[test]
    fn cut_and_glued_lines_are_damaged() {
        let whole = ours_jsonl(41, &["a message"]);
        let whole = whole.trim_end().as_bytes();
        for cut in [1, 7, 10, 30, whole.len() - 1] {
            assert!(
                matches!(classify(&whole[..cut]), Line::Damaged(_)),
                "cut at {cut}: {:?}",
                String::from_utf8_lossy(&whole[..cut])
            );
        }
        assert_eq!(classify(&whole[..30]), Line::Damaged(Some(41)));
        // A cut line with the next run's first line glued on: both ends look right.
        let glued = [&whole[..40], whole].concat();
        assert_eq!(classify(&glued), Line::Damaged(Some(41)));
        // A multi-byte character cut in two, then glued.
        let e = ours_jsonl(3, &["é"]);
        let at = e.find('é').unwrap() + 1;
        let glued = [&e.as_bytes()[..at], &e.as_bytes()[at + 1..]].concat();
        assert!(matches!(classify(glued.trim_ascii_end()), Line::Damaged(_)));
        for junk in [&b"\x00\x00\x00"[..], b"{}", b"not json", b"{\"seq\":01,\"x\":1}"] {
            assert!(matches!(classify(junk), Line::Damaged(_)), "{junk:?}");
        }
    }

    #[test]
    fn a_page_skips_and_counts_damaged_lines_and_reaches_spaced_ones() {
        let dir = crate::logs::scratch_dir("history-page");
        let path = dir.join("api.jsonl");
        let mut text = ours_jsonl(1, &["one", "two"]);
        text.push_str(r#"{"seq": 3, "service": "api", "phase": "running", "stream": "stdout", "message": "three", "timestamp": "2026-11-27T14:55:21.123Z"}"#);
        text.push('\n');
        let four = ours_jsonl(4, &["four"]);
        text.push_str(&four[..20]); // cut by a full disk, then the next run
        text.push('\n');
        text.push_str(&ours_jsonl(5, &["five", "six"]));
        std::fs::write(&path, &text).unwrap();
        let page = read_page(&path, 0, u64::MAX, 10).unwrap();
        assert_eq!(seqs(&page), vec![1, 2, 3, 5, 6]);
        assert_eq!((page.damaged, page.more), (1, false));
        for i in 0..page.len() {
            assert!(serde_json::from_slice::<serde_json::Value>(page.entry(i)).is_ok());
        }
        let page = read_page(&path, 1, 5, 2).unwrap();
        assert_eq!(seqs(&page), vec![3, 5]);
        assert_eq!((page.damaged, page.more), (1, true));
        let page = read_page(&path, 4, 6, 10).unwrap();
        assert_eq!((seqs(&page), page.damaged), (vec![5, 6], 0));
        assert_eq!(read_page(&dir.join("none.jsonl"), 0, 9, 9).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seq_goes_on_after_the_highest_seq_the_file_tells_damaged_or_spaced() {
        let dir = crate::logs::scratch_dir("history-seq");
        let all = dir.join("all.jsonl");
        let two = ours_jsonl(5001, &["a", "b"]);
        std::fs::write(&all, &two).unwrap();
        assert_eq!(HistoryEnd::read(Some(&dir)).first_seq(0), 5003);
        std::fs::write(&all, &two[..two.len() - 40]).unwrap();
        assert_eq!(
            HistoryEnd::read(Some(&dir)).first_seq(0),
            5003,
            "the cut last line still tells seq 5002"
        );
        std::fs::write(&all, format!("{two}{{\"seq\": 5090, \"message\": \"x\"}}\n")).unwrap();
        assert_eq!(HistoryEnd::read(Some(&dir)).first_seq(0), 5091);
        std::fs::write(&all, format!("{two}{{\"seq\": 5090, \"service\": \"api\", \"phase\": \"running\", \"stream\": \"stdout\", \"message\": \"x\", \"timestamp\": \"t\"}}\n")).unwrap();
        assert_eq!(HistoryEnd::read(Some(&dir)).first_seq(0), 5091);
        std::fs::write(&all, "garbage\n").unwrap();
        let end = HistoryEnd::read(Some(&dir));
        assert_eq!(end.first_seq(7), 7000, "boot time, when the file tells nothing");
        assert!(!end.earlier_runs());
        std::fs::remove_file(&all).unwrap();
        assert_eq!(HistoryEnd::read(Some(&dir)), HistoryEnd::default(), "no file, no history");
        std::fs::create_dir(&all).unwrap();
        assert!(HistoryEnd::read(Some(&dir)).earlier_runs(), "unreadable: anything may be there");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn backwards_reader_sees_every_line_across_chunks() {
        let dir = crate::logs::scratch_dir("jsonl");
        let path = dir.join("all.jsonl");
        let filler = "x".repeat(1000);
        let messages: Vec<&str> = (0..2000).map(|_| filler.as_str()).collect();
        std::fs::write(&path, ours_jsonl(1, &messages)).unwrap();
        assert_eq!(HistoryEnd::read(Some(&dir)).first_seq(0), 2001);
        assert_eq!(HistoryEnd::read(Some(&dir)).first_seq(5), 5000);
        let page = read_page(&path, 10, 1500, 3).unwrap();
        assert_eq!(seqs(&page), vec![1498, 1499, 1500]);
        assert!(page.more);
        let page = read_page(&path, 1, 3, 10).unwrap();
        assert_eq!(page.len(), 2);
        assert!(!page.more);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
