//! `srb-board-dsp-peer`: the Cortex-M4F firmware as `srbd`'s DSP peer
//! (`srbd --dsp board:ELF`).
//!
//! srbd maps the board's 16 MiB PSRAM as a file and, before QEMU starts,
//! writes a setup area (format, chain spec: `../../../common/peer_setup.rs`)
//! and creates an `srb`-layout block in it. This firmware
//!
//! 1. copies the setup area once (volatile reads) and validates it;
//! 2. attaches the block with `srb::attach`, which validates the header
//!    (srbd may have written anything there);
//! 3. runs SysTick at one tick per period (`25 MHz × frames / rate`), and at
//!    each tick, in thread mode: handles every complete message the host
//!    sent (controls; the period it pulled last tick → runs the same
//!    `srb-dsp-sim` chain as `dsp-sim`, or bit-exact bypass, meters it,
//!    sends it back), counts a deadline miss if that period had not arrived,
//!    and pulls the next one (`Control::Pull`). About once a second it sends
//!    `Stats` (periods, mean/worst processing time, deadline misses, peaks).
//!
//! No doorbells either way: the firmware cannot write srbd's eventfd, and it
//! needs none (SysTick clocks it); srbd polls the ring. It uses the ring ends
//! only (no `SrbChannel`, no fd-semaphore): under QEMU's single-threaded TCG
//! a guest read-modify-write is not atomic against the host process, while
//! the `srb` rings only load and store their positions, each owned by one
//! side.
//!
//! Processing time is measured with DWT CYCCNT if it counts (QEMU 7.2 does
//! not model it) and otherwise with the SysTick counter (25 MHz, 40 ns a
//! tick), which QEMU derives from its virtual clock, i.e. host time.
//!
//! Anything invalid from the host (setup, block, a message) is logged with
//! defmt and ends the run through semihosting (QEMU exits 1); srbd restarts
//! the board.
#![no_std]
#![no_main]

use core::ptr::NonNull;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use portable_atomic::{AtomicU32, Ordering};
use srb_core::layout::srb;
use srb_core::ring::srb::{Consumer, Producer};
use srb_core::{Block, RingConsumer, RingProducer};
use srb_dsp_sim::link::{self as wire, Control, Message, Stats};
use srb_dsp_sim::{Chain, Meter, MAX_CHANNELS};

#[path = "../../../common/peer_setup.rs"]
mod peer_setup;
#[path = "../../../common/runtime.rs"]
mod runtime;

use peer_setup::{Setup, PSRAM_BASE, PSRAM_LEN, SETUP_LEN};
use runtime::{exit, fail_attach};

/// The core clock SysTick counts (QEMU's mps2 boards: 25 MHz).
const CORE_HZ: u64 = 25_000_000;
/// Nanoseconds per SysTick count.
const NS_PER_TICK: u64 = 1_000_000_000 / CORE_HZ;
const MAX_SAMPLES: usize = (peer_setup::MAX_FRAMES * peer_setup::MAX_CHANNELS) as usize;
const MAX_MSG: usize = wire::period_len(
    peer_setup::MAX_FRAMES as usize,
    peer_setup::MAX_CHANNELS as usize,
);

/// SysTick ticks since start (incremented by the handler).
static TICKS: AtomicU32 = AtomicU32::new(0);

#[derive(Default)]
struct Counts {
    periods: u64,
    sum_ns: u64,
    worst_ns: u64,
    misses: u64,
    host_late: u64,
    lost_ticks: u64,
    slow: u64,
    stale: u64,
    dropped: u64,
}

struct Peer {
    tx_ring: Producer,
    rx_ring: Consumer,
    rate: u32,
    channels: usize,
    frames: usize,
    chain: Chain,
    bypass: bool,
    meter: Meter,
    rx: &'static mut [u8; MAX_MSG],
    tx: &'static mut [u8; MAX_MSG],
    input: &'static mut [f32; MAX_SAMPLES],
    output: &'static mut [f32; MAX_SAMPLES],
    next_seq: u32,
    awaiting: Option<u32>,
    counts: Counts,
    period_ticks: u32,
    dwt: bool,
}

