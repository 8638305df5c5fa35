//! The state thread (`state`): the one owner of service state and the log store.
//!
//! It takes messages from its own local queue (what it reports to itself: spawn
//! results, a `stopCmd` that could not start), then signals, then sessions, then
//! the bus; lets `Model` decide, and carries out the effects: spawning, signals,
//! probes, timers, disk, terminal and session frames. It never sleeps, never
//! sends on a channel that can be full (it has no sender of the bus at all,
//! only `Producers`), and never waits on a client, the disk or the terminal.
//! Resource readings (/proc) are the sampler's and the scrapes' work: this
//! thread only tells them which process is whose, and subscribes to samples
//! while the runaway guard needs them (it gets them on the bus, `Msg::Sampled`).

mod budget;
mod model;

#[cfg(test)]
pub use model::Counters;
/// The `logView.maxEntries` default, for the config schema test.
#[cfg(test)]
pub use model::DEFAULT_LOG_LIMIT;
pub use model::{Effect, Extra, Failure, Model, RestartReason, ServiceView, StatusNote};

use crate::bus::{
    BusRx, CtlRx, Frame, FrameTx, Msg, Outbox, Posted, Producers, SessionId, Sig, SvcId, Ticket,
    KICK_SHUTDOWN, KICK_TOO_SLOW,
};
use crate::config::Config;
use crate::health::{IncidentCount, Job, Sampler, Scrape, Sink, WatchKey};
use crate::logs::{format_timestamp, now_ms, read_page, AppendWriter, BatchJson, Page, Writer};
use crate::output::Printer;
use crate::supervisor::{self, signal_group};
use crate::timer::Timer;
use crate::wire;
use budget::Budget;
use crossbeam_channel::{Receiver, Sender};
use flowlayer_protocol::{ErrorCode, Event, ResultPayload};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest `get_logs` result frame (protocol.md: the official client refuses 16 MiB).
pub const MAX_RESULT_BYTES: usize = 8 * 1024 * 1024;
/// Bytes a `log` frame adds to its message (envelope, field names, seq,
/// timestamp): enough to estimate how many frames a budget has room for.
const MIN_LOG_FRAME: usize = 128;
/// A batch at least this big was read from a pipe in flood (the pumps read up
/// to 256 KiB at a time).
const FLOOD_BATCH: usize = 64 * 1024;
/// A flood is over when no flood-sized batch has come for this long; the log
/// rings are then compacted (`LogStore::compact`). Long enough that a service
/// logging in bursts is not compacted after each one.
const LOGS_QUIET: Duration = Duration::from_millis(500);
/// How long shutdown waits for the terminal to take the last lines.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Everything the state thread needs besides the model.
pub struct Io {
    pub cfg: Arc<Config>,
    /// Senders for the threads it starts; it never sends on the bus itself.
    pub bus: Producers,
    pub timer: Timer,
    pub writer: Option<Writer>,
    /// `timeline.jsonl`'s writer, with `logs.dir`.
    pub timeline: Option<AppendWriter>,
    /// `incidents.jsonl`'s writer, with `logs.dir` and a guard (or incidents
    /// a killed server left open).
    pub incidents: Option<AppendWriter>,
    pub sampler: Sampler,
    pub printer: Printer,
    /// Told when shutdown begins, so the Session API stops accepting first.
    pub on_shutdown: Option<Box<dyn FnOnce() + Send>>,
}

/// A connected session as the state thread sees it.
struct Slot {
    outbox: Outbox,
    /// `log` events this session missed (it can recover them with `get_logs`).
    dropped_logs: u64,
    /// Bytes of live `log` events it may still be sent.
    budget: Budget,
    /// Seq of the newest `log` event queued to it.
    last_seq: u64,
}

impl Slot {
    /// How many `log` frames of `line` bytes it could take now.
    fn frames_wanted(&self, line: usize) -> usize {
        if self.budget.paused() {
            return 0;
        }
        (self.outbox.logs.room() / line).min(self.budget.bytes() as usize / line + 1)
    }

