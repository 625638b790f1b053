//! loom models of `srb-core`'s seqlock: one writer publishing versions,
//! one or two readers copying them, in every interleaving up to the
//! preemption bound (and with every store each relaxed load may read).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p srb-loom-tests --release --target-dir target/loom --test seqlock`
//!
//! Version `v` of the payload is `[v, v, checksum(v)]`, so a copy is whole
//! when every word belongs to the version its sequence names (`seq / 2`).
//! A reader's result is either such a copy or a named error (`Busy`,
//! `Torn`); a torn copy returned as valid fails the model. The writer has
//! no loop, so it always finishes (loom would report a deadlock otherwise).
//!
//! The mutation checks (`scripts/test.sh` runs them):
//! `--features mutant-seqlock-publish` makes the writer's closing store of
//! the even sequence Relaxed, `--features mutant-seqlock-fence` drops the
//! reader's fence before its second sequence load; the `mutant_seqlock_*`
//! models must then find a torn copy (they are `#[should_panic]`).
#![cfg(loom)]

use std::ptr::NonNull;

use loom::thread;
use std::sync::Arc;

use srb_core::seqlock::{region_align, region_len, SeqlockError, SeqlockReader, SeqlockWriter};

/// Payload words: two values and a checksum (version 0, the fresh region,
/// is all zeros).
const WORDS: usize = 3;

/// Memory for one region; the core initialises loom atomics in it.
struct Mem {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: plain heap memory, reached only through the seqlock's atomics.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl Mem {
    fn new() -> Arc<Self> {
        let layout =
            std::alloc::Layout::from_size_align(region_len(WORDS), region_align()).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        Arc::new(Self { ptr, layout })
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the atomics in it
        // need no drop.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

fn payload(v: u32) -> [u32; WORDS] {
    [v, v, v.wrapping_mul(0x9E37_79B1)]
}

/// A writer and a reader (making `tries` attempts) over fresh memory.
fn setup(tries: u32) -> (Arc<Mem>, SeqlockWriter, SeqlockReader) {
    let mem = Mem::new();
    // SAFETY: `mem` is kept alive by every thread that uses the region;
    // the writer is the only one; readers are made after the init.
    let (w, r) = unsafe {
        (
            SeqlockWriter::init(mem.ptr, WORDS).unwrap(),
            SeqlockReader::new(mem.ptr, WORDS).unwrap(),
        )
    };
    (mem, w, r.with_tries(tries))
}

/// One read: a whole version, or a named error. Panics on a torn copy.
fn read_checked(r: &SeqlockReader) -> Option<u32> {
    let mut out = [0u32; WORDS];
    match r.read(&mut out) {
        Ok(seq) => {
            assert_eq!(seq % 2, 0, "a copy is only returned for an even sequence");
            assert_eq!(out, payload(seq / 2), "torn copy at sequence {seq}");
            Some(seq)
        }
        Err(SeqlockError::Busy { .. } | SeqlockError::Torn { .. }) => None,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn model(cap: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("SRB_LOOM_EXHAUSTIVE").is_some() {
        b.preemption_bound = None;
    } else {
        b.preemption_bound = Some(b.preemption_bound.unwrap_or(2).min(cap));
    }
    b.check(f);
}

/// The writer thread: publishes versions 1 and 2, returns its sequence.
fn spawn_writer(mem: &Arc<Mem>, mut w: SeqlockWriter) -> thread::JoinHandle<u32> {
    let keep = mem.clone();
    thread::spawn(move || {
        let _keep = keep;
        for v in 1..=2 {
            w.write(&payload(v)).unwrap();
        }
        w.sequence()
    })
}

/// One writer publishes versions 1 and 2; one reader reads twice (two
/// attempts each). Versions read never go backwards.
fn one_reader_model() {
    model(3, || {
        let (mem, w, r) = setup(2);
        let writer = spawn_writer(&mem, w);
        let a = read_checked(&r);
        let b = read_checked(&r);
        if let (Some(a), Some(b)) = (a, b) {
            assert!(b >= a, "versions went backwards: {a} then {b}");
        }
        assert_eq!(writer.join().unwrap(), 4, "the writer always finishes");
        // After the writer is joined, a read sees the last version.
        assert_eq!(read_checked(&r), Some(4));
        drop(mem);
    });
}

#[test]
fn a_reader_never_returns_a_torn_copy() {
    one_reader_model();
}

/// Two readers, one attempt each, against a writer of two versions.
fn two_readers_model() {
    model(2, || {
        let (mem, w, r) = setup(1);
        let writer = spawn_writer(&mem, w);
        let m3 = mem.clone();
        let other = thread::spawn(move || {
            let _keep = m3;
            read_checked(&r);
        });
        read_checked(&r);
        writer.join().unwrap();
        other.join().unwrap();
        drop(mem);
    });
}

#[test]
fn two_readers_never_return_a_torn_copy() {
    two_readers_model();
}

/// A ranged read (the clock fast path reads a few words) is just as whole.
#[test]
fn a_ranged_read_is_whole() {
    model(3, || {
        let (mem, w, r) = setup(2);
        let writer = spawn_writer(&mem, w);
        let mut out = [0u32; 2];
        if let Ok(seq) = r.read_at(1, &mut out) {
            assert_eq!(out, payload(seq / 2)[1..], "torn ranged copy at {seq}");
        }
        writer.join().unwrap();
        drop(mem);
    });
}

/// The writer's closing store Relaxed: a reader sees the new sequence but
/// old words.
#[cfg(feature = "mutant-seqlock-publish")]
#[test]
#[should_panic(expected = "torn copy")]
fn mutant_seqlock_publish_is_caught() {
    one_reader_model();
}

/// The reader's second fence dropped: a copy mixing versions passes the
/// sequence check.
#[cfg(feature = "mutant-seqlock-fence")]
#[test]
#[should_panic(expected = "torn copy")]
fn mutant_seqlock_fence_is_caught() {
    one_reader_model();
}
