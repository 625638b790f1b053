//! A processing chain parsed from a compact text spec.
//!
//! A spec is a comma-separated list of stages, run left to right; each stage
//! is a name followed by `:`-separated parameters:
//!
//! ```text
//! gain:-6dB,peak:1000Hz:q1.0:+3dB,lowpass:8000Hz,highpass:80Hz:q0.707,
//! bandpass:1kHz:q2,lowshelf:200Hz:+4dB,highshelf:6kHz:-3dB,bypass
//! ```
//!
//! | stage | needs | optional |
//! | --- | --- | --- |
//! | `gain` | gain | |
//! | `lowpass`, `highpass`, `bandpass` | frequency | Q |
//! | `peak` (or `peaking`), `lowshelf`, `highshelf` | frequency, gain | Q |
//! | `bypass` | | |
//!
//! A parameter is recognised by its unit: a frequency ends in `Hz` or `kHz`
//! (`1kHz` = `1000Hz`), a gain ends in `dB` (a leading `+` is allowed), a Q
//! starts with `q` (`q0.707`). Names and units are case-insensitive,
//! whitespace around stages and parameters is ignored, parameters may come
//! in any order, and Q defaults to [`DEFAULT_Q`] (1/√2, maximally flat).
//! An empty (or all-whitespace) spec is an empty chain, which passes audio
//! through untouched. Stage indices in errors count from 0.
//!
//! The chain has room for [`MAX_STAGES`] stages in a fixed-capacity vector
//! (no allocation); filter design errors are reported with the index of the
//! stage that caused them.

use core::fmt;

use crate::biquad::{Biquad, Coefficients, DesignError, FilterKind, MAX_CHANNELS};
use crate::gain::Gain;

/// The most stages a [`Chain`] holds.
pub const MAX_STAGES: usize = 16;

/// The Q used when a filter stage gives none: 1/√2 ≈ 0.7071 (Butterworth
/// for low/high-pass, shelf slope S = 1 for shelves).
pub const DEFAULT_Q: f32 = core::f32::consts::FRAC_1_SQRT_2;

/// A kind of stage parameter, as named in [`SpecError::MissingParameter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Parameter {
    /// A frequency (`…Hz` or `…kHz`).
    Frequency,
    /// A gain (`…dB`).
    Gain,
    /// A quality factor (`q…`).
    Q,
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Parameter::Frequency => "frequency",
            Parameter::Gain => "gain",
            Parameter::Q => "Q",
        })
    }
}

/// Why a spec could not be turned into a [`Chain`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpecError {
    /// The stage name is not one of the known stages (or the stage is empty).
    UnknownStage {
        /// Index of the stage in the spec.
        index: usize,
    },
    /// A parameter's number does not parse or is not finite.
    BadNumber {
        /// Index of the stage in the spec.
        index: usize,
    },
    /// A parameter has no recognisable unit (`Hz`, `kHz`, `dB`, `q`).
    UnknownParameter {
        /// Index of the stage in the spec.
        index: usize,
    },
    /// A parameter is given twice, or the stage does not take it.
    UnexpectedParameter {
        /// Index of the stage in the spec.
        index: usize,
        /// The parameter.
        parameter: Parameter,
    },
    /// A required parameter is missing.
    MissingParameter {
        /// Index of the stage in the spec.
        index: usize,
        /// The parameter that is missing.
        parameter: Parameter,
    },
    /// The spec has more than `max` stages.
    TooManyStages {
        /// The capacity, [`MAX_STAGES`].
        max: usize,
    },
    /// The channel count is not in `1..=MAX_CHANNELS`.
    BadChannels {
        /// The value given.
        channels: usize,
    },
    /// A filter stage's parameters were refused by the designer.
    Design {
        /// Index of the stage in the spec.
        index: usize,
        /// What the designer refused.
        err: DesignError,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::UnknownStage { index } => write!(f, "stage {index}: unknown stage"),
            SpecError::BadNumber { index } => {
                write!(f, "stage {index}: a number does not parse or is not finite")
            }
            SpecError::UnknownParameter { index } => write!(
                f,
                "stage {index}: a parameter has no unit (Hz, kHz, dB or a q prefix)"
            ),
            SpecError::UnexpectedParameter { index, parameter } => write!(
                f,
                "stage {index}: {parameter} given twice or not taken by this stage"
            ),
            SpecError::MissingParameter { index, parameter } => {
                write!(f, "stage {index}: missing {parameter}")
            }
            SpecError::TooManyStages { max } => write!(f, "more than {max} stages"),
            SpecError::BadChannels { channels } => {
                write!(f, "{channels} channels is not in 1..={MAX_CHANNELS}")
            }
            SpecError::Design { index, err } => write!(f, "stage {index}: {err}"),
        }
    }
}

