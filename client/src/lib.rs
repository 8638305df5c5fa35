//! A blocking client for a FlowLayer server: connect over TCP (with the bearer
//! token) or over the server's unix socket (no token: the kernel checks who
//! connects), read `hello` and `snapshot`, send commands and wait for their
//! answers with a deadline, read events.
//!
//! No thread of its own: everything runs on the caller's thread, and every
//! wait has a deadline. Messages are the types of `flowlayer-protocol`; this
//! crate adds the socket, the WebSocket handshake and the bookkeeping of
//! command ids. It is what the `flowlayer` command is built on, and what a
//! script-like Rust program would take to talk to a stack.
//!
//! ```no_run
//! use flowlayer_client::{Connection, Target};
//! use flowlayer_protocol::{Command, LogQuery, LogsPage};
//! use std::time::Duration;
//!
//! let target = Target::Tcp { addr: "127.0.0.1:6999".into(), token: Some("t".into()) };
//! let mut conn = Connection::open(&target, Duration::from_secs(5))?;
//! for s in &conn.snapshot().services {
//!     println!("{} {}", s.name, s.status);
//! }
//! let q = LogQuery { limit: Some(10), ..LogQuery::default() };
//! let page: LogsPage = conn.call_as(&Command::GetLogs(q), Duration::from_secs(5))?;
//! # Ok::<(), flowlayer_client::ClientError>(())
//! ```

mod conn;
mod error;
mod target;

pub use conn::{data_of, Connection, STASH_MAX_LOGS};
pub use error::ClientError;
pub use target::{Stream, Target};
