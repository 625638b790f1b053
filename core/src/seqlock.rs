//! [`SeqlockWriter`] and [`SeqlockReader`]: one writer publishes a block of
//! words that any number of readers, in other processes, copy without ever
//! seeing half of one version and half of another.
//!
//! ```text
//! word   contents
//!   0    sequence: even = stable, odd = the writer is mid-write
//!   1..  payload words (u32), written by the writer only
//! ```
//!
//! All words are naturally aligned `u32` atomics ([`region_len`] bytes in
//! all). The region may be mapped *read-only* in a reader: readers never
//! store, and every load they make is a `Relaxed` load of a `u32`, the one
//! kind of atomic access Rust allows on read-only memory (see "Atomic
//! accesses to read-only memory" in `core::sync::atomic`). The ordering
//! readers need comes from fences instead of Acquire loads.
//!
//! # The protocol and why each ordering is what it is
//!
//! The writer keeps the sequence in a private copy `s` (even) and never
//! loads shared memory, so no reader (or scribbler) can make it wait, and a
//! reader cannot disturb it:
//!
//! ```text
//! writer                                reader (one attempt)
//! seq.store(s + 1, Relaxed)   (W1)      s1 = seq.load(Relaxed)      (R1)
//! fence(Release)              (W2)      fence(Acquire)              (R2)
//! data[i].store(v_i, Relaxed) (W3)      if s1 odd: retry
//! seq.store(s + 2, Release)   (W4)      out[i] = data[i].load(Relaxed) (R3)
//!                                       fence(Acquire)              (R4)
//!                                       s2 = seq.load(Relaxed)      (R5)
//!                                       s1 == s2: out is version s1
//! ```
//!
//! This is the seqlock of H.-J. Boehm, "Can seqlocks get along with
//! programming language memory models?" (MSPC 2012), with the reader's
//! Acquire loads written as Relaxed loads plus Acquire fences.
//!
//! - **W4 Release, R1 + R2 Acquire.** If R1 reads the even value `s + 2`
//!   stored by W4, W4 synchronises with R2, so every data store of that
//!   version (W3, sequenced before W4) happens before every R3: the reader
//!   cannot read a word *older* than the version it saw. (Mutation check:
//!   `loom-mutant-seqlock-publish` makes W4 Relaxed, and loom finds a
//!   reader returning stale words under a newer sequence.)
//! - **W2 Release fence, R4 Acquire fence.** If any R3 reads a word stored
//!   by a *later* write (some W3 after W1 of `s + 1`), the writer's fence W2
//!   (sequenced before that W3) synchronises with R4 (sequenced after that
//!   R3), so W1 happens before R5, and R5 reads `s + 1` or later: `s2 !=
//!   s1`, and the attempt is thrown away. Without W2 the odd store could
//!   become visible after the data; without R4, R5 could be satisfied
//!   before the data loads. (Mutation check: `loom-mutant-seqlock-fence`
//!   drops R4, and loom finds a torn copy returned as valid.)
//! - **W1 and W3 Relaxed.** W1 needs no ordering of its own: W2 orders it
//!   before the data. The data stores are only ever read through the
//!   sequence checks above.
//! - **R1, R3, R5 Relaxed.** Ordering comes from the fences R2 and R4 (and
//!   the loads stay legal on read-only memory).
//!
//! Every payload word is an atomic, so a reader racing the writer reads
//! *some* value of each word (never undefined behaviour) and the sequence
//! check decides whether the copy is kept.
//!
//! # Bounded readers, a writer that never waits
//!
//! A reader makes at most [`SeqlockReader::tries`] attempts (default
//! [`DEFAULT_TRIES`]), then gives up with a named error:
//! [`SeqlockError::Busy`] when the sequence was odd on every attempt (the
//! writer is mid-write, was descheduled there, or died there; or a hostile
//! writer left it odd), [`SeqlockError::Torn`] when it changed during the
//! attempts that found it even. The writer has no loop and no load of
//! shared memory.
//!
//! # Wrap-around
//!
//! The sequence is a free-running `u32` that wraps (`u32::MAX - 1` is
//! followed by `0`). A reader could only be fooled by the sequence coming
//! back to the same value during one attempt: 2^31 complete writes while it
//! copies a few hundred words.

use core::ptr::NonNull;

use crate::atomic::{fence, AtomicU32, Ordering};

/// How many attempts a [`SeqlockReader`] makes by default before it gives
/// up with [`SeqlockError::Busy`] or [`SeqlockError::Torn`].
pub const DEFAULT_TRIES: u32 = 1000;

