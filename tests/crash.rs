use crate::support::{
    alive, exists, free_port, helper, mark_pid, pgid_of, pid_file, ppid_of, runtime_dir, temp_dir,
    wait_for, wait_until, watchdog_of, Opts, Server,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn no_session() -> Opts<'static> {
    Opts { session: false, ..Opts::default() }
}

/// A process of the test's own that no server may touch.
struct Bystander(Child);

impl Bystander {
    fn start(args: &[&str]) -> Bystander {
        Bystander(Command::new(helper()).args(args).stdout(Stdio::null()).spawn().expect("spawn"))
    }
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The processes of a running `escape.jsonc` stack, once they are all there.
struct Stack {
    stubborn: i32,
    spawner: i32,
    grandchild: i32,
    orphan: i32,
    /// The `sh` that leads the clearer's group, and its child without environment.
    clearer_sh: i32,
    clearer: i32,
    watchdog: i32,
}

impl Stack {
    fn all(&self) -> [i32; 7] {
        [
            self.stubborn,
            self.spawner,
            self.grandchild,
            self.orphan,
            self.clearer_sh,
            self.clearer,
            self.watchdog,
        ]
    }
}

fn escape_stack(s: &mut Server) -> Stack {
    s.wait_started();
    s.wait_stdout("| stubborn: running", T);
    let d = s.dir.clone();
    let spawner = mark_pid(&d.join("spawner.mark"));
    let grandchild = pid_file(&d.join("grandchild.pid"));
    let orphan = pid_file(&d.join("orphan.pid"));
    let clearer = mark_pid(&d.join("clearer.mark"));
    let stack = Stack {
        clearer_sh: ppid_of(clearer).expect("the clearer's parent"),
        clearer,
        stubborn: mark_pid(&d.join("stubborn.mark")),
        spawner,
        grandchild,
        orphan,
        watchdog: wait_for(T, "the watchdog", || watchdog_of(s.pid())),
    };
    // They really escaped: the grandchild left its service's group, and the
    // double-forked one, whose parent exited, was adopted by the server.
    wait_until(T, "the grandchild to leave its group", || pgid_of(grandchild) == Some(grandchild));
    assert_ne!(pgid_of(spawner), Some(grandchild));
    wait_until(T, "the orphan to be adopted", || ppid_of(orphan) == Some(s.pid() as i32));
    assert_eq!(pgid_of(clearer), Some(stack.clearer_sh), "the clearer stays in its group");
    assert!(!std::fs::read(format!("/proc/{clearer}/environ")).unwrap().contains(&b'='));
    // Only the record of running groups finds the clearer: wait until it is written.
    let rt = runtime_dir(&s.dir);
    wait_until(T, "the groups record to list the clearer", || {
        std::fs::read_dir(&rt).into_iter().flatten().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".groups")
                && std::fs::read_to_string(e.path())
                    .is_ok_and(|t| t.contains(&format!("\"pgid\": {}", stack.clearer_sh)))
        })
    });
    for p in stack.all() {
        assert!(alive(p), "pid {p} is not running");
    }
    stack
}

/// Polls until none of `pids` runs, failing after `within`.
fn all_gone(pids: &[i32], within: Duration, what: &str) {
    let start = Instant::now();
    wait_until(within, what, || pids.iter().all(|&p| !alive(p)));
    eprintln!("{what}: {:?}", start.elapsed());
}

#[test]
fn issue_14_sigkill_of_the_server_leaves_no_process_of_its_stack_after_1_s() {
    let bystander = Bystander::start(&["sleep"]);
    let mut s = Server::start_with("tests/escape.jsonc", no_session());
    let stack = escape_stack(&mut s);
    s.signal(Signal::SIGKILL);
    all_gone(&stack.all(), Duration::from_secs(1), "every process of the stack to be gone");
    assert!(alive(bystander.pid()), "an unrelated process was killed");
    let server = s.pid();
    s.wait_exit(T);
    wait_until(T, "the watchdog's message", || {
        s.stderr().contains(&format!(
            "[flowlayer] watchdog: the server (pid {server}) is gone: killed 6 process(es)"
        ))
    });
}

