//! Event payloads and result data: the objects inside the envelopes.
//!
//! Field order is wire order (serde writes fields as declared), so what a
//! server encodes reads the way the spec samples do. Extension fields are
//! `Option`s left out when absent: a frame for a V1 client is unchanged where
//! no extension applies. Reading ignores unknown fields everywhere.

use crate::words::{Status, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `hello` event: the first message of every session (protocol.md, "On
/// connect").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Always [`crate::SERVER_NAME`] from a FlowLayer server.
    pub server: String,
    /// The command names the server serves. Strings, not [`crate::CommandName`]s,
    /// so a hello from a newer server that serves more still reads.
    pub capabilities: Vec<String>,
    /// **Extension**: the server's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// **Extension**: random per server run, so a client can tell that the
    /// server restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// One service in a snapshot (protocol.md, "On connect"; extensions health.md §1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    pub name: String,
    pub status: Status,
    /// **Extension** (health.md §1): restarts made by the restart policy in this
    /// server run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// **Extension** (health.md §1): while a restart is pending, when it comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_in_ms: Option<u64>,
    /// **Extension** (spec/cli.md, `flowlayer wait`): the service's `kind`, so
    /// a client can tell a oneshot that is done from a daemon that stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ServiceKind>,
    /// **Extension** (spec/cli.md, `flowlayer wait`): its readiness probe, so
    /// a client knows whether `running` is as ready as it gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeType>,
}

impl ServiceState {
    /// A V1 entry: no extension field.
    pub fn new(name: impl Into<String>, status: Status) -> ServiceState {
        ServiceState {
            name: name.into(),
            status,
            restarts: None,
            restart_in_ms: None,
            kind: None,
            probe: None,
        }
    }

    /// Whether the service has reached what it starts towards: `ready` with
    /// a probe, `running` without one, done (`stopped`) for a oneshot.
    /// Without `kind` and `probe` (a server that does not send them),
    /// `running` and `ready` count.
    pub fn is_settled(&self) -> bool {
        match (self.kind, self.probe) {
            (Some(ServiceKind::Oneshot), _) => self.status == Status::Stopped,
            (_, Some(ProbeType::Http | ProbeType::Tcp)) => self.status == Status::Ready,
            _ => self.status.is_up(),
        }
    }
}

/// **Extension**: a service's `kind` (config: `services.<name>.kind`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Runs until stopped; an exit is a failure.
    Daemon,
    /// Runs to completion; exit code 0 is success.
    Oneshot,
}

/// **Extension**: a service's readiness probe (config: `services.<name>.ready.type`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeType {
    Http,
    Tcp,
    /// No probe: the service is up once its process runs.
    None,
}

/// The `snapshot` event, and the data of a `get_snapshot` result: every
/// configured service, sorted by name (protocol.md, "On connect").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub services: Vec<ServiceState>,
}

/// The `service_status` event: one transition (protocol.md, "Events";
/// extensions health.md §1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub service: String,
    pub status: Status,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// **Extension** (health.md §1), as in [`ServiceState`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// **Extension** (health.md §1), as in [`ServiceState`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_in_ms: Option<u64>,
}

/// One log line: the `log` event's payload, a `get_logs` entry, and a line of
/// the JSONL files (protocol.md, "get_logs").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Strictly increasing, also across server restarts.
    pub seq: u64,
    pub service: String,
    /// The service's status when the line was read.
    pub phase: Status,
    pub stream: Stream,
    pub message: String,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
}

/// The data of a `get_logs` result (protocol.md, "get_logs").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogsPage {
    /// Ascending `seq`: the newest `effective_limit` of the matching entries.
    pub entries: Vec<LogEntry>,
    /// Some matching entries were left out (the limit, or the 8 MiB frame cap).
    pub truncated: bool,
    pub effective_limit: u64,
    /// **Extension** (protocol.md, "get_logs"): lines of the history on disk
    /// in the range this page read that were not whole entries, skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<u64>,
    /// **Extension** (protocol.md, "get_logs"): the history on disk could not
    /// be read, and why; `truncated` is then true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
}

/// The data of a `start_service`, `stop_service` or `restart_service` result
/// (protocol.md, "Commands").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceResult {
    pub service: String,
    pub status: Status,
}

/// The data of a `start_all` or `stop_all` result: the services it acts on
/// (protocol.md, "Commands").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllResult {
    pub services: Vec<String>,
}

/// **Extension** (health.md §2): the data of a `get_stats` result and the
/// `service_stats` event's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// When the sample was taken (RFC 3339 UTC with milliseconds).
    pub timestamp: String,
    /// Sorted by name.
    pub services: Vec<ServiceStats>,
}

/// **Extension** (health.md §2): one service's resources, over its whole
/// process tree. A stopped service has zeros.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub name: String,
    /// Cores in use over the last interval (1.0 = one core busy).
    pub cpu: f64,
    pub rss_bytes: u64,
    pub processes: u32,
    /// CPU time used by the tree since the service started, reaped children included.
    pub cpu_seconds: f64,
    pub restarts: u32,
    pub uptime_ms: u64,
}

