//! srb on one Cortex-M4F (QEMU `mps2-an386`): the SysTick handler plays the
//! host, thread mode plays the DSP.
//!
//! - One `srb`-layout block in RAM, created and attached by srb-core.
//! - SysTick (host, creator side) pushes one period of an LCG signal per tick
//!   into the to-DSP ring as raw little-endian f32, and drains the return
//!   ring, comparing every sample with the output the same chain produced on
//!   the host at build time (`build.rs`). Between ticks it is "asleep": it
//!   announces that with [`SrbChannel::before_wait`], so the DSP's writes
//!   (and its reads, when the host's last write was cut short) notify it by
//!   pending SysTick.
//! - Thread mode (DSP, attacher side) waits with WFI ([`IrqSignal`]) when its
//!   ring is empty or the return ring full, runs `Gain` + low-pass `Biquad`
//!   on each period and writes the result back. The host wakes it by pending
//!   PendSV.
//! - After [`chain::PERIODS`] periods: bit-exact match → semihosting exit 0,
//!   anything else (or a panic) → exit 1.
#![no_std]
#![no_main]

use core::cell::{RefCell, UnsafeCell};
use core::ptr::NonNull;

use cortex_m::interrupt::Mutex;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use portable_atomic::{AtomicBool, Ordering};
use srb_core::layout::srb;
use srb_core::ring::srb::{Consumer, Producer};
use srb_core::{Block, Notify, SrbChannel};

#[path = "../../common/chain.rs"]
mod chain;
#[path = "../../common/irq_signal.rs"]
mod irq_signal;
#[path = "../../common/runtime.rs"]
mod runtime;

mod expected {
    include!(concat!(env!("OUT_DIR"), "/expected.rs"));
}

use chain::{PERIODS, PERIOD_BYTES, SAMPLES};
use irq_signal::{Irq, IrqSignal};
use runtime::{exit, fail_attach};

const BOARD: &str = "mps2-an386";
/// Bytes per ring: four periods.
const CAPACITY: u32 = 4 * PERIOD_BYTES as u32;
const BLOCK_LEN: usize = srb::block_len(CAPACITY);
/// SysTick reload: 1 ms of the 25 MHz core clock (QEMU's time, not real).
const TICK: u32 = 25_000 - 1;
/// Which output sample `corrupt-sample` flips: period 17, sample 5.
#[cfg(feature = "corrupt-sample")]
const CORRUPT_AT: (usize, usize) = (17, 5);

/// The shared block: 128-byte aligned RAM that only srb-core touches.
#[repr(C, align(128))]
struct SharedRam(UnsafeCell<[u8; BLOCK_LEN]>);

// SAFETY: the bytes are never reached through a Rust reference: only through
// the raw pointer handed to `Block::new`, by srb-core's atomics and copies.
unsafe impl Sync for SharedRam {}

static SHARED: SharedRam = SharedRam(UnsafeCell::new([0; BLOCK_LEN]));

/// Host → DSP wake-ups: end the DSP's WFI by pending PendSV.
static TO_DSP: IrqSignal = IrqSignal::new(Irq::PendSv);
/// DSP → host wake-ups: run the SysTick handler now.
static TO_HOST: IrqSignal = IrqSignal::new(Irq::SysTick);

type Chan = SrbChannel<Producer, Consumer, &'static IrqSignal, &'static IrqSignal>;

/// Set by the host once every period came back (checked or not).
static DONE: AtomicBool = AtomicBool::new(false);
static HOST: Mutex<RefCell<Option<Host>>> = Mutex::new(RefCell::new(None));

/// The SysTick side: producer of the signal, checker of the results.
struct Host {
    ch: Chan,
    gen: chain::Lcg,
    tx: [u8; PERIOD_BYTES],
    tx_off: usize,
    /// `tx` holds a generated period not yet fully written.
    tx_ready: bool,
    sent: usize,
    rx: [u8; PERIOD_BYTES],
    rx_off: usize,
    received: usize,
    mismatched_samples: u32,
    first_bad: Option<(usize, usize)>,
    /// `before_wait` allowed a sleep at the end of the last tick.
    asleep: bool,
    wakeups: u32,
}

