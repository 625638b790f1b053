//! The real `dsp-sim` binary behind a [`DspLink`], driven by a host loop in
//! the test: bit-exact bypass, a chain against offline processing, SIGKILL
//! and SIGSTOP with the supervisor restarting the DSP, no fd, mapping or
//! process left behind after restarts, hostile DSP bytes, and deadline
//! misses under load counted, not hidden.
//!
//! Every wait is bounded (a hang fails the test); no assertion is about
//! speed. The tests run one at a time (a lock): the leak test counts this
//! process's fds, shared mappings and children.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{kill_process, Pid, Signal};
use srb_dsp_sim::link::{self as wire, Control, LinkError, Stats};
use srb_dsp_sim::Chain;
use srb_linux::channel::Channel;
use srb_linux::handshake::{self, ChannelConfig, LayoutKind, SignalKind};
use srb_linux::scm::ScmStream;
use srbd::dsp::link::{DspError, DspEvent, DspLink};
use srbd::dsp::supervisor::{ring_capacity, DspConfig, Supervisor};

const DSP_SIM: &str = env!("CARGO_BIN_EXE_dsp-sim");
const RATE: u32 = 48_000;
/// The bound on every wait for something that must happen.
const BOUND: Duration = Duration::from_secs(20);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn period(frames: usize) -> Duration {
    Duration::from_nanos(frames as u64 * 1_000_000_000 / u64::from(RATE))
}

/// What one bounded poll of a link saw.
#[derive(Debug)]
enum Polled {
    Event(DspEvent),
    Quiet,
    HungUp,
}

/// Waits up to `timeout` for the next event, as a mixer would: drain,
/// announce the sleep, poll the eventfd and the socket's hang-up.
fn poll_once(link: &mut DspLink, buf: &mut [f32], timeout: Duration) -> Result<Polled, DspError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(ev) = link.recv(buf)? {
            return Ok(Polled::Event(ev));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Polled::Quiet);
        }
        if link.before_poll()? {
            continue;
        }
        let hung_up = {
            let mut fds = [
                PollFd::from_borrowed_fd(link.poll_fd(), PollFlags::IN),
                PollFd::from_borrowed_fd(link.peer_fd(), PollFlags::RDHUP),
            ];
            let t = rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            match rustix::event::poll(&mut fds, Some(&t)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => panic!("poll: {e}"),
            }
            fds[1]
                .revents()
                .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
        };
        link.after_poll()?;
        if hung_up {
            // Whatever the DSP sent before it went is still delivered.
            return match link.recv(buf)? {
                Some(ev) => Ok(Polled::Event(ev)),
                None => Ok(Polled::HungUp),
            };
        }
    }
}

/// The next event within [`BOUND`].
fn next(link: &mut DspLink, buf: &mut [f32]) -> DspEvent {
    match poll_once(link, buf, BOUND).unwrap() {
        Polled::Event(ev) => ev,
        other => panic!("no event from the DSP within {BOUND:?}: {other:?}"),
    }
}

