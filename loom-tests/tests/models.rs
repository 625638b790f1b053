//! loom models of `srb-core`: every interleaving (up to the preemption bound)
//! of small rings, semaphores and channels.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p srb-loom-tests --release --target-dir target/loom`
//! CI runs it again with `LOOM_MAX_PREEMPTIONS=5` (seconds); `SRB_LOOM_EXHAUSTIVE=1`
//! explores every interleaving (about 7 minutes on 2 cores).
//!
//! loom's partial-order reduction only reorders operations that conflict, so
//! the core gives loom a scheduling point before every payload copy (a
//! read-modify-write of one model-wide atomic, see `SchedPoint` in
//! `srb-core`); with it, a copy placed on the wrong side of a publication is
//! caught (checked by mutating the rings while writing these models).
//!
//! Under `cfg(loom)` the core's atomics are loom's, so these models run the
//! real code. Payload bytes are plain memory, which loom cannot see by
//! itself; under `cfg(loom)` the core reports every payload copy, byte by
//! byte, as an access to a `loom::cell::UnsafeCell` standing for that byte
//! (`RingData` in `srb-core`), so loom checks that each byte read happens
//! after its write and each overwrite after the read of the old byte.
//!
//! The mutation check: with `--features mutant` the rings' hand-over
//! orderings are Relaxed (srb-core's `loom-mutant` feature) and the
//! `mutant_*` models below must report a causality violation;
//! `scripts/test.sh` runs them (`-- mutant_`). Without the payload
//! tracking, every model passed with that mutation.
#![cfg(loom)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::time::Duration;

use loom::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use srb_core::layout::{pa, srb};
use srb_core::{
    Block, Corrupt, Field, Notify, RingConsumer, RingProducer, SrbChannel, Wait, WaitDecision,
};

