//! Stream commands (§6.5–§6.8): create and delete playback and record
//! streams, DRAIN, CORK, FLUSH, TRIGGER, PREBUF, latency queries, buffer
//! attributes, sample rates, names and proplists; and
//! [`Session::poll_streams`], which turns mixer events into notifications
//! and monitor audio into record frames.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::control::introspect::{pcm, stream_gains, update_proplist};
use crate::control::playback::{CreatePlayback, Playback};
use crate::control::record::{CreateRecord, Record};
use crate::control::registry::{facility, SinkInput, SourceOutput};
use crate::control::session::{error, reply, HandleError, Session, MAX_CLIENT_PROPS};
use crate::control::sinks::SinkEntry;
use crate::engine::audio::convert::PlaybackConverter;
use crate::engine::audio::peaks::Capture;
use crate::engine::mixer::{Engine, PlaybackInput};
use crate::engine::stream::{PlaybackShared, RecordShared};
use srb_pulse::attr;
use srb_pulse::commands::{Command, PaError, NO_TAG};
use srb_pulse::pstream::Frame;
use srb_pulse::reply;
use srb_pulse::request::Request as Req;
use srb_pulse::tagstruct::{
    CVolume, ChannelMap, FormatInfo, Proplist, SampleSpec, TagWriter, Timeval, VOLUME_NORM,
};

/// Most streams (playback and record together) one client may have.
pub const MAX_STREAMS: usize = 32;

fn now() -> Timeval {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timeval {
        sec: d.as_secs() as u32,
        usec: d.subsec_micros(),
    }
}

fn as_s64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn notify(cmd: Command, channel: u32) -> TagWriter {
    let mut w = TagWriter::command(cmd as u32, NO_TAG);
    w.put_u32(channel);
    w
}

/// A client's volume for a stream whose channel count came from format
/// negotiation: kept when it fits, otherwise its average on every channel
/// (an empty one is full volume).
fn fit_volume(v: &CVolume, channels: u8) -> CVolume {
    if v.channels() == channels {
        return v.clone();
    }
    let vals = v.values();
    let avg = if vals.is_empty() {
        VOLUME_NORM
    } else {
        (vals.iter().map(|&x| u64::from(x)).sum::<u64>() / vals.len() as u64) as u32
    };
    CVolume::new(&vec![avg; usize::from(channels)]).unwrap_or_default()
}

/// One sink period in a client's frames (`rate`, `frame` bytes each),
/// rounded up: what the mixer takes from a stream per period.
fn period_bytes(sink: &crate::engine::mixer::SinkConfig, rate: u32, frame: u32) -> u32 {
    let frames =
        (sink.period_frames as u64 * u64::from(rate)).div_ceil(u64::from(sink.spec.rate.max(1)));
    u32::try_from(frames.saturating_mul(u64::from(frame))).unwrap_or(u32::MAX)
}

impl Session {
    /// The mixer sink input `index` plays on now (srbd's own sink's if
    /// it is not listed).
    fn input_engine(&self, index: u32) -> Arc<Engine> {
        let on = self
            .server
            .registry
            .sink_inputs()
            .into_iter()
            .find(|(i, _)| *i == index);
        on.and_then(|(_, s)| self.server.sinks.by_index(s.sink))
            .map_or_else(|| self.server.engine.clone(), |e| e.engine.clone())
    }

    /// The mixer whose monitor source output `index` records now.
    fn output_engine(&self, index: u32) -> Arc<Engine> {
        let on = self
            .server
            .registry
            .source_outputs()
            .into_iter()
            .find(|(i, _)| *i == index);
        on.and_then(|(_, s)| self.server.sinks.by_source_index(s.source))
            .map_or_else(|| self.server.engine.clone(), |e| e.engine.clone())
    }

    fn stream_count(&self) -> usize {
        self.playbacks.len() + self.records.len()
    }

