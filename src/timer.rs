//! Timer thread (`timer`): turns the state thread's `Arm` requests into
//! `Msg::Deadline` (and its live-log wake into `Msg::LiveTail`, its tidy-up
//! after a flood into `Msg::LogsQuiet`, the runaway guard's next look into
//! `Msg::GuardCheck`) at the right moment. With nothing
//! armed it sleeps in `recv` with no timeout, so an idle server wakes for
//! nothing; a deadline that is no longer wanted (a restart that will not be
//! made) can be taken back, so it does not wake anyone either.

use crate::bus::{BusTx, DeadlineKind, Msg, RunId, SvcId};
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What to tell the state thread when the time comes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Alarm {
    Deadline { svc: SvcId, run: RunId, kind: DeadlineKind },
    LiveTail,
    LogsQuiet,
    GuardCheck,
}

type Armed = (Instant, Alarm);

enum Request {
    Arm(Armed),
    /// Forget every armed deadline for this alarm.
    Disarm(Alarm),
}

#[derive(Clone)]
pub struct Timer {
    tx: Sender<Request>,
}

impl Timer {
    pub fn arm(&self, at: Instant, svc: SvcId, run: RunId, kind: DeadlineKind) {
        // The timer thread only ends with the process.
        let _ = self.tx.send(Request::Arm((at, Alarm::Deadline { svc, run, kind })));
    }

    /// Takes back what `arm` armed for this `svc`, `run` and `kind`.
    pub fn disarm(&self, svc: SvcId, run: RunId, kind: DeadlineKind) {
        let _ = self.tx.send(Request::Disarm(Alarm::Deadline { svc, run, kind }));
    }

    pub fn arm_live_tail(&self, at: Instant) {
        let _ = self.tx.send(Request::Arm((at, Alarm::LiveTail)));
    }

    pub fn arm_logs_quiet(&self, at: Instant) {
        let _ = self.tx.send(Request::Arm((at, Alarm::LogsQuiet)));
    }

    /// Arms the guard's look at `at`, replacing the one armed before: the
    /// guard wants one look, at its next check (`None`: none).
    pub fn arm_guard(&self, at: Option<Instant>) {
        let _ = self.tx.send(Request::Disarm(Alarm::GuardCheck));
        if let Some(at) = at {
            let _ = self.tx.send(Request::Arm((at, Alarm::GuardCheck)));
        }
    }
}

/// `bus`: the timer may wait on a full bus (it is a producer like the pumps);
/// the state thread's `arm` calls never wait on the timer (unbounded).
pub fn spawn_timer(bus: BusTx) -> std::io::Result<Timer> {
    let (tx, rx) = crossbeam_channel::unbounded::<Request>();
    std::thread::Builder::new().name("timer".into()).spawn(move || {
        let mut heap: BinaryHeap<Reverse<Armed>> = BinaryHeap::new();
        loop {
            let next = heap.peek().map(|Reverse((at, ..))| *at);
            let got = match next {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_deadline(at),
            };
            match got {
                Ok(Request::Arm(armed)) => heap.push(Reverse(armed)),
                Ok(Request::Disarm(alarm)) => heap.retain(|Reverse((_, a))| *a != alarm),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            while let Some(Reverse((at, alarm))) = heap.peek().copied() {
                if at > now {
                    break;
                }
                heap.pop();
                let msg = match alarm {
                    Alarm::Deadline { svc, run, kind } => Msg::Deadline { svc, run, kind },
                    Alarm::LiveTail => Msg::LiveTail,
                    Alarm::LogsQuiet => Msg::LogsQuiet,
                    Alarm::GuardCheck => Msg::GuardCheck,
                };
                if bus.send(msg).is_err() {
                    return;
                }
            }
        }
    })?;
    Ok(Timer { tx })
}
