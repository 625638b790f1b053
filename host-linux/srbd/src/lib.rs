//! # srbd: a PulseAudio-compatible sound server on srb's channels
//!
//! `srbd` serves unmodified libpulse clients over the PulseAudio native
//! protocol (`../shared/docs/pa-native-protocol.md`): AUTH (SHM + memfd
//! offered to local clients of our uid, §1.5, then the srbchannel, §5; the
//! inline path for everyone else), client names, the introspection
//! commands desktop tools use, and playback/record streams, answered from
//! one sink (`srb_output` by default) and its monitor source. Unknown
//! commands get an `ERROR` reply; a malformed frame or packet closes that
//! connection with a logged reason. The wire codecs are `srb-pulse`'s, the
//! transport (memfd, eventfd, SCM_RIGHTS, listener) is `srb-linux`'s.
//!
//! ## Where things live
//!
//! | module | what it holds |
//! |---|---|
//! | [`control`] | the control side: per-client connections (protocol state, SHM pools, srbchannel, outbound queue), command handlers, the registry of clients and streams, the TCP listener |
//! | [`engine`] | the real-time side: the mixer and its sink clock, the streams' audio queues and shared atomics, output backends, the DSP clock, sample-format conversion |
//! | [`dsp`] | the DSP peer: srbd's link to it, its supervisor, and the `dsp-sim` process's loop |
//! | [`config`] | settings: TOML file and command line |
//! | [`logging`] | the binaries' `tracing` setup |
//! | this file | [`Server`]: the state all connections share (objects, indexes, device volumes) |
//!
//! Imports point one way: `control` → `engine` → (`srb-pulse`, `srb-linux`,
//! `srb-core`); `dsp` is used by `engine` (the DSP clock) and by the
//! binaries; nothing in `engine` or `dsp` imports `control`.

pub mod config;
pub mod control;
pub mod dsp;
pub mod engine;
pub mod logging;

pub use control::{registry, server_info};

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::io::Errno;

use engine::mixer::Engine;
use registry::Registry;
use server_info::ServerInfo;
use srb_linux::listener::Listener;
use srb_pulse::tagstruct::{CVolume, Proplist};

/// How long the accept loop waits after running out of fds or memory.
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// At most this many connections are served at once (§1.2).
pub const MAX_CONNECTIONS: usize = 64;

/// Volume and mute of a device, as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// One volume per channel.
    pub volume: CVolume,
    /// Whether muted.
    pub muted: bool,
}

/// State shared by all connections.
#[derive(Debug)]
pub struct Server {
    /// The objects shown to clients.
    pub info: ServerInfo,
    /// The uid the server runs as (AUTH accepts it and root).
    pub uid: u32,
    /// Whether AUTH may offer SHM + memfd (config `shm`; default true).
    pub shm: bool,
    /// Whether SHM clients are offered the srbchannel (config
    /// `srbchannel`; default true).
    pub srbchannel: bool,
    /// How long a connection polls a chatty client's ring (config
    /// `spin_us`; default [`control::connection::SPIN_WINDOW`]).
    pub spin: std::time::Duration,
    /// The sink and its mixer.
    pub engine: Engine,
    /// Clients, streams and subscriptions.
    pub registry: Registry,
    sink_state: Mutex<DeviceState>,
    monitor_state: Mutex<DeviceState>,
    next_client: AtomicU32,
    next_sink_input: AtomicU32,
    next_source_output: AtomicU32,
    active: AtomicUsize,
    stop: AtomicBool,
}

/// Hands out indexes, never `0xFFFFFFFF`.
fn next_index(counter: &AtomicU32) -> u32 {
    // Relaxed: the counter only has to hand out distinct numbers.
    let mut i = counter.fetch_add(1, Ordering::Relaxed);
    if i == server_info::INVALID_INDEX {
        i = counter.fetch_add(1, Ordering::Relaxed);
    }
    i
}

