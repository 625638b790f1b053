//! End-to-end: playback and record streams of the built `srbd` against
//! Debian's real `pacat`, `paplay`, `parec` and `pactl` (libpulse 16.1).
//!
//! What these tests prove, with the daemon's own output as the witness
//! (its `wav:` output read back with hound, or its monitor source recorded
//! with `parec`):
//! - raw and WAV playback in several formats completes (exit 0, DRAIN
//!   answered) and every input frame reaches the sink once, in one
//!   contiguous run: nothing dropped, no silence inserted;
//! - the monitor carries exactly what was played: bit-exact, contiguous,
//!   silence around it (float32le and s16le);
//! - the mixer sums: 8 concurrent streams of distinct powers of two come
//!   out as exact subset sums, each stream present for exactly its length;
//! - a sink-input volume set with `pactl` scales what follows and shows in
//!   `pactl list sink-inputs`;
//! - `pactl list short` fields of sinks, sources, sink-inputs;
//! - a SIGKILLed client leaves no sink-input, client or fd behind;
//! - DRAIN is answered only after the audio played out (the sink runs at
//!   real time; a lower bound, not a speed threshold);
//! - the playback, format, bit-exact and mixing tests pass in three
//!   transport modes: `name::srbchannel` (the default: libpulse sends
//!   memfd block references and every frame without fds goes through the
//!   srbchannel ring), `name::shm` (`--srbchannel off`) and `name::no_shm`
//!   (`--shm off`: audio copied into the socket). The daemon's log proves
//!   which path each one took; `libpulse_sees_the_negotiated_shm_type`
//!   proves it from the client's side (libpulse's own debug log,
//!   `PULSE_LOG=4`, says `Negotiated SHM type: shared memfd`, or `private`
//!   with SHM off), and `client_holds_the_srbchannel_eventfds` shows the
//!   playing client holding the very two eventfds srbd waits on and posts
//!   (matched by their kernel `eventfd-id`), and none in the other modes.
//!
//! The tools must be installed (`scripts/test-srbd.sh` installs
//! `pulseaudio-utils`); without them these tests fail, they do not skip.
//! Every wait is bounded by `DEADLINE`; nothing measures speed.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Child;
use std::time::Instant;

use common::srbd::{
    eventfd_ids, f32le_bytes, poll_until, runs, s16le_bytes, signal, wait_bounded, write_wav_f32,
    write_wav_i16, write_wav_u8, Daemon, Feeder, Rng, Shm, Signal, Wav, MONITOR, SINK,
};

in_all_modes!(
    pacat_raw_playback,
    paplay_formats,
    parec_records_playback_bit_exact,
    parec_records_playback_bit_exact_s16,
    eight_paplay_mix_is_the_sum,
    libpulse_sees_the_negotiated_shm_type,
    client_holds_the_srbchannel_eventfds,
    every_latency_plays_and_records,
    a_record_client_that_stops_reading_is_kept,
);

/// What libpulse 16.1 logs at debug level (`PULSE_LOG=4`) once AUTH is
/// answered (`context.c`), per mode.
const LIBPULSE_SHM_LINES: [(bool, &[&str]); 2] = [
    (
        true,
        &["Negotiated SHM: yes", "Negotiated SHM type: shared memfd"],
    ),
    (
        false,
        &["Negotiated SHM: no", "Negotiated SHM type: private"],
    ),
];

/// The client's own word for the transport: a `paplay` with libpulse's
/// debug log on says which SHM type it negotiated, and the daemon's log
/// agrees (a registered memfd pool and imported references, or none).
fn libpulse_sees_the_negotiated_shm_type(shm: Shm) {
    let d = Daemon::start_mode("libpulse-shm", shm, &["--output", "null"]);
    let file = d.path("tone.wav");
    write_wav_f32(&file, RATE, 2, &vec![0.125; 9_600 * 2]);
    let child = d
        .client("paplay")
        .env("PULSE_LOG", "4")
        .arg(&file)
        .spawn()
        .expect("spawn paplay");
    let out = wait_bounded(child, "paplay with PULSE_LOG=4");
    d.assert_exit_ok(&out, "paplay with PULSE_LOG=4");
    let log = String::from_utf8_lossy(&out.stderr);
    let (_, want) = LIBPULSE_SHM_LINES
        .iter()
        .find(|(m, _)| *m == (shm != Shm::Off))
        .expect("lines for the mode");
    for line in *want {
        assert!(
            log.lines().any(|l| l.trim() == *line),
            "{shm:?}: libpulse did not log {line:?}; its log:\n{log}\nsrbd log:\n{}",
            d.log()
        );
    }
    // The other mode's verdict must be absent.
    let (_, other) = LIBPULSE_SHM_LINES
        .iter()
        .find(|(m, _)| *m != (shm != Shm::Off))
        .expect("lines for the other mode");
    for line in *other {
        assert!(
            !log.lines().any(|l| l.trim() == *line),
            "{shm:?}: libpulse logged {line:?}:\n{log}"
        );
    }
    d.assert_transport(shm);
    d.assert_log_clean();
}

