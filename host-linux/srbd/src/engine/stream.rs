//! What a stream's connection thread and the mixer share: atomics only, so
//! neither side ever waits for the other (design rule: the real-time path
//! takes no lock a client-facing thread can hold).
//!
//! Requests go one way as monotonic values the other side compares with
//! what it last saw (`flush_to`, `drain_seq`, `trigger_seq`, ...); events go
//! back the same way (`started`, `underflows`, `drained_seq`). Audio goes
//! through `rtrb` rings beside these (one producer, one consumer).
//!
//! One exception, which the mixer never touches: [`RecordShared::next`],
//! the rings a record stream moved to a sink of another shape hands from
//! the control side to the stream's connection thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use srb_pulse::tagstruct::{ChannelMap, SampleSpec};

use crate::engine::notice::Notice;

/// Most channels a sink can have (PulseAudio's limit).
pub const MAX_CHANNELS: usize = 32;

/// Per-channel linear gains plus a mute flag, written by any connection
/// thread (volume commands) and read by the mixer each period.
#[derive(Debug)]
pub struct Gains {
    bits: [AtomicU32; MAX_CHANNELS],
    muted: AtomicBool,
}

impl Gains {
    /// Unity gain on every channel, not muted.
    pub fn unity() -> Self {
        Self {
            bits: std::array::from_fn(|_| AtomicU32::new(1.0f32.to_bits())),
            muted: AtomicBool::new(false),
        }
    }

