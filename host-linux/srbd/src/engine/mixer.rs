//! The audio engine of one sink (srbd runs one per sink), clocked by a
//! timerfd (or the DSP peer), that mixes every playback stream once per
//! period, hands the result to the output backend and copies it to every
//! record stream of the monitor source.
//!
//! Moves: a stream's queue goes from one engine to another through their
//! command channels ([`Engine::move_playback`], [`Engine::move_record`]):
//! the old mixer removes it at a period boundary and sends it, state and
//! ring consumer intact, to the new one, which adopts it at its next
//! period. A move of a stream still in transit is kept until the stream
//! arrives; a stopping engine delivers the moves it was sent first. A
//! record stream moved to a sink of another shape is instead dropped here
//! ([`Engine::detach_record`]) and fed a new ring there
//! ([`Engine::add_record`]); its connection drains the old ring first.
//!
//! Where clocks plug in: the period loop is "wait for the next period"
//! (`Mixer::run`: the timerfd read, the DSP link's step, or an ALSA
//! playback device's `wait`) then "render and deliver a period"
//! (`Mixer::period` → `deliver`, which writes the output backend).
//!
//! ## An ALSA output (`OutputSpec::Alsa`)
//!
//! The device is opened in [`Engine::start_with`], before anything else:
//! the sink runs at the rate and period the device took (clients are
//! resampled to it as to any sink). While it is open and no DSP clocks the
//! sink, the mixer waits on it (poll descriptors, or the pacer of a device
//! without a clock) instead of the timerfd, and writes every delivered
//! period to it. When it fails, the mixer drops it, falls back to a fresh
//! timer with the output discarded, and an opener thread reopens it
//! ([`crate::engine::alsa::driven`]); the mixer takes it back at a period
//! boundary. Xruns are recovered and counted on the mixer thread and
//! logged by the control loop (`ServerLoop::watch_alsa`).
//!
//! ## An ALSA capture source (`EngineOptions::capture`)
//!
//! The same engine, the other way round: no playback streams, and each
//! period's "mix" is the period read from the capture device (silence,
//! counted as discarded, while it is down). `deliver` hands it to the
//! monitor's record streams exactly as for a sink (format conversion and
//! resampling per stream on the control side), after the monitor gains,
//! which are the source's volume and mute. The device clocks it as a
//! playback device clocks a sink.
//!
//! With a DSP peer attached, the DSP's pull clock stays the sink's clock:
//! each processed period coming back is written to the device, whose
//! buffer ([`crate::engine::alsa::negotiate::BUFFER_PERIODS`] periods)
//! absorbs the jitter. The two clocks drift apart slowly; that shows as
//! counted, recovered underruns (device faster) or short writes (DSP
//! faster), never as a stall. When the DSP detaches, the device clocks the
//! sink again.
//!
//! The mixer thread owns all per-stream consumer state. It talks to the
//! connection threads only through `rtrb` rings (audio) and the atomics of
//! [`PlaybackShared`]/[`RecordShared`] (control and events), and learns of
//! new streams from an `mpsc` channel it polls with `try_recv`. It takes no
//! lock, never waits for a client, and does no file or socket I/O: a
//! client that is late gets silence and an underflow.
//!
//! Bit exactness: the mix starts from `-0.0` (the identity of IEEE
//! addition, so one stream alone passes through unchanged, signed zeros
//! included) and unity gains multiply by exactly 1.0. A sink with an
//! integer format quantizes the mix to that format before it reaches the
//! output and the monitor.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::io::Errno;

use crate::dsp::link::DspLink;
use crate::engine::alsa::{
    AlsaCapture, AlsaCounters, AlsaPlayback, AlsaStream, DeviceFacts, Driven, OpenError,
};
use crate::engine::audio::convert::PlaybackConverter;
use crate::engine::audio::format;
use crate::engine::buffers::BufferStats;
use crate::engine::dsp_clock::{DspClock, DspCounters, DspPolicy, Step};
use crate::engine::notice::Bell;
use crate::engine::output::{Output, OutputError, OutputSpec};
pub use crate::engine::sink_shared::SinkShared;
use crate::engine::state_page::{PagePublisher, PageSetup, PageSink, SinkFigures};
pub use crate::engine::stream::RecordOutput;
use crate::engine::stream::{Gains, PlaybackShared, RecordShared};
use crate::engine::tap;
use crate::rt::sched::prefaulted;
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::{ChannelMap, SampleSpec};

/// Smallest sink period in frames.
pub const MIN_PERIOD: usize = 64;
/// Largest sink period in frames.
pub const MAX_PERIOD: usize = 4096;
/// A late mixer renders at most this many periods at once to catch up
/// (so streams keep real time on a loaded machine); beyond that the lost
/// time is skipped (and counted in `SinkShared::skipped`).
const MAX_CATCH_UP: u64 = 64;
/// Periods after which the mixer thread arms [`crate::rt::alloc_count`]
/// (stream set-up before it is not the period path). Only a binary that
/// installs the counting allocator counts anything (`tests/mixer_alloc.rs`
/// does, to prove the period path does not allocate).
pub const ALLOC_WARMUP_PERIODS: u64 = 16;
/// Seconds of monitor audio a record stream's ring holds.
const RECORD_RING_SECONDS: usize = 2;

/// What the sink is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// Its sample spec (the mix is f32; integer formats are quantized).
    pub spec: SampleSpec,
    /// Its channel map (`map.channels() == spec.channels`).
    pub map: ChannelMap,
    /// Frames per period ([`MIN_PERIOD`]..=[`MAX_PERIOD`]).
    pub period_frames: usize,
    /// Where the rendered audio goes.
    pub output: OutputSpec,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The period is outside 64..=4096 frames.
    #[error("period of {0} frames is outside {MIN_PERIOD}..={MAX_PERIOD}")]
    Period(usize),
    /// The sample spec or channel map is invalid or they disagree.
    #[error("bad sink sample spec or channel map: {0}")]
    Spec(String),
    /// The output backend failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The timerfd could not be set up.
    #[error("timerfd: {0}")]
    Timer(Errno),
    /// The mixer thread could not be started.
    #[error("mixer thread: {0}")]
    Thread(String),
    /// The ALSA output could not be set up (a bad spec or name: a device
    /// that is merely missing is waited for).
    #[error(transparent)]
    Alsa(#[from] OpenError),
}

/// A playback stream handed to the mixer.
pub struct PlaybackInput {
    /// Shared control state.
    pub shared: Arc<PlaybackShared>,
    /// The client's bytes, in its own format.
    pub ring: rtrb::Consumer<u8>,
    /// Client format → sink f32 frames.
    pub converter: PlaybackConverter,
}

enum Msg {
    Playback(Box<PlaybackInput>),
    Record(Box<RecordOutput>),
    Converter(u32, Box<PlaybackConverter>),
    /// Hand sink input `index` (with its queue and play state) to another
    /// mixer at this mixer's next period boundary, converting for the new
    /// sink with `converter` when given.
    MovePlayback {
        index: u32,
        to: mpsc::Sender<Msg>,
        converter: Option<Box<PlaybackConverter>>,
    },
    /// Hand source output `index` (its ring) to another mixer.
    MoveRecord {
        index: u32,
        to: mpsc::Sender<Msg>,
    },
    /// Drop source output `index` (it continues on another mixer, in a
    /// new ring) and bump its `detached`.
    DetachRecord(u32),
    /// A sink input another mixer released, adopted as it was.
    Adopt(Box<Input>),
    /// List another sink on this mixer's state page.
    PageAdd(Box<PageSink>),
    /// Unlist sink `index` from the state page.
    PageRemove(u32),
}

