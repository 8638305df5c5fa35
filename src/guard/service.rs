//! One service's guard: its conditions (`lines.rs`, `resources.rs`), the
//! incident state machine of each enabled rule, the action policy and the
//! restart budget.
//!
//! Pure; owned by `Guard` on the state thread, which feeds it lines, samples
//! and the clock. A rule opens an incident when its condition is in breach
//! and it has none open, acts once, and closes the incident when the
//! condition has been clear for one full window of the rule, or when the
//! service stops. While a stop or restart it asked for is under way, no new
//! incident opens for the service.

use super::config::{
    Action, CpuLimits, GrowthLimits, GuardPolicy, MemoryLimits, ProcessLimits, RateLimits,
    RepeatLimits,
};
use super::incident::{evidence, Change, Found, Incident, IncidentLog, RuleKind, MAX_SERIES};
use super::lines::{RateCond, RepeatCond};
use super::resources::{memory_breach, processes_breach, CpuCond, GrowthCond, Sample};
use super::{GuardEffect, LastLines, Outcome};
use crate::bus::SvcId;
use crate::logs::{format_timestamp, Lines};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// `memory` and `processes` have no window of their own: their incidents
/// close after this many samples in a row below the limit, so a service that
/// hovers at the limit does not open one incident per sample.
pub const QUIET_SAMPLES: i64 = 10;

/// An enabled rule and its open incident, if any.
struct RuleState {
    kind: RuleKind,
    action: Action,
    /// How long the condition must be clear before its incident closes.
    close_ms: i64,
    open: Option<OpenIncident>,
}

struct OpenIncident {
    id: String,
    /// Since when the condition has been clear (`None`: in breach).
    clear_since: Option<i64>,
}

/// The stop or restart this guard asked for, until `acted` reports it done.
struct Acting {
    id: String,
    rule: RuleKind,
    /// "restart budget spent (3 restarts in 10 min)" when a restart became a stop.
    note: Option<String>,
}

/// What `ServiceGuard` needs from its owner for one step.
pub(super) struct Ctx<'a> {
    pub svc: SvcId,
    pub name: &'a str,
    pub log: &'a mut IncidentLog,
    pub last_lines: LastLines<'a>,
    pub fx: &'a mut Vec<GuardEffect>,
    /// Incidents opened per (rule, action, dry_run), for `/metrics`.
    pub counted: &'a mut Vec<(SvcId, RuleKind, Action, bool)>,
}

pub struct ServiceGuard {
    policy: GuardPolicy,
    repeat: Option<RepeatCond>,
    rate: Option<RateCond>,
    cpu: Option<CpuCond>,
    growth: Option<GrowthCond>,
    /// The newest sample of the current run.
    last: Option<Sample>,
    /// The newest samples of the current run, for the evidence.
    history: VecDeque<Sample>,
    /// Runaway first: it decides whether cpu and repeat open their own.
    rules: Vec<RuleState>,
    /// When the guard restarted the service, within the budget's window.
    restarts: VecDeque<i64>,
    acting: Option<Acting>,
    /// Lines are looked at (evaluated) at most this often: half a tenth of
    /// the shortest line window, so a flood of small batches does not
    /// evaluate every rule per batch.
    eval_gap: i64,
    /// When lines may be evaluated next, and whether some came since the last time.
    next_eval: i64,
    pending: bool,
}

fn window_ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

fn cpu_json(l: CpuLimits) -> Value {
    json!({"above": l.above, "forMs": window_ms(l.window)})
}

fn repeat_json(l: RepeatLimits) -> Value {
    json!({"lines": l.lines, "withinMs": window_ms(l.within), "share": l.share})
}

fn growth_json(l: GrowthLimits) -> Value {
    json!({"mbPerMin": l.mb_per_min, "forMs": window_ms(l.window)})
}

fn rate_json(l: RateLimits) -> Value {
    json!({"linesPerSec": l.lines_per_sec, "forMs": window_ms(l.window)})
}

fn memory_json(l: MemoryLimits) -> Value {
    json!({"aboveMb": l.above_mb})
}

fn processes_json(l: ProcessLimits) -> Value {
    json!({"above": l.above})
}

