//! The logs panel of the selection: newest at the bottom, following the tail
//! unless the user scrolled up.

use super::{clock, fg, focused, SERVICE_COLORS};
use crate::app::{App, Focus};
use flowlayer_protocol::Stream;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let has_focus = app.focus == Focus::Logs;
    let view = &app.view;
    let which = view.service.as_deref().unwrap_or("all");
    let mut title = format!(" logs: {which} ");
    if view.loading {
        title.push_str("(loading) ");
    } else if view.loading_older {
        title.push_str("(loading older) ");
    }
    if !view.follow {
        title.push_str("[scrolled: end to follow] ");
    }
    let block =
        Block::default().borders(Borders::ALL).title(title).border_style(focused(app, has_focus));
    let filter_row = app.editing == Some(Focus::Logs) || !app.log_filter.is_empty();
    let rows = (area.height as usize).saturating_sub(2 + usize::from(filter_row));
    let list = app.visible_entries();
    let start = app.log_start(list.len());
    let width = app.services.iter().map(|s| s.name.chars().count()).max().unwrap_or(4);
    let index_of = |name: &str| app.services.iter().position(|s| s.name == name).unwrap_or(0);
    let mut lines: Vec<Line> = Vec::with_capacity(rows + 1);
    for e in list.iter().skip(start).take(rows) {
        let mut spans =
            vec![Span::styled(format!("{} ", clock(&e.timestamp)), fg(app, Color::DarkGray))];
        if view.service.is_none() {
            let color = SERVICE_COLORS[index_of(&e.service) % SERVICE_COLORS.len()];
            spans.push(Span::styled(format!("{:width$} ", e.service), fg(app, color)));
        }
        match e.stream {
            Stream::Stderr => spans.push(Span::styled("[stderr] ", fg(app, Color::Red))),
            Stream::System => spans.push(Span::styled("[system] ", fg(app, Color::Yellow))),
            Stream::Stdout => {}
        }
        spans.push(Span::raw(e.message.replace('\t', "    ")));
        lines.push(Line::from(spans));
    }
    if list.is_empty() {
        let text = if view.loading {
            "loading…"
        } else if app.ready {
            "no log lines yet"
        } else {
            ""
        };
        lines.push(Line::styled(text, fg(app, Color::DarkGray)));
    }
    if filter_row {
        while lines.len() < rows {
            lines.push(Line::raw(""));
        }
        let cursor = if app.editing == Some(Focus::Logs) { "▏" } else { "" };
        lines.push(Line::styled(format!("/{}{cursor}", app.log_filter), fg(app, Color::Yellow)));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_is_the_time_of_day_or_blanks() {
        assert_eq!(super::clock("2026-11-27T14:55:21.123Z"), "14:55:21.123");
        assert_eq!(super::clock("bad"), "            ");
    }
}
