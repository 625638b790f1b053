//! `srbd`: the daemon that serves unmodified libpulse clients over the
//! PulseAudio native protocol (`../shared/docs/pa-native-protocol.md`).
//!
//! First milestone: AUTH (no SHM offered, inline path only), client names
//! and the introspection commands `pactl` needs, answered from one fixed
//! sink (`srb_output`, 48 kHz stereo float32le) and its monitor source.
//! Every other command gets an `ERROR` reply; a malformed frame or packet
//! closes that connection with a logged reason. One thread per connection.
//!
//! | module | what it holds |
//! |---|---|
//! | [`commands`] | [`commands::Command`] numbers (§6.1) and [`commands::PaError`] codes (§1.7) |
//! | [`server_info`] | [`server_info::ServerInfo`]: the server identity, sink and monitor, encoded by version (§6.3, §6.4) |
//! | [`connection`] | [`connection::Session`] (pure per-client state machine) and [`connection::serve`] (its socket loop) |

pub mod commands;
pub mod connection;
pub mod server_info;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::io::Errno;

use crate::listener::Listener;
use crate::pulse::tagstruct::Proplist;
use server_info::ServerInfo;

/// At most this many connections are served at once (§1.2).
pub const MAX_CONNECTIONS: usize = 64;

/// State shared by all connections.
#[derive(Debug)]
pub struct Server {
    /// The objects shown to clients.
    pub info: ServerInfo,
    /// The uid the server runs as (AUTH accepts it and root).
    pub uid: u32,
    next_client: AtomicU32,
    clients: Mutex<BTreeMap<u32, Proplist>>,
    active: AtomicUsize,
    stop: AtomicBool,
}

impl Server {
    /// A server showing `info`.
    pub fn new(info: ServerInfo) -> Self {
        Self {
            info,
            uid: rustix::process::geteuid().as_raw(),
            next_client: AtomicU32::new(0),
            clients: Mutex::new(BTreeMap::new()),
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    fn clients_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Proplist>> {
        // A panicked holder left a consistent map (every update is one call).
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Allocates a client index (never `0xFFFFFFFF`) and lists the client.
    pub fn register_client(&self) -> u32 {
        // Relaxed: the counter only has to hand out distinct numbers.
        let mut i = self.next_client.fetch_add(1, Ordering::Relaxed);
        if i == server_info::INVALID_INDEX {
            i = self.next_client.fetch_add(1, Ordering::Relaxed);
        }
        self.clients_lock().insert(i, Proplist::new());
        i
    }

    /// Records the client's properties (SET_CLIENT_NAME).
    pub fn set_client(&self, index: u32, props: Proplist) {
        self.clients_lock().insert(index, props);
    }

    /// Unlists a client.
    pub fn remove_client(&self, index: u32) {
        self.clients_lock().remove(&index);
    }

    /// The current clients and their properties, by index.
    pub fn clients(&self) -> Vec<(u32, Proplist)> {
        self.clients_lock()
            .iter()
            .map(|(i, p)| (*i, p.clone()))
            .collect()
    }

    /// Asks the accept loop and every connection to end.
    pub fn request_stop(&self) {
        // Relaxed: a flag polled in loops; it publishes no data.
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Accepts connections on `listener` until [`Server::request_stop`] (then
/// one more connection, e.g. from [`wake`], ends the loop), each served on
/// its own thread.
pub fn run(listener: &Listener, server: &Arc<Server>) -> Result<(), Errno> {
    let mut n: u64 = 0;
    loop {
        let accepted = listener.accept();
        if server.stopping() {
            tracing::info!("stopping");
            return Ok(());
        }
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                tracing::warn!(%e, "accept failed; continuing");
                continue;
            }
            Err(e) => return Err(e),
        };
        if server.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tracing::warn!(pid = ?peer.pid, "too many connections; refused");
            continue;
        }
        n += 1;
        let fd = stream.socket().clone();
        let slot = Slot::take(server.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("srbd-conn-{n}"))
            .spawn(move || {
                // Dropped last, also if serve panics: the slot is given
                // back whatever way the thread ends.
                let slot = slot;
                let _stream = stream;
                connection::serve(fd, peer, slot.0.clone());
            });
        // On failure the closure, its slot and the stream are dropped.
        if let Err(e) = spawned {
            tracing::warn!(%e, "cannot spawn a connection thread; connection dropped");
        }
    }
}

/// One of the [`MAX_CONNECTIONS`] connection slots, given back on drop.
struct Slot(Arc<Server>);

impl Slot {
    fn take(server: Arc<Server>) -> Self {
        server.active.fetch_add(1, Ordering::Relaxed);
        Slot(server)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Wakes a [`run`] blocked in `accept` by connecting to its socket.
pub fn wake(path: &Path) {
    if let Err(e) = crate::listener::connect(path) {
        tracing::debug!(%e, "wake-up connect failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_slot_is_given_back_when_its_thread_panics() {
        let server = Arc::new(Server::new(ServerInfo::new("u".into(), "h".into(), 1)));
        let slot = Slot::take(server.clone());
        assert_eq!(server.active.load(Ordering::Relaxed), 1);
        let t = std::thread::spawn(move || {
            let _slot = slot;
            panic!("connection thread panics");
        });
        assert!(t.join().is_err());
        assert_eq!(server.active.load(Ordering::Relaxed), 0);
    }
}
