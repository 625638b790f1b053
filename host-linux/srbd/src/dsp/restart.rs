//! [`RestartHandle`]: how the mixer (through its [`super::link::DspLink`])
//! asks the supervisor thread to replace a DSP, and the state the two share;
//! [`Backoff`]: how long the supervisor waits before each restart.
//! Apart from the supervisor so that the link, which holds a handle, and
//! the supervisor, which makes links, do not import each other.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

/// A restart request for whichever DSP runs.
pub(crate) const ANY: u64 = u64::MAX;

/// State shared by the supervisor thread and its handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    /// The generation a restart was asked for (0: none, [`ANY`]: current).
    pub(crate) restart: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// The running DSP's pid (0: none).
    pub(crate) pid: AtomicU32,
    /// The running (or last) DSP's generation.
    pub(crate) generation: AtomicU64,
    /// The supervisor thread, to unpark it.
    pub(crate) thread: OnceLock<Thread>,
    /// The chain spec the next DSP starts with.
    pub(crate) chain: Mutex<Option<String>>,
    /// The format, to check chain specs.
    pub(crate) rate: u32,
    pub(crate) channels: u8,
}

/// A cheap, cloneable handle the mixer uses to ask for a restart.
#[derive(Debug, Clone)]
pub struct RestartHandle {
    pub(crate) shared: Arc<Shared>,
}

impl RestartHandle {
    /// The running DSP is dead or stuck: kill and replace it (whichever
    /// runs when the supervisor looks; ignored while none runs).
    /// Non-blocking and allocation-free: an atomic and an unpark.
    pub fn request_restart(&self) {
        self.request(ANY);
    }

    /// Kill and replace DSP number `generation` ([`crate::dsp::link::DspLink::generation`]),
    /// if it still runs; a request about a DSP already replaced is
    /// ignored. Non-blocking and allocation-free.
    pub fn request_restart_of(&self, generation: u64) {
        if generation != 0 {
            self.request(generation);
        }
    }

    fn request(&self, generation: u64) {
        // Generations only grow, so the largest request is the one that can
        // still matter. Relaxed: a flag; the unpark wakes the reader.
        self.shared.restart.fetch_max(generation, Ordering::Relaxed);
        if let Some(t) = self.shared.thread.get() {
            t.unpark();
        }
    }

    /// How many times a DSP had to be started again (after an exit, a
    /// requested restart, or a failed start).
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// The running DSP's process id (0: none runs).
    pub fn pid(&self) -> u32 {
        // Relaxed: a report (logs, the state page), not a handle to act on.
        self.shared.pid.load(Ordering::Relaxed)
    }
}

/// The delay before each restart: `initial`, doubling up to `max` while
/// DSPs keep failing, back to `initial` once a DSP ran for `healthy_after`
/// (a DSP that was killed after a healthy stretch is a new incident, not
/// the next failure of a crash loop). Pure arithmetic on the durations it
/// is given, so it is tested without waiting.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: std::time::Duration,
    max: std::time::Duration,
    healthy_after: std::time::Duration,
    next: std::time::Duration,
}

impl Backoff {
    /// A back-off starting at `initial`.
    pub fn new(
        initial: std::time::Duration,
        max: std::time::Duration,
        healthy_after: std::time::Duration,
    ) -> Self {
        Self {
            initial,
            max,
            healthy_after,
            next: initial,
        }
    }

    /// A DSP that ran for `ran` ended: the delay before starting the next.
    pub fn after_run(&mut self, ran: std::time::Duration) -> std::time::Duration {
        if ran >= self.healthy_after {
            self.next = self.initial;
        }
        self.take()
    }

    /// A start failed: the delay before the next attempt.
    pub fn after_failed_start(&mut self) -> std::time::Duration {
        self.take()
    }

    fn take(&mut self) -> std::time::Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(5000), Duration::from_secs(60));
        // A crash loop: every DSP dies at once.
        let delays: Vec<_> = (0..8).map(|_| b.after_run(ms(10))).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000]
                .map(ms)
                .to_vec()
        );
        // Failed starts continue the same sequence.
        assert_eq!(b.after_failed_start(), ms(5000));
        // 59 s is not healthy: still capped.
        assert_eq!(b.after_run(Duration::from_secs(59)), ms(5000));
        // A healthy minute resets it.
        assert_eq!(b.after_run(Duration::from_secs(60)), ms(100));
        assert_eq!(b.after_run(ms(10)), ms(200));
        assert_eq!(b.after_run(Duration::from_secs(3600)), ms(100));
    }
}
