//! [`SinkShared`]: the atomics one sink's mixer shares with the control
//! thread (gains, flags, counters, states) and with the first sink's
//! state page publisher, which reads the other sinks' figures from them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::Arc;

use crate::engine::buffers::BufferStats;
use crate::engine::stream::Gains;

/// State of the sink shared with connection threads.
#[derive(Debug)]
pub struct SinkShared {
    /// Sink volume and mute.
    pub gains: Gains,
    /// Monitor source volume and mute (applied to what record streams get).
    pub monitor_gains: Gains,
    /// Whether any stream is audible (sink state RUNNING rather than IDLE).
    pub running: AtomicBool,
    /// Periods rendered so far.
    pub periods: AtomicU64,
    /// Periods skipped because the mixer was too late to catch up.
    pub skipped: AtomicU64,
    /// The sink is suspended (SUSPEND_SINK): no stream advances, nothing
    /// reaches the output or the monitor.
    pub suspended: AtomicBool,
    /// The monitor source is suspended (SUSPEND_SOURCE): record streams
    /// get nothing.
    pub monitor_suspended: AtomicBool,
    /// The sink's state as the control side computes it from the streams
    /// (PulseAudio's codes: 0 RUNNING, 1 IDLE, 2 SUSPENDED), for the state
    /// page.
    pub sink_state: AtomicU8,
    /// The monitor source's state, likewise.
    pub monitor_state: AtomicU8,
    /// Frames the output backend holds (handed to it, not yet written
    /// out), as of the last period: part of the sink's latency.
    pub output_frames: AtomicU64,
    /// The stream rings alive and ever made (`pactl stat`).
    pub buffers: Arc<BufferStats>,
    /// Asks the mixer thread to end (polled once per period).
    pub(crate) stop: AtomicBool,
}
