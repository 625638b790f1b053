//! PulseAudio's own srbchannel as the peer of srb-core's `pa` layout.
//!
//! loom models SeqCst loads as Acquire loads, so it cannot model the poster
//! libpulse really runs (`pa_fdsem_post`: a compare-and-swap of `signalled`,
//! then a *plain SeqCst load* of `waiting`; in Debian's
//! `libpulsecommon-16.1.so` on x86-64 that is `lock cmpxchg` followed by a
//! plain `mov`). This test closes the gap with PulseAudio's code itself:
//! `libpulsecommon` is loaded with `dlopen` (the `libloading` crate) and its
//! exported `pa_srbchannel_*`, `pa_mempool_*`, `pa_memblock_*`,
//! `pa_memexport_*` functions are driven through FFI, with a `pa_mainloop`
//! from `libpulse` that sleeps in `poll` on PulseAudio's eventfd.
//!
//! Four runs, each sending random-sized checksummed messages in *both*
//! directions at once (so both data and space wake-ups are exercised), with
//! both sides sleeping whenever they cannot make progress — ours in
//! [`SrbChannel::wait`] on a blocking eventfd, PulseAudio's in
//! `pa_mainloop_poll` — and both eventfds real:
//!
//! | run | server (creates the block) | client (adopts it) | where |
//! |---|---|---|---|
//! | `ours_serve_pa_threads` | srb-core (`pa::init_server` on a sealed memfd) | `pa_srbchannel_new_from_template` | two threads |
//! | `ours_serve_pa_processes` | srb-core | PulseAudio, in a child process | two processes |
//! | `pa_serves_ours_threads` | `pa_srbchannel_new` on a memfd `pa_mempool` | srb-core (`pa::adopt_client`) | two threads |
//! | `pa_serves_ours_processes` | PulseAudio, in a child process | srb-core | two processes |
//!
//! Each message is `[len: u32 LE][payload][fnv1a-32(payload): u32 LE]`; the
//! receiver checks the checksum and that the message is byte for byte the
//! one the sender's seeded generator made. Sizes are log-uniform over
//! 1..=64 KiB, larger than the rings (2 KiB when we create the block, PA's
//! 32 KiB when it does), so both writers fill their rings and wait for space.
//! Messages per direction per run: 1000 in debug builds, 150 000 in release
//! builds (4 runs × 2 directions × 150 000 = 1.2 × 10^6 messages, run by
//! `scripts/test-linux.sh`); `SRB_PA_INTEROP_MESSAGES` overrides both.
//! A wait that sees no wake-up for [`stall()`] (120 s) fails the run (a lost wake-up
//! would otherwise hang it); no timing is asserted.
//!
//! What it catches, checked by mutating srb-core locally (release build,
//! `SRB_PA_INTEROP_STALL_SECS=5`): a poster that does not notify a sleeping
//! PulseAudio (`waiting == 1` read as "not waiting") fails every run within
//! the stall bound. What it did *not* catch: removing both of our waiter's
//! re-checks (the second `signalled` cmpxchg in `FdsemWaiter::before_wait`
//! and the ring re-read in `SrbChannel::before_wait`) passed all 1.2 × 10^6
//! messages: the window that opens is a few instructions wide. For that
//! window the hand argument in `srb_core::fdsem` (see below), not this
//! test, is the evidence; the test shows the two implementations agree on
//! layout, geometry, accounting (`in_pipe`, which PulseAudio asserts on)
//! and wake-ups under load.
//!
//! The two-process runs spawn this test binary again (`--exact
//! child_process_entry`) with `SRB_PA_INTEROP_CHILD` set; the child connects
//! to a listener in a private directory and the memfd and both eventfds
//! travel by `SCM_RIGHTS`.
//!
//! The library is looked up in `SRB_LIBPULSECOMMON`, then in
//! `/usr/lib/<multiarch>/pulseaudio/libpulsecommon-*.so` (Debian's
//! `libpulse0`); a machine without it fails the test (the README's test
//! command installs it).
//!
//! # Why a SeqCst-load poster cannot make our waiter lose a wake-up
//!
//! The hand argument now lives in `core/src/fdsem.rs` (`srb_core::fdsem`), section of the same name.

use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use libloading::Library;
use srb_core::layout::pa::{self, Geometry, PaEnds};
use srb_core::ring::pa::{Consumer, Producer};
use srb_core::{Block, SrbChannel, Woken};
use srb_linux::eventfd::{Eventfd, EventfdWait};
use srb_linux::fdkind::FdKind;
use srb_linux::listener::{self, Listener};
use srb_linux::memfd::SealedMemfd;
use srb_linux::runtime_dir::RuntimeDir;
use srb_linux::scm::ScmStream;
use srb_linux::signal::PeerWatch;