/// Deterministic input for period `seq`, with odd bit patterns.
fn input(seq: u32, n: usize) -> Vec<f32> {
    let mut x = u64::from(seq).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match i % 32 {
                0 => f32::from_bits(0x7fc0_0001 | (x as u32 & 0xffff)), // NaN payloads
                1 => -0.0,
                2 => f32::from_bits(x as u32 & 0x007f_ffff), // subnormals
                3 => f32::INFINITY,
                _ => (x as i32) as f32 / i32::MAX as f32,
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Spawns `dsp-sim` with `args` directly (no supervisor), as the
/// supervisor does: socket pair end on stdin, then the handshake.
fn spawn_direct(frames: usize, args: &[&str]) -> (Child, DspLink) {
    spawn_direct_with(frames, args, Stdio::inherit(), &[])
}

/// [`spawn_direct`] with `dsp-sim`'s stderr (its log, `RUST_LOG=info`)
/// going to `stderr`, run through the command `wrap` (e.g. `prlimit …
/// --`) if not empty.
fn spawn_direct_with(
    frames: usize,
    args: &[&str],
    stderr: Stdio,
    wrap: &[&str],
) -> (Child, DspLink) {
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let mut cmd = match wrap.split_first() {
        None => Command::new(DSP_SIM),
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(DSP_SIM);
            c
        }
    };
    let child = cmd
        .arg(format!("--rate={RATE}"))
        .arg("--channels=2")
        .arg(format!("--period-frames={frames}"))
        .args(args)
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(stderr)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .spawn()
        .expect("spawn dsp-sim");
    let cfg = ChannelConfig {
        layout: LayoutKind::Srb,
        signal: SignalKind::Eventfd,
        capacity: ring_capacity(frames, 2),
    };
    let ch = handshake::create(ScmStream::new(ours).unwrap(), cfg, Some(BOUND)).unwrap();
    (child, DspLink::new(ch, 2, frames).unwrap())
}

fn start(frames: usize, chain: Option<&str>) -> (Supervisor, mpsc::Receiver<DspLink>, DspLink) {
    let (tx, rx) = mpsc::channel();
    let cfg = DspConfig {
        program: DSP_SIM.into(),
        rate: RATE,
        channels: 2,
        period_frames: frames,
        chain: chain.map(String::from),
        rt_priority: 0,
    };
    let sup = Supervisor::start(cfg, tx).expect("dsp-sim starts");
    let link = rx
        .try_recv()
        .expect("the first link is there when start returns");
    (sup, rx, link)
}

/// Answers `count` pulls with `input`; returns every processed period.
fn exchange(link: &mut DspLink, count: usize) -> Vec<(u32, Vec<f32>)> {
    let n = link.period_frames() * 2;
    let mut buf = vec![0.0; n];
    let (mut out, mut pulls) = (Vec::new(), 0);
    while pulls < count || link.outstanding().is_some() {
        match next(link, &mut buf) {
            DspEvent::Pull { seq } => {
                if pulls == count {
                    break;
                }
                pulls += 1;
                assert!(link.send_period(seq, &input(seq, n), 2).unwrap());
            }
            DspEvent::Processed { seq, .. } => out.push((seq, buf.clone())),
            DspEvent::Stats(_) => {}
        }
    }
    out
}

#[test]
fn bypass_round_trip_is_bit_exact_for_every_period() {
    let _s = serial();
    let (mut child, mut link) = spawn_direct(256, &["--bypass", "--chain=gain:-6dB"]);
    let out = exchange(&mut link, 40);
    assert!(!out.is_empty());
    for (seq, o) in &out {
        assert_eq!(bits(o), bits(&input(*seq, 512)), "period {seq}");
    }
    // Every answered period came back (a period the DSP abandoned is a
    // counted deadline miss, checked here against its report).
    assert!(link.send_control(&Control::QueryStats).unwrap());
    let mut buf = vec![0.0; 512];
    let stats = loop {
        if let DspEvent::Stats(s) = next(&mut link, &mut buf) {
            break s;
        }
    };
    assert_eq!(stats.periods, out.len() as u64);
    // The host leaving ends the DSP cleanly.
    drop(link);
    let status = child.wait().unwrap();
    assert!(status.success(), "dsp-sim: {status}");
}

#[test]
fn a_chain_matches_offline_processing() {
    let _s = serial();
    let (sup, _rx, mut link) = start(256, Some("gain:-6dB"));
    let out = exchange(&mut link, 30);
    assert!(!out.is_empty());
    let mut chain = Chain::parse("gain:-6dB", RATE as f32, 2).unwrap();
    for (seq, o) in &out {
        let mut want = input(*seq, 512);
        chain.process(&mut want);
        assert_eq!(bits(o), bits(&want), "period {seq}");
    }
    // The chain can change at run time; bypass is bit-exact.
    assert!(link.send_control(&Control::SetChain("bypass")).unwrap());
    let out = exchange(&mut link, 5);
    for (seq, o) in &out {
        assert_eq!(bits(o), bits(&input(*seq, 512)), "period {seq}");
    }
    sup.stop();
}

fn pid_of(sup: &Supervisor) -> Pid {
    Pid::from_raw(sup.child_pid().expect("a DSP runs") as i32).unwrap()
}

/// Whether `pid` is gone (reaped: no /proc entry, so no zombie either).
fn reaped(pid: Pid) -> bool {
    !std::path::Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {BOUND:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A new link that works: it pulls, and answers a period.
fn works(link: &mut DspLink) {
    let out = exchange(link, 3);
    assert!(!out.is_empty(), "the new DSP answers");
}

#[test]
fn a_killed_dsp_is_restarted_and_a_new_link_arrives() {
    let _s = serial();
    let (sup, rx, mut link) = start(128, None);
    works(&mut link);
    let pid = pid_of(&sup);
    assert_eq!(link.pid(), Some(pid.as_raw_nonzero().get() as u32));
    // The next DSP starts with a new chain; an invalid one changes nothing.
    assert!(matches!(
        sup.set_chain(Some("lowpass".into())),
        Err(DspError::Chain(_))
    ));
    sup.set_chain(Some("gain:-12dB".into())).unwrap();
    kill_process(pid, Signal::KILL).unwrap();
    // The host loop sees the hang-up.
    let mut buf = vec![0.0; 256];
    let deadline = Instant::now() + BOUND;
    loop {
        assert!(Instant::now() < deadline, "hang-up seen within {BOUND:?}");
        match poll_once(&mut link, &mut buf, period(128) * 2).unwrap() {
            Polled::HungUp => break,
            Polled::Event(DspEvent::Pull { seq }) => {
                let _ = link.send_period(seq, &buf.clone(), 2);
            }
            Polled::Event(_) | Polled::Quiet => {}
        }
    }
    assert!(link.is_gone().unwrap());
    let mut new = rx.recv_timeout(BOUND).expect("a new link");
    assert_eq!(new.generation(), 2);
    assert_ne!(new.pid(), link.pid());
    assert!(reaped(pid), "the killed DSP was reaped");
    assert_eq!(sup.restarts(), 1);
    // A late request about the dead DSP does not kill its successor.
    link.request_restart();
    drop(link);
    let out = exchange(&mut new, 3);
    assert!(!out.is_empty(), "the new DSP answers");
    let mut chain = Chain::parse("gain:-12dB", RATE as f32, 2).unwrap();
    for (seq, o) in &out {
        let mut want = input(*seq, 256);
        chain.process(&mut want);
        assert_eq!(
            bits(o),
            bits(&want),
            "period {seq} went through the new chain"
        );
    }
    assert_eq!(sup.restarts(), 1);
    assert_eq!(sup.generation(), 2);
    sup.stop();
}

#[test]
fn a_stopped_dsp_is_detected_killed_and_replaced() {
    let _s = serial();
    let frames = 128;
    let (sup, rx, mut link) = start(frames, None);
    works(&mut link);
    let pid = pid_of(&sup);
    kill_process(pid, Signal::STOP).unwrap();
    // This host loop calls a DSP that sends no pull for two periods stuck
    // (the mixer waits for its stall timeout); either way the supervisor
    // kills and replaces it on request.
    // (A pull sent just before the stop may still arrive; answer it.)
    let mut buf = vec![0.0; frames * 2];
    let deadline = Instant::now() + BOUND;
    loop {
        assert!(
            Instant::now() < deadline,
            "silence detected within {BOUND:?}"
        );
        match poll_once(&mut link, &mut buf, period(frames) * 2).unwrap() {
            Polled::Quiet => break,
            Polled::Event(DspEvent::Pull { seq }) => {
                let _ = link.send_period(seq, &buf.clone(), 2);
            }
            Polled::Event(_) => {}
            Polled::HungUp => panic!("a stopped process does not hang up"),
        }
    }
    assert!(!link.is_gone().unwrap(), "stopped, not dead");
    link.request_restart();
    let mut new = rx.recv_timeout(BOUND).expect("a replacement link");
    assert!(reaped(pid), "the stopped DSP was killed and reaped");
    assert!(link.is_gone().unwrap());
    works(&mut new);
    assert_eq!(sup.restarts(), 1);
    sup.stop();
}

/// (fds, shared mappings, child processes) of this process.
fn resources() -> (usize, usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    // Shared mappings ("rw-s"): only channel blocks are mapped shared here.
    let shared = maps
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|p| p.ends_with('s'))
        })
        .count();
    let me = std::process::id().to_string();
    let children = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so split
            // after the last ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                .unwrap_or(false)
        })
        .count();
    (fds, shared, children)
}

