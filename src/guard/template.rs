//! Line templates for the `repeat` rule (guard.md section 1): a log line with
//! its colour codes removed and its variable parts replaced by placeholders,
//! so `retry 17 failed at 12:00:01` and `retry 18 failed at 12:00:02` are one
//! template, `retry <n> failed at <ts>`.
//!
//! Pure; runs on the state thread, for the lines the repeat rule samples
//! (`lines.rs`). One `Normaliser` per rule reuses its buffers: no allocation
//! per line.
//!
//! Placeholders: `<ts>` (a date, a time of day, or both: `2026-11-27`,
//! `12:00:01.5`, `2026-11-27T14:55:21.123Z`, `14:55:21+01:00`), `<uuid>`
//! (8-4-4-4-12 hex), `<hex>` (a word of hex digits with at least one digit and
//! one letter, or `0x...`), `<n>` (a run of digits, also inside a word:
//! `user42` is `user<n>`). `<hex>` and `<n>` are the same placeholder for
//! comparison, so a short hex id that happens to be all digits
//! (`2a4f1c0` / `2541170`) does not make a new template; the text shows the
//! first form seen.

/// A template is made of at most this many bytes of its line: a line that
/// differs from another only past them is the same template. Bounds the
/// work per line (and the text an incident keeps).
pub const MAX_TEMPLATE_BYTES: usize = 256;

const ESC: u8 = 0x1b;

/// Marker bytes that stand for placeholders in the comparison key (they
/// cannot come from a line: control bytes other than tab are stripped).
const KEY_VALUE: u8 = 0x01;
const KEY_UUID: u8 = 0x02;
const KEY_TS: u8 = 0x03;

/// Turns lines into templates, reusing its buffers.
#[derive(Default)]
pub struct Normaliser {
    /// The template as shown to a person (`retry <n> failed`).
    text: Vec<u8>,
    /// What templates are compared by: the text with each placeholder a
    /// marker byte.
    key: Vec<u8>,
}

impl Normaliser {
    /// Normalises `line`; returns its template's key hash. The text is then
    /// in `self.text()`.
    pub fn template(&mut self, line: &str) -> u64 {
        self.text.clear();
        self.key.clear();
        let b = line.as_bytes();
        let mut i = 0;
        // Start of the literal run not yet copied.
        let mut lit = 0;
        while i < b.len() && self.text.len() + (i - lit) < MAX_TEMPLATE_BYTES {
            let c = b[i];
            if c.is_ascii_alphanumeric() {
                let (end, kind) = classify(b, i);
                match kind {
                    Token::Word => {}
                    Token::Ts => self.placeholder(&b[lit..i], "<ts>", KEY_TS),
                    Token::Uuid => self.placeholder(&b[lit..i], "<uuid>", KEY_UUID),
                    Token::Hex => self.placeholder(&b[lit..i], "<hex>", KEY_VALUE),
                    Token::Mixed => {
                        self.literal(&b[lit..i]);
                        self.mixed(&b[i..end]);
                    }
                }
                if kind != Token::Word {
                    lit = end;
                }
                i = end;
            } else if c == ESC || (c < 0x20 && c != b'\t') || c == 0x7f {
                self.literal(&b[lit..i]);
                i = if c == ESC { skip_escape(b, i) } else { i + 1 };
                lit = i;
            } else {
                i += 1;
            }
        }
        self.literal(&b[lit..i.min(b.len())]);
        // Past the limit, cut at a character boundary (the text is UTF-8).
        let mut len = self.text.len().min(MAX_TEMPLATE_BYTES);
        while len > 0 && len < self.text.len() && (self.text[len] & 0xc0) == 0x80 {
            len -= 1;
        }
        self.text.truncate(len);
        hash(&self.key)
    }

    /// The last template's text.
    pub fn text(&self) -> &str {
        // Only whole UTF-8 sequences of the line and ASCII placeholders were
        // copied, and the cut is at a boundary.
        std::str::from_utf8(&self.text).unwrap_or("")
    }

    fn literal(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        self.key.extend_from_slice(bytes);
    }

    fn placeholder(&mut self, before: &[u8], text: &str, key: u8) {
        self.literal(before);
        self.text.extend_from_slice(text.as_bytes());
        self.key.push(key);
    }

