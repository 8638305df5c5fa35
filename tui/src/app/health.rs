//! Service health in the cockpit (health.md §1-3), on the UI thread as part of
//! `App::update`: CPU and memory columns fed by `watch_stats` while the
//! services list is on screen, restart counts and a pending restart's
//! countdown, the why line of the selected service, and the timeline view.
//!
//! Every command here is sent only when the server announced it in `hello`,
//! so a V1 server sees exactly the V1 client. Nothing polls on a timer: the
//! why line is asked for on selection, on the service's own status events, and
//! (while it waits for something the server measures, such as a probe) along
//! with the `service_stats` event the server sends anyway; the countdown wakes
//! the UI once a second only while a restart is pending (spec/tui.md).

use super::{App, Overlay, Pending, Tone};
use flowlayer_protocol::{Command, CommandName, ResultPayload, Stats, Status, Timeline};
use flowlayer_protocol::{TimelineEntry, TimelineQuery, WatchStats};
use std::time::{Duration, Instant};

/// Timeline entries asked for with the why line: the sentence is what counts,
/// and one entry is the least a server accepts.
const WHY_LIMIT: usize = 1;

/// The why line of the selected service.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    pub service: String,
    /// The server's sentence; `None` until the first answer.
    pub text: Option<String>,
    asking: bool,
    /// The service changed while an answer was on its way: ask again after it.
    stale: bool,
}

/// The timeline view (`t`): the selection's lifecycle entries, newest at the bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineView {
    /// `None`: every service, merged.
    pub service: Option<String>,
    pub entries: Vec<TimelineEntry>,
    pub why: Option<String>,
    pub loading: bool,
    /// Entries scrolled up from the newest (0: the newest is on the last row).
    pub scroll: usize,
    asking: bool,
    stale: bool,
}

impl App {
    /// Asks for the why line of the selected service (one request at a time).
    pub(super) fn ask_why(&mut self, now: Instant) {
        if !self.ready || !self.serves(CommandName::GetTimeline) {
            return;
        }
        let Some(service) = self.selected.clone() else { return };
        match &mut self.why {
            Some(w) if w.service == service && w.asking => {
                w.stale = true;
                return;
            }
            Some(w) if w.service == service => w.asking = true,
            _ => {
                self.why =
                    Some(Why { service: service.clone(), text: None, asking: true, stale: false })
            }
        }
        let q = TimelineQuery { service: Some(service.clone()), limit: Some(WHY_LIMIT) };
        self.send(Command::GetTimeline(q), Pending::Why { service }, now);
    }

    pub(super) fn on_why(&mut self, service: String, payload: &ResultPayload, now: Instant) {
        let Some(w) = self.why.as_mut().filter(|w| w.service == service) else { return };
        w.asking = false;
        w.text = payload.data_as::<Timeline>().and_then(|t| t.why).or(w.text.take());
        if std::mem::take(&mut w.stale) {
            self.ask_why(now);
        }
    }

    pub(super) fn why_failed(&mut self, service: &str, _why: String) {
        // The line is a hint: a failed refresh keeps the last sentence, and the
        // next status event asks again.
        if let Some(w) = self.why.as_mut().filter(|w| w.service == service) {
            w.asking = false;
            w.stale = false;
        }
    }

    /// The connection ended: what was on its way will not come.
    pub(super) fn why_lost(&mut self) {
        if let Some(w) = &mut self.why {
            w.asking = false;
            w.stale = false;
        }
        if let Some(Overlay::Timeline(v)) = &mut self.overlay {
            v.asking = false;
            v.stale = false;
            v.loading = false;
        }
    }

    /// A `service_status` event for `name`.
    pub(super) fn on_status_changed(&mut self, name: &str, now: Instant) {
        if self.selected.as_deref() == Some(name) {
            self.ask_why(now);
        }
        let shown = match &self.overlay {
            Some(Overlay::Timeline(v)) => v.service.as_deref().is_none_or(|s| s == name),
            _ => false,
        };
        if shown {
            self.fetch_timeline(now);
        }
    }

    pub(super) fn on_stats(&mut self, stats: Stats, now: Instant) {
        if !self.watching {
            return;
        }
        for st in stats.services {
            if let Some(s) = self.services.iter_mut().find(|s| s.name == st.name) {
                if st.restarts > 0 {
                    s.restarts = Some(st.restarts);
                }
                s.stats = Some(st);
            }
        }
        // A service waiting for a probe or a dependency sends no event while
        // the probe's count grows: refresh its why with this tick.
        let waiting = self.selected.as_ref().is_some_and(|name| {
            let status = self.status_of(name);
            let text = self.why.as_ref().and_then(|w| w.text.as_deref()).unwrap_or("");
            matches!(status, Some(Status::Starting | Status::Running)) && text != "ready"
                || text.starts_with("waiting")
        });
        if waiting && !self.why.as_ref().is_some_and(|w| w.asking) {
            self.ask_why(now);
        }
    }

