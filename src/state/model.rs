//! The service model: every status, every run, the boot/start-all/stop-all
//! sequences, the log rings and the runaway guard (`model/guard.rs`). Pure:
//! `Model::handle(msg, now)` returns the effects to carry out, and the state
//! thread (`state::run_state`) carries them out. Unit tests drive it with
//! messages and a fixed clock.

use crate::bus::{
    Command, DeadlineKind, ExitInfo, LogQuery, Msg, RunId, SessionId, Sig, Status, Stream, SvcId,
};
use crate::config::{Config, Kind, Probe, RestartPolicy};
use crate::guard::{Guard, History, Incident};
use crate::health::restart::{Backoff, Decision, Jitter, Pending};
use crate::health::timeline::{fields, Entry, Timeline};
use crate::logs::{Batch, Lines, LogStore, Page};
use crate::plan::Plan;
use crate::supervisor::GroupSignal;
use flowlayer_protocol::{
    AllResult, CommandName, Empty, ErrorBody, ErrorCode, IncidentQuery, ProbeType, ResultData,
    ResultPayload, ServiceKind, ServiceResult, ServiceState, Snapshot, Timeline as TimelineData,
    TimelineKind, TimelineQuery,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

mod guard;
mod why;

use guard::GuardAct;

/// How long a stopping service gets between SIGTERM (or `stopCmd`) and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(8);
/// `get_logs` limit when neither the client nor the config gives one.
pub const DEFAULT_LOG_LIMIT: usize = 500;
/// Most entries one `get_timeline` result carries (all services merged), so
/// its frame stays far below `MAX_RESULT_BYTES` whatever the stack's size.
pub const MAX_TIMELINE_RESULT: usize = 5000;

/// Something the state thread must do for the model.
#[derive(Debug)]
pub enum Effect {
    /// Launch a new run; report back `Spawned` or `SpawnFailed`.
    Spawn {
        svc: SvcId,
        run: RunId,
    },
    /// Run the service's `stopCmd` as run `run`.
    StopCmd {
        svc: SvcId,
        run: RunId,
    },
    Signal {
        pid: u32,
        sig: GroupSignal,
    },
    StartProbe {
        svc: SvcId,
        run: RunId,
    },
    CancelProbe {
        svc: SvcId,
    },
    Arm {
        after: Duration,
        svc: SvcId,
        run: RunId,
        kind: DeadlineKind,
    },
    /// Takes back a timer armed earlier (a restart that will not be made), so
    /// nothing wakes for it.
    Disarm {
        svc: SvcId,
        run: RunId,
        kind: DeadlineKind,
    },
    /// A lifecycle entry was recorded (in `Model::timeline`): to `timeline.jsonl`.
    Timeline(Arc<Entry>),
    /// A `get_stats` reply: the services' resources are read off this thread.
    Stats {
        session: SessionId,
        id: String,
    },
    /// A session's `service_stats` events start (every `every`), change or stop (`None`).
    Watch {
        session: SessionId,
        every: Option<Duration>,
    },
    /// New log lines (ring already updated): to disk, terminal and sessions.
    Logs(Arc<Batch>),
    /// A status transition: to terminal and sessions.
    Status {
        svc: SvcId,
        status: Status,
        ts_ms: i64,
        note: StatusNote,
        extra: Extra,
    },
    /// A line for the terminal only.
    Say {
        text: String,
        prefixed: bool,
    },
    Ack {
        session: SessionId,
        id: String,
        outcome: Result<(), Failure>,
    },
    Result {
        session: SessionId,
        id: String,
        outcome: Result<ResultData, Failure>,
    },
    /// A `get_logs` answer: memory part done, the disk part may remain.
    LogsPage {
        session: SessionId,
        id: String,
        service: Option<SvcId>,
        page: Page,
        effective_limit: usize,
    },
    /// A line (newline included) for `logs.dir/incidents.jsonl`.
    IncidentLine(String),
    /// An incident opened, acted or closed: the `incident` event for every
    /// session (one that cannot take it is closed: never dropped silently).
    Incident(Box<Incident>),
    /// The guard's resource samples start or change period (`Some`), or end.
    GuardSampling(Option<Duration>),
    /// The guard's next look (`Msg::GuardCheck`) is due after this long,
    /// replacing the one armed before (`None`: none).
    GuardAlarm(Option<Duration>),
    /// Every service is down and the shutdown is complete.
    Exit,
}

/// How a status line is shown on the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusNote {
    /// During boot: `boot: wave N │ svc → status (detail)`.
    Boot { wave: usize, detail: Option<String> },
    /// Not printed (an intermediate step of boot).
    Quiet,
    /// After boot: `svc → status`.
    Runtime,
}

/// Why a command was refused or failed: a protocol error code and message
/// (protocol.md, "Protocol errors").
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// `start_all`/`stop_all` on partial failure.
    pub failed_services: Option<Vec<String>>,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), failed_services: None }
    }

    /// The `{"code","message"}` of a rejecting ack.
    pub fn into_error(self) -> ErrorBody {
        ErrorBody { code: self.code, message: self.message }
    }

    /// The payload of a failed result.
    pub fn into_result<D>(self) -> ResultPayload<D> {
        let Failure { code, message, failed_services } = self;
        ResultPayload::failed(ErrorBody { code, message }, failed_services)
    }
}

/// The **Extension** fields of a `service_status` event and a snapshot entry
/// (health.md section 1). Both are left out when `None`, so a stack without a
/// restart policy sends exactly the V1 frames.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Extra {
    /// Automatic restarts in this server run: there for a service with a
    /// restart policy, or once the service has been restarted automatically.
    pub restarts: Option<u32>,
    /// While a restart is pending: how long until it is made.
    pub restart_in_ms: Option<u64>,
}

/// Why a service was restarted (the `reason` label of
/// `flowlayer_service_restarts_total`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestartReason {
    OnFailure,
    Always,
    User,
    Guard,
}

impl RestartReason {
    pub const ALL: [RestartReason; 4] = [
        RestartReason::OnFailure,
        RestartReason::Always,
        RestartReason::User,
        RestartReason::Guard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::OnFailure => "on_failure",
            RestartReason::Always => "always",
            RestartReason::User => "user",
            RestartReason::Guard => "guard",
        }
    }
}

/// A readiness probe's run of failures with one error text.
#[derive(Debug, Clone, PartialEq)]
struct ProbeStreak {
    error: String,
    /// Failures with this text so far, as the probe thread counted them.
    count: u32,
    /// When the first and the latest of them were reported (Unix ms).
    first_ms: i64,
    last_ms: i64,
}

/// A service as a stats reader and `/metrics` see it: which process tree to
/// read and the figures the model adds to it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub svc: SvcId,
    pub name: String,
    pub status: Status,
    /// The main process of the current run, while it lives.
    pub pid: Option<u32>,
    pub run: RunId,
    /// When the current run was spawned (Unix ms), while it lives.
    pub started_ms: Option<i64>,
    /// When the current run became ready (Unix ms).
    pub ready_ms: Option<i64>,
    /// Automatic restarts in this server run.
    pub restarts: u32,
    pub counters: Counters,
}

/// Counters of one service for `/metrics`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Counters {
    /// Restarts by `RestartReason` (in `RestartReason::ALL` order).
    pub restarts: [u64; 4],
    /// Lines and bytes read, by stream (stdout, stderr, system).
    pub lines: [u64; 3],
    pub bytes: [u64; 3],
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WaitKind {
    Start,
    Stop,
    Restart,
}

#[derive(Debug)]
struct Waiter {
    session: SessionId,
    id: String,
    kind: WaitKind,
}

#[derive(Debug)]
struct Svc {
    status: Status,
    /// The current run (of `cmd`).
    run: RunId,
    /// Pid of the current run's leader while it lives.
    pid: Option<u32>,
    /// Run id of the `stopCmd` in flight, if any.
    stop_run: Option<RunId>,
    last_exit: Option<ExitInfo>,
    /// Start again once stopped (restart).
    start_after_stop: bool,
    /// SIGTERM or `stopCmd` already sent to the current run.
    stop_sent: bool,
    waiters: Vec<Waiter>,
    /// When the current run was spawned (Unix ms), while it lives.
    started_ms: Option<i64>,
    /// When the current run became ready (Unix ms).
    ready_ms: Option<i64>,
    /// Why it has its current status (timeline, `why`).
    cause: String,
    /// Who asked for the stop in progress (for the status that follows it).
    stop_cause: Option<String>,
    /// The current run was started by the restart policy.
    auto_start: bool,
    backoff: Backoff,
    probe: Option<ProbeStreak>,
    counters: Counters,
    /// The stop or restart the guard asked for, until its outcome is known.
    guard_act: Option<GuardAct>,
    /// When the guard was last given a sample of the current run (Unix ms).
    guard_sampled_ms: Option<i64>,
}

