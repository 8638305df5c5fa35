//! Drawing: `render(frame, &App)`, pure over the app state. Runs on the UI thread
//! once per batch of events (drain, then draw).

mod footer;
mod logs;
mod modal;
mod services;

use crate::app::App;
use flowlayer_protocol::Status;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::Frame;

/// Rows taken by the footer.
const FOOTER_ROWS: u16 = 2;

struct Areas {
    services: Rect,
    logs: Rect,
    footer: Rect,
}

fn areas(area: Rect, app: &App) -> Areas {
    let [main, footer] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(FOOTER_ROWS)]).areas(area);
    let longest = app.services.iter().map(|s| s.name.chars().count()).max().unwrap_or(8) as u16;
    let width = (longest + 14).clamp(22, 36).min(main.width / 2);
    let [services, logs] =
        Layout::horizontal([Constraint::Length(width), Constraint::Min(10)]).areas(main);
    Areas { services, logs, footer }
}

/// Text rows of the logs panel for a terminal of `area` (borders and filter line excluded).
pub fn log_rows(area: Rect, app: &App) -> usize {
    let logs = areas(area, app).logs;
    let filter = usize::from(app.editing.is_some() || !app.log_filter.is_empty());
    (logs.height as usize).saturating_sub(2 + filter).max(1)
}

pub fn render(frame: &mut Frame, app: &App) {
    let a = areas(frame.area(), app);
    services::render(frame, a.services, app);
    logs::render(frame, a.logs, app);
    footer::render(frame, a.footer, app);
    if app.info_open {
        modal::render(frame, frame.area(), app);
    }
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
