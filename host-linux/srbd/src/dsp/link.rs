//! [`DspLink`]: `srbd`'s end of one connected DSP.
//!
//! The link owns the host (creator) end of an `srb`-layout
//! [`Channel`] with eventfd signals and speaks [`srb_dsp_sim::link`]'s
//! messages over it. It is used by the real-time mixer thread, so every
//! buffer is allocated in [`DspLink::new`] and nothing per period blocks or
//! allocates: sends check the free space first and either write a whole
//! message or nothing; receives copy what the ring holds into a private
//! reassembly buffer and decode from there.
//!
//! Everything the DSP sends is hostile input. A message that does not
//! decode, is larger than anything the DSP may send, carries the wrong
//! format, a sequence number that was never asked for or a command only the
//! host may send is a named [`DspError`] — never a panic. The caller treats
//! any error as a dead DSP: it drops the link and asks the supervisor for a
//! new one ([`DspLink::request_restart`]).
//!
//! # Poll loop
//!
//! ```text
//! loop {
//!     while let Some(ev) = link.recv(&mut buf)? { ... }    // drain first
//!     if !link.before_poll()? {                             // announce the sleep
//!         poll([link.poll_fd(): POLLIN, link.peer_fd(): POLLRDHUP], timeout);
//!         link.after_poll()?;
//!     }
//!     // POLLRDHUP/POLLHUP on peer_fd: the DSP is gone.
//! }
//! ```
//!
//! The DSP only rings the eventfd when the host announced a sleep
//! ([`DspLink::before_poll`]), as srb-core's channel protocol says; a poll
//! without the announcement can miss the wake-up.
//!
//! # Polled links (the board peer)
//!
//! A link made by [`DspLink::new_polled`] (the emulated Cortex-M4F board,
//! [`super::board`]) has no doorbell: the firmware cannot write an eventfd.
//! Its [`poll_fd`](DspLink::poll_fd) only becomes readable when the peer
//! dies, [`before_poll`](DspLink::before_poll) says "ready" when the ring
//! holds bytes, and [`poll_interval`](DspLink::poll_interval) is `Some`:
//! the caller bounds each poll by it, so it looks at the ring again a
//! fraction of a period later (the same loop as above, with a timeout).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use rustix::io::Errno;
use srb_core::WaitDecision;
use srb_dsp_sim::link::{
    self as wire, Control, LinkError, Message, Stats, MAX_CONTROL_LEN, STATS_LEN,
};
use srb_dsp_sim::MAX_CHANNELS;

use srb_linux::channel::{Channel, ChannelIoError};
use srb_linux::handshake::{HandshakeError, LayoutKind, SignalKind};
use srb_linux::signal::PeerWatch;

use super::restart::RestartHandle;

/// Why a DSP link (or starting a DSP) failed. Every error on a live link
/// means: treat the DSP as dead and restart it.
#[derive(Debug, thiserror::Error)]
pub enum DspError {
    /// The DSP sent bytes that are not a valid message.
    #[error("bad message from the DSP: {0}")]
    Link(LinkError),
    /// The channel failed (shared memory held an impossible value, a
    /// signal failed).
    #[error("channel: {0}")]
    Channel(ChannelIoError),
    /// The DSP closed its end or exited.
    #[error("the DSP is gone")]
    PeerGone,
    /// A message header announced more bytes than any message the DSP may
    /// send on this link.
    #[error("the DSP announced a {len}-byte message; at most {max} allowed")]
    Oversized {
        /// The announced length, header included.
        len: usize,
        /// The longest message this link takes.
        max: usize,
    },
    /// A period (from the DSP, or given to [`DspLink::send_period`]) does
    /// not have the link's format.
    #[error("period of {frames} frames × {channels} channels; the link carries {expected_frames} × {expected_channels}")]
    BadPeriod {
        /// Frames in the period.
        frames: usize,
        /// Channels in the period.
        channels: usize,
        /// The link's period length.
        expected_frames: usize,
        /// The link's channel count.
        expected_channels: usize,
    },
    /// A processed period answers no period the host has outstanding.
    #[error("processed period {got} answers no outstanding period (outstanding: {expected:?})")]
    WrongSeq {
        /// The period the host is waiting for, if any.
        expected: Option<u32>,
        /// The sequence number that arrived.
        got: u32,
    },
    /// A pull did not move the sequence forward.
    #[error("pull for period {got} after pull {last}")]
    PullOutOfOrder {
        /// The previous pull's sequence number.
        last: u32,
        /// The new one.
        got: u32,
    },
    /// The DSP sent a message only the host may send.
    #[error("the DSP sent a {what} message, which only the host sends")]
    Unexpected {
        /// The message kind.
        what: &'static str,
    },
    /// The caller's buffer is too small for a processed period.
    #[error("processed period has {needed} samples; the buffer holds {available}")]
    BufferTooSmall {
        /// Samples in the period.
        needed: usize,
        /// Samples the buffer holds.
        available: usize,
    },
    /// The ring took only part of a message although it said it had room:
    /// the DSP moved a ring position it does not own.
    #[error("the ring took {written} of {len} bytes after reporting room")]
    ShortWrite {
        /// Bytes written.
        written: usize,
        /// Bytes of the message.
        len: usize,
    },
    /// The channel is not what a DSP link needs.
    #[error(
        "a DSP link needs an srb-layout channel with eventfd signals, got {layout:?}/{signal:?}"
    )]
    WrongChannel {
        /// The channel's layout.
        layout: LayoutKind,
        /// The channel's signal kind.
        signal: SignalKind,
    },
    /// The configuration is invalid.
    #[error("invalid DSP configuration: {0}")]
    Config(String),
    /// The configured chain spec does not parse.
    #[error("invalid chain spec: {0}")]
    Chain(srb_dsp_sim::SpecError),
    /// The DSP program could not be started.
    #[error("spawning {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The receiver of new links (the mixer) is gone.
    #[error("the receiver of DSP links is gone")]
    ReceiverGone,
    /// The supervisor thread could not be started.
    #[error("starting the supervisor thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The handshake with a new DSP failed.
    #[error("handshake with the DSP: {0}")]
    Handshake(HandshakeError),
    /// A system call failed.
    #[error("system call failed: {0}")]
    Sys(Errno),
}