/// Why the peer stops (logged, then QEMU exits 1).
#[derive(defmt::Format)]
enum Stop {
    Corrupt(srb_core::Corrupt),
    Link(#[defmt(Display2Format)] wire::LinkError),
    Oversized(usize),
    Unexpected(&'static str),
    BadPeriod(u16, u8),
    ShortWrite(usize, usize),
}

impl From<srb_core::Corrupt> for Stop {
    fn from(e: srb_core::Corrupt) -> Self {
        Stop::Corrupt(e)
    }
}

impl From<wire::LinkError> for Stop {
    fn from(e: wire::LinkError) -> Self {
        Stop::Link(e)
    }
}

impl Peer {
    /// One tick: messages first (a period that arrived before the tick is
    /// in time), then the miss accounting and the next pull.
    fn tick(&mut self, elapsed: u32) -> Result<(), Stop> {
        while self.handle_one()? {}
        if let Some(seq) = self.awaiting.take() {
            self.counts.misses += 1;
            self.counts.host_late += 1;
            defmt::debug!("deadline miss: period {} did not arrive in time", seq);
        }
        let lost = elapsed.saturating_sub(1);
        if lost > 0 {
            self.counts.misses += u64::from(lost);
            self.counts.lost_ticks += u64::from(lost);
        }
        let seq = self.next_seq.wrapping_add(lost);
        self.next_seq = seq.wrapping_add(1);
        let len = Control::Pull { seq }.encode(&mut self.tx[..])?;
        self.send(len)?;
        self.awaiting = Some(seq);
        Ok(())
    }

    /// Handles the next complete message; `false` when none is complete.
    fn handle_one(&mut self) -> Result<bool, Stop> {
        let mut hdr = [0u8; wire::HEADER_LEN];
        if self.rx_ring.peek(&mut hdr)? < wire::HEADER_LEN {
            return Ok(false);
        }
        let len = wire::message_len(&hdr)?;
        let max = wire::period_len(self.frames, self.channels).max(wire::MAX_CONTROL_LEN);
        if len > max {
            return Err(Stop::Oversized(len));
        }
        if self.rx_ring.available()? < len {
            return Ok(false);
        }
        let got = self.rx_ring.read(&mut self.rx[..len])?.read;
        if got != len {
            return Err(Stop::ShortWrite(got, len));
        }
        // Decode from the private copy (never from the shared ring).
        let rx: &[u8] = &self.rx[..len];
        let (msg, _) = wire::decode(rx)?;
        match msg {
            Message::Period(p) => {
                if usize::from(p.channels) != self.channels || usize::from(p.frames) != self.frames
                {
                    return Err(Stop::BadPeriod(p.frames, p.channels));
                }
                if self.awaiting != Some(p.seq) {
                    self.counts.stale += 1;
                    return Ok(true);
                }
                self.awaiting = None;
                let n = self.frames * self.channels;
                let start = now(self.dwt);
                p.copy_samples_to(&mut self.input[..n])?;
                process(
                    &mut self.chain,
                    self.bypass,
                    &self.input[..n],
                    &mut self.output[..n],
                );
                self.meter.process(&self.output[..n]);
                let len =
                    wire::encode_period(p.seq, self.channels, &self.output[..n], &mut self.tx[..])?;
                let ns = since(start, self.dwt, self.period_ticks);
                let c = &mut self.counts;
                c.periods += 1;
                c.sum_ns = c.sum_ns.saturating_add(ns);
                c.worst_ns = c.worst_ns.max(ns);
                if ns > u64::from(self.period_ticks) * NS_PER_TICK {
                    c.misses += 1;
                    c.slow += 1;
                }
                self.send(len)?;
            }
            Message::Control(Control::SetChain(spec)) => {
                match Chain::parse(spec, self.rate as f32, self.channels) {
                    Ok(chain) => {
                        self.chain = chain;
                        defmt::info!("chain set: {=str}", spec);
                    }
                    Err(e) => {
                        defmt::warn!("invalid chain spec ignored: {}", defmt::Display2Format(&e))
                    }
                }
            }
            Message::Control(Control::Bypass(on)) => {
                if self.bypass && !on {
                    self.chain.reset();
                }
                self.bypass = on;
            }
            Message::Control(Control::QueryStats) => self.send_stats()?,
            Message::Control(Control::Pull { .. }) => return Err(Stop::Unexpected("Pull")),
            Message::Stats(_) => return Err(Stop::Unexpected("Stats")),
        }
        Ok(true)
    }

    fn stats(&self) -> Stats {
        let c = &self.counts;
        let mut peak_db = [f32::NEG_INFINITY; MAX_CHANNELS];
        for (ch, p) in peak_db.iter_mut().enumerate().take(self.channels) {
            if let Some(l) = self.meter.levels(ch) {
                *p = l.peak_db();
            }
        }
        Stats {
            periods: c.periods,
            worst_ns: c.worst_ns,
            mean_ns: c.sum_ns.checked_div(c.periods).unwrap_or(0),
            deadline_misses: c.misses,
            channels: self.channels as u8,
            peak_db,
        }
    }

    fn send_stats(&mut self) -> Result<(), Stop> {
        let len = self.stats().encode(&mut self.tx[..])?;
        self.send(len)?;
        self.meter.reset();
        Ok(())
    }

    /// Writes `tx[..len]` whole, or drops it (counted) if srbd does not
    /// make room.
    fn send(&mut self, len: usize) -> Result<(), Stop> {
        if self.tx_ring.free()? < len {
            self.counts.dropped += 1;
            return Ok(());
        }
        let written = self.tx_ring.write(&self.tx[..len])?.written;
        if written != len {
            return Err(Stop::ShortWrite(written, len));
        }
        Ok(())
    }
}

/// The chain, or a bit-exact copy in bypass (as `dsp-sim` does).
fn process(chain: &mut Chain, bypass: bool, input: &[f32], output: &mut [f32]) {
    if bypass {
        srb_dsp_sim::bypass(input, output);
    } else {
        output.copy_from_slice(input);
        chain.process(output);
    }
}

/// A timestamp: CYCCNT, or (SysTick count, tick number).
fn now(dwt: bool) -> (u32, u32) {
    if dwt {
        (cortex_m::peripheral::DWT::cycle_count(), 0)
    } else {
        (
            cortex_m::peripheral::SYST::get_current(),
            TICKS.load(Ordering::Relaxed),
        )
    }
}

/// Nanoseconds since `start` (see [`now`]).
fn since(start: (u32, u32), dwt: bool, period_ticks: u32) -> u64 {
    let end = now(dwt);
    let counts = if dwt {
        u64::from(end.0.wrapping_sub(start.0))
    } else {
        // SysTick counts down from `period_ticks - 1`; each wrap adds a period.
        let wraps = u64::from(end.1.wrapping_sub(start.1));
        (wraps * u64::from(period_ticks) + u64::from(start.0)).saturating_sub(u64::from(end.0))
    };
    counts * NS_PER_TICK
}

/// Whether DWT CYCCNT counts on this (emulated) core.
fn enable_dwt(cp: &mut cortex_m::Peripherals) -> bool {
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let a = cortex_m::peripheral::DWT::cycle_count();
    for _ in 0..1000 {
        cortex_m::asm::nop();
    }
    cortex_m::peripheral::DWT::cycle_count() != a
}

/// Copies the setup area out of the PSRAM (volatile byte reads).
fn read_setup() -> [u8; SETUP_LEN] {
    let mut b = [0u8; SETUP_LEN];
    let base = PSRAM_BASE as usize as *const u8;
    for (i, d) in b.iter_mut().enumerate() {
        // SAFETY: PSRAM_BASE..+SETUP_LEN is device RAM on this board
        // (always mapped); srbd may change it any time, hence volatile, and
        // only this private copy is used afterwards.
        *d = unsafe { base.add(i).read_volatile() };
    }
    b
}

/// Waits (WFI) until SysTick ticked after `last`; returns the tick count.
fn wait_tick(last: u32) -> u32 {
    loop {
        let t = cortex_m::interrupt::free(|_| {
            // Relaxed: the counter only orders itself; interrupts are masked,
            // so a tick pending now still ends the WFI below.
            let t = TICKS.load(Ordering::Relaxed);
            if t == last {
                cortex_m::asm::wfi();
            }
            t
        });
        if t != last {
            return t;
        }
    }
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().expect("core peripherals");
    let setup = match Setup::decode(&read_setup()) {
        Ok(s) => s,
        Err(e) => {
            defmt::error!("dsp peer: setup area refused: {}", defmt::Debug2Format(&e));
            exit(false)
        }
    };
    let Ok(spec) = core::str::from_utf8(setup.chain_bytes()) else {
        defmt::error!("dsp peer: chain spec is not UTF-8");
        exit(false)
    };
    let (channels, frames) = (setup.channels as usize, setup.period_frames as usize);
    let chain = match Chain::parse(spec, setup.rate as f32, channels) {
        Ok(c) => c,
        Err(e) => {
            defmt::error!(
                "dsp peer: chain spec refused: {}",
                defmt::Display2Format(&e)
            );
            exit(false)
        }
    };
    let Ok(meter) = Meter::new(channels) else {
        defmt::error!("dsp peer: no meter for {} channels", channels);
        exit(false)
    };
    let ticks = CORE_HZ * frames as u64 / u64::from(setup.rate);
    if !(2..=0x0100_0000).contains(&ticks) {
        defmt::error!(
            "dsp peer: a period of {} core ticks does not fit SysTick",
            ticks
        );
        exit(false)
    }
    let period_ticks = ticks as u32;
    let base = (PSRAM_BASE as usize + setup.block_offset as usize) as *mut u8;
    let Some(base) = NonNull::new(base) else {
        exit(false)
    };
    // SAFETY: the setup check put [block_offset, +block_len) inside the
    // PSRAM (always mapped device RAM, PSRAM_LEN bytes); no Rust reference
    // into it is ever formed: only srb-core reaches it through this
    // pointer, with atomics and copies.
    let block = unsafe { Block::new(base, setup.block_len as usize) };
    debug_assert!(setup.block_offset as usize + setup.block_len as usize <= PSRAM_LEN);
    // SAFETY: this firmware is the block's only attacher.
    let (geometry, ends) = match unsafe { srb::attach(block) } {
        Ok(v) => v,
        Err(e) => fail_attach("dsp peer: srb attach", e),
    };
    let dwt = enable_dwt(&mut cp);
    defmt::info!(
        "dsp peer: {} Hz, {} ch, {} frames/period ({} SysTick counts), chain {=str}, bypass {}, {}, timing by {=str}",
        setup.rate,
        channels,
        frames,
        period_ticks,
        spec,
        setup.bypass,
        geometry,
        if dwt { "DWT CYCCNT" } else { "SysTick" }
    );
    let (Some(rx), Some(tx), Some(input), Some(output)) = (
        cortex_m::singleton!(RX: [u8; MAX_MSG] = [0; MAX_MSG]),
        cortex_m::singleton!(TX: [u8; MAX_MSG] = [0; MAX_MSG]),
        cortex_m::singleton!(IN: [f32; MAX_SAMPLES] = [0.0; MAX_SAMPLES]),
        cortex_m::singleton!(OUT: [f32; MAX_SAMPLES] = [0.0; MAX_SAMPLES]),
    ) else {
        exit(false)
    };
    let mut peer = Peer {
        tx_ring: ends.producer,
        rx_ring: ends.consumer,
        rate: setup.rate,
        channels,
        frames,
        chain,
        bypass: setup.bypass,
        meter,
        rx,
        tx,
        input,
        output,
        next_seq: 0,
        awaiting: None,
        counts: Counts::default(),
        period_ticks,
        dwt,
    };
    let ticks_per_report = setup.rate.div_ceil(setup.period_frames).max(1);

    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(period_ticks - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let mut last = 0u32;
    let mut since_report = 0u32;
    let mut reports = 0u32;
    loop {
        let t = wait_tick(last);
        let elapsed = t.wrapping_sub(last);
        last = t;
        if let Err(e) = peer.tick(elapsed) {
            defmt::error!("dsp peer: stopping: {}", e);
            exit(false)
        }
        since_report += elapsed;
        if since_report >= ticks_per_report {
            since_report = 0;
            if let Err(e) = peer.send_stats() {
                defmt::error!("dsp peer: stopping: {}", e);
                exit(false)
            }
            reports += 1;
            // A defmt line every 10 reports (semihosting writes are slow).
            if reports % 10 == 1 {
                let c = &peer.counts;
                defmt::info!(
                    "dsp peer: periods {} mean {} ns worst {} ns misses {} (late {} lost {} slow {}) stale {} dropped {}",
                    c.periods,
                    c.sum_ns.checked_div(c.periods).unwrap_or(0),
                    c.worst_ns,
                    c.misses,
                    c.host_late,
                    c.lost_ticks,
                    c.slow,
                    c.stale,
                    c.dropped
                );
            }
        }
    }
}

#[exception]
fn SysTick() {
    // Relaxed: a counter; thread mode only compares it.
    TICKS.fetch_add(1, Ordering::Relaxed);
}
