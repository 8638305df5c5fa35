//! Reading a client's message: one text frame in, a command or the exact
//! protocol error to answer with out (protocol.md, "Protocol errors").
//!
//! Pure, total and panic-free on any input (it is a fuzz target): everything a
//! client sends is untrusted. The checks run in a fixed order, and the first
//! that fails decides the answer: JSON object, `type`, `id`, `name`, payload
//! shape, command name, payload fields.

use crate::command::{
    Command, IncidentQuery, LogQuery, TimelineQuery, WatchStats, STATS_INTERVAL_MIN_MS,
};
use crate::message::ErrorBody;
use crate::words::{CommandName, ErrorCode, MessageType};
use serde_json::{Map, Value};

/// What a client frame turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A valid command: answer with an ack, then a result.
    Command { id: String, cmd: Command },
    /// Not a command: answer with an `error` message (with `id` when the frame
    /// had a usable one).
    Error { id: Option<String>, error: ErrorBody },
    /// A command that cannot be carried out: answer with an `ack`
    /// `accepted:false`.
    Reject { id: String, error: ErrorBody },
}

/// The `id` of a client message.
enum Id {
    Absent,
    Usable(String),
    /// There, but not a non-empty string or a number: what it was instead.
    Unusable(&'static str),
}

fn read_id(v: Option<&Value>) -> Id {
    match v {
        None => Id::Absent,
        Some(Value::String(s)) if !s.is_empty() => Id::Usable(s.clone()),
        // protocol.md: a number is accepted and echoed as a string.
        Some(Value::Number(n)) => Id::Usable(n.to_string()),
        Some(Value::String(_)) => Id::Unusable("an empty string"),
        Some(Value::Null) => Id::Unusable("null"),
        Some(Value::Bool(_)) => Id::Unusable("a boolean"),
        Some(Value::Array(_)) => Id::Unusable("an array"),
        Some(Value::Object(_)) => Id::Unusable("an object"),
    }
}

/// Reads one client text frame. `serves` are the commands this server carries
/// out; any other name, known to this crate or not, is an `unknown_command`, so
/// a server answers a command it does not serve yet exactly as one that does
/// not exist, payload checks included.
pub fn parse_incoming(text: &str, serves: &[CommandName]) -> Incoming {
    let error = |id: Option<String>, code, message: String| Incoming::Error {
        id,
        error: ErrorBody::new(code, message),
    };
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return error(None, ErrorCode::InvalidJson, format!("frame is not valid JSON: {e}"))
        }
    };
    let Some(o) = v.as_object() else {
        return error(None, ErrorCode::InvalidJson, "frame is not a JSON object".into());
    };
    let id = read_id(o.get("id"));
    let echo = match &id {
        Id::Usable(s) => Some(s.clone()),
        Id::Absent | Id::Unusable(_) => None,
    };
    let ty = match o.get("type") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return error(echo, ErrorCode::MissingType, "message has no \"type\"".into()),
    };
    match MessageType::from_word(ty) {
        Some(MessageType::Command) => {}
        Some(MessageType::Ack | MessageType::Result | MessageType::Event | MessageType::Error) => {
            let m = format!("clients may not send \"{ty}\"");
            return error(echo, ErrorCode::UnsupportedMessageType, m);
        }
        None => {
            let m = format!("unknown message type \"{ty}\"");
            return error(echo, ErrorCode::UnknownType, m);
        }
    }
    let id = match id {
        Id::Usable(id) => id,
        Id::Absent => return error(None, ErrorCode::MissingId, "command has no \"id\"".into()),
        Id::Unusable(what) => {
            let m = format!("command \"id\" must be a non-empty string or a number, not {what}");
            return error(None, ErrorCode::InvalidId, m);
        }
    };
    let name = match o.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return error(Some(id), ErrorCode::MissingName, "command has no \"name\"".into()),
    };
    let empty = Map::new();
    let payload = match o.get("payload") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => {
            let error =
                ErrorBody::new(ErrorCode::InvalidPayload, "payload must be an object or null");
            return Incoming::Reject { id, error };
        }
    };
    let known = CommandName::from_word(name).filter(|n| serves.contains(n));
    let Some(known) = known else {
        let error =
            ErrorBody::new(ErrorCode::UnknownCommand, format!("unknown command \"{name}\""));
        return Incoming::Reject { id, error };
    };
    match read_command(known, &Fields(payload)) {
        Ok(cmd) => Incoming::Command { id, cmd },
        Err(message) => {
            Incoming::Reject { id, error: ErrorBody::new(ErrorCode::InvalidPayload, message) }
        }
    }
}

