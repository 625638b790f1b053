//! [`Snapshot`]: the typed, private copy of a state page, and its parts.
//!
//! The same type is what srbd fills in and publishes
//! ([`super::StatePageWriter::publish`]) and what a client gets back
//! ([`super::StatePage::snapshot`]). It is plain data with fixed-capacity
//! tables (no heap), so filling one in on a real-time thread allocates
//! nothing; [`Snapshot::sinks`] and friends give the used part of each table.

use std::fmt;

/// Sinks a page can describe.
pub const MAX_SINKS: usize = 8;
/// Sources a page can describe.
pub const MAX_SOURCES: usize = 8;
/// DSPs a page can describe.
pub const MAX_DSPS: usize = 4;
/// Peak meters per DSP.
pub const MAX_CHANNELS: usize = 8;
/// Bytes of a sink's or source's name (UTF-8, NUL-padded).
pub const NAME_LEN: usize = 32;

/// Which table of the page a value belongs to (for errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The sinks.
    Sinks,
    /// The sources.
    Sources,
    /// The DSPs.
    Dsps,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Table::Sinks => "sink",
            Table::Sources => "source",
            Table::Dsps => "dsp",
        })
    }
}

/// A table of a [`Snapshot`] is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {table} table is full ({max} entries)")]
pub struct CapacityError {
    /// The table.
    pub table: Table,
    /// Its capacity.
    pub max: usize,
}

/// What a sink or source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StreamState {
    /// Playing or recording.
    Running,
    /// Open but nothing is playing or recording.
    #[default]
    Idle,
    /// Suspended (its device closed).
    Suspended,
}

impl StreamState {
    /// The word the page stores (0 marks an unused slot).
    pub const fn to_word(self) -> u32 {
        match self {
            StreamState::Running => 1,
            StreamState::Idle => 2,
            StreamState::Suspended => 3,
        }
    }

    /// The state a page word names, if any.
    pub const fn from_word(w: u32) -> Option<Self> {
        match w {
            1 => Some(StreamState::Running),
            2 => Some(StreamState::Idle),
            3 => Some(StreamState::Suspended),
            _ => None,
        }
    }

    /// Lower-case name (`running`, `idle`, `suspended`).
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamState::Running => "running",
            StreamState::Idle => "idle",
            StreamState::Suspended => "suspended",
        }
    }
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A short name: at most [`NAME_LEN`] bytes of UTF-8.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Name {
    bytes: [u8; NAME_LEN],
    len: u8,
}

impl Name {
    /// `s`, cut at the last character boundary that fits [`NAME_LEN`]
    /// bytes, and at its first NUL (the page pads with NULs).
    pub fn new(s: &str) -> Self {
        let s = s.split('\0').next().unwrap_or("");
        let mut end = s.len().min(NAME_LEN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; NAME_LEN];
        bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        Self {
            bytes,
            len: end as u8,
        }
    }

    /// Parses the page's NUL-padded bytes: UTF-8 up to the first NUL, and
    /// only NULs after it. `None` otherwise.
    pub fn from_padded(bytes: &[u8; NAME_LEN]) -> Option<Self> {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        if bytes[len..].iter().any(|&b| b != 0) {
            return None;
        }
        std::str::from_utf8(&bytes[..len]).ok()?;
        Some(Self {
            bytes: *bytes,
            len: len as u8,
        })
    }

