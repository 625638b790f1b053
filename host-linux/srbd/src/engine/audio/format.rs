//! PCM sample formats ↔ `f32` samples.
//!
//! [`decode`] turns client bytes of any PulseAudio sample format into `f32`
//! samples in [-1, 1); [`encode`] does the inverse. Both work on plain sample
//! sequences (channels do not matter here), never allocate, never fail and
//! never panic in release builds:
//!
//! * an unknown format number (13 or more) produces silence (zero samples,
//!   zero bytes);
//! * a length mismatch between the two slices is a caller bug caught by a
//!   `debug_assert!`; release builds convert as many whole samples as both
//!   sides hold and fill the rest of the output with silence.
//!
//! ## Scaling
//!
//! | format | decode | encode |
//! |---|---|---|
//! | U8 | (x − 128) / 128 | round(v · 128) + 128, saturated to 0..=255 |
//! | S16 | x / 2¹⁵ | round(v · 2¹⁵), saturated |
//! | S24, S24_32 | x / 2²³ | round(v · 2²³), saturated |
//! | S32 | x / 2³¹ in `f64`, then rounded to `f32` | round(v · 2³¹) in `f64`, saturated |
//! | ALAW, ULAW | G.711 expansion to 16 bits, then / 2¹⁵ | as S16, then G.711 compression |
//! | FLOAT32 | the bits themselves (byte-swapped for BE) | the bits themselves |
//!
//! Rounding is to nearest, halves away from zero; NaN encodes as silence for
//! every non-float format; ±∞ and values outside [-1, 1) saturate. Float
//! samples are moved as bit patterns (`from_bits`/`to_bits`), so NaN payloads,
//! signalling NaNs, −0.0 and out-of-range values survive unchanged.
//!
//! ## Round trips
//!
//! `encode(decode(x)) == x` for every sample value of U8, ALAW, S16, S24 and
//! for every sign-extended S24_32 word (its top byte is ignored by `decode`
//! and written as the sign extension by `encode`). Two exceptions, both
//! forced by the representation: ULAW has two codes for zero (0x7F, "−0",
//! comes back as 0xFF), and S32 keeps only the 24 significant bits an `f32`
//! holds (values with at most 24 significant bits come back exactly, others
//! to within half an `f32` step).
//!
//! ## G.711
//!
//! μ-law: the code byte is complemented; bit 7 is the sign (set = negative),
//! bits 6..4 the segment `e`, bits 3..0 the step `m`; the 16-bit magnitude is
//! `((8m + 132) << e) − 132`. Compression adds the bias 132 to the clipped
//! magnitude (at most 32635), takes `e` from its highest set bit and `m` from
//! the four bits below it. A-law: the code byte is XORed with 0x55; bit 7 set
//! means positive; the magnitude is `16m + 8` in segment 0 and
//! `(16m + 264) << (e − 1)` above it. Compression truncates within a segment.

pub use srb_pulse::sample::SampleFormat;

/// `PA_SAMPLE_U8`: unsigned 8 bit, silence at 0x80.
pub const U8: SampleFormat = SampleFormat::U8;
/// `PA_SAMPLE_ALAW`: 8 bit G.711 A-law.
pub const ALAW: SampleFormat = SampleFormat::Alaw;
/// `PA_SAMPLE_ULAW`: 8 bit G.711 μ-law.
pub const ULAW: SampleFormat = SampleFormat::Ulaw;
/// `PA_SAMPLE_S16LE`.
pub const S16LE: SampleFormat = SampleFormat::S16Le;
/// `PA_SAMPLE_S16BE`.
pub const S16BE: SampleFormat = SampleFormat::S16Be;
/// `PA_SAMPLE_FLOAT32LE`.
pub const FLOAT32LE: SampleFormat = SampleFormat::Float32Le;
/// `PA_SAMPLE_FLOAT32BE`.
pub const FLOAT32BE: SampleFormat = SampleFormat::Float32Be;
/// `PA_SAMPLE_S32LE`.
pub const S32LE: SampleFormat = SampleFormat::S32Le;
/// `PA_SAMPLE_S32BE`.
pub const S32BE: SampleFormat = SampleFormat::S32Be;
/// `PA_SAMPLE_S24LE`: 24 bit packed in 3 bytes.
pub const S24LE: SampleFormat = SampleFormat::S24Le;
/// `PA_SAMPLE_S24BE`: 24 bit packed in 3 bytes.
pub const S24BE: SampleFormat = SampleFormat::S24Be;
/// `PA_SAMPLE_S24_32LE`: 24 bit in the low 3 bytes of a 32 bit word.
pub const S24_32LE: SampleFormat = SampleFormat::S24_32Le;
/// `PA_SAMPLE_S24_32BE`: 24 bit in the low 3 bytes of a 32 bit word.
pub const S24_32BE: SampleFormat = SampleFormat::S24_32Be;
/// Number of known formats: every format below it is valid.
pub const FORMAT_COUNT: u8 = 13;

