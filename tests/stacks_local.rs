use crate::support::cli::{cli, Background};
use crate::support::runtime::Runtime;
use crate::support::{
    free_port, helper, read_jsonl, temp_dir, wait_until, write_config, Opts, Server,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn names(v: &Value) -> BTreeSet<String> {
    v["stacks"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().into()).collect()
}

#[test]
fn two_stacks_side_by_side_on_port_0_are_listed_and_each_command_finds_its_stack() {
    let rt = Runtime::new("two");
    let a = rt.start("tests/stack_alpha.jsonc", &[("P1", free_port().to_string())]);
    let b = rt.start("tests/stack_beta.jsonc", &[]);
    let elsewhere = temp_dir("elsewhere");
    let r = rt.cli(&["ls", "-o", "json"], &elsewhere);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(names(&v), BTreeSet::from(["alpha".into(), "beta".into()]));
    for s in v["stacks"].as_array().unwrap() {
        let addr = s["addr"].as_str().unwrap();
        assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{s}");
        assert!(Path::new(s["socket"].as_str().unwrap()).exists(), "{s}");
        assert!(s.get("token").is_none(), "never printed");
    }
    let r = rt.cli(&["ls"], &elsewhere);
    assert!(r.stdout.starts_with("NAME") && r.stdout.lines().count() == 3, "{r:?}");
    // Two stacks, none here: ambiguous, both named.
    let r = rt.cli(&["status"], &elsewhere);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("alpha (") && r.stderr.contains("beta ("), "{r:?}");
    // In a stack's directory (or below it), that stack.
    let sub = a.dir.join("logs");
    let r = rt.cli(&["status", "-o", "json"], &sub);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["stack"]["name"], "alpha");
    assert_eq!(rt.cli(&["wait", "api"], &a.dir).code, 0);
    // By name, from anywhere.
    let r = rt.cli(&["-s", "beta", "wait", "--all", "--timeout", "10s"], &elsewhere);
    assert_eq!((r.code, r.stdout.as_str()), (0, "setup: stopped\nworker: running\n"), "{r:?}");
    let r = rt.cli(&["logs", "-s", "beta", "setup", "-o", "raw"], &elsewhere);
    assert!(r.stdout.starts_with("exit: line 1\nexit: line 2\n"), "{r:?}");
    let r = rt.cli(&["-s", "gamma", "status"], &elsewhere);
    assert_eq!((r.code, r.stderr.as_str()), (4, "Error: no running stack is named \"gamma\"\n"));
    // One left: the only stack is the one.
    drop(b);
    let r = rt.cli(&["status", "-o", "json"], &elsewhere);
    assert_eq!((r.code, &r.json()["stack"]["name"]), (0, &Value::from("alpha")), "{r:?}");
    drop(a);
    let r = rt.cli(&["status"], &elsewhere);
    assert_eq!((r.code, r.stderr.as_str()), (4, "Error: no running stack\n"));
}

