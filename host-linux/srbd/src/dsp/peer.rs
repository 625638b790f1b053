//! The DSP process's loop: [`run`].
//!
//! The DSP owns the period clock: a `CLOCK_MONOTONIC` timerfd that expires
//! once per period. Each tick it pulls one period from the host
//! (`Control::Pull { seq }`), and when the host's `Period(seq)` arrives it
//! runs the [`Chain`] over it (or copies it bit-exactly in bypass), meters
//! the result, and sends the processed `Period(seq)` back. The module docs
//! of [`crate::dsp`] describe the whole exchange.
//!
//! # Deadlines
//!
//! A period's deadline is the next tick. A deadline miss is counted when
//!
//! - the host's period has not arrived when the next tick fires (the period
//!   is then abandoned: if it arrives later it is dropped, not answered);
//! - the DSP itself slept through ticks (the timerfd reports more than one
//!   expiration): one miss per lost tick, whose sequence numbers are
//!   skipped;
//! - processing one period (copy in, process, meter, encode) took longer
//!   than a period.
//!
//! Misses are counted, reported in every `Stats`, and logged at debug
//! level; nothing is hidden or retried.
//!
//! # The host is input too
//!
//! A message that does not decode, a period of the wrong shape, or a
//! message only the DSP sends ends the loop with a named [`PeerError`] (the
//! process exits and `srbd`'s supervisor starts a new one). A period whose
//! sequence number is not the one pulled is stale: dropped and counted.
//! When the host goes away (socket hang-up, `PeerGone`), [`run`] returns
//! `Ok(())`: a DSP never outlives `srbd`.
//!
//! Nothing in the loop allocates after start-up except log lines for rare
//! events (a chain change, an invalid spec). That is checked, not assumed:
//! after [`WARMUP_PERIODS`] processed periods the loop arms
//! [`crate::rt::alloc_count`] (the `dsp-sim` binary installs its counting
//! allocator) and the "dsp-sim stopping" line reports `period_allocs`, the
//! allocations made since, over `armed_periods` periods.

use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::time::Timespec;
use srb_core::WaitDecision;
use srb_dsp_sim::link::{self as wire, Control, LinkError, Message, Period, Stats};
use srb_dsp_sim::{Chain, Meter, SpecError, MAX_CHANNELS};

use srb_linux::channel::{Channel, ChannelIoError};
use srb_linux::handshake::{LayoutKind, SignalKind};
use srb_linux::signal::{PeerWatch, HANGUP};

use super::link::{Rx, RxError};
use super::{check_format, period_ns};

/// Periods processed before the allocation count is armed (first-use
/// set-up, such as a log callsite's registration, is not the period path).
pub const WARMUP_PERIODS: u64 = 8;

/// What the DSP runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Sample rate in Hz.
    pub rate: u32,
    /// Interleaved channels (`1..=MAX_CHANNELS`).
    pub channels: u8,
    /// Frames per period ([`super::MIN_PERIOD_FRAMES`]..=[`super::MAX_PERIOD_FRAMES`]).
    pub period_frames: usize,
    /// The initial chain spec (`None`: an empty chain, which passes audio
    /// through).
    pub chain: Option<String>,
    /// Start in bit-exact bypass.
    pub bypass: bool,
}

/// Why the DSP loop ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The initial chain spec does not parse.
    #[error("invalid chain spec: {0}")]
    Chain(SpecError),
    /// Creating or reading the period timer failed.
    #[error("timerfd: {0}")]
    Timer(Errno),
    /// Polling failed.
    #[error("poll: {0}")]
    Poll(Errno),
    /// The channel failed (other than the host going away).
    #[error("channel: {0}")]
    Channel(ChannelIoError),
    /// The host sent bytes that are not a valid message.
    #[error("bad message from the host: {0}")]
    Link(LinkError),
    /// The host announced a message longer than any it may send.
    #[error("the host announced a {len}-byte message; at most {max} allowed")]
    Oversized {
        /// The announced length.
        len: usize,
        /// The longest accepted.
        max: usize,
    },
    /// The host sent a message only the DSP sends.
    #[error("the host sent a {what} message, which only the DSP sends")]
    Unexpected {
        /// The message kind.
        what: &'static str,
    },
    /// The host's period does not have the configured shape.
    #[error("host period of {frames} frames × {channels} channels; configured {expected_frames} × {expected_channels}")]
    BadPeriod {
        /// Frames in the period.
        frames: usize,
        /// Channels in the period.
        channels: usize,
        /// Configured frames.
        expected_frames: usize,
        /// Configured channels.
        expected_channels: usize,
    },
    /// The ring took part of a message after reporting room for all of it.
    #[error("the ring took {written} of {len} bytes after reporting room")]
    ShortWrite {
        /// Bytes written.
        written: usize,
        /// Bytes of the message.
        len: usize,
    },
}

