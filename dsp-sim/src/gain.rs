//! Gain with linear smoothing.
//!
//! A [`Gain`] multiplies every sample by a factor given in dB. Jumping from
//! one factor to another mid-stream makes an audible click ("zipper noise"),
//! so a new target set with [`Gain::set_db`] is reached by a straight-line
//! ramp **in the linear domain** over `ramp_frames` frames. Frame `k` of the
//! ramp (counting from 1) gets `start + (target - start) * k / ramp_frames`,
//! so the last frame of the ramp gets exactly `target`. All channels of a
//! frame share one factor, so a stereo image does not wobble during a ramp.
//!
//! Conversion: `linear = 10^(dB / 20)`. So 0 dB is exactly `1.0` (and leaves
//! samples bit-identical), −6.0206 dB is 0.5 and `-inf` dB is silence.

/// The highest gain accepted, in dB; larger values (and `+inf`) are clamped
/// to it so the linear factor always stays finite.
pub const MAX_GAIN_DB: f32 = 60.0;

/// Converts dB to a linear factor. NaN means silence (fail quiet, not loud);
/// values above [`MAX_GAIN_DB`] are clamped; `-inf` gives `0.0`.
fn db_to_linear(gain_db: f32) -> f32 {
    if gain_db.is_nan() {
        return 0.0;
    }
    let db = if gain_db > MAX_GAIN_DB {
        MAX_GAIN_DB
    } else {
        gain_db
    };
    libm::pow(10.0, f64::from(db) / 20.0) as f32
}

/// A gain in dB, ramped linearly to each new target.
#[derive(Clone, Debug, PartialEq)]
pub struct Gain {
    /// The factor applied to the most recent frame.
    current: f32,
    /// The factor the running ramp started from.
    start: f32,
    /// The factor the running ramp ends at.
    target: f32,
    /// Ramp length in frames; 0 means every change is a jump.
    ramp_frames: u32,
    /// Frames of the running ramp already processed; `== ramp_frames` when
    /// no ramp is running.
    pos: u32,
}

impl Gain {
    /// A gain that starts **at** `gain_db` (no ramp at start) and ramps over
    /// `ramp_frames` frames to each later target (`0` = jump at once).
    ///
    /// `gain_db` may be `-inf` (silence); NaN is treated as silence and
    /// values above [`MAX_GAIN_DB`] are clamped.
    pub fn new(gain_db: f32, ramp_frames: u32) -> Gain {
        let g = db_to_linear(gain_db);
        Gain {
            current: g,
            start: g,
            target: g,
            ramp_frames,
            pos: ramp_frames,
        }
    }

    /// Sets a new target in dB; the gain ramps to it from its current value
    /// over the ramp length given to [`Gain::new`]. A ramp already running is
    /// restarted from where it is, so there is never a jump.
    pub fn set_db(&mut self, gain_db: f32) {
        let t = db_to_linear(gain_db);
        self.start = self.current;
        self.target = t;
        if self.ramp_frames == 0 || t == self.current {
            self.current = t;
            self.start = t;
            self.pos = self.ramp_frames;
        } else {
            self.pos = 0;
        }
    }

    /// Applies the gain to the interleaved `buf` of `channels` channels.
    ///
    /// Each frame advances a running ramp by one step; all samples of a frame
    /// get the same factor. `channels == 0` is a no-op, and a trailing
    /// partial frame is left untouched. At unity gain with no ramp running
    /// the samples are not touched at all (bit-identical output).
    pub fn process(&mut self, buf: &mut [f32], channels: usize) {
        if channels == 0 {
            return;
        }
        for frame in buf.chunks_exact_mut(channels) {
            if self.pos < self.ramp_frames {
                self.pos += 1;
                self.current = if self.pos == self.ramp_frames {
                    self.target
                } else {
                    let t = self.pos as f32 / self.ramp_frames as f32;
                    self.start + (self.target - self.start) * t
                };
            } else if self.current == 1.0 {
                continue;
            }
            let g = self.current;
            for s in frame.iter_mut() {
                *s *= g;
            }
        }
    }

