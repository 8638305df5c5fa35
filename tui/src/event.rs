//! Everything the UI thread reacts to. Produced by the input, signal, link and
//! stacks threads; consumed by `Cockpit::update`, and by `App::update` for
//! what concerns one server.

use crate::cockpit::{Running, Stopped};
use flowlayer_protocol::{LogEntry, ServerMessage};
use termion::event::Key;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Key(Key),
    /// Any message but a `log` event.
    Server(ServerMessage),
    /// A `log` event, parsed straight into an entry (most of the traffic).
    Log(LogEntry),
    Link(LinkState),
    /// A command frame could not be written (not connected, or the write failed).
    SendFailed {
        id: String,
    },
    /// The terminal was resized.
    Resize,
    /// SIGTERM/SIGHUP/SIGINT, or stdin closed: leave cleanly.
    Quit,
    /// The stacks of the runtime directory, read anew (stacks.md §1).
    Stacks {
        running: Vec<Running>,
        recent: Vec<Stopped>,
    },
    /// How stopping or starting a stack went.
    StackAction {
        text: String,
        ok: bool,
    },
}

/// The connection as the link thread sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    Connecting {
        attempt: u32,
    },
    Connected,
    /// HTTP 401: the server wants a token and none was given.
    TokenRequired,
    /// HTTP 403: the token was refused.
    InvalidToken,
    Unreachable(String),
    /// An established connection ended.
    Lost(String),
}
