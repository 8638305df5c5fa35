//! Signal thread (`signals`): the only place SIGINT, SIGTERM and SIGHUP arrive.
//!
//! `block` runs on the main thread before any other thread exists, so every
//! thread inherits the mask and the signals queue up for `sigwait` here. Children
//! start with an empty mask (std resets it when spawning).

use crate::bus::{BusTx, Msg, Sig};
use nix::sys::signal::{SigSet, Signal};

fn set() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGINT);
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGHUP);
    s
}

pub fn block() -> nix::Result<()> {
    set().thread_block()
}

pub fn spawn_signals(bus: BusTx) -> std::io::Result<()> {
    std::thread::Builder::new().name("signals".into()).spawn(move || loop {
        let sig = match set().wait() {
            Ok(Signal::SIGINT) => Sig::Interrupt,
            Ok(_) => Sig::Terminate,
            Err(_) => continue,
        };
        if bus.send(Msg::Signal(sig)).is_err() {
            return;
        }
    })?;
    Ok(())
}
