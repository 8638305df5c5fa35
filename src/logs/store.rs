//! In-memory log rings: one per service, owned by the state thread (no locks).
//!
//! A ring per service (server.md section 6) so a noisy service never evicts a quiet
//! one's history. A ring slot is a reference into a shared batch (no per-line
//! allocation). Queries walk the rings from their tails and copy only the lines
//! they return: `get_logs` never copies or sorts the whole store.

use super::{Batch, LineRef, Lines};
use crate::bus::{Status, Stream, SvcId};
use std::collections::VecDeque;
use std::sync::Arc;

/// Entries kept in memory per service.
pub const DEFAULT_RING_CAPACITY: usize = 10_000;

pub struct LogStore {
    rings: Vec<VecDeque<LineRef>>,
    /// Highest seq evicted from each ring (0 = nothing evicted yet).
    evicted_max: Vec<u64>,
    capacity: usize,
    next_seq: u64,
    /// Lines evicted from memory over the run (they stay in the JSONL files).
    pub evicted: u64,
}

/// The part of a `get_logs` answer that memory can give.
#[derive(Debug)]
pub struct Page {
    /// Ascending seq.
    pub entries: Vec<LineRef>,
    pub truncated: bool,
    /// Older matching entries were evicted from memory: read seq in
    /// `(after, upto]` from disk, newest `need` of them, and put them first.
    pub from_disk: Option<DiskRange>,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct DiskRange {
    pub after: u64,
    pub upto: u64,
    pub need: usize,
}

impl LogStore {
    pub fn new(services: usize, capacity: usize, first_seq: u64) -> LogStore {
        LogStore {
            rings: (0..services).map(|_| VecDeque::new()).collect(),
            evicted_max: vec![0; services],
            capacity: capacity.max(1),
            next_seq: first_seq,
            evicted: 0,
        }
    }

    /// Stores a batch of lines read at `ts_ms`; returns it, seq assigned.
    pub fn push(
        &mut self,
        svc: SvcId,
        phase: Status,
        stream: Stream,
        ts_ms: i64,
        lines: Lines,
    ) -> Arc<Batch> {
        let n = lines.len();
        let batch = Arc::new(Batch { svc, stream, phase, ts_ms, seq0: self.next_seq, lines });
        self.next_seq += n as u64;
        let ring = &mut self.rings[svc.0];
        // Only the last `capacity` lines of a huge batch can stay.
        let first = n.saturating_sub(self.capacity);
        let overflow = (ring.len() + n - first).saturating_sub(self.capacity);
        for old in ring.drain(..overflow) {
            self.evicted_max[svc.0] = old.seq();
        }
        if first > 0 {
            self.evicted_max[svc.0] = batch.seq(first - 1);
        }
        self.evicted += (overflow + first) as u64;
        ring.extend((first..n).map(|i| LineRef { batch: batch.clone(), i: i as u32 }));
        batch
    }

