//! Incidents (guard.md section 3): the record of one breach of one rule, what
//! was done about it and how it ended; their words for people (summary,
//! terminal line) and their lines in `incidents.jsonl`.
//!
//! Pure. Built and changed on the state thread (`Guard`); read back from
//! `incidents.jsonl` on the main thread at boot (`load`). The file has one
//! line per change (`"change":"opened"`, `"acted"`, `"closed"`), each the
//! whole record at that moment, so the last line of an id is its state and a
//! damaged line loses one change, never the history.

use super::lines::{RateEvidence, RepeatEvidence};
use super::resources::{CpuEvidence, GrowthEvidence};
use crate::logs::format_timestamp;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::Path;

/// Raw lines an incident keeps as evidence.
pub const LAST_LINES: usize = 20;
/// Bytes of each of those lines kept: a line may be 64 KiB, and an incident
/// goes to every session and into a `get_incidents` answer of up to 100 of
/// them; the start of a line is what tells a loop apart.
pub const MAX_EVIDENCE_LINE: usize = 1024;

/// `line` cut to `MAX_EVIDENCE_LINE` bytes (on a character boundary), with
/// `…` where it was cut.
pub fn cut_line(mut line: String) -> String {
    if line.len() > MAX_EVIDENCE_LINE {
        let mut end = MAX_EVIDENCE_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}
/// Samples an incident keeps as evidence (the newest of its window).
pub const MAX_SERIES: usize = 120;
/// Incidents kept in memory for `get_incidents`, newest; older ones stay in
/// `incidents.jsonl`.
pub const MAX_KEPT: usize = 1000;

/// The rules, with their config and wire names (the protocol's words).
pub use flowlayer_protocol::GuardRule as RuleKind;
/// An incident and its evidence, as recorded, sent and returned by
/// `get_incidents` (the protocol's types).
pub use flowlayer_protocol::{Evidence, Incident};

/// What a rule found when it opened an incident.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    Runaway(CpuEvidence, RepeatEvidence),
    Cpu(CpuEvidence),
    Memory { rss_bytes: u64, above_mb: f64 },
    Growth(GrowthEvidence),
    Repeat(RepeatEvidence),
    Rate(RateEvidence),
    Processes { count: u32, above: u64 },
}

impl Found {
    #[cfg(test)]
    pub fn rule(&self) -> RuleKind {
        match self {
            Found::Runaway(..) => RuleKind::Runaway,
            Found::Cpu(_) => RuleKind::Cpu,
            Found::Memory { .. } => RuleKind::Memory,
            Found::Growth(_) => RuleKind::Growth,
            Found::Repeat(_) => RuleKind::Repeat,
            Found::Rate(_) => RuleKind::Rate,
            Found::Processes { .. } => RuleKind::Processes,
        }
    }

    fn repeat(&self) -> Option<&RepeatEvidence> {
        match self {
            Found::Runaway(_, r) | Found::Repeat(r) => Some(r),
            _ => None,
        }
    }

    /// One sentence for the record: `cpu 0.98 cores for 30 s and 97 % of
    /// 1,840 lines were "retry <n> failed"`.
    pub fn summary(&self) -> String {
        match self {
            Found::Runaway(c, r) => format!(
                "cpu {:.2} cores for {} and {}",
                c.cores,
                secs(c.for_ms),
                repeat_sentence(r)
            ),
            Found::Cpu(c) => format!("cpu {:.2} cores for {}", c.cores, secs(c.for_ms)),
            Found::Memory { rss_bytes, above_mb } => {
                format!("rss {} MB, above {} MB", mb(*rss_bytes), thousands(*above_mb as u64))
            }
            Found::Growth(g) => format!(
                "rss grew {} MB/min for {} ({} MB to {} MB)",
                thousands(g.mb_per_min.round() as u64),
                secs(g.for_ms),
                mb(g.from_bytes),
                mb(g.to_bytes)
            ),
            Found::Repeat(r) => repeat_sentence(r),
            Found::Rate(r) => format!(
                "{} lines/s for {}",
                thousands(r.lines_per_sec.round() as u64),
                secs(r.window_ms as i64)
            ),
            Found::Processes { count, above } => {
                format!("{} processes, above {}", thousands(u64::from(*count)), thousands(*above))
            }
        }
    }

