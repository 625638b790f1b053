//! loom models of `srb-core`: every interleaving (up to the preemption bound)
//! of small rings, semaphores and channels.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p srb-loom-tests --release --target-dir target/loom`
//! CI runs it again with `LOOM_MAX_PREEMPTIONS=5` (under a minute on 2
//! cores; the larger models cap their own bound at 3 or 4, see
//! `model_capped`). `SRB_LOOM_EXHAUSTIVE=1` explores every interleaving
//! (about 7 minutes on 2 cores for the first eleven models; the larger
//! models added since make it much longer).
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
//!
//! The wake mutation check: with `--features mutant-wake` the `srb` reader
//! never wakes a writer that waits for space, and
//! `mutant_wake_space_waits_deadlock` checks that every model of such a
//! writer then deadlocks (`scripts/test.sh` runs `-- mutant_wake_`).
#![cfg(loom)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::time::Duration;

use loom::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use srb_core::layout::{pa, srb};
use srb_core::ring;
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
    /// With a timeout, the model's timeout fires at once if nothing is
    /// pending: the earliest a real one could, and the case that leaves
    /// the most fdsem state behind for the next wait.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, ()> {
        if timeout.is_some() {
            return self.try_take();
        }
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
    model_capped(usize::MAX, f);
}

/// [`model`] for the larger models (three threads, or several round
/// trips): at most `cap` preemptions even when `LOOM_MAX_PREEMPTIONS` asks
/// for more, so CI's bound-5 run stays within seconds (the bound-2 run and
/// `SRB_LOOM_EXHAUSTIVE`, which takes long for them, are unaffected).
fn model_capped(cap: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("SRB_LOOM_EXHAUSTIVE").is_some() {
        b.preemption_bound = None;
    } else {
        b.preemption_bound = Some(b.preemption_bound.unwrap_or(2).min(cap));
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
fn no_lost_wakeup<P, C>(make: MakePair<P, C>, len: usize)
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

/// Builds both sides' ends over a model's memory.
type MakePair<P, C> = fn(&Mem) -> (srb_core::Ends<P, C>, srb_core::Ends<P, C>);

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
fn no_lost_space_wakeup<P, C>(make: MakePair<P, C>, len: usize, cap: usize)
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

/// Loads a shared word, as a peer would.
fn load_i32(mem: &Mem, off: usize) -> i32 {
    // SAFETY: as in `scribble_i32`.
    let w = unsafe { &*mem.ptr.as_ptr().add(off).cast::<AtomicI32>() };
    w.load(Ordering::SeqCst)
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
    read_sem: SemProbe,
    write_sem: SemProbe,
}

// --- more models: several messages, timeouts, both directions, hostile
// --- fdsem words, srbd's poll loop ------------------------------------------

/// A channel of the models: blocking events on both sides.
type Chan<P, C> = SrbChannel<P, C, EventRef, EventRef>;
/// Two channels and their events: `(a, b, a's event, b's event)`.
type Channels<P, C> = (Chan<P, C>, Chan<P, C>, Arc<Event>, Arc<Event>);

/// Both sides' channels over their ends, each side with its own event.
fn channels<P: RingProducer, C: RingConsumer>(
    a: srb_core::Ends<P, C>,
    b: srb_core::Ends<P, C>,
) -> Channels<P, C> {
    let (ev_a, ev_b) = (Arc::new(Event::default()), Arc::new(Event::default()));
    let a = SrbChannel::new(a, EventRef(ev_b.clone()), EventRef(ev_a.clone()));
    let b = SrbChannel::new(b, EventRef(ev_a.clone()), EventRef(ev_b.clone()));
    (a, b, ev_a, ev_b)
}

/// Reads one byte, sleeping (untimed) while there is none.
fn recv_byte<P: RingProducer, C: RingConsumer>(ch: &mut Chan<P, C>) -> u8 {
    let mut buf = [0u8; 1];
    while ch.read(&mut buf).unwrap() == 0 {
        ch.wait(None).unwrap();
    }
    buf[0]
}

/// Two messages, each written separately, each waited for separately: the
/// fdsem state one sleep leaves behind (signalled, in_pipe, a late
/// notification) must not lose or corrupt the next wake-up.
fn two_messages<P, C>(make: MakePair<P, C>, len: usize)
where
    P: RingProducer + Send + 'static,
    C: RingConsumer + Send + 'static,
{
    model_capped(4, move || {
        let mem = Mem::new(len);
        let (a, b) = make(&mem);
        let (mut a, mut b, _, _) = channels(a, b);
        let t = thread::spawn(move || {
            assert_eq!(a.write(&[1]).unwrap(), 1);
            assert_eq!(a.write(&[2]).unwrap(), 1);
        });
        assert_eq!(recv_byte(&mut b), 1);
        assert_eq!(recv_byte(&mut b), 2);
        t.join().unwrap();
    });
}

#[test]
fn two_messages_two_sleeps_pa() {
    two_messages(pa_pair, PA_LEN);
}

#[test]
fn two_messages_two_sleeps_srb() {
    two_messages(srb_pair, srb::block_len(4));
}

/// A wait that times out leaves the semaphore consistent: the notification
/// that arrives after it is absorbed by the next wait (not `Corrupt`), and
/// an untimed wait after the timeout is still woken.
fn timeout_then_wakeup<P, C>(make: MakePair<P, C>, len: usize, b_sem: usize)
where
    P: RingProducer + Send + 'static,
    C: RingConsumer + Send + 'static,
{
    model(move || {
        let mem = Mem::new(len);
        let (a, b) = make(&mem);
        let (mut a, mut b, _, _) = channels(a, b);
        let t = thread::spawn(move || {
            assert_eq!(a.write(&[5]).unwrap(), 1);
        });
        let mut buf = [0u8; 1];
        // First a timed wait (it may time out), then untimed ones.
        let mut timed = true;
        while b.read(&mut buf).unwrap() == 0 {
            let timeout = timed.then_some(Duration::from_millis(1));
            timed = false;
            b.wait(timeout).unwrap();
        }
        assert_eq!(buf, [5]);
        t.join().unwrap();
        // Whatever is still pending is consumed without complaint, and the
        // timed-out wait left nothing behind: no `waiting` count (the peer
        // would notify for ever after), no notification unaccounted.
        if b.before_wait().unwrap() == WaitDecision::OkToSleep {
            b.after_wait().unwrap();
        }
        let waiting = b_sem + std::mem::offset_of!(SemProbe, waiting);
        let in_pipe = b_sem + std::mem::offset_of!(SemProbe, in_pipe);
        assert_eq!(load_i32(&mem, waiting), 0, "waiting left raised");
        assert_eq!(load_i32(&mem, in_pipe), 0, "in_pipe left raised");
    });
}

#[test]
fn timed_out_wait_then_wakeup_pa() {
    // `b` is the client, which waits on `write_semdata`.
    timeout_then_wakeup(
        pa_pair,
        PA_LEN,
        std::mem::offset_of!(HeaderProbe, write_sem),
    );
}

#[test]
fn timed_out_wait_then_wakeup_srb() {
    // `b` is the attacher, which waits on the semaphore at line 6.
    timeout_then_wakeup(srb_pair, srb::block_len(4), 6 * srb::LINE);
}

/// Request and response in both directions on the `srb` layout (whose
/// ring ends wake only a peer that announced a sleep).
#[test]
fn channel_in_both_directions_srb() {
    model_capped(3, || {
        let mem = Mem::new(srb::block_len(4));
        let (c, a) = srb_pair(&mem);
        let (mut c, mut a, _, _) = channels(c, a);
        let t = thread::spawn(move || {
            let req = recv_byte(&mut a);
            assert_eq!(a.write(&[req + 1]).unwrap(), 1);
        });
        assert_eq!(c.write(&[10]).unwrap(), 1);
        assert_eq!(recv_byte(&mut c), 11);
        t.join().unwrap();
    });
}

/// `wait_writable` on the `srb` layout: the writer of a full ring sleeps
/// although the peer's data sits unread in the other ring, and is woken
/// when the peer drains its ring.
#[test]
fn wait_writable_is_woken_by_the_drain_srb() {
    model(|| {
        let mem = Mem::new(srb::block_len(4));
        let (c, a) = srb_pair(&mem);
        let (mut c, mut a, _, _) = channels(c, a);
        assert_eq!(c.write(&[7; 4]).unwrap(), 4, "fills the ring");
        let t = thread::spawn(move || {
            assert_eq!(a.write(&[1]).unwrap(), 1);
            let mut buf = [0u8; 4];
            let mut got = 0;
            while got < buf.len() {
                let n = a.read(&mut buf[got..]).unwrap();
                if n == 0 {
                    a.wait(None).unwrap();
                }
                got += n;
            }
        });
        while c.write(&[9]).unwrap() == 0 {
            c.wait_writable(None).unwrap();
        }
        t.join().unwrap();
    });
}

/// The rule "the reader wakes the writer only when it waits for space"
/// (`srb`, layout version 2), in srbd's poll-loop style: the creator's
/// first write fits and it then waits for the *reply* (the reader's read
/// need not wake it, only the reply does); its second write is cut short
/// by the full ring, so its next sleep announces a wait for space, and the
/// reader's drain must wake it. Then the rest of the second message goes
/// out and the reader, asleep for it, must be woken. A reader that skips a
/// needed wake-up leaves a poll blocked (loom: deadlock); the
/// `mutant_wake_*` run checks exactly that.
fn space_wake_only_for_space_model() {
    model_capped(3, || {
        let mem = Mem::new(srb::block_len(4));
        let (c, a) = srb_pair(&mem);
        let (mut c, mut a, ev_c, _) = channels(c, a);
        let t = thread::spawn(move || {
            // Answer the request, then drain the 6-byte message.
            assert_eq!(recv_byte(&mut a), 1);
            assert_eq!(a.write(&[2]).unwrap(), 1);
            for want in [7, 7, 7, 7, 9, 9] {
                assert_eq!(recv_byte(&mut a), want);
            }
        });
        let poller = EventRef(ev_c);
        // Sleeps the way srbd does: announce, poll only if allowed, end.
        let sleep = |c: &mut Chan<ring::srb::Producer, ring::srb::Consumer>| {
            if c.before_wait().unwrap() == WaitDecision::OkToSleep {
                poller.poll();
                c.after_poll(true).unwrap();
            }
        };
        assert_eq!(c.write(&[1]).unwrap(), 1, "the request fits");
        let mut buf = [0u8; 1];
        while c.read(&mut buf).unwrap() == 0 {
            sleep(&mut c);
        }
        assert_eq!(buf, [2]);
        let msg = [7, 7, 7, 7, 9, 9];
        let mut sent = 0;
        while sent < msg.len() {
            let n = c.write(&msg[sent..]).unwrap();
            sent += n;
            if n == 0 {
                sleep(&mut c);
            }
        }
        t.join().unwrap();
    });
}

#[test]
fn space_wake_only_for_space_srb() {
    space_wake_only_for_space_model();
}

/// The wake mutation check (`--features mutant-wake`: the `srb` reader
/// never wakes the writer, srb-core's `loom-mutant-wake`): every model of
/// an `srb` writer waiting for space must deadlock. loom reports a deadlock
/// by panicking while threads are blocked, and the unwinding then aborts
/// the process (a loom object dropped with no active thread), so each
/// model runs in a child process of this test binary, which must fail with
/// loom's "deadlock" message.
#[cfg(feature = "mutant-wake")]
#[test]
fn mutant_wake_space_waits_deadlock() {
    for model in [
        "space_wake_only_for_space_srb",
        "full_ring_wakes_the_writer_srb",
        "wait_writable_is_woken_by_the_drain_srb",
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", model, "--nocapture", "--test-threads=1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{model} passed although the reader skips the wake-up"
        );
        assert!(
            err.contains("deadlock"),
            "{model} failed, but not with a deadlock:\n{err}"
        );
        eprintln!("{model}: deadlocks under the wake mutation, as it must");
    }
}

/// Field order of an fdsem, to find its words under loom.
#[repr(C)]
struct SemProbe {
    waiting: AtomicI32,
    signalled: AtomicI32,
    in_pipe: AtomicI32,
}

/// A hostile peer: while its writing thread sends one byte through the
/// protocol, another of its threads stores impossible values into the
/// semaphore the honest side sleeps on and into the ring's write
/// position, then writes the wait object without the protocol (so the
/// honest side is never left asleep by the peer's choice). The honest side
/// must end with the byte or with `Corrupt`: never a hang (loom: deadlock),
/// a panic, a wrong byte or an endless loop.
#[test]
fn hostile_fdsem_words_and_write_pos_never_hang_the_honest_side() {
    model_capped(3, || {
        let mem = Mem::new(srb::block_len(4));
        let (c, a) = srb_pair(&mem);
        let (mut peer, mut honest, _, ev_honest) = channels(c, a);
        let sem = 6 * srb::LINE; // the attacher's semaphore
        let writer = thread::spawn(move || {
            // The peer's own wake-up may fail on the scribbles: `Corrupt`.
            let _ = peer.write(&[42]);
        });
        let m = mem.clone();
        let scribbler = thread::spawn(move || {
            let signalled = sem + std::mem::offset_of!(SemProbe, signalled);
            let in_pipe = sem + std::mem::offset_of!(SemProbe, in_pipe);
            scribble_i32(m.clone(), signalled, &[2]);
            scribble_i32(m.clone(), in_pipe, &[3]);
            // Far ahead of the reader: more than the capacity.
            scribble_u32(m, 3 * srb::LINE, &[1 << 31]);
            EventRef(ev_honest).notify().unwrap();
        });
        let mut buf = [0u8; 1];
        let end = loop {
            match honest.read(&mut buf) {
                Ok(0) => {}
                Ok(_) => break Ok(buf[0]),
                Err(e) => break Err(e.into_corrupt()),
            }
            if let Err(e) = honest.wait(None) {
                break Err(e.into_corrupt());
            }
        };
        match end {
            Ok(b) => assert_eq!(b, 42, "a byte, but the wrong one"),
            Err(Some(_)) => {}
            Err(None) => panic!("a signal error without a failing signal"),
        }
        writer.join().unwrap();
        scribbler.join().unwrap();
        assert!(mem.guard_intact());
    });
}

trait IntoCorrupt {
    fn into_corrupt(self) -> Option<Corrupt>;
}

impl<E> IntoCorrupt for srb_core::ChannelError<E> {
    fn into_corrupt(self) -> Option<Corrupt> {
        match self {
            srb_core::ChannelError::Corrupt(c) => Some(c),
            srb_core::ChannelError::Signal(_) => None,
        }
    }
}

/// srbd's connection loop (`SrbLink::before_poll`/`after_poll`): for each
/// of two requests the server reads what is there, answers, and otherwise
/// announces a sleep, polls the wait object only if allowed, and ends the
/// announced sleep with `after_poll(ready)`. The client sends two requests
/// one after the other, waiting for each answer. No wake-up may be lost in
/// either direction (deadlock), and the poll must never find more
/// notifications than announced (`Corrupt`).
#[test]
fn srbd_poll_loop_two_requests_pa() {
    model_capped(3, || {
        let mem = Mem::new(PA_LEN);
        let (server, client) = pa_pair(&mem);
        let (mut s, mut c, ev_s, _) = channels(server, client);
        let t = thread::spawn(move || {
            for req in [1u8, 2] {
                assert_eq!(c.write(&[req]).unwrap(), 1);
                assert_eq!(recv_byte(&mut c), req + 10);
            }
        });
        let poller = EventRef(ev_s);
        let mut answered = 0;
        let mut buf = [0u8; 1];
        while answered < 2 {
            if s.read(&mut buf).unwrap() == 1 {
                assert_eq!(s.write(&[buf[0] + 10]).unwrap(), 1);
                answered += 1;
                continue;
            }
            // before_poll: sleep only if allowed; after_poll only if announced.
            if s.before_wait().unwrap() == WaitDecision::OkToSleep {
                poller.poll();
                s.after_poll(true).unwrap();
            }
        }
        t.join().unwrap();
    });
}
