//! flowlayer-client-tui: parse the command line, set up the terminal (restored on
//! exit and on panic), start the input and signal threads, then run the UI
//! loop: carry out the cockpit's effects (start and end links, stop or start a
//! stack), wait for an event, drain pending ones into `Cockpit::update` (keys
//! first, server events for at most one frame's time), draw once.

mod app;
mod cli;
mod cockpit;
mod config;
mod event;
mod input;
mod link;
mod stacks;
mod ui;

use app::{App, Flow};
use cockpit::{Cockpit, Effect};
use crossbeam_channel::{Receiver, Sender};
use event::Event;
use link::{Link, LinkId, Target};
use ratatui::backend::TermionBackend;
use ratatui::Terminal;
use std::collections::HashMap;
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
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let cockpit = match stacks::mode(&args) {
        stacks::Mode::Several(dir) => Cockpit::multi(dir, color),
        stacks::Mode::Here(stack) => match stack.target() {
            Some(target) => {
                let app = App::new(target.to_string(), None, color);
                Cockpit::single(app, target)
            }
            None => return usage_error("the stack here has no session API"),
        },
        mode @ (stacks::Mode::Flags | stacks::Mode::Config(_)) => {
            let from_config = match (&args.config, mode) {
                (Some(p), _) => match config::read(p) {
                    Ok(s) => s,
                    Err(e) => return usage_error(&e),
                },
                // A config here that cannot be read is not this client's to
                // judge (the server will say): the defaults, as before.
                (None, stacks::Mode::Config(p)) => config::read(&p).unwrap_or_default(),
                (None, _) => config::Session::default(),
            };
            let addr = args.addr.or(from_config.addr).unwrap_or_else(|| DEFAULT_ADDR.to_string());
            let token = args.token.or(from_config.token);
            let target = Target::Tcp { addr: addr.clone(), token: token.clone() };
            Cockpit::single(App::new(addr, token, color), target)
        }
    };
    match run(cockpit) {
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

/// Something for the UI thread: a key, a signal or a stack (`Local`), or what
/// a link heard.
enum Next {
    Local(Event),
    Link(LinkId, Event),
}

/// The next event: keys and signals first; `None` when `deadline` passed.
fn next_event(
    input: &Receiver<Event>,
    link: &Receiver<(LinkId, Event)>,
    deadline: Option<Instant>,
) -> Option<Next> {
    let timeout = deadline.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
    crossbeam_channel::select_biased! {
        recv(input) -> m => Some(Next::Local(m.unwrap_or(Event::Quit))),
        recv(link) -> m => Some(m.map_or(Next::Local(Event::Quit), |(id, ev)| Next::Link(id, ev))),
        recv(timeout) -> _ => None,
    }
}

/// Carries out what the cockpit asked for.
fn apply(
    effects: Vec<Effect>,
    links: &mut HashMap<LinkId, Link>,
    link_tx: &Sender<(LinkId, Event)>,
    local: &Sender<Event>,
) -> std::io::Result<()> {
    for e in effects {
        match e {
            Effect::Connect { link, target } => {
                links.insert(link, link::spawn_link(link, target, link_tx.clone())?);
            }
            Effect::Close { link } => {
                if let Some(l) = links.remove(&link) {
                    l.close();
                }
            }
            Effect::Stop(info) => stacks::stop(&info, local),
            Effect::Start { name, config } => stacks::start(name, config, local.clone()),
            Effect::Rescan => stacks::rescan(local),
        }
    }
    Ok(())
}

fn run(mut cockpit: Cockpit) -> std::io::Result<()> {
    let (input_tx, input_rx) = crossbeam_channel::unbounded::<Event>();
    let (link_tx, link_rx) = crossbeam_channel::bounded::<(LinkId, Event)>(LINK_QUEUE);
    let mut links: HashMap<LinkId, Link> = HashMap::new();
    input::spawn_signals(input_tx.clone())?;
    if cockpit.multi {
        stacks::spawn_watch(input_tx.clone())?;
    }
    apply(cockpit.take_effects(), &mut links, &link_tx, &input_tx)?;
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
    input::spawn_input(input_tx.clone())?;
    loop {
        let area = ui::stacks::app_area(terminal.size()?.into(), &cockpit);
        if let Some(app) = cockpit.app_mut() {
            app.log_rows = ui::log_rows(area, app);
        }
        terminal.draw(|f| ui::stacks::render(f, &cockpit))?;
        // Sleep until an event, or until the earliest deadline.
        let step = |c: &mut Cockpit, next: Next| match next {
            Next::Local(ev) => c.update(ev, Instant::now()),
            Next::Link(id, ev) => c.update_link(id, ev, Instant::now()),
        };
        let mut flow = match next_event(&input_rx, &link_rx, cockpit.next_deadline(Instant::now()))
        {
            Some(next) => step(&mut cockpit, next),
            None => cockpit.update(Event::Resize, Instant::now()),
        };
        // Drain, then draw once: keys first, then server events for at most one
        // frame's time, so a flood can neither freeze the screen nor the keys.
        let budget = Instant::now() + FRAME_BUDGET;
        while flow == Flow::Continue {
            let next = match input_rx.try_recv() {
                Ok(ev) => Next::Local(ev),
                Err(_) if Instant::now() >= budget => break,
                Err(_) => match link_rx.try_recv() {
                    Ok((id, ev)) => Next::Link(id, ev),
                    Err(_) => break,
                },
            };
            flow = step(&mut cockpit, next);
        }
        apply(cockpit.take_effects(), &mut links, &link_tx, &input_tx)?;
        for (id, app) in cockpit.apps_mut() {
            for req in app.take_requests() {
                match links.get(&id) {
                    // The writer thread lives as long as its link.
                    Some(l) => {
                        let _ = l.commands.send(link::Outgoing { id: req.id, frame: req.frame });
                    }
                    None => {
                        app.update(Event::SendFailed { id: req.id }, Instant::now());
                    }
                }
            }
        }
        if flow == Flow::Quit {
            break;
        }
    }
    terminal.show_cursor()?;
    Ok(())
}
