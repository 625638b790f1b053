//! # srb-core: a shared ring-buffer channel for memory a hostile peer can write
//!
//! `srb-core` is the `no_std`, allocation-free heart of srb: two
//! single-producer/single-consumer byte rings and two fd-semaphores in one
//! block of shared memory, so that two processes (or two cores, or a thread
//! and an interrupt handler) exchange bytes without a system call per
//! message and wake each other only when one of them sleeps.
//!
//! Beside the channel it holds a [`seqlock`]: a single writer publishes a
//! block of `u32` words (srb-linux's read-only state page) and readers in
//! other processes copy one whole version, retrying a bounded number of
//! times, without ever storing to the shared memory or making the writer
//! wait.
//!
//! The channel speaks two layouts through one API:
//!
//! - **`pa`** — PulseAudio's `srbchannel` byte for byte, so a Rust server can
//!   hand a block to unmodified libpulse clients (and a Rust client can adopt
//!   a block from a PulseAudio server);
//! - **`srb`** — our own layout for peers we control: versioned, with
//!   producer- and consumer-owned words on separate cache lines and cached
//!   peer positions.
//!
//! ## Where things live
//!
//! | module | what it holds |
//! |---|---|
//! | [`block`] | [`Block`]: the shared memory as raw pointer + length, and the only payload copies |
//! | [`layout`] | the two header layouts: create/initialise, attach/adopt, validate geometry ([`AttachError`]) |
//! | [`ring`] | the byte rings: [`RingProducer`], [`RingConsumer`], [`ring::pa`], [`ring::srb`] |
//! | [`fdsem`] | PulseAudio's fd-semaphore protocol (waiting / signalled / in_pipe) |
//! | [`signal`] | [`Notify`] and [`Wait`], the only link to the OS, and [`SpinSignal`] |
//! | [`seqlock`] | [`SeqlockWriter`] / [`SeqlockReader`]: one writer publishes words that readers (read-only mappings too) copy whole or not at all |
//! | [`channel`] | [`SrbChannel`]: rings + semaphores + signals for one side |
//! | [`error`] | [`Corrupt`]: an impossible value found in shared memory |
//!
//! ## The rules this crate keeps
//!
//! - **Shared memory is hostile input.** The exact rule for references
//!   into the block:
//!   - shared references are formed only to *atomic* types (`&AtomicU32`,
//!     `&AtomicI32`, and structs made only of them: the fdsem words, the
//!     `srb` header's configuration line), and every access through them is
//!     an atomic operation. That is sound although the peer writes those
//!     words at any time: an atomic's contents live in an `UnsafeCell`, so
//!     a `&AtomicU32` permits concurrent mutation, and the peer's writes
//!     are naturally aligned 32-bit stores, which the hardware performs
//!     single-copy atomically;
//!   - no reference of any kind (`&T`, `&mut T`, `&[u8]`, `&mut [u8]`) is
//!     formed to payload bytes or to any non-atomic word of the block.
//!     Payload is copied with `copy_nonoverlapping` through raw pointers
//!     after the Acquire that hands it over; the slices involved are always
//!     the caller's private buffers;
//!   - the only plain (non-atomic) write to the block is the creator's
//!     initialisation of the header before the block is shared.
//!
//!   Every value read from the block is read once, validated, and only the
//!   private copy is used. Capacity and offsets are validated once at
//!   attach and never read again.
//! - **Impossible values are errors, never UB, panics or hangs.** A count
//!   outside `0..=capacity`, a position that moved backwards or by more than
//!   the capacity, an fdsem word the protocol cannot produce: each gives
//!   [`Corrupt`] naming the word, and the ring end stays poisoned.
//! - **No system calls.** Wake-ups go through [`Notify`] and [`Wait`]; an
//!   operation reports whether the peer must be woken so the caller pays for
//!   a syscall only then.
//! - **Lock-free atomics only.** [`portable-atomic`](portable_atomic) without
//!   its lock fallback, asserted lock-free at compile time: a lock would be
//!   private to one process.
//! - **Model-checked.** Under `cfg(loom)` the atomics are loom's, every
//!   payload copy is reported to loom as a cell access per byte, and the
//!   `srb-loom-tests` crate checks the rings, the fdsem and the channel in
//!   every interleaving of small models (up to a preemption bound). Two
//!   mutation checks must make the models fail: the `loom-mutant` feature
//!   weakens the rings' orderings to Relaxed, and `loom-mutant-wake` makes
//!   the `srb` reader skip the wake-up of a writer waiting for space. Two
//!   more break the seqlock: `loom-mutant-seqlock-publish` (the writer's
//!   closing store Relaxed) and `loom-mutant-seqlock-fence` (the reader
//!   skips its fence before re-checking the sequence).
//! - **No lost or duplicated bytes on errors.** See [`channel`]: an `Err`
//!   from a transfer means no byte moved; a failed wake-up after a
//!   transfer is owed and retried.
//!
//! ## Example: both sides in one process
//!
//! ```
//! use core::ptr::NonNull;
//! use srb_core::{layout::srb, Block, SpinSignal, SrbChannel};
//!
//! // Any memory both sides can reach; here a private, 128-byte aligned buffer.
//! #[repr(C, align(128))]
//! struct Mem([u8; 4096]);
//! let mut mem = Box::new(Mem([0; 4096]));
//! let base = NonNull::new(mem.0.as_mut_ptr()).unwrap();
//! // SAFETY: `mem` outlives both channels and is only reached through them.
//! let block = unsafe { Block::new(base, 4096) };
//!
//! let (to_a, to_b) = (SpinSignal::new(), SpinSignal::new());
//! // SAFETY: fresh block; one creator and one attacher.
//! let (_, creator) = unsafe { srb::create(block, 1024) }.unwrap();
//! let (_, attacher) = unsafe { srb::attach(block) }.unwrap();
//! let mut a = SrbChannel::new(creator, &to_b, &to_a);
//! let mut b = SrbChannel::new(attacher, &to_a, &to_b);
//!
//! assert_eq!(a.write(b"hello").unwrap(), 5);
//! let mut buf = [0u8; 16];
//! assert_eq!(b.read(&mut buf).unwrap(), 5);
//! assert_eq!(&buf[..5], b"hello");
//! ```
#![no_std]
#![deny(missing_docs)]

#[cfg(any(test, loom))]
extern crate std;

mod atomic;
pub mod block;
pub mod channel;
pub mod error;
pub mod fdsem;
pub mod layout;
pub mod ring;
pub mod seqlock;
pub mod signal;

pub use block::Block;
pub use channel::{ChannelError, SrbChannel};
pub use error::{Corrupt, Field};
pub use fdsem::{FdsemError, FdsemPoster, FdsemWaiter, WaitDecision, Woken};
pub use layout::{AttachError, Ends};
pub use ring::{ReadOutcome, RingConsumer, RingProducer, WriteOutcome};
pub use seqlock::{SeqlockError, SeqlockReader, SeqlockWriter};
pub use signal::{Notify, SpinSignal, Wait};
