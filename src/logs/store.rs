//! In-memory log rings: one per service, owned by the state thread (no locks).
//!
//! A ring per service (server.md section 6) so a noisy service never evicts a quiet
//! one's history. A ring holds whole batches (one `Arc` per batch, not per line:
//! the writer and the terminal read the same batches on other CPUs, and a count
//! touched per line would bounce between them). Queries walk the rings from their
//! tails and copy only the lines they return: `get_logs` never copies or sorts
//! the whole store.

use super::{Batch, LineRef, Lines};
use crate::bus::{Status, Stream, SvcId};
use std::collections::VecDeque;
use std::sync::Arc;

/// Entries kept in memory per service.
pub const DEFAULT_RING_CAPACITY: usize = 10_000;

pub struct LogStore {
    rings: Vec<Ring>,
    /// Highest seq evicted from each ring (0 = nothing evicted yet).
    evicted_max: Vec<u64>,
    capacity: usize,
    next_seq: u64,
    /// This run's first seq: anything below it is from an earlier server run
    /// and only on disk.
    first_seq: u64,
    /// The files may hold entries of earlier runs (see `with_earlier_runs`).
    earlier: bool,
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

/// One service's newest lines, oldest first, as the tails of whole batches.
/// Entries are numbered from 0 (the oldest) to `len - 1`.
#[derive(Default)]
struct Ring {
    segs: VecDeque<Seg>,
    len: usize,
    /// Entries ever added: a segment's `start` counts in this numbering, which
    /// eviction does not shift.
    added: u64,
    /// `added` at the last `compact`: segments from before it are copies already.
    compacted: u64,
}

/// Lines `from..` of a batch.
struct Seg {
    batch: Arc<Batch>,
    from: u32,
    /// Number of line `from` in the ring's lifetime numbering.
    start: u64,
}

impl Ring {
    /// Adds lines `from..` of `batch`, then evicts the oldest beyond `capacity`;
    /// returns how many were evicted and the highest seq among them.
    fn push(&mut self, batch: Arc<Batch>, from: usize, capacity: usize) -> (usize, Option<u64>) {
        let n = batch.len() - from;
        if n > 0 {
            self.segs.push_back(Seg { batch, from: from as u32, start: self.added });
            self.added += n as u64;
            self.len += n;
        }
        let mut evicted = 0;
        let mut last = None;
        while self.len > capacity {
            let front = self.segs.front_mut().expect("len > 0 means a segment");
            let drop = (front.batch.len() - front.from as usize).min(self.len - capacity);
            last = Some(front.batch.seq(front.from as usize + drop - 1));
            front.from += drop as u32;
            front.start += drop as u64;
            self.len -= drop;
            evicted += drop;
            if front.from as usize == front.batch.len() {
                self.segs.pop_front();
            }
        }
        (evicted, last)
    }

    /// Copies the lines of each segment added since the last call into a buffer
    /// of their own.
    fn compact(&mut self) {
        for seg in self.segs.iter_mut().filter(|s| s.start >= self.compacted) {
            seg.batch = Arc::new(seg.batch.copy_from(seg.from as usize));
            seg.from = 0;
        }
        self.compacted = self.added;
    }

    /// Where entry `k` (0 = oldest) is: its segment and its line in the batch.
    fn pos(&self, k: usize) -> (usize, usize) {
        let at = self.segs.front().map_or(0, |s| s.start) + k as u64;
        let s = self.segs.partition_point(|s| s.start <= at) - 1;
        (s, self.segs[s].from as usize + (at - self.segs[s].start) as usize)
    }

    /// The entry one before `pos` (which must not be the oldest).
    fn back(&self, (s, i): (usize, usize)) -> (usize, usize) {
        if i > self.segs[s].from as usize {
            (s, i - 1)
        } else {
            (s - 1, self.segs[s - 1].batch.len() - 1)
        }
    }

