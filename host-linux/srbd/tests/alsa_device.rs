//! srbd's ALSA device layer driven directly, with no sound card: alsa-lib's
//! own plugins stand in for one.
//!
//! * playback through a `file` PCM over `null` (`format raw`): the file is
//!   bit-exact with what was written, in the format the device took;
//! * capture from a `file` PCM with an `infile`: the periods read are
//!   bit-exact with the file;
//! * a `null` device has no clock: it is paced at the nominal rate (the
//!   periods moved over a measured interval match it within a few);
//! * type detection from alsa-lib's configuration (no server needed): the
//!   `pulse` plugin, also behind `plug` or an `asym` direction, routes to a
//!   sound server; `file`, `null`, `hw` do not; the default-device rule
//!   refuses the server and skips what does not open;
//! * a device that vanishes mid-stream (the `pulse` plugin to a private
//!   PulseAudio that is killed) gives a named error; reopening fails while
//!   it is gone, on the back-off schedule, and succeeds when it returns.
//!
//! The ALSA configuration is written once per test process into cargo's
//! test temp dir and named by `ALSA_CONFIG_PATH` (alsa.conf first, for the
//! standard definitions), set before the first ALSA call.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alsa::Direction;
use common::alsa::{setup, PrivatePulse};
use common::srbd::{poll_until, Signal, TempDir, DEADLINE};
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::SampleSpec;
use srbd::engine::alsa::default::{choose_default, choose_from, Choice, DEFAULT_CANDIDATES};
use srbd::engine::alsa::route::route;
use srbd::engine::alsa::{
    AlsaCapture, AlsaCounters, AlsaMessages, AlsaPlayback, AlsaStream, Clock, DeviceError,
    OpenError, Reopen, Resilient,
};
use srbd::engine::audio::format as fmt;
use srbd::rt::alloc_count::{self, CountingAlloc};

/// Counts the allocations of armed threads (the period-path test).
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A wait that only a broken device would exceed.
const WAIT: Duration = Duration::from_secs(5);

fn spec(format: SampleFormat, channels: u8) -> SampleSpec {
    SampleSpec {
        format,
        channels,
        rate: 48_000,
    }
}

/// A deterministic signal, `n` samples: exact in every format tested
/// (multiples of 2⁻¹⁵ in [-1, 1)).
fn signal_samples(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = ((i as u64 * 2_654_435_761) % 65_536) as i32 - 32_768;
            x as f32 / 32_768.0
        })
        .collect()
}

fn encoded(format: SampleFormat, samples: &[f32]) -> Vec<u8> {
    let mut out = vec![0; samples.len() * fmt::sample_size(format).unwrap()];
    fmt::encode(format, samples, &mut out);
    out
}

fn counters() -> Arc<AlsaCounters> {
    Arc::new(AlsaCounters::default())
}

/// Plays `periods` periods of the test signal into `srbtest_out` with the
/// sink spec `want`; returns what was played and the file's bytes.
fn play_to_file(dir: &Path, want: SampleSpec, periods: usize) -> (Vec<u8>, Vec<u8>) {
    let out = dir.join("out.raw");
    let name = format!("srbtest_out:FILE={}", out.display());
    let mut dev = AlsaPlayback::open(&name, want, 480, counters()).unwrap();
    let neg = dev.negotiated().clone();
    assert_eq!(neg.format, want.format, "the file device takes any format");
    assert_eq!((neg.channels, neg.rate), (want.channels, want.rate));
    let n = neg.period_frames * usize::from(want.channels);
    let all = signal_samples(n * periods);
    for period in all.chunks(n) {
        dev.wait(WAIT).unwrap();
        dev.write_period(period).unwrap();
    }
    assert_eq!(dev.device().counters().snapshot().short_frames, 0);
    drop(dev); // closes the file plugin: everything is flushed
    (encoded(want.format, &all), std::fs::read(&out).unwrap())
}

#[test]
fn playback_through_file_plugin_is_bit_exact() {
    setup();
    for format in [fmt::S16LE, fmt::FLOAT32LE, fmt::S32LE, fmt::S24LE] {
        let dir = TempDir::new("alsa-play");
        let (played, file) = play_to_file(&dir.0, spec(format, 2), 20);
        assert_eq!(file.len(), played.len(), "{format}: file length");
        assert!(
            file == played,
            "{format}: file differs from what was played"
        );
    }
}

