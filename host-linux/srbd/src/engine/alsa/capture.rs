//! [`AlsaCapture`]: a source's ALSA input. One call sequence per period:
//!
//! ```text
//! dev.wait(timeout)?;                      // one period of data (or the pacer's tick)
//! let frames = dev.read_period(&mut out)?; // readi, decode, remap; never blocks
//! hand out[..frames × source channels] to the record streams (at negotiated().rate)
//! ```
//!
//! Failure semantics are those of [`super::playback`]: any `Err` drops the
//! device; the source captures silence on its timer meanwhile.

use std::sync::Arc;
use std::time::Duration;

use alsa::Direction;
use srb_pulse::format::default_map;
use srb_pulse::tagstruct::SampleSpec;

use super::pcm::{Device, DeviceError, Negotiated, OpenError};
use super::recover::AlsaCounters;
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

impl AlsaCapture {
    /// Opens `device` for the source spec `want` and `period_frames`
    /// (negotiated as for playback, see [`super::pcm`]) and starts it.
    pub fn open(
        device: &str,
        want: SampleSpec,
        period_frames: usize,
        counters: Arc<AlsaCounters>,
    ) -> Result<Self, OpenError> {
        let dev = Device::open(device, Direction::Capture, want, period_frames, counters)?;
        let neg = dev.negotiated().clone();
        let remap = Remap::new(
            default_map(neg.channels).positions(),
            default_map(want.channels).positions(),
        );
        Ok(Self {
            remap,
            source_channels: usize::from(want.channels),
            decoded: vec![0.0; neg.period_frames * usize::from(neg.channels)],
            bytes: vec![0; neg.period_frames * neg.frame_bytes()],
            dev,
        })
    }

    /// What the device took (the source runs at its rate and period).
    pub fn negotiated(&self) -> &Negotiated {
        self.dev.negotiated()
    }

    /// The device (route, clock, counters).
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Waits for one period of data; see [`Device::wait`].
    pub fn wait(&mut self, timeout: Duration) -> Result<(), DeviceError> {
        self.dev.wait(timeout)
    }

    /// Reads one period into `out` as interleaved source samples and
    /// returns the frames read (fewer than a period only when the device
    /// had less; the rest of `out` is zeroed). `out` should hold
    /// `period_frames × source channels` samples; a shorter one gets what
    /// fits. Never blocks, never allocates.
    pub fn read_period(&mut self, out: &mut [f32]) -> Result<usize, DeviceError> {
        let frames = self.dev.read_bytes(&mut self.bytes)?;
        let dev_ch = usize::from(self.dev.negotiated().channels);
        let frame_bytes = self.dev.negotiated().frame_bytes();
        let format = self.dev.negotiated().format;
        let frames = frames.min(out.len() / self.source_channels.max(1));
        fmt::decode(
            format,
            &self.bytes[..frames * frame_bytes],
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
