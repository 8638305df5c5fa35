//! `GET /metrics`: the Prometheus text exposition format 0.0.4 (health.md
//! section 4). Runs on the scrape's own `metrics` thread (the accept thread
//! hands it an authorized connection): it asks the state thread for the
//! figures only it has (`Msg::Scrape`), reads /proc itself through the shared
//! meter, writes the text and answers.

use super::meter::{Meter, Sample};
use super::procs::OwnFigures;
use crate::bus::{CtlTx, Status};
use crate::logs::now_ms;
use crate::state::{RestartReason, ServiceView};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long a scrape waits for the state thread (which answers at once unless
/// the server is shutting down).
const SCRAPE_WAIT: Duration = Duration::from_secs(2);

/// What the state thread gives a scrape.
pub struct Scrape {
    pub views: Vec<ServiceView>,
    /// Connected WebSocket sessions.
    pub sessions: usize,
    /// `log` events not streamed to a session (full queue or budget), all
    /// sessions of this server run.
    pub dropped_logs: u64,
    /// Guard incidents opened in this server run, by (service, rule, action,
    /// dry run), in the order they first occurred (`Guard::totals`).
    pub incidents: Vec<IncidentCount>,
    pub meter: Arc<Mutex<Meter>>,
}

/// One series of `flowlayer_guard_incidents_total`.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentCount {
    pub service: String,
    pub rule: crate::guard::RuleKind,
    pub action: crate::guard::Action,
    pub dry_run: bool,
    pub count: u64,
}

/// Answers one authenticated `GET /metrics` on `stream`.
pub fn serve_metrics(stream: &mut dyn std::io::Write, ctl: &CtlTx) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let scrape = ctl.scrape(tx).ok().and_then(|_| rx.recv_timeout(SCRAPE_WAIT).ok());
    let Some(scrape) = scrape else {
        return respond(stream, "503 Service Unavailable", "server is shutting down\n");
    };
    let (sample, own) = {
        let mut meter = scrape.meter.lock().unwrap_or_else(|e| e.into_inner());
        (meter.read(&scrape.views, now_ms()), meter.own_figures())
    };
    respond(stream, "200 OK", &render(&scrape, &sample, &own));
}

fn respond(stream: &mut dyn std::io::Write, status: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The client may be gone already; nobody is left to tell.
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes()));
    let _ = stream.flush();
}

/// The text of a scrape.
pub fn render(s: &Scrape, sample: &Sample, own: &OwnFigures) -> String {
    let mut t = Text(String::with_capacity(4096 + s.views.len() * 2048));
    let views = &s.views;
    let reading = |i: usize| sample.services.get(i);
    t.family(
        "flowlayer_service_up",
        "gauge",
        "1 while the service's process runs (status running or ready).",
    );
    for v in views {
        t.sample("flowlayer_service_up", &[("service", &v.name)], bool_value(v.status.is_up()));
    }
    t.family("flowlayer_service_ready", "gauge", "1 while the service is ready.");
    for v in views {
        let ready = v.status == Status::Ready;
        t.sample("flowlayer_service_ready", &[("service", &v.name)], bool_value(ready));
    }
    t.family(
        "flowlayer_service_status",
        "gauge",
        "1 for the service's current status, 0 for the others.",
    );
    for v in views {
        for st in STATUSES {
            let labels = [("service", v.name.as_str()), ("status", st.as_str())];
            t.sample("flowlayer_service_status", &labels, bool_value(v.status == st));
        }
    }
    t.family(
        "flowlayer_service_restarts_total",
        "counter",
        "Restarts of the service in this server run, by reason.",
    );
    for v in views {
        for r in RestartReason::ALL {
            let labels = [("service", v.name.as_str()), ("reason", r.as_str())];
            let n = v.counters.restarts[r as usize] as f64;
            t.sample("flowlayer_service_restarts_total", &labels, n);
        }
    }
    t.family(
        "flowlayer_service_cpu_seconds_total",
        "counter",
        "CPU time of the service's process tree in its current run, reaped children included.",
    );
    for (i, v) in views.iter().enumerate() {
        let secs = reading(i).map_or(0.0, |r| r.cpu_seconds);
        t.sample("flowlayer_service_cpu_seconds_total", &[("service", &v.name)], secs);
    }
    t.family(
        "flowlayer_service_resident_memory_bytes",
        "gauge",
        "Resident memory of the service's process tree (sum over its processes).",
    );
    for (i, v) in views.iter().enumerate() {
        let rss = reading(i).map_or(0, |r| r.rss_bytes) as f64;
        t.sample("flowlayer_service_resident_memory_bytes", &[("service", &v.name)], rss);
    }
    t.family("flowlayer_service_processes", "gauge", "Live processes in the service's tree.");
    for (i, v) in views.iter().enumerate() {
        let n = reading(i).map_or(0, |r| r.processes) as f64;
        t.sample("flowlayer_service_processes", &[("service", &v.name)], n);
    }
    t.family(
        "flowlayer_service_start_time_seconds",
        "gauge",
        "When the service's current run was spawned (Unix seconds); only while it runs.",
    );
    for v in views {
        if let (Some(ms), Some(_)) = (v.started_ms, v.pid) {
            let at = ms as f64 / 1000.0;
            t.sample("flowlayer_service_start_time_seconds", &[("service", &v.name)], at);
        }
    }
    t.family(
        "flowlayer_service_ready_seconds",
        "gauge",
        "Time from spawn to ready of the service's current run; only once it was ready.",
    );
    for v in views {
        if let (Some(start), Some(ready)) = (v.started_ms, v.ready_ms) {
            let secs = (ready - start) as f64 / 1000.0;
            t.sample("flowlayer_service_ready_seconds", &[("service", &v.name)], secs);
        }
    }
    let streams = ["stdout", "stderr", "system"];
    t.family("flowlayer_log_lines_total", "counter", "Log lines read from the service, by stream.");
    for v in views {
        for (i, stream) in streams.iter().enumerate() {
            let labels = [("service", v.name.as_str()), ("stream", *stream)];
            t.sample("flowlayer_log_lines_total", &labels, v.counters.lines[i] as f64);
        }
    }
    t.family("flowlayer_log_bytes_total", "counter", "Log bytes read from the service, by stream.");
    for v in views {
        for (i, stream) in streams.iter().enumerate() {
            let labels = [("service", v.name.as_str()), ("stream", *stream)];
            t.sample("flowlayer_log_bytes_total", &labels, v.counters.bytes[i] as f64);
        }
    }
    t.family("flowlayer_sessions", "gauge", "Connected WebSocket sessions.");
    t.sample("flowlayer_sessions", &[], s.sessions as f64);
    t.family(
        "flowlayer_log_events_dropped_total",
        "counter",
        "Live log events not sent to a session (full queue or budget); get_logs has them.",
    );
    t.sample("flowlayer_log_events_dropped_total", &[], s.dropped_logs as f64);
    t.family(
        "flowlayer_guard_incidents_total",
        "counter",
        "Runaway guard incidents, by service, rule, action and dry run.",
    );
    for i in &s.incidents {
        let labels = [
            ("service", i.service.as_str()),
            ("rule", i.rule.as_str()),
            ("action", i.action.as_str()),
            ("dry_run", if i.dry_run { "true" } else { "false" }),
        ];
        t.sample("flowlayer_guard_incidents_total", &labels, i.count as f64);
    }
    t.family("process_cpu_seconds_total", "counter", "CPU time of the server process.");
    t.sample("process_cpu_seconds_total", &[], own.cpu_seconds);
    t.family("process_resident_memory_bytes", "gauge", "Resident memory of the server process.");
    t.sample("process_resident_memory_bytes", &[], own.rss_bytes as f64);
    t.family(
        "process_start_time_seconds",
        "gauge",
        "When the server process started (Unix seconds).",
    );
    t.sample("process_start_time_seconds", &[], own.start_time);
    t.family("process_open_fds", "gauge", "Open file descriptors of the server process.");
    t.sample("process_open_fds", &[], own.open_fds as f64);
    t.0
}

