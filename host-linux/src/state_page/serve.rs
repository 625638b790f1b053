//! [`StatePageServer`]: the `control` socket that hands the page fd to
//! local clients of our uid.
//!
//! Made for an epoll loop: the listening socket is non-blocking; when it is
//! readable the daemon calls [`StatePageServer::accept_and_send`], which
//! accepts one connection, checks `SO_PEERCRED`, sends the hello frame
//! ([`super::hello`]) with the page fd and closes the connection. The
//! accepted socket is non-blocking too, so a client that never reads can
//! only lose its page, never stall the daemon.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use super::hello::{hello, FRAME_STATE_PAGE};
use crate::frame::send_frame;
use crate::listener::{ListenError, Listener};
use crate::runtime_dir::{DirError, RuntimeDir};
use crate::scm::SendError;

/// Why the control socket could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The path has no directory or no file name.
    #[error("{0}: not a socket path")]
    BadPath(PathBuf),
    /// Its directory was refused (not ours, not 0700...).
    #[error(transparent)]
    Dir(#[from] DirError),
    /// Listening failed.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// Making the socket non-blocking failed.
    #[error("making the control socket non-blocking: {0}")]
    NonBlocking(Errno),
}

/// Why one connection was not served. None of these concern the daemon
/// beyond a log line; the listening socket stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServeError {
    /// Nothing to accept (the readiness was spurious, or the client gave
    /// up before we got to it).
    #[error("no pending connection")]
    NoPendingConnection,
    /// `accept` or `SO_PEERCRED` failed.
    #[error("accepting a control connection: {0}")]
    Accept(Errno),
    /// The peer runs as another user; it gets nothing.
    #[error("control connection from uid {peer} refused (we are uid {ours})")]
    WrongUid {
        /// The peer's uid.
        peer: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// Sending the hello failed (the peer left, or its buffer is full).
    #[error("sending the state page: {0}")]
    Send(#[from] SendError),
}

/// Only our own uid may have the page.
pub fn check_peer_uid(peer: u32, ours: u32) -> Result<(), ServeError> {
    if peer == ours {
        Ok(())
    } else {
        Err(ServeError::WrongUid { peer, ours })
    }
}

/// The listening `control` socket (see the module docs).
#[derive(Debug)]
pub struct StatePageServer {
    listener: Listener,
}

impl StatePageServer {
    /// Listens on `path` (its directory must be a private runtime
    /// directory, created `0700` if missing; a lock file beside the socket
    /// keeps a second server out), non-blocking.
    pub fn bind(path: &Path) -> Result<Self, BindError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(BindError::BadPath(path.to_owned()));
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let dir = RuntimeDir::open(dir)?;
        let listener = Listener::bind(&dir, &name.to_string_lossy())?;
        rustix::io::ioctl_fionbio(&listener, true).map_err(BindError::NonBlocking)?;
        Ok(Self { listener })
    }

    /// The socket path.
    pub fn path(&self) -> Option<&Path> {
        self.listener.path()
    }

    /// Accepts one connection and, if it is our uid's, sends it the hello
    /// with `page` attached, then closes it. Never blocks.
    pub fn accept_and_send(&self, page: BorrowedFd<'_>) -> Result<(), ServeError> {
        let (stream, creds) = match self.listener.accept() {
            Ok(c) => c,
            Err(Errno::AGAIN) => return Err(ServeError::NoPendingConnection),
            Err(e) => return Err(ServeError::Accept(e)),
        };
        check_peer_uid(creds.uid.as_raw(), rustix::process::geteuid().as_raw())?;
        // A send that would block fails with EAGAIN instead.
        rustix::io::ioctl_fionbio(&stream, true).map_err(ServeError::Accept)?;
        send_frame(&stream, FRAME_STATE_PAGE, &hello(), &[page], false)?;
        Ok(())
    }
}

impl AsFd for StatePageServer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_uid_is_served() {
        assert_eq!(check_peer_uid(1000, 1000), Ok(()));
        assert_eq!(
            check_peer_uid(0, 1000),
            Err(ServeError::WrongUid {
                peer: 0,
                ours: 1000
            })
        );
    }
}