/// A wait that sees no wake-up for this long is a lost wake-up (or a hung
/// peer): the run fails instead of hanging. Not a timing assertion.
/// `SRB_PA_INTEROP_STALL_SECS` shortens it for mutation checks.
fn stall() -> Duration {
    static S: OnceLock<Duration> = OnceLock::new();
    *S.get_or_init(|| {
        let secs = std::env::var("SRB_PA_INTEROP_STALL_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120);
        Duration::from_secs(secs)
    })
}

/// Largest message payload (log-uniform sizes up to it).
const MAX_MESSAGE: usize = 1 << 16;

/// Frame overhead: length before, checksum after.
const FRAME_OVERHEAD: usize = 8;

/// The block we create: 48-byte header area plus two 2 KiB rings.
const OUR_BLOCK_LEN: u64 = 4096 + 48;
/// The rings in it: smaller than most messages.
const OUR_CAPACITY: u32 = 2048;

/// Environment variable that makes `child_process_entry` run a peer.
const CHILD_ENV: &str = "SRB_PA_INTEROP_CHILD";

fn messages() -> u64 {
    match std::env::var("SRB_PA_INTEROP_MESSAGES") {
        Ok(v) => v.parse().expect("SRB_PA_INTEROP_MESSAGES is a number"),
        Err(_) if cfg!(debug_assertions) => 1_000,
        Err(_) => 150_000,
    }
}

// ---------------------------------------------------------------------------
// The FFI surface of libpulsecommon and libpulse (facts from PulseAudio's
// public headers: srbchannel.h, memblock.h, mem.h, mainloop.h).

type Ptr = *mut c_void;

/// `pa_srbchannel_template`: two eventfds and the block, in the server's
/// orientation (`readfd` is what the server waits on).
#[repr(C)]
#[derive(Debug)]
struct Template {
    readfd: c_int,
    writefd: c_int,
    memblock: Ptr,
}

/// `pa_mem_type_t` values.
const PA_MEM_TYPE_SHARED_MEMFD: c_int = 1;
const PA_MEM_TYPE_PRIVATE: c_int = 2;

type SrbCallback = unsafe extern "C" fn(sr: Ptr, userdata: Ptr) -> bool;
/// `pa_memexport_revoke_cb_t`.
type RevokeCallback = unsafe extern "C" fn(export: Ptr, block_id: u32, userdata: Ptr);

/// Nothing is ever imported from our export, so nothing is revoked.
unsafe extern "C" fn on_revoke(_export: Ptr, _block_id: u32, _userdata: Ptr) {}

/// The functions we call, resolved once.
struct Pa {
    _pulse: Library,
    _common: Library,
    mainloop_new: unsafe extern "C" fn() -> Ptr,
    mainloop_get_api: unsafe extern "C" fn(Ptr) -> Ptr,
    mainloop_prepare: unsafe extern "C" fn(Ptr, c_int) -> c_int,
    mainloop_poll: unsafe extern "C" fn(Ptr) -> c_int,
    mainloop_dispatch: unsafe extern "C" fn(Ptr) -> c_int,
    mainloop_free: unsafe extern "C" fn(Ptr),
    mempool_new: unsafe extern "C" fn(c_int, usize, bool) -> Ptr,
    mempool_unref: unsafe extern "C" fn(Ptr),
    mempool_get_memfd_fd: unsafe extern "C" fn(Ptr) -> c_int,
    memblock_new_fixed: unsafe extern "C" fn(Ptr, Ptr, usize, bool) -> Ptr,
    memblock_unref: unsafe extern "C" fn(Ptr),
    memblock_acquire: unsafe extern "C" fn(Ptr) -> Ptr,
    memblock_release: unsafe extern "C" fn(Ptr),
    memblock_get_length: unsafe extern "C" fn(Ptr) -> usize,
    memexport_new: unsafe extern "C" fn(Ptr, RevokeCallback, Ptr) -> Ptr,
    memexport_put: unsafe extern "C" fn(
        Ptr,
        Ptr,
        *mut c_int,
        *mut u32,
        *mut u32,
        *mut usize,
        *mut usize,
    ) -> c_int,
    memexport_free: unsafe extern "C" fn(Ptr),
    srbchannel_new: unsafe extern "C" fn(Ptr, Ptr) -> Ptr,
    srbchannel_new_from_template: unsafe extern "C" fn(Ptr, *mut Template) -> Ptr,
    srbchannel_export: unsafe extern "C" fn(Ptr, *mut Template),
    srbchannel_set_callback: unsafe extern "C" fn(Ptr, Option<SrbCallback>, Ptr),
    srbchannel_read: unsafe extern "C" fn(Ptr, Ptr, usize) -> usize,
    srbchannel_write: unsafe extern "C" fn(Ptr, *const c_void, usize) -> usize,
    srbchannel_free: unsafe extern "C" fn(Ptr),
}

/// Where Debian (and others) put libpulsecommon.
fn find_libpulsecommon() -> PathBuf {
    if let Some(p) = std::env::var_os("SRB_LIBPULSECOMMON") {
        return PathBuf::from(p);
    }
    let dirs = [
        "/usr/lib/x86_64-linux-gnu/pulseaudio",
        "/usr/lib/aarch64-linux-gnu/pulseaudio",
        "/usr/lib/i386-linux-gnu/pulseaudio",
        "/usr/lib64/pulseaudio",
        "/usr/lib/pulseaudio",
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("libpulsecommon-") && name.ends_with(".so") {
                return e.path();
            }
        }
    }
    panic!(
        "libpulsecommon-*.so not found (install Debian's libpulse0 / libpulse-dev, \
         or set SRB_LIBPULSECOMMON)"
    );
}

