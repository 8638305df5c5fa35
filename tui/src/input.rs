//! Thread `input`: keys from the terminal. Thread `signals`: SIGWINCH becomes a
//! redraw, SIGTERM/SIGHUP/SIGINT a clean quit (the terminal is restored).

use crate::event::Event;
use crossbeam_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};
use termion::input::TermRead;

pub fn spawn_input(events: Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new().name("input".into()).spawn(move || {
        for key in std::io::stdin().keys() {
            let Ok(key) = key else { break };
            if events.send(Event::Key(key)).is_err() {
                return;
            }
        }
        // stdin is gone: nobody can type `q` any more.
        let _ = events.send(Event::Quit);
    })?;
    Ok(())
}

pub fn spawn_signals(events: Sender<Event>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGWINCH, SIGTERM, SIGHUP, SIGINT])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            let ev = if sig == SIGWINCH { Event::Resize } else { Event::Quit };
            if events.send(ev).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}