/// Zeroed, 128-byte aligned memory standing in for a shared block.
struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: plain heap memory, accessed only through the core (atomics and raw
// copies) and through atomics in these models.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

/// Bytes after the block that must never change: an out-of-bounds write by
/// a ring end would hit them.
const GUARD: usize = 256;
const CANARY: u8 = 0xA5;

impl Mem {
    fn new(len: usize) -> Arc<Self> {
        let layout = Layout::from_size_align(len + GUARD, 128).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        // SAFETY: the guard lies inside the allocation; nothing else uses it.
        unsafe { ptr.as_ptr().add(len).write_bytes(CANARY, GUARD) };
        Arc::new(Self { ptr, layout })
    }

    fn len(&self) -> usize {
        self.layout.size() - GUARD
    }

    fn block(&self) -> Block {
        // SAFETY: `self` owns the memory and outlives the model's threads
        // (each holds an `Arc`); nothing forms references into it.
        unsafe { Block::new(self.ptr, self.len()) }
    }

    fn fill_canary(&self, r: std::ops::Range<usize>) {
        assert!(r.end <= self.len());
        // SAFETY: in bounds (asserted); the range is not part of any header
        // word or ring in the model that calls this.
        unsafe { self.ptr.as_ptr().add(r.start).write_bytes(CANARY, r.len()) };
    }

    fn canary_intact(&self, r: std::ops::Range<usize>) -> bool {
        // SAFETY: in bounds (checked by `fill_canary`), only read here.
        r.into_iter()
            .all(|i| unsafe { self.ptr.as_ptr().add(i).read() } == CANARY)
    }

    fn guard_intact(&self) -> bool {
        // SAFETY: the guard is inside the allocation and only read here.
        (0..GUARD).all(|i| unsafe { self.ptr.as_ptr().add(self.len() + i).read() } == CANARY)
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A blocking wake-up object (an eventfd, modelled): a lost wake-up leaves a
/// thread blocked forever, which loom reports as a deadlock.
#[derive(Default)]
struct Event {
    count: Mutex<u64>,
    cv: Condvar,
}

struct EventRef(Arc<Event>);

impl Notify for EventRef {
    type Error = ();
    fn notify(&self) -> Result<(), ()> {
        *self.0.count.lock().unwrap() += 1;
        self.0.cv.notify_one();
        Ok(())
    }
}

impl Wait for EventRef {
    type Error = ();
    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, ()> {
        assert!(timeout.is_none(), "models never time out");
        let mut n = self.0.count.lock().unwrap();
        while *n == 0 {
            n = self.0.cv.wait(n).unwrap();
        }
        Ok(std::mem::take(&mut *n))
    }
    fn try_take(&mut self) -> Result<u64, ()> {
        Ok(std::mem::take(&mut *self.0.count.lock().unwrap()))
    }
}

impl EventRef {
    /// What a `poll` on the object does: block until it is ready, without
    /// consuming anything.
    fn poll(&self) {
        let mut n = self.0.count.lock().unwrap();
        while *n == 0 {
            n = self.0.cv.wait(n).unwrap();
        }
    }
}

/// Runs `f` in every interleaving loom explores: bounded by
/// `LOOM_MAX_PREEMPTIONS` (2 when unset), or exhaustively when
/// `SRB_LOOM_EXHAUSTIVE` is set (these models are small enough for that).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("SRB_LOOM_EXHAUSTIVE").is_some() {
        b.preemption_bound = None;
    } else if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{}: {n} interleavings", thread_name());
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("model").to_owned()
}

/// The producer makes a few write calls while the consumer makes a few read
/// calls, neither spinning (a spinning thread is deprioritised by loom, which
/// would hide interleavings); then the consumer drains what is left. The
/// bytes received must be exactly the bytes accepted, in order, intact.
fn delivers_in_order<P, C>(mut p: P, mut c: C, chunks: &'static [usize], reads: &'static [usize])
where
    P: RingProducer + Send + 'static,
    C: RingConsumer,
{
    let t = thread::spawn(move || {
        let mut written = 0;
        for &n in chunks {
            let end = (written + n).min(MSG.len());
            written += p.write(&MSG[written..end]).unwrap().written;
        }
        written
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 8];
    for &n in reads {
        let r = c.read(&mut buf[..n]).unwrap().read;
        got.extend_from_slice(&buf[..r]);
    }
    let written = t.join().unwrap();
    loop {
        let r = c.read(&mut buf).unwrap().read;
        if r == 0 {
            break;
        }
        got.extend_from_slice(&buf[..r]);
    }
    assert_eq!(got, &MSG[..written]);
}

const MSG: [u8; 6] = [1, 2, 3, 4, 5, 6];

#[test]
fn pa_ring_delivers_bytes_in_order_across_wrap() {
    pa_ring_model();
}

fn pa_ring_model() {
    model(|| {
        let mem = Mem::new(PA_LEN);
        let (server, client) = pa_pair(&mem);
        // Capacity 4: the second write wraps.
        delivers_in_order(server.producer, client.consumer, &[3, 3], &[2, 3]);
        assert!(mem.guard_intact());
    });
}

#[test]
fn srb_ring_delivers_bytes_in_order_across_wrap() {
    srb_ring_model();
}

/// The mutation check for the `srb` ring: with its Release/Acquire
/// publications weakened to Relaxed, loom must see the consumer read a byte
/// the producer's write does not happen before.
#[cfg(feature = "mutant")]
#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_srb_ring_is_caught() {
    srb_ring_model();
}

/// The mutation check for the `pa` ring: its SeqCst count weakened to
/// Relaxed.
#[cfg(feature = "mutant")]
#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_pa_ring_is_caught() {
    pa_ring_model();
}

fn srb_ring_model() {
    model(|| {
        let mem = Mem::new(srb::block_len(4));
        // Positions start two bytes before the u32 wrap.
        // SAFETY: fresh memory; one creator and one attacher.
        let (_, creator) = unsafe { srb::create_at(mem.block(), 4, u32::MAX - 1) }.unwrap();
        // SAFETY: as above.
        let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
        delivers_in_order(creator.producer, attacher.consumer, &[3, 3], &[2, 3]);
        assert!(mem.guard_intact());
    });
}

