//! A hostile peer writes every shared word of both layouts: each ring end and
//! semaphore answers with `Corrupt` naming the word (and stays poisoned), or
//! with a spurious wake-up — never a panic, an out-of-bounds copy or a hang.

mod common;

use std::time::Duration;

use srb_core::fdsem::Woken;
use srb_core::layout::{pa, srb};
use srb_core::{
    AttachError, Corrupt, FdsemError, Field, RingConsumer, RingProducer, SpinSignal, WaitDecision,
};

use common::{
    pa_pair, pa_pair_rev, srb_pair, srb_pair_rev, Mem, SRB_TO_ATTACHER_READ, SRB_TO_ATTACHER_WRITE,
    SRB_TO_CREATOR_READ, SRB_TO_CREATOR_WRITE,
};

fn corrupt(field: Field, value: i64) -> Corrupt {
    Corrupt { field, value }
}

const PA_CAP: u32 = 64;

#[test]
fn pa_count_out_of_range_is_corrupt_for_both_ends_and_poisons() {
    for (bad, rev) in [-1i32, PA_CAP as i32 + 1, i32::MIN, i32::MAX, 1 << 30]
        .into_iter()
        .flat_map(|b| [(b, false), (b, true)])
    {
        // Both directions: `write_count` (server→client) and `read_count`.
        let (mem, mut p, mut c, count) = if rev {
            pa_pair_rev(PA_CAP)
        } else {
            pa_pair(PA_CAP)
        };
        assert_eq!(p.write(b"abc").unwrap().written, 3);
        mem.store_i32(count, bad);
        let e = corrupt(Field::Count, i64::from(bad));
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&mut buf), Err(e));
        assert_eq!(c.peek(&mut buf), Err(e), "consumer stays poisoned");
        assert_eq!(c.available(), Err(e));
        assert_eq!(p.write(b"x"), Err(e));
        assert_eq!(p.free(), Err(e));
        // Even after the peer repairs the word, nothing more is trusted.
        mem.store_i32(count, 0);
        assert_eq!(c.read(&mut buf), Err(e));
        assert_eq!(p.write(b"x"), Err(e));
        assert_eq!(buf, [0u8; 16], "no byte was copied out");
    }
}

/// A count raised *between* two writes cannot be told from data the writer
/// put there: it is used space, not corruption. (A count that grows between
/// the writer's load and its own fetch_add is `Corrupt`: that race is
/// tested deterministically by the unit tests in `src/ring/pa.rs`, which
/// fail when the old-value checks are removed; this test does not.)
#[test]
fn pa_count_raised_between_writes_is_used_space() {
    let (mem, mut p, _c, count) = pa_pair(PA_CAP);
    mem.store_i32(count, 0);
    assert!(p.write(&[1; 10]).is_ok());
    // In range, but larger than what this writer ever put there: the next
    // write sees it as used space (harmless) — no corruption claim possible.
    mem.store_i32(count, PA_CAP as i32);
    assert_eq!(p.write(&[1; 10]).unwrap().written, 0);
}

#[test]
fn pa_count_that_shrinks_under_the_reader_is_corrupt() {
    let (mem, mut p, mut c, count) = pa_pair(PA_CAP);
    p.write(&[7; 20]).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap().read, 8);
    // The reader is the only one who subtracts; a count below what it has
    // not yet consumed can only come from a scribbler. -5 is caught on load.
    mem.store_i32(count, -5);
    assert_eq!(c.read(&mut buf), Err(corrupt(Field::Count, -5)));
}

#[test]
fn srb_write_position_out_of_range_is_corrupt() {
    let cap = 64u32;
    for ((desc, bad), rev) in [
        ("beyond capacity", cap + 1),
        ("far ahead", 1 << 31),
        ("behind the reader", u32::MAX),
    ]
    .into_iter()
    .flat_map(|c| [(c, false), (c, true)])
    {
        let ((mem, mut p, mut c), word) = if rev {
            (srb_pair_rev(cap), SRB_TO_CREATOR_WRITE)
        } else {
            (srb_pair(cap, 0), SRB_TO_ATTACHER_WRITE)
        };
        p.write(&[1; 10]).unwrap();
        mem.store_u32(word, bad);
        let mut buf = [0u8; 32];
        let e = corrupt(Field::WritePosition, i64::from(bad));
        assert_eq!(c.read(&mut buf), Err(e), "{desc}");
        assert_eq!(c.peek(&mut buf), Err(e), "{desc}: poisoned");
        assert_eq!(buf, [0u8; 32]);
    }
}

