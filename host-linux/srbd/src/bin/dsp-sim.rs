//! `dsp-sim`: a simulated audio DSP core behind `srbd`.
//!
//! ```text
//! dsp-sim [--rate HZ] [--channels N] [--period-frames N] [--chain SPEC] [--bypass]
//!         [--rt-priority N]
//! ```
//!
//! With `--rt-priority N` (1..=99) it asks for `SCHED_FIFO` at `N` and
//! locks its memory (`mlockall`), logging one line for each whether
//! granted or refused, and runs either way. Its global allocator counts
//! the period loop's allocations after warm-up
//! ([`srbd::rt::alloc_count`]); the count (`period_allocs`) is in the
//! "dsp-sim stopping" line, and should be 0.
//!
//! Its stdin (fd 0) must be a connected unix stream socket: `srbd`'s
//! supervisor passes one end of a socket pair there and offers the shared
//! block and eventfds over it ([`srb_linux::handshake`]). The stream format
//! comes from the command line (the spawner sets all three options), not
//! from a message: it is fixed for the life of the process. Then the
//! process runs the DSP loop ([`srbd::dsp::peer::run`]) until the host
//! goes away. Logs go to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Exit status: 0 when the host went away, 2 on a usage error, 3 when the
//! handshake failed, 4 when the DSP loop failed (a bad message from the
//! host, a failed system call), each with the reason logged.

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use srb_linux::handshake;
use srb_linux::scm::ScmStream;
use srbd::dsp::peer::{self, PeerConfig};
use srbd::rt::alloc_count::CountingAlloc;
use srbd::rt::sched;

/// Counts the period loop's allocations (none expected).
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// How long the host may take to send its offer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A simulated DSP: pulls periods from srbd over shared memory, runs a
/// processing chain over them, and sends them back.
#[derive(Debug, Parser)]
#[command(name = "dsp-sim", version)]
struct Args {
    /// Sample rate in Hz.
    #[arg(long, value_name = "HZ", default_value_t = 48_000)]
    rate: u32,
    /// Interleaved channels (1..=8).
    #[arg(long, value_name = "N", default_value_t = 2)]
    channels: u8,
    /// Frames per period (64..=4096); the DSP's clock ticks once per period.
    #[arg(long, value_name = "N", default_value_t = 480)]
    period_frames: usize,
    /// Processing chain, e.g. `gain:-6dB,lowpass:8kHz` (see srb_dsp_sim::chain).
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    chain: Option<String>,
    /// Start in bit-exact bypass.
    #[arg(long)]
    bypass: bool,
    /// Ask for SCHED_FIFO at this priority (1..=99) and lock memory; 0:
    /// normal scheduling.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=99))]
    rt_priority: u8,
}

fn main() -> ExitCode {
    srbd::logging::init();
    let args = Args::parse();
    if args.rt_priority > 0 {
        sched::request_fifo("dsp-sim", args.rt_priority);
        sched::lock_memory("dsp-sim");
    }
    let cfg = PeerConfig {
        rate: args.rate,
        channels: args.channels,
        period_frames: args.period_frames,
        chain: args.chain,
        bypass: args.bypass,
    };
    // Our own descriptor for the socket on fd 0 (close-on-exec).
    let stream = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())
        .and_then(|fd| ScmStream::new(fd).map_err(|e| format!("fd 0 is not a unix socket: {e}")))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("stdin: {e}");
            return ExitCode::from(2);
        }
    };
    let channel = match handshake::accept(stream, Some(HANDSHAKE_TIMEOUT)) {
        Ok(ch) => ch,
        Err(e) => {
            tracing::error!("handshake: {e}");
            return ExitCode::from(3);
        }
    };
    match peer::run(channel, cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(4)
        }
    }
}
