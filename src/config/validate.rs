//! Strict validation: parsed JSON value -> `Config`, or every problem found.
//!
//! A hand-written walk instead of `#[serde(deny_unknown_fields)]` structs: serde
//! stops at the first problem and does not say where it was, while the contract
//! asks for every problem at once, each naming its field path.

use super::fields::{self, Fields};
use super::{
    parse_bind, BindAddr, Config, ConfigProblem, HttpUrl, Kind, LogView, Probe, Ready, Restart,
    RestartPolicy, ServiceCfg, SessionCfg, DEFAULT_READY_INTERVAL, MIN_READY_INTERVAL_MS,
};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

type Obj = Map<String, Value>;

struct Walk {
    problems: Vec<ConfigProblem>,
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

impl Walk {
    fn push(&mut self, p: ConfigProblem) {
        self.problems.push(p);
    }

    /// The object at `at`, with the fields `known` does not name reported.
    fn object<'v>(&mut self, v: &'v Value, at: &str, known: &Fields) -> Option<&'v Obj> {
        // What the schema test compares with the schema must be what is checked.
        debug_assert!(fields::KNOWN.contains(&known) && known.is_at("", at), "{at}: {known:?}");
        let o = self.map(v, at)?;
        for k in o.keys() {
            if !known.names.contains(&k.as_str()) {
                self.push(ConfigProblem::UnknownField { at: at.to_string(), field: k.clone() });
            }
        }
        Some(o)
    }

    /// The object at `at` whose keys are names (services), not fields.
    fn map<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v Obj> {
        match v.as_object() {
            Some(o) => Some(o),
            None => {
                self.push(ConfigProblem::WrongType { at: at.to_string(), expected: "an object" });
                None
            }
        }
    }

    fn string(&mut self, o: &Obj, key: &str, at: &str) -> Option<String> {
        match o.get(key)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.push(ConfigProblem::WrongType { at: join(at, key), expected: "a string" });
                None
            }
        }
    }

    fn non_empty_string(&mut self, o: &Obj, key: &str, at: &str) -> Option<String> {
        let s = self.string(o, key, at)?;
        if s.is_empty() {
            self.invalid(join(at, key), "\"\"", "must not be empty");
            return None;
        }
        Some(s)
    }

    /// An integer field within `min..=max`.
    fn int(&mut self, o: &Obj, key: &str, at: &str, min: u64, max: u64) -> Option<u64> {
        let v = o.get(key)?;
        let path = join(at, key);
        match v.as_u64() {
            Some(n) if n >= min && n <= max => Some(n),
            Some(n) => {
                self.invalid(path, &n.to_string(), range_rule(min));
                None
            }
            None if v.as_i64().is_some() => {
                self.invalid(path, &v.to_string(), range_rule(min));
                None
            }
            None => {
                self.push(ConfigProblem::WrongType { at: path, expected: "a whole number" });
                None
            }
        }
    }

    fn invalid(&mut self, at: String, value: &str, rule: &'static str) {
        self.push(ConfigProblem::Invalid { at, value: value.to_string(), rule });
    }

    /// A command: a whitespace-split string or a non-empty array of strings.
    fn command(&mut self, o: &Obj, key: &str, at: &str) -> Option<Vec<String>> {
        let path = join(at, key);
        let argv: Vec<String> = match o.get(key)? {
            Value::String(s) => s.split_ascii_whitespace().map(String::from).collect(),
            Value::Array(items) => {
                let mut argv = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => argv.push(s.to_string()),
                        None => {
                            self.push(ConfigProblem::WrongType {
                                at: format!("{path}[{i}]"),
                                expected: "a string",
                            });
                            return None;
                        }
                    }
                }
                argv
            }
            _ => {
                self.push(ConfigProblem::WrongType {
                    at: path,
                    expected: "a string or an array of strings",
                });
                return None;
            }
        };
        if argv.first().is_none_or(|p| p.is_empty()) {
            self.invalid(path, "(empty command)", "must name a program to run");
            return None;
        }
        Some(argv)
    }
}

fn range_rule(min: u64) -> &'static str {
    match min {
        0 => "is out of range (0 to 65535)",
        MIN_READY_INTERVAL_MS => "must be at least 10",
        _ => "must be a whole number greater than 0 (and in range)",
    }
}

