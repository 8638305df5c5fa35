use crate::support::{free_port, run_cli, run_cli_env, temp_dir, Opts, Server, TOKEN_ENV};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const SHORT_WARNING: &str =
    "[flowlayer] boot: warning: the session token is shorter than 16 characters";

/// The status of `GET /health` with this `Authorization` value.
fn health(addr: &str, authorization: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(s, "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text[9..12].parse().unwrap()
}

/// A server on `tests/token.jsonc` (whose `session.token` is `config`), with
/// the API on a free port, `extra` arguments and `FLOWLAYER_TOKEN` = `env`.
fn start(config: &str, extra: &[&str], env: Option<&str>) -> Server {
    let port = free_port().to_string();
    let mut args = vec!["-s", port.as_str()];
    args.extend(extra);
    let vars = [("TOKEN", config.to_string())];
    let env: Vec<(&str, &str)> = env.map(|e| (TOKEN_ENV, e)).into_iter().collect();
    let opts = Opts { vars: &vars, session: false, extra: &args, ..Opts::default() };
    let mut s = Server::start_with_env("tests/token.jsonc", opts, &env);
    s.port = port.parse().unwrap();
    s.wait_started();
    s
}

#[test]
fn issue_14_the_token_comes_from_the_flag_then_the_environment_then_the_config() {
    let config = "config-token-0123456789";
    let env = "env-token-0123456789abc";
    let flag = "flag-token-0123456789abc";
    let s = start(config, &[], None);
    assert_eq!(health(&s.addr(), &format!("Bearer {config}")), 200);
    assert!(!s.stdout().contains(SHORT_WARNING), "{}", s.stdout());
    drop(s);
    let s = start(config, &[], Some(env));
    assert_eq!(health(&s.addr(), &format!("Bearer {env}")), 200);
    assert_eq!(health(&s.addr(), &format!("Bearer {config}")), 403);
    // The connect line never shows a secret the user gave.
    let out = s.stdout();
    assert!(out.contains("connect: flowlayer-client-tui -addr 127.0.0.1:"), "{out}");
    assert!(out.contains("-token \"$FLOWLAYER_TOKEN\""), "{out}");
    assert!(!out.contains(env) && !out.contains(config), "{out}");
    drop(s);
    let s = start(config, &["-token", flag], Some(env));
    assert_eq!(health(&s.addr(), &format!("Bearer {flag}")), 200);
    assert_eq!(health(&s.addr(), &format!("Bearer {env}")), 403);
}

#[test]
fn issue_14_the_bearer_scheme_is_case_insensitive() {
    let s = start("config-token-0123456789", &[], None);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert_eq!(health(&s.addr(), &format!("{scheme} config-token-0123456789")), 200);
    }
}

#[test]
fn issue_14_a_short_token_is_used_with_a_warning() {
    let s = start("short-token", &[], None);
    assert_eq!(health(&s.addr(), "Bearer short-token"), 200);
    assert!(s.stdout().contains(SHORT_WARNING), "{}", s.stdout());
}

#[test]
fn issue_14_unusable_tokens_are_refused_before_anything_starts() {
    let dir = temp_dir("token");
    let config = |token: &str| {
        let v = serde_json::json!({"session": {"token": token}, "services": {"a": {"cmd": "x"}}});
        std::fs::write(dir.join("f.jsonc"), v.to_string()).unwrap();
    };
    let refused = |args: &[&str], env: &[(&str, &str)], needle: &str, secret: &str| {
        let (code, out, err) = run_cli_env(args, env, &dir);
        assert_eq!(code, 2, "{args:?} {env:?}: {out}{err}");
        assert!(err.starts_with(&format!("Error: {needle}")), "{needle:?} in:\n{err}");
        assert!(err.contains("Usage:"), "{err}");
        assert!(!err.contains(secret), "the secret is shown:\n{err}");
        assert!(!out.contains("boot: DAG"), "nothing starts:\n{out}");
    };
    config("   ");
    let blank = "config f.jsonc: session.token: the token is blank";
    refused(&["f.jsonc"], &[], blank, "s3cret");
    config("s3cret\nline");
    let control = "the token contains a control character";
    refused(&["f.jsonc"], &[], &format!("config f.jsonc: session.token: {control}"), "s3cret");
    config("a-good-token-0123456789");
    refused(&["f.jsonc", "-token", "s3cret\ttab"], &[], &format!("-token: {control}"), "s3cret");
    refused(&["f.jsonc"], &[(TOKEN_ENV, "")], "FLOWLAYER_TOKEN: the token is blank", "s3cret");
    let env = [(TOKEN_ENV, "s3cret\r\n")];
    refused(&["f.jsonc"], &env, &format!("FLOWLAYER_TOKEN: {control}"), "s3cret");
}

#[test]
fn issue_14_help_says_where_a_token_is_safe() {
    let dir = temp_dir("token");
    let (code, out, _) = run_cli(&["--help"], &dir);
    assert_eq!(code, 0);
    assert!(out.contains("process list") && out.contains("FLOWLAYER_TOKEN"), "{out}");
}
