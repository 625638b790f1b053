//! Peak detection for record streams created with `PEAK_DETECT` (level
//! meters such as pavucontrol's: float32, one channel, 25 Hz, a fragment
//! of one sample).
//!
//! PulseAudio serves such a stream through its "peaks" resampler: the sink
//! audio is first remapped to the client's channels, then each output
//! frame `o` carries, per channel, the largest absolute value among the
//! input frames `o·in/out ≤ i < (o+1)·in/out` (integer division, counted
//! from the stream's start), encoded in the client's format. So a tone of
//! amplitude `a` reads `a` on every frame, silence reads `0`. PulseAudio
//! only uses that resampler when the rates differ (at equal, fixed rates
//! it copies the audio unchanged), and so does [`Capture::new`].

use crate::engine::audio::convert::{append_encoded, check_client, check_sink};
use crate::engine::audio::{ConvertError, RecordConverter, Remap};
use crate::engine::stream::MAX_CHANNELS;
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::{ChannelMap, SampleSpec};

/// Sink `f32` frames → one peak per client frame, in the client's format.
#[derive(Debug)]
pub struct PeakDetector {
    format: SampleFormat,
    sink_channels: usize,
    client_channels: usize,
    frame_size: usize,
    in_rate: u64,
    out_rate: u64,
    remap: Remap,
    /// The running maximum of each client channel in the current frame.
    max: [f32; MAX_CHANNELS],
    /// Input frames seen and output frames made since the start.
    inputs: u64,
    outputs: u64,
    remapped: Vec<f32>,
    peaks: Vec<f32>,
}

impl PeakDetector {
    /// A detector from `sink_rate` Hz frames laid out as `sink_map` to
    /// `client` frames laid out as `client_map`.
    pub fn new(
        sink_rate: u32,
        sink_map: &ChannelMap,
        client: SampleSpec,
        client_map: &ChannelMap,
    ) -> Result<Self, ConvertError> {
        let client_channels = check_client(client, client_map)?;
        let sink_channels = check_sink(sink_rate, sink_map)?;
        Ok(Self {
            format: client.format,
            sink_channels,
            client_channels,
            frame_size: client.frame_size().unwrap_or(0),
            in_rate: u64::from(sink_rate),
            out_rate: u64::from(client.rate.max(1)),
            remap: Remap::new(sink_map.positions(), client_map.positions()),
            max: [0.0; MAX_CHANNELS],
            inputs: 0,
            outputs: 0,
            remapped: Vec::new(),
            peaks: Vec::new(),
        })
    }

    /// Client frame size in bytes.
    pub fn client_frame_size(&self) -> usize {
        self.frame_size
    }

    /// The input frame at which output frame `o` ends.
    fn end_of(&self, o: u64) -> u64 {
        (o + 1).saturating_mul(self.in_rate) / self.out_rate
    }

    /// Appends the peaks completed by `input` (whole sink frames) to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<u8>) {
        let frames = input.len() / self.sink_channels;
        let cc = self.client_channels;
        self.remapped.resize(frames * cc, 0.0);
        self.remap
            .apply_lenient(&input[..frames * self.sink_channels], &mut self.remapped);
        self.peaks.clear();
        for frame in self.remapped.chunks_exact(cc) {
            for (m, x) in self.max.iter_mut().zip(frame) {
                *m = m.max(x.abs());
            }
            self.inputs += 1;
            if self.inputs >= self.end_of(self.outputs) {
                self.peaks
                    .extend_from_slice(&self.max[..cc.min(MAX_CHANNELS)]);
                self.max = [0.0; MAX_CHANNELS];
                self.outputs += 1;
            }
        }
        append_encoded(self.format, &self.peaks, out);
    }
}

/// What a record stream turns sink audio into: the audio itself, or its
/// peaks (`PEAK_DETECT` at a rate other than the sink's).
#[derive(Debug)]
pub enum Capture {
    /// The audio, converted.
    Audio(RecordConverter),
    /// One peak per client frame.
    Peaks(PeakDetector),
}

impl Capture {
    /// The capture for a stream of `client` spec on a sink of `sink_rate`
    /// and `sink_map`; peaks when `peak_detect` and the rates differ.
    pub fn new(
        peak_detect: bool,
        sink_rate: u32,
        sink_map: &ChannelMap,
        client: SampleSpec,
        client_map: &ChannelMap,
    ) -> Result<Self, ConvertError> {
        Ok(if peak_detect && client.rate != sink_rate {
            Self::Peaks(PeakDetector::new(sink_rate, sink_map, client, client_map)?)
        } else {
            Self::Audio(RecordConverter::new(
                sink_rate, sink_map, client, client_map,
            )?)
        })
    }

    /// Client frame size in bytes.
    pub fn client_frame_size(&self) -> usize {
        match self {
            Self::Audio(c) => c.client_frame_size(),
            Self::Peaks(p) => p.client_frame_size(),
        }
    }

    /// Appends the client bytes for `input` (whole sink frames) to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<u8>) {
        match self {
            Self::Audio(c) => c.push(input, out),
            Self::Peaks(p) => p.push(input, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: u32, channels: u8) -> SampleSpec {
        SampleSpec {
            format: SampleFormat::Float32Le,
            channels,
            rate,
        }
    }

    fn floats(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn one_peak_per_output_frame_of_a_tone_and_of_silence() {
        let stereo = ChannelMap::new(&[1, 2]).unwrap();
        let mono = ChannelMap::new(&[0]).unwrap();
        let mut p = PeakDetector::new(48_000, &stereo, spec(25, 1), &mono).unwrap();
        // 0.1 s of a 1 kHz tone of amplitude 0.5 on both channels, in
        // uneven pushes, then 0.1 s of silence.
        let tone: Vec<f32> = (0..4800)
            .flat_map(|i| {
                let x = 0.5 * (2.0 * std::f32::consts::PI * i as f32 / 48.0).sin();
                [x, x]
            })
            .collect();
        let mut out = Vec::new();
        for part in tone.chunks(2 * 700) {
            p.push(part, &mut out);
        }
        p.push(&vec![0.0; 9600], &mut out);
        let peaks = floats(&out);
        assert_eq!(peaks.len(), 5, "1920 input frames per peak at 25 Hz");
        assert!(
            peaks[..2].iter().all(|&x| (x - 0.5).abs() < 1e-6),
            "{peaks:?}"
        );
        assert_eq!(&peaks[3..], &[0.0, 0.0], "silence");
    }

    #[test]
    fn peaks_are_per_channel_and_absolute() {
        let stereo = ChannelMap::new(&[1, 2]).unwrap();
        let mut p = PeakDetector::new(100, &stereo, spec(10, 2), &stereo).unwrap();
        let mut input = vec![0.0f32; 200];
        input[4] = -0.75;
        input[7] = 0.25;
        let mut out = Vec::new();
        p.push(&input, &mut out);
        assert_eq!(floats(&out)[..2], [0.75, 0.25]);
    }

    #[test]
    fn equal_rates_copy_the_audio_as_pulseaudio_does() {
        let stereo = ChannelMap::new(&[1, 2]).unwrap();
        let c = Capture::new(true, 48_000, &stereo, spec(48_000, 2), &stereo).unwrap();
        assert!(matches!(c, Capture::Audio(_)));
    }
}
