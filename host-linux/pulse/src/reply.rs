//! Typed replies: one encoder per introspection record (§6.3, §6.4), each
//! writing its fields as the client's negotiated version expects them.
//! The server fills the struct from its state; the field order and the
//! version gates live here, once.

use crate::tagstruct::{CVolume, ChannelMap, FormatInfo, Proplist, SampleSpec, TagWriter};

/// `PA_INVALID_INDEX`.
pub const INVALID_INDEX: u32 = u32::MAX;

/// The GET_SERVER_INFO reply (§6.3).
#[derive(Debug, Clone, Copy)]
pub struct ServerInfo<'a> {
    /// `server_name` (PulseAudio says "pulseaudio").
    pub server_name: &'a str,
    /// `server_version`.
    pub server_version: &'a str,
    /// The user the server runs as.
    pub user_name: &'a str,
    /// The host name.
    pub host_name: &'a str,
    /// The default sample spec.
    pub sample_spec: SampleSpec,
    /// The default sink's name.
    pub default_sink: &'a str,
    /// The default source's name.
    pub default_source: &'a str,
    /// A random per-server cookie.
    pub cookie: u32,
    /// The default channel map (v15).
    pub channel_map: &'a ChannelMap,
}

impl ServerInfo<'_> {
    /// Appends the reply's fields.
    pub fn encode(&self, w: &mut TagWriter, version: u32) {
        w.put_string(Some(self.server_name))
            .put_string(Some(self.server_version))
            .put_string(Some(self.user_name))
            .put_string(Some(self.host_name))
            .put_sample_spec(&self.sample_spec)
            .put_string(Some(self.default_sink))
            .put_string(Some(self.default_source))
            .put_u32(self.cookie);
        if version >= 15 {
            w.put_channel_map(self.channel_map);
        }
    }
}

/// Whether a device record is a sink's or a source's: the two differ in
/// one field's meaning and in the version their format list appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A sink record (GET_SINK_INFO*): formats from v21.
    Sink,
    /// A source record (GET_SOURCE_INFO*): formats from v22.
    Source,
}

/// A sink or source record (§6.4).
#[derive(Debug, Clone, Copy)]
pub struct DeviceInfo<'a> {
    /// Sink or source.
    pub kind: DeviceKind,
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: &'a str,
    /// Its description.
    pub description: &'a str,
    /// Its sample spec.
    pub sample_spec: SampleSpec,
    /// Its channel map.
    pub channel_map: &'a ChannelMap,
    /// The owning module ([`INVALID_INDEX`]: none).
    pub owner_module: u32,
    /// Its volume.
    pub volume: &'a CVolume,
    /// Whether muted.
    pub muted: bool,
    /// A sink: its monitor source's index; a source: the sink it
    /// monitors ([`INVALID_INDEX`]: none).
    pub monitor_index: u32,
    /// The name that goes with `monitor_index`.
    pub monitor_name: Option<&'a str>,
    /// Current latency in µs.
    pub latency_usec: u64,
    /// The driver name.
    pub driver: &'a str,
    /// `PA_SINK_*` / `PA_SOURCE_*` flags.
    pub flags: u32,
    /// Its properties (v13).
    pub props: &'a Proplist,
    /// Configured latency in µs (v13).
    pub configured_latency_usec: u64,
    /// Base volume (v15).
    pub base_volume: u32,
    /// State: 0 running, 1 idle, 2 suspended (v15).
    pub state: u32,
    /// Volume steps (v15).
    pub volume_steps: u32,
    /// The card ([`INVALID_INDEX`]: none) (v15).
    pub card: u32,
    /// The formats it takes (v21 sinks, v22 sources).
    pub formats: &'a [FormatInfo],
}

impl DeviceInfo<'_> {
    /// Appends the record. No ports: the per-port fields of v16 are an
    /// empty list and no active port, so those of v24 and v34 never appear.
    pub fn encode(&self, w: &mut TagWriter, version: u32) {
        w.put_u32(self.index)
            .put_string(Some(self.name))
            .put_string(Some(self.description))
            .put_sample_spec(&self.sample_spec)
            .put_channel_map(self.channel_map)
            .put_u32(self.owner_module)
            .put_cvolume(self.volume)
            .put_bool(self.muted)
            .put_u32(self.monitor_index)
            .put_string(self.monitor_name)
            .put_usec(self.latency_usec)
            .put_string(Some(self.driver))
            .put_u32(self.flags);
        if version >= 13 {
            w.put_proplist(self.props)
                .put_usec(self.configured_latency_usec);
        }
        if version >= 15 {
            w.put_volume(self.base_volume)
                .put_u32(self.state)
                .put_u32(self.volume_steps)
                .put_u32(self.card);
        }
        if version >= 16 {
            w.put_u32(0).put_string(None);
        }
        let formats_from = match self.kind {
            DeviceKind::Sink => 21,
            DeviceKind::Source => 22,
        };
        if version >= formats_from {
            w.put_u8(self.formats.len().min(usize::from(u8::MAX)) as u8);
            for f in self.formats.iter().take(usize::from(u8::MAX)) {
                w.put_format_info(f);
            }
        }
    }
}

