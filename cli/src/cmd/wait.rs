//! `flowlayer wait (SERVICE... | --all) [--timeout 60s]`: returns when every
//! service has reached what it starts towards: `ready` with a probe,
//! `running` without one, done for a oneshot (spec/cli.md).
//!
//! Reads the snapshot, then follows `service_status` events: no polling. A
//! service that fails with no restart pending ends the wait at once (exit
//! 1): it will not come up by itself. The deadline passing is exit 3, with
//! each service still pending and why.

use super::Session;
use crate::args::{Args, Output};
use crate::error::CliError;
use crate::out::{status_color, Out};
use flowlayer_protocol::{Command, Event, ServiceState, Status, Timeline, TimelineQuery};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `--timeout` when none is given (stacks.md section 3).
pub const WAIT_DEFAULT: Duration = Duration::from_secs(60);

#[derive(Serialize)]
struct Row {
    name: String,
    status: Status,
    ready: bool,
}

#[derive(Serialize)]
struct Doc {
    ok: bool,
    services: Vec<Row>,
}

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let mut s = Session::open(args)?;
    let names = if args.all {
        s.names()
    } else {
        s.check(&args.names)?;
        args.names.clone()
    };
    let timeout = args.timeout.unwrap_or(WAIT_DEFAULT);
    let (states, outcome) = until_settled(&mut s, &names, timeout);
    s.close();
    let rows: Vec<Row> = names
        .iter()
        .filter_map(|n| states.get(n))
        .map(|st| Row { name: st.name.clone(), status: st.status, ready: st.is_settled() })
        .collect();
    if args.output == Output::Json {
        out.json(&Doc { ok: outcome.is_ok(), services: rows })?;
    } else if outcome.is_ok() {
        for r in &rows {
            out.line(&format!(
                "{}: {}",
                r.name,
                out.paint(status_color(r.status), r.status.as_str())
            ))?;
        }
    }
    outcome
}

type States = BTreeMap<String, ServiceState>;

/// Follows the services until all of `names` are settled; the states as
/// they were at the end, and whether that is success.
pub fn until_settled(
    s: &mut Session,
    names: &[String],
    timeout: Duration,
) -> (States, Result<(), CliError>) {
    let mut states: States = s.services().iter().map(|st| (st.name.clone(), st.clone())).collect();
    let deadline = Instant::now() + timeout;
    loop {
        let mut pending = Vec::new();
        for n in names {
            let Some(st) = states.get(n) else { continue };
            if st.is_settled() {
                continue;
            }
            if st.status == Status::Failed && st.restart_in_ms.is_none() {
                let why = why_of(s, n).unwrap_or_else(|| "failed".into());
                return (states, Err(CliError::ServiceFailed { service: n.clone(), why }));
            }
            pending.push(n.clone());
        }
        if pending.is_empty() {
            return (states, Ok(()));
        }
        match s.conn.next_event(Some(deadline)) {
            Ok(Some(Event::ServiceStatus(e))) => {
                if let Some(st) = states.get_mut(&e.service) {
                    st.status = e.status;
                    st.restart_in_ms = e.restart_in_ms;
                    if e.restarts.is_some() {
                        st.restarts = e.restarts;
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let pending = pending
                    .iter()
                    .map(|n| {
                        let status = states.get(n).map(|st| st.status.as_str()).unwrap_or("?");
                        match why_of(s, n) {
                            Some(why) => format!("{n} ({why})"),
                            None => format!("{n} ({status})"),
                        }
                    })
                    .collect();
                return (states, Err(CliError::TimedOut { after: timeout, pending }));
            }
            Err(e) => {
                let e = CliError::from_client(&s.stack.name, "wait", e);
                return (states, Err(e));
            }
        }
    }
}

/// The server's one sentence on why `name` is not up, when it serves timelines.
fn why_of(s: &mut Session, name: &str) -> Option<String> {
    if !s.conn.serves(flowlayer_protocol::CommandName::GetTimeline) {
        return None;
    }
    let q = TimelineQuery { service: Some(name.to_string()), limit: Some(1) };
    let t: Timeline = s.call_as(&Command::GetTimeline(q), "wait").ok()?;
    t.why
}