/// **Extension** (health.md §3): the data of a `get_timeline` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Ascending by time; all services merged when none was asked for.
    pub entries: Vec<TimelineEntry>,
    /// Only when a service was asked for: one sentence that says what it waits
    /// for or why it is not up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// **Extension** (health.md §3): one lifecycle entry of a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub timestamp: String,
    pub service: String,
    pub kind: TimelineKind,
    pub message: String,
    /// The kind's own fields (an exit's code, a restart's attempt and delay,
    /// ...), after the four above. health.md leaves them to the server.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// **Extension** (health.md §3): what a timeline entry records.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// A transition and its cause.
    Status,
    /// Which dependencies it waits for, and their status.
    Waiting,
    /// A readiness probe's first failure, then each change of error text.
    Probe,
    /// The process ended (code or signal, run time).
    Exit,
    RestartScheduled,
    CrashLoop,
    StopRequested,
    /// A guard incident (guard.md).
    Incident,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 8] = [
        TimelineKind::Status,
        TimelineKind::Waiting,
        TimelineKind::Probe,
        TimelineKind::Exit,
        TimelineKind::RestartScheduled,
        TimelineKind::CrashLoop,
        TimelineKind::StopRequested,
        TimelineKind::Incident,
    ];

    /// The wire word, without serde (a view that labels entries by kind).
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Status => "status",
            TimelineKind::Waiting => "waiting",
            TimelineKind::Probe => "probe",
            TimelineKind::Exit => "exit",
            TimelineKind::RestartScheduled => "restart_scheduled",
            TimelineKind::CrashLoop => "crash_loop",
            TimelineKind::StopRequested => "stop_requested",
            TimelineKind::Incident => "incident",
        }
    }
}

/// **Extension** (guard.md §3): the data of a `get_incidents` result, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incidents {
    pub incidents: Vec<Incident>,
}

/// **Extension** (guard.md §3): a guard incident, the `incident` event's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub service: String,
    pub rule: GuardRule,
    /// The action taken, or with `dry_run` the one that would have been.
    pub action: GuardAction,
    pub dry_run: bool,
    pub opened_at: String,
    /// `null` while the incident is open (guard.md writes it out).
    #[serde(default)]
    pub closed_at: Option<String>,
    pub summary: String,
    pub evidence: Evidence,
    /// What the action did ("restarted in 0.4 s"); `null` before it acted.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Why it closed ("clear for 30 s", "service stopped"); absent while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
}

/// **Extension** (guard.md §3): what a rule saw. Each rule fills its own fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The rule's settings, as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Value>,
    /// CPU samples in the window (cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Vec<f64>>,
    /// RSS samples in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<Vec<u64>>,
    /// The most frequent normalised line (`repeat`, `runaway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_count: Option<u64>,
    /// The last 20 raw lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lines: Option<Vec<String>>,
    /// Lines in the window (`repeat`, `runaway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    /// The window's rate (`rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines_per_sec: Option<f64>,
    /// Process counts in the window (`processes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<u32>>,
}

/// **Extension** (guard.md §1): the rule that opened an incident.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardRule {
    Cpu,
    Memory,
    Growth,
    Repeat,
    Rate,
    Processes,
    /// `cpu` and `repeat` in breach together.
    Runaway,
}

impl GuardRule {
    /// The rule's config and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardRule::Cpu => "cpu",
            GuardRule::Memory => "memory",
            GuardRule::Growth => "growth",
            GuardRule::Repeat => "repeat",
            GuardRule::Rate => "rate",
            GuardRule::Processes => "processes",
            GuardRule::Runaway => "runaway",
        }
    }
}

/// **Extension** (guard.md §2): what the guard does about an incident.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    Alert,
    Stop,
    Restart,
}

impl GuardAction {
    /// The action's config and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Alert => "alert",
            GuardAction::Stop => "stop",
            GuardAction::Restart => "restart",
        }
    }
}

/// The data of a result that has nothing to say but "done" (`watch_stats`): `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

/// Any result's data, as a server writes it. Untagged: it encodes as the data
/// object itself. A client knows which command it sent and reads the data as
/// that command's type ([`crate::ResultPayload::data_as`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResultData {
    /// `get_snapshot`.
    Snapshot(Snapshot),
    /// `get_logs`.
    Logs(LogsPage),
    /// `start_service`, `stop_service`, `restart_service`.
    Service(ServiceResult),
    /// `start_all`, `stop_all`.
    All(AllResult),
    /// `get_stats`.
    Stats(Stats),
    /// `get_timeline`.
    Timeline(Timeline),
    /// `get_incidents`.
    Incidents(Incidents),
    /// `watch_stats`.
    Empty(Empty),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_kind_as_str_is_the_serde_word() {
        for k in TimelineKind::ALL {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.as_str()));
        }
    }

    fn state(status: Status, kind: Option<ServiceKind>, probe: Option<ProbeType>) -> ServiceState {
        ServiceState { kind, probe, ..ServiceState::new("s", status) }
    }

    #[test]
    fn settled_means_ready_with_a_probe_running_without_and_done_for_a_oneshot() {
        let (d, o) = (Some(ServiceKind::Daemon), Some(ServiceKind::Oneshot));
        assert!(!state(Status::Running, d, Some(ProbeType::Http)).is_settled());
        assert!(state(Status::Ready, d, Some(ProbeType::Tcp)).is_settled());
        assert!(state(Status::Running, d, Some(ProbeType::None)).is_settled());
        assert!(!state(Status::Stopped, d, Some(ProbeType::None)).is_settled());
        assert!(!state(Status::Running, o, Some(ProbeType::None)).is_settled());
        assert!(state(Status::Stopped, o, Some(ProbeType::None)).is_settled());
        assert!(!state(Status::Failed, o, None).is_settled());
        assert!(state(Status::Running, None, None).is_settled(), "a server without the fields");
    }
}
