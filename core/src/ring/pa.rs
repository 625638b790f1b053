//! PulseAudio's ring: one shared byte count, private indices.
//!
//! This is the algorithm of the private `pa_ringbuffer` in PulseAudio's
//! `srbchannel.c` (see `pa-native-protocol.md` §5.5), which unmodified
//! libpulse runs on the other side:
//!
//! - The only shared word is `count`, the bytes in the ring. The writer adds
//!   to it after copying, the reader subtracts after copying out. Each side's
//!   index into the ring (modulo `capacity`) is private and starts at 0.
//! - Every access to `count` is `SeqCst`, as PulseAudio's `atomic.h` does:
//!   the payload is written before the `fetch_add` (a release) and read after
//!   the load (an acquire), and the fd-semaphore handshake that follows a ring
//!   operation needs the total order (see [`crate::fdsem`]).
//! - The reader's `fetch_sub` returns the old count; if it was `capacity` the
//!   ring was completely full and the writer may be waiting for space.
//!
//! Validation: every count read is checked to be in `0..=capacity`, and the
//! old values returned by our own read-modify-writes are checked against what
//! the single other party could have done in between (a writer only ever sees
//! the count shrink, a reader only ever sees it grow). Anything else is
//! [`Corrupt`]: the end is poisoned and never copies another byte.

use super::{check, ReadOutcome, RingConsumer, RingProducer, WriteOutcome};
use crate::atomic::{AtomicI32, Ordering, SchedPoint};
use crate::block::RingData;
use crate::error::{Corrupt, Field};

/// The ordering of every access to the shared count: SeqCst, as libpulse
/// does (a release for the payload written before an add, an acquire for
/// the payload read after a load, and part of the total order the fdsem
/// handshake relies on). With the `loom-mutant` feature under `cfg(loom)`
/// it is weakened to Relaxed, and `srb-loom-tests` checks that loom then
/// reports the payload race.
const COUNT_ORDER: Ordering = if cfg!(all(loom, feature = "loom-mutant")) {
    Ordering::Relaxed
} else {
    Ordering::SeqCst
};

/// The raw parts of one direction of a PulseAudio-layout ring.
///
/// The fields are private and set only by the unsafe [`RawRing::new`],
/// whose contract makes the safe accessors sound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRing {
    /// The shared byte count.
    count: *const AtomicI32,
    /// The ring's data area.
    data: RingData,
    /// Bytes in the ring, `1..=i32::MAX`, validated by the layout.
    capacity: u32,
}

impl RawRing {
    /// # Safety
    /// `count` is an aligned atomic and `data` a data area of `capacity`
    /// bytes, both inside one live [`crate::Block`] that outlives every copy
    /// of the returned value; `capacity` is in `1..=i32::MAX`.
    pub(crate) unsafe fn new(count: *const AtomicI32, data: RingData, capacity: u32) -> Self {
        Self {
            count,
            data,
            capacity,
        }
    }

    /// Loads the count and checks it lies in `0..=capacity`.
    fn load_count(&self) -> Result<u32, Corrupt> {
        // COUNT_ORDER (SeqCst): an acquire of the payload the writer added,
        // and part of the fdsem's total order.
        let c = self.count().load(COUNT_ORDER);
        if c < 0 || c as u32 > self.capacity {
            return Err(Corrupt::new(Field::Count, i64::from(c)));
        }
        Ok(c as u32)
    }

    fn count(&self) -> &AtomicI32 {
        // SAFETY: `new`'s contract: aligned, inside a live block. The
        // reference is to an atomic, whose every access is an atomic
        // operation, never to plain shared bytes.
        unsafe { &*self.count }
    }
}

/// The writing end of a PulseAudio-layout ring.
#[derive(Debug)]
pub struct Producer {
    ring: RawRing,
    /// Private write index, `0..capacity`.
    index: u32,
    poison: Option<Corrupt>,
    sched: SchedPoint,
}

/// The reading end of a PulseAudio-layout ring.
#[derive(Debug)]
pub struct Consumer {
    ring: RawRing,
    /// Private read index, `0..capacity`.
    index: u32,
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
    /// `ring` was validated by a layout against a live [`crate::Block`], and
    /// this is the only producer of that ring.
    pub(crate) unsafe fn new(ring: RawRing) -> Self {
        Self {
            ring,
            index: 0,
            poison: None,
            sched: SchedPoint::new(),
        }
    }

