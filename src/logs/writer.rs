//! The JSONL projection: a writer thread that appends every entry to `all.jsonl`
//! and `<service>.jsonl` (reading them back is `history.rs`).
//!
//! The state thread queues batches over an unbounded channel (a slow disk must
//! never block the state thread and so the children: server.md section 6).
//! Thread `jsonl-writer` writes them through large buffers, under `SCHED_IDLE`
//! (`background.rs`), and flushes as soon as the queue is empty, at least every
//! `FLUSH_EVERY` while it is not.
//!
//! The queue and the files sit behind one lock, and a job is only taken off the
//! queue by whoever holds it, so the files get the batches in order whoever
//! writes them. `sync` (a `get_logs` page about to read a file) and `finish`
//! (shutdown) take the lock and write what is queued on their own thread, at
//! its normal priority; the writer thread gives the lock up between two
//! batches when someone waits for it. An idle-policy thread may get almost no
//! CPU on a busy machine: with a CPU-bound process per CPU beside the server,
//! half of 30 MB of queued lines had not reached the files when shutdown's 5 s
//! allowance ran out, back when the writer thread alone wrote them. For the
//! same reason the state thread writes the queue itself when the backlog has
//! been full for `STARVED`, rather than leave the services waiting on a thread
//! that is not getting the CPU.

use super::sink::Sink;
use super::{Batch, BatchJson};
use crate::credit::{Credit, Permit};
use crossbeam_channel::{Receiver, Sender};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest time an entry may sit in a buffer before it reaches the file.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Starting size of the buffer one batch's JSON lines are encoded into.
const BUFFER: usize = 256 * 1024;

type Job = (Arc<Batch>, Permit);

/// Bytes of log lines that may wait for the disk. Beyond that the state thread
/// waits for the writer (and so, through their credits, do the pumps): memory
/// stays bounded even when the disk is slower than the services. A flood
/// from a child that writes 1.3 GB/s leaves the server one core for the pump
/// and the writer; what the backlog holds is writer work that waits until the
/// burst is over. W1 with the fixtures child: 1.34-1.35x the pipe with 32 MiB,
/// 1.12-1.18x with 64 MiB (medians of 8 and 10); the price is memory the
/// process keeps after the burst (glibc does not give freed heap back): peak
/// RSS 25-52 -> 33-88 MB and 17-25 -> 33-70 MB after one flood, 86 -> 120 MB
/// peak with four at once.
pub const WRITE_BACKLOG: usize = 64 * 1024 * 1024;

/// A full backlog that has not made room for this long means the writer thread
/// is starved of CPU, not merely slow: the state thread then writes the queue
/// itself. A 3,000,000-line flood beside two CPU-bound processes took 60 s
/// (the child waiting on an idle-priority writer that got ~0.3% of a CPU) and
/// 2.3-5.5 s with this (three runs; a rescue can still wait for the batch the
/// starved writer thread holds the lock for).
const STARVED: Duration = Duration::from_millis(100);

/// How long the writer thread stands back after the state thread had to write:
/// about the time to the state thread's next rescue if it stays starved, and
/// short enough that what a flood leaves queued after the last rescue still
/// reaches the files within ~200 ms. (One second: the 3M-line flood took
/// 1.2-9.2 s, but W1's last line reached its file up to 0.7 s late.)
const STAND_BACK: Duration = Duration::from_millis(150);

/// Handle held by the state thread (and cloned for `get_logs` pages).
#[derive(Clone)]
pub struct Writer {
    tx: Sender<Job>,
    /// Rung after each job; the writer thread sleeps on it, not on the queue,
    /// so it never holds the lock while it waits.
    bell: Sender<()>,
    backlog: Credit,
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Threads waiting for the lock to write the queue themselves.
    waiting: AtomicUsize,
    /// When the state thread last found the writer thread starved. For
    /// `STAND_BACK` after that the writer thread leaves the queue alone: taking
    /// the lock on the rare slice it gets, it would be preempted holding it and
    /// the state thread would wait for it after all.
    rescued: Mutex<Option<Instant>>,
}

