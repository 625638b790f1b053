//! # srb-dsp-sim: the DSP peer
//!
//! This crate will hold the `no_std` audio kernels (gain, biquads, mixer,
//! meters, bypass) that run both in the simulated DSP process behind `srbd`
//! and on the boards, plus the `dsp-sim` binary. Nothing is implemented yet
//! (see the project's issues); the crate exists so the workspace and its
//! dependency direction are in place.
#![no_std]
