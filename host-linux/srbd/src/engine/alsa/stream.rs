//! [`AlsaStream`]: what [`super::AlsaPlayback`] and [`super::AlsaCapture`]
//! have in common, so a sink or a source (and [`super::resilient`]) drives
//! either the same way.

use std::sync::Arc;
use std::time::Duration;

use alsa::Direction;
use srb_pulse::format::default_map;
use srb_pulse::tagstruct::SampleSpec;

use super::error::{DeviceError, OpenError};
use super::negotiate::Negotiated;
use super::pcm::Device;
use super::recover::AlsaCounters;
use crate::engine::audio::remap::Remap;

/// One direction of an ALSA device, carrying `f32` periods.
pub trait AlsaStream: Sized {
    /// Playback or capture.
    const DIRECTION: Direction;

    /// Opens `device` for the spec `want` (the sink's or the source's) and
    /// `period_frames` (see [`super::negotiate`]); troubles are counted in
    /// `counters`, which outlive reopenings.
    fn open(
        device: &str,
        want: SampleSpec,
        period_frames: usize,
        counters: Arc<AlsaCounters>,
    ) -> Result<Self, OpenError>;

    /// The device (name, route, clock, counters).
    fn device(&self) -> &Device;

    /// The device, to wait on it.
    fn device_mut(&mut self) -> &mut Device;

    /// What the device took: the sink or source runs at its rate and
    /// period.
    fn negotiated(&self) -> &Negotiated {
        self.device().negotiated()
    }

    /// Waits for one period of room or data; see [`Device::wait`].
    fn wait(&mut self, timeout: Duration) -> Result<(), DeviceError> {
        self.device_mut().wait(timeout)
    }
}

/// The remapping between PulseAudio's default maps of `from` and `to`
/// channels.
pub(super) fn default_remap(from: u8, to: u8) -> Remap {
    Remap::new(default_map(from).positions(), default_map(to).positions())
}

/// What playback and capture both keep beside their [`Device`]: the
/// remapping between the server's channels and the device's, and one
/// period's scratch in the device's shape (`f32` samples and encoded
/// bytes), allocated once at open so the period path never allocates.
#[derive(Debug)]
pub(super) struct PeriodBuffers {
    /// Server channels → device channels (playback) or back (capture).
    pub(super) remap: Remap,
    /// The server side's channels (the sink's or the source's).
    pub(super) channels: usize,
    /// One period of device-shaped samples.
    pub(super) samples: Vec<f32>,
    /// One period of device-format bytes.
    pub(super) bytes: Vec<u8>,
}

/// Opens `device` for `dir` and sizes its [`PeriodBuffers`] for the
/// server side's `want` spec.
pub(super) fn open_device(
    device: &str,
    dir: Direction,
    want: SampleSpec,
    period_frames: usize,
    counters: Arc<AlsaCounters>,
) -> Result<(Device, PeriodBuffers), OpenError> {
    let dev = Device::open(device, dir, want, period_frames, counters)?;
    let neg = dev.negotiated();
    let remap = match dir {
        Direction::Playback => default_remap(want.channels, neg.channels),
        Direction::Capture => default_remap(neg.channels, want.channels),
    };
    let buffers = PeriodBuffers {
        remap,
        channels: usize::from(want.channels),
        samples: vec![0.0; neg.period_frames * usize::from(neg.channels)],
        bytes: vec![0; neg.period_frames * neg.frame_bytes()],
    };
    Ok((dev, buffers))
}

#[cfg(test)]
mod tests {
    use super::super::{AlsaCapture, AlsaPlayback, Resilient};

    fn send<T: Send>() {}

    /// Opened on one thread, run on the mixer's.
    #[test]
    fn streams_move_between_threads() {
        send::<AlsaPlayback>();
        send::<AlsaCapture>();
        send::<Resilient<AlsaPlayback>>();
        send::<Resilient<AlsaCapture>>();
    }
}
