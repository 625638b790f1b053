//! The server's identity and srbd's own sink (`srb_output`) and its
//! monitor source, and the encodings of the server and device records by
//! protocol version (protocol doc §6.3, §6.4); [`DevicePair`] encodes any
//! sink of the list ([`crate::control::sinks`]).

use crate::DeviceState;
use srb_pulse::reply::{self, DeviceKind};
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::{
    CVolume, ChannelMap, FormatInfo, Proplist, SampleSpec, TagWriter, VOLUME_NORM,
};

/// The highest protocol version srbd speaks (libpulse 16.1's).
pub const PROTOCOL_VERSION: u32 = 35;

/// `PA_SAMPLE_FLOAT32LE`.
pub const SAMPLE_FLOAT32LE: SampleFormat = SampleFormat::Float32Le;

/// The default sink name.
pub const DEFAULT_SINK_NAME: &str = "srb_output";

/// The default sink sample spec: 48 kHz stereo float32le.
pub fn default_sample_spec() -> SampleSpec {
    SampleSpec {
        format: SAMPLE_FLOAT32LE,
        channels: 2,
        rate: 48_000,
    }
}

/// "No index" / "no module" on the wire.
pub const INVALID_INDEX: u32 = 0xFFFF_FFFF;

/// `PA_ENCODING_PCM`.
const ENCODING_PCM: u8 = 1;

/// Sink/source state IDLE (RUNNING=0, IDLE=1, SUSPENDED=2; never anything
/// else, pactl indexes a table with it).
const STATE_IDLE: u32 = 1;
/// Sink/source state SUSPENDED.
const STATE_SUSPENDED: u32 = 2;
/// Sink/source state RUNNING.
const STATE_RUNNING: u32 = 0;

/// LATENCY | DECIBEL_VOLUME | DYNAMIC_LATENCY | SET_FORMATS.
const SINK_FLAGS: u32 = 0x2 | 0x20 | 0x80 | 0x100;
/// LATENCY | DECIBEL_VOLUME | DYNAMIC_LATENCY.
const SOURCE_FLAGS: u32 = 0x2 | 0x20 | 0x80;

/// `n_volume_steps` of a software volume (PA_VOLUME_NORM + 1).
const VOLUME_STEPS: u32 = VOLUME_NORM + 1;

/// What one device (sink or source) shows.
/// A device's latency figures for its info record (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Its latency now.
    pub now_usec: u64,
    /// The latency it is configured for (one period).
    pub configured_usec: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its sample spec.
    pub sample_spec: SampleSpec,
    /// Its channel map.
    pub channel_map: ChannelMap,
    /// Its volume (one value per channel).
    pub volume: CVolume,
    /// Its properties.
    pub props: Proplist,
}

/// The server's identity and its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `server_name` of GET_SERVER_INFO.
    pub server_name: String,
    /// `server_version` (the PulseAudio version whose protocol we speak).
    pub server_version: String,
    /// The user the server runs as.
    pub user_name: String,
    /// The host name.
    pub host_name: String,
    /// The cookie shown by `pactl info`.
    pub cookie: u32,
    /// srbd's own sink (the first of the list).
    pub sink: Device,
    /// Its monitor source.
    pub monitor: Device,
}

/// The driver string shown for both devices.
pub const DRIVER: &str = "srbd";

fn props(pairs: &[(&str, &str)]) -> Proplist {
    let mut p = Proplist::new();
    for (k, v) in pairs {
        // The keys are constant valid keys; a refusal would only drop a
        // cosmetic property.
        if let Err(e) = p.set_str(k, v) {
            tracing::warn!(key = k, %e, "property refused");
        }
    }
    p
}

impl ServerInfo {
    /// The default objects: sink `srb_output`, 48 kHz stereo float32le, and
    /// `srb_output.monitor`.
    pub fn new(user_name: String, host_name: String, cookie: u32) -> Self {
        // front-left, front-right: two valid positions, cannot fail.
        let channel_map = ChannelMap::new(&[1, 2]).unwrap_or_default();
        Self::with_sink(
            user_name,
            host_name,
            cookie,
            DEFAULT_SINK_NAME,
            default_sample_spec(),
            channel_map,
        )
    }

