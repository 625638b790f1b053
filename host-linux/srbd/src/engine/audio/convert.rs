//! Stream converters between client PCM and the sink's `f32` frames.
//!
//! * [`PlaybackConverter`] (pull model, real-time side): client bytes →
//!   [`format::decode`] → resample in the client's channel count (only when
//!   the rates differ) → [`Remap`] to the sink's channels. Every
//!   [`process`](PlaybackConverter::process) call yields exactly one sink
//!   period and consumes [`input_frames_next`](PlaybackConverter::input_frames_next)
//!   client frames. All buffers are sized in `new`; processing never
//!   allocates.
//! * [`RecordConverter`] (push model, connection thread): sink frames →
//!   [`Remap`] to the client's channels → resample (only when the rates
//!   differ) → [`format::encode`], appended to a `Vec<u8>`. It buffers
//!   whatever the resampler cannot take yet.
//!
//! With equal rates no resampler exists and the path is bit-exact where the
//! stages are: float32 with identical maps copies bits, S16 decodes to
//! exactly `x / 32768`.
//!
//! ## Resampler choice
//!
//! Both converters use one of two fixed-ratio resamplers from `rubato` 5:
//!
//! * **`rubato::Fft`** (synchronous, FFT overlap-add with a
//!   Blackman-Harris² anti-aliasing filter) whenever the rate pair's
//!   minimum block on the fixed side, `rate / gcd(client, sink)`, fits in
//!   the chunk (the period for playback, 10 ms of the sink for record).
//!   Against 48 kHz that is 320 frames at most for 8/16/22.05/24/32/44.1/
//!   88.2/96/176.4/192 kHz clients, but 640 for 11.025 kHz (which therefore
//!   gets the sinc resampler with a 480-frame period, and for record). It
//!   is the cheapest option in `rubato`
//!   and its filter adapts to the ratio, so down-sampling is well
//!   band-limited. Its delay is half an FFT block,
//!   `fft_size_out / 2` output frames (240 frames, 5 ms, for 44.1 → 48 kHz
//!   with a 480-frame period).
//! * **`rubato::Async` with sinc interpolation at a fixed ratio**
//!   ([`SINC_LEN`] taps, Blackman-Harris², cubic interpolation of a
//!   128× oversampled filter) for the other pairs. The FFT resampler's
//!   block is a multiple of `rate / gcd`, so an odd rate such as 44101 Hz
//!   would need a 48000-frame block: a second of delay and input that
//!   arrives in one-second bursts. The sinc resampler costs about
//!   [`SINC_LEN`] multiply-adds per sample and channel whatever the rates,
//!   and its delay is `SINC_LEN / 2 × ratio` output frames.
//!
//! Buffers are sized once from the rates and the chunk: a playback period
//! needs about `period × client_rate / sink_rate` input frames, at most 8 ×
//! the period for any valid client against a 48 kHz sink.
//!
//! Playback fixes the output side (`FixedSync::Output` / `FixedAsync::Output`)
//! at the period, so `input_frames_next` varies from call to call (constant
//! 441 for 44.1 → 48 kHz with a 480-frame period). Record fixes the input
//! side at 10 ms of the sink rate and buffers the rest.
//!
//! ## Delay and draining
//!
//! A resampler's output starts with [`delay_frames`](PlaybackConverter::delay_frames)
//! frames of lead-in and holds the last `delay` frames of the stream until
//! more input pushes them out. The converters count input and output frames
//! (in `u64`, exact integer arithmetic) and know where the signal ends in
//! the output: `delay + ceil(input_frames × out_rate / in_rate)`.
//! [`PlaybackConverter::process_partial`] feeds silence after the stream's
//! last frame and reports how many frames of each period are still signal
//! (frames after that point are zeroed), so a drained stream loses no tail;
//! [`RecordConverter::flush`] does the same for record.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Indexing, Resampler, ResamplerConstructionError,
    SincInterpolationParameters, WindowFunction,
};

use super::format::{self, SampleFormat};
use super::remap::Remap;
use srb_pulse::tagstruct::{ChannelMap, SampleSpec, TagError, CHANNELS_MAX, RATE_MAX};

/// Largest playback period, in sink frames.
pub const PERIOD_MAX: usize = 65536;

/// Length of the sinc filter used for rate pairs the FFT resampler does
/// not fit (see the module documentation).
pub const SINC_LEN: usize = 128;

/// Why a converter could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvertError {
    /// The client's sample spec is not valid (format, channels or rate).
    #[error("bad sample spec: {0}")]
    BadSampleSpec(TagError),
    /// A channel map's length differs from its channel count.
    #[error("{which} channel map has {positions} positions for {channels} channels")]
    ChannelMapMismatch {
        /// `"client"` or `"sink"`.
        which: &'static str,
        /// Positions in the map.
        positions: usize,
        /// The channel count it must match.
        channels: usize,
    },
    /// The sink's rate or channel map is not valid.
    #[error("bad sink format: {reason}")]
    BadSink {
        /// What is wrong.
        reason: &'static str,
    },
    /// `rubato` refused to build the resampler.
    #[error("cannot build the resampler: {0}")]
    Resampler(ResamplerConstructionError),
    /// The playback period is not in `1..=PERIOD_MAX` frames.
    #[error("period of {0} frames is not in 1..={max}", max = PERIOD_MAX)]
    PeriodOutOfRange(usize),
}

/// Which side of the resampler has a fixed chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixed {
    Input,
    Output,
}

/// The resampler itself.
#[derive(Debug)]
enum Engine {
    Fft(Box<Fft<f32>>),
    Sinc(Box<Async<f32>>),
}

impl Engine {
    fn get(&mut self) -> &mut dyn Resampler<f32> {
        match self {
            Engine::Fft(r) => r.as_mut(),
            Engine::Sinc(r) => r.as_mut(),
        }
    }

