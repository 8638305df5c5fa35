//! Where a server listens: a TCP address with its token, or a unix socket; and
//! the byte stream to it, one type for both so the WebSocket above does not
//! care which.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The session API over TCP (`session.bind`): `host:port`, and the bearer
    /// token when the server has one.
    Tcp { addr: String, token: Option<String> },
    /// The server's local control socket: only the same user may connect, and
    /// no token is needed.
    Unix { path: PathBuf },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { addr, .. } => f.write_str(addr),
            Target::Unix { path } => write!(f, "{}", path.display()),
        }
    }
}

/// A connected socket of either kind. Public for clients that run their own
/// WebSocket over it (the terminal client reads and writes from two threads,
/// through clones).
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `target`; a TCP connect waits at most `timeout`.
    pub fn connect(target: &Target, timeout: Duration) -> std::io::Result<Stream> {
        match target {
            Target::Tcp { addr, .. } => {
                let mut last = None;
                for a in addr.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, timeout) {
                        Ok(s) => {
                            // Commands are small and answered one by one: no Nagle delay.
                            s.set_nodelay(true)?;
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the name resolves to nothing",
                    )
                }))
            }
            // A unix connect does not wait for anything but the kernel.
            Target::Unix { path } => UnixStream::connect(path).map(Stream::Unix),
        }
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> std::io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    /// Ends both directions: a thread blocked reading any clone returns.
    pub fn shutdown(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}
