//! Channel remapping between two channel maps (interleaved `f32` frames).
//!
//! A [`Remap`] is built once from two lists of PulseAudio channel positions
//! and then applied to any number of frames without allocating. Every output
//! channel is the plain average of a set of input channels (weight 1/n each),
//! so a full-scale input never produces more than full scale; a set of one is
//! a bit-exact copy. The sets are chosen as follows, first rule that applies:
//!
//! 1. **Same lists**: output channel *i* is input channel *i*.
//! 2. **One input channel** (whatever its position): every output channel
//!    is that channel.
//! 3. **One output channel** (and more than one input): the average of all
//!    input channels.
//! 4. **Otherwise**, in two passes:
//!    * *Match.* An output channel whose position occurs in the input takes
//!      the input channel(s) at that position. An output channel whose
//!      position does not occur takes the input channels on its *side* (see
//!      below) if it is a left or right position and the input has channels
//!      on that side, and all input channels otherwise (centre, LFE, mono,
//!      aux and top-centre positions, or no input on that side).
//!    * *Spill.* An input channel that no output set contains yet (its
//!      position is absent from the output and no fallback took it) is added
//!      to every output channel on its side; a centre-side input, or one
//!      whose side has no output channel, is added to every output channel.
//!      Nothing in the input is dropped.
//!
//! Sides: left = FRONT_LEFT, REAR_LEFT, FRONT_LEFT_OF_CENTER, SIDE_LEFT,
//! TOP_FRONT_LEFT, TOP_REAR_LEFT; right = their right counterparts; centre =
//! every other position, including MONO, LFE, AUX0..31 and positions outside
//! the known range (which are accepted, never an error).
//!
//! Examples: stereo → 5.1 puts L/R in front left/right and rear left/right
//! and their average in centre and LFE; 5.1 → stereo gives
//! left = avg(FL, RL, FC, LFE), right = avg(FR, RR, FC, LFE); stereo → mono
//! gives avg(L, R); mono → anything copies.

/// Positions on the left side.
const LEFT: [u8; 6] = [1, 5, 8, 10, 45, 48];
/// Positions on the right side.
const RIGHT: [u8; 6] = [2, 6, 9, 11, 46, 49];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Centre,
}

fn side(position: u8) -> Side {
    if LEFT.contains(&position) {
        Side::Left
    } else if RIGHT.contains(&position) {
        Side::Right
    } else {
        Side::Centre
    }
}

/// One output channel: `sources[start..end]` averaged.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    start: usize,
    end: usize,
    /// 1 / (end − start), or 0 for an empty set.
    scale: f32,
}

/// A precomputed channel remapping (see the module documentation for the
/// rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Remap {
    from_channels: usize,
    to_channels: usize,
    identity: bool,
    rows: Vec<Row>,
    /// Input channel indices, grouped by row.
    sources: Vec<usize>,
}

impl Remap {
    /// The remapping from the channel positions `from` to `to`. Any lists
    /// are accepted: unknown positions count as centre, an empty `from`
    /// gives silence, an empty `to` gives no output.
    pub fn new(from: &[u8], to: &[u8]) -> Remap {
        let sets = Self::sets(from, to);
        let mut rows = Vec::with_capacity(sets.len());
        let mut sources = Vec::new();
        for set in &sets {
            let start = sources.len();
            sources.extend_from_slice(set);
            let scale = if set.is_empty() {
                0.0
            } else {
                1.0 / set.len() as f32
            };
            rows.push(Row {
                start,
                end: sources.len(),
                scale,
            });
        }
        let identity = from.len() == to.len()
            && sets
                .iter()
                .enumerate()
                .all(|(i, set)| set.as_slice() == [i]);
        Remap {
            from_channels: from.len(),
            to_channels: to.len(),
            identity,
            rows,
            sources,
        }
    }