    fn get_ref(&self) -> &dyn Resampler<f32> {
        match self {
            Engine::Fft(r) => r.as_ref(),
            Engine::Sinc(r) => r.as_ref(),
        }
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A resampler with the frame counts that locate the end of the signal.
#[derive(Debug)]
struct Resampling {
    engine: Engine,
    in_rate: u32,
    out_rate: u32,
    /// `engine`'s delay in output frames.
    delay: usize,
    /// Input frames the resampler consumed, padding included.
    fed: u64,
    /// Output frames it produced.
    produced: u64,
    /// Input position just after the last real (not padding) frame; 0 when
    /// no real frame was ever fed.
    signal_end: u64,
}

impl Resampling {
    /// Chooses and builds the resampler (see the module documentation).
    fn new(
        in_rate: u32,
        out_rate: u32,
        chunk: usize,
        channels: usize,
        fixed: Fixed,
    ) -> Result<Self, ConvertError> {
        let g = gcd(in_rate, out_rate).max(1);
        let min_block = match fixed {
            Fixed::Input => in_rate / g,
            Fixed::Output => out_rate / g,
        };
        let engine = if min_block as usize <= chunk {
            let fixed = match fixed {
                Fixed::Input => FixedSync::Input,
                Fixed::Output => FixedSync::Output,
            };
            Engine::Fft(Box::new(
                Fft::new(in_rate as usize, out_rate as usize, chunk, channels, fixed)
                    .map_err(ConvertError::Resampler)?,
            ))
        } else {
            let fixed = match fixed {
                Fixed::Input => FixedAsync::Input,
                Fixed::Output => FixedAsync::Output,
            };
            let params =
                SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2);
            Engine::Sinc(Box::new(
                Async::new_sinc(
                    f64::from(out_rate) / f64::from(in_rate),
                    1.0,
                    &params,
                    chunk,
                    channels,
                    fixed,
                )
                .map_err(ConvertError::Resampler)?,
            ))
        };
        let delay = engine.get_ref().output_delay();
        Ok(Resampling {
            engine,
            in_rate,
            out_rate,
            delay,
            fed: 0,
            produced: 0,
            signal_end: 0,
        })
    }

    /// Output position just after the last frame that carries signal.
    fn signal_end_out(&self) -> u64 {
        if self.signal_end == 0 {
            return 0;
        }
        let num = u128::from(self.signal_end) * u128::from(self.out_rate);
        let frames = num.div_ceil(u128::from(self.in_rate.max(1)));
        u64::try_from(frames)
            .unwrap_or(u64::MAX)
            .saturating_add(self.delay as u64)
    }

    /// Resamples `frames` interleaved frames of `input` (zero-padded to the
    /// resampler's need) into `output`; returns the frames written (0 on a
    /// resampler error, which the buffer sizing rules out).
    fn run(&mut self, input: &[f32], frames: usize, output: &mut [f32], channels: usize) -> usize {
        let need = self.engine.get_ref().input_frames_next();
        let frames = frames.min(need);
        let out_frames = output.len() / channels.max(1);
        let (Ok(adapter_in), Ok(mut adapter_out)) = (
            InterleavedSlice::new(input, channels, frames),
            InterleavedSlice::new_mut(output, channels, out_frames),
        ) else {
            return 0;
        };
        let partial = Indexing {
            partial_len: Some(frames),
            ..Indexing::default()
        };
        let indexing = (frames < need).then_some(&partial);
        match self
            .engine
            .get()
            .process_into_buffer(&adapter_in, &mut adapter_out, indexing)
        {
            Ok((_, written)) => {
                self.fed += need as u64;
                self.produced += written as u64;
                written
            }
            Err(_) => 0,
        }
    }

    fn reset(&mut self) {
        self.engine.get().reset();
        self.fed = 0;
        self.produced = 0;
        self.signal_end = 0;
    }
}

pub(super) fn check_client(
    client: SampleSpec,
    client_map: &ChannelMap,
) -> Result<usize, ConvertError> {
    client.check().map_err(ConvertError::BadSampleSpec)?;
    let channels = usize::from(client.channels);
    if client_map.positions().len() != channels {
        return Err(ConvertError::ChannelMapMismatch {
            which: "client",
            positions: client_map.positions().len(),
            channels,
        });
    }
    Ok(channels)
}

pub(super) fn check_sink(sink_rate: u32, sink_map: &ChannelMap) -> Result<usize, ConvertError> {
    if sink_rate == 0 || sink_rate > RATE_MAX {
        return Err(ConvertError::BadSink {
            reason: "rate not in 1..=384000",
        });
    }
    let channels = sink_map.positions().len();
    if channels == 0 || channels > usize::from(CHANNELS_MAX) {
        return Err(ConvertError::BadSink {
            reason: "channel map not 1..=32 positions",
        });
    }
    Ok(channels)
}

/// Client PCM (any format, channels, rate) → the sink's interleaved `f32`
/// frames, pull model. See the module documentation.
#[derive(Debug)]
pub struct PlaybackConverter {
    format: SampleFormat,
    client_channels: usize,
    sink_channels: usize,
    frame_size: usize,
    period: usize,
    remap: Remap,
    /// Decoded client frames, client channels interleaved.
    decoded: Vec<f32>,
    /// The resampler's output: one period in client channels (empty
    /// without a resampler).
    resampled: Vec<f32>,
    resampler: Option<Resampling>,
}

impl PlaybackConverter {
    /// A converter from `client` samples laid out as `client_map` to
    /// `sink_rate` Hz `f32` frames laid out as `sink_map`. Each `process`
    /// call yields exactly `period_frames` sink frames (`1..=65536`).
    pub fn new(
        client: SampleSpec,
        client_map: &ChannelMap,
        sink_rate: u32,
        sink_map: &ChannelMap,
        period_frames: usize,
    ) -> Result<Self, ConvertError> {
        let client_channels = check_client(client, client_map)?;
        let sink_channels = check_sink(sink_rate, sink_map)?;
        if !(1..=PERIOD_MAX).contains(&period_frames) {
            return Err(ConvertError::PeriodOutOfRange(period_frames));
        }
        let frame_size = client.frame_size().unwrap_or(0);
        let resampler = if client.rate == sink_rate {
            None
        } else {
            Some(Resampling::new(
                client.rate,
                sink_rate,
                period_frames,
                client_channels,
                Fixed::Output,
            )?)
        };
        let (in_max, out_max) = match &resampler {
            None => (period_frames, 0),
            Some(r) => {
                let r = r.engine.get_ref();
                (
                    r.input_frames_max(),
                    r.output_frames_max().max(period_frames),
                )
            }
        };
        Ok(PlaybackConverter {
            format: client.format,
            client_channels,
            sink_channels,
            frame_size,
            period: period_frames,
            remap: Remap::new(client_map.positions(), sink_map.positions()),
            decoded: vec![0.0; in_max.max(period_frames) * client_channels],
            resampled: vec![0.0; out_max * client_channels],
            resampler,
        })
    }