/// Bytes per sample of `format`, or `None` for an unknown format.
pub fn sample_size(format: SampleFormat) -> Option<usize> {
    format.sample_size()
}

/// The byte that encodes silence in `format`: 0x80 for U8, 0xD5 (+8, the
/// smallest positive value) for ALAW, 0xFF for ULAW, 0 for every other
/// format and for unknown formats. Every byte of a silent buffer is this
/// byte.
pub fn silence_byte(format: SampleFormat) -> u8 {
    format.silence_byte()
}

/// Fills `out` with silence in `format` (see [`silence_byte`]).
pub fn fill_silence(format: SampleFormat, out: &mut [u8]) {
    out.fill(silence_byte(format));
}

/// Decodes `out.len()` samples of `format` from `input` into `out`.
///
/// `input.len()` must be `out.len() * sample_size(format)` (checked by a
/// `debug_assert!`; release builds convert what both hold and zero the rest
/// of `out`). An unknown format writes zeros. Never allocates.
pub fn decode(format: SampleFormat, input: &[u8], out: &mut [f32]) {
    if let Some(size) = sample_size(format) {
        debug_assert_eq!(
            input.len(),
            out.len() * size,
            "decode: {} bytes of format {format} for {} samples",
            input.len(),
            out.len()
        );
    }
    decode_lenient(format, input, out);
}

/// Encodes the samples of `input` into `format`, writing `out`.
///
/// `out.len()` must be `input.len() * sample_size(format)` (checked by a
/// `debug_assert!`; release builds convert what both hold and fill the rest
/// of `out` with silence). An unknown format writes zeros. Never allocates.
pub fn encode(format: SampleFormat, input: &[f32], out: &mut [u8]) {
    if let Some(size) = sample_size(format) {
        debug_assert_eq!(
            out.len(),
            input.len() * size,
            "encode: {} samples into {} bytes of format {format}",
            input.len(),
            out.len()
        );
    }
    encode_lenient(format, input, out);
}

const S16_SCALE: f32 = 32768.0;
const S24_SCALE: f32 = 8_388_608.0;
const S32_SCALE: f64 = 2_147_483_648.0;

/// [`decode`] without the length assertion: converts
/// `min(out.len(), input.len() / size)` samples and zeros the rest of `out`.
pub(crate) fn decode_lenient(format: SampleFormat, input: &[u8], out: &mut [f32]) {
    let Some(size) = sample_size(format) else {
        out.fill(0.0);
        return;
    };
    let n = out.len().min(input.len() / size);
    let (out, rest) = out.split_at_mut(n);
    rest.fill(0.0);
    let input = &input[..n * size];
    let s16 = |x: i16| f32::from(x) / S16_SCALE;
    // Every 24-bit value is exact in an f32 and 2^23 is a power of two, so
    // the division is exact.
    let s24 = |x: i32| x as f32 / S24_SCALE;
    let s32 = |x: i32| (f64::from(x) / S32_SCALE) as f32;
    match format {
        U8 => {
            for (o, &b) in out.iter_mut().zip(input) {
                *o = (f32::from(b) - 128.0) / 128.0;
            }
        }
        ALAW => {
            for (o, &b) in out.iter_mut().zip(input) {
                *o = s16(ALAW_TO_S16[usize::from(b)]);
            }
        }
        ULAW => {
            for (o, &b) in out.iter_mut().zip(input) {
                *o = s16(ULAW_TO_S16[usize::from(b)]);
            }
        }
        S16LE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(2)) {
                *o = s16(i16::from_le_bytes([c[0], c[1]]));
            }
        }
        S16BE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(2)) {
                *o = s16(i16::from_be_bytes([c[0], c[1]]));
            }
        }
        FLOAT32LE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(4)) {
                *o = f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        FLOAT32BE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(4)) {
                *o = f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        S32LE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(4)) {
                *o = s32(i32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        S32BE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(4)) {
                *o = s32(i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        S24LE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(3)) {
                *o = s24(i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8);
            }
        }
        S24BE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(3)) {
                *o = s24(i32::from_be_bytes([c[0], c[1], c[2], 0]) >> 8);
            }
        }
        S24_32LE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(4)) {
                // Shift the top byte out and sign-extend bit 23.
                *o = s24(i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8);
            }
        }
        S24_32BE => {
            for (o, c) in out.iter_mut().zip(input.chunks_exact(4)) {
                *o = s24(i32::from_be_bytes([c[1], c[2], c[3], 0]) >> 8);
            }
        }
        // sample_size() returned Some, so the format is one of the above.
        _ => out.fill(0.0),
    }
}

