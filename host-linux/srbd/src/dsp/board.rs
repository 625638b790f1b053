//! The board peer: the Cortex-M4F firmware (`boards/mps2-an386`,
//! `srb-board-dsp-peer`) under QEMU as srbd's DSP (`srbd --dsp board:ELF`).
//!
//! QEMU's `mps2-an386` can take its 16 MiB PSRAM from a file
//! (`-object memory-backend-file,...,share=on -machine
//! mps2-an386,memory-backend=mem`), so the firmware's PSRAM is a file srbd
//! maps too. For each board [`spawn`]:
//!
//! 1. creates `dsp-board-<srbd pid>-<generation>.mem` in srbd's runtime
//!    directory (mode 0600, `O_EXCL`), 16 MiB, and maps it shared;
//! 2. writes the setup area (format, chain spec, where the block is:
//!    `boards/common/peer_setup.rs`, included here so both ends use one
//!    definition) and creates an `srb`-layout block at
//!    [`peer_setup::BLOCK_OFFSET`] (srbd is the creator), all before QEMU
//!    starts;
//! 3. starts QEMU with `PR_SET_PDEATHSIG = SIGKILL` (it dies with srbd)
//!    and one end of a socket pair it inherits and never touches: when QEMU
//!    dies the kernel closes it and srbd's end hangs up, exactly like
//!    `dsp-sim`'s socket ([`DspLink::peer_fd`]);
//! 4. returns a polled [`DspLink`] ([`DspLink::new_polled`]) over the ring
//!    ends, and a [`BoardFile`] the supervisor drops (removing the file)
//!    once it reaped that QEMU.
//!
//! # No doorbells
//!
//! The firmware cannot write an eventfd and needs no doorbell from srbd:
//! SysTick clocks it (one tick per period). So the link is polled: the
//! mixer's poll is bounded by [`DspLink::poll_interval`], a quarter of a
//! period ([`poll_interval`]), after which it looks at the ring again.
//! Neither side uses srb-core's fd-semaphore: under QEMU's single-threaded
//! TCG a guest read-modify-write is not atomic against srbd, while the
//! `srb` rings only load and store positions each owned by one side.
//!
//! # Hostile memory
//!
//! Everything srbd reads from the file after QEMU started goes through
//! srb-core's ring ends (raw-pointer atomics and copies; positions checked,
//! a bad one is a `Corrupt` error that kills the link) and then the link
//! codec's checks ([`DspLink::recv`]). No reference or slice is ever formed
//! over the mapping. The file is not sealed (QEMU needs a path), so a
//! process of srbd's uid could truncate it and fault srbd (SIGBUS); the
//! runtime directory is private (0700) to that uid.
//!
//! # The firmware's log
//!
//! The firmware logs with defmt through semihosting to QEMU's stdout,
//! which goes to `dsp-board.defmt` in the runtime directory (truncated at
//! each start). Decode it with `defmt-print -e ELF < dsp-board.defmt`.
//! Its statistics arrive as `Stats` messages and are logged and published
//! by srbd like `dsp-sim`'s.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};
use srb_core::layout::srb;
use srb_core::ring::srb::{Consumer, Producer};
use srb_core::{Block, RingConsumer, RingProducer};
use srb_linux::channel::ChannelIoError;
use srb_linux::signal::PeerWatch;

use super::link::{DspError, DspLink};

#[path = "../../../../boards/common/peer_setup.rs"]
pub mod peer_setup;

/// The QEMU executable started when [`BoardConfig::qemu`] is not set.
pub const DEFAULT_QEMU: &str = "qemu-system-arm";
/// The firmware's defmt log, in the runtime directory.
pub const DEFMT_LOG: &str = "dsp-board.defmt";

/// Where the board peer runs (what it runs is a [`BoardPeer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardConfig {
    /// QEMU (default [`DEFAULT_QEMU`], looked up on `PATH`).
    pub qemu: PathBuf,
    /// srbd's runtime directory: the memory file and the defmt log go here.
    pub runtime_dir: PathBuf,
}

/// What one board runs: the firmware, the stream format, the rings.
#[derive(Debug, Clone, Copy)]
pub struct BoardPeer<'a> {
    /// The firmware ELF (`srb-board-dsp-peer`).
    pub elf: &'a Path,
    /// Sample rate in Hz.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u8,
    /// Frames per period.
    pub period_frames: usize,
    /// Bytes per ring (the supervisor's `ring_capacity`).
    pub ring_capacity: u32,
    /// The chain spec the firmware starts with (`None`: empty).
    pub chain: Option<&'a str>,
}

