//! Command line: lexopt loop -> `CliArgs`; help and version text.
//!
//! Runs on the main thread before anything else starts. The contract (server.md
//! section 1) has single-dash long flags (`-token`); lexopt would read `-token` as
//! five short flags, so those are rewritten on the raw arguments first.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// The names auto-discovery looks for in the current directory, in order
/// (shared with the clients, which look for the same files).
pub const DISCOVERY: [&str; 4] = flowlayer_runtime::find::CONFIG_NAMES;

#[derive(Debug, PartialEq)]
pub enum Action {
    Run,
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
pub struct CliArgs {
    pub action: Action,
    /// Config path from `-c`, `--config` or the positional argument, in that priority.
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub token: Option<String>,
    pub no_color: bool,
    /// `-d` / `--detach`: go to the background once bound (stacks.md section 2).
    pub detach: bool,
    /// True when any argument at all was given (changes what "no config" means).
    pub any_args: bool,
}

#[derive(Debug, PartialEq)]
pub enum CliError {
    UnknownFlag(String),
    MissingValue(String),
    Repeated(String),
    BothConfigFlags,
    ExtraPositional(String),
    UnexpectedValue(String),
    NotUnicode(String),
    EmptyValue(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownFlag(x) => write!(f, "unknown flag \"{x}\""),
            CliError::MissingValue(x) => write!(f, "flag \"{x}\" needs a value"),
            CliError::Repeated(x) => write!(f, "flag \"{x}\" given more than once"),
            CliError::BothConfigFlags => {
                write!(f, "both -c and --config given: use one of them")
            }
            CliError::ExtraPositional(x) => {
                write!(f, "more than one config path given (extra: \"{x}\")")
            }
            CliError::UnexpectedValue(x) => write!(f, "flag \"{x}\" takes no value"),
            CliError::NotUnicode(x) => write!(f, "argument \"{x}\" is not valid UTF-8"),
            CliError::EmptyValue(x) => write!(f, "flag \"{x}\" needs a non-empty value"),
        }
    }
}

/// Rewrites the contract's single-dash long flags into lexopt's `--` form.
fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut after_dashdash = false;
    for arg in args {
        if !after_dashdash {
            if arg == "--" {
                after_dashdash = true;
            } else if let Some(s) = arg.to_str() {
                if s == "-token" || s.starts_with("-token=") {
                    out.push(OsString::from(format!("-{s}")));
                    continue;
                }
            }
        }
        out.push(arg);
    }
    out
}

pub fn parse(args: Vec<OsString>) -> Result<CliArgs, CliError> {
    use lexopt::prelude::*;
    let any_args = !args.is_empty();
    let mut parser = lexopt::Parser::from_args(normalize(args));
    let mut short_c: Option<PathBuf> = None;
    let mut long_config: Option<PathBuf> = None;
    let mut positional: Option<PathBuf> = None;
    let mut out = CliArgs {
        action: Action::Run,
        config: None,
        bind: None,
        token: None,
        no_color: false,
        detach: false,
        any_args,
    };
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(map_lexopt(e)),
        };
        match arg {
            Short('c') => set_once(&mut short_c, "-c", path_value(&mut parser, "-c")?)?,
            Long("config") => {
                set_once(&mut long_config, "--config", path_value(&mut parser, "--config")?)?
            }
            Short('s') => set_once(&mut out.bind, "-s", text_value(&mut parser, "-s")?)?,
            Long("bind") => set_once(&mut out.bind, "--bind", text_value(&mut parser, "--bind")?)?,
            Long("token") => {
                set_once(&mut out.token, "-token", text_value(&mut parser, "-token")?)?
            }
            Long("no-color") => out.no_color = true,
            Short('d') | Long("detach") => out.detach = true,
            Short('h') | Long("help") => out.action = Action::Help,
            Long("version") => {
                if out.action != Action::Help {
                    out.action = Action::Version;
                }
            }
            Value(v) => {
                if positional.is_some() {
                    return Err(CliError::ExtraPositional(v.to_string_lossy().into_owned()));
                }
                positional = Some(PathBuf::from(v));
            }
            Short(c) => return Err(CliError::UnknownFlag(format!("-{c}"))),
            Long(l) => return Err(CliError::UnknownFlag(format!("--{l}"))),
        }
    }
    if short_c.is_some() && long_config.is_some() {
        return Err(CliError::BothConfigFlags);
    }
    out.config = short_c.or(long_config).or(positional);
    Ok(out)
}

fn set_once<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), CliError> {
    if slot.is_some() {
        return Err(CliError::Repeated(flag.to_string()));
    }
    *slot = Some(value);
    Ok(())
}

fn path_value(parser: &mut lexopt::Parser, flag: &str) -> Result<PathBuf, CliError> {
    let v = parser.value().map_err(|_| CliError::MissingValue(flag.to_string()))?;
    if v.is_empty() {
        return Err(CliError::EmptyValue(flag.to_string()));
    }
    Ok(PathBuf::from(v))
}

fn text_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, CliError> {
    let v = parser.value().map_err(|_| CliError::MissingValue(flag.to_string()))?;
    let s = v.into_string().map_err(|v| CliError::NotUnicode(v.to_string_lossy().into_owned()))?;
    if s.is_empty() {
        return Err(CliError::EmptyValue(flag.to_string()));
    }
    Ok(s)
}

