//! [`Supervisor`]: spawns `dsp-sim`, connects it, and keeps one running.
//!
//! The supervisor runs on its own thread (never the mixer's). For each DSP
//! it makes a close-on-exec unix socket pair, spawns the program with one
//! end as its stdin (fd 0; `Command::stdin` dups it there without the
//! close-on-exec flag, no unsafe code needed) and the stream format on the
//! command line, drops its copy of that end (so the DSP's death is a
//! hang-up on our end), runs [`handshake::create`] (`srb` layout, eventfd
//! signals, [`ring_capacity`]) and sends the resulting [`DspLink`] to the
//! mixer over an `mpsc` channel.
//!
//! It then watches the child: every [`WATCH_TICK`] (or at once when
//! unparked) it checks for a stop, a restart request and `try_wait`. A DSP
//! that exited, or that the mixer declared dead or stuck
//! ([`RestartHandle::request_restart_of`]), is killed with `SIGKILL` (which
//! also ends a `SIGSTOP`ped process), reaped, logged, and replaced after a
//! back-off ([`Backoff`]): [`INITIAL_BACKOFF`] doubling up to
//! [`MAX_BACKOFF`], back to the start once a DSP ran for [`HEALTHY_AFTER`]. A failed start (the
//! program cannot be executed, the handshake fails) backs off the same
//! way. Every DSP is reaped, so no zombie is left; each link owns its
//! mapping and fds, so nothing leaks once the mixer drops old links.
//!
//! Restart requests carry the generation of the link they are about (each
//! new DSP gets the next one), so a request the mixer makes about a DSP the
//! supervisor already replaced does not kill its successor.
//!
//! [`Supervisor::start_board`] supervises the board peer instead (QEMU
//! running the Cortex-M4F firmware, [`super::board`]) the same way: the
//! child is QEMU, the link is polled, and each board's memory file is
//! removed once its QEMU is reaped.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use srb_dsp_sim::link as wire;
use srb_dsp_sim::Chain;

use srb_linux::handshake::{self, ChannelConfig, LayoutKind, SignalKind};
use srb_linux::scm::ScmStream;

use super::board::{BoardConfig, BoardFile};
use super::check_format;
use super::link::{DspError, DspLink};
pub use super::restart::RestartHandle;
use super::restart::{Backoff, Shared, ANY};

/// The first restart delay.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A DSP that ran this long resets the back-off (a healthy minute).
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long the handshake with a new DSP may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the supervisor checks its child when nothing wakes it.
pub const WATCH_TICK: Duration = Duration::from_millis(20);

/// The program's file name, looked up by [`default_program`].
pub const PROGRAM_NAME: &str = "dsp-sim";

/// What the supervisor starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DspConfig {
    /// The `dsp-sim` executable ([`default_program`]).
    pub program: PathBuf,
    /// Sample rate in Hz.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u8,
    /// Frames per period (64..=4096).
    pub period_frames: usize,
    /// The chain spec every new DSP starts with (`None`: empty chain).
    pub chain: Option<String>,
    /// `SCHED_FIFO` priority the DSP asks for (`--rt-priority`; 0: normal
    /// scheduling, no `mlockall`).
    pub rt_priority: u8,
}

impl DspConfig {
    /// Checks the format and the chain spec.
    pub fn check(&self) -> Result<(), DspError> {
        check_format(self.rate, self.channels, self.period_frames).map_err(DspError::Config)?;
        check_chain(self.chain.as_deref(), self.rate, self.channels)
    }
}

fn check_chain(chain: Option<&str>, rate: u32, channels: u8) -> Result<(), DspError> {
    if let Some(spec) = chain {
        if spec.len() > wire::MAX_SPEC_LEN {
            return Err(DspError::Link(wire::LinkError::SpecTooLong {
                len: spec.len(),
            }));
        }
        Chain::parse(spec, rate as f32, channels.into()).map_err(DspError::Chain)?;
    }
    Ok(())
}