/// The client's side of the srbchannel: while a `pacat` is connected
/// with its stream created, it holds srbd's two srbchannel eventfds (fd0,
/// which it writes, and fd1, which it waits on): the same kernel objects,
/// matched by `eventfd-id`. With SHM only or no SHM the two processes
/// share no eventfd at all.
fn client_holds_the_srbchannel_eventfds(shm: Shm) {
    let d = Daemon::start_mode("srb-eventfds", shm, &["--output", "null"]);
    // pacat connects and creates its stream at once, then waits for its
    // stdin, which stays open (and empty) until the check is done.
    let mut pacat = d.spawn_pacat(&["--raw", "--format=s16le", "--rate=48000", "--channels=2"]);
    let stdin = pacat.stdin.take().unwrap();
    d.wait_while_running("the pacat stream", &mut [&mut pacat], || {
        (!d.list_short("sink-inputs").is_empty()).then_some(())
    });
    let shared = || {
        let ours = eventfd_ids(d.pid());
        eventfd_ids(pacat.id()).intersection(&ours).count()
    };
    match shm {
        Shm::Ring => d.wait_for("the client holding srbd's two srbchannel eventfds", || {
            (shared() == 2).then_some(())
        }),
        Shm::On | Shm::Off => assert_eq!(
            shared(),
            0,
            "{shm:?}: pacat shares eventfds with srbd\n{}",
            d.log()
        ),
    }
    drop(stdin);
    let out = wait_bounded(pacat, "pacat after EOF");
    d.assert_exit_ok(&out, "pacat");
    d.assert_log_clean();
}

/// The sink rate all tests run at.
const RATE: u32 = 48_000;

/// A daemon writing what its sink renders to `<dir>/out.wav`, float32le
/// stereo 48 kHz.
const WAV_F32: [&str; 8] = [
    "--output",
    "wav:{dir}/out.wav",
    "--format",
    "float32le",
    "--rate",
    "48000",
    "--channels",
    "2",
];

/// pacat/parec arguments for float32le stereo 48 kHz raw data.
const RAW_F32: [&str; 4] = [
    "--raw",
    "--format=float32le",
    "--rate=48000",
    "--channels=2",
];

/// A chunk for [`Feeder`]: 8192 float32 stereo frames (64 KiB) of `v`.
fn dc_chunk_f32(v: f32) -> Vec<u8> {
    f32le_bytes(&vec![v; 8192 * 2])
}

/// Frames of the sink's WAV output whose samples pass `on`.
fn on_runs(wav: &Wav, on: impl Fn(&[f32]) -> bool) -> Vec<(usize, usize)> {
    runs(wav.frames().map(on))
}

/// Fails unless `out.wav` is float32 stereo at [`RATE`].
fn assert_sink_wav(wav: &Wav) {
    assert_eq!(
        (wav.spec.sample_rate, wav.spec.channels),
        (RATE, 2),
        "output WAV spec {:?}",
        wav.spec
    );
    assert_eq!(
        (wav.spec.sample_format, wav.spec.bits_per_sample),
        (hound::SampleFormat::Float, 32),
        "output WAV spec {:?}",
        wav.spec
    );
}

/// Waits until `pactl list short sink-inputs` is empty.
fn wait_no_sink_inputs(d: &Daemon) {
    d.wait_for("no sink input left", || {
        d.list_short("sink-inputs").is_empty().then_some(())
    });
}

/// Waits until `pactl list short sink-inputs` has exactly `n` lines and
/// returns them; fails at once if one of `clients` exits meanwhile.
fn wait_sink_inputs(d: &Daemon, n: usize, clients: &mut [&mut Child]) -> Vec<Vec<String>> {
    d.wait_while_running(&format!("{n} sink input(s) listed"), clients, || {
        let l = d.list_short("sink-inputs");
        (l.len() == n).then_some(l)
    })
}

