//! [`SampleFormat`]: PulseAudio's `pa_sample_format_t` as a Rust enum
//! (protocol doc §2), with the names `pactl` prints and the facts the rest
//! of a server needs (sample size, silence, float or not).
//!
//! A sample spec on the wire carries one byte for the format. Every byte
//! decodes: the 13 known formats to their variants, anything else to
//! [`SampleFormat::Unknown`] with the byte kept, so that a request with an
//! unknown format (or `PA_SAMPLE_INVALID`, 0xFF, which clients send when
//! they negotiate with format infos) can be answered with an `ERROR`
//! instead of closing the connection, and re-encodes to the same byte.

/// A PCM sample format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// `PA_SAMPLE_U8`: unsigned 8 bit, silence at 0x80.
    U8,
    /// `PA_SAMPLE_ALAW`: 8 bit G.711 A-law.
    Alaw,
    /// `PA_SAMPLE_ULAW`: 8 bit G.711 μ-law.
    Ulaw,
    /// `PA_SAMPLE_S16LE`.
    S16Le,
    /// `PA_SAMPLE_S16BE`.
    S16Be,
    /// `PA_SAMPLE_FLOAT32LE`.
    Float32Le,
    /// `PA_SAMPLE_FLOAT32BE`.
    Float32Be,
    /// `PA_SAMPLE_S32LE`.
    S32Le,
    /// `PA_SAMPLE_S32BE`.
    S32Be,
    /// `PA_SAMPLE_S24LE`: 24 bit packed in 3 bytes.
    S24Le,
    /// `PA_SAMPLE_S24BE`: 24 bit packed in 3 bytes.
    S24Be,
    /// `PA_SAMPLE_S24_32LE`: 24 bit in the low 3 bytes of a 32 bit word.
    S24_32Le,
    /// `PA_SAMPLE_S24_32BE`: 24 bit in the low 3 bytes of a 32 bit word.
    S24_32Be,
    /// Any other byte (0xFF is `PA_SAMPLE_INVALID`): not a format.
    Unknown(u8),
}

/// `PA_SAMPLE_INVALID`.
pub const INVALID: SampleFormat = SampleFormat::Unknown(0xFF);

impl SampleFormat {
    /// The 13 known formats, in wire order.
    pub const ALL: [SampleFormat; 13] = [
        Self::U8,
        Self::Alaw,
        Self::Ulaw,
        Self::S16Le,
        Self::S16Be,
        Self::Float32Le,
        Self::Float32Be,
        Self::S32Le,
        Self::S32Be,
        Self::S24Le,
        Self::S24Be,
        Self::S24_32Le,
        Self::S24_32Be,
    ];

