//! A loopback's worker: the thread that carries audio from a record ring
//! fed by one sink's mixer (a source) to a playback ring read by another
//! sink's mixer, through a `rubato` sinc resampler whose ratio a PI
//! controller ([`crate::engine::audio::rate_match`]) steers so that the
//! playback queue stays at the configured latency whatever the two
//! clocks' drift.
//!
//! It wakes on its own timerfd every [`TICK_MS`] ms, moves every whole
//! input chunk that arrived (one source period each), measures the queue
//! and adjusts the ratio. Everything it touches is allocated when it is
//! started (off the real-time path); the loop itself does not allocate,
//! and neither mixer ever waits for it: a late worker is an underflow on
//! the sink side (the sink input prebuffers again) or dropped frames on
//! the source side.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction,
};

use crate::engine::audio::convert::SINC_LEN;
use crate::engine::audio::rate_match::{RateMatch, MAX_DEVIATION};

/// How often the worker runs, in milliseconds.
pub const TICK_MS: u64 = 5;

/// What the worker carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackSpec {
    /// Channels of both rings (the source's; the sink input remaps).
    pub channels: usize,
    /// The source's rate.
    pub in_rate: u32,
    /// The sink's rate.
    pub out_rate: u32,
    /// Frames per resampler input chunk (the source's period).
    pub chunk: usize,
    /// The playback queue's target fill, in sink frames.
    pub target_frames: usize,
    /// `SCHED_FIFO` priority for the worker (0: normal scheduling), as
    /// the mixers it sits between.
    pub rt_priority: u8,
}

/// Why a loopback could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// The resampler refused the rates or sizes.
    #[error("resampler: {0}")]
    Resampler(#[from] rubato::ResamplerConstructionError),
    /// The timerfd could not be made.
    #[error("timerfd: {0}")]
    Timer(rustix::io::Errno),
    /// The thread could not be started.
    #[error("thread: {0}")]
    Thread(std::io::Error),
}

/// Figures the worker publishes.
#[derive(Debug, Default)]
pub struct LoopbackStats {
    /// The ratio in use (`f64` bits).
    pub ratio_bits: AtomicU64,
    /// Frames moved into the playback queue.
    pub frames_out: AtomicU64,
    /// Frames dropped because the playback queue was full.
    pub dropped: AtomicU64,
}

impl LoopbackStats {
    /// The relative ratio in use.
    pub fn ratio(&self) -> f64 {
        // Relaxed: a figure for logs.
        f64::from_bits(self.ratio_bits.load(Ordering::Relaxed))
    }
}

/// A running worker; stopped (and joined) by [`Worker::stop`] or drop.
#[derive(Debug)]
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Its figures.
    pub stats: Arc<LoopbackStats>,
}

struct State {
    spec: LoopbackSpec,
    input: rtrb::Consumer<f32>,
    output: rtrb::Producer<u8>,
    capacity: usize,
    resampler: Async<f32>,
    control: RateMatch,
    inbuf: Vec<f32>,
    outbuf: Vec<f32>,
    bytes: Vec<u8>,
    stats: Arc<LoopbackStats>,
}

impl Worker {
    /// Starts carrying `input` (the source's f32 frames) to `output` (f32le
    /// bytes at the sink's rate) as `spec` says.
    pub fn start(
        spec: LoopbackSpec,
        input: rtrb::Consumer<f32>,
        output: rtrb::Producer<u8>,
    ) -> Result<Self, LoopbackError> {
        let params = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2);
        let resampler = Async::new_sinc(
            f64::from(spec.out_rate) / f64::from(spec.in_rate.max(1)),
            1.0 + 2.0 * MAX_DEVIATION,
            &params,
            spec.chunk,
            spec.channels,
            FixedAsync::Input,
        )?;
        let out_max = resampler.output_frames_max();
        let stats = Arc::new(LoopbackStats::default());
        stats.ratio_bits.store(1.0f64.to_bits(), Ordering::Relaxed);
        let capacity = output.buffer().capacity();
        let state = State {
            spec,
            input,
            output,
            capacity,
            resampler,
            control: RateMatch::new(spec.out_rate, spec.target_frames),
            inbuf: vec![0.0; spec.chunk * spec.channels],
            outbuf: vec![0.0; out_max * spec.channels],
            bytes: vec![0; out_max * spec.channels * 4],
            stats: stats.clone(),
        };
        let timer =
            srb_linux::timer::periodic(TICK_MS * 1_000_000, false).map_err(LoopbackError::Timer)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("srbd-loopback".into())
            .spawn(move || {
                crate::rt::sched::request_fifo("srbd-loopback", spec.rt_priority);
                state.run(timer, &flag)
            })
            .map_err(LoopbackError::Thread)?;
        Ok(Self {
            stop,
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    /// Stops the worker and waits for it (at most one tick).
    pub fn stop(&self) {
        // Relaxed: a flag polled once per tick.
        self.stop.store(true, Ordering::Relaxed);
        let t = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = t {
            if t.join().is_err() {
                tracing::warn!("loopback worker panicked");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl State {
    fn run(mut self, timer: std::os::fd::OwnedFd, stop: &AtomicBool) {
        let mut buf = [0u8; 8];
        let tick = TICK_MS as f64 / 1000.0;
        // Relaxed: see `Worker::stop`.
        while !stop.load(Ordering::Relaxed) {
            let ticks = match rustix::io::read(&timer, &mut buf) {
                Ok(8) => u64::from_ne_bytes(buf).max(1),
                Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::error!(%e, "loopback timer failed; worker ends");
                    return;
                }
            };
            self.step(tick * ticks as f64);
        }
    }

    /// Moves what arrived, then steers the ratio by the queue's fill.
    fn step(&mut self, dt: f64) {
        let ch = self.spec.channels;
        let frame_bytes = ch * 4;
        while self.input.slots() >= self.inbuf.len() {
            if self.input.pop_entire_slice(&mut self.inbuf).is_err() {
                break;
            }
            let (Ok(input), Ok(mut output)) = (
                InterleavedSlice::new(&self.inbuf[..], ch, self.spec.chunk),
                InterleavedSlice::new_mut(&mut self.outbuf[..], ch, self.bytes.len() / frame_bytes),
            ) else {
                return;
            };
            let written = match self
                .resampler
                .process_into_buffer(&input, &mut output, None)
            {
                Ok((_, written)) => written,
                Err(e) => {
                    tracing::warn!(%e, "loopback resampler");
                    0
                }
            };
            let n = written * ch;
            for (b, x) in self.bytes.chunks_exact_mut(4).zip(&self.outbuf[..n]) {
                b.copy_from_slice(&x.to_le_bytes());
            }
            let (_, rest) = self.output.push_partial_slice(&self.bytes[..n * 4]);
            // Relaxed: figures for logs.
            self.stats.frames_out.fetch_add(
                ((n * 4 - rest.len()) / frame_bytes) as u64,
                Ordering::Relaxed,
            );
            if !rest.is_empty() {
                self.stats
                    .dropped
                    .fetch_add((rest.len() / frame_bytes) as u64, Ordering::Relaxed);
            }
        }
        let queued = (self.capacity - self.output.slots()) / frame_bytes;
        let ratio = self.control.update(queued as f64, dt);
        if let Err(e) = self.resampler.set_resample_ratio_relative(ratio, true) {
            tracing::warn!(%e, ratio, "loopback ratio refused");
        }
        self.stats
            .ratio_bits
            .store(ratio.to_bits(), Ordering::Relaxed);
    }
}
