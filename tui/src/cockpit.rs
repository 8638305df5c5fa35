//! The stacks the client shows, and which one is on screen (stacks.md §4). Runs
//! on the UI thread; pure like `App::update`: `Cockpit::update(event, now)`
//! changes state and queues `Effect`s (open or close a link, stop or start a
//! stack) that the UI loop carries out.
//!
//! With `-config`/`-addr`, or a config in the current directory, the cockpit
//! holds that one server and draws exactly what the client always drew. With
//! neither it holds every stack of the runtime directory, each with its own
//! link and `App`, behind a stack bar: running stacks by name, then stacks
//! that stopped (from `recent.json`, or seen stopping), which `s` starts again.
//! Only the stack on screen watches stats; every stack keeps its link, so the
//! bar's health stays live.

use crate::app::{App, Flow, Tone};
use crate::event::{Event, LinkState};
use crate::link::{LinkId, Target};
use flowlayer_protocol::Status;
use std::path::PathBuf;
use std::time::Instant;
use termion::event::Key;

/// Stacks in the bar at most (keys `1`-`9`); running ones always show.
pub const BAR_MAX: usize = 9;

/// A running server, as its instance record says (stacks.md §1).
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub name: String,
    /// The config file (canonical): what names a stack across runs.
    pub config: PathBuf,
    pub instance_id: String,
    pub pid: u32,
    pub socket: Option<PathBuf>,
    pub addr: Option<String>,
    pub token: Option<String>,
}

impl Running {
    /// How to reach it: its unix socket (no token needed), else its TCP session.
    pub fn target(&self) -> Option<Target> {
        match (&self.socket, &self.addr) {
            (Some(path), _) => Some(Target::Unix { path: path.clone() }),
            (None, Some(addr)) => {
                Some(Target::Tcp { addr: addr.clone(), token: self.token.clone() })
            }
            (None, None) => None,
        }
    }
}

/// A stack that ran recently and stopped (`recent.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    pub name: String,
    pub config: PathBuf,
    /// RFC 3339 UTC.
    pub stopped_at: String,
}

/// What the UI loop does for the cockpit.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a link to a server; its events come tagged with `link`.
    Connect { link: LinkId, target: Target },
    /// End a link (its stack stopped or was replaced by a new run).
    Close { link: LinkId },
    /// Stop the whole stack: SIGTERM to its server, once the record is checked live.
    Stop(Running),
    /// `flowlayer-server --detach <config>`.
    Start { name: String, config: PathBuf },
    /// Read the runtime directory again: a server went away without a word
    /// (killed), and its record says so only to a reader that checks its pid.
    Rescan,
}

/// One stack's server while it runs: its record, its link, its client state.
pub struct Run {
    pub info: Running,
    pub link: LinkId,
    pub app: App,
}

pub struct Stack {
    pub name: String,
    pub config: PathBuf,
    /// `Some` while it runs.
    pub run: Option<Run>,
    /// When it stopped (`recent.json`), for a stopped stack.
    pub stopped_at: Option<String>,
    /// `s` started it and its record has not appeared yet.
    pub starting: bool,
}

/// A stack's health for the bar: ready/total (services that reached what they
/// start towards, as `flowlayer wait` counts), failed, open incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    pub ready: usize,
    pub total: usize,
    pub failed: usize,
    pub incidents: usize,
}

impl Stack {
    pub fn health(&self) -> Option<Health> {
        let app = &self.run.as_ref()?.app;
        let count = |st: Status| app.services.iter().filter(|s| s.status == st).count();
        Some(Health {
            ready: app.services.iter().filter(|s| s.settled()).count(),
            total: app.services.len(),
            failed: count(Status::Failed),
            incidents: app.incidents.iter().filter(|i| i.closed_at.is_none()).count(),
        })
    }
}