    /// Whether a new stream may be created: the per-client caps, the
    /// request's own validation, then the device (sink for playback, a
    /// monitor for record) by index or name, or the default if neither;
    /// the device, and whether the stream is pinned to it (it named one).
    fn admit(
        &self,
        validated: Result<(), PaError>,
        monitor: bool,
        index: u32,
        name: Option<&str>,
        packet_len: usize,
    ) -> Result<(Arc<SinkEntry>, bool), PaError> {
        if self.stream_count() >= MAX_STREAMS || packet_len > MAX_CLIENT_PROPS {
            tracing::warn!(client = self.client_index, "stream limit reached");
            return Err(PaError::TooLarge);
        }
        validated?;
        let sinks = &self.server.sinks;
        let found = match (index, name) {
            (attr::DEFAULT, None) if monitor => return Ok((self.server.default_source(), false)),
            (attr::DEFAULT, None) => return Ok((self.server.default_sink(), false)),
            (attr::DEFAULT, Some(n)) if monitor => sinks.source(n),
            (attr::DEFAULT, Some(n)) => sinks.sink(n),
            (i, _) if monitor => sinks.by_source_index(i),
            (i, _) => sinks.by_index(i),
        };
        // A name the default stands for (empty, `@DEFAULT_SINK@`) does
        // not pin the stream.
        let pinned = !matches!(
            name,
            Some("" | "@DEFAULT_SINK@" | "@DEFAULT_SOURCE@" | "@DEFAULT_MONITOR@")
        );
        found.map(|e| (e, pinned)).ok_or(PaError::NoEntity)
    }

    /// Format negotiation (playback from v21, record from v22; the
    /// decoders read no formats before): a request with no valid sample
    /// spec but a list of formats gets the first usable PCM entry as its
    /// spec, map and format (`None`: nothing to negotiate).
    /// `NOTSUPPORTED` when no entry is PCM, `INVALID` when none is usable.
    /// The device's spec and map are the ones offered (the device the
    /// request names, else the default; an unknown one is refused later,
    /// by [`Session::admit`]).
    fn negotiate(
        &self,
        formats: &[FormatInfo],
        spec: &SampleSpec,
        kind: &str,
        device: (u32, Option<&str>),
    ) -> Result<Option<(SampleSpec, ChannelMap, FormatInfo)>, PaError> {
        if formats.is_empty() || spec.check().is_ok() {
            return Ok(None);
        }
        let record = kind == "record";
        let engine = self
            .server
            .sinks
            .lookup(record, device.0, device.1)
            .map_or_else(|| self.server.engine.clone(), |e| e.engine.clone());
        let sink = engine.config();
        match srb_pulse::format::negotiate(formats, &sink.spec, &sink.map) {
            Ok(chosen) => {
                tracing::debug!(client = self.client_index, kind, spec = ?chosen.0, "format negotiated");
                Ok(Some(chosen))
            }
            Err(e) => {
                tracing::info!(
                    client = self.client_index,
                    kind,
                    formats = formats.len(),
                    ?e,
                    "stream refused: no usable format"
                );
                Err(e)
            }
        }
    }