/// Starts a `parec` of the monitor in `format` into `<dir>/<name>` and
/// waits until its source output is listed.
fn start_monitor_recording(d: &Daemon, format: &str, name: &str) -> (Child, PathBuf) {
    let path = d.path(name);
    let format_arg = format!("--format={format}");
    let device = format!("--device={MONITOR}");
    let mut parec = d.spawn_parec(
        &[
            "--raw",
            &format_arg,
            "--rate=48000",
            "--channels=2",
            &device,
        ],
        &path,
    );
    d.wait_while_running("parec's source output listed", &mut [&mut parec], || {
        (d.list_short("source-outputs").len() == 1).then_some(())
    });
    (parec, path)
}

/// SIGINT to a parec; it must exit 0.
fn stop_parec(d: &Daemon, parec: Child) {
    signal(&parec, Signal::INT);
    let out = wait_bounded(parec, "parec after SIGINT");
    d.assert_exit_ok(&out, "parec");
}

fn pacat_raw_playback(shm: Shm) {
    let mut d = Daemon::start_mode("pacat-raw", shm, &WAV_F32);
    let mut rng = Rng::new(0x5eed_0001);
    let frames = 2 * 44_100;
    // Noise between 0.3 and 0.6 of full scale: resampled, it stays far
    // from the silence threshold below, so every frame of it counts.
    let bytes = s16le_bytes(
        &(0..frames * 2)
            .map(|_| 9_830 + (rng.next_u64() % 9_831) as i16)
            .collect::<Vec<_>>(),
    );
    let mut pacat = d.spawn_pacat(&["--raw", "--format=s16le", "--rate=44100", "--channels=2"]);
    let mut stdin = pacat.stdin.take().unwrap();
    // One write_all: the pipe then hands pacat page-sized (frame-aligned)
    // pieces; closing stdin is the EOF that makes pacat drain.
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = wait_bounded(pacat, "pacat --raw");
    d.assert_exit_ok(&out, "pacat --raw");
    writer.join().unwrap().expect("writing pacat's stdin");
    wait_no_sink_inputs(&d);
    d.assert_transport(shm);
    d.assert_log_clean();
    d.stop_ok();

    // 2 s of noise at 44.1 kHz is 96000 frames at 48 kHz: one contiguous
    // run of sound of that length (1% for the resampler's edges; its
    // transients are far below 0.1).
    let wav = Wav::read(&d.path("out.wav"));
    assert_sink_wav(&wav);
    let r = on_runs(&wav, |f| f.iter().any(|&s| s > 0.1));
    assert_eq!(
        r.len(),
        1,
        "the stream must come out as one run of sound: {r:?}"
    );
    let want = 96_000usize;
    assert!(
        r[0].1.abs_diff(want) <= want / 100,
        "{} frames of sound, want {want} ±1%",
        r[0].1
    );
}

/// One `paplay_formats` input: a 1.0 s WAV of DC 0.25 full scale.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// 16-bit PCM.
    S16,
    /// IEEE float.
    F32,
    /// Unsigned 8-bit PCM.
    U8,
}

fn paplay_formats(shm: Shm) {
    for (input, rate, channels) in [
        (Input::S16, 44_100u32, 2u16),
        (Input::F32, 48_000, 1),
        (Input::U8, 22_050, 1),
    ] {
        let what = format!("{input:?} {channels}ch {rate}Hz");
        let mut d = Daemon::start_mode(&format!("paplay-{}", rate), shm, &WAV_F32);
        let file = d.path("in.wav");
        let n = rate as usize * usize::from(channels);
        match input {
            // 0.25 full scale in each format.
            Input::S16 => write_wav_i16(&file, rate, channels, &vec![8192; n]),
            Input::F32 => write_wav_f32(&file, rate, channels, &vec![0.25; n]),
            Input::U8 => write_wav_u8(&file, rate, channels, &vec![128 + 32; n]),
        }
        d.paplay_ok(&file);
        wait_no_sink_inputs(&d);
        let (created, deleted) = d.stream_events();
        assert!(
            created >= 1 && deleted >= 1,
            "{what}: the log must show the stream created and deleted \
             (created {created}, deleted {deleted}):\n{}",
            d.log()
        );
        d.assert_transport(shm);
        d.assert_log_clean();
        d.stop_ok();

        let wav = Wav::read(&d.path("out.wav"));
        assert_sink_wav(&wav);
        // Sound: any channel above a quarter of the level (resampler
        // ripple is far below; a mono remap at -3 or -6 dB far above).
        let r = on_runs(&wav, |f| f.iter().any(|&s| s > 0.0625));
        assert_eq!(r.len(), 1, "{what}: one run of sound expected: {r:?}");
        let (start, len) = r[0];
        let want = RATE as usize;
        if rate == RATE {
            assert_eq!(len, want, "{what}: frames of sound (no resampling)");
        } else {
            assert!(
                len.abs_diff(want) <= want / 100,
                "{what}: {len} frames of sound, want {want} ±1%"
            );
        }
        // The level in the middle 90% of the run.
        let frames: Vec<&[f32]> = wav
            .frames()
            .skip(start + len / 20)
            .take(len * 9 / 10)
            .collect();
        for (i, f) in frames.iter().enumerate() {
            let ok = if channels == 2 {
                f.iter().all(|&s| (s - 0.25).abs() <= 0.0025)
            } else {
                f[0] == f[1] && (0.12..=0.2525).contains(&f[0])
            };
            assert!(ok, "{what}: frame {} of the run is {f:?}", i + len / 20);
        }
    }
}

