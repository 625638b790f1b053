//! The mixer's period path does not allocate: this test binary installs
//! srbd's counting allocator ([`srbd::rt::alloc_count`]), runs an
//! [`Engine`] with a playback stream (resampled), a record stream on the
//! monitor and the real `dsp-sim` clocking and processing the sink, and
//! checks that the mixer thread made no allocation once armed (after
//! [`ALLOC_WARMUP_PERIODS`], when the streams are set up) over at least 200
//! more periods. Each engine runs in its own process (this file has one
//! test), since the count is global.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use common::srbd::poll_until;
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::{ChannelMap, SampleSpec};
use srbd::dsp::supervisor::{DspConfig, Supervisor};
use srbd::engine::audio::convert::PlaybackConverter;
use srbd::engine::dsp_clock::{DspPolicy, Fallback};
use srbd::engine::mixer::{Engine, EngineOptions, PlaybackInput, SinkConfig, ALLOC_WARMUP_PERIODS};
use srbd::engine::notice::{Bell, Notice};
use srbd::engine::output::OutputSpec;
use srbd::engine::state_page::PageSetup;
use srbd::engine::stream::{PlaybackShared, RecordShared};
use srbd::rt::alloc_count::{self, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const RATE: u32 = 48_000;
const PERIOD: usize = 480;

#[test]
fn the_mixer_period_path_does_not_allocate() {
    let spec = SampleSpec {
        format: SampleFormat::Float32Le,
        channels: 2,
        rate: RATE,
    };
    let map = ChannelMap::new(&[1, 2]).unwrap();
    let (tx, rx) = mpsc::channel();
    let sup = Supervisor::start(
        DspConfig {
            program: env!("CARGO_BIN_EXE_dsp-sim").into(),
            rate: RATE,
            channels: 2,
            period_frames: PERIOD,
            chain: Some("gain:-6dB,lowpass:8kHz".into()),
            rt_priority: 0,
        },
        tx,
    )
    .expect("dsp-sim starts");
    let engine = Engine::start_with(
        SinkConfig {
            spec,
            map: map.clone(),
            period_frames: PERIOD,
            output: OutputSpec::Null,
        },
        EngineOptions {
            dsp: Some(rx),
            policy: DspPolicy {
                fallback: Fallback::Silence,
                ..DspPolicy::default()
            },
            rt_priority: 0,
            // The state page is published every period too.
            page: Some(PageSetup {
                writer: srb_linux::state_page::StatePageWriter::create("mixer-alloc").unwrap(),
                sink: (0, "sink".into()),
                monitor: (0, "sink.monitor".into()),
                dsp: Some(sup.restart_handle()),
            }),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let bell = Arc::new(Bell::new().unwrap());
    // A 44.1 kHz s16 stereo client: the resampling path.
    let client = SampleSpec {
        format: SampleFormat::S16Le,
        channels: 2,
        rate: 44_100,
    };
    let shared = Arc::new(PlaybackShared::new(
        1,
        Arc::new(Notice::new(bell.clone())),
        0,
        false,
    ));
    let seconds = 6;
    let (mut ring, consumer) = rtrb::RingBuffer::new(44_100 * 4 * seconds);
    let bytes: Vec<u8> = (0..44_100 * 2 * seconds)
        .flat_map(|i| (((i as f32 * 0.01).sin() * 8000.0) as i16).to_le_bytes())
        .collect();
    ring.push_entire_slice(&bytes).unwrap();
    engine.add_playback(PlaybackInput {
        shared: shared.clone(),
        ring: consumer,
        converter: PlaybackConverter::new(client, &map, RATE, &map, PERIOD).unwrap(),
    });
    let record = Arc::new(RecordShared::new(
        2,
        Arc::new(Notice::new(bell.clone())),
        false,
    ));
    let mut monitor = engine.add_record(record, None);
    let periods = &engine.shared().periods;
    poll_until(
        "200 periods after warm-up",
        || {
            // Keep the monitor ring drained (as a connection would).
            if let Ok(chunk) = monitor.read_chunk(monitor.slots()) {
                chunk.commit_all();
            }
            (periods.load(Ordering::Relaxed) >= ALLOC_WARMUP_PERIODS + 200).then_some(())
        },
        String::new,
    );
    let played = periods.load(Ordering::Relaxed);
    engine.stop().unwrap();
    sup.stop();
    let dsp = engine.dsp();
    let processed = dsp.processed.load(Ordering::Relaxed);
    let allocs = alloc_count::count();
    eprintln!("{played} periods ({processed} processed by the DSP), {allocs} allocations on the mixer thread once armed");
    assert!(
        shared.started.load(Ordering::Relaxed) >= 1,
        "the stream played"
    );
    assert!(processed > 0, "the DSP clocked and processed the sink");
    assert_eq!(allocs, 0, "the mixer allocated on its period path");
}
