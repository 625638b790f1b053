//! Biquad filters: RBJ cookbook design and a transposed direct form II
//! kernel.
//!
//! A biquad is the second-order IIR filter
//!
//! ```text
//!         b0 + b1 z^-1 + b2 z^-2
//! H(z) = ------------------------
//!          1 + a1 z^-1 + a2 z^-2
//! ```
//!
//! [`Coefficients::design`] computes `b0..a2` from a filter kind, centre or
//! corner frequency, Q and (for peaking and shelving filters) a gain, using
//! the formulas of Robert Bristow-Johnson's "Audio EQ Cookbook", evaluated in
//! `f64` and rounded to `f32` after dividing by `a0`. With
//! `w0 = 2π f0 / fs`, `α = sin(w0) / (2Q)` and `A = 10^(gain_dB / 40)`:
//!
//! | kind | at `f0` | notes |
//! | --- | --- | --- |
//! | [`FilterKind::LowPass`], [`FilterKind::HighPass`] | `20·log10(Q)` dB (−3.01 dB at Q = 0.7071) | gain ignored |
//! | [`FilterKind::BandPass`] | 0 dB (constant peak gain variant) | gain ignored |
//! | [`FilterKind::Peaking`] | `gain_db` | |
//! | [`FilterKind::LowShelf`], [`FilterKind::HighShelf`] | `gain_db / 2` | Q = 0.7071 is the cookbook's shelf slope S = 1 |
//!
//! [`Biquad`] runs the filter in transposed direct form II, which needs two
//! state values per channel and behaves well in floating point:
//!
//! ```text
//! y  = b0·x + s1
//! s1 = b1·x − a1·y + s2
//! s2 = b2·x − a2·y
//! ```
//!
//! After every sample it checks `y`, `s1` and `s2`: if any is NaN or
//! infinite (a bad sample from upstream, or an unstable filter) that
//! channel's state is reset to zero, the sample's output is `0.0`, and the
//! event is counted. State values smaller than `1e-30` in magnitude are
//! flushed to zero so decaying tails never become subnormal.

use core::f64::consts::PI;
use core::fmt;

/// The most channels a [`Biquad`] or [`crate::Meter`] handles (state is a
/// fixed-size array, no allocation).
pub const MAX_CHANNELS: usize = 8;

/// State values with a smaller magnitude than this are flushed to zero.
const FLUSH_BELOW: f32 = 1e-30;

/// The filter shapes of the RBJ cookbook that [`Coefficients::design`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterKind {
    /// Second-order low-pass; `gain_db` is ignored.
    LowPass,
    /// Second-order high-pass; `gain_db` is ignored.
    HighPass,
    /// Band-pass with 0 dB peak gain at `freq_hz`; `gain_db` is ignored.
    BandPass,
    /// Peaking EQ: `gain_db` at `freq_hz`, 0 dB far away.
    Peaking,
    /// Low shelf: `gain_db` below `freq_hz`, 0 dB above.
    LowShelf,
    /// High shelf: `gain_db` above `freq_hz`, 0 dB below.
    HighShelf,
}

/// Why a filter (or meter) could not be built. Each variant names the bad
/// parameter and carries the value that was given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DesignError {
    /// The sample rate is not finite and positive.
    BadSampleRate {
        /// The value given.
        sample_rate: f32,
    },
    /// The frequency is not strictly between 0 and the Nyquist frequency.
    BadFrequency {
        /// The value given.
        freq_hz: f32,
        /// Half the sample rate: the (exclusive) upper limit.
        nyquist_hz: f32,
    },
    /// Q is not finite and positive.
    BadQ {
        /// The value given.
        q: f32,
    },
    /// The gain is not finite.
    BadGain {
        /// The value given.
        gain_db: f32,
    },
    /// The channel count is not in `1..=MAX_CHANNELS`.
    BadChannels {
        /// The value given.
        channels: usize,
    },
    /// The coefficients are not all finite: either given that way to
    /// [`Biquad::new`], or the design overflowed `f32` (an extreme gain).
    NonFiniteCoefficients,
}

