//! The real-time side of srbd: what runs once per period and never waits
//! for a client.
//!
//! | module | what it holds |
//! |---|---|
//! | [`mixer`] | [`mixer::Engine`]: one sink, its timerfd clock, the mixer thread, monitor copies to record streams, stream hand-over between mixers (moves) |
//! | [`loopback`] | [`loopback::Worker`]: a loopback's thread, source ring → rate-matched resampler → sink ring |
//! | [`dsp_clock`] | the sink clocked and processed by the `dsp-sim` peer; the deadline policy (a missed period is an xrun played as silence or bypass), [`dsp_clock::DspCounters`] |
//! | [`notice`] | [`notice::Bell`] (the control loop's eventfd) and [`notice::Notice`] (one client's flag): how the mixer asks the control thread to serve a client, one bell ring per period |
//! | [`tap`] | per-stream taps: record streams on one sink input (`monitor_stream`), fed by the mixer after that input's volume |
//! | [`buffers`] | [`buffers::BufferStats`]: the stream rings alive and ever made, for `pactl stat` |
//! | [`stream`] | the atomics and queues a stream's control side and the mixer share |
//! | [`audio`] | sample formats, channel remapping, volumes, resampling (`rubato`), the loopback's rate-matching controller |
//! | [`output`] | the `null` and `wav:PATH` output backends, and `OutputSpec::Alsa` (the mixer drives an ALSA device itself) |
//! | [`alsa`] | ALSA devices as output and input: open/negotiate, device-clocked waits, xrun recovery, reopen back-off (an opener thread, [`alsa::driven`]), the default-device rule, pacing of clockless devices |
//! | [`sink_shared`] | [`sink_shared::SinkShared`]: one sink's atomics (gains, suspend flags, counters, states) |
//! | [`state_page`] | what the mixer publishes each period on the read-only state page (sink/monitor clock and counters, DSP figures) |

pub mod alsa;
pub mod audio;
pub mod buffers;
pub mod dsp_clock;
pub mod loopback;
pub mod mixer;
pub mod notice;
pub mod output;
pub mod sink_shared;
pub mod state_page;
pub mod stream;
pub mod tap;
