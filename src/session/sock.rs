//! A connection's socket: TCP (the session API on `session.bind`) or unix
//! (the local control socket in the runtime directory, stacks.md section 1).
//! One type, so the accept thread and the session threads serve both alike;
//! only authorization differs (`Peer`).
//!
//! No thread of its own: owned by the accept thread until a session thread
//! takes it.

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};

pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Who is at the other end, as far as authorization goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Peer {
    /// Over TCP: needs the bearer token; failures are counted per address.
    Ip(IpAddr),
    /// Over the unix socket, same user as the server (checked with
    /// `SO_PEERCRED` on accept, behind the socket's 0600 mode): no token.
    Local,
}

impl Sock {
    /// Writes go out at once: replies are small and answered one by one.
    pub fn set_nodelay(&self) {
        if let Sock::Tcp(s) = self {
            // Only latency depends on it.
            let _ = s.set_nodelay(true);
        }
    }
}

/// A socket taken out of the accept thread's poll to be answered by a
/// blocking thread of its own (`/metrics`).
pub enum Blocking {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Sock {
    /// The socket in blocking mode, writes bounded by `deadline`.
    pub fn into_blocking(self, deadline: std::time::Duration) -> std::io::Result<Blocking> {
        Ok(match self {
            Sock::Tcp(s) => {
                let s = std::net::TcpStream::from(s);
                s.set_nonblocking(false)?;
                s.set_write_timeout(Some(deadline))?;
                Blocking::Tcp(s)
            }
            Sock::Unix(s) => {
                let s = std::os::unix::net::UnixStream::from(s);
                s.set_nonblocking(false)?;
                s.set_write_timeout(Some(deadline))?;
                Blocking::Unix(s)
            }
        })
    }
}

impl Write for Blocking {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Blocking::Tcp(s) => s.write(buf),
            Blocking::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Blocking::Tcp(s) => s.flush(),
            Blocking::Unix(s) => s.flush(),
        }
    }
}

impl AsFd for Sock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sock::Tcp(s) => s.flush(),
            Sock::Unix(s) => s.flush(),
        }
    }
}

impl Source for Sock {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> std::io::Result<()> {
        match self {
            Sock::Tcp(s) => s.register(r, t, i),
            Sock::Unix(s) => s.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> std::io::Result<()> {
        match self {
            Sock::Tcp(s) => s.reregister(r, t, i),
            Sock::Unix(s) => s.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> std::io::Result<()> {
        match self {
            Sock::Tcp(s) => s.deregister(r),
            Sock::Unix(s) => s.deregister(r),
        }
    }
}