/// The waiter checks the ring and sleeps if it is empty; the poster writes
/// one byte and posts. Whatever the interleaving, the waiter ends up with the
/// byte: a lost wake-up would leave it blocked (loom: deadlock).
fn no_lost_wakeup<P, C>(make: fn(&Mem) -> (srb_core::Ends<P, C>, srb_core::Ends<P, C>), len: usize)
where
    P: RingProducer + Send + 'static,
    C: RingConsumer + Send + 'static,
{
    model(move || {
        let mem = Mem::new(len);
        let (a, b) = make(&mem);
        let (ev_a, ev_b) = (Arc::new(Event::default()), Arc::new(Event::default()));
        let mut a = SrbChannel::new(a, EventRef(ev_b.clone()), EventRef(ev_a.clone()));
        let mut b = SrbChannel::new(b, EventRef(ev_a), EventRef(ev_b));
        let t = thread::spawn(move || {
            assert_eq!(a.write(&[42]).unwrap(), 1);
        });
        let mut buf = [0u8; 1];
        loop {
            if b.read(&mut buf).unwrap() == 1 {
                break;
            }
            b.wait(None).unwrap();
        }
        assert_eq!(buf, [42]);
        t.join().unwrap();
    });
}

/// Where `pa` rings start in these models: past the header, which is larger
/// under loom than the real 44 bytes.
const PA_RINGS: u32 = 1024;
/// The `pa` capacity of these models.
const PA_CAP: u32 = 4;
const PA_LEN: usize = (PA_RINGS + 2 * PA_CAP) as usize;

fn pa_pair(mem: &Mem) -> (pa::PaEnds, pa::PaEnds) {
    let g = pa::Geometry {
        capacity: PA_CAP,
        readbuf_offset: PA_RINGS,
        writebuf_offset: PA_RINGS + PA_CAP,
    };
    // SAFETY: fresh memory; one server and one client.
    let (_, s) = unsafe { pa::init_server_with(mem.block(), g) }.unwrap();
    // SAFETY: as above.
    let (_, c) = unsafe { pa::adopt_client(mem.block()) }.unwrap();
    (s, c)
}

fn srb_pair(mem: &Mem) -> (srb::SrbEnds, srb::SrbEnds) {
    // SAFETY: fresh memory; one creator and one attacher.
    let (_, c) = unsafe { srb::create(mem.block(), 4) }.unwrap();
    // SAFETY: as above.
    let (_, a) = unsafe { srb::attach(mem.block()) }.unwrap();
    (c, a)
}

#[test]
fn fdsem_never_loses_a_wakeup_pa() {
    no_lost_wakeup(pa_pair, PA_LEN);
}

#[test]
fn fdsem_never_loses_a_wakeup_srb() {
    no_lost_wakeup(srb_pair, srb::block_len(4));
}

/// A writer blocked on a full ring is woken by the reader freeing it.
fn no_lost_space_wakeup<P, C>(
    make: fn(&Mem) -> (srb_core::Ends<P, C>, srb_core::Ends<P, C>),
    len: usize,
    cap: usize,
) where
    P: RingProducer + Send + 'static,
    C: RingConsumer + Send + 'static,
{
    model(move || {
        let mem = Mem::new(len);
        let (a, b) = make(&mem);
        let (ev_a, ev_b) = (Arc::new(Event::default()), Arc::new(Event::default()));
        let mut a = SrbChannel::new(a, EventRef(ev_b.clone()), EventRef(ev_a.clone()));
        let mut b = SrbChannel::new(b, EventRef(ev_a), EventRef(ev_b));
        let fill = vec![7u8; cap];
        assert_eq!(a.write(&fill).unwrap(), cap, "fills the ring");
        let t = thread::spawn(move || {
            let mut buf = vec![0u8; cap];
            let mut got = 0;
            while got < cap {
                got += b.read(&mut buf[got..]).unwrap();
            }
        });
        // The ring is full until the reader runs: the writer must sleep and
        // be woken by the read of a completely full ring.
        while a.write(&[9]).unwrap() == 0 {
            a.wait(None).unwrap();
        }
        t.join().unwrap();
    });
}