impl From<LinkError> for DspError {
    fn from(e: LinkError) -> Self {
        DspError::Link(e)
    }
}

impl From<ChannelIoError> for DspError {
    fn from(e: ChannelIoError) -> Self {
        match e {
            ChannelIoError::PeerGone => DspError::PeerGone,
            e => DspError::Channel(e),
        }
    }
}

impl From<HandshakeError> for DspError {
    fn from(e: HandshakeError) -> Self {
        DspError::Handshake(e)
    }
}

/// What the DSP sent (see [`DspLink::recv`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DspEvent {
    /// The DSP's clock ticked: render period `seq` and
    /// [`send_period`](DspLink::send_period) it. A pull while a period is
    /// outstanding means the DSP gave up on that one (it came too late).
    Pull {
        /// The sequence number to answer with.
        seq: u32,
    },
    /// The processed period `seq` is in the caller's buffer
    /// (`frames * channels` samples at its front).
    Processed {
        /// The period's sequence number.
        seq: u32,
        /// Its frames.
        frames: usize,
    },
    /// The DSP's statistics.
    Stats(Stats),
}

/// What carries a link's bytes.
#[derive(Debug)]
enum Transport {
    /// `dsp-sim`: an `srb` channel with eventfd signals.
    Eventfd(Channel),
    /// The board peer: the ring ends over its memory file, polled.
    Polled(super::board::BoardRings),
}

impl ReadBytes for Transport {
    fn read_bytes(&mut self, dst: &mut [u8]) -> Result<usize, ChannelIoError> {
        match self {
            Transport::Eventfd(ch) => ch.read(dst),
            Transport::Polled(r) => r.read(dst),
        }
    }
}

impl Transport {
    fn free(&mut self) -> Result<usize, ChannelIoError> {
        match self {
            Transport::Eventfd(ch) => ch.free(),
            Transport::Polled(r) => r.free(),
        }
    }

    fn write(&mut self, src: &[u8]) -> Result<usize, ChannelIoError> {
        match self {
            Transport::Eventfd(ch) => ch.write(src),
            Transport::Polled(r) => r.write(src),
        }
    }
}

/// A byte source [`Rx`] reassembles messages from.
pub(crate) trait ReadBytes {
    /// Reads what is there, up to `dst.len()`; returns how much (maybe 0).
    fn read_bytes(&mut self, dst: &mut [u8]) -> Result<usize, ChannelIoError>;
}

impl ReadBytes for Channel {
    fn read_bytes(&mut self, dst: &mut [u8]) -> Result<usize, ChannelIoError> {
        self.read(dst)
    }
}

/// `srbd`'s end of one connected DSP (see the module docs).
#[derive(Debug)]
pub struct DspLink {
    channel: Transport,
    watch: PeerWatch,
    channels: u8,
    period_frames: usize,
    /// Reassembly of what the DSP sends.
    rx: Rx,
    /// Encoding buffer for one outgoing message.
    tx: Vec<u8>,
    /// The period sent and not yet answered.
    outstanding: Option<u32>,
    /// The last pull's sequence number.
    last_pull: Option<u32>,
    generation: u64,
    pid: Option<u32>,
    restart: Option<RestartHandle>,
    /// `Some` for a polled link: look at the ring again after this long.
    poll_interval: Option<std::time::Duration>,
}

