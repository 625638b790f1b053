//! The server's lists of clients, sink inputs (playback streams) and
//! source outputs (record streams), the SUBSCRIBE event queues, and every
//! sink's and monitor's state ([`crate::control::device_state`]), which
//! follow the streams listed here (each stream names its device).
//!
//! Only connection threads touch these (under short-held mutexes that are
//! never held across I/O); the mixer sees streams through their
//! [`PlaybackShared`]/[`RecordShared`] atomics only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::control::device_state::DeviceStates;
use crate::engine::mixer::SinkShared;
use crate::engine::notice::Notice;
use crate::engine::stream::{PlaybackShared, RecordShared};
use srb_pulse::commands::PaError;
use srb_pulse::tagstruct::{CVolume, ChannelMap, Proplist, SampleSpec};

/// Subscription facilities (`PA_SUBSCRIPTION_EVENT_*` low bits).
pub mod facility {
    /// Sinks.
    pub const SINK: u32 = 0;
    /// Sources.
    pub const SOURCE: u32 = 1;
    /// Sink inputs.
    pub const SINK_INPUT: u32 = 2;
    /// Source outputs.
    pub const SOURCE_OUTPUT: u32 = 3;
    /// Modules.
    pub const MODULE: u32 = 4;
    /// Clients.
    pub const CLIENT: u32 = 5;
    /// The sample cache.
    pub const SAMPLE_CACHE: u32 = 6;
    /// The server.
    pub const SERVER: u32 = 7;
}

/// Subscription event types (`PA_SUBSCRIPTION_EVENT_*` type bits).
pub mod event {
    /// An object appeared.
    pub const NEW: u32 = 0x00;
    /// An object changed.
    pub const CHANGE: u32 = 0x10;
    /// An object went away.
    pub const REMOVE: u32 = 0x20;
}

/// Events a slow subscriber may have queued before the oldest are dropped.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// A sink input as listed to clients.
#[derive(Debug, Clone)]
pub struct SinkInput {
    /// The owning client.
    pub client: u32,
    /// Its sample spec.
    pub spec: SampleSpec,
    /// Its channel map.
    pub map: ChannelMap,
    /// Its volume (one value per stream channel).
    pub volume: CVolume,
    /// Whether muted.
    pub muted: bool,
    /// Its properties (`media.name`, ...).
    pub props: Proplist,
    /// Shared with the mixer and the owner.
    pub shared: Arc<PlaybackShared>,
    /// The sink it plays on.
    pub sink: u32,
    /// Whether it asked for (or was moved to) a sink other than the
    /// default: a default change does not move it (PulseAudio 15+).
    pub pinned: bool,
}

/// A source output as listed to clients.
#[derive(Debug, Clone)]
pub struct SourceOutput {
    /// The owning client.
    pub client: u32,
    /// Its sample spec.
    pub spec: SampleSpec,
    /// Its channel map.
    pub map: ChannelMap,
    /// Its volume (one value per stream channel).
    pub volume: CVolume,
    /// Whether muted.
    pub muted: bool,
    /// Its properties.
    pub props: Proplist,
    /// The sink input it records alone (`monitor_stream`), if any.
    pub direct_on_input: Option<u32>,
    /// Shared with the mixer and the owner.
    pub shared: Arc<RecordShared>,
    /// The source it records.
    pub source: u32,
    /// Whether it asked for (or was moved to) a source other than the
    /// default.
    pub pinned: bool,
}

/// A connection's subscription.
#[derive(Debug)]
struct Subscriber {
    mask: u32,
    events: VecDeque<(u32, u32)>,
    notice: Arc<Notice>,
}

/// Everything the server lists.
#[derive(Debug, Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u32, Proplist>>,
    sink_inputs: Mutex<BTreeMap<u32, SinkInput>>,
    source_outputs: Mutex<BTreeMap<u32, SourceOutput>>,
    subscribers: Mutex<BTreeMap<u32, Subscriber>>,
    /// Each sink's states, by sink index.
    devices: Mutex<BTreeMap<u32, DeviceSlot>>,
}

/// One sink's and its monitor's states.
#[derive(Debug, Default)]
struct DeviceSlot {
    /// The monitor's source index.
    source: u32,
    states: DeviceStates,
    /// Where the states are mirrored for the mixer's state page.
    cells: Option<Arc<SinkShared>>,
}

