//! srb-core on a Cortex-M0 (QEMU `microbit`, nRF51, thumbv6m: no
//! compare-and-swap), with portable-atomic's single-core read-modify-write.
//!
//! 1. Both layouts (`pa` and `srb`), one context, spin signals: create and
//!    attach a block, move more than ten ring capacities of bytes each way
//!    in odd-sized chunks (wrapping the rings many times), and walk the
//!    fd-semaphore through its cases: a post to a sleeper notifies it, a
//!    wait with a post pending does not sleep.
//! 2. `srb`, two contexts: the SysTick handler streams a byte pattern into a
//!    ring; thread mode reads it, sleeping in WFI ([`IrqSignal`]) whenever the
//!    ring is empty, woken by the fdsem post (PendSV).
//!
//! Exit 0 if everything matched, 1 otherwise (also on panic).
#![no_std]
#![no_main]

use core::cell::{RefCell, UnsafeCell};
use core::ptr::NonNull;
use core::time::Duration;

use cortex_m::interrupt::Mutex;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use portable_atomic::{AtomicBool, AtomicU32, Ordering};
use srb_core::layout::{pa, srb};
use srb_core::{
    Block, Ends, Notify, RingConsumer, RingProducer, SpinSignal, SrbChannel, Wait, WaitDecision,
    Woken,
};

#[path = "../../common/irq_signal.rs"]
mod irq_signal;
#[path = "../../common/runtime.rs"]
mod runtime;

use irq_signal::{Irq, IrqSignal};
use runtime::{exit, fail_attach};

const BOARD: &str = "microbit";
const SRB_CAPACITY: u32 = 256;
const SRB_LEN: usize = srb::block_len(SRB_CAPACITY);
const PA_LEN: usize = 1024;
/// Bytes the SysTick producer streams in part 2.
const STREAM_BYTES: usize = 16 * 1024;
/// Bytes per SysTick tick in part 2 (odd, so writes straddle the wrap).
const STREAM_CHUNK: usize = 200;

/// Shared RAM that only srb-core touches, 128-byte aligned.
#[repr(C, align(128))]
struct SharedRam<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the bytes are never reached through a Rust reference: only through
// the raw pointer handed to `Block::new`, by srb-core's atomics and copies.
unsafe impl<const N: usize> Sync for SharedRam<N> {}

impl<const N: usize> SharedRam<N> {
    const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    /// # Safety
    /// Call once per static: the block is handed to exactly one layout
    /// creation (and its one attach).
    unsafe fn block(&'static self) -> Block {
        let base = NonNull::new(self.0.get().cast::<u8>()).expect("static address");
        // SAFETY: a static of N bytes, live forever, aligned to 128 bytes;
        // no Rust reference into it exists, only this pointer.
        unsafe { Block::new(base, N) }
    }
}

static SRB_SPIN: SharedRam<SRB_LEN> = SharedRam::new();
static PA_SPIN: SharedRam<PA_LEN> = SharedRam::new();
static SRB_IRQ: SharedRam<SRB_LEN> = SharedRam::new();

/// A [`SpinSignal`] that also counts the notifications sent to it.
#[derive(Debug)]
struct Counted {
    sig: SpinSignal,
    sent: AtomicU32,
}

impl Counted {
    const fn new() -> Self {
        Self {
            sig: SpinSignal::with_budget(1000),
            sent: AtomicU32::new(0),
        }
    }

    fn sent(&self) -> u32 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Notify for Counted {
    type Error = core::convert::Infallible;
    fn notify(&self) -> Result<(), Self::Error> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.sig.notify()
    }
}

impl Wait for &Counted {
    type Error = core::convert::Infallible;
    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, Self::Error> {
        (&self.sig).wait(timeout)
    }
    fn try_take(&mut self) -> Result<u64, Self::Error> {
        (&self.sig).try_take()
    }
}

/// Fails the test with a message.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            defmt::error!($($msg)+);
            exit(false);
        }
    };
}

