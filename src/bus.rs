//! The bus: every message that can reach the state thread, and the ids they carry.
//!
//! Producers: supervisor threads (pumps, waiters, probes, stop commands), the timer
//! thread, the signal thread and session threads. Consumer: the state thread alone
//! (`state::run_state`). Read this file first: it is the list of everything that
//! can happen to a running server.

use crossbeam_channel::{Receiver, Sender};

/// A configured service: its index in `Config::services` (sorted by name).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SvcId(pub usize);

/// One spawn of a service. Increases on every spawn, so reports from an older
/// process can be told apart from the current one and ignored.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

/// One WebSocket connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Service statuses and log streams, with the protocol's exact words.
pub use flowlayer_protocol::{Status, Stream};

/// How a process ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExitInfo {
    Code(i32),
    Signal(i32),
}

impl ExitInfo {
    pub fn success(self) -> bool {
        self == ExitInfo::Code(0)
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitInfo::Code(c) => write!(f, "exited with code {c}"),
            ExitInfo::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s).map(|s| s.as_str()).ok();
                match name {
                    Some(n) => write!(f, "killed by signal {s} ({n})"),
                    None => write!(f, "killed by signal {s}"),
                }
            }
        }
    }
}

/// Which signal reached the server.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sig {
    Interrupt,
    Terminate,
}

/// Timers the state thread can ask for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeadlineKind {
    /// `STOP_GRACE` passed since the stop began: escalate to SIGKILL.
    StopGrace,
}

/// A runtime command from a session, and the `get_logs` query (protocol types).
pub use flowlayer_protocol::{Command, LogQuery};

/// The commands the state thread answers: announced in `hello`, and the only
/// ones sessions pass on. Any other name, known to the protocol crate or not, is
/// refused as `unknown_command` before its payload is read.
pub const CAPABILITIES: &[flowlayer_protocol::CommandName] = &flowlayer_protocol::CommandName::V1;

/// A WebSocket text frame ready for the wire (header and JSON payload), encoded
/// once and shared by every session it goes to.
pub type Frame = std::sync::Arc<[u8]>;

/// How the state thread reaches one session thread: two bounded queues (replies
/// and status events, which go out first; `log` events, best effort), a flag
/// asking the session to close (`KICK_*`), and a waker so the session thread,
/// asleep in `mio::Poll`, notices any of them.
#[derive(Clone)]
pub struct Outbox {
    pub frames: Sender<Frame>,
    pub logs: Sender<Frame>,
    pub kick: std::sync::Arc<std::sync::atomic::AtomicU8>,
    pub waker: std::sync::Arc<mio::Waker>,
}

impl Outbox {
    /// Asks the session thread to close its connection for `reason` (`KICK_*`).
    pub fn kick(&self, reason: u8) {
        self.kick.store(reason, std::sync::atomic::Ordering::Relaxed);
        // A failed wake means the session thread is already gone.
        let _ = self.waker.wake();
    }

    /// Queues a frame and wakes the session; false when the queue is full or gone.
    pub fn push(&self, frame: Frame) -> bool {
        if self.frames.try_send(frame).is_err() {
            return false;
        }
        let _ = self.waker.wake();
        true
    }
}

/// `Outbox::kick` reasons.
pub const KICK_NONE: u8 = 0;
/// The session's queue could not take a status event (close 1008).
pub const KICK_TOO_SLOW: u8 = 1;
/// The server is shutting down (close 1001).
pub const KICK_SHUTDOWN: u8 = 2;

/// Everything that can reach the state thread.
pub enum Msg {
    /// A pump read a batch of complete lines from one pipe. Lines are kept
    /// whichever run wrote them: they were written, whatever happened after.
    /// Dropping the permit gives the pump its byte credit back.
    Lines { svc: SvcId, stream: Stream, lines: crate::logs::Lines, permit: crate::credit::Permit },
    /// The state thread's own spawn of a run succeeded (queued locally, never sent).
    Spawned { svc: SvcId, run: RunId, pid: u32 },
    /// The spawn of a run failed before any process ran (queued locally, never sent).
    SpawnFailed { svc: SvcId, run: RunId, error: String },
    /// The process of a run ended. Its group has been SIGKILLed and its output
    /// drained (or the drain grace passed), so no line of the run comes after this
    /// except from escaped grandchildren.
    Exited { svc: SvcId, run: RunId, exit: ExitInfo },
    /// The readiness probe of a run passed.
    ProbeReady { svc: SvcId, run: RunId },
    /// The readiness probe of a run gave up after `ready.timeoutMs`.
    ProbeTimedOut { svc: SvcId, run: RunId },
    /// A `stopCmd` could not be spawned (the state thread falls back to SIGTERM).
    StopCmdFailed { svc: SvcId, run: RunId, error: String },
    /// A timer armed by the state thread fired.
    Deadline { svc: SvcId, run: RunId, kind: DeadlineKind },
    /// Sessions whose live-log budget ran dry may have refilled: send them the
    /// newest lines they missed.
    LiveTail,
    /// No flood-sized batch has come for a while: the log rings may copy the
    /// lines they keep out of the floods' buffers (`LogStore::compact`).
    LogsQuiet,
    /// SIGINT or SIGTERM reached the server.
    Signal(Sig),
    /// A session finished its handshake and wants the stream.
    Opened { session: SessionId, outbox: Outbox },
    /// A session's connection ended.
    Closed { session: SessionId },
    /// A session sent a valid command with an id.
    Command { session: SessionId, id: String, cmd: Command },
}

/// Capacity of the bus. Bounded so that a state thread that falls behind slows
/// the pumps (back-pressure) instead of growing memory without end.
pub const BUS_CAPACITY: usize = 4096;

pub type BusTx = Sender<Msg>;
pub type BusRx = Receiver<Msg>;

pub fn bus() -> (BusTx, BusRx) {
    crossbeam_channel::bounded(BUS_CAPACITY)
}

/// The control channel: requests from sessions and signals. The state thread
/// always takes these before anything waiting on the bus, so a flood of log
/// batches never delays a command or a Ctrl-C (protocol.md: commands are handled
/// concurrently with events).
pub fn control() -> (BusTx, BusRx) {
    crossbeam_channel::bounded(1024)
}
