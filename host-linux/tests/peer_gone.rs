//! A peer process that dies while we wait surfaces as `PeerGone`, not as a
//! hang: the blocking waits poll the connection socket together with the
//! eventfd (or check it between futex wait slices).

mod common;

use std::time::Duration;

use srb_linux::channel::ChannelIoError;
use srb_linux::handshake::{ChannelConfig, LayoutKind, SignalKind};

/// How long an untimed wait may take to notice a dead peer before the test
/// calls it a hang (generous: the futex waits notice within 50 ms).
const WATCHDOG: Duration = Duration::from_secs(60);

fn reader_sees_peer_gone(layout: LayoutKind, signal: SignalKind) {
    let cfg = ChannelConfig {
        layout,
        signal,
        capacity: 4096,
    };
    let mut peer = common::spawn_peer("hold", cfg);
    peer.child.kill().expect("kill srb-echo");
    peer.child.wait().expect("reap srb-echo");
    // No timeout: only the hang-up can end this wait (the watchdog turns a
    // hang into a failure).
    let result = common::within(WATCHDOG, "read_exact after the peer died", move || {
        let mut buf = [0u8; 16];
        peer.channel.read_exact(&mut buf, None)
    });
    assert_eq!(result, Err(ChannelIoError::PeerGone));
}

fn writer_sees_peer_gone(layout: LayoutKind, signal: SignalKind) {
    let cfg = ChannelConfig {
        layout,
        signal,
        capacity: 4096,
    };
    let mut peer = common::spawn_peer("hold", cfg);
    // More than the ring holds: the writer must wait for space that the
    // killed peer never frees.
    let data = vec![0x5a; 3 * 4096];
    peer.child.kill().expect("kill srb-echo");
    peer.child.wait().expect("reap srb-echo");
    let result = common::within(WATCHDOG, "write_all after the peer died", move || {
        peer.channel.write_all(&data, None)
    });
    assert_eq!(result, Err(ChannelIoError::PeerGone));
}

#[test]
fn eventfd_reader_and_writer_see_a_killed_peer() {
    reader_sees_peer_gone(LayoutKind::Srb, SignalKind::Eventfd);
    writer_sees_peer_gone(LayoutKind::Pa, SignalKind::Eventfd);
}

#[test]
fn futex_reader_and_writer_see_a_killed_peer() {
    reader_sees_peer_gone(LayoutKind::Pa, SignalKind::Futex);
    writer_sees_peer_gone(LayoutKind::Srb, SignalKind::Futex);
}

#[test]
fn a_live_but_silent_peer_is_a_timeout_not_peer_gone() {
    let cfg = ChannelConfig {
        layout: LayoutKind::Srb,
        signal: SignalKind::Eventfd,
        capacity: 4096,
    };
    let mut peer = common::spawn_peer("hold", cfg);
    let mut buf = [0u8; 1];
    assert_eq!(
        peer.channel.read_exact(&mut buf, Some(Duration::ZERO)),
        Err(ChannelIoError::TimedOut)
    );
    peer.child.kill().expect("kill srb-echo");
    peer.child.wait().expect("reap srb-echo");
}
