//! Log lines: batches shared by everyone who needs them, the in-memory rings
//! (owned by the state thread, no locks), the JSONL projection on disk (a
//! writer thread of its own) and the history read back from it, and the
//! append writer of the smaller JSON-lines files (`timeline.jsonl`,
//! `incidents.jsonl`).

mod append;
mod batch;
mod history;
mod sink;
mod store;
mod writer;

pub use append::{spawn_append_writer, AppendWriter};
pub use batch::{format_timestamp, now_ms, Batch, BatchJson, LineRef, Lines};
pub use history::{read_page, HistoryEnd};
pub use store::{LogStore, Page, DEFAULT_RING_CAPACITY};
pub use writer::{spawn_writer, Writer};

/// An empty directory of this test process, for a unit test that writes files
/// (the test removes it).
#[cfg(test)]
fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // left over from a failed run, if any
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}
