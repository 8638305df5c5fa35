//! Protocol frames as this server sends them: messages of the protocol crate
//! (`flowlayer_protocol`), each encoded once as a complete WebSocket text frame
//! (header and JSON) that every session it goes to shares. Pure; used by the
//! state thread (events and answers) and the session threads (`hello`, answers
//! to messages that are not valid commands).
//!
//! Most frames are serde's encoding of `ServerMessage`. Two hot paths are put
//! together by hand from parts encoded beforehand: a `log` event per line, and
//! a `get_logs` result from entries encoded once. Tests hold their bytes to
//! serde's encoding of the same message.

use crate::bus::{Frame, CAPABILITIES};
use crate::logs::{Batch, BatchJson};
use crate::state::Extra;
use flowlayer_protocol::{
    logs_result_head, logs_result_tail, Ack, ErrorBody, Event, Hello, ResultData, ResultPayload,
    ServerMessage, ServiceStatus, Snapshot, Status, LOG_EVENT_HEAD, LOG_EVENT_TAIL,
    PROTOCOL_VERSION, SERVER_NAME,
};

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

fn message(m: &ServerMessage<ResultData>) -> Frame {
    text_frame(m.to_json().as_bytes())
}

pub fn event(e: Event) -> Frame {
    message(&ServerMessage::Event(e))
}

/// The first frame of every session.
pub fn hello(instance_id: &str) -> Frame {
    event(Event::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        server: SERVER_NAME.into(),
        capabilities: CAPABILITIES.iter().map(|c| c.as_str().to_string()).collect(),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        instance_id: Some(instance_id.into()),
    }))
}

/// The second frame of every session.
pub fn snapshot(s: Snapshot) -> Frame {
    event(Event::Snapshot(s))
}

/// A `service_status` event; the **Extension** fields only where they apply.
pub fn status_event(service: &str, status: Status, timestamp: String, extra: &Extra) -> Frame {
    event(Event::ServiceStatus(ServiceStatus {
        service: service.into(),
        status,
        timestamp,
        restarts: extra.restarts,
        restart_in_ms: extra.restart_in_ms,
    }))
}

/// Line `i` of a batch as a `log` event, encoded without building a message
/// first (hot path: once per line and session-shared).
pub fn log_event(b: &Batch, i: usize, json: &BatchJson, out: &mut Vec<u8>) -> Frame {
    out.clear();
    out.extend_from_slice(LOG_EVENT_HEAD.as_bytes());
    json.write(b, i, out);
    out.extend_from_slice(LOG_EVENT_TAIL.as_bytes());
    text_frame(out)
}

/// An `ack`: accepted, or rejected with `error`.
pub fn ack(id: String, error: Option<ErrorBody>) -> Frame {
    let payload = match error {
        None => Ack::accepted(),
        Some(e) => Ack::rejected(e),
    };
    message(&ServerMessage::Ack { id, payload })
}

pub fn result(id: String, payload: ResultPayload<ResultData>) -> Frame {
    message(&ServerMessage::Result { id, payload })
}

/// A successful `get_logs` result from entries already encoded as JSON objects
/// and joined by commas (hot path: the entries are copied once, into the frame),
/// with the **Extension** fields that say where the history on disk fell short.
pub fn logs_result(
    id: &str,
    entries_json: &[u8],
    truncated: bool,
    effective_limit: u64,
    damaged: Option<u64>,
    history_error: Option<&str>,
) -> Frame {
    let head = logs_result_head(id);
    let tail = logs_result_tail(truncated, effective_limit, damaged, history_error);
    text_frame_of(&[head.as_bytes(), entries_json, tail.as_bytes()])
}