/// How long the mixer sleeps between looks at a board's ring: a quarter
/// of a period (at least 100 µs).
pub fn poll_interval(rate: u32, period_frames: usize) -> Duration {
    let period = Duration::from_nanos(super::period_ns(rate, period_frames));
    (period / 4).max(Duration::from_micros(100))
}

/// The memory file of one board; dropping it removes the file.
#[derive(Debug)]
pub struct BoardFile {
    path: PathBuf,
}

impl BoardFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoardFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %e, "cannot remove the board's memory file");
            }
        }
    }
}

/// A shared, writable mapping of a board's memory file.
#[derive(Debug)]
struct BoardMapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: plain shared memory; this type never dereferences it, and every
// access through its address is made by srb-core (atomics and copies) or by
// `write_setup` before the board runs.
unsafe impl Send for BoardMapping {}
// SAFETY: as above; `&BoardMapping` only exposes the address.
unsafe impl Sync for BoardMapping {}

impl Drop for BoardMapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; the ring
        // ends that point into it are dropped first (BoardRings' field
        // order) and nothing else holds the address.
        if let Err(e) = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) } {
            tracing::warn!(%e, "munmap of a board's memory failed");
        }
    }
}

/// srbd's (creator's) ring ends in a board's memory file.
#[derive(Debug)]
pub struct BoardRings {
    // Field order is drop order: the ends go before the mapping.
    producer: Producer,
    consumer: Consumer,
    _map: Arc<BoardMapping>,
}

impl BoardRings {
    pub(crate) fn read(&mut self, dst: &mut [u8]) -> Result<usize, ChannelIoError> {
        Ok(self.consumer.read(dst)?.read)
    }

    pub(crate) fn write(&mut self, src: &[u8]) -> Result<usize, ChannelIoError> {
        Ok(self.producer.write(src)?.written)
    }

    pub(crate) fn free(&mut self) -> Result<usize, ChannelIoError> {
        Ok(self.producer.free()?)
    }

    pub(crate) fn available(&mut self) -> Result<usize, ChannelIoError> {
        Ok(self.consumer.available()?)
    }
}

/// Why a board's memory could not be prepared.
fn sys(what: &str, path: &Path, e: impl std::fmt::Display) -> DspError {
    DspError::Config(format!("board memory {}: {what}: {e}", path.display()))
}

/// Creates the memory file (0600, exclusive), sizes it to the PSRAM and
/// maps it. A stale file of the same name (an earlier srbd with this pid)
/// is replaced.
fn create_memory(path: &Path) -> Result<(BoardFile, OwnedFd, Arc<BoardMapping>), DspError> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mode = Mode::from_raw_mode(0o600);
    let fd = match rustix::fs::open(path, flags, mode) {
        Err(rustix::io::Errno::EXIST) => {
            std::fs::remove_file(path).map_err(|e| sys("remove stale", path, e))?;
            rustix::fs::open(path, flags, mode)
        }
        r => r,
    }
    .map_err(|e| sys("create", path, e))?;
    let file = BoardFile {
        path: path.to_path_buf(),
    };
    let len = peer_setup::PSRAM_LEN;
    rustix::fs::ftruncate(&fd, len as u64).map_err(|e| sys("ftruncate", path, e))?;
    // SAFETY: a fresh mapping at an address the kernel picks (null hint),
    // replacing nothing; it is only used through raw pointers.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )
    }
    .map_err(|e| sys("mmap", path, e))?;
    let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| sys("mmap", path, "null"))?;
    Ok((file, fd, Arc::new(BoardMapping { base, len })))
}

/// Writes the setup area and creates the `srb` block; returns srbd's ends.
fn prepare(map: &Arc<BoardMapping>, cfg: &BoardPeer<'_>) -> Result<BoardRings, DspError> {
    let capacity = cfg.ring_capacity;
    let block_len = srb::block_len(capacity);
    if peer_setup::BLOCK_OFFSET + block_len > map.len {
        return Err(DspError::Config(format!(
            "a {block_len}-byte block does not fit the board's PSRAM"
        )));
    }
    let spec = cfg.chain.unwrap_or("").as_bytes();
    let mut setup = peer_setup::Setup {
        rate: cfg.rate,
        channels: cfg.channels.into(),
        period_frames: cfg.period_frames as u32,
        block_offset: peer_setup::BLOCK_OFFSET as u32,
        block_len: block_len as u32,
        bypass: false,
        chain: [0; peer_setup::MAX_SPEC],
        chain_len: spec.len().min(peer_setup::MAX_SPEC),
    };
    setup.chain[..setup.chain_len].copy_from_slice(&spec[..setup.chain_len]);
    let bytes = setup.encode();
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: i < SETUP_LEN < len: inside the live mapping; no one else
        // runs on it yet (QEMU starts later); volatile, as for any memory
        // a peer will share.
        unsafe { map.base.as_ptr().add(i).write_volatile(*b) };
    }
    // SAFETY: BLOCK_OFFSET + block_len <= len (checked), BLOCK_OFFSET is
    // page-aligned in a page-aligned mapping, the mapping lives as long as
    // the ends (BoardRings holds it), and only srb-core touches the block.
    let block = unsafe {
        Block::new(
            NonNull::new_unchecked(map.base.as_ptr().add(peer_setup::BLOCK_OFFSET)),
            block_len,
        )
    };
    // SAFETY: a fresh block nobody else uses yet; these are its only
    // creator ends.
    let (_, ends) = unsafe { srb::create(block, capacity) }
        .map_err(|e| DspError::Config(format!("srb create in the board memory: {e:?}")))?;
    Ok(BoardRings {
        producer: ends.producer,
        consumer: ends.consumer,
        _map: map.clone(),
    })
}