/// Finds `dsp-sim`: next to the current executable
/// ([`std::env::current_exe`]), else in a `PATH` directory.
pub fn default_program() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(PROGRAM_NAME)));
    if let Some(p) = beside.filter(|p| is_executable(p)) {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(PROGRAM_NAME))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Bytes per ring for a DSP link: room for four periods (so a period, a
/// pull and a stats report never wait for each other), a power of two, at
/// least 4 KiB.
pub fn ring_capacity(period_frames: usize, channels: u8) -> u32 {
    let need = 4 * wire::period_len(period_frames, channels.into());
    u32::try_from(need.next_power_of_two().max(4096)).unwrap_or(1 << 30)
}

/// Spawns and supervises `dsp-sim` (see the module docs).
#[derive(Debug)]
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Checks `cfg`, starts the first DSP (its link is on `links` when this
    /// returns `Ok`), and starts supervising it. An error means no DSP
    /// runs: the program could not be started or did not complete the
    /// handshake, or `cfg` is invalid.
    pub fn start(cfg: DspConfig, links: mpsc::Sender<DspLink>) -> Result<Supervisor, DspError> {
        Self::start_with(cfg, None, links)
    }

    /// [`start`](Self::start) for the board peer: `cfg.program` is the
    /// firmware ELF (`srb-board-dsp-peer`), run by QEMU as `board` says.
    pub fn start_board(
        cfg: DspConfig,
        board: BoardConfig,
        links: mpsc::Sender<DspLink>,
    ) -> Result<Supervisor, DspError> {
        super::board::remove_stale(&board.runtime_dir);
        Self::start_with(cfg, Some(board), links)
    }

    fn start_with(
        cfg: DspConfig,
        board: Option<BoardConfig>,
        links: mpsc::Sender<DspLink>,
    ) -> Result<Supervisor, DspError> {
        cfg.check()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            restart: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            thread: OnceLock::new(),
            chain: Mutex::new(cfg.chain.clone()),
            rate: cfg.rate,
            channels: cfg.channels,
        });
        let (mut child, file, link) = spawn(&cfg, board.as_ref(), &shared, 1)?;
        if links.send(link).is_err() {
            reap(&mut child);
            return Err(DspError::ReceiverGone);
        }
        let pid = child.id();
        shared.pid.store(pid, Ordering::Relaxed);
        shared.generation.store(1, Ordering::Relaxed);
        let name = peer_name(board.as_ref());
        tracing::info!(pid, program = %cfg.program.display(), "{name} started");
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("dsp-supervisor".into())
            .spawn(move || {
                let _ = s.thread.set(std::thread::current());
                supervise(&cfg, board.as_ref(), &s, &links, (child, file));
            });
        match thread {
            Ok(t) => Ok(Supervisor {
                shared,
                thread: Some(t),
            }),
            Err(e) => {
                // The closure (and the child in it) was dropped unrun; the
                // child's stdin closed, so it exits on its own, but reap it.
                if let Ok(pid) = i32::try_from(pid) {
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        let _ = rustix::process::waitpid(
                            Some(pid),
                            rustix::process::WaitOptions::empty(),
                        );
                    }
                }
                Err(DspError::Thread(e))
            }
        }
    }

    /// A handle for the mixer (clone it freely).
    pub fn restart_handle(&self) -> RestartHandle {
        RestartHandle {
            shared: self.shared.clone(),
        }
    }

    /// The running DSP is dead or stuck: kill and replace it. See
    /// [`RestartHandle::request_restart`]; the mixer should prefer
    /// [`DspLink::request_restart`], which names the DSP it means.
    pub fn request_restart(&self) {
        self.restart_handle().request_restart();
    }

    /// How many times a DSP had to be started again.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// The running DSP's process id (`None` between a death and the
    /// restart).
    pub fn child_pid(&self) -> Option<u32> {
        match self.shared.pid.load(Ordering::Relaxed) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// The generation of the running (or last) DSP: 1 for the first.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    /// Sets the chain spec later DSPs start with (`None`: an empty chain).
    /// The running DSP is told with `Control::SetChain` by whoever holds
    /// its link. An invalid spec is refused here and changes nothing.
    pub fn set_chain(&self, chain: Option<String>) -> Result<(), DspError> {
        check_chain(chain.as_deref(), self.shared.rate, self.shared.channels)?;
        *self.shared.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        Ok(())
    }

    /// Kills and reaps the DSP and ends the supervisor thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                tracing::error!("dsp supervisor thread panicked");
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the logs call the peer.
fn peer_name(board: Option<&BoardConfig>) -> &'static str {
    if board.is_some() {
        "board DSP (QEMU)"
    } else {
        "dsp-sim"
    }
}