#[derive(Debug)]
struct Sequence {
    /// Waves in the order they are walked (reversed for stops).
    waves: Vec<Vec<SvcId>>,
    next: usize,
    pending: BTreeSet<SvcId>,
    kind: SeqKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SeqKind {
    Boot,
    StartAll,
    StopAll,
    Shutdown,
}

impl SeqKind {
    fn starts(self) -> bool {
        matches!(self, SeqKind::Boot | SeqKind::StartAll)
    }
}

pub struct Model {
    pub cfg: Arc<Config>,
    plan: Plan,
    svcs: Vec<Svc>,
    next_run: u64,
    pub store: LogStore,
    /// Lifecycle entries (health.md section 3).
    pub timeline: Timeline,
    jitter: Jitter,
    seq: Option<Sequence>,
    booting: bool,
    shutting_down: bool,
    disk_logs: bool,
    /// The runaway guard (guard.md) and the incident history.
    pub guard: Guard,
    /// Lines for `incidents.jsonl` to write at boot: the incidents a killed
    /// server left open, closed now.
    guard_boot_lines: Vec<String>,
    /// The period the guard samples at, while it does.
    guard_sampling: Option<Duration>,
    /// When the guard's next look is armed for (Unix ms).
    guard_alarm: Option<i64>,
}

/// Result data `{"service","status"}`.
fn svc_data(name: &str, status: Status) -> ResultData {
    ResultData::Service(ServiceResult { service: name.into(), status })
}

impl Model {
    pub fn new(cfg: Arc<Config>, plan: Plan, store: LogStore) -> Model {
        let svcs = cfg
            .services
            .iter()
            .map(|_| Svc {
                status: Status::Unknown,
                run: RunId(0),
                pid: None,
                stop_run: None,
                last_exit: None,
                start_after_stop: false,
                stop_sent: false,
                waiters: Vec::new(),
                started_ms: None,
                ready_ms: None,
                cause: "not started yet".into(),
                stop_cause: None,
                auto_start: false,
                backoff: Backoff::default(),
                probe: None,
                counters: Counters::default(),
                guard_act: None,
                guard_sampled_ms: None,
            })
            .collect();
        let disk_logs = cfg.logs_dir.is_some();
        let timeline = Timeline::new(cfg.services.len());
        let (guard, _) = Guard::new(&cfg, History::default(), 0);
        Model {
            cfg,
            plan,
            svcs,
            next_run: 1,
            store,
            timeline,
            jitter: Jitter::new(0x5EED),
            seq: None,
            booting: false,
            shutting_down: false,
            disk_logs,
            guard,
            guard_boot_lines: Vec::new(),
            guard_sampling: None,
            guard_alarm: None,
        }
    }

    /// Starts the guard from the incident history read at boot
    /// (`incidents.jsonl`); the incidents it left open are closed by `boot`.
    pub fn load_incidents(&mut self, history: History, now: i64) {
        let (guard, fx) = Guard::new(&self.cfg, history, now);
        self.guard = guard;
        self.guard_boot_lines = fx
            .into_iter()
            .filter_map(|e| match e {
                crate::guard::GuardEffect::Record(line) => Some(line),
                _ => None,
            })
            .collect();
    }

    fn name(&self, svc: SvcId) -> &str {
        &self.cfg.services[svc.0].name
    }

    /// Seeds the restart jitter (the server seeds it from its start time;
    /// tests keep the fixed default and get the same delays every run).
    pub fn seed_jitter(&mut self, seed: u64) {
        self.jitter = Jitter::new(seed);
    }

    #[cfg(test)]
    pub fn status(&self, svc: SvcId) -> Status {
        self.svcs[svc.0].status
    }

    #[cfg(test)]
    pub fn pid(&self, svc: SvcId) -> Option<u32> {
        self.svcs[svc.0].pid
    }

    /// `[(name, status)]` sorted by name (config order is name order).
    pub fn snapshot(&self) -> Vec<(&str, Status)> {
        self.cfg.services.iter().zip(&self.svcs).map(|(c, s)| (c.name.as_str(), s.status)).collect()
    }

    /// The `snapshot` event's payload and `get_snapshot`'s data.
    pub fn snapshot_data(&self, now: i64) -> Snapshot {
        let services = self
            .snapshot()
            .into_iter()
            .enumerate()
            .map(|(i, (n, s))| {
                let extra = self.extra(SvcId(i), now);
                let c = &self.cfg.services[i];
                ServiceState {
                    restarts: extra.restarts,
                    restart_in_ms: extra.restart_in_ms,
                    kind: Some(match c.kind {
                        Kind::Daemon => ServiceKind::Daemon,
                        Kind::Oneshot => ServiceKind::Oneshot,
                    }),
                    probe: Some(match c.ready.as_ref().map(|r| &r.probe) {
                        Some(Probe::Http { .. }) => ProbeType::Http,
                        Some(Probe::Tcp { .. }) => ProbeType::Tcp,
                        None => ProbeType::None,
                    }),
                    ..ServiceState::new(n, s)
                }
            })
            .collect();
        Snapshot { services }
    }

    /// The extension fields of a service's status at `now`.
    pub fn extra(&self, svc: SvcId, now: i64) -> Extra {
        let s = &self.svcs[svc.0];
        let policy = self.cfg.services[svc.0].restart.policy;
        let total = s.backoff.total;
        Extra {
            restarts: (policy != RestartPolicy::No || total > 0).then_some(total),
            restart_in_ms: s.backoff.pending.as_ref().map(|p| (p.at_ms - now).max(0) as u64),
        }
    }

    /// Every service as a stats reader or `/metrics` sees it, by name.
    pub fn views(&self) -> Vec<ServiceView> {
        self.cfg
            .services
            .iter()
            .zip(&self.svcs)
            .enumerate()
            .map(|(i, (c, s))| ServiceView {
                svc: SvcId(i),
                name: c.name.clone(),
                status: s.status,
                pid: s.pid,
                run: s.run,
                started_ms: s.started_ms,
                ready_ms: s.ready_ms,
                restarts: s.backoff.total,
                counters: s.counters.clone(),
            })
            .collect()
    }

    /// Starts the boot sequence (wave 0 onwards).
    pub fn boot(&mut self, now: i64) -> Vec<Effect> {
        let mut fx: Vec<Effect> =
            self.guard_boot_lines.drain(..).map(Effect::IncidentLine).collect();
        self.booting = true;
        self.seq = Some(Sequence {
            waves: self.plan.waves.clone(),
            next: 0,
            pending: BTreeSet::new(),
            kind: SeqKind::Boot,
        });
        self.advance(now, &mut fx);
        self.note_waiting(now, &mut fx);
        fx
    }

    pub fn handle(&mut self, msg: Msg, now: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        match msg {
            Msg::Lines { svc, stream, lines, permit } => {
                let c = &mut self.svcs[svc.0].counters;
                c.lines[stream as usize] += lines.len() as u64;
                c.bytes[stream as usize] += lines.text.len() as u64;
                // Lines of any run are kept: they were written, whatever came after.
                let phase = self.svcs[svc.0].status;
                let batch = self.store.push(svc, phase, stream, now, lines);
                drop(permit);
                if self.guard.watches_lines(svc) {
                    fx.push(Effect::Logs(batch.clone()));
                    self.guard_lines(svc, stream, &batch, now, &mut fx);
                } else {
                    fx.push(Effect::Logs(batch));
                }
                // Lines change no status, so no sequence can move (the hot path).
                return fx;
            }
            Msg::Spawned { svc, run, pid } => self.on_spawned(svc, run, pid, now, &mut fx),
            Msg::SpawnFailed { svc, run, error } => {
                self.on_spawn_failed(svc, run, error, now, &mut fx)
            }
            Msg::Exited { svc, run, exit } => self.on_exited(svc, run, exit, now, &mut fx),
            Msg::ProbeReady { svc, run } => self.on_probe_ready(svc, run, now, &mut fx),
            Msg::ProbeFailing { svc, run, error, count } => {
                self.on_probe_failing(svc, run, error, count, now, &mut fx)
            }
            Msg::ProbeTimedOut { svc, run } => self.on_probe_timed_out(svc, run, now, &mut fx),
            Msg::StopCmdFailed { svc, run, error } => {
                self.on_stop_cmd_failed(svc, run, error, now, &mut fx)
            }
            Msg::Deadline { svc, run, kind } => self.on_deadline(svc, run, kind, now, &mut fx),
            Msg::Signal(sig) => self.on_signal(sig, now, &mut fx),
            // Sessions are wired by the state thread, which owns their outboxes;
            // scrapes and samples are its business too.
            Msg::Opened { .. }
            | Msg::Closed { .. }
            | Msg::LiveTail
            | Msg::LogsQuiet
            | Msg::Scrape { .. } => {}
            Msg::Sampled(sample) => self.on_sampled(&sample, now, &mut fx),
            Msg::GuardCheck => self.on_guard_check(now, &mut fx),
            Msg::Command { session, id, cmd } => self.on_command(session, id, cmd, now, &mut fx),
        }
        self.advance(now, &mut fx);
        self.guard_settle(now, &mut fx);
        fx
    }

    // ---- helpers that change state --------------------------------------------

    fn set_status(
        &mut self,
        svc: SvcId,
        status: Status,
        cause: String,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        self.set_status_detail(svc, status, None, cause, now, fx)
    }

    /// A transition: `detail` is for the terminal's boot lines, `cause` for
    /// the timeline and `why`.
    fn set_status_detail(
        &mut self,
        svc: SvcId,
        status: Status,
        detail: Option<String>,
        cause: String,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let from = self.svcs[svc.0].status;
        if from == status {
            return;
        }
        self.svcs[svc.0].status = status;
        self.svcs[svc.0].cause = cause.clone();
        let has_probe = self.cfg.services[svc.0].ready.is_some();
        let note = if self.booting && self.seq.as_ref().is_some_and(|s| s.kind == SeqKind::Boot) {
            if status == Status::Running && has_probe {
                StatusNote::Quiet
            } else {
                StatusNote::Boot { wave: self.plan.wave_of[svc.0], detail }
            }
        } else {
            StatusNote::Runtime
        };
        let extra = self.extra(svc, now);
        fx.push(Effect::Status { svc, status, ts_ms: now, note, extra });
        let message = format!("{} → {}: {cause}", from.as_str(), status.as_str());
        let f = fields(&[
            ("status", status.as_str().into()),
            ("from", from.as_str().into()),
            ("cause", cause.into()),
        ]);
        self.record(svc, TimelineKind::Status, message, f, now, fx);
    }

