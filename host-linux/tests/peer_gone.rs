//! A peer process that dies while we wait surfaces as `PeerGone`, not as a
//! hang: the blocking waits poll the connection socket together with the
//! eventfd (or check it between futex wait slices).

mod common;

use std::time::Duration;

use srb_linux::channel::ChannelIoError;
use srb_linux::handshake::{ChannelConfig, LayoutKind, SignalKind};

fn reader_sees_peer_gone(layout: LayoutKind, signal: SignalKind) {
    let cfg = ChannelConfig {
        layout,
        signal,
        capacity: 4096,
    };
    let mut peer = common::spawn_peer("hold", cfg);
    peer.child.kill().expect("kill srb-echo");
    peer.child.wait().expect("reap srb-echo");
    let mut buf = [0u8; 16];
    // No timeout: only the hang-up can end this wait.
    assert_eq!(
        peer.channel.read_exact(&mut buf, None),
        Err(ChannelIoError::PeerGone)
    );
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
    assert_eq!(
        peer.channel.write_all(&data, None),
        Err(ChannelIoError::PeerGone)
    );
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