impl DspLink {
    /// A link over `channel` (the creator's end of an `srb`-layout channel
    /// with eventfd signals) for periods of `period_frames` frames of
    /// `channels` channels. Allocates every buffer the link will use.
    pub fn new(channel: Channel, channels: u8, period_frames: usize) -> Result<DspLink, DspError> {
        if channel.layout() != LayoutKind::Srb
            || channel.signal() != SignalKind::Eventfd
            || channel.wait_fd().is_none()
        {
            return Err(DspError::WrongChannel {
                layout: channel.layout(),
                signal: channel.signal(),
            });
        }
        let mut channel = channel;
        let watch = channel.stream().watch();
        Self::build(
            Transport::Eventfd(channel),
            watch,
            channels,
            period_frames,
            None,
        )
    }

    /// A polled link over the board peer's ring ends (`rings`, the
    /// creator's side), whose death `watch` reports; the caller looks at
    /// the ring every `poll_interval` (see the module docs).
    pub(crate) fn new_polled(
        rings: super::board::BoardRings,
        watch: PeerWatch,
        channels: u8,
        period_frames: usize,
        poll_interval: std::time::Duration,
    ) -> Result<DspLink, DspError> {
        Self::build(
            Transport::Polled(rings),
            watch,
            channels,
            period_frames,
            Some(poll_interval),
        )
    }

    fn build(
        channel: Transport,
        watch: PeerWatch,
        channels: u8,
        period_frames: usize,
        poll_interval: Option<std::time::Duration>,
    ) -> Result<DspLink, DspError> {
        if channels == 0
            || usize::from(channels) > MAX_CHANNELS
            || period_frames == 0
            || period_frames > usize::from(u16::MAX)
        {
            return Err(DspError::Config(format!(
                "{period_frames} frames × {channels} channels cannot be carried"
            )));
        }
        let period_len = wire::period_len(period_frames, usize::from(channels));
        let max_in = period_len.max(STATS_LEN);
        let max_out = period_len.max(MAX_CONTROL_LEN);
        Ok(DspLink {
            channel,
            watch,
            channels,
            period_frames,
            rx: Rx::new(max_in),
            tx: vec![0; max_out],
            outstanding: None,
            last_pull: None,
            generation: 0,
            pid: None,
            restart: None,
            poll_interval,
        })
    }

    /// Marks the link as the supervisor's DSP number `generation` (process
    /// `pid`), so [`request_restart`](Self::request_restart) reaches it.
    pub(crate) fn with_supervisor(
        mut self,
        restart: RestartHandle,
        generation: u64,
        pid: u32,
    ) -> Self {
        self.restart = Some(restart);
        self.generation = generation;
        self.pid = Some(pid);
        self
    }

