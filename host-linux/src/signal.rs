//! What the Linux signals ([`crate::eventfd`], [`crate::futex`]) share: their
//! errors and the [`PeerWatch`] that turns a vanished peer into an error.
//!
//! Both signal kinds use the same [`NotifyError`] and [`WaitError`], so a
//! channel's error type does not depend on the signal it was built with.
//!
//! A peer that dies never notifies again; a wait with no timeout would then
//! sleep forever. A [`PeerWatch`] holds the connection's socket: when the
//! peer's end closes (process exit included, the kernel closes its fds) the
//! socket reports `POLLRDHUP`/`POLLHUP`, and the waits return
//! [`WaitError::PeerGone`] instead of sleeping on.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

/// Why a notification could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The eventfd counter is at its maximum: the peer never reads it (or
    /// wrote it up there itself). Writing would block, so we refuse.
    #[error("eventfd counter saturated; the peer does not consume notifications")]
    Saturated,
    /// The system call failed.
    #[error("notify failed: {0}")]
    Io(Errno),
}

/// Why a wait failed (a timeout is not a failure: it is `Ok(0)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The peer closed its end of the connection (or died).
    #[error("peer is gone")]
    PeerGone,
    /// A read of the eventfd returned something other than 8 bytes.
    #[error("eventfd read returned {0} bytes")]
    ShortRead(usize),
    /// The system call failed.
    #[error("wait failed: {0}")]
    Io(Errno),
}

/// Watches the connection socket for the peer's hang-up.
#[derive(Debug, Clone)]
pub struct PeerWatch {
    socket: Arc<OwnedFd>,
}

/// Poll events that mean the peer closed its end.
pub const HANGUP: PollFlags = PollFlags::RDHUP
    .union(PollFlags::HUP)
    .union(PollFlags::ERR)
    .union(PollFlags::NVAL);

impl PeerWatch {
    /// Watches `socket` (a connected unix stream socket).
    pub fn new(socket: Arc<OwnedFd>) -> Self {
        Self { socket }
    }

    /// The watched socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// A poll entry for the socket that reports only hang-ups (data waiting
    /// on the socket does not wake it).
    pub(crate) fn poll_fd(&self) -> PollFd<'_> {
        PollFd::new(&*self.socket, PollFlags::RDHUP)
    }

    /// Whether the peer has hung up, without blocking.
    pub fn is_gone(&self) -> Result<bool, Errno> {
        let mut fds = [self.poll_fd()];
        loop {
            match rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default())) {
                Ok(_) => return Ok(fds[0].revents().intersects(HANGUP)),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A deadline that turns an optional timeout into what is left of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<std::time::Instant>);

impl Deadline {
    pub(crate) fn after(timeout: Option<std::time::Duration>) -> Self {
        // A timeout too large to represent is no timeout.
        Self(timeout.and_then(|t| std::time::Instant::now().checked_add(t)))
    }

    /// Time left: `None` = forever, `Some(0)` = expired.
    pub(crate) fn remaining(self) -> Option<std::time::Duration> {
        self.0
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
    }

    pub(crate) fn expired(self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }
}

/// A `Timespec` for `rustix::event::poll` / futex waits.
pub(crate) fn timespec(d: std::time::Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_closed_peer_end_is_reported_and_an_open_one_is_not() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let watch = PeerWatch::new(Arc::new(OwnedFd::from(a)));
        assert_eq!(watch.is_gone(), Ok(false));
        // Data on the socket is not a hang-up.
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        assert_eq!(watch.is_gone(), Ok(false));
        drop(b);
        assert_eq!(watch.is_gone(), Ok(true));
    }

    #[test]
    fn deadlines_count_down_and_none_is_forever() {
        assert_eq!(Deadline::after(None).remaining(), None);
        assert!(Deadline::after(Some(Duration::ZERO)).expired());
        assert!(!Deadline::after(Some(Duration::from_secs(3600))).expired());
        assert_eq!(Deadline::after(Some(Duration::MAX)).remaining(), None);
    }
}