    /// The short form for the terminal: `cpu 0.98 for 30 s, 97 % "retry <n> failed"`.
    pub fn brief(&self) -> String {
        match self {
            Found::Runaway(c, r) => format!(
                "cpu {:.2} for {}, {} % \"{}\"",
                c.cores,
                secs(c.for_ms),
                percent(r.share),
                r.template
            ),
            Found::Cpu(c) => format!("cpu {:.2} for {}", c.cores, secs(c.for_ms)),
            Found::Repeat(r) => {
                format!("{} % of {} lines \"{}\"", percent(r.share), thousands(r.lines), r.template)
            }
            Found::Growth(g) => format!(
                "rss +{} MB/min for {}",
                thousands(g.mb_per_min.round() as u64),
                secs(g.for_ms)
            ),
            other => other.summary(),
        }
    }
}

fn repeat_sentence(r: &RepeatEvidence) -> String {
    format!("{} % of {} lines were \"{}\"", percent(r.share), thousands(r.lines), r.template)
}

fn percent(share: f64) -> u64 {
    (share * 100.0).round() as u64
}

/// `30 s`, `2.5 s`.
pub(super) fn secs(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if (s - s.round()).abs() < 0.05 {
        format!("{} s", s.round())
    } else {
        format!("{s:.1} s")
    }
}

/// Bytes as whole MB with thousands separators.
fn mb(bytes: u64) -> String {
    thousands((bytes as f64 / super::config::MB).round() as u64)
}

/// `1840` -> `1,840`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The parts of an incident's evidence that come from what the rule found.
pub fn evidence(found: &Found, threshold: serde_json::Value) -> Evidence {
    let mut e = Evidence { threshold: Some(threshold), ..Evidence::default() };
    if let Some(r) = found.repeat() {
        e.template = Some(r.template.clone());
        e.template_count = Some(r.count);
        e.lines = Some(r.lines);
    }
    if let Found::Rate(r) = found {
        e.lines_per_sec = Some(r.lines_per_sec.round());
    }
    e
}

/// A change to an incident, as `incidents.jsonl` names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Opened,
    Acted,
    Closed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Opened => "opened",
            Change::Acted => "acted",
            Change::Closed => "closed",
        }
    }
}

/// The `incidents.jsonl` line for a change at `now`: `{"change":"opened",
/// "at":"...", ...the whole record}` and a newline.
pub fn jsonl_line(incident: &Incident, change: Change, now: i64) -> String {
    let record = serde_json::to_string(incident).expect("an incident always serialises");
    format!(
        "{{\"change\":\"{}\",\"at\":\"{}\",{}\n",
        change.as_str(),
        format_timestamp(now),
        &record[1..]
    )
}

/// What `load` found in `incidents.jsonl`.
#[derive(Debug, Default)]
pub struct History {
    /// The last state of each incident, in the order they were opened.
    pub incidents: Vec<Incident>,
    /// Lines that could not be read (a cut last line after a crash).
    pub damaged: usize,
    /// The file does not end with a newline: the next line written must
    /// start with one, or it would be glued to the cut line.
    pub needs_newline: bool,
}

/// Reads `incidents.jsonl`; a missing file is an empty history.
pub fn load(path: &Path) -> std::io::Result<History> {
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(History::default()),
        Err(e) => return Err(e),
    };
    Ok(parse_history(&bytes))
}

fn parse_history(bytes: &[u8]) -> History {
    let mut h = History {
        needs_newline: !bytes.is_empty() && !bytes.ends_with(b"\n"),
        ..History::default()
    };
    let mut at: HashMap<String, usize> = HashMap::new();
    for line in bytes.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Incident>(line) {
            Ok(inc) => match at.get(&inc.id) {
                Some(&i) => h.incidents[i] = inc,
                None => {
                    at.insert(inc.id.clone(), h.incidents.len());
                    h.incidents.push(inc);
                }
            },
            Err(_) => h.damaged += 1,
        }
    }
    h
}

