//! `srbd`'s settings: a TOML file (`--config FILE`) and command-line
//! options over it, every one with a default so that `srbd` with no
//! arguments just works.
//!
//! ```toml
//! socket = "/run/user/1000/srb/native"   # default: <runtime dir>/srb/native
//! tcp = "0.0.0.0:4713"                   # default: no TCP
//! tcp_anonymous = false                  # TCP clients need the cookie
//! cookie = "/home/me/.config/pulse/cookie" # default: $PULSE_COOKIE, else libpulse's path
//! sink_name = "srb_output"
//! format = "float32le"                   # PulseAudio format names
//! rate = 48000
//! channels = 2
//! period_frames = 480                    # 64..=4096; default 10 ms
//! output = "null"                        # or "wav:/path/out.wav"
//! dsp = true                             # spawn the dsp-sim peer (it clocks the sink)
//! dsp_chain = "gain:-6dB,lowpass:8000Hz" # its processing chain; default: none (bit-exact)
//! dsp_program = "/usr/libexec/dsp-sim"   # default: dsp-sim beside srbd, else on PATH
//! stats_interval = 10                    # seconds between DSP statistics log lines; 0: never
//! shm = true                             # offer memfd SHM to local clients of our uid (§1.5)
//! srbchannel = true                      # offer the srbchannel to SHM clients (§5)
//! spin_us = 100                          # poll a chatty client's ring this long before sleeping; 0: never
//! max_clients = 1024                     # clients served at once; one more is refused with a log line
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// `null` or `wav:PATH`.
    pub output: Option<String>,
    /// Run the DSP peer.
    pub dsp: Option<bool>,
    /// The DSP's chain spec.
    pub dsp_chain: Option<String>,
    /// The `dsp-sim` program.
    pub dsp_program: Option<PathBuf>,
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
}

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
    /// Where the rendered audio goes.
    pub output: OutputSpec,
    /// Run the DSP peer (default true).
    pub dsp: bool,
    /// The DSP's chain spec (`None`: no processing, bit-exact).
    pub dsp_chain: Option<String>,
    /// The `dsp-sim` program (`None`: look it up beside srbd, then PATH).
    pub dsp_program: Option<PathBuf>,
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
            tcp: over.tcp.or(self.tcp),
            tcp_anonymous: over.tcp_anonymous.or(self.tcp_anonymous),
            cookie: over.cookie.or(self.cookie),
            sink_name: over.sink_name.or(self.sink_name),
            format: over.format.or(self.format),
            rate: over.rate.or(self.rate),
            channels: over.channels.or(self.channels),
            period_frames: over.period_frames.or(self.period_frames),
            output: over.output.or(self.output),
            dsp: over.dsp.or(self.dsp),
            dsp_chain: over.dsp_chain.or(self.dsp_chain),
            dsp_program: over.dsp_program.or(self.dsp_program),
            stats_interval: over.stats_interval.or(self.stats_interval),
            shm: over.shm.or(self.shm),
            srbchannel: over.srbchannel.or(self.srbchannel),
            spin_us: over.spin_us.or(self.spin_us),
            max_clients: over.max_clients.or(self.max_clients),
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
            None => OutputSpec::Null,
            Some(o) => o.parse().map_err(|e: crate::engine::output::BadOutput| {
                ConfigError::Invalid(e.to_string())
            })?,
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
            tcp: self.tcp,
            tcp_anonymous: self.tcp_anonymous.unwrap_or(false),
            cookie: self.cookie,
            sink_name,
            spec,
            map,
            period_frames,
            output,
            dsp: self.dsp.unwrap_or(true),
            dsp_chain: self.dsp_chain.filter(|c| !c.is_empty()),
            dsp_program: self.dsp_program,
            stats_interval: self.stats_interval.unwrap_or(10),
            shm: self.shm.unwrap_or(true),
            srbchannel: self.srbchannel.unwrap_or(true),
            spin: std::time::Duration::from_micros(spin_us),
            max_clients,
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
        assert_eq!(c.output, OutputSpec::Null);
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
        assert_eq!(c.output, OutputSpec::Wav("/tmp/o.wav".into()));
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
                output: Some("alsa".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(f.resolve(), Err(ConfigError::Invalid(_))));
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
