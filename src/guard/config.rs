//! The `guard` config (guard.md section 1): the top-level object and each
//! service's, parsed into patches (every field optional, each problem reported
//! at its JSON path), then laid field by field over each other and over the
//! defaults into one resolved `GuardPolicy` per service.
//!
//! Runs on the main thread at boot, called from `config::validate`; owns
//! nothing after it returns. spec/config.md ("guard") is the user's view.

use crate::config::{ConfigProblem, Fields};
use serde_json::{Map, Value};
use std::time::Duration;

type Obj = Map<String, Value>;

/// Smallest `sampleMs`: /proc is read for every process of every guarded
/// service at this period, so a faster one would cost more than it tells.
pub const MIN_SAMPLE_MS: u64 = 250;
/// Smallest `withinMs` / `forMs` of the line rules: their windows are counted
/// in tenths, and a tenth shorter than 10 ms is smaller than a pump's batch.
pub const MIN_LINE_WINDOW_MS: u64 = 100;
/// A leak is judged on the quarters of the `growth` window, each of which
/// must hold a sample: `growth.forMs` is at least this many `sampleMs`.
pub const GROWTH_MIN_SAMPLES: u64 = 4;
/// One MB of the config (`aboveMb`, `mbPerMin`), as `top` and `ps` count it.
pub const MB: f64 = 1024.0 * 1024.0;
/// Largest whole number a `...Ms` or count field takes (as `ready.timeoutMs`).
const MAX_WHOLE: u64 = u32::MAX as u64;

/// What the guard does when a rule opens an incident (the protocol's words).
pub use flowlayer_protocol::GuardAction as Action;

/// `cpu`: every sample in the window uses more than `above` cores.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct CpuLimits {
    pub above: f64,
    pub window: Duration,
}

/// `memory`: the tree's RSS is above `above_mb`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct MemoryLimits {
    pub above_mb: f64,
}

/// `growth`: RSS grows steadily by at least `mb_per_min` over the window.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct GrowthLimits {
    pub mb_per_min: f64,
    pub window: Duration,
}

/// `repeat`: at least `lines` lines within the window, `share` of them one template.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RepeatLimits {
    pub lines: u64,
    pub within: Duration,
    pub share: f64,
}

/// `rate`: at least `lines_per_sec` sustained over the window.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RateLimits {
    pub lines_per_sec: f64,
    pub window: Duration,
}

/// `processes`: more than `above` processes in the tree.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct ProcessLimits {
    pub above: u64,
}

/// `runaway`: the cpu and the repeat conditions in breach together. Their
/// limits are the service's `cpu` and `repeat` values, also when those rules
/// are switched off for it (`"cpu": false` silences the alert, not the
/// definition of "burning a core").
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RunawayLimits {
    pub cpu: CpuLimits,
    pub repeat: RepeatLimits,
}

/// An enabled rule: its limits and what to do when it opens an incident.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Rule<T> {
    pub limits: T,
    pub action: Action,
}

/// `restartBudget`: at most `max` guard restarts per `window`, then stop.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RestartBudget {
    pub max: u32,
    pub window: Duration,
}

/// The guard of one service, every default applied. `None` rules do not run.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardPolicy {
    pub dry_run: bool,
    pub sample: Duration,
    pub cpu: Option<Rule<CpuLimits>>,
    pub memory: Option<Rule<MemoryLimits>>,
    pub growth: Option<Rule<GrowthLimits>>,
    pub repeat: Option<Rule<RepeatLimits>>,
    pub rate: Option<Rule<RateLimits>>,
    pub processes: Option<Rule<ProcessLimits>>,
    pub runaway: Option<Rule<RunawayLimits>>,
    pub restart_budget: RestartBudget,
}

impl GuardPolicy {
    /// True when a rule needs resource samples (guard.md: without one, nothing
    /// is sampled for this service).
    pub fn needs_samples(&self) -> bool {
        self.cpu.is_some()
            || self.memory.is_some()
            || self.growth.is_some()
            || self.processes.is_some()
            || self.runaway.is_some()
    }

    /// True when a rule reads the service's log lines.
    #[cfg(test)]
    pub fn needs_lines(&self) -> bool {
        self.repeat.is_some() || self.rate.is_some() || self.runaway.is_some()
    }
}