pub struct Cockpit {
    pub stacks: Vec<Stack>,
    pub current: usize,
    /// Several stacks from the runtime directory, with the bar.
    pub multi: bool,
    /// The config of the stack whose stop waits for `y`.
    pub confirm: Option<PathBuf>,
    /// A message about stacks (started, stopped), for the screen of a stopped stack.
    pub notice: Option<(String, Tone)>,
    /// The runtime directory read, for the screen without stacks.
    pub runtime_dir: String,
    pub color: bool,
    /// The first list of stacks has been read.
    pub scanned: bool,
    effects: Vec<Effect>,
    next_link: LinkId,
}

impl Cockpit {
    /// The client of one server, given by flags or a config here: no bar.
    pub fn single(app: App, target: Target) -> Cockpit {
        let info = Running {
            name: String::new(),
            config: PathBuf::new(),
            instance_id: String::new(),
            pid: 0,
            socket: None,
            addr: None,
            token: None,
        };
        let color = app.color;
        let stack = Stack {
            name: String::new(),
            config: PathBuf::new(),
            run: Some(Run { info, link: 0, app }),
            stopped_at: None,
            starting: false,
        };
        Cockpit {
            stacks: vec![stack],
            current: 0,
            multi: false,
            confirm: None,
            notice: None,
            runtime_dir: String::new(),
            color,
            scanned: true,
            effects: vec![Effect::Connect { link: 0, target }],
            next_link: 1,
        }
    }

    /// Every stack of the runtime directory `runtime_dir` (read by the caller
    /// and reported with `Event::Stacks`).
    pub fn multi(runtime_dir: String, color: bool) -> Cockpit {
        Cockpit {
            stacks: Vec::new(),
            current: 0,
            multi: true,
            confirm: None,
            notice: None,
            runtime_dir,
            color,
            scanned: false,
            effects: Vec::new(),
            next_link: 1,
        }
    }