    /// Newest `limit` entries with `after < seq < before`, of one service or all.
    pub fn query(
        &self,
        svc: Option<SvcId>,
        after: u64,
        before: u64,
        limit: usize,
        disk: bool,
    ) -> Page {
        let rings: Vec<usize> = match svc {
            Some(s) => vec![s.0],
            None => (0..self.rings.len()).collect(),
        };
        // Memory holds every entry above `floor` for these rings.
        let floor = rings.iter().map(|r| self.evicted_max[*r]).max().unwrap_or(0);
        let low = after.max(floor);
        // Per ring: the index range of entries with low < seq < before.
        let mut spans: Vec<(usize, usize, usize)> = rings
            .iter()
            .map(|&r| {
                let ring = &self.rings[r];
                let lo = ring.partition_point(|e| e.seq() <= low);
                let hi = ring.partition_point(|e| e.seq() < before);
                (r, lo, hi.max(lo))
            })
            .filter(|(_, lo, hi)| hi > lo)
            .collect();
        let mut out = Vec::with_capacity(limit.min(4096));
        while out.len() < limit {
            // The ring whose last remaining entry is the newest.
            let Some(best) = (0..spans.len()).max_by_key(|&i| {
                let (r, _, hi) = spans[i];
                self.rings[r][hi - 1].seq()
            }) else {
                break;
            };
            let (r, lo, hi) = &mut spans[best];
            out.push(self.rings[*r][*hi - 1].clone());
            *hi -= 1;
            if *hi == *lo {
                spans.swap_remove(best);
            }
        }
        out.reverse();
        let more_in_memory = !spans.is_empty();
        let older_evicted = floor > after && before > after + 1;
        let mut from_disk = None;
        let mut truncated = more_in_memory;
        if !more_in_memory && older_evicted {
            if disk && out.len() < limit {
                let upto = floor.min(before.saturating_sub(1));
                from_disk = Some(DiskRange { after, upto, need: limit - out.len() });
            } else {
                truncated = true;
            }
        }
        Page { entries: out, truncated, from_disk }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(cap: usize, lines: &[usize]) -> LogStore {
        let mut s = LogStore::new(3, cap, 1);
        for (i, svc) in lines.iter().enumerate() {
            s.push(SvcId(*svc), Status::Running, Stream::Stdout, 0, Lines::one(format!("l{i}")));
        }
        s
    }

    fn seqs(p: &Page) -> Vec<u64> {
        p.entries.iter().map(|e| e.seq()).collect()
    }

    #[test]
    fn a_batch_larger_than_the_ring_keeps_its_tail() {
        let mut s = LogStore::new(1, 3, 10);
        let mut lines = Lines::default();
        for i in 0..5 {
            lines.push(&format!("x{i}"));
        }
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines);
        let p = s.query(Some(SvcId(0)), 0, u64::MAX, 10, true);
        assert_eq!(seqs(&p), vec![12, 13, 14]);
        assert_eq!(p.from_disk, Some(DiskRange { after: 0, upto: 11, need: 7 }));
        assert_eq!(s.evicted, 2);
    }

    #[test]
    fn merged_query_is_newest_limit_in_ascending_order() {
        let s = store(100, &[0, 1, 0, 2, 1, 0]);
        let p = s.query(None, 0, u64::MAX, 4, false);
        assert_eq!(seqs(&p), vec![3, 4, 5, 6]);
        assert!(p.truncated);
        let p = s.query(None, 0, u64::MAX, 10, false);
        assert_eq!(seqs(&p), vec![1, 2, 3, 4, 5, 6]);
        assert!(!p.truncated);
    }

    #[test]
    fn after_and_before_bound_the_range() {
        let s = store(100, &[0, 1, 0, 2, 1, 0]);
        assert_eq!(seqs(&s.query(None, 2, 6, 10, false)), vec![3, 4, 5]);
        assert_eq!(seqs(&s.query(Some(SvcId(0)), 0, 6, 10, false)), vec![1, 3]);
        assert_eq!(seqs(&s.query(Some(SvcId(0)), 0, 6, 1, false)), vec![3]);
    }

    #[test]
    fn noisy_service_does_not_evict_quiet_one() {
        let s = store(2, &[1, 0, 0, 0, 0]);
        assert_eq!(seqs(&s.query(Some(SvcId(1)), 0, u64::MAX, 10, false)), vec![1]);
        assert_eq!(s.evicted, 2);
    }

    #[test]
    fn evicted_range_is_asked_from_disk_or_marked_truncated() {
        let s = store(2, &[0, 0, 0, 0]);
        let p = s.query(Some(SvcId(0)), 0, u64::MAX, 3, true);
        assert_eq!(seqs(&p), vec![3, 4]);
        assert_eq!(p.from_disk, Some(DiskRange { after: 0, upto: 2, need: 1 }));
        let p = s.query(Some(SvcId(0)), 0, u64::MAX, 3, false);
        assert!(p.truncated && p.from_disk.is_none());
        let p = s.query(Some(SvcId(0)), 0, 3, 5, true);
        assert_eq!(p.from_disk, Some(DiskRange { after: 0, upto: 2, need: 5 }));
        // Fully inside memory: no disk.
        assert!(s.query(Some(SvcId(0)), 2, u64::MAX, 5, true).from_disk.is_none());
    }
}
