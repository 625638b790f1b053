//! Single-producer / single-consumer byte rings over shared memory.
//!
//! Two implementations share one API shape ([`RingProducer`], [`RingConsumer`]):
//!
//! - [`pa`]: PulseAudio's ring (`srbchannel.c`): one shared byte *count* per
//!   ring, each side's index private. Every operation is a sequentially
//!   consistent read-modify-write on the count, exactly as libpulse does it,
//!   so it interoperates with unmodified libpulse.
//! - [`srb`]: our own ring for peers we control: free-running 32-bit
//!   positions over a power-of-two capacity, producer-owned and
//!   consumer-owned words on separate 128-byte lines, and each side caching
//!   the peer's position so that the common case touches no shared line.
//!
//! Ring ends are made by the layouts in [`crate::layout`], which validate the
//! geometry once and hand out ends that keep it privately.
//!
//! # Semantics
//!
//! - [`RingProducer::write`] copies as much of the input as fits and returns
//!   how much that was: partial writes are normal, and a writer must always
//!   write what fits (PulseAudio's deadlock rule: a full ring only wakes the
//!   writer once it was *completely* full).
//! - [`RingConsumer::read`] copies out as much as is there; [`RingConsumer::peek`]
//!   does the same without consuming.
//! - Each outcome says whether the peer must be woken. The `pa` ring reports
//!   PulseAudio's transitions: a write that made the ring non-empty from
//!   empty, a read that found it completely full. The `srb` ring reports
//!   whether the peer announced that it is going to sleep for what the
//!   operation provides (after a write: its fdsem `waiting` word; after a
//!   read: its `wants_space` word, set by [`RingProducer::want_space`]),
//!   read after a fence: exact for waking, and free of the per-message
//!   cache miss that exact transitions would cost (see [`srb`] for the
//!   measurement).
//! - Every value read from shared memory is validated before use. A count
//!   outside `0..=capacity`, or a position that moved backwards or by more
//!   than the capacity, yields [`Corrupt`] and poisons the ring end; there is
//!   never an out-of-bounds copy, a panic or an unbounded loop.

pub mod pa;
pub mod srb;

use crate::error::Corrupt;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WriteOutcome {
    /// Bytes copied into the ring (possibly fewer than offered, possibly 0).
    pub written: usize,
    /// The reader may be asleep waiting for these bytes: `pa`, the ring went
    /// from empty to non-empty; `srb`, the reader announced a sleep.
    pub wake_peer: bool,
}

/// What a read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReadOutcome {
    /// Bytes copied out of the ring (possibly fewer than asked, possibly 0).
    pub read: usize,
    /// A writer may be asleep waiting for this space: `pa`, the ring was
    /// completely full before the read; `srb`, the writer announced a sleep
    /// for space ([`RingProducer::want_space`]).
    pub wake_peer: bool,
}

/// The writing end of a byte ring.
pub trait RingProducer {
    /// Whether the channel should post the peer's semaphore after *every*
    /// write, not only when [`WriteOutcome::wake_peer`] is set. PulseAudio's
    /// peers expect that; it is cheap because a post is a no-op while the
    /// semaphore is already signalled.
    const POST_EVERY_WRITE: bool;

    /// Bytes the ring holds when full.
    fn capacity(&self) -> usize;

    /// Bytes that can be written now (a lower bound: the reader may free more).
    fn free(&mut self) -> Result<usize, Corrupt>;

    /// Copies as much of `src` as fits into the ring.
    fn write(&mut self, src: &[u8]) -> Result<WriteOutcome, Corrupt>;

    /// Announces (`true`) that this writer is about to sleep waiting for
    /// space, or withdraws the announcement (`false`) once it stopped
    /// waiting. A reader wakes the writer after a read only while it is
    /// announced (`srb`).
    ///
    /// After announcing, the caller must issue a `SeqCst` fence and then
    /// re-check the free space before it sleeps: the sleeper's half of the
    /// Dekker handshake with the reader's publish, fence and check.
    /// [`crate::SrbChannel`] does this in `wait`, `before_wait` and
    /// `wait_writable`.
    ///
    /// The default does nothing: the `pa` reader wakes a writer whenever it
    /// freed space in a completely full ring, PulseAudio's rule, whatever
    /// the writer announced.
    fn want_space(&mut self, on: bool) {
        let _ = on;
    }
}

/// The reading end of a byte ring.
pub trait RingConsumer {
    /// Bytes the ring holds when full.
    fn capacity(&self) -> usize;

    /// Bytes that can be read now (a lower bound: the writer may add more).
    fn available(&mut self) -> Result<usize, Corrupt>;

    /// Copies up to `dst.len()` bytes out of the ring and consumes them.
    fn read(&mut self, dst: &mut [u8]) -> Result<ReadOutcome, Corrupt>;

    /// Copies up to `dst.len()` bytes out of the ring without consuming them;
    /// returns how many were copied.
    fn peek(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt>;
}

/// Returns the stored error if `poison` is set.
#[inline]
fn check(poison: Option<Corrupt>) -> Result<(), Corrupt> {
    match poison {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