// ---- defaults (guard.md section 1) ----------------------------------------------

const DEFAULT_ACTION: Action = Action::Alert;
/// Only `runaway` acts by default: either signal alone is usually a healthy
/// build or a busy access log (guard.md section 1).
const DEFAULT_RUNAWAY_ACTION: Action = Action::Restart;
const DEFAULT_SAMPLE_MS: u64 = 1000;
const DEFAULT_CPU: CpuLimits = CpuLimits { above: 0.9, window: Duration::from_secs(30) };
const DEFAULT_MEMORY: MemoryLimits = MemoryLimits { above_mb: 2048.0 };
const DEFAULT_GROWTH: GrowthLimits =
    GrowthLimits { mb_per_min: 200.0, window: Duration::from_secs(120) };
const DEFAULT_REPEAT: RepeatLimits =
    RepeatLimits { lines: 200, within: Duration::from_secs(10), share: 0.9 };
const DEFAULT_RATE: RateLimits =
    RateLimits { lines_per_sec: 50_000.0, window: Duration::from_secs(10) };
const DEFAULT_PROCESSES: ProcessLimits = ProcessLimits { above: 256 };
const DEFAULT_BUDGET: RestartBudget = RestartBudget { max: 3, window: Duration::from_secs(600) };

// ---- patches: one level of the config, every field optional -----------------------

/// A rule as one level of the config gives it: switched on (`true` or an
/// object), off (`false`), or not mentioned; and the fields it sets.
#[derive(Clone, Debug, Default, PartialEq)]
struct Toggle<T> {
    on: Option<bool>,
    fields: T,
}

trait Over: Sized {
    /// `self` (the more specific level) over `base`, field by field.
    fn over(self, base: Self) -> Self;
}

