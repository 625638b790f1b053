//! `--input alsa[:DEVICE]`: a capture source on an ALSA device, named
//! `alsa_input.DEVICE` as PulseAudio's `module-alsa-source` names it
//! (characters a name may not hold become `_`), described and with
//! properties as PulseAudio shows them ([`super::alsa_props`]).
//!
//! It is a capture engine ([`EngineOptions::capture`]: the device's
//! periods delivered to record streams as a monitor's are, so format
//! conversion and resampling per stream are the monitor's) listed as a
//! [`SinkEntry::capture`] entry: a source of its own, not a monitor;
//! `parec --device=alsa_input.…`, `set-default-source`, volume and mute
//! (applied in software) work as on any source.

use std::sync::Arc;

use srb_pulse::tagstruct::{CVolume, VOLUME_NORM};

use crate::control::alsa_props;
use crate::control::server_info::Device;
use crate::control::sinks::SinkEntry;
use crate::engine::mixer::{Engine, EngineError, EngineOptions, SinkConfig};
use crate::engine::output::OutputSpec;
use crate::Server;

/// The source name PulseAudio gives a capture device: `alsa_input.` and
/// the device name with every character outside `[A-Za-z0-9._-]` as `_`.
pub fn source_name(device: &str) -> String {
    let clean: String = device
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("alsa_input.{clean}")
}

/// Opens `device` (or waits for it: a missing device is reopened with
/// back-off) at the server's first sink's spec and period, and lists its
/// source. The source runs at the rate and period the device took.
pub fn add(server: &Server, device: &str) -> Result<Arc<SinkEntry>, EngineError> {
    let first = server.engine.config();
    let engine = Engine::start_with(
        SinkConfig {
            spec: first.spec,
            map: first.map.clone(),
            period_frames: first.period_frames,
            output: OutputSpec::Null,
        },
        EngineOptions {
            rt_priority: server.rt_priority,
            bell: Some(server.engine.bell().clone()),
            buffers: Some(server.engine.shared().buffers.clone()),
            capture: Some(device.to_owned()),
            ..EngineOptions::default()
        },
    )?;
    let spec = engine.config().spec;
    let map = engine.config().map.clone();
    let name = source_name(device);
    let (description, props) = match engine.alsa() {
        Some((facts, _)) => {
            let d = alsa_props::description(facts);
            let p = alsa_props::props(facts, &d);
            (d, p)
        }
        None => (device.to_owned(), Default::default()),
    };
    let (sink_index, source_index) = server.sinks.allocate();
    let volume = CVolume::new(&vec![VOLUME_NORM; usize::from(spec.channels)]).unwrap_or_default();
    let device_record = |index, name: String| Device {
        index,
        name,
        description: description.clone(),
        sample_spec: spec,
        channel_map: map.clone(),
        volume: volume.clone(),
        props: props.clone(),
    };
    let hidden = device_record(sink_index, format!("{name}.capture"));
    let source = device_record(source_index, name.clone());
    let entry = Arc::new(SinkEntry::capture(hidden, source, Arc::new(engine)));
    server.add_sink(entry.clone());
    tracing::info!(
        source = name,
        index = source_index,
        device,
        "capture source added"
    );
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_pulseaudio() {
        assert_eq!(source_name("hw:0,0"), "alsa_input.hw_0_0");
        assert_eq!(
            source_name("srbtest_in:INFILE=/tmp/a.raw"),
            "alsa_input.srbtest_in_INFILE__tmp_a.raw"
        );
    }
}
