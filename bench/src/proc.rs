//! Processes, clocks, /proc readings and a minimal protocol client for the bench.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

pub fn mono_ns() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128)
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    l.local_addr().expect("addr").port()
}

pub fn work_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fl-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("work dir");
    d
}

/// Polls `f` every millisecond until it is true or `timeout` passes.
pub fn wait(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    wait_every(timeout, Duration::from_millis(1), f)
}

/// `wait` with 50 µs naps, for waits that are themselves measured.
pub fn wait_fine(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    wait_every(timeout, Duration::from_micros(50), f)
}

fn wait_every(timeout: Duration, nap: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(nap);
    }
    false
}

pub fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !matches!(stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()), Some("Z") | None)
}

/// The server's watchdog process: its child named `fl-watchdog`.
pub fn watchdog_of(server: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(')')?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == server && head.ends_with("(fl-watchdog")).then_some(pid)
    })
}

/// The value of `key` in `/proc/<pid>/smaps_rollup` (`Pss`, `Private_Dirty`...), in kB.
pub fn rollup_kb(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The value of `key` in `/proc/<pid>/status`, in kB.
pub fn status_kb(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// On-CPU nanoseconds of the live threads of `pid` (`/proc/<pid>/task/*/schedstat`).
pub fn cpu_ns(pid: u32) -> f64 {
    let mut total = 0.0;
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            total += s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        }
    }
    total
}

/// On-CPU nanoseconds of the threads of `pid` named `name`.
pub fn thread_cpu_ns(pid: u32, name: &str) -> f64 {
    let mut total = 0.0;
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            total += s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        }
    }
    total
}

/// `<event> <unix_ms> <pid> <mono_ns>` lines of a helper mark file.
pub fn marks(path: &Path) -> Vec<(String, i32, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect()
}

pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub launched_ns: u128,
}

pub const TOKEN: &str = "bench";

impl Server {
    /// Writes `config` (with `session` added) to `dir` and starts the server there.
    pub fn start(server: &Path, dir: &Path, config: Value) -> Server {
        Server::start_env(server, dir, config, &[])
    }

    /// `start`, with these variables added to the server's environment.
    pub fn start_env(
        server: &Path,
        dir: &Path,
        mut config: Value,
        env: &[(&str, &Path)],
    ) -> Server {
        let port = free_port();
        config["session"] = json!({"bind": format!("127.0.0.1:{port}"), "token": TOKEN});
        std::fs::write(dir.join("flowlayer.jsonc"), config.to_string()).expect("config");
        let out = std::fs::File::create(dir.join("server.out")).expect("stdout");
        let launched_ns = mono_ns();
        let child = Command::new(server)
            .arg("flowlayer.jsonc")
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        let s = Server { child, dir: dir.to_path_buf(), port, launched_ns };
        let addr = s.addr();
        assert!(
            wait(Duration::from_secs(10), || TcpStream::connect(&addr).is_ok()),
            "server did not listen"
        );
        s
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_has(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default().contains(needle)
    }

    pub fn stop(self) {
        let dir = self.dir.clone();
        self.stop_keep();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Stops the server and keeps its directory (the log files are read after).
    pub fn stop_keep(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub ws: WebSocket<TcpStream>,
    n: u64,
}

impl Client {
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        let _ = stream.set_nodelay(true);
        let mut req = format!("ws://{addr}/ws").into_client_request().expect("request");
        req.headers_mut()
            .insert("Authorization", format!("Bearer {TOKEN}").parse().expect("header"));
        let (ws, _) = tungstenite::client::client(req, stream).expect("handshake");
        Client { ws, n: 0 }
    }

    /// Next text frame, raw (shared bytes, no copy).
    pub fn next(&mut self) -> Option<tungstenite::Utf8Bytes> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Some(t),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Next text frame, or `None` when the socket's read timeout passed first.
    pub fn next_or_timeout(&mut self) -> Option<tungstenite::Utf8Bytes> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Some(t),
                Ok(Message::Close(_)) => panic!("the server closed the session"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("session read failed: {e}"),
            }
        }
    }

    /// Sends a command and returns its result payload, skipping other frames.
    pub fn call(&mut self, name: &str, payload: Value) -> Value {
        self.n += 1;
        let id = format!("b{}", self.n);
        let frame = json!({"type":"command","id":id,"name":name,"payload":payload}).to_string();
        self.ws.send(Message::text(frame)).expect("send");
        loop {
            let text = self.next().expect("connection open");
            // Log events are most of the traffic during a flood: skip them unparsed.
            if text.starts_with("{\"type\":\"event\"") || !text.contains(&id) {
                continue;
            }
            let v: Value = serde_json::from_str(&text).expect("json");
            if v["type"] == "result" && v["id"] == id.as_str() {
                return v["payload"].clone();
            }
        }
    }
}
