//! The sink clocked by the DSP peer (`dsp-sim`), and the deadline policy
//! for periods the DSP does not return in time.
//!
//! While a DSP is attached, its timerfd is the sink's clock: each `Pull`
//! makes the mixer render one period and send it over the `srb` channel;
//! the processed period that comes back is what the output and the
//! monitor get. The mixer never waits for the DSP longer than one poll
//! bounded by the next period's due time, and never plays a period twice
//! or out of order.
//!
//! # Deadline policy
//!
//! On real products the chain is often a limiter or speaker protection:
//! audio that skipped it must not reach the speaker. So a period the DSP
//! misses is an **xrun**: the sink plays its [`Fallback`] instead —
//! silence by default, the unprocessed mix only under
//! [`Fallback::Bypass`] — to the output *and* the monitor (the monitor
//! records what was played), counts it in [`DspCounters::xruns`] (the
//! control loop logs the count at most once per [`MISS_LOG_INTERVAL`]: no
//! log line is formatted on the mixer thread), and keeps the DSP. A period is missed when
//!
//! - the DSP pulls the next one before returning it (it gave up on it);
//! - it does not fit in the ring;
//! - the DSP falls silent: no `Pull` a period after the one it was due
//!   (one period of grace). The mixer's own clock then covers each slot,
//!   on the DSP's schedule (`due` advances by one period per cover, so the
//!   sink's clock stays steady): it renders the period (streams keep real
//!   time) and plays the fallback.
//!
//! When a stopped DSP resumes it sends what it had queued: a result for a
//! period already played, then a `Pull` whose sequence number counts the
//! ticks it slept through. Results for periods already played are late:
//! discarded and counted in [`DspCounters::late`]. Pulls are matched to
//! the next slot by sequence number: one for a slot the mixer already
//! covered is discarded (never rendered twice; counted as late); one past
//! the next slot (the mixer itself was late) first covers the slots in
//! between. So every slot is rendered exactly once, in order.
//!
//! The DSP is declared dead — detached, the supervisor asked to replace
//! the process, the mixer's own timerfd clock in charge — only when its
//! socket hangs up (the process died), the link fails (hostile or broken
//! bytes), or it made no progress (no `Pull`, no result) for
//! [`DspPolicy::stall_timeout`] (default [`DEFAULT_STALL_TIMEOUT`]). Until
//! a new DSP attaches every period is played as the fallback and counted
//! as an xrun.
//!
//! # Which fallback
//!
//! `dsp_fallback = "silence" | "bypass"` (`--dsp-fallback`) when set;
//! otherwise bypass if the chain is empty (the DSP would pass the audio
//! through unchanged anyway) and silence if it is not
//! ([`Fallback::resolve`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::dsp::link::{DspEvent, DspLink, StatsCell};
use crate::rt::sched::prefaulted;

/// How long a DSP may make no progress before it is declared dead.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(1);
/// At most one "missed periods" log line per this interval (logged by the
/// control loop from [`DspCounters::xruns`]).
pub const MISS_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many slots are covered at once (a mixer that was itself
/// late longer than that skips the rest, counted in
/// [`DspCounters::skipped`]).
const MAX_COVER: u32 = 64;

/// What the sink plays for a period the DSP did not return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Silence (the default with a non-empty chain).
    Silence,
    /// The unprocessed mix (the default with an empty chain; with a chain
    /// only when the user asks for it).
    Bypass,
}

impl Fallback {
    /// The configured fallback, else bypass for an empty chain and silence
    /// for a non-empty one.
    pub fn resolve(explicit: Option<Fallback>, chain_empty: bool) -> Fallback {
        explicit.unwrap_or(if chain_empty {
            Fallback::Bypass
        } else {
            Fallback::Silence
        })
    }

    /// `"silence"` or `"bypass"`.
    pub fn name(self) -> &'static str {
        match self {
            Fallback::Silence => "silence",
            Fallback::Bypass => "bypass",
        }
    }
}

impl std::str::FromStr for Fallback {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "silence" => Ok(Fallback::Silence),
            "bypass" => Ok(Fallback::Bypass),
            _ => Err(format!("{s:?}: expected silence or bypass")),
        }
    }
}

/// How the mixer treats its DSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DspPolicy {
    /// What a missed period plays.
    pub fallback: Fallback,
    /// No progress for this long: the DSP is dead.
    pub stall_timeout: Duration,
}

