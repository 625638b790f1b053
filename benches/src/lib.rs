//! # srb-benches: moving messages through srb, PulseAudio's ring, rtrb and heapless
//!
//! The benchmark (`benches/throughput.rs`, see `README.md` next to this
//! crate's `Cargo.toml`) times the functions in this library, and the unit
//! tests below run the very same code paths on a few thousand messages, so
//! `cargo test --workspace` keeps them honest without timing anything.
//!
//! Every transfer is one producer thread and one consumer thread, pinned to
//! two different CPUs where possible ([`cpu_pair`]), both spinning (with a
//! short spin, then `yield_now`, so that an oversubscribed machine still
//! makes progress), moving `count` messages of `msg_size` bytes through a
//! ring of [`RING_BYTES`] bytes:
//!
//! | [`Ring`] | ring | API used |
//! |---|---|---|
//! | `srb` | `srb_core::layout::srb`, creator → attacher | [`RingProducer::write`] / [`RingConsumer::read`] |
//! | `pa` | `srb_core::layout::pa`, server → client | [`RingProducer::write`] / [`RingConsumer::read`] |
//! | `rtrb` | `rtrb::RingBuffer<u8>` | `std::io::Write` / `std::io::Read` |
//! | `heapless` | `heapless::spsc::Queue<[u8; N], _>` | `enqueue` / `dequeue` of whole messages |
//!
//! The byte rings get one call per message, looping on partial transfers
//! exactly as a real user must. `heapless` is an *element* queue: each
//! message is one `[u8; N]` element, copied in and out whole.
//!
//! ## What is verified
//!
//! Message `i` carries `i as u8` in its first byte and a tag derived from
//! `i >> 8` in its last. The consumer checks the first byte of every message
//! (a lost, duplicated or misframed message fails it) and returns the sum of
//! first and last bytes, which the caller compares with
//! [`expected_checksum`]. [`transfer_full_check`] additionally fills and
//! checks every byte of every message (for tests; too slow to benchmark).

use std::alloc::{self, Layout};
use std::fmt;
use std::hint::spin_loop;
use std::io::{self, Read, Write};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use heapless::spsc::Queue;
use srb_core::{layout, Block, RingConsumer, RingProducer};

/// Capacity of every ring, in bytes (a power of two, as `srb` requires).
///
/// `pa` gets a block whose PulseAudio geometry gives exactly this capacity;
/// `heapless` gets `RING_BYTES / msg_size` slots, of which it uses one less.
pub const RING_BYTES: usize = 64 * 1024;

/// The message sizes the benchmark compares (and `heapless` supports).
pub const MESSAGE_SIZES: [usize; 3] = [16, 64, 1024];

/// The smallest message: the first and the last byte must be distinct.
pub const MIN_MESSAGE: usize = 2;

/// Payload bytes moved per benchmark iteration, whatever the message size.
pub const BYTES_PER_ITER: usize = 1 << 20;

/// Messages per benchmark iteration for messages of `msg_size` bytes.
pub const fn messages_per_iter(msg_size: usize) -> u64 {
    (BYTES_PER_ITER / msg_size) as u64
}

/// A short label for a message size: `16B`, `64B`, `1KiB`.
pub fn size_label(msg_size: usize) -> String {
    if msg_size >= 1024 && msg_size.is_multiple_of(1024) {
        format!("{}KiB", msg_size / 1024)
    } else {
        format!("{msg_size}B")
    }
}

/// The rings being compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// `srb_core`'s own layout (cached peer positions, separate lines).
    Srb,
    /// `srb_core`'s PulseAudio layout (one shared `SeqCst` count).
    Pa,
    /// `rtrb::RingBuffer<u8>` through `std::io::{Write, Read}`.
    Rtrb,
    /// `heapless::spsc::Queue` of `[u8; msg_size]` elements.
    Heapless,
}