impl Server {
    /// A server showing `info`, its sink driven by `engine`.
    pub fn new(info: ServerInfo, engine: Engine) -> Self {
        let sink_state = DeviceState {
            volume: info.sink.volume.clone(),
            muted: false,
        };
        let monitor_state = DeviceState {
            volume: info.monitor.volume.clone(),
            muted: false,
        };
        Self {
            info,
            uid: rustix::process::geteuid().as_raw(),
            shm: true,
            srbchannel: true,
            spin: control::connection::SPIN_WINDOW,
            engine,
            registry: Registry::default(),
            sink_state: Mutex::new(sink_state),
            monitor_state: Mutex::new(monitor_state),
            next_client: AtomicU32::new(0),
            next_sink_input: AtomicU32::new(0),
            next_source_output: AtomicU32::new(0),
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Allows (`true`, the default) or forbids offering SHM + memfd to
    /// clients (config `shm`).
    pub fn with_shm(mut self, shm: bool) -> Self {
        self.shm = shm;
        self
    }

    /// How long a connection keeps polling a chatty client's srbchannel
    /// ring before it sleeps (config `spin_us`; zero: never).
    pub fn with_spin(mut self, spin: std::time::Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Whether SHM clients are offered the srbchannel (config
    /// `srbchannel`).
    pub fn with_srbchannel(mut self, on: bool) -> Self {
        self.srbchannel = on;
        self
    }

    /// Allocates a client index and lists the client.
    pub fn register_client(&self) -> u32 {
        let i = next_index(&self.next_client);
        self.registry.set_client(i, Proplist::new());
        i
    }

    /// Records the client's properties (SET_CLIENT_NAME).
    pub fn set_client(&self, index: u32, props: Proplist) {
        self.registry.set_client(index, props);
    }

    /// Unlists a client.
    pub fn remove_client(&self, index: u32) {
        self.registry.remove_client(index);
    }

    /// The current clients and their properties, by index.
    pub fn clients(&self) -> Vec<(u32, Proplist)> {
        self.registry.clients()
    }

    /// A fresh sink-input index.
    pub fn next_sink_input(&self) -> u32 {
        next_index(&self.next_sink_input)
    }

    /// A fresh source-output index.
    pub fn next_source_output(&self) -> u32 {
        next_index(&self.next_source_output)
    }

    /// The sink's (`monitor == false`) or monitor's volume and mute.
    pub fn device_state(&self, monitor: bool) -> DeviceState {
        let m = if monitor {
            &self.monitor_state
        } else {
            &self.sink_state
        };
        m.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Changes the sink's or monitor's volume and/or mute and tells the
    /// mixer. `volume` must have the device's channel count.
    pub fn set_device_state(&self, monitor: bool, volume: Option<CVolume>, muted: Option<bool>) {
        let (m, gains, facility, index) = if monitor {
            (
                &self.monitor_state,
                &self.engine.shared().monitor_gains,
                registry::facility::SOURCE,
                self.info.monitor.index,
            )
        } else {
            (
                &self.sink_state,
                &self.engine.shared().gains,
                registry::facility::SINK,
                self.info.sink.index,
            )
        };
        {
            let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = volume {
                gains.set(&linear_gains(&v));
                st.volume = v;
            }
            if let Some(mu) = muted {
                gains.set_muted(mu);
                st.muted = mu;
            }
        }
        self.registry.post(facility, registry::event::CHANGE, index);
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

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// After [`run`] returned: waits (at most 5 s) for the connection threads
/// to see the stop and leave, then stops the mixer and finishes the
/// output (the wav file is finalized here).
pub fn shutdown(server: Arc<Server>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.active_connections() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    match server.engine.stop() {
        Ok(samples) => tracing::info!(samples, "output finished"),
        Err(e) => tracing::warn!(%e, "output did not finish cleanly"),
    }
}

/// The linear gain of each channel of a PulseAudio volume.
pub fn linear_gains(v: &CVolume) -> Vec<f32> {
    v.values()
        .iter()
        .map(|&x| engine::audio::volume::volume_to_linear(x))
        .collect()
}

/// Accepts connections on `listener` until [`Server::request_stop`] (then
/// one more connection, e.g. from [`wake()`], ends the loop), each served on
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
                // Out of fds or memory: the pending connection stays in
                // the backlog; back off instead of spinning on it.
                tracing::warn!(%e, "accept failed; retrying in {ACCEPT_BACKOFF:?}");
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            Err(e) => return Err(e),
        };
        if server.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tracing::warn!(pid = ?peer.pid, "too many connections; refused");
            continue;
        }
        n += 1;
        let slot = Slot::take(server.clone());
        let peer = control::connection::Peer::Unix {
            uid: peer.uid.as_raw(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("srbd-conn-{n}"))
            .spawn(move || {
                // Dropped last, also if serve panics: the slot is given
                // back whatever way the thread ends.
                let slot = slot;
                control::connection::serve(
                    control::connection::Transport::Unix(stream),
                    peer,
                    slot.0.clone(),
                );
            });
        // On failure the closure, its slot and the stream are dropped.
        if let Err(e) = spawned {
            tracing::warn!(%e, "cannot spawn a connection thread; connection dropped");
        }
    }
}

/// One of the [`MAX_CONNECTIONS`] connection slots, given back on drop.
pub(crate) struct Slot(Arc<Server>);

impl Slot {
    pub(crate) fn take(server: Arc<Server>) -> Self {
        server.active.fetch_add(1, Ordering::Relaxed);
        Slot(server)
    }

    pub(crate) fn server(&self) -> &Arc<Server> {
        &self.0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Wakes a [`run`] blocked in `accept` by connecting to its socket.
pub fn wake(path: &Path) {
    if let Err(e) = srb_linux::listener::connect(path) {
        tracing::debug!(%e, "wake-up connect failed");
    }
}

/// A server with the default sink and a null output, for unit tests.
#[cfg(test)]
pub(crate) fn test_server() -> Arc<Server> {
    let info = ServerInfo::new("u".into(), "h".into(), 1);
    let engine = Engine::start(engine::mixer::SinkConfig {
        spec: info.sink.sample_spec,
        map: info.sink.channel_map.clone(),
        period_frames: 480,
        output: engine::output::OutputSpec::Null,
    })
    .expect("engine");
    Arc::new(Server::new(info, engine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_slot_is_given_back_when_its_thread_panics() {
        let server = test_server();
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
