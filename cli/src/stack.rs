//! Which stack a command talks to, and the connection to it (stacks.md
//! section 3, "Stack selection").
//!
//! `--addr` (with `--token` or `$FLOWLAYER_TOKEN`) names a server over TCP.
//! Without it the stack is looked up among the running ones.

use crate::args::Args;
use crate::error::CliError;
use flowlayer_client::{Connection, Target};
use std::time::Duration;

/// How long connecting, the handshake and the first two messages may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The stack a command talks to.
#[derive(Clone, Debug)]
pub struct Stack {
    /// How messages name it: its name, or the address it was reached at.
    pub name: String,
    pub target: Target,
}

pub fn select(args: &Args) -> Result<Stack, CliError> {
    if let Some(addr) = &args.addr {
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var("FLOWLAYER_TOKEN").ok().filter(|t| !t.is_empty()));
        return Ok(Stack { name: addr.clone(), target: Target::Tcp { addr: addr.clone(), token } });
    }
    Err(CliError::NoStack { why: "no running stack found".into() })
}

impl Stack {
    /// Opens a session. A server that goes away during the handshake has
    /// stopped (exit 1); one that is not there at all is no stack (exit 4).
    pub fn connect(&self) -> Result<Connection, CliError> {
        Connection::open(&self.target, CONNECT_TIMEOUT)
            .map_err(|error| CliError::from_client(&self.name, "connect", error))
    }

    /// Finds the stack again after it went away (a restart): where it can
    /// be reached now, or `None` while it is not running.
    pub fn find_again(&self) -> Option<Target> {
        Some(self.target.clone())
    }
}
