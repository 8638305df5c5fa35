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

/// `text` cut into lines of at most `width` characters, at spaces where it can.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        let used = line.chars().count();
        if used > 0 && used + 1 + word.len() <= width {
            line.push(' ');
        } else if used > 0 {
            lines.push(std::mem::take(&mut line));
        }
        while word.len() > width {
            let rest = word.split_off(width);
            lines.push(word.into_iter().collect());
            word = rest;
        }
        line.extend(word);
    }
    lines.push(line);
    lines
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
    let inner = area.width.saturating_sub(2) as usize;
    let mut head: Vec<Line> = Vec::new();
    if let Some(why) = &v.why {
        for (i, part) in wrap(why, inner.saturating_sub(4)).into_iter().enumerate() {
            let label = if i == 0 { "why " } else { "    " };
            head.push(Line::from(vec![
                Span::styled(label, fg(app, Color::DarkGray)),
                Span::styled(part, Style::default().add_modifier(Modifier::BOLD)),
            ]));
        }
    }
    let rows = (area.height as usize).saturating_sub(2 + head.len());
    let width = app.services.iter().map(|s| s.name.chars().count()).max().unwrap_or(4);
    let index_of = |name: &str| app.services.iter().position(|s| s.name == name).unwrap_or(0);
    let prefix = 13 + KIND_WIDTH + 1 + if v.service.is_none() { width + 1 } else { 0 };
    // From the newest shown entry upwards, until the rows are full; long
    // messages go on under themselves.
    let end = v.entries.len().saturating_sub(v.scroll);
    let mut body: Vec<Line> = Vec::new();
    for e in v.entries[..end].iter().rev() {
        if body.len() >= rows {
            break;
        }
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
        let parts = wrap(&e.message, inner.saturating_sub(prefix));
        let mut entry: Vec<Line> = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            if i == 0 {
                spans.push(Span::raw(part));
                entry.push(Line::from(std::mem::take(&mut spans)));
            } else {
                entry.push(Line::raw(format!("{}{part}", " ".repeat(prefix))));
            }
        }
        body.extend(entry.into_iter().rev());
    }
    body.truncate(rows);
    body.reverse();
    let mut lines = head;
    lines.extend(body);
    if v.entries.is_empty() {
        let text = if v.loading { "loading…" } else { "no entries yet" };
        lines.push(Line::styled(text, fg(app, Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn long_text_wraps_at_spaces_and_long_words_are_cut() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij x", 4), ["abcd", "efgh", "ij x"]);
        assert_eq!(wrap("", 4), [""]);
    }
}
