//! Service names as file names: each service's lines go to
//! `logs.dir/<name>.jsonl`, beside the files the server writes for itself.
//! Runs on the main thread at boot, as part of validation.
//!
//! A service named `all` would append its lines to `all.jsonl` a second time,
//! out of seq order, and a name too long for a file name would validate and
//! then never get its file (issue 14). Checked whether or not `logs.dir` is
//! set, so that adding it later never turns a valid config into an invalid one.

use super::ConfigProblem;

/// Longest service name, in bytes: with `.jsonl` it stays well under the 255
/// bytes most file systems allow in a file name.
pub const MAX_NAME_BYTES: usize = 200;

/// The server's own files in `logs.dir` (without `.jsonl`), with what each
/// holds: server.md section 6, health.md (timeline), guard.md (incidents).
/// The schema test checks that spec/flowlayer.schema.json refuses each.
pub(super) const RESERVED: &[(&str, &str)] = &[
    ("all", "every service's lines"),
    ("timeline", "the timeline of every service"),
    ("incidents", "the guard's incidents"),
];

/// Problems of the service names as a set, in name order: reserved names,
/// names too long, and names that differ only in case (they would share a file
/// where the file system ignores case, as on macOS or a FAT drive).
pub(super) fn problems(names: &[String]) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    for name in names {
        let reserved = RESERVED.iter().find(|(r, _)| r.eq_ignore_ascii_case(name));
        if let Some((file, holds)) = reserved {
            out.push(ConfigProblem::ReservedServiceName {
                name: name.clone(),
                file: format!("{file}.jsonl"),
                holds,
            });
        }
        if name.len() > MAX_NAME_BYTES {
            out.push(ConfigProblem::LongServiceName { name: name.clone() });
        }
    }
    let mut folded: Vec<(String, &String)> =
        names.iter().map(|n| (n.to_ascii_lowercase(), n)).collect();
    folded.sort();
    for pair in folded.windows(2) {
        if pair[0].0 == pair[1].0 {
            out.push(ConfigProblem::NamesDifferInCase {
                a: pair[0].1.clone(),
                b: pair[1].1.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    fn problems(services: &[&str]) -> Vec<String> {
        let body: Vec<String> =
            services.iter().map(|n| format!("\"{n}\":{{\"cmd\":\"x\"}}")).collect();
        let text = format!("{{\"services\":{{{}}}}}", body.join(","));
        match parse(&text, Path::new("f.jsonc"), Path::new("/base")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn the_servers_own_file_names_are_reserved_whatever_the_case() {
        assert_eq!(
            problems(&["all", "Timeline", "incidents", "alls", "web"]),
            vec![
                "service name \"Timeline\" is reserved: logs.dir/timeline.jsonl holds the timeline of every service (file names may ignore case)",
                "service name \"all\" is reserved: logs.dir/all.jsonl holds every service's lines",
                "service name \"incidents\" is reserved: logs.dir/incidents.jsonl holds the guard's incidents",
            ]
        );
    }

    #[test]
    fn a_name_longer_than_200_bytes_is_refused() {
        let ok = "a".repeat(200);
        assert_eq!(problems(&[&ok]), Vec::<String>::new());
        let long = format!("{}b", "a".repeat(200));
        assert_eq!(
            problems(&[&long]),
            vec![format!(
                "service name \"{}...\" is 201 bytes long: at most 200, as it names the file logs.dir/<name>.jsonl",
                "a".repeat(32)
            )]
        );
    }

    #[test]
    fn names_that_differ_only_in_case_are_refused() {
        assert_eq!(
            problems(&["api", "API", "db"]),
            vec!["service names \"API\" and \"api\" differ only in case: where file names ignore case they would share one log file"]
        );
    }
}
