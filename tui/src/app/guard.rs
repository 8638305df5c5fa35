//! Runaway guard incidents in the cockpit (guard.md §3), on the UI thread as
//! part of `App::update`: the incidents this connection knows (the open ones
//! asked for after the handshake, all of them when the view opens, and every
//! `incident` event), a marker on a service while one of its incidents is
//! open, the one-line notice in the footer, and the incidents view.
//!
//! `get_incidents` is sent only when the server announced it in `hello`; a V1
//! server never sends an `incident` event, so nothing here shows against one.

use super::{App, Overlay, Pending, Tone};
use flowlayer_protocol::{Command, CommandName, Incident, IncidentQuery, Incidents, ResultPayload};
use std::time::Instant;

/// Incidents kept on this connection; past this the oldest closed ones go.
pub const INCIDENTS_KEPT: usize = 500;

/// The incidents view (`!`): every known incident, newest first, and the
/// evidence of the selected one.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentsView {
    /// Index into `App::incidents_newest_first()`.
    pub selected: usize,
    pub loading: bool,
    /// Rows of evidence scrolled past.
    pub scroll: usize,
}

/// The footer line when an incident opens, as the server's terminal says it
/// (guard.md §3), with the summary for the numbers.
pub fn notice(i: &Incident) -> String {
    let dry = if i.dry_run { " (dry run)" } else { "" };
    format!(
        "guard: {}: {} ({}) → {}{dry}",
        i.service,
        i.rule.as_str(),
        i.summary,
        i.action.as_str()
    )
}

impl App {
    /// After a handshake: the incidents of the server as it is now (the open
    /// ones for the markers; all of them when the view is open).
    pub(super) fn fetch_incidents(&mut self, now: Instant) {
        self.incidents.clear();
        if !self.serves(CommandName::GetIncidents) {
            return;
        }
        let view = matches!(self.overlay, Some(Overlay::Incidents(_)));
        let q = IncidentQuery { open: (!view).then_some(true), ..IncidentQuery::default() };
        self.send(Command::GetIncidents(q), Pending::Incidents { view }, now);
    }

    pub(super) fn open_incidents(&mut self, now: Instant) {
        if !self.serves(CommandName::GetIncidents) {
            let text = "no incidents: this server does not serve get_incidents";
            return self.say(text, Tone::Info);
        }
        if self.not_ready() {
            return;
        }
        self.overlay =
            Some(Overlay::Incidents(IncidentsView { selected: 0, loading: true, scroll: 0 }));
        let q = IncidentQuery::default();
        self.send(Command::GetIncidents(q), Pending::Incidents { view: true }, now);
    }

    pub(super) fn on_incidents(&mut self, view: bool, payload: &ResultPayload) {
        let Some(list) = payload.data_as::<Incidents>() else {
            return self.incidents_failed(view, "unreadable answer from the server".into());
        };
        for inc in list.incidents {
            self.upsert_incident(inc);
        }
        self.incidents.sort_by(|a, b| a.opened_at.cmp(&b.opened_at));
        if let Some(Overlay::Incidents(v)) = &mut self.overlay {
            if view {
                v.loading = false;
            }
        }
    }

    pub(super) fn incidents_failed(&mut self, view: bool, why: String) {
        if let Some(Overlay::Incidents(v)) = &mut self.overlay {
            if view {
                v.loading = false;
            }
        }
        self.say(format!("incidents: {why}"), Tone::Bad);
    }

    /// An `incident` event: opened, acted on, or closed.
    pub(super) fn on_incident(&mut self, inc: Incident) {
        let before = self.upsert_incident(inc.clone());
        let text = match before {
            None if inc.closed_at.is_none() => Some((notice(&inc), Tone::Bad)),
            Some(b) if b.closed_at.is_none() && inc.closed_at.is_some() => {
                let why =
                    inc.close_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                Some((
                    format!("guard: {}: {} closed{why}", inc.service, inc.rule.as_str()),
                    Tone::Info,
                ))
            }
            Some(b) if b.outcome != inc.outcome => inc.outcome.as_ref().map(|o| {
                (format!("guard: {}: {}: {o}", inc.service, inc.rule.as_str()), Tone::Bad)
            }),
            _ => None,
        };
        if let Some((text, tone)) = text {
            self.say(text, tone);
        }
    }

    /// Adds or replaces an incident by id; returns the one it replaced.
    fn upsert_incident(&mut self, inc: Incident) -> Option<Incident> {
        if let Some(old) = self.incidents.iter_mut().find(|i| i.id == inc.id) {
            return Some(std::mem::replace(old, inc));
        }
        self.incidents.push(inc);
        // The list shows newest first: keep the selection on the incident the
        // user chose (the newest stays selected when it was).
        if let Some(Overlay::Incidents(v)) = &mut self.overlay {
            if v.selected > 0 {
                v.selected += 1;
            }
        }
        while self.incidents.len() > INCIDENTS_KEPT {
            match self.incidents.iter().position(|i| i.closed_at.is_some()) {
                Some(p) => self.incidents.remove(p),
                None => self.incidents.remove(0),
            };
        }
        None
    }

    /// Open incidents of `service`.
    pub fn open_incidents_of(&self, service: &str) -> usize {
        self.incidents.iter().filter(|i| i.service == service && i.closed_at.is_none()).count()
    }

    /// The incidents the view lists, newest first.
    pub fn incidents_newest_first(&self) -> Vec<&Incident> {
        self.incidents.iter().rev().collect()
    }

