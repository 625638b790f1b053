//! The signal and the DSP chain of the `mps2-an386` board test, shared
//! word for word by the firmware (target) and its `build.rs` (host), which
//! both include this file with `#[path]`. The host runs it at build time to
//! produce the expected output; the firmware runs it on the board.
//!
//! The generator is integer-based (an LCG whose top 24 bits are mapped to
//! f32 exactly), so both sides start from bit-identical samples.
#![allow(dead_code)]

use srb_dsp_sim::{Biquad, Coefficients, FilterKind, Gain};

/// Sample rate the filter is designed for.
pub const SAMPLE_RATE: f32 = 48_000.0;
/// Interleaved channels (stereo).
pub const CHANNELS: usize = 2;
/// Frames per period.
pub const FRAMES: usize = 64;
/// Periods the board test moves through the channel.
pub const PERIODS: usize = 64;
/// f32 samples per period.
pub const SAMPLES: usize = FRAMES * CHANNELS;
/// Bytes per period on the wire (raw little-endian f32).
pub const PERIOD_BYTES: usize = SAMPLES * 4;
/// The LCG's seed.
pub const SEED: u32 = 0x5EED_0001;
/// The gain stage: -6 dB (a `Gain` starts at its level; the ramp applies to
/// later changes).
pub const GAIN_DB: f32 = -6.0;
/// Ramp length of the gain stage in frames, for later level changes.
pub const RAMP_FRAMES: u32 = 4 * FRAMES as u32;
/// The low-pass corner and Q.
pub const LOWPASS_HZ: f32 = 2_000.0;
/// Q of the low-pass.
pub const LOWPASS_Q: f32 = 0.707_106_8;

/// Numerical Recipes' LCG; each sample is the top 24 bits of the state as a
/// signed integer, scaled by 2^-24 (exact in f32): a value in [-0.5, 0.5).
#[derive(Debug, Clone)]
pub struct Lcg(u32);

impl Lcg {
    /// A generator at `seed`.
    pub const fn new(seed: u32) -> Self {
        Self(seed)
    }

    /// The next sample.
    pub fn next_sample(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = (self.0 >> 8) as i32 - (1 << 23);
        v as f32 * (1.0 / 16_777_216.0)
    }

    /// Fills one period of interleaved samples.
    pub fn fill(&mut self, buf: &mut [f32]) {
        for s in buf {
            *s = self.next_sample();
        }
    }
}

/// Gain, then a low-pass biquad, on interleaved stereo.
#[derive(Debug)]
pub struct Chain {
    gain: Gain,
    lowpass: Biquad,
}

impl Chain {
    /// The chain with the constants above; panics if the design fails.
    pub fn new() -> Self {
        let Ok(coeffs) = Coefficients::design(
            FilterKind::LowPass,
            SAMPLE_RATE,
            LOWPASS_HZ,
            LOWPASS_Q,
            0.0,
        ) else {
            panic!("low-pass design failed");
        };
        let Ok(lowpass) = Biquad::new(coeffs, CHANNELS) else {
            panic!("biquad rejected its coefficients");
        };
        Self {
            gain: Gain::new(GAIN_DB, RAMP_FRAMES),
            lowpass,
        }
    }

    /// Processes one period in place.
    pub fn process(&mut self, buf: &mut [f32]) {
        self.gain.process(buf, CHANNELS);
        self.lowpass.process(buf);
    }
}

/// FNV-1a over the samples' bit patterns: a per-period checksum to log.
pub fn checksum(samples: impl IntoIterator<Item = u32>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for s in samples {
        for b in s.to_le_bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h
}