/// srbd's connection loop: it polls the wait object itself between
/// `before_wait` and `after_poll(ready)` instead of blocking in `wait`.
/// The reader must still get the byte in every interleaving (a lost
/// wake-up leaves the poll blocked: deadlock).
#[test]
fn poll_loop_never_loses_a_wakeup_pa() {
    model(|| {
        let mem = Mem::new(PA_LEN);
        let (server, client) = pa_pair(&mem);
        let (ev_s, ev_c) = (Arc::new(Event::default()), Arc::new(Event::default()));
        let mut s = SrbChannel::new(server, EventRef(ev_c.clone()), EventRef(ev_s.clone()));
        let mut c = SrbChannel::new(client, EventRef(ev_s.clone()), EventRef(ev_c));
        let t = thread::spawn(move || {
            assert_eq!(c.write(&[42]).unwrap(), 1);
        });
        let poller = EventRef(ev_s);
        let mut buf = [0u8; 1];
        while s.read(&mut buf).unwrap() == 0 {
            if s.before_wait().unwrap() == WaitDecision::OkToSleep {
                poller.poll();
                s.after_poll(true).unwrap();
            }
        }
        assert_eq!(buf, [42]);
        t.join().unwrap();
    });
}

/// A writer waiting for space with `wait_writable` while the peer's data
/// sits unread in the other ring is still woken when the peer drains the
/// full ring.
#[test]
fn wait_writable_is_woken_by_the_drain_pa() {
    model(|| {
        let mem = Mem::new(PA_LEN);
        let (server, client) = pa_pair(&mem);
        let (ev_s, ev_c) = (Arc::new(Event::default()), Arc::new(Event::default()));
        let mut s = SrbChannel::new(server, EventRef(ev_c.clone()), EventRef(ev_s.clone()));
        let mut c = SrbChannel::new(client, EventRef(ev_s), EventRef(ev_c));
        let fill = vec![7u8; PA_CAP as usize];
        assert_eq!(s.write(&fill).unwrap(), PA_CAP as usize, "fills the ring");
        let t = thread::spawn(move || {
            // The client sends first, then drains what the server wrote.
            assert_eq!(c.write(&[1]).unwrap(), 1);
            let mut buf = vec![0u8; PA_CAP as usize];
            let mut got = 0;
            while got < buf.len() {
                got += c.read(&mut buf[got..]).unwrap();
            }
        });
        while s.write(&[9]).unwrap() == 0 {
            s.wait_writable(None).unwrap();
        }
        t.join().unwrap();
    });
}

#[test]
fn full_ring_wakes_the_writer_pa() {
    no_lost_space_wakeup(pa_pair, PA_LEN, PA_CAP as usize);
}

#[test]
fn full_ring_wakes_the_writer_srb() {
    no_lost_space_wakeup(srb_pair, srb::block_len(4), 4);
}

#[test]
fn channel_in_both_directions() {
    model(|| {
        let mem = Mem::new(PA_LEN);
        let (server, client) = pa_pair(&mem);
        let (ev_s, ev_c) = (Arc::new(Event::default()), Arc::new(Event::default()));
        let mut s = SrbChannel::new(server, EventRef(ev_c.clone()), EventRef(ev_s.clone()));
        let mut c = SrbChannel::new(client, EventRef(ev_s), EventRef(ev_c));
        // The client sends a request; the server answers it.
        let t = thread::spawn(move || {
            let mut req = [0u8; 1];
            while s.read(&mut req).unwrap() == 0 {
                s.wait(None).unwrap();
            }
            assert_eq!(s.write(&[req[0] + 1]).unwrap(), 1);
        });
        assert_eq!(c.write(&[10]).unwrap(), 1);
        let mut resp = [0u8; 1];
        while c.read(&mut resp).unwrap() == 0 {
            c.wait(None).unwrap();
        }
        assert_eq!(resp, [11]);
        t.join().unwrap();
    });
}

