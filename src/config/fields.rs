//! The shape of the config file: every object it may hold, where, and the
//! fields each one takes. Pure data, read on the main thread at boot.
//!
//! The validation walk checks each object against its `Fields` (an unknown
//! field is an error), and the schema test checks spec/flowlayer.schema.json
//! against `KNOWN` and the guard's `crate::guard::config::KNOWN`, so a field
//! the server learns is a field editors learn (stacks.md section 6).

/// One object of the config file and the fields it may hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Fields {
    /// Its path: field names joined by `.`, `*` for any key of a map (a
    /// service's name), `""` for the top level. The guard's objects give it
    /// relative to the `guard` object they are in.
    pub at: &'static str,
    pub names: &'static [&'static str],
}

impl Fields {
    /// True when `path` (a real one, like `services.api.v2.ready`) is where
    /// this object belongs below `mount` (`""` for the file's top level).
    /// A `*` stands for one key, which may itself hold dots or be empty (the
    /// walk reports that name, and goes on to check the rest).
    pub fn is_at(&self, mount: &str, path: &str) -> bool {
        let pattern = match (mount, self.at) {
            (m, "") => m.to_string(),
            ("", a) => a.to_string(),
            (m, a) => format!("{m}.{a}"),
        };
        match pattern.split_once('*') {
            None => pattern == path,
            Some((before, after)) => {
                path.len() >= before.len() + after.len()
                    && path.starts_with(before)
                    && path.ends_with(after)
            }
        }
    }
}

pub const TOP: Fields = Fields {
    at: "",
    names: &["$schema", "name", "session", "logs", "logView", "guard", "services"],
};
pub const SESSION: Fields =
    Fields { at: "session", names: &["bind", "addr", "token", "allowedOrigins"] };
pub const LOGS: Fields = Fields { at: "logs", names: &["dir"] };
pub const LOG_VIEW: Fields = Fields { at: "logView", names: &["maxEntries", "all"] };
pub const LOG_VIEW_ALL: Fields = Fields { at: "logView.all", names: &["maxEntries"] };
pub const SERVICE: Fields = Fields {
    at: "services.*",
    names: &[
        "cmd",
        "stopCmd",
        "kind",
        "port",
        "ready",
        "dependsOn",
        "env",
        "logView",
        "cwd",
        "guard",
        "restart",
    ],
};
pub const SERVICE_LOG_VIEW: Fields = Fields { at: "services.*.logView", names: &["maxEntries"] };
pub const READY: Fields =
    Fields { at: "services.*.ready", names: &["type", "url", "port", "intervalMs", "timeoutMs"] };
pub const RESTART: Fields = Fields {
    at: "services.*.restart",
    names: &["policy", "backoffMs", "maxBackoffMs", "resetAfterMs", "maxRestarts", "windowMs"],
};

/// Every object of the file outside the guard's (those are
/// `crate::guard::config::KNOWN`, at each of `crate::guard::config::MOUNTS`).
pub const KNOWN: &[&Fields] = &[
    &TOP,
    &SESSION,
    &LOGS,
    &LOG_VIEW,
    &LOG_VIEW_ALL,
    &SERVICE,
    &SERVICE_LOG_VIEW,
    &READY,
    &RESTART,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_stands_for_one_key_even_one_with_dots_or_none() {
        assert!(READY.is_at("", "services.api.ready"));
        assert!(READY.is_at("", "services.api.v2.ready"));
        assert!(READY.is_at("", "services..ready"));
        assert!(!READY.is_at("", "services.ready"));
        assert!(!READY.is_at("", "services.api.restart"));
        assert!(TOP.is_at("", ""));
        assert!(LOG_VIEW_ALL.is_at("", "logView.all"));
        let cpu = Fields { at: "cpu", names: &[] };
        assert!(cpu.is_at("services.*.guard", "services.db.guard.cpu"));
        assert!(cpu.is_at("guard", "guard.cpu"));
        assert!(!cpu.is_at("guard", "services.db.guard.cpu"));
        let guard = Fields { at: "", names: &[] };
        assert!(guard.is_at("guard", "guard"));
    }
}
