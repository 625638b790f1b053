//! The tagstruct codec: the typed, tagged values that make up every packet
//! payload of the PulseAudio native protocol (doc §2).
//!
//! Each value is a one-byte ASCII tag followed by its bytes; multi-byte
//! integers are big-endian; there is no padding and no alignment.
//!
//! - [`TagWriter`] appends values to a `Vec<u8>`. Its methods cannot fail:
//!   the typed values ([`ChannelMap`], [`CVolume`], [`Proplist`]) are checked
//!   when they are built.
//! - [`TagReader`] reads values from a borrowed byte slice. Every getter
//!   returns a [`TagError`] instead of panicking: tags are compared, every
//!   length from the wire is checked against what remains and against a
//!   maximum, and [`TagReader::finish`] rejects trailing bytes.
//!
//! Getters check structure only (what PulseAudio's own reader checks: tags,
//! lengths, at most [`CHANNELS_MAX`] channels, proplist keys and value
//! sizes). Semantic validity — a sample format that exists, channel
//! positions, volumes in range — is a separate step ([`SampleSpec::check`],
//! [`ChannelMap::check`], [`CVolume::check`], [`FormatInfo::check`]) so that
//! the caller can choose between an `ERROR` reply and closing the connection.

use std::fmt;

pub use crate::sample::SampleFormat;

/// The one-byte tags of §2.
pub mod tag {
    /// `t`: a NUL-terminated UTF-8 string.
    pub const STRING: u8 = b't';
    /// `N`: a NULL string (no bytes follow).
    pub const STRING_NULL: u8 = b'N';
    /// `L`: a u32.
    pub const U32: u8 = b'L';
    /// `B`: a u8.
    pub const U8: u8 = b'B';
    /// `R`: a u64.
    pub const U64: u8 = b'R';
    /// `r`: an s64.
    pub const S64: u8 = b'r';
    /// `a`: a sample spec (u8 format, u8 channels, u32 rate).
    pub const SAMPLE_SPEC: u8 = b'a';
    /// `x`: arbitrary bytes (u32 length, then the bytes).
    pub const ARBITRARY: u8 = b'x';
    /// `1`: boolean true.
    pub const BOOLEAN_TRUE: u8 = b'1';
    /// `0`: boolean false.
    pub const BOOLEAN_FALSE: u8 = b'0';
    /// `T`: a timeval (u32 seconds, u32 microseconds).
    pub const TIMEVAL: u8 = b'T';
    /// `U`: a usec value (u64 microseconds).
    pub const USEC: u8 = b'U';
    /// `m`: a channel map (u8 n, n positions).
    pub const CHANNEL_MAP: u8 = b'm';
    /// `v`: a cvolume (u8 n, n × u32).
    pub const CVOLUME: u8 = b'v';
    /// `P`: a proplist (entries, then `N`).
    pub const PROPLIST: u8 = b'P';
    /// `V`: a volume (u32).
    pub const VOLUME: u8 = b'V';
    /// `f`: a format info (`B` encoding, then a `P` proplist).
    pub const FORMAT_INFO: u8 = b'f';
}

/// The most channels a sample spec, channel map or cvolume may have
/// (PulseAudio's `PA_CHANNELS_MAX`).
pub const CHANNELS_MAX: u8 = 32;
/// The largest proplist value in bytes (PulseAudio's `MAX_TAG_SIZE`, 64 KiB).
pub const MAX_TAG_SIZE: usize = 64 * 1024;
/// The most entries a proplist read from the wire may have (our bound;
/// libpulse clients send fewer than 20).
pub const PROPLIST_MAX_ENTRIES: usize = 1024;
/// Number of sample formats (`PA_SAMPLE_MAX`): valid formats are below it.
pub const SAMPLE_FORMAT_MAX: u8 = 13;
/// The highest valid sample rate (`PA_RATE_MAX`).
pub const RATE_MAX: u32 = 384_000;
/// Number of channel positions (`PA_CHANNEL_POSITION_MAX`): valid positions
/// are below it.
pub const CHANNEL_POSITION_MAX: u8 = 51;
/// The highest valid volume (`PA_VOLUME_MAX`).
pub const VOLUME_MAX: u32 = 0x7FFF_FFFF;
/// 100 % volume (`PA_VOLUME_NORM`).
pub const VOLUME_NORM: u32 = 0x1_0000;
/// Number of format-info encodings (`PA_ENCODING_MAX`): valid encodings
/// are below it.
pub const ENCODING_MAX: u8 = 9;

/// Why a tagstruct could not be read, or a value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Fewer bytes remain than the value needs.
    #[error("truncated {what}: need {need} bytes, {have} remain")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes remaining.
        have: usize,
    },
    /// The tag byte is not the one the value type takes.
    #[error("expected a {expected} tag, found {found:#04x}")]
    WrongTag {
        /// The value type expected.
        expected: &'static str,
        /// The tag byte found.
        found: u8,
    },
    /// A string has no terminating NUL or is not UTF-8.
    #[error("bad string: {reason}")]
    BadString {
        /// What is wrong.
        reason: &'static str,
    },
    /// A non-NULL string was required but `N` was found.
    #[error("{what} must not be NULL")]
    UnexpectedNull {
        /// The field that must be a string.
        what: &'static str,
    },
    /// A length or count is above its maximum.
    #[error("{what} of {len} is above the maximum {max}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// The length or count found.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// An arbitrary value whose length is not the exact length expected.
    #[error("arbitrary value of {found} bytes, expected exactly {expected}")]
    ArbitraryLength {
        /// The length the reader requires.
        expected: usize,
        /// The length on the wire.
        found: usize,
    },
    /// A sample spec that is not valid.
    #[error("bad sample spec (format {format}, {channels} channels, {rate} Hz): {reason}")]
    BadSampleSpec {
        /// The sample format.
        format: u8,
        /// The channel count.
        channels: u8,
        /// The rate.
        rate: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A channel map that is not valid.
    #[error("bad channel map of {channels} channels: {reason}")]
    BadChannelMap {
        /// The channel count.
        channels: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A cvolume that is not valid.
    #[error("bad cvolume of {channels} channels: {reason}")]
    BadCVolume {
        /// The channel count.
        channels: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A proplist entry that is not valid.
    #[error("bad proplist: {reason}")]
    BadProplist {
        /// What is wrong.
        reason: &'static str,
    },
    /// A format info whose encoding is unknown.
    #[error("bad format info: encoding {encoding} is not below {max}", max = ENCODING_MAX)]
    BadFormatInfo {
        /// The encoding found.
        encoding: u8,
    },
    /// Bytes remain after the last expected value.
    #[error("{remaining} trailing bytes after the last field")]
    TrailingData {
        /// Bytes left unread.
        remaining: usize,
    },
}

/// A sample spec as carried on the wire (`a`). Not checked; see
/// [`SampleSpec::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleSpec {
    /// The sample format (any byte decodes; see [`SampleFormat`]).
    pub format: SampleFormat,
    /// The channel count.
    pub channels: u8,
    /// The sample rate in Hz.
    pub rate: u32,
}

impl SampleSpec {
    /// Checks it as libpulse does: format below [`SAMPLE_FORMAT_MAX`],
    /// 1 ≤ channels ≤ [`CHANNELS_MAX`], 0 < rate ≤ [`RATE_MAX`].
    pub fn check(&self) -> Result<(), TagError> {
        let reason = if !self.format.is_known() {
            "unknown sample format"
        } else if self.channels == 0 || self.channels > CHANNELS_MAX {
            "channel count not in 1..=32"
        } else if self.rate == 0 || self.rate > RATE_MAX {
            "rate not in 1..=384000"
        } else {
            return Ok(());
        };
        Err(TagError::BadSampleSpec {
            format: self.format.to_wire(),
            channels: self.channels,
            rate: self.rate,
            reason,
        })
    }

    /// Bytes per sample of the format, or `None` for an unknown format.
    pub fn sample_size(&self) -> Option<usize> {
        self.format.sample_size()
    }

    /// Bytes per frame (sample size × channels), or `None` for an unknown
    /// format.
    pub fn frame_size(&self) -> Option<usize> {
        self.sample_size().map(|s| s * usize::from(self.channels))
    }
}

/// A channel map (`m`): at most [`CHANNELS_MAX`] channel positions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ChannelMap {
    positions: Vec<u8>,
}

