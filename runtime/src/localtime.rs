//! Local wall-clock time for messages a person reads ("started 10:31"): the
//! UTC offset of the local time zone at a given instant.
//!
//! No thread of its own; std only. The zone comes from `TZ` (a file path, a
//! zone name under `/usr/share/zoneinfo`, or a POSIX rule string), else
//! `/etc/localtime`, read as TZif (RFC 8536): the offset of the last
//! transition at or before the instant, or past the last one the file's
//! footer rule. Anything unreadable means UTC: a message with the wrong hour
//! is better than no message.

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.mmm]Z`.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let secs = days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let ms = if b[19] == b'.' { num(20..23)? } else { 0 };
    Some(secs * 1000 + ms)
}

/// A POSIX TZ rule: standard offset, and optionally daylight time with its
/// start and end rules. Offsets are seconds east of UTC.
#[derive(Clone, Debug, PartialEq)]
pub struct PosixTz {
    std: i64,
    dst: Option<(i64, Rule, Rule)>,
}

/// When daylight time starts or ends: a day rule and a local time of day.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rule {
    day: Day,
    secs: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Day {
    /// `Jn`: day 1-365, February 29 never counted.
    Julian(u32),
    /// `n`: day 0-365, February 29 counted.
    Zero(u32),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    Month(u32, u32, u32),
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }
    fn name(&mut self) -> Option<()> {
        if self.eat(b'<') {
            while self.peek()? != b'>' {
                self.i += 1;
            }
            self.i += 1;
        } else {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.i += 1;
            }
            if self.i - start < 3 {
                return None;
            }
        }
        Some(())
    }
    fn num(&mut self) -> Option<i64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()?.parse().ok()
    }
    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn hms(&mut self) -> Option<i64> {
        let sign = if self.eat(b'-') {
            -1
        } else {
            self.eat(b'+');
            1
        };
        let mut secs = self.num()? * 3600;
        if self.eat(b':') {
            secs += self.num()? * 60;
            if self.eat(b':') {
                secs += self.num()?;
            }
        }
        Some(sign * secs)
    }
    fn rule(&mut self) -> Option<Rule> {
        let day = if self.eat(b'M') {
            let m = self.num()? as u32;
            self.eat(b'.').then_some(())?;
            let w = self.num()? as u32;
            self.eat(b'.').then_some(())?;
            let d = self.num()? as u32;
            ((1..=12).contains(&m) && (1..=5).contains(&w) && d <= 6).then_some(())?;
            Day::Month(m, w, d)
        } else if self.eat(b'J') {
            Day::Julian(self.num()? as u32)
        } else {
            Day::Zero(self.num()? as u32)
        };
        let secs = if self.eat(b'/') { self.hms()? } else { 7200 };
        Some(Rule { day, secs })
    }
}

impl PosixTz {
    /// Parses `std offset [dst [offset] [,start[/time],end[/time]]]`. POSIX
    /// offsets count west of UTC (`CET-1` is one hour east).
    pub fn parse(s: &str) -> Option<PosixTz> {
        let mut c = Cursor { s: s.as_bytes(), i: 0 };
        c.name()?;
        let std = -c.hms()?;
        if c.peek().is_none() {
            return Some(PosixTz { std, dst: None });
        }
        c.name()?;
        let dst = match c.peek() {
            Some(b',') | None => std + 3600,
            _ => -c.hms()?,
        };
        // Without rules, POSIX leaves the dates to the implementation; the
        // US rules are what glibc uses.
        let (start, end) = if c.eat(b',') {
            let start = c.rule()?;
            c.eat(b',').then_some(())?;
            (start, c.rule()?)
        } else {
            (
                Rule { day: Day::Month(3, 2, 0), secs: 7200 },
                Rule { day: Day::Month(11, 1, 0), secs: 7200 },
            )
        };
        c.peek().is_none().then_some(())?;
        Some(PosixTz { std, dst: Some((dst, start, end)) })
    }

    /// Seconds east of UTC at `t` (Unix seconds).
    pub fn offset(&self, t: i64) -> i64 {
        let Some((dst, start, end)) = self.dst else { return self.std };
        let (year, ..) = civil_from_days((t + self.std).div_euclid(86_400));
        // Start is given in standard time, end in daylight time.
        let on = rule_utc(year, start) - self.std;
        let off = rule_utc(year, end) - dst;
        let in_dst = if on < off { on <= t && t < off } else { !(off <= t && t < on) };
        if in_dst {
            dst
        } else {
            self.std
        }
    }
}

/// The local-clock second (as if UTC) a rule names in `year`.
fn rule_utc(year: i64, rule: Rule) -> i64 {
    let jan1 = days_from_civil(year, 1, 1);
    let day = match rule.day {
        Day::Julian(n) => {
            let n = n.clamp(1, 365) as i64;
            jan1 + n - 1 + i64::from(is_leap(year) && n >= 60)
        }
        Day::Zero(n) => jan1 + n.min(365) as i64,
        Day::Month(m, w, d) => {
            let first = days_from_civil(year, m, 1);
            let wday = (first + 4).rem_euclid(7);
            let mut day = first + (d as i64 - wday).rem_euclid(7) + 7 * (w as i64 - 1);
            let next_month = if m == 12 {
                days_from_civil(year + 1, 1, 1)
            } else {
                days_from_civil(year, m + 1, 1)
            };
            while day >= next_month {
                day -= 7;
            }
            day
        }
    };
    day * 86_400 + rule.secs
}

/// A parsed TZif file: transitions, their offsets, and the footer rule.
#[derive(Debug, Default)]
pub struct Zone {
    transitions: Vec<(i64, i64)>,
    first: i64,
    footer: Option<PosixTz>,
}

fn be(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    let mut v: i64 = if s[0] & 0x80 != 0 { -1 } else { 0 };
    for &x in s {
        v = (v << 8) | x as i64;
    }
    Some(v)
}

impl Zone {
    /// Parses TZif data (version 2 and later use their 64-bit block and footer).
    pub fn parse(b: &[u8]) -> Option<Zone> {
        if b.get(0..4)? != b"TZif" {
            return None;
        }
        let counts = |at: usize| -> Option<[usize; 6]> {
            let mut c = [0usize; 6];
            for (i, v) in c.iter_mut().enumerate() {
                *v = be(b, at + 20 + 4 * i, 4)? as usize;
            }
            Some(c)
        };
        let [isut, isstd, leap, time, types, chars] = counts(0)?;
        let v1_len = time * 5 + types * 6 + chars + leap * 8 + isstd + isut;
        let (at, tsize, c) = if b[4] >= b'2' {
            let at = 44 + v1_len;
            (at + 44, 8, counts(at)?)
        } else {
            (44, 4, [isut, isstd, leap, time, types, chars])
        };
        let [isut, isstd, leap, time, types, chars] = c;
        let idx_at = at + time * tsize;
        let types_at = idx_at + time;
        let utoff = |i: usize| be(b, types_at + 6 * i, 4);
        let mut transitions = Vec::with_capacity(time);
        for k in 0..time {
            let t = be(b, at + k * tsize, tsize)?;
            let ty = *b.get(idx_at + k)? as usize;
            if ty >= types {
                return None;
            }
            transitions.push((t, utoff(ty)?));
        }
        let first = if types > 0 { utoff(0)? } else { 0 };
        let end = types_at + types * 6 + chars + leap * (tsize + 4) + isstd + isut;
        let footer = if tsize == 8 {
            let rest = b.get(end..)?;
            let text = std::str::from_utf8(rest).ok()?;
            text.strip_prefix('\n')
                .and_then(|t| t.split('\n').next())
                .filter(|t| !t.is_empty())
                .and_then(PosixTz::parse)
        } else {
            None
        };
        Some(Zone { transitions, first, footer })
    }

    /// Seconds east of UTC at `t` (Unix seconds).
    pub fn offset(&self, t: i64) -> i64 {
        match self.transitions.partition_point(|&(at, _)| at <= t) {
            0 if self.transitions.is_empty() => {
                self.footer.as_ref().map_or(self.first, |r| r.offset(t))
            }
            0 => self.first,
            n if n == self.transitions.len() => match &self.footer {
                Some(rule) => rule.offset(t),
                None => self.transitions[n - 1].1,
            },
            n => self.transitions[n - 1].1,
        }
    }
}

/// The local time zone, from `TZ` or `/etc/localtime`; UTC when neither reads.
pub fn local_zone() -> Zone {
    let utc = Zone::default;
    let file = |p: &str| std::fs::read(p).ok().and_then(|b| Zone::parse(&b));
    match std::env::var("TZ") {
        Err(_) => file("/etc/localtime").unwrap_or_else(utc),
        Ok(tz) => {
            let tz = tz.strip_prefix(':').unwrap_or(&tz);
            if tz.is_empty() {
                return utc();
            }
            if tz.starts_with('/') {
                return file(tz).unwrap_or_else(utc);
            }
            let named = (!tz.contains("..")).then(|| file(&format!("{ZONEINFO}/{tz}"))).flatten();
            named
                .or_else(|| PosixTz::parse(tz).map(|r| Zone { footer: Some(r), ..Zone::default() }))
                .unwrap_or_else(utc)
        }
    }
}

/// `HH:MM` local time of `at_ms`, with the date in front (`YYYY-MM-DD HH:MM`)
/// when it is not the local day of `now_ms`.
pub fn clock_label(zone: &Zone, at_ms: i64, now_ms: i64) -> String {
    let local = |ms: i64| {
        let s = ms.div_euclid(1000);
        s + zone.offset(s)
    };
    let (at, now) = (local(at_ms), local(now_ms));
    let sod = at.rem_euclid(86_400);
    let hm = format!("{:02}:{:02}", sod / 3600, sod / 60 % 60);
    let day = at.div_euclid(86_400);
    if day == now.div_euclid(86_400) {
        hm
    } else {
        let (y, m, d) = civil_from_days(day);
        format!("{y:04}-{m:02}-{d:02} {hm}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 59, 10_957, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T10:31:05.250Z"),
            Some(utc(2026, 11, 27, 10, 31) * 1000 + 5250)
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn posix_rules_give_daylight_time_between_their_dates() {
        let cet = PosixTz::parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(cet.offset(utc(2026, 1, 15, 12, 0)), 3600);
        assert_eq!(cet.offset(utc(2026, 7, 15, 12, 0)), 7200);
        // 2026: last Sunday of March is the 29th, 01:00 UTC; of October the 25th.
        assert_eq!(cet.offset(utc(2026, 3, 29, 0, 59)), 3600);
        assert_eq!(cet.offset(utc(2026, 3, 29, 1, 0)), 7200);
        assert_eq!(cet.offset(utc(2026, 10, 25, 0, 59)), 7200);
        assert_eq!(cet.offset(utc(2026, 10, 25, 1, 0)), 3600);
        // Southern hemisphere: daylight time across the new year.
        let nz = PosixTz::parse("NZST-12NZDT,M9.5.0,M4.1.0/3").unwrap();
        assert_eq!(nz.offset(utc(2026, 1, 10, 0, 0)), 13 * 3600);
        assert_eq!(nz.offset(utc(2026, 6, 10, 0, 0)), 12 * 3600);
        let fixed = PosixTz::parse("<+0530>-5:30").unwrap();
        assert_eq!(fixed.offset(0), 5 * 3600 + 1800);
        assert_eq!(PosixTz::parse("UTC0").unwrap().offset(0), 0);
        assert!(PosixTz::parse("nonsense").is_none());
    }

    #[test]
    fn tzif_files_read_when_present() {
        let Ok(b) = std::fs::read(format!("{ZONEINFO}/Europe/Paris")) else { return };
        let z = Zone::parse(&b).unwrap();
        assert_eq!(z.offset(utc(2026, 1, 15, 12, 0)), 3600);
        assert_eq!(z.offset(utc(2026, 7, 15, 12, 0)), 7200);
        assert_eq!(z.offset(utc(2090, 7, 15, 12, 0)), 7200, "past the table: the footer");
        assert_eq!(z.offset(utc(1990, 7, 15, 12, 0)), 7200);
    }

    #[test]
    fn clock_labels_show_the_date_only_for_another_day() {
        let paris =
            Zone { footer: PosixTz::parse("CET-1CEST,M3.5.0,M10.5.0/3"), ..Zone::default() };
        let at = utc(2026, 7, 15, 8, 31) * 1000;
        assert_eq!(clock_label(&paris, at, at + 3_600_000), "10:31");
        assert_eq!(clock_label(&paris, at, at + 86_400_000), "2026-07-15 10:31");
        assert_eq!(clock_label(&Zone::default(), at, at), "08:31");
    }
}