    /// What the UI loop is to do, oldest first.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn current_stack(&self) -> Option<&Stack> {
        self.stacks.get(self.current)
    }

    /// The client of the stack on screen, while it runs.
    pub fn app(&self) -> Option<&App> {
        self.current_stack()?.run.as_ref().map(|r| &r.app)
    }

    pub fn app_mut(&mut self) -> Option<&mut App> {
        self.stacks.get_mut(self.current)?.run.as_mut().map(|r| &mut r.app)
    }

    /// Every running stack's client with its link.
    pub fn apps_mut(&mut self) -> impl Iterator<Item = (LinkId, &mut App)> {
        self.stacks.iter_mut().filter_map(|s| s.run.as_mut().map(|r| (r.link, &mut r.app)))
    }

    /// The earliest moment any client needs to wake for.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.stacks.iter().filter_map(|s| s.run.as_ref()?.app.next_deadline(now)).min()
    }

    fn notify(&mut self, text: String, tone: Tone) {
        if let Some(app) = self.app_mut() {
            app.notify(text.clone(), tone.clone());
        }
        self.notice = Some((text, tone));
    }

    /// An event of link `link`: to the client of its stack.
    pub fn update_link(&mut self, link: LinkId, ev: Event, now: Instant) -> Flow {
        let lost = matches!(ev, Event::Link(LinkState::Lost(_) | LinkState::Unreachable(_)));
        let Some(run) =
            self.stacks.iter_mut().filter_map(|s| s.run.as_mut()).find(|r| r.link == link)
        else {
            // A closed link's last words.
            return Flow::Continue;
        };
        let flow = run.app.update(ev, now);
        if lost && self.multi && !self.effects.contains(&Effect::Rescan) {
            self.effects.push(Effect::Rescan);
        }
        flow
    }

    pub fn update(&mut self, ev: Event, now: Instant) -> Flow {
        match ev {
            Event::Key(k) => self.on_key(k, now),
            Event::Stacks { running, recent } => {
                self.on_stacks(running, recent, now);
                Flow::Continue
            }
            Event::StackAction { text, ok } => {
                let tone = if ok { Tone::Good } else { Tone::Bad };
                if !ok {
                    for s in &mut self.stacks {
                        s.starting = false;
                    }
                }
                self.notify(text, tone);
                Flow::Continue
            }
            Event::Quit => Flow::Quit,
            // Every client: one may have a command timing out, a countdown to draw.
            Event::Resize => {
                for s in &mut self.stacks {
                    if let Some(r) = &mut s.run {
                        r.app.update(Event::Resize, now);
                    }
                }
                Flow::Continue
            }
            other => match self.app_mut() {
                Some(app) => app.update(other, now),
                None => Flow::Continue,
            },
        }
    }

    fn on_key(&mut self, key: Key, now: Instant) -> Flow {
        if !self.multi {
            return self.app_mut().map_or(Flow::Continue, |a| a.update(Event::Key(key), now));
        }
        if key == Key::Ctrl('c') {
            return Flow::Quit;
        }
        if let Some(config) = self.confirm.clone() {
            match key {
                Key::Char('y') | Key::Char('Y') => {
                    self.confirm = None;
                    let run = self
                        .stacks
                        .iter()
                        .find(|s| s.config == config)
                        .and_then(|s| s.run.as_ref());
                    if let Some(run) = run {
                        let info = run.info.clone();
                        self.notify(format!("stopping stack {}…", info.name), Tone::Info);
                        self.effects.push(Effect::Stop(info));
                    }
                }
                Key::Char('n') | Key::Char('N') | Key::Esc => self.confirm = None,
                _ => {}
            }
            return Flow::Continue;
        }
        // Keys typed into a filter, or read by a view, are the client's.
        let typing = self.app().is_some_and(|a| a.editing.is_some() || a.info_open);
        if !typing {
            match key {
                Key::Char('[') => return self.switch(self.current as i64 - 1, now),
                Key::Char(']') => return self.switch(self.current as i64 + 1, now),
                Key::Char(c @ '1'..='9') => {
                    let n = c as usize - '1' as usize;
                    if n < self.stacks.len() {
                        return self.switch(n as i64, now);
                    }
                    return Flow::Continue;
                }
                Key::Char('X') if self.app().is_some() => {
                    self.confirm = self.current_stack().map(|s| s.config.clone());
                    return Flow::Continue;
                }
                _ => {}
            }
        }
        let Some(stack) = self.stacks.get_mut(self.current) else {
            return if key == Key::Char('q') { Flow::Quit } else { Flow::Continue };
        };
        match &mut stack.run {
            Some(run) => run.app.update(Event::Key(key), now),
            None => match key {
                Key::Char('q') => Flow::Quit,
                Key::Char('s') if !stack.starting => {
                    stack.starting = true;
                    let (name, config) = (stack.name.clone(), stack.config.clone());
                    self.notify(format!("starting stack {name}…"), Tone::Info);
                    self.effects.push(Effect::Start { name, config });
                    Flow::Continue
                }
                _ => Flow::Continue,
            },
        }
    }

    /// Puts stack `to` (wrapping around) on screen.
    fn switch(&mut self, to: i64, now: Instant) -> Flow {
        let n = self.stacks.len() as i64;
        if n == 0 {
            return Flow::Continue;
        }
        self.current = to.rem_euclid(n) as usize;
        self.show(now);
        Flow::Continue
    }

    /// Only the stack on screen watches stats.
    fn show(&mut self, now: Instant) {
        let current = self.current;
        for (i, s) in self.stacks.iter_mut().enumerate() {
            if let Some(r) = &mut s.run {
                r.app.set_visible(i == current, now);
            }
        }
    }

    /// A new list of stacks from the runtime directory.
    fn on_stacks(&mut self, running: Vec<Running>, recent: Vec<Stopped>, now: Instant) {
        if !self.multi {
            return;
        }
        let first = !self.scanned;
        self.scanned = true;
        let shown = self.current_stack().map(|s| s.config.clone());
        let mut notes: Vec<String> = Vec::new();
        // Stacks that stopped, or run anew under another instance.
        for i in 0..self.stacks.len() {
            let s = &mut self.stacks[i];
            let now_running = running.iter().find(|r| r.config == s.config).cloned();
            let same = match (&s.run, &now_running) {
                (Some(run), Some(r)) => run.info.instance_id == r.instance_id,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(run) = s.run.take() {
                self.effects.push(Effect::Close { link: run.link });
                if now_running.is_none() {
                    notes.push(format!("stack {} stopped", s.name));
                    s.stopped_at =
                        recent.iter().find(|r| r.config == s.config).map(|r| r.stopped_at.clone());
                }
            }
            if let Some(r) = now_running {
                if s.starting {
                    notes.push(format!("stack {} started", r.name));
                }
                s.name = r.name.clone();
                s.starting = false;
                let run = self.connect(r);
                self.stacks[i].run = Some(run);
            }
        }
        // Stacks new to the list.
        for r in &running {
            if !self.stacks.iter().any(|s| s.config == r.config) {
                if !first {
                    notes.push(format!("stack {} started", r.name));
                }
                let run = self.connect(r.clone());
                self.stacks.push(Stack {
                    name: r.name.clone(),
                    config: r.config.clone(),
                    run: Some(run),
                    stopped_at: None,
                    starting: false,
                });
            }
        }
        for r in &recent {
            let room = self.stacks.len() < BAR_MAX;
            if room && !self.stacks.iter().any(|s| s.config == r.config) {
                self.stacks.push(Stack {
                    name: r.name.clone(),
                    config: r.config.clone(),
                    run: None,
                    stopped_at: Some(r.stopped_at.clone()),
                    starting: false,
                });
            }
        }
        // Running stacks first, by name; then stopped ones, the latest stop first.
        self.stacks.sort_by(|a, b| {
            let key = |s: &Stack| (s.run.is_none(), s.name.clone());
            match (a.run.is_none(), b.run.is_none()) {
                (true, true) => b.stopped_at.cmp(&a.stopped_at).then(a.name.cmp(&b.name)),
                _ => key(a).cmp(&key(b)),
            }
        });
        // Past the bar's room, stopped stacks other than the one on screen go.
        while self.stacks.len() > BAR_MAX {
            let Some(at) = self
                .stacks
                .iter()
                .rposition(|s| s.run.is_none() && Some(&s.config) != shown.as_ref())
            else {
                break;
            };
            self.stacks.remove(at);
        }
        self.current =
            shown.and_then(|c| self.stacks.iter().position(|s| s.config == c)).unwrap_or(0);
        self.show(now);
        if let Some(text) = notes.pop() {
            self.notify(text, Tone::Info);
        }
    }

    /// A new link and client for a running stack.
    fn connect(&mut self, info: Running) -> Run {
        let link = self.next_link;
        self.next_link += 1;
        let shown = match (&info.socket, &info.addr) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(a)) => a.clone(),
            (None, None) => "-".into(),
        };
        let mut app = App::new(shown, info.token.clone(), self.color);
        app.multi = true;
        app.set_visible(false, Instant::now());
        match info.target() {
            Some(target) => self.effects.push(Effect::Connect { link, target }),
            None => app.notify("this stack has no session API".into(), Tone::Bad),
        }
        Run { info, link, app }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::app::tests_support::EXTENDED;
    use serde_json::json;

    pub(crate) fn running(name: &str, instance: &str) -> Running {
        Running {
            name: name.into(),
            config: format!("/stacks/{name}/flowlayer.jsonc").into(),
            instance_id: instance.into(),
            pid: 4242,
            socket: Some(format!("/run/fl/{instance}.sock").into()),
            addr: None,
            token: None,
        }
    }

    pub(crate) fn stopped(name: &str) -> Stopped {
        Stopped {
            name: name.into(),
            config: format!("/stacks/{name}/flowlayer.jsonc").into(),
            stopped_at: "2026-11-27T10:31:02.000Z".into(),
        }
    }

    fn key(c: &mut Cockpit, k: Key) {
        c.update(Event::Key(k), Instant::now());
    }

    /// Feeds link `link` a handshake with a server serving every extension,
    /// with `services` (name, status).
    pub(crate) fn handshake(c: &mut Cockpit, link: LinkId, services: &[(&str, &str)]) {
        let now = Instant::now();
        let ev = |v| Event::Server(serde_json::from_value(v).unwrap());
        c.update_link(link, Event::Link(LinkState::Connected), now);
        c.update_link(
            link,
            ev(json!({"type":"event","name":"hello","payload":{
            "protocol_version":1,"server":"flowlayer","capabilities":EXTENDED}})),
            now,
        );
        let list: Vec<_> = services.iter().map(|(n, s)| json!({"name":n,"status":s})).collect();
        c.update_link(
            link,
            ev(json!({"type":"event","name":"snapshot","payload":{"services":list}})),
            now,
        );
    }

    fn watching(c: &Cockpit) -> Vec<bool> {
        c.stacks.iter().filter_map(|s| s.run.as_ref()).map(|r| r.app.watching).collect()
    }

    #[test]
    fn every_running_stack_gets_a_link_and_keys_switch_between_them() {
        let mut c = Cockpit::multi("/run/fl".into(), false);
        c.update(
            Event::Stacks {
                running: vec![running("shop", "i-2"), running("blog", "i-1")],
                recent: vec![],
            },
            Instant::now(),
        );
        let fx = c.take_effects();
        assert_eq!(fx.len(), 2);
        assert!(
            matches!(&fx[0], Effect::Connect { target: Target::Unix { path }, .. } if path.ends_with("i-2.sock"))
        );
        let names: Vec<&str> = c.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["blog", "shop"], "by name");
        assert_eq!(c.notice, None, "stacks found at start are no news");
        let (blog, shop) =
            (c.stacks[0].run.as_ref().unwrap().link, c.stacks[1].run.as_ref().unwrap().link);
        handshake(&mut c, blog, &[("api", "ready")]);
        handshake(&mut c, shop, &[("db", "failed"), ("web", "ready")]);
        assert_eq!(watching(&c), [true, false], "only the stack on screen watches stats");
        assert_eq!(
            c.stacks[1].health(),
            Some(Health { ready: 1, total: 2, failed: 1, incidents: 0 })
        );
        key(&mut c, Key::Char(']'));
        assert_eq!((c.current, watching(&c)), (1, vec![false, true]));
        key(&mut c, Key::Char(']'));
        assert_eq!(c.current, 0, "wraps around");
        key(&mut c, Key::Char('2'));
        assert_eq!(c.current, 1);
        key(&mut c, Key::Char('9'));
        assert_eq!(c.current, 1, "no ninth stack");
        key(&mut c, Key::Char('['));
        assert_eq!(c.current, 0);
        // Keys typed into a filter are the filter's.
        key(&mut c, Key::Char('/'));
        key(&mut c, Key::Char(']'));
        assert_eq!((c.current, c.app().unwrap().service_filter.as_str()), (0, "]"));
    }

    #[test]
    fn a_stack_that_stops_stays_stopped_in_the_bar_and_s_starts_it_again() {
        let mut c = Cockpit::multi("/run/fl".into(), false);
        let now = Instant::now();
        c.update(
            Event::Stacks {
                running: vec![running("blog", "i-1"), running("shop", "i-2")],
                recent: vec![],
            },
            now,
        );
        let shop = c.stacks[1].run.as_ref().unwrap().link;
        c.take_effects();
        key(&mut c, Key::Char('2'));
        c.update(
            Event::Stacks { running: vec![running("blog", "i-1")], recent: vec![stopped("shop")] },
            now,
        );
        assert_eq!(c.take_effects(), [Effect::Close { link: shop }]);
        assert_eq!(c.current, 1, "still on screen");
        assert!(c.stacks[1].run.is_none());
        assert_eq!(c.stacks[1].stopped_at.as_deref(), Some("2026-11-27T10:31:02.000Z"));
        assert_eq!(c.notice.as_ref().unwrap().0, "stack shop stopped");
        // Events of the closed link are dropped.
        assert_eq!(
            c.update_link(shop, Event::Link(LinkState::Lost("eof".into())), now),
            Flow::Continue
        );
        key(&mut c, Key::Char('s'));
        let config = PathBuf::from("/stacks/shop/flowlayer.jsonc");
        assert_eq!(c.take_effects(), [Effect::Start { name: "shop".into(), config }]);
        key(&mut c, Key::Char('s'));
        assert!(c.take_effects().is_empty(), "one start at a time");
        c.update(
            Event::Stacks {
                running: vec![running("blog", "i-1"), running("shop", "i-3")],
                recent: vec![],
            },
            now,
        );
        let fx = c.take_effects();
        assert!(
            matches!(&fx[..], [Effect::Connect { target: Target::Unix { path }, .. }] if path.ends_with("i-3.sock"))
        );
        assert_eq!(c.notice.as_ref().unwrap().0, "stack shop started");
        assert!(c.stacks[1].run.is_some() && !c.stacks[1].starting);
        assert!(c.stacks[1].run.as_ref().unwrap().app.is_visible(), "on screen");
    }

    #[test]
    fn a_lost_link_has_the_runtime_directory_read_again() {
        let mut c = Cockpit::multi("/run/fl".into(), false);
        let now = Instant::now();
        c.update(Event::Stacks { running: vec![running("blog", "i-1")], recent: vec![] }, now);
        c.take_effects();
        c.update_link(1, Event::Link(LinkState::Lost("eof".into())), now);
        c.update_link(1, Event::Link(LinkState::Unreachable("refused".into())), now);
        assert_eq!(c.take_effects(), [Effect::Rescan], "once per batch");
    }

    #[test]
    fn stopping_a_whole_stack_asks_first() {
        let mut c = Cockpit::multi("/run/fl".into(), false);
        c.update(
            Event::Stacks { running: vec![running("blog", "i-1")], recent: vec![] },
            Instant::now(),
        );
        c.take_effects();
        key(&mut c, Key::Char('X'));
        assert!(c.confirm.is_some());
        key(&mut c, Key::Char('x'));
        key(&mut c, Key::Char('n'));
        assert!(c.confirm.is_none() && c.take_effects().is_empty(), "x does nothing, n keeps it");
        key(&mut c, Key::Char('X'));
        key(&mut c, Key::Char('y'));
        assert_eq!(c.take_effects(), [Effect::Stop(running("blog", "i-1"))]);
        assert_eq!(c.notice.as_ref().unwrap().0, "stopping stack blog…");
    }

    #[test]
    fn a_new_run_of_a_stack_replaces_its_link() {
        let mut c = Cockpit::multi("/run/fl".into(), false);
        let now = Instant::now();
        c.update(Event::Stacks { running: vec![running("blog", "i-1")], recent: vec![] }, now);
        c.take_effects();
        c.update(Event::Stacks { running: vec![running("blog", "i-9")], recent: vec![] }, now);
        let fx = c.take_effects();
        assert_eq!(fx.len(), 2);
        assert!(matches!(fx[0], Effect::Close { link: 1 }));
        assert!(matches!(fx[1], Effect::Connect { link: 2, .. }));
    }

    #[test]
    fn one_server_by_flags_has_no_bar_and_no_stack_keys() {
        let app = App::new("127.0.0.1:6999".into(), None, false);
        let target = Target::Tcp { addr: "127.0.0.1:6999".into(), token: None };
        let mut c = Cockpit::single(app, target.clone());
        assert_eq!(c.take_effects(), [Effect::Connect { link: 0, target }]);
        key(&mut c, Key::Char('X'));
        key(&mut c, Key::Char(']'));
        assert!(c.confirm.is_none() && c.take_effects().is_empty());
        c.update(
            Event::Stacks { running: vec![running("blog", "i-1")], recent: vec![] },
            Instant::now(),
        );
        assert_eq!(c.stacks.len(), 1);
    }
}
