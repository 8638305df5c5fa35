//! The timeline (health.md section 3): each service's last lifecycle entries,
//! kept by the state thread's model (`Timeline`, no locks), and their copy in
//! `logs.dir/timeline.jsonl`, appended by a thread of its own
//! (`timeline-writer`, a `logs::AppendWriter`) so the state thread never
//! waits for the disk.
//!
//! Entries are rare (a transition, an exit, a probe's change of error), so
//! they are plain JSON objects: nothing here is on a hot path.

use crate::bus::SvcId;
use crate::logs::{format_timestamp, spawn_append_writer, AppendWriter};
use flowlayer_protocol::{TimelineEntry, TimelineKind};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// Entries kept in memory per service (health.md section 3).
pub const TIMELINE_PER_SERVICE: usize = 200;

/// One lifecycle entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Order of recording across all services (entries of one millisecond
    /// keep their order when merged).
    pub order: u64,
    pub ts_ms: i64,
    pub svc: SvcId,
    pub kind: TimelineKind,
    pub message: String,
    /// The kind's own fields, after the four common ones on the wire.
    pub fields: Map<String, Value>,
}

impl Entry {
    /// The entry as the protocol has it (`{"timestamp","service","kind",
    /// "message", ...fields}`).
    pub fn to_wire(&self, service: &str) -> TimelineEntry {
        TimelineEntry {
            timestamp: format_timestamp(self.ts_ms),
            service: service.into(),
            kind: self.kind,
            message: self.message.clone(),
            details: self.fields.clone(),
        }
    }

    /// The entry as a line of `timeline.jsonl` (without its newline).
    pub fn to_json_line(&self, service: &str) -> String {
        // A map of JSON values with string keys always serialises.
        serde_json::to_string(&self.to_wire(service)).expect("an entry is plain JSON")
    }
}

/// Builds an entry's fields: `fields(&[("code", 1.into())])`.
pub fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// The entries in memory: a ring per service.
pub struct Timeline {
    rings: Vec<VecDeque<Arc<Entry>>>,
    next_order: u64,
}

impl Timeline {
    pub fn new(services: usize) -> Timeline {
        Timeline { rings: (0..services).map(|_| VecDeque::new()).collect(), next_order: 0 }
    }

    /// Records an entry (dropping the service's oldest beyond the cap).
    pub fn push(
        &mut self,
        svc: SvcId,
        ts_ms: i64,
        kind: TimelineKind,
        message: String,
        fields: Map<String, Value>,
    ) -> Arc<Entry> {
        let entry = Arc::new(Entry { order: self.next_order, ts_ms, svc, kind, message, fields });
        self.next_order += 1;
        let ring = &mut self.rings[svc.0];
        if ring.len() == TIMELINE_PER_SERVICE {
            ring.pop_front();
        }
        ring.push_back(entry.clone());
        entry
    }

    /// The newest `limit` entries of one service, or of all merged, oldest first.
    pub fn newest(&self, svc: Option<SvcId>, limit: usize) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = match svc {
            Some(s) => self.rings[s.0].iter().map(|e| e.as_ref()).collect(),
            None => self.rings.iter().flatten().map(|e| e.as_ref()).collect(),
        };
        // Recording order is time order (one clock, read by one thread).
        out.sort_unstable_by_key(|e| e.order);
        let cut = out.len().saturating_sub(limit);
        out.drain(..cut);
        out
    }
}

/// Starts the writer of `dir/timeline.jsonl` (the directory exists: the log
/// writer created it). The file is opened on the first entry.
pub fn spawn_timeline_writer(dir: &Path) -> std::io::Result<AppendWriter> {
    spawn_append_writer(dir.join("timeline.jsonl"), "timeline-writer", false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_newest_and_merges_in_recording_order() {
        let mut t = Timeline::new(2);
        for i in 0..TIMELINE_PER_SERVICE + 5 {
            t.push(SvcId(0), i as i64, TimelineKind::Status, format!("a{i}"), Map::new());
        }
        t.push(SvcId(1), 3, TimelineKind::Exit, "b".into(), Map::new());
        let a = t.newest(Some(SvcId(0)), usize::MAX);
        assert_eq!(a.len(), TIMELINE_PER_SERVICE);
        assert_eq!(a[0].message, "a5");
        let all = t.newest(None, 2);
        let msgs: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, vec![format!("a{}", TIMELINE_PER_SERVICE + 4).as_str(), "b"]);
    }

    #[test]
    fn an_entry_puts_the_common_fields_first() {
        let e = Entry {
            order: 0,
            ts_ms: 1_795_791_321_123,
            svc: SvcId(0),
            kind: TimelineKind::RestartScheduled,
            message: "restart 2 in 1.9 s (on-failure)".into(),
            fields: fields(&[("attempt", 2.into()), ("delay_ms", 1900.into())]),
        };
        assert_eq!(
            e.to_json_line("api"),
            r#"{"timestamp":"2026-11-27T14:55:21.123Z","service":"api","kind":"restart_scheduled","message":"restart 2 in 1.9 s (on-failure)","attempt":2,"delay_ms":1900}"#
        );
    }
}
