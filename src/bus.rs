//! The bus: every message that can reach the state thread, the ids they carry,
//! and the channels they travel on.
//!
//! Producers: supervisor threads (pumps, waiters, probes), the timer thread, the
//! signal thread and session threads. Consumer: the state thread alone
//! (`state::run_state`). Read this file first: it is the list of everything that
//! can happen to a running server.
//!
//! Who may wait is in the types (STYLE.md section 7, item 9). `BusTx::send` waits
//! while the bus is full: back-pressure, wanted for pumps, waiters, probes and the
//! timer. `SignalTx` and `SessionTx` never wait: their channels are bounded by
//! their producers instead. The state thread holds none of these: it has
//! `Producers`, which makes a `BusTx` for each thread it starts and cannot send,
//! and it reports to itself on its local queue. A thread that waited on a full
//! bus that only it drains would wait forever (issue 14).

use crossbeam_channel::{Receiver, Sender, TrySendError};
use flowlayer_protocol::CommandName;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// A restart of the restart policy is due (armed under the run that exited).
    Restart,
}

/// A runtime command from a session, and the `get_logs` query (protocol types).
pub use flowlayer_protocol::{Command, LogQuery};

/// The commands the state thread answers: announced in `hello`, and the only
/// ones sessions pass on. Any other name, known to the protocol crate or not, is
/// refused as `unknown_command` before its payload is read. V1 and the
/// extensions of service health (health.md) and the runaway guard (guard.md).
pub const CAPABILITIES: &[flowlayer_protocol::CommandName] = &[
    CommandName::GetSnapshot,
    CommandName::GetLogs,
    CommandName::StartService,
    CommandName::StopService,
    CommandName::RestartService,
    CommandName::StartAll,
    CommandName::StopAll,
    CommandName::GetStats,
    CommandName::WatchStats,
    CommandName::GetTimeline,
    CommandName::GetIncidents,
];

/// A WebSocket text frame ready for the wire (header and JSON payload), encoded
/// once and shared by every session it goes to.
pub type Frame = Arc<[u8]>;

/// What a queued frame costs besides its bytes (the `Arc` header, its place in
/// the channel), so that a queue of tiny frames is bounded too.
const FRAME_COST: usize = 64;

/// The sending end of one of a session's outgoing queues, bounded in bytes, not
/// frames: a frame may be anything from a 60-byte ack to an 8 MiB page (STYLE.md
/// section 7, item 10). Senders: the state thread, and a `logs-page` thread for
/// its one reply.
#[derive(Clone)]
pub struct FrameTx {
    tx: Sender<Frame>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The receiving end, on the session thread.
pub struct FrameRx {
    rx: Receiver<Frame>,
    queued: Arc<AtomicUsize>,
}

/// A session queue that holds at most `limit` bytes of frames.
pub fn frame_queue(limit: usize) -> (FrameTx, FrameRx) {
    // Unbounded as a channel, bounded by the byte count its senders keep.
    let (tx, rx) = crossbeam_channel::unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    (FrameTx { tx, queued: queued.clone(), limit }, FrameRx { rx, queued })
}

fn cost(frame: &Frame) -> usize {
    frame.len() + FRAME_COST
}

impl FrameTx {
    /// Queues `frame`; false, queuing nothing, when the queue would pass its
    /// bound or the session is gone.
    pub fn push(&self, frame: Frame) -> bool {
        let n = cost(&frame);
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > self.limit {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        if self.tx.send(frame).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Bytes of frames (as `push` counts them) the queue can take now.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.queued.load(Ordering::Acquire))
    }

    /// How many of the newest `frames` fit in `room` (`push_newest` takes them).
    pub fn fit_newest(frames: &[Frame], room: usize) -> usize {
        let mut left = room;
        frames
            .iter()
            .rev()
            .take_while(|f| {
                let n = cost(f);
                let fits = n <= left;
                left = left.saturating_sub(n);
                fits
            })
            .count()
    }

