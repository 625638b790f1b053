//! Opening handshake with a device: the hardware parameters asked and what
//! the device took ([`Negotiated`]).
//!
//! | parameter | asked | taken |
//! |---|---|---|
//! | access | interleaved read/write | — |
//! | format | the sink's, else the first the device takes of [`FALLBACK_FORMATS`] | reported in [`Negotiated::format`]; samples are converted to/from `f32` |
//! | channels | the sink's | the nearest; remapped with PulseAudio's default maps |
//! | rate | the sink's, with alsa-lib resampling allowed (`plug`, `default`, `sysdefault` resample) | the nearest: a `hw:` device that refuses it reports its own, and the sink must run at [`Negotiated::rate`] (no resampling here) |
//! | period | `--period-frames` | the nearest: the sink must use [`Negotiated::period_frames`] |
//! | buffer | [`BUFFER_PERIODS`] periods | the nearest |
//!
//! Software parameters: wake at one period (`avail_min`); playback starts
//! when the first period is written, capture is started at open.
//!

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::ValueOr;
use srb_pulse::tagstruct::SampleSpec;

use super::error::OpenError;
use crate::engine::audio::format::{self as fmt, SampleFormat};

/// The buffer asked for, in periods.
pub const BUFFER_PERIODS: usize = 3;

/// Formats tried, in this order, when the device refuses the sink's.
pub const FALLBACK_FORMATS: [SampleFormat; 6] = [
    fmt::FLOAT32LE,
    fmt::S32LE,
    fmt::S24_32LE,
    fmt::S16LE,
    fmt::S24LE,
    fmt::U8,
];

/// The ALSA format of a PulseAudio sample format.
pub fn alsa_format(f: SampleFormat) -> Option<Format> {
    Some(match f {
        SampleFormat::U8 => Format::U8,
        SampleFormat::Alaw => Format::ALaw,
        SampleFormat::Ulaw => Format::MuLaw,
        SampleFormat::S16Le => Format::S16LE,
        SampleFormat::S16Be => Format::S16BE,
        SampleFormat::Float32Le => Format::FloatLE,
        SampleFormat::Float32Be => Format::FloatBE,
        SampleFormat::S32Le => Format::S32LE,
        SampleFormat::S32Be => Format::S32BE,
        SampleFormat::S24Le => Format::S243LE,
        SampleFormat::S24Be => Format::S243BE,
        SampleFormat::S24_32Le => Format::S24LE,
        SampleFormat::S24_32Be => Format::S24BE,
        SampleFormat::Unknown(_) => return None,
    })
}

/// The PulseAudio sample format of an ALSA format, if srbd converts it.
pub fn pulse_format(f: Format) -> Option<SampleFormat> {
    SampleFormat::ALL
        .into_iter()
        .find(|&p| alsa_format(p) == Some(f))
}

/// What the device took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The sample format on the device.
    pub format: SampleFormat,
    /// Channels on the device.
    pub channels: u8,
    /// The device's rate: the sink or source must run at it.
    pub rate: u32,
    /// Frames per period: the sink or source must use it.
    pub period_frames: usize,
    /// Frames in the device buffer.
    pub buffer_frames: usize,
}

impl Negotiated {
    /// The device's side as a sample spec.
    pub fn spec(&self) -> SampleSpec {
        SampleSpec {
            format: self.format,
            channels: self.channels,
            rate: self.rate,
        }
    }

    /// Bytes per device frame.
    pub fn frame_bytes(&self) -> usize {
        fmt::sample_size(self.format).unwrap_or(1) * usize::from(self.channels)
    }
}

/// Sets the hardware parameters (see the module table) and reads back
/// what the device took.
pub(super) fn negotiate(
    pcm: &PCM,
    name: &str,
    want: SampleSpec,
    period_frames: usize,
) -> Result<Negotiated, OpenError> {
    let params = |what, source| OpenError::Params {
        device: name.to_owned(),
        what,
        source,
    };
    let hw = HwParams::any(pcm).map_err(|e| params("hw_params_any", e))?;
    hw.set_access(Access::RWInterleaved)
        .map_err(|e| params("access", e))?;
    let format = std::iter::once(want.format)
        .chain(FALLBACK_FORMATS)
        .find_map(|f| {
            let a = alsa_format(f)?;
            hw.test_format(a).ok().map(|()| a)
        })
        .ok_or_else(|| OpenError::NoFormat {
            device: name.to_owned(),
        })?;
    hw.set_format(format).map_err(|e| params("format", e))?;
    hw.set_channels_near(u32::from(want.channels))
        .map_err(|e| params("channels", e))?;
    // Not every plugin knows the flag; alsa-lib resamples by default.
    let _ = hw.set_rate_resample(true);
    hw.set_rate_near(want.rate, ValueOr::Nearest)
        .map_err(|e| params("rate", e))?;
    let period = period_frames as alsa::pcm::Frames;
    hw.set_period_size_near(period, ValueOr::Nearest)
        .map_err(|e| params("period size", e))?;
    hw.set_buffer_size_near(period * BUFFER_PERIODS as alsa::pcm::Frames)
        .map_err(|e| params("buffer size", e))?;
    pcm.hw_params(&hw).map_err(|e| params("hw_params", e))?;
    drop(hw);
    let cur = pcm
        .hw_params_current()
        .map_err(|e| params("hw_params_current", e))?;
    let format = cur.get_format().map_err(|e| params("format", e))?;
    let channels = cur.get_channels().map_err(|e| params("channels", e))?;
    let rate = cur.get_rate().map_err(|e| params("rate", e))?;
    let period = cur
        .get_period_size()
        .map_err(|e| params("period size", e))?;
    let buffer = cur
        .get_buffer_size()
        .map_err(|e| params("buffer size", e))?;
    let neg = Negotiated {
        format: pulse_format(format).ok_or_else(|| OpenError::NoFormat {
            device: name.to_owned(),
        })?,
        channels: u8::try_from(channels).unwrap_or(u8::MAX),
        rate,
        period_frames: usize::try_from(period).unwrap_or(0),
        buffer_frames: usize::try_from(buffer).unwrap_or(0),
    };
    if neg.period_frames == 0 || neg.buffer_frames < neg.period_frames || neg.channels == 0 {
        return Err(params(
            "period/buffer",
            alsa::Error::new("snd_pcm_hw_params", libc::EINVAL),
        ));
    }
    tracing::info!(
        device = name,
        format = %neg.format,
        channels = neg.channels,
        rate = neg.rate,
        period = neg.period_frames,
        buffer = neg.buffer_frames,
        asked_format = %want.format,
        asked_channels = want.channels,
        asked_rate = want.rate,
        asked_period = period_frames,
        "ALSA device negotiated"
    );
    Ok(neg)
}
