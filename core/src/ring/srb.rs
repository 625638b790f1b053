//! Our own ring: free-running positions, cached peer positions, separate lines.
//!
//! - The producer owns `write_pos`, the consumer owns `read_pos`; both are
//!   free-running `u32` byte positions (they wrap at 2^32, never at the
//!   capacity), and the capacity is a power of two, so `pos & (capacity - 1)`
//!   is the offset in the data area and `write_pos - read_pos` (wrapping) is
//!   the fill level.
//! - Each word sits on its own 128-byte line (two 64-byte lines, so adjacent
//!   line prefetchers do not pull one side's line into the other's cache).
//! - Each side keeps the last peer position it saw and only reloads it when
//!   the cached value says the ring is full (producer) or empty (consumer).
//! - Payload is copied before the Release store of `write_pos`, and read after
//!   the Acquire load of it; symmetrically for `read_pos`.
//!
//! Wake-ups: the peer is woken only if it said it is going to sleep for
//! what this operation provides. Each ring end knows one word in the peer's
//! sleep line (in the same block, see [`crate::layout::srb`]):
//!
//! - the **producer** knows the `waiting` word of the semaphore its peer
//!   sleeps on: a reader may sleep for these bytes whatever else it waits
//!   for;
//! - the **consumer** knows the peer's `wants_space` word, which the peer's
//!   producer sets only while it waits for space in this ring
//!   ([`RingProducer::want_space`], called by [`crate::SrbChannel`] when a
//!   write was cut short or in [`crate::SrbChannel::wait_writable`]). A
//!   writer that sleeps waiting for the *reply* (the request fitted) is not
//!   woken by the read of its request: that wake-up would only make it find
//!   the reply ring still empty and sleep again, two extra context switches
//!   per round trip.
//!
//! After publishing, a ring end issues a `SeqCst` fence and loads its word,
//! and reports `wake_peer` if it is non-zero. A side about to sleep sets its
//! words (increments `waiting`, and sets `wants_space` if it waits for
//! space), fences, and re-checks the rings ([`crate::SrbChannel::wait`] does
//! this). Store→fence→load on both sides is the Dekker pattern: either the
//! sleeper sees the new data (or space), or the other side sees it waiting
//! and wakes it.
//!
//! This is where the `srb` ring departs from PulseAudio's, whose outcome
//! reports the transitions empty→non-empty and full→not-full. Knowing those
//! exactly needs a fresh load of the peer's *position* after every operation:
//! the line the peer writes on every operation, so a cache miss per message,
//! which measured twice as slow as rtrb at 16-byte messages. The `waiting`
//! word is written only when a side goes to sleep, so its line stays cached
//! and the check costs a fence and a cache hit.
//!
//! Validation: a peer position must lie within `capacity` of ours, on the
//! right side of it, and must never move backwards. Anything else is
//! [`Corrupt`], which poisons the end. The wake words are hints: any
//! non-zero value means "wake" (a spurious wake-up at worst), and this side
//! only ever stores its own `wants_space`, never reads it back.

use super::{check, ReadOutcome, RingConsumer, RingProducer, WriteOutcome};
use crate::atomic::{fence, AtomicI32, AtomicU32, Ordering, SchedPoint};
use crate::block::RingData;
use crate::error::{Corrupt, Field};

/// The ordering that publishes payload (`write_pos`) or hands space back
/// (`read_pos`): Release. With the `loom-mutant` feature under `cfg(loom)`
/// it is weakened to Relaxed, and `srb-loom-tests` checks that loom then
/// reports the payload race (see `RingData`'s loom tracking).
const RELEASE: Ordering = if cfg!(all(loom, feature = "loom-mutant")) {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// The ordering that takes over payload or space: Acquire (Relaxed in the
/// loom mutant, as [`RELEASE`]).
const ACQUIRE: Ordering = if cfg!(all(loom, feature = "loom-mutant")) {
    Ordering::Relaxed
} else {
    Ordering::Acquire
};

/// The wake mutation (`loom-mutant-wake`, under `cfg(loom)` only): the
/// consumer never reports that the writer needs a wake-up, although it
/// announced a wait for space. `srb-loom-tests` checks that its models of a
/// writer waiting for space then deadlock.
const MUTANT_SKIP_SPACE_WAKE: bool = cfg!(all(loom, feature = "loom-mutant-wake"));

/// The raw parts of one direction of an `srb`-layout ring.
///
/// The fields are private and set only by the unsafe [`RawRing::new`],
/// whose contract makes the safe accessors sound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRing {
    write_pos: *const AtomicU32,
    read_pos: *const AtomicU32,
    data: RingData,
    /// A power of two, `1..=MAX_CAPACITY`, validated by the layout.
    capacity: u32,
    /// The peer's word that says it needs a wake-up after our operation on
    /// this ring: for a producer, the `waiting` word of the semaphore the
    /// peer sleeps on; for a consumer, the peer's `wants_space`.
    wake_word: *const AtomicI32,
}