/// Stores every value in `values` into a shared word, one by one.
fn scribble_i32(mem: Arc<Mem>, off: usize, values: &'static [i32]) {
    // SAFETY: aligned, in bounds of the live block; an atomic store is what a
    // hostile peer does.
    let w = unsafe { &*mem.ptr.as_ptr().add(off).cast::<AtomicI32>() };
    for &v in values {
        w.store(v, Ordering::SeqCst);
    }
}

fn scribble_u32(mem: Arc<Mem>, off: usize, values: &'static [u32]) {
    // SAFETY: as in `scribble_i32`.
    let w = unsafe { &*mem.ptr.as_ptr().add(off).cast::<AtomicU32>() };
    for &v in values {
        w.store(v, Ordering::SeqCst);
    }
}

#[test]
fn hostile_counts_never_cause_out_of_bounds_access_pa() {
    model(|| {
        // The guard lies right after the second ring; the gap between the
        // header and the rings is a guard too.
        let mem = Mem::new(PA_LEN);
        let (server, client) = pa_pair(&mem);
        mem.fill_canary(512..PA_RINGS as usize);
        let mut p = server.producer;
        let mut c = client.consumer;
        // The hostile client scribbles the server→client count.
        let m = mem.clone();
        let off = std::mem::offset_of!(HeaderProbe, write_count);
        let t = thread::spawn(move || scribble_i32(m, off, &[-1, 5, i32::MAX, 3]));
        for _ in 0..2 {
            // A hostile count can make a writer overwrite unread bytes (it
            // cannot tell a scribble from a read), but never write outside
            // its ring.
            match p.write(&[1; 8]) {
                Ok(out) => assert!(out.written <= 8),
                Err(Corrupt {
                    field: Field::Count,
                    ..
                }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
            let mut buf = [0u8; 16];
            match c.read(&mut buf) {
                Ok(out) => assert!(out.read <= PA_CAP as usize),
                Err(Corrupt {
                    field: Field::Count,
                    ..
                }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        t.join().unwrap();
        assert!(mem.guard_intact());
        assert!(mem.canary_intact(512..PA_RINGS as usize));
    });
}

#[test]
fn hostile_positions_never_cause_out_of_bounds_access_srb() {
    model(|| {
        let mem = Mem::new(srb::block_len(4));
        let (creator, attacher) = srb_pair(&mem);
        let mut p = creator.producer;
        let mut c = attacher.consumer;
        // Scribble the ring's consumer position (read by the producer).
        let m = mem.clone();
        let t = thread::spawn(move || scribble_u32(m, 4 * srb::LINE, &[u32::MAX, 3, 1 << 31]));
        for _ in 0..2 {
            match p.write(&[1; 4]) {
                Ok(out) => assert!(out.written <= 4),
                Err(Corrupt {
                    field: Field::ReadPosition,
                    ..
                }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
            let mut buf = [0u8; 8];
            match c.read(&mut buf) {
                Ok(out) => assert!(out.read <= 4),
                Err(Corrupt {
                    field: Field::WritePosition,
                    ..
                }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        t.join().unwrap();
        assert!(mem.guard_intact());
    });
}

/// Field order of the `pa` header, to find `write_count` under loom, whose
/// atomics are larger than 4 bytes.
#[repr(C)]
struct HeaderProbe {
    read_count: AtomicI32,
    write_count: AtomicI32,
}
