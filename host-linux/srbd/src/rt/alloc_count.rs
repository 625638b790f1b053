//! [`CountingAlloc`]: proves a loop does not allocate.
//!
//! A binary installs it as its global allocator
//! (`#[global_allocator] static A: CountingAlloc = CountingAlloc;`); every
//! allocation goes to [`std::alloc::System`] as before, and those made by
//! a thread that called [`arm`] (and not yet [`disarm`]) are counted.
//! `dsp-sim` arms its period loop after warm-up and reports [`count`] when
//! it stops; a test asserts it stayed 0. In a binary without it (srbd's
//! unit tests, say) [`count`] stays 0 and means nothing.
//!
//! The armed flag is a `const`-initialized thread-local `Cell<bool>` (no
//! destructor, no lazy allocation), so reading it inside the allocator
//! cannot recurse.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations (`alloc`, `alloc_zeroed`, `realloc`) made by armed threads.
static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

/// The counting wrapper around [`System`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

fn note() {
    // `try_with`: no panic while the thread's locals are torn down.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        // Relaxed: a counter read after the armed stretch ends.
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; `note` neither allocates
// nor unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as is (the caller upholds `alloc`'s contract).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded as is (`ptr` came from this allocator, which is
        // `System`'s).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Starts counting this thread's allocations.
pub fn arm() {
    ARMED.with(|a| a.set(true));
}

/// Stops counting this thread's allocations.
pub fn disarm() {
    ARMED.with(|a| a.set(false));
}

/// Allocations counted so far (all armed threads).
pub fn count() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_while_armed_and_only_through_the_allocator() {
        // Not installed in the test binary: calls go through it by hand.
        let a = CountingAlloc;
        let layout = Layout::from_size_align(64, 8).unwrap();
        let before = count();
        // SAFETY: a non-zero-size layout; the block is freed with the same
        // layout.
        unsafe { a.dealloc(a.alloc(layout), layout) };
        assert_eq!(count(), before, "not armed");
        arm();
        // SAFETY: as above.
        unsafe {
            let p = a.alloc(layout);
            let p = a.realloc(p, layout, 128);
            a.dealloc(p, Layout::from_size_align(128, 8).unwrap());
        }
        disarm();
        assert_eq!(count(), before + 2);
    }
}
