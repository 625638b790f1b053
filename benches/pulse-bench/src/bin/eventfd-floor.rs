//! The physical floor of a wake-up round trip on this machine: two
//! threads of one process ping-pong through two blocking eventfds, the
//! mechanism the srbchannel sleeps on, with nothing else around it (no
//! protocol, no ring, no libpulse). `benches/pulse-compare.sh` runs it
//! pinned to one CPU (`taskset -c N`): both threads then share the CPU,
//! as a pinned client and server do, and each round trip is two context
//! switches, the least any cross-process request/reply can cost.
//!
//! ```text
//! eventfd-floor [--requests N]     prints: requests=N median_us=… p90_us=… p99_us=…
//! ```

use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use pulse_bench::{nanos, quantile};
use rustix::event::{eventfd, EventfdFlags};

fn post(fd: &OwnedFd) {
    rustix::io::write(fd, &1u64.to_ne_bytes()).expect("eventfd write");
}

fn take(fd: &OwnedFd) {
    let mut b = [0u8; 8];
    rustix::io::read(fd, &mut b).expect("eventfd read");
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut requests = 10_000usize;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--requests", Some(n)) if n > 0 => requests = n,
            _ => {
                eprintln!("eventfd-floor: usage: eventfd-floor [--requests N]");
                return ExitCode::from(2);
            }
        }
    }
    let ping = Arc::new(eventfd(0, EventfdFlags::CLOEXEC).expect("eventfd"));
    let pong = Arc::new(eventfd(0, EventfdFlags::CLOEXEC).expect("eventfd"));
    let (p2, q2) = (ping.clone(), pong.clone());
    let warmup = 200;
    let echo = std::thread::spawn(move || {
        for _ in 0..requests + warmup {
            take(&p2);
            post(&q2);
        }
    });
    let mut ns = Vec::with_capacity(requests);
    for i in 0..requests + warmup {
        let t = Instant::now();
        post(&ping);
        take(&pong);
        if i >= warmup {
            ns.push(nanos(t.elapsed()));
        }
    }
    echo.join().expect("echo thread");
    ns.sort_unstable();
    let us = |v: u64| v as f64 / 1000.0;
    println!(
        "requests={requests} median_us={:.1} p90_us={:.1} p99_us={:.1}",
        us(quantile(&ns, 0.5)),
        us(quantile(&ns, 0.9)),
        us(quantile(&ns, 0.99))
    );
    ExitCode::SUCCESS
}
