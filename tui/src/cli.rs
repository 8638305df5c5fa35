//! Command line of flowlayer-client-tui (tui.md, "CLI"). Single-dash long flags
//! (`-config`, `-addr`, `-token`) are the contract; lexopt would read them as
//! short-flag clusters, so they are rewritten first.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, PartialEq, Default)]
pub struct CliArgs {
    pub help: bool,
    pub version: bool,
    pub config: Option<PathBuf>,
    pub addr: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum CliError {
    UnknownFlag(String),
    MissingValue(String),
    Positional(String),
    NotUnicode(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownFlag(x) => write!(f, "unknown flag \"{x}\""),
            CliError::MissingValue(x) => write!(f, "flag \"{x}\" needs a value"),
            CliError::Positional(x) => write!(f, "unexpected argument \"{x}\""),
            CliError::NotUnicode(x) => write!(f, "argument \"{x}\" is not valid UTF-8"),
        }
    }
}

fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s)
                if ["-config", "-addr", "-token"]
                    .iter()
                    .any(|f| s == *f || s.starts_with(&format!("{f}="))) =>
            {
                OsString::from(format!("-{s}"))
            }
            _ => a,
        })
        .collect()
}

pub fn parse(args: Vec<OsString>) -> Result<CliArgs, CliError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(normalize(args));
    let mut out = CliArgs::default();
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(lexopt::Error::MissingValue { option }) => {
                return Err(CliError::MissingValue(option.unwrap_or_default()))
            }
            Err(e) => return Err(CliError::UnknownFlag(e.to_string())),
        };
        let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, CliError> {
            let v = p.value().map_err(|_| CliError::MissingValue(flag.into()))?;
            v.into_string().map_err(|v| CliError::NotUnicode(v.to_string_lossy().into_owned()))
        };
        match arg {
            Long("config") => out.config = Some(PathBuf::from(text(&mut p, "-config")?)),
            Long("addr") => out.addr = Some(text(&mut p, "-addr")?),
            Long("token") => out.token = Some(text(&mut p, "-token")?),
            Short('h') | Long("help") => out.help = true,
            Long("version") => out.version = true,
            Value(v) => return Err(CliError::Positional(v.to_string_lossy().into_owned())),
            Short(c) => return Err(CliError::UnknownFlag(format!("-{c}"))),
            Long(l) => return Err(CliError::UnknownFlag(format!("--{l}"))),
        }
    }
    Ok(out)
}

pub fn help_text() -> String {
    format!(
        "flowlayer-client-tui {}: the keyboard cockpit for a running flowlayer-server.

Usage:
  flowlayer-client-tui [-config <path>] [-addr <host:port>] [-token <bearer>]

With no flags it shows the stack whose config is in the current directory,
else every stack running on this machine (the runtime directory).

Flags:
  -config, --config <path>  read the address (session.bind or session.addr) and
                            the token (session.token) from the server's config
  -addr, --addr <host:port> server address (default 127.0.0.1:6999); overrides -config
  -token, --token <bearer>  session token; overrides -config
  -h, --help                this help
  --version                 print the version

Keys:
  q, ctrl+c    quit                 tab        services <-> logs
  up/down, k/j move or scroll       pgup/pgdn  page the logs
  home/g       oldest (loads more)  end/G      follow the tail
  /            filter the panel     esc        close filter or modal
  s            start, or restart a running service (all logs: start_all)
  x            stop (all logs: stop_all)
  i            connection info
  t            timeline of the selection, with why it is not up (servers with get_timeline)
  !            guard incidents and their evidence (servers with get_incidents)

With several stacks:
  [ ] 1-9      previous, next, or that stack
  X            stop the whole stack on screen (asks first)
  s            on a stopped stack: start it again (flowlayer-server --detach)
",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<CliArgs, CliError> {
        parse(a.iter().map(OsString::from).collect())
    }

    #[test]
    fn single_and_double_dash_flags_both_work() {
        let a = p(&["-config", "f.jsonc", "-addr", "h:1", "-token", "t"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("f.jsonc")));
        assert_eq!(a.addr.as_deref(), Some("h:1"));
        assert_eq!(a.token.as_deref(), Some("t"));
        let b = p(&["--config", "f.jsonc", "--addr=h:1", "--token", "t"]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn stray_arguments_and_bad_flags_are_errors() {
        assert!(matches!(p(&["x"]), Err(CliError::Positional(_))));
        assert!(matches!(p(&["-q"]), Err(CliError::UnknownFlag(_))));
        assert!(matches!(p(&["-addr"]), Err(CliError::MissingValue(_))));
    }
}
