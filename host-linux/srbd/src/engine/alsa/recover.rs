//! What happens when an ALSA device misbehaves: the counters the sink and
//! the state page read ([`AlsaCounters`]), and the back-off between two
//! attempts to reopen a device that failed or vanished ([`Reopen`]).
//!
//! An xrun (underrun on playback, overrun on capture) is recovered on the
//! spot with `snd_pcm_recover` by [`super::pcm::Device`]; the stream goes
//! on. The period path only counts it; the control side logs what grew
//! ([`CountersSnapshot::log_changes`]). A device that fails or vanishes is dropped by the sink, which runs
//! on its timer clock (output discarded, silence captured) and asks
//! [`Reopen::due`] each period whether to try opening it again: first after
//! [`Reopen::FIRST`], then twice as long after each failure up to
//! [`Reopen::MAX`], back to [`Reopen::FIRST`] after a success.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of one ALSA device's troubles; they outlive reopenings (the
/// sink keeps one `Arc` and hands it to each open).
///
/// Every counter is a statistic read by the control side: `Relaxed` is
/// enough, nothing else is published through them.
#[derive(Debug, Default)]
pub struct AlsaCounters {
    /// Playback underruns (the device ran out of samples).
    pub underruns: AtomicU64,
    /// Capture overruns (samples the device had to throw away).
    pub overruns: AtomicU64,
    /// Xruns (and suspends) brought back by `snd_pcm_recover`.
    pub recoveries: AtomicU64,
    /// Frames written or read short (the device had less room or data than
    /// it announced); the rest of that period was dropped or zero-filled.
    pub short_frames: AtomicU64,
    /// Times the device failed or vanished (the sink dropped it).
    pub failures: AtomicU64,
    /// Attempts to reopen it after a failure (successful or not).
    pub reopen_attempts: AtomicU64,
    /// Reopen attempts that succeeded.
    pub reopens: AtomicU64,
    /// Periods rendered while the device was down (output discarded, the
    /// sink on its timer clock): the gaps.
    pub discarded_periods: AtomicU64,
}

/// A copy of [`AlsaCounters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountersSnapshot {
    /// See [`AlsaCounters::underruns`].
    pub underruns: u64,
    /// See [`AlsaCounters::overruns`].
    pub overruns: u64,
    /// See [`AlsaCounters::recoveries`].
    pub recoveries: u64,
    /// See [`AlsaCounters::short_frames`].
    pub short_frames: u64,
    /// See [`AlsaCounters::failures`].
    pub failures: u64,
    /// See [`AlsaCounters::reopen_attempts`].
    pub reopen_attempts: u64,
    /// See [`AlsaCounters::reopens`].
    pub reopens: u64,
    /// See [`AlsaCounters::discarded_periods`].
    pub discarded_periods: u64,
}

impl AlsaCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        // Relaxed: a statistic; nothing is published through it.
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// All counters now (Relaxed: statistics, each read on its own).
    pub fn snapshot(&self) -> CountersSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            underruns: r(&self.underruns),
            overruns: r(&self.overruns),
            recoveries: r(&self.recoveries),
            short_frames: r(&self.short_frames),
            failures: r(&self.failures),
            reopen_attempts: r(&self.reopen_attempts),
            reopens: r(&self.reopens),
            discarded_periods: r(&self.discarded_periods),
        }
    }
}

impl CountersSnapshot {
    /// Logs what grew since `before` (one line naming `device`, or none):
    /// how the control side reports xruns and short periods, which the
    /// period path only counts.
    pub fn log_changes(&self, before: &CountersSnapshot, device: &str) {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        let (u, o, s) = (
            d(self.underruns, before.underruns),
            d(self.overruns, before.overruns),
            d(self.short_frames, before.short_frames),
        );
        if u + o + s > 0 {
            tracing::warn!(
                device,
                underruns = u,
                overruns = o,
                short_frames = s,
                total_underruns = self.underruns,
                total_overruns = self.overruns,
                recoveries = self.recoveries,
                "ALSA device xruns (recovered)"
            );
        }
    }
}

/// The reopen schedule of a failed device: pure logic, the caller passes
/// the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopen {
    delay: Duration,
    next: Option<Instant>,
}

impl Reopen {
    /// The wait before the first attempt after a failure.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// The longest wait between two attempts.
    pub const MAX: Duration = Duration::from_secs(5);

    /// A schedule with nothing to reopen (the device works).
    pub fn new() -> Self {
        Self {
            delay: Self::FIRST,
            next: None,
        }
    }

    /// The device failed (or an attempt to reopen it failed) at `now`: the
    /// next attempt is due after the current delay, which then doubles (up
    /// to [`Self::MAX`]).
    pub fn failed(&mut self, now: Instant) {
        self.next = Some(now + self.delay);
        self.delay = (self.delay * 2).min(Self::MAX);
    }

    /// The device is open and working: nothing is due, the next failure
    /// waits [`Self::FIRST`] again.
    pub fn succeeded(&mut self) {
        *self = Self::new();
    }

    /// Whether an attempt is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| now >= t)
    }

    /// When the next attempt is due, if one is scheduled.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.next
    }
}

impl Default for Reopen {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_due_while_working() {
        let r = Reopen::new();
        assert!(!r.due(Instant::now() + Duration::from_secs(3600)));
        assert_eq!(r.next_attempt(), None);
    }

    #[test]
    fn backs_off_doubling_to_five_seconds() {
        let t0 = Instant::now();
        let mut r = Reopen::new();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..9 {
            r.failed(now);
            let next = r.next_attempt().unwrap();
            assert!(!r.due(next - ms(1)), "due early");
            assert!(r.due(next));
            waits.push(next - now);
            now = next;
        }
        let expect: Vec<Duration> = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(waits, expect);
    }

    #[test]
    fn success_resets() {
        let t0 = Instant::now();
        let mut r = Reopen::new();
        for i in 0..5 {
            r.failed(t0 + ms(i));
        }
        r.succeeded();
        assert!(!r.due(t0 + Duration::from_secs(60)));
        r.failed(t0);
        assert_eq!(r.next_attempt(), Some(t0 + Reopen::FIRST));
    }

    #[test]
    fn counters_snapshot() {
        let c = AlsaCounters::default();
        AlsaCounters::bump(&c.underruns);
        AlsaCounters::bump(&c.underruns);
        AlsaCounters::bump(&c.reopens);
        let s = c.snapshot();
        assert_eq!((s.underruns, s.reopens, s.failures), (2, 1, 0));
    }
}
