//! Screen tests: render into ratatui's `TestBackend` and compare text rows.

use crate::app::App;
use crate::event::{Event, LinkState};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::json;
use std::time::Instant;
use termion::event::Key;

fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| super::render(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn ev(v: serde_json::Value) -> Event {
    Event::Server(serde_json::from_value(v).unwrap())
}

fn app() -> App {
    let mut app = App::new("127.0.0.1:6999".into(), Some("fl_secret_token".into()), false);
    let now = Instant::now();
    app.update(Event::Link(LinkState::Connected), now);
    app.update(ev(json!({"type":"event","name":"hello","payload":{"protocol_version":1,"server":"flowlayer","capabilities":["get_logs"],"server_version":"1.0.0"}})), now);
    app.update(ev(json!({"type":"event","name":"snapshot","payload":{"services":[
        {"name":"api","status":"ready"},{"name":"db","status":"failed"},{"name":"worker","status":"stopped"}]}})), now);
    let id = app.take_requests()[0].id.clone();
    let entries: Vec<_> = (1..=30)
        .map(|i| {
            json!({"seq":i,"service": if i % 2 == 0 {"api"} else {"db"},"phase":"running",
            "stream": if i == 29 {"stderr"} else {"stdout"},"message":format!("line {i}"),
            "timestamp":"2026-11-27T10:11:12.345Z"})
        })
        .collect();
    app.update(ev(json!({"type":"result","id":id,"payload":{"ok":true,"data":{"entries":entries,"truncated":false,"effective_limit":500}}})), now);
    app
}

#[test]
fn main_screen_at_80x24() {
    let mut a = app();
    a.log_rows = super::log_rows(ratatui::layout::Rect::new(0, 0, 80, 24), &a);
    let expected = [
        "┌ services ──────────┐┌ logs: all ─────────────────────────────────────────────┐",
        "│› all logs          ││10:11:12.345 db     line 11                             │",
        "│  api          ready││10:11:12.345 api    line 12                             │",
        "│  db          failed││10:11:12.345 db     line 13                             │",
        "│  worker     stopped││10:11:12.345 api    line 14                             │",
        "│                    ││10:11:12.345 db     line 15                             │",
        "│                    ││10:11:12.345 api    line 16                             │",
        "│                    ││10:11:12.345 db     line 17                             │",
        "│                    ││10:11:12.345 api    line 18                             │",
        "│                    ││10:11:12.345 db     line 19                             │",
        "│                    ││10:11:12.345 api    line 20                             │",
        "│                    ││10:11:12.345 db     line 21                             │",
        "│                    ││10:11:12.345 api    line 22                             │",
        "│                    ││10:11:12.345 db     line 23                             │",
        "│                    ││10:11:12.345 api    line 24                             │",
        "│                    ││10:11:12.345 db     line 25                             │",
        "│                    ││10:11:12.345 api    line 26                             │",
        "│                    ││10:11:12.345 db     line 27                             │",
        "│                    ││10:11:12.345 api    line 28                             │",
        "│                    ││10:11:12.345 db     [stderr] line 29                    │",
        "│                    ││10:11:12.345 api    line 30                             │",
        "└────────────────────┘└────────────────────────────────────────────────────────┘",
        "● connected 127.0.0.1:6999",
        "q quit · tab focus · ↑↓ move · / filter · s start all · x stop all · i info",
    ];
    let got = screen(&a, 80, 24);
    for (i, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
        assert_eq!(g, e, "row {i}");
    }
}

#[test]
fn info_modal_masks_the_token() {
    let mut a = app();
    a.update(Event::Key(Key::Char('i')), Instant::now());
    let text = screen(&a, 80, 24).join("\n");
    assert!(text.contains("fl_••••••en"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("status    connected"));
}

#[test]
fn filter_line_shows_while_typing_and_filters_lines() {
    let mut a = app();
    let now = Instant::now();
    a.update(Event::Key(Key::Char('\t')), now);
    a.update(Event::Key(Key::Char('/')), now);
    for c in "line 2".chars() {
        a.update(Event::Key(Key::Char(c)), now);
    }
    a.log_rows = super::log_rows(ratatui::layout::Rect::new(0, 0, 80, 24), &a);
    let s = screen(&a, 80, 24);
    assert_eq!(a.visible_entries().len(), 11, "line 2, line 20..29");
    assert!(s[1].contains("api    line 2 "), "{}", s[1]);
    assert!(s[11].contains("db     [stderr] line 29"), "{}", s[11]);
    assert!(
        s[12].ends_with("│                                                        │"),
        "{}",
        s[12]
    );
    assert!(s[20].contains("│/line 2▏"), "{:#?}", s);
}

#[test]
fn outage_is_shown_in_the_footer() {
    let mut a = app();
    a.update(Event::Link(LinkState::Lost("connection reset".into())), Instant::now());
    let s = screen(&a, 80, 24);
    assert!(s[22].starts_with("● connection lost: connection reset"), "{}", s[22]);
    a.update(Event::Link(LinkState::InvalidToken), Instant::now());
    assert!(screen(&a, 80, 24)[22].starts_with("● invalid token"));
}

/// A client of a server with service health and the guard, `api` selected,
/// stats watched, `db` restarting and `api` under an open incident.
fn extended() -> App {
    let mut app = App::new("127.0.0.1:6999".into(), None, false);
    let now = Instant::now();
    app.update(Event::Link(LinkState::Connected), now);
    let caps = crate::app::tests_support::EXTENDED;
    app.update(ev(json!({"type":"event","name":"hello","payload":{"protocol_version":1,"server":"flowlayer","capabilities":caps}})), now);
    app.update(
        ev(json!({"type":"event","name":"snapshot","payload":{"services":[
        {"name":"api","status":"ready"},
        {"name":"db","status":"failed","restarts":2,"restart_in_ms":4500},
        {"name":"worker","status":"stopped"}]}})),
        now,
    );
    app.update(ev(json!({"type":"event","name":"service_stats","payload":{"timestamp":"t","services":[
        {"name":"api","cpu":0.984,"rss_bytes":47_185_920u64,"processes":2,"cpu_seconds":3.5,"restarts":0,"uptime_ms":5000},
        {"name":"db","cpu":0.0,"rss_bytes":0,"processes":0,"cpu_seconds":0.0,"restarts":2,"uptime_ms":0},
        {"name":"worker","cpu":0.0,"rss_bytes":0,"processes":0,"cpu_seconds":0.0,"restarts":0,"uptime_ms":0}]}})), now);
    let inc = crate::app::tests_support::incident("g-1", "api", false, None);
    app.update(ev(json!({"type":"event","name":"incident","payload":inc})), now);
    app.update(Event::Key(Key::Down), now);
    let reqs = app.take_requests();
    let why = reqs.iter().rev().find(|r| r.frame.contains("get_timeline")).unwrap().id.clone();
    app.update(
        ev(json!({"type":"result","id":why,"payload":{"ok":true,"data":{"entries":[],
        "why":"ready"}}})),
        now,
    );
    app
}

#[test]
fn health_and_guard_in_the_main_screen_at_80x24() {
    let mut a = extended();
    a.log_rows = super::log_rows(ratatui::layout::Rect::new(0, 0, 80, 24), &a);
    let s = screen(&a, 80, 24);
    let expected = [
        (0, "┌ services ──────────────cpu   mem┐┌ logs: api (loading) ──────────────────────┐"),
        (1, "│  all logs                       ││loading…                                   │"),
        (2, "│› api          ! ready  98%   45M││                                           │"),
        (3, "│  db      failed ↻2 5s           ││                                           │"),
        (4, "│  worker       stopped           ││                                           │"),
        (20, "└─────────────────────────────────┘└───────────────────────────────────────────┘"),
        (21, " why api: ready"),
        (22, "● connected 127.0.0.1:6999 │ guard: api: runaway (cpu 0.98 cores for 30 s and 97"),
        (23, "q quit · / filter · s start/restart · x stop · t timeline · ! incidents · i info"),
    ];
    for (row, want) in expected {
        assert_eq!(s[row], want, "row {row}:\n{}", s.join("\n"));
    }
}

#[test]
fn the_timeline_view_at_80x24() {
    let mut a = extended();
    let now = Instant::now();
    a.update(Event::Key(Key::Char('t')), now);
    let id =
        a.take_requests().iter().find(|r| r.frame.contains("get_timeline")).unwrap().id.clone();
    let entries = json!([
        {"timestamp":"2026-11-27T10:00:00.100Z","service":"api","kind":"waiting","message":"waits for db (starting)"},
        {"timestamp":"2026-11-27T10:00:01.200Z","service":"api","kind":"probe","message":"tcp 127.0.0.1:5432: connection refused"},
        {"timestamp":"2026-11-27T10:00:02.300Z","service":"api","kind":"status","message":"ready: probe passed after 2.1 s","status":"ready"},
        {"timestamp":"2026-11-27T10:00:09.000Z","service":"api","kind":"restart_scheduled","message":"restart 1 in 1.0 s (on-failure)","attempt":1}
    ]);
    a.update(ev(json!({"type":"result","id":id,"payload":{"ok":true,"data":{"entries":entries,"why":"ready"}}})), now);
    let s = screen(&a, 80, 24);
    let expected = [
        (0, "┌ timeline: api ───────────────────────────────────────────────────────────────┐"),
        (1, "│why ready                                                                     │"),
        (2, "│10:00:00.100 waiting    waits for db (starting)                               │"),
        (3, "│10:00:01.200 probe      tcp 127.0.0.1:5432: connection refused                │"),
        (4, "│10:00:02.300 status     ready: probe passed after 2.1 s                       │"),
        (5, "│10:00:09.000 restart    restart 1 in 1.0 s (on-failure)                       │"),
        (6, "│                                                                              │"),
        (21, "└──────────────────────────────────────────────────────────────────────────────┘"),
        (23, "esc/t close · ↑↓ pgup/pgdn home/end scroll · q quit"),
    ];
    for (row, want) in expected {
        assert_eq!(s[row], want, "row {row}:\n{}", s.join("\n"));
    }
    // A long message goes on under itself, after the time and kind columns.
    a.update(
        ev(json!({"type":"event","name":"service_status","payload":{"service":"api",
        "status":"ready","timestamp":"2026-11-27T10:00:10.000Z"}})),
        now,
    );
    let id = a
        .take_requests()
        .iter()
        .rev()
        .find(|r| !r.frame.contains("\"limit\"") && r.frame.contains("get_timeline"))
        .unwrap()
        .id
        .clone();
    let mut more = entries.as_array().unwrap().clone();
    more.push(json!({"timestamp":"2026-11-27T10:00:10.000Z","service":"api","kind":"incident",
        "message":"incident inc-1 opened: runaway → restart: cpu 0.97 cores for 1.2 s and 100 % of 182 lines were the same"}));
    a.update(ev(json!({"type":"result","id":id,"payload":{"ok":true,"data":{"entries":more,"why":"ready"}}})), now);
    let s = screen(&a, 80, 24);
    assert_eq!(
        s[6],
        "│10:00:10.000 incident   incident inc-1 opened: runaway → restart: cpu 0.97    │"
    );
    assert_eq!(
        s[7],
        "│                        cores for 1.2 s and 100 % of 182 lines were the same  │"
    );
    a.update(Event::Key(Key::Esc), now);
    assert!(screen(&a, 80, 24)[0].starts_with("┌ services"));
}

#[test]
fn the_incidents_view_shows_the_evidence_at_80x24() {
    let mut a = extended();
    let now = Instant::now();
    a.update(Event::Key(Key::Char('!')), now);
    let id =
        a.take_requests().iter().find(|r| r.frame.contains("get_incidents")).unwrap().id.clone();
    let mut older =
        crate::app::tests_support::incident("g-0", "db", true, Some("stopped in 0.2 s"));
    older["opened_at"] = json!("2026-11-27T09:00:00.000Z");
    older["rule"] = json!("repeat");
    older["action"] = json!("stop");
    let data = json!({"incidents":[older, crate::app::tests_support::incident("g-1", "api", false, None)]});
    a.update(ev(json!({"type":"result","id":id,"payload":{"ok":true,"data":data}})), now);
    let s = screen(&a, 80, 24);
    let expected = [
        (0, "┌ incidents: 2 (1 open) ───────────────────────────────────────────────────────┐"),
        (1, "│› 10:11:12 api runaway   → restart open                                       │"),
        (2, "│  09:00:00 db  repeat    → stop    closed 10:12:00                            │"),
        (4, "┌ evidence: api runaway ───────────────────────────────────────────────────────┐"),
        (5, "│cpu 0.98 cores for 30 s and 97 % of 1,840 lines were \"retry <n> failed\"       │"),
        (7, "│action    restart                                                             │"),
        (8, "│outcome   -                                                                   │"),
        (11, "│cpu       0.97 0.98 0.99 (max 0.99 cores, 3 samples)                          │"),
        (13, "│template  \"retry <n> failed\" ×1,790 of 1,840 lines                            │"),
        (15, "│  retry 1789 failed at 10:11:11                                               │"),
        (23, "esc/! close · ↑↓ select · pgup/pgdn evidence · q quit"),
    ];
    for (row, want) in expected {
        assert_eq!(s[row], want, "row {row}:\n{}", s.join("\n"));
    }
    a.update(Event::Key(Key::Down), now);
    let s = screen(&a, 80, 24);
    assert!(s[4].contains("evidence: db repeat"), "{}", s.join("\n"));
    assert!(s.iter().any(|l| l.contains("outcome   stopped in 0.2 s")));
    assert!(s.iter().any(|l| l.contains("closed 10:12:00 (clear for 30 s)")));
}

#[test]
fn a_v1_server_shows_no_extension() {
    let mut a = app();
    let now = Instant::now();
    a.update(Event::Key(Key::Down), now);
    a.log_rows = super::log_rows(ratatui::layout::Rect::new(0, 0, 80, 24), &a);
    let s = screen(&a, 80, 24);
    assert_eq!(
        s[0],
        "┌ services ──────────┐┌ logs: api (loading) ───────────────────────────────────┐"
    );
    assert!(s[21].starts_with("└"), "no why row: {}", s[21]);
    assert!(s[23].starts_with("q quit · tab focus · ↑↓ move · pgup/pgdn"), "{}", s[23]);
}

fn cockpit_screen(c: &crate::cockpit::Cockpit, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| super::stacks::render(f, c)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

#[test]
fn the_stack_bar_and_a_stopped_stack_at_80x24() {
    use crate::cockpit::tests::{handshake, running, stopped};
    let mut c = crate::cockpit::Cockpit::multi("/run/user/1000/flowlayer".into(), false);
    let now = Instant::now();
    c.update(
        Event::Stacks {
            running: vec![running("blog", "i-1"), running("shop", "i-2")],
            recent: vec![stopped("docs")],
        },
        now,
    );
    handshake(&mut c, 1, &[("api", "ready")]);
    handshake(&mut c, 2, &[("db", "failed"), ("web", "ready")]);
    let s = cockpit_screen(&c, 80, 24);
    assert_eq!(s[0], " 1 blog 1/1   2 shop 1/2 ✗1   3 docs stopped");
    assert_eq!(
        s[3],
        "│  api ready           ││                                                      │"
    );
    assert_eq!(s[22], "● connected");
    assert_eq!(s[23], "q quit · s start all · x stop all · t timeline · ! incidents · [ ] stacks");
    c.update(Event::Key(Key::Char('3')), now);
    let s = cockpit_screen(&c, 80, 24);
    let expected = [
        (1, "┌ stack docs ──────────────────────────────────────────────────────────────────┐"),
        (2, "│stopped                                                                       │"),
        (4, "│config   /stacks/docs/flowlayer.jsonc                                         │"),
        (5, "│stopped  2026-11-27 10:31:02 UTC                                              │"),
        (7, "│s  start it again (flowlayer-server --detach)                                 │"),
        (23, "s start · [ ] 1-9 stacks · q quit"),
    ];
    for (row, want) in expected {
        assert_eq!(s[row], want, "row {row}:\n{}", s.join("\n"));
    }
    c.update(Event::Key(Key::Char('1')), now);
    c.update(Event::Key(Key::Char('X')), now);
    let s = cockpit_screen(&c, 80, 24).join("\n");
    assert!(s.contains("│Stop stack blog? Its server and its 1 service stop."), "{s}");
    assert!(s.contains("│y  stop it        n, esc  keep it running"), "{s}");
}
