//! [`Reactor`]: the epoll event loop primitive a server runs every
//! connection on, and [`Alarm`], one timerfd for all of a loop's deadlines.
//!
//! A reactor is deliberately small: it registers fds under a caller-chosen
//! `u64` token, waits, and hands back `(token, Ready)` pairs. Who owns the
//! fds, what a token means and what to do on readiness is the caller's
//! business (srbd keeps a slab of connections indexed by token). It is
//! level-triggered: a fd that stays readable is reported again on the next
//! wait, so a handler may stop early (a budget per round) without losing
//! events.
//!
//! ```
//! use srb_linux::reactor::{Interest, Reactor};
//! let (a, b) = rustix::net::socketpair(
//!     rustix::net::AddressFamily::UNIX,
//!     rustix::net::SocketType::STREAM,
//!     rustix::net::SocketFlags::CLOEXEC,
//!     None,
//! )
//! .unwrap();
//! let mut r = Reactor::new().unwrap();
//! r.add(&b, 7, Interest::READ).unwrap();
//! rustix::io::write(&a, b"x").unwrap();
//! let ready: Vec<_> = r.wait(None).unwrap().collect();
//! assert_eq!(ready.len(), 1);
//! assert_eq!(ready[0].0, 7);
//! assert!(ready[0].1.readable);
//! ```

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::io::Errno;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// At most this many events are taken per wait.
pub const EVENTS_PER_WAIT: usize = 256;

/// What a registered fd is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Readable (or hung up).
    pub read: bool,
    /// Writable.
    pub write: bool,
}

impl Interest {
    /// Readable only.
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Readable and writable.
    pub const READ_WRITE: Interest = Interest {
        read: true,
        write: true,
    };

    fn flags(self) -> EventFlags {
        // RDHUP: a peer's half-close is reported even while we only wait
        // for input, so a vanished client is noticed at once.
        let mut f = EventFlags::RDHUP;
        if self.read {
            f |= EventFlags::IN;
        }
        if self.write {
            f |= EventFlags::OUT;
        }
        f
    }
}

/// What happened to a registered fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready {
    /// There is input (or end of file) to read.
    pub readable: bool,
    /// There is room to write.
    pub writable: bool,
    /// The peer hung up or the fd is in error: reading tells the rest.
    pub hangup: bool,
}

impl Ready {
    fn from_flags(f: EventFlags) -> Self {
        Self {
            readable: f.intersects(EventFlags::IN | EventFlags::PRI),
            writable: f.contains(EventFlags::OUT),
            hangup: f.intersects(EventFlags::HUP | EventFlags::RDHUP | EventFlags::ERR),
        }
    }
}

/// One epoll instance and its event buffer.
pub struct Reactor {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("epoll", &self.epoll)
            .finish()
    }
}

