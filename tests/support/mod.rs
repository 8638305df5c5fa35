//! Test harness: runs the real `flowlayer-server` against a fixture config copied
//! into a fresh temp dir, on OS-chosen ports, and cleans up every process it
//! started, even when a test fails.

#![allow(dead_code)] // each test module uses a different part of the harness

pub mod cdp;
pub mod cli;
pub mod runtime;
pub mod ws;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const SERVER: &str = env!("CARGO_BIN_EXE_flowlayer-server");
/// The session token from the environment: the tests' own runs never inherit one.
pub const TOKEN_ENV: &str = "FLOWLAYER_TOKEN";

/// Polls `f` every 10 ms until it returns `Some`, or panics with `what` at the deadline.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    wait_for(timeout, what, || f().then_some(()))
}

/// Builds a binary of another workspace package next to the server's binary.
fn sibling_binary(package: &str, bin: &str) -> PathBuf {
    let dir = Path::new(SERVER).parent().expect("binary has a directory").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", package, "--bin", bin]).current_dir(env!("CARGO_MANIFEST_DIR"));
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {bin} failed");
    let path = dir.join(bin);
    assert!(path.exists(), "{bin} not found at {}", path.display());
    path
}

/// The fixtures helper binary, built once per test run.
pub fn helper() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| sibling_binary("flowlayer-fixture-helper", "fl-helper")).clone()
}

/// The terminal client, built once per test run.
pub fn tui() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| sibling_binary("flowlayer-client-tui", "flowlayer-client-tui")).clone()
}

/// The `flowlayer` command, built once per test run.
pub fn flowlayer() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| sibling_binary("flowlayer", "flowlayer")).clone()
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fresh directory under the system temp dir, removed when dropped (kept
/// when the test failed, for a look at what was left).
pub struct TempDir(PathBuf);

impl TempDir {
    /// Keeps the directory past this guard (a `Server` takes care of it).
    pub fn keep(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fl-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    TempDir(dir)
}

/// Copies `fixtures/<name>` to `dir/flowlayer.jsonc`, replacing `@HELPER@`,
/// `@DIR@` and each `@KEY@` of `vars`.
pub fn write_config(name: &str, dir: &Path, vars: &[(&str, String)]) -> PathBuf {
    let mut text = std::fs::read_to_string(fixture_dir().join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    text = text.replace("@HELPER@", &helper().display().to_string());
    text = text.replace("@DIR@", &dir.display().to_string());
    for (k, v) in vars {
        text = text.replace(&format!("@{k}@"), v);
    }
    let path = dir.join("flowlayer.jsonc");
    std::fs::write(&path, text).expect("write config");
    path
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); look at its state too.
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// The fields of `/proc/<pid>/stat` after the command name (state first), or none.
pub fn stat_fields(pid: i32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().unwrap_or("").split_whitespace().map(String::from).collect()
}

/// The parent of `pid`.
pub fn ppid_of(pid: i32) -> Option<i32> {
    stat_fields(pid).get(1)?.parse().ok()
}

/// The process group of `pid`.
pub fn pgid_of(pid: i32) -> Option<i32> {
    stat_fields(pid).get(2)?.parse().ok()
}

/// Whether `/proc/<pid>` exists at all (a zombie counts: it is not reaped).
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The watchdog process of a server (its child named `fl-watchdog`).
pub fn watchdog_of(server: u32) -> Option<i32> {
    children_of(server).into_iter().find(|&p| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "fl-watchdog")
    })
}

/// Waits for a pid written to `path` (a helper `--pidfile`).
pub fn pid_file(path: &Path) -> i32 {
    wait_for(Duration::from_secs(20), &format!("pid file {}", path.display()), || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

/// Waits for the pid of the first `start` line of a helper `--mark` file.
pub fn mark_pid(path: &Path) -> i32 {
    wait_for(Duration::from_secs(20), &format!("start mark {}", path.display()), || {
        marks(path).into_iter().find(|(e, ..)| e == "start").map(|(_, _, p)| p)
    })
}

/// Pids whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// A running server; killed with everything it started when dropped.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub token: String,
    args: Vec<String>,
    status: Option<ExitStatus>,
    out: PathBuf,
    err: PathBuf,
}

pub struct Opts<'a> {
    pub vars: &'a [(&'a str, String)],
    pub session: bool,
    pub extra: &'a [&'a str],
    /// Reuse this directory (for runs that share a log dir).
    pub dir: Option<PathBuf>,
    /// With `dir`: run the config already there instead of writing it again
    /// (a server that is starting may be reading it).
    pub keep_config: bool,
    /// Listen on this port (a server that takes over from another).
    pub port: Option<u16>,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts { vars: &[], session: true, extra: &[], dir: None, keep_config: false, port: None }
    }
}

/// The runtime directory of servers started in `dir` by the harness.
pub fn runtime_dir(dir: &Path) -> PathBuf {
    dir.join("run/flowlayer")
}

/// A file name in `dir` not taken yet: `server.out`, then `server2.out`, ...
fn fresh(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    (1..)
        .map(|n| {
            if n == 1 {
                dir.join(format!("{stem}.{ext}"))
            } else {
                dir.join(format!("{stem}{n}.{ext}"))
            }
        })
        .find(|p| !p.exists())
        .expect("a free name")
}

