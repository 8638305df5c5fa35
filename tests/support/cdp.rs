//! A small Chrome DevTools Protocol driver: headless Chromium for the browser
//! tests (`tests/web_browser.rs`) and `make bench` (which includes this file).
//! No Node, no Playwright: Chromium is started with `--remote-debugging-port=0`,
//! the port is read from `<profile>/DevToolsActivePort`, and CDP's JSON
//! messages go over the tungstenite client, on one page target attached in
//! flat mode (every command carries its `sessionId`).
//!
//! What it offers: `navigate`, `eval` (`Runtime.evaluate`, promises awaited,
//! values returned as JSON), `wait_js` (poll an expression, with a deadline),
//! `key` (`Input.dispatchKeyEvent`), `viewport` and `dark`
//! (`Emulation.*`), `screenshot` (`Page.captureScreenshot`). Exceptions
//! thrown by the page and `console.error` lines are collected in `errors`.
//!
//! Chromium runs in a process group of its own, with a fresh profile in a
//! temporary directory; both go on drop, also when a test fails. The flags
//! keep it from reaching the network by itself (this machine's network is
//! closed, and a refused background connection stalls it).

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// How long Chromium may take to start and open its DevTools port (a loaded
/// two-core machine takes a few seconds).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one CDP command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The Chromium binary: `$CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

pub struct Browser {
    child: Child,
    profile: PathBuf,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: String,
    /// Uncaught exceptions and `console.error` lines of the page, in order.
    pub errors: Vec<String>,
}

