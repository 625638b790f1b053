//! Eventfd signals: [`Eventfd`] implements [`Notify`], [`EventfdWait`]
//! implements [`Wait`] and can be polled.
//!
//! # Flags (`pa-native-protocol.md` §5.6)
//!
//! Eventfds are created `EFD_CLOEXEC` only: counter mode (never
//! `EFD_SEMAPHORE`: one read must consume every pending notification) and
//! **blocking**. File status flags such as `O_NONBLOCK` belong to the open
//! file description, which the peer shares; libpulse does a *blocking* read
//! of the eventfd it waits on and aborts on `EAGAIN`, so we never set
//! `O_NONBLOCK` on an eventfd, ours or received.
//!
//! # Non-blocking reads of a blocking eventfd
//!
//! [`Wait::try_take`] must not block, and the peer holds the same file
//! description, so "poll, then read" could block if the peer (hostile, or
//! just confused) read the counter in between. We read with
//! `preadv2(RWF_NOWAIT)`, which eventfd honours since Linux 5.12 regardless
//! of `O_NONBLOCK`: `EAGAIN` when the counter is zero, never a sleep. On
//! older kernels (`EOPNOTSUPP`) we fall back to `poll(0)` + `read`, which is
//! safe as long as the peer does not read our eventfd (the protocol never
//! does). [`EventfdWait::wait`] polls with the timeout, then takes
//! non-blockingly; a stolen notification is a spurious wake-up, which the
//! [`Wait`] contract allows.
//!
//! # Notifying without blocking
//!
//! An eventfd write blocks when the counter would exceed `2^64 - 2`. Only a
//! peer that never reads (or writes huge values itself) gets there, so
//! [`Eventfd::notify`] checks `POLLOUT` first and returns
//! [`NotifyError::Saturated`] instead of blocking. A hostile peer racing the
//! counter up between the check and the write could still block the write;
//! closing that window needs `O_NONBLOCK`, which §5.6 forbids.
//!
//! # System calls per wake-up
//!
//! A notification is `poll(POLLOUT, 0)` + `write`; a sleep is one `poll`
//! on the eventfd *and* the connection socket ([`PeerWatch`]) + one
//! `preadv2(RWF_NOWAIT)` to consume the count. A round trip with both
//! sides asleep therefore makes 8 system calls, 4 of them `ppoll`s, where
//! a raw eventfd ping-pong makes 4 (`write` + blocking `read` per side).
//! What each extra one is for, and why it stays:
//!
//! - **The sleep's `poll`** (instead of a blocking `read`) is the hang-up
//!   detection: a peer that exits never notifies again, and only the
//!   socket in the same poll set turns that into
//!   [`WaitError::PeerGone`]. It runs only when the fdsem protocol decided
//!   to sleep (after announcing the sleep and re-checking the rings), never
//!   on a path that does not block.
//! - **The `preadv2`** consumes the count the `poll` saw; a blocking `read`
//!   could block if the peer read it first (see above).
//! - **The notification's `poll(POLLOUT)`** refuses to write into a
//!   counter the peer saturated (the write would block, on a blocking fd,
//!   until the peer reads: for ever if it is hostile or gone). The cheaper
//!   ways out all fail on Linux 6.18: `pwritev2(RWF_NOWAIT)` on an eventfd
//!   is `EOPNOTSUPP` (eventfd has no `write_iter`; tested), an eventfd
//!   cannot be reopened as a second, non-blocking open file description
//!   (`open("/proc/self/fd/N")` is `ENXIO`), and `O_NONBLOCK` on the shared
//!   description is forbidden by §5.6 (libpulse) and could be cleared by
//!   the peer with `F_SETFL` anyway. It costs about 0.25 µs (one `ppoll`
//!   on this project's 2-vCPU KVM guest), about 0.5 µs per round trip.
//!
//! # Poll loops
//!
//! [`EventfdWait`] is [`AsFd`]: put it in poll/epoll for `POLLIN`, use
//! [`srb_core::SrbChannel::before_wait`]/`after_wait` around the poll, and
//! call [`Wait::try_take`] (which `after_wait` does through the fdsem
//! flush) when it is readable.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::io::{Errno, IoSliceMut, ReadWriteFlags};
use srb_core::{Notify, Wait};

use crate::fdkind::{classify, FdKind};
use crate::signal::{timespec, Deadline, NotifyError, PeerWatch, WaitError, HANGUP};

/// Why a received descriptor is not an eventfd we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventfdImportError {
    /// It is not an eventfd.
    #[error("expected an eventfd, got a {found}")]
    BadFdType {
        /// What arrived.
        found: FdKind,
    },
    /// It is an eventfd in semaphore mode, which counts one notification per
    /// read and breaks the fdsem accounting.
    #[error("eventfd is in EFD_SEMAPHORE mode")]
    Semaphore,
    /// Inspecting the descriptor failed.
    #[error("inspecting the eventfd failed: {0}")]
    Inspect(Errno),
}