#[test]
fn a_clean_shutdown_leaves_no_watchdog_and_no_escaped_process() {
    let mut s = Server::start_with("tests/escape.jsonc", no_session());
    let stack = escape_stack(&mut s);
    let rt = runtime_dir(&s.dir);
    s.signal(Signal::SIGINT);
    s.wait_stdout("| got SIGTERM, ignoring it", T);
    s.signal(Signal::SIGINT);
    assert!(s.wait_exit(T).success());
    all_gone(&stack.all(), T, "every process of the stack to be gone");
    let out = s.stdout();
    // The double-forked grandchild was the server's (adopted); the other one
    // became the server's when its parent was stopped.
    assert!(
        out.contains("[flowlayer] shutdown: killed 2 process(es) that outlived their service"),
        "{out}"
    );
    assert!(!s.stderr().contains("watchdog"), "{}", s.stderr());
    // Nothing of the run is left in the runtime directory but the lock and the
    // list of recent stacks.
    let mut left: Vec<String> = std::fs::read_dir(&rt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    left.sort();
    assert_eq!(left, ["recent.json"]);
    let recent: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rt.join("recent.json")).unwrap()).unwrap();
    assert_eq!(recent[0]["config"], s.config.canonicalize().unwrap().display().to_string());
    assert!(recent[0]["stopped_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn orphans_adopted_by_the_server_are_reaped() {
    let mut s = Server::start_with("tests/escape.jsonc", no_session());
    let stack = escape_stack(&mut s);
    kill(Pid::from_raw(stack.orphan), Signal::SIGKILL).unwrap();
    // Not merely dead: reaped (no zombie left under the server).
    wait_until(T, "the orphan to be reaped", || !exists(stack.orphan));
    assert!(alive(stack.stubborn) && alive(stack.watchdog));
}

fn refusal(s: &Server, of: &Server) -> String {
    let err = s.stderr();
    let line = err.lines().next().unwrap_or_default().to_string();
    let head = format!("Error: this stack is already running (pid {}, started ", of.pid());
    let tail = format!(", 127.0.0.1:{})", of.port);
    assert!(line.starts_with(&head) && line.ends_with(&tail), "{err}");
    let hm = &line[head.len()..line.len() - tail.len()];
    assert!(hm.len() == 5 && hm.as_bytes()[2] == b':', "{line}");
    line
}

#[test]
fn issue_14_a_second_server_on_the_same_config_is_refused_and_names_the_first() {
    let mut a = Server::start("tests/idle.jsonc");
    a.wait_started();
    let opts = Opts { dir: Some(a.dir.clone()), keep_config: true, ..Opts::default() };
    let mut b = Server::start_with("tests/idle.jsonc", opts);
    assert_eq!(b.wait_exit(T).code(), Some(2));
    refusal(&b, &a);
    assert!(!b.stdout().contains("DAG computed"), "nothing started");
    assert!(a.exited().is_none(), "the first server runs on");
    assert!(a.shutdown().success());
}

#[test]
fn two_servers_started_at_once_on_one_config_yield_exactly_one() {
    let dir = temp_dir("at-once").keep();
    crate::support::write_config("tests/idle.jsonc", &dir, &[]);
    let opts = || Opts { dir: Some(dir.clone()), keep_config: true, ..Opts::default() };
    let mut a = Server::start_with("tests/idle.jsonc", opts());
    let mut b = Server::start_with("tests/idle.jsonc", opts());
    let refused = wait_for(T, "one server to give up", || {
        if a.exited().is_some() {
            Some(true)
        } else if b.exited().is_some() {
            Some(false)
        } else {
            None
        }
    });
    let (mut running, mut loser) = if refused { (b, a) } else { (a, b) };
    running.wait_started();
    assert_eq!(loser.wait_exit(T).code(), Some(2));
    refusal(&loser, &running);
    assert!(running.exited().is_none());
    assert!(running.shutdown().success());
}

fn record_json(pid: u32, start: &str, id: &str) -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    format!(
        r#"{{"name":"old","config":"/nowhere/flowlayer.jsonc","dir":"/nowhere","pid":{pid},
            "started_at":"2026-01-01T00:00:00.000Z","instance_id":"{id}","version":"1.0.0",
            "pid_start":{start},"boot_id":"{}"}}"#,
        boot.trim()
    )
}

#[test]
fn records_of_servers_that_are_gone_are_removed_and_ours_is_complete() {
    let dir = temp_dir("records").keep();
    let rt = runtime_dir(&dir);
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(rt.join("dead.json"), record_json(dead, "1", "dead")).unwrap();
    // A live pid (this test), but not the process that wrote the record.
    std::fs::write(rt.join("reused.json"), record_json(std::process::id(), "1", "reused")).unwrap();
    let mut s = Server::start_with("tests/idle.jsonc", Opts { dir: Some(dir), ..Opts::default() });
    s.wait_started();
    assert!(!rt.join("dead.json").exists(), "record of a dead pid kept");
    assert!(!rt.join("reused.json").exists(), "record of a reused pid kept");
    let records: Vec<_> = std::fs::read_dir(&rt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let path = &records[0];
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let id = path.file_stem().unwrap().to_str().unwrap();
    assert_eq!(r["instance_id"], id);
    assert_eq!(r["pid"], s.pid());
    assert_eq!(r["addr"], s.addr());
    assert_eq!(r["token"], s.token);
    assert_eq!(r["version"], "1.0.0");
    let canonical = s.config.canonicalize().unwrap();
    assert_eq!(r["config"], canonical.display().to_string());
    assert_eq!(r["dir"], canonical.parent().unwrap().display().to_string());
    let dir_name = s.dir.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(r["name"], dir_name, "the default name is the config directory's");
    assert!(r["started_at"].as_str().unwrap().ends_with('Z'));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(path), 0o600);
    assert_eq!(mode(&rt), 0o700);
    assert!(s.shutdown().success());
    assert!(!path.exists(), "record removed at exit");
}

