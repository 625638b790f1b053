//! Modules: what LOAD_MODULE and the config file's `[[modules]]` load,
//! UNLOAD_MODULE unloads and `pactl list modules` lists (index, name,
//! argument string as given, usage counter, properties).
//!
//! | module | what it holds |
//! |---|---|
//! | [`args`] | PulseAudio's `key=value key="quoted value"` argument syntax |
//! | [`null_sink`] | `module-null-sink`: a virtual sink with its own clock and monitor |
//! | [`loopback`] | `module-loopback`: a source played into a sink through a rate-matched queue |
//! | [`remap_sink`] | `module-remap-sink`: a virtual sink whose channels go to chosen channels of a master sink |
//! | this file | [`Modules`], the registry; [`load`] / [`unload`]; [`ModuleError`] |
//!
//! Every failure to load answers `PA_ERR_MODINITFAILED` ("Module
//! initialization failed"), as PulseAudio 16.1 does for an unknown module,
//! a bad argument string or a bad value, with a log line naming the
//! module and what was wrong.

pub mod args;
pub mod loopback;
pub mod null_sink;
pub mod remap_sink;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::control::registry::{event, facility};
use crate::control::server_info::INVALID_INDEX;
use crate::Server;
use srb_pulse::tagstruct::{Proplist, TagWriter};

pub use args::{ArgError, Args};

/// Why a module did not load.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// No module of that name.
    #[error("no module named {0:?}")]
    Unknown(String),
    /// The argument string does not parse, or names an argument the module
    /// does not take.
    #[error("{module}: {source}")]
    Args {
        /// The module.
        module: &'static str,
        /// What is wrong.
        source: ArgError,
    },
    /// An argument has a value the module cannot use.
    #[error("{module}: bad value {value:?} for {key}: {why}")]
    Value {
        /// The module.
        module: &'static str,
        /// The argument.
        key: &'static str,
        /// Its value.
        value: String,
        /// Why it is unusable.
        why: String,
    },
    /// The module could not set itself up.
    #[error("{module}: {why}")]
    Init {
        /// The module.
        module: &'static str,
        /// What failed.
        why: String,
    },
}

impl ModuleError {
    /// A bad value of argument `key` of `module`.
    pub fn value(module: &'static str, key: &'static str, value: &str, why: impl ToString) -> Self {
        Self::Value {
            module,
            key,
            value: value.to_owned(),
            why: why.to_string(),
        }
    }
}

/// What a loaded module owns (removed when it is unloaded).
#[derive(Debug)]
pub enum Owned {
    /// A sink (and its monitor), by sink index.
    Sink(u32),
    /// A loopback's two streams and their queue.
    Loopback(loopback::Loopback),
    /// A remap sink (by sink index) and the loopback into its master.
    Remap(u32, loopback::Loopback),
}

/// One loaded module.
#[derive(Debug)]
pub struct Module {
    /// Its index.
    pub index: u32,
    /// Its name (`module-null-sink`).
    pub name: &'static str,
    /// Its argument string, as given.
    pub argument: String,
    /// What it made.
    pub owned: Owned,
}