/// An eventfd in counter mode, blocking, close-on-exec.
#[derive(Debug)]
pub struct Eventfd {
    fd: OwnedFd,
}

impl Eventfd {
    /// Creates an eventfd with count 0 (`EFD_CLOEXEC`, see the module docs).
    pub fn new() -> Result<Self, Errno> {
        Ok(Self {
            fd: rustix::event::eventfd(0, EventfdFlags::CLOEXEC)?,
        })
    }

    /// Checks that a received descriptor is a counter-mode eventfd.
    pub fn import(fd: OwnedFd) -> Result<Self, EventfdImportError> {
        let found = classify(fd.as_fd()).map_err(EventfdImportError::Inspect)?;
        if found != FdKind::Eventfd {
            return Err(EventfdImportError::BadFdType { found });
        }
        if is_semaphore(fd.as_fd()) {
            return Err(EventfdImportError::Semaphore);
        }
        Ok(Self { fd })
    }

    /// A second descriptor for the same eventfd (to send to the peer).
    pub fn try_clone(&self) -> Result<Self, Errno> {
        Ok(Self {
            fd: rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?,
        })
    }

    /// The descriptor, to send it.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Reads and resets the counter without blocking; 0 if it was zero.
    fn take(&self, nowait: &mut bool) -> Result<u64, WaitError> {
        let mut buf = [0u8; 8];
        if *nowait {
            loop {
                let mut iov = [IoSliceMut::new(&mut buf)];
                match rustix::io::preadv2(&self.fd, &mut iov, u64::MAX, ReadWriteFlags::NOWAIT) {
                    Ok(8) => return Ok(u64::from_ne_bytes(buf)),
                    Ok(n) => return Err(WaitError::ShortRead(n)),
                    Err(Errno::AGAIN) => return Ok(0),
                    Err(Errno::INTR) => {}
                    Err(Errno::OPNOTSUPP) => {
                        tracing::debug!("RWF_NOWAIT unsupported on eventfd; using poll + read");
                        *nowait = false;
                        break;
                    }
                    Err(e) => return Err(WaitError::Io(e)),
                }
            }
        }
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        poll_now(&mut fds).map_err(WaitError::Io)?;
        if !fds[0].revents().contains(PollFlags::IN) {
            return Ok(0);
        }
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(8) => return Ok(u64::from_ne_bytes(buf)),
                Ok(n) => return Err(WaitError::ShortRead(n)),
                Err(Errno::AGAIN) => return Ok(0),
                Err(Errno::INTR) => {}
                Err(e) => return Err(WaitError::Io(e)),
            }
        }
    }
}

impl AsFd for Eventfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Notify for Eventfd {
    type Error = NotifyError;

    /// Adds 1 to the counter, waking whoever polls it. Never blocks (see the
    /// module docs for the one hostile race).
    fn notify(&self) -> Result<(), NotifyError> {
        // The one system call besides the write: see "System calls per
        // wake-up" in the module docs for why it stays.
        let mut fds = [PollFd::new(&self.fd, PollFlags::OUT)];
        poll_now(&mut fds).map_err(NotifyError::Io)?;
        if !fds[0].revents().contains(PollFlags::OUT) {
            return Err(NotifyError::Saturated);
        }
        loop {
            match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
                Ok(8) => return Ok(()),
                Ok(_) => return Err(NotifyError::Io(Errno::IO)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Err(NotifyError::Saturated),
                Err(e) => return Err(NotifyError::Io(e)),
            }
        }
    }
}

/// The waiting side of an eventfd signal, optionally watching the peer.
#[derive(Debug)]
pub struct EventfdWait {
    efd: Eventfd,
    watch: Option<PeerWatch>,
    nowait: bool,
}

impl EventfdWait {
    /// Waits on `efd`. With a [`PeerWatch`], a wait ends in
    /// [`WaitError::PeerGone`] once the peer hung up and nothing is pending.
    pub fn new(efd: Eventfd, watch: Option<PeerWatch>) -> Self {
        Self {
            efd,
            watch,
            nowait: true,
        }
    }

    /// The eventfd waited on.
    pub fn eventfd(&self) -> &Eventfd {
        &self.efd
    }
}

impl AsFd for EventfdWait {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }
}