    /// Queues the newest of `frames` (ascending, the last one's seq `newest`)
    /// that its budget and queue take, oldest first, and wakes the session.
    /// Returns how many it took.
    fn queue_newest(&mut self, frames: &[Frame], newest: u64) -> usize {
        let room = FrameTx::fit_newest(frames, self.outbox.logs.room());
        let fit = self.budget.take_newest(frames.iter().map(|f| f.len()), room);
        let sent = self.outbox.logs.push_all(&frames[frames.len() - fit..]);
        if sent > 0 {
            self.last_seq = newest;
            // A failed wake means the session thread is gone; Closed follows.
            let _ = self.outbox.waker.wake();
        }
        sent
    }
}

struct Exec {
    io: Io,
    probes: HashMap<SvcId, Sender<()>>,
    sessions: BTreeMap<SessionId, Slot>,
    local: VecDeque<Msg>,
    /// The ticket of the session command being handled: given back (dropped)
    /// once its reply is queued, so the session may send the next one.
    ticket: Option<Ticket>,
    exit: bool,
    /// When the live-tail timer is armed for (at most one at a time).
    tail_at: Option<Instant>,
    /// When the last flood-sized batch came, and whether the quiet timer is armed.
    last_flood: Option<Instant>,
    quiet_armed: bool,
    /// Sessions with `service_stats` events on.
    watching: BTreeSet<SessionId>,
    /// The runaway guard subscribes to samples.
    guard_sampling: bool,
    /// A status changed: the sampler must learn which process is whose.
    views_changed: bool,
    /// `log` events not streamed to sessions already closed.
    dropped_closed: u64,
}

/// Runs the state thread until shutdown completes. `sigs`, then `ctl` (sessions)
/// are always served before `rx` (everything else), so a flood of log batches
/// never delays a Ctrl-C or a command.
pub fn run_state(mut model: Model, io: Io, rx: BusRx, ctl: CtlRx, sigs: Receiver<Sig>) {
    let mut ex = Exec {
        io,
        probes: HashMap::new(),
        sessions: BTreeMap::new(),
        local: VecDeque::new(),
        ticket: None,
        exit: false,
        tail_at: None,
        last_flood: None,
        quiet_armed: false,
        watching: BTreeSet::new(),
        guard_sampling: false,
        views_changed: false,
        dropped_closed: 0,
    };
    let fx = model.boot(now_ms());
    ex.apply_all(fx, &model);
    while !ex.exit {
        let msg = match ex.local.pop_front() {
            Some(m) => m,
            None => {
                let got = crossbeam_channel::select_biased! {
                    recv(sigs) -> s => s.map(Msg::Signal),
                    recv(ctl) -> m => m.map(|Posted { msg, ticket }| {
                        ex.ticket = Some(ticket);
                        msg
                    }),
                    recv(rx) -> m => m,
                };
                match got {
                    Ok(m) => m,
                    Err(_) => break,
                }
            }
        };
        match msg {
            Msg::Opened { session, outbox } => ex.open(session, outbox, &model),
            Msg::Closed { session } => ex.close(session),
            Msg::Scrape { reply } => ex.scrape(reply, &model),
            Msg::LiveTail => ex.resume_tails(&model),
            Msg::LogsQuiet => {
                if ex.flood_over() {
                    model.store.compact();
                }
            }
            Msg::Signal(_) => {
                if let Some(f) = ex.io.on_shutdown.take() {
                    f();
                }
                let fx = model.handle(msg, now_ms());
                ex.apply_all(fx, &model);
            }
            msg => {
                let fx = model.handle(msg, now_ms());
                ex.apply_all(fx, &model);
            }
        }
        // The message's reply, if any, is queued: the session may send again.
        ex.ticket = None;
    }
    for (_, slot) in std::mem::take(&mut ex.sessions) {
        slot.outbox.kick(KICK_SHUTDOWN);
    }
    // Every line reaches the files before exit (server.md section 5), written
    // here at this thread's priority if the writer thread has not got to it.
    if let Some(w) = &ex.io.writer {
        w.finish();
    }
    if let Some(t) = &mut ex.io.timeline {
        t.finish();
    }
    if let Some(t) = &mut ex.io.incidents {
        t.finish();
    }
    ex.io.printer.sync(FINAL_FLUSH);
}

