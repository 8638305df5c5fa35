//! `make demo`: the script the Makefile runs (fixtures/demo/run.sh) brings up
//! the demo stack and the second stack beside it, and however the demo ends
//! (Ctrl-C, SIGTERM, the demo server failing) nothing stays running.
//!
//! The very script runs, on copies of the two bundled configs: the demo's
//! fixed ports (6999, 7301-7303) become free ones and its programs the
//! tests' fl-helper, so a real demo or another test cannot collide with it;
//! the runtime directory is the test's own.

use crate::support::runtime::Runtime;
use crate::support::{alive, fixture_dir, flowlayer, free_port, helper, wait_until};
use crate::support::{pgid_of, temp_dir, watchdog_of, TempDir};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
/// How the bundled configs name the fixtures helper.
const RELEASE_HELPER: &str = "../../target/release/fl-helper";

/// `text` with every `from` replaced; `from` must be there (a config that
/// changed under the test fails it here, not with a port taken later).
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the bundled config no longer has {from:?}");
    text.replace(from, to)
}

/// The demo script running, with its own process group (a terminal's
/// Ctrl-C goes to a group) and runtime directory; on drop, killed with
/// every server it recorded.
struct Demo {
    script: Child,
    root: TempDir,
    runtime: Runtime,
}

impl Demo {
    /// `session_port`: the demo stack's session port (0: any free one).
    fn start(tag: &str, session_port: u16) -> Demo {
        let runtime = Runtime::new(&format!("{tag}-run"));
        let root = temp_dir(tag);
        let helper = helper().display().to_string();
        // Siblings, as in fixtures/: `flowlayer down` in the second's
        // directory must not find the first (run.sh).
        for d in ["demo", "demo-docs"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let bundled = |rel: &str| std::fs::read_to_string(fixture_dir().join(rel)).unwrap();
        let mut main = swap(&bundled("demo/flowlayer.jsonc"), RELEASE_HELPER, &helper);
        main = swap(&main, "127.0.0.1:6999", &format!("127.0.0.1:{session_port}"));
        for port in ["7301", "7302", "7303"] {
            main = swap(&main, port, &free_port().to_string());
        }
        let second = swap(&bundled("demo-docs/flowlayer.jsonc"), RELEASE_HELPER, &helper);
        std::fs::write(root.join("demo/flowlayer.jsonc"), main).unwrap();
        std::fs::write(root.join("demo-docs/flowlayer.jsonc"), second).unwrap();
        let bin = flowlayer().parent().unwrap().to_path_buf();
        let script = Command::new(fixture_dir().join("demo/run.sh"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("FLOWLAYER_BIN", &bin)
            .env("DEMO_CONFIG", root.join("demo/flowlayer.jsonc"))
            .env("DEMO_SECOND", root.join("demo-docs/flowlayer.jsonc"))
            .env("XDG_RUNTIME_DIR", runtime.xdg())
            .env_remove("FLOWLAYER_TOKEN")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(root.join("demo.out")).unwrap())
            .stderr(std::fs::File::create(root.join("demo.err")).unwrap())
            .spawn()
            .expect("run fixtures/demo/run.sh");
        Demo { script, root, runtime }
    }

    fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.root.join(f)).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{}", read("demo.out"), read("demo.err"))
    }