impl Ring {
    /// All rings, in the order the benchmark and the table use.
    pub const ALL: [Ring; 4] = [Ring::Srb, Ring::Pa, Ring::Rtrb, Ring::Heapless];

    /// The benchmark name.
    pub const fn name(self) -> &'static str {
        match self {
            Ring::Srb => "srb",
            Ring::Pa => "pa",
            Ring::Rtrb => "rtrb",
            Ring::Heapless => "heapless",
        }
    }
}

/// Why a transfer did not deliver every message intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferError {
    /// A received byte is not what the producer sent.
    Mismatch {
        /// The message's sequence number.
        message: u64,
        /// The byte's offset in the message.
        offset: usize,
        /// What arrived.
        found: u8,
        /// What was sent.
        expected: u8,
    },
    /// The producer stopped before sending everything. It only does so by
    /// panicking, and then the transfer re-raises that panic instead.
    ProducerStopped,
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransferError::Mismatch {
                message,
                offset,
                found,
                expected,
            } => write!(
                f,
                "message {message}, byte {offset}: found {found:#04x}, expected {expected:#04x}"
            ),
            TransferError::ProducerStopped => f.write_str("the producer stopped early"),
        }
    }
}

impl std::error::Error for TransferError {}

/// Moves `count` messages of `msg_size` bytes through `ring`, checking the
/// first byte of each; returns the checksum (see [`expected_checksum`]).
///
/// # Panics
/// If `msg_size < MIN_MESSAGE`, or for [`Ring::Heapless`] if `msg_size` is
/// not one of [`MESSAGE_SIZES`]; if a ring reports corruption.
pub fn transfer(ring: Ring, msg_size: usize, count: u64) -> Result<u64, TransferError> {
    dispatch::<false>(ring, msg_size, count)
}

/// [`transfer`], with every byte of every message patterned and checked.
///
/// # Panics
/// As [`transfer`].
pub fn transfer_full_check(ring: Ring, msg_size: usize, count: u64) -> Result<u64, TransferError> {
    dispatch::<true>(ring, msg_size, count)
}

/// [`transfer`] through the `srb` layout.
pub fn transfer_srb(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    srb::<false>(msg_size, count)
}

/// [`transfer`] through the PulseAudio (`pa`) layout.
pub fn transfer_pa(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    pa::<false>(msg_size, count)
}

/// [`transfer`] through `rtrb`.
pub fn transfer_rtrb(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    rtrb::<false>(msg_size, count)
}

/// [`transfer`] through `heapless`.
pub fn transfer_heapless(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    heapless::<false>(msg_size, count)
}

/// The checksum a correct transfer of `count` messages returns:
/// the sum over `i < count` of the first and last bytes of message `i`.
///
/// Closed form (`count` may be billions); the tests check it against the
/// plain sum.
pub fn expected_checksum(count: u64) -> u64 {
    // First bytes: `i mod 256`; each full cycle of 256 sums to 32640.
    const CYCLE: u64 = 255 * 256 / 2;
    let (cycles, rest) = (count / 256, count % 256);
    let firsts = cycles * CYCLE + rest * rest.saturating_sub(1) / 2;
    // Last bytes: constant over each block of 256 messages, `block as u8 ^
    // 0x5a`; XOR with a constant permutes 0..=255, so 256 blocks sum to 32640.
    let (blocks, partial) = (cycles, rest);
    let mut lasts = (blocks / 256) * CYCLE * 256;
    lasts += (0..blocks % 256)
        .map(|b| u64::from(last_byte(b << 8)) * 256)
        .sum::<u64>();
    lasts += partial * u64::from(last_byte(blocks << 8));
    firsts + lasts
}

// ---------------------------------------------------------------------------
// The message pattern.

/// What the producer leaves in a message's middle bytes in stamp mode.
const FILL: u8 = 0xa5;

fn first_byte(i: u64) -> u8 {
    i as u8
}

fn last_byte(i: u64) -> u8 {
    ((i >> 8) as u8) ^ 0x5a
}