    /// The linear factor applied to the most recent frame (the start value
    /// before any frame was processed).
    pub fn current_linear(&self) -> f32 {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn test_signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn zero_db_leaves_samples_bit_identical() {
        let mut buf = test_signal(64);
        buf[3] = f32::from_bits(0x7fa0_0001); // a signalling NaN survives too
        let before = buf.clone();
        let mut g = Gain::new(0.0, 16);
        assert_eq!(g.current_linear(), 1.0);
        g.process(&mut buf, 2);
        for (a, b) in before.iter().zip(buf.iter()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn minus_6_0206_db_halves_within_one_ulp() {
        let g0 = Gain::new(-6.0206, 0);
        let ulps = (g0.current_linear().to_bits() as i64 - 0.5f32.to_bits() as i64).abs();
        assert!(
            ulps <= 1,
            "factor {} is {ulps} ulp from 0.5",
            g0.current_linear()
        );
        let mut g = g0.clone();
        let mut buf = test_signal(32);
        let before = buf.clone();
        g.process(&mut buf, 1);
        for (a, b) in before.iter().zip(buf.iter()) {
            let half = a * 0.5;
            let d = (b.to_bits() as i64 - half.to_bits() as i64).abs();
            assert!(d <= 1, "{a} -> {b}, expected {half}");
        }
    }

    #[test]
    fn ramp_is_linear_and_hits_the_target_exactly_at_the_end() {
        let ramp = 10u32;
        let mut g = Gain::new(0.0, ramp);
        g.set_db(-20.0);
        let target = libm::pow(10.0, -1.0) as f32;
        // Stereo ones: each frame shows the factor applied to it.
        let mut buf = [1.0f32; 2 * 12];
        g.process(&mut buf, 2);
        for k in 0..12 {
            let (l, r) = (buf[2 * k], buf[2 * k + 1]);
            assert_eq!(l.to_bits(), r.to_bits(), "channels share a factor");
            if k + 1 >= ramp as usize {
                assert_eq!(l, target, "frame {k} is at the target exactly");
            } else {
                let expect = 1.0 + (target - 1.0) * ((k + 1) as f32 / ramp as f32);
                assert_eq!(l, expect, "frame {k}");
            }
        }
        assert_eq!(g.current_linear(), target);
    }

    #[test]
    fn ramp_continues_across_buffers_and_restarts_from_where_it_is() {
        let mut g = Gain::new(0.0, 4);
        g.set_db(f32::NEG_INFINITY);
        let mut a = [1.0f32; 2];
        g.process(&mut a, 1);
        assert_eq!(a, [0.75, 0.5]);
        g.set_db(0.0); // back up from 0.5 over 4 frames
        let mut b = [1.0f32; 5];
        g.process(&mut b, 1);
        assert_eq!(b, [0.625, 0.75, 0.875, 1.0, 1.0]);
    }

    #[test]
    fn zero_ramp_jumps() {
        let mut g = Gain::new(0.0, 0);
        g.set_db(-6.0206);
        let mut buf = [1.0f32, 1.0];
        g.process(&mut buf, 1);
        assert_eq!(buf, [0.5, 0.5]);
    }

    #[test]
    fn zero_channels_is_a_no_op_and_partial_frame_untouched() {
        let mut g = Gain::new(-6.0206, 0);
        let mut buf = [1.0f32; 5];
        g.process(&mut buf, 0);
        assert_eq!(buf, [1.0; 5]);
        g.process(&mut buf, 2);
        assert_eq!(buf, [0.5, 0.5, 0.5, 0.5, 1.0]);
    }

    #[test]
    fn bad_gain_values_never_make_a_non_finite_factor() {
        assert_eq!(Gain::new(f32::NAN, 0).current_linear(), 0.0);
        assert_eq!(Gain::new(f32::NEG_INFINITY, 0).current_linear(), 0.0);
        let loud = Gain::new(f32::INFINITY, 0).current_linear();
        assert_eq!(loud, Gain::new(MAX_GAIN_DB, 0).current_linear());
        assert!(loud.is_finite());
    }
}
