//! This server's place among the stacks of the machine (stacks.md section 1),
//! and the crash safety that depends on it.
//!
//! Runs on the main thread: `Instance::claim` at boot, before the Session API
//! binds; `publish` and `write_record` once the session address is known;
//! `arm` right before any service starts; `finish` after the state thread has
//! stopped every service. Claiming takes the config's lock (one server per
//! config), starts the watchdog process (on a thread, so its `exec` overlaps
//! the rest of boot), removes records of servers that are gone, kills what a
//! killed previous run of this config left, and gives every service the
//! environment that marks it as this run's. Arming makes the server a child
//! subreaper with its reaper thread and starts the watchdog's feeding thread.
//!
//! `dir`, `record`, `recent` and `localtime` (and `procfs`) are the
//! `flowlayer-runtime` crate: what the `flowlayer` CLI and the terminal client
//! need to find running stacks, with std and serde only.

pub mod groups;
pub mod lock;
// What clients read too lives in the `flowlayer-runtime` crate.
pub use flowlayer_runtime::{dir, localtime, recent, record};

use crate::config::Config;
use crate::logs::{format_timestamp, now_ms};
use crate::procfs;
use crate::supervisor::children;
use crate::watchdog::{self, sweep};
use record::Record;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a second server waits for the record of the server that holds
/// the lock (it writes it right after taking the lock).
const RECORD_WAIT: Duration = Duration::from_secs(1);
/// How long boot waits for the processes of a previous run it killed to be
/// gone (their ports free) before starting services.
const LEFTOVERS_GONE: Duration = Duration::from_secs(2);
/// How long a clean exit waits for the `watchdog` thread to remove its record.
const FEED_FINISH: Duration = Duration::from_secs(1);
/// The longest path a unix socket address holds on Linux: `sun_path` is 108
/// bytes, with the terminating NUL.
const SUN_PATH_MAX: usize = 107;
/// How many killed processes a message lists by name.
const LIST_MAX: usize = 5;

/// Why this server may not run.
#[derive(Debug)]
pub enum ClaimError {
    /// Another live server runs this config; its record when it could be read.
    AlreadyRunning { holder: Option<Box<Record>>, lock: PathBuf },
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::AlreadyRunning { holder: Some(r), .. } => {
                let zone = localtime::local_zone();
                let started = localtime::parse_rfc3339_ms(&r.started_at)
                    .map(|ms| localtime::clock_label(&zone, ms, now_ms()))
                    .unwrap_or_else(|| r.started_at.clone());
                write!(f, "this stack is already running (pid {}, started {started}", r.pid)?;
                if let Some(a) = &r.addr {
                    write!(f, ", {a}")?;
                }
                write!(f, ")")
            }
            ClaimError::AlreadyRunning { holder: None, lock } => {
                write!(f, "this stack is already running (another server holds {})", lock.display())
            }
        }
    }
}

/// Where this server is recorded: the runtime directory, the config's key, and
/// the lock, held as long as this value lives.
struct Place {
    dir: PathBuf,
    key: String,
    _lock: File,
}

/// This server's run of its config.
pub struct Instance {
    /// The instance id: names the record, marks the services, goes in `hello`.
    pub id: String,
    record: Record,
    place: Option<Place>,
    watchdog: Option<u32>,
    /// The watchdog being started on a thread of its own (`arm` joins it).
    starting: Option<JoinHandle<std::io::Result<Child>>>,
    /// The write end of the watchdog's pipe: closed when this process ends.
    pipe: Option<ChildStdin>,
}

impl Instance {
    /// Claims the config for this server (see the module header). Prints its
    /// boot lines (warnings, leftovers killed) itself.
    pub fn claim(cfg: &mut Config) -> Result<Instance, ClaimError> {
        let config = std::fs::canonicalize(&cfg.path)
            .or_else(|_| std::path::absolute(&cfg.path))
            .unwrap_or_else(|_| cfg.path.clone());
        let id = crate::token::uuid_v4()
            .unwrap_or_else(|_| format!("pid{}-{}", std::process::id(), now_ms()));
        let record = Record {
            name: cfg.name.clone(),
            dir: config.parent().map(Path::to_path_buf).unwrap_or_default(),
            config,
            pid: std::process::id(),
            started_at: format_timestamp(now_ms()),
            instance_id: id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            socket: None,
            addr: None,
            token: None,
            pid_start: procfs::own_start(),
            boot_id: procfs::boot_id(),
        };
        let mut inst =
            Instance { id, record, place: None, watchdog: None, starting: None, pipe: None };
        inst.place = inst.take_place()?;
        let wid = inst.id.clone();
        let groups = inst.place.as_ref().map(|p| groups::path(&p.dir, &p.key));
        inst.starting = std::thread::Builder::new()
            .name("watchdog-spawn".into())
            .spawn(move || watchdog::spawn(&wid, groups.as_deref()))
            .ok();
        if let Some(p) = &inst.place {
            // Records of servers that are gone are removed by reading them.
            record::live(&p.dir);
            kill_leftovers(&p.dir, &p.key, &inst.id);
        }
        let marks = [
            (watchdog::MARKER_VAR, inst.id.clone()),
            ("FLOWLAYER_CONFIG", inst.record.config.display().to_string()),
        ];
        for svc in &mut cfg.services {
            // Last, so they win over a service's own `env`.
            svc.env.extend(marks.iter().map(|(k, v)| (k.to_string(), v.clone())));
            svc.env.push(("FLOWLAYER_SERVICE".into(), svc.name.clone()));
        }
        Ok(inst)
    }