/// The ordering of the writer's closing store of the even sequence (W4).
/// Release; Relaxed only in the `loom-mutant-seqlock-publish` mutation.
const PUBLISH: Ordering = if cfg!(all(loom, feature = "loom-mutant-seqlock-publish")) {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// Whether the reader skips its fence between the data loads and the
/// second sequence load (R4): only in the `loom-mutant-seqlock-fence`
/// mutation.
const MUTANT_SKIP_READ_FENCE: bool = cfg!(all(loom, feature = "loom-mutant-seqlock-fence"));

/// Bytes of a seqlock region with `words` payload words: the sequence word
/// plus the payload, each one atomic `u32` (larger under `cfg(loom)`,
/// whose atomics are bigger).
pub const fn region_len(words: usize) -> usize {
    (words + 1) * core::mem::size_of::<AtomicU32>()
}

/// The alignment a seqlock region needs (that of an atomic `u32`).
pub const fn region_align() -> usize {
    core::mem::align_of::<AtomicU32>()
}

/// Why a read (or a ranged write) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SeqlockError {
    /// The sequence was odd on every attempt: the writer is mid-write (or
    /// stopped there). Try again later.
    Busy {
        /// Attempts made.
        tries: u32,
    },
    /// The sequence was even at the start of some attempts but changed
    /// before every one of them ended: the writer kept publishing.
    Torn {
        /// Attempts made.
        tries: u32,
    },
    /// The words asked for do not lie inside the payload.
    OutOfRange {
        /// First word asked for.
        start: usize,
        /// Number of words asked for.
        len: usize,
        /// Payload words of the region.
        words: usize,
    },
}

impl core::fmt::Display for SeqlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            SeqlockError::Busy { tries } => {
                write!(f, "seqlock busy: writer mid-write on all {tries} attempts")
            }
            SeqlockError::Torn { tries } => {
                write!(
                    f,
                    "seqlock torn: the sequence moved during all {tries} attempts"
                )
            }
            SeqlockError::OutOfRange { start, len, words } => write!(
                f,
                "words {start}..{start}+{len} are outside a payload of {words} words"
            ),
        }
    }
}

impl core::error::Error for SeqlockError {}

/// Why a region cannot hold a seqlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegionError {
    /// The base is not aligned to [`region_align`].
    Misaligned {
        /// The alignment needed.
        required: usize,
    },
    /// The payload is empty.
    Empty,
}

impl core::fmt::Display for RegionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RegionError::Misaligned { required } => {
                write!(f, "seqlock region is not {required}-byte aligned")
            }
            RegionError::Empty => f.write_str("seqlock region has no payload words"),
        }
    }
}

impl core::error::Error for RegionError {}

/// The words of a region: the sequence and the first payload word.
#[derive(Debug, Clone, Copy)]
struct Region {
    seq: *const AtomicU32,
    data: *const AtomicU32,
    words: usize,
}

impl Region {
    fn new(base: NonNull<u8>, words: usize) -> Result<Self, RegionError> {
        if words == 0 {
            return Err(RegionError::Empty);
        }
        let required = region_align();
        if !(base.as_ptr() as usize).is_multiple_of(required) {
            return Err(RegionError::Misaligned { required });
        }
        let seq = base.as_ptr().cast::<AtomicU32>().cast_const();
        Ok(Self {
            seq,
            data: seq.wrapping_add(1),
            words,
        })
    }

    fn check(&self, start: usize, len: usize) -> Result<(), SeqlockError> {
        match start.checked_add(len) {
            Some(end) if end <= self.words => Ok(()),
            _ => Err(SeqlockError::OutOfRange {
                start,
                len,
                words: self.words,
            }),
        }
    }

    fn seq(&self) -> &AtomicU32 {
        // SAFETY: the constructors' contracts: the sequence word is a live,
        // aligned atomic `u32` for as long as the region is used; a shared
        // reference to an atomic permits concurrent writes by the writer.
        unsafe { &*self.seq }
    }

    /// Payload word `i`; the caller has checked `i < words`.
    fn word(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.words);
        // SAFETY: as for `seq`; `i < words` keeps it inside the region.
        unsafe { &*self.data.add(i) }
    }
}

/// The single writer of a seqlock region.
///
/// Never waits and never loads shared memory: it keeps the sequence in a
/// private copy.
#[derive(Debug)]
pub struct SeqlockWriter {
    region: Region,
    /// The current (even) sequence value, private.
    seq: u32,
}

// SAFETY: the writer is the only one storing to its region (the `init`
// contract); moving it to another thread moves that role with it.
unsafe impl Send for SeqlockWriter {}

