//! The runaway guard (issue 13): W8, how long each rule takes to open its
//! incident once the program misbehaves; W1+guard, what the line rules cost
//! a flood.
//!
//! Detection: one server per run, one corpus program (fl-helper) started by a
//! gate once a session is connected; the latency runs from the program's own
//! start stamp (CLOCK_MONOTONIC, `--mark`) to the `incident` event reaching
//! the session. The cost: W1 with `repeat` and `rate` on (their defaults)
//! against W1 without a guard, interleaved run by run: the child's write
//! time, the time until every line is in the files, and the CPU time of the
//! state thread, where the rules run.

use crate::proc::{marks, mono_ns, work_dir, Client, Server};
use crate::workloads::{flood_run_with, repeats, row};
use crate::{Env, Row};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The sampling period of the resource rules' runs.
const SAMPLE_MS: u64 = 250;
/// The window of the windowed rules.
const WINDOW_MS: u64 = 2000;
/// How long a run waits for its incident.
const DETECT_WAIT: Duration = Duration::from_secs(30);

/// A rule, the program that breaks it, and the guard that watches it.
struct Case {
    rule: &'static str,
    /// The window the rule waits for (0: none, a single sample decides).
    window_ms: u64,
    args: &'static [&'static str],
    guard: Value,
    /// The service's own `guard` (over the top level's), if any.
    service: Option<Value>,
}

fn cases() -> Vec<Case> {
    let w = WINDOW_MS;
    let s = SAMPLE_MS;
    vec![
        Case {
            rule: "cpu",
            window_ms: w,
            args: &["spin"],
            guard: json!({"sampleMs": s, "cpu": {"above": 0.5, "forMs": w}}),
            service: None,
        },
        Case {
            rule: "memory",
            window_ms: 0,
            args: &["leak", "--mb-per-sec", "1000", "--max-mb", "300"],
            guard: json!({"sampleMs": s, "memory": {"aboveMb": 100}}),
            service: None,
        },
        Case {
            rule: "growth",
            window_ms: w,
            args: &["leak", "--mb-per-sec", "40", "--max-mb", "400"],
            guard: json!({"sampleMs": s, "growth": {"mbPerMin": 600, "forMs": w}}),
            service: None,
        },
        Case {
            rule: "processes",
            window_ms: 0,
            args: &["forker", "--max", "60", "--every-ms", "1"],
            guard: json!({"sampleMs": s, "processes": {"above": 30}}),
            service: None,
        },
        Case {
            rule: "repeat",
            window_ms: w,
            args: &["ticker", "--every-ms", "5"],
            guard: json!({"repeat": {"lines": 100, "withinMs": w, "share": 0.7}}),
            service: None,
        },
        Case {
            rule: "rate",
            window_ms: w,
            args: &["storm", "--per-sec", "20000"],
            guard: json!({"rate": {"linesPerSec": 5000, "forMs": w}}),
            service: None,
        },
        Case {
            rule: "runaway",
            window_ms: w,
            args: &["runaway"],
            guard: json!({"sampleMs": s, "cpu": {"above": 0.5, "forMs": w},
                          "repeat": {"lines": 100, "withinMs": w}, "runaway": {"action": "alert"}}),
            // Only the combination: its parts alert on their own otherwise.
            service: Some(json!({"cpu": false, "repeat": false})),
        },
    ]
}

/// One run of `case`: milliseconds from the program's start to its incident.
fn detect(env: &Env, case: &Case) -> f64 {
    let dir = work_dir(&format!("w8-{}", case.rule));
    let mark = dir.join("svc.mark");
    let mut cmd = vec![json!(env.helper)];
    cmd.extend(case.args.iter().map(|a| json!(a)));
    cmd.extend([json!("--mark"), json!(mark)]);
    let mut svc = json!({"cmd": cmd, "dependsOn": ["gate"]});
    if let Some(g) = &case.service {
        svc["guard"] = g.clone();
    }
    let gate = json!({"cmd": [env.helper, "watchfile", "--file", dir.join("go")],
                      "kind": "oneshot", "guard": false});
    let cfg = json!({"guard": case.guard, "services": {"gate": gate, "svc": svc}});
    let server = Server::start(&env.server, &dir, cfg);
    let mut c = Client::connect(&server.addr());
    let _ = c.ws.get_ref().set_read_timeout(Some(Duration::from_millis(200)));
    std::fs::write(dir.join("go"), "go").expect("go");
    let end = Instant::now() + DETECT_WAIT;
    let want = format!("\"rule\":\"{}\"", case.rule);
    let seen = loop {
        assert!(Instant::now() < end, "{}: no incident within {DETECT_WAIT:?}", case.rule);
        let Some(t) = c.next_or_timeout() else { continue };
        if t.starts_with("{\"type\":\"event\",\"name\":\"incident\"") && t.contains(&want) {
            break mono_ns();
        }
    };
    let start = started(&mark).expect("the program stamped its start");
    drop(c);
    server.stop();
    seen.saturating_sub(start) as f64 / 1e6
}

fn started(mark: &Path) -> Option<u128> {
    marks(mark).into_iter().find(|m| m.0 == "start").map(|m| m.2)
}

pub fn w8(env: &Env) -> Vec<Row> {
    let mut out = Vec::new();
    let reps = repeats(env, 5);
    for case in cases() {
        let lat: Vec<f64> = (0..reps).map(|_| detect(env, &case)).collect();
        let target = case.window_ms + 2 * SAMPLE_MS;
        let metric = match case.window_ms {
            0 => format!("detection latency, {} (no window; target {target} ms)", case.rule),
            w => format!("detection latency, {} (window {w} ms; target {target} ms)", case.rule),
        };
        out.push(row("W8", &metric, lat, "ms"));
    }
    out
}

/// W1+guard: the line rules on the flood, guard on and off in turn, so drift
/// in the machine's load falls on both.
pub fn w1_guard(env: &Env) -> Vec<Row> {
    let mut out = Vec::new();
    let reps = repeats(env, 7);
    let (mut on, mut off, mut on_captured, mut off_captured) = (vec![], vec![], vec![], vec![]);
    let (mut on_state, mut off_state) = (vec![], vec![]);
    let guard = json!({"repeat": true, "rate": true});
    for r in 0..reps {
        let order = if r % 2 == 0 { [false, true] } else { [true, false] };
        for with in order {
            let run = flood_run_with(env, 1, 0, false, with.then(|| guard.clone()));
            assert_eq!(
                run.lost,
                0,
                "lines lost with the guard {}",
                if with { "on" } else { "off" }
            );
            if with {
                on.push(run.write_s);
                on_captured.push(run.captured_s);
                on_state.push(run.state_cpu_ms);
            } else {
                off.push(run.write_s);
                off_captured.push(run.captured_s);
                off_state.push(run.state_cpu_ms);
            }
        }
    }
    let mut w = row("W1+guard", "child write time, repeat + rate on (baseline: off)", on, "s");
    w.baseline = Some(off);
    let mut c = row(
        "W1+guard",
        "all lines in the files, repeat + rate on (baseline: off)",
        on_captured,
        "s",
    );
    c.baseline = Some(off_captured);
    // The rules run on the state thread: its CPU is where their cost shows
    // first, apart from the machine's noise in the wall-clock rows.
    let mut st =
        row("W1+guard", "state thread CPU, repeat + rate on (baseline: off)", on_state, "ms");
    st.baseline = Some(off_state);
    out.push(w);
    out.push(c);
    out.push(st);
    out
}