    fn fail(&mut self, e: Corrupt) -> Corrupt {
        self.poison = Some(e);
        e
    }
}

impl Consumer {
    /// # Safety
    /// `ring` was validated by a layout against a live [`crate::Block`], and
    /// this is the only consumer of that ring.
    pub(crate) unsafe fn new(ring: RawRing) -> Self {
        Self {
            ring,
            index: 0,
            poison: None,
            sched: SchedPoint::new(),
        }
    }

    fn fail(&mut self, e: Corrupt) -> Corrupt {
        self.poison = Some(e);
        e
    }

    /// Copies up to `dst.len()` readable bytes starting at the private index
    /// (wrapping at most once); returns the count seen and bytes copied.
    fn copy_out(&mut self, dst: &mut [u8]) -> Result<(u32, usize), Corrupt> {
        let count = self.ring.load_count().map_err(|e| self.fail(e))?;
        let cap = self.ring.capacity as usize;
        let idx = self.index as usize;
        let want = dst.len().min(count as usize);
        let first = want.min(cap - idx);
        self.sched.hit();
        // SAFETY: `idx + first <= cap` and the data area is `cap` bytes inside
        // the block; the `count` load (SeqCst, so also an acquire) handed
        // these bytes to us.
        unsafe { self.ring.data.read(idx, &mut dst[..first]) };
        self.sched.hit();
        // SAFETY: the wrapped part starts at the ring's first byte and is
        // `want - first <= count - first <= cap - first` bytes long.
        unsafe { self.ring.data.read(0, &mut dst[first..want]) };
        Ok((count, want))
    }
}

impl RingProducer for Producer {
    const POST_EVERY_WRITE: bool = true;

    fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    fn free(&mut self) -> Result<usize, Corrupt> {
        check(self.poison)?;
        let c = self.ring.load_count().map_err(|e| self.fail(e))?;
        Ok((self.ring.capacity - c) as usize)
    }

    fn write(&mut self, src: &[u8]) -> Result<WriteOutcome, Corrupt> {
        check(self.poison)?;
        let cap = self.ring.capacity;
        let mut out = WriteOutcome::default();
        // At most two passes: up to the end of the data area, then from its
        // start. Each pass is bounded by what is left of `src`.
        for _ in 0..2 {
            let left = src.len() - out.written;
            if left == 0 {
                break;
            }
            let count = self.ring.load_count().map_err(|e| self.fail(e))?;
            let n = (cap - count)
                .min(cap - self.index)
                .min(left.min(cap as usize) as u32);
            if n == 0 {
                break;
            }
            let chunk = &src[out.written..out.written + n as usize];
            self.sched.hit();
            // SAFETY: `index + n <= cap`, the data area is `cap` bytes inside
            // the block, and `n <= cap - count` bytes are free: the reader
            // does not touch them until the `fetch_add` below publishes them.
            unsafe { self.ring.data.write(self.index as usize, chunk) };
            // SeqCst: a release for the payload, and part of the total order
            // the fdsem handshake relies on.
            let old = self.ring.count().fetch_add(n as i32, COUNT_ORDER);
            // Only the reader changes the count meanwhile, and only downwards.
            if old < 0 || old as u32 > count {
                return Err(self.fail(Corrupt::new(Field::Count, i64::from(old))));
            }
            out.wake_peer |= old == 0;
            out.written += n as usize;
            self.index += n;
            if self.index == cap {
                self.index = 0;
            }
        }
        Ok(out)
    }
}

impl RingConsumer for Consumer {
    fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    fn available(&mut self) -> Result<usize, Corrupt> {
        check(self.poison)?;
        let c = self.ring.load_count().map_err(|e| self.fail(e))?;
        Ok(c as usize)
    }

    fn read(&mut self, dst: &mut [u8]) -> Result<ReadOutcome, Corrupt> {
        check(self.poison)?;
        let cap = self.ring.capacity;
        let (count, n) = self.copy_out(dst)?;
        if n == 0 {
            return Ok(ReadOutcome::default());
        }
        // SeqCst: our copies out complete before the writer may reuse the
        // space, and the fdsem handshake needs the total order.
        let old = self.ring.count().fetch_sub(n as i32, COUNT_ORDER);
        // Only the writer changes the count meanwhile, and only upwards.
        if old < 0 || (old as u32) < count || old as u32 > cap {
            return Err(self.fail(Corrupt::new(Field::Count, i64::from(old))));
        }
        self.index = ((self.index as usize + n) % cap as usize) as u32;
        Ok(ReadOutcome {
            read: n,
            wake_peer: old as u32 == cap,
        })
    }

