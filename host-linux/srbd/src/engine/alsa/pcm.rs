//! One open ALSA PCM, either direction: opening and negotiating it
//! ([`Device::open`]), waiting for a period of room or data
//! ([`Device::wait`]), moving one period of bytes, and recovering xruns.
//! [`super::playback`] and [`super::capture`] add the sample conversion.
//!
//! ## Negotiation
//!
//! | parameter | asked | taken |
//! |---|---|---|
//! | access | interleaved read/write | — |
//! | format | the sink's, else the first the device takes of [`FALLBACK_FORMATS`] | reported in [`Negotiated::format`]; samples are converted to/from `f32` |
//! | channels | the sink's | the nearest; remapped with PulseAudio's default maps |
//! | rate | the sink's, with alsa-lib resampling allowed (`plug`, `default`, `sysdefault` resample) | the nearest: a `hw:` device that refuses it reports its own, and the sink must run at [`Negotiated::rate`] (no resampling here) |
//! | period | `--period-frames` | the nearest: the sink must use [`Negotiated::period_frames`] |
//! | buffer | [`BUFFER_PERIODS`] periods | the nearest |
//!
//! Software parameters: wake at one period (`avail_min`); playback starts
//! when the first period is written, capture is started at open.
//!
//! ## Errors
//!
//! An xrun (`EPIPE`) or a suspend (`ESTRPIPE`) is recovered with
//! `snd_pcm_recover` and counted; the call goes on. `ENODEV` or the
//! `DISCONNECTED` state is [`DeviceError::Vanished`]; any other failure is
//! [`DeviceError::Failed`]; no period of room or data within the caller's
//! timeout is [`DeviceError::Stalled`]. After any of them the caller drops
//! the device and reopens it later ([`super::recover::Reopen`]).
//!
//! The PCM is opened non-blocking: only [`Device::wait`] sleeps (in
//! `poll`, or on the [`Pacer`] of an unpaced device). Nothing allocates
//! after `open`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, State, PCM};
use alsa::poll::{pollfd, Descriptors, Flags};
use alsa::{Direction, ValueOr};
use srb_pulse::tagstruct::SampleSpec;

use super::pacing::{Pacer, Unpaced};
use super::recover::AlsaCounters;
use super::route::{self, Route};
use crate::engine::audio::format::{self as fmt, SampleFormat};

/// The buffer asked for, in periods.
pub const BUFFER_PERIODS: usize = 3;

/// Formats tried, in this order, when the device refuses the sink's.
pub const FALLBACK_FORMATS: [SampleFormat; 6] = [
    fmt::FLOAT32LE,
    fmt::S32LE,
    fmt::S24_32LE,
    fmt::S16LE,
    fmt::S24LE,
    fmt::U8,
];

/// The ALSA format of a PulseAudio sample format.
pub fn alsa_format(f: SampleFormat) -> Option<Format> {
    Some(match f {
        SampleFormat::U8 => Format::U8,
        SampleFormat::Alaw => Format::ALaw,
        SampleFormat::Ulaw => Format::MuLaw,
        SampleFormat::S16Le => Format::S16LE,
        SampleFormat::S16Be => Format::S16BE,
        SampleFormat::Float32Le => Format::FloatLE,
        SampleFormat::Float32Be => Format::FloatBE,
        SampleFormat::S32Le => Format::S32LE,
        SampleFormat::S32Be => Format::S32BE,
        SampleFormat::S24Le => Format::S243LE,
        SampleFormat::S24Be => Format::S243BE,
        SampleFormat::S24_32Le => Format::S24LE,
        SampleFormat::S24_32Be => Format::S24BE,
        SampleFormat::Unknown(_) => return None,
    })
}

/// The PulseAudio sample format of an ALSA format, if srbd converts it.
pub fn pulse_format(f: Format) -> Option<SampleFormat> {
    SampleFormat::ALL
        .into_iter()
        .find(|&p| alsa_format(p) == Some(f))
}

/// What the device took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The sample format on the device.
    pub format: SampleFormat,
    /// Channels on the device.
    pub channels: u8,
    /// The device's rate: the sink or source must run at it.
    pub rate: u32,
    /// Frames per period: the sink or source must use it.
    pub period_frames: usize,
    /// Frames in the device buffer.
    pub buffer_frames: usize,
}

impl Negotiated {
    /// The device's side as a sample spec.
    pub fn spec(&self) -> SampleSpec {
        SampleSpec {
            format: self.format,
            channels: self.channels,
            rate: self.rate,
        }
    }

    /// Bytes per device frame.
    pub fn frame_bytes(&self) -> usize {
        fmt::sample_size(self.format).unwrap_or(1) * usize::from(self.channels)
    }
}

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

