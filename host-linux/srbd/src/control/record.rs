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
//!
//! Latency (GET_RECORD_LATENCY): the mixer copies each period into the
//! ring the moment it renders it, so the source's own latency is 0 and
//! what a client waits for is the queue: the ring and the converted bytes
//! not yet sent ([`Record::queued`], the write index minus the read
//! index). The monitored sink's lead, which libpulse subtracts, is only
//! what the output backend still holds of audio the monitor already has
//! ([`crate::engine::mixer::Engine::monitor_lead_usec`]); so a record
//! stream's latency is never pushed below zero by a period it did not
//! wait for.
//!
//! Moves (MOVE_SOURCE_OUTPUT): between sinks of the same shape the ring
//! moves as it is. Across shapes the old mixer stops writing its ring and
//! the new one fills a new ring ([`crate::engine::stream::NextRing`]);
//! the stream drains the old ring with the old converter first and then
//! continues in the new ring with a converter built for the new sink, so
//! no frame is converted as the wrong shape. A rate update
//! (UPDATE_RECORD_STREAM_SAMPLE_RATE) in that short while answers
//! BADSTATE ([`Record::switching`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::audio::peaks::Capture;
use crate::engine::stream::{NextRing, RecordShared};
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
    /// The shared `moved` counter as last told to the client
    /// (STREAM_MOVED).
    pub moved_seen: u32,
    /// Rings left for a sink of another shape (the shared `detached`
    /// as last acted on).
    detached_seen: u32,
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
            moved_seen: 0,
            detached_seen: 0,
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
        // Ring frames are at the sink's rate; the client gets them at its
        // own (for a peak stream, one frame per fragment's worth).
        let frames = (self.ring.slots() / self.sink_channels) as u64 * u64::from(self.spec.rate)
            / u64::from(self.sink_rate);
        self.pending.len() as u64 + frames * self.converter.client_frame_size() as u64
    }

    /// Switches to a new client rate (UPDATE_RECORD_STREAM_SAMPLE_RATE);
    /// the format and channels stay, so converted bytes stay valid.
    pub fn set_converter(&mut self, spec: SampleSpec, converter: Capture) {
        self.spec = spec;
        self.converter = converter;
    }

    /// Whether a move to a sink of another shape is not yet done: the
    /// ring in use may still be the old sink's, so a converter built for
    /// the new sink must not replace the current one yet.
    pub fn switching(&self) -> bool {
        // Acquire: as in `follow_moves`.
        self.shared.detached.load(Ordering::Acquire) != self.detached_seen
            || match self.shared.next.lock() {
                Ok(q) => !q.is_empty(),
                Err(p) => !p.into_inner().is_empty(),
            }
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
        let polled = self.poll_inner(out, room);
        // Relaxed: a figure for info replies, not a hand-over.
        self.shared.queued.store(self.queued(), Ordering::Relaxed);
        polled
    }

    /// After a move across shapes: once the old mixer has stopped writing
    /// the current ring and it is drained, continues in the next one.
    fn follow_moves(&mut self) {
        // Acquire: pairs with the mixer's Release after its last write to
        // the ring it dropped, so `is_empty` sees every frame it wrote.
        while self.shared.detached.load(Ordering::Acquire) != self.detached_seen
            && self.ring.is_empty()
        {
            let next = match self.shared.next.lock() {
                Ok(mut q) => q.pop_front(),
                Err(p) => p.into_inner().pop_front(),
            };
            let Some(next) = next else { break };
            self.switch_to(next);
            self.detached_seen = self.detached_seen.wrapping_add(1);
        }
    }

    fn switch_to(&mut self, next: NextRing) {
        let NextRing {
            ring,
            sink,
            sink_map,
            client_map,
        } = next;
        match Capture::new(
            self.peak_detect,
            sink.rate,
            &sink_map,
            self.spec,
            &client_map,
        ) {
            Ok(c) => self.converter = c,
            // The control side built the same converter before moving.
            Err(e) => tracing::warn!(channel = self.channel, %e, "no converter after move"),
        }
        self.ring = ring;
        self.sink_rate = sink.rate.max(1);
        self.sink_channels = usize::from(sink.channels).max(1);
        tracing::debug!(
            channel = self.channel,
            rate = sink.rate,
            "record stream continues in its new sink's ring"
        );
    }

    fn poll_inner(&mut self, out: &mut Vec<u8>, room: usize) -> Result<(), FrameError> {
        self.follow_moves();
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

#[cfg(test)]
mod tests {
    use crate::control::session::tests::create_playback;
    use crate::control::session::tests::{call, expect_error, expect_reply, packet, ready};
    use srb_pulse::commands::{Command, PaError};
    use srb_pulse::pstream::{Frame, FrameDecoder};
    use srb_pulse::sample::SampleFormat;
    use srb_pulse::tagstruct::{
        CVolume, ChannelMap, FormatInfo, Proplist, SampleSpec, TagReader, Timeval,
    };

    const NONE: u32 = u32::MAX;

    /// CREATE_RECORD_STREAM as libpulse 16.1 writes it at v35.
    fn create_record(
        tag: u32,
        spec: SampleSpec,
        direct_on_input: u32,
        formats: &[FormatInfo],
    ) -> Vec<u8> {
        packet(Command::CreateRecordStream as u32, tag, |w| {
            let map = ChannelMap::new(&vec![0; usize::from(spec.channels.max(1))]).unwrap();
            w.put_sample_spec(&spec)
                .put_channel_map(&if spec.channels == 2 {
                    ChannelMap::new(&[1, 2]).unwrap()
                } else {
                    map
                })
                .put_u32(NONE)
                .put_string(None)
                .put_u32(NONE)
                .put_bool(false)
                .put_u32(NONE);
            for _ in 0..7 {
                w.put_bool(false);
            }
            w.put_bool(false)
                .put_bool(false)
                .put_proplist(&Proplist::new())
                .put_u32(direct_on_input);
            w.put_bool(false).put_bool(false).put_bool(false);
            w.put_u8(formats.len() as u8);
            for f in formats {
                w.put_format_info(f);
            }
            w.put_cvolume(&CVolume::default());
            for _ in 0..5 {
                w.put_bool(false);
            }
        })
    }

    fn stereo_f32() -> SampleSpec {
        SampleSpec {
            format: SampleFormat::Float32Le,
            channels: 2,
            rate: 48_000,
        }
    }

    fn no_spec() -> SampleSpec {
        SampleSpec {
            format: SampleFormat::from_wire(0xFF),
            channels: 0,
            rate: 0,
        }
    }

    fn pcm(pairs: &[(&str, &str)]) -> FormatInfo {
        let mut props = Proplist::new();
        for (k, v) in pairs {
            props.set_str(k, v).unwrap();
        }
        FormatInfo { encoding: 1, props }
    }

    /// The float samples of every memblock frame in `out`.
    fn sent_samples(out: &[u8]) -> Vec<f32> {
        let mut frames = FrameDecoder::default();
        frames.push(out);
        let mut all = Vec::new();
        while let Some(frame) = frames.next_frame().unwrap() {
            if let Frame::Memblock(m) = frame {
                all.extend(
                    m.data
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
        }
        all
    }

    #[test]
    fn a_move_across_shapes_drains_the_old_ring_as_the_old_shape_first() {
        use super::Record;
        use crate::engine::audio::peaks::Capture;
        use crate::engine::notice::{Bell, Notice};
        use crate::engine::stream::{NextRing, RecordShared};
        use srb_pulse::attr::RecordAttr;
        use std::sync::atomic::Ordering;
        use std::sync::Arc;

        let stereo = ChannelMap::new(&[1, 2]).unwrap();
        let mono = ChannelMap::new(&[0]).unwrap();
        let mono_spec = SampleSpec {
            channels: 1,
            ..stereo_f32()
        };
        let bell = Arc::new(Bell::new().unwrap());
        let shared = Arc::new(RecordShared::new(0, Arc::new(Notice::new(bell)), false));
        let (mut old, ring) = rtrb::RingBuffer::new(64);
        let capture = Capture::new(false, 48_000, &stereo, stereo_f32(), &stereo).unwrap();
        let attr = RecordAttr {
            maxlength: 1 << 16,
            fragsize: 1 << 12,
        };
        let mut rec = Record::new(
            0,
            stereo_f32(),
            attr,
            shared.clone(),
            ring,
            capture,
            &stereo_f32(),
        );
        for x in [0.1, 0.2, 0.3, 0.4] {
            old.push(x).unwrap();
        }
        // The move: a mono ring on the new sink, already fed, queued
        // before the old mixer lets go.
        let (mut new, ring) = rtrb::RingBuffer::new(64);
        for x in [0.5, 0.6] {
            new.push(x).unwrap();
        }
        shared.next.lock().unwrap().push_back(NextRing {
            ring,
            sink: mono_spec,
            sink_map: mono.clone(),
            client_map: stereo.clone(),
        });
        let mut out = Vec::new();
        rec.poll(&mut out, usize::MAX).unwrap();
        assert_eq!(
            sent_samples(&out),
            [0.1, 0.2, 0.3, 0.4],
            "old ring, old shape"
        );
        // Drained, but the old mixer may still write: it waits.
        out.clear();
        rec.poll(&mut out, usize::MAX).unwrap();
        assert!(
            sent_samples(&out).is_empty(),
            "nothing until the old mixer lets go"
        );
        assert!(rec.switching());
        // The old mixer's last period, then it lets go.
        old.push(0.7).unwrap();
        old.push(0.8).unwrap();
        shared.detached.fetch_add(1, Ordering::Release);
        drop(old);
        out.clear();
        rec.poll(&mut out, usize::MAX).unwrap();
        assert_eq!(sent_samples(&out), [0.7, 0.8], "the old ring drained first");
        out.clear();
        rec.poll(&mut out, usize::MAX).unwrap();
        assert_eq!(
            sent_samples(&out),
            [0.5, 0.5, 0.6, 0.6],
            "then the new ring, mono upmixed"
        );
        assert!(!rec.switching());
    }

    #[test]
    fn record_format_negotiation_picks_pcm_and_refuses_by_name() {
        let mut s = ready(35);
        let ac3 = FormatInfo {
            encoding: 2,
            props: Proplist::new(),
        };
        let offer = [
            ac3.clone(),
            pcm(&[
                ("format.sample_format", "[ \"s16le\", \"float32le\" ]"),
                ("format.rate", "{ \"min\": 8000, \"max\": 96000 }"),
                ("format.channels", "[ 1, 2 ]"),
            ]),
        ];
        let b = call(&mut s, &create_record(2, no_spec(), NONE, &offer));
        let mut r = expect_reply(&b, 2);
        for _ in 0..4 {
            r.get_u32().unwrap();
        }
        assert_eq!(r.get_sample_spec().unwrap(), stereo_f32());
        assert_eq!(r.get_channel_map().unwrap().positions(), &[1, 2]);
        r.get_u32().unwrap();
        r.get_string().unwrap();
        r.get_bool().unwrap();
        r.get_usec().unwrap();
        let chosen = r.get_format_info().unwrap();
        assert_eq!(chosen.props.get_str("format.rate"), Some("48000"));
        r.finish().unwrap();
        // Only non-PCM: NOTSUPPORTED; unusable or malformed PCM: INVALID;
        // the connection stays (the next request is answered).
        let b = call(&mut s, &create_record(3, no_spec(), NONE, &[ac3]));
        expect_error(&b, 3, PaError::NotSupported);
        let b = call(
            &mut s,
            &create_record(
                4,
                no_spec(),
                NONE,
                &[pcm(&[("format.rate", "{ \"min\": 9 }")])],
            ),
        );
        expect_error(&b, 4, PaError::Invalid);
        let b = call(
            &mut s,
            &create_record(5, no_spec(), NONE, &[pcm(&[("format.rate", "[ 44100,")])]),
        );
        expect_error(&b, 5, PaError::Invalid);
        let b = call(&mut s, &packet(Command::GetServerInfo as u32, 6, |_| {}));
        expect_reply(&b, 6);
    }

    #[test]
    fn monitor_stream_needs_its_input_and_dies_with_it() {
        let mut s = ready(35);
        let b = call(&mut s, &create_record(2, stereo_f32(), 0, &[]));
        expect_error(&b, 2, PaError::NoEntity);
        let b = call(&mut s, &create_playback(3, 5, 2, 48_000, &[1, 2]));
        let mut r = expect_reply(&b, 3);
        let playback = r.get_u32().unwrap();
        let input = r.get_u32().unwrap();
        let b = call(&mut s, &create_record(4, stereo_f32(), input, &[]));
        let record = expect_reply(&b, 4).get_u32().unwrap();
        // The record stream's latency: the monitor's lead over the sink is
        // what the (null) output holds, not a period, so libpulse's figure
        // is not pushed below zero.
        let b = call(
            &mut s,
            &packet(Command::GetRecordLatency as u32, 5, |w| {
                w.put_u32(record).put_timeval(Timeval { sec: 1, usec: 0 });
            }),
        );
        let mut r = expect_reply(&b, 5);
        assert_eq!((r.get_usec().unwrap(), r.get_usec().unwrap()), (0, 0));
        let b = call(
            &mut s,
            &packet(Command::DeletePlaybackStream as u32, 6, |w| {
                w.put_u32(playback);
            }),
        );
        expect_reply(&b, 6);
        let mut out = Vec::new();
        s.poll_streams(&mut out, usize::MAX).unwrap();
        let mut killed = false;
        let mut frames = FrameDecoder::default();
        frames.push(&out);
        while let Some(frame) = frames.next_frame().unwrap() {
            if let Frame::Packet(p) = frame {
                let mut r = TagReader::new(&p);
                if r.get_u32().unwrap() == Command::RecordStreamKilled as u32 {
                    r.get_u32().unwrap();
                    killed = r.get_u32().unwrap() == record;
                }
            }
        }
        assert!(killed, "RECORD_STREAM_KILLED for the monitor_stream");
    }
}