#[test]
fn up_and_down_are_idempotent_and_two_ups_at_once_start_one_server() {
    let rt = Runtime::new("updown");
    let dir = temp_dir("updown-stack");
    write_config("tests/stack_alpha.jsonc", &dir, &[("P1", free_port().to_string())]);
    let r = rt.cli(&["up", "--wait"], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("running in the background: stack \"alpha\", pid "), "{r:?}");
    assert!(r.stdout.contains("boot: connect: flowlayer-client-tui -config"), "{r:?}");
    assert!(r.stdout.contains("stack ready: api, tick"), "{r:?}");
    let pid = rt.records()[0].pid;
    let log = dir.join("logs/server.log");
    wait_until(T, "boot in the server log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("STARTUP COMPLETE"))
    });
    let r = rt.cli(&["up"], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "stack \"alpha\" is already running (pid {pid}, {})\n",
            rt.records()[0].addr.clone().unwrap()
        )
    );
    let r = rt.cli(&["down"], &dir);
    assert_eq!((r.code, r.stdout.as_str()), (0, "stack \"alpha\" stopped\n"), "{r:?}");
    assert!(rt.records().is_empty());
    assert!(!crate::support::alive(pid as i32), "the server is gone");
    let r = rt.cli(&["down"], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.ends_with("is not running\n"), "{r:?}");
    // Two at once: one server, both say it runs.
    let env = rt.env();
    let ups: Vec<Background> =
        (0..2).map(|i| Background::start(&["up"], &dir, &env, &format!("up{i}"))).collect();
    for mut u in ups {
        assert_eq!(u.wait_exit(T), 0, "{}", u.stderr());
    }
    assert_eq!(rt.records().len(), 1, "exactly one server");
    let r = rt.cli(&["down", "-s", "alpha"], &temp_dir("elsewhere"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(rt.records().is_empty());
}

#[test]
fn up_with_a_bad_config_says_why_and_exits_2() {
    let rt = Runtime::new("upbad");
    let dir = temp_dir("upbad-stack");
    std::fs::write(dir.join("flowlayer.jsonc"), r#"{"services":{"a":{"cmd":""}}}"#).unwrap();
    let r = rt.cli(&["up"], &dir);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("Error: config"), "{r:?}");
    assert!(rt.records().is_empty());
}

#[test]
fn a_record_of_a_dead_or_reused_pid_is_ignored_and_removed() {
    let rt = Runtime::new("ghost");
    let dir = rt.dir.join("flowlayer");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = std::process::id();
    let my_start = flowlayer_runtime::procfs::live_start(me).unwrap();
    let record = |id: &str, pid: u32, start: u64| {
        format!(
            r#"{{"name":"{id}","config":"/nowhere/{id}/flowlayer.jsonc","dir":"/nowhere/{id}",
               "pid":{pid},"started_at":"2026-01-01T00:00:00.000Z","instance_id":"{id}",
               "version":"1.0.0","socket":"{}","pid_start":{start}}}"#,
            dir.join(format!("{id}.sock")).display()
        )
    };
    std::fs::write(dir.join("dead.json"), record("dead", dead, 1)).unwrap();
    std::fs::write(dir.join("dead.sock"), "").unwrap();
    std::fs::write(dir.join("reused.json"), record("reused", me, my_start + 1)).unwrap();
    let r = rt.cli(&["ls", "-o", "json"], rt.xdg());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(names(&r.json()).is_empty(), "{r:?}");
    for f in ["dead.json", "dead.sock", "reused.json"] {
        assert!(!dir.join(f).exists(), "{f} removed");
    }
    let r = rt.cli(&["status"], rt.xdg());
    assert_eq!(r.code, 4, "{r:?}");
}

