//! End-to-end: `srbd` with its `dsp-sim` peer (on by default), driven by
//! Debian's real `paplay`/`parec`.
//!
//! Proves that the DSP is in the path and transparent in bypass (the WAV
//! output equals the input bit for bit), that a chain's output equals the
//! srb-dsp-sim library's own offline processing, that SIGKILL and SIGSTOP
//! of the DSP mid-stream reach no client (the audio stays bit-exact and
//! contiguous, the daemon restarts the peer and leaks no fd or mapping),
//! the deadline policy (short stops of a DSP with a chain play silence,
//! never the unprocessed mix, keep the DSP and are counted; bypass only
//! when asked for), that `--dsp off` runs without a peer, that the mixer
//! and the DSP run with the scheduling policy they report, and that the
//! DSP's statistics (deadline misses included) are reported.

mod common;

use common::dsp::*;
use common::srbd::*;
use rustix::process::Signal;
use std::path::Path;

/// The pids in the daemon's log lines "dsp-sim started pid=N", in order.
fn dsp_pids(d: &Daemon) -> Vec<u32> {
    strip_ansi(&d.log())
        .lines()
        .filter_map(|l| {
            let rest = l.split("dsp-sim started pid=").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn attached(d: &Daemon) -> usize {
    d.log().matches("DSP attached").count()
}

/// Shared-memory mappings (memfd blocks) of `pid`. Thread stacks come and
/// go with glibc's cache, so only these are compared.
fn maps_count(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().filter(|l| l.contains("memfd:")).count())
        .unwrap_or(0)
}

#[test]
fn dsp_bypass_is_bit_exact_end_to_end() {
    let _serial = serial();
    let mut d = Daemon::start_args("dsp-bypass", &["--output", "wav:{dir}/out.wav"]);
    d.wait_for("the DSP to attach", || (attached(&d) > 0).then_some(()));
    let input = noise(1.0, 7);
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, &input);
    play(&d, &wav);
    d.stop_ok();
    let log = d.log();
    assert!(
        !log.contains("DSP declared dead"),
        "the DSP stayed in the path\n{log}"
    );
    let out = Wav::read(&d.path("out.wav"));
    assert_bit_exact(&out.samples, &input, "bypass", true);
}

#[test]
fn dsp_chain_output_equals_offline_processing() {
    let _serial = serial();
    let spec = "gain:-6dB,peak:1000Hz:q1.0:+3dB,lowpass:8000Hz";
    let mut d = Daemon::start_args(
        "dsp-chain",
        &["--output", "wav:{dir}/out.wav", "--dsp-chain", spec],
    );
    d.wait_for("the DSP to attach", || (attached(&d) > 0).then_some(()));
    let input = noise(1.0, 11);
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, &input);
    play(&d, &wav);
    d.stop_ok();
    let log = d.log();
    assert!(
        !log.contains("DSP declared dead"),
        "the DSP stayed in the path\n{log}"
    );
    let out = Wav::read(&d.path("out.wav")).samples;
    let start = out
        .iter()
        .position(|x| *x != 0.0)
        .expect("the processed stream is in the output");
    assert_eq!(start % 2, 0);
    // Offline: the same chain, warmed up with the silence the DSP
    // processed before the stream, then the stream.
    let mut chain = srb_dsp_sim::Chain::parse(spec, RATE as f32, 2).expect("spec");
    let mut silence = vec![0.0f32; start];
    for block in silence.chunks_mut(480 * 2) {
        chain.process(block);
    }
    let mut want = input.clone();
    for block in want.chunks_mut(480 * 2) {
        chain.process(block);
    }
    let got = &out[start..start + want.len()];
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the DSP's output differs from offline processing (worst {worst})"
    );
    // And it really processed: a -6 dB gain changes every sample.
    assert!(got.iter().zip(&input).any(|(a, b)| a != b));
}

