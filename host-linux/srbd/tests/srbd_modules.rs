//! End-to-end: several sinks, stream moves, default changes and modules,
//! against Debian's `pactl`, `pacat`, `paplay` and `parec` (libpulse 16.1).
//!
//! * `module-null-sink` loaded with `pactl load-module` answers its module
//!   index and is listed as PulseAudio 16.1 lists it for the same command
//!   (observed: `Name`, `Description`, `State: IDLE`, `Owner Module`, the
//!   sample spec, `device.description`, `device.class = "abstract"`, its
//!   monitor with `device.class = "monitor"`; `pactl list modules` shows
//!   the name and the argument string as given); `paplay --device=rec` is
//!   recorded bit-exactly from `parec --device=rec.monitor`; unloading it
//!   removes sink and monitor and moves the stream on it to the default
//!   sink, where it keeps playing.
//! * A `pacat` playing a counted signal (every frame distinct) is moved
//!   from one null sink to another while `parec` records both monitors:
//!   the two recordings, silence dropped, concatenate to exactly the
//!   played frames, none lost, none repeated; `pacat -v` is told where its
//!   stream went (PLAYBACK_STREAM_MOVED).
//! * A `parec` (float32le stereo 48 kHz) of a 48 kHz stereo sink's
//!   monitor, where a DC of (0.25, 0.75) plays, is moved to the monitor
//!   of a 44.1 kHz mono sink playing a 200 Hz sine: it keeps running and
//!   records, silence aside, the first sink's frame exactly up to the
//!   move and equal channels within the sine's range after it, at 200 Hz
//!   (±0.5 Hz): nothing converted as the other sink's shape.
//! * `pactl set-default-sink` moves a stream that named no device and not
//!   one that did (PulseAudio 15+), and `pactl info` shows the new default;
//!   `move-source-output` moves a `parec` to another monitor (it then
//!   records that sink's silence, then its stream once the default sink
//!   moves there), `set-default-source` moves the unpinned one only.
//!   The state page lists both sinks and monitors, the null sink RUNNING
//!   once the stream moved there.
//! * Errors: an unknown module and a bad argument answer "Module
//!   initialization failed" (PulseAudio's words) with a log line naming
//!   the module and the argument; unloading an unknown index answers "No
//!   such entity". A config file's `[[modules]]` are loaded at start.
//! * `module-remap-sink` with `master_channel_map` swapped: a tone played
//!   on the left of the remap sink is heard on the right of the master
//!   (and nothing on its left); unloading removes the sink and its
//!   loopback streams.
//! * `module-loopback` from one null sink's monitor into another: after
//!   30 s a 1 kHz tone is heard on the far side at its frequency (within
//!   0.1 %) and level.

mod common;

use common::libpulse::floats;
use common::srbd::{f32le_bytes, wait_bounded, write_wav_f32, Daemon, TempDir};
use srb_linux::state_page::StreamState;

/// The sink: float32le stereo 48 kHz, null output, no DSP.
const SINK: [&str; 8] = [
    "--format",
    "float32le",
    "--rate",
    "48000",
    "--channels",
    "2",
    "--dsp",
    "off",
];

/// `pacat`/`parec` args for float32le stereo 48 kHz (the sinks' format).
const F32_STEREO: [&str; 4] = [
    "--format=float32le",
    "--rate=48000",
    "--channels=2",
    "--raw",
];

/// `n` frames of stereo float, every frame distinct and none silent:
/// frame `i` is `((i + 1) / 2^17, -(i + 1) / 2^17)`, exact in f32.
fn counted(n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let x = (i + 1) as f32 / 131_072.0;
            [x, -x]
        })
        .collect()
}

/// The frames of a float32 stereo recording that are not silence.
fn heard(bytes: &[u8]) -> Vec<[f32; 2]> {
    floats(bytes)
        .chunks_exact(2)
        .filter(|f| f != &[0.0, 0.0])
        .map(|f| [f[0], f[1]])
        .collect()
}

