//! Which device srbd plays to when none is named: the first real sound
//! card, never a sound server.
//!
//! [`choose_default`] tries [`DEFAULT_CANDIDATES`] in order (`sysdefault`,
//! the card's own default with ALSA's conversions, then `plughw:0`). A
//! candidate whose plugin chain routes to a sound server (`pulse`,
//! `pipewire`: often what ALSA's `default` is on a desktop) is refused with
//! a warning, since srbd playing into a server could loop audio back into
//! itself; a candidate whose definition cannot be read is skipped (it
//! could be one). The first that opens is the choice; if none does, the
//! null sink. Every step is logged, so the first log lines say what srbd
//! plays to and why (alsa-lib's own messages about missing cards go to
//! the debug log through [`AlsaMessages`]).
//!
//! A device the user names (`--output alsa:NAME`) is opened whatever it
//! routes to; [`warn_if_server`] says so when it is a server.

use alsa::pcm::PCM;
use alsa::Direction;

use super::messages::AlsaMessages;
use super::route;

/// The devices tried, in order, when none is named.
pub const DEFAULT_CANDIDATES: [&str; 2] = ["sysdefault", "plughw:0"];

/// What [`choose_default`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This ALSA device opened.
    Alsa(String),
    /// No candidate could be used: the null sink.
    Null {
        /// Each candidate and why it was passed over.
        passed_over: Vec<(String, String)>,
    },
}

/// The default device for `dir` among [`DEFAULT_CANDIDATES`].
pub fn choose_default(dir: Direction) -> Choice {
    choose_from(&DEFAULT_CANDIDATES, dir)
}

/// The first of `candidates` that does not route to a sound server and
/// opens for `dir`, else [`Choice::Null`]; logs each step.
pub fn choose_from(candidates: &[&str], dir: Direction) -> Choice {
    // alsa-lib's complaints about candidates that do not exist go to the
    // debug log, not stderr.
    let mut messages = AlsaMessages::install().ok();
    let mut passed_over = Vec::new();
    for &name in candidates {
        let why = match route::route(name, dir) {
            Ok(r) => match r.to_sound_server() {
                Some(server) => {
                    tracing::warn!(
                        device = name,
                        server,
                        "ALSA device routes to the {server} sound server: refused as srbd's default (it could loop audio back into a server); name it with --output alsa:{name} to use it anyway"
                    );
                    format!("routes to the {server} sound server")
                }
                None => match PCM::new(name, dir, true) {
                    Ok(_) => {
                        tracing::info!(
                            device = name,
                            pcm_type = r.pcm_type().unwrap_or("?"),
                            "default ALSA device: {name}"
                        );
                        return Choice::Alsa(name.to_owned());
                    }
                    Err(e) => format!("does not open: {e}"),
                },
            },
            Err(e) => format!("not usable: {e}"),
        };
        for line in messages
            .as_mut()
            .map(AlsaMessages::take_new)
            .unwrap_or_default()
        {
            tracing::debug!(device = name, "alsa-lib: {line}");
        }
        tracing::info!(
            device = name,
            "default ALSA device candidate passed over: {why}"
        );
        passed_over.push((name.to_owned(), why));
    }
    tracing::info!("no sound card to use: the default is the null sink");
    Choice::Null { passed_over }
}

/// For a device the user named: warns (and returns the server) if it
/// routes to a sound server; it is used all the same.
pub fn warn_if_server(name: &str, dir: Direction) -> Option<String> {
    let server = route::route(name, dir)
        .ok()?
        .to_sound_server()
        .map(str::to_owned)?;
    tracing::warn!(
        device = name,
        server,
        "ALSA device routes to the {server} sound server; using it as asked (if that server plays into srbd, audio loops)"
    );
    Some(server)
}