    /// Records a lifecycle entry (health.md section 3) and has it written to
    /// `timeline.jsonl`.
    pub fn record(
        &mut self,
        svc: SvcId,
        kind: TimelineKind,
        message: String,
        fields: serde_json::Map<String, serde_json::Value>,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let entry = self.timeline.push(svc, now, kind, message, fields);
        fx.push(Effect::Timeline(entry));
    }

    fn system_line(&mut self, svc: SvcId, text: String, now: i64, fx: &mut Vec<Effect>) {
        let c = &mut self.svcs[svc.0].counters;
        c.lines[Stream::System as usize] += 1;
        c.bytes[Stream::System as usize] += text.len() as u64;
        let phase = self.svcs[svc.0].status;
        let batch = self.store.push(svc, phase, Stream::System, now, Lines::one(text));
        fx.push(Effect::Logs(batch));
    }

    fn begin_start(&mut self, svc: SvcId, cause: String, now: i64, fx: &mut Vec<Effect>) {
        let run = RunId(self.next_run);
        self.next_run += 1;
        // A start replaces a restart still waiting for its time.
        if let Some(p) = self.svcs[svc.0].backoff.pending.take() {
            fx.push(Effect::Disarm { svc, run: p.after, kind: DeadlineKind::Restart });
        }
        let s = &mut self.svcs[svc.0];
        s.run = run;
        s.stop_sent = false;
        s.start_after_stop = false;
        s.last_exit = None;
        s.auto_start = false;
        s.probe = None;
        s.ready_ms = None;
        s.stop_cause = None;
        // A stopCmd of the previous run that still runs is no longer waited for.
        s.stop_run = None;
        self.set_status(svc, Status::Starting, cause, now, fx);
        fx.push(Effect::Spawn { svc, run });
    }

    /// SIGTERM (or `stopCmd`) now, SIGKILL after `STOP_GRACE`. Returns false when
    /// there is no process to stop. `by` names who asked (`client`, `stop_all`,
    /// `shutdown`, `guard`) for the timeline; `None` when the server itself
    /// stops a run that failed.
    fn begin_stop(
        &mut self,
        svc: SvcId,
        cause: &str,
        by: Option<&'static str>,
        now: i64,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let Some(pid) = self.svcs[svc.0].pid else { return false };
        if let Some(by) = by.filter(|_| !self.svcs[svc.0].stop_sent) {
            let f = fields(&[("by", by.into())]);
            self.record(svc, TimelineKind::StopRequested, cause.to_string(), f, now, fx);
        }
        if self.svcs[svc.0].status != Status::Failed {
            self.svcs[svc.0].stop_cause.get_or_insert_with(|| cause.to_string());
            self.set_status(svc, Status::Stopping, cause.to_string(), now, fx);
        }
        if self.svcs[svc.0].stop_sent {
            return true;
        }
        self.svcs[svc.0].stop_sent = true;
        fx.push(Effect::CancelProbe { svc });
        let run = self.svcs[svc.0].run;
        if self.cfg.services[svc.0].stop_cmd.is_some()
            && self.svcs[svc.0].status == Status::Stopping
        {
            let stop_run = RunId(self.next_run);
            self.next_run += 1;
            self.svcs[svc.0].stop_run = Some(stop_run);
            fx.push(Effect::StopCmd { svc, run: stop_run });
        } else {
            fx.push(Effect::Signal { pid, sig: GroupSignal::Term });
        }
        fx.push(Effect::Arm { after: STOP_GRACE, svc, run, kind: DeadlineKind::StopGrace });
        true
    }

    fn resolve(
        &mut self,
        svc: SvcId,
        kinds: &[WaitKind],
        outcome: Result<(), String>,
    ) -> Vec<Effect> {
        let status = self.svcs[svc.0].status;
        let name = self.name(svc).to_string();
        let (done, keep): (Vec<Waiter>, Vec<Waiter>) =
            std::mem::take(&mut self.svcs[svc.0].waiters)
                .into_iter()
                .partition(|w| kinds.contains(&w.kind));
        self.svcs[svc.0].waiters = keep;
        done.into_iter()
            .map(|w| Effect::Result {
                session: w.session,
                id: w.id,
                outcome: match &outcome {
                    Ok(()) => Ok(svc_data(&name, status)),
                    Err(m) => Err(Failure::new(ErrorCode::ServiceFailed, m.clone())),
                },
            })
            .collect()
    }

    // ---- the restart policy (health.md section 1) -------------------------------

    /// After a run of `run_ms` ended without anyone asking: the policy's
    /// decision, with the restart (if any) pending and its timer armed.
    fn decide_restart(
        &mut self,
        svc: SvcId,
        run: RunId,
        run_ms: i64,
        now: i64,
        fx: &mut Vec<Effect>,
    ) -> Decision {
        let jitter = self.jitter.next();
        let cfg = &self.cfg.services[svc.0].restart;
        let backoff = &mut self.svcs[svc.0].backoff;
        let decision = backoff.on_exit(cfg, run_ms, now, jitter);
        if let Decision::Restart { attempt, delay } = decision {
            let at_ms = now + delay.as_millis() as i64;
            backoff.pending = Some(Pending { at_ms, attempt, after: run });
            fx.push(Effect::Arm { after: delay, svc, run, kind: DeadlineKind::Restart });
        }
        decision
    }

    /// Says what the policy decided: a `system` line and a timeline entry.
    fn announce_restart(&mut self, svc: SvcId, d: Decision, now: i64, fx: &mut Vec<Effect>) {
        let cfg = &self.cfg.services[svc.0].restart;
        let policy = cfg.policy.as_str();
        match d {
            Decision::Restart { attempt, delay } => {
                let ms = delay.as_millis() as i64;
                let text = format!("restart {attempt} in {} ({policy})", secs(ms));
                self.system_line(svc, text.clone(), now, fx);
                let f = fields(&[
                    ("attempt", attempt.into()),
                    ("delay_ms", ms.into()),
                    ("policy", policy.into()),
                ]);
                self.record(svc, TimelineKind::RestartScheduled, text, f, now, fx);
            }
            Decision::CrashLoop { exits, span_ms } => {
                let f = fields(&[
                    ("exits", exits.into()),
                    ("span_ms", span_ms.into()),
                    ("max_restarts", cfg.max_restarts.into()),
                    ("window_ms", (cfg.window.as_millis() as u64).into()),
                ]);
                let text = format!(
                    "crash loop: {exits} exits in {}; not restarting; start it by hand once fixed",
                    secs(span_ms)
                );
                self.system_line(svc, text.clone(), now, fx);
                self.record(svc, TimelineKind::CrashLoop, text, f, now, fx);
            }
        }
    }

    /// A pending restart's time has come.
    fn on_restart_due(&mut self, svc: SvcId, run: RunId, now: i64, fx: &mut Vec<Effect>) {
        let s = &mut self.svcs[svc.0];
        let due = s.backoff.pending.as_ref().is_some_and(|p| p.after == run);
        if !due || s.run != run || s.pid.is_some() || self.shutting_down {
            return;
        }
        let Some(p) = s.backoff.pending.take() else { return };
        s.backoff.total += 1;
        let policy = self.cfg.services[svc.0].restart.policy;
        let reason = match policy {
            RestartPolicy::Always => RestartReason::Always,
            RestartPolicy::OnFailure | RestartPolicy::No => RestartReason::OnFailure,
        };
        s.counters.restarts[reason as usize] += 1;
        let cause = format!("restart {} ({})", p.attempt, policy.as_str());
        self.begin_start(svc, cause, now, fx);
        self.svcs[svc.0].auto_start = true;
    }

    /// A stop request reached a service waiting for a restart: the restart is
    /// not made and the service is `stopped`. True when one was pending.
    fn cancel_restart(
        &mut self,
        svc: SvcId,
        cause: &str,
        by: &'static str,
        now: i64,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let Some(p) = self.svcs[svc.0].backoff.pending.take() else { return false };
        fx.push(Effect::Disarm { svc, run: p.after, kind: DeadlineKind::Restart });
        let text = format!("{cause}: restart {} cancelled", p.attempt);
        self.record(svc, TimelineKind::StopRequested, text, fields(&[("by", by.into())]), now, fx);
        let cause = format!("restart cancelled by {cause}");
        if self.svcs[svc.0].status == Status::Stopped {
            // No transition, but `restart_in_ms` is gone: clients must hear it.
            self.svcs[svc.0].cause = cause;
            let extra = self.extra(svc, now);
            let note = StatusNote::Quiet;
            fx.push(Effect::Status { svc, status: Status::Stopped, ts_ms: now, note, extra });
        } else {
            self.set_status(svc, Status::Stopped, cause, now, fx);
        }
        true
    }

    // ---- facts ----------------------------------------------------------------

    fn on_spawned(&mut self, svc: SvcId, run: RunId, pid: u32, now: i64, fx: &mut Vec<Effect>) {
        if self.svcs[svc.0].run != run {
            return;
        }
        self.svcs[svc.0].pid = Some(pid);
        self.svcs[svc.0].started_ms = Some(now);
        if self.svcs[svc.0].status != Status::Starting {
            // Stopped while spawning (shutdown): stop the fresh process at once.
            self.guard_started(svc, pid, now, fx);
            self.begin_stop(svc, "shutdown", Some("shutdown"), now, fx);
            return;
        }
        self.set_status(svc, Status::Running, format!("spawned (pid {pid})"), now, fx);
        self.guard_started(svc, pid, now, fx);
        if self.cfg.services[svc.0].ready.is_some() {
            fx.push(Effect::StartProbe { svc, run });
        }
        let r = self.resolve(svc, &[WaitKind::Start, WaitKind::Restart], Ok(()));
        fx.extend(r);
    }

