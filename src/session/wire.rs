//! Protocol V1 envelopes (protocol.md): building outgoing frames and reading
//! incoming commands. Pure; used by session threads (parsing) and the state
//! thread (building).

use crate::bus::{Command, Frame, LogQuery};
use crate::logs::{Batch, BatchJson};
use crate::state::Failure;
use serde_json::{json, Map, Value};

/// Commands this server supports, as announced in `hello`.
pub const CAPABILITIES: [&str; 7] = [
    "get_snapshot",
    "get_logs",
    "start_service",
    "stop_service",
    "restart_service",
    "start_all",
    "stop_all",
];

/// A server-to-client text frame: FIN + text opcode, unmasked, then the payload.
pub fn text_frame(payload: &[u8]) -> Frame {
    text_frame_of(&[payload])
}

/// A text frame whose payload is `parts` in order (no joined copy first).
fn text_frame_of(parts: &[&[u8]]) -> Frame {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(n + 10);
    out.push(0x81);
    if n < 126 {
        out.push(n as u8);
    } else if n <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    Frame::from(out)
}

fn frame(v: Value) -> Frame {
    text_frame(v.to_string().as_bytes())
}

pub fn event(name: &str, payload: Value) -> Frame {
    frame(json!({"type": "event", "name": name, "payload": payload}))
}

/// The first frame of every session.
pub fn hello(instance_id: &str) -> Frame {
    event(
        "hello",
        json!({
            "protocol_version": 1,
            "server": "flowlayer",
            "capabilities": CAPABILITIES,
            "server_version": env!("CARGO_PKG_VERSION"),
            "instance_id": instance_id,
        }),
    )
}

pub fn status_event(service: &str, status: &str, timestamp: &str) -> Frame {
    event("service_status", json!({"service": service, "status": status, "timestamp": timestamp}))
}

/// Line `i` of a batch as a `log` event, encoded without building a `Value` (hot path).
pub fn log_event(b: &Batch, i: usize, json: &BatchJson, out: &mut Vec<u8>) -> Frame {
    out.clear();
    out.extend_from_slice(br#"{"type":"event","name":"log","payload":"#);
    json.write(b, i, out);
    out.push(b'}');
    text_frame(out)
}

fn error_object(f: &Failure) -> Value {
    json!({"code": f.code, "message": f.message})
}

pub fn ack(id: &str, outcome: &Result<(), Failure>) -> Frame {
    let payload = match outcome {
        Ok(()) => json!({"accepted": true}),
        Err(f) => json!({"accepted": false, "error": error_object(f)}),
    };
    frame(json!({"type": "ack", "id": id, "payload": payload}))
}

pub fn result(id: &str, outcome: &Result<Value, Failure>) -> Frame {
    let payload = match outcome {
        Ok(data) => json!({"ok": true, "data": data}),
        Err(f) => {
            let mut p = json!({"ok": false, "error": error_object(f)});
            if let Some(names) = &f.failed_services {
                p["failed_services"] = json!(names);
            }
            p
        }
    };
    frame(json!({"type": "result", "id": id, "payload": payload}))
}

/// A `get_logs` result from entries already encoded as JSON objects.
pub fn logs_result(
    id: &str,
    entries_json: &[u8],
    truncated: bool,
    effective_limit: usize,
) -> Frame {
    let head = format!(
        r#"{{"type":"result","id":{},"payload":{{"ok":true,"data":{{"entries":["#,
        Value::from(id)
    );
    let tail = format!(r#"],"truncated":{truncated},"effective_limit":{effective_limit}}}}}}}"#);
    text_frame_of(&[head.as_bytes(), entries_json, tail.as_bytes()])
}

pub fn error(id: Option<&str>, code: &str, message: &str) -> Frame {
    let mut v = json!({"type": "error", "payload": {"code": code, "message": message}});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    frame(v)
}

/// What a client frame turned out to be.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Command {
        id: String,
        cmd: Command,
    },
    /// Answer with an `error` frame.
    Error {
        id: Option<String>,
        code: &'static str,
        message: String,
    },
    /// Answer with an `ack` `accepted:false`.
    Reject {
        id: String,
        code: &'static str,
        message: String,
    },
}

pub fn parse_incoming(text: &str) -> Incoming {
    let err = |id: Option<String>, code, message: &str| Incoming::Error {
        id,
        code,
        message: message.to_string(),
    };
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return err(None, "invalid_json", &format!("frame is not valid JSON: {e}")),
    };
    let Some(o) = v.as_object() else {
        return err(None, "invalid_json", "frame is not a JSON object");
    };
    let id = match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let ty = match o.get("type") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return err(id, "missing_type", "message has no \"type\""),
    };
    match ty {
        "command" => {}
        "ack" | "result" | "event" | "error" => {
            return err(id, "unsupported_message_type", &format!("clients may not send \"{ty}\""))
        }
        other => return err(id, "unknown_type", &format!("unknown message type \"{other}\"")),
    }
    let Some(id) = id else { return err(None, "missing_id", "command has no \"id\"") };
    let name = match o.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return err(Some(id), "missing_name", "command has no \"name\""),
    };
    let empty = Map::new();
    let payload = match o.get("payload") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Incoming::Reject {
                id,
                code: "invalid_payload",
                message: "payload must be an object or null".into(),
            }
        }
    };
    match parse_command(name, payload) {
        Ok(cmd) => Incoming::Command { id, cmd },
        Err((code, message)) => Incoming::Reject { id, code, message },
    }
}

