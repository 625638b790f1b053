//! PulseAudio's fd-semaphore: wake a peer only when it said it is sleeping.
//!
//! Each direction of a channel has a semaphore: three `i32` words in shared
//! memory ([`FdsemWords`]: `waiting`, `signalled`, `in_pipe`) plus a kernel
//! object the waiter can block on (an eventfd on Linux; anything behind
//! [`Wait`] and [`Notify`] here). The protocol (`fdsem.c`, see
//! `pa-native-protocol.md` §5.6) makes a post cost one atomic load while the
//! waiter is busy, and a system call only when the waiter is, or is about to
//! be, asleep:
//!
//! - **post** ([`FdsemPoster::post`]): if `signalled` goes 0→1 and `waiting`
//!   is non-zero, increment `in_pipe` and notify.
//! - **before waiting** ([`FdsemWaiter::before_wait`]): flush; if `signalled`
//!   goes 1→0, don't sleep. Otherwise increment `waiting`, and if `signalled`
//!   went 1→0 in the meantime, decrement it again and don't sleep; else sleep.
//! - **after waking** ([`FdsemWaiter::after_wait`]): decrement `waiting`,
//!   flush, reset `signalled`.
//! - **flush**: consume pending notifications and subtract them from
//!   `in_pipe`.
//!
//! All accesses are `SeqCst`, as in PulseAudio. On top of that the poster
//! reads `signalled` and `waiting` with read-modify-writes (`swap`,
//! `fetch_add(0)`) where PulseAudio uses a compare-and-swap and a load: an
//! RMW always reads the latest value, so the Dekker handshake between a post
//! and a waiter going to sleep holds even under acquire/release semantics
//! alone. That makes it checkable by loom (which treats SeqCst loads as
//! acquire) and leaves no reliance on the subtle SeqCst-load rules.
//!
//! # Departures from PulseAudio, for hostile peers
//!
//! - PulseAudio's flush does a *blocking* read of the eventfd while
//!   `in_pipe > 0`. A peer that sets `in_pipe` and never writes the eventfd
//!   would hang it. Our flush only takes what is already pending
//!   ([`Wait::try_take`]); a notification still on its way makes the next
//!   wait return at once (a spurious wake-up), never a hang.
//! - PulseAudio asserts `waiting >= 1` after waking. We return
//!   [`Corrupt`] for that and for every other value the protocol cannot
//!   produce (`signalled` not 0 or 1, negative `waiting` or `in_pipe`).
//! - A notification that cannot be sent (an eventfd a hostile peer
//!   saturated) is an error, not a retry loop: [`FdsemPoster::post`]
//!   withdraws its `in_pipe` increment, so a waiter is never told about a
//!   notification the kernel object does not hold, and leaves `signalled`
//!   set; [`FdsemPoster::repost`] sends the missing notification later
//!   (the channel does this for its caller, see [`crate::channel`]).
//!
//! # Why a SeqCst-load poster cannot make our waiter lose a wake-up
//!
//! PulseAudio's poster, after adding to the ring's count (a SeqCst RMW, A),
//! does P1 = `cmpxchg(signalled, 0 → 1)` and, if that succeeded,
//! P2 = `load(waiting)`, writing the eventfd only if P2 read non-zero. Our
//! waiter ([`FdsemWaiter::before_wait`] under
//! [`crate::SrbChannel::before_wait`]) does W1 = `fetch_add(waiting, 1)`, then
//! W2 = `cmpxchg(signalled, 1 → 0)`; if W2 fails it issues a SeqCst fence F,
//! re-reads the ring, and sleeps only if that finds nothing. Every one of
//! these is SeqCst, so they lie in one total order S that contains program
//! order, and (C++20 \[atomics.order\]) if X is coherence-ordered before Y and
//! both are SeqCst, X precedes Y in S; if a SeqCst fence precedes a load X
//! in program order, the same holds with the fence in X's place.
//!
//! 1. *P1 succeeds and P2 reads `waiting == 0` while W2 fails.* P2 read a
//!    value older than W1's, so P2 is coherence-ordered before W1: P2 <S W1.
//!    Then P1 <S P2 <S W1 <S W2. If W2 read a value older than P1's 1, W2
//!    would be coherence-ordered before P1 and W2 <S P1: contradiction. So
//!    W2 reads P1's 1 or a later value; later writes are further posts (1)
//!    or our own resets, and ours before W1 are sequenced before it. So W2
//!    reads 1 and succeeds: this case cannot happen.
//! 2. *P1 succeeds and P2 reads `waiting > 0`.* The eventfd is written (after
//!    `in_pipe` is raised); our blocking wait returns and the ring is re-read.
//! 3. *P1 succeeds and W2 takes its 1.* W2 (an acquire RMW) reads from P1
//!    (a release RMW), so A happens before our re-read: the data is seen.
//! 4. *P1 fails: an earlier post's 1 is still pending.* Whichever of our
//!    RMWs resets that 1 (in `before_wait` or `after_wait`) reads a value
//!    P1 did not, so P1 is coherence-ordered before it and A <S P1 <S reset.
//!    Our waiter never sleeps without first passing F, which comes after
//!    that reset in program order, hence A <S F; a load after F that read a
//!    count older than A would be coherence-ordered before A and force
//!    F <S A. So the re-read after F sees A's bytes and we do not sleep.
//!
//! In every case either the eventfd is written or our waiter does not sleep
//! while bytes are readable. What this needs of P2 is only that a SeqCst
//! load take part in S — exactly what loom does not model (it treats it as
//! Acquire), hence the libpulsecommon interop test
//! (`host-linux/tests/pa_interop.rs`), which drives PulseAudio's own poster
//! against this waiter. Our own poster reads both words with RMWs
//! (`swap`, `fetch_add(0)`), which loom does check.
//!
//! On the hardware: on x86-64 `lock cmpxchg` is a full barrier, so the
//! later plain `mov` of `waiting` cannot be satisfied before the store to
//! `signalled` is globally visible — exactly the store→load order Dekker's
//! handshake needs, and what a plain Acquire load (loom's model) would not
//! promise in general. On AArch64 the SeqCst load is `ldar`, which is not
//! reordered before an earlier `stlr`/`stlxr` (the RCsc property), giving
//! the same guarantee. (In case 1, a `waiting == 0` that P2 reads from our
//! *later* decrement belongs to a sleep that has already ended.)

