//! The validated config: what `flowlayer.jsonc` means, with every default applied.
//!
//! Runs on the main thread at boot. `load` reads and parses the file (JSONC),
//! `validate` checks every field and collects every problem at once.

mod bind;
mod error;
pub mod fields;
mod keys;
mod names;
mod origin;
#[cfg(test)]
mod schema;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bind::{parse_bind, BindAddr};
pub use error::{ConfigError, ConfigProblem};
pub use fields::Fields;
pub use origin::{parse_origin, same_host, Origin};

/// Default ceiling of the readiness poll interval (`ready.intervalMs`).
pub const DEFAULT_READY_INTERVAL: Duration = Duration::from_millis(250);
/// Smallest `ready.intervalMs` accepted.
pub const MIN_READY_INTERVAL_MS: u64 = 10;

/// `restart.backoffMs` default: the first restart comes a second after the exit.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(1000);
/// `restart.maxBackoffMs` default: a crashing service is retried at least twice a minute.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_millis(30_000);
/// `restart.resetAfterMs` default: a run this long was not part of a crash loop.
pub const DEFAULT_RESET_AFTER: Duration = Duration::from_millis(30_000);
/// `restart.maxRestarts` default (health.md section 1).
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// `restart.windowMs` default (health.md section 1).
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_millis(60_000);

#[derive(Clone, Debug)]
pub struct Config {
    /// The path as the user gave or discovery found it (shown in messages).
    pub path: PathBuf,
    /// The stack's name: `name`, else the config directory's name (stacks.md
    /// section 1), always valid by `valid_stack_name`.
    pub name: String,
    pub session: SessionCfg,
    pub logs_dir: Option<PathBuf>,
    pub log_view: LogView,
    /// Sorted by name; a service's index here is its `SvcId`.
    pub services: Vec<ServiceCfg>,
}

#[derive(Clone, Debug, Default)]
pub struct SessionCfg {
    pub bind: Option<BindAddr>,
    pub token: Option<String>,
    /// Origins besides the listener's own whose pages may open `/ws`
    /// (`session.allowedOrigins`).
    pub allowed_origins: Vec<Origin>,
}

#[derive(Clone, Debug, Default)]
pub struct LogView {
    pub max_entries: Option<usize>,
    pub all_max_entries: Option<usize>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Daemon,
    Oneshot,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Tcp { port: u16 },
    Http { url: HttpUrl },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Option<Duration>,
}

/// When a service that exited on its own is started again (`restart`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

impl RestartPolicy {
    /// The config's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

/// The restart policy of a service with its backoff and crash-loop limits
/// (health.md section 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restart {
    pub policy: RestartPolicy,
    /// Delay before the first restart; doubles for each consecutive one.
    pub backoff: Duration,
    /// Cap of the doubled delay.
    pub max_backoff: Duration,
    /// A run at least this long resets the doubling and the crash-loop count.
    pub reset_after: Duration,
    /// More exits than this within `window` is a crash loop: no more restarts.
    pub max_restarts: u32,
    pub window: Duration,
}

impl Default for Restart {
    fn default() -> Restart {
        Restart {
            policy: RestartPolicy::No,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            reset_after: DEFAULT_RESET_AFTER,
            max_restarts: DEFAULT_MAX_RESTARTS,
            window: DEFAULT_RESTART_WINDOW,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServiceCfg {
    pub name: String,
    pub cmd: Vec<String>,
    pub stop_cmd: Option<Vec<String>>,
    pub kind: Kind,
    /// 0 means none.
    pub port: u16,
    /// `None` for no probe (`type: none` or no `ready`).
    pub ready: Option<Ready>,
    /// Deduplicated, alphabetical.
    pub depends_on: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log_view_max: Option<usize>,
    pub cwd: PathBuf,
    /// The runaway guard's rules for this service (`None`: nothing is watched).
    pub guard: Option<crate::guard::GuardPolicy>,
    pub restart: Restart,
}

impl Config {
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.services.binary_search_by(|s| s.name.as_str().cmp(name)).ok()
    }
}

/// Creates `logs.dir` (and its parents) when it is missing. One that cannot be
/// had is a config error, found before anything starts (issue 14).
pub fn create_logs_dir(cfg: &Config) -> Result<(), ConfigError> {
    let Some(dir) = &cfg.logs_dir else { return Ok(()) };
    let error = match std::fs::create_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(_) if dir.exists() && !dir.is_dir() => "it exists and is not a directory".to_string(),
        Err(e) => e.to_string(),
    };
    let problem = ConfigProblem::LogsDir { path: dir.clone(), error };
    Err(ConfigError { file: cfg.path.clone(), problems: vec![problem] })
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![ConfigProblem::Unreadable { error: e.to_string() }],
    })?;
    let dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    parse(&text, path, &dir)
}

/// What the config file may be: JSON with comments and trailing commas, nothing else.
fn jsonc_options() -> jsonc_parser::ParseOptions {
    jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// Parses config text; `dir` is where relative paths in it resolve.
pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError { file: path.to_path_buf(), problems };
    let opts = jsonc_options();
    let value: serde_json::Value = match jsonc_parser::parse_to_serde_value(text, &opts) {
        Ok(v) => v,
        Err(e) => {
            return Err(fail(vec![ConfigProblem::Syntax {
                message: e.kind().to_string(),
                line: e.line_display(),
                column: e.column_display(),
            }]))
        }
    };
    let mut problems = keys::duplicates(text, &opts);
    match validate::validate(&value, dir) {
        Ok(cfg) if problems.is_empty() => Ok(cfg),
        Ok(_) => Err(fail(problems)),
        Err(more) => {
            problems.extend(more);
            Err(fail(problems))
        }
    }
}
