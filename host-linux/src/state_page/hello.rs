//! The one frame the control socket sends: the hello that carries the
//! page fd. srb-linux's own framing ([`crate::frame`]), not PulseAudio's.
//!
//! ```text
//! frame kind FRAME_STATE_PAGE, payload 12 bytes, one memfd attached:
//!   0  u32 LE  HELLO_MAGIC  ("srbC")
//!   4  u32 LE  HELLO_VERSION
//!   8  u32 LE  page length in bytes
//! ```

use super::layout::PAGE_LEN;

/// The frame kind of the hello.
pub const FRAME_STATE_PAGE: u32 = 0x5350_0001;
/// The hello's first word: `"srbC"` read as a little-endian `u32`.
pub const HELLO_MAGIC: u32 = u32::from_le_bytes(*b"srbC");
/// The control protocol version.
pub const HELLO_VERSION: u32 = 1;
/// Bytes of the hello payload.
pub const HELLO_LEN: usize = 12;

/// The hello payload this crate sends.
pub fn hello() -> [u8; HELLO_LEN] {
    let mut b = [0u8; HELLO_LEN];
    b[0..4].copy_from_slice(&HELLO_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&HELLO_VERSION.to_le_bytes());
    b[8..12].copy_from_slice(&(PAGE_LEN as u32).to_le_bytes());
    b
}