impl RawRing {
    /// # Safety
    /// `write_pos`, `read_pos` and `wake_word` are aligned atomics, and
    /// `data` a data area of `capacity` bytes, all inside one live
    /// [`crate::Block`] that outlives every copy of the returned value;
    /// `capacity` is a power of two in `1..=MAX_CAPACITY`.
    pub(crate) unsafe fn new(
        write_pos: *const AtomicU32,
        read_pos: *const AtomicU32,
        data: RingData,
        capacity: u32,
        wake_word: *const AtomicI32,
    ) -> Self {
        Self {
            write_pos,
            read_pos,
            data,
            capacity,
            wake_word,
        }
    }

    /// Bytes in the ring.
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    fn write_pos(&self) -> &AtomicU32 {
        // SAFETY: `new`'s contract: aligned, inside a live block. The
        // reference is to an atomic, only ever used for atomic operations.
        unsafe { &*self.write_pos }
    }

    fn read_pos(&self) -> &AtomicU32 {
        // SAFETY: as in `write_pos`.
        unsafe { &*self.read_pos }
    }

    /// The producer's and the consumer's positions, each loaded once with
    /// Acquire (for a side attaching to a ring that may already be in use:
    /// the bytes and space they hand over are then visible to it).
    pub(crate) fn load_positions(&self) -> (u32, u32) {
        (
            self.write_pos().load(Ordering::Acquire),
            self.read_pos().load(Ordering::Acquire),
        )
    }

    /// After a publication: is the peer (about to be) asleep waiting for
    /// what we just published?
    #[inline]
    fn peer_needs_wake(&self) -> bool {
        // SeqCst fence between our publishing store and this load: the Dekker
        // half that pairs with the sleeper's store, fence and re-check.
        fence(Ordering::SeqCst);
        // SAFETY: `new`'s contract: a validated, aligned atomic in the block.
        // Relaxed: the fence above orders it; the value is only a hint.
        let w = unsafe { &*self.wake_word }.load(Ordering::Relaxed);
        // Any non-zero value, even an impossible one, means "wake": a hostile
        // value costs a spurious notification, which the fdsem then reports.
        w != 0
    }
}

/// The writing end of an `srb`-layout ring.
#[derive(Debug)]
pub struct Producer {
    ring: RawRing,
    /// Our position: private; the shared copy is only ever stored to.
    write: u32,
    /// The consumer's position as last seen.
    cached_read: u32,
    /// Our `wants_space` word in the block: only ever stored to.
    wants_space_word: *const AtomicI32,
    /// What we last stored there.
    wants_space: bool,
    poison: Option<Corrupt>,
    sched: SchedPoint,
}

/// The reading end of an `srb`-layout ring.
#[derive(Debug)]
pub struct Consumer {
    ring: RawRing,
    /// Our position: private; the shared copy is only ever stored to.
    read: u32,
    /// The producer's position as last seen.
    cached_write: u32,
    poison: Option<Corrupt>,
    sched: SchedPoint,
}

// SAFETY: a ring end is the only user of its side of the ring; moving it to
// another thread moves that role with it. The shared words are atomics.
unsafe impl Send for Producer {}
// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}

impl Producer {
    /// # Safety
    /// `ring` was validated by a layout against a live [`crate::Block`], this
    /// is the only producer of that ring, `write`/`read` are the current
    /// positions, already checked to be at most `capacity` apart, and
    /// `wants_space_word` is this side's aligned `wants_space` atomic in the
    /// same block.
    pub(crate) unsafe fn new(
        ring: RawRing,
        write: u32,
        read: u32,
        wants_space_word: *const AtomicI32,
    ) -> Self {
        Self {
            ring,
            write,
            cached_read: read,
            wants_space_word,
            wants_space: false,
            poison: None,
            sched: SchedPoint::new(),
        }
    }

    fn fill(&self) -> u32 {
        self.write.wrapping_sub(self.cached_read)
    }

    /// Reloads the consumer's position and validates it: it must lie in
    /// `cached_read..=write` (modulo 2^32).
    fn refresh(&mut self, order: Ordering) -> Result<(), Corrupt> {
        check(self.poison)?;
        let r = self.ring.read_pos().load(order);
        if r.wrapping_sub(self.cached_read) > self.fill() {
            let e = Corrupt::new(Field::ReadPosition, i64::from(r));
            self.poison = Some(e);
            return Err(e);
        }
        self.cached_read = r;
        Ok(())
    }
}

impl RingProducer for Producer {
    const POST_EVERY_WRITE: bool = false;

    fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    fn free(&mut self) -> Result<usize, Corrupt> {
        // Acquire: the consumer finished reading what it released.
        self.refresh(ACQUIRE)?;
        Ok((self.ring.capacity - self.fill()) as usize)
    }