fn frames(samples: &[f32]) -> Vec<[f32; 2]> {
    samples.chunks_exact(2).map(|f| [f[0], f[1]]).collect()
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The sink-input rows of `pactl list short sink-inputs`: (index, sink).
fn inputs(d: &Daemon) -> Vec<(u32, u32)> {
    d.list_short("sink-inputs")
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect()
}

/// The block of `pactl list <what>` about the object named `name`.
fn block(d: &Daemon, what: &str, name: &str) -> String {
    let all = d.pactl_ok(&["list", what]);
    all.split("\n\n")
        .find(|b| b.contains(&format!("Name: {name}\n")))
        .unwrap_or_else(|| panic!("no {name} in pactl list {what}:\n{all}"))
        .to_owned()
}

fn load(d: &Daemon, args: &[&str]) -> u32 {
    let mut all = vec!["load-module"];
    all.extend_from_slice(args);
    d.pactl_ok(&all).trim().parse().expect("a module index")
}

#[test]
fn null_sink_is_listed_like_pulseaudio_and_records_bit_exactly() {
    let d = Daemon::start_args("mod-null", &SINK);
    let m = load(
        &d,
        &[
            "module-null-sink",
            "sink_name=rec",
            "sink_properties=device.description=Rec",
        ],
    );
    assert_eq!(m, 0, "the first module's index");
    let sink = block(&d, "sinks", "rec");
    for want in [
        "Sink #1",
        "State: IDLE",
        "Description: Rec",
        "Sample Specification: float32le 2ch 48000Hz",
        "Channel Map: front-left,front-right",
        "Owner Module: 0",
        "Monitor Source: rec.monitor",
        "device.description = \"Rec\"",
        "device.class = \"abstract\"",
    ] {
        assert!(sink.contains(want), "{want:?} not in\n{sink}");
    }
    let source = block(&d, "sources", "rec.monitor");
    for want in [
        "Source #1",
        "State: IDLE",
        "Monitor of Sink: rec",
        "device.class = \"monitor\"",
        "Owner Module: 0",
    ] {
        assert!(source.contains(want), "{want:?} not in\n{source}");
    }
    let module = d.pactl_ok(&["list", "modules"]);
    for want in [
        "Module #0",
        "Name: module-null-sink",
        "Argument: sink_name=rec sink_properties=device.description=Rec",
    ] {
        assert!(module.contains(want), "{want:?} not in\n{module}");
    }

    // paplay into the null sink, recorded from its monitor bit-exactly.
    let played = counted(48_000);
    let wav = d.path("counted.wav");
    write_wav_f32(&wav, 48_000, 2, &played);
    let rec = d.path("rec.raw");
    let parec = d.spawn_parec(
        &[&["--device=rec.monitor"][..], &F32_STEREO[..]].concat(),
        &rec,
    );
    d.wait_for("parec's source output", || {
        (d.list_short("source-outputs").len() == 1).then_some(())
    });
    let out = wait_bounded(
        d.spawn_paplay(&wav, &["--device=rec"]),
        "paplay --device=rec",
    );
    d.assert_exit_ok(&out, "paplay --device=rec");
    let want = frames(&played);
    d.wait_for("the whole file recorded", || {
        (heard(&std::fs::read(&rec).unwrap()).len() >= want.len()).then_some(())
    });
    common::srbd::signal(&parec, common::srbd::Signal::INT);
    wait_bounded(parec, "parec");
    assert!(
        heard(&std::fs::read(&rec).unwrap()) == want,
        "the monitor's recording is not the file, frame for frame"
    );

    // A stream on it; unloading moves the stream to the default sink.
    let mut pacat = d.spawn_pacat(&[&["--device=rec"][..], &F32_STEREO[..]].concat());
    let feeder =
        common::srbd::Feeder::start(pacat.stdin.take().unwrap(), f32le_bytes(&counted(1024)));
    let (input, on) = d.wait_for("pacat's sink input", || inputs(&d).first().copied());
    assert_eq!(on, 1, "pacat plays on rec");
    assert!(block(&d, "sinks", "rec").contains("State: RUNNING"));
    d.pactl_ok(&["unload-module", "0"]);
    assert!(!d.pactl_ok(&["list", "short", "sinks"]).contains("rec"));
    assert!(!d
        .pactl_ok(&["list", "short", "sources"])
        .contains("rec.monitor"));
    assert!(!d
        .pactl_ok(&["list", "short", "modules"])
        .contains("null-sink"));
    assert_eq!(inputs(&d), vec![(input, 0)], "moved to srb_output");
    assert!(pacat.try_wait().unwrap().is_none(), "pacat still plays");
    feeder.finish(2);
    let out = wait_bounded(pacat, "pacat after its sink went");
    d.assert_exit_ok(&out, "pacat after its sink went");
    d.assert_log_clean();
}

#[test]
fn a_moved_stream_loses_and_repeats_nothing() {
    let d = Daemon::start_args("mod-move", &SINK);
    load(&d, &["module-null-sink", "sink_name=a"]);
    load(&d, &["module-null-sink", "sink_name=b"]);
    let (rec_a, rec_b) = (d.path("a.raw"), d.path("b.raw"));
    let parec_a = d.spawn_parec(
        &[&["--device=a.monitor"][..], &F32_STEREO[..]].concat(),
        &rec_a,
    );
    let parec_b = d.spawn_parec(
        &[&["--device=b.monitor"][..], &F32_STEREO[..]].concat(),
        &rec_b,
    );
    d.wait_for("two source outputs", || {
        (d.list_short("source-outputs").len() == 2).then_some(())
    });
    // Three seconds, every frame distinct, played once from a file.
    let played = counted(3 * 48_000);
    let raw = d.path("counted.raw");
    std::fs::write(&raw, f32le_bytes(&played)).unwrap();
    let pacat = d
        .client("pacat")
        .args(["--device=a", "-v"])
        .args(F32_STEREO)
        .arg(&raw)
        .spawn()
        .unwrap();
    let (input, _) = d.wait_for("pacat's sink input", || inputs(&d).first().copied());
    // Half a second on a, then the move.
    d.wait_for("half a second on a", || {
        (file_len(&rec_a) >= 48_000 * 8 / 2
            && heard(&std::fs::read(&rec_a).unwrap()).len() >= 24_000)
            .then_some(())
    });
    d.pactl_ok(&["move-sink-input", &input.to_string(), "b"]);
    assert_eq!(inputs(&d), vec![(input, 2)], "on b");
    let out = wait_bounded(pacat, "pacat");
    d.assert_exit_ok(&out, "pacat");
    // PLAYBACK_STREAM_MOVED told the client where it went.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Stream moved to device b (2, not suspended)"),
        "{said}"
    );
    let want = frames(&played);
    let last = *want.last().unwrap();
    d.wait_for("the last frame recorded on b", || {
        heard(&std::fs::read(&rec_b).unwrap())
            .contains(&last)
            .then_some(())
    });
    for p in [parec_a, parec_b] {
        common::srbd::signal(&p, common::srbd::Signal::INT);
        wait_bounded(p, "parec");
    }
    let a = heard(&std::fs::read(&rec_a).unwrap());
    let b = heard(&std::fs::read(&rec_b).unwrap());
    assert!(
        a.len() >= 24_000 && !b.is_empty(),
        "{} on a, {} on b",
        a.len(),
        b.len()
    );
    let both: Vec<[f32; 2]> = a.iter().chain(&b).copied().collect();
    if both != want {
        let first_bad = both.iter().zip(&want).position(|(x, y)| x != y);
        panic!(
            "a ({}) + b ({}) frames are not the {} played: first difference at {first_bad:?}",
            a.len(),
            b.len(),
            want.len()
        );
    }
    d.assert_log_clean();
}

