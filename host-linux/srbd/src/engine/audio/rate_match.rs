//! Adaptive rate matching between two clocks: a PI controller that steers
//! a resampler's relative ratio so that the queue between a producer on
//! one clock and a consumer on another stays at its target fill.
//!
//! With `x` the fill error in seconds and `δ` the producer's rate offset,
//! the queue obeys `x' = δ + (r - 1)` for a relative ratio `r`; the
//! controller sets `r = 1 - kp·x̄ - ki·∫x̄` on a smoothed error `x̄` (the
//! fill jumps by whole periods on both clocks; a half-second average
//! takes that sawtooth out). That is a second-order loop with natural
//! frequency `√ki` and damping `kp / 2√ki`: the gains below (ωn = 0.025
//! rad/s, ζ = 1) settle in about three minutes (a 0.1 % offset moves the
//! fill by at most 15 ms meanwhile) and move the ratio (and so the pitch)
//! by at most 0.025 % for the up to 5 ms by which two period clocks'
//! phases offset the fill, which is what makes the adjustment inaudible. The ratio is clamped to ±[`MAX_DEVIATION`].
//!
//! The controller holds the ratio at 1 until the queue first reaches its
//! target (while the consumer prebuffers, an empty queue says nothing
//! about the clocks), so the start plays at the true pitch.

/// Largest relative ratio change the controller asks for (±0.5 %: a
/// hundred times the drift of two ordinary crystal clocks).
pub const MAX_DEVIATION: f64 = 0.005;

/// Proportional gain, per second of fill error.
const KP: f64 = 0.05;
/// Integral gain, per second² of fill error.
const KI: f64 = 0.000_625;
/// Time constant of the fill average, in seconds.
const SMOOTHING: f64 = 0.5;

/// The controller's state.
#[derive(Debug, Clone)]
pub struct RateMatch {
    rate: f64,
    target: f64,
    average: Option<f64>,
    integral: f64,
    ratio: f64,
    /// The queue has reached its target once: the controller runs.
    armed: bool,
}

impl RateMatch {
    /// Keeps a queue read at `rate` frames per second at `target` frames.
    pub fn new(rate: u32, target_frames: usize) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            target: target_frames as f64,
            average: None,
            integral: 0.0,
            ratio: 1.0,
            armed: false,
        }
    }

    /// The relative ratio to use now, given the queue's fill (frames)
    /// measured `dt` seconds after the last call.
    pub fn update(&mut self, fill_frames: f64, dt: f64) -> f64 {
        if !self.armed {
            if fill_frames < self.target {
                return self.ratio;
            }
            self.armed = true;
        }
        let dt = dt.clamp(0.0, 1.0);
        let avg = match self.average {
            None => fill_frames,
            Some(a) => a + (fill_frames - a) * (dt / SMOOTHING).min(1.0),
        };
        self.average = Some(avg);
        let error = (avg - self.target) / self.rate;
        let ratio = 1.0 - KP * error - KI * (self.integral + error * dt);
        // Anti-windup: the integral only grows while the ratio is free.
        if (ratio - 1.0).abs() < MAX_DEVIATION {
            self.integral += error * dt;
        }
        self.ratio = ratio.clamp(1.0 - MAX_DEVIATION, 1.0 + MAX_DEVIATION);
        self.ratio
    }

    /// The ratio last returned.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer on a clock `offset` fast (relative) writes 480 frames
    /// per period into a resampler at the controller's ratio, whose output
    /// a consumer on the nominal clock reads 480 frames per period; the
    /// controller runs every 5 ms. Returns (ratio × producer rate /
    /// consumer rate, fill error in frames) averaged over the last 60 s
    /// of `seconds`.
    fn simulate(offset: f64, seconds: u64) -> (f64, f64) {
        const TARGET: usize = 9600;
        let mut c = RateMatch::new(48_000, TARGET);
        let step = 1e-4;
        let producer_period = 0.01 / (1.0 + offset);
        let (mut t, mut next_in, mut next_out, mut next_ctl) = (0.0, 0.0, 0.0, 0.0);
        let mut queue = TARGET as f64;
        let mut pending_in = 0.0;
        let (mut sum_r, mut sum_e, mut n) = (0.0, 0.0, 0.0);
        let end = seconds as f64;
        while t < end {
            if t >= next_in {
                pending_in += 480.0;
                next_in += producer_period;
            }
            if t >= next_ctl {
                // The loopback moves what arrived through the resampler.
                queue += pending_in * c.ratio();
                pending_in = 0.0;
                c.update(queue, 0.005);
                next_ctl += 0.005;
                if t > end - 60.0 {
                    sum_r += c.ratio() * (1.0 + offset);
                    sum_e += queue - TARGET as f64;
                    n += 1.0;
                }
            }
            if t >= next_out {
                queue -= 480.0;
                assert!(queue > -480.0, "the queue ran dry at {t:.2} s");
                next_out += 0.01;
            }
            t += step;
        }
        (sum_r / n, sum_e / n)
    }

    #[test]
    fn converges_for_a_clock_offset_of_a_tenth_of_a_percent() {
        for offset in [0.001, -0.001, 0.0] {
            let (r, e) = simulate(offset, 600);
            assert!(
                (r - 1.0).abs() < 1e-5,
                "offset {offset}: the rates match to {:e}",
                r - 1.0
            );
            // At the target on average (a proportional controller alone
            // would sit δ/kp = 20 ms = 960 frames off).
            assert!(e.abs() < 50.0, "offset {offset}: fill error {e} frames");
        }
    }

    #[test]
    fn the_ratio_holds_at_one_until_the_queue_first_fills() {
        let mut c = RateMatch::new(48_000, 9600);
        for fill in (0..9600).step_by(480) {
            assert_eq!(c.update(f64::from(fill), 0.005), 1.0);
        }
        assert!(c.update(96_000.0, 0.005) < 1.0);
    }

    #[test]
    fn the_ratio_is_clamped_and_the_integral_does_not_wind_up() {
        let mut c = RateMatch::new(48_000, 9600);
        // Far too full for a long time: the ratio sits at the clamp.
        for _ in 0..10_000 {
            c.update(96_000.0, 0.005);
        }
        assert_eq!(c.ratio(), 1.0 - MAX_DEVIATION);
        // Back at the target: the ratio returns within seconds, not after
        // unwinding 50 s of accumulated error.
        for _ in 0..2_000 {
            c.update(9600.0, 0.005);
        }
        assert!((c.ratio() - 1.0).abs() < 0.002, "{}", c.ratio());
    }
}