/// Plays a 1.5 s noise WAV in `format` (float32le or s16le) and records
/// the monitor in the same format: the recording holds every played frame
/// bit-exactly, contiguously, with only silence around it.
fn parec_bit_exact(tag: &str, format: &str, shm: Shm) {
    let d = Daemon::start_mode(
        tag,
        shm,
        &[
            "--output",
            "null",
            "--format",
            format,
            "--rate",
            "48000",
            "--channels",
            "2",
        ],
    );
    let mut rng = Rng::new(0x5eed_0002);
    let frames = 72_000usize; // 1.5 s
    let file = d.path("noise.wav");
    let (played, frame_bytes) = match format {
        "float32le" => {
            let s: Vec<f32> = (0..frames * 2).map(|_| rng.sample_f32()).collect();
            write_wav_f32(&file, RATE, 2, &s);
            (f32le_bytes(&s), 8)
        }
        "s16le" => {
            let s: Vec<i16> = (0..frames * 2).map(|_| rng.sample_i16()).collect();
            write_wav_i16(&file, RATE, 2, &s);
            (s16le_bytes(&s), 4)
        }
        other => panic!("no test data for {other}"),
    };
    let (parec, rec_path) = start_monitor_recording(&d, format, "rec.raw");
    d.paplay_ok(&file);

    // The first four played frames, searched at frame boundaries (the
    // noise has no zero sample; what precedes them is silence).
    let head = &played[..4 * frame_bytes];
    let find = |rec: &[u8]| {
        (0..rec.len().saturating_sub(head.len()) + 1)
            .step_by(frame_bytes)
            .find(|&i| rec[i..].starts_with(head))
    };
    // Record data arrives in fragments: wait until all of it is there.
    poll_until(
        "the recording holds every played frame",
        || {
            let rec = std::fs::read(&rec_path).ok()?;
            let start = find(&rec)?;
            (rec.len() >= start + played.len()).then_some(())
        },
        || {
            let rec = std::fs::read(&rec_path).unwrap_or_default();
            format!(
                "recording: {} bytes, first played frame at {:?}, {} bytes played\nsrbd log:\n{}",
                rec.len(),
                find(&rec),
                played.len(),
                d.log()
            )
        },
    );
    stop_parec(&d, parec);

    let rec = std::fs::read(&rec_path).unwrap();
    let start = find(&rec).expect("first played frame in the recording");
    let decode = |b: &[u8]| -> String {
        if frame_bytes == 8 {
            format!(
                "{:?}",
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect::<Vec<_>>()
            )
        } else {
            format!(
                "{:?}",
                b.chunks_exact(2)
                    .map(|c| i16::from_le_bytes(c.try_into().unwrap()))
                    .collect::<Vec<_>>()
            )
        }
    };
    for (i, (got, want)) in rec[start..]
        .chunks_exact(frame_bytes)
        .zip(played.chunks_exact(frame_bytes))
        .enumerate()
    {
        assert!(
            got == want,
            "{format}: frame {i} of {frames} differs: recorded {} played {}",
            decode(got),
            decode(want)
        );
    }
    // Around the played frames: silence only (no data twice, nothing
    // invented). Numeric zero: -0.0 counts as silence.
    let silent = |b: &[u8]| -> bool {
        if frame_bytes == 8 {
            b.chunks_exact(4)
                .all(|c| f32::from_le_bytes(c.try_into().unwrap()) == 0.0)
        } else {
            b.iter().all(|&x| x == 0)
        }
    };
    let before = &rec[..start];
    let after = &rec[start + played.len()..];
    let after = &after[..after.len() / frame_bytes * frame_bytes];
    for (what, part) in [("before", before), ("after", after)] {
        if let Some(i) = part.chunks_exact(frame_bytes).position(|f| !silent(f)) {
            panic!(
                "{format}: frame {i} {what} the played frames is not silence: {}",
                decode(&part[i * frame_bytes..][..frame_bytes])
            );
        }
    }
    d.assert_transport(shm);
    d.assert_log_clean();
}

