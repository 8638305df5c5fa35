//! The Session API: authenticated HTTP `/health`, the protocol V1 WebSocket
//! on `/ws` (server.md section 8, protocol.md), and the web cockpit at `/`
//! (spec/web.md).
//!
//! `listen` owns the listeners (TCP on `session.bind`, the local control
//! socket in the runtime directory) and every connection until it is authorized
//! (accept thread) and answers plain HTTP; `ws` runs one thread per WebSocket
//! session, which reads commands with the protocol crate and writes frames
//! built by `crate::wire`; `http` reads heads and writes answers; `web` holds
//! the cockpit's embedded files and the public routes that serve them.

mod http;
mod listen;
mod sock;
mod web;
mod ws;

pub use listen::{dial_addr, start, Access, Listen, ListenError, SessionHandle};
pub use web::fragment_value;