impl fmt::Display for DesignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DesignError::BadSampleRate { sample_rate } => {
                write!(f, "sample rate {sample_rate} is not finite and positive")
            }
            DesignError::BadFrequency {
                freq_hz,
                nyquist_hz,
            } => write!(
                f,
                "frequency {freq_hz} Hz is not between 0 and {nyquist_hz} Hz (Nyquist)"
            ),
            DesignError::BadQ { q } => write!(f, "Q {q} is not finite and positive"),
            DesignError::BadGain { gain_db } => write!(f, "gain {gain_db} dB is not finite"),
            DesignError::BadChannels { channels } => {
                write!(f, "{channels} channels is not in 1..={MAX_CHANNELS}")
            }
            DesignError::NonFiniteCoefficients => {
                f.write_str("filter coefficients are not all finite")
            }
        }
    }
}

/// Biquad coefficients, normalised so that `a0 == 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    /// Feed-forward coefficient of `x[n]`.
    pub b0: f32,
    /// Feed-forward coefficient of `x[n-1]`.
    pub b1: f32,
    /// Feed-forward coefficient of `x[n-2]`.
    pub b2: f32,
    /// Feedback coefficient of `y[n-1]` (enters with a minus sign).
    pub a1: f32,
    /// Feedback coefficient of `y[n-2]` (enters with a minus sign).
    pub a2: f32,
}

impl Coefficients {
    /// Designs a filter from the RBJ cookbook formulas (see the module docs).
    ///
    /// Requires a finite `sample_rate > 0`, `0 < freq_hz < sample_rate / 2`,
    /// a finite `q > 0` and a finite `gain_db` (checked for every kind, even
    /// those that ignore it). Returns the [`DesignError`] naming the first
    /// bad parameter, or [`DesignError::NonFiniteCoefficients`] if an extreme
    /// gain overflows `f32`.
    pub fn design(
        kind: FilterKind,
        sample_rate: f32,
        freq_hz: f32,
        q: f32,
        gain_db: f32,
    ) -> Result<Coefficients, DesignError> {
        if !(sample_rate.is_finite() && sample_rate > 0.0) {
            return Err(DesignError::BadSampleRate { sample_rate });
        }
        let nyquist_hz = sample_rate / 2.0;
        if !(freq_hz.is_finite() && freq_hz > 0.0 && freq_hz < nyquist_hz) {
            return Err(DesignError::BadFrequency {
                freq_hz,
                nyquist_hz,
            });
        }
        if !(q.is_finite() && q > 0.0) {
            return Err(DesignError::BadQ { q });
        }
        if !gain_db.is_finite() {
            return Err(DesignError::BadGain { gain_db });
        }

        let w0 = 2.0 * PI * f64::from(freq_hz) / f64::from(sample_rate);
        let (sin_w0, cos_w0) = (libm::sin(w0), libm::cos(w0));
        let alpha = sin_w0 / (2.0 * f64::from(q));
        let a = libm::pow(10.0, f64::from(gain_db) / 40.0);
        let sqrt_a_alpha_2 = 2.0 * libm::sqrt(a) * alpha;

        // [b0, b1, b2, a0, a1, a2]
        let raw: [f64; 6] = match kind {
            FilterKind::LowPass => {
                let k = 1.0 - cos_w0;
                [k / 2.0, k, k / 2.0, 1.0 + alpha, -2.0 * cos_w0, 1.0 - alpha]
            }
            FilterKind::HighPass => {
                let k = 1.0 + cos_w0;
                [
                    k / 2.0,
                    -k,
                    k / 2.0,
                    1.0 + alpha,
                    -2.0 * cos_w0,
                    1.0 - alpha,
                ]
            }
            FilterKind::BandPass => [alpha, 0.0, -alpha, 1.0 + alpha, -2.0 * cos_w0, 1.0 - alpha],
            FilterKind::Peaking => [
                1.0 + alpha * a,
                -2.0 * cos_w0,
                1.0 - alpha * a,
                1.0 + alpha / a,
                -2.0 * cos_w0,
                1.0 - alpha / a,
            ],
            FilterKind::LowShelf => {
                let (ap1, am1) = (a + 1.0, a - 1.0);
                [
                    a * (ap1 - am1 * cos_w0 + sqrt_a_alpha_2),
                    2.0 * a * (am1 - ap1 * cos_w0),
                    a * (ap1 - am1 * cos_w0 - sqrt_a_alpha_2),
                    ap1 + am1 * cos_w0 + sqrt_a_alpha_2,
                    -2.0 * (am1 + ap1 * cos_w0),
                    ap1 + am1 * cos_w0 - sqrt_a_alpha_2,
                ]
            }
            FilterKind::HighShelf => {
                let (ap1, am1) = (a + 1.0, a - 1.0);
                [
                    a * (ap1 + am1 * cos_w0 + sqrt_a_alpha_2),
                    -2.0 * a * (am1 + ap1 * cos_w0),
                    a * (ap1 + am1 * cos_w0 - sqrt_a_alpha_2),
                    ap1 - am1 * cos_w0 + sqrt_a_alpha_2,
                    2.0 * (am1 - ap1 * cos_w0),
                    ap1 - am1 * cos_w0 - sqrt_a_alpha_2,
                ]
            }
        };
        let [b0, b1, b2, a0, a1, a2] = raw;
        let c = Coefficients {
            b0: (b0 / a0) as f32,
            b1: (b1 / a0) as f32,
            b2: (b2 / a0) as f32,
            a1: (a1 / a0) as f32,
            a2: (a2 / a0) as f32,
        };
        if c.all_finite() {
            Ok(c)
        } else {
            Err(DesignError::NonFiniteCoefficients)
        }
    }