fn snapshot<T: Clone>(table: &Mutex<BTreeMap<u32, T>>) -> Vec<(u32, T)> {
    lock(table).iter().map(|(i, v)| (*i, v.clone())).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one call that leaves the map consistent, so a
    // panicked holder left nothing half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// An empty registry for a sink and monitor of these indexes.
    pub fn with_devices(sink: u32, monitor: u32) -> Self {
        let r = Self::default();
        lock(&r.devices).insert(
            sink,
            DeviceSlot {
                source: monitor,
                ..DeviceSlot::default()
            },
        );
        r
    }

    /// Mirrors the first sink's and monitor's states into `shared` (the
    /// state page reports them) from now on.
    pub fn with_state_cells(self, shared: Arc<SinkShared>) -> Self {
        if let Some(slot) = lock(&self.devices).values_mut().next() {
            slot.cells = Some(shared);
        }
        self.sync_states();
        self
    }

    /// Starts tracking the states of sink `sink` and its monitor `source`
    /// (mirrored into `cells`).
    pub fn add_device(&self, sink: u32, source: u32, cells: Arc<SinkShared>) {
        lock(&self.devices).insert(
            sink,
            DeviceSlot {
                source,
                cells: Some(cells),
                ..DeviceSlot::default()
            },
        );
        self.sync_states();
    }

    /// Stops tracking sink `sink`.
    pub fn remove_device(&self, sink: u32) {
        lock(&self.devices).remove(&sink);
    }

    /// The first sink's and monitor's suspend flags and states.
    pub fn device_states(&self) -> DeviceStates {
        lock(&self.devices)
            .values()
            .next()
            .map(|d| d.states)
            .unwrap_or_default()
    }

    /// Sink `sink`'s and its monitor's suspend flags and states.
    pub fn device_states_of(&self, sink: u32) -> DeviceStates {
        lock(&self.devices)
            .get(&sink)
            .map(|d| d.states)
            .unwrap_or_default()
    }

    /// Sets the first sink's (`monitor == false`) or monitor's suspend
    /// flag; the states follow, with their CHANGE events.
    pub fn set_suspended(&self, monitor: bool, suspended: bool) {
        let first = lock(&self.devices).keys().next().copied();
        if let Some(sink) = first {
            self.set_suspended_on(sink, monitor, suspended);
        }
    }

    /// Sets sink `sink`'s (`monitor == false`) or its monitor's suspend
    /// flag; the states follow, with their CHANGE events.
    pub fn set_suspended_on(&self, sink: u32, monitor: bool, suspended: bool) {
        if let Some(d) = lock(&self.devices).get_mut(&sink) {
            if monitor {
                d.states.monitor_suspended = suspended;
            } else {
                d.states.sink_suspended = suspended;
            }
        }
        self.sync_states();
    }

    /// Recomputes every sink's and monitor's state from the uncorked
    /// streams listed now on each; posts a CHANGE on each device whose
    /// state changed. Called wherever a stream comes, goes, moves, corks
    /// or uncorks.
    pub fn sync_states(&self) {
        // Relaxed: `corked` is a flag; the control thread wrote it.
        let playing: Vec<u32> = lock(&self.sink_inputs)
            .values()
            .filter(|s| !s.shared.corked.load(Relaxed))
            .map(|s| s.sink)
            .collect();
        let recording: Vec<u32> = lock(&self.source_outputs)
            .values()
            .filter(|s| !s.shared.corked.load(Relaxed))
            .map(|s| s.source)
            .collect();
        let mut changes = Vec::new();
        for (&sink, d) in lock(&self.devices).iter_mut() {
            let (s, m) = d
                .states
                .update(playing.contains(&sink), recording.contains(&d.source));
            if let Some(cells) = &d.cells {
                // Relaxed: status words the mixer copies into the page.
                cells.sink_state.store(d.states.sink.code() as u8, Relaxed);
                cells
                    .monitor_state
                    .store(d.states.monitor.code() as u8, Relaxed);
            }
            if s {
                changes.push((facility::SINK, sink));
            }
            if m {
                changes.push((facility::SOURCE, d.source));
            }
        }
        for (f, i) in changes {
            self.post(f, event::CHANGE, i);
        }
    }

    /// A stream of `facility` (sink input or source output) `index` was
    /// corked or uncorked (`changed`: its state did change): its CHANGE,
    /// then its device's if the device's state changed (PulseAudio's
    /// order).
    pub fn corked(&self, facility: u32, index: u32, changed: bool) {
        if changed {
            self.post(facility, event::CHANGE, index);
        }
        self.sync_states();
    }

    /// Lists a client (or replaces its properties).
    pub fn set_client(&self, index: u32, props: Proplist) {
        let new = lock(&self.clients).insert(index, props).is_none();
        let kind = if new { event::NEW } else { event::CHANGE };
        self.post(facility::CLIENT, kind, index);
    }

    /// Unlists a client and its subscription.
    pub fn remove_client(&self, index: u32) {
        lock(&self.subscribers).remove(&index);
        if lock(&self.clients).remove(&index).is_some() {
            self.post(facility::CLIENT, event::REMOVE, index);
        }
    }

    /// The clients and their properties, by index.
    pub fn clients(&self) -> Vec<(u32, Proplist)> {
        lock(&self.clients)
            .iter()
            .map(|(i, p)| (*i, p.clone()))
            .collect()
    }

    /// Lists a sink input.
    pub fn add_sink_input(&self, index: u32, s: SinkInput) {
        self.add(&self.sink_inputs, facility::SINK_INPUT, index, s);
    }

    /// Unlists a sink input; the source outputs that recorded it alone
    /// (`monitor_stream`) are killed, as PulseAudio kills them: their
    /// owners are woken to send RECORD_STREAM_KILLED.
    pub fn remove_sink_input(&self, index: u32) {
        self.remove(&self.sink_inputs, facility::SINK_INPUT, index);
        for o in lock(&self.source_outputs).values() {
            if o.direct_on_input == Some(index) {
                // Relaxed: the owner's wake-up below carries it.
                o.shared
                    .killed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                o.shared.notice.raise();
            }
        }
    }

    /// Changes a sink input under the lock (a CHANGE event follows when
    /// `f` succeeds); `None` if there is none.
    pub fn update_sink_input<R>(
        &self,
        index: u32,
        f: impl FnOnce(&mut SinkInput) -> Result<R, PaError>,
    ) -> Option<Result<R, PaError>> {
        self.update(&self.sink_inputs, facility::SINK_INPUT, index, f)
    }

    /// A snapshot of the sink inputs, by index.
    pub fn sink_inputs(&self) -> Vec<(u32, SinkInput)> {
        snapshot(&self.sink_inputs)
    }

    /// Lists a source output.
    pub fn add_source_output(&self, index: u32, s: SourceOutput) {
        self.add(&self.source_outputs, facility::SOURCE_OUTPUT, index, s);
    }

    /// Unlists a source output.
    pub fn remove_source_output(&self, index: u32) {
        self.remove(&self.source_outputs, facility::SOURCE_OUTPUT, index);
    }

    /// Changes a source output under the lock (a CHANGE event follows when
    /// `f` succeeds); `None` if there is none.
    pub fn update_source_output<R>(
        &self,
        index: u32,
        f: impl FnOnce(&mut SourceOutput) -> Result<R, PaError>,
    ) -> Option<Result<R, PaError>> {
        self.update(&self.source_outputs, facility::SOURCE_OUTPUT, index, f)
    }

    /// A snapshot of the source outputs, by index.
    pub fn source_outputs(&self) -> Vec<(u32, SourceOutput)> {
        snapshot(&self.source_outputs)
    }

    /// Lists a stream: its NEW, then the device's CHANGE if it started it
    /// (PulseAudio's order).
    fn add<T>(&self, table: &Mutex<BTreeMap<u32, T>>, facility: u32, index: u32, v: T) {
        lock(table).insert(index, v);
        self.post(facility, event::NEW, index);
        self.sync_states();
    }

    /// Unlists a stream: the device's CHANGE if it stopped it, then its
    /// REMOVE (PulseAudio's order).
    fn remove<T>(&self, table: &Mutex<BTreeMap<u32, T>>, facility: u32, index: u32) {
        let gone = lock(table).remove(&index);
        if gone.is_some() {
            self.sync_states();
            self.post(facility, event::REMOVE, index);
        }
        drop(gone);
    }

    fn update<T, R>(
        &self,
        table: &Mutex<BTreeMap<u32, T>>,
        facility: u32,
        index: u32,
        f: impl FnOnce(&mut T) -> Result<R, PaError>,
    ) -> Option<Result<R, PaError>> {
        let r = lock(table).get_mut(&index).map(f);
        if matches!(r, Some(Ok(_))) {
            self.post(facility, event::CHANGE, index);
        }
        r
    }

    /// Sets client `index`'s subscription mask (0 unsubscribes).
    pub fn subscribe(&self, index: u32, mask: u32, notice: Arc<Notice>) {
        let mut subs = lock(&self.subscribers);
        if mask == 0 {
            subs.remove(&index);
        } else {
            subs.entry(index)
                .and_modify(|s| s.mask = mask)
                .or_insert(Subscriber {
                    mask,
                    events: VecDeque::new(),
                    notice,
                });
        }
    }

    /// Queues an event for every subscriber whose mask has `facility`.
    pub fn post(&self, facility: u32, kind: u32, index: u32) {
        let mut subs = lock(&self.subscribers);
        for s in subs.values_mut() {
            if s.mask & (1 << facility) == 0 {
                continue;
            }
            if s.events.len() >= MAX_QUEUED_EVENTS {
                s.events.pop_front();
            }
            s.events.push_back((facility | kind, index));
            s.notice.raise();
        }
    }

    /// Takes client `index`'s queued events (`(event, object index)`).
    pub fn take_events(&self, index: u32) -> Vec<(u32, u32)> {
        lock(&self.subscribers)
            .get_mut(&index)
            .map(|s| s.events.drain(..).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::notice::Bell;
    const VOLUME: u32 = srb_pulse::tagstruct::VOLUME_NORM;

    #[test]
    fn subscribers_get_matching_events_only() {
        let r = Registry::default();
        let bell = Arc::new(Bell::new().unwrap());
        let w = Arc::new(Notice::new(bell.clone()));
        r.subscribe(1, 1 << facility::CLIENT, w.clone());
        r.set_client(7, Proplist::new());
        r.set_client(7, Proplist::new());
        r.post(facility::SINK_INPUT, event::NEW, 3);
        r.remove_client(7);
        assert!(bell.clear() && w.take());
        assert_eq!(
            r.take_events(1),
            vec![
                (facility::CLIENT | event::NEW, 7),
                (facility::CLIENT | event::CHANGE, 7),
                (facility::CLIENT | event::REMOVE, 7)
            ]
        );
        assert!(r.take_events(1).is_empty());
        r.subscribe(1, 0, w);
        r.set_client(8, Proplist::new());
        assert!(r.take_events(1).is_empty());
    }

    #[test]
    fn a_slow_subscriber_keeps_only_the_newest_events() {
        let r = Registry::default();
        r.subscribe(
            1,
            u32::MAX,
            Arc::new(Notice::new(Arc::new(Bell::new().unwrap()))),
        );
        for i in 0..(MAX_QUEUED_EVENTS as u32 + 10) {
            r.post(facility::SERVER, event::CHANGE, i);
        }
        let ev = r.take_events(1);
        assert_eq!(ev.len(), MAX_QUEUED_EVENTS);
        assert_eq!(ev[0].1, 10);
    }

    #[test]
    fn device_states_follow_streams_in_pulseaudios_order() {
        use crate::control::device_state::State;
        use srb_pulse::sample::SampleFormat;
        let r = Registry::with_devices(0, 0);
        let bell = Arc::new(Bell::new().unwrap());
        let w = Arc::new(Notice::new(bell));
        r.subscribe(1, 0b1111, w.clone());
        let shared = Arc::new(PlaybackShared::new(4, w, 0, false));
        let spec = SampleSpec {
            format: SampleFormat::S16Le,
            channels: 1,
            rate: 48_000,
        };
        let si = SinkInput {
            client: 1,
            spec,
            map: ChannelMap::new(&[0]).unwrap(),
            volume: CVolume::new(&[VOLUME]).unwrap(),
            muted: false,
            props: Proplist::new(),
            shared: shared.clone(),
            sink: 0,
            pinned: false,
        };
        let (sink, source, input) = (facility::SINK, facility::SOURCE, facility::SINK_INPUT);
        r.add_sink_input(4, si);
        assert_eq!(r.device_states().sink, State::Running);
        // Corked: IDLE; uncorked: RUNNING again.
        shared
            .corked
            .store(true, std::sync::atomic::Ordering::Relaxed);
        r.corked(input, 4, true);
        shared
            .corked
            .store(false, std::sync::atomic::Ordering::Relaxed);
        r.corked(input, 4, true);
        r.corked(input, 4, false);
        r.set_suspended(false, true);
        assert_eq!(r.device_states().monitor, State::Suspended);
        r.set_suspended(false, false);
        r.remove_sink_input(4);
        assert_eq!(
            r.take_events(1),
            vec![
                (input | event::NEW, 4),
                (sink | event::CHANGE, 0),
                (input | event::CHANGE, 4),
                (sink | event::CHANGE, 0),
                (input | event::CHANGE, 4),
                (sink | event::CHANGE, 0),
                (sink | event::CHANGE, 0),
                (source | event::CHANGE, 0),
                (sink | event::CHANGE, 0),
                (source | event::CHANGE, 0),
                (sink | event::CHANGE, 0),
                (input | event::REMOVE, 4),
            ]
        );
        assert_eq!(r.device_states().sink, State::Idle);
    }
}
