use crate::support::runtime::Runtime;
use crate::support::{free_port, temp_dir, tui, wait_until, Opts, Server};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// A tmux session of its own (own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let socket = format!("fl-test-{}-{}", std::process::id(), free_port());
        let ok = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-s", "t", "-x", "100", "-y", "30", cmd])
            .env_remove("NO_COLOR")
            .status()
            .expect("tmux is installed (.ci/run installs it)")
            .success();
        assert!(ok, "tmux new-session failed");
        Tmux { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok =
                Command::new("tmux").args(["-L", &self.socket, "send-keys", "-t", "t", k]).status();
            assert!(ok.is_ok_and(|s| s.success()), "send-keys {k}");
        }
    }

    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let mut last = String::new();
        let deadline = std::time::Instant::now() + T;
        while std::time::Instant::now() < deadline {
            last = self.screen();
            if pred(&last) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; screen:\n{last}");
    }

    /// The row of the services panel that shows `name`.
    fn row<'a>(screen: &'a str, name: &str) -> &'a str {
        screen
            .lines()
            .find(|l| {
                l.starts_with(&format!("│› {name} ")) || l.starts_with(&format!("│  {name} "))
            })
            .unwrap_or("")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

#[test]
fn select_a_service_stop_it_and_start_it_from_the_keyboard() {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/session.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    let cmd = format!("{} -addr {} -token {}", tui().display(), s.addr(), s.token);
    let t = Tmux::start(&cmd);
    t.wait("connected with services", |sc| {
        sc.contains("● connected") && Tmux::row(sc, "tick").contains("running")
    });
    t.keys(&["Down", "Down", "Down"]);
    t.wait("tick selected", |sc| sc.contains("│› tick ") && sc.contains("logs: tick"));
    t.keys(&["x"]);
    t.wait("tick stopped", |sc| {
        Tmux::row(sc, "tick").contains("stopped") && sc.contains("stop tick: ok")
    });
    t.keys(&["s"]);
    t.wait("tick running", |sc| {
        Tmux::row(sc, "tick").contains("running") && sc.contains("start tick: ok")
    });
    // The log panel shows the service's own lines, following the tail.
    t.wait("tick lines", |sc| sc.contains("tick ") && sc.contains("[system] stopped"));
    // Resizing redraws at the new size (80x24 is the smallest supported).
    let ok = Command::new("tmux")
        .args(["-L", &t.socket, "resize-window", "-t", "t", "-x", "80", "-y", "24"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "tmux resize-window");
    t.wait("redrawn at 80x24", |sc| {
        let lines: Vec<&str> = sc.lines().collect();
        lines.len() >= 24
            && lines[0].chars().count() == 80
            && lines[22].starts_with("● connected")
            && lines[23].starts_with("q quit")
    });
    t.keys(&["q"]);
    wait_until(T, "client exit", || !t.screen().contains("services"));
    s.shutdown();
}

#[test]
fn a_client_started_first_connects_when_the_server_comes_up() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let t = Tmux::start(&format!("{} -addr {addr} -token test-token", tui().display()));
    t.wait("unreachable", |sc| sc.contains("unreachable"));
    let p = port.to_string();
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with(
        "tests/session.jsonc",
        Opts {
            vars: &vars,
            session: false,
            extra: &["-s", &p, "-token", "test-token"],
            ..Opts::default()
        },
    );
    s.wait_started();
    t.wait("connected", |sc| sc.contains("● connected") && Tmux::row(sc, "web").contains("ready"));
    // Kill the server: the client shows the outage, then reconnects to a new one.
    s.shutdown();
    t.wait("outage", |sc| sc.contains("connection lost") || sc.contains("unreachable"));
    let mut s2 = Server::start_with(
        "tests/session.jsonc",
        Opts {
            vars: &vars,
            session: false,
            extra: &["-s", &p, "-token", "test-token"],
            ..Opts::default()
        },
    );
    s2.wait_started();
    t.wait("reconnected", |sc| sc.contains("● connected") && sc.contains("reconnected"));
    s2.shutdown();
}

#[test]
fn a_wrong_token_says_so() {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/session.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    let t = Tmux::start(&format!("{} -addr {} -token nope", tui().display(), s.addr()));
    t.wait("invalid token", |sc| sc.contains("invalid token"));
    s.shutdown();
}