    /// The analytic magnitude response `|H(e^jω)|` in dB at `freq_hz`, with
    /// `ω = 2π freq_hz / sample_rate`, evaluated in `f64`.
    ///
    /// Returns `-inf` at an exact zero of the response and NaN if the inputs
    /// or coefficients are not finite. Never panics.
    pub fn magnitude_db(&self, sample_rate: f32, freq_hz: f32) -> f32 {
        let w = 2.0 * PI * f64::from(freq_hz) / f64::from(sample_rate);
        let (c1, s1) = (libm::cos(w), libm::sin(w));
        let (c2, s2) = (libm::cos(2.0 * w), libm::sin(2.0 * w));
        let [b0, b1, b2, a1, a2] = [self.b0, self.b1, self.b2, self.a1, self.a2].map(f64::from);
        // e^{-jw} = cos w - j sin w
        let num_re = b0 + b1 * c1 + b2 * c2;
        let num_im = -(b1 * s1 + b2 * s2);
        let den_re = 1.0 + a1 * c1 + a2 * c2;
        let den_im = -(a1 * s1 + a2 * s2);
        let num = num_re * num_re + num_im * num_im;
        let den = den_re * den_re + den_im * den_im;
        (10.0 * libm::log10(num / den)) as f32
    }

    fn all_finite(&self) -> bool {
        [self.b0, self.b1, self.b2, self.a1, self.a2]
            .iter()
            .all(|v| v.is_finite())
    }
}

/// A biquad filter over interleaved frames, with one state per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Biquad {
    c: Coefficients,
    channels: usize,
    /// `[s1, s2]` per channel; only the first `channels` entries are used.
    state: [[f32; 2]; MAX_CHANNELS],
    nonfinite_resets: u32,
}

/// Flushes values too small to matter to exact zero (no subnormals).
#[inline]
fn flush(v: f32) -> f32 {
    if v > -FLUSH_BELOW && v < FLUSH_BELOW {
        0.0
    } else {
        v
    }
}