use core::time::Duration;

use crate::atomic::{AtomicI32, Ordering};
use crate::error::{Corrupt, Field};
use crate::signal::{Notify, Wait};

/// The shared words of one fd-semaphore, `pa_fdsem_data` byte for byte.
#[repr(C)]
#[derive(Debug)]
pub struct FdsemWords {
    /// How many threads are (about to be) blocked on this semaphore.
    pub(crate) waiting: AtomicI32,
    /// 1 while a post is pending that no wait has consumed yet.
    pub(crate) signalled: AtomicI32,
    /// Notifications written to the kernel object and not yet consumed.
    pub(crate) in_pipe: AtomicI32,
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<FdsemWords>() == 12);
    assert!(core::mem::offset_of!(FdsemWords, waiting) == 0);
    assert!(core::mem::offset_of!(FdsemWords, signalled) == 4);
    assert!(core::mem::offset_of!(FdsemWords, in_pipe) == 8);
};

impl FdsemWords {
    /// Zeroed words, for a creator initialising a block.
    pub(crate) fn zeroed() -> Self {
        FdsemWords {
            waiting: AtomicI32::new(0),
            signalled: AtomicI32::new(0),
            in_pipe: AtomicI32::new(0),
        }
    }
}

/// A failed semaphore operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FdsemError<E> {
    /// A shared word held a value the protocol cannot produce.
    Corrupt(Corrupt),
    /// The [`Notify`] or [`Wait`] implementation failed.
    Signal(E),
}

