//! The atomics shim: one set of names for the atomics the core uses.
//!
//! In a normal build these are [`portable_atomic`]'s types, which compile to
//! native instructions on every target that has them and, on targets without
//! compare-and-swap (Cortex-M0), to the single-core implementation when the
//! board enables `portable-atomic/unsafe-assume-single-core` (a documented
//! feature boundary: such a target cannot share a block with another core).
//! `portable-atomic` is used with `default-features = false`, so it can never
//! fall back to a lock: a lock is private to one process and would silently
//! break memory shared between processes.
//!
//! Under `cfg(loom)` the same names are loom's model-checked atomics, so the
//! loom models in `srb-loom-tests` exercise exactly this crate's code.
//!
//! Every atomic type used here is asserted to be lock-free at compile time.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicI32, AtomicU32};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{fence, AtomicI32, AtomicU32};

pub(crate) use core::sync::atomic::Ordering;

// A lock-based atomic in shared memory is a bug that no test on one process
// would find, so refuse to build instead.
#[cfg(not(loom))]
const _: () = {
    assert!(
        AtomicI32::is_always_lock_free(),
        "AtomicI32 must be lock-free"
    );
    assert!(
        AtomicU32::is_always_lock_free(),
        "AtomicU32 must be lock-free"
    );
    assert!(core::mem::size_of::<AtomicI32>() == 4);
    assert!(core::mem::align_of::<AtomicI32>() == 4);
    assert!(core::mem::size_of::<AtomicU32>() == 4);
    assert!(core::mem::align_of::<AtomicU32>() == 4);
};

/// A hint to the CPU (or to loom's scheduler) that the caller is spinning.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// A point where loom may switch threads: placed before every payload copy.
///
/// loom only switches threads at operations it knows (atomics, locks), and
/// its partial-order reduction only reorders operations that conflict. A
/// payload copy is neither (its loom cell accesses, see
/// [`crate::block::RingData`], are checked but are not scheduling points),
/// so loom would not explore the orders of the copies themselves. Under
/// `cfg(loom)` every scheduling point
/// is a read-modify-write of one model-wide atomic, so all of them conflict
/// with each other and loom explores the orders of the copies themselves.
/// In normal builds this is nothing.
#[derive(Debug)]
pub(crate) struct SchedPoint;

#[cfg(loom)]
loom::lazy_static! {
    static ref PAYLOAD_CLOCK: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
}

impl SchedPoint {
    pub(crate) fn new() -> Self {
        Self
    }

    #[inline(always)]
    pub(crate) fn hit(&self) {
        // Relaxed: only a scheduling point for loom; it orders nothing.
        #[cfg(loom)]
        PAYLOAD_CLOCK.fetch_add(1, Ordering::Relaxed);
        #[cfg(all(test, not(loom)))]
        test_hook::run();
    }
}

/// Unit tests only: code to run at every [`SchedPoint`], on this thread.
/// It lets a test act as a peer *between* a ring end's load of a shared
/// word and its read-modify-write of it, deterministically (the race a
/// scribbling peer would win only now and then).
#[cfg(all(test, not(loom)))]
pub(crate) mod test_hook {
    use core::cell::RefCell;
    use std::boxed::Box;

    type Hook = Box<dyn FnMut()>;

    std::thread_local! {
        static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Installs `f` for this thread (replacing any previous hook).
    pub(crate) fn set(f: impl FnMut() + 'static) {
        HOOK.with(|h| *h.borrow_mut() = Some(Box::new(f)));
    }

    /// Removes this thread's hook.
    pub(crate) fn clear() {
        HOOK.with(|h| *h.borrow_mut() = None);
    }

    pub(crate) fn run() {
        HOOK.with(|h| {
            if let Some(f) = h.borrow_mut().as_mut() {
                f();
            }
        });
    }
}
