//! Pump threads (`pump:<svc>:<stream>`): one per pipe, reading big chunks, cutting
//! them into lines in place and sending each chunk's complete lines to the state
//! thread as one `Lines` batch (one string plus spans: no allocation per line).
//!
//! A pump only waits on its pipe and on its byte credit. The credit bounds what
//! may wait on the bus, so a state thread that falls behind slows the child down
//! instead of growing memory; nothing behind the state thread (disk, terminal,
//! clients) can block it.
//!
//! A flood is read by a thread of its own, of the same name, that the pump
//! starts at the flood's first big read and waits for; it hands the pipe back
//! after `QUIET` without data. The lines of a flood are allocated in the heap
//! (glibc arena) of the thread that reads them, and glibc keeps a few freed
//! blocks per thread in a cache that only the thread itself empties, by
//! allocating or by ending. One such block at the top of a heap the flood grew
//! keeps all of that heap from going back; a thread that ends takes its cache
//! with it, which is why a oneshot's memory always came back and a daemon
//! that flooded and kept running held ~70 MB. The blocks that get there: when
//! a heap is full (64 MiB), glibc starts another and frees the end of the
//! full one into the cache of the thread that asked; and a block of a pump's
//! heap freed by another thread goes to that thread's cache if it is small
//! (`UNCACHED`).

use crate::bus::{BusTx, Msg, Stream, SvcId};
use crate::credit::Credit;
use crate::logs::Lines;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::time::Duration;

/// Longest line kept whole; longer ones are split (server.md section 6).
pub const MAX_LINE: usize = 64 * 1024;
/// How much one `read` may take from the pipe.
const READ_CHUNK: usize = 256 * 1024;
/// Kernel pipe buffer sizes asked for, largest first, so a bursty child rarely
/// waits on a full pipe while its pump is off the CPU. Unprivileged users may not
/// go past /proc/sys/fs/pipe-max-size (1 MiB by default); the kernel allocates
/// the pages only as data arrives.
pub const PIPE_SIZES: [i32; 3] = [8 * 1024 * 1024, 4 * 1024 * 1024, 1024 * 1024];
/// Bytes of read lines one pump may have waiting for the state thread.
pub const IN_FLIGHT: usize = 8 * 1024 * 1024;
/// A read at least this big means a flood is on: it is read on a thread of
/// its own. And if it still emptied the pipe...
const NAP_AFTER: usize = 16 * 1024;
/// ...the pump sleeps this long before reading again, letting the child's
/// writes pile up in the pipe (1 MiB lasts a child ~1 ms at 1 GB/s). Blocked in
/// `read`, the pump is woken by each of the child's writes, and the kernel moves
/// a thread woken that way onto the writer's CPU: pump and child then take turns
/// on one core while the other idles. W1 with the lines going nowhere else
/// (no `logs.dir`, terminal to /dev/null): 1.14x a plain pipe reader without
/// the nap, 1.00x with it (medians of 6). Idle pipes never nap, nor do pipes
/// the kernel would not grow (a 64 KiB pipe fills during a nap).
const NAP: Duration = Duration::from_micros(200);
/// A flood is over when its pipe has had nothing for this long: its thread
/// ends. Long enough that a service logging in bursts keeps one thread for
/// them; the same wait as the state thread's before it tidies the log rings.
const QUIET: Duration = Duration::from_millis(500);
/// Smallest block glibc does not keep in a thread's cache (its tcache holds
/// blocks up to 1032 bytes). A flood thread's batches get at least this much
/// room, so no block of its heap is small enough to stay in the cache of the
/// state thread or the writer when they free it (four floods at once left
/// 10.3-18.8 MB behind without it, 10.2-10.7 MB with it). The state thread
/// copies such roomy batches into buffers of their own size
/// (`Lines::fitted`), so the room costs nothing once they are stored.
const UNCACHED: usize = 1040;

pub struct Pump<R> {
    pub pipe: R,
    pub svc: SvcId,
    pub stream: Stream,
    pub bus: BusTx,
    pub credit: Credit,
    /// The pipe holds at least 1 MiB, so the pump may nap during a flood.
    pub nap: bool,
}

/// What a pump's reading carries from one thread to the next.
struct Reading {
    buf: Vec<u8>,
    /// Bytes at the start of `buf` that belong to an unfinished line.
    kept: usize,
    /// The last read took all the pipe had.
    emptied: bool,
}

/// Why a stretch of reading ended.
enum Ended {
    /// End of file (or the state thread is gone): the pump is done.
    Eof,
    /// A flood began: go on in a flood thread.
    Flood,
    /// The flood is over: go on in the pump's own thread.
    Quiet,
}