#[test]
fn dsp_killed_and_stopped_mid_stream_reach_no_client() {
    let _serial = serial();
    let mut d = Daemon::start_args("dsp-faults", &["--output", "wav:{dir}/out.wav"]);
    d.wait_for("the DSP to attach", || (attached(&d) > 0).then_some(()));
    // Warm up once so one-time allocations are not counted as leaks.
    let warm = d.path("warm.wav");
    write_wav_f32(&warm, RATE, 2, &noise(0.1, 1));
    play(&d, &warm);
    let fds = d.settled_fd_count(0);
    let maps = maps_count(d.pid());
    assert!(maps >= 1, "the DSP block is mapped");
    let input = noise(3.0, 13);
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, &input);
    let player = d.spawn_paplay(&wav, &[]);
    d.wait_for("the stream", || {
        (!d.list_short("sink-inputs").is_empty()).then_some(())
    });
    let first = *dsp_pids(&d).last().expect("a dsp-sim pid in the log");
    signal_pid(first, Signal::KILL);
    d.wait_for("a new DSP after SIGKILL", || {
        (attached(&d) >= 2).then_some(())
    });
    let second = *dsp_pids(&d).last().unwrap();
    assert_ne!(first, second);
    signal_pid(second, Signal::STOP);
    d.wait_for("a new DSP after SIGSTOP", || {
        (attached(&d) >= 3).then_some(())
    });
    let out = wait_bounded(player, "paplay");
    d.assert_exit_ok(&out, "paplay across two DSP faults");
    let log = strip_ansi(&d.log());
    assert!(log.contains("the DSP hung up"), "SIGKILL noticed\n{log}");
    assert!(
        log.contains("no progress from the DSP for"),
        "a DSP stopped past the stall timeout (default 1 s) is declared dead\n{log}"
    );
    assert!(log.contains("restarting in"), "restarts logged\n{log}");
    // The stopped process was killed and reaped: not in /proc any more.
    d.wait_for("the stopped DSP to be reaped", || {
        (!Path::new(&format!("/proc/{second}")).exists()).then_some(())
    });
    // Nothing left behind once the dust settles.
    d.settled_fd_count(0);
    d.wait_fds_back(fds);
    d.wait_for("mappings back to baseline", || {
        (maps_count(d.pid()) == maps).then_some(())
    });
    d.stop_ok();
    let out = Wav::read(&d.path("out.wav"));
    assert_bit_exact(&out.samples, &input, "across DSP faults", false);
}

#[test]
fn dsp_off_keeps_the_timer_clock() {
    let _serial = serial();
    let mut d = Daemon::start_args(
        "dsp-off",
        &["--dsp", "off", "--output", "wav:{dir}/out.wav"],
    );
    let input = noise(0.5, 17);
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, &input);
    play(&d, &wav);
    d.stop_ok();
    assert!(dsp_pids(&d).is_empty(), "no dsp-sim was started");
    assert!(d.log().contains("DSP off"));
    assert_bit_exact(
        &Wav::read(&d.path("out.wav")).samples,
        &input,
        "dsp off",
        true,
    );
}

