//! What the mixer publishes on the state page ([`srb_linux::state_page`]):
//! every sink's and monitor's clock and counters, and the DSP's figures,
//! once per period.
//!
//! The first sink's mixer (srbd's own sink) is the page's one writer.
//! Other sinks (null sinks, remap sinks) are added to and removed from it
//! by message ([`PageSink`]); each period it reads their counters from
//! their shared atomics. Their `clock_ns` is the time of that
//! publication, not of their own last period (they run on their own
//! clocks), so a reader interpolating their position is off by up to one
//! of their periods; the first sink's clock is exact.
//!
//! The page is one sealed memfd that any local client of our uid can map
//! read-only (the control loop hands it out over the `control` socket);
//! a client reads the audio clock from it (`position` at `clock_ns`, and
//! the rate to interpolate) without a round trip to srbd. The mixer fills
//! a private [`Snapshot`] in place and publishes it under the page's
//! seqlock: no allocation, no system call but `clock_gettime` (vDSO), no
//! wait for any reader.
//!
//! What each figure means here:
//!
//! | figure | sink | monitor source |
//! |---|---|---|
//! | `position` | frames delivered to the output (and the monitor) | the same frames |
//! | `clock_ns` | `CLOCK_MONOTONIC` right after that period was delivered | same |
//! | `state` | as `pactl list sinks` says: SUSPENDED, RUNNING while an uncorked stream plays to it, else IDLE (computed by the control side) | as `pactl list sources` says (RUNNING while an uncorked record stream reads it) |
//! | `latency_us` | one period (the one being played), what the output backend holds, plus one more period while a DSP processes the sink (as GET_PLAYBACK_LATENCY reports it) | same as the sink |
//! | `periods` | periods delivered | same |
//! | `xruns` | periods the DSP missed (played as the fallback) plus periods the sink's own clock skipped | record frames dropped for full record queues are per stream, not here: 0 |
//! | `late` | late DSP results discarded | 0 |
//!
//! Per DSP (when srbd runs one): its pid, periods, mean and worst
//! processing time and deadline misses as the DSP last reported them,
//! restarts so far, and its last peak meters (linear; the DSP reports
//! dBFS).

use std::sync::atomic::Ordering;

use srb_linux::state_page::{
    monotonic_ns, DspStats, Name, Snapshot, StatePageWriter, StreamState, StreamStats, MAX_SINKS,
};
use srb_pulse::tagstruct::SampleSpec;

use crate::dsp::restart::RestartHandle;
use crate::engine::dsp_clock::DspCounters;

/// What the page says about whom: the server's names and indexes for the
/// sink and its monitor, and the DSP's restart handle.
#[derive(Debug)]
pub struct PageSetup {
    /// The page (created and sealed by the caller, who keeps a dup of its
    /// fd to hand out).
    pub writer: StatePageWriter,
    /// The sink's index and name.
    pub sink: (u32, String),
    /// The monitor source's index and name.
    pub monitor: (u32, String),
    /// The DSP supervisor's handle (pid, restarts), when a DSP runs.
    pub dsp: Option<RestartHandle>,
}

/// Another sink listed on the page: its names and indexes, format, and
/// the atomics its mixer updates.
#[derive(Debug, Clone)]
pub struct PageSink {
    /// The sink's index and name.
    pub sink: (u32, String),
    /// Its monitor's index and name.
    pub monitor: (u32, String),
    /// Its sample spec.
    pub spec: SampleSpec,
    /// Its period in frames.
    pub period_frames: usize,
    /// Its mixer's shared state.
    pub shared: std::sync::Arc<crate::engine::sink_shared::SinkShared>,
}

/// The sink's flags and counters for one publication, read by the mixer
/// from its shared atomics.
#[derive(Debug, Clone, Copy)]
pub(super) struct SinkFigures {
    /// Periods delivered.
    pub periods: u64,
    /// Periods the sink's own clock skipped.
    pub skipped: u64,
    /// The sink's state (PulseAudio's code, as the control side computed
    /// it: [`super::sink_shared::SinkShared::sink_state`]).
    pub sink_state: u8,
    /// The monitor's state, likewise.
    pub monitor_state: u8,
    /// A DSP clocks the sink now.
    pub dsp_attached: bool,
    /// Frames the output backend still holds.
    pub output_frames: u64,
}

