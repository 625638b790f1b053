//! ALSA devices as a sink's output and a source's input, clocked by the
//! device (or, for a device without a clock, by a timer at the nominal
//! rate).
//!
//! | module | what it holds |
//! |---|---|
//! | [`pcm`] | [`pcm::Device`]: open, `wait` for a period (device poll or pacer), non-blocking period I/O, xrun recovery |
//! | [`negotiate`] | the hardware parameters asked and taken ([`negotiate::Negotiated`]): format, channels, rate, period, buffer |
//! | [`error`] | [`error::OpenError`], [`error::DeviceError`] (vanished, failed, stalled) |
//! | [`stream`] | [`stream::AlsaStream`]: what playback and capture share (open, wait, negotiated) |
//! | [`playback`] | [`playback::AlsaPlayback`]: `f32` sink periods → remap → encode → device |
//! | [`capture`] | [`capture::AlsaCapture`]: device → decode → remap → `f32` source periods |
//! | [`driven`] | [`driven::Driven`]: a stream as a sink's period loop drives it: non-blocking on the mixer thread, reopened with back-off by an opener thread |
//! | [`resilient`] | [`resilient::Resilient`]: a stream that logs and counts a failure, drops the device and reopens it with back-off |
//! | [`route`] | the plugin chain behind a PCM name, from alsa-lib's configuration: routes to a sound server? has no clock? |
//! | [`default`] | [`default::choose_default`]: `sysdefault`, else `plughw:0`, never a sound server, else the null sink |
//! | [`pacing`] | [`pacing::Pacer`] (timerfd at the nominal rate) and [`pacing::Unpaced`] (the run-time test for a device without a clock) |
//! | [`messages`] | [`messages::AlsaMessages`]: alsa-lib's own error messages collected per thread and logged, not printed to stderr |
//! | [`recover`] | [`recover::AlsaCounters`] (underruns, overruns, recoveries, failures, reopens) and [`recover::Reopen`] (back-off 100 ms doubling to 5 s) |
//!
//! ## A sink loop on an ALSA device
//!
//! See [`resilient`]: per period, `wait` then `write_period` on the open
//! device; on an error the sink runs on its timer (output discarded) and
//! asks `reopen_if_due` each period until the device is back.

pub mod capture;
pub mod default;
pub mod driven;
pub mod error;
pub mod messages;
pub mod negotiate;
pub mod pacing;
pub mod pcm;
pub mod playback;
pub mod recover;
pub mod resilient;
pub mod route;
pub mod stream;

pub use capture::AlsaCapture;
pub use driven::{DeviceFacts, Driven};
pub use error::{DeviceError, OpenError};
pub use messages::AlsaMessages;
pub use negotiate::Negotiated;
pub use pcm::{Clock, Device, PcmInfo};
pub use playback::AlsaPlayback;
pub use recover::{AlsaCounters, CountersSnapshot, Reopen};
pub use resilient::Resilient;
pub use stream::AlsaStream;