    fn on_spawn_failed(
        &mut self,
        svc: SvcId,
        run: RunId,
        error: String,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        if self.svcs[svc.0].run != run {
            return;
        }
        let text = format!("failed to start: {error}");
        self.system_line(svc, text.clone(), now, fx);
        // A restart that cannot even spawn (its port still held) counts as one
        // more failure of the series: the next comes later, or the crash loop
        // ends it. A start by a user or a sequence is not retried.
        let decision = (self.svcs[svc.0].auto_start && !self.shutting_down)
            .then(|| self.decide_restart(svc, run, 0, now, fx));
        self.set_status(svc, Status::Failed, text, now, fx);
        if let Some(d) = decision {
            self.announce_restart(svc, d, now, fx);
        }
        self.guard_start_failed(svc, &error, now, fx);
        let r = self.resolve(svc, &[WaitKind::Start, WaitKind::Restart], Err(error));
        fx.extend(r);
    }

    fn on_exited(
        &mut self,
        svc: SvcId,
        run: RunId,
        exit: ExitInfo,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        if self.svcs[svc.0].stop_run == Some(run) {
            self.svcs[svc.0].stop_run = None;
            if !exit.success() {
                self.system_line(svc, format!("stopCmd {exit}"), now, fx);
            }
            return;
        }
        if self.svcs[svc.0].run != run || self.svcs[svc.0].pid.is_none() {
            return;
        }
        let s = &mut self.svcs[svc.0];
        s.pid = None;
        s.last_exit = Some(exit);
        s.ready_ms = None;
        let run_ms = now - s.started_ms.take().unwrap_or(now);
        let was = s.status;
        let requested = s.stop_sent;
        let stop_cause = s.stop_cause.take();
        fx.push(Effect::CancelProbe { svc });
        let cfg = &self.cfg.services[svc.0];
        let oneshot = cfg.kind == Kind::Oneshot;
        // stop_all and shutdown stop everything: nothing comes back meanwhile.
        let stopping_all =
            self.shutting_down || self.seq.as_ref().is_some_and(|q| !q.kind.starts());
        let restart = !requested
            && !stopping_all
            && match cfg.restart.policy {
                RestartPolicy::No => false,
                RestartPolicy::OnFailure => !exit.success(),
                RestartPolicy::Always => true,
            };
        // A guard stop ends `failed`, with what the guard found as the reason.
        let guard_stop = self.guard_stop_cause(svc);
        let next = match was {
            Status::Stopping if guard_stop.is_some() => Status::Failed,
            Status::Stopping => Status::Stopped,
            Status::Failed => Status::Failed,
            _ if oneshot && exit.success() => Status::Stopped,
            // `always` restarts a daemon's clean exit: it did not fail.
            _ if restart && exit.success() => Status::Stopped,
            _ => Status::Failed,
        };
        let text = match (was, next) {
            (Status::Stopping, _) => format!("stopped ({exit})"),
            (_, Status::Stopped) if oneshot => format!("completed ({exit})"),
            (_, Status::Stopped) => format!("{exit}"),
            (Status::Failed, _) => format!("{exit}"),
            _ if oneshot => format!("failed: {exit}"),
            _ => format!("{exit} unexpectedly (daemons are expected to keep running)"),
        };
        self.system_line(svc, text, now, fx);
        let ran = secs(run_ms);
        let (key, value) = match exit {
            ExitInfo::Code(c) => ("code", c),
            ExitInfo::Signal(s) => ("signal", s),
        };
        let f = fields(&[
            (key, value.into()),
            ("run_ms", run_ms.into()),
            ("requested", requested.into()),
        ]);
        self.record(svc, TimelineKind::Exit, format!("{exit} after {ran}"), f, now, fx);
        let decision = restart.then(|| self.decide_restart(svc, run, run_ms, now, fx));
        let cause = match (was, stop_cause, guard_stop) {
            (Status::Stopping, _, Some(g)) => format!("{g} ({exit})"),
            (Status::Stopping, Some(c), None) => format!("{c} ({exit})"),
            _ => format!("{exit} after {ran}"),
        };
        self.set_status(svc, next, cause, now, fx);
        if let Some(d) = decision {
            self.announce_restart(svc, d, now, fx);
        }
        let r = self.resolve(svc, &[WaitKind::Stop], Ok(()));
        fx.extend(r);
        // The guard's restart, or how its stop ended.
        self.guard_exited(svc, stopping_all, now, fx);
        if self.svcs[svc.0].start_after_stop && !self.shutting_down {
            self.begin_start(svc, "restart_service from a client".into(), now, fx);
        } else if self.svcs[svc.0].start_after_stop {
            self.svcs[svc.0].start_after_stop = false;
            let r = self.resolve(svc, &[WaitKind::Restart], Err("server is shutting down".into()));
            fx.extend(r);
        }
    }

    /// What the service's probe checks, as the timeline names it
    /// (`tcp 127.0.0.1:5432`, `http 127.0.0.1:8080/health`).
    fn probe_target(&self, svc: SvcId) -> String {
        match self.cfg.services[svc.0].ready.as_ref().map(|r| &r.probe) {
            Some(Probe::Tcp { port }) => format!("tcp 127.0.0.1:{port}"),
            Some(Probe::Http { url }) => format!("http {}:{}{}", url.host, url.port, url.path),
            None => "probe".into(),
        }
    }

    /// `tcp 127.0.0.1:5432: connection refused ×12 in 6.0 s`, or without the
    /// count for a single failure.
    fn probe_streak(&self, svc: SvcId) -> Option<String> {
        let p = self.svcs[svc.0].probe.as_ref()?;
        let target = self.probe_target(svc);
        Some(if p.count <= 1 {
            format!("{target}: {}", p.error)
        } else {
            format!("{target}: {} ×{} in {}", p.error, p.count, secs(p.last_ms - p.first_ms))
        })
    }

    fn on_probe_failing(
        &mut self,
        svc: SvcId,
        run: RunId,
        error: String,
        count: u32,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let s = &mut self.svcs[svc.0];
        if s.run != run || s.status != Status::Running {
            return;
        }
        if let Some(p) = s.probe.as_mut().filter(|p| p.error == error) {
            p.count = count;
            p.last_ms = now;
            return;
        }
        // The first failure, or a new error text: an entry.
        let before = self.probe_streak(svc);
        let target = self.probe_target(svc);
        let mut message = format!("{target}: {error}");
        let mut f = fields(&[("target", target.into()), ("error", error.clone().into())]);
        if let Some(b) = before {
            message.push_str(&format!(" (before: {b})"));
            f.insert("before".into(), b.into());
        }
        self.svcs[svc.0].probe = Some(ProbeStreak { error, count, first_ms: now, last_ms: now });
        self.record(svc, TimelineKind::Probe, message, f, now, fx);
    }

    fn on_probe_ready(&mut self, svc: SvcId, run: RunId, now: i64, fx: &mut Vec<Effect>) {
        let s = &self.svcs[svc.0];
        if s.run != run || s.status != Status::Running {
            return;
        }
        let detail = self.cfg.services[svc.0].ready.as_ref().map(|r| match &r.probe {
            Probe::Tcp { port } => format!("tcp :{port}"),
            Probe::Http { url } => format!("http :{}{}", url.port, url.path),
        });
        let mut cause = format!("probe passed ({})", self.probe_target(svc));
        if let Some(streak) = self.probe_streak(svc) {
            cause.push_str(&format!(" after {streak}"));
        }
        self.svcs[svc.0].ready_ms = Some(now);
        self.set_status_detail(svc, Status::Ready, detail, cause, now, fx);
    }

    fn on_probe_timed_out(&mut self, svc: SvcId, run: RunId, now: i64, fx: &mut Vec<Effect>) {
        let s = &self.svcs[svc.0];
        if s.run != run || s.status != Status::Running {
            return;
        }
        let ms = self.cfg.services[svc.0]
            .ready
            .as_ref()
            .and_then(|r| r.timeout)
            .map(|t| t.as_millis())
            .unwrap_or(0);
        self.system_line(svc, format!("not ready within {ms} ms: stopping it"), now, fx);
        let mut cause = format!("not ready within {ms} ms");
        if let Some(streak) = self.probe_streak(svc) {
            cause.push_str(&format!(" ({streak})"));
        }
        self.set_status(svc, Status::Failed, cause.clone(), now, fx);
        self.begin_stop(svc, &cause, None, now, fx);
    }

    fn on_stop_cmd_failed(
        &mut self,
        svc: SvcId,
        run: RunId,
        error: String,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        if self.svcs[svc.0].stop_run != Some(run) {
            return;
        }
        self.svcs[svc.0].stop_run = None;
        self.system_line(svc, format!("stopCmd failed ({error}): sending SIGTERM"), now, fx);
        if let Some(pid) = self.svcs[svc.0].pid {
            fx.push(Effect::Signal { pid, sig: GroupSignal::Term });
        }
    }

    fn on_deadline(
        &mut self,
        svc: SvcId,
        run: RunId,
        kind: DeadlineKind,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        match kind {
            DeadlineKind::StopGrace => {
                let s = &self.svcs[svc.0];
                if s.run != run {
                    return;
                }
                let secs = STOP_GRACE.as_secs();
                let Some(pid) = s.pid else {
                    // The service is gone, its stopCmd is not: stop waiting for it.
                    if self.svcs[svc.0].stop_run.take().is_some() {
                        self.system_line(
                            svc,
                            format!("stopCmd still running {secs} s after the stop request: not waiting for it"),
                            now,
                            fx,
                        );
                    }
                    return;
                };
                self.system_line(
                    svc,
                    format!("still running {secs} s after the stop request: sending SIGKILL"),
                    now,
                    fx,
                );
                fx.push(Effect::Signal { pid, sig: GroupSignal::Kill });
            }
            DeadlineKind::Restart => self.on_restart_due(svc, run, now, fx),
        }
    }

