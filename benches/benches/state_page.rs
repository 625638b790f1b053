//! The state page: what reading srbd's figures from shared memory costs.
//!
//! `state_page/{snapshot,sink_clock,publish,snapshot_while_publishing}`:
//!
//! - `snapshot`: [`StatePage::snapshot`] of a page with 2 sinks, 1 source
//!   and 1 DSP (copy of the 472 payload words under the seqlock, checksum,
//!   decoding and validating every used slot), nobody writing;
//! - `sink_clock`: [`StatePage::sink_clock`], the fast path that reads one
//!   sink's (position, clock, rate) alone: what a client needs to
//!   interpolate the audio clock without asking srbd;
//! - `publish`: [`StatePageWriter::publish`] (srbd's cost per publication,
//!   on its mixer thread);
//! - `snapshot_while_publishing`: `snapshot` while another thread publishes
//!   continuously (retries included).
//!
//! The reader maps the page read-only from a duplicate of the writer's fd,
//! as a client does after receiving it. Run:
//! `cargo bench -p srb-benches --bench state_page`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use srb_linux::state_page::{
    DspStats, Name, Snapshot, StatePage, StatePageWriter, StreamState, StreamStats,
};

fn figures(i: u64) -> Snapshot {
    let mut s = Snapshot::new();
    s.published_ns = i;
    for k in 0..2 {
        s.push_sink(StreamStats {
            index: k,
            name: Name::new("srb_output"),
            state: StreamState::Running,
            rate: 48_000,
            channels: 2,
            latency_us: 10_000,
            position: i * 480,
            clock_ns: i * 10_000_000,
            periods: i,
            ..StreamStats::default()
        })
        .unwrap();
    }
    s.push_source(StreamStats {
        name: Name::new("srb_output.monitor"),
        rate: 48_000,
        ..StreamStats::default()
    })
    .unwrap();
    let mut d = DspStats {
        pid: 1234,
        periods: i,
        mean_ns: 1500,
        worst_ns: 9000,
        ..DspStats::default()
    };
    d.set_peaks(&[0.5, 0.25]).unwrap();
    s.push_dsp(d).unwrap();
    s
}

fn open(w: &StatePageWriter) -> StatePage {
    StatePage::open(w.dup_fd().unwrap()).unwrap()
}

fn state_page(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_page");
    let mut w = StatePageWriter::create("srb-bench").unwrap();
    w.publish(&figures(1));
    let page = open(&w);
    g.bench_function("snapshot", |b| {
        b.iter(|| black_box(page.snapshot().unwrap()))
    });
    g.bench_function("sink_clock", |b| {
        b.iter(|| black_box(page.sink_clock(black_box(0)).unwrap()))
    });
    let s = figures(2);
    g.bench_function("publish", |b| b.iter(|| w.publish(black_box(&s))));

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut i = 0;
        // Relaxed: a stop flag; it publishes nothing else.
        while !flag.load(Ordering::Relaxed) {
            i += 1;
            w.publish(&figures(i));
        }
    });
    let page = page.with_tries(u32::MAX);
    g.bench_function("snapshot_while_publishing", |b| {
        b.iter(|| black_box(page.snapshot().unwrap()))
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = state_page
}
criterion_main!(benches);
