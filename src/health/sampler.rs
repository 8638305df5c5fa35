//! The sampler thread (`sampler`): reads the services' figures when someone
//! needs them, and only then (health.md section 2).
//!
//! It owns the subscriptions: each subscriber (a session that sent
//! `watch_stats`, the guard) gets a `Sample` at its own interval, all taken
//! from one reading when their times coincide. With no subscriber it sleeps in
//! `recv` with no timeout: no timer runs. It also answers `get_stats` (one
//! reading, sent straight to the session as the command's result).
//!
//! Receives `Job`s from the state thread (which alone knows which process is
//! whose: `Job::Views` on every change) and from whoever subscribes. Sends
//! frames to session outboxes and samples to the state thread (for the guard),
//! never blocking on either.

use super::meter::{Meter, Sample};
use crate::bus::{BusTx, Msg, Outbox, SessionId, Ticket, KICK_TOO_SLOW};
use crate::logs::now_ms;
use crate::state::ServiceView;
use crate::wire;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use flowlayer_protocol::{Event, ResultData, ResultPayload};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who a subscription belongs to (one subscription each).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WatchKey {
    Session(SessionId),
    /// The runaway guard (guard.md), sampling for its rules.
    Guard,
}

/// Where a subscriber's samples go.
pub enum Sink {
    /// As `service_stats` events. A session whose queue is full misses one
    /// (the next comes an interval later).
    Session(Outbox),
    /// To the state thread, as `Msg::Sampled` (the runaway guard, which the
    /// state thread feeds). One that does not fit on the bus is dropped: the
    /// next comes an interval later, and the sampler never waits.
    State(BusTx),
}

pub enum Job {
    /// Which process is whose from now on (the state thread sends it on every
    /// change of a status).
    Views(Vec<ServiceView>),
    /// A `get_stats` command: read now, answer `id` on `outbox`, then give
    /// the session its `ticket` back (it may send its next command).
    Stats { views: Vec<ServiceView>, outbox: Outbox, id: String, ticket: Option<Ticket> },
    /// Start or change (`Some`) or end (`None`) a subscription.
    Watch { key: WatchKey, every: Option<(Duration, Sink)> },
}

/// Handle of the sampler thread.
#[derive(Clone)]
pub struct Sampler {
    tx: Sender<Job>,
    /// The meter, also read directly by `/metrics`.
    pub meter: Arc<Mutex<Meter>>,
}

impl Sampler {
    /// Queues a job. Never blocks.
    pub fn send(&self, job: Job) {
        // The sampler thread lives as long as the process.
        let _ = self.tx.send(job);
    }
}

struct Sub {
    key: WatchKey,
    every: Duration,
    due: Instant,
    sink: Sink,
}

pub fn spawn_sampler(services: usize) -> std::io::Result<Sampler> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let meter = Arc::new(Mutex::new(Meter::new(services)));
    let m = meter.clone();
    std::thread::Builder::new().name("sampler".into()).spawn(move || run_sampler(rx, m))?;
    Ok(Sampler { tx, meter })
}

fn read(meter: &Mutex<Meter>, views: &[ServiceView]) -> Sample {
    // A reader that panicked left nothing half-written that matters here.
    meter.lock().unwrap_or_else(|e| e.into_inner()).read(views, now_ms())
}

fn run_sampler(rx: Receiver<Job>, meter: Arc<Mutex<Meter>>) {
    let mut views: Vec<ServiceView> = Vec::new();
    let mut subs: Vec<Sub> = Vec::new();
    loop {
        let next = subs.iter().map(|s| s.due).min();
        let got = match next {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_deadline(at),
        };
        match got {
            Ok(Job::Views(v)) => views = v,
            Ok(Job::Stats { views: v, outbox, id, ticket }) => {
                views = v;
                let sample = read(&meter, &views);
                let stats = ResultData::Stats(sample.to_stats());
                let frame = wire::result(id, ResultPayload::ok(stats));
                if !outbox.push(frame) {
                    // A result is never dropped silently (protocol.md).
                    outbox.kick(KICK_TOO_SLOW);
                }
                drop(ticket);
            }
            Ok(Job::Watch { key, every }) => {
                subs.retain(|s| s.key != key);
                if let Some((every, sink)) = every {
                    // The first sample comes at once, then one every `every`.
                    subs.push(Sub { key, every, due: Instant::now(), sink });
                }
                meter.lock().unwrap_or_else(|e| e.into_inner()).set_periodic(!subs.is_empty());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if !subs.iter().any(|s| s.due <= now) {
            continue;
        }
        let sample = Arc::new(read(&meter, &views));
        let mut frame = None;
        for s in subs.iter_mut().filter(|s| s.due <= now) {
            match &s.sink {
                Sink::Session(outbox) => {
                    let f = frame
                        .get_or_insert_with(|| wire::event(Event::ServiceStats(sample.to_stats())));
                    outbox.push(f.clone());
                }
                Sink::State(bus) => {
                    let _ = bus.offer(Msg::Sampled(sample.clone()));
                }
            }
            // Keep the cadence; after a stall, start again from now.
            s.due += s.every;
            if s.due <= now {
                s.due = now + s.every;
            }
        }
    }
}