fn body_byte(i: u64, j: usize) -> u8 {
    (i as u8).wrapping_mul(7).wrapping_add(j as u8)
}

/// Writes message `i`'s pattern into `msg`: first and last bytes always,
/// the body too if `FULL` (otherwise it keeps the `FILL` it started with).
#[inline]
fn stamp<const FULL: bool>(msg: &mut [u8], i: u64) {
    let last = msg.len() - 1;
    if FULL {
        for (j, b) in msg.iter_mut().enumerate() {
            *b = body_byte(i, j);
        }
    }
    msg[0] = first_byte(i);
    msg[last] = last_byte(i);
}

/// Checks message `i` (first byte, or every byte if `FULL`) and returns its
/// contribution to the checksum.
#[inline]
fn verify<const FULL: bool>(msg: &[u8], i: u64) -> Result<u64, TransferError> {
    let last = msg.len() - 1;
    let check = |offset: usize, expected: u8| {
        let found = msg[offset];
        if found == expected {
            Ok(())
        } else {
            Err(TransferError::Mismatch {
                message: i,
                offset,
                found,
                expected,
            })
        }
    };
    check(0, first_byte(i))?;
    if FULL {
        for j in 1..last {
            check(j, body_byte(i, j))?;
        }
        check(last, last_byte(i))?;
    }
    Ok(u64::from(msg[0]) + u64::from(msg[last]))
}

// ---------------------------------------------------------------------------
// Spinning, and not hanging when the other side dies.

/// Spins this many times on an empty/full ring before yielding the CPU.
const SPINS_BEFORE_YIELD: u32 = 128;

struct Backoff<'a> {
    spins: u32,
    stop: &'a AtomicBool,
}

impl<'a> Backoff<'a> {
    fn new(stop: &'a AtomicBool) -> Self {
        Self { spins: 0, stop }
    }

    #[inline]
    fn reset(&mut self) {
        self.spins = 0;
    }

    /// Waits a little; returns `false` if the other side has given up.
    #[inline]
    fn snooze(&mut self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self.spins < SPINS_BEFORE_YIELD {
            self.spins += 1;
            spin_loop();
        } else {
            thread::yield_now();
        }
        true
    }
}

/// Raises `stop` if the thread unwinds, so its peer stops waiting for it.
struct StopOnUnwind<'a>(&'a AtomicBool);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------
// Pinning: the producer and the consumer on two different CPUs.

/// The two CPUs the producer and the consumer run on: the first two this
/// process may use, or `None` (no pinning) if there are fewer, if the OS
/// cannot tell, or if `SRB_BENCH_NO_PIN` is set.
///
/// Unpinned, a scheduler on a busy machine may put both threads on one CPU,
/// where they take turns filling and draining the whole ring without any
/// cross-core traffic: a different (and much faster) benchmark.
pub fn cpu_pair() -> Option<(usize, usize)> {
    static PAIR: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *PAIR.get_or_init(|| {
        if std::env::var_os("SRB_BENCH_NO_PIN").is_some() {
            return None;
        }
        allowed_cpu_pair()
    })
}

