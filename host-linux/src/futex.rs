//! Futex signals: a notification counter word in shared memory.
//!
//! [`FutexNotify`] adds one to the word and wakes one waiter;
//! [`FutexWait`] remembers the last value it saw and sleeps in `FUTEX_WAIT`
//! while the word still holds it. The number of notifications taken is the
//! (wrapping) difference between the word and the value last seen.
//!
//! - **Shared, never private.** The word lives in a `MAP_SHARED` memfd
//!   mapping that another process maps too, so the futex calls are made
//!   without `FUTEX_PRIVATE_FLAG`; the kernel then keys the futex on the
//!   file and offset, which both processes share.
//! - **The word is peer-writable: its values are hints.** A peer that writes
//!   nonsense produces a spurious wake-up or an implausible count, which
//!   srb-core's fdsem accounting reports as `Corrupt` (more notifications
//!   than `in_pipe`); it can never make us block longer than a wait's
//!   timeout or past a hang-up, because the word is only compared, never
//!   used as a size or index.
//! - **Not pollable.** A futex has no file descriptor to put in poll/epoll
//!   (`FUTEX_FD` is long gone). A futex-signalled channel is driven by a
//!   thread that blocks in [`Wait::wait`] (the channel's own
//!   [`srb_core::SrbChannel::wait`]); a poll loop should use eventfds
//!   instead. For the same reason a [`PeerWatch`] cannot wake a futex wait:
//!   with a watch, the wait sleeps in slices of at most
//!   [`HANGUP_CHECK_INTERVAL`] and checks the socket between them, so a
//!   vanished peer is noticed within one slice.
//!
//! The word is reached through `&AtomicU32` made with
//! [`AtomicU32::from_ptr`] for each operation, because the futex system
//! call wrappers take one; a shared reference to an atomic is an atomic
//! access path (as in srb-core's fdsem), not a reference to plain bytes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;
use srb_core::{Notify, Wait};

use crate::mapping::{RangeError, SharedMapping};
use crate::signal::{timespec, Deadline, NotifyError, PeerWatch, WaitError};

/// The longest a watched futex wait sleeps before it checks for a hang-up.
pub const HANGUP_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// A 4-byte-aligned word in a shared mapping, used as a futex.
#[derive(Debug, Clone)]
pub struct FutexWord {
    map: Arc<SharedMapping>,
    word: *const AtomicU32,
}

// SAFETY: the word is an atomic in a mapping this handle keeps alive (the
// Arc); every access is atomic, so any thread may use it.
unsafe impl Send for FutexWord {}
// SAFETY: as above.
unsafe impl Sync for FutexWord {}

impl FutexWord {
    /// The word at `offset` of `map` (4-byte aligned, inside the mapping).
    pub fn new(map: Arc<SharedMapping>, offset: usize) -> Result<Self, RangeError> {
        let word = map.atomic_u32(offset)?;
        Ok(Self { map, word })
    }

    fn atomic(&self) -> &AtomicU32 {
        // SAFETY: `word` is aligned and inside `self.map`, which lives as
        // long as `self`; the memory is only ever accessed atomically (by us
        // and, by protocol, by the peer).
        unsafe { AtomicU32::from_ptr(self.word.cast_mut().cast::<u32>()) }
    }

    /// The mapping the word lives in.
    pub fn mapping(&self) -> &Arc<SharedMapping> {
        &self.map
    }
}

/// Notifies through a [`FutexWord`]: increment, then `FUTEX_WAKE` one.
#[derive(Debug, Clone)]
pub struct FutexNotify {
    word: FutexWord,
}

impl FutexNotify {
    /// Notifies whoever waits on `word`.
    pub fn new(word: FutexWord) -> Self {
        Self { word }
    }
}

impl Notify for FutexNotify {
    type Error = NotifyError;

    fn notify(&self) -> Result<(), NotifyError> {
        let w = self.word.atomic();
        // Release: a waiter whose Acquire load sees the new value also sees
        // what we wrote before notifying (the ring has its own ordering; this
        // keeps the signal itself a proper hand-over).
        w.fetch_add(1, Ordering::Release);
        futex::wake(w, futex::Flags::empty(), 1).map_err(NotifyError::Io)?;
        Ok(())
    }
}

