//! The runaway guard's side of the model (guard.md): what the model feeds the
//! `Guard` (the lines of a live run, samples matched to the run they measured,
//! run starts and ends, the look it asked for) and how it carries out what the
//! guard asks: incidents to the sessions, the timeline and `incidents.jsonl`;
//! stops and restarts through the service's normal stop and start, and their
//! outcome, as the processes reported it, back to the guard.
//!
//! Pure, on the state thread like the rest of the model. The guard samples
//! only while a running service has a resource rule, at the shortest
//! `sampleMs` among them, and asks for a timer only for `Guard::next_check`.

use super::{secs, Effect, Model, RestartReason};
use crate::bus::{Stream, SvcId};
use crate::guard::{Action, Change, GuardEffect, Incident, Outcome, Sample};
use crate::health::meter::Sample as Reading;
use crate::health::timeline::fields;
use crate::logs::Batch;
use flowlayer_protocol::{IncidentQuery, Incidents, ResultData, TimelineKind};
use std::collections::VecDeque;
use std::time::Duration;

/// A `get_incidents` result stays this far under the largest result frame
/// (the envelope and the id take the rest).
const INCIDENTS_RESULT_BYTES: usize = crate::state::MAX_RESULT_BYTES - 4096;

/// A stop or restart the guard asked for, until its outcome is known.
#[derive(Debug)]
pub(super) struct GuardAct {
    /// The incident that acts.
    id: String,
    action: Action,
    /// When the guard asked (Unix ms).
    asked_ms: i64,
    /// The main process of the run it acts on.
    old_pid: u32,
}

impl Model {
    /// True while the guard looks at `svc`: a run is alive and nobody is
    /// stopping it (a stop in progress is not the guard's business).
    fn guard_watching(&self, svc: SvcId) -> bool {
        let s = &self.svcs[svc.0];
        s.pid.is_some() && !s.stop_sent
    }

    /// A batch of `svc`'s output (the hot path: `Lines`, for a service with
    /// a line rule). Only this service's next look can have come closer, so
    /// the timer is checked for it alone. When the guard acted, the sequences
    /// and the sampling are brought up to date as after any other message.
    pub(super) fn guard_lines(
        &mut self,
        svc: SvcId,
        stream: Stream,
        batch: &Batch,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        if !self.guard_watching(svc) {
            return;
        }
        let store = &self.store;
        let last = |s: SvcId, n: usize| store.newest_output(s, n);
        let gfx = self.guard.on_lines(svc, stream, &batch.lines, now, &last);
        if !gfx.is_empty() && self.guard_effects(gfx, now, fx) {
            self.advance(now, fx);
            self.guard_settle(now, fx);
            return;
        }
        if let Some(at) = self.guard.next_check_of(svc, now) {
            if self.guard_alarm.is_none_or(|armed| at < armed) {
                self.arm_guard(Some(at), now, fx);
            }
        }
    }

    /// A resource sample for the guard. Each reading is matched to the run it
    /// measured (one of a run that is over is dropped), and a service whose
    /// `sampleMs` is longer than the subscription's takes only the samples it
    /// is due.
    pub(super) fn on_sampled(&mut self, sample: &Reading, now: i64, fx: &mut Vec<Effect>) {
        for r in &sample.services {
            let Some(period) = self.guard.sample_period(r.svc) else { continue };
            let s = &self.svcs[r.svc.0];
            // No process read: the run's leader is gone and its exit on its way.
            if r.run != s.run || r.processes == 0 || !self.guard_watching(r.svc) {
                continue;
            }
            // Samples come at the subscription's cadence: half of it is the
            // slack that tells "due" from "one early".
            let slack = self.guard_sampling.unwrap_or(period) / 2;
            let gap = period.saturating_sub(slack).as_millis() as i64;
            if s.guard_sampled_ms.is_some_and(|last| sample.ts_ms < last + gap) {
                continue;
            }
            self.svcs[r.svc.0].guard_sampled_ms = Some(sample.ts_ms);
            let one = Sample {
                at: sample.ts_ms,
                cpu: r.cpu,
                rss_bytes: r.rss_bytes,
                processes: r.processes,
            };
            let store = &self.store;
            let last = |s: SvcId, n: usize| store.newest_output(s, n);
            let gfx = self.guard.on_sample(r.svc, &one, &last);
            self.guard_effects(gfx, now, fx);
        }
    }

