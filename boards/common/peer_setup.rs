//! The board DSP peer's setup area: what `srbd` writes at the start of the
//! emulated board's PSRAM before QEMU starts, and what the firmware
//! (`srb-board-dsp-peer`) reads back once, validating every field.
//!
//! One source for both ends: the firmware includes this file with `#[path]`,
//! and so does `srbd` (`host-linux/srbd/src/dsp/board.rs`). It is plain
//! `no_std` Rust with no dependencies and no `unsafe`.
//!
//! ```text
//! PSRAM (16 MiB at 0x2100_0000 on mps2-an386 = srbd's memory file)
//!   @0     setup area, SETUP_LEN bytes, little-endian u32 words:
//!          0 magic "srbB"   4 version   8 rate (Hz)   12 channels
//!          16 period frames  20 block offset  24 block length
//!          28 flags (bit 0: start in bypass)  32 chain spec length
//!          36.. chain spec (UTF-8, at most MAX_SPEC bytes)
//!   @BLOCK_OFFSET  the srb-layout block (srb-core's header + two rings),
//!                  srbd = creator, firmware = attacher
//! ```
#![allow(dead_code)]

/// Where the PSRAM (srbd's memory file) appears in the board's address map.
pub const PSRAM_BASE: u32 = 0x2100_0000;
/// The PSRAM's size: QEMU's `mps2-an386` insists on exactly 16 MiB.
pub const PSRAM_LEN: usize = 16 << 20;
/// The setup area's first word: `"srbB"` read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"srbB");
/// The layout version of the setup area.
pub const VERSION: u32 = 1;
/// Bytes of the setup area.
pub const SETUP_LEN: usize = 512;
/// Where srbd puts the `srb` block (128-byte aligned, after the setup area).
pub const BLOCK_OFFSET: usize = 4096;
/// The longest chain spec (the link's `MAX_SPEC_LEN`).
pub const MAX_SPEC: usize = 256;
/// Bounds the firmware accepts (the same as srbd's `dsp` module).
pub const MIN_RATE: u32 = 1_000;
/// Highest rate.
pub const MAX_RATE: u32 = 384_000;
/// Most channels (srb-dsp-sim's `MAX_CHANNELS`).
pub const MAX_CHANNELS: u32 = 8;
/// Shortest period.
pub const MIN_FRAMES: u32 = 64;
/// Longest period.
pub const MAX_FRAMES: u32 = 4096;

const CHAIN_AT: usize = 36;

/// The decoded setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Sample rate in Hz.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u32,
    /// Frames per period.
    pub period_frames: u32,
    /// Offset of the `srb` block in the PSRAM.
    pub block_offset: u32,
    /// Length of the `srb` block.
    pub block_len: u32,
    /// Start in bit-exact bypass.
    pub bypass: bool,
    /// The chain spec's bytes (`chain_len` of them).
    pub chain: [u8; MAX_SPEC],
    /// Length of the chain spec.
    pub chain_len: usize,
}

/// Why a setup area was refused (each names the field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// Not `"srbB"`: srbd did not write a setup area.
    BadMagic(u32),
    /// Another layout version.
    BadVersion(u32),
    /// Rate out of range.
    BadRate(u32),
    /// Channels out of range.
    BadChannels(u32),
    /// Period length out of range.
    BadFrames(u32),
    /// The block is misplaced (overlaps the setup area, misaligned, or
    /// beyond the PSRAM).
    BadBlock(u32, u32),
    /// Unknown flag bits.
    BadFlags(u32),
    /// Chain spec longer than `MAX_SPEC`.
    BadChainLen(u32),
}

fn word(b: &[u8; SETUP_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put(b: &mut [u8; SETUP_LEN], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

impl Setup {
    /// Encodes the setup area (srbd's side). `chain_len` is clamped to
    /// `MAX_SPEC`.
    pub fn encode(&self) -> [u8; SETUP_LEN] {
        let mut b = [0u8; SETUP_LEN];
        let len = self.chain_len.min(MAX_SPEC);
        put(&mut b, 0, MAGIC);
        put(&mut b, 4, VERSION);
        put(&mut b, 8, self.rate);
        put(&mut b, 12, self.channels);
        put(&mut b, 16, self.period_frames);
        put(&mut b, 20, self.block_offset);
        put(&mut b, 24, self.block_len);
        put(&mut b, 28, u32::from(self.bypass));
        put(&mut b, 32, len as u32);
        b[CHAIN_AT..CHAIN_AT + len].copy_from_slice(&self.chain[..len]);
        b
    }

    /// Decodes and validates a private copy of the setup area (the
    /// firmware's side: srbd may have written anything).
    pub fn decode(b: &[u8; SETUP_LEN]) -> Result<Setup, SetupError> {
        let magic = word(b, 0);
        if magic != MAGIC {
            return Err(SetupError::BadMagic(magic));
        }
        let version = word(b, 4);
        if version != VERSION {
            return Err(SetupError::BadVersion(version));
        }
        let rate = word(b, 8);
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(SetupError::BadRate(rate));
        }
        let channels = word(b, 12);
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(SetupError::BadChannels(channels));
        }
        let period_frames = word(b, 16);
        if !(MIN_FRAMES..=MAX_FRAMES).contains(&period_frames) {
            return Err(SetupError::BadFrames(period_frames));
        }
        let (off, len) = (word(b, 20), word(b, 24));
        let end = u64::from(off) + u64::from(len);
        if (off as usize) < SETUP_LEN || off % 128 != 0 || len == 0 || end > PSRAM_LEN as u64 {
            return Err(SetupError::BadBlock(off, len));
        }
        let flags = word(b, 28);
        if flags > 1 {
            return Err(SetupError::BadFlags(flags));
        }
        let chain_len = word(b, 32);
        if chain_len as usize > MAX_SPEC {
            return Err(SetupError::BadChainLen(chain_len));
        }
        let mut chain = [0u8; MAX_SPEC];
        let n = chain_len as usize;
        chain[..n].copy_from_slice(&b[CHAIN_AT..CHAIN_AT + n]);
        Ok(Setup {
            rate,
            channels,
            period_frames,
            block_offset: off,
            block_len: len,
            bypass: flags == 1,
            chain,
            chain_len: n,
        })
    }

    /// The chain spec's bytes.
    pub fn chain_bytes(&self) -> &[u8] {
        &self.chain[..self.chain_len.min(MAX_SPEC)]
    }
}
