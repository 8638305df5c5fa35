//! The services panel: `all logs`, then each service with its status badge.

use super::{fg, focused, status_color};
use crate::app::{App, Focus};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let has_focus = app.focus == Focus::Services;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" services ")
        .border_style(focused(app, has_focus));
    let inner_width = area.width.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    for entry in app.visible_services() {
        let (name, status, selected) = match entry {
            None => ("all logs".to_string(), None, app.selected.is_none()),
            Some(s) => (s.name.clone(), Some(s.status), app.selected.as_deref() == Some(&s.name)),
        };
        let marker = if selected { "›" } else { " " };
        let busy = entry.is_some_and(|s| app.busy.contains(&s.name));
        let mut spans = vec![Span::raw(format!("{marker} "))];
        let badge =
            status.map(|s| format!("{}{s}", if busy { "… " } else { "" })).unwrap_or_default();
        let room = inner_width.saturating_sub(2 + badge.chars().count() + 1);
        let shown: String = name.chars().take(room).collect();
        let pad = room.saturating_sub(shown.chars().count());
        let name_style =
            if selected { Style::default().add_modifier(Modifier::BOLD) } else { Style::default() };
        spans.push(Span::styled(shown, name_style));
        spans.push(Span::raw(" ".repeat(pad + 1)));
        if let Some(st) = status {
            spans.push(Span::styled(badge, fg(app, status_color(st))));
        }
        let mut line = Line::from(spans);
        if selected && has_focus {
            line = line.style(Style::default().add_modifier(Modifier::REVERSED));
        }
        lines.push(line);
    }
    if app.editing == Some(Focus::Services) || !app.service_filter.is_empty() {
        let rows = area.height.saturating_sub(2) as usize;
        while lines.len() + 1 < rows {
            lines.push(Line::raw(""));
        }
        let cursor = if app.editing == Some(Focus::Services) { "▏" } else { "" };
        lines.push(Line::styled(
            format!("/{}{cursor}", app.service_filter),
            fg(app, super::Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