    fn peek(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt> {
        check(self.poison)?;
        Ok(self.copy_out(dst)?.1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The old-value checks: a peer that changes the count between a ring
    //! end's load and its own read-modify-write. The race is made
    //! deterministic with the `SchedPoint` test hook, which runs between
    //! the two.
    use super::*;
    use crate::atomic::test_hook;
    use crate::layout::pa;
    use crate::Block;
    use core::ptr::NonNull;
    use std::boxed::Box;

    #[repr(C, align(128))]
    struct Mem([u8; 512]);

    const CAP: u32 = 64;

    /// The server→client ring of a fresh `pa` block, and its count word.
    fn ring(mem: &mut Mem) -> (Producer, Consumer, *const AtomicI32) {
        let base = NonNull::new(mem.0.as_mut_ptr()).unwrap();
        // SAFETY: `mem` outlives the ring ends (each test drops them first)
        // and is only reached through the core and the count pointer.
        let block = unsafe { Block::new(base, 512) };
        let g = pa::Geometry {
            capacity: CAP,
            readbuf_offset: pa::RINGS_START as u32,
            writebuf_offset: pa::RINGS_START as u32 + CAP,
        };
        // SAFETY: fresh memory; one server and one client.
        let (_, server) = unsafe { pa::init_server_with(block, g) }.unwrap();
        // SAFETY: as above.
        let (_, client) = unsafe { pa::adopt_client(block) }.unwrap();
        let count = block.at::<AtomicI32>(pa::WRITE_COUNT_OFFSET);
        (server.producer, client.consumer, count)
    }

    /// Makes the next `SchedPoint` store `v` into the count, once.
    fn scribble_once(count: *const AtomicI32, v: i32) {
        let mut done = false;
        test_hook::set(move || {
            if !done {
                done = true;
                // SAFETY: the count word of the live test block; an atomic
                // store, as a peer's.
                unsafe { &*count }.store(v, Ordering::SeqCst);
            }
        });
    }

    fn corrupt(v: i64) -> Corrupt {
        Corrupt::new(Field::Count, v)
    }

    #[test]
    fn a_count_that_grows_under_the_writer_is_corrupt() {
        let mut mem = Box::new(Mem([0; 512]));
        let (mut p, _c, count) = ring(&mut mem);
        // The writer loads 0; before its fetch_add the count becomes 5,
        // in range, but only the writer adds: the fetch_add's old value 5
        // is more than it loaded.
        scribble_once(count, 5);
        let got = p.write(&[1; 10]);
        test_hook::clear();
        assert_eq!(got, Err(corrupt(5)));
        assert_eq!(p.write(&[1]), Err(corrupt(5)), "poisoned");
    }

    #[test]
    fn a_count_that_shrinks_under_the_reader_is_corrupt() {
        let mut mem = Box::new(Mem([0; 512]));
        let (mut p, mut c, count) = ring(&mut mem);
        assert_eq!(p.write(&[7; 20]).unwrap().written, 20);
        // The reader loads 20; before its fetch_sub the count becomes 3,
        // in range, but only the reader subtracts.
        scribble_once(count, 3);
        let mut buf = [0u8; 8];
        let got = c.read(&mut buf);
        test_hook::clear();
        assert_eq!(got, Err(corrupt(3)));
        assert_eq!(c.read(&mut buf), Err(corrupt(3)), "poisoned");
    }

    #[test]
    fn a_count_above_capacity_under_the_reader_is_corrupt() {
        let mut mem = Box::new(Mem([0; 512]));
        let (mut p, mut c, count) = ring(&mut mem);
        assert_eq!(p.write(&[7; 20]).unwrap().written, 20);
        // Growth is legal under a reader (the writer adds), but never past
        // the capacity.
        scribble_once(count, CAP as i32 + 1);
        let mut buf = [0u8; 8];
        let got = c.read(&mut buf);
        test_hook::clear();
        assert_eq!(got, Err(corrupt(i64::from(CAP) + 1)));
    }
}
