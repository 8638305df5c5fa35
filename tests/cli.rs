use crate::support::{run_cli, temp_dir};
use std::fs;

#[test]
fn version_prints_name_and_version_without_config() {
    let dir = temp_dir("cli");
    let (code, out, _) = run_cli(&["--version"], &dir);
    assert_eq!(code, 0);
    assert_eq!(out, "flowlayer-server 1.0.0\n");
}

#[test]
fn help_lists_flags_discovery_and_example() {
    let dir = temp_dir("cli");
    for flag in ["-h", "--help"] {
        let (code, out, _) = run_cli(&[flag], &dir);
        assert_eq!(code, 0);
        for needle in
            ["-token", "-s, --bind", "--no-color", "flowlayer.config.json", "flowlayer-client-tui"]
        {
            assert!(out.contains(needle), "help lacks {needle:?}");
        }
    }
}

#[test]
fn no_arguments_and_no_config_prints_help_and_exits_0() {
    let dir = temp_dir("cli");
    let (code, out, _) = run_cli(&[], &dir);
    assert_eq!(code, 0);
    assert!(out.contains("Usage:"));
}

#[test]
fn bad_command_lines_exit_2_with_error_and_help() {
    let dir = temp_dir("cli");
    fs::write(dir.join("a.jsonc"), r#"{"services":{"a":{"cmd":"x"}}}"#).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unknown flag \"--bogus\""),
        (&["-x"], "unknown flag \"-x\""),
        (&["-s"], "flag \"-s\" needs a value"),
        (&["-token"], "needs a value"),
        (&["-c", "a.jsonc", "--config", "a.jsonc"], "both -c and --config"),
        (&["a.jsonc", "b.jsonc"], "more than one config path"),
        (&["--no-color"], "no config file given and none found"),
        (&["missing.jsonc"], "cannot read file"),
        (&["a.jsonc", "-s", "70000"], "-s \"70000\""),
        (&["a.jsonc", "-s", "x:abc"], "not a number from 0 to 65535"),
    ];
    for (args, needle) in cases {
        let (code, _, err) = run_cli(args, &dir);
        assert_eq!(code, 2, "{args:?} exit code; stderr: {err}");
        assert!(err.starts_with("Error: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
        assert!(err.contains("Usage:"), "{args:?}: help missing");
    }
}

#[test]
fn busy_session_address_exits_2_before_any_service_starts() {
    let dir = temp_dir("cli");
    let marker = dir.join("started.mark");
    let helper = crate::support::helper();
    fs::write(
        dir.join("flowlayer.jsonc"),
        format!(
            r#"{{"services":{{"a":{{"cmd":["{}","sleep","--mark","{}"]}}}}}}"#,
            helper.display(),
            marker.display()
        ),
    )
    .unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = run_cli(&["-s", &port], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(!marker.exists(), "a service was started");
}
