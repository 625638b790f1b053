//! Record streams, connection side: the CREATE_RECORD_STREAM request
//! (§6.6), its validation, and the delivery of monitor audio to the client
//! as memblock frames (§7.5).
//!
//! The mixer copies every rendered period into the stream's ring (sink
//! channels, f32); on each wake-up the connection thread takes all of it,
//! applies the stream volume, converts it to the client's spec and sends
//! it in frames of at most `fragsize` (and 64 KiB). Nothing is skipped, so
//! a recording is contiguous as long as the ring (2 s) does not overflow;
//! an overflow is counted and logged.
//!
//! The ring is fed by the monitor (the whole sink) or, for a
//! `monitor_stream` record, by one sink input's tap
//! ([`crate::engine::tap`]); a `PEAK_DETECT` stream turns the audio into
//! peaks instead ([`crate::engine::audio::peaks`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::audio::peaks::Capture;
use crate::engine::stream::RecordShared;
use srb_pulse::attr::RecordAttr;
use srb_pulse::pstream::{Frame, FrameError, Memblock, SeekMode};
use srb_pulse::tagstruct::SampleSpec;

/// The largest memblock frame sent (PulseAudio's pool block size).
pub const MAX_CHUNK: usize = 65_472;

pub use srb_pulse::request::stream::CreateRecord;

/// What the connection keeps per record stream.
pub struct Record {
    /// The channel id of this stream on its connection.
    pub channel: u32,
    /// The sink's rate (the monitor audio in the ring).
    sink_rate: u32,
    /// Sample spec.
    pub spec: SampleSpec,
    /// The final buffer attributes.
    pub attr: RecordAttr,
    /// Shared with the mixer.
    pub shared: Arc<RecordShared>,
    /// `PEAK_DETECT`: peaks instead of audio when the rates differ.
    pub peak_detect: bool,
    ring: rtrb::Consumer<f32>,
    converter: Capture,
    sink_channels: usize,
    samples: Vec<f32>,
    pending: Vec<u8>,
    sent: u64,
    dropped_seen: u64,
    /// Samples of the oldest audio dropped because the client did not
    /// read, and whether that is happening now (for the log).
    dropped_oldest: u64,
    stalled: bool,
    /// Counts the ring in `pactl stat` while the stream lives.
    pub buffer: Option<crate::engine::buffers::BufferLease>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("channel", &self.channel)
            .field("index", &self.shared.index)
            .field("attr", &self.attr)
            .field("sent", &self.sent)
            .finish()
    }
}

impl Record {
    /// A stream fed by `ring` (the engine's monitor copy of the sink,
    /// whose spec is `sink`).
    pub fn new(
        channel: u32,
        spec: SampleSpec,
        attr: RecordAttr,
        shared: Arc<RecordShared>,
        ring: rtrb::Consumer<f32>,
        converter: Capture,
        sink: &SampleSpec,
    ) -> Self {
        let sink_channels = usize::from(sink.channels);
        Self {
            channel,
            sink_rate: sink.rate.max(1),
            spec,
            attr,
            shared,
            peak_detect: false,
            ring,
            converter,
            sink_channels: sink_channels.max(1),
            samples: Vec::new(),
            pending: Vec::new(),
            sent: 0,
            dropped_seen: 0,
            dropped_oldest: 0,
            stalled: false,
            buffer: None,
        }
    }

    /// Marks the stream as `PEAK_DETECT` (its converter must be a
    /// [`Capture`] made with the flag).
    pub fn with_peak_detect(mut self, on: bool) -> Self {
        self.peak_detect = on;
        self
    }

    /// Bytes sent to the client so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The ring's capacity in bytes (for `pactl stat`).
    pub fn ring_bytes(&self) -> u64 {
        (self.ring.buffer().capacity() * std::mem::size_of::<f32>()) as u64
    }

    /// Bytes converted but not yet sent, plus monitor audio not yet taken.
    pub fn queued(&self) -> u64 {
        let frames = (self.ring.slots() / self.sink_channels) as u64;
        self.pending.len() as u64 + frames * self.converter.client_frame_size() as u64
    }

