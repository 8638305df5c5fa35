//! WEB: the web cockpit in headless Chromium, through the DevTools driver the
//! browser tests use (`tests/support/cdp.rs`, included by `main.rs`):
//! - page load to every service shown, on the demo stack (target ≤ 300 ms);
//! - the page's frame times while the W1 flood (1,000,000 lines) runs and it
//!   follows the tail of all logs, and how long after the flood its last
//!   line is on the page;
//! - paging back through 100,000 lines, and frame times while scrolling
//!   through them.
//!
//! Frame times are the gaps between `requestAnimationFrame` callbacks: what
//! a person sees as smooth (16.7 ms at 60 Hz) or as a stall.

use crate::cdp::{chromium, Browser};
use crate::proc::{free_port, wait, work_dir, Server, TOKEN};
use crate::{Env, Row};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
const FLOOD_LINES: usize = 1_000_000;
const HISTORY_LINES: usize = 100_000;

fn row(metric: &str, values: Vec<f64>, unit: &'static str) -> Row {
    Row { workload: "WEB", metric: metric.into(), values, unit, baseline: None }
}

/// The demo stack (fixtures/demo, as `fixtures/tests/web.jsonc` has it).
fn demo(env: &Env) -> Value {
    let h = &env.helper;
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    json!({
        "logs": {"dir": "./logs"},
        "logView": {"maxEntries": 500, "all": {"maxEntries": 1000}},
        "services": {
            "db": {"cmd": [h, "tcp", "--port", p1.to_string(), "--listen-after-ms", "300"],
                   "port": p1, "ready": {"type": "tcp"}},
            "clock": {"cmd": [h, "ticker", "--every-ms", "2000", "--label", "clock"],
                      "ready": {"type": "none"}},
            "flaky": {"cmd": [h, "exit", "--code", "1", "--lines", "2", "--after-ms", "8000"],
                      "restart": {"policy": "on-failure", "backoffMs": 1000, "resetAfterMs": 5000}},
            "mailer": {"cmd": [h, "runaway", "--after-ms", "3600000"],
                       "guard": {"sampleMs": 500, "cpu": {"above": 0.5, "forMs": 3000},
                                 "repeat": {"lines": 100, "withinMs": 3000},
                                 "runaway": {"action": "restart"},
                                 "restartBudget": {"max": 2, "windowMs": 600000}}},
            "migrate": {"cmd": [h, "exit", "--code", "0", "--lines", "3", "--after-ms", "300"],
                        "kind": "oneshot", "dependsOn": ["db"]},
            "api": {"cmd": [h, "http", "--port", p2.to_string(), "--healthy-after-ms", "700"],
                    "port": p2,
                    "ready": {"type": "http", "url": format!("http://127.0.0.1:{p2}/health"), "intervalMs": 200},
                    "dependsOn": ["migrate"]},
            "worker": {"cmd": [h, "watchfile", "--fresh", "--file", "./logs/worker.stop"],
                       "stopCmd": [h, "touch", "./logs/worker.stop"], "dependsOn": ["migrate"]},
            "jobs": {"cmd": [h, "spawner"], "dependsOn": ["api"]},
            "web": {"cmd": [h, "http", "--port", p3.to_string(), "--healthy-after-ms", "200"],
                    "port": p3, "ready": {"type": "http", "url": format!("http://127.0.0.1:{p3}/")},
                    "dependsOn": ["api"]}
        }
    })
}

/// A server stopped when dropped, also when a browser step panics: a
/// workload that fails leaves no stack running.
struct Stack(Option<Server>);

impl std::ops::Deref for Stack {
    type Target = Server;
    fn deref(&self) -> &Server {
        self.0.as_ref().expect("running until dropped")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.stop();
        }
    }
}

fn start(env: &Env, dir: &Path, cfg: Value) -> Stack {
    Stack(Some(Server::start(&env.server, dir, cfg)))
}

