//! The command line: lexopt loop -> `Args`, checked per subcommand; the help.
//!
//! Runs on the main thread before anything else. Options may come before or
//! after the subcommand (`flowlayer -s api logs` = `flowlayer logs -s api`);
//! an option that the subcommand does not take is an error that says so,
//! never silently ignored (spec/cli.md).

use crate::grep::Pattern;
use crate::when::{parse_duration, parse_since, Since};
use flowlayer_protocol::Stream;
use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

/// The subcommands (stacks.md section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Ls,
    Status,
    Logs,
    Start,
    Stop,
    Restart,
    Wait,
    Why,
    Incidents,
    Up,
    Down,
}

impl Verb {
    const ALL: [Verb; 11] = [
        Verb::Ls,
        Verb::Status,
        Verb::Logs,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Wait,
        Verb::Why,
        Verb::Incidents,
        Verb::Up,
        Verb::Down,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Verb::Ls => "ls",
            Verb::Status => "status",
            Verb::Logs => "logs",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Wait => "wait",
            Verb::Why => "why",
            Verb::Incidents => "incidents",
            Verb::Up => "up",
            Verb::Down => "down",
        }
    }

    /// Its usage line, for errors and the help.
    pub fn usage(self) -> &'static str {
        match self {
            Verb::Ls => "flowlayer ls [--all] [-o json]",
            Verb::Status => "flowlayer status [-s STACK] [-o json]",
            Verb::Logs => {
                "flowlayer logs [-s STACK] [SERVICE...] [-f] [-n N] [--since SEQ|10m] \
                 [--stream out|err|system] [--grep RE] [-o json|raw]"
            }
            Verb::Start => "flowlayer start [-s STACK] (SERVICE... | --all) [-o json]",
            Verb::Stop => "flowlayer stop [-s STACK] (SERVICE... | --all) [-o json]",
            Verb::Restart => "flowlayer restart [-s STACK] (SERVICE... | --all) [-o json]",
            Verb::Wait => {
                "flowlayer wait [-s STACK] (SERVICE... | --all) [--timeout 60s] [-o json]"
            }
            Verb::Why => "flowlayer why [-s STACK] SERVICE [-o json]",
            Verb::Incidents => "flowlayer incidents [-s STACK] [SERVICE] [--open] [-o json]",
            Verb::Up => "flowlayer up [CONFIG] [--wait] [--timeout 60s]",
            Verb::Down => "flowlayer down [-s STACK] [--timeout 60s]",
        }
    }

    fn from_word(w: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.word() == w)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    /// `logs` only: the messages alone.
    Raw,
}

/// What to do.
#[derive(Debug, PartialEq)]
pub enum Action {
    Help,
    Version,
    Run(Box<Args>),
}

#[derive(Debug)]
pub struct Args {
    pub verb: Verb,
    pub stack: Option<String>,
    pub addr: Option<String>,
    pub token: Option<String>,
    pub output: Output,
    pub no_color: bool,
    /// SERVICE... (or CONFIG for `up`).
    pub names: Vec<String>,
    pub all: bool,
    pub follow: bool,
    pub lines: Option<usize>,
    pub since: Option<Since>,
    /// Empty: every stream.
    pub streams: Vec<Stream>,
    pub grep: Option<Pattern>,
    pub timeout: Option<Duration>,
    pub open: bool,
    pub wait: bool,
}

impl PartialEq for Args {
    fn eq(&self, o: &Args) -> bool {
        // Patterns compare by whether both have one: tests compare the rest.
        self.verb == o.verb
            && self.stack == o.stack
            && self.addr == o.addr
            && self.token == o.token
            && self.output == o.output
            && self.no_color == o.no_color
            && self.names == o.names
            && self.all == o.all
            && self.follow == o.follow
            && self.lines == o.lines
            && self.since == o.since
            && self.streams == o.streams
            && self.grep.is_some() == o.grep.is_some()
            && self.timeout == o.timeout
            && self.open == o.open
            && self.wait == o.wait
    }
}

#[derive(Debug, PartialEq)]
pub enum UsageError {
    UnknownCommand(String),
    UnknownFlag(String),
    /// A flag the subcommand does not take.
    NotFor {
        flag: String,
        verb: Verb,
    },
    MissingValue(String),
    BadValue {
        flag: String,
        value: String,
        expected: &'static str,
    },
    BadPattern {
        value: String,
        error: String,
    },
    Repeated(String),
    NotUnicode(String),
    /// The subcommand needs SERVICE... or --all.
    NoServices(Verb),
    ServicesAndAll(Verb),
    /// More positional arguments than the subcommand takes.
    Extra {
        verb: Verb,
        value: String,
    },
    /// `why` needs exactly one service.
    OneService(Verb),
    NoAddrForToken,
    StackAndAddr,
}

