//! [`Waker`]: how the mixer and other connections wake a connection thread
//! that sleeps in `poll`. A private non-blocking eventfd: `wake` never
//! blocks (a full counter already means "woken"), so the mixer can call it
//! every period.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{eventfd, EventfdFlags};
use rustix::io::Errno;

/// A wake-up flag a thread can poll for.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new, unwoken waker.
    pub fn new() -> Result<Self, Errno> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self { fd })
    }

    /// Wakes the poller. Never blocks; errors are impossible for a valid
    /// eventfd except a saturated counter, which is already a wake-up.
    pub fn wake(&self) {
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Clears the wake-up; returns whether there was one.
    pub fn clear(&self) -> bool {
        let mut buf = [0u8; 8];
        matches!(rustix::io::read(&self.fd, &mut buf), Ok(8))
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_then_clear() {
        let w = Waker::new().unwrap();
        assert!(!w.clear());
        w.wake();
        w.wake();
        assert!(w.clear());
        assert!(!w.clear());
    }
}
