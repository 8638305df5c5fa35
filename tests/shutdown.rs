use crate::support::ws::Client;
use crate::support::{alive, wait_for, wait_until, Opts, Server};
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[test]
fn shutdown_uses_stop_cmd_kills_stubborn_and_grandchildren_but_nothing_else() {
    // A process of our own that the server must never touch.
    let mut bystander = std::process::Command::new(crate::support::helper())
        .arg("sleep")
        .spawn()
        .expect("spawn bystander");
    let mut s = Server::start_with("tests/stop.jsonc", Opts { session: false, ..Opts::default() });
    s.wait_started();
    let gc_file = s.dir.join("grandchild.pid");
    let grandchild: i32 = wait_for(T, "grandchild pid file", || {
        std::fs::read_to_string(&gc_file).ok()?.trim().parse().ok()
    });
    assert!(alive(grandchild));
    s.wait_stdout("stubborn | stubborn: running", T);
    let status = s.shutdown();
    assert!(status.success(), "exit status {status}");
    let out = s.stdout();
    let pos =
        |needle: &str| out.find(needle).unwrap_or_else(|| panic!("{needle:?} missing:\n{out}"));
    // Reverse waves: wave 1 (stubborn, plain) is down before wave 0 starts stopping.
    assert!(pos("stubborn → stopped") < pos("worker → stopping"), "{out}");
    assert!(pos("plain → stopped") < pos("spawner → stopping"), "{out}");
    // stopCmd instead of SIGTERM.
    assert!(out.contains("worker   | touched "), "{out}");
    assert!(out.contains("worker   | watchfile: stop file seen, exiting"), "{out}");
    assert!(!out.contains("worker   | got SIGTERM"), "{out}");
    // The SIGTERM-ignorer got SIGTERM, ignored it, then SIGKILL after the grace.
    assert!(out.contains("stubborn | got SIGTERM, ignoring it"), "{out}");
    assert!(
        out.contains(
            "stubborn | [flowlayer] still running 8 s after the stop request: sending SIGKILL"
        ),
        "{out}"
    );
    assert!(out.contains("stubborn | [flowlayer] stopped (killed by signal 9 (SIGKILL))"), "{out}");
    assert!(out.contains("shutdown: all services stopped"), "{out}");
    // Issue 5 regression: children must not inherit a blocked SIGTERM.
    assert!(
        out.contains("sleeper  | [flowlayer] stopped (killed by signal 15 (SIGTERM))"),
        "{out}"
    );
    wait_until(Duration::from_secs(5), "grandchild to die", || !alive(grandchild));
    assert!(alive(bystander.id() as i32), "an unrelated process was killed");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn second_signal_kills_everything_at_once() {
    let mut s =
        Server::start_with("tests/stubborn.jsonc", Opts { session: false, ..Opts::default() });
    s.wait_started();
    s.wait_stdout("stubborn | stubborn: running", T);
    s.signal(Signal::SIGTERM);
    s.wait_stdout("stubborn | got SIGTERM, ignoring it", T);
    s.signal(Signal::SIGINT);
    // Well inside the 8 s grace: the second signal did not wait for it.
    let status = s.wait_exit(Duration::from_secs(5));
    assert!(status.success());
    let out = s.stdout();
    assert!(
        out.contains("shutdown: second interrupt signal: killing 1 remaining service(s) now"),
        "{out}"
    );
    assert!(!out.contains("sending SIGKILL"), "{out}");
}

#[test]
fn issue_14_a_stop_cmd_that_cannot_start_never_wedges_the_server() {
    let mut s = Server::start("tests/wedge.jsonc");
    s.wait_started();
    let mut c = Client::connect(&s.addr(), &s.token);
    // Each restart runs the missing stopCmd, whose failure the state thread
    // reports to itself. A big `get_logs` just before keeps the state thread
    // busy while the chatty services fill the bus.
    let mut restarts = 0;
    while restarts < 8 {
        c.command("get_logs", json!({"limit": 20000}));
        let id = c.command("restart_service", json!({"service": "badstop"}));
        let answered = Instant::now() + Duration::from_secs(5);
        let mut done = false;
        while !done && Instant::now() < answered {
            let Some(v) = c.recv(Duration::from_millis(100)) else { continue };
            done = v["type"] == "result" && v["id"] == id.as_str();
        }
        if !done {
            break;
        }
        restarts += 1;
    }
    s.signal(Signal::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    assert_eq!(restarts, 8, "every restart was answered");
}
