//! Who holds a port that a service needs: the listening socket's inode from
//! `/proc/net/tcp{,6}`, the processes of this user that hold it open, and
//! whose they are (this run, a previous run of this stack, another stack, or
//! another program), told by the environment the server gives its services.
//!
//! Runs on a short-lived `port:<svc>` thread (scanning every process's file
//! descriptors takes milliseconds, which the state thread must not spend),
//! which then reports the spawn failure with the holder named.

use crate::bus::{Msg, Producers, RunId, SvcId};
use crate::config::ServiceCfg;
use crate::procfs;
use crate::watchdog::MARKER_VAR;
use std::fmt;

/// Length of the holder's command line in the message.
const CMD_CHARS: usize = 60;

/// The process holding a port, and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub cmd: String,
    pub whose: Whose,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Whose {
    /// A service of this very run.
    ThisRun { service: String },
    /// Started by an earlier server of this config, and still there.
    PreviousRun,
    /// A service of another stack (by its config).
    OtherStack { service: String, config: String },
    /// Not started by any flowlayer server.
    Other,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({}), ", self.pid, self.cmd)?;
        match &self.whose {
            Whose::ThisRun { service } => write!(f, "service \"{service}\" of this stack"),
            Whose::PreviousRun => write!(f, "left by a previous run of this stack"),
            Whose::OtherStack { service, config } => {
                write!(f, "service \"{service}\" of the stack {config}")
            }
            Whose::Other => write!(f, "started by another program"),
        }
    }
}

fn env_of<'a>(cfg: &'a ServiceCfg, name: &str) -> Option<&'a str> {
    cfg.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The holder of TCP `port` among this user's processes, when one can be seen.
/// The oldest holder is named: forked workers share their parent's socket.
pub fn find(port: u16, cfg: &ServiceCfg) -> Option<Holder> {
    let uid = procfs::own_uid()?;
    let holders = procfs::socket_holders(&procfs::listening_inodes(port), uid);
    let pid = holders.into_iter().min_by_key(|&p| procfs::live_start(p).unwrap_or(u64::MAX))?;
    let cmd = procfs::cmdline(pid, CMD_CHARS).unwrap_or_default();
    let var = |name: &str| procfs::environ_var(pid, name);
    let whose = match var(MARKER_VAR) {
        None => Whose::Other,
        Some(id) if Some(id.as_str()) == env_of(cfg, MARKER_VAR) => {
            Whose::ThisRun { service: var("FLOWLAYER_SERVICE").unwrap_or_default() }
        }
        Some(_) => match var("FLOWLAYER_CONFIG") {
            Some(c) if Some(c.as_str()) == env_of(cfg, "FLOWLAYER_CONFIG") => Whose::PreviousRun,
            c => Whose::OtherStack {
                service: var("FLOWLAYER_SERVICE").unwrap_or_default(),
                config: c.unwrap_or_default(),
            },
        },
    };
    Some(Holder { pid, cmd, whose })
}

/// Starts a `port:<svc>` thread that names the holder of `port` and then
/// reports the run's spawn failure. Returns false when no thread could start
/// (the caller then reports the failure itself, without the holder).
pub fn report(cfg: &ServiceCfg, port: u16, svc: SvcId, run: RunId, bus: &Producers) -> bool {
    let cfg = cfg.clone();
    // A thread of its own, which may wait on the bus.
    let bus = bus.sender();
    std::thread::Builder::new()
        .name(format!("port:{}", cfg.name))
        .spawn(move || {
            let holder = find(port, &cfg);
            let error = super::SpawnError::PortInUse { port, holder }.to_string();
            // A failed send means the state thread is gone.
            let _ = bus.send(Msg::SpawnFailed { svc, run, error });
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_whose_process_holds_the_port() {
        let h = |whose| Holder { pid: 4242, cmd: "postgres -D ./data".into(), whose };
        assert_eq!(
            h(Whose::PreviousRun).to_string(),
            "pid 4242 (postgres -D ./data), left by a previous run of this stack"
        );
        assert_eq!(
            h(Whose::Other).to_string(),
            "pid 4242 (postgres -D ./data), started by another program"
        );
        assert_eq!(
            h(Whose::ThisRun { service: "db".into() }).to_string(),
            "pid 4242 (postgres -D ./data), service \"db\" of this stack"
        );
    }
}