impl Reactor {
    /// A new, empty reactor (`EPOLL_CLOEXEC`).
    pub fn new() -> Result<Self, Errno> {
        Ok(Self {
            epoll: epoll::create(CreateFlags::CLOEXEC)?,
            events: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    /// Watches `fd` for `interest`, reporting it as `token`.
    pub fn add(&self, fd: impl AsFd, token: u64, interest: Interest) -> Result<(), Errno> {
        epoll::add(&self.epoll, fd, EventData::new_u64(token), interest.flags())
    }

    /// Changes what `fd` is watched for (and its token).
    pub fn modify(&self, fd: impl AsFd, token: u64, interest: Interest) -> Result<(), Errno> {
        epoll::modify(&self.epoll, fd, EventData::new_u64(token), interest.flags())
    }

    /// Stops watching `fd`. Closing a fd also removes it, but only once
    /// every duplicate of it is closed: callers remove explicitly.
    pub fn remove(&self, fd: impl AsFd) -> Result<(), Errno> {
        epoll::delete(&self.epoll, fd)
    }

    /// Waits until a watched fd is ready or `timeout` passed (`None`:
    /// forever; zero: just look) and returns what is ready. `EINTR` is an
    /// empty result, not an error.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<impl Iterator<Item = (u64, Ready)> + '_, Errno> {
        self.events.clear();
        let ts = timeout.map(|d| Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            ts.as_ref(),
        ) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
        Ok(self
            .events
            .iter()
            .map(|e| (e.data.u64(), Ready::from_flags(e.flags))))
    }
}

/// One non-blocking monotonic timerfd armed for the earliest of a loop's
/// deadlines: register [`Alarm::fd`] with the reactor, call
/// [`Alarm::arm`] with the next deadline after every round (re-arming to
/// the same instant is skipped), and [`Alarm::clear`] when it fires.
#[derive(Debug)]
pub struct Alarm {
    fd: OwnedFd,
    armed: Option<Instant>,
}

impl Alarm {
    /// A disarmed alarm.
    pub fn new() -> Result<Self, Errno> {
        Ok(Self {
            fd: timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
            )?,
            armed: None,
        })
    }

    /// The timerfd, readable once the armed deadline passed.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Arms the alarm for `at` (`None`: disarm). A deadline in the past
    /// fires at once.
    pub fn arm(&mut self, at: Option<Instant>) -> Result<(), Errno> {
        if at == self.armed {
            return Ok(());
        }
        let value = match at {
            // A relative timer: `Instant` is CLOCK_MONOTONIC, but its
            // epoch is not exposed, so the remaining time is converted.
            // Zero would disarm: the smallest delay is 1 ns.
            Some(t) => {
                let d = t
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_nanos(1));
                Timespec {
                    tv_sec: d.as_secs().min(i64::MAX as u64) as _,
                    tv_nsec: d.subsec_nanos() as _,
                }
            }
            None => Timespec::default(),
        };
        timerfd_settime(
            &self.fd,
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: Timespec::default(),
                it_value: value,
            },
        )?;
        self.armed = at;
        Ok(())
    }

    /// Consumes a firing (call when the fd was readable); the alarm is
    /// then disarmed until the next [`Alarm::arm`].
    pub fn clear(&mut self) {
        let mut buf = [0u8; 8];
        // EAGAIN: it had not fired (a spurious wake); either way the
        // deadline is re-armed by the next `arm`.
        let _ = rustix::io::read(&self.fd, &mut buf);
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    #[test]
    fn tokens_readiness_and_removal() {
        let (a, b) = pair();
        let (c, d) = pair();
        let mut r = Reactor::new().unwrap();
        r.add(&b, 1, Interest::READ).unwrap();
        r.add(&d, 2, Interest::READ).unwrap();
        assert_eq!(r.wait(Some(Duration::ZERO)).unwrap().count(), 0);
        rustix::io::write(&c, b"x").unwrap();
        let got: Vec<_> = r.wait(Some(Duration::from_secs(5))).unwrap().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 2);
        assert!(got[0].1.readable && !got[0].1.hangup);
        // Level-triggered: unread input is reported again.
        assert_eq!(r.wait(Some(Duration::ZERO)).unwrap().count(), 1);
        r.remove(&d).unwrap();
        assert_eq!(r.wait(Some(Duration::ZERO)).unwrap().count(), 0);
        // A hang-up is reported while only input is asked for.
        drop(a);
        let got: Vec<_> = r.wait(Some(Duration::from_secs(5))).unwrap().collect();
        assert_eq!(got, vec![(1, got[0].1)]);
        assert!(got[0].1.hangup);
        // Write interest on a socket with room.
        r.modify(&b, 3, Interest::READ_WRITE).unwrap();
        let got: Vec<_> = r.wait(Some(Duration::ZERO)).unwrap().collect();
        assert!(got[0].1.writable);
        assert_eq!(got[0].0, 3);
    }

    #[test]
    fn alarm_fires_once_per_arming() {
        let mut r = Reactor::new().unwrap();
        let mut alarm = Alarm::new().unwrap();
        r.add(alarm.fd(), 9, Interest::READ).unwrap();
        assert_eq!(r.wait(Some(Duration::ZERO)).unwrap().count(), 0);
        alarm.arm(Some(Instant::now())).unwrap();
        let got: Vec<_> = r.wait(Some(Duration::from_secs(5))).unwrap().collect();
        assert_eq!(got[0].0, 9);
        alarm.clear();
        assert_eq!(r.wait(Some(Duration::ZERO)).unwrap().count(), 0);
        // Disarming before it fires: nothing comes.
        alarm
            .arm(Some(Instant::now() + Duration::from_millis(20)))
            .unwrap();
        alarm.arm(None).unwrap();
        assert_eq!(r.wait(Some(Duration::from_millis(60))).unwrap().count(), 0);
    }
}