impl<E> From<Corrupt> for FdsemError<E> {
    fn from(c: Corrupt) -> Self {
        FdsemError::Corrupt(c)
    }
}

impl<E: core::fmt::Display> core::fmt::Display for FdsemError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FdsemError::Corrupt(c) => c.fmt(f),
            FdsemError::Signal(e) => write!(f, "signal failed: {e}"),
        }
    }
}

impl<E: core::fmt::Debug + core::fmt::Display> core::error::Error for FdsemError<E> {}

/// What [`FdsemWaiter::before_wait`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WaitDecision {
    /// A post arrived: re-check the ring instead of sleeping.
    DontSleep,
    /// Nothing pending: block on the kernel object, then call
    /// [`FdsemWaiter::after_wait`].
    OkToSleep,
}

/// What [`FdsemWaiter::wait`] observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Woken {
    /// A post was pending; no sleep was needed.
    Pending,
    /// Slept and was notified.
    Notified,
    /// Slept until the timeout.
    TimedOut,
}

/// Compare-and-swap of `signalled` from `from` to `to`: `Ok(true)` if it
/// swapped, `Ok(false)` if it held the other legal value, else [`Corrupt`].
fn swap_signalled(w: &FdsemWords, from: i32, to: i32) -> Result<bool, Corrupt> {
    match w
        .signalled
        .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
    {
        Ok(_) => Ok(true),
        Err(v) if v == to => Ok(false),
        Err(v) => Err(Corrupt::new(Field::Signalled, i64::from(v))),
    }
}

/// The side that posts a semaphore: it wakes the peer that waits on it.
#[derive(Debug)]
pub struct FdsemPoster {
    /// Private: set only by the unsafe [`FdsemPoster::new`], whose contract
    /// makes [`FdsemPoster::words`] sound.
    words: *const FdsemWords,
}

/// The side that waits on a semaphore.
#[derive(Debug)]
pub struct FdsemWaiter {
    /// Private: set only by the unsafe [`FdsemWaiter::new`], whose contract
    /// makes [`FdsemWaiter::words`] sound.
    words: *const FdsemWords,
}

// SAFETY: a poster/waiter is a handle to atomics in a live block; moving it
// to another thread moves its role with it.
unsafe impl Send for FdsemPoster {}
// SAFETY: as for `FdsemPoster`.
unsafe impl Send for FdsemWaiter {}

impl FdsemPoster {
    /// # Safety
    /// `words` is aligned, inside a live block, and this is the only poster.
    pub(crate) unsafe fn new(words: *const FdsemWords) -> Self {
        Self { words }
    }

    fn words(&self) -> &FdsemWords {
        // SAFETY: `new`'s contract: `words` is aligned and inside a block
        // that outlives `self`. The reference is to atomics only, and every
        // access through it is an atomic operation.
        unsafe { &*self.words }
    }

    /// Signals the semaphore; notifies the peer only if it is waiting.
    /// Returns whether a notification was sent. Never blocks.
    ///
    /// If [`Notify::notify`] fails, the error is returned with `in_pipe`
    /// restored (nothing is announced that the kernel object does not
    /// hold) and `signalled` left at 1: the post itself happened, only the
    /// wake-up of a sleeping peer is missing. Send that with
    /// [`repost`](Self::repost) (a second `post` would not: the semaphore
    /// is already signalled).
    pub fn post<N: Notify>(&self, notify: &N) -> Result<bool, FdsemError<N::Error>> {
        let w = self.words();
        // Both reads are read-modify-writes, not loads: an RMW always sees
        // the latest value, so the handshake with `before_wait` holds under
        // acquire/release alone, not only under the SeqCst total order (and
        // loom, which models SeqCst loads as acquire, can check it).
        match w.signalled.swap(1, Ordering::SeqCst) {
            0 => {}
            1 => return Ok(false),
            v => return Err(Corrupt::new(Field::Signalled, i64::from(v)).into()),
        }
        match w.waiting.fetch_add(0, Ordering::SeqCst) {
            0 => Ok(false),
            v if v < 0 => Err(Corrupt::new(Field::Waiting, i64::from(v)).into()),
            _ => {
                self.send(w, notify)?;
                Ok(true)
            }
        }
    }