impl Host {
    fn tick(&mut self) {
        if self.asleep {
            // A notification pending now means the DSP woke us before the tick.
            if TO_HOST.peek() > 0 {
                self.wakeups += 1;
            }
            self.ch.after_wait().expect("host after_wait");
            self.asleep = false;
        }
        self.drain();
        // The signal comes at the tick rate (an audio clock); early wake-ups
        // only drain.
        if timer_wrapped() {
            self.produce();
        }
        if self.received == PERIODS {
            DONE.store(true, Ordering::Release);
            TO_DSP.notify().ok();
            return;
        }
        // Between ticks the host "sleeps": announce it, so that the DSP's
        // next write (data) pends SysTick, and so does its next read if the
        // host's last write was cut short (space; `srb` layout version 2
        // wakes a writer after a read only when it waits for space). The wait object is
        // the SysTick exception itself, so this is the poll-loop API.
        // `DontSleep` mostly means a stale post was consumed: drain and try
        // once more. If it still says no (a short write now has space), stay
        // awake: the next timer tick carries on. Thread mode cannot run while
        // this handler does, so re-pending SysTick here could only spin.
        for _ in 0..2 {
            self.asleep = self.ch.before_wait().expect("host before_wait")
                == srb_core::WaitDecision::OkToSleep;
            if self.asleep {
                break;
            }
            self.drain();
        }
    }

    /// Pushes at most one period per tick, carrying over a short write.
    fn produce(&mut self) {
        if self.sent == PERIODS {
            return;
        }
        if self.tx_off == 0 && !self.tx_ready {
            self.tx_ready = true;
            let mut samples = [0f32; SAMPLES];
            self.gen.fill(&mut samples);
            for (dst, s) in self.tx.chunks_exact_mut(4).zip(samples) {
                dst.copy_from_slice(&s.to_le_bytes());
            }
        }
        self.tx_off += self.ch.write(&self.tx[self.tx_off..]).expect("host write");
        if self.tx_off == PERIOD_BYTES {
            self.tx_off = 0;
            self.tx_ready = false;
            self.sent += 1;
        }
    }

    /// Reads every returned byte and checks each completed period.
    fn drain(&mut self) {
        while self.received < PERIODS {
            let n = self.ch.read(&mut self.rx[self.rx_off..]).expect("host read");
            if n == 0 {
                return;
            }
            self.rx_off += n;
            if self.rx_off == PERIOD_BYTES {
                self.check_period();
                self.rx_off = 0;
                self.received += 1;
            }
        }
    }

    fn check_period(&mut self) {
        let p = self.received;
        let want = &expected::SAMPLES[p * SAMPLES..(p + 1) * SAMPLES];
        let got = self
            .rx
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        for (i, (g, w)) in got.clone().zip(want).enumerate() {
            if g != *w {
                self.mismatched_samples += 1;
                if self.first_bad.is_none() {
                    self.first_bad = Some((p, i));
                    defmt::error!(
                        "period {} sample {}: got {=u32:#x} ({}), want {=u32:#x} ({})",
                        p,
                        i,
                        g,
                        f32::from_bits(g),
                        *w,
                        f32::from_bits(*w)
                    );
                }
            }
        }
        let sum = chain::checksum(got);
        if sum != expected::CHECKSUMS[p] {
            defmt::error!("period {} checksum {=u32:#x}, want {=u32:#x}", p, sum, expected::CHECKSUMS[p]);
        }
    }
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().expect("core peripherals");

    let base = NonNull::new(SHARED.0.get().cast::<u8>()).expect("static address");
    // SAFETY: SHARED is a static (lives forever), BLOCK_LEN bytes, 128-byte
    // aligned, and no Rust reference into it is ever formed: only srb-core
    // reaches it, through this pointer.
    let block = unsafe { Block::new(base, BLOCK_LEN) };
    // SAFETY: fresh block, not yet used by anyone; this is its only creator.
    let (geometry, host_ends) = match unsafe { srb::create(block, CAPACITY) } {
        Ok(v) => v,
        Err(e) => fail_attach("srb create", e),
    };
    // SAFETY: the creator finished; this is the block's only attacher.
    let (attached, dsp_ends) = match unsafe { srb::attach(block) } {
        Ok(v) => v,
        Err(e) => fail_attach("srb attach", e),
    };
    defmt::info!("board {}: srb block {} bytes, geometry {}", BOARD, BLOCK_LEN, geometry);
    if attached != geometry {
        defmt::error!("attacher sees {}, creator wrote {}", attached, geometry);
        exit(false);
    }