/// The mixer's publisher (lives on the mixer thread).
#[derive(Debug)]
pub(super) struct PagePublisher {
    writer: StatePageWriter,
    snap: Snapshot,
    dsp: Option<RestartHandle>,
    period_frames: u64,
    period_us: u32,
    /// The other sinks, in page order after the first (capacity
    /// reserved at start: adding one does not allocate).
    others: Vec<PageSink>,
    own: (StreamStats, StreamStats),
}

fn stats((index, name): &(u32, String), spec: SampleSpec) -> StreamStats {
    StreamStats {
        index: *index,
        name: Name::new(name),
        rate: spec.rate,
        channels: u32::from(spec.channels),
        ..StreamStats::default()
    }
}

impl PagePublisher {
    /// Fills the fixed parts of the snapshot (names, indexes, format).
    pub(super) fn new(setup: PageSetup, spec: SampleSpec, period_frames: usize) -> Self {
        let mut snap = Snapshot::new();
        let own = (stats(&setup.sink, spec), stats(&setup.monitor, spec));
        // One sink and one source fit any page (capacities are 8).
        let _ = snap.push_sink(own.0);
        let _ = snap.push_source(own.1);
        if setup.dsp.is_some() {
            let _ = snap.push_dsp(DspStats::default());
        }
        let period_us =
            u32::try_from(period_frames as u64 * 1_000_000 / u64::from(spec.rate.max(1)))
                .unwrap_or(u32::MAX);
        let mut publisher = Self {
            writer: setup.writer,
            snap,
            dsp: setup.dsp,
            period_frames: period_frames as u64,
            period_us,
            others: Vec::with_capacity(MAX_SINKS),
            own,
        };
        // The tables before the first period (position 0, idle), so that a
        // client never sees an empty page from a running server.
        let now = monotonic_ns();
        publisher.snap.published_ns = now;
        for s in publisher.snap.sinks_mut() {
            s.clock_ns = now;
        }
        for s in publisher.snap.sources_mut() {
            s.clock_ns = now;
        }
        publisher.writer.publish(&publisher.snap);
        publisher
    }

    /// Lists another sink (and its monitor) from the next publication;
    /// ignored past the page's capacity.
    pub(super) fn add(&mut self, sink: PageSink) {
        if self.others.len() + 1 >= MAX_SINKS {
            return;
        }
        self.others.push(sink);
        self.rebuild();
    }

    /// Unlists sink `index`.
    pub(super) fn remove(&mut self, index: u32) {
        self.others.retain(|o| o.sink.0 != index);
        self.rebuild();
    }

    /// Lays the tables out again: the first sink, then the others.
    fn rebuild(&mut self) {
        let first = (
            self.snap.sinks().first().copied().unwrap_or(self.own.0),
            self.snap.sources().first().copied().unwrap_or(self.own.1),
        );
        let dsp = self.snap.dsps().first().copied();
        self.snap.clear();
        let _ = self.snap.push_sink(first.0);
        let _ = self.snap.push_source(first.1);
        for o in &self.others {
            let _ = self.snap.push_sink(stats(&o.sink, o.spec));
            let _ = self.snap.push_source(stats(&o.monitor, o.spec));
        }
        if let Some(d) = dsp {
            let _ = self.snap.push_dsp(d);
        }
    }

    /// The other sinks' figures, from their atomics.
    fn publish_others(&mut self, now: u64) {
        let sinks = self.snap.sinks_mut().iter_mut().skip(1);
        for (o, s) in self.others.iter().zip(sinks) {
            let sh = &o.shared;
            // Relaxed: counters and states read once each for a report.
            let periods = sh.periods.load(Ordering::Relaxed);
            s.state = state(sh.sink_state.load(Ordering::Relaxed));
            s.position = periods.saturating_mul(o.period_frames as u64);
            s.clock_ns = now;
            s.periods = periods;
            s.latency_us = frames_us(
                o.period_frames as u64 + sh.output_frames.load(Ordering::Relaxed),
                o.spec.rate,
            );
            s.xruns = sh.skipped.load(Ordering::Relaxed);
        }
        let sources = self.snap.sources_mut().iter_mut().skip(1);
        for (o, m) in self.others.iter().zip(sources) {
            let sh = &o.shared;
            let periods = sh.periods.load(Ordering::Relaxed);
            m.state = state(sh.monitor_state.load(Ordering::Relaxed));
            m.position = periods.saturating_mul(o.period_frames as u64);
            m.clock_ns = now;
            m.periods = periods;
            m.latency_us = frames_us(o.period_frames as u64, o.spec.rate);
        }
    }