impl Exec {
    fn apply_all(&mut self, fx: Vec<Effect>, model: &Model) {
        for e in fx {
            self.apply(e, model);
        }
        // Once per message, not per transition, and only while someone
        // samples: a boot or a stop of many services does not wake it.
        if std::mem::take(&mut self.views_changed) && self.sampling() {
            self.io.sampler.send(Job::Views(model.views()));
        }
    }

    /// Something subscribes to samples (a watching session, the guard), so
    /// the sampler must know which process is whose.
    fn sampling(&self) -> bool {
        !self.watching.is_empty() || self.guard_sampling
    }

    fn name<'a>(&self, model: &'a Model, svc: SvcId) -> &'a str {
        &model.cfg.services[svc.0].name
    }

    fn apply(&mut self, e: Effect, model: &Model) {
        match e {
            Effect::Spawn { svc, run } => {
                let cfg = &self.io.cfg.services[svc.0];
                let msg = match supervisor::launch(cfg, svc, run, &self.io.bus) {
                    Ok(pid) => Msg::Spawned { svc, run, pid },
                    // Naming the port's holder scans /proc: a thread of its own
                    // does it and reports the failure.
                    Err(supervisor::SpawnError::PortInUse { port, .. })
                        if supervisor::port_owner::report(cfg, port, svc, run, &self.io.bus) =>
                    {
                        return
                    }
                    Err(e) => Msg::SpawnFailed { svc, run, error: e.to_string() },
                };
                self.local.push_back(msg);
            }
            Effect::StopCmd { svc, run } => {
                let cfg = &self.io.cfg.services[svc.0];
                if let Err(e) = supervisor::run_stop_cmd(cfg, svc, run, &self.io.bus) {
                    // On the local queue: the bus may be full, and only this
                    // thread drains it (issue 14).
                    let error = e.to_string();
                    self.local.push_back(Msg::StopCmdFailed { svc, run, error });
                }
            }
            Effect::Signal { pid, sig } => signal_group(pid, sig),
            Effect::StartProbe { svc, run } => {
                let Some(ready) = self.io.cfg.services[svc.0].ready.clone() else { return };
                let (tx, rx) = crossbeam_channel::bounded(0);
                self.probes.insert(svc, tx);
                let name = self.io.cfg.services[svc.0].name.clone();
                let job = supervisor::ProbeJob { svc, run, name, ready };
                supervisor::spawn_probe(job, self.io.bus.sender(), rx);
            }
            Effect::CancelProbe { svc } => {
                // Dropping the sender wakes the probe thread, which then ends.
                self.probes.remove(&svc);
            }
            Effect::Arm { after, svc, run, kind } => {
                self.io.timer.arm(Instant::now() + after, svc, run, kind)
            }
            Effect::Disarm { svc, run, kind } => self.io.timer.disarm(svc, run, kind),
            Effect::Timeline(entry) => {
                if let Some(t) = &self.io.timeline {
                    let mut line = entry.to_json_line(self.name(model, entry.svc));
                    line.push('\n');
                    t.write(line);
                }
            }
            Effect::IncidentLine(line) => {
                if let Some(t) = &self.io.incidents {
                    t.write(line);
                }
            }
            Effect::Incident(incident) => {
                // Never dropped silently: like `service_status` (guard.md section 3).
                if !self.sessions.is_empty() {
                    self.broadcast_status(wire::event(Event::Incident(incident)));
                }
            }
            Effect::GuardSampling(every) => self.guard_samples(every, model),
            Effect::GuardAlarm(after) => self.io.timer.arm_guard(after.map(|d| Instant::now() + d)),
            Effect::Stats { session, id } => {
                let Some(slot) = self.sessions.get(&session) else { return };
                let outbox = slot.outbox.clone();
                // The session's next command waits for this reply.
                let ticket = self.ticket.take();
                self.io.sampler.send(Job::Stats { views: model.views(), outbox, id, ticket });
            }
            Effect::Watch { session, every } => self.watch(session, every, model),
            Effect::Logs(batch) => {
                if batch.lines.text.len() >= FLOOD_BATCH {
                    self.note_flood();
                }
                // The files are the record, the terminal a view: while the disk
                // copy is behind, the terminal does not compete with it.
                let behind = self.io.writer.as_ref().is_some_and(|w| w.behind());
                self.io.printer.logs(&batch, behind);
                self.broadcast_logs(&batch, model);
                if let Some(w) = &self.io.writer {
                    w.write(batch);
                }
            }
            Effect::Status { svc, status, ts_ms, note, extra } => {
                self.views_changed = true;
                self.io.printer.status(svc.0, status, note);
                if !self.sessions.is_empty() {
                    let name = self.name(model, svc);
                    let f = wire::status_event(name, status, format_timestamp(ts_ms), &extra);
                    self.broadcast_status(f);
                }
            }
            Effect::Say { text, prefixed } => self.io.printer.say(text, prefixed),
            Effect::Ack { session, id, outcome } => {
                self.send_to(session, wire::ack(id, outcome.err().map(Failure::into_error)))
            }
            Effect::Result { session, id, outcome } => {
                let payload = match outcome {
                    Ok(data) => ResultPayload::ok(data),
                    Err(f) => f.into_result(),
                };
                self.send_to(session, wire::result(id, payload))
            }
            Effect::LogsPage { session, id, service, page, effective_limit } => {
                self.logs_page(session, id, service, page, effective_limit, model)
            }
            Effect::Exit => self.exit = true,
        }
    }

    /// A flood-sized batch came: the quiet timer runs until `LOGS_QUIET` after
    /// the last one (armed once, not per batch).
    fn note_flood(&mut self) {
        let now = Instant::now();
        self.last_flood = Some(now);
        if !self.quiet_armed {
            self.quiet_armed = true;
            self.io.timer.arm_logs_quiet(now + LOGS_QUIET);
        }
    }

    /// The quiet timer fired: true when the flood is over, else it is armed
    /// again for `LOGS_QUIET` after the latest flood-sized batch.
    fn flood_over(&mut self) -> bool {
        let end = self.last_flood.map(|t| t + LOGS_QUIET);
        match end {
            Some(at) if at > Instant::now() => {
                self.io.timer.arm_logs_quiet(at);
                false
            }
            _ => {
                self.quiet_armed = false;
                true
            }
        }
    }

    /// Queues a batch's `log` events for every session: the newest of them, as
    /// many as its queue and its budget allow (the older rest it misses, counted),
    /// and wakes each session once. The newest win because a live view shows the
    /// tail: after a flood, a client sees its last lines, not lines from its
    /// middle. Frames are encoded once, and only when some session can take them.
    fn broadcast_logs(&mut self, batch: &crate::logs::Batch, model: &Model) {
        if self.sessions.is_empty() {
            return;
        }
        let now = Instant::now();
        let share = self.sessions.len();
        for slot in self.sessions.values_mut() {
            slot.budget.refill(now, share);
        }
        // A `log` frame is longer than its message by the envelope and the fields.
        let line = batch.lines.text.len() / batch.len().max(1) + MIN_LOG_FRAME;
        let most = self.sessions.values().map(|s| s.frames_wanted(line)).max().unwrap_or(0);
        let most = most.min(batch.len());
        let mut frames = Vec::with_capacity(most);
        if most > 0 {
            let json = BatchJson::new(batch, self.name(model, batch.svc));
            let mut buf = Vec::with_capacity(256);
            let first = batch.len() - most;
            frames.extend((first..batch.len()).map(|i| wire::log_event(batch, i, &json, &mut buf)));
        }
        let newest = batch.seq(batch.len().saturating_sub(1));
        for slot in self.sessions.values_mut() {
            let sent = slot.queue_newest(&frames, newest);
            slot.dropped_logs += (batch.len() - sent) as u64;
        }
        self.arm_tail(now);
    }

    /// Arms the live-tail timer for the first paused session to resume, unless
    /// it is armed already for no later than that.
    fn arm_tail(&mut self, now: Instant) {
        let share = self.sessions.len();
        let Some(wait) = self.sessions.values().filter_map(|s| s.budget.resumes_in(share)).min()
        else {
            return;
        };
        let at = now + wait;
        if self.tail_at.is_none_or(|t| t > at) {
            self.tail_at = Some(at);
            self.io.timer.arm_live_tail(at);
        }
    }

    /// The live-tail timer fired: a session whose budget has refilled is sent
    /// the newest lines it missed, so a view shows the end of a flood even when
    /// no line follows it. Re-arms for sessions still paused.
    fn resume_tails(&mut self, model: &Model) {
        let now = Instant::now();
        if self.tail_at.is_some_and(|t| t > now) {
            // A replaced alarm (a sooner one was armed after it); the current
            // one is still to come.
            return;
        }
        self.tail_at = None;
        let share = self.sessions.len();
        for slot in self.sessions.values_mut() {
            if !slot.budget.paused() {
                continue;
            }
            slot.budget.refill(now, share);
            let want = slot.frames_wanted(MIN_LOG_FRAME);
            if want == 0 {
                continue;
            }
            let page = model.store.query(None, slot.last_seq, u64::MAX, want, false);
            let Some(newest) = page.entries.last().map(|l| l.batch.seq(l.i as usize)) else {
                continue;
            };
            let mut frames = Vec::with_capacity(page.entries.len());
            let mut buf = Vec::with_capacity(256);
            for_each_line_json(&page.entries, model, |b, i, json| {
                frames.push(wire::log_event(b, i, json, &mut buf));
            });
            let sent = slot.queue_newest(&frames, newest);
            slot.dropped_logs = slot.dropped_logs.saturating_sub(sent as u64);
            // Up to `newest` the session has been offered what there is: a line
            // too long for its share of the bucket is missed, not offered again
            // at every refill (which spun the state thread and the timer).
            slot.last_seq = newest;
        }
        self.arm_tail(now);
    }

    /// Queues a status event for every session. One that cannot take it is closed
    /// (it reconnects to a fresh snapshot): status events are never lost silently.
    fn broadcast_status(&mut self, frame: Frame) {
        let full: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, slot)| !slot.outbox.push(frame.clone()))
            .map(|(id, _)| *id)
            .collect();
        for id in full {
            self.kick(id);
        }
    }

    fn kick(&mut self, session: SessionId) {
        if let Some(slot) = self.sessions.get(&session) {
            slot.outbox.kick(KICK_TOO_SLOW);
        }
        self.close(session);
    }

    /// A session's `service_stats` events start (every `every`) or stop.
    fn watch(&mut self, session: SessionId, every: Option<Duration>, model: &Model) {
        let (Some(every), Some(slot)) = (every, self.sessions.get(&session)) else {
            return self.unwatch(session);
        };
        let sink = Sink::Session(slot.outbox.clone());
        if !self.sampling() {
            // Views are only kept up to date while someone samples.
            self.io.sampler.send(Job::Views(model.views()));
        }
        self.watching.insert(session);
        let key = WatchKey::Session(session);
        self.io.sampler.send(Job::Watch { key, every: Some((every, sink)) });
    }

    /// The guard's samples start or change period (`Some`), or end: they come
    /// on the bus (`Msg::Sampled`), offered, so the sampler never waits.
    fn guard_samples(&mut self, every: Option<Duration>, model: &Model) {
        let every = every.map(|d| {
            if !self.sampling() {
                // Views are only kept up to date while someone samples.
                self.io.sampler.send(Job::Views(model.views()));
            }
            (d, Sink::State(self.io.bus.sender()))
        });
        self.guard_sampling = every.is_some();
        self.io.sampler.send(Job::Watch { key: WatchKey::Guard, every });
    }

    fn unwatch(&mut self, session: SessionId) {
        if self.watching.remove(&session) {
            let key = WatchKey::Session(session);
            self.io.sampler.send(Job::Watch { key, every: None });
        }
    }

    /// Answers a `/metrics` scrape with what only this thread knows.
    fn scrape(&mut self, reply: Sender<Scrape>, model: &Model) {
        let open: u64 = self.sessions.values().map(|s| s.dropped_logs).sum();
        let scrape = Scrape {
            views: model.views(),
            sessions: self.sessions.len(),
            dropped_logs: self.dropped_closed + open,
            incidents: model
                .guard
                .totals()
                .map(|(service, rule, action, dry_run, count)| IncidentCount {
                    service: service.to_string(),
                    rule,
                    action,
                    dry_run,
                    count,
                })
                .collect(),
            meter: self.io.sampler.meter.clone(),
        };
        // The channel has room for this one answer; a scrape that gave up
        // waiting is gone, and then nobody needs it.
        let _ = reply.try_send(scrape);
    }

    fn close(&mut self, session: SessionId) {
        self.unwatch(session);
        let Some(slot) = self.sessions.remove(&session) else { return };
        self.dropped_closed += slot.dropped_logs;
        if slot.dropped_logs > 0 {
            self.io.printer.say(
                format!(
                    "session {}: closed; {} log event(s) were not streamed to it (full queue or budget)",
                    session.0, slot.dropped_logs
                ),
                true,
            );
        }
    }

    fn send_to(&mut self, session: SessionId, frame: Frame) {
        let Some(slot) = self.sessions.get(&session) else { return };
        if !slot.outbox.push(frame) {
            self.kick(session);
        }
    }

    /// Snapshot first, then the session joins the broadcast: nothing can fall
    /// between the two, since this thread alone changes statuses.
    fn open(&mut self, session: SessionId, outbox: Outbox, model: &Model) {
        let snap = wire::snapshot(model.snapshot_data(now_ms()));
        if outbox.push(snap) {
            let budget = Budget::new(Instant::now(), self.sessions.len() + 1);
            let last_seq = model.store.last_seq();
            self.sessions.insert(session, Slot { outbox, dropped_logs: 0, budget, last_seq });
        }
    }

    fn logs_page(
        &mut self,
        session: SessionId,
        id: String,
        service: Option<SvcId>,
        page: Page,
        effective_limit: usize,
        model: &Model,
    ) {
        let mut parts = Entries::default();
        for_each_line_json(&page.entries, model, |b, i, json| {
            parts.begin();
            json.write(b, i, &mut parts.buf);
        });
        let Some(range) = page.from_disk else {
            let frame = encode_page(&id, &parts, page.truncated, &Gaps::default(), effective_limit);
            self.send_to(session, frame);
            return;
        };
        // Older history is on disk: read it off this thread, then reply directly.
        let Some(outbox) = self.sessions.get(&session).map(|s| s.outbox.clone()) else { return };
        let dir = self.io.cfg.logs_dir.clone().expect("disk pages only with logs.dir");
        let file = match service {
            Some(s) => dir.join(format!("{}.jsonl", self.name(model, s))),
            None => dir.join("all.jsonl"),
        };
        let truncated = page.truncated;
        let id_copy = id.clone();
        let writer = self.io.writer.clone();
        // The session's next command waits for this reply.
        let ticket = self.ticket.take();
        let spawned = std::thread::Builder::new().name("logs-page".into()).spawn(move || {
            // Lines just evicted from memory may still be queued for the files.
            if let Some(w) = writer {
                w.sync();
            }
            let mut all = Entries::default();
            let mut gaps = Gaps::default();
            let mut more = false;
            match read_page(&file, range.after, range.upto, range.need) {
                Ok(older) => {
                    for i in 0..older.len() {
                        all.begin();
                        all.buf.extend_from_slice(older.entry(i));
                    }
                    more = older.more;
                    gaps.damaged = older.damaged;
                }
                // The older entries exist but cannot be had: the page says so.
                Err(e) => gaps.error = Some(format!("cannot read {}: {e}", file.display())),
            }
            all.append(parts);
            let truncated = truncated || more || gaps.error.is_some();
            let frame = encode_page(&id, &all, truncated, &gaps, effective_limit);
            if !outbox.push(frame) {
                outbox.kick(KICK_TOO_SLOW);
            }
            drop(ticket);
        });
        if spawned.is_err() {
            let f = Failure::new(ErrorCode::InternalError, "cannot read log history now");
            self.send_to(session, wire::result(id_copy, f.into_result()));
        }
    }
}