/// Runs the server on a small stack inside tmux and returns the screen with escapes.
fn server_screen_in_tmux(extra_env: &str, flags: &str) -> String {
    let dir = crate::support::temp_dir("color");
    let cfg = crate::support::write_config("tests/oneshot_fail.jsonc", &dir, &[]);
    let cmd = format!(
        "cd {} && {extra_env} {} {} {flags}; sleep 30",
        dir.display(),
        crate::support::SERVER,
        cfg.display()
    );
    let t = Tmux::start(&cmd);
    t.wait("startup", |sc| sc.contains("STARTUP COMPLETE"));
    let out = Command::new("tmux")
        .args(["-L", &t.socket, "capture-pane", "-p", "-e", "-t", "t"])
        .output()
        .expect("capture");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_on_a_terminal_unless_no_color_or_the_flag() {
    let coloured = server_screen_in_tmux("", "");
    assert!(coloured.contains("\x1b["), "a terminal gets colour:\n{coloured}");
    for (env, flags) in [("NO_COLOR=1", ""), ("", "--no-color")] {
        let plain = server_screen_in_tmux(env, flags);
        assert!(plain.contains("STARTUP COMPLETE"));
        assert!(!plain.contains("\x1b[3"), "{env} {flags} still coloured:\n{plain}");
    }
}

#[test]
fn client_command_line_version_help_and_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(tui()).args(args).output().expect("run client");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&["--version"]).1, "flowlayer-client-tui 1.0.0\n");
    let (code, help, _) = run(&["-h"]);
    assert_eq!(code, Some(0));
    assert!(help.contains("-config") && help.contains("-addr") && help.contains("-token"));
    for bad in [&["stray"][..], &["--nope"], &["-addr"], &["-config", "/no/such/file.jsonc"]] {
        let (code, _, err) = run(bad);
        assert_eq!(code, Some(2), "{bad:?}");
        assert!(err.starts_with("Error: ") && err.contains("Usage:"), "{bad:?}: {err}");
    }
}

/// The services panel's part of a screen row.
fn panel(row: &str) -> &str {
    row.split('│').nth(1).unwrap_or("")
}

/// The number before `%` in a services row (the CPU column), if any.
fn cpu_percent(row: &str) -> Option<u32> {
    panel(row).split_whitespace().find_map(|w| w.strip_suffix('%')?.parse().ok())
}

/// The seconds of a restart countdown (`5s`) in a services row, if any.
fn countdown(row: &str) -> Option<u32> {
    panel(row).split_whitespace().find_map(|w| w.strip_suffix('s')?.parse().ok())
}

/// The number before `M` in a services row (the memory column), if any.
fn mem_mib(row: &str) -> Option<u32> {
    panel(row).split_whitespace().find_map(|w| w.strip_suffix('M')?.parse().ok())
}

#[test]
fn issue_12_cpu_and_memory_columns_show_numbers_for_a_busy_service() {
    let mut s = Server::start("tests/spin.jsonc");
    s.wait_started();
    let t = Tmux::start(&format!("{} -addr {} -token {}", tui().display(), s.addr(), s.token));
    t.wait("the spinner's core and the holder's memory", |sc| {
        sc.contains("cpu   mem")
            && cpu_percent(Tmux::row(sc, "spin")).is_some_and(|p| p >= 10)
            && mem_mib(Tmux::row(sc, "hold")).is_some_and(|m| m >= 90)
    });
    // Seen: give the core back to the tests running beside this one.
    t.keys(&["Down", "Down", "Down", "x"]);
    t.wait("spin stopped", |sc| Tmux::row(sc, "spin").contains("stopped"));
    t.wait("no numbers for a stopped service", |sc| cpu_percent(Tmux::row(sc, "spin")).is_none());
    // A view over the list: the columns (and the server's sampling) stop.
    t.keys(&["t"]);
    t.wait("timeline of spin", |sc| sc.contains("timeline: spin") && !sc.contains("cpu   mem"));
    t.keys(&["Escape"]);
    t.wait("columns back", |sc| sc.contains("cpu   mem") && sc.contains("│› spin "));
    s.shutdown();
}

#[test]
fn issue_12_the_why_line_of_a_waiting_service_and_its_timeline() {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/waiting.jsonc", Opts { vars: &vars, ..Opts::default() });
    let t = Tmux::start(&format!("{} -addr {} -token {}", tui().display(), s.addr(), s.token));
    t.wait("connected", |sc| sc.contains("● connected") && sc.contains("│  api "));
    t.keys(&["Down"]);
    // The line follows the probe's count as it grows, without a status event.
    let refused =
        format!("why api: waiting for db: running, not ready: tcp 127.0.0.1:{}", vars[0].1);
    t.wait("the why line with a count", |sc| {
        sc.contains(&refused) && sc.contains("connection refused ×")
    });
    t.keys(&["t"]);
    t.wait("the timeline", |sc| {
        sc.contains("timeline: api")
            && sc.contains("why waiting for db")
            && sc.contains(" waiting ")
    });
    t.keys(&["t"]);
    t.wait("back to the panels", |sc| sc.contains("logs: api") && sc.contains(&refused));
    t.keys(&["q"]);
    wait_until(T, "client exit", || !t.screen().contains("services"));
    s.shutdown();
}

#[test]
fn keys_stay_responsive_during_a_log_flood() {
    let mut s = Server::start("tests/flood_live.jsonc");
    s.wait_started();
    let t = Tmux::start(&format!("{} -addr {} -token {}", tui().display(), s.addr(), s.token));
    t.wait("the flood on screen", |sc| sc.contains("FLOOD1:") && sc.contains("● connected"));
    // Move while it floods: the selection and its logs follow the keys.
    t.keys(&["Down", "Down"]);
    t.wait("flood selected while flooding", |sc| {
        sc.contains("│› flood ")
            && sc.contains("logs: flood")
            && Tmux::row(sc, "flood").contains("running")
    });
    t.keys(&["Up"]);
    t.wait("api selected", |sc| sc.contains("│› api ") && sc.contains("logs: api"));
    t.keys(&["Down", "x"]);
    t.wait("the flood stopped from the keyboard", |sc| {
        Tmux::row(sc, "flood").contains("stopped") && sc.contains("stop flood: ok")
    });
    s.shutdown();
}

