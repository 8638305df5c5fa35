//! Log lines: batches shared by everyone who needs them, the in-memory rings
//! (owned by the state thread, no locks) and the JSONL projection on disk (a
//! writer thread of its own).

mod batch;
mod sink;
mod store;
mod writer;

pub use batch::{format_timestamp, now_ms, Batch, BatchJson, LineRef, Lines};
pub use store::{LogStore, Page, DEFAULT_RING_CAPACITY};
pub use writer::{first_seq, read_jsonl_page, spawn_writer, Writer};
