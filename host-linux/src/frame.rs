//! Frames of srb's own control protocol over an [`ScmStream`].
//!
//! ```text
//! offset  size  field
//!      0     4  kind     (u32, little-endian)
//!      4     4  length   (u32, little-endian): payload bytes that follow
//!      8     …  payload
//! ```
//!
//! A frame is sent with one [`ScmStream::send`], so its fds travel with its
//! first byte; it is received with two exact reads (header, then payload),
//! so the fds in the stream's FIFO when [`recv_frame`] returns are exactly
//! those sent with this frame. The handler claims them with
//! [`ScmStream::claim_exact`]; [`recv_frame`] closes whatever an earlier
//! handler left unclaimed before it reads the next frame.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::scm::{RecvError, ScmStream, SendError};

/// Bytes of the frame header.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest payload accepted (control frames are small).
pub const MAX_FRAME_PAYLOAD: usize = 4096;

/// A received frame. Its fds wait in the stream's FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame kind.
    pub kind: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why a frame could not be received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Receiving failed.
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// The header announced a payload above [`MAX_FRAME_PAYLOAD`].
    #[error("frame of kind {kind} announces {len} payload bytes; at most {max} allowed", max = MAX_FRAME_PAYLOAD)]
    TooLong {
        /// The frame kind.
        kind: u32,
        /// The announced length.
        len: u32,
    },
}

/// Sends one frame with `fds` attached to its first byte.
pub fn send_frame(
    stream: &ScmStream,
    kind: u32,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
    creds: bool,
) -> Result<(), SendError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME_PAYLOAD);
    let Some(len) = len else {
        return Err(SendError::FrameTooLong { len: payload.len() });
    };
    let mut bytes = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    bytes.extend_from_slice(&kind.to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(payload);
    stream.send(&bytes, fds, creds)
}

/// Receives one frame (see the module docs for what happens to fds).
pub fn recv_frame(stream: &mut ScmStream, timeout: Option<Duration>) -> Result<Frame, FrameError> {
    let stale = stream.close_unclaimed();
    if stale > 0 {
        tracing::warn!(
            stale,
            "closed fds an earlier frame's handler left unclaimed"
        );
    }
    let mut header = [0u8; FRAME_HEADER_LEN];
    stream.recv_exact(&mut header, timeout)?;
    let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len as usize > MAX_FRAME_PAYLOAD {
        stream.close_unclaimed();
        return Err(FrameError::TooLong { kind, len });
    }
    let mut payload = vec![0u8; len as usize];
    stream.recv_exact(&mut payload, timeout)?;
    Ok(Frame { kind, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdkind::FdKind;
    use crate::scm::ClaimError;
    use std::os::fd::AsFd;

    #[test]
    fn frames_carry_their_own_fds_and_no_others() {
        let (a, mut b) = ScmStream::pair().unwrap();
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        send_frame(&a, 1, b"first", &[], false).unwrap();
        send_frame(&a, 2, b"second", &[efd.as_fd()], false).unwrap();
        send_frame(&a, 3, b"", &[], false).unwrap();
        let f = recv_frame(&mut b, None).unwrap();
        assert_eq!((f.kind, f.payload.as_slice()), (1, &b"first"[..]));
        assert_eq!(b.claim_exact(&[]).unwrap().len(), 0);
        let f = recv_frame(&mut b, None).unwrap();
        assert_eq!(f.kind, 2);
        assert_eq!(b.claim_exact(&[FdKind::Eventfd]).unwrap().len(), 1);
        let f = recv_frame(&mut b, None).unwrap();
        assert_eq!((f.kind, f.payload.len()), (3, 0));
    }

    #[test]
    fn an_unclaimed_fd_is_closed_before_the_next_frame() {
        let (a, mut b) = ScmStream::pair().unwrap();
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        send_frame(&a, 1, b"x", &[efd.as_fd()], false).unwrap();
        send_frame(&a, 2, b"y", &[], false).unwrap();
        recv_frame(&mut b, None).unwrap();
        assert_eq!(b.queued_fds(), 1);
        recv_frame(&mut b, None).unwrap();
        assert_eq!(
            b.claim_exact(&[FdKind::Eventfd]).unwrap_err(),
            ClaimError::WrongFdCount {
                expected: 1,
                got: 0
            }
        );
    }

    #[test]
    fn oversized_frames_are_refused_on_both_ends() {
        let (a, mut b) = ScmStream::pair().unwrap();
        let big = vec![0u8; MAX_FRAME_PAYLOAD + 1];
        assert_eq!(
            send_frame(&a, 1, &big, &[], false),
            Err(SendError::FrameTooLong { len: big.len() })
        );
        let mut hdr = [0u8; FRAME_HEADER_LEN];
        hdr[4..].copy_from_slice(&(1u32 << 31).to_le_bytes());
        a.send(&hdr, &[], false).unwrap();
        assert_eq!(
            recv_frame(&mut b, None),
            Err(FrameError::TooLong {
                kind: 0,
                len: 1 << 31
            })
        );
    }
}
