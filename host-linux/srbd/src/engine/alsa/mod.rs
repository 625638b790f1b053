//! ALSA devices as a sink's output and a source's input, clocked by the
//! device (or, for a device without a clock, by a timer at the nominal
//! rate).
//!
//! | module | what it holds |
//! |---|---|
//! | [`pcm`] | [`pcm::Device`]: open + negotiate (format, channels, rate, period, buffer), `wait` for a period, non-blocking period I/O, xrun recovery; [`pcm::OpenError`], [`pcm::DeviceError`], [`pcm::Negotiated`] |
//! | [`playback`] | [`playback::AlsaPlayback`]: `f32` sink periods → remap → encode → device |
//! | [`capture`] | [`capture::AlsaCapture`]: device → decode → remap → `f32` source periods |
//! | [`route`] | the plugin chain behind a PCM name, from alsa-lib's configuration: routes to a sound server? has no clock? |
//! | [`default`] | [`default::choose_default`]: `sysdefault`, else `plughw:0`, never a sound server, else the null sink |
//! | [`pacing`] | [`pacing::Pacer`] (timerfd at the nominal rate) and [`pacing::Unpaced`] (the run-time test for a device without a clock) |
//! | [`recover`] | [`recover::AlsaCounters`] (underruns, overruns, recoveries, failures, reopens) and [`recover::Reopen`] (back-off 100 ms doubling to 5 s) |
//!
//! ## A sink loop on an ALSA device
//!
//! ```text
//! open:    AlsaPlayback::open(name, sink_spec, period_frames, counters)
//!          → run the sink at negotiated().rate and .period_frames
//! period:  wait(timeout)  → mix  → write_period(&samples)
//! Err(e):  log e, failures += 1, drop the device, Reopen::failed(now);
//!          clock on the timerfd, output discarded
//! period while failed: if Reopen::due(now) { reopen_attempts += 1; open …
//!          Ok → reopens += 1, Reopen::succeeded(), back on the device clock;
//!          Err → Reopen::failed(now) }
//! ```

pub mod capture;
pub mod default;
pub mod pacing;
pub mod pcm;
pub mod playback;
pub mod recover;
pub mod route;

pub use capture::AlsaCapture;
pub use pcm::{Clock, Device, DeviceError, Negotiated, OpenError};
pub use playback::AlsaPlayback;
pub use recover::{AlsaCounters, CountersSnapshot, Reopen};
