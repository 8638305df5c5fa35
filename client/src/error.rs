//! `ClientError`: everything that can go wrong between a client and a server,
//! each variant with what its message needs.

use flowlayer_protocol::{CommandName, ErrorBody, ErrorCode};
use std::fmt;
use std::time::Duration;

#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be opened (nothing listens, no such socket file,
    /// permission denied).
    Connect { target: String, error: std::io::Error },
    /// The server answered the upgrade with 401: it wants a bearer token.
    TokenRequired { target: String },
    /// The server answered the upgrade with 403: the token is wrong.
    TokenRejected { target: String },
    /// The WebSocket upgrade failed otherwise (another HTTP status, not a
    /// WebSocket server).
    Handshake { target: String, message: String },
    /// The first messages were not `hello` and `snapshot`.
    NotFlowLayer { target: String, message: String },
    /// The server closed the session (shutdown: close code 1001); `reason` is
    /// the close frame's, when it gave one.
    Closed { reason: Option<String> },
    /// The connection broke (reset, end of stream without a close frame).
    Lost { error: String },
    /// No answer within the deadline.
    TimedOut { what: String, after: Duration },
    /// The command was refused (`ack` `accepted:false`).
    Rejected { command: CommandName, error: ErrorBody },
    /// The command was carried out and failed (`result` `ok:false`).
    Failed { command: CommandName, error: ErrorBody, failed_services: Vec<String> },
    /// The command was answered with an `error` message, or its result data
    /// did not have the command's shape.
    BadReply { command: CommandName, message: String },
}

impl ClientError {
    /// The protocol's error code, for a refused or failed command.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Rejected { error, .. } | ClientError::Failed { error, .. } => {
                Some(error.code)
            }
            _ => None,
        }
    }

    /// The server went away (shutdown, crash): the connection is gone, as
    /// opposed to a command that went wrong on a live connection.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, ClientError::Closed { .. } | ClientError::Lost { .. })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { target, error } => {
                write!(f, "cannot connect to {target}: {error}")
            }
            ClientError::TokenRequired { target } => {
                write!(f, "{target}: the server asks for a token")
            }
            ClientError::TokenRejected { target } => write!(f, "{target}: the token is wrong"),
            ClientError::Handshake { target, message } => {
                write!(f, "{target}: websocket handshake failed: {message}")
            }
            ClientError::NotFlowLayer { target, message } => {
                write!(f, "{target}: not a flowlayer server: {message}")
            }
            ClientError::Closed { reason: Some(r) } if !r.is_empty() => {
                write!(f, "the server closed the connection ({r})")
            }
            ClientError::Closed { .. } => write!(f, "the server closed the connection"),
            ClientError::Lost { error } => write!(f, "connection to the server lost: {error}"),
            ClientError::TimedOut { what, after } => {
                write!(f, "no answer to {what} within {:.1} s", after.as_secs_f64())
            }
            ClientError::Rejected { command, error } => {
                write!(f, "{} refused: {} ({})", command.as_str(), error.message, error.code)
            }
            ClientError::Failed { command, error, .. } => {
                write!(f, "{} failed: {}", command.as_str(), error.message)
            }
            ClientError::BadReply { command, message } => {
                write!(f, "unexpected answer to {}: {message}", command.as_str())
            }
        }
    }
}

impl std::error::Error for ClientError {}
