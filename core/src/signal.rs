//! Wake-up signals between the two sides of a channel: [`Notify`] and [`Wait`].
//!
//! The core never makes a system call. Whatever wakes a peer — an eventfd
//! write, a futex wake, a mailbox doorbell, pending an interrupt — implements
//! [`Notify`]; whatever blocks until woken — reading or polling an eventfd, a
//! futex wait, `WFE`/`WFI` — implements [`Wait`]. The fd-semaphore protocol in
//! [`crate::fdsem`] decides *when* to call them, so a notification is only
//! sent when the peer said it is about to sleep.
//!
//! Wake-ups are hints: a woken side always re-reads the ring. Implementations
//! may therefore coalesce notifications (an eventfd counter does) and may wake
//! spuriously.
//!
//! [`SpinSignal`] is a portable implementation over one atomic counter, for
//! tests, loom models and single-chip boards where both sides share memory.

use core::time::Duration;

use crate::atomic::{spin_hint, AtomicU32, Ordering};

/// Wakes the peer. One call is one notification; implementations may coalesce.
pub trait Notify {
    /// Why a notification could not be delivered.
    type Error;
    /// Sends one wake-up to the peer. Must not block on the peer.
    ///
    /// `Err` must mean that nothing was delivered: the fd-semaphore then
    /// withdraws the notification it announced in shared memory.
    fn notify(&self) -> Result<(), Self::Error>;
}

/// Blocks the caller until the peer notifies it.
pub trait Wait {
    /// Why waiting failed (not a timeout: that is `Ok(0)`).
    type Error;
    /// Blocks until at least one notification is pending or `timeout` passes
    /// (`None`: no timeout), then consumes every pending notification and
    /// returns how many there were; `Ok(0)` means the timeout passed.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, Self::Error>;
    /// Consumes every pending notification without blocking and returns how
    /// many there were (0 if none).
    fn try_take(&mut self) -> Result<u64, Self::Error>;
}

impl<N: Notify + ?Sized> Notify for &N {
    type Error = N::Error;
    fn notify(&self) -> Result<(), Self::Error> {
        (**self).notify()
    }
}

impl<W: Wait + ?Sized> Wait for &mut W {
    type Error = W::Error;
    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, Self::Error> {
        (**self).wait(timeout)
    }
    fn try_take(&mut self) -> Result<u64, Self::Error> {
        (**self).try_take()
    }
}

/// A notification counter in memory both sides can reach, driven by spinning.
///
/// [`Notify::notify`] adds one to the counter; [`Wait::wait`] (implemented for
/// `&SpinSignal`, so both sides can hold the same signal) spins until it
/// is non-zero and swaps it to zero. `wait(None)` spins until notified.
///
/// Timeouts: the core has no clock of its own.
/// - With a clock ([`SpinSignal::with_clock`], any monotonic
///   `fn() -> Duration`: a timer peripheral, `std::time::Instant` in tests),
///   `wait(Some(t))` gives up once `t` has passed on that clock.
/// - Without one ([`SpinSignal::new`], [`SpinSignal::with_budget`]), a timed
///   wait gives up after a fixed number of spins, whatever `t` is, except
///   that `Some(Duration::ZERO)` never spins.
#[derive(Debug)]
pub struct SpinSignal {
    pending: AtomicU32,
    budget: u32,
    clock: Option<Clock>,
}

/// A clock for [`SpinSignal::with_clock`]: the time since any fixed origin.
pub type Clock = fn() -> Duration;

