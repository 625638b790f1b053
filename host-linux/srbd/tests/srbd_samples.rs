//! End-to-end: the sample cache and the sink/source state events of the
//! built `srbd` against Debian's real `pactl`, `parec`, `pacat` and
//! libpulse 16.1 (driven from `python3` through `ctypes` where `pactl`
//! has no option for it: a PLAY_SAMPLE volume, two requests on one
//! connection, an upload left unfinished).
//!
//! What these tests prove:
//! - `pactl upload-sample` stores an entry that `pactl list samples` and
//!   `pactl list short samples` print field for field as PulseAudio 16.1
//!   prints the same upload (name, spec, map, volume, duration, size,
//!   lazy, filename, properties), with a `new` sample-cache event;
//! - `pactl play-sample` plays it into the sink, mixed as a server-owned
//!   sink input (`new`/`remove` sink-input events): the monitor recording
//!   holds it bit-exact (s16le sink and recording; pactl uploads float32le,
//!   which converts to s16 exactly); a PLAY_SAMPLE with volume 50%
//!   (0x8000: linear 0.125) holds every sample scaled within 1 LSB;
//! - an unknown sample is NOENTITY; `pactl remove-sample` empties the list
//!   (`remove` event) and a second remove fails;
//! - an upload past the per-client cap is refused with "Too large" and the
//!   same connection then plays a sample; an upload whose client dies
//!   half-way leaves no entry and gives its reserved bytes back;
//! - the sink and monitor go RUNNING / IDLE / SUSPENDED as PulseAudio's
//!   do (a stream starting, stopping, corked, uncorked; a record stream;
//!   a suspend), with the `change` events PulseAudio 16.1 posts, in its
//!   order.
//!
//! All run in the three transport modes (`in_all_modes!`). The tools must
//! be installed (`scripts/test-srbd.sh`); every wait is bounded.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};

use common::srbd::{
    poll_until, s16le_bytes, signal, wait_bounded, write_wav_i16, Daemon, Rng, Shm, Signal,
    MONITOR, SINK,
};

in_all_modes!(
    upload_list_play_remove,
    caps_refuse_and_disconnect_frees,
    state_changes_post_pulseaudios_events,
);

const RATE: u32 = 48_000;

/// The sink every test here uses: s16le, 48 kHz, stereo (so a recording
/// in s16le needs no conversion).
const SINK_ARGS: [&str; 8] = [
    "--output",
    "null",
    "--format",
    "s16le",
    "--rate",
    "48000",
    "--channels",
    "2",
];

/// A libpulse client (`python3` + `ctypes` on Debian's libpulse0) for
/// what `pactl` cannot send. Commands, run in order on ONE connection:
/// `play NAME VOLUME`, `upload NAME BYTES` (s16le stereo 48 kHz, zeros),
/// `hold NAME BYTES SENT` (upload, send SENT bytes, print `holding`,
/// then wait forever), `playback` (a playback stream, 1 s of zeros
/// written), `cork` / `uncork` (of that stream, each after a line on
/// stdin), `wait` (for a line on stdin). Prints one line per result; exits 1 on a failure of the
/// connection itself.
const CLIENT_PY: &str = r#"
import ctypes as C, sys
pa = C.CDLL("libpulse.so.0")
vp = C.c_void_p
def fn(name, res, *args):
    f = getattr(pa, name); f.restype = res; f.argtypes = list(args); return f
class SS(C.Structure):
    _fields_ = [("format", C.c_int), ("rate", C.c_uint32), ("channels", C.c_uint8)]
