//! Per-period cost of the host ↔ board DSP peer round trip (the Cortex-M4F
//! firmware `srb-board-dsp-peer` under QEMU's `mps2-an386`), against the
//! period length.
//!
//! The host (this process) starts the board exactly as `srbd --dsp
//! board:ELF` does ([`srbd::dsp::board::spawn`]: memory file, setup area,
//! `srb` block, QEMU) and plays the mixer: it answers each `Pull` with a
//! period and waits for the processed period by polling the ring, sleeping
//! [`srbd::dsp::board::poll_interval`] (a quarter period) between looks, as
//! the mixer does. The firmware has no doorbell: it handles the period at
//! its next SysTick, so the round trip (host sends the period → host has
//! the processed period) is about one period by design, plus up to one
//! poll interval.
//!
//! Reported per period size (48 kHz stereo f32, empty chain): the round
//! trip's median / p99 / max in µs and as a share of the period; the
//! firmware's own processing time per period (copy in, chain, meter,
//! encode; measured on the emulated core with SysTick, i.e. host time
//! under QEMU) as mean / worst and as a share of the period; its deadline
//! misses; how many times the host looked at the ring per period; and the
//! firmware's clock against the host's (pulls × period ÷ host time).
//!
//! ```text
//! bash benches/board-roundtrip.sh [--periods N] [--frames 64,256,1024]
//! ```
//!
//! The firmware is `$SRB_BOARD_ELF` (the script builds it with
//! `scripts/board-peer.sh`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use srb_benches::{quantile_duration as quantile, us};
use srb_dsp_sim::link::{Control, Stats};
use srbd::dsp::board::{self, BoardConfig, BoardPeer, DEFAULT_QEMU};
use srbd::dsp::link::{DspEvent, DspLink};
use srbd::dsp::supervisor::ring_capacity;

const RATE: u32 = 48_000;
const CHANNELS: u8 = 2;
/// Any single wait longer than this is a hang.
const BOUND: Duration = Duration::from_secs(10);

/// The next event, polling the ring like the mixer; counts the looks.
fn next(link: &mut DspLink, buf: &mut [f32], looks: &mut u64) -> DspEvent {
    let deadline = Instant::now() + BOUND;
    let interval = link.poll_interval().expect("a polled link");
    loop {
        *looks += 1;
        if let Some(ev) = link.recv(buf).expect("link") {
            return ev;
        }
        assert!(
            Instant::now() < deadline,
            "no event from the board within {BOUND:?}"
        );
        if !link.before_poll().expect("link") {
            let mut fds = [PollFd::from_borrowed_fd(link.poll_fd(), PollFlags::IN)];
            let t = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: interval.as_nanos() as _,
            };
            let _ = rustix::event::poll(&mut fds, Some(&t));
            link.after_poll().expect("link");
        }
    }
}

struct Row {
    frames: usize,
    samples: Vec<Duration>,
    stats: Stats,
    looks_per_period: f64,
    clock_ppm: f64,
}

