//! An append-only JSON-lines file with a thread of its own: `timeline.jsonl`
//! (thread `timeline-writer`) and `incidents.jsonl` (`incident-writer`).
//!
//! The state thread queues complete lines (an unbounded channel: these lines
//! are rare, one per lifecycle change or incident change, nothing like the
//! log flood the JSONL writer takes) and never waits for the disk; the thread
//! opens the file on the first line, writes what is queued in one go, flushes,
//! and ends when its handle is finished (shutdown joins it after the last line).

use crossbeam_channel::{Receiver, Sender};
use std::io::Write;
use std::path::PathBuf;

/// Handle of one append writer thread (held by the state thread).
pub struct AppendWriter {
    tx: Option<Sender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AppendWriter {
    /// Queues one line (its newline included). Never blocks.
    pub fn write(&self, line: String) {
        if let Some(tx) = &self.tx {
            // A failed send means the thread is gone; it said why.
            let _ = tx.send(line);
        }
    }

    /// Writes what is queued and ends the thread (shutdown).
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            // The thread only writes a file; it has nothing that can panic.
            let _ = t.join();
        }
    }
}

/// Starts a writer appending to `path` on a thread named `name` (the
/// directory exists: the log writer created it). `newline_first`: the file
/// ends in a cut line (a server killed mid-write), so the first line written
/// starts on a line of its own.
pub fn spawn_append_writer(
    path: PathBuf,
    name: &str,
    newline_first: bool,
) -> std::io::Result<AppendWriter> {
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    let label = name.to_string();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run_append_writer(path, &label, newline_first, rx))?;
    Ok(AppendWriter { tx: Some(tx), thread: Some(thread) })
}

fn run_append_writer(path: PathBuf, label: &str, newline_first: bool, rx: Receiver<String>) {
    let mut file: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut failed = false;
    let mut newline = newline_first;
    while let Ok(first) = rx.recv() {
        if file.is_none() && !failed {
            match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => file = Some(std::io::BufWriter::new(f)),
                Err(e) => {
                    failed = true;
                    eprintln!("[flowlayer] {label}: cannot open {}: {e}", path.display());
                }
            }
        }
        let Some(f) = file.as_mut() else { continue };
        let mut result = if std::mem::take(&mut newline) { f.write_all(b"\n") } else { Ok(()) };
        // Everything queued goes out in one write.
        result = result.and_then(|_| f.write_all(first.as_bytes()));
        for line in rx.try_iter() {
            result = result.and_then(|_| f.write_all(line.as_bytes()));
        }
        if let Err(e) = result.and_then(|_| f.flush()) {
            eprintln!("[flowlayer] {label}: cannot write {}: {e}", path.display());
            file = None;
            failed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_and_a_cut_last_line_is_left_on_its_own() {
        let dir = super::super::scratch_dir("append");
        let path = dir.join("x.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"cut\":").unwrap();
        let mut w = spawn_append_writer(path.clone(), "test-writer", true).unwrap();
        w.write("{\"b\":2}\n".into());
        w.write("{\"c\":3}\n".into());
        w.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir); // this test's scratch directory
        assert_eq!(text, "{\"a\":1}\n{\"cut\":\n{\"b\":2}\n{\"c\":3}\n");
    }
}
