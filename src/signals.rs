//! Signal thread (`signals`): SIGINT, SIGTERM and SIGHUP become `Msg::Signal`,
//! posted on a channel of their own that never makes this thread wait
//! (`bus::SIGNALS_WAITING`).
//!
//! signal-hook installs handlers that write to a self-pipe, and this thread
//! reads it. Not `sigwait`: that needs the signals blocked in every thread, and a
//! blocked mask is inherited by every child the server spawns, so services would
//! never see the SIGTERM meant to stop them. Handlers, unlike masks, are reset
//! to the default on `exec`.

use crate::bus::{Sig, SignalTx};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

pub fn spawn_signals(tx: SignalTx) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            let sig = if sig == SIGINT { Sig::Interrupt } else { Sig::Terminate };
            if tx.post(sig).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}
