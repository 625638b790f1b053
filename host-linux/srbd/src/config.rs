//! `srbd`'s settings: a TOML file (`--config FILE`) and command-line
//! options over it, every one with a default so that `srbd` with no
//! arguments just works.
//!
//! ```toml
//! socket = "/run/user/1000/pulse/native" # default: $PULSE_RUNTIME_PATH/native, else <runtime dir>/pulse/native
//! control_socket = "/run/user/1000/srb/control" # hands out the state page (srb-top); default: <runtime dir>/srb/control
//! tcp = "0.0.0.0:4713"                   # default: no TCP
//! tcp_anonymous = false                  # TCP clients need the cookie
//! cookie = "/home/me/.config/pulse/cookie" # default: $PULSE_COOKIE, else libpulse's path
//! sink_name = "srb_output"
//! format = "float32le"                   # PulseAudio format names
//! rate = 48000
//! channels = 2
//! period_frames = 480                    # 64..=4096; default 10 ms
//! input = "alsa:hw:0"                    # a capture source `alsa_input.hw_0`; default: none
//! output = "alsa:hw:0"                   # or "null", "wav:/path/out.wav", "alsa" (ALSA's default);
//!                                        # default: the first sound card (`sysdefault`, else
//!                                        # `plughw:0`; never a sound server), else "null"
//! dsp = true                             # spawn the dsp-sim peer (it clocks the sink)
//! dsp_chain = "gain:-6dB,lowpass:8000Hz" # its processing chain; default: none (bit-exact)
//! dsp_program = "/usr/libexec/dsp-sim"   # default: dsp-sim beside srbd, else on PATH
//! dsp_fallback = "silence"               # what a period the DSP missed plays: "silence" or
//!                                        # "bypass" (the unprocessed mix); default: bypass with
//!                                        # an empty chain, silence with a chain
//! dsp_stall_timeout_ms = 1000            # a DSP silent this long is dead and restarted
//! rt_priority = 5                        # SCHED_FIFO for the mixer and the DSP (1..=99); 0: off
//! stats_interval = 10                    # seconds between DSP statistics log lines; 0: never
//! shm = true                             # offer memfd SHM to local clients of our uid (§1.5)
//! srbchannel = true                      # offer the srbchannel to SHM clients (§5)
//! spin_us = 100                          # poll a chatty client's ring this long before sleeping; 0: never
//! max_clients = 1024                     # clients served at once; one more is refused with a log line
//!
//! [[modules]]                            # loaded at start, in order (a failure stops srbd)
//! name = "module-null-sink"
//! args = "sink_name=rec sink_properties=device.description=Rec"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::dsp_clock::{Fallback, DEFAULT_STALL_TIMEOUT};
use crate::engine::mixer::{MAX_PERIOD, MIN_PERIOD};
use crate::engine::output::OutputSpec;
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::{ChannelMap, SampleSpec};

/// The format a PulseAudio name stands for (case-insensitive, with
/// PulseAudio's aliases: see [`SampleFormat::from_name`]).
pub fn parse_format(name: &str) -> Option<SampleFormat> {
    SampleFormat::from_name(name)
}

/// PulseAudio's name of a format.
pub fn format_name(format: SampleFormat) -> &'static str {
    format.name()
}

/// The usual channel map for `channels` channels: mono, stereo, quad, 5.1,
/// 7.1, else AUX0.. positions.
pub fn default_map(channels: u8) -> Option<ChannelMap> {
    let positions: Vec<u8> = match channels {
        1 => vec![0],
        2 => vec![1, 2],
        4 => vec![1, 2, 5, 6],
        6 => vec![1, 2, 5, 6, 3, 7],
        8 => vec![1, 2, 5, 6, 3, 7, 10, 11],
        n => (0..n).map(|i| 12 + i).collect(),
    };
    ChannelMap::new(&positions).ok()
}

