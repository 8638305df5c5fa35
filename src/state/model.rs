//! The service model: every status, every run, the boot/start-all/stop-all
//! sequences and the log rings. Pure: `Model::handle(msg, now)` returns the
//! effects to carry out, and the state thread (`state::run_state`) carries them
//! out. Unit tests drive it with messages and a fixed clock.

use crate::bus::{
    Command, DeadlineKind, ExitInfo, LogQuery, Msg, RunId, SessionId, Sig, Status, Stream, SvcId,
};
use crate::config::{Config, Kind, Probe};
use crate::logs::{Batch, Lines, LogStore, Page};
use crate::plan::Plan;
use crate::supervisor::GroupSignal;
use flowlayer_protocol::{
    AllResult, CommandName, ErrorBody, ErrorCode, ResultData, ResultPayload, ServiceResult,
    ServiceState, Snapshot,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long a stopping service gets between SIGTERM (or `stopCmd`) and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(8);
/// `get_logs` limit when neither the client nor the config gives one.
pub const DEFAULT_LOG_LIMIT: usize = 500;

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
    /// New log lines (ring already updated): to disk, terminal and sessions.
    Logs(Arc<Batch>),
    /// A status transition: to terminal and sessions.
    Status {
        svc: SvcId,
        status: Status,
        ts_ms: i64,
        note: StatusNote,
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
    seq: Option<Sequence>,
    booting: bool,
    shutting_down: bool,
    disk_logs: bool,
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
            })
            .collect();
        let disk_logs = cfg.logs_dir.is_some();
        Model {
            cfg,
            plan,
            svcs,
            next_run: 1,
            store,
            seq: None,
            booting: false,
            shutting_down: false,
            disk_logs,
        }
    }

    fn name(&self, svc: SvcId) -> &str {
        &self.cfg.services[svc.0].name
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
    pub fn snapshot_data(&self) -> Snapshot {
        let services = self.snapshot().into_iter().map(|(n, s)| ServiceState::new(n, s)).collect();
        Snapshot { services }
    }

    /// Starts the boot sequence (wave 0 onwards).
    pub fn boot(&mut self, now: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.booting = true;
        self.seq = Some(Sequence {
            waves: self.plan.waves.clone(),
            next: 0,
            pending: BTreeSet::new(),
            kind: SeqKind::Boot,
        });
        self.advance(now, &mut fx);
        fx
    }

    pub fn handle(&mut self, msg: Msg, now: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        match msg {
            Msg::Lines { svc, stream, lines, permit } => {
                // Lines of any run are kept: they were written, whatever came after.
                let phase = self.svcs[svc.0].status;
                fx.push(Effect::Logs(self.store.push(svc, phase, stream, now, lines)));
                drop(permit);
                // Lines change no status, so no sequence can move (the hot path).
                return fx;
            }
            Msg::Spawned { svc, run, pid } => self.on_spawned(svc, run, pid, now, &mut fx),
            Msg::SpawnFailed { svc, run, error } => {
                self.on_spawn_failed(svc, run, error, now, &mut fx)
            }
            Msg::Exited { svc, run, exit } => self.on_exited(svc, run, exit, now, &mut fx),
            Msg::ProbeReady { svc, run } => self.on_probe_ready(svc, run, now, &mut fx),
            Msg::ProbeTimedOut { svc, run } => self.on_probe_timed_out(svc, run, now, &mut fx),
            Msg::StopCmdFailed { svc, run, error } => {
                self.on_stop_cmd_failed(svc, run, error, now, &mut fx)
            }
            Msg::Deadline { svc, run, kind } => self.on_deadline(svc, run, kind, now, &mut fx),
            Msg::Signal(sig) => self.on_signal(sig, &mut fx),
            // Sessions are wired by the state thread, which owns their outboxes.
            Msg::Opened { .. } | Msg::Closed { .. } | Msg::LiveTail | Msg::LogsQuiet => {}
            Msg::Command { session, id, cmd } => self.on_command(session, id, cmd, now, &mut fx),
        }
        self.advance(now, &mut fx);
        fx
    }

    // ---- helpers that change state --------------------------------------------

    fn set_status(&mut self, svc: SvcId, status: Status, now: i64, fx: &mut Vec<Effect>) {
        self.set_status_detail(svc, status, None, now, fx)
    }

    fn set_status_detail(
        &mut self,
        svc: SvcId,
        status: Status,
        detail: Option<String>,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        if self.svcs[svc.0].status == status {
            return;
        }
        self.svcs[svc.0].status = status;
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
        fx.push(Effect::Status { svc, status, ts_ms: now, note });
    }

    fn system_line(&mut self, svc: SvcId, text: String, now: i64, fx: &mut Vec<Effect>) {
        let phase = self.svcs[svc.0].status;
        let batch = self.store.push(svc, phase, Stream::System, now, Lines::one(text));
        fx.push(Effect::Logs(batch));
    }

    fn begin_start(&mut self, svc: SvcId, now: i64, fx: &mut Vec<Effect>) {
        let run = RunId(self.next_run);
        self.next_run += 1;
        let s = &mut self.svcs[svc.0];
        s.run = run;
        s.stop_sent = false;
        s.start_after_stop = false;
        s.last_exit = None;
        self.set_status(svc, Status::Starting, now, fx);
        fx.push(Effect::Spawn { svc, run });
    }

    /// SIGTERM (or `stopCmd`) now, SIGKILL after `STOP_GRACE`. Returns false when
    /// there is no process to stop.
    fn begin_stop(&mut self, svc: SvcId, now: i64, fx: &mut Vec<Effect>) -> bool {
        let Some(pid) = self.svcs[svc.0].pid else { return false };
        if self.svcs[svc.0].status != Status::Failed {
            self.set_status(svc, Status::Stopping, now, fx);
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

    // ---- facts ----------------------------------------------------------------

    fn on_spawned(&mut self, svc: SvcId, run: RunId, pid: u32, now: i64, fx: &mut Vec<Effect>) {
        if self.svcs[svc.0].run != run {
            return;
        }
        self.svcs[svc.0].pid = Some(pid);
        if self.svcs[svc.0].status != Status::Starting {
            // Stopped while spawning (shutdown): stop the fresh process at once.
            self.begin_stop(svc, now, fx);
            return;
        }
        self.set_status(svc, Status::Running, now, fx);
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
        self.system_line(svc, format!("failed to start: {error}"), now, fx);
        self.set_status(svc, Status::Failed, now, fx);
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
        let was = s.status;
        fx.push(Effect::CancelProbe { svc });
        let oneshot = self.cfg.services[svc.0].kind == Kind::Oneshot;
        let next = match was {
            Status::Stopping => Status::Stopped,
            Status::Failed => Status::Failed,
            _ if oneshot && exit.success() => Status::Stopped,
            _ => Status::Failed,
        };
        let text = match (was, next) {
            (Status::Stopping, _) => format!("stopped ({exit})"),
            (_, Status::Stopped) => format!("completed ({exit})"),
            (Status::Failed, _) => format!("{exit}"),
            _ if oneshot => format!("failed: {exit}"),
            _ => format!("{exit} unexpectedly (daemons are expected to keep running)"),
        };
        self.system_line(svc, text, now, fx);
        self.set_status(svc, next, now, fx);
        let r = self.resolve(svc, &[WaitKind::Stop], Ok(()));
        fx.extend(r);
        if self.svcs[svc.0].start_after_stop && !self.shutting_down {
            self.begin_start(svc, now, fx);
        } else if self.svcs[svc.0].start_after_stop {
            self.svcs[svc.0].start_after_stop = false;
            let r = self.resolve(svc, &[WaitKind::Restart], Err("server is shutting down".into()));
            fx.extend(r);
        }
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
        self.set_status_detail(svc, Status::Ready, detail, now, fx);
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
        self.set_status(svc, Status::Failed, now, fx);
        self.begin_stop(svc, now, fx);
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
                let Some(pid) = s.pid else { return };
                if s.run != run {
                    return;
                }
                let secs = STOP_GRACE.as_secs();
                self.system_line(
                    svc,
                    format!("still running {secs} s after the stop request: sending SIGKILL"),
                    now,
                    fx,
                );
                fx.push(Effect::Signal { pid, sig: GroupSignal::Kill });
            }
        }
    }

    fn on_signal(&mut self, sig: Sig, fx: &mut Vec<Effect>) {
        let what = match sig {
            Sig::Interrupt => "interrupt",
            Sig::Terminate => "terminate",
        };
        if self.shutting_down {
            let pids: Vec<u32> = self.svcs.iter().filter_map(|s| s.pid).collect();
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
                        self.svcs[s.0].pid.is_some()
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
                let joined = if kind.starts() {
                    self.start_in_sequence(svc, now, fx)
                } else {
                    self.begin_stop(svc, now, fx)
                };
                if joined {
                    self.seq.as_mut().expect("sequence is running").pending.insert(svc);
                }
            }
        }
    }

    /// Starts `svc` as part of boot or `start_all`; true when the sequence must
    /// wait for it.
    fn start_in_sequence(&mut self, svc: SvcId, now: i64, fx: &mut Vec<Effect>) -> bool {
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
            self.system_line(svc, format!("not started: dependency \"{dep_name}\" {why}"), now, fx);
            self.set_status(svc, Status::Stopped, now, fx);
            return false;
        }
        self.begin_start(svc, now, fx);
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
            Command::GetSnapshot => Ok(None),
            Command::GetLogs(q) => {
                if let Some(name) = &q.service {
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
            // Not served yet: sessions refuse these before they get here
            // (`bus::CAPABILITIES`); answered as any unknown command if one does.
            Command::GetStats
            | Command::WatchStats(_)
            | Command::GetTimeline(_)
            | Command::GetIncidents(_) => Err(Failure::new(
                ErrorCode::UnknownCommand,
                format!("unknown command \"{}\"", cmd.name().as_str()),
            )),
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
                outcome: Ok(ResultData::Snapshot(self.snapshot_data())),
            }),
            Command::GetLogs(q) => self.cmd_get_logs(session, id, q, fx),
            Command::StartService(n) | Command::StopService(n) | Command::RestartService(n) => {
                let svc = SvcId(self.cfg.service_index(&n).expect("looked up above"));
                self.cmd_service(session, id, svc, wait.expect("service commands wait"), now, fx)
            }
            Command::StartAll => self.cmd_all(session, id, SeqKind::StartAll, now, fx),
            Command::StopAll => self.cmd_all(session, id, SeqKind::StopAll, now, fx),
            // Refused above.
            Command::GetStats
            | Command::WatchStats(_)
            | Command::GetTimeline(_)
            | Command::GetIncidents(_) => {}
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
            WaitKind::Start => self.begin_start(svc, now, fx),
            WaitKind::Stop => {
                self.begin_stop(svc, now, fx);
            }
            WaitKind::Restart if alive => {
                self.begin_stop(svc, now, fx);
                self.svcs[svc.0].start_after_stop = true;
            }
            WaitKind::Restart => self.begin_start(svc, now, fx),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::DEFAULT_RING_CAPACITY;
    use std::path::Path;

    const NOW: i64 = 1_000;

    fn model(text: &str) -> Model {
        let cfg = crate::config::parse(text, Path::new("f"), Path::new("/")).unwrap();
        let plan = Plan::build(&cfg).unwrap();
        let store = LogStore::new(cfg.services.len(), DEFAULT_RING_CAPACITY, 1);
        Model::new(Arc::new(cfg), plan, store)
    }

    fn spawns(fx: &[Effect]) -> Vec<(SvcId, RunId)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Spawn { svc, run } => Some((*svc, *run)),
                _ => None,
            })
            .collect()
    }

    /// Feeds the spawn results the state thread would queue, pid = 100 + svc.
    fn spawned(m: &mut Model, fx: &[Effect]) -> Vec<Effect> {
        let mut out = Vec::new();
        for (svc, run) in spawns(fx) {
            out.extend(m.handle(Msg::Spawned { svc, run, pid: 100 + svc.0 as u32 }, NOW));
        }
        out
    }

    fn system_lines(fx: &[Effect]) -> Vec<String> {
        let mut out = Vec::new();
        for e in fx {
            if let Effect::Logs(b) = e {
                out.extend((0..b.len()).map(|i| b.message(i).to_string()));
            }
        }
        out
    }

    fn command(m: &mut Model, id: &str, cmd: Command) -> Vec<Effect> {
        m.handle(Msg::Command { session: SessionId(1), id: id.into(), cmd }, NOW)
    }

    // ids by name order: api=0, db=1, web=2
    const STACK: &str = r#"{"services":{
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

    #[test]
    fn commands_the_server_does_not_serve_are_refused_as_unknown() {
        let mut m = model(r#"{"services":{"a":{"cmd":"x"}}}"#);
        let fx = command(&mut m, "1", Command::GetStats);
        let [Effect::Ack { outcome: Err(f), .. }] = fx.as_slice() else { panic!("{fx:?}") };
        assert_eq!(f, &Failure::new(ErrorCode::UnknownCommand, "unknown command \"get_stats\""));
    }
}
