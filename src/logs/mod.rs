//! Log entries: the in-memory rings (owned by the state thread, no locks) and the
//! JSONL projection on disk (a writer thread of its own).

mod entry;
mod store;
mod writer;

pub use entry::{format_timestamp, now_ms, write_entry_json, Entry};
pub use store::{LogStore, Page, DEFAULT_RING_CAPACITY};
pub use writer::{first_seq, read_jsonl_page, spawn_writer, Writer};
