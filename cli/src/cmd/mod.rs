//! The subcommands, one file each, and what they share: a session with the
//! selected stack, service name checks, command calls that turn server
//! errors into `CliError`s.

mod act;
mod incidents;
mod logs;
mod ls;
mod status;
mod updown;
mod wait;
mod why;

use crate::args::{Args, Verb};
use crate::error::CliError;
use crate::out::Out;
use crate::stack::{self, Stack};
use flowlayer_client::Connection;
use flowlayer_protocol::{Command, ResultPayload, ServiceState};
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// How long a command's answer may take. `stop_service` answers when the
/// process is gone, which may take the 8 s grace and then some.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(args: &Args, out: &mut Out) -> Result<(), CliError> {
    match args.verb {
        Verb::Status => status::run(args, out),
        Verb::Logs => logs::run(args, out),
        Verb::Start | Verb::Stop | Verb::Restart => act::run(args, out),
        Verb::Wait => wait::run(args, out),
        Verb::Why => why::run(args, out),
        Verb::Incidents => incidents::run(args, out),
        Verb::Ls => ls::run(args, out),
        Verb::Up => updown::up(args, out),
        Verb::Down => updown::down(args, out),
    }
}

/// A session with the stack a command is about.
pub struct Session {
    pub stack: Stack,
    pub conn: Connection,
}

impl Session {
    pub fn open(args: &Args) -> Result<Session, CliError> {
        let stack = stack::select(args)?;
        let conn = stack.connect()?;
        Ok(Session { stack, conn })
    }

    pub fn services(&self) -> &[ServiceState] {
        &self.conn.snapshot().services
    }

    pub fn names(&self) -> Vec<String> {
        self.services().iter().map(|s| s.name.clone()).collect()
    }

    /// Every name must be one of the stack's services (exit 2 otherwise, with
    /// the list).
    pub fn check(&self, names: &[String]) -> Result<(), CliError> {
        let all = self.names();
        let unknown: Vec<String> = names.iter().filter(|n| !all.contains(n)).cloned().collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(CliError::UnknownService {
            names: unknown,
            stack: self.stack.name.clone(),
            services: all,
        })
    }

    /// Sends `cmd` and reads its data; `during` names it in messages.
    pub fn call_as<T: DeserializeOwned>(
        &mut self,
        cmd: &Command,
        during: &str,
    ) -> Result<T, CliError> {
        self.conn
            .call_as(cmd, COMMAND_TIMEOUT)
            .map_err(|e| CliError::from_client(&self.stack.name, during, e))
    }

    /// Sends every command at once, then collects the answers in order: one
    /// round trip for N questions.
    pub fn call_many(
        &mut self,
        cmds: &[Command],
        during: &str,
    ) -> Result<Vec<Result<ResultPayload, flowlayer_client::ClientError>>, CliError> {
        let mut ids = Vec::with_capacity(cmds.len());
        for c in cmds {
            let id = self
                .conn
                .send(c)
                .map_err(|e| CliError::from_client(&self.stack.name, during, e))?;
            ids.push(id);
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.conn.reply(&id, deadline) {
                Err(e) if e.is_disconnect() => {
                    return Err(CliError::from_client(&self.stack.name, during, e))
                }
                r => out.push(r),
            }
        }
        Ok(out)
    }

    pub fn close(self) {
        self.conn.close();
    }
}