/// `pacat` playing `samples` (float32le, `channels` at `rate`) to
/// `device`.
fn play(
    d: &Daemon,
    device: &str,
    rate: u32,
    channels: usize,
    samples: &[f32],
) -> std::process::Child {
    let raw = d.path(&format!("{device}-played.raw"));
    std::fs::write(&raw, f32le_bytes(samples)).unwrap();
    d.client("pacat")
        .arg(format!("--device={device}"))
        .args(["--format=float32le", "--raw"])
        .arg(format!("--rate={rate}"))
        .arg(format!("--channels={channels}"))
        .arg(&raw)
        .spawn()
        .unwrap()
}

#[test]
fn a_recording_moved_to_a_sink_of_another_shape_continues_converted_anew() {
    let d = Daemon::start_args("mod-move-shape", &SINK);
    load(&d, &["module-null-sink", "sink_name=a"]);
    load(
        &d,
        &[
            "module-null-sink",
            "sink_name=b",
            "rate=44100",
            "channels=1",
        ],
    );
    let rec = d.path("rec.raw");
    let parec = d.spawn_parec(
        &[&["--device=a.monitor"][..], &F32_STEREO[..]].concat(),
        &rec,
    );
    // a: a DC of (0.25, 0.75); b: a 200 Hz sine of amplitude 0.5, mono
    // (upmixed to equal channels), 30 s each.
    let on_a = [0.25f32, 0.75];
    let dc: Vec<f32> = (0..30 * 48_000).flat_map(|_| on_a).collect();
    let sine: Vec<f32> = (0..30 * 44_100)
        .map(|i| 0.5 * (2.0 * std::f64::consts::PI * 200.0 * f64::from(i) / 44_100.0).sin() as f32)
        .collect();
    let pacat_a = play(&d, "a", 48_000, 2, &dc);
    let pacat_b = play(&d, "b", 44_100, 1, &sine);
    let is_a = |f: &[f32; 2]| *f == on_a;
    // Equal channels, within the sine's range (and the new resampler's
    // ringing as it starts from silence, some 13 %).
    let is_b = |f: &[f32; 2]| f[0] == f[1] && f[0].abs() <= 0.6;
    let wait_heard = |what: &str, is: &dyn Fn(&[f32; 2]) -> bool, n: usize| {
        d.wait_for(what, || {
            let got = heard(&std::fs::read(&rec).unwrap());
            (got.iter().filter(|f| is(f)).count() >= n).then_some(())
        })
    };
    wait_heard("a quarter second of a", &is_a, 12_000);
    let (output, source) = d.wait_for("parec's source output", || {
        d.list_short("source-outputs")
            .first()
            .map(|r| (r[0].clone(), r[1].clone()))
    });
    d.pactl_ok(&["move-source-output", &output, "b.monitor"]);
    wait_heard("a second of b", &is_b, 48_000);
    assert!(
        d.list_short("source-outputs")
            .iter()
            .any(|r| r[0] == output && r[1] != source),
        "the recording moved off a.monitor: {:?}",
        d.list_short("source-outputs")
    );
    for p in [pacat_a, pacat_b] {
        common::srbd::signal(&p, common::srbd::Signal::INT);
        wait_bounded(p, "pacat");
    }
    common::srbd::signal(&parec, common::srbd::Signal::INT);
    let out = wait_bounded(parec, "parec");
    d.assert_exit_ok(&out, "parec");
    let all = heard(&std::fs::read(&rec).unwrap());
    let first_b = all.iter().position(is_b).expect("b heard");
    for (k, f) in all.iter().enumerate() {
        assert!(
            if k < first_b { is_a(f) } else { is_b(f) },
            "frame {k} {f:?} is not the expected sink's signal (first of b at {first_b})"
        );
    }
    // After the move, b's sine at its own pitch: converted from 44.1 kHz
    // mono, not read as the first sink's shape.
    let left: Vec<f32> = all[first_b..].iter().map(|f| f[0]).collect();
    let z = upward_crossings(&left[left.len() - 48_000..]);
    let freq = (z.len() - 1) as f64 * 48_000.0 / (z[z.len() - 1] - z[0]);
    assert!((freq - 200.0).abs() < 0.5, "b recorded at {freq} Hz");
    d.assert_log_clean();
}

