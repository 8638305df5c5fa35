use crate::support::{fixture_dir, run_cli, temp_dir};

#[test]
fn validation_errors_name_field_and_value() {
    let dir = temp_dir("config");
    std::fs::copy(fixture_dir().join("tests/bad_many.jsonc"), dir.join("f.jsonc")).unwrap();
    let (code, _, err) = run_cli(&["f.jsonc"], &dir);
    assert_eq!(code, 2);
    for needle in [
        "Error: config f.jsonc: session.bind: \"70000\" is not a valid address",
        "Error: config f.jsonc: logView.maxEntries: 0 must be",
        "Error: config f.jsonc: unknown field \"dependson\" in services.api",
        "Error: config f.jsonc: services.web.cmd: (empty command)",
        "Error: config f.jsonc: services.web.kind: \"cron\"",
        "Error: config f.jsonc: service name \"bad name\" is invalid",
        "Error: config f.jsonc: services.job.ready.url: required field is missing",
        "Error: config f.jsonc: service \"job\": dependsOn names unknown service \"ghost\"",
        "Error: config f.jsonc: service \"job\": dependsOn names the service itself",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(err.contains("Usage:"));
}

#[test]
fn cycles_are_named() {
    let dir = temp_dir("config");
    std::fs::copy(fixture_dir().join("tests/cycle.jsonc"), dir.join("c.jsonc")).unwrap();
    let (code, _, err) = run_cli(&["c.jsonc"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("dependency cycle: a -> c -> b -> a"), "{err}");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let dir = temp_dir("config");
    std::fs::copy(fixture_dir().join("tests/syntax.jsonc"), dir.join("s.jsonc")).unwrap();
    let (code, _, err) = run_cli(&["s.jsonc"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("Error: config s.jsonc: syntax error at line 3:"), "{err}");
}

#[test]
fn the_bundled_demo_config_is_valid() {
    // `-s 70000` is refused only after the config loaded cleanly.
    let demo = crate::support::fixture_dir().join("demo");
    let (code, _, err) = run_cli(&["flowlayer.jsonc", "-s", "70000"], &demo);
    assert_eq!(code, 2);
    assert!(err.starts_with("Error: -s \"70000\""), "the demo config has problems:\n{err}");
}

#[test]
fn guard_config_errors_name_the_field_and_exit_2() {
    let dir = temp_dir("config");
    std::fs::copy(fixture_dir().join("tests/bad_guard.jsonc"), dir.join("f.jsonc")).unwrap();
    let (code, _, err) = run_cli(&["f.jsonc"], &dir);
    assert_eq!(code, 2);
    for needle in [
        "Error: config f.jsonc: guard.action: \"kill\" must be \"alert\", \"stop\" or \"restart\"",
        "Error: config f.jsonc: guard.sampleMs: 100 must be at least 250",
        "Error: config f.jsonc: guard.repeat.share: 2 must be greater than 0 and at most 1",
        "Error: config f.jsonc: services.api.guard.cpu.above: 0 must be greater than 0",
        "Error: config f.jsonc: unknown field \"perSec\" in services.api.guard.rate",
        "Error: config f.jsonc: services.web.guard: expected an object or false",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn issue_14_names_the_log_files_cannot_hold_and_keys_given_twice_are_refused() {
    let dir = temp_dir("config");
    let text = std::fs::read_to_string(fixture_dir().join("tests/bad_names.jsonc")).unwrap();
    std::fs::write(dir.join("n.jsonc"), text.replace("LONGNAME", &"x".repeat(300))).unwrap();
    let (code, _, err) = run_cli(&["n.jsonc"], &dir);
    assert_eq!(code, 2, "{err}");
    for needle in [
        "Error: config n.jsonc: services.api.port: key given twice (at line 6:26 and again at line 7:14)",
        "Error: config n.jsonc: service name \"all\" is reserved: logs.dir/all.jsonl holds every service's lines",
        "Error: config n.jsonc: service name \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" is 300 bytes long: at most 200",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert_eq!(err.lines().filter(|l| l.starts_with("Error:")).count(), 3, "{err}");
}

#[test]
fn issue_14_a_logs_dir_that_cannot_be_created_is_a_config_error() {
    let dir = temp_dir("config");
    std::fs::write(dir.join("blocker"), "a file, not a directory").unwrap();
    for (logs, reason) in
        [("./blocker/logs", "Not a directory"), ("./blocker", "it exists and is not a directory")]
    {
        let cfg = format!(r#"{{"logs":{{"dir":"{logs}"}},"services":{{"a":{{"cmd":"true"}}}}}}"#);
        std::fs::write(dir.join("l.jsonc"), cfg).unwrap();
        let (code, _, err) = run_cli(&["l.jsonc"], &dir);
        assert_eq!(code, 2, "{err}");
        let path = dir.join(logs.trim_start_matches("./"));
        let expect = format!(
            "Error: config l.jsonc: logs.dir: cannot create \"{}\": {reason}",
            path.display()
        );
        assert!(err.starts_with(&expect), "expected {expect:?} in:\n{err}");
    }
}