    // The host side goes to SysTick; the DSP side stays in thread mode.
    let host = Host {
        ch: SrbChannel::new(host_ends, &TO_DSP, &TO_HOST),
        gen: chain::Lcg::new(chain::SEED),
        tx: [0; PERIOD_BYTES],
        tx_off: 0,
        tx_ready: false,
        sent: 0,
        rx: [0; PERIOD_BYTES],
        rx_off: 0,
        received: 0,
        mismatched_samples: 0,
        first_bad: None,
        asleep: false,
        wakeups: 0,
    };
    cortex_m::interrupt::free(|cs| HOST.borrow(cs).replace(Some(host)));
    let mut dsp: Chan = SrbChannel::new(dsp_ends, &TO_HOST, &TO_DSP);

    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(TICK);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let mut chain = chain::Chain::new();
    let mut bytes = [0u8; PERIOD_BYTES];
    let mut samples = [0f32; SAMPLES];
    let mut dsp_waits = 0u32;
    for period in 0..PERIODS {
        // Receive one whole period.
        let mut off = 0;
        while off < PERIOD_BYTES {
            let n = dsp.read(&mut bytes[off..]).expect("dsp read");
            off += n;
            if n == 0 {
                dsp.wait(None).expect("dsp wait");
                dsp_waits += 1;
            }
        }
        for (s, b) in samples.iter_mut().zip(bytes.chunks_exact(4)) {
            *s = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        chain.process(&mut samples);
        #[cfg(feature = "corrupt-sample")]
        if period == CORRUPT_AT.0 {
            let s = &mut samples[CORRUPT_AT.1];
            *s = f32::from_bits(s.to_bits() ^ 0x0040_0000);
            defmt::warn!("corrupt-sample: flipped period {} sample {}", period, CORRUPT_AT.1);
        }
        let _ = period;
        for (b, s) in bytes.chunks_exact_mut(4).zip(samples) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        // Send it back, waiting for space if the host has not drained yet.
        let mut off = 0;
        while off < PERIOD_BYTES {
            let n = dsp.write(&bytes[off..]).expect("dsp write");
            off += n;
            if n == 0 {
                dsp.wait(None).expect("dsp wait");
                dsp_waits += 1;
            }
        }
    }

    // Wait for the host to have checked every period. WFI with interrupts
    // masked: a SysTick pending after the check still ends the sleep.
    while !cortex_m::interrupt::free(|_| {
        let done = DONE.load(Ordering::Acquire);
        if !done {
            cortex_m::asm::wfi();
        }
        done
    }) {}
    cp.SYST.disable_interrupt();
    cp.SYST.disable_counter();

    let (received, bad, first_bad, wakeups) = cortex_m::interrupt::free(|cs| {
        let host = HOST.borrow(cs).borrow();
        let h = host.as_ref().expect("host state");
        (h.received, h.mismatched_samples, h.first_bad, h.wakeups)
    });
    defmt::info!(
        "board {}: dsp waited {} times, host woken early {} times",
        BOARD,
        dsp_waits,
        wakeups
    );
    if received == PERIODS && bad == 0 {
        defmt::info!("board {}: {} periods bit-exact vs host build", BOARD, PERIODS);
        defmt::info!("board {}: {} periods OK", BOARD, PERIODS);
        exit(true);
    }
    defmt::error!(
        "board {}: {} of {} periods back, {} samples differ (first {})",
        BOARD,
        received,
        PERIODS,
        bad,
        first_bad
    );
    defmt::error!("board {}: FAILED", BOARD);
    exit(false)
}

/// Whether SysTick counted down to 0 since the last call (COUNTFLAG, cleared
/// by the read): tells a timer tick from a wake-up that pended SysTick.
fn timer_wrapped() -> bool {
    // SAFETY: a read of SysTick's CSR through the architecture-defined
    // address; only this function reads it after start-up, so the flag it
    // clears is ours.
    let csr = unsafe { (*cortex_m::peripheral::SYST::PTR).csr.read() };
    csr & (1 << 16) != 0
}

#[exception]
fn SysTick() {
    cortex_m::interrupt::free(|cs| {
        if let Some(host) = HOST.borrow(cs).borrow_mut().as_mut() {
            host.tick();
        }
    });
}

#[exception]
fn PendSV() {
    // Only a wake-up: the count lives in TO_DSP.
}