/// An `error` message, with the id of the bad message when it had a usable one.
pub fn error(id: Option<String>, error: ErrorBody) -> Frame {
    message(&ServerMessage::Error { id, payload: error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Stream;
    use crate::logs::Lines;
    use flowlayer_protocol::{
        CommandName, ErrorCode, LogEntry, LogsPage, ServiceResult, ServiceState,
    };

    /// The JSON inside a wire frame, as text.
    fn text(f: &Frame) -> &str {
        let start = match f[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        std::str::from_utf8(&f[start..]).unwrap()
    }

    fn sample(name: &str) -> String {
        let path = format!("{}/spec/samples/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().trim_end().to_string()
    }

    fn batch(lines: &[&str]) -> Batch {
        let mut l = Lines::default();
        lines.iter().for_each(|s| l.push(s));
        Batch::sample(Status::Ready, Stream::Stderr, 1_795_791_321_000_001, l)
    }

    /// Line `i` of `b` as the protocol type, with serde's help only.
    fn entry(b: &Batch, i: usize, service: &str) -> LogEntry {
        LogEntry {
            seq: b.seq(i),
            service: service.into(),
            phase: b.phase,
            stream: b.stream,
            message: b.message(i).into(),
            timestamp: crate::logs::format_timestamp(b.ts_ms),
        }
    }

    #[test]
    fn frames_are_the_spec_samples_byte_for_byte() {
        let hello = hello("3f0c8a52-6c2e-4d0e-9a57-2b1d4f7e9c10");
        assert_eq!(text(&hello), sample("hello"));
        let ts = || "2026-11-27T14:55:21.123Z".to_string();
        let st = status_event("api", Status::Stopping, ts(), &Extra::default());
        assert_eq!(text(&st), sample("service_status"));
        let pending = Extra { restarts: Some(2), restart_in_ms: Some(2000) };
        let st = status_event("worker", Status::Failed, ts(), &pending);
        assert_eq!(text(&st), sample("service_status_restart_pending"));
        let snap = snapshot(Snapshot {
            services: vec![
                ServiceState::new("api", Status::Ready),
                ServiceState::new("db", Status::Running),
                ServiceState::new("web", Status::Unknown),
            ],
        });
        assert_eq!(text(&snap), sample("snapshot"));
        assert_eq!(text(&ack("7".into(), None)), sample("ack_accepted"));
        let busy = ErrorBody::new(ErrorCode::ServiceBusy, "service \"api\" is stopping");
        assert_eq!(text(&ack("8".into(), Some(busy))), sample("ack_rejected"));
        let data =
            ResultData::Service(ServiceResult { service: "api".into(), status: Status::Running });
        assert_eq!(text(&result("7".into(), ResultPayload::ok(data))), sample("result_service"));
        let failed =
            ErrorBody::new(ErrorCode::ServiceFailed, "cannot start now (still stopping): api");
        let failed = ResultPayload::failed(failed, Some(vec!["api".into()]));
        assert_eq!(text(&result("10".into(), failed)), sample("result_failed"));
        let bad = ErrorBody::new(ErrorCode::MissingName, "command has no \"name\"");
        assert_eq!(text(&error(Some("11".into()), bad)), sample("error"));
        // The guard's event goes out as its protocol type encodes.
        let incident: serde_json::Value = serde_json::from_str(&sample("incident")).unwrap();
        let incident = serde_json::from_value(incident["payload"].clone()).unwrap();
        assert_eq!(text(&event(Event::Incident(Box::new(incident)))), sample("incident"));
        let b = batch(&["GET /health 200"]);
        let log = log_event(&b, 0, &BatchJson::new(&b, "api"), &mut Vec::new());
        assert_eq!(text(&log), sample("log"));
        let b = Batch { stream: Stream::Stdout, ..batch(&["listening"]) };
        let mut entry_json = Vec::new();
        BatchJson::new(&b, "api").write(&b, 0, &mut entry_json);
        let page = logs_result("9", &entry_json, false, 500, None, None);
        assert_eq!(text(&page), sample("result_logs"));
        let why = "cannot read /srv/logs/api.jsonl: Input/output error (os error 5)";
        let page = logs_result("9", &entry_json, true, 500, Some(1), Some(why));
        assert_eq!(text(&page), sample("result_logs_history"));
    }

    #[test]
    fn hello_announces_exactly_the_commands_the_server_serves() {
        let v: serde_json::Value = serde_json::from_str(text(&hello("i"))).unwrap();
        let names: Vec<&str> = CAPABILITIES.iter().map(|c| c.as_str()).collect();
        assert_eq!(v["payload"]["capabilities"], serde_json::json!(names));
        // Every command of the protocol, V1 and the extensions, is served.
        assert_eq!(CAPABILITIES, CommandName::ALL);
    }

    /// Lines with every byte JSON must escape, and some it must not.
    const AWKWARD: [&str; 6] = [
        "",
        "plain ascii text that is longer than sixteen bytes",
        "quote \" backslash \\ slash / del \u{7f} é ✓ \u{2028}",
        "\x1b[32mgreen\x1b[0m\ttab\rcr\u{8}bs\u{c}ff",
        "\u{0}\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\u{9}\u{b}\u{c}\u{d}\u{e}\u{f}\u{10}",
        "\u{11}\u{12}\u{13}\u{14}\u{15}\u{16}\u{17}\u{18}\u{19}\u{1a}\u{1b}\u{1c}\u{1d}\u{1e}\u{1f}",
    ];

    #[test]
    fn a_hand_encoded_log_event_is_what_serde_writes() {
        let b = batch(&AWKWARD);
        let json = BatchJson::new(&b, "we\"ird\\svc");
        let mut buf = Vec::new();
        for i in 0..b.len() {
            let by_hand = log_event(&b, i, &json, &mut buf);
            let msg: ServerMessage<ResultData> =
                ServerMessage::Event(Event::Log(entry(&b, i, "we\"ird\\svc")));
            assert_eq!(text(&by_hand), msg.to_json(), "line {i}");
        }
    }

    #[test]
    fn a_hand_assembled_logs_result_is_what_serde_writes() {
        let b = batch(&AWKWARD);
        let json = BatchJson::new(&b, "api");
        for (n, truncated) in [(0, true), (1, false), (AWKWARD.len(), true)] {
            let mut joined = Vec::new();
            for i in 0..n {
                if i > 0 {
                    joined.push(b',');
                }
                json.write(&b, i, &mut joined);
            }
            let id = "id \"x\"";
            let by_hand = logs_result(id, &joined, truncated, 1000, None, None);
            let entries = (0..n).map(|i| entry(&b, i, "api")).collect();
            let page = LogsPage {
                entries,
                truncated,
                effective_limit: 1000,
                damaged: None,
                history_error: None,
            };
            let msg = ServerMessage::Result {
                id: id.into(),
                payload: ResultPayload::ok(ResultData::Logs(page)),
            };
            assert_eq!(text(&by_hand), msg.to_json(), "{n} entries");
        }
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
}