impl Browser {
    /// Starts headless Chromium with one blank page. Panics with a clear
    /// message when Chromium is not installed: a browser test must not pass
    /// without a browser.
    pub fn launch() -> Browser {
        let bin = chromium().unwrap_or_else(|| {
            panic!(
                "Chromium is not installed: the browser tests need the Debian package `chromium` \
                 (.ci/run installs it; or set CHROMIUM=/path/to/chromium)"
            )
        });
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = std::env::temp_dir().join(format!("fl-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("create the Chromium profile directory");
        let log = std::fs::File::create(profile.join("chromium.log")).expect("chromium log");
        let child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Chromium ({}): {e}", bin.display()));
        let mut guard = Launching { child: Some(child), profile: profile.clone() };
        let endpoint = guard.wait_endpoint();
        let addr = endpoint.trim_start_matches("ws://").split('/').next().unwrap_or("").to_string();
        let stream = TcpStream::connect(&addr)
            .unwrap_or_else(|e| panic!("DevTools port {addr} refused the connection: {e}"));
        let (ws, _) = tungstenite::client::client(endpoint.as_str(), stream)
            .unwrap_or_else(|e| panic!("DevTools connection to {endpoint} failed: {e}"));
        let child = guard.child.take().expect("the child is there");
        let mut b =
            Browser { child, profile, ws, next_id: 0, session: String::new(), errors: Vec::new() };
        let target = b.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("a target id").to_string();
        let attached = b
            .call_browser("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}));
        b.session = attached["sessionId"].as_str().expect("a session id").to_string();
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        b
    }

    /// Sends a command to the browser itself (no session).
    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// Sends a command to the page and returns its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).expect("send a CDP command");
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("CDP {method}: no answer within {CALL_TIMEOUT:?}");
            }
            let Some(v) = self.read(left) else { continue };
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("CDP {method} failed: {e}");
                }
                return v["result"].clone();
            }
            self.on_event(&v);
        }
    }

    fn read(&mut self, timeout: Duration) -> Option<Value> {
        let t = timeout.max(Duration::from_millis(1));
        self.ws.get_ref().set_read_timeout(Some(t)).ok()?;
        match self.ws.read() {
            Ok(Message::Text(t)) => serde_json::from_str(t.as_str()).ok(),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("the DevTools connection failed: {e} (Chromium log: {})", self.log()),
        }
    }

    fn on_event(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let d = &p["exceptionDetails"];
                let text = d["exception"]["description"].as_str().or(d["text"].as_str());
                self.errors.push(format!("exception: {}", text.unwrap_or("?")));
            }
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| {
                                x["value"].as_str().map(String::from).unwrap_or_else(|| {
                                    x["description"].as_str().unwrap_or("").to_string()
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.errors.push(format!("console.error: {}", args.join(" ")));
            }
            _ => {}
        }
    }

    /// CPU time used so far by every process of this Chromium (its process
    /// group: browser, renderer, GPU and utility processes), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let group = self.child.id().to_string();
        // USER_HZ: 100 on every Linux this runs on.
        let tick = 100.0;
        let mut ticks = 0u64;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // Fields after the command's closing parenthesis: state, ppid,
            // pgrp, ...; utime and stime are the 12th and 13th of them.
            let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
            if f.get(2) == Some(&group.as_str()) {
                ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        ticks as f64 / tick
    }

    /// The end of Chromium's own log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.profile.join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("dbus")).collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Opens `url` and waits until the document has loaded.
    pub fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            panic!("navigating to {url} failed: {e}");
        }
        self.wait_js("document.readyState === 'complete'", Duration::from_secs(10), "page load");
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its value
    /// as JSON; panics when it throws.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(d) = r.get("exceptionDetails") {
            let text = d["exception"]["description"].as_str().or(d["text"].as_str());
            panic!("page script {expr:?} threw: {}", text.unwrap_or("?"));
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` every 20 ms until it is truthy (not false, null, 0 or
    /// ""); returns its value, or panics with `what` and the page's errors.
    pub fn wait_js(&mut self, expr: &str, timeout: Duration, what: &str) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            last = self.eval(expr);
            let truthy = match &last {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return last;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} ({expr}); last value: {last}; page errors: {:?}",
                    self.errors
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Presses and releases one key, named as `KeyboardEvent.key` names it
    /// (`"s"`, `"G"`, `"/"`, `"Home"`, `"ArrowDown"`, `"Escape"`, ...).
    pub fn key(&mut self, key: &str) {
        let (code, vk) = key_code(key);
        let text = if key.chars().count() == 1 { key } else { "" };
        let shift = key.chars().count() == 1 && key.chars().all(|c| c.is_ascii_uppercase());
        let modifiers = if shift { 8 } else { 0 };
        for kind in ["keyDown", "keyUp"] {
            let mut p = json!({"type": kind, "key": key, "code": code,
                "windowsVirtualKeyCode": vk, "modifiers": modifiers});
            if kind == "keyDown" && !text.is_empty() {
                p["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", p);
        }
    }

    /// Sets the window's size in CSS pixels.
    pub fn viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub fn dark(&mut self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        );
    }

    /// Writes a PNG of the viewport to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = r["data"].as_str().expect("screenshot data");
        std::fs::write(path, base64_decode(data)).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the browser and its renderer, GPU and utility processes.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Chromium while it starts: killed with its group if it never gets ready.
struct Launching {
    child: Option<Child>,
    profile: PathBuf,
}

impl Launching {
    /// The browser's DevTools WebSocket address, from `DevToolsActivePort`
    /// (first line the port, second the path).
    fn wait_endpoint(&mut self) -> String {
        let file = self.profile.join("DevToolsActivePort");
        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return format!("ws://127.0.0.1:{port}{path}");
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("Chromium exited ({st}) before opening its DevTools port");
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.profile.join("chromium.log"));
                panic!(
                    "Chromium did not open its DevTools port within {LAUNCH_TIMEOUT:?}; log:\n{}",
                    log.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Launching {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
            let _ = std::fs::remove_dir_all(&self.profile);
        }
    }
}

/// DOM `code` and Windows virtual key code of a key, for the page's handlers
/// and the browser's default actions.
fn key_code(key: &str) -> (String, u32) {
    let named = match key {
        "Enter" => Some(("Enter", 13)),
        "Escape" => Some(("Escape", 27)),
        "Tab" => Some(("Tab", 9)),
        "Backspace" => Some(("Backspace", 8)),
        "PageUp" => Some(("PageUp", 33)),
        "PageDown" => Some(("PageDown", 34)),
        "End" => Some(("End", 35)),
        "Home" => Some(("Home", 36)),
        "ArrowLeft" => Some(("ArrowLeft", 37)),
        "ArrowUp" => Some(("ArrowUp", 38)),
        "ArrowRight" => Some(("ArrowRight", 39)),
        "ArrowDown" => Some(("ArrowDown", 40)),
        "/" => Some(("Slash", 191)),
        "!" => Some(("Digit1", 49)),
        "?" => Some(("Slash", 191)),
        _ => None,
    };
    if let Some((code, vk)) = named {
        return (code.to_string(), vk);
    }
    match key.chars().next() {
        Some(c) if c.is_ascii_alphabetic() && key.len() == 1 => {
            (format!("Key{}", c.to_ascii_uppercase()), c.to_ascii_uppercase() as u32)
        }
        Some(c) if c.is_ascii_digit() && key.len() == 1 => (format!("Digit{c}"), c as u32),
        _ => (String::new(), 0),
    }
}

/// Standard base64 (what `Page.captureScreenshot` returns) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
