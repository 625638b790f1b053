//! The pstream frame decoder (§3) fed arbitrary bytes in arbitrary
//! chunks: it must never panic, never hand out a frame that cannot be
//! encoded back to the same frame, and `wanted` must stop reads exactly at
//! frame boundaries.
//!
//! Input: byte 0 picks SHM on/off and the payload limit, byte 1 the chunk
//! pattern, the rest is the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use srb_pulse::pstream::{Frame, FrameDecoder, FRAME_SIZE_MAX_ALLOW};

fuzz_target!(|data: &[u8]| {
    let [mode, pattern, stream @ ..] = data else {
        return;
    };
    let shm = mode & 1 != 0;
    let max = match mode >> 1 & 3 {
        0 => 64,
        1 => 4096,
        2 => 1024 * 1024,
        _ => FRAME_SIZE_MAX_ALLOW,
    };
    // Two decoders: one pushed in chunks of the pattern, one pushed at most
    // `wanted` bytes at a time (how srbd reads a unix socket).
    let mut chunked = FrameDecoder::new(max);
    chunked.set_shm_enabled(shm);
    let mut exact = FrameDecoder::new(max);
    exact.set_shm_enabled(shm);
    let chunk = usize::from(pattern % 32) + 1;
    let mut frames_a = Vec::new();
    let mut error_a = None;
    for piece in stream.chunks(chunk) {
        chunked.push(piece);
        loop {
            match chunked.next_frame() {
                Ok(Some(f)) => frames_a.push(f),
                Ok(None) => break,
                Err(e) => {
                    error_a = Some(e);
                    break;
                }
            }
        }
        if error_a.is_some() {
            break;
        }
    }
    let mut frames_b = Vec::new();
    let mut error_b = None;
    let mut at = 0;
    'read: while at < stream.len() {
        let want = exact.wanted();
        assert!(want > 0, "a live decoder with no whole frame wants bytes");
        let n = want.min(chunk).min(stream.len() - at);
        exact.push(&stream[at..at + n]);
        at += n;
        loop {
            match exact.next_frame() {
                Ok(Some(f)) => {
                    // A frame ended exactly at the end of what was pushed.
                    assert_eq!(exact.buffered(), 0);
                    frames_b.push(f);
                }
                Ok(None) => break,
                Err(e) => {
                    error_b = Some(e);
                    break 'read;
                }
            }
        }
    }
    // Both ways of reading agree.
    assert_eq!(frames_a, frames_b);
    assert_eq!(error_a, error_b);
    // Every frame handed out encodes, and decodes back to itself.
    for f in &frames_a {
        let bytes = f.encode().expect("a decoded frame encodes");
        let mut d = FrameDecoder::new(FRAME_SIZE_MAX_ALLOW);
        d.set_shm_enabled(true);
        d.push(&bytes);
        assert_eq!(d.next_frame().as_ref(), Ok(&Some(f.clone())));
        assert!(!d.is_mid_frame());
    }
    if let Some(Frame::Packet(p)) = frames_a.first() {
        assert!(!p.is_empty());
    }
});
