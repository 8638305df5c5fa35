//! `flowlayer incidents [SERVICE] [--open]`: the guard's incidents, oldest
//! first (guard.md section 3).

use super::Session;
use crate::args::{Args, Output};
use crate::error::CliError;
use crate::out::{Cell, Out, Table, DIM, RED};
use crate::when::clock;
use flowlayer_protocol::{Command, Incident, IncidentQuery, Incidents};
use serde::Serialize;

#[derive(Serialize)]
struct Doc {
    incidents: Vec<Incident>,
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let mut s = Session::open(args)?;
    s.check(&args.names)?;
    let q = IncidentQuery {
        service: args.names.first().cloned(),
        limit: None,
        open: args.open.then_some(true),
    };
    let data: Incidents = s.call_as(&Command::GetIncidents(q), "incidents")?;
    s.close();
    if args.output == Output::Json {
        return out.json(&Doc { incidents: data.incidents });
    }
    if data.incidents.is_empty() {
        let which = if args.open { "open incidents" } else { "incidents" };
        return out.line(&format!("no {which}"));
    }
    let mut t = Table::new(vec!["OPENED", "SERVICE", "RULE", "ACTION", "STATE", "SUMMARY"]);
    for i in &data.incidents {
        let action = if i.dry_run {
            format!("alert (dry run: {})", word(&i.action))
        } else {
            word(&i.action)
        };
        let state = match &i.closed_at {
            None => Cell::colored("open", RED),
            Some(at) => Cell::plain(format!("closed {}", clock(at))),
        };
        let mut summary = i.summary.clone();
        if let Some(o) = &i.outcome {
            summary.push_str(&format!(" → {o}"));
        }
        t.rows.push(vec![
            Cell::colored(clock(&i.opened_at), DIM),
            Cell::plain(i.service.clone()),
            Cell::plain(word(&i.rule)),
            Cell::plain(action),
            state,
            Cell::plain(summary),
        ]);
    }
    out.table(&t)
}