/// Spawns DSP number `generation` (`dsp-sim`, or QEMU with the board's
/// memory file when `board` is set) and connects it.
fn spawn(
    cfg: &DspConfig,
    board: Option<&BoardConfig>,
    shared: &Arc<Shared>,
    generation: u64,
) -> Result<(Child, Option<BoardFile>, DspLink), DspError> {
    // A request made while no DSP ran is about none of them.
    shared.restart.store(0, Ordering::Relaxed);
    if let Some(board) = board {
        let chain = shared
            .chain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let peer = super::board::BoardPeer {
            elf: &cfg.program,
            rate: cfg.rate,
            channels: cfg.channels,
            period_frames: cfg.period_frames,
            ring_capacity: ring_capacity(cfg.period_frames, cfg.channels),
            chain: chain.as_deref(),
        };
        let (child, file, link) = super::board::spawn(&peer, board, generation)?;
        let handle = RestartHandle {
            shared: shared.clone(),
        };
        let pid = child.id();
        return Ok((
            child,
            Some(file),
            link.with_supervisor(handle, generation, pid),
        ));
    }
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(DspError::Sys)?;
    let stream = ScmStream::new(ours).map_err(DspError::Sys)?;
    let chain = shared
        .chain
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut child = {
        // The command owns the child's end; it is dropped (closed here)
        // right after the spawn, so the DSP holds the only copy.
        let mut cmd = Command::new(&cfg.program);
        cmd.arg(format!("--rate={}", cfg.rate))
            .arg(format!("--channels={}", cfg.channels))
            .arg(format!("--period-frames={}", cfg.period_frames));
        if let Some(spec) = &chain {
            cmd.arg(format!("--chain={spec}"));
        }
        if cfg.rt_priority > 0 {
            cmd.arg(format!("--rt-priority={}", cfg.rt_priority));
        }
        cmd.stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        cmd.spawn().map_err(|source| DspError::Spawn {
            program: cfg.program.display().to_string(),
            source,
        })?
    };
    let ch_cfg = ChannelConfig {
        layout: LayoutKind::Srb,
        signal: SignalKind::Eventfd,
        capacity: ring_capacity(cfg.period_frames, cfg.channels),
    };
    let link = handshake::create(stream, ch_cfg, Some(HANDSHAKE_TIMEOUT))
        .map_err(DspError::from)
        .and_then(|ch| DspLink::new(ch, cfg.channels, cfg.period_frames));
    match link {
        Ok(link) => {
            let handle = RestartHandle {
                shared: shared.clone(),
            };
            let pid = child.id();
            Ok((child, None, link.with_supervisor(handle, generation, pid)))
        }
        Err(e) => {
            reap(&mut child);
            Err(e)
        }
    }
}

/// Kills (`SIGKILL`, which also ends a stopped process) and reaps `child`.
fn reap(child: &mut Child) -> Option<ExitStatus> {
    // Fails only if it was reaped already, which `wait` then reports too.
    let _ = child.kill();
    match child.wait() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, pid = child.id(), "reaping dsp-sim failed");
            None
        }
    }
}

/// Why a DSP's run ended.
enum Ended {
    Exited(ExitStatus),
    Requested,
    Stop,
}

/// Watches the running DSP until it exits, a restart of it is requested,
/// or the supervisor stops.
fn watch(shared: &Shared, child: &mut Child, generation: u64) -> Ended {
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ended::Stop;
        }
        let r = shared.restart.swap(0, Ordering::Relaxed);
        if r == ANY || r == generation {
            return Ended::Requested;
        }
        match child.try_wait() {
            Ok(Some(status)) => return Ended::Exited(status),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "checking dsp-sim failed; restarting it");
                return Ended::Requested;
            }
        }
        std::thread::park_timeout(WATCH_TICK);
    }
}

/// Sleeps for `d` unless stopped; returns whether to go on.
fn pause(shared: &Shared, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::park_timeout(left);
    }
}

/// "status 3" / "signal 9".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}