    /// Client frames the next [`process`](Self::process) call consumes
    /// (constant `period_frames` when the rates match; varies around
    /// `period_frames × client_rate / sink_rate` otherwise).
    pub fn input_frames_next(&self) -> usize {
        match &self.resampler {
            None => self.period,
            Some(r) => r.engine.get_ref().input_frames_next(),
        }
    }

    /// Client frame size in bytes.
    pub fn client_frame_size(&self) -> usize {
        self.frame_size
    }

    /// Sink frames per period.
    pub fn period_frames(&self) -> usize {
        self.period
    }

    /// Sink channels per output frame.
    pub fn sink_channels(&self) -> usize {
        self.sink_channels
    }

    /// The resampler's delay in sink frames (0 without a resampler).
    pub fn delay_frames(&self) -> usize {
        self.resampler.as_ref().map_or(0, |r| r.delay)
    }

    /// Whether a resampler is in use.
    pub fn resampling(&self) -> bool {
        self.resampler.is_some()
    }

    /// Consumes exactly [`input_frames_next`](Self::input_frames_next)
    /// client frames (`input.len()` bytes) and writes `period_frames × sink
    /// channels` samples to `out`. Never allocates.
    ///
    /// Lengths are checked by `debug_assert!`; in release builds missing
    /// input counts as silence, extra input is ignored, and only the frames
    /// `out` holds are written (a longer `out` gets zeros after the period).
    pub fn process(&mut self, input: &[u8], out: &mut [f32]) {
        debug_assert_eq!(
            input.len(),
            self.input_frames_next() * self.frame_size,
            "process: input is not input_frames_next() frames"
        );
        debug_assert_eq!(
            out.len(),
            self.period * self.sink_channels,
            "process: out is not one period"
        );
        self.run(input, out, false);
    }

    /// End of stream: consumes `min(input.len() / client_frame_size(),
    /// input_frames_next())` client frames (possibly zero, padding the rest
    /// with silence) and writes a full period to `out`: signal, then zeros.
    /// Returns how many of the period's frames carry signal, including what
    /// the resampler still held from earlier calls (its delay).
    ///
    /// Call it again with empty input until it returns 0 to flush the
    /// resampler completely. A later [`process`](Self::process) resumes the
    /// stream after the silence. Never allocates.
    pub fn process_partial(&mut self, input: &[u8], out: &mut [f32]) -> usize {
        self.run(input, out, true)
    }

    fn run(&mut self, input: &[u8], out: &mut [f32], partial: bool) -> usize {
        let cc = self.client_channels;
        let frames = input
            .len()
            .checked_div(self.frame_size)
            .unwrap_or(0)
            .min(self.input_frames_next());
        let decoded = self.decoded.get_mut(..frames * cc).unwrap_or_default();
        format::decode_lenient(
            self.format,
            input.get(..frames * self.frame_size).unwrap_or_default(),
            decoded,
        );
        let period_samples = self.period * cc;
        let Some(resampler) = &mut self.resampler else {
            if let Some(tail) = self.decoded.get_mut(frames * cc..period_samples) {
                tail.fill(0.0);
            }
            let signal = if partial { frames } else { self.period };
            let decoded = self.decoded.get(..period_samples).unwrap_or_default();
            self.remap.apply_lenient(decoded, out);
            zero_after(out, signal, self.sink_channels);
            return signal;
        };
        let before = resampler.produced;
        let fed = resampler.fed;
        let resampled = self.resampled.get_mut(..period_samples).unwrap_or_default();
        let written = resampler.run(&self.decoded, frames, resampled, cc);
        if let Some(tail) = resampled.get_mut(written * cc..) {
            tail.fill(0.0);
        }
        if !partial || frames > 0 {
            resampler.signal_end = fed + frames as u64;
        }
        let signal = resampler
            .signal_end_out()
            .saturating_sub(before)
            .min(self.period as u64) as usize;
        self.remap.apply_lenient(resampled, out);
        if partial {
            zero_after(out, signal, self.sink_channels);
        }
        signal
    }
}

/// Zeros every sample of `out` after the first `frames` frames.
fn zero_after(out: &mut [f32], frames: usize, channels: usize) {
    if let Some(tail) = out.get_mut(frames.saturating_mul(channels)..) {
        tail.fill(0.0);
    }
}

/// The sink's interleaved `f32` frames → client PCM, push model (runs on
/// a connection thread; may allocate). See the module documentation.
#[derive(Debug)]
pub struct RecordConverter {
    format: SampleFormat,
    sink_channels: usize,
    client_channels: usize,
    frame_size: usize,
    remap: Remap,
    /// Remapped frames (client channels) not yet encoded: the whole push
    /// without a resampler, what the resampler has not taken with one.
    pending: Vec<f32>,
    /// The resampler's output for one call.
    resampled: Vec<f32>,
    resampler: Option<Resampling>,
    /// Real frames pushed into the resampler since the last flush (padding
    /// excluded).
    received: u64,
}

impl RecordConverter {
    /// A converter from `sink_rate` Hz `f32` frames laid out as `sink_map`
    /// to `client` samples laid out as `client_map`.
    pub fn new(
        sink_rate: u32,
        sink_map: &ChannelMap,
        client: SampleSpec,
        client_map: &ChannelMap,
    ) -> Result<Self, ConvertError> {
        let client_channels = check_client(client, client_map)?;
        let sink_channels = check_sink(sink_rate, sink_map)?;
        let frame_size = client.frame_size().unwrap_or(0);
        let resampler = if client.rate == sink_rate {
            None
        } else {
            // 10 ms of the sink rate.
            let chunk = (sink_rate as usize / 100).clamp(1, PERIOD_MAX);
            Some(Resampling::new(
                sink_rate,
                client.rate,
                chunk,
                client_channels,
                Fixed::Input,
            )?)
        };
        let out_max = resampler
            .as_ref()
            .map_or(0, |r| r.engine.get_ref().output_frames_max());
        Ok(RecordConverter {
            format: client.format,
            sink_channels,
            client_channels,
            frame_size,
            remap: Remap::new(sink_map.positions(), client_map.positions()),
            pending: Vec::new(),
            resampled: vec![0.0; out_max * client_channels],
            resampler,
            received: 0,
        })
    }

