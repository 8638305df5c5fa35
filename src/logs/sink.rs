//! One JSONL file the writer thread appends to, with disk space reserved ahead
//! of its end while a burst is being written.
//!
//! Appending makes the file system allocate blocks on every write (on ext4:
//! delayed-allocation reservations, extent-tree updates, quota), which measured
//! about 40% of the kernel's cost of an append-only flood. Reserving space ahead
//! with `fallocate(FALLOC_FL_KEEP_SIZE)` does that work once per `RESERVE_AHEAD`
//! bytes instead; the file's size, and so what readers see, is unchanged. The
//! reserved blocks past the end are given back by `release` (at shutdown) and at
//! `open` (after a run that could not release them, e.g. a killed server).

use nix::fcntl::{fallocate, FallocateFlags};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

const BUFFER: usize = 256 * 1024;
/// Disk space reserved past the end of a file that is receiving a burst.
const RESERVE_AHEAD: u64 = 16 * 1024 * 1024;
/// A single write this big means a burst. Quieter files never reserve space, so
/// a stack of trickling services does not hold megabytes of disk each.
const BURST: usize = 64 * 1024;

pub struct Sink {
    out: BufWriter<File>,
    /// The file's length once everything handed to `out` is written.
    end: u64,
    /// Space is reserved up to this offset (not past `end` when nothing is).
    reserved: u64,
    /// The file system cannot reserve (or a write failed): do not try again.
    no_reserve: bool,
    /// The file may end inside a line (a run was killed in the middle of a
    /// write, or a write failed part way on a full disk): the next write
    /// starts a new line, so the cut line stays the only damaged one instead
    /// of taking the next line with it.
    cut: bool,
}

impl Sink {
    /// Opens a file to append to (after a line an earlier run left cut, on a
    /// new line).
    pub fn open(path: &Path) -> std::io::Result<Sink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        let end = meta.len();
        // Blocks far past the end are what a run that could not release (a killed
        // server) reserved: give them back. Otherwise the file is left alone.
        if meta.blocks().saturating_mul(512) > end + RESERVE_AHEAD / 2 {
            // A file system that cannot truncate still takes appends.
            let _ = file.set_len(end);
        }
        let mut last = [b'\n'];
        if end > 0 && meta.is_file() {
            File::open(path)?.read_exact_at(&mut last, end - 1)?;
        }
        Ok(Sink {
            out: BufWriter::with_capacity(BUFFER, file),
            end,
            reserved: end,
            no_reserve: false,
            cut: last[0] != b'\n',
        })
    }

    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.cut {
            self.out.write_all(b"\n")?;
            self.end += 1;
            self.cut = false;
        }
        let need = self.end + data.len() as u64;
        if need > self.reserved && data.len() >= BURST && !self.no_reserve {
            let from = self.reserved.max(self.end);
            let len = need - from + RESERVE_AHEAD;
            match fallocate(
                self.out.get_ref(),
                FallocateFlags::FALLOC_FL_KEEP_SIZE,
                from as _,
                len as _,
            ) {
                Ok(()) => self.reserved = from + len,
                // Not supported, or no space to reserve: plain appends still work.
                Err(_) => self.no_reserve = true,
            }
        }
        let r = self.out.write_all(data);
        match r {
            Ok(()) => self.end = need,
            // `end` is no longer known: reserving from it could miss the real end.
            Err(_) => {
                self.no_reserve = true;
                self.cut = true;
            }
        }
        r
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Flushes, then gives back the space reserved past the end of the file.
    pub fn release(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.reserved > self.end {
            let file = self.out.get_ref();
            // The real length, not `end`: after a failed write they may differ,
            // and truncating to more than was written would add zeros.
            file.set_len(file.metadata()?.len())?;
            self.reserved = self.end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_reserve_space_that_release_gives_back_without_changing_the_content() {
        let dir = crate::logs::scratch_dir("sink");
        let path = dir.join("a.jsonl");
        std::fs::write(&path, b"old\n").unwrap();
        let mut sink = Sink::open(&path).unwrap();
        let small = b"line\n".to_vec();
        let big = vec![b'x'; BURST];
        sink.write(&small).unwrap();
        assert!(sink.reserved <= sink.end, "a small write reserves nothing");
        sink.write(&big).unwrap();
        sink.flush().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let written = 4 + small.len() as u64 + big.len() as u64;
        assert_eq!(meta.len(), written, "readers see only what was written");
        if !sink.no_reserve {
            assert!(meta.blocks() * 512 >= written + RESERVE_AHEAD, "space reserved ahead");
        }
        sink.release().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), written);
        assert!(meta.blocks() * 512 < written + RESERVE_AHEAD, "reservation given back");
        let text = std::fs::read(&path).unwrap();
        assert!(text.starts_with(b"old\nline\nxxx") && text.ends_with(b"xxx"));
        // A reservation never released (the server was killed) goes at the next open.
        sink.write(&big).unwrap();
        sink.flush().unwrap();
        drop(sink);
        let held = std::fs::metadata(&path).unwrap().blocks() * 512;
        let sink = Sink::open(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), written + big.len() as u64);
        assert!(meta.blocks() * 512 < written + RESERVE_AHEAD / 2, "{held} bytes were held");
        drop(sink);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_left_inside_a_line_is_written_on_from_a_new_line() {
        let dir = crate::logs::scratch_dir("sink-cut");
        for (before, after) in [
            (&b"whole\ncut sh"[..], &b"whole\ncut sh\nnext\n"[..]),
            (b"whole\n", b"whole\nnext\n"),
            (b"", b"next\n"),
        ] {
            let path = dir.join("a.jsonl");
            std::fs::write(&path, before).unwrap();
            let mut sink = Sink::open(&path).unwrap();
            sink.write(b"next\n").unwrap();
            sink.release().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), after);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