PLAY_CB = C.CFUNCTYPE(None, vp, C.c_uint32, vp)
ml = fn("pa_mainloop_new", vp)()
api = fn("pa_mainloop_get_api", vp, vp)(ml)
iterate = fn("pa_mainloop_iterate", C.c_int, vp, C.c_int, vp)
ctx = fn("pa_context_new", vp, vp, C.c_char_p)(api, b"srb-sample-test")
ctx_state = fn("pa_context_get_state", C.c_int, vp)
err = lambda: fn("pa_strerror", C.c_char_p, C.c_int)(fn("pa_context_errno", C.c_int, vp)(ctx)).decode()
play = fn("pa_context_play_sample_with_proplist", vp, vp, C.c_char_p, C.c_char_p, C.c_uint32, vp, PLAY_CB, vp)
proplist_new = fn("pa_proplist_new", vp)
stream_new = fn("pa_stream_new", vp, vp, C.c_char_p, C.POINTER(SS), vp)
connect_upload = fn("pa_stream_connect_upload", C.c_int, vp, C.c_size_t)
stream_state = fn("pa_stream_get_state", C.c_int, vp)
write = fn("pa_stream_write", C.c_int, vp, vp, C.c_size_t, vp, C.c_int64, C.c_int)
finish = fn("pa_stream_finish_upload", C.c_int, vp)
def run_until(cond):
    while not cond():
        if iterate(ml, 1, None) < 0 or ctx_state(ctx) in (5, 6):
            print("connection failed:", err(), flush=True); sys.exit(1)
fn("pa_context_connect", C.c_int, vp, C.c_char_p, C.c_int, vp)(ctx, None, 0, None)
run_until(lambda: ctx_state(ctx) == 4)
args = sys.argv[1:]
ss = SS(3, 48000, 2)
while args:
    cmd, args = args[0], args[1:]
    if cmd == "playback":
        pb = stream_new(ctx, b"corkable", C.byref(ss), None)
        fn("pa_stream_connect_playback", C.c_int, vp, C.c_char_p, vp, C.c_int, vp, vp)(pb, None, None, 0, None, None)
        run_until(lambda: stream_state(pb) in (2, 3, 4))
        write(pb, C.create_string_buffer(192000), 192000, None, 0, 0)
        print("playing", flush=True); continue
    if cmd == "wait":
        sys.stdin.readline(); continue
    if cmd in ("cork", "uncork"):
        sys.stdin.readline()
        op = fn("pa_stream_cork", vp, vp, C.c_int, vp, vp)(pb, int(cmd == "cork"), None, None)
        run_until(lambda: fn("pa_operation_get_state", C.c_int, vp)(op) != 0)
        print(cmd + "ed", flush=True); continue
    name, args = args[0].encode(), args[1:]
    if cmd == "play":
        vol, args = int(args[0], 0), args[1:]
        got = []
        cb = PLAY_CB(lambda c, idx, u: got.append(idx))
        play(ctx, name, None, vol, proplist_new(), cb, None)
        run_until(lambda: got)
        print("played" if got[0] != 0xFFFFFFFF else "play failed: " + err(), flush=True)
    else:
        n, args = int(args[0]), args[1:]
        sent = n
        if cmd == "hold":
            sent, args = int(args[0]), args[1:]
        s = stream_new(ctx, name, C.byref(ss), None)
        connect_upload(s, n)
        run_until(lambda: stream_state(s) in (2, 3, 4))
        if stream_state(s) != 2:
            print("upload failed: " + err(), flush=True); continue
        data = C.create_string_buffer(sent)
        write(s, data, sent, None, 0, 0)
        if cmd == "hold":
            print("holding", flush=True)
            run_until(lambda: False)
        finish(s)
        run_until(lambda: stream_state(s) in (3, 4))
        print("uploaded" if stream_state(s) == 4 else "upload failed: " + err(), flush=True)
"#;

