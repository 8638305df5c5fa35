//! The services panel: `all logs`, then each service with its status badge.
//! Extensions, only when the server sends them: `!` before the badge while a
//! guard incident of the service is open, the restart count (and a pending
//! restart's countdown) after it, and CPU and memory columns while stats are
//! watched.

use super::{fg, focused, status_color};
use crate::app::{App, Focus, Service};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

/// Width of the CPU and memory columns with their separating spaces.
pub const STATS_WIDTH: usize = 11;
/// Room the incident marker needs (`! `).
pub const MARKER_WIDTH: usize = 2;
/// Room a countdown needs at most (` 99s`), so the panel does not shrink each second.
const COUNTDOWN_WIDTH: usize = 4;

/// The widest right-hand part of a row (badge, marker, restarts, columns) when
/// an extension adds to it; `None` when every row is as the V1 client draws it.
pub fn extension_width(app: &App) -> Option<usize> {
    let mut extended = app.watching;
    let widest = app
        .services
        .iter()
        .map(|s| {
            let restarts = s.restarts.filter(|n| *n > 0).map_or(0, |n| 2 + n.to_string().len());
            let countdown = if s.restart_at.is_some() { COUNTDOWN_WIDTH } else { 0 };
            let marker = if app.open_incidents_of(&s.name) > 0 { MARKER_WIDTH } else { 0 };
            extended |= restarts + countdown + marker > 0;
            // `… ` while a command is in flight, as the V1 client also shows.
            let busy = if app.busy.contains(&s.name) { 2 } else { 0 };
            busy + s.status.as_str().len() + restarts + countdown + marker
        })
        .max()
        .unwrap_or(0);
    let stats = if app.watching { STATS_WIDTH } else { 0 };
    extended.then_some(widest + stats)
}

/// CPU as a share of one core (`12%`, `198%`), the way `top` counts.
pub fn cpu_text(cores: f64) -> String {
    format!("{:.0}%", (cores * 100.0).max(0.0))
}

/// Resident memory in binary units, at most 5 characters (`512K`, `45M`, `1.2G`).
pub fn mem_text(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K * K {
        format!("{:.0}K", b / K)
    } else if b < K * K * K {
        format!("{:.0}M", b / (K * K))
    } else {
        format!("{:.1}G", b / (K * K * K))
    }
}

/// ` ↻3`, ` ↻3 12s`, ` ↻ 12s`, or nothing.
pub fn restart_text(app: &App, s: &Service) -> String {
    let count = s.restarts.filter(|n| *n > 0).map(|n| format!(" ↻{n}"));
    match (count, app.restart_countdown(s.restart_at)) {
        (Some(c), Some(left)) => format!("{c} {left}s"),
        (None, Some(left)) => format!(" ↻ {left}s"),
        (Some(c), None) => c,
        (None, None) => String::new(),
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let has_focus = app.focus == Focus::Services;
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(" services ")
        .border_style(focused(app, has_focus));
    if app.watching {
        block = block.title(Line::from("cpu   mem").right_aligned());
    }
    let inner_width = area.width.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    for entry in app.visible_services() {
        let (name, status, selected) = match entry {
            None => ("all logs".to_string(), None, app.selected.is_none()),
            Some(s) => (s.name.clone(), Some(s.status), app.selected.as_deref() == Some(&s.name)),
        };
        let marker = if selected { "›" } else { " " };
        let busy = entry.is_some_and(|s| app.busy.contains(&s.name));
        let alarm = entry.is_some_and(|s| app.open_incidents_of(&s.name) > 0);
        let restart = entry.map(|s| restart_text(app, s)).unwrap_or_default();
        let cols = match entry.and_then(|s| s.stats.as_ref()) {
            Some(st) if app.watching && st.processes > 0 => {
                format!(" {:>4} {:>5}", cpu_text(st.cpu), mem_text(st.rss_bytes))
            }
            _ if app.watching => " ".repeat(STATS_WIDTH),
            _ => String::new(),
        };
        let mut spans = vec![Span::raw(format!("{marker} "))];
        let badge =
            status.map(|s| format!("{}{s}", if busy { "… " } else { "" })).unwrap_or_default();
        let right = badge.chars().count()
            + restart.chars().count()
            + if alarm { MARKER_WIDTH } else { 0 }
            + cols.chars().count();
        let room = inner_width.saturating_sub(2 + right + 1);
        let shown: String = name.chars().take(room).collect();
        let pad = room.saturating_sub(shown.chars().count());
        let name_style =
            if selected { Style::default().add_modifier(Modifier::BOLD) } else { Style::default() };
        spans.push(Span::styled(shown, name_style));
        spans.push(Span::raw(" ".repeat(pad + 1)));
        if alarm {
            spans.push(Span::styled("! ", fg(app, Color::Red).add_modifier(Modifier::BOLD)));
        }
        if let Some(st) = status {
            spans.push(Span::styled(badge, fg(app, status_color(st))));
        }
        if !restart.is_empty() {
            spans.push(Span::styled(restart, fg(app, Color::Yellow)));
        }
        if !cols.is_empty() {
            let hot = entry.and_then(|s| s.stats.as_ref()).is_some_and(|st| st.cpu >= 0.9);
            spans.push(Span::styled(cols, fg(app, if hot { Color::Red } else { Color::Gray })));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fit_their_columns() {
        assert_eq!(cpu_text(0.0), "0%");
        assert_eq!(cpu_text(0.984), "98%");
        assert_eq!(cpu_text(1.5), "150%");
        assert_eq!(mem_text(512 * 1024), "512K");
        assert_eq!(mem_text(45 * 1024 * 1024 + 1), "45M");
        assert_eq!(mem_text(1024 * 1024 * 1024 + 300 * 1024 * 1024), "1.3G");
        assert!(mem_text(1023 * 1024 * 1024).len() <= 5);
    }
}
