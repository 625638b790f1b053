//! [`SrbChannel`]: two rings and two fd-semaphores, one side's view.
//!
//! A channel joins the [`Ends`] a layout produced with this side's
//! [`Notify`] (wakes the peer) and [`Wait`] (blocks this side). It moves
//! bytes, not frames: a frame may span many writes, and the caller keeps its
//! own reassembly state. The server/client (creator/attacher) direction swap
//! was done by the layout, so both sides use the same methods.
//!
//! Posting rules, as PulseAudio's `srbchannel.c`:
//! - after a write, post the peer's semaphore: after every write for the
//!   `pa` layout, as libpulse expects; when the ring end reports the peer
//!   waiting for `srb` (see [`crate::ring::srb`]);
//! - after a read that the ring end says may unblock the peer (a completely
//!   full `pa` ring; a waiting `srb` peer), post it too: the same semaphore
//!   signals "data" and "space".
//!
//! Waiting: call [`SrbChannel::wait`] when neither a read nor a write made
//! progress. It announces the sleep on this side's semaphore, then re-checks
//! the rings — data to read, or space if the last write was cut short — and
//! sleeps only if there is none and no post is pending. The re-check is the
//! sleeper's half of the Dekker handshake that lets an `srb` peer skip the
//! notification when this side was not waiting. In a poll loop use
//! [`SrbChannel::before_wait`] and [`SrbChannel::after_wait`] around polling
//! the wait object instead.

use core::fmt;
use core::time::Duration;

use crate::atomic::{fence, Ordering};
use crate::error::Corrupt;
use crate::fdsem::{FdsemError, WaitDecision, Woken};
use crate::layout::Ends;
use crate::ring::{RingConsumer, RingProducer};
use crate::signal::{Notify, Wait};

/// A failed channel operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChannelError<E> {
    /// Shared memory held an impossible value: drop the peer.
    Corrupt(Corrupt),
    /// Notifying the peer or waiting failed.
    Signal(E),
}

impl<E> From<Corrupt> for ChannelError<E> {
    fn from(c: Corrupt) -> Self {
        ChannelError::Corrupt(c)
    }
}

impl<E> From<FdsemError<E>> for ChannelError<E> {
    fn from(e: FdsemError<E>) -> Self {
        match e {
            FdsemError::Corrupt(c) => ChannelError::Corrupt(c),
            FdsemError::Signal(s) => ChannelError::Signal(s),
        }
    }
}