#[test]
fn restarts_leak_no_fd_mapping_or_process() {
    let _s = serial();
    let before = resources();
    {
        let (sup, rx, mut link) = start(64, None);
        let (_, shared_running, children_running) = resources();
        assert!(shared_running > before.1, "the block is mapped shared");
        assert_eq!(children_running, before.2 + 1);
        let mut pids = Vec::new();
        for round in 0..4 {
            works(&mut link);
            let pid = pid_of(&sup);
            pids.push(pid);
            if round % 2 == 0 {
                kill_process(pid, Signal::KILL).unwrap();
            } else {
                kill_process(pid, Signal::STOP).unwrap();
                link.request_restart();
            }
            let new = rx.recv_timeout(BOUND).expect("a new link");
            drop(std::mem::replace(&mut link, new));
        }
        works(&mut link);
        assert_eq!(sup.restarts(), 4);
        for pid in pids {
            eventually("old DSP reaped", || reaped(pid));
        }
        drop(link);
        sup.stop();
    }
    assert_eq!(resources(), before, "(fds, shared mappings, children)");
}

#[test]
fn an_exiting_dsp_is_restarted_by_the_supervisor_alone() {
    let _s = serial();
    let (sup, rx, link) = start(64, None);
    let pid = pid_of(&sup);
    // Dropping the link is the host going away: the DSP exits 0 by
    // itself, and the supervisor (nobody asked it) starts another.
    drop(link);
    let mut new = rx.recv_timeout(BOUND).expect("a new link");
    assert!(reaped(pid));
    works(&mut new);
    assert_eq!(sup.restarts(), 1);
    sup.stop();
}