/// Calls `f` with each line's batch, index and the batch's encoded parts, which
/// consecutive lines of one batch share.
fn for_each_line_json(
    lines: &[crate::logs::LineRef],
    model: &Model,
    mut f: impl FnMut(&crate::logs::Batch, usize, &BatchJson),
) {
    let mut shared: Option<(&Arc<crate::logs::Batch>, BatchJson)> = None;
    for line in lines {
        if shared.as_ref().is_none_or(|(b, _)| !Arc::ptr_eq(b, &line.batch)) {
            let name = &model.cfg.services[line.batch.svc.0].name;
            shared = Some((&line.batch, BatchJson::new(&line.batch, name)));
        }
        if let Some((b, json)) = &shared {
            f(b, line.i as usize, json);
        }
    }
}

/// JSON entries back to back, comma-separated, and where each one starts: one
/// buffer for a whole `get_logs` answer, so entries are encoded once and copied
/// once into the frame.
#[derive(Default)]
struct Entries {
    buf: Vec<u8>,
    starts: Vec<usize>,
}

impl Entries {
    /// Starts a new entry; its JSON is then written to `buf`.
    fn begin(&mut self) {
        if !self.buf.is_empty() {
            self.buf.push(b',');
        }
        self.starts.push(self.buf.len());
    }