/// Starts board number `generation`: memory file, setup, block, QEMU.
/// Returns the QEMU child, its memory file (drop it after reaping the
/// child) and the polled link.
pub fn spawn(
    cfg: &BoardPeer<'_>,
    board: &BoardConfig,
    generation: u64,
) -> Result<(Child, BoardFile, DspLink), DspError> {
    let name = format!("dsp-board-{}-{generation}.mem", std::process::id());
    let path = board.runtime_dir.join(name);
    let (file, fd, map) = create_memory(&path)?;
    drop(fd); // the mapping keeps the memory; QEMU opens the path
    let rings = prepare(&map, cfg)?;
    drop(map);
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(DspError::Sys)?;
    let log = std::fs::File::create(board.runtime_dir.join(DEFMT_LOG))
        .map_err(|e| sys("defmt log", &board.runtime_dir, e))?;
    let mut cmd = Command::new(&board.qemu);
    cmd.arg("-machine")
        .arg("mps2-an386,memory-backend=mem")
        .arg("-object")
        .arg(format!(
            "memory-backend-file,id=mem,size=16M,mem-path={},share=on",
            path.display()
        ))
        .args([
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
        ])
        .arg("-kernel")
        .arg(cfg.elf)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::inherit());
    let raw = theirs.as_raw_fd();
    let hook = move || -> std::io::Result<()> {
        // QEMU dies with srbd (with the thread that spawned it: the
        // supervisor's, which lives until srbd stops the board).
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        // SAFETY: `raw` is the socket `theirs`, open in this child (it is
        // closed in srbd only after the spawn).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        // Inherited across exec, untouched by QEMU: closes when it dies.
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec and only makes
    // two async-signal-safe system calls (prctl, fcntl) on a copied value;
    // it allocates nothing and takes no lock.
    unsafe { cmd.pre_exec(hook) };
    let child = cmd.spawn().map_err(|source| DspError::Spawn {
        program: board.qemu.display().to_string(),
        source,
    })?;
    drop(theirs); // QEMU holds the only copy now
    let watch = PeerWatch::new(Arc::new(ours));
    let interval = poll_interval(cfg.rate, cfg.period_frames);
    let mut child = child;
    match DspLink::new_polled(rings, watch, cfg.channels, cfg.period_frames, interval) {
        Ok(link) => Ok((child, file, link)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Removes memory files of board peers whose srbd is gone (after a
/// `SIGKILL`, nothing else removed them).
pub fn remove_stale(runtime_dir: &Path) {
    let Ok(dir) = std::fs::read_dir(runtime_dir) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("dsp-board-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether `fd` is the kind of file a board memory is (for tests).
#[cfg(test)]
fn is_regular(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|s| {
        rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::RegularFile
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use srb_dsp_sim::link::{self as wire, Control};

    fn cfg(chain: Option<&str>) -> BoardPeer<'_> {
        BoardPeer {
            elf: Path::new("/nonexistent.elf"),
            rate: 48_000,
            channels: 2,
            period_frames: 64,
            ring_capacity: 4096,
            chain,
        }
    }

    #[test]
    fn the_memory_file_is_private_and_removed() {
        let dir = tempdir();
        let path = dir.join("m.mem");
        let (file, fd, map) = create_memory(&path).unwrap();
        assert!(is_regular(&fd));
        let st = rustix::fs::stat(&path).unwrap();
        assert_eq!(st.st_mode & 0o777, 0o600);
        assert_eq!(st.st_size as usize, peer_setup::PSRAM_LEN);
        let rings = prepare(&map, &cfg(Some("gain:-6dB"))).unwrap();
        // The setup area reads back (what the firmware decodes).
        let mut b = [0u8; peer_setup::SETUP_LEN];
        rustix::io::pread(&fd, &mut b, 0).unwrap();
        let s = peer_setup::Setup::decode(&b).unwrap();
        assert_eq!((s.rate, s.channels, s.period_frames), (48_000, 2, 64));
        assert_eq!(s.chain_bytes(), b"gain:-6dB");
        drop(rings);
        drop(map);
        drop(file);
        assert!(!path.exists());
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn setup_fields_are_validated() {
        let good = peer_setup::Setup {
            rate: 48_000,
            channels: 2,
            period_frames: 480,
            block_offset: 4096,
            block_len: 8192,
            bypass: false,
            chain: [0; peer_setup::MAX_SPEC],
            chain_len: 0,
        };
        assert_eq!(peer_setup::Setup::decode(&good.encode()), Ok(good));
        let mut b = good.encode();
        b[0] ^= 1;
        assert!(matches!(
            peer_setup::Setup::decode(&b),
            Err(peer_setup::SetupError::BadMagic(_))
        ));
        for (at, v) in [
            (8, 10u32),
            (12, 9),
            (16, 5000),
            (20, 100),
            (24, 1 << 30),
            (28, 2),
            (32, 257),
        ] {
            let mut b = good.encode();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(peer_setup::Setup::decode(&b).is_err(), "field @{at} = {v}");
        }
    }

    #[test]
    fn a_polled_link_reads_what_the_board_writes() {
        let dir = tempdir();
        let (file, _fd, map) = create_memory(&dir.join("m.mem")).unwrap();
        let rings = prepare(&map, &cfg(None)).unwrap();
        // The "firmware": srb-core's attacher on the same memory.
        // SAFETY: the block prepare created; this test is its only attacher.
        let (_, mut fw) = unsafe {
            srb::attach(Block::new(
                NonNull::new_unchecked(map.base.as_ptr().add(peer_setup::BLOCK_OFFSET)),
                srb::block_len(4096),
            ))
        }
        .unwrap();
        let (a, _b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let mut link = DspLink::new_polled(
            rings,
            PeerWatch::new(Arc::new(a)),
            2,
            64,
            poll_interval(48_000, 64),
        )
        .unwrap();
        assert_eq!(
            link.poll_interval(),
            Some(Duration::from_nanos(1_333_333 / 4))
        );
        assert!(!link.before_poll().unwrap(), "empty ring: sleep");
        let mut m = [0u8; 16];
        let n = Control::Pull { seq: 3 }.encode(&mut m).unwrap();
        assert_eq!(fw.producer.write(&m[..n]).unwrap().written, n);
        assert!(link.before_poll().unwrap(), "bytes in the ring: read");
        let mut buf = [0f32; 128];
        assert_eq!(
            link.recv(&mut buf).unwrap(),
            Some(crate::dsp::link::DspEvent::Pull { seq: 3 })
        );
        assert!(link.send_period(3, &[0.5; 128], 2).unwrap());
        let mut got = vec![0u8; wire::period_len(64, 2)];
        assert_eq!(fw.consumer.read(&mut got).unwrap().read, got.len());
        assert!(!link.is_gone().unwrap());
        drop(_b);
        assert!(link.is_gone().unwrap(), "the peer socket reports the death");
        drop(link);
        drop(map);
        drop(file);
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn a_scribbled_ring_position_is_an_error_not_a_panic() {
        let dir = tempdir();
        let (file, _fd, map) = create_memory(&dir.join("m.mem")).unwrap();
        let rings = prepare(&map, &cfg(None)).unwrap();
        let (a, _b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let mut link = DspLink::new_polled(
            rings,
            PeerWatch::new(Arc::new(a)),
            2,
            64,
            poll_interval(48_000, 64),
        )
        .unwrap();
        // The firmware's write position of the to-srbd ring (line 1 of the
        // srb header) jumps far past the capacity.
        // SAFETY: an aligned u32 inside the live mapping; atomic store, as
        // a peer would.
        unsafe {
            let w = map.base.as_ptr().add(peer_setup::BLOCK_OFFSET + srb::LINE);
            (*w.cast::<std::sync::atomic::AtomicU32>())
                .store(0x8000_0000, std::sync::atomic::Ordering::Release);
        }
        let mut buf = [0f32; 128];
        let r = link.before_poll().and_then(|_| link.recv(&mut buf));
        assert!(
            matches!(r, Err(DspError::Channel(ChannelIoError::Corrupt(_)))),
            "{r:?}"
        );
        drop(link);
        drop(map);
        drop(file);
        let _ = std::fs::remove_dir(&dir);
    }

    fn tempdir() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        // Relaxed: a unique number, nothing else.
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("srbd-board-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
