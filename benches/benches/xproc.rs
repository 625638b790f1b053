//! `xproc`: the cross-process round trip and one-way throughput of the srb
//! channel against the kernel's own ways of passing 32 bytes.
//!
//! ```text
//! cargo bench -p srb-benches --bench xproc -- [--iters N (10000)] [--rounds R (5)] [--spin-us U (50)]
//!                                             [--svg FILE] [--csv FILE] [--quick] [--only CASE]
//! cargo bench -p srb-benches --bench xproc -- --from-csv FILE --svg FILE   (redraw only)
//! ```
//!
//! (`benches/xproc.sh` runs it and writes `benches/xproc.svg`.) Every
//! measurement is between this process and a child (this binary again, with
//! `SRB_XPROC_CHILD` set) that connects to a socket in a private directory;
//! fds travel by `SCM_RIGHTS`, srb channels are set up with
//! `srb_linux::handshake`. Each pair of processes is pinned with
//! `sched_setaffinity` either both to the first allowed CPU (**same CPU**) or
//! to the first two (**cross CPU**).
//!
//! Round trip: the parent sends 32 bytes, the child reads them and sends 32
//! bytes back; the parent times each round trip with `Instant` (after a
//! warm-up), `--iters` per run, `--rounds` runs of every case round-robin
//! (so a burst of load on a shared machine hits all cases alike), samples
//! pooled; nearest-rank median and p99 are reported.
//!
//! | case | what moves the 32 bytes and wakes the peer |
//! |---|---|
//! | `srb spin` | srb layout, eventfd signals; the waiting side spins up to `--spin-us` (default 50 µs) re-reading the ring, then sleeps in the fdsem wait |
//! | `srb sleep` | the same channel, no spin: the peer is asleep on its eventfd when the message lands |
//! | `srb-futex spin` / `sleep` | srb layout, futex signals |
//! | `pa spin` / `sleep` | PulseAudio's layout (post after every write), eventfd signals |
//! | `eventfd` | raw: two eventfds, blocking `write`/`read` of the 8-byte counter, no payload |
//! | `eventfd + watch` | srb-linux's eventfd signals alone, no ring, no fdsem: `Eventfd::notify` (`poll(POLLOUT)` + `write`) and `EventfdWait::wait` with a `PeerWatch` (`poll` on the eventfd and the connection socket + `preadv2`), what every srb eventfd sleep pays for its no-hang guarantees |
//! | `unix socket` | raw: a `socketpair(AF_UNIX, SOCK_STREAM)`, blocking `write`/`read` of 32 bytes |
//! | `pipe` | raw: two pipes, blocking `write`/`read` of 32 bytes |
//! | `cache line` | the physical floor: both processes spin on a sequence word in one cache line of a shared memfd, the 32 bytes beside it |
//!
//! **Same CPU and spinning.** Two spinning processes on one CPU only take
//! turns when the scheduler preempts one (milliseconds). So on the same CPU
//! every spinning loop (srb `spin` cases and the cache line) calls
//! `sched_yield` on each pass, which hands the CPU to the peer when it is
//! runnable; across CPUs they spin with `spin_loop` hints only. The bounded
//! spin of the srb cases then falls back to the fdsem sleep either way.
//!
//! Throughput: the parent writes `count` messages of 64 B or 4 KiB, one
//! `write` per message, the child reads in 64 KiB chunks until it has all
//! the bytes and acknowledges with one byte; srb channel (srb layout,
//! eventfd, 64 KiB rings, spin-then-wait on full/empty) against a unix
//! stream socket, cross CPU. Correctness of the bytes is the tests' job
//! (`host-linux/tests/exchange.rs`); here only the count is checked.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::thread::{sched_getaffinity, sched_setaffinity, sched_yield, CpuSet};
use srb_core::{Notify, Wait};
use srb_linux::channel::Channel;
use srb_linux::eventfd::{Eventfd, EventfdWait};
use srb_linux::fdkind::FdKind;
use srb_linux::handshake::{self, ChannelConfig, LayoutKind, SignalKind};
use srb_linux::listener::{self, Listener};
use srb_linux::mapping::SharedMapping;
use srb_linux::memfd::SealedMemfd;
use srb_linux::runtime_dir::RuntimeDir;
use srb_linux::scm::ScmStream;

/// Round-trip payload.
const PAYLOAD: usize = 32;
/// Round trips before timing starts, per run.
const WARMUP: u32 = 500;
/// Handshake and control timeouts: only there so a broken child fails.
const CONTROL: Duration = Duration::from_secs(60);
/// Child environment variables.
const CHILD_ENV: &str = "SRB_XPROC_CHILD";
const SOCKET_ENV: &str = "SRB_XPROC_SOCKET";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

// ---------------------------------------------------------------------------
// Cases.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    SrbSpin,
    SrbSleep,
    FutexSpin,
    FutexSleep,
    PaSpin,
    PaSleep,
    Eventfd,
    /// srb-linux's eventfd `Notify`/`Wait` (with a peer watch), no ring.
    EventfdWatch,
    Socket,
    Pipe,
    CacheLine,
    /// One-way throughput, srb channel, message size.
    TputSrb,
    /// One-way throughput, unix stream socket.
    TputSocket,
}

