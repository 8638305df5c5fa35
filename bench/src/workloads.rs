//! The workloads (BENCH.md). Each returns table rows: flowlayer's values and,
//! where one exists, the physical baseline measured in the same run.

use crate::proc::{
    alive, cpu_ns, marks, mono_ns, rollup_kb, status_kb, wait, wait_fine, watchdog_of, work_dir,
    Client, Server,
};
use crate::{Env, Row};
use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LINES: usize = 1_000_000;
const T: Duration = Duration::from_secs(120);

pub fn row(workload: &'static str, metric: &str, values: Vec<f64>, unit: &'static str) -> Row {
    Row { workload, metric: metric.into(), values, unit, baseline: None }
}

fn flood_argv(env: &Env, dir: &Path, id: usize) -> Value {
    json!([
        env.helper,
        "flood",
        "--lines",
        LINES.to_string(),
        "--bytes",
        "100",
        "--timing",
        dir.join(format!("timing.{id}")),
        "--id",
        id.to_string()
    ])
}

fn timing(dir: &Path, id: usize) -> Option<(u128, u128)> {
    let t = std::fs::read_to_string(dir.join(format!("timing.{id}"))).ok()?;
    let mut it = t.split_whitespace().map(|v| v.parse::<u128>().ok());
    Some((it.next()??, it.next()??))
}

/// True when the last 4 KiB of `path` contain `needle`.
fn tail_has(path: &Path, needle: &str) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    buf.contains(needle)
}

fn count_lines_with(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
}

/// The baseline: the same child writing into a pipe drained by a discarding reader.
fn pipe_baseline(env: &Env, n: usize) -> f64 {
    let dir = work_dir("pipe");
    let children: Vec<_> = (1..=n)
        .map(|id| {
            // The pipe gets the 1 MiB the server gives its own pipes, so the
            // child has the same room in both; the reader is `cat`, as in the
            // peer harness. With the default 64 KiB pipe the child's 64 KiB
            // writes wait for the reader after each one: 0.15-0.18 s instead
            // of ~0.10 s, which flattered every ratio against it.
            let (read, write) = nix::unistd::pipe().expect("pipe");
            let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(1024 * 1024));
            let c = Command::new(&env.helper)
                .args([
                    "flood",
                    "--lines",
                    &LINES.to_string(),
                    "--bytes",
                    "100",
                    "--id",
                    &id.to_string(),
                ])
                .arg("--timing")
                .arg(dir.join(format!("timing.{id}")))
                .stdin(Stdio::null())
                .stdout(Stdio::from(write))
                .spawn()
                .expect("flood");
            let cat = Command::new("cat")
                .stdin(Stdio::from(read))
                .stdout(Stdio::null())
                .spawn()
                .expect("cat");
            (c, cat)
        })
        .collect();
    for (mut c, mut cat) in children {
        let _ = c.wait();
        let _ = cat.wait();
    }
    let (s, e) = span(&dir, n);
    let _ = std::fs::remove_dir_all(&dir);
    (e - s) as f64 / 1e9
}

/// First start and last end over floods 1..=n.
fn span(dir: &Path, n: usize) -> (u128, u128) {
    let t: Vec<(u128, u128)> = (1..=n).filter_map(|i| timing(dir, i)).collect();
    (t.iter().map(|x| x.0).min().unwrap_or(0), t.iter().map(|x| x.1).max().unwrap_or(0))
}

pub struct FloodRun {
    pub write_s: f64,
    pub captured_s: f64,
    pub lost: usize,
    /// CPU time of the server's `state` thread over the run, in ms.
    pub state_cpu_ms: f64,
    peak_rss_mb: f64,
    after_rss_mb: f64,
    statuses_ok: Option<(usize, usize)>,
}

/// One server run with `n` floods (and optionally `clients` sessions, one stalled).
fn flood_run(env: &Env, n: usize, clients: usize, check_get_logs: bool) -> FloodRun {
    flood_run_with(env, n, clients, check_get_logs, None)
}