    /// Readable (`POLLIN`) when the DSP posted: data or space. A polled
    /// link has no doorbell: its fd is the peer socket, readable only once
    /// the peer is gone (bound the poll by
    /// [`poll_interval`](Self::poll_interval)).
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        // `new` checked that the channel has a wait fd; the socket is the
        // (never readable) fallback so this cannot panic.
        match &self.channel {
            Transport::Eventfd(ch) => ch.wait_fd().unwrap_or_else(|| self.watch.fd()),
            Transport::Polled(_) => self.watch.fd(),
        }
    }

    /// `Some(d)` for a polled link (the board peer): no wake-up comes, so
    /// each poll must end after at most `d` to look at the ring again.
    /// `None` for an eventfd link.
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        self.poll_interval
    }

    /// The connection socket: poll it for `POLLRDHUP` — it reports a hang-up
    /// (`POLLRDHUP`/`POLLHUP`) as soon as the DSP process is gone.
    pub fn peer_fd(&self) -> BorrowedFd<'_> {
        self.watch.fd()
    }

    /// Whether the DSP has hung up (one non-blocking `poll`).
    pub fn is_gone(&self) -> Result<bool, DspError> {
        self.watch.is_gone().map_err(DspError::Sys)
    }

    /// Announces a sleep before polling [`poll_fd`](Self::poll_fd).
    /// `Ok(true)`: a message (or a post) is already there — do not sleep,
    /// call [`recv`](Self::recv). `Ok(false)`: poll, then call
    /// [`after_poll`](Self::after_poll).
    pub fn before_poll(&mut self) -> Result<bool, DspError> {
        if self.rx.has_message() {
            return Ok(true);
        }
        match &mut self.channel {
            Transport::Eventfd(ch) => Ok(ch.before_wait()? == WaitDecision::DontSleep),
            // Bytes in the ring: read them. (recv takes all of them, so an
            // incomplete message waits in `rx`, not here: no busy loop.)
            Transport::Polled(r) => Ok(r.available()? > 0),
        }
    }

    /// Ends a sleep [`before_poll`](Self::before_poll) allowed (whether or
    /// not the poll reported the fd readable).
    pub fn after_poll(&mut self) -> Result<(), DspError> {
        if let Transport::Eventfd(ch) = &mut self.channel {
            ch.after_wait()?;
        }
        Ok(())
    }

    /// Decodes the next complete message, or `Ok(None)` if none is complete
    /// yet. The samples of a processed period are copied to the front of
    /// `processed`. Call it until `None` before polling again.
    pub fn recv(&mut self, processed: &mut [f32]) -> Result<Option<DspEvent>, DspError> {
        let Some(msg) = self.rx.next(&mut self.channel)? else {
            return Ok(None);
        };
        let mut seqs = Seqs {
            outstanding: &mut self.outstanding,
            last_pull: &mut self.last_pull,
        };
        interpret(msg, &mut seqs, self.channels, self.period_frames, processed).map(Some)
    }

    /// Sends period `seq` (interleaved `samples`, `channels` channels,
    /// exactly the link's period length). `Ok(false)`: the ring has no room
    /// for the whole message and nothing was written.
    pub fn send_period(
        &mut self,
        seq: u32,
        samples: &[f32],
        channels: u8,
    ) -> Result<bool, DspError> {
        let expected = self.period_frames * usize::from(self.channels);
        if channels != self.channels || samples.len() != expected {
            return Err(DspError::BadPeriod {
                frames: samples.len() / usize::from(channels.max(1)),
                channels: channels.into(),
                expected_frames: self.period_frames,
                expected_channels: self.channels.into(),
            });
        }
        let len = wire::encode_period(seq, channels.into(), samples, &mut self.tx)?;
        let sent = self.write_message(len)?;
        if sent {
            self.outstanding = Some(seq);
        }
        Ok(sent)
    }

    /// Sends a command. `Ok(false)`: no room for the whole message, nothing
    /// written. Sending [`Control::Pull`] is refused (only the DSP pulls).
    pub fn send_control(&mut self, c: &Control<'_>) -> Result<bool, DspError> {
        if matches!(c, Control::Pull { .. }) {
            return Err(DspError::Unexpected { what: "Pull" });
        }
        let len = c.encode(&mut self.tx)?;
        self.write_message(len)
    }

    /// Channels per frame.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Frames per period.
    pub fn period_frames(&self) -> usize {
        self.period_frames
    }

    /// The period sent and not yet answered, if any.
    pub fn outstanding(&self) -> Option<u32> {
        self.outstanding
    }

    /// Which DSP this is: 1 for the supervisor's first, counting up; 0 for
    /// a link made outside a supervisor.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The DSP's process id, if a supervisor started it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Asks the supervisor to kill and replace *this* DSP (a no-op if it
    /// was already replaced, or for a link without a supervisor).
    /// Non-blocking: an atomic and an unpark.
    pub fn request_restart(&self) {
        if let Some(r) = &self.restart {
            r.request_restart_of(self.generation);
        }
    }

    /// The channel (for tests and diagnostics); `None` for a polled link.
    pub fn channel(&mut self) -> Option<&mut Channel> {
        match &mut self.channel {
            Transport::Eventfd(ch) => Some(ch),
            Transport::Polled(_) => None,
        }
    }

    /// Writes `self.tx[..len]` whole, or nothing.
    fn write_message(&mut self, len: usize) -> Result<bool, DspError> {
        if self.channel.free()? < len {
            return Ok(false);
        }
        let written = self.channel.write(&self.tx[..len])?;
        if written != len {
            return Err(DspError::ShortWrite { written, len });
        }
        Ok(true)
    }
}

/// Why [`Rx::next`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxError {
    /// The bytes are not a valid message.
    Link(LinkError),
    /// A header announced more than the largest message allowed.
    Oversized { len: usize, max: usize },
    /// Reading the channel failed.
    Channel(ChannelIoError),
}

impl From<LinkError> for RxError {
    fn from(e: LinkError) -> Self {
        RxError::Link(e)
    }
}

impl From<ChannelIoError> for RxError {
    fn from(e: ChannelIoError) -> Self {
        RxError::Channel(e)
    }
}

impl From<RxError> for DspError {
    fn from(e: RxError) -> Self {
        match e {
            RxError::Link(e) => e.into(),
            RxError::Oversized { len, max } => DspError::Oversized { len, max },
            RxError::Channel(e) => e.into(),
        }
    }
}

/// Reassembles link messages from the bytes a channel delivers, in a buffer
/// allocated once (both ends use it: [`DspLink`] and the DSP's loop).
#[derive(Debug)]
pub(crate) struct Rx {
    /// Bytes `start..end` are read and not yet decoded.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The longest message accepted, header included.
    max: usize,
}