/// Which clock a device runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Its own: [`Device::wait`] polls its descriptors.
    Device,
    /// None of its own: paced by a timerfd at the nominal rate.
    Paced,
}

/// An open, negotiated PCM.
pub struct Device {
    pcm: PCM,
    name: String,
    dir: Direction,
    neg: Negotiated,
    route: Option<Route>,
    fds: Vec<pollfd>,
    pacer: Option<Pacer>,
    unpaced: Unpaced,
    counters: Arc<AlsaCounters>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("negotiated", &self.neg)
            .field("route", &self.route)
            .field("clock", &self.clock())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Opens `name` for `dir` (non-blocking) and negotiates `want` and
    /// `period_frames` (see the module table). Troubles are counted in
    /// `counters`, which the caller keeps across reopenings.
    pub fn open(
        name: &str,
        dir: Direction,
        want: SampleSpec,
        period_frames: usize,
        counters: Arc<AlsaCounters>,
    ) -> Result<Self, OpenError> {
        if alsa_format(want.format).is_none()
            || want.channels == 0
            || want.rate == 0
            || period_frames == 0
        {
            return Err(OpenError::BadSpec {
                device: name.to_owned(),
                spec: want,
            });
        }
        let c_name =
            std::ffi::CString::new(name).map_err(|_| OpenError::BadName(name.to_owned()))?;
        let route = route::route(name, dir).ok();
        let pcm = PCM::open(&c_name, dir, true).map_err(|source| OpenError::Open {
            device: name.to_owned(),
            source,
        })?;
        let neg = negotiate(&pcm, name, want, period_frames)?;
        let params = |what, source| OpenError::Params {
            device: name.to_owned(),
            what,
            source,
        };
        {
            let sw = pcm
                .sw_params_current()
                .map_err(|e| params("sw_params_current", e))?;
            let period = neg.period_frames as alsa::pcm::Frames;
            sw.set_avail_min(period)
                .map_err(|e| params("avail_min", e))?;
            if dir == Direction::Playback {
                sw.set_start_threshold(period)
                    .map_err(|e| params("start_threshold", e))?;
            }
            pcm.sw_params(&sw).map_err(|e| params("sw_params", e))?;
        }
        if dir == Direction::Capture {
            pcm.start().map_err(|e| params("start", e))?;
        }
        let mut fds = vec![
            pollfd {
                fd: -1,
                events: 0,
                revents: 0
            };
            pcm.count().max(1)
        ];
        pcm.fill(&mut fds)
            .map_err(|e| params("poll descriptors", e))?;
        let mut dev = Self {
            pcm,
            name: name.to_owned(),
            dir,
            neg,
            route,
            fds,
            pacer: None,
            unpaced: Unpaced::default(),
            counters,
        };
        if dev.route.as_ref().is_some_and(Route::unpaced) {
            tracing::info!(
                device = dev.name,
                "ALSA device has no clock of its own (its final slave is `null`): paced at the nominal rate"
            );
            dev.pace().map_err(|source| OpenError::Timer {
                device: name.to_owned(),
                source,
            })?;
        }
        Ok(dev)
    }

    fn pace(&mut self) -> Result<(), rustix::io::Errno> {
        self.pacer = Some(Pacer::new(self.neg.period_frames, self.neg.rate)?);
        Ok(())
    }

    /// The device's name as opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the device took.
    pub fn negotiated(&self) -> &Negotiated {
        &self.neg
    }

    /// The plugin chain behind the name (`None` if the configuration could
    /// not be read).
    pub fn route(&self) -> Option<&Route> {
        self.route.as_ref()
    }

    /// The outermost plugin type (`hw`, `plug`, `file`, `pulse`…).
    pub fn pcm_type(&self) -> Option<&str> {
        self.route.as_ref().and_then(Route::pcm_type)
    }

    /// The sound server the device routes to (`pulse`, `pipewire`), if any.
    pub fn routes_to_sound_server(&self) -> Option<&str> {
        self.route.as_ref().and_then(Route::to_sound_server)
    }

    /// Which clock the device runs on now.
    pub fn clock(&self) -> Clock {
        if self.pacer.is_some() {
            Clock::Paced
        } else {
            Clock::Device
        }
    }

    /// The trouble counters.
    pub fn counters(&self) -> &Arc<AlsaCounters> {
        &self.counters
    }

