//! # srbd: a PulseAudio-compatible sound server on srb's channels
//!
//! `srbd` serves unmodified libpulse clients over the PulseAudio native
//! protocol (`../shared/docs/pa-native-protocol.md`): AUTH (SHM + memfd
//! offered to local clients of our uid, §1.5, then the srbchannel, §5; the
//! inline path for everyone else), client names, the introspection
//! commands desktop tools use, playback/record streams and the sample
//! cache (uploads, PLAY_SAMPLE), answered from a list of sinks
//! (`srb_output` by default, more from modules: `module-null-sink`,
//! `module-remap-sink`, and `module-loopback` between them) and their
//! monitor sources (a record stream may instead capture one sink input
//! alone, `monitor_stream`, or deliver peaks for a level meter,
//! `PEAK_DETECT`), whose RUNNING/IDLE/SUSPENDED states and `change`
//! events follow PulseAudio's; streams move between sinks without a lost
//! byte, and a default change moves the ones that named no device. Unknown
//! commands get an `ERROR` reply; a malformed frame or packet closes that
//! connection with a logged reason. The wire codecs are `srb-pulse`'s, the
//! transport (memfd, eventfd, SCM_RIGHTS, listener) is `srb-linux`'s.
//!
//! ## Where things live
//!
//! | module | what it holds |
//! |---|---|
//! | [`control`] | the control side: per-client connections (protocol state, SHM pools, srbchannel, outbound queue), command handlers, the registry of clients and streams, the sinks list and routing (moves, defaults), modules, device states, the sample cache and its players, the TCP listener |
//! | [`engine`] | the real-time side: one mixer per sink and its clock, the streams' audio queues and shared atomics, stream hand-over between mixers, output backends, the DSP clock, sample-format conversion, the loopback worker |
//! | [`dsp`] | the DSP peer: srbd's link to it, its supervisor, the `dsp-sim` process's loop, and the board peer (the Cortex-M4F firmware under QEMU, `--dsp board:ELF`) |
//! | [`rt`] | real-time setup: `SCHED_FIFO`, `mlockall`, the counting allocator that proves the period path does not allocate |
//! | [`config`] | settings: TOML file and command line |
//! | [`logging`] | the binaries' `tracing` setup |
//! | this file | [`Server`]: the state all connections share (objects, indexes, the sinks, the modules, the sample cache) |
//!
//! Imports point one way: `control` → `engine` → `dsp` → `rt`, all on top of
//! `srb-pulse`, `srb-linux` and `srb-core`; nothing in `engine` or `dsp`
//! imports `control`, and no module imports from a module that imports it
//! (`python3 scripts/module-cycles.py` checks every crate).
//!
//! ## Threads
//!
//! One control thread ([`control::server_loop::ServerLoop`], the main
//! thread of the binary) owns every client; each sink's mixer thread
//! ([`engine::mixer::Engine`]) renders periods and never waits for a
//! client (the first sink's also publishes the state page); each
//! loopback has a worker thread ([`engine::loopback::Worker`]); the DSP supervisor thread ([`dsp::supervisor::Supervisor`])
//! spawns and restarts `dsp-sim` (or QEMU); the wav writer thread exists only with
//! `--output wav:`, and an ALSA opener thread per ALSA device
//! (`--output alsa:`, `--input alsa:`: reopening after a failure, off the
//! mixer thread, [`engine::alsa::driven`]). The two sides meet in lock-free `rtrb` rings, atomics
//! and one eventfd ([`engine::notice::Bell`]) the mixer rings at most once
//! per period. The mixer also publishes the read-only state page
//! ([`engine::state_page`]) each period; the control thread hands its fd
//! to local clients on the `control` socket.
//!
//! ## Where this departs from `shared/docs/design.md`
//!
//! - **A library and binaries, not a binary crate.** The fuzz targets
//!   (`host-linux/fuzz`) and the benches drive `Session`, the SHM
//!   validator and the DSP link directly, which a binary-only crate could
//!   not offer them; the binaries (`srbd`, `dsp-sim`) are thin.
//! - **The DSP link and its child are not on the control loop.** The link
//!   is the sink's clock and lives on the mixer thread (the real-time
//!   path); the child is spawned, reaped and restarted by the supervisor
//!   thread, whose handshakes and back-off waits the control loop must not
//!   make. Neither ever waits for a client.
//! - **The registry keeps its mutex.** Only the control thread touches it
//!   now, so the lock is never contended; handlers reach it through the
//!   shared [`Server`], and taking it out is a change of every handler's
//!   signature for no measured gain.

pub mod config;
pub mod control;
pub mod dsp;
pub mod engine;
pub mod logging;
pub mod rt;

pub use control::{registry, server_info};

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use engine::mixer::Engine;
use registry::Registry;
use server_info::ServerInfo;
use srb_pulse::tagstruct::{CVolume, Proplist};