/// The settings file, every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Unix socket path.
    pub socket: Option<PathBuf>,
    /// The `control` socket that hands out the state page.
    pub control_socket: Option<PathBuf>,
    /// TCP address to serve too.
    pub tcp: Option<SocketAddr>,
    /// Let TCP clients in without the cookie.
    pub tcp_anonymous: Option<bool>,
    /// The cookie file TCP clients must match (created if missing).
    pub cookie: Option<PathBuf>,
    /// The sink's name.
    pub sink_name: Option<String>,
    /// The sink's sample format name.
    pub format: Option<String>,
    /// The sink's rate in Hz.
    pub rate: Option<u32>,
    /// The sink's channel count.
    pub channels: Option<u8>,
    /// Frames per mixer period.
    pub period_frames: Option<usize>,
    /// `null`, `wav:PATH` or `alsa[:DEVICE]`.
    pub output: Option<String>,
    /// `alsa[:DEVICE]`: a capture source.
    pub input: Option<String>,
    /// Run the DSP peer.
    pub dsp: Option<bool>,
    /// The DSP's chain spec.
    pub dsp_chain: Option<String>,
    /// The `dsp-sim` program.
    pub dsp_program: Option<PathBuf>,
    /// What a missed DSP period plays: `silence` or `bypass`.
    pub dsp_fallback: Option<String>,
    /// Milliseconds without progress after which the DSP is dead.
    pub dsp_stall_timeout_ms: Option<u64>,
    /// `SCHED_FIFO` priority of the mixer thread and the DSP (0: off).
    pub rt_priority: Option<u8>,
    /// Seconds between DSP statistics lines.
    pub stats_interval: Option<u64>,
    /// Offer the SHM fast path (memfd pools) to local clients of our uid.
    pub shm: Option<bool>,
    /// Offer the srbchannel to clients that got SHM.
    pub srbchannel: Option<bool>,
    /// Microseconds a connection polls a chatty client's ring.
    pub spin_us: Option<u64>,
    /// Clients served at once.
    pub max_clients: Option<usize>,
    /// Modules to load at start.
    pub modules: Option<Vec<ModuleSpec>>,
}

/// One `[[modules]]` entry: a module and its argument string, as
/// `pactl load-module NAME ARGS` would give them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// The module's name (`module-null-sink`).
    pub name: String,
    /// Its arguments (PulseAudio's `key=value` syntax); default none.
    #[serde(default)]
    pub args: String,
}

/// The default `SCHED_FIFO` priority: PulseAudio's (`realtime-priority =
/// 5`), low among real-time threads (below JACK's and the kernel's
/// interrupt threads at 50), and asked for by default as PulseAudio does,
/// since an ordinarily loaded machine is what delays a period thread
/// (issue 14); without privilege it is refused with one log line.
pub const DEFAULT_RT_PRIORITY: u8 = 5;

/// The longest `dsp_stall_timeout_ms` allowed (a minute).
pub const MAX_STALL_TIMEOUT_MS: u64 = 60_000;

/// The longest ring polling allowed (`spin_us`): a millisecond per request
/// would cost more than any wake-up it saves.
pub const MAX_SPIN_US: u64 = 1000;