    /// Retries the notification of a [`post`](Self::post) whose
    /// [`Notify::notify`] failed: notifies the peer if it is (still)
    /// waiting. Returns whether a notification was sent.
    ///
    /// The failed post left `signalled` at 1, so a waiter that has not yet
    /// gone to sleep sees the post without a notification, and a repeated
    /// `post` would return at once without notifying (the semaphore is
    /// already signalled). Only a waiter that announced its sleep before the
    /// failed post still needs the notification, and this sends it. A
    /// notification the peer no longer needs is a spurious wake-up, which
    /// the protocol absorbs (it is counted in `in_pipe` like any other).
    pub fn repost<N: Notify>(&self, notify: &N) -> Result<bool, FdsemError<N::Error>> {
        let w = self.words();
        // An RMW for the same reason as in `post`: it reads the latest value.
        match w.waiting.fetch_add(0, Ordering::SeqCst) {
            0 => Ok(false),
            v if v < 0 => Err(Corrupt::new(Field::Waiting, i64::from(v)).into()),
            _ => {
                self.send(w, notify)?;
                Ok(true)
            }
        }
    }

    /// Announces one notification in `in_pipe` and sends it; withdraws the
    /// announcement if the notification could not be sent.
    fn send<N: Notify>(&self, w: &FdsemWords, notify: &N) -> Result<(), FdsemError<N::Error>> {
        // in_pipe counts notifications in flight; it must be raised before
        // the notification can be consumed (SeqCst, as every fdsem access).
        w.in_pipe.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = notify.notify() {
            // Nothing reached the kernel object: a libpulse waiter whose
            // flush sees `in_pipe > 0` does a blocking read of it, so leaving
            // the count raised would block it until some later post. (A
            // flush that ran between the two RMWs may still wait for that
            // post: `repost` sends it.) SeqCst, as every fdsem access.
            w.in_pipe.fetch_sub(1, Ordering::SeqCst);
            return Err(FdsemError::Signal(e));
        }
        Ok(())
    }
}

impl FdsemWaiter {
    /// # Safety
    /// `words` is aligned, inside a live block, and this is the only waiter.
    pub(crate) unsafe fn new(words: *const FdsemWords) -> Self {
        Self { words }
    }

    fn words(&self) -> &FdsemWords {
        // SAFETY: as in `FdsemPoster::words`, by `new`'s contract.
        unsafe { &*self.words }
    }

    /// Subtracts `taken` consumed notifications from `in_pipe`.
    fn account<E>(&self, taken: u64) -> Result<(), FdsemError<E>> {
        if taken == 0 {
            return Ok(());
        }
        let taken = i32::try_from(taken).unwrap_or(i32::MAX);
        let old = self.words().in_pipe.fetch_sub(taken, Ordering::SeqCst);
        // Every notification is preceded by an `in_pipe` increment, so more
        // notifications than `in_pipe` means the peer wrote nonsense.
        if old < taken {
            return Err(Corrupt::new(Field::InPipe, i64::from(old)).into());
        }
        Ok(())
    }

    /// Consumes notifications already pending, without blocking.
    pub fn flush<W: Wait>(&self, wait: &mut W) -> Result<(), FdsemError<W::Error>> {
        let pending = self.words().in_pipe.load(Ordering::SeqCst);
        if pending < 0 {
            return Err(Corrupt::new(Field::InPipe, i64::from(pending)).into());
        }
        if pending == 0 {
            return Ok(());
        }
        let taken = wait.try_take().map_err(FdsemError::Signal)?;
        self.account(taken)
    }

