//! The restart policy's arithmetic (health.md section 1): the backoff delay with
//! its jitter, the reset after a long run, and the crash-loop window. Pure; the
//! state thread's model (`state::Model`) keeps one `Backoff` per service and
//! decides with it when a service that exited on its own starts again.

use crate::bus::RunId;
use crate::config::Restart;
use std::collections::VecDeque;
use std::time::Duration;

/// Share of a delay that jitter may add or take away, so that services that
/// failed together do not all come back at the same instant.
pub const JITTER: f64 = 0.2;

/// A restart the model has scheduled and not made yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// When it is due (Unix ms).
    pub at_ms: i64,
    /// Its number in the current series (1 for the first after a healthy run).
    pub attempt: u32,
    /// The run whose exit it follows: its timer is armed under this run, so a
    /// timer for a run that is no longer current is stale.
    pub after: RunId,
}

/// What to do after an exit the server did not ask for.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Start again after `delay`; `attempt` counts restarts in a row.
    Restart { attempt: u32, delay: Duration },
    /// More than `maxRestarts` exits within `windowMs`: give up. `exits` is
    /// how many, `span_ms` the time from the first of them to now.
    CrashLoop { exits: usize, span_ms: i64 },
}

/// One service's restart history in this server run.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    /// Restarts in a row: the exponent of the delay.
    attempt: u32,
    /// When the recent unrequested exits happened (Unix ms), oldest first,
    /// none older than the window.
    exits: VecDeque<i64>,
    /// Restarts the policy made in this server run (never reset).
    pub total: u32,
    pub pending: Option<Pending>,
    /// The last exit ended a crash loop: no restart until a user starts it.
    pub gave_up: bool,
}

impl Backoff {
    /// Decides after an unrequested exit of a run that lasted `run_ms`.
    /// `jitter` is in [-1, 1) (from `Jitter::next`).
    pub fn on_exit(&mut self, cfg: &Restart, run_ms: i64, now: i64, jitter: f64) -> Decision {
        if run_ms >= cfg.reset_after.as_millis() as i64 {
            self.attempt = 0;
            self.exits.clear();
        }
        let window = cfg.window.as_millis() as i64;
        self.exits.push_back(now);
        while self.exits.front().is_some_and(|t| *t <= now - window) {
            self.exits.pop_front();
        }
        if self.exits.len() > cfg.max_restarts as usize {
            self.gave_up = true;
            let first = self.exits.front().copied().unwrap_or(now);
            return Decision::CrashLoop { exits: self.exits.len(), span_ms: now - first };
        }
        self.attempt += 1;
        Decision::Restart { attempt: self.attempt, delay: delay(cfg, self.attempt, jitter) }
    }

    /// A user started the service: the series and the crash-loop count begin
    /// again (health.md: a user start or restart clears the count). A pending
    /// restart stays: the start that follows takes it back.
    pub fn clear(&mut self) {
        self.attempt = 0;
        self.exits.clear();
        self.gave_up = false;
    }
}

/// `backoff × 2^(attempt-1)`, capped at `maxBackoff`, then moved by up to
/// ±`JITTER` of itself (`jitter` in [-1, 1)).
pub fn delay(cfg: &Restart, attempt: u32, jitter: f64) -> Duration {
    let base = cfg.backoff.as_millis() as f64;
    let doubled = base * 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
    let capped = doubled.min(cfg.max_backoff.as_millis() as f64);
    let ms = capped * (1.0 + JITTER * jitter.clamp(-1.0, 1.0));
    Duration::from_millis(ms.round().max(1.0) as u64)
}

/// A small seeded generator (splitmix64) for the jitter: the model stays a
/// pure function of its messages and its seed, so tests can replay it.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// The next value, uniform in [-1, 1).
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits as a fraction in [0, 1).
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        unit * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RestartPolicy;

    fn cfg() -> Restart {
        Restart {
            policy: RestartPolicy::OnFailure,
            backoff: Duration::from_millis(1000),
            max_backoff: Duration::from_millis(5000),
            reset_after: Duration::from_millis(30_000),
            max_restarts: 3,
            window: Duration::from_millis(60_000),
        }
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let ms: Vec<u128> = (1..=5).map(|n| delay(&cfg(), n, 0.0).as_millis()).collect();
        assert_eq!(ms, vec![1000, 2000, 4000, 5000, 5000]);
        assert_eq!(delay(&cfg(), 1000, 0.0).as_millis(), 5000, "a huge attempt does not overflow");
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_spreads() {
        let mut j = Jitter::new(7);
        let values: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(values.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(values.iter().any(|v| *v < -0.9) && values.iter().any(|v| *v > 0.9));
        assert_eq!(delay(&cfg(), 1, -1.0).as_millis(), 800);
        assert_eq!(delay(&cfg(), 1, 0.999_999).as_millis(), 1200);
        // The same seed gives the same series.
        assert_eq!(Jitter::new(7).next(), values[0]);
    }

    #[test]
    fn the_restart_past_the_limit_within_the_window_is_not_made() {
        let mut b = Backoff::default();
        let c = cfg();
        let mut now = 0;
        for n in 1..=3 {
            now += 1000;
            assert_eq!(
                b.on_exit(&c, 100, now, 0.0),
                Decision::Restart { attempt: n, delay: delay(&c, n, 0.0) }
            );
        }
        now += 1000;
        assert_eq!(b.on_exit(&c, 100, now, 0.0), Decision::CrashLoop { exits: 4, span_ms: 3000 });
        assert!(b.gave_up);
        b.clear();
        assert_eq!(
            b.on_exit(&c, 100, now + 1, 0.0),
            Decision::Restart { attempt: 1, delay: c.backoff }
        );
    }

    #[test]
    fn exits_older_than_the_window_do_not_count() {
        let mut b = Backoff::default();
        let c = cfg();
        for i in 0..10 {
            let d = b.on_exit(&c, 100, i * 25_000, 0.0);
            assert!(matches!(d, Decision::Restart { .. }), "exit {i}: {d:?}");
        }
    }

    #[test]
    fn a_long_run_resets_the_doubling() {
        let mut b = Backoff::default();
        let c = cfg();
        b.on_exit(&c, 100, 1000, 0.0);
        b.on_exit(&c, 100, 2000, 0.0);
        let d = b.on_exit(&c, 30_000, 40_000, 0.0);
        assert_eq!(d, Decision::Restart { attempt: 1, delay: c.backoff });
    }
}