/// `flood_run` with a top-level `guard` in the config.
pub fn flood_run_with(
    env: &Env,
    n: usize,
    clients: usize,
    check_get_logs: bool,
    guard: Option<Value>,
) -> FloodRun {
    let dir = work_dir("flood");
    let mut services = serde_json::Map::new();
    services.insert(
        "gate".into(),
        json!({"cmd": [env.helper, "watchfile", "--file", dir.join("go")], "kind": "oneshot"}),
    );
    for id in 1..=n {
        services.insert(
            format!("flood{id}"),
            json!({"cmd": flood_argv(env, &dir, id), "kind": "oneshot", "dependsOn": ["gate"]}),
        );
    }
    let mut cfg = json!({"logs": {"dir": "./logs"}, "services": services});
    if let Some(g) = guard {
        cfg["guard"] = g;
    }
    let server = Server::start(&env.server, &dir, cfg);
    let mut stalled = None;
    let mut readers = Vec::new();
    if clients > 0 {
        stalled = Some(Client::connect(&server.addr()));
        for _ in 1..clients {
            let mut c = Client::connect(&server.addr());
            readers.push(std::thread::spawn(move || {
                let mut seen = Vec::new();
                while let Some(t) = c.next() {
                    if t.contains("\"service_status\"") {
                        let v: Value = serde_json::from_str(&t).unwrap_or_default();
                        let p = &v["payload"];
                        seen.push(format!(
                            "{}:{}",
                            p["service"].as_str().unwrap_or(""),
                            p["status"].as_str().unwrap_or("")
                        ));
                        if seen.iter().any(|s| s == "flood1:stopped") {
                            break;
                        }
                    }
                }
                seen
            }));
        }
    }
    std::fs::write(dir.join("go"), "go").expect("go");
    let done = wait(T, || (1..=n).all(|i| timing(&dir, i).is_some()));
    assert!(done, "floods did not finish");
    let (start, end) = span(&dir, n);
    let all = dir.join("logs/all.jsonl");
    let last = format!("{:07}:", LINES - 1);
    let captured = wait(T, || {
        (1..=n).all(|i| {
            tail_has(&dir.join(format!("logs/flood{i}.jsonl")), &format!("FLOOD{i}:{last}"))
        })
    });
    let captured_ns = mono_ns();
    assert!(captured, "lines did not reach the log files");
    let peak_rss_mb = status_kb(server.pid(), "VmHWM") / 1024.0;
    let state_cpu_ms = crate::proc::thread_cpu_ns(server.pid(), "state") / 1e6;
    // What the server keeps once the flood is over (it tidies up 500 ms after
    // the last big batch), before any get_logs paging allocates again.
    std::thread::sleep(Duration::from_secs(1));
    let after_rss_mb = status_kb(server.pid(), "VmRSS") / 1024.0;
    let statuses_ok = if clients > 0 {
        let seen: Vec<Vec<String>> =
            readers.into_iter().map(|r| r.join().unwrap_or_default()).collect();
        let ok = seen
            .iter()
            .filter(|s| {
                s.contains(&"flood1:running".to_string())
                    && s.contains(&"flood1:stopped".to_string())
            })
            .count();
        Some((ok, seen.len()))
    } else {
        None
    };
    drop(stalled);
    if check_get_logs {
        let mut c = Client::connect(&server.addr());
        let mut before: Option<u64> = None;
        let mut got = 0usize;
        loop {
            let mut p = json!({"service": "flood1", "limit": 40000});
            if let Some(b) = before {
                p["before_seq"] = json!(b);
            }
            let r = c.call("get_logs", p);
            let entries = r["data"]["entries"].as_array().cloned().unwrap_or_default();
            got += entries
                .iter()
                .filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with("FLOOD1:")))
                .count();
            match entries.first().and_then(|e| e["seq"].as_u64()) {
                Some(s) if r["data"]["truncated"] == true => before = Some(s),
                _ => break,
            }
        }
        assert_eq!(got, LINES, "get_logs saw {got} of {LINES} lines");
    }
    server.stop_keep();
    let lost: usize = (1..=n)
        .map(|i| {
            LINES
                - count_lines_with(&dir.join(format!("logs/flood{i}.jsonl")), &format!("FLOOD{i}:"))
        })
        .sum::<usize>()
        + (n * LINES).saturating_sub(count_lines_with(&all, "\"FLOOD"));
    let _ = std::fs::remove_dir_all(&dir);
    FloodRun {
        write_s: (end - start) as f64 / 1e9,
        captured_s: (captured_ns - start) as f64 / 1e9,
        lost,
        peak_rss_mb,
        after_rss_mb,
        statuses_ok,
        state_cpu_ms,
    }
}