    /// Announces that the caller is about to sleep, unless a post is pending.
    ///
    /// Call it after finding the ring empty. On [`WaitDecision::OkToSleep`]
    /// block on the kernel object (poll the eventfd) and then call
    /// [`after_wait`](Self::after_wait); on [`WaitDecision::DontSleep`]
    /// re-check the ring.
    pub fn before_wait<W: Wait>(&self, wait: &mut W) -> Result<WaitDecision, FdsemError<W::Error>> {
        self.flush(wait)?;
        let w = self.words();
        if swap_signalled(w, 1, 0)? {
            return Ok(WaitDecision::DontSleep);
        }
        let old = w.waiting.fetch_add(1, Ordering::SeqCst);
        if old < 0 {
            return Err(Corrupt::new(Field::Waiting, i64::from(old)).into());
        }
        match swap_signalled(w, 1, 0) {
            Ok(true) => {
                w.waiting.fetch_sub(1, Ordering::SeqCst);
                Ok(WaitDecision::DontSleep)
            }
            Ok(false) => Ok(WaitDecision::OkToSleep),
            Err(e) => {
                w.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(e.into())
            }
        }
    }

    /// Ends a wait that [`before_wait`](Self::before_wait) allowed, after the
    /// kernel object became ready (or the wait timed out).
    pub fn after_wait<W: Wait>(&self, wait: &mut W) -> Result<(), FdsemError<W::Error>> {
        let w = self.words();
        let old = w.waiting.fetch_sub(1, Ordering::SeqCst);
        if old < 1 {
            return Err(Corrupt::new(Field::Waiting, i64::from(old)).into());
        }
        self.flush(wait)?;
        swap_signalled(w, 1, 0)?;
        Ok(())
    }

    /// Ends a wait that [`before_wait`](Self::before_wait) allowed, for a
    /// caller that polled the wait object itself: `ready` is whether the
    /// poll reported it readable. When it was, its notifications are taken
    /// without blocking and checked against `in_pipe` (more than the peer
    /// announced is [`Corrupt`]: a peer that writes the wait object
    /// without the protocol cannot make the poller spin); then the wait
    /// ends as [`after_wait`](Self::after_wait) does. Without readiness no
    /// system call is made beyond `after_wait`'s flush.
    pub fn after_poll<W: Wait>(
        &self,
        wait: &mut W,
        ready: bool,
    ) -> Result<Woken, FdsemError<W::Error>> {
        let taken = if ready { wait.try_take() } else { Ok(0) };
        self.end_wait(wait, taken)
    }

    /// Ends an announced wait that consumed `taken` notifications: checks
    /// them against `in_pipe` and ends the wait as `after_wait` does
    /// (always undoing `waiting`, reporting the first error).
    fn end_wait<W: Wait>(
        &self,
        wait: &mut W,
        taken: Result<u64, W::Error>,
    ) -> Result<Woken, FdsemError<W::Error>> {
        let taken = match taken {
            Ok(n) => n,
            Err(e) => {
                self.words().waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(FdsemError::Signal(e));
            }
        };
        let accounted = self.account(taken);
        let ended = self.after_wait(wait);
        accounted?;
        ended?;
        Ok(if taken == 0 {
            Woken::TimedOut
        } else {
            Woken::Notified
        })
    }

    /// The whole wait: [`before_wait`](Self::before_wait), then
    /// [`block`](Self::block) if allowed.
    pub fn wait<W: Wait>(
        &self,
        wait: &mut W,
        timeout: Option<Duration>,
    ) -> Result<Woken, FdsemError<W::Error>> {
        if self.before_wait(wait)? == WaitDecision::DontSleep {
            return Ok(Woken::Pending);
        }
        self.block(wait, timeout)
    }

    /// After [`before_wait`](Self::before_wait) returned
    /// [`WaitDecision::OkToSleep`]: block in [`Wait::wait`], account what it
    /// consumed, and end the wait as [`after_wait`](Self::after_wait) does.
    pub fn block<W: Wait>(
        &self,
        wait: &mut W,
        timeout: Option<Duration>,
    ) -> Result<Woken, FdsemError<W::Error>> {
        let taken = wait.wait(timeout);
        self.end_wait(wait, taken)
    }
}