impl SeqlockWriter {
    /// Initialises a region of `words` payload words at `base` (sequence 0,
    /// every word 0) and returns its writer.
    ///
    /// # Safety
    ///
    /// - `base..base + region_len(words)` is valid for reads and writes and
    ///   stays mapped for as long as the writer, or any reader of the
    ///   region, is used;
    /// - no reader uses the region yet (this is the plain initialisation
    ///   before the memory is shared), and the returned writer is the only
    ///   one;
    /// - no Rust reference other than to these atomics is formed into the
    ///   range.
    pub unsafe fn init(base: NonNull<u8>, words: usize) -> Result<Self, RegionError> {
        let region = Region::new(base, words)?;
        for i in 0..=words {
            // SAFETY: inside the region by the contract, aligned (checked),
            // and nobody else accesses it yet; `write` does not read or drop
            // the old contents.
            unsafe { region.seq.cast_mut().add(i).write(AtomicU32::new(0)) };
        }
        Ok(Self { region, seq: 0 })
    }

    /// Publishes `words` as the new payload, from word 0. Words after
    /// `words.len()` keep their values.
    pub fn write(&mut self, words: &[u32]) -> Result<(), SeqlockError> {
        self.write_at(0, words)
    }

    /// Publishes `words` at payload words `start..start + words.len()`;
    /// the other words keep their values and are part of the new version.
    pub fn write_at(&mut self, start: usize, words: &[u32]) -> Result<(), SeqlockError> {
        self.region.check(start, words.len())?;
        let r = &self.region;
        // W1. Relaxed: the fence below orders it before the data stores.
        r.seq().store(self.seq.wrapping_add(1), Ordering::Relaxed);
        // W2. Release fence: a reader whose data load sees a store below and
        // who then fences with Acquire also sees the odd sequence.
        fence(Ordering::Release);
        for (i, &w) in words.iter().enumerate() {
            // W3. Relaxed: ordered by W2 before and W4 after.
            r.word(start + i).store(w, Ordering::Relaxed);
        }
        self.seq = self.seq.wrapping_add(2);
        // W4. Release: a reader that loads this value (and fences with
        // Acquire) sees every data store above.
        r.seq().store(self.seq, PUBLISH);
        Ok(())
    }

    /// The sequence value of the last publication (even; 0 before the
    /// first). Readers report it with each copy.
    pub fn sequence(&self) -> u32 {
        self.seq
    }

    /// Payload words of the region.
    pub fn words(&self) -> usize {
        self.region.words
    }
}

/// A reader of a seqlock region. Never stores; see the module docs for the
/// bounded retry.
#[derive(Debug, Clone, Copy)]
pub struct SeqlockReader {
    region: Region,
    tries: u32,
}

// SAFETY: a reader only loads its region's atomics; any number of them, on
// any threads, may do so at once (the `new` contract keeps the memory
// mapped).
unsafe impl Send for SeqlockReader {}
// SAFETY: as above; `&SeqlockReader` only performs atomic loads.
unsafe impl Sync for SeqlockReader {}

impl SeqlockReader {
    /// A reader of the region of `words` payload words at `base`.
    ///
    /// # Safety
    ///
    /// - `base..base + region_len(words)` is valid for reads (read-only is
    ///   enough) and stays mapped for as long as the reader is used;
    /// - its words were initialised as atomics before the reader was made
    ///   (always true of plain memory; under `cfg(loom)`, by
    ///   [`SeqlockWriter::init`]);
    /// - no Rust reference other than to these atomics is formed into the
    ///   range. Anyone may write it at any time: that only makes reads
    ///   fail or return the writer's values.
    pub unsafe fn new(base: NonNull<u8>, words: usize) -> Result<Self, RegionError> {
        Ok(Self {
            region: Region::new(base, words)?,
            tries: DEFAULT_TRIES,
        })
    }

    /// The same reader, making at most `tries` attempts per read (at least
    /// one).
    pub fn with_tries(self, tries: u32) -> Self {
        Self {
            tries: tries.max(1),
            ..self
        }
    }

    /// Attempts per read.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// Payload words of the region.
    pub fn words(&self) -> usize {
        self.region.words
    }

    /// Copies payload words `0..out.len()` of one version into `out` and
    /// returns that version's (even) sequence value.
    pub fn read(&self, out: &mut [u32]) -> Result<u32, SeqlockError> {
        self.read_at(0, out)
    }

