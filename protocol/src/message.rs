//! Server-to-client messages: the envelope (`type`, `id`, `name`, `payload`)
//! around events, acks, results and errors (protocol.md, "Envelope").
//!
//! Fields that do not apply are left out, never `null`. Reading accepts a
//! numeric `id` as its decimal text, ignores unknown fields, and takes the
//! fields in any order.

use crate::data::{Hello, Incident, LogEntry, ServiceStatus, Snapshot, Stats};
use crate::words::{ErrorCode, MessageType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A message from the server. `D` is the type of result data: a server writes
/// [`crate::ResultData`]; a client reads `Value` (the default) and then the
/// data type of the command it sent ([`ResultPayload::data_as`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<D = Value> {
    /// `{"type":"event","name":…,"payload":…}`.
    Event(Event),
    /// The answer to every command that has an `id`, to its sender only.
    Ack {
        #[serde(deserialize_with = "id_text")]
        id: String,
        payload: Ack,
    },
    /// The outcome of an accepted command, to its sender only.
    Result {
        #[serde(deserialize_with = "id_text")]
        id: String,
        payload: ResultPayload<D>,
    },
    /// A client message that was not a valid command; `id` when it had one.
    Error {
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "opt_id_text"
        )]
        id: Option<String>,
        payload: ErrorBody,
    },
}

impl<D: Serialize> ServerMessage<D> {
    /// The message as one JSON text (what a WebSocket text frame carries).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("protocol types always encode")
    }
}

impl ServerMessage {
    /// Reads one server message; `Err` for anything that is not one this crate
    /// knows (an event from a newer server, say), which a client may ignore.
    pub fn from_json(text: &str) -> Result<ServerMessage, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Events, by `name` (protocol.md, "Events"; extensions health.md §2, guard.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "payload", rename_all = "snake_case")]
pub enum Event {
    /// On connect, first, to the new session only.
    Hello(Hello),
    /// On connect, second, to the new session only.
    Snapshot(Snapshot),
    /// To every session, every transition, never dropped silently.
    ServiceStatus(ServiceStatus),
    /// To every session, best effort (a session that falls behind misses some
    /// and recovers them with `get_logs`).
    Log(LogEntry),
    /// **Extension** (health.md §2): to a session that asked for `watch_stats`,
    /// every interval.
    ServiceStats(Stats),
    /// **Extension** (guard.md §3): to every session, on open, action and close;
    /// never dropped silently. Boxed: an incident is several times the size of
    /// every other payload.
    Incident(Box<Incident>),
}

/// An `ack` payload: `{"accepted":true}` or
/// `{"accepted":false,"error":{"code","message"}}` (protocol.md, "Commands").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub accepted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Ack {
    pub fn accepted() -> Ack {
        Ack { accepted: true, error: None }
    }

    pub fn rejected(error: ErrorBody) -> Ack {
        Ack { accepted: false, error: Some(error) }
    }
}

/// A `result` payload: `{"ok":true,"data":{…}}` or
/// `{"ok":false,"error":{…}}`, plus `failed_services` when a `start_all` or
/// `stop_all` could not act on some services (protocol.md, "Commands").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultPayload<D = Value> {
    pub ok: bool,
    // No `default`: that would ask `D: Default`; a missing `Option` reads as `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<D>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_services: Option<Vec<String>>,
}

impl<D> ResultPayload<D> {
    pub fn ok(data: D) -> ResultPayload<D> {
        ResultPayload { ok: true, data: Some(data), error: None, failed_services: None }
    }

    pub fn failed(error: ErrorBody, failed_services: Option<Vec<String>>) -> ResultPayload<D> {
        ResultPayload { ok: false, data: None, error: Some(error), failed_services }
    }
}

impl ResultPayload<Value> {
    /// The data as the type of the command's result (`LogsPage` for `get_logs`,
    /// ...); `None` when there is none or it does not have that shape.
    pub fn data_as<T: DeserializeOwned>(&self) -> Option<T> {
        T::deserialize(self.data.as_ref()?).ok()
    }
}

/// `{"code","message"}`: the payload of an `error` message and the `error` of a
/// rejecting ack or a failed result (protocol.md, "Protocol errors").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// For people: what was wrong, naming the field or service and the value.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody { code, message: message.into() }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A numeric id reads as its decimal text (protocol.md, "Envelope").
fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("id must be a string, not {other}"))),
    }
}

fn opt_id_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A `log` event, read straight into its entry without a generic JSON value
/// first: a flood is mostly these, and a client that reads them this way keeps
/// ahead of it. `None` for any other message (read those with
/// [`ServerMessage::from_json`]).
pub fn read_log_event(text: &str) -> Option<LogEntry> {
    #[derive(Deserialize)]
    struct LogEvent {
        #[serde(rename = "type")]
        kind: MessageType,
        name: String,
        payload: LogEntry,
    }
    // Cheap first look: most other messages never mention the word.
    if !text.contains("\"log\"") {
        return None;
    }
    let e: LogEvent = serde_json::from_str(text).ok()?;
    (e.kind == MessageType::Event && e.name == "log").then_some(e.payload)
}

/// What precedes a `log` event's payload in its message; [`LOG_EVENT_TAIL`]
/// follows it. For servers that encode the payload by hand on their hot path:
/// head, entry, tail is what serde writes for `Event::Log` (a test holds them
/// together).
pub const LOG_EVENT_HEAD: &str = r#"{"type":"event","name":"log","payload":"#;
/// What follows a `log` event's payload.
pub const LOG_EVENT_TAIL: &str = "}";

