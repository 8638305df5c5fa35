//! Reading process trees from /proc: a service's CPU time, resident memory and
//! process count over every process of its tree (health.md section 2).
//!
//! Runs on whichever thread asks (the `sampler` thread, a `metrics` thread
//! answering `/metrics`), never on the state thread: it is file I/O. A `Reader`
//! owns its buffers and the files a periodic reading keeps open, and is used
//! by one thread at a time (behind the meter's lock).
//!
//! The tree is walked from the service's main process down through the
//! kernel's `task/<tid>/children` lists, so a descendant that called `setsid`
//! (left the group and the session) is still found. Every process is checked
//! on the way: it must still be the child of the process it was listed under
//! (its pid was not reused meanwhile) and belong to this user; one that
//! vanished between two reads is skipped, a zombie counts its CPU time and
//! nothing else. Nothing here fails: what cannot be read is not counted.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Most processes counted in one tree: a fork bomb costs a bounded read.
pub const MAX_TREE: usize = 4096;
/// Room for one read of a /proc file: a `stat` line is a few hundred bytes.
const READ_ROOM: usize = 4096;
/// Most processes whose files a periodic sampler keeps open (two descriptors
/// each): a big tree costs the opens beyond these, not the server's file
/// descriptor limit.
pub const MAX_KEPT: usize = 256;

/// The fields of `/proc/<pid>/stat` a reading needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `Z`, ...
    pub state: u8,
    pub ppid: u32,
    pub pgrp: u32,
    /// User and system CPU time, its own and of its reaped children (ticks).
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
    pub threads: u32,
    /// When it started, in ticks since boot: with the pid, its identity.
    pub start: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

impl ProcStat {
    /// CPU ticks of this process and of the children it reaped.
    pub fn ticks(&self) -> u64 {
        self.utime + self.stime + self.cutime + self.cstime
    }

    pub fn zombie(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let close = text.iter().rposition(|b| *b == b')')?;
    let mut f = text.get(close + 2..)?.split(|b| *b == b' ');
    // After the name: state is field 3; the numbers are fields 4 onwards.
    let state = *f.next()?.first()?;
    let mut nums = [0u64; 21];
    for n in nums.iter_mut() {
        *n = parse_u64(f.next()?)?;
    }
    // Field k (1-based, k >= 4) is nums[k - 4].
    let at = |k: usize| nums[k - 4];
    Some(ProcStat {
        state,
        ppid: at(4) as u32,
        pgrp: at(5) as u32,
        utime: at(14),
        stime: at(15),
        cutime: at(16),
        cstime: at(17),
        threads: at(20) as u32,
        start: at(22),
        rss_pages: at(24),
    })
}

/// A decimal that may be negative in the file (`-1`): read as 0.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.first() == Some(&b'-') {
        return Some(0);
    }
    std::str::from_utf8(s).ok()?.trim_end().parse().ok()
}

/// What one tree held at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TreeReading {
    /// The main process's start (ticks since boot): a reused pid has another.
    pub root_start: u64,
    /// CPU ticks of the live processes and of the children they reaped.
    pub ticks: u64,
    pub rss_bytes: u64,
    /// Live processes (zombies not counted).
    pub processes: u32,
    /// Every process found, with its start: `(pid, start)`.
    pub members: Vec<(u32, u64)>,
}

/// Facts about this machine the readings need.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub ticks_per_sec: u64,
    pub page_size: u64,
    pub uid: u32,
}

impl Machine {
    pub fn get() -> Machine {
        use nix::unistd::{sysconf, SysconfVar};
        let conf = |v, default: u64| {
            sysconf(v).ok().flatten().filter(|n| *n > 0).map(|n| n as u64).unwrap_or(default)
        };
        Machine {
            ticks_per_sec: conf(SysconfVar::CLK_TCK, 100),
            page_size: conf(SysconfVar::PAGE_SIZE, 4096),
            uid: nix::unistd::geteuid().as_raw(),
        }
    }
}

/// A process's files a periodic sampler keeps open between samples: reading
/// an open /proc file again costs one system call, opening it four (a path
/// walk, the owner check, the read, the close), and a sample is mostly that.
struct Kept {
    stat: File,
    /// Its main thread's `children` list, once read.
    children: Option<File>,
    /// Read in the current sample (the others are closed after it).
    seen: bool,
}

