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
//!   full `pa` ring; an `srb` peer that announced a wait for *space*), post
//!   it too: the same semaphore signals "data" and "space". An `srb` writer
//!   announces a wait for space ([`RingProducer::want_space`]) only when it
//!   needs space: in [`SrbChannel::wait_writable`], and in
//!   [`SrbChannel::wait`]/[`SrbChannel::before_wait`] after a write that was
//!   cut short. A writer waiting for the reply to a request that fitted is
//!   not woken by the read of its request, only by the reply.
//!
//! Waiting: call [`SrbChannel::wait`] when neither a read nor a write made
//! progress. It announces the sleep on this side's semaphore, then re-checks
//! the rings — data to read, or space if the last write was cut short — and
//! sleeps only if there is none and no post is pending. The re-check is the
//! sleeper's half of the Dekker handshake that lets an `srb` peer skip the
//! notification when this side was not waiting. In a poll loop use
//! [`SrbChannel::before_wait`] and [`SrbChannel::after_wait`] around polling
//! the wait object instead.
//!
//! # The error contract: bytes are never lost or duplicated
//!
//! [`SrbChannel::write`] and [`SrbChannel::read`] move bytes first and wake
//! the peer second. If the wake-up fails ([`Notify::notify`] returns `Err`,
//! e.g. an eventfd a hostile peer saturated), the bytes have already moved,
//! so the call still returns `Ok(n)`; the fd-semaphore withdraws the
//! notification it announced (`in_pipe`), and the channel records the
//! wake-up as *owed* ([`SrbChannel::wake_owed`]). The next `write`, `read`
//! or [`SrbChannel::flush_wake`] sends it first; if that fails again, that
//! call returns [`ChannelError::Signal`] **without moving any byte**, so
//! the caller may retry it verbatim. While a wake-up is owed this side
//! never sleeps (the peer may be asleep waiting for what already moved).
//! [`ChannelError::Corrupt`] is terminal: drop the peer.

use core::fmt;
use core::time::Duration;

use crate::atomic::{fence, Ordering};
use crate::error::Corrupt;
use crate::fdsem::{FdsemError, WaitDecision, Woken};
use crate::layout::Ends;
use crate::ring::{RingConsumer, RingProducer};
use crate::signal::{Notify, Wait};

/// A failed channel operation.
///
/// # Examples
///
/// ```
/// use srb_core::{ChannelError, Corrupt, Field};
/// fn handle(e: ChannelError<&str>) -> &'static str {
///     match e {
///         // Terminal: the peer wrote an impossible value.
///         ChannelError::Corrupt(_) => "drop the peer",
///         // No byte moved in the failed call: it may be retried.
///         ChannelError::Signal(_) => "retry later or give up",
///     }
/// }
/// let c = Corrupt { field: Field::Count, value: -1 };
/// assert_eq!(handle(ChannelError::from(c)), "drop the peer");
/// assert_eq!(handle(ChannelError::Signal("eventfd full")), "retry later or give up");
/// ```
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
///
/// # Examples
///
/// ```
/// # use core::ptr::NonNull;
/// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
/// # #[repr(C, align(128))]
/// # struct Mem([u8; 4096]);
/// # let mut mem = Box::new(Mem([0; 4096]));
/// # // SAFETY: `mem` outlives the channels and is only reached through them.
/// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
/// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
/// # // SAFETY: fresh block; one creator and one attacher.
/// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
/// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
/// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
/// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
/// a.write(b"ping").unwrap();
/// let mut buf = [0u8; 4];
/// assert_eq!(b.read(&mut buf).unwrap(), 4);
/// b.write(b"pong").unwrap();
/// assert_eq!(a.read(&mut buf).unwrap(), 4);
/// assert_eq!(&buf, b"pong");
/// ```
#[derive(Debug)]
pub struct SrbChannel<P, C, N, W> {
    ends: Ends<P, C>,
    notify: N,
    wait: W,
    /// The last write could not place everything: space is worth waking for.
    tx_blocked: bool,
    /// A post's notification failed after its bytes moved: the peer may be
    /// asleep without knowing. Retried before the next transfer.
    wake_owed: bool,
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
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// // Each side notifies the signal the other waits on.
    /// let (to_a, to_b) = (SpinSignal::new(), SpinSignal::new());
    /// // SAFETY: fresh block; one creator and one attacher.
    /// let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// // SAFETY: as above.
    /// let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// let a = SrbChannel::new(ca, &to_b, &to_a);
    /// let b = SrbChannel::new(cb, &to_a, &to_b);
    /// assert_eq!(a.capacity(), b.capacity());
    /// ```
    pub fn new(ends: Ends<P, C>, notify: N, wait: W) -> Self {
        Self {
            ends,
            notify,
            wait,
            tx_blocked: false,
            wake_owed: false,
        }
    }