    /// Waits until the script has exited.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + T;
        loop {
            if let Some(status) = self.script.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the demo still runs after {T:?}:\n{}", {
                self.output()
            });
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Both stacks up, every service of each started: the servers' pids.
    fn wait_both_up(&self) -> Vec<u32> {
        let names =
            || -> BTreeSet<String> { self.runtime.records().into_iter().map(|r| r.name).collect() };
        wait_until(T, "both stacks recorded", || names().len() == 2);
        assert_eq!(names(), BTreeSet::from(["demo".to_string(), "docs".to_string()]));
        let ls = self.runtime.cli(&["ls", "-o", "json"], &self.root);
        assert_eq!(ls.code, 0, "{ls:?}");
        let json = ls.json();
        let listed: BTreeSet<&str> = json["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(listed, BTreeSet::from(["demo", "docs"]), "{ls:?}");
        for stack in ["demo", "docs"] {
            let w =
                self.runtime.cli(&["-s", stack, "wait", "--all", "--timeout", "20s"], &self.root);
            assert_eq!(w.code, 0, "{stack}: {w:?}\n{}", self.output());
        }
        self.runtime.records().iter().map(|r| r.pid).collect()
    }

    /// The processes that run in the demo's directories: the services, and
    /// what they started.
    fn services(&self) -> Vec<i32> {
        let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|&pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(&*self.root))
                    && alive(pid)
            })
            .collect()
    }

    /// Nothing of the demo is left: not the script, not a server or its
    /// watchdog, not a service, not a record.
    fn wait_all_gone(&mut self, pids: &[i32]) {
        wait_until(T, "every process of the demo gone", || {
            pids.iter().all(|&p| !alive(p)) && self.services().is_empty()
        });
        assert!(self.runtime.records().is_empty(), "a stack is still recorded");
        let ls = self.runtime.cli(&["ls"], &self.root);
        assert_eq!(ls.stdout, "no running stacks\n", "{ls:?}");
    }

    /// Every pid of the running demo: the servers, their watchdogs, the services.
    fn pids(&self, servers: &[u32]) -> Vec<i32> {
        let mut pids: Vec<i32> = servers.iter().map(|&p| p as i32).collect();
        pids.extend(servers.iter().filter_map(|&p| watchdog_of(p)));
        let services = self.services();
        // 8 daemons (and jobs' grandchild) in the demo, 2 in the second stack.
        assert!(services.len() >= 10, "services of the demo: {services:?}");
        pids.extend(services);
        pids
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

fn path_of(root: &Path, rel: &str) -> PathBuf {
    std::fs::canonicalize(root.join(rel)).unwrap()
}

#[test]
fn the_makefile_runs_the_demo_script() {
    let makefile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Makefile")).unwrap();
    let recipe = makefile.split("\ndemo:").nth(1).expect("a demo target");
    let first = recipe.lines().nth(1).unwrap_or_default();
    assert_eq!(first, "\tfixtures/demo/run.sh", "the demo target runs what tests/demo.rs tests");
}

#[test]
fn ctrl_c_stops_the_demo_and_its_second_stack() {
    let mut demo = Demo::start("demo-int", 0);
    let servers = demo.wait_both_up();
    let records = demo.runtime.records();
    let docs = records.iter().find(|r| r.name == "docs").unwrap();
    assert_eq!(docs.config, path_of(&demo.root, "demo-docs/flowlayer.jsonc"));
    assert_eq!(docs.addr, None, "the second stack has no TCP port");
    let demo_server = records.iter().find(|r| r.name == "demo").unwrap().pid as i32;
    // A Ctrl-C must reach the demo server once, through the script: a
    // second one would kill its services at once.
    let group = demo.script.id() as i32;
    assert_ne!(pgid_of(demo_server), Some(group), "the demo server is in the script's group");
    let pids = demo.pids(&servers);
    // What a terminal does on Ctrl-C: SIGINT to its foreground process group.
    killpg(Pid::from_raw(group), Signal::SIGINT).unwrap();
    let status = demo.wait_exit();
    assert!(status.success(), "{status:?}\n{}", demo.output());
    demo.wait_all_gone(&pids);
    let out = demo.output();
    assert!(out.contains("shutdown: interrupt signal"), "{out}");
    assert!(!out.contains("second interrupt signal"), "the server got Ctrl-C twice:\n{out}");
    assert!(out.contains("stack \"docs\" stopped"), "{out}");
}

#[test]
fn sigterm_to_the_demo_script_stops_both_stacks() {
    let mut demo = Demo::start("demo-term", 0);
    let servers = demo.wait_both_up();
    let pids = demo.pids(&servers);
    kill(Pid::from_raw(demo.script.id() as i32), Signal::SIGTERM).unwrap();
    demo.wait_exit();
    demo.wait_all_gone(&pids);
    let out = demo.output();
    assert!(out.contains("shutdown: terminate signal"), "{out}");
    assert!(out.contains("stack \"docs\" stopped"), "{out}");
}

#[test]
fn when_the_demo_server_fails_the_second_stack_stops_too() {
    // The demo's session port is taken: its server refuses to start.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut demo = Demo::start("demo-fail", port);
    let status = demo.wait_exit();
    assert_eq!(status.code(), Some(2), "{}", demo.output());
    demo.wait_all_gone(&[]);
    let out = demo.output();
    assert!(out.contains("running in the background: stack \"docs\""), "{out}");
    assert!(out.contains("stack \"docs\" stopped"), "{out}");
}