fn parec_records_playback_bit_exact(shm: Shm) {
    parec_bit_exact("parec-f32", "float32le", shm);
}

fn parec_records_playback_bit_exact_s16(shm: Shm) {
    parec_bit_exact("parec-s16", "s16le", shm);
}

fn eight_paplay_mix_is_the_sum(shm: Shm) {
    let mut d = Daemon::start_mode("mix8", shm, &WAV_F32);
    // Stream i: DC 2^-(i+4) on both channels for 1.0 s + i × 0.1 s. Each
    // value is one bit of k/2048, k in 0..=255, so every sum is exact in
    // f32 and says which streams were playing.
    let inputs: Vec<(PathBuf, usize)> = (0..8)
        .map(|i| {
            let frames = 48_000 + i * 4_800;
            let v = 2f32.powi(-(i as i32 + 4));
            let path = d.path(&format!("dc{i}.wav"));
            write_wav_f32(&path, RATE, 2, &vec![v; frames * 2]);
            (path, frames)
        })
        .collect();
    let players: Vec<Child> = inputs.iter().map(|(p, _)| d.spawn_paplay(p, &[])).collect();
    for (i, p) in players.into_iter().enumerate() {
        let out = wait_bounded(p, &format!("paplay {i}"));
        d.assert_exit_ok(&out, &format!("paplay {i}"));
    }
    wait_no_sink_inputs(&d);
    d.assert_transport(shm);
    d.stop_ok();

    let wav = Wav::read(&d.path("out.wav"));
    assert_sink_wav(&wav);
    let mut masks = Vec::with_capacity(wav.frame_count());
    for (n, f) in wav.frames().enumerate() {
        assert!(f[0] == f[1], "frame {n}: channels differ: {f:?}");
        let k = f[0] * 2048.0; // exact: a power-of-two scale
        assert!(
            (0.0..=255.0).contains(&k) && k.fract() == 0.0,
            "frame {n}: {} is not a sum of a subset of the streams' values",
            f[0]
        );
        masks.push(k as u32);
    }
    for (i, (_, frames)) in inputs.iter().enumerate() {
        let bit = 1u32 << (7 - i);
        let r = runs(masks.iter().map(|m| m & bit != 0));
        assert_eq!(
            r.len(),
            1,
            "stream {i} must be present in exactly one run: {r:?}"
        );
        assert_eq!(r[0].1, *frames, "stream {i}: frames present in the mix");
    }
}

/// The per-channel raw volumes of the first `Volume:` line of `pactl list
/// sink-inputs` (`front-left: 52016 /  79% / -6.02 dB,   front-right: …`).
fn parse_volumes(long: &str) -> Vec<u32> {
    let Some(line) = long
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Volume:"))
    else {
        return Vec::new();
    };
    line["Volume:".len()..]
        .split(',')
        .filter_map(|part| {
            let (_, rest) = part.split_once(':')?;
            rest.split('/').next()?.trim().parse().ok()
        })
        .collect()
}

