//! End-to-end: `srbd --dsp board:ELF`, the DSP peer being the Cortex-M4F
//! firmware (`boards/mps2-an386`, `srb-board-dsp-peer`) under QEMU's
//! `mps2-an386`, sharing its PSRAM with srbd as a file; driven by Debian's
//! real `paplay`/`parec`.
//!
//! Proves that the firmware is in the path and transparent in bypass (a
//! `parec` of the monitor holds what `paplay` played, bit for bit), that
//! with a chain its output equals `dsp-sim`'s for the same input sample for
//! sample (the same `no_std` kernels on both), that a SIGKILLed or a
//! stopped (hung) QEMU reaches no client (the daemon restarts it, removes
//! the dead board's memory file and unmaps it), and that the firmware's statistics reach
//! srbd's log and state page.
//!
//! The firmware ELF is built by `scripts/board-peer.sh` (Debian's Rust with
//! build-std, as `scripts/test-boards.sh` builds the boards); without the
//! board toolchain or `qemu-system-arm` these tests fail, saying what is
//! missing — they never skip.

mod common;

use common::dsp::*;
use common::srbd::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;

/// The firmware ELF, built once per test binary by `scripts/board-peer.sh`.
fn elf() -> &'static Path {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new("bash")
            .arg(root.join("scripts/board-peer.sh"))
            .output()
            .expect("run scripts/board-peer.sh");
        assert!(
            out.status.success(),
            "building the board DSP peer failed (the board toolchain and qemu-system-arm \
             come with scripts/test-boards.sh):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(path.is_file(), "no firmware at {}", path.display());
        path
    })
}

