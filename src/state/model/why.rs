//! "Why is it not up?": the one sentence `get_timeline` gives for a service
//! (health.md section 3), read from the model's state on the state thread,
//! with the runaway guard's open incident, if any (guard.md).

use super::{secs, Model};
use crate::bus::{Status, SvcId};
use crate::config::Kind;

/// How far a chain of waiting services is followed (`a` waits for `b`, which
/// waits for `c`...) before the sentence stops.
const MAX_CHAIN: usize = 4;

impl Model {
    /// One sentence on what `svc` is waiting for or why it is not up:
    /// `ready`; `waiting for db: running, tcp 127.0.0.1:5432: connection
    /// refused ×12 in 6.0 s`; `failed: exited with code 1 after 0.4 s; crash
    /// loop, not restarting`. While the runaway guard has an incident open
    /// for the service, it says so: `running; guard incident inc-3 open:
    /// repeat: 97 % of 1,840 lines were "retry <n> failed"`.
    pub fn why(&self, svc: SvcId, now: i64) -> String {
        let mut out = self.why_at(svc, now, 0);
        if let Some(note) = self.guard_note(svc) {
            out.push_str("; ");
            out.push_str(&note);
        }
        out
    }

    fn why_at(&self, svc: SvcId, now: i64, depth: usize) -> String {
        let s = &self.svcs[svc.0];
        let cfg = &self.cfg.services[svc.0];
        if self.waits_in_sequence(svc) {
            return self.waiting(svc, now, depth);
        }
        match s.status {
            Status::Ready => "ready".into(),
            Status::Running if cfg.kind == Kind::Oneshot => {
                "running (a oneshot, not finished yet)".into()
            }
            Status::Running if cfg.ready.is_some() => match self.probe_streak(svc) {
                Some(streak) => format!("running, not ready: {streak}"),
                None => format!("running, waiting for its probe ({})", self.probe_target(svc)),
            },
            Status::Running => "running".into(),
            Status::Starting => format!("starting ({})", s.cause),
            Status::Stopping => format!("stopping ({})", s.cause),
            Status::Unknown => "not started yet".into(),
            Status::Stopped | Status::Failed => {
                let word = s.status.as_str();
                let mut out = format!("{word}: {}", s.cause);
                if let Some(p) = &s.backoff.pending {
                    let policy = cfg.restart.policy.as_str();
                    let left = secs(p.at_ms - now);
                    out.push_str(&format!("; restart {} in {left} ({policy})", p.attempt));
                } else if s.backoff.gave_up {
                    out.push_str("; crash loop, not restarting");
                }
                out
            }
        }
    }

    /// `waiting for db: <why db is not up>`, naming the first dependency that
    /// has not reached its target state.
    fn waiting(&self, svc: SvcId, now: i64, depth: usize) -> String {
        let blocking: Vec<SvcId> = self.plan.deps[svc.0]
            .iter()
            .copied()
            .filter(|d| self.settled(*d) != Some(true))
            .collect();
        let Some(first) = blocking.first().copied() else {
            return "waiting for its wave to start".into();
        };
        let mut out = format!("waiting for {}", self.name(first));
        if blocking.len() > 1 {
            out.push_str(&format!(" (and {} more)", blocking.len() - 1));
        }
        if depth < MAX_CHAIN {
            out.push_str(": ");
            out.push_str(&self.why_at(first, now, depth + 1));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{model, spawned, NOW};
    use crate::bus::{ExitInfo, Msg, RunId, SvcId};

    #[test]
    fn a_waiting_service_names_its_dependency_and_the_probe_error() {
        // ids by name: api=0, db=1, web=2
        let mut m = model(super::super::tests::STACK);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        let failing = |count| Msg::ProbeFailing {
            svc: SvcId(1),
            run: RunId(1),
            error: "connection refused".into(),
            count,
        };
        m.handle(failing(1), NOW);
        m.handle(failing(12), NOW + 6000);
        assert_eq!(
            m.why(SvcId(0), NOW + 6000),
            "waiting for db: running, not ready: tcp 127.0.0.1:5432: connection refused ×12 in 6.0 s"
        );
        assert_eq!(
            m.why(SvcId(2), NOW + 6000),
            "waiting for api: waiting for db: running, not ready: tcp 127.0.0.1:5432: connection refused ×12 in 6.0 s"
        );
        m.handle(Msg::ProbeReady { svc: SvcId(1), run: RunId(1) }, NOW + 6100);
        assert_eq!(m.why(SvcId(1), NOW + 6100), "ready");
    }

    #[test]
    fn a_failed_service_says_how_it_ended() {
        let mut m = model(r#"{"services":{"a":{"cmd":"x"}}}"#);
        let fx = m.boot(NOW);
        spawned(&mut m, &fx);
        m.handle(Msg::Exited { svc: SvcId(0), run: RunId(1), exit: ExitInfo::Code(1) }, NOW + 400);
        assert_eq!(m.why(SvcId(0), NOW + 400), "failed: exited with code 1 after 0.4 s");
    }
}
