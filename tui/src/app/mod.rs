//! The client's state and every rule of how it changes: `App::update(event, now)`.
//! No I/O and no drawing: commands to send are queued in `outbox` and taken by
//! the UI loop; `ui::render` draws from `&App`. Runs on the UI thread.
//!
//! The V1 cockpit (services, logs, actions) is here; the extensions a server
//! may announce in `hello` live beside it: `health` (stats columns, restart
//! counts, the why line, the timeline view) and `guard` (incident markers and
//! the incidents view). Each only acts when the server serves its commands,
//! so against a V1 server the client is the V1 client.

mod guard;
mod health;

pub use guard::IncidentsView;
/// Fixtures the screen tests share with the app's tests.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::guard::tests::incident;
    pub(crate) use super::tests::EXTENDED;
}
pub use health::{TimelineView, Why};

use crate::event::{Event, LinkState};
use flowlayer_protocol::{
    Command, CommandName, ErrorBody, Event as ServerEvent, Incident, LogEntry, LogQuery, LogsPage,
    ProbeType, ResultPayload, ServerMessage, ServiceKind, ServiceResult, ServiceStats, Status,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use termion::event::Key;

/// How long a command may wait for its result (tui.md).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for `get_logs`, which may read history from disk.
pub const LOGS_TIMEOUT: Duration = Duration::from_secs(30);
/// Buffer cap until the server tells its `effective_limit`.
pub const DEFAULT_CAP: usize = 500;
/// Hard cap while the user pages back through history.
pub const MAX_BUFFER: usize = 50_000;
/// Least time between two requests for log events the server did not stream.
/// During a flood the server streams only part of the lines (its live-log
/// budget) and the view fills holes at this pace, a buffer's worth each time,
/// instead of pulling the whole flood one round trip after another.
pub const GAP_EVERY: Duration = Duration::from_millis(250);

/// Opens (and closes) the timeline of the selection (health.md §3).
pub const TIMELINE_KEY: char = 't';
/// Opens (and closes) the guard's incidents (guard.md §3).
pub const INCIDENTS_KEY: char = '!';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Services,
    Logs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub status: Status,
    /// **Extension** (health.md §1): restarts the restart policy made.
    pub restarts: Option<u32>,
    /// **Extension** (health.md §1): when the pending restart is due.
    pub restart_at: Option<Instant>,
    /// **Extension** (health.md §2): the latest `service_stats` reading, while watched.
    pub stats: Option<ServiceStats>,
    /// **Extension** (snapshot): daemon or oneshot.
    pub kind: Option<ServiceKind>,
    /// **Extension** (snapshot): its readiness probe.
    pub probe: Option<ProbeType>,
}

impl Service {
    fn new(name: String, status: Status) -> Service {
        Service {
            name,
            status,
            restarts: None,
            restart_at: None,
            stats: None,
            kind: None,
            probe: None,
        }
    }

    /// Where it starts towards has been reached: `ready` with a probe,
    /// `running` without one (or when the server does not say), done for a
    /// oneshot (the same rule as `flowlayer wait`).
    pub fn settled(&self) -> bool {
        match self.status {
            Status::Ready => true,
            Status::Running => matches!(self.probe, None | Some(ProbeType::None)),
            Status::Stopped => self.kind == Some(ServiceKind::Oneshot),
            Status::Starting | Status::Stopping | Status::Failed | Status::Unknown => false,
        }
    }
}

/// A full-screen view over the services and logs panels.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Timeline(TimelineView),
    Incidents(IncidentsView),
}