/// How the engine runs besides its sink ([`Engine::start_with`]).
#[derive(Debug, Default)]
pub struct EngineOptions {
    /// The supervisor's DSP links: each one received clocks and processes
    /// the sink until it is declared dead (see [`crate::engine::dsp_clock`]).
    pub dsp: Option<mpsc::Receiver<DspLink>>,
    /// What a missed DSP period plays and when a DSP is dead.
    pub policy: DspPolicy,
    /// `SCHED_FIFO` priority for the mixer thread (0: normal scheduling).
    pub rt_priority: u8,
    /// The state page to publish the sink's clock and counters on.
    pub page: Option<PageSetup>,
    /// The control loop's bell to ring (another sink's, so one eventfd
    /// serves every sink); `None`: a new one.
    pub bell: Option<Arc<Bell>>,
    /// The ring accounting to share (another sink's, so `pactl stat`
    /// counts every sink's rings); `None`: a new one.
    pub buffers: Option<Arc<BufferStats>>,
    /// An ALSA capture device: the engine is then a capture source's, its
    /// "mix" each period is what the device captured (no playback
    /// streams), its monitor's record streams the source's, clocked by the
    /// device. See the module doc.
    pub capture: Option<String>,
}

/// The running engine.
#[derive(Debug)]
pub struct Engine {
    config: SinkConfig,
    shared: Arc<SinkShared>,
    dsp: Arc<DspCounters>,
    tx: mpsc::Sender<Msg>,
    bell: Arc<Bell>,
    thread: Mutex<Option<JoinHandle<Result<u64, OutputError>>>>,
    alsa: Option<(DeviceFacts, Arc<AlsaCounters>)>,
}

impl std::fmt::Debug for PlaybackInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackInput")
            .field("index", &self.shared.index)
            .field("queued", &self.ring.slots())
            .finish()
    }
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Playback(p) => write!(f, "Playback({})", p.shared.index),
            Msg::Record(r) => write!(f, "Record({})", r.shared.index),
            Msg::Converter(i, _) => write!(f, "Converter({i})"),
            Msg::MovePlayback { index, .. } => write!(f, "MovePlayback({index})"),
            Msg::MoveRecord { index, .. } => write!(f, "MoveRecord({index})"),
            Msg::DetachRecord(index) => write!(f, "DetachRecord({index})"),
            Msg::Adopt(i) => write!(f, "Adopt({})", i.p.shared.index),
            Msg::PageAdd(p) => write!(f, "PageAdd({})", p.sink.0),
            Msg::PageRemove(i) => write!(f, "PageRemove({i})"),
        }
    }
}

impl Engine {
    /// Opens the output and starts the mixer thread.
    pub fn start(config: SinkConfig) -> Result<Self, EngineError> {
        Self::start_with_dsp(config, None)
    }

    /// Like [`Engine::start`], with a DSP peer (`dsp`, as received from
    /// the supervisor) under the default [`DspPolicy`].
    pub fn start_with_dsp(
        config: SinkConfig,
        dsp: Option<mpsc::Receiver<DspLink>>,
    ) -> Result<Self, EngineError> {
        Self::start_with(
            config,
            EngineOptions {
                dsp,
                ..EngineOptions::default()
            },
        )
    }

