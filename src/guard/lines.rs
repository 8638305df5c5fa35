//! The line conditions: `repeat` (one template dominates the output) and
//! `rate` (a sustained log storm), fed with each batch of a service's lines
//! and a clock, answering "in breach now?" with the evidence.
//!
//! Runs on the state thread, per `Lines` batch, on the batch the ring and the
//! writer share: no line is copied. Both are built to cost next to nothing in
//! a flood: `rate` adds the batch's line count to a slot, and `repeat` counts
//! every line but takes the template of only some of them. In each slot it
//! takes every line of the first `SAMPLES_PER_STRIDE`, then one line at
//! random in every 2 for as many, then one in every 4, and so on: each
//! sampled line stands for the lines of its stride, so the counts stay
//! unbiased, a slot costs at most a few hundred templates however many lines
//! it holds, and a service that logs a line at a time is read in full. A
//! loop that prints one line over and over gives the same template whichever
//! lines are taken; a mix is measured on hundreds of lines per slot.
//!
//! Windows are kept in tenths (`SLOTS`): a window is the current tenth and
//! the nine before it, so it moves in steps of a tenth, and counts never
//! claim more lines than the window saw.

use super::config::{RateLimits, RepeatLimits};
use super::template::Normaliser;
use crate::logs::Lines;
use std::collections::VecDeque;

/// Slots per window.
pub const SLOTS: i64 = 10;
/// Templates `repeat` takes at each stride of a slot before the stride
/// doubles: a slot of N lines costs about 64 × (1 + log2(N / 64)) templates.
pub const SAMPLES_PER_STRIDE: u64 = 64;
/// Templates one `repeat` window keeps counts for; past that the lightest
/// makes room. A dominant template is never the lightest for long.
const MAX_TEMPLATES: usize = 64;

/// Slot length for a window: a tenth, at least 1 ms.
fn slot_ms(window_ms: u64) -> i64 {
    (window_ms as i64 / SLOTS).max(1)
}

/// What `repeat` found: `count` of `lines` lines in the window were `template`.
#[derive(Clone, Debug, PartialEq)]
pub struct RepeatEvidence {
    pub lines: u64,
    pub template: String,
    pub count: u64,
    pub share: f64,
}

struct Template {
    hash: u64,
    text: String,
    /// Weight per slot, at `slot index % SLOTS`, with the slot it is for.
    cells: [(i64, f64); SLOTS as usize],
    /// Lines of the window this template stands for (estimated from samples).
    weight: f64,
}

impl Template {
    fn add(&mut self, index: i64, weight: f64) {
        let cell = &mut self.cells[index.rem_euclid(SLOTS) as usize];
        if cell.0 != index {
            // A slot that left the window: `recount` has taken it off already.
            *cell = (index, 0.0);
        }
        cell.1 += weight;
        self.weight += weight;
    }

    /// The weight of the window that ends with slot `index`.
    fn recount(&mut self, index: i64) {
        self.weight = self.cells.iter().filter(|c| c.0 > index - SLOTS).map(|c| c.1).sum();
    }
}

/// The `repeat` condition of one service.
pub struct RepeatCond {
    limits: RepeatLimits,
    slot_ms: i64,
    /// The current slot.
    index: i64,
    /// (slot, lines) of the window, ascending.
    slots: VecDeque<(i64, u64)>,
    /// Lines in the window (exact).
    lines: u64,
    templates: Vec<Template>,
    norm: Normaliser,
    /// xorshift state: which line of each stride is sampled.
    rng: u64,
    /// Sampling in the current slot, lines numbered from its first: lines
    /// seen, the current stride, samples taken at it, where the current
    /// stride's block begins and the next line to take (in that block).
    seen: u64,
    stride: u64,
    taken: u64,
    block: u64,
    next: u64,
    /// Templates taken, for tests.
    #[cfg(test)]
    sampled: u64,
}

impl RepeatCond {
    pub fn new(limits: RepeatLimits) -> RepeatCond {
        RepeatCond {
            limits,
            slot_ms: slot_ms(limits.within.as_millis() as u64),
            index: i64::MIN,
            slots: VecDeque::with_capacity(SLOTS as usize + 1),
            lines: 0,
            templates: Vec::new(),
            norm: Normaliser::default(),
            rng: 0x9e37_79b9_7f4a_7c15,
            seen: 0,
            stride: 1,
            taken: 0,
            block: 0,
            next: 0,
            #[cfg(test)]
            sampled: 0,
        }
    }

