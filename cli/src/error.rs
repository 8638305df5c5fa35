//! `CliError`: why a `flowlayer` command did not do what was asked, and the
//! exit code that says so to a script (stacks.md section 3).

use crate::args::UsageError;
use flowlayer_client::ClientError;
use flowlayer_protocol::{CommandName, ErrorCode};
use std::fmt;
use std::time::Duration;

/// Exit codes (stacks.md section 3).
pub mod exit {
    pub const OK: u8 = 0;
    /// An action failed.
    pub const FAILED: u8 = 1;
    /// Bad command line, unknown service.
    pub const USAGE: u8 = 2;
    /// Timed out, or not ready.
    pub const NOT_READY: u8 = 3;
    /// No running stack.
    pub const NO_STACK: u8 = 4;
    /// More than one stack could be meant.
    pub const AMBIGUOUS: u8 = 5;
}

#[derive(Debug)]
pub enum CliError {
    Usage(UsageError),
    /// Service names the stack does not have; `services`: the ones it has.
    UnknownService {
        names: Vec<String>,
        stack: String,
        services: Vec<String>,
    },
    /// No stack to talk to: `why` says what was looked for.
    NoStack {
        why: String,
    },
    /// Several stacks fit: why, and each as `name (config)`.
    Ambiguous {
        why: String,
        candidates: Vec<String>,
    },
    /// Something local failed: what was being done, and the error.
    Local {
        what: String,
        error: String,
    },
    /// `flowlayer-server` (run by `up`) refused to start; it said why on stderr.
    ServerExit {
        code: i32,
    },
    /// The server does not serve a command this subcommand needs (an older
    /// server, or one without that extension).
    Unsupported {
        stack: String,
        what: &'static str,
    },
    /// The stack went away while the command ran.
    Stopped {
        stack: String,
        during: String,
        error: ClientError,
    },
    /// Talking to the server failed otherwise.
    Client {
        stack: String,
        error: ClientError,
    },
    /// Some services could not be acted on: each, with what the server said.
    ActionFailed {
        failures: Vec<(String, String)>,
    },
    /// `wait`: a service failed instead of becoming ready.
    ServiceFailed {
        service: String,
        why: String,
    },
    /// `wait` and friends: the deadline passed.
    TimedOut {
        after: Duration,
        pending: Vec<String>,
    },
    /// stdout was closed (`| head`): stop quietly.
    StdoutClosed,
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::UnknownService { .. } => exit::USAGE,
            CliError::NoStack { .. } => exit::NO_STACK,
            CliError::Ambiguous { .. } => exit::AMBIGUOUS,
            CliError::ServerExit { code } => u8::try_from(*code).unwrap_or(exit::FAILED),
            CliError::TimedOut { .. } => exit::NOT_READY,
            CliError::Client { error, .. } => match error {
                ClientError::Connect { .. } => exit::NO_STACK,
                ClientError::TokenRequired { .. } | ClientError::TokenRejected { .. } => {
                    exit::USAGE
                }
                ClientError::TimedOut { .. } => exit::NOT_READY,
                _ => exit::FAILED,
            },
            CliError::StdoutClosed => exit::OK,
            CliError::Unsupported { .. }
            | CliError::Stopped { .. }
            | CliError::ActionFailed { .. }
            | CliError::ServiceFailed { .. }
            | CliError::Local { .. } => exit::FAILED,
        }
    }

    /// Wraps an error from the server: a refused unknown command becomes
    /// `Unsupported`, a lost connection `Stopped`.
    pub fn from_client(stack: &str, during: &str, error: ClientError) -> CliError {
        if let ClientError::Rejected { command, error: body } = &error {
            if body.code == ErrorCode::UnknownCommand {
                return CliError::Unsupported { stack: stack.into(), what: command_what(*command) };
            }
        }
        if error.is_disconnect() {
            return CliError::Stopped { stack: stack.into(), during: during.into(), error };
        }
        CliError::Client { stack: stack.into(), error }
    }
}

/// What a command gives, for "this server does not support ...".
pub fn command_what(c: CommandName) -> &'static str {
    match c {
        CommandName::GetStats | CommandName::WatchStats => "resource stats (get_stats)",
        CommandName::GetTimeline => "timelines (get_timeline)",
        CommandName::GetIncidents => "incidents (get_incidents)",
        CommandName::GetSnapshot => "get_snapshot",
        CommandName::GetLogs => "get_logs",
        CommandName::StartService => "start_service",
        CommandName::StopService => "stop_service",
        CommandName::RestartService => "restart_service",
        CommandName::StartAll => "start_all",
        CommandName::StopAll => "stop_all",
    }
}

impl From<UsageError> for CliError {
    fn from(e: UsageError) -> CliError {
        CliError::Usage(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(e) => e.fmt(f),
            CliError::UnknownService { names, stack, services } => {
                let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                let word = if names.len() == 1 { "service" } else { "services" };
                write!(
                    f,
                    "stack \"{stack}\" has no {word} {}; its services: {}",
                    quoted.join(", "),
                    services.join(", ")
                )
            }
            CliError::NoStack { why } => write!(f, "{why}"),
            CliError::Ambiguous { why, candidates } => {
                write!(f, "{why}; choose one with -s: {}", candidates.join(", "))
            }
            CliError::Local { what, error } => write!(f, "{what}: {error}"),
            CliError::ServerExit { code } => write!(f, "flowlayer-server exited with code {code}"),
            CliError::Unsupported { stack, what } => {
                write!(f, "stack \"{stack}\": this server does not support {what}")
            }
            CliError::Stopped { stack, during, error } => {
                write!(f, "stack \"{stack}\" stopped during {during} ({error})")
            }
            CliError::Client { stack, error } => write!(f, "stack \"{stack}\": {error}"),
            CliError::ActionFailed { failures } => {
                let lines: Vec<String> =
                    failures.iter().map(|(name, why)| format!("{name}: {why}")).collect();
                write!(f, "{}", lines.join("\n"))
            }
            CliError::ServiceFailed { service, why } => {
                write!(f, "{service} will not come up: {why}")
            }
            CliError::TimedOut { after, pending } => {
                write!(
                    f,
                    "timed out after {}; not ready: {}",
                    crate::when::human(*after),
                    pending.join("; ")
                )
            }
            CliError::StdoutClosed => write!(f, "stdout closed"),
        }
    }
}