    /// The look the guard asked for is due.
    pub(super) fn on_guard_check(&mut self, now: i64, fx: &mut Vec<Effect>) {
        self.guard_alarm = None;
        let store = &self.store;
        let last = |s: SvcId, n: usize| store.newest_output(s, n);
        let gfx = self.guard.tick(now, &last);
        self.guard_effects(gfx, now, fx);
    }

    /// After every message but `Lines`: the sampling the guard needs now
    /// (the shortest `sampleMs` among the running services with a resource
    /// rule, or none) and its next look.
    pub(super) fn guard_settle(&mut self, now: i64, fx: &mut Vec<Effect>) {
        let period = (0..self.svcs.len())
            .map(SvcId)
            .filter(|s| self.guard_watching(*s))
            .filter_map(|s| self.guard.sample_period(s))
            .min();
        if period != self.guard_sampling {
            self.guard_sampling = period;
            fx.push(Effect::GuardSampling(period));
        }
        let at = self.guard.next_check(now);
        if at != self.guard_alarm {
            self.arm_guard(at, now, fx);
        }
    }

    fn arm_guard(&mut self, at: Option<i64>, now: i64, fx: &mut Vec<Effect>) {
        self.guard_alarm = at;
        let after = at.map(|t| Duration::from_millis((t - now).max(0) as u64));
        fx.push(Effect::GuardAlarm(after));
    }

    /// Carries out the guard's effects; true when it asked to act.
    pub(super) fn guard_effects(
        &mut self,
        gfx: Vec<GuardEffect>,
        now: i64,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let mut acted = false;
        let mut queue: VecDeque<GuardEffect> = gfx.into();
        while let Some(e) = queue.pop_front() {
            match e {
                GuardEffect::Record(line) => fx.push(Effect::IncidentLine(line)),
                GuardEffect::Changed { svc, change, incident } => {
                    self.record_incident(svc, change, &incident, now, fx);
                    fx.push(Effect::Incident(incident));
                }
                GuardEffect::Say(text) => fx.push(Effect::Say { text, prefixed: true }),
                GuardEffect::SystemLine { svc, text } => self.system_line(svc, text, now, fx),
                GuardEffect::Act { svc, incident, action } => {
                    acted = true;
                    queue.extend(self.guard_act(svc, incident, action, now, fx));
                }
            }
        }
        acted
    }

    /// The timeline's `incident` entry for a change.
    fn record_incident(
        &mut self,
        svc: SvcId,
        change: Change,
        inc: &Incident,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let message = match change {
            Change::Opened => {
                let dry = if inc.dry_run { " (dry run)" } else { "" };
                let (id, rule, action) = (&inc.id, inc.rule.as_str(), inc.action.as_str());
                format!("incident {id} opened: {rule} → {action}{dry}: {}", inc.summary)
            }
            Change::Acted => {
                format!("incident {}: {}", inc.id, inc.outcome.as_deref().unwrap_or("acted"))
            }
            Change::Closed => {
                let reason = inc.close_reason.as_deref().unwrap_or("closed");
                format!("incident {} closed: {reason}", inc.id)
            }
        };
        let mut f = fields(&[
            ("change", change.as_str().into()),
            ("id", inc.id.clone().into()),
            ("rule", inc.rule.as_str().into()),
            ("action", inc.action.as_str().into()),
            ("dry_run", inc.dry_run.into()),
            ("outcome", inc.outcome.clone().into()),
        ]);
        if let Some(reason) = &inc.close_reason {
            f.insert("close_reason".into(), reason.clone().into());
        }
        self.record(svc, TimelineKind::Incident, message, f, now, fx);
    }