    /// Publishes the figures after a delivered period (real-time path:
    /// fixed-size copies only).
    pub(super) fn publish(&mut self, sink: SinkFigures, dsp: &DspCounters) {
        let now = monotonic_ns();
        let SinkFigures {
            periods,
            skipped,
            sink_state,
            monitor_state,
            dsp_attached,
            output_frames,
        } = sink;
        // Relaxed: independent counters, read once each for a report; the
        // page's seqlock orders the publication.
        let xruns = dsp.xruns.load(Ordering::Relaxed) + skipped;
        let late = dsp.late.load(Ordering::Relaxed);
        // As GET_PLAYBACK_LATENCY counts it: the period being played, what
        // the output holds, and a period at the DSP while one clocks us.
        let held = frames_us(
            output_frames,
            self.snap.sinks().first().map_or(1, |s| s.rate),
        );
        let latency_us = self
            .period_us
            .saturating_mul(if dsp_attached { 2 } else { 1 })
            .saturating_add(held);
        let position = periods.saturating_mul(self.period_frames);
        if let Some(s) = self.snap.sinks_mut().first_mut() {
            s.state = state(sink_state);
            s.position = position;
            s.clock_ns = now;
            s.periods = periods;
            s.latency_us = latency_us;
            s.xruns = xruns;
            s.late = late;
        }
        if let Some(m) = self.snap.sources_mut().first_mut() {
            m.state = state(monitor_state);
            m.position = position;
            m.clock_ns = now;
            m.periods = periods;
            m.latency_us = latency_us;
        }
        if let (Some(handle), Some(d)) = (&self.dsp, self.snap.dsps_mut().first_mut()) {
            d.pid = handle.pid();
            d.restarts = u32::try_from(handle.restarts()).unwrap_or(u32::MAX);
            if let Some(st) = dsp.stats.load() {
                d.periods = st.periods;
                d.mean_ns = u32::try_from(st.mean_ns).unwrap_or(u32::MAX);
                d.worst_ns = u32::try_from(st.worst_ns).unwrap_or(u32::MAX);
                d.deadline_misses = st.deadline_misses;
                let n = usize::from(st.channels)
                    .min(d.peaks.len())
                    .min(st.peak_db.len());
                for (p, db) in d.peaks.iter_mut().zip(&st.peak_db[..n]) {
                    *p = linear(*db);
                }
                d.channels = n as u8;
            }
        }
        self.publish_others(now);
        self.snap.published_ns = now;
        self.writer.publish(&self.snap);
    }
}

/// `frames` at `rate` in microseconds (saturating).
fn frames_us(frames: u64, rate: u32) -> u32 {
    u32::try_from(frames.saturating_mul(1_000_000) / u64::from(rate.max(1))).unwrap_or(u32::MAX)
}

/// PulseAudio's state code → the page's state (an unknown code reads as
/// IDLE).
fn state(code: u8) -> StreamState {
    match code {
        0 => StreamState::Running,
        2 => StreamState::Suspended,
        _ => StreamState::Idle,
    }
}

/// dBFS → linear amplitude; `-inf` (silence) and anything not finite → 0.
fn linear(db: f32) -> f32 {
    let v = 10f32.powf(db / 20.0);
    if v.is_finite() && v >= 0.0 {
        v
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decibels_become_linear_meters() {
        assert_eq!(linear(0.0), 1.0);
        assert!((linear(-20.0) - 0.1).abs() < 1e-6);
        assert_eq!(linear(f32::NEG_INFINITY), 0.0);
        assert_eq!(linear(f32::NAN), 0.0);
        assert_eq!(linear(f32::INFINITY), 0.0);
    }
}
