//! `module-loopback`: a source played into a sink. A source output on the
//! source (a record ring its mixer feeds) and a sink input on the sink (a
//! playback ring its mixer reads), both listed as PulseAudio lists a
//! loopback's streams, joined by an [`crate::engine::loopback::Worker`]
//! that resamples with a slowly steered ratio so the queue holds
//! `latency_msec` whatever the two clocks do.
//!
//! Arguments: `source` (default: the default source), `sink` (default:
//! the default sink), `latency_msec` (default 200, as PulseAudio's;
//! 10..=10000). PulseAudio's other loopback arguments are refused as
//! unknown. The sink may not be the one whose monitor is the source (a
//! feedback loop).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Args, ModuleError, Owned};
use crate::control::introspect::stream_gains;
use crate::control::registry::{SinkInput, SourceOutput};
use crate::control::server_info::INVALID_INDEX;
use crate::control::sinks::SinkEntry;
use crate::engine::audio::convert::PlaybackConverter;
use crate::engine::loopback::{LoopbackSpec, Worker};
use crate::engine::mixer::PlaybackInput;
use crate::engine::notice::Notice;
use crate::engine::stream::{PlaybackShared, RecordShared};
use crate::Server;
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::{CVolume, ChannelMap, Proplist, SampleSpec, VOLUME_NORM};

/// The module's name.
pub const NAME: &str = "module-loopback";

const VALID: &[&str] = &["source", "sink", "latency_msec"];

/// The default and allowed latencies, in milliseconds.
const DEFAULT_LATENCY_MS: u32 = 200;
const LATENCY_MS: std::ops::RangeInclusive<u32> = 10..=10_000;

/// A running loopback: its two streams and the worker between them.
#[derive(Debug)]
pub struct Loopback {
    input: Arc<PlaybackShared>,
    output: Arc<RecordShared>,
    worker: Worker,
}

impl Loopback {
    /// Whether its sink input (`playback`) or source output is `index`.
    pub fn owns(&self, playback: bool, index: u32) -> bool {
        if playback {
            self.input.index == index
        } else {
            self.output.index == index
        }
    }

    /// Whether either of its streams is on sink `sink` (its input) or on
    /// that sink's monitor (its output), wherever they were moved.
    pub fn touches(&self, server: &Server, sink: u32) -> bool {
        let source = server.sinks.by_index(sink).map(|e| e.source_index());
        let on_sink = server
            .registry
            .sink_inputs()
            .iter()
            .any(|(i, s)| *i == self.input.index && s.sink == sink);
        let on_source = server
            .registry
            .source_outputs()
            .iter()
            .any(|(i, s)| *i == self.output.index && Some(s.source) == source);
        on_sink || on_source
    }

    /// Stops the worker and unlists and closes both streams.
    pub fn stop(self, server: &Server) {
        self.worker.stop();
        tracing::info!(
            ratio = self.worker.stats.ratio(),
            frames = self.worker.stats.frames_out.load(Ordering::Relaxed),
            dropped = self.worker.stats.dropped.load(Ordering::Relaxed),
            // Relaxed: a counter for the log.
            underflows = self.input.underflows.load(Ordering::Relaxed),
            "loopback stopped"
        );
        // Relaxed: `closed` says "stop using this"; the Arcs keep the
        // state alive for whichever side drops last.
        self.input.closed.store(true, Ordering::Relaxed);
        self.output.closed.store(true, Ordering::Relaxed);
        server.registry.remove_sink_input(self.input.index);
        server.registry.remove_source_output(self.output.index);
    }
}

fn bad(key: &'static str, value: &str, why: impl ToString) -> ModuleError {
    ModuleError::value(NAME, key, value, why)
}

fn media_name(text: String) -> Proplist {
    let mut p = Proplist::new();
    // A constant valid key.
    let _ = p.set_str("media.name", &text);
    p
}

