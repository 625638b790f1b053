//! Two processes exchange checksummed messages through a channel, for both
//! layouts and both signal kinds, with rings smaller than the largest
//! message so that both writers fill their rings and both sides block.
//!
//! 10^6 messages per configuration in release builds (run by
//! `scripts/test-linux.sh`), 10^4 in debug builds; `SRB_EXCHANGE_MESSAGES`
//! overrides both.

mod common;

use std::time::{Duration, Instant};

use srb_linux::echo::{self, MAX_MESSAGE};
use srb_linux::handshake::{ChannelConfig, LayoutKind, SignalKind};

/// A wait longer than this with no progress is a hang, reported as an error.
const STALL: Duration = Duration::from_secs(120);

fn messages() -> u64 {
    match std::env::var("SRB_EXCHANGE_MESSAGES") {
        Ok(v) => v.parse().expect("SRB_EXCHANGE_MESSAGES is a number"),
        Err(_) if cfg!(debug_assertions) => 10_000,
        Err(_) => 1_000_000,
    }
}

fn exchange(layout: LayoutKind, signal: SignalKind, capacity: u32, seed: u64) {
    let count = messages();
    let cfg = ChannelConfig {
        layout,
        signal,
        capacity,
    };
    let mut peer = common::spawn_peer("echo", cfg);
    assert_eq!(peer.channel.capacity(), capacity as usize);
    let start = Instant::now();
    let stats = echo::run_exchange(&mut peer.channel, count, MAX_MESSAGE, seed, Some(STALL))
        .unwrap_or_else(|e| panic!("{layout:?}/{signal:?}: {e}"));
    let elapsed = start.elapsed();
    let status = peer.child.wait().expect("wait for srb-echo");
    assert!(status.success(), "srb-echo failed: {status}");
    assert_eq!(stats.messages, count);
    eprintln!(
        "{layout:?}/{signal:?} capacity {capacity}: {count} messages, {:.2} GB each way in {:.2?}; \
         driver slept {} times, {} pending",
        stats.bytes as f64 / 1e9,
        elapsed,
        stats.slept,
        stats.pending
    );
}

#[test]
fn pa_layout_with_eventfds() {
    exchange(LayoutKind::Pa, SignalKind::Eventfd, 32712, 1);
}

#[test]
fn pa_layout_with_futexes() {
    exchange(LayoutKind::Pa, SignalKind::Futex, 32712, 2);
}

#[test]
fn srb_layout_with_eventfds() {
    exchange(LayoutKind::Srb, SignalKind::Eventfd, 32768, 3);
}

#[test]
fn srb_layout_with_futexes() {
    exchange(LayoutKind::Srb, SignalKind::Futex, 32768, 4);
}

/// Rings far smaller than a message: almost every write fills the ring and
/// almost every message needs many wake-ups on both sides. A tenth of the
/// messages keeps the run short.
#[test]
fn tiny_rings_block_both_sides_constantly() {
    let count = (messages() / 10).max(1);
    for (layout, signal, capacity, seed) in [
        (LayoutKind::Srb, SignalKind::Eventfd, 1024, 5),
        (LayoutKind::Pa, SignalKind::Futex, 1000, 6),
    ] {
        let cfg = ChannelConfig {
            layout,
            signal,
            capacity,
        };
        let mut peer = common::spawn_peer("echo", cfg);
        let start = Instant::now();
        let stats = echo::run_exchange(&mut peer.channel, count, MAX_MESSAGE, seed, Some(STALL))
            .unwrap_or_else(|e| panic!("{layout:?}/{signal:?}: {e}"));
        let status = peer.child.wait().expect("wait for srb-echo");
        assert!(status.success(), "srb-echo failed: {status}");
        assert_eq!(stats.messages, count);
        eprintln!(
            "{layout:?}/{signal:?} capacity {capacity}: {count} messages in {:.2?}; driver slept {} times",
            start.elapsed(),
            stats.slept
        );
    }
}