/// Part 1 for one layout: `a` is the creator/server, `b` the attacher/client.
fn exercise<P: RingProducer, C: RingConsumer>(
    layout: &str,
    a_ends: Ends<P, C>,
    b_ends: Ends<P, C>,
) {
    let (to_a, to_b) = (Counted::new(), Counted::new());
    let mut a = SrbChannel::new(a_ends, &to_b, &to_a);
    let mut b = SrbChannel::new(b_ends, &to_a, &to_b);
    let cap = a.capacity();

    // fdsem: b announces a sleep on an empty ring; a's write must notify it.
    let d = b.before_wait().expect("before_wait");
    check!(d == WaitDecision::OkToSleep, "{}: empty ring, decision {}", layout, d);
    let before = to_b.sent();
    check!(a.write(b"srb").expect("write") == 3, "{}: short write", layout);
    check!(to_b.sent() == before + 1, "{}: a post to a sleeper did not notify", layout);
    b.after_wait().expect("after_wait");
    let mut small = [0u8; 8];
    let n = b.read(&mut small).expect("read");
    check!(&small[..n] == b"srb", "{}: read back {=[u8]}", layout, &small[..n]);
    // With data pending, a wait must not sleep.
    a.write(b"x").expect("write");
    let w = b.wait(Some(Duration::ZERO)).expect("wait");
    check!(w == Woken::Pending, "{}: data pending, but wait gave {}", layout, w);
    b.read(&mut small).expect("read");

    // Bulk: over ten capacities each way, chunk sizes 1..=97, both rings
    // wrapping many times. Each direction carries its own byte pattern.
    let total = 10 * cap + 123;
    let mut buf = [0u8; 97];
    let (mut ab_sent, mut ab_got, mut ba_sent, mut ba_got) = (0usize, 0usize, 0usize, 0usize);
    let mut chunk = 1usize;
    while ab_got < total || ba_got < total {
        for (tx, sent, salt) in [(&mut a, &mut ab_sent, 0u8), (&mut b, &mut ba_sent, 0x5a)] {
            let n = chunk.min(total - *sent);
            for (i, x) in buf[..n].iter_mut().enumerate() {
                *x = pattern(*sent + i, salt);
            }
            *sent += tx.write(&buf[..n]).expect("bulk write");
        }
        for (rx, got, salt) in [(&mut b, &mut ab_got, 0u8), (&mut a, &mut ba_got, 0x5a)] {
            let n = rx.read(&mut buf[..chunk]).expect("bulk read");
            for (i, x) in buf[..n].iter().enumerate() {
                check!(*x == pattern(*got + i, salt), "{}: byte {} wrong", layout, *got + i);
            }
            *got += n;
        }
        chunk = chunk % 97 + 1;
    }
    defmt::info!(
        "board {}: {} layout moved {} bytes each way through {}-byte rings",
        BOARD,
        layout,
        total,
        cap
    );
}

fn pattern(i: usize, salt: u8) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add((i >> 8) as u8) ^ salt
}

// ---- part 2: SysTick producer, WFI consumer ----

static TO_MAIN: IrqSignal = IrqSignal::new(Irq::PendSv);
static TO_TICK: IrqSignal = IrqSignal::new(Irq::SysTick);
static PRODUCER: Mutex<RefCell<Option<Producer>>> = Mutex::new(RefCell::new(None));
static TICKS: AtomicU32 = AtomicU32::new(0);
static STREAM_DONE: AtomicBool = AtomicBool::new(false);

type SrbChan = SrbChannel<
    srb_core::ring::srb::Producer,
    srb_core::ring::srb::Consumer,
    &'static IrqSignal,
    &'static IrqSignal,
>;

struct Producer {
    ch: SrbChan,
    sent: usize,
}

