//! The byte layout of a state page, and the encoding of a [`Snapshot`]
//! into its payload words and back (with every check a reader makes).
//!
//! See the [module docs](super) for the table. Everything here is plain
//! arithmetic on private `u32` arrays; the shared memory itself is touched
//! only by the writer and the reader, through `srb-core`'s seqlock.

use srb_core::seqlock::SeqlockError;

use super::snapshot::{
    DspStats, Name, Snapshot, StreamState, StreamStats, Table, MAX_CHANNELS, MAX_DSPS, MAX_SINKS,
    MAX_SOURCES, NAME_LEN,
};

/// Bytes of a state page.
pub const PAGE_LEN: usize = 4096;
/// The page's first word: `"srbP"` read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"srbP");
/// The layout version this crate writes and reads.
pub const VERSION: u32 = 1;

/// Header words (before the seqlock's sequence word).
pub const HEADER_WORDS: usize = 16;
/// Byte offset of the seqlock's sequence word.
pub const SEQ_OFFSET: usize = HEADER_WORDS * 4;
/// Byte offset of payload word 0.
pub const PAYLOAD_OFFSET: usize = SEQ_OFFSET + 4;

/// Words of one sink or source entry.
pub const STREAM_WORDS: usize = 24;
/// Words of one DSP entry.
pub const DSP_WORDS: usize = 20;
/// Payload words before the tables.
pub const TOP_WORDS: usize = 8;
/// Payload word of the first sink.
pub const SINKS_AT: usize = TOP_WORDS;
/// Payload word of the first source.
pub const SOURCES_AT: usize = SINKS_AT + MAX_SINKS * STREAM_WORDS;
/// Payload word of the first DSP.
pub const DSPS_AT: usize = SOURCES_AT + MAX_SOURCES * STREAM_WORDS;
/// Payload words in all.
pub const PAYLOAD_WORDS: usize = DSPS_AT + MAX_DSPS * DSP_WORDS;

/// Payload word offsets of the top block.
mod top {
    pub const CHECKSUM: usize = 0;
    pub const N_SINKS: usize = 1;
    pub const N_SOURCES: usize = 2;
    pub const N_DSPS: usize = 3;
    pub const PUBLISHED_NS: usize = 4;
}

/// Word offsets inside a stream entry.
pub mod stream {
    /// The server's index.
    pub const INDEX: usize = 0;
    /// [`super::StreamState`] as a word; 0 = unused slot.
    pub const STATE: usize = 1;
    /// Frames per second.
    pub const RATE: usize = 2;
    /// Channels.
    pub const CHANNELS: usize = 3;
    /// Latency, µs.
    pub const LATENCY_US: usize = 4;
    /// Position, frames (u64, two words: low, high).
    pub const POSITION: usize = 6;
    /// `CLOCK_MONOTONIC` ns of the position (u64).
    pub const CLOCK_NS: usize = 8;
    /// Periods (u64).
    pub const PERIODS: usize = 10;
    /// Under/overruns (u64).
    pub const XRUNS: usize = 12;
    /// Late periods (u64).
    pub const LATE: usize = 14;
    /// Name, 32 bytes (8 words, little-endian byte order).
    pub const NAME: usize = 16;
    /// Words the clock fast path reads (index..clock).
    pub const CLOCK_WORDS: usize = CLOCK_NS + 2;
}

/// Word offsets inside a DSP entry.
mod dsp {
    pub const PID: usize = 0;
    pub const CHANNELS: usize = 1;
    pub const MEAN_NS: usize = 2;
    pub const WORST_NS: usize = 3;
    pub const RESTARTS: usize = 4;
    pub const PERIODS: usize = 6;
    pub const MISSES: usize = 8;
    pub const PEAKS: usize = 10;
}

const _: () = {
    assert!(stream::NAME + NAME_LEN / 4 <= STREAM_WORDS);
    assert!(dsp::PEAKS + MAX_CHANNELS <= DSP_WORDS);
    assert!(PAYLOAD_OFFSET + PAYLOAD_WORDS * 4 <= PAGE_LEN);
};

