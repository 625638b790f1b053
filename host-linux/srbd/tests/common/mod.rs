//! Helpers shared by srbd's integration tests: [`srbd`] is the harness of
//! the end-to-end tests (daemon, Debian's PulseAudio clients, WAV files,
//! private directories, bounded waits).

#![allow(dead_code)] // each test binary uses a different subset

pub mod srbd;