/// Incident ids are `inc-1`, `inc-2`, ..., counting on across server runs.
const ID_PREFIX: &str = "inc-";

fn id_number(id: &str) -> Option<u64> {
    id.strip_prefix(ID_PREFIX)?.parse().ok()
}

/// Every incident of this server and, at most `MAX_KEPT`, of the ones before.
#[derive(Debug)]
pub struct IncidentLog {
    kept: VecDeque<Incident>,
    next_id: u64,
}

impl Default for IncidentLog {
    fn default() -> IncidentLog {
        IncidentLog { kept: VecDeque::new(), next_id: 1 }
    }
}

impl IncidentLog {
    /// Starts from the history read at boot. Incidents it left open (the
    /// server was killed) are closed now, and the lines saying so returned,
    /// for the file.
    pub fn from_history(history: History, now: i64) -> (IncidentLog, Vec<String>) {
        let next_id = history.incidents.iter().filter_map(|i| id_number(&i.id)).max();
        let mut log = IncidentLog { kept: VecDeque::new(), next_id: next_id.map_or(1, |n| n + 1) };
        let mut lines = Vec::new();
        let skip = history.incidents.len().saturating_sub(MAX_KEPT);
        for mut inc in history.incidents.into_iter().skip(skip) {
            if inc.closed_at.is_none() {
                inc.closed_at = Some(format_timestamp(now));
                inc.close_reason = Some("the server stopped before it closed".into());
                if inc.outcome.is_none() {
                    inc.outcome = Some("unknown: the server stopped while acting".into());
                }
                lines.push(jsonl_line(&inc, Change::Closed, now));
            }
            log.kept.push_back(inc);
        }
        (log, lines)
    }

