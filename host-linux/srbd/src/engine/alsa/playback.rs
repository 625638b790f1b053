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
use super::stream::{default_remap, AlsaStream};
use crate::engine::audio::format as fmt;
use crate::engine::audio::remap::Remap;

/// An open ALSA playback device fed with `f32` sink samples.
#[derive(Debug)]
pub struct AlsaPlayback {
    dev: Device,
    remap: Remap,
    sink_channels: usize,
    remapped: Vec<f32>,
    bytes: Vec<u8>,
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
        let dev = Device::open(device, Self::DIRECTION, want, period_frames, counters)?;
        let neg = dev.negotiated();
        Ok(Self {
            remap: default_remap(want.channels, neg.channels),
            sink_channels: usize::from(want.channels),
            remapped: vec![0.0; neg.period_frames * usize::from(neg.channels)],
            bytes: vec![0; neg.period_frames * neg.frame_bytes()],
            dev,
        })
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
        let want = neg.period_frames * self.sink_channels;
        let samples = &samples[..samples.len().min(want)];
        if self.remap.is_identity() && samples.len() == want {
            fmt::encode(neg.format, samples, &mut self.bytes);
        } else {
            let whole = samples.len() / self.sink_channels.max(1);
            let per = usize::from(neg.channels);
            self.remapped.fill(0.0);
            self.remap.apply(
                &samples[..whole * self.sink_channels],
                &mut self.remapped[..whole * per],
            );
            fmt::encode(neg.format, &self.remapped, &mut self.bytes);
        }
        self.dev.write_bytes(&self.bytes)
    }
}