    /// The format a wire byte stands for.
    pub fn from_wire(v: u8) -> Self {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Self::Unknown(v))
    }

    /// The wire byte.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Unknown(v) => v,
            known => Self::ALL.iter().position(|&f| f == known).unwrap_or(0xFF) as u8,
        }
    }

    /// Whether it is one of the 13 formats.
    pub fn is_known(self) -> bool {
        !matches!(self, Self::Unknown(_))
    }

    /// Bytes per sample (`None` for an unknown format).
    pub fn sample_size(self) -> Option<usize> {
        Some(match self {
            Self::U8 | Self::Alaw | Self::Ulaw => 1,
            Self::S16Le | Self::S16Be => 2,
            Self::S24Le | Self::S24Be => 3,
            Self::Float32Le
            | Self::Float32Be
            | Self::S32Le
            | Self::S32Be
            | Self::S24_32Le
            | Self::S24_32Be => 4,
            Self::Unknown(_) => return None,
        })
    }

    /// Whether samples are IEEE floats.
    pub fn is_float(self) -> bool {
        matches!(self, Self::Float32Le | Self::Float32Be)
    }

    /// The byte that encodes silence: 0x80 for U8, 0xD5 (+8, the smallest
    /// positive value) for A-law, 0xFF for μ-law, 0 for every other format
    /// (and for unknown formats).
    pub fn silence_byte(self) -> u8 {
        match self {
            Self::U8 => 0x80,
            Self::Alaw => 0xD5,
            Self::Ulaw => 0xFF,
            _ => 0,
        }
    }

    /// PulseAudio's name (`pa_sample_format_to_string`): `s16le`,
    /// `float32le`, … ; `invalid` for an unknown format.
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::Alaw => "aLaw",
            Self::Ulaw => "uLaw",
            Self::S16Le => "s16le",
            Self::S16Be => "s16be",
            Self::Float32Le => "float32le",
            Self::Float32Be => "float32be",
            Self::S32Le => "s32le",
            Self::S32Be => "s32be",
            Self::S24Le => "s24le",
            Self::S24Be => "s24be",
            Self::S24_32Le => "s24-32le",
            Self::S24_32Be => "s24-32be",
            Self::Unknown(_) => "invalid",
        }
    }

    /// The format a name stands for, as `pa_parse_sample_format` reads it
    /// (case-insensitive; the aliases `s16`, `float32`, `ulaw`, `alaw`,
    /// `s32`, `s24`, `s24-32` mean the little-endian or only variant).
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        Some(match n.as_str() {
            "u8" | "8" => Self::U8,
            "alaw" => Self::Alaw,
            "ulaw" | "mulaw" => Self::Ulaw,
            "s16le" | "s16" | "16" | "s16ne" => Self::S16Le,
            "s16be" | "s16re" => Self::S16Be,
            "float32le" | "float32" | "float" | "float32ne" => Self::Float32Le,
            "float32be" | "float32re" => Self::Float32Be,
            "s32le" | "s32" | "32" | "s32ne" => Self::S32Le,
            "s32be" | "s32re" => Self::S32Be,
            "s24le" | "s24" | "24" | "s24ne" => Self::S24Le,
            "s24be" | "s24re" => Self::S24Be,
            "s24-32le" | "s24-32" | "s24_32le" | "s24-32ne" => Self::S24_32Le,
            "s24-32be" | "s24_32be" | "s24-32re" => Self::S24_32Be,
            _ => return None,
        })
    }
}

impl std::fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(v) => write!(f, "invalid ({v})"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_and_the_known_ones_are_pulseaudios_numbers() {
        for v in 0..=255u8 {
            assert_eq!(SampleFormat::from_wire(v).to_wire(), v);
            assert_eq!(SampleFormat::from_wire(v).is_known(), v < 13);
        }
        assert_eq!(SampleFormat::S16Le.to_wire(), 3);
        assert_eq!(SampleFormat::Float32Le.to_wire(), 5);
        assert_eq!(SampleFormat::S24_32Be.to_wire(), 12);
        assert_eq!(INVALID.to_wire(), 0xFF);
    }

    #[test]
    fn sizes_names_and_silence() {
        let sizes: Vec<_> = SampleFormat::ALL
            .iter()
            .map(|f| f.sample_size().unwrap())
            .collect();
        assert_eq!(sizes, [1, 1, 1, 2, 2, 4, 4, 4, 4, 3, 3, 4, 4]);
        assert_eq!(SampleFormat::Unknown(13).sample_size(), None);
        for f in SampleFormat::ALL {
            assert_eq!(SampleFormat::from_name(f.name()), Some(f), "{f}");
        }
        assert_eq!(SampleFormat::from_name("S16"), Some(SampleFormat::S16Le));
        assert_eq!(SampleFormat::from_name("pcm"), None);
        assert_eq!(SampleFormat::U8.silence_byte(), 0x80);
        assert_eq!(SampleFormat::Ulaw.silence_byte(), 0xFF);
        assert!(SampleFormat::Float32Be.is_float() && !SampleFormat::S32Le.is_float());
    }
}