/// Why the settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// The settings srbd runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Unix socket path (`None`: the runtime directory default).
    pub socket: Option<PathBuf>,
    /// The `control` socket that hands out the state page (`None`:
    /// [`srb_linux::state_page::default_control_path`]).
    pub control_socket: Option<PathBuf>,
    /// TCP address to serve too.
    pub tcp: Option<SocketAddr>,
    /// Let TCP clients in without the cookie.
    pub tcp_anonymous: bool,
    /// The cookie file (`None`: [`crate::control::tcp::cookie_path`]).
    pub cookie: Option<PathBuf>,
    /// The sink's name.
    pub sink_name: String,
    /// The sink's sample spec.
    pub spec: SampleSpec,
    /// The sink's channel map.
    pub map: ChannelMap,
    /// Frames per mixer period.
    pub period_frames: usize,
    /// Where the rendered audio goes; `None` (not set): the first sound
    /// card, else the null sink, chosen at start
    /// ([`crate::engine::alsa::default::choose_default`]).
    pub output: Option<OutputSpec>,
    /// The ALSA capture device of the `alsa_input.*` source (`None`: no
    /// capture source).
    pub input: Option<String>,
    /// Run the DSP peer (default true).
    pub dsp: bool,
    /// The DSP's chain spec (`None`: no processing, bit-exact).
    pub dsp_chain: Option<String>,
    /// The `dsp-sim` program (`None`: look it up beside srbd, then PATH).
    pub dsp_program: Option<PathBuf>,
    /// What a period the DSP missed plays ([`Fallback::resolve`]: the
    /// configured value, else bypass with an empty chain and silence with
    /// a chain).
    pub dsp_fallback: Fallback,
    /// A DSP that makes no progress this long is declared dead (default
    /// 1 s).
    pub dsp_stall_timeout: std::time::Duration,
    /// `SCHED_FIFO` priority the mixer thread and the DSP ask for (default
    /// [`DEFAULT_RT_PRIORITY`]; 0: normal scheduling). Refused without
    /// privilege, with one log line.
    pub rt_priority: u8,
    /// Seconds between DSP statistics log lines (0: never).
    pub stats_interval: u64,
    /// Offer SHM + memfd in AUTH when the client asks for both, speaks
    /// version 32 or more and runs as our uid (default true; `false`:
    /// every client uses the inline path).
    pub shm: bool,
    /// Offer the srbchannel (a shared ring for every frame without fds,
    /// §5) to clients that got SHM (default true; `false`: their frames go
    /// through the socket).
    pub srbchannel: bool,
    /// How long a connection thread keeps polling the srbchannel ring
    /// (yielding the CPU between looks) before it sleeps, when the
    /// client's last request followed the last reply within that time
    /// (default 100 µs; 0: always sleep at once). See
    /// [`crate::control::session::SPIN_WINDOW`].
    pub spin: std::time::Duration,
    /// At most this many clients are served at once (default 1024).
    pub max_clients: usize,
    /// Modules loaded at start, in order.
    pub modules: Vec<ModuleSpec>,
}

impl FileConfig {
    /// Reads a settings file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// `over`'s fields where set, else this file's.
    pub fn overlay(self, over: FileConfig) -> FileConfig {
        FileConfig {
            socket: over.socket.or(self.socket),
            control_socket: over.control_socket.or(self.control_socket),
            tcp: over.tcp.or(self.tcp),
            tcp_anonymous: over.tcp_anonymous.or(self.tcp_anonymous),
            cookie: over.cookie.or(self.cookie),
            sink_name: over.sink_name.or(self.sink_name),
            format: over.format.or(self.format),
            rate: over.rate.or(self.rate),
            channels: over.channels.or(self.channels),
            period_frames: over.period_frames.or(self.period_frames),
            output: over.output.or(self.output),
            input: over.input.or(self.input),
            dsp: over.dsp.or(self.dsp),
            dsp_chain: over.dsp_chain.or(self.dsp_chain),
            dsp_program: over.dsp_program.or(self.dsp_program),
            dsp_fallback: over.dsp_fallback.or(self.dsp_fallback),
            dsp_stall_timeout_ms: over.dsp_stall_timeout_ms.or(self.dsp_stall_timeout_ms),
            rt_priority: over.rt_priority.or(self.rt_priority),
            stats_interval: over.stats_interval.or(self.stats_interval),
            shm: over.shm.or(self.shm),
            srbchannel: over.srbchannel.or(self.srbchannel),
            spin_us: over.spin_us.or(self.spin_us),
            max_clients: over.max_clients.or(self.max_clients),
            modules: over.modules.or(self.modules),
        }
    }

