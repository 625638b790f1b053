//! One open ALSA PCM, either direction: opening it ([`Device::open`],
//! parameters in [`super::negotiate`]), waiting for a period of room or data
//! ([`Device::wait`]), moving one period of bytes, and recovering xruns.
//! [`super::playback`] and [`super::capture`] add the sample conversion.
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

use alsa::pcm::{State, PCM};
use alsa::poll::{pollfd, Descriptors, Flags};
use alsa::Direction;
use srb_pulse::tagstruct::SampleSpec;

use super::error::{DeviceError, OpenError};
use super::negotiate::{alsa_format, negotiate, Negotiated};
use super::pacing::{Pacer, Unpaced};
use super::recover::AlsaCounters;
use super::route::{self, Route};

/// Which clock a device runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Its own: [`Device::wait`] polls its descriptors.
    Device,
    /// None of its own: paced by a timerfd at the nominal rate.
    Paced,
}

/// What `snd_pcm_info` (and the card, if there is one) says of an open
/// device: the figures PulseAudio shows as `alsa.*` properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcmInfo {
    /// The PCM's id (`alsa.id`).
    pub id: String,
    /// The PCM's name (`alsa.name`).
    pub name: String,
    /// The card's index, for a device on a card (`alsa.card`).
    pub card: Option<u32>,
    /// The card's name (`alsa.card_name`).
    pub card_name: Option<String>,
    /// The card's long name (`alsa.long_card_name`).
    pub long_card_name: Option<String>,
    /// The device on the card (`alsa.device`).
    pub device: u32,
    /// The subdevice (`alsa.subdevice`).
    pub subdevice: u32,
    /// The subdevice's name (`alsa.subdevice_name`).
    pub subdevice_name: String,
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

    /// What alsa-lib says of the PCM and its card (`None` if it says
    /// nothing).
    pub fn pcm_info(&self) -> Option<PcmInfo> {
        let info = self.pcm.info().ok()?;
        let card = u32::try_from(info.get_card()).ok();
        let c = card.and_then(|c| {
            let card = alsa::card::Card::new(i32::try_from(c).ok()?);
            Some((card.get_name().ok()?, card.get_longname().ok()?))
        });
        Some(PcmInfo {
            id: info.get_id().unwrap_or_default().to_owned(),
            name: info.get_name().unwrap_or_default().to_owned(),
            card,
            card_name: c.as_ref().map(|c| c.0.clone()),
            long_card_name: c.map(|c| c.1),
            device: info.get_device(),
            subdevice: info.get_subdevice(),
            subdevice_name: info.get_subdevice_name().unwrap_or_default().to_owned(),
        })
    }

    /// Frames a playback device holds and has not played yet (its buffer
    /// less its room), as of now; 0 if alsa-lib cannot say. Part of the
    /// sink's latency. Never blocks.
    pub fn queued_frames(&self) -> usize {
        let room = self
            .pcm
            .avail_update()
            .map_or(self.neg.buffer_frames, |n| usize::try_from(n).unwrap_or(0));
        self.neg.buffer_frames.saturating_sub(room)
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
        // Counted, not logged here (the period path): the control side logs
        // the counters' changes (`CountersSnapshot::log_changes`).
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
        self.transfer(total, "writei", |pcm, done| {
            pcm.io_bytes().writei(&bytes[done * frame..total * frame])
        })
        .map(drop)
    }

    /// Reads one period into `bytes` (whole device frames) from a capture
    /// device, without blocking; returns the frames read (an xrun is
    /// recovered, counted and the read retried; the frames missing are
    /// counted in `short_frames`).
    pub fn read_bytes(&mut self, bytes: &mut [u8]) -> Result<usize, DeviceError> {
        let frame = self.neg.frame_bytes();
        let total = bytes.len() / frame;
        self.transfer(total, "readi", |pcm, done| {
            pcm.io_bytes()
                .readi(&mut bytes[done * frame..total * frame])
        })
    }

    /// Moves `total` frames with `io(pcm, frames done)`, which returns the
    /// frames it moved: stops short when the device has no more room or
    /// data (`EAGAIN`), recovers up to two xruns, fails on anything else.
    fn transfer(
        &mut self,
        total: usize,
        op: &'static str,
        mut io: impl FnMut(&PCM, usize) -> alsa::Result<usize>,
    ) -> Result<usize, DeviceError> {
        let mut done = 0;
        let mut xruns = 0;
        while done < total {
            match io(&self.pcm, done) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.errno() == libc::EAGAIN => break,
                Err(e) if xruns < 2 => {
                    xruns += 1;
                    self.recover(op, e)?;
                }
                Err(e) => return Err(self.fail(op, e)),
            }
        }
        self.after_period(total - done)?;
        Ok(done)
    }

    /// Counts a short period and runs the unpaced-device test.
    fn after_period(&mut self, missing: usize) -> Result<(), DeviceError> {
        if missing > 0 {
            AlsaCounters::add(&self.counters.short_frames, missing as u64);
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