    /// Objects for a sink called `name` with this spec and map (which must
    /// agree in channel count), and its monitor `<name>.monitor`.
    pub fn with_sink(
        user_name: String,
        host_name: String,
        cookie: u32,
        name: &str,
        sample_spec: SampleSpec,
        channel_map: ChannelMap,
    ) -> Self {
        let volume =
            CVolume::new(&vec![VOLUME_NORM; usize::from(sample_spec.channels)]).unwrap_or_default();
        let sink = Device {
            index: 0,
            name: name.into(),
            description: "srb output".into(),
            sample_spec,
            channel_map: channel_map.clone(),
            volume: volume.clone(),
            props: props(&[
                ("device.description", "srb output"),
                ("device.class", "abstract"),
            ]),
        };
        let monitor = Device {
            index: 0,
            name: format!("{name}.monitor"),
            description: "Monitor of srb output".into(),
            sample_spec,
            channel_map,
            volume,
            props: props(&[
                ("device.description", "Monitor of srb output"),
                ("device.class", "monitor"),
            ]),
        };
        Self {
            server_name: "srbd".into(),
            server_version: "16.1".into(),
            user_name,
            host_name,
            cookie,
            sink,
            monitor,
        }
    }

    /// From the environment: `$USER` (else the uid), the kernel host name,
    /// and a cookie derived from pid and time; the sink as given.
    pub fn from_env(name: &str, sample_spec: SampleSpec, channel_map: ChannelMap) -> Self {
        let uid = rustix::process::geteuid().as_raw();
        let user = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| user_from_passwd(&p, uid))
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| uid.to_string());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0);
        Self::with_sink(
            user,
            host,
            pid.rotate_left(16) ^ now,
            name,
            sample_spec,
            channel_map,
        )
    }

    /// The GET_SERVER_INFO reply fields (§6.3), srbd's own sink and its
    /// monitor as the defaults.
    pub fn write_server_info(&self, w: &mut TagWriter, version: u32) {
        self.write_server_info_with(w, version, &self.sink.name, &self.monitor.name);
    }

    /// The GET_SERVER_INFO reply fields with these default device names.
    pub fn write_server_info_with(
        &self,
        w: &mut TagWriter,
        version: u32,
        default_sink: &str,
        default_source: &str,
    ) {
        reply::ServerInfo {
            server_name: &self.server_name,
            server_version: &self.server_version,
            user_name: &self.user_name,
            host_name: &self.host_name,
            sample_spec: self.sink.sample_spec,
            default_sink,
            default_source,
            cookie: self.cookie,
            channel_map: &self.sink.channel_map,
        }
        .encode(w, version);
    }

    /// One sink record (§6.4), fields by version, with the sink's current
    /// volume, mute and state.
    pub fn write_sink(
        &self,
        w: &mut TagWriter,
        version: u32,
        st: &DeviceState,
        running: bool,
        latency: Latency,
    ) {
        self.device_info(DeviceKind::Sink, st, running, latency)
            .encode(w, version);
    }

    /// One source record (the monitor), fields by version, with its
    /// current volume, mute and state.
    pub fn write_source(
        &self,
        w: &mut TagWriter,
        version: u32,
        st: &DeviceState,
        running: bool,
        latency: Latency,
    ) {
        self.device_info(DeviceKind::Source, st, running, latency)
            .encode(w, version);
    }

    fn device_info<'a>(
        &'a self,
        kind: DeviceKind,
        st: &'a DeviceState,
        running: bool,
        latency: Latency,
    ) -> reply::DeviceInfo<'a> {
        let pair = DevicePair {
            sink: &self.sink,
            monitor: &self.monitor,
            module: INVALID_INDEX,
            source_only: false,
        };
        pair.info(kind, st, running, latency)
    }

    /// The sink a name names, as PulseAudio's name registry reads it:
    /// empty or `@DEFAULT_SINK@` is the default sink, a number is an
    /// index, anything else a name.
    pub fn sink_by_name(&self, name: &str) -> Option<u32> {
        let s = &self.sink;
        match name {
            "" | "@DEFAULT_SINK@" => Some(s.index),
            n if n == s.name => Some(s.index),
            n => n.parse::<u32>().ok().filter(|&i| i == s.index),
        }
    }

    /// The source a name names: empty, `@DEFAULT_SOURCE@` or
    /// `@DEFAULT_MONITOR@` (the default sink's monitor) is the default
    /// source, a number an index, anything else a name.
    pub fn source_by_name(&self, name: &str) -> Option<u32> {
        let m = &self.monitor;
        match name {
            "" | "@DEFAULT_SOURCE@" | "@DEFAULT_MONITOR@" => Some(m.index),
            n if n == m.name => Some(m.index),
            n => n.parse::<u32>().ok().filter(|&i| i == m.index),
        }
    }
}