    /// Queues every frame of `frames`, which fit (`fit_newest`): for a queue
    /// with one sender, the state thread's `log` queue, the byte count is taken
    /// once for all of them. Returns how many were queued.
    pub fn push_all(&self, frames: &[Frame]) -> usize {
        let n: usize = frames.iter().map(cost).sum();
        self.queued.fetch_add(n, Ordering::AcqRel);
        let sent = frames.iter().take_while(|f| self.tx.send((*f).clone()).is_ok()).count();
        if sent < frames.len() {
            let unsent: usize = frames[sent..].iter().map(cost).sum();
            self.queued.fetch_sub(unsent, Ordering::AcqRel);
        }
        sent
    }
}

impl FrameRx {
    pub fn try_recv(&self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(cost(&frame), Ordering::AcqRel);
        Some(frame)
    }
}

/// How the state thread reaches one session thread: two queues bounded in bytes
/// (replies and status events, which go out first; `log` events, best effort), a
/// flag asking the session to close (`KICK_*`), and a waker so the session thread,
/// asleep in `mio::Poll`, notices any of them.
#[derive(Clone)]
pub struct Outbox {
    pub frames: FrameTx,
    pub logs: FrameTx,
    pub kick: Arc<AtomicU8>,
    pub waker: Arc<mio::Waker>,
}

impl Outbox {
    /// Asks the session thread to close its connection for `reason` (`KICK_*`).
    pub fn kick(&self, reason: u8) {
        self.kick.store(reason, Ordering::Relaxed);
        // A failed wake means the session thread is already gone.
        let _ = self.waker.wake();
    }

    /// Queues a reply or status frame and wakes the session; false when the
    /// queue is past its bound (the caller closes the session) or gone.
    pub fn push(&self, frame: Frame) -> bool {
        if !self.frames.push(frame) {
            return false;
        }
        let _ = self.waker.wake();
        true
    }
}

/// `Outbox::kick` reasons.
pub const KICK_NONE: u8 = 0;
/// The session's queue could not take a status event or a reply (close 1008).
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
    /// The spawn of a run failed before any process ran (queued locally; sent
    /// by a `port:<svc>` thread when the service's port was in use, once it
    /// has looked up who holds it).
    SpawnFailed { svc: SvcId, run: RunId, error: String },
    /// The process of a run ended. Its group has been SIGKILLed and its output
    /// drained (or the drain grace passed), so no line of the run comes after this
    /// except from escaped grandchildren.
    Exited { svc: SvcId, run: RunId, exit: ExitInfo },
    /// The readiness probe of a run passed.
    ProbeReady { svc: SvcId, run: RunId },
    /// The readiness probe of a run gave up after `ready.timeoutMs`.
    ProbeTimedOut { svc: SvcId, run: RunId },
    /// The readiness probe of a run is failing: `count` attempts in a row have
    /// failed with `error`. Sent on the first failure, on each change of the
    /// error, and at most once a `PROBE_REPORT_EVERY` in between.
    ProbeFailing { svc: SvcId, run: RunId, error: String, count: u32 },
    /// A `stopCmd` could not be spawned (the state thread falls back to SIGTERM;
    /// queued locally, never sent).
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
    /// `GET /metrics` asks for the figures the state thread owns; the answer
    /// goes back on `reply`, which always has room (the state thread never
    /// waits on it).
    Scrape { reply: Sender<crate::health::Scrape> },
    /// A resource sample for a subscriber on this thread (the runaway guard,
    /// subscribed with `health::Sink::State`). Each reading names the run it
    /// measured: readings of a run that is over are dropped.
    Sampled(std::sync::Arc<crate::health::meter::Sample>),
    /// The runaway guard asked to look again at this time (`Guard::next_check`):
    /// line windows move and incidents close although no line comes.
    GuardCheck,
}

/// Capacity of the bus. Bounded so that a state thread that falls behind slows
/// the pumps (back-pressure) instead of growing memory without end.
pub const BUS_CAPACITY: usize = 4096;

/// Signals that may wait for the state thread. The model acts on the first
/// (shutdown) and the second (kill what is left); one that comes while two
/// wait would repeat the second, so it is dropped, and nothing a signal
/// means is lost.
pub const SIGNALS_WAITING: usize = 2;

/// The state thread is gone (shutdown): the sending thread ends quietly.
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