/// The header as the writer stores it (magic, version, geometry; zeros
/// after): a reader requires exactly these values.
pub const fn header() -> [u32; HEADER_WORDS] {
    let mut h = [0u32; HEADER_WORDS];
    h[0] = MAGIC;
    h[1] = VERSION;
    h[2] = PAGE_LEN as u32;
    h[3] = MAX_SINKS as u32;
    h[4] = MAX_SOURCES as u32;
    h[5] = MAX_DSPS as u32;
    h[6] = MAX_CHANNELS as u32;
    h[7] = PAYLOAD_WORDS as u32;
    h[8] = STREAM_WORDS as u32;
    h[9] = DSP_WORDS as u32;
    h
}

/// Names of the header words, for errors.
pub const HEADER_FIELDS: [&str; 10] = [
    "magic",
    "version",
    "page length",
    "sink capacity",
    "source capacity",
    "dsp capacity",
    "channel capacity",
    "payload words",
    "stream entry words",
    "dsp entry words",
];

/// Why a copy of the page was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    /// The writer was mid-write on every attempt (or died there).
    #[error("state page busy: the server was mid-write on all {tries} attempts")]
    Busy {
        /// Attempts made.
        tries: u32,
    },
    /// The page changed during every attempt.
    #[error("state page kept changing during all {tries} attempts")]
    Torn {
        /// Attempts made.
        tries: u32,
    },
    /// The checksum does not match the payload.
    #[error("state page checksum {stored:#010x} does not match the payload ({computed:#010x})")]
    BadChecksum {
        /// The checksum word.
        stored: u32,
        /// The checksum of the payload read.
        computed: u32,
    },
    /// A table count above its capacity.
    #[error("{count} {table}s, at most {max}")]
    BadCount {
        /// The table.
        table: Table,
        /// The count read.
        count: u32,
        /// The capacity.
        max: usize,
    },
    /// A stream state word that names no state.
    #[error("{table} {slot}: unknown state {value}")]
    BadState {
        /// The table.
        table: Table,
        /// The slot.
        slot: usize,
        /// The word read.
        value: u32,
    },
    /// A name that is not NUL-padded UTF-8.
    #[error("{table} {slot}: the name is not NUL-padded UTF-8")]
    BadName {
        /// The table.
        table: Table,
        /// The slot.
        slot: usize,
    },
    /// A DSP with more peak channels than the page holds.
    #[error("dsp {slot}: {count} peak channels, at most {max}", max = MAX_CHANNELS)]
    BadChannels {
        /// The slot.
        slot: usize,
        /// The count read.
        count: u32,
    },
    /// A peak that is not a finite, non-negative number.
    #[error("dsp {slot}: peak {channel} is {bits:#010x}, not a finite non-negative f32")]
    BadPeak {
        /// The DSP slot.
        slot: usize,
        /// The channel.
        channel: usize,
        /// The bits read.
        bits: u32,
    },
    /// The clock of a sink slot that is not in use.
    #[error("no sink in slot {slot}")]
    NoSuchSink {
        /// The slot asked for.
        slot: usize,
    },
}

impl From<SeqlockError> for SnapshotError {
    fn from(e: SeqlockError) -> Self {
        match e {
            SeqlockError::Busy { tries } => SnapshotError::Busy { tries },
            SeqlockError::Torn { tries } => SnapshotError::Torn { tries },
            // The page's ranges are constants inside the payload.
            SeqlockError::OutOfRange { .. } => unreachable!("fixed ranges inside the payload"),
        }
    }
}

/// The checksum of payload words `1..` (word 0 holds it): two running sums
/// (Fletcher-style, no modulus), folded to 32 bits. Cheap (two adds per
/// word), and a copy that mixes two versions of the varying words fails it.
pub fn checksum(payload: &[u32; PAYLOAD_WORDS]) -> u32 {
    let (mut a, mut b) = (1u64, 0u64);
    for &w in &payload[1..] {
        a = a.wrapping_add(u64::from(w));
        b = b.wrapping_add(a);
    }
    let x = a ^ b.rotate_left(29);
    (x ^ (x >> 32)) as u32
}