    /// The NUL-padded bytes the page stores.
    pub fn padded(&self) -> &[u8; NAME_LEN] {
        &self.bytes
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Both constructors keep `bytes[..len]` valid UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sink or source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// The server's index for it (as `pactl list sinks` shows).
    pub index: u32,
    /// Its name.
    pub name: Name,
    /// What it is doing.
    pub state: StreamState,
    /// Frames per second.
    pub rate: u32,
    /// Channels.
    pub channels: u32,
    /// Its latency in microseconds.
    pub latency_us: u32,
    /// Frames played (sink) or recorded (source) so far.
    pub position: u64,
    /// `CLOCK_MONOTONIC` in nanoseconds when `position` was taken.
    pub clock_ns: u64,
    /// Periods processed.
    pub periods: u64,
    /// Underruns (sink) or overruns (source).
    pub xruns: u64,
    /// Periods that started late.
    pub late: u64,
}

impl StreamStats {
    /// The position interpolated to `now_ns` (`CLOCK_MONOTONIC`):
    /// `position + (now_ns - clock_ns) * rate / 1e9`, or `position` when
    /// `now_ns` is not later. This is how a client reads the audio clock
    /// without asking the server.
    pub fn position_at(&self, now_ns: u64) -> u64 {
        interpolate(self.position, self.clock_ns, self.rate, now_ns)
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of `clock_ns` and
/// `published_ns` (writers stamp with it, readers interpolate to it).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// `position + (now_ns - clock_ns) * rate / 1e9`, saturating.
pub(crate) fn interpolate(position: u64, clock_ns: u64, rate: u32, now_ns: u64) -> u64 {
    let elapsed = u128::from(now_ns.saturating_sub(clock_ns));
    let frames = elapsed * u128::from(rate) / 1_000_000_000;
    position.saturating_add(u64::try_from(frames).unwrap_or(u64::MAX))
}

/// One DSP peer's processing figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DspStats {
    /// Its process id.
    pub pid: u32,
    /// Periods it processed.
    pub periods: u64,
    /// Mean processing time per period, nanoseconds.
    pub mean_ns: u32,
    /// Worst processing time per period, nanoseconds.
    pub worst_ns: u32,
    /// Periods it answered after the deadline.
    pub deadline_misses: u64,
    /// Times it was restarted.
    pub restarts: u32,
    /// Peak meters, one per channel in `peaks[..channels]`: the largest
    /// absolute sample value of the last period, linear (1.0 is full
    /// scale), finite and not negative (a reader refuses anything else).
    /// Unused slots are ignored.
    pub peaks: [f32; MAX_CHANNELS],
    /// Channels in `peaks` (at most [`MAX_CHANNELS`]: a reader refuses
    /// more).
    pub channels: u8,
}

impl DspStats {
    /// The peak meters in use: `peaks[..channels]` (capped at
    /// [`MAX_CHANNELS`]).
    pub fn peaks(&self) -> &[f32] {
        &self.peaks[..usize::from(self.channels).min(MAX_CHANNELS)]
    }

    /// Sets `peaks` and `channels` from a slice of at most
    /// [`MAX_CHANNELS`] meters.
    pub fn set_peaks(&mut self, peaks: &[f32]) -> Result<(), CapacityError> {
        if peaks.len() > MAX_CHANNELS {
            return Err(CapacityError {
                table: Table::Dsps,
                max: MAX_CHANNELS,
            });
        }
        self.peaks = [0.0; MAX_CHANNELS];
        self.peaks[..peaks.len()].copy_from_slice(peaks);
        self.channels = peaks.len() as u8;
        Ok(())
    }
}

/// Everything one state page says, as a private copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `CLOCK_MONOTONIC` in nanoseconds when the server published it.
    pub published_ns: u64,
    sequence: u32,
    sinks: [StreamStats; MAX_SINKS],
    sources: [StreamStats; MAX_SOURCES],
    dsps: [DspStats; MAX_DSPS],
    n_sinks: u8,
    n_sources: u8,
    n_dsps: u8,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::new()
    }
}

impl Snapshot {
    /// An empty snapshot.
    pub const fn new() -> Self {
        const S: StreamStats = StreamStats {
            index: 0,
            name: Name {
                bytes: [0; NAME_LEN],
                len: 0,
            },
            state: StreamState::Idle,
            rate: 0,
            channels: 0,
            latency_us: 0,
            position: 0,
            clock_ns: 0,
            periods: 0,
            xruns: 0,
            late: 0,
        };
        const D: DspStats = DspStats {
            pid: 0,
            periods: 0,
            mean_ns: 0,
            worst_ns: 0,
            deadline_misses: 0,
            restarts: 0,
            peaks: [0.0; MAX_CHANNELS],
            channels: 0,
        };
        Self {
            published_ns: 0,
            sequence: 0,
            sinks: [S; MAX_SINKS],
            sources: [S; MAX_SOURCES],
            dsps: [D; MAX_DSPS],
            n_sinks: 0,
            n_sources: 0,
            n_dsps: 0,
        }
    }