    /// Splits the channel back into its parts.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// let (mut ends, _notify, _wait) = a.into_parts();
    /// // The ring ends outlive the channel; bytes written stay in the ring.
    /// use srb_core::RingProducer;
    /// assert_eq!(ends.producer.write(b"raw").unwrap().written, 3);
    /// assert_eq!(b.available().unwrap(), 3);
    /// ```
    pub fn into_parts(self) -> (Ends<P, C>, N, W) {
        (self.ends, self.notify, self.wait)
    }

    /// The object that wakes the peer.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// // `a` notifies the signal `b` waits on.
    /// assert!(core::ptr::eq(*a.notifier(), &to_b));
    /// ```
    pub fn notifier(&self) -> &N {
        &self.notify
    }

    /// The object this side waits on (e.g. to register its fd in a poll loop).
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// // `a` waits on its own signal (a poll loop would register its fd).
    /// assert!(core::ptr::eq(*a.waiter(), &to_a));
    /// ```
    pub fn waiter(&self) -> &W {
        &self.wait
    }

    /// Bytes per ring.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// assert_eq!(a.capacity(), 64);
    /// ```
    pub fn capacity(&self) -> usize {
        self.ends.producer.capacity()
    }

    /// Writes as much of `src` as fits; returns the bytes written. Wakes the
    /// peer when it may be waiting for them.
    ///
    /// # Errors
    ///
    /// An `Err` means no byte was written by this call, so retrying with
    /// the same `src` neither loses nor duplicates data:
    /// - [`ChannelError::Signal`]: a wake-up owed from an earlier call (see
    ///   [`wake_owed`](Self::wake_owed)) still cannot be sent; nothing was
    ///   written.
    /// - [`ChannelError::Corrupt`]: the peer broke the protocol; the channel
    ///   is unusable (whether this call's bytes reached the ring no longer
    ///   matters).
    ///
    /// If the bytes were written but waking the peer then fails, the call
    /// returns `Ok` with the count, and the wake-up is owed: the next
    /// [`write`](Self::write), [`read`](Self::read) or
    /// [`flush_wake`](Self::flush_wake) sends it or reports the error, and
    /// until then [`wait`](Self::wait) and friends do not sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::new(), SpinSignal::new());
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// // A 64-byte ring takes 64 of 100 bytes; the caller keeps the rest.
    /// let msg = [7u8; 100];
    /// let n = a.write(&msg).unwrap();
    /// assert_eq!(n, 64);
    /// let mut buf = [0u8; 100];
    /// assert_eq!(b.read(&mut buf).unwrap(), 64);
    /// assert_eq!(a.write(&msg[n..]).unwrap(), 36);
    /// ```
    pub fn write(&mut self, src: &[u8]) -> Result<usize, ChannelError<N::Error>> {
        self.flush_wake()?;
        let out = self.ends.producer.write(src)?;
        self.tx_blocked = out.written < src.len();
        if out.wake_peer || P::POST_EVERY_WRITE {
            self.post()?;
        }
        Ok(out.written)
    }