/// A device that refuses the sink's float format (the `linear` plugin
/// takes integer formats only) gets the first fallback it takes (S32);
/// alsa-lib's conversion to the file's S16 is then exact for this signal.
#[test]
fn format_refused_by_the_device_falls_back_and_converts() {
    setup();
    let dir = TempDir::new("alsa-linear");
    let out = dir.0.join("out.raw");
    let want = spec(fmt::FLOAT32LE, 2);
    let name = format!("srbtest_linear:FILE={}", out.display());
    let mut dev = AlsaPlayback::open(&name, want, 480, counters()).unwrap();
    assert_eq!(
        dev.negotiated().format,
        fmt::S32LE,
        "the first fallback taken"
    );
    let n = dev.negotiated().period_frames * 2;
    let all = signal_samples(n * 10);
    for period in all.chunks(n) {
        dev.wait(WAIT).unwrap();
        dev.write_period(period).unwrap();
    }
    drop(dev);
    assert!(
        std::fs::read(&out).unwrap() == encoded(fmt::S16LE, &all),
        "file differs"
    );
}

/// A stereo-only device (a `multi` of two bindings) under a mono sink:
/// each sample goes to both channels.
#[test]
fn channels_refused_by_the_device_are_remapped() {
    setup();
    let dir = TempDir::new("alsa-multi");
    let out = dir.0.join("out.raw");
    let name = format!("srbtest_stereo_only:FILE={}", out.display());
    let mut dev = AlsaPlayback::open(&name, spec(fmt::S16LE, 1), 480, counters()).unwrap();
    assert_eq!(dev.negotiated().channels, 2);
    let n = dev.negotiated().period_frames;
    let mono = signal_samples(n * 10);
    for period in mono.chunks(n) {
        dev.wait(WAIT).unwrap();
        dev.write_period(period).unwrap();
    }
    drop(dev);
    let stereo: Vec<f32> = mono.iter().flat_map(|&v| [v, v]).collect();
    assert!(
        std::fs::read(&out).unwrap() == encoded(fmt::S16LE, &stereo),
        "file differs"
    );
}

#[test]
fn capture_from_infile_is_bit_exact() {
    setup();
    let dir = TempDir::new("alsa-cap");
    let want = spec(fmt::S16LE, 2);
    let periods = 12;
    let frames = 480;
    let known = encoded(want.format, &signal_samples(frames * 2 * periods));
    let infile = dir.0.join("in.raw");
    std::fs::write(&infile, &known).unwrap();
    let name = format!("srbtest_in:INFILE={}", infile.display());
    let mut dev = AlsaCapture::open(&name, want, frames, counters()).unwrap();
    assert_eq!(dev.negotiated().period_frames, frames);
    let mut got = Vec::new();
    let mut buf = vec![0.0f32; frames * 2];
    for _ in 0..periods {
        dev.wait(WAIT).unwrap();
        let n = dev.read_period(&mut buf).unwrap();
        assert_eq!(n, frames, "a whole period");
        got.extend_from_slice(&buf);
    }
    assert!(
        encoded(want.format, &got) == known,
        "captured periods differ from the infile"
    );
}

/// Runs `period` (one wait and one transfer) for 400 ms of wall time
/// after a first period; asserts the periods match the nominal 10 ms
/// period within 3.
fn assert_paced<S: AlsaStream>(what: &str, dev: &mut S, mut period: impl FnMut(&mut S)) {
    assert_eq!(dev.device().clock(), Clock::Paced, "{what}: paced");
    assert_eq!(dev.negotiated().period_frames, 480, "{what}: 10 ms periods");
    period(dev);
    let start = Instant::now();
    let mut moved = 0u64;
    while start.elapsed() < Duration::from_millis(400) {
        period(dev);
        moved += 1;
    }
    let elapsed = start.elapsed();
    let nominal = elapsed.as_nanos() as f64 / 1e7;
    assert!(
        (moved as f64 - nominal).abs() <= 3.0,
        "{what}: {moved} periods in {elapsed:?}, nominal {nominal:.1}"
    );
}

