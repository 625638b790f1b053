//! The same transfers as `throughput`, measured round-robin for a noisy host.
//!
//! Criterion measures one benchmark after another, so a neighbour's compile
//! that starts halfway through skews whichever rings run then. Here every
//! round runs every ring once per message size (starting with a different
//! ring each round) and the ratio to rtrb is taken *within* a round, then the
//! median over rounds is reported: load that comes and goes hits all rings
//! alike. Prints a Markdown table on stdout.
//!
//! `cargo bench -p srb-benches --bench interleaved [-- --rounds N --mib M]`
//! (defaults: 15 rounds of 16 MiB per ring and size), or
//! `benches/compare.sh --interleaved`. Without `--bench` (as under
//! `cargo test --benches`) it runs one tiny round as a smoke test.

use std::time::Instant;

use srb_benches::{expected_checksum, size_label, transfer, Ring, MESSAGE_SIZES};

struct Args {
    rounds: usize,
    bytes: u64,
}

fn args() -> Args {
    let mut bench = false;
    let (mut rounds, mut mib) = (15usize, 16u64);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => bench = true,
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--mib" => mib = it.next().and_then(|v| v.parse().ok()).expect("--mib M"),
            _ => {} // cargo's and libtest's flags
        }
    }
    if bench {
        Args {
            rounds: rounds.max(1),
            bytes: mib.max(1) << 20,
        }
    } else {
        Args {
            rounds: 1,
            bytes: 64 << 10,
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quartiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 4], v[(3 * v.len()) / 4])
}

fn fmt(bytes_per_s: f64) -> String {
    let gib = bytes_per_s / f64::from(1u32 << 30);
    if gib >= 1.0 {
        format!("{gib:.2} GiB/s")
    } else {
        format!("{:.0} MiB/s", bytes_per_s / f64::from(1u32 << 20))
    }
}

fn main() {
    let Args { rounds, bytes } = args();
    let rtrb = Ring::ALL
        .iter()
        .position(|&r| r == Ring::Rtrb)
        .expect("rtrb is compared");
    println!("| message | {} |", Ring::ALL.map(Ring::name).join(" | "));
    println!("|---|{}", "---:|".repeat(Ring::ALL.len()));
    for size in MESSAGE_SIZES {
        let count = bytes / size as u64;
        let want = expected_checksum(count);
        // secs[ring][round]
        let mut secs = vec![Vec::with_capacity(rounds); Ring::ALL.len()];
        for round in 0..rounds {
            for k in 0..Ring::ALL.len() {
                let k = (k + round) % Ring::ALL.len();
                let ring = Ring::ALL[k];
                let start = Instant::now();
                let sum = transfer(ring, size, count);
                secs[k].push(start.elapsed().as_secs_f64());
                assert_eq!(sum, Ok(want), "{} {size}", ring.name());
            }
        }
        let moved = (count * size as u64) as f64;
        let cells: Vec<String> = (0..Ring::ALL.len())
            .map(|k| {
                let speed = moved / median(&mut secs[k].clone());
                let mut ratio: Vec<f64> = secs[rtrb]
                    .iter()
                    .zip(&secs[k])
                    .map(|(r, t)| r / t)
                    .collect();
                let (q1, q3) = quartiles(&mut ratio);
                format!(
                    "{} ({:.2}× [{q1:.2}–{q3:.2}])",
                    fmt(speed),
                    median(&mut ratio)
                )
            })
            .collect();
        println!("| {} | {} |", size_label(size), cells.join(" | "));
    }
    println!();
    println!(
        "{rounds} interleaved rounds of {} KiB per ring and size; median throughput, \
         and the median [quartiles] over rounds of the speed ratio to rtrb in the same round.",
        bytes >> 10
    );
}