    /// The first usable runtime directory with this config's lock, or `None`
    /// (said once) when no directory can be used.
    fn take_place(&self) -> Result<Option<Place>, ClaimError> {
        let key = lock::config_key(&self.record.config);
        let (dirs, mut problems) = dir::candidates();
        let mut problems: Vec<String> = problems.drain(..).map(|e| e.to_string()).collect();
        for d in dirs {
            if let Err(e) = dir::ensure(&d) {
                problems.push(e.to_string());
                continue;
            }
            match lock::try_claim(&d, &key) {
                Ok(lock::Claim::Held(file)) => return Ok(Some(Place { dir: d, key, _lock: file })),
                Ok(lock::Claim::Taken) => return Err(self.already_running(&d, &key)),
                Err(e) => problems.push(format!("{}: {e}", lock::lock_path(&d, &key).display())),
            }
        }
        println!(
            "[flowlayer] boot: warning: no usable runtime directory ({}): this stack is not \
             listed for other tools, and a second server on this config is not refused",
            problems.join("; ")
        );
        Ok(None)
    }

    /// The lock is taken: find the record of the server that holds it.
    fn already_running(&self, dir: &Path, key: &str) -> ClaimError {
        let deadline = Instant::now() + RECORD_WAIT;
        loop {
            let holder = record::live(dir).into_iter().find(|r| r.config == self.record.config);
            if holder.is_some() || Instant::now() >= deadline {
                return ClaimError::AlreadyRunning {
                    holder: holder.map(Box::new),
                    lock: lock::lock_path(dir, key),
                };
            }
            // The holder writes its record right after taking the lock.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Writes the record, once the session address is known (a second server
    /// on this config waits for it, and names the address).
    pub fn write_record(&self) {
        let Some(p) = &self.place else { return };
        if let Err(e) = record::write(&p.dir, &self.record) {
            println!(
                "[flowlayer] boot: warning: cannot write {}: {e}: this stack is not listed for \
                 other tools",
                record::path(&p.dir, &self.id).display()
            );
        }
    }

    /// Before any service starts: the watchdog process (started by `claim`),
    /// subreaper and reaper, and the watchdog's feeding thread. The watchdog's
    /// spawn is over before the reaper runs, so the reaper can never take a
    /// status that std's `spawn` waits for.
    pub fn arm(&mut self) {
        let groups_path = self.place.as_ref().map(|p| groups::path(&p.dir, &p.key));
        let spawned = match self.starting.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(std::io::Error::other("spawn panicked"))),
            None => watchdog::spawn(&self.id, groups_path.as_deref()),
        };
        match spawned {
            Ok(mut c) => {
                self.watchdog = Some(c.id());
                self.pipe = c.stdin.take();
                children::watch_over(c.id());
            }
            Err(e) => println!(
                "[flowlayer] boot: warning: cannot start the watchdog ({e}): if the server is \
                 killed, its services will be left running"
            ),
        }
        if let Err(e) = children::start_reaper() {
            println!(
                "[flowlayer] boot: warning: cannot adopt orphaned processes ({e}): a service's \
                 daemonized children may outlive a clean shutdown"
            );
        }
        let head = match (&self.record.pid_start, &self.record.boot_id) {
            (Some(start), Some(boot)) => groups::GroupsRecord {
                config: self.record.config.clone(),
                instance_id: self.id.clone(),
                pid: self.record.pid,
                pid_start: *start,
                boot_id: boot.clone(),
                groups: Vec::new(),
            },
            // Without them a record could not be told from a later run's.
            _ => return,
        };
        let Some(path) = groups_path else { return };
        if let Err(e) = watchdog::spawn_feed(watchdog::GroupsFile { path, head }) {
            println!(
                "[flowlayer] boot: warning: cannot start the watchdog thread ({e}): processes \
                 that clear their environment may outlive a killed server"
            );
        }
    }

    /// Notes the session address and token for the record, once the API listens.
    pub fn publish(&mut self, addr: String, token: String) {
        self.record.addr = Some(addr);
        self.record.token = Some(token);
    }

