//! Footer: connection state and the last action's outcome, then key hints.

use super::fg;
use crate::app::{App, Overlay, Tone, INCIDENTS_KEY, TIMELINE_KEY};
use crate::event::LinkState;
use flowlayer_protocol::CommandName;
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

/// The key hints for what is on screen. Against a V1 server they are the V1
/// client's; with extensions, the hints that do not fit `width` are left out,
/// least needed first.
pub fn hints(app: &App, width: usize) -> String {
    if app.editing.is_some() {
        return "type to filter · enter keep · esc clear".into();
    }
    match &app.overlay {
        Some(Overlay::Timeline(_)) => {
            return format!("esc/{TIMELINE_KEY} close · ↑↓ pgup/pgdn home/end scroll · q quit")
        }
        Some(Overlay::Incidents(_)) => {
            return format!("esc/{INCIDENTS_KEY} close · ↑↓ select · pgup/pgdn evidence · q quit")
        }
        None => {}
    }
    let timeline = app.serves(CommandName::GetTimeline);
    let incidents = app.serves(CommandName::GetIncidents);
    let all = app.selected.is_none();
    if !timeline && !incidents && !app.multi {
        return if all {
            "q quit · tab focus · ↑↓ move · / filter · s start all · x stop all · i info"
        } else {
            "q quit · tab focus · ↑↓ move · pgup/pgdn · / filter · s start/restart · x stop · i info"
        }
        .into();
    }
    let t = format!("{TIMELINE_KEY} timeline");
    let n = format!("{INCIDENTS_KEY} incidents");
    // (hint, rank): the higher the rank, the sooner it gives way.
    let mut items: Vec<(&str, u8)> = vec![("q quit", 0), ("tab focus", 5), ("↑↓ move", 4)];
    if !all {
        items.push(("pgup/pgdn", 6));
    }
    items.push(("/ filter", 3));
    if all {
        items.extend([("s start all", 1), ("x stop all", 1)]);
    } else {
        items.extend([("s start/restart", 1), ("x stop", 1)]);
    }
    if timeline {
        items.push((&t, 2));
    }
    if incidents {
        items.push((&n, 2));
    }
    if app.multi {
        items.extend([("[ ] stacks", 2), ("X stop stack", 3)]);
    }
    items.push(("i info", 3));
    let join = |items: &[(&str, u8)]| items.iter().map(|(h, _)| *h).collect::<Vec<_>>().join(" · ");
    while join(&items).chars().count() > width {
        let Some(worst) = items.iter().map(|(_, r)| *r).max().filter(|r| *r > 0) else { break };
        let at = items.iter().rposition(|(_, r)| *r == worst).expect("the rank came from a hint");
        items.remove(at);
    }
    join(&items)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let (link, color) = link_text(app);
    let mut first = vec![Span::styled(format!("● {link} "), fg(app, color))];
    if !app.multi {
        first.push(Span::styled(format!("{} ", app.addr), fg(app, Color::DarkGray)));
    }
    if let Some((text, tone)) = &app.footer {
        let c = match tone {
            Tone::Good => Color::Green,
            Tone::Bad => Color::Red,
            Tone::Info => Color::Yellow,
        };
        first.push(Span::styled(format!("│ {text}"), fg(app, c)));
    }
    let hints = hints(app, area.width as usize);
    let lines = vec![Line::from(first), Line::styled(hints, fg(app, Color::DarkGray))];
    frame.render_widget(Paragraph::new(lines), area);
}