impl ServiceGuard {
    pub fn new(policy: GuardPolicy) -> ServiceGuard {
        let sample_ms = policy.sample.as_millis() as u64;
        let quiet = QUIET_SAMPLES * sample_ms as i64;
        let mut rules = Vec::new();
        let mut add = |kind, action, close_ms| {
            rules.push(RuleState { kind, action, close_ms, open: None });
        };
        if let Some(r) = &policy.runaway {
            let close = window_ms(r.limits.cpu.window).max(window_ms(r.limits.repeat.within));
            add(RuleKind::Runaway, r.action, close);
        }
        if let Some(r) = &policy.cpu {
            add(RuleKind::Cpu, r.action, window_ms(r.limits.window));
        }
        if let Some(r) = &policy.memory {
            add(RuleKind::Memory, r.action, quiet);
        }
        if let Some(r) = &policy.growth {
            add(RuleKind::Growth, r.action, window_ms(r.limits.window));
        }
        if let Some(r) = &policy.repeat {
            add(RuleKind::Repeat, r.action, window_ms(r.limits.within));
        }
        if let Some(r) = &policy.rate {
            add(RuleKind::Rate, r.action, window_ms(r.limits.window));
        }
        if let Some(r) = &policy.processes {
            add(RuleKind::Processes, r.action, quiet);
        }
        let runaway = policy.runaway.map(|r| r.limits);
        let cpu = policy.cpu.map(|r| r.limits).or(runaway.map(|r| r.cpu));
        let repeat = policy.repeat.map(|r| r.limits).or(runaway.map(|r| r.repeat));
        let line_windows = [repeat.map(|r| r.within), policy.rate.map(|r| r.limits.window)];
        let shortest = line_windows.iter().flatten().map(|w| window_ms(*w)).min();
        ServiceGuard {
            eval_gap: shortest.map_or(1, |w| (w / super::lines::SLOTS / 2).max(1)),
            next_eval: i64::MIN,
            pending: false,
            repeat: repeat.map(RepeatCond::new),
            rate: policy.rate.map(|r| RateCond::new(r.limits)),
            cpu: cpu.map(|c| CpuCond::new(c, sample_ms)),
            growth: policy.growth.map(|g| GrowthCond::new(g.limits, sample_ms)),
            policy,
            last: None,
            history: VecDeque::new(),
            rules,
            restarts: VecDeque::new(),
            acting: None,
        }
    }

    pub fn policy(&self) -> &GuardPolicy {
        &self.policy
    }

    /// True while an incident of this service is open.
    pub fn has_open(&self) -> bool {
        self.rules.iter().any(|r| r.open.is_some())
    }

    /// Counts a batch of the service's output. The hot path: a few slot
    /// updates and, in a flood, a template for a few of the lines.
    pub fn observe_lines(&mut self, lines: &Lines, now: i64) {
        if let Some(r) = &mut self.rate {
            r.observe(lines.len(), now);
        }
        if let Some(r) = &mut self.repeat {
            r.observe(lines, now);
        }
    }

    /// True when the lines observed should be evaluated now; else they are
    /// pending, and `next_check` says when.
    pub fn line_eval_due(&mut self, now: i64) -> bool {
        let due = now >= self.next_eval;
        self.pending = !due;
        due
    }

    /// True when a rule reads lines.
    pub fn watches_lines(&self) -> bool {
        self.repeat.is_some() || self.rate.is_some()
    }

    pub fn observe_sample(&mut self, s: &Sample) {
        if let Some(c) = &mut self.cpu {
            c.observe(s);
        }
        if let Some(g) = &mut self.growth {
            g.observe(s);
        }
        self.last = Some(*s);
        if self.history.len() == MAX_SERIES {
            self.history.pop_front();
        }
        self.history.push_back(*s);
    }

    /// A new run begins: what was measured of the old one is forgotten.
    pub fn on_started(&mut self) {
        self.reset_conditions();
    }

    fn reset_conditions(&mut self) {
        if let Some(c) = &mut self.repeat {
            c.reset();
        }
        if let Some(c) = &mut self.rate {
            c.reset();
        }
        if let Some(c) = &mut self.cpu {
            c.reset();
        }
        if let Some(c) = &mut self.growth {
            c.reset();
        }
        self.last = None;
        self.history.clear();
        self.pending = false;
    }

