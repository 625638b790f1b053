//! Real-time setup shared by `srbd`'s mixer thread and the `dsp-sim`
//! process: asking for `SCHED_FIFO`, locking memory, and proving the
//! period path does not allocate.
//!
//! | file | what it holds |
//! |---|---|
//! | [`sched`] | [`sched::request_fifo`]: `SCHED_FIFO` for the calling thread (one log line, granted or refused, then carry on); [`sched::lock_memory`]: `mlockall`; [`sched::thread_policy`]: a thread's policy as the kernel reports it |
//! | [`alloc_count`] | [`alloc_count::CountingAlloc`]: a `#[global_allocator]` wrapper around `System` that counts allocations made by an armed thread |
//!
//! Nothing here imports another module of the crate; `engine` and `dsp`
//! use it.

pub mod alloc_count;
pub mod sched;
