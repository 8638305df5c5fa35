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
