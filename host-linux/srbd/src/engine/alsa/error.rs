//! The two ways a device lets the sink down: it cannot be opened
//! ([`OpenError`]) or it stops working while running ([`DeviceError`]).
//! After a [`DeviceError`] the caller drops the device and reopens it on
//! the back-off schedule ([`super::recover::Reopen`]).

use std::time::Duration;

use srb_pulse::tagstruct::SampleSpec;

/// Why a device could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The name holds a NUL byte.
    #[error("ALSA device name {0:?} holds a NUL byte")]
    BadName(String),
    /// The sink spec is not one srbd can play (unknown format, no channels
    /// or rate).
    #[error("ALSA device {device}: unusable sample spec {spec:?}")]
    BadSpec {
        /// The device.
        device: String,
        /// What was asked.
        spec: SampleSpec,
    },
    /// `snd_pcm_open` failed (no such device, busy, server not running…).
    #[error("ALSA device {device}: open: {source}")]
    Open {
        /// The device.
        device: String,
        /// alsa-lib's error.
        source: alsa::Error,
    },
    /// The device takes none of the formats srbd converts.
    #[error("ALSA device {device}: takes none of srbd's sample formats")]
    NoFormat {
        /// The device.
        device: String,
    },
    /// A hardware or software parameter was refused.
    #[error("ALSA device {device}: {what}: {source}")]
    Params {
        /// The device.
        device: String,
        /// The parameter.
        what: &'static str,
        /// alsa-lib's error.
        source: alsa::Error,
    },
    /// The pacing timer could not be set up.
    #[error("ALSA device {device}: pacing timer: {source}")]
    Timer {
        /// The device.
        device: String,
        /// The system error.
        source: rustix::io::Errno,
    },
    /// The opener thread (reopening after failures) could not start.
    #[error("ALSA opener thread: {0}")]
    Thread(String),
}

/// Why a running device stopped working; the caller drops it and reopens
/// it later.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device is gone (`ENODEV`, `DISCONNECTED`: unplugged, its server
    /// went away).
    #[error("ALSA device {device} vanished ({op}: {source})")]
    Vanished {
        /// The device.
        device: String,
        /// The call that saw it.
        op: &'static str,
        /// alsa-lib's error.
        source: alsa::Error,
    },
    /// A call failed and could not be recovered.
    #[error("ALSA device {device} failed ({op}: {source})")]
    Failed {
        /// The device.
        device: String,
        /// The call that failed.
        op: &'static str,
        /// alsa-lib's error.
        source: alsa::Error,
    },
    /// No period of room or data within the wait's timeout.
    #[error("ALSA device {device} stalled: no period within {waited:?}")]
    Stalled {
        /// The device.
        device: String,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// The pacing timer failed.
    #[error("ALSA device {device}: pacing timer: {source}")]
    Timer {
        /// The device.
        device: String,
        /// The system error.
        source: rustix::io::Errno,
    },
}
