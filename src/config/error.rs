//! `ConfigError`: every problem found in one config file, each naming its field.

use std::fmt;
use std::path::PathBuf;

/// All problems of one config file (reported together, one `Error:` line each).
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

/// One problem. `at` is the JSON path of the field, like `services.api.port`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigProblem {
    Unreadable {
        error: String,
    },
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    UnknownField {
        at: String,
        field: String,
    },
    WrongType {
        at: String,
        expected: &'static str,
    },
    Missing {
        at: String,
    },
    Invalid {
        at: String,
        value: String,
        rule: &'static str,
    },
    BadServiceName {
        name: String,
    },
    UnknownDependency {
        service: String,
        dep: String,
    },
    SelfDependency {
        service: String,
    },
    BothBindAndAddr,
    BadToken {
        problem: crate::token::TokenProblem,
    },
    /// A key given twice in one object (the parser would keep the last).
    DuplicateKey {
        at: String,
        line: usize,
        column: usize,
        first_line: usize,
        first_column: usize,
    },
    /// A service name that is one of the server's own files in `logs.dir`.
    ReservedServiceName {
        name: String,
        file: String,
        holds: &'static str,
    },
    /// A service name too long to name its file (`names::MAX_NAME_BYTES`).
    LongServiceName {
        name: String,
    },
    /// Two service names equal but for case (one file where case is ignored).
    NamesDifferInCase {
        a: String,
        b: String,
    },
    /// `logs.dir` cannot be created; `error` is the system's reason.
    LogsDir {
        path: PathBuf,
        error: String,
    },
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Unreadable { error } => write!(f, "cannot read file: {error}"),
            ConfigProblem::Syntax { message, line, column } => {
                write!(f, "syntax error at line {line}:{column}: {message}")
            }
            ConfigProblem::UnknownField { at, field } if at.is_empty() => {
                write!(f, "unknown field \"{field}\" at the top level")
            }
            ConfigProblem::UnknownField { at, field } => {
                write!(f, "unknown field \"{field}\" in {at}")
            }
            ConfigProblem::WrongType { at, expected } => write!(f, "{at}: expected {expected}"),
            ConfigProblem::Missing { at } => write!(f, "{at}: required field is missing"),
            ConfigProblem::Invalid { at, value, rule } => write!(f, "{at}: {value} {rule}"),
            ConfigProblem::BadServiceName { name } => write!(
                f,
                "service name \"{name}\" is invalid: use letters, digits, '.', '_' and '-' only"
            ),
            ConfigProblem::UnknownDependency { service, dep } => {
                write!(f, "service \"{service}\": dependsOn names unknown service \"{dep}\"")
            }
            ConfigProblem::SelfDependency { service } => {
                write!(f, "service \"{service}\": dependsOn names the service itself")
            }
            ConfigProblem::BothBindAndAddr => {
                write!(f, "session: give either \"bind\" or its alias \"addr\", not both")
            }
            // Never shows the token: it is a secret.
            ConfigProblem::BadToken { problem } => write!(f, "session.token: {problem}"),
            ConfigProblem::ReservedServiceName { name, file, holds } => {
                write!(f, "service name \"{name}\" is reserved: logs.dir/{file} holds {holds}")?;
                if format!("{name}.jsonl") != *file {
                    write!(f, " (file names may ignore case)")?;
                }
                Ok(())
            }
            ConfigProblem::LongServiceName { name } => write!(
                f,
                "service name \"{}...\" is {} bytes long: at most {}, as it names the file logs.dir/<name>.jsonl",
                name.get(..32).unwrap_or(name),
                name.len(),
                super::names::MAX_NAME_BYTES
            ),
            ConfigProblem::NamesDifferInCase { a, b } => write!(
                f,
                "service names \"{a}\" and \"{b}\" differ only in case: where file names ignore case they would share one log file"
            ),
            ConfigProblem::LogsDir { path, error } => {
                write!(f, "logs.dir: cannot create \"{}\": {error}", path.display())
            }
            ConfigProblem::DuplicateKey { at, line, column, first_line, first_column } => write!(
                f,
                "{at}: key given twice (at line {first_line}:{first_column} and again at line {line}:{column})"
            ),
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line per problem, each naming the file; `main` prefixes each with `Error: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "config {}: {p}", self.file.display())?;
        }
        Ok(())
    }
}
