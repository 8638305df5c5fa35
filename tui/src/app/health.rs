//! Service health in the cockpit (health.md §1-3), on the UI thread as part of
//! `App::update`: CPU and memory columns fed by `watch_stats` while the
//! services list is on screen, restart counts and a pending restart's
//! countdown, the why line of the selected service, and the timeline view.
//!
//! Every command here is sent only when the server announced it in `hello`,
//! so a V1 server sees exactly the V1 client. Nothing polls on a timer: the
//! why line is asked for on selection, on the service's own status events, and
//! (while its sentence still moves: a probe's count, a dependency) along with
//! the `service_stats` event the server sends anyway; the countdown wakes the
//! UI once a second only while a restart is pending (spec/tui.md).

use super::{App, Overlay, Pending, Tone};
use flowlayer_protocol::{Command, CommandName, ResultPayload, Stats, Timeline};
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
    /// The last answer differed from the one before: the sentence moves on
    /// its own (a probe's count, a restart's delay).
    changing: bool,
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
                self.why = Some(Why {
                    service: service.clone(),
                    text: None,
                    asking: true,
                    stale: false,
                    changing: true,
                })
            }
        }
        let q = TimelineQuery { service: Some(service.clone()), limit: Some(WHY_LIMIT) };
        self.send(Command::GetTimeline(q), Pending::Why { service }, now);
    }

    pub(super) fn on_why(&mut self, service: String, payload: &ResultPayload, now: Instant) {
        let Some(w) = self.why.as_mut().filter(|w| w.service == service) else { return };
        w.asking = false;
        let text = payload.data_as::<Timeline>().and_then(|t| t.why);
        w.changing = text.is_some() && text != w.text;
        w.text = text.or(w.text.take());
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
        // A sentence can move on without an event of its service: a probe's
        // count grows, a dependency changes. Refresh it with this tick while it
        // waits for another service, or while its last answer was new.
        let moving = self.why.as_ref().is_some_and(|w| {
            let text = w.text.as_deref().unwrap_or("");
            !w.asking && text != "ready" && (w.changing || text.starts_with("waiting"))
        });
        if moving {
            self.ask_why(now);
        }
    }

    /// `watch_stats` on exactly while the services list is on screen (its stack
    /// shown, no view over it) and the server serves it; the server samples
    /// nothing for this client otherwise.
    pub(super) fn sync_watch(&mut self, now: Instant) {
        if !self.ready {
            self.watching = false;
            return;
        }
        let wanted =
            self.serves(CommandName::WatchStats) && self.overlay.is_none() && self.is_visible();
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

#[cfg(test)]
mod tests {
    use super::super::tests::{connected_to, env, result, sent, t0, EXTENDED};
    use super::super::{App, Event, Overlay, INCIDENTS_KEY, TIMELINE_KEY};
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};
    use termion::event::Key;

    fn names(s: &[Value]) -> Vec<&str> {
        s.iter().map(|m| m["name"].as_str().unwrap()).collect()
    }

    fn status(service: &str, status: &str, extra: Value) -> Event {
        let mut p = json!({"service": service, "status": status,
                           "timestamp": "2026-11-27T10:00:00.000Z"});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        env(json!({"type":"event","name":"service_status","payload":p}))
    }

    fn stats(cpu: f64) -> Event {
        env(json!({"type":"event","name":"service_stats","payload":{
            "timestamp":"2026-11-27T10:00:01.000Z","services":[
            {"name":"api","cpu":cpu,"rss_bytes":47_185_920,"processes":2,"cpu_seconds":3.5,
             "restarts":0,"uptime_ms":5000}]}}))
    }

    fn timeline(why: &str) -> Value {
        json!({"ok":true,"data":{"entries":[{"timestamp":"2026-11-27T10:00:00.000Z",
            "service":"api","kind":"status","message":"boot wave 1","status":"starting"}],
            "why":why}})
    }

    fn key(app: &mut App, c: char, now: Instant) {
        app.update(Event::Key(Key::Char(c)), now);
    }

    #[test]
    fn a_v1_server_gets_only_v1_commands() {
        let v1 = ["get_snapshot", "get_logs", "start_service", "stop_service"];
        let mut app = connected_to(&v1, &[("api", "ready")]);
        let now = t0();
        assert_eq!(names(&sent(&mut app)), ["get_logs"]);
        app.update(Event::Key(Key::Down), now);
        key(&mut app, TIMELINE_KEY, now);
        key(&mut app, INCIDENTS_KEY, now);
        assert_eq!(names(&sent(&mut app)), ["get_logs"], "no why, no timeline, no watch");
        assert!(app.overlay.is_none());
        assert!(app.footer.as_ref().unwrap().0.contains("get_incidents"));
        assert!(!app.watching);
    }

    #[test]
    fn stats_are_watched_only_while_the_list_is_on_screen() {
        let mut app = connected_to(&EXTENDED, &[("api", "ready")]);
        let now = t0();
        let s = sent(&mut app);
        assert_eq!(names(&s), ["get_logs", "get_incidents", "watch_stats"]);
        assert_eq!(s[2]["payload"], json!({"enabled": true}));
        app.update(stats(0.5), now);
        assert_eq!(app.services[0].stats.as_ref().unwrap().rss_bytes, 47_185_920);
        key(&mut app, TIMELINE_KEY, now);
        let s = sent(&mut app);
        assert_eq!(names(&s), ["get_timeline", "watch_stats"]);
        assert_eq!(s[1]["payload"], json!({"enabled": false}));
        assert!(app.services[0].stats.is_none(), "no stale numbers when the list comes back");
        app.update(stats(0.7), now);
        assert!(app.services[0].stats.is_none(), "a tick already on its way is ignored");
        app.update(Event::Key(Key::Esc), now);
        let s = sent(&mut app);
        assert_eq!((names(&s), &s[0]["payload"]), (vec!["watch_stats"], &json!({"enabled": true})));
        // The server forgets the watch with the connection; the next one asks again.
        app.update(Event::Link(crate::event::LinkState::Lost("reset".into())), now);
        assert!(!app.watching);
        assert!(sent(&mut app).is_empty(), "nothing to send to a lost connection");
    }

    #[test]
    fn the_why_line_is_asked_on_selection_and_on_the_services_own_changes() {
        let mut app = connected_to(&EXTENDED, &[("api", "starting"), ("db", "starting")]);
        let now = t0();
        sent(&mut app);
        app.update(Event::Key(Key::Down), now);
        let s = sent(&mut app);
        assert_eq!(names(&s), ["get_logs", "get_timeline"]);
        assert_eq!(s[1]["payload"], json!({"service": "api", "limit": 1}));
        let id = s[1]["id"].as_str().unwrap().to_string();
        // A change while the answer is on its way: asked again after it, once.
        app.update(status("api", "running", json!({})), now);
        app.update(status("api", "running", json!({})), now);
        app.update(status("db", "ready", json!({})), now);
        assert!(sent(&mut app).is_empty(), "one why at a time, only for the selection");
        app.update(result(&id, timeline("waiting for db: starting")), now);
        assert_eq!(app.why.as_ref().unwrap().text.as_deref(), Some("waiting for db: starting"));
        let s = sent(&mut app);
        assert_eq!(names(&s), ["get_timeline"]);
        // While it waits, the stats tick refreshes it (the probe count grows
        // without a status event); once ready, ticks do not.
        app.update(result(s[0]["id"].as_str().unwrap(), timeline("waiting for db: ×3")), now);
        app.update(stats(0.1), now);
        let s = sent(&mut app);
        assert_eq!(names(&s), ["get_timeline"]);
        app.update(status("api", "ready", json!({})), now);
        app.update(result(s[0]["id"].as_str().unwrap(), timeline("ready")), now);
        let s = sent(&mut app);
        app.update(result(s[0]["id"].as_str().unwrap(), timeline("ready")), now);
        app.update(stats(0.1), now);
        assert!(sent(&mut app).is_empty(), "a ready service is not asked again");
        assert_eq!(app.why.as_ref().unwrap().text.as_deref(), Some("ready"));
        // A sentence that stops changing stops being asked for.
        app.update(status("api", "running", json!({})), now);
        let s = sent(&mut app);
        app.update(result(s[0]["id"].as_str().unwrap(), timeline("running")), now);
        app.update(stats(0.1), now);
        let s = sent(&mut app);
        assert_eq!(names(&s), ["get_timeline"], "new: asked once more");
        app.update(result(s[0]["id"].as_str().unwrap(), timeline("running")), now);
        app.update(stats(0.1), now);
        assert!(sent(&mut app).is_empty(), "the same twice: settled");
    }

    #[test]
    fn restart_counts_and_the_countdown_wake_the_screen_only_while_pending() {
        let mut app = connected_to(&EXTENDED, &[("api", "running")]);
        let now = t0();
        sent(&mut app);
        assert_eq!(app.countdown_tick(now), None, "idle: nothing to wake for");
        app.update(status("api", "failed", json!({"restarts": 2, "restart_in_ms": 2500})), now);
        let api = app.services[0].clone();
        assert_eq!(api.restarts, Some(2));
        assert_eq!(app.restart_countdown(api.restart_at), Some(3));
        assert_eq!(app.countdown_tick(now), Some(now + Duration::from_millis(500)));
        let later = now + Duration::from_millis(1600);
        app.update(Event::Resize, later);
        assert_eq!(app.restart_countdown(api.restart_at), Some(1));
        assert_eq!(app.countdown_tick(later), Some(later + Duration::from_millis(900)));
        app.update(status("api", "starting", json!({"restarts": 3})), now + Duration::from_secs(3));
        assert_eq!(app.services[0].restart_at, None);
        assert_eq!(app.services[0].restarts, Some(3));
        assert_eq!(app.countdown_tick(now + Duration::from_secs(3)), None);
    }

    #[test]
    fn the_timeline_view_opens_follows_the_service_and_closes() {
        let mut app = connected_to(&EXTENDED, &[("api", "failed"), ("db", "ready")]);
        let now = t0();
        sent(&mut app);
        app.update(Event::Key(Key::Down), now);
        let why = sent(&mut app)[1]["id"].as_str().unwrap().to_string();
        app.update(result(&why, timeline("failed: exited")), now);
        key(&mut app, TIMELINE_KEY, now);
        let s = sent(&mut app);
        assert_eq!(s[0]["payload"], json!({"service": "api"}), "the whole timeline (200)");
        app.update(result(s[0]["id"].as_str().unwrap(), timeline("failed: exited")), now);
        let Some(Overlay::Timeline(v)) = &app.overlay else { panic!("timeline open") };
        assert_eq!(
            (v.entries.len(), v.why.as_deref(), v.loading),
            (1, Some("failed: exited"), false)
        );
        app.update(status("db", "stopped", json!({})), now);
        assert!(sent(&mut app).is_empty(), "another service's change is not this timeline's");
        app.update(status("api", "starting", json!({})), now);
        let s = sent(&mut app);
        assert_eq!(names(&s), ["get_timeline", "get_timeline"], "the why line and the view");
        key(&mut app, 'j', now);
        key(&mut app, 'x', now);
        assert!(sent(&mut app).is_empty(), "keys of the panels do nothing under the view");
        key(&mut app, TIMELINE_KEY, now);
        assert!(app.overlay.is_none());
        assert_eq!(names(&sent(&mut app)), ["watch_stats"]);
        key(&mut app, TIMELINE_KEY, now);
        key(&mut app, 'q', now);
        assert_eq!(app.update(Event::Key(Key::Char('q')), now), super::super::Flow::Quit);
    }
}