impl Server {
    pub fn start(fixture: &str) -> Server {
        Server::start_with(fixture, Opts::default())
    }

    pub fn start_with(fixture: &str, opts: Opts) -> Server {
        Server::start_with_env(fixture, opts, &[])
    }

    /// `start_with`, with these environment variables set for the server.
    pub fn start_with_env(fixture: &str, opts: Opts, env: &[(&str, &str)]) -> Server {
        let tag = fixture.trim_end_matches(".jsonc").replace('/', "-");
        let dir = opts.dir.clone().unwrap_or_else(|| temp_dir(&tag).keep());
        let config = if opts.keep_config {
            dir.join("flowlayer.jsonc")
        } else {
            write_config(fixture, &dir, opts.vars)
        };
        let port = opts.port.unwrap_or_else(free_port);
        let token = "test-token".to_string();
        let mut args = vec![config.display().to_string(), "--no-color".to_string()];
        if opts.session {
            args.extend(["-s".into(), port.to_string(), "-token".into(), token.clone()]);
        }
        args.extend(opts.extra.iter().map(|s| s.to_string()));
        let (out, err) = (fresh(&dir, "server", "out"), fresh(&dir, "server", "err"));
        let stdout = File::create(&out).expect("stdout file");
        let stderr = File::create(&err).expect("stderr file");
        let run = dir.join("run");
        std::fs::create_dir_all(&run).expect("runtime dir");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("runtime dir mode");
        let child = Command::new(SERVER)
            .args(&args)
            .current_dir(&dir)
            .env("FL_FROM_PARENT", "inherited")
            .env_remove(TOKEN_ENV)
            .env("XDG_RUNTIME_DIR", &run)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn server");
        Server { child, dir, config, port, token, args, status: None, out, err }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the server has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until stdout contains `needle`.
    pub fn wait_stdout(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout().contains(needle) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                self.dump();
                panic!("server exited ({st}) before printing {needle:?}");
            }
            if Instant::now() >= deadline {
                self.dump();
                panic!("timed out after {timeout:?} waiting for {needle:?} on stdout");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_started(&mut self) {
        self.wait_stdout("STARTUP COMPLETE", Duration::from_secs(20));
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal server");
    }

    /// Waits for the server to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(st) = self.status {
            return st;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                return st;
            }
            if Instant::now() >= deadline {
                self.dump();
                panic!("server did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGINT, then waits for a clean exit.
    pub fn shutdown(&mut self) -> ExitStatus {
        self.signal(Signal::SIGINT);
        self.wait_exit(Duration::from_secs(20))
    }

    pub fn dump(&self) {
        eprintln!("---- server: {SERVER} {}", self.args.join(" "));
        eprintln!("---- config:\n{}", std::fs::read_to_string(&self.config).unwrap_or_default());
        let out = self.stdout();
        let lines: Vec<&str> = out.lines().collect();
        eprintln!(
            "---- last stdout lines:\n{}",
            lines[lines.len().saturating_sub(50)..].join("\n")
        );
        eprintln!("---- stderr:\n{}", self.stderr());
    }

    /// Lines of `<dir>/logs/<file>` parsed as JSON.
    pub fn jsonl(&self, file: &str) -> Vec<serde_json::Value> {
        read_jsonl(&self.dir.join("logs").join(file))
    }
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line {l:?}: {e}")))
        .collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            if std::thread::panicking() {
                self.dump();
            }
            // Service groups first, while they are the server's children (their
            // pids cannot be reused yet), but not the watchdog: killing the
            // server then makes it sweep what left the groups.
            let watchdog = watchdog_of(self.child.id());
            for pid in children_of(self.child.id()).into_iter().filter(|&p| Some(p) != watchdog) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the server to completion (CLI tests); kills it after 10 s.
pub fn run_cli(args: &[&str], cwd: &Path) -> (i32, String, String) {
    run_cli_env(args, &[], cwd)
}

/// `run_cli` with these environment variables set for the server.
pub fn run_cli_env(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (i32, String, String) {
    let mut child = Command::new(SERVER)
        .args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .env_remove(TOKEN_ENV)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("server {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads a helper `--mark` file: `(event, unix_ms, pid)` per line.
pub fn marks(path: &Path) -> Vec<(String, u128, i32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

pub fn mark_time(path: &Path, event: &str) -> Option<u128> {
    marks(path).into_iter().find(|(e, ..)| e == event).map(|(_, t, _)| t)
}

/// A number from `/proc/<pid>/status` (`Threads`; `VmRSS`, `VmHWM` in kB).
pub fn proc_status(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// One raw `GET` with a bearer token; returns (status, head, body).
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), head.to_string(), body.to_string())
}

/// The value of the sample `name{labels}` in a scrape.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// `promtool check metrics` passes `text` without a word.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    // CI installs promtool (.ci/run); a machine without it fails here rather
    // than passing without the check.
    let mut tool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed for this test");
    tool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = tool.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
}
