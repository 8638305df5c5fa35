//! Footer: connection state and the last action's outcome, then key hints.

use super::fg;
use crate::app::{App, Tone};
use crate::event::LinkState;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn link_text(app: &App) -> (String, Color) {
    match &app.link {
        LinkState::Connected if app.ready => ("connected".into(), Color::Green),
        LinkState::Connected => ("handshake…".into(), Color::Yellow),
        LinkState::Connecting { attempt: 0 } => ("connecting…".into(), Color::Yellow),
        LinkState::Connecting { attempt } => {
            (format!("connecting… (retry {attempt})"), Color::Yellow)
        }
        LinkState::TokenRequired => ("token required".into(), Color::Red),
        LinkState::InvalidToken => ("invalid token".into(), Color::Red),
        LinkState::Unreachable(e) => (format!("unreachable: {e}"), Color::Red),
        LinkState::Lost(e) => (format!("connection lost: {e}"), Color::Red),
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let (link, color) = link_text(app);
    let mut first = vec![Span::styled(format!("● {link} "), fg(app, color))];
    first.push(Span::styled(format!("{} ", app.addr), fg(app, Color::DarkGray)));
    if let Some((text, tone)) = &app.footer {
        let c = match tone {
            Tone::Good => Color::Green,
            Tone::Bad => Color::Red,
            Tone::Info => Color::Yellow,
        };
        first.push(Span::styled(format!("│ {text}"), fg(app, c)));
    }
    let hints = if app.editing.is_some() {
        "type to filter · enter keep · esc clear"
    } else if app.selected.is_none() {
        "q quit · tab focus · ↑↓ move · / filter · s start all · x stop all · i info"
    } else {
        "q quit · tab focus · ↑↓ move · pgup/pgdn · / filter · s start/restart · x stop · i info"
    };
    let lines = vec![Line::from(first), Line::styled(hints, fg(app, Color::DarkGray))];
    frame.render_widget(Paragraph::new(lines), area);
}
