//! alsa-lib's own error messages (`ALSA lib pcm.c:…`), which it otherwise
//! prints to stderr past srbd's log: [`AlsaMessages`] collects them on the
//! calling thread (alsa-lib's thread-local error handler) so they can be
//! logged as `tracing` lines.
//!
//! Install one on each thread that calls alsa-lib (the mixer thread, a
//! reopen helper) and call [`AlsaMessages::log_new`] after an ALSA call
//! failed, not every period: the messages come with failures.

use std::cell::RefCell;
use std::rc::Rc;

/// Past this many buffered bytes the buffer is replaced by a fresh one.
const RESET_BYTES: usize = 64 * 1024;

/// The messages alsa-lib reported on this thread since it was installed.
#[derive(Debug)]
pub struct AlsaMessages {
    buffer: Rc<RefCell<alsa::Output>>,
    seen: usize,
}

impl AlsaMessages {
    /// Routes this thread's alsa-lib messages into a buffer.
    pub fn install() -> Result<Self, alsa::Error> {
        Ok(Self {
            buffer: alsa::Output::local_error_handler()?,
            seen: 0,
        })
    }

    /// The lines reported since the last call.
    pub fn take_new(&mut self) -> Vec<String> {
        let text = self.buffer.borrow().buffer_string(|b| {
            String::from_utf8_lossy(b.get(self.seen..).unwrap_or_default()).into_owned()
        });
        self.seen += text.len();
        if self.seen > RESET_BYTES {
            if let Ok(fresh) = alsa::Output::local_error_handler() {
                self.buffer = fresh;
                self.seen = 0;
            }
        }
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Logs the lines reported since the last call (as warnings, naming
    /// `device`); returns how many.
    pub fn log_new(&mut self, device: &str) -> usize {
        let lines = self.take_new();
        for line in &lines {
            tracing::warn!(device, "alsa-lib: {line}");
        }
        lines.len()
    }
}