/// Copies a function pointer out of a library.
///
/// # Safety
/// `T` is the function's true C signature.
unsafe fn sym<T: Copy>(lib: &Library, name: &str) -> T {
    let cname = format!("{name}\0");
    // SAFETY: forwarded: the caller names the symbol's real type. The
    // pointer is copied out; `Pa` keeps the library loaded while it is used.
    match unsafe { lib.get::<T>(cname.as_bytes()) } {
        Ok(s) => *s,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn pa() -> &'static Pa {
    static PA: OnceLock<Pa> = OnceLock::new();
    PA.get_or_init(|| {
        // SAFETY: loading libpulse runs its (and libpulsecommon's)
        // initialisers, which only set up library-internal state.
        let pulse = unsafe { Library::new("libpulse.so.0") }.expect("dlopen libpulse.so.0");
        let path = find_libpulsecommon();
        // SAFETY: as above; it is normally already loaded as libpulse's
        // dependency, and then this only takes a reference.
        let common = unsafe { Library::new(&path) }
            .unwrap_or_else(|e| panic!("dlopen {}: {e}", path.display()));
        // SAFETY: (every `sym` below) the signatures are those of
        // PulseAudio 16's public headers (mainloop.h, memblock.h,
        // srbchannel.h); `pa_mem_type_t` is a C enum (int) and `bool` is C99
        // `_Bool`, ABI-compatible with Rust's `bool`.
        unsafe {
            Pa {
                mainloop_new: sym(&pulse, "pa_mainloop_new"),
                mainloop_get_api: sym(&pulse, "pa_mainloop_get_api"),
                mainloop_prepare: sym(&pulse, "pa_mainloop_prepare"),
                mainloop_poll: sym(&pulse, "pa_mainloop_poll"),
                mainloop_dispatch: sym(&pulse, "pa_mainloop_dispatch"),
                mainloop_free: sym(&pulse, "pa_mainloop_free"),
                mempool_new: sym(&common, "pa_mempool_new"),
                mempool_unref: sym(&common, "pa_mempool_unref"),
                mempool_get_memfd_fd: sym(&common, "pa_mempool_get_memfd_fd"),
                memblock_new_fixed: sym(&common, "pa_memblock_new_fixed"),
                memblock_unref: sym(&common, "pa_memblock_unref"),
                memblock_acquire: sym(&common, "pa_memblock_acquire"),
                memblock_release: sym(&common, "pa_memblock_release"),
                memblock_get_length: sym(&common, "pa_memblock_get_length"),
                memexport_new: sym(&common, "pa_memexport_new"),
                memexport_put: sym(&common, "pa_memexport_put"),
                memexport_free: sym(&common, "pa_memexport_free"),
                srbchannel_new: sym(&common, "pa_srbchannel_new"),
                srbchannel_new_from_template: sym(&common, "pa_srbchannel_new_from_template"),
                srbchannel_export: sym(&common, "pa_srbchannel_export"),
                srbchannel_set_callback: sym(&common, "pa_srbchannel_set_callback"),
                srbchannel_read: sym(&common, "pa_srbchannel_read"),
                srbchannel_write: sym(&common, "pa_srbchannel_write"),
                srbchannel_free: sym(&common, "pa_srbchannel_free"),
                _pulse: pulse,
                _common: common,
            }
        }
    })
}

// ---------------------------------------------------------------------------
// The message stream: seeded, checksummed, verified byte for byte.

#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn fnv1a32(data: &[u8]) -> u32 {
    let mut h = 0x811C_9DC5u32;
    for &b in data {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// Appends message number `index` of the stream `rng` generates to `out`.
fn make_frame(rng: &mut SplitMix64, out: &mut Vec<u8>) {
    // Log-uniform size: pick a power-of-two class, then a size within it.
    let class = rng.next() % 17;
    let len = (1 + rng.next() % (1u64 << class)) as usize;
    let len = len.min(MAX_MESSAGE);
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let mut left = len;
    while left > 0 {
        let word = rng.next().to_le_bytes();
        let n = left.min(8);
        out.extend_from_slice(&word[..n]);
        left -= n;
    }
    let sum = fnv1a32(&out[start + 4..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// The sending half: the frames still to write.
#[derive(Debug)]
struct Tx {
    rng: SplitMix64,
    left: u64,
    buf: Vec<u8>,
    off: usize,
}

impl Tx {
    fn new(seed: u64, count: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
            left: count,
            buf: Vec::with_capacity(MAX_MESSAGE + FRAME_OVERHEAD),
            off: 0,
        }
    }

    /// The bytes to write next (empty when everything was written).
    fn pending(&mut self) -> &[u8] {
        if self.off == self.buf.len() && self.left > 0 {
            self.buf.clear();
            self.off = 0;
            make_frame(&mut self.rng, &mut self.buf);
            self.left -= 1;
        }
        &self.buf[self.off..]
    }

    fn advance(&mut self, n: usize) {
        self.off += n;
    }

    fn done(&self) -> bool {
        self.left == 0 && self.off == self.buf.len()
    }
}

/// The receiving half: reassembles frames and checks each one.
#[derive(Debug)]
struct Rx {
    rng: SplitMix64,
    left: u64,
    cur: Vec<u8>,
    expected: Vec<u8>,
    messages: u64,
    bytes: u64,
}

impl Rx {
    fn new(seed: u64, count: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
            left: count,
            cur: Vec::with_capacity(MAX_MESSAGE + FRAME_OVERHEAD),
            expected: Vec::with_capacity(MAX_MESSAGE + FRAME_OVERHEAD),
            messages: 0,
            bytes: 0,
        }
    }

    fn done(&self) -> bool {
        self.left == 0
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            if self.left == 0 {
                return Err(format!("{} bytes after the last message", data.len()));
            }
            let need = if self.cur.len() < 4 {
                4 - self.cur.len()
            } else {
                let len = u32::from_le_bytes(self.cur[..4].try_into().unwrap()) as usize;
                if len == 0 || len > MAX_MESSAGE {
                    return Err(format!("message {}: bad length {len}", self.messages));
                }
                len + FRAME_OVERHEAD - self.cur.len()
            };
            let n = need.min(data.len());
            self.cur.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.cur.len() >= 4 {
                let len = u32::from_le_bytes(self.cur[..4].try_into().unwrap()) as usize;
                if self.cur.len() == len + FRAME_OVERHEAD {
                    self.check_frame()?;
                }
            }
        }
        Ok(())
    }

    fn check_frame(&mut self) -> Result<(), String> {
        let index = self.messages;
        let body = &self.cur[4..self.cur.len() - 4];
        let sum = u32::from_le_bytes(self.cur[self.cur.len() - 4..].try_into().unwrap());
        if fnv1a32(body) != sum {
            return Err(format!("message {index}: checksum mismatch"));
        }
        self.expected.clear();
        make_frame(&mut self.rng, &mut self.expected);
        if self.cur != self.expected {
            return Err(format!("message {index}: differs from what was sent"));
        }
        self.bytes += body.len() as u64;
        self.messages += 1;
        self.left -= 1;
        self.cur.clear();
        Ok(())
    }
}

/// What one side saw.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    /// Messages received and verified.
    messages: u64,
    /// Payload bytes received.
    bytes: u64,
    /// Sleeps ended by the peer's eventfd write.
    slept: u64,
    /// Waits (ours) that found a post pending and did not sleep.
    pending: u64,
}

// ---------------------------------------------------------------------------
// Our side: srb-core's `pa` layout with srb-linux's eventfds.

type OurChannel = SrbChannel<Producer, Consumer, Eventfd, EventfdWait>;

/// Runs our side until both directions are complete.
fn drive_ours(ch: &mut OurChannel, tx: &mut Tx, rx: &mut Rx) -> Result<Stats, String> {
    let mut buf = vec![0u8; 1 << 16];
    let mut st = Stats::default();
    loop {
        let mut progress = false;
        loop {
            let n = ch.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            rx.feed(&buf[..n])?;
            progress = true;
        }
        while !tx.done() {
            let n = ch.write(tx.pending()).map_err(|e| format!("write: {e}"))?;
            if n == 0 {
                break;
            }
            tx.advance(n);
            progress = true;
        }
        if tx.done() && rx.done() {
            st.messages = rx.messages;
            st.bytes = rx.bytes;
            return Ok(st);
        }
        if !progress {
            match ch.wait(Some(stall())).map_err(|e| format!("wait: {e}"))? {
                Woken::Notified => st.slept += 1,
                Woken::Pending => st.pending += 1,
                Woken::TimedOut => {
                    return Err(format!(
                        "our side: no wake-up for {:?} with {} messages to receive \
                         and {} to send (lost wake-up?)",
                        stall(),
                        rx.left,
                        tx.left
                    ))
                }
            }
        }
    }
}

/// Our channel; with a `watch`, a wait ends in an error once the peer
/// process is gone instead of stalling.
fn our_channel(
    ends: PaEnds,
    notify: Eventfd,
    wait: Eventfd,
    watch: Option<PeerWatch>,
) -> OurChannel {
    SrbChannel::new(ends, notify, EventfdWait::new(wait, watch))
}

// ---------------------------------------------------------------------------
// PulseAudio's side: a pa_mainloop on this thread and a srbchannel callback.

/// State the srbchannel callback works on.
struct PaSide {
    tx: Tx,
    rx: Rx,
    buf: Vec<u8>,
    error: Option<String>,
}

/// The srbchannel callback: read everything, write what fits.
///
/// # Safety
/// `userdata` is the `PaSide` that `run_pa_loop` registered, used by no one
/// else while the main loop dispatches; `sr` is the live channel.
unsafe extern "C" fn on_srbchannel(sr: Ptr, userdata: Ptr) -> bool {
    // SAFETY: see the function's contract.
    let side = unsafe { &mut *userdata.cast::<PaSide>() };
    let pa = pa();
    loop {
        // SAFETY: `sr` is live; the buffer is ours and `buf.len()` long.
        let n = unsafe { (pa.srbchannel_read)(sr, side.buf.as_mut_ptr().cast(), side.buf.len()) };
        if n == 0 {
            break;
        }
        let (rx, buf) = (&mut side.rx, &side.buf);
        if let Err(e) = rx.feed(&buf[..n]) {
            side.error = Some(format!("PulseAudio side: {e}"));
            return false;
        }
    }
    while !side.tx.done() {
        let p = side.tx.pending();
        // SAFETY: `sr` is live; `p` is valid for `p.len()` bytes.
        let n = unsafe { (pa.srbchannel_write)(sr, p.as_ptr().cast(), p.len()) };
        if n == 0 {
            break;
        }
        side.tx.advance(n);
    }
    true
}

/// Runs PulseAudio's main loop until both directions are complete.
///
/// # Safety
/// `m` is a live `pa_mainloop` on this thread and `sr` a live srbchannel
/// created on it.
unsafe fn run_pa_loop(m: Ptr, sr: Ptr, side: &mut PaSide) -> Result<Stats, String> {
    let pa = pa();
    let mut st = Stats::default();
    let ud: *mut PaSide = side;
    // SAFETY: `sr` is live; the callback's userdata is `side`, which
    // outlives the registration (removed below before returning).
    unsafe { (pa.srbchannel_set_callback)(sr, Some(on_srbchannel), ud.cast()) };
    let result = loop {
        // SAFETY: reading the side between dispatches: the callback only
        // runs inside `mainloop_dispatch` on this thread.
        let s = unsafe { &*ud };
        if let Some(e) = &s.error {
            break Err(e.clone());
        }
        if s.tx.done() && s.rx.done() {
            st.messages = s.rx.messages;
            st.bytes = s.rx.bytes;
            break Ok(st);
        }
        let started = Instant::now();
        // SAFETY: `m` is live and on this thread. The timeout is in µs.
        let ready = unsafe {
            if (pa.mainloop_prepare)(m, stall().as_micros() as c_int) < 0 {
                break Err("pa_mainloop_prepare failed".into());
            }
            let ready = (pa.mainloop_poll)(m);
            if ready < 0 || (pa.mainloop_dispatch)(m) < 0 {
                break Err("pa_mainloop_poll/dispatch failed".into());
            }
            ready
        };
        if ready > 0 {
            // poll() found PulseAudio's eventfd readable: it slept (or was
            // about to) and our side woke it.
            st.slept += 1;
        } else if started.elapsed() >= stall() {
            break Err(format!(
                "PulseAudio side: no wake-up for {:?} (lost wake-up?)",
                stall()
            ));
        }
    };
    // SAFETY: unregisters the callback; `sr` is live.
    unsafe { (pa.srbchannel_set_callback)(sr, None, std::ptr::null_mut()) };
    result
}

/// A main loop and its API table.
struct Mainloop(Ptr);

impl Mainloop {
    fn new() -> Self {
        // SAFETY: no arguments; returns a new main loop or null.
        let m = unsafe { (pa().mainloop_new)() };
        assert!(!m.is_null(), "pa_mainloop_new failed");
        Self(m)
    }

    fn api(&self) -> Ptr {
        // SAFETY: the main loop is live.
        unsafe { (pa().mainloop_get_api)(self.0) }
    }
}

impl Drop for Mainloop {
    fn drop(&mut self) {
        // SAFETY: every event of this loop was freed with its channel.
        unsafe { (pa().mainloop_free)(self.0) }
    }
}

/// PulseAudio as the *client*: adopts the block we created (at `base`,
/// `len` bytes) with the template's two eventfds (which it takes over and
/// closes), and runs until both directions are complete.
fn pa_client(
    base: NonNull<u8>,
    len: usize,
    readfd: OwnedFd,
    writefd: OwnedFd,
    seeds: (u64, u64),
    count: u64,
) -> Result<Stats, String> {
    let pa = pa();
    let ml = Mainloop::new();
    // SAFETY: a private pool only to own the fixed block's bookkeeping;
    // arguments per memblock.h.
    let pool = unsafe { (pa.mempool_new)(PA_MEM_TYPE_PRIVATE, 1 << 17, true) };
    assert!(!pool.is_null(), "pa_mempool_new failed");
    // SAFETY: `base..base + len` stays mapped until this function returns
    // (the caller's mapping); PulseAudio does not free fixed memory.
    let block = unsafe { (pa.memblock_new_fixed)(pool, base.as_ptr().cast(), len, false) };
    assert!(!block.is_null(), "pa_memblock_new_fixed failed");
    let mut t = Template {
        readfd: readfd.into_raw_fd(),
        writefd: writefd.into_raw_fd(),
        memblock: block,
    };
    // SAFETY: the template holds a live block and two eventfds whose
    // ownership passes to PulseAudio's fdsems (closed by srbchannel_free).
    let sr = unsafe { (pa.srbchannel_new_from_template)(ml.api(), &mut t) };
    assert!(!sr.is_null(), "pa_srbchannel_new_from_template failed");
    // SAFETY: the channel took its own reference to the block.
    unsafe { (pa.memblock_unref)(block) };
    let mut side = PaSide {
        tx: Tx::new(seeds.1, count),
        rx: Rx::new(seeds.0, count),
        buf: vec![0u8; 1 << 16],
        error: None,
    };
    // SAFETY: `ml` and `sr` are live and on this thread.
    let r = unsafe { run_pa_loop(ml.0, sr, &mut side) };
    // SAFETY: frees the channel (its events, fdsems and block reference),
    // then the pool, whose last block is gone.
    unsafe {
        (pa.srbchannel_free)(sr);
        (pa.mempool_unref)(pool);
    }
    r
}

/// PulseAudio as the *server*: what it exports for the client.
struct PaServer {
    ml: Mainloop,
    pool: Ptr,
    export: Ptr,
    sr: Ptr,
    /// The block's data and length in this process.
    base: NonNull<u8>,
    len: usize,
    /// Where the block sits in the pool's memfd.
    offset: usize,
    /// The pool's memfd (owned by the pool).
    memfd: c_int,
    /// The eventfds (owned by PulseAudio's fdsems): server waits on `readfd`.
    readfd: c_int,
    writefd: c_int,
}

impl PaServer {
    /// `pa_srbchannel_new` on a memfd-backed pool, exported as the
    /// native protocol does it.
    fn new() -> Self {
        let pa = pa();
        let ml = Mainloop::new();
        // SAFETY: a global (not per-client) memfd pool of 16 slots, so that
        // pa_mempool_get_memfd_fd may be asked for its fd.
        let pool = unsafe { (pa.mempool_new)(PA_MEM_TYPE_SHARED_MEMFD, 1 << 20, false) };
        assert!(!pool.is_null(), "pa_mempool_new failed");
        // SAFETY: live main loop and pool.
        let sr = unsafe { (pa.srbchannel_new)(ml.api(), pool) };
        assert!(!sr.is_null(), "pa_srbchannel_new failed");
        let mut t = Template {
            readfd: -1,
            writefd: -1,
            memblock: std::ptr::null_mut(),
        };
        // SAFETY: live channel; fills the template (no ownership moves).
        unsafe { (pa.srbchannel_export)(sr, &mut t) };
        // SAFETY: a memexport of the live pool; the callback ignores its
        // arguments.
        let export = unsafe { (pa.memexport_new)(pool, on_revoke, std::ptr::null_mut()) };
        assert!(!export.is_null(), "pa_memexport_new failed");
        let (mut ty, mut id, mut shm_id, mut offset, mut size) = (0, 0u32, 0u32, 0usize, 0usize);
        // SAFETY: live export and block from its pool; out-pointers valid.
        let rc = unsafe {
            (pa.memexport_put)(
                export,
                t.memblock,
                &mut ty,
                &mut id,
                &mut shm_id,
                &mut offset,
                &mut size,
            )
        };
        assert_eq!(rc, 0, "pa_memexport_put failed");
        assert_eq!(ty, PA_MEM_TYPE_SHARED_MEMFD);
        // SAFETY: the channel keeps the block acquired for its lifetime;
        // this acquires it once more (released in `drop`) to learn the
        // address, and the length is fixed.
        let (data, len) = unsafe {
            (
                (pa.memblock_acquire)(t.memblock),
                (pa.memblock_get_length)(t.memblock),
            )
        };
        assert_eq!(len, size);
        // SAFETY: a global memfd pool (asserted by PulseAudio).
        let memfd = unsafe { (pa.mempool_get_memfd_fd)(pool) };
        Self {
            ml,
            pool,
            export,
            sr,
            base: NonNull::new(data.cast()).expect("block address"),
            len,
            offset,
            memfd,
            readfd: t.readfd,
            writefd: t.writefd,
        }
    }

    /// Runs PulseAudio's side until both directions are complete.
    fn run(&self, seeds: (u64, u64), count: u64) -> Result<Stats, String> {
        let mut side = PaSide {
            tx: Tx::new(seeds.0, count),
            rx: Rx::new(seeds.1, count),
            buf: vec![0u8; 1 << 16],
            error: None,
        };
        // SAFETY: `ml` and `sr` are live and were created on this thread.
        unsafe { run_pa_loop(self.ml.0, self.sr, &mut side) }
    }

    /// Borrows one of PulseAudio's descriptors (to send or duplicate it).
    fn fd(&self, fd: c_int) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by the pool or a fdsem of this server and
        // stays open while `self` lives.
        unsafe { BorrowedFd::borrow_raw(fd) }
    }
}