impl<R: Read + AsFd + Send> Pump<R> {
    /// Reads until end of file (or the state thread is gone).
    pub fn run(mut self) {
        let mut r = Reading { buf: vec![0u8; READ_CHUNK + MAX_LINE], kept: 0, emptied: false };
        while let Ended::Flood = self.read(&mut r, false) {
            let name = std::thread::current().name().unwrap_or("pump").to_string();
            let joined = std::thread::scope(|s| {
                std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(s, || self.read(&mut r, true))
                    .map(|flood| flood.join())
            });
            let ended = match joined {
                Ok(Ok(ended)) => ended,
                // Cannot happen (the reading code does not panic); the pipe closes.
                Ok(Err(_)) => Ended::Eof,
                // No thread to be had: the flood is read here.
                Err(_) => self.read(&mut r, true),
            };
            if let Ended::Eof = ended {
                return;
            }
        }
    }

    /// Reads and sends batches until end of file, or (`flood`: on a flood
    /// thread) until the pipe has been quiet for `QUIET`, or (otherwise) until
    /// a read is big enough to be a flood.
    fn read(&mut self, r: &mut Reading, flood: bool) -> Ended {
        let room = if flood { UNCACHED } else { 0 };
        // Where the lines of a read are. Each thread has its own, freed when it
        // is done: one a flood thread grew must not outlive it in its heap.
        // Grown past this only by lines shorter than 64 bytes on average.
        let mut spans = Vec::with_capacity(if flood { READ_CHUNK / 64 } else { 0 });
        loop {
            if flood && r.emptied && !self.ready_within(QUIET) {
                return Ended::Quiet;
            }
            let n = match self.pipe.read(&mut r.buf[r.kept..r.kept + READ_CHUNK]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let (lines, used) = split_lines(&r.buf[..r.kept + n], false, room, &mut spans);
            r.buf.copy_within(used..r.kept + n, 0);
            r.kept = r.kept + n - used;
            if !lines.is_empty() && !self.send(lines) {
                return Ended::Eof;
            }
            r.emptied = n < READ_CHUNK;
            if self.nap && (NAP_AFTER..READ_CHUNK).contains(&n) {
                std::thread::sleep(NAP);
            }
            if !flood && n >= NAP_AFTER {
                return Ended::Flood;
            }
        }
        if r.kept > 0 {
            let (lines, _) = split_lines(&r.buf[..r.kept], true, room, &mut spans);
            r.kept = 0;
            self.send(lines);
        }
        Ended::Eof
    }

    /// Waits up to `limit` for the pipe to have something to read (or to close).
    fn ready_within(&self, limit: Duration) -> bool {
        let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(limit).unwrap_or(PollTimeout::MAX);
        loop {
            match poll(&mut fds, timeout) {
                Ok(0) => return false,
                // A signal handled on this thread: wait again.
                Err(Errno::EINTR) => continue,
                // Another error: the read that follows tells.
                _ => return true,
            }
        }
    }

    /// Sends a batch to the state thread.
    fn send(&self, lines: Lines) -> bool {
        let permit = self.credit.take(lines.text.len());
        self.bus.send(Msg::Lines { svc: self.svc, stream: self.stream, lines, permit }).is_ok()
    }
}

/// Cuts `data` into lines: every line ended by `\n` (a trailing `\r` dropped),
/// pieces of at most `MAX_LINE` bytes of an unfinished one, and, at end of file,
/// the unfinished rest. Returns the lines and how many bytes of `data` they used.
///
/// The spans are found in `scratch` first, so the lines' buffers are allocated
/// once, at their final size but at least `room` bytes each: the thread that
/// reads a flood frees no small block of its own (see the header).
pub fn split_lines(
    data: &[u8],
    eof: bool,
    room: usize,
    scratch: &mut Vec<(u32, u32)>,
) -> (Lines, usize) {
    scratch.clear();
    let spans = scratch;
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', data) {
        let mut end = nl;
        if end > start && data[end - 1] == b'\r' {
            end -= 1;
        }
        push_spans(data, start, end, spans);
        start = nl + 1;
    }
    let mut used = start;
    if eof && used < data.len() {
        push_spans(data, used, data.len(), spans);
        used = data.len();
    } else if data.len() - used > MAX_LINE {
        // An unfinished line may not grow past the cap: emit whole pieces of it now.
        while data.len() - used > MAX_LINE {
            let cut = char_boundary(&data[used..], MAX_LINE);
            spans.push((used as u32, (used + cut) as u32));
            used += cut;
        }
    }
    let region = &data[..used];
    let span_room = (room / std::mem::size_of::<(u32, u32)>()).max(spans.len());
    let mut lines =
        Lines { text: String::with_capacity(room.max(used)), spans: Vec::with_capacity(span_room) };
    match std::str::from_utf8(region) {
        // The usual case: one copy of the whole region, spans stay as they are.
        Ok(text) => {
            lines.text.push_str(text);
            lines.spans.extend_from_slice(spans);
        }
        // Replacement characters may make the text longer (it then regrows).
        Err(_) => spans.iter().for_each(|&(a, b)| lines.push_lossy(&data[a as usize..b as usize])),
    }
    (lines, used)
}