    /// The input channel indices averaged into each output channel, in
    /// input order.
    fn sets(from: &[u8], to: &[u8]) -> Vec<Vec<usize>> {
        let all: Vec<usize> = (0..from.len()).collect();
        if from == to {
            return (0..to.len()).map(|i| vec![i]).collect();
        }
        if from.len() == 1 {
            return vec![vec![0]; to.len()];
        }
        if to.len() == 1 {
            return vec![all];
        }
        let on_side =
            |s: Side| -> Vec<usize> { (0..from.len()).filter(|&i| side(from[i]) == s).collect() };
        let mut sets: Vec<Vec<usize>> = to
            .iter()
            .map(|&p| {
                let direct: Vec<usize> = (0..from.len()).filter(|&i| from[i] == p).collect();
                if !direct.is_empty() {
                    return direct;
                }
                match side(p) {
                    Side::Centre => all.clone(),
                    s => {
                        let group = on_side(s);
                        if group.is_empty() {
                            all.clone()
                        } else {
                            group
                        }
                    }
                }
            })
            .collect();
        let covered: Vec<bool> = (0..from.len())
            .map(|i| sets.iter().any(|set| set.contains(&i)))
            .collect();
        for (i, &p) in from.iter().enumerate() {
            if covered[i] {
                continue;
            }
            let s = side(p);
            let same_side = s != Side::Centre && to.iter().any(|&q| side(q) == s);
            for (o, &q) in to.iter().enumerate() {
                if !same_side || side(q) == s {
                    sets[o].push(i);
                }
            }
        }
        for set in &mut sets {
            set.sort_unstable();
        }
        sets
    }

    /// Whether [`apply`](Self::apply) copies every channel unchanged (same
    /// channel count, output channel *i* = input channel *i*).
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Input channels per frame.
    pub fn from_channels(&self) -> usize {
        self.from_channels
    }

    /// Output channels per frame.
    pub fn to_channels(&self) -> usize {
        self.to_channels
    }

    /// Remaps the interleaved frames of `input` into `output`.
    ///
    /// `input.len()` must be a multiple of the input channel count and
    /// `output.len()` the same number of frames times the output channel
    /// count (checked by a `debug_assert!`; release builds convert the
    /// frames both hold and zero the rest of `output`). Never allocates;
    /// single-source channels are bit-exact copies.
    pub fn apply(&self, input: &[f32], output: &mut [f32]) {
        debug_assert!(
            self.from_channels == 0 && input.is_empty()
                || self.from_channels != 0
                    && input.len().is_multiple_of(self.from_channels)
                    && output.len() == input.len() / self.from_channels * self.to_channels,
            "remap {}→{} channels: {} input samples, {} output samples",
            self.from_channels,
            self.to_channels,
            input.len(),
            output.len()
        );
        self.apply_lenient(input, output);
    }