impl SpinSignal {
    /// A signal without a clock whose timed waits give up after `u32::MAX`
    /// spins (seconds to minutes).
    ///
    /// # Examples
    ///
    /// ```
    /// use srb_core::{Notify, SpinSignal, Wait};
    /// static SIG: SpinSignal = SpinSignal::new();
    /// SIG.notify().unwrap();
    /// assert_eq!((&SIG).wait(None), Ok(1));
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self::with_budget(u32::MAX)
    }

    /// A signal without a clock whose timed waits give up after `budget`
    /// spins.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use srb_core::{SpinSignal, Wait};
    /// let sig = SpinSignal::with_budget(100);
    /// assert_eq!((&sig).wait(Some(Duration::from_secs(1))), Ok(0), "100 spins, not 1 s");
    /// ```
    #[cfg(not(loom))]
    pub const fn with_budget(budget: u32) -> Self {
        Self {
            pending: AtomicU32::new(0),
            budget,
            clock: None,
        }
    }

    /// A signal whose timed waits give up when `clock` says the timeout
    /// has passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::OnceLock;
    /// use std::time::{Duration, Instant};
    /// use srb_core::{SpinSignal, Wait};
    /// fn now() -> Duration {
    ///     static START: OnceLock<Instant> = OnceLock::new();
    ///     START.get_or_init(Instant::now).elapsed()
    /// }
    /// let sig = SpinSignal::with_clock(now);
    /// let start = Instant::now();
    /// assert_eq!((&sig).wait(Some(Duration::from_millis(20))), Ok(0));
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// ```
    #[cfg(not(loom))]
    pub const fn with_clock(clock: Clock) -> Self {
        Self {
            pending: AtomicU32::new(0),
            budget: u32::MAX,
            clock: Some(clock),
        }
    }

    /// A signal whose timed waits give up after `u32::MAX` spins.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self::with_budget(u32::MAX)
    }

    /// A signal whose timed waits give up after `budget` spins.
    #[cfg(loom)]
    pub fn with_budget(budget: u32) -> Self {
        Self {
            pending: AtomicU32::new(0),
            budget,
            clock: None,
        }
    }

    /// A signal whose timed waits give up when `clock` says so.
    #[cfg(loom)]
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            pending: AtomicU32::new(0),
            budget: u32::MAX,
            clock: Some(clock),
        }
    }

    fn take(&self) -> u64 {
        // Acquire: whatever the notifier wrote before notifying is visible to
        // the woken side (the ring re-read does its own Acquire as well).
        u64::from(self.pending.swap(0, Ordering::Acquire))
    }
}

impl Default for SpinSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl Notify for SpinSignal {
    type Error = core::convert::Infallible;
    fn notify(&self) -> Result<(), Self::Error> {
        // Release pairs with the Acquire swap in `take`. Saturates instead of
        // wrapping so a storm of notifications can never read as "none".
        let _ = self
            .pending
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            });
        Ok(())
    }
}

impl Wait for &SpinSignal {
    type Error = core::convert::Infallible;
    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, Self::Error> {
        let deadline = match (timeout, self.clock) {
            (Some(t), Some(clock)) => Some(clock().saturating_add(t)),
            _ => None,
        };
        let mut spins = 0u32;
        loop {
            let n = self.take();
            if n > 0 {
                return Ok(n);
            }
            if let Some(t) = timeout {
                let expired = match (deadline, self.clock) {
                    (Some(d), Some(clock)) => clock() >= d,
                    _ => t.is_zero() || spins >= self.budget,
                };
                if expired {
                    return Ok(0);
                }
                spins = spins.saturating_add(1);
            }
            spin_hint();
        }
    }
    fn try_take(&mut self) -> Result<u64, Self::Error> {
        Ok(self.take())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_counted_and_consumed() {
        let s = SpinSignal::with_budget(10);
        let mut w = &s;
        assert_eq!(w.try_take(), Ok(0));
        s.notify().unwrap();
        s.notify().unwrap();
        assert_eq!(w.wait(Some(Duration::from_millis(1))), Ok(2));
        assert_eq!(w.try_take(), Ok(0));
    }

    #[test]
    fn timed_wait_gives_up_after_its_budget() {
        let s = SpinSignal::with_budget(100);
        assert_eq!((&s).wait(Some(Duration::ZERO)), Ok(0));
    }

    fn now() -> Duration {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }

    #[test]
    fn a_timed_wait_with_a_clock_lasts_its_timeout() {
        let s = SpinSignal::with_clock(now);
        let start = std::time::Instant::now();
        assert_eq!((&s).wait(Some(Duration::from_millis(30))), Ok(0));
        assert!(start.elapsed() >= Duration::from_millis(30));
        s.notify().unwrap();
        assert_eq!((&s).wait(Some(Duration::from_secs(3600))), Ok(1));
    }

    #[test]
    fn a_zero_timeout_never_spins() {
        let s = SpinSignal::new();
        // Without the special case this would spin u32::MAX times.
        assert_eq!((&s).wait(Some(Duration::ZERO)), Ok(0));
    }

    #[test]
    fn a_notification_from_another_thread_ends_an_untimed_wait() {
        let s = SpinSignal::new();
        std::thread::scope(|scope| {
            scope.spawn(|| s.notify().unwrap());
            let mut w = &s;
            assert!(w.wait(None).unwrap() >= 1);
        });
    }
}