    /// Incident `id` asks to stop or restart `svc`: the normal stop (and, for
    /// a restart, the start once the run is gone). Returns the guard's effects
    /// when the action cannot be carried out (it is reported at once).
    fn guard_act(
        &mut self,
        svc: SvcId,
        id: String,
        action: Action,
        now: i64,
        fx: &mut Vec<Effect>,
    ) -> Vec<GuardEffect> {
        let stopping_all =
            self.shutting_down || self.seq.as_ref().is_some_and(|q| !q.kind.starts());
        let s = &self.svcs[svc.0];
        let refused = match s.pid {
            _ if stopping_all => Some("not carried out: the stack is being stopped"),
            None => Some("not carried out: the service had already exited"),
            Some(_) if s.stop_sent => Some("not carried out: the service was being stopped"),
            Some(_) if action == Action::Alert => Some("alerted"),
            Some(_) => None,
        };
        let Some(pid) = s.pid.filter(|_| refused.is_none()) else {
            let outcome = Outcome::Failed(refused.unwrap_or_default().into());
            return self.guard.acted(svc, &id, &outcome, now);
        };
        let rule = self.guard.incident(&id).map_or("", |i| i.rule.as_str());
        let cause = format!("guard: {rule} incident {id}");
        self.svcs[svc.0].guard_act = Some(GuardAct { id, action, asked_ms: now, old_pid: pid });
        self.begin_stop(svc, &cause, Some("guard"), now, fx);
        self.svcs[svc.0].start_after_stop = action == Action::Restart;
        Vec::new()
    }

    /// The status cause of a run the guard stopped: what it found.
    pub(super) fn guard_stop_cause(&self, svc: SvcId) -> Option<String> {
        let act = self.svcs[svc.0].guard_act.as_ref().filter(|a| a.action == Action::Stop)?;
        Some(match self.guard.incident(&act.id) {
            Some(i) => {
                format!(
                    "stopped by the guard: {} incident {}: {}",
                    i.rule.as_str(),
                    i.id,
                    i.summary
                )
            }
            None => format!("stopped by the guard (incident {})", act.id),
        })
    }

    /// A new run of `svc` is up (pid `pid`): the guard starts over, and a
    /// restart it asked for is done.
    pub(super) fn guard_started(&mut self, svc: SvcId, pid: u32, now: i64, fx: &mut Vec<Effect>) {
        self.svcs[svc.0].guard_sampled_ms = None;
        self.guard.on_started(svc);
        let Some(act) = self.svcs[svc.0].guard_act.take() else { return };
        let outcome =
            Outcome::Restarted { ms: now - act.asked_ms, old_pid: act.old_pid, new_pid: pid };
        let gfx = self.guard.acted(svc, &act.id, &outcome, now);
        self.guard_effects(gfx, now, fx);
    }

    /// The start of a guard restart failed before any process ran.
    pub(super) fn guard_start_failed(
        &mut self,
        svc: SvcId,
        error: &str,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(act) = self.svcs[svc.0].guard_act.take() else { return };
        let ms = now - act.asked_ms;
        let text = format!("stopped in {}, but the new run failed to start: {error}", secs(ms));
        let gfx = self.guard.acted(svc, &act.id, &Outcome::Failed(text), now);
        self.guard_effects(gfx, now, fx);
    }

    /// The run of `svc` is gone (its group killed, its leader reaped): its
    /// incidents close; a guard stop is done, a guard restart starts the
    /// next run (unless the stack is being stopped).
    pub(super) fn guard_exited(
        &mut self,
        svc: SvcId,
        stopping_all: bool,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let gfx = self.guard.on_stopped(svc, now);
        self.guard_effects(gfx, now, fx);
        let restart = self.svcs[svc.0].start_after_stop && !stopping_all;
        let Some(act) = self.svcs[svc.0].guard_act.take() else { return };
        if act.action == Action::Restart && restart {
            self.svcs[svc.0].counters.restarts[RestartReason::Guard as usize] += 1;
            let rule = self.guard.incident(&act.id).map_or("", |i| i.rule.as_str());
            let cause = format!("guard restart: {rule} incident {}", act.id);
            self.begin_start(svc, cause, now, fx);
            // Acted once the new run is up (`guard_started`) or cannot start.
            self.svcs[svc.0].guard_act = Some(act);
            return;
        }
        self.svcs[svc.0].start_after_stop = false;
        let ms = now - act.asked_ms;
        let outcome = match act.action {
            Action::Stop => Outcome::Stopped { ms },
            Action::Restart | Action::Alert => Outcome::Failed(format!(
                "stopped in {}, not restarted: the stack is being stopped",
                secs(ms)
            )),
        };
        let gfx = self.guard.acted(svc, &act.id, &outcome, now);
        self.guard_effects(gfx, now, fx);
    }