    fn create_playback(
        &mut self,
        tag: u32,
        mut c: CreatePlayback,
        version: u32,
        packet_len: usize,
    ) -> Result<TagWriter, HandleError> {
        let device = (c.sink_index, c.sink_name.as_deref());
        let chosen = match self.negotiate(&c.formats, &c.spec, "playback", device) {
            Ok(Some((spec, map, f))) => {
                c.spec = spec;
                c.map = map;
                c.volume = fit_volume(&c.volume, spec.channels);
                Some(f)
            }
            Ok(None) => None,
            Err(e) => return Ok(error(tag, e)),
        };
        let checked = c.validate();
        let (device, pinned) = match self.admit(
            checked,
            false,
            c.sink_index,
            c.sink_name.as_deref(),
            packet_len,
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(client = self.client_index, spec = ?c.spec, ?e, "playback stream refused");
                return Ok(error(tag, e));
            }
        };
        let engine = device.engine.clone();
        let frame = c.spec.frame_size().unwrap_or(1) as u32;
        let a = attr::playback_for_period(
            attr::fix_playback(
                c.maxlength,
                c.tlength,
                c.prebuf,
                c.minreq,
                c.spec.rate,
                frame,
            ),
            period_bytes(engine.config(), c.spec.rate, frame),
            frame,
        );
        let sink = engine.config();
        let converter = match PlaybackConverter::new(
            c.spec,
            &c.map,
            sink.spec.rate,
            &sink.map,
            sink.period_frames,
        ) {
            Ok(conv) => conv,
            Err(e) => {
                tracing::warn!(client = self.client_index, %e, "no converter for stream");
                return Ok(error(tag, PaError::NotSupported));
            }
        };
        let index = self.server.next_sink_input();
        let shared = Arc::new(PlaybackShared::new(
            index,
            self.notice.clone(),
            a.prebuf,
            c.corked,
        ));
        let volume = if c.volume_set {
            c.volume.clone()
        } else {
            CVolume::new(&vec![VOLUME_NORM; usize::from(c.spec.channels)]).unwrap_or_default()
        };
        let muted = c.muted_set && c.start_muted;
        shared.gains.set(&stream_gains(&volume, sink.spec.channels));
        shared.gains.set_muted(muted);
        let (producer, consumer) =
            rtrb::RingBuffer::new(crate::control::playback::ring_capacity(&a));
        self.server.registry.add_sink_input(
            index,
            SinkInput {
                client: self.client_index,
                spec: c.spec,
                map: c.map.clone(),
                volume,
                muted,
                props: c.props.clone(),
                shared: shared.clone(),
                sink: device.index(),
                pinned,
            },
        );
        engine.add_playback(PlaybackInput {
            shared: shared.clone(),
            ring: consumer,
            converter,
        });
        let channel = self.next_playback_channel;
        self.next_playback_channel = self.next_playback_channel.wrapping_add(1);
        tracing::info!(
            client = self.client_index,
            channel,
            index,
            spec = ?c.spec,
            tlength = a.tlength,
            prebuf = a.prebuf,
            minreq = a.minreq,
            "playback stream created"
        );
        let mut playback = Playback::new(channel, c.spec, a, c.variable_rate, shared, producer);
        let buffers = &self.server.engine.shared().buffers;
        playback.buffer = Some(buffers.lease(crate::control::playback::ring_capacity(&a) as u64));
        self.playbacks.insert(channel, playback);
        let mut w = reply(tag);
        reply::StreamCreated {
            channel,
            index,
            missing: Some(a.tlength),
            attr: &[a.maxlength, a.tlength, a.prebuf, a.minreq],
            sample_spec: c.spec,
            channel_map: &c.map,
            device_index: device.index(),
            device_name: &device.sink.name,
            suspended: false,
            device_latency_usec: engine.period_usec(),
            format: chosen.as_ref().unwrap_or(pcm()),
        }
        .encode(&mut w, version, false);
        Ok(w)
    }

    fn create_record(
        &mut self,
        tag: u32,
        mut c: CreateRecord,
        version: u32,
        packet_len: usize,
    ) -> Result<TagWriter, HandleError> {
        let device = (c.source_index, c.source_name.as_deref());
        let chosen = match self.negotiate(&c.formats, &c.spec, "record", device) {
            Ok(Some((spec, map, f))) => {
                c.spec = spec;
                c.map = map;
                c.volume = c.volume.map(|v| fit_volume(&v, spec.channels));
                Some(f)
            }
            Ok(None) => None,
            Err(e) => return Ok(error(tag, e)),
        };
        let checked = c.validate();
        let (mut device, pinned) = match self.admit(
            checked,
            true,
            c.source_index,
            c.source_name.as_deref(),
            packet_len,
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(client = self.client_index, spec = ?c.spec, ?e, "record stream refused");
                return Ok(error(tag, e));
            }
        };
        // `monitor_stream`: the sink input must exist (PulseAudio answers
        // NOENTITY); the stream records it alone.
        let tap = (c.direct_on_input != attr::DEFAULT).then_some(c.direct_on_input);
        if let Some(input) = tap {
            let reg = &self.server.registry;
            let on = reg.sink_inputs().into_iter().find(|(i, _)| *i == input);
            match on.and_then(|(_, s)| self.server.sinks.by_index(s.sink)) {
                // It records from the sink that input plays on.
                Some(e) => device = e,
                None => {
                    tracing::debug!(
                        client = self.client_index,
                        input,
                        "record stream refused: no such sink input"
                    );
                    return Ok(error(tag, PaError::NoEntity));
                }
            }
        }
        let engine = device.engine.clone();
        let frame = c.spec.frame_size().unwrap_or(1) as u32;
        let a = attr::record_for_period(
            attr::fix_record(c.maxlength, c.fragsize, c.spec.rate, frame),
            period_bytes(engine.config(), c.spec.rate, frame),
            frame,
        );
        let sink = engine.config();
        let converter = match Capture::new(c.peak_detect, sink.spec.rate, &sink.map, c.spec, &c.map)
        {
            Ok(conv) => conv,
            Err(e) => {
                tracing::warn!(client = self.client_index, %e, "no converter for stream");
                return Ok(error(tag, PaError::NotSupported));
            }
        };
        let index = self.server.next_source_output();
        let shared = Arc::new(RecordShared::new(index, self.notice.clone(), c.corked));
        let volume = c.volume.clone().unwrap_or_else(|| {
            CVolume::new(&vec![VOLUME_NORM; usize::from(c.spec.channels)]).unwrap_or_default()
        });
        let muted = c.muted.unwrap_or(false);
        shared.gains.set(&stream_gains(&volume, sink.spec.channels));
        shared.gains.set_muted(muted);
        self.server.registry.add_source_output(
            index,
            SourceOutput {
                client: self.client_index,
                spec: c.spec,
                map: c.map.clone(),
                volume,
                muted,
                props: c.props.clone(),
                direct_on_input: tap,
                shared: shared.clone(),
                source: device.source_index(),
                pinned,
            },
        );
        let ring = engine.add_record(shared.clone(), tap);
        let channel = self.next_record_channel;
        self.next_record_channel = self.next_record_channel.wrapping_add(1);
        tracing::info!(
            client = self.client_index,
            channel,
            index,
            spec = ?c.spec,
            fragsize = a.fragsize,
            ?tap,
            peak_detect = c.peak_detect,
            "record stream created"
        );
        let mut record = Record::new(channel, c.spec, a, shared, ring, converter, &sink.spec)
            .with_peak_detect(c.peak_detect);
        record.buffer = Some(
            self.server
                .engine
                .shared()
                .buffers
                .lease(record.ring_bytes()),
        );
        self.records.insert(channel, record);
        let mut w = reply(tag);
        reply::StreamCreated {
            channel,
            index,
            missing: None,
            attr: &[a.maxlength, a.fragsize],
            sample_spec: c.spec,
            channel_map: &c.map,
            device_index: device.source_index(),
            device_name: &device.monitor.name,
            suspended: false,
            device_latency_usec: engine.period_usec(),
            format: chosen.as_ref().unwrap_or(pcm()),
        }
        .encode(&mut w, version, true);
        Ok(w)
    }

    fn delete_playback(&mut self, channel: u32) -> bool {
        match self.playbacks.remove(&channel) {
            Some(p) => {
                self.server.registry.remove_sink_input(p.shared.index);
                tracing::info!(
                    client = self.client_index,
                    channel,
                    "playback stream deleted"
                );
                true
            }
            None => false,
        }
    }

    fn delete_record(&mut self, channel: u32) -> bool {
        match self.records.remove(&channel) {
            Some(r) => {
                self.server.registry.remove_source_output(r.shared.index);
                tracing::info!(client = self.client_index, channel, "record stream deleted");
                true
            }
            None => false,
        }
    }

    /// Handles a stream command (its row in
    /// [`crate::control::dispatch::COMMANDS`]); the reply to send now, if any
    /// (DRAIN replies later, from [`Session::poll_streams`]).
    pub(super) fn stream_command(
        &mut self,
        cmd: Command,
        tag: u32,
        req: Req,
        version: u32,
        packet_len: usize,
    ) -> Result<Option<TagWriter>, HandleError> {
        use Command::*;
        let req = match req {
            Req::CreatePlayback(c) => {
                return self.create_playback(tag, *c, version, packet_len).map(Some)
            }
            Req::CreateRecord(c) => {
                return self.create_record(tag, *c, version, packet_len).map(Some)
            }
            req => req,
        };
        // The table pairs each command with its decoder: a request without
        // a channel here is never reached, and answered if it were.
        let Some(channel) = req.channel() else {
            return Ok(self.unsupported(cmd, tag));
        };
        let playback_cmd = matches!(
            cmd,
            DeletePlaybackStream
                | DrainPlaybackStream
                | GetPlaybackLatency
                | CorkPlaybackStream
                | FlushPlaybackStream
                | TriggerPlaybackStream
                | PrebufPlaybackStream
                | SetPlaybackStreamBufferAttr
                | UpdatePlaybackStreamSampleRate
                | SetPlaybackStreamName
                | UpdatePlaybackStreamProplist
                | RemovePlaybackStreamProplist
        );
        let known = if playback_cmd {
            self.playbacks.contains_key(&channel)
        } else {
            self.records.contains_key(&channel)
        };
        // The whole request was decoded before this point, so a malformed
        // one closed the connection whether or not the stream exists.
        let w = match cmd {
            DeletePlaybackStream | DeleteRecordStream => {
                let gone = if cmd == DeletePlaybackStream {
                    self.delete_playback(channel)
                } else {
                    self.delete_record(channel)
                };
                if gone {
                    reply(tag)
                } else {
                    error(tag, PaError::NoEntity)
                }
            }
            DrainPlaybackStream => match self.playbacks.get_mut(&channel) {
                Some(p) => {
                    if p.drain(tag) {
                        return Ok(None);
                    }
                    tracing::warn!(
                        client = self.client_index,
                        channel,
                        "too many pending drains"
                    );
                    error(tag, PaError::TooLarge)
                }
                None => error(tag, PaError::NoEntity),
            },
            GetPlaybackLatency | GetRecordLatency => {
                let Req::GetLatency { client_now, .. } = req else {
                    return Ok(self.unsupported(cmd, tag));
                };
                if cmd == GetPlaybackLatency {
                    let Some(p) = self.playbacks.get(&channel) else {
                        return Ok(Some(error(tag, PaError::NoEntity)));
                    };
                    // The read index a client sees runs through gaps a
                    // stream without prebuffering plays as silence.
                    // Relaxed: status counters and flags.
                    let read = p.read_index() + p.shared.silence.load(Ordering::Relaxed);
                    // Running, as PulseAudio's sink input state: uncorked
                    // and not waiting for its prebuffer (an underrun does
                    // not stop the clock).
                    let playing = !p.shared.corked.load(Ordering::Relaxed)
                        && !p.shared.prebuffering.load(Ordering::Relaxed);
                    let mut w = reply(tag);
                    reply::Latency {
                        device_usec: self.input_engine(p.shared.index).sink_latency_usec(),
                        other_usec: 0,
                        playing,
                        client_now,
                        server_now: now(),
                        write_index: as_s64(p.written()),
                        read_index: as_s64(read),
                        underrun_for: Some(if playing { (0, read) } else { (read, 0) }),
                    }
                    .encode(&mut w, version);
                    w
                } else {
                    let Some(rec) = self.records.get(&channel) else {
                        return Ok(Some(error(tag, PaError::NoEntity)));
                    };
                    // Relaxed: a status flag.
                    let corked = rec.shared.corked.load(Ordering::Relaxed);
                    // The first figure is the monitored sink's latency
                    // beyond the monitor (libpulse subtracts it), the
                    // second the source's own: the mixer copies each
                    // period to the ring as it renders it, so nothing
                    // captured waits outside the queue counted in the
                    // indexes below.
                    let mut w = reply(tag);
                    reply::Latency {
                        device_usec: self.output_engine(rec.shared.index).monitor_lead_usec(),
                        other_usec: 0,
                        playing: !corked,
                        client_now,
                        server_now: now(),
                        write_index: as_s64(rec.sent() + rec.queued()),
                        read_index: as_s64(rec.sent()),
                        underrun_for: None,
                    }
                    .encode(&mut w, version);
                    w
                }
            }
            CorkPlaybackStream | CorkRecordStream => {
                let Req::Cork { cork, .. } = req else {
                    return Ok(self.unsupported(cmd, tag));
                };
                if cmd == CorkPlaybackStream {
                    match self.playbacks.get(&channel) {
                        Some(p) => {
                            let was = p.shared.corked.swap(cork, Ordering::AcqRel);
                            let draining = p.shared.drain_seq.load(Ordering::Relaxed)
                                != p.shared.drained_seq.load(Ordering::Relaxed);
                            if was && !cork && !draining {
                                // Uncorking prebuffers again, as in PulseAudio.
                                p.shared.prebuf_seq.fetch_add(1, Ordering::Release);
                            }
                            self.server.registry.corked(
                                facility::SINK_INPUT,
                                p.shared.index,
                                was != cork,
                            );
                            reply(tag)
                        }
                        None => error(tag, PaError::NoEntity),
                    }
                } else {
                    match self.records.get(&channel) {
                        Some(rec) => {
                            // Relaxed: a flag; the mixer reads it each period.
                            let was = rec.shared.corked.swap(cork, Ordering::Relaxed);
                            self.server.registry.corked(
                                facility::SOURCE_OUTPUT,
                                rec.shared.index,
                                was != cork,
                            );
                            reply(tag)
                        }
                        None => error(tag, PaError::NoEntity),
                    }
                }
            }
            FlushPlaybackStream
            | FlushRecordStream
            | TriggerPlaybackStream
            | PrebufPlaybackStream => {
                if !known {
                    error(tag, PaError::NoEntity)
                } else {
                    match cmd {
                        FlushPlaybackStream => {
                            if let Some(p) = self.playbacks.get_mut(&channel) {
                                p.flush();
                            }
                        }
                        FlushRecordStream => {
                            if let Some(rec) = self.records.get_mut(&channel) {
                                rec.flush();
                            }
                        }
                        TriggerPlaybackStream => {
                            if let Some(p) = self.playbacks.get(&channel) {
                                p.shared.trigger_seq.fetch_add(1, Ordering::Release);
                            }
                        }
                        _ => {
                            if let Some(p) = self.playbacks.get(&channel) {
                                p.shared.prebuf_seq.fetch_add(1, Ordering::Release);
                            }
                        }
                    }
                    reply(tag)
                }
            }
            SetPlaybackStreamBufferAttr => {
                let Req::SetPlaybackBufferAttr {
                    maxlength,
                    tlength,
                    prebuf,
                    minreq,
                    ..
                } = req
                else {
                    return Ok(self.unsupported(cmd, tag));
                };
                let engine = match self.playbacks.get(&channel) {
                    Some(p) => self.input_engine(p.shared.index),
                    None => self.server.engine.clone(),
                };
                let period = engine.period_usec();
                let sink = engine.config();
                match self.playbacks.get_mut(&channel) {
                    None => error(tag, PaError::NoEntity),
                    Some(p) => {
                        let frame = p.spec.frame_size().unwrap_or(1) as u32;
                        let a = attr::playback_for_period(
                            attr::fix_playback(
                                maxlength,
                                tlength,
                                prebuf,
                                minreq,
                                p.spec.rate,
                                frame,
                            ),
                            period_bytes(sink, p.spec.rate, frame),
                            frame,
                        );
                        p.set_attr(a);
                        let a = p.attr;
                        let mut w = reply(tag);
                        w.put_u32(a.maxlength)
                            .put_u32(a.tlength)
                            .put_u32(a.prebuf)
                            .put_u32(a.minreq);
                        if version >= 13 {
                            w.put_usec(period);
                        }
                        w
                    }
                }
            }
            SetRecordStreamBufferAttr => {
                let Req::SetRecordBufferAttr {
                    maxlength,
                    fragsize,
                    ..
                } = req
                else {
                    return Ok(self.unsupported(cmd, tag));
                };
                let engine = match self.records.get(&channel) {
                    Some(r) => self.output_engine(r.shared.index),
                    None => self.server.engine.clone(),
                };
                let period = engine.period_usec();
                let sink = engine.config();
                match self.records.get_mut(&channel) {
                    None => error(tag, PaError::NoEntity),
                    Some(rec) => {
                        let frame = rec.spec.frame_size().unwrap_or(1) as u32;
                        rec.attr = attr::record_for_period(
                            attr::fix_record(maxlength, fragsize, rec.spec.rate, frame),
                            period_bytes(sink, rec.spec.rate, frame),
                            frame,
                        );
                        let mut w = reply(tag);
                        w.put_u32(rec.attr.maxlength).put_u32(rec.attr.fragsize);
                        if version >= 13 {
                            w.put_usec(period);
                        }
                        w
                    }
                }
            }
            UpdatePlaybackStreamSampleRate | UpdateRecordStreamSampleRate => {
                let Req::UpdateSampleRate { rate, .. } = req else {
                    return Ok(self.unsupported(cmd, tag));
                };
                self.update_rate(cmd, tag, channel, rate)
            }
            SetPlaybackStreamName | SetRecordStreamName => {
                let Req::SetStreamName { name, .. } = req else {
                    return Ok(self.unsupported(cmd, tag));
                };
                if !known {
                    error(tag, PaError::NoEntity)
                } else {
                    match self.edit_props(playback_cmd, channel, |p| {
                        p.set_str("media.name", &name).map_err(|_| PaError::Invalid)
                    }) {
                        Ok(()) => reply(tag),
                        Err(e) => error(tag, e),
                    }
                }
            }
            UpdatePlaybackStreamProplist | UpdateRecordStreamProplist => {
                let Req::UpdateStreamProplist { mode, props, .. } = req else {
                    return Ok(self.unsupported(cmd, tag));
                };
                if packet_len > MAX_CLIENT_PROPS {
                    error(tag, PaError::TooLarge)
                } else if !known {
                    error(tag, PaError::NoEntity)
                } else {
                    match self
                        .edit_props(playback_cmd, channel, |p| update_proplist(p, mode, &props))
                    {
                        Ok(()) => reply(tag),
                        Err(e) => error(tag, e),
                    }
                }
            }
            RemovePlaybackStreamProplist | RemoveRecordStreamProplist => {
                let Req::RemoveStreamProplist { keys, .. } = req else {
                    return Ok(self.unsupported(cmd, tag));
                };
                if !known {
                    error(tag, PaError::NoEntity)
                } else {
                    let _ = self.edit_props(playback_cmd, channel, |p| {
                        for k in &keys {
                            p.remove(k);
                        }
                        Ok(())
                    });
                    reply(tag)
                }
            }
            _ => return Ok(self.unsupported(cmd, tag)),
        };
        Ok(Some(w))
    }

    /// Edits the registry proplist of this client's stream `channel`.
    fn edit_props(
        &self,
        playback: bool,
        channel: u32,
        f: impl FnOnce(&mut Proplist) -> Result<(), PaError>,
    ) -> Result<(), PaError> {
        let reg = &self.server.registry;
        let done = if playback {
            let index = self.playbacks.get(&channel).map(|p| p.shared.index);
            index.and_then(|i| reg.update_sink_input(i, |s| f(&mut s.props)))
        } else {
            let index = self.records.get(&channel).map(|r| r.shared.index);
            index.and_then(|i| reg.update_source_output(i, |s| f(&mut s.props)))
        };
        done.unwrap_or(Err(PaError::NoEntity))
    }

    fn update_rate(&mut self, cmd: Command, tag: u32, channel: u32, rate: u32) -> TagWriter {
        if rate == 0 || rate > srb_pulse::tagstruct::RATE_MAX {
            return error(tag, PaError::Invalid);
        }
        if cmd == Command::UpdatePlaybackStreamSampleRate {
            let Some(p) = self.playbacks.get_mut(&channel) else {
                return error(tag, PaError::NoEntity);
            };
            if !p.variable_rate {
                return error(tag, PaError::BadState);
            }
            let mut spec = p.spec;
            spec.rate = rate;
            let found = self
                .server
                .registry
                .sink_inputs()
                .into_iter()
                .find(|(i, _)| *i == p.shared.index)
                .and_then(|(_, s)| Some((s.map, self.server.sinks.by_index(s.sink)?)));
            let Some((map, device)) = found else {
                return error(tag, PaError::NoEntity);
            };
            let sink = device.engine.config();
            match PlaybackConverter::new(spec, &map, sink.spec.rate, &sink.map, sink.period_frames)
            {
                Ok(conv) => {
                    device.engine.set_converter(p.shared.index, conv);
                    p.spec = spec;
                    let index = p.shared.index;
                    self.server.registry.update_sink_input(index, |s| {
                        s.spec = spec;
                        Ok(())
                    });
                    reply(tag)
                }
                Err(_) => error(tag, PaError::Invalid),
            }
        } else {
            let Some(rec) = self.records.get_mut(&channel) else {
                return error(tag, PaError::NoEntity);
            };
            if rec.switching() {
                // Moved to a sink of another shape and not yet on its
                // ring: the converter below would be for the wrong audio.
                return error(tag, PaError::BadState);
            }
            let mut spec = rec.spec;
            spec.rate = rate;
            let index = rec.shared.index;
            let found = self
                .server
                .registry
                .source_outputs()
                .into_iter()
                .find(|(i, _)| *i == index)
                .and_then(|(_, s)| Some((s.map, self.server.sinks.by_source_index(s.source)?)));
            let Some((map, device)) = found else {
                return error(tag, PaError::NoEntity);
            };
            let sink = device.engine.config();
            match Capture::new(rec.peak_detect, sink.spec.rate, &sink.map, spec, &map) {
                Ok(conv) => {
                    rec.set_converter(spec, conv);
                    self.server.registry.update_source_output(index, |s| {
                        s.spec = spec;
                        Ok(())
                    });
                    reply(tag)
                }
                Err(_) => error(tag, PaError::Invalid),
            }
        }
    }

    /// PLAYBACK_STREAM_MOVED / RECORD_STREAM_MOVED (v12+) for each stream
    /// moved since last told: its new device's index and name, whether it
    /// is suspended, and (v13+) the buffer attributes and the device's
    /// configured latency, as PulseAudio sends them.
    fn tell_moves(&mut self, version: u32, out: &mut Vec<u8>) -> Result<(), HandleError> {
        let sinks = &self.server.sinks;
        for (channel, p) in self.playbacks.iter_mut() {
            // Acquire: pairs with the mover's Release (the registry says
            // where the stream is now).
            let moved = p.shared.moved.load(Ordering::Acquire);
            if moved == p.moved_seen {
                continue;
            }
            p.moved_seen = moved;
            let index = p.shared.index;
            let on = self
                .server
                .registry
                .sink_inputs()
                .into_iter()
                .find(|(i, _)| *i == index);
            let Some(e) = on.and_then(|(_, s)| sinks.by_index(s.sink)) else {
                continue;
            };
            if version < 12 {
                continue;
            }
            let mut w = notify(Command::PlaybackStreamMoved, *channel);
            w.put_u32(e.index())
                .put_string(Some(&e.sink.name))
                .put_bool(e.state(false).suspended);
            if version >= 13 {
                let a = p.attr;
                w.put_u32(a.maxlength)
                    .put_u32(a.tlength)
                    .put_u32(a.prebuf)
                    .put_u32(a.minreq)
                    .put_usec(e.engine.period_usec());
            }
            Frame::Packet(w.into_bytes()).encode_into(out)?;
        }
        for (channel, r) in self.records.iter_mut() {
            // Acquire: as above.
            let moved = r.shared.moved.load(Ordering::Acquire);
            if moved == r.moved_seen {
                continue;
            }
            r.moved_seen = moved;
            let index = r.shared.index;
            let on = self
                .server
                .registry
                .source_outputs()
                .into_iter()
                .find(|(i, _)| *i == index);
            let Some(e) = on.and_then(|(_, s)| sinks.by_source_index(s.source)) else {
                continue;
            };
            if version < 12 {
                continue;
            }
            let mut w = notify(Command::RecordStreamMoved, *channel);
            w.put_u32(e.source_index())
                .put_string(Some(&e.monitor.name))
                .put_bool(e.state(true).suspended);
            if version >= 13 {
                w.put_u32(r.attr.maxlength)
                    .put_u32(r.attr.fragsize)
                    .put_usec(e.engine.period_usec());
            }
            Frame::Packet(w.into_bytes()).encode_into(out)?;
        }
        Ok(())
    }

    /// Sends what the streams have to say: kills, STARTED, UNDERFLOW,
    /// drain replies, REQUESTs, record audio and subscription events.
    pub fn poll_streams(
        &mut self,
        out: &mut Vec<u8>,
        audio_room: usize,
    ) -> Result<(), HandleError> {
        let Some(version) = self.version() else {
            return Ok(());
        };
        let killed: Vec<u32> = self
            .playbacks
            .iter()
            .filter(|(_, p)| p.shared.killed.load(Ordering::Relaxed))
            .map(|(c, _)| *c)
            .collect();
        for channel in killed {
            self.delete_playback(channel);
            Frame::Packet(notify(Command::PlaybackStreamKilled, channel).into_bytes())
                .encode_into(out)?;
        }
        let killed: Vec<u32> = self
            .records
            .iter()
            .filter(|(_, r)| r.shared.killed.load(Ordering::Relaxed))
            .map(|(c, _)| *c)
            .collect();
        for channel in killed {
            self.delete_record(channel);
            Frame::Packet(notify(Command::RecordStreamKilled, channel).into_bytes())
                .encode_into(out)?;
        }
        self.tell_moves(version, out)?;
        let mut packets = Vec::new();
        for p in self.playbacks.values_mut() {
            p.poll(version, &mut packets);
        }
        for w in packets {
            Frame::Packet(w.into_bytes()).encode_into(out)?;
        }
        for rec in self.records.values_mut() {
            rec.poll(out, audio_room)?;
        }
        for (event, index) in self.server.registry.take_events(self.client_index) {
            let mut w = TagWriter::command(Command::SubscribeEvent as u32, NO_TAG);
            w.put_u32(event).put_u32(index);
            Frame::Packet(w.into_bytes()).encode_into(out)?;
        }
        Ok(())
    }
}
