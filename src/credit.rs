//! Credit: a count of things in flight, bounded by `limit`, each held as a
//! `Permit` that gives its share back when dropped. A taker past the limit waits
//! on a condition variable, not a timer.
//!
//! - pumps: bytes of read lines waiting for the state thread (back-pressure on
//!   the child, with a memory bound whatever the bus's message count);
//! - the JSONL writer: bytes waiting for the disk;
//! - the session listener: WebSocket sessions, under their cap (`try_take`,
//!   which never waits).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Credit {
    inner: Arc<(Mutex<usize>, Condvar)>,
    limit: usize,
}

/// One holder's share of the credit, given back when dropped (by whoever is
/// done with what it stands for: the state thread, the writer, a request).
pub struct Permit {
    inner: Arc<(Mutex<usize>, Condvar)>,
    n: usize,
}

impl Credit {
    pub fn new(limit: usize) -> Credit {
        Credit { inner: Arc::new((Mutex::new(0), Condvar::new())), limit }
    }

    /// Waits until `n` more bytes fit (a single oversized take is let through
    /// when nothing else is in flight).
    pub fn take(&self, n: usize) -> Permit {
        self.take_by(n, None).expect("no deadline, no give-up")
    }

    /// `take` if `n` fit now, without waiting.
    pub fn try_take(&self, n: usize) -> Option<Permit> {
        self.take_by(n, Some(Duration::ZERO))
    }

    /// `take`, giving up after `limit` without taking anything.
    pub fn take_within(&self, n: usize, limit: Duration) -> Option<Permit> {
        self.take_by(n, Some(limit))
    }

    fn take_by(&self, n: usize, limit: Option<Duration>) -> Option<Permit> {
        let mut used = self.wait_while(|used| used > 0 && used + n > self.limit, limit)?;
        *used += n;
        Some(Permit { inner: self.inner.clone(), n })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What permits hold now.
    pub fn used(&self) -> usize {
        *self.lock()
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits while `busy(used)`, for at most `limit` (forever without one);
    /// `None` when the limit passed first. The clock is read only if it waits.
    fn wait_while(
        &self,
        busy: impl Fn(usize) -> bool,
        limit: Option<Duration>,
    ) -> Option<MutexGuard<'_, usize>> {
        let cv = &self.inner.1;
        let mut used = self.lock();
        let mut deadline = None;
        while busy(*used) {
            used = match limit {
                None => cv.wait(used).unwrap_or_else(|e| e.into_inner()),
                Some(limit) => {
                    let end = *deadline.get_or_insert_with(|| Instant::now() + limit);
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    cv.wait_timeout(used, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
        Some(used)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (lock, cv) = &*self.inner;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) -= self.n;
        cv.notify_all();
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({})", self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_credit_blocks_until_a_permit_is_dropped() {
        let c = Credit::new(10);
        let p1 = c.take(8);
        let c2 = c.clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let t = std::thread::spawn(move || {
            let _p = c2.take(5);
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "must wait");
        drop(p1);
        rx.recv_timeout(Duration::from_secs(5)).expect("released");
        t.join().unwrap();
        let _big = c.take(100); // alone: let through
    }
}
