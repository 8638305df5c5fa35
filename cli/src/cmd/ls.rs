//! `flowlayer ls [--all]`: the running stacks, from the runtime directory
//! alone (no server is asked, so it stays fast with many stacks); `--all`
//! adds the recent ones that no longer run.

use crate::args::{Args, Output};
use crate::error::CliError;
use crate::out::{Cell, Out, Table, DIM};
use crate::when::now_ms;
use flowlayer_runtime::localtime::{clock_label, local_zone, parse_rfc3339_ms};
use serde::Serialize;
use std::path::PathBuf;

/// One stack, as `-o json` prints it: every key always there.
#[derive(Serialize)]
struct Row {
    name: String,
    /// `running`, or `stopped` (recent, `--all`).
    state: &'static str,
    config: PathBuf,
    dir: Option<PathBuf>,
    pid: Option<u32>,
    started_at: Option<String>,
    stopped_at: Option<String>,
    instance_id: Option<String>,
    version: Option<String>,
    socket: Option<PathBuf>,
    addr: Option<String>,
}

#[derive(Serialize)]
struct Doc {
    stacks: Vec<Row>,
}

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    let running = flowlayer_runtime::running();
    let mut rows: Vec<Row> = running
        .into_iter()
        .map(|r| Row {
            name: r.name,
            state: "running",
            config: r.config,
            dir: Some(r.dir),
            pid: Some(r.pid),
            started_at: Some(r.started_at),
            stopped_at: None,
            instance_id: Some(r.instance_id),
            version: Some(r.version),
            socket: r.socket,
            addr: r.addr,
        })
        .collect();
    if args.all {
        let recent: Vec<Row> = flowlayer_runtime::recent()
            .into_iter()
            .filter(|r| !rows.iter().any(|run| run.config == r.config))
            .map(|r| Row {
                name: r.name,
                state: "stopped",
                config: r.config,
                dir: None,
                pid: None,
                started_at: None,
                stopped_at: Some(r.stopped_at),
                instance_id: None,
                version: None,
                socket: None,
                addr: None,
            })
            .collect();
        rows.extend(recent);
    }
    if args.output == Output::Json {
        return out.json(&Doc { stacks: rows });
    }
    if rows.is_empty() {
        // Not an error: nothing runs, and that is the answer.
        return out.line(if args.all {
            "no running or recent stacks"
        } else {
            "no running stacks"
        });
    }
    let zone = local_zone();
    let now = now_ms();
    let when = |ts: &Option<String>| {
        ts.as_deref()
            .and_then(|t| parse_rfc3339_ms(t).map(|ms| clock_label(&zone, ms, now)))
            .unwrap_or_default()
    };
    let mut headers = vec!["NAME"];
    if args.all {
        headers.push("STATE");
    }
    // With stopped stacks listed too, the time is when each got its state.
    headers.extend(["PID", if args.all { "SINCE" } else { "STARTED" }, "ADDRESS", "CONFIG"]);
    let mut t = Table::new(headers);
    t.right.push(if args.all { 2 } else { 1 });
    for r in rows {
        let mut row = vec![Cell::plain(r.name)];
        if args.all {
            row.push(match r.state {
                "running" => Cell::colored("running", "\x1b[32m"),
                s => Cell::colored(s, DIM),
            });
        }
        row.push(Cell::plain(r.pid.map(|p| p.to_string()).unwrap_or_default()));
        row.push(match r.state {
            "running" => Cell::plain(when(&r.started_at)),
            _ => Cell::plain(when(&r.stopped_at)),
        });
        row.push(Cell::plain(r.addr.unwrap_or_else(|| "-".into())));
        row.push(Cell::plain(r.config.display().to_string()));
        t.rows.push(row);
    }
    out.table(&t)
}