/// Waits on a [`FutexWord`], optionally watching the peer.
#[derive(Debug)]
pub struct FutexWait {
    word: FutexWord,
    seen: u32,
    watch: Option<PeerWatch>,
}

impl FutexWait {
    /// Waits on `word`, counting notifications from its current value.
    pub fn new(word: FutexWord, watch: Option<PeerWatch>) -> Self {
        // Acquire: pairs with the notifier's Release increment.
        let seen = word.atomic().load(Ordering::Acquire);
        Self { word, seen, watch }
    }

    /// Takes what the word says arrived since the last take.
    fn take(&mut self) -> u64 {
        // Acquire: pairs with the notifier's Release increment.
        let now = self.word.atomic().load(Ordering::Acquire);
        let n = now.wrapping_sub(self.seen);
        self.seen = now;
        u64::from(n)
    }
}

impl Wait for FutexWait {
    type Error = WaitError;

    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, WaitError> {
        let deadline = Deadline::after(timeout);
        loop {
            let n = self.take();
            if n > 0 {
                return Ok(n);
            }
            if let Some(w) = &self.watch {
                if w.is_gone().map_err(WaitError::Io)? {
                    return Err(WaitError::PeerGone);
                }
            }
            let left = deadline.remaining();
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(0);
            }
            let slice = match (&self.watch, left) {
                (Some(_), Some(l)) => Some(l.min(HANGUP_CHECK_INTERVAL)),
                (Some(_), None) => Some(HANGUP_CHECK_INTERVAL),
                (None, l) => l,
            };
            let ts = slice.map(timespec);
            match futex::wait(
                self.word.atomic(),
                futex::Flags::empty(),
                self.seen,
                ts.as_ref(),
            ) {
                // Woken, value changed before we slept, timed out, or a
                // signal: all lead back to re-reading the word.
                Ok(()) | Err(Errno::AGAIN | Errno::TIMEDOUT | Errno::INTR) => {}
                Err(e) => return Err(WaitError::Io(e)),
            }
        }
    }

    fn try_take(&mut self) -> Result<u64, WaitError> {
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfd::SealedMemfd;
    use std::os::fd::OwnedFd;

    fn word() -> FutexWord {
        let m = SealedMemfd::create("futex", 4096).unwrap().map().unwrap();
        FutexWord::new(m, 128).unwrap()
    }

    #[test]
    fn words_must_be_aligned_and_inside_the_mapping() {
        let m = SealedMemfd::create("futex", 4096).unwrap().map().unwrap();
        assert!(FutexWord::new(m.clone(), 2).is_err());
        assert!(FutexWord::new(m.clone(), 4096).is_err());
        assert!(FutexWord::new(m, 4092).is_ok());
    }

    #[test]
    fn notifications_are_counted_and_a_timeout_is_zero() {
        let w = word();
        let n = FutexNotify::new(w.clone());
        let mut wait = FutexWait::new(w, None);
        assert_eq!(wait.try_take(), Ok(0));
        n.notify().unwrap();
        n.notify().unwrap();
        assert_eq!(wait.wait(Some(Duration::ZERO)), Ok(2));
        assert_eq!(wait.wait(Some(Duration::from_millis(1))), Ok(0));
    }

    #[test]
    fn counts_survive_the_word_wrapping() {
        let w = word();
        // Relaxed: single-threaded set-up before any notifier or waiter.
        w.atomic().store(u32::MAX, Ordering::Relaxed);
        let n = FutexNotify::new(w.clone());
        let mut wait = FutexWait::new(w, None);
        n.notify().unwrap();
        n.notify().unwrap();
        assert_eq!(wait.try_take(), Ok(2));
    }

    #[test]
    fn a_notification_from_another_thread_ends_an_untimed_wait() {
        let w = word();
        let n = FutexNotify::new(w.clone());
        let mut wait = FutexWait::new(w, None);
        std::thread::scope(|s| {
            s.spawn(|| n.notify().unwrap());
            assert!(wait.wait(None).unwrap() >= 1);
        });
    }

    #[test]
    fn a_hung_up_peer_ends_an_untimed_wait_with_peer_gone() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let watch = PeerWatch::new(Arc::new(OwnedFd::from(a)));
        let mut wait = FutexWait::new(word(), Some(watch));
        std::thread::scope(|s| {
            s.spawn(move || drop(b));
            assert_eq!(wait.wait(None), Err(WaitError::PeerGone));
        });
    }
}