    /// The service stopped (or failed): its open incidents close, except the
    /// one whose action is under way (it closes when `acted` reports).
    pub fn on_stopped(&mut self, now: i64, cx: &mut Ctx) {
        let acting = self.acting.as_ref().map(|a| a.rule);
        for i in 0..self.rules.len() {
            if self.rules[i].open.is_some() && Some(self.rules[i].kind) != acting {
                self.close(i, "service stopped".into(), now, cx);
            }
        }
        self.reset_conditions();
    }

    /// The stop or restart asked for by incident `id` has ended with `outcome`.
    pub fn acted(&mut self, id: &str, outcome: &Outcome, now: i64, cx: &mut Ctx) {
        let Some(acting) = self.acting.take_if(|a| a.id == id) else { return };
        let text = match &acting.note {
            Some(note) => format!("{note}: {outcome}"),
            None => outcome.to_string(),
        };
        if let Some(inc) = cx.log.get_mut(id) {
            inc.outcome = Some(text.clone());
            let inc = inc.clone();
            changed(cx, &inc, Change::Acted, now);
        }
        let line = format!("guard: {}: {text}", acting.rule.as_str());
        cx.fx.push(GuardEffect::Say(format!("guard: {}: {}", cx.name, line_tail(&line))));
        cx.fx.push(GuardEffect::SystemLine { svc: cx.svc, text: line });
        if let Some(i) = self.rules.iter().position(|r| r.kind == acting.rule) {
            let reason = match outcome {
                Outcome::Restarted { .. } => "service restarted",
                Outcome::Stopped { .. } | Outcome::Failed(_) => "service stopped",
            };
            self.close(i, reason.into(), now, cx);
        }
    }