impl Rx {
    /// A reassembly buffer for messages of at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: vec![0; 2 * max.max(wire::HEADER_LEN)],
            start: 0,
            end: 0,
            max,
        }
    }

    /// The length of the complete message at the front, if there is one;
    /// an error for an invalid or oversized header (checked as soon as the
    /// header is there, before the body).
    fn complete_len(&self) -> Result<Option<usize>, RxError> {
        let have = self.buf.get(self.start..self.end).unwrap_or(&[]);
        if have.len() < wire::HEADER_LEN {
            return Ok(None);
        }
        let len = wire::message_len(have)?;
        if len > self.max {
            return Err(RxError::Oversized { len, max: self.max });
        }
        Ok((have.len() >= len).then_some(len))
    }

    /// Whether a complete message (or an invalid header, which
    /// [`next`](Self::next) reports) waits in the buffer.
    pub(crate) fn has_message(&self) -> bool {
        !matches!(self.complete_len(), Ok(None))
    }

    /// The next complete message, reading from `ch` as needed; `None` when
    /// the channel has no more bytes and no message is complete.
    pub(crate) fn next<'a>(
        &'a mut self,
        ch: &mut impl ReadBytes,
    ) -> Result<Option<Message<'a>>, RxError> {
        loop {
            if let Some(len) = self.complete_len()? {
                let at = self.start;
                self.start += len;
                if self.start == self.end {
                    // The bytes stay in place until the next read.
                    self.start = 0;
                    self.end = 0;
                }
                let bytes = self.buf.get(at..at + len).unwrap_or(&[]);
                let (msg, _) = wire::decode(bytes)?;
                return Ok(Some(msg));
            }
            if self.buf.len() - self.end < self.max {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let end = self.end;
            let n = ch.read_bytes(&mut self.buf[end..])?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }
}

/// The link's sequence state, borrowed apart from the receive buffer.
struct Seqs<'a> {
    outstanding: &'a mut Option<u32>,
    last_pull: &'a mut Option<u32>,
}

/// Checks one decoded message against the link's state.
fn interpret(
    msg: Message<'_>,
    seqs: &mut Seqs<'_>,
    channels: u8,
    period_frames: usize,
    processed: &mut [f32],
) -> Result<DspEvent, DspError> {
    match msg {
        Message::Control(Control::Pull { seq }) => {
            if let Some(last) = *seqs.last_pull {
                let step = seq.wrapping_sub(last);
                if step == 0 || step > i32::MAX as u32 {
                    return Err(DspError::PullOutOfOrder { last, got: seq });
                }
            }
            *seqs.last_pull = Some(seq);
            // A pull while a period is outstanding: the DSP gave up on it.
            *seqs.outstanding = None;
            Ok(DspEvent::Pull { seq })
        }
        Message::Control(Control::SetChain(_)) => Err(DspError::Unexpected { what: "SetChain" }),
        Message::Control(Control::Bypass(_)) => Err(DspError::Unexpected { what: "Bypass" }),
        Message::Control(Control::QueryStats) => Err(DspError::Unexpected { what: "QueryStats" }),
        Message::Period(p) => {
            if p.channels != channels || usize::from(p.frames) != period_frames {
                return Err(DspError::BadPeriod {
                    frames: p.frames.into(),
                    channels: p.channels.into(),
                    expected_frames: period_frames,
                    expected_channels: channels.into(),
                });
            }
            if *seqs.outstanding != Some(p.seq) {
                return Err(DspError::WrongSeq {
                    expected: *seqs.outstanding,
                    got: p.seq,
                });
            }
            let needed = p.sample_count();
            if processed.len() < needed {
                return Err(DspError::BufferTooSmall {
                    needed,
                    available: processed.len(),
                });
            }
            p.copy_samples_to(processed)?;
            *seqs.outstanding = None;
            Ok(DspEvent::Processed {
                seq: p.seq,
                frames: p.frames.into(),
            })
        }
        Message::Stats(s) => Ok(DspEvent::Stats(s)),
    }
}

/// The latest [`Stats`] of a DSP, published by the mixer and read by other
/// threads (introspection, logs) without locks.
///
/// Fields are separate atomics: a reader racing a publish may see fields
/// from two consecutive reports, which is harmless for statistics.
#[derive(Debug)]
pub struct StatsCell {
    updates: AtomicU64,
    periods: AtomicU64,
    worst_ns: AtomicU64,
    mean_ns: AtomicU64,
    deadline_misses: AtomicU64,
    channels: AtomicU8,
    peak_db: [AtomicU32; MAX_CHANNELS],
}

impl Default for StatsCell {
    fn default() -> Self {
        Self::new()
    }
}

impl StatsCell {
    /// An empty cell (no report yet).
    pub fn new() -> Self {
        Self {
            updates: AtomicU64::new(0),
            periods: AtomicU64::new(0),
            worst_ns: AtomicU64::new(0),
            mean_ns: AtomicU64::new(0),
            deadline_misses: AtomicU64::new(0),
            channels: AtomicU8::new(0),
            peak_db: std::array::from_fn(|_| AtomicU32::new(f32::NEG_INFINITY.to_bits())),
        }
    }