    fn on_signal(&mut self, sig: Sig, now: i64, fx: &mut Vec<Effect>) {
        let what = match sig {
            Sig::Interrupt => "interrupt",
            Sig::Terminate => "terminate",
        };
        if self.shutting_down {
            let pids: Vec<u32> = self.svcs.iter().filter_map(|s| s.pid).collect();
            for s in &mut self.svcs {
                // Nor are stop commands waited for any more.
                s.stop_run = None;
            }
            fx.push(Effect::Say {
                text: format!(
                    "shutdown: second {what} signal: killing {} remaining service(s) now",
                    pids.len()
                ),
                prefixed: true,
            });
            for pid in pids {
                fx.push(Effect::Signal { pid, sig: GroupSignal::Kill });
            }
            return;
        }
        self.shutting_down = true;
        self.booting = false;
        let alive = self.svcs.iter().filter(|s| s.pid.is_some()).count();
        fx.push(Effect::Say {
            text: format!("shutdown: {what} signal: stopping {alive} service(s), last wave first"),
            prefixed: true,
        });
        for i in 0..self.svcs.len() {
            self.cancel_restart(SvcId(i), "shutdown", "shutdown", now, fx);
            self.svcs[i].start_after_stop = false;
            let r = self.resolve(
                SvcId(i),
                &[WaitKind::Start, WaitKind::Restart],
                Err("server is shutting down".into()),
            );
            fx.extend(r);
        }
        self.seq = Some(self.stop_sequence(SeqKind::Shutdown));
    }

    fn stop_sequence(&self, kind: SeqKind) -> Sequence {
        let mut waves = self.plan.waves.clone();
        waves.reverse();
        Sequence { waves, next: 0, pending: BTreeSet::new(), kind }
    }

    // ---- sequences ------------------------------------------------------------

    /// Startup outcome: `Some(true)` reached its target state, `Some(false)`
    /// failed or was stopped, `None` still on its way.
    fn settled(&self, svc: SvcId) -> Option<bool> {
        let s = &self.svcs[svc.0];
        let cfg = &self.cfg.services[svc.0];
        if s.backoff.pending.is_some() {
            // Failed, but coming back: what depends on it waits for the restart.
            return None;
        }
        match (s.status, cfg.kind) {
            (Status::Starting | Status::Stopping, _) => None,
            (Status::Running, Kind::Oneshot) => None,
            (Status::Running, Kind::Daemon) if cfg.ready.is_some() => None,
            (Status::Running | Status::Ready, _) => Some(true),
            (Status::Stopped, Kind::Oneshot) => Some(s.last_exit.is_some_and(|e| e.success())),
            (Status::Stopped | Status::Failed | Status::Unknown, _) => Some(false),
        }
    }

    fn advance(&mut self, now: i64, fx: &mut Vec<Effect>) {
        loop {
            let Some(seq) = &mut self.seq else { return };
            let kind = seq.kind;
            let pending: Vec<SvcId> = seq.pending.iter().copied().collect();
            let still: BTreeSet<SvcId> = pending
                .into_iter()
                .filter(|s| {
                    if kind.starts() {
                        self.settled(*s).is_none()
                    } else {
                        // A stopCmd still running may have lines to come: its
                        // service is done when both have ended (or the grace passed).
                        self.svcs[s.0].pid.is_some() || self.svcs[s.0].stop_run.is_some()
                    }
                })
                .collect();
            let seq = self.seq.as_mut().expect("checked above");
            seq.pending = still;
            if !seq.pending.is_empty() {
                return;
            }
            if seq.next == seq.waves.len() {
                self.seq = None;
                self.finish(kind, now, fx);
                return;
            }
            let wave = seq.waves[seq.next].clone();
            seq.next += 1;
            for svc in wave {
                let joined = match kind {
                    SeqKind::Boot | SeqKind::StartAll => self.start_in_sequence(svc, kind, now, fx),
                    SeqKind::StopAll => self.begin_stop(svc, "stop_all", Some("stop_all"), now, fx),
                    SeqKind::Shutdown => {
                        self.begin_stop(svc, "shutdown", Some("shutdown"), now, fx)
                    }
                };
                if joined {
                    self.seq.as_mut().expect("sequence is running").pending.insert(svc);
                }
            }
        }
    }

    /// A start sequence began: each service that must wait for others gets a
    /// `waiting` entry naming them and their status.
    fn note_waiting(&mut self, now: i64, fx: &mut Vec<Effect>) {
        for i in 0..self.svcs.len() {
            let svc = SvcId(i);
            if !self.waits_in_sequence(svc) {
                continue;
            }
            let deps: Vec<SvcId> = self.plan.deps[i]
                .iter()
                .copied()
                .filter(|d| self.settled(*d) != Some(true))
                .collect();
            if deps.is_empty() {
                continue;
            }
            let named: Vec<String> = deps
                .iter()
                .map(|d| format!("{}: {}", self.name(*d), self.svcs[d.0].status.as_str()))
                .collect();
            let list: Vec<serde_json::Value> = deps
                .iter()
                .map(
                    |d| json!({"service": self.name(*d), "status": self.svcs[d.0].status.as_str()}),
                )
                .collect();
            let message = format!("waiting for {}", named.join(", "));
            self.record(
                svc,
                TimelineKind::Waiting,
                message,
                fields(&[("dependencies", list.into())]),
                now,
                fx,
            );
        }
    }

    /// The start sequence in progress has yet to reach this service's wave.
    fn waits_in_sequence(&self, svc: SvcId) -> bool {
        self.seq.as_ref().is_some_and(|q| {
            q.kind.starts()
                && self.plan.wave_of[svc.0] >= q.next
                && matches!(
                    self.svcs[svc.0].status,
                    Status::Unknown | Status::Stopped | Status::Failed
                )
                && self.svcs[svc.0].pid.is_none()
        })
    }

    /// Starts `svc` as part of boot or `start_all`; true when the sequence must
    /// wait for it.
    fn start_in_sequence(
        &mut self,
        svc: SvcId,
        kind: SeqKind,
        now: i64,
        fx: &mut Vec<Effect>,
    ) -> bool {
        match self.svcs[svc.0].status {
            Status::Starting => return true,
            Status::Running | Status::Ready => return self.settled(svc).is_none(),
            Status::Stopping => return false,
            Status::Unknown | Status::Stopped | Status::Failed => {}
        }
        if self.svcs[svc.0].pid.is_some() {
            // A failed run still being killed: it cannot start again yet.
            return false;
        }
        let blocked =
            self.plan.deps[svc.0].iter().copied().find(|d| self.settled(*d) != Some(true));
        if let Some(dep) = blocked {
            let dep_name = self.name(dep).to_string();
            let why = match self.svcs[dep.0].status {
                Status::Failed => "failed".to_string(),
                s => format!("is {}", s.as_str()),
            };
            let text = format!("not started: dependency \"{dep_name}\" {why}");
            if let Some(p) = self.svcs[svc.0].backoff.pending.take() {
                fx.push(Effect::Disarm { svc, run: p.after, kind: DeadlineKind::Restart });
            }
            self.system_line(svc, text.clone(), now, fx);
            self.set_status(svc, Status::Stopped, text, now, fx);
            return false;
        }
        let what = if kind == SeqKind::Boot { "boot" } else { "start_all" };
        let cause = format!("{what} wave {}", self.plan.wave_of[svc.0]);
        self.begin_start(svc, cause, now, fx);
        true
    }

    fn finish(&mut self, kind: SeqKind, _now: i64, fx: &mut Vec<Effect>) {
        match kind {
            SeqKind::Boot => {
                self.booting = false;
                fx.push(Effect::Say {
                    text: "STARTUP COMPLETE — runtime active".into(),
                    prefixed: false,
                });
                let failed: Vec<&str> = self
                    .cfg
                    .services
                    .iter()
                    .zip(&self.svcs)
                    .filter(|(_, s)| s.status == Status::Failed)
                    .map(|(c, _)| c.name.as_str())
                    .collect();
                let skipped: Vec<&str> = self
                    .cfg
                    .services
                    .iter()
                    .zip(&self.svcs)
                    .filter(|(c, s)| s.status == Status::Stopped && c.kind == Kind::Daemon)
                    .map(|(c, _)| c.name.as_str())
                    .collect();
                if !failed.is_empty() || !skipped.is_empty() {
                    fx.push(Effect::Say {
                        text: format!(
                            "boot: failed: [{}]; not started: [{}]",
                            failed.join(", "),
                            skipped.join(", ")
                        ),
                        prefixed: true,
                    });
                }
            }
            SeqKind::StartAll | SeqKind::StopAll => {}
            SeqKind::Shutdown => {
                fx.push(Effect::Say {
                    text: "shutdown: all services stopped".into(),
                    prefixed: true,
                });
                fx.push(Effect::Exit);
            }
        }
    }

    // ---- requests -------------------------------------------------------------

