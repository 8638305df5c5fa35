use crate::support::{free_port, mark_time, run_cli, temp_dir, Opts, Server};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn chain() -> Server {
    let vars = [("P1", free_port().to_string()), ("P2", free_port().to_string())];
    Server::start_with("tests/chain.jsonc", Opts { vars: &vars, session: false, ..Opts::default() })
}

fn no_session(fixture: &str, vars: &[(&str, String)]) -> Server {
    Server::start_with(fixture, Opts { vars, session: false, ..Opts::default() })
}

#[test]
fn boot_prints_plan_and_waves_in_order() {
    let mut s = chain();
    s.wait_started();
    let out = s.stdout();
    let pos =
        |needle: &str| out.find(needle).unwrap_or_else(|| panic!("{needle:?} missing:\n{out}"));
    assert!(pos("boot: validating config") < pos("boot: DAG computed — 4 nodes, 3 waves"));
    assert!(pos("wave 0 │ db → starting") < pos("wave 0 │ side → starting"));
    assert!(pos("wave 0 │ db → ready (tcp :") < pos("wave 1 │ migrate → starting"));
    assert!(pos("wave 1 │ migrate → stopped") < pos("wave 2 │ api → starting"));
    assert!(pos("wave 2 │ api → ready (http :") < pos("STARTUP COMPLETE — runtime active"));
    assert!(out.contains("side    | side 1"), "log lines are prefixed:\n{out}");
    assert!(s.shutdown().success());
}

#[test]
fn dependents_start_only_after_their_dependency_is_ready() {
    let mut s = chain();
    s.wait_started();
    let d = &s.dir;
    let db_listening = mark_time(&d.join("db.mark"), "listening").expect("db listened");
    let migrate_start = mark_time(&d.join("migrate.mark"), "start").expect("migrate started");
    let migrate_exit = mark_time(&d.join("migrate.mark"), "exit").expect("migrate exited");
    let api_start = mark_time(&d.join("api.mark"), "start").expect("api started");
    assert!(migrate_start >= db_listening, "migrate started before db listened");
    assert!(api_start >= migrate_exit, "api started before the oneshot finished");
    s.shutdown();
}

#[test]
fn same_config_gives_the_same_plan_output() {
    let plan_lines = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains("DAG computed") || l.contains("→ starting"))
            .map(String::from)
            .collect()
    };
    let mut a = chain();
    a.wait_started();
    a.shutdown();
    let mut b = chain();
    b.wait_started();
    b.shutdown();
    let (pa, pb) = (plan_lines(&a.stdout()), plan_lines(&b.stdout()));
    assert_eq!(pa.len(), 5, "{pa:?}");
    assert_eq!(pa, pb);
}

#[test]
fn failed_oneshot_blocks_its_dependents_and_nothing_else() {
    let mut s = no_session("tests/oneshot_fail.jsonc", &[]);
    s.wait_started();
    let out = s.stdout();
    assert!(out.contains("setup | [flowlayer] failed: exited with code 3"), "{out}");
    assert!(out.contains("wave 0 │ setup → failed"), "{out}");
    assert!(out.contains("app   | [flowlayer] not started: dependency \"setup\" failed"), "{out}");
    assert!(
        out.contains("web   | [flowlayer] not started: dependency \"app\" is stopped"),
        "{out}"
    );
    assert!(out.contains("wave 0 │ other → running"), "{out}");
    assert!(!out.contains("app → starting"), "{out}");
    // The server keeps running the rest.
    s.wait_stdout("other | other 3", T);
    assert!(s.shutdown().success());
}

#[test]
fn busy_port_fails_the_service_instead_of_launching_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut s = no_session("tests/preflight.jsonc", &[("BUSY", port.to_string())]);
    s.wait_started();
    let out = s.stdout();
    // Issue 14: the holder is named (here, this test process).
    let line = format!(
        "busy | [flowlayer] failed to start: port {port} is in use by pid {} (",
        std::process::id()
    );
    assert!(out.contains(&line), "{out}");
    assert!(out.contains("), started by another program\n"), "{out}");
    assert!(out.contains("wave 0 │ busy → failed"), "{out}");
    assert!(out.contains("wave 0 │ fine → running"), "{out}");
    assert!(s.shutdown().success());
}