    /// `get_incidents`: the newest `limit` matching incidents, oldest first,
    /// as many of them as fit in one result frame.
    pub(super) fn cmd_get_incidents(
        &mut self,
        session: crate::bus::SessionId,
        id: String,
        q: IncidentQuery,
        fx: &mut Vec<Effect>,
    ) {
        let found = self.guard.incidents(q.service.as_deref(), q.open, q.limit());
        let mut room = INCIDENTS_RESULT_BYTES;
        let mut incidents = Vec::with_capacity(found.len());
        for inc in found.into_iter().rev() {
            // An incident always serialises; its size decides whether it fits.
            let n = serde_json::to_vec(inc).map_or(0, |v| v.len()) + 1;
            if n > room {
                break;
            }
            room -= n;
            incidents.push(inc.clone());
        }
        incidents.reverse();
        let data = ResultData::Incidents(Incidents { incidents });
        fx.push(Effect::Result { session, id, outcome: Ok(data) });
    }

    /// For `why`: the service's newest open incident, while it has one.
    pub(super) fn guard_note(&self, svc: SvcId) -> Option<String> {
        if !self.guard.has_open(svc) {
            return None;
        }
        let open = self.guard.incidents(Some(self.name(svc)), Some(true), usize::MAX);
        let newest = open.last()?;
        let more = match open.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(format!(
            "guard incident {} open{more}: {}: {}",
            newest.id,
            newest.rule.as_str(),
            newest.summary
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{command, model, spawned, spawns, system_lines, NOW};
    use super::super::{Effect, Model};
    use crate::bus::{Command, ExitInfo, Msg, RunId, SessionId, Status, Stream, SvcId};
    use crate::credit::Credit;
    use crate::guard::{Action, History, Incident, RuleKind};
    use crate::health::meter::{Reading, Sample as Readings};
    use crate::logs::Lines;
    use flowlayer_protocol::{ErrorCode, IncidentQuery, ResultData};
    use std::sync::Arc;
    use std::time::Duration;

    const A: SvcId = SvcId(0);

    /// `a` guarded by a repeat rule with `action`; `b` unguarded.
    fn looping(action: &str) -> String {
        format!(
            r#"{{"guard": {{"repeat": {{"lines": 20, "withinMs": 1000, "action": "{action}"}}}},
                "services": {{"a": {{"cmd": "x"}}, "b": {{"cmd": "y", "guard": false}}}}}}"#
        )
    }

    fn lines(svc: SvcId, from: u64, n: u64) -> Msg {
        let mut l = Lines::default();
        for i in from..from + n {
            l.push(&format!("retry {i} failed"));
        }
        let permit = Credit::new(1 << 20).take(0);
        Msg::Lines { svc, stream: Stream::Stdout, lines: l, permit }
    }

    fn up(cfg: &str) -> Model {
        let mut m = model(cfg);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        m
    }

    fn incidents(fx: &[Effect]) -> Vec<&Incident> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Incident(i) => Some(&**i),
                _ => None,
            })
            .collect()
    }

    fn timeline(m: &Model, svc: SvcId) -> Vec<String> {
        let entries = m.timeline.newest(Some(svc), usize::MAX);
        entries.iter().map(|e| format!("{}: {}", e.kind.as_str(), e.message)).collect()
    }

    fn sampling(fx: &[Effect]) -> Vec<Option<Duration>> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::GuardSampling(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    fn alarms(fx: &[Effect]) -> Vec<Option<Duration>> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::GuardAlarm(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_guard_restart_is_a_stop_then_a_start_and_reports_the_new_pid() {
        let mut m = up(&looping("restart"));
        let fx = m.handle(lines(A, 0, 25), NOW + 10);
        let opened = incidents(&fx);
        assert_eq!(opened.len(), 1, "{fx:#?}");
        assert_eq!((opened[0].rule, opened[0].action), (RuleKind::Repeat, Action::Restart));
        assert!(fx.iter().any(|e| matches!(e, Effect::Signal { pid: 100, .. })));
        assert!(fx.iter().any(|e| matches!(e, Effect::IncidentLine(l) if l.contains("opened"))));
        assert!(fx.iter().any(|e| matches!(e,
            Effect::Say { text, prefixed: true } if text.starts_with("guard: a: repeat (100 % of 25 lines \"retry <n> failed\") → restart"))));
        assert_eq!(m.status(A), Status::Stopping);
        assert!(system_lines(&fx).iter().any(|l| l.starts_with("guard: repeat (")), "{fx:#?}");
        // The run ends: the next starts at once, counted as a guard restart.
        let fx =
            m.handle(Msg::Exited { svc: A, run: RunId(1), exit: ExitInfo::Signal(15) }, NOW + 400);
        assert_eq!(spawns(&fx), vec![(A, RunId(3))]);
        assert_eq!(m.views()[0].counters.restarts[super::RestartReason::Guard as usize], 1);
        assert!(incidents(&fx).is_empty(), "acted once the new run is up");
        let fx = m.handle(Msg::Spawned { svc: A, run: RunId(3), pid: 200 }, NOW + 450);
        let changed = incidents(&fx);
        assert_eq!(changed.len(), 2, "acted, then closed: {fx:#?}");
        assert_eq!(changed[0].outcome.as_deref(), Some("restarted in 0.4 s (pid 100 → 200)"));
        assert_eq!(changed[1].close_reason.as_deref(), Some("service restarted"));
        assert_eq!(m.status(A), Status::Running);
        let told = timeline(&m, A);
        // After the boot's two transitions.
        assert_eq!(
            told[2..],
            [
                "incident: incident inc-1 opened: repeat → restart: 100 % of 25 lines were \"retry <n> failed\"",
                "stop_requested: guard: repeat incident inc-1",
                "status: running → stopping: guard: repeat incident inc-1",
                "exit: killed by signal 15 (SIGTERM) after 0.4 s",
                "status: stopping → stopped: guard: repeat incident inc-1 (killed by signal 15 (SIGTERM))",
                "status: stopped → starting: guard restart: repeat incident inc-1",
                "status: starting → running: spawned (pid 200)",
                "incident: incident inc-1: restarted in 0.4 s (pid 100 → 200)",
                "incident: incident inc-1 closed: service restarted",
            ]
        );
        let e = m.timeline.newest(Some(A), 1)[0];
        assert_eq!(e.fields["change"], "closed");
        assert_eq!(e.fields["dry_run"], false);
        assert_eq!(m.why(A, NOW + 500), "running");
    }

    #[test]
    fn a_guard_stop_ends_failed_with_what_the_guard_found() {
        let mut m = up(&looping("stop"));
        m.handle(lines(A, 0, 25), NOW + 10);
        assert!(m.why(A, NOW + 10).starts_with(
            "stopping (guard: repeat incident inc-1); guard incident inc-1 open: repeat: 100 % of 25 lines"
        ), "{}", m.why(A, NOW + 10));
        let fx =
            m.handle(Msg::Exited { svc: A, run: RunId(1), exit: ExitInfo::Signal(15) }, NOW + 310);
        assert!(spawns(&fx).is_empty());
        assert_eq!(m.status(A), Status::Failed);
        let changed = incidents(&fx);
        assert_eq!(changed[0].outcome.as_deref(), Some("stopped in 0.3 s"));
        assert_eq!(changed[1].close_reason.as_deref(), Some("service stopped"));
        assert_eq!(
            m.why(A, NOW + 310),
            "failed: stopped by the guard: repeat incident inc-1: 100 % of 25 lines were \"retry <n> failed\" (killed by signal 15 (SIGTERM))"
        );
        // b was never looked at.
        let fx = m.handle(lines(SvcId(1), 0, 500), NOW + 400);
        assert!(incidents(&fx).is_empty() && alarms(&fx).is_empty());
    }

    #[test]
    fn a_guard_restart_cut_short_says_what_happened() {
        // Shutdown between the stop and the start: no new run.
        let mut m = up(&looping("restart"));
        m.handle(lines(A, 0, 25), NOW + 10);
        m.handle(Msg::Signal(crate::bus::Sig::Terminate), NOW + 20);
        let fx =
            m.handle(Msg::Exited { svc: A, run: RunId(1), exit: ExitInfo::Signal(15) }, NOW + 520);
        assert!(spawns(&fx).is_empty());
        let outcome = incidents(&fx)[0].outcome.clone();
        assert_eq!(
            outcome.as_deref(),
            Some("stopped in 0.5 s, not restarted: the stack is being stopped")
        );
        // The new run cannot start.
        let mut m = up(&looping("restart"));
        m.handle(lines(A, 0, 25), NOW + 10);
        let fx =
            m.handle(Msg::Exited { svc: A, run: RunId(1), exit: ExitInfo::Signal(15) }, NOW + 110);
        let (svc, run) = spawns(&fx)[0];
        let fx = m.handle(Msg::SpawnFailed { svc, run, error: "no such file".into() }, NOW + 120);
        let changed = incidents(&fx);
        assert_eq!(
            changed[0].outcome.as_deref(),
            Some("stopped in 0.1 s, but the new run failed to start: no such file")
        );
        assert_eq!(changed[1].close_reason.as_deref(), Some("service stopped"));
        assert_eq!(m.status(A), Status::Failed);
        // An action on a service already being stopped is not carried out.
        let mut m = up(&looping("restart"));
        command(&mut m, "s", Command::StopService("a".into()));
        m.handle(lines(A, 0, 25), NOW + 10);
        assert!(m.guard.incidents(None, None, 10).is_empty(), "a stopping run is not looked at");
    }

    #[test]
    fn a_stack_without_a_guard_samples_nothing_and_arms_nothing() {
        let mut m = model(r#"{"services": {"a": {"cmd": "x"}}}"#);
        let mut fx = m.boot(NOW);
        fx.extend(spawned(&mut m, &fx));
        fx.extend(m.handle(lines(A, 0, 500), NOW));
        fx.extend(m.handle(Msg::Exited { svc: A, run: RunId(1), exit: ExitInfo::Code(1) }, NOW));
        assert!(sampling(&fx).is_empty() && alarms(&fx).is_empty());
        assert!(!fx.iter().any(|e| matches!(e, Effect::IncidentLine(_) | Effect::Incident(_))));
    }

    /// Every service's reading at `at`, with `cpu` for the guarded ones.
    fn readings(m: &Model, at: i64, cpu: f64, run_of_a: Option<RunId>) -> Msg {
        let services = m
            .views()
            .into_iter()
            .map(|v| Reading {
                svc: v.svc,
                run: if v.svc == A { run_of_a.unwrap_or(v.run) } else { v.run },
                name: v.name,
                cpu,
                rss_bytes: 1 << 20,
                processes: u32::from(v.pid.is_some()),
                cpu_seconds: 0.0,
                restarts: 0,
                uptime_ms: 0,
            })
            .collect();
        Msg::Sampled(Arc::new(Readings { ts_ms: at, services }))
    }

    // ids by name: a=0, off=1, slow=2
    const SAMPLED: &str = r#"{"guard": {"sampleMs": 250, "cpu": {"above": 0.5, "forMs": 1000, "action": "stop"}},
        "services": {"a": {"cmd": "x"}, "slow": {"cmd": "y", "guard": {"sampleMs": 1000, "cpu": {"forMs": 5000}}},
                     "off": {"cmd": "z", "guard": false}}}"#;

    #[test]
    fn samples_follow_the_running_guarded_services_at_their_own_period() {
        let mut m = model(SAMPLED);
        let fx = m.boot(NOW);
        assert!(sampling(&fx).is_empty(), "nothing runs yet");
        let fx = spawned(&mut m, &fx);
        assert_eq!(sampling(&fx), vec![Some(Duration::from_millis(250))]);
        let mut fed = Vec::new();
        let mut fx = Vec::new();
        for k in 1..=5 {
            fx.extend(m.handle(readings(&m, NOW + 250 * k, 0.9, None), NOW + 250 * k));
            fed.push(m.svcs[2].guard_sampled_ms);
        }
        // slow takes one sample a second: the first, then the one ~1000 ms later.
        let first = Some(NOW + 250);
        assert_eq!(fed, vec![first, first, first, first, Some(NOW + 1250)]);
        let opened = incidents(&fx);
        assert_eq!(opened.iter().map(|i| i.rule).collect::<Vec<_>>(), vec![RuleKind::Cpu]);
        assert_eq!(opened[0].service, "a");
        assert_eq!(m.status(A), Status::Stopping);
        // a is being stopped: only slow still needs samples.
        assert_eq!(sampling(&fx), vec![Some(Duration::from_millis(1000))]);
        let fx =
            m.handle(Msg::Exited { svc: A, run: RunId(1), exit: ExitInfo::Signal(15) }, NOW + 1300);
        assert_eq!(m.status(A), Status::Failed);
        assert!(sampling(&fx).is_empty(), "unchanged");
        // Started again: samples of the old run are dropped.
        let fx = command(&mut m, "s", Command::StartService("a".into()));
        let fx = m.handle(Msg::Spawned { svc: A, run: spawns(&fx)[0].1, pid: 300 }, NOW + 1400);
        assert_eq!(sampling(&fx), vec![Some(Duration::from_millis(250))]);
        let mut fx = Vec::new();
        for k in 1..=8 {
            let at = NOW + 1400 + 250 * k;
            fx.extend(m.handle(readings(&m, at, 0.9, Some(RunId(1))), at));
        }
        assert!(incidents(&fx).iter().all(|i| i.service != "a"), "{fx:#?}");
        // Everything stops: no more samples.
        let fx = m.handle(Msg::Signal(crate::bus::Sig::Terminate), NOW + 5000);
        assert_eq!(sampling(&fx), vec![None]);
    }

    #[test]
    fn the_timer_is_armed_only_while_a_line_rule_has_something_to_look_at() {
        let mut m = up(&looping("alert"));
        let fx = m.handle(lines(A, 0, 25), NOW);
        assert_eq!(incidents(&fx)[0].outcome.as_deref(), Some("alerted"));
        let mut armed = alarms(&fx);
        assert_eq!(armed.len(), 1, "{fx:#?}");
        let mut now = NOW;
        let mut closed = None;
        while let Some(Some(after)) = armed.pop() {
            now += after.as_millis() as i64;
            let fx = m.handle(Msg::GuardCheck, now);
            if incidents(&fx).iter().any(|i| i.closed_at.is_some()) {
                closed = Some(now);
            }
            armed = alarms(&fx);
            assert!(armed.len() <= 1);
        }
        // The window empties 1 s after the lines, then it is clear for a window.
        assert_eq!(closed, Some(NOW + 2000));
        assert_eq!(m.guard_alarm, None, "idle: nothing armed");
        assert!(timeline(&m, A).last().unwrap().ends_with("closed: clear for 1 s"));
    }

    #[test]
    fn get_incidents_filters_and_names_an_unknown_service() {
        let mut m = up(&looping("alert"));
        m.handle(lines(A, 0, 25), NOW);
        let ask = |m: &mut Model, q: IncidentQuery| {
            let fx = command(m, "q", Command::GetIncidents(q));
            fx.into_iter().find_map(|e| match e {
                Effect::Result { outcome: Ok(ResultData::Incidents(i)), .. } => Some(i.incidents),
                Effect::Ack { outcome: Err(f), .. } => panic!("{f:?}"),
                _ => None,
            })
        };
        let all = ask(&mut m, IncidentQuery::default()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].evidence.last_lines.as_ref().map(Vec::len), Some(20));
        assert_eq!(
            ask(&mut m, IncidentQuery { open: Some(false), ..Default::default() }),
            Some(vec![])
        );
        let q = IncidentQuery { service: Some("b".into()), ..Default::default() };
        assert_eq!(ask(&mut m, q), Some(vec![]));
        let q = IncidentQuery { service: Some("ghost".into()), ..Default::default() };
        let fx = command(&mut m, "x", Command::GetIncidents(q));
        let [Effect::Ack { outcome: Err(f), session: SessionId(1), .. }] = fx.as_slice() else {
            panic!("{fx:#?}")
        };
        assert_eq!(f.code, ErrorCode::UnknownService);
        assert_eq!(f.message, "unknown service \"ghost\"");
    }

    #[test]
    fn incidents_a_killed_server_left_open_are_closed_at_boot() {
        let mut m = up(&looping("alert"));
        let fx = m.handle(lines(A, 0, 25), NOW);
        let text: String = fx
            .iter()
            .filter_map(|e| match e {
                Effect::IncidentLine(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("fl-model-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("incidents.jsonl");
        std::fs::write(&path, text).unwrap();
        let history: History = crate::guard::load(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir); // this test's scratch directory
        let mut m = model(&looping("alert"));
        m.load_incidents(history, NOW + 60_000);
        let fx = m.boot(NOW + 60_000);
        let closing: Vec<&String> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::IncidentLine(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(closing.len(), 1);
        assert!(closing[0].starts_with("{\"change\":\"closed\""), "{}", closing[0]);
        let kept = m.guard.incidents(None, None, 10);
        assert_eq!(kept[0].close_reason.as_deref(), Some("the server stopped before it closed"));
        // The next incident counts on.
        spawned(&mut m, &fx);
        let fx = m.handle(lines(A, 0, 25), NOW + 60_000);
        assert_eq!(incidents(&fx)[0].id, "inc-2");
    }
}
