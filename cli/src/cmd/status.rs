//! `flowlayer status`: the stack's services, one row each: status, restarts,
//! cpu, memory, uptime and why (stats and why when the server serves
//! `get_stats` and `get_timeline`, health.md sections 2-3).
//!
//! One session, and one round trip after the snapshot: `get_stats` and a
//! `get_timeline` per service go out together.

use super::Session;
use crate::args::{Args, Output};
use crate::error::CliError;
use crate::out::{bytes, status_color, Cell, Out, Table};
use crate::when::human;
use flowlayer_protocol::{Command, CommandName, Stats, Status, Timeline, TimelineQuery};
use serde::Serialize;
use std::time::Duration;

/// One row, as `-o json` prints it: every key always there, `null` when the
/// server does not give it.
#[derive(Serialize)]
struct Row {
    name: String,
    status: Status,
    restarts: Option<u32>,
    cpu: Option<f64>,
    rss_bytes: Option<u64>,
    processes: Option<u32>,
    uptime_ms: Option<u64>,
    why: Option<String>,
}

#[derive(Serialize)]
struct StackInfo {
    name: String,
    instance_id: Option<String>,
    server_version: Option<String>,
}

#[derive(Serialize)]
struct Doc {
    stack: StackInfo,
    services: Vec<Row>,
}

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let mut s = Session::open(args)?;
    let mut rows: Vec<Row> = s
        .services()
        .iter()
        .map(|st| Row {
            name: st.name.clone(),
            status: st.status,
            restarts: st.restarts,
            cpu: None,
            rss_bytes: None,
            processes: None,
            uptime_ms: None,
            why: None,
        })
        .collect();
    let stats = s.conn.serves(CommandName::GetStats);
    let timeline = s.conn.serves(CommandName::GetTimeline);
    let mut cmds = Vec::new();
    if stats {
        cmds.push(Command::GetStats);
    }
    if timeline {
        for r in &rows {
            let q = TimelineQuery { service: Some(r.name.clone()), limit: Some(1) };
            cmds.push(Command::GetTimeline(q));
        }
    }
    let mut replies = s.call_many(&cmds, "status")?.into_iter();
    if stats {
        let data = replies.next().and_then(|r| r.ok()).and_then(|p| p.data_as::<Stats>());
        for st in data.map(|d| d.services).unwrap_or_default() {
            if let Some(r) = rows.iter_mut().find(|r| r.name == st.name) {
                r.cpu = Some(st.cpu);
                r.rss_bytes = Some(st.rss_bytes);
                r.processes = Some(st.processes);
                r.uptime_ms = Some(st.uptime_ms);
                r.restarts = Some(st.restarts);
            }
        }
    }
    if timeline {
        for r in rows.iter_mut() {
            let t = replies.next().and_then(|r| r.ok()).and_then(|p| p.data_as::<Timeline>());
            r.why = t.and_then(|t| t.why);
        }
    }
    let info = StackInfo {
        name: s.stack.name.clone(),
        instance_id: s.conn.hello().instance_id.clone(),
        server_version: s.conn.hello().server_version.clone(),
    };
    s.close();
    if args.output == Output::Json {
        return out.json(&Doc { stack: info, services: rows });
    }
    let restarts = rows.iter().any(|r| r.restarts.is_some());
    let mut headers = vec!["SERVICE", "STATUS"];
    if restarts {
        headers.push("RESTARTS");
    }
    if stats {
        headers.extend(["CPU", "MEM", "UPTIME"]);
    }
    if timeline {
        headers.push("WHY");
    }
    let mut t = Table::new(headers);
    if restarts {
        t.right.push(2);
    }
    for r in rows {
        let mut row =
            vec![Cell::plain(r.name), Cell::colored(r.status.as_str(), status_color(r.status))];
        if restarts {
            row.push(Cell::plain(r.restarts.map(|n| n.to_string()).unwrap_or_default()));
        }
        if stats {
            let up = r.status.is_up();
            let or_dash =
                |v: Option<String>| Cell::plain(v.filter(|_| up).unwrap_or_else(|| "-".into()));
            row.push(or_dash(r.cpu.map(|c| format!("{c:.2}"))));
            row.push(or_dash(r.rss_bytes.map(bytes)));
            row.push(or_dash(r.uptime_ms.map(|ms| human(Duration::from_millis(ms)))));
        }
        if timeline {
            row.push(Cell::plain(r.why.unwrap_or_default()));
        }
        t.rows.push(row);
    }
    out.table(&t)
}