    /// When the guard must look again although no line or sample comes:
    /// lines not evaluated yet, or an open incident of a line rule whose
    /// window moves or whose clear time runs out. `None` while there is
    /// nothing to wait for.
    pub fn next_check(&self, now: i64) -> Option<i64> {
        let mut next: Option<i64> = self.pending.then_some(self.next_eval);
        for r in &self.rules {
            let Some(open) = &r.open else { continue };
            let at = match (open.clear_since, r.kind) {
                (Some(since), _) => Some(since + r.close_ms),
                (None, RuleKind::Repeat | RuleKind::Runaway) => {
                    self.repeat.as_ref().and_then(RepeatCond::next_change)
                }
                (None, RuleKind::Rate) => self.rate.as_ref().and_then(|c| c.next_change(now)),
                (None, _) => None,
            };
            next = match (next, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next
    }

    /// Looks at every rule at `now`: opens, keeps or closes incidents.
    pub fn evaluate(&mut self, now: i64, cx: &mut Ctx) {
        self.next_eval = now + self.eval_gap;
        self.pending = false;
        let cpu = self.cpu.as_ref().and_then(CpuCond::breach);
        let repeat = self.repeat.as_mut().and_then(|r| r.breach(now));
        let rate = self.rate.as_ref().and_then(|r| r.breach(now));
        let growth = self.growth.as_ref().and_then(GrowthCond::breach);
        let last = self.last;
        let memory = self.policy.memory.zip(last).and_then(|(m, s)| {
            memory_breach(m.limits, &s)
                .then_some(Found::Memory { rss_bytes: s.rss_bytes, above_mb: m.limits.above_mb })
        });
        let processes = self.policy.processes.zip(last).and_then(|(p, s)| {
            processes_breach(p.limits, &s)
                .then_some(Found::Processes { count: s.processes, above: p.limits.above })
        });
        let runaway = cpu.clone().zip(repeat.clone()).map(|(c, r)| Found::Runaway(c, r));
        // Cpu and repeat are parts of a runaway: while it is in breach or open,
        // they do not open incidents of their own (one incident, one story).
        let runaway_hot = runaway.is_some()
            || self.rules.iter().any(|r| r.kind == RuleKind::Runaway && r.open.is_some());
        let mut opening = Vec::new();
        for i in 0..self.rules.len() {
            let kind = self.rules[i].kind;
            let found = match kind {
                RuleKind::Runaway => runaway.clone(),
                RuleKind::Cpu => cpu.clone().map(Found::Cpu),
                RuleKind::Memory => memory.clone(),
                RuleKind::Growth => growth.clone().map(Found::Growth),
                RuleKind::Repeat => repeat.clone().map(Found::Repeat),
                RuleKind::Rate => rate.clone().map(Found::Rate),
                RuleKind::Processes => processes.clone(),
            };
            let rule = &mut self.rules[i];
            match (&mut rule.open, found) {
                (Some(open), Some(_)) => open.clear_since = None,
                (Some(open), None) => {
                    let since = *open.clear_since.get_or_insert(now);
                    if now - since >= rule.close_ms {
                        let reason = format!("clear for {}", super::incident::secs(rule.close_ms));
                        self.close(i, reason, now, cx);
                    }
                }
                (None, Some(found)) => {
                    let part_of_runaway = matches!(kind, RuleKind::Cpu | RuleKind::Repeat);
                    if self.acting.is_none() && !(part_of_runaway && runaway_hot) {
                        opening.push((i, found));
                    }
                }
                (None, None) => {}
            }
        }
        if !opening.is_empty() {
            self.open(opening, now, cx);
        }
    }

    /// Opens an incident for each finding; the strongest action among them
    /// is the one carried out (stop over restart over alert), once.
    fn open(&mut self, opening: Vec<(usize, Found)>, now: i64, cx: &mut Ctx) {
        let dry_run = self.policy.dry_run;
        let strongest =
            opening.iter().map(|(i, _)| self.rules[*i].action).max_by_key(|a| strength(*a));
        // The action carried out, and the budget note when a restart became a stop.
        let (exec, note) = match strongest {
            _ if dry_run => (None, None),
            Some(Action::Restart) => match self.take_restart(now) {
                Ok(()) => (Some(Action::Restart), None),
                Err(note) => (Some(Action::Stop), Some(note)),
            },
            Some(Action::Stop) => (Some(Action::Stop), None),
            Some(Action::Alert) | None => (None, None),
        };
        let mut executor: Option<String> = None;
        for (i, found) in opening {
            let rule_action = self.rules[i].action;
            let runs = exec.is_some() && executor.is_none() && Some(rule_action) == strongest;
            let action = if runs { exec.unwrap_or(rule_action) } else { rule_action };
            let outcome = match (dry_run, rule_action, &executor) {
                (_, Action::Alert, _) => Some("alerted".to_string()),
                (true, a, _) => Some(format!("would have {}", past(a))),
                _ if runs => None,
                (false, _, Some(id)) => Some(format!("not carried out: incident {id} acts on it")),
                (false, _, None) => None,
            };
            let arrow = match (dry_run, action, &note, runs) {
                (_, Action::Alert, _, _) => "alert".to_string(),
                (true, a, _, _) => format!("would {} (dry run)", a.as_str()),
                (false, Action::Stop, Some(_), true) => "stop (restart budget spent)".to_string(),
                (false, a, _, true) => a.as_str().to_string(),
                (false, a, _, false) => format!("{} (not carried out)", a.as_str()),
            };
            let kind = self.rules[i].kind;
            let mut evidence = evidence(&found, self.threshold(kind));
            let since = now - self.rules[i].close_ms;
            let series: Vec<&Sample> = self.history.iter().filter(|s| s.at > since).collect();
            if !series.is_empty() {
                // Sampled services only: a guard of line rules reads no /proc.
                evidence.cpu =
                    Some(series.iter().map(|s| (s.cpu * 1000.0).round() / 1000.0).collect());
                evidence.rss_bytes = Some(series.iter().map(|s| s.rss_bytes).collect());
            }
            if kind == RuleKind::Processes {
                evidence.processes = Some(series.iter().map(|s| s.processes).collect());
            }
            let lines = (cx.last_lines)(cx.svc, super::incident::LAST_LINES);
            evidence.last_lines = Some(lines.into_iter().map(super::incident::cut_line).collect());
            let record = Incident {
                id: String::new(),
                service: cx.name.to_string(),
                rule: kind,
                action,
                dry_run,
                opened_at: format_timestamp(now),
                closed_at: None,
                summary: found.summary(),
                evidence,
                outcome,
                close_reason: None,
            };
            let inc = cx.log.open(record).clone();
            cx.counted.push((cx.svc, kind, action, dry_run));
            changed(cx, &inc, Change::Opened, now);
            let line = format!("guard: {} ({}) → {arrow}", kind.as_str(), found.brief());
            cx.fx.push(GuardEffect::Say(format!("guard: {}: {}", cx.name, line_tail(&line))));
            cx.fx.push(GuardEffect::SystemLine { svc: cx.svc, text: line });
            if runs {
                executor = Some(inc.id.clone());
                self.acting = Some(Acting { id: inc.id.clone(), rule: kind, note: note.clone() });
                cx.fx.push(GuardEffect::Act { svc: cx.svc, incident: inc.id.clone(), action });
            }
            self.rules[i].open = Some(OpenIncident { id: inc.id, clear_since: None });
        }
    }

    /// Takes one restart from the budget, or says why there is none left.
    fn take_restart(&mut self, now: i64) -> Result<(), String> {
        let b = self.policy.restart_budget;
        let window = window_ms(b.window);
        while self.restarts.front().is_some_and(|t| *t <= now - window) {
            self.restarts.pop_front();
        }
        if self.restarts.len() < b.max as usize {
            self.restarts.push_back(now);
            return Ok(());
        }
        Err(format!("restart budget spent (max {} per {})", b.max, super::incident::secs(window)))
    }

    fn close(&mut self, i: usize, reason: String, now: i64, cx: &mut Ctx) {
        let Some(open) = self.rules[i].open.take() else { return };
        let Some(inc) = cx.log.get_mut(&open.id) else { return };
        inc.closed_at = Some(format_timestamp(now));
        inc.close_reason = Some(reason.clone());
        let inc = inc.clone();
        changed(cx, &inc, Change::Closed, now);
        let kind = self.rules[i].kind.as_str();
        cx.fx.push(GuardEffect::Say(format!("guard: {}: {kind} closed ({reason})", cx.name)));
        cx.fx.push(GuardEffect::SystemLine {
            svc: cx.svc,
            text: format!("guard: {kind} closed ({reason})"),
        });
    }

    /// The rule's limits with their config names.
    fn threshold(&self, kind: RuleKind) -> Value {
        let p = &self.policy;
        let v = match kind {
            RuleKind::Runaway => p.runaway.map(
                |r| json!({"cpu": cpu_json(r.limits.cpu), "repeat": repeat_json(r.limits.repeat)}),
            ),
            RuleKind::Cpu => p.cpu.map(|r| cpu_json(r.limits)),
            RuleKind::Memory => p.memory.map(|r| memory_json(r.limits)),
            RuleKind::Growth => p.growth.map(|r| growth_json(r.limits)),
            RuleKind::Repeat => p.repeat.map(|r| repeat_json(r.limits)),
            RuleKind::Rate => p.rate.map(|r| rate_json(r.limits)),
            RuleKind::Processes => p.processes.map(|r| processes_json(r.limits)),
        };
        v.unwrap_or(Value::Null)
    }
}

/// Which action wins when several incidents open at once: stop over
/// restart over alert.
fn strength(a: Action) -> u8 {
    match a {
        Action::Alert => 0,
        Action::Restart => 1,
        Action::Stop => 2,
    }
}

/// `restart` -> `restarted`.
fn past(a: Action) -> &'static str {
    match a {
        Action::Alert => "alerted",
        Action::Stop => "stopped",
        Action::Restart => "restarted",
    }
}

/// The text after `guard: ` (the terminal names the service there instead).
fn line_tail(line: &str) -> &str {
    line.strip_prefix("guard: ").unwrap_or(line)
}

/// The effects of a change: the file line and the record for sessions and the timeline.
fn changed(cx: &mut Ctx, inc: &Incident, change: Change, now: i64) {
    cx.fx.push(GuardEffect::Record(super::incident::jsonl_line(inc, change, now)));
    cx.fx.push(GuardEffect::Changed { svc: cx.svc, change, incident: Box::new(inc.clone()) });
}
