//! `module-null-sink`: a virtual sink with its own mixer clocked by its
//! own timerfd, whose audio goes nowhere but to its monitor source (the
//! usual recording and streaming setup). Arguments, as PulseAudio's:
//! `sink_name` (default `null`), `sink_properties` (a property list,
//! `device.description` among them), `format`, `rate`, `channels`,
//! `channel_map` (default: srbd's own sink's spec and the usual map for
//! the channel count).

use std::sync::Arc;

use super::{Args, ModuleError, Owned};
use crate::control::server_info::Device;
use crate::control::sinks::SinkEntry;
use crate::engine::mixer::{Engine, EngineOptions, SinkConfig, MAX_PERIOD, MIN_PERIOD};
use crate::engine::output::OutputSpec;
use crate::Server;
use srb_pulse::tagstruct::{CVolume, ChannelMap, Proplist, SampleSpec, VOLUME_NORM};

/// The module's name.
pub const NAME: &str = "module-null-sink";

/// The arguments it takes.
const VALID: &[&str] = &[
    "sink_name",
    "sink_properties",
    "format",
    "rate",
    "channels",
    "channel_map",
];

/// The sink's spec and map from the arguments over `base`.
pub(super) fn spec_and_map(
    module: &'static str,
    args: &Args,
    base: SampleSpec,
) -> Result<(SampleSpec, ChannelMap), ModuleError> {
    let bad = |key, value: &str, why: String| ModuleError::value(module, key, value, why);
    let mut spec = base;
    if let Some(f) = args.get("format") {
        spec.format = crate::config::parse_format(f)
            .ok_or_else(|| bad("format", f, "unknown format".into()))?;
    }
    if let Some(r) = args.get("rate") {
        spec.rate = r
            .parse::<u32>()
            .map_err(|e| bad("rate", r, e.to_string()))?;
    }
    let map = match args.get("channel_map") {
        Some(m) => {
            let map = srb_pulse::format::parse_channel_map(m)
                .ok_or_else(|| bad("channel_map", m, "unknown channel map".into()))?;
            spec.channels = map.channels();
            Some(map)
        }
        None => None,
    };
    if let Some(c) = args.get("channels") {
        let n = c
            .parse::<u8>()
            .map_err(|e| bad("channels", c, e.to_string()))?;
        if map.as_ref().is_some_and(|m| m.channels() != n) {
            return Err(bad("channels", c, "disagrees with channel_map".into()));
        }
        spec.channels = n;
    }
    spec.check().map_err(|e| {
        let key = if args.get("rate").is_some() {
            "rate"
        } else {
            "channels"
        };
        bad(key, args.get(key).unwrap_or(""), e.to_string())
    })?;
    let map = match map {
        Some(m) => m,
        None => crate::config::default_map(spec.channels).ok_or_else(|| {
            bad(
                "channels",
                args.get("channels").unwrap_or(""),
                "no map".into(),
            )
        })?,
    };
    Ok((spec, map))
}

pub(super) fn props(pairs: &[(&str, &str)], extra: &Args) -> Proplist {
    let mut p = Proplist::new();
    for (k, v) in pairs.iter().copied().chain(extra.iter()) {
        if let Err(e) = p.set_str(k, v) {
            tracing::warn!(module = NAME, key = k, %e, "property refused");
        }
    }
    p
}

