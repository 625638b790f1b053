//! [`IrqSignal`]: the boards' [`Notify`] and [`Wait`] for two contexts on one
//! core (thread mode and an exception handler).
//!
//! `notify` counts one notification and pends an exception (PendSV or
//! SysTick), so the notified side runs (handler) or wakes from `WFI`
//! (thread mode). `wait` sleeps with `WFI` until the count is non-zero and
//! takes it. The check and the `WFI` happen with interrupts masked
//! (PRIMASK): an exception pending at that point still ends the `WFI`, and
//! runs as soon as the mask is lifted, so a notification cannot slip in
//! between "count is zero" and "sleep" and be lost.
#![allow(dead_code)]

use core::convert::Infallible;
use core::time::Duration;

use cortex_m::peripheral::SCB;
use portable_atomic::{AtomicU32, Ordering};
use srb_core::{Notify, Wait};

/// Which exception a notification pends.
#[derive(Debug, Clone, Copy)]
pub enum Irq {
    /// PendSV: its handler does nothing; pending it only ends a `WFI`.
    PendSv,
    /// SysTick: runs the SysTick handler now instead of at the next tick.
    SysTick,
}

/// A notification counter plus the exception that delivers it.
#[derive(Debug)]
pub struct IrqSignal {
    pending: AtomicU32,
    irq: Irq,
}

impl IrqSignal {
    /// A signal that pends `irq` on every notification.
    pub const fn new(irq: Irq) -> Self {
        Self {
            pending: AtomicU32::new(0),
            irq,
        }
    }

    fn take(&self) -> u64 {
        // Acquire pairs with the Release in `notify`.
        u64::from(self.pending.swap(0, Ordering::Acquire))
    }

    /// Notifications counted so far and not yet taken (for logs).
    pub fn peek(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }
}

impl Notify for IrqSignal {
    type Error = Infallible;

    fn notify(&self) -> Result<(), Infallible> {
        // Saturate rather than wrap, so a storm of notifications never reads
        // as none.
        let _ = self
            .pending
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            });
        match self.irq {
            Irq::PendSv => SCB::set_pendsv(),
            Irq::SysTick => SCB::set_pendst(),
        }
        Ok(())
    }
}

impl Wait for &IrqSignal {
    type Error = Infallible;

    /// `None`: sleep until notified. `Some(_)`: there is no clock here, so a
    /// timed wait sleeps until the next exception of any kind and returns
    /// what is pending then (`Ok(0)`: "timed out").
    fn wait(&mut self, timeout: Option<Duration>) -> Result<u64, Infallible> {
        loop {
            let n = cortex_m::interrupt::free(|_| {
                let n = self.take();
                if n == 0 {
                    // With PRIMASK set a pending exception still ends WFI;
                    // it runs when `free` restores the mask.
                    cortex_m::asm::wfi();
                }
                n
            });
            if n > 0 {
                return Ok(n);
            }
            if timeout.is_some() {
                return Ok(self.take());
            }
        }
    }

    fn try_take(&mut self) -> Result<u64, Infallible> {
        Ok(self.take())
    }
}