#[test]
fn a_default_change_moves_only_unpinned_streams() {
    let d = Daemon::start_args("mod-default", &SINK);
    load(&d, &["module-null-sink", "sink_name=x"]);
    let chunk = f32le_bytes(&counted(1024));
    let mut free = d.spawn_pacat(&F32_STEREO);
    let feed_free = common::srbd::Feeder::start(free.stdin.take().unwrap(), chunk.clone());
    let (i_free, _) = d.wait_for("the unpinned input", || inputs(&d).first().copied());
    let mut pinned = d.spawn_pacat(&[&["--device=srb_output"][..], &F32_STEREO[..]].concat());
    let feed_pinned = common::srbd::Feeder::start(pinned.stdin.take().unwrap(), chunk);
    let i_pinned = d.wait_for("the pinned input", || {
        inputs(&d).iter().map(|r| r.0).find(|&i| i != i_free)
    });
    assert_eq!(inputs(&d), vec![(i_free, 0), (i_pinned, 0)]);
    // The state page lists every sink and monitor, with their states.
    let page = d.state_page();
    d.wait_for("x on the state page", || {
        let s = page.snapshot().ok()?;
        let names: Vec<&str> = s.sinks().iter().map(|x| x.name.as_str()).collect();
        let sources: Vec<&str> = s.sources().iter().map(|x| x.name.as_str()).collect();
        (names == ["srb_output", "x"]
            && sources == ["srb_output.monitor", "x.monitor"]
            && s.sinks()[1].index == 1
            && s.sinks()[1].periods > 0)
            .then_some(())
    });
    d.pactl_ok(&["set-default-sink", "x"]);
    assert!(d.pactl_ok(&["info"]).contains("Default Sink: x\n"));
    d.wait_for("x RUNNING on the state page", || {
        let s = page.snapshot().ok()?;
        (s.sinks()[1].state == StreamState::Running).then_some(())
    });
    assert!(d
        .pactl_ok(&["info"])
        .contains("Default Source: x.monitor\n"));
    assert_eq!(inputs(&d), vec![(i_free, 1), (i_pinned, 0)]);
    d.pactl_ok(&["set-default-sink", "srb_output"]);
    assert_eq!(inputs(&d), vec![(i_free, 0), (i_pinned, 0)]);
    // Record streams: one on the default source follows a default change,
    // one moved by hand stays where it was put.
    let outputs = |d: &Daemon| -> Vec<(u32, u32)> {
        d.list_short("source-outputs")
            .iter()
            .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
            .collect()
    };
    let (rec_free, rec_moved) = (d.path("free.raw"), d.path("moved.raw"));
    let parec_free = d.spawn_parec(&F32_STEREO, &rec_free);
    let o_free = d.wait_for("the unpinned output", || outputs(&d).first().map(|r| r.0));
    let parec_moved = d.spawn_parec(
        &[&["--latency-msec=50"][..], &F32_STEREO[..]].concat(),
        &rec_moved,
    );
    let o_moved = d.wait_for("the second output", || {
        outputs(&d).iter().map(|r| r.0).find(|&i| i != o_free)
    });
    d.pactl_ok(&["move-source-output", &o_moved.to_string(), "x.monitor"]);
    assert_eq!(outputs(&d), vec![(o_free, 0), (o_moved, 1)]);
    // The moved one records x's monitor: the unpinned stream plays there
    // once x is the default.
    d.pactl_ok(&["set-default-source", "x.monitor"]);
    assert_eq!(outputs(&d), vec![(o_free, 1), (o_moved, 1)]);
    d.pactl_ok(&["set-default-source", "srb_output.monitor"]);
    assert_eq!(outputs(&d), vec![(o_free, 0), (o_moved, 1)]);
    // Half a second of the last second recorded: x is silent (nothing
    // plays there yet), so the moved stream records silence; once the
    // unpinned pacat follows the default to x, it hears it.
    let last_half_second = |path: &std::path::Path| {
        let b = std::fs::read(path).unwrap();
        let tail = b.len().saturating_sub(24_000 * 8) / 8 * 8;
        heard(&b[tail..]).len()
    };
    let len = file_len(&rec_moved);
    d.wait_for("a second recorded after the move", || {
        (file_len(&rec_moved) >= len + 48_000 * 8).then_some(())
    });
    assert_eq!(last_half_second(&rec_moved), 0, "x.monitor is silent");
    d.pactl_ok(&["set-default-sink", "x"]);
    d.wait_for("x's monitor heard through the moved record stream", || {
        (last_half_second(&rec_moved) > 12_000).then_some(())
    });
    for p in [parec_free, parec_moved] {
        common::srbd::signal(&p, common::srbd::Signal::INT);
        wait_bounded(p, "parec");
    }
    feed_free.finish(1);
    feed_pinned.finish(1);
    for (p, what) in [(free, "unpinned pacat"), (pinned, "pinned pacat")] {
        let out = wait_bounded(p, what);
        d.assert_exit_ok(&out, what);
    }
    d.assert_log_clean();
}

