//! End-to-end: record streams beyond the plain monitor, in every transport
//! mode, against Debian's `pacat`/`parec`/`pactl` (libpulse 16.1) and a
//! libpulse client of our own ([`common::libpulse`], for what no Debian
//! tool asks: `PEAK_DETECT`, record format lists).
//!
//! * `monitor_stream` (`parec --monitor-stream=N`): while two `pacat`s
//!   play random signals A and B, the recording of A holds exactly A's
//!   samples (bit-exact, float32 on a float32 sink) and nothing of B; an
//!   unknown index is refused with "No such entity"; when A's `pacat` ends
//!   the record stream is killed (`parec` says "Entity killed", as it does
//!   against PulseAudio 16.1).
//! * `PEAK_DETECT` (float32, mono, 25 Hz, a fragment of one sample, as
//!   pavucontrol asks): silence reads 0; the monitor of A (a 1 kHz tone of
//!   amplitude 0.5) plus B (a constant 0.25) reads 0.75, and a
//!   `monitor_stream` peak stream on A reads 0.5 (±1 LSB) and never more,
//!   and 0 once A is muted.
//! * Record format negotiation (protocol 22, `pa_stream_new_extended`):
//!   a fixed PCM entry is taken as given, lists and ranges are fixed to the
//!   sink's values, a non-PCM-only list is refused with "Not supported",
//!   an unusable PCM entry with "Invalid argument"; the connection stays
//!   up after each refusal and the accepted streams deliver audio.
//! * GStreamer's `pulsesrc` (which asks for a plain sample spec, no
//!   format list) records the monitor bit-exactly while `pacat` plays.
//! * Latency: `pacat -v --latency-msec=50` reports a positive latency no
//!   larger than a bound derived from its buffer metrics and the sink's
//!   configured latency; `parec -v` reports a latency that is not negative
//!   (libpulse subtracts the monitored sink's lead, which srbd reports as
//!   what its output still holds, not a whole period) and no larger than
//!   its fragment plus a period; `pactl stat` counts the stream rings:
//!   none before, two (with bytes) while `pacat` and `parec` run, none
//!   after, with the lifetime count grown.

mod common;

use common::libpulse::{
    floats, Pulse, RecordOpts, ADJUST_LATENCY, DONT_MOVE, FLOAT32LE, PEAK_DETECT,
};
use common::srbd::{f32le_bytes, wait_bounded, Daemon, Feeder, Rng, Shm, Wav};

in_all_modes!(
    monitor_stream_records_one_input_bit_exactly,
    peak_detect_reads_the_amplitude_per_fragment,
    record_streams_negotiate_their_format,
    latency_reports_are_true_and_stat_counts_the_rings,
    pulsesrc_records_the_monitor_bit_exactly,
);

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

/// `pacat` args for float32le stereo 48 kHz (the sink's format).
const F32_STEREO: [&str; 3] = ["--format=float32le", "--rate=48000", "--channels=2"];

/// Starts a `pacat` playing `chunk` over and over; returns it, its feeder
/// and its sink-input index (the one that appeared).
fn play(d: &Daemon, chunk: Vec<u8>) -> (std::process::Child, Feeder, u32) {
    let before: Vec<String> = d
        .list_short("sink-inputs")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let mut child = d.spawn_pacat(&F32_STEREO);
    let feeder = Feeder::start(child.stdin.take().unwrap(), chunk);
    let index = d.wait_for("the new sink input", || {
        d.list_short("sink-inputs")
            .into_iter()
            .map(|r| r[0].clone())
            .find(|i| !before.contains(i))
    });
    (child, feeder, index.parse().unwrap())
}

