//! Audio conversion for `srbd` streams: pure, allocation-free on the
//! real-time path, and free of panics for any client-supplied format,
//! channel map or length.
//!
//! | module | what it holds |
//! |---|---|
//! | [`format`](mod@format) | [`decode`]/[`encode`] between the 13 PulseAudio sample formats and `f32` (G.711 included), [`sample_size`], silence bytes |
//! | [`remap`] | [`Remap`]: channel-map conversion as a precomputed averaging matrix (identity, mono up/down-mix, side-aware fallback) |
//! | [`volume`] | PulseAudio's cubic software volume ↔ linear gain: [`volume_to_linear`], [`linear_to_volume`] |
//! | [`peaks`] | [`peaks::PeakDetector`]: `PEAK_DETECT` record streams' one peak per client frame, and [`peaks::Capture`] (audio or peaks) |
//! | [`rate_match`] | [`rate_match::RateMatch`]: the PI controller that steers a resampler's ratio to hold a queue between two clocks at its target |
//! | [`convert`] | [`PlaybackConverter`] (client PCM → sink `f32` periods, pull) and [`RecordConverter`] (sink `f32` → client PCM, push): decode, resample with `rubato`, remap, encode; [`ConvertError`] |
//!
//! Sample format numbers are PulseAudio's (§2 of
//! `../shared/docs/pa-native-protocol.md`); the constants are in
//! [`format`](mod@format). Channel positions are PulseAudio's too (MONO = 0,
//! FRONT_LEFT = 1, …, TOP_REAR_CENTER = 50).

pub mod convert;
pub mod format;
pub mod peaks;
pub mod rate_match;
pub mod remap;
pub mod volume;

pub use convert::{ConvertError, PlaybackConverter, RecordConverter};
pub use format::{decode, encode, sample_size};
pub use remap::Remap;
pub use volume::{linear_to_volume, volume_to_linear, VOLUME_NORM};