/// One stage of a [`Chain`].
#[derive(Clone, Debug)]
enum Stage {
    Gain(Gain),
    Filter(Biquad),
    Bypass,
}

/// A fixed-capacity chain of gain, filter and bypass stages over
/// interleaved frames, built by [`Chain::parse`].
#[derive(Clone, Debug)]
pub struct Chain {
    stages: heapless::Vec<Stage, MAX_STAGES>,
    channels: usize,
}

/// The parameters of one stage as written, before validation per stage.
#[derive(Default)]
struct Params {
    freq_hz: Option<f32>,
    gain_db: Option<f32>,
    q: Option<f32>,
}

/// `s` without the ASCII-case-insensitive `suffix`, if it ends with it.
fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    if tail.eq_ignore_ascii_case(suffix) {
        s.get(..cut)
    } else {
        None
    }
}

/// `s` without the ASCII-case-insensitive `prefix`, if it starts with it.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn number(s: &str, index: usize) -> Result<f32, SpecError> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(SpecError::BadNumber { index }),
    }
}

fn parse_params<'a>(
    params: impl Iterator<Item = &'a str>,
    index: usize,
) -> Result<Params, SpecError> {
    let mut p = Params::default();
    for raw in params {
        let tok = raw.trim();
        let (slot, parameter, value) = if let Some(n) = strip_suffix_ci(tok, "khz") {
            (
                &mut p.freq_hz,
                Parameter::Frequency,
                number(n, index)? * 1000.0,
            )
        } else if let Some(n) = strip_suffix_ci(tok, "hz") {
            (&mut p.freq_hz, Parameter::Frequency, number(n, index)?)
        } else if let Some(n) = strip_suffix_ci(tok, "db") {
            (&mut p.gain_db, Parameter::Gain, number(n, index)?)
        } else if let Some(n) = strip_prefix_ci(tok, "q") {
            (&mut p.q, Parameter::Q, number(n, index)?)
        } else {
            return Err(SpecError::UnknownParameter { index });
        };
        if slot.is_some() {
            return Err(SpecError::UnexpectedParameter { index, parameter });
        }
        *slot = Some(value);
    }
    Ok(p)
}

/// Which parameters a stage takes.
#[derive(Clone, Copy)]
enum StageName {
    Gain,
    Bypass,
    /// A filter; `true` if it needs a gain.
    Filter(FilterKind, bool),
}

fn stage_name(name: &str) -> Option<StageName> {
    const NAMES: [(&str, StageName); 9] = [
        ("gain", StageName::Gain),
        ("bypass", StageName::Bypass),
        ("lowpass", StageName::Filter(FilterKind::LowPass, false)),
        ("highpass", StageName::Filter(FilterKind::HighPass, false)),
        ("bandpass", StageName::Filter(FilterKind::BandPass, false)),
        ("peak", StageName::Filter(FilterKind::Peaking, true)),
        ("peaking", StageName::Filter(FilterKind::Peaking, true)),
        ("lowshelf", StageName::Filter(FilterKind::LowShelf, true)),
        ("highshelf", StageName::Filter(FilterKind::HighShelf, true)),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, s)| s)
}

fn build_stage(
    text: &str,
    index: usize,
    sample_rate: f32,
    channels: usize,
) -> Result<Stage, SpecError> {
    let mut parts = text.split(':');
    let name = parts.next().unwrap_or("").trim();
    let kind = stage_name(name).ok_or(SpecError::UnknownStage { index })?;
    let p = parse_params(parts, index)?;
    let unexpected = |parameter| SpecError::UnexpectedParameter { index, parameter };
    let missing = |parameter| SpecError::MissingParameter { index, parameter };
    match kind {
        StageName::Bypass => {
            if p.freq_hz.is_some() {
                return Err(unexpected(Parameter::Frequency));
            }
            if p.gain_db.is_some() {
                return Err(unexpected(Parameter::Gain));
            }
            if p.q.is_some() {
                return Err(unexpected(Parameter::Q));
            }
            Ok(Stage::Bypass)
        }
        StageName::Gain => {
            if p.freq_hz.is_some() {
                return Err(unexpected(Parameter::Frequency));
            }
            if p.q.is_some() {
                return Err(unexpected(Parameter::Q));
            }
            let g = p.gain_db.ok_or(missing(Parameter::Gain))?;
            Ok(Stage::Gain(Gain::new(g, 0)))
        }
        StageName::Filter(kind, needs_gain) => {
            let freq_hz = p.freq_hz.ok_or(missing(Parameter::Frequency))?;
            let gain_db = match (needs_gain, p.gain_db) {
                (true, Some(g)) => g,
                (true, None) => return Err(missing(Parameter::Gain)),
                (false, Some(_)) => return Err(unexpected(Parameter::Gain)),
                (false, None) => 0.0,
            };
            let q = p.q.unwrap_or(DEFAULT_Q);
            let design = |err| SpecError::Design { index, err };
            let c = Coefficients::design(kind, sample_rate, freq_hz, q, gain_db).map_err(design)?;
            Ok(Stage::Filter(Biquad::new(c, channels).map_err(design)?))
        }
    }
}

