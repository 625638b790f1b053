//! [`Driven`]: an ALSA stream as a sink's (or source's) period loop drives
//! it, with its reopening done off that loop's thread.
//!
//! The mixer thread holds the open stream and does only non-blocking
//! things with it: `wait` (the device's clock), one period of I/O, and on a
//! [`DeviceError`] it drops the stream, counts the failure and hands the
//! error to the *opener* thread through a one-slot channel (`try_send`: no
//! wait, no allocation). From then on the sink runs on its own timer with
//! its output discarded (each such period counted in
//! [`AlsaCounters::discarded_periods`]).
//!
//! The opener thread does the slow, blocking, logging part: it logs the
//! failure, reopens the device on the [`Reopen`] back-off schedule
//! (opening the `pulse` plugin connects to a server and may block), and
//! hands the new stream back through another one-slot channel, which the
//! mixer polls once per timer period ([`Driven::poll_back`]). A device that
//! comes back with another rate or period than the sink runs at is not
//! used (the sink's rate is fixed when it starts): it is logged and tried
//! again later. The opener logs the return with the gap's length and the
//! periods discarded so far. It ends when the mixer drops its [`Driven`].

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use srb_pulse::tagstruct::SampleSpec;

use super::error::{DeviceError, OpenError};
use super::negotiate::Negotiated;
use super::pcm::PcmInfo;
use super::recover::{AlsaCounters, Reopen};
use super::stream::AlsaStream;
use super::{AlsaCapture, AlsaPlayback};

/// What the mixer learns of the device when it starts.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    /// The name as opened (`hw:0`, `srbtest_out:FILE=…`).
    pub name: String,
    /// What it took at the first opening (`None`: it did not open at
    /// start; the sink runs at the asked spec and waits for it).
    pub negotiated: Option<Negotiated>,
    /// The outermost plugin type, if the configuration could be read.
    pub pcm_type: Option<String>,
    /// What alsa-lib says of the PCM (at the first opening).
    pub info: Option<PcmInfo>,
}

/// An ALSA stream driven by a period loop; see the module doc.
pub struct Driven<S: AlsaStream> {
    stream: Option<S>,
    counters: Arc<AlsaCounters>,
    lost: mpsc::SyncSender<DeviceError>,
    back: mpsc::Receiver<S>,
    timeout: Duration,
    facts: DeviceFacts,
}

impl<S: AlsaStream> std::fmt::Debug for Driven<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driven")
            .field("facts", &self.facts)
            .field("open", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: AlsaStream + Send + 'static> Driven<S> {
    /// Opens `name` for `want` and `period_frames` on this thread and
    /// starts its opener thread. A device that does not open now is not an
    /// error: it is logged and reopened with back-off, the sink running at
    /// `want` meanwhile. Only a bad spec or name, or a thread that cannot
    /// start, is.
    pub fn start(name: &str, want: SampleSpec, period_frames: usize) -> Result<Self, OpenError> {
        let counters = Arc::new(AlsaCounters::default());
        let (stream, down) = match S::open(name, want, period_frames, counters.clone()) {
            Ok(s) => (Some(s), None),
            Err(e @ (OpenError::BadSpec { .. } | OpenError::BadName(_))) => return Err(e),
            Err(e) => {
                tracing::warn!(
                    device = name,
                    "ALSA device does not open: {e}; the sink runs on its timer clock (output discarded) until it does"
                );
                (None, Some(Instant::now()))
            }
        };
        let negotiated = stream.as_ref().map(|s| s.negotiated().clone());
        let pcm_type = stream
            .as_ref()
            .and_then(|s| s.device().pcm_type().map(str::to_owned));
        let info = stream.as_ref().and_then(|s| s.device().pcm_info());
        if let Some(n) = &negotiated {
            tracing::info!(
                device = name,
                pcm_type = pcm_type.as_deref().unwrap_or("?"),
                format = ?n.format,
                channels = n.channels,
                rate = n.rate,
                period_frames = n.period_frames,
                buffer_frames = n.buffer_frames,
                clock = ?stream.as_ref().map(|s| s.device().clock()),
                "ALSA device open"
            );
        }
        // The reopened device must match what the sink runs at.
        let (rate, period) = negotiated
            .as_ref()
            .map_or((want.rate, period_frames), |n| (n.rate, n.period_frames));
        let want = SampleSpec { rate, ..want };
        let (lost_tx, lost_rx) = mpsc::sync_channel(1);
        let (back_tx, back_rx) = mpsc::sync_channel(1);
        let opener = Opener {
            name: name.to_owned(),
            want,
            period,
            counters: counters.clone(),
            lost: lost_rx,
            back: back_tx,
        };
        std::thread::Builder::new()
            .name("srbd-alsa-open".into())
            .spawn(move || opener.run(down))
            .map_err(|e| OpenError::Thread(e.to_string()))?;
        let period_time = Duration::from_nanos(period as u64 * 1_000_000_000 / u64::from(rate));
        Ok(Self {
            stream,
            counters,
            lost: lost_tx,
            back: back_rx,
            // A device that gives no period for this long has stalled.
            timeout: period_time * 4 + Duration::from_millis(200),
            facts: DeviceFacts {
                name: name.to_owned(),
                negotiated,
                pcm_type,
                info,
            },
        })
    }
}

