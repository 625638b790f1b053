//! Conformance of both ring layouts against a `VecDeque` model.
//!
//! The same checks run against every implementation of `RingProducer` /
//! `RingConsumer`: random interleavings of partial writes, reads and peeks,
//! every capacity from 1 to 64 (powers of two for `srb`, which requires
//! them), wrapping many times over, and for `srb` also across the wrap of the
//! free-running `u32` positions.

mod common;

use std::collections::VecDeque;

use proptest::prelude::*;
use srb_core::{RingConsumer, RingProducer};

use common::{
    pa_pair, pattern, srb_pair, SRB_ATTACHER_WAITING, SRB_CREATOR_WAITING, SRB_CREATOR_WANTS_SPACE,
};

#[derive(Debug, Clone, Copy)]
enum Op {
    Write(usize),
    Read(usize),
    Peek(usize),
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..=max).prop_map(Op::Write),
        3 => (0..=max).prop_map(Op::Read),
        1 => (0..=max).prop_map(Op::Peek),
    ]
}

/// What a ring end reports as `wake_peer`.
#[derive(Clone, Copy)]
enum Wake {
    /// The `pa` ring: the transitions empty→non-empty and full→not-full.
    OnTransition,
    /// The `srb` ring (fixed here): the writer wakes a reader that
    /// announced a sleep (`waiting`); the reader wakes a writer that
    /// announced a sleep for space (`wants_space`).
    PeerWaiting { waiting: bool, wants_space: bool },
}

/// Runs `ops` against the ring and the model; panics on any divergence.
fn check_against_model<P: RingProducer, C: RingConsumer>(
    p: &mut P,
    c: &mut C,
    ops: &[Op],
    wake: Wake,
) {
    let cap = p.capacity();
    assert_eq!(cap, c.capacity());
    let mut model: VecDeque<u8> = VecDeque::new();
    let mut next = 0u64;
    let mut buf = vec![0u8; cap + 160];
    for &o in ops {
        match o {
            Op::Write(n) => {
                let src: Vec<u8> = (0..n as u64).map(|i| pattern(next + i)).collect();
                let was_empty = model.is_empty();
                let out = p.write(&src).unwrap();
                let expect = n.min(cap - model.len());
                assert_eq!(
                    out.written,
                    expect,
                    "write {n} with {} of {cap} used",
                    model.len()
                );
                let want = match wake {
                    Wake::OnTransition => was_empty && expect > 0,
                    Wake::PeerWaiting { waiting, .. } => waiting && expect > 0,
                };
                assert_eq!(out.wake_peer, want, "writer wake flag");
                model.extend(&src[..expect]);
                next += expect as u64;
            }
            Op::Read(n) => {
                let was_full = model.len() == cap;
                let out = c.read(&mut buf[..n]).unwrap();
                let expect = n.min(model.len());
                assert_eq!(out.read, expect);
                let want = match wake {
                    Wake::OnTransition => was_full && expect > 0,
                    Wake::PeerWaiting { wants_space, .. } => wants_space && expect > 0,
                };
                assert_eq!(out.wake_peer, want, "reader wake flag");
                let want: Vec<u8> = model.drain(..expect).collect();
                assert_eq!(&buf[..expect], &want[..]);
            }
            Op::Peek(n) => {
                let got = c.peek(&mut buf[..n]).unwrap();
                let expect = n.min(model.len());
                assert_eq!(got, expect);
                assert!(buf[..expect].iter().eq(model.iter().take(expect)));
            }
        }
        assert_eq!(c.available().unwrap(), model.len());
        assert_eq!(p.free().unwrap(), cap - model.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pa_ring_matches_model(cap in 1u32..=64, ops in prop::collection::vec(op(150), 1..200)) {
        let (_mem, mut p, mut c, _) = pa_pair(cap);
        check_against_model(&mut p, &mut c, &ops, Wake::OnTransition);
    }

    #[test]
    fn srb_ring_matches_model(
        shift in 0u32..=6,
        waiting in any::<bool>(),
        wants_space in any::<bool>(),
        ops in prop::collection::vec(op(150), 1..200),
    ) {
        let (mem, mut p, mut c) = srb_pair(1 << shift, 0);
        // The peers' words, as set by a side about to sleep: the creator's
        // producer reads the attacher's `waiting`, the attacher's consumer
        // the creator's `wants_space` (not its `waiting`: a writer asleep
        // for the reply needs no wake-up after a read).
        mem.store_i32(SRB_ATTACHER_WAITING, i32::from(waiting));
        mem.store_i32(SRB_CREATOR_WAITING, i32::from(waiting));
        mem.store_i32(SRB_CREATOR_WANTS_SPACE, i32::from(wants_space));
        let wake = Wake::PeerWaiting { waiting, wants_space };
        check_against_model(&mut p, &mut c, &ops, wake);
    }

    #[test]
    fn srb_ring_matches_model_across_position_wrap(
        shift in 0u32..=6,
        back in 0u32..=200,
        ops in prop::collection::vec(op(150), 1..200),
    ) {
        let (_mem, mut p, mut c) = srb_pair(1 << shift, 0u32.wrapping_sub(back));
        check_against_model(&mut p, &mut c, &ops, Wake::PeerWaiting { waiting: false, wants_space: false });
    }
}

/// Every capacity, deterministic: many laps of odd-sized writes and reads.
#[test]
fn every_capacity_wraps_many_times() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut rand = |m: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % (m as u64 + 1)) as usize
    };
    for cap in 1u32..=64 {
        let laps = 50;
        let mut ops = Vec::new();
        for _ in 0..(laps * cap as usize) {
            ops.push(Op::Write(rand(cap as usize + 3)));
            ops.push(Op::Read(rand(cap as usize + 3)));
        }
        let (_m, mut p, mut c, _) = pa_pair(cap);
        check_against_model(&mut p, &mut c, &ops, Wake::OnTransition);
        if cap.is_power_of_two() {
            let (_m, mut p, mut c) = srb_pair(cap, u32::MAX - 7);
            check_against_model(
                &mut p,
                &mut c,
                &ops,
                Wake::PeerWaiting {
                    waiting: false,
                    wants_space: false,
                },
            );
        }
    }
}

/// Two threads stream a long pattern through each layout; bytes arrive in
/// order and intact.
fn stream<P: RingProducer + Send, C: RingConsumer + Send>(mut p: P, mut c: C, total: u64) {
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut sent = 0u64;
            let mut chunk = 1usize;
            let mut buf = vec![0u8; 301];
            while sent < total {
                chunk = chunk % 300 + 1;
                let n = chunk.min((total - sent) as usize);
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = pattern(sent + i as u64);
                }
                let w = p.write(&buf[..n]).unwrap().written;
                sent += w as u64;
                if w == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0u64;
        let mut chunk = 7usize;
        let mut buf = vec![0u8; 512];
        while got < total {
            chunk = chunk * 5 % 511 + 1;
            let n = c.read(&mut buf[..chunk]).unwrap().read;
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, pattern(got + i as u64), "byte {}", got + i as u64);
            }
            got += n as u64;
            if n == 0 {
                std::thread::yield_now();
            }
        }
    });
}

#[test]
fn pa_ring_streams_between_threads() {
    for cap in [1, 7, 64, 1000] {
        let (_mem, p, c, _) = pa_pair(cap);
        stream(p, c, 300_000);
    }
}

#[test]
fn srb_ring_streams_between_threads() {
    for cap in [1, 8, 64, 1024] {
        let (_mem, p, c) = srb_pair(cap, u32::MAX - 100_000);
        stream(p, c, 300_000);
    }
}