    /// Reads up to `dst.len()` bytes; returns how many. Wakes the peer when
    /// it may be waiting for the space (`pa`: the ring was full; `srb`: the
    /// writer announced a sleep for space).
    ///
    /// # Errors
    ///
    /// As for [`write`](Self::write): an `Err` means no byte was consumed
    /// by this call (or the peer is corrupt); bytes consumed before a failed
    /// wake-up are returned as `Ok`, and the wake-up is owed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::pa, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_server, to_client) = (SpinSignal::new(), SpinSignal::new());
    /// # // SAFETY: fresh block; one server and one client.
    /// # let (_, se) = unsafe { pa::init_server(block) }.unwrap();
    /// # let (_, ce) = unsafe { pa::adopt_client(block) }.unwrap();
    /// let mut server = SrbChannel::new(se, &to_client, &to_server);
    /// let mut client = SrbChannel::new(ce, &to_server, &to_client);
    /// client.write(b"request").unwrap();
    /// let mut buf = [0u8; 4];
    /// // Reads are partial when `dst` is short; the rest stays in the ring.
    /// assert_eq!(server.read(&mut buf).unwrap(), 4);
    /// assert_eq!(&buf, b"requ");
    /// assert_eq!(server.read(&mut buf).unwrap(), 3);
    /// assert_eq!(server.read(&mut buf).unwrap(), 0);
    /// ```
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, ChannelError<N::Error>> {
        self.flush_wake()?;
        let out = self.ends.consumer.read(dst)?;
        if out.wake_peer {
            self.post()?;
        }
        Ok(out.read)
    }

    /// Posts the peer's semaphore after a transfer. A failed notification
    /// is not an error of the transfer: it becomes an owed wake-up.
    fn post(&mut self) -> Result<(), Corrupt> {
        match self.ends.poster.post(&self.notify) {
            Ok(_) => Ok(()),
            Err(FdsemError::Corrupt(c)) => Err(c),
            Err(FdsemError::Signal(_)) => {
                self.wake_owed = true;
                Ok(())
            }
        }
    }

    /// Whether a wake-up of the peer is owed: bytes moved, but notifying
    /// the peer then failed. The next [`write`](Self::write),
    /// [`read`](Self::read) or [`flush_wake`](Self::flush_wake) retries it;
    /// until then this side does not sleep ([`wait`](Self::wait) and
    /// [`before_wait`](Self::before_wait) return at once), since the peer
    /// may be asleep waiting for what already moved.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channel and is only reached through it.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::new(), SpinSignal::new());
    /// # // SAFETY: fresh block; one creator.
    /// # let (_, ends) = unsafe { srb::create(block, 64) }.unwrap();
    /// let mut a = SrbChannel::new(ends, &to_b, &to_a);
    /// a.write(b"x").unwrap();
    /// // `SpinSignal` cannot fail, so nothing is ever owed with it.
    /// assert!(!a.wake_owed());
    /// ```
    pub fn wake_owed(&self) -> bool {
        self.wake_owed
    }

    /// Sends an owed wake-up (see [`wake_owed`](Self::wake_owed)), if any.
    /// Call it before dropping the channel or handing control elsewhere
    /// after a write, so a failed notification is reported rather than
    /// forgotten. On `Err` the wake-up stays owed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channel and is only reached through it.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::new(), SpinSignal::new());
    /// # // SAFETY: fresh block; one creator.
    /// # let (_, ends) = unsafe { srb::create(block, 64) }.unwrap();
    /// let mut a = SrbChannel::new(ends, &to_b, &to_a);
    /// a.write(b"last words").unwrap();
    /// // Nothing owed: a no-op.
    /// a.flush_wake().unwrap();
    /// ```
    pub fn flush_wake(&mut self) -> Result<(), ChannelError<N::Error>> {
        if self.wake_owed {
            self.ends.poster.repost(&self.notify)?;
            self.wake_owed = false;
        }
        Ok(())
    }