/// The jobs and the files they go to: only the holder of the lock takes jobs.
struct Queue {
    rx: Receiver<Job>,
    files: Files,
}

impl Writer {
    pub fn write(&self, batch: Arc<Batch>) {
        let n = batch.lines.text.len();
        let permit = self.backlog.take_within(n, STARVED).unwrap_or_else(|| {
            *self.shared.rescued.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            self.shared.write_here(false, || false);
            self.backlog.take(n)
        });
        // A failed send means the writer thread is gone; it already said why.
        let _ = self.tx.send((batch, permit));
        // Full means a ring is pending already, which is as good.
        let _ = self.bell.try_send(());
    }

    /// More than half the backlog is waiting for the disk: a flood is on that
    /// the writer cannot keep up with.
    pub fn behind(&self) -> bool {
        self.backlog.used() > self.backlog.limit() / 2
    }

    /// Writes and flushes everything queued so far, on the calling thread.
    pub fn sync(&self) {
        self.shared.write_here(false, || false);
    }

    /// `sync`, then gives back the disk space reserved ahead of the files' ends:
    /// the last thing written before the server exits.
    pub fn finish(&self) {
        self.shared.write_here(true, || false);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the writer thread may take the queue again, if not now.
    fn stand_back_until(&self) -> Option<Instant> {
        let rescued = *self.rescued.lock().unwrap_or_else(|e| e.into_inner());
        rescued.map(|t| t + STAND_BACK).filter(|t| *t > Instant::now())
    }

    /// Writes queued jobs on the calling thread until `enough` or the queue is
    /// empty, then flushes.
    fn write_here(&self, release: bool, enough: impl Fn() -> bool) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut q = self.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        q.write_until(release, enough);
    }
}

impl Queue {
    /// Writes queued jobs until `enough` or none is left, flushing at least
    /// every `FLUSH_EVERY` on the way and once at the end (`release`: see
    /// `Writer::finish`). What queued up meanwhile is written before the
    /// flush, so a burst goes out in big chunks.
    fn write_until(&mut self, release: bool, enough: impl Fn() -> bool) {
        let mut flushed = Instant::now();
        while !enough() {
            let Ok((batch, _permit)) = self.rx.try_recv() else { break };
            self.files.write(&batch);
            if flushed.elapsed() >= FLUSH_EVERY {
                self.files.flush(false);
                flushed = Instant::now();
            }
        }
        self.files.flush(release);
    }
}

struct Files {
    dir: PathBuf,
    names: Arc<[String]>,
    all: Option<Sink>,
    per: Vec<Option<Sink>>,
    failed: bool,
    /// The batch's JSON lines, written to `all.jsonl` and to the service's file.
    buf: Vec<u8>,
}

impl Files {
    fn open(&mut self, name: &str) -> Option<Sink> {
        let path = self.dir.join(format!("{name}.jsonl"));
        match Sink::open(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                say_failed(&mut self.failed, &path, &e);
                None
            }
        }
    }

    fn write(&mut self, batch: &Batch) {
        let svc = batch.svc.0;
        if self.all.is_none() {
            self.all = self.open("all");
        }
        if self.per[svc].is_none() {
            let name = self.names[svc].clone();
            self.per[svc] = self.open(&name);
        }
        let json = BatchJson::new(batch, &self.names[svc]);
        self.buf.clear();
        json.write_all(batch, &mut self.buf);
        let mut err = None;
        for f in [&mut self.all, &mut self.per[svc]].into_iter().flatten() {
            if let Err(x) = f.write(&self.buf) {
                err = Some(x);
            }
        }
        if let Some(x) = err {
            say_failed(&mut self.failed, &self.dir, &x);
        }
    }

    fn flush(&mut self, release: bool) {
        let mut err = None;
        for f in self.all.iter_mut().chain(self.per.iter_mut().flatten()) {
            let r = if release { f.release() } else { f.flush() };
            if let Err(x) = r {
                err = Some(x);
            }
        }
        if let Some(x) = err {
            say_failed(&mut self.failed, &self.dir, &x);
        }
    }
}