    /// Forgets everything (a new run of the service).
    pub fn reset(&mut self) {
        self.slots.clear();
        self.templates.clear();
        self.lines = 0;
        self.restart_sampling();
    }

    fn restart_sampling(&mut self) {
        (self.seen, self.stride, self.taken, self.block, self.next) = (0, 1, 0, 0, 0);
    }

    /// Counts a batch of lines read at `now` (Unix ms).
    pub fn observe(&mut self, lines: &Lines, now: i64) {
        let n = lines.len() as u64;
        if n == 0 {
            return;
        }
        self.advance(now);
        let index = self.index;
        match self.slots.back_mut() {
            Some((i, count)) if *i == index => *count += n,
            _ => self.slots.push_back((index, n)),
        }
        self.lines += n;
        let first = self.seen;
        self.seen += n;
        while self.next < self.seen {
            #[cfg(test)]
            {
                self.sampled += 1;
            }
            let hash = self.norm.template(lines.get((self.next - first) as usize));
            self.add(hash, self.stride as f64);
            // The next stride begins where this one ends; one line of it at random.
            self.block += self.stride;
            self.taken += 1;
            if self.taken == SAMPLES_PER_STRIDE {
                self.taken = 0;
                self.stride *= 2;
            }
            self.next = self.block + self.next_random() % self.stride;
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Adds a sample's weight to its template, making room if it is new.
    fn add(&mut self, hash: u64, weight: f64) {
        let index = self.index;
        if let Some(t) = self.templates.iter_mut().find(|t| t.hash == hash) {
            t.add(index, weight);
            return;
        }
        let mut t = Template {
            hash,
            text: self.norm.text().to_owned(),
            cells: [(i64::MIN, 0.0); SLOTS as usize],
            weight: 0.0,
        };
        t.add(index, weight);
        if self.templates.len() < MAX_TEMPLATES {
            self.templates.push(t);
        } else if let Some(lightest) = self.pick(|a, b| b.total_cmp(&a)) {
            self.templates[lightest] = t;
        }
    }

    /// The template that `better` prefers by weight.
    fn pick(&self, better: impl Fn(f64, f64) -> std::cmp::Ordering) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, t) in self.templates.iter().enumerate() {
            if best.is_none_or(|b| better(t.weight, self.templates[b].weight).is_gt()) {
                best = Some(i);
            }
        }
        best
    }

    /// Moves the window to the slot of `now` (never back: a clock that steps
    /// back counts in the current slot).
    fn advance(&mut self, now: i64) {
        let index = now.div_euclid(self.slot_ms).max(self.index);
        if index == self.index {
            return;
        }
        self.index = index;
        self.restart_sampling();
        while self.slots.front().is_some_and(|s| s.0 <= index - SLOTS) {
            let (_, n) = self.slots.pop_front().expect("checked above");
            self.lines -= n;
        }
        for t in &mut self.templates {
            t.recount(index);
        }
        // A template with (almost) nothing left in the window is forgotten.
        self.templates.retain(|t| t.weight > 0.5);
    }

    /// The evidence when the window at `now` is in breach: at least `lines`
    /// lines, and the heaviest template at least `share` of them.
    pub fn breach(&mut self, now: i64) -> Option<RepeatEvidence> {
        self.advance(now);
        if self.lines < self.limits.lines {
            return None;
        }
        let top = &self.templates[self.pick(|a, b| a.total_cmp(&b))?];
        let count = (top.weight.round() as u64).min(self.lines);
        let share = count as f64 / self.lines as f64;
        (share >= self.limits.share).then(|| RepeatEvidence {
            lines: self.lines,
            template: top.text.clone(),
            count,
            share,
        })
    }

    /// When the window next changes without new lines (`None`: it is empty).
    pub fn next_change(&self) -> Option<i64> {
        self.slots.front().map(|s| (s.0 + SLOTS) * self.slot_ms)
    }
}

/// What `rate` found: the window's mean rate and its slowest tenth.
#[derive(Clone, Debug, PartialEq)]
pub struct RateEvidence {
    pub lines_per_sec: f64,
    pub slowest_per_sec: f64,
    pub window_ms: u64,
}

/// The `rate` condition of one service.
pub struct RateCond {
    limits: RateLimits,
    slot_ms: i64,
    /// (slot index, lines), ascending; the current slot last.
    slots: VecDeque<(i64, u64)>,
    /// Slot of the first line since the last reset: a window that begins
    /// before it was not watched and cannot be "sustained".
    first: Option<i64>,
}