impl ChannelMap {
    /// A map of these positions; fails with [`TagError::BadChannelMap`]
    /// for more than [`CHANNELS_MAX`] channels.
    pub fn new(positions: &[u8]) -> Result<Self, TagError> {
        if positions.len() > usize::from(CHANNELS_MAX) {
            return Err(TagError::BadChannelMap {
                channels: positions.len(),
                reason: "more than 32 channels",
            });
        }
        Ok(ChannelMap {
            positions: positions.to_vec(),
        })
    }

    /// The channel positions.
    pub fn positions(&self) -> &[u8] {
        &self.positions
    }

    /// The channel count.
    pub fn channels(&self) -> u8 {
        // At most 32 by construction.
        self.positions.len() as u8
    }

    /// Checks it as libpulse does: at least one channel, every position
    /// below [`CHANNEL_POSITION_MAX`].
    pub fn check(&self) -> Result<(), TagError> {
        let reason = if self.positions.is_empty() {
            "no channels"
        } else if self.positions.iter().any(|&p| p >= CHANNEL_POSITION_MAX) {
            "unknown channel position"
        } else {
            return Ok(());
        };
        Err(TagError::BadChannelMap {
            channels: self.positions.len(),
            reason,
        })
    }
}

/// A per-channel volume (`v`): at most [`CHANNELS_MAX`] volumes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CVolume {
    values: Vec<u32>,
}

impl CVolume {
    /// A cvolume of these values; fails with [`TagError::BadCVolume`] for
    /// more than [`CHANNELS_MAX`] channels.
    pub fn new(values: &[u32]) -> Result<Self, TagError> {
        if values.len() > usize::from(CHANNELS_MAX) {
            return Err(TagError::BadCVolume {
                channels: values.len(),
                reason: "more than 32 channels",
            });
        }
        Ok(CVolume {
            values: values.to_vec(),
        })
    }

    /// The volumes, one per channel.
    pub fn values(&self) -> &[u32] {
        &self.values
    }

    /// The channel count.
    pub fn channels(&self) -> u8 {
        // At most 32 by construction.
        self.values.len() as u8
    }

    /// Checks it as libpulse does: at least one channel, every value at
    /// most [`VOLUME_MAX`].
    pub fn check(&self) -> Result<(), TagError> {
        let reason = if self.values.is_empty() {
            "no channels"
        } else if self.values.iter().any(|&v| v > VOLUME_MAX) {
            "volume above PA_VOLUME_MAX"
        } else {
            return Ok(());
        };
        Err(TagError::BadCVolume {
            channels: self.values.len(),
            reason,
        })
    }
}

/// A property list (`P`): ordered `(key, value)` entries with unique,
/// non-empty ASCII keys and values of at most [`MAX_TAG_SIZE`] bytes.
///
/// String values carry their trailing NUL (§2); [`Proplist::set_str`] and
/// [`Proplist::get_str`] handle it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Proplist {
    entries: Vec<(String, Vec<u8>)>,
}

impl Proplist {
    /// An empty proplist.
    pub fn new() -> Self {
        Proplist::default()
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(String, Vec<u8>)] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is a valid key: non-empty ASCII.
    pub fn key_valid(key: &str) -> bool {
        !key.is_empty() && key.is_ascii()
    }

    /// Sets `key` to the raw `value`, replacing an existing entry in place
    /// (as PulseAudio does) or appending a new one.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), TagError> {
        if !Self::key_valid(key) {
            return Err(TagError::BadProplist {
                reason: "key is empty or not ASCII",
            });
        }
        if value.len() > MAX_TAG_SIZE {
            return Err(TagError::TooLong {
                what: "property value",
                len: value.len(),
                max: MAX_TAG_SIZE,
            });
        }
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_vec(),
            None => self.entries.push((key.to_owned(), value.to_vec())),
        }
        Ok(())
    }

    /// Sets `key` to the string `value` stored with its trailing NUL. A
    /// `value` with an embedded NUL is rejected.
    pub fn set_str(&mut self, key: &str, value: &str) -> Result<(), TagError> {
        if value.contains('\0') {
            return Err(TagError::BadProplist {
                reason: "string value with an embedded NUL",
            });
        }
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.set(key, &bytes)
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `key` as a string: `None` unless it ends with its only
    /// NUL and is UTF-8 (as `pa_proplist_gets`).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        let (last, body) = self.get(key)?.split_last()?;
        if *last != 0 || body.contains(&0) {
            return None;
        }
        std::str::from_utf8(body).ok()
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != key);
        before != self.entries.len()
    }
}

/// A format info (`f`): an encoding and a proplist of format properties.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FormatInfo {
    /// The encoding (ANY=0, PCM=1, … DTSHD=8).
    pub encoding: u8,
    /// The format properties (`format.sample_format`, `format.rate`, …).
    pub props: Proplist,
}

impl FormatInfo {
    /// Checks it as libpulse does: encoding below [`ENCODING_MAX`].
    pub fn check(&self) -> Result<(), TagError> {
        if self.encoding >= ENCODING_MAX {
            return Err(TagError::BadFormatInfo {
                encoding: self.encoding,
            });
        }
        Ok(())
    }
}

/// A timeval (`T`): seconds and microseconds, each a u32 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timeval {
    /// Seconds.
    pub sec: u32,
    /// Microseconds.
    pub usec: u32,
}

/// One tagged value of any type, for generic decoding (logging, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `t` or `N`.
    String(Option<String>),
    /// `L`.
    U32(u32),
    /// `B`.
    U8(u8),
    /// `R`.
    U64(u64),
    /// `r`.
    S64(i64),
    /// `a`.
    SampleSpec(SampleSpec),
    /// `x`.
    Arbitrary(Vec<u8>),
    /// `1` or `0`.
    Bool(bool),
    /// `T`.
    Timeval(Timeval),
    /// `U`.
    Usec(u64),
    /// `m`.
    ChannelMap(ChannelMap),
    /// `v`.
    CVolume(CVolume),
    /// `P`.
    Proplist(Proplist),
    /// `V`.
    Volume(u32),
    /// `f`.
    FormatInfo(FormatInfo),
}

/// Builds a tagstruct into a `Vec<u8>`.
#[derive(Debug, Clone, Default)]
pub struct TagWriter {
    buf: Vec<u8>,
}

impl TagWriter {
    /// An empty writer.
    pub fn new() -> Self {
        TagWriter::default()
    }