    /// Copies up to `dst.len()` readable bytes without consuming them.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// a.write(b"abc").unwrap();
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.peek(&mut buf).unwrap(), 3);
    /// assert_eq!(b.available().unwrap(), 3, "still there");
    /// assert_eq!(b.read(&mut buf).unwrap(), 3);
    /// ```
    pub fn peek(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt> {
        self.ends.consumer.peek(dst)
    }

    /// Bytes readable now.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// assert_eq!(b.available().unwrap(), 0);
    /// a.write(b"abc").unwrap();
    /// assert_eq!(b.available().unwrap(), 3);
    /// ```
    pub fn available(&mut self) -> Result<usize, Corrupt> {
        self.ends.consumer.available()
    }

    /// Bytes writable now.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// assert_eq!(a.free().unwrap(), 64);
    /// a.write(&[0; 60]).unwrap();
    /// assert_eq!(a.free().unwrap(), 4);
    /// ```
    pub fn free(&mut self) -> Result<usize, Corrupt> {
        self.ends.producer.free()
    }

    /// Sleeps until the peer posts, unless a post is already pending, the
    /// rings already allow progress, or the timeout passes. Re-check both
    /// rings afterwards: wake-ups are hints.
    ///
    /// It waits for space too only if the last write was cut short: on the
    /// `srb` layout the peer's reads wake this side only then (or in
    /// [`wait_writable`](Self::wait_writable)). A caller that checked
    /// [`free`](Self::free) and wrote nothing is not woken by the peer's
    /// reads; write what fits, or use `wait_writable`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// use core::time::Duration;
    /// use srb_core::Woken;
    /// // Nothing to read, nothing posted: the timed wait sleeps and times out.
    /// assert_eq!(b.wait(Some(Duration::ZERO)).unwrap(), Woken::TimedOut);
    /// // Data is there: no sleep at all.
    /// a.write(b"x").unwrap();
    /// assert_eq!(b.wait(None).unwrap(), Woken::Pending);
    /// ```
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Woken, ChannelError<W::Error>> {
        if self.before_wait()? == WaitDecision::DontSleep {
            return Ok(Woken::Pending);
        }
        let woken = self.ends.waiter.block(&mut self.wait, timeout);
        self.ends.producer.want_space(false);
        Ok(woken?)
    }

    /// Sleeps until the peer posts, unless a post is already pending, there
    /// is space to write now, or the timeout passes. Unlike
    /// [`wait`](Self::wait), unread data does not end the wait: it is for a
    /// writer that must place the rest of a frame before it goes back to
    /// reading (a server answering a request), which would otherwise spin
    /// while the peer's data sits in the other ring. Re-check the free space
    /// afterwards: wake-ups are hints.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// use core::time::Duration;
    /// use srb_core::Woken;
    /// assert_eq!(a.write(&[1; 100]).unwrap(), 64, "the ring is full");
    /// b.write(b"request").unwrap(); // unread data does not end this wait
    /// assert_eq!(a.wait_writable(Some(Duration::ZERO)).unwrap(), Woken::TimedOut);
    /// let mut buf = [0u8; 16];
    /// b.read(&mut buf).unwrap(); // frees space
    /// assert_eq!(a.wait_writable(None).unwrap(), Woken::Pending);
    /// ```
    pub fn wait_writable(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Woken, ChannelError<W::Error>> {
        if self.wake_owed {
            return Ok(Woken::Pending);
        }
        // Waiting for space: the reader must wake us after it frees some.
        self.ends.producer.want_space(true);
        let woken = self.sleep_for_space(timeout);
        self.ends.producer.want_space(false);
        woken
    }

    /// `wait_writable` after announcing the wait for space.
    fn sleep_for_space(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Woken, ChannelError<W::Error>> {
        if self.ends.waiter.before_wait(&mut self.wait)? == WaitDecision::DontSleep {
            return Ok(Woken::Pending);
        }
        // Counted as waiting (and wanting space) now. SeqCst fence, then
        // re-check the space: the same Dekker pairing as in `before_wait`,
        // with the reader's publish, fence and check of `wants_space`.
        fence(Ordering::SeqCst);
        if self.ends.producer.free()? > 0 {
            self.ends.waiter.after_wait(&mut self.wait)?;
            return Ok(Woken::Pending);
        }
        Ok(self.ends.waiter.block(&mut self.wait, timeout)?)
    }

    /// For poll loops: announce a sleep. On [`WaitDecision::OkToSleep`] poll
    /// the wait object, then call [`after_wait`](Self::after_wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// use srb_core::WaitDecision;
    /// // A poll loop: announce, poll the wait object, end the sleep.
    /// if b.before_wait().unwrap() == WaitDecision::OkToSleep {
    ///     // ... poll(b.waiter()) would block here until `a` posts ...
    ///     a.write(b"x").unwrap(); // (stands in for the peer)
    ///     b.after_poll(true).unwrap();
    /// }
    /// let mut buf = [0u8; 1];
    /// assert_eq!(b.read(&mut buf).unwrap(), 1);
    /// ```
    pub fn before_wait(&mut self) -> Result<WaitDecision, ChannelError<W::Error>> {
        // The peer may be asleep waiting for bytes that already moved: no
        // sleep until the next transfer has sent (or reported) the wake-up.
        if self.wake_owed {
            return Ok(WaitDecision::DontSleep);
        }
        // A write was cut short: we wait for space as well as for data, so
        // the reader must wake us after it frees some. (Otherwise we wait
        // for data only, and the peer's reads need not wake us: `srb`.)
        self.ends.producer.want_space(self.tx_blocked);
        let decision = self.announce_sleep();
        if !matches!(decision, Ok(WaitDecision::OkToSleep)) {
            self.ends.producer.want_space(false);
        }
        decision
    }

    /// `before_wait` after the wait for space was announced or withdrawn.
    fn announce_sleep(&mut self) -> Result<WaitDecision, ChannelError<W::Error>> {
        if self.ends.waiter.before_wait(&mut self.wait)? == WaitDecision::DontSleep {
            return Ok(WaitDecision::DontSleep);
        }
        // We are now counted as waiting. SeqCst fence, then re-check: pairs
        // with the peer's publish, fence and load of our `waiting` word
        // (after its writes) or `wants_space` word (after its reads).
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
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// use srb_core::{WaitDecision, Woken};
    /// assert_eq!(b.before_wait().unwrap(), WaitDecision::OkToSleep);
    /// a.write(b"x").unwrap(); // `b` announced a sleep: `a` notifies it
    /// // The poll reported the wait object readable.
    /// assert_eq!(b.after_poll(true).unwrap(), Woken::Notified);
    /// ```
    pub fn after_poll(&mut self, ready: bool) -> Result<Woken, ChannelError<W::Error>> {
        let woken = self.ends.waiter.after_poll(&mut self.wait, ready);
        self.ends.producer.want_space(false);
        Ok(woken?)
    }

    /// For poll loops: end a sleep that [`before_wait`](Self::before_wait)
    /// allowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::ptr::NonNull;
    /// # use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
    /// # #[repr(C, align(128))]
    /// # struct Mem([u8; 4096]);
    /// # let mut mem = Box::new(Mem([0; 4096]));
    /// # // SAFETY: `mem` outlives the channels and is only reached through them.
    /// # let block = unsafe { Block::new(NonNull::new(mem.0.as_mut_ptr()).unwrap(), 4096) };
    /// # let (to_a, to_b) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    /// # // SAFETY: fresh block; one creator and one attacher.
    /// # let (_, ca) = unsafe { srb::create(block, 64) }.unwrap();
    /// # let (_, cb) = unsafe { srb::attach(block) }.unwrap();
    /// # let mut a = SrbChannel::new(ca, &to_b, &to_a);
    /// # let mut b = SrbChannel::new(cb, &to_a, &to_b);
    /// use srb_core::WaitDecision;
    /// assert_eq!(b.before_wait().unwrap(), WaitDecision::OkToSleep);
    /// // ... the poll timed out, or returned: end the sleep either way.
    /// b.after_wait().unwrap();
    /// ```
    pub fn after_wait(&mut self) -> Result<(), ChannelError<W::Error>> {
        let ended = self.ends.waiter.after_wait(&mut self.wait);
        self.ends.producer.want_space(false);
        Ok(ended?)
    }
}