/// A fake DSP on a thread: accepts the channel and writes `bytes`.
fn fake_dsp(bytes: Vec<u8>) -> (DspLink, std::thread::JoinHandle<Channel>) {
    let (a, b) = ScmStream::pair().unwrap();
    let t = std::thread::spawn(move || {
        let mut ch = handshake::accept(b, Some(BOUND)).unwrap();
        ch.write_all(&bytes, Some(BOUND)).unwrap();
        ch
    });
    let cfg = ChannelConfig {
        layout: LayoutKind::Srb,
        signal: SignalKind::Eventfd,
        capacity: ring_capacity(64, 2),
    };
    let host = handshake::create(a, cfg, Some(BOUND)).unwrap();
    (DspLink::new(host, 2, 64).unwrap(), t)
}

/// The first error the link reports for what the fake DSP sent.
fn first_error(bytes: Vec<u8>, answer_pull: bool) -> DspError {
    let (mut link, t) = fake_dsp(bytes);
    let mut buf = vec![0.0; 128];
    let e = loop {
        match poll_once(&mut link, &mut buf, BOUND) {
            Err(e) => break e,
            Ok(Polled::Event(DspEvent::Pull { seq })) if answer_pull => {
                assert!(link.send_period(seq, &[0.0; 128], 2).unwrap());
            }
            Ok(Polled::Event(_)) => {}
            Ok(other) => panic!("hostile bytes gave no error: {other:?}"),
        }
    };
    drop(t.join().unwrap());
    e
}

fn pull(seq: u32) -> Vec<u8> {
    let mut b = [0u8; 16];
    let n = Control::Pull { seq }.encode(&mut b).unwrap();
    b[..n].to_vec()
}

fn period_msg(seq: u32, frames: usize) -> Vec<u8> {
    let mut b = vec![0u8; wire::period_len(frames, 2)];
    wire::encode_period(seq, 2, &vec![0.0; frames * 2], &mut b).unwrap();
    b
}

#[test]
fn hostile_dsp_bytes_are_named_errors() {
    let _s = serial();
    assert!(matches!(
        first_error(b"\x00garbage from a broken DSP\xff".to_vec(), false),
        DspError::Link(LinkError::BadMagic { .. })
    ));
    // An oversized period: refused from its header.
    assert!(matches!(
        first_error(period_msg(0, 65)[..wire::HEADER_LEN].to_vec(), false),
        DspError::Oversized { .. }
    ));
    // A header claiming a huge body.
    let mut huge = pull(0);
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        first_error(huge, false),
        DspError::Link(LinkError::BadBodyLength { .. })
    ));
    // A processed period for a sequence number never sent.
    assert!(matches!(
        first_error([pull(7), period_msg(8, 64)].concat(), true),
        DspError::WrongSeq {
            expected: Some(7),
            got: 8
        }
    ));
    // Pulls going backwards.
    assert!(matches!(
        first_error([pull(7), pull(6)].concat(), false),
        DspError::PullOutOfOrder { last: 7, got: 6 }
    ));
    // A command only the host sends.
    let mut c = [0u8; 300];
    let n = Control::SetChain("gain:0dB").encode(&mut c).unwrap();
    assert!(matches!(
        first_error(c[..n].to_vec(), false),
        DspError::Unexpected { what: "SetChain" }
    ));
}

/// Pins the calling thread to `cpu` (best effort).
fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