impl Drop for PaServer {
    fn drop(&mut self) {
        let pa = pa();
        // SAFETY: tears down in reverse order of creation; nothing uses the
        // block after this (the caller waited for the peer to finish).
        unsafe {
            let mut t = Template {
                readfd: -1,
                writefd: -1,
                memblock: std::ptr::null_mut(),
            };
            (pa.srbchannel_export)(self.sr, &mut t);
            (pa.memblock_release)(t.memblock);
            (pa.memexport_free)(self.export);
            (pa.srbchannel_free)(self.sr);
            (pa.mempool_unref)(self.pool);
        }
    }
}

/// Our block: a sealed memfd with srb-core's `pa` server header.
struct OurServer {
    memfd: SealedMemfd,
    map: std::sync::Arc<srb_linux::mapping::SharedMapping>,
    ends: Option<PaEnds>,
    /// The eventfd we wait on (`read_semdata`'s) and the one PA waits on.
    ours: Eventfd,
    theirs: Eventfd,
}

impl OurServer {
    fn new() -> Self {
        let memfd = SealedMemfd::create("srb-pa-interop", OUR_BLOCK_LEN).expect("memfd");
        let map = memfd.map().expect("map");
        // SAFETY: `map` is kept in `self` for as long as the ends live, and
        // the block is only reached through srb-core (and, in the peer,
        // PulseAudio).
        let block = unsafe { map.block(0, map.len()) }.expect("block");
        let g = Geometry {
            capacity: OUR_CAPACITY,
            readbuf_offset: pa::RINGS_START as u32,
            writebuf_offset: pa::RINGS_START as u32 + OUR_CAPACITY,
        };
        // SAFETY: fresh block, not shared yet; the only server ends.
        let (_, ends) = unsafe { pa::init_server_with(block, g) }.expect("init_server");
        Self {
            memfd,
            map,
            ends: Some(ends),
            ours: Eventfd::new().expect("eventfd"),
            theirs: Eventfd::new().expect("eventfd"),
        }
    }