/// Reads processes from /proc, reusing its buffers.
pub struct Reader {
    pub machine: Machine,
    buf: Vec<u8>,
    kids: Vec<u32>,
    /// Files kept open, by pid, while `keep` (at most `MAX_KEPT`).
    kept: HashMap<u32, Kept>,
    keep: bool,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::with(Machine::get())
    }

    pub fn with(machine: Machine) -> Reader {
        Reader {
            machine,
            buf: Vec::with_capacity(1024),
            kids: Vec::new(),
            kept: HashMap::new(),
            keep: false,
        }
    }

    /// Keep the files of the processes read open between readings (while
    /// something samples periodically), or close them all.
    pub fn keep_open(&mut self, keep: bool) {
        self.keep = keep;
        if !keep {
            self.kept.clear();
        }
    }

    /// After a reading: closes the kept files of processes it did not read.
    pub fn sweep(&mut self) {
        self.kept.retain(|_, k| std::mem::take(&mut k.seen));
    }

    /// Files kept open now.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// Opens `path`; `None` when it cannot be (gone, not allowed).
    fn open(path: &str) -> Option<File> {
        File::open(path).ok()
    }

    /// The process's user is this one (the owner of a `/proc/<pid>` file is
    /// the process's user).
    fn ours(&self, f: &File) -> bool {
        f.metadata().ok().map(|m| m.uid()) == Some(self.machine.uid)
    }

    /// Reads all of `f` from its start into `buf`; false when it cannot (the
    /// process is gone). A `stat` file (`record`) is one record, which one
    /// read with room for it takes whole: no second read just to see the end.
    /// Lists (`children`) may come a page at a time, so they are read to the
    /// end; an empty one (a leaf) takes one read.
    fn read_all(buf: &mut Vec<u8>, f: &File, record: bool) -> bool {
        let mut len = 0;
        loop {
            buf.resize(len + READ_ROOM, 0);
            match f.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if record && n < READ_ROOM {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    buf.clear();
                    return false;
                }
            }
        }
        buf.truncate(len);
        true
    }

    /// One process's stat, when it exists and belongs to this user.
    pub fn stat(&mut self, pid: u32) -> Option<ProcStat> {
        if let Some(k) = self.kept.get(&pid) {
            // Kept open, the file still names the process it was opened for:
            // once that one is gone (and its pid perhaps reused), it fails.
            if self.ours(&k.stat) && Self::read_all(&mut self.buf, &k.stat, true) {
                if let Some(st) = parse_stat(&self.buf) {
                    if let Some(k) = self.kept.get_mut(&pid) {
                        k.seen = true;
                    }
                    return Some(st);
                }
            }
            self.kept.remove(&pid);
        }
        let f = Self::open(&format!("/proc/{pid}/stat"))?;
        if !self.ours(&f) || !Self::read_all(&mut self.buf, &f, true) {
            return None;
        }
        let st = parse_stat(&self.buf)?;
        if self.keep && self.kept.len() < MAX_KEPT {
            self.kept.insert(pid, Kept { stat: f, children: None, seen: true });
        }
        Some(st)
    }

    /// Appends the children of `pid` (which has `threads` threads) to `kids`.
    fn children(&mut self, pid: u32, threads: u32) {
        if threads <= 1 {
            self.children_of_task(pid, pid);
            return;
        }
        // A child is listed under the thread that forked it.
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
        let tids: Vec<u32> =
            tasks.flatten().filter_map(|t| t.file_name().to_str()?.parse().ok()).collect();
        for tid in tids {
            self.children_of_task(pid, tid);
        }
    }

    fn children_of_task(&mut self, pid: u32, tid: u32) {
        let path = || format!("/proc/{pid}/task/{tid}/children");
        let read = match self.kept.get_mut(&pid).filter(|_| tid == pid) {
            Some(k) => {
                if k.children.is_none() {
                    k.children = Self::open(&path());
                }
                k.children.as_ref().is_some_and(|f| Self::read_all(&mut self.buf, f, false))
            }
            None => Self::open(&path()).is_some_and(|f| Self::read_all(&mut self.buf, &f, false)),
        };
        if !read {
            return;
        }
        let text = std::str::from_utf8(&self.buf).unwrap_or("");
        self.kids.extend(text.split_ascii_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }

    /// The children of this process's main thread (where orphans a subreaper
    /// adopts are listed), for `Meter` to find members that left a tree.
    pub fn own_children(&mut self) -> Vec<u32> {
        let me = std::process::id();
        self.kids.clear();
        self.children_of_task(me, me);
        std::mem::take(&mut self.kids)
    }

    /// The tree under `root`: `root` must lead its own process group (the
    /// service's main process does). `None` when it is gone or is not ours.
    pub fn tree(&mut self, root: u32) -> Option<TreeReading> {
        let st = self.stat(root)?;
        if st.pgrp != root {
            return None;
        }
        let mut out = TreeReading { root_start: st.start, ..TreeReading::default() };
        self.add_subtree(root, st, &mut out);
        Some(out)
    }

    /// Adds `pid` (whose stat is `st`, already checked) and its descendants.
    pub fn add_subtree(&mut self, pid: u32, st: ProcStat, out: &mut TreeReading) {
        self.count(pid, st, out);
        let mut next = vec![(pid, st.threads)];
        while let Some((parent, threads)) = next.pop() {
            if out.members.len() >= MAX_TREE {
                break;
            }
            self.kids.clear();
            self.children(parent, threads);
            let kids = std::mem::take(&mut self.kids);
            for &kid in &kids {
                let Some(k) = self.stat(kid) else { continue };
                // Listed under `parent` a moment ago: if its parent is another
                // now, the pid was reused (or it was adopted); not ours to count.
                // This also keeps a process from being counted twice.
                if k.ppid != parent {
                    continue;
                }
                self.count(kid, k, out);
                if !k.zombie() {
                    next.push((kid, k.threads));
                }
            }
            self.kids = kids;
        }
    }

    fn count(&self, pid: u32, st: ProcStat, out: &mut TreeReading) {
        out.members.push((pid, st.start));
        out.ticks += st.ticks();
        if !st.zombie() {
            out.processes += 1;
            out.rss_bytes += st.rss_pages * self.machine.page_size;
        }
    }
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

/// The server's own figures for `/metrics` (`process_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OwnFigures {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    /// Unix seconds.
    pub start_time: f64,
    pub open_fds: u64,
}