    /// Client frame size in bytes.
    pub fn client_frame_size(&self) -> usize {
        self.frame_size
    }

    /// The resampler's delay in client frames (0 without a resampler).
    pub fn delay_frames(&self) -> usize {
        self.resampler.as_ref().map_or(0, |r| r.delay)
    }

    /// Sink frames pushed but not yet converted (buffered until the
    /// resampler's next chunk is complete).
    pub fn buffered_frames(&self) -> usize {
        self.pending.len() / self.client_channels.max(1)
    }

    /// Whether a resampler is in use.
    pub fn resampling(&self) -> bool {
        self.resampler.is_some()
    }

    /// Appends the client-format bytes for `input` (whole sink frames) to
    /// `out`. With a resampler, output lags: input is converted in 10 ms
    /// chunks and the resampler holds its delay. A trailing partial frame is
    /// ignored (`debug_assert!`).
    pub fn push(&mut self, input: &[f32], out: &mut Vec<u8>) {
        debug_assert_eq!(
            input.len() % self.sink_channels,
            0,
            "push: input is not whole frames"
        );
        let frames = input.len() / self.sink_channels;
        let input = &input[..frames * self.sink_channels];
        let cc = self.client_channels;
        let start = self.pending.len();
        self.pending.resize(start + frames * cc, 0.0);
        self.remap.apply_lenient(input, &mut self.pending[start..]);
        if self.resampler.is_none() {
            append_encoded(self.format, &self.pending, out);
            self.pending.clear();
            return;
        }
        self.received += frames as u64;
        self.drain(out, false);
    }

    /// Runs the resampler over the pending frames: whole chunks only, or
    /// with `flush` everything plus silence until the signal is out.
    fn drain(&mut self, out: &mut Vec<u8>, flush: bool) {
        let cc = self.client_channels;
        let Some(resampler) = &mut self.resampler else {
            return;
        };
        if flush {
            // Before a flush every frame fed was real, and `received` counts
            // them plus the pending ones, all since the last reset.
            resampler.signal_end = self.received;
        }
        let target = resampler.signal_end_out();
        let mut offset = 0;
        // Bounded: every call consumes at least one frame of a chunk, and a
        // flush needs at most the pending frames plus the delay.
        for _ in 0..(1 << 20) {
            let need = resampler.engine.get_ref().input_frames_next();
            let available = self.pending.len() / cc - offset;
            if available < need && (!flush || resampler.produced >= target) {
                break;
            }
            let frames = available.min(need);
            let before = resampler.produced;
            let chunk = self.pending.get(offset * cc..).unwrap_or_default();
            let written = resampler.run(chunk, frames, &mut self.resampled, cc);
            offset += frames;
            let keep = if flush {
                target.saturating_sub(before).min(written as u64) as usize
            } else {
                written
            };
            append_encoded(
                self.format,
                self.resampled.get(..keep * cc).unwrap_or_default(),
                out,
            );
        }
        self.pending.drain(..offset * cc);
        if flush {
            resampler.reset();
            self.pending.clear();
            self.received = 0;
        }
    }

    /// End of stream: converts everything still buffered, including the
    /// resampler's delay, and appends it to `out`; output then ends exactly
    /// where the signal does (`delay + ceil(frames × client_rate /
    /// sink_rate)` frames since the previous flush). The converter starts
    /// afresh afterwards.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        self.drain(out, true);
    }
}