impl UsageError {
    /// The subcommand the error is about, for its usage line.
    pub fn verb(&self) -> Option<Verb> {
        match self {
            UsageError::NotFor { verb, .. }
            | UsageError::NoServices(verb)
            | UsageError::ServicesAndAll(verb)
            | UsageError::Extra { verb, .. }
            | UsageError::OneService(verb) => Some(*verb),
            _ => None,
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::UnknownCommand(c) => {
                let all: Vec<&str> = Verb::ALL.iter().map(|v| v.word()).collect();
                write!(f, "unknown command \"{c}\" (commands: {})", all.join(", "))
            }
            UsageError::UnknownFlag(x) => write!(f, "unknown flag \"{x}\""),
            UsageError::NotFor { flag, verb } => {
                write!(f, "flag \"{flag}\" does not apply to \"{}\"", verb.word())
            }
            UsageError::MissingValue(x) => write!(f, "flag \"{x}\" needs a value"),
            UsageError::BadValue { flag, value, expected } => {
                write!(f, "{flag} \"{value}\": expected {expected}")
            }
            UsageError::BadPattern { value, error } => write!(f, "--grep \"{value}\": {error}"),
            UsageError::Repeated(x) => write!(f, "flag \"{x}\" given more than once"),
            UsageError::NotUnicode(x) => write!(f, "argument \"{x}\" is not valid UTF-8"),
            UsageError::NoServices(v) => {
                write!(f, "\"{}\" needs service names or --all", v.word())
            }
            UsageError::ServicesAndAll(v) => {
                write!(f, "\"{}\": give service names or --all, not both", v.word())
            }
            UsageError::Extra { verb, value } => {
                write!(f, "\"{}\" takes no argument \"{value}\"", verb.word())
            }
            UsageError::OneService(v) => write!(f, "\"{}\" needs one service name", v.word()),
            UsageError::NoAddrForToken => write!(f, "--token needs --addr"),
            UsageError::StackAndAddr => write!(f, "-s/--stack and --addr exclude each other"),
        }
    }
}

