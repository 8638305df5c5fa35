//! FlowLayer session protocol V1 as types: what a FlowLayer server and its
//! clients say to each other over the `/ws` WebSocket (spec/protocol.md).
//!
//! The crate a Rust program takes to write its own client: it depends on serde
//! alone. Nothing here runs a thread or does I/O; the server and the terminal
//! client both build and read every message through it, and its tests hold
//! each type to the samples in `spec/samples`.
//!
//! - [`words`]: the closed word lists (message types, command names, statuses,
//!   streams, error codes), each an enum with its wire words;
//! - [`command`]: commands and their payloads, and how a client writes one;
//! - [`parse`]: how a server reads a client's frame, with the exact error code
//!   for each way it can be wrong;
//! - [`message`]: server messages (events, acks, results, errors) and the log
//!   event fast path;
//! - [`data`]: event payloads and result data.
//!
//! V1 messages are unchanged by the extensions (health, guard): their fields
//! are `Option`s left out when absent, and reading ignores unknown fields.
//!
//! ```
//! use flowlayer_protocol::{read_log_event, Command, Event, LogQuery, ServerMessage};
//!
//! let ask = Command::GetLogs(LogQuery { limit: Some(100), ..LogQuery::default() });
//! assert_eq!(
//!     ask.to_json("1"),
//!     r#"{"type":"command","id":"1","name":"get_logs","payload":{"limit":100}}"#
//! );
//! let frame = r#"{"type":"event","name":"service_status",
//!     "payload":{"service":"api","status":"ready","timestamp":"2026-11-27T14:55:21.123Z"}}"#;
//! assert!(read_log_event(frame).is_none(), "not a log event");
//! let ServerMessage::Event(Event::ServiceStatus(s)) = ServerMessage::from_json(frame).unwrap()
//! else {
//!     panic!("a status event")
//! };
//! assert!(s.status.is_up());
//! ```

pub mod command;
pub mod data;
pub mod message;
pub mod parse;
pub mod words;

#[cfg(test)]
mod samples;

pub use command::{
    Command, IncidentQuery, LogQuery, TimelineQuery, WatchStats, INCIDENTS_LIMIT_DEFAULT,
    STATS_INTERVAL_DEFAULT_MS, STATS_INTERVAL_MIN_MS, TIMELINE_LIMIT_DEFAULT,
};
pub use data::{
    AllResult, Empty, Evidence, GuardAction, GuardRule, Hello, Incident, Incidents, LogEntry,
    LogsPage, ProbeType, ResultData, ServiceKind, ServiceResult, ServiceState, ServiceStats,
    ServiceStatus, Snapshot, Stats, Timeline, TimelineEntry, TimelineKind,
};
pub use message::{
    logs_result_head, logs_result_tail, read_log_event, Ack, ErrorBody, Event, ResultPayload,
    ServerMessage, LOG_EVENT_HEAD, LOG_EVENT_TAIL,
};
pub use parse::{parse_incoming, Incoming};
pub use words::{CommandName, ErrorCode, MessageType, Status, Stream};

/// `protocol_version` in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// `server` in a FlowLayer server's `hello`.
pub const SERVER_NAME: &str = "flowlayer";