/// The loaded modules and the index counter.
#[derive(Debug, Default)]
pub struct Modules {
    list: Mutex<Vec<Module>>,
    next: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one push or remove: nothing half-done to see.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Modules {
    /// A fresh module index (PulseAudio's never reuses one).
    fn allocate(&self) -> u32 {
        // Relaxed: the counter only hands out distinct numbers.
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// (index, name, argument, sink it owns) of every module, by index.
    pub fn list(&self) -> Vec<(u32, &'static str, String, Option<u32>)> {
        lock(&self.list)
            .iter()
            .map(|m| {
                let sink = match &m.owned {
                    Owned::Sink(s) | Owned::Remap(s, _) => Some(*s),
                    Owned::Loopback(_) => None,
                };
                (m.index, m.name, m.argument.clone(), sink)
            })
            .collect()
    }
}

/// Most modules loaded at once (each may own a mixer thread or a
/// loopback thread: a client cannot make srbd start threads without end).
pub const MAX_MODULES: usize = 64;

/// Longest sink name a module may give.
pub const MAX_NAME: usize = 128;

/// Whether `name` may name a sink: 1..=[`MAX_NAME`] printable ASCII
/// characters, no space (PulseAudio's name registry is stricter still).
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

/// What a module is, for its properties.
fn description(name: &str) -> &'static str {
    match name {
        null_sink::NAME => "Clocked NULL sink",
        loopback::NAME => "Loopback from source to sink",
        remap_sink::NAME => "Virtual channel remapping sink",
        _ => "",
    }
}

/// Loads module `name` with `argument`; its index. The NEW events of what
/// it made, then its own, are posted.
pub fn load(server: &Server, name: &str, argument: &str) -> Result<u32, ModuleError> {
    if lock(&server.modules.list).len() >= MAX_MODULES {
        return Err(ModuleError::Init {
            module: "module",
            why: format!("{MAX_MODULES} modules are loaded already"),
        });
    }
    let index = server.modules.allocate();
    let (name, owned) = match name {
        null_sink::NAME => (null_sink::NAME, null_sink::load(server, index, argument)?),
        loopback::NAME => (loopback::NAME, loopback::load(server, argument)?),
        remap_sink::NAME => (remap_sink::NAME, remap_sink::load(server, index, argument)?),
        other => return Err(ModuleError::Unknown(other.to_owned())),
    };
    lock(&server.modules.list).push(Module {
        index,
        name,
        argument: argument.to_owned(),
        owned,
    });
    server.registry.post(facility::MODULE, event::NEW, index);
    tracing::info!(module = name, index, argument, "module loaded");
    Ok(index)
}

/// Unloads module `index`: what it made goes (a sink's streams move to
/// the default sink first), then its REMOVE is posted. `false` if there
/// is no such module. A sink's going first unloads the loopbacks and
/// remap sinks that use it, as PulseAudio's unload themselves when their
/// source, sink or master goes (so no loopback is left feeding a sink
/// from its own monitor).
pub fn unload(server: &Server, index: u32) -> bool {
    let owned_sink = lock(&server.modules.list)
        .iter()
        .find(|m| m.index == index)
        .and_then(|m| match &m.owned {
            Owned::Sink(s) | Owned::Remap(s, _) => Some(*s),
            Owned::Loopback(_) => None,
        });
    if let Some(sink) = owned_sink {
        let users: Vec<u32> = lock(&server.modules.list)
            .iter()
            .filter(|m| m.index != index)
            .filter(|m| match &m.owned {
                Owned::Loopback(l) | Owned::Remap(_, l) => l.touches(server, sink),
                Owned::Sink(_) => false,
            })
            .map(|m| m.index)
            .collect();
        for u in users {
            tracing::info!(module = u, sink, "unloaded with the sink it used");
            unload(server, u);
        }
    }
    let module = {
        let mut l = lock(&server.modules.list);
        let Some(k) = l.iter().position(|m| m.index == index) else {
            return false;
        };
        l.remove(k)
    };
    match module.owned {
        Owned::Sink(sink) => server.remove_sink(sink),
        Owned::Loopback(l) => l.stop(server),
        Owned::Remap(sink, l) => {
            l.stop(server);
            server.remove_sink(sink);
        }
    }
    server.registry.post(facility::MODULE, event::REMOVE, index);
    tracing::info!(module = module.name, index, "module unloaded");
    true
}

/// The module whose loopback has sink input (`playback`) or source output
/// `index`, if any.
pub fn owner_of_stream(server: &Server, playback: bool, index: u32) -> Option<u32> {
    lock(&server.modules.list)
        .iter()
        .find(|m| match &m.owned {
            Owned::Loopback(l) | Owned::Remap(_, l) => l.owns(playback, index),
            Owned::Sink(_) => false,
        })
        .map(|m| m.index)
}

/// Unloads every module, newest first (at shutdown).
pub fn unload_all(server: &Server) {
    let indexes: Vec<u32> = server.modules.list().iter().rev().map(|m| m.0).collect();
    for i in indexes {
        unload(server, i);
    }
}

/// One GET_MODULE_INFO record as libpulse 16.1 reads it: index, name,
/// argument, usage counter, then before v15 an auto-unload flag, from v15
/// the properties.
pub fn write_info(
    w: &mut TagWriter,
    version: u32,
    index: u32,
    name: &str,
    argument: &str,
    n_used: u32,
) {
    w.put_u32(index)
        .put_string(Some(name))
        .put_string(Some(argument))
        .put_u32(n_used);
    if version < 15 {
        w.put_bool(false);
    } else {
        let mut p = Proplist::new();
        for (k, v) in [
            ("module.author", "srbd"),
            ("module.description", description(name)),
            ("module.version", "16.1"),
        ] {
            // Constant valid keys: a refusal only drops a cosmetic field.
            let _ = p.set_str(k, v);
        }
        w.put_proplist(&p);
    }
}

/// The usage counter `pactl list modules` shows: a sink's streams and its
/// monitor's, as PulseAudio counts a null sink's; "n/a" for the rest.
pub fn n_used(server: &Server, sink: Option<u32>) -> u32 {
    let Some(sink) = sink else {
        return INVALID_INDEX;
    };
    let source = server.sinks.by_index(sink).map(|e| e.source_index());
    let inputs = server
        .registry
        .sink_inputs()
        .iter()
        .filter(|(_, s)| s.sink == sink)
        .count();
    let outputs = server
        .registry
        .source_outputs()
        .iter()
        .filter(|(_, s)| Some(s.source) == source)
        .count();
    u32::try_from(inputs + outputs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_names() {
        assert!(valid_name("rec"));
        assert!(valid_name("alsa_output.pci-0000_00_1f.3.analog-stereo"));
        for bad in ["", "a b", "tab\there", "new\nline", "é", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn load_unload_and_the_module_cap() {
        let server = crate::test_server();
        let i = load(&server, "module-null-sink", "sink_name=x").unwrap();
        assert!(server.sinks.sink("x").is_some());
        assert!(matches!(
            load(&server, "module-null-sink", "sink_name=x"),
            Err(ModuleError::Value {
                key: "sink_name",
                ..
            })
        ));
        assert!(matches!(
            load(&server, "module-nope", ""),
            Err(ModuleError::Unknown(_))
        ));
        assert!(unload(&server, i));
        assert!(!unload(&server, i));
        assert!(server.sinks.sink("x").is_none());
        for n in 0..MAX_MODULES {
            load(&server, "module-null-sink", &format!("sink_name=s{n}")).unwrap();
        }
        assert!(matches!(
            load(&server, "module-null-sink", "sink_name=one_too_many"),
            Err(ModuleError::Init { .. })
        ));
        unload_all(&server);
        assert_eq!(server.sinks.all().len(), 1);
        assert!(server.modules.list().is_empty());
    }

    #[test]
    fn a_sink_takes_the_loopbacks_and_remaps_using_it_along() {
        let server = crate::test_server();
        let a = load(&server, "module-null-sink", "sink_name=a").unwrap();
        let b = load(&server, "module-null-sink", "sink_name=b").unwrap();
        load(
            &server,
            "module-loopback",
            "source=a.monitor sink=srb_output",
        )
        .unwrap();
        load(
            &server,
            "module-loopback",
            "source=srb_output.monitor sink=b",
        )
        .unwrap();
        load(&server, "module-remap-sink", "master=a sink_name=r").unwrap();
        assert_eq!(server.modules.list().len(), 5);
        unload(&server, a);
        let left: Vec<&str> = server.modules.list().iter().map(|m| m.1).collect();
        assert_eq!(left, ["module-null-sink", "module-loopback"]);
        // Killing a loopback's stream unloads it.
        let out = server.registry.source_outputs()[0].0;
        let owner = owner_of_stream(&server, false, out).unwrap();
        assert!(owner_of_stream(&server, true, out + 1000).is_none());
        unload(&server, owner);
        unload(&server, b);
        assert!(server.modules.list().is_empty());
        assert!(server.registry.sink_inputs().is_empty());
        assert!(server.registry.source_outputs().is_empty());
    }
}