#[test]
fn srb_write_position_moving_backwards_is_corrupt() {
    let (mem, mut p, mut c) = srb_pair(64, 0);
    p.write(&[1; 10]).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(c.read(&mut buf).unwrap().read, 4);
    // 4..10 readable, cached by the consumer; the position moves back to 6.
    mem.store_u32(SRB_TO_ATTACHER_WRITE, 6);
    let mut big = [0u8; 32];
    assert_eq!(c.read(&mut big), Err(corrupt(Field::WritePosition, 6)));
}

#[test]
fn srb_read_position_out_of_range_is_corrupt() {
    let cap = 64u32;
    for (bad, rev) in [11u32, 1 << 31, u32::MAX, 200]
        .into_iter()
        .flat_map(|b| [(b, false), (b, true)])
    {
        let ((mem, mut p, _c), word) = if rev {
            (srb_pair_rev(cap), SRB_TO_CREATOR_READ)
        } else {
            (srb_pair(cap, 0), SRB_TO_ATTACHER_READ)
        };
        p.write(&[1; 10]).unwrap();
        mem.store_u32(word, bad);
        // The producer re-reads the consumer's position after each write.
        let e = corrupt(Field::ReadPosition, i64::from(bad));
        assert_eq!(p.write(&[2; 60]), Err(e));
        assert_eq!(p.free(), Err(e));
    }
}

/// A peer's `wants_space` word is only a hint: any value, even one the
/// protocol never writes, makes the reader report a (spurious) wake-up and
/// nothing else; the ring and the post stay consistent.
#[test]
fn srb_hostile_wants_space_is_only_a_spurious_wake() {
    use common::SRB_CREATOR_WANTS_SPACE;
    for bad in [i32::MIN, -1, 2, i32::MAX] {
        // The creator writes, the attacher reads and checks the creator's
        // `wants_space`.
        let (mem, mut p, mut c) = srb_pair(64, 0);
        p.write(&[5; 10]).unwrap();
        mem.store_i32(SRB_CREATOR_WANTS_SPACE, bad);
        let mut buf = [0u8; 16];
        let out = c.read(&mut buf).unwrap();
        assert_eq!((out.read, out.wake_peer), (10, true), "wants_space = {bad}");
        assert_eq!(&buf[..10], &[5; 10]);
        mem.store_i32(SRB_CREATOR_WANTS_SPACE, 0);
        p.write(&[6; 3]).unwrap();
        let out = c.read(&mut buf).unwrap();
        assert_eq!((out.read, out.wake_peer), (3, false));
    }
}

// --- fdsem -----------------------------------------------------------------

/// Offsets of the fdsem words a `pa`-layout server waits on / posts.
const SERVER_WAITS: usize = pa::READ_SEMDATA_OFFSET;
const CLIENT_WAITS: usize = pa::WRITE_SEMDATA_OFFSET;
const WAITING: usize = 0;
const SIGNALLED: usize = 4;
const IN_PIPE: usize = 8;

fn pa_block() -> (Mem, pa::PaEnds) {
    let mem = Mem::new(1024);
    // SAFETY: fresh memory, one server.
    let (_, server) = unsafe { pa::init_server(mem.block()) }.unwrap();
    (mem, server)
}

/// Each side of a `pa` block with the offsets of the semaphore it posts and
/// the one it waits on: every fdsem word of the header is covered.
fn pa_sides() -> [(Mem, pa::PaEnds, usize, usize); 2] {
    let (mem, server) = pa_block();
    let client_mem = Mem::new(1024);
    // SAFETY: fresh memory, one server; its ends are dropped at once.
    unsafe { pa::init_server(client_mem.block()) }.unwrap();
    // SAFETY: the block holds a valid header; one client.
    let (_, client) = unsafe { pa::adopt_client(client_mem.block()) }.unwrap();
    [
        (mem, server, CLIENT_WAITS, SERVER_WAITS),
        (client_mem, client, SERVER_WAITS, CLIENT_WAITS),
    ]
}

#[test]
fn post_with_hostile_signalled_is_corrupt() {
    for (bad, (mem, server, posts, _)) in [2, -1, i32::MIN]
        .into_iter()
        .flat_map(|b| pa_sides().map(|s| (b, s)))
    {
        mem.store_i32(posts + SIGNALLED, bad);
        let n = SpinSignal::new();
        let e = FdsemError::Corrupt(corrupt(Field::Signalled, i64::from(bad)));
        assert_eq!(server.poster.post(&n), Err(e));
        assert_eq!((&n).try_take_pending(), 0, "no notification sent");
    }
}

