//! Service health (health.md): the restart policy's arithmetic, the timeline
//! and its file, the /proc readings of the services' process trees, the
//! sampler thread that takes them only while someone needs them, and the
//! Prometheus text of `GET /metrics`.
//!
//! `restart` and `timeline` are pure parts of the state thread's model;
//! `procs`, `meter` and `sampler` run off it (reading /proc is I/O);
//! `metrics` runs on the `metrics` thread of a scrape.

pub mod meter;
pub mod metrics;
pub mod procs;
pub mod restart;
pub mod sampler;
pub mod timeline;

pub use metrics::{IncidentCount, Scrape};
pub use sampler::{spawn_sampler, Job, Sampler, Sink, WatchKey};
pub use timeline::spawn_timeline_writer;