/// The supervisor thread: watch, restart with back-off, until stopped.
fn supervise(
    cfg: &DspConfig,
    board: Option<&BoardConfig>,
    shared: &Arc<Shared>,
    links: &mpsc::Sender<DspLink>,
    first: (Child, Option<BoardFile>),
) {
    let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF, HEALTHY_AFTER);
    let mut delay = INITIAL_BACKOFF;
    let mut generation = 1;
    let name = peer_name(board);
    let mut current = Some((first.0, first.1, Instant::now()));
    loop {
        if let Some((mut child, file, started)) = current.take() {
            let pid = child.id();
            let ended = watch(shared, &mut child, generation);
            let status = reap(&mut child);
            // The board's memory file goes with its QEMU (the mapping
            // stays until the mixer drops the old link).
            drop(file);
            shared.pid.store(0, Ordering::Relaxed);
            delay = backoff.after_run(started.elapsed());
            match ended {
                Ended::Stop => {
                    tracing::info!(pid, "{name} stopped");
                    return;
                }
                Ended::Exited(st) => tracing::warn!(
                    pid,
                    "{name} exited ({}); restarting in {delay:?}",
                    describe(st)
                ),
                Ended::Requested => tracing::warn!(
                    pid,
                    "{name} is dead or stuck; killed it ({}); restarting in {delay:?}",
                    status.map_or_else(|| "not reaped".into(), describe)
                ),
            }
            shared.restarts.fetch_add(1, Ordering::Relaxed);
        }
        if !pause(shared, delay) {
            return;
        }
        generation += 1;
        match spawn(cfg, board, shared, generation) {
            Ok((mut child, file, link)) => {
                let pid = child.id();
                shared.pid.store(pid, Ordering::Relaxed);
                shared.generation.store(generation, Ordering::Relaxed);
                if links.send(link).is_err() {
                    tracing::info!("the mixer is gone; dsp supervisor ending");
                    reap(&mut child);
                    shared.pid.store(0, Ordering::Relaxed);
                    return;
                }
                tracing::info!(pid, generation, "{name} started");
                current = Some((child, file, Instant::now()));
            }
            Err(e) => {
                delay = backoff.after_failed_start();
                tracing::warn!(error = %e, "{name} failed to start; retrying in {delay:?}");
                shared.restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(program: &str) -> DspConfig {
        DspConfig {
            program: program.into(),
            rate: 48_000,
            channels: 2,
            period_frames: 480,
            chain: None,
            rt_priority: 0,
        }
    }

    #[test]
    fn configurations_are_checked_before_anything_starts() {
        let (tx, _rx) = mpsc::channel();
        let bad_chain = DspConfig {
            chain: Some("lowpass".into()),
            ..cfg("/nonexistent")
        };
        assert!(matches!(
            Supervisor::start(bad_chain, tx.clone()),
            Err(DspError::Chain(_))
        ));
        let bad_period = DspConfig {
            period_frames: 5000,
            ..cfg("/nonexistent")
        };
        assert!(matches!(
            Supervisor::start(bad_period, tx.clone()),
            Err(DspError::Config(_))
        ));
        let long = DspConfig {
            chain: Some("gain:0dB,".repeat(40)),
            ..cfg("/nonexistent")
        };
        assert!(matches!(
            Supervisor::start(long, tx),
            Err(DspError::Link(wire::LinkError::SpecTooLong { .. }))
        ));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let (tx, rx) = mpsc::channel();
        let e = Supervisor::start(cfg("/nonexistent/dsp-sim"), tx).unwrap_err();
        assert!(matches!(e, DspError::Spawn { .. }), "{e}");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_program_that_exits_fails_the_handshake_and_is_reaped() {
        // `true` ignores its arguments and exits: the handshake sees the
        // hang-up; the child is reaped before start returns.
        let Some(t) = ["/bin/true", "/usr/bin/true"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            return;
        };
        let (tx, _rx) = mpsc::channel();
        let e = Supervisor::start(cfg(t), tx).unwrap_err();
        assert!(matches!(e, DspError::Handshake(_)), "{e}");
    }

    #[test]
    fn ring_capacities_hold_four_periods() {
        assert_eq!(ring_capacity(64, 1), 4096);
        assert_eq!(ring_capacity(480, 2), 16384);
        assert_eq!(ring_capacity(4096, 8), 1 << 20);
        for (f, c) in [(64, 2), (1024, 2), (4096, 8)] {
            assert!(ring_capacity(f, c) as usize >= 4 * wire::period_len(f, c.into()));
        }
    }

    #[test]
    fn restart_requests_name_a_generation() {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            restart: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            thread: OnceLock::new(),
            chain: Mutex::new(None),
            rate: 48_000,
            channels: 2,
        });
        let h = RestartHandle {
            shared: shared.clone(),
        };
        h.request_restart_of(0); // a link without a supervisor: nothing
        assert_eq!(shared.restart.load(Ordering::Relaxed), 0);
        h.request_restart_of(3);
        h.request_restart_of(2); // older: cannot override the newer request
        assert_eq!(shared.restart.load(Ordering::Relaxed), 3);
        h.request_restart();
        assert_eq!(shared.restart.load(Ordering::Relaxed), ANY);
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9");
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "status 3");
    }
}
