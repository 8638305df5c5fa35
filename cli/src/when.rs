//! Time as the command line writes it: durations (`60s`, `10m`, `500ms`),
//! `--since SEQ|DURATION`, log timestamps (RFC 3339 UTC) read back to
//! milliseconds, and durations written for people. Pure.

use flowlayer_runtime::localtime::{local_zone, Zone};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A duration: digits, then `ms`, `s`, `m`, `h` or `d`; bare digits are
/// seconds. `None` for anything else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// `--since`: a log `seq` (bare digits: entries after it), or a duration
/// (entries from that long ago on).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Since {
    Seq(u64),
    Ago(Duration),
}

pub fn parse_since(text: &str) -> Option<Since> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Since::Seq);
    }
    match parse_duration(text) {
        Some(d) if text.ends_with(|c: char| c.is_ascii_alphabetic()) => Some(Since::Ago(d)),
        _ => None,
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Milliseconds since the epoch of a log timestamp, `YYYY-MM-DDTHH:MM:SS[.mmm]Z`.
pub fn timestamp_ms(s: &str) -> Option<i64> {
    flowlayer_runtime::localtime::parse_rfc3339_ms(s)
}

/// The local time of day of a log or timeline timestamp, for a table:
/// `14:55:21.123`.
pub fn clock(ts: &str) -> String {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    let Some(ms) = timestamp_ms(ts) else { return ts.to_string() };
    let zone = ZONE.get_or_init(local_zone);
    let s = ms.div_euclid(1000);
    let sod = (s + zone.offset(s)).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}.{:03}", sod / 3600, sod / 60 % 60, sod % 60, ms.rem_euclid(1000))
}

/// A duration for people: `850 ms`, `4.2 s`, `3m 05s`, `2h 10m`, `3d 4h`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_and_bare_numbers_are_seconds() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        for bad in ["", "s", "1.5s", "10 m", "-1s", "3w", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn since_is_a_seq_when_bare_and_a_duration_with_a_unit() {
        assert_eq!(parse_since("1234"), Some(Since::Seq(1234)));
        assert_eq!(parse_since("10m"), Some(Since::Ago(Duration::from_secs(600))));
        assert_eq!(parse_since("10x"), None);
        assert_eq!(parse_since(""), None);
    }

    #[test]
    fn timestamps_read_back_to_epoch_milliseconds() {
        assert_eq!(timestamp_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(timestamp_ms("2026-11-27T14:55:21.123Z"), Some(1_795_791_321_123));
        assert_eq!(timestamp_ms("2000-03-01T00:00:01Z"), Some(951_868_801_000));
        assert_eq!(timestamp_ms("yesterday"), None);
    }

    #[test]
    fn human_durations_pick_a_unit() {
        assert_eq!(human(Duration::from_millis(850)), "850 ms");
        assert_eq!(human(Duration::from_millis(4200)), "4.2 s");
        assert_eq!(human(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human(Duration::from_secs(7800)), "2h 10m");
        assert_eq!(human(Duration::from_secs(273_600)), "3d 4h");
    }
}