pub fn repeats(env: &Env, full: usize) -> usize {
    if env.quick {
        1
    } else {
        full
    }
}

fn flood_rows(env: &Env, name: &'static str, n: usize, reps: usize) -> (Vec<Row>, Vec<f64>) {
    let mut base = Vec::new();
    let mut runs = Vec::new();
    for r in 0..reps {
        base.push(pipe_baseline(env, n));
        runs.push(flood_run(env, n, 0, r == 0 && n == 1));
    }
    let write: Vec<f64> = runs.iter().map(|r| r.write_s).collect();
    let mut w = row(name, "child write time", write.clone(), "s");
    w.baseline = Some(base);
    let rows = vec![
        w,
        row(
            name,
            "all lines in the JSONL files after child start",
            runs.iter().map(|r| r.captured_s).collect(),
            "s",
        ),
        row(
            name,
            "lines lost (JSONL files; get_logs in run 1 of W1)",
            runs.iter().map(|r| r.lost as f64).collect(),
            "",
        ),
        row(name, "server peak RSS", runs.iter().map(|r| r.peak_rss_mb).collect(), "MB"),
        row(
            name,
            "server RSS 1 s after the lines are in the files",
            runs.iter().map(|r| r.after_rss_mb).collect(),
            "MB",
        ),
    ];
    (rows, write)
}

pub fn w1(env: &Env) -> Vec<Row> {
    flood_rows(env, "W1", 1, repeats(env, 5)).0
}

pub fn w1x4(env: &Env) -> Vec<Row> {
    flood_rows(env, "W1x4", 4, repeats(env, 3)).0
}

pub fn w1_clients(env: &Env) -> Vec<Row> {
    let reps = repeats(env, 3);
    let mut alone = Vec::new();
    let mut with = Vec::new();
    let mut delivered = Vec::new();
    for _ in 0..reps {
        alone.push(flood_run(env, 1, 0, false).write_s);
        let r = flood_run(env, 1, 20, false);
        with.push(r.write_s);
        let (ok, of) = r.statuses_ok.unwrap_or((0, 0));
        delivered.push(ok as f64 / of.max(1) as f64 * 19.0);
    }
    let mut w = row("W1+clients", "child write time, 20 sessions (1 stalled)", with, "s");
    w.baseline = Some(alone);
    vec![w, row("W1+clients", "live sessions that got every flood1 status (of 19)", delivered, "")]
}

pub fn idle_config(env: &Env, dir: &Path, n: usize) -> Value {
    let mut services = serde_json::Map::new();
    for i in 1..=n {
        services.insert(
            format!("idle{i:02}"),
            json!({"cmd": [env.helper, "sleep", "--mark", dir.join(format!("m{i}"))]}),
        );
    }
    json!({"services": services})
}

