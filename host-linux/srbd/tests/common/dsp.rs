//! What the DSP-peer suites (`srbd_dsp.rs`, `srbd_board_peer.rs`) share:
//! one test at a time, seeded noise, and the bit-exact check of what a
//! DSP in bypass or a chain returned.

use std::path::Path;

use super::srbd::{wait_bounded, Daemon, Rng};

/// The sink rate of these suites.
pub const RATE: u32 = 48_000;

/// One test at a time in a suite: a DSP peer takes a core, and some tests
/// assert that it never had to be replaced.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the suite's turn (a panicked test does not poison it).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `seconds` of seeded stereo noise with no zero samples.
pub fn noise(seconds: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let n = (seconds * f64::from(RATE)) as usize * 2;
    (0..n)
        .map(|_| {
            let x = rng.sample_f32() * 0.5;
            if x == 0.0 {
                0.25
            } else {
                x
            }
        })
        .collect()
}

/// The first frame index at which stereo `out` holds `input`'s first 4
/// frames.
pub fn find_start(out: &[f32], input: &[f32]) -> usize {
    let key = &input[..8];
    out.chunks_exact(2)
        .enumerate()
        .position(|(i, _)| {
            out.get(i * 2..i * 2 + 8)
                .is_some_and(|w| w.iter().zip(key).all(|(a, b)| a.to_bits() == b.to_bits()))
        })
        .expect("the played audio is in the output")
}

/// `input` is in `out` bit for bit and contiguous; with `silent_before`,
/// nothing sounds before it.
pub fn assert_bit_exact(out: &[f32], input: &[f32], what: &str, silent_before: bool) {
    let start = find_start(out, input) * 2;
    let got = out
        .get(start..start + input.len())
        .unwrap_or_else(|| panic!("{what}: output ends early"));
    for (i, (a, b)) in got.iter().zip(input).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "{what}: sample {i} differs");
    }
    assert!(
        !silent_before || out[..start].iter().all(|x| *x == 0.0),
        "{what}: sound before the stream"
    );
}

/// Plays `path` with `paplay` to the end.
pub fn play(d: &Daemon, path: &Path) {
    let out = wait_bounded(d.spawn_paplay(path, &[]), "paplay");
    d.assert_exit_ok(&out, "paplay");
}