#[test]
fn dsp_statistics_are_reported_under_load() {
    let _serial = serial();
    let dir_probe = TempDir::new("dsp-stats-cfg");
    let cfg = dir_probe.0.join("srbd.toml");
    std::fs::write(&cfg, "stats_interval = 1\nperiod_frames = 64\n").unwrap();
    let cfg_arg = cfg.to_str().unwrap().to_owned();
    let mut d = Daemon::start_args("dsp-stats", &["--config", &cfg_arg]);
    d.wait_for("the DSP to attach", || (attached(&d) > 0).then_some(()));
    // A CPU hog on the other core while a stream plays.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hog = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            x
        })
    };
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, &noise(1.5, 19));
    play(&d, &wav);
    let line = d.wait_for("a stats line with DSP figures", || {
        strip_ansi(&d.log())
            .lines()
            .rev()
            .find(|l| l.contains(" stats ") && l.contains("dsp_periods="))
            .map(str::to_owned)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = hog.join();
    for field in [
        "dsp_deadline_misses=",
        "worst_us=",
        "late=",
        "fallbacks=",
        "restarts=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    d.stop_ok();
}

/// `seconds` of a stereo 1 kHz sine at `amplitude`: exactly 10 cycles per
/// 10 ms window, so every full window of it has the same RMS.
fn tone(seconds: f64, amplitude: f32) -> Vec<f32> {
    let frames = (seconds * f64::from(RATE)) as usize;
    (0..frames)
        .flat_map(|i| {
            let x = amplitude
                * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(RATE)).sin() as f32;
            [x, x]
        })
        .collect()
}

/// RMS of each 10 ms window (480 stereo frames) of `out`.
fn window_rms(out: &[f32]) -> Vec<f32> {
    out.chunks_exact(480 * 2)
        .map(|w| (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt())
        .collect()
}

/// The value of `key=` in the log's "DSP clock summary" line (written
/// when the mixer stops).
fn summary_field(d: &Daemon, key: &str) -> u64 {
    let log = strip_ansi(&d.log());
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("DSP clock summary"))
        .unwrap_or_else(|| panic!("no summary line\n{log}"));
    log_field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

/// Stops the DSP `pid` five times for 40 ms, 200 ms apart. The sleeps are
/// the fault's shape (how long the DSP is frozen), not waits for a
/// condition.
fn five_short_stops(pid: u32) {
    for _ in 0..5 {
        signal_pid(pid, Signal::STOP);
        std::thread::sleep(std::time::Duration::from_millis(40));
        signal_pid(pid, Signal::CONT);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Plays a 4 s tone at 0.5 through `gain:-20dB` with `extra` options,
/// stopping the DSP five times for 40 ms once the stream runs, then (with
/// `kill`) killing it; returns the daemon (stopped) and the output's
/// window levels, with the processed level (the median window of the
/// tone, where nearly every window is unfaulted).
fn stops_during_a_tone(tag: &str, extra: &[&str], kill: bool) -> (Daemon, Vec<f32>, f32) {
    let mut args = vec!["--output", "wav:{dir}/out.wav", "--dsp-chain", "gain:-20dB"];
    args.extend_from_slice(extra);
    let mut d = Daemon::start_args(tag, &args);
    d.wait_for("the DSP to attach", || (attached(&d) > 0).then_some(()));
    let wav = d.path("tone.wav");
    write_wav_f32(&wav, RATE, 2, &tone(4.0, 0.5));
    let player = d.spawn_paplay(&wav, &[]);
    d.wait_for("the stream", || {
        (!d.list_short("sink-inputs").is_empty()).then_some(())
    });
    let pid = *dsp_pids(&d).last().expect("a dsp-sim pid in the log");
    five_short_stops(pid);
    // Short stops do not cost the DSP its life.
    assert_eq!(dsp_pids(&d), vec![pid], "the DSP's pid did not change");
    assert_eq!(attached(&d), 1, "no re-attach\n{}", d.log());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // Each miss is on the state page: the sink's xruns, the same DSP.
    let page = d.state_page();
    let snap = d.wait_for("five misses on the state page", || {
        let s = page.snapshot().expect("a valid snapshot");
        (s.sinks()[0].xruns >= 5).then_some(s)
    });
    let dsp = snap.dsps().first().expect("the DSP on the page");
    assert_eq!(dsp.pid, pid, "the page names the running DSP");
    assert_eq!(dsp.restarts, 0, "no restart on the page");
    if kill {
        signal_pid(pid, Signal::KILL);
        d.wait_for("a new DSP after SIGKILL", || {
            (attached(&d) >= 2).then_some(())
        });
        assert_ne!(*dsp_pids(&d).last().unwrap(), pid);
    }
    let out = wait_bounded(player, "paplay");
    d.assert_exit_ok(&out, "paplay through DSP stops");
    d.stop_ok();
    let levels = window_rms(&Wav::read(&d.path("out.wav")).samples);
    let mut tone_levels: Vec<f32> = levels.iter().copied().filter(|l| *l > 0.0).collect();
    assert!(tone_levels.len() > 300, "the tone is in the output");
    tone_levels.sort_by(f32::total_cmp);
    let processed = tone_levels[tone_levels.len() / 2];
    // gain:-20dB of a 0.5 sine: 0.05 / sqrt(2).
    let want = 0.05 / std::f32::consts::SQRT_2;
    assert!(
        (processed - want).abs() < want * 0.01,
        "processed level {processed}, expected {want}"
    );
    (d, levels, processed)
}

/// The windows between the first and the last of the tone's (inclusive).
fn tone_span(levels: &[f32], processed: f32) -> &[f32] {
    let loud = |l: &f32| *l > processed * 0.9;
    let first = levels.iter().position(loud).expect("the tone");
    let last = levels.iter().rposition(loud).expect("the tone");
    &levels[first..=last]
}

#[test]
fn dsp_misses_play_silence_never_the_unprocessed_mix() {
    let _serial = serial();
    let (d, levels, processed) = stops_during_a_tone("dsp-deadline", &[], true);
    // No 10 ms window anywhere is louder than the processed level (1 %
    // for rounding): a period the DSP missed, and every period while the
    // killed DSP was restarted, played silence, not the -20 dB it skipped.
    let loudest = levels.iter().copied().fold(0.0f32, f32::max);
    assert!(
        loudest <= processed * 1.01,
        "a window at RMS {loudest} is louder than the processed {processed}"
    );
    // The stops landed inside the tone (so the check above saw them):
    // silent windows there.
    let gaps = tone_span(&levels, processed)
        .iter()
        .filter(|l| **l < processed * 0.5)
        .count();
    assert!(gaps >= 5, "{gaps} quiet windows inside the tone");
    // Every miss is counted.
    let xruns = summary_field(&d, "xruns");
    assert!(xruns >= 5, "{xruns} xruns counted\n{}", d.log());
    let log = d.log();
    assert!(log.contains("DSP missed periods"), "misses logged\n{log}");
    assert!(log.contains("the DSP hung up"), "SIGKILL noticed\n{log}");
    eprintln!(
        "processed level {processed}, loudest window {loudest}, {gaps} quiet windows, \
         {xruns} xruns, late={}",
        summary_field(&d, "late")
    );
}

#[test]
fn dsp_fallback_bypass_plays_the_unprocessed_mix_when_asked() {
    let _serial = serial();
    let (d, levels, processed) =
        stops_during_a_tone("dsp-bypass-opt-in", &["--dsp-fallback", "bypass"], false);
    // Asked for: the missed periods played the mix without the chain
    // (20 dB louder), and the tone has no silent gap.
    let span = tone_span(&levels, processed);
    let loud = span.iter().filter(|l| **l > processed * 2.0).count();
    assert!(loud >= 1, "no unprocessed window inside the tone");
    let quiet = span.iter().filter(|l| **l < processed * 0.5).count();
    assert_eq!(quiet, 0, "silent windows inside the tone under bypass");
    assert!(summary_field(&d, "xruns") >= 5);
}

#[test]
fn mixer_and_dsp_run_with_the_policy_they_report() {
    let _serial = serial();
    let mut d = Daemon::start_args("dsp-rt", &["--rt-priority", "5"]);
    d.wait_for("the DSP to attach", || (attached(&d) > 0).then_some(()));
    let pid = *dsp_pids(&d).last().expect("a dsp-sim pid");
    let outcome = |who: &str| {
        d.wait_for(&format!("{who}'s real-time line"), || {
            d.log()
                .lines()
                .find(|l| l.contains("real-time scheduling") && l.contains(who))
                .map(|l| l.contains("granted"))
        })
    };
    let mixer_granted = outcome("srbd-mixer");
    let dsp_granted = outcome("\"dsp-sim\"");
    let mixer_tid = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "srbd-mixer")
        })
        .and_then(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .expect("the mixer thread");
    let fifo = |granted: bool| if granted { Some(1) } else { Some(0) };
    assert_eq!(
        srbd::rt::sched::thread_policy(d.pid(), mixer_tid),
        fifo(mixer_granted),
        "mixer (granted: {mixer_granted})"
    );
    assert_eq!(
        srbd::rt::sched::thread_policy(pid, pid),
        fifo(dsp_granted),
        "dsp-sim (granted: {dsp_granted})"
    );
    // The DSP locked its memory, if the log says so.
    let locked = d.log().contains("memory locked");
    let vmlck = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(
        vmlck > 0,
        locked,
        "VmLck {vmlck} kB, logged locked: {locked}"
    );
    eprintln!("mixer SCHED_FIFO: {mixer_granted}, dsp-sim: {dsp_granted}, VmLck {vmlck} kB");
    d.stop_ok();
}