/// [`encode`] without the length assertion: converts
/// `min(input.len(), out.len() / size)` samples and fills the rest of `out`
/// with silence.
pub(crate) fn encode_lenient(format: SampleFormat, input: &[f32], out: &mut [u8]) {
    let Some(size) = sample_size(format) else {
        out.fill(0);
        return;
    };
    let n = input.len().min(out.len() / size);
    let (out, rest) = out.split_at_mut(n * size);
    fill_silence(format, rest);
    let input = &input[..n];
    match format {
        U8 => {
            for (o, &v) in out.iter_mut().zip(input) {
                // -128..=127 + 128 is 0..=255.
                *o = (quantize(v, 128.0, -128.0, 127.0) + 128) as u8;
            }
        }
        ALAW => {
            for (o, &v) in out.iter_mut().zip(input) {
                *o = alaw_from_s16(to_s16(v));
            }
        }
        ULAW => {
            for (o, &v) in out.iter_mut().zip(input) {
                *o = ulaw_from_s16(to_s16(v));
            }
        }
        S16LE => {
            for (o, &v) in out.chunks_exact_mut(2).zip(input) {
                o.copy_from_slice(&to_s16(v).to_le_bytes());
            }
        }
        S16BE => {
            for (o, &v) in out.chunks_exact_mut(2).zip(input) {
                o.copy_from_slice(&to_s16(v).to_be_bytes());
            }
        }
        FLOAT32LE => {
            for (o, &v) in out.chunks_exact_mut(4).zip(input) {
                o.copy_from_slice(&v.to_bits().to_le_bytes());
            }
        }
        FLOAT32BE => {
            for (o, &v) in out.chunks_exact_mut(4).zip(input) {
                o.copy_from_slice(&v.to_bits().to_be_bytes());
            }
        }
        S32LE => {
            for (o, &v) in out.chunks_exact_mut(4).zip(input) {
                o.copy_from_slice(&to_s32(v).to_le_bytes());
            }
        }
        S32BE => {
            for (o, &v) in out.chunks_exact_mut(4).zip(input) {
                o.copy_from_slice(&to_s32(v).to_be_bytes());
            }
        }
        S24LE => {
            for (o, &v) in out.chunks_exact_mut(3).zip(input) {
                let b = to_s24(v).to_le_bytes();
                o.copy_from_slice(&b[..3]);
            }
        }
        S24BE => {
            for (o, &v) in out.chunks_exact_mut(3).zip(input) {
                let b = to_s24(v).to_be_bytes();
                o.copy_from_slice(&b[1..]);
            }
        }
        S24_32LE => {
            for (o, &v) in out.chunks_exact_mut(4).zip(input) {
                o.copy_from_slice(&to_s24(v).to_le_bytes());
            }
        }
        S24_32BE => {
            for (o, &v) in out.chunks_exact_mut(4).zip(input) {
                o.copy_from_slice(&to_s24(v).to_be_bytes());
            }
        }
        // sample_size() returned Some, so the format is one of the above.
        _ => out.fill(0),
    }
}

/// `round(v * scale)` saturated to `min..=max`; NaN gives 0. Exact for the
/// power-of-two scales used here (at most 2^23, so `v * scale` cannot
/// overflow an f32 except for huge `v`, which saturates anyway).
fn quantize(v: f32, scale: f32, min: f32, max: f32) -> i32 {
    let y = (v * scale).round();
    if y.is_nan() {
        0
    } else {
        // In min..=max, so the cast is exact.
        y.clamp(min, max) as i32
    }
}

