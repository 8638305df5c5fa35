//! The Session API: authenticated HTTP `/health` and the protocol V1 WebSocket
//! on `/ws` (server.md section 8, protocol.md).
//!
//! `listen` owns the TCP listener and every connection until it is authorized
//! (accept thread) and answers plain HTTP; `ws` runs one thread per WebSocket
//! session, which reads commands with the protocol crate and writes frames
//! built by `crate::wire`; `http` reads heads and writes answers.

mod http;
mod listen;
mod ws;

pub use listen::{dial_addr, start, SessionHandle};