fn monitor_stream_records_one_input_bit_exactly(shm: Shm) {
    let d = Daemon::start_mode("rec-monitor-stream", shm, &SINK);
    let mut rng = Rng::new(0xA11CE);
    // 8192 frames of random stereo float, never zero; B likewise.
    let a: Vec<f32> = (0..8192 * 2).map(|_| rng.sample_f32()).collect();
    let b: Vec<f32> = (0..8192 * 2).map(|_| rng.sample_f32()).collect();
    let (pa, feed_a, ia) = play(&d, f32le_bytes(&a));
    let (pb, feed_b, _ib) = play(&d, f32le_bytes(&b));

    // An unknown sink input: refused, as PulseAudio refuses it.
    let out = wait_bounded(
        d.client("parec")
            .args(["--monitor-stream=4000000", "--raw"])
            .spawn()
            .unwrap(),
        "parec on an unknown sink input",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No such entity"), "parec said: {err}");

    let file = d.path("a.raw");
    let mon = format!("--monitor-stream={ia}");
    let parec = d.spawn_parec(
        &[&mon, "--raw", F32_STEREO[0], F32_STEREO[1], F32_STEREO[2]],
        &file,
    );
    // A second of A, then A ends: the record stream is killed with it.
    d.wait_for("a second of A recorded", || {
        (std::fs::metadata(&file).map_or(0, |m| m.len()) >= 48_000 * 8).then_some(())
    });
    feed_a.finish(2);
    wait_bounded(pa, "pacat A");
    let out = wait_bounded(parec, "parec --monitor-stream (killed with A)");
    assert!(
        !out.status.success(),
        "parec ends with an error when A goes"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Entity killed"),
        "parec said: {err}\n{}",
        d.log()
    );

    let heard = assert_is_a(&floats(&std::fs::read(&file).unwrap()), &a, &d);
    assert!(heard >= 48_000, "{heard} frames of A recorded");
    feed_b.finish(0);
    wait_bounded(pb, "pacat B");
    d.assert_log_clean();
}

/// Checks that the stereo recording `rec` is silence (before `a` starts
/// and through any underrun) and `a`'s frames in order, repeating, each
/// bit-exact, and nothing else; returns how many frames of `a` it holds.
/// A jump inside `a` is allowed only where srbd logged that it dropped
/// this recording's oldest audio (a client that did not read in time, as
/// PulseAudio drops on overflow), and then each run must still be `a`'s
/// frames in order.
fn assert_is_a(rec: &[f32], a: &[f32], d: &Daemon) -> usize {
    let heard: Vec<&[f32]> = rec.chunks_exact(2).filter(|f| f != &[0.0, 0.0]).collect();
    let Some(first) = heard.first() else {
        return 0;
    };
    let find = |f: &[f32]| a.chunks_exact(2).position(|x| x == f);
    let mut at =
        find(first).unwrap_or_else(|| panic!("the first frame recorded {first:?} is not A's"));
    let len = a.len() / 2;
    let mut jumps = 0;
    for (k, f) in heard.iter().enumerate() {
        let want = &a[at * 2..at * 2 + 2];
        if !(f[0].to_bits() == want[0].to_bits() && f[1].to_bits() == want[1].to_bits()) {
            let log = d.log();
            let dropped =
                log.contains("dropping its oldest audio") || log.contains("monitor audio dropped");
            assert!(
                dropped,
                "recorded frame {k}: {f:?}, A's frame {at} is {want:?} (and srbd dropped nothing)"
            );
            jumps += 1;
            at = find(f).unwrap_or_else(|| panic!("recorded frame {k}: {f:?} is not A's"));
        }
        at = (at + 1) % len;
    }
    if jumps > 0 {
        eprintln!("recording resumed {jumps} times after srbd dropped audio nobody read");
    }
    heard.len()
}

fn pulsesrc_records_the_monitor_bit_exactly(shm: Shm) {
    let d = Daemon::start_mode("rec-pulsesrc", shm, &SINK);
    let mut rng = Rng::new(0x5EC);
    let a: Vec<f32> = (0..8192 * 2).map(|_| rng.sample_f32()).collect();
    let (pa, feed, _) = play(&d, f32le_bytes(&a));
    let wav = d.path("pulsesrc.wav");
    let loc = format!("location={}", wav.display());
    // 100 buffers of GStreamer's default 10 ms: about a second.
    d.gst(&[
        "pulsesrc",
        "num-buffers=100",
        "!",
        "audio/x-raw,format=F32LE,rate=48000,channels=2",
        "!",
        "wavenc",
        "!",
        "filesink",
        &loc,
    ]);
    let heard = assert_is_a(&Wav::read(&wav).samples, &a, &d);
    assert!(heard >= 4_800, "{heard} frames of A recorded by pulsesrc");
    feed.finish(0);
    wait_bounded(pa, "pacat");
    d.assert_log_clean();
}

/// `n` peaks (float32 mono) from `s`.
fn peaks(p: &mut Pulse, s: &common::libpulse::Stream, n: usize) -> Vec<f32> {
    floats(&p.read(s, n * 4))
}

/// Reads peaks until ten consecutive ones equal `want` (within one LSB
/// of a float), checking every peak read is at most `ceiling` (the level
/// before, for peaks still queued from it); returns them.
fn read_until_steady(
    p: &mut Pulse,
    s: &common::libpulse::Stream,
    want: f32,
    ceiling: f32,
    what: &str,
) -> Vec<f32> {
    let lsb = want * f32::EPSILON;
    let ceiling = ceiling.max(want) + lsb;
    let mut all = Vec::new();
    let mut run = 0;
    while run < 10 {
        let x = peaks(p, s, 1)[0];
        assert!(
            x <= ceiling,
            "{what}: peak {x} above {ceiling}; so far {all:?}"
        );
        run = if (x - want).abs() <= lsb { run + 1 } else { 0 };
        all.push(x);
        assert!(
            all.len() < 25 * 30,
            "{what}: no steady {want}; the last peaks: {:?}",
            &all[all.len() - 20..]
        );
    }
    all
}

fn peak_detect_reads_the_amplitude_per_fragment(shm: Shm) {
    let d = Daemon::start_mode("rec-peaks", shm, &SINK);
    let mut p = Pulse::connect(&d.server());
    let meter = |monitor_stream| RecordOpts {
        spec: (FLOAT32LE, 25, 1),
        formats: &[],
        monitor_stream,
        flags: PEAK_DETECT | ADJUST_LATENCY | DONT_MOVE,
        fragsize: 4,
    };
    let whole = p.record(&meter(None)).expect("peak stream on the monitor");
    assert_eq!(p.spec(&whole), (FLOAT32LE, 25, 1));
    // Nothing plays yet: silence peaks at 0.
    assert_eq!(peaks(&mut p, &whole, 5), vec![0.0; 5], "silence");

    // A: 1 kHz at amplitude 0.5 (48 frames a cycle, sample 12 is the
    // crest: 0.5 exactly); 1536 frames = 32 cycles = 3 × 4096 bytes.
    let tone: Vec<f32> = (0..1536)
        .flat_map(|i| {
            let x = (0.5 * (2.0 * std::f64::consts::PI * f64::from(i) / 48.0).sin()) as f32;
            [x, x]
        })
        .collect();
    let (pa, feed_a, ia) = play(&d, f32le_bytes(&tone));
    let (pb, feed_b, _) = play(&d, f32le_bytes(&[0.25f32; 1024 * 2]));
    read_until_steady(&mut p, &whole, 0.75, 0.75, "monitor of A + B");

    let only_a = p.record(&meter(Some(ia))).expect("peak stream on A");
    read_until_steady(&mut p, &only_a, 0.5, 0.5, "monitor_stream of A");
    // Muted, A is silence to its monitor_stream (after its volume).
    d.pactl_ok(&["set-sink-input-mute", &ia.to_string(), "1"]);
    read_until_steady(&mut p, &only_a, 0.0, 0.5, "monitor_stream of muted A");
    // The whole monitor still hears B.
    read_until_steady(&mut p, &whole, 0.25, 0.75, "monitor of B");
    p.unref(only_a);
    p.unref(whole);
    assert!(p.connected());
    drop(p);
    feed_a.finish(0);
    feed_b.finish(0);
    wait_bounded(pa, "pacat A");
    wait_bounded(pb, "pacat B");
    d.assert_log_clean();
}

fn record_streams_negotiate_their_format(shm: Shm) {
    let d = Daemon::start_mode("rec-formats", shm, &SINK);
    let mut p = Pulse::connect(&d.server());
    let offer = |formats| RecordOpts {
        spec: (0, 0, 0),
        formats,
        monitor_stream: None,
        flags: 0,
        fragsize: u32::MAX,
    };
    // A fixed entry is taken as it is.
    let s = p
        .record(&offer(&[r#"pcm, format.sample_format = "\"s16le\""  format.rate = "44100"  format.channels = "1""#]))
        .expect("fixed PCM entry");
    assert_eq!(p.spec(&s), (3, 44_100, 1));
    let f = p.format(&s);
    assert!(f.starts_with("pcm") && f.contains("44100"), "{f}");
    assert_eq!(p.read(&s, 4410 * 2).len(), 8820, "audio flows");
    p.unref(s);
    // Lists and ranges: the sink's values where allowed; after a non-PCM
    // entry, which is skipped.
    let s = p
        .record(&offer(&[
            r#"ac3-iec61937, format.rate = "48000""#,
            r#"pcm, format.sample_format = "[ \"s16le\", \"float32le\" ]"  format.rate = "{ \"min\": 8000, \"max\": 96000 }"  format.channels = "[ 1, 2 ]""#,
        ]))
        .expect("PCM entry with lists and a range");
    assert_eq!(p.spec(&s), (FLOAT32LE, 48_000, 2));
    assert_eq!(p.read(&s, 4800 * 8).len(), 38_400, "audio flows");
    p.unref(s);
    // No PCM at all: not supported; the connection stays.
    let e = p
        .record(&offer(&[r#"ac3-iec61937, format.rate = "48000""#]))
        .err()
        .expect("a non-PCM-only list is refused");
    assert!(e.contains("Not supported"), "{e}");
    assert!(p.connected(), "a refused stream keeps the connection");
    // A PCM entry that cannot be used: invalid; the connection stays.
    let e = p
        .record(&offer(&[r#"pcm, format.rate = "0""#]))
        .err()
        .expect("an unusable PCM entry is refused");
    assert!(e.contains("Invalid"), "{e}");
    assert!(p.connected(), "a refused stream keeps the connection");
    let s = p
        .record(&offer(&[r#"pcm"#]))
        .expect("a bare PCM entry gets the sink's spec");
    assert_eq!(p.spec(&s), (FLOAT32LE, 48_000, 2));
    p.unref(s);
    drop(p);
    let log = d.log();
    assert_eq!(log.matches("format negotiated").count(), 3, "{log}");
    assert_eq!(
        log.matches("stream refused: no usable format").count(),
        2,
        "{log}"
    );
}

/// The `Latency: N usec` figures of a `pacat -v`/`parec -v` log (negative
/// ones keep their sign), and its `Buffer metrics:` as key → bytes.
fn latencies(log: &str) -> (Vec<i64>, std::collections::BTreeMap<String, u64>) {
    let text = log.replace('\r', "\n");
    let values = text
        .split("Latency: ")
        .skip(1)
        .filter_map(|rest| rest.split(" usec").next()?.trim().parse().ok())
        .collect();
    let metrics = text
        .lines()
        .find_map(|l| l.strip_prefix("Buffer metrics: "))
        .map(|m| {
            m.split(", ")
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    (values, metrics)
}

/// `pactl stat`'s first two lines as (blocks, bytes) in use and over the
/// server's life (bytes as printed: "351.4 KiB" kept as text).
fn stat(d: &Daemon) -> (u64, String, u64) {
    let out = d.pactl_ok(&["stat"]);
    let field = |prefix: &str| -> (u64, String) {
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("pactl stat: no {prefix:?} in {out}"));
        let (n, rest) = line.trim().split_once(' ').unwrap();
        let bytes = rest
            .split("containing ")
            .nth(1)
            .and_then(|r| r.split(" bytes").next())
            .unwrap_or_default();
        (n.parse().unwrap(), bytes.to_owned())
    };
    let (live, live_bytes) = field("Currently in use: ");
    let (total, _) = field("Allocated during whole lifetime: ");
    (live, live_bytes, total)
}

fn latency_reports_are_true_and_stat_counts_the_rings(shm: Shm) {
    let d = Daemon::start_mode("rec-latency", shm, &SINK);
    let sinks = d.pactl_ok(&["list", "sinks"]);
    // "Latency: 10000 usec, configured 10000 usec": one period.
    let period: u64 = sinks
        .split("configured ")
        .nth(1)
        .and_then(|r| r.split(" usec").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no configured latency in {sinks}"));
    assert_eq!(stat(&d), (0, "0 B".to_owned(), 0), "no stream, no ring");

    // pacat at 50 ms (s16le stereo 44.1 kHz) and parec at 50 ms.
    let mut pacat = d
        .client("pacat")
        .args(["-v", "--latency-msec=50"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::fs::File::create(d.path("pacat.log")).unwrap())
        .spawn()
        .unwrap();
    let feeder = Feeder::start(pacat.stdin.take().unwrap(), vec![0x11; 4096 * 4]);
    let parec = d
        .client("parec")
        .args(["-v", "--latency-msec=50"])
        .stdout(std::fs::File::create(d.path("rec.raw")).unwrap())
        .stderr(std::fs::File::create(d.path("parec.log")).unwrap())
        .spawn()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(d.path(name)).unwrap_or_default();
    d.wait_for("20 latency reports from each", || {
        (latencies(&read("pacat.log")).0.len() >= 20 && latencies(&read("parec.log")).0.len() >= 20)
            .then_some(())
    });
    // `pactl list sink-inputs`: the stream's queue in srbd as its buffer
    // latency (PulseAudio counts the stream's queue the same way), within
    // what pacat may have queued; the sink's latency beside it.
    let inputs = d.pactl_ok(&["list", "sink-inputs"]);
    let field = |text: &str, key: &str| -> u64 {
        text.split(key)
            .nth(1)
            .and_then(|r| r.trim().split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    let buffered = field(&inputs, "Buffer Latency:");
    assert!(
        buffered > 0 && buffered <= 2 * 50_000,
        "sink-input buffer latency {buffered} usec\n{inputs}"
    );
    assert!(field(&inputs, "Sink Latency:") >= period);
    let outputs = d.pactl_ok(&["list", "source-outputs"]);
    assert!(
        field(&outputs, "Buffer Latency:") <= 2 * 50_000,
        "{outputs}"
    );
    let (live, live_bytes, total) = stat(&d);
    assert_eq!((live, total), (2, 2), "two stream rings while both run");
    assert_ne!(live_bytes, "0 B");
    common::srbd::signal(&parec, rustix::process::Signal::INT);
    wait_bounded(parec, "parec -v");
    feeder.finish(2);
    wait_bounded(pacat, "pacat -v");

    let bytes_usec = |bytes: u64| bytes * 1_000_000 / (44_100 * 4);
    let (played, m) = latencies(&read("pacat.log"));
    let (tlength, minreq) = (m["tlength"], m["minreq"]);
    // What pacat may have queued (tlength plus a request in flight), the
    // sink's period playing, and one more period for the queue's rounding
    // to whole periods and the transport figure.
    let bound = bytes_usec(tlength + minreq) + 2 * period;
    for (i, &l) in played.iter().enumerate() {
        assert!(
            l > 0 && l as u64 <= bound,
            "pacat latency {i}: {l} usec, bound {bound}: {played:?}"
        );
    }
    let (recorded, m) = latencies(&read("parec.log"));
    let bound = bytes_usec(m["fragsize"]) + period;
    for (i, &l) in recorded.iter().enumerate() {
        assert!(
            l >= 0 && l as u64 <= bound,
            "parec latency {i}: {l} usec, bound {bound}: {recorded:?}"
        );
    }
    d.wait_for("the rings freed", || {
        let (live, bytes, total) = stat(&d);
        (live == 0 && bytes == "0 B" && total == 2).then_some(())
    });
}