    /// Moves the incidents view's selection by `delta`.
    pub(super) fn move_incident(&mut self, delta: i64) {
        let n = self.incidents.len() as i64;
        if let Some(Overlay::Incidents(v)) = &mut self.overlay {
            v.selected = (v.selected as i64 + delta).clamp(0, (n - 1).max(0)) as usize;
            v.scroll = 0;
        }
    }

    /// Scrolls the evidence of the selected incident.
    pub(super) fn scroll_incident(&mut self, delta: i64) {
        if let Some(Overlay::Incidents(v)) = &mut self.overlay {
            v.scroll = (v.scroll as i64 + delta).max(0) as usize;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::{connected_to, env, result, sent, t0, EXTENDED};
    use super::super::{Event, Overlay, Tone, INCIDENTS_KEY};
    use serde_json::{json, Value};
    use termion::event::Key;

    /// An incident of `service` as the server sends it (guard.md §3).
    pub(crate) fn incident(id: &str, service: &str, closed: bool, outcome: Option<&str>) -> Value {
        json!({"id": id, "service": service, "rule": "runaway", "action": "restart",
            "dry_run": false, "opened_at": "2026-11-27T10:11:12.000Z",
            "closed_at": if closed { json!("2026-11-27T10:12:00.000Z") } else { Value::Null },
            "summary": "cpu 0.98 cores for 30 s and 97 % of 1,840 lines were \"retry <n> failed\"",
            "evidence": {"threshold": {"cpu": {"above": 0.9}}, "cpu": [0.97, 0.98, 0.99],
                "rss_bytes": [1048576, 2097152], "template": "retry <n> failed",
                "template_count": 1790, "lines": 1840,
                "last_lines": ["retry 1789 failed at 10:11:11", "retry 1790 failed at 10:11:12"]},
            "outcome": outcome,
            "close_reason": if closed { json!("clear for 30 s") } else { Value::Null }})
    }

    fn event(inc: Value) -> Event {
        env(json!({"type":"event","name":"incident","payload":inc}))
    }

    #[test]
    fn open_incidents_are_asked_after_the_handshake_and_mark_their_service() {
        let mut app = connected_to(&EXTENDED, &[("api", "ready"), ("db", "ready")]);
        let now = t0();
        let s = sent(&mut app);
        assert_eq!(s[1]["name"], "get_incidents");
        assert_eq!(s[1]["payload"], json!({"open": true}));
        let data =
            json!({"incidents": [incident("g-1", "api", false, Some("restarted in 0.4 s"))]});
        app.update(result(s[1]["id"].as_str().unwrap(), json!({"ok": true, "data": data})), now);
        assert_eq!(app.open_incidents_of("api"), 1);
        assert_eq!(app.open_incidents_of("db"), 0);
        assert!(app.footer.is_none(), "incidents already open when we came are no news");
    }

    #[test]
    fn incident_events_reach_the_footer_and_the_marker_goes_when_it_closes() {
        let mut app = connected_to(&EXTENDED, &[("api", "ready")]);
        let now = t0();
        app.update(event(incident("g-1", "api", false, None)), now);
        let (text, tone) = app.footer.clone().unwrap();
        assert_eq!(
            text,
            "guard: api: runaway (cpu 0.98 cores for 30 s and 97 % of 1,840 lines were \
             \"retry <n> failed\") → restart"
        );
        assert_eq!(tone, Tone::Bad);
        assert_eq!(app.open_incidents_of("api"), 1);
        app.update(event(incident("g-1", "api", false, Some("restarted in 0.4 s"))), now);
        assert_eq!(app.footer.as_ref().unwrap().0, "guard: api: runaway: restarted in 0.4 s");
        app.update(event(incident("g-1", "api", true, Some("restarted in 0.4 s"))), now);
        assert_eq!(app.footer.as_ref().unwrap().0, "guard: api: runaway closed (clear for 30 s)");
        assert_eq!(app.open_incidents_of("api"), 0);
        assert_eq!(app.incidents.len(), 1, "one incident, by id");
    }

    #[test]
    fn a_v1_server_never_gets_get_incidents_and_the_view_says_why() {
        let mut app = connected_to(&["get_logs"], &[("api", "ready")]);
        let now = t0();
        sent(&mut app);
        app.update(Event::Key(Key::Char(INCIDENTS_KEY)), now);
        assert!(sent(&mut app).is_empty());
        assert!(app.overlay.is_none());
    }

    #[test]
    fn the_incidents_view_lists_everything_newest_first_and_selects() {
        let mut app = connected_to(&EXTENDED, &[("api", "ready"), ("db", "ready")]);
        let now = t0();
        sent(&mut app);
        app.update(Event::Key(Key::Char(INCIDENTS_KEY)), now);
        let s = sent(&mut app);
        assert_eq!(s[0]["name"], "get_incidents");
        assert_eq!(s[0]["payload"], json!({}), "all of them, the server's default limit");
        let mut older = incident("g-1", "db", true, None);
        older["opened_at"] = json!("2026-11-27T09:00:00.000Z");
        let data = json!({"incidents": [older, incident("g-2", "api", false, None)]});
        app.update(result(s[0]["id"].as_str().unwrap(), json!({"ok": true, "data": data})), now);
        let ids: Vec<&str> = app.incidents_newest_first().iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["g-2", "g-1"]);
        app.update(Event::Key(Key::Down), now);
        app.update(Event::Key(Key::Down), now);
        let Some(Overlay::Incidents(v)) = &app.overlay else { panic!("view open") };
        assert_eq!((v.selected, v.loading), (1, false));
        app.update(Event::Key(Key::Char(INCIDENTS_KEY)), now);
        assert!(app.overlay.is_none());
    }
}