impl<T: Over> Over for Toggle<T> {
    fn over(self, base: Self) -> Self {
        Toggle { on: self.on.or(base.on), fields: self.fields.over(base.fields) }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct CpuPatch {
    above: Option<f64>,
    for_ms: Option<u64>,
    action: Option<Action>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct MemoryPatch {
    above_mb: Option<f64>,
    action: Option<Action>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct GrowthPatch {
    mb_per_min: Option<f64>,
    for_ms: Option<u64>,
    action: Option<Action>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RepeatPatch {
    lines: Option<u64>,
    within_ms: Option<u64>,
    share: Option<f64>,
    action: Option<Action>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RatePatch {
    lines_per_sec: Option<f64>,
    for_ms: Option<u64>,
    action: Option<Action>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct ProcessesPatch {
    above: Option<u64>,
    action: Option<Action>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RunawayPatch {
    action: Option<Action>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct BudgetPatch {
    max: Option<u64>,
    window_ms: Option<u64>,
}

/// One level of the `guard` config (the top level or a service's).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuardPatch {
    action: Option<Action>,
    dry_run: Option<bool>,
    sample_ms: Option<u64>,
    cpu: Toggle<CpuPatch>,
    memory: Toggle<MemoryPatch>,
    growth: Toggle<GrowthPatch>,
    repeat: Toggle<RepeatPatch>,
    rate: Toggle<RatePatch>,
    processes: Toggle<ProcessesPatch>,
    runaway: Toggle<RunawayPatch>,
    budget: BudgetPatch,
}

/// Implements `Over` for a patch whose fields are all `Option`s or `Over`s.
macro_rules! over_fields {
    ($t:ty { $($opt:ident),* } $({ $($nested:ident),* })?) => {
        impl Over for $t {
            fn over(self, base: Self) -> Self {
                Self {
                    $($opt: self.$opt.or(base.$opt),)*
                    $($($nested: self.$nested.over(base.$nested),)*)?
                }
            }
        }
    };
}

over_fields!(CpuPatch { above, for_ms, action });
over_fields!(MemoryPatch { above_mb, action });
over_fields!(GrowthPatch { mb_per_min, for_ms, action });
over_fields!(RepeatPatch { lines, within_ms, share, action });
over_fields!(RatePatch { lines_per_sec, for_ms, action });
over_fields!(ProcessesPatch { above, action });
over_fields!(RunawayPatch { action });
over_fields!(BudgetPatch { max, window_ms });
over_fields!(GuardPatch { action, dry_run, sample_ms }
    { cpu, memory, growth, repeat, rate, processes, runaway, budget });

/// A `guard` value of one level: an object, or `false` (no guard here).
#[derive(Clone, Debug, PartialEq)]
pub enum GuardLevel {
    Off,
    On(Box<GuardPatch>),
}

// ---- parsing -----------------------------------------------------------------------

/// The objects of one `guard` value, their paths relative to it (the
/// config's shape, `crate::config::fields`, for the schema test).
pub const GUARD: Fields = Fields {
    at: "",
    names: &[
        "action",
        "dryRun",
        "sampleMs",
        "cpu",
        "memory",
        "growth",
        "repeat",
        "rate",
        "processes",
        "runaway",
        "restartBudget",
    ],
};
pub const CPU: Fields = Fields { at: "cpu", names: &["above", "forMs", "action"] };
pub const MEMORY: Fields = Fields { at: "memory", names: &["aboveMb", "action"] };
pub const GROWTH: Fields = Fields { at: "growth", names: &["mbPerMin", "forMs", "action"] };
pub const REPEAT: Fields =
    Fields { at: "repeat", names: &["lines", "withinMs", "share", "action"] };
pub const RATE: Fields = Fields { at: "rate", names: &["linesPerSec", "forMs", "action"] };
pub const PROCESSES: Fields = Fields { at: "processes", names: &["above", "action"] };
pub const RUNAWAY: Fields = Fields { at: "runaway", names: &["action"] };
pub const BUDGET: Fields = Fields { at: "restartBudget", names: &["max", "windowMs"] };
pub const KNOWN: &[&Fields] =
    &[&GUARD, &CPU, &MEMORY, &GROWTH, &REPEAT, &RATE, &PROCESSES, &RUNAWAY, &BUDGET];
/// Where a `guard` value may be: the top level's and each service's
/// (`resolve_all` reads both).
pub const MOUNTS: &[&str] = &["guard", "services.*.guard"];

/// Collects problems while reading one `guard` value.
struct Reader<'p> {
    problems: &'p mut Vec<ConfigProblem>,
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

impl Reader<'_> {
    fn invalid(&mut self, at: String, value: &Value, rule: &'static str) {
        self.problems.push(ConfigProblem::Invalid { at, value: value.to_string(), rule });
    }

    fn wrong_type(&mut self, at: String, expected: &'static str) {
        self.problems.push(ConfigProblem::WrongType { at, expected });
    }

    /// The object at `at`, with the fields `known` does not name reported.
    fn object<'v>(&mut self, v: &'v Value, at: &str, known: &Fields) -> Option<&'v Obj> {
        // What the schema test compares with the schema must be what is checked.
        debug_assert!(
            KNOWN.contains(&known) && MOUNTS.iter().any(|m| known.is_at(m, at)),
            "{at}: {known:?}"
        );
        let o = v.as_object()?;
        for k in o.keys().filter(|k| !known.names.contains(&k.as_str())) {
            self.problems
                .push(ConfigProblem::UnknownField { at: at.to_string(), field: k.clone() });
        }
        Some(o)
    }

    fn action(&mut self, o: &Obj, at: &str) -> Option<Action> {
        let v = o.get("action")?;
        match v.as_str() {
            Some("alert") => Some(Action::Alert),
            Some("stop") => Some(Action::Stop),
            Some("restart") => Some(Action::Restart),
            Some(_) => {
                self.invalid(join(at, "action"), v, "must be \"alert\", \"stop\" or \"restart\"");
                None
            }
            None => {
                self.wrong_type(join(at, "action"), "a string");
                None
            }
        }
    }

    fn boolean(&mut self, o: &Obj, key: &str, at: &str) -> Option<bool> {
        let v = o.get(key)?;
        let b = v.as_bool();
        if b.is_none() {
            self.wrong_type(join(at, key), "true or false");
        }
        b
    }

    /// A whole number from `min` to `MAX_WHOLE`; `rule` says what `min` is.
    fn whole(&mut self, o: &Obj, key: &str, at: &str, min: u64, rule: &'static str) -> Option<u64> {
        let v = o.get(key)?;
        let path = join(at, key);
        match v.as_u64() {
            Some(n) if (min..=MAX_WHOLE).contains(&n) => Some(n),
            Some(n) if n > MAX_WHOLE => {
                self.invalid(path, v, "is too large (at most 4294967295)");
                None
            }
            Some(_) => {
                self.invalid(path, v, rule);
                None
            }
            None if v.as_i64().is_some() => {
                self.invalid(path, v, rule);
                None
            }
            None => {
                self.wrong_type(path, "a whole number");
                None
            }
        }
    }

    /// A number greater than 0 (fractions allowed), at most `max` when given.
    fn positive(&mut self, o: &Obj, key: &str, at: &str, max: Option<f64>) -> Option<f64> {
        let v = o.get(key)?;
        let path = join(at, key);
        let Some(x) = v.as_f64() else {
            self.wrong_type(path, "a number");
            return None;
        };
        match max {
            _ if x <= 0.0 => {
                let rule = match max {
                    Some(_) => "must be greater than 0 and at most 1",
                    None => "must be greater than 0",
                };
                self.invalid(path, v, rule);
                None
            }
            Some(m) if x > m => {
                self.invalid(path, v, "must be greater than 0 and at most 1");
                None
            }
            _ => Some(x),
        }
    }

    /// A rule: `true`, `false` or an object read by `fields`.
    fn toggle<T: Default>(
        &mut self,
        o: &Obj,
        key: &str,
        at: &str,
        known: &Fields,
        fields: impl FnOnce(&mut Self, &Obj, &str) -> T,
    ) -> Toggle<T> {
        let Some(v) = o.get(key) else { return Toggle::default() };
        let at = join(at, key);
        match v {
            Value::Bool(on) => Toggle { on: Some(*on), fields: T::default() },
            Value::Object(_) => {
                let obj = self.object(v, &at, known).expect("matched an object");
                Toggle { on: Some(true), fields: fields(self, obj, &at) }
            }
            _ => {
                self.wrong_type(at, "an object, true or false");
                Toggle::default()
            }
        }
    }
}

const WHOLE_ABOVE_0: &str = "must be a whole number greater than 0";

/// Reads one `guard` value at `at` (`guard` or `services.<name>.guard`):
/// an object or `false`. Problems go to `problems`; `None` when the value is
/// not usable at all.
pub fn parse_level(v: &Value, at: &str, problems: &mut Vec<ConfigProblem>) -> Option<GuardLevel> {
    let mut r = Reader { problems };
    if v == &Value::Bool(false) {
        return Some(GuardLevel::Off);
    }
    let Some(o) = r.object(v, at, &GUARD) else {
        r.wrong_type(at.to_string(), "an object or false");
        return None;
    };
    let window = |r: &mut Reader, o: &Obj, at: &str, key: &str| {
        r.whole(o, key, at, MIN_LINE_WINDOW_MS, "must be at least 100")
    };
    let patch = GuardPatch {
        action: r.action(o, at),
        dry_run: r.boolean(o, "dryRun", at),
        sample_ms: r.whole(o, "sampleMs", at, MIN_SAMPLE_MS, "must be at least 250"),
        cpu: r.toggle(o, "cpu", at, &CPU, |r, o, at| CpuPatch {
            above: r.positive(o, "above", at, None),
            for_ms: r.whole(o, "forMs", at, 1, WHOLE_ABOVE_0),
            action: r.action(o, at),
        }),
        memory: r.toggle(o, "memory", at, &MEMORY, |r, o, at| MemoryPatch {
            above_mb: r.positive(o, "aboveMb", at, None),
            action: r.action(o, at),
        }),
        growth: r.toggle(o, "growth", at, &GROWTH, |r, o, at| GrowthPatch {
            mb_per_min: r.positive(o, "mbPerMin", at, None),
            for_ms: r.whole(o, "forMs", at, 1, WHOLE_ABOVE_0),
            action: r.action(o, at),
        }),
        repeat: r.toggle(o, "repeat", at, &REPEAT, |r, o, at| RepeatPatch {
            lines: r.whole(o, "lines", at, 1, WHOLE_ABOVE_0),
            within_ms: window(r, o, at, "withinMs"),
            share: r.positive(o, "share", at, Some(1.0)),
            action: r.action(o, at),
        }),
        rate: r.toggle(o, "rate", at, &RATE, |r, o, at| RatePatch {
            lines_per_sec: r.positive(o, "linesPerSec", at, None),
            for_ms: window(r, o, at, "forMs"),
            action: r.action(o, at),
        }),
        processes: r.toggle(o, "processes", at, &PROCESSES, |r, o, at| ProcessesPatch {
            above: r.whole(o, "above", at, 1, WHOLE_ABOVE_0),
            action: r.action(o, at),
        }),
        runaway: r.toggle(o, "runaway", at, &RUNAWAY, |r, o, at| RunawayPatch {
            action: r.action(o, at),
        }),
        budget: match o.get("restartBudget") {
            None => BudgetPatch::default(),
            Some(v) => {
                let at = join(at, "restartBudget");
                match r.object(v, &at, &BUDGET) {
                    Some(b) => BudgetPatch {
                        max: r.whole(b, "max", &at, 0, "must be 0 or more"),
                        window_ms: r.whole(b, "windowMs", &at, 1, WHOLE_ABOVE_0),
                    },
                    None => {
                        r.wrong_type(at, "an object");
                        BudgetPatch::default()
                    }
                }
            }
        },
    };
    Some(GuardLevel::On(Box::new(patch)))
}

// ---- resolving -----------------------------------------------------------------------

/// Reads the top-level `guard` and every service's, and gives each valid
/// service in `out` its resolved policy. `services` is the config's raw
/// `services` object: services that are invalid otherwise still have their
/// `guard` checked, so every problem is reported at once.
pub fn resolve_all(
    top: Option<&Value>,
    services: &Obj,
    out: &mut [crate::config::ServiceCfg],
    problems: &mut Vec<ConfigProblem>,
) {
    let top = top.and_then(|v| parse_level(v, "guard", problems));
    if let Some(t) = &top {
        check_top(t, problems);
    }
    for (name, v) in services {
        let at = format!("services.{name}.guard");
        let own = v.get("guard").and_then(|g| parse_level(g, &at, problems));
        let policy = resolve(top.as_ref(), own.as_ref(), &at, problems);
        if let Some(s) = out.iter_mut().find(|s| &s.name == name) {
            s.guard = policy;
        }
    }
}

/// The policy of one service: its own level (if it has a `guard` field) over
/// the top level's (if any). `at` is where the service's level is (for the
/// checks that need both levels); `None` when neither level gives a guard or
/// the service opts out with `false`.
pub fn resolve(
    top: Option<&GuardLevel>,
    own: Option<&GuardLevel>,
    at: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<GuardPolicy> {
    let base = match top {
        Some(GuardLevel::On(p)) => (**p).clone(),
        _ => GuardPatch::default(),
    };
    let (patch, check_at) = match (own, top) {
        (Some(GuardLevel::Off), _) => return None,
        (Some(GuardLevel::On(p)), _) => {
            // Checked here only when this level touches what the check reads;
            // otherwise the top level's check has said it once for everyone.
            let touches = p.sample_ms.is_some() || p.growth != Toggle::default();
            ((**p).clone().over(base), touches.then_some(at))
        }
        (None, Some(GuardLevel::On(_))) => (base, None),
        (None, _) => return None,
    };
    let policy = policy(patch.clone());
    if let Some(at) = check_at {
        check(&patch, &policy, at, problems);
    }
    Some(policy)
}

/// The checks of the top level alone (those `resolve` leaves to it).
pub fn check_top(top: &GuardLevel, problems: &mut Vec<ConfigProblem>) {
    if let GuardLevel::On(p) = top {
        check(p, &policy((**p).clone()), "guard", problems);
    }
}

/// Checks that need several fields: the growth window must hold a sample in
/// each of its quarters.
fn check(patch: &GuardPatch, policy: &GuardPolicy, at: &str, problems: &mut Vec<ConfigProblem>) {
    let Some(growth) = &policy.growth else { return };
    let sample = policy.sample.as_millis() as u64;
    let window = growth.limits.window.as_millis() as u64;
    if window < GROWTH_MIN_SAMPLES * sample && patch.growth.fields.for_ms.is_some() {
        problems.push(ConfigProblem::Invalid {
            at: format!("{at}.growth.forMs"),
            value: format!("{window} (with sampleMs {sample})"),
            rule: "must be at least 4 × sampleMs",
        });
    } else if window < GROWTH_MIN_SAMPLES * sample {
        problems.push(ConfigProblem::Invalid {
            at: format!("{at}.sampleMs"),
            value: format!("{sample} (with growth.forMs {window})"),
            rule: "must be at most a quarter of growth.forMs",
        });
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn rule<T>(on: Option<bool>, limits: T, action: Action) -> Option<Rule<T>> {
    (on == Some(true)).then_some(Rule { limits, action })
}

/// Every default applied to a merged patch.
fn policy(p: GuardPatch) -> GuardPolicy {
    let action = p.action.unwrap_or(DEFAULT_ACTION);
    let c = &p.cpu.fields;
    let cpu = CpuLimits {
        above: c.above.unwrap_or(DEFAULT_CPU.above),
        window: c.for_ms.map(ms).unwrap_or(DEFAULT_CPU.window),
    };
    let r = &p.repeat.fields;
    let repeat = RepeatLimits {
        lines: r.lines.unwrap_or(DEFAULT_REPEAT.lines),
        within: r.within_ms.map(ms).unwrap_or(DEFAULT_REPEAT.within),
        share: r.share.unwrap_or(DEFAULT_REPEAT.share),
    };
    let m = &p.memory.fields;
    let g = &p.growth.fields;
    let rt = &p.rate.fields;
    let pr = &p.processes.fields;
    GuardPolicy {
        dry_run: p.dry_run.unwrap_or(false),
        sample: ms(p.sample_ms.unwrap_or(DEFAULT_SAMPLE_MS)),
        cpu: rule(p.cpu.on, cpu, c.action.unwrap_or(action)),
        memory: rule(
            p.memory.on,
            MemoryLimits { above_mb: m.above_mb.unwrap_or(DEFAULT_MEMORY.above_mb) },
            m.action.unwrap_or(action),
        ),
        growth: rule(
            p.growth.on,
            GrowthLimits {
                mb_per_min: g.mb_per_min.unwrap_or(DEFAULT_GROWTH.mb_per_min),
                window: g.for_ms.map(ms).unwrap_or(DEFAULT_GROWTH.window),
            },
            g.action.unwrap_or(action),
        ),
        repeat: rule(p.repeat.on, repeat, r.action.unwrap_or(action)),
        rate: rule(
            p.rate.on,
            RateLimits {
                lines_per_sec: rt.lines_per_sec.unwrap_or(DEFAULT_RATE.lines_per_sec),
                window: rt.for_ms.map(ms).unwrap_or(DEFAULT_RATE.window),
            },
            rt.action.unwrap_or(action),
        ),
        processes: rule(
            p.processes.on,
            ProcessLimits { above: pr.above.unwrap_or(DEFAULT_PROCESSES.above) },
            pr.action.unwrap_or(action),
        ),
        runaway: rule(
            p.runaway.on,
            RunawayLimits { cpu, repeat },
            p.runaway.fields.action.unwrap_or(DEFAULT_RUNAWAY_ACTION),
        ),
        restart_budget: RestartBudget {
            max: p.budget.max.map(|m| m as u32).unwrap_or(DEFAULT_BUDGET.max),
            window: p.budget.window_ms.map(ms).unwrap_or(DEFAULT_BUDGET.window),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn level(v: Value, at: &str) -> (Option<GuardLevel>, Vec<String>) {
        let mut problems = Vec::new();
        let l = parse_level(&v, at, &mut problems);
        (l, problems.iter().map(|p| p.to_string()).collect())
    }

    fn policy_of(top: Option<Value>, own: Option<Value>) -> (Option<GuardPolicy>, Vec<String>) {
        let mut problems = Vec::new();
        let top = top.and_then(|v| parse_level(&v, "guard", &mut problems));
        let own = own.and_then(|v| parse_level(&v, "services.api.guard", &mut problems));
        if let Some(t) = &top {
            check_top(t, &mut problems);
        }
        let p = resolve(top.as_ref(), own.as_ref(), "services.api.guard", &mut problems);
        (p, problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn an_empty_guard_runs_no_rule_and_needs_no_samples() {
        let (p, problems) = policy_of(Some(json!({})), None);
        assert!(problems.is_empty());
        let p = p.unwrap();
        assert!(!p.needs_samples() && !p.needs_lines());
        assert_eq!(p.sample, Duration::from_secs(1));
        assert_eq!(p.restart_budget, DEFAULT_BUDGET);
    }

    #[test]
    fn no_guard_anywhere_means_no_policy() {
        assert_eq!(policy_of(None, None).0, None);
    }

    #[test]
    fn a_rule_given_as_true_or_empty_takes_every_default() {
        let (p, _) = policy_of(Some(json!({"cpu": true, "repeat": {}, "runaway": true})), None);
        let p = p.unwrap();
        assert_eq!(p.cpu, Some(Rule { limits: DEFAULT_CPU, action: Action::Alert }));
        assert_eq!(p.repeat, Some(Rule { limits: DEFAULT_REPEAT, action: Action::Alert }));
        let runaway = p.runaway.unwrap();
        assert_eq!(runaway.action, Action::Restart, "only runaway acts by default");
        assert_eq!(runaway.limits.cpu, DEFAULT_CPU);
        assert!(p.memory.is_none() && p.rate.is_none() && p.needs_samples() && p.needs_lines());
    }

    #[test]
    fn a_service_level_lies_field_by_field_over_the_top_level() {
        let top = json!({"action": "stop", "sampleMs": 500,
                         "cpu": {"above": 0.5, "forMs": 4000},
                         "repeat": {"lines": 50, "action": "alert"},
                         "memory": {"aboveMb": 100},
                         "restartBudget": {"max": 2}});
        let own = json!({"cpu": {"forMs": 2000}, "memory": false, "rate": true,
                         "restartBudget": {"windowMs": 1000}});
        let (p, problems) = policy_of(Some(top), Some(own));
        assert!(problems.is_empty(), "{problems:?}");
        let p = p.unwrap();
        assert_eq!(p.sample, Duration::from_millis(500));
        let cpu = p.cpu.unwrap();
        assert_eq!(cpu.limits, CpuLimits { above: 0.5, window: Duration::from_secs(2) });
        assert_eq!(cpu.action, Action::Stop, "the guard's action");
        let repeat = p.repeat.unwrap();
        assert_eq!((repeat.limits.lines, repeat.action), (50, Action::Alert));
        assert_eq!(repeat.limits.within, DEFAULT_REPEAT.within);
        assert!(p.memory.is_none(), "switched off for this service");
        assert_eq!(p.rate.unwrap().action, Action::Stop);
        assert_eq!(p.restart_budget, RestartBudget { max: 2, window: Duration::from_secs(1) });
    }

    #[test]
    fn runaway_keeps_the_tuned_cpu_limits_of_a_service_that_silences_cpu() {
        let top = json!({"cpu": {"above": 0.5}, "runaway": {"action": "stop"}});
        let (p, _) = policy_of(Some(top), Some(json!({"cpu": false})));
        let p = p.unwrap();
        assert!(p.cpu.is_none());
        let r = p.runaway.unwrap();
        assert_eq!((r.limits.cpu.above, r.action), (0.5, Action::Stop));
    }

    #[test]
    fn a_service_can_opt_out_or_have_a_guard_of_its_own() {
        let (p, _) = policy_of(Some(json!({"cpu": true})), Some(json!(false)));
        assert_eq!(p, None);
        let (p, _) = policy_of(None, Some(json!({"processes": {"above": 5}})));
        assert_eq!(p.unwrap().processes.unwrap().limits.above, 5);
        let (p, _) = policy_of(Some(json!(false)), None);
        assert_eq!(p, None);
    }

    #[test]
    fn every_bad_value_is_named_by_its_path() {
        let (_, p) = level(
            json!({"action": "kill", "dryRun": "yes", "sampleMs": 100, "colour": 1,
                   "cpu": {"above": 0, "forMs": 1.5, "when": 1},
                   "memory": {"aboveMb": "2G"},
                   "growth": {"mbPerMin": -1, "forMs": 0},
                   "repeat": {"lines": 0, "withinMs": 50, "share": 1.5, "action": 3},
                   "rate": 7,
                   "processes": {"above": -2},
                   "runaway": {"action": "restart", "cpu": 1},
                   "restartBudget": {"max": -1, "windowMs": 99999999999u64}}),
            "services.api.guard",
        );
        let at = "services.api.guard";
        let expect = [
            format!("{at}.action: \"kill\" must be \"alert\", \"stop\" or \"restart\""),
            format!("{at}.dryRun: expected true or false"),
            format!("{at}.sampleMs: 100 must be at least 250"),
            format!("unknown field \"colour\" in {at}"),
            format!("{at}.cpu.above: 0 must be greater than 0"),
            format!("{at}.cpu.forMs: expected a whole number"),
            format!("unknown field \"when\" in {at}.cpu"),
            format!("{at}.memory.aboveMb: expected a number"),
            format!("{at}.growth.mbPerMin: -1 must be greater than 0"),
            format!("{at}.growth.forMs: 0 must be a whole number greater than 0"),
            format!("{at}.repeat.lines: 0 must be a whole number greater than 0"),
            format!("{at}.repeat.withinMs: 50 must be at least 100"),
            format!("{at}.repeat.share: 1.5 must be greater than 0 and at most 1"),
            format!("{at}.repeat.action: expected a string"),
            format!("{at}.rate: expected an object, true or false"),
            format!("{at}.processes.above: -2 must be a whole number greater than 0"),
            format!("unknown field \"cpu\" in {at}.runaway"),
            format!("{at}.restartBudget.max: -1 must be 0 or more"),
            format!("{at}.restartBudget.windowMs: 99999999999 is too large (at most 4294967295)"),
        ];
        for e in &expect {
            assert!(p.contains(e), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn the_config_gives_each_service_its_policy_and_reports_guard_problems_with_the_rest() {
        let parse = |text: &str| {
            crate::config::parse(text, std::path::Path::new("f.jsonc"), std::path::Path::new("/"))
        };
        let cfg = parse(
            r#"{"guard": {"cpu": true},
                "services": {"a": {"cmd": "x"}, "b": {"cmd": "x", "guard": false}}}"#,
        )
        .unwrap();
        assert!(cfg.services[0].guard.as_ref().is_some_and(|g| g.cpu.is_some()));
        assert_eq!(cfg.services[1].guard, None);
        let cfg = parse(r#"{"services": {"a": {"cmd": "x"}}}"#).unwrap();
        assert_eq!(cfg.services[0].guard, None, "no guard, nothing runs");
        let problems: Vec<String> = parse(
            r#"{"guard": {"sampleMs": 10},
                "services": {"api": {"cmd": "", "guard": {"cpu": {"above": -1}}}}}"#,
        )
        .unwrap_err()
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect();
        for e in [
            "services.api.cmd: (empty command) must name a program to run",
            "guard.sampleMs: 10 must be at least 250",
            "services.api.guard.cpu.above: -1 must be greater than 0",
        ] {
            assert!(problems.iter().any(|p| p == e), "missing {e:?} in {problems:#?}");
        }
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }

    #[test]
    fn a_guard_that_is_not_an_object_or_false_is_refused() {
        let (l, p) = level(json!(true), "guard");
        assert_eq!(l, None);
        assert_eq!(p, vec!["guard: expected an object or false"]);
    }

    #[test]
    fn a_growth_window_shorter_than_four_samples_names_the_field_that_set_it() {
        let (_, p) = policy_of(Some(json!({"growth": {"forMs": 3000}})), None);
        assert_eq!(
            p,
            vec!["guard.growth.forMs: 3000 (with sampleMs 1000) must be at least 4 × sampleMs"]
        );
        let (_, p) = policy_of(Some(json!({"growth": true})), Some(json!({"sampleMs": 60000})));
        assert_eq!(
            p,
            vec![
                "services.api.guard.sampleMs: 60000 (with growth.forMs 120000) must be at most a quarter of growth.forMs"
            ]
        );
        // A service that touches neither is not blamed for the top level's problem twice.
        let (_, p) =
            policy_of(Some(json!({"growth": {"forMs": 3000}})), Some(json!({"cpu": true})));
        assert_eq!(p.len(), 1);
    }
}