/// Runs [`CLIENT_PY`] with `args` to its end; its stdout lines.
fn libpulse_client(d: &Daemon, args: &[&str]) -> Vec<String> {
    let child = spawn_libpulse_client(d, args);
    let out = wait_bounded(child, "python3 libpulse client");
    d.assert_exit_ok(&out, "python3 libpulse client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn spawn_libpulse_client(d: &Daemon, args: &[&str]) -> Child {
    d.client("python3")
        .arg("-c")
        .arg(CLIENT_PY)
        .args(args)
        .spawn()
        .expect("spawn python3")
}

/// `pactl subscribe` writing its lines into `<dir>/events.txt`, once its
/// subscription is in force.
fn subscribe(d: &Daemon) -> (Child, std::path::PathBuf) {
    let path = d.path("events.txt");
    let child = d
        .client("pactl")
        .arg("--server")
        .arg(d.server())
        .arg("subscribe")
        .stdout(std::fs::File::create(&path).expect("events file"))
        .spawn()
        .expect("spawn pactl subscribe");
    // Events posted before the subscription took effect would be lost:
    // wait until it is (a `pactl info` coming and going shows it).
    d.wait_for("the subscription is live", || {
        d.pactl_ok(&["info"]);
        std::fs::read_to_string(&path)
            .ok()
            .filter(|s| s.contains("on client"))
    });
    (child, path)
}

/// The events in `path` that are not about clients (every pactl run is a
/// client coming and going), as `(type, facility, index)`.
fn events(path: &Path) -> Vec<(String, String, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            // Event 'new' on sink-input #3
            let rest = l.strip_prefix("Event '")?;
            let (kind, rest) = rest.split_once("' on ")?;
            let (facility, index) = rest.split_once(" #")?;
            Some((
                kind.to_owned(),
                facility.to_owned(),
                index.trim().parse().ok()?,
            ))
        })
        .filter(|(_, f, _)| f != "client")
        .collect()
}

/// Waits until the non-client events are exactly `want` (so nothing
/// extra came before or between them).
fn expect_events(d: &Daemon, path: &Path, want: &[(&str, &str, u32)]) {
    let want: Vec<(String, String, u32)> = want
        .iter()
        .map(|(k, f, i)| (k.to_string(), f.to_string(), *i))
        .collect();
    poll_until(
        "the subscription shows the expected events",
        || {
            let got = events(path);
            (got.len() >= want.len()).then_some(got)
        },
        || {
            format!(
                "events so far: {:?}\nwant: {want:?}\nsrbd log:\n{}",
                events(path),
                d.log()
            )
        },
    );
    assert_eq!(events(path), want, "events (client events left out)");
}

/// Stereo s16 noise whose every sample has magnitude at least 1000 (so it
/// stays non-zero at 1/8 volume).
fn loud_noise(frames: usize, seed: u64) -> Vec<i16> {
    let mut rng = Rng::new(seed);
    (0..frames * 2)
        .map(|_| {
            let v = rng.sample_i16();
            if v.unsigned_abs() < 1000 {
                v.signum() * 1000
            } else {
                v
            }
        })
        .collect()
}