impl<S: AlsaStream> Driven<S> {
    /// What the device is, as of its first opening.
    pub fn facts(&self) -> &DeviceFacts {
        &self.facts
    }

    /// The trouble counters, shared with the control side.
    pub fn counters(&self) -> &Arc<AlsaCounters> {
        &self.counters
    }

    /// Whether the device is open (the sink is on its clock).
    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Waits for the device's next period; false if it failed (dropped,
    /// handed to the opener) or is not open.
    pub fn wait(&mut self) -> bool {
        let Some(s) = &mut self.stream else {
            return false;
        };
        match s.wait(self.timeout) {
            Ok(()) => true,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// The open device failed: drop it, count it, and hand the error to
    /// the opener (which logs it and reopens). Never blocks.
    pub fn fail(&mut self, err: DeviceError) {
        self.stream = None;
        AlsaCounters::bump(&self.counters.failures);
        // Full only if the opener has not taken the previous failure yet:
        // it is reopening already, this one is counted.
        let _ = self.lost.try_send(err);
    }

    /// While the device is down: takes it back if the opener reopened it;
    /// true when it did. Never blocks.
    pub fn poll_back(&mut self) -> bool {
        if self.stream.is_some() {
            return false;
        }
        match self.back.try_recv() {
            Ok(s) => {
                self.stream = Some(s);
                true
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => false,
        }
    }

    /// Counts a period whose output was discarded (device down).
    fn discarded(&self) {
        AlsaCounters::bump(&self.counters.discarded_periods);
    }
}

impl Driven<AlsaPlayback> {
    /// Writes one period of sink samples to the device (see
    /// [`AlsaPlayback::write_period`]); with the device down, counts the
    /// period discarded. A write error drops the device ([`Self::fail`]).
    pub fn write(&mut self, samples: &[f32]) {
        let Some(s) = &mut self.stream else {
            self.discarded();
            return;
        };
        if let Err(e) = s.write_period(samples) {
            self.fail(e);
        }
    }

    /// Frames the device holds and has not played (0 while it is down).
    pub fn queued_frames(&self) -> usize {
        self.stream
            .as_ref()
            .map_or(0, |s| s.device().queued_frames())
    }
}

impl Driven<AlsaCapture> {
    /// Reads one period of source samples into `out` (see
    /// [`AlsaCapture::read_period`]); with the device down, or on a read
    /// error (which drops the device, [`Self::fail`]), `out` is silence and
    /// the period counts as discarded.
    pub fn read(&mut self, out: &mut [f32]) {
        let Some(s) = &mut self.stream else {
            out.fill(0.0);
            self.discarded();
            return;
        };
        if let Err(e) = s.read_period(out) {
            out.fill(0.0);
            self.fail(e);
        }
    }
}

/// The opener thread's state.
struct Opener<S> {
    name: String,
    want: SampleSpec,
    period: usize,
    counters: Arc<AlsaCounters>,
    lost: mpsc::Receiver<DeviceError>,
    back: mpsc::SyncSender<S>,
}

impl<S: AlsaStream> Opener<S> {
    /// Waits for a failure, reopens with back-off, hands the device back;
    /// again. `down`: the device did not open at start (since then).
    fn run(self, mut down: Option<Instant>) {
        let mut reopen = Reopen::new();
        loop {
            let since = match down.take() {
                Some(t) => t,
                None => match self.lost.recv() {
                    Ok(err) => {
                        tracing::warn!(
                            device = self.name,
                            "ALSA device lost: {err}; running on the timer clock (output discarded, silence captured); reopening with back-off"
                        );
                        Instant::now()
                    }
                    Err(_) => return,
                },
            };
            reopen.failed(since);
            if !self.reopen(&mut reopen, since) {
                return;
            }
            reopen.succeeded();
        }
    }

    /// Tries until the device is back and handed over (true), or the
    /// mixer has gone (false).
    fn reopen(&self, reopen: &mut Reopen, since: Instant) -> bool {
        loop {
            let wait = reopen.next_attempt().map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            });
            match self.lost.recv_timeout(wait) {
                // A late report of the same failure.
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => {}
            }
            AlsaCounters::bump(&self.counters.reopen_attempts);
            match S::open(&self.name, self.want, self.period, self.counters.clone()) {
                Ok(s)
                    if s.negotiated().rate == self.want.rate
                        && s.negotiated().period_frames == self.period =>
                {
                    AlsaCounters::bump(&self.counters.reopens);
                    // Relaxed: a statistic for the log line.
                    let discarded = self.counters.discarded_periods.load(Ordering::Relaxed);
                    tracing::info!(
                        device = self.name,
                        gap = ?since.elapsed(),
                        discarded_periods_total = discarded,
                        "ALSA device back; the sink or source is on its clock again"
                    );
                    return self.back.send(s).is_ok();
                }
                Ok(s) => {
                    tracing::warn!(
                        device = self.name,
                        rate = s.negotiated().rate,
                        period_frames = s.negotiated().period_frames,
                        sink_rate = self.want.rate,
                        sink_period_frames = self.period,
                        "ALSA device came back with another rate or period than the sink runs at; not used, retrying"
                    );
                    reopen.failed(Instant::now());
                }
                Err(e) => {
                    tracing::debug!(device = self.name, "ALSA device still gone: {e}");
                    reopen.failed(Instant::now());
                }
            }
        }
    }
}
