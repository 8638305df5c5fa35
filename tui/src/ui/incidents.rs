//! The incidents view (`!`, guard.md §3): every incident this connection
//! knows, newest first, and under the list the evidence of the selected one
//! (rule, numbers, the repeated template, the last lines, the action and its
//! outcome). Covers the services and logs panels; `esc` or `!` closes it.

use super::fg;
use crate::app::{App, IncidentsView};
use flowlayer_protocol::Incident;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

/// Rows of the list at most; the evidence gets the rest.
const LIST_ROWS: u16 = 6;
/// CPU samples shown in the evidence (the newest).
const SAMPLES_SHOWN: usize = 8;

/// `HH:MM:SS` of an RFC 3339 timestamp, or the text as it is.
fn hms(ts: &str) -> &str {
    ts.get(11..19).unwrap_or(ts)
}

fn bytes(n: u64) -> String {
    super::services_mem_text(n)
}

/// `1,840`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rule's settings as words: `cpu: above 0.3, forMs 1000 · repeat: lines 50`.
pub fn settings(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let nested = map.values().any(Value::is_object);
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| match v {
                    Value::Object(_) => format!("{k}: {}", settings(v)),
                    other => format!("{k} {}", settings(other)),
                })
                .collect();
            parts.join(if nested { " · " } else { ", " })
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The evidence of one incident, as labelled rows.
pub fn evidence_lines(i: &Incident) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let dry = if i.dry_run { " (dry run: nothing was done)" } else { "" };
    rows.push(("rule".into(), i.rule.as_str().into()));
    rows.push(("action".into(), format!("{}{dry}", i.action.as_str())));
    rows.push(("outcome".into(), i.outcome.clone().unwrap_or_else(|| "-".into())));
    let closed = match (&i.closed_at, &i.close_reason) {
        (Some(at), Some(why)) => format!("closed {} ({why})", hms(at)),
        (Some(at), None) => format!("closed {}", hms(at)),
        (None, _) => "open".into(),
    };
    rows.push(("when".into(), format!("opened {} · {closed}", hms(&i.opened_at))));
    let e = &i.evidence;
    if let Some(t) = &e.threshold {
        rows.push(("threshold".into(), settings(t)));
    }
    if let Some(cpu) = e.cpu.as_ref().filter(|c| !c.is_empty()) {
        let max = cpu.iter().cloned().fold(0.0_f64, f64::max);
        let shown: Vec<String> = cpu
            .iter()
            .skip(cpu.len().saturating_sub(SAMPLES_SHOWN))
            .map(|c| format!("{c:.2}"))
            .collect();
        let more = if cpu.len() > SAMPLES_SHOWN { "… " } else { "" };
        rows.push((
            "cpu".into(),
            format!("{more}{} (max {max:.2} cores, {} samples)", shown.join(" "), cpu.len()),
        ));
    }
    if let Some(rss) = e.rss_bytes.as_ref().filter(|r| !r.is_empty()) {
        let (first, last) = (rss[0], rss[rss.len() - 1]);
        rows.push((
            "memory".into(),
            format!("{} → {} ({} samples)", bytes(first), bytes(last), rss.len()),
        ));
    }
    if let Some(t) = &e.template {
        let count = match (e.template_count, e.lines) {
            (Some(c), Some(n)) => format!(" ×{} of {} lines", thousands(c), thousands(n)),
            (Some(c), None) => format!(" ×{}", thousands(c)),
            _ => String::new(),
        };
        rows.push(("template".into(), format!("\"{t}\"{count}")));
    } else if let Some(n) = e.lines {
        rows.push(("lines".into(), thousands(n)));
    }
    if let Some(r) = e.lines_per_sec {
        rows.push(("rate".into(), format!("{} lines/s", thousands(r.round() as u64))));
    }
    if let Some(p) = e.processes.as_ref().filter(|p| !p.is_empty()) {
        let max = p.iter().max().copied().unwrap_or(0);
        rows.push(("processes".into(), format!("{} (max {max})", p[p.len() - 1])));
    }
    rows
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, v: &IncidentsView) {
    let list = app.incidents_newest_first();
    let open = list.iter().filter(|i| i.closed_at.is_none()).count();
    let rows = (list.len() as u16).clamp(1, LIST_ROWS) + 2;
    let [top, bottom] =
        Layout::vertical([Constraint::Length(rows), Constraint::Min(3)]).areas(area);
    let mut title = format!(" incidents: {} ({open} open) ", list.len());
    if v.loading {
        title.push_str("(loading) ");
    }
    let border = fg(app, Color::Cyan).add_modifier(Modifier::BOLD);
    let block = Block::default().borders(Borders::ALL).title(title).border_style(border);
    let width = list.iter().map(|i| i.service.chars().count()).max().unwrap_or(4);
    let visible = (rows - 2) as usize;
    let first = v.selected.saturating_sub(visible - 1);
    let mut lines: Vec<Line> = Vec::new();
    for (n, i) in list.iter().enumerate().skip(first).take(visible) {
        let selected = n == v.selected;
        let marker = if selected { "›" } else { " " };
        let state = match &i.closed_at {
            None => Span::styled("open", fg(app, Color::Red).add_modifier(Modifier::BOLD)),
            Some(at) => Span::styled(format!("closed {}", hms(at)), fg(app, Color::DarkGray)),
        };
        let dry = if i.dry_run { " (dry run)" } else { "" };
        let mut line = Line::from(vec![
            Span::raw(format!("{marker} {} ", hms(&i.opened_at))),
            Span::styled(
                format!("{:width$} ", i.service),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{:9} → {:7}{dry} ", i.rule.as_str(), i.action.as_str())),
            state,
        ]);
        if selected {
            line = line.style(Style::default().add_modifier(Modifier::REVERSED));
        }
        lines.push(line);
    }
    if list.is_empty() {
        let text = if v.loading { "loading…" } else { "no incidents: the guard found nothing" };
        lines.push(Line::styled(text, fg(app, Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(lines).block(block), top);

    let Some(inc) = list.get(v.selected) else {
        let block = Block::default().borders(Borders::ALL).title(" evidence ");
        frame.render_widget(block, bottom);
        return;
    };
    let mut lines: Vec<Line> =
        vec![Line::styled(inc.summary.clone(), Style::default().add_modifier(Modifier::BOLD))];
    for (label, value) in evidence_lines(inc) {
        lines.push(Line::from(vec![
            Span::styled(format!("{label:10}"), fg(app, Color::DarkGray)),
            Span::raw(value),
        ]));
    }
    if let Some(last) = inc.evidence.last_lines.as_ref().filter(|l| !l.is_empty()) {
        lines.push(Line::styled(format!("last {} lines", last.len()), fg(app, Color::DarkGray)));
        for l in last {
            lines.push(Line::raw(format!("  {l}")));
        }
    }
    let title = format!(" evidence: {} {} ", inc.service, inc.rule.as_str());
    let block = Block::default().borders(Borders::ALL).title(title);
    let para = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((v.scroll.min(u16::MAX as usize) as u16, 0));
    frame.render_widget(para, bottom);
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_read_as_words() {
        let t = serde_json::json!({"cpu":{"above":0.3,"forMs":1000},"repeat":{"lines":50}});
        assert_eq!(super::settings(&t), "cpu: above 0.3, forMs 1000 · repeat: lines 50");
        assert_eq!(super::settings(&serde_json::json!({"aboveMb": 2048})), "aboveMb 2048");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::thousands(7), "7");
        assert_eq!(super::thousands(1840), "1,840");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}
