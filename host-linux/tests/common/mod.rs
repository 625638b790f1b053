//! Helpers shared by the integration tests: a private socket directory and
//! a spawned `srb-echo` peer connected through a channel.

#![allow(dead_code)] // each test binary uses a different subset

mod util;
pub use util::*;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use srb_linux::channel::Channel;
use srb_linux::handshake::{self, ChannelConfig};
use srb_linux::listener::Listener;
use srb_linux::runtime_dir::RuntimeDir;

/// Handshake timeout: generous, only there so a broken peer fails the test
/// instead of hanging it.
pub const HANDSHAKE: Duration = Duration::from_secs(60);

/// A spawned peer and our side of the channel to it.
pub struct Peer {
    pub child: Child,
    pub channel: Channel,
    _dir: TempDir,
    _listener: Listener,
}

/// Spawns `srb-echo <socket> <mode>` and creates a channel to it.
pub fn spawn_peer(mode: &str, cfg: ChannelConfig) -> Peer {
    let dir = TempDir::new(mode);
    let rt = RuntimeDir::open(&dir.0).expect("runtime dir");
    let listener = Listener::bind(&rt, "srb").expect("listen");
    let child = Command::new(env!("CARGO_BIN_EXE_srb-echo"))
        .arg(listener.path().expect("bound path"))
        .arg(mode)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn srb-echo");
    let (stream, creds) = listener.accept().expect("accept");
    assert_eq!(creds.uid, rustix::process::geteuid());
    let channel = handshake::create(stream, cfg, Some(HANDSHAKE)).expect("handshake");
    Peer {
        child,
        channel,
        _dir: dir,
        _listener: listener,
    }
}