/// Periods a clockless device moves over a measured interval match its
/// nominal rate: it must not run flat out.
#[test]
fn clockless_devices_are_paced_at_the_nominal_rate() {
    setup();
    let want = spec(fmt::S16LE, 2);
    let silence = vec![0.0f32; 480 * 2];
    for name in ["null", "srbtest_out:FILE=/dev/null"] {
        let mut dev = AlsaPlayback::open(name, want, 480, counters()).unwrap();
        assert_paced(name, &mut dev, |d| {
            d.wait(WAIT).unwrap();
            d.write_period(&silence).unwrap();
        });
    }
    let mut buf = silence.clone();
    let mut dev = AlsaCapture::open("null", want, 480, counters()).unwrap();
    assert_paced("null capture", &mut dev, |d| {
        d.wait(WAIT).unwrap();
        assert_eq!(d.read_period(&mut buf).unwrap(), 480);
    });
}

/// The period path (wait, convert, remap, transfer) makes no Rust
/// allocation once the devices are open: playback with a channel remap
/// and a format conversion, and capture, 20 periods each.
#[test]
fn period_path_does_not_allocate() {
    setup();
    let dir = TempDir::new("alsa-alloc");
    let out = format!(
        "srbtest_stereo_only:FILE={}",
        dir.0.join("out.raw").display()
    );
    let mut play = AlsaPlayback::open(&out, spec(fmt::FLOAT32LE, 1), 480, counters()).unwrap();
    assert_eq!(play.negotiated().channels, 2, "remapped");
    let mut cap = AlsaCapture::open("null", spec(fmt::S16LE, 1), 480, counters()).unwrap();
    let samples = signal_samples(480);
    let mut buf = vec![0.0f32; 480];
    let mut period = |play: &mut AlsaPlayback, cap: &mut AlsaCapture| {
        play_period(play, &samples).unwrap();
        cap.wait(WAIT).unwrap();
        assert_eq!(cap.read_period(&mut buf).unwrap(), 480);
    };
    period(&mut play, &mut cap);
    let before = alloc_count::count();
    alloc_count::arm();
    for _ in 0..20 {
        period(&mut play, &mut cap);
    }
    alloc_count::disarm();
    assert_eq!(
        alloc_count::count() - before,
        0,
        "allocations on the period path"
    );
}

#[test]
fn type_detection_needs_no_server() {
    setup();
    let pb = Direction::Playback;
    let server = |name: &str, dir| {
        route(name, dir)
            .unwrap()
            .to_sound_server()
            .map(str::to_owned)
    };
    assert_eq!(server("srbtest_pulse", pb).as_deref(), Some("pulse"));
    assert_eq!(server("pulse", pb).as_deref(), Some("pulse"));
    assert_eq!(server("srbtest_plug_pulse", pb).as_deref(), Some("pulse"));
    assert_eq!(
        server("srbtest_pipewire_inline", pb).as_deref(),
        Some("pipewire")
    );
    assert_eq!(server("srbtest_asym", pb).as_deref(), Some("pulse"));
    assert_eq!(server("srbtest_asym", Direction::Capture), None);
    let file = route("srbtest_out:FILE=/dev/null", pb).unwrap();
    assert_eq!(file.types, ["file", "null"]);
    assert!(file.unpaced() && file.to_sound_server().is_none());
    assert_eq!(file.pcm_type(), Some("file"));
    let null = route("null", pb).unwrap();
    assert!(null.unpaced() && null.to_sound_server().is_none());
    let hw = route("srbtest_no_card", pb).unwrap();
    assert_eq!(hw.types, ["hw"]);
    assert!(!hw.unpaced() && hw.to_sound_server().is_none());
    let plughw = route("plughw:0", pb).unwrap();
    assert_eq!(plughw.types, ["plug", "hw"]);
    assert!(route("srbtest_undefined", pb).is_err());
}

#[test]
fn default_rule_refuses_servers_and_skips_what_does_not_open() {
    setup();
    let pb = Direction::Playback;
    let file = "srbtest_out:FILE=/dev/null";
    assert_eq!(
        choose_from(&["srbtest_plug_pulse", "srbtest_no_card", file], pb),
        Choice::Alsa(file.to_owned())
    );
    let Choice::Null { passed_over } = choose_from(&["srbtest_pulse", "srbtest_no_card"], pb)
    else {
        panic!("nothing usable: the null sink");
    };
    assert_eq!(passed_over.len(), 2);
    assert!(
        passed_over[0].1.contains("pulse sound server"),
        "{passed_over:?}"
    );
    assert!(
        passed_over[1].1.contains("does not open"),
        "{passed_over:?}"
    );
}

