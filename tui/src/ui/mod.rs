//! Drawing: `render(frame, &App)`, pure over the app state. Runs on the UI thread
//! once per batch of events (drain, then draw).
//!
//! The screen: services and logs side by side, the why line of the selected
//! service under them (when the server serves `get_timeline`), the footer.
//! The timeline and incidents views cover the services and logs panels.

mod footer;
mod incidents;
mod logs;
mod modal;
mod services;
pub mod stacks;
mod timeline;

use crate::app::{App, Overlay};
use flowlayer_protocol::{CommandName, Status};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// Rows taken by the footer.
const FOOTER_ROWS: u16 = 2;

struct Areas {
    /// Services and logs together: what an overlay covers.
    main: Rect,
    services: Rect,
    logs: Rect,
    /// The why line's row, when it is shown.
    why: Option<Rect>,
    footer: Rect,
}

/// The why line shows for a selected service while the panels are on screen.
fn shows_why(app: &App) -> bool {
    app.selected.is_some() && app.overlay.is_none() && app.serves(CommandName::GetTimeline)
}

fn areas(area: Rect, app: &App) -> Areas {
    let why_rows = u16::from(shows_why(app));
    let [main, why, footer] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(why_rows),
        Constraint::Length(FOOTER_ROWS),
    ])
    .areas(area);
    let longest = app.services.iter().map(|s| s.name.chars().count()).max().unwrap_or(8);
    let width = match services::extension_width(app) {
        // What the V1 client has always drawn.
        None => ((longest + 14) as u16).clamp(22, 36),
        Some(right) => ((2 + longest + 1 + right + 2) as u16).clamp(22, 52),
    }
    .min(main.width / 2);
    let [services, logs] =
        Layout::horizontal([Constraint::Length(width), Constraint::Min(10)]).areas(main);
    Areas { main, services, logs, why: (why_rows > 0).then_some(why), footer }
}

/// Text rows of the logs panel for a terminal of `area` (borders and filter line excluded).
pub fn log_rows(area: Rect, app: &App) -> usize {
    let logs = areas(area, app).logs;
    let filter = usize::from(app.editing.is_some() || !app.log_filter.is_empty());
    (logs.height as usize).saturating_sub(2 + filter).max(1)
}

/// The whole screen for one server's client.
pub fn render(frame: &mut Frame, app: &App) {
    render_in(frame, frame.area(), app);
}

/// One server's client in `area` (under the stack bar, with several stacks).
pub fn render_in(frame: &mut Frame, area: Rect, app: &App) {
    let a = areas(area, app);
    match &app.overlay {
        None => {
            services::render(frame, a.services, app);
            logs::render(frame, a.logs, app);
        }
        Some(Overlay::Timeline(v)) => timeline::render(frame, a.main, app, v),
        Some(Overlay::Incidents(v)) => incidents::render(frame, a.main, app, v),
    }
    if let Some(why) = a.why {
        render_why(frame, why, app);
    }
    footer::render(frame, a.footer, app);
    if app.info_open {
        modal::render(frame, area, app);
    }
}

/// `why  api: waiting for db: starting, ...`, coloured by the service's status.
fn render_why(frame: &mut Frame, area: Rect, app: &App) {
    let Some(name) = app.selected.as_deref() else { return };
    let text = app
        .why
        .as_ref()
        .filter(|w| w.service == name)
        .and_then(|w| w.text.as_deref())
        .unwrap_or("…");
    let status = app.services.iter().find(|s| s.name == name).map_or(Status::Unknown, |s| s.status);
    let line = Line::from(vec![
        Span::styled(" why ", fg(app, Color::DarkGray)),
        Span::styled(format!("{name}: "), Style::default().add_modifier(Modifier::BOLD)),
        Span::styled(text.to_string(), fg(app, status_color(status))),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

/// `HH:MM:SS.mmm` from an RFC 3339 timestamp (as sent), or blanks.
pub(crate) fn clock(timestamp: &str) -> &str {
    timestamp.get(11..23).unwrap_or("            ")
}

/// Memory as the services panel writes it.
pub(crate) fn services_mem_text(bytes: u64) -> String {
    services::mem_text(bytes)
}

/// A style, or none at all under `NO_COLOR`.
pub(crate) fn fg(app: &App, color: Color) -> Style {
    if app.color {
        Style::default().fg(color)
    } else {
        Style::default()
    }
}

pub(crate) fn status_color(status: Status) -> Color {
    match status {
        Status::Ready | Status::Running => Color::Green,
        Status::Starting | Status::Stopping => Color::Yellow,
        Status::Failed => Color::Red,
        Status::Stopped | Status::Unknown => Color::DarkGray,
    }
}

pub(crate) fn focused(app: &App, yes: bool) -> Style {
    if yes {
        fg(app, Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        fg(app, Color::DarkGray)
    }
}

pub(crate) const SERVICE_COLORS: [Color; 6] =
    [Color::Cyan, Color::Magenta, Color::Blue, Color::Yellow, Color::Green, Color::LightCyan];

#[cfg(test)]
mod tests;
