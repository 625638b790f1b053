//! Level meter: per-channel peak and RMS.
//!
//! A [`Meter`] accumulates, per channel, the largest absolute sample (peak)
//! and the sum of squares (for RMS) over everything it was fed since it was
//! made or last [`Meter::reset`]. Typical use: feed every period, read and
//! reset once per reporting interval. The sum of squares is kept in `f64`,
//! so long intervals do not lose precision.
//!
//! Non-finite samples (NaN, ±inf) are skipped — they would make the levels
//! meaningless until the next reset — and counted separately in
//! [`Meter::nonfinite_samples`].

use crate::biquad::{DesignError, MAX_CHANNELS};

/// Levels of one channel since the last reset (both `0.0` if no samples).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Levels {
    /// Largest absolute sample value.
    pub peak: f32,
    /// Root mean square of the samples.
    pub rms: f32,
}

impl Levels {
    /// The peak in dB full scale (`20·log10(peak)`); `-inf` for silence.
    pub fn peak_db(&self) -> f32 {
        (20.0 * libm::log10(f64::from(self.peak))) as f32
    }

    /// The RMS in dB full scale (`20·log10(rms)`); `-inf` for silence.
    pub fn rms_db(&self) -> f32 {
        (20.0 * libm::log10(f64::from(self.rms))) as f32
    }
}

/// Per-channel peak and RMS meter over interleaved frames.
#[derive(Clone, Debug, PartialEq)]
pub struct Meter {
    channels: usize,
    peak: [f32; MAX_CHANNELS],
    sum_sq: [f64; MAX_CHANNELS],
    count: [u64; MAX_CHANNELS],
    nonfinite: u32,
}

impl Meter {
    /// A meter for `channels` interleaved channels; fails with
    /// [`DesignError::BadChannels`] unless `1 <= channels <= MAX_CHANNELS`.
    pub fn new(channels: usize) -> Result<Meter, DesignError> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(DesignError::BadChannels { channels });
        }
        Ok(Meter {
            channels,
            peak: [0.0; MAX_CHANNELS],
            sum_sq: [0.0; MAX_CHANNELS],
            count: [0; MAX_CHANNELS],
            nonfinite: 0,
        })
    }

    /// Adds the interleaved `buf` to the running levels. A trailing partial
    /// frame is ignored; non-finite samples are skipped and counted.
    pub fn process(&mut self, buf: &[f32]) {
        for frame in buf.chunks_exact(self.channels) {
            for (ch, &x) in frame.iter().enumerate() {
                if !x.is_finite() {
                    self.nonfinite = self.nonfinite.saturating_add(1);
                    continue;
                }
                let a = if x < 0.0 { -x } else { x };
                if let (Some(p), Some(s), Some(n)) = (
                    self.peak.get_mut(ch),
                    self.sum_sq.get_mut(ch),
                    self.count.get_mut(ch),
                ) {
                    if a > *p {
                        *p = a;
                    }
                    *s += f64::from(x) * f64::from(x);
                    *n += 1;
                }
            }
        }
    }

    /// The levels of `channel` since the last reset, or `None` if
    /// `channel >= channels`.
    pub fn levels(&self, channel: usize) -> Option<Levels> {
        if channel >= self.channels {
            return None;
        }
        let n = *self.count.get(channel)?;
        let rms = if n == 0 {
            0.0
        } else {
            libm::sqrt(*self.sum_sq.get(channel)? / n as f64) as f32
        };
        Some(Levels {
            peak: *self.peak.get(channel)?,
            rms,
        })
    }

    /// Clears all levels and the non-finite counter.
    pub fn reset(&mut self) {
        self.peak = [0.0; MAX_CHANNELS];
        self.sum_sq = [0.0; MAX_CHANNELS];
        self.count = [0; MAX_CHANNELS];
        self.nonfinite = 0;
    }

    /// How many non-finite samples were skipped since the last reset.
    pub fn nonfinite_samples(&self) -> u32 {
        self.nonfinite
    }

    /// The number of interleaved channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_and_rms_match_hand_computed_values() {
        let mut m = Meter::new(2).unwrap();
        // left: 0.5, -1.0, 0.25, 0.0 ; right: 0.0, 0.0, 0.0, 0.0
        m.process(&[0.5, 0.0, -1.0, 0.0]);
        m.process(&[0.25, 0.0, 0.0, 0.0]);
        let l = m.levels(0).unwrap();
        assert_eq!(l.peak, 1.0);
        // sqrt((0.25 + 1 + 0.0625 + 0) / 4) = sqrt(0.328125)
        assert_eq!(l.rms, libm::sqrt(0.328125f64) as f32);
        assert_eq!(
            m.levels(1).unwrap(),
            Levels {
                peak: 0.0,
                rms: 0.0
            }
        );
        assert_eq!(l.peak_db(), 0.0);
        assert_eq!(m.levels(1).unwrap().peak_db(), f32::NEG_INFINITY);
    }

    #[test]
    fn full_scale_square_wave_is_0_dbfs_rms() {
        let mut m = Meter::new(1).unwrap();
        m.process(&[1.0, -1.0, 1.0, -1.0]);
        let l = m.levels(0).unwrap();
        assert_eq!((l.peak, l.rms), (1.0, 1.0));
        assert_eq!(l.rms_db(), 0.0);
    }

    #[test]
    fn out_of_range_channel_is_none() {
        let m = Meter::new(3).unwrap();
        assert!(m.levels(2).is_some());
        assert_eq!(m.levels(3), None);
        assert_eq!(m.levels(MAX_CHANNELS), None);
    }

    #[test]
    fn nonfinite_samples_are_skipped_and_counted() {
        let mut m = Meter::new(1).unwrap();
        m.process(&[0.5, f32::NAN, f32::INFINITY, -0.5]);
        assert_eq!(
            m.levels(0),
            Some(Levels {
                peak: 0.5,
                rms: 0.5
            })
        );
        assert_eq!(m.nonfinite_samples(), 2);
    }

    #[test]
    fn reset_clears_and_partial_frame_is_ignored() {
        let mut m = Meter::new(2).unwrap();
        m.process(&[0.5, 0.5, 0.9]);
        assert_eq!(m.levels(0).unwrap().peak, 0.5);
        m.reset();
        assert_eq!(
            m.levels(0),
            Some(Levels {
                peak: 0.0,
                rms: 0.0
            })
        );
        assert_eq!(m.nonfinite_samples(), 0);
    }

    #[test]
    fn bad_channel_counts() {
        assert_eq!(Meter::new(0), Err(DesignError::BadChannels { channels: 0 }));
        assert_eq!(
            Meter::new(MAX_CHANNELS + 1),
            Err(DesignError::BadChannels {
                channels: MAX_CHANNELS + 1
            })
        );
    }
}