    /// Switches to a new client rate (UPDATE_RECORD_STREAM_SAMPLE_RATE);
    /// the format and channels stay, so converted bytes stay valid.
    pub fn set_converter(&mut self, spec: SampleSpec, converter: Capture) {
        self.spec = spec;
        self.converter = converter;
    }

    /// FLUSH: drops what is waiting.
    pub fn flush(&mut self) {
        let n = self.ring.slots();
        if let Ok(c) = self.ring.read_chunk(n) {
            c.commit_all();
        }
        self.pending.clear();
    }

    /// Converts all monitor audio that arrived and appends its memblock
    /// frames to `out`; with no `room` (the client has not read what it
    /// was sent) the audio stays in the ring instead, and once the ring is
    /// half full its oldest part is dropped, so the newest audio is what
    /// the client gets when it reads again.
    pub fn poll(&mut self, out: &mut Vec<u8>, room: usize) -> Result<(), FrameError> {
        if room == 0 {
            let cap = self.ring.buffer().capacity();
            let slots = self.ring.slots();
            if slots > cap / 2 {
                let n = (slots - cap / 4) / self.sink_channels * self.sink_channels;
                if let Ok(c) = self.ring.read_chunk(n) {
                    c.commit_all();
                    self.dropped_oldest += n as u64;
                }
                if !self.stalled {
                    self.stalled = true;
                    tracing::info!(
                        channel = self.channel,
                        "record client is not reading; dropping its oldest audio"
                    );
                }
            }
            return Ok(());
        }
        if std::mem::take(&mut self.stalled) {
            tracing::info!(
                channel = self.channel,
                dropped_frames = self.dropped_oldest / self.sink_channels as u64,
                "record client reads again"
            );
        }
        let dropped = self.shared.dropped_frames.load(Ordering::Relaxed);
        if dropped != self.dropped_seen {
            tracing::warn!(
                channel = self.channel,
                frames = dropped - self.dropped_seen,
                "record stream fell behind; monitor audio dropped"
            );
            self.dropped_seen = dropped;
        }
        // At most what `room` takes once converted: the client's queue
        // never grows by more than it has room for.
        let client_frame = self.converter.client_frame_size().max(1) as u64;
        let fit = (room as u64 / client_frame).saturating_mul(u64::from(self.sink_rate))
            / u64::from(self.spec.rate.max(1));
        let fit = usize::try_from(fit).unwrap_or(usize::MAX).max(1);
        let n = (self.ring.slots() / self.sink_channels).min(fit) * self.sink_channels;
        if n > 0 {
            self.samples.resize(n, 0.0);
            if self.ring.pop_entire_slice(&mut self.samples[..n]).is_ok() {
                let g = &self.shared.gains;
                if g.muted() {
                    self.samples.fill(0.0);
                } else {
                    for frame in self.samples.chunks_exact_mut(self.sink_channels) {
                        for (c, x) in frame.iter_mut().enumerate() {
                            let gain = g.get(c);
                            if gain != 1.0 {
                                *x *= gain;
                            }
                        }
                    }
                }
                self.converter.push(&self.samples, &mut self.pending);
            }
        }
        let frame = self.converter.client_frame_size().max(1);
        let max = (self.attr.fragsize as usize).min(MAX_CHUNK) / frame * frame;
        let max = max.max(frame);
        let whole = self.pending.len() / frame * frame;
        for chunk in self.pending[..whole].chunks(max) {
            Frame::Memblock(Memblock {
                channel: self.channel,
                offset: 0,
                seek: SeekMode::Relative,
                data: chunk.to_vec(),
            })
            .encode_into(out)?;
            self.sent += chunk.len() as u64;
        }
        self.pending.drain(..whole);
        Ok(())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        // Relaxed: the mixer drops its end at its next period.
        self.shared.closed.store(true, Ordering::Relaxed);
    }
}