    /// The seqlock sequence this copy was read at (even; grows with every
    /// publication). 0 in a snapshot that was not read from a page.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    pub(crate) fn set_sequence(&mut self, seq: u32) {
        self.sequence = seq;
    }

    /// The sinks.
    pub fn sinks(&self) -> &[StreamStats] {
        &self.sinks[..usize::from(self.n_sinks)]
    }

    /// The sources.
    pub fn sources(&self) -> &[StreamStats] {
        &self.sources[..usize::from(self.n_sources)]
    }

    /// The DSPs.
    pub fn dsps(&self) -> &[DspStats] {
        &self.dsps[..usize::from(self.n_dsps)]
    }

    /// The sinks, to update in place.
    pub fn sinks_mut(&mut self) -> &mut [StreamStats] {
        &mut self.sinks[..usize::from(self.n_sinks)]
    }

    /// The sources, to update in place.
    pub fn sources_mut(&mut self) -> &mut [StreamStats] {
        &mut self.sources[..usize::from(self.n_sources)]
    }

    /// The DSPs, to update in place.
    pub fn dsps_mut(&mut self) -> &mut [DspStats] {
        &mut self.dsps[..usize::from(self.n_dsps)]
    }

    /// Adds a sink.
    pub fn push_sink(&mut self, s: StreamStats) -> Result<(), CapacityError> {
        push(&mut self.sinks, &mut self.n_sinks, s, Table::Sinks)
    }

    /// Adds a source.
    pub fn push_source(&mut self, s: StreamStats) -> Result<(), CapacityError> {
        push(&mut self.sources, &mut self.n_sources, s, Table::Sources)
    }

    /// Adds a DSP.
    pub fn push_dsp(&mut self, d: DspStats) -> Result<(), CapacityError> {
        push(&mut self.dsps, &mut self.n_dsps, d, Table::Dsps)
    }

    /// Removes every sink, source and DSP.
    pub fn clear(&mut self) {
        *self = Self {
            published_ns: self.published_ns,
            ..Self::new()
        };
    }

    /// All slots of each table and the used counts (for encoding).
    pub(crate) fn raw(
        &self,
    ) -> (
        &[StreamStats; MAX_SINKS],
        &[StreamStats; MAX_SOURCES],
        &[DspStats; MAX_DSPS],
        [u8; 3],
    ) {
        (
            &self.sinks,
            &self.sources,
            &self.dsps,
            [self.n_sinks, self.n_sources, self.n_dsps],
        )
    }
}

fn push<T, const N: usize>(
    slots: &mut [T; N],
    n: &mut u8,
    v: T,
    table: Table,
) -> Result<(), CapacityError> {
    let i = usize::from(*n);
    if i >= N {
        return Err(CapacityError { table, max: N });
    }
    slots[i] = v;
    *n += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_at_a_char_boundary_and_parsed_strictly() {
        assert_eq!(Name::new("sink").as_str(), "sink");
        let long = "é".repeat(20); // 40 bytes
        assert_eq!(Name::new(&long).as_str(), "é".repeat(16));
        assert_eq!(Name::new("a\0b").as_str(), "a");
        let mut b = [0u8; NAME_LEN];
        b[..3].copy_from_slice(b"abc");
        assert_eq!(Name::from_padded(&b).unwrap().as_str(), "abc");
        b[5] = b'x'; // garbage after the NUL
        assert_eq!(Name::from_padded(&b), None);
        let mut b = [0u8; NAME_LEN];
        b[0] = 0xff; // not UTF-8
        assert_eq!(Name::from_padded(&b), None);
        assert_eq!(
            Name::from_padded(&[b'a'; NAME_LEN]).unwrap().as_str().len(),
            32
        );
    }

    #[test]
    fn tables_fill_up_to_their_capacity() {
        let mut s = Snapshot::new();
        for i in 0..MAX_DSPS {
            s.push_dsp(DspStats {
                pid: i as u32,
                ..DspStats::default()
            })
            .unwrap();
        }
        assert_eq!(
            s.push_dsp(DspStats::default()),
            Err(CapacityError {
                table: Table::Dsps,
                max: MAX_DSPS
            })
        );
        assert_eq!(s.dsps().len(), MAX_DSPS);
        s.clear();
        assert!(s.dsps().is_empty());
    }

    #[test]
    fn the_clock_interpolates_and_never_runs_backwards() {
        let st = StreamStats {
            position: 1000,
            clock_ns: 5_000_000_000,
            rate: 48_000,
            ..StreamStats::default()
        };
        assert_eq!(st.position_at(5_500_000_000), 1000 + 24_000);
        assert_eq!(st.position_at(4_000_000_000), 1000);
        assert_eq!(interpolate(u64::MAX - 1, 0, 48_000, u64::MAX), u64::MAX);
    }

    #[test]
    fn peaks_are_bounded() {
        let mut d = DspStats::default();
        d.set_peaks(&[0.5, 0.25]).unwrap();
        assert_eq!(d.peaks(), &[0.5, 0.25]);
        assert!(d.set_peaks(&[0.0; MAX_CHANNELS + 1]).is_err());
    }
}
