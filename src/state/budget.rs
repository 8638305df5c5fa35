//! How many bytes of live `log` events a session may still be sent: a token
//! bucket owned by the state thread, one per session.
//!
//! Live `log` events are a view; the rings and the JSONL files are the record,
//! and `get_logs` + `after_seq` fetches what a view missed (protocol.md). Without
//! a bound, every connected client receives every line of a flood, and on a
//! developer's machine that fan-out runs on the same cores as the services: 19
//! reading clients slowed a 1,000,000-line flood 5x. So the server spends at
//! most `RATE` bytes a second on live `log` events, after bursts of `BURST`,
//! shared equally by the connected sessions: the cost is bounded by the
//! machine, not multiplied by the number of clients. With lines of 100 bytes
//! (frames of ~250), one client gets 16,000 lines a second after a burst of
//! 4,000, twenty get 800 each after 200: more than a person can read, and more
//! than ordinary services log. Measured on W1+clients (`make bench`): the flood
//! took 4.4-5.6x as long with 19 reading clients as without; 1.17-1.20x with
//! this budget (1.02-1.03x with no live `log` events at all). Past it a session
//! misses `log` events, counted, as when it falls behind. Buckets are refilled
//! from the clock when a batch arrives, so they need no timer while they are
//! not dry (idle stays idle).
//!
//! A bucket that runs dry pauses until it holds a quarter of its burst again.
//! Without the pause, a session under a flood was sent a frame whenever a few
//! hundred bytes had trickled back in, i.e. every few batches: one wake-up of
//! the session thread and of its client per frame, for twenty sessions, on the
//! cores the flood needs. W1+clients (`make bench`, three runs each): 1.12-1.27x
//! W1 without the pause, 0.98-1.04x with it. Paused, a view is sent its tail at
//! most every `BURST / 4 / RATE` (62.5 ms); when the lines stop, a one-shot
//! timer armed while some bucket is paused has the state thread send the
//! newest lines it missed (`Exec::resume_tails` in `state/mod.rs`).

use std::time::{Duration, Instant};

/// Bytes of `log` frames all sessions together may receive at once after a
/// quiet spell.
pub const BURST: f64 = 1024.0 * 1024.0;
/// Bytes of `log` frames all sessions together may receive per second.
pub const RATE: f64 = 4.0 * 1024.0 * 1024.0;

/// A dry bucket resumes when it holds this share of its burst.
const RESUME: f64 = 0.25;

pub struct Budget {
    bytes: f64,
    at: Instant,
    /// Ran dry; nothing is sent until `RESUME` of a burst has come back.
    paused: bool,
}

impl Budget {
    /// A full bucket for one of `sessions` sessions.
    pub fn new(now: Instant, sessions: usize) -> Budget {
        Budget { bytes: BURST / sessions.max(1) as f64, at: now, paused: false }
    }

    /// Refills for the time passed, as one of `sessions` sessions; returns the
    /// bytes that may be sent now.
    pub fn refill(&mut self, now: Instant, sessions: usize) -> f64 {
        let share = sessions.max(1) as f64;
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.bytes = (self.bytes + secs * RATE / share).min(BURST / share);
        self.at = now;
        if self.paused && self.bytes >= RESUME * BURST / share {
            self.paused = false;
        }
        self.bytes()
    }

    /// Bytes that may be sent, as of the last `refill`.
    pub fn bytes(&self) -> f64 {
        if self.paused {
            0.0
        } else {
            self.bytes
        }
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// How long until a paused bucket resumes, as one of `sessions` sessions
    /// (`None` when it is not paused).
    pub fn resumes_in(&self, sessions: usize) -> Option<Duration> {
        let share = sessions.max(1) as f64;
        let missing = (RESUME * BURST / share - self.bytes).max(0.0);
        self.paused.then(|| Duration::from_secs_f64(missing / (RATE / share)))
    }

    /// How many of the newest frames (the end of `lens`, their sizes in order)
    /// fit, at most `room` of them; takes their bytes. Pauses the bucket when
    /// one that had room did not fit.
    pub fn take_newest(
        &mut self,
        lens: impl DoubleEndedIterator<Item = usize>,
        room: usize,
    ) -> usize {
        let mut taken = 0;
        for n in lens.rev().take(room) {
            if !self.take(n) {
                self.paused = true;
                break;
            }
            taken += 1;
        }
        taken
    }

    /// Takes `n` bytes if they are there (and the bucket is not paused).
    pub fn take(&mut self, n: usize) -> bool {
        let n = n as f64;
        if self.paused || n > self.bytes {
            return false;
        }
        self.bytes -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_allowed_then_the_rate_refills_it() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 1);
        assert_eq!(b.refill(t0, 1), BURST);
        assert!(b.take(BURST as usize - 10));
        assert!(!b.take(11), "the burst is spent");
        assert!(b.take(10));
        let later = t0 + Duration::from_millis(100);
        let got = b.refill(later, 1);
        assert!((got - RATE / 10.0).abs() < 1.0, "{got}");
        assert_eq!(b.refill(later + Duration::from_secs(60), 1), BURST, "never more than a burst");
    }

    #[test]
    fn the_newest_frames_that_fit_are_taken() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 1);
        assert!(b.take(BURST as usize - 250));
        // Sizes oldest first: the last two fit in 250 bytes, the third does not.
        assert_eq!(b.take_newest([100, 120, 130].into_iter(), 10), 2);
        assert!(b.bytes() < 1.0);
        let mut b = Budget::new(t0, 1);
        assert_eq!(b.take_newest([100, 100, 100].into_iter(), 1), 1, "no more than the room");
    }

    #[test]
    fn a_dry_bucket_pauses_until_a_quarter_of_its_burst_is_back() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 2);
        assert_eq!(b.resumes_in(2), None);
        let share = BURST / 2.0;
        // Two frames of a quarter fit; the third runs it dry.
        let quarter = (share / 4.0) as usize;
        assert_eq!(b.take_newest([quarter * 3, quarter, quarter].into_iter(), 10), 2);
        assert!(b.paused());
        assert_eq!(b.bytes(), 0.0, "paused: nothing may be sent");
        assert!(!b.take(1));
        // Half its burst is left, more than the quarter it resumes at: it resumes
        // at the next refill.
        assert!(b.resumes_in(2).is_some_and(|d| d.is_zero()));
        assert!(b.refill(t0, 2) > 0.0 && !b.paused());
        let mut dry = Budget::new(t0, 1);
        assert_eq!(dry.take_newest([1, BURST as usize].into_iter(), 10), 1);
        assert!(dry.paused());
        let wait = dry.resumes_in(1).unwrap();
        let expect = RESUME * BURST / RATE;
        assert!((wait.as_secs_f64() - expect).abs() < 1e-3, "{wait:?}");
        // Just before that, still paused; at it, resumed with a quarter burst.
        assert_eq!(dry.refill(t0 + wait.mul_f64(0.9), 1), 0.0);
        assert!(dry.paused());
        let got = dry.refill(t0 + wait + Duration::from_micros(10), 1);
        assert!(!dry.paused());
        assert!(got >= RESUME * BURST, "{got}");
    }

    #[test]
    fn sessions_share_the_budget_equally() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 4);
        assert_eq!(b.bytes(), BURST / 4.0);
        assert!(b.take((BURST / 4.0) as usize));
        let got = b.refill(t0 + Duration::from_millis(100), 4);
        assert!((got - RATE / 40.0).abs() < 1.0, "{got}");
        // Fewer sessions later: each may hold a larger share.
        assert_eq!(b.refill(t0 + Duration::from_secs(60), 2), BURST / 2.0);
    }
}