#[test]
fn alsa_lib_messages_are_collected_not_printed() {
    setup();
    let mut messages = AlsaMessages::install().unwrap();
    // The pulse plugin with no server: alsa-lib reports why.
    let r = AlsaPlayback::open("srbtest_pulse", spec(fmt::S16LE, 2), 480, counters());
    assert!(matches!(r, Err(OpenError::Open { .. })), "{r:?}");
    let lines = messages.take_new();
    assert!(lines.iter().any(|l| l.contains("PulseAudio")), "{lines:?}");
    assert!(messages.take_new().is_empty(), "each line is taken once");
}

/// On this machine's real configuration: the default is a card that does
/// not route to a server, or (no card, as in CI) the null sink with both
/// candidates passed over.
#[test]
fn default_device_is_a_card_or_null() {
    setup();
    match choose_default(Direction::Playback) {
        Choice::Alsa(name) => {
            let r = route(&name, Direction::Playback).unwrap();
            assert_eq!(r.to_sound_server(), None, "{name}: {r:?}");
        }
        Choice::Null { passed_over } => {
            let names: Vec<&str> = passed_over.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, DEFAULT_CANDIDATES, "{passed_over:?}");
        }
    }
}

#[test]
fn bad_specs_and_names_are_named_errors() {
    setup();
    let bad = SampleSpec {
        format: SampleFormat::Unknown(77),
        channels: 2,
        rate: 48_000,
    };
    assert!(matches!(
        AlsaPlayback::open("null", bad, 480, counters()),
        Err(OpenError::BadSpec { .. })
    ));
    assert!(matches!(
        AlsaPlayback::open("nul\0l", spec(fmt::S16LE, 2), 480, counters()),
        Err(OpenError::BadName(_))
    ));
    assert!(matches!(
        AlsaPlayback::open("srbtest_no_card", spec(fmt::S16LE, 2), 480, counters()),
        Err(OpenError::Open { .. })
    ));
}

/// One period on an open device: wait for room, write.
fn play_period(dev: &mut AlsaPlayback, samples: &[f32]) -> Result<(), DeviceError> {
    dev.wait(WAIT)?;
    dev.write_period(samples)
}

/// Sleeps until `dev`'s next reopen attempt is due.
fn until_due(dev: &Resilient<AlsaPlayback>) -> Instant {
    let next = dev.next_attempt().expect("a reopen is scheduled");
    std::thread::sleep(next.saturating_duration_since(Instant::now()));
    Instant::now()
}

#[test]
fn vanished_device_is_a_named_error_and_reopens_when_it_returns() {
    setup();
    let mut messages = AlsaMessages::install().unwrap();
    let dir = TempDir::new("alsa-pa");
    let mut pa = PrivatePulse::start(&dir.0);
    let name = pa.device();
    let want = spec(fmt::S16LE, 2);
    let (mut dev, err) =
        Resilient::<AlsaPlayback>::open(&name, want, 480, counters(), Instant::now());
    assert!(err.is_none(), "{err:?}");
    let s = dev.stream().unwrap();
    assert_eq!(
        s.device().clock(),
        Clock::Device,
        "the server's sink clocks it"
    );
    assert_eq!(s.device().routes_to_sound_server(), Some("pulse"));
    let samples = signal_samples(s.negotiated().period_frames * 2);
    for _ in 0..10 {
        play_period(dev.stream().unwrap(), &samples).unwrap();
    }

    pa.kill();
    let err = poll_until(
        "the device fails once its server is gone",
        || play_period(dev.stream().unwrap(), &samples).err(),
        String::new,
    );
    eprintln!("device error after the server was killed: {err}");
    assert!(
        matches!(
            err,
            DeviceError::Vanished { .. } | DeviceError::Failed { .. } | DeviceError::Stalled { .. }
        ),
        "{err}"
    );
    let lost = Instant::now();
    dev.failed(&err, lost);
    assert!(dev.stream().is_none());
    assert_eq!(dev.next_attempt(), Some(lost + Reopen::FIRST));
    assert!(!dev.reopen_if_due(lost), "not due yet");

    // While the server is gone, reopening fails, each time waiting longer.
    let mut previous = Reopen::FIRST;
    for _ in 0..2 {
        let now = until_due(&dev);
        assert!(!dev.reopen_if_due(now), "reopened with no server");
        let wait = dev.next_attempt().unwrap() - now;
        assert_eq!(wait, previous * 2, "back-off doubles");
        previous = wait;
    }
    let c = dev.counters().snapshot();
    assert_eq!((c.failures, c.reopen_attempts, c.reopens), (1, 2, 0));
    let lines = messages.take_new();
    assert!(
        lines.iter().any(|l| l.contains("Unable to connect")),
        "alsa-lib's reasons are collected: {lines:?}"
    );

    // The server returns: a due attempt succeeds and the device plays.
    let _pa2 = PrivatePulse::start(&dir.0);
    let start = Instant::now();
    while !dev.reopen_if_due(until_due(&dev)) {
        assert!(start.elapsed() < DEADLINE, "no reopen within {DEADLINE:?}");
    }
    for _ in 0..10 {
        play_period(dev.stream().unwrap(), &samples).unwrap();
    }
    let c = dev.counters().snapshot();
    assert_eq!((c.failures, c.reopens), (1, 1), "{c:?}");
    assert!(c.reopen_attempts >= 3, "{c:?}");
    assert_eq!(dev.next_attempt(), None, "nothing scheduled once back");
}

