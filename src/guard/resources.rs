//! The resource conditions: `cpu`, `memory`, `growth` and `processes`, fed
//! with the samples of one service's process tree (health.md section 2:
//! cores in use over the last interval, RSS, process count), answering "in
//! breach now?" with the evidence.
//!
//! Runs on the state thread, once per sample (every `sampleMs` while a rule
//! needs samples). Pure: the sampler reads /proc, these only count.

use super::config::{CpuLimits, GrowthLimits, MemoryLimits, ProcessLimits, MB};
use std::collections::VecDeque;

/// One sample of a service's process tree.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Sample {
    /// When it was taken (Unix ms).
    pub at: i64,
    /// Cores in use over the interval since the previous sample (1.0 = one core busy).
    pub cpu: f64,
    pub rss_bytes: u64,
    pub processes: u32,
}

/// What `cpu` found: the mean over the streak of samples above the limit.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuEvidence {
    pub cores: f64,
    /// How long every sample has been above (at least the window).
    pub for_ms: i64,
}

/// The `cpu` condition: every sample in the window above `above`.
pub struct CpuCond {
    limits: CpuLimits,
    sample_ms: i64,
    /// Start of the interval the streak's first sample measured, and the
    /// streak's sum and count.
    streak: Option<(i64, f64, u32)>,
    last_at: Option<i64>,
}

impl CpuCond {
    pub fn new(limits: CpuLimits, sample_ms: u64) -> CpuCond {
        CpuCond { limits, sample_ms: sample_ms as i64, streak: None, last_at: None }
    }

    pub fn reset(&mut self) {
        self.streak = None;
        self.last_at = None;
    }

    pub fn observe(&mut self, s: &Sample) {
        // A sample measures the interval since the one before (the first of
        // a run: one period).
        let from = self.last_at.unwrap_or(s.at - self.sample_ms);
        self.last_at = Some(s.at);
        if s.cpu > self.limits.above {
            let (_, sum, n) = self.streak.get_or_insert((from, 0.0, 0));
            *sum += s.cpu;
            *n += 1;
        } else {
            self.streak = None;
        }
    }

    /// In breach when the samples above the limit cover the whole window.
    pub fn breach(&self) -> Option<CpuEvidence> {
        let (start, sum, n) = self.streak?;
        let for_ms = self.last_at? - start;
        (for_ms >= self.limits.window.as_millis() as i64)
            .then(|| CpuEvidence { cores: sum / n as f64, for_ms })
    }
}

/// The `memory` condition: the tree's RSS above the limit in the last sample.
pub fn memory_breach(limits: MemoryLimits, s: &Sample) -> bool {
    s.rss_bytes as f64 > limits.above_mb * MB
}

/// The `processes` condition: more processes than the limit in the last sample.
pub fn processes_breach(limits: ProcessLimits, s: &Sample) -> bool {
    u64::from(s.processes) > limits.above
}

/// What `growth` found over the window.
#[derive(Clone, Debug, PartialEq)]
pub struct GrowthEvidence {
    pub mb_per_min: f64,
    pub from_bytes: u64,
    pub to_bytes: u64,
    pub for_ms: i64,
}

/// Points a growth window keeps at most: a longer window keeps one point per
/// 1/240 of it, so its work and memory do not grow with it.
const GROWTH_POINTS: i64 = 240;

/// The `growth` condition: RSS grew steadily by at least `mbPerMin` over the
/// window. Steadily means both:
/// - the least-squares slope of RSS over the window is at least the limit
///   with two standard errors to spare: noise (a garbage collector's
///   sawtooth, a busy heap) can tilt a line through a few samples, but not
///   that surely;
/// - the mean RSS of each quarter of the window is above the one before by
///   at least a quarter of what the limit adds in a quarter: a one-off
///   allocation (a cache filled at start) is a step, not a leak, and leaves
///   some quarters flat.
pub struct GrowthCond {
    limits: GrowthLimits,
    sample_ms: i64,
    /// Keep a point at most this often.
    spacing: i64,
    /// (time, rss) ascending, from just before the window to the last sample.
    points: VecDeque<(i64, u64)>,
}

