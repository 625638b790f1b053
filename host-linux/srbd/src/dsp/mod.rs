//! The DSP peer: `dsp-sim`, a separate process standing in for an audio DSP
//! core, and the `srbd` side that spawns, feeds and supervises it
//! (`shared/docs/design.md` §6).
//!
//! On real hardware the mixed audio often leaves the host for a DSP core
//! through shared memory and a doorbell. `dsp-sim` is that DSP as a Linux
//! process: `srbd` hands it an `srb`-layout block and two eventfds over a
//! socket pair ([`srb_linux::handshake`]); from then on the DSP's period clock
//! drives the sink.
//!
//! ## What lives where
//!
//! | file | what it holds | runs on |
//! |---|---|---|
//! | [`board`] | the board peer: [`board::spawn`] makes the memory file (setup area + `srb` block) QEMU's `mps2-an386` uses as PSRAM, starts QEMU with the Cortex-M4F firmware, and returns a polled [`link::DspLink`]; [`board::BoardConfig`], [`board::BoardFile`] | the supervisor's thread (spawn); the mixer (the rings) |
//! | [`link`] | [`link::DspLink`]: `srbd`'s end of one connected DSP — sends periods and controls, decodes and checks everything the DSP sends; [`link::StatsCell`] to publish the DSP's statistics; [`link::DspError`] | `srbd`'s real-time mixer thread: nothing in it blocks or allocates per period |
//! | [`peer`] | [`peer::run`]: the DSP process's loop (timerfd clock, pull, process with the `srb-dsp-sim` chain or bypass, meter, time, answer, report) | the `dsp-sim` process |
//! | [`restart`] | [`restart::RestartHandle`]: the mixer's way to ask for a new DSP, and the state it shares with the supervisor; [`restart::Backoff`], the restart delays | `srbd`'s mixer (non-blocking, allocation-free) |
//! | [`supervisor`] | [`supervisor::Supervisor`]: spawns `dsp-sim`, does the creator's handshake, hands each new [`link::DspLink`] to the mixer, restarts a dead or stuck DSP with back-off | its own thread in `srbd` |
//! | `src/bin/dsp-sim.rs` | the `dsp-sim` binary: CLI, logging, `SCHED_FIFO` and `mlockall` with `--rt-priority`, the counting global allocator, [`srb_linux::handshake::accept`] on fd 0, then [`peer::run`] | the `dsp-sim` process |
//!
//! The kernels, the chain spec and the message codec are `srb-dsp-sim`'s
//! ([`srb_dsp_sim::link`] documents the bytes).
//!
//! ## Why the `dsp-sim` binary lives here and not in `srb-dsp-sim`
//!
//! The design allows the process to live in a second crate under
//! `dsp-sim/`. It lives in `srbd` instead because:
//!
//! - the binary needs `srb-linux`'s transport (sealed memfds, eventfds,
//!   `SCM_RIGHTS`, the handshake, [`srb_linux::channel::Channel`]), and
//!   `srb-dsp-sim` must stay `#![no_std]` with no std dependencies, since
//!   the boards in `boards/` build its kernels for bare-metal targets;
//! - srbd's end-to-end tests spawn `dsp-sim` from the same target
//!   directory as `srbd` (cargo builds a package's binaries for its
//!   integration tests, not another package's), and [`link`] and [`peer`]
//!   are the two ends of one protocol, best kept and tested side by side.
//!
//! So the dependency points one way: `srbd` → `srb-linux`, `srb-dsp-sim`
//! → `srb-core`.
//!
//! ## Message flow
//!
//! Startup: the [`supervisor`] makes a socket pair, spawns
//! `dsp-sim --rate R --channels C --period-frames N [--chain SPEC]
//! [--rt-priority P]` with
//! one end as its stdin (fd 0), and runs [`srb_linux::handshake::create`]
//! (layout `srb`, eventfd signals, rings sized by
//! [`supervisor::ring_capacity`]); `dsp-sim` runs
//! [`srb_linux::handshake::accept`] on fd 0. The stream format (rate, channels,
//! period) travels on the command line, not in a message: it is fixed for
//! the life of a DSP process (a new format means a new process), it shows up
//! in `ps`, and the DSP never runs with a default the host did not choose.
//!
//! Then, every period (host = `srbd`'s mixer through a [`link::DspLink`]):
//!
//! ```text
//! DSP tick (timerfd)  ── Control::Pull { seq } ──────────────▶ host
//!                                                              host renders the mix
//! DSP                 ◀── Period { seq, mix } ──────────────── host
//! DSP processes (chain or bypass), meters, times it
//! DSP                 ── Period { seq, processed } ──────────▶ host (DspEvent::Processed)
//!                                                              host delivers it (output, monitor)
//! ```
//!
//! - The DSP waits for `Period(seq)` only until its next tick. If it comes
//!   later, the DSP counts a deadline miss, pulls `seq + 1`, and drops the
//!   late period when it arrives (it never answers it). A tick the DSP
//!   itself slept through (timerfd expirations > 1) counts as a miss per
//!   lost tick, and its sequence numbers are skipped. Processing that takes
//!   longer than a period is a miss too.
//! - So the host sees, per `seq`, either `Processed { seq }` before
//!   `Pull { seq + k }`, or no answer at all; a `Pull` while a period is
//!   outstanding means the DSP gave up on it. The host never waits for an
//!   answer either: a period without one in time is an xrun, played as
//!   silence (or, by choice, unprocessed) and counted, and the DSP is kept
//!   ([`crate::engine::dsp_clock`] has the whole deadline policy). A
//!   stopped DSP that resumes answers a period already played and pulls a
//!   `seq` that skips the ticks it slept through; the host discards what
//!   came too late by `seq`.
//! - The DSP is replaced only when it is dead: its socket hangs up, it
//!   sends something invalid, or it makes no progress for the stall
//!   timeout (1 s by default).
//! - Controls go host → DSP at any time: `SetChain` (an invalid spec is
//!   logged by the DSP and ignored), `Bypass`, `QueryStats`. The DSP sends
//!   `Stats` in answer to `QueryStats` and unsolicited about once a second:
//!   periods processed, worst and mean processing time (copy in, process,
//!   meter, encode), deadline misses (cumulative since the DSP started) and
//!   per-channel peaks (since the previous `Stats`).
//! - The DSP exits cleanly when the host goes away (socket hang-up): a DSP
//!   never outlives `srbd`.
//!
//! ## How `srbd` uses it
//!
//! ```no_run
//! use std::sync::mpsc;
//! use srbd::dsp::link::{DspEvent, DspLink};
//! use srbd::dsp::supervisor::{default_program, DspConfig, Supervisor};
//!
//! let (tx, rx) = mpsc::channel::<DspLink>();
//! let cfg = DspConfig {
//!     program: default_program().expect("dsp-sim next to srbd or on PATH"),
//!     rate: 48_000,
//!     channels: 2,
//!     period_frames: 480,
//!     chain: Some("gain:-6dB".into()),
//!     rt_priority: 0,
//! };
//! // Spawns the first DSP (an error here: run on srbd's own timerfd clock).
//! let supervisor = Supervisor::start(cfg, tx).expect("dsp-sim starts");
//! // Mixer thread (real time): adopt new links, poll, answer pulls.
//! let mut link = rx.recv().unwrap();
//! let mut mix = vec![0.0f32; 480 * 2];
//! let mut processed = vec![0.0f32; 480 * 2];
//! loop {
//!     // ... poll link.poll_fd() (POLLIN) and link.peer_fd() (POLLRDHUP) with
//!     // a timeout of two periods, bracketed by before_poll / after_poll ...
//!     while let Some(ev) = link.recv(&mut processed).unwrap() {
//!         match ev {
//!             DspEvent::Pull { seq } => {
//!                 // render the mix into `mix`, then:
//!                 link.send_period(seq, &mix, 2).unwrap();
//!             }
//!             DspEvent::Processed { .. } => { /* deliver `processed` */ }
//!             DspEvent::Stats(_s) => { /* StatsCell::publish */ }
//!         }
//!     }
//!     // No Pull when one is due: cover the period on the own clock and
//!     // play silence (an xrun; the DSP stays). No progress for the stall
//!     // timeout, an error, or a hang-up: link.request_restart(), run on
//!     // the own clock playing silence until rx.try_recv() yields the
//!     // next link.
//!     # break;
//! }
//! supervisor.stop();
//! ```
//!
//! The supervisor also restarts a DSP that exits by itself; every new DSP
//! arrives as a new [`link::DspLink`] on the channel (with the chain from
//! [`supervisor::Supervisor::set_chain`] or the start configuration, not
//! bypassed). Dropping an old link unmaps its block and closes its fds (a
//! `munmap` and a few `close` calls, once per restart, not per period).

