//! W9: the `flowlayer` command (stacks.md section 3): the wall time of
//! `flowlayer status` on a stack of 5 services, process start included,
//! through the control socket and over TCP; and of `flowlayer ls` with 10
//! stacks running. The stacks record themselves in a runtime directory of
//! the bench's own (`XDG_RUNTIME_DIR`), so stacks the machine runs besides
//! do not count.

use crate::proc::{wait, work_dir, Server, TOKEN};
use crate::workloads::idle_config;
use crate::{Env, Row};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STACKS: usize = 10;
const SERVICES: usize = 5;

/// Wall time of one `flowlayer` run, in ms; panics when it fails.
fn timed(env: &Env, runtime: &Path, args: &[&str]) -> f64 {
    let t0 = Instant::now();
    let st = Command::new(&env.cli)
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("run flowlayer");
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    assert!(st.success(), "flowlayer {args:?} failed");
    ms
}

pub fn w9(env: &Env) -> Vec<Row> {
    let runtime = work_dir("runtime");
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let xdg = [("XDG_RUNTIME_DIR", runtime.as_path())];
    let servers: Vec<Server> = (0..STACKS)
        .map(|i| {
            let dir = work_dir(&format!("stack{i}"));
            let mut config = idle_config(env, &dir, SERVICES);
            config["name"] = format!("bench{i}").into();
            Server::start_env(&env.server, &dir, config, &xdg)
        })
        .collect();
    let records = || {
        std::fs::read_dir(runtime.join("flowlayer"))
            .map(|rd| {
                rd.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "json")).count()
            })
            .unwrap_or(0)
    };
    assert!(wait(Duration::from_secs(20), || records() >= STACKS), "{STACKS} stacks recorded");
    assert!(wait(Duration::from_secs(20), || servers
        .iter()
        .all(|s| s.stdout_has("STARTUP COMPLETE"))));
    let runs = if env.quick { 10 } else { 50 };
    // One run each first: the binary and the libraries in the page cache.
    timed(env, &runtime, &["ls"]);
    let addr = servers[0].addr();
    let tcp = ["status", "--addr", addr.as_str(), "--token", TOKEN];
    let status: Vec<f64> =
        (0..runs).map(|_| timed(env, &runtime, &["-s", "bench0", "status"])).collect();
    let status_tcp: Vec<f64> = (0..runs).map(|_| timed(env, &runtime, &tcp)).collect();
    let ls: Vec<f64> = (0..runs).map(|_| timed(env, &runtime, &["ls"])).collect();
    for s in servers {
        s.stop();
    }
    let _ = std::fs::remove_dir_all(&runtime);
    let row = |metric: &str, values| Row {
        workload: "W9",
        metric: metric.into(),
        values,
        unit: "ms",
        baseline: None,
    };
    vec![
        row("`flowlayer status`, 5 services, control socket (target <= 20 ms)", status),
        row("`flowlayer status`, 5 services, TCP", status_tcp),
        row("`flowlayer ls`, 10 stacks (target <= 30 ms)", ls),
    ]
}