impl Biquad {
    /// A filter with coefficients `c` for `channels` interleaved channels,
    /// state zeroed.
    ///
    /// Fails with [`DesignError::BadChannels`] unless
    /// `1 <= channels <= MAX_CHANNELS`, and with
    /// [`DesignError::NonFiniteCoefficients`] if a coefficient is NaN or
    /// infinite.
    pub fn new(c: Coefficients, channels: usize) -> Result<Biquad, DesignError> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(DesignError::BadChannels { channels });
        }
        if !c.all_finite() {
            return Err(DesignError::NonFiniteCoefficients);
        }
        Ok(Biquad {
            c,
            channels,
            state: [[0.0; 2]; MAX_CHANNELS],
            nonfinite_resets: 0,
        })
    }

    /// Filters the interleaved `buf` in place. A trailing partial frame is
    /// left untouched.
    ///
    /// A sample whose output or new state is NaN or infinite is replaced by
    /// `0.0`, its channel's state is reset, and the event is counted in
    /// [`Biquad::nonfinite_resets`].
    pub fn process(&mut self, buf: &mut [f32]) {
        let Coefficients { b0, b1, b2, a1, a2 } = self.c;
        for frame in buf.chunks_exact_mut(self.channels) {
            for (x, st) in frame.iter_mut().zip(self.state.iter_mut()) {
                let xin = *x;
                let y = b0 * xin + st[0];
                let s1 = b1 * xin - a1 * y + st[1];
                let s2 = b2 * xin - a2 * y;
                if y.is_finite() && s1.is_finite() && s2.is_finite() {
                    *st = [flush(s1), flush(s2)];
                    *x = y;
                } else {
                    *st = [0.0; 2];
                    *x = 0.0;
                    self.nonfinite_resets = self.nonfinite_resets.saturating_add(1);
                }
            }
        }
    }

    /// Zeroes the state of every channel (the reset counter is kept).
    pub fn reset(&mut self) {
        self.state = [[0.0; 2]; MAX_CHANNELS];
    }

    /// How many times a NaN or infinity in the input or state forced a
    /// channel's state to be reset (saturates at `u32::MAX`).
    pub fn nonfinite_resets(&self) -> u32 {
        self.nonfinite_resets
    }

    /// The coefficients this filter runs with.
    pub fn coefficients(&self) -> Coefficients {
        self.c
    }

    /// The number of interleaved channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const SR: f32 = 48_000.0;
    /// Q = 1/√2 ≈ 0.7071: maximally flat (Butterworth) low/high-pass.
    const BUTTERWORTH_Q: f32 = core::f32::consts::FRAC_1_SQRT_2;

    /// Runs a unit sine at `freq_hz` (integer, so 1 s windows hold whole
    /// cycles) through a fresh filter on `channels` channels: 1 s to settle,
    /// then the gain in dB from out/in RMS over the next second, per channel.
    fn measured_db(c: Coefficients, freq_hz: f32, channels: usize) -> Vec<f64> {
        let mut bq = Biquad::new(c, channels).unwrap();
        let n = SR as usize;
        let sine: Vec<f32> = (0..2 * n)
            .map(|i| {
                // Reduce the phase to one cycle exactly in integers first.
                let k = (i as u64 * freq_hz as u64) % SR as u64;
                libm::sin(2.0 * core::f64::consts::PI * k as f64 / f64::from(SR)) as f32
            })
            .collect();
        let mut buf: Vec<f32> = sine
            .iter()
            .flat_map(|&s| core::iter::repeat_n(s, channels))
            .collect();
        bq.process(&mut buf);
        (0..channels)
            .map(|ch| {
                let (mut e_in, mut e_out) = (0.0f64, 0.0f64);
                for i in n..2 * n {
                    e_in += f64::from(sine[i]).powi(2);
                    e_out += f64::from(buf[i * channels + ch]).powi(2);
                }
                10.0 * libm::log10(e_out / e_in)
            })
            .collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// (kind, f0, Q, gain, closed-form dB at f0)
    fn cases() -> [(FilterKind, f32, f32, f32, f64); 8] {
        let q = BUTTERWORTH_Q;
        let q_db = 20.0 * libm::log10(f64::from(q));
        [
            (FilterKind::LowPass, 1000.0, q, 0.0, q_db),
            (
                FilterKind::LowPass,
                3000.0,
                2.0,
                0.0,
                20.0 * libm::log10(2.0),
            ),
            (FilterKind::HighPass, 80.0, q, 0.0, q_db),
            (FilterKind::BandPass, 1000.0, 2.0, 0.0, 0.0),
            (FilterKind::Peaking, 1000.0, 1.0, 3.0, 3.0),
            (FilterKind::Peaking, 5000.0, 4.0, -12.0, -12.0),
            (FilterKind::LowShelf, 200.0, q, 4.0, 2.0),
            (FilterKind::HighShelf, 6000.0, q, -3.0, -1.5),
        ]
    }

    #[test]
    fn closed_form_value_at_f0_for_every_kind() {
        assert!(q_db_check());
        for (kind, f0, q, g, expect) in cases() {
            let c = Coefficients::design(kind, SR, f0, q, g).unwrap();
            let analytic = f64::from(c.magnitude_db(SR, f0));
            assert!(
                close(analytic, expect, 0.01),
                "{kind:?} at f0: analytic {analytic} dB, closed form {expect} dB"
            );
            let measured = measured_db(c, f0, 1)[0];
            assert!(
                close(measured, expect, 0.01),
                "{kind:?} at f0: measured {measured} dB, closed form {expect} dB"
            );
        }
    }

    /// The −3.01 dB of a Butterworth (Q = 1/√2) low-pass at f0, stated outright.
    fn q_db_check() -> bool {
        let c = Coefficients::design(FilterKind::LowPass, SR, 1000.0, BUTTERWORTH_Q, 0.0).unwrap();
        close(f64::from(c.magnitude_db(SR, 1000.0)), -3.0103, 0.001)
    }

    #[test]
    fn measured_response_matches_analytic_curve_at_many_frequencies() {
        let freqs = [50.0f32, 200.0, 1000.0, 2500.0, 7000.0, 15000.0];
        for (kind, f0, q, g, _) in cases() {
            let c = Coefficients::design(kind, SR, f0, q, g).unwrap();
            for &f in &freqs {
                let analytic = f64::from(c.magnitude_db(SR, f));
                let measured = measured_db(c, f, 1)[0];
                assert!(
                    close(measured, analytic, 0.01),
                    "{kind:?} f0={f0} at {f} Hz: measured {measured}, analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn far_from_f0_shapes_are_right() {
        let lp = Coefficients::design(FilterKind::LowPass, SR, 1000.0, BUTTERWORTH_Q, 0.0).unwrap();
        assert!(close(f64::from(lp.magnitude_db(SR, 10.0)), 0.0, 0.01));
        assert!(lp.magnitude_db(SR, 10_000.0) < -35.0);
        let hs =
            Coefficients::design(FilterKind::HighShelf, SR, 1000.0, BUTTERWORTH_Q, 6.0).unwrap();
        assert!(close(f64::from(hs.magnitude_db(SR, 20_000.0)), 6.0, 0.05));
        assert!(close(f64::from(hs.magnitude_db(SR, 20.0)), 0.0, 0.01));
        let ls =
            Coefficients::design(FilterKind::LowShelf, SR, 1000.0, BUTTERWORTH_Q, 6.0).unwrap();
        assert!(close(f64::from(ls.magnitude_db(SR, 20.0)), 6.0, 0.01));
    }

    #[test]
    fn channels_are_independent() {
        let c = Coefficients::design(FilterKind::Peaking, SR, 1000.0, 1.0, 6.0).unwrap();
        let mut bq = Biquad::new(c, 3).unwrap();
        // Channel 0 gets an impulse, 1 silence, 2 a scaled impulse.
        let mut buf = std::vec![0.0f32; 3 * 64];
        buf[0] = 1.0;
        buf[2] = -0.5;
        bq.process(&mut buf);
        for f in 0..64 {
            assert_eq!(buf[3 * f + 1], 0.0);
            assert_eq!(buf[3 * f + 2], -0.5 * buf[3 * f]);
        }
        let measured = measured_db(c, 1000.0, 4);
        assert!(measured.iter().all(|&m| close(m, 6.0, 0.01)));
    }

    #[test]
    fn trailing_partial_frame_is_untouched() {
        let c = Coefficients::design(FilterKind::LowPass, SR, 1000.0, BUTTERWORTH_Q, 0.0).unwrap();
        let mut bq = Biquad::new(c, 2).unwrap();
        let mut buf = [1.0f32, 1.0, 1.0, 1.0, 42.0];
        bq.process(&mut buf);
        assert_eq!(buf[4], 42.0);
        assert_ne!(buf[0], 1.0);
    }

    #[test]
    fn nan_and_inf_reset_the_channel_and_are_counted() {
        let c = Coefficients::design(FilterKind::LowPass, SR, 1000.0, BUTTERWORTH_Q, 0.0).unwrap();
        let mut bq = Biquad::new(c, 2).unwrap();
        let mut warm = [0.5f32; 2 * 32];
        bq.process(&mut warm);
        let mut buf = [0.5f32, 0.5, f32::NAN, 0.5, 0.5, 0.5, 0.5, 0.5];
        bq.process(&mut buf);
        assert_eq!(buf[2], 0.0, "the NaN sample is output as 0.0");
        assert_eq!(bq.nonfinite_resets(), 1);
        assert!(buf.iter().all(|v| v.is_finite()));
        // The other channel was not disturbed: it matches a clean run.
        let mut clean = Biquad::new(c, 2).unwrap();
        let mut warm2 = [0.5f32; 2 * 32];
        clean.process(&mut warm2);
        let mut buf2 = [0.5f32; 8];
        clean.process(&mut buf2);
        for f in 0..4 {
            assert_eq!(buf[2 * f + 1], buf2[2 * f + 1]);
        }
        // Keeps producing finite output afterwards, and recovers to steady state.
        let mut more = [0.5f32; 2 * 2000];
        bq.process(&mut more);
        assert!(more.iter().all(|v| v.is_finite()));
        assert!((more[more.len() - 2] - 0.5).abs() < 1e-4);

        let mut inf = [f32::INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        bq.process(&mut inf);
        assert_eq!(bq.nonfinite_resets(), 3);
        assert_eq!(inf[0], 0.0);
    }

    #[test]
    fn unstable_coefficients_blowing_up_are_caught_not_propagated() {
        // Poles outside the unit circle: the state grows until it overflows.
        let c = Coefficients {
            b0: 1.0,
            b1: 0.0,
            b2: 0.0,
            a1: -2.5,
            a2: 1.0,
        };
        let mut bq = Biquad::new(c, 1).unwrap();
        let mut buf = std::vec![0.0f32; 4000];
        buf[0] = 1.0;
        bq.process(&mut buf);
        assert!(buf.iter().all(|v| v.is_finite()));
        assert!(bq.nonfinite_resets() >= 1);
    }

    #[test]
    fn decaying_state_is_flushed_to_exact_zero() {
        let c = Coefficients::design(FilterKind::LowPass, SR, 100.0, BUTTERWORTH_Q, 0.0).unwrap();
        let mut bq = Biquad::new(c, 1).unwrap();
        let mut buf = std::vec![0.0f32; 20_000];
        buf[0] = 1.0;
        // Process sample by sample to look at the state after each one.
        for s in buf.chunks_exact_mut(1) {
            bq.process(s);
            for &v in &bq.state[0] {
                assert!(v == 0.0 || v.abs() >= FLUSH_BELOW, "state {v} not flushed");
                assert!(!v.is_subnormal());
            }
        }
        assert_eq!(bq.state[0], [0.0, 0.0], "tail has reached exact zero");
        assert_eq!(*buf.last().unwrap(), 0.0);
        // Subnormal input does not leave subnormal state either.
        let mut tiny = [1e-40f32; 16];
        bq.process(&mut tiny);
        assert_eq!(bq.state[0], [0.0, 0.0]);
    }

    #[test]
    fn reset_zeroes_state_but_keeps_the_counter() {
        let c = Coefficients::design(FilterKind::HighPass, SR, 500.0, BUTTERWORTH_Q, 0.0).unwrap();
        let mut bq = Biquad::new(c, 1).unwrap();
        let mut a = [1.0f32, f32::NAN, 0.3, -0.2];
        bq.process(&mut a);
        bq.reset();
        assert_eq!(bq.state[0], [0.0; 2]);
        assert_eq!(bq.nonfinite_resets(), 1);
        let mut fresh = Biquad::new(c, 1).unwrap();
        let (mut x, mut y) = ([0.25f32, -0.5, 0.75], [0.25f32, -0.5, 0.75]);
        bq.process(&mut x);
        fresh.process(&mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn every_design_error_variant() {
        use FilterKind::*;
        let d = Coefficients::design;
        for sr in [0.0f32, -48_000.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                d(LowPass, sr, 1000.0, 0.7, 0.0),
                Err(DesignError::BadSampleRate { .. })
            ));
        }
        for f in [0.0f32, -1.0, 24_000.0, 30_000.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                d(Peaking, SR, f, 0.7, 0.0),
                Err(DesignError::BadFrequency { .. })
            ));
        }
        assert_eq!(
            d(LowPass, SR, 24_000.0, 0.7, 0.0),
            Err(DesignError::BadFrequency {
                freq_hz: 24_000.0,
                nyquist_hz: 24_000.0
            })
        );
        for q in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                d(BandPass, SR, 1000.0, q, 0.0),
                Err(DesignError::BadQ { .. })
            ));
        }
        for g in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(matches!(
                d(LowShelf, SR, 1000.0, 0.7, g),
                Err(DesignError::BadGain { .. })
            ));
        }
        assert_eq!(
            d(Peaking, SR, 1000.0, 0.7, 2000.0),
            Err(DesignError::NonFiniteCoefficients)
        );
        let ok = d(HighShelf, SR, 1000.0, 0.7, 1.0).unwrap();
        assert_eq!(
            Biquad::new(ok, 0),
            Err(DesignError::BadChannels { channels: 0 })
        );
        assert_eq!(
            Biquad::new(ok, MAX_CHANNELS + 1),
            Err(DesignError::BadChannels {
                channels: MAX_CHANNELS + 1
            })
        );
        assert!(Biquad::new(ok, MAX_CHANNELS).is_ok());
        let bad = Coefficients { a2: f32::NAN, ..ok };
        assert_eq!(Biquad::new(bad, 1), Err(DesignError::NonFiniteCoefficients));
        assert_eq!(
            std::format!("{}", DesignError::BadChannels { channels: 9 }),
            "9 channels is not in 1..=8"
        );
    }
}