/// The bus's sending end for the threads that may wait: pumps, waiters,
/// probes, the timer. Never held by the state thread, a session or the
/// signal thread (see the file header).
#[derive(Clone)]
pub struct BusTx(Sender<Msg>);

impl BusTx {
    /// Sends `msg`, waiting while the bus is full (back-pressure).
    pub fn send(&self, msg: Msg) -> Result<(), Gone> {
        self.0.send(msg).map_err(|_| Gone)
    }

    /// Sends `msg` unless the bus is full, and then drops it: for a message
    /// the next of its kind replaces (a resource sample). Never waits.
    pub fn offer(&self, msg: Msg) -> Result<(), Gone> {
        match self.0.try_send(msg) {
            Ok(()) | Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(Gone),
        }
    }
}

/// The state thread's hold on the bus: it makes a `BusTx` for each thread it
/// starts and has no way to send itself (it would wait on itself when the
/// bus is full). What the state thread reports to itself goes on its local
/// queue.
#[derive(Clone)]
pub struct Producers(Sender<Msg>);

impl Producers {
    /// A sender for a new producer thread (never for the state thread).
    pub fn sender(&self) -> BusTx {
        BusTx(self.0.clone())
    }
}

pub type BusRx = Receiver<Msg>;

pub fn bus() -> (Producers, BusRx) {
    let (tx, rx) = crossbeam_channel::bounded(BUS_CAPACITY);
    (Producers(tx), rx)
}

/// The signal thread's sending end: never waits (`SIGNALS_WAITING`).
pub struct SignalTx(Sender<Sig>);

impl SignalTx {
    pub fn post(&self, sig: Sig) -> Result<(), Gone> {
        match self.0.try_send(sig) {
            Ok(()) | Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(Gone),
        }
    }
}

pub fn signals() -> (SignalTx, Receiver<Sig>) {
    let (tx, rx) = crossbeam_channel::bounded(SIGNALS_WAITING);
    (SignalTx(tx), rx)
}

/// A message from a session, with the session's `Ticket`.
pub struct Posted {
    pub msg: Msg,
    pub ticket: Ticket,
}

/// The control channel: what sessions post. Unbounded as a channel, bounded by
/// its producers: each session has at most three messages in it (`Opened`,
/// one `Command`, `Closed`), and sessions are capped (`session::MAX_SESSIONS`),
/// counting a session until the state thread has taken its `Closed`.
#[derive(Clone)]
pub struct CtlTx(Sender<Posted>);

pub type CtlRx = Receiver<Posted>;

impl CtlTx {
    /// Posts a `/metrics` scrape's request for the state thread's figures (the
    /// answer comes on `reply`). Bounded like a session's messages: the accept
    /// thread lets at most `session::MAX_SCRAPES` scrapes run at once.
    pub fn scrape(&self, reply: Sender<crate::health::Scrape>) -> Result<(), Gone> {
        let ticket = Ticket { share: None, command: false };
        self.0.send(Posted { msg: Msg::Scrape { reply }, ticket }).map_err(|_| Gone)
    }
}

pub fn control() -> (CtlTx, CtlRx) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (CtlTx(tx), rx)
}

/// What a session and its posted messages share: the session's place under the
/// cap (given back when the last of them goes), whether a command of its is in
/// flight, and the waker of its thread.
struct Share {
    busy: AtomicBool,
    waker: Arc<mio::Waker>,
    _seat: crate::credit::Permit,
}

/// Travels with a posted message. For a command, the session may post the next
/// one once this is dropped, which the state thread does after the command's
/// reply is queued: a session has one command in flight at a time, so a client
/// that sends many commands is read as fast as they are answered (TCP holds
/// the rest) and cannot make the server hold its answers in bulk.
pub struct Ticket {
    /// `None` for a message that is not a session's (a `/metrics` scrape).
    share: Option<Arc<Share>>,
    command: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let (true, Some(share)) = (self.command, &self.share) {
            share.busy.store(false, Ordering::Release);
            // A failed wake means the session thread is gone.
            let _ = share.waker.wake();
        }
    }
}

/// A session thread's sending end: never waits.
pub struct SessionTx {
    tx: Sender<Posted>,
    share: Arc<Share>,
}