fn started(s: &Server) {
    assert!(wait(T, || s.stdout_has("STARTUP COMPLETE")), "the stack did not start");
}

fn open(b: &mut Browser, s: &Server) {
    b.navigate("about:blank");
    b.navigate(&format!("http://{}/#token={TOKEN}", s.addr()));
    b.wait_js("document.getElementById('conn').dataset.state === 'connected'", T, "connected");
}

/// Starts recording frame times in the page.
fn record_frames(b: &mut Browser) {
    // A new recording ends the previous loop (its generation is past), so
    // two loops never stamp the same frame.
    b.eval(
        "(() => { window.__frames = []; window.__stop = false; const g = window.__gen = (window.__gen || 0) + 1; \
         (function tick(t) { if (window.__stop || g !== window.__gen) return; window.__frames.push(t); requestAnimationFrame(tick); })(performance.now()); })()",
    );
}

/// Stops recording; the gaps between frames, in ms.
fn frames(b: &mut Browser) -> Vec<f64> {
    let v = b.eval(
        "(() => { window.__stop = true; const f = window.__frames; return f.slice(1).map((t, i) => t - f[i]); })()",
    );
    v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(((s.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

fn frame_rows(what: &str, runs: &[Vec<f64>]) -> Vec<Row> {
    let per = |f: &dyn Fn(&[f64]) -> f64| runs.iter().map(|r| f(r)).collect::<Vec<f64>>();
    vec![
        row(&format!("{what}: frame time, median"), per(&|r| percentile(r, 0.5)), "ms"),
        row(&format!("{what}: frame time, 95th percentile"), per(&|r| percentile(r, 0.95)), "ms"),
        row(&format!("{what}: longest frame"), per(&|r| percentile(r, 1.0)), "ms"),
        row(
            &format!("{what}: frames over 50 ms"),
            per(&|r| r.iter().filter(|d| **d > 50.0).count() as f64),
            "",
        ),
    ]
}

pub fn web(env: &Env) -> Vec<Row> {
    if chromium().is_none() {
        eprintln!("WEB: skipped: Chromium is not installed (Debian package `chromium`)");
        return Vec::new();
    }
    let mut rows = page_load(env);
    rows.extend(flood(env));
    rows.extend(history(env));
    rows
}

fn page_load(env: &Env) -> Vec<Row> {
    let dir = work_dir("web-load");
    let s = start(env, &dir, demo(env));
    started(&s);
    let mut b = Browser::launch();
    b.viewport(1280, 800);
    let mut shown = Vec::new();
    for _ in 0..if env.quick { 3 } else { 10 } {
        open(&mut b, &s);
        let t = b.wait_js(
            "performance.getEntriesByName('fl:services')[0]?.startTime",
            T,
            "every service shown",
        );
        let n = b.eval("document.querySelectorAll('.svc[data-status]').length");
        assert_eq!(n, 9, "nine services shown");
        shown.push(t.as_f64().unwrap_or(f64::NAN));
    }
    drop(b);
    drop(s);
    vec![row("page load → every service shown (demo stack)", shown, "ms")]
}

fn flood(env: &Env) -> Vec<Row> {
    let mut runs = Vec::new();
    let mut last_line = Vec::new();
    let mut heap = Vec::new();
    let mut write = Vec::new();
    let mut browser_cpu = Vec::new();
    for _ in 0..if env.quick { 1 } else { 3 } {
        let dir = work_dir("web-flood");
        let cfg = json!({
            "logs": {"dir": "./logs"},
            "services": {
                "gate": {"cmd": [env.helper, "watchfile", "--file", dir.join("go")], "kind": "oneshot"},
                "flood1": {"cmd": [env.helper, "flood", "--lines", FLOOD_LINES.to_string(), "--bytes", "100",
                                   "--timing", dir.join("timing"), "--id", "1"],
                           "kind": "oneshot", "dependsOn": ["gate"]}
            }
        });
        let s = start(env, &dir, cfg);
        let mut b = Browser::launch();
        b.viewport(1280, 800);
        open(&mut b, &s);
        record_frames(&mut b);
        let cpu_before = b.cpu_seconds();
        std::fs::write(dir.join("go"), "go").expect("go");
        assert!(wait(T, || dir.join("timing").exists()), "the flood did not finish");
        let done = Instant::now();
        let last = format!("FLOOD1:{:07}:", FLOOD_LINES - 1);
        b.wait_js(
            &format!("[...document.querySelectorAll('#logs .row .m')].some(e => e.textContent.startsWith('{last}'))"),
            T,
            "the flood's last line on the page",
        );
        last_line.push(done.elapsed().as_secs_f64() * 1000.0);
        browser_cpu.push((b.cpu_seconds() - cpu_before) * 1000.0);
        let timing = std::fs::read_to_string(dir.join("timing")).unwrap_or_default();
        let t: Vec<f64> = timing.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        write.push(t.get(1).zip(t.first()).map_or(f64::NAN, |(e, s)| (e - s) / 1e9));
        runs.push(frames(&mut b));
        heap.push(b.eval("performance.memory.usedJSHeapSize / 1e6").as_f64().unwrap_or(f64::NAN));
        drop(b);
        drop(s);
    }
    let mut rows = vec![row("W1 flood: child write time with the page open", write, "s")];
    rows.extend(frame_rows("W1 flood, page following all logs", &runs));
    rows.push(row("W1 flood: flood over → its last line on the page", last_line, "ms"));
    rows.push(row("W1 flood: Chromium's CPU, go → last line on the page", browser_cpu, "ms"));
    rows.push(row("W1 flood: page's JS heap after", heap, "MB"));
    rows
}

fn history(env: &Env) -> Vec<Row> {
    let dir = work_dir("web-history");
    let cfg = json!({
        "logs": {"dir": "./logs"},
        "services": {
            "lines": {"cmd": [env.helper, "lines", "--count", HISTORY_LINES.to_string(), "--width", "60", "--stay"]}
        }
    });
    let s = start(env, &dir, cfg);
    let last = format!("line {HISTORY_LINES}");
    let log = dir.join("logs/lines.jsonl");
    assert!(wait(T, || tail_has(&log, &last)), "the history was not written");
    let mut b = Browser::launch();
    b.viewport(1280, 800);
    open(&mut b, &s);
    b.eval("document.querySelector('.svc[data-service=\"lines\"]').click()");
    b.wait_js("document.getElementById('log-count').textContent === '500 lines'", T, "first page");
    b.eval("document.getElementById('logs').focus()");
    let start = Instant::now();
    let want = "100,000 lines";
    while b.eval("document.getElementById('log-count').textContent") != want {
        b.key("Home");
        assert!(start.elapsed() < T, "paging back stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    let paged = start.elapsed().as_secs_f64() * 1000.0;
    let mut runs = Vec::new();
    for _ in 0..if env.quick { 1 } else { 3 } {
        record_frames(&mut b);
        b.eval(
            "new Promise(done => { const el = document.getElementById('logs'); let n = 0; \
             (function step() { el.scrollTop += 2000; if (++n < 240) requestAnimationFrame(step); else done(); })(); })",
        );
        runs.push(frames(&mut b));
        b.eval("document.getElementById('logs').scrollTop = 0");
    }
    drop(b);
    drop(s);
    let mut rows =
        vec![row("page back from 500 to 100,000 lines held (Home, Home, …)", vec![paged], "ms")];
    rows.extend(frame_rows("100,000 lines held, scrolling 100 rows a frame", &runs));
    rows
}

fn tail_has(path: &Path, needle: &str) -> bool {
    let text = std::fs::read(path).unwrap_or_default();
    let tail = &text[text.len().saturating_sub(4096)..];
    String::from_utf8_lossy(tail).contains(needle)
}