/// Volume and mute of a device, as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// One volume per channel.
    pub volume: CVolume,
    /// Whether muted.
    pub muted: bool,
    /// Whether suspended (SUSPEND_SINK / SUSPEND_SOURCE).
    pub suspended: bool,
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
    /// `spin_us`; default [`control::session::SPIN_WINDOW`]).
    pub spin: std::time::Duration,
    /// At most this many clients are served at once (config
    /// `max_clients`; default
    /// [`control::server_loop::DEFAULT_MAX_CLIENTS`]).
    pub max_clients: usize,
    /// `SCHED_FIFO` priority for the mixers of sinks modules add (config
    /// `rt_priority`; 0: normal scheduling, the default here).
    pub rt_priority: u8,
    /// The first sink's mixer (srbd's own sink, `srb_output` by default;
    /// it also carries the control loop's bell, the DSP clock and the
    /// ring accounting every sink shares).
    pub engine: Arc<Engine>,
    /// Every sink and its monitor source, and the defaults.
    pub sinks: control::sinks::Sinks,
    /// The loaded modules.
    pub modules: control::modules::Modules,
    /// Clients, streams and subscriptions.
    pub registry: Registry,
    /// The sample cache.
    pub samples: Arc<control::sample_cache::SampleCache>,
    /// The samples playing (PLAY_SAMPLE).
    pub players: control::sample_player::SamplePlayers,
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
        let engine = Arc::new(engine);
        let sinks = control::sinks::Sinks::with_first(control::sinks::SinkEntry::new(
            info.sink.clone(),
            info.monitor.clone(),
            engine.clone(),
            server_info::INVALID_INDEX,
        ));
        let registry = Registry::with_devices(info.sink.index, info.monitor.index)
            .with_state_cells(engine.shared().clone());
        let samples = Arc::new(control::sample_cache::SampleCache::new());
        let players = control::sample_player::SamplePlayers::new(engine.bell().clone());
        Self {
            info,
            uid: rustix::process::geteuid().as_raw(),
            shm: true,
            srbchannel: true,
            spin: control::session::SPIN_WINDOW,
            max_clients: control::server_loop::DEFAULT_MAX_CLIENTS,
            rt_priority: 0,
            engine,
            sinks,
            modules: control::modules::Modules::default(),
            registry,
            samples,
            players,
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

    /// Serves at most `n` clients at once (config `max_clients`).
    pub fn with_max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// The `SCHED_FIFO` priority of the mixers of sinks modules add
    /// (config `rt_priority`, as srbd's own sink's).
    pub fn with_rt_priority(mut self, priority: u8) -> Self {
        self.rt_priority = priority;
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

    /// The default sink (there is always one: srbd's own sink cannot be
    /// removed).
    pub fn default_sink(&self) -> Arc<control::sinks::SinkEntry> {
        self.sinks
            .default_sink()
            .unwrap_or_else(|| self.first_sink())
    }

    /// The default source (the default sink's monitor unless one was set).
    pub fn default_source(&self) -> Arc<control::sinks::SinkEntry> {
        self.sinks
            .default_source()
            .unwrap_or_else(|| self.first_sink())
    }

    fn first_sink(&self) -> Arc<control::sinks::SinkEntry> {
        let first = self.sinks.all().into_iter().next();
        // `Sinks::with_first` lists srbd's own sink and nothing removes it.
        first.expect("srbd's own sink is always listed")
    }

    /// Changes a sink's (`monitor == false`) or its monitor's volume
    /// and/or mute and tells its mixer. `volume` must have the device's
    /// channel count.
    pub fn set_device_state(
        &self,
        sink: &control::sinks::SinkEntry,
        monitor: bool,
        volume: Option<CVolume>,
        muted: Option<bool>,
    ) {
        let shared = sink.engine.shared();
        let (gains, facility, index) = if monitor {
            (
                &shared.monitor_gains,
                registry::facility::SOURCE,
                sink.source_index(),
            )
        } else {
            (&shared.gains, registry::facility::SINK, sink.index())
        };
        sink.update_state(monitor, |st| {
            if let Some(v) = volume {
                gains.set(&linear_gains(&v));
                st.volume = v;
            }
            if let Some(mu) = muted {
                gains.set_muted(mu);
                st.muted = mu;
            }
        });
        self.registry.post(facility, registry::event::CHANGE, index);
    }

    /// Suspends or resumes a sink (`monitor == false`) or its monitor:
    /// its mixer stops feeding it; the states follow (suspending the sink
    /// suspends its monitor), each change posting a CHANGE event
    /// ([`control::device_state`]).
    pub fn set_suspended(&self, sink: &control::sinks::SinkEntry, monitor: bool, suspended: bool) {
        let shared = sink.engine.shared();
        let flag = if monitor {
            &shared.monitor_suspended
        } else {
            &shared.suspended
        };
        let changed = sink.update_state(monitor, |st| {
            let changed = st.suspended != suspended;
            st.suspended = suspended;
            changed
        });
        // Relaxed: a flag the mixer reads once per period.
        flag.store(suspended, Ordering::Relaxed);
        if changed {
            tracing::info!(sink = %sink.sink.name, monitor, suspended, "device suspend state changed");
        }
        self.registry
            .set_suspended_on(sink.index(), monitor, suspended);
    }

    /// Asks the control loop to end (it closes every client).
    pub fn request_stop(&self) {
        // Relaxed: a flag polled in loops; it publishes no data.
        self.stop.store(true, Ordering::Relaxed);
        self.engine.bell().ring();
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Published by the control loop as it admits and closes clients.
    pub fn set_active_connections(&self, n: usize) {
        // Relaxed: a count for status and tests, no data behind it.
        self.active.store(n, Ordering::Relaxed);
    }
}

/// After the control loop returned: stops the mixer and finishes the
/// output (the wav file is finalized here).
pub fn shutdown(server: Arc<Server>) {
    control::modules::unload_all(&server);
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