fn to_s16(v: f32) -> i16 {
    // quantize() keeps it within i16.
    quantize(v, S16_SCALE, -32768.0, 32767.0) as i16
}

fn to_s24(v: f32) -> i32 {
    quantize(v, S24_SCALE, -8_388_608.0, 8_388_607.0)
}

fn to_s32(v: f32) -> i32 {
    let y = (f64::from(v) * S32_SCALE).round();
    if y.is_nan() {
        0
    } else {
        y.clamp(-S32_SCALE, S32_SCALE - 1.0) as i32
    }
}

/// μ-law code → 16-bit linear value.
const fn ulaw_expand(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A-law code → 16-bit linear value.
const fn alaw_expand(code: u8) -> i16 {
    let a = code ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn expand_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_expand(i as u8)
        } else {
            ulaw_expand(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_TO_S16: [i16; 256] = expand_table(false);
static ALAW_TO_S16: [i16; 256] = expand_table(true);

/// 16-bit linear value → μ-law code (truncating within a step).
fn ulaw_from_s16(x: i16) -> u8 {
    const BIAS: u32 = 0x84;
    const CLIP: u32 = 32635;
    let negative = x < 0;
    // 132..=32767: the highest set bit is bit 7..=14.
    let magnitude = i32::from(x).unsigned_abs().min(CLIP) + BIAS;
    let exponent = 31 - magnitude.leading_zeros() - 7;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    let code = (u32::from(negative) << 7) | (exponent << 4) | mantissa;
    !(code as u8)
}

/// 16-bit linear value → A-law code (truncating within a step).
fn alaw_from_s16(x: i16) -> u8 {
    let positive = x >= 0;
    let magnitude = i32::from(x).unsigned_abs().min(32767);
    let (exponent, mantissa) = if magnitude < 256 {
        (0, magnitude >> 4)
    } else {
        // 256..=32767: the highest set bit is bit 8..=14.
        let e = 31 - magnitude.leading_zeros() - 7;
        (e, (magnitude >> (e + 3)) & 0x0F)
    };
    let code = (u32::from(positive) << 7) | (exponent << 4) | mantissa;
    (code as u8) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(format: SampleFormat, bytes: &[u8]) -> Vec<f32> {
        let n = bytes.len() / sample_size(format).unwrap();
        let mut out = vec![f32::NAN; n];
        decode(format, bytes, &mut out);
        out
    }

    fn enc(format: SampleFormat, samples: &[f32]) -> Vec<u8> {
        let mut out = vec![0xAA; samples.len() * sample_size(format).unwrap()];
        encode(format, samples, &mut out);
        out
    }

    /// Asserts that decoding then encoding `bytes` gives them back.
    fn assert_round_trip(format: SampleFormat, bytes: &[u8]) {
        let samples = dec(format, bytes);
        let back = enc(format, &samples);
        assert!(
            back == bytes,
            "format {format}: round trip changed {} of {} bytes",
            back.iter().zip(bytes).filter(|(a, b)| a != b).count(),
            bytes.len()
        );
    }

    #[test]
    fn sample_sizes_match_tagstruct() {
        use srb_pulse::tagstruct::SampleSpec;
        for format in (0..=255u8).map(SampleFormat::from_wire) {
            let spec = SampleSpec {
                format,
                channels: 1,
                rate: 48000,
            };
            assert_eq!(sample_size(format), spec.sample_size(), "format {format}");
        }
        assert_eq!(sample_size(SampleFormat::Unknown(13)), None);
    }

    #[test]
    fn u8_exhaustive_round_trip_and_scaling() {
        let all: Vec<u8> = (0..=255).collect();
        assert_round_trip(U8, &all);
        let s = dec(U8, &all);
        assert_eq!(s[0], -1.0);
        assert_eq!(s[128], 0.0);
        assert_eq!(s[255], 127.0 / 128.0);
        assert_eq!(s[64], -0.5);
    }

    #[test]
    fn s16_exhaustive_round_trip_both_endians() {
        let le: Vec<u8> = (i16::MIN..=i16::MAX).flat_map(i16::to_le_bytes).collect();
        let be: Vec<u8> = (i16::MIN..=i16::MAX).flat_map(i16::to_be_bytes).collect();
        assert_round_trip(S16LE, &le);
        assert_round_trip(S16BE, &be);
        let s = dec(S16LE, &le);
        for (i, v) in (i16::MIN..=i16::MAX).enumerate() {
            assert_eq!(s[i], f32::from(v) / 32768.0);
        }
        assert_eq!(dec(S16BE, &be), s, "BE decodes to the same values as LE");
    }

    #[test]
    fn s16_known_bytes() {
        assert_eq!(dec(S16LE, &[0x00, 0x80]), [-1.0]);
        assert_eq!(dec(S16BE, &[0x80, 0x00]), [-1.0]);
        assert_eq!(dec(S16LE, &[0x00, 0x40]), [0.5]);
        assert_eq!(dec(S16BE, &[0x00, 0x40]), [64.0 / 32768.0]);
        assert_eq!(enc(S16LE, &[0.5]), [0x00, 0x40]);
        assert_eq!(enc(S16BE, &[0.5]), [0x40, 0x00]);
    }

    #[test]
    fn g711_known_values() {
        assert_eq!(ULAW_TO_S16[0xFF], 0);
        assert_eq!(ULAW_TO_S16[0x7F], 0);
        assert_eq!(ULAW_TO_S16[0x00], -32124);
        assert_eq!(ULAW_TO_S16[0x80], 32124);
        assert_eq!(ULAW_TO_S16[0xFE], 8);
        assert_eq!(ALAW_TO_S16[0xD5], 8);
        assert_eq!(ALAW_TO_S16[0x55], -8);
        assert_eq!(ALAW_TO_S16[0xAA], 32256);
        assert_eq!(ALAW_TO_S16[0x2A], -32256);
        assert_eq!(dec(ULAW, &[0x00]), [-32124.0 / 32768.0]);
        assert_eq!(dec(ALAW, &[0xD5, 0x55]), [8.0 / 32768.0, -8.0 / 32768.0]);
        assert_eq!(enc(ULAW, &[0.0]), [0xFF]);
        assert_eq!(enc(ALAW, &[0.0]), [0xD5]);
        // Full scale saturates to the largest codes.
        assert_eq!(enc(ULAW, &[1.0, -1.0]), [0x80, 0x00]);
        assert_eq!(enc(ALAW, &[1.0, -1.0]), [0xAA, 0x2A]);
    }

    #[test]
    fn g711_tables_are_monotonic_and_symmetric() {
        // Sorted by value, the 256 codes give 255 distinct μ-law levels (two
        // zeros) and 256 distinct A-law levels, symmetric around zero.
        let mut u: Vec<i16> = ULAW_TO_S16.to_vec();
        u.sort_unstable();
        u.dedup();
        assert_eq!(u.len(), 255);
        let mut a: Vec<i16> = ALAW_TO_S16.to_vec();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), 256);
        for code in 0..=255u8 {
            assert_eq!(
                ULAW_TO_S16[usize::from(code)],
                -ULAW_TO_S16[usize::from(code ^ 0x80)]
            );
            assert_eq!(
                ALAW_TO_S16[usize::from(code)],
                -ALAW_TO_S16[usize::from(code ^ 0x80)]
            );
        }
    }

    #[test]
    fn g711_exhaustive_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        assert_round_trip(ALAW, &all);
        let back = enc(ULAW, &dec(ULAW, &all));
        for code in 0..=255u8 {
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(back[usize::from(code)], expected, "μ-law code {code:#04x}");
        }
    }

    #[test]
    fn g711_encode_picks_an_adjacent_level() {
        // Every 16-bit value encodes to one of the two decoded levels that
        // bracket it (or the extreme level outside the range): the right
        // segment and step, whatever the rounding inside the step.
        for (name, table, f) in [
            ("ulaw", &ULAW_TO_S16, ulaw_from_s16 as fn(i16) -> u8),
            ("alaw", &ALAW_TO_S16, alaw_from_s16),
        ] {
            let mut levels: Vec<i16> = table.to_vec();
            levels.sort_unstable();
            levels.dedup();
            let (min, max) = (levels[0], levels[levels.len() - 1]);
            for x in i16::MIN..=i16::MAX {
                let y = table[usize::from(f(x))];
                // First level above x, and the one before it.
                let i = levels.partition_point(|&l| l <= x);
                let below = if i == 0 { min } else { levels[i - 1] };
                let above = levels.get(i).copied().unwrap_or(max);
                assert!(
                    y == below || y == above,
                    "{name}: {x} → {y}, not {below} or {above}"
                );
            }
        }
    }

    #[test]
    fn s24_dense_round_trip_and_sign_extension() {
        // Dense sample: the 2^17 values at each end and around zero, and
        // every 61st value in between (exhaustive takes 16 s in debug).
        const LIMIT: i32 = 1 << 23;
        let values: Vec<i32> = (-LIMIT..-LIMIT + (1 << 17))
            .chain((-LIMIT..LIMIT).step_by(61))
            .chain(-(1 << 17)..(1 << 17))
            .chain(LIMIT - (1 << 17)..LIMIT)
            .collect();
        let values = values.iter().copied();
        let le: Vec<u8> = values
            .clone()
            .flat_map(|v| {
                let b = v.to_le_bytes();
                [b[0], b[1], b[2]]
            })
            .collect();
        assert_round_trip(S24LE, &le);
        let s = dec(S24LE, &le);
        for (i, v) in values.clone().enumerate().step_by(97) {
            assert_eq!(s[i], v as f32 / 8_388_608.0, "value {v}");
        }
        let be: Vec<u8> = le
            .chunks_exact(3)
            .flat_map(|c| [c[2], c[1], c[0]])
            .collect();
        assert_round_trip(S24BE, &be);
        assert_eq!(dec(S24BE, &be), s);

        let le32: Vec<u8> = values.clone().flat_map(i32::to_le_bytes).collect();
        assert_round_trip(S24_32LE, &le32);
        assert_eq!(dec(S24_32LE, &le32), s);
        let be32: Vec<u8> = values.flat_map(i32::to_be_bytes).collect();
        assert_round_trip(S24_32BE, &be32);
        assert_eq!(dec(S24_32BE, &be32), s);
    }

    #[test]
    fn s24_known_bytes() {
        // 0x800000 is the most negative value: sign bit 23 extends.
        assert_eq!(dec(S24LE, &[0x00, 0x00, 0x80]), [-1.0]);
        assert_eq!(dec(S24BE, &[0x80, 0x00, 0x00]), [-1.0]);
        assert_eq!(dec(S24LE, &[0xFF, 0xFF, 0xFF]), [-1.0 / 8_388_608.0]);
        assert_eq!(dec(S24LE, &[0xFF, 0xFF, 0x7F]), [8_388_607.0 / 8_388_608.0]);
        // S24_32 ignores the top byte, whatever it holds.
        assert_eq!(dec(S24_32LE, &[0x00, 0x00, 0x80, 0x00]), [-1.0]);
        assert_eq!(dec(S24_32LE, &[0x00, 0x00, 0x40, 0xFF]), [0.5]);
        assert_eq!(
            dec(S24_32BE, &[0x12, 0xFF, 0xFF, 0xFF]),
            [-1.0 / 8_388_608.0]
        );
        // ...and encodes it as the sign extension.
        assert_eq!(enc(S24_32LE, &[-0.5]), [0x00, 0x00, 0xC0, 0xFF]);
        assert_eq!(enc(S24_32BE, &[0.5]), [0x00, 0x40, 0x00, 0x00]);
        assert_eq!(enc(S24LE, &[-0.5]), [0x00, 0x00, 0xC0]);
        assert_eq!(enc(S24BE, &[-0.5]), [0xC0, 0x00, 0x00]);
    }

    #[test]
    fn s32_known_values() {
        assert_eq!(dec(S32LE, &i32::MIN.to_le_bytes()), [-1.0]);
        assert_eq!(dec(S32BE, &(1i32 << 30).to_be_bytes()), [0.5]);
        assert_eq!(enc(S32LE, &[1.0]), i32::MAX.to_le_bytes());
        assert_eq!(enc(S32BE, &[-1.0]), i32::MIN.to_be_bytes());
        assert_eq!(enc(S32LE, &[0.25]), (1i32 << 29).to_le_bytes());
        // The largest value rounds to 1.0 in f32 and saturates back.
        assert_eq!(
            enc(S32LE, &dec(S32LE, &i32::MAX.to_le_bytes())),
            i32::MAX.to_le_bytes()
        );
    }

    #[test]
    fn clamping_and_nan() {
        let input = [
            1.0,
            -1.0,
            2.0,
            -2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        assert_eq!(enc(U8, &input), [255, 0, 255, 0, 255, 0, 128]);
        let s16: Vec<i16> = enc(S16LE, &input)
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(s16, [32767, -32768, 32767, -32768, 32767, -32768, 0]);
        let s24: Vec<i32> = enc(S24_32LE, &input)
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            s24,
            [8_388_607, -8_388_608, 8_388_607, -8_388_608, 8_388_607, -8_388_608, 0]
        );
        let s32: Vec<i32> = enc(S32BE, &input)
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            s32,
            [
                i32::MAX,
                i32::MIN,
                i32::MAX,
                i32::MIN,
                i32::MAX,
                i32::MIN,
                0
            ]
        );
        assert_eq!(enc(ULAW, &[f32::NAN]), [0xFF]);
        assert_eq!(enc(ALAW, &[f32::NAN]), [0xD5]);
    }

    #[test]
    fn rounding_is_to_nearest() {
        // 0.3 / 32768 rounds down, 0.7 / 32768 up, 0.5 / 32768 away from zero.
        let step = 1.0 / 32768.0;
        let v = [0.3 * step, 0.7 * step, 0.5 * step, -0.5 * step, -0.7 * step];
        let s16: Vec<i16> = enc(S16LE, &v)
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(s16, [0, 1, 1, -1, -1]);
        assert_eq!(
            enc(U8, &[0.4 / 128.0, 0.6 / 128.0, -0.6 / 128.0]),
            [128, 129, 127]
        );
    }

    #[test]
    fn float_special_values_are_bit_exact() {
        let bits = [
            0x8000_0000u32, // -0.0
            0x7FC0_0001,    // quiet NaN with payload
            0x7F80_0001,    // signalling NaN
            0xFFFF_FFFF,    // negative NaN, all payload bits
            0x7F80_0000,    // +inf
            0x0000_0001,    // smallest subnormal
            0x4000_0000,    // 2.0: no clamping
        ];
        let le: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let be: Vec<u8> = bits.iter().flat_map(|b| b.to_be_bytes()).collect();
        for (format, bytes) in [(FLOAT32LE, &le), (FLOAT32BE, &be)] {
            let s = dec(format, bytes);
            let got: Vec<u32> = s.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, bits, "format {format}");
            assert_eq!(&enc(format, &s), bytes, "format {format}");
        }
    }

    #[test]
    fn unknown_formats_give_silence() {
        for format in [13u8, 14, 100, 255].map(SampleFormat::from_wire) {
            assert_eq!(sample_size(format), None);
            let mut out = [1.0f32; 4];
            decode(format, &[1, 2, 3], &mut out);
            assert_eq!(out, [0.0; 4]);
            let mut bytes = [0xAAu8; 5];
            encode(format, &[0.5, 0.25], &mut bytes);
            assert_eq!(bytes, [0; 5]);
        }
    }

    #[test]
    fn empty_buffers() {
        for format in (0..=255u8).map(SampleFormat::from_wire) {
            decode(format, &[], &mut []);
            encode(format, &[], &mut []);
        }
    }

    #[test]
    fn silence_encodes_zero() {
        for format in SampleFormat::ALL {
            let bytes = enc(format, &[0.0, 0.0]);
            assert!(
                bytes.iter().all(|&b| b == silence_byte(format)),
                "format {format}"
            );
            assert!(dec(format, &bytes)
                .iter()
                .all(|&v| v.abs() <= 8.0 / 32768.0));
        }
    }

    #[test]
    fn lenient_length_mismatch_converts_the_common_part() {
        // 5 bytes of S16 for 4 samples: two samples convert, the rest is 0.
        let mut out = [9.0f32; 4];
        decode_lenient(S16LE, &[0x00, 0x40, 0x00, 0xC0, 0x11], &mut out);
        assert_eq!(out, [0.5, -0.5, 0.0, 0.0]);
        // More input than output: the output is filled, the rest ignored.
        let mut out = [9.0f32; 1];
        decode_lenient(U8, &[0, 255, 128], &mut out);
        assert_eq!(out, [-1.0]);
        // Encode: 2 samples into 7 bytes of U8 → 2 bytes and 5 of silence.
        let mut bytes = [0u8; 7];
        encode_lenient(U8, &[-1.0, 0.5], &mut bytes);
        assert_eq!(bytes, [0, 192, 128, 128, 128, 128, 128]);
        // 3 samples into 5 bytes of S16: two samples and one silent byte.
        let mut bytes = [0xAAu8; 5];
        encode_lenient(S16BE, &[0.5, 0.5, 0.5], &mut bytes);
        assert_eq!(bytes, [0x40, 0x00, 0x40, 0x00, 0x00]);
    }

    proptest! {
        #[test]
        fn float32_round_trip_any_bits(bits in proptest::collection::vec(any::<u32>(), 0..64)) {
            for format in [FLOAT32LE, FLOAT32BE] {
                let bytes: Vec<u8> = bits
                    .iter()
                    .flat_map(|b| if format == FLOAT32LE { b.to_le_bytes() } else { b.to_be_bytes() })
                    .collect();
                let s = dec(format, &bytes);
                prop_assert_eq!(s.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), bits.clone());
                prop_assert_eq!(enc(format, &s), bytes);
            }
        }

        #[test]
        fn s32_round_trip(v in any::<i32>()) {
            for format in [S32LE, S32BE] {
                let bytes = if format == S32LE { v.to_le_bytes() } else { v.to_be_bytes() };
                let back = enc(format, &dec(format, &bytes));
                let back: [u8; 4] = back.try_into().unwrap();
                let w = if format == S32LE { i32::from_le_bytes(back) } else { i32::from_be_bytes(back) };
                // Exact when the value fits the 24 bits of an f32
                // significand; otherwise within half a step of it.
                let significant = 32 - v.unsigned_abs().leading_zeros() - v.unsigned_abs().trailing_zeros();
                if v == 0 || significant <= 24 {
                    prop_assert_eq!(w, v);
                } else {
                    let step = 1i64 << (32 - v.unsigned_abs().leading_zeros() - 24);
                    prop_assert!((i64::from(w) - i64::from(v)).abs() <= step / 2, "{} → {}", v, w);
                }
            }
        }

        #[test]
        fn s32_exact_for_24_significant_bits(m in -(1i32 << 23)..(1i32 << 23), shift in 0u32..8) {
            let v = m << shift;
            let back = enc(S32LE, &dec(S32LE, &v.to_le_bytes()));
            prop_assert_eq!(back, v.to_le_bytes());
        }

        #[test]
        fn s24_32_top_byte_ignored(v in -(1i32 << 23)..(1i32 << 23), top in any::<u8>()) {
            let mut bytes = v.to_le_bytes();
            bytes[3] = top;
            let s = dec(S24_32LE, &bytes);
            prop_assert_eq!(s[0], v as f32 / 8_388_608.0);
            prop_assert_eq!(enc(S24_32LE, &s), v.to_le_bytes());
        }

        #[test]
        fn encode_is_monotonic_and_bounded(a in -2.0f32..2.0, b in -2.0f32..2.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            for format in [U8, S16LE, S24LE, S32LE, ALAW, ULAW] {
                let d = dec(format, &enc(format, &[lo, hi]));
                prop_assert!(d[0] <= d[1], "format {}: {} → {}, {} → {}", format, lo, d[0], hi, d[1]);
                // S32's largest value rounds to exactly 1.0 in f32.
                for d in d {
                    prop_assert!(d >= -1.0 && (d < 1.0 || format == S32LE && d == 1.0), "format {}: {}", format, d);
                }
            }
        }

        #[test]
        fn decode_encode_error_is_at_most_half_a_step(v in -1.0f32..1.0) {
            for (format, step) in [(U8, 1.0 / 128.0), (S16LE, 1.0 / 32768.0), (S24LE, 1.0 / 8_388_608.0)] {
                let d = dec(format, &enc(format, &[v]))[0];
                let limit = if v < 1.0 - step { step / 2.0 } else { step };
                prop_assert!((d - v).abs() <= limit * 1.0001, "format {}: {} → {}", format, v, d);
            }
        }

        #[test]
        fn lenient_never_panics(format in any::<u8>().prop_map(SampleFormat::from_wire), bytes in proptest::collection::vec(any::<u8>(), 0..40), n in 0usize..20) {
            let mut out = vec![7.0f32; n];
            decode_lenient(format, &bytes, &mut out);
            prop_assert!(out.iter().all(|v| !v.is_nan() || matches!(format, FLOAT32LE | FLOAT32BE)));
            let mut back = vec![0u8; bytes.len()];
            encode_lenient(format, &out, &mut back);
        }
    }
}
