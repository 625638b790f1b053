//! srbd on ALSA devices, end to end with Debian's clients and no sound
//! card (alsa-lib's plugins stand in for one; see `common::alsa`):
//!
//! * `paplay` through `--output alsa:srbtest_out:FILE=…` (a `file` PCM
//!   over `null`, which has no clock: srbd paces it): the file holds what
//!   was played, bit-exact (s16le and float32le sinks, the rate of the
//!   sink, so no conversion), with the device clocking the sink
//!   (`--dsp off`) and with the DSP peer's clock;
//! * `pactl list sinks` shows the device's properties as PulseAudio's
//!   ALSA sinks do;
//! * the device failing and returning mid-`paplay` (the `pulse` plugin to
//!   a private PulseAudio that is killed and restarted on the same socket):
//!   the client finishes, srbd logs the loss and the return and counts the
//!   periods it discarded;
//! * `--input alsa:srbtest_in:INFILE=…` (capture from a raw file): the
//!   `alsa_input.*` source is listed as a source of its own with the
//!   device's properties, becomes the default with `set-default-source`,
//!   and `parec` from it gets the file's samples bit-exact (and silence
//!   once it is muted);
//! * the default output (no `--output`): `sysdefault` when it is a real
//!   device (here a file PCM), never a sound server (`type pulse`: refused
//!   with a reason, the null sink instead).

mod common;

use std::path::Path;

use common::alsa::{setup, PrivatePulse};
use common::srbd::{wait_bounded, write_wav_f32, write_wav_i16, Daemon};

/// A deterministic s16 signal with no silent stretch (so its start is
/// found unambiguously in the device's file).
fn signal_i16(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761 % 65_521) as i32 - 32_760) as i16 | 1)
        .collect()
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Plays `wav` (whose raw data is `data`) through srbd on a file PCM and
/// checks the file holds `data` bit-exact.
fn play_through_file(tag: &str, format: &str, dsp: &str, wav: &Path, data: &[u8]) {
    setup();
    let mut d = Daemon::start_args(
        tag,
        &[
            "--format",
            format,
            "--dsp",
            dsp,
            "--output",
            "alsa:srbtest_out:FILE={dir}/device.raw",
        ],
    );
    // The socket is there before the sink's engine opens the device.
    d.wait_for("the device open", || {
        d.log().contains("ALSA device open").then_some(())
    });
    d.paplay_ok(wav);
    d.stop_ok();
    let out = std::fs::read(d.path("device.raw")).expect("the file PCM's output");
    let at = find(&out, &data[..4096]).unwrap_or_else(|| {
        panic!(
            "the played data's start is not in the device's file ({} bytes)\n{}",
            out.len(),
            d.log()
        )
    });
    assert!(
        out.len() >= at + data.len(),
        "the device's file is cut short"
    );
    assert!(
        out[at..at + data.len()] == *data,
        "the device got the played samples bit-exact"
    );
}

#[test]
fn paplay_through_the_file_plugin_is_bit_exact_s16() {
    for dsp in ["off", "on"] {
        let dir = common::srbd::TempDir::new(&format!("alsa-wav-{dsp}"));
        let wav = dir.0.join("in.wav");
        let samples = signal_i16(48_000);
        write_wav_i16(&wav, 48_000, 2, &samples);
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        play_through_file(&format!("alsa-s16-{dsp}"), "s16le", dsp, &wav, &data);
    }
}

#[test]
fn paplay_through_the_file_plugin_is_bit_exact_float() {
    let dir = common::srbd::TempDir::new("alsa-wav-f32");
    let wav = dir.0.join("in.wav");
    let samples: Vec<f32> = signal_i16(48_000)
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    write_wav_f32(&wav, 48_000, 2, &samples);
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    play_through_file("alsa-f32", "float32le", "off", &wav, &data);
}

#[test]
fn pactl_lists_the_alsa_sink_like_pulseaudio() {
    setup();
    let d = Daemon::start_args(
        "alsa-props",
        &[
            "--format",
            "s16le",
            "--dsp",
            "off",
            "--output",
            "alsa:srbtest_out:FILE={dir}/device.raw",
        ],
    );
    let sinks = d.pactl_ok(&["list", "sinks"]);
    let device = format!("srbtest_out:FILE={}", d.path("device.raw").display());
    for want in [
        "Sample Specification: s16le 2ch 48000Hz".to_owned(),
        // As PulseAudio describes a PCM on no card: alsa-lib's PCM name
        // (the file plugin reports its `null` slave's).
        "Description: null".to_owned(),
        "alsa.name = \"null\"".to_owned(),
        "device.class = \"sound\"".to_owned(),
        "device.api = \"alsa\"".to_owned(),
        format!("device.string = \"{device}\""),
        "alsa.resolution_bits = \"16\"".to_owned(),
        "device.buffering.fragment_size = ".to_owned(),
    ] {
        assert!(sinks.contains(&want), "{want:?} in\n{sinks}");
    }
    let sources = d.pactl_ok(&["list", "sources"]);
    assert!(
        sources.contains("Description: Monitor of null")
            && sources.contains("device.class = \"monitor\""),
        "{sources}"
    );
}

