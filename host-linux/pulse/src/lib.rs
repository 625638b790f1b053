//! # srb-pulse: the PulseAudio native protocol, without I/O
//!
//! Everything here turns bytes into typed values and back; nothing reads
//! a socket, maps memory or keeps a clock. `srbd` (and the fuzz targets)
//! build on it. The protocol facts are in
//! `../shared/docs/pa-native-protocol.md` (section numbers below refer to it).
//!
//! | module | what it holds |
//! |---|---|
//! | [`tagstruct`] | the tagged value encoding of packets (§4): [`tagstruct::TagReader`], [`tagstruct::TagWriter`], sample specs, channel maps, volumes, proplists, format infos |
//! | [`pstream`] | the frame layer (§3): descriptors, packets, memblocks, SHM references, RELEASE/REVOKE, [`pstream::FrameDecoder`] |
//! | [`sample`] | [`sample::SampleFormat`]: the 13 PCM formats as an enum (unknown bytes kept), sizes, names, silence |
//! | [`format`] | format negotiation: [`format::negotiate`] picks a PCM entry of a client's format list (fixed values, lists, ranges, absent properties), channel position names |
//! | [`commands`] | [`commands::Command`] numbers (§6.1) and [`commands::PaError`] codes (§1.7) |
//! | [`request`] | [`request::Request`]: one typed decoder per command (§6), with [`request::CreatePlayback`], [`request::CreateRecord`], [`request::CreateUpload`], [`request::PlaySample`] and their checks |
//! | [`reply`] | typed replies: one encoder per introspection record ([`reply::ServerInfo`], [`reply::DeviceInfo`], [`reply::ClientInfo`], [`reply::StreamInfo`], [`reply::SampleInfo`]), fields gated by version |
//! | [`attr`] | buffer attributes as PulseAudio fixes them (§7.4, §7.5) |
#![warn(missing_docs)]

pub mod attr;
pub mod commands;
pub mod format;

pub mod pstream;
pub mod reply;
pub mod request;
pub mod sample;
pub mod tagstruct;

/// Parses the test-vector notation of the protocol doc: hex digits in any
/// grouping, spaces and `|` ignored, and `"…"` for ASCII text (`\"` is a
/// quote inside it). Test helper for this crate and its users.
///
/// # Panics
///
/// On malformed notation (odd digit count, an unterminated string, any
/// other character): it is meant for literals written in tests.
pub fn hex(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut nibble: Option<u8> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                assert!(nibble.is_none(), "odd hex digits before a string");
                loop {
                    match chars.next().expect("unterminated string") {
                        '"' => break,
                        '\\' => out.push(chars.next().expect("dangling escape") as u8),
                        c => out.push(c as u8),
                    }
                }
            }
            c if c.is_ascii_hexdigit() => {
                let v = c.to_digit(16).unwrap() as u8;
                match nibble.take() {
                    Some(h) => out.push(h << 4 | v),
                    None => nibble = Some(v),
                }
            }
            c if c.is_whitespace() || c == '|' => {
                assert!(nibble.is_none(), "odd hex digits");
            }
            c => panic!("unexpected {c:?} in hex"),
        }
    }
    assert!(nibble.is_none(), "odd hex digits at end");
    out
}