#[cfg(target_os = "linux")]
fn allowed_cpu_pair() -> Option<(usize, usize)> {
    use rustix::thread::{sched_getaffinity, CpuSet};
    let set = sched_getaffinity(None).ok()?;
    let mut cpus = (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
    Some((cpus.next()?, cpus.next()?))
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpu_pair() -> Option<(usize, usize)> {
    None
}

/// Pins the calling thread to `cpu`; best effort (a failure leaves it free).
fn pin(cpu: Option<usize>) {
    #[cfg(target_os = "linux")]
    if let Some(cpu) = cpu {
        use rustix::thread::{sched_setaffinity, CpuSet};
        let mut set = CpuSet::new();
        set.set(cpu);
        // `None`: the calling thread.
        let _ = sched_setaffinity(None, &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Joins the consumer, re-raising its panic (the scope then re-raises the
/// producer's, if any).
fn join<T>(h: thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

// ---------------------------------------------------------------------------
// Byte rings: one write call per message (looping on partial writes), one
// read call per message (looping on partial reads).

/// Runs a producer thread calling `write` and a consumer thread calling
/// `read`; each returns the bytes it moved from the front of its slice
/// (0 when the ring is full/empty).
fn run_bytes<const FULL: bool, W, R>(
    msg_size: usize,
    count: u64,
    mut write: W,
    mut read: R,
) -> Result<u64, TransferError>
where
    W: FnMut(&[u8]) -> usize + Send,
    R: FnMut(&mut [u8]) -> usize + Send,
{
    assert!(msg_size >= MIN_MESSAGE, "messages have at least 2 bytes");
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let cpus = cpu_pair();
    thread::scope(|s| {
        s.spawn(move || {
            pin(cpus.map(|c| c.0));
            let _raise = StopOnUnwind(stop);
            let mut backoff = Backoff::new(stop);
            let mut msg = vec![FILL; msg_size];
            for i in 0..count {
                stamp::<FULL>(&mut msg, i);
                let mut sent = 0;
                while sent < msg_size {
                    let n = write(&msg[sent..]);
                    if n == 0 {
                        if !backoff.snooze() {
                            return;
                        }
                    } else {
                        sent += n;
                        backoff.reset();
                    }
                }
            }
        });
        let consumer = s.spawn(move || {
            pin(cpus.map(|c| c.1));
            let _raise = StopOnUnwind(stop);
            let mut backoff = Backoff::new(stop);
            let mut buf = vec![0u8; msg_size];
            let mut sum = 0u64;
            for i in 0..count {
                let mut got = 0;
                while got < msg_size {
                    let n = read(&mut buf[got..]);
                    if n == 0 {
                        if !backoff.snooze() {
                            return Err(TransferError::ProducerStopped);
                        }
                    } else {
                        got += n;
                        backoff.reset();
                    }
                }
                match verify::<FULL>(&buf, i) {
                    Ok(v) => sum = sum.wrapping_add(v),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(sum)
        });
        join(consumer)
    })
}

/// Private, zeroed, 128-byte aligned memory standing in for a shared block.
struct SharedMem {
    base: NonNull<u8>,
    layout: Layout,
}

impl SharedMem {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 128).expect("block layout");
        assert!(layout.size() > 0);
        // SAFETY: `layout` has a non-zero size (asserted above).
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { base, layout }
    }

    /// The block; every ring end built from it must be dropped before `self`.
    fn block(&self) -> Block {
        // SAFETY: `base..base + len` is our live allocation, freed only when
        // `self` drops (after the ring ends, see the callers); no Rust
        // reference into it is ever formed, only `srb_core` touches it.
        unsafe { Block::new(self.base, self.layout.size()) }
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout, freed once.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

fn srb<const FULL: bool>(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    let capacity = RING_BYTES as u32;
    // Declared first, dropped last: after every end built from it.
    let mem = SharedMem::new(layout::srb::block_len(capacity));
    let block = mem.block();
    // SAFETY: a fresh private block; this is its only creator, and the ends
    // are dropped before `mem` (they are moved into `run_bytes`' threads or
    // dropped at the end of this function, before `mem`).
    let (_, creator) = unsafe { layout::srb::create(block, capacity) }.expect("srb create");
    // SAFETY: as above; this is the block's only attacher.
    let (_, attacher) = unsafe { layout::srb::attach(block) }.expect("srb attach");
    let (mut tx, mut rx) = (creator.producer, attacher.consumer);
    debug_assert_eq!(RingProducer::capacity(&tx), RING_BYTES);
    run_bytes::<FULL, _, _>(
        msg_size,
        count,
        move |src| tx.write(src).expect("srb ring corrupt").written,
        move |dst| rx.read(dst).expect("srb ring corrupt").read,
    )
}

fn pa<const FULL: bool>(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    // PulseAudio's geometry: rings after the header rounded up to 8, each
    // half of the rest rounded down to 8, so this gives exactly RING_BYTES.
    let mem = SharedMem::new(layout::pa::RINGS_START + 2 * RING_BYTES);
    let block = mem.block();
    // SAFETY: a fresh private block; this is its only server, and the ends
    // are dropped before `mem` (as in `srb`).
    let (g, server) = unsafe { layout::pa::init_server(block) }.expect("pa init");
    assert_eq!(g.capacity as usize, RING_BYTES);
    // SAFETY: as above; this is the block's only client.
    let (_, client) = unsafe { layout::pa::adopt_client(block) }.expect("pa adopt");
    let (mut tx, mut rx) = (server.producer, client.consumer);
    run_bytes::<FULL, _, _>(
        msg_size,
        count,
        move |src| tx.write(src).expect("pa ring corrupt").written,
        move |dst| rx.read(dst).expect("pa ring corrupt").read,
    )
}

fn rtrb<const FULL: bool>(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u8>::new(RING_BYTES);
    // `WouldBlock` is rtrb's "full"/"empty"; it never returns another error.
    let would_block = |r: io::Result<usize>| match r {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => panic!("rtrb: {e}"),
    };
    run_bytes::<FULL, _, _>(
        msg_size,
        count,
        move |src| would_block(tx.write(src)),
        move |dst| would_block(rx.read(dst)),
    )
}

// ---------------------------------------------------------------------------
// heapless: an element queue of whole messages.

fn heapless<const FULL: bool>(msg_size: usize, count: u64) -> Result<u64, TransferError> {
    match msg_size {
        16 => run_heapless::<FULL, 16, { RING_BYTES / 16 }>(count),
        64 => run_heapless::<FULL, 64, { RING_BYTES / 64 }>(count),
        1024 => run_heapless::<FULL, 1024, { RING_BYTES / 1024 }>(count),
        _ => panic!("heapless is benchmarked for {MESSAGE_SIZES:?}-byte messages only"),
    }
}

/// `N` slots of `M`-byte messages (a `heapless` queue holds `N - 1`).
fn run_heapless<const FULL: bool, const M: usize, const N: usize>(
    count: u64,
) -> Result<u64, TransferError> {
    let mut queue: Box<Queue<[u8; M], N>> = Box::new(Queue::new());
    let (mut tx, mut rx) = queue.split();
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let cpus = cpu_pair();
    thread::scope(|s| {
        s.spawn(move || {
            pin(cpus.map(|c| c.0));
            let _raise = StopOnUnwind(stop);
            let mut backoff = Backoff::new(stop);
            let mut msg = [FILL; M];
            for i in 0..count {
                stamp::<FULL>(&mut msg, i);
                // `enqueue` copies the array in (and hands it back if full).
                while tx.enqueue(msg).is_err() {
                    if !backoff.snooze() {
                        return;
                    }
                }
                backoff.reset();
            }
        });
        let consumer = s.spawn(move || {
            pin(cpus.map(|c| c.1));
            let _raise = StopOnUnwind(stop);
            let mut backoff = Backoff::new(stop);
            let mut sum = 0u64;
            for i in 0..count {
                let msg = loop {
                    // `dequeue` copies the array out.
                    match rx.dequeue() {
                        Some(m) => break m,
                        None if backoff.snooze() => {}
                        None => return Err(TransferError::ProducerStopped),
                    }
                };
                backoff.reset();
                match verify::<FULL>(&msg, i) {
                    Ok(v) => sum = sum.wrapping_add(v),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(sum)
        });
        join(consumer)
    })
}

fn dispatch<const FULL: bool>(
    ring: Ring,
    msg_size: usize,
    count: u64,
) -> Result<u64, TransferError> {
    match ring {
        Ring::Srb => srb::<FULL>(msg_size, count),
        Ring::Pa => pa::<FULL>(msg_size, count),
        Ring::Rtrb => rtrb::<FULL>(msg_size, count),
        Ring::Heapless => heapless::<FULL>(msg_size, count),
    }
}

/// The value at quantile `q` (0..=1) of sorted `sorted`, nearest rank
/// rounded (the DSP round-trip benches).
pub fn quantile_duration(sorted: &[std::time::Duration], q: f64) -> std::time::Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `d` in microseconds.
pub fn us(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum by its definition, one message at a time.
    fn naive_checksum(count: u64) -> u64 {
        (0..count)
            .map(|i| u64::from(first_byte(i)) + u64::from(last_byte(i)))
            .sum()
    }

    #[test]
    fn closed_form_checksum_matches_the_plain_sum() {
        for count in [0, 1, 2, 255, 256, 257, 10_000, 65_535, 65_536, 65_537] {
            assert_eq!(expected_checksum(count), naive_checksum(count), "{count}");
        }
        // Past several wraps of the last byte's block counter.
        assert_eq!(
            expected_checksum(3 * 65_536 + 777),
            naive_checksum(3 * 65_536 + 777)
        );
    }

    /// Enough messages to wrap every ring several times at every size.
    const COUNT: u64 = 10_000;

    #[test]
    fn every_ring_delivers_every_message() {
        let want = expected_checksum(COUNT);
        for size in MESSAGE_SIZES {
            assert_eq!(transfer_srb(size, COUNT), Ok(want), "srb {size}");
            assert_eq!(transfer_pa(size, COUNT), Ok(want), "pa {size}");
            assert_eq!(transfer_rtrb(size, COUNT), Ok(want), "rtrb {size}");
            assert_eq!(transfer_heapless(size, COUNT), Ok(want), "heapless {size}");
        }
    }

    #[test]
    fn every_byte_arrives_intact() {
        let want = expected_checksum(COUNT);
        for size in MESSAGE_SIZES {
            for ring in Ring::ALL {
                assert_eq!(
                    transfer_full_check(ring, size, COUNT),
                    Ok(want),
                    "{} {size}",
                    ring.name()
                );
            }
        }
    }

    #[test]
    fn odd_sizes_split_across_the_wrap() {
        // Sizes that do not divide the capacity, so messages straddle the
        // end of the data area and writes/reads come back partial.
        // A message larger than the ring needs several partial writes.
        let cases = [(2, 2_000), (3, 2_000), (1000, 500), (5000, 100)];
        for (size, count) in cases.into_iter().chain([(RING_BYTES + 7, 8)]) {
            for ring in [Ring::Srb, Ring::Pa, Ring::Rtrb] {
                assert_eq!(
                    transfer_full_check(ring, size, count),
                    Ok(expected_checksum(count)),
                    "{} {size}",
                    ring.name()
                );
            }
        }
    }

    #[test]
    fn a_corrupted_message_is_reported_not_hung_on() {
        // Flip a bit in message 5's first byte through a lying writer: the
        // consumer must report it, and the producer must stop waiting.
        let (mut tx, mut rx) = rtrb::RingBuffer::<u8>::new(64);
        let mut sent = 0usize;
        let r = run_bytes::<false, _, _>(
            8,
            1_000,
            move |src| {
                let mut copy = [0u8; 8];
                let n = src.len();
                copy[..n].copy_from_slice(src);
                if sent == 5 * 8 {
                    copy[0] ^= 1;
                }
                let w = tx.write(&copy[..n]).unwrap_or(0);
                sent += w;
                w
            },
            move |dst| rx.read(dst).unwrap_or(0),
        );
        assert_eq!(
            r,
            Err(TransferError::Mismatch {
                message: 5,
                offset: 0,
                found: 4,
                expected: 5
            })
        );
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(16), "16B");
        assert_eq!(size_label(1024), "1KiB");
        assert_eq!(messages_per_iter(64) * 64, BYTES_PER_ITER as u64);
    }
}
