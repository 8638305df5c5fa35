//! Several stacks on this machine (stacks.md §4): whether the client shows
//! every running stack or the one server its flags name; the runtime
//! directory read through `flowlayer-runtime` (records checked live, recent
//! stacks); thread `stacks`, which reads it again on each change (inotify);
//! stopping a whole stack and starting a stopped one again. Runs on the UI
//! thread, except the watcher and `start`, whose `flowlayer-server --detach`
//! runs on a thread of its own until the server has gone to the background.

use crate::cli::CliArgs;
use crate::cockpit::{Running, Stopped};
use crate::event::Event;
use crossbeam_channel::Sender;
use flowlayer_runtime::find::{config_in, server_binary};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Which servers the client shows.
pub enum Mode {
    /// Every stack of the runtime directory (named for the empty screen).
    Several(String),
    /// The stack of the config in the current directory, which runs: over its
    /// control socket.
    Here(Running),
    /// As the flags say, as before.
    Flags,
    /// The config in the current directory, whose stack does not run (or has
    /// no control socket): its address and token, as `-config` would.
    Config(PathBuf),
}

/// No `-config`, `-addr` or `-token`: every running stack, or the one whose
/// config is in the current directory.
pub fn mode(args: &CliArgs) -> Mode {
    if args.config.is_some() || args.addr.is_some() || args.token.is_some() {
        return Mode::Flags;
    }
    let here = std::env::current_dir().ok();
    if let Some(config) = here.as_deref().and_then(config_in) {
        let config = std::fs::canonicalize(&config).unwrap_or(config);
        return match flowlayer_runtime::running().into_iter().find(|r| r.config == config) {
            Some(r) if r.socket.is_some() => Mode::Here(running(r)),
            _ => Mode::Config(config),
        };
    }
    let dir = flowlayer_runtime::runtime_dir()
        .map_or_else(|| "the runtime directory".to_string(), |d| d.display().to_string());
    Mode::Several(dir)
}

fn running(r: flowlayer_runtime::record::Record) -> Running {
    Running {
        name: r.name,
        config: r.config,
        instance_id: r.instance_id,
        pid: r.pid,
        socket: r.socket,
        addr: r.addr,
        token: r.token,
    }
}

/// Starts the stack of `config` again: `flowlayer-server --detach <config>`,
/// which returns once the server runs in the background (or failed to).
/// The outcome comes back as `Event::StackAction`; the stack itself shows up
/// when its record appears.
pub fn start(name: String, config: PathBuf, events: Sender<Event>) {
    let spawned = std::thread::Builder::new().name("start-stack".into()).spawn({
        let events = events.clone();
        let name = name.clone();
        move || {
            let outcome = run_detached(&config);
            let ev = match outcome {
                Ok(()) => {
                    Event::StackAction { text: format!("stack {name}: server started"), ok: true }
                }
                Err(e) => Event::StackAction { text: format!("stack {name}: {e}"), ok: false },
            };
            // The UI may have quit meanwhile.
            let _ = events.send(ev);
        }
    });
    if let Err(e) = spawned {
        let text = format!("stack {name}: cannot start a thread: {e}");
        // The UI thread is the receiver and is running.
        let _ = events.send(Event::StackAction { text, ok: false });
    }
}

fn run_detached(config: &Path) -> Result<(), String> {
    let server = server_binary().ok_or_else(|| {
        "flowlayer-server is neither next to this client nor on the PATH".to_string()
    })?;
    let dir = config.parent().unwrap_or(Path::new("/"));
    let out = Command::new(&server)
        .arg(config)
        .arg("--detach")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let first = first.strip_prefix("Error: ").unwrap_or(first);
    Err(match out.status.code() {
        Some(code) => format!("flowlayer-server exited with {code}: {first}"),
        None => format!("flowlayer-server was killed: {first}"),
    })
}

/// Stops the whole stack: SIGTERM to its server, its normal shutdown, once
/// its record is checked to still be that server (pid and start time: a pid
/// is never signalled on the word of a stale record). The stack turns
/// `stopped` when its record goes.
pub fn stop(info: &Running, events: &Sender<Event>) {
    let live = flowlayer_runtime::running().into_iter().find(|r| r.instance_id == info.instance_id);
    let text = match live {
        None => Some(format!("stack {}: not running any more", info.name)),
        Some(r) => {
            let pid = nix::unistd::Pid::from_raw(r.pid as i32);
            match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
                Ok(()) => None,
                Err(e) => Some(format!("stack {}: cannot stop pid {}: {e}", info.name, r.pid)),
            }
        }
    };
    if let Some(text) = text {
        // The UI thread is the receiver and is running.
        let _ = events.send(Event::StackAction { text, ok: false });
    }
}

/// How often the client looks for a runtime directory while none exists (and
/// so none can be watched): only then does it poll.
const DIR_POLL: Duration = Duration::from_secs(2);

/// Changes in the runtime directory that can change the list of stacks:
/// records and `recent.json` arrive by rename, go by unlink.
fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE_SELF
}

/// The stacks of the runtime directory now: running ones (records whose server
/// is still the one that wrote them; others are removed on the way) and
/// recent stopped ones whose config still exists.
pub fn scan() -> Event {
    let running: Vec<Running> = flowlayer_runtime::running().into_iter().map(running).collect();
    let recent: Vec<Stopped> = flowlayer_runtime::recent()
        .into_iter()
        .filter(|r| r.config.is_file() && !running.iter().any(|s| s.config == r.config))
        .map(|r| Stopped { name: r.name, config: r.config, stopped_at: r.stopped_at })
        .collect();
    Event::Stacks { running, recent }
}

/// Reads the runtime directory again now.
pub fn rescan(events: &Sender<Event>) {
    // The UI thread is the receiver and is running.
    let _ = events.send(scan());
}

/// Thread `stacks`: reads the runtime directory, then again on each change
/// of it (inotify), so stacks that start or stop show at once and nothing
/// runs while nothing changes. Until a runtime directory exists it looks for
/// one every `DIR_POLL`.
pub fn spawn_watch(events: Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new().name("stacks".into()).spawn(move || run_watch(events))?;
    Ok(())
}

fn run_watch(events: Sender<Event>) {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).ok();
    let mut watched = false;
    loop {
        if !watched {
            if let (Some(ino), Some(dir)) = (&inotify, flowlayer_runtime::runtime_dir()) {
                // The directory the servers would create: made now, it can be watched.
                if flowlayer_runtime::dir::ensure(&dir).is_ok() {
                    watched = ino.add_watch(&dir, watch_flags()).is_ok();
                }
            }
        }
        if events.send(scan()).is_err() {
            return;
        }
        match (&inotify, watched) {
            (Some(ino), true) => loop {
                let Ok(batch) = ino.read_events() else {
                    watched = false;
                    break;
                };
                if batch.iter().any(|e| {
                    e.mask.intersects(AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF)
                }) {
                    watched = false;
                    break;
                }
                // Temporary files, locks, sockets and logs change no list.
                let relevant = batch.iter().any(|e| {
                    e.name.as_ref().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".json"))
                });
                if relevant {
                    break;
                }
            },
            _ => std::thread::sleep(DIR_POLL),
        }
    }
}