/// The name of `uid` in passwd(5) text.
fn user_from_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// A sink and its monitor, as their records show them.
#[derive(Debug, Clone, Copy)]
pub struct DevicePair<'a> {
    /// The sink.
    pub sink: &'a Device,
    /// Its monitor source.
    pub monitor: &'a Device,
    /// The module that owns both ([`INVALID_INDEX`]: none).
    pub module: u32,
    /// A capture source: `monitor` is a source of its own, `sink` hidden
    /// (its source record names no sink it monitors).
    pub source_only: bool,
}

impl<'a> DevicePair<'a> {
    /// The sink's (`Sink`) or monitor's (`Source`) record, fields by
    /// version, with its current volume, mute and state.
    pub fn write(
        &self,
        w: &mut TagWriter,
        version: u32,
        kind: DeviceKind,
        st: &DeviceState,
        running: bool,
        latency: Latency,
    ) {
        self.info(kind, st, running, latency).encode(w, version);
    }

    fn info(
        &self,
        kind: DeviceKind,
        st: &'a DeviceState,
        running: bool,
        latency: Latency,
    ) -> reply::DeviceInfo<'a> {
        let (d, other, flags) = match kind {
            DeviceKind::Sink => (self.sink, self.monitor, SINK_FLAGS),
            DeviceKind::Source => (self.monitor, self.sink, SOURCE_FLAGS),
        };
        reply::DeviceInfo {
            kind,
            index: d.index,
            name: &d.name,
            description: &d.description,
            sample_spec: d.sample_spec,
            channel_map: &d.channel_map,
            owner_module: self.module,
            volume: &st.volume,
            muted: st.muted,
            monitor_index: if self.source_only {
                INVALID_INDEX
            } else {
                other.index
            },
            monitor_name: (!self.source_only).then_some(other.name.as_str()),
            latency_usec: latency.now_usec,
            driver: DRIVER,
            flags,
            props: &d.props,
            configured_latency_usec: latency.configured_usec,
            base_volume: VOLUME_NORM,
            state: match (st.suspended, running) {
                (true, _) => STATE_SUSPENDED,
                (false, true) => STATE_RUNNING,
                (false, false) => STATE_IDLE,
            },
            volume_steps: VOLUME_STEPS,
            card: INVALID_INDEX,
            formats: PCM_ONLY.get_or_init(|| {
                vec![FormatInfo {
                    encoding: ENCODING_PCM,
                    props: Proplist::new(),
                }]
            }),
        }
    }
}