fn put64(out: &mut [u32], at: usize, v: u64) {
    out[at] = v as u32;
    out[at + 1] = (v >> 32) as u32;
}

fn get64(w: &[u32], at: usize) -> u64 {
    u64::from(w[at]) | (u64::from(w[at + 1]) << 32)
}

fn encode_stream(out: &mut [u32], s: &StreamStats) {
    out[stream::INDEX] = s.index;
    out[stream::STATE] = s.state.to_word();
    out[stream::RATE] = s.rate;
    out[stream::CHANNELS] = s.channels;
    out[stream::LATENCY_US] = s.latency_us;
    put64(out, stream::POSITION, s.position);
    put64(out, stream::CLOCK_NS, s.clock_ns);
    put64(out, stream::PERIODS, s.periods);
    put64(out, stream::XRUNS, s.xruns);
    put64(out, stream::LATE, s.late);
    for (i, c) in s.name.padded().chunks_exact(4).enumerate() {
        out[stream::NAME + i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

fn encode_dsp(out: &mut [u32], d: &DspStats) {
    out[dsp::PID] = d.pid;
    out[dsp::CHANNELS] = u32::from(d.channels);
    out[dsp::MEAN_NS] = d.mean_ns;
    out[dsp::WORST_NS] = d.worst_ns;
    out[dsp::RESTARTS] = d.restarts;
    put64(out, dsp::PERIODS, d.periods);
    put64(out, dsp::MISSES, d.deadline_misses);
    for (i, p) in d.peaks.iter().enumerate() {
        out[dsp::PEAKS + i] = p.to_bits();
    }
}

/// Encodes `s` into payload words, checksum included. Unused slots are
/// zero. No allocation.
pub fn encode(s: &Snapshot, out: &mut [u32; PAYLOAD_WORDS]) {
    out.fill(0);
    let (sinks, sources, dsps, [ns, nsrc, nd]) = s.raw();
    out[top::N_SINKS] = u32::from(ns);
    out[top::N_SOURCES] = u32::from(nsrc);
    out[top::N_DSPS] = u32::from(nd);
    put64(out, top::PUBLISHED_NS, s.published_ns);
    for (i, st) in sinks.iter().take(usize::from(ns)).enumerate() {
        encode_stream(&mut out[SINKS_AT + i * STREAM_WORDS..], st);
    }
    for (i, st) in sources.iter().take(usize::from(nsrc)).enumerate() {
        encode_stream(&mut out[SOURCES_AT + i * STREAM_WORDS..], st);
    }
    for (i, d) in dsps.iter().take(usize::from(nd)).enumerate() {
        encode_dsp(&mut out[DSPS_AT + i * DSP_WORDS..], d);
    }
    out[top::CHECKSUM] = checksum(out);
}

fn count(
    w: &[u32; PAYLOAD_WORDS],
    at: usize,
    table: Table,
    max: usize,
) -> Result<usize, SnapshotError> {
    let n = w[at];
    if n as usize > max {
        return Err(SnapshotError::BadCount {
            table,
            count: n,
            max,
        });
    }
    Ok(n as usize)
}

/// The state word of a used slot.
pub(crate) fn state(value: u32, table: Table, slot: usize) -> Result<StreamState, SnapshotError> {
    StreamState::from_word(value).ok_or(SnapshotError::BadState { table, slot, value })
}

fn decode_stream(w: &[u32], table: Table, slot: usize) -> Result<StreamStats, SnapshotError> {
    let mut name = [0u8; NAME_LEN];
    for (i, c) in name.chunks_exact_mut(4).enumerate() {
        c.copy_from_slice(&w[stream::NAME + i].to_le_bytes());
    }
    Ok(StreamStats {
        index: w[stream::INDEX],
        name: Name::from_padded(&name).ok_or(SnapshotError::BadName { table, slot })?,
        state: state(w[stream::STATE], table, slot)?,
        rate: w[stream::RATE],
        channels: w[stream::CHANNELS],
        latency_us: w[stream::LATENCY_US],
        position: get64(w, stream::POSITION),
        clock_ns: get64(w, stream::CLOCK_NS),
        periods: get64(w, stream::PERIODS),
        xruns: get64(w, stream::XRUNS),
        late: get64(w, stream::LATE),
    })
}

fn decode_dsp(w: &[u32], slot: usize) -> Result<DspStats, SnapshotError> {
    let channels = w[dsp::CHANNELS];
    if channels as usize > MAX_CHANNELS {
        return Err(SnapshotError::BadChannels {
            slot,
            count: channels,
        });
    }
    let mut peaks = [0f32; MAX_CHANNELS];
    for (channel, p) in peaks.iter_mut().enumerate().take(channels as usize) {
        let bits = w[dsp::PEAKS + channel];
        let v = f32::from_bits(bits);
        if !v.is_finite() || v.is_sign_negative() {
            return Err(SnapshotError::BadPeak {
                slot,
                channel,
                bits,
            });
        }
        *p = v;
    }
    Ok(DspStats {
        pid: w[dsp::PID],
        periods: get64(w, dsp::PERIODS),
        mean_ns: w[dsp::MEAN_NS],
        worst_ns: w[dsp::WORST_NS],
        deadline_misses: get64(w, dsp::MISSES),
        restarts: w[dsp::RESTARTS],
        peaks,
        channels: channels as u8,
    })
}

/// Decodes and validates payload words read at sequence `seq`: checksum
/// first, then counts, then every used slot. Unused slots are ignored
/// (the checksum covers them).
pub fn decode(w: &[u32; PAYLOAD_WORDS], seq: u32) -> Result<Snapshot, SnapshotError> {
    let computed = checksum(w);
    if computed != w[top::CHECKSUM] {
        return Err(SnapshotError::BadChecksum {
            stored: w[top::CHECKSUM],
            computed,
        });
    }
    let n_sinks = count(w, top::N_SINKS, Table::Sinks, MAX_SINKS)?;
    let n_sources = count(w, top::N_SOURCES, Table::Sources, MAX_SOURCES)?;
    let n_dsps = count(w, top::N_DSPS, Table::Dsps, MAX_DSPS)?;
    let mut s = Snapshot::new();
    s.published_ns = get64(w, top::PUBLISHED_NS);
    s.set_sequence(seq);
    let entry = |at: usize, i: usize, len: usize| &w[at + i * len..at + (i + 1) * len];
    for i in 0..n_sinks {
        let st = decode_stream(entry(SINKS_AT, i, STREAM_WORDS), Table::Sinks, i)?;
        s.push_sink(st).map_err(|_| unreachable_count())?;
    }
    for i in 0..n_sources {
        let st = decode_stream(entry(SOURCES_AT, i, STREAM_WORDS), Table::Sources, i)?;
        s.push_source(st).map_err(|_| unreachable_count())?;
    }
    for i in 0..n_dsps {
        let d = decode_dsp(entry(DSPS_AT, i, DSP_WORDS), i)?;
        s.push_dsp(d).map_err(|_| unreachable_count())?;
    }
    Ok(s)
}

/// Counts are checked against the capacities before the pushes.
fn unreachable_count() -> SnapshotError {
    unreachable!("counts checked against the capacities")
}

/// The clock fast path's words of a sink slot: `(state, rate, position,
/// clock_ns, index)` once the state is checked.
pub(crate) fn decode_clock(
    w: &[u32; stream::CLOCK_WORDS],
    slot: usize,
) -> Result<(StreamState, u32, u64, u64, u32), SnapshotError> {
    if w[stream::STATE] == 0 {
        return Err(SnapshotError::NoSuchSink { slot });
    }
    let st = state(w[stream::STATE], Table::Sinks, slot)?;
    Ok((
        st,
        w[stream::RATE],
        get64(w, stream::POSITION),
        get64(w, stream::CLOCK_NS),
        w[stream::INDEX],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut s = Snapshot::new();
        s.published_ns = 0x1_0000_0002;
        s.push_sink(StreamStats {
            index: 3,
            name: Name::new("srb_output"),
            state: StreamState::Running,
            rate: 48_000,
            channels: 2,
            latency_us: 10_000,
            position: u64::MAX - 5,
            clock_ns: 123_456_789_012,
            periods: 7,
            xruns: 1,
            late: 2,
        })
        .unwrap();
        let mut d = DspStats {
            pid: 42,
            periods: 9,
            mean_ns: 1500,
            worst_ns: 9000,
            deadline_misses: 1,
            restarts: 0,
            ..DspStats::default()
        };
        d.set_peaks(&[0.5, 1.25]).unwrap();
        s.push_dsp(d).unwrap();
        s
    }

    #[test]
    fn a_snapshot_round_trips() {
        let s = sample();
        let mut w = [0u32; PAYLOAD_WORDS];
        encode(&s, &mut w);
        let mut back = decode(&w, 6).unwrap();
        assert_eq!(back.sequence(), 6);
        back.set_sequence(0);
        assert_eq!(back, s);
    }

    #[test]
    fn each_bad_value_has_its_error() {
        let mut w = [0u32; PAYLOAD_WORDS];
        encode(&sample(), &mut w);
        let with = |f: &dyn Fn(&mut [u32; PAYLOAD_WORDS])| {
            let mut x = w;
            f(&mut x);
            x[top::CHECKSUM] = checksum(&x);
            decode(&x, 0).unwrap_err()
        };
        assert_eq!(
            with(&|x| x[top::N_SOURCES] = 9),
            SnapshotError::BadCount {
                table: Table::Sources,
                count: 9,
                max: MAX_SOURCES
            }
        );
        assert_eq!(
            with(&|x| x[SINKS_AT + stream::STATE] = 7),
            SnapshotError::BadState {
                table: Table::Sinks,
                slot: 0,
                value: 7
            }
        );
        assert_eq!(
            with(&|x| x[SINKS_AT + stream::NAME] = 0xffff_ffff),
            SnapshotError::BadName {
                table: Table::Sinks,
                slot: 0
            }
        );
        assert_eq!(
            with(&|x| x[DSPS_AT + dsp::CHANNELS] = 9),
            SnapshotError::BadChannels { slot: 0, count: 9 }
        );
        assert_eq!(
            with(&|x| x[DSPS_AT + dsp::PEAKS + 1] = f32::NAN.to_bits()),
            SnapshotError::BadPeak {
                slot: 0,
                channel: 1,
                bits: f32::NAN.to_bits()
            }
        );
        let mut x = w;
        x[SINKS_AT + stream::RATE] ^= 1;
        assert!(matches!(
            decode(&x, 0),
            Err(SnapshotError::BadChecksum { .. })
        ));
    }

    #[test]
    fn the_checksum_sees_a_copy_that_mixes_two_versions() {
        let mut a = sample();
        let mut b = sample();
        a.sinks_mut()[0].position = 1000;
        a.sinks_mut()[0].clock_ns = 5;
        b.sinks_mut()[0].position = 2000;
        b.sinks_mut()[0].clock_ns = 6;
        let (mut wa, mut wb) = ([0u32; PAYLOAD_WORDS], [0u32; PAYLOAD_WORDS]);
        encode(&a, &mut wa);
        encode(&b, &mut wb);
        // First half of b, rest of a (including a's checksum).
        let mut torn = wa;
        torn[..SINKS_AT + stream::CLOCK_NS].copy_from_slice(&wb[..SINKS_AT + stream::CLOCK_NS]);
        assert!(matches!(
            decode(&torn, 0),
            Err(SnapshotError::BadChecksum { .. })
        ));
    }
}