/// A payload's fields; each reader says what is wrong with a field in words a
/// client author can act on (`invalid_payload`). Absent and `null` are the same.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn service(&self, required: bool) -> Result<Option<String>, String> {
        match self.get("service") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            None if !required => Ok(None),
            None => Err("\"service\" is required".into()),
            Some(_) => Err("\"service\" must be a non-empty string".into()),
        }
    }

    /// A whole number of at least `min`.
    fn whole(&self, key: &str, min: u64) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= min => Ok(Some(n)),
                _ if min == 0 => Err(format!("\"{key}\" must be a whole number >= 0")),
                _ if min == 1 => Err(format!("\"{key}\" must be a whole number > 0")),
                _ => Err(format!("\"{key}\" must be a whole number >= {min}")),
            },
        }
    }

    fn limit(&self) -> Result<Option<usize>, String> {
        Ok(self.whole("limit", 1)?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("\"{key}\" must be true or false")),
        }
    }
}

fn read_command(name: CommandName, p: &Fields) -> Result<Command, String> {
    let service = || p.service(true).map(Option::unwrap_or_default);
    Ok(match name {
        CommandName::GetSnapshot => Command::GetSnapshot,
        CommandName::StartAll => Command::StartAll,
        CommandName::StopAll => Command::StopAll,
        CommandName::GetStats => Command::GetStats,
        CommandName::StartService => Command::StartService(service()?),
        CommandName::StopService => Command::StopService(service()?),
        CommandName::RestartService => Command::RestartService(service()?),
        CommandName::GetLogs => {
            // `limit` is checked first: with several bad fields, it is the one named.
            let limit = p.limit()?;
            Command::GetLogs(LogQuery {
                service: p.service(false)?,
                limit,
                after_seq: p.whole("after_seq", 0)?,
                before_seq: p.whole("before_seq", 0)?,
            })
        }
        CommandName::WatchStats => Command::WatchStats(WatchStats {
            enabled: p.flag("enabled")?.ok_or("\"enabled\" is required")?,
            interval_ms: p.whole("interval_ms", STATS_INTERVAL_MIN_MS)?,
        }),
        CommandName::GetTimeline => {
            Command::GetTimeline(TimelineQuery { service: p.service(false)?, limit: p.limit()? })
        }
        CommandName::GetIncidents => Command::GetIncidents(IncidentQuery {
            service: p.service(false)?,
            limit: p.limit()?,
            open: p.flag("open")?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Incoming {
        parse_incoming(text, &CommandName::ALL)
    }

    fn code(text: &str) -> &'static str {
        match parse(text) {
            Incoming::Error { error, .. } | Incoming::Reject { error, .. } => error.code.code(),
            Incoming::Command { .. } => "ok",
        }
    }

    fn command(name: &str, payload: &str) -> String {
        format!(r#"{{"type":"command","id":"1","name":"{name}","payload":{payload}}}"#)
    }

    #[test]
    fn every_protocol_error_code_is_reachable() {
        assert_eq!(code("nope"), "invalid_json");
        assert_eq!(code("[1]"), "invalid_json");
        assert_eq!(code("{}"), "missing_type");
        assert_eq!(code(r#"{"type":""}"#), "missing_type");
        assert_eq!(code(r#"{"type":"x"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"ack","id":"1"}"#), "unsupported_message_type");
        assert_eq!(code(r#"{"type":"command","name":"get_snapshot"}"#), "missing_id");
        assert_eq!(code(r#"{"type":"command","id":"1"}"#), "missing_name");
        assert_eq!(code(r#"{"type":"command","id":"1","name":"fly"}"#), "unknown_command");
        assert_eq!(code(&command("get_logs", r#"{"limit":0}"#)), "invalid_payload");
        assert_eq!(code(&command("get_logs", r#"{"after_seq":-1}"#)), "invalid_payload");
        assert_eq!(code(&command("start_service", "null")), "invalid_payload");
        assert_eq!(code(&command("get_snapshot", "[]")), "invalid_payload");
        assert_eq!(code(r#"{"type":"command","id":null,"name":"get_snapshot"}"#), "invalid_id");
    }

    #[test]
    fn issue_14_an_id_of_the_wrong_type_is_invalid_not_missing() {
        for (id, what) in [
            ("null", "null"),
            ("\"\"", "an empty string"),
            ("true", "a boolean"),
            ("[1]", "an array"),
            ("{}", "an object"),
        ] {
            let t = format!(r#"{{"type":"command","id":{id},"name":"get_snapshot"}}"#);
            let Incoming::Error { id: None, error } = parse(&t) else { panic!("{t}") };
            assert_eq!(error.code, ErrorCode::InvalidId, "{t}");
            assert_eq!(
                error.message,
                format!("command \"id\" must be a non-empty string or a number, not {what}")
            );
        }
        // Before the type is known to be a command, a bad id is only not echoed.
        let Incoming::Error { id, error } = parse(r#"{"type":"x","id":null}"#) else { panic!() };
        assert_eq!((id, error.code), (None, ErrorCode::UnknownType));
    }

    #[test]
    fn ids_are_echoed_and_numbers_read_as_their_text() {
        let t = r#"{"type":"command","id":12,"name":"get_snapshot"}"#;
        assert_eq!(parse(t), Incoming::Command { id: "12".into(), cmd: Command::GetSnapshot });
        let Incoming::Error { id, .. } = parse(r#"{"type":"command","id":1.5}"#) else { panic!() };
        assert_eq!(id.as_deref(), Some("1.5"), "missing_name echoes the id");
        let Incoming::Error { id, .. } = parse(r#"{"type":"event","id":"e"}"#) else { panic!() };
        assert_eq!(id.as_deref(), Some("e"));
    }

    #[test]
    fn null_absent_and_empty_payloads_mean_the_same() {
        for p in ["", r#","payload":null"#, r#","payload":{}"#] {
            let t = format!(r#"{{"type":"command","id":"7","name":"get_snapshot"{p}}}"#);
            assert_eq!(parse(&t), Incoming::Command { id: "7".into(), cmd: Command::GetSnapshot });
            let t = format!(r#"{{"type":"command","id":"7","name":"get_logs"{p}}}"#);
            let want = Command::GetLogs(LogQuery::default());
            assert_eq!(parse(&t), Incoming::Command { id: "7".into(), cmd: want });
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let t = r#"{"type":"command","id":"1","name":"get_logs","x":1,
                    "payload":{"service":"api","limit":5,"after_seq":3,"extra":true}}"#;
        let Incoming::Command { cmd: Command::GetLogs(q), .. } = parse(t) else { panic!() };
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!((q.limit, q.after_seq, q.before_seq), (Some(5), Some(3), None));
    }

    #[test]
    fn commands_a_server_does_not_serve_are_unknown_before_their_payload_is_read() {
        let t = command("watch_stats", r#"{"enabled":true,"interval_ms":10}"#);
        let Incoming::Reject { error, .. } = parse_incoming(&t, &CommandName::V1) else { panic!() };
        assert_eq!(
            error,
            ErrorBody::new(ErrorCode::UnknownCommand, "unknown command \"watch_stats\"")
        );
        assert_eq!(code(&t), "invalid_payload", "served, the payload is checked");
    }

    #[test]
    fn extension_payloads_are_checked_field_by_field() {
        let cmd = |name: &str, payload: &str| match parse(&command(name, payload)) {
            Incoming::Command { cmd, .. } => Ok(cmd),
            Incoming::Reject { error, .. } | Incoming::Error { error, .. } => Err(error.message),
        };
        assert_eq!(cmd("get_stats", "null"), Ok(Command::GetStats));
        let w = WatchStats { enabled: true, interval_ms: Some(250) };
        assert_eq!(
            cmd("watch_stats", r#"{"enabled":true,"interval_ms":250}"#),
            Ok(Command::WatchStats(w))
        );
        assert_eq!(
            cmd("watch_stats", r#"{"enabled":true,"interval_ms":249}"#),
            Err("\"interval_ms\" must be a whole number >= 250".into())
        );
        assert_eq!(cmd("watch_stats", "{}"), Err("\"enabled\" is required".into()));
        assert_eq!(
            cmd("watch_stats", r#"{"enabled":"yes"}"#),
            Err("\"enabled\" must be true or false".into())
        );
        let off = WatchStats { enabled: false, interval_ms: None };
        assert_eq!(cmd("watch_stats", r#"{"enabled":false}"#), Ok(Command::WatchStats(off)));
        let q = TimelineQuery { service: Some("db".into()), limit: None };
        assert_eq!(cmd("get_timeline", r#"{"service":"db"}"#), Ok(Command::GetTimeline(q)));
        assert_eq!(
            cmd("get_timeline", r#"{"limit":0}"#),
            Err("\"limit\" must be a whole number > 0".into())
        );
        let q = IncidentQuery { service: None, limit: Some(3), open: Some(true) };
        assert_eq!(
            cmd("get_incidents", r#"{"limit":3,"open":true}"#),
            Ok(Command::GetIncidents(q))
        );
        assert_eq!(
            cmd("get_incidents", r#"{"open":1}"#),
            Err("\"open\" must be true or false".into())
        );
        assert_eq!(
            cmd("get_incidents", r#"{"service":""}"#),
            Err("\"service\" must be a non-empty string".into())
        );
    }

    #[test]
    fn every_command_a_client_writes_reads_back_as_itself() {
        let all = [
            Command::GetSnapshot,
            Command::GetLogs(LogQuery {
                service: Some("api".into()),
                limit: Some(10),
                after_seq: Some(0),
                before_seq: Some(u64::MAX),
            }),
            Command::StartService("a".into()),
            Command::StopService("b".into()),
            Command::RestartService("c".into()),
            Command::StartAll,
            Command::StopAll,
            Command::GetStats,
            Command::WatchStats(WatchStats { enabled: true, interval_ms: Some(500) }),
            Command::GetTimeline(TimelineQuery { service: None, limit: Some(5) }),
            Command::GetIncidents(IncidentQuery {
                service: Some("x".into()),
                limit: None,
                open: Some(false),
            }),
        ];
        assert_eq!(all.len(), CommandName::ALL.len());
        for cmd in all {
            let text = cmd.to_json("id-1");
            assert_eq!(parse(&text), Incoming::Command { id: "id-1".into(), cmd }, "{text}");
        }
    }

    /// A small deterministic fuzzer: byte-level mutations of valid and invalid
    /// frames never make the parser panic (cargo-fuzz runs the same target
    /// longer).
    #[test]
    fn mutated_frames_never_panic() {
        let seeds = [
            command("get_logs", r#"{"service":"api","limit":100,"before_seq":1795791321000500}"#),
            command("watch_stats", r#"{"enabled":true,"interval_ms":250}"#),
            command("get_incidents", r#"{"open":true,"limit":1}"#),
            r#"{"type":"command","id":null,"name":"get_snapshot","payload":null}"#.to_string(),
            r#"{"type":"ack","id":18446744073709551616,"payload":[{"a":-0.0e999}]}"#.to_string(),
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"{}[]\":,0123456789-.eE \\unltrfa\x00\xff";
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].clone().into_bytes();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % (bytes.len() + 1);
                let b = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if at < bytes.len() => bytes[at] = b,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text); // only that it returns
        }
        let deep = "[".repeat(100_000);
        assert_eq!(code(&deep), "invalid_json", "nesting is bounded, not a stack overflow");
    }
}