impl SessionTx {
    /// `seat` is the session's place under the cap, held until the state thread
    /// has taken the last message of the session.
    pub fn new(ctl: &CtlTx, waker: Arc<mio::Waker>, seat: crate::credit::Permit) -> SessionTx {
        let share = Arc::new(Share { busy: AtomicBool::new(false), waker, _seat: seat });
        SessionTx { tx: ctl.0.clone(), share }
    }

    /// False while a command of this session is in flight: read no more.
    pub fn ready(&self) -> bool {
        !self.share.busy.load(Ordering::Acquire)
    }

    fn post(&self, msg: Msg, command: bool) -> Result<(), Gone> {
        let ticket = Ticket { share: Some(self.share.clone()), command };
        if command {
            self.share.busy.store(true, Ordering::Release);
        }
        self.tx.send(Posted { msg, ticket }).map_err(|_| Gone)
    }

    pub fn opened(&self, session: SessionId, outbox: Outbox) -> Result<(), Gone> {
        self.post(Msg::Opened { session, outbox }, false)
    }

    /// Posts a command (only when `ready`); its ticket comes back with the reply.
    pub fn command(&self, session: SessionId, id: String, cmd: Command) -> Result<(), Gone> {
        self.post(Msg::Command { session, id, cmd }, true)
    }

    pub fn closed(&self, session: SessionId) -> Result<(), Gone> {
        self.post(Msg::Closed { session }, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::TryRecvError;

    fn frame(n: usize) -> Frame {
        Frame::from(vec![b'x'; n])
    }

    #[test]
    fn a_frame_queue_is_bounded_in_bytes_and_gives_them_back_when_read() {
        let (tx, rx) = frame_queue(3 * (1000 + FRAME_COST));
        assert!(tx.push(frame(1000)));
        assert!(tx.push(frame(1000)));
        assert!(!tx.push(frame(2000)), "past the bound");
        assert!(tx.push(frame(1000)));
        assert!(!tx.push(frame(1)), "full");
        assert_eq!(tx.room(), 0);
        assert_eq!(rx.try_recv().map(|f| f.len()), Some(1000));
        assert_eq!(tx.room(), 1000 + FRAME_COST);
        assert!(tx.push(frame(1000)));
    }

    #[test]
    fn the_newest_frames_that_fit_are_queued_at_once() {
        let (tx, rx) = frame_queue(2 * (100 + FRAME_COST) + 10);
        let frames = [frame(100), frame(100), frame(100)];
        let fit = FrameTx::fit_newest(&frames, tx.room());
        assert_eq!(fit, 2);
        assert_eq!(tx.push_all(&frames[frames.len() - fit..]), 2);
        assert_eq!(tx.room(), 10);
        drop(rx);
        assert_eq!(tx.push_all(&[frame(1)]), 0, "the session is gone");
        assert_eq!(tx.room(), 10);
    }

    #[test]
    fn signals_past_the_second_waiting_are_dropped_without_waiting() {
        let (tx, rx) = signals();
        for _ in 0..5 {
            assert_eq!(tx.post(Sig::Terminate), Ok(()));
        }
        assert_eq!(rx.try_iter().count(), SIGNALS_WAITING);
        drop(rx);
        assert_eq!(tx.post(Sig::Interrupt), Err(Gone));
    }

    #[test]
    fn a_session_has_one_command_in_flight_and_its_seat_until_the_last_message_goes() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let seats = crate::credit::Credit::new(1);
        let (ctl, rx) = control();
        let tx = SessionTx::new(&ctl, waker, seats.try_take(1).unwrap());
        assert!(tx.ready());
        tx.command(SessionId(1), "1".into(), Command::GetSnapshot).unwrap();
        assert!(!tx.ready(), "one command at a time");
        let posted = rx.try_recv().unwrap();
        assert!(!tx.ready(), "taken is not answered");
        drop(posted);
        assert!(tx.ready());
        tx.closed(SessionId(1)).unwrap();
        drop(tx);
        assert!(seats.try_take(1).is_none(), "Closed not taken yet: the seat is held");
        drop(rx.try_recv().unwrap());
        assert!(seats.try_take(1).is_some());
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }
}
