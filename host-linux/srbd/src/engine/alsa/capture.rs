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
use super::stream::{open_device, AlsaStream, PeriodBuffers};
use crate::engine::audio::format as fmt;

/// An open ALSA capture device read as `f32` source samples.
#[derive(Debug)]
pub struct AlsaCapture {
    dev: Device,
    buf: PeriodBuffers,
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

impl AlsaCapture {
    /// Reads one period into `out` as interleaved source samples and
    /// returns the frames read (fewer than a period only when the device
    /// had less; the rest of `out` is zeroed). `out` should hold
    /// `period_frames × source channels` samples; a shorter one gets what
    /// fits. Never blocks, never allocates.
    pub fn read_period(&mut self, out: &mut [f32]) -> Result<usize, DeviceError> {
        let b = &mut self.buf;
        let frames = self.dev.read_bytes(&mut b.bytes)?;
        let neg = self.dev.negotiated();
        let dev_ch = usize::from(neg.channels);
        let frames = frames.min(out.len() / b.channels.max(1));
        fmt::decode(
            neg.format,
            &b.bytes[..frames * neg.frame_bytes()],
            &mut b.samples[..frames * dev_ch],
        );
        let n = frames * b.channels;
        if b.remap.is_identity() {
            out[..n].copy_from_slice(&b.samples[..n]);
        } else {
            b.remap.apply(&b.samples[..frames * dev_ch], &mut out[..n]);
        }
        out[n..].fill(0.0);
        Ok(frames)
    }
}
