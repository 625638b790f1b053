//! PulseAudio software volumes ↔ linear gain factors.
//!
//! A PulseAudio volume is a `u32` where [`VOLUME_NORM`] (0x10000) is unity
//! gain and 0 is muted. The mapping to a linear amplitude factor is cubic:
//! `linear = (volume / VOLUME_NORM)³`, so half the volume number is about
//! −18 dB and a linear factor of 0.5 is volume 52016. Both directions are
//! computed in `f64`; 0 and [`VOLUME_NORM`] map to exactly 0.0 and 1.0.

pub use srb_pulse::tagstruct::{VOLUME_MAX, VOLUME_NORM};

/// The linear amplitude factor of volume `v`: `(v / VOLUME_NORM)³`.
///
/// 0 gives exactly 0.0 and [`VOLUME_NORM`] exactly 1.0. Values above
/// [`VOLUME_MAX`] (invalid on the wire) are treated as [`VOLUME_MAX`]. The
/// result is rounded to `f32`, so volumes far above unity (above about
/// 384 × `VOLUME_NORM`) no longer round-trip through
/// [`linear_to_volume`] to the exact step.
pub fn volume_to_linear(v: u32) -> f32 {
    if v == 0 {
        return 0.0;
    }
    let x = f64::from(v.min(VOLUME_MAX)) / f64::from(VOLUME_NORM);
    (x * x * x) as f32
}

/// The volume whose linear factor is `l`: `round(cbrt(l) · VOLUME_NORM)`,
/// clamped to `0..=VOLUME_MAX`. NaN, infinities, negative values and 0 give
/// 0 (muted); 1.0 gives exactly [`VOLUME_NORM`].
pub fn linear_to_volume(l: f64) -> u32 {
    if !l.is_finite() || l <= 0.0 {
        return 0;
    }
    let v = (l.cbrt() * f64::from(VOLUME_NORM)).round();
    // Non-negative and at most VOLUME_MAX, so the cast is exact.
    v.min(f64::from(VOLUME_MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_points() {
        assert_eq!(volume_to_linear(VOLUME_NORM), 1.0);
        assert_eq!(volume_to_linear(0), 0.0);
        assert_eq!(linear_to_volume(1.0), VOLUME_NORM);
        assert_eq!(linear_to_volume(0.0), 0);
        assert_eq!(volume_to_linear(VOLUME_NORM / 2), 0.125);
        assert_eq!(volume_to_linear(2 * VOLUME_NORM), 8.0);
        assert_eq!(linear_to_volume(8.0), 2 * VOLUME_NORM);
        assert_eq!(linear_to_volume(0.125), VOLUME_NORM / 2);
    }

    #[test]
    fn half_amplitude() {
        let v = linear_to_volume(0.5);
        assert!(v.abs_diff(52016) <= 1, "{v}");
        assert!((f64::from(volume_to_linear(52016)) - 0.5).abs() < 1e-4);
    }

    #[test]
    fn bad_linear_values_mute() {
        for l in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.5,
            -0.0,
            -1e-300,
        ] {
            assert_eq!(linear_to_volume(l), 0, "{l}");
        }
        assert_eq!(linear_to_volume(f64::MAX), VOLUME_MAX);
        assert_eq!(linear_to_volume(1e300), VOLUME_MAX);
        assert_eq!(linear_to_volume(1e-30), 0);
    }

    #[test]
    fn out_of_range_volume_clamps() {
        assert_eq!(volume_to_linear(u32::MAX), volume_to_linear(VOLUME_MAX));
        assert!(volume_to_linear(VOLUME_MAX).is_finite());
    }

    #[test]
    fn monotonic_and_round_trip_up_to_plus_36_db() {
        let mut previous = -1.0f32;
        for v in 0..=4 * VOLUME_NORM {
            let l = volume_to_linear(v);
            assert!(l >= previous, "{v}");
            previous = l;
            let back = linear_to_volume(f64::from(l));
            assert!(back.abs_diff(v) <= 1, "{v} → {l} → {back}");
        }
    }

    proptest! {
        #[test]
        fn round_trip_relative(v in 1u32..=VOLUME_MAX) {
            let back = linear_to_volume(f64::from(volume_to_linear(v)));
            // f32 keeps 24 bits; the cube root divides the relative error by 3.
            let tolerance = 1.0 + f64::from(v) * 2f64.powi(-24) / 3.0;
            prop_assert!(f64::from(back.abs_diff(v)) <= tolerance, "{} → {}", v, back);
        }

        #[test]
        fn linear_round_trip(l in 1e-6f64..100.0) {
            let back = f64::from(volume_to_linear(linear_to_volume(l)));
            // One volume step changes the factor by about 3 / v relative.
            let v = f64::from(linear_to_volume(l));
            prop_assert!((back - l).abs() / l <= 3.0 / v + 1e-6, "{} → {}", l, back);
        }
    }
}