    /// A word with digits in it: letters kept, each digit run a `<n>`.
    fn mixed(&mut self, word: &[u8]) {
        let mut i = 0;
        while i < word.len() {
            let digits = word[i].is_ascii_digit();
            let end = word[i..]
                .iter()
                .position(|c| c.is_ascii_digit() != digits)
                .map_or(word.len(), |k| i + k);
            if digits {
                self.text.extend_from_slice(b"<n>");
                self.key.push(KEY_VALUE);
            } else {
                self.literal(&word[i..end]);
            }
            i = end;
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Token {
    /// Letters only: kept as it is.
    Word,
    Ts,
    Uuid,
    Hex,
    /// Letters and digits: the digit runs become `<n>`.
    Mixed,
}

/// What starts at `i` (an ASCII letter or digit at a word start), and where it ends.
fn classify(b: &[u8], i: usize) -> (usize, Token) {
    if b[i].is_ascii_digit() {
        if let Some(end) = timestamp_end(b, i) {
            return (end, Token::Ts);
        }
    }
    if let Some(end) = uuid_end(b, i) {
        return (end, Token::Uuid);
    }
    let mut end = i;
    let (mut digit, mut hex_letter, mut all_hex) = (false, false, true);
    while end < b.len() && b[end].is_ascii_alphanumeric() {
        let c = b[end];
        digit |= c.is_ascii_digit();
        hex_letter |= matches!(c, b'a'..=b'f' | b'A'..=b'F');
        all_hex &= c.is_ascii_hexdigit();
        end += 1;
    }
    let word = &b[i..end];
    let prefixed = word.len() > 2
        && word[0] == b'0'
        && matches!(word[1], b'x' | b'X')
        && word[2..].iter().all(u8::is_ascii_hexdigit);
    let kind = if !digit {
        Token::Word
    } else if prefixed || (all_hex && hex_letter) {
        Token::Hex
    } else {
        Token::Mixed
    };
    (end, kind)
}

/// Number of ASCII digits at `b[i..]`, at most `max`.
fn digits(b: &[u8], i: usize, max: usize) -> usize {
    b.get(i..).map_or(0, |s| s.iter().take(max).take_while(|c| c.is_ascii_digit()).count())
}

fn byte_is(b: &[u8], i: usize, set: &[u8]) -> bool {
    b.get(i).is_some_and(|c| set.contains(c))
}

/// The end of a date (`2026-11-27`, `2026/11/27`), a time of day
/// (`12:00`, `12:00:01`, `12:00:01.123`) with an optional zone, or a date and
/// a time joined by `T` or a space, starting at `i`.
fn timestamp_end(b: &[u8], i: usize) -> Option<usize> {
    let mut end = None;
    let mut at = i;
    if digits(b, at, 5) == 4
        && byte_is(b, at + 4, b"-/")
        && digits(b, at + 5, 3) == 2
        && byte_is(b, at + 7, &[b[at + 4]])
        && digits(b, at + 8, 3) == 2
    {
        at += 10;
        end = Some(at);
        if byte_is(b, at, b"T ") && time_end(b, at + 1).is_some() {
            at += 1;
        } else {
            return end;
        }
    }
    time_end(b, at).or(end)
}

/// `H:MM`, `HH:MM`, `HH:MM:SS`, each with an optional fraction and zone.
fn time_end(b: &[u8], i: usize) -> Option<usize> {
    let h = digits(b, i, 3);
    if !(1..=2).contains(&h) || !byte_is(b, i + h, b":") || digits(b, i + h + 1, 3) != 2 {
        return None;
    }
    let mut at = i + h + 3;
    if byte_is(b, at, b":") && digits(b, at + 1, 3) == 2 {
        at += 3;
    }
    if byte_is(b, at, b".,") {
        let f = digits(b, at + 1, usize::MAX);
        if f > 0 {
            at += 1 + f;
        }
    }
    if byte_is(b, at, b"Z") && !b.get(at + 1).is_some_and(u8::is_ascii_alphanumeric) {
        at += 1;
    } else if byte_is(b, at, b"+-") {
        // +01:00, +0100, +01
        match digits(b, at + 1, 5) {
            4 => at += 5,
            2 if byte_is(b, at + 3, b":") && digits(b, at + 4, 3) == 2 => at += 6,
            2 => at += 3,
            _ => {}
        }
    }
    Some(at)
}

/// The end of an 8-4-4-4-12 hex UUID starting at `i`.
fn uuid_end(b: &[u8], i: usize) -> Option<usize> {
    let s = b.get(i..i + 36)?;
    let ok = s.iter().enumerate().all(|(k, c)| match k {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    let bounded = !b.get(i + 36).is_some_and(u8::is_ascii_alphanumeric);
    (ok && bounded).then_some(i + 36)
}

/// Skips an escape sequence: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL`
/// or `ESC \`), or a two-byte escape.
fn skip_escape(b: &[u8], i: usize) -> usize {
    match b.get(i + 1) {
        Some(b'[') => b[i + 2..]
            .iter()
            .position(|c| (0x40..=0x7e).contains(c))
            .map_or(b.len(), |k| i + 2 + k + 1),
        Some(b']') => {
            let mut j = i + 2;
            while j < b.len() {
                if b[j] == 0x07 {
                    return j + 1;
                }
                if b[j] == ESC && b.get(j + 1) == Some(&b'\\') {
                    return j + 2;
                }
                j += 1;
            }
            b.len()
        }
        Some(_) => i + 2,
        None => i + 1,
    }
}

/// A fast hash of a template key (word at a time; templates are compared by
/// hash alone, and 64 bits make a collision among the few dozen a rule keeps
/// negligible).
fn hash(key: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("chunks of 8"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(line: &str) -> (String, u64) {
        let mut n = Normaliser::default();
        let h = n.template(line);
        (n.text().to_string(), h)
    }

    #[test]
    fn numbers_and_times_of_a_retry_loop_make_one_template() {
        let a = t("retry 17 failed at 12:00:01");
        let b = t("retry 18 failed at 12:00:02");
        assert_eq!(a.0, "retry <n> failed at <ts>");
        assert_eq!(a, b);
        assert_ne!(a.1, t("retry 18 succeeded at 12:00:02").1);
    }

    #[test]
    fn colour_codes_and_control_bytes_are_stripped() {
        let (text, h) = t("\x1b[31mERROR\x1b[0m conn 7 reset\r\x1b]0;title\x07");
        assert_eq!(text, "ERROR conn <n> reset");
        assert_eq!(h, t("ERROR conn 8 reset").1);
    }

    #[test]
    fn timestamps_of_every_common_shape_are_one_placeholder() {
        for line in [
            "2026-11-27T14:55:21.123Z boot",
            "2026-11-27 14:55:21,123 boot",
            "2026/11/27 boot",
            "14:55 boot",
            "14:55:21+01:00 boot",
            "2026-11-27T14:55:21-0500 boot",
        ] {
            assert_eq!(t(line).0, "<ts> boot", "{line}");
        }
        assert_eq!(t("[27/Nov/2026:14:55:21 +0000]").0, "[<n>/Nov/<n>:<ts> +<n>]");
    }

    #[test]
    fn ids_become_placeholders_and_equal_ones_compare_equal() {
        let (text, h) =
            t("req 550e8400-e29b-41d4-a716-446655440000 by user42 at 0x7ffd12ab sha 2a4f1c0");
        assert_eq!(text, "req <uuid> by user<n> at <hex> sha <hex>");
        let other = t("req 123e4567-e89b-12d3-a456-426614174000 by user7 at 0x10 sha 2541170");
        assert_eq!(other.1, h, "an all-digit short id is the same template: {}", other.0);
        assert_eq!(t("deadbeef and cafe stay words").0, "deadbeef and cafe stay words");
        assert_eq!(t("v2.10.3 x86_64").0, "v<n>.<n>.<n> x<n>_<n>");
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        let line = "é".repeat(300);
        let (text, h) = t(&line);
        assert!(text.len() <= MAX_TEMPLATE_BYTES && text.len() >= MAX_TEMPLATE_BYTES - 1);
        assert!(text.chars().all(|c| c == 'é'));
        let longer = format!("{line} and more");
        assert_eq!(t(&longer).1, h, "past the limit nothing counts");
    }

    #[test]
    fn truncated_escapes_and_odd_bytes_do_not_panic() {
        for line in ["\x1b", "\x1b[", "\x1b[31", "\x1b]0;x", "1", "12:", "2026-1", "0x", ""] {
            let _ = t(line);
        }
        assert_eq!(t("a\x1b").0, "a");
    }
}