fn map_lexopt(e: lexopt::Error) -> CliError {
    match e {
        lexopt::Error::MissingValue { option } => {
            CliError::MissingValue(option.unwrap_or_else(|| "?".into()))
        }
        lexopt::Error::UnexpectedOption(o) => CliError::UnknownFlag(o),
        lexopt::Error::UnexpectedArgument(a) => {
            CliError::ExtraPositional(a.to_string_lossy().into_owned())
        }
        lexopt::Error::UnexpectedValue { option, .. } => CliError::UnexpectedValue(option),
        lexopt::Error::NonUnicodeValue(v) => CliError::NotUnicode(v.to_string_lossy().into_owned()),
        lexopt::Error::ParsingFailed { value, .. } => CliError::UnexpectedValue(value),
        lexopt::Error::Custom(e) => CliError::UnknownFlag(e.to_string()),
    }
}

pub fn version_text() -> String {
    format!("flowlayer-server {}", env!("CARGO_PKG_VERSION"))
}

pub fn help_text() -> String {
    format!(
        r#"flowlayer-server {version}: run a local development stack from one config file.

Usage:
  flowlayer-server [-c <path>] [--config <path>] [<path>] [-s <bind>] [-token <value>] [--no-color] [-d]
  flowlayer-server -h | --help
  flowlayer-server --version

Flags:
  -c <path>           config file (highest priority)
  --config <path>     config file (used when -c is absent)
  <path>              config file (used when neither flag is given)
  -s, --bind <bind>   enable the session API on <bind>: 6999 (127.0.0.1:6999),
                      :6999 (all interfaces) or host:port; overrides session.bind
  -token, --token <v> bearer token for the session API; overrides FLOWLAYER_TOKEN and
                      session.token. Other users can read it in the process list (ps):
                      prefer FLOWLAYER_TOKEN or session.token
  --no-color          no ANSI colour (also when NO_COLOR is set, or stdout is not a terminal)
  -d, --detach        check the config and bind, then run in the background; output goes
                      to logs.dir/server.log (else <runtime dir>/<instance id>.log)
  -h, --help          this help
  --version           print the version

Environment:
  FLOWLAYER_TOKEN     bearer token for the session API when -token is not given;
                      overrides session.token (set but blank is an error)
  NO_COLOR            non-empty: no ANSI colour

Config discovery (when no path is given), in the current directory:
  {discovery}

Example flowlayer.jsonc:
  {{
    "session": {{ "bind": "127.0.0.1:6999" }},
    "logs": {{ "dir": "./logs" }},
    "services": {{
      "db":  {{ "cmd": "postgres -D ./data", "port": 5432, "ready": {{ "type": "tcp" }} }},
      "api": {{ "cmd": ["npm", "run", "dev"], "dependsOn": ["db"],
               "ready": {{ "type": "http", "url": "http://localhost:3000/health" }} }}
    }}
  }}

Connect the terminal client while the server runs:
  flowlayer-client-tui -config flowlayer.jsonc
  flowlayer-client-tui -addr 127.0.0.1:6999 -token <token>

Exit codes: 0 clean shutdown, 2 invalid command line or config, 1 other fatal error.
"#,
        version = env!("CARGO_PKG_VERSION"),
        discovery = DISCOVERY.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<CliArgs, CliError> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn single_dash_token_is_one_flag() {
        let a = p(&["-token", "abc"]).unwrap();
        assert_eq!(a.token.as_deref(), Some("abc"));
        let a = p(&["-token=xyz", "--token"]);
        assert!(a.is_err());
    }

    #[test]
    fn config_priority_is_short_then_long_then_positional() {
        assert_eq!(p(&["x.jsonc", "-c", "a"]).unwrap().config, Some("a".into()));
        assert_eq!(p(&["x.jsonc", "--config", "b"]).unwrap().config, Some("b".into()));
        assert_eq!(p(&["x.jsonc"]).unwrap().config, Some("x.jsonc".into()));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(p(&["-c", "a", "--config", "b"]), Err(CliError::BothConfigFlags));
        assert!(matches!(p(&["a", "b"]), Err(CliError::ExtraPositional(_))));
        assert!(matches!(p(&["--nope"]), Err(CliError::UnknownFlag(_))));
        assert!(matches!(p(&["-s"]), Err(CliError::MissingValue(_))));
        assert!(matches!(p(&["-s", "1", "-s", "2"]), Err(CliError::Repeated(_))));
        assert!(matches!(p(&["--no-color=1"]), Err(CliError::UnexpectedValue(_))));
    }

    #[test]
    fn detach_is_a_flag_in_both_spellings() {
        assert!(p(&["-d", "x.jsonc"]).unwrap().detach);
        assert!(p(&["x.jsonc", "--detach"]).unwrap().detach);
        assert!(!p(&["x.jsonc"]).unwrap().detach);
    }

    #[test]
    fn help_wins_over_version() {
        assert_eq!(p(&["--version", "-h"]).unwrap().action, Action::Help);
        assert_eq!(p(&["--version"]).unwrap().action, Action::Version);
    }
}