    /// Stores `s` (wait-free; callable from the mixer).
    pub fn publish(&self, s: &Stats) {
        // Relaxed everywhere: independent counters, no data is handed over.
        self.periods.store(s.periods, Ordering::Relaxed);
        self.worst_ns.store(s.worst_ns, Ordering::Relaxed);
        self.mean_ns.store(s.mean_ns, Ordering::Relaxed);
        self.deadline_misses
            .store(s.deadline_misses, Ordering::Relaxed);
        self.channels.store(s.channels, Ordering::Relaxed);
        for (cell, p) in self.peak_db.iter().zip(s.peak_db) {
            cell.store(p.to_bits(), Ordering::Relaxed);
        }
        self.updates.fetch_add(1, Ordering::Relaxed);
    }

    /// How many reports were published.
    pub fn updates(&self) -> u64 {
        self.updates.load(Ordering::Relaxed)
    }

    /// The latest report, or `None` before the first.
    pub fn load(&self) -> Option<Stats> {
        if self.updates() == 0 {
            return None;
        }
        Some(Stats {
            periods: self.periods.load(Ordering::Relaxed),
            worst_ns: self.worst_ns.load(Ordering::Relaxed),
            mean_ns: self.mean_ns.load(Ordering::Relaxed),
            deadline_misses: self.deadline_misses.load(Ordering::Relaxed),
            channels: self.channels.load(Ordering::Relaxed),
            peak_db: std::array::from_fn(|i| {
                f32::from_bits(self.peak_db[i].load(Ordering::Relaxed))
            }),
        })
    }
}

impl AsFd for DspLink {
    /// The same as [`DspLink::poll_fd`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.poll_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{PollFd, PollFlags};
    use srb_core::Woken;
    use srb_linux::handshake::{self, ChannelConfig};
    use srb_linux::scm::ScmStream;
    use std::time::Duration;

    const FRAMES: usize = 64;
    const CH: u8 = 2;

    /// A host link and the raw channel of a fake DSP behind it.
    fn pair(capacity: u32) -> (DspLink, Channel) {
        let (a, b) = ScmStream::pair().unwrap();
        let dsp = std::thread::spawn(move || handshake::accept(b, Some(Duration::from_secs(10))));
        let cfg = ChannelConfig {
            layout: LayoutKind::Srb,
            signal: SignalKind::Eventfd,
            capacity,
        };
        let host = handshake::create(a, cfg, Some(Duration::from_secs(10))).unwrap();
        let dsp = dsp.join().unwrap().unwrap();
        (DspLink::new(host, CH, FRAMES).unwrap(), dsp)
    }

    /// Waits (bounded) until the link yields an event or an error.
    fn next(link: &mut DspLink, buf: &mut [f32]) -> Result<DspEvent, DspError> {
        for _ in 0..1000 {
            if let Some(ev) = link.recv(buf)? {
                return Ok(ev);
            }
            if !link.before_poll()? {
                let mut fds = [PollFd::from_borrowed_fd(link.poll_fd(), PollFlags::IN)];
                let _ = rustix::event::poll(
                    &mut fds,
                    Some(&rustix::time::Timespec {
                        tv_sec: 0,
                        tv_nsec: 10_000_000,
                    }),
                );
                link.after_poll()?;
            }
        }
        panic!("no event within 10 s");
    }

    fn put(dsp: &mut Channel, bytes: &[u8]) {
        dsp.write_all(bytes, Some(Duration::from_secs(10))).unwrap();
    }

    fn pull(seq: u32) -> Vec<u8> {
        let mut b = [0u8; 16];
        let n = Control::Pull { seq }.encode(&mut b).unwrap();
        b[..n].to_vec()
    }

    fn period(seq: u32, frames: usize, channels: usize, x: f32) -> Vec<u8> {
        let samples = vec![x; frames * channels];
        let mut b = vec![0u8; wire::period_len(frames, channels)];
        let n = wire::encode_period(seq, channels, &samples, &mut b).unwrap();
        assert_eq!(n, b.len());
        b
    }

    fn samples(x: f32) -> Vec<f32> {
        vec![x; FRAMES * usize::from(CH)]
    }