/// A client record (GET_CLIENT_INFO*).
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo<'a> {
    /// Its index.
    pub index: u32,
    /// Its `application.name`.
    pub name: &'a str,
    /// The owning module ([`INVALID_INDEX`]: none).
    pub owner_module: u32,
    /// The driver name.
    pub driver: &'a str,
    /// Its properties (v13).
    pub props: &'a Proplist,
}

impl ClientInfo<'_> {
    /// Appends the record.
    pub fn encode(&self, w: &mut TagWriter, version: u32) {
        w.put_u32(self.index)
            .put_string(Some(self.name))
            .put_u32(self.owner_module)
            .put_string(Some(self.driver));
        if version >= 13 {
            w.put_proplist(self.props);
        }
    }
}

/// A playback or record stream as GET_SINK_INPUT_INFO* and
/// GET_SOURCE_OUTPUT_INFO* show it.
#[derive(Debug, Clone, Copy)]
pub struct StreamInfo<'a> {
    /// Its index.
    pub index: u32,
    /// Its `media.name`.
    pub name: &'a str,
    /// The owning module ([`INVALID_INDEX`]: none).
    pub owner_module: u32,
    /// The client it belongs to.
    pub client: u32,
    /// The sink (sink input) or source (source output) it is on.
    pub device: u32,
    /// Its sample spec.
    pub sample_spec: SampleSpec,
    /// Its channel map.
    pub channel_map: &'a ChannelMap,
    /// Its volume.
    pub volume: &'a CVolume,
    /// Whether muted.
    pub muted: bool,
    /// Buffer latency in µs.
    pub buffer_usec: u64,
    /// Device latency in µs.
    pub device_usec: u64,
    /// The resampler's name.
    pub resample_method: &'a str,
    /// The driver name.
    pub driver: &'a str,
    /// Its properties (v13).
    pub props: &'a Proplist,
    /// Whether corked (v19).
    pub corked: bool,
    /// Its format (v21 sink inputs, v22 source outputs).
    pub format: &'a FormatInfo,
}

impl StreamInfo<'_> {
    /// Appends a sink input record (§6.4): volume before the latencies,
    /// mute after the driver, `has_volume`/`volume_writable` from v20.
    pub fn encode_sink_input(&self, w: &mut TagWriter, version: u32) {
        w.put_u32(self.index)
            .put_string(Some(self.name))
            .put_u32(self.owner_module)
            .put_u32(self.client)
            .put_u32(self.device)
            .put_sample_spec(&self.sample_spec)
            .put_channel_map(self.channel_map)
            .put_cvolume(self.volume)
            .put_usec(self.buffer_usec)
            .put_usec(self.device_usec)
            .put_string(Some(self.resample_method))
            .put_string(Some(self.driver));
        w.put_bool(self.muted);
        if version >= 13 {
            w.put_proplist(self.props);
        }
        if version >= 19 {
            w.put_bool(self.corked);
        }
        if version >= 20 {
            w.put_bool(true).put_bool(true);
        }
        if version >= 21 {
            w.put_format_info(self.format);
        }
    }

    /// Appends a source output record (§6.4): no volume before v22, then
    /// volume, mute, `has_volume`, `volume_writable` and the format.
    pub fn encode_source_output(&self, w: &mut TagWriter, version: u32) {
        w.put_u32(self.index)
            .put_string(Some(self.name))
            .put_u32(self.owner_module)
            .put_u32(self.client)
            .put_u32(self.device)
            .put_sample_spec(&self.sample_spec)
            .put_channel_map(self.channel_map)
            .put_usec(self.buffer_usec)
            .put_usec(self.device_usec)
            .put_string(Some(self.resample_method))
            .put_string(Some(self.driver));
        if version >= 13 {
            w.put_proplist(self.props);
        }
        if version >= 19 {
            w.put_bool(self.corked);
        }
        if version >= 22 {
            w.put_cvolume(self.volume)
                .put_bool(self.muted)
                .put_bool(true)
                .put_bool(true)
                .put_format_info(self.format);
        }
    }
}