impl From<RxError> for PeerError {
    fn from(e: RxError) -> Self {
        match e {
            RxError::Link(e) => PeerError::Link(e),
            RxError::Oversized { len, max } => PeerError::Oversized { len, max },
            RxError::Channel(e) => PeerError::Channel(e),
        }
    }
}

impl From<ChannelIoError> for PeerError {
    fn from(e: ChannelIoError) -> Self {
        PeerError::Channel(e)
    }
}

impl From<LinkError> for PeerError {
    fn from(e: LinkError) -> Self {
        PeerError::Link(e)
    }
}

/// Runs the DSP over `channel` (the attacher's end of an `srb`-layout
/// channel with eventfd signals) until the host goes away (`Ok(())`) or
/// sends something invalid (`Err`).
pub fn run(channel: Channel, cfg: PeerConfig) -> Result<(), PeerError> {
    let (mut rx, mut dsp) = Dsp::new(channel, &cfg)?;
    tracing::info!(
        rate = cfg.rate,
        channels = cfg.channels,
        period_frames = cfg.period_frames,
        chain = cfg.chain.as_deref().unwrap_or(""),
        bypass = cfg.bypass,
        "dsp-sim running"
    );
    let result = dsp.run(&mut rx);
    crate::rt::alloc_count::disarm();
    let period_allocs = dsp
        .allocs_at_arm
        .map_or(0, |at| crate::rt::alloc_count::count() - at);
    let c = &dsp.counts;
    tracing::info!(
        periods = c.periods,
        deadline_misses = c.misses,
        host_late = c.host_late,
        lost_ticks = c.lost_ticks,
        slow = c.slow,
        stale = c.stale,
        dropped = c.dropped,
        armed_periods = c
            .periods
            .saturating_sub(dsp.periods_at_arm.unwrap_or(c.periods)),
        period_allocs,
        "dsp-sim stopping"
    );
    match result {
        Err(PeerError::Channel(ChannelIoError::PeerGone)) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Counters since start (the `Stats` fields plus the reasons behind them).
#[derive(Debug, Default)]
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

/// The DSP's state (everything but the receive buffer, which a decoded
/// message borrows while the DSP handles it).
#[derive(Debug)]
struct Dsp {
    channel: Channel,
    watch: PeerWatch,
    timer: OwnedFd,
    rate: u32,
    channels: usize,
    frames: usize,
    period_ns: u64,
    chain: Chain,
    bypass: bool,
    meter: Meter,
    input: Vec<f32>,
    output: Vec<f32>,
    tx: Vec<u8>,
    next_seq: u32,
    /// The period pulled and not yet received.
    awaiting: Option<u32>,
    ticks_per_report: u64,
    ticks_since_report: u64,
    counts: Counts,
    /// The allocation count and periods processed when the count was
    /// armed (after warm-up).
    allocs_at_arm: Option<u64>,
    periods_at_arm: Option<u64>,
}

impl Dsp {
    fn new(channel: Channel, cfg: &PeerConfig) -> Result<(Rx, Dsp), PeerError> {
        check_format(cfg.rate, cfg.channels, cfg.period_frames).map_err(PeerError::Config)?;
        if channel.layout() != LayoutKind::Srb
            || channel.signal() != SignalKind::Eventfd
            || channel.wait_fd().is_none()
        {
            return Err(PeerError::Config(format!(
                "the DSP needs an srb-layout channel with eventfd signals, got {:?}/{:?}",
                channel.layout(),
                channel.signal()
            )));
        }
        let channels = usize::from(cfg.channels);
        let frames = cfg.period_frames;
        let chain = Chain::parse(
            cfg.chain.as_deref().unwrap_or(""),
            cfg.rate as f32,
            channels,
        )
        .map_err(PeerError::Chain)?;
        let meter = Meter::new(channels).map_err(|e| PeerError::Config(e.to_string()))?;
        let period_ns = period_ns(cfg.rate, frames);
        let timer = timer(period_ns).map_err(PeerError::Timer)?;
        let period_len = wire::period_len(frames, channels);
        let mut channel = channel;
        let watch = channel.stream().watch();
        let dsp = Dsp {
            channel,
            watch,
            timer,
            rate: cfg.rate,
            channels,
            frames,
            period_ns,
            chain,
            bypass: cfg.bypass,
            meter,
            input: vec![0.0; frames * channels],
            output: vec![0.0; frames * channels],
            tx: vec![0; period_len.max(wire::STATS_LEN).max(wire::MAX_CONTROL_LEN)],
            next_seq: 0,
            awaiting: None,
            ticks_per_report: (cfg.rate as u64).div_ceil(frames as u64).max(1),
            ticks_since_report: 0,
            counts: Counts::default(),
            allocs_at_arm: None,
            periods_at_arm: None,
        };
        Ok((Rx::new(period_len.max(wire::MAX_CONTROL_LEN)), dsp))
    }

    fn run(&mut self, rx: &mut Rx) -> Result<(), PeerError> {
        loop {
            if self.allocs_at_arm.is_none() && self.counts.periods >= WARMUP_PERIODS {
                self.allocs_at_arm = Some(crate::rt::alloc_count::count());
                self.periods_at_arm = Some(self.counts.periods);
                crate::rt::alloc_count::arm();
            }
            // Messages first: a period that arrived before (or with) the
            // tick is in time.
            while let Some(msg) = rx.next(&mut self.channel)? {
                self.handle(msg)?;
            }
            let expirations = self.read_timer()?;
            if expirations > 0 {
                self.tick(expirations)?;
                continue;
            }
            if self.sleep(rx)? {
                return Ok(());
            }
        }
    }

    /// Sleeps until a tick, a post from the host or a hang-up; returns
    /// whether the host is gone.
    fn sleep(&mut self, rx: &Rx) -> Result<bool, PeerError> {
        let may_sleep = !rx.has_message()
            && match self.channel.before_wait() {
                Ok(d) => d == WaitDecision::OkToSleep,
                Err(ChannelIoError::PeerGone) => return Ok(true),
                Err(e) => return Err(e.into()),
            };
        let gone = {
            let Some(wait_fd) = self.channel.wait_fd() else {
                return Err(PeerError::Config("channel has no wait fd".into()));
            };
            let mut fds = [
                PollFd::new(&self.timer, PollFlags::IN),
                PollFd::from_borrowed_fd(wait_fd, PollFlags::IN),
                PollFd::from_borrowed_fd(self.watch.fd(), PollFlags::RDHUP),
            ];
            let zero = Timespec::default();
            match rustix::event::poll(&mut fds, if may_sleep { None } else { Some(&zero) }) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(PeerError::Poll(e)),
            }
            fds[2].revents().intersects(HANGUP)
        };
        if may_sleep {
            match self.channel.after_wait() {
                Ok(()) => {}
                Err(ChannelIoError::PeerGone) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(gone)
    }

    /// Timer expirations since the last read (0 if none; never blocks).
    fn read_timer(&self) -> Result<u64, PeerError> {
        let mut buf = [0u8; 8];
        loop {
            match rustix::io::read(&self.timer, &mut buf) {
                Ok(8) => return Ok(u64::from_ne_bytes(buf)),
                Ok(_) => return Err(PeerError::Timer(Errno::IO)),
                Err(Errno::AGAIN) => return Ok(0),
                Err(Errno::INTR) => {}
                Err(e) => return Err(PeerError::Timer(e)),
            }
        }
    }

    /// One tick (or several, if the DSP was not scheduled in time).
    fn tick(&mut self, expirations: u64) -> Result<(), PeerError> {
        if let Some(seq) = self.awaiting.take() {
            self.counts.misses += 1;
            self.counts.host_late += 1;
            tracing::debug!(
                seq,
                "deadline miss: the host's period did not arrive in time"
            );
        }
        let lost = expirations - 1;
        if lost > 0 {
            self.counts.misses += lost;
            self.counts.lost_ticks += lost;
            tracing::debug!(lost, "deadline miss: the DSP slept through ticks");
        }
        let seq = self.next_seq.wrapping_add(lost as u32);
        self.next_seq = seq.wrapping_add(1);
        let len = Control::Pull { seq }.encode(&mut self.tx)?;
        self.send(len)?;
        // Awaited even if the pull did not fit: the host then misses it.
        self.awaiting = Some(seq);
        self.ticks_since_report += expirations;
        if self.ticks_since_report >= self.ticks_per_report {
            self.ticks_since_report = 0;
            self.send_stats()?;
        }
        Ok(())
    }

    fn handle(&mut self, msg: Message<'_>) -> Result<(), PeerError> {
        match msg {
            Message::Period(p) => self.process(&p),
            Message::Control(Control::SetChain(spec)) => {
                match Chain::parse(spec, self.rate as f32, self.channels) {
                    Ok(chain) => {
                        self.chain = chain;
                        tracing::info!(spec, "chain set");
                    }
                    Err(e) => tracing::warn!(spec, error = %e, "invalid chain spec ignored"),
                }
                Ok(())
            }
            Message::Control(Control::Bypass(on)) => {
                if self.bypass && !on {
                    // Leaving bypass: no filter state from before it.
                    self.chain.reset();
                }
                if self.bypass != on {
                    tracing::info!(bypass = on, "bypass changed");
                }
                self.bypass = on;
                Ok(())
            }
            Message::Control(Control::QueryStats) => self.send_stats(),
            Message::Control(Control::Pull { .. }) => Err(PeerError::Unexpected { what: "Pull" }),
            Message::Stats(_) => Err(PeerError::Unexpected { what: "Stats" }),
        }
    }

    /// Processes the host's period and sends it back, if it is the one
    /// pulled.
    fn process(&mut self, p: &Period<'_>) -> Result<(), PeerError> {
        if usize::from(p.channels) != self.channels || usize::from(p.frames) != self.frames {
            return Err(PeerError::BadPeriod {
                frames: p.frames.into(),
                channels: p.channels.into(),
                expected_frames: self.frames,
                expected_channels: self.channels,
            });
        }
        if self.awaiting != Some(p.seq) {
            // Too late (its tick passed) or never pulled.
            self.counts.stale += 1;
            tracing::debug!(seq = p.seq, awaiting = ?self.awaiting, "stale period dropped");
            return Ok(());
        }
        self.awaiting = None;
        let start = Instant::now();
        p.copy_samples_to(&mut self.input)?;
        if self.bypass {
            srb_dsp_sim::bypass(&self.input, &mut self.output);
        } else {
            self.output.copy_from_slice(&self.input);
            self.chain.process(&mut self.output);
        }
        self.meter.process(&self.output);
        let len = wire::encode_period(p.seq, self.channels, &self.output, &mut self.tx)?;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let c = &mut self.counts;
        c.periods += 1;
        c.sum_ns = c.sum_ns.saturating_add(ns);
        c.worst_ns = c.worst_ns.max(ns);
        if ns > self.period_ns {
            c.misses += 1;
            c.slow += 1;
            tracing::debug!(
                seq = p.seq,
                ns,
                "deadline miss: processing took longer than a period"
            );
        }
        self.send(len)?;
        Ok(())
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

    /// Sends the statistics and starts a new peak interval.
    fn send_stats(&mut self) -> Result<(), PeerError> {
        let len = self.stats().encode(&mut self.tx)?;
        self.send(len)?;
        self.meter.reset();
        Ok(())
    }

    /// Writes `self.tx[..len]` whole, or drops it (counted) when the host
    /// does not make room.
    fn send(&mut self, len: usize) -> Result<bool, PeerError> {
        if self.channel.free()? < len {
            self.counts.dropped += 1;
            if self.counts.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.counts.dropped,
                    "the host does not read; message dropped"
                );
            }
            return Ok(false);
        }
        let written = self.channel.write(&self.tx[..len])?;
        if written != len {
            return Err(PeerError::ShortWrite { written, len });
        }
        Ok(true)
    }
}

/// A non-blocking, close-on-exec monotonic timerfd expiring every
/// `period_ns`.
fn timer(period_ns: u64) -> Result<OwnedFd, Errno> {
    srb_linux::timer::periodic(period_ns, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::link::{DspError, DspEvent, DspLink};
    use srb_linux::handshake::{self, ChannelConfig};
    use srb_linux::scm::ScmStream;
    use std::thread::JoinHandle;
    use std::time::Duration;

    const RATE: u32 = 48_000;

    fn cfg(frames: usize, chain: Option<&str>, bypass: bool) -> PeerConfig {
        PeerConfig {
            rate: RATE,
            channels: 2,
            period_frames: frames,
            chain: chain.map(String::from),
            bypass,
        }
    }

    /// Host channel + the peer running on a thread.
    fn start_raw(cfg: PeerConfig) -> (Channel, JoinHandle<Result<(), PeerError>>) {
        let (a, b) = ScmStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let ch = handshake::accept(b, Some(Duration::from_secs(10))).unwrap();
            run(ch, cfg)
        });
        let host = handshake::create(
            a,
            ChannelConfig {
                layout: LayoutKind::Srb,
                signal: SignalKind::Eventfd,
                capacity: 1 << 16,
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        (host, peer)
    }

    fn start(cfg: PeerConfig) -> (DspLink, JoinHandle<Result<(), PeerError>>) {
        let (ch, frames) = (cfg.channels, cfg.period_frames);
        let (host, peer) = start_raw(cfg);
        (DspLink::new(host, ch, frames).unwrap(), peer)
    }

    /// The next event, waiting at most 10 s (bounded, not a timing
    /// assertion).
    fn next(link: &mut DspLink, buf: &mut [f32]) -> Result<DspEvent, DspError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(ev) = link.recv(buf)? {
                return Ok(ev);
            }
            assert!(
                Instant::now() < deadline,
                "no event from the DSP within 10 s"
            );
            if !link.before_poll()? {
                let mut fds = [PollFd::from_borrowed_fd(link.poll_fd(), PollFlags::IN)];
                let t = Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                };
                let _ = rustix::event::poll(&mut fds, Some(&t));
                link.after_poll()?;
            }
        }
    }

    /// Period `seq`'s input: deterministic, with odd bit patterns.
    fn input(seq: u32, n: usize) -> Vec<f32> {
        let mut rng = srb_linux::echo::SplitMix64::new(u64::from(seq));
        (0..n)
            .map(|i| match i % 16 {
                0 => f32::from_bits(0x7fc0_1234), // a NaN with a payload
                1 => -0.0,
                2 => f32::from_bits(1), // subnormal
                _ => (rng.next_u64() as i32) as f32 / i32::MAX as f32,
            })
            .collect()
    }

    /// Answers `count` pulls; returns (seq, output) of every processed
    /// period and the stats seen.
    fn drive(
        link: &mut DspLink,
        count: usize,
        mut before: impl FnMut(&mut DspLink, u32),
        mk: impl Fn(u32) -> Vec<f32>,
    ) -> (Vec<(u32, Vec<f32>)>, Vec<Stats>) {
        let n = link.period_frames() * usize::from(link.channels());
        let mut buf = vec![0.0; n];
        let (mut out, mut stats, mut pulls) = (Vec::new(), Vec::new(), 0);
        loop {
            match next(link, &mut buf).unwrap() {
                DspEvent::Pull { seq } => {
                    if pulls == count {
                        return (out, stats);
                    }
                    pulls += 1;
                    before(link, seq);
                    assert!(link.send_period(seq, &mk(seq), link.channels()).unwrap());
                }
                DspEvent::Processed { seq, frames } => {
                    assert_eq!(frames, link.period_frames());
                    out.push((seq, buf.clone()));
                }
                DspEvent::Stats(s) => stats.push(s),
            }
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn bypass_is_bit_exact_and_the_host_leaving_ends_the_peer() {
        let (mut link, peer) = start(cfg(256, Some("gain:-6dB"), true));
        let (out, _) = drive(&mut link, 20, |_, _| {}, |s| input(s, 512));
        // (A period the host answered late is abandoned, not answered: only
        // what came back is checked, and something must come back.)
        assert!(!out.is_empty());
        for (seq, o) in &out {
            assert_eq!(bits(o), bits(&input(*seq, 512)), "period {seq}");
        }
        drop(link);
        assert!(peer.join().unwrap().is_ok(), "host gone: clean exit");
    }

    #[test]
    fn the_chain_matches_offline_processing() {
        let spec = "gain:-6dB,lowpass:8kHz,peak:1kHz:q2:+3dB";
        let (mut link, peer) = start(cfg(256, Some(spec), false));
        let (out, _) = drive(&mut link, 20, |_, _| {}, |s| input(s, 512));
        // The offline chain runs exactly the periods the DSP processed, in
        // order (a period the DSP abandoned never reached its chain).
        let mut chain = Chain::parse(spec, RATE as f32, 2).unwrap();
        assert!(!out.is_empty());
        for (seq, o) in &out {
            let mut want = input(*seq, 512);
            chain.process(&mut want);
            assert_eq!(bits(o), bits(&want), "period {seq}");
        }
        drop(link);
        peer.join().unwrap().unwrap();
    }

    #[test]
    fn controls_take_effect_in_order_and_a_bad_spec_is_ignored() {
        let (mut link, peer) = start(cfg(256, Some("gain:-6.0206dB"), false));
        let x = vec![0.5f32; 512];
        // What each period should come back as, given the controls sent
        // before it (a control applies even if its period is dropped).
        let mut want = std::collections::HashMap::new();
        let (mut gain_out, mut bypass, mut step) = (0.25f32, false, 0);
        let (out, _) = drive(
            &mut link,
            8,
            |link, seq| {
                step += 1;
                let c = match step {
                    2 => Control::SetChain("nonsense:12"), // ignored
                    3 => Control::Bypass(true),
                    4 => Control::Bypass(false),
                    5 => Control::SetChain("gain:+6.0206dB"),
                    6 => Control::SetChain("lowpass"), // ignored: no frequency
                    _ => Control::QueryStats,
                };
                match c {
                    Control::Bypass(on) => bypass = on,
                    Control::SetChain("gain:+6.0206dB") => gain_out = 1.0,
                    _ => {}
                }
                assert!(link.send_control(&c).unwrap());
                want.insert(seq, if bypass { 0.5 } else { gain_out });
            },
            |_| x.clone(),
        );
        assert!(!out.is_empty());
        for (seq, o) in out {
            let want = want[&seq];
            assert!(
                o.iter().all(|&s| (s - want).abs() < 1e-6),
                "period {seq}: {} != {want}",
                o[0]
            );
        }
        drop(link);
        peer.join().unwrap().unwrap();
    }

    #[test]
    fn stats_come_on_request_and_once_a_second() {
        // 1024 frames: a report every 47 ticks (about 1 s).
        let (mut link, peer) = start(cfg(1024, None, false));
        let x = vec![0.5f32; 2048];
        let (out, stats) = drive(&mut link, 50, |_, _| {}, |_| x.clone());
        assert!(!stats.is_empty(), "an unsolicited report within 50 ticks");
        assert!(link.send_control(&Control::QueryStats).unwrap());
        let mut buf = vec![0.0; 2048];
        let s = loop {
            if let DspEvent::Stats(s) = next(&mut link, &mut buf).unwrap() {
                break s;
            }
        };
        assert_eq!(s.periods, out.len() as u64);
        assert_eq!(s.channels, 2);
        assert!(s.worst_ns >= s.mean_ns);
        assert!(s.mean_ns > 0);
        drop(link);
        peer.join().unwrap().unwrap();
    }

    #[test]
    fn a_hostile_host_gets_a_named_error() {
        let (mut host, peer) = start_raw(cfg(64, None, true));
        host.write_all(b"definitely not a message", None).unwrap();
        assert!(matches!(
            peer.join().unwrap(),
            Err(PeerError::Link(LinkError::BadMagic { .. }))
        ));

        let (mut host, peer) = start_raw(cfg(64, None, true));
        let mut b = [0u8; 16];
        let n = Control::Pull { seq: 1 }.encode(&mut b).unwrap();
        host.write_all(&b[..n], None).unwrap();
        assert!(matches!(
            peer.join().unwrap(),
            Err(PeerError::Unexpected { what: "Pull" })
        ));

        let (mut host, peer) = start_raw(cfg(64, None, true));
        let mut b = vec![0u8; wire::period_len(65, 2)];
        wire::encode_period(0, 2, &[0.0; 130], &mut b).unwrap();
        host.write_all(&b[..wire::HEADER_LEN], None).unwrap();
        assert!(matches!(
            peer.join().unwrap(),
            Err(PeerError::Oversized { .. })
        ));

        let (mut host, peer) = start_raw(cfg(64, None, true));
        let mut b = vec![0u8; wire::period_len(64, 1)];
        wire::encode_period(0, 1, &[0.0; 64], &mut b).unwrap();
        host.write_all(&b, None).unwrap();
        assert!(matches!(
            peer.join().unwrap(),
            Err(PeerError::BadPeriod { channels: 1, .. })
        ));
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let (host, peer) = start_raw(cfg(64, Some("lowpass"), false));
        assert!(matches!(peer.join().unwrap(), Err(PeerError::Chain(_))));
        drop(host);
        let (host, peer) = start_raw(cfg(32, None, false));
        assert!(matches!(peer.join().unwrap(), Err(PeerError::Config(_))));
        drop(host);
    }
}