    /// Like [`Engine::start`], with the DSP peer, its policy and the mixer
    /// thread's real-time priority from `opts`.
    pub fn start_with(config: SinkConfig, opts: EngineOptions) -> Result<Self, EngineError> {
        let mut config = config;
        let EngineOptions {
            dsp,
            policy,
            rt_priority,
            page,
            bell,
            buffers,
            capture,
        } = opts;
        if !(MIN_PERIOD..=MAX_PERIOD).contains(&config.period_frames) {
            return Err(EngineError::Period(config.period_frames));
        }
        config
            .spec
            .check()
            .map_err(|e| EngineError::Spec(e.to_string()))?;
        config
            .map
            .check()
            .map_err(|e| EngineError::Spec(e.to_string()))?;
        if config.map.channels() != config.spec.channels {
            return Err(EngineError::Spec(format!(
                "{} channels but a map of {}",
                config.spec.channels,
                config.map.channels()
            )));
        }
        let alsa = match config.output.clone() {
            OutputSpec::Alsa(name) => Some(open_device::<AlsaPlayback>(&name, &mut config)?),
            _ => None,
        };
        let capture = match &capture {
            Some(name) => Some(open_device::<AlsaCapture>(name, &mut config)?),
            None => None,
        };
        let alsa_info = alsa
            .as_ref()
            .map(|d| (d.facts().clone(), d.counters().clone()))
            .or_else(|| {
                capture
                    .as_ref()
                    .map(|d| (d.facts().clone(), d.counters().clone()))
            });
        let output = Output::open(&config.output, &config.spec)?;
        let timer = timer(&config)?;
        let shared = Arc::new(SinkShared {
            gains: Gains::unity(),
            monitor_gains: Gains::unity(),
            running: AtomicBool::new(false),
            periods: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            suspended: AtomicBool::new(false),
            monitor_suspended: AtomicBool::new(false),
            sink_state: AtomicU8::new(1),
            monitor_state: AtomicU8::new(1),
            output_frames: AtomicU64::new(0),
            buffers: buffers.unwrap_or_default(),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let bell = match bell {
            Some(b) => b,
            None => Arc::new(Bell::new().map_err(|e| EngineError::Thread(e.to_string()))?),
        };
        let mut mixer = Mixer::new(&config, shared.clone(), rx, output, bell.clone());
        mixer.alsa = alsa;
        mixer.capture = capture;
        let dsp_counters = Arc::new(DspCounters::default());
        if let Some(links) = dsp {
            let samples = config.period_frames * usize::from(config.spec.channels);
            let period = Duration::from_nanos(
                config.period_frames as u64 * 1_000_000_000 / u64::from(config.spec.rate),
            );
            mixer.dsp = Some(DspClock::new(
                links,
                samples,
                period,
                policy,
                dsp_counters.clone(),
            ));
        }
        if let Some(setup) = page {
            mixer.page = Some((
                PagePublisher::new(setup, config.spec, config.period_frames),
                dsp_counters.clone(),
            ));
        }
        let thread = std::thread::Builder::new()
            .name("srbd-mixer".into())
            .spawn(move || {
                crate::rt::sched::request_fifo("srbd-mixer", rt_priority);
                mixer.run(timer)
            })
            .map_err(|e| EngineError::Thread(e.to_string()))?;
        Ok(Self {
            config,
            shared,
            dsp: dsp_counters,
            tx,
            bell,
            thread: Mutex::new(Some(thread)),
            alsa: alsa_info,
        })
    }

    /// The ALSA device the sink plays to, or (a capture engine) records
    /// from: what it is, and its trouble counters.
    pub fn alsa(&self) -> Option<&(DeviceFacts, Arc<AlsaCounters>)> {
        self.alsa.as_ref()
    }

    /// The control loop's bell, rung by the mixer after a period that
    /// marked a client's [`crate::engine::notice::Notice`].
    pub fn bell(&self) -> &Arc<Bell> {
        &self.bell
    }

    /// The DSP clock's counters and the DSP's latest statistics.
    pub fn dsp(&self) -> &Arc<DspCounters> {
        &self.dsp
    }

    /// The sink's configuration.
    pub fn config(&self) -> &SinkConfig {
        &self.config
    }

    /// The sink state shared with the mixer.
    pub fn shared(&self) -> &Arc<SinkShared> {
        &self.shared
    }

    /// The length of one period in microseconds.
    pub fn period_usec(&self) -> u64 {
        self.config.period_frames as u64 * 1_000_000 / u64::from(self.config.spec.rate)
    }

    /// The sink's latency now, in microseconds: how long audio the mixer
    /// takes from a stream waits before it is out. That is the period
    /// being played (a period is rendered whole at its start), what the
    /// output backend still holds, and, while a DSP is attached, one more
    /// period for its round trip (the mix goes out when the processed
    /// period comes back).
    pub fn sink_latency_usec(&self) -> u64 {
        let period = self.config.period_frames as u64;
        // Relaxed: figures for a latency reply.
        let output = self.shared.output_frames.load(Ordering::Relaxed);
        let attached = self.dsp.attached.load(Ordering::Relaxed);
        let fallbacks = self.dsp.fallbacks.load(Ordering::Relaxed);
        let dsp = if attached > fallbacks { period } else { 0 };
        self.frames_usec(period + output + dsp)
    }

    /// The monitor source's lead over the sink, in microseconds: what the
    /// output still holds of audio the monitor already has (the monitor
    /// gets each period as the output does, after the DSP).
    pub fn monitor_lead_usec(&self) -> u64 {
        // Relaxed: a figure for a latency reply.
        self.frames_usec(self.shared.output_frames.load(Ordering::Relaxed))
    }

    /// `frames` of the sink in microseconds.
    pub fn frames_usec(&self, frames: u64) -> u64 {
        frames.saturating_mul(1_000_000) / u64::from(self.config.spec.rate.max(1))
    }

    /// Starts mixing a playback stream (from its next period).
    pub fn add_playback(&self, input: PlaybackInput) {
        if self.tx.send(Msg::Playback(Box::new(input))).is_err() {
            tracing::warn!("mixer has stopped; stream not added");
        }
    }

    /// Replaces the converter of sink input `index` (a new client rate)
    /// from its next period.
    pub fn set_converter(&self, index: u32, converter: PlaybackConverter) {
        if self
            .tx
            .send(Msg::Converter(index, Box::new(converter)))
            .is_err()
        {
            tracing::warn!("mixer has stopped; converter not replaced");
        }
    }

    /// Starts feeding a record stream from the monitor (`tap == None`) or
    /// from sink input `tap` alone; returns the consumer end of its ring.
    pub fn add_record(&self, shared: Arc<RecordShared>, tap: Option<u32>) -> rtrb::Consumer<f32> {
        let capacity = RECORD_RING_SECONDS
            * self.config.spec.rate as usize
            * usize::from(self.config.spec.channels);
        let (producer, consumer) = rtrb::RingBuffer::new(capacity);
        let out = RecordOutput {
            shared,
            ring: producer,
            tap,
        };
        if self.tx.send(Msg::Record(Box::new(out))).is_err() {
            tracing::warn!("mixer has stopped; stream not added");
        }
        consumer
    }

    /// Moves sink input `index` to the mixer of `to`: this mixer releases
    /// it at its next period boundary and `to` adopts it at its own, the
    /// same ring consumer and play state, so no byte the client sent is
    /// lost or played twice and the gap is at most one period of `to`.
    /// `converter` (built for `to`'s spec) replaces the stream's when the
    /// two sinks differ.
    pub fn move_playback(&self, index: u32, to: &Engine, converter: Option<PlaybackConverter>) {
        let msg = Msg::MovePlayback {
            index,
            to: to.tx.clone(),
            converter: converter.map(Box::new),
        };
        if self.tx.send(msg).is_err() {
            tracing::warn!(index, "mixer has stopped; sink input not moved");
        }
    }

    /// Moves source output `index` (its ring, in this sink's spec) to the
    /// monitor of `to`, which must have the same spec (else see
    /// [`Engine::detach_record`]).
    pub fn move_record(&self, index: u32, to: &Engine) {
        let msg = Msg::MoveRecord {
            index,
            to: to.tx.clone(),
        };
        if self.tx.send(msg).is_err() {
            tracing::warn!(index, "mixer has stopped; source output not moved");
        }
    }

    /// Stops feeding source output `index` at this mixer's next period
    /// boundary (it moved to a sink of another shape and continues in a
    /// new ring from [`Engine::add_record`] there); the shared state stays
    /// open, and its `detached` counter tells the connection thread that
    /// the old ring will get nothing more.
    pub fn detach_record(&self, index: u32) {
        if self.tx.send(Msg::DetachRecord(index)).is_err() {
            tracing::warn!(index, "mixer has stopped; source output not detached");
        }
    }

    /// Lists another sink on this engine's state page (if it publishes
    /// one), from its next period.
    pub fn page_add(&self, sink: PageSink) {
        // A stopped mixer publishes nothing more: nothing to list.
        let _ = self.tx.send(Msg::PageAdd(Box::new(sink)));
    }

    /// Unlists sink `index` from this engine's state page.
    pub fn page_remove(&self, index: u32) {
        let _ = self.tx.send(Msg::PageRemove(index));
    }

    /// Stops the mixer, then flushes and closes the output; returns the
    /// samples the output wrote.
    pub fn stop(&self) -> Result<u64, OutputError> {
        // Relaxed: a flag the mixer polls once per period.
        self.shared.stop.store(true, Ordering::Relaxed);
        // Only stop() takes this lock (never the mixer).
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match thread {
            None => Ok(0),
            Some(t) => t
                .join()
                .map_err(|_| OutputError::Thread("mixer panicked".into()))?,
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(%e, "engine stop");
        }
    }
}

/// Opens the ALSA device `name` for the engine (warning if it routes to a
/// sound server); the engine then runs at the rate and period it took.
fn open_device<S: AlsaStream + Send + 'static>(
    name: &str,
    config: &mut SinkConfig,
) -> Result<Driven<S>, EngineError> {
    crate::engine::alsa::default::warn_if_server(name, S::DIRECTION);
    let d = Driven::<S>::start(name, config.spec, config.period_frames)?;
    if let Some(n) = &d.facts().negotiated {
        if !(MIN_PERIOD..=MAX_PERIOD).contains(&n.period_frames) {
            return Err(EngineError::Period(n.period_frames));
        }
        config.spec.rate = n.rate;
        config.period_frames = n.period_frames;
    }
    Ok(d)
}

fn timer(config: &SinkConfig) -> Result<OwnedFd, EngineError> {
    new_timer(config.period_frames, config.spec.rate).map_err(EngineError::Timer)
}

/// A timerfd ticking every `frames` frames at `rate`.
fn new_timer(frames: usize, rate: u32) -> Result<OwnedFd, Errno> {
    srb_linux::timer::periodic(srb_linux::timer::period_ns(frames, rate), false)
}

/// Mixer-side state of one playback stream.
struct Input {
    p: PlaybackInput,
    scratch: Vec<u8>,
    out: Vec<f32>,
    prebuffering: bool,
    /// Not playing since creation or the last underflow.
    starved: bool,
    draining: Option<u32>,
    /// End of stream reached while draining; flushing the converter.
    flushing: bool,
    trigger_seen: u32,
    prebuf_seen: u32,
    read: u64,
    /// A record stream taps this input (`monitor_stream`).
    tapped: bool,
}

impl Input {
    fn new(p: PlaybackInput, sink_samples: usize) -> Self {
        let frame = p.converter.client_frame_size();
        let need = p.converter.input_frames_next();
        let trigger_seen = p.shared.trigger_seq.load(Ordering::Acquire);
        let prebuf_seen = p.shared.prebuf_seq.load(Ordering::Acquire);
        Self {
            scratch: vec![0; (need * 2 + 64) * frame],
            out: vec![0.0; sink_samples],
            prebuffering: true,
            starved: true,
            draining: None,
            flushing: false,
            trigger_seen,
            prebuf_seen,
            read: 0,
            tapped: false,
            p,
        }
    }