impl Wait for EventfdWait {
    type Error = WaitError;

    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, WaitError> {
        let deadline = Deadline::after(timeout);
        loop {
            let (ready, gone) = {
                let watched = self.watch.as_ref().map(PeerWatch::poll_fd);
                let n = 1 + usize::from(watched.is_some());
                let mut fds = [
                    PollFd::new(&self.efd.fd, PollFlags::IN),
                    watched.unwrap_or_else(|| PollFd::new(&self.efd.fd, PollFlags::empty())),
                ];
                let fds = &mut fds[..n];
                poll_retrying(fds, deadline.remaining()).map_err(WaitError::Io)?;
                let ready = fds[0].revents().contains(PollFlags::IN);
                let gone = fds.get(1).is_some_and(|s| s.revents().intersects(HANGUP));
                (ready, gone)
            };
            if ready {
                let n = self.efd.take(&mut self.nowait)?;
                if n > 0 {
                    return Ok(n);
                }
                // Someone else consumed it: a spurious wake-up; go on waiting.
            }
            // Pending notifications win over a hang-up: the peer may have
            // written its last bytes and exited.
            if gone {
                return Err(WaitError::PeerGone);
            }
            if deadline.expired() {
                return Ok(0);
            }
        }
    }

    fn try_take(&mut self) -> Result<u64, WaitError> {
        self.efd.take(&mut self.nowait)
    }
}

/// `poll` with a zero timeout (readiness now), retried on `EINTR`. No clock
/// reads, unlike `poll_retrying(fds, Some(Duration::ZERO))`: this is on the
/// path of every notification.
fn poll_now(fds: &mut [PollFd<'_>]) -> Result<usize, Errno> {
    let zero = timespec(Duration::ZERO);
    loop {
        match rustix::event::poll(fds, Some(&zero)) {
            Err(Errno::INTR) => {}
            r => return r,
        }
    }
}

/// `poll` with a timeout, retried on `EINTR` (with the time that is left).
fn poll_retrying(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> Result<usize, Errno> {
    let deadline = Deadline::after(timeout);
    loop {
        let ts = deadline.remaining().map(timespec);
        match rustix::event::poll(fds, ts.as_ref()) {
            Err(Errno::INTR) => {}
            r => return r,
        }
    }
}

/// Whether `/proc/self/fdinfo` says the eventfd is in semaphore mode.
/// Kernels before 6.4 do not say; then it is taken as counter mode.
fn is_semaphore(fd: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    std::fs::read_to_string(path).is_ok_and(|info| {
        info.lines().any(|l| {
            l.strip_prefix("eventfd-semaphore:")
                .is_some_and(|v| v.trim() == "1")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn notifications_add_up_and_one_take_consumes_them_all() {
        let efd = Eventfd::new().unwrap();
        let peer = efd.try_clone().unwrap();
        let mut w = EventfdWait::new(efd, None);
        assert_eq!(w.try_take(), Ok(0));
        peer.notify().unwrap();
        peer.notify().unwrap();
        peer.notify().unwrap();
        assert_eq!(w.wait(Some(Duration::ZERO)), Ok(3));
        assert_eq!(w.try_take(), Ok(0));
        assert_eq!(w.wait(Some(Duration::ZERO)), Ok(0), "timeout is Ok(0)");
    }

    #[test]
    fn the_fallback_read_path_gives_the_same_counts() {
        let efd = Eventfd::new().unwrap();
        let mut nowait = false;
        assert_eq!(efd.take(&mut nowait), Ok(0));
        efd.notify().unwrap();
        efd.notify().unwrap();
        assert_eq!(efd.take(&mut nowait), Ok(2));
    }

    #[test]
    fn a_notification_from_another_thread_ends_an_untimed_wait() {
        let efd = Eventfd::new().unwrap();
        let peer = efd.try_clone().unwrap();
        let mut w = EventfdWait::new(efd, None);
        std::thread::scope(|s| {
            s.spawn(|| peer.notify().unwrap());
            assert!(w.wait(None).unwrap() >= 1);
        });
    }

    #[test]
    fn created_eventfds_are_blocking_and_not_semaphores() {
        let efd = Eventfd::new().unwrap();
        let fl = rustix::fs::fcntl_getfl(&efd).unwrap();
        assert!(!fl.contains(rustix::fs::OFlags::NONBLOCK));
        assert!(!is_semaphore(efd.as_fd()));
        let sem =
            rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::SEMAPHORE).unwrap();
        assert_eq!(
            Eventfd::import(sem).unwrap_err(),
            EventfdImportError::Semaphore
        );
    }

    #[test]
    fn a_saturated_counter_is_an_error_not_a_blocked_notify() {
        let efd = Eventfd::new().unwrap();
        rustix::io::write(&efd, &(u64::MAX - 1).to_ne_bytes()).unwrap();
        assert_eq!(efd.notify(), Err(NotifyError::Saturated));
    }

    #[test]
    fn a_hung_up_peer_ends_an_untimed_wait_with_peer_gone() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let watch = PeerWatch::new(Arc::new(OwnedFd::from(a)));
        let efd = Eventfd::new().unwrap();
        let peer = efd.try_clone().unwrap();
        let mut w = EventfdWait::new(efd, Some(watch));
        // A pending notification is delivered even after the hang-up.
        peer.notify().unwrap();
        drop(b);
        assert_eq!(w.wait(None), Ok(1));
        assert_eq!(w.wait(None), Err(WaitError::PeerGone));
    }
}