    #[test]
    fn a_pull_period_round_trip_and_stats() {
        let (mut link, mut dsp) = pair(1 << 14);
        let mut buf = samples(0.0);
        put(&mut dsp, &pull(7));
        assert_eq!(
            next(&mut link, &mut buf).unwrap(),
            DspEvent::Pull { seq: 7 }
        );
        assert!(link.send_period(7, &samples(0.25), CH).unwrap());
        assert_eq!(link.outstanding(), Some(7));
        // The fake DSP reads the period and answers it with other samples.
        let mut got = vec![0u8; wire::period_len(FRAMES, 2)];
        dsp.read_exact(&mut got, Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(got, period(7, FRAMES, 2, 0.25));
        put(&mut dsp, &period(7, FRAMES, 2, -0.5));
        assert_eq!(
            next(&mut link, &mut buf).unwrap(),
            DspEvent::Processed {
                seq: 7,
                frames: FRAMES
            }
        );
        assert!(buf.iter().all(|&s| s == -0.5));
        assert_eq!(link.outstanding(), None);
        let stats = Stats {
            periods: 1,
            worst_ns: 2,
            mean_ns: 3,
            deadline_misses: 4,
            channels: 2,
            peak_db: [-1.0; MAX_CHANNELS],
        };
        let mut b = [0u8; STATS_LEN];
        stats.encode(&mut b).unwrap();
        put(&mut dsp, &b);
        assert_eq!(next(&mut link, &mut buf).unwrap(), DspEvent::Stats(stats));
        let cell = StatsCell::new();
        assert_eq!(cell.load(), None);
        cell.publish(&stats);
        assert_eq!(cell.load(), Some(stats));
        // Controls arrive whole at the DSP.
        assert!(link.send_control(&Control::SetChain("gain:-6dB")).unwrap());
        assert!(matches!(
            link.send_control(&Control::Pull { seq: 1 }),
            Err(DspError::Unexpected { what: "Pull" })
        ));
    }

    #[test]
    fn messages_split_into_single_bytes_reassemble() {
        let (mut link, mut dsp) = pair(1 << 14);
        let mut buf = samples(0.0);
        let mut bytes = pull(1);
        bytes.extend(pull(2));
        // Every prefix of the first message is incomplete.
        for b in &bytes[..12] {
            put(&mut dsp, std::slice::from_ref(b));
            assert_eq!(link.recv(&mut buf).unwrap(), None);
        }
        for b in &bytes[12..] {
            put(&mut dsp, std::slice::from_ref(b));
        }
        assert_eq!(
            link.recv(&mut buf).unwrap(),
            Some(DspEvent::Pull { seq: 1 })
        );
        assert!(link.before_poll().unwrap(), "a buffered message: no sleep");
        assert_eq!(
            link.recv(&mut buf).unwrap(),
            Some(DspEvent::Pull { seq: 2 })
        );
        assert_eq!(link.recv(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_full_ring_takes_no_partial_period() {
        // 1 KiB rings hold no 64 × 2 period (528 bytes) twice.
        let (mut link, mut dsp) = pair(1024);
        assert!(link.send_period(0, &samples(1.0), CH).unwrap());
        assert!(!link.send_period(1, &samples(1.0), CH).unwrap());
        assert_eq!(
            link.outstanding(),
            Some(0),
            "the refused period is not outstanding"
        );
        let mut got = vec![0u8; 2048];
        let n = dsp.read(&mut got).unwrap();
        assert_eq!(
            n,
            wire::period_len(FRAMES, 2),
            "one whole message, nothing else"
        );
        assert!(link.send_period(1, &samples(1.0), CH).unwrap());
        assert!(matches!(
            link.send_period(2, &samples(1.0)[..10], CH),
            Err(DspError::BadPeriod { .. })
        ));
        assert!(matches!(
            link.send_period(2, &samples(1.0), 1),
            Err(DspError::BadPeriod { .. })
        ));
    }

    /// Feeds `bytes` (after `prefix` events) and returns the error.
    fn hostile(prefix: &[Vec<u8>], send_first: Option<u32>, bytes: &[u8]) -> DspError {
        let (mut link, mut dsp) = pair(1 << 16);
        let mut buf = samples(0.0);
        for p in prefix {
            put(&mut dsp, p);
            next(&mut link, &mut buf).unwrap();
        }
        if let Some(seq) = send_first {
            assert!(link.send_period(seq, &samples(0.5), CH).unwrap());
        }
        put(&mut dsp, bytes);
        for _ in 0..10 {
            if let Err(e) = next(&mut link, &mut buf) {
                return e;
            }
        }
        panic!("hostile bytes must be an error");
    }

    #[test]
    fn hostile_messages_are_named_errors() {
        assert!(matches!(
            hostile(&[], None, b"garbage!garbage!"),
            DspError::Link(LinkError::BadMagic { .. })
        ));
        let mut bad_version = pull(1);
        bad_version[2] = 9;
        assert!(matches!(
            hostile(&[], None, &bad_version),
            DspError::Link(LinkError::BadVersion { found: 9 })
        ));
        // A header announcing a period larger than the link's: refused from
        // the header alone, before its body arrives.
        let big = period(1, FRAMES + 1, 2, 0.0);
        assert!(matches!(
            hostile(&[], Some(1), &big[..wire::HEADER_LEN]),
            DspError::Oversized { .. }
        ));
        // A period of the wrong shape but within the size limit.
        assert!(matches!(
            hostile(&[], Some(1), &period(1, FRAMES, 1, 0.0)),
            DspError::BadPeriod {
                channels: 1,
                expected_channels: 2,
                ..
            }
        ));
        // Wrong sequence numbers: none outstanding, another outstanding.
        assert!(matches!(
            hostile(&[], None, &period(5, FRAMES, 2, 0.0)),
            DspError::WrongSeq {
                expected: None,
                got: 5
            }
        ));
        assert!(matches!(
            hostile(&[], Some(4), &period(5, FRAMES, 2, 0.0)),
            DspError::WrongSeq {
                expected: Some(4),
                got: 5
            }
        ));
        // A period the DSP gave up on (it pulled the next) is not answerable.
        assert!(matches!(
            hostile(
                &[pull(4)],
                Some(4),
                &[pull(5), period(4, FRAMES, 2, 0.0)].concat()
            ),
            DspError::WrongSeq {
                expected: None,
                got: 4
            }
        ));
        assert!(matches!(
            hostile(&[pull(4)], None, &pull(4)),
            DspError::PullOutOfOrder { last: 4, got: 4 }
        ));
        assert!(matches!(
            hostile(&[pull(4)], None, &pull(3)),
            DspError::PullOutOfOrder { last: 4, got: 3 }
        ));
        let mut c = [0u8; 16];
        let n = Control::Bypass(true).encode(&mut c).unwrap();
        assert!(matches!(
            hostile(&[], None, &c[..n]),
            DspError::Unexpected { what: "Bypass" }
        ));
        // A stats message with a reserved byte set.
        let mut s = [0u8; STATS_LEN];
        Stats {
            periods: 0,
            worst_ns: 0,
            mean_ns: 0,
            deadline_misses: 0,
            channels: 2,
            peak_db: [0.0; MAX_CHANNELS],
        }
        .encode(&mut s)
        .unwrap();
        s[wire::HEADER_LEN + 33] = 1;
        assert!(matches!(
            hostile(&[], None, &s),
            DspError::Link(LinkError::BadReserved)
        ));
    }

    #[test]
    fn pull_sequence_wraps() {
        let (mut link, mut dsp) = pair(1 << 14);
        let mut buf = samples(0.0);
        put(&mut dsp, &pull(u32::MAX));
        put(&mut dsp, &pull(1));
        assert_eq!(
            next(&mut link, &mut buf).unwrap(),
            DspEvent::Pull { seq: u32::MAX }
        );
        assert_eq!(
            next(&mut link, &mut buf).unwrap(),
            DspEvent::Pull { seq: 1 }
        );
    }

    #[test]
    fn a_small_buffer_is_an_error_not_a_panic() {
        let (mut link, mut dsp) = pair(1 << 14);
        assert!(link.send_period(3, &samples(0.5), CH).unwrap());
        put(&mut dsp, &period(3, FRAMES, 2, 0.0));
        let mut small = [0.0f32; 5];
        assert!(matches!(
            next(&mut link, &mut small),
            Err(DspError::BufferTooSmall {
                needed: 128,
                available: 5
            })
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = srb_linux::echo::SplitMix64::new(42);
        for round in 0..200 {
            let (mut link, mut dsp) = pair(1 << 12);
            let mut buf = samples(0.0);
            // Sometimes a valid header first, so the body parsers are hit.
            let mut bytes = if round % 2 == 0 {
                pull(round)[..4].to_vec()
            } else {
                Vec::new()
            };
            let len = (rng.next_u64() % 600) as usize;
            bytes.extend((0..len).map(|_| rng.next_u64() as u8));
            let _ = link.send_period(0, &samples(0.0), CH);
            let n = dsp.write(&bytes).unwrap();
            for _ in 0..(n + 1) {
                match link.recv(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn a_vanished_dsp_is_reported() {
        let (mut link, dsp) = pair(1 << 12);
        assert!(!link.is_gone().unwrap());
        drop(dsp);
        assert!(link.is_gone().unwrap());
        // The wait of the channel also ends in PeerGone (no hang).
        assert!(matches!(
            link.channel().unwrap().wait(None),
            Err(ChannelIoError::PeerGone) | Ok(Woken::Pending)
        ));
    }

    #[test]
    fn only_srb_eventfd_channels_make_links() {
        let (a, b) = ScmStream::pair().unwrap();
        let t = std::thread::spawn(move || handshake::accept(b, Some(Duration::from_secs(10))));
        let cfg = ChannelConfig {
            layout: LayoutKind::Srb,
            signal: SignalKind::Futex,
            capacity: 4096,
        };
        let host = handshake::create(a, cfg, Some(Duration::from_secs(10))).unwrap();
        let _dsp = t.join().unwrap().unwrap();
        assert!(matches!(
            DspLink::new(host, 2, 64),
            Err(DspError::WrongChannel {
                signal: SignalKind::Futex,
                ..
            })
        ));
    }
}