impl RateCond {
    pub fn new(limits: RateLimits) -> RateCond {
        RateCond {
            limits,
            slot_ms: slot_ms(limits.window.as_millis() as u64),
            slots: VecDeque::with_capacity(SLOTS as usize + 2),
            first: None,
        }
    }

    pub fn reset(&mut self) {
        self.slots.clear();
        self.first = None;
    }

    /// Counts `n` lines read at `now`.
    pub fn observe(&mut self, n: usize, now: i64) {
        if n == 0 {
            return;
        }
        let index = now.div_euclid(self.slot_ms);
        self.first.get_or_insert(index);
        match self.slots.back_mut() {
            Some((i, count)) if *i >= index => *count += n as u64,
            _ => self.slots.push_back((index, n as u64)),
        }
        while self.slots.front().is_some_and(|(i, _)| *i < index - SLOTS) {
            self.slots.pop_front();
        }
    }

    /// The evidence when the last `SLOTS` complete tenths before `now` each
    /// held at least half the limit's rate, and together its full rate.
    pub fn breach(&self, now: i64) -> Option<RateEvidence> {
        let index = now.div_euclid(self.slot_ms);
        let from = index - SLOTS;
        if self.first.is_none_or(|f| f > from) {
            return None;
        }
        let per_slot = self.limits.lines_per_sec * self.slot_ms as f64 / 1000.0;
        let mut total = 0u64;
        let mut slowest = u64::MAX;
        for k in from..index {
            let n = self.slots.iter().find(|(i, _)| *i == k).map_or(0, |(_, n)| *n);
            if (n as f64) < per_slot / 2.0 {
                return None;
            }
            total += n;
            slowest = slowest.min(n);
        }
        let window_ms = (SLOTS * self.slot_ms) as u64;
        let rate = total as f64 * 1000.0 / window_ms as f64;
        (rate >= self.limits.lines_per_sec).then(|| RateEvidence {
            lines_per_sec: rate,
            slowest_per_sec: slowest as f64 * 1000.0 / self.slot_ms as f64,
            window_ms,
        })
    }