#[test]
fn device_failure_and_return_during_paplay() {
    failure_and_return("off");
}

/// The same with the DSP peer's clock: the device is only written to.
#[test]
fn device_failure_and_return_under_the_dsp_clock() {
    failure_and_return("on");
}

/// Kills the device's server mid-`paplay` and restarts it; `dsp`: the
/// `--dsp` setting.
fn failure_and_return(dsp: &str) {
    setup();
    let pa_dir = common::srbd::TempDir::new(&format!("alsa-pa-{dsp}"));
    let mut pa = PrivatePulse::start(&pa_dir.0);
    let d = Daemon::start_args(
        &format!("alsa-fail-{dsp}"),
        &["--dsp", dsp, "--output", &format!("alsa:{}", pa.device())],
    );
    // Described as PulseAudio 16.1's module-alsa-sink describes the same
    // `pulse` plugin PCM (compared side by side): by its name.
    let sinks = d.pactl_ok(&["list", "sinks"]);
    for want in [
        format!("Description: {}", pa.device()),
        format!("alsa.name = \"{}\"", pa.device()),
        format!("device.string = \"{}\"", pa.device()),
    ] {
        assert!(sinks.contains(&want), "{want:?} in\n{sinks}");
    }
    let wav = d.path("long.wav");
    let samples: Vec<f32> = signal_i16(2 * 48_000 * 4)
        .iter()
        .map(|&s| f32::from(s) / 65536.0)
        .collect();
    write_wav_f32(&wav, 48_000, 2, &samples);
    let paplay = d.spawn_paplay(&wav, &[]);
    d.wait_for("the sink playing on the device", || {
        d.pactl_ok(&["list", "short", "sinks"])
            .contains("RUNNING")
            .then_some(())
    });
    pa.kill();
    d.wait_for("srbd noticing the device is gone", || {
        d.log().contains("ALSA device lost").then_some(())
    });
    let _pa = PrivatePulse::start(&pa_dir.0);
    d.wait_for("the device back", || {
        d.log().contains("ALSA device back").then_some(())
    });
    let out = wait_bounded(paplay, "paplay across the device's failure");
    d.assert_exit_ok(&out, "paplay across the device's failure");
    let log = d.log();
    let back = log
        .lines()
        .find(|l| l.contains("ALSA device back"))
        .expect("a return line");
    let discarded: u64 = common::srbd::log_field(back, "discarded_periods_total")
        .and_then(|v| v.parse().ok())
        .expect("the gap's discarded periods in the return line");
    assert!(discarded > 0, "the gap is counted: {back}");
}

/// Starts srbd with no `--output` and an ALSA configuration in which
/// `sysdefault` is `definition` (`{conf}`: the configuration's own
/// directory); returns the daemon and that directory.
fn with_sysdefault(tag: &str, definition: &str) -> (Daemon, common::srbd::TempDir) {
    let conf_dir = common::srbd::TempDir::new(&format!("{tag}-conf"));
    let conf = conf_dir.0.join("asound.conf");
    let definition = definition.replace("{conf}", conf_dir.0.to_str().unwrap());
    std::fs::write(&conf, format!("pcm.!sysdefault {{ {definition} }}\n")).unwrap();
    let path = format!("/usr/share/alsa/alsa.conf:{}", conf.display());
    let d = Daemon::start_default_output(
        tag,
        &[("ALSA_CONFIG_PATH", &path)],
        &["--dsp", "off", "--format", "s16le"],
    );
    (d, conf_dir)
}

/// The daemon's log and its `sink ready` line, once it is written (the
/// socket is there before the sink's engine starts).
fn sink_ready(d: &Daemon) -> (String, String) {
    d.wait_for("the sink ready", || {
        let log = d.log();
        let line = log.lines().find(|l| l.contains("sink ready"))?.to_owned();
        Some((log, line))
    })
}