#[test]
fn issue_13_an_incident_marks_its_service_and_the_view_shows_its_evidence() {
    // dryRun: the incident stays open while the loop runs (the guard only alerts).
    let vars = [("DRY", "true".to_string())];
    let mut s =
        Server::start_with("tests/guard_runaway.jsonc", Opts { vars: &vars, ..Opts::default() });
    let t = Tmux::start(&format!("{} -addr {} -token {}", tui().display(), s.addr(), s.token));
    t.wait("connected", |sc| sc.contains("● connected") && sc.contains("│  loop "));
    std::fs::write(s.dir.join("go"), "").unwrap();
    t.wait("the marker and the guard's line", |sc| {
        Tmux::row(sc, "loop").contains("! running") && sc.contains("guard: loop: runaway (")
    });
    t.keys(&["!"]);
    t.wait("the incidents view with the evidence", |sc| {
        sc.contains("incidents: 1 (1 open)")
            && sc.contains("loop runaway")
            && sc.contains("(dry run)")
            && sc.contains("template  \"retry <n> failed")
            && sc.contains("last ")
    });
    t.keys(&["Escape"]);
    t.wait("back to the panels", |sc| Tmux::row(sc, "loop").contains("! running"));
    // Seen: the loop's core goes back to the tests running beside this one.
    t.keys(&["Down", "Down", "x"]);
    t.wait("loop stopped", |sc| Tmux::row(sc, "loop").contains("stopped"));
    s.shutdown();
}

#[test]
fn issue_12_restart_counts_and_the_countdown_of_a_pending_restart() {
    let vars = [
        ("POLICY", "on-failure".to_string()),
        ("CODE", "1".to_string()),
        ("BACKOFF", "2000".to_string()),
        ("MAX", "5".to_string()),
    ];
    let mut s = Server::start_with("tests/restart.jsonc", Opts { vars: &vars, ..Opts::default() });
    let t = Tmux::start(&format!("{} -addr {} -token {}", tui().display(), s.addr(), s.token));
    t.wait("connected", |sc| sc.contains("● connected") && sc.contains("│  crashy "));
    std::fs::write(s.dir.join("go"), "go").unwrap();
    // After the first restart fails too, the second waits about 4 s (2 s doubled).
    t.wait("one restart made and the next counting down", |sc| {
        let row = Tmux::row(sc, "crashy");
        row.contains("failed ↻1 ") && countdown(row).is_some_and(|n| (1..=5).contains(&n))
    });
    t.keys(&["Down", "x"]);
    t.wait("a stop cancels it", |sc| {
        let row = Tmux::row(sc, "crashy");
        row.contains("stopped ↻1") && countdown(row).is_none()
    });
    s.shutdown();
}

#[test]
fn issue_15_the_client_with_two_stacks_switches_sees_one_stop_and_starts_it_again() {
    let rt = Runtime::new("tui-stacks");
    let _alpha = rt.start("tests/stack_alpha.jsonc", &[("P1", free_port().to_string())]);
    let mut beta = rt.start("tests/stack_beta.jsonc", &[]);
    // No flags and no config here: every stack of the runtime directory.
    let nowhere = temp_dir("tui-nowhere");
    let cmd = format!(
        "cd {} && XDG_RUNTIME_DIR={} {}",
        nowhere.display(),
        rt.xdg().display(),
        tui().display()
    );
    let t = Tmux::start(&cmd);
    t.wait("both stacks in the bar, alpha on screen", |sc| {
        sc.starts_with(" 1 alpha 2/2   2 beta 2/2")
            && Tmux::row(sc, "api").contains("ready")
            && sc.contains("● connected")
    });
    t.keys(&["]"]);
    t.wait("beta on screen", |sc| {
        Tmux::row(sc, "worker").contains("running") && Tmux::row(sc, "api").is_empty()
    });
    t.keys(&["1"]);
    t.wait("alpha again", |sc| Tmux::row(sc, "api").contains("ready"));
    t.keys(&["2", "X"]);
    t.wait("a confirmation first", |sc| sc.contains("Stop stack beta? Its server and its 2"));
    t.keys(&["y"]);
    t.wait("beta stopped, in place", |sc| {
        sc.starts_with(" 1 alpha 2/2   2 beta stopped") && sc.contains("stack beta stopped")
    });
    assert!(beta.wait_exit(T).success(), "a normal shutdown");
    t.keys(&["s"]);
    t.wait("beta running again, from its config", |sc| {
        sc.starts_with(" 1 alpha 2/2   2 beta 2/2") && Tmux::row(sc, "worker").contains("running")
    });
    assert_eq!(rt.records().len(), 2, "alpha and the new beta are recorded");
    t.keys(&["q"]);
    wait_until(T, "client exit", || !t.screen().contains("alpha"));
}