pub fn w2(env: &Env) -> Vec<Row> {
    let window = if env.quick { Duration::from_secs(3) } else { Duration::from_secs(10) };
    let reps = repeats(env, 2);
    let (mut rss, mut cpu, mut rss5, mut cpu5) = (vec![], vec![], vec![], vec![]);
    let (mut wd_rss, mut wd_pss, mut wd_cpu) = (vec![], vec![], vec![]);
    for _ in 0..reps {
        let dir = work_dir("idle");
        let server = Server::start(&env.server, &dir, idle_config(env, &dir, 20));
        assert!(wait(T, || server.stdout_has("STARTUP COMPLETE")));
        std::thread::sleep(Duration::from_secs(2)); // settle
        let wd = watchdog_of(server.pid()).expect("the server has a watchdog");
        let (c0, w0) = (cpu_ns(server.pid()), cpu_ns(wd));
        std::thread::sleep(window);
        cpu.push((cpu_ns(server.pid()) - c0) / 1e6 * 10.0 / window.as_secs_f64());
        wd_cpu.push((cpu_ns(wd) - w0) / 1e6 * 10.0 / window.as_secs_f64());
        rss.push(status_kb(server.pid(), "VmRSS") / 1024.0);
        wd_rss.push(status_kb(wd, "VmRSS") / 1024.0);
        wd_pss.push(rollup_kb(wd, "Pss") / 1024.0);
        let mut clients: Vec<Client> = (0..5).map(|_| Client::connect(&server.addr())).collect();
        for c in clients.iter_mut() {
            c.next();
            c.next();
        }
        std::thread::sleep(Duration::from_secs(1));
        let c0 = cpu_ns(server.pid());
        std::thread::sleep(window);
        cpu5.push((cpu_ns(server.pid()) - c0) / 1e6 * 10.0 / window.as_secs_f64());
        rss5.push(status_kb(server.pid(), "VmRSS") / 1024.0);
        drop(clients);
        server.stop();
    }
    vec![
        row("W2", "server RSS, 20 idle services", rss, "MB"),
        row("W2", "server CPU per 10 s idle", cpu, "ms"),
        row("W2", "server RSS, + 5 idle clients", rss5, "MB"),
        row("W2", "server CPU per 10 s idle, + 5 idle clients", cpu5, "ms"),
        row("W2", "watchdog RSS (libc and the binary's pages, shared, included)", wd_rss, "MB"),
        row("W2", "watchdog PSS", wd_pss, "MB"),
        row("W2", "watchdog CPU per 10 s idle", wd_cpu, "ms"),
    ]
}

fn started(dir: &Path, n: usize) -> Option<Vec<(i32, u128)>> {
    let v: Vec<(i32, u128)> = (1..=n)
        .filter_map(|i| {
            marks(&dir.join(format!("m{i}")))
                .into_iter()
                .find(|m| m.0 == "start")
                .map(|m| (m.1, m.2))
        })
        .collect();
    (v.len() == n).then_some(v)
}