#[test]
fn module_errors_and_config_modules() {
    let cfg = TempDir::new("mod-cfg");
    let path = cfg.0.join("srbd.toml");
    std::fs::write(
        &path,
        "[[modules]]\nname = \"module-null-sink\"\nargs = \"sink_name=from_config sink_properties=\\\"device.description='From config'\\\"\"\n",
    )
    .unwrap();
    let mut args = SINK.to_vec();
    let p = path.to_str().unwrap();
    args.extend(["--config", p]);
    let d = Daemon::start_args("mod-errors", &args);
    let sink = block(&d, "sinks", "from_config");
    assert!(sink.contains("Description: From config"), "{sink}");

    for (argv, logged) in [
        (&["load-module", "module-bogus"][..], "module-bogus"),
        (&["load-module", "module-null-sink", "bogus=1"][..], "bogus"),
        (&["load-module", "module-null-sink", "rate=abc"][..], "rate"),
        (
            &["load-module", "module-null-sink", "sink_name=\"open"][..],
            "sink_name",
        ),
        (
            &["load-module", "module-null-sink", "sink_name=from_config"][..],
            "sink_name",
        ),
    ] {
        let out = d.pactl(argv);
        assert!(!out.status.success(), "{argv:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Module initialization failed"),
            "{argv:?}: {err}"
        );
        let log = common::srbd::strip_ansi(&d.log());
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("LOAD_MODULE failed"))
            .unwrap_or_else(|| panic!("no log line for {argv:?}:\n{log}"));
        assert!(line.contains(logged), "{argv:?}: {line}");
    }
    let out = d.pactl(&["unload-module", "99"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such entity"));
    // Nothing half-made is left behind.
    assert_eq!(d.list_short("sinks").len(), 2);
    assert_eq!(d.list_short("modules").len(), 1);
}

/// Zero crossings (upward) of `x`, each at a fractional sample position.
fn upward_crossings(x: &[f32]) -> Vec<f64> {
    x.windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(-w[0]) / f64::from(w[1] - w[0]))
        .collect()
}