const RTT_CASES: [Case; 11] = [
    Case::SrbSpin,
    Case::SrbSleep,
    Case::FutexSpin,
    Case::FutexSleep,
    Case::PaSpin,
    Case::PaSleep,
    Case::Eventfd,
    Case::EventfdWatch,
    Case::Socket,
    Case::Pipe,
    Case::CacheLine,
];

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::SrbSpin => "srb spin",
            Case::SrbSleep => "srb sleep",
            Case::FutexSpin => "srb-futex spin",
            Case::FutexSleep => "srb-futex sleep",
            Case::PaSpin => "pa spin",
            Case::PaSleep => "pa sleep",
            Case::Eventfd => "eventfd",
            Case::EventfdWatch => "eventfd + watch",
            Case::Socket => "unix socket",
            Case::Pipe => "pipe",
            Case::CacheLine => "cache line",
            Case::TputSrb => "srb channel",
            Case::TputSocket => "unix socket",
        }
    }

    fn id(self) -> u8 {
        self as u8
    }

    fn from_id(id: u8) -> Option<Self> {
        RTT_CASES
            .into_iter()
            .chain([Case::TputSrb, Case::TputSocket])
            .find(|c| c.id() == id)
    }

    /// The channel configuration of the srb cases, and whether they spin.
    fn channel(self) -> Option<(ChannelConfig, bool)> {
        let cfg = |layout, signal| ChannelConfig {
            layout,
            signal,
            capacity: 4096,
        };
        let (layout, signal, spin) = match self {
            Case::SrbSpin => (LayoutKind::Srb, SignalKind::Eventfd, true),
            Case::SrbSleep => (LayoutKind::Srb, SignalKind::Eventfd, false),
            Case::FutexSpin => (LayoutKind::Srb, SignalKind::Futex, true),
            Case::FutexSleep => (LayoutKind::Srb, SignalKind::Futex, false),
            Case::PaSpin => (LayoutKind::Pa, SignalKind::Eventfd, true),
            Case::PaSleep => (LayoutKind::Pa, SignalKind::Eventfd, false),
            Case::TputSrb => {
                return Some((
                    ChannelConfig {
                        layout: LayoutKind::Srb,
                        signal: SignalKind::Eventfd,
                        capacity: 1 << 16,
                    },
                    true,
                ))
            }
            _ => return None,
        };
        Some((cfg(layout, signal), spin))
    }
}

/// What one run asks of the child: 24 bytes on the control socket.
#[derive(Debug, Clone, Copy)]
struct Header {
    case: Case,
    /// CPU to pin to, or -1.
    cpu: i32,
    /// Round trips after the warm-up, or messages for throughput.
    iters: u32,
    /// Spin budget in ns (0: no spin).
    spin_ns: u32,
    /// Whether spinning yields (same CPU).
    yield_: bool,
    /// Throughput message size.
    msg: u32,
}

impl Header {
    fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0] = self.case.id();
        b[1] = u8::from(self.yield_);
        b[4..8].copy_from_slice(&self.cpu.to_le_bytes());
        b[8..12].copy_from_slice(&self.iters.to_le_bytes());
        b[12..16].copy_from_slice(&self.spin_ns.to_le_bytes());
        b[16..20].copy_from_slice(&self.msg.to_le_bytes());
        b
    }

    fn decode(b: &[u8; 24]) -> Res<Self> {
        let word = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Ok(Self {
            case: Case::from_id(b[0]).ok_or("bad case id")?,
            yield_: b[1] != 0,
            cpu: word(4) as i32,
            iters: word(8),
            spin_ns: word(12),
            msg: word(16),
        })
    }
}

// ---------------------------------------------------------------------------
// Pinning and spinning.

fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

fn pin(cpu: i32) -> Res<()> {
    if cpu < 0 {
        return Ok(());
    }
    let mut set = CpuSet::new();
    set.set(cpu as usize);
    // `None`: the calling thread (each process here is single-threaded).
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// A bounded spin: `again()` is true while the budget lasts.
struct Spin {
    budget: Duration,
    yield_: bool,
    start: Option<Instant>,
    passes: u32,
}

impl Spin {
    fn new(spin_ns: u32, yield_: bool) -> Self {
        Self {
            budget: Duration::from_nanos(u64::from(spin_ns)),
            yield_,
            start: None,
            passes: 0,
        }
    }

    fn reset(&mut self) {
        self.start = None;
        self.passes = 0;
    }

    /// One pass of waiting; false once the budget is spent.
    fn again(&mut self) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        let start = *self.start.get_or_insert_with(Instant::now);
        self.passes += 1;
        // Reading the clock costs more than re-reading the ring: look at it
        // every 16 passes.
        if self.passes.is_multiple_of(16) && start.elapsed() >= self.budget {
            return false;
        }
        if self.yield_ {
            sched_yield();
        } else {
            std::hint::spin_loop();
        }
        true
    }
}

