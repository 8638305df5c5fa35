//! flowlayer-client-tui: parse the command line, set up the terminal (restored on
//! exit and on panic), start the input, signal and link threads, then run the UI
//! loop: wait for an event, drain pending ones into `App::update` (keys first,
//! server events for at most one frame's time), draw once.

mod app;
mod cli;
mod config;
mod event;
mod input;
mod link;
mod ui;

use app::{App, Flow};
use crossbeam_channel::Receiver;
use event::Event;
use ratatui::backend::TermionBackend;
use ratatui::Terminal;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use termion::raw::IntoRawMode;
use termion::screen::IntoAlternateScreen;

const DEFAULT_ADDR: &str = "127.0.0.1:6999";
/// Leave the alternate screen, show the cursor (also written by the panic hook).
const RESTORE: &str = "\x1b[?1049l\x1b[?25h";

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => return usage_error(&e.to_string()),
    };
    if args.help {
        print!("{}", cli::help_text());
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("flowlayer-client-tui {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let from_config = match &args.config {
        Some(p) => match config::read(p) {
            Ok(s) => s,
            Err(e) => return usage_error(&e),
        },
        None => config::Session::default(),
    };
    let addr = args.addr.or(from_config.addr).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let token = args.token.or(from_config.token);
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    match run(App::new(addr, token, color)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("Error: {msg}\n");
    eprint!("{}", cli::help_text());
    ExitCode::from(2)
}

/// Server events waiting for the UI thread. Bounded: when the UI cannot keep up
/// with a flood, the link thread stops reading, the server's queue for this
/// session fills, and the server drops log events for it (they stay available
/// through `get_logs`) instead of this process growing.
const LINK_QUEUE: usize = 8192;
/// Longest the UI spends applying server events before it draws and reads keys.
const FRAME_BUDGET: Duration = Duration::from_millis(16);

/// The next event: keys and signals first; `None` when `deadline` passed.
fn next_event(
    input: &Receiver<Event>,
    link: &Receiver<Event>,
    deadline: Option<Instant>,
) -> Option<Event> {
    let timeout = deadline.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
    let got = crossbeam_channel::select_biased! {
        recv(input) -> m => m,
        recv(link) -> m => m,
        recv(timeout) -> _ => return None,
    };
    Some(got.unwrap_or(Event::Quit))
}

fn run(mut app: App) -> std::io::Result<()> {
    let (input_tx, input_rx) = crossbeam_channel::unbounded::<Event>();
    let (link_tx, link_rx) = crossbeam_channel::bounded::<Event>(LINK_QUEUE);
    input::spawn_signals(input_tx.clone())?;
    let link = link::spawn_link(app.addr.clone(), app.token.clone(), link_tx)?;
    let stdout = std::io::stdout().into_raw_mode()?.into_alternate_screen()?;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The raw-mode guard is restored while unwinding; make the message readable now.
        let mut out = std::io::stdout();
        let _ = write!(out, "{RESTORE}\r\n");
        let _ = out.flush();
        default_hook(info);
    }));
    let mut terminal = Terminal::new(TermionBackend::new(stdout))?;
    terminal.hide_cursor()?;
    input::spawn_input(input_tx)?;
    loop {
        app.log_rows = ui::log_rows(terminal.size()?.into(), &app);
        terminal.draw(|f| ui::render(f, &app))?;
        // Sleep until an event, or until the earliest command deadline.
        let mut flow = match next_event(&input_rx, &link_rx, app.next_deadline(Instant::now())) {
            Some(ev) => app.update(ev, Instant::now()),
            None => app.update(Event::Resize, Instant::now()),
        };
        // Drain, then draw once: keys first, then server events for at most one
        // frame's time, so a flood can neither freeze the screen nor the keys.
        let budget = Instant::now() + FRAME_BUDGET;
        while flow == Flow::Continue {
            let ev = match input_rx.try_recv() {
                Ok(ev) => ev,
                Err(_) if Instant::now() >= budget => break,
                Err(_) => match link_rx.try_recv() {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
            };
            flow = app.update(ev, Instant::now());
        }
        for req in app.take_requests() {
            // The writer thread lives as long as the process.
            let _ = link.send(link::Outgoing { id: req.id, frame: req.frame });
        }
        if flow == Flow::Quit {
            break;
        }
    }
    terminal.show_cursor()?;
    Ok(())
}
