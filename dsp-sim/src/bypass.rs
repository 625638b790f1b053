//! Bypass: a bit-exact copy.
//!
//! The reference path for end-to-end tests: whatever goes in comes out with
//! the same bits, NaN payloads and signed zeros included (it copies memory, it
//! does no arithmetic).

/// Copies `min(input.len(), out.len())` samples from `input` to the front of
/// `out`, bit for bit, and returns how many it copied. Samples of `out` past
/// that count are left untouched.
pub fn bypass(input: &[f32], out: &mut [f32]) -> usize {
    let n = input.len().min(out.len());
    if let (Some(src), Some(dst)) = (input.get(..n), out.get_mut(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_bits_exactly_including_nan_payloads_and_negative_zero() {
        let odd_nan = f32::from_bits(0x7fc0_1234);
        let input = [1.0f32, -0.0, odd_nan, f32::INFINITY, 1e-40];
        let mut out = [9.0f32; 5];
        assert_eq!(bypass(&input, &mut out), 5);
        for (a, b) in input.iter().zip(out.iter()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn copies_the_shorter_length_and_leaves_the_rest() {
        let mut out = [7.0f32; 4];
        assert_eq!(bypass(&[1.0, 2.0], &mut out), 2);
        assert_eq!(out, [1.0, 2.0, 7.0, 7.0]);

        let mut short = [0.0f32; 1];
        assert_eq!(bypass(&[3.0, 4.0, 5.0], &mut short), 1);
        assert_eq!(short, [3.0]);

        assert_eq!(bypass(&[], &mut out), 0);
    }
}
