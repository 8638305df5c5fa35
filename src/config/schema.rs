//! Test only: spec/flowlayer.schema.json, the config's JSON Schema for
//! editors (stacks.md section 6), against the server's own validation.
//!
//! - The schema and the walk know the same fields: the paths the schema
//!   describes equal those of `fields::KNOWN` and the guard's `KNOWN` at each
//!   of its `MOUNTS`, the lists the walk itself checks objects against.
//! - Every default the schema announces is what the server does when the
//!   field is left out, read from a config it parsed.
//! - The schema and the server agree on every fixture and on a table of
//!   cases at each rule's edges; where JSON Schema cannot state a rule (a
//!   name that must be a service of the file, a cycle, two fields compared),
//!   the case says so, and the server alone refuses it. The service names the
//!   server reserves (`names::RESERVED`, in any case) and its longest name
//!   (`names::MAX_NAME_BYTES`) are read from its own lists, not copied.
//!
//! Runs in the unit tests of the server; the validator is a dev-dependency.

use super::{fields, parse, Config};
use crate::guard::config as guard;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SCHEMA: &str = include_str!("../../spec/flowlayer.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("spec/flowlayer.schema.json is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

/// The file as the server reads it (comments, trailing commas), or `None`
/// when it is not JSON at all.
fn value_of(text: &str) -> Option<Value> {
    jsonc_parser::parse_to_serde_value(text, &super::jsonc_options()).ok()
}

/// The server's verdict (its problems, one line each) and the schema's (the
/// JSON pointers of its errors).
struct Verdicts {
    server: Result<Config, Vec<String>>,
    schema: Option<BTreeSet<String>>,
}

fn verdicts(v: &jsonschema::Validator, text: &str) -> Verdicts {
    let server = parse(text, Path::new("f.jsonc"), Path::new("/base"))
        .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect());
    let schema = value_of(text)
        .map(|value| v.iter_errors(&value).map(|e| e.instance_path().to_string()).collect());
    Verdicts { server, schema }
}

// ---- the fields, both ways ------------------------------------------------------------

/// What the schema says about the config's fields.
#[derive(Default)]
struct Described {
    /// Every field path (`services.*.ready.port`), `*` for any key of a map.
    fields: BTreeSet<String>,
    /// Paths the schema's conditions (`if`, `then`, `not`, `required`) name:
    /// each must be a field, or a rule would quietly check nothing.
    named: BTreeSet<String>,
    /// The `default` announced at each path.
    defaults: BTreeMap<String, Value>,
}

fn join(at: &str, key: &str) -> String {
    match (at, key) {
        ("", k) => k.to_string(),
        (a, "") => a.to_string(),
        (a, k) => format!("{a}.{k}"),
    }
}

/// Walks a schema node that describes the value at `at`. `defining`: false
/// inside conditions, whose properties restrict fields but define none.
fn describe(root: &Value, node: &Value, at: &str, defining: bool, out: &mut Described) {
    let Some(node) = node.as_object() else { return };
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("only local $refs");
        describe(root, &root["$defs"][name], at, defining, out);
    }
    if let Some(d) = node.get("default").filter(|_| defining) {
        let before = out.defaults.insert(at.to_string(), d.clone());
        assert!(before.is_none_or(|b| &b == d), "{at}: two defaults");
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for branch in node.get(key).and_then(Value::as_array).into_iter().flatten() {
            describe(root, branch, at, defining, out);
        }
    }
    for key in ["if", "then", "else", "not"] {
        if let Some(cond) = node.get(key) {
            describe(root, cond, at, false, out);
        }
    }
    for name in node.get("required").and_then(Value::as_array).into_iter().flatten() {
        out.named.insert(join(at, name.as_str().expect("required names are strings")));
    }
    for (name, sub) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let path = join(at, name);
        if defining {
            out.fields.insert(path.clone());
        } else {
            out.named.insert(path.clone());
        }
        describe(root, sub, &path, defining, out);
    }
    if let Some(sub) = node.get("additionalProperties").filter(|s| s.is_object()) {
        describe(root, sub, &join(at, "*"), defining, out);
    }
}

fn described() -> Described {
    let root = schema();
    let mut out = Described::default();
    describe(&root, &root, "", true, &mut out);
    out
}

/// The field paths the server's walk knows, from the lists it checks with.
fn known_by_the_server() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    for f in fields::KNOWN {
        known.extend(f.names.iter().map(|n| join(f.at, n)));
    }
    for mount in guard::MOUNTS {
        for f in guard::KNOWN {
            let at = join(mount, f.at);
            known.extend(f.names.iter().map(|n| join(&at, n)));
        }
    }
    known
}