#[test]
fn a_loopback_between_two_null_sinks_keeps_pitch_and_level_for_30_s() {
    const RATE: f64 = 48_000.0;
    let d = Daemon::start_args("mod-loopback", &SINK);
    load(&d, &["module-null-sink", "sink_name=a"]);
    load(&d, &["module-null-sink", "sink_name=b"]);
    let m = load(
        &d,
        &[
            "module-loopback",
            "source=a.monitor",
            "sink=b",
            "latency_msec=200",
        ],
    );
    let listed = d.pactl_ok(&["list", "modules"]);
    assert!(
        listed.contains("Argument: source=a.monitor sink=b latency_msec=200"),
        "{listed}"
    );
    // The loopback's streams are listed on a's monitor and on b.
    assert!(d.list_short("source-outputs").iter().any(|r| r[1] == "1"));
    assert!(inputs(&d).iter().any(|r| r.1 == 2));

    let rec = d.path("b.raw");
    let parec = d.spawn_parec(
        &[&["--device=b.monitor"][..], &F32_STEREO[..]].concat(),
        &rec,
    );
    // A 1 kHz tone at half scale: 48 samples a cycle, 32 cycles a chunk
    // (12288 bytes, a multiple of 4096 as the feeder wants).
    let tone: Vec<f32> = (0..1536 * 4)
        .flat_map(|i| {
            let x = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / RATE).sin();
            [x as f32, x as f32]
        })
        .collect();
    let mut pacat = d.spawn_pacat(&[&["--device=a"][..], &F32_STEREO[..]].concat());
    let feeder = common::srbd::Feeder::start(pacat.stdin.take().unwrap(), f32le_bytes(&tone));
    // 31 s recorded (the first second may be the loopback filling up).
    let want_bytes = 31 * 48_000 * 8;
    d.wait_for("31 s recorded on b", || {
        (file_len(&rec) >= want_bytes).then_some(())
    });
    common::srbd::signal(&parec, common::srbd::Signal::INT);
    wait_bounded(parec, "parec");
    feeder.finish(1);
    wait_bounded(pacat, "pacat");
    let left: Vec<f32> = floats(&std::fs::read(&rec).unwrap())
        .chunks_exact(2)
        .map(|f| f[0])
        .collect();
    let first = left
        .iter()
        .position(|x| x.abs() > 0.01)
        .expect("the tone reached b");
    assert!(
        (first as f64) < RATE,
        "the tone reached b only after {first} frames"
    );
    let heard = &left[first..];
    assert!(
        heard.len() as f64 >= 30.0 * RATE,
        "{} frames heard",
        heard.len()
    );
    // Frequency from upward zero crossings, level from RMS.
    let measure = |x: &[f32]| {
        let z = upward_crossings(x);
        let freq = (z.len() - 1) as f64 * RATE / (z[z.len() - 1] - z[0]);
        let rms = (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        (freq, rms * 2f64.sqrt())
    };
    // The last 2 s.
    let (freq, amplitude) = measure(&heard[heard.len() - 2 * 48_000..]);
    eprintln!("loopback after 30 s: {freq:.4} Hz, amplitude {amplitude:.5}");
    assert!(
        (freq / 1000.0 - 1.0).abs() < 0.001,
        "the tone is at {freq} Hz on b after 30 s"
    );
    assert!(
        (amplitude / 0.5 - 1.0).abs() < 0.01,
        "the tone's amplitude is {amplitude} on b"
    );
    // And every second before: the rate matching never bends the pitch
    // by 0.1 %.
    let worst_freq = heard
        .chunks_exact(48_000)
        .map(|w| measure(w).0)
        .fold(1000.0f64, |a, f| {
            if (f - 1000.0).abs() > (a - 1000.0).abs() {
                f
            } else {
                a
            }
        });
    eprintln!("the 1 s window furthest from 1 kHz: {worst_freq:.4} Hz");
    assert!(
        (worst_freq / 1000.0 - 1.0).abs() < 0.001,
        "a second of the tone at {worst_freq} Hz on b"
    );
    // Glitch-free over the 30 s after the start: a 1 kHz sine at 0.5
    // moves at most 0.5·2π·1000/48000 ≈ 0.065 per sample; a dropout or a
    // jump in phase moves more.
    let settled = &heard[4800..];
    let (at, worst) = settled
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .enumerate()
        .fold((0, 0.0f32), |a, (i, x)| if x > a.1 { (i, x) } else { a });
    eprintln!("largest step between two samples: {worst:.5} at {at}");
    d.pactl_ok(&["unload-module", &m.to_string()]);
    let log = d.log();
    let stopped = log.lines().find(|l| l.contains("loopback stopped"));
    eprintln!("{}", stopped.unwrap_or("no loopback stopped line"));
    assert!(
        worst < 0.07,
        "a step of {worst} between two samples on b, {:.3} s after the tone arrived: {stopped:?}",
        (at + 4800) as f64 / RATE
    );
    assert!(d.list_short("source-outputs").is_empty());
    assert!(inputs(&d).is_empty());
    d.assert_log_clean();
}

