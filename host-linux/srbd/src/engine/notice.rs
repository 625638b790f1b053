//! How the real-time side (and one client's handlers, for another client)
//! tells the control thread that a client has something to send:
//! [`Bell`], the control loop's one eventfd, and [`Notice`], one client's
//! flag beside it.
//!
//! The mixer never writes a client's socket and never wakes a client's
//! thread (there is none): per period it [`Notice::mark`]s the clients
//! whose streams changed (a REQUEST is due, a drain completed, record data
//! arrived) and rings the [`Bell`] at most once. The control loop, woken
//! by the bell, [`Notice::take`]s each client's flag and serves the ones
//! that were marked. Neither side ever waits for the other: the bell is a
//! non-blocking eventfd whose full counter already means "rung".

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::event::{eventfd, EventfdFlags};
use rustix::io::Errno;

/// The control loop's doorbell: a private non-blocking eventfd.
#[derive(Debug)]
pub struct Bell {
    fd: OwnedFd,
}

impl Bell {
    /// A new bell (CLOEXEC, NONBLOCK).
    pub fn new() -> Result<Self, Errno> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self { fd })
    }

    /// Rings the bell: never blocks (a full counter is already rung) and
    /// never fails in a way the caller could act on.
    pub fn ring(&self) {
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Resets the bell; whether it had been rung.
    pub fn clear(&self) -> bool {
        let mut buf = [0u8; 8];
        matches!(rustix::io::read(&self.fd, &mut buf), Ok(8))
    }
}

impl AsFd for Bell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One client's "has something to send" flag, and the bell to ring.
#[derive(Debug)]
pub struct Notice {
    flag: AtomicBool,
    bell: Arc<Bell>,
}

impl Notice {
    /// A clear flag that rings `bell`.
    pub fn new(bell: Arc<Bell>) -> Self {
        Self {
            flag: AtomicBool::new(false),
            bell,
        }
    }

    /// Sets the flag without ringing; returns whether it was clear (then
    /// the caller must ring the bell, once for any number of marks: the
    /// mixer rings it at the end of its period).
    pub fn mark(&self) -> bool {
        // Release: what the marker published before (ring bytes, stream
        // counters) is visible to the control thread that takes the flag
        // with Acquire.
        !self.flag.swap(true, Ordering::Release)
    }

    /// Sets the flag and rings the bell if the flag was clear.
    pub fn raise(&self) {
        if self.mark() {
            self.bell.ring();
        }
    }

    /// Takes the flag (the control thread, after the bell rang): whether
    /// the client was marked since the last take.
    pub fn take(&self) -> bool {
        // Acquire: pairs with `mark`'s Release. The bell is cleared before
        // the flags are taken, so a mark after the take rings again.
        self.flag.swap(false, Ordering::Acquire)
    }

    /// The bell this notice rings.
    pub fn bell(&self) -> &Arc<Bell> {
        &self.bell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_then_clear() {
        let b = Bell::new().unwrap();
        assert!(!b.clear());
        b.ring();
        b.ring();
        assert!(b.clear());
        assert!(!b.clear());
    }

    #[test]
    fn a_notice_rings_once_until_taken() {
        let bell = Arc::new(Bell::new().unwrap());
        let n = Notice::new(bell.clone());
        assert!(!n.take());
        n.raise();
        n.raise();
        assert!(bell.clear());
        // Still marked, so the second raise rang nothing.
        assert!(!bell.clear());
        assert!(n.take());
        assert!(!n.take());
        assert!(n.mark());
        assert!(!n.mark());
        assert!(!bell.clear(), "mark does not ring");
        n.raise();
        assert!(!bell.clear(), "already marked: no ring");
        assert!(n.take());
        n.raise();
        assert!(bell.clear());
    }
}
