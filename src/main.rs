//! flowlayer-server: wiring only. Parse the command line, load the config, build
//! the plan, start the threads, map outcomes to exit codes (0 clean shutdown,
//! 2 bad command line, config or bind address, 1 anything else fatal).

mod background;
mod bus;
mod cli;
mod config;
mod credit;
mod detach;
mod guard;
mod health;
mod logs;
mod output;
mod plan;
/// `/proc` readers, shared with the clients (`flowlayer-runtime`).
use flowlayer_runtime::procfs;
mod runtime;
mod session;
mod signals;
mod state;
mod supervisor;
mod timer;
mod token;
mod watchdog;
mod wire;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// A `--detach`ed server's output, in `logs.dir` (stacks.md section 2).
const SERVER_LOG: &str = "server.log";

/// A fatal problem before the services start; `main` prints it and exits.
enum Fatal {
    /// Bad input: `Error: <message>` lines, the help, exit 2.
    Usage(String),
    /// Bad input whose message is clear without the help (bind failure, the
    /// stack already running): exit 2.
    Bind(String),
    /// Anything else: exit 1.
    Other(String),
}

fn main() -> ExitCode {
    // The watchdog process is this binary too (watchdog/process.rs).
    if let Some(code) = watchdog::run_if_requested() {
        return code;
    }
    // So is the server a `--detach` foreground starts (detach.rs).
    let background = detach::is_background();
    match run(background) {
        Ok(code) => code,
        Err(Fatal::Usage(msg)) => {
            for line in msg.lines() {
                eprintln!("Error: {line}");
            }
            eprintln!();
            eprint!("{}", cli::help_text());
            ExitCode::from(2)
        }
        Err(Fatal::Bind(msg)) => {
            eprintln!("Error: {msg}");
            ExitCode::from(2)
        }
        Err(Fatal::Other(msg)) => {
            eprintln!("Error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The environment variable that may hold the session token: unlike `-token`,
/// it is not visible to other users in the process list.
const TOKEN_ENV: &str = "FLOWLAYER_TOKEN";

/// Where the session token came from. Priority: `-token`, then `FLOWLAYER_TOKEN`,
/// then `session.token`, else one is generated (spec/config.md, `session`).
#[derive(Copy, Clone, PartialEq)]
enum TokenFrom {
    Flag,
    Env,
    Config,
    Generated,
}

/// The token the user gave, checked (`token::check`), and where it came from.
fn given_token(
    flag: Option<String>,
    config: Option<&String>,
) -> Result<Option<(String, TokenFrom)>, Fatal> {
    if let Some(t) = flag {
        token::check(&t).map_err(|p| Fatal::Usage(format!("-token: {p}")))?;
        return Ok(Some((t, TokenFrom::Flag)));
    }
    match std::env::var(TOKEN_ENV) {
        Ok(t) => {
            // Set but blank is a mistake (a secret that did not arrive), not "unset".
            token::check(&t).map_err(|p| Fatal::Usage(format!("{TOKEN_ENV}: {p}")))?;
            return Ok(Some((t, TokenFrom::Env)));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Fatal::Usage(format!("{TOKEN_ENV}: the token is not valid UTF-8")));
        }
        Err(std::env::VarError::NotPresent) => {}
    }
    Ok(config.map(|t| (t.clone(), TokenFrom::Config)))
}

fn discover() -> Option<PathBuf> {
    cli::DISCOVERY.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// `background`: this is the server a `--detach` foreground started.
fn run(background: bool) -> Result<ExitCode, Fatal> {
    let args = cli::parse(std::env::args_os().skip(1).collect())
        .map_err(|e| Fatal::Usage(e.to_string()))?;
    match args.action {
        cli::Action::Help => {
            print!("{}", cli::help_text());
            return Ok(ExitCode::SUCCESS);
        }
        cli::Action::Version => {
            println!("{}", cli::version_text());
            return Ok(ExitCode::SUCCESS);
        }
        cli::Action::Run => {}
    }
    if args.detach && !background {
        return Ok(detach::run_foreground());
    }
    if background {
        // Before anything is started: nothing of the stack belongs to the terminal.
        detach::leave_terminal();
    }
    let path = match args.config.clone().or_else(discover) {
        Some(p) => p,
        None if !args.any_args => {
            print!("{}", cli::help_text());
            return Ok(ExitCode::SUCCESS);
        }
        None => {
            return Err(Fatal::Usage(format!(
                "no config file given and none found in the current directory (looked for {})",
                cli::DISCOVERY.join(", ")
            )))
        }
    };
    let color = !args.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    let printer_style = output::Style { color };
    println!("[flowlayer] boot: validating config and graph...");
    let mut cfg = config::load(&path).map_err(|e| Fatal::Usage(e.to_string()))?;
    cfg.path = path;
    let plan = plan::Plan::build(&cfg)
        .map_err(|e| Fatal::Usage(format!("config {}: {e}", cfg.path.display())))?;
    config::create_logs_dir(&cfg).map_err(|e| Fatal::Usage(e.to_string()))?;
    if let Some(b) = &args.bind {
        let bind = config::parse_bind(b).map_err(|e| Fatal::Usage(format!("-s \"{b}\": {e}")))?;
        cfg.session.bind = Some(bind);
    }
    let token = given_token(args.token.clone(), cfg.session.token.as_ref())?;
    // Before the session binds, so a second server on this config is refused
    // as such, and before any service starts.
    let mut instance =
        runtime::Instance::claim(&mut cfg).map_err(|e| Fatal::Bind(e.to_string()))?;
    let cfg = Arc::new(cfg);
    let (producers, bus_rx) = bus::bus();
    let (ctl_tx, ctl_rx) = bus::control();
    let (sig_tx, sig_rx) = bus::signals();
    // Before any service can start: a Ctrl-C from now on is a clean shutdown.
    signals::spawn_signals(sig_tx)
        .map_err(|e| Fatal::Other(format!("cannot handle signals: {e}")))?;

    let session = start_session(&cfg, token, &ctl_tx, &mut instance)?;
    instance.write_record();
    if background {
        let log = match &cfg.logs_dir {
            Some(dir) => dir.join(SERVER_LOG),
            None => instance.log_path(),
        };
        detach::settle(instance.name(), &log)
            .map_err(|e| Fatal::Other(format!("--detach: cannot write {}: {e}", log.display())))?;
    }

    let waves = plan.waves.len();
    println!(
        "[flowlayer] boot: DAG computed — {} node{}, {waves} wave{}",
        cfg.services.len(),
        if cfg.services.len() == 1 { "" } else { "s" },
        if waves == 1 { "" } else { "s" }
    );
    let names: Arc<[String]> = cfg.services.iter().map(|s| s.name.clone()).collect();
    let writer = match &cfg.logs_dir {
        Some(dir) => Some(logs::spawn_writer(dir.clone(), names.clone()).map_err(|e| {
            Fatal::Other(format!("logs.dir {}: cannot start writing to it: {e}", dir.display()))
        })?),
        None => None,
    };
    let log_history = logs::HistoryEnd::read(cfg.logs_dir.as_deref());
    let first_seq = log_history.first_seq(logs::now_ms());
    let store = logs::LogStore::new(cfg.services.len(), logs::DEFAULT_RING_CAPACITY, first_seq)
        .with_earlier_runs(log_history.earlier_runs());
    let other = |e: std::io::Error| Fatal::Other(format!("cannot start a thread: {e}"));
    let timeline = match &cfg.logs_dir {
        Some(dir) => Some(health::spawn_timeline_writer(dir).map_err(other)?),
        None => None,
    };
    let history = load_incidents(&cfg);
    // The file is only written by a guard, or to close what a killed server left open.
    let guarded = cfg.services.iter().any(|s| s.guard.is_some());
    let left_open = history.incidents.iter().any(|i| i.closed_at.is_none());
    let incidents = match &cfg.logs_dir {
        Some(dir) if guarded || left_open => Some(
            logs::spawn_append_writer(
                dir.join("incidents.jsonl"),
                "incident-writer",
                history.needs_newline,
            )
            .map_err(other)?,
        ),
        _ => None,
    };
    let timer = timer::spawn_timer(producers.sender()).map_err(other)?;
    let sampler = health::spawn_sampler(cfg.services.len()).map_err(other)?;
    let printer = output::spawn_printer(names, printer_style).map_err(other)?;
    let mut model = state::Model::new(cfg.clone(), plan, store);
    model.load_incidents(history, logs::now_ms());
    // Two servers started together still spread their restarts differently.
    model.seed_jitter(logs::now_ms() as u64 ^ (u64::from(std::process::id()) << 32));
    let stopper = session.as_ref().map(|s| s.stopper());
    let io = state::Io {
        cfg: cfg.clone(),
        bus: producers,
        timer,
        writer,
        timeline,
        incidents,
        sampler,
        printer,
        on_shutdown: stopper.map(|s| Box::new(move || s.stop()) as Box<dyn FnOnce() + Send>),
    };
    // Crash safety on before the state thread starts the first service.
    instance.arm();
    let state = std::thread::Builder::new()
        .name("state".into())
        .spawn(move || state::run_state(model, io, bus_rx, ctl_rx, sig_rx))
        .map_err(other)?;
    state.join().map_err(|_| Fatal::Other("the state thread panicked".into()))?;
    // Requests still being answered get their grace (server.md section 5).
    if let Some(s) = session {
        s.finish();
    }
    instance.finish();
    Ok(ExitCode::SUCCESS)
}

/// The guard's incident history, `logs.dir/incidents.jsonl` (guard.md section
/// 3): empty without `logs.dir`. A file that cannot be read is reported and
/// the server starts without its history; damaged lines are skipped.
fn load_incidents(cfg: &config::Config) -> guard::History {
    let Some(dir) = &cfg.logs_dir else { return guard::History::default() };
    let path = dir.join("incidents.jsonl");
    match guard::load(&path) {
        Ok(h) => {
            if h.damaged > 0 {
                println!(
                    "[flowlayer] guard: {}: {} damaged line(s) skipped",
                    path.display(),
                    h.damaged
                );
            }
            h
        }
        Err(e) => {
            println!("[flowlayer] guard: cannot read {}: {e}; starting without it", path.display());
            guard::History::default()
        }
    }
}

/// Binds the Session API (before any service starts) and prints how to
/// connect: TCP when `session.bind` is set, and the control socket in the
/// runtime directory whenever there is one. A socket that cannot be bound is
/// said and done without: the stack runs all the same.
fn start_session(
    cfg: &Arc<config::Config>,
    token: Option<(String, TokenFrom)>,
    ctl: &bus::CtlTx,
    instance: &mut runtime::Instance,
) -> Result<Option<session::SessionHandle>, Fatal> {
    let socket = instance.socket_path();
    let Some(bind) = &cfg.session.bind else {
        let Some(path) = socket else { return Ok(None) };
        let listen = session::Listen { tcp: None, socket: Some(&path) };
        return match session::start(listen, ctl.clone(), instance.id.as_str().into()) {
            Ok(handle) => {
                control_socket(instance, &path);
                Ok(Some(handle))
            }
            Err(e) => {
                println!("[flowlayer] boot: warning: {e}: reach this stack over TCP only");
                Ok(None)
            }
        };
    };
    let (token, from) = match token {
        Some(t) => t,
        None => (
            token::generate().map_err(|e| Fatal::Other(format!("token: {e}")))?,
            TokenFrom::Generated,
        ),
    };
    let generated = from == TokenFrom::Generated;
    let access = || session::Access {
        token: token.clone(),
        allowed_origins: cfg.session.allowed_origins.clone(),
    };
    let id: Arc<str> = instance.id.as_str().into();
    let listen = session::Listen { tcp: Some((bind, access())), socket: socket.as_deref() };
    let handle = match session::start(listen, ctl.clone(), id.clone()) {
        Err(e @ session::ListenError::Socket { .. }) => {
            println!("[flowlayer] boot: warning: {e}: reach this stack over TCP only");
            let listen = session::Listen { tcp: Some((bind, access())), socket: None };
            session::start(listen, ctl.clone(), id)
        }
        other => other,
    }
    .map_err(|e| Fatal::Bind(e.to_string()))?;
    let Some(addr) = handle.addr else {
        return Err(Fatal::Other("session API: no address after binding".into()));
    };
    instance.publish(session::dial_addr(&addr), token.clone());
    if generated {
        println!("[flowlayer] boot: session token: {token}");
    }
    println!("[flowlayer] boot: session API: {addr} (/ws, /health)");
    if !bind.is_loopback() {
        println!(
            "[flowlayer] boot: warning: the session API listens on {bind}, reachable from the network"
        );
    }
    if !generated && token::is_short(&token) {
        println!(
            "[flowlayer] boot: warning: the session token is shorter than {} characters: easier to guess",
            token::SHORT_TOKEN
        );
    }
    let dial = session::dial_addr(&addr);
    let connect = "[flowlayer] boot: connect: flowlayer-client-tui";
    match from {
        TokenFrom::Generated => println!("{connect} -addr {dial} -token {token}"),
        // A secret the user gave is never echoed.
        TokenFrom::Flag => println!("{connect} -addr {dial} -token <token>"),
        TokenFrom::Env => println!("{connect} -addr {dial} -token \"${TOKEN_ENV}\""),
        TokenFrom::Config => println!("{connect} -config {}", cfg.path.display()),
    }
    // The token rides in the fragment, which a browser never sends to a server
    // or writes to its logs; a token the user gave is not echoed here either.
    let web = format!("[flowlayer] boot: web: http://{dial}/");
    match from {
        TokenFrom::Generated => println!("{web}#token={}", session::fragment_value(&token)),
        TokenFrom::Flag => println!("{web} (the page asks for the token given with -token)"),
        TokenFrom::Env => println!("{web} (the page asks for the token: ${TOKEN_ENV})"),
        TokenFrom::Config => {
            println!("{web} (the page asks for the token: session.token in {})", cfg.path.display())
        }
    }
    if let Some(path) = &handle.socket {
        control_socket(instance, path);
    }
    Ok(Some(handle))
}

/// Records the control socket and says how to use it.
fn control_socket(instance: &mut runtime::Instance, path: &std::path::Path) {
    instance.publish_socket(path.to_path_buf());
    println!(
        "[flowlayer] boot: control socket: {} (flowlayer -s {} status)",
        path.display(),
        instance.name()
    );
}