    /// `watch_stats` on exactly while the services list is on screen and the
    /// server serves it; the server samples nothing for this client otherwise.
    pub(super) fn sync_watch(&mut self, now: Instant) {
        if !self.ready {
            self.watching = false;
            return;
        }
        let wanted = self.serves(CommandName::WatchStats) && self.overlay.is_none();
        if wanted == self.watching {
            return;
        }
        self.watching = wanted;
        if !wanted {
            // Numbers from before a pause would be stale when the list comes back.
            for s in &mut self.services {
                s.stats = None;
            }
        }
        let w = WatchStats { enabled: wanted, interval_ms: None };
        self.send(Command::WatchStats(w), Pending::Watch, now);
    }

    /// Seconds left before a service's pending restart, rounded up.
    pub fn restart_countdown(&self, restart_at: Option<Instant>) -> Option<u64> {
        let left = restart_at?.checked_duration_since(self.clock)?;
        Some(left.as_millis().div_ceil(1000) as u64)
    }

    /// When the countdown on screen next changes: once a second while a
    /// restart is pending, never otherwise.
    pub(super) fn countdown_tick(&self, now: Instant) -> Option<Instant> {
        if self.overlay.is_some() {
            return None;
        }
        self.services
            .iter()
            .filter_map(|s| s.restart_at)
            .filter(|at| *at > now)
            .map(|at| {
                let left = at - now;
                let frac = Duration::from_millis((left.as_millis() % 1000) as u64);
                now + if frac.is_zero() { Duration::from_secs(1) } else { frac }
            })
            .min()
    }

    // ---- the timeline view --------------------------------------------------------

    pub(super) fn open_timeline(&mut self, now: Instant) {
        if !self.serves(CommandName::GetTimeline) {
            let text = "no timeline: this server does not serve get_timeline";
            return self.say(text, Tone::Info);
        }
        if self.not_ready() {
            return;
        }
        self.overlay = Some(Overlay::Timeline(TimelineView {
            service: self.selected.clone(),
            entries: Vec::new(),
            why: None,
            loading: true,
            scroll: 0,
            asking: false,
            stale: false,
        }));
        self.fetch_timeline(now);
    }

    /// Asks for the open timeline's entries (again).
    pub(super) fn fetch_timeline(&mut self, now: Instant) {
        if !self.ready {
            return;
        }
        let Some(Overlay::Timeline(v)) = &mut self.overlay else { return };
        if v.asking {
            v.stale = true;
            return;
        }
        v.asking = true;
        let service = v.service.clone();
        let q = TimelineQuery { service: service.clone(), limit: None };
        self.send(Command::GetTimeline(q), Pending::Timeline { service }, now);
    }

    pub(super) fn on_timeline(
        &mut self,
        service: Option<String>,
        payload: &ResultPayload,
        now: Instant,
    ) {
        let Some(t) = payload.data_as::<Timeline>() else {
            return self.timeline_failed(service, "unreadable answer from the server".into());
        };
        let Some(Overlay::Timeline(v)) = &mut self.overlay else { return };
        if v.service != service {
            return;
        }
        // Keep the same entry at the top of the screen when new ones arrive below.
        let added = t.entries.len().saturating_sub(v.entries.len());
        if v.scroll > 0 {
            v.scroll += added;
        }
        v.entries = t.entries;
        v.why = t.why;
        v.loading = false;
        v.asking = false;
        v.scroll = v.scroll.min(v.entries.len().saturating_sub(1));
        if std::mem::take(&mut v.stale) {
            self.fetch_timeline(now);
        }
    }

    pub(super) fn timeline_failed(&mut self, service: Option<String>, why: String) {
        if let Some(Overlay::Timeline(v)) = &mut self.overlay {
            if v.service == service {
                v.loading = false;
                v.asking = false;
                v.stale = false;
            }
        }
        self.say(format!("timeline: {why}"), Tone::Bad);
    }

    /// Scrolls the timeline by `delta` entries (negative: towards older ones).
    pub(super) fn scroll_timeline(&mut self, delta: i64) {
        if let Some(Overlay::Timeline(v)) = &mut self.overlay {
            let max = v.entries.len().saturating_sub(1) as i64;
            v.scroll = (v.scroll as i64 - delta).clamp(0, max) as usize;
        }
    }
}