#[test]
fn post_with_hostile_waiting_is_corrupt_or_a_spurious_wake() {
    // Negative: impossible, named.
    let (mem, server) = pa_block();
    mem.store_i32(CLIENT_WAITS + WAITING, -3);
    let n = SpinSignal::new();
    assert_eq!(
        server.poster.post(&n),
        Err(FdsemError::Corrupt(corrupt(Field::Waiting, -3)))
    );
    // Huge: looks like a waiter; costs one notification, nothing else.
    let (mem, server) = pa_block();
    mem.store_i32(CLIENT_WAITS + WAITING, i32::MAX);
    assert_eq!(server.poster.post(&n), Ok(true));
    assert_eq!((&n).try_take_pending(), 1);
}

#[test]
fn before_wait_with_hostile_words_is_corrupt() {
    let sig = SpinSignal::with_budget(1000);
    for ((off, bad, field), (mem, server, _, waits)) in [
        (SIGNALLED, 7, Field::Signalled),
        (SIGNALLED, -1, Field::Signalled),
        (WAITING, -1, Field::Waiting),
        (IN_PIPE, -2, Field::InPipe),
    ]
    .into_iter()
    .flat_map(|c| pa_sides().map(|s| (c, s)))
    {
        mem.store_i32(waits + off, bad);
        let got = server.waiter.before_wait(&mut &sig);
        assert_eq!(
            got,
            Err(FdsemError::Corrupt(corrupt(field, i64::from(bad)))),
            "{field:?}"
        );
    }
}

#[test]
fn in_pipe_without_notifications_never_hangs() {
    // PulseAudio's flush would block reading the eventfd forever here.
    let (mem, server) = pa_block();
    mem.store_i32(SERVER_WAITS + IN_PIPE, 1000);
    let sig = SpinSignal::with_budget(10_000);
    assert_eq!(
        server.waiter.before_wait(&mut &sig),
        Ok(WaitDecision::OkToSleep)
    );
    server.waiter.after_wait(&mut &sig).unwrap();
    assert_eq!(
        server.waiter.wait(&mut &sig, Some(Duration::ZERO)),
        Ok(Woken::TimedOut)
    );
}

#[test]
fn more_notifications_than_in_pipe_is_corrupt() {
    let (_mem, server) = pa_block();
    let sig = SpinSignal::with_budget(10);
    // A peer that writes the eventfd without raising in_pipe.
    srb_core::Notify::notify(&sig).unwrap();
    assert_eq!(
        server.waiter.wait(&mut &sig, Some(Duration::ZERO)),
        Err(FdsemError::Corrupt(corrupt(Field::InPipe, 0)))
    );
}

#[test]
fn after_wait_without_waiting_is_corrupt_not_an_assert() {
    let (mem, server) = pa_block();
    let sig = SpinSignal::with_budget(10);
    assert_eq!(
        server.waiter.before_wait(&mut &sig),
        Ok(WaitDecision::OkToSleep)
    );
    mem.store_i32(SERVER_WAITS + WAITING, 0);
    assert_eq!(
        server.waiter.after_wait(&mut &sig),
        Err(FdsemError::Corrupt(corrupt(Field::Waiting, 0)))
    );
}

#[test]
fn hostile_signalled_one_is_a_spurious_wake() {
    let (mem, server) = pa_block();
    mem.store_i32(SERVER_WAITS + SIGNALLED, 1);
    let sig = SpinSignal::with_budget(10);
    assert_eq!(
        server.waiter.before_wait(&mut &sig),
        Ok(WaitDecision::DontSleep)
    );
}

// --- attach ------------------------------------------------------------------

fn srb_block(cap: u32) -> Mem {
    let mem = Mem::new(srb::block_len(cap));
    // SAFETY: fresh memory.
    unsafe { srb::create(mem.block(), cap) }.unwrap();
    mem
}

fn attach(mem: &Mem) -> Result<srb::Geometry, AttachError> {
    // SAFETY: the test's memory; the ends are dropped at once.
    unsafe { srb::attach(mem.block()) }.map(|(g, _)| g)
}

