//! # srb-dsp-sim: the DSP peer's audio kernels
//!
//! This crate holds the `no_std`, allocation-free audio kernels that run both
//! in the simulated DSP process behind `srbd` and on the Cortex-M boards in
//! `boards/` (see `shared/docs/design.md` §6). Everything here works on
//! **interleaved `f32` frames**: a buffer `[l0, r0, l1, r1, ...]` holds one
//! frame per `channels` consecutive samples. A trailing partial frame (a
//! buffer whose length is not a multiple of `channels`) is left untouched by
//! every kernel that takes a channel count.
//!
//! ## What lives where (one concept per file)
//!
//! | file | concept |
//! | --- | --- |
//! | [`gain`] | [`Gain`]: a gain in dB with a linear ramp (in the linear domain) to each new target |
//! | [`biquad`] | [`Coefficients`] designed from the RBJ "Audio EQ Cookbook", and [`Biquad`], a transposed direct form II filter with per-channel state |
//! | [`mixer`] | [`mix`]: a weighted sum of equally long buffers |
//! | [`meter`] | [`Meter`]: per-channel peak and RMS [`Levels`] since the last reset |
//! | [`bypass`](mod@bypass) | [`bypass()`]: a bit-exact copy, the reference for end-to-end tests |
//! | [`chain`] | [`Chain`]: a fixed-capacity processing chain parsed from a compact text spec |
//! | [`link`] | the host↔DSP link protocol: fixed-layout little-endian binary messages |
//!
//! ## Rules every kernel keeps
//!
//! * **No panics on bad input.** Bad parameters are reported as named error
//!   enums ([`DesignError`], [`MixError`], [`SpecError`], [`LinkError`]) that
//!   implement `Display`; odd buffer lengths are handled as documented.
//! * **A NaN or infinity never poisons a filter for good.** After each sample
//!   [`Biquad`] checks its output and state; if any is non-finite it resets
//!   that channel's state to zero, outputs `0.0` for that sample and counts the
//!   event ([`Biquad::nonfinite_resets`]).
//! * **No denormal slowdowns.** Filter state values with magnitude below
//!   `1e-30` are flushed to zero, so a decaying tail reaches exact silence
//!   instead of crawling through subnormal numbers (slow on many CPUs).
//! * **No `std`, no `alloc`, no `unsafe`.** Transcendental functions come from
//!   [`libm`], since `f32::sin` and friends need `std`.
//!
//! ## Example
//!
//! ```
//! use srb_dsp_sim::{Biquad, Coefficients, FilterKind, Gain, Meter};
//!
//! let mut buf = [0.5f32, -0.5, 0.25, -0.25]; // two stereo frames
//! let mut gain = Gain::new(-6.0206, 0); // halve
//! gain.process(&mut buf, 2);
//! assert_eq!(buf, [0.25, -0.25, 0.125, -0.125]);
//!
//! let c = Coefficients::design(FilterKind::LowPass, 48_000.0, 1_000.0, 0.7071, 0.0).unwrap();
//! let mut lp = Biquad::new(c, 2).unwrap();
//! lp.process(&mut buf);
//!
//! let mut meter = Meter::new(2).unwrap();
//! meter.process(&buf);
//! assert!(meter.levels(0).unwrap().peak > 0.0);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod biquad;
pub mod bypass;
pub mod chain;
pub mod gain;
pub mod link;
pub mod meter;
pub mod mixer;

pub use biquad::{Biquad, Coefficients, DesignError, FilterKind, MAX_CHANNELS};
pub use bypass::bypass;
pub use chain::{Chain, SpecError};
pub use gain::Gain;
pub use link::LinkError;
pub use meter::{Levels, Meter};
pub use mixer::{mix, MixError};