    /// Waits until one period of room (playback) or data (capture) is
    /// there, at most `timeout` ([`DeviceError::Stalled`] past it). An
    /// unpaced device first waits for its pacer's tick. Xruns met on the
    /// way are recovered and counted.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), DeviceError> {
        let start = Instant::now();
        let deadline = start + timeout;
        if let Some(p) = &mut self.pacer {
            match p.wait(timeout) {
                Ok(true) => {}
                Ok(false) => return Err(self.stalled(start)),
                Err(source) => {
                    return Err(DeviceError::Timer {
                        device: self.name.clone(),
                        source,
                    })
                }
            }
        }
        loop {
            if self.avail()? >= self.neg.period_frames {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.stalled(start));
            }
            let left = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let n = self
                .pcm
                .fill(&mut self.fds)
                .map_err(|e| self.fail("poll descriptors", e))?;
            match alsa::poll::poll(&mut self.fds[..n], left) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) if e.errno() == libc::EINTR => continue,
                Err(e) => return Err(self.fail("poll", e)),
            }
            let revents = self
                .pcm
                .revents(&self.fds[..n])
                .map_err(|e| self.fail("poll revents", e))?;
            if revents.intersects(Flags::ERR | Flags::HUP | Flags::NVAL) {
                self.check_state()?;
            }
        }
    }

    fn stalled(&self, start: Instant) -> DeviceError {
        DeviceError::Stalled {
            device: self.name.clone(),
            waited: start.elapsed(),
        }
    }

    /// Frames of room or data now; recovers an xrun on the way.
    fn avail(&mut self) -> Result<usize, DeviceError> {
        for _ in 0..2 {
            match self.pcm.avail_update() {
                Ok(n) => return Ok(usize::try_from(n).unwrap_or(0)),
                Err(e) => self.recover("avail_update", e)?,
            }
        }
        // Two xruns in a row without a period moving: give up.
        self.pcm
            .avail_update()
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| self.fail("avail_update", e))
    }

    /// Looks at the state after a poll error: recovers an xrun, reports a
    /// vanished device.
    fn check_state(&mut self) -> Result<(), DeviceError> {
        match self.pcm.state() {
            State::XRun => self.recover("poll", alsa::Error::new("snd_pcm_state", libc::EPIPE)),
            State::Suspended => {
                self.recover("poll", alsa::Error::new("snd_pcm_state", libc::ESTRPIPE))
            }
            State::Disconnected => Err(DeviceError::Vanished {
                device: self.name.clone(),
                op: "poll",
                source: alsa::Error::new("snd_pcm_state", libc::ENODEV),
            }),
            _ => Ok(()),
        }
    }

    /// Recovers from `err` if it is an xrun or a suspend (counted), else
    /// turns it into the named error.
    fn recover(&mut self, op: &'static str, err: alsa::Error) -> Result<(), DeviceError> {
        let errno = err.errno();
        if errno != libc::EPIPE && errno != libc::ESTRPIPE {
            return Err(self.fail(op, err));
        }
        if errno == libc::EPIPE {
            let c = match self.dir {
                Direction::Playback => &self.counters.underruns,
                Direction::Capture => &self.counters.overruns,
            };
            AlsaCounters::bump(c);
        }
        tracing::debug!(device = self.name, op, errno, "ALSA xrun: recovering");
        self.pcm
            .try_recover(err, true)
            .map_err(|e| self.fail("snd_pcm_recover", e))?;
        if self.dir == Direction::Capture {
            self.pcm.start().map_err(|e| self.fail("start", e))?;
        }
        AlsaCounters::bump(&self.counters.recoveries);
        Ok(())
    }

    fn fail(&self, op: &'static str, source: alsa::Error) -> DeviceError {
        let device = self.name.clone();
        if source.errno() == libc::ENODEV || self.pcm.state() == State::Disconnected {
            DeviceError::Vanished { device, op, source }
        } else {
            DeviceError::Failed { device, op, source }
        }
    }

    /// Writes `bytes` (whole device frames) to a playback device, without
    /// blocking: an xrun is recovered and the write retried; what finds no
    /// room is dropped and counted in `short_frames`.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), DeviceError> {
        let frame = self.neg.frame_bytes();
        let total = bytes.len() / frame;
        let mut done = 0;
        let mut xruns = 0;
        while done < total {
            let r = self
                .pcm
                .io_bytes()
                .writei(&bytes[done * frame..total * frame]);
            match r {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.errno() == libc::EAGAIN => break,
                Err(e) if xruns < 2 => {
                    xruns += 1;
                    self.recover("writei", e)?;
                }
                Err(e) => return Err(self.fail("writei", e)),
            }
        }
        self.after_period(total - done)
    }

    /// Reads one period into `bytes` (whole device frames) from a capture
    /// device, without blocking; returns the frames read (an xrun is
    /// recovered, counted and the read retried; the frames missing are
    /// counted in `short_frames`).
    pub fn read_bytes(&mut self, bytes: &mut [u8]) -> Result<usize, DeviceError> {
        let frame = self.neg.frame_bytes();
        let total = bytes.len() / frame;
        let mut done = 0;
        let mut xruns = 0;
        while done < total {
            let r = self
                .pcm
                .io_bytes()
                .readi(&mut bytes[done * frame..total * frame]);
            match r {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.errno() == libc::EAGAIN => break,
                Err(e) if xruns < 2 => {
                    xruns += 1;
                    self.recover("readi", e)?;
                }
                Err(e) => return Err(self.fail("readi", e)),
            }
        }
        self.after_period(total - done)?;
        Ok(done)
    }

    /// Counts a short period and runs the unpaced-device test.
    fn after_period(&mut self, missing: usize) -> Result<(), DeviceError> {
        if missing > 0 {
            self.counters
                .short_frames
                .fetch_add(missing as u64, std::sync::atomic::Ordering::Relaxed);
            // Relaxed: a statistic.
        }
        if self.pacer.is_none() {
            let avail = self
                .pcm
                .avail_update()
                .map(|n| n.max(0) as usize)
                .unwrap_or(0);
            if self.unpaced.observe(avail, self.neg.buffer_frames) {
                tracing::warn!(
                    device = self.name,
                    "ALSA device shows a whole buffer of room or data after every period: it has no clock; pacing it at the nominal rate"
                );
                self.pace().map_err(|source| DeviceError::Timer {
                    device: self.name.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// Sets the hardware parameters (see the module table) and reads back
/// what the device took.
fn negotiate(
    pcm: &PCM,
    name: &str,
    want: SampleSpec,
    period_frames: usize,
) -> Result<Negotiated, OpenError> {
    let params = |what, source| OpenError::Params {
        device: name.to_owned(),
        what,
        source,
    };
    let hw = HwParams::any(pcm).map_err(|e| params("hw_params_any", e))?;
    hw.set_access(Access::RWInterleaved)
        .map_err(|e| params("access", e))?;
    let format = std::iter::once(want.format)
        .chain(FALLBACK_FORMATS)
        .find_map(|f| {
            let a = alsa_format(f)?;
            hw.test_format(a).ok().map(|()| a)
        })
        .ok_or_else(|| OpenError::NoFormat {
            device: name.to_owned(),
        })?;
    hw.set_format(format).map_err(|e| params("format", e))?;
    hw.set_channels_near(u32::from(want.channels))
        .map_err(|e| params("channels", e))?;
    // Not every plugin knows the flag; alsa-lib resamples by default.
    let _ = hw.set_rate_resample(true);
    hw.set_rate_near(want.rate, ValueOr::Nearest)
        .map_err(|e| params("rate", e))?;
    let period = period_frames as alsa::pcm::Frames;
    hw.set_period_size_near(period, ValueOr::Nearest)
        .map_err(|e| params("period size", e))?;
    hw.set_buffer_size_near(period * BUFFER_PERIODS as alsa::pcm::Frames)
        .map_err(|e| params("buffer size", e))?;
    pcm.hw_params(&hw).map_err(|e| params("hw_params", e))?;
    drop(hw);
    let cur = pcm
        .hw_params_current()
        .map_err(|e| params("hw_params_current", e))?;
    let format = cur.get_format().map_err(|e| params("format", e))?;
    let channels = cur.get_channels().map_err(|e| params("channels", e))?;
    let rate = cur.get_rate().map_err(|e| params("rate", e))?;
    let period = cur
        .get_period_size()
        .map_err(|e| params("period size", e))?;
    let buffer = cur
        .get_buffer_size()
        .map_err(|e| params("buffer size", e))?;
    let neg = Negotiated {
        format: pulse_format(format).ok_or_else(|| OpenError::NoFormat {
            device: name.to_owned(),
        })?,
        channels: u8::try_from(channels).unwrap_or(u8::MAX),
        rate,
        period_frames: usize::try_from(period).unwrap_or(0),
        buffer_frames: usize::try_from(buffer).unwrap_or(0),
    };
    if neg.period_frames == 0 || neg.buffer_frames < neg.period_frames || neg.channels == 0 {
        return Err(params(
            "period/buffer",
            alsa::Error::new("snd_pcm_hw_params", libc::EINVAL),
        ));
    }
    tracing::info!(
        device = name,
        format = %neg.format,
        channels = neg.channels,
        rate = neg.rate,
        period = neg.period_frames,
        buffer = neg.buffer_frames,
        asked_format = %want.format,
        asked_channels = want.channels,
        asked_rate = want.rate,
        asked_period = period_frames,
        "ALSA device negotiated"
    );
    Ok(neg)
}