/// Spans for one line, split at `MAX_LINE` bytes on character boundaries.
fn push_spans(data: &[u8], mut start: usize, end: usize, spans: &mut Vec<(u32, u32)>) {
    while end - start > MAX_LINE {
        let cut = char_boundary(&data[start..end], MAX_LINE);
        spans.push((start as u32, (start + cut) as u32));
        start += cut;
    }
    spans.push((start as u32, end as u32));
}

/// Largest cut ≤ `max` that does not fall inside a UTF-8 sequence (when it can).
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    for _ in 0..3 {
        if cut < bytes.len() && cut > 0 && (bytes[cut] & 0xC0) == 0x80 {
            cut -= 1;
        } else {
            break;
        }
    }
    if cut == 0 {
        max.min(bytes.len())
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lines: &Lines) -> Vec<String> {
        (0..lines.len()).map(|i| lines.get(i).to_string()).collect()
    }

    /// How many threads of this process are named `name`.
    fn named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim() == name
            })
            .count()
    }

    #[test]
    fn a_flood_is_read_on_a_thread_that_ends_when_the_pipe_goes_quiet() {
        use std::io::Write;
        // Close-on-exec: a child another test spawns meanwhile must not hold
        // the write end open (the pump would see no end of file).
        let (rx_fd, tx_fd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let _ = nix::fcntl::fcntl(&tx_fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        let (producers, bus) = crate::bus::bus();
        let pump = Pump {
            pipe: std::fs::File::from(rx_fd),
            svc: crate::bus::SvcId(0),
            stream: Stream::Stdout,
            bus: producers.sender(),
            credit: Credit::new(IN_FLIGHT),
            nap: false,
        };
        // The collector below ends when the pump's sender is the last gone.
        drop(producers);
        // The flood thread takes its pump's name.
        let name = format!("pump-t{}", std::process::id() % 100_000);
        let reader =
            std::thread::Builder::new().name(name.clone()).spawn(move || pump.run()).unwrap();
        let mut child = std::fs::File::from(tx_fd);
        let lines = std::thread::Builder::new().name("collect".into()).spawn(move || {
            let mut got = Vec::new();
            while let Ok(crate::bus::Msg::Lines { lines, .. }) = bus.recv() {
                got.extend((0..lines.len()).map(|i| lines.get(i).to_string()));
            }
            got
        });
        let lines = lines.unwrap();
        // A quiet start, with a line cut across the flood's first read.
        child.write_all(b"one\ntw").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let wait = |what: &str, n: usize| {
            while named(&name) != n {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let flood: String = (0..20_000).map(|i| format!("flood {i:05}\n")).collect();
        child.write_all(format!("o\n{flood}").as_bytes()).unwrap();
        wait("a flood thread beside the pump", 2);
        wait("the flood thread gone once the pipe was quiet", 1);
        child.write_all(b"after\nlast").unwrap();
        drop(child);
        reader.join().unwrap();
        let mut expect = vec!["one".to_string(), "two".to_string()];
        expect.extend((0..20_000).map(|i| format!("flood {i:05}")));
        expect.extend(["after".to_string(), "last".to_string()]);
        assert_eq!(lines.join().unwrap(), expect);
    }

    #[test]
    fn complete_lines_are_cut_and_cr_is_dropped() {
        let (lines, used) = split_lines(b"abc\r\nde\n\nf", false, 0, &mut Vec::new());
        assert_eq!(all(&lines), vec!["abc", "de", ""]);
        assert_eq!(used, 9);
        let (lines, used) = split_lines(b"f", true, 0, &mut Vec::new());
        assert_eq!((all(&lines), used), (vec!["f".to_string()], 1));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let (lines, _) = split_lines(b"ok\na\xffb\n", false, 0, &mut Vec::new());
        assert_eq!(all(&lines), vec!["ok", "a\u{fffd}b"]);
    }

    #[test]
    fn long_lines_split_at_64k_on_char_boundaries() {
        let mut line = vec![b'x'; MAX_LINE - 1];
        line.extend_from_slice("é".as_bytes()); // straddles the cap
        line.extend_from_slice(b"yz\n");
        let (lines, _) = split_lines(&line, false, 0, &mut Vec::new());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines.get(0).len(), MAX_LINE - 1);
        assert_eq!(lines.get(1), "éyz");
        let big = vec![b'q'; MAX_LINE * 2 + 10];
        let (lines, used) = split_lines(&big, false, 0, &mut Vec::new());
        assert_eq!(lines.len(), 2);
        assert_eq!(big.len() - used, 10);
    }
}
