//! [`AlsaCapture`]: a source's ALSA input. One call sequence per period
//! (methods of [`AlsaStream`] and this type):
//!
//! ```text
//! dev.wait(timeout)?;                      // one period of data (or the pacer's tick)
//! let frames = dev.read_period(&mut out)?; // readi, decode, remap; never blocks
//! hand out[..frames × source channels] to the record streams (at negotiated().rate)
//! ```
//!
//! Any `Err` means the device is gone for now: see [`super::resilient`]
//! (the source captures silence on its timer meanwhile).

use std::sync::Arc;

use alsa::Direction;
use srb_pulse::tagstruct::SampleSpec;

use super::error::{DeviceError, OpenError};
use super::pcm::Device;
use super::recover::AlsaCounters;
use super::stream::{default_remap, AlsaStream};
use crate::engine::audio::format as fmt;
use crate::engine::audio::remap::Remap;

/// An open ALSA capture device read as `f32` source samples.
#[derive(Debug)]
pub struct AlsaCapture {
    dev: Device,
    remap: Remap,
    source_channels: usize,
    decoded: Vec<f32>,
    bytes: Vec<u8>,
}

impl AlsaStream for AlsaCapture {
    const DIRECTION: Direction = Direction::Capture;

    /// Negotiated as for playback; the device is started here.
    fn open(
        device: &str,
        want: SampleSpec,
        period_frames: usize,
        counters: Arc<AlsaCounters>,
    ) -> Result<Self, OpenError> {
        let dev = Device::open(device, Self::DIRECTION, want, period_frames, counters)?;
        let neg = dev.negotiated();
        Ok(Self {
            remap: default_remap(neg.channels, want.channels),
            source_channels: usize::from(want.channels),
            decoded: vec![0.0; neg.period_frames * usize::from(neg.channels)],
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

impl AlsaCapture {
    /// Reads one period into `out` as interleaved source samples and
    /// returns the frames read (fewer than a period only when the device
    /// had less; the rest of `out` is zeroed). `out` should hold
    /// `period_frames × source channels` samples; a shorter one gets what
    /// fits. Never blocks, never allocates.
    pub fn read_period(&mut self, out: &mut [f32]) -> Result<usize, DeviceError> {
        let frames = self.dev.read_bytes(&mut self.bytes)?;
        let neg = self.dev.negotiated();
        let dev_ch = usize::from(neg.channels);
        let frames = frames.min(out.len() / self.source_channels.max(1));
        fmt::decode(
            neg.format,
            &self.bytes[..frames * neg.frame_bytes()],
            &mut self.decoded[..frames * dev_ch],
        );
        let n = frames * self.source_channels;
        if self.remap.is_identity() {
            out[..n].copy_from_slice(&self.decoded[..n]);
        } else {
            self.remap
                .apply(&self.decoded[..frames * dev_ch], &mut out[..n]);
        }
        out[n..].fill(0.0);
        Ok(frames)
    }
}
