//! `flowlayer start|stop|restart (SERVICE... | --all)`: act, and return when
//! the action is done (protocol.md: `start_service` answers once the process
//! runs, `stop_service` once it is gone).
//!
//! Several services: the commands go out together and run concurrently on
//! the server. `--all`: `start_all` / `stop_all`, which run wave by wave;
//! `stop --all` returns when every service has stopped, `start --all` once
//! the sequence is under way (readiness is `flowlayer wait`'s job), and
//! `restart --all` is `stop --all`, then `start --all`, so the waves keep
//! their order.

use super::{Session, COMMAND_TIMEOUT};
use crate::args::{Args, Output, Verb};
use crate::error::CliError;
use crate::out::{status_color, Out};
use flowlayer_client::{data_of, ClientError};
use flowlayer_protocol::{AllResult, Command, ErrorBody, Event, ServiceResult, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Serialize)]
struct Outcome {
    name: String,
    ok: bool,
    /// The status the action left it in, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

#[derive(Serialize)]
struct Doc {
    action: &'static str,
    services: Vec<Outcome>,
}

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let mut s = Session::open(args)?;
    let outcomes = if args.all {
        all(&mut s, args.verb)?
    } else {
        s.check(&args.names)?;
        each(&mut s, args.verb, &args.names)?
    };
    s.close();
    let failed: Vec<(String, String)> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| {
            let msg = o.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
            (o.name.clone(), msg)
        })
        .collect();
    if args.output == Output::Json {
        out.json(&Doc { action: args.verb.word(), services: outcomes })?;
    } else {
        for o in outcomes.iter().filter(|o| o.ok) {
            let st = o.status.unwrap_or(Status::Unknown);
            out.line(&format!("{}: {}", o.name, out.paint(status_color(st), st.as_str())))?;
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::ActionFailed { failures: failed })
    }
}

fn each(s: &mut Session, verb: Verb, names: &[String]) -> Result<Vec<Outcome>, CliError> {
    let cmds: Vec<Command> = names
        .iter()
        .map(|n| match verb {
            Verb::Start => Command::StartService(n.clone()),
            Verb::Stop => Command::StopService(n.clone()),
            _ => Command::RestartService(n.clone()),
        })
        .collect();
    let replies = s.call_many(&cmds, verb.word())?;
    let mut outcomes = Vec::new();
    for (name, reply) in names.iter().zip(replies) {
        let cmd = cmds[outcomes.len()].name();
        let o = match reply.and_then(|p| data_of::<ServiceResult>(cmd, p)) {
            Ok(r) => Outcome { name: name.clone(), ok: true, status: Some(r.status), error: None },
            Err(e) => Outcome { name: name.clone(), ok: false, status: None, error: Some(body(e)) },
        };
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// What an error says, as a protocol error body.
fn body(e: ClientError) -> ErrorBody {
    match e {
        ClientError::Rejected { error, .. } | ClientError::Failed { error, .. } => error,
        other => ErrorBody::new(flowlayer_protocol::ErrorCode::InternalError, other.to_string()),
    }
}

fn all(s: &mut Session, verb: Verb) -> Result<Vec<Outcome>, CliError> {
    let mut statuses: BTreeMap<String, Status> =
        s.services().iter().map(|st| (st.name.clone(), st.status)).collect();
    let mut outcomes = BTreeMap::new();
    if verb != Verb::Start {
        let stopped = sequence(s, Command::StopAll, &mut outcomes)?;
        await_settled(s, &stopped, &mut statuses)?;
        for name in stopped {
            let st = statuses.get(&name).copied();
            outcomes.insert(name.clone(), Outcome { name, ok: true, status: st, error: None });
        }
    }
    if verb != Verb::Stop {
        let started = sequence(s, Command::StartAll, &mut outcomes)?;
        for name in started {
            // Under way: the status it has now (starting, or still waiting
            // for its wave).
            let st = statuses.get(&name).copied();
            outcomes.insert(name.clone(), Outcome { name, ok: true, status: st, error: None });
        }
    }
    Ok(outcomes.into_values().collect())
}

/// Runs `start_all` / `stop_all`; records the services it could not act on
/// as failed, returns those it acts on.
fn sequence(
    s: &mut Session,
    cmd: Command,
    outcomes: &mut BTreeMap<String, Outcome>,
) -> Result<Vec<String>, CliError> {
    let during = cmd.name().as_str();
    match s.conn.call(&cmd, COMMAND_TIMEOUT) {
        Ok(p) if p.ok => {
            let data: AllResult = data_of(cmd.name(), p)
                .map_err(|e| CliError::from_client(&s.stack.name, during, e))?;
            Ok(data.services)
        }
        Ok(p) => {
            let failed = p.failed_services.clone().unwrap_or_default();
            let error = p.error.clone().unwrap_or_else(|| {
                ErrorBody::new(flowlayer_protocol::ErrorCode::ServiceFailed, "failed")
            });
            for name in &failed {
                outcomes.insert(
                    name.clone(),
                    Outcome {
                        name: name.clone(),
                        ok: false,
                        status: None,
                        error: Some(error.clone()),
                    },
                );
            }
            let acted: Vec<String> = p
                .data_as::<AllResult>()
                .map(|d| d.services)
                .unwrap_or_default()
                .into_iter()
                .filter(|n| !failed.contains(n))
                .collect();
            Ok(acted)
        }
        Err(ClientError::Rejected { error, .. }) => {
            // Busy (boot or another sequence in progress): every service fails alike.
            for st in s.services() {
                outcomes.insert(
                    st.name.clone(),
                    Outcome {
                        name: st.name.clone(),
                        ok: false,
                        status: None,
                        error: Some(error.clone()),
                    },
                );
            }
            Ok(Vec::new())
        }
        Err(e) => Err(CliError::from_client(&s.stack.name, during, e)),
    }
}

/// Follows status events until none of `names` is running or stopping.
fn await_settled(
    s: &mut Session,
    names: &[String],
    statuses: &mut BTreeMap<String, Status>,
) -> Result<(), CliError> {
    let deadline = Instant::now() + COMMAND_TIMEOUT * 4;
    let busy = |st: &BTreeMap<String, Status>| {
        names.iter().any(|n| {
            matches!(
                st.get(n),
                Some(Status::Running | Status::Ready | Status::Starting | Status::Stopping)
            )
        })
    };
    while busy(statuses) {
        match s.conn.next_event(Some(deadline)) {
            Ok(Some(Event::ServiceStatus(e))) => {
                statuses.insert(e.service, e.status);
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let pending = names
                    .iter()
                    .filter(|n| {
                        statuses.get(*n).is_some_and(|st| st.is_up() || *st == Status::Stopping)
                    })
                    .cloned()
                    .collect();
                return Err(CliError::TimedOut { after: COMMAND_TIMEOUT * 4, pending });
            }
            Err(e) => return Err(CliError::from_client(&s.stack.name, "stop_all", e)),
        }
    }
    Ok(())
}
