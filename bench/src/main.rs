//! flowlayer-bench (`make bench`): measures flowlayer-server on the workloads of
//! BENCH.md and, in the same run, the physical baseline of each, and prints
//! median / min / max and the ratio to the baseline as a markdown table.
//!
//! Usage: flowlayer-bench [--quick] [--only W1,W3,...]
//! Expects release builds of flowlayer-server and fl-helper next to itself.

/// The DevTools driver of the browser tests, shared as one file (the bench
/// takes no screenshots).
#[path = "../../tests/support/cdp.rs"]
#[allow(dead_code)]
mod cdp;
mod guard;
mod proc;
mod stacks;
mod web;
mod workloads;

use std::path::PathBuf;

pub struct Env {
    pub server: PathBuf,
    pub helper: PathBuf,
    /// The `flowlayer` command.
    pub cli: PathBuf,
    pub quick: bool,
}

/// median, min, max
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let m =
        if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0 };
    (m, s[0], s[s.len() - 1])
}

/// A workload: runs its measurements and returns its rows.
type Workload = fn(&Env) -> Vec<Row>;

/// One row of the results table.
pub struct Row {
    pub workload: &'static str,
    pub metric: String,
    pub values: Vec<f64>,
    pub unit: &'static str,
    pub baseline: Option<Vec<f64>>,
}

fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "s" => format!("{v:.4}"),
        "ms" => format!("{v:.2}"),
        "MB" => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(String::from).collect());
    let dir = std::env::current_exe().expect("own path").parent().expect("dir").to_path_buf();
    let env = Env {
        server: dir.join("flowlayer-server"),
        helper: dir.join("fl-helper"),
        cli: dir.join("flowlayer"),
        quick,
    };
    for b in [&env.server, &env.helper, &env.cli] {
        assert!(b.exists(), "{} is missing: run `make build` first", b.display());
    }
    let wanted = |w: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == w));
    let mut rows: Vec<Row> = Vec::new();
    let plan: [(&str, Workload); 13] = [
        ("W1", workloads::w1),
        ("W1x4", workloads::w1x4),
        ("W1+clients", workloads::w1_clients),
        ("W1+guard", guard::w1_guard),
        ("W2", workloads::w2),
        ("W3", workloads::w3),
        ("W5", workloads::w5),
        ("W6", workloads::w6),
        ("W7", workloads::w7),
        ("W8", guard::w8),
        ("W9", stacks::w9),
        ("WEB", web::web),
        ("W10", workloads::w10),
    ];
    for (name, f) in plan {
        if wanted(name) {
            eprintln!("== {name}");
            rows.extend(f(&env));
        }
    }
    println!("| workload | metric | median | min | max | baseline median | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        let (m, lo, hi) = stats(&r.values);
        let (b, ratio) = match &r.baseline {
            Some(bv) => {
                let (bm, _, _) = stats(bv);
                (format!("{} {}", fmt(bm, r.unit), r.unit), format!("{:.2}x", m / bm))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} {u} | {} {u} | {} {u} | {b} | {ratio} |",
            r.workload,
            r.metric,
            fmt(m, r.unit),
            fmt(lo, r.unit),
            fmt(hi, r.unit),
            u = r.unit
        );
    }
}