pub fn w3(env: &Env) -> Vec<Row> {
    let reps = repeats(env, 5);
    let (mut start, mut stop, mut bstart, mut bstop) = (vec![], vec![], vec![], vec![]);
    let mut killed = vec![];
    for _ in 0..reps {
        // Baseline: spawn the 20 children directly, then SIGTERM each.
        let dir = work_dir("direct");
        let t0 = mono_ns();
        let mut kids: Vec<_> = (1..=20)
            .map(|i| {
                Command::new(&env.helper)
                    .args(["sleep", "--mark"])
                    .arg(dir.join(format!("m{i}")))
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let mut got = None;
        wait(T, || {
            got = started(&dir, 20);
            got.is_some()
        });
        bstart.push(
            (got.unwrap_or_default().iter().map(|m| m.1).max().unwrap_or(0) - t0) as f64 / 1e9,
        );
        let t1 = mono_ns();
        for k in &kids {
            let _ = kill(Pid::from_raw(k.id() as i32), Signal::SIGTERM);
        }
        for k in kids.iter_mut() {
            let _ = k.wait();
        }
        bstop.push((mono_ns() - t1) as f64 / 1e9);
        let _ = std::fs::remove_dir_all(&dir);

        let dir = work_dir("w3");
        let server = Server::start(&env.server, &dir, idle_config(env, &dir, 20));
        let mut got = None;
        wait(T, || {
            got = started(&dir, 20);
            got.is_some()
        });
        let got = got.expect("20 services started");
        start.push((got.iter().map(|m| m.1).max().unwrap_or(0) - server.launched_ns) as f64 / 1e9);
        std::thread::sleep(Duration::from_millis(500));
        let t1 = mono_ns();
        let pid = server.pid();
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        // The services are the server's children, not ours: no waitpid, so
        // poll, finely and only for those still there (the baseline's waitpid
        // is exact; 1 ms naps over all 20 added up to ~1.5 ms to this row).
        let mut left: Vec<i32> = got.iter().map(|(p, _)| *p).collect();
        wait_fine(T, || {
            left.retain(|p| alive(*p));
            left.is_empty()
        });
        stop.push((mono_ns() - t1) as f64 / 1e9);
        server.stop();

        // The server killed outright: its watchdog kills the services.
        let dir = work_dir("w3-kill");
        let server = Server::start(&env.server, &dir, idle_config(env, &dir, 20));
        let mut got = None;
        wait(T, || {
            got = started(&dir, 20);
            got.is_some()
        });
        let mut left: Vec<i32> = got.expect("20 services started").iter().map(|m| m.0).collect();
        std::thread::sleep(Duration::from_millis(500));
        let t1 = mono_ns();
        let _ = kill(Pid::from_raw(server.pid() as i32), Signal::SIGKILL);
        wait_fine(T, || {
            left.retain(|p| alive(*p));
            left.is_empty()
        });
        killed.push((mono_ns() - t1) as f64 / 1e9);
        server.stop();
    }
    let mut a = row("W3", "launch -> 20 services spawned", start, "s");
    a.baseline = Some(bstart);
    let mut b = row("W3", "stop request -> 20 services gone", stop, "s");
    b.baseline = Some(bstop);
    vec![a, b, row("W3", "server SIGKILLed -> 20 services gone", killed, "s")]
}

pub fn w5(env: &Env) -> Vec<Row> {
    let reps = if env.quick { 5 } else { 21 };
    let dir = work_dir("w5");
    let (tp, hp) = (crate::proc::free_port(), crate::proc::free_port());
    let cfg = json!({"services": {
        "tcp": {"cmd": [env.helper, "tcp", "--port", tp.to_string(), "--listen-after-ms", "200", "--mark", dir.join("tcp.mark")],
                "ready": {"type": "tcp", "port": tp}},
        "http": {"cmd": [env.helper, "http", "--port", hp.to_string(), "--listen-after-ms", "200", "--mark", dir.join("http.mark")],
                 "ready": {"type": "http", "url": format!("http://127.0.0.1:{hp}/health")}}
    }});
    let server = Server::start(&env.server, &dir, cfg);
    let mut c = Client::connect(&server.addr());
    let mut out = Vec::new();
    for svc in ["tcp", "http"] {
        let mut lat = Vec::new();
        for _ in 0..reps {
            let _ = c.call("restart_service", json!({"service": svc}));
            let ready_ns = loop {
                let t = c.next().expect("open");
                if t.contains("\"service_status\"")
                    && t.contains(&format!("\"service\":\"{svc}\""))
                    && t.contains("\"ready\"")
                {
                    break mono_ns();
                }
            };
            let listening = marks(&dir.join(format!("{svc}.mark")))
                .into_iter()
                .filter(|m| m.0 == "listening")
                .map(|m| m.2)
                .max()
                .unwrap_or(0);
            lat.push(ready_ns.saturating_sub(listening) as f64 / 1e6);
        }
        out.push(row("W5", &format!("port open -> ready event ({svc})"), lat, "ms"));
    }
    server.stop();
    out
}

pub fn w6(env: &Env) -> Vec<Row> {
    let dir = work_dir("w6");
    let mut services = serde_json::Map::new();
    for i in 1..=20 {
        services.insert(
            format!("svc{i:02}"),
            json!({"cmd": [env.helper, "lines", "--count", "10000", "--stay"]}),
        );
    }
    services.insert(
        "flood".into(),
        json!({"cmd": [env.helper, "flood", "--lines", "50000000", "--bytes", "100"], "dependsOn": ["gate"]}),
    );
    services.insert(
        "gate".into(),
        json!({"cmd": [env.helper, "watchfile", "--file", dir.join("go")], "kind": "oneshot"}),
    );
    let server = Server::start(&env.server, &dir, json!({"services": services}));
    let mut c = Client::connect(&server.addr());
    // Every service has its 10,000 lines in memory before the flood starts.
    assert!(wait(T, || {
        let r = c.call("get_logs", json!({"service": "svc20", "limit": 10000}));
        r["data"]["entries"].as_array().is_some_and(|a| a.len() == 10000)
    }));
    let mid = c.call("get_logs", json!({"service": "svc10", "limit": 5000}))["data"]["entries"][0]
        ["seq"]
        .as_u64()
        .unwrap_or(0);
    std::fs::write(dir.join("go"), "go").expect("go");
    let reps = if env.quick { 20 } else { 100 };
    let queries: [(&str, Value); 3] = [
        ("all services, default limit (500)", json!({})),
        ("one service (500)", json!({"service": "svc05", "limit": 500})),
        ("before_seq page (500)", json!({"service": "svc10", "before_seq": mid, "limit": 500})),
    ];
    let mut out = Vec::new();
    for (label, p) in queries {
        let mut lat = Vec::new();
        for _ in 0..reps {
            let t0 = mono_ns();
            let r = c.call("get_logs", p.clone());
            lat.push((mono_ns() - t0) as f64 / 1e6);
            assert_eq!(r["data"]["entries"].as_array().map(|a| a.len()), Some(500), "{label}");
        }
        out.push(row("W6", &format!("get_logs during a flood: {label}"), lat, "ms"));
    }
    server.stop();
    out
}

/// `n` services of `procs` processes each (a forker holding `procs - 1`
/// children).
fn tree_config(env: &Env, n: usize, procs: usize) -> Value {
    let mut services = serde_json::Map::new();
    for i in 1..=n {
        let cmd =
            json!([env.helper, "forker", "--max", (procs - 1).to_string(), "--every-ms", "1"]);
        services.insert(format!("tree{i:02}"), json!({ "cmd": cmd }));
    }
    json!({ "services": services })
}

/// One authenticated `GET /metrics`: milliseconds from connect to the end of
/// the answer, and the answer.
fn scrape(addr: &str) -> (f64, String) {
    use std::io::Write;
    let t0 = mono_ns();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let _ = s.set_nodelay(true);
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        crate::proc::TOKEN
    );
    s.write_all(req.as_bytes()).expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("answer");
    ((mono_ns() - t0) as f64 / 1e6, text)
}

/// W7, service health: what reading the services' resources costs.
pub fn w7(env: &Env) -> Vec<Row> {
    let window = if env.quick { Duration::from_secs(3) } else { Duration::from_secs(10) };
    let reps = repeats(env, 2);
    let scrapes = if env.quick { 20 } else { 100 };
    let (mut idle, mut watched, mut per_sample, mut scrape_ms, mut stats_ms) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        let dir = work_dir("w7");
        let server = Server::start(&env.server, &dir, tree_config(env, 20, 5));
        let mut c = Client::connect(&server.addr());
        let full = wait(T, || {
            let st = c.call("get_stats", json!({}));
            st["data"]["services"].as_array().is_some_and(|l| l.iter().all(|s| s["processes"] == 5))
        });
        assert!(full, "the 20 trees of 5 processes did not come up");
        std::thread::sleep(Duration::from_secs(1)); // settle
        let c0 = cpu_ns(server.pid());
        std::thread::sleep(window);
        idle.push((cpu_ns(server.pid()) - c0) / 1e6 * 10.0 / window.as_secs_f64());
        // One session watching at 1 s; a reader thread keeps its socket drained.
        let _ = c.call("watch_stats", json!({"enabled": true, "interval_ms": 1000}));
        std::thread::sleep(Duration::from_millis(1500));
        let (c0, s0) = (cpu_ns(server.pid()), crate::proc::thread_cpu_ns(server.pid(), "sampler"));
        let reader = std::thread::spawn(move || {
            let end = std::time::Instant::now() + window;
            let mut events = 0;
            let _ = c.ws.get_ref().set_read_timeout(Some(Duration::from_millis(200)));
            while std::time::Instant::now() < end {
                if let Some(t) = c.next() {
                    events += usize::from(t.contains("\"service_stats\""));
                }
            }
            (c, events)
        });
        let (mut c, events) = reader.join().expect("reader");
        let (c1, s1) = (cpu_ns(server.pid()), crate::proc::thread_cpu_ns(server.pid(), "sampler"));
        watched.push((c1 - c0) / 1e6 / window.as_secs_f64());
        per_sample.push((s1 - s0) / 1e6 / events.max(1) as f64);
        let _ = c.ws.get_ref().set_read_timeout(None);
        let _ = c.call("watch_stats", json!({"enabled": false}));
        for _ in 0..scrapes {
            let (ms, text) = scrape(&server.addr());
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            scrape_ms.push(ms);
        }
        for _ in 0..scrapes {
            let t0 = mono_ns();
            let _ = c.call("get_stats", json!({}));
            stats_ms.push((mono_ns() - t0) as f64 / 1e6);
        }
        server.stop();
    }
    vec![
        row("W7", "server CPU per 10 s, 20 services x 5 processes, nothing watching", idle, "ms"),
        row("W7", "server CPU per second, one watch_stats client at 1 s", watched, "ms"),
        row("W7", "sampler thread CPU per sample of 20 services x 5 processes", per_sample, "ms"),
        row(
            "W7",
            "GET /metrics, 20 services x 5 processes (connect to last byte)",
            scrape_ms,
            "ms",
        ),
        row("W7", "get_stats round trip, 20 services x 5 processes", stats_ms, "ms"),
    ]
}

