//! Mixer: a weighted sum of buffers.
//!
//! `out[i] = inputs[0][i] * gains[0] + inputs[1][i] * gains[1] + ...`, summed
//! in input order, in `f32`, without fused multiply-add, so the result is the
//! same bits on every target and equal to a hand-written sum in that order.
//! The buffers are treated as flat sample arrays: interleaving does not
//! matter as long as all of them share it.

use core::fmt;

/// Why [`mix`] refused to run. Nothing is written to `out` when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixError {
    /// `gains` does not have one entry per input.
    GainCountMismatch {
        /// Number of input buffers.
        inputs: usize,
        /// Number of gains.
        gains: usize,
    },
    /// An input buffer is not as long as `out`.
    LengthMismatch {
        /// Index of the offending input.
        input: usize,
        /// Its length.
        len: usize,
        /// The length of `out`, which every input must match.
        expected: usize,
    },
}

impl fmt::Display for MixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MixError::GainCountMismatch { inputs, gains } => {
                write!(f, "mix: {inputs} inputs but {gains} gains")
            }
            MixError::LengthMismatch {
                input,
                len,
                expected,
            } => write!(
                f,
                "mix: input {input} has {len} samples, output has {expected}"
            ),
        }
    }
}

/// Writes the weighted sum of `inputs` into `out`:
/// `out[i] = sum over k of inputs[k][i] * gains[k]`.
///
/// With no inputs, `out` is filled with `0.0`. Every input must be exactly as
/// long as `out` and there must be one gain per input; otherwise a
/// [`MixError`] is returned and `out` is left untouched.
pub fn mix(inputs: &[&[f32]], gains: &[f32], out: &mut [f32]) -> Result<(), MixError> {
    if inputs.len() != gains.len() {
        return Err(MixError::GainCountMismatch {
            inputs: inputs.len(),
            gains: gains.len(),
        });
    }
    if let Some((input, buf)) = inputs
        .iter()
        .enumerate()
        .find(|(_, b)| b.len() != out.len())
    {
        return Err(MixError::LengthMismatch {
            input,
            len: buf.len(),
            expected: out.len(),
        });
    }
    out.fill(0.0);
    for (buf, &g) in inputs.iter().zip(gains) {
        for (o, &x) in out.iter_mut().zip(buf.iter()) {
            *o += x * g;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_hand_written_sum_bit_for_bit() {
        let a = [0.1f32, -0.7, 0.333, 1.0];
        let b = [0.9f32, 0.2, -0.125, 1e-3];
        let c = [-0.3f32, 0.3, 0.7, -1.0];
        let g = [0.5f32, 0.25, 1.1];
        let mut out = [0.0f32; 4];
        mix(&[&a, &b, &c], &g, &mut out).unwrap();
        for i in 0..4 {
            let hand = a[i] * g[0] + b[i] * g[1] + c[i] * g[2];
            assert_eq!(out[i].to_bits(), hand.to_bits(), "sample {i}");
        }
    }

    #[test]
    fn no_inputs_gives_silence() {
        let mut out = [5.0f32; 3];
        mix(&[], &[], &mut out).unwrap();
        assert_eq!(out, [0.0; 3]);
    }

    #[test]
    fn gain_count_mismatch_is_reported_and_out_untouched() {
        let a = [1.0f32; 2];
        let mut out = [5.0f32; 2];
        assert_eq!(
            mix(&[&a], &[1.0, 2.0], &mut out),
            Err(MixError::GainCountMismatch {
                inputs: 1,
                gains: 2
            })
        );
        assert_eq!(out, [5.0; 2]);
    }

    #[test]
    fn length_mismatch_names_the_input() {
        let a = [1.0f32; 2];
        let b = [1.0f32; 3];
        let mut out = [5.0f32; 2];
        let err = mix(&[&a, &b], &[1.0, 1.0], &mut out).unwrap_err();
        assert_eq!(
            err,
            MixError::LengthMismatch {
                input: 1,
                len: 3,
                expected: 2
            }
        );
        assert_eq!(out, [5.0; 2]);
        assert_eq!(
            std::format!("{err}"),
            "mix: input 1 has 3 samples, output has 2"
        );
    }
}