#[test]
fn the_schema_is_valid_json_schema_2020_12() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    if let Err(e) = jsonschema::meta::validate(&s) {
        panic!("spec/flowlayer.schema.json is not a valid schema: {e} at {}", e.instance_path());
    }
}

#[test]
fn the_schema_knows_exactly_the_fields_the_server_knows() {
    let described = described();
    let server = known_by_the_server();
    let only_schema: Vec<_> = described.fields.difference(&server).collect();
    let only_server: Vec<_> = server.difference(&described.fields).collect();
    assert!(
        only_schema.is_empty() && only_server.is_empty(),
        "fields only in spec/flowlayer.schema.json: {only_schema:?}\n\
         fields only in the server (config::fields, guard::config): {only_server:?}"
    );
    let unknown: Vec<_> = described.named.difference(&described.fields).collect();
    assert!(unknown.is_empty(), "the schema's conditions name no field: {unknown:?}");
}

#[test]
fn every_default_of_the_schema_is_what_the_server_does_without_the_field() {
    let base = ok(r#"{"services": {"a": {"cmd": "x"}}}"#);
    let a = &base.services[0];
    let ready = ok(r#"{"services": {"a": {"cmd": "x", "ready": {"type": "tcp", "port": 1}}}}"#)
        .services[0]
        .ready
        .clone()
        .expect("a probe");
    let restart =
        ok(r#"{"services": {"a": {"cmd": "x", "restart": {}}}}"#).services[0].restart.clone();
    let g = ok(r#"{"guard": {"cpu": true, "memory": true, "growth": true, "repeat": true,
                  "rate": true, "processes": true, "runaway": true},
                  "services": {"a": {"cmd": "x"}}}"#)
    .services[0]
        .guard
        .clone()
        .expect("a guard");
    let ms = |d: std::time::Duration| json!(d.as_millis() as u64);
    let cpu = g.cpu.unwrap();
    let memory = g.memory.unwrap();
    let growth = g.growth.unwrap();
    let repeat = g.repeat.unwrap();
    let rate = g.rate.unwrap();
    let processes = g.processes.unwrap();
    let runaway = g.runaway.unwrap();
    let origins: Vec<String> = base.session.allowed_origins.iter().map(|o| o.to_string()).collect();
    let kind = match a.kind {
        super::Kind::Daemon => "daemon",
        super::Kind::Oneshot => "oneshot",
    };
    let mut server: BTreeMap<String, Value> = [
        ("logView.maxEntries", json!(crate::state::DEFAULT_LOG_LIMIT)),
        ("session.allowedOrigins", json!(origins)),
        ("services.*.kind", json!(kind)),
        ("services.*.port", json!(a.port)),
        ("services.*.dependsOn", json!(a.depends_on)),
        ("services.*.env", json!(a.env.iter().cloned().collect::<BTreeMap<_, _>>())),
        ("services.*.ready.intervalMs", ms(ready.interval)),
        ("services.*.restart", json!(a.restart.policy.as_str())),
        ("services.*.restart.policy", json!(restart.policy.as_str())),
        ("services.*.restart.backoffMs", ms(restart.backoff)),
        ("services.*.restart.maxBackoffMs", ms(restart.max_backoff)),
        ("services.*.restart.resetAfterMs", ms(restart.reset_after)),
        ("services.*.restart.maxRestarts", json!(restart.max_restarts)),
        ("services.*.restart.windowMs", ms(restart.window)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let guard_defaults = [
        ("action", json!(cpu.action)),
        ("dryRun", json!(g.dry_run)),
        ("sampleMs", ms(g.sample)),
        ("cpu.above", json!(cpu.limits.above)),
        ("cpu.forMs", ms(cpu.limits.window)),
        ("memory.aboveMb", json!(memory.limits.above_mb)),
        ("growth.mbPerMin", json!(growth.limits.mb_per_min)),
        ("growth.forMs", ms(growth.limits.window)),
        ("repeat.lines", json!(repeat.limits.lines)),
        ("repeat.withinMs", ms(repeat.limits.within)),
        ("repeat.share", json!(repeat.limits.share)),
        ("rate.linesPerSec", json!(rate.limits.lines_per_sec)),
        ("rate.forMs", ms(rate.limits.window)),
        ("processes.above", json!(processes.limits.above)),
        ("runaway.action", json!(runaway.action)),
        ("restartBudget.max", json!(g.restart_budget.max)),
        ("restartBudget.windowMs", ms(g.restart_budget.window)),
    ];
    for mount in guard::MOUNTS {
        for (path, v) in &guard_defaults {
            server.insert(join(mount, path), v.clone());
        }
    }
    // Numbers compare as numbers: the schema's 2048 is the server's 2048.0.
    let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    let schema = described().defaults;
    for (path, d) in &schema {
        let s = server
            .get(path)
            .unwrap_or_else(|| panic!("{path}: the schema's default is not checked"));
        assert!(same(d, s), "{path}: the schema says {d}, the server does {s}");
    }
    let missing: Vec<_> = server.keys().filter(|k| !schema.contains_key(*k)).collect();
    assert!(missing.is_empty(), "defaults the schema does not announce: {missing:?}");
}

fn ok(text: &str) -> Config {
    parse(text, Path::new("f.jsonc"), Path::new("/base"))
        .unwrap_or_else(|e| panic!("{text}: {}", e.problems[0]))
}

// ---- the verdicts, side by side --------------------------------------------------------

/// A fixture the server refuses, and why.
struct Refused {
    file: &'static str,
    /// The JSON pointers of the schema's errors (empty: it cannot tell).
    schema_at: &'static [&'static str],
    /// The server's problems the schema cannot state (the start of each
    /// message), with the reason.
    beyond: &'static [(&'static str, &'static str)],
}

const NOT_A_REFERENCE: &str = "JSON Schema cannot check that a name is a key elsewhere in the file";

/// Every fixture the server refuses. The others must pass the schema.
const REFUSED: &[Refused] = &[
    Refused {
        file: "tests/bad_guard.jsonc",
        schema_at: &[
            "/guard/action",
            "/guard/sampleMs",
            "/guard/repeat/share",
            "/services/api/guard/cpu/above",
            "/services/api/guard/rate",
            "/services/web/guard",
        ],
        beyond: &[],
    },
    Refused {
        file: "tests/bad_many.jsonc",
        schema_at: &[
            "/session/bind",
            "/logView/maxEntries",
            "/services/api",
            "/services/web/cmd",
            "/services/web/kind",
            "/services",
            "/services/job/ready",
        ],
        beyond: &[
            ("service \"job\": dependsOn names unknown service \"ghost\"", NOT_A_REFERENCE),
            ("service \"job\": dependsOn names the service itself", NOT_A_REFERENCE),
        ],
    },
    Refused {
        file: "tests/bad_names.jsonc",
        schema_at: &["/services"],
        beyond: &[("services.api.port: key given twice", TWICE)],
    },
    Refused {
        file: "tests/cycle.jsonc",
        schema_at: &[],
        beyond: &[(
            "dependency cycle: a -> c -> b -> a",
            "JSON Schema cannot follow names from one service to another",
        )],
    },
    Refused {
        file: "tests/syntax.jsonc",
        schema_at: &[],
        beyond: &[("syntax error at line 3:", "not JSON: there is nothing to validate")],
    },
];

/// What the tests put in a fixture's `@KEY@` placeholders (tests/support:
/// `copy_fixture`), one value each that the tests use.
const VARS: &[(&str, &str)] = &[
    ("HELPER", "/work/target/debug/fl-helper"),
    ("DIR", "/tmp/flowlayer-test"),
    ("P1", "7301"),
    ("P2", "7302"),
    ("P3", "7303"),
    ("PORT", "7304"),
    ("BUSY", "7305"),
    ("LINES", "200000"),
    ("TICK", "100"),
    ("MAILER", "3600000"),
    ("DRY", "true"),
    ("POLICY", "on-failure"),
    ("CODE", "1"),
    ("BACKOFF", "1500"),
    ("MAX", "5"),
    ("TOKEN", "a-token-from-the-test"),
];

/// A fixture as a test would run it: every placeholder filled.
fn filled(name: &str, text: &str) -> String {
    let mut text = text.to_string();
    for (k, v) in VARS {
        text = text.replace(&format!("@{k}@"), v);
    }
    let left = text.split('@').skip(1).step_by(2).find(|w| {
        !w.is_empty()
            && w.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    });
    assert!(left.is_none(), "{name}: give @{}@ a value in VARS", left.unwrap_or_default());
    text
}

/// Every config file under fixtures/.
fn fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("fixtures/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "jsonc" || e == "json") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"), &mut out);
    out.sort();
    out
}

#[test]
fn every_fixture_the_server_accepts_passes_the_schema_and_those_it_refuses_are_refused_alike() {
    let v = validator();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let files = fixtures();
    assert!(files.len() > 40, "fixtures/ has the configs: {files:?}");
    for file in &files {
        let name =
            file.strip_prefix(&root).expect("under fixtures/").to_string_lossy().into_owned();
        let text = filled(&name, &std::fs::read_to_string(file).expect("a fixture is readable"));
        let got = verdicts(&v, &text);
        let refused = REFUSED.iter().find(|r| r.file == name);
        let schema_at: BTreeSet<String> = got.schema.clone().unwrap_or_default();
        match (refused, &got.server) {
            (None, Ok(cfg)) => {
                assert!(
                    schema_at.is_empty(),
                    "{name}: the server accepts it, the schema refuses it at {schema_at:?}"
                );
                // The cycle check comes after validation; a fixture that has one is listed.
                crate::plan::Plan::build(cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            (None, Err(problems)) => {
                panic!("{name}: refused by the server but not listed: {problems:#?}")
            }
            (Some(r), _) => {
                let expected: BTreeSet<String> =
                    r.schema_at.iter().map(|s| s.to_string()).collect();
                assert_eq!(schema_at, expected, "{name}: where the schema refuses it");
                let server = match &got.server {
                    Ok(cfg) => match crate::plan::Plan::build(cfg) {
                        Ok(_) => panic!("{name}: listed as refused, but the server accepts it"),
                        Err(e) => vec![e.to_string()],
                    },
                    Err(problems) => problems.clone(),
                };
                for (message, why) in r.beyond {
                    assert!(
                        server.iter().any(|p| p.starts_with(message)),
                        "{name}: the server should say {message:?} ({why}); it says {server:#?}"
                    );
                }
            }
        }
    }
    for r in REFUSED {
        assert!(files.iter().any(|f| f.ends_with(r.file)), "{} is listed but gone", r.file);
    }
}

/// What the server and the schema say about a case.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Both accept it.
    Valid,
    /// Both refuse it.
    Invalid,
    /// The server refuses it, the schema cannot say so: why.
    ServerOnly(&'static str),
}
use Expect::{Invalid, ServerOnly, Valid};

const WHOLE: &str =
    "JSON Schema counts 80.0 and 1e2 as integers; the server wants them written whole";
const TWO_FIELDS: &str = "JSON Schema cannot compare two values of the file";
const TWICE: &str = "JSON Schema sees the parsed object, where a key given twice is there once";
const CASE_TWINS: &str = "JSON Schema cannot compare two names of an object ignoring case";

/// A config with one service `a` whose fields are `fields`.
fn svc(fields: &str) -> String {
    format!(
        r#"{{"services": {{"a": {{"cmd": "x"{}{fields}}}}}}}"#,
        if fields.is_empty() { "" } else { ", " }
    )
}

/// A config whose top level has `fields` besides a service.
fn top(fields: &str) -> String {
    format!(r#"{{{fields}, "services": {{"a": {{"cmd": "x"}}}}}}"#)
}

/// Each rule at its edges: the last value accepted and the first refused.
fn cases() -> Vec<(String, Expect)> {
    let s = |x: &str| x.to_string();
    let name64 = format!(r#""name": "{}""#, "a".repeat(64));
    let name65 = format!(r#""name": "{}""#, "a".repeat(65));
    let mut cases = vec![
        // The file and the top level.
        (svc(""), Valid),
        (s("{}"), Invalid),
        (s(r#"{"services": {}}"#), Invalid),
        (s(r#"{"services": []}"#), Invalid),
        (s("[]"), Invalid),
        (top(r#""servces": {}"#), Invalid),
        (top(r#""$schema": "./spec/flowlayer.schema.json""#), Valid),
        (top(r#""$schema": 1"#), Invalid),
        (svc(r#""$schema": "x""#), Invalid),
        (top(r#""name": "shop-2.x_y""#), Valid),
        (top(&name64), Valid),
        (top(&name65), Invalid),
        (top(r#""name": "-x""#), Invalid),
        (top(r#""name": ".x""#), Invalid),
        (top(r#""name": """#), Invalid),
        (top(r#""name": 3"#), Invalid),
        // session
        (top(r#""session": {"bind": "6999"}"#), Valid),
        (top(r#""session": {"bind": ":6999"}"#), Valid),
        (top(r#""session": {"bind": "localhost:7000"}"#), Valid),
        (top(r#""session": {"bind": "[::1]:7000"}"#), Valid),
        (top(r#""session": {"bind": "0"}"#), Valid),
        (top(r#""session": {"bind": "65535"}"#), Valid),
        (top(r#""session": {"bind": "65536"}"#), Invalid),
        (top(r#""session": {"bind": "+80"}"#), Valid),
        (top(r#""session": {"bind": "0080"}"#), Valid),
        (top(r#""session": {"bind": " 6999 "}"#), Valid),
        (top(r#""session": {"bind": ""}"#), Invalid),
        (top(r#""session": {"bind": "host:"}"#), Invalid),
        (top(r#""session": {"bind": "::1"}"#), Invalid),
        (top(r#""session": {"bind": "[::1]"}"#), Invalid),
        (top(r#""session": {"bind": "x:abc"}"#), Invalid),
        (top(r#""session": {"bind": 6999}"#), Invalid),
        (top(r#""session": {"addr": ":7001"}"#), Valid),
        (top(r#""session": {"addr": "70000"}"#), Invalid),
        (top(r#""session": {"bind": "1", "addr": "2"}"#), Invalid),
        (top(r#""session": {"token": "a b"}"#), Valid),
        (top(r#""session": {"token": "\ufeffx"}"#), Valid),
        (top(r#""session": {"token": ""}"#), Invalid),
        (top(r#""session": {"token": "  "}"#), Invalid),
        (top(r#""session": {"token": " a"}"#), Invalid),
        (top(r#""session": {"token": "a\u00a0"}"#), Invalid),
        (top(r#""session": {"token": "a\nb"}"#), Invalid),
        (top(r#""session": {"token": "a\u007fb"}"#), Invalid),
        (top(r#""session": {"token": "a\u0085b"}"#), Invalid),
        (top(r#""session": {"token": 5}"#), Invalid),
        (
            top(
                r#""session": {"allowedOrigins": ["http://localhost:5173", " HTTPS://Dash.example "]}"#,
            ),
            Valid,
        ),
        (
            top(
                r#""session": {"allowedOrigins": ["http://[::1]:6999", "https://x:65535", "http://x\ty"]}"#,
            ),
            Valid,
        ),
        (top(r#""session": {"allowedOrigins": []}"#), Valid),
        (top(r#""session": {"allowedOrigins": ["http://x/"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["null"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["ftp://x"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://x:0"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://x:65536"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://user@x"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://::1:80"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://[::1"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://[]"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["http://x y"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": ["localhost:5173"]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": [7]}"#), Invalid),
        (top(r#""session": {"allowedOrigins": "http://x"}"#), Invalid),
        (top(r#""session": {"port": 1}"#), Invalid),
        (top(r#""session": "x""#), Invalid),
        // logs, logView
        (top(r#""logs": {"dir": "./logs"}"#), Valid),
        (top(r#""logs": {}"#), Valid),
        (top(r#""logs": {"dir": ""}"#), Invalid),
        (top(r#""logs": {"dir": 1}"#), Invalid),
        (top(r#""logs": {"path": "x"}"#), Invalid),
        (top(r#""logView": {"maxEntries": 1, "all": {"maxEntries": 4294967295}}"#), Valid),
        (top(r#""logView": {"maxEntries": 0}"#), Invalid),
        (top(r#""logView": {"maxEntries": 4294967296}"#), Invalid),
        (top(r#""logView": {"maxEntries": -1}"#), Invalid),
        (top(r#""logView": {"maxEntries": "5"}"#), Invalid),
        (top(r#""logView": {"maxEntries": 1.5}"#), Invalid),
        (top(r#""logView": {"maxEntries": 5.0}"#), ServerOnly(WHOLE)),
        (top(r#""logView": {"maxEntries": 1e2}"#), ServerOnly(WHOLE)),
        (top(r#""logView": {"all": {"maxEntries": 0}}"#), Invalid),
        (top(r#""logView": {"all": 5}"#), Invalid),
        // service names
        (s(r#"{"services": {"a.b_c-D9": {"cmd": "x"}, "...": {"cmd": "x"}}}"#), Valid),
        (s(r#"{"services": {".": {"cmd": "x"}}}"#), Invalid),
        (s(r#"{"services": {"..": {"cmd": "x"}}}"#), Invalid),
        (s(r#"{"services": {"b c": {"cmd": "x"}}}"#), Invalid),
        (s(r#"{"services": {"é": {"cmd": "x"}}}"#), Invalid),
        (s(r#"{"services": {"": {"cmd": "x"}}}"#), Invalid),
        (s(r#"{"services": {"a": "x"}}"#), Invalid),
        (s(r#"{"services": {"api": {"cmd": "x"}, "API": {"cmd": "x"}}}"#), ServerOnly(CASE_TWINS)),
        (s(r#"{"services": {"a": {"cmd": "x", "port": 1, "port": 2}}}"#), ServerOnly(TWICE)),
        // cmd, stopCmd
        (s(r#"{"services": {"a": {}}}"#), Invalid),
        (s(r#"{"services": {"a": {"cmd": " x "}}}"#), Valid),
        (s(r#"{"services": {"a": {"cmd": ["x", ""]}}}"#), Valid),
        (s(r#"{"services": {"a": {"cmd": ""}}}"#), Invalid),
        (s(r#"{"services": {"a": {"cmd": " \t\n\r\f"}}}"#), Invalid),
        (s(r#"{"services": {"a": {"cmd": "\u000b"}}}"#), Valid),
        (s(r#"{"services": {"a": {"cmd": []}}}"#), Invalid),
        (s(r#"{"services": {"a": {"cmd": [""]}}}"#), Invalid),
        (s(r#"{"services": {"a": {"cmd": ["x", 1]}}}"#), Invalid),
        (s(r#"{"services": {"a": {"cmd": 5}}}"#), Invalid),
        (svc(r#""stopCmd": ["stop", "-now"]"#), Valid),
        (svc(r#""stopCmd": """#), Invalid),
        // kind, port, dependsOn, env, logView, cwd
        (svc(r#""kind": "oneshot""#), Valid),
        (svc(r#""kind": "cron""#), Invalid),
        (svc(r#""port": 0"#), Valid),
        (svc(r#""port": 65535"#), Valid),
        (svc(r#""port": 65536"#), Invalid),
        (svc(r#""port": -1"#), Invalid),
        (svc(r#""port": "80""#), Invalid),
        (svc(r#""port": 80.0"#), ServerOnly(WHOLE)),
        (
            s(r#"{"services": {"a": {"cmd": "x", "dependsOn": ["b", "b"]}, "b": {"cmd": "x"}}}"#),
            Valid,
        ),
        (svc(r#""dependsOn": "b""#), Invalid),
        (svc(r#""dependsOn": [1]"#), Invalid),
        (svc(r#""dependsOn": ["ghost"]"#), ServerOnly(NOT_A_REFERENCE)),
        (svc(r#""dependsOn": ["a"]"#), ServerOnly(NOT_A_REFERENCE)),
        (svc(r#""env": {"K": "v", "k2": ""}"#), Valid),
        (svc(r#""env": {"": "v"}"#), Invalid),
        (svc(r#""env": {"A=B": "v"}"#), Invalid),
        (svc(r#""env": {"K": 1}"#), Invalid),
        (svc(r#""env": []"#), Invalid),
        (svc(r#""logView": {"maxEntries": 1}"#), Valid),
        (svc(r#""logView": {"maxEntries": 0}"#), Invalid),
        (svc(r#""logView": {"all": {}}"#), Invalid),
        (svc(r#""cwd": "./sub""#), Valid),
        (svc(r#""cwd": """#), Invalid),
        (svc(r#""cwd": 1"#), Invalid),
        (svc(r#""colour": 1"#), Invalid),
        // ready
        (svc(r#""ready": {"type": "none"}"#), Valid),
        (svc(r#""ready": {}"#), Invalid),
        (svc(r#""ready": {"type": "grpc"}"#), Invalid),
        (svc(r#""ready": "tcp""#), Invalid),
        (svc(r#""port": 5432, "ready": {"type": "tcp"}"#), Valid),
        (svc(r#""ready": {"type": "tcp"}"#), Invalid),
        (svc(r#""port": 0, "ready": {"type": "tcp"}"#), Invalid),
        (svc(r#""ready": {"type": "tcp", "port": 1}"#), Valid),
        (svc(r#""ready": {"type": "tcp", "port": 0}"#), Invalid),
        (svc(r#""ready": {"type": "tcp", "port": 65536}"#), Invalid),
        (svc(r#""ready": {"type": "none", "port": "x"}"#), Invalid),
        (svc(r#""ready": {"type": "tcp", "port": 1, "url": "https://x/"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://localhost:3000/health"}"#), Valid),
        (svc(r#""ready": {"type": "http"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": 80}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://x"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "http://h?x=1"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "http://[::1]:8080/x"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "http://[::1]"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "http://h:80:90/"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "http://:80/"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "http://h:]/"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "http://h:+0065535/"}"#), Valid),
        (svc(r#""ready": {"type": "http", "url": "https://x/"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "HTTP://x/"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://?q"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://x:0/"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://h:/"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://h:65536"}"#), Invalid),
        (svc(r#""ready": {"type": "http", "url": "http://a@b/"}"#), Invalid),
        (svc(r#""ready": {"type": "none", "intervalMs": 10, "timeoutMs": 1}"#), Valid),
        (svc(r#""ready": {"type": "none", "intervalMs": 9}"#), Invalid),
        (svc(r#""ready": {"type": "none", "timeoutMs": 0}"#), Invalid),
        (svc(r#""ready": {"type": "none", "timeoutMs": 4294967296}"#), Invalid),
        // restart
        (svc(r#""restart": "no""#), Valid),
        (svc(r#""restart": "on-failure""#), Valid),
        (svc(r#""restart": "always""#), Valid),
        (svc(r#""restart": "sometimes""#), Invalid),
        (svc(r#""restart": true"#), Invalid),
        (svc(r#""restart": {}"#), Valid),
        (svc(r#""restart": {"policy": "always", "backoffMs": 200, "maxRestarts": 3}"#), Valid),
        (svc(r#""restart": {"policy": "never"}"#), Invalid),
        (svc(r#""restart": {"backoffMs": 0}"#), Invalid),
        (svc(r#""restart": {"maxRestarts": 0}"#), Invalid),
        (svc(r#""restart": {"resetAfterMs": 4294967295, "windowMs": 1}"#), Valid),
        (svc(r#""restart": {"windowMs": "1s"}"#), Invalid),
        (svc(r#""restart": {"jitter": 1}"#), Invalid),
        (svc(r#""restart": {"maxBackoffMs": 1000}"#), Valid),
        (svc(r#""restart": {"maxBackoffMs": 999}"#), Invalid),
        (svc(r#""restart": {"backoffMs": 30000}"#), Valid),
        (svc(r#""restart": {"backoffMs": 30001}"#), Invalid),
        (svc(r#""restart": {"backoffMs": 5000, "maxBackoffMs": 5000}"#), Valid),
        (svc(r#""restart": {"backoffMs": 5000, "maxBackoffMs": 4999}"#), ServerOnly(TWO_FIELDS)),
        (svc(r#""kind": "oneshot", "restart": "on-failure""#), Valid),
        (svc(r#""kind": "oneshot", "restart": {"backoffMs": 5}"#), Valid),
        (svc(r#""kind": "oneshot", "restart": "always""#), Invalid),
        (svc(r#""kind": "oneshot", "restart": {"policy": "always"}"#), Invalid),
        // guard, at both levels
        (top(r#""guard": {}"#), Valid),
        (top(r#""guard": false"#), Valid),
        (top(r#""guard": true"#), Invalid),
        (top(r#""guard": "off""#), Invalid),
        (svc(r#""guard": false"#), Valid),
        (svc(r#""guard": true"#), Invalid),
        (svc(r#""guard": {"memory": false, "cpu": {"forMs": 5000}}"#), Valid),
        (top(r#""guard": {"action": "stop", "dryRun": true, "sampleMs": 250}"#), Valid),
        (top(r#""guard": {"action": "kill"}"#), Invalid),
        (top(r#""guard": {"dryRun": "yes"}"#), Invalid),
        (top(r#""guard": {"sampleMs": 249}"#), Invalid),
        (top(r#""guard": {"sampleMs": 4294967296}"#), Invalid),
        (top(r#""guard": {"colour": 1}"#), Invalid),
        (top(r#""guard": {"cpu": true, "repeat": {}, "runaway": {"action": "stop"}}"#), Valid),
        (top(r#""guard": {"cpu": {"above": 0.01, "forMs": 1, "action": "alert"}}"#), Valid),
        (top(r#""guard": {"cpu": {"above": 0}}"#), Invalid),
        (top(r#""guard": {"cpu": {"forMs": 1.5}}"#), Invalid),
        (top(r#""guard": {"cpu": {"forMs": 2.0}}"#), ServerOnly(WHOLE)),
        (top(r#""guard": {"cpu": {"when": 1}}"#), Invalid),
        (top(r#""guard": {"cpu": 7}"#), Invalid),
        (top(r#""guard": {"memory": {"aboveMb": 0.5}}"#), Valid),
        (top(r#""guard": {"memory": {"aboveMb": "2G"}}"#), Invalid),
        (top(r#""guard": {"growth": {"mbPerMin": -1}}"#), Invalid),
        (top(r#""guard": {"growth": {"forMs": 4000}}"#), Valid),
        (top(r#""guard": {"growth": {"forMs": 0}}"#), Invalid),
        (top(r#""guard": {"growth": {"forMs": 3999}}"#), ServerOnly(TWO_FIELDS)),
        (top(r#""guard": {"repeat": {"lines": 1, "withinMs": 100, "share": 1}}"#), Valid),
        (top(r#""guard": {"repeat": {"lines": 0}}"#), Invalid),
        (top(r#""guard": {"repeat": {"withinMs": 99}}"#), Invalid),
        (top(r#""guard": {"repeat": {"share": 1.0001}}"#), Invalid),
        (top(r#""guard": {"repeat": {"share": 0}}"#), Invalid),
        (top(r#""guard": {"repeat": {"action": 3}}"#), Invalid),
        (top(r#""guard": {"rate": {"linesPerSec": 0.5, "forMs": 100}}"#), Valid),
        (top(r#""guard": {"rate": {"linesPerSec": 0}}"#), Invalid),
        (top(r#""guard": {"rate": {"forMs": 99}}"#), Invalid),
        (top(r#""guard": {"rate": {"perSec": 5}}"#), Invalid),
        (top(r#""guard": {"processes": {"above": 1}}"#), Valid),
        (top(r#""guard": {"processes": {"above": 0}}"#), Invalid),
        (top(r#""guard": {"runaway": {"cpu": 1}}"#), Invalid),
        (top(r#""guard": {"restartBudget": {"max": 0, "windowMs": 4294967295}}"#), Valid),
        (top(r#""guard": {"restartBudget": {"max": -1}}"#), Invalid),
        (top(r#""guard": {"restartBudget": {"windowMs": 0}}"#), Invalid),
        (top(r#""guard": {"restartBudget": {"max": 4294967296}}"#), Invalid),
        (top(r#""guard": {"restartBudget": true}"#), Invalid),
    ];
    // The names the server keeps for its own files, in any case, and the
    // longest name, from the server's own lists.
    let one = |name: &str| s(&format!(r#"{{"services": {{"{name}": {{"cmd": "x"}}}}}}"#));
    for (reserved, _) in super::names::RESERVED {
        let mut title = reserved.to_string();
        title[..1].make_ascii_uppercase();
        for name in [reserved.to_string(), reserved.to_ascii_uppercase(), title] {
            cases.push((one(&name), Invalid));
        }
        cases.push((one(&format!("{reserved}x")), Valid));
        cases.push((one(&format!("{reserved}.jsonl")), Valid));
    }
    let max = super::names::MAX_NAME_BYTES;
    cases.push((one(&"a".repeat(max)), Valid));
    cases.push((one(&"a".repeat(max + 1)), Invalid));
    cases
}

#[test]
fn the_schema_and_the_server_agree_at_every_rules_edges() {
    let v = validator();
    let mut wrong = Vec::new();
    for (text, expect) in cases() {
        let got = verdicts(&v, &text);
        let server_ok = got.server.is_ok();
        let schema_ok = got.schema.as_ref().expect("every case is JSON").is_empty();
        let agrees = match expect {
            Valid => server_ok && schema_ok,
            Invalid => !server_ok && !schema_ok,
            ServerOnly(_) => !server_ok && schema_ok,
        };
        if !agrees {
            wrong.push(format!(
                "{text}\n  expected {expect:?}; server: {:?}; schema errors at: {:?}",
                got.server.err().unwrap_or_default(),
                got.schema
            ));
        }
    }
    assert!(wrong.is_empty(), "{} case(s) disagree:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn the_whole_configs_shown_in_the_docs_pass_the_server_and_the_schema() {
    let v = validator();
    let mut seen = 0;
    for doc in ["README.md", "spec/config.md"] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc))
            .expect("the doc is readable");
        // The ```jsonc blocks; fragments (`...`, a field alone) are not JSON.
        for block in text.split("```jsonc\n").skip(1).filter_map(|b| b.split("```").next()) {
            let whole = value_of(block).is_some_and(|v| v.get("services").is_some());
            if !whole {
                continue;
            }
            seen += 1;
            let got = verdicts(&v, block);
            assert!(got.server.is_ok(), "{doc}: the server refuses\n{block}{:?}", got.server.err());
            assert_eq!(got.schema, Some(BTreeSet::new()), "{doc}: the schema refuses\n{block}");
        }
    }
    assert!(seen >= 1, "README.md shows a whole config");
}
