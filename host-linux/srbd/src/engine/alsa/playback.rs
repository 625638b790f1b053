//! [`AlsaPlayback`]: a sink's ALSA output. One call sequence per period
//! (methods of [`AlsaStream`] and this type):
//!
//! ```text
//! dev.wait(timeout)?;            // one period of room (or the pacer's tick)
//! mix into samples (negotiated().period_frames × sink channels, at negotiated().rate)
//! dev.write_period(&samples)?;   // remap, encode, writei; never blocks
//! ```
//!
//! Any `Err` means the device is gone for now: see [`super::resilient`].

use std::sync::Arc;

use alsa::Direction;
use srb_pulse::tagstruct::SampleSpec;

use super::error::{DeviceError, OpenError};
use super::pcm::Device;
use super::recover::AlsaCounters;
use super::stream::{open_device, AlsaStream, PeriodBuffers};
use crate::engine::audio::format as fmt;

/// An open ALSA playback device fed with `f32` sink samples.
#[derive(Debug)]
pub struct AlsaPlayback {
    dev: Device,
    buf: PeriodBuffers,
}

impl AlsaStream for AlsaPlayback {
    const DIRECTION: Direction = Direction::Playback;

    /// The sink's format is the preferred device format; samples are
    /// always handed over as `f32` and converted here.
    fn open(
        device: &str,
        want: SampleSpec,
        period_frames: usize,
        counters: Arc<AlsaCounters>,
    ) -> Result<Self, OpenError> {
        let (dev, buf) = open_device(device, Self::DIRECTION, want, period_frames, counters)?;
        Ok(Self { dev, buf })
    }

    fn device(&self) -> &Device {
        &self.dev
    }

    fn device_mut(&mut self) -> &mut Device {
        &mut self.dev
    }
}

impl AlsaPlayback {
    /// Writes one period of interleaved sink samples
    /// (`period_frames × sink channels`; a shorter slice is padded with
    /// silence, a longer one cut). Never blocks, never allocates.
    pub fn write_period(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        let neg = self.dev.negotiated();
        let b = &mut self.buf;
        let want = neg.period_frames * b.channels;
        let samples = &samples[..samples.len().min(want)];
        if b.remap.is_identity() && samples.len() == want {
            fmt::encode(neg.format, samples, &mut b.bytes);
        } else {
            let whole = samples.len() / b.channels.max(1);
            let per = usize::from(neg.channels);
            b.samples.fill(0.0);
            b.remap.apply(
                &samples[..whole * b.channels],
                &mut b.samples[..whole * per],
            );
            fmt::encode(neg.format, &b.samples, &mut b.bytes);
        }
        self.dev.write_bytes(&self.buf.bytes)
    }
}