    fn batch(&self, (s, _): (usize, usize)) -> &Arc<Batch> {
        &self.segs[s].batch
    }

    fn seq(&self, k: usize) -> u64 {
        let (s, i) = self.pos(k);
        self.segs[s].batch.seq(i)
    }

    /// Number of entries whose seq satisfies `below` (true for a prefix).
    fn count_where(&self, below: impl Fn(u64) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.seq(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

impl LogStore {
    pub fn new(services: usize, capacity: usize, first_seq: u64) -> LogStore {
        LogStore {
            rings: (0..services).map(|_| Ring::default()).collect(),
            evicted_max: vec![0; services],
            capacity: capacity.max(1),
            next_seq: first_seq,
            first_seq,
            earlier: false,
            evicted: 0,
        }
    }

    /// Says whether the JSONL files may hold entries of earlier runs (they
    /// told a seq at boot, or could not be read).
    pub fn with_earlier_runs(mut self, earlier: bool) -> LogStore {
        self.earlier = earlier;
        self
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
        let lines = lines.fitted();
        let n = lines.len();
        let batch = Arc::new(Batch { svc, stream, phase, ts_ms, seq0: self.next_seq, lines });
        self.next_seq += n as u64;
        // Only the last `capacity` lines of a huge batch can stay.
        let first = n.saturating_sub(self.capacity);
        if first > 0 {
            self.evicted_max[svc.0] = batch.seq(first - 1);
        }
        let (evicted, last) = self.rings[svc.0].push(batch.clone(), first, self.capacity);
        if let Some(seq) = last {
            self.evicted_max[svc.0] = self.evicted_max[svc.0].max(seq);
        }
        self.evicted += (evicted + first) as u64;
        batch
    }

    /// Lets the memory of a flood go back to the system once it is over. The
    /// rings keep the newest lines, which sit in the buffers a pump allocated
    /// last, at the top of the heap its thread allocates from; glibc can only
    /// shrink a heap from the top down, so those few lines held all of it.
    /// Copied (into the state thread's heap) and the originals freed, they no
    /// longer do: RSS after one 1M-line flood 17-82 -> 5.9-6.4 MB, after four
    /// at once 71-118 -> 10.2-10.6 MB (with the pumps' `UNCACHED` room).
    pub fn compact(&mut self) {
        self.rings.iter_mut().for_each(Ring::compact);
    }

    /// The newest `n` lines `svc` wrote itself (stdout and stderr, not the
    /// server's `system` lines), oldest first: an incident's evidence.
    pub fn newest_output(&self, svc: SvcId, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        let own = self.rings[svc.0].segs.iter().rev().filter(|s| s.batch.stream != Stream::System);
        'segs: for seg in own {
            for i in (seg.from as usize..seg.batch.len()).rev() {
                if out.len() == n {
                    break 'segs;
                }
                out.push(seg.batch.message(i).to_string());
            }
        }
        out.reverse();
        out
    }

    /// Seq of the newest entry (below the first seq of the run when none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Newest `limit` entries with `after < seq < before`, of one service or all.
    /// `disk`: the JSONL files hold every entry, this run's evicted ones and
    /// those of earlier runs, so what memory does not hold is asked from them.
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
        // Memory holds every entry above `floor` for these rings. Entries of
        // earlier server runs are on disk only (server.md section 6): a query
        // reaches them with an `after_seq` below this run (a client resuming
        // after a restart; without the files they are gone, and `truncated`
        // says so) or, with the files, a `before_seq` (a client paging back).
        // The newest page, asked with neither, stays within this run and says
        // (`truncated`) when earlier runs left entries.
        let newest = after == 0 && before == u64::MAX;
        let paging_back = before < u64::MAX && disk && self.earlier;
        let run_floor = if after > 0 || paging_back { self.first_seq - 1 } else { 0 };
        let floor = rings.iter().map(|r| self.evicted_max[*r]).max().unwrap_or(0).max(run_floor);
        let low = after.max(floor);
        // Per ring: how many entries with low < seq < before are left to merge,
        // where the newest of them is, and its seq.
        let mut spans: Vec<(usize, usize, (usize, usize), u64)> = rings
            .iter()
            .filter_map(|&r| {
                let ring = &self.rings[r];
                let lo = ring.count_where(|seq| seq <= low);
                let hi = ring.count_where(|seq| seq < before);
                (hi > lo).then(|| (r, hi - lo, ring.pos(hi - 1), ring.seq(hi - 1)))
            })
            .collect();
        let mut out = Vec::with_capacity(limit.min(4096));
        while out.len() < limit {
            // The ring whose last remaining entry is the newest.
            let Some(best) = (0..spans.len()).max_by_key(|&i| spans[i].3) else {
                break;
            };
            let (r, left, pos, top) = &mut spans[best];
            let ring = &self.rings[*r];
            out.push(LineRef { batch: ring.batch(*pos).clone(), i: pos.1 as u32 });
            *left -= 1;
            if *left == 0 {
                spans.swap_remove(best);
            } else {
                *pos = ring.back(*pos);
                *top = ring.batch(*pos).seq(pos.1);
            }
        }
        out.reverse();
        let more_in_memory = !spans.is_empty();
        let older_evicted = floor > after && before > after + 1;
        let mut from_disk = None;
        let mut truncated = more_in_memory || (newest && disk && self.earlier);
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

    /// Lines `m<from>` .. `m<from + n - 1>` as one batch.
    fn lines(from: usize, n: usize) -> Lines {
        let mut l = Lines::default();
        (from..from + n).for_each(|i| l.push(&format!("m{i}")));
        l
    }

    #[test]
    fn newest_output_skips_the_servers_lines_and_keeps_order() {
        let mut s = LogStore::new(2, 5, 1);
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(0, 3));
        s.push(SvcId(0), Status::Running, Stream::System, 0, Lines::one("exited".into()));
        s.push(SvcId(1), Status::Running, Stream::Stdout, 0, lines(10, 1));
        s.push(SvcId(0), Status::Running, Stream::Stderr, 0, lines(3, 2));
        assert_eq!(s.newest_output(SvcId(0), 3), vec!["m2", "m3", "m4"]);
        // The ring keeps 5 lines, one of them the server's.
        assert_eq!(s.newest_output(SvcId(0), 10), vec!["m1", "m2", "m3", "m4"]);
    }

    #[test]
    fn compacting_copies_what_the_rings_keep_and_changes_no_answer() {
        let mut s = LogStore::new(2, 5, 1);
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(0, 4)); // seq 1-4
        s.push(SvcId(1), Status::Running, Stream::Stderr, 0, lines(9, 1)); // seq 5
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(4, 3)); // seq 6-8
        let page = |s: &LogStore| {
            let p = s.query(None, 0, u64::MAX, 10, false);
            let lines: Vec<(u64, String, Stream)> = p
                .entries
                .iter()
                .map(|e| (e.seq(), e.batch.message(e.i as usize).to_string(), e.batch.stream))
                .collect();
            (lines, p.truncated, p.from_disk)
        };
        let before = page(&s);
        let old = s.rings[0].segs[0].batch.clone();
        s.compact();
        assert_eq!(page(&s), before);
        // The first batch lost two lines to eviction: its copy holds the other two only.
        let copy = &s.rings[0].segs[0];
        assert!(!Arc::ptr_eq(&copy.batch, &old));
        assert_eq!((copy.from, copy.batch.len(), copy.batch.lines.text.as_str()), (0, 2, "m2m3"));
        // Only what came since is copied the next time; eviction still counts right.
        let kept = s.rings[0].segs[0].batch.clone();
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(7, 1)); // seq 9
        s.compact();
        assert!(Arc::ptr_eq(&s.rings[0].segs[0].batch, &kept));
        assert_eq!(seqs(&s.query(Some(SvcId(0)), 0, u64::MAX, 10, false)), vec![4, 6, 7, 8, 9]);
    }

    #[test]
    fn eviction_cuts_into_batches_and_queries_find_single_lines() {
        let mut s = LogStore::new(2, 5, 1);
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(0, 3)); // seq 1-3
        s.push(SvcId(1), Status::Running, Stream::Stdout, 0, lines(9, 1)); // seq 4
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(3, 4)); // seq 5-8
        assert_eq!(s.evicted, 2);
        let p = s.query(Some(SvcId(0)), 0, u64::MAX, 10, true);
        assert_eq!(seqs(&p), vec![3, 5, 6, 7, 8]);
        let text: Vec<&str> = p.entries.iter().map(|e| e.batch.message(e.i as usize)).collect();
        assert_eq!(text, vec!["m2", "m3", "m4", "m5", "m6"]);
        assert_eq!(p.from_disk, Some(DiskRange { after: 0, upto: 2, need: 5 }));
        assert_eq!(seqs(&s.query(None, 3, 8, 10, false)), vec![4, 5, 6, 7]);
        assert_eq!(seqs(&s.query(Some(SvcId(0)), 5, u64::MAX, 2, false)), vec![7, 8]);
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(7, 4)); // seq 9-12
        assert_eq!(seqs(&s.query(Some(SvcId(0)), 0, u64::MAX, 10, false)), vec![8, 9, 10, 11, 12]);
        assert_eq!(s.evicted, 6);
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

    #[test]
    fn a_resume_from_an_earlier_run_reads_that_run_from_disk() {
        let mut s = LogStore::new(1, 10, 100);
        s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(0, 2)); // seq 100-101
        let p = s.query(None, 40, u64::MAX, 50, true);
        assert_eq!(seqs(&p), vec![100, 101]);
        assert_eq!(p.from_disk, Some(DiskRange { after: 40, upto: 99, need: 48 }));
        let p = s.query(None, 40, u64::MAX, 50, false);
        assert!(p.truncated, "without logs.dir those lines are gone, and the page says so");
        // No after_seq: this run only, as before; after_seq in this run: memory.
        assert!(s.query(None, 0, u64::MAX, 50, true).from_disk.is_none());
        assert!(s.query(None, 99, u64::MAX, 50, true).from_disk.is_none());
    }

    #[test]
    fn paging_back_reaches_earlier_runs_in_the_files_and_the_newest_page_says_they_are_there() {
        let store = |earlier| {
            let mut s = LogStore::new(2, 10, 100).with_earlier_runs(earlier);
            s.push(SvcId(0), Status::Running, Stream::Stdout, 0, lines(0, 3)); // seq 100-102
            s
        };
        let s = store(true);
        // The newest page: this run's, and more before it.
        let p = s.query(Some(SvcId(0)), 0, u64::MAX, 5, true);
        assert_eq!((seqs(&p), p.truncated, p.from_disk), (vec![100, 101, 102], true, None));
        // Paging back: the part below this run comes from the files.
        let p = s.query(None, 0, 101, 5, true);
        assert_eq!(seqs(&p), vec![100]);
        assert_eq!(p.from_disk, Some(DiskRange { after: 0, upto: 99, need: 4 }));
        let p = s.query(Some(SvcId(1)), 0, 100, 5, true);
        assert_eq!(
            (p.entries.len(), p.from_disk),
            (0, Some(DiskRange { after: 0, upto: 99, need: 5 }))
        );
        // Files with no earlier run, or no files: nothing more to say or read.
        let s = store(false);
        let p = s.query(Some(SvcId(0)), 0, u64::MAX, 5, true);
        assert!(!p.truncated && p.from_disk.is_none());
        assert!(s.query(None, 0, 101, 5, true).from_disk.is_none());
        let s = store(true);
        let p = s.query(Some(SvcId(0)), 0, 101, 5, false);
        assert!(!p.truncated && p.from_disk.is_none());
    }
}