/// `rel` against the config file's directory, without the `./` steps that
/// would otherwise show in every message naming the path.
fn resolve(dir: &Path, rel: String) -> PathBuf {
    dir.join(rel).components().collect()
}

pub(super) fn validate(root: &Value, dir: &Path) -> Result<Config, Vec<ConfigProblem>> {
    let mut w = Walk { problems: Vec::new() };
    let Some(top) = w.object(root, "", &fields::TOP) else {
        return Err(w.problems);
    };
    let name = match w.string(top, "name", "") {
        Some(n) if valid_stack_name(&n) => n,
        Some(n) => {
            w.invalid("name".into(), &format!("\"{n}\""), STACK_NAME_RULE);
            String::new()
        }
        None => default_stack_name(dir),
    };
    // For editors (stacks.md section 6): its value means nothing to the server.
    w.string(top, "$schema", "");
    let session = top.get("session").map(|v| session(&mut w, v)).unwrap_or_default();
    let logs_dir = top.get("logs").and_then(|v| {
        let o = w.object(v, "logs", &fields::LOGS)?;
        w.non_empty_string(o, "dir", "logs").map(|d| resolve(dir, d))
    });
    let log_view = top.get("logView").map(|v| log_view(&mut w, v)).unwrap_or_default();
    let mut services = Vec::new();
    let mut all_deps: Vec<(String, Vec<String>)> = Vec::new();
    let mut all_names: Vec<String> = Vec::new();
    match top.get("services") {
        None => w.push(ConfigProblem::Missing { at: "services".into() }),
        Some(v) => {
            if let Some(o) = w.map(v, "services") {
                if o.is_empty() {
                    w.invalid("services".into(), "{}", "must define at least one service");
                }
                for (name, v) in o {
                    let (svc, deps) = service(&mut w, name, v, dir);
                    all_deps.push((name.clone(), deps));
                    services.extend(svc);
                }
                crate::guard::resolve_all(top.get("guard"), o, &mut services, &mut w.problems);
                all_names = o.keys().cloned().collect();
                w.problems.extend(super::names::problems(&all_names));
            }
        }
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    all_deps.sort();
    for (name, deps) in all_deps {
        for d in deps {
            if d == name {
                w.push(ConfigProblem::SelfDependency { service: name.clone() });
            } else if !all_names.contains(&d) {
                w.push(ConfigProblem::UnknownDependency { service: name.clone(), dep: d });
            }
        }
    }
    if !w.problems.is_empty() {
        return Err(w.problems);
    }
    Ok(Config { path: Default::default(), name, session, logs_dir, log_view, services })
}

/// Longest stack name, in bytes.
pub const STACK_NAME_MAX: usize = 64;
const STACK_NAME_RULE: &str = "is not a valid stack name (letters, digits, '.', '_' and '-', \
     starting with a letter or digit, at most 64 characters)";

/// A stack name is typed on command lines (`flowlayer status -s NAME`) and
/// shown in narrow bars: short, plain, and never taken for a flag.
pub fn valid_stack_name(n: &str) -> bool {
    n.len() <= STACK_NAME_MAX
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The config directory's name made valid: other characters become `-`,
/// leading ones that cannot start a name are dropped; `stack` when nothing is left.
pub fn default_stack_name(dir: &Path) -> String {
    let raw = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mapped: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(STACK_NAME_MAX)
        .collect();
    if mapped.is_empty() {
        "stack".into()
    } else {
        mapped
    }
}

fn session(w: &mut Walk, v: &Value) -> SessionCfg {
    let Some(o) = w.object(v, "session", &fields::SESSION) else {
        return SessionCfg::default();
    };
    if o.contains_key("bind") && o.contains_key("addr") {
        w.push(ConfigProblem::BothBindAndAddr);
    }
    let key = if o.contains_key("bind") { "bind" } else { "addr" };
    let bind: Option<BindAddr> = w.string(o, key, "session").and_then(|b| {
        parse_bind(&b)
            .map_err(|_| {
                w.invalid(
                    join("session", key),
                    &format!("\"{b}\""),
                    "is not a valid address (port, :port or host:port, port 0-65535)",
                )
            })
            .ok()
    });
    let token = w.string(o, "token", "session").filter(|t| match crate::token::check(t) {
        Ok(()) => true,
        Err(problem) => {
            w.push(ConfigProblem::BadToken { problem });
            false
        }
    });
    let allowed_origins = allowed_origins(w, o);
    SessionCfg { bind, token, allowed_origins }
}

/// `session.allowedOrigins`: an array of origins (`scheme://host[:port]`).
fn allowed_origins(w: &mut Walk, o: &Obj) -> Vec<super::Origin> {
    let at = "session.allowedOrigins";
    let Some(v) = o.get("allowedOrigins") else { return Vec::new() };
    let Some(items) = v.as_array() else {
        w.push(ConfigProblem::WrongType { at: at.into(), expected: "an array of strings" });
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(text) = item.as_str() else {
            w.push(ConfigProblem::WrongType { at: format!("{at}[{i}]"), expected: "a string" });
            continue;
        };
        match super::parse_origin(text) {
            Some(origin) => out.push(origin),
            None => w.invalid(
                format!("{at}[{i}]"),
                &format!("\"{text}\""),
                "is not an origin: write scheme://host[:port] (http or https, no path), like \"http://localhost:5173\"",
            ),
        }
    }
    out
}

fn log_view(w: &mut Walk, v: &Value) -> LogView {
    let Some(o) = w.object(v, "logView", &fields::LOG_VIEW) else {
        return LogView::default();
    };
    let max_entries = w.int(o, "maxEntries", "logView", 1, u32::MAX as u64).map(|n| n as usize);
    let all_max_entries = o.get("all").and_then(|a| {
        let ao = w.object(a, "logView.all", &fields::LOG_VIEW_ALL)?;
        w.int(ao, "maxEntries", "logView.all", 1, u32::MAX as u64).map(|n| n as usize)
    });
    LogView { max_entries, all_max_entries }
}

/// The service (when valid) and its `dependsOn` (always, for the graph checks).
fn service(w: &mut Walk, name: &str, v: &Value, dir: &Path) -> (Option<ServiceCfg>, Vec<String>) {
    let Some(o) = w.object(v, &format!("services.{name}"), &fields::SERVICE) else {
        return (None, Vec::new());
    };
    let deps = o
        .get("dependsOn")
        .map(|d| depends_on(w, d, &format!("services.{name}")))
        .unwrap_or_default();
    (service_fields(w, name, o, dir, deps.clone()), deps)
}

fn service_fields(
    w: &mut Walk,
    name: &str,
    o: &Obj,
    dir: &Path,
    depends_on: Vec<String>,
) -> Option<ServiceCfg> {
    let at = format!("services.{name}");
    let valid_name = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != "..";
    if !valid_name {
        w.push(ConfigProblem::BadServiceName { name: name.to_string() });
    }
    let cmd = match o.get("cmd") {
        None => {
            w.push(ConfigProblem::Missing { at: join(&at, "cmd") });
            None
        }
        Some(_) => w.command(o, "cmd", &at),
    };
    let stop_cmd = w.command(o, "stopCmd", &at);
    let kind = match w.string(o, "kind", &at).as_deref() {
        None | Some("daemon") => Kind::Daemon,
        Some("oneshot") => Kind::Oneshot,
        Some(other) => {
            w.invalid(
                join(&at, "kind"),
                &format!("\"{other}\""),
                "must be \"daemon\" or \"oneshot\"",
            );
            Kind::Daemon
        }
    };
    let port = w.int(o, "port", &at, 0, 65535).unwrap_or(0) as u16;
    let ready = match o.get("ready") {
        None => Some(None),
        Some(r) => ready(w, r, &at, port),
    };
    let env = o.get("env").map(|e| env(w, e, &at)).unwrap_or_default();
    let log_view_max = o.get("logView").and_then(|lv| {
        let lo = w.object(lv, &join(&at, "logView"), &fields::SERVICE_LOG_VIEW)?;
        w.int(lo, "maxEntries", &join(&at, "logView"), 1, u32::MAX as u64).map(|n| n as usize)
    });
    let cwd =
        w.non_empty_string(o, "cwd", &at).map(|c| resolve(dir, c)).unwrap_or(dir.to_path_buf());
    let restart = match o.get("restart") {
        None => Some(Restart::default()),
        Some(r) => restart(w, r, &at, kind),
    };
    if !valid_name {
        return None;
    }
    Some(ServiceCfg {
        name: name.to_string(),
        cmd: cmd?,
        stop_cmd,
        kind,
        port,
        ready: ready?,
        depends_on,
        env,
        log_view_max,
        cwd,
        guard: None,
        restart: restart?,
    })
}

/// `restart`: a policy word, or an object with the policy and its limits.
/// `None` when something in it was invalid (reported).
fn restart(w: &mut Walk, v: &Value, at: &str, kind: Kind) -> Option<Restart> {
    let at = join(at, "restart");
    let mut r = Restart::default();
    let before = w.problems.len();
    // Where the policy word is, for messages about it.
    let (word, word_at) = match v {
        Value::String(s) => (Some(s.clone()), at.clone()),
        Value::Object(_) => {
            let o = w.object(v, &at, &fields::RESTART)?;
            let ms = |w: &mut Walk, key: &str| {
                w.int(o, key, &at, 1, u32::MAX as u64).map(Duration::from_millis)
            };
            r.backoff = ms(w, "backoffMs").unwrap_or(r.backoff);
            r.max_backoff = ms(w, "maxBackoffMs").unwrap_or(r.max_backoff);
            r.reset_after = ms(w, "resetAfterMs").unwrap_or(r.reset_after);
            r.window = ms(w, "windowMs").unwrap_or(r.window);
            r.max_restarts = w
                .int(o, "maxRestarts", &at, 1, u32::MAX as u64)
                .map_or(r.max_restarts, |n| n as u32);
            if r.max_backoff < r.backoff {
                // Either one may be the default; name the one the file gives.
                let key = if o.contains_key("maxBackoffMs") { "maxBackoffMs" } else { "backoffMs" };
                let value = o.get(key).map(|v| v.to_string()).unwrap_or_default();
                let rule = if key == "maxBackoffMs" {
                    "must not be less than backoffMs"
                } else {
                    "must not be more than maxBackoffMs"
                };
                w.invalid(join(&at, key), &value, rule);
            }
            (w.string(o, "policy", &at), join(&at, "policy"))
        }
        _ => {
            w.push(ConfigProblem::WrongType { at, expected: "a string or an object" });
            return None;
        }
    };
    r.policy = match word.as_deref() {
        None | Some("no") => RestartPolicy::No,
        Some("on-failure") => RestartPolicy::OnFailure,
        Some("always") => RestartPolicy::Always,
        Some(other) => {
            let rule = "must be \"no\", \"on-failure\" or \"always\"";
            w.invalid(word_at, &format!("\"{other}\""), rule);
            return None;
        }
    };
    if r.policy == RestartPolicy::Always && kind == Kind::Oneshot {
        let rule = "is not allowed for a oneshot, which is meant to end (use \"on-failure\")";
        w.invalid(word_at, "\"always\"", rule);
    }
    (w.problems.len() == before).then_some(r)
}

/// `Some(None)` is a valid "no probe"; `None` means the field was invalid.
fn ready(w: &mut Walk, v: &Value, at: &str, svc_port: u16) -> Option<Option<Ready>> {
    let at = join(at, "ready");
    let o = w.object(v, &at, &fields::READY)?;
    let interval = w
        .int(o, "intervalMs", &at, MIN_READY_INTERVAL_MS, u32::MAX as u64)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_READY_INTERVAL);
    let timeout = w.int(o, "timeoutMs", &at, 1, u32::MAX as u64).map(Duration::from_millis);
    // `port` and `url` are checked whatever the type: a bad value left from
    // another type is still a mistake in the file, and the schema's editors
    // flag it the same way (spec/config.md, `ready`).
    let port = w.int(o, "port", &at, 1, 65535).map(|p| p as u16);
    let url = w.string(o, "url", &at).and_then(|url| {
        let parsed = parse_http_url(&url);
        if parsed.is_none() {
            let rule = "is not a plain http:// URL with a host";
            w.invalid(join(&at, "url"), &format!("\"{url}\""), rule);
        }
        parsed
    });
    let probe = match w.string(o, "type", &at).as_deref() {
        None => {
            if !o.contains_key("type") {
                w.push(ConfigProblem::Missing { at: join(&at, "type") });
            }
            return None;
        }
        Some("none") => return Some(None),
        Some("tcp") => match port.or((svc_port > 0).then_some(svc_port)) {
            Some(port) => Probe::Tcp { port },
            None => {
                if !o.contains_key("port") {
                    w.invalid(
                        join(&at, "port"),
                        "(none)",
                        "is required for a tcp probe when the service has no port",
                    );
                }
                return None;
            }
        },
        Some("http") => match url {
            Some(url) => Probe::Http { url },
            None => {
                if !o.contains_key("url") {
                    w.push(ConfigProblem::Missing { at: join(&at, "url") });
                }
                return None;
            }
        },
        Some(other) => {
            w.invalid(
                join(&at, "type"),
                &format!("\"{other}\""),
                "must be \"http\", \"tcp\" or \"none\"",
            );
            return None;
        }
    };
    Some(Some(Ready { probe, interval, timeout }))
}

pub(crate) fn parse_http_url(url: &str) -> Option<HttpUrl> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p.parse::<u16>().ok()?),
        _ => (authority, 80),
    };
    if host.is_empty() || port == 0 || host.contains('@') {
        return None;
    }
    Some(HttpUrl { host: host.to_string(), port, path })
}