/// What precedes the entries of a successful `get_logs` result, for servers that
/// assemble it from entries encoded beforehand: head, the entries joined by `,`,
/// then [`logs_result_tail`] is what serde writes for that result.
pub fn logs_result_head(id: &str) -> String {
    let id = serde_json::to_string(id).expect("a string always encodes");
    format!(r#"{{"type":"result","id":{id},"payload":{{"ok":true,"data":{{"entries":["#)
}

/// What follows the entries of a successful `get_logs` result, with the
/// **Extension** fields `damaged` and `history_error` where they are given.
pub fn logs_result_tail(
    truncated: bool,
    effective_limit: u64,
    damaged: Option<u64>,
    history_error: Option<&str>,
) -> String {
    let mut tail = format!(r#"],"truncated":{truncated},"effective_limit":{effective_limit}"#);
    if let Some(n) = damaged {
        tail.push_str(&format!(r#","damaged":{n}"#));
    }
    if let Some(e) = history_error {
        let e = serde_json::to_string(e).expect("a string always encodes");
        tail.push_str(&format!(r#","history_error":{e}"#));
    }
    tail.push_str("}}}");
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{LogsPage, ResultData};
    use crate::words::{Status, Stream};

    fn entry(seq: u64, message: &str) -> LogEntry {
        LogEntry {
            seq,
            service: "a\"pi".into(),
            phase: Status::Running,
            stream: Stream::Stdout,
            message: message.into(),
            timestamp: "2026-11-27T14:55:21.123Z".into(),
        }
    }

    #[test]
    fn log_event_head_and_tail_wrap_an_entry_as_serde_does() {
        let e = entry(7, "tab\t bell\u{7} \"q\" \\");
        let by_hand =
            format!("{LOG_EVENT_HEAD}{}{LOG_EVENT_TAIL}", serde_json::to_string(&e).unwrap());
        let msg: ServerMessage<ResultData> = ServerMessage::Event(Event::Log(e));
        assert_eq!(by_hand, msg.to_json());
    }

    #[test]
    fn logs_result_head_and_tail_wrap_entries_as_serde_does() {
        let two = vec![entry(1, "x"), entry(2, "y")];
        let cases = [
            (vec![], false, None, None),
            (two.clone(), true, None, None),
            (two.clone(), true, Some(3), None),
            (two, true, Some(1), Some("cannot read \"x\": gone")),
            (vec![], true, None, Some("cannot read y")),
        ];
        for (entries, truncated, damaged, history_error) in cases {
            let joined: Vec<String> =
                entries.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
            let id = "id \"9\"";
            let by_hand = format!(
                "{}{}{}",
                logs_result_head(id),
                joined.join(","),
                logs_result_tail(truncated, 500, damaged, history_error)
            );
            let history_error = history_error.map(String::from);
            let page =
                LogsPage { entries, truncated, effective_limit: 500, damaged, history_error };
            let msg = ServerMessage::Result {
                id: id.into(),
                payload: ResultPayload::ok(ResultData::Logs(page)),
            };
            assert_eq!(by_hand, msg.to_json());
        }
    }

    #[test]
    fn reading_takes_numeric_ids_any_order_and_ignores_unknown_fields() {
        let m = ServerMessage::from_json(
            r#"{"payload":{"ok":true,"extra":1},"id":7,"type":"result","x":[1]}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            ServerMessage::Result {
                id: "7".into(),
                payload: ResultPayload { ok: true, data: None, error: None, failed_services: None }
            }
        );
        let m = ServerMessage::from_json(
            r#"{"type":"error","id":null,"payload":{"code":"missing_id","message":"m"}}"#,
        )
        .unwrap();
        assert!(matches!(m, ServerMessage::Error { id: None, .. }));
        assert!(ServerMessage::from_json(r#"{"type":"event","name":"nova","payload":{}}"#).is_err());
    }

    #[test]
    fn log_events_read_typed_and_other_messages_do_not() {
        let t = r#"{"type":"event","name":"log","payload":{"seq":3,"service":"a","phase":"ready",
                    "stream":"stderr","message":"log","timestamp":"t","more":1}}"#;
        assert_eq!(read_log_event(t).unwrap().seq, 3);
        let t = r#"{"payload":{"seq":3,"service":"a","phase":"ready","stream":"stdout",
                    "message":"m","timestamp":"t"},"name":"log","type":"event","x":[]}"#;
        assert_eq!(read_log_event(t).unwrap().seq, 3, "any field order");
        assert!(
            read_log_event(r#"{"type":"event","name":"snapshot","payload":{"log":1}}"#).is_none()
        );
        assert!(read_log_event(r#"{"type":"result","id":"log","payload":{}}"#).is_none());
    }

    #[test]
    fn result_data_reads_as_the_commands_type() {
        let m = ServerMessage::from_json(
            r#"{"type":"result","id":"1","payload":{"ok":true,"data":{"service":"api","status":"ready"}}}"#,
        )
        .unwrap();
        let ServerMessage::Result { payload, .. } = m else { panic!("not a result") };
        let data: crate::ServiceResult = payload.data_as().unwrap();
        assert_eq!(data.status, Status::Ready);
        assert!(payload.data_as::<LogsPage>().is_none(), "not that shape");
    }
}