#[test]
fn sink_input_volume_halves_level() {
    let mut d = Daemon::start_args("volume", &WAV_F32);
    // The monitor shows when the stream is audible at full level.
    let (mut probe, probe_path) = start_monitor_recording(&d, "float32le", "probe.raw");
    let mut args = RAW_F32.to_vec();
    args.push("--client-name=srb-volume");
    let mut pacat = d.spawn_pacat(&args);
    let feeder = Feeder::start(pacat.stdin.take().unwrap(), dc_chunk_f32(0.25));
    let index = wait_sink_inputs(&d, 1, &mut [&mut pacat, &mut probe])[0][0].clone();
    let quarter = f32le_bytes(&[0.25, 0.25]);
    d.wait_while_running(
        "the monitor carries the stream at 0.25",
        &mut [&mut pacat, &mut probe],
        || {
            let rec = std::fs::read(&probe_path).ok()?;
            rec.chunks_exact(8).any(|f| f == quarter).then_some(())
        },
    );

    // "0.5" is a linear factor for pactl: cbrt(0.5) × NORM, rounded.
    d.pactl_ok(&["set-sink-input-volume", &index, "0.5"]);
    let want = (0.5f64.cbrt() * 65536.0).round() as u32;
    d.wait_for("pactl list sink-inputs shows the new volume", || {
        let v = parse_volumes(&d.pactl_ok(&["list", "sink-inputs"]));
        (v.len() == 2 && v.iter().all(|x| x.abs_diff(want) <= 1)).then_some(())
    });
    // Six more chunks (49152 frames) sent after the change: they can only
    // play at the new level.
    let tail_frames = 6 * 8192;
    let written = feeder.finish(6);
    let out = wait_bounded(pacat, "pacat");
    d.assert_exit_ok(&out, "pacat");
    stop_parec(&d, probe);
    wait_no_sink_inputs(&d);
    d.stop_ok();

    let wav = Wav::read(&d.path("out.wav"));
    assert_sink_wav(&wav);
    let mut levels = Vec::new();
    for (n, f) in wav.frames().enumerate() {
        assert!(f[0] == f[1], "frame {n}: channels differ: {f:?}");
        if f[0] != 0.0 {
            levels.push(f[0]);
        }
    }
    assert_eq!(
        levels.len() as u64,
        written / 8,
        "every frame fed to pacat must be in the output once"
    );
    assert_eq!(levels[0], 0.25, "full level before the change");
    let k = levels
        .iter()
        .position(|&v| v != 0.25)
        .expect("no frame after the volume change");
    let near_eighth = |v: f32| ((v - 0.125) / 0.125).abs() <= 1e-3;
    // A ramp, if any, falls from 0.25 to 0.125 within 100 ms.
    let settle = levels[k..]
        .iter()
        .position(|&v| near_eighth(v))
        .expect("level never reaches 0.125");
    assert!(
        settle <= 4800,
        "{settle} frames between 0.25 and 0.125 (ramp longer than 100 ms)"
    );
    for (i, w) in levels[k..k + settle + 1].windows(2).enumerate() {
        assert!(
            w[1] <= w[0] && w[1] >= 0.125 * (1.0 - 1e-3),
            "ramp frame {i}: {w:?}"
        );
    }
    let after = &levels[k + settle..];
    if let Some(i) = after.iter().position(|&v| !near_eighth(v)) {
        panic!(
            "frame {i} after the change is {}, want 0.125 (±1e-3 relative)",
            after[i]
        );
    }
    assert!(
        after.len() >= tail_frames,
        "{} frames at 0.125, want at least {tail_frames}",
        after.len()
    );
}

#[test]
fn list_short_fields() {
    let d = Daemon::start("list-short");
    let sinks = d.list_short("sinks");
    assert_eq!(sinks.len(), 1, "{sinks:?}");
    let s = &sinks[0];
    assert_eq!(s.len(), 5, "index, name, driver, spec, state: {s:?}");
    assert_eq!(s[0], "0");
    assert_eq!(s[1], SINK);
    assert!(!s[2].is_empty(), "driver: {s:?}");
    assert_eq!(s[3], "float32le 2ch 48000Hz");
    assert!(
        ["RUNNING", "IDLE", "SUSPENDED"].contains(&s[4].as_str()),
        "state: {s:?}"
    );
    let sources = d.list_short("sources");
    assert!(
        sources
            .iter()
            .any(|l| l.get(1).map(String::as_str) == Some(MONITOR)
                && l.get(3).map(String::as_str) == Some("float32le 2ch 48000Hz")),
        "{sources:?}"
    );

    let mut rng = Rng::new(0x5eed_0003);
    let chunk = s16le_bytes(
        &(0..16_384 * 2)
            .map(|_| rng.sample_i16())
            .collect::<Vec<_>>(),
    );
    let mut pacat = d.spawn_pacat(&[
        "--raw",
        "--format=s16le",
        "--rate=44100",
        "--channels=2",
        "--client-name=srb-list-probe",
    ]);
    let feeder = Feeder::start(pacat.stdin.take().unwrap(), chunk);
    let inputs = wait_sink_inputs(&d, 1, &mut [&mut pacat]);
    let i = &inputs[0];
    assert_eq!(i.len(), 5, "index, sink, client, driver, spec: {inputs:?}");
    assert!(i[0].parse::<u32>().is_ok(), "sink input index: {i:?}");
    assert_eq!(i[1], "0", "sink index: {i:?}");
    assert!(i[2].parse::<u32>().is_ok(), "client index: {i:?}");
    assert!(!i[3].is_empty(), "driver: {i:?}");
    assert_eq!(i[4], "s16le 2ch 44100Hz", "{i:?}");
    let clients = d.list_short("clients");
    assert!(
        clients.iter().any(|c| c[0] == i[2]),
        "the sink input's client {} is not in {clients:?}",
        i[2]
    );
    let long = d.pactl_ok(&["list", "sink-inputs"]);
    for want in [
        format!("Sink Input #{}", i[0]),
        "Sink: 0".to_owned(),
        "Sample Specification: s16le 2ch 44100Hz".to_owned(),
        "application.name = \"srb-list-probe\"".to_owned(),
    ] {
        assert!(long.contains(&want), "missing {want:?} in:\n{long}");
    }
    feeder.finish(1);
    let out = wait_bounded(pacat, "pacat");
    d.assert_exit_ok(&out, "pacat");
    wait_no_sink_inputs(&d);
}

