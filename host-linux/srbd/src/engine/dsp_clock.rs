//! The sink clocked by the DSP peer (`dsp-sim`, issue "dsp-sim").
//!
//! While a DSP is attached, its timerfd is the sink's clock: each `Pull`
//! makes the mixer render one period and send it over the `srb` channel;
//! the processed period that comes back is what the output and the
//! monitor get. The mixer never waits for the DSP longer than one poll
//! bounded by the supervision deadline, and never loses or repeats a
//! period:
//!
//! - a period the DSP did not return before its next `Pull` is delivered
//!   unprocessed (bypass) and counted as late; a late answer is ignored;
//! - a period that does not fit in the ring is delivered unprocessed;
//! - no `Pull` for two periods (a killed or stopped DSP), or any link
//!   error (hostile or broken bytes), detaches the DSP: the outstanding
//!   period is delivered unprocessed, the supervisor is asked to replace
//!   the process, and the mixer's own timerfd clock takes over until a
//!   new link arrives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::dsp::link::{DspEvent, DspLink, StatsCell};

/// Counters of the DSP clock, shared with other threads (logs, tests).
#[derive(Debug, Default)]
pub struct DspCounters {
    /// Links attached so far.
    pub attached: AtomicU64,
    /// Times the DSP was detached (dead, stuck or misbehaving).
    pub fallbacks: AtomicU64,
    /// Periods delivered unprocessed because the DSP answered late or the
    /// ring was full.
    pub late: AtomicU64,
    /// Periods delivered processed by the DSP.
    pub processed: AtomicU64,
    /// Latest statistics reported by the DSP.
    pub stats: StatsCell,
}

/// What the mixer must do after a DSP step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Render period `seq` now and hand the mix to [`DspClock::sent`].
    Render,
    /// Deliver this processed period (the buffer of [`DspClock::processed`]).
    Deliver,
    /// Deliver the saved unprocessed mix ([`DspClock::pending_mix`]).
    DeliverPending,
}

/// The mixer's side of the DSP clock.
pub(super) struct DspClock {
    rx: mpsc::Receiver<DspLink>,
    link: Option<DspLink>,
    pending: Option<u32>,
    pull: Option<u32>,
    /// The last period sent to the DSP, kept for a bypass fallback.
    pub(super) pending_mix: Vec<f32>,
    /// Where the DSP's processed period lands.
    pub(super) processed: Vec<f32>,
    last_pull: Instant,
    deadline: Duration,
    counters: Arc<DspCounters>,
    /// What the mixer must do after [`DspClock::step`], in order.
    pub(super) queue: Vec<Step>,
}

impl DspClock {
    pub(super) fn new(
        rx: mpsc::Receiver<DspLink>,
        samples: usize,
        period: Duration,
        counters: Arc<DspCounters>,
    ) -> Self {
        Self {
            rx,
            link: None,
            pending: None,
            pull: None,
            pending_mix: vec![0.0; samples],
            processed: vec![0.0; samples],
            last_pull: Instant::now(),
            deadline: period * 2,
            counters,
            queue: Vec::with_capacity(16),
        }
    }

    /// Whether a DSP drives the clock now (after taking a new link, if one
    /// arrived).
    pub(super) fn active(&mut self) -> bool {
        while let Ok(link) = self.rx.try_recv() {
            tracing::info!(
                pid = ?link.pid(),
                generation = link.generation(),
                "DSP attached; it clocks the sink"
            );
            self.counters.attached.fetch_add(1, Ordering::Relaxed);
            self.link = Some(link);
            self.pending = None;
            self.last_pull = Instant::now();
        }
        self.link.is_some()
    }

    /// Whether a link is attached (without taking a new one).
    pub(super) fn has_link(&self) -> bool {
        self.link.is_some()
    }

    /// Waits (bounded by the supervision deadline) for the DSP and fills
    /// [`DspClock::queue`] with what the mixer must do, in order (empty:
    /// call again). `Err` means the DSP was detached: still do what the
    /// queue says, then fall back to the timer.
    pub(super) fn step(&mut self) -> Result<(), String> {
        self.queue.clear();
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        let result = Self::poll_link(
            link,
            &mut self.processed,
            &mut self.queue,
            &mut self.pending,
            &mut self.pull,
            &mut self.last_pull,
            self.deadline,
            &self.counters,
        );
        if let Err(reason) = result {
            if self.pending.take().is_some() {
                self.queue.push(Step::DeliverPending);
            }
            if let Some(link) = self.link.take() {
                link.request_restart();
            }
            self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%reason, "DSP detached; sink on its own clock, bypassed");
            return Err(reason);
        }
        Ok(())
    }

    /// The mix of the pulled period was rendered into `mix`: send it.
    /// Returns whether it went out (else deliver it unprocessed now).
    pub(super) fn sent(&mut self, mix: &[f32], channels: u8) -> Result<bool, String> {
        let (Some(link), Some(seq)) = (self.link.as_mut(), self.pull.take()) else {
            return Ok(false);
        };
        match link.send_period(seq, mix, channels) {
            Ok(true) => {
                self.pending = Some(seq);
                self.pending_mix.copy_from_slice(mix);
                Ok(true)
            }
            Ok(false) => {
                self.counters.late.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => {
                if let Some(link) = self.link.take() {
                    link.request_restart();
                }
                self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%e, "DSP link failed; sink on its own clock, bypassed");
                Err(e.to_string())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn poll_link(
        link: &mut DspLink,
        processed: &mut [f32],
        queue: &mut Vec<Step>,
        pending: &mut Option<u32>,
        pull: &mut Option<u32>,
        last_pull: &mut Instant,
        deadline: Duration,
        counters: &DspCounters,
    ) -> Result<(), String> {
        let ready = link.before_poll().map_err(|e| e.to_string())?;
        if !ready {
            let left = deadline.saturating_sub(last_pull.elapsed());
            let timeout = Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let fd = link.poll_fd();
            let peer = link.peer_fd();
            let mut fds = [
                PollFd::new(&fd, PollFlags::IN),
                // A killed DSP hangs up its socket: noticed at once.
                PollFd::new(&peer, PollFlags::RDHUP),
            ];
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            let hup = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
            let hung_up = fds[1].revents().intersects(hup);
            // Only a sleep that before_poll allowed is ended.
            link.after_poll().map_err(|e| e.to_string())?;
            if hung_up {
                return Err("the DSP hung up".into());
            }
        }
        loop {
            match link.recv(processed).map_err(|e| e.to_string())? {
                None => break,
                Some(DspEvent::Pull { seq }) => {
                    *last_pull = Instant::now();
                    if pending.take().is_some() {
                        // The DSP gave up on the previous period.
                        counters.late.fetch_add(1, Ordering::Relaxed);
                        queue.push(Step::DeliverPending);
                    }
                    *pull = Some(seq);
                    queue.push(Step::Render);
                    // Render before reading further: the next message may
                    // be the answer to this period.
                    return Ok(());
                }
                Some(DspEvent::Processed { seq, frames }) => {
                    if *pending == Some(seq)
                        && frames * usize::from(link.channels()) == processed.len()
                    {
                        *pending = None;
                        counters.processed.fetch_add(1, Ordering::Relaxed);
                        queue.push(Step::Deliver);
                        // Deliver before the buffer is overwritten.
                        return Ok(());
                    }
                    tracing::debug!(seq, ?pending, "stale DSP period ignored");
                }
                Some(DspEvent::Stats(s)) => counters.stats.publish(&s),
            }
        }
        if last_pull.elapsed() > deadline {
            return Err(format!("no pull from the DSP within {deadline:?}"));
        }
        Ok(())
    }
}