/// What the loop collected before it knows the subcommand.
#[derive(Default)]
struct Raw {
    verb: Option<Verb>,
    positional: Vec<String>,
    /// Every flag seen, as written, with the subcommands it applies to.
    seen: Vec<(String, &'static [Verb])>,
}

const ON_STACK: &[Verb] = &[
    Verb::Status,
    Verb::Logs,
    Verb::Start,
    Verb::Stop,
    Verb::Restart,
    Verb::Wait,
    Verb::Why,
    Verb::Incidents,
    Verb::Down,
];
/// `--addr`, `--token`: a remote server can be asked and told, not stopped
/// (`down` signals a local pid).
const REMOTE: &[Verb] = &[
    Verb::Status,
    Verb::Logs,
    Verb::Start,
    Verb::Stop,
    Verb::Restart,
    Verb::Wait,
    Verb::Why,
    Verb::Incidents,
];
const WITH_JSON: &[Verb] = &[
    Verb::Ls,
    Verb::Status,
    Verb::Logs,
    Verb::Start,
    Verb::Stop,
    Verb::Restart,
    Verb::Wait,
    Verb::Why,
    Verb::Incidents,
];

pub fn parse(args: Vec<OsString>) -> Result<Action, UsageError> {
    use lexopt::prelude::*;
    if args.is_empty() {
        return Ok(Action::Help);
    }
    let mut p = lexopt::Parser::from_args(args);
    let mut raw = Raw::default();
    let mut out = Args {
        verb: Verb::Status,
        stack: None,
        addr: None,
        token: None,
        output: Output::Text,
        no_color: false,
        names: Vec::new(),
        all: false,
        follow: false,
        lines: None,
        since: None,
        streams: Vec::new(),
        grep: None,
        timeout: None,
        open: false,
        wait: false,
    };
    let mut help = false;
    let mut version = false;
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(map_lexopt(e)),
        };
        let flag = match &arg {
            Short(c) => format!("-{c}"),
            Long(l) => format!("--{l}"),
            Value(_) => String::new(),
        };
        match arg {
            Short('h') | Long("help") => help = true,
            Long("version") => version = true,
            Short('s') | Long("stack") => {
                raw.seen.push((flag.clone(), ON_STACK));
                set_once(&mut out.stack, &flag, text(&mut p, &flag)?)?;
            }
            Long("addr") => {
                raw.seen.push((flag.clone(), REMOTE));
                set_once(&mut out.addr, &flag, text(&mut p, &flag)?)?;
            }
            Long("token") => {
                raw.seen.push((flag.clone(), REMOTE));
                set_once(&mut out.token, &flag, text(&mut p, &flag)?)?;
            }
            Short('o') | Long("output") => {
                raw.seen.push((flag.clone(), WITH_JSON));
                let v = text(&mut p, &flag)?;
                out.output = match v.as_str() {
                    "json" => Output::Json,
                    "raw" => Output::Raw,
                    "text" => Output::Text,
                    _ => return Err(bad(&flag, v, "json, raw or text")),
                };
            }
            Long("no-color") => out.no_color = true,
            Long("all") => {
                raw.seen
                    .push((flag, &[Verb::Ls, Verb::Start, Verb::Stop, Verb::Restart, Verb::Wait]));
                out.all = true;
            }
            Short('f') | Long("follow") => {
                raw.seen.push((flag, &[Verb::Logs]));
                out.follow = true;
            }
            Short('n') | Long("lines") => {
                raw.seen.push((flag.clone(), &[Verb::Logs]));
                let v = text(&mut p, &flag)?;
                let n = v.parse().map_err(|_| bad(&flag, v.clone(), "a whole number"))?;
                set_once(&mut out.lines, &flag, n)?;
            }
            Long("since") => {
                raw.seen.push((flag.clone(), &[Verb::Logs]));
                let v = text(&mut p, &flag)?;
                let s = parse_since(&v)
                    .ok_or_else(|| bad(&flag, v.clone(), "a log seq (1234) or a duration (10m)"))?;
                set_once(&mut out.since, &flag, s)?;
            }
            Long("stream") => {
                raw.seen.push((flag.clone(), &[Verb::Logs]));
                let v = text(&mut p, &flag)?;
                for word in v.split(',') {
                    let s = match word {
                        "out" | "stdout" => Stream::Stdout,
                        "err" | "stderr" => Stream::Stderr,
                        "system" => Stream::System,
                        _ => return Err(bad(&flag, v.clone(), "out, err or system")),
                    };
                    if !out.streams.contains(&s) {
                        out.streams.push(s);
                    }
                }
            }
            Long("grep") => {
                raw.seen.push((flag.clone(), &[Verb::Logs]));
                let v = text(&mut p, &flag)?;
                let pat = Pattern::new(&v).map_err(|e| UsageError::BadPattern {
                    value: v.clone(),
                    error: e.to_string(),
                })?;
                if out.grep.is_some() {
                    return Err(UsageError::Repeated(flag));
                }
                out.grep = Some(pat);
            }
            Long("timeout") => {
                raw.seen.push((flag.clone(), &[Verb::Wait, Verb::Up, Verb::Down]));
                let v = text(&mut p, &flag)?;
                let d = parse_duration(&v)
                    .ok_or_else(|| bad(&flag, v.clone(), "a duration (60s, 2m, 500ms)"))?;
                set_once(&mut out.timeout, &flag, d)?;
            }
            Long("open") => {
                raw.seen.push((flag, &[Verb::Incidents]));
                out.open = true;
            }
            Long("wait") => {
                raw.seen.push((flag, &[Verb::Up]));
                out.wait = true;
            }
            Value(v) => {
                let v = v.into_string().map_err(|v| UsageError::NotUnicode(lossy(&v)))?;
                if raw.verb.is_none() {
                    if v == "help" {
                        help = true;
                        continue;
                    }
                    raw.verb = Some(Verb::from_word(&v).ok_or(UsageError::UnknownCommand(v))?);
                } else {
                    raw.positional.push(v);
                }
            }
            Short(_) | Long(_) => return Err(UsageError::UnknownFlag(flag)),
        }
    }
    if help {
        return Ok(Action::Help);
    }
    if version {
        return Ok(Action::Version);
    }
    let Some(verb) = raw.verb else { return Ok(Action::Help) };
    out.verb = verb;
    for (flag, verbs) in &raw.seen {
        if !verbs.contains(&verb) {
            return Err(UsageError::NotFor { flag: flag.clone(), verb });
        }
    }
    if out.output == Output::Raw && verb != Verb::Logs {
        return Err(bad("-o", "raw".into(), "json or text (raw is for logs)"));
    }
    if out.token.is_some() && out.addr.is_none() {
        return Err(UsageError::NoAddrForToken);
    }
    if out.stack.is_some() && out.addr.is_some() {
        return Err(UsageError::StackAndAddr);
    }
    out.names = raw.positional;
    match verb {
        Verb::Ls | Verb::Status | Verb::Down => {
            if let Some(v) = out.names.first() {
                return Err(UsageError::Extra { verb, value: v.clone() });
            }
        }
        Verb::Start | Verb::Stop | Verb::Restart | Verb::Wait => {
            if out.all && !out.names.is_empty() {
                return Err(UsageError::ServicesAndAll(verb));
            }
            if !out.all && out.names.is_empty() {
                return Err(UsageError::NoServices(verb));
            }
        }
        Verb::Why => {
            if out.names.len() != 1 {
                return Err(UsageError::OneService(verb));
            }
        }
        Verb::Incidents | Verb::Up => {
            if let Some(v) = out.names.get(1) {
                return Err(UsageError::Extra { verb, value: v.clone() });
            }
        }
        Verb::Logs => {}
    }
    out.names.dedup();
    Ok(Action::Run(Box::new(out)))
}