impl Chain {
    /// Parses `spec` (see the module docs) into a chain for `channels`
    /// interleaved channels at `sample_rate` Hz.
    ///
    /// Returns the first [`SpecError`] found, in stage order.
    pub fn parse(spec: &str, sample_rate: f32, channels: usize) -> Result<Chain, SpecError> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(SpecError::BadChannels { channels });
        }
        let mut stages = heapless::Vec::new();
        if !spec.trim().is_empty() {
            for (index, text) in spec.split(',').enumerate() {
                if index >= MAX_STAGES {
                    return Err(SpecError::TooManyStages { max: MAX_STAGES });
                }
                let stage = build_stage(text, index, sample_rate, channels)?;
                stages
                    .push(stage)
                    .map_err(|_| SpecError::TooManyStages { max: MAX_STAGES })?;
            }
        }
        Ok(Chain { stages, channels })
    }

    /// Runs every stage, in order, over the interleaved `buf` in place. A
    /// trailing partial frame is left untouched.
    pub fn process(&mut self, buf: &mut [f32]) {
        for stage in self.stages.iter_mut() {
            match stage {
                Stage::Gain(g) => g.process(buf, self.channels),
                Stage::Filter(f) => f.process(buf),
                Stage::Bypass => {}
            }
        }
    }

    /// Zeroes the state of every filter stage.
    pub fn reset(&mut self) {
        for stage in self.stages.iter_mut() {
            if let Stage::Filter(f) = stage {
                f.reset();
            }
        }
    }

    /// The number of stages.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// `true` for a chain with no stages (it passes audio through).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The number of interleaved channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The total of [`Biquad::nonfinite_resets`] over all filter stages
    /// (saturating).
    pub fn nonfinite_resets(&self) -> u32 {
        self.stages
            .iter()
            .filter_map(|s| match s {
                Stage::Filter(f) => Some(f.nonfinite_resets()),
                _ => None,
            })
            .fold(0u32, u32::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    const SR: f32 = 48_000.0;
    const EXAMPLE: &str = "gain:-6dB,peak:1000Hz:q1.0:+3dB,lowpass:8000Hz,highpass:80Hz:q0.707,\
                           bandpass:1kHz:q2,lowshelf:200Hz:+4dB,highshelf:6kHz:-3dB,bypass";

    fn filter(chain: &Chain, i: usize) -> Coefficients {
        match &chain.stages[i] {
            Stage::Filter(f) => f.coefficients(),
            other => panic!("stage {i} is {other:?}"),
        }
    }

    fn design(kind: FilterKind, f: f32, q: f32, g: f32) -> Coefficients {
        Coefficients::design(kind, SR, f, q, g).unwrap()
    }

    #[test]
    fn the_example_spec_builds_the_stages_it_names() {
        let chain = Chain::parse(EXAMPLE, SR, 2).unwrap();
        assert_eq!(chain.len(), 8);
        match &chain.stages[0] {
            Stage::Gain(g) => assert_eq!(g.current_linear(), Gain::new(-6.0, 0).current_linear()),
            other => panic!("{other:?}"),
        }
        use FilterKind::*;
        assert_eq!(filter(&chain, 1), design(Peaking, 1000.0, 1.0, 3.0));
        assert_eq!(filter(&chain, 2), design(LowPass, 8000.0, DEFAULT_Q, 0.0));
        assert_eq!(filter(&chain, 3), design(HighPass, 80.0, 0.707, 0.0));
        assert_eq!(filter(&chain, 4), design(BandPass, 1000.0, 2.0, 0.0));
        assert_eq!(filter(&chain, 5), design(LowShelf, 200.0, DEFAULT_Q, 4.0));
        assert_eq!(
            filter(&chain, 6),
            design(HighShelf, 6000.0, DEFAULT_Q, -3.0)
        );
        assert!(matches!(chain.stages[7], Stage::Bypass));
    }

    #[test]
    fn process_equals_running_the_stages_by_hand() {
        let mut chain = Chain::parse("gain:-6.0206dB, PEAK : 2kHz : +6dB : Q2", SR, 2).unwrap();
        let mut g = Gain::new(-6.0206, 0);
        let mut f = Biquad::new(design(FilterKind::Peaking, 2000.0, 2.0, 6.0), 2).unwrap();
        let input: Vec<f32> = (0..257)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let (mut a, mut b) = (input.clone(), input.clone());
        chain.process(&mut a);
        g.process(&mut b, 2);
        f.process(&mut b);
        assert_eq!(a, b);
        assert_eq!(a[256], input[256], "trailing partial frame untouched");
    }

    #[test]
    fn empty_spec_passes_audio_through() {
        let mut chain = Chain::parse("  ", SR, 1).unwrap();
        assert!(chain.is_empty());
        let mut buf = [0.25f32, -1.0];
        chain.process(&mut buf);
        assert_eq!(buf, [0.25, -1.0]);
    }

    #[test]
    fn nonfinite_resets_are_summed_and_reset_clears_state() {
        let mut chain = Chain::parse("lowpass:1kHz,highpass:10Hz", SR, 1).unwrap();
        let mut buf = [0.5f32, f32::NAN, 0.5];
        chain.process(&mut buf);
        // The NaN is caught by the first filter; the second sees 0.0.
        assert_eq!(chain.nonfinite_resets(), 1);
        assert!(buf.iter().all(|v| v.is_finite()));
        chain.reset();
        let mut fresh = Chain::parse("lowpass:1kHz,highpass:10Hz", SR, 1).unwrap();
        let (mut x, mut y) = ([0.3f32, 0.1], [0.3f32, 0.1]);
        chain.process(&mut x);
        fresh.process(&mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn every_spec_error() {
        let e = |spec: &str| Chain::parse(spec, SR, 2).unwrap_err();
        assert_eq!(e("gain:0dB,reverb"), SpecError::UnknownStage { index: 1 });
        assert_eq!(e("gain:0dB,"), SpecError::UnknownStage { index: 1 });
        assert_eq!(e("gain:xdB"), SpecError::BadNumber { index: 0 });
        assert_eq!(e("lowpass:infHz"), SpecError::BadNumber { index: 0 });
        assert_eq!(e("lowpass:1000"), SpecError::UnknownParameter { index: 0 });
        assert_eq!(
            e("lowpass:1kHz:2kHz"),
            SpecError::UnexpectedParameter {
                index: 0,
                parameter: Parameter::Frequency
            }
        );
        assert_eq!(
            e("bypass,lowpass:1kHz:3dB"),
            SpecError::UnexpectedParameter {
                index: 1,
                parameter: Parameter::Gain
            }
        );
        assert_eq!(
            e("gain:1kHz"),
            SpecError::UnexpectedParameter {
                index: 0,
                parameter: Parameter::Frequency
            }
        );
        assert_eq!(
            e("bypass:q1"),
            SpecError::UnexpectedParameter {
                index: 0,
                parameter: Parameter::Q
            }
        );
        assert_eq!(
            e("peak:1kHz"),
            SpecError::MissingParameter {
                index: 0,
                parameter: Parameter::Gain
            }
        );
        assert_eq!(
            e("lowshelf:3dB"),
            SpecError::MissingParameter {
                index: 0,
                parameter: Parameter::Frequency
            }
        );
        assert_eq!(
            e("gain"),
            SpecError::MissingParameter {
                index: 0,
                parameter: Parameter::Gain
            }
        );
        let many: String = std::iter::repeat_n("bypass", MAX_STAGES + 1)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(e(&many), SpecError::TooManyStages { max: MAX_STAGES });
        let full: String = std::iter::repeat_n("bypass", MAX_STAGES)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(Chain::parse(&full, SR, 2).unwrap().len(), MAX_STAGES);
        assert_eq!(
            e("gain:0dB,highpass:30kHz"),
            SpecError::Design {
                index: 1,
                err: DesignError::BadFrequency {
                    freq_hz: 30_000.0,
                    nyquist_hz: 24_000.0
                }
            }
        );
        assert_eq!(
            e("bandpass:1kHz:q0"),
            SpecError::Design {
                index: 0,
                err: DesignError::BadQ { q: 0.0 }
            }
        );
        assert_eq!(
            Chain::parse("bypass", SR, 0).unwrap_err(),
            SpecError::BadChannels { channels: 0 }
        );
        assert_eq!(std::format!("{}", e("peak:1kHz")), "stage 0: missing gain");
    }

    #[test]
    fn odd_utf8_never_panics() {
        for spec in [
            "é",
            "gain:é",
            "gain:-6dé",
            "ΩkHz",
            "lowpass:1kHé",
            "q",
            ":",
            ",,",
        ] {
            assert!(Chain::parse(spec, SR, 1).is_err(), "{spec}");
        }
    }
}