/// Loads a loopback.
pub fn load(server: &Server, argument: &str) -> Result<Owned, ModuleError> {
    let args = Args::parse(argument, Some(VALID)).map_err(|source| ModuleError::Args {
        module: NAME,
        source,
    })?;
    let from = match args.get("source") {
        None => server.default_source(),
        Some(n) => server
            .sinks
            .source(n)
            .ok_or_else(|| bad("source", n, "no such source"))?,
    };
    let to = match args.get("sink") {
        None => server.default_sink(),
        Some(n) => server
            .sinks
            .sink(n)
            .ok_or_else(|| bad("sink", n, "no such sink"))?,
    };
    if from.index() == to.index() {
        return Err(bad(
            "sink",
            &to.sink.name,
            "is the sink whose monitor is the source",
        ));
    }
    let latency = match args.get("latency_msec") {
        None => DEFAULT_LATENCY_MS,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|l| LATENCY_MS.contains(l))
            .ok_or_else(|| bad("latency_msec", v, format!("not in {LATENCY_MS:?}")))?,
    };
    start(server, NAME, &from, &to, latency, None).map(Owned::Loopback)
}

/// Starts a loopback from `from`'s monitor into `to` holding `latency` ms
/// (errors name `module`). `map`: the positions the sink input claims
/// for the source's channels (default the source's own map): a remap
/// sink's `master_channel_map`.
pub(super) fn start(
    server: &Server,
    module: &'static str,
    from: &SinkEntry,
    to: &SinkEntry,
    latency: u32,
    map: Option<&ChannelMap>,
) -> Result<Loopback, ModuleError> {
    let src = from.engine.config().clone();
    let dst = to.engine.config().clone();
    let channels = usize::from(src.spec.channels);
    let target_frames = (u64::from(latency) * u64::from(dst.spec.rate) / 1000) as usize;
    let frame_bytes = channels * 4;
    // What the sink input carries: f32 frames of the source's channels
    // at the sink's rate (the worker resamples; the mixer remaps).
    let carried = SampleSpec {
        format: SampleFormat::Float32Le,
        channels: src.spec.channels,
        rate: dst.spec.rate,
    };
    let init = |why: String| ModuleError::Init { module, why };
    let map = map.unwrap_or(&src.map);
    let converter =
        PlaybackConverter::new(carried, map, dst.spec.rate, &dst.map, dst.period_frames)
            .map_err(|e| init(e.to_string()))?;
    // Room for twice the target and a second more, so a burst is kept.
    let capacity = (2 * target_frames + dst.spec.rate as usize) * frame_bytes;
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    let notice = Arc::new(Notice::new(server.engine.bell().clone()));
    let out_index = server.next_source_output();
    let output = Arc::new(RecordShared::new(out_index, notice.clone(), false));
    let record = from.engine.add_record(output.clone(), None);
    let worker = match Worker::start(
        LoopbackSpec {
            channels,
            in_rate: src.spec.rate,
            out_rate: dst.spec.rate,
            chunk: src.period_frames,
            target_frames,
            rt_priority: server.rt_priority,
        },
        record,
        producer,
    ) {
        Ok(w) => w,
        Err(e) => {
            output.closed.store(true, Ordering::Relaxed);
            return Err(init(e.to_string()));
        }
    };
    let in_index = server.next_sink_input();
    let prebuf = u32::try_from(target_frames * frame_bytes).unwrap_or(u32::MAX);
    let input = Arc::new(PlaybackShared::new(in_index, notice, prebuf, false));
    let volume = |n: u8| CVolume::new(&vec![VOLUME_NORM; usize::from(n)]).unwrap_or_default();
    input
        .gains
        .set(&stream_gains(&volume(carried.channels), dst.spec.channels));
    server.registry.add_source_output(
        out_index,
        SourceOutput {
            client: INVALID_INDEX,
            spec: src.spec,
            map: src.map.clone(),
            volume: volume(src.spec.channels),
            muted: false,
            props: media_name(format!("Loopback to {}", to.sink.description)),
            direct_on_input: None,
            shared: output.clone(),
            source: from.source_index(),
            pinned: true,
        },
    );
    server.registry.add_sink_input(
        in_index,
        SinkInput {
            client: INVALID_INDEX,
            spec: carried,
            map: map.clone(),
            volume: volume(carried.channels),
            muted: false,
            props: media_name(format!("Loopback from {}", from.monitor.description)),
            shared: input.clone(),
            sink: to.index(),
            pinned: true,
        },
    );
    to.engine.add_playback(PlaybackInput {
        shared: input.clone(),
        ring: consumer,
        converter,
    });
    tracing::info!(
        source = %from.monitor.name,
        sink = %to.sink.name,
        latency_msec = latency,
        "loopback running"
    );
    Ok(Loopback {
        input,
        output,
        worker,
    })
}