pub mod board;
pub mod link;
pub mod peer;
pub mod restart;
pub mod supervisor;

/// The shortest period a DSP runs (frames).
pub const MIN_PERIOD_FRAMES: usize = 64;
/// The longest period a DSP runs (frames).
pub const MAX_PERIOD_FRAMES: usize = 4096;
/// The lowest sample rate a DSP accepts (Hz).
pub const MIN_RATE: u32 = 1_000;
/// The highest sample rate a DSP accepts (Hz).
pub const MAX_RATE: u32 = 384_000;

/// Checks a stream format both ends must agree on; `Err` names the rule
/// that failed.
pub(crate) fn check_format(rate: u32, channels: u8, period_frames: usize) -> Result<(), String> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(format!("rate {rate} Hz is not in {MIN_RATE}..={MAX_RATE}"));
    }
    if channels == 0 || usize::from(channels) > srb_dsp_sim::MAX_CHANNELS {
        return Err(format!(
            "{channels} channels is not in 1..={}",
            srb_dsp_sim::MAX_CHANNELS
        ));
    }
    if !(MIN_PERIOD_FRAMES..=MAX_PERIOD_FRAMES).contains(&period_frames) {
        return Err(format!(
            "period of {period_frames} frames is not in {MIN_PERIOD_FRAMES}..={MAX_PERIOD_FRAMES}"
        ));
    }
    Ok(())
}

/// The length of one period in nanoseconds (at least 1).
pub(crate) fn period_ns(rate: u32, period_frames: usize) -> u64 {
    (period_frames as u64 * 1_000_000_000 / u64::from(rate.max(1))).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_checked() {
        assert!(check_format(48_000, 2, 480).is_ok());
        assert!(check_format(48_000, 8, 64).is_ok());
        assert!(check_format(48_000, 2, 4096).is_ok());
        assert!(check_format(48_000, 0, 480).is_err());
        assert!(check_format(48_000, 9, 480).is_err());
        assert!(check_format(48_000, 2, 63).is_err());
        assert!(check_format(48_000, 2, 4097).is_err());
        assert!(check_format(999, 2, 480).is_err());
        assert!(check_format(384_001, 2, 480).is_err());
        assert_eq!(period_ns(48_000, 480), 10_000_000);
        assert_eq!(period_ns(48_000, 64), 1_333_333);
    }
}