    /// When the window next changes without new lines (`None`: nothing counted).
    pub fn next_change(&self, now: i64) -> Option<i64> {
        let last = self.slots.back()?.0;
        let index = now.div_euclid(self.slot_ms);
        // Each new tenth moves the window until the last counted one has left it.
        (index <= last + SLOTS).then_some((index + 1) * self.slot_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn repeat(lines: u64, within_ms: u64, share: f64) -> RepeatCond {
        RepeatCond::new(RepeatLimits { lines, within: Duration::from_millis(within_ms), share })
    }

    fn batch(lines: impl IntoIterator<Item = String>) -> Lines {
        let mut b = Lines::default();
        for l in lines {
            b.push(&l);
        }
        b
    }

    #[test]
    fn a_retry_loop_breaches_with_its_template_and_count() {
        let mut r = repeat(200, 10_000, 0.9);
        let mut now = 1_000_000;
        for i in 0..150 {
            r.observe(&batch([format!("retry {i} failed at 12:00:{:02}", i % 60)]), now);
            now += 10;
        }
        assert_eq!(r.breach(now), None, "150 lines are fewer than 200");
        for i in 150..250 {
            r.observe(&batch([format!("retry {i} failed at 12:00:{:02}", i % 60)]), now);
            now += 10;
        }
        let e = r.breach(now).expect("250 lines of one template");
        assert_eq!(e.template, "retry <n> failed at <ts>");
        assert_eq!((e.lines, e.count), (250, 250));
    }

    #[test]
    fn a_varied_output_does_not_breach_however_busy() {
        let mut r = repeat(200, 10_000, 0.9);
        let paths = ["/api/users", "/api/orders", "/static/app.js", "/health", "/login"];
        for i in 0..5000u64 {
            let lines = (0..10).map(|k| {
                let p = paths[((i * 7 + k) % 5) as usize];
                format!("GET {p}/{i} 200 {}ms", k * 3)
            });
            r.observe(&batch(lines), 1_000_000 + i as i64);
        }
        assert_eq!(r.breach(1_005_000), None);
    }

    #[test]
    fn a_big_batch_is_sampled_and_its_share_estimated() {
        let mut r = repeat(1000, 10_000, 0.9);
        // 95 % one template, 5 % others, in 100 batches of 2,000 lines.
        for b in 0..100 {
            let lines = (0..2000).map(|i| {
                if i % 20 == 7 {
                    format!("other event kind {}", char::from(b'a' + (i % 26) as u8))
                } else {
                    format!("conn {i} refused")
                }
            });
            r.observe(&batch(lines), 1_000_000 + b * 10);
        }
        let e = r.breach(1_001_000).expect("95 % is above 90 %");
        assert_eq!(e.lines, 200_000, "every line is counted");
        assert_eq!(e.template, "conn <n> refused");
        assert!((0.9..=1.0).contains(&e.share), "estimated share {}", e.share);
    }

    #[test]
    fn a_flood_in_one_slot_costs_a_few_hundred_templates_and_keeps_the_mix() {
        let mut r = repeat(1000, 10_000, 0.5);
        // 1M lines in one slot, alternating two templates line by line.
        for b in 0..400 {
            let lines =
                (0..2500).map(
                    |i| {
                        if i % 2 == 0 {
                            format!("even {i}")
                        } else {
                            format!("odd {i}")
                        }
                    },
                );
            r.observe(&batch(lines), 1_000_000 + b / 10);
        }
        assert!(r.sampled < 1000, "{} templates for 1M lines", r.sampled);
        let e = r.breach(1_000_100).expect("one of the two is at least half");
        assert!((0.5..0.6).contains(&e.share), "an unbiased estimate: {e:?}");
        assert_eq!(e.lines, 1_000_000);
    }

    #[test]
    fn the_window_forgets_lines_older_than_it() {
        let mut r = repeat(100, 1_000, 0.9);
        r.observe(&batch((0..150).map(|i| format!("x {i}"))), 10_000);
        assert!(r.breach(10_500).is_some());
        assert!(r.breach(10_999).is_some(), "still in the window");
        assert_eq!(r.breach(11_000), None, "its tenth left the window");
        assert_eq!(r.next_change(), None, "nothing left to expire");
    }

    #[test]
    fn a_storm_of_distinct_lines_keeps_a_bounded_set_and_no_breach() {
        let mut r = repeat(100, 10_000, 0.5);
        let words = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta"];
        for i in 0..20_000usize {
            let line = format!("{} {} {}", words[i % 8], words[(i / 8) % 8], words[(i / 64) % 8]);
            r.observe(&batch([line]), 1_000_000 + (i / 4) as i64);
        }
        assert!(r.templates.len() <= MAX_TEMPLATES);
        assert_eq!(r.breach(1_005_000), None);
    }

    #[test]
    fn a_loop_that_starts_after_noise_still_wins_the_window() {
        let mut r = repeat(200, 10_000, 0.9);
        // 100 distinct templates first fill the table, then the loop starts.
        for i in 0..100 {
            let line = format!("startup step {}", "abcdefghij".repeat(i % 7 + 1) + &"z".repeat(i));
            r.observe(&batch([line]), 1_000_000);
        }
        for i in 0..5000 {
            r.observe(&batch([format!("poll {i} failed")]), 1_000_100 + i / 10);
        }
        let e = r.breach(1_000_700).expect("the loop dominates");
        assert_eq!(e.template, "poll <n> failed");
    }

    fn rate(per_sec: f64, for_ms: u64) -> RateCond {
        RateCond::new(RateLimits { lines_per_sec: per_sec, window: Duration::from_millis(for_ms) })
    }

    #[test]
    fn a_sustained_storm_breaches_after_one_full_window() {
        let mut r = rate(1000.0, 1000);
        // 2,000 lines/s in batches every 10 ms from t = 10,000.
        let mut now = 10_000;
        while now < 11_000 {
            r.observe(20, now);
            now += 10;
            if now < 11_000 {
                assert_eq!(r.breach(now), None, "the window is not full at {now}");
            }
        }
        r.observe(20, now);
        let e = r.breach(11_005).expect("a full window at 2,000/s");
        assert!((e.lines_per_sec - 2000.0).abs() < 1.0, "{e:?}");
        assert_eq!(e.window_ms, 1000);
    }

    #[test]
    fn a_single_burst_is_not_a_sustained_rate() {
        let mut r = rate(1000.0, 1000);
        r.observe(1, 10_000);
        r.observe(5000, 10_500); // 5x the window's whole budget in one tenth
        assert_eq!(r.breach(11_001), None);
        assert_eq!(r.breach(11_100), None);
    }

    #[test]
    fn a_storm_that_stops_clears_within_a_tenth() {
        let mut r = rate(1000.0, 1000);
        for t in (10_000..12_000).step_by(10) {
            r.observe(20, t);
        }
        assert!(r.breach(12_000).is_some());
        assert_eq!(r.breach(12_100), None);
        assert_eq!(r.next_change(12_100), Some(12_200));
        assert_eq!(r.next_change(13_200), None, "the last counted tenth has left");
    }
}