    /// Replaces the converter (a new client rate, or a move to a sink of
    /// another spec).
    fn set_converter(&mut self, c: PlaybackConverter) {
        let frame = c.client_frame_size();
        let need = (c.input_frames_next() * 2 + 64) * frame;
        if self.scratch.len() < need {
            // A rare control operation: the one allocation the mixer
            // makes outside stream creation.
            self.scratch.resize(need, 0);
        }
        self.p.converter = c;
    }

    /// Consumes `n` bytes from the ring into `scratch[..n]`.
    fn take(&mut self, n: usize) -> bool {
        if self.scratch.len() < n {
            // Only if the converter's input size grew past the estimate.
            self.scratch.resize(n, 0);
        }
        let ok = self.p.ring.pop_entire_slice(&mut self.scratch[..n]).is_ok();
        if ok {
            self.read += n as u64;
        }
        ok
    }

    fn skip(&mut self, n: usize) {
        if let Ok(chunk) = self.p.ring.read_chunk(n) {
            chunk.commit_all();
            self.read += n as u64;
        }
    }

    /// Renders this stream's next period into `self.out`; returns whether
    /// it produced audio, and whether the owner should be woken.
    fn render(&mut self) -> (bool, bool) {
        // A clone (no allocation) so `s` does not borrow `self`.
        let s = self.p.shared.clone();
        let mut wake = false;
        // Acquire pairs with the connection's Release stores: the ring
        // bytes written before a FLUSH are the ones skipped.
        let flush_to = s.flush_to.load(Ordering::Acquire);
        if flush_to > self.read {
            let n = (flush_to - self.read).min(self.p.ring.slots() as u64) as usize;
            self.skip(n);
            wake = true;
        }
        let trigger = s.trigger_seq.load(Ordering::Acquire);
        if trigger != self.trigger_seen {
            self.trigger_seen = trigger;
            self.prebuffering = false;
        }
        let prebuf_req = s.prebuf_seq.load(Ordering::Acquire);
        if prebuf_req != self.prebuf_seen {
            self.prebuf_seen = prebuf_req;
            self.prebuffering = true;
        }
        let drain = s.drain_seq.load(Ordering::Acquire);
        if drain != s.drained_seq.load(Ordering::Relaxed) && self.draining != Some(drain) {
            self.draining = Some(drain);
            // A drain plays out whatever is queued.
            self.prebuffering = false;
        }
        let produced = if s.corked.load(Ordering::Relaxed) {
            false
        } else {
            let frame = self.p.converter.client_frame_size();
            let avail = self.p.ring.slots();
            if self.prebuffering
                && self.draining.is_none()
                && avail < s.prebuf.load(Ordering::Relaxed) as usize
            {
                false
            } else {
                self.prebuffering = false;
                let need = self.p.converter.input_frames_next() * frame;
                // `need` may be 0: a resampler with enough input buffered.
                if !self.flushing && avail >= need {
                    if self.take(need) {
                        self.p
                            .converter
                            .process(&self.scratch[..need], &mut self.out);
                        wake = true;
                        true
                    } else {
                        false
                    }
                } else if self.draining.is_some() {
                    // End of stream: the partial rest, then the converter's
                    // tail, then the drain is complete.
                    let n = if self.flushing {
                        0
                    } else {
                        avail - avail % frame
                    };
                    self.flushing = true;
                    let got = n > 0 && self.take(n);
                    let input: &[u8] = if got { &self.scratch[..n] } else { &[] };
                    let frames = self.p.converter.process_partial(input, &mut self.out);
                    if frames == 0 {
                        if let Some(seq) = self.draining.take() {
                            // Release: the read index stored below is
                            // visible with the drain completion.
                            s.read_index.store(self.read, Ordering::Release);
                            s.drained_seq.store(seq, Ordering::Release);
                        }
                        self.flushing = false;
                        self.starved = true;
                        self.prebuffering = s.prebuf.load(Ordering::Relaxed) > 0;
                        wake = true;
                    }
                    frames > 0
                } else {
                    // Starved while playing: an underflow, then prebuffer
                    // again as PulseAudio does.
                    if !self.starved {
                        self.starved = true;
                        s.underflow_at.store(self.read, Ordering::Relaxed);
                        // Release: publishes `underflow_at`.
                        s.underflows.fetch_add(1, Ordering::Release);
                        wake = true;
                    }
                    self.prebuffering = s.prebuf.load(Ordering::Relaxed) > 0;
                    if !self.prebuffering {
                        // Without prebuffering the stream keeps running
                        // through the gap, as PulseAudio's read index
                        // does: its clock advances by the silence played.
                        // Relaxed: a counter for latency replies.
                        s.silence.fetch_add(need as u64, Ordering::Relaxed);
                    }
                    false
                }
            }
        };
        if produced && self.starved {
            self.starved = false;
            s.started.fetch_add(1, Ordering::Release);
            wake = true;
        }
        // Relaxed: status flags for latency replies.
        s.playing.store(produced, Ordering::Relaxed);
        s.prebuffering.store(self.prebuffering, Ordering::Relaxed);
        // Release: the consumed ring space is free before the connection
        // computes the next request from this index.
        s.read_index.store(self.read, Ordering::Release);
        (produced, wake)
    }
}

struct Mixer {
    channels: usize,
    spec: SampleSpec,
    period: usize,
    shared: Arc<SinkShared>,
    rx: mpsc::Receiver<Msg>,
    inputs: Vec<Input>,
    records: Vec<RecordOutput>,
    mix: Vec<f32>,
    monitor: Vec<f32>,
    quantize: Vec<u8>,
    output: Option<Output>,
    /// The ALSA device the sink plays to (and is clocked by while open).
    alsa: Option<Driven<AlsaPlayback>>,
    /// The ALSA device a capture engine records from (and is clocked by
    /// while open).
    capture: Option<Driven<AlsaCapture>>,
    dsp: Option<DspClock>,
    /// The control loop's bell, and whether this period must ring it.
    bell: Arc<Bell>,
    bell_due: bool,
    /// The state page, with the DSP counters it reports, and whether the
    /// DSP clocks the sink now.
    page: Option<(PagePublisher, Arc<DspCounters>)>,
    dsp_active: bool,
    /// Moves of sink inputs that had not arrived yet (index, where to,
    /// converter): done as they arrive.
    pending: Vec<PendingMove>,
    /// Record streams detached while still on their way here (a
    /// same-shape move from another mixer): dropped when they arrive.
    pending_detach: Vec<u32>,
}

type PendingMove = (u32, mpsc::Sender<Msg>, Option<Box<PlaybackConverter>>);

/// Sends a released stream on to the mixer it moves to (a stopped mixer
/// drops it: its sink is gone).
fn forward(to: &mpsc::Sender<Msg>, msg: Msg) {
    if to.send(msg).is_err() {
        tracing::warn!("the sink a stream moved to has stopped; stream dropped");
    }
}

impl Mixer {
    fn new(
        config: &SinkConfig,
        shared: Arc<SinkShared>,
        rx: mpsc::Receiver<Msg>,
        output: Output,
        bell: Arc<Bell>,
    ) -> Self {
        let channels = usize::from(config.spec.channels);
        let samples = config.period_frames * channels;
        let sample_size = config.spec.sample_size().unwrap_or(4);
        Self {
            channels,
            spec: config.spec,
            period: config.period_frames,
            shared,
            rx,
            inputs: Vec::new(),
            records: Vec::new(),
            mix: prefaulted(samples, 0.0),
            monitor: prefaulted(samples, 0.0),
            quantize: prefaulted(samples * sample_size, 0),
            output: Some(output),
            alsa: None,
            capture: None,
            dsp: None,
            bell,
            bell_due: false,
            page: None,
            dsp_active: false,
            pending: Vec::new(),
            pending_detach: Vec::new(),
        }
    }