fn bad(flag: &str, value: String, expected: &'static str) -> UsageError {
    UsageError::BadValue { flag: flag.to_string(), value, expected }
}

fn lossy(v: &OsString) -> String {
    v.to_string_lossy().into_owned()
}

fn set_once<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), UsageError> {
    if slot.is_some() {
        return Err(UsageError::Repeated(flag.to_string()));
    }
    *slot = Some(value);
    Ok(())
}

fn text(p: &mut lexopt::Parser, flag: &str) -> Result<String, UsageError> {
    let v = p.value().map_err(|_| UsageError::MissingValue(flag.to_string()))?;
    let s = v.into_string().map_err(|v| UsageError::NotUnicode(lossy(&v)))?;
    if s.is_empty() {
        return Err(UsageError::MissingValue(flag.to_string()));
    }
    Ok(s)
}

fn map_lexopt(e: lexopt::Error) -> UsageError {
    match e {
        lexopt::Error::MissingValue { option } => {
            UsageError::MissingValue(option.unwrap_or_else(|| "?".into()))
        }
        lexopt::Error::UnexpectedOption(o) => UsageError::UnknownFlag(o),
        lexopt::Error::UnexpectedValue { option, .. } => {
            UsageError::BadValue { flag: option, value: String::new(), expected: "no value" }
        }
        lexopt::Error::NonUnicodeValue(v) => UsageError::NotUnicode(lossy(&v)),
        lexopt::Error::UnexpectedArgument(a) => UsageError::UnknownCommand(lossy(&a)),
        lexopt::Error::ParsingFailed { value, .. } => UsageError::UnknownFlag(value),
        lexopt::Error::Custom(e) => UsageError::UnknownFlag(e.to_string()),
    }
}

pub fn version_text() -> String {
    format!("flowlayer {}", env!("CARGO_PKG_VERSION"))
}