/// The one format a device takes: PCM (any spec).
static PCM_ONLY: std::sync::OnceLock<Vec<FormatInfo>> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;
    use srb_pulse::tagstruct::TagReader;

    fn info() -> ServerInfo {
        ServerInfo::new("root".into(), "vm".into(), 0x4a8b_186c)
    }

    #[test]
    fn server_info_v35_parses_in_order() {
        let mut w = TagWriter::new();
        info().write_server_info(&mut w, 35);
        let mut r = TagReader::new(w.as_bytes());
        assert_eq!(r.get_string().unwrap(), Some("srbd"));
        assert_eq!(r.get_string().unwrap(), Some("16.1"));
        assert_eq!(r.get_string().unwrap(), Some("root"));
        assert_eq!(r.get_string().unwrap(), Some("vm"));
        let ss = r.get_sample_spec().unwrap();
        assert_eq!(
            (ss.format, ss.channels, ss.rate),
            (SampleFormat::Float32Le, 2, 48_000)
        );
        assert_eq!(r.get_string().unwrap(), Some("srb_output"));
        assert_eq!(r.get_string().unwrap(), Some("srb_output.monitor"));
        assert_eq!(r.get_u32().unwrap(), 0x4a8b_186c);
        assert_eq!(r.get_channel_map().unwrap().positions(), &[1, 2]);
        r.finish().unwrap();
    }

    #[test]
    fn server_info_v14_has_no_channel_map() {
        let mut w = TagWriter::new();
        info().write_server_info(&mut w, 14);
        let mut r = TagReader::new(w.as_bytes());
        for _ in 0..4 {
            r.get_string().unwrap();
        }
        r.get_sample_spec().unwrap();
        r.get_string().unwrap();
        r.get_string().unwrap();
        r.get_u32().unwrap();
        r.finish().unwrap();
    }

    /// Reads a sink or source record as libpulse 16.1 does at `version`.
    fn read_device(r: &mut TagReader<'_>, version: u32, formats_from: u32) -> (u32, String) {
        let index = r.get_u32().unwrap();
        let name = r.get_nonnull_string("name").unwrap().to_owned();
        r.get_string().unwrap();
        let ss = r.get_sample_spec().unwrap();
        ss.check().unwrap();
        let map = r.get_channel_map().unwrap();
        assert_eq!(map.channels(), ss.channels);
        r.get_u32().unwrap();
        assert_eq!(r.get_cvolume().unwrap().channels(), ss.channels);
        r.get_bool().unwrap();
        r.get_u32().unwrap();
        r.get_string().unwrap();
        r.get_usec().unwrap();
        r.get_string().unwrap();
        r.get_u32().unwrap();
        if version >= 13 {
            r.get_proplist().unwrap();
            r.get_usec().unwrap();
        }
        if version >= 15 {
            r.get_volume().unwrap();
            assert!(r.get_u32().unwrap() <= 2, "state");
            r.get_u32().unwrap();
            r.get_u32().unwrap();
        }
        if version >= 16 {
            assert_eq!(r.get_u32().unwrap(), 0);
            r.get_string().unwrap();
        }
        if version >= formats_from {
            assert!(r.get_u8().unwrap() >= 1);
            r.get_format_info().unwrap().check().unwrap();
        }
        (index, name)
    }

    #[test]
    fn sink_and_source_records_by_version() {
        let i = info();
        for version in [13, 15, 16, 20, 21, 22, 32, 35] {
            let mut w = TagWriter::new();
            let st = DeviceState {
                volume: i.sink.volume.clone(),
                muted: false,
                suspended: false,
            };
            i.write_sink(&mut w, version, &st, false, Latency::default());
            i.write_source(&mut w, version, &st, true, Latency::default());
            let mut r = TagReader::new(w.as_bytes());
            assert_eq!(read_device(&mut r, version, 21), (0, "srb_output".into()));
            assert_eq!(
                read_device(&mut r, version, 22),
                (0, "srb_output.monitor".into())
            );
            r.finish().unwrap();
        }
    }

    #[test]
    fn passwd_lookup() {
        let p = "root:x:0:0:root:/root:/bin/sh\nbad line\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(user_from_passwd(p, 0).as_deref(), Some("root"));
        assert_eq!(user_from_passwd(p, 1000).as_deref(), Some("alice"));
        assert_eq!(user_from_passwd(p, 7), None);
    }

    #[test]
    fn lookups() {
        let i = info();
        assert_eq!(i.sink_by_name("srb_output"), Some(0));
        assert_eq!(i.sink_by_name("@DEFAULT_SINK@"), Some(0));
        assert_eq!(i.sink_by_name("nope"), None);
        assert_eq!(i.source_by_name("srb_output.monitor"), Some(0));
        assert_eq!(i.source_by_name("srb_output"), None);
        // PulseAudio's name registry: numbers are indexes, empty is the
        // default.
        assert_eq!(i.sink_by_name("0"), Some(0));
        assert_eq!(i.sink_by_name("1"), None);
        assert_eq!(i.sink_by_name(""), Some(0));
        assert_eq!(i.source_by_name("0"), Some(0));
        assert_eq!(i.source_by_name(""), Some(0));
        assert_eq!(i.source_by_name("@DEFAULT_MONITOR@"), Some(0));
    }
}