fn samples_of(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// The `Key: value` lines of each `Sample #` block of `pactl list
/// samples`, and its properties, in order.
fn sample_blocks(long: &str) -> Vec<Vec<String>> {
    long.split("Sample #")
        .skip(1)
        .map(|b| {
            b.lines()
                .skip(1)
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .collect()
}

fn upload_list_play_remove(shm: Shm) {
    let d = Daemon::start_mode("samples", shm, &SINK_ARGS);
    let (mut sub, events_path) = subscribe(&d);
    let frames = 24_000; // 0.5 s
    let noise = loud_noise(frames, 0x5a3_91e);
    let wav = d.path("noise.wav");
    write_wav_i16(&wav, RATE, 2, &noise);
    d.pactl_ok(&["upload-sample", wav.to_str().unwrap(), "noise"]);

    // What PulseAudio 16.1 prints for the same upload (pactl sends the
    // WAV as float32le; PulseAudio adds media.role = "event").
    let blocks = sample_blocks(&d.pactl_ok(&["list", "samples"]));
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let b = &blocks[0];
    let want_head = [
        "Name: noise",
        "Sample Specification: float32le 2ch 48000Hz",
        "Channel Map: front-left,front-right",
        "Volume: (invalid)",
        "balance 0.00",
        "Duration: 0.5s",
        "Size: 187.5 KiB",
        "Lazy: no",
        "Filename: n/a",
        "Properties:",
        "media.role = \"event\"",
        "media.name = \"noise\"",
    ];
    assert_eq!(&b[..want_head.len()], &want_head, "pactl list samples");
    assert!(
        b.iter().any(|l| l == "application.name = \"pactl\""),
        "the uploading client's properties are merged: {b:?}"
    );
    assert_eq!(
        d.list_short("samples"),
        vec![vec!["0", "noise", "float32le 2ch 48000Hz", "0.500"]],
    );
    let stat = d.pactl_ok(&["stat"]);
    assert!(
        stat.contains("Sample cache size: 187.5 KiB"),
        "pactl stat: {stat}"
    );

    // Played at full volume: bit-exact on the monitor.
    let rec = d.path("rec.raw");
    let device = format!("--device={MONITOR}");
    let mut parec = d.spawn_parec(
        &[
            "--raw",
            "--format=s16le",
            "--rate=48000",
            "--channels=2",
            &device,
        ],
        &rec,
    );
    d.wait_while_running("parec's source output listed", &mut [&mut parec], || {
        (d.list_short("source-outputs").len() == 1).then_some(())
    });
    d.pactl_ok(&["play-sample", "noise"]);
    let played = s16le_bytes(&noise);
    let head = &played[..16];
    let find = |r: &[u8], from: usize| {
        (from..r.len().saturating_sub(head.len()) + 1)
            .step_by(4)
            .find(|&i| r[i..].starts_with(head))
    };
    let start = d.wait_while_running(
        "the recording holds the whole sample",
        &mut [&mut parec],
        || {
            let r = std::fs::read(&rec).ok()?;
            let s = find(&r, 0)?;
            (r.len() >= s + played.len()).then_some(s)
        },
    );
    let r = std::fs::read(&rec).unwrap();
    if let Some(i) =
        (0..played.len() / 4).find(|&i| r[start + i * 4..][..4] != played[i * 4..][..4])
    {
        panic!(
            "frame {i} of the sample differs: recorded {:?}, uploaded {:?}",
            samples_of(&r[start + i * 4..][..4]),
            &noise[i * 2..i * 2 + 2]
        );
    }
    let end = start + played.len();

    // PLAY_SAMPLE at 50% (0x8000, linear 0.125) from libpulse.
    assert_eq!(
        libpulse_client(&d, &["play", "noise", "0x8000"]),
        ["played"]
    );
    let (want0, want1) = (
        (f64::from(noise[0]) / 8.0).round() as i32,
        (f64::from(noise[1]) / 8.0).round() as i32,
    );
    let near = |got: i16, want: i32| (i32::from(got) - want).abs() <= 1;
    let find_quiet = |r: &[u8]| {
        (end..r.len().saturating_sub(4) + 1).step_by(4).find(|&i| {
            let s = samples_of(&r[i..i + 4]);
            s != [0, 0] && near(s[0], want0) && near(s[1], want1)
        })
    };
    let quiet = d.wait_while_running(
        "the recording holds the sample at 50%",
        &mut [&mut parec],
        || {
            let r = std::fs::read(&rec).ok()?;
            let s = find_quiet(&r)?;
            (r.len() >= s + played.len()).then_some(s)
        },
    );
    signal(&parec, Signal::INT);
    let out = wait_bounded(parec, "parec");
    d.assert_exit_ok(&out, "parec");
    let r = std::fs::read(&rec).unwrap();
    assert!(
        samples_of(&r[end..quiet]).iter().all(|&s| s == 0),
        "silence between the two plays"
    );
    let got = samples_of(&r[quiet..quiet + played.len()]);
    for (i, (&g, &v)) in got.iter().zip(&noise).enumerate() {
        let want = (f64::from(v) * 0.125).round() as i32;
        assert!(
            near(g, want),
            "sample {i} at 50%: recorded {g}, want {want} ±1 (uploaded {v})"
        );
    }

    // The sink inputs of the two plays came and went: server-owned, so
    // listed between their `new` and `remove` (the second one's `remove`
    // may still be on its way: wait for it).
    let of_interest = || -> Vec<(String, String, u32)> {
        events(&events_path)
            .into_iter()
            .filter(|(_, f, _)| f == "sink-input" || f == "sample-cache")
            .collect()
    };
    d.wait_for("the second play's sink input is gone", || {
        (of_interest().len() >= 5).then_some(())
    });

    // Unknown, removed, removed again.
    let out = d.pactl(&["play-sample", "nope"]);
    assert!(!out.status.success(), "playing an unknown sample fails");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such entity"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.pactl_ok(&["remove-sample", "noise"]);
    assert!(d.list_short("samples").is_empty());
    assert!(sample_blocks(&d.pactl_ok(&["list", "samples"])).is_empty());
    assert!(!d.pactl(&["remove-sample", "noise"]).status.success());

    d.wait_for("the sample's remove event", || {
        (of_interest().len() >= 6).then_some(())
    });
    let e = |k: &str, f: &str, i: u32| (k.to_owned(), f.to_owned(), i);
    assert_eq!(
        of_interest(),
        [
            e("new", "sample-cache", 0),
            e("new", "sink-input", 0),
            e("remove", "sink-input", 0),
            e("new", "sink-input", 1),
            e("remove", "sink-input", 1),
            e("remove", "sample-cache", 0),
        ]
    );
    sub.kill().ok();
    let _ = sub.wait();
    d.assert_transport(shm);
    d.assert_log_clean();
}

fn caps_refuse_and_disconnect_frees(shm: Shm) {
    let d = Daemon::start_mode("sample-caps", shm, &SINK_ARGS);
    let wav = d.path("short.wav");
    write_wav_i16(&wav, RATE, 2, &loud_noise(4800, 7));
    d.pactl_ok(&["upload-sample", wav.to_str().unwrap(), "short"]);
    let cache_size = || {
        d.pactl_ok(&["stat"])
            .lines()
            .find_map(|l| l.strip_prefix("Sample cache size: ").map(str::to_owned))
            .expect("pactl stat prints the cache size")
    };
    let before = cache_size();

    // 5 MiB is past one client's 4 MiB: refused, and the same connection
    // then plays a sample and uploads one that fits.
    let five_mib = (5 << 20).to_string();
    assert_eq!(
        libpulse_client(
            &d,
            &["upload", "big", &five_mib, "play", "short", "0x10000", "upload", "small", "4800"]
        ),
        ["upload failed: Too large", "played", "uploaded"]
    );
    assert!(
        d.log().contains("upload refused: sample cache cap"),
        "an info line names the cap"
    );
    let names: Vec<String> = d
        .list_short("samples")
        .into_iter()
        .map(|l| l[1].clone())
        .collect();
    assert_eq!(names, ["short", "small"]);
    d.pactl_ok(&["remove-sample", "small"]);

    // A client that dies half-way through an upload leaves nothing.
    let mut hold = spawn_libpulse_client(&d, &["hold", "half", "96000", "48000"]);
    let mut stdout = hold.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "holding");
    d.wait_for("the upload is open", || {
        d.log().contains("upload stream created").then_some(())
    });
    hold.kill().unwrap();
    let _ = hold.wait();
    d.wait_for("the unfinished upload was discarded", || {
        d.log()
            .lines()
            .find(|l| l.contains("unfinished uploads discarded"))
            .map(str::to_owned)
    });
    let line = d
        .log()
        .lines()
        .find(|l| l.contains("unfinished uploads discarded"))
        .unwrap()
        .to_owned();
    assert_eq!(
        common::srbd::log_field(&line, "reserved"),
        Some("0"),
        "its reserved bytes are back: {line}"
    );
    let names: Vec<String> = d
        .list_short("samples")
        .into_iter()
        .map(|l| l[1].clone())
        .collect();
    assert_eq!(names, ["short"]);
    assert_eq!(cache_size(), before);
    d.assert_log_clean();
}

/// What `pactl subscribe` printed on PulseAudio 16.1 (module-null-sink,
/// no module-suspend-on-idle; observed side by side with the same steps,
/// client events left out): `(type, facility)` per step. Index fields are
/// checked separately.
fn state_changes_post_pulseaudios_events(shm: Shm) {
    let d = Daemon::start_mode("states", shm, &SINK_ARGS);
    let state = |what: &str| -> String {
        let long = d.pactl_ok(&["list", what]);
        long.lines()
            .find_map(|l| l.trim().strip_prefix("State: ").map(str::to_owned))
            .expect("a State: line")
    };
    assert_eq!(
        (state("sinks"), state("sources")),
        ("IDLE".into(), "IDLE".into())
    );
    let (mut sub, path) = subscribe(&d);
    let mut want: Vec<(&str, &str, u32)> = Vec::new();

    // A playback stream starts: its `new`, then the sink's `change`
    // (RUNNING); the monitor stays IDLE.
    let mut pacat = d
        .client("pacat")
        .args(["--raw", "--format=s16le", "--rate=48000", "--channels=2"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .spawn()
        .expect("spawn pacat");
    let si: u32 = d.wait_while_running("pacat's sink input", &mut [&mut pacat], || {
        d.list_short("sink-inputs")
            .first()
            .map(|l| l[0].parse().unwrap())
    });
    want.extend([("new", "sink-input", si), ("change", "sink", 0)]);
    expect_events(&d, &path, &want);
    assert_eq!(
        (state("sinks"), state("sources")),
        ("RUNNING".into(), "IDLE".into())
    );

    // It stops: the sink's `change` (IDLE), then its `remove`.
    pacat.kill().unwrap();
    let _ = pacat.wait();
    want.extend([("change", "sink", 0), ("remove", "sink-input", si)]);
    expect_events(&d, &path, &want);
    assert_eq!(state("sinks"), "IDLE");

    // Corking the only stream makes the sink IDLE, uncorking RUNNING: the
    // stream's `change`, then the sink's.
    let mut corker = d
        .client("python3")
        .arg("-c")
        .arg(CLIENT_PY)
        .args(["playback", "cork", "uncork", "wait"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut to = corker.stdin.take().unwrap();
    let mut from = std::io::BufReader::new(corker.stdout.take().unwrap());
    let mut said = |want: &str| {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut from, &mut line).unwrap();
        assert_eq!(line.trim(), want);
    };
    said("playing");
    let si: u32 = d.wait_for("the corkable stream's sink input", || {
        d.list_short("sink-inputs")
            .first()
            .map(|l| l[0].parse().unwrap())
    });
    want.extend([("new", "sink-input", si), ("change", "sink", 0)]);
    expect_events(&d, &path, &want);
    for (step, state_now) in [("corked", "IDLE"), ("uncorked", "RUNNING")] {
        writeln!(to, "go").unwrap();
        said(step);
        want.extend([("change", "sink-input", si), ("change", "sink", 0)]);
        expect_events(&d, &path, &want);
        assert_eq!(state("sinks"), state_now, "{step}");
    }
    corker.kill().unwrap();
    let _ = corker.wait();
    want.extend([("change", "sink", 0), ("remove", "sink-input", si)]);
    expect_events(&d, &path, &want);

    // A record stream on the monitor: the same, on the source.
    let mut parec = d.spawn_parec(
        &["--raw", &format!("--device={MONITOR}")],
        &d.path("rec.raw"),
    );
    let so: u32 = d.wait_while_running("parec's source output", &mut [&mut parec], || {
        d.list_short("source-outputs")
            .first()
            .map(|l| l[0].parse().unwrap())
    });
    want.extend([("new", "source-output", so), ("change", "source", 0)]);
    expect_events(&d, &path, &want);
    assert_eq!(
        (state("sinks"), state("sources")),
        ("IDLE".into(), "RUNNING".into())
    );
    parec.kill().unwrap();
    let _ = parec.wait();
    want.extend([("change", "source", 0), ("remove", "source-output", so)]);
    expect_events(&d, &path, &want);

    // Suspending the sink suspends its monitor: a `change` on each, and
    // the same on resume.
    d.pactl_ok(&["suspend-sink", SINK, "1"]);
    want.extend([("change", "sink", 0), ("change", "source", 0)]);
    expect_events(&d, &path, &want);
    assert_eq!(
        (state("sinks"), state("sources")),
        ("SUSPENDED".into(), "SUSPENDED".into())
    );
    d.pactl_ok(&["suspend-sink", SINK, "0"]);
    want.extend([("change", "sink", 0), ("change", "source", 0)]);
    expect_events(&d, &path, &want);
    assert_eq!(
        (state("sinks"), state("sources")),
        ("IDLE".into(), "IDLE".into())
    );

    // A sentinel (a sample upload) proves nothing else was posted late.
    let wav = d.path("s.wav");
    write_wav_i16(&wav, RATE, 2, &loud_noise(480, 3));
    d.pactl_ok(&["upload-sample", wav.to_str().unwrap(), "sentinel"]);
    want.push(("new", "sample-cache", 0));
    expect_events(&d, &path, &want);
    sub.kill().ok();
    let _ = sub.wait();
    d.assert_log_clean();
}
