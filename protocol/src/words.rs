//! The protocol's closed word lists: message types, command names, statuses,
//! streams and error codes. Each is an enum whose wire words come from
//! `#[serde(rename_all = "snake_case")]`, and whose `as_str` gives the same word
//! without serde (for hand-encoded hot paths); a test holds the two together.

use serde::{Deserialize, Serialize};

/// The `type` of an envelope (protocol.md, "Envelope").
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// Client to server: a request with an `id` and a `name`.
    Command,
    /// Server to the sender of a command: accepted or rejected.
    Ack,
    /// Server to the sender of an accepted command: its outcome.
    Result,
    /// Server to one or every session: something happened.
    Event,
    /// Server to a client whose message was not a valid command.
    Error,
}

impl MessageType {
    pub const ALL: [MessageType; 5] = [
        MessageType::Command,
        MessageType::Ack,
        MessageType::Result,
        MessageType::Event,
        MessageType::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Command => "command",
            MessageType::Ack => "ack",
            MessageType::Result => "result",
            MessageType::Event => "event",
            MessageType::Error => "error",
        }
    }

    pub fn from_word(word: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == word)
    }
}

/// A command's `name` (protocol.md, "Commands"; extensions: health.md §2 and
/// §3, guard.md §3).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandName {
    GetSnapshot,
    GetLogs,
    StartService,
    StopService,
    RestartService,
    StartAll,
    StopAll,
    /// **Extension** (health.md §2).
    GetStats,
    /// **Extension** (health.md §2).
    WatchStats,
    /// **Extension** (health.md §3).
    GetTimeline,
    /// **Extension** (guard.md §3).
    GetIncidents,
}

impl CommandName {
    /// The seven commands of protocol V1.
    pub const V1: [CommandName; 7] = [
        CommandName::GetSnapshot,
        CommandName::GetLogs,
        CommandName::StartService,
        CommandName::StopService,
        CommandName::RestartService,
        CommandName::StartAll,
        CommandName::StopAll,
    ];

    /// Every command this crate knows, V1 first.
    pub const ALL: [CommandName; 11] = [
        CommandName::GetSnapshot,
        CommandName::GetLogs,
        CommandName::StartService,
        CommandName::StopService,
        CommandName::RestartService,
        CommandName::StartAll,
        CommandName::StopAll,
        CommandName::GetStats,
        CommandName::WatchStats,
        CommandName::GetTimeline,
        CommandName::GetIncidents,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::GetSnapshot => "get_snapshot",
            CommandName::GetLogs => "get_logs",
            CommandName::StartService => "start_service",
            CommandName::StopService => "stop_service",
            CommandName::RestartService => "restart_service",
            CommandName::StartAll => "start_all",
            CommandName::StopAll => "stop_all",
            CommandName::GetStats => "get_stats",
            CommandName::WatchStats => "watch_stats",
            CommandName::GetTimeline => "get_timeline",
            CommandName::GetIncidents => "get_incidents",
        }
    }

    pub fn from_word(word: &str) -> Option<CommandName> {
        CommandName::ALL.into_iter().find(|n| n.as_str() == word)
    }
}

/// A service's status (protocol.md, "On connect"). health.md §1 keeps this set:
/// a pending restart shows as `failed` (or `stopped`) plus extension fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Starting,
    Running,
    Ready,
    Stopping,
    Stopped,
    Failed,
    /// No state yet (in snapshots). Reading: a word this crate does not know
    /// (from a newer server) reads as `Unknown`, so one odd status does not
    /// make a whole snapshot unreadable.
    #[serde(other)]
    Unknown,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Unknown,
        Status::Starting,
        Status::Running,
        Status::Ready,
        Status::Stopping,
        Status::Stopped,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Ready => "ready",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
        }
    }

    /// The process is up, whether or not its readiness probe passed.
    pub fn is_up(self) -> bool {
        matches!(self, Status::Running | Status::Ready)
    }
}

/// Where a log line came from (protocol.md, `get_logs` entry).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// **Extension**: a line the server writes about a service (exit code,
    /// signal, not started because of a dependency, probe timeout).
    System,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Stdout, Stream::Stderr, Stream::System];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        }
    }
}