#[test]
fn deadline_misses_under_load_are_counted_not_hidden() {
    let _s = serial();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let hog = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin(cpus - 1);
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        })
    };
    let frames = 64;
    let n = frames * 2;
    let (mut child, mut link) = spawn_direct(frames, &["--bypass"]);
    let mut buf = vec![0.0; n];
    let (mut pulls, mut provoked) = (0u32, HashSet::new());
    let mut late: Option<u32> = None;
    let mut processed = 0u64;
    while pulls < 400 {
        match next(&mut link, &mut buf) {
            DspEvent::Pull { seq } => {
                pulls += 1;
                // The answer we held back goes out now, after its deadline:
                // the DSP must drop it and count the miss.
                if let Some(old) = late.take() {
                    assert!(link.send_period(old, &input(old, n), 2).unwrap());
                }
                if pulls % 10 == 5 {
                    late = Some(seq);
                    provoked.insert(seq);
                    continue;
                }
                assert!(link.send_period(seq, &input(seq, n), 2).unwrap());
            }
            DspEvent::Processed { seq, .. } => {
                assert!(!provoked.contains(&seq), "a late period {seq} was answered");
                assert_eq!(bits(&buf), bits(&input(seq, n)), "period {seq}");
                processed += 1;
            }
            DspEvent::Stats(_) => {}
        }
    }
    assert!(link.send_control(&Control::QueryStats).unwrap());
    let stats: Stats = loop {
        match next(&mut link, &mut buf) {
            DspEvent::Stats(s) => break s,
            DspEvent::Processed { .. } => processed += 1,
            DspEvent::Pull { .. } => {}
        }
    };
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    eprintln!(
        "64-frame periods under load: {pulls} pulls, {} provoked late, {} deadline misses, \
         {} processed (mean {} ns, worst {} ns)",
        provoked.len(),
        stats.deadline_misses,
        stats.periods,
        stats.mean_ns,
        stats.worst_ns
    );
    assert!(!provoked.is_empty());
    assert!(
        stats.deadline_misses >= provoked.len() as u64,
        "every provoked miss is counted: {} < {}",
        stats.deadline_misses,
        provoked.len()
    );
    assert!(
        stats.periods >= processed,
        "{} < {processed}",
        stats.periods
    );
    drop(link);
    assert!(child.wait().unwrap().success());
}

/// The value of `key=` in `line`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_period_loop_does_not_allocate() {
    let _s = serial();
    let log = std::env::temp_dir().join(format!("dsp-sim-allocs-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    // A chain that runs every kernel kind: a gain, a biquad, a peak.
    let (mut child, mut link) = spawn_direct_with(
        256,
        &["--chain=gain:-6dB,lowpass:8kHz,peak:1kHz:q1.0:+3dB"],
        Stdio::from(file),
        &[],
    );
    // Warm-up (8 periods) plus at least 200 armed periods, with stats
    // reports (one a second) and a QueryStats in between.
    let out = exchange(&mut link, 120);
    assert!(link.send_control(&Control::QueryStats).unwrap());
    let out2 = exchange(&mut link, 200);
    assert!(!out.is_empty() && !out2.is_empty());
    drop(link);
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let line = text
        .lines()
        .find(|l| l.contains("dsp-sim stopping"))
        .unwrap_or_else(|| panic!("no stopping line in\n{text}"));
    let armed: u64 = field(line, "armed_periods").unwrap().parse().unwrap();
    let allocs: u64 = field(line, "period_allocs").unwrap().parse().unwrap();
    eprintln!("{armed} armed periods, {allocs} allocations");
    assert!(armed >= 200, "{armed} periods counted: {line}");
    assert_eq!(allocs, 0, "the period loop allocated: {line}");
}

#[test]
fn a_refused_real_time_request_is_logged_once_and_the_dsp_runs_on() {
    let _s = serial();
    // RLIMIT_RTPRIO 0 and no CAP_SYS_NICE (dropped from the bounding set,
    // so even root lacks it after exec): the kernel refuses SCHED_FIFO.
    let wrap = [
        "prlimit",
        "--rtprio=0:0",
        "--",
        "setpriv",
        "--bounding-set",
        "-sys_nice",
        "--inh-caps",
        "-sys_nice",
        "--",
    ];
    let tools = ["/usr/bin/prlimit", "/usr/bin/setpriv"];
    if !tools.iter().all(|t| std::path::Path::new(t).exists()) {
        eprintln!("skipped: needs util-linux's prlimit and setpriv");
        return;
    }
    let log = std::env::temp_dir().join(format!("dsp-sim-rt-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    let (mut child, mut link) =
        spawn_direct_with(256, &["--rt-priority=5"], Stdio::from(file), &wrap);
    // It runs, processes, and at normal priority.
    works(&mut link);
    let pid = child.id();
    assert_eq!(srbd::rt::sched::thread_policy(pid, pid), Some(0));
    drop(link);
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let refused: Vec<_> = text
        .lines()
        .filter(|l| l.contains("real-time scheduling"))
        .collect();
    assert_eq!(refused.len(), 1, "one line:\n{text}");
    assert!(
        refused[0].contains("WARN") && refused[0].contains("no privilege"),
        "{}",
        refused[0]
    );
}
