//! `srb-top`: srbd's live figures from its read-only state page.
//!
//! ```text
//! srb-top [--control PATH] [--once] [--json] [--interval-ms N]
//! ```
//!
//! Connects to srbd's `control` socket (default
//! `$XDG_RUNTIME_DIR/srb/control`), receives the state page once, and then
//! only reads shared memory: every `--interval-ms` it takes a snapshot and
//! redraws a table of sinks, sources and DSPs (`--once`: one snapshot, then
//! exit; `--json`: one JSON object per snapshot, one per line). Each sink
//! and source shows its position interpolated to now from the page's
//! (position, clock) pair: the audio clock, read without asking srbd.
//!
//! Exit status: 0 on success, 2 when no server answers or the page is
//! refused, 3 when snapshots keep failing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use srb_linux::state_page::{default_control_path, monotonic_ns, Snapshot, StatePage, StreamStats};

/// srbd's live figures from its read-only state page.
#[derive(Debug, Parser)]
#[command(name = "srb-top", version)]
struct Args {
    /// The control socket (default: $XDG_RUNTIME_DIR/srb/control).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Print one snapshot and exit.
    #[arg(long)]
    once: bool,
    /// Print JSON (one object per snapshot, one per line).
    #[arg(long)]
    json: bool,
    /// Milliseconds between refreshes.
    #[arg(long, value_name = "N", default_value_t = 500)]
    interval_ms: u64,
}

/// Snapshots that fail in a row before srb-top gives up.
const MAX_FAILURES: u32 = 20;

fn stream_json(s: &StreamStats, now: u64) -> Value {
    json!({
        "index": s.index,
        "name": s.name.as_str(),
        "state": s.state.as_str(),
        "rate": s.rate,
        "channels": s.channels,
        "latency_us": s.latency_us,
        "position": s.position,
        "clock_ns": s.clock_ns,
        "position_now": s.position_at(now),
        "periods": s.periods,
        "xruns": s.xruns,
        "late": s.late,
    })
}

fn to_json(s: &Snapshot, now: u64) -> Value {
    json!({
        "sequence": s.sequence(),
        "published_ns": s.published_ns,
        "now_ns": now,
        "sinks": s.sinks().iter().map(|x| stream_json(x, now)).collect::<Vec<_>>(),
        "sources": s.sources().iter().map(|x| stream_json(x, now)).collect::<Vec<_>>(),
        "dsps": s.dsps().iter().map(|d| json!({
            "pid": d.pid,
            "periods": d.periods,
            "mean_ns": d.mean_ns,
            "worst_ns": d.worst_ns,
            "deadline_misses": d.deadline_misses,
            "restarts": d.restarts,
            "peaks": d.peaks(),
        })).collect::<Vec<_>>(),
    })
}

fn streams_table(out: &mut String, title: &str, streams: &[StreamStats], now: u64) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "{title:<8} {:>5} {:<20} {:<9} {:>6} {:>3} {:>8} {:>14} {:>14} {:>10} {:>6} {:>6}",
        "index",
        "name",
        "state",
        "rate",
        "ch",
        "lat(us)",
        "position",
        "now",
        "periods",
        "xruns",
        "late"
    );
    for s in streams {
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:<20} {:<9} {:>6} {:>3} {:>8} {:>14} {:>14} {:>10} {:>6} {:>6}",
            "",
            s.index,
            s.name.as_str(),
            s.state.as_str(),
            s.rate,
            s.channels,
            s.latency_us,
            s.position,
            s.position_at(now),
            s.periods,
            s.xruns,
            s.late
        );
    }
}

fn table(s: &Snapshot, now: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "srb-top: sequence {}, published {:.3} ms ago",
        s.sequence(),
        now.saturating_sub(s.published_ns) as f64 / 1e6
    );
    streams_table(&mut out, "sinks", s.sinks(), now);
    streams_table(&mut out, "sources", s.sources(), now);
    let _ = writeln!(
        out,
        "dsps     {:>7} {:>10} {:>9} {:>9} {:>7} {:>8}  peaks",
        "pid", "periods", "mean(ns)", "worst(ns)", "misses", "restarts"
    );
    for d in s.dsps() {
        let peaks: Vec<String> = d.peaks().iter().map(|p| format!("{p:.3}")).collect();
        let _ = writeln!(
            out,
            "{:<8} {:>7} {:>10} {:>9} {:>9} {:>7} {:>8}  {}",
            "",
            d.pid,
            d.periods,
            d.mean_ns,
            d.worst_ns,
            d.deadline_misses,
            d.restarts,
            peaks.join(" ")
        );
    }
    out
}

fn main() -> ExitCode {
    let args = Args::parse();
    let path = args.control.clone().unwrap_or_else(default_control_path);
    let page = match StatePage::connect(&path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "srb-top: no state page from {}: {e} (is srbd running?)",
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut failures = 0;
    loop {
        match page.snapshot() {
            Ok(s) => {
                failures = 0;
                let now = monotonic_ns();
                if args.json {
                    println!("{}", to_json(&s, now));
                } else if args.once {
                    print!("{}", table(&s, now));
                } else {
                    // Home, clear screen, redraw.
                    print!("\x1b[H\x1b[2J{}", table(&s, now));
                }
                if args.once {
                    return ExitCode::SUCCESS;
                }
                std::thread::sleep(interval);
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_FAILURES {
                    eprintln!("srb-top: {failures} snapshots in a row failed; last: {e}");
                    return ExitCode::from(3);
                }
                // Busy or torn: the server was mid-write; try again soon.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
