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
    Unreadable { error: String },
    Syntax { message: String, line: usize, column: usize },
    UnknownField { at: String, field: String },
    WrongType { at: String, expected: &'static str },
    Missing { at: String },
    Invalid { at: String, value: String, rule: &'static str },
    BadServiceName { name: String },
    UnknownDependency { service: String, dep: String },
    SelfDependency { service: String },
    BothBindAndAddr,
    BadToken { problem: crate::token::TokenProblem },
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