pub fn help_text() -> String {
    let usages: Vec<String> = Verb::ALL.iter().map(|v| format!("  {}", v.usage())).collect();
    format!(
        r#"flowlayer {version}: list, inspect and drive running FlowLayer stacks.

Usage:
{usages}

Commands:
  ls          running stacks (--all: also the recent ones that stopped)
  status      the stack's services: status, restarts, cpu, memory, why
  logs        print log lines and exit; -f follows (across server restarts)
  start, stop, restart
              act on services (or --all) and wait for the action to be done
  wait        until every service is ready (a oneshot: done); exit 3 on timeout
  why         why a service is not up: one line, then its last timeline entries
  incidents   the guard's incidents (--open: open ones only)
  up          start a stack in the background (already running: nothing to do)
  down        stop a stack gracefully

Which stack: -s/--stack NAME; else the stack whose config is in the current
directory or a parent; else the only running stack. --addr HOST:PORT with
--token T (or FLOWLAYER_TOKEN) reaches a server over TCP instead.

Options:
  -s, --stack NAME        the stack (its name, or its instance id)
  --addr HOST:PORT        a server's session API over TCP
  --token T               its token (default: $FLOWLAYER_TOKEN)
  -o, --output FORMAT     text (default), json (one document; JSON lines for
                          logs -f), raw (logs: messages only)
  --no-color              no colour (also NO_COLOR=1; colour only on a terminal)
  -f, --follow            logs: keep printing new lines
  -n, --lines N           logs: the last N lines (default: the server's view size)
  --since SEQ|DURATION    logs: after log seq SEQ, or from 10m/2h/30s ago
  --stream out|err|system logs: only these streams (comma-separated)
  --grep RE               logs: only lines matching RE (ERE subset, see spec/cli.md;
                          (?i) at the start ignores case)
  --timeout DURATION      wait, up --wait, down: give up after it (default 60s)
  --all                   ls: recent stacks too; start/stop/restart/wait: every service
  --open                  incidents: open ones only
  --wait                  up: wait until every service is ready
  -h, --help              this help
  --version               the version

Exit codes: 0 ok, 1 an action failed, 2 usage (bad flag, unknown service),
3 timed out / not ready, 4 no running stack, 5 more than one stack could be meant.

Examples:
  flowlayer wait api && curl -s localhost:3000/health
  flowlayer logs -f worker --grep 'ERROR|WARN'
  flowlayer logs api -n 50 -o json | jq -r '.entries[].message'
"#,
        version = env!("CARGO_PKG_VERSION"),
        usages = usages.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Args, UsageError> {
        match parse(args.iter().map(OsString::from).collect())? {
            Action::Run(a) => Ok(*a),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn options_may_come_before_or_after_the_subcommand() {
        let a =
            run(&["-s", "shop", "logs", "api", "-f", "-n", "20", "--stream", "err,out"]).unwrap();
        assert_eq!(a.verb, Verb::Logs);
        assert_eq!(a.stack.as_deref(), Some("shop"));
        assert_eq!(a.names, ["api"]);
        assert!(a.follow);
        assert_eq!(a.lines, Some(20));
        assert_eq!(a.streams, [Stream::Stderr, Stream::Stdout]);
        let b =
            run(&["logs", "-n", "20", "-f", "api", "--stream=err,out", "--stack=shop"]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn each_subcommand_takes_only_its_own_flags() {
        assert_eq!(
            run(&["status", "-f"]).unwrap_err(),
            UsageError::NotFor { flag: "-f".into(), verb: Verb::Status }
        );
        assert_eq!(
            run(&["up", "-s", "x"]).unwrap_err(),
            UsageError::NotFor { flag: "-s".into(), verb: Verb::Up }
        );
        assert_eq!(
            run(&["logs", "--all"]).unwrap_err(),
            UsageError::NotFor { flag: "--all".into(), verb: Verb::Logs }
        );
        assert!(run(&["status", "-o", "raw"]).is_err());
        assert!(run(&["ls", "--all", "-o", "json"]).is_ok());
    }

    #[test]
    fn actions_need_services_or_all_but_not_both() {
        assert_eq!(run(&["start"]).unwrap_err(), UsageError::NoServices(Verb::Start));
        assert_eq!(
            run(&["stop", "a", "--all"]).unwrap_err(),
            UsageError::ServicesAndAll(Verb::Stop)
        );
        assert_eq!(run(&["restart", "a", "b", "a"]).unwrap().names, ["a", "b", "a"]);
        assert_eq!(run(&["why"]).unwrap_err(), UsageError::OneService(Verb::Why));
        assert_eq!(
            run(&["status", "api"]).unwrap_err(),
            UsageError::Extra { verb: Verb::Status, value: "api".into() }
        );
    }

    #[test]
    fn values_are_checked_where_they_are_read() {
        assert_eq!(
            run(&["wait", "a", "--timeout", "soon"]).unwrap_err(),
            UsageError::BadValue {
                flag: "--timeout".into(),
                value: "soon".into(),
                expected: "a duration (60s, 2m, 500ms)"
            }
        );
        assert_eq!(
            run(&["wait", "a", "--timeout", "2m"]).unwrap().timeout,
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            run(&["logs", "--since", "10m"]).unwrap().since,
            Some(Since::Ago(Duration::from_secs(600)))
        );
        assert_eq!(run(&["logs", "--since", "77"]).unwrap().since, Some(Since::Seq(77)));
        assert!(matches!(
            run(&["logs", "--grep", "a("]).unwrap_err(),
            UsageError::BadPattern { .. }
        ));
        assert_eq!(
            run(&["logs", "-n", "x"]).unwrap_err().to_string(),
            "-n \"x\": expected a whole number"
        );
        assert_eq!(run(&["logs", "--token", "t"]).unwrap_err(), UsageError::NoAddrForToken);
        assert_eq!(
            run(&["frobnicate"]).unwrap_err().to_string().split(" (").next(),
            Some("unknown command \"frobnicate\"")
        );
    }

    #[test]
    fn no_arguments_help_and_version() {
        assert_eq!(parse(vec![]).unwrap(), Action::Help);
        assert_eq!(parse(vec!["help".into()]).unwrap(), Action::Help);
        assert_eq!(parse(vec!["logs".into(), "-h".into()]).unwrap(), Action::Help);
        assert_eq!(parse(vec!["--version".into()]).unwrap(), Action::Version);
    }
}