#[exception]
fn SysTick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    cortex_m::interrupt::free(|cs| {
        if let Some(p) = PRODUCER.borrow(cs).borrow_mut().as_mut() {
            let mut buf = [0u8; STREAM_CHUNK];
            let n = STREAM_CHUNK.min(STREAM_BYTES - p.sent);
            for (i, x) in buf[..n].iter_mut().enumerate() {
                *x = pattern(p.sent + i, 0xa5);
            }
            p.sent += p.ch.write(&buf[..n]).expect("tick write");
            if p.sent == STREAM_BYTES {
                STREAM_DONE.store(true, Ordering::Relaxed);
            }
        }
    });
}

#[exception]
fn PendSV() {
    // Only a wake-up: the count lives in TO_MAIN.
}

fn stream(syst: &mut cortex_m::peripheral::SYST) {
    // SAFETY: SRB_IRQ is used for this block only.
    let block = unsafe { SRB_IRQ.block() };
    // SAFETY: fresh block; one creator (SysTick side), one attacher (main).
    let (g, tick_ends) = unsafe { srb::create(block, SRB_CAPACITY) }.expect("create");
    // SAFETY: as above.
    let (_, main_ends) = unsafe { srb::attach(block) }.expect("attach");
    defmt::info!("board {}: irq srb geometry {}", BOARD, g);
    let ch = SrbChannel::new(tick_ends, &TO_MAIN, &TO_TICK);
    cortex_m::interrupt::free(|cs| PRODUCER.borrow(cs).replace(Some(Producer { ch, sent: 0 })));
    let mut main: SrbChan = SrbChannel::new(main_ends, &TO_TICK, &TO_MAIN);

    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(16_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();

    let (mut got, mut sleeps, mut notified) = (0usize, 0u32, 0u32);
    let mut buf = [0u8; 64];
    while got < STREAM_BYTES {
        let n = main.read(&mut buf).expect("main read");
        for (i, x) in buf[..n].iter().enumerate() {
            check!(*x == pattern(got + i, 0xa5), "stream byte {} wrong", got + i);
        }
        got += n;
        if n == 0 {
            sleeps += 1;
            if main.wait(None).expect("main wait") == Woken::Notified {
                notified += 1;
            }
        }
    }
    syst.disable_interrupt();
    syst.disable_counter();
    check!(STREAM_DONE.load(Ordering::Relaxed), "producer not done");
    check!(notified > 0, "the WFI path was never taken");
    defmt::info!(
        "board {}: srb stream {} bytes from SysTick, main slept in WFI {} times ({} notified)",
        BOARD,
        got,
        sleeps,
        notified
    );
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().expect("core peripherals");

    // SAFETY: SRB_SPIN is used for this block only.
    let block = unsafe { SRB_SPIN.block() };
    // SAFETY: fresh block; one creator, one attacher.
    let (g, a) = match unsafe { srb::create(block, SRB_CAPACITY) } {
        Ok(v) => v,
        Err(e) => fail_attach("srb create", e),
    };
    // SAFETY: as above.
    let (_, b) = match unsafe { srb::attach(block) } {
        Ok(v) => v,
        Err(e) => fail_attach("srb attach", e),
    };
    defmt::info!("board {}: srb geometry {}", BOARD, g);
    exercise("srb", a, b);

    // SAFETY: PA_SPIN is used for this block only.
    let block = unsafe { PA_SPIN.block() };
    // SAFETY: fresh block; one server, one client.
    let (g, a) = match unsafe { pa::init_server(block) } {
        Ok(v) => v,
        Err(e) => fail_attach("pa init_server", e),
    };
    // SAFETY: as above.
    let (_, b) = match unsafe { pa::adopt_client(block) } {
        Ok(v) => v,
        Err(e) => fail_attach("pa adopt_client", e),
    };
    defmt::info!("board {}: pa geometry {}", BOARD, g);
    exercise("pa", a, b);

    stream(&mut cp.SYST);
    defmt::info!("board {}: all checks OK", BOARD);
    exit(true)
}
