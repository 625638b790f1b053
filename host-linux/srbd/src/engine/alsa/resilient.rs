//! [`Resilient`]: an ALSA stream that survives its device failing or
//! vanishing. It holds the device while it works; after a
//! [`DeviceError`] it drops it, logs and counts the failure, and reopens
//! it on the [`Reopen`] back-off schedule, logging how long the gap was
//! when the device returns.
//!
//! A sink (or source) loop on it, one period:
//!
//! ```text
//! match dev.stream() {
//!     Some(s) => match s.wait(timeout).and_then(|()| s.write_period(&mixed)) {
//!         Ok(()) => {}
//!         Err(e) => dev.failed(&e, now),      // next periods run on the timer
//!     },
//!     None => {                               // clocked by the sink's timerfd,
//!         wait for the timer tick;            // output discarded
//!         if dev.reopen_if_due(now) { re-read negotiated(): rate and period may differ }
//!     }
//! }
//! ```
//!
//! Opening runs on the caller's thread: for the `pulse` plugin it connects
//! to a server, which can take a while. A sink that must never stall its
//! mixer can call [`AlsaStream::open`] on another thread and hand the
//! result to [`Resilient::install`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use srb_pulse::tagstruct::SampleSpec;

use super::error::{DeviceError, OpenError};
use super::recover::{AlsaCounters, Reopen};
use super::stream::AlsaStream;

/// An ALSA stream that is reopened after it fails.
#[derive(Debug)]
pub struct Resilient<S> {
    name: String,
    want: SampleSpec,
    period_frames: usize,
    counters: Arc<AlsaCounters>,
    reopen: Reopen,
    stream: Option<S>,
    down_since: Option<Instant>,
}

impl<S: AlsaStream> Resilient<S> {
    /// Opens `name` now. If that fails, the error is logged and returned
    /// beside a `Resilient` that retries on the schedule (the caller
    /// decides whether a device missing at start is fatal).
    pub fn open(
        name: &str,
        want: SampleSpec,
        period_frames: usize,
        counters: Arc<AlsaCounters>,
        now: Instant,
    ) -> (Self, Option<OpenError>) {
        let mut r = Self {
            name: name.to_owned(),
            want,
            period_frames,
            counters,
            reopen: Reopen::new(),
            stream: None,
            down_since: None,
        };
        let err = match S::open(name, want, period_frames, r.counters.clone()) {
            Ok(s) => {
                r.install(s, now);
                None
            }
            Err(e) => {
                tracing::warn!(device = name, "ALSA device does not open: {e}; retrying");
                r.reopen.failed(now);
                r.down_since = Some(now);
                Some(e)
            }
        };
        (r, err)
    }

    /// The working device, if it is open.
    pub fn stream(&mut self) -> Option<&mut S> {
        self.stream.as_mut()
    }

    /// The counters shared by every opening.
    pub fn counters(&self) -> &Arc<AlsaCounters> {
        &self.counters
    }

    /// When the next reopen attempt is due (`None` while open).
    pub fn next_attempt(&self) -> Option<Instant> {
        self.reopen.next_attempt()
    }

    /// The open device failed at `now`: logs `err`, counts a failure,
    /// drops the device and schedules a reopen.
    pub fn failed(&mut self, err: &DeviceError, now: Instant) {
        self.stream = None;
        AlsaCounters::bump(&self.counters.failures);
        self.reopen.failed(now);
        self.down_since = Some(now);
        tracing::warn!(
            device = self.name,
            "ALSA device lost: {err}; running on the timer clock, reopening with back-off"
        );
    }

    /// While the device is down: tries to reopen it if an attempt is due
    /// at `now`; true when it is back (its negotiated parameters may differ
    /// from before).
    pub fn reopen_if_due(&mut self, now: Instant) -> bool {
        if self.stream.is_some() || !self.reopen.due(now) {
            return false;
        }
        AlsaCounters::bump(&self.counters.reopen_attempts);
        match S::open(
            &self.name,
            self.want,
            self.period_frames,
            self.counters.clone(),
        ) {
            Ok(s) => {
                self.install(s, now);
                true
            }
            Err(e) => {
                self.reopen.failed(now);
                tracing::debug!(device = self.name, "ALSA device still gone: {e}");
                false
            }
        }
    }

    /// Takes a device opened elsewhere (e.g. on a helper thread) as the
    /// working one; counted as a reopen (and the gap logged) if the device
    /// was down.
    pub fn install(&mut self, stream: S, now: Instant) {
        self.stream = Some(stream);
        self.reopen.succeeded();
        if let Some(since) = self.down_since.take() {
            AlsaCounters::bump(&self.counters.reopens);
            let gap: Duration = now.saturating_duration_since(since);
            tracing::info!(device = self.name, ?gap, "ALSA device back");
        }
    }
}