fn depends_on(w: &mut Walk, v: &Value, at: &str) -> Vec<String> {
    let at = join(at, "dependsOn");
    let Some(items) = v.as_array() else {
        w.push(ConfigProblem::WrongType { at, expected: "an array of service names" });
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push(s.to_string()),
            None => {
                w.push(ConfigProblem::WrongType { at: format!("{at}[{i}]"), expected: "a string" })
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn env(w: &mut Walk, v: &Value, at: &str) -> Vec<(String, String)> {
    let at = join(at, "env");
    let Some(o) = v.as_object() else {
        w.push(ConfigProblem::WrongType { at, expected: "an object of strings" });
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in o {
        match v.as_str() {
            Some(s) if !k.is_empty() && !k.contains('=') => out.push((k.clone(), s.to_string())),
            Some(_) => w.invalid(
                at.clone(),
                &format!("\"{k}\""),
                "is not a valid variable name (empty or contains '=')",
            ),
            None => w.push(ConfigProblem::WrongType { at: join(&at, k), expected: "a string" }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use std::path::PathBuf;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("f.jsonc"), Path::new("/base")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn ok(text: &str) -> Config {
        parse(text, Path::new("f.jsonc"), Path::new("/base")).unwrap()
    }

    #[test]
    fn comments_and_trailing_commas_are_accepted() {
        let c = ok(r#"{ // c
            "services": { "a": { "cmd": "x y", }, /* b */ }, }"#);
        assert_eq!(c.services[0].cmd, vec!["x", "y"]);
        assert_eq!(c.services[0].cwd, PathBuf::from("/base"));
    }

    #[test]
    fn unknown_field_names_field_and_path() {
        let p = problems(r#"{"services":{"api":{"cmd":"x","dependson":[]}}}"#);
        assert_eq!(p, vec!["unknown field \"dependson\" in services.api"]);
        let p = problems(r#"{"servces":{}}"#);
        assert!(p.contains(&"unknown field \"servces\" at the top level".to_string()));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(
            r#"{"session":{"bind":"99999","token":""},"logView":{"maxEntries":0},
               "services":{"a":{"cmd":[],"kind":"cron","port":-1},
                           "b c":{"cmd":"x"},
                           "d":{"cmd":"x","dependsOn":["d","zz"],"ready":{"url":"x"}},
                           "e":{"cmd":"x","ready":{"type":"tcp"}},
                           "f":{"cmd":"x","ready":{"type":"http","url":"https://x/"}}}}"#,
        );
        let expect = [
            "session.bind: \"99999\" is not a valid address",
            "session.token: the token is blank",
            "logView.maxEntries: 0 must be a whole number greater than 0",
            "services.a.cmd: (empty command)",
            "services.a.kind: \"cron\" must be",
            "services.a.port: -1 is out of range",
            "service name \"b c\" is invalid",
            "services.d.ready.type: required field is missing",
            "services.d.ready.url: \"x\" is not a plain http:// URL",
            "services.e.ready.port: (none) is required",
            "services.f.ready.url: \"https://x/\" is not a plain http:// URL",
            "service \"d\": dependsOn names the service itself",
            "service \"d\": dependsOn names unknown service \"zz\"",
        ];
        for e in expect {
            assert!(p.iter().any(|x| x.starts_with(e)), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn a_token_a_header_could_not_carry_is_refused_without_showing_it() {
        let p = problems(r#"{"session":{"token":"s3cret\nmore"},"services":{"a":{"cmd":"x"}}}"#);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("session.token: the token contains a control character"));
        assert!(!p[0].contains("s3cret"), "{p:?}");
    }

    #[test]
    fn allowed_origins_are_read_and_bad_ones_named_by_index() {
        let c =
            ok(r#"{"session":{"allowedOrigins":["http://localhost:5173","HTTPS://Dash.example"]},
            "services":{"a":{"cmd":"x"}}}"#);
        let got: Vec<String> = c.session.allowed_origins.iter().map(|o| o.to_string()).collect();
        assert_eq!(got, ["http://localhost:5173", "https://dash.example:443"]);
        assert!(ok(r#"{"services":{"a":{"cmd":"x"}}}"#).session.allowed_origins.is_empty());
        let p = problems(
            r#"{"session":{"allowedOrigins":["http://x/app", 7, "*"]},"services":{"a":{"cmd":"x"}}}"#,
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with(r#"session.allowedOrigins[0]: "http://x/app" is not an origin"#));
        assert_eq!(p[1], "session.allowedOrigins[1]: expected a string");
        assert!(p[2].starts_with(r#"session.allowedOrigins[2]: "*" is not an origin"#));
        let p =
            problems(r#"{"session":{"allowedOrigins":"http://x"},"services":{"a":{"cmd":"x"}}}"#);
        assert_eq!(p, ["session.allowedOrigins: expected an array of strings"]);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let p = problems("{\n  \"services\": {\n    \"a\": { \"cmd\": x }\n  }\n}");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("syntax error at line 3:"), "{p:?}");
    }

    #[test]
    fn addr_is_an_alias_of_bind_but_not_both() {
        let c = ok(r#"{"session":{"addr":":7001"},"services":{"a":{"cmd":"x"}}}"#);
        assert_eq!(c.session.bind.unwrap().to_string(), "0.0.0.0:7001");
        let p = problems(r#"{"session":{"addr":"1","bind":"2"},"services":{"a":{"cmd":"x"}}}"#);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn defaults_and_normalisation_apply() {
        let c = ok(r#"{"logs":{"dir":"./logs"},"services":{
            "b":{"cmd":["p"],"dependsOn":["a","a"],"cwd":"./sub/./","port":3000,
                 "ready":{"type":"tcp"}},
            "a":{"cmd":"p","kind":"oneshot","ready":{"type":"http","url":"http://localhost:81/h?x=1","intervalMs":50,"timeoutMs":900}}}}"#);
        assert_eq!(c.logs_dir, Some(PathBuf::from("/base/logs")));
        assert_eq!(c.services[0].name, "a");
        assert_eq!(c.services[0].kind, Kind::Oneshot);
        let r = c.services[0].ready.clone().unwrap();
        assert_eq!(r.interval, Duration::from_millis(50));
        assert_eq!(r.timeout, Some(Duration::from_millis(900)));
        assert_eq!(
            r.probe,
            Probe::Http {
                url: HttpUrl { host: "localhost".into(), port: 81, path: "/h?x=1".into() }
            }
        );
        assert_eq!(c.services[1].depends_on, vec!["a"]);
        assert_eq!(c.services[1].cwd, PathBuf::from("/base/sub"));
        assert_eq!(c.services[1].ready.clone().unwrap().probe, Probe::Tcp { port: 3000 });
    }

    #[test]
    fn restart_takes_a_word_or_an_object_with_defaults() {
        let c = ok(r#"{"services":{
            "a":{"cmd":"x","restart":"on-failure"},
            "b":{"cmd":"x","restart":{"policy":"always","backoffMs":200,"maxRestarts":3}},
            "c":{"cmd":"x"},
            "d":{"cmd":"x","kind":"oneshot","restart":"on-failure"}}}"#);
        assert_eq!(c.services[0].restart.policy, RestartPolicy::OnFailure);
        assert_eq!(c.services[0].restart.backoff, Duration::from_secs(1));
        let b = &c.services[1].restart;
        assert_eq!(
            (b.policy, b.backoff, b.max_restarts),
            (RestartPolicy::Always, Duration::from_millis(200), 3)
        );
        assert_eq!(b.max_backoff, Duration::from_secs(30));
        assert_eq!(c.services[2].restart, Restart::default());
        assert_eq!(c.services[2].restart.policy, RestartPolicy::No);
        assert_eq!(c.services[3].restart.policy, RestartPolicy::OnFailure);
    }

    #[test]
    fn bad_restart_values_name_their_field() {
        let p = problems(
            r#"{"services":{
               "a":{"cmd":"x","restart":"sometimes"},
               "b":{"cmd":"x","restart":{"policy":"always","backoffMs":0,"maxRestarts":-1,"windowMs":"1s"}},
               "c":{"cmd":"x","restart":{"backoffMs":5000,"maxBackoffMs":1000,"jitter":1}},
               "d":{"cmd":"x","kind":"oneshot","restart":"always"},
               "e":{"cmd":"x","kind":"oneshot","restart":{"policy":"always"}},
               "f":{"cmd":"x","restart":true}}}"#,
        );
        let expect = [
            "services.a.restart: \"sometimes\" must be \"no\", \"on-failure\" or \"always\"",
            "services.b.restart.backoffMs: 0 must be a whole number greater than 0",
            "services.b.restart.maxRestarts: -1 must be a whole number greater than 0",
            "services.b.restart.windowMs: expected a whole number",
            "unknown field \"jitter\" in services.c.restart",
            "services.c.restart.maxBackoffMs: 1000 must not be less than backoffMs",
            "services.d.restart: \"always\" is not allowed for a oneshot",
            "services.e.restart.policy: \"always\" is not allowed for a oneshot",
            "services.f.restart: expected a string or an object",
        ];
        for e in expect {
            assert!(p.iter().any(|x| x.starts_with(e)), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn the_stack_name_is_the_field_or_the_directory_name() {
        assert_eq!(ok(r#"{"services":{"a":{"cmd":"x"}}}"#).name, "base");
        assert_eq!(ok(r#"{"name":"shop-2","services":{"a":{"cmd":"x"}}}"#).name, "shop-2");
        let p = problems(r#"{"name":"-x","services":{"a":{"cmd":"x"}}}"#);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("name: \"-x\" is not a valid stack name"), "{p:?}");
        assert_eq!(
            problems(r#"{"name":3,"services":{"a":{"cmd":"x"}}}"#),
            ["name: expected a string"]
        );
        assert!(!valid_stack_name(&"a".repeat(65)));
        assert!(!valid_stack_name(""));
        assert_eq!(default_stack_name(Path::new("/home/me/My App (v2)")), "My-App--v2-");
        assert_eq!(default_stack_name(Path::new("/home/me/.hidden")), "hidden");
        assert_eq!(default_stack_name(Path::new("/")), "stack");
    }

    #[test]
    fn a_top_level_schema_key_is_accepted_and_ignored() {
        ok(r#"{"$schema":"./spec/flowlayer.schema.json","services":{"a":{"cmd":"x"}}}"#);
        let p = problems(r#"{"$schema":1,"services":{"a":{"cmd":"x"}}}"#);
        assert_eq!(p, vec!["$schema: expected a string"]);
        let p = problems(r#"{"services":{"a":{"cmd":"x","$schema":"s"}}}"#);
        assert_eq!(p, vec!["unknown field \"$schema\" in services.a"]);
    }

    #[test]
    fn ready_port_and_url_are_checked_whatever_the_type() {
        let p = problems(
            r#"{"services":{
               "a":{"cmd":"x","ready":{"type":"none","port":"x","url":"https://a/"}},
               "b":{"cmd":"x","ready":{"type":"http","url":"http://b/","port":0}},
               "c":{"cmd":"x","ready":{"type":"tcp","port":1,"url":7}}}}"#,
        );
        assert_eq!(
            p,
            [
                "services.a.ready.port: expected a whole number",
                "services.a.ready.url: \"https://a/\" is not a plain http:// URL with a host",
                "services.b.ready.port: 0 must be a whole number greater than 0 (and in range)",
                "services.c.ready.url: expected a string",
            ]
        );
        ok(r#"{"services":{"a":{"cmd":"x","ready":{"type":"none","port":80,"url":"http://a/"}}}}"#);
    }

    #[test]
    fn interval_below_minimum_is_refused() {
        let p = problems(
            r#"{"services":{"a":{"cmd":"x","ready":{"type":"tcp","port":1,"intervalMs":5}}}}"#,
        );
        assert_eq!(p, vec!["services.a.ready.intervalMs: 5 must be at least 10"]);
    }
}