/// Lines of the history W10 pages through.
const W10_LINES: usize = 200_000;

pub fn w10(env: &Env) -> Vec<Row> {
    let dir = work_dir("w10");
    let cfg = json!({"logs": {"dir": "./logs"}, "services": {
        "flood": {"cmd": [env.helper, "flood", "--lines", W10_LINES.to_string(), "--bytes", "100"],
                  "kind": "oneshot"}
    }});
    let server = Server::start(&env.server, &dir, cfg);
    let last = format!("FLOOD1:{:07}:", W10_LINES - 1);
    assert!(wait(T, || tail_has(&dir.join("logs/flood.jsonl"), &last)), "flood not in the files");
    let mut c = Client::connect(&server.addr());
    // The oldest seq memory holds: pages below it come from the files.
    let page = |c: &mut Client, p: Value| c.call("get_logs", p)["data"].clone();
    let mem = page(&mut c, json!({"service": "flood", "limit": 1}));
    let newest = mem["entries"][0]["seq"].as_u64().expect("a newest entry");
    let oldest_in_memory = newest + 1 - 10_000;
    let first = newest + 1 - W10_LINES as u64;
    let reps = if env.quick { 5 } else { 21 };
    let queries: [(&str, Value); 3] = [
        (
            "just below memory, flood.jsonl",
            json!({"service": "flood", "before_seq": oldest_in_memory, "limit": 10000}),
        ),
        ("just below memory, all.jsonl", json!({"before_seq": oldest_in_memory, "limit": 10000})),
        (
            "the oldest 10,000 of 200,000, flood.jsonl",
            json!({"service": "flood", "before_seq": first + 10_000, "limit": 10000}),
        ),
    ];
    let mut out = Vec::new();
    for (label, p) in queries {
        let mut lat = Vec::new();
        for _ in 0..reps {
            let t0 = mono_ns();
            let r = page(&mut c, p.clone());
            lat.push((mono_ns() - t0) as f64 / 1e6);
            let n = r["entries"].as_array().map_or(0, |a| a.len());
            assert_eq!(n, 10_000, "{label}: {r}");
        }
        out.push(row("W10", &format!("get_logs, 10,000 entries from disk: {label}"), lat, "ms"));
    }
    server.stop();
    out
}