    /// Sets the gains: `linear[i]` for channel `i`; channels past the end
    /// of `linear` repeat its last value (unity when it is empty).
    pub fn set(&self, linear: &[f32]) {
        let last = linear.last().copied().unwrap_or(1.0);
        for (i, g) in self.bits.iter().enumerate() {
            let v = linear.get(i).copied().unwrap_or(last);
            // Relaxed: each gain is independent; a period that mixes half
            // old and half new gains is as good as either.
            g.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    /// The gain of channel `i` (unity past [`MAX_CHANNELS`]).
    pub fn get(&self, i: usize) -> f32 {
        // Relaxed: see `set`.
        self.bits
            .get(i)
            .map_or(1.0, |g| f32::from_bits(g.load(Ordering::Relaxed)))
    }

    /// Mutes or unmutes.
    pub fn set_muted(&self, muted: bool) {
        // Relaxed: an independent flag.
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Whether muted.
    pub fn muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }
}

/// A playback stream's shared state.
#[derive(Debug)]
pub struct PlaybackShared {
    /// The sink-input index shown to clients.
    pub index: u32,
    /// Wakes the owning connection thread.
    pub notice: Arc<Notice>,
    /// Volume and mute.
    pub gains: Gains,
    /// Corked by the client: the mixer consumes nothing.
    pub corked: AtomicBool,
    /// The connection is done with the stream; the mixer drops it.
    pub closed: AtomicBool,
    /// Another client killed the stream (KILL_*); the owner tells its
    /// client and removes it.
    pub killed: AtomicBool,
    /// Bumped by the control side each time the stream moves to another
    /// device; its owner tells the client (STREAM_MOVED) when it sees a
    /// new value.
    pub moved: AtomicU32,
    /// Bytes the mixer must skip: everything written before a FLUSH.
    pub flush_to: AtomicU64,
    /// Prebuffer threshold in bytes (SET_BUFFER_ATTR may change it).
    pub prebuf: AtomicU32,
    /// Incremented by DRAIN requests.
    pub drain_seq: AtomicU32,
    /// Set by the mixer to `drain_seq` once all queued audio was played.
    pub drained_seq: AtomicU32,
    /// Incremented by TRIGGER: leave prebuffering now.
    pub trigger_seq: AtomicU32,
    /// Incremented by PREBUF: enter prebuffering now.
    pub prebuf_seq: AtomicU32,
    /// Bytes the mixer consumed (the memblockq read index).
    pub read_index: AtomicU64,
    /// Bytes queued so far (the write index), as the owning connection
    /// last stored it: how other clients' sink-input info computes the
    /// stream's buffer latency.
    pub written: AtomicU64,
    /// Whether the mixer is waiting for `prebuf` bytes.
    pub prebuffering: AtomicBool,
    /// Whether the stream is currently audible (not corked or starved).
    pub playing: AtomicBool,
    /// Times playback started (first start and after each underrun).
    pub started: AtomicU32,
    /// Times the queue ran dry while playing.
    pub underflows: AtomicU32,
    /// The read index at the last underflow.
    pub underflow_at: AtomicU64,
    /// Bytes (client format) of silence played while starved without
    /// prebuffering: added to the read index clients see.
    pub silence: AtomicU64,
}

impl PlaybackShared {
    /// New state for sink input `index`.
    pub fn new(index: u32, notice: Arc<Notice>, prebuf: u32, corked: bool) -> Self {
        Self {
            index,
            notice,
            gains: Gains::unity(),
            corked: AtomicBool::new(corked),
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            moved: AtomicU32::new(0),
            flush_to: AtomicU64::new(0),
            prebuf: AtomicU32::new(prebuf),
            drain_seq: AtomicU32::new(0),
            drained_seq: AtomicU32::new(0),
            trigger_seq: AtomicU32::new(0),
            prebuf_seq: AtomicU32::new(0),
            read_index: AtomicU64::new(0),
            written: AtomicU64::new(0),
            prebuffering: AtomicBool::new(true),
            playing: AtomicBool::new(false),
            started: AtomicU32::new(0),
            underflows: AtomicU32::new(0),
            underflow_at: AtomicU64::new(0),
            silence: AtomicU64::new(0),
        }
    }
}

/// A record stream's shared state.
#[derive(Debug)]
pub struct RecordShared {
    /// The source-output index shown to clients.
    pub index: u32,
    /// Wakes the owning connection thread.
    pub notice: Arc<Notice>,
    /// Stream volume and mute (applied by the connection thread).
    pub gains: Gains,
    /// Corked: the mixer delivers nothing.
    pub corked: AtomicBool,
    /// The connection is done with the stream; the mixer drops it.
    pub closed: AtomicBool,
    /// Another client killed the stream (KILL_*); the owner tells its
    /// client and removes it.
    pub killed: AtomicBool,
    /// Bumped by the control side each time the stream moves to another
    /// device; its owner tells the client (STREAM_MOVED) when it sees a
    /// new value.
    pub moved: AtomicU32,
    /// Sink frames the mixer could not deliver because the ring was full.
    pub dropped_frames: AtomicU64,
    /// Bytes (client format) captured but not yet sent to the client, as
    /// the owning connection last stored it (source-output info's buffer
    /// latency).
    pub queued: AtomicU64,
    /// Rings of the sinks this stream moved to across shapes, oldest
    /// first, not yet taken by the connection thread (control side only:
    /// the mixer never locks it).
    pub next: Mutex<VecDeque<NextRing>>,
    /// Bumped (Release) by a mixer after it dropped this stream's output
    /// for a move across shapes ([`crate::engine::mixer::Engine::detach_record`]):
    /// it writes nothing more to that ring.
    pub detached: AtomicU32,
}

/// The ring a record stream continues in after a move to a sink of
/// another shape, and what its audio is (for the new converter).
#[derive(Debug)]
pub struct NextRing {
    /// The new mixer's monitor frames (its channels, f32).
    pub ring: rtrb::Consumer<f32>,
    /// The new sink's spec.
    pub sink: SampleSpec,
    /// The new sink's channel map.
    pub sink_map: ChannelMap,
    /// The stream's own (client) channel map.
    pub client_map: ChannelMap,
}

impl RecordShared {
    /// New state for source output `index`.
    pub fn new(index: u32, notice: Arc<Notice>, corked: bool) -> Self {
        Self {
            index,
            notice,
            gains: Gains::unity(),
            corked: AtomicBool::new(corked),
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            moved: AtomicU32::new(0),
            dropped_frames: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            next: Mutex::new(VecDeque::new()),
            detached: AtomicU32::new(0),
        }
    }
}

/// A record stream handed to the mixer.
pub struct RecordOutput {
    /// Shared control state.
    pub shared: Arc<RecordShared>,
    /// Monitor frames (sink channels, f32) for the connection thread.
    pub ring: rtrb::Producer<f32>,
    /// `Some(i)`: records sink input `i` alone (`monitor_stream`), after
    /// its own volume, before the sink's; `None`: the monitor source.
    pub tap: Option<u32>,
}

impl std::fmt::Debug for RecordOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordOutput")
            .field("index", &self.shared.index)
            .field("free", &self.ring.slots())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gains_repeat_the_last_value() {
        let g = Gains::unity();
        assert_eq!(g.get(0), 1.0);
        g.set(&[0.5, 0.25]);
        assert_eq!((g.get(0), g.get(1), g.get(31)), (0.5, 0.25, 0.25));
        assert_eq!(g.get(99), 1.0);
        g.set(&[]);
        assert_eq!(g.get(3), 1.0);
        g.set_muted(true);
        assert!(g.muted());
    }
}