/// Encodes `samples` in `format` and appends the bytes to `out`.
pub(super) fn append_encoded(format: SampleFormat, samples: &[f32], out: &mut Vec<u8>) {
    let size = format::sample_size(format).unwrap_or(0);
    let start = out.len();
    out.resize(start + samples.len() * size, 0);
    format::encode_lenient(format, samples, &mut out[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::audio::format::{FLOAT32LE, S16LE, S24LE, U8, ULAW};
    use proptest::prelude::*;

    const MONO: [u8; 1] = [0];
    const STEREO: [u8; 2] = [1, 2];

    fn map(positions: &[u8]) -> ChannelMap {
        ChannelMap::new(positions).unwrap()
    }

    fn spec(format: SampleFormat, channels: u8, rate: u32) -> SampleSpec {
        SampleSpec {
            format,
            channels,
            rate,
        }
    }

    /// `frames` frames of a sine, the same in every channel.
    fn sine(rate: u32, freq: f64, amplitude: f64, frames: usize, channels: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let v = amplitude
                    * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin();
                std::iter::repeat_n(v as f32, channels)
            })
            .collect()
    }

    fn to_bytes(format: SampleFormat, samples: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        append_encoded(format, samples, &mut out);
        out
    }

    /// Channel `ch` of interleaved `frames`.
    fn channel(samples: &[f32], channels: usize, ch: usize) -> Vec<f32> {
        samples.iter().skip(ch).step_by(channels).copied().collect()
    }

    /// Frequency from upward zero crossings, and RMS, of `x`.
    fn measure(x: &[f32], rate: u32) -> (f64, f64) {
        let crossings: Vec<usize> = (1..x.len())
            .filter(|&i| x[i - 1] < 0.0 && x[i] >= 0.0)
            .collect();
        assert!(
            crossings.len() >= 2,
            "no signal: {} crossings",
            crossings.len()
        );
        let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
        let freq = (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64;
        let rms =
            (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt();
        (freq, rms)
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// Plays `samples` (client-format `f32`, interleaved) through a
    /// converter, draining it; returns the signal frames (sink-interleaved)
    /// and the number of process calls.
    fn play(
        conv: &mut PlaybackConverter,
        format: SampleFormat,
        samples: &[f32],
        client_channels: usize,
    ) -> Vec<f32> {
        let bytes = to_bytes(format, samples);
        let fs = conv.client_frame_size();
        let sc = conv.sink_channels();
        let mut period = vec![0.0; conv.period_frames() * sc];
        let mut out = Vec::new();
        let mut pos = 0;
        assert_eq!(bytes.len() / fs, samples.len() / client_channels);
        while bytes.len() - pos >= conv.input_frames_next() * fs {
            let n = conv.input_frames_next() * fs;
            conv.process(&bytes[pos..pos + n], &mut period);
            out.extend_from_slice(&period);
            pos += n;
        }
        let mut calls = 0;
        loop {
            let signal = conv.process_partial(&bytes[pos..], &mut period);
            pos = bytes.len();
            assert!(signal <= conv.period_frames());
            assert!(
                period[signal * sc..].iter().all(|&v| v == 0.0),
                "not zero after the signal"
            );
            out.extend_from_slice(&period[..signal * sc]);
            if signal == 0 {
                break;
            }
            calls += 1;
            assert!(calls < 1000, "process_partial never returns 0");
        }
        out
    }

    /// A 1 kHz sine through a playback converter: right frequency, level
    /// and length after the drain.
    fn check_playback_sine(
        format: SampleFormat,
        client_rate: u32,
        client_map: &[u8],
        sink_rate: u32,
        period: usize,
        sinc: bool,
    ) {
        let cc = client_map.len();
        let frames = client_rate as usize; // one second
        let input = sine(client_rate, 1000.0, 0.5, frames, cc);
        let mut conv = PlaybackConverter::new(
            spec(format, cc as u8, client_rate),
            &map(client_map),
            sink_rate,
            &map(&STEREO),
            period,
        )
        .unwrap();
        assert!(conv.resampling());
        assert_eq!(
            matches!(conv.resampler.as_ref().unwrap().engine, Engine::Sinc(_)),
            sinc
        );
        let delay = conv.delay_frames();
        let out = play(&mut conv, format, &input, cc);
        let total = out.len() / 2;
        let exact = frames as f64 * f64::from(sink_rate) / f64::from(client_rate);
        assert!(
            total as f64 >= exact,
            "tail lost: {total} frames for {exact}"
        );
        assert!(
            total as f64 - exact <= delay as f64 + 1.0,
            "{total} frames for {exact} + delay {delay}"
        );
        assert_eq!(total as u64, delay as u64 + (exact.ceil() as u64));
        let margin = sink_rate as usize / 50; // 20 ms
        for ch in 0..2 {
            let x = channel(&out, 2, ch);
            let steady = &x[delay + margin..total - margin];
            let (freq, rms) = measure(steady, sink_rate);
            assert!((freq - 1000.0).abs() < 2.0, "channel {ch}: {freq} Hz");
            let level = db(rms / (0.5 / 2f64.sqrt()));
            assert!(level.abs() < 0.5, "channel {ch}: {level} dB");
        }
    }

    #[test]
    fn playback_44100_to_48000_fft() {
        check_playback_sine(S16LE, 44100, &STEREO, 48000, 480, false);
    }

    #[test]
    fn playback_44100_fixed_input_chunks() {
        let conv = PlaybackConverter::new(
            spec(S16LE, 2, 44100),
            &map(&STEREO),
            48000,
            &map(&STEREO),
            480,
        )
        .unwrap();
        assert_eq!(conv.input_frames_next(), 441);
        assert_eq!(conv.delay_frames(), 240);
        assert_eq!(conv.client_frame_size(), 4);
    }

    #[test]
    fn resampler_choice() {
        let fft = |client: u32, period: usize| {
            let c = PlaybackConverter::new(
                spec(S16LE, 2, client),
                &map(&STEREO),
                48000,
                &map(&STEREO),
                period,
            )
            .unwrap();
            matches!(c.resampler.as_ref().unwrap().engine, Engine::Fft(_))
        };
        for rate in [
            8000, 16000, 22050, 24000, 32000, 44100, 88200, 96000, 176400, 192000,
        ] {
            assert!(fft(rate, 320), "{rate}");
            assert!(!fft(rate + 1, 480), "{}", rate + 1);
        }
        assert!(!fft(11025, 480));
        assert!(fft(11025, 640));
        let record_fft = |client: u32| {
            let c =
                RecordConverter::new(48000, &map(&STEREO), spec(S16LE, 2, client), &map(&STEREO))
                    .unwrap();
            matches!(c.resampler.as_ref().unwrap().engine, Engine::Fft(_))
        };
        assert!(record_fft(44100) && record_fft(8000) && record_fft(22050));
        assert!(!record_fft(11025) && !record_fft(44101));
    }

    #[test]
    fn playback_odd_rate_uses_sinc() {
        check_playback_sine(FLOAT32LE, 44101, &MONO, 48000, 480, true);
    }

    #[test]
    fn playback_8000_ulaw_mono() {
        check_playback_sine(ULAW, 8000, &MONO, 48000, 480, false);
    }

    #[test]
    fn playback_96000_s24_downsample() {
        check_playback_sine(S24LE, 96000, &STEREO, 48000, 1024, false);
    }

    #[test]
    fn playback_odd_period() {
        check_playback_sine(S16LE, 22050, &STEREO, 48000, 333, false);
        check_playback_sine(S16LE, 44100, &STEREO, 48000, 7, true);
    }

    /// An impulse comes out `delay + position × ratio` frames in: the
    /// reported delay is the real one.
    #[test]
    fn impulse_lands_at_the_reported_delay() {
        for (rate, period, sinc) in [
            (44100, 480, false),
            (44101, 480, true),
            (16000, 256, false),
            (96000, 480, false),
            (44100, 100, true),
        ] {
            let at = 3000;
            let mut input = vec![0.0f32; 2 * rate as usize / 10 + at];
            input[at] = 0.5;
            let mut conv = PlaybackConverter::new(
                spec(FLOAT32LE, 1, rate),
                &map(&MONO),
                48000,
                &map(&MONO),
                period,
            )
            .unwrap();
            assert_eq!(
                matches!(conv.resampler.as_ref().unwrap().engine, Engine::Sinc(_)),
                sinc
            );
            let out = play(&mut conv, FLOAT32LE, &input, 1);
            let peak = (0..out.len())
                .max_by(|&a, &b| out[a].abs().total_cmp(&out[b].abs()))
                .unwrap();
            let expected = conv.delay_frames() as f64 + at as f64 * 48000.0 / f64::from(rate);
            assert!(
                (peak as f64 - expected).abs() <= 1.0,
                "{rate} Hz: peak at {peak}, expected {expected}"
            );
        }
    }

    /// A burst in the last 10 ms of the stream comes out whole after the
    /// drain: the counted signal includes what the resampler held.
    #[test]
    fn drain_keeps_the_tail() {
        for (rate, sinc) in [(44100, false), (44101, true)] {
            let frames = rate as usize / 5;
            let burst = rate as usize / 100;
            let mut input = vec![0.0f32; frames];
            let tone = sine(rate, 1000.0, 0.5, burst, 1);
            input[frames - burst..].copy_from_slice(&tone);
            let mut conv = PlaybackConverter::new(
                spec(FLOAT32LE, 1, rate),
                &map(&MONO),
                48000,
                &map(&MONO),
                480,
            )
            .unwrap();
            assert_eq!(
                matches!(conv.resampler.as_ref().unwrap().engine, Engine::Sinc(_)),
                sinc
            );
            let out = play(&mut conv, FLOAT32LE, &input, 1);
            let energy_in: f64 =
                tone.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() * 48000.0 / f64::from(rate);
            let energy_out: f64 = out.iter().map(|&v| f64::from(v).powi(2)).sum();
            let level = db((energy_out / energy_in).sqrt());
            assert!(
                level.abs() < 0.5,
                "{rate} Hz: burst at {level} dB after the drain"
            );
        }
    }

    #[test]
    fn equal_rate_s16_is_exact_and_remaps() {
        let values: Vec<i16> = (0..960).map(|i| (i * 68 - 32768) as i16).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Stereo to stereo.
        let mut conv = PlaybackConverter::new(
            spec(S16LE, 2, 48000),
            &map(&STEREO),
            48000,
            &map(&STEREO),
            480,
        )
        .unwrap();
        assert!(!conv.resampling());
        assert_eq!(conv.delay_frames(), 0);
        assert_eq!(conv.input_frames_next(), 480);
        let mut out = vec![0.0; 960];
        conv.process(&bytes, &mut out);
        for (o, v) in out.iter().zip(&values) {
            assert_eq!(*o, f32::from(*v) / 32768.0);
        }
        // Mono to stereo: every sample twice.
        let mut conv = PlaybackConverter::new(
            spec(S16LE, 1, 48000),
            &map(&MONO),
            48000,
            &map(&STEREO),
            960,
        )
        .unwrap();
        let mut out = vec![0.0; 1920];
        conv.process(&bytes, &mut out);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(out[2 * i], f32::from(*v) / 32768.0);
            assert_eq!(out[2 * i + 1], f32::from(*v) / 32768.0);
        }
    }

    #[test]
    fn equal_rate_partial_counts_frames() {
        let mut conv = PlaybackConverter::new(
            spec(S16LE, 2, 48000),
            &map(&STEREO),
            48000,
            &map(&STEREO),
            4,
        )
        .unwrap();
        let mut out = [9.0f32; 8];
        // One frame and a half: one frame of signal, then zeros.
        assert_eq!(conv.process_partial(&[0, 0x40, 0, 0xC0, 1, 2], &mut out), 1);
        assert_eq!(out, [0.5, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(conv.process_partial(&[], &mut out), 0);
        assert_eq!(out, [0.0; 8]);
        // Too much input: only a period is consumed.
        assert_eq!(conv.process_partial(&[0; 40], &mut out), 4);
    }

    #[test]
    fn fresh_resampling_converter_drains_nothing() {
        let mut conv = PlaybackConverter::new(
            spec(S16LE, 2, 44100),
            &map(&STEREO),
            48000,
            &map(&STEREO),
            480,
        )
        .unwrap();
        let mut out = vec![1.0; 960];
        assert_eq!(conv.process_partial(&[], &mut out), 0);
        assert!(out.iter().all(|&v| v == 0.0));
        // Empty input through process: silence, no panic.
        let mut conv = PlaybackConverter::new(
            spec(S16LE, 2, 48000),
            &map(&STEREO),
            48000,
            &map(&STEREO),
            480,
        )
        .unwrap();
        conv.process_partial(&[], &mut out);
        conv.run(&[], &mut out, false);
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn playback_resumes_after_a_drain() {
        let mut conv = PlaybackConverter::new(
            spec(FLOAT32LE, 1, 44100),
            &map(&MONO),
            48000,
            &map(&MONO),
            480,
        )
        .unwrap();
        let tone = sine(44100, 1000.0, 0.5, 44100, 1);
        let first = play(&mut conv, FLOAT32LE, &tone[..4410], 1);
        let second = play(&mut conv, FLOAT32LE, &tone[..4410], 1);
        assert!(!first.is_empty());
        // The second stream starts after silence and keeps all its signal.
        let e = |x: &[f32]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        assert!(db((e(&second) / e(&first)).sqrt()).abs() < 0.5);
    }

    #[test]
    fn constructor_errors() {
        let ok = spec(S16LE, 2, 44100);
        let stereo = map(&STEREO);
        let e = PlaybackConverter::new(
            spec(SampleFormat::Unknown(13), 2, 44100),
            &stereo,
            48000,
            &stereo,
            480,
        )
        .unwrap_err();
        assert!(matches!(e, ConvertError::BadSampleSpec(_)), "{e}");
        let e = PlaybackConverter::new(spec(S16LE, 0, 44100), &map(&[]), 48000, &stereo, 480)
            .unwrap_err();
        assert!(matches!(e, ConvertError::BadSampleSpec(_)), "{e}");
        let e =
            PlaybackConverter::new(spec(S16LE, 2, 0), &stereo, 48000, &stereo, 480).unwrap_err();
        assert!(matches!(e, ConvertError::BadSampleSpec(_)), "{e}");
        let e = PlaybackConverter::new(ok, &map(&MONO), 48000, &stereo, 480).unwrap_err();
        assert!(
            matches!(
                e,
                ConvertError::ChannelMapMismatch {
                    which: "client",
                    positions: 1,
                    channels: 2
                }
            ),
            "{e}"
        );
        let e = PlaybackConverter::new(ok, &stereo, 0, &stereo, 480).unwrap_err();
        assert!(matches!(e, ConvertError::BadSink { .. }), "{e}");
        let e = PlaybackConverter::new(ok, &stereo, 48000, &map(&[]), 480).unwrap_err();
        assert!(matches!(e, ConvertError::BadSink { .. }), "{e}");
        for period in [0, PERIOD_MAX + 1] {
            let e = PlaybackConverter::new(ok, &stereo, 48000, &stereo, period).unwrap_err();
            assert!(
                matches!(e, ConvertError::PeriodOutOfRange(p) if p == period),
                "{e}"
            );
        }
        assert!(PlaybackConverter::new(ok, &stereo, 48000, &stereo, 1).is_ok());
        assert!(PlaybackConverter::new(ok, &stereo, 48000, &stereo, PERIOD_MAX).is_ok());
        let e = RecordConverter::new(48000, &stereo, spec(S16LE, 3, 44100), &stereo).unwrap_err();
        assert!(matches!(e, ConvertError::ChannelMapMismatch { .. }), "{e}");
        let e = RecordConverter::new(RATE_MAX + 1, &stereo, ok, &stereo).unwrap_err();
        assert!(matches!(e, ConvertError::BadSink { .. }), "{e}");
        assert!(format!("{e}").contains("rate"));
    }

    #[test]
    fn extreme_rates_build() {
        // Every client rate against the usual sink rates (a sink rate far
        // below the client's would need huge buffers, see the module doc).
        for (client, sink) in [
            (1, 48000),
            (RATE_MAX, 48000),
            (48000, RATE_MAX),
            (RATE_MAX - 1, 48000),
            (7, 44100),
        ] {
            let mut p = PlaybackConverter::new(
                spec(S16LE, 2, client),
                &map(&STEREO),
                sink,
                &map(&STEREO),
                480,
            )
            .unwrap();
            let mut out = vec![0.0; 960];
            let input = vec![0u8; p.input_frames_next() * 4];
            p.process(&input, &mut out);
            let mut r =
                RecordConverter::new(sink, &map(&STEREO), spec(S16LE, 2, client), &map(&STEREO))
                    .unwrap();
            let mut bytes = Vec::new();
            r.push(&vec![0.0; 2 * sink as usize / 10], &mut bytes);
            r.flush(&mut bytes);
        }
    }

    /// Pushes `input` in uneven pieces and flushes; returns the bytes.
    fn record(conv: &mut RecordConverter, input: &[f32], sink_channels: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let sizes = [1usize, 7, 480, 1000, 333, 0, 4096, 2];
        let mut pos = 0;
        let mut i = 0;
        while pos < input.len() {
            let n = (sizes[i % sizes.len()] * sink_channels).min(input.len() - pos);
            conv.push(&input[pos..pos + n], &mut out);
            pos += n;
            i += 1;
        }
        conv.flush(&mut out);
        out
    }

    fn check_record_sine(client_rate: u32, format: SampleFormat, sinc: bool) {
        let frames = 48000;
        let input = sine(48000, 1000.0, 0.5, frames, 2);
        let mut conv = RecordConverter::new(
            48000,
            &map(&STEREO),
            spec(format, 1, client_rate),
            &map(&MONO),
        )
        .unwrap();
        assert!(conv.resampling());
        assert_eq!(
            matches!(conv.resampler.as_ref().unwrap().engine, Engine::Sinc(_)),
            sinc
        );
        let delay = conv.delay_frames();
        let bytes = record(&mut conv, &input, 2);
        assert_eq!(conv.buffered_frames(), 0);
        let mut x = vec![0.0; bytes.len() / conv.client_frame_size()];
        format::decode(format, &bytes, &mut x);
        let total = x.len();
        let exact = frames as f64 * f64::from(client_rate) / 48000.0;
        assert!(
            total as f64 >= exact,
            "tail lost: {total} frames for {exact}"
        );
        assert!(
            total as f64 - exact <= delay as f64 + 1.0,
            "{total} frames for {exact} + delay {delay}"
        );
        let margin = client_rate as usize / 50;
        let (freq, rms) = measure(&x[delay + margin..total - margin], client_rate);
        assert!((freq - 1000.0).abs() < 2.0, "{freq} Hz");
        let level = db(rms / (0.5 / 2f64.sqrt()));
        assert!(level.abs() < 0.5, "{level} dB");
    }

    #[test]
    fn record_48000_to_22050_u8_mono() {
        check_record_sine(22050, U8, false);
    }

    #[test]
    fn record_odd_rate_uses_sinc() {
        check_record_sine(22051, S16LE, true);
    }

    #[test]
    fn record_lags_by_at_most_a_chunk_and_the_delay() {
        let mut conv =
            RecordConverter::new(48000, &map(&STEREO), spec(S16LE, 2, 44100), &map(&STEREO))
                .unwrap();
        let mut out = Vec::new();
        let input = sine(48000, 1000.0, 0.5, 48000, 2);
        for piece in input.chunks(2 * 100) {
            conv.push(piece, &mut out);
        }
        let got = out.len() / 4;
        // Output never runs ahead of the input and lags by at most one
        // 10 ms chunk plus one FFT block.
        let exact = 44100.0;
        assert!((got as f64) <= exact + conv.delay_frames() as f64);
        assert!(
            (got as f64) >= exact - 441.0 - 2.0 * conv.delay_frames() as f64,
            "{got}"
        );
    }

    #[test]
    fn record_equal_rate_is_bit_exact() {
        let bits: Vec<u32> = (0..64u32)
            .map(|i| i.wrapping_mul(0x9E37_79B9))
            .chain([0x8000_0000, 0x7FC0_0001])
            .collect();
        let input: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let mut conv = RecordConverter::new(
            48000,
            &map(&STEREO),
            spec(FLOAT32LE, 2, 48000),
            &map(&STEREO),
        )
        .unwrap();
        assert!(!conv.resampling());
        let mut out = Vec::new();
        conv.push(&input[..10], &mut out);
        conv.push(&input[10..], &mut out);
        conv.flush(&mut out);
        let expected: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        assert_eq!(out, expected);
        // Stereo sink to mono S16: the average, exactly.
        let mut conv =
            RecordConverter::new(48000, &map(&STEREO), spec(S16LE, 1, 48000), &map(&MONO)).unwrap();
        let mut out = Vec::new();
        conv.push(&[0.5, 0.25, -1.0, -1.0], &mut out);
        assert_eq!(out, [0x00, 0x30, 0x00, 0x80]);
        assert_eq!(conv.client_frame_size(), 2);
    }

    #[test]
    fn record_empty_and_partial_pushes() {
        let mut conv =
            RecordConverter::new(48000, &map(&STEREO), spec(S16LE, 2, 44100), &map(&STEREO))
                .unwrap();
        let mut out = Vec::new();
        conv.push(&[], &mut out);
        conv.flush(&mut out);
        assert!(out.is_empty(), "nothing pushed, nothing out");
        let mut conv =
            RecordConverter::new(48000, &map(&STEREO), spec(S16LE, 2, 48000), &map(&STEREO))
                .unwrap();
        conv.push(&[], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn converters_are_send() {
        fn send<T: Send>() {}
        send::<PlaybackConverter>();
        send::<RecordConverter>();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn equal_rate_float32_is_bit_exact(bits in proptest::collection::vec(any::<u32>(), 2 * 16)) {
            let mut conv = PlaybackConverter::new(spec(FLOAT32LE, 2, 48000), &map(&STEREO), 48000, &map(&STEREO), 16).unwrap();
            let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
            let mut out = vec![0.0; 32];
            conv.process(&bytes, &mut out);
            prop_assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), bits);
        }

        #[test]
        fn partial_never_panics(
            format in (0u8..13).prop_map(SampleFormat::from_wire),
            channels in 1u8..4,
            rate in prop_oneof![Just(48000u32), Just(44100), Just(8000), 1u32..200_000],
            period in 1usize..600,
            lens in proptest::collection::vec(0usize..5000, 1..6),
        ) {
            let positions: Vec<u8> = (1..=channels).collect();
            let mut conv = PlaybackConverter::new(spec(format, channels, rate), &map(&positions), 48000, &map(&STEREO), period).unwrap();
            let mut out = vec![0.0; period * 2];
            for len in lens {
                let input = vec![0x5Au8; len];
                let n = conv.process_partial(&input, &mut out);
                prop_assert!(n <= period);
                prop_assert!(out.iter().all(|v| v.is_finite()));
            }
            let mut calls = 0;
            while conv.process_partial(&[], &mut out) != 0 {
                calls += 1;
                prop_assert!(calls < 100_000);
            }
        }

        #[test]
        fn record_push_never_panics(
            format in (0u8..13).prop_map(SampleFormat::from_wire),
            rate in prop_oneof![Just(48000u32), Just(22050), 1u32..200_000],
            lens in proptest::collection::vec(0usize..3000, 1..6),
        ) {
            let mut conv = RecordConverter::new(48000, &map(&STEREO), spec(format, 1, rate), &map(&MONO)).unwrap();
            let mut out = Vec::new();
            for len in lens {
                conv.push(&vec![0.25; len * 2], &mut out);
                prop_assert_eq!(out.len() % conv.client_frame_size(), 0);
            }
            conv.flush(&mut out);
            prop_assert_eq!(out.len() % conv.client_frame_size(), 0);
        }
    }
}
