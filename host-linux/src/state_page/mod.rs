//! The state page: srbd's live figures in one page of shared memory that
//! any local client of our uid maps **read-only** and reads without asking
//! (Monado's shared device data, for audio).
//!
//! srbd creates the page ([`StatePageWriter::create`]: a memfd, mapped
//! read-write once, then sealed `F_SEAL_SHRINK | F_SEAL_GROW |
//! F_SEAL_FUTURE_WRITE | F_SEAL_SEAL`, so no receiver can map it writable,
//! `write()` it, or resize it), publishes a [`Snapshot`] whenever its
//! figures change ([`StatePageWriter::publish`], from the real-time mixer
//! thread: no allocation, no system call, no wait), and hands the fd out
//! over its `control` socket ([`StatePageServer`]). A client calls
//! [`StatePage::connect`] (or [`StatePage::open`] on an fd it has) and
//! [`StatePage::snapshot`] whenever it likes: a validated private copy, or
//! a named [`SnapshotError`]. [`StatePage::sink_clock`] reads one sink's
//! audio clock alone, for interpolating the position
//! ([`SinkClock::position_at`]).
//!
//! Consistency comes from `srb-core`'s [`seqlock`](srb_core::seqlock): a
//! reader never returns half of one publication and half of another, and
//! never makes the writer wait. A checksum word, computed by the writer
//! over the payload, lets a reader (and the cross-process stress test)
//! verify that independently.
//!
//! # Byte layout (version 1, 4096 bytes, every word little-endian)
//!
//! | bytes | words | contents |
//! |---|---|---|
//! | 0 | 1 | magic `"srbP"` ([`layout::MAGIC`]) |
//! | 4 | 1 | layout version ([`layout::VERSION`], 1) |
//! | 8 | 1 | page length (4096) |
//! | 12 | 4 | capacities: sinks (8), sources (8), DSPs (4), peak channels (8) |
//! | 28 | 3 | payload words (472), words per stream entry (24), per DSP entry (20) |
//! | 40 | 6 | reserved, 0 |
//! | 64 | 1 | seqlock sequence (even: stable; odd: mid-write) |
//! | 68 | 1 | payload 0: checksum of payload words 1.. ([`layout::checksum`]) |
//! | 72 | 3 | payload 1-3: number of sinks, sources, DSPs in use |
//! | 84 | 2 | payload 4-5: `CLOCK_MONOTONIC` ns of the publication (u64) |
//! | 92 | 2 | payload 6-7: reserved, 0 |
//! | 100 | 8 × 24 | sinks (stream entries) |
//! | 868 | 8 × 24 | sources (stream entries) |
//! | 1636 | 4 × 20 | DSPs (DSP entries) |
//! | 1956 | | unused to the end of the page |
//!
//! The header (bytes 0-63) is written once, before the fd leaves srbd; a
//! reader requires every word of it to be exactly what this crate writes.
//! Everything from the sequence word on is the seqlock region; u64 values
//! are two words, low first. Slots beyond the counts are zero.
//!
//! Stream entry (sink or source), word offsets:
//!
//! | word | contents |
//! |---|---|
//! | 0 | index |
//! | 1 | state: 1 running, 2 idle, 3 suspended (0: unused slot) |
//! | 2 | rate, frames per second |
//! | 3 | channels |
//! | 4 | latency, µs |
//! | 5 | reserved |
//! | 6-7 | position, frames (u64) |
//! | 8-9 | `CLOCK_MONOTONIC` ns when the position was taken (u64) |
//! | 10-11 | periods (u64) |
//! | 12-13 | xruns (u64) |
//! | 14-15 | late periods (u64) |
//! | 16-23 | name: 32 bytes of UTF-8, NUL-padded |
//!
//! DSP entry, word offsets:
//!
//! | word | contents |
//! |---|---|
//! | 0 | pid |
//! | 1 | peak channels in use (≤ 8) |
//! | 2 | mean processing time per period, ns |
//! | 3 | worst processing time per period, ns |
//! | 4 | restarts |
//! | 5 | reserved |
//! | 6-7 | periods processed (u64) |
//! | 8-9 | deadline misses (u64) |
//! | 10-17 | peak per channel: `f32` bits, linear absolute peak of the last period (1.0 = full scale), finite and ≥ 0 |
//! | 18-19 | reserved |
//!
//! # Where things live
//!
//! | file | what it holds |
//! |---|---|
//! | [`snapshot`] | [`Snapshot`], [`StreamStats`], [`DspStats`], [`StreamState`], [`Name`]: the typed copy |
//! | [`layout`] | offsets, [`layout::encode`] / [`layout::decode`] (every check), the checksum, [`SnapshotError`] |
//! | [`writer`] | [`StatePageWriter`]: create, seal, publish |
//! | [`reader`] | [`StatePage`]: open (fd checks, read-only map, header), `snapshot`, `sink_clock` |
//! | [`hello`] | the control socket's one frame |
//! | [`serve`] | [`StatePageServer`]: non-blocking `control` socket, uid check, fd sent with `SCM_RIGHTS` |
//! | [`client`] | [`StatePage::connect`], [`client::receive_page_fd`], [`default_control_path`] |

pub mod client;
pub mod hello;
pub mod layout;
pub mod reader;
pub mod serve;
pub mod snapshot;
pub mod writer;

pub use client::{default_control_path, ConnectError};
pub use layout::SnapshotError;
pub use reader::{OpenError, SinkClock, StatePage};
pub use serve::{BindError, ServeError, StatePageServer};
pub use snapshot::{
    monotonic_ns, CapacityError, DspStats, Name, Snapshot, StreamState, StreamStats, Table,
    MAX_CHANNELS, MAX_DSPS, MAX_SINKS, MAX_SOURCES, NAME_LEN,
};
pub use writer::{CreateError, StatePageWriter};

#[cfg(test)]
mod tests {
    use super::layout::*;

    #[test]
    fn the_documented_offsets_hold() {
        assert_eq!(PAYLOAD_OFFSET, 68);
        assert_eq!(PAYLOAD_OFFSET + SINKS_AT * 4, 100);
        assert_eq!(PAYLOAD_OFFSET + SOURCES_AT * 4, 868);
        assert_eq!(PAYLOAD_OFFSET + DSPS_AT * 4, 1636);
        assert_eq!(PAYLOAD_OFFSET + PAYLOAD_WORDS * 4, 1956);
        assert_eq!(PAYLOAD_WORDS, 472);
    }
}