    /// Appends newer entries after these.
    fn append(&mut self, newer: Entries) {
        if newer.starts.is_empty() {
            return;
        }
        if !self.buf.is_empty() {
            self.buf.push(b',');
        }
        let base = self.buf.len();
        self.starts.extend(newer.starts.iter().map(|s| s + base));
        self.buf.extend_from_slice(&newer.buf);
    }
}

/// Where the history on disk fell short of a page (protocol.md, get_logs:
/// the **Extension** fields `damaged` and `history_error`).
#[derive(Default)]
struct Gaps {
    /// Lines in the range read that were not whole entries, skipped.
    damaged: u64,
    /// Why the file could not be read.
    error: Option<String>,
}

/// A result frame under `MAX_RESULT_BYTES`, dropping the oldest entries when needed.
fn encode_page(id: &str, entries: &Entries, truncated: bool, gaps: &Gaps, limit: usize) -> Frame {
    let room = MAX_RESULT_BYTES - 4096;
    let len = entries.buf.len();
    let first = entries.starts.iter().position(|s| len - s <= room).unwrap_or(entries.starts.len());
    let body = entries.starts.get(first).map(|s| &entries.buf[*s..]).unwrap_or(&[]);
    let truncated = truncated || first > 0;
    let damaged = (gaps.damaged > 0).then_some(gaps.damaged);
    wire::logs_result(id, body, truncated, limit as u64, damaged, gaps.error.as_deref())
}