    /// Copies payload words `start..start + out.len()` of one version into
    /// `out` and returns that version's (even) sequence value. On an error
    /// `out` holds garbage.
    pub fn read_at(&self, start: usize, out: &mut [u32]) -> Result<u32, SeqlockError> {
        self.region.check(start, out.len())?;
        let mut saw_even = false;
        for _ in 0..self.tries {
            match self.attempt(start, out) {
                Attempt::Stable(seq) => return Ok(seq),
                Attempt::Odd => {}
                Attempt::Moved => saw_even = true,
            }
            #[cfg(all(test, not(loom)))]
            crate::atomic::test_hook::run();
            crate::atomic::spin_hint();
        }
        Err(if saw_even {
            SeqlockError::Torn { tries: self.tries }
        } else {
            SeqlockError::Busy { tries: self.tries }
        })
    }

    /// One attempt (R1..R5 in the module docs).
    fn attempt(&self, start: usize, out: &mut [u32]) -> Attempt {
        let r = &self.region;
        // R1. Relaxed (legal on read-only memory); R2 gives it Acquire.
        let s1 = r.seq().load(Ordering::Relaxed);
        // R2. Acquire fence: if s1 came from a publication (W4), its data
        // stores happen before the loads below.
        fence(Ordering::Acquire);
        if s1 & 1 == 1 {
            return Attempt::Odd;
        }
        for (i, o) in out.iter_mut().enumerate() {
            // R3. Relaxed: ordered by R2 before and R4 after.
            *o = r.word(start + i).load(Ordering::Relaxed);
        }
        #[cfg(all(test, not(loom)))]
        crate::atomic::test_hook::run();
        // R4. Acquire fence: if a load above saw a later write's data, that
        // write's odd sequence (W1, before its W2) is visible to R5.
        if !MUTANT_SKIP_READ_FENCE {
            fence(Ordering::Acquire);
        }
        // R5. Relaxed: ordered after the data loads by R4.
        let s2 = r.seq().load(Ordering::Relaxed);
        if s1 == s2 {
            Attempt::Stable(s1)
        } else {
            Attempt::Moved
        }
    }
}

/// The outcome of one read attempt.
enum Attempt {
    /// A consistent copy of the version with this sequence.
    Stable(u32),
    /// The writer was mid-write when the attempt began.
    Odd,
    /// The sequence changed while copying.
    Moved,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::boxed::Box;

    /// Private, aligned memory for a region of `words` payload words.
    fn mem(words: usize) -> Box<[AtomicU32]> {
        (0..=words).map(|_| AtomicU32::new(0)).collect()
    }

    fn base(m: &[AtomicU32]) -> NonNull<u8> {
        NonNull::from(&m[0]).cast()
    }

    fn pair(m: &[AtomicU32]) -> (SeqlockWriter, SeqlockReader) {
        let words = m.len() - 1;
        // SAFETY: `m` outlives both in every test; only they access it.
        unsafe {
            (
                SeqlockWriter::init(base(m), words).unwrap(),
                SeqlockReader::new(base(m), words).unwrap(),
            )
        }
    }

    #[test]
    fn a_fresh_region_reads_as_version_zero() {
        let m = mem(3);
        let (_w, r) = pair(&m);
        let mut out = [7u32; 3];
        assert_eq!(r.read(&mut out), Ok(0));
        assert_eq!(out, [0, 0, 0]);
    }