    /// [`apply`](Self::apply) without the length assertion.
    pub(crate) fn apply_lenient(&self, input: &[f32], output: &mut [f32]) {
        if self.to_channels == 0 {
            return;
        }
        if self.from_channels == 0 {
            output.fill(0.0);
            return;
        }
        let frames = (input.len() / self.from_channels).min(output.len() / self.to_channels);
        let (output, rest) = output.split_at_mut(frames * self.to_channels);
        rest.fill(0.0);
        let input = &input[..frames * self.from_channels];
        if self.identity {
            output.copy_from_slice(input);
            return;
        }
        for (frame_in, frame_out) in input
            .chunks_exact(self.from_channels)
            .zip(output.chunks_exact_mut(self.to_channels))
        {
            for (o, row) in frame_out.iter_mut().zip(&self.rows) {
                *o = match self.sources.get(row.start..row.end).unwrap_or(&[]) {
                    [] => 0.0,
                    [only] => frame_in.get(*only).copied().unwrap_or(0.0),
                    many => {
                        let sum: f32 = many
                            .iter()
                            .map(|&i| frame_in.get(i).copied().unwrap_or(0.0))
                            .sum();
                        sum * row.scale
                    }
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MONO: u8 = 0;
    const FL: u8 = 1;
    const FR: u8 = 2;
    const FC: u8 = 3;
    const RC: u8 = 4;
    const RL: u8 = 5;
    const RR: u8 = 6;
    const LFE: u8 = 7;
    const SL: u8 = 10;
    const SR: u8 = 11;
    const AUX0: u8 = 12;
    const AUX1: u8 = 13;
    const SURROUND_51: [u8; 6] = [FL, FR, FC, LFE, RL, RR];

    fn run(from: &[u8], to: &[u8], input: &[f32]) -> Vec<f32> {
        let r = Remap::new(from, to);
        let mut out = vec![f32::NAN; input.len() / from.len() * to.len()];
        r.apply(input, &mut out);
        out
    }

    fn sets(from: &[u8], to: &[u8]) -> Vec<Vec<usize>> {
        Remap::sets(from, to)
    }

    #[test]
    fn identical_maps_are_bit_exact_identity() {
        let bits = [
            0x7FC0_1234u32,
            0x8000_0000,
            0x3F80_0000,
            0xFF80_0000,
            1,
            0x4120_0000,
        ];
        let input: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        for map in [&[FL, FR][..], &[AUX1, AUX0], &[FC, FL, FR]] {
            let r = Remap::new(map, map);
            assert!(r.is_identity());
            let out = run(map, map, &input);
            assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), bits);
        }
    }

    #[test]
    fn reordered_maps_are_not_identity() {
        let r = Remap::new(&[FL, FR], &[FR, FL]);
        assert!(!r.is_identity());
        assert_eq!(
            run(&[FL, FR], &[FR, FL], &[0.25, -0.5, 1.0, 0.0]),
            [-0.5, 0.25, 0.0, 1.0]
        );
        // Same channel count, different positions, yet a pure copy.
        assert!(Remap::new(&[MONO], &[FC]).is_identity());
        assert!(!Remap::new(&[FL, FR], &[FL, FC]).is_identity());
    }

    #[test]
    fn mono_to_stereo_copies_bit_exactly() {
        let input = [0.5, f32::from_bits(0x7FC0_0042), -0.0, 1.5];
        let out = run(&[MONO], &[FL, FR], &input);
        let expected: Vec<u32> = input
            .iter()
            .flat_map(|v| [v.to_bits(), v.to_bits()])
            .collect();
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            expected
        );
        // Whatever the single input position is.
        assert_eq!(run(&[FL], &[FL, FR, LFE], &[0.25]), [0.25, 0.25, 0.25]);
    }

    #[test]
    fn stereo_to_mono_averages() {
        assert_eq!(
            run(&[FL, FR], &[MONO], &[0.5, 0.25, 1.0, -1.0, 0.0, 0.0]),
            [0.375, 0.0, 0.0]
        );
        // Any single output position means "mono".
        let out = run(&[FL, FR, FC], &[FL], &[0.3, 0.6, 0.9]);
        assert!((out[0] - 0.6).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn surround_to_stereo() {
        assert_eq!(
            sets(&SURROUND_51, &[FL, FR]),
            [vec![0, 2, 3, 4], vec![1, 2, 3, 5]],
            "left = FL FC LFE RL, right = FR FC LFE RR"
        );
        // Left-only signal stays left, right-only stays right, centre goes
        // to both equally.
        let fl = run(&SURROUND_51, &[FL, FR], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(fl, [0.25, 0.0]);
        let rr = run(&SURROUND_51, &[FL, FR], &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(rr, [0.0, 0.25]);
        let fc = run(&SURROUND_51, &[FL, FR], &[0.0, 0.0, 0.8, 0.0, 0.0, 0.0]);
        assert_eq!(fc, [0.2, 0.2]);
        // Full scale everywhere stays within full scale.
        let full = run(&SURROUND_51, &[FL, FR], &[1.0; 6]);
        assert_eq!(full, [1.0, 1.0]);
        let full = run(&SURROUND_51, &[FL, FR], &[-1.0; 6]);
        assert_eq!(full, [-1.0, -1.0]);
    }

    #[test]
    fn stereo_to_surround() {
        assert_eq!(
            sets(&[FL, FR], &SURROUND_51),
            [vec![0], vec![1], vec![0, 1], vec![0, 1], vec![0], vec![1]]
        );
        let out = run(&[FL, FR], &SURROUND_51, &[0.5, -0.25]);
        assert_eq!(out, [0.5, -0.25, 0.125, 0.125, 0.5, -0.25]);
    }

    #[test]
    fn unmatched_outputs_use_their_side() {
        // Quad input to side channels: SL takes the left inputs, SR the right.
        assert_eq!(
            sets(&[FL, FR, RL, RR], &[SL, SR, RC]),
            [vec![0, 2], vec![1, 3], vec![0, 1, 2, 3]]
        );
        // No input on the left: a left output falls back to all inputs.
        // FC is then covered, so nothing spills into FR.
        assert_eq!(sets(&[FR, FC], &[FL, FR]), [vec![0, 1], vec![0]]);
    }

    #[test]
    fn unmatched_inputs_spill() {
        // AUX0 (centre side) goes to every output; RL only to the left.
        assert_eq!(
            sets(&[FL, FR, AUX0, RL], &[FL, FR]),
            [vec![0, 2, 3], vec![1, 2]]
        );
        // A left input with no left output goes everywhere.
        assert_eq!(sets(&[FR, FC, RL], &[FR, FC]), [vec![0, 2], vec![1, 2]]);
        // A centre fallback output already holds every input.
        assert_eq!(sets(&[FR, RL], &[FR, AUX0]), [vec![0], vec![0, 1]]);
        // Covered by a fallback: not spilled again.
        assert_eq!(sets(&[FL, FR, RL], &[FR, FC]), [vec![1], vec![0, 1, 2]]);
    }

    #[test]
    fn duplicate_positions_average() {
        assert_eq!(sets(&[FL, FL, FR], &[FL, FR]), [vec![0, 1], vec![2]]);
        assert_eq!(
            run(&[FL, FL, FR], &[FL, FR], &[0.5, 0.25, 1.0]),
            [0.375, 1.0]
        );
        assert_eq!(sets(&[FL, FR], &[FL, FL, FR]), [vec![0], vec![0], vec![1]]);
    }

    #[test]
    fn unknown_positions_are_centre() {
        assert_eq!(sets(&[FL, FR, 200], &[FL, FR]), [vec![0, 2], vec![1, 2]]);
        assert_eq!(sets(&[FL, 200], &[FL, FR]), [vec![0], vec![0, 1]]);
        assert_eq!(sets(&[FL, FR], &[FL, 99]), [vec![0], vec![0, 1]]);
    }

    #[test]
    fn empty_maps_do_not_panic() {
        let r = Remap::new(&[], &[FL, FR]);
        let mut out = [1.0; 4];
        r.apply(&[], &mut out);
        assert_eq!(out, [0.0; 4]);
        let r = Remap::new(&[FL, FR], &[]);
        r.apply_lenient(&[1.0, 2.0], &mut []);
        let r = Remap::new(&[], &[]);
        r.apply(&[], &mut []);
        let r = Remap::new(&[FL, FR], &[MONO]);
        r.apply(&[], &mut []);
    }

    #[test]
    fn lenient_lengths() {
        let r = Remap::new(&[FL, FR], &[MONO]);
        // 2.5 input frames, 4 output frames: two frames convert.
        let mut out = [9.0; 4];
        r.apply_lenient(&[1.0, 0.0, 0.5, 0.5, 7.0], &mut out);
        assert_eq!(out, [0.5, 0.5, 0.0, 0.0]);
        let mut out = [9.0; 1];
        r.apply_lenient(&[1.0, 0.0, 0.5, 0.5], &mut out);
        assert_eq!(out, [0.5]);
    }

    fn positions() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![0u8..14, 44u8..51, Just(255u8)], 1..9)
    }

    proptest! {
        #[test]
        fn every_row_is_a_nonempty_average_and_nothing_is_dropped(from in positions(), to in positions()) {
            let sets = sets(&from, &to);
            prop_assert_eq!(sets.len(), to.len());
            for set in &sets {
                prop_assert!(!set.is_empty());
                prop_assert!(set.iter().all(|&i| i < from.len()));
            }
            for i in 0..from.len() {
                prop_assert!(sets.iter().any(|s| s.contains(&i)), "input {} dropped: {:?} → {:?}", i, from, to);
            }
        }

        #[test]
        fn output_bounded_by_input(from in positions(), to in positions(), frames in 0usize..5, seed in any::<u64>()) {
            let mut x = seed;
            let input: Vec<f32> = (0..frames * from.len())
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            let out = run(&from, &to, &input);
            prop_assert_eq!(out.len(), frames * to.len());
            for (f, frame) in out.chunks_exact(to.len().max(1)).enumerate() {
                let inp = &input[f * from.len()..(f + 1) * from.len()];
                let lo = inp.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = inp.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for &v in frame {
                    prop_assert!(v >= lo - 1e-6 && v <= hi + 1e-6);
                }
            }
        }
    }
}
