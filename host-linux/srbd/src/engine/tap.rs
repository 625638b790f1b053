//! Per-stream taps: record streams that capture one sink input alone
//! (`monitor_stream`, `pa_stream_set_monitor_stream`), as level meters
//! per application use them.
//!
//! PulseAudio hands a sink input's "direct outputs" the input's own
//! rendered chunk with the input's volume applied, before the mix and the
//! sink volume; while the input gives no audio (corked, starved, muted)
//! they get silence, so the recording keeps time. The mixer does the same
//! here: after rendering an input's period (sink rate and channels, f32)
//! it copies it, times the input's gains, into the ring of every record
//! stream whose [`RecordOutput::tap`] names that
//! input. The copy writes straight into the ring (no scratch buffer, no
//! allocation); a full ring drops the rest of the period and counts it,
//! as the monitor path does.

use std::sync::atomic::Ordering;

use crate::engine::stream::{Gains, RecordOutput, MAX_CHANNELS};

/// Feeds sink input `index`'s period `out` (interleaved, `channels` per
/// frame) to the records tapping it: times `gains` when `heard`, silence
/// otherwise. Returns whether an owner was marked whose flag was clear
/// (the caller rings the bell once at the end of the period).
pub fn feed(
    records: &mut [RecordOutput],
    index: u32,
    out: &[f32],
    channels: usize,
    heard: bool,
    gains: &Gains,
) -> bool {
    let channels = channels.max(1);
    let g: [f32; MAX_CHANNELS] = std::array::from_fn(|c| gains.get(c));
    let mut ring_bell = false;
    for r in records.iter_mut().filter(|r| r.tap == Some(index)) {
        // Relaxed: a flag read once per period.
        if r.shared.corked.load(Ordering::Relaxed) {
            continue;
        }
        let free = r.ring.slots() / channels * channels;
        let n = out.len().min(free);
        if let Ok(chunk) = r.ring.write_chunk_uninit(n) {
            let samples = out[..n].iter().enumerate().map(|(i, &x)| {
                if heard {
                    x * g[(i % channels).min(MAX_CHANNELS - 1)]
                } else {
                    0.0
                }
            });
            chunk.fill_from_iter(samples);
        }
        if n < out.len() {
            // Relaxed: a counter for the owner's log.
            r.shared
                .dropped_frames
                .fetch_add(((out.len() - n) / channels) as u64, Ordering::Relaxed);
        }
        ring_bell |= r.shared.notice.mark();
    }
    ring_bell
}
