//! The server's sinks and sources as lists: each sink ([`SinkEntry`]) has
//! an index, a name, its record and its monitor source's record, its own
//! mixer ([`Engine`]: thread, clock, gains, suspend flags), its volume,
//! mute and suspend state as clients see them, and the module that owns
//! it. The sources are the sinks' monitors, and capture sources (an ALSA
//! input): a [`SinkEntry::capture`] entry whose engine records from the
//! device, whose "monitor" is the source and whose sink half is hidden
//! (no sink lookup, listing or default finds it; it still takes a sink
//! index, which keys its state in the registry).
//!
//! Indexes are allocated as PulseAudio's idxsets do: sinks and sources
//! have separate spaces and each new device takes the next number, never
//! one a removed device had. The default sink and source are *names*
//! that follow: the one set (SET_DEFAULT_SINK/SOURCE) while a device of
//! that name exists, otherwise the first sink (lowest index) and the
//! default sink's monitor, as PulseAudio falls back.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::control::server_info::{Device, INVALID_INDEX};
use crate::engine::mixer::Engine;
use crate::DeviceState;

/// One sink and its monitor source.
#[derive(Debug)]
pub struct SinkEntry {
    /// The sink's record (`sink.index` is the sink index).
    pub sink: Device,
    /// Its monitor source's record (`monitor.index` is the source index).
    pub monitor: Device,
    /// Its mixer and clock.
    pub engine: Arc<Engine>,
    /// The module that made it ([`INVALID_INDEX`]: srbd's own sink).
    pub module: u32,
    /// A capture source: only `monitor` (the source) is shown.
    pub capture: bool,
    state: Mutex<DeviceState>,
    monitor_state: Mutex<DeviceState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one assignment: a panicked holder left nothing
    // half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SinkEntry {
    /// A sink shown as `sink` with monitor `monitor`, mixed by `engine`.
    pub fn new(sink: Device, monitor: Device, engine: Arc<Engine>, module: u32) -> Self {
        let st = |d: &Device| {
            Mutex::new(DeviceState {
                volume: d.volume.clone(),
                muted: false,
                suspended: false,
            })
        };
        Self {
            state: st(&sink),
            monitor_state: st(&monitor),
            sink,
            monitor,
            engine,
            module,
            capture: false,
        }
    }

    /// A capture source shown as `source`, recorded by `engine` (a capture
    /// engine); `hidden` is the sink half nobody sees.
    pub fn capture(hidden: Device, source: Device, engine: Arc<Engine>) -> Self {
        Self {
            capture: true,
            ..Self::new(hidden, source, engine, INVALID_INDEX)
        }
    }

    /// The sink index.
    pub fn index(&self) -> u32 {
        self.sink.index
    }

    /// The monitor source's index.
    pub fn source_index(&self) -> u32 {
        self.monitor.index
    }

    /// The sink's (`monitor == false`) or monitor's volume, mute and
    /// suspend flag.
    pub fn state(&self, monitor: bool) -> DeviceState {
        lock(self.cell(monitor)).clone()
    }

    /// Changes the sink's or monitor's state under its lock; `f`'s result.
    pub fn update_state<R>(&self, monitor: bool, f: impl FnOnce(&mut DeviceState) -> R) -> R {
        f(&mut lock(self.cell(monitor)))
    }

    fn cell(&self, monitor: bool) -> &Mutex<DeviceState> {
        if monitor {
            &self.monitor_state
        } else {
            &self.state
        }
    }
}

/// Every sink (and so every monitor source), the defaults, the index
/// counters.
#[derive(Debug, Default)]
pub struct Sinks {
    list: Mutex<Vec<Arc<SinkEntry>>>,
    default_sink: Mutex<Option<String>>,
    default_source: Mutex<Option<String>>,
    next_sink: AtomicU32,
    next_source: AtomicU32,
}

impl Sinks {
    /// A list holding `first`; the counters continue after its indexes.
    pub fn with_first(first: SinkEntry) -> Self {
        let s = Self {
            next_sink: AtomicU32::new(first.index().wrapping_add(1)),
            next_source: AtomicU32::new(first.source_index().wrapping_add(1)),
            ..Self::default()
        };
        lock(&s.list).push(Arc::new(first));
        s
    }

    /// Fresh (sink, source) indexes for a new sink and its monitor.
    pub fn allocate(&self) -> (u32, u32) {
        // Relaxed: the counters only hand out distinct numbers.
        let next = |c: &AtomicU32| {
            let mut i = c.fetch_add(1, Ordering::Relaxed);
            if i == INVALID_INDEX {
                i = c.fetch_add(1, Ordering::Relaxed);
            }
            i
        };
        (next(&self.next_sink), next(&self.next_source))
    }

    /// Lists a sink.
    pub fn add(&self, entry: Arc<SinkEntry>) {
        let mut l = lock(&self.list);
        l.push(entry);
        l.sort_by_key(|e| e.index());
    }

    /// Unlists sink `index`; it, if it was listed.
    pub fn remove(&self, index: u32) -> Option<Arc<SinkEntry>> {
        let mut l = lock(&self.list);
        let k = l.iter().position(|e| e.index() == index)?;
        Some(l.remove(k))
    }

    /// Every entry (sinks and capture sources), by sink index.
    pub fn all(&self) -> Vec<Arc<SinkEntry>> {
        lock(&self.list).clone()
    }

    /// Every sink (no capture source), by index.
    pub fn sinks(&self) -> Vec<Arc<SinkEntry>> {
        lock(&self.list)
            .iter()
            .filter(|e| !e.capture)
            .cloned()
            .collect()
    }