/// The CREATE_PLAYBACK_STREAM (§6.5) or CREATE_RECORD_STREAM (§6.6) reply.
#[derive(Debug, Clone, Copy)]
pub struct StreamCreated<'a> {
    /// The stream's channel on this connection.
    pub channel: u32,
    /// Its sink input or source output index.
    pub index: u32,
    /// Playback only: the bytes the client may send at once (`missing`).
    pub missing: Option<u32>,
    /// The buffer attributes in force: playback maxlength, tlength,
    /// prebuf, minreq; record maxlength, fragsize.
    pub attr: &'a [u32],
    /// The sample spec the stream has.
    pub sample_spec: SampleSpec,
    /// Its channel map.
    pub channel_map: &'a ChannelMap,
    /// The device it is connected to.
    pub device_index: u32,
    /// That device's name.
    pub device_name: &'a str,
    /// Whether that device is suspended.
    pub suspended: bool,
    /// The device's latency in µs (v13).
    pub device_latency_usec: u64,
    /// The stream's format (v21 playback, v22 record).
    pub format: &'a FormatInfo,
}

impl StreamCreated<'_> {
    /// Appends the reply's fields (after command and tag); `record`
    /// chooses the record layout (no `missing`, format from v22).
    pub fn encode(&self, w: &mut TagWriter, version: u32, record: bool) {
        w.put_u32(self.channel).put_u32(self.index);
        if let Some(m) = self.missing {
            w.put_u32(m);
        }
        for &a in self.attr {
            w.put_u32(a);
        }
        w.put_sample_spec(&self.sample_spec)
            .put_channel_map(self.channel_map)
            .put_u32(self.device_index)
            .put_string(Some(self.device_name))
            .put_bool(self.suspended);
        if version >= 13 {
            w.put_usec(self.device_latency_usec);
        }
        if version >= if record { 22 } else { 21 } {
            w.put_format_info(self.format);
        }
    }
}

/// The GET_PLAYBACK_LATENCY / GET_RECORD_LATENCY reply (§6.7).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Playback: the sink's latency; record: the latency of the sink the
    /// source monitors, beyond the monitor (libpulse's `sink_usec`, which
    /// it subtracts from a record stream's latency; 0 for a real source)
    /// (µs).
    pub device_usec: u64,
    /// Record: the source's own latency (libpulse's `source_usec`);
    /// playback: 0 (µs).
    pub other_usec: u64,
    /// Whether the stream is playing (or, recording: running).
    pub playing: bool,
    /// The time the client put in its request.
    pub client_now: crate::tagstruct::Timeval,
    /// The server's time when answering.
    pub server_now: crate::tagstruct::Timeval,
    /// The write index.
    pub write_index: i64,
    /// The read index.
    pub read_index: i64,
    /// Playback from v13: bytes the stream was starved / played.
    pub underrun_for: Option<(u64, u64)>,
}

impl Latency {
    /// Appends the reply's fields.
    pub fn encode(&self, w: &mut TagWriter, version: u32) {
        w.put_usec(self.device_usec)
            .put_usec(self.other_usec)
            .put_bool(self.playing)
            .put_timeval(self.client_now)
            .put_timeval(self.server_now)
            .put_s64(self.write_index)
            .put_s64(self.read_index);
        if version >= 13 {
            if let Some((underrun_for, playing_for)) = self.underrun_for {
                w.put_u64(underrun_for).put_u64(playing_for);
            }
        }
    }
}

/// The CREATE_UPLOAD_STREAM reply: the channel the upload's memblocks
/// come on and the byte count the client must send (its request's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadCreated {
    /// The upload's channel.
    pub channel: u32,
    /// Bytes to upload.
    pub length: u32,
}

impl UploadCreated {
    /// Appends the reply's fields.
    pub fn encode(&self, w: &mut TagWriter) {
        w.put_u32(self.channel).put_u32(self.length);
    }
}

/// A sample cache entry (GET_SAMPLE_INFO*), as `pactl list samples`
/// prints it.
#[derive(Debug, Clone, Copy)]
pub struct SampleInfo<'a> {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: &'a str,
    /// Its own volume (no channels: none set, printed "(invalid)").
    pub volume: &'a CVolume,
    /// How long it plays, in µs.
    pub duration_usec: u64,
    /// Its sample spec.
    pub sample_spec: SampleSpec,
    /// Its channel map.
    pub channel_map: &'a ChannelMap,
    /// Its size in bytes.
    pub bytes: u32,
    /// Whether it is loaded from a file on first use (never, here).
    pub lazy: bool,
    /// The file of a lazy entry.
    pub filename: Option<&'a str>,
    /// Its properties (v13).
    pub props: &'a Proplist,
}