#[test]
fn daemon_exit_probe_timeout_and_missing_program_fail_without_restart() {
    let mut s = no_session("tests/failures.jsonc", &[("P1", free_port().to_string())]);
    s.wait_started();
    s.wait_stdout("crash → failed", T);
    let out = s.stdout();
    assert!(out.contains("slow    | [flowlayer] not ready within 300 ms: stopping it"), "{out}");
    assert!(out.contains("wave 0 │ slow → failed"), "{out}");
    assert!(
        out.contains("missing | [flowlayer] failed to start: cannot start \"./no-such-program\": program not found"),
        "{out}"
    );
    assert!(out.contains("crash   | [flowlayer] exited with code 0 unexpectedly"), "{out}");
    // No automatic restart: `crash` started exactly once.
    assert_eq!(out.matches("crash → starting").count(), 1, "{out}");
    assert!(s.shutdown().success());
}

#[test]
fn services_get_merged_env_and_the_config_directory_as_cwd() {
    let mut s = no_session("tests/env.jsonc", &[]);
    s.wait_started();
    let dir = std::fs::canonicalize(&s.dir).unwrap();
    s.wait_stdout("sub  | cwd=", T);
    s.wait_stdout("home | cwd=", T);
    let out = s.stdout();
    assert!(out.contains("home | FL_GREETING=hello world"), "{out}");
    assert!(out.contains("home | FL_FROM_PARENT=inherited"), "{out}");
    assert!(out.contains("sub  | FL_GREETING=\n"), "env is per service:\n{out}");
    assert!(out.contains(&format!("home | cwd={}", dir.display())), "{out}");
    assert!(out.contains(&format!("sub  | cwd={}", dir.join("logs").display())), "{out}");
    // Every service knows which stack and run it belongs to.
    assert!(out.contains("home | FLOWLAYER_SERVICE=home\n"), "{out}");
    assert!(
        out.contains(&format!(
            "home | FLOWLAYER_CONFIG={}\n",
            s.config.canonicalize().unwrap().display()
        )),
        "{out}"
    );
    assert!(
        out.contains("home | FLOWLAYER_INSTANCE=") && !out.contains("home | FLOWLAYER_INSTANCE=\n"),
        "{out}"
    );
    s.shutdown();
}

#[test]
fn discovery_takes_the_first_name_that_exists_and_flags_win() {
    let dir = temp_dir("discover");
    // Every candidate is broken differently, so the error names the file that was read.
    let names =
        ["flowlayer.jsonc", "flowlayer.json", "flowlayer.config.jsonc", "flowlayer.config.json"];
    for n in names {
        std::fs::write(dir.join(n), "{ broken").unwrap();
    }
    for n in names {
        let (code, _, err) = run_cli(&["-s", "6999"], &dir);
        assert_eq!(code, 2);
        assert!(err.contains(&format!("config {n}: syntax error")), "expected {n}: {err}");
        std::fs::remove_file(dir.join(n)).unwrap();
    }
    for n in ["p.jsonc", "l.jsonc", "s.jsonc", "flowlayer.jsonc"] {
        std::fs::write(dir.join(n), "{ broken").unwrap();
    }
    let (_, _, err) = run_cli(&["p.jsonc", "--config", "l.jsonc"], &dir);
    assert!(err.contains("config l.jsonc:"), "{err}");
    let (_, _, err) = run_cli(&["p.jsonc", "-c", "s.jsonc"], &dir);
    assert!(err.contains("config s.jsonc:"), "{err}");
    let (_, _, err) = run_cli(&["p.jsonc"], &dir);
    assert!(err.contains("config p.jsonc:"), "{err}");
}