/// Unbounded spin for the cache-line floor.
fn spin_pass(yield_: bool) {
    if yield_ {
        sched_yield();
    } else {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------
// The srb channel: send, and receive with spin-then-wait.

/// Fdsem waits this process made in `srb_send`/`srb_recv` (the parent
/// reports them per round trip). Relaxed: a counter read by this thread.
static WAITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn srb_wait(ch: &mut Channel) -> Res<()> {
    WAITS.fetch_add(1, Ordering::Relaxed);
    ch.wait(None)?;
    Ok(())
}

fn srb_send(ch: &mut Channel, mut src: &[u8], spin: &mut Spin) -> Res<()> {
    spin.reset();
    while !src.is_empty() {
        let n = ch.write(src)?;
        src = &src[n..];
        if n == 0 && !spin.again() {
            srb_wait(ch)?;
        }
    }
    Ok(())
}

fn srb_recv(ch: &mut Channel, mut dst: &mut [u8], spin: &mut Spin) -> Res<()> {
    spin.reset();
    while !dst.is_empty() {
        let n = ch.read(dst)?;
        dst = &mut dst[n..];
        if n == 0 && !spin.again() {
            srb_wait(ch)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Raw fds.

fn write_all(fd: impl AsFd, mut src: &[u8]) -> Res<()> {
    while !src.is_empty() {
        match rustix::io::write(&fd, src) {
            Ok(n) => src = &src[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn read_exact(fd: impl AsFd, mut dst: &mut [u8]) -> Res<()> {
    while !dst.is_empty() {
        match rustix::io::read(&fd, &mut *dst) {
            Ok(0) => return Err("peer closed".into()),
            Ok(n) => dst = &mut dst[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One step of an eventfd ping-pong: add 1, or take the count.
fn efd_post(fd: impl AsFd) -> Res<()> {
    write_all(fd, &1u64.to_ne_bytes())
}

fn efd_take(fd: impl AsFd) -> Res<()> {
    let mut b = [0u8; 8];
    read_exact(fd, &mut b)
}

/// Sleeps in srb-linux's eventfd wait until a notification arrives.
fn signal_take(w: &mut EventfdWait) -> Res<()> {
    while w.wait(None)? == 0 {}
    Ok(())
}

/// The cache line: a sequence word at 0 and the payload at 8.
struct Line {
    map: Arc<SharedMapping>,
    seq: *const AtomicU32,
}

impl Line {
    fn new(map: Arc<SharedMapping>) -> Res<Self> {
        let seq = map.atomic_u32(0)?;
        Ok(Self { map, seq })
    }

    fn load(&self) -> u32 {
        // SAFETY: `seq` points at an aligned word of `self.map`, which
        // lives as long as `self`; it is only used atomically.
        // Acquire: pairs with the peer's Release store, so the payload it
        // wrote before is visible.
        unsafe { (*self.seq).load(Ordering::Acquire) }
    }

    fn store(&self, v: u32) {
        // SAFETY: as in `load`.
        // Release: publishes the payload written just before.
        unsafe { (*self.seq).store(v, Ordering::Release) }
    }

    /// Writes the payload, then publishes `seq`.
    fn send(&self, seq: u32, payload: &[u8; PAYLOAD]) -> Res<()> {
        self.map.write_volatile(8, payload)?;
        self.store(seq);
        Ok(())
    }

    /// Spins until `seq` is published, then reads the payload.
    fn recv(&self, seq: u32, payload: &mut [u8; PAYLOAD], yield_: bool) -> Res<()> {
        while self.load() != seq {
            spin_pass(yield_);
        }
        self.map.read_volatile(8, payload)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Setting up a run: the fds or the channel each case needs, on both sides.

/// One side's end of a round-trip case.
enum End {
    Channel(Box<Channel>),
    /// (fd we write, fd we read); eventfd or pipe or one socket for both.
    Fds(OwnedFd, OwnedFd),
    /// srb-linux's signals: the eventfd we notify, the one we wait on.
    Signals(Eventfd, EventfdWait),
    Socket(OwnedFd),
    Line(Line),
}

/// Parent side: creates the resources for `h.case`, sends the child its
/// half over `stream`, returns ours.
fn parent_setup(stream: ScmStream, h: &Header) -> Res<End> {
    stream.send(&h.encode(), &[], false)?;
    if let Some((cfg, _)) = h.case.channel() {
        return Ok(End::Channel(Box::new(handshake::create(
            stream,
            cfg,
            Some(CONTROL),
        )?)));
    }
    match h.case {
        Case::Eventfd => {
            let (to_child, to_parent) = (Eventfd::new()?, Eventfd::new()?);
            stream.send(&[0], &[to_child.as_fd(), to_parent.as_fd()], false)?;
            Ok(End::Fds(to_child.into_fd(), to_parent.into_fd()))
        }
        Case::EventfdWatch => {
            let (to_child, to_parent) = (Eventfd::new()?, Eventfd::new()?);
            stream.send(&[0], &[to_child.as_fd(), to_parent.as_fd()], false)?;
            let wait = EventfdWait::new(to_parent, Some(stream.watch()));
            Ok(End::Signals(to_child, wait))
        }
        Case::Socket | Case::TputSocket => {
            let (ours, theirs) = rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )?;
            stream.send(&[0], &[theirs.as_fd()], false)?;
            Ok(End::Socket(ours))
        }
        Case::Pipe => {
            let (c_read, p_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            let (p_read, c_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            stream.send(&[0], &[c_read.as_fd(), c_write.as_fd()], false)?;
            Ok(End::Fds(p_write, p_read))
        }
        Case::CacheLine => {
            let memfd = SealedMemfd::create("srb-xproc-line", 4096)?;
            let map = memfd.map()?;
            stream.send(&[0], &[memfd.as_fd()], false)?;
            Ok(End::Line(Line::new(map)?))
        }
        _ => Err("not a parent-side case".into()),
    }
}

/// Child side: the counterpart of [`parent_setup`].
fn child_setup(mut stream: ScmStream) -> Res<(Header, End)> {
    let mut hb = [0u8; 24];
    stream.recv_exact(&mut hb, Some(CONTROL))?;
    let h = Header::decode(&hb)?;
    if h.case.channel().is_some() {
        let ch = handshake::accept(stream, Some(CONTROL))?;
        return Ok((h, End::Channel(Box::new(ch))));
    }
    let mut one = [0u8; 1];
    stream.recv_exact(&mut one, Some(CONTROL))?;
    let end = match h.case {
        Case::Eventfd => {
            let mut fds = stream.claim_exact(&[FdKind::Eventfd, FdKind::Eventfd])?;
            let to_parent = fds.pop().ok_or("fd")?;
            let to_child = fds.pop().ok_or("fd")?;
            End::Fds(to_parent, to_child)
        }
        Case::EventfdWatch => {
            let mut fds = stream.claim_exact(&[FdKind::Eventfd, FdKind::Eventfd])?;
            let to_parent = Eventfd::import(fds.pop().ok_or("fd")?)?;
            let to_child = Eventfd::import(fds.pop().ok_or("fd")?)?;
            End::Signals(to_parent, EventfdWait::new(to_child, Some(stream.watch())))
        }
        Case::Socket | Case::TputSocket => {
            let mut fds = stream.claim_exact(&[FdKind::Socket])?;
            End::Socket(fds.pop().ok_or("fd")?)
        }
        Case::Pipe => {
            let mut fds = stream.claim_exact(&[FdKind::Pipe, FdKind::Pipe])?;
            let c_write = fds.pop().ok_or("fd")?;
            let c_read = fds.pop().ok_or("fd")?;
            End::Fds(c_write, c_read)
        }
        Case::CacheLine => {
            let mut fds = stream.claim_exact(&[FdKind::Memfd])?;
            let memfd = SealedMemfd::import(fds.pop().ok_or("fd")?, 4096)?;
            End::Line(Line::new(memfd.map()?)?)
        }
        _ => return Err("not a child-side case".into()),
    };
    Ok((h, end))
}

// ---------------------------------------------------------------------------
// The loops.

/// Parent: `WARMUP + iters` round trips; returns the timed ones in ns.
fn parent_rtt(end: &mut End, h: &Header) -> Res<Vec<u64>> {
    let total = WARMUP + h.iters;
    let mut out = Vec::with_capacity(h.iters as usize);
    let mut buf = [0u8; PAYLOAD];
    let mut spin = Spin::new(h.spin_ns, h.yield_);
    for i in 0..total {
        buf[0] = i as u8;
        let t0 = Instant::now();
        match end {
            End::Channel(ch) => {
                srb_send(ch, &buf, &mut spin)?;
                srb_recv(ch, &mut buf, &mut spin)?;
            }
            End::Fds(w, r) if h.case == Case::Eventfd => {
                efd_post(&*w)?;
                efd_take(&*r)?;
            }
            End::Signals(n, w) => {
                n.notify()?;
                signal_take(w)?;
            }
            End::Fds(w, r) => {
                write_all(&*w, &buf)?;
                read_exact(&*r, &mut buf)?;
            }
            End::Socket(s) => {
                write_all(&*s, &buf)?;
                read_exact(&*s, &mut buf)?;
            }
            End::Line(line) => {
                line.send(2 * i + 1, &buf)?;
                line.recv(2 * i + 2, &mut buf, h.yield_)?;
            }
        }
        let dt = t0.elapsed();
        let no_payload = matches!(h.case, Case::Eventfd | Case::EventfdWatch);
        if !no_payload && buf[0] != (i as u8).wrapping_add(1) {
            return Err(format!("{}: round trip {i}: wrong reply", h.case.name()).into());
        }
        if i >= WARMUP {
            out.push(dt.as_nanos() as u64);
        }
    }
    Ok(out)
}

/// Child: answers `WARMUP + iters` round trips (reply = request + 1 in the
/// first byte).
fn child_rtt(end: &mut End, h: &Header) -> Res<()> {
    let total = WARMUP + h.iters;
    let mut buf = [0u8; PAYLOAD];
    let mut spin = Spin::new(h.spin_ns, h.yield_);
    for i in 0..total {
        match end {
            End::Channel(ch) => {
                srb_recv(ch, &mut buf, &mut spin)?;
                buf[0] = buf[0].wrapping_add(1);
                srb_send(ch, &buf, &mut spin)?;
            }
            End::Fds(w, r) if h.case == Case::Eventfd => {
                efd_take(&*r)?;
                efd_post(&*w)?;
            }
            End::Signals(n, w) => {
                signal_take(w)?;
                n.notify()?;
            }
            End::Fds(w, r) => {
                read_exact(&*r, &mut buf)?;
                buf[0] = buf[0].wrapping_add(1);
                write_all(&*w, &buf)?;
            }
            End::Socket(s) => {
                read_exact(&*s, &mut buf)?;
                buf[0] = buf[0].wrapping_add(1);
                write_all(&*s, &buf)?;
            }
            End::Line(line) => {
                line.recv(2 * i + 1, &mut buf, h.yield_)?;
                buf[0] = buf[0].wrapping_add(1);
                line.send(2 * i + 2, &buf)?;
            }
        }
    }
    Ok(())
}

/// Parent: writes `iters` messages of `msg` bytes, waits for the ack;
/// returns the elapsed time.
fn parent_tput(end: &mut End, h: &Header) -> Res<Duration> {
    let msg = vec![0xA5u8; h.msg as usize];
    let mut spin = Spin::new(h.spin_ns, false);
    let mut ack = [0u8; 1];
    let t0 = Instant::now();
    match end {
        End::Channel(ch) => {
            for _ in 0..h.iters {
                srb_send(ch, &msg, &mut spin)?;
            }
            srb_recv(ch, &mut ack, &mut spin)?;
        }
        End::Socket(s) => {
            for _ in 0..h.iters {
                write_all(&*s, &msg)?;
            }
            read_exact(&*s, &mut ack)?;
        }
        _ => return Err("throughput: unexpected end".into()),
    }
    Ok(t0.elapsed())
}

/// Child: reads everything in 64 KiB chunks, then acknowledges.
fn child_tput(end: &mut End, h: &Header) -> Res<()> {
    let mut left = u64::from(h.iters) * u64::from(h.msg);
    let mut buf = vec![0u8; 1 << 16];
    let mut spin = Spin::new(h.spin_ns, false);
    match end {
        End::Channel(ch) => {
            while left > 0 {
                let n = ch.read(&mut buf)?;
                if n > 0 {
                    left = left.checked_sub(n as u64).ok_or("more bytes than sent")?;
                    spin.reset();
                } else if !spin.again() {
                    ch.wait(None)?;
                }
            }
            srb_send(ch, &[1], &mut spin)?;
        }
        End::Socket(s) => {
            while left > 0 {
                let n = match rustix::io::read(&*s, &mut buf) {
                    Ok(0) => return Err("peer closed".into()),
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => 0,
                    Err(e) => return Err(e.into()),
                };
                left = left.checked_sub(n as u64).ok_or("more bytes than sent")?;
            }
            write_all(&*s, &[1])?;
        }
        _ => return Err("throughput: unexpected end".into()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Parent orchestration.

/// A private directory (0700) for the listening socket, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters, nothing is published.
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("srb-xproc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Runner {
    _dir: TempDir,
    listener: Listener,
    path: PathBuf,
}

/// What a run returns.
enum Outcome {
    /// Round-trip samples (ns) and the parent's fdsem waits per round trip.
    Rtt(Vec<u64>, f64),
    Tput(Duration),
}

impl Runner {
    fn new() -> Res<Self> {
        let dir = TempDir::new();
        let rt = RuntimeDir::open(&dir.0)?;
        let listener = Listener::bind(&rt, "xproc")?;
        let path = listener.path().ok_or("unbound listener")?.to_owned();
        Ok(Self {
            _dir: dir,
            listener,
            path,
        })
    }

    /// One run: spawn the child, set up, pin, measure, reap.
    fn run(&self, h: Header, parent_cpu: i32) -> Res<Outcome> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, "1")
            .env(SOCKET_ENV, &self.path)
            .stdin(Stdio::null())
            .spawn()?;
        let result: Res<Outcome> = (|| {
            let (stream, _creds) = self.listener.accept()?;
            let mut end = parent_setup(stream, &h)?;
            pin(parent_cpu)?;
            if matches!(h.case, Case::TputSrb | Case::TputSocket) {
                Ok(Outcome::Tput(parent_tput(&mut end, &h)?))
            } else {
                let before = WAITS.load(Ordering::Relaxed);
                let v = parent_rtt(&mut end, &h)?;
                let waits = WAITS.load(Ordering::Relaxed) - before;
                Ok(Outcome::Rtt(v, waits as f64 / f64::from(WARMUP + h.iters)))
            }
        })();
        if result.is_err() {
            let _ = child.kill();
        }
        let status = child.wait()?;
        let outcome = result?;
        if !status.success() {
            return Err(format!("{}: child failed: {status}", h.case.name()).into());
        }
        Ok(outcome)
    }
}

fn child_main() -> Res<()> {
    let path = std::env::var_os(SOCKET_ENV).ok_or("no socket path")?;
    let stream = listener::connect(Path::new(&path))?;
    let (h, mut end) = child_setup(stream)?;
    pin(h.cpu)?;
    if matches!(h.case, Case::TputSrb | Case::TputSocket) {
        child_tput(&mut end, &h)
    } else {
        child_rtt(&mut end, &h)
    }
}

// ---------------------------------------------------------------------------
// Statistics, table and plot.

/// Nearest-rank quantile of sorted `v`.
fn quantile(v: &[u64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] as f64
}

#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    median_us: f64,
    p99_us: f64,
    n: usize,
    /// The parent's fdsem waits per round trip (srb cases; 0 otherwise).
    waits: f64,
}

fn summarise(mut v: Vec<u64>) -> Summary {
    if v.is_empty() {
        return Summary::default();
    }
    v.sort_unstable();
    Summary {
        median_us: quantile(&v, 0.5) / 1000.0,
        p99_us: quantile(&v, 0.99) / 1000.0,
        n: v.len(),
        waits: 0.0,
    }
}

/// Median of a few values.
fn median_f(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

struct Args {
    iters: u32,
    rounds: u32,
    spin_us: u32,
    svg: Option<PathBuf>,
    csv: Option<PathBuf>,
    tput_64: u32,
    tput_4k: u32,
    /// Only this round-trip case (by name), no throughput (for profiling).
    only: Option<String>,
    /// Redraw `--svg` from a CSV an earlier run wrote, without measuring.
    from_csv: Option<PathBuf>,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        iters: 10_000,
        rounds: 5,
        spin_us: 50,
        svg: None,
        csv: None,
        tput_64: 1_000_000,
        tput_4k: 100_000,
        only: None,
        from_csv: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--iters" => a.iters = val()?.parse()?,
            "--rounds" => a.rounds = val()?.parse()?,
            "--spin-us" => a.spin_us = val()?.parse()?,
            "--svg" => a.svg = Some(val()?.into()),
            "--csv" => a.csv = Some(val()?.into()),
            "--only" => a.only = Some(val()?),
            "--from-csv" => a.from_csv = Some(val()?.into()),
            "--quick" => {
                a.iters = 300;
                a.rounds = 1;
                a.tput_64 = 20_000;
                a.tput_4k = 2_000;
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(a)
}

const PINS: [&str; 2] = ["same CPU", "cross CPU"];

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        if let Err(e) = child_main() {
            eprintln!("xproc child: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = parent_main() {
        eprintln!("xproc: {e}");
        std::process::exit(1);
    }
}

fn parent_main() -> Res<()> {
    let args = parse_args()?;
    if let Some(csv) = &args.from_csv {
        let svg_path = args.svg.as_ref().ok_or("--from-csv needs --svg")?;
        std::fs::write(svg_path, svg(&read_csv(csv)?))?;
        return Ok(());
    }
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        return Err(format!("need two CPUs to pin to, have {cpus:?}").into());
    }
    let (c0, c1) = (cpus[0] as i32, cpus[1] as i32);
    let pins = [(c0, c0, true), (c0, c1, false)];
    let spin_ns = args.spin_us * 1000;
    let runner = Runner::new()?;
    if let Some(name) = &args.only {
        return only(&runner, &args, name, pins, spin_ns);
    }
    eprintln!(
        "xproc: CPUs {c0} and {c1}; {} round trips x {} rounds per case; spin {} µs; load {}",
        args.iters,
        args.rounds,
        args.spin_us,
        loadavg()
    );

    // Round trips, round-robin over cases and placements.
    let mut samples: Vec<[Vec<u64>; 2]> = RTT_CASES.iter().map(|_| [vec![], vec![]]).collect();
    let mut waits: Vec<[Vec<f64>; 2]> = RTT_CASES.iter().map(|_| [vec![], vec![]]).collect();
    for round in 0..args.rounds {
        for (ci, &case) in RTT_CASES.iter().enumerate() {
            for (pi, &(pc, cc, same)) in pins.iter().enumerate() {
                let spins = case.channel().is_some_and(|(_, s)| s);
                let h = Header {
                    case,
                    cpu: cc,
                    iters: args.iters,
                    spin_ns: if spins { spin_ns } else { 0 },
                    yield_: same,
                    msg: PAYLOAD as u32,
                };
                match runner.run(h, pc)? {
                    Outcome::Rtt(v, w) => {
                        samples[ci][pi].extend(v);
                        waits[ci][pi].push(w);
                    }
                    Outcome::Tput(_) => unreachable!("round-trip case"),
                }
            }
        }
        eprintln!("xproc: round {} of {} done", round + 1, args.rounds);
    }
    let rtt: Vec<[Summary; 2]> = samples
        .into_iter()
        .zip(waits)
        .map(|([a, b], [wa, wb])| {
            let mut s = [summarise(a), summarise(b)];
            s[0].waits = median_f(wa);
            s[1].waits = median_f(wb);
            s
        })
        .collect();

    // Throughput, cross CPU, median of the rounds.
    let mut tput = Vec::new();
    for (msg, count) in [(64u32, args.tput_64), (4096, args.tput_4k)] {
        let mut row = Vec::new();
        for case in [Case::TputSrb, Case::TputSocket] {
            let mut rates = Vec::new();
            for _ in 0..args.rounds.max(1) {
                let h = Header {
                    case,
                    cpu: c1,
                    iters: count,
                    spin_ns,
                    yield_: false,
                    msg,
                };
                match runner.run(h, c0)? {
                    Outcome::Tput(d) => rates.push(f64::from(count) / d.as_secs_f64()),
                    Outcome::Rtt(..) => unreachable!("throughput case"),
                }
            }
            row.push(median_f(rates));
        }
        tput.push((msg, row[0], row[1]));
    }

    let md = table(&args, &rtt, &tput);
    println!("{md}");
    if let Some(path) = &args.csv {
        let mut csv = String::from("case,placement,median_us,p99_us,n\n");
        for (ci, s) in rtt.iter().enumerate() {
            for (pi, s) in s.iter().enumerate() {
                csv += &format!(
                    "{},{},{:.3},{:.3},{}\n",
                    RTT_CASES[ci].name(),
                    PINS[pi],
                    s.median_us,
                    s.p99_us,
                    s.n
                );
            }
        }
        for (msg, srb, sock) in &tput {
            csv += &format!("throughput {msg} B,srb msgs/s,{srb:.0},,\n");
            csv += &format!("throughput {msg} B,socket msgs/s,{sock:.0},,\n");
        }
        std::fs::write(path, csv)?;
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(&rtt))?;
        eprintln!("xproc: wrote {}", path.display());
    }
    eprintln!("xproc: load at the end {}", loadavg());
    Ok(())
}

/// `--only CASE`: one round-trip case, both placements, printed briefly.
fn only(
    runner: &Runner,
    args: &Args,
    name: &str,
    pins: [(i32, i32, bool); 2],
    spin_ns: u32,
) -> Res<()> {
    let case = *RTT_CASES
        .iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| format!("no case {name:?}"))?;
    for (pi, &(pc, cc, same)) in pins.iter().enumerate() {
        let spins = case.channel().is_some_and(|(_, s)| s);
        let h = Header {
            case,
            cpu: cc,
            iters: args.iters,
            spin_ns: if spins { spin_ns } else { 0 },
            yield_: same,
            msg: PAYLOAD as u32,
        };
        if let Outcome::Rtt(v, w) = runner.run(h, pc)? {
            let s = summarise(v);
            println!(
                "{name} {}: median {:.2} µs, p99 {:.2} µs, parent sleeps per round trip {w:.2}",
                PINS[pi], s.median_us, s.p99_us
            );
        }
    }
    Ok(())
}

/// The round-trip summaries of a CSV written by `--csv`.
fn read_csv(path: &Path) -> Res<Vec<[Summary; 2]>> {
    let text = std::fs::read_to_string(path)?;
    let mut rtt = vec![[Summary::default(); 2]; RTT_CASES.len()];
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(ci), Some(pi)) = (
            RTT_CASES.iter().position(|c| c.name() == f[0]),
            PINS.iter().position(|p| f.get(1) == Some(p)),
        ) else {
            continue;
        };
        rtt[ci][pi] = Summary {
            median_us: f.get(2).ok_or("median")?.parse()?,
            p99_us: f.get(3).ok_or("p99")?.parse()?,
            n: f.get(4).ok_or("n")?.parse()?,
            waits: 0.0,
        };
    }
    Ok(rtt)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn idx(c: Case) -> usize {
    RTT_CASES
        .iter()
        .position(|&x| x == c)
        .expect("round-trip case")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// The Markdown table: round trips with ratios, targets, throughput.
fn table(args: &Args, rtt: &[[Summary; 2]], tput: &[(u32, f64, f64)]) -> String {
    let mut s = String::new();
    s += &format!(
        "Round trip of 32 bytes between two processes, µs ({} round trips per cell, \
         {} rounds pooled; spin budget {} µs):\n\n",
        args.iters * args.rounds,
        args.rounds,
        args.spin_us
    );
    s += "| case | same CPU median | p99 | cross CPU median | p99 | × eventfd (same / cross) | × cache line (same / cross) | parent sleeps per round trip (same / cross) |\n";
    s += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    let efd = rtt[idx(Case::Eventfd)];
    let line = rtt[idx(Case::CacheLine)];
    for (ci, r) in rtt.iter().enumerate() {
        s += &format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} | {:.1} / {:.1} | {} |\n",
            RTT_CASES[ci].name(),
            r[0].median_us,
            r[0].p99_us,
            r[1].median_us,
            r[1].p99_us,
            r[0].median_us / efd[0].median_us,
            r[1].median_us / efd[1].median_us,
            r[0].median_us / line[0].median_us,
            r[1].median_us / line[1].median_us,
            if RTT_CASES[ci].channel().is_some() {
                format!("{:.2} / {:.2}", r[0].waits, r[1].waits)
            } else {
                "–".to_owned()
            },
        );
    }
    let spin = rtt[idx(Case::SrbSpin)];
    let sleep = rtt[idx(Case::SrbSleep)];
    let sock = rtt[idx(Case::Socket)];
    let r_spin = spin[1].median_us / line[1].median_us;
    let r_sleep = [
        sleep[0].median_us / efd[0].median_us,
        sleep[1].median_us / efd[1].median_us,
    ];
    let x_sock_spin = [
        sock[0].median_us / spin[0].median_us,
        sock[1].median_us / spin[1].median_us,
    ];
    let x_sock_sleep = [
        sock[0].median_us / sleep[0].median_us,
        sock[1].median_us / sleep[1].median_us,
    ];
    s += "\nTargets (issue 15), medians from the table above:\n\n";
    s += "| target | measured | |\n|---|---|---|\n";
    s += &format!(
        "| peer spinning ≤ 2× the cache-line floor (cross CPU) | srb spin = {:.2}× cache line | {} |\n",
        r_spin,
        verdict(r_spin <= 2.0)
    );
    s += &format!(
        "| peer asleep ≤ 1.15× raw eventfd ping-pong | srb sleep = {:.2}× (same CPU), {:.2}× (cross CPU) | {} |\n",
        r_sleep[0],
        r_sleep[1],
        verdict(r_sleep[0] <= 1.15 && r_sleep[1] <= 1.15)
    );
    s += &format!(
        "| ≥ 5× faster than a unix socket (round trip) | srb spin: {:.1}× (same), {:.1}× (cross); srb sleep: {:.1}× (same), {:.1}× (cross) | {} (spin) / {} (sleep) |\n",
        x_sock_spin[0],
        x_sock_spin[1],
        x_sock_sleep[0],
        x_sock_sleep[1],
        verdict(x_sock_spin[0] >= 5.0 && x_sock_spin[1] >= 5.0),
        verdict(x_sock_sleep[0] >= 5.0 && x_sock_sleep[1] >= 5.0),
    );
    s += "\nOne-way throughput, cross CPU (median of the rounds):\n\n";
    s += "| message | srb channel | unix stream socket | srb ÷ socket |\n|---|---:|---:|---:|\n";
    for (msg, srb, sock) in tput {
        let mb = |r: f64| r * f64::from(*msg) / 1e6;
        s += &format!(
            "| {} B | {:.2} M msg/s ({:.0} MB/s) | {:.2} M msg/s ({:.0} MB/s) | {:.1}× |\n",
            msg,
            srb / 1e6,
            mb(*srb),
            sock / 1e6,
            mb(*sock),
            srb / sock
        );
    }
    s
}

/// 0.05 → "0.05", 0.2 → "0.2", 50 → "50".
fn tick_label(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Horizontal bars of the medians (log scale) with p99 whiskers, one pair
/// of bars (same CPU, cross CPU) per case.
fn svg(rtt: &[[Summary; 2]]) -> String {
    let (w, left, right, top, row) = (900.0, 150.0, 30.0, 60.0, 34.0);
    let h = top + row * rtt.len() as f64 + 60.0;
    let lo = 0.05f64;
    let hi = rtt
        .iter()
        .flat_map(|r| r.iter().map(|s| s.p99_us))
        .fold(1.0, f64::max)
        * 1.5;
    let x = |us: f64| left + (w - left - right) * (us.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln());
    let colours = ["#1f77b4", "#ff7f0e"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"16\" text-anchor=\"middle\">32-byte round trip between two \
         processes: median (bar) and p99 (whisker), µs, log scale</text>\n",
        w / 2.0
    );
    // Grid: 1-2-5 in every decade.
    let mut g = 10f64.powf(lo.log10().floor());
    while g <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = g * m;
            if v < lo || v > hi {
                continue;
            }
            let gx = x(v);
            s += &format!(
                "<line x1=\"{gx:.1}\" y1=\"{top}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n\
                 <text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                h - 50.0,
                h - 35.0,
                tick_label(v)
            );
        }
        g *= 10.0;
    }
    for (ci, r) in rtt.iter().enumerate() {
        let y0 = top + row * ci as f64;
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left - 8.0,
            y0 + row / 2.0 + 4.0,
            RTT_CASES[ci].name()
        );
        for (pi, sm) in r.iter().enumerate() {
            let y = y0 + 4.0 + pi as f64 * 13.0;
            let (x0, x1, xp) = (x(lo), x(sm.median_us), x(sm.p99_us));
            s += &format!(
                "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"11\" fill=\"{}\"/>\n\
                 <line x1=\"{x1:.1}\" y1=\"{:.1}\" x2=\"{xp:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n\
                 <line x1=\"{xp:.1}\" y1=\"{y:.1}\" x2=\"{xp:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n",
                (x1 - x0).max(1.0),
                colours[pi],
                y + 5.5,
                y + 5.5,
                y + 11.0
            );
        }
    }
    let ly = h - 15.0;
    for (pi, name) in PINS.iter().enumerate() {
        let lx = left + pi as f64 * 140.0;
        s += &format!(
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{}\"/>\n\
             <text x=\"{:.1}\" y=\"{ly:.1}\">{name}</text>\n",
            ly - 9.0,
            colours[pi],
            lx + 20.0
        );
    }
    s += &format!(
        "<text x=\"{:.1}\" y=\"{ly:.1}\" text-anchor=\"end\">µs</text>\n</svg>\n",
        w - right
    );
    s
}
