//! One log entry, its timestamp format and its JSON encoding.
//!
//! The JSON encoder is hand-written because it runs once per line on the hottest
//! path (JSONL writer and `log` broadcast); it escapes only what JSON requires.

use crate::bus::{Status, Stream, SvcId};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub svc: SvcId,
    /// The service's status when the line was read.
    pub phase: Status,
    pub stream: Stream,
    /// Unix time in milliseconds.
    pub ts_ms: i64,
    pub message: String,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// RFC 3339, UTC, milliseconds: `2026-11-27T14:55:21.123Z`.
pub fn format_timestamp(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    push_timestamp(ms, &mut out);
    String::from_utf8(out).expect("timestamp is ASCII")
}

fn push_timestamp(ms: i64, out: &mut Vec<u8>) {
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
    let mut num = |n: u32, width: usize, sep: u8| {
        let mut buf = [b'0'; 4];
        let mut v = n;
        for i in (0..width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..width]);
        if sep != 0 {
            out.push(sep);
        }
    };
    num(year, 4, b'-');
    num(month, 2, b'-');
    num(day, 2, b'T');
    num(sod / 3600, 2, b':');
    num(sod / 60 % 60, 2, b':');
    num(sod % 60, 2, b'.');
    num(millis, 3, b'Z');
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends the entry as one JSON object (no newline), the shape of protocol.md's
/// `log` payload and of each JSONL line.
pub fn write_entry_json(e: &Entry, service: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(e.seq.to_string().as_bytes());
    out.extend_from_slice(b",\"service\":");
    push_json_str(service, out);
    out.extend_from_slice(b",\"phase\":\"");
    out.extend_from_slice(e.phase.as_str().as_bytes());
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(e.stream.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    push_json_str(&e.message, out);
    out.extend_from_slice(b",\"timestamp\":\"");
    push_timestamp(e.ts_ms, out);
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(1_795_791_321_123), "2026-11-27T14:55:21.123Z");
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn entry_json_round_trips_through_serde() {
        let e = Entry {
            seq: 42,
            svc: SvcId(0),
            phase: Status::Ready,
            stream: Stream::Stderr,
            ts_ms: 1_795_791_321_123,
            message: "quote \" back \\ tab \t bell \u{7} é".into(),
        };
        let mut out = Vec::new();
        write_entry_json(&e, "api", &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["seq"], 42);
        assert_eq!(v["service"], "api");
        assert_eq!(v["phase"], "ready");
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["message"], e.message.as_str());
        assert_eq!(v["timestamp"], "2026-11-27T14:55:21.123Z");
    }
}
