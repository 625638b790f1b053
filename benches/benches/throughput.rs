//! Two-thread throughput: `throughput/{16B,64B,1KiB}/{srb,pa,rtrb,heapless}`.
//!
//! One iteration moves [`BYTES_PER_ITER`] bytes (1 MiB) as messages of the
//! group's size from a producer thread to a consumer thread through a ring of
//! [`srb_benches::RING_BYTES`] bytes. Each measurement sets up one ring and
//! two threads and moves `iters` iterations' worth of messages, so setup and
//! thread start are amortised over many megabytes; checking the checksum is
//! outside the timed region. See `srb_benches` for what each ring does.
//!
//! Run: `cargo bench -p srb-benches --bench throughput`, or
//! `benches/compare.sh` for a Markdown table.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use srb_benches::{
    expected_checksum, messages_per_iter, size_label, transfer, Ring, BYTES_PER_ITER, MESSAGE_SIZES,
};

fn throughput(c: &mut Criterion) {
    for size in MESSAGE_SIZES {
        let mut group = c.benchmark_group(format!("throughput/{}", size_label(size)));
        // Every iteration is milliseconds long: the same iteration count per
        // sample keeps the run short.
        group.sampling_mode(SamplingMode::Flat);
        let per_iter = messages_per_iter(size);
        group.throughput(Throughput::Bytes(per_iter * size as u64));
        debug_assert_eq!(per_iter * size as u64, BYTES_PER_ITER as u64);
        for ring in Ring::ALL {
            group.bench_function(ring.name(), |b| {
                b.iter_custom(|iters| {
                    let count = iters * per_iter;
                    let start = Instant::now();
                    let sum = transfer(ring, size, count);
                    let elapsed = start.elapsed();
                    assert_eq!(sum, Ok(expected_checksum(count)), "{}", ring.name());
                    elapsed
                })
            });
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = throughput
}
criterion_main!(benches);