    fn run(&mut self, timer: OwnedFd) -> Result<u64, OutputError> {
        tracing::debug!(period = self.period, "mixer running");
        let mut timer = timer;
        let mut buf = [0u8; 8];
        let mut armed = false;
        // Whether the last period was clocked by the ALSA device.
        let mut on_device = false;
        // Relaxed: see `Engine::stop`.
        while !self.shared.stop.load(Ordering::Relaxed) {
            if !armed && self.shared.periods.load(Ordering::Relaxed) >= ALLOC_WARMUP_PERIODS {
                crate::rt::alloc_count::arm();
                armed = true;
            }
            self.dsp_active = self.dsp.as_mut().is_some_and(DspClock::active);
            if self.dsp_active {
                if !self.dsp_iteration() {
                    // Detached: our own clock again, starting one period
                    // from now (a fresh timer has no stale expirations).
                    match new_timer(self.period, self.spec.rate) {
                        Ok(t) => timer = t,
                        Err(e) => tracing::error!(%e, "cannot re-arm the sink timer"),
                    }
                }
                self.alsa_back();
                continue;
            }
            let open = self.alsa.as_ref().is_some_and(Driven::is_open)
                || self.capture.as_ref().is_some_and(Driven::is_open);
            if on_device && !open {
                // The device failed: our own clock from one period from
                // now (a fresh timer has no stale expirations).
                match new_timer(self.period, self.spec.rate) {
                    Ok(t) => timer = t,
                    Err(e) => tracing::error!(%e, "cannot re-arm the sink timer"),
                }
            }
            on_device = open;
            if open {
                let ready = match (&mut self.alsa, &mut self.capture) {
                    (Some(a), _) => a.wait(),
                    (None, Some(c)) => c.wait(),
                    (None, None) => false,
                };
                if ready {
                    self.period();
                }
                continue;
            }
            match rustix::io::read(&timer, &mut buf) {
                Ok(8) => {}
                Ok(_) | Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
                Err(e) => {
                    tracing::error!(%e, "timerfd read failed; mixer pausing");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let expirations = u64::from_ne_bytes(buf);
            let render = expirations.clamp(1, MAX_CATCH_UP);
            if expirations > render {
                self.shared
                    .skipped
                    .fetch_add(expirations - render, Ordering::Relaxed);
            }
            for _ in 0..render {
                self.period();
            }
            self.alsa_back();
        }
        crate::rt::alloc_count::disarm();
        if let Some(dsp) = &self.dsp {
            dsp.log_summary();
        }
        // Moves sent before the stop (a sink being removed hands its
        // streams on) still go where they were sent.
        self.adopt();
        self.inputs.clear();
        self.records.clear();
        match self.output.take() {
            Some(o) => o.finish(),
            None => Ok(0),
        }
    }

    /// Takes the ALSA device back if the opener reopened it.
    fn alsa_back(&mut self) {
        if let Some(a) = &mut self.alsa {
            a.poll_back();
        }
        if let Some(c) = &mut self.capture {
            c.poll_back();
        }
    }

    /// One step of the DSP clock; false once the DSP was detached.
    fn dsp_iteration(&mut self) -> bool {
        let Some(mut dsp) = self.dsp.take() else {
            return false;
        };
        let outcome = dsp.step();
        let mut steps = std::mem::take(&mut dsp.queue);
        for step in steps.drain(..) {
            match step {
                Step::Render => {
                    self.render_mix();
                    // Not sent (ring full or link broken): a missed period.
                    if !dsp.sent(&self.mix, self.channels as u8) {
                        self.deliver_fallback(&dsp);
                    }
                }
                Step::Deliver => self.deliver(&dsp.processed),
                Step::Missed => self.deliver(dsp.fallback(&dsp.pending_mix)),
                Step::Cover => {
                    self.render_mix();
                    self.deliver_fallback(&dsp);
                }
            }
        }
        dsp.queue = steps;
        self.ring_bell();
        let attached = outcome.is_ok() && dsp.has_link();
        self.dsp = Some(dsp);
        attached
    }

    fn adopt(&mut self) {
        let mut adopted = false;
        while let Ok(msg) = self.rx.try_recv() {
            adopted = true;
            match msg {
                Msg::Playback(p) => {
                    let n = self.mix.len();
                    self.inputs.push(Input::new(*p, n));
                }
                Msg::Record(r) => {
                    let index = r.shared.index;
                    match self.pending_detach.iter().position(|i| *i == index) {
                        Some(k) => {
                            self.pending_detach.swap_remove(k);
                            // Release: as below; it wrote nothing here.
                            r.shared.detached.fetch_add(1, Ordering::Release);
                        }
                        None => self.records.push(*r),
                    }
                }
                Msg::Adopt(mut input) => {
                    let index = input.p.shared.index;
                    if let Some(k) = self.pending.iter().position(|m| m.0 == index) {
                        // Moved on again before it arrived here.
                        let (_, to, converter) = self.pending.swap_remove(k);
                        if let Some(c) = converter {
                            input.set_converter(*c);
                        }
                        forward(&to, Msg::Adopt(input));
                        continue;
                    }
                    let n = self.mix.len();
                    if input.out.len() != n {
                        // A sink of another shape: a control operation.
                        input.out.resize(n, 0.0);
                    }
                    self.inputs.push(*input);
                }
                Msg::MovePlayback {
                    index,
                    to,
                    converter,
                } => match self.inputs.iter().position(|i| i.p.shared.index == index) {
                    Some(k) => {
                        let mut input = self.inputs.remove(k);
                        if let Some(c) = converter {
                            input.set_converter(*c);
                        }
                        forward(&to, Msg::Adopt(Box::new(input)));
                    }
                    // Still on its way here from another mixer.
                    None => self.pending.push((index, to, converter)),
                },
                Msg::MoveRecord { index, to } => {
                    if let Some(k) = self.records.iter().position(|r| r.shared.index == index) {
                        let r = self.records.remove(k);
                        forward(&to, Msg::Record(Box::new(r)));
                    }
                }
                Msg::DetachRecord(index) => {
                    if let Some(k) = self.records.iter().position(|r| r.shared.index == index) {
                        let r = self.records.remove(k);
                        // Release: after this mixer's last write to the
                        // ring, which the connection thread then drains.
                        r.shared.detached.fetch_add(1, Ordering::Release);
                    } else {
                        // Still on its way here from another mixer.
                        self.pending_detach.push(index);
                    }
                }
                Msg::PageAdd(p) => {
                    if let Some((page, _)) = &mut self.page {
                        page.add(*p);
                    }
                }
                Msg::PageRemove(index) => {
                    if let Some((page, _)) = &mut self.page {
                        page.remove(index);
                    }
                }
                Msg::Converter(index, c) => {
                    if let Some(i) = self.inputs.iter_mut().find(|i| i.p.shared.index == index) {
                        i.set_converter(*c);
                    }
                }
            }
        }
        // Relaxed: `closed` only says "stop using this"; the Arc keeps the
        // state alive for whichever side drops last.
        let counts = (self.inputs.len(), self.records.len());
        self.inputs
            .retain(|i| !i.p.shared.closed.load(Ordering::Relaxed));
        self.records
            .retain(|r| !r.shared.closed.load(Ordering::Relaxed));
        if adopted || counts != (self.inputs.len(), self.records.len()) {
            // Only when streams came or went: which inputs are tapped, so
            // a period feeds taps in O(taps × records), not per input.
            for i in &mut self.inputs {
                let index = i.p.shared.index;
                i.tapped = self.records.iter().any(|r| r.tap == Some(index));
            }
        }
    }

    /// Renders and delivers one period (the sink's own clock). With a DSP
    /// configured but none attached (it is being restarted), the period is
    /// a missed one: its fallback plays.
    fn period(&mut self) {
        if let Some(mut c) = self.capture.take() {
            // A capture engine: the period is what the device captured.
            self.adopt();
            c.read(&mut self.mix);
            self.capture = Some(c);
            // Relaxed: a status flag for source info replies.
            self.shared
                .running
                .store(!self.records.is_empty(), Ordering::Relaxed);
            self.deliver_mix();
            self.ring_bell();
            return;
        }
        self.render_mix();
        match self.dsp.take() {
            None => self.deliver_mix(),
            Some(mut dsp) => {
                dsp.unattached_period();
                self.deliver_fallback(&dsp);
                self.dsp = Some(dsp);
            }
        }
        self.ring_bell();
    }

    /// Delivers the DSP's fallback for `self.mix` (silence, or the mix
    /// itself under bypass).
    fn deliver_fallback(&mut self, dsp: &DspClock) {
        let mix = std::mem::take(&mut self.mix);
        self.deliver(dsp.fallback(&mix));
        self.mix = mix;
    }

    /// Mixes every stream's next period into `self.mix` (sink volume
    /// applied); the streams' read indexes advance.
    fn render_mix(&mut self) {
        self.adopt();
        // Relaxed: a flag read once per period.
        if self.shared.suspended.load(Ordering::Relaxed) {
            self.mix.fill(0.0);
            self.shared.running.store(false, Ordering::Relaxed);
            return;
        }
        self.mix.fill(-0.0);
        let mut audible = 0usize;
        let mut playing = false;
        for input in &mut self.inputs {
            let (produced, wake) = input.render();
            if wake && input.p.shared.notice.mark() {
                self.bell_due = true;
            }
            playing |= produced;
            let gains = &input.p.shared.gains;
            if input.tapped {
                let index = input.p.shared.index;
                let heard = produced && !gains.muted();
                self.bell_due |= tap::feed(
                    &mut self.records,
                    index,
                    &input.out,
                    self.channels,
                    heard,
                    gains,
                );
            }
            if !produced || gains.muted() {
                continue;
            }
            audible += 1;
            for (frame, out) in self
                .mix
                .chunks_exact_mut(self.channels)
                .zip(input.out.chunks_exact(self.channels))
            {
                for (c, (m, x)) in frame.iter_mut().zip(out).enumerate() {
                    *m += *x * gains.get(c);
                }
            }
        }
        if audible == 0 || self.shared.gains.muted() {
            self.mix.fill(0.0);
        } else {
            apply_gains(&mut self.mix, self.channels, &self.shared.gains);
        }
        // Relaxed: a status flag for sink info replies. A muted stream
        // still makes the sink RUNNING.
        self.shared.running.store(playing, Ordering::Relaxed);
    }

    /// Delivers `self.mix` as the sink's output.
    fn deliver_mix(&mut self) {
        let mix = std::mem::take(&mut self.mix);
        self.deliver(&mix);
        self.mix = mix;
    }

    /// Delivers one period of sink audio: quantized to the sink format, to
    /// the output backend, and (after the monitor volume) to every record
    /// stream.
    fn deliver(&mut self, period: &[f32]) {
        // Relaxed: a flag read once per period. Suspended: the output and
        // the monitor get nothing (the period still counts).
        if self.shared.suspended.load(Ordering::Relaxed) {
            if let Some(a) = &mut self.alsa {
                // The device keeps its clock: it plays silence.
                self.monitor.fill(0.0);
                a.write(&self.monitor);
            }
            self.shared.periods.fetch_add(1, Ordering::Relaxed);
            self.publish_page();
            return;
        }
        self.monitor.copy_from_slice(period);
        if !is_float(self.spec.format) {
            format::encode(self.spec.format, &self.monitor, &mut self.quantize);
            format::decode(self.spec.format, &self.quantize, &mut self.monitor);
        }
        if let Some(o) = &mut self.output {
            o.write(&self.monitor);
            // Relaxed: a figure for latency replies.
            self.shared
                .output_frames
                .store((o.queued() / self.channels) as u64, Ordering::Relaxed);
        }
        if let Some(a) = &mut self.alsa {
            a.write(&self.monitor);
            // Relaxed: a figure for latency replies.
            self.shared
                .output_frames
                .store(a.queued_frames() as u64, Ordering::Relaxed);
        }
        if self.shared.monitor_gains.muted() {
            self.monitor.fill(0.0);
        } else {
            apply_gains(&mut self.monitor, self.channels, &self.shared.monitor_gains);
        }
        let monitor_suspended = self.shared.monitor_suspended.load(Ordering::Relaxed);
        for r in &mut self.records {
            if r.tap.is_some() || monitor_suspended || r.shared.corked.load(Ordering::Relaxed) {
                continue;
            }
            let (_, rest) = r.ring.push_partial_slice(&self.monitor);
            if !rest.is_empty() {
                r.shared
                    .dropped_frames
                    .fetch_add((rest.len() / self.channels) as u64, Ordering::Relaxed);
            }
            if r.shared.notice.mark() {
                self.bell_due = true;
            }
        }
        self.shared.periods.fetch_add(1, Ordering::Relaxed);
        self.publish_page();
    }

    /// Publishes this period's figures on the state page, if there is one.
    fn publish_page(&mut self) {
        if let Some((page, dsp)) = &mut self.page {
            let sh = &self.shared;
            // Relaxed: flags and counters read once each for a report.
            let figures = SinkFigures {
                periods: sh.periods.load(Ordering::Relaxed),
                skipped: sh.skipped.load(Ordering::Relaxed),
                sink_state: sh.sink_state.load(Ordering::Relaxed),
                monitor_state: sh.monitor_state.load(Ordering::Relaxed),
                dsp_attached: self.dsp_active,
                output_frames: sh.output_frames.load(Ordering::Relaxed),
            };
            page.publish(figures, dsp);
        }
    }

    /// Rings the control loop's bell once if this period marked a client
    /// whose flag was clear (one eventfd write per period at most).
    fn ring_bell(&mut self) {
        if std::mem::take(&mut self.bell_due) {
            self.bell.ring();
        }
    }
}

fn is_float(format: SampleFormat) -> bool {
    format.is_float()
}

fn apply_gains(samples: &mut [f32], channels: usize, gains: &Gains) {
    let g: [f32; crate::engine::stream::MAX_CHANNELS] = std::array::from_fn(|c| gains.get(c));
    if g[..channels].iter().all(|&x| x == 1.0) {
        return;
    }
    for frame in samples.chunks_exact_mut(channels) {
        for (x, g) in frame.iter_mut().zip(&g) {
            *x *= *g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::notice::Notice;

    const PERIOD: usize = 480;

    fn sink(format: SampleFormat) -> SinkConfig {
        SinkConfig {
            spec: SampleSpec {
                format,
                channels: 2,
                rate: 48_000,
            },
            map: ChannelMap::new(&[1, 2]).unwrap(),
            period_frames: PERIOD,
            output: OutputSpec::Null,
        }
    }

    /// A mixer driven by hand (no timer), with one record stream on its
    /// monitor.
    fn mixer(config: &SinkConfig) -> (Mixer, mpsc::Sender<Msg>, rtrb::Consumer<f32>) {
        let shared = Arc::new(SinkShared {
            gains: Gains::unity(),
            monitor_gains: Gains::unity(),
            running: AtomicBool::new(false),
            periods: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            suspended: AtomicBool::new(false),
            monitor_suspended: AtomicBool::new(false),
            sink_state: AtomicU8::new(1),
            monitor_state: AtomicU8::new(1),
            output_frames: AtomicU64::new(0),
            buffers: Arc::default(),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let output = Output::open(&OutputSpec::Null, &config.spec).unwrap();
        let bell = Arc::new(Bell::new().unwrap());
        let m = Mixer::new(config, shared, rx, output, bell.clone());
        let rec = Arc::new(RecordShared::new(0, Arc::new(Notice::new(bell)), false));
        let (p, c) = rtrb::RingBuffer::new(48_000 * 2 * 30);
        tx.send(Msg::Record(Box::new(RecordOutput {
            shared: rec,
            ring: p,
            tap: None,
        })))
        .unwrap();
        (m, tx, c)
    }

    fn playback(
        config: &SinkConfig,
        spec: SampleSpec,
        positions: &[u8],
        prebuf: u32,
    ) -> (Arc<PlaybackShared>, rtrb::Producer<u8>, Msg) {
        let shared = Arc::new(PlaybackShared::new(
            1,
            Arc::new(Notice::new(Arc::new(Bell::new().unwrap()))),
            prebuf,
            false,
        ));
        let map = ChannelMap::new(positions).unwrap();
        let converter =
            PlaybackConverter::new(spec, &map, config.spec.rate, &config.map, PERIOD).unwrap();
        let (p, c) = rtrb::RingBuffer::new(4 << 20);
        let msg = Msg::Playback(Box::new(PlaybackInput {
            shared: shared.clone(),
            ring: c,
            converter,
        }));
        (shared, p, msg)
    }

    fn drain_all(c: &mut rtrb::Consumer<f32>) -> Vec<f32> {
        let n = c.slots();
        let mut v = vec![0.0; n];
        c.pop_entire_slice(&mut v).unwrap();
        v
    }

    #[test]
    fn one_float_stream_passes_through_bit_exactly() {
        let config = sink(SampleFormat::from_wire(5));
        let (mut m, tx, mut rec) = mixer(&config);
        let spec = config.spec;
        let (shared, mut ring, msg) = playback(&config, spec, &[1, 2], 0);
        tx.send(msg).unwrap();
        // Awkward values: signed zeros, subnormals, out-of-range.
        let mut input: Vec<f32> = (0..PERIOD * 2 * 3)
            .map(|i| ((i as f32) * 0.37).sin() * 1.5)
            .collect();
        input[0] = -0.0;
        input[1] = f32::from_bits(1);
        input[2] = -3.0;
        let bytes: Vec<u8> = input.iter().flat_map(|x| x.to_le_bytes()).collect();
        ring.push_entire_slice(&bytes).unwrap();
        for _ in 0..4 {
            m.period();
        }
        let out = drain_all(&mut rec);
        let start = out
            .chunks(PERIOD * 2)
            .position(|p| p.iter().any(|x| x.to_bits() != 0))
            .expect("audio reached the monitor")
            * PERIOD
            * 2;
        let got = &out[start..start + input.len()];
        for (i, (a, b)) in got.iter().zip(&input).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "sample {i}");
        }
        assert_eq!(shared.started.load(Ordering::Relaxed), 1);
        assert_eq!(
            shared.read_index.load(Ordering::Relaxed),
            bytes.len() as u64
        );
    }

    #[test]
    fn drain_takes_as_long_as_the_audio_at_any_rate() {
        for rate in [22_050u32, 44_100, 48_000, 96_000] {
            let config = sink(SampleFormat::from_wire(5));
            let (mut m, tx, mut rec) = mixer(&config);
            let spec = SampleSpec {
                format: SampleFormat::from_wire(3),
                channels: 1,
                rate,
            };
            let (shared, mut ring, msg) = playback(&config, spec, &[0], u32::MAX);
            tx.send(msg).unwrap();
            // One second of a full-scale-ish square wave.
            let bytes: Vec<u8> = (0..rate)
                .flat_map(|i| {
                    (if (i / 50) % 2 == 0 {
                        16_000i16
                    } else {
                        -16_000
                    })
                    .to_le_bytes()
                })
                .collect();
            ring.push_entire_slice(&bytes).unwrap();
            // Below prebuf: nothing plays until the drain.
            m.period();
            assert_eq!(shared.started.load(Ordering::Relaxed), 0, "{rate}");
            shared.drain_seq.store(1, Ordering::Relaxed);
            let mut periods = 0;
            while shared.drained_seq.load(Ordering::Relaxed) != 1 {
                m.period();
                periods += 1;
                assert!(periods < 1000, "drain never completed at {rate} Hz");
            }
            assert_eq!(
                shared.read_index.load(Ordering::Relaxed),
                bytes.len() as u64
            );
            let out = drain_all(&mut rec);
            let loud = out.iter().filter(|x| x.abs() > 0.2).count() / 2;
            // One second at 48 kHz, give or take the resampler's edges.
            assert!(
                (47_000..=49_000).contains(&loud),
                "{rate} Hz: {loud} loud frames after {periods} periods"
            );
            assert!(
                (100..=104).contains(&periods),
                "{rate} Hz: {periods} periods"
            );
        }
    }

    #[test]
    fn a_detached_record_stream_gets_nothing_more_and_says_so() {
        let config = sink(SampleFormat::from_wire(5));
        let (mut m, tx, mut rec) = mixer(&config);
        m.period();
        let shared = m.records[0].shared.clone();
        let before = rec.slots();
        assert!(before > 0, "the monitor feeds it");
        tx.send(Msg::DetachRecord(0)).unwrap();
        m.period();
        assert!(m.records.is_empty());
        assert_eq!(shared.detached.load(Ordering::Acquire), 1);
        assert!(rec.is_abandoned(), "the old ring's producer is gone");
        assert!(
            !shared.closed.load(Ordering::Relaxed),
            "the stream lives on"
        );
        let n = rec.slots();
        rec.read_chunk(n).unwrap().commit_all();
        m.period();
        assert_eq!(rec.slots(), 0, "nothing more written");
        // Detached while still on its way from another mixer: dropped as
        // it arrives.
        let late = Arc::new(RecordShared::new(7, shared.notice.clone(), false));
        let (p, late_ring) = rtrb::RingBuffer::new(1024);
        tx.send(Msg::DetachRecord(7)).unwrap();
        tx.send(Msg::Record(Box::new(RecordOutput {
            shared: late.clone(),
            ring: p,
            tap: None,
        })))
        .unwrap();
        m.period();
        assert!(m.records.is_empty() && late_ring.is_abandoned());
        assert_eq!(late.detached.load(Ordering::Acquire), 1);
    }

    #[test]
    fn starving_stream_underflows_once_then_restarts() {
        let config = sink(SampleFormat::from_wire(5));
        let (mut m, tx, _rec) = mixer(&config);
        let (shared, mut ring, msg) = playback(&config, config.spec, &[1, 2], 0);
        tx.send(msg).unwrap();
        let period_bytes = vec![0x3fu8; PERIOD * 8];
        ring.push_entire_slice(&period_bytes).unwrap();
        m.period();
        m.period();
        m.period();
        assert_eq!(shared.started.load(Ordering::Relaxed), 1);
        assert_eq!(shared.underflows.load(Ordering::Relaxed), 1);
        assert_eq!(
            shared.underflow_at.load(Ordering::Relaxed),
            period_bytes.len() as u64
        );
        ring.push_entire_slice(&period_bytes).unwrap();
        m.period();
        assert_eq!(shared.started.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn flush_cork_and_volume() {
        let config = sink(SampleFormat::from_wire(5));
        let (mut m, tx, mut rec) = mixer(&config);
        let (shared, mut ring, msg) = playback(&config, config.spec, &[1, 2], 0);
        tx.send(msg).unwrap();
        let half: Vec<u8> = (0..PERIOD * 2).flat_map(|_| 0.5f32.to_le_bytes()).collect();
        ring.push_entire_slice(&half).unwrap();
        shared.corked.store(true, Ordering::Relaxed);
        m.period();
        assert_eq!(shared.read_index.load(Ordering::Relaxed), 0, "corked");
        shared.corked.store(false, Ordering::Relaxed);
        shared.gains.set(&[0.5, 0.25]);
        drain_all(&mut rec);
        m.period();
        let out = drain_all(&mut rec);
        assert_eq!(&out[..2], &[0.25, 0.125]);
        // A flush drops what was written before it.
        ring.push_entire_slice(&half).unwrap();
        ring.push_entire_slice(&half).unwrap();
        shared
            .flush_to
            .store(half.len() as u64 * 3, Ordering::Relaxed);
        m.period();
        assert_eq!(
            shared.read_index.load(Ordering::Relaxed),
            half.len() as u64 * 3
        );
        assert!(drain_all(&mut rec).iter().all(|x| *x == 0.0));
    }

    #[test]
    fn a_tap_records_one_input_alone_after_its_volume() {
        let config = sink(SampleFormat::from_wire(5));
        let (mut m, tx, mut monitor) = mixer(&config);
        let (a, mut ring_a, msg) = playback(&config, config.spec, &[1, 2], 0);
        tx.send(msg).unwrap();
        let b = Arc::new(PlaybackShared::new(
            2,
            Arc::new(Notice::new(Arc::new(Bell::new().unwrap()))),
            0,
            false,
        ));
        let (mut ring_b, consumer) = rtrb::RingBuffer::new(1 << 20);
        tx.send(Msg::Playback(Box::new(PlaybackInput {
            shared: b,
            ring: consumer,
            converter: PlaybackConverter::new(
                config.spec,
                &config.map,
                48_000,
                &config.map,
                PERIOD,
            )
            .unwrap(),
        })))
        .unwrap();
        let rec = Arc::new(RecordShared::new(
            7,
            Arc::new(Notice::new(Arc::new(Bell::new().unwrap()))),
            false,
        ));
        let (p, mut tapped) = rtrb::RingBuffer::new(48_000 * 2);
        tx.send(Msg::Record(Box::new(RecordOutput {
            shared: rec,
            ring: p,
            tap: Some(1),
        })))
        .unwrap();
        let bytes = |x: f32| -> Vec<u8> { (0..PERIOD * 2).flat_map(|_| x.to_le_bytes()).collect() };
        ring_a.push_entire_slice(&bytes(0.25)).unwrap();
        ring_b.push_entire_slice(&bytes(0.5)).unwrap();
        m.period();
        assert_eq!(drain_all(&mut tapped), vec![0.25; PERIOD * 2], "A alone");
        assert_eq!(drain_all(&mut monitor), vec![0.75; PERIOD * 2], "the mix");
        // The input's own volume applies; the sink's does not.
        a.gains.set(&[0.5, 0.5]);
        m.shared.gains.set(&[0.5, 0.5]);
        ring_a.push_entire_slice(&bytes(0.25)).unwrap();
        m.period();
        assert_eq!(drain_all(&mut tapped), vec![0.125; PERIOD * 2]);
        // Starved: silence, so the recording keeps time.
        m.period();
        assert_eq!(drain_all(&mut tapped), vec![0.0; PERIOD * 2]);
    }

    #[test]
    fn integer_sink_quantizes_the_mix() {
        let config = sink(SampleFormat::from_wire(3));
        let (mut m, tx, mut rec) = mixer(&config);
        let spec = SampleSpec {
            format: SampleFormat::from_wire(5),
            channels: 2,
            rate: 48_000,
        };
        let (_shared, mut ring, msg) = playback(&config, spec, &[1, 2], 0);
        tx.send(msg).unwrap();
        let x = 0.123_456_79f32;
        let bytes: Vec<u8> = (0..PERIOD * 2).flat_map(|_| x.to_le_bytes()).collect();
        ring.push_entire_slice(&bytes).unwrap();
        m.period();
        let out = drain_all(&mut rec);
        let q = (f64::from(x) * 32768.0).round() / 32768.0;
        assert_eq!(f64::from(out[0]), q);
    }
}