fn measure(
    elf: &std::path::Path,
    dir: &std::path::Path,
    frames: usize,
    warmup: usize,
    periods: usize,
) -> Row {
    let cfg = BoardPeer {
        elf,
        rate: RATE,
        channels: CHANNELS,
        period_frames: frames,
        ring_capacity: ring_capacity(frames, CHANNELS),
        chain: None,
    };
    let bcfg = BoardConfig {
        qemu: DEFAULT_QEMU.into(),
        runtime_dir: dir.to_path_buf(),
    };
    let (mut child, file, mut link) = board::spawn(&cfg, &bcfg, 1).expect("start the board");
    let n = frames * usize::from(CHANNELS);
    let mix: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).sin() * 0.5).collect();
    let mut buf = vec![0.0f32; n];
    let mut samples = Vec::with_capacity(periods);
    let mut sent: Option<(u32, Instant)> = None;
    let mut done = 0usize;
    let mut looks = 0u64;
    let mut first_pull: Option<(u32, Instant)> = None;
    let mut last_pull = (0u32, Instant::now());
    let mut looks_at_warm = 0;
    while done < warmup + periods {
        match next(&mut link, &mut buf, &mut looks) {
            DspEvent::Pull { seq } => {
                if let Some((old, _)) = sent.take() {
                    eprintln!("  {frames} frames: period {old} was abandoned by the board");
                }
                let t0 = Instant::now();
                if done >= warmup && first_pull.is_none() {
                    first_pull = Some((seq, t0));
                    looks_at_warm = looks;
                }
                last_pull = (seq, t0);
                assert!(link.send_period(seq, &mix, CHANNELS).expect("send"));
                sent = Some((seq, t0));
            }
            DspEvent::Processed { seq, .. } => {
                let t1 = Instant::now();
                let Some((s, t0)) = sent.take() else {
                    panic!("unexpected period {seq}");
                };
                assert_eq!(s, seq);
                assert_eq!(buf, mix, "an empty chain is bit-exact");
                if done >= warmup {
                    samples.push(t1 - t0);
                }
                done += 1;
            }
            DspEvent::Stats(_) => {}
        }
    }
    assert!(link.send_control(&Control::QueryStats).expect("query"));
    let stats = loop {
        if let DspEvent::Stats(s) = next(&mut link, &mut buf, &mut looks) {
            break s;
        }
    };
    let (s0, t0) = first_pull.expect("pulls after warm-up");
    let pulls = last_pull.0.wrapping_sub(s0);
    let period = Duration::from_nanos(frames as u64 * 1_000_000_000 / u64::from(RATE));
    let fw = period.as_secs_f64() * f64::from(pulls);
    let host = last_pull.1.duration_since(t0).as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    drop(link);
    drop(file);
    Row {
        frames,
        samples,
        stats,
        looks_per_period: (looks - looks_at_warm) as f64 / f64::from(pulls.max(1)),
        clock_ppm: (fw / host - 1.0) * 1e6,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut periods: Option<usize> = None;
    let mut frames_list = vec![64usize, 256, 1024];
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--periods" => {
                periods = args.get(i + 1).and_then(|v| v.parse().ok());
                i += 1;
            }
            "--frames" => {
                if let Some(v) = args.get(i + 1) {
                    frames_list = v.split(',').filter_map(|f| f.parse().ok()).collect();
                }
                i += 1;
            }
            _ => {} // cargo bench passes --bench; filters are not used
        }
        i += 1;
    }
    let elf: PathBuf = std::env::var_os("SRB_BOARD_ELF")
        .expect("SRB_BOARD_ELF: the firmware (benches/board-roundtrip.sh builds it)")
        .into();
    let dir = std::env::temp_dir().join(format!("srb-board-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench directory");
    println!(
        "board DSP peer (Cortex-M4F firmware under QEMU mps2-an386) round trip, 48 kHz stereo f32, \
         empty chain (host sends period -> firmware handles it at its next SysTick -> host sees it \
         at its next look)\n"
    );
    println!(
        "| frames | period | periods | round trip median | p99 | max | median / period | p99 / period | firmware processing (mean / worst) | mean / period | worst / period | deadline misses | host looks / period | firmware clock vs host |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for frames in frames_list {
        let period = Duration::from_nanos(frames as u64 * 1_000_000_000 / u64::from(RATE));
        let count = periods.unwrap_or_else(|| {
            (Duration::from_secs(3).as_nanos() / period.as_nanos()).max(200) as usize
        });
        let row = measure(&elf, &dir, frames, 50, count);
        let mut s = row.samples.clone();
        s.sort();
        let (med, p99, max) = (quantile(&s, 0.5), quantile(&s, 0.99), s[s.len() - 1]);
        let share = |d: Duration| 100.0 * d.as_secs_f64() / period.as_secs_f64();
        let ns = |n: u64| Duration::from_nanos(n);
        println!(
            "| {} | {:.0} µs | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} % | {:.1} % | {:.1} / {:.1} µs | {:.2} % | {:.2} % | {} | {:.2} | {:+.0} ppm |",
            row.frames,
            us(period),
            s.len(),
            us(med),
            us(p99),
            us(max),
            share(med),
            share(p99),
            row.stats.mean_ns as f64 / 1e3,
            row.stats.worst_ns as f64 / 1e3,
            share(ns(row.stats.mean_ns)),
            share(ns(row.stats.worst_ns)),
            row.stats.deadline_misses,
            row.looks_per_period,
            row.clock_ppm,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