/// A command frame for the link thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: String,
    pub frame: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Pending {
    /// First page of the selected view.
    Logs { view: Option<String> },
    /// Lines missed while disconnected.
    Replay { view: Option<String> },
    /// Lines the server dropped for this client while connected (all-logs view).
    Gap { view: Option<String> },
    /// An older page (`before_seq`).
    Older { view: Option<String> },
    /// start/stop/restart, one service or all.
    Action { label: String, service: Option<String> },
    /// `get_timeline` for the why line of `service`.
    Why { service: String },
    /// `get_timeline` for the timeline view.
    Timeline { service: Option<String> },
    /// `watch_stats` on or off.
    Watch,
    /// `get_incidents`: all of them (the view), or the open ones (markers).
    Incidents { view: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tone {
    Info,
    Good,
    Bad,
}

/// The logs panel of the selected view.
#[derive(Debug, Default)]
pub struct LogView {
    /// `None` = all logs.
    pub service: Option<String>,
    /// Ascending seq, no duplicates.
    pub entries: VecDeque<LogEntry>,
    pub cap: usize,
    pub follow: bool,
    /// When not following: seq of the first line shown.
    pub top_seq: u64,
    pub loading: bool,
    pub loading_older: bool,
    /// The server said nothing older exists.
    pub at_start: bool,
    /// Highest seq seen in this view (for replay after a reconnect).
    pub max_seq: u64,
}

impl LogView {
    fn new(service: Option<String>) -> LogView {
        LogView { service, cap: DEFAULT_CAP, follow: true, ..LogView::default() }
    }

    fn wants(&self, e: &LogEntry) -> bool {
        self.service.as_ref().is_none_or(|s| *s == e.service)
    }

    /// Merges entries in, keeping seq order without duplicates, then applies the cap.
    fn merge(&mut self, new: Vec<LogEntry>) {
        let appending =
            new.first().is_some_and(|f| self.entries.back().is_none_or(|b| f.seq > b.seq))
                && new.windows(2).all(|w| w[0].seq < w[1].seq);
        if appending {
            self.entries.extend(new);
        } else {
            let mut all: Vec<LogEntry> = self.entries.drain(..).chain(new).collect();
            all.sort_by_key(|e| e.seq);
            all.dedup_by_key(|e| e.seq);
            self.entries = all.into();
        }
        if let Some(b) = self.entries.back() {
            self.max_seq = self.max_seq.max(b.seq);
        }
        self.trim();
    }

    fn trim(&mut self) {
        let cap = if self.follow { self.cap } else { MAX_BUFFER.max(self.cap) };
        while self.entries.len() > cap {
            self.entries.pop_front();
            self.at_start = false;
        }
    }
}

pub struct App {
    pub addr: String,
    pub token: Option<String>,
    pub color: bool,
    pub link: LinkState,
    pub capabilities: Vec<String>,
    pub server_version: Option<String>,
    pub instance_id: Option<String>,
    got_hello: bool,
    /// `hello` and `snapshot` received on the current connection.
    pub ready: bool,
    pub services: Vec<Service>,
    /// `None` = the `all logs` entry.
    pub selected: Option<String>,
    pub focus: Focus,
    pub view: LogView,
    pub service_filter: String,
    pub log_filter: String,
    /// The panel whose filter is being typed.
    pub editing: Option<Focus>,
    pub info_open: bool,
    pub footer: Option<(String, Tone)>,
    /// Services with a start/stop/restart in flight.
    pub busy: BTreeSet<String>,
    /// Height of the logs panel's text area, set by the UI loop.
    pub log_rows: usize,
    pending: BTreeMap<String, (Pending, Instant)>,
    next_id: u64,
    outbox: Vec<Request>,
    /// When missing log events were last asked for.
    gap_asked: Option<Instant>,
    /// Highest seq of the live `log` events on this connection.
    stream_seq: u64,
    /// `watch_stats` is on for this connection (as last asked).
    pub watching: bool,
    /// The why line of the selected service.
    pub why: Option<Why>,
    /// A full-screen view (timeline, incidents), when one is open.
    pub overlay: Option<Overlay>,
    /// Guard incidents known on this connection, oldest first, one per id.
    pub incidents: Vec<Incident>,
    /// The time of the latest event, for what the screen counts down.
    pub clock: Instant,
    /// One of several stacks: the footer leaves the address to the stack bar and
    /// hints the stack keys.
    pub multi: bool,
    /// This server's stack is on screen (several stacks: only one is).
    visible: bool,
}

/// `code: message` of a rejection or failure, or `fallback` without an error.
fn describe(error: Option<&ErrorBody>, fallback: &str) -> String {
    error.map_or_else(|| format!("{fallback}: "), ErrorBody::to_string)
}

impl App {
    pub fn new(addr: String, token: Option<String>, color: bool) -> App {
        App {
            addr,
            token,
            color,
            link: LinkState::Connecting { attempt: 0 },
            capabilities: Vec::new(),
            server_version: None,
            instance_id: None,
            got_hello: false,
            ready: false,
            services: Vec::new(),
            selected: None,
            focus: Focus::Services,
            view: LogView::new(None),
            service_filter: String::new(),
            log_filter: String::new(),
            editing: None,
            info_open: false,
            footer: None,
            busy: BTreeSet::new(),
            log_rows: 10,
            pending: BTreeMap::new(),
            next_id: 0,
            outbox: Vec::new(),
            gap_asked: None,
            stream_seq: 0,
            watching: false,
            why: None,
            overlay: None,
            incidents: Vec::new(),
            clock: Instant::now(),
            multi: false,
            visible: true,
        }
    }

    /// Commands to send, oldest first.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.outbox)
    }

    /// The earliest command deadline, or the next tick of a restart countdown
    /// on screen, so the UI loop can wake for it (and only then).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let commands = self.pending.values().map(|(_, d)| *d).min();
        match (commands, self.countdown_tick(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the server announced this command in `hello`.
    pub fn serves(&self, name: CommandName) -> bool {
        self.capabilities.iter().any(|c| c == name.as_str())
    }

    fn say(&mut self, text: impl Into<String>, tone: Tone) {
        self.footer = Some((text.into(), tone));
    }

    /// A message from outside this server's link (a stack started or stopped).
    pub fn notify(&mut self, text: String, tone: Tone) {
        self.say(text, tone);
    }

    /// Puts this server's stack on screen or off it: only a stack on screen
    /// watches stats.
    pub fn set_visible(&mut self, visible: bool, now: Instant) {
        self.visible = visible;
        self.sync_watch(now);
    }

    pub fn is_visible(&self) -> bool {
        self.visible
    }

    fn send(&mut self, cmd: Command, what: Pending, now: Instant) -> String {
        self.next_id += 1;
        let id = format!("t{}", self.next_id);
        let timeout = match what {
            Pending::Logs { .. }
            | Pending::Replay { .. }
            | Pending::Gap { .. }
            | Pending::Older { .. } => LOGS_TIMEOUT,
            Pending::Action { .. }
            | Pending::Why { .. }
            | Pending::Timeline { .. }
            | Pending::Watch
            | Pending::Incidents { .. } => COMMAND_TIMEOUT,
        };
        self.outbox.push(Request { id: id.clone(), frame: cmd.to_json(&id) });
        self.pending.insert(id.clone(), (what, now + timeout));
        id
    }

    pub fn update(&mut self, ev: Event, now: Instant) -> Flow {
        self.clock = now;
        let flow = match ev {
            Event::Key(k) => self.on_key(k, now),
            Event::Server(env) => {
                self.on_server(env, now);
                Flow::Continue
            }
            Event::Log(entry) => {
                self.on_log(entry, now);
                Flow::Continue
            }
            Event::Link(state) => {
                self.on_link(state);
                Flow::Continue
            }
            Event::SendFailed { id } => {
                if let Some((what, _)) = self.pending.remove(&id) {
                    self.fail(what, "not sent: not connected".into());
                }
                Flow::Continue
            }
            Event::Resize => Flow::Continue,
            Event::Quit => Flow::Quit,
            // The cockpit's: never reach a server's client.
            Event::Stacks { .. } | Event::StackAction { .. } => Flow::Continue,
        };
        self.expire(now);
        self.sync_watch(now);
        flow
    }

    fn expire(&mut self, now: Instant) {
        let late: Vec<String> =
            self.pending.iter().filter(|(_, (_, d))| *d <= now).map(|(id, _)| id.clone()).collect();
        for id in late {
            if let Some((what, _)) = self.pending.remove(&id) {
                self.fail(what, "timed out waiting for the server".into());
            }
        }
    }

    /// A command ended without a result.
    fn fail(&mut self, what: Pending, why: String) {
        match what {
            Pending::Action { label, service } => {
                if let Some(s) = service {
                    self.busy.remove(&s);
                }
                self.say(format!("{label}: {why}"), Tone::Bad);
            }
            Pending::Logs { view }
            | Pending::Replay { view }
            | Pending::Older { view }
            | Pending::Gap { view } => {
                if view == self.view.service {
                    self.view.loading = false;
                    self.view.loading_older = false;
                }
                self.say(format!("logs: {why}"), Tone::Bad);
            }
            Pending::Why { service } => self.why_failed(&service, why),
            Pending::Timeline { service } => self.timeline_failed(service, why),
            Pending::Watch => self.say(format!("stats: {why}"), Tone::Bad),
            Pending::Incidents { view } => self.incidents_failed(view, why),
        }
    }

    // ---- connection -------------------------------------------------------------

    fn on_link(&mut self, state: LinkState) {
        if matches!(state, LinkState::Connected) {
            self.got_hello = false;
            self.stream_seq = 0;
        } else {
            self.ready = false;
            // Pending commands fail; they are never retried automatically.
            let pending = std::mem::take(&mut self.pending);
            let lost = !matches!(state, LinkState::Connecting { .. });
            for (_, (what, _)) in pending {
                if lost {
                    self.fail(what, "connection lost".into());
                }
            }
            self.busy.clear();
            self.view.loading = false;
            self.view.loading_older = false;
            // The server forgets a session's watch with the session.
            self.watching = false;
            self.why_lost();
        }
        self.link = state;
    }

    fn on_server(&mut self, msg: ServerMessage, now: Instant) {
        match msg {
            ServerMessage::Event(ServerEvent::Hello(h)) => {
                self.capabilities = h.capabilities;
                self.server_version = h.server_version;
                let instance = h.instance_id;
                if self.instance_id.is_some() && instance.is_some() && instance != self.instance_id
                {
                    self.say("the server restarted", Tone::Info);
                }
                self.instance_id = instance;
                self.got_hello = true;
            }
            ServerMessage::Event(ServerEvent::Snapshot(snap)) => {
                self.services = snap
                    .services
                    .into_iter()
                    .map(|s| Service {
                        restarts: s.restarts,
                        restart_at: s.restart_in_ms.map(|ms| now + Duration::from_millis(ms)),
                        kind: s.kind,
                        probe: s.probe,
                        ..Service::new(s.name, s.status)
                    })
                    .collect();
                self.services.sort_by(|a, b| a.name.cmp(&b.name));
                self.ready = self.got_hello;
                if self.ready {
                    self.fetch_view(now);
                    self.after_handshake(now);
                }
            }
            ServerMessage::Event(ServerEvent::ServiceStatus(st)) => {
                let (name, status) = (st.service, st.status);
                let restart_at = st.restart_in_ms.map(|ms| now + Duration::from_millis(ms));
                match self.services.iter_mut().find(|s| s.name == name) {
                    Some(s) => {
                        s.status = status;
                        s.restarts = st.restarts.or(s.restarts);
                        s.restart_at = restart_at;
                    }
                    None if !name.is_empty() => {
                        let s = Service::new(name.clone(), status);
                        self.services.push(Service { restarts: st.restarts, restart_at, ..s });
                        self.services.sort_by(|a, b| a.name.cmp(&b.name));
                    }
                    None => {}
                }
                self.on_status_changed(&name, now);
            }
            ServerMessage::Event(ServerEvent::Log(e)) => self.on_log(e, now),
            ServerMessage::Event(ServerEvent::ServiceStats(stats)) => self.on_stats(stats, now),
            ServerMessage::Event(ServerEvent::Incident(inc)) => self.on_incident(*inc),
            ServerMessage::Ack { id, payload } => {
                if !payload.accepted {
                    if let Some((what, _)) = self.pending.remove(&id) {
                        self.fail(what, describe(payload.error.as_ref(), "rejected"));
                    }
                }
            }
            ServerMessage::Result { id, payload } => {
                if let Some((what, _)) = self.pending.remove(&id) {
                    self.on_result(what, payload, now);
                }
            }
            ServerMessage::Error { id, payload } => {
                let text = format!("server: {payload}");
                if let Some((what, _)) = id.and_then(|id| self.pending.remove(&id)) {
                    self.fail(what, text);
                } else {
                    self.say(text, Tone::Bad);
                }
            }
        }
    }

    fn on_log(&mut self, e: LogEntry, now: Instant) {
        if !self.ready {
            return;
        }
        // seq is global and the server streams every service's lines to every
        // client, so a jump in the stream means it did not stream some lines.
        let missed = self.stream_seq > 0 && e.seq > self.stream_seq + 1;
        self.stream_seq = self.stream_seq.max(e.seq);
        if !self.view.wants(&e) {
            return;
        }
        // Ask for the lines of this view between what it has and this one (one
        // request at a time, at most a buffer's worth). Every line is in the
        // all-logs view, so there any jump is a hole; a service's own lines
        // jump anyway, so there only a jump in the stream can be one.
        let v = &self.view;
        let after = v.max_seq > 0 && e.seq > v.max_seq + 1;
        let gap = after && (v.service.is_none() || missed);
        if gap && !v.loading && self.may_ask_for_gap(now) {
            self.gap_asked = Some(now);
            let q = LogQuery {
                service: v.service.clone(),
                limit: Some(v.cap),
                after_seq: Some(v.max_seq),
                before_seq: Some(e.seq),
            };
            let view = v.service.clone();
            self.send(Command::GetLogs(q), Pending::Gap { view }, now);
        }
        // Also while a page is on its way: the merge dedupes by seq.
        self.view.merge(vec![e]);
    }

    /// No request for missing lines is on its way, and none went out lately.
    fn may_ask_for_gap(&self, now: Instant) -> bool {
        self.gap_asked.is_none_or(|t| now.saturating_duration_since(t) >= GAP_EVERY)
            && !self.pending.values().any(|(p, _)| matches!(p, Pending::Gap { .. }))
    }

    fn on_result(&mut self, what: Pending, payload: ResultPayload, now: Instant) {
        if !payload.ok {
            let mut why = describe(payload.error.as_ref(), "failed");
            if let Some(names) = &payload.failed_services {
                why.push_str(&format!(" ({})", names.join(", ")));
            }
            return self.fail(what, why);
        }
        if let Pending::Action { label, service } = what {
            if let Some(s) = &service {
                self.busy.remove(s);
            }
            // start_all and stop_all answer with names, not a status.
            let detail = payload
                .data_as::<ServiceResult>()
                .map(|d| format!(" ({})", d.status))
                .unwrap_or_default();
            return self.say(format!("{label}: ok{detail}"), Tone::Good);
        }
        let what = match what {
            Pending::Why { service } => return self.on_why(service, &payload, now),
            Pending::Timeline { service } => return self.on_timeline(service, &payload, now),
            Pending::Watch => return,
            Pending::Incidents { view } => return self.on_incidents(view, &payload),
            other => other,
        };
        match payload.data_as::<LogsPage>() {
            Some(page) => self.on_page(what, page),
            None => self.fail(what, "unreadable answer from the server".into()),
        }
    }

    /// A `get_logs` answer.
    fn on_page(&mut self, what: Pending, page: LogsPage) {
        let LogsPage { entries: got, truncated, effective_limit, .. } = page;
        match what {
            Pending::Logs { view } if view == self.view.service => {
                self.view.cap = usize::try_from(effective_limit).unwrap_or(MAX_BUFFER).max(1);
                self.view.loading = false;
                self.view.at_start = !truncated;
                self.view.merge(got);
            }
            Pending::Gap { view } if view == self.view.service => self.view.merge(got),
            Pending::Replay { view } if view == self.view.service => {
                let n = got.len();
                self.view.merge(got);
                if truncated {
                    self.say(
                        format!(
                            "reconnected: replayed the last {n} missed lines (older ones skipped)"
                        ),
                        Tone::Info,
                    );
                } else if n > 0 {
                    self.say(format!("reconnected: replayed {n} missed lines"), Tone::Good);
                } else {
                    self.say("reconnected", Tone::Good);
                }
            }
            Pending::Older { view } if view == self.view.service => {
                self.view.loading_older = false;
                if got.is_empty() || !truncated {
                    self.view.at_start = true;
                }
                if let Some(first) = got.first() {
                    if !self.view.follow {
                        self.view.top_seq = self.view.top_seq.min(first.seq);
                    }
                }
                self.view.merge(got);
            }
            // An answer for a view the user already left.
            Pending::Logs { .. }
            | Pending::Replay { .. }
            | Pending::Older { .. }
            | Pending::Gap { .. } => {}
            // Answered by `on_result`.
            Pending::Action { .. }
            | Pending::Why { .. }
            | Pending::Timeline { .. }
            | Pending::Watch
            | Pending::Incidents { .. } => {}
        }
    }

    /// `get_logs` of the selected view.
    fn view_query(&self) -> LogQuery {
        LogQuery { service: self.view.service.clone(), ..LogQuery::default() }
    }

    /// After a (re)connect or a selection change: the first page, or the lines
    /// missed while away.
    fn fetch_view(&mut self, now: Instant) {
        let view = self.view.service.clone();
        let mut q = self.view_query();
        if self.view.max_seq > 0 {
            q.after_seq = Some(self.view.max_seq);
            self.send(Command::GetLogs(q), Pending::Replay { view }, now);
        } else {
            self.view.loading = true;
            self.send(Command::GetLogs(q), Pending::Logs { view }, now);
        }
    }

    fn fetch_older(&mut self, now: Instant) {
        let v = &self.view;
        if !self.ready || v.loading_older || v.at_start || v.loading {
            return;
        }
        let Some(first) = v.entries.front().map(|e| e.seq) else { return };
        let mut q = self.view_query();
        q.before_seq = Some(first);
        q.limit = Some(self.view.cap.clamp(100, 1000));
        self.view.loading_older = true;
        let view = self.view.service.clone();
        self.send(Command::GetLogs(q), Pending::Older { view }, now);
    }

    fn select(&mut self, service: Option<String>, now: Instant) {
        if service == self.selected {
            return;
        }
        self.selected = service.clone();
        self.view = LogView::new(service);
        self.why = None;
        if self.ready {
            self.fetch_view(now);
            self.ask_why(now);
        }
    }

    // ---- lists the screen shows ---------------------------------------------------

    /// Entries of the services panel: `None` = `all logs`, then the matching services.
    pub fn visible_services(&self) -> Vec<Option<&Service>> {
        let f = self.service_filter.to_lowercase();
        std::iter::once(None)
            .chain(
                self.services
                    .iter()
                    .filter(|s| f.is_empty() || s.name.to_lowercase().contains(&f))
                    .map(Some),
            )
            .collect()
    }

    /// Log entries that pass the logs filter.
    pub fn visible_entries(&self) -> Vec<&LogEntry> {
        let f = self.log_filter.to_lowercase();
        self.view
            .entries
            .iter()
            .filter(|e| {
                f.is_empty()
                    || e.message.to_lowercase().contains(&f)
                    || (self.view.service.is_none() && e.service.to_lowercase().contains(&f))
            })
            .collect()
    }

    /// Index of the first visible log line in `visible_entries()`.
    pub fn log_start(&self, total: usize) -> usize {
        let rows = self.log_rows.max(1);
        if self.view.follow {
            return total.saturating_sub(rows);
        }
        let list = self.visible_entries();
        list.iter()
            .position(|e| e.seq >= self.view.top_seq)
            .unwrap_or(total)
            .min(total.saturating_sub(1))
    }

    fn status_of(&self, name: &str) -> Option<Status> {
        self.services.iter().find(|s| s.name == name).map(|s| s.status)
    }

    // ---- keys ---------------------------------------------------------------------

    fn on_key(&mut self, key: Key, now: Instant) -> Flow {
        if key == Key::Ctrl('c') {
            return Flow::Quit;
        }
        if let Some(panel) = self.editing {
            let text = match panel {
                Focus::Services => &mut self.service_filter,
                Focus::Logs => &mut self.log_filter,
            };
            match key {
                Key::Char('\n') => self.editing = None,
                Key::Esc => {
                    text.clear();
                    self.editing = None;
                }
                Key::Backspace => {
                    text.pop();
                }
                Key::Char(c) if !c.is_control() => text.push(c),
                _ => {}
            }
            return Flow::Continue;
        }
        if self.info_open {
            match key {
                Key::Char('q') => return Flow::Quit,
                Key::Esc | Key::Char('i') => self.info_open = false,
                _ => {}
            }
            return Flow::Continue;
        }
        if self.overlay.is_some() {
            return self.on_overlay_key(key, now);
        }
        match key {
            Key::Char('q') => return Flow::Quit,
            Key::Char('\t') => {
                self.focus = match self.focus {
                    Focus::Services => Focus::Logs,
                    Focus::Logs => Focus::Services,
                }
            }
            Key::Char('/') => self.editing = Some(self.focus),
            Key::Esc => match self.focus {
                Focus::Services => self.service_filter.clear(),
                Focus::Logs => self.log_filter.clear(),
            },
            Key::Char('i') => self.info_open = true,
            Key::Up | Key::Char('k') => match self.focus {
                Focus::Services => self.move_selection(-1, now),
                Focus::Logs => self.scroll_up(1, now),
            },
            Key::Down | Key::Char('j') => match self.focus {
                Focus::Services => self.move_selection(1, now),
                Focus::Logs => self.scroll_down(1),
            },
            Key::PageUp => self.scroll_up(self.log_rows.max(1), now),
            Key::PageDown => self.scroll_down(self.log_rows.max(1)),
            Key::Home | Key::Char('g') => {
                let list = self.visible_entries();
                if let Some(first) = list.first() {
                    self.view.top_seq = first.seq;
                    self.view.follow = false;
                }
                self.fetch_older(now);
            }
            Key::End | Key::Char('G') => {
                self.view.follow = true;
                self.view.trim();
            }
            Key::Char('s') => self.action(true, now),
            Key::Char('x') => self.action(false, now),
            Key::Char(TIMELINE_KEY) => self.open_timeline(now),
            Key::Char(INCIDENTS_KEY) => self.open_incidents(now),
            _ => {}
        }
        Flow::Continue
    }

    /// Keys while the timeline or the incidents view covers the panels.
    fn on_overlay_key(&mut self, key: Key, _now: Instant) -> Flow {
        let page = self.log_rows.max(1) as i64;
        let timeline = matches!(self.overlay, Some(Overlay::Timeline(_)));
        match key {
            Key::Char('q') => return Flow::Quit,
            Key::Esc => self.overlay = None,
            Key::Char(TIMELINE_KEY) if timeline => self.overlay = None,
            Key::Char(INCIDENTS_KEY) if !timeline => self.overlay = None,
            Key::Up | Key::Char('k') if timeline => self.scroll_timeline(-1),
            Key::Down | Key::Char('j') if timeline => self.scroll_timeline(1),
            Key::PageUp if timeline => self.scroll_timeline(-page),
            Key::PageDown if timeline => self.scroll_timeline(page),
            Key::Home | Key::Char('g') if timeline => self.scroll_timeline(i64::MIN / 2),
            Key::End | Key::Char('G') if timeline => self.scroll_timeline(i64::MAX / 2),
            Key::Up | Key::Char('k') => self.move_incident(-1),
            Key::Down | Key::Char('j') => self.move_incident(1),
            Key::PageUp => self.scroll_incident(-page),
            Key::PageDown => self.scroll_incident(page),
            _ => {}
        }
        Flow::Continue
    }

    /// After `hello` and `snapshot`: what the extensions show, asked anew.
    fn after_handshake(&mut self, now: Instant) {
        self.ask_why(now);
        self.fetch_timeline(now);
        self.fetch_incidents(now);
    }

    fn move_selection(&mut self, delta: i64, now: Instant) {
        let list: Vec<Option<String>> =
            self.visible_services().iter().map(|s| s.map(|s| s.name.clone())).collect();
        let cur = list.iter().position(|s| *s == self.selected).unwrap_or(0) as i64;
        let next = (cur + delta).clamp(0, list.len() as i64 - 1) as usize;
        let target = list[next].clone();
        self.select(target, now);
    }

    fn scroll_up(&mut self, n: usize, now: Instant) {
        let list = self.visible_entries();
        if list.is_empty() {
            self.fetch_older(now);
            return;
        }
        let start = self.log_start(list.len());
        let new_start = start.saturating_sub(n);
        self.view.top_seq = list[new_start].seq;
        self.view.follow = false;
        if new_start == 0 {
            self.fetch_older(now);
        }
    }

    fn scroll_down(&mut self, n: usize) {
        if self.view.follow {
            return;
        }
        let list = self.visible_entries();
        let start = self.log_start(list.len());
        let new_start = start + n;
        if new_start + self.log_rows >= list.len() {
            self.view.follow = true;
            self.view.trim();
        } else {
            self.view.top_seq = list[new_start].seq;
        }
    }

    fn not_ready(&mut self) -> bool {
        if !self.ready {
            self.say("not connected: wait for the server", Tone::Bad);
        }
        !self.ready
    }

    /// `s` (start, or restart a running service) and `x` (stop) on the selection;
    /// on `all logs`, `start_all` and `stop_all`.
    fn action(&mut self, start: bool, now: Instant) {
        if self.not_ready() {
            return;
        }
        let Some(name) = self.selected.clone() else {
            let (cmd, label) = if start {
                (Command::StartAll, "start all")
            } else {
                (Command::StopAll, "stop all")
            };
            let what = Pending::Action { label: label.into(), service: None };
            self.send(cmd, what, now);
            return;
        };
        if self.busy.contains(&name) {
            return self.say(format!("{name}: a command is already in flight"), Tone::Info);
        }
        let (cmd, label): (fn(String) -> Command, _) = match (start, self.status_of(&name)) {
            (false, _) => (Command::StopService, "stop"),
            (true, Some(Status::Running | Status::Ready)) => (Command::RestartService, "restart"),
            (true, Some(st @ (Status::Starting | Status::Stopping))) => {
                let text = format!("{name} is {st}: wait for it");
                return self.say(text, Tone::Info);
            }
            (true, _) => (Command::StartService, "start"),
        };
        self.busy.insert(name.clone());
        let what =
            Pending::Action { label: format!("{label} {name}"), service: Some(name.clone()) };
        self.send(cmd(name), what, now);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::LinkState;
    use serde_json::{json, Value};

    pub(super) fn t0() -> Instant {
        Instant::now()
    }

    pub(super) fn env(v: Value) -> Event {
        Event::Server(serde_json::from_value(v).unwrap())
    }

    pub(super) fn hello() -> Event {
        env(json!({"type":"event","name":"hello","payload":{
            "protocol_version":1,"server":"flowlayer","capabilities":["get_logs"],
            "instance_id":"i-1","future_field":true}}))
    }

    pub(super) fn snapshot(services: &[(&str, &str)]) -> Event {
        let list: Vec<Value> =
            services.iter().map(|(n, s)| json!({"name": n, "status": s})).collect();
        env(json!({"type":"event","name":"snapshot","payload":{"services": list}}))
    }

    pub(super) fn log(seq: u64, service: &str, msg: &str) -> Event {
        env(json!({"type":"event","name":"log","payload":{"seq":seq,"service":service,
            "phase":"running","stream":"stdout","message":msg,"timestamp":"2026-11-27T10:00:00.000Z"}}))
    }

    pub(super) fn result(id: &str, payload: Value) -> Event {
        env(json!({"type":"result","id":id,"payload":payload}))
    }

    pub(super) fn entries(seqs: &[u64], service: &str) -> Value {
        Value::Array(
            seqs.iter()
                .map(|s| {
                    json!({"seq":s,"service":service,"phase":"running","stream":"stdout",
                           "message":format!("m{s}"),"timestamp":"2026-11-27T10:00:00.000Z"})
                })
                .collect(),
        )
    }

    /// Answers the `get_logs` command `id` with entries of `api`.
    pub(super) fn page(app: &mut App, id: &str, seqs: &[u64], truncated: bool, limit: u64) {
        let data = json!({"entries": entries(seqs, "api"), "truncated": truncated,
                          "effective_limit": limit});
        app.update(result(id, json!({"ok": true, "data": data})), t0());
    }

    /// Every command a server with service health and the guard serves.
    pub(crate) const EXTENDED: [&str; 11] = [
        "get_snapshot",
        "get_logs",
        "start_service",
        "stop_service",
        "restart_service",
        "start_all",
        "stop_all",
        "get_stats",
        "watch_stats",
        "get_timeline",
        "get_incidents",
    ];

    /// A client through the handshake with a server that serves `caps`.
    pub(super) fn connected_to(caps: &[&str], services: &[(&str, &str)]) -> App {
        let mut app = App::new("127.0.0.1:1".into(), None, false);
        let now = t0();
        app.update(Event::Link(LinkState::Connected), now);
        app.update(
            env(json!({"type":"event","name":"hello","payload":{
            "protocol_version":1,"server":"flowlayer","capabilities":caps}})),
            now,
        );
        app.update(snapshot(services), now);
        app
    }

    pub(super) fn connected(services: &[(&str, &str)]) -> App {
        let mut app = App::new("127.0.0.1:1".into(), Some("tok".into()), false);
        let now = t0();
        app.update(Event::Link(LinkState::Connected), now);
        app.update(hello(), now);
        app.update(snapshot(services), now);
        app
    }

    /// `api` ready, its all-logs view loaded with `seqs` (the whole history).
    pub(super) fn all_logs_with(seqs: &[u64]) -> App {
        let mut app = connected(&[("api", "ready")]);
        let id = sent_id(&mut app);
        page(&mut app, &id, seqs, false, 100);
        app
    }

    /// The id of the first request the app sent since the last look.
    pub(super) fn sent_id(app: &mut App) -> String {
        sent(app)[0]["id"].as_str().unwrap().to_string()
    }

    pub(super) fn sent(app: &mut App) -> Vec<Value> {
        app.take_requests().iter().map(|r| serde_json::from_str(&r.frame).unwrap()).collect()
    }

    pub(super) fn seqs(app: &App) -> Vec<u64> {
        app.view.entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn no_command_before_hello_and_snapshot() {
        let mut app = App::new("a".into(), None, false);
        let now = t0();
        app.update(Event::Link(LinkState::Connected), now);
        app.update(Event::Key(Key::Char('x')), now);
        assert!(app.take_requests().is_empty());
        assert_eq!(app.footer.as_ref().unwrap().1, Tone::Bad);
        app.update(snapshot(&[("api", "ready")]), now);
        assert!(!app.ready, "a snapshot without hello is not a handshake");
        app.update(hello(), now);
        app.update(snapshot(&[("api", "ready")]), now);
        assert!(app.ready);
        let s = sent(&mut app);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["name"], "get_logs");
        assert_eq!(s[0]["payload"], json!({}));
    }

    #[test]
    fn first_page_sets_the_cap_and_live_lines_are_deduped_by_seq() {
        let mut app = connected(&[("api", "ready"), ("db", "ready")]);
        let id = sent_id(&mut app);
        let now = t0();
        // A live line arrives before the page that also contains it.
        app.update(log(12, "api", "live"), now);
        page(&mut app, &id, &[9, 10, 11, 12], true, 3);
        assert_eq!(app.view.cap, 3);
        assert_eq!(seqs(&app), vec![10, 11, 12]);
        app.update(log(12, "api", "dup"), now);
        app.update(log(13, "db", "new"), now);
        assert_eq!(seqs(&app), vec![11, 12, 13], "cap holds, duplicates dropped");
    }

    #[test]
    fn reconnect_replays_after_the_highest_seq_and_fails_pending_commands() {
        let mut app = all_logs_with(&[1, 2]);
        let now = t0();
        app.update(log(5, "api", "x"), now);
        assert_eq!(sent(&mut app)[0]["payload"]["before_seq"], 5, "the gap 3..4 is asked for");
        app.update(Event::Key(Key::Char('x')), now);
        assert_eq!(sent(&mut app)[0]["name"], "stop_all");
        app.update(Event::Link(LinkState::Lost("reset".into())), now);
        assert!(app.footer.as_ref().unwrap().0.contains("connection lost"));
        assert!(app.next_deadline(now).is_none(), "pending commands are dropped, not retried");
        app.update(Event::Link(LinkState::Connecting { attempt: 1 }), now);
        app.update(Event::Link(LinkState::Connected), now);
        app.update(hello(), now);
        assert!(app.take_requests().is_empty());
        app.update(snapshot(&[("api", "running")]), now);
        let s = sent(&mut app);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0]["payload"], json!({"after_seq": 5}));
        let id = s[0]["id"].as_str().unwrap().to_string();
        app.update(log(8, "api", "live"), now);
        page(&mut app, &id, &[6, 7, 8], false, 100);
        assert_eq!(seqs(&app), vec![1, 2, 5, 6, 7, 8], "no duplicate, no gap");
    }

    #[test]
    fn a_seq_gap_in_the_all_view_is_filled_from_the_server() {
        let mut app = all_logs_with(&[1, 2]);
        let now = t0();
        app.update(log(5, "api", "after a gap"), now);
        let s = sent(&mut app);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["payload"], json!({"after_seq": 2, "before_seq": 5, "limit": 100}));
        app.update(log(7, "api", "another gap"), now);
        assert!(sent(&mut app).is_empty(), "one gap request at a time");
        let id = s[0]["id"].as_str().unwrap().to_string();
        page(&mut app, &id, &[3, 4], false, 100);
        assert_eq!(seqs(&app), vec![1, 2, 3, 4, 5, 7]);
        app.update(log(9, "api", "next"), now + GAP_EVERY / 2);
        assert!(sent(&mut app).is_empty(), "at most one gap request per GAP_EVERY");
        app.update(log(11, "api", "later"), now + GAP_EVERY);
        assert_eq!(sent(&mut app)[0]["payload"]["after_seq"], 9);
    }

    #[test]
    fn a_jump_in_the_stream_fills_a_service_view_too() {
        let mut app = connected(&[("api", "ready"), ("web", "ready")]);
        let now = t0();
        sent(&mut app);
        app.update(Event::Key(Key::Down), now);
        let s = sent(&mut app);
        assert_eq!(s[0]["payload"]["service"], "api");
        page(&mut app, s[0]["id"].as_str().unwrap(), &[1, 2], false, 100);
        app.update(log(3, "web", "other service"), now);
        app.update(log(4, "api", "next"), now);
        assert!(sent(&mut app).is_empty(), "other services' lines in between are no hole");
        app.update(log(9, "api", "after a jump"), now);
        let s = sent(&mut app);
        assert_eq!(s.len(), 1);
        let want = json!({"service": "api", "after_seq": 4, "before_seq": 9, "limit": 100});
        assert_eq!(s[0]["payload"], want);
        let data =
            json!({"entries": entries(&[6, 8], "api"), "truncated": false, "effective_limit": 100});
        app.update(result(s[0]["id"].as_str().unwrap(), json!({"ok": true, "data": data})), now);
        assert_eq!(seqs(&app), vec![1, 2, 4, 6, 8, 9]);
    }

    #[test]
    fn keys_map_to_commands_by_status() {
        let mut app =
            connected(&[("a", "running"), ("b", "stopped"), ("c", "failed"), ("d", "starting")]);
        sent(&mut app);
        let now = t0();
        let press = |app: &mut App, k: Key| {
            app.update(Event::Key(k), now);
            sent(app)
        };
        let s = press(&mut app, Key::Char('s'));
        assert_eq!(s[0]["name"], "start_all", "on all logs");
        let s = press(&mut app, Key::Char('x'));
        assert_eq!(s[0]["name"], "stop_all");
        press(&mut app, Key::Down);
        assert_eq!(app.selected.as_deref(), Some("a"));
        let s = press(&mut app, Key::Char('s'));
        assert_eq!(
            (s[0]["name"].as_str(), &s[0]["payload"]),
            (Some("restart_service"), &json!({"service":"a"}))
        );
        let s = press(&mut app, Key::Char('x'));
        assert!(s.is_empty(), "a is busy: {s:?}");
        press(&mut app, Key::Down);
        let s = press(&mut app, Key::Char('s'));
        assert_eq!(s[0]["name"], "start_service");
        press(&mut app, Key::Down);
        let s = press(&mut app, Key::Char('s'));
        assert_eq!(s[0]["name"], "start_service", "failed services start");
        press(&mut app, Key::Down);
        let s = press(&mut app, Key::Char('s'));
        assert!(s.is_empty(), "starting: wait");
        let s = press(&mut app, Key::Char('x'));
        assert_eq!(s[0]["name"], "stop_service", "stop cancels a start");
    }

    #[test]
    fn results_and_rejections_reach_the_footer_and_clear_busy() {
        let mut app = connected(&[("a", "running")]);
        sent(&mut app);
        let now = t0();
        app.update(Event::Key(Key::Down), now);
        sent(&mut app);
        app.update(Event::Key(Key::Char('x')), now);
        let id = sent_id(&mut app);
        app.update(
            env(json!({"type":"ack","id":id,"payload":{"accepted":false,
            "error":{"code":"service_busy","message":"service \"a\" is stopping"}}})),
            now,
        );
        assert_eq!(
            app.footer.as_ref().unwrap().0,
            "stop a: service_busy: service \"a\" is stopping"
        );
        assert!(app.busy.is_empty());
        app.update(Event::Key(Key::Char('x')), now);
        let id = sent_id(&mut app);
        app.update(result(&id, json!({"ok":true,"data":{"service":"a","status":"stopped"}})), now);
        assert_eq!(app.footer.as_ref().unwrap(), &("stop a: ok (stopped)".to_string(), Tone::Good));
    }

    #[test]
    fn codes_and_events_from_a_newer_server_do_not_lose_the_answer() {
        let mut app = connected(&[("a", "running")]);
        sent(&mut app);
        let now = t0();
        app.update(Event::Key(Key::Down), now);
        sent(&mut app);
        app.update(Event::Key(Key::Char('x')), now);
        let id = sent_id(&mut app);
        app.update(
            env(json!({"type":"event","name":"service_stats","payload":{"timestamp":"t",
                "services":[]}})),
            now,
        );
        app.update(
            env(json!({"type":"ack","id":id,"payload":{"accepted":false,
            "error":{"code":"quota_exceeded","message":"too many stops"}}})),
            now,
        );
        assert_eq!(app.footer.as_ref().unwrap().0, "stop a: unrecognized: too many stops");
        assert!(app.busy.is_empty());
    }

    #[test]
    fn a_logs_answer_that_cannot_be_read_ends_the_loading() {
        let mut app = connected(&[("api", "ready")]);
        let id = sent_id(&mut app);
        assert!(app.view.loading);
        app.update(result(&id, json!({"ok": true, "data": {"entries": "none"}})), t0());
        assert!(!app.view.loading);
        assert_eq!(app.footer.as_ref().unwrap().0, "logs: unreadable answer from the server");
    }

    #[test]
    fn commands_time_out_after_five_seconds() {
        let mut app = connected(&[("a", "running")]);
        let now = t0();
        sent(&mut app);
        app.update(Event::Key(Key::Down), now);
        sent(&mut app);
        app.update(Event::Key(Key::Char('x')), now);
        assert!(app.next_deadline(now).unwrap() <= now + COMMAND_TIMEOUT + LOGS_TIMEOUT);
        app.update(Event::Resize, now + COMMAND_TIMEOUT);
        assert!(app.footer.as_ref().unwrap().0.contains("timed out"), "{:?}", app.footer);
        assert!(app.busy.is_empty());
    }

    #[test]
    fn q_inside_a_filter_types_q() {
        let mut app = connected(&[("queue", "running"), ("api", "ready")]);
        let now = t0();
        app.update(Event::Key(Key::Char('/')), now);
        assert_eq!(app.update(Event::Key(Key::Char('q')), now), Flow::Continue);
        assert_eq!(app.service_filter, "q");
        assert_eq!(app.visible_services().len(), 2, "all logs + queue");
        app.update(Event::Key(Key::Char('\n')), now);
        assert_eq!(app.editing, None);
        assert_eq!(app.service_filter, "q", "enter keeps the filter");
        app.update(Event::Key(Key::Char('/')), now);
        app.update(Event::Key(Key::Esc), now);
        assert_eq!(app.service_filter, "", "esc clears it");
        assert_eq!(app.update(Event::Key(Key::Char('q')), now), Flow::Quit);
    }

    #[test]
    fn scrolling_above_the_oldest_line_asks_for_older_entries() {
        let mut app = connected(&[("api", "ready")]);
        let id = sent_id(&mut app);
        let now = t0();
        app.log_rows = 2;
        page(&mut app, &id, &[20, 21, 22, 23], true, 4);
        app.update(Event::Key(Key::PageUp), now);
        assert!(!app.view.follow);
        let s = sent(&mut app);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["payload"]["before_seq"], 20);
        let id = s[0]["id"].as_str().unwrap().to_string();
        page(&mut app, &id, &[18, 19], false, 100);
        assert_eq!(seqs(&app), vec![18, 19, 20, 21, 22, 23], "older page kept while scrolled");
        assert!(app.view.at_start);
        app.update(Event::Key(Key::End), now);
        assert!(app.view.follow);
        assert_eq!(seqs(&app), vec![20, 21, 22, 23], "back to the cap when following");
    }
}