/// srbd with the board peer and `args`, its stats logged every second.
fn start(tag: &str, args: &[&str]) -> Daemon {
    let dsp = format!("board:{}", elf().display());
    let cfg_dir = TempDir::new(&format!("{tag}-cfg"));
    let cfg = cfg_dir.0.join("srbd.toml");
    std::fs::write(&cfg, "stats_interval = 1\n").unwrap();
    let mut all = vec!["--dsp", &dsp, "--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let d = Daemon::start_args(tag, &all);
    // QEMU boots, then the firmware pulls: wait for its first report.
    d.wait_for("the firmware's first statistics in the log", || {
        firmware_stats(&d).map(|_| ())
    });
    d
}

/// The last stats line's `dsp_periods` once the firmware has reported.
fn firmware_stats(d: &Daemon) -> Option<u64> {
    d.log()
        .lines()
        .rev()
        .find_map(|l| l.contains(" stats ").then(|| log_field(l, "dsp_periods"))?)
        .and_then(|v| v.parse().ok())
        .filter(|&p| p > 0)
}

/// The pids of "board DSP (QEMU) started pid=N" lines, in order.
fn qemu_pids(d: &Daemon) -> Vec<u32> {
    d.log()
        .lines()
        .filter_map(|l| {
            let rest = l.split("board DSP (QEMU) started pid=").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The board memory files in the daemon's runtime directory.
fn memory_files(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&d.dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dsp-board-") && n.ends_with(".mem"))
        .collect();
    v.sort();
    v
}

/// srbd's mappings of board memory files (deleted ones included).
fn board_mappings(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("dsp-board-"))
        .map(str::to_owned)
        .collect()
}

fn f32le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Starts a `parec` of the monitor (float32le stereo 48 kHz, raw) and
/// waits until its source output is listed.
fn record_monitor(d: &Daemon, name: &str) -> (Child, PathBuf) {
    let path = d.path(name);
    let device = format!("--device={MONITOR}");
    let mut parec = d.spawn_parec(
        &[
            "--raw",
            "--format=float32le",
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

#[test]
fn board_bypass_is_bit_exact_on_the_monitor() {
    let _serial = serial();
    let mut d = start("board-bypass", &[]);
    let (parec, rec) = record_monitor(&d, "monitor.raw");
    let input = noise(1.0, 7);
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, &input);
    play(&d, &wav);
    // The monitor lags the sink by the firmware's period: wait until the
    // whole stream is in the recording before stopping parec.
    d.wait_for("the stream in the monitor recording", || {
        let got = f32le(&std::fs::read(&rec).unwrap_or_default());
        let start =
            (0..got.len().saturating_sub(8) / 2).find(|&i| got[i * 2..i * 2 + 8] == input[..8])?;
        (got.len() >= start * 2 + input.len()).then_some(())
    });
    signal(&parec, Signal::INT);
    let out = wait_bounded(parec, "parec");
    d.assert_exit_ok(&out, "parec");
    let log = d.log();
    assert!(
        !log.contains("DSP declared dead"),
        "the board stayed in the path\n{log}"
    );
    // The firmware's statistics: in the log, and on the state page under
    // QEMU's pid.
    let qemu = *qemu_pids(&d).last().expect("QEMU's pid in the log");
    let page = d.state_page();
    let dsp = d.wait_for("the firmware's figures on the state page", || {
        let s = page.snapshot().ok()?;
        let dsp = *s.dsps().first()?;
        (dsp.periods > 0 && dsp.mean_ns > 0).then_some(dsp)
    });
    assert_eq!(
        dsp.pid, qemu,
        "the page's DSP is the QEMU running the firmware"
    );
    assert!(dsp.worst_ns >= dsp.mean_ns);
    d.stop_ok();
    let out = f32le(&std::fs::read(&rec).unwrap());
    assert_bit_exact(&out, &input, "monitor through the board in bypass", false);
    assert!(
        memory_files(&d).is_empty(),
        "the memory file is removed when srbd exits: {:?}",
        memory_files(&d)
    );
}

/// Plays `input` through srbd with `dsp` (`board:ELF` or `on` for
/// dsp-sim) and `chain`; returns the sink's WAV output from the first
/// non-zero sample on.
fn processed(tag: &str, dsp_sim: bool, chain: &str, input: &[f32]) -> Vec<f32> {
    let args = ["--output", "wav:{dir}/out.wav", "--dsp-chain", chain];
    let mut d = if dsp_sim {
        let d = Daemon::start_args(tag, &args);
        d.wait_for("dsp-sim to attach", || {
            d.log().contains("DSP attached").then_some(())
        });
        d
    } else {
        start(tag, &args)
    };
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, input);
    play(&d, &wav);
    d.stop_ok();
    let log = d.log();
    assert!(
        !log.contains("DSP declared dead"),
        "{tag}: the DSP stayed in the path\n{log}"
    );
    let out = Wav::read(&d.path("out.wav")).samples;
    let start = out
        .iter()
        .position(|x| *x != 0.0)
        .expect("the processed stream is in the output");
    assert_eq!(start % 2, 0);
    out[start..].to_vec()
}

#[test]
fn board_chain_output_equals_dsp_sim() {
    let _serial = serial();
    let spec = "gain:-6dB,peak:1000Hz:q1.0:+3dB,lowpass:8000Hz";
    let input = noise(1.0, 11);
    let board = processed("board-chain", false, spec, &input);
    let sim = processed("sim-chain", true, spec, &input);
    let n = input.len();
    assert!(board.len() >= n && sim.len() >= n, "both hold the stream");
    let differ = board[..n]
        .iter()
        .zip(&sim[..n])
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(
        differ, None,
        "the firmware's output differs from dsp-sim's at that sample"
    );
    // And it really processed: a -6 dB gain changes every sample.
    assert!(board[..n].iter().zip(&input).all(|(a, b)| a != b));
}

#[test]
fn a_killed_or_hung_qemu_is_restarted_and_cleaned_up() {
    let _serial = serial();
    let mut d = start("board-kill", &["--output", "wav:{dir}/out.wav"]);
    let first = *qemu_pids(&d).last().expect("QEMU's pid in the log");
    let files = memory_files(&d);
    assert_eq!(files.len(), 1, "one memory file: {files:?}");
    let path = d.dir.0.join(&files[0]);
    let mode = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600, "private");
    assert_eq!(mode.len(), 16 << 20, "the board's 16 MiB PSRAM");
    assert_eq!(board_mappings(d.pid()).len(), 1, "srbd maps it once");

    let input = noise(4.0, 13);
    let wav = d.path("in.wav");
    write_wav_f32(&wav, RATE, 2, &input);
    let player = d.spawn_paplay(&wav, &[]);
    d.wait_for("the stream", || {
        (!d.list_short("sink-inputs").is_empty()).then_some(())
    });
    signal_pid(first, Signal::KILL);
    let second = d.wait_for("a new QEMU after SIGKILL", || {
        let pids = qemu_pids(&d);
        (pids.len() >= 2).then(|| *pids.last().unwrap())
    });
    assert_ne!(first, second);
    d.wait_for("the new board to attach", || {
        (d.log().matches("DSP attached").count() >= 2).then_some(())
    });
    // A hung QEMU (stopped): no progress for the stall timeout (1 s).
    signal_pid(second, Signal::STOP);
    let third = d.wait_for("a new QEMU after SIGSTOP", || {
        let pids = qemu_pids(&d);
        (pids.len() >= 3).then(|| *pids.last().unwrap())
    });
    let out = wait_bounded(player, "paplay");
    d.assert_exit_ok(&out, "paplay across a QEMU kill and a stop");
    let log = d.log();
    assert!(log.contains("the DSP hung up"), "SIGKILL noticed\n{log}");
    assert!(
        log.contains("no progress from the DSP for"),
        "a stopped QEMU is declared dead after the stall timeout\n{log}"
    );
    assert!(log.contains("restarting in"), "restart logged\n{log}");
    // The killed and the stopped QEMU are reaped, their memory files
    // removed and unmapped; the running board has its own.
    d.wait_for("the killed and the stopped QEMU reaped", || {
        [first, second]
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
            .then_some(())
    });
    let now = d.wait_for("one memory file, the new board's", || {
        let f = memory_files(&d);
        (f.len() == 1 && f[0] != files[0]).then_some(f)
    });
    assert!(!path.exists(), "the dead board's file is gone");
    d.wait_for("only the new board's memory mapped", || {
        let m = board_mappings(d.pid());
        (m.len() == 1 && m[0].contains(&now[0]) && !m[0].contains("(deleted)")).then_some(())
    });
    d.stop_ok();
    assert!(
        !Path::new(&format!("/proc/{third}")).exists(),
        "QEMU ends with srbd"
    );
    assert!(memory_files(&d).is_empty(), "no memory file after exit");
    // An empty chain falls back to bypass: the audio is whole across the
    // restarts, bit for bit.
    let out = Wav::read(&d.path("out.wav"));
    assert_bit_exact(&out.samples, &input, "across a QEMU kill and a stop", false);
}
