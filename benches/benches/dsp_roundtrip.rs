//! Per-period cost of the host ↔ DSP round trip, against the period length.
//!
//! The host (this process, through a `DspLink`) and a real `dsp-sim`
//! process in bypass exchange periods of 48 kHz stereo f32 exactly as
//! `srbd` would: the DSP's timerfd ticks and it sends a pull; the host
//! answers with the period. The measured round trip starts when the host
//! sends the period and ends when the host has the processed period in its
//! buffer. It includes the DSP's wake-up (eventfd, the DSP sleeps in
//! `poll`), decoding, the bypass copy, metering, encoding, the DSP's write
//! and the host's wake-up (eventfd, the host sleeps in `poll` like the
//! mixer). Both sides sleep between messages; nothing spins or is pinned.
//!
//! Reported per period size: median, p99 and max of the round trip in µs,
//! and the median and p99 as a share of the period (the budget the whole
//! mix → DSP → output path has per period).
//!
//! ```text
//! bash benches/dsp-roundtrip.sh [--periods N] [--frames 64,256,1024]
//! ```
//!
//! The `dsp-sim` binary is `$SRB_DSP_SIM`, else `dsp-sim` next to the
//! bench's target directory (`target/release/dsp-sim`, which the script
//! builds first), else `PATH`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use srb_benches::{quantile_duration as quantile, us};
use srb_dsp_sim::link::{Control, Stats};
use srb_linux::handshake::{self, ChannelConfig, LayoutKind, SignalKind};
use srb_linux::scm::ScmStream;
use srbd::dsp::link::{DspEvent, DspLink};
use srbd::dsp::supervisor::{default_program, ring_capacity};

const RATE: u32 = 48_000;
const CHANNELS: u8 = 2;
/// Any single wait longer than this is a hang.
const BOUND: Duration = Duration::from_secs(10);

fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("SRB_DSP_SIM") {
        return p.into();
    }
    // target/<profile>/deps/dsp_roundtrip-HASH → target/<profile>/dsp-sim
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("dsp-sim")))
        .filter(|p| p.is_file());
    beside
        .or_else(default_program)
        .expect("dsp-sim not found: build it (benches/dsp-roundtrip.sh does) or set SRB_DSP_SIM")
}

struct Dsp {
    child: std::process::Child,
    link: DspLink,
}

fn spawn(frames: usize) -> Dsp {
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let child = Command::new(program())
        .arg(format!("--rate={RATE}"))
        .arg(format!("--channels={CHANNELS}"))
        .arg(format!("--period-frames={frames}"))
        .arg("--bypass")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn dsp-sim");
    let cfg = ChannelConfig {
        layout: LayoutKind::Srb,
        signal: SignalKind::Eventfd,
        capacity: ring_capacity(frames, CHANNELS),
    };
    let ch = handshake::create(ScmStream::new(ours).expect("socket"), cfg, Some(BOUND))
        .expect("handshake with dsp-sim");
    Dsp {
        child,
        link: DspLink::new(ch, CHANNELS, frames).expect("link"),
    }
}

/// The next event, sleeping in poll like the mixer.
fn next(link: &mut DspLink, buf: &mut [f32]) -> DspEvent {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(ev) = link.recv(buf).expect("link") {
            return ev;
        }
        assert!(
            Instant::now() < deadline,
            "no event from dsp-sim within {BOUND:?}"
        );
        if !link.before_poll().expect("link") {
            let mut fds = [PollFd::from_borrowed_fd(link.poll_fd(), PollFlags::IN)];
            let t = rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
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
}

fn measure(frames: usize, warmup: usize, periods: usize) -> Row {
    let mut dsp = spawn(frames);
    let n = frames * usize::from(CHANNELS);
    let mix: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).sin() * 0.5).collect();
    let mut buf = vec![0.0f32; n];
    let mut samples = Vec::with_capacity(periods);
    let mut sent: Option<(u32, Instant)> = None;
    let mut done = 0usize;
    while done < warmup + periods {
        match next(&mut dsp.link, &mut buf) {
            DspEvent::Pull { seq } => {
                if let Some((old, _)) = sent.take() {
                    eprintln!("  {frames} frames: period {old} was abandoned by the DSP");
                }
                let t0 = Instant::now();
                assert!(dsp.link.send_period(seq, &mix, CHANNELS).expect("send"));
                sent = Some((seq, t0));
            }
            DspEvent::Processed { seq, .. } => {
                let t1 = Instant::now();
                let Some((s, t0)) = sent.take() else {
                    panic!("unexpected period {seq}");
                };
                assert_eq!(s, seq);
                assert_eq!(buf, mix, "bypass is bit-exact");
                if done >= warmup {
                    samples.push(t1 - t0);
                }
                done += 1;
            }
            DspEvent::Stats(_) => {}
        }
    }
    assert!(dsp.link.send_control(&Control::QueryStats).expect("query"));
    let stats = loop {
        if let DspEvent::Stats(s) = next(&mut dsp.link, &mut buf) {
            break s;
        }
    };
    drop(dsp.link);
    let _ = dsp.child.wait();
    Row {
        frames,
        samples,
        stats,
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
    println!(
        "dsp-sim round trip, 48 kHz stereo f32, bypass (host sends period -> DSP wakes, \
         processes, answers -> host wakes with it)\n"
    );
    println!(
        "| frames | period | periods | median | p99 | max | median / period | p99 / period | DSP processing (mean / worst) | deadline misses (whole run) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for frames in frames_list {
        let period = Duration::from_nanos(frames as u64 * 1_000_000_000 / u64::from(RATE));
        // About 3 s of audio per size by default, at least 200 periods.
        let count = periods.unwrap_or_else(|| {
            (Duration::from_secs(3).as_nanos() / period.as_nanos()).max(200) as usize
        });
        let row = measure(frames, 50, count);
        let mut s = row.samples.clone();
        s.sort();
        let (med, p99, max) = (quantile(&s, 0.5), quantile(&s, 0.99), s[s.len() - 1]);
        let share = |d: Duration| 100.0 * d.as_secs_f64() / period.as_secs_f64();
        println!(
            "| {} | {:.0} µs | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.2} % | {:.2} % | {:.1} / {:.1} µs | {} |",
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
            row.stats.deadline_misses,
        );
    }
}