type Rejection = (&'static str, String);

fn parse_command(name: &str, p: &Map<String, Value>) -> Result<Command, Rejection> {
    let invalid = |m: String| ("invalid_payload", m);
    let service = |required: bool| -> Result<Option<String>, Rejection> {
        match p.get("service") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(invalid("\"service\" is required".into())),
            Some(_) => Err(invalid("\"service\" must be a non-empty string".into())),
        }
    };
    let seq = |key: &str| -> Result<Option<u64>, Rejection> {
        match p.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(format!("\"{key}\" must be a whole number >= 0"))),
        }
    };
    Ok(match name {
        "get_snapshot" => Command::GetSnapshot,
        "start_all" => Command::StartAll,
        "stop_all" => Command::StopAll,
        "start_service" => Command::StartService(service(true)?.unwrap_or_default()),
        "stop_service" => Command::StopService(service(true)?.unwrap_or_default()),
        "restart_service" => Command::RestartService(service(true)?.unwrap_or_default()),
        "get_logs" => {
            let limit = match p.get("limit") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(n) if n > 0 => Some(n.min(usize::MAX as u64) as usize),
                    _ => return Err(invalid("\"limit\" must be a whole number > 0".into())),
                },
            };
            Command::GetLogs(LogQuery {
                service: service(false)?,
                limit,
                after_seq: seq("after_seq")?,
                before_seq: seq("before_seq")?,
            })
        }
        other => return Err(("unknown_command", format!("unknown command \"{other}\""))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON inside a wire frame.
    fn payload(f: &Frame) -> Value {
        let start = match f[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        serde_json::from_slice(&f[start..]).unwrap()
    }

    fn sample(name: &str) -> Value {
        let path = format!("{}/spec/samples/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn frames_match_the_spec_samples() {
        let hello = payload(&hello("3f0c8a52-6c2e-4d0e-9a57-2b1d4f7e9c10"));
        assert_eq!(hello, sample("hello"));
        let st = status_event("api", "stopping", "2026-11-27T14:55:21.123Z");
        assert_eq!(payload(&st), sample("service_status"));
        assert_eq!(payload(&ack("7", &Ok(()))), sample("ack_accepted"));
        let busy = Failure::new("service_busy", "service \"api\" is stopping");
        assert_eq!(payload(&ack("8", &Err(busy))), sample("ack_rejected"));
        let ok = Ok(json!({"service": "api", "status": "running"}));
        assert_eq!(payload(&result("7", &ok)), sample("result_service"));
        let failed = Failure {
            code: "service_failed",
            message: "cannot start now (still stopping): api".into(),
            failed_services: Some(vec!["api".into()]),
        };
        assert_eq!(payload(&result("10", &Err(failed))), sample("result_failed"));
        assert_eq!(
            payload(&error(Some("11"), "missing_name", "command has no \"name\"")),
            sample("error")
        );
        let mut lines = crate::logs::Lines::default();
        lines.push("GET /health 200");
        let (ready, stderr) = (crate::bus::Status::Ready, crate::bus::Stream::Stderr);
        let b = Batch::sample(ready, stderr, 1_795_791_321_000_001, lines);
        let mut buf = Vec::new();
        let log = log_event(&b, 0, &BatchJson::new(&b, "api"), &mut buf);
        assert_eq!(payload(&log), sample("log"));
        let entry = sample("result_logs")["payload"]["data"]["entries"][0].to_string();
        let page = logs_result("9", entry.as_bytes(), false, 500);
        assert_eq!(payload(&page), sample("result_logs"));
    }

    #[test]
    fn sample_commands_parse() {
        let get_logs = sample("command_get_logs").to_string();
        let Incoming::Command { id, cmd: Command::GetLogs(q) } = parse_incoming(&get_logs) else {
            panic!("not get_logs")
        };
        assert_eq!(id, "12");
        assert_eq!((q.limit, q.before_seq), (Some(100), Some(1_795_791_321_000_500)));
        let snap = sample("command_null_payload").to_string();
        assert_eq!(
            parse_incoming(&snap),
            Incoming::Command { id: "13".into(), cmd: Command::GetSnapshot }
        );
    }

    #[test]
    fn frames_carry_the_right_length_header() {
        for n in [0usize, 125, 126, 65_535, 65_536] {
            let f = text_frame(&vec![b'x'; n]);
            assert_eq!(f[0], 0x81);
            let (len, head) = match f[1] {
                126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
                127 => (u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize, 10),
                l => (l as usize, 2),
            };
            assert_eq!((len, f.len() - head), (n, n));
        }
    }

    fn code(text: &str) -> &'static str {
        match parse_incoming(text) {
            Incoming::Error { code, .. } | Incoming::Reject { code, .. } => code,
            Incoming::Command { .. } => "ok",
        }
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
        assert_eq!(
            code(r#"{"type":"command","id":"1","name":"get_logs","payload":{"limit":0}}"#),
            "invalid_payload"
        );
        assert_eq!(
            code(r#"{"type":"command","id":"1","name":"get_logs","payload":{"after_seq":-1}}"#),
            "invalid_payload"
        );
        assert_eq!(
            code(r#"{"type":"command","id":"1","name":"start_service"}"#),
            "invalid_payload"
        );
    }

    #[test]
    fn null_absent_and_empty_payloads_mean_the_same() {
        for p in ["", r#","payload":null"#, r#","payload":{}"#] {
            let t = format!(r#"{{"type":"command","id":"7","name":"get_snapshot"{p}}}"#);
            assert_eq!(
                parse_incoming(&t),
                Incoming::Command { id: "7".into(), cmd: Command::GetSnapshot }
            );
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let t = r#"{"type":"command","id":"1","name":"get_logs","x":1,
                    "payload":{"service":"api","limit":5,"after_seq":3,"extra":true}}"#;
        let Incoming::Command { cmd: Command::GetLogs(q), .. } = parse_incoming(t) else {
            panic!("not a command")
        };
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.after_seq, Some(3));
    }
}