    /// A writer that starts a packet: `L command`, `L tag`.
    pub fn command(command: u32, tag: u32) -> Self {
        let mut w = TagWriter::new();
        w.put_u32(command).put_u32(tag);
        w
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The finished bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Appends a `u32` tagged `L`.
    pub fn put_u32(&mut self, v: u32) -> &mut Self {
        self.buf.push(tag::U32);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `u8` tagged `B`.
    pub fn put_u8(&mut self, v: u8) -> &mut Self {
        self.buf.extend_from_slice(&[tag::U8, v]);
        self
    }

    /// Appends a `u64` tagged `R`.
    pub fn put_u64(&mut self, v: u64) -> &mut Self {
        self.buf.push(tag::U64);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends an `i64` tagged `r`.
    pub fn put_s64(&mut self, v: i64) -> &mut Self {
        self.buf.push(tag::S64);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a microsecond count tagged `U`.
    pub fn put_usec(&mut self, v: u64) -> &mut Self {
        self.buf.push(tag::USEC);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a boolean (`1` or `0`).
    pub fn put_bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(if v {
            tag::BOOLEAN_TRUE
        } else {
            tag::BOOLEAN_FALSE
        });
        self
    }

    /// Appends a string (`t` … NUL) or, for `None`, a NULL string (`N`). A
    /// string with an embedded NUL is written up to that NUL, as a C
    /// string would be.
    pub fn put_string(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.buf.push(tag::STRING_NULL),
            Some(s) => {
                let bytes = s.as_bytes();
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                self.buf.push(tag::STRING);
                self.buf.extend_from_slice(&bytes[..end]);
                self.buf.push(0);
            }
        }
        self
    }

    /// Appends arbitrary bytes tagged `x` with a u32 length.
    ///
    /// # Panics
    /// If `data` is 4 GiB or longer, which no frame can carry.
    pub fn put_arbitrary(&mut self, data: &[u8]) -> &mut Self {
        let len = u32::try_from(data.len()).expect("arbitrary value of 4 GiB or more");
        self.buf.push(tag::ARBITRARY);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(data);
        self
    }

    /// Appends a sample spec tagged `a`.
    pub fn put_sample_spec(&mut self, ss: &SampleSpec) -> &mut Self {
        self.buf
            .extend_from_slice(&[tag::SAMPLE_SPEC, ss.format.to_wire(), ss.channels]);
        self.buf.extend_from_slice(&ss.rate.to_be_bytes());
        self
    }

    /// Appends a channel map tagged `m`.
    pub fn put_channel_map(&mut self, map: &ChannelMap) -> &mut Self {
        self.buf
            .extend_from_slice(&[tag::CHANNEL_MAP, map.channels()]);
        self.buf.extend_from_slice(map.positions());
        self
    }

    /// Appends a cvolume tagged `v`.
    pub fn put_cvolume(&mut self, cv: &CVolume) -> &mut Self {
        self.buf.extend_from_slice(&[tag::CVOLUME, cv.channels()]);
        for v in cv.values() {
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
        self
    }

    /// Appends a volume tagged `V`.
    pub fn put_volume(&mut self, v: u32) -> &mut Self {
        self.buf.push(tag::VOLUME);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a timeval tagged `T`.
    pub fn put_timeval(&mut self, tv: Timeval) -> &mut Self {
        self.buf.push(tag::TIMEVAL);
        self.buf.extend_from_slice(&tv.sec.to_be_bytes());
        self.buf.extend_from_slice(&tv.usec.to_be_bytes());
        self
    }

    /// Appends a proplist: `P`, then per entry `t key`, `L len`, `x len
    /// bytes`, then `N`.
    pub fn put_proplist(&mut self, p: &Proplist) -> &mut Self {
        self.buf.push(tag::PROPLIST);
        for (k, v) in p.entries() {
            // Values are at most MAX_TAG_SIZE by construction.
            self.put_string(Some(k))
                .put_u32(v.len() as u32)
                .put_arbitrary(v);
        }
        self.buf.push(tag::STRING_NULL);
        self
    }

    /// Appends a format info: `f`, `B encoding`, proplist.
    pub fn put_format_info(&mut self, f: &FormatInfo) -> &mut Self {
        self.buf.push(tag::FORMAT_INFO);
        self.put_u8(f.encoding).put_proplist(&f.props)
    }

    /// Appends any [`Value`].
    pub fn put_value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::String(s) => self.put_string(s.as_deref()),
            Value::U32(x) => self.put_u32(*x),
            Value::U8(x) => self.put_u8(*x),
            Value::U64(x) => self.put_u64(*x),
            Value::S64(x) => self.put_s64(*x),
            Value::SampleSpec(x) => self.put_sample_spec(x),
            Value::Arbitrary(x) => self.put_arbitrary(x),
            Value::Bool(x) => self.put_bool(*x),
            Value::Timeval(x) => self.put_timeval(*x),
            Value::Usec(x) => self.put_usec(*x),
            Value::ChannelMap(x) => self.put_channel_map(x),
            Value::CVolume(x) => self.put_cvolume(x),
            Value::Proplist(x) => self.put_proplist(x),
            Value::Volume(x) => self.put_volume(*x),
            Value::FormatInfo(x) => self.put_format_info(x),
        }
    }
}

/// Reads a tagstruct from a byte slice. Never panics; every getter returns
/// a [`TagError`] on bad input and leaves the position unspecified after
/// an error (the packet should be dropped).
#[derive(Clone)]
pub struct TagReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl fmt::Debug for TagReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagReader")
            .field("len", &self.data.len())
            .field("pos", &self.pos)
            .finish()
    }
}

impl<'a> TagReader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        TagReader { data, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next tag byte, without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Fails with [`TagError::TrailingData`] unless every byte was read.
    pub fn finish(&self) -> Result<(), TagError> {
        match self.remaining() {
            0 => Ok(()),
            remaining => Err(TagError::TrailingData { remaining }),
        }
    }

    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], TagError> {
        let have = self.remaining();
        if n > have {
            return Err(TagError::Truncated {
                what,
                need: n,
                have,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TagError> {
        let s = self.take(what, N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn tag(&mut self, what: &'static str) -> Result<u8, TagError> {
        Ok(self.take(what, 1)?[0])
    }

    fn expect_tag(&mut self, expected: u8, what: &'static str) -> Result<(), TagError> {
        let found = self.tag(what)?;
        if found != expected {
            return Err(TagError::WrongTag {
                expected: what,
                found,
            });
        }
        Ok(())
    }

    fn raw_u32(&mut self, what: &'static str) -> Result<u32, TagError> {
        Ok(u32::from_be_bytes(self.take_array(what)?))
    }

    fn raw_u64(&mut self, what: &'static str) -> Result<u64, TagError> {
        Ok(u64::from_be_bytes(self.take_array(what)?))
    }

    /// Reads a `u32` (`L`).
    pub fn get_u32(&mut self) -> Result<u32, TagError> {
        self.expect_tag(tag::U32, "u32")?;
        self.raw_u32("u32")
    }

    /// Reads a `u8` (`B`).
    pub fn get_u8(&mut self) -> Result<u8, TagError> {
        self.expect_tag(tag::U8, "u8")?;
        Ok(self.take("u8", 1)?[0])
    }

    /// Reads a `u64` (`R`).
    pub fn get_u64(&mut self) -> Result<u64, TagError> {
        self.expect_tag(tag::U64, "u64")?;
        self.raw_u64("u64")
    }

    /// Reads an `i64` (`r`).
    pub fn get_s64(&mut self) -> Result<i64, TagError> {
        self.expect_tag(tag::S64, "s64")?;
        Ok(self.raw_u64("s64")? as i64)
    }

    /// Reads a microsecond count (`U`).
    pub fn get_usec(&mut self) -> Result<u64, TagError> {
        self.expect_tag(tag::USEC, "usec")?;
        self.raw_u64("usec")
    }

    /// Reads a boolean: only `1` and `0` are accepted.
    pub fn get_bool(&mut self) -> Result<bool, TagError> {
        match self.tag("bool")? {
            tag::BOOLEAN_TRUE => Ok(true),
            tag::BOOLEAN_FALSE => Ok(false),
            found => Err(TagError::WrongTag {
                expected: "bool",
                found,
            }),
        }
    }

    /// Reads a string (`t`) or a NULL string (`N`, giving `None`). The
    /// string borrows from the input.
    pub fn get_string(&mut self) -> Result<Option<&'a str>, TagError> {
        match self.tag("string")? {
            tag::STRING_NULL => Ok(None),
            tag::STRING => {
                let rest = &self.data[self.pos..];
                let Some(len) = rest.iter().position(|&b| b == 0) else {
                    return Err(TagError::BadString {
                        reason: "no terminating NUL",
                    });
                };
                let s = std::str::from_utf8(&rest[..len]).map_err(|_| TagError::BadString {
                    reason: "not UTF-8",
                })?;
                self.pos += len + 1;
                Ok(Some(s))
            }
            found => Err(TagError::WrongTag {
                expected: "string",
                found,
            }),
        }
    }

    /// Reads a string that must not be NULL; `what` names the field for
    /// [`TagError::UnexpectedNull`].
    pub fn get_nonnull_string(&mut self, what: &'static str) -> Result<&'a str, TagError> {
        self.get_string()?.ok_or(TagError::UnexpectedNull { what })
    }

    /// Reads arbitrary bytes (`x`) whose length must be exactly `expected`.
    pub fn get_arbitrary(&mut self, expected: usize) -> Result<&'a [u8], TagError> {
        self.expect_tag(tag::ARBITRARY, "arbitrary")?;
        let len = self.raw_u32("arbitrary length")? as usize;
        if len != expected {
            return Err(TagError::ArbitraryLength {
                expected,
                found: len,
            });
        }
        self.take("arbitrary", len)
    }

    /// Reads arbitrary bytes (`x`) of any length up to `max`.
    pub fn get_arbitrary_max(&mut self, max: usize) -> Result<&'a [u8], TagError> {
        self.expect_tag(tag::ARBITRARY, "arbitrary")?;
        let len = self.raw_u32("arbitrary length")? as usize;
        if len > max {
            return Err(TagError::TooLong {
                what: "arbitrary value",
                len,
                max,
            });
        }
        self.take("arbitrary", len)
    }

    /// Reads a sample spec (`a`), unchecked (see [`SampleSpec::check`]).
    pub fn get_sample_spec(&mut self) -> Result<SampleSpec, TagError> {
        self.expect_tag(tag::SAMPLE_SPEC, "sample spec")?;
        let [format, channels] = self.take_array("sample spec")?;
        let rate = self.raw_u32("sample spec")?;
        Ok(SampleSpec {
            format: SampleFormat::from_wire(format),
            channels,
            rate,
        })
    }

    /// Reads a channel map (`m`); more than [`CHANNELS_MAX`] channels is
    /// [`TagError::BadChannelMap`]. Positions are unchecked (see
    /// [`ChannelMap::check`]).
    pub fn get_channel_map(&mut self) -> Result<ChannelMap, TagError> {
        self.expect_tag(tag::CHANNEL_MAP, "channel map")?;
        let n = self.take("channel map", 1)?[0];
        if n > CHANNELS_MAX {
            return Err(TagError::BadChannelMap {
                channels: usize::from(n),
                reason: "more than 32 channels",
            });
        }
        let positions = self.take("channel map", usize::from(n))?;
        Ok(ChannelMap {
            positions: positions.to_vec(),
        })
    }

    /// Reads a cvolume (`v`); more than [`CHANNELS_MAX`] channels is
    /// [`TagError::BadCVolume`]. Values are unchecked (see
    /// [`CVolume::check`]).
    pub fn get_cvolume(&mut self) -> Result<CVolume, TagError> {
        self.expect_tag(tag::CVOLUME, "cvolume")?;
        let n = self.take("cvolume", 1)?[0];
        if n > CHANNELS_MAX {
            return Err(TagError::BadCVolume {
                channels: usize::from(n),
                reason: "more than 32 channels",
            });
        }
        let bytes = self.take("cvolume", usize::from(n) * 4)?;
        let values = bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(CVolume { values })
    }

    /// Reads a volume (`V`).
    pub fn get_volume(&mut self) -> Result<u32, TagError> {
        self.expect_tag(tag::VOLUME, "volume")?;
        self.raw_u32("volume")
    }

    /// Reads a timeval (`T`).
    pub fn get_timeval(&mut self) -> Result<Timeval, TagError> {
        self.expect_tag(tag::TIMEVAL, "timeval")?;
        let sec = self.raw_u32("timeval")?;
        let usec = self.raw_u32("timeval")?;
        Ok(Timeval { sec, usec })
    }

    /// Reads a proplist (`P`): keys must be non-empty ASCII and unique
    /// (a repeated key replaces the earlier value, as in PulseAudio), the
    /// two lengths of each value must agree, values are at most
    /// [`MAX_TAG_SIZE`] bytes and there are at most
    /// [`PROPLIST_MAX_ENTRIES`] entries.
    pub fn get_proplist(&mut self) -> Result<Proplist, TagError> {
        self.expect_tag(tag::PROPLIST, "proplist")?;
        let mut p = Proplist::new();
        let mut count = 0usize;
        while let Some(key) = self.get_string()? {
            count += 1;
            if count > PROPLIST_MAX_ENTRIES {
                return Err(TagError::TooLong {
                    what: "proplist entries",
                    len: count,
                    max: PROPLIST_MAX_ENTRIES,
                });
            }
            if !Proplist::key_valid(key) {
                return Err(TagError::BadProplist {
                    reason: "key is empty or not ASCII",
                });
            }
            let len = self.get_u32()? as usize;
            if len > MAX_TAG_SIZE {
                return Err(TagError::TooLong {
                    what: "property value",
                    len,
                    max: MAX_TAG_SIZE,
                });
            }
            let value = self.get_arbitrary(len).map_err(|e| match e {
                TagError::ArbitraryLength { .. } => TagError::BadProplist {
                    reason: "value length and arbitrary length differ",
                },
                e => e,
            })?;
            p.set(key, value)?;
        }
        Ok(p)
    }

    /// Reads a format info (`f`, `B encoding`, proplist). The encoding is
    /// unchecked (see [`FormatInfo::check`]).
    pub fn get_format_info(&mut self) -> Result<FormatInfo, TagError> {
        self.expect_tag(tag::FORMAT_INFO, "format info")?;
        let encoding = self.get_u8()?;
        let props = self.get_proplist()?;
        Ok(FormatInfo { encoding, props })
    }

    /// Reads the next value whatever its type. An arbitrary value may be
    /// at most [`MAX_TAG_SIZE`] bytes here.
    pub fn get_value(&mut self) -> Result<Value, TagError> {
        let Some(t) = self.peek_tag() else {
            return Err(TagError::Truncated {
                what: "tag",
                need: 1,
                have: 0,
            });
        };
        Ok(match t {
            tag::STRING | tag::STRING_NULL => Value::String(self.get_string()?.map(str::to_owned)),
            tag::U32 => Value::U32(self.get_u32()?),
            tag::U8 => Value::U8(self.get_u8()?),
            tag::U64 => Value::U64(self.get_u64()?),
            tag::S64 => Value::S64(self.get_s64()?),
            tag::SAMPLE_SPEC => Value::SampleSpec(self.get_sample_spec()?),
            tag::ARBITRARY => Value::Arbitrary(self.get_arbitrary_max(MAX_TAG_SIZE)?.to_vec()),
            tag::BOOLEAN_TRUE | tag::BOOLEAN_FALSE => Value::Bool(self.get_bool()?),
            tag::TIMEVAL => Value::Timeval(self.get_timeval()?),
            tag::USEC => Value::Usec(self.get_usec()?),
            tag::CHANNEL_MAP => Value::ChannelMap(self.get_channel_map()?),
            tag::CVOLUME => Value::CVolume(self.get_cvolume()?),
            tag::PROPLIST => Value::Proplist(self.get_proplist()?),
            tag::VOLUME => Value::Volume(self.get_volume()?),
            tag::FORMAT_INFO => Value::FormatInfo(self.get_format_info()?),
            found => {
                return Err(TagError::WrongTag {
                    expected: "any tag",
                    found,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use proptest::prelude::*;

    fn reader_err<T: fmt::Debug>(r: Result<T, TagError>) -> TagError {
        r.expect_err("expected an error")
    }

    // ---- Appendix A and §1.4/§1.6 vectors ----

    #[test]
    fn auth_reply_vector() {
        let bytes = hex("4c 00000002 4c 00000000 4c c0000023");
        let mut r = TagReader::new(&bytes);
        assert_eq!(r.get_u32(), Ok(2)); // REPLY
        assert_eq!(r.get_u32(), Ok(0)); // tag
        assert_eq!(r.get_u32(), Ok(0xC000_0023)); // 35 | SHM | memfd
        r.finish().unwrap();
        let mut w = TagWriter::command(2, 0);
        w.put_u32(0xC000_0023);
        assert_eq!(w.into_bytes(), bytes);
    }

    #[test]
    fn request_vector() {
        let bytes = hex("4c 0000003d 4c ffffffff 4c 00000000 4c 00015888");
        let mut r = TagReader::new(&bytes);
        assert_eq!(r.get_u32(), Ok(61)); // REQUEST
        assert_eq!(r.get_u32(), Ok(u32::MAX));
        assert_eq!(r.get_u32(), Ok(0));
        assert_eq!(r.get_u32(), Ok(88200));
        r.finish().unwrap();
        let mut w = TagWriter::command(61, u32::MAX);
        w.put_u32(0).put_u32(88200);
        assert_eq!(w.into_bytes(), bytes);
    }

    #[test]
    fn underflow_vector() {
        let bytes = hex("4c 0000003f 4c ffffffff 4c 00000000 72 0000000000015888");
        let mut r = TagReader::new(&bytes);
        assert_eq!(r.get_u32(), Ok(63)); // UNDERFLOW
        assert_eq!(r.get_u32(), Ok(u32::MAX));
        assert_eq!(r.get_u32(), Ok(0));
        assert_eq!(r.get_s64(), Ok(88200));
        r.finish().unwrap();
        let mut w = TagWriter::command(63, u32::MAX);
        w.put_u32(0).put_s64(88200);
        assert_eq!(w.into_bytes(), bytes);
    }

    /// AUTH request as §1.4 describes it (command 8, tag 0, version and
    /// flags, a 256-byte cookie).
    #[test]
    fn auth_request() {
        let cookie: Vec<u8> = (0..=255u8).collect();
        let mut bytes = hex("4c 00000008 4c 00000000 4c c0000023 78 00000100");
        bytes.extend_from_slice(&cookie);
        let mut r = TagReader::new(&bytes);
        assert_eq!(r.get_u32(), Ok(8));
        assert_eq!(r.get_u32(), Ok(0));
        assert_eq!(r.get_u32(), Ok(0xC000_0023));
        let mut r2 = r.clone();
        assert_eq!(r.get_arbitrary(256), Ok(&cookie[..]));
        r.finish().unwrap();
        assert_eq!(
            r2.get_arbitrary(255),
            Err(TagError::ArbitraryLength {
                expected: 255,
                found: 256
            })
        );
        let mut w = TagWriter::command(8, 0);
        w.put_u32(0xC000_0023).put_arbitrary(&cookie);
        assert_eq!(w.into_bytes(), bytes);
    }

    /// SET_CLIENT_NAME as §1.6 describes it: a proplist of string values.
    #[test]
    fn set_client_name() {
        let bytes = hex("4c 00000009 4c 00000001 50
             74 \"application.name\"00 4c 00000006 78 00000006 \"pactl\"00
             74 \"application.process.id\"00 4c 00000005 78 00000005 \"4242\"00
             4e");
        let mut r = TagReader::new(&bytes);
        assert_eq!(r.get_u32(), Ok(9));
        assert_eq!(r.get_u32(), Ok(1));
        let p = r.get_proplist().unwrap();
        r.finish().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.get_str("application.name"), Some("pactl"));
        assert_eq!(p.get_str("application.process.id"), Some("4242"));
        assert_eq!(p.get("application.name"), Some(&b"pactl\0"[..]));
        let mut q = Proplist::new();
        q.set_str("application.name", "pactl").unwrap();
        q.set_str("application.process.id", "4242").unwrap();
        assert_eq!(p, q);
        let mut w = TagWriter::command(9, 1);
        w.put_proplist(&q);
        assert_eq!(w.into_bytes(), bytes);
    }

    const PACAT_CREATE: &str = "
        4c 00000003 4c 00000002 61 03 02 0000ac44 6d 02 01 02 4c ffffffff 4e 4c ffffffff 30
        4c ffffffff 4c ffffffff 4c ffffffff 4c 00000000 76 02 00010000 00010000
        30 30 30 30 30 30 30 30 30
        50 74 \"application.name\"00 4c 00000006 78 00000006 \"pacat\"00
           74 \"media.name\"00 4c 00000013 78 00000013 \"/data/noise-01.raw\"00 4e
        30 30 30 30 30 30 30 42 00";

    fn s16_stereo() -> (SampleSpec, ChannelMap) {
        (
            SampleSpec {
                format: SampleFormat::S16Le,
                channels: 2,
                rate: 44100,
            },
            ChannelMap::new(&[1, 2]).unwrap(),
        )
    }

    #[test]
    fn pacat_create_playback_stream_vector() {
        let bytes = hex(PACAT_CREATE);
        assert_eq!(bytes.len(), 158);
        let (ss, map) = s16_stereo();
        let mut r = TagReader::new(&bytes);
        assert_eq!(r.get_u32(), Ok(3));
        assert_eq!(r.get_u32(), Ok(2));
        assert_eq!(r.get_sample_spec(), Ok(ss));
        ss.check().unwrap();
        assert_eq!(ss.frame_size(), Some(4));
        assert_eq!(r.get_channel_map(), Ok(map.clone()));
        map.check().unwrap();
        assert_eq!(r.get_u32(), Ok(u32::MAX)); // sink index
        assert_eq!(r.get_string(), Ok(None)); // sink name
        assert_eq!(r.get_u32(), Ok(u32::MAX)); // maxlength
        assert_eq!(r.get_bool(), Ok(false)); // corked
        for _ in 0..3 {
            assert_eq!(r.get_u32(), Ok(u32::MAX)); // tlength, prebuf, minreq
        }
        assert_eq!(r.get_u32(), Ok(0)); // syncid
        let cv = r.get_cvolume().unwrap();
        assert_eq!(cv.values(), &[VOLUME_NORM, VOLUME_NORM]);
        cv.check().unwrap();
        for _ in 0..9 {
            assert_eq!(r.get_bool(), Ok(false));
        }
        let p = r.get_proplist().unwrap();
        assert_eq!(p.get_str("application.name"), Some("pacat"));
        assert_eq!(p.get_str("media.name"), Some("/data/noise-01.raw"));
        for _ in 0..7 {
            assert_eq!(r.get_bool(), Ok(false));
        }
        assert_eq!(r.get_u8(), Ok(0)); // n_formats
        r.finish().unwrap();

        let mut w = TagWriter::command(3, 2);
        w.put_sample_spec(&ss)
            .put_channel_map(&map)
            .put_u32(u32::MAX)
            .put_string(None)
            .put_u32(u32::MAX)
            .put_bool(false)
            .put_u32(u32::MAX)
            .put_u32(u32::MAX)
            .put_u32(u32::MAX)
            .put_u32(0)
            .put_cvolume(&cv);
        for _ in 0..9 {
            w.put_bool(false);
        }
        w.put_proplist(&p);
        for _ in 0..7 {
            w.put_bool(false);
        }
        w.put_u8(0);
        assert_eq!(w.into_bytes(), bytes);
        // Generic decoding sees the same bytes.
        let mut r = TagReader::new(&bytes);
        let mut w = TagWriter::new();
        while !r.is_empty() {
            w.put_value(&r.get_value().unwrap());
        }
        assert_eq!(w.into_bytes(), bytes);
    }

    /// The 239-byte REPLY; the elided props are filled in as the doc's
    /// field list says, and the total length matches the observed one.
    #[test]
    fn pacat_create_playback_reply_vector() {
        let bytes = hex(
            "4c 00000002 4c 00000002 4c 00000000 4c 00000001 4c 00056220 4c 00400000 4c 00056220
             4c 0005545c 4c 00000dc8 61 03 02 0000ac44 6d 02 01 02 4c 00000000 74 \"nullsink\"00 30
             55 00000000001de840 66 42 01 50
             74 \"format.sample_format\"00 4c 00000008 78 00000008 \"\\\"s16le\\\"\"00
             74 \"format.rate\"00 4c 00000006 78 00000006 \"44100\"00
             74 \"format.channels\"00 4c 00000002 78 00000002 \"2\"00
             74 \"format.channel_map\"00 4c 00000019 78 00000019 \"\\\"front-left,front-right\\\"\"00
             4e",
        );
        assert_eq!(bytes.len(), 239);
        let (ss, map) = s16_stereo();
        let mut r = TagReader::new(&bytes);
        let words: Vec<u32> = (0..9).map(|_| r.get_u32().unwrap()).collect();
        assert_eq!(
            words,
            [2, 2, 0, 1, 352_800, 4_194_304, 352_800, 349_276, 3528]
        );
        assert_eq!(r.get_sample_spec(), Ok(ss));
        assert_eq!(r.get_channel_map(), Ok(map.clone()));
        assert_eq!(r.get_u32(), Ok(0));
        assert_eq!(r.get_nonnull_string("sink name"), Ok("nullsink"));
        assert_eq!(r.get_bool(), Ok(false));
        assert_eq!(r.get_usec(), Ok(1_960_000));
        let f = r.get_format_info().unwrap();
        r.finish().unwrap();
        f.check().unwrap();
        assert_eq!(f.encoding, 1);
        assert_eq!(f.props.get_str("format.sample_format"), Some("\"s16le\""));
        assert_eq!(f.props.get_str("format.rate"), Some("44100"));
        assert_eq!(f.props.get_str("format.channels"), Some("2"));
        assert_eq!(
            f.props.get_str("format.channel_map"),
            Some("\"front-left,front-right\"")
        );

        let mut w = TagWriter::command(2, 2);
        for v in &words[2..] {
            w.put_u32(*v);
        }
        w.put_sample_spec(&ss)
            .put_channel_map(&map)
            .put_u32(0)
            .put_string(Some("nullsink"))
            .put_bool(false)
            .put_usec(1_960_000)
            .put_format_info(&f);
        assert_eq!(w.into_bytes(), bytes);
    }

    #[test]
    fn parec_create_record_stream_vector() {
        let mut props = Proplist::new();
        props.set_str("application.name", "parec").unwrap();
        props.set_str("media.name", "/dev/null").unwrap();
        let (ss, map) = s16_stereo();
        let mut w = TagWriter::command(5, 2);
        w.put_sample_spec(&ss)
            .put_channel_map(&map)
            .put_u32(u32::MAX)
            .put_string(None)
            .put_u32(u32::MAX)
            .put_bool(false)
            .put_u32(u32::MAX);
        for _ in 0..9 {
            w.put_bool(false);
        }
        w.put_proplist(&props).put_u32(u32::MAX);
        for _ in 0..3 {
            w.put_bool(false);
        }
        w.put_u8(0)
            .put_cvolume(&CVolume::new(&[VOLUME_NORM; 2]).unwrap());
        for _ in 0..5 {
            w.put_bool(false);
        }
        let mut expected = hex("4c 00000005 4c 00000002 61 03 02 0000ac44
             6d 02 01 02 4c ffffffff 4e 4c ffffffff 30 4c ffffffff
             30 30 30 30 30 30 30 30 30
             50 74 \"application.name\"00 4c 00000006 78 00000006 \"parec\"00
                74 \"media.name\"00 4c 0000000a 78 0000000a \"/dev/null\"00 4e
             4c ffffffff 30 30 30 42 00 76 02 00010000 00010000 30 30 30 30 30");
        assert_eq!(expected.len(), 140);
        assert_eq!(w.as_bytes(), &expected[..]);
        // And it reads back generically.
        let mut r = TagReader::new(&expected);
        let mut w2 = TagWriter::new();
        while !r.is_empty() {
            w2.put_value(&r.get_value().unwrap());
        }
        assert_eq!(w2.into_bytes(), expected);
        expected.push(0x30);
        let mut r = TagReader::new(&expected);
        while r.remaining() > 1 {
            r.get_value().unwrap();
        }
        assert_eq!(r.finish(), Err(TagError::TrailingData { remaining: 1 }));
    }

    /// The null sink record of the 280-byte GET_SINK_INFO reply. Its three
    /// props are elided in the doc; these three make the observed length.
    #[test]
    fn sink_record_vector() {
        let bytes = hex("4c 00000002 4c 00000005
             4c 00000000 74 \"nullsink\"00 74 \"Null Output\"00
             61 03 02 0000ac44 6d 02 01 02 4c 00000000 76 02 00010000 00010000 30 4c 00000000
             74 \"nullsink.monitor\"00 55 00000000000affe5 74 \"module-null-sink.c\"00 4c 000001a2
             50 74 \"device.description\"00 4c 0000000c 78 0000000c \"Null Output\"00
                74 \"device.class\"00 4c 00000009 78 00000009 \"abstract\"00
                74 \"device.icon_name\"00 4c 0000000b 78 0000000b \"audio-card\"00 4e
             55 00000000001e8480 56 00010000 4c 00000001 4c 00010001 4c ffffffff 4c 00000000 4e
             42 01 66 42 01 50 4e");
        assert_eq!(bytes.len(), 280);
        let mut r = TagReader::new(&bytes);
        assert_eq!(r.get_u32(), Ok(2));
        assert_eq!(r.get_u32(), Ok(5));
        assert_eq!(r.get_u32(), Ok(0));
        assert_eq!(r.get_string(), Ok(Some("nullsink")));
        assert_eq!(r.get_string(), Ok(Some("Null Output")));
        assert_eq!(r.get_sample_spec(), Ok(s16_stereo().0));
        assert_eq!(r.get_channel_map(), Ok(s16_stereo().1));
        assert_eq!(r.get_u32(), Ok(0));
        assert_eq!(r.get_cvolume().unwrap().values(), &[VOLUME_NORM; 2]);
        assert_eq!(r.get_bool(), Ok(false));
        assert_eq!(r.get_u32(), Ok(0));
        assert_eq!(r.get_string(), Ok(Some("nullsink.monitor")));
        assert_eq!(r.get_usec(), Ok(0xaffe5));
        assert_eq!(r.get_string(), Ok(Some("module-null-sink.c")));
        assert_eq!(r.get_u32(), Ok(0x1a2));
        assert_eq!(r.get_proplist().unwrap().len(), 3);
        assert_eq!(r.get_usec(), Ok(2_000_000));
        assert_eq!(r.get_volume(), Ok(VOLUME_NORM));
        assert_eq!(r.get_u32(), Ok(1)); // IDLE
        assert_eq!(r.get_u32(), Ok(0x10001));
        assert_eq!(r.get_u32(), Ok(u32::MAX));
        assert_eq!(r.get_u32(), Ok(0)); // n_ports
        assert_eq!(r.get_string(), Ok(None)); // active port
        assert_eq!(r.get_u8(), Ok(1)); // n_formats
        assert_eq!(
            r.get_format_info(),
            Ok(FormatInfo {
                encoding: 1,
                props: Proplist::new()
            })
        );
        r.finish().unwrap();
    }

    #[test]
    fn empty_proplist_and_timeval_and_u64() {
        let mut w = TagWriter::new();
        w.put_proplist(&Proplist::new())
            .put_timeval(Timeval {
                sec: 0x0102_0304,
                usec: 999_999,
            })
            .put_u64(0x0102_0304_0506_0708);
        let bytes = w.into_bytes();
        assert_eq!(bytes, hex("50 4e 54 01020304 000f423f 52 0102030405060708"));
        let mut r = TagReader::new(&bytes);
        assert!(r.get_proplist().unwrap().is_empty());
        assert_eq!(r.get_timeval().unwrap().usec, 999_999);
        assert_eq!(r.get_u64(), Ok(0x0102_0304_0506_0708));
        r.finish().unwrap();
    }

    // ---- every error variant ----

    #[test]
    fn truncated() {
        let b = hex("4c 0000");
        assert_eq!(
            TagReader::new(&b).get_u32(),
            Err(TagError::Truncated {
                what: "u32",
                need: 4,
                have: 2
            })
        );
        assert!(matches!(
            TagReader::new(&[]).get_bool(),
            Err(TagError::Truncated {
                need: 1,
                have: 0,
                ..
            })
        ));
        assert!(matches!(
            TagReader::new(&[]).get_value(),
            Err(TagError::Truncated { what: "tag", .. })
        ));
        // A cvolume announcing more values than remain.
        let b = hex("76 02 00010000");
        assert!(matches!(
            TagReader::new(&b).get_cvolume(),
            Err(TagError::Truncated {
                need: 8,
                have: 4,
                ..
            })
        ));
        // An arbitrary announcing 4 GiB with nothing behind it.
        let b = hex("78 ffffffff 00");
        assert!(matches!(
            TagReader::new(&b).get_arbitrary(u32::MAX as usize),
            Err(TagError::Truncated { have: 1, .. })
        ));
    }

    #[test]
    fn wrong_tag() {
        let b = hex("42 01");
        assert_eq!(
            TagReader::new(&b).get_u32(),
            Err(TagError::WrongTag {
                expected: "u32",
                found: b'B'
            })
        );
        // Booleans accept only '1' and '0'.
        assert_eq!(
            TagReader::new(b"t").get_bool(),
            Err(TagError::WrongTag {
                expected: "bool",
                found: b't'
            })
        );
        assert_eq!(
            TagReader::new(b"L").get_string(),
            Err(TagError::WrongTag {
                expected: "string",
                found: b'L'
            })
        );
        assert_eq!(
            reader_err(TagReader::new(b"z").get_value()),
            TagError::WrongTag {
                expected: "any tag",
                found: b'z'
            }
        );
        // format info: the encoding must be a tagged u8.
        let b = hex("66 4c 00000001 50 4e");
        assert!(matches!(
            TagReader::new(&b).get_format_info(),
            Err(TagError::WrongTag { expected: "u8", .. })
        ));
    }

    #[test]
    fn bad_string() {
        assert_eq!(
            TagReader::new(b"tabc").get_string(),
            Err(TagError::BadString {
                reason: "no terminating NUL"
            })
        );
        assert_eq!(
            TagReader::new(b"t\xff\x00").get_string(),
            Err(TagError::BadString {
                reason: "not UTF-8"
            })
        );
        let mut r = TagReader::new(b"t\x00");
        assert_eq!(r.get_string(), Ok(Some("")));
        r.finish().unwrap();
    }

    #[test]
    fn unexpected_null() {
        assert_eq!(
            TagReader::new(b"N").get_nonnull_string("sink name"),
            Err(TagError::UnexpectedNull { what: "sink name" })
        );
    }

    #[test]
    fn too_long() {
        let mut b = hex("50 74 \"k\"00 4c 00010001 78 00010001");
        b.extend(std::iter::repeat_n(0u8, 0x10001));
        b.push(b'N');
        assert_eq!(
            TagReader::new(&b).get_proplist(),
            Err(TagError::TooLong {
                what: "property value",
                len: 0x10001,
                max: MAX_TAG_SIZE
            })
        );
        let mut w = TagWriter::new();
        w.buf.push(tag::PROPLIST);
        for i in 0..=PROPLIST_MAX_ENTRIES {
            w.put_string(Some(&format!("k{i}")))
                .put_u32(0)
                .put_arbitrary(&[]);
        }
        w.put_string(None);
        assert_eq!(
            TagReader::new(w.as_bytes()).get_proplist(),
            Err(TagError::TooLong {
                what: "proplist entries",
                len: PROPLIST_MAX_ENTRIES + 1,
                max: PROPLIST_MAX_ENTRIES
            })
        );
        let b = hex("78 00000003 010203");
        assert_eq!(
            TagReader::new(&b).get_arbitrary_max(2),
            Err(TagError::TooLong {
                what: "arbitrary value",
                len: 3,
                max: 2
            })
        );
        assert!(matches!(
            Proplist::new().set("k", &vec![0; MAX_TAG_SIZE + 1]),
            Err(TagError::TooLong { .. })
        ));
    }

    #[test]
    fn arbitrary_length() {
        let b = hex("78 00000002 0102");
        assert_eq!(
            TagReader::new(&b).get_arbitrary(3),
            Err(TagError::ArbitraryLength {
                expected: 3,
                found: 2
            })
        );
        assert_eq!(TagReader::new(&b).get_arbitrary(2), Ok(&[1u8, 2][..]));
    }

    #[test]
    fn bad_sample_spec() {
        let ss = |format, channels, rate| SampleSpec {
            format: SampleFormat::from_wire(format),
            channels,
            rate,
        };
        for (s, reason) in [
            (ss(13, 2, 44100), "unknown sample format"),
            (ss(3, 0, 44100), "channel count not in 1..=32"),
            (ss(3, 33, 44100), "channel count not in 1..=32"),
            (ss(3, 2, 0), "rate not in 1..=384000"),
            (ss(3, 2, 384_001), "rate not in 1..=384000"),
        ] {
            assert_eq!(
                s.check(),
                Err(TagError::BadSampleSpec {
                    format: s.format.to_wire(),
                    channels: s.channels,
                    rate: s.rate,
                    reason
                })
            );
        }
        ss(12, 32, 384_000).check().unwrap();
        ss(0, 1, 1).check().unwrap();
        assert_eq!(ss(13, 1, 1).frame_size(), None);
        assert_eq!(ss(9, 2, 1).frame_size(), Some(6));
        // The reader does not check: a bad spec is a semantic error.
        let b = hex("61 ff 00 00000000");
        assert_eq!(TagReader::new(&b).get_sample_spec(), Ok(ss(255, 0, 0)));
    }

    #[test]
    fn bad_channel_map() {
        let mut b = vec![b'm', 33];
        b.extend([1u8; 33]);
        assert_eq!(
            TagReader::new(&b).get_channel_map(),
            Err(TagError::BadChannelMap {
                channels: 33,
                reason: "more than 32 channels"
            })
        );
        assert!(matches!(
            ChannelMap::new(&[0; 33]),
            Err(TagError::BadChannelMap { channels: 33, .. })
        ));
        assert_eq!(
            ChannelMap::new(&[1, 51]).unwrap().check(),
            Err(TagError::BadChannelMap {
                channels: 2,
                reason: "unknown channel position"
            })
        );
        assert_eq!(
            ChannelMap::new(&[]).unwrap().check(),
            Err(TagError::BadChannelMap {
                channels: 0,
                reason: "no channels"
            })
        );
        ChannelMap::new(&[50; 32]).unwrap().check().unwrap();
    }

    #[test]
    fn bad_cvolume() {
        let mut b = vec![b'v', 33];
        b.extend([0u8; 33 * 4]);
        assert_eq!(
            TagReader::new(&b).get_cvolume(),
            Err(TagError::BadCVolume {
                channels: 33,
                reason: "more than 32 channels"
            })
        );
        assert!(matches!(
            CVolume::new(&[0; 33]),
            Err(TagError::BadCVolume { channels: 33, .. })
        ));
        assert_eq!(
            CVolume::new(&[VOLUME_MAX, VOLUME_MAX + 1]).unwrap().check(),
            Err(TagError::BadCVolume {
                channels: 2,
                reason: "volume above PA_VOLUME_MAX"
            })
        );
        assert_eq!(
            CVolume::new(&[]).unwrap().check(),
            Err(TagError::BadCVolume {
                channels: 0,
                reason: "no channels"
            })
        );
    }

    #[test]
    fn bad_proplist() {
        let key_reason = TagError::BadProplist {
            reason: "key is empty or not ASCII",
        };
        let b = hex("50 74 00 4c 00000000 78 00000000 4e");
        assert_eq!(TagReader::new(&b).get_proplist(), Err(key_reason.clone()));
        let b = hex("50 74 c3a9 00 4c 00000000 78 00000000 4e");
        assert_eq!(TagReader::new(&b).get_proplist(), Err(key_reason.clone()));
        assert_eq!(Proplist::new().set("", b""), Err(key_reason));
        let b = hex("50 74 \"k\"00 4c 00000002 78 00000001 41 4e");
        assert_eq!(
            TagReader::new(&b).get_proplist(),
            Err(TagError::BadProplist {
                reason: "value length and arbitrary length differ"
            })
        );
        assert_eq!(
            Proplist::new().set_str("k", "a\0b"),
            Err(TagError::BadProplist {
                reason: "string value with an embedded NUL"
            })
        );
        // No terminating N: the entry loop runs out of bytes.
        let b = hex("50 74 \"k\"00 4c 00000000 78 00000000");
        assert!(matches!(
            TagReader::new(&b).get_proplist(),
            Err(TagError::Truncated { what: "string", .. })
        ));
    }

    #[test]
    fn proplist_semantics() {
        // A repeated key replaces the value in place.
        let b = hex(
            "50 74 \"a\"00 4c 00000002 78 00000002 \"1\"00 74 \"b\"00 4c 00000000 78 00000000
                74 \"a\"00 4c 00000002 78 00000002 \"2\"00 4e",
        );
        let p = TagReader::new(&b).get_proplist().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.entries()[0].0, "a");
        assert_eq!(p.get_str("a"), Some("2"));
        // Not strings: empty, no trailing NUL, embedded NUL, not UTF-8.
        assert_eq!(p.get_str("b"), None);
        let mut q = Proplist::new();
        q.set("x", b"ab").unwrap();
        q.set("y", b"a\0b\0").unwrap();
        q.set("z", b"\xff\0").unwrap();
        assert_eq!(q.get_str("x"), None);
        assert_eq!(q.get_str("y"), None);
        assert_eq!(q.get_str("z"), None);
        assert_eq!(q.get_str("missing"), None);
        assert!(q.remove("y"));
        assert!(!q.remove("y"));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn bad_format_info() {
        let b = hex("66 42 09 50 4e");
        let f = TagReader::new(&b).get_format_info().unwrap();
        assert_eq!(f.check(), Err(TagError::BadFormatInfo { encoding: 9 }));
        FormatInfo {
            encoding: 8,
            props: Proplist::new(),
        }
        .check()
        .unwrap();
    }

    #[test]
    fn trailing_data() {
        let b = hex("4c 00000001 30");
        let mut r = TagReader::new(&b);
        r.get_u32().unwrap();
        assert_eq!(r.finish(), Err(TagError::TrailingData { remaining: 1 }));
    }

    #[test]
    fn string_with_nul_is_cut_like_a_c_string() {
        let mut w = TagWriter::new();
        w.put_string(Some("ab\0cd"));
        assert_eq!(w.as_bytes(), b"tab\0");
    }

    #[test]
    fn errors_display() {
        let e = TagError::Truncated {
            what: "u32",
            need: 4,
            have: 1,
        };
        assert_eq!(e.to_string(), "truncated u32: need 4 bytes, 1 remain");
    }

    // ---- property tests ----

    fn arb_string() -> impl Strategy<Value = String> {
        "[^\u{0}]{0,24}"
    }

    fn arb_proplist() -> impl Strategy<Value = Proplist> {
        prop::collection::vec(
            (
                "[a-z][a-z._]{0,15}",
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            0..6,
        )
        .prop_map(|entries| {
            let mut p = Proplist::new();
            for (k, v) in entries {
                p.set(&k, &v).unwrap();
            }
            p
        })
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            prop::option::of(arb_string()).prop_map(Value::String),
            any::<u32>().prop_map(Value::U32),
            any::<u8>().prop_map(Value::U8),
            any::<u64>().prop_map(Value::U64),
            any::<i64>().prop_map(Value::S64),
            (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(format, channels, rate)| {
                Value::SampleSpec(SampleSpec {
                    format: SampleFormat::from_wire(format),
                    channels,
                    rate,
                })
            }),
            prop::collection::vec(any::<u8>(), 0..64).prop_map(Value::Arbitrary),
            any::<bool>().prop_map(Value::Bool),
            (any::<u32>(), any::<u32>())
                .prop_map(|(sec, usec)| Value::Timeval(Timeval { sec, usec })),
            any::<u64>().prop_map(Value::Usec),
            prop::collection::vec(any::<u8>(), 0..=32)
                .prop_map(|v| Value::ChannelMap(ChannelMap::new(&v).unwrap())),
            prop::collection::vec(any::<u32>(), 0..=32)
                .prop_map(|v| Value::CVolume(CVolume::new(&v).unwrap())),
            arb_proplist().prop_map(Value::Proplist),
            any::<u32>().prop_map(Value::Volume),
            (any::<u8>(), arb_proplist())
                .prop_map(|(encoding, props)| Value::FormatInfo(FormatInfo { encoding, props })),
        ]
    }

    /// Reads the value with the typed getter of `like`'s type.
    fn read_typed(r: &mut TagReader<'_>, like: &Value) -> Result<Value, TagError> {
        Ok(match like {
            Value::String(_) => Value::String(r.get_string()?.map(str::to_owned)),
            Value::U32(_) => Value::U32(r.get_u32()?),
            Value::U8(_) => Value::U8(r.get_u8()?),
            Value::U64(_) => Value::U64(r.get_u64()?),
            Value::S64(_) => Value::S64(r.get_s64()?),
            Value::SampleSpec(_) => Value::SampleSpec(r.get_sample_spec()?),
            Value::Arbitrary(a) => Value::Arbitrary(r.get_arbitrary(a.len())?.to_vec()),
            Value::Bool(_) => Value::Bool(r.get_bool()?),
            Value::Timeval(_) => Value::Timeval(r.get_timeval()?),
            Value::Usec(_) => Value::Usec(r.get_usec()?),
            Value::ChannelMap(_) => Value::ChannelMap(r.get_channel_map()?),
            Value::CVolume(_) => Value::CVolume(r.get_cvolume()?),
            Value::Proplist(_) => Value::Proplist(r.get_proplist()?),
            Value::Volume(_) => Value::Volume(r.get_volume()?),
            Value::FormatInfo(_) => Value::FormatInfo(r.get_format_info()?),
        })
    }

    fn encode(values: &[Value]) -> Vec<u8> {
        let mut w = TagWriter::new();
        for v in values {
            w.put_value(v);
        }
        w.into_bytes()
    }

    proptest! {
        /// Every tag type round-trips through its typed getter and through
        /// the generic one, in any sequence.
        #[test]
        fn round_trip(values in prop::collection::vec(arb_value(), 0..12)) {
            let bytes = encode(&values);
            let mut r = TagReader::new(&bytes);
            for v in &values {
                prop_assert_eq!(&read_typed(&mut r, v)?, v);
            }
            prop_assert_eq!(r.finish(), Ok(()));
            let mut r = TagReader::new(&bytes);
            for v in &values {
                prop_assert_eq!(&r.get_value()?, v);
            }
            prop_assert!(r.is_empty());
        }

        /// Any strict prefix of a value's encoding is an error, never a
        /// short value.
        #[test]
        fn truncation_is_an_error(v in arb_value(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(std::slice::from_ref(&v));
            let cut = cut.index(bytes.len());
            let mut r = TagReader::new(&bytes[..cut]);
            prop_assert!(read_typed(&mut r, &v).is_err());
            prop_assert!(TagReader::new(&bytes[..cut]).get_value().is_err());
        }

        /// Reading with the wrong getter gives a named error (or, where the
        /// encodings coincide, a value) but never panics.
        #[test]
        fn mismatched_getters_never_panic(v in arb_value(), like in arb_value()) {
            let bytes = encode(&[v]);
            let _ = read_typed(&mut TagReader::new(&bytes), &like);
        }

        /// Random bytes never panic any getter.
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), like in arb_value()) {
            let mut r = TagReader::new(&bytes);
            while !r.is_empty() {
                if r.get_value().is_err() {
                    break;
                }
            }
            let mut r = TagReader::new(&bytes);
            while read_typed(&mut r, &like).is_ok() && !r.is_empty() {}
            let _ = TagReader::new(&bytes).get_nonnull_string("x");
            let _ = TagReader::new(&bytes).get_arbitrary_max(16);
        }

        /// Random bytes behind each tag never panic (the tag is what makes
        /// random input reach the deep paths).
        #[test]
        fn random_bytes_after_each_tag(t in prop::sample::select(b"tNLBRraxm1v0TUPVf".to_vec()), rest in prop::collection::vec(any::<u8>(), 0..128)) {
            let mut bytes = vec![t];
            bytes.extend(rest);
            let mut r = TagReader::new(&bytes);
            while !r.is_empty() && r.get_value().is_ok() {}
        }

        /// Random single-byte corruption of a valid encoding never panics.
        #[test]
        fn corruption_never_panics(values in prop::collection::vec(arb_value(), 1..6), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = encode(&values);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let mut r = TagReader::new(&bytes);
            while !r.is_empty() && r.get_value().is_ok() {}
            let mut r = TagReader::new(&bytes);
            for v in &values {
                if read_typed(&mut r, v).is_err() {
                    break;
                }
            }
        }
    }
}