impl Default for DspPolicy {
    fn default() -> Self {
        Self {
            fallback: Fallback::Silence,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

/// Counters of one sink's DSP clock, shared with other threads (the stats
/// log line, the state page, tests). All monotonic; read them with
/// `Relaxed` loads (independent counters, no data handed over).
///
/// The sink's period count is [`crate::engine::mixer::SinkShared::periods`];
/// the DSP's restarts are the supervisor's
/// ([`crate::dsp::restart::RestartHandle::restarts`]).
#[derive(Debug, Default)]
pub struct DspCounters {
    /// DSP links attached so far.
    pub attached: AtomicU64,
    /// Times a DSP was declared dead and detached (hang-up, link error,
    /// no progress for the stall timeout).
    pub fallbacks: AtomicU64,
    /// Periods played as processed by the DSP.
    pub processed: AtomicU64,
    /// Periods played as the fallback (silence, or the unprocessed mix
    /// under bypass) because the DSP did not return them in time: given
    /// up, not sent (ring full), covered while the DSP was silent, or
    /// played while no DSP was attached.
    pub xruns: AtomicU64,
    /// Messages from the DSP that came too late to use and were discarded:
    /// results for periods already played, pulls for slots already
    /// covered.
    pub late: AtomicU64,
    /// Slots neither rendered nor played because the mixer itself was more
    /// than 64 periods late.
    pub skipped: AtomicU64,
    /// The DSP's latest statistics (its own deadline misses, processing
    /// mean and worst, peaks).
    pub stats: StatsCell,
}

impl DspCounters {
    fn bump(c: &AtomicU64) {
        // Relaxed: an independent counter.
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one counter (Relaxed: an independent counter).
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What the mixer must do after a DSP step, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Render the pulled period and hand the mix to [`DspClock::sent`].
    Render,
    /// Play the processed period (the buffer of [`DspClock::processed`]).
    Deliver,
    /// The period sent last was missed: play its fallback
    /// ([`DspClock::fallback`] of [`DspClock::pending_mix`]).
    Missed,
    /// The DSP is silent: render the next period on the mixer's own clock
    /// and play its fallback ([`DspClock::fallback`] of the mix).
    Cover,
}

/// The mixer's side of the DSP clock.
pub(super) struct DspClock {
    rx: mpsc::Receiver<DspLink>,
    link: Option<DspLink>,
    /// The period sent to the DSP and not yet answered.
    pending: Option<u32>,
    /// The period pulled and not yet rendered.
    pull: Option<u32>,
    /// The sequence number of the next slot to render (`None` until the
    /// first pull of a link).
    next_seq: Option<u32>,
    /// When the next slot is due on the DSP's clock.
    due: Instant,
    /// The last pull or result from the DSP.
    last_progress: Instant,
    period: Duration,
    policy: DspPolicy,
    /// The last period sent to the DSP, for a bypass fallback.
    pub(super) pending_mix: Vec<f32>,
    /// Where the DSP's processed period lands.
    pub(super) processed: Vec<f32>,
    /// One period of zeros (the silence fallback; never written).
    silence: Vec<f32>,
    counters: Arc<DspCounters>,
    /// What the mixer must do after [`DspClock::step`], in order.
    pub(super) queue: Vec<Step>,
}

impl DspClock {
    pub(super) fn new(
        rx: mpsc::Receiver<DspLink>,
        samples: usize,
        period: Duration,
        policy: DspPolicy,
        counters: Arc<DspCounters>,
    ) -> Self {
        let now = Instant::now();
        Self {
            rx,
            link: None,
            pending: None,
            pull: None,
            next_seq: None,
            due: now + period,
            last_progress: now,
            period,
            policy,
            pending_mix: prefaulted(samples, 0.0),
            processed: prefaulted(samples, 0.0),
            silence: prefaulted(samples, 0.0),
            counters,
            // Covers and a render per step at most.
            queue: Vec::with_capacity(2 * MAX_COVER as usize + 4),
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
            DspCounters::bump(&self.counters.attached);
            self.link = Some(link);
            self.pending = None;
            self.pull = None;
            self.next_seq = None;
            let now = Instant::now();
            self.due = now + self.period;
            self.last_progress = now;
        }
        self.link.is_some()
    }

    /// Whether a link is attached (without taking a new one).
    pub(super) fn has_link(&self) -> bool {
        self.link.is_some()
    }

    /// What to play instead of `mix` for a period the DSP missed (counts
    /// nothing; the caller's step was counted).
    pub(super) fn fallback<'a>(&'a self, mix: &'a [f32]) -> &'a [f32] {
        match self.policy.fallback {
            Fallback::Bypass => mix,
            Fallback::Silence => &self.silence,
        }
    }

    /// A period played on the mixer's own clock while no DSP is attached:
    /// counted as an xrun; play [`DspClock::fallback`] of the mix.
    pub(super) fn unattached_period(&mut self) {
        self.xrun();
    }

    /// Waits (at most until the next slot is due) for the DSP and fills
    /// [`DspClock::queue`] with what the mixer must do, in order (empty:
    /// call again). `Err` means the DSP was declared dead and detached:
    /// still do what the queue says, then run on the timer.
    pub(super) fn step(&mut self) -> Result<(), String> {
        self.queue.clear();
        if self.link.is_none() {
            return Ok(());
        }
        let result = self.poll_link();
        if let Err(reason) = result {
            if self.pending.take().is_some() {
                self.xrun();
                self.queue.push(Step::Missed);
            }
            self.detach(&reason);
            return Err(reason);
        }
        Ok(())
    }

    /// The mix of the pulled period was rendered into `mix`: send it.
    /// Returns whether it went out; if not, it is a counted xrun and the
    /// mixer plays [`DspClock::fallback`] of it now.
    pub(super) fn sent(&mut self, mix: &[f32], channels: u8) -> bool {
        let (Some(link), Some(seq)) = (self.link.as_mut(), self.pull.take()) else {
            self.xrun();
            return false;
        };
        match link.send_period(seq, mix, channels) {
            Ok(true) => {
                self.pending = Some(seq);
                self.pending_mix.copy_from_slice(mix);
                true
            }
            Ok(false) => {
                self.xrun();
                false
            }
            Err(e) => {
                self.xrun();
                self.detach(&format!("sending a period failed: {e}"));
                false
            }
        }
    }

    /// Logs the counters once (at the mixer's exit).
    pub(super) fn log_summary(&self) {
        let c = &*self.counters;
        tracing::info!(
            attached = DspCounters::get(&c.attached),
            processed = DspCounters::get(&c.processed),
            xruns = DspCounters::get(&c.xruns),
            late = DspCounters::get(&c.late),
            skipped = DspCounters::get(&c.skipped),
            fallbacks = DspCounters::get(&c.fallbacks),
            dsp_deadline_misses = c.stats.load().map(|s| s.deadline_misses),
            "DSP clock summary"
        );
    }

    fn detach(&mut self, reason: &str) {
        if let Some(link) = self.link.take() {
            link.request_restart();
        }
        self.pull = None;
        DspCounters::bump(&self.counters.fallbacks);
        tracing::warn!(
            %reason,
            fallback = self.policy.fallback.name(),
            "DSP declared dead; restarting it; the sink runs on its own clock and plays the fallback meanwhile"
        );
    }

    /// Counts one period played as the fallback (the control loop logs
    /// the count; see [`MISS_LOG_INTERVAL`]).
    fn xrun(&mut self) {
        DspCounters::bump(&self.counters.xruns);
    }

    /// Covers the next slot on the mixer's own clock.
    fn cover(&mut self) {
        if self.pending.take().is_some() {
            self.xrun();
            self.queue.push(Step::Missed);
        }
        self.xrun();
        self.queue.push(Step::Cover);
        if let Some(n) = &mut self.next_seq {
            *n = n.wrapping_add(1);
        }
    }

    fn poll_link(&mut self) -> Result<(), String> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        let ready = link.before_poll().map_err(|e| e.to_string())?;
        if !ready {
            let wake = (self.due + self.period).min(self.last_progress + self.policy.stall_timeout);
            let left = wake.saturating_duration_since(Instant::now());
            // A polled link (the board peer) has no doorbell: look again
            // after its interval.
            let left = link.poll_interval().map_or(left, |i| left.min(i));
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
            let Some(link) = self.link.as_mut() else {
                return Ok(());
            };
            match link.recv(&mut self.processed).map_err(|e| e.to_string())? {
                None => break,
                Some(DspEvent::Pull { seq }) => {
                    let now = Instant::now();
                    self.last_progress = now;
                    let ahead = self.next_seq.map_or(0, |n| seq.wrapping_sub(n) as i32);
                    if ahead < 0 {
                        // A slot the mixer covered while the DSP was
                        // silent: never rendered twice.
                        DspCounters::bump(&self.counters.late);
                        tracing::debug!(seq, next = ?self.next_seq, "stale DSP pull discarded");
                        continue;
                    }
                    if self.pending.take().is_some() {
                        // The DSP gave up on the previous period.
                        self.xrun();
                        self.queue.push(Step::Missed);
                    }
                    // Slots the DSP skipped that the mixer has not covered
                    // (the mixer was late too): cover them first, in order.
                    let gap = ahead as u32;
                    for _ in 0..gap.min(MAX_COVER) {
                        self.cover();
                    }
                    if gap > MAX_COVER {
                        self.counters
                            .skipped
                            .fetch_add(u64::from(gap - MAX_COVER), Ordering::Relaxed);
                    }
                    self.pull = Some(seq);
                    self.next_seq = Some(seq.wrapping_add(1));
                    self.due = now + self.period;
                    self.queue.push(Step::Render);
                    // Render before reading further: the next message may
                    // be the answer to this period.
                    return Ok(());
                }
                Some(DspEvent::Processed { seq, frames }) => {
                    self.last_progress = Instant::now();
                    if self.pending == Some(seq)
                        && frames * usize::from(link.channels()) == self.processed.len()
                    {
                        self.pending = None;
                        DspCounters::bump(&self.counters.processed);
                        self.queue.push(Step::Deliver);
                        // Deliver before the buffer is overwritten.
                        return Ok(());
                    }
                    // Its slot was played already (as the fallback).
                    DspCounters::bump(&self.counters.late);
                    tracing::debug!(seq, pending = ?self.pending, "late DSP result discarded");
                }
                Some(DspEvent::Stats(s)) => self.counters.stats.publish(&s),
            }
        }
        let now = Instant::now();
        if now.duration_since(self.last_progress) >= self.policy.stall_timeout {
            return Err(format!(
                "no progress from the DSP for {:?} (stall timeout)",
                self.policy.stall_timeout
            ));
        }
        // The DSP is silent: the mixer's clock covers each overdue slot.
        let mut covered = 0;
        while now >= self.due + self.period {
            if covered == MAX_COVER {
                let behind = now.duration_since(self.due + self.period).as_nanos()
                    / self.period.as_nanos().max(1);
                self.counters
                    .skipped
                    .fetch_add(behind as u64 + 1, Ordering::Relaxed);
                self.due = now;
                break;
            }
            self.cover();
            self.due += self.period;
            covered += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use srb_dsp_sim::link::{self as wire, Control};
    use srb_linux::channel::Channel;
    use srb_linux::handshake::{self, ChannelConfig, LayoutKind, SignalKind};
    use srb_linux::scm::ScmStream;

    const FRAMES: usize = 64;
    const SAMPLES: usize = FRAMES * 2;
    const HOUR: Duration = Duration::from_secs(3600);

    /// A clock attached to a fake DSP (the returned channel end), with
    /// covers held off (`due` an hour away) until a test moves `due`.
    fn clock(fallback: Fallback) -> (DspClock, Channel, Arc<DspCounters>) {
        let (a, b) = ScmStream::pair().unwrap();
        let dsp = std::thread::spawn(move || {
            handshake::accept(b, Some(Duration::from_secs(10))).unwrap()
        });
        let cfg = ChannelConfig {
            layout: LayoutKind::Srb,
            signal: SignalKind::Eventfd,
            capacity: 1 << 14,
        };
        let host = handshake::create(a, cfg, Some(Duration::from_secs(10))).unwrap();
        let link = DspLink::new(host, 2, FRAMES).unwrap();
        let (tx, rx) = mpsc::channel();
        tx.send(link).unwrap();
        let counters = Arc::new(DspCounters::default());
        let policy = DspPolicy {
            fallback,
            stall_timeout: HOUR,
        };
        let mut c = DspClock::new(
            rx,
            SAMPLES,
            Duration::from_millis(10),
            policy,
            counters.clone(),
        );
        assert!(c.active());
        c.due = Instant::now() + HOUR;
        (c, dsp.join().unwrap(), counters)
    }

    fn pull(dsp: &mut Channel, seq: u32) {
        let mut b = [0u8; 64];
        let n = Control::Pull { seq }.encode(&mut b).unwrap();
        dsp.write_all(&b[..n], None).unwrap();
    }

    fn answer(dsp: &mut Channel, seq: u32, x: f32) {
        let mut b = vec![0u8; wire::period_len(FRAMES, 2)];
        let n = wire::encode_period(seq, 2, &[x; SAMPLES], &mut b).unwrap();
        dsp.write_all(&b[..n], None).unwrap();
    }

    /// Steps until the clock has something to do (the fake DSP wrote
    /// first, or `due` was moved into the past: no step blocks).
    fn steps(c: &mut DspClock) -> Vec<Step> {
        for _ in 0..100 {
            c.step().unwrap();
            if !c.queue.is_empty() {
                return c.queue.clone();
            }
        }
        panic!("nothing to do after 100 steps");
    }

    /// Makes the slot after the current one overdue: the next step covers
    /// exactly one slot.
    fn overdue(c: &mut DspClock) {
        c.due = Instant::now() - c.period;
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    #[test]
    fn every_slot_is_played_once_in_order_and_late_messages_are_discarded() {
        use Step::*;
        let (mut c, mut dsp, n) = clock(Fallback::Silence);
        pull(&mut dsp, 0);
        assert_eq!(steps(&mut c), [Render]);
        assert!(c.sent(&[0.5; SAMPLES], 2));
        answer(&mut dsp, 0, 0.25);
        assert_eq!(steps(&mut c), [Deliver]);
        assert_eq!(c.processed[0], 0.25);
        pull(&mut dsp, 1);
        assert_eq!(steps(&mut c), [Render]);
        assert!(c.sent(&[0.5; SAMPLES], 2));
        // The DSP stops: period 1 is missed, slots 2 and 3 are covered.
        overdue(&mut c);
        assert_eq!(steps(&mut c), [Missed, Cover]);
        overdue(&mut c);
        assert_eq!(steps(&mut c), [Cover]);
        c.due = Instant::now() + HOUR;
        assert_eq!((get(&n.xruns), get(&n.late)), (3, 0));
        // It resumes with its late answer and the pulls it had queued:
        // the answer and the pulls for covered slots are discarded; slot 4
        // is rendered.
        answer(&mut dsp, 1, 0.25);
        pull(&mut dsp, 2);
        pull(&mut dsp, 3);
        pull(&mut dsp, 4);
        assert_eq!(steps(&mut c), [Render]);
        assert_eq!(get(&n.late), 3);
        assert!(c.sent(&[0.5; SAMPLES], 2));
        // A pull that skips slots the mixer did not cover (it was late
        // itself): period 4 is missed, 5 and 6 covered, 7 rendered.
        pull(&mut dsp, 7);
        assert_eq!(steps(&mut c), [Missed, Cover, Cover, Render]);
        assert_eq!(get(&n.xruns), 6);
        assert_eq!(get(&n.processed), 1);
        // The silence fallback is silence; nothing was detached.
        assert!(c.fallback(&[0.5; SAMPLES]).iter().all(|x| *x == 0.0));
        assert_eq!(get(&n.fallbacks), 0);
        assert!(c.has_link());
    }

    #[test]
    fn bypass_plays_the_mix_and_only_a_stall_or_a_hang_up_is_death() {
        let (mut c, mut dsp, n) = clock(Fallback::Bypass);
        assert!(c.fallback(&[0.5; SAMPLES]).iter().all(|x| *x == 0.5));
        pull(&mut dsp, 0);
        assert_eq!(steps(&mut c), [Step::Render]);
        // Many covered periods are not death...
        for _ in 0..50 {
            overdue(&mut c);
            steps(&mut c);
        }
        assert!(c.has_link());
        // ...no progress for the stall timeout is.
        c.last_progress = Instant::now() - HOUR;
        assert!(c.step().unwrap_err().contains("no progress"));
        assert!(!c.has_link());
        assert_eq!(get(&n.fallbacks), 1);
        // While none is attached every period is an xrun.
        let before = get(&n.xruns);
        c.unattached_period();
        assert_eq!(get(&n.xruns), before + 1);

        let (mut c, dsp, n) = clock(Fallback::Silence);
        drop(dsp);
        assert!(c.step().unwrap_err().contains("hung up"));
        assert_eq!(get(&n.fallbacks), 1);
    }

    #[test]
    fn the_fallback_rule() {
        assert_eq!(Fallback::resolve(None, true), Fallback::Bypass);
        assert_eq!(Fallback::resolve(None, false), Fallback::Silence);
        assert_eq!(
            Fallback::resolve(Some(Fallback::Bypass), false),
            Fallback::Bypass
        );
        assert_eq!(
            Fallback::resolve(Some(Fallback::Silence), true),
            Fallback::Silence
        );
        assert_eq!("bypass".parse(), Ok(Fallback::Bypass));
        assert_eq!("silence".parse(), Ok(Fallback::Silence));
        assert!("loud".parse::<Fallback>().is_err());
    }
}