#[test]
fn a_remap_sink_swaps_channels_into_its_master() {
    const RATE: f64 = 48_000.0;
    let d = Daemon::start_args("mod-remap", &SINK);
    load(&d, &["module-null-sink", "sink_name=m"]);
    let r = load(
        &d,
        &[
            "module-remap-sink",
            "master=m",
            "sink_name=swap",
            "channel_map=front-left,front-right",
            "master_channel_map=front-right,front-left",
        ],
    );
    let sink = block(&d, "sinks", "swap");
    for want in ["device.master_device = \"m\"", "device.class = \"filter\""] {
        assert!(sink.contains(want), "{want:?} not in\n{sink}");
    }
    let rec = d.path("m.raw");
    let parec = d.spawn_parec(
        &[&["--device=m.monitor"][..], &F32_STEREO[..]].concat(),
        &rec,
    );
    // A 1 kHz tone on the left only.
    let tone: Vec<f32> = (0..1536 * 4)
        .flat_map(|i| {
            let x = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / RATE).sin();
            [x as f32, 0.0]
        })
        .collect();
    let mut pacat = d.spawn_pacat(&[&["--device=swap"][..], &F32_STEREO[..]].concat());
    let feeder = common::srbd::Feeder::start(pacat.stdin.take().unwrap(), f32le_bytes(&tone));
    d.wait_for("2 s recorded on m", || {
        (file_len(&rec) >= 2 * 48_000 * 8).then_some(())
    });
    common::srbd::signal(&parec, common::srbd::Signal::INT);
    wait_bounded(parec, "parec");
    feeder.finish(1);
    wait_bounded(pacat, "pacat");
    let got = floats(&std::fs::read(&rec).unwrap());
    let last = &got[got.len() - 48_000..];
    let rms = |c: usize| {
        let v: Vec<f64> = last
            .iter()
            .skip(c)
            .step_by(2)
            .map(|x| f64::from(*x))
            .collect();
        (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
    };
    let (left, right) = (rms(0), rms(1));
    assert!(
        (right / (0.5 / 2f64.sqrt()) - 1.0).abs() < 0.01 && left < 1e-4,
        "master's left rms {left}, right rms {right}"
    );
    d.pactl_ok(&["unload-module", &r.to_string()]);
    assert!(!d.pactl_ok(&["list", "short", "sinks"]).contains("swap"));
    assert!(d.list_short("source-outputs").is_empty());
    assert!(inputs(&d).is_empty());
    d.assert_log_clean();
}