    fn on_command(
        &mut self,
        session: SessionId,
        id: String,
        cmd: Command,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let lookup = |m: &Model, name: &str| {
            m.cfg.service_index(name).map(SvcId).ok_or_else(|| {
                Failure::new(ErrorCode::UnknownService, format!("unknown service \"{name}\""))
            })
        };
        let busy = |name: &str, status: Status| {
            Failure::new(ErrorCode::ServiceBusy, format!("service \"{name}\" is {status}"))
        };
        let shutting = || Failure::new(ErrorCode::ServiceBusy, "server is shutting down");
        let outcome: Result<Option<WaitKind>, Failure> = (|| match &cmd {
            Command::GetSnapshot | Command::GetStats | Command::WatchStats(_) => Ok(None),
            Command::GetLogs(LogQuery { service, .. })
            | Command::GetTimeline(TimelineQuery { service, .. })
            | Command::GetIncidents(IncidentQuery { service, .. }) => {
                if let Some(name) = service {
                    lookup(self, name)?;
                }
                Ok(None)
            }
            Command::StartService(n) | Command::RestartService(n) => {
                let svc = lookup(self, n)?;
                if self.shutting_down {
                    return Err(shutting());
                }
                let st = self.svcs[svc.0].status;
                if matches!(st, Status::Starting | Status::Stopping)
                    || (self.svcs[svc.0].pid.is_some() && !st.is_up())
                {
                    return Err(busy(n, st));
                }
                Ok(Some(if matches!(cmd, Command::StartService(_)) {
                    WaitKind::Start
                } else {
                    WaitKind::Restart
                }))
            }
            Command::StopService(n) => {
                let svc = lookup(self, n)?;
                let st = self.svcs[svc.0].status;
                if st == Status::Stopping {
                    return Err(busy(n, st));
                }
                Ok(Some(WaitKind::Stop))
            }
            Command::StartAll | Command::StopAll => {
                if self.shutting_down {
                    return Err(shutting());
                }
                if let Some(s) = &self.seq {
                    let what = match s.kind {
                        SeqKind::Boot => "boot",
                        SeqKind::StartAll => CommandName::StartAll.as_str(),
                        SeqKind::StopAll => CommandName::StopAll.as_str(),
                        SeqKind::Shutdown => "shutdown",
                    };
                    return Err(Failure::new(
                        ErrorCode::ServiceBusy,
                        format!("{what} is in progress"),
                    ));
                }
                Ok(None)
            }
        })();
        let wait = match outcome {
            Err(f) => {
                fx.push(Effect::Ack { session, id, outcome: Err(f) });
                return;
            }
            Ok(w) => w,
        };
        fx.push(Effect::Ack { session, id: id.clone(), outcome: Ok(()) });
        match cmd {
            Command::GetSnapshot => fx.push(Effect::Result {
                session,
                id,
                outcome: Ok(ResultData::Snapshot(self.snapshot_data(now))),
            }),
            Command::GetLogs(q) => self.cmd_get_logs(session, id, q, fx),
            Command::GetStats => fx.push(Effect::Stats { session, id }),
            Command::WatchStats(w) => {
                let every = Duration::from_millis(w.interval_ms());
                let data = ResultData::Empty(Empty {});
                fx.push(Effect::Result { session, id, outcome: Ok(data) });
                fx.push(Effect::Watch { session, every: w.enabled.then_some(every) });
            }
            Command::GetTimeline(q) => {
                let limit = q.limit();
                self.cmd_get_timeline(session, id, q.service, limit, now, fx)
            }
            Command::StartService(n) | Command::StopService(n) | Command::RestartService(n) => {
                let svc = SvcId(self.cfg.service_index(&n).expect("looked up above"));
                self.cmd_service(session, id, svc, wait.expect("service commands wait"), now, fx)
            }
            Command::StartAll => self.cmd_all(session, id, SeqKind::StartAll, now, fx),
            Command::StopAll => self.cmd_all(session, id, SeqKind::StopAll, now, fx),
            Command::GetIncidents(q) => self.cmd_get_incidents(session, id, q, fx),
        }
    }

    fn cmd_service(
        &mut self,
        session: SessionId,
        id: String,
        svc: SvcId,
        kind: WaitKind,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        match kind {
            // A user start is a fresh series: the backoff and the crash-loop
            // count begin again (health.md section 1).
            WaitKind::Start | WaitKind::Restart => self.svcs[svc.0].backoff.clear(),
            WaitKind::Stop => {
                self.cancel_restart(svc, "stop_service from a client", "client", now, fx);
            }
        }
        if kind == WaitKind::Restart {
            self.svcs[svc.0].counters.restarts[RestartReason::User as usize] += 1;
        }
        let alive = self.svcs[svc.0].pid.is_some();
        let up = self.svcs[svc.0].status.is_up();
        let done_now = match kind {
            WaitKind::Start => up,
            WaitKind::Stop => !alive,
            WaitKind::Restart => false,
        };
        if done_now {
            let data = svc_data(self.name(svc), self.svcs[svc.0].status);
            fx.push(Effect::Result { session, id, outcome: Ok(data) });
            return;
        }
        self.svcs[svc.0].waiters.push(Waiter { session, id, kind });
        match kind {
            WaitKind::Start => self.begin_start(svc, "start_service from a client".into(), now, fx),
            WaitKind::Stop => {
                self.begin_stop(svc, "stop_service from a client", Some("client"), now, fx);
            }
            WaitKind::Restart if alive => {
                self.begin_stop(svc, "restart_service from a client", Some("client"), now, fx);
                self.svcs[svc.0].start_after_stop = true;
            }
            WaitKind::Restart => {
                self.begin_start(svc, "restart_service from a client".into(), now, fx)
            }
        }
    }

    fn cmd_all(
        &mut self,
        session: SessionId,
        id: String,
        kind: SeqKind,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        for i in 0..self.svcs.len() {
            match kind {
                SeqKind::StopAll => {
                    self.cancel_restart(SvcId(i), "stop_all", "stop_all", now, fx);
                }
                _ => self.svcs[i].backoff.clear(),
            }
        }
        let mut acting = Vec::new();
        let mut failed = Vec::new();
        for (i, s) in self.svcs.iter().enumerate() {
            let name = self.cfg.services[i].name.clone();
            match kind {
                SeqKind::StartAll => match s.status {
                    Status::Running | Status::Ready | Status::Starting => {}
                    Status::Stopping => failed.push(name),
                    _ if s.pid.is_some() => failed.push(name),
                    _ => acting.push(name),
                },
                _ => {
                    if s.pid.is_some() {
                        acting.push(name);
                    }
                }
            }
        }
        let outcome = if failed.is_empty() {
            Ok(ResultData::All(AllResult { services: acting }))
        } else {
            Err(Failure {
                code: ErrorCode::ServiceFailed,
                message: format!("cannot start now (still stopping): {}", failed.join(", ")),
                failed_services: Some(failed),
            })
        };
        fx.push(Effect::Result { session, id, outcome });
        self.seq = Some(if kind == SeqKind::StartAll {
            Sequence { waves: self.plan.waves.clone(), next: 0, pending: BTreeSet::new(), kind }
        } else {
            self.stop_sequence(kind)
        });
        self.advance(now, fx);
        if kind == SeqKind::StartAll {
            self.note_waiting(now, fx);
        }
    }

    fn cmd_get_logs(&mut self, session: SessionId, id: String, q: LogQuery, fx: &mut Vec<Effect>) {
        let svc = q.service.as_deref().and_then(|n| self.cfg.service_index(n)).map(SvcId);
        let lv = &self.cfg.log_view;
        let configured = match svc {
            None => lv.all_max_entries.or(lv.max_entries),
            Some(s) => self.cfg.services[s.0].log_view_max.or(lv.max_entries),
        };
        let effective_limit = q.limit.unwrap_or(configured.unwrap_or(DEFAULT_LOG_LIMIT));
        let page = self.store.query(
            svc,
            q.after_seq.unwrap_or(0),
            q.before_seq.unwrap_or(u64::MAX),
            effective_limit,
            self.disk_logs,
        );
        fx.push(Effect::LogsPage { session, id, service: svc, page, effective_limit });
    }

    fn cmd_get_timeline(
        &mut self,
        session: SessionId,
        id: String,
        service: Option<String>,
        limit: usize,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let svc = service.as_deref().and_then(|n| self.cfg.service_index(n)).map(SvcId);
        let entries = self
            .timeline
            .newest(svc, limit.min(MAX_TIMELINE_RESULT))
            .into_iter()
            .map(|e| e.to_wire(self.name(e.svc)))
            .collect();
        let why = svc.map(|s| self.why(s, now));
        let data = ResultData::Timeline(TimelineData { entries, why });
        fx.push(Effect::Result { session, id, outcome: Ok(data) });
    }
}

/// Seconds as the timeline writes them: `0.4 s`, `6.0 s`, `41 s`.
pub fn secs(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 10_000 {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    } else {
        format!("{} s", (ms + 500) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::DEFAULT_RING_CAPACITY;
    use std::path::Path;

    pub(super) const NOW: i64 = 1_000;

    pub(super) fn model(text: &str) -> Model {
        let cfg = crate::config::parse(text, Path::new("f"), Path::new("/")).unwrap();
        let plan = Plan::build(&cfg).unwrap();
        let store = LogStore::new(cfg.services.len(), DEFAULT_RING_CAPACITY, 1);
        Model::new(Arc::new(cfg), plan, store)
    }

    pub(super) fn spawns(fx: &[Effect]) -> Vec<(SvcId, RunId)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Spawn { svc, run } => Some((*svc, *run)),
                _ => None,
            })
            .collect()
    }

    /// Feeds the spawn results the state thread would queue, pid = 100 + svc.
    pub(super) fn spawned(m: &mut Model, fx: &[Effect]) -> Vec<Effect> {
        let mut out = Vec::new();
        for (svc, run) in spawns(fx) {
            out.extend(m.handle(Msg::Spawned { svc, run, pid: 100 + svc.0 as u32 }, NOW));
        }
        out
    }

    pub(super) fn system_lines(fx: &[Effect]) -> Vec<String> {
        let mut out = Vec::new();
        for e in fx {
            if let Effect::Logs(b) = e {
                out.extend((0..b.len()).map(|i| b.message(i).to_string()));
            }
        }
        out
    }

    pub(super) fn command(m: &mut Model, id: &str, cmd: Command) -> Vec<Effect> {
        m.handle(Msg::Command { session: SessionId(1), id: id.into(), cmd }, NOW)
    }