    /// Runs our side; `self` (the mapping) must outlive the peer's use.
    fn run(
        &mut self,
        seeds: (u64, u64),
        count: u64,
        watch: Option<PeerWatch>,
    ) -> Result<Stats, String> {
        let ends = self.ends.take().expect("ends");
        let notify = self.theirs.try_clone().expect("dup");
        let wait = self.ours.try_clone().expect("dup");
        let mut ch = our_channel(ends, notify, wait, watch);
        let r = drive_ours(
            &mut ch,
            &mut Tx::new(seeds.0, count),
            &mut Rx::new(seeds.1, count),
        );
        drop(ch);
        r
    }
}

fn report(what: &str, count: u64, elapsed: Duration, ours: Stats, theirs: Stats) {
    eprintln!(
        "{what}: {count} messages each way in {elapsed:.2?} ({:.1} MB received by us, \
         {:.1} MB by PulseAudio); our side slept {} times ({} pending), PulseAudio's {} times",
        ours.bytes as f64 / 1e6,
        theirs.bytes as f64 / 1e6,
        ours.slept,
        ours.pending,
        theirs.slept,
    );
    assert_eq!(ours.messages, count);
    assert_eq!(theirs.messages, count);
    // Both sides really slept on their eventfds at least once.
    assert!(ours.slept > 0, "{what}: our side never slept");
    assert!(theirs.slept > 0, "{what}: PulseAudio's side never slept");
}

