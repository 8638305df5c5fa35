//! Protocol V1 envelopes as this client reads and writes them (spec/protocol.md).
//!
//! A copy of the server's wire shapes on purpose: the client must not pull in the
//! server's crates (nix, mio). Unknown fields are ignored everywhere, so the
//! client works with any V1 server.

use serde::Deserialize;
use serde_json::{json, Value};

/// One frame from the server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Envelope {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "id_as_string")]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub payload: Value,
}

fn id_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// One log entry (a `log` event payload or a `get_logs` entry).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Entry {
    pub seq: u64,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub timestamp: String,
}

impl Entry {
    /// `HH:MM:SS.mmm` from an RFC 3339 timestamp (as sent), or blanks.
    pub fn clock(&self) -> &str {
        self.timestamp.get(11..23).unwrap_or("            ")
    }
}

pub fn parse(text: &str) -> Option<Envelope> {
    serde_json::from_str(text).ok()
}

#[derive(Deserialize)]
struct LogEvent {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    payload: Entry,
}

/// A `log` event parsed without building a generic JSON value: a flood is
/// mostly these, and typed parsing keeps the link thread ahead of it.
pub fn parse_log(text: &str) -> Option<Entry> {
    if !text.contains("\"log\"") {
        return None;
    }
    let e: LogEvent = serde_json::from_str(text).ok()?;
    (e.kind == "event" && e.name == "log").then_some(e.payload)
}

pub fn command(id: &str, name: &str, payload: Value) -> String {
    json!({"type": "command", "id": id, "name": name, "payload": payload}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_and_numeric_ids_read_as_strings() {
        let e = parse(r#"{"type":"result","id":7,"extra":1,"payload":{"ok":true}}"#).unwrap();
        assert_eq!(e.id.as_deref(), Some("7"));
        assert_eq!(e.kind, "result");
        let entry: Entry = serde_json::from_value(json!({
            "seq": 1795791321000001u64, "service": "api", "phase": "ready", "stream": "stdout",
            "message": "hi", "timestamp": "2026-11-27T14:55:21.123Z", "new_field": [1]
        }))
        .unwrap();
        assert_eq!(entry.clock(), "14:55:21.123");
        assert_eq!(entry.seq, 1795791321000001);
    }

    #[test]
    fn log_events_parse_typed_and_other_frames_do_not() {
        let t =
            r#"{"type":"event","name":"log","payload":{"seq":3,"service":"a","message":"log"}}"#;
        assert_eq!(parse_log(t).unwrap().seq, 3);
        let t = r#"{"payload":{"seq":3},"name":"log","type":"event","x":[]}"#;
        assert_eq!(parse_log(t).unwrap().seq, 3, "any field order");
        assert!(parse_log(r#"{"type":"event","name":"snapshot","payload":{"log":1}}"#).is_none());
        assert!(parse_log(r#"{"type":"result","id":"log","payload":{}}"#).is_none());
    }
}

/// The protocol samples in spec/samples, read the way this client reads frames.
#[cfg(test)]
mod samples {
    use super::*;

    fn sample(name: &str) -> String {
        let path = format!("{}/../spec/samples/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn every_sample_parses() {
        for name in [
            "hello",
            "snapshot",
            "service_status",
            "ack_accepted",
            "ack_rejected",
            "result_service",
            "result_logs",
            "result_failed",
            "error",
        ] {
            let env = parse(&sample(name)).unwrap_or_else(|| panic!("{name} does not parse"));
            assert!(!env.kind.is_empty(), "{name}");
            assert!(parse_log(&sample(name)).is_none(), "{name} is not a log event");
        }
        let log = parse_log(&sample("log")).unwrap();
        assert_eq!(
            (log.seq, log.stream.as_str(), log.clock()),
            (1795791321000001, "stderr", "14:55:21.123")
        );
        let page = parse(&sample("result_logs")).unwrap();
        let entries: Vec<Entry> =
            serde_json::from_value(page.payload["data"]["entries"].clone()).unwrap();
        assert_eq!(entries[0].message, "listening");
    }
}
