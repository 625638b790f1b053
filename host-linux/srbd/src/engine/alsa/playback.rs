//! [`AlsaPlayback`]: a sink's ALSA output. One call sequence per period:
//!
//! ```text
//! dev.wait(timeout)?;            // one period of room (or the pacer's tick)
//! mix into samples (negotiated().period_frames × sink channels, at negotiated().rate)
//! dev.write_period(&samples)?;   // remap, encode, writei; never blocks
//! ```
//!
//! Any `Err` means the device is gone for now: the sink logs it, bumps
//! `failures`, drops the `AlsaPlayback`, runs on its timer with the output
//! discarded, and reopens when [`super::recover::Reopen::due`] says so.

use std::sync::Arc;
use std::time::Duration;

use alsa::Direction;
use srb_pulse::format::default_map;
use srb_pulse::tagstruct::SampleSpec;

use super::pcm::{Device, DeviceError, Negotiated, OpenError};
use super::recover::AlsaCounters;
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

impl AlsaPlayback {
    /// Opens `device` for the sink spec `want` (its format is the preferred
    /// device format; samples are always handed over as `f32`) and
    /// `period_frames`; see [`super::pcm`] for what is negotiated.
    pub fn open(
        device: &str,
        want: SampleSpec,
        period_frames: usize,
        counters: Arc<AlsaCounters>,
    ) -> Result<Self, OpenError> {
        let dev = Device::open(device, Direction::Playback, want, period_frames, counters)?;
        let neg = dev.negotiated().clone();
        let remap = Remap::new(
            default_map(want.channels).positions(),
            default_map(neg.channels).positions(),
        );
        let dev_samples = neg.period_frames * usize::from(neg.channels);
        Ok(Self {
            remap,
            sink_channels: usize::from(want.channels),
            remapped: vec![0.0; dev_samples],
            bytes: vec![0; neg.period_frames * neg.frame_bytes()],
            dev,
        })
    }

    /// What the device took (the sink runs at its rate and period).
    pub fn negotiated(&self) -> &Negotiated {
        self.dev.negotiated()
    }

    /// The device (route, clock, counters).
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Waits for one period of room; see [`Device::wait`].
    pub fn wait(&mut self, timeout: Duration) -> Result<(), DeviceError> {
        self.dev.wait(timeout)
    }

    /// Writes one period of interleaved sink samples
    /// (`period_frames × sink channels`; a shorter slice is padded with
    /// silence, a longer one cut). Never blocks, never allocates.
    pub fn write_period(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        let frames = self.dev.negotiated().period_frames;
        let want = frames * self.sink_channels;
        let samples = &samples[..samples.len().min(want)];
        let format = self.dev.negotiated().format;
        if self.remap.is_identity() && samples.len() == want {
            fmt::encode(format, samples, &mut self.bytes);
        } else {
            let whole = samples.len() / self.sink_channels.max(1);
            let per = usize::from(self.dev.negotiated().channels);
            self.remapped.fill(0.0);
            self.remap.apply(
                &samples[..whole * self.sink_channels],
                &mut self.remapped[..whole * per],
            );
            fmt::encode(format, &self.remapped, &mut self.bytes);
        }
        self.dev.write_bytes(&self.bytes)
    }
}
