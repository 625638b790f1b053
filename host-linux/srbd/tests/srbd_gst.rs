//! End-to-end: GStreamer's `pulsesink`, which negotiates its format
//! (protocol ≥ 21: an invalid sample spec and a list of format infos) and
//! writes with absolute seeks into its ring buffer, in every transport
//! mode: a test tone, a WAV file (bit-exact on a sink of the same format),
//! and `volume=`. `gst-launch-1.0` (Debian's gstreamer1.0-tools,
//! -plugins-base, -plugins-good, -pulseaudio) is installed by the test
//! command.

mod common;

use std::process::{Command, Stdio};

use common::srbd::{find_tool, write_wav_f32, Daemon, Rng, Shm, Wav};

in_all_modes!(pulsesink_plays_a_tone_a_wav_bit_exactly_and_with_volume);

/// The sink: float32le stereo 48 kHz into a WAV file, no DSP.
const SINK: [&str; 10] = [
    "--output",
    "wav:{dir}/out.wav",
    "--format",
    "float32le",
    "--rate",
    "48000",
    "--channels",
    "2",
    "--dsp",
    "off",
];

fn pulsesink_plays_a_tone_a_wav_bit_exactly_and_with_volume(shm: Shm) {
    assert!(
        Command::new(find_tool("gst-launch-1.0"))
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "gst-launch-1.0 must be installed (scripts/test.sh installs it)"
    );
    let mut d = Daemon::start_mode("gst", shm, &SINK);
    // 1. GStreamer's own test tone (s16 44.1 kHz mono by default).
    d.gst(&["audiotestsrc", "num-buffers=50", "!", "pulsesink"]);
    // 2. A WAV file in the sink's own format: it must come out bit-exact.
    let mut rng = Rng::new(0x6575);
    let frames = 24_000;
    let input: Vec<f32> = (0..frames * 2)
        .map(|_| 0.1 + 0.4 * rng.next_u64() as f32 / u64::MAX as f32)
        .collect();
    let wav = d.path("in.wav");
    write_wav_f32(&wav, 48_000, 2, &input);
    let loc = format!("location={}", wav.display());
    d.gst(&["filesrc", &loc, "!", "wavparse", "!", "pulsesink"]);
    // 3. The same file at half volume (pulsesink's volume= sets the
    //    stream volume).
    d.gst(&[
        "filesrc",
        &loc,
        "!",
        "wavparse",
        "!",
        "pulsesink",
        "volume=0.5",
    ]);
    d.assert_log_clean();
    d.stop_ok();

    let out = Wav::read(&d.path("out.wav"));
    let s = &out.samples;
    // pulsesink plays from its own ring buffer on its own clock, so a
    // run may be cut by an underrun on a loaded machine: at least 90 % of
    // the file must come out as one contiguous run, bit-exact at full
    // volume and at half volume within rounding.
    let need = input.len() * 9 / 10;
    let full = longest_run(s, &input, 1.0, 0.0);
    assert!(
        full >= need,
        "bit-exact run of {full} samples, want {need} of {}",
        input.len()
    );
    let half = longest_run(s, &input, 0.5, 1e-3);
    assert!(
        half >= need,
        "half-volume run of {half} samples, want {need} of {}",
        input.len()
    );
}

/// The longest run of `out` that equals `input × gain` (within `tol`),
/// aligned anywhere, each start found from a 10 ms window of `input`.
fn longest_run(out: &[f32], input: &[f32], gain: f32, tol: f32) -> usize {
    let close = |a: f32, b: f32| {
        if tol == 0.0 {
            a == b
        } else {
            (a - b).abs() <= tol
        }
    };
    let mut best = 0;
    for k in (0..input.len().saturating_sub(960)).step_by(960) {
        let window = &input[k..k + 960];
        let Some(at) = out
            .windows(960)
            .position(|w| w.iter().zip(window).all(|(&o, &x)| close(o, x * gain)))
        else {
            continue;
        };
        let run = out[at..]
            .iter()
            .zip(&input[k..])
            .take_while(|(&o, &x)| close(o, x * gain))
            .count();
        best = best.max(run);
    }
    best
}