/// Reads the server's own figures.
pub fn own_figures(r: &mut Reader) -> OwnFigures {
    let m = r.machine;
    let file = Reader::open("/proc/self/stat");
    let read = file.is_some_and(|f| Reader::read_all(&mut r.buf, &f, true));
    let st = read.then(|| parse_stat(&r.buf)).flatten();
    let st = st.unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    OwnFigures {
        cpu_seconds: (st.utime + st.stime) as f64 / m.ticks_per_sec as f64,
        rss_bytes: st.rss_pages * m.page_size,
        start_time: boot_time() + st.start as f64 / m.ticks_per_sec as f64,
        open_fds,
    }
}

/// When the machine booted (Unix seconds; `btime` in /proc/stat), read once.
pub fn boot_time() -> f64 {
    static BOOT: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = b"4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 120 0 0 0 \
            37 11 5 2 20 0 3 0 987654 10485760 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let st = parse_stat(line).unwrap();
        assert_eq!(
            st,
            ProcStat {
                state: b'S',
                ppid: 17,
                pgrp: 4242,
                utime: 37,
                stime: 11,
                cutime: 5,
                cstime: 2,
                threads: 3,
                start: 987654,
                rss_pages: 2560,
            }
        );
        assert_eq!(st.ticks(), 55);
        assert_eq!(parse_stat(b"12 (x) Z 1 12"), None, "a short line is not a reading");
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn this_process_reads_as_a_tree_of_its_own() {
        let mut r = Reader::new();
        let me = std::process::id();
        let st = r.stat(me).expect("own stat");
        assert!(st.threads >= 1 && st.rss_pages > 0);
        // The test binary does not lead its own group: not a service's tree.
        if st.pgrp != me {
            assert_eq!(r.tree(me), None);
        }
        assert_eq!(r.stat(u32::MAX - 1), None, "a pid that does not exist");
        let own = own_figures(&mut r);
        assert!(own.rss_bytes > 0 && own.open_fds > 0 && own.start_time > 1.0e9);
    }
}
