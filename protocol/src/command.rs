//! Client-to-server commands and their payloads (protocol.md, "Commands";
//! extensions health.md §2-3, guard.md §3), and how a client writes one.
//!
//! Payload structs mirror the wire: optional fields are `Option`s, left out
//! when `None`, and their defaults are methods, so a client sends only what it
//! chose. Reading a command is `parse::parse_incoming`, which gives each bad
//! field its own message.

use crate::words::{CommandName, MessageType};
use serde::Serialize;

/// `watch_stats`: sampling interval when the client gives none (health.md §2).
pub const STATS_INTERVAL_DEFAULT_MS: u64 = 1000;
/// `watch_stats`: the shortest interval a client may ask for (health.md §2).
pub const STATS_INTERVAL_MIN_MS: u64 = 250;
/// `get_timeline`: entries returned when the client gives no limit (health.md §3).
pub const TIMELINE_LIMIT_DEFAULT: usize = 200;
/// `get_incidents`: incidents returned when the client gives no limit (guard.md §3).
pub const INCIDENTS_LIMIT_DEFAULT: usize = 100;

/// A command, with its payload read and checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    GetSnapshot,
    GetLogs(LogQuery),
    /// The service's name.
    StartService(String),
    StopService(String),
    RestartService(String),
    StartAll,
    StopAll,
    /// **Extension** (health.md §2).
    GetStats,
    /// **Extension** (health.md §2).
    WatchStats(WatchStats),
    /// **Extension** (health.md §3).
    GetTimeline(TimelineQuery),
    /// **Extension** (guard.md §3).
    GetIncidents(IncidentQuery),
}

/// `get_logs` payload (protocol.md, "get_logs").
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LogQuery {
    /// One service's entries; all services merged when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// At least 1; the server's configured limit when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only entries with a greater `seq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    /// Only entries with a smaller `seq` (paging back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_seq: Option<u64>,
}

/// **Extension** `watch_stats` payload (health.md §2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WatchStats {
    /// Start (`true`) or stop (`false`) the session's `service_stats` events.
    pub enabled: bool,
    /// At least [`STATS_INTERVAL_MIN_MS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

impl WatchStats {
    /// The interval asked for, or [`STATS_INTERVAL_DEFAULT_MS`].
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms.unwrap_or(STATS_INTERVAL_DEFAULT_MS)
    }
}

/// **Extension** `get_timeline` payload (health.md §3).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimelineQuery {
    /// One service's entries (and its `why`); all services merged when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// At least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl TimelineQuery {
    /// The limit asked for, or [`TIMELINE_LIMIT_DEFAULT`].
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(TIMELINE_LIMIT_DEFAULT)
    }
}

/// **Extension** `get_incidents` payload (guard.md §3).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IncidentQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// At least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// `true`: open incidents only; `false`: closed ones only; `None`: both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
}

impl IncidentQuery {
    /// The limit asked for, or [`INCIDENTS_LIMIT_DEFAULT`].
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(INCIDENTS_LIMIT_DEFAULT)
    }
}

/// `{"service": name}`: the payload of the one-service commands.
#[derive(Serialize)]
struct ServiceRef<'a> {
    service: &'a str,
}

/// A command's payload as written: `null` for the commands that take none, as
/// the official V1 client sends them (every V1 server reads it).
#[derive(Serialize)]
#[serde(untagged)]
enum PayloadRef<'a> {
    None,
    Logs(&'a LogQuery),
    Service(ServiceRef<'a>),
    WatchStats(&'a WatchStats),
    Timeline(&'a TimelineQuery),
    Incidents(&'a IncidentQuery),
}

#[derive(Serialize)]
struct CommandMessage<'a> {
    #[serde(rename = "type")]
    kind: MessageType,
    id: &'a str,
    name: CommandName,
    payload: PayloadRef<'a>,
}

impl Command {
    pub fn name(&self) -> CommandName {
        match self {
            Command::GetSnapshot => CommandName::GetSnapshot,
            Command::GetLogs(_) => CommandName::GetLogs,
            Command::StartService(_) => CommandName::StartService,
            Command::StopService(_) => CommandName::StopService,
            Command::RestartService(_) => CommandName::RestartService,
            Command::StartAll => CommandName::StartAll,
            Command::StopAll => CommandName::StopAll,
            Command::GetStats => CommandName::GetStats,
            Command::WatchStats(_) => CommandName::WatchStats,
            Command::GetTimeline(_) => CommandName::GetTimeline,
            Command::GetIncidents(_) => CommandName::GetIncidents,
        }
    }

    /// The command message with this `id`, as one JSON text:
    /// `{"type":"command","id":…,"name":…,"payload":…}`.
    pub fn to_json(&self, id: &str) -> String {
        let payload = match self {
            Command::GetSnapshot | Command::StartAll | Command::StopAll | Command::GetStats => {
                PayloadRef::None
            }
            Command::GetLogs(q) => PayloadRef::Logs(q),
            Command::StartService(s) | Command::StopService(s) | Command::RestartService(s) => {
                PayloadRef::Service(ServiceRef { service: s })
            }
            Command::WatchStats(w) => PayloadRef::WatchStats(w),
            Command::GetTimeline(q) => PayloadRef::Timeline(q),
            Command::GetIncidents(q) => PayloadRef::Incidents(q),
        };
        let msg = CommandMessage { kind: MessageType::Command, id, name: self.name(), payload };
        serde_json::to_string(&msg).expect("protocol types always encode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_write_the_envelope_in_wire_order_and_leave_out_what_is_not_set() {
        assert_eq!(
            Command::StopAll.to_json("t1"),
            r#"{"type":"command","id":"t1","name":"stop_all","payload":null}"#
        );
        assert_eq!(
            Command::StartService("a\"b".into()).to_json("2"),
            r#"{"type":"command","id":"2","name":"start_service","payload":{"service":"a\"b"}}"#
        );
        let q = LogQuery { after_seq: Some(4), ..LogQuery::default() };
        assert_eq!(
            Command::GetLogs(q).to_json("3"),
            r#"{"type":"command","id":"3","name":"get_logs","payload":{"after_seq":4}}"#
        );
        let w = WatchStats { enabled: true, interval_ms: None };
        assert_eq!(w.interval_ms(), STATS_INTERVAL_DEFAULT_MS);
        assert_eq!(
            Command::WatchStats(w).to_json("4"),
            r#"{"type":"command","id":"4","name":"watch_stats","payload":{"enabled":true}}"#
        );
        assert_eq!(TimelineQuery::default().limit(), TIMELINE_LIMIT_DEFAULT);
        assert_eq!(IncidentQuery::default().limit(), INCIDENTS_LIMIT_DEFAULT);
    }
}