    /// The stack's name (the config's `name`, else its directory's).
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Where the control socket goes: `<instance_id>.sock` in the runtime
    /// directory; when that path is too long for a unix socket address,
    /// `/tmp/flowlayer-<uid>/` (0700, ours, like the runtime directory);
    /// `None` without a usable directory (said once at boot already).
    pub fn socket_path(&self) -> Option<PathBuf> {
        let p = self.place.as_ref()?;
        let name = format!("{}.sock", self.id);
        let path = p.dir.join(&name);
        if path.as_os_str().len() <= SUN_PATH_MAX {
            return Some(path);
        }
        let uid = procfs::own_uid()?;
        let short = PathBuf::from(format!("/tmp/flowlayer-{uid}"));
        dir::ensure(&short).ok()?;
        Some(short.join(name)).filter(|p| p.as_os_str().len() <= SUN_PATH_MAX)
    }

    /// Notes the control socket for the record, once it listens.
    pub fn publish_socket(&mut self, path: PathBuf) {
        self.record.socket = Some(path);
    }

    /// Where a `--detach`ed server writes its output without `logs.dir`:
    /// `<instance_id>.log` in the runtime directory, else in the temp directory.
    pub fn log_path(&self) -> PathBuf {
        let name = format!("{}.log", self.id);
        match &self.place {
            Some(p) => p.dir.join(name),
            None => std::env::temp_dir().join(format!("flowlayer-{name}")),
        }
    }

    /// Clean exit, every service stopped: kills what outlived its service,
    /// tells the watchdog goodbye, removes the records and notes the stack in
    /// `recent.json`.
    pub fn finish(mut self) {
        let killed = children::kill_orphans(self.watchdog);
        if killed > 0 {
            println!(
                "[flowlayer] shutdown: killed {killed} process(es) that outlived their service"
            );
        }
        watchdog::finish(FEED_FINISH);
        // The goodbye ends the watchdog: the reaper must not take that for a loss.
        children::watch_over(0);
        if let Some(mut pipe) = self.pipe.take() {
            // A watchdog that is gone needs no goodbye.
            let _ = pipe.write_all(b"bye\n");
        }
        if let Some(p) = &self.place {
            let entry = recent::Recent {
                name: self.record.name.clone(),
                config: self.record.config.clone(),
                stopped_at: format_timestamp(now_ms()),
            };
            if let Err(e) = recent::push(&p.dir, entry) {
                eprintln!(
                    "[flowlayer] runtime: cannot update recent.json in {}: {e}",
                    p.dir.display()
                );
            }
        }
        // Drop removes the record.
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(p) = &self.place {
            // Gone already is as good as removed.
            let _ = std::fs::remove_file(record::path(&p.dir, &self.id));
        }
        if let Some(s) = &self.record.socket {
            // The accept thread removes it at shutdown; this covers an exit
            // that never got there.
            let _ = std::fs::remove_file(s);
        }
    }
}

/// Kills what the previous run of this config left (its server and watchdog
/// were both killed, so nothing else did), says so, and waits until it is gone.
fn kill_leftovers(dir: &Path, key: &str, own_id: &str) {
    let path = groups::path(dir, key);
    let Some(old) = groups::read(&path) else {
        // Unreadable is as good as absent: there is nothing to go by.
        let _ = std::fs::remove_file(&path);
        return;
    };
    let same_boot = procfs::boot_id().is_some_and(|b| b == old.boot_id);
    if same_boot && old.instance_id != own_id {
        let run = sweep::Run {
            uid: procfs::own_uid().unwrap_or(u32::MAX),
            since: old.pid_start,
            marker: format!("{}={}", watchdog::MARKER_VAR, old.instance_id).into_bytes(),
            groups: old.groups.iter().map(|g| (g.pgid, g.start)).collect::<BTreeMap<_, _>>(),
            spare: std::process::id(),
        };
        let victims = sweep::sweep(&run);
        if !victims.is_empty() {
            let mut names: Vec<String> = victims
                .iter()
                .take(LIST_MAX)
                .map(|v| format!("pid {} ({})", v.pid, v.cmd))
                .collect();
            if victims.len() > LIST_MAX {
                names.push(format!("and {} more", victims.len() - LIST_MAX));
            }
            println!(
                "[flowlayer] boot: the previous run of this stack (server pid {}) was killed and \
                 left {} process(es) running: killed {}",
                old.pid,
                victims.len(),
                names.join(", ")
            );
            let deadline = Instant::now() + LEFTOVERS_GONE;
            while victims.iter().any(|v| procfs::live_start(v.pid).is_some())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    // Its record may be gone already (a reader removed it as stale): fine.
    let _ = std::fs::remove_file(record::path(dir, &old.instance_id));
    // Ours replaces it as soon as a service starts.
    let _ = std::fs::remove_file(&path);
}
