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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::control::playback::{ENCODING_PCM, MAX_FORMATS};
use crate::engine::audio::convert::RecordConverter;
use crate::engine::stream::RecordShared;
use srb_pulse::attr::{self, RecordAttr};
use srb_pulse::commands::PaError;
use srb_pulse::pstream::{Frame, FrameError, Memblock, SeekMode};
use srb_pulse::tagstruct::{
    CVolume, ChannelMap, FormatInfo, Proplist, SampleSpec, TagError, TagReader,
};

/// The largest memblock frame sent (PulseAudio's pool block size).
pub const MAX_CHUNK: usize = 65_472;

/// A decoded CREATE_RECORD_STREAM request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRecord {
    /// Sample spec.
    pub spec: SampleSpec,
    /// Channel map.
    pub map: ChannelMap,
    /// Source by index (`0xFFFFFFFF`: by name or default).
    pub source_index: u32,
    /// Source by name.
    pub source_name: Option<String>,
    /// Requested maximum length.
    pub maxlength: u32,
    /// Start corked.
    pub corked: bool,
    /// Requested fragment size.
    pub fragsize: u32,
    /// Stream properties (v13).
    pub props: Proplist,
    /// Record only one sink input (v13); unsupported unless `0xFFFFFFFF`.
    pub direct_on_input: u32,
    /// Offered formats (v22).
    pub formats: Vec<FormatInfo>,
    /// Initial volume (v22), if set.
    pub volume: Option<CVolume>,
    /// Initial mute (v22), if set.
    pub muted: Option<bool>,
    /// `passthrough` (v22).
    pub passthrough: bool,
}

impl CreateRecord {
    /// Decodes the request body (after command and tag) as `version`
    /// encodes it; trailing bytes are an error.
    pub fn parse(r: &mut TagReader<'_>, version: u32) -> Result<Self, TagError> {
        let spec = r.get_sample_spec()?;
        let map = r.get_channel_map()?;
        let source_index = r.get_u32()?;
        let source_name = r.get_string()?.map(str::to_owned);
        let maxlength = r.get_u32()?;
        let corked = r.get_bool()?;
        let fragsize = r.get_u32()?;
        let mut c = Self {
            spec,
            map,
            source_index,
            source_name,
            maxlength,
            corked,
            fragsize,
            props: Proplist::new(),
            direct_on_input: attr::DEFAULT,
            formats: Vec::new(),
            volume: None,
            muted: None,
            passthrough: false,
        };
        if version >= 12 {
            for _ in 0..7 {
                r.get_bool()?;
            }
        }
        if version >= 13 {
            let _peak_detect = r.get_bool()?;
            let _adjust_latency = r.get_bool()?;
            c.props = r.get_proplist()?;
            c.direct_on_input = r.get_u32()?;
        }
        if version >= 14 {
            let _early_requests = r.get_bool()?;
        }
        if version >= 15 {
            let _dont_inhibit_auto_suspend = r.get_bool()?;
            let _fail_on_suspend = r.get_bool()?;
        }
        if version >= 22 {
            let n = r.get_u8()?;
            if n > MAX_FORMATS {
                return Err(TagError::TooLong {
                    what: "format list",
                    len: usize::from(n),
                    max: usize::from(MAX_FORMATS),
                });
            }
            for _ in 0..n {
                c.formats.push(r.get_format_info()?);
            }
            let volume = r.get_cvolume()?;
            let muted = r.get_bool()?;
            let volume_set = r.get_bool()?;
            let muted_set = r.get_bool()?;
            let _relative_volume = r.get_bool()?;
            c.passthrough = r.get_bool()?;
            c.volume = volume_set.then_some(volume);
            c.muted = muted_set.then_some(muted);
        }
        r.finish()?;
        Ok(c)
    }

    /// Checks the request; the error code for the ERROR reply on failure.
    pub fn validate(&self) -> Result<(), PaError> {
        if self.source_index != attr::DEFAULT && self.source_name.is_some() {
            return Err(PaError::Invalid);
        }
        if self.passthrough || self.direct_on_input != attr::DEFAULT {
            return Err(PaError::NotSupported);
        }
        if !self.formats.is_empty() && !self.formats.iter().any(|f| f.encoding == ENCODING_PCM) {
            return Err(PaError::NotSupported);
        }
        self.spec.check().map_err(|_| PaError::Invalid)?;
        self.map.check().map_err(|_| PaError::Invalid)?;
        if self.map.channels() != self.spec.channels {
            return Err(PaError::Invalid);
        }
        if let Some(v) = &self.volume {
            if v.channels() != self.spec.channels {
                return Err(PaError::Invalid);
            }
            v.check().map_err(|_| PaError::Invalid)?;
        }
        Ok(())
    }
}

/// What the connection keeps per record stream.
pub struct Record {
    /// The channel id of this stream on its connection.
    pub channel: u32,
    /// Sample spec.
    pub spec: SampleSpec,
    /// The final buffer attributes.
    pub attr: RecordAttr,
    /// Shared with the mixer.
    pub shared: Arc<RecordShared>,
    ring: rtrb::Consumer<f32>,
    converter: RecordConverter,
    sink_channels: usize,
    samples: Vec<f32>,
    pending: Vec<u8>,
    sent: u64,
    dropped_seen: u64,
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
    /// A stream fed by `ring` (the engine's monitor copy).
    pub fn new(
        channel: u32,
        spec: SampleSpec,
        attr: RecordAttr,
        shared: Arc<RecordShared>,
        ring: rtrb::Consumer<f32>,
        converter: RecordConverter,
        sink_channels: usize,
    ) -> Self {
        Self {
            channel,
            spec,
            attr,
            shared,
            ring,
            converter,
            sink_channels: sink_channels.max(1),
            samples: Vec::new(),
            pending: Vec::new(),
            sent: 0,
            dropped_seen: 0,
        }
    }

    /// Bytes sent to the client so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes converted but not yet sent, plus monitor audio not yet taken.
    pub fn queued(&self) -> u64 {
        let frames = (self.ring.slots() / self.sink_channels) as u64;
        self.pending.len() as u64 + frames * self.converter.client_frame_size() as u64
    }

    /// Switches to a new client rate (UPDATE_RECORD_STREAM_SAMPLE_RATE);
    /// the format and channels stay, so converted bytes stay valid.
    pub fn set_converter(&mut self, spec: SampleSpec, converter: RecordConverter) {
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
    /// frames to `out`.
    pub fn poll(&mut self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let dropped = self.shared.dropped_frames.load(Ordering::Relaxed);
        if dropped != self.dropped_seen {
            tracing::warn!(
                channel = self.channel,
                frames = dropped - self.dropped_seen,
                "record stream fell behind; monitor audio dropped"
            );
            self.dropped_seen = dropped;
        }
        let n = self.ring.slots() / self.sink_channels * self.sink_channels;
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
