//! `flowlayer why SERVICE`: the server's one sentence on why the service is
//! not up (or `ready`), then its last timeline entries (health.md section 3).

use super::Session;
use crate::args::{Args, Output};
use crate::error::CliError;
use crate::out::{Cell, Out, Table, DIM};
use crate::when::clock;
use flowlayer_protocol::{Command, Timeline, TimelineEntry, TimelineQuery};
use serde::Serialize;

/// Timeline entries shown under the sentence.
const ENTRIES: usize = 10;

#[derive(Serialize)]
struct Doc {
    service: String,
    why: Option<String>,
    entries: Vec<TimelineEntry>,
}

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let mut s = Session::open(args)?;
    s.check(&args.names)?;
    let service = args.names[0].clone();
    let q = TimelineQuery { service: Some(service.clone()), limit: Some(ENTRIES) };
    let t: Timeline = s.call_as(&Command::GetTimeline(q), "why")?;
    s.close();
    if args.output == Output::Json {
        return out.json(&Doc { service, why: t.why, entries: t.entries });
    }
    out.line(&format!("{service}: {}", t.why.as_deref().unwrap_or("(no reason given)")))?;
    let mut table = Table::new(vec!["TIME", "KIND", "MESSAGE"]);
    for e in &t.entries {
        let kind = serde_json::to_value(e.kind).ok();
        let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("?").to_string();
        table.rows.push(vec![
            Cell::colored(clock(&e.timestamp), DIM),
            Cell::plain(kind),
            Cell::plain(e.message.clone()),
        ]);
    }
    if !t.entries.is_empty() {
        out.line("")?;
        out.table(&table)?;
    }
    Ok(())
}