// ---------------------------------------------------------------------------
// Two threads.

#[test]
fn ours_serve_pa_threads() {
    let count = messages();
    let mut server = OurServer::new();
    let base = server.map.base();
    let len = server.map.len();
    let readfd = server.ours.try_clone().expect("dup").into_fd();
    let writefd = server.theirs.try_clone().expect("dup").into_fd();
    let base_addr = base.as_ptr() as usize;
    let start = Instant::now();
    let seeds = (11, 12);
    let pa_thread = std::thread::spawn(move || {
        let base = NonNull::new(base_addr as *mut u8).expect("base");
        pa_client(base, len, readfd, writefd, seeds, count)
    });
    let ours = server.run(seeds, count, None);
    // `server` (the mapping PulseAudio's thread reads) lives until the join.
    let theirs = pa_thread.join().expect("PulseAudio thread panicked");
    drop(server);
    let elapsed = start.elapsed();
    report(
        "srb-core server, PulseAudio client, threads",
        count,
        elapsed,
        ours.expect("our side"),
        theirs.expect("PulseAudio side"),
    );
}

#[test]
fn pa_serves_ours_threads() {
    let count = messages();
    let seeds = (21, 22);
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let start = Instant::now();
    let pa_thread = std::thread::spawn(move || {
        let server = PaServer::new();
        let read = rustix::io::fcntl_dupfd_cloexec(server.fd(server.readfd), 0).expect("dup");
        let write = rustix::io::fcntl_dupfd_cloexec(server.fd(server.writefd), 0).expect("dup");
        tx.send((server.base.as_ptr() as usize, server.len, read, write))
            .expect("send");
        let r = server.run(seeds, count);
        // Keep the block until our side is done with it.
        let _ = done_rx.recv();
        drop(server);
        r
    });
    let (addr, len, read, write) = rx.recv().expect("PulseAudio server set up");
    let ours = {
        let base = NonNull::new(addr as *mut u8).expect("base");
        // SAFETY: PulseAudio's thread keeps the block mapped and acquired
        // until `done_tx` fires, after our channel is gone; we form no
        // references into it.
        let block = unsafe { Block::new(base, len) };
        // SAFETY: the only client ends of this block.
        let (_, ends) = unsafe { pa::adopt_client(block) }.expect("adopt PulseAudio's block");
        // Client: posts the server's read semaphore, waits on its write one.
        let mut ch = our_channel(
            ends,
            Eventfd::import(read).expect("eventfd"),
            Eventfd::import(write).expect("eventfd"),
            None,
        );
        drive_ours(
            &mut ch,
            &mut Tx::new(seeds.1, count),
            &mut Rx::new(seeds.0, count),
        )
    };
    done_tx.send(()).expect("PulseAudio thread alive");
    let theirs = pa_thread.join().expect("PulseAudio thread panicked");
    report(
        "PulseAudio server, srb-core client, threads",
        count,
        start.elapsed(),
        ours.expect("our side"),
        theirs.expect("PulseAudio side"),
    );
}