    #[inline]
    fn write(&mut self, src: &[u8]) -> Result<WriteOutcome, Corrupt> {
        check(self.poison)?;
        let cap = self.ring.capacity;
        let mut free = cap - self.fill();
        if (free as usize) < src.len() {
            // Acquire: bytes the consumer released are done being read.
            self.refresh(ACQUIRE)?;
            free = cap - self.fill();
        }
        let n = free.min(src.len().min(cap as usize) as u32);
        if n == 0 {
            return Ok(WriteOutcome::default());
        }
        let idx = self.write & (cap - 1);
        let first = n.min(cap - idx) as usize;
        self.sched.hit();
        // SAFETY: `idx + first <= cap`, inside the data area; these `n` bytes
        // are free, so the consumer does not read them until we publish.
        unsafe { self.ring.data.write(idx as usize, &src[..first]) };
        self.sched.hit();
        if first < n as usize {
            // SAFETY: the wrapped part starts at the data area's first byte
            // and is `n - first < cap` bytes long, all free as above.
            unsafe { self.ring.data.write(0, &src[first..n as usize]) };
        }
        self.write = self.write.wrapping_add(n);
        // Release: the payload stores above happen before the consumer's
        // Acquire load that sees this position.
        self.ring.write_pos().store(self.write, RELEASE);
        Ok(WriteOutcome {
            written: n as usize,
            wake_peer: self.ring.peer_needs_wake(),
        })
    }

    fn want_space(&mut self, on: bool) {
        if on == self.wants_space {
            return;
        }
        self.wants_space = on;
        // SAFETY: `new`'s contract: an aligned atomic in the live block.
        // Relaxed: when announcing, the caller's SeqCst fence before it
        // re-checks the space orders this store (the Dekker half that pairs
        // with the consumer's fence and load in `peer_needs_wake`); when
        // withdrawing, we no longer wait, so a reader that still sees the
        // old 1 costs at most one spurious wake-up, and the next
        // announcement's 1 is coherence-ordered after this 0.
        unsafe { &*self.wants_space_word }.store(i32::from(on), Ordering::Relaxed);
    }
}

impl Consumer {
    /// # Safety
    /// `ring` was validated by a layout against a live [`crate::Block`], this
    /// is the only consumer of that ring, and `read`/`write` are the current
    /// positions, already checked to be at most `capacity` apart.
    pub(crate) unsafe fn new(ring: RawRing, read: u32, write: u32) -> Self {
        Self {
            ring,
            read,
            cached_write: write,
            poison: None,
            sched: SchedPoint::new(),
        }
    }

    fn fill(&self) -> u32 {
        self.cached_write.wrapping_sub(self.read)
    }

    /// Reloads the producer's position and validates it: it must lie in
    /// `cached_write..=read + capacity` (modulo 2^32).
    fn refresh(&mut self, order: Ordering) -> Result<(), Corrupt> {
        check(self.poison)?;
        let w = self.ring.write_pos().load(order);
        let fill = w.wrapping_sub(self.read);
        if fill > self.ring.capacity || fill < self.fill() {
            let e = Corrupt::new(Field::WritePosition, i64::from(w));
            self.poison = Some(e);
            return Err(e);
        }
        self.cached_write = w;
        Ok(())
    }

    /// Copies up to `dst.len()` bytes from the read position; returns how many.
    fn copy_out(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt> {
        check(self.poison)?;
        if (self.fill() as usize) < dst.len() {
            // Acquire: the payload the producer published is visible.
            self.refresh(ACQUIRE)?;
        }
        let cap = self.ring.capacity;
        let n = (self.fill() as usize).min(dst.len());
        let idx = self.read & (cap - 1);
        let first = n.min((cap - idx) as usize);
        self.sched.hit();
        // SAFETY: `idx + first <= cap`, inside the data area; the bytes were
        // published by the producer's Release store that our Acquire saw.
        unsafe { self.ring.data.read(idx as usize, &mut dst[..first]) };
        self.sched.hit();
        if first < n {
            // SAFETY: the wrapped part starts at the data area's first byte
            // and is `n - first < cap` bytes long, published as above.
            unsafe { self.ring.data.read(0, &mut dst[first..n]) };
        }
        Ok(n)
    }
}

impl RingConsumer for Consumer {
    fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    fn available(&mut self) -> Result<usize, Corrupt> {
        // Acquire: a caller that sees bytes available may read them next
        // (from the cached position) without another load.
        self.refresh(ACQUIRE)?;
        Ok(self.fill() as usize)
    }

    #[inline]
    fn read(&mut self, dst: &mut [u8]) -> Result<ReadOutcome, Corrupt> {
        let n = self.copy_out(dst)?;
        if n == 0 {
            return Ok(ReadOutcome::default());
        }
        self.read = self.read.wrapping_add(n as u32);
        // Release: our payload reads happen before the producer's Acquire
        // load that sees this position and lets it overwrite the bytes.
        self.ring.read_pos().store(self.read, RELEASE);
        Ok(ReadOutcome {
            read: n,
            wake_peer: self.ring.peer_needs_wake() && !MUTANT_SKIP_SPACE_WAKE,
        })
    }

    fn peek(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt> {
        self.copy_out(dst)
    }
}