#[test]
fn sink_options_show_in_lists() {
    let d = Daemon::start_args(
        "options",
        &[
            "--sink-name",
            "studio",
            "--format",
            "s16le",
            "--rate",
            "44100",
            "--channels",
            "1",
        ],
    );
    let sinks = d.list_short("sinks");
    assert_eq!(sinks.len(), 1, "{sinks:?}");
    assert_eq!(&sinks[0][..2], ["0", "studio"], "{sinks:?}");
    assert_eq!(sinks[0][3], "s16le 1ch 44100Hz", "{sinks:?}");
    let sources = d.list_short("sources");
    assert!(
        sources
            .iter()
            .any(|l| l.get(1).map(String::as_str) == Some("studio.monitor")),
        "{sources:?}"
    );
    assert_eq!(d.pactl_ok(&["get-default-sink"]).trim(), "studio");
}

/// Number of the daemon's fds that are sockets (listener, connections).
fn socket_fds(d: &Daemon) -> usize {
    d.fd_targets()
        .iter()
        .filter(|t| t.contains("socket:"))
        .count()
}

#[test]
fn killed_paplay_leaves_no_trace() {
    let d = Daemon::start("killed");
    let listening_sockets = socket_fds(&d);
    d.pactl_ok(&["info"]);
    // Warm-up: one short stream, so resources the daemon creates once
    // (mixer thread, timers) are in the baseline; a per-stream or
    // per-connection leak still shows below.
    let short = d.path("short.wav");
    write_wav_f32(&short, RATE, 2, &vec![0.1; 4_800 * 2]);
    d.paplay_ok(&short);
    let baseline = d.wait_for("the warm-up connections closed", || {
        (socket_fds(&d) == listening_sockets).then(|| d.fd_count())
    });

    let long = d.path("long.wav");
    let mut rng = Rng::new(0x5eed_0004);
    let noise: Vec<f32> = (0..5 * 48_000 * 2).map(|_| rng.sample_f32()).collect();
    write_wav_f32(&long, RATE, 2, &noise);
    let mut victim = d.spawn_paplay(&long, &[]);
    let mut survivor = d.spawn_paplay(&long, &[]);
    wait_sink_inputs(&d, 2, &mut [&mut victim, &mut survivor]);
    signal(&victim, Signal::KILL);
    let out = wait_bounded(victim, "killed paplay");
    assert!(!out.status.success(), "the killed paplay: {:?}", out.status);
    let out = wait_bounded(survivor, "surviving paplay");
    d.assert_exit_ok(&out, "surviving paplay");

    wait_no_sink_inputs(&d);
    // Only the asking pactl itself is a client.
    d.wait_for("only the asking client listed", || {
        (d.list_short("clients").len() == 1).then_some(())
    });
    poll_until(
        "the daemon's fd count back at its baseline",
        || (socket_fds(&d) == listening_sockets && d.fd_count() <= baseline).then_some(()),
        || {
            format!(
                "baseline {baseline}, now {}:\n{}\nsrbd log:\n{}",
                d.fd_count(),
                d.fd_targets().join("\n"),
                d.log()
            )
        },
    );
    assert!(!d.log().contains("panicked"), "srbd panicked:\n{}", d.log());
}

#[test]
fn drain_waits_for_playout() {
    let d = Daemon::start("drain");
    let file = d.path("one-second.wav");
    write_wav_f32(&file, RATE, 2, &vec![0.1; 48_000 * 2]);
    let started = Instant::now();
    d.paplay_ok(&file);
    let took = started.elapsed();
    // A lower bound on correctness: DRAIN is answered once the last frame
    // played, and the sink plays 1.0 s in 1.0 s of wall time.
    assert!(
        took.as_secs_f64() >= 0.9,
        "paplay of 1.0 s finished after {took:?}: DRAIN answered before playout"
    );
    wait_no_sink_inputs(&d);
    d.assert_log_clean();
}