// ---------------------------------------------------------------------------
// Two processes: this binary again, as `child_process_entry`.

/// A private directory (0700) for the listening socket, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters, nothing is published.
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("srb-pa-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Spawns this test binary as the PulseAudio peer in `role` and returns
/// the child and our end of its connection.
fn spawn_child(role: &str, count: u64) -> (std::process::Child, ScmStream, TempDir) {
    let dir = TempDir::new(role);
    let rt = RuntimeDir::open(&dir.0).expect("runtime dir");
    let listener = Listener::bind(&rt, "pa").expect("listen");
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, role)
        .env("SRB_PA_INTEROP_MESSAGES", count.to_string())
        .env(
            "SRB_PA_INTEROP_SOCKET",
            listener.path().expect("bound path"),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn child");
    let (stream, creds) = listener.accept().expect("accept");
    assert_eq!(creds.uid, rustix::process::geteuid());
    (child, stream, dir)
}

/// Sends `bytes` with the memfd, then one byte with the two eventfds (a
/// frame carries at most two fds); [`recv_three`] takes them.
fn send_three(stream: &ScmStream, bytes: &[u8], [memfd, a, b]: [BorrowedFd<'_>; 3]) {
    stream.send(bytes, &[memfd], false).expect("send the block");
    stream
        .send(&[0], &[a, b], false)
        .expect("send the eventfds");
}

/// Receives what [`send_three`] sent: fills `bytes`, returns the memfd and
/// the two eventfds.
fn recv_three(stream: &mut ScmStream, bytes: &mut [u8]) -> [OwnedFd; 3] {
    stream.recv_exact(bytes, Some(stall())).expect("block");
    let mut memfd = stream.claim_exact(&[FdKind::Memfd]).expect("memfd");
    let mut one = [0u8; 1];
    stream
        .recv_exact(&mut one, Some(stall()))
        .expect("eventfds");
    let mut efds = stream
        .claim_exact(&[FdKind::Eventfd, FdKind::Eventfd])
        .expect("two eventfds");
    let write = efds.pop().expect("eventfd");
    let read = efds.pop().expect("eventfd");
    [memfd.pop().expect("memfd"), read, write]
}

fn stats_bytes(s: &Stats) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&s.messages.to_le_bytes());
    b[8..16].copy_from_slice(&s.bytes.to_le_bytes());
    b[16..].copy_from_slice(&s.slept.to_le_bytes());
    b
}

fn stats_from(b: &[u8; 24]) -> Stats {
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    Stats {
        messages: word(0),
        bytes: word(8),
        slept: word(16),
        pending: 0,
    }
}