#[test]
fn default_output_is_the_first_real_card() {
    let (mut d, conf) = with_sysdefault(
        "alsa-default-card",
        r#"type file slave.pcm "null" file "{conf}/card.raw" format "raw""#,
    );
    let (log, ready) = sink_ready(&d);
    assert_eq!(
        common::srbd::log_field(&ready, "output"),
        Some("alsa:sysdefault"),
        "{log}"
    );
    assert!(
        log.contains("playing to the sound card sysdefault"),
        "{log}"
    );
    let wav = d.path("in.wav");
    let samples = signal_i16(9600);
    write_wav_i16(&wav, 48_000, 2, &samples);
    d.paplay_ok(&wav);
    d.stop_ok();
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let out = std::fs::read(conf.0.join("card.raw")).expect("the default card's file");
    assert!(
        find(&out, &data).is_some(),
        "the default card got the audio"
    );
}

#[test]
fn a_sound_server_is_refused_as_the_default() {
    let (d, _conf) = with_sysdefault("alsa-default-server", "type pulse");
    let (log, ready) = sink_ready(&d);
    assert!(
        log.contains("refused as srbd's default"),
        "the server route is refused with a reason\n{log}"
    );
    assert_eq!(
        common::srbd::log_field(&ready, "output"),
        Some("null"),
        "{log}"
    );
}

#[test]
fn parec_from_an_alsa_capture_source_is_bit_exact() {
    setup();
    let dir = common::srbd::TempDir::new("alsa-in-data");
    let infile = dir.0.join("in.raw");
    // 20 s of s16 stereo with no zero sample: enough for any start-up.
    let data: Vec<u8> = signal_i16(2 * 48_000 * 20)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    std::fs::write(&infile, &data).unwrap();
    let device = format!("srbtest_in:INFILE={}", infile.display());
    let d = Daemon::start_args(
        "alsa-in",
        &[
            "--format",
            "s16le",
            "--dsp",
            "off",
            "--input",
            &format!("alsa:{device}"),
        ],
    );
    let name = srbd::control::capture_source::source_name(&device);
    let sources = d.pactl_ok(&["list", "sources"]);
    let ours = sources
        .split("Source #")
        .find(|s| s.contains(&format!("Name: {name}")))
        .unwrap_or_else(|| panic!("{name} listed\n{sources}"));
    for want in [
        "Sample Specification: s16le 2ch 48000Hz",
        "Monitor of Sink: n/a",
        "device.class = \"sound\"",
        "device.api = \"alsa\"",
        "Description: null",
    ] {
        assert!(ours.contains(want), "{want:?} in\n{ours}");
    }
    assert!(
        !d.pactl_ok(&["list", "short", "sinks"]).contains(&name),
        "a capture source is no sink"
    );
    d.pactl_ok(&["set-default-source", &name]);
    assert!(
        d.pactl_ok(&["info"])
            .contains(&format!("Default Source: {name}")),
        "set-default-source to the capture source"
    );
    let rec = d.path("rec.raw");
    let want_bytes = 4 * 9600;
    let parec = d.spawn_parec(
        &[
            // The default source now: the capture device.
            "--format=s16le",
            "--rate=48000",
            "--channels=2",
            "--raw",
        ],
        &rec,
    );
    d.wait_for("a recording of a few periods", || {
        let n = std::fs::metadata(&rec).map_or(0, |m| m.len());
        (n >= want_bytes + 4096).then_some(())
    });
    common::srbd::signal(&parec, common::srbd::Signal::TERM);
    wait_bounded(parec, "parec");
    let got = std::fs::read(&rec).unwrap();
    // The capture runs from srbd's start: find where parec joined.
    let start = got
        .chunks_exact(4)
        .position(|f| f != [0; 4])
        .expect("captured audio")
        * 4;
    let got = &got[start..];
    let at = find(&data, &got[..4096]).expect("the recording's start is in the device's file");
    let n = got.len() - got.len() % 4;
    assert!(
        data[at..at + n] == got[..n],
        "parec got the device's samples bit-exact"
    );
    // Mute is applied in software: a muted source records silence.
    d.pactl_ok(&["set-source-mute", &name, "1"]);
    let muted = d.path("muted.raw");
    let parec = d.spawn_parec(
        &["--format=s16le", "--rate=48000", "--channels=2", "--raw"],
        &muted,
    );
    d.wait_for("a muted recording", || {
        let n = std::fs::metadata(&muted).map_or(0, |m| m.len());
        (n >= want_bytes).then_some(())
    });
    common::srbd::signal(&parec, common::srbd::Signal::TERM);
    wait_bounded(parec, "parec (muted)");
    let got = std::fs::read(&muted).unwrap();
    assert!(
        got.len() >= want_bytes as usize && got.iter().all(|&b| b == 0),
        "a muted capture source records silence"
    );
}