/// `key=value` from libpulse's "Buffer metrics:" line (pacat/parec -v).
fn metric(stderr: &str, key: &str) -> Option<u32> {
    let line = stderr.lines().find(|l| l.contains("Buffer metrics:"))?;
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Every latency a client may ask for, from 1 ms to 2 s: playback starts
/// and drains (below one 10 ms period the attributes are raised to the
/// smallest that play, and the reply says so), and a record stream
/// delivers, its fragment at least one period.
fn every_latency_plays_and_records(shm: Shm) {
    let mut d = Daemon::start_mode("latency", shm, &["--dsp", "off"]);
    // s16 stereo 48 kHz: 4-byte frames, a 10 ms period is 1920 bytes.
    let period = 1920;
    let mut rng = Rng::new(0x1a7e);
    let noise = s16le_bytes(
        &(0..48_000 / 5 * 2)
            .map(|_| (rng.next_u64() % 16_384) as i16 - 8_192)
            .collect::<Vec<_>>(),
    );
    for ms in [1u32, 2, 5, 8, 10, 20, 50, 100, 500, 1000, 2000] {
        let lat = format!("--latency-msec={ms}");
        let fmt = [
            "--raw",
            "--format=s16le",
            "--rate=48000",
            "--channels=2",
            "-v",
        ];
        let mut args = fmt.to_vec();
        args.push(&lat);
        let mut pacat = d.spawn_pacat(&args);
        let mut stdin = pacat.stdin.take().unwrap();
        let bytes = noise.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let out = wait_bounded(pacat, &format!("pacat {lat}"));
        d.assert_exit_ok(&out, &format!("pacat {lat}"));
        writer.join().unwrap().expect("writing pacat's stdin");
        let err = String::from_utf8_lossy(&out.stderr);
        let (tlength, minreq) = (metric(&err, "tlength"), metric(&err, "minreq"));
        let (Some(tlength), Some(minreq)) = (tlength, minreq) else {
            panic!("{lat}: no buffer metrics in pacat's output:\n{err}");
        };
        assert!(
            tlength >= period + minreq,
            "{lat}: tlength {tlength} cannot hold a {period}-byte period and a {minreq}-byte request"
        );

        let rec = d.path(&format!("rec-{ms}.raw"));
        let mut args = fmt.to_vec();
        args.push(&lat);
        let parec = d
            .client("parec")
            .args(&args)
            .stdout(std::fs::File::create(&rec).unwrap())
            .spawn()
            .expect("spawn parec");
        grown(&d, &rec, u64::from(period));
        signal(&parec, Signal::INT);
        let out = wait_bounded(parec, &format!("parec {lat}"));
        let err = String::from_utf8_lossy(&out.stderr);
        let Some(fragsize) = metric(&err, "fragsize") else {
            panic!("{lat}: no buffer metrics in parec's output:\n{err}");
        };
        assert!(
            fragsize >= period,
            "{lat}: fragsize {fragsize} below one period"
        );
    }
    wait_no_sink_inputs(&d);
    d.assert_log_clean();
    d.stop_ok();
}

/// Waits (bounded) until the recording `rec` holds at least `min` bytes.
fn grown(d: &Daemon, rec: &std::path::Path, min: u64) {
    poll_until(
        "the recording to grow",
        || (std::fs::metadata(rec).map_or(0, |m| m.len()) >= min).then_some(()),
        || d.log(),
    );
}

/// A `parec` stopped (Ctrl-Z) far longer than its queue would hold is kept:
/// srbd stops sending it audio, drops the oldest of what it records
/// meanwhile, and resumes when it reads again (PulseAudio keeps it too).
/// 48 kHz, 8 channels, float: 1.5 MB/s, past srbd's 4 MiB output cap
/// after 2.8 s of the 5 s stop.
fn a_record_client_that_stops_reading_is_kept(shm: Shm) {
    let mut d = Daemon::start_mode("rec-stop", shm, &["--dsp", "off"]);
    let rec = d.path("rec.raw");
    let mut parec = d
        .client("parec")
        .args([
            "--raw",
            "--format=float32le",
            "--rate=48000",
            "--channels=8",
        ])
        .stdout(std::fs::File::create(&rec).unwrap())
        .spawn()
        .expect("spawn parec");
    grown(&d, &rec, 1);
    signal(&parec, Signal::STOP);
    // Stopped this long on purpose: past the 4 MiB cap at 1.5 MB/s.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let before = std::fs::metadata(&rec).unwrap().len();
    signal(&parec, Signal::CONT);
    // It reads again and keeps getting audio.
    grown(&d, &rec, before + 3_000_000);
    assert!(
        parec.try_wait().unwrap().is_none(),
        "parec was disconnected"
    );
    // Read before parec leaves: once it is gone a send may see EPIPE.
    let log = d.log();
    signal(&parec, Signal::INT);
    wait_bounded(parec, "parec after SIGINT");
    assert!(
        log.contains("record client is not reading; dropping its oldest audio"),
        "{log}"
    );
    assert!(log.contains("record client reads again"), "{log}");
    assert!(!log.contains("connection closed"), "{log}");
    d.stop_ok();
}