impl<E: fmt::Display> fmt::Display for ChannelError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Corrupt(c) => c.fmt(f),
            ChannelError::Signal(e) => write!(f, "signal failed: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ChannelError<E> {}

/// One side of a shared ring-buffer channel.
#[derive(Debug)]
pub struct SrbChannel<P, C, N, W> {
    ends: Ends<P, C>,
    notify: N,
    wait: W,
    /// The last write could not place everything: space is worth waking for.
    tx_blocked: bool,
}

impl<P, C, N, W> SrbChannel<P, C, N, W>
where
    P: RingProducer,
    C: RingConsumer,
    N: Notify,
    W: Wait,
{
    /// Joins this side's ends with its wake-up objects: `notify` wakes the
    /// peer (it must reach what the peer waits on), `wait` blocks this side.
    pub fn new(ends: Ends<P, C>, notify: N, wait: W) -> Self {
        Self {
            ends,
            notify,
            wait,
            tx_blocked: false,
        }
    }

    /// Splits the channel back into its parts.
    pub fn into_parts(self) -> (Ends<P, C>, N, W) {
        (self.ends, self.notify, self.wait)
    }

    /// The object that wakes the peer.
    pub fn notifier(&self) -> &N {
        &self.notify
    }

    /// The object this side waits on (e.g. to register its fd in a poll loop).
    pub fn waiter(&self) -> &W {
        &self.wait
    }

    /// Bytes per ring.
    pub fn capacity(&self) -> usize {
        self.ends.producer.capacity()
    }

    /// Writes as much of `src` as fits; returns the bytes written. Wakes the
    /// peer when it may be waiting for them.
    pub fn write(&mut self, src: &[u8]) -> Result<usize, ChannelError<N::Error>> {
        let out = self.ends.producer.write(src)?;
        self.tx_blocked = out.written < src.len();
        if out.wake_peer || P::POST_EVERY_WRITE {
            self.ends.poster.post(&self.notify)?;
        }
        Ok(out.written)
    }

    /// Reads up to `dst.len()` bytes; returns how many. Wakes the peer when
    /// the ring was full, since it may be waiting for space.
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, ChannelError<N::Error>> {
        let out = self.ends.consumer.read(dst)?;
        if out.wake_peer {
            self.ends.poster.post(&self.notify)?;
        }
        Ok(out.read)
    }

    /// Copies up to `dst.len()` readable bytes without consuming them.
    pub fn peek(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt> {
        self.ends.consumer.peek(dst)
    }

    /// Bytes readable now.
    pub fn available(&mut self) -> Result<usize, Corrupt> {
        self.ends.consumer.available()
    }

    /// Bytes writable now.
    pub fn free(&mut self) -> Result<usize, Corrupt> {
        self.ends.producer.free()
    }

    /// Sleeps until the peer posts, unless a post is already pending, the
    /// rings already allow progress, or the timeout passes. Re-check both
    /// rings afterwards: wake-ups are hints.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Woken, ChannelError<W::Error>> {
        if self.before_wait()? == WaitDecision::DontSleep {
            return Ok(Woken::Pending);
        }
        Ok(self.ends.waiter.block(&mut self.wait, timeout)?)
    }

    /// Sleeps until the peer posts, unless a post is already pending, there
    /// is space to write now, or the timeout passes. Unlike
    /// [`wait`](Self::wait), unread data does not end the wait: it is for a
    /// writer that must place the rest of a frame before it goes back to
    /// reading (a server answering a request), which would otherwise spin
    /// while the peer's data sits in the other ring. Re-check the free space
    /// afterwards: wake-ups are hints.
    pub fn wait_writable(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Woken, ChannelError<W::Error>> {
        if self.ends.waiter.before_wait(&mut self.wait)? == WaitDecision::DontSleep {
            return Ok(Woken::Pending);
        }
        // Counted as waiting now. SeqCst fence, then re-check the space: the
        // same Dekker pairing as in `before_wait`, with the reader's post
        // after it frees space.
        fence(Ordering::SeqCst);
        if self.ends.producer.free()? > 0 {
            self.ends.waiter.after_wait(&mut self.wait)?;
            return Ok(Woken::Pending);
        }
        Ok(self.ends.waiter.block(&mut self.wait, timeout)?)
    }

    /// For poll loops: announce a sleep. On [`WaitDecision::OkToSleep`] poll
    /// the wait object, then call [`after_wait`](Self::after_wait).
    pub fn before_wait(&mut self) -> Result<WaitDecision, ChannelError<W::Error>> {
        if self.ends.waiter.before_wait(&mut self.wait)? == WaitDecision::DontSleep {
            return Ok(WaitDecision::DontSleep);
        }
        // We are now counted as waiting. SeqCst fence, then re-check: pairs
        // with the peer's publish, fence and load of our `waiting` word.
        fence(Ordering::SeqCst);
        let can_read = self.ends.consumer.available()? > 0;
        if can_read || (self.tx_blocked && self.ends.producer.free()? > 0) {
            self.ends.waiter.after_wait(&mut self.wait)?;
            return Ok(WaitDecision::DontSleep);
        }
        Ok(WaitDecision::OkToSleep)
    }

    /// For poll loops: end a sleep that [`before_wait`](Self::before_wait)
    /// allowed once the poll returned; `ready` is whether it reported the
    /// wait object readable. The notifications it holds are consumed and
    /// checked against the semaphore's count of notifications in flight.
    /// Unlike [`after_wait`](Self::after_wait), which consumes only what the
    /// count announces, this catches a peer that writes the wait object
    /// without the fdsem protocol (an eventfd storm): that is [`Corrupt`],
    /// where otherwise the object would stay ready and the poll loop would
    /// spin. See [`crate::FdsemWaiter::after_poll`].
    pub fn after_poll(&mut self, ready: bool) -> Result<Woken, ChannelError<W::Error>> {
        Ok(self.ends.waiter.after_poll(&mut self.wait, ready)?)
    }

    /// For poll loops: end a sleep that [`before_wait`](Self::before_wait)
    /// allowed.
    pub fn after_wait(&mut self) -> Result<(), ChannelError<W::Error>> {
        Ok(self.ends.waiter.after_wait(&mut self.wait)?)
    }
}
