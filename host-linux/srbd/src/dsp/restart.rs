//! [`RestartHandle`]: how the mixer (through its [`super::link::DspLink`])
//! asks the supervisor thread to replace a DSP, and the state the two share.
//! Apart from the supervisor so that the link, which holds a handle, and
//! the supervisor, which makes links, do not import each other.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

/// A restart request for whichever DSP runs.
pub(crate) const ANY: u64 = u64::MAX;

/// State shared by the supervisor thread and its handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    /// The generation a restart was asked for (0: none, [`ANY`]: current).
    pub(crate) restart: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// The running DSP's pid (0: none).
    pub(crate) pid: AtomicU32,
    /// The running (or last) DSP's generation.
    pub(crate) generation: AtomicU64,
    /// The supervisor thread, to unpark it.
    pub(crate) thread: OnceLock<Thread>,
    /// The chain spec the next DSP starts with.
    pub(crate) chain: Mutex<Option<String>>,
    /// The format, to check chain specs.
    pub(crate) rate: u32,
    pub(crate) channels: u8,
}

/// A cheap, cloneable handle the mixer uses to ask for a restart.
#[derive(Debug, Clone)]
pub struct RestartHandle {
    pub(crate) shared: Arc<Shared>,
}

impl RestartHandle {
    /// The running DSP is dead or stuck: kill and replace it (whichever
    /// runs when the supervisor looks; ignored while none runs).
    /// Non-blocking and allocation-free: an atomic and an unpark.
    pub fn request_restart(&self) {
        self.request(ANY);
    }

    /// Kill and replace DSP number `generation` ([`crate::dsp::link::DspLink::generation`]),
    /// if it still runs; a request about a DSP already replaced is
    /// ignored. Non-blocking and allocation-free.
    pub fn request_restart_of(&self, generation: u64) {
        if generation != 0 {
            self.request(generation);
        }
    }

    fn request(&self, generation: u64) {
        // Generations only grow, so the largest request is the one that can
        // still matter. Relaxed: a flag; the unpark wakes the reader.
        self.shared.restart.fetch_max(generation, Ordering::Relaxed);
        if let Some(t) = self.shared.thread.get() {
            t.unpark();
        }
    }

    /// How many times a DSP had to be started again (after an exit, a
    /// requested restart, or a failed start).
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }
}