#[test]
fn srb_attach_refuses_every_bad_header_word() {
    let cap = 256;
    assert!(attach(&srb_block(cap)).is_ok());
    let cases: [(usize, u32, AttachError); 12] = [
        (0, 0, AttachError::BadMagic { found: 0 }),
        (
            0,
            u32::from_le_bytes(*b"srb2"),
            AttachError::BadMagic {
                found: u32::from_le_bytes(*b"srb2"),
            },
        ),
        // Version 1 had no `wants_space` words: mixing it with version 2
        // would leave a writer waiting for space asleep.
        (4, 1, AttachError::BadVersion { found: 1 }),
        (4, 3, AttachError::BadVersion { found: 3 }),
        (4, 0, AttachError::BadVersion { found: 0 }),
        (8, 895, AttachError::BadHeaderSize { found: 895 }),
        (12, 0, AttachError::BadCapacity { found: 0 }),
        (12, 96, AttachError::BadCapacity { found: 96 }),
        (12, 1 << 31, AttachError::BadCapacity { found: 1 << 31 }),
        (16, 0, AttachError::BadRingOffset { offset: 0 }),
        (16, 900, AttachError::BadRingOffset { offset: 900 }),
        (20, 896, AttachError::BadRingOffset { offset: 896 }),
    ];
    for (off, v, want) in cases {
        let mem = srb_block(cap);
        mem.store_u32(off, v);
        assert_eq!(attach(&mem), Err(want), "word @{off} = {v}");
    }
    // A capacity that fits the header's checks but not the block.
    let mem = srb_block(cap);
    mem.store_u32(12, 1 << 20);
    assert_eq!(
        attach(&mem),
        Err(AttachError::BadRingOffset { offset: 896 })
    );
    // Positions already further apart than the capacity.
    let mem = srb_block(cap);
    mem.store_u32(SRB_TO_ATTACHER_WRITE, 257);
    assert_eq!(
        attach(&mem),
        Err(AttachError::BadPositions {
            write: 257,
            read: 0
        })
    );
}

#[test]
fn srb_attach_refuses_small_and_misaligned_blocks() {
    let mem = Mem::new(srb::block_len(64) + 128);
    let create = |b, cap| {
        // SAFETY: blocks inside the test's memory; the ends are dropped at once.
        unsafe { srb::create(b, cap) }.map(|(g, _)| g)
    };
    let len = srb::block_len(64);
    assert_eq!(
        create(mem.block_at(64, len), 64),
        Err(AttachError::Misaligned { required: 128 })
    );
    assert_eq!(
        create(mem.block_at(0, len - 1), 64),
        Err(AttachError::BlockTooSmall {
            len: len - 1,
            needed: len
        })
    );
    assert_eq!(
        create(mem.block(), 48),
        Err(AttachError::BadCapacity { found: 48 })
    );
}

#[test]
fn pa_adopt_refuses_hostile_headers() {
    let cases: [(usize, i32, AttachError); 5] = [
        (
            pa::CAPACITY_OFFSET,
            0,
            AttachError::BadCapacity { found: 0 },
        ),
        (
            pa::CAPACITY_OFFSET,
            -1,
            AttachError::BadCapacity { found: -1 },
        ),
        (
            pa::CAPACITY_OFFSET,
            1 << 20,
            AttachError::BadRingOffset { offset: 48 },
        ),
        (
            pa::READBUF_OFFSET_OFFSET,
            8,
            AttachError::BadRingOffset { offset: 8 },
        ),
        (
            pa::WRITEBUF_OFFSET_OFFSET,
            49,
            AttachError::BadRingOffset { offset: 49 },
        ),
    ];
    for (off, v, want) in cases {
        let (mem, _server) = pa_block();
        mem.store_i32(off, v);
        // SAFETY: the test's memory.
        let got = unsafe { pa::adopt_client(mem.block()) }.map(|(g, _)| g);
        assert_eq!(got, Err(want), "word @{off} = {v}");
    }
    let mem = Mem::new(256);
    // SAFETY: inside the test's memory.
    let got = unsafe { pa::adopt_client(mem.block_at(2, 200)) }.map(|(g, _)| g);
    assert_eq!(got, Err(AttachError::Misaligned { required: 4 }));
}

trait TakePending {
    fn try_take_pending(self) -> u64;
}

impl TakePending for &SpinSignal {
    fn try_take_pending(mut self) -> u64 {
        srb_core::Wait::try_take(&mut self).unwrap()
    }
}
