//! Helpers shared by the integration tests: a private socket directory and
//! a spawned `srb-echo` peer connected through a channel.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use srb_linux::channel::Channel;
use srb_linux::handshake::{self, ChannelConfig};
use srb_linux::listener::Listener;
use srb_linux::runtime_dir::RuntimeDir;

/// Handshake timeout: generous, only there so a broken peer fails the test
/// instead of hanging it.
pub const HANDSHAKE: Duration = Duration::from_secs(60);

/// A private directory (0700) removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters, no data is published.
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("srb-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// Runs `f` on its own thread and returns its result, or fails the test if
/// it has not returned within `limit`. For calls that must not block
/// forever (an untimed wait that only a hang-up can end): a regression then
/// fails the test instead of hanging it.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {limit:?}: it hangs")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Open fds of this process (entries of /proc/self/fd, minus the one the
/// listing itself uses).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
        - 1
}
