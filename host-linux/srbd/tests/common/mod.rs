//! Helpers shared by srbd's integration tests: [`srbd`] is the harness of
//! the end-to-end tests (daemon, Debian's PulseAudio clients, WAV files,
//! private directories, bounded waits); [`dsp`] is what the DSP-peer
//! suites share; [`alsa`] is the ALSA configuration
//! of the tests that need a 'sound card'.

#![allow(dead_code)] // each test binary uses a different subset

pub mod alsa;
pub mod dsp;
pub mod libpulse;
pub mod srbd;

/// Runs each listed test body (a `fn(Shm)`) once per transport mode, as
/// the tests `name::srbchannel` (the default), `name::shm`
/// (`--srbchannel off`) and `name::no_shm` (`--shm off`).
#[macro_export]
macro_rules! in_all_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn srbchannel() {
                super::$name(super::Shm::Ring)
            }

            #[test]
            fn shm() {
                super::$name(super::Shm::On)
            }

            #[test]
            fn no_shm() {
                super::$name(super::Shm::Off)
            }
        }
    )*};
}