/// Says, once per run, that the log files cannot be written (the services and
/// the session API go on; memory still holds the newest lines).
fn say_failed(failed: &mut bool, path: &Path, e: &std::io::Error) {
    if !*failed {
        eprintln!("[flowlayer] logs: cannot write {}: {e}", path.display());
        *failed = true;
    }
}

/// Starts the writer thread; `names[svc]` names each service's file.
pub fn spawn_writer(dir: PathBuf, names: Arc<[String]>) -> std::io::Result<Writer> {
    start_writer(dir, names, WRITE_BACKLOG, true)
}

/// `spawn_writer` with another backlog, and without the thread when `thread`
/// is false (tests: a writer thread that never gets the CPU).
fn start_writer(
    dir: PathBuf,
    names: Arc<[String]>,
    backlog: usize,
    thread: bool,
) -> std::io::Result<Writer> {
    std::fs::create_dir_all(&dir)?;
    let (tx, rx) = crossbeam_channel::unbounded();
    let (bell, rung) = crossbeam_channel::bounded(1);
    let per = names.iter().map(|_| None).collect();
    let files =
        Files { dir, names, all: None, per, failed: false, buf: Vec::with_capacity(BUFFER) };
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue { rx, files }),
        waiting: AtomicUsize::new(0),
        rescued: Mutex::new(None),
    });
    if thread {
        let mine = shared.clone();
        std::thread::Builder::new()
            .name("jsonl-writer".into())
            .spawn(move || run_writer(&mine, rung))?;
    }
    Ok(Writer { tx, bell, backlog: Credit::new(backlog), shared })
}

fn run_writer(shared: &Shared, rung: Receiver<()>) {
    crate::background::run_in_background();
    // Sleeps on the bell with no timer (idle = idle); the last line of a burst
    // is in the file as soon as the writer has caught up.
    while rung.recv().is_ok() {
        // Only after a rescue: sleeps until the state thread has not had to
        // write for `STAND_BACK`, then writes what is left.
        while let Some(back) = shared.stand_back_until() {
            std::thread::sleep(back.saturating_duration_since(Instant::now()));
        }
        // A thread waiting for the lock writes the rest at its own priority.
        shared.lock().write_until(false, || shared.waiting.load(Ordering::SeqCst) > 0);
    }
    // Every handle is gone: nothing more can come.
    shared.lock().write_until(true, || false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Status, Stream};
    use crate::logs::history::line_seq;
    use crate::logs::Lines;

    #[test]
    fn a_full_backlog_the_writer_thread_does_not_drain_is_written_by_the_sender() {
        let dir = crate::logs::scratch_dir("starved");
        let names: Arc<[String]> = vec!["api".to_string()].into();
        // No writer thread at all: the extreme of one that gets no CPU.
        let writer = start_writer(dir.clone(), names, 64 * 1024, false).unwrap();
        let (done, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            for b in 0..10u64 {
                let mut lines = Lines::default();
                (0..300)
                    .for_each(|i| lines.push(&format!("batch {b} line {i} {}", "x".repeat(80))));
                let batch = Batch::sample(Status::Running, Stream::Stdout, 1 + b * 300, lines);
                writer.write(Arc::new(batch));
            }
            writer.sync();
            let _ = done.send(());
        });
        rx.recv_timeout(Duration::from_secs(20)).expect("a full backlog blocked the sender");
        let text = std::fs::read_to_string(dir.join("api.jsonl")).unwrap();
        let seqs: Vec<u64> = text.lines().map(|l| line_seq(l.as_bytes()).unwrap()).collect();
        assert_eq!(seqs, (1..=3000).collect::<Vec<u64>>(), "every line, in order");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
