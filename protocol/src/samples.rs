//! The samples in `spec/samples`, one per message shape: each reads into this
//! crate's types and writes back to the same bytes (spec/protocol.md, "Samples").

use crate::data::*;
use crate::message::{ResultPayload, ServerMessage};
use crate::parse::{parse_incoming, Incoming};
use crate::words::CommandName;
use serde_json::Value;

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/samples")
}

fn sample(name: &str) -> String {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.trim_end().to_string()
}

/// How a result's data reads, by the command it answers.
type DataAs = fn(&ResultPayload) -> Option<ResultData>;

/// Every server message sample, and for results the type of their data.
const SERVER: &[(&str, Option<DataAs>)] = &[
    ("hello", None),
    ("snapshot", None),
    ("snapshot_restarts", None),
    ("snapshot_kinds", None),
    ("service_status", None),
    ("service_status_restart_pending", None),
    ("log", None),
    ("service_stats", None),
    ("incident", None),
    ("ack_accepted", None),
    ("ack_rejected", None),
    ("error", None),
    ("error_invalid_id", None),
    ("result_failed", None),
    ("result_snapshot", Some(|p| p.data_as().map(ResultData::Snapshot))),
    ("result_logs", Some(|p| p.data_as().map(ResultData::Logs))),
    ("result_logs_history", Some(|p| p.data_as().map(ResultData::Logs))),
    ("result_service", Some(|p| p.data_as().map(ResultData::Service))),
    ("result_all", Some(|p| p.data_as().map(ResultData::All))),
    ("result_stats", Some(|p| p.data_as().map(ResultData::Stats))),
    ("result_watch_stats", Some(|p| p.data_as().map(ResultData::Empty))),
    ("result_timeline", Some(|p| p.data_as().map(ResultData::Timeline))),
    ("result_incidents", Some(|p| p.data_as().map(ResultData::Incidents))),
];

const COMMANDS: &[&str] = &[
    "command_get_logs",
    "command_null_payload",
    "command_get_stats",
    "command_watch_stats",
    "command_get_timeline",
    "command_get_incidents",
];

/// A message as read, with its result data (if any) in the command's type.
fn typed(msg: ServerMessage, data_as: Option<DataAs>) -> ServerMessage<ResultData> {
    match msg {
        ServerMessage::Event(e) => ServerMessage::Event(e),
        ServerMessage::Ack { id, payload } => ServerMessage::Ack { id, payload },
        ServerMessage::Error { id, payload } => ServerMessage::Error { id, payload },
        ServerMessage::Result { id, payload } => {
            let data = data_as.and_then(|f| f(&payload));
            assert_eq!(data.is_some(), payload.data.is_some(), "result {id}: data as typed");
            let ResultPayload { ok, error, failed_services, .. } = payload;
            ServerMessage::Result {
                id,
                payload: ResultPayload { ok, data, error, failed_services },
            }
        }
    }
}

#[test]
fn every_server_sample_reads_and_writes_back_byte_for_byte() {
    for (name, data_as) in SERVER {
        let text = sample(name);
        let msg = ServerMessage::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(typed(msg, *data_as).to_json(), text, "{name}");
    }
}

#[test]
fn every_command_sample_parses_and_writes_back() {
    for name in COMMANDS {
        let text = sample(name);
        let Incoming::Command { id, cmd } = parse_incoming(&text, &CommandName::ALL) else {
            panic!("{name}: {:?}", parse_incoming(&text, &CommandName::ALL))
        };
        assert_eq!(cmd.to_json(&id), text, "{name}");
    }
}

#[test]
fn every_file_in_spec_samples_is_tested() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_string())
        .collect();
    files.sort();
    let mut known: Vec<String> =
        SERVER.iter().map(|(n, _)| n).chain(COMMANDS).map(|n| n.to_string()).collect();
    known.sort();
    assert_eq!(files, known);
}

#[test]
fn samples_hold_what_the_spec_says() {
    let ServerMessage::Event(crate::Event::Log(log)) =
        ServerMessage::from_json(&sample("log")).unwrap()
    else {
        panic!("log sample")
    };
    assert_eq!(crate::read_log_event(&sample("log")), Some(log.clone()));
    assert_eq!(
        (log.seq, log.stream, log.phase),
        (1795791321000001, crate::Stream::Stderr, crate::Status::Ready)
    );
    let Incoming::Command { id, cmd: crate::Command::GetLogs(q) } =
        parse_incoming(&sample("command_get_logs"), &CommandName::V1)
    else {
        panic!("get_logs sample")
    };
    assert_eq!(id, "12");
    assert_eq!((q.limit, q.before_seq), (Some(100), Some(1_795_791_321_000_500)));
    // The V1 seven first, then the extensions the sample server serves.
    let hello: Value = serde_json::from_str(&sample("hello")).unwrap();
    let caps: Vec<CommandName> = hello["payload"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| CommandName::from_word(c.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(caps[..7], CommandName::V1);
    for name in SERVER.iter().map(|(n, _)| n).filter(|n| **n != "log") {
        assert_eq!(crate::read_log_event(&sample(name)), None, "{name} is not a log event");
    }
}
