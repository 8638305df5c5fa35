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