#[test]
fn issue_14_what_a_killed_run_left_is_killed_at_the_next_start_and_nothing_else() {
    let bystander = Bystander::start(&["sleep"]);
    let mut s = Server::start_with("tests/escape.jsonc", no_session());
    let stack = escape_stack(&mut s);
    // Server and watchdog killed together: nothing cleans up now.
    kill(Pid::from_raw(stack.watchdog), Signal::SIGKILL).unwrap();
    s.signal(Signal::SIGKILL);
    s.wait_exit(T);
    let left = [
        stack.stubborn,
        stack.spawner,
        stack.grandchild,
        stack.orphan,
        stack.clearer_sh,
        stack.clearer,
    ];
    for p in left {
        assert!(alive(p), "pid {p} died with the server: nothing to clean up");
    }
    for f in ["spawner.mark", "stubborn.mark", "grandchild.pid", "orphan.pid", "clearer.mark"] {
        std::fs::remove_file(s.dir.join(f)).unwrap();
    }
    let opts =
        Opts { dir: Some(s.dir.clone()), keep_config: true, session: false, ..Opts::default() };
    let mut next = Server::start_with("tests/escape.jsonc", opts);
    next.wait_started();
    let out = next.stdout();
    let said = format!(
        "[flowlayer] boot: the previous run of this stack (server pid {}) was killed and left 6 \
         process(es) running: killed pid ",
        s.pid()
    );
    assert!(out.contains(&said), "{out}");
    assert!(out.find(&said) < out.find("DAG computed"), "before any service starts:\n{out}");
    for p in left {
        assert!(!alive(p), "leftover pid {p} still runs");
    }
    assert!(alive(bystander.pid()), "an unrelated process was killed");
    // The new run's own services run.
    let fresh = mark_pid(&next.dir.join("stubborn.mark"));
    assert!(alive(fresh));
    std::mem::forget(s); // `next` owns the directory
}

/// Environment that leaves the server no runtime directory: both candidates
/// lie below a regular file (refused even to root).
fn no_runtime_dir(dir: &Path) -> String {
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    file.display().to_string()
}

#[test]
fn without_a_usable_runtime_directory_the_server_runs_and_says_so_once() {
    let dir = temp_dir("no-runtime").keep();
    let f = no_runtime_dir(&dir);
    let env = [("XDG_RUNTIME_DIR", f.as_str()), ("TMPDIR", f.as_str())];
    let opts = Opts { dir: Some(dir), ..Opts::default() };
    let mut s = Server::start_with_env("tests/idle.jsonc", opts, &env);
    s.wait_started();
    let out = s.stdout();
    assert_eq!(out.matches("no usable runtime directory").count(), 1, "{out}");
    assert!(out.contains("[flowlayer] boot: warning: no usable runtime directory ("), "{out}");
    assert!(out.contains("not-a-dir/flowlayer: Not a directory"), "{out}");
    assert!(s.shutdown().success());
    assert_eq!(s.stdout().matches("no usable runtime directory").count(), 1, "{}", s.stdout());
    assert_eq!(s.stderr(), "");
}

#[test]
fn a_port_held_by_a_leftover_of_this_stack_is_named_as_such() {
    let port = free_port();
    let vars = [("PORT", port.to_string())];
    let mut s = Server::start_with(
        "tests/listener.jsonc",
        Opts { vars: &vars, session: false, ..Opts::default() },
    );
    s.wait_started();
    let watchdog = wait_for(T, "the watchdog", || watchdog_of(s.pid()));
    let db = crate::support::children_of(s.pid()).into_iter().find(|&p| p != watchdog).unwrap();
    kill(Pid::from_raw(watchdog), Signal::SIGKILL).unwrap();
    s.signal(Signal::SIGKILL);
    s.wait_exit(T);
    // Without a runtime directory the next run cannot know what the last left.
    let f = no_runtime_dir(&s.dir);
    let env = [("XDG_RUNTIME_DIR", f.as_str()), ("TMPDIR", f.as_str())];
    let opts =
        Opts { dir: Some(s.dir.clone()), keep_config: true, session: false, ..Opts::default() };
    let mut next = Server::start_with_env("tests/listener.jsonc", opts, &env);
    next.wait_started();
    let out = next.stdout();
    let said = format!("db | [flowlayer] failed to start: port {port} is in use by pid {db} (");
    assert!(out.contains(&said), "{out}");
    assert!(out.contains("), left by a previous run of this stack\n"), "{out}");
    kill(Pid::from_raw(db), Signal::SIGKILL).unwrap();
    std::mem::forget(s);
}
