//! The timeline view (`t`, health.md §3): the selection's lifecycle entries,
//! newest at the bottom, under its why sentence. Covers the services and logs
//! panels; `esc` or `t` closes it.

use super::{clock, fg, status_color, SERVICE_COLORS};
use crate::app::{App, TimelineView};
use flowlayer_protocol::{Status, TimelineEntry, TimelineKind};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

/// Width of the kind column.
const KIND_WIDTH: usize = 10;

/// A short label for an entry's kind, at most `KIND_WIDTH` characters.
pub fn kind_label(kind: TimelineKind) -> &'static str {
    match kind {
        TimelineKind::Status => "status",
        TimelineKind::Waiting => "waiting",
        TimelineKind::Probe => "probe",
        TimelineKind::Exit => "exit",
        TimelineKind::RestartScheduled => "restart",
        TimelineKind::CrashLoop => "crash loop",
        TimelineKind::StopRequested => "stop",
        TimelineKind::Incident => "incident",
    }
}

fn kind_color(e: &TimelineEntry) -> Color {
    match e.kind {
        TimelineKind::Status => {
            let word = e.details.get("status").and_then(|v| v.as_str()).unwrap_or("");
            let st: Status = serde_json::from_value(word.into()).unwrap_or(Status::Unknown);
            status_color(st)
        }
        TimelineKind::Waiting | TimelineKind::StopRequested => Color::Cyan,
        TimelineKind::Probe | TimelineKind::RestartScheduled => Color::Yellow,
        TimelineKind::Exit | TimelineKind::CrashLoop | TimelineKind::Incident => Color::Red,
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, v: &TimelineView) {
    let which = v.service.as_deref().unwrap_or("all services");
    let mut title = format!(" timeline: {which} ");
    if v.loading {
        title.push_str("(loading) ");
    }
    if v.scroll > 0 {
        title.push_str("[scrolled: end for the newest] ");
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(fg(app, Color::Cyan).add_modifier(Modifier::BOLD));
    let mut lines: Vec<Line> = Vec::new();
    if let Some(why) = &v.why {
        lines.push(Line::from(vec![
            Span::styled("why ", fg(app, Color::DarkGray)),
            Span::styled(why.clone(), Style::default().add_modifier(Modifier::BOLD)),
        ]));
    }
    let rows = (area.height as usize).saturating_sub(2 + lines.len());
    let width = app.services.iter().map(|s| s.name.chars().count()).max().unwrap_or(4);
    let index_of = |name: &str| app.services.iter().position(|s| s.name == name).unwrap_or(0);
    let end = v.entries.len().saturating_sub(v.scroll);
    let start = end.saturating_sub(rows);
    for e in &v.entries[start..end] {
        let mut spans =
            vec![Span::styled(format!("{} ", clock(&e.timestamp)), fg(app, Color::DarkGray))];
        if v.service.is_none() {
            let color = SERVICE_COLORS[index_of(&e.service) % SERVICE_COLORS.len()];
            spans.push(Span::styled(format!("{:width$} ", e.service), fg(app, color)));
        }
        spans.push(Span::styled(
            format!("{:KIND_WIDTH$} ", kind_label(e.kind)),
            fg(app, kind_color(e)),
        ));
        spans.push(Span::raw(e.message.clone()));
        lines.push(Line::from(spans));
    }
    if v.entries.is_empty() {
        let text = if v.loading { "loading…" } else { "no entries yet" };
        lines.push(Line::styled(text, fg(app, Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
