//! The boot plan: dependencies -> DAG -> waves. Pure; built once at boot.
//!
//! Wave of a service = 0 without dependencies, else 1 + the largest wave of its
//! dependencies; within a wave, services are in name order (server.md section 3).

use crate::bus::SvcId;
use crate::config::Config;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `waves[k]` = services of wave k, by name.
    pub waves: Vec<Vec<SvcId>>,
    /// `wave_of[svc]`.
    pub wave_of: Vec<usize>,
    /// Direct dependencies of each service.
    pub deps: Vec<Vec<SvcId>>,
    /// Direct dependents of each service.
    #[cfg_attr(not(test), allow(dead_code, reason = "kept with the graph; tests read it"))]
    pub dependents: Vec<Vec<SvcId>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The names along one cycle, first name repeated at the end.
    Cycle(Vec<String>),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Cycle(names) => {
                write!(f, "dependency cycle: {}", names.join(" -> "))
            }
        }
    }
}

impl Plan {
    pub fn build(config: &Config) -> Result<Plan, PlanError> {
        let n = config.services.len();
        let deps: Vec<Vec<SvcId>> = config
            .services
            .iter()
            .map(|s| {
                s.depends_on.iter().filter_map(|d| config.service_index(d)).map(SvcId).collect()
            })
            .collect();
        let mut dependents = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for d in ds {
                dependents[d.0].push(SvcId(i));
            }
        }
        // Depth-first search with colours: finds waves and the first cycle in name order.
        #[derive(Copy, Clone, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark = vec![Mark::New; n];
        let mut wave_of = vec![0usize; n];
        let mut stack: Vec<SvcId> = Vec::new();
        fn visit(
            v: usize,
            deps: &[Vec<SvcId>],
            mark: &mut [Mark],
            wave_of: &mut [usize],
            stack: &mut Vec<SvcId>,
            config: &Config,
        ) -> Result<(), PlanError> {
            match mark[v] {
                Mark::Done => return Ok(()),
                Mark::Open => {
                    let start = stack.iter().position(|s| s.0 == v).unwrap_or(0);
                    let mut names: Vec<String> =
                        stack[start..].iter().map(|s| config.services[s.0].name.clone()).collect();
                    names.push(config.services[v].name.clone());
                    return Err(PlanError::Cycle(names));
                }
                Mark::New => {}
            }
            mark[v] = Mark::Open;
            stack.push(SvcId(v));
            let mut wave = 0;
            for d in &deps[v] {
                visit(d.0, deps, mark, wave_of, stack, config)?;
                wave = wave.max(wave_of[d.0] + 1);
            }
            stack.pop();
            mark[v] = Mark::Done;
            wave_of[v] = wave;
            Ok(())
        }
        for v in 0..n {
            visit(v, &deps, &mut mark, &mut wave_of, &mut stack, config)?;
        }
        let count = wave_of.iter().map(|w| w + 1).max().unwrap_or(0);
        let mut waves = vec![Vec::new(); count];
        for (i, w) in wave_of.iter().enumerate() {
            waves[*w].push(SvcId(i));
        }
        Ok(Plan { waves, wave_of, deps, dependents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(text: &str) -> Result<Plan, PlanError> {
        let c = crate::config::parse(text, Path::new("f"), Path::new("/")).unwrap();
        Plan::build(&c)
    }

    #[test]
    fn waves_follow_longest_dependency_chain_and_names() {
        let p = plan(
            r#"{"services":{"web":{"cmd":"x","dependsOn":["api","db"]},
                "api":{"cmd":"x","dependsOn":["db"]},"db":{"cmd":"x"},"cache":{"cmd":"x"}}}"#,
        )
        .unwrap();
        // sorted ids: api=0, cache=1, db=2, web=3
        assert_eq!(p.waves, vec![vec![SvcId(1), SvcId(2)], vec![SvcId(0)], vec![SvcId(3)]]);
        assert_eq!(p.dependents[2], vec![SvcId(0), SvcId(3)]);
    }

    #[test]
    fn cycle_is_named() {
        let e = plan(
            r#"{"services":{"a":{"cmd":"x","dependsOn":["b"]},"b":{"cmd":"x","dependsOn":["a"]}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "dependency cycle: a -> b -> a");
    }
}
