//! `pa-latency`: the round-trip time of small requests to a PulseAudio
//! native-protocol server, measured through the real libpulse.
//!
//! ```text
//! pa-latency [--server SPEC] [--requests N] [--warmup N] [--out FILE]
//! ```
//!
//! Connects to `--server` (default: `$PULSE_SERVER`, as libpulse itself
//! would), then issues GET_SERVER_INFO requests one after another: each is
//! sent only after the previous reply has been dispatched, and its round
//! trip is the time from the `pa_context_get_server_info` call to the reply
//! callback, driven by a standard (single-threaded) mainloop that blocks in
//! poll while waiting. `--warmup` requests (default 200) run first and are
//! not recorded. The `--requests` round trips (default 10,000) go to
//! `--out`, one nanosecond count a line, and a summary goes to stdout:
//!
//! ```text
//! server="pulseaudio 16.1" protocol=35 local=yes eventfds=2 requests=10000 median_us=.. p90_us=.. p99_us=.. max_us=.. client_cpu_us=..
//! ```
//!
//! `client_cpu_us` is the client's own CPU time (user + system, its one
//! thread) per timed round trip: with client and server on one CPU, the
//! round trip cannot be shorter than this plus the server's time.
//!
//! `eventfds` counts this process's eventfd descriptors after the warm-up:
//! libpulse opens none for a plain socket connection, while a server that
//! sets up a shared ring buffer for the connection (PulseAudio's
//! srbchannel) passes two, so the count shows which transport the timed
//! requests used. Whether SHM
//! was negotiated is in libpulse's own debug log (`PULSE_LOG=4`).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use libpulse_binding::context::Context;
use libpulse_binding::mainloop::standard::Mainloop;
use pulse_bench::{connect, nanos, quantile, wait_reply};

#[derive(Debug)]
struct Args {
    server: Option<String>,
    requests: usize,
    warmup: usize,
    out: Option<String>,
    connect_timeout: Duration,
}

fn usage() -> String {
    "usage: pa-latency [--server SPEC] [--requests N] [--warmup N] [--out FILE] \
     [--connect-timeout SECS]"
        .to_owned()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: std::env::var("PULSE_SERVER").ok().filter(|s| !s.is_empty()),
        requests: 10_000,
        warmup: 200,
        out: None,
        connect_timeout: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{}", usage()))
        };
        match a.as_str() {
            "--server" => args.server = Some(value()?),
            "--requests" => {
                args.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?
            }
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--out" => args.out = Some(value()?),
            "--connect-timeout" => {
                let secs: f64 = value()?
                    .parse()
                    .map_err(|e| format!("--connect-timeout: {e}"))?;
                args.connect_timeout = Duration::from_secs_f64(secs);
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {a:?}\n{}", usage())),
        }
    }
    if args.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    Ok(args)
}

/// One GET_SERVER_INFO round trip; returns its duration and, the first
/// time it is asked, the server's name and version.
fn round_trip(
    ml: &mut Mainloop,
    ctx: &Context,
    done: &Rc<Cell<bool>>,
    name: &Rc<RefCell<Option<String>>>,
) -> Result<Duration, String> {
    done.set(false);
    let start = Instant::now();
    let op = {
        let done = Rc::clone(done);
        let name = Rc::clone(name);
        ctx.introspect().get_server_info(move |info| {
            done.set(true);
            let mut n = name.borrow_mut();
            if n.is_none() {
                *n = Some(format!(
                    "{} {}",
                    info.server_name.as_deref().unwrap_or("?"),
                    info.server_version.as_deref().unwrap_or("?")
                ));
            }
        })
    };
    wait_reply(ml, ctx, &op, done)?;
    Ok(start.elapsed())
}

/// How many of this process's descriptors are eventfds.
fn eventfd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.as_os_str() == "anon_inode:[eventfd]")
                })
                .count()
        })
        .unwrap_or(0)
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`), ns.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

fn run(args: Args) -> Result<(), String> {
    let mut ml = Mainloop::new().ok_or_else(|| "cannot create a mainloop".to_owned())?;
    let ctx = connect(
        &mut ml,
        args.server.as_deref(),
        "pa-latency",
        args.connect_timeout,
    )?;
    let done = Rc::new(Cell::new(false));
    let name = Rc::new(RefCell::new(None));
    for _ in 0..args.warmup {
        round_trip(&mut ml, &ctx, &done, &name)?;
    }
    let eventfds = eventfd_count();
    let mut ns = Vec::with_capacity(args.requests);
    let cpu_before = thread_cpu_ns();
    for _ in 0..args.requests {
        let d = round_trip(&mut ml, &ctx, &done, &name)?;
        ns.push(nanos(d));
    }
    // The client's own CPU per round trip (user + system, this thread):
    // on one CPU no server can answer faster than the client spends.
    let client_cpu_ns = thread_cpu_ns().saturating_sub(cpu_before) / args.requests.max(1) as u64;
    if let Some(path) = &args.out {
        let mut text = String::with_capacity(ns.len() * 8);
        for v in &ns {
            text.push_str(&v.to_string());
            text.push('\n');
        }
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    let protocol = ctx
        .get_server_protocol_version()
        .map_or_else(|| "?".to_owned(), |v| v.to_string());
    let local = match ctx.is_local() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    let mut sorted = ns;
    sorted.sort_unstable();
    let us = |v: u64| v as f64 / 1000.0;
    println!(
        "server={:?} protocol={protocol} local={local} eventfds={eventfds} requests={} median_us={:.1} p90_us={:.1} \
         p99_us={:.1} max_us={:.1} client_cpu_us={:.1}",
        name.borrow().as_deref().unwrap_or("?"),
        sorted.len(),
        us(quantile(&sorted, 0.5)),
        us(quantile(&sorted, 0.9)),
        us(quantile(&sorted, 0.99)),
        us(*sorted.last().unwrap_or(&0)),
        us(client_cpu_ns),
    );
    let mut ctx = ctx;
    ctx.disconnect();
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pa-latency: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pa-latency: {e}");
            ExitCode::FAILURE
        }
    }
}
