//! The PulseAudio native protocol, as the `srbd` daemon speaks it to
//! unmodified libpulse clients (`../shared/docs/pa-native-protocol.md`).
//!
//! Everything here is pure: bytes in, values out, no I/O and no fds (fds
//! travel through [`crate::scm`]). Malformed input is never a panic, always
//! a named error that the connection handler logs before it closes that
//! connection.
//!
//! ## What lives where
//!
//! | module | what it holds |
//! |---|---|
//! | [`tagstruct`] | the typed value codec of packet payloads (§2): [`tagstruct::TagWriter`], [`tagstruct::TagReader`], [`tagstruct::TagError`], and the typed values [`tagstruct::SampleSpec`], [`tagstruct::ChannelMap`], [`tagstruct::CVolume`], [`tagstruct::Proplist`], [`tagstruct::FormatInfo`], [`tagstruct::Timeval`] |
//! | [`pstream`] | the frame layer (§3): the 20-byte [`pstream::Descriptor`], [`pstream::Frame`] (packet, inline memblock, SHM reference, release, revoke) and its encoder, and the incremental [`pstream::FrameDecoder`] with the receiver's checks of §3.7 as [`pstream::FrameError`] |
//!
//! Still to come (in the daemon): commands and version negotiation (§1,
//! §6), memfd import (§4) and the srbchannel (§5).

pub mod pstream;
pub mod tagstruct;

/// Parses the test-vector notation of the protocol doc: hex digits in any
/// grouping, spaces and `|` ignored, and `"…"` for ASCII text (`\"` is a
/// quote inside it).
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
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