/// Receives the child's stats, or its error text.
fn recv_result(stream: &mut ScmStream) -> Result<Stats, String> {
    let mut tag = [0u8; 1];
    stream
        .recv_exact(&mut tag, Some(stall()))
        .map_err(|e| e.to_string())?;
    if tag[0] == 0 {
        let mut b = [0u8; 24];
        stream
            .recv_exact(&mut b, Some(stall()))
            .map_err(|e| e.to_string())?;
        Ok(stats_from(&b))
    } else {
        let mut len = [0u8; 4];
        stream
            .recv_exact(&mut len, Some(stall()))
            .map_err(|e| e.to_string())?;
        let mut msg = vec![0u8; u32::from_le_bytes(len) as usize];
        stream
            .recv_exact(&mut msg, Some(stall()))
            .map_err(|e| e.to_string())?;
        Err(String::from_utf8_lossy(&msg).into_owned())
    }
}

fn send_result(stream: &ScmStream, r: &Result<Stats, String>) {
    match r {
        Ok(s) => {
            stream.send(&[0], &[], false).expect("send");
            stream.send(&stats_bytes(s), &[], false).expect("send");
        }
        Err(e) => {
            stream.send(&[1], &[], false).expect("send");
            stream
                .send(&(e.len() as u32).to_le_bytes(), &[], false)
                .expect("send");
            stream.send(e.as_bytes(), &[], false).expect("send");
        }
    }
}

#[test]
fn ours_serve_pa_processes() {
    let count = messages();
    let seeds = (31, 32);
    let mut server = OurServer::new();
    let (mut child, mut stream, _dir) = spawn_child("pa-client", count);
    // The block and the two eventfds, in the server's template orientation:
    // PulseAudio's client posts `ours` and waits on `theirs`.
    send_three(
        &stream,
        &OUR_BLOCK_LEN.to_le_bytes(),
        [
            server.memfd.as_fd(),
            server.ours.as_fd(),
            server.theirs.as_fd(),
        ],
    );
    let start = Instant::now();
    let ours = server.run(seeds, count, Some(stream.watch()));
    let theirs = recv_result(&mut stream);
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "PulseAudio child failed: {status}");
    report(
        "srb-core server, PulseAudio client, processes",
        count,
        start.elapsed(),
        ours.expect("our side"),
        theirs.expect("PulseAudio side"),
    );
}

#[test]
fn pa_serves_ours_processes() {
    let count = messages();
    let seeds = (41, 42);
    let (mut child, mut stream, _dir) = spawn_child("pa-server", count);
    let mut geo = [0u8; 16];
    let [memfd, read, write] = recv_three(&mut stream, &mut geo);
    let offset = u64::from_le_bytes(geo[..8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(geo[8..16].try_into().unwrap()) as usize;
    let map = RawMapping::new(&memfd, offset + len);
    let start = Instant::now();
    let ours = {
        let base = NonNull::new(map.ptr.as_ptr().wrapping_add(offset)).expect("base");
        // SAFETY: `map` outlives the channel; PulseAudio's pool memfd is
        // not sealed, but the child keeps it at its size until it exits, and
        // we form no references into it.
        let block = unsafe { Block::new(base, len) };
        // SAFETY: the only client ends of this block.
        let (_, ends) = unsafe { pa::adopt_client(block) }.expect("adopt PulseAudio's block");
        let mut ch = our_channel(
            ends,
            Eventfd::import(read).expect("eventfd"),
            Eventfd::import(write).expect("eventfd"),
            Some(stream.watch()),
        );
        drive_ours(
            &mut ch,
            &mut Tx::new(seeds.1, count),
            &mut Rx::new(seeds.0, count),
        )
    };
    // Tell the child it may tear down.
    stream.send(&[0], &[], false).expect("send done");
    let theirs = recv_result(&mut stream);
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "PulseAudio child failed: {status}");
    drop(map);
    report(
        "PulseAudio server, srb-core client, processes",
        count,
        start.elapsed(),
        ours.expect("our side"),
        theirs.expect("PulseAudio side"),
    );
}

/// A shared mapping of PulseAudio's (unsealed) pool memfd, unmapped on drop.
struct RawMapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl RawMapping {
    fn new(fd: &OwnedFd, len: usize) -> Self {
        // SAFETY: a fresh shared mapping at an address the kernel picks; it
        // is only reached through raw pointers (srb-core).
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )
        }
        .expect("mmap PulseAudio's pool");
        Self {
            ptr: NonNull::new(p.cast()).expect("mmap address"),
            len,
        }
    }
}

impl Drop for RawMapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping; every channel built on it is gone.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The child's half of the two-process runs. A no-op unless this binary was
/// spawned by one of them.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let count = messages();
    let path = std::env::var_os("SRB_PA_INTEROP_SOCKET").expect("socket path");
    let mut stream = listener::connect(Path::new(&path)).expect("connect");
    match role.as_str() {
        "pa-client" => {
            let mut len = [0u8; 8];
            let [memfd, read, write] = recv_three(&mut stream, &mut len);
            let len = u64::from_le_bytes(len);
            let memfd = SealedMemfd::import(memfd, len).expect("import our memfd");
            let map = memfd.map().expect("map");
            let r = pa_client(map.base(), map.len(), read, write, (31, 32), count);
            drop(map);
            send_result(&stream, &r);
            r.expect("PulseAudio client");
        }
        "pa-server" => {
            let server = PaServer::new();
            let geo: Vec<u8> = [server.offset as u64, server.len as u64]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            send_three(
                &stream,
                &geo,
                [
                    server.fd(server.memfd),
                    server.fd(server.readfd),
                    server.fd(server.writefd),
                ],
            );
            let r = server.run((41, 42), count);
            let mut done = [0u8; 1];
            // The parent is done with the block (or gone).
            let _ = stream.recv_exact(&mut done, Some(stall()));
            drop(server);
            send_result(&stream, &r);
            r.expect("PulseAudio server");
        }
        other => panic!("unknown role {other}"),
    }
}