/// Loads a null sink as module `module`.
pub fn load(server: &Server, module: u32, argument: &str) -> Result<Owned, ModuleError> {
    let args = Args::parse(argument, Some(VALID)).map_err(|source| ModuleError::Args {
        module: NAME,
        source,
    })?;
    let name = args.get("sink_name").unwrap_or("null").to_owned();
    if !super::valid_name(&name) {
        return Err(ModuleError::value(
            NAME,
            "sink_name",
            &name,
            "not 1 to 128 printable characters without spaces",
        ));
    }
    if server
        .sinks
        .sink(&name)
        .is_some_and(|e| e.sink.name == name)
    {
        return Err(ModuleError::value(
            NAME,
            "sink_name",
            &name,
            "a sink of that name exists",
        ));
    }
    let extra = match args.get("sink_properties") {
        Some(p) => {
            Args::parse(p, None).map_err(|e| ModuleError::value(NAME, "sink_properties", p, e))?
        }
        None => Args::default(),
    };
    let (spec, map) = spec_and_map(NAME, &args, server.info.sink.sample_spec)?;
    let description = extra
        .get("device.description")
        .unwrap_or("Null Output")
        .to_owned();
    let entry = create(
        server,
        NAME,
        module,
        &name,
        &description,
        (spec, map),
        &extra,
    )?;
    Ok(Owned::Sink(entry.index()))
}

/// Makes and lists a sink called `name` with its own mixer, clocked by
/// its own timerfd, whose audio goes only to its monitor (null sinks, and
/// remap sinks, which feed their master from that monitor).
pub(super) fn create(
    server: &Server,
    module_name: &'static str,
    module: u32,
    name: &str,
    description: &str,
    (spec, map): (SampleSpec, ChannelMap),
    extra: &Args,
) -> Result<Arc<SinkEntry>, ModuleError> {
    let shared0 = server.engine.shared();
    let engine = Engine::start_with(
        SinkConfig {
            spec,
            map: map.clone(),
            period_frames: (spec.rate as usize / 100).clamp(MIN_PERIOD, MAX_PERIOD),
            output: OutputSpec::Null,
        },
        EngineOptions {
            rt_priority: server.rt_priority,
            bell: Some(server.engine.bell().clone()),
            buffers: Some(shared0.buffers.clone()),
            ..EngineOptions::default()
        },
    )
    .map_err(|e| ModuleError::Init {
        module: module_name,
        why: e.to_string(),
    })?;
    let (sink_index, source_index) = server.sinks.allocate();
    let volume = CVolume::new(&vec![VOLUME_NORM; usize::from(spec.channels)]).unwrap_or_default();
    let monitor_description = format!("Monitor of {description}");
    let sink = Device {
        index: sink_index,
        name: name.to_owned(),
        description: description.to_owned(),
        sample_spec: spec,
        channel_map: map.clone(),
        volume: volume.clone(),
        props: props(
            &[
                ("device.description", description),
                ("device.class", "abstract"),
                ("device.icon_name", "audio-card"),
            ],
            extra,
        ),
    };
    let monitor = Device {
        index: source_index,
        name: format!("{name}.monitor"),
        description: monitor_description.clone(),
        sample_spec: spec,
        channel_map: map,
        volume,
        props: props(
            &[
                ("device.description", &monitor_description),
                ("device.class", "monitor"),
                ("device.icon_name", "audio-input-microphone"),
            ],
            &Args::default(),
        ),
    };
    let entry = Arc::new(SinkEntry::new(sink, monitor, Arc::new(engine), module));
    server.add_sink(entry.clone());
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(SampleSpec, Vec<u8>), ModuleError> {
        let base = crate::control::server_info::default_sample_spec();
        let args = Args::parse(s, Some(VALID)).unwrap();
        spec_and_map(NAME, &args, base).map(|(s, m)| (s, m.positions().to_vec()))
    }

    #[test]
    fn spec_arguments() {
        let (s, m) = parse("").unwrap();
        assert_eq!((s.rate, s.channels, m), (48_000, 2, vec![1, 2]));
        let (s, m) = parse("format=s16le rate=44100 channels=1").unwrap();
        assert_eq!(
            (s.format.name(), s.rate, s.channels, m),
            ("s16le", 44_100, 1, vec![0])
        );
        let (s, _) = parse("channel_map=front-left,front-right,rear-left,rear-right").unwrap();
        assert_eq!(s.channels, 4);
        for bad in [
            "rate=abc",
            "rate=0",
            "format=s17",
            "channels=0",
            "channels=3 channel_map=mono",
            "channel_map=nowhere",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
