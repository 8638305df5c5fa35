//! The connection info modal (`i`): address, masked token, status, capabilities.

use super::footer::link_text;
use crate::app::App;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// Shows enough of a token to recognise it, never enough to use it.
pub fn mask(token: &str) -> String {
    let n = token.chars().count();
    if n <= 6 {
        return "•".repeat(n.max(4));
    }
    let head: String = token.chars().take(3).collect();
    let tail: String = token.chars().skip(n - 2).collect();
    format!("{head}{}{tail}", "•".repeat(6))
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let [row] = Layout::vertical([Constraint::Length(11)]).flex(Flex::Center).areas(area);
    let [rect] =
        Layout::horizontal([Constraint::Length(area.width.min(64))]).flex(Flex::Center).areas(row);
    let token = app.token.as_deref().map(mask).unwrap_or_else(|| "(none)".into());
    let caps = if app.capabilities.is_empty() { "-".into() } else { app.capabilities.join(", ") };
    let lines = vec![
        Line::raw(format!("address   {}", app.addr)),
        Line::raw(format!("token     {token}")),
        Line::raw(format!("status    {}", link_text(app).0)),
        Line::raw(format!("server    {}", app.server_version.as_deref().unwrap_or("-"))),
        Line::raw(format!("instance  {}", app.instance_id.as_deref().unwrap_or("-"))),
        Line::raw(format!("commands  {caps}")),
        Line::raw(""),
        Line::raw("esc to close"),
    ];
    frame.render_widget(Clear, rect);
    let block = Block::default().borders(Borders::ALL).title(" connection ");
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_masked() {
        assert_eq!(super::mask("fl_0123456789"), "fl_••••••89");
        assert_eq!(super::mask("abc"), "••••");
    }
}