    #[test]
    fn a_publication_is_read_whole_and_ranges_work() {
        let m = mem(4);
        let (mut w, r) = pair(&m);
        w.write(&[1, 2, 3, 4]).unwrap();
        assert_eq!(w.sequence(), 2);
        let mut out = [0u32; 4];
        assert_eq!(r.read(&mut out), Ok(2));
        assert_eq!(out, [1, 2, 3, 4]);
        w.write_at(2, &[30]).unwrap();
        let mut two = [0u32; 2];
        assert_eq!(r.read_at(2, &mut two), Ok(4));
        assert_eq!(two, [30, 4]);
        assert_eq!(
            r.read_at(3, &mut two),
            Err(SeqlockError::OutOfRange {
                start: 3,
                len: 2,
                words: 4
            })
        );
        assert_eq!(
            w.write_at(usize::MAX, &[1]),
            Err(SeqlockError::OutOfRange {
                start: usize::MAX,
                len: 1,
                words: 4
            })
        );
        // A refused write leaves the sequence even and unchanged.
        assert_eq!(m[0].load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_sequence_stuck_odd_gives_busy_after_the_bounded_tries() {
        let m = mem(2);
        let (_w, r) = pair(&m);
        m[0].store(7, Ordering::Relaxed); // a writer that died mid-write
        let r = r.with_tries(5);
        let mut out = [0u32; 2];
        assert_eq!(r.read(&mut out), Err(SeqlockError::Busy { tries: 5 }));
        assert_eq!(r.with_tries(0).tries(), 1, "at least one attempt");
    }

    /// Runs `read` with `hook` called after each attempt's copy and
    /// between attempts (the two points where a racing writer matters);
    /// the hook gets the call number, from 0.
    fn with_hook<T>(mut hook: impl FnMut(u32) + 'static, read: impl FnOnce() -> T) -> T {
        let mut n = 0;
        crate::atomic::test_hook::set(move || {
            hook(n);
            n += 1;
        });
        let out = read();
        crate::atomic::test_hook::clear();
        out
    }

    /// A `&'static` view of the test's words, for the hook.
    fn leak(words: usize) -> &'static [AtomicU32] {
        Box::leak(mem(words))
    }

    #[test]
    fn an_odd_sequence_is_retried_until_the_writer_finishes() {
        let m = leak(1);
        let (_w, r) = pair(m);
        m[0].store(1, Ordering::Relaxed); // a writer mid-write
        let mut out = [0u32; 1];
        let got = with_hook(
            move |n| {
                if n == 0 {
                    // Between attempt 1 (odd) and 2: the writer finishes.
                    m[1].store(5, Ordering::Relaxed);
                    m[0].store(2, Ordering::Release);
                }
            },
            || r.read(&mut out),
        );
        assert_eq!((got, out), (Ok(2), [5]));
    }

    #[test]
    fn a_writer_starting_mid_copy_makes_the_reader_retry() {
        let m = leak(1);
        let (_w, r) = pair(m);
        m[0].store(2, Ordering::Relaxed);
        m[1].store(4, Ordering::Relaxed);
        let mut out = [0u32; 1];
        let got = with_hook(
            move |n| match n {
                // After attempt 1's copy: the writer begins (odd) and has
                // already stored half a version.
                0 => {
                    m[0].store(3, Ordering::Relaxed);
                    m[1].store(6, Ordering::Relaxed);
                }
                // Between the attempts: it finishes.
                1 => m[0].store(4, Ordering::Release),
                _ => {}
            },
            || r.read(&mut out),
        );
        assert_eq!(
            (got, out),
            (Ok(4), [6]),
            "the copy of attempt 1 is thrown away"
        );
    }

    #[test]
    fn a_sequence_that_keeps_moving_is_torn() {
        let m = leak(2);
        let (_w, r) = pair(m);
        let r = r.with_tries(4);
        let mut out = [0u32; 2];
        // A writer that publishes during every copy (and between them).
        let got = with_hook(
            move |_| {
                m[0].fetch_add(2, Ordering::Relaxed);
            },
            || r.read(&mut out),
        );
        assert_eq!(got, Err(SeqlockError::Torn { tries: 4 }));
    }

    #[test]
    fn the_sequence_wraps_around() {
        let m = mem(1);
        let (mut w, r) = pair(&m);
        w.seq = u32::MAX - 1;
        m[0].store(u32::MAX - 1, Ordering::Relaxed);
        w.write(&[9]).unwrap();
        assert_eq!(w.sequence(), 0, "u32::MAX - 1 + 2 wraps to 0");
        let mut out = [0u32; 1];
        assert_eq!(r.read(&mut out), Ok(0));
        assert_eq!(out, [9]);
        w.write(&[10]).unwrap();
        assert_eq!(r.read(&mut out), Ok(2));
        assert_eq!(out, [10]);
    }

    #[test]
    fn bad_regions_are_refused() {
        let m = mem(2);
        let odd = NonNull::new(base(&m).as_ptr().wrapping_add(1)).unwrap();
        // SAFETY: refused before any access.
        unsafe {
            assert_eq!(
                SeqlockReader::new(odd, 1).unwrap_err(),
                RegionError::Misaligned { required: 4 }
            );
            assert_eq!(
                SeqlockReader::new(base(&m), 0).unwrap_err(),
                RegionError::Empty
            );
        }
    }

    #[test]
    fn threads_never_see_a_torn_copy() {
        // Every version writes the same value to every word.
        const WORDS: usize = 16;
        let m: &'static [AtomicU32] = Box::leak(mem(WORDS));
        let (mut w, r) = pair(m);
        let r = r.with_tries(u32::MAX);
        let writer = std::thread::spawn(move || {
            for v in 1..=20_000u32 {
                w.write(&[v; WORDS]).unwrap();
            }
        });
        let mut out = [0u32; WORDS];
        let mut last = 0;
        while last < 40_000 {
            let seq = r.read(&mut out).unwrap();
            assert!(out.iter().all(|&x| x == seq / 2), "torn: {seq} {out:?}");
            assert!(seq >= last, "versions never go backwards");
            last = seq;
        }
        writer.join().unwrap();
    }
}