#[test]
fn the_control_socket_serves_its_own_user_only() {
    let rt = Runtime::new("peer");
    let s = rt.start("tests/stack_beta.jsonc", &[]);
    let socket = rt.records()[0].socket.clone().expect("a control socket");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let get = |user: Option<&str>| -> String {
        let mut cmd = match user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([&format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups"]);
                c.arg(helper());
                c
            }
            None => Command::new(helper()),
        };
        let out = cmd.args(["unix-get", "--path"]).arg(&socket).output().expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let own = get(None);
    assert!(own.starts_with("HTTP/1.1 200") && own.contains(r#"{"ok":true}"#), "{own}");
    let uid = nix::unistd::geteuid().as_raw();
    let can_switch = uid == 0 && Command::new("setpriv").arg("--version").output().is_ok();
    if !can_switch {
        eprintln!("skipped: another user's connection needs root and setpriv (uid {uid})");
        return;
    }
    // Another user is kept out by the modes first: the directory, the socket.
    let nobody = get(Some("65534"));
    assert!(nobody.starts_with("connect: ") && nobody.contains("ermission denied"), "{nobody}");
    // With the modes opened, the server itself refuses (SO_PEERCRED).
    for p in [rt.xdg().to_path_buf(), rt.xdg().join("flowlayer")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let nobody = get(Some("65534"));
    assert!(nobody.starts_with("HTTP/1.1 403"), "{nobody}");
    assert!(nobody.contains(&format!("serves uid {uid} only, not uid 65534")), "{nobody}");
    assert!(get(None).starts_with("HTTP/1.1 200"), "its user still gets in");
    drop(s);
}

#[test]
fn a_socket_path_too_long_for_sun_path_moves_to_a_shorter_directory() {
    let rt = Runtime::new("long");
    let long = rt.xdg().join("x".repeat(90));
    std::fs::create_dir(&long).unwrap();
    std::fs::set_permissions(&long, std::fs::Permissions::from_mode(0o700)).unwrap();
    let xdg = long.to_str().unwrap();
    let opts = Opts { session: false, ..Opts::default() };
    let mut s = Server::start_with_env("tests/stack_beta.jsonc", opts, &[("XDG_RUNTIME_DIR", xdg)]);
    s.wait_started();
    let r = cli(&["ls", "-o", "json"], &s.dir, &[("XDG_RUNTIME_DIR", xdg)]);
    let socket = PathBuf::from(r.json()["stacks"][0]["socket"].as_str().unwrap());
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(socket.parent(), Some(Path::new(&format!("/tmp/flowlayer-{uid}"))), "{r:?}");
    let r = cli(&["status"], &s.dir, &[("XDG_RUNTIME_DIR", xdg)]);
    assert_eq!(r.code, 0, "{r:?}");
    s.shutdown();
    assert!(!socket.exists(), "removed at shutdown");
}

#[test]
fn logs_follow_finds_the_stack_again_after_a_restart_on_a_new_socket() {
    let mut a =
        Server::start_with("tests/follow.jsonc", Opts { session: false, ..Opts::default() });
    a.wait_started();
    let dir = a.dir.clone();
    let env = [("XDG_RUNTIME_DIR", dir.join("run").display().to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let follow = Background::start(&["logs", "-f", "tick", "-o", "json"], &dir, &env, "follow");
    follow.wait_stdout("20 lines", |o| o.lines().count() >= 20);
    a.signal(Signal::SIGINT);
    assert!(a.wait_exit(T).success());
    let last_of_a =
        read_jsonl(&dir.join("logs/tick.jsonl")).last().unwrap()["seq"].as_u64().unwrap();
    let mut b = Server::start_with(
        "tests/follow.jsonc",
        Opts { session: false, dir: Some(dir.clone()), ..Opts::default() },
    );
    b.wait_started();
    follow.wait_stdout("20 lines of the second run", |o| {
        o.lines().filter(|l| seq(l) > last_of_a).count() >= 20
    });
    let printed: Vec<u64> = follow.stdout().lines().map(seq).collect();
    let stderr = follow.stderr();
    drop(follow);
    assert!(
        stderr.contains("went away") && stderr.contains("is back (server restarted)"),
        "{stderr}"
    );
    let (first, last) = (printed[0], *printed.last().unwrap());
    let on_disk: Vec<u64> = read_jsonl(&dir.join("logs/tick.jsonl"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .filter(|s| (first..=last).contains(s))
        .collect();
    assert_eq!(printed, on_disk, "every line of both runs once, in order");
    drop(b);
}

fn seq(line: &str) -> u64 {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    v["seq"].as_u64().expect("seq")
}

#[test]
fn detach_returns_once_bound_and_the_server_runs_on_in_a_session_of_its_own() {
    let rt = Runtime::new("detach");
    let dir = temp_dir("detach-stack");
    let config = write_config("tests/stack_beta.jsonc", &dir, &[]);
    let run = || {
        Command::new(crate::support::SERVER)
            .arg(&config)
            .arg("--detach")
            .current_dir(&*dir)
            .env("XDG_RUNTIME_DIR", rt.xdg())
            .env_remove("FLOWLAYER_TOKEN")
            .output()
            .expect("run the server")
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("boot: session API: 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("boot: control socket: "), "{stdout}");
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.starts_with("[flowlayer] boot: running in the background: stack \"beta\", pid "));
    let rec = rt.records().pop().expect("recorded");
    assert!(last.contains(&format!("pid {}, log ", rec.pid)), "{last}");
    let log = rt.xdg().join("flowlayer").join(format!("{}.log", rec.instance_id));
    assert!(last.ends_with(&log.display().to_string()), "{last}");
    wait_until(T, "the rest of boot in the log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("STARTUP COMPLETE"))
    });
    // Its own session: it leads it, so the terminal's signals do not reach it.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", rec.pid)).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    assert_eq!(fields[3], rec.pid.to_string(), "session id is its pid: {stat}");
    // A second one is refused in the foreground, as without --detach.
    let again = run();
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains(&format!("Error: this stack is already running (pid {}", rec.pid)),
        "{err}"
    );
    let r = rt.cli(&["down"], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("shutdown"), "its shutdown is logged");
}
