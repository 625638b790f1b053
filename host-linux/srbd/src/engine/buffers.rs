//! What `pactl stat` reports as memblocks: srbd's real audio buffers.
//!
//! PulseAudio counts its memblocks (blocks alive now and their bytes,
//! blocks allocated over the server's life and their bytes). srbd's audio
//! lives in one ring per stream instead: a playback stream's byte ring
//! (client format, [`crate::control::playback::ring_capacity`]) and a
//! record stream's ring of monitor samples (`f32`, two seconds of the
//! sink). [`BufferStats`] counts those rings, by their allocated capacity
//! in bytes: a [`BufferLease`] is taken when a stream's ring is made and
//! gives its share back when the stream's connection side drops it. The
//! STAT reply (§6.9) carries these four figures (and the sample cache's
//! size, which is not a ring).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts of live and ever-made stream rings.
#[derive(Debug, Default)]
pub struct BufferStats {
    live: AtomicU64,
    live_bytes: AtomicU64,
    total: AtomicU64,
    total_bytes: AtomicU64,
}

/// One ring counted in [`BufferStats`] until dropped.
#[derive(Debug)]
pub struct BufferLease {
    stats: Arc<BufferStats>,
    bytes: u64,
}

/// A snapshot: (live rings, their bytes, rings ever made, their bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferFigures {
    /// Rings alive now.
    pub live: u64,
    /// Their capacity in bytes.
    pub live_bytes: u64,
    /// Rings made since the server started.
    pub total: u64,
    /// Their capacity in bytes.
    pub total_bytes: u64,
}

impl BufferStats {
    /// Counts a ring of `bytes` until the lease is dropped.
    pub fn lease(self: &Arc<Self>, bytes: u64) -> BufferLease {
        // Relaxed: statistics; no data is published with them.
        self.live.fetch_add(1, Ordering::Relaxed);
        self.live_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
        BufferLease {
            stats: self.clone(),
            bytes,
        }
    }

    /// The figures now.
    pub fn figures(&self) -> BufferFigures {
        // Relaxed: see `lease`; a snapshot may mix two moments.
        BufferFigures {
            live: self.live.load(Ordering::Relaxed),
            live_bytes: self.live_bytes.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for BufferLease {
    fn drop(&mut self) {
        // Relaxed: see `BufferStats::lease`.
        self.stats.live.fetch_sub(1, Ordering::Relaxed);
        self.stats
            .live_bytes
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_count_live_and_lifetime_rings() {
        let s = Arc::new(BufferStats::default());
        let a = s.lease(100);
        let b = s.lease(28);
        assert_eq!(
            s.figures(),
            BufferFigures {
                live: 2,
                live_bytes: 128,
                total: 2,
                total_bytes: 128
            }
        );
        drop(a);
        drop(b);
        let f = s.figures();
        assert_eq!(
            (f.live, f.live_bytes, f.total, f.total_bytes),
            (0, 0, 2, 128)
        );
    }
}