    /// Sink `index`.
    pub fn by_index(&self, index: u32) -> Option<Arc<SinkEntry>> {
        lock(&self.list)
            .iter()
            .find(|e| !e.capture && e.index() == index)
            .cloned()
    }

    /// The sink whose monitor is source `index`.
    pub fn by_source_index(&self, index: u32) -> Option<Arc<SinkEntry>> {
        lock(&self.list)
            .iter()
            .find(|e| e.source_index() == index)
            .cloned()
    }

    /// The default sink: the one set by name while it exists, else the
    /// first. `None` only if there is no sink at all.
    pub fn default_sink(&self) -> Option<Arc<SinkEntry>> {
        let l = lock(&self.list);
        let set = lock(&self.default_sink).clone();
        let mut sinks = l.iter().filter(|e| !e.capture);
        set.and_then(|n| sinks.clone().find(|e| e.sink.name == n).cloned())
            .or_else(|| sinks.next().cloned())
    }

    /// The default source: the one set by name while it exists, else the
    /// default sink's monitor.
    pub fn default_source(&self) -> Option<Arc<SinkEntry>> {
        let set = lock(&self.default_source).clone();
        let found = set.and_then(|n| {
            lock(&self.list)
                .iter()
                .find(|e| e.monitor.name == n)
                .cloned()
        });
        found.or_else(|| self.default_sink())
    }

    /// Sets the default sink's name (it must name a sink).
    pub fn set_default_sink(&self, name: &str) {
        *lock(&self.default_sink) = Some(name.to_owned());
    }

    /// Sets the default source's name (it must name a source).
    pub fn set_default_source(&self, name: &str) {
        *lock(&self.default_source) = Some(name.to_owned());
    }

    /// The sink a name names, as PulseAudio's name registry reads it:
    /// empty or `@DEFAULT_SINK@` is the default sink, a number an index,
    /// anything else a name.
    pub fn sink(&self, name: &str) -> Option<Arc<SinkEntry>> {
        match name {
            "" | "@DEFAULT_SINK@" => self.default_sink(),
            n => {
                let l = lock(&self.list);
                let mut sinks = l.iter().filter(|e| !e.capture);
                let by_name = sinks.clone().find(|e| e.sink.name == n).cloned();
                by_name.or_else(|| {
                    let i = n.parse::<u32>().ok()?;
                    sinks.find(|e| e.index() == i).cloned()
                })
            }
        }
    }

    /// The sink whose monitor a source name names: empty or
    /// `@DEFAULT_SOURCE@` is the default source, `@DEFAULT_MONITOR@` the
    /// default sink's monitor, a number a source index, anything else a
    /// name.
    pub fn source(&self, name: &str) -> Option<Arc<SinkEntry>> {
        match name {
            "" | "@DEFAULT_SOURCE@" => self.default_source(),
            "@DEFAULT_MONITOR@" => self.default_sink(),
            n => {
                let l = lock(&self.list);
                let by_name = l.iter().find(|e| e.monitor.name == n).cloned();
                by_name.or_else(|| {
                    let i = n.parse::<u32>().ok()?;
                    l.iter().find(|e| e.source_index() == i).cloned()
                })
            }
        }
    }

    /// The sink (`monitor == false`) or the sink whose monitor is the
    /// source addressed by index or name as requests carry them: neither
    /// (index invalid, no name) is the default; a valid index wins over a
    /// name (callers that must refuse both check first).
    pub fn lookup(&self, monitor: bool, index: u32, name: Option<&str>) -> Option<Arc<SinkEntry>> {
        match (index, name, monitor) {
            (INVALID_INDEX, None, false) => self.default_sink(),
            (INVALID_INDEX, None, true) => self.default_source(),
            (INVALID_INDEX, Some(n), false) => self.sink(n),
            (INVALID_INDEX, Some(n), true) => self.source(n),
            (i, _, false) => self.by_index(i),
            (i, _, true) => self.by_source_index(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::server_info::ServerInfo;

    fn entry(index: u32, name: &str, engine: &Arc<Engine>) -> SinkEntry {
        let info = ServerInfo::new("u".into(), "h".into(), 1);
        let mut sink = info.sink.clone();
        let mut monitor = info.monitor.clone();
        sink.index = index;
        sink.name = name.into();
        monitor.index = index;
        monitor.name = format!("{name}.monitor");
        SinkEntry::new(sink, monitor, engine.clone(), INVALID_INDEX)
    }

    #[test]
    fn names_indexes_and_defaults() {
        let server = crate::test_server();
        let engine = server.engine.clone();
        let s = Sinks::with_first(entry(0, "a", &engine));
        assert_eq!(s.allocate(), (1, 1));
        s.add(Arc::new(entry(1, "b", &engine)));
        assert_eq!(s.sink("").unwrap().index(), 0);
        assert_eq!(s.sink("b").unwrap().index(), 1);
        assert_eq!(s.sink("1").unwrap().index(), 1);
        assert!(s.sink("c").is_none());
        assert_eq!(s.source("b.monitor").unwrap().index(), 1);
        assert!(s.source("b").is_none());
        s.set_default_sink("b");
        assert_eq!(s.sink("@DEFAULT_SINK@").unwrap().index(), 1);
        // No default source set: the default sink's monitor.
        assert_eq!(s.source("").unwrap().source_index(), 1);
        s.set_default_source("a.monitor");
        assert_eq!(s.source("@DEFAULT_SOURCE@").unwrap().source_index(), 0);
        assert_eq!(s.source("@DEFAULT_MONITOR@").unwrap().source_index(), 1);
        // The default follows the name: gone, the first sink stands in.
        s.remove(1);
        assert_eq!(s.default_sink().unwrap().index(), 0);
        // Indexes are not reused.
        assert_eq!(s.allocate(), (2, 2));
    }
}
