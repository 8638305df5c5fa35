//! Which stack a command talks to, and the connection to it (stacks.md
//! section 3, "Stack selection"; the rules themselves are `select.rs`).
//!
//! `--addr` (with `--token` or `$FLOWLAYER_TOKEN`) names a server over TCP.
//! Without it the stack is one of the running ones the runtime directory
//! lists, reached over its control socket (or, for a server without one,
//! its TCP address and token from the record).

use crate::args::Args;
use crate::error::CliError;
use crate::select::{pick, Candidate, Pick};
use flowlayer_client::{Connection, Target};
use flowlayer_runtime::record::Record;
use std::path::PathBuf;
use std::time::Duration;

/// How long connecting, the handshake and the first two messages may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The stack a command talks to.
#[derive(Clone, Debug)]
pub struct Stack {
    /// How messages name it: its name, or the address it was reached at.
    pub name: String,
    pub target: Target,
    /// The record it was found by; `None` for `--addr`.
    pub record: Option<Record>,
}

/// The current directory, canonical (selection compares canonical paths).
pub fn cwd() -> PathBuf {
    std::env::current_dir().and_then(std::fs::canonicalize).unwrap_or_else(|_| PathBuf::from("/"))
}

pub fn candidates(records: &[Record]) -> Vec<Candidate> {
    records
        .iter()
        .map(|r| Candidate {
            name: r.name.clone(),
            instance_id: r.instance_id.clone(),
            config: r.config.clone(),
        })
        .collect()
}

pub fn select(args: &Args) -> Result<Stack, CliError> {
    if let Some(addr) = &args.addr {
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var("FLOWLAYER_TOKEN").ok().filter(|t| !t.is_empty()));
        let target = Target::Tcp { addr: addr.clone(), token };
        return Ok(Stack { name: addr.clone(), target, record: None });
    }
    let records = flowlayer_runtime::running();
    let cands = candidates(&records);
    match pick(&cands, args.stack.as_deref(), &cwd()) {
        Pick::One(i) => Stack::of(records[i].clone()),
        Pick::None(why) => Err(CliError::NoStack { why }),
        Pick::Many(why, hits) => Err(CliError::Ambiguous {
            why,
            candidates: hits.iter().map(|&i| cands[i].label()).collect(),
        }),
    }
}

/// How to reach a recorded server: its socket, else its TCP address.
fn target_of(r: &Record) -> Option<Target> {
    if let Some(path) = &r.socket {
        return Some(Target::Unix { path: path.clone() });
    }
    let addr = r.addr.clone()?;
    Some(Target::Tcp { addr, token: r.token.clone() })
}

impl Stack {
    pub fn of(record: Record) -> Result<Stack, CliError> {
        let target = target_of(&record).ok_or_else(|| CliError::NoStack {
            why: format!(
                "stack \"{}\" (pid {}) has neither a control socket nor a session address",
                record.name, record.pid
            ),
        })?;
        Ok(Stack { name: record.name.clone(), target, record: Some(record) })
    }

    /// Opens a session. A server that goes away during the handshake has
    /// stopped (exit 1); one that is not there at all is no stack (exit 4).
    pub fn connect(&self) -> Result<Connection, CliError> {
        Connection::open(&self.target, CONNECT_TIMEOUT)
            .map_err(|error| CliError::from_client(&self.name, "connect", error))
    }

    /// Finds the stack again after it went away (a restart), or `None`
    /// while it is not running. A recorded stack is the running server of
    /// the same config, wherever it now listens.
    pub fn find_again(&self) -> Option<Stack> {
        match &self.record {
            None => Some(self.clone()),
            Some(old) => flowlayer_runtime::running()
                .into_iter()
                .find(|r| r.config == old.config)
                .and_then(|r| Stack::of(r).ok()),
        }
    }
}
