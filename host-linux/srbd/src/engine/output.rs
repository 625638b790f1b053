//! The sink's output backends: `null` (discard), `wav:PATH` (write every
//! rendered sample to a WAV file) and `alsa[:DEVICE]` (an ALSA playback
//! device that also clocks the sink: the mixer drives it itself, see
//! [`crate::engine::alsa::driven`]; here it is only named and parsed).
//!
//! The mixer never does file I/O: it pushes rendered samples into an
//! `rtrb` ring and unparks a writer thread, which owns the file. If the
//! writer falls more than [`WAV_BUFFER_SECONDS`] behind, samples are
//! dropped and counted (and logged), never waited for.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::str::FromStr;
use std::thread::JoinHandle;
use std::time::Duration;

use srb_pulse::tagstruct::SampleSpec;

/// How far (in seconds of audio) the WAV writer may lag before samples are
/// dropped.
pub const WAV_BUFFER_SECONDS: usize = 4;

/// Where the sink's audio goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutputSpec {
    /// Discarded.
    #[default]
    Null,
    /// Written to a WAV file (created or truncated).
    Wav(PathBuf),
    /// Played on this ALSA device (`alsa` alone: `default`), which
    /// clocks the sink.
    Alsa(String),
}

/// A bad `--output` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output {0:?}: expected `null`, `wav:PATH` or `alsa[:DEVICE]`")]
pub struct BadOutput(pub String);

impl FromStr for OutputSpec {
    type Err = BadOutput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "null" => Ok(Self::Null),
            "alsa" => Ok(Self::Alsa("default".into())),
            _ => {
                if let Some(p) = s.strip_prefix("wav:").filter(|p| !p.is_empty()) {
                    Ok(Self::Wav(PathBuf::from(p)))
                } else if let Some(d) = s.strip_prefix("alsa:").filter(|d| !d.is_empty()) {
                    Ok(Self::Alsa(d.to_owned()))
                } else {
                    Err(BadOutput(s.to_owned()))
                }
            }
        }
    }
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Wav(p) => write!(f, "wav:{}", p.display()),
            Self::Alsa(d) => write!(f, "alsa:{d}"),
        }
    }
}

/// Why an output could not be opened or finished.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The WAV file could not be created or written.
    #[error("wav output {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: hound::Error,
    },
    /// The writer thread could not be started or panicked.
    #[error("wav writer thread: {0}")]
    Thread(String),
}

/// A running output backend.
pub struct Output {
    ring: Option<rtrb::Producer<f32>>,
    writer: Option<JoinHandle<Result<u64, OutputError>>>,
    dropped: u64,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("wav", &self.writer.is_some())
            .field("dropped", &self.dropped)
            .finish()
    }
}

/// The WAV sample layout for a sink format: floats stay 32-bit float;
/// formats that fit 16 bits (u8, A-law, µ-law, s16) become 16-bit PCM;
/// 24- and 32-bit formats become 32-bit PCM.
fn wav_spec(ss: &SampleSpec) -> hound::WavSpec {
    use srb_pulse::sample::SampleFormat as F;
    let (bits, format) = match ss.format {
        F::Float32Le | F::Float32Be => (32, hound::SampleFormat::Float),
        F::U8 | F::Alaw | F::Ulaw | F::S16Le | F::S16Be => (16, hound::SampleFormat::Int),
        _ => (32, hound::SampleFormat::Int),
    };
    hound::WavSpec {
        channels: u16::from(ss.channels),
        sample_rate: ss.rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

fn write_samples(
    w: &mut hound::WavWriter<BufWriter<File>>,
    spec: &hound::WavSpec,
    samples: &[f32],
) -> Result<(), hound::Error> {
    for &x in samples {
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, _) => w.write_sample(x)?,
            // The mixer quantized to the sink format, so these are exact.
            (_, 16) => {
                w.write_sample((f64::from(x) * 32768.0).round().clamp(-32768.0, 32767.0) as i16)?
            }
            _ => w.write_sample(
                (f64::from(x) * 2_147_483_648.0)
                    .round()
                    .clamp(-2_147_483_648.0, 2_147_483_647.0) as i32,
            )?,
        }
    }
    Ok(())
}