impl GrowthCond {
    pub fn new(limits: GrowthLimits, sample_ms: u64) -> GrowthCond {
        let window = limits.window.as_millis() as i64;
        let sample_ms = sample_ms as i64;
        GrowthCond {
            limits,
            sample_ms,
            spacing: (window / GROWTH_POINTS).max(sample_ms),
            points: VecDeque::new(),
        }
    }

    pub fn reset(&mut self) {
        self.points.clear();
    }

    pub fn observe(&mut self, s: &Sample) {
        // Samples come every `sample_ms`, give or take the timer's jitter.
        let due =
            self.points.back().is_none_or(|p| s.at - p.0 >= self.spacing - self.sample_ms / 2);
        if due {
            self.points.push_back((s.at, s.rss_bytes));
        }
        let window = self.limits.window.as_millis() as i64;
        while self.points.len() > 2 && self.points[1].0 <= s.at - window {
            self.points.pop_front();
        }
    }

    pub fn breach(&self) -> Option<GrowthEvidence> {
        let (&(t0, first), &(t1, last)) = (self.points.front()?, self.points.back()?);
        let span = t1 - t0;
        let window = self.limits.window.as_millis() as i64;
        if span < window - self.sample_ms / 2 || self.points.len() < 4 {
            return None;
        }
        let per_ms = self.limits.mb_per_min * MB / 60_000.0;
        // Least-squares slope, in bytes per ms (times relative to t0: small numbers).
        let n = self.points.len() as f64;
        let (mut st, mut sy, mut stt, mut sty) = (0.0, 0.0, 0.0, 0.0);
        for &(t, y) in &self.points {
            let (t, y) = ((t - t0) as f64, y as f64);
            st += t;
            sy += y;
            stt += t * t;
            sty += t * y;
        }
        let denom = n * stt - st * st;
        if denom <= 0.0 {
            return None;
        }
        let slope = (n * sty - st * sy) / denom;
        // Standard error of the slope, from the residuals.
        let intercept = (sy - slope * st) / n;
        let sse: f64 = self
            .points
            .iter()
            .map(|&(t, y)| {
                let r = y as f64 - (intercept + slope * (t - t0) as f64);
                r * r
            })
            .sum();
        let spread = stt - st * st / n;
        let se = (sse / (n - 2.0) / spread).sqrt();
        if slope - 2.0 * se < per_ms {
            return None;
        }
        let mut quarters = [(0.0f64, 0u32); 4];
        for &(t, y) in &self.points {
            let q = (((t - t0) * 4) / span.max(1)).min(3) as usize;
            quarters[q].0 += y as f64;
            quarters[q].1 += 1;
        }
        if quarters.iter().any(|q| q.1 == 0) {
            return None;
        }
        let means: Vec<f64> = quarters.iter().map(|q| q.0 / q.1 as f64).collect();
        let step = per_ms * span as f64 / 4.0 / 4.0;
        if means.windows(2).any(|w| w[1] - w[0] < step) {
            return None;
        }
        Some(GrowthEvidence {
            mb_per_min: slope * 60_000.0 / MB,
            from_bytes: first,
            to_bytes: last,
            for_ms: span,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(at: i64, cpu: f64, rss_mb: f64) -> Sample {
        Sample { at, cpu, rss_bytes: (rss_mb * MB) as u64, processes: 1 }
    }

    #[test]
    fn cpu_breaches_only_when_every_sample_of_the_window_is_above() {
        let mut c = CpuCond::new(CpuLimits { above: 0.9, window: Duration::from_secs(3) }, 1000);
        for (i, cpu) in [0.95, 0.99, 0.97].iter().enumerate() {
            c.observe(&sample(10_000 + i as i64 * 1000, *cpu, 10.0));
        }
        // Three samples measure 9,000..12,000: the whole window.
        let e = c.breach().expect("3 s above 0.9");
        assert_eq!(e.for_ms, 3000);
        assert!((e.cores - 0.97).abs() < 1e-9);
        c.observe(&sample(13_000, 0.5, 10.0));
        assert_eq!(c.breach(), None, "one sample below ends the streak");
        c.observe(&sample(14_000, 0.95, 10.0));
        c.observe(&sample(15_000, 0.95, 10.0));
        assert_eq!(c.breach(), None, "2 s of a new streak");
    }

    #[test]
    fn a_healthy_spike_shorter_than_the_window_never_breaches() {
        let mut c = CpuCond::new(CpuLimits { above: 0.9, window: Duration::from_secs(5) }, 250);
        let mut t = 0;
        for round in 0..10 {
            // 3 s at full speed, then 1 s idle.
            for k in 0..16 {
                t += 250;
                c.observe(&sample(t, if k < 12 { 1.0 } else { 0.05 }, 10.0));
                assert_eq!(c.breach(), None, "round {round} step {k}");
            }
        }
    }

    #[test]
    fn memory_and_processes_compare_the_last_sample() {
        let s = Sample { at: 0, cpu: 0.0, rss_bytes: 101 * 1024 * 1024, processes: 9 };
        assert!(memory_breach(MemoryLimits { above_mb: 100.0 }, &s));
        assert!(!memory_breach(MemoryLimits { above_mb: 101.0 }, &s));
        assert!(processes_breach(ProcessLimits { above: 8 }, &s));
        assert!(!processes_breach(ProcessLimits { above: 9 }, &s));
    }

    fn growth(mb_per_min: f64, secs: u64, sample_ms: u64) -> GrowthCond {
        GrowthCond::new(GrowthLimits { mb_per_min, window: Duration::from_secs(secs) }, sample_ms)
    }

    /// A tiny deterministic noise source (no dependency).
    fn noise(i: i64) -> f64 {
        let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        (x as f64 / (1u64 << 24) as f64) - 0.5
    }

    #[test]
    fn a_steady_leak_with_noise_breaches_after_one_window() {
        let mut g = growth(100.0, 60, 1000);
        // 300 MB/min (5 MB/s) with ±20 MB of noise.
        for i in 0..=60 {
            g.observe(&sample(i * 1000, 0.1, 200.0 + 5.0 * i as f64 + 40.0 * noise(i)));
            if i < 59 {
                assert_eq!(g.breach(), None, "less than a window at {i} s");
            }
        }
        let e = g.breach().expect("a leak");
        assert!((250.0..350.0).contains(&e.mb_per_min), "{e:?}");
        assert_eq!(e.for_ms, 60_000);
    }

    #[test]
    fn a_one_off_step_and_a_sawtooth_are_not_leaks() {
        let mut step = growth(100.0, 60, 1000);
        let mut saw = growth(100.0, 60, 1000);
        for i in 0..=120 {
            // 0 -> 500 MB at once at 30 s: a slope, but flat quarters.
            step.observe(&sample(i * 1000, 0.1, if i < 30 { 100.0 } else { 600.0 }));
            // A garbage collector: +10 MB/s for 10 s, then back down.
            saw.observe(&sample(i * 1000, 0.1, 300.0 + 10.0 * (i % 10) as f64));
            assert_eq!(step.breach(), None, "step at {i}");
            assert_eq!(saw.breach(), None, "sawtooth at {i}");
        }
    }

    #[test]
    fn a_long_window_keeps_a_bounded_number_of_points() {
        let mut g = growth(2.0, 3600, 250);
        for i in 0..20_000 {
            g.observe(&sample(i * 250, 0.0, 100.0 + i as f64 * 0.01));
        }
        assert!(g.points.len() <= GROWTH_POINTS as usize + 2, "{}", g.points.len());
        assert!(g.breach().is_some(), "0.01 MB per 250 ms is 2.4 MB/min");
    }
}