const STATUSES: [Status; 7] = [
    Status::Unknown,
    Status::Starting,
    Status::Running,
    Status::Ready,
    Status::Stopping,
    Status::Stopped,
    Status::Failed,
];

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(k);
                self.0.push_str("=\"");
                escape_label(v, &mut self.0);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped (the format's rule).
fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{RunId, SvcId};
    use crate::health::meter::Reading;
    use crate::state::Counters;

    #[test]
    fn every_family_is_declared_once_and_values_are_plain_numbers() {
        let view = ServiceView {
            svc: SvcId(0),
            name: "api".into(),
            status: Status::Ready,
            pid: Some(10),
            run: RunId(1),
            started_ms: Some(1_000_000),
            ready_ms: Some(1_000_250),
            restarts: 2,
            counters: Counters { restarts: [2, 0, 1, 0], lines: [5, 1, 2], bytes: [50, 10, 20] },
        };
        let scrape = Scrape {
            views: vec![view],
            sessions: 1,
            dropped_logs: 0,
            incidents: vec![IncidentCount {
                service: "api".into(),
                rule: crate::guard::RuleKind::Runaway,
                action: crate::guard::Action::Restart,
                dry_run: false,
                count: 2,
            }],
            meter: Arc::new(Mutex::new(Meter::new(1))),
        };
        let sample = Sample {
            ts_ms: 0,
            services: vec![Reading {
                svc: SvcId(0),
                run: RunId(1),
                name: "api".into(),
                cpu: 0.5,
                rss_bytes: 1 << 20,
                processes: 3,
                cpu_seconds: 1.25,
                restarts: 2,
                uptime_ms: 9,
            }],
        };
        let own = OwnFigures { cpu_seconds: 0.5, rss_bytes: 4096, start_time: 1.5e9, open_fds: 7 };
        let text = render(&scrape, &sample, &own);
        for line in [
            "flowlayer_service_up{service=\"api\"} 1",
            "flowlayer_service_status{service=\"api\",status=\"ready\"} 1",
            "flowlayer_service_status{service=\"api\",status=\"failed\"} 0",
            "flowlayer_service_restarts_total{service=\"api\",reason=\"on_failure\"} 2",
            "flowlayer_service_restarts_total{service=\"api\",reason=\"user\"} 1",
            "flowlayer_service_cpu_seconds_total{service=\"api\"} 1.25",
            "flowlayer_service_resident_memory_bytes{service=\"api\"} 1048576",
            "flowlayer_service_ready_seconds{service=\"api\"} 0.25",
            "flowlayer_service_start_time_seconds{service=\"api\"} 1000",
            "flowlayer_log_lines_total{service=\"api\",stream=\"system\"} 2",
            "flowlayer_sessions 1",
            "# TYPE flowlayer_guard_incidents_total counter",
            "flowlayer_guard_incidents_total{service=\"api\",rule=\"runaway\",action=\"restart\",dry_run=\"false\"} 2",
            "process_open_fds 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!((types, helps), (18, 18));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label("a\"b\\c\nd", &mut out);
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }
}