impl Output {
    /// Opens the backend for audio in `ss`.
    pub fn open(spec: &OutputSpec, ss: &SampleSpec) -> Result<Self, OutputError> {
        let path = match spec {
            // The mixer drives an ALSA device itself.
            OutputSpec::Null | OutputSpec::Alsa(_) => {
                return Ok(Self {
                    ring: None,
                    writer: None,
                    dropped: 0,
                })
            }
            OutputSpec::Wav(p) => p.clone(),
        };
        let wspec = wav_spec(ss);
        let mut wav =
            hound::WavWriter::create(&path, wspec).map_err(|source| OutputError::Wav {
                path: path.clone(),
                source,
            })?;
        let capacity = WAV_BUFFER_SECONDS * ss.rate as usize * usize::from(ss.channels);
        let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(capacity.max(1));
        let writer = std::thread::Builder::new()
            .name("srbd-wav".into())
            .spawn(move || {
                let err = |source| OutputError::Wav {
                    path: path.clone(),
                    source,
                };
                let mut buf = vec![0f32; 64 * 1024];
                let mut written = 0u64;
                loop {
                    let n = consumer.slots().min(buf.len());
                    if n > 0 {
                        let chunk = &mut buf[..n];
                        if consumer.pop_entire_slice(chunk).is_ok() {
                            write_samples(&mut wav, &wspec, chunk).map_err(err)?;
                            written += n as u64;
                        }
                        continue;
                    }
                    if consumer.is_abandoned() && consumer.is_empty() {
                        break;
                    }
                    std::thread::park_timeout(Duration::from_millis(50));
                }
                wav.finalize().map_err(err)?;
                Ok(written)
            })
            .map_err(|e| OutputError::Thread(e.to_string()))?;
        Ok(Self {
            ring: Some(producer),
            writer: Some(writer),
            dropped: 0,
        })
    }

    /// Hands rendered samples to the backend. Never blocks.
    pub fn write(&mut self, samples: &[f32]) {
        let Some(ring) = &mut self.ring else { return };
        let (done, rest) = ring.push_partial_slice(samples);
        if !rest.is_empty() {
            if self.dropped == 0 {
                tracing::warn!("wav writer is behind; dropping samples");
            }
            self.dropped += rest.len() as u64;
        }
        if !done.is_empty() {
            if let Some(w) = &self.writer {
                w.thread().unpark();
            }
        }
    }

    /// Samples handed to the backend and not yet written out (the wav
    /// writer's ring; 0 for `null`).
    pub fn queued(&self) -> usize {
        self.ring
            .as_ref()
            .map_or(0, |r| r.buffer().capacity() - r.slots())
    }

    /// Samples dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Flushes and closes the backend; returns the samples written.
    pub fn finish(mut self) -> Result<u64, OutputError> {
        drop(self.ring.take());
        match self.writer.take() {
            None => Ok(0),
            Some(w) => {
                w.thread().unpark();
                w.join()
                    .map_err(|_| OutputError::Thread("panicked".into()))?
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("null".parse::<OutputSpec>(), Ok(OutputSpec::Null));
        assert_eq!(
            "wav:/tmp/x.wav".parse::<OutputSpec>(),
            Ok(OutputSpec::Wav("/tmp/x.wav".into()))
        );
        assert!("wav:".parse::<OutputSpec>().is_err());
        assert_eq!(
            "alsa".parse::<OutputSpec>(),
            Ok(OutputSpec::Alsa("default".into()))
        );
        assert_eq!(
            "alsa:hw:0,1".parse::<OutputSpec>(),
            Ok(OutputSpec::Alsa("hw:0,1".into()))
        );
        assert!("alsa:".parse::<OutputSpec>().is_err());
        assert!("pulse".parse::<OutputSpec>().is_err());
        assert_eq!(OutputSpec::Alsa("hw:0".into()).to_string(), "alsa:hw:0");
        assert_eq!(OutputSpec::Wav("/a".into()).to_string(), "wav:/a");
    }

    #[test]
    fn wav_round_trip_float_and_s16() {
        let dir = std::env::temp_dir().join(format!("srbd-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (format, name) in [(5u8, "f.wav"), (3u8, "s.wav")] {
            let path = dir.join(name);
            let ss = SampleSpec {
                format: srb_pulse::sample::SampleFormat::from_wire(format),
                channels: 2,
                rate: 8000,
            };
            let mut out = Output::open(&OutputSpec::Wav(path.clone()), &ss).unwrap();
            let samples: Vec<f32> = (0..2000).map(|i| (i as f32 - 1000.0) / 32768.0).collect();
            for c in samples.chunks(160) {
                out.write(c);
            }
            assert_eq!(out.finish().unwrap(), 2000);
            let mut r = hound::WavReader::open(&path).unwrap();
            assert_eq!(r.spec().channels, 2);
            let back: Vec<f32> = if format == 5 {
                r.samples::<f32>().map(Result::unwrap).collect()
            } else {
                r.samples::<i16>()
                    .map(|s| f32::from(s.unwrap()) / 32768.0)
                    .collect()
            };
            assert_eq!(back, samples);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let ss = SampleSpec {
            format: srb_pulse::sample::SampleFormat::Float32Le,
            channels: 2,
            rate: 48_000,
        };
        let e = Output::open(&OutputSpec::Wav("/nonexistent/dir/x.wav".into()), &ss);
        assert!(matches!(e, Err(OutputError::Wav { .. })));
    }
}