/// An error code, in an `error` message, a rejecting `ack` or a failed `result`
/// (protocol.md, "Protocol errors").
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `error`: the frame is not JSON, not an object, or a binary frame.
    InvalidJson,
    /// `error`: no `type`, or an empty one.
    MissingType,
    /// `error`: `type` is not one of the five.
    UnknownType,
    /// `error`: a client sent `ack`, `result`, `event` or `error`.
    UnsupportedMessageType,
    /// `error`: a command without `id`.
    MissingId,
    /// `error`, **Extension**: a command whose `id` is there but unusable
    /// (`null`, `""`, `true`, an array or an object), told apart from a missing
    /// one (issue 14).
    InvalidId,
    /// `error`: a command without `name`.
    MissingName,
    /// `ack`: a command name the server does not serve.
    UnknownCommand,
    /// `ack`: a payload field of the wrong type or out of range.
    InvalidPayload,
    /// `ack`: no service has that name.
    UnknownService,
    /// `ack`: the busy rules (protocol.md, "Commands").
    ServiceBusy,
    /// `result`, **Extension**: the action failed; the message says why.
    ServiceFailed,
    /// `result`: the server could not complete the command.
    InternalError,
    /// Reading only, never sent: a code this version of the crate does not
    /// know (from a newer server). The message still says what happened.
    #[serde(other)]
    Unrecognized,
}

impl ErrorCode {
    /// Every code a server may send.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidJson,
        ErrorCode::MissingType,
        ErrorCode::UnknownType,
        ErrorCode::UnsupportedMessageType,
        ErrorCode::MissingId,
        ErrorCode::InvalidId,
        ErrorCode::MissingName,
        ErrorCode::UnknownCommand,
        ErrorCode::InvalidPayload,
        ErrorCode::UnknownService,
        ErrorCode::ServiceBusy,
        ErrorCode::ServiceFailed,
        ErrorCode::InternalError,
    ];

    /// The code as it is on the wire.
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::MissingType => "missing_type",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedMessageType => "unsupported_message_type",
            ErrorCode::MissingId => "missing_id",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::MissingName => "missing_name",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::UnknownService => "unknown_service",
            ErrorCode::ServiceBusy => "service_busy",
            ErrorCode::ServiceFailed => "service_failed",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Unrecognized => "unrecognized",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire<T: Serialize>(v: T) -> String {
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn as_str_is_the_serde_word_for_every_variant() {
        for t in MessageType::ALL {
            assert_eq!(wire(t), format!("\"{}\"", t.as_str()));
            assert_eq!(MessageType::from_word(t.as_str()), Some(t));
        }
        for n in CommandName::ALL {
            assert_eq!(wire(n), format!("\"{}\"", n.as_str()));
            assert_eq!(CommandName::from_word(n.as_str()), Some(n));
        }
        for s in Status::ALL {
            assert_eq!(wire(s), format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&wire(s)).unwrap(), s);
        }
        for s in Stream::ALL {
            assert_eq!(wire(s), format!("\"{}\"", s.as_str()));
        }
        for c in ErrorCode::ALL {
            assert_eq!(wire(c), format!("\"{}\"", c.code()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&wire(c)).unwrap(), c);
        }
        assert_eq!(wire(ErrorCode::Unrecognized), "\"unrecognized\"");
    }

    #[test]
    fn words_from_a_newer_server_read_as_unknown_where_the_protocol_has_a_word_for_it() {
        assert_eq!(serde_json::from_str::<Status>("\"hibernating\"").unwrap(), Status::Unknown);
        let code: ErrorCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(code, ErrorCode::Unrecognized);
        assert!(serde_json::from_str::<Stream>("\"stdin\"").is_err());
    }

    #[test]
    fn v1_is_the_first_seven_of_all() {
        assert_eq!(&CommandName::ALL[..7], &CommandName::V1);
        assert_eq!(CommandName::from_word("fly"), None);
        assert_eq!(MessageType::from_word(""), None);
    }
}
