//! `module-remap-sink`: a virtual sink whose channels go to chosen
//! channels of a master sink (`channels=2 channel_map=front-left,front-right
//! master_channel_map=front-right,front-left` swaps left and right; a
//! one-channel remap of a stereo master plays a mono stream on one side).
//!
//! How srbd does it: a sink with its own mixer and timerfd clock (as a
//! null sink), and a loopback from its monitor into the master whose sink
//! input says its channels are at `master_channel_map`'s positions, so the
//! master's mixer puts channel *i* where `master_channel_map[i]` is (and
//! mixes by position where the master lacks one, PulseAudio's
//! `remix=yes`). Unlike PulseAudio's, which renders in the master's
//! thread, the remapped audio reaches the master through the loopback's
//! rate-matched queue, [`LATENCY_MS`] later. `remix=no` is refused.
//!
//! Arguments: `sink_name` (default `<master>.remapped`), `master`
//! (default: the default sink), `sink_properties`, `format`, `rate`,
//! `channels`, `channel_map` (default: the master's spec and map),
//! `master_channel_map` (default: `channel_map`), `remix`.

use super::{loopback, null_sink, Args, ModuleError, Owned};
use crate::Server;

/// The module's name.
pub const NAME: &str = "module-remap-sink";

/// The queue between the remap sink's monitor and the master, in ms.
pub const LATENCY_MS: u32 = 40;

const VALID: &[&str] = &[
    "sink_name",
    "master",
    "sink_properties",
    "format",
    "rate",
    "channels",
    "channel_map",
    "master_channel_map",
    "remix",
];

/// Loads a remap sink as module `module`.
pub fn load(server: &Server, module: u32, argument: &str) -> Result<Owned, ModuleError> {
    let args = Args::parse(argument, Some(VALID)).map_err(|source| ModuleError::Args {
        module: NAME,
        source,
    })?;
    let master = match args.get("master") {
        None => server.default_sink(),
        Some(n) => server
            .sinks
            .sink(n)
            .ok_or_else(|| ModuleError::value(NAME, "master", n, "no such sink"))?,
    };
    match args.get("remix") {
        None | Some("yes" | "true" | "1" | "on") => {}
        Some(v) => {
            return Err(ModuleError::value(
                NAME,
                "remix",
                v,
                "srbd always remixes by position (remix=yes)",
            ))
        }
    }
    let name = args
        .get("sink_name")
        .map_or_else(|| format!("{}.remapped", master.sink.name), str::to_owned);
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
    let base_args = if args.get("channel_map").is_none() && args.get("channels").is_none() {
        // The master's own map by default.
        let names = srb_pulse::format::map_names(&master.sink.channel_map);
        args.clone().with("channel_map", &names)
    } else {
        args.clone()
    };
    let (spec, map) = null_sink::spec_and_map(NAME, &base_args, master.sink.sample_spec)?;
    let master_map = match args.get("master_channel_map") {
        None => map.clone(),
        Some(m) => srb_pulse::format::parse_channel_map(m)
            .filter(|mm| mm.channels() == map.channels())
            .ok_or_else(|| {
                ModuleError::value(
                    NAME,
                    "master_channel_map",
                    m,
                    "not a map of the sink's channel count",
                )
            })?,
    };
    let extra = match args.get("sink_properties") {
        Some(p) => {
            Args::parse(p, None).map_err(|e| ModuleError::value(NAME, "sink_properties", p, e))?
        }
        None => Args::default(),
    };
    let description = extra.get("device.description").map_or_else(
        || format!("Remapped {}", master.sink.description),
        str::to_owned,
    );
    let extra = extra
        .with("device.master_device", &master.sink.name)
        .with("device.class", "filter");
    let entry = null_sink::create(
        server,
        NAME,
        module,
        &name,
        &description,
        (spec, map),
        &extra,
    )?;
    match loopback::start(server, NAME, &entry, &master, LATENCY_MS, Some(&master_map)) {
        Ok(l) => Ok(Owned::Remap(entry.index(), l)),
        Err(e) => {
            server.remove_sink(entry.index());
            Err(e)
        }
    }
}
