//! Several stacks (stacks.md §4): the stack bar on the top row (each stack's
//! number, name and health), the client of the stack on screen under it, the
//! screen of a stopped stack, and the confirmation before a whole stack stops.
//! With one server given by flags there is no bar: the V1 screen, unchanged.

use crate::cockpit::{Cockpit, Stack};
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// Where the client of the stack on screen draws.
pub fn app_area(area: Rect, c: &Cockpit) -> Rect {
    if !c.multi {
        return area;
    }
    let [_, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    rest
}

pub fn render(frame: &mut Frame, c: &Cockpit) {
    let area = frame.area();
    if !c.multi {
        if let Some(app) = c.app() {
            super::render(frame, app);
        }
        return;
    }
    let [bar, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    render_bar(frame, bar, c);
    match c.current_stack() {
        Some(Stack { run: Some(run), .. }) => super::render_in(frame, rest, &run.app),
        Some(stack) => render_stopped(frame, rest, c, stack),
        None => render_empty(frame, rest, c),
    }
    if let Some(config) = &c.confirm {
        if let Some(stack) = c.stacks.iter().find(|s| &s.config == config) {
            render_confirm(frame, area, stack);
        }
    }
}

fn color(c: &Cockpit, color: Color) -> Style {
    if c.color {
        Style::default().fg(color)
    } else {
        Style::default()
    }
}

/// ` 1 shop 3/4 ✗1 !1 ` per stack; the one on screen reversed.
fn render_bar(frame: &mut Frame, area: Rect, c: &Cockpit) {
    let mut spans: Vec<Span> = Vec::new();
    for (i, s) in c.stacks.iter().enumerate() {
        let on = i == c.current;
        let base = if on {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::styled(format!(" {} {} ", i + 1, s.name), base));
        match s.health() {
            Some(h) => {
                let all = h.ready == h.total && h.total > 0;
                let tone = if all { Color::Green } else { Color::Yellow };
                spans.push(Span::styled(
                    format!("{}/{} ", h.ready, h.total),
                    base.patch(color(c, tone)),
                ));
                if h.failed > 0 {
                    spans.push(Span::styled(
                        format!("✗{} ", h.failed),
                        base.patch(color(c, Color::Red)),
                    ));
                }
                if h.incidents > 0 {
                    spans.push(Span::styled(
                        format!("!{} ", h.incidents),
                        base.patch(color(c, Color::Red)),
                    ));
                }
            }
            None if s.starting => {
                spans.push(Span::styled("starting… ", base.patch(color(c, Color::Yellow))))
            }
            None => spans.push(Span::styled("stopped ", base.patch(color(c, Color::DarkGray)))),
        }
        spans.push(Span::raw(" "));
    }
    if c.stacks.is_empty() {
        spans.push(Span::styled(" no stack ", color(c, Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `HH:MM:SS` of an RFC 3339 timestamp, or the text as it is.
fn hms(ts: &str) -> String {
    match (ts.get(0..10), ts.get(11..19)) {
        (Some(day), Some(t)) => format!("{day} {t} UTC"),
        _ => ts.to_string(),
    }
}

fn footer(frame: &mut Frame, area: Rect, c: &Cockpit, hints: &str) {
    let [text, keys] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    if let Some((msg, tone)) = &c.notice {
        let col = match tone {
            crate::app::Tone::Good => Color::Green,
            crate::app::Tone::Bad => Color::Red,
            crate::app::Tone::Info => Color::Yellow,
        };
        frame.render_widget(Paragraph::new(Line::styled(msg.clone(), color(c, col))), text);
    }
    frame.render_widget(
        Paragraph::new(Line::styled(hints.to_string(), color(c, Color::DarkGray))),
        keys,
    );
}

fn render_stopped(frame: &mut Frame, area: Rect, c: &Cockpit, s: &Stack) {
    let [main, foot] = Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
    let state = if s.starting { "starting…".to_string() } else { "stopped".to_string() };
    let mut lines = vec![
        Line::from(vec![Span::styled(state, Style::default().add_modifier(Modifier::BOLD))]),
        Line::raw(""),
        Line::raw(format!("config   {}", s.config.display())),
    ];
    if let Some(at) = &s.stopped_at {
        lines.push(Line::raw(format!("stopped  {}", hms(at))));
    }
    lines.push(Line::raw(""));
    if !s.starting {
        lines.push(Line::raw("s  start it again (flowlayer-server --detach)"));
    }
    let block = Block::default().borders(Borders::ALL).title(format!(" stack {} ", s.name));
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), main);
    footer(frame, foot, c, "s start · [ ] 1-9 stacks · q quit");
}

fn render_empty(frame: &mut Frame, area: Rect, c: &Cockpit) {
    let [main, foot] = Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
    let text = if c.scanned {
        vec![
            Line::raw(format!("no stack is running (looked in {})", c.runtime_dir)),
            Line::raw(""),
            Line::raw("start one with `flowlayer up` or `flowlayer-server --detach <config>`;"),
            Line::raw("it shows here as soon as it runs."),
        ]
    } else {
        vec![Line::raw("looking for running stacks…")]
    };
    let block = Block::default().borders(Borders::ALL).title(" stacks ");
    frame.render_widget(Paragraph::new(text).block(block).wrap(Wrap { trim: false }), main);
    footer(frame, foot, c, "q quit");
}

fn render_confirm(frame: &mut Frame, area: Rect, s: &Stack) {
    let [row] = Layout::vertical([Constraint::Length(7)]).flex(Flex::Center).areas(area);
    let [rect] =
        Layout::horizontal([Constraint::Length(area.width.min(60))]).flex(Flex::Center).areas(row);
    let services = s.health().map_or(0, |h| h.total);
    let lines = vec![
        Line::raw(format!(
            "Stop stack {}? Its server and its {services} service{} stop.",
            s.name,
            if services == 1 { "" } else { "s" }
        )),
        Line::raw(""),
        Line::raw("y  stop it        n, esc  keep it running"),
    ];
    frame.render_widget(Clear, rect);
    let block = Block::default().borders(Borders::ALL).title(" stop stack ");
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc() {
        assert_eq!(super::hms("2026-11-27T10:31:02.123Z"), "2026-11-27 10:31:02 UTC");
        assert_eq!(super::hms("soon"), "soon");
    }
}