impl SampleInfo<'_> {
    /// Appends the record.
    pub fn encode(&self, w: &mut TagWriter, version: u32) {
        w.put_u32(self.index)
            .put_string(Some(self.name))
            .put_cvolume(self.volume)
            .put_usec(self.duration_usec)
            .put_sample_spec(&self.sample_spec)
            .put_channel_map(self.channel_map)
            .put_u32(self.bytes)
            .put_bool(self.lazy)
            .put_string(self.filename);
        if version >= 13 {
            w.put_proplist(self.props);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::SampleFormat;
    use crate::tagstruct::TagReader;

    fn spec() -> SampleSpec {
        SampleSpec {
            format: SampleFormat::Float32Le,
            channels: 2,
            rate: 48_000,
        }
    }

    #[test]
    fn server_info_has_its_channel_map_from_v15() {
        let map = ChannelMap::new(&[1, 2]).unwrap();
        let info = ServerInfo {
            server_name: "srbd",
            server_version: "16.1",
            user_name: "u",
            host_name: "h",
            sample_spec: spec(),
            default_sink: "s",
            default_source: "s.monitor",
            cookie: 7,
            channel_map: &map,
        };
        for (version, with_map) in [(14, false), (15, true), (35, true)] {
            let mut w = TagWriter::new();
            info.encode(&mut w, version);
            let b = w.into_bytes();
            let mut r = TagReader::new(&b);
            for _ in 0..4 {
                r.get_string().unwrap();
            }
            assert_eq!(r.get_sample_spec().unwrap(), spec());
            r.get_string().unwrap();
            r.get_string().unwrap();
            assert_eq!(r.get_u32().unwrap(), 7);
            if with_map {
                assert_eq!(r.get_channel_map().unwrap(), map);
            }
            r.finish().unwrap();
        }
    }

    #[test]
    fn device_formats_appear_from_v21_for_sinks_and_v22_for_sources() {
        let map = ChannelMap::new(&[1, 2]).unwrap();
        let vol = CVolume::new(&[0x10000, 0x10000]).unwrap();
        let props = Proplist::new();
        let formats = [FormatInfo {
            encoding: 1,
            props: Proplist::new(),
        }];
        let mut d = DeviceInfo {
            kind: DeviceKind::Sink,
            index: 0,
            name: "s",
            description: "d",
            sample_spec: spec(),
            channel_map: &map,
            owner_module: INVALID_INDEX,
            volume: &vol,
            muted: false,
            monitor_index: 0,
            monitor_name: Some("s.monitor"),
            latency_usec: 0,
            driver: "x",
            flags: 0,
            props: &props,
            configured_latency_usec: 0,
            base_volume: 0x10000,
            state: 1,
            volume_steps: 65537,
            card: INVALID_INDEX,
            formats: &formats,
        };
        let len = |d: &DeviceInfo<'_>, v| {
            let mut w = TagWriter::new();
            d.encode(&mut w, v);
            w.into_bytes().len()
        };
        assert!(len(&d, 21) > len(&d, 20), "a sink lists formats from v21");
        d.kind = DeviceKind::Source;
        assert_eq!(len(&d, 21), len(&d, 20), "a source not before v22");
        assert!(len(&d, 22) > len(&d, 21));
    }

    #[test]
    fn sample_info_round_trip_and_proplist_from_v13() {
        let map = ChannelMap::new(&[1, 2]).unwrap();
        let none = CVolume::new(&[]).unwrap();
        let mut props = Proplist::new();
        props.set_str("media.name", "bell").unwrap();
        let info = SampleInfo {
            index: 3,
            name: "bell",
            volume: &none,
            duration_usec: 100_000,
            sample_spec: spec(),
            channel_map: &map,
            bytes: 38_400,
            lazy: false,
            filename: None,
            props: &props,
        };
        for version in [12, 13, 35] {
            let mut w = TagWriter::new();
            info.encode(&mut w, version);
            let b = w.into_bytes();
            let mut r = TagReader::new(&b);
            assert_eq!(r.get_u32().unwrap(), 3);
            assert_eq!(r.get_string().unwrap(), Some("bell"));
            assert_eq!(r.get_cvolume().unwrap().channels(), 0);
            assert_eq!(r.get_usec().unwrap(), 100_000);
            assert_eq!(r.get_sample_spec().unwrap(), spec());
            assert_eq!(r.get_channel_map().unwrap(), map);
            assert_eq!(r.get_u32().unwrap(), 38_400);
            assert!(!r.get_bool().unwrap());
            assert_eq!(r.get_string().unwrap(), None);
            if version >= 13 {
                assert_eq!(r.get_proplist().unwrap(), props);
            }
            r.finish().unwrap();
        }
        let mut w = TagWriter::new();
        UploadCreated {
            channel: 2,
            length: 4800,
        }
        .encode(&mut w);
        let b = w.into_bytes();
        let mut r = TagReader::new(&b);
        assert_eq!((r.get_u32().unwrap(), r.get_u32().unwrap()), (2, 4800));
        r.finish().unwrap();
    }
}