/// An underrun is recovered on the spot and counted, and playback goes
/// on: a device left unfed for many buffers (a private PulseAudio's null
/// sink through the `pulse` plugin, which reports underruns) runs out.
/// (Capture overruns are not tested: the `pulse` plugin keeps capturing
/// into the server's buffer and reports none.)
#[test]
fn underrun_is_recovered_and_counted() {
    setup();
    let mut messages = AlsaMessages::install().unwrap();
    let dir = TempDir::new("alsa-xrun");
    let pa = PrivatePulse::start(&dir.0);
    let mut play = AlsaPlayback::open(&pa.device(), spec(fmt::S16LE, 2), 480, counters()).unwrap();
    let samples = signal_samples(play.negotiated().period_frames * 2);
    for _ in 0..5 {
        play_period(&mut play, &samples).unwrap();
    }
    assert_eq!(play.device().counters().snapshot().underruns, 0);
    // Twenty buffers long: the device has run out of samples.
    let buffer = play.negotiated().buffer_frames as u64;
    std::thread::sleep(Duration::from_millis(20 * 1000 * buffer / 48_000));
    for _ in 0..5 {
        play_period(&mut play, &samples).unwrap();
    }
    let c = play.device().counters().snapshot();
    assert!(c.underruns >= 1 && c.recoveries >= c.underruns, "{c:?}");
    assert_eq!(c.failures, 0);
    let _ = messages.take_new();
}

/// A device that stops moving without an error (its server frozen with
/// SIGSTOP) is `Stalled` once a wait passes its timeout.
#[test]
fn frozen_device_is_stalled() {
    setup();
    let mut messages = AlsaMessages::install().unwrap();
    let dir = TempDir::new("alsa-stall");
    let pa = PrivatePulse::start(&dir.0);
    let mut play = AlsaPlayback::open(&pa.device(), spec(fmt::S16LE, 2), 480, counters()).unwrap();
    let samples = signal_samples(play.negotiated().period_frames * 2);
    for _ in 0..5 {
        play_period(&mut play, &samples).unwrap();
    }
    pa.signal(Signal::STOP);
    let err = poll_until(
        "the frozen device stalls",
        || {
            let r = play.wait(Duration::from_millis(200));
            r.and_then(|()| play.write_period(&samples)).err()
        },
        String::new,
    );
    pa.signal(Signal::CONT);
    assert!(matches!(err, DeviceError::Stalled { .. }), "{err}");
    let _ = messages.take_new();
}

#[test]
fn device_missing_at_start_is_retried_on_schedule() {
    setup();
    let t0 = Instant::now();
    let (mut dev, err) = Resilient::<AlsaPlayback>::open(
        "srbtest_no_card",
        spec(fmt::S16LE, 2),
        480,
        counters(),
        t0,
    );
    assert!(matches!(err, Some(OpenError::Open { .. })), "{err:?}");
    assert!(dev.stream().is_none());
    assert!(!dev.reopen_if_due(t0 + Reopen::FIRST / 2), "not due yet");
    assert!(!dev.reopen_if_due(t0 + Reopen::FIRST), "still no card");
    assert_eq!(
        dev.next_attempt(),
        Some(t0 + Reopen::FIRST + Reopen::FIRST * 2)
    );
    let c = dev.counters().snapshot();
    assert_eq!((c.failures, c.reopen_attempts, c.reopens), (0, 1, 0));
}