    /// Fills in the defaults and checks every value.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let format = match &self.format {
            None => SampleFormat::Float32Le,
            Some(f) => parse_format(f).ok_or_else(|| {
                let names: Vec<_> = SampleFormat::ALL.iter().map(|f| f.name()).collect();
                ConfigError::Invalid(format!(
                    "unknown sample format {f:?}; one of {}",
                    names.join(", ")
                ))
            })?,
        };
        let spec = SampleSpec {
            format,
            channels: self.channels.unwrap_or(2),
            rate: self.rate.unwrap_or(48_000),
        };
        spec.check()
            .map_err(|e| ConfigError::Invalid(format!("sink sample spec: {e}")))?;
        let map = default_map(spec.channels)
            .ok_or_else(|| ConfigError::Invalid("no channel map".into()))?;
        let period_frames = self.period_frames.unwrap_or(spec.rate as usize / 100);
        if !(MIN_PERIOD..=MAX_PERIOD).contains(&period_frames) {
            return Err(ConfigError::Invalid(format!(
                "period of {period_frames} frames is outside {MIN_PERIOD}..={MAX_PERIOD}"
            )));
        }
        let output = match &self.output {
            None => None,
            Some(o) => Some(o.parse().map_err(|e: crate::engine::output::BadOutput| {
                ConfigError::Invalid(e.to_string())
            })?),
        };
        let input = match self.input.as_deref() {
            None => None,
            Some("alsa") => Some("default".to_owned()),
            Some(i) => match i.strip_prefix("alsa:").filter(|d| !d.is_empty()) {
                Some(d) => Some(d.to_owned()),
                None => {
                    return Err(ConfigError::Invalid(format!(
                        "unknown input {i:?}: expected `alsa[:DEVICE]`"
                    )))
                }
            },
        };
        let spin_us = self
            .spin_us
            .unwrap_or(crate::control::session::SPIN_WINDOW.as_micros() as u64);
        if spin_us > MAX_SPIN_US {
            return Err(ConfigError::Invalid(format!(
                "spin_us {spin_us} is above {MAX_SPIN_US}"
            )));
        }
        let max_clients = self
            .max_clients
            .unwrap_or(crate::control::server_loop::DEFAULT_MAX_CLIENTS);
        if max_clients == 0 {
            return Err(ConfigError::Invalid(
                "max_clients must be at least 1".into(),
            ));
        }
        let dsp_chain = self.dsp_chain.filter(|c| !c.is_empty());
        let explicit_fallback = match &self.dsp_fallback {
            None => None,
            Some(f) => Some(
                f.parse::<Fallback>()
                    .map_err(|e| ConfigError::Invalid(format!("dsp_fallback {e}")))?,
            ),
        };
        let dsp_fallback = Fallback::resolve(explicit_fallback, dsp_chain.is_none());
        let stall_ms = self
            .dsp_stall_timeout_ms
            .unwrap_or(DEFAULT_STALL_TIMEOUT.as_millis() as u64);
        if !(1..=MAX_STALL_TIMEOUT_MS).contains(&stall_ms) {
            return Err(ConfigError::Invalid(format!(
                "dsp_stall_timeout_ms {stall_ms} is not in 1..={MAX_STALL_TIMEOUT_MS}"
            )));
        }
        let rt_priority = self.rt_priority.unwrap_or(DEFAULT_RT_PRIORITY);
        if rt_priority > crate::rt::sched::MAX_PRIORITY {
            return Err(ConfigError::Invalid(format!(
                "rt_priority {rt_priority} is not in 0..={}",
                crate::rt::sched::MAX_PRIORITY
            )));
        }
        let sink_name = self
            .sink_name
            .unwrap_or_else(|| crate::control::server_info::DEFAULT_SINK_NAME.to_owned());
        if sink_name.is_empty() || sink_name.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid(format!(
                "sink name {sink_name:?} must be non-empty without spaces"
            )));
        }
        Ok(Config {
            socket: self.socket,
            control_socket: self.control_socket,
            tcp: self.tcp,
            tcp_anonymous: self.tcp_anonymous.unwrap_or(false),
            cookie: self.cookie,
            sink_name,
            spec,
            map,
            period_frames,
            output,
            input,
            dsp: self.dsp.unwrap_or(true),
            dsp_chain,
            dsp_program: self.dsp_program,
            dsp_fallback,
            dsp_stall_timeout: std::time::Duration::from_millis(stall_ms),
            rt_priority,
            stats_interval: self.stats_interval.unwrap_or(10),
            shm: self.shm.unwrap_or(true),
            srbchannel: self.srbchannel.unwrap_or(true),
            spin: std::time::Duration::from_micros(spin_us),
            max_clients,
            modules: self.modules.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = FileConfig::default().resolve().unwrap();
        assert_eq!(
            c.spec,
            SampleSpec {
                format: SampleFormat::Float32Le,
                channels: 2,
                rate: 48_000
            }
        );
        assert_eq!(c.period_frames, 480);
        assert_eq!(c.output, None);
        assert_eq!(c.sink_name, "srb_output");
        assert_eq!(c.map.positions(), &[1, 2]);
        assert!(c.shm && c.srbchannel);
    }

    #[test]
    fn shm_and_srbchannel_switches() {
        let f: FileConfig = toml::from_str("shm = false\nsrbchannel = false\n").unwrap();
        let c = f.clone().resolve().unwrap();
        assert!(!c.shm && !c.srbchannel);
        // A command-line value wins over the file.
        let over = FileConfig {
            shm: Some(true),
            ..Default::default()
        };
        let c = f.overlay(over).resolve().unwrap();
        assert!(c.shm && !c.srbchannel);
        assert!(toml::from_str::<FileConfig>("shm = \"yes\"").is_err());
    }

    #[test]
    fn spin_window_default_range_and_override() {
        let c = FileConfig::default().resolve().unwrap();
        assert_eq!(c.spin, crate::control::session::SPIN_WINDOW);
        let f: FileConfig = toml::from_str("spin_us = 0\n").unwrap();
        assert_eq!(f.resolve().unwrap().spin, std::time::Duration::ZERO);
        let f: FileConfig = toml::from_str("spin_us = 1000\n").unwrap();
        assert_eq!(f.resolve().unwrap().spin.as_micros(), 1000);
        let f: FileConfig = toml::from_str("spin_us = 1001\n").unwrap();
        let e = f.resolve().unwrap_err().to_string();
        assert!(e.contains("spin_us 1001 is above 1000"), "{e}");
    }

    #[test]
    fn toml_and_overlay() {
        let f: FileConfig = toml::from_str(
            "format = \"s16le\"\nrate = 44100\nchannels = 1\noutput = \"wav:/tmp/o.wav\"\nperiod_frames = 256\n",
        )
        .unwrap();
        let over = FileConfig {
            rate: Some(22_050),
            ..Default::default()
        };
        let c = f.overlay(over).resolve().unwrap();
        assert_eq!(
            (c.spec.format, c.spec.rate, c.spec.channels),
            (SampleFormat::S16Le, 22_050, 1)
        );
        assert_eq!(c.period_frames, 256);
        assert_eq!(c.output, Some(OutputSpec::Wav("/tmp/o.wav".into())));
        assert_eq!(c.map.positions(), &[0]);
    }

    #[test]
    fn bad_values_are_named_errors() {
        assert!(toml::from_str::<FileConfig>("nope = 1").is_err());
        for f in [
            FileConfig {
                format: Some("s17le".into()),
                ..Default::default()
            },
            FileConfig {
                period_frames: Some(32),
                ..Default::default()
            },
            FileConfig {
                channels: Some(0),
                ..Default::default()
            },
            FileConfig {
                output: Some("pulse".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(f.resolve(), Err(ConfigError::Invalid(_))));
        }
    }

    #[test]
    fn dsp_policy_and_rt_priority() {
        let c = FileConfig::default().resolve().unwrap();
        assert_eq!(c.dsp_fallback, Fallback::Bypass, "empty chain: bypass");
        assert_eq!(c.dsp_stall_timeout, DEFAULT_STALL_TIMEOUT);
        assert_eq!(c.rt_priority, DEFAULT_RT_PRIORITY);
        let f: FileConfig = toml::from_str("dsp_chain = \"gain:-20dB\"\n").unwrap();
        let c = f.clone().resolve().unwrap();
        assert_eq!(c.dsp_fallback, Fallback::Silence, "a chain: silence");
        // Bypass with a chain only when asked for.
        let over = FileConfig {
            dsp_fallback: Some("bypass".into()),
            dsp_stall_timeout_ms: Some(250),
            rt_priority: Some(0),
            ..Default::default()
        };
        let c = f.overlay(over).resolve().unwrap();
        assert_eq!(c.dsp_fallback, Fallback::Bypass);
        assert_eq!(c.dsp_stall_timeout.as_millis(), 250);
        assert_eq!(c.rt_priority, 0);
        for bad in [
            "dsp_fallback = \"loud\"",
            "dsp_stall_timeout_ms = 0",
            "dsp_stall_timeout_ms = 60001",
            "rt_priority = 100",
        ] {
            let f: FileConfig = toml::from_str(bad).unwrap();
            assert!(matches!(f.resolve(), Err(ConfigError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in SampleFormat::ALL {
            assert_eq!(parse_format(format_name(f)), Some(f));
        }
        assert_eq!(parse_format("FLOAT32LE"), Some(SampleFormat::Float32Le));
    }
}