    // ids by name order: api=0, db=1, web=2
    pub(super) const STACK: &str = r#"{"services":{
        "db":{"cmd":"x","port":5432,"ready":{"type":"tcp"}},
        "api":{"cmd":"x","dependsOn":["db"]},
        "web":{"cmd":"x","dependsOn":["api"]}}}"#;

    #[test]
    fn next_wave_waits_for_readiness() {
        let mut m = model(STACK);
        let fx = m.boot(NOW);
        assert_eq!(spawns(&fx), vec![(SvcId(1), RunId(1))]);
        let fx = spawned(&mut m, &fx);
        assert!(spawns(&fx).is_empty(), "api must wait for db to be ready");
        assert_eq!(m.status(SvcId(1)), Status::Running);
        let fx = m.handle(Msg::ProbeReady { svc: SvcId(1), run: RunId(1) }, NOW);
        assert_eq!(m.status(SvcId(1)), Status::Ready);
        assert_eq!(spawns(&fx), vec![(SvcId(0), RunId(2))]);
    }

    #[test]
    fn failure_propagates_to_transitive_dependents() {
        let mut m = model(STACK);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        let fx =
            m.handle(Msg::Exited { svc: SvcId(1), run: RunId(1), exit: ExitInfo::Code(1) }, NOW);
        assert_eq!(m.status(SvcId(1)), Status::Failed);
        assert!(spawns(&fx).is_empty());
        assert_eq!(m.status(SvcId(0)), Status::Stopped);
        assert_eq!(m.status(SvcId(2)), Status::Stopped);
        let lines = system_lines(&fx);
        assert!(lines.contains(&"not started: dependency \"db\" failed".to_string()), "{lines:?}");
        assert!(lines.contains(&"not started: dependency \"api\" is stopped".to_string()));
        assert!(fx.iter().any(
            |e| matches!(e, Effect::Say { text, .. } if text.starts_with("STARTUP COMPLETE"))
        ));
    }

    #[test]
    fn stale_exit_from_previous_run_is_ignored() {
        let mut m = model(r#"{"services":{"a":{"cmd":"x"}}}"#);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        // Restart: stop run 1, start run 2.
        let fx = command(&mut m, "r", Command::RestartService("a".into()));
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::Signal { pid: 100, sig: GroupSignal::Term })));
        let fx =
            m.handle(Msg::Exited { svc: SvcId(0), run: RunId(1), exit: ExitInfo::Signal(15) }, NOW);
        assert_eq!(spawns(&fx), vec![(SvcId(0), RunId(2))]);
        spawned(&mut m, &fx);
        assert_eq!(m.status(SvcId(0)), Status::Running);
        // A late report about run 1 changes nothing.
        let fx =
            m.handle(Msg::Exited { svc: SvcId(0), run: RunId(1), exit: ExitInfo::Code(0) }, NOW);
        assert!(fx.iter().all(|e| !matches!(e, Effect::Status { .. })));
        assert_eq!(m.status(SvcId(0)), Status::Running);
        assert_eq!(m.pid(SvcId(0)), Some(100));
    }

    #[test]
    fn stop_escalates_to_sigkill_after_the_grace() {
        let mut m = model(r#"{"services":{"a":{"cmd":"x"}}}"#);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        let fx = command(&mut m, "s", Command::StopService("a".into()));
        assert!(fx.iter().any(|e| matches!(e, Effect::Arm { after, .. } if *after == STOP_GRACE)));
        assert_eq!(m.status(SvcId(0)), Status::Stopping);
        let fx = m.handle(
            Msg::Deadline { svc: SvcId(0), run: RunId(1), kind: DeadlineKind::StopGrace },
            NOW,
        );
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::Signal { pid: 100, sig: GroupSignal::Kill })));
        let fx =
            m.handle(Msg::Exited { svc: SvcId(0), run: RunId(1), exit: ExitInfo::Signal(9) }, NOW);
        assert_eq!(m.status(SvcId(0)), Status::Stopped);
        let result = fx.iter().find_map(|e| match e {
            Effect::Result { id, outcome, .. } if id == "s" => Some(outcome.clone()),
            _ => None,
        });
        assert_eq!(result, Some(Ok(svc_data("a", Status::Stopped))));
        // A deadline after the exit is stale.
        let fx = m.handle(
            Msg::Deadline { svc: SvcId(0), run: RunId(1), kind: DeadlineKind::StopGrace },
            NOW,
        );
        assert!(fx.iter().all(|e| !matches!(e, Effect::Signal { .. })));
    }

    #[test]
    fn shutdown_waits_for_a_stop_cmd_that_outlives_its_service_until_the_grace() {
        let mut m = model(r#"{"services":{"a":{"cmd":"x","stopCmd":"y"}}}"#);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        let fx = m.handle(Msg::Signal(Sig::Interrupt), NOW);
        let stop_run = fx
            .iter()
            .find_map(|e| match e {
                Effect::StopCmd { run, .. } => Some(*run),
                _ => None,
            })
            .unwrap();
        let exit = |m: &mut Model, run| {
            m.handle(Msg::Exited { svc: SvcId(0), run, exit: ExitInfo::Code(0) }, NOW)
        };
        // The service ends first: its stopCmd's lines may still be on their way.
        let fx = exit(&mut m, RunId(1));
        assert_eq!(m.status(SvcId(0)), Status::Stopped);
        assert!(!fx.iter().any(|e| matches!(e, Effect::Exit)));
        let fx = exit(&mut m, stop_run);
        assert!(fx.iter().any(|e| matches!(e, Effect::Exit)));
        // A stopCmd that never ends is waited for until the grace only.
        let mut m = model(r#"{"services":{"a":{"cmd":"x","stopCmd":"y"}}}"#);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        m.handle(Msg::Signal(Sig::Interrupt), NOW);
        exit(&mut m, RunId(1));
        let grace = Msg::Deadline { svc: SvcId(0), run: RunId(1), kind: DeadlineKind::StopGrace };
        let fx = m.handle(grace, NOW);
        assert!(fx.iter().any(|e| matches!(e, Effect::Exit)));
        let lines = system_lines(&fx);
        assert_eq!(lines, ["stopCmd still running 8 s after the stop request: not waiting for it"]);
    }

    #[test]
    fn oneshot_gates_its_dependents_until_it_exits_zero() {
        let mut m = model(
            r#"{"services":{"init":{"cmd":"x","kind":"oneshot"},"app":{"cmd":"x","dependsOn":["init"]}}}"#,
        );
        let fx = m.boot(NOW);
        let fx = spawned(&mut m, &fx);
        assert!(spawns(&fx).is_empty());
        let fx =
            m.handle(Msg::Exited { svc: SvcId(1), run: RunId(1), exit: ExitInfo::Code(0) }, NOW);
        assert_eq!(m.status(SvcId(1)), Status::Stopped);
        assert_eq!(spawns(&fx), vec![(SvcId(0), RunId(2))]);
    }

    // ---- restart policy ---------------------------------------------------------

    const RESTARTING: &str = r#"{"services":{
        "a":{"cmd":"x","restart":{"policy":"on-failure","backoffMs":100,"maxBackoffMs":1000,
             "maxRestarts":3,"windowMs":60000,"resetAfterMs":5000}},
        "b":{"cmd":"x","dependsOn":["a"]}}}"#;

    fn armed_restart(fx: &[Effect]) -> Option<(Duration, RunId)> {
        fx.iter().find_map(|e| match e {
            Effect::Arm { after, run, kind: DeadlineKind::Restart, .. } => Some((*after, *run)),
            _ => None,
        })
    }

    fn statuses(fx: &[Effect]) -> Vec<(SvcId, Status, Extra)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Status { svc, status, extra, .. } => Some((*svc, *status, *extra)),
                _ => None,
            })
            .collect()
    }

    fn kinds(m: &Model, svc: SvcId) -> Vec<&'static str> {
        m.timeline.newest(Some(svc), usize::MAX).iter().map(|e| e.kind.as_str()).collect()
    }

    /// Boots `RESTARTING` (both up) and returns the model and the clock.
    fn up() -> (Model, i64) {
        let mut m = model(RESTARTING);
        let fx = m.boot(NOW);
        let fx = spawned(&mut m, &fx);
        spawned(&mut m, &fx);
        assert_eq!((m.status(SvcId(0)), m.status(SvcId(1))), (Status::Running, Status::Running));
        (m, NOW)
    }

    /// The current run of `a` exits with `code` at `now`; returns the effects.
    fn exit_a(m: &mut Model, code: i32, now: i64) -> Vec<Effect> {
        let run = m.svcs[0].run;
        m.handle(Msg::Exited { svc: SvcId(0), run, exit: ExitInfo::Code(code) }, now)
    }

    #[test]
    fn a_failed_service_is_restarted_with_growing_delays_then_given_up() {
        let (mut m, mut now) = up();
        let mut delays = Vec::new();
        for attempt in 1..=3 {
            now += 50;
            let fx = exit_a(&mut m, 1, now);
            let (after, run) = armed_restart(&fx).expect("a restart is armed");
            let st = statuses(&fx);
            assert_eq!(st[0].1, Status::Failed);
            assert_eq!(st[0].2.restarts, Some(attempt - 1));
            assert_eq!(st[0].2.restart_in_ms, Some(after.as_millis() as u64));
            delays.push(after);
            now += after.as_millis() as i64;
            let fx =
                m.handle(Msg::Deadline { svc: SvcId(0), run, kind: DeadlineKind::Restart }, now);
            assert_eq!(spawns(&fx).len(), 1, "attempt {attempt}");
            spawned(&mut m, &fx);
        }
        assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
        assert!(delays[0] >= Duration::from_millis(80) && delays[0] <= Duration::from_millis(120));
        let fx = exit_a(&mut m, 1, now + 50);
        assert!(armed_restart(&fx).is_none(), "the fourth exit within the window is a crash loop");
        let lines = system_lines(&fx);
        assert!(
            lines.iter().any(|l| l.starts_with("crash loop: 4 exits in ")
                && l.ends_with("; not restarting; start it by hand once fixed")),
            "{lines:?}"
        );
        assert_eq!(m.status(SvcId(0)), Status::Failed);
        assert!(
            m.why(SvcId(0), now).ends_with("; crash loop, not restarting"),
            "{}",
            m.why(SvcId(0), now)
        );
        assert_eq!(kinds(&m, SvcId(0)).last(), Some(&"crash_loop"));
        // The dependent was never touched.
        assert_eq!(m.status(SvcId(1)), Status::Running);
        assert_eq!(m.svcs[1].run, RunId(2));
        // A user start clears the count: the next exit restarts again.
        let fx = command(&mut m, "s", Command::StartService("a".into()));
        spawned(&mut m, &fx);
        let fx = exit_a(&mut m, 1, now + 100);
        assert!(armed_restart(&fx).is_some());
    }

    #[test]
    fn a_stop_during_the_backoff_cancels_the_restart() {
        let (mut m, now) = up();
        let fx = exit_a(&mut m, 1, now + 10);
        let (_, run) = armed_restart(&fx).unwrap();
        let fx = command(&mut m, "s", Command::StopService("a".into()));
        assert!(fx.iter().any(
            |e| matches!(e, Effect::Disarm { run: r, kind: DeadlineKind::Restart, .. } if *r == run)
        ));
        assert_eq!(
            statuses(&fx),
            vec![(SvcId(0), Status::Stopped, Extra { restarts: Some(0), restart_in_ms: None })]
        );
        let result = fx.iter().find_map(|e| match e {
            Effect::Result { outcome, .. } => Some(outcome.clone()),
            _ => None,
        });
        assert_eq!(result, Some(Ok(svc_data("a", Status::Stopped))));
        // The timer, had it fired anyway, is stale.
        let fx =
            m.handle(Msg::Deadline { svc: SvcId(0), run, kind: DeadlineKind::Restart }, now + 5000);
        assert!(spawns(&fx).is_empty());
        assert_eq!(kinds(&m, SvcId(0)).iter().filter(|k| **k == "stop_requested").count(), 1);
    }

    #[test]
    fn shutdown_and_stop_all_cancel_pending_restarts() {
        for stop in ["shutdown", "stop_all"] {
            let (mut m, now) = up();
            let fx = exit_a(&mut m, 1, now + 10);
            assert!(armed_restart(&fx).is_some());
            let fx = if stop == "shutdown" {
                m.handle(Msg::Signal(Sig::Terminate), now + 20)
            } else {
                command(&mut m, "x", Command::StopAll)
            };
            assert!(fx.iter().any(|e| matches!(e, Effect::Disarm { .. })), "{stop}");
            assert_eq!(m.status(SvcId(0)), Status::Stopped, "{stop}");
            // b exits on its own during the stop: not restarted either.
            assert!(m.svcs[0].backoff.pending.is_none());
        }
    }

    #[test]
    fn always_restarts_a_clean_exit_and_on_failure_does_not() {
        let mut m = model(
            r#"{"services":{"a":{"cmd":"x","restart":"always"},"b":{"cmd":"x","restart":"on-failure"}}}"#,
        );
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        let fx = m.handle(
            Msg::Exited { svc: SvcId(0), run: RunId(1), exit: ExitInfo::Code(0) },
            NOW + 10,
        );
        assert!(armed_restart(&fx).is_some());
        assert_eq!(m.status(SvcId(0)), Status::Stopped);
        assert!(m
            .why(SvcId(0), NOW + 10)
            .starts_with("stopped: exited with code 0 after 0.0 s; restart 1 in "));
        let fx = m.handle(
            Msg::Exited { svc: SvcId(1), run: RunId(2), exit: ExitInfo::Code(0) },
            NOW + 10,
        );
        assert!(armed_restart(&fx).is_none());
        assert_eq!(m.status(SvcId(1)), Status::Failed);
    }

    #[test]
    fn a_requested_stop_is_never_restarted() {
        let (mut m, now) = up();
        command(&mut m, "s", Command::StopService("a".into()));
        let fx = m.handle(
            Msg::Exited { svc: SvcId(0), run: RunId(1), exit: ExitInfo::Signal(15) },
            now + 10,
        );
        assert!(armed_restart(&fx).is_none());
        assert_eq!(m.status(SvcId(0)), Status::Stopped);
        assert_eq!(
            m.why(SvcId(0), now),
            "stopped: stop_service from a client (killed by signal 15 (SIGTERM))"
        );
    }

    #[test]
    fn a_long_run_starts_the_series_again() {
        let (mut m, mut now) = up();
        for _ in 0..3 {
            now += 50;
            let fx = exit_a(&mut m, 1, now);
            let (after, run) = armed_restart(&fx).unwrap();
            now += after.as_millis() as i64;
            let fx =
                m.handle(Msg::Deadline { svc: SvcId(0), run, kind: DeadlineKind::Restart }, now);
            spawned(&mut m, &fx);
        }
        // This run lasts past resetAfterMs: its exit is the first of a new series.
        let fx = exit_a(&mut m, 1, now + 6000);
        let (after, _) = armed_restart(&fx).expect("not a crash loop");
        assert!(after <= Duration::from_millis(120), "{after:?}");
        assert_eq!(m.extra(SvcId(0), now + 6000).restarts, Some(3));
    }

    #[test]
    fn a_service_coming_back_holds_its_dependents_at_boot() {
        let mut m = model(RESTARTING);
        let fx = m.boot(NOW);
        assert_eq!(spawns(&fx), vec![(SvcId(0), RunId(1))]);
        // a has no probe: spawned is settled; make it fail before that instead.
        let fx =
            m.handle(Msg::SpawnFailed { svc: SvcId(0), run: RunId(1), error: "x".into() }, NOW);
        assert!(armed_restart(&fx).is_none(), "a start that cannot spawn is not retried");
        let mut m = model(
            r#"{"services":{
            "a":{"cmd":"x","kind":"oneshot","restart":{"policy":"on-failure","backoffMs":100}},
            "b":{"cmd":"x","dependsOn":["a"]}}}"#,
        );
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        let fx = m.handle(
            Msg::Exited { svc: SvcId(0), run: RunId(1), exit: ExitInfo::Code(1) },
            NOW + 10,
        );
        let (_, run) = armed_restart(&fx).unwrap();
        assert!(spawns(&fx).is_empty());
        assert_eq!(m.status(SvcId(1)), Status::Unknown, "b waits for a's restart");
        assert!(
            m.why(SvcId(1), NOW + 10).starts_with("waiting for a: failed: exited with code 1"),
            "{}",
            m.why(SvcId(1), NOW + 10)
        );
        let fx =
            m.handle(Msg::Deadline { svc: SvcId(0), run, kind: DeadlineKind::Restart }, NOW + 200);
        spawned(&mut m, &fx);
        let run = m.svcs[0].run;
        let fx = m.handle(Msg::Exited { svc: SvcId(0), run, exit: ExitInfo::Code(0) }, NOW + 300);
        assert_eq!(spawns(&fx).len(), 1, "b starts once a completed");
    }

    #[test]
    fn without_a_policy_frames_stay_v1() {
        let mut m = model(r#"{"services":{"a":{"cmd":"x"}}}"#);
        let fx = m.boot(NOW);
        let fx2 = spawned(&mut m, &fx);
        for (_, _, extra) in statuses(&fx).into_iter().chain(statuses(&fx2)) {
            assert_eq!(extra, Extra::default());
        }
        // The snapshot says what the service is (`kind`, `probe`: spec/cli.md,
        // `wait`), and nothing of a restart policy it does not have.
        let want = ServiceState {
            kind: Some(ServiceKind::Daemon),
            probe: Some(ProbeType::None),
            ..ServiceState::new("a", Status::Running)
        };
        assert_eq!(m.snapshot_data(NOW).services, vec![want]);
    }

    #[test]
    fn the_timeline_tells_the_story_of_a_run() {
        let (mut m, now) = up();
        exit_a(&mut m, 1, now + 400);
        let entries = m.timeline.newest(Some(SvcId(0)), usize::MAX);
        let told: Vec<String> =
            entries.iter().map(|e| format!("{}: {}", e.kind.as_str(), e.message)).collect();
        assert_eq!(
            told[..4],
            [
                "status: unknown → starting: boot wave 0",
                "status: starting → running: spawned (pid 100)",
                "exit: exited with code 1 after 0.4 s",
                "status: running → failed: exited with code 1 after 0.4 s",
            ]
        );
        assert!(told[4].starts_with("restart_scheduled: restart 1 in 0."), "{told:?}");
        let b = m.timeline.newest(Some(SvcId(1)), usize::MAX);
        assert_eq!(b[0].message, "waiting for a: starting");
    }

    #[test]
    fn busy_rules_follow_the_protocol() {
        let mut m = model(r#"{"services":{"a":{"cmd":"x"}}}"#);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        let cmd = command;
        cmd(&mut m, "1", Command::StopService("a".into()));
        for (id, c) in [
            ("2", Command::StopService("a".into())),
            ("3", Command::StartService("a".into())),
            ("4", Command::RestartService("a".into())),
        ] {
            let fx = cmd(&mut m, id, c);
            assert!(
                fx.iter().any(
                    |e| matches!(e, Effect::Ack { outcome: Err(f), .. } if f.code == ErrorCode::ServiceBusy)
                ),
                "{id}"
            );
        }
        let fx = cmd(&mut m, "5", Command::StartService("zzz".into()));
        assert!(fx.iter().any(
            |e| matches!(e, Effect::Ack { outcome: Err(f), .. } if f.code == ErrorCode::UnknownService)
        ));
    }
}