    /// Records a new incident, giving it the next id.
    pub fn open(&mut self, mut inc: Incident) -> &Incident {
        inc.id = format!("{ID_PREFIX}{}", self.next_id);
        self.next_id += 1;
        if self.kept.len() == MAX_KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(inc);
        self.kept.back().expect("pushed above")
    }

    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.kept.iter().rev().find(|i| i.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Incident> {
        // Recent incidents are the ones that change.
        self.kept.iter_mut().rev().find(|i| i.id == id)
    }

    /// `get_incidents`: the newest `limit` matching incidents, oldest first.
    pub fn query(&self, service: Option<&str>, open: Option<bool>, limit: usize) -> Vec<&Incident> {
        let mut out: Vec<&Incident> = self
            .kept
            .iter()
            .rev()
            .filter(|i| service.is_none_or(|s| i.service == s))
            .filter(|i| open.is_none_or(|o| i.closed_at.is_none() == o))
            .take(limit)
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlayer_protocol::GuardAction as Action;

    fn runaway() -> Found {
        Found::Runaway(
            CpuEvidence { cores: 0.981, for_ms: 30_000 },
            RepeatEvidence {
                lines: 1840,
                template: "retry <n> failed".into(),
                count: 1790,
                share: 0.9728,
            },
        )
    }

    fn incident(service: &str) -> Incident {
        let found = runaway();
        Incident {
            id: String::new(),
            service: service.into(),
            rule: found.rule(),
            action: Action::Restart,
            dry_run: false,
            opened_at: format_timestamp(1_795_791_321_123),
            closed_at: None,
            summary: found.summary(),
            evidence: evidence(&found, serde_json::json!({"cpu": {"above": 0.9}})),
            outcome: None,
            close_reason: None,
        }
    }

    #[test]
    fn words_match_the_contract() {
        let f = runaway();
        assert_eq!(
            f.summary(),
            "cpu 0.98 cores for 30 s and 97 % of 1,840 lines were \"retry <n> failed\""
        );
        assert_eq!(f.brief(), "cpu 0.98 for 30 s, 97 % \"retry <n> failed\"");
        let rate = Found::Rate(RateEvidence {
            lines_per_sec: 62_013.4,
            slowest_per_sec: 40_000.0,
            window_ms: 2500,
        });
        assert_eq!(rate.summary(), "62,013 lines/s for 2.5 s");
        let mem = Found::Memory { rss_bytes: 2150 * 1024 * 1024, above_mb: 2048.0 };
        assert_eq!(mem.summary(), "rss 2,150 MB, above 2,048 MB");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn rule_and_action_words_are_their_wire_words() {
        for rule in [
            RuleKind::Runaway,
            RuleKind::Cpu,
            RuleKind::Memory,
            RuleKind::Growth,
            RuleKind::Repeat,
            RuleKind::Rate,
            RuleKind::Processes,
        ] {
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.as_str());
        }
        for action in [Action::Alert, Action::Stop, Action::Restart] {
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
    }

    #[test]
    fn a_record_has_the_contract_shape() {
        let mut log = IncidentLog::from_history(History::default(), 0).0;
        let inc = log.open(incident("api")).clone();
        let v = serde_json::to_value(&inc).unwrap();
        for key in [
            "id",
            "service",
            "rule",
            "action",
            "dry_run",
            "opened_at",
            "closed_at",
            "summary",
            "evidence",
            "outcome",
        ] {
            assert!(v.get(key).is_some(), "no {key} in {v}");
        }
        assert_eq!(v["rule"], "runaway");
        assert_eq!(v["action"], "restart");
        assert_eq!(v["closed_at"], serde_json::Value::Null);
        let e = &v["evidence"];
        for key in ["threshold", "template", "template_count"] {
            assert!(e.get(key).is_some(), "no evidence.{key} in {e}");
        }
        assert_eq!(e["template_count"], 1790);
        assert_eq!(v["id"], "inc-1");
    }

    #[test]
    fn history_keeps_the_last_state_of_each_id_and_skips_a_cut_line() {
        let mut a = incident("api");
        a.id = "inc-7".into();
        let mut text = jsonl_line(&a, Change::Opened, 1000);
        a.outcome = Some("restarted in 0.4 s".into());
        text += &jsonl_line(&a, Change::Acted, 2000);
        let mut b = incident("web");
        b.id = "inc-8".into();
        b.closed_at = Some("x".into());
        text += &jsonl_line(&b, Change::Opened, 3000);
        let cut = jsonl_line(&b, Change::Closed, 4000);
        text += &cut[..cut.len() / 2];
        let h = parse_history(text.as_bytes());
        assert_eq!(h.damaged, 1);
        assert!(h.needs_newline);
        assert_eq!(h.incidents.len(), 2);
        assert_eq!(h.incidents[0].outcome.as_deref(), Some("restarted in 0.4 s"));
        let (mut log, lines) = IncidentLog::from_history(h, 5000);
        assert_eq!(lines.len(), 1, "the incident left open is closed now");
        assert!(lines[0].starts_with(
            "{\"change\":\"closed\",\"at\":\"1970-01-01T00:00:05.000Z\",\"id\":\"inc-7\""
        ));
        assert_eq!(log.open(incident("api")).id, "inc-9", "ids continue after the history");
    }

    #[test]
    fn evidence_lines_are_cut_on_a_character_boundary() {
        assert_eq!(cut_line("short".into()), "short");
        let long = "é".repeat(MAX_EVIDENCE_LINE);
        let cut = cut_line(long);
        assert!(cut.len() <= MAX_EVIDENCE_LINE + '…'.len_utf8() && cut.ends_with('…'));
    }

    #[test]
    fn a_missing_file_is_an_empty_history() {
        let h = load(Path::new("/nonexistent/incidents.jsonl")).unwrap();
        assert!(h.incidents.is_empty() && !h.needs_newline);
    }

    #[test]
    fn queries_filter_and_return_the_newest_oldest_first() {
        let mut log = IncidentLog::default();
        for s in ["api", "web", "api", "api"] {
            log.open(incident(s));
        }
        log.get_mut("inc-1").unwrap().closed_at = Some("x".into());
        let ids =
            |v: Vec<&Incident>| v.iter().map(|i| i.id.replace("inc-", "")).collect::<Vec<_>>();
        assert_eq!(ids(log.query(Some("api"), None, 2)), vec!["3", "4"]);
        assert_eq!(ids(log.query(None, Some(false), 10)), vec!["1"]);
        assert_eq!(ids(log.query(None, Some(true), 10)), vec!["2", "3", "4"]);
    }
}
