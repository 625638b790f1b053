//! [`ScmStream`]: a unix stream socket that carries file descriptors
//! (`SCM_RIGHTS`) and credentials (`SCM_CREDENTIALS`) safely.
//!
//! Rules (`design.md` §4, `pa-native-protocol.md` §3.8):
//!
//! - **Sending.** The fds go with the *first byte* of the bytes given to
//!   [`ScmStream::send`] (callers pass one whole frame), in one `sendmsg`
//!   whose `msg_controllen` is exactly `CMSG_SPACE(n * 4)` (plus
//!   `CMSG_SPACE(sizeof ucred)` when credentials are sent): a larger value
//!   broke 32-bit libpulse clients. At most [`MAX_FDS_PER_FRAME`] fds. The
//!   rest of the bytes follows with plain sends; `MSG_NOSIGNAL` always.
//! - **Receiving.** `recvmsg` with `MSG_CMSG_CLOEXEC` into a control buffer
//!   sized for credentials plus [`MAX_FDS_PER_FRAME`] fds, exactly what
//!   libpulse uses. Every received fd becomes an [`OwnedFd`] at once and
//!   waits in a per-connection FIFO until a handler claims it
//!   ([`ScmStream::claim`], [`ScmStream::claim_exact`]); whatever nobody
//!   claims is closed ([`ScmStream::close_unclaimed`], and on drop).
//!   `MSG_CTRUNC` (more fds or credentials than the buffer holds) closes
//!   every fd received and queued and is [`RecvError::Truncated`]. More than
//!   [`MAX_FDS_PER_FRAME`] fds queued at once is [`RecvError::TooManyFds`].
//! - **Attribution.** [`ScmStream::recv_exact`] never reads past the bytes
//!   asked for. The kernel delivers fds with the first `recvmsg` that touches
//!   the bytes they were sent with, and does not merge bytes after an
//!   fd-carrying message into the same read. So a reader that reads exactly
//!   one frame at a time (as [`crate::frame`] does) finds in the FIFO, when
//!   the frame is complete, exactly the fds sent with that frame.
//! - **Kinds.** Claiming names the kind of each slot ([`FdKind`]); a
//!   mismatch is [`ClaimError::BadFdType`] naming what arrived.
//! - `SO_PASSCRED` is enabled on every stream so the kernel attaches the
//!   sender's real credentials to what we receive
//!   ([`ScmStream::last_credentials`]); [`ScmStream::peer_credentials`] is
//!   `SO_PEERCRED`.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::io::{Errno, IoSlice, IoSliceMut};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, UCred,
};

use crate::fdkind::{classify, FdKind};
use crate::signal::{timespec, Deadline, PeerWatch};

/// The most fds one frame may carry (PulseAudio's `MAX_ANCIL_DATA_FDS`;
/// `ENABLE_SRBCHANNEL` carries two eventfds).
pub const MAX_FDS_PER_FRAME: usize = 2;

/// `CMSG_ALIGN`: control messages are aligned to `size_t`.
const fn cmsg_align(n: usize) -> usize {
    let a = std::mem::size_of::<usize>();
    (n + a - 1) & !(a - 1)
}

/// `CMSG_SPACE(payload)`: a `cmsghdr` (`size_t len; int level; int type`)
/// plus the payload, both aligned.
const fn cmsg_space(payload: usize) -> usize {
    cmsg_align(std::mem::size_of::<usize>() + 8) + cmsg_align(payload)
}

/// `sizeof(struct ucred)`: pid, uid, gid.
const UCRED_LEN: usize = 12;

/// Control buffer size for receiving: credentials plus [`MAX_FDS_PER_FRAME`]
/// fds, exactly (56 bytes on 64-bit Linux, as libpulse). `rustix::cmsg_space!`
/// adds alignment slack, which would let a third fd in without `MSG_CTRUNC`.
pub const RECV_CONTROL_LEN: usize = cmsg_space(UCRED_LEN) + cmsg_space(4 * MAX_FDS_PER_FRAME);

/// The receive control buffer, aligned for `cmsghdr` so rustix uses all of it.
#[repr(C, align(8))]
struct ControlBuf([MaybeUninit<u8>; RECV_CONTROL_LEN]);

/// Why a send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// More fds than [`MAX_FDS_PER_FRAME`].
    #[error("{count} fds in one frame; at most {max} allowed", max = MAX_FDS_PER_FRAME)]
    TooManyFds {
        /// How many were given.
        count: usize,
    },
    /// A frame payload above the protocol's limit.
    #[error("frame payload of {len} bytes is too long")]
    FrameTooLong {
        /// The payload length.
        len: usize,
    },
    /// Ancillary data needs at least one byte to travel with.
    #[error("fds or credentials need at least one byte of data")]
    NoData,
    /// The peer closed the connection.
    #[error("peer is gone")]
    PeerGone,
    /// `sendmsg`/`send` failed.
    #[error("send failed: {0}")]
    Io(Errno),
}

/// Why a receive failed. Every queued fd is closed on each of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The peer closed the connection (end of stream).
    #[error("peer is gone")]
    PeerGone,
    /// The kernel truncated the control data (`MSG_CTRUNC`): the peer sent
    /// more fds than a frame may carry. Every fd received was closed.
    #[error("control data truncated (MSG_CTRUNC); closed {closed} fds")]
    Truncated {
        /// How many fds were closed.
        closed: usize,
    },
    /// More fds are queued than one frame may carry.
    #[error("{queued} fds queued; at most {max} per frame", max = MAX_FDS_PER_FRAME)]
    TooManyFds {
        /// How many had arrived.
        queued: usize,
    },
    /// The deadline passed before the bytes arrived.
    #[error("timed out")]
    TimedOut,
    /// `recvmsg` failed.
    #[error("recvmsg failed: {0}")]
    Io(Errno),
}

/// Why claiming fds for a frame failed. Every queued fd is closed on each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The frame arrived with a different number of fds than it takes.
    #[error("frame takes {expected} fds, {got} arrived")]
    WrongFdCount {
        /// How many the frame takes.
        expected: usize,
        /// How many arrived with it.
        got: usize,
    },
    /// An fd of the wrong kind.
    #[error("fd {slot}: expected a {expected}, got a {found}")]
    BadFdType {
        /// Its position among the frame's fds.
        slot: usize,
        /// What the frame takes there.
        expected: FdKind,
        /// What arrived.
        found: FdKind,
    },
    /// Inspecting an fd failed.
    #[error("inspecting a received fd failed: {0}")]
    Inspect(Errno),
}

/// A connected unix stream socket with an fd FIFO (see the module docs).
#[derive(Debug)]
pub struct ScmStream {
    fd: Arc<OwnedFd>,
    fifo: VecDeque<OwnedFd>,
    creds: Option<UCred>,
}

impl ScmStream {
    /// Wraps a connected unix stream socket and enables `SO_PASSCRED`.
    pub fn new(fd: OwnedFd) -> Result<Self, Errno> {
        rustix::net::sockopt::set_socket_passcred(&fd, true)?;
        Ok(Self {
            fd: Arc::new(fd),
            fifo: VecDeque::new(),
            creds: None,
        })
    }

    /// A connected pair (`socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`).
    pub fn pair() -> Result<(Self, Self), Errno> {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Self::new(a)?, Self::new(b)?))
    }

    /// A [`PeerWatch`] on this socket, for waits that must end when the
    /// peer goes away.
    pub fn watch(&self) -> PeerWatch {
        PeerWatch::new(self.fd.clone())
    }

    /// `SO_PEERCRED`: who connected (at `connect`/`socketpair` time).
    pub fn peer_credentials(&self) -> Result<UCred, Errno> {
        rustix::net::sockopt::socket_peercred(&*self.fd)
    }

    /// The credentials the kernel attached to the last bytes received.
    pub fn last_credentials(&self) -> Option<UCred> {
        self.creds
    }

    /// Sends `bytes`, with `fds` (and our credentials, if `creds`) attached
    /// to the first byte. Blocks until everything is sent.
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>], creds: bool) -> Result<(), SendError> {
        if fds.len() > MAX_FDS_PER_FRAME {
            return Err(SendError::TooManyFds { count: fds.len() });
        }
        let mut sent = 0;
        if !fds.is_empty() || creds {
            if bytes.is_empty() {
                return Err(SendError::NoData);
            }
            sent = self.send_first(bytes, fds, creds)?;
        }
        while sent < bytes.len() {
            match rustix::net::send(&*self.fd, &bytes[sent..], SendFlags::NOSIGNAL) {
                Ok(n) => sent += n,
                Err(Errno::INTR) => {}
                Err(Errno::PIPE | Errno::CONNRESET) => return Err(SendError::PeerGone),
                Err(e) => return Err(SendError::Io(e)),
            }
        }
        Ok(())
    }

    /// The one `sendmsg` that carries the ancillary data.
    fn send_first(
        &self,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        creds: bool,
    ) -> Result<usize, SendError> {
        let mut space = [MaybeUninit::<u8>::uninit();
            rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME), ScmCredentials(1))];
        loop {
            let mut control = SendAncillaryBuffer::new(&mut space);
            // `push` adds exactly CMSG_SPACE of each message, so
            // msg_controllen is the exact sum (nothing when there is none).
            if creds {
                let ours = our_credentials();
                let pushed = control.push(SendAncillaryMessage::ScmCredentials(ours));
                debug_assert!(pushed, "buffer sized for credentials");
            }
            if !fds.is_empty() {
                let pushed = control.push(SendAncillaryMessage::ScmRights(fds));
                debug_assert!(pushed, "buffer sized for MAX_FDS_PER_FRAME fds");
            }
            match rustix::net::sendmsg(
                &*self.fd,
                &[IoSlice::new(bytes)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => {}
                Err(Errno::PIPE | Errno::CONNRESET) => return Err(SendError::PeerGone),
                Err(e) => return Err(SendError::Io(e)),
            }
        }
    }

    /// Fills `buf` exactly, queueing every fd that arrives. With a
    /// `timeout`, gives up with [`RecvError::TimedOut`] when it passes.
    pub fn recv_exact(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(), RecvError> {
        let deadline = Deadline::after(timeout);
        let mut done = 0;
        while done < buf.len() {
            if let Err(e) = self.wait_readable(deadline) {
                self.close_unclaimed();
                return Err(e);
            }
            match self.recv_some(&mut buf[done..]) {
                Ok(n) => done += n,
                Err(e) => {
                    self.close_unclaimed();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn wait_readable(&self, deadline: Deadline) -> Result<(), RecvError> {
        let mut fds = [PollFd::new(&*self.fd, PollFlags::IN)];
        loop {
            // Recomputed on every pass: a poll that a signal interrupted is
            // retried with what is left, not with the whole timeout again.
            let Some(left) = deadline.remaining() else {
                return Ok(());
            };
            match rustix::event::poll(&mut fds, Some(&timespec(left))) {
                Ok(0) => return Err(RecvError::TimedOut),
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => {
                    if deadline.expired() {
                        return Err(RecvError::TimedOut);
                    }
                }
                Err(e) => return Err(RecvError::Io(e)),
            }
        }
    }

    /// One non-blocking `recvmsg` of at most `buf.len()` bytes, queueing
    /// the fds that arrive with them: `Ok(None)` when nothing is waiting,
    /// else the bytes read (> 0 for a non-empty `buf`). For poll loops
    /// that read a frame in several steps and must never block in the
    /// middle of one: pass at most the bytes the current frame still
    /// lacks, so fds stay attributed to their frame. On an error every
    /// queued fd is closed.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        match self.recv_with(buf, RecvFlags::DONTWAIT) {
            Ok(n) => Ok(Some(n)),
            Err(RecvError::Io(Errno::AGAIN)) => Ok(None),
            Err(e) => {
                self.close_unclaimed();
                Err(e)
            }
        }
    }

    /// Takes every queued fd, oldest first (the caller owns them now).
    pub fn take_queued(&mut self) -> Vec<OwnedFd> {
        self.fifo.drain(..).collect()
    }

    /// One `recvmsg`; returns the bytes read (> 0).
    fn recv_some(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_with(buf, RecvFlags::empty())
    }

    /// One `recvmsg` with `flags` (plus `MSG_CMSG_CLOEXEC`).
    fn recv_with(&mut self, buf: &mut [u8], flags: RecvFlags) -> Result<usize, RecvError> {
        let mut space = ControlBuf([MaybeUninit::uninit(); RECV_CONTROL_LEN]);
        let mut control = RecvAncillaryBuffer::new(&mut space.0);
        let msg = loop {
            let mut iov = [IoSliceMut::new(buf)];
            match rustix::net::recvmsg(
                &*self.fd,
                &mut iov,
                &mut control,
                flags | RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(m) => break m,
                Err(Errno::INTR) => {}
                Err(Errno::CONNRESET) => return Err(RecvError::PeerGone),
                Err(e) => return Err(RecvError::Io(e)),
            }
        };
        // Every fd becomes an OwnedFd here, before anything can fail.
        let mut received = 0;
        for m in control.drain() {
            match m {
                RecvAncillaryMessage::ScmRights(fds) => {
                    for fd in fds {
                        received += 1;
                        self.fifo.push_back(fd);
                    }
                }
                RecvAncillaryMessage::ScmCredentials(c) => self.creds = Some(c),
                _ => {}
            }
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            let closed = self.close_unclaimed();
            tracing::warn!(received, closed, "MSG_CTRUNC: closed every received fd");
            return Err(RecvError::Truncated { closed });
        }
        if self.fifo.len() > MAX_FDS_PER_FRAME {
            let queued = self.close_unclaimed();
            return Err(RecvError::TooManyFds { queued });
        }
        if msg.bytes == 0 && !buf.is_empty() {
            return Err(RecvError::PeerGone);
        }
        Ok(msg.bytes)
    }

    /// How many received fds wait to be claimed.
    pub fn queued_fds(&self) -> usize {
        self.fifo.len()
    }

    /// Pops one fd per entry of `kinds` from the FIFO, checking each one's
    /// kind. On any error every queued fd is closed.
    pub fn claim(&mut self, kinds: &[FdKind]) -> Result<Vec<OwnedFd>, ClaimError> {
        if self.fifo.len() < kinds.len() {
            let got = self.close_unclaimed();
            return Err(ClaimError::WrongFdCount {
                expected: kinds.len(),
                got,
            });
        }
        let mut out = Vec::with_capacity(kinds.len());
        for (slot, expected) in kinds.iter().enumerate() {
            let Some(fd) = self.fifo.pop_front() else {
                unreachable!("length checked above");
            };
            let found = match classify(fd.as_fd()) {
                Ok(k) => k,
                Err(e) => {
                    self.close_unclaimed();
                    return Err(ClaimError::Inspect(e));
                }
            };
            if found != *expected {
                self.close_unclaimed();
                return Err(ClaimError::BadFdType {
                    slot,
                    expected: expected.clone(),
                    found,
                });
            }
            out.push(fd);
        }
        Ok(out)
    }

    /// [`claim`](Self::claim), and the FIFO must then be empty: the frame
    /// that was just read carried exactly these fds.
    pub fn claim_exact(&mut self, kinds: &[FdKind]) -> Result<Vec<OwnedFd>, ClaimError> {
        if self.fifo.len() != kinds.len() {
            let got = self.close_unclaimed();
            return Err(ClaimError::WrongFdCount {
                expected: kinds.len(),
                got,
            });
        }
        self.claim(kinds)
    }

    /// Closes every queued fd; returns how many there were.
    pub fn close_unclaimed(&mut self) -> usize {
        let n = self.fifo.len();
        if n > 0 {
            tracing::debug!(n, "closing unclaimed received fds");
        }
        self.fifo.clear();
        n
    }

    /// The socket, shared (for a [`PeerWatch`] or poll loops).
    pub fn socket(&self) -> &Arc<OwnedFd> {
        &self.fd
    }
}

impl AsFd for ScmStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// This process's credentials, as `SCM_CREDENTIALS` carries them.
pub fn our_credentials() -> UCred {
    UCred {
        pid: rustix::process::getpid(),
        uid: rustix::process::geteuid(),
        gid: rustix::process::getegid(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{eventfd, EventfdFlags};

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn the_receive_control_buffer_is_exactly_libpulses() {
        assert_eq!(RECV_CONTROL_LEN, 56);
        assert_eq!(std::mem::size_of::<UCred>(), UCRED_LEN);
    }

    #[test]
    fn fds_and_credentials_arrive_with_their_bytes() {
        let (a, mut b) = ScmStream::pair().unwrap();
        let efd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        a.send(b"hello", &[efd.as_fd()], true).unwrap();
        let mut buf = [0u8; 5];
        b.recv_exact(&mut buf, Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(b.queued_fds(), 1);
        let c = b.last_credentials().unwrap();
        assert_eq!(c.pid, rustix::process::getpid());
        assert_eq!(c.uid, rustix::process::geteuid());
        let fds = b.claim_exact(&[FdKind::Eventfd]).unwrap();
        // The received fd is close-on-exec (MSG_CMSG_CLOEXEC).
        let flags = rustix::io::fcntl_getfd(&fds[0]).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        assert_eq!(
            b.peer_credentials().unwrap().uid,
            rustix::process::geteuid()
        );
    }

    #[test]
    fn reads_never_cross_the_requested_length() {
        let (a, mut b) = ScmStream::pair().unwrap();
        let efd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        a.send(b"one", &[], false).unwrap();
        a.send(b"two", &[efd.as_fd()], false).unwrap();
        let mut buf = [0u8; 3];
        b.recv_exact(&mut buf, None).unwrap();
        assert_eq!((&buf, b.queued_fds()), (b"one", 0));
        b.recv_exact(&mut buf, None).unwrap();
        assert_eq!((&buf, b.queued_fds()), (b"two", 1));
    }

    #[test]
    fn try_recv_never_blocks_and_queues_fds() {
        let (a, mut b) = ScmStream::pair().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.try_recv(&mut buf), Ok(None));
        let efd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        a.send(b"abcd", &[efd.as_fd()], false).unwrap();
        assert_eq!(b.try_recv(&mut buf[..2]), Ok(Some(2)));
        assert_eq!(b.queued_fds(), 1);
        assert_eq!(b.try_recv(&mut buf[..8]), Ok(Some(2)));
        assert_eq!(&buf[..2], b"cd");
        let fds = b.take_queued();
        assert_eq!(fds.len(), 1);
        assert_eq!(b.queued_fds(), 0);
        assert_eq!(b.try_recv(&mut buf), Ok(None));
        drop(a);
        assert_eq!(b.try_recv(&mut buf), Err(RecvError::PeerGone));
    }

    #[test]
    fn too_many_fds_are_refused_by_the_sender() {
        let (a, _b) = ScmStream::pair().unwrap();
        let e = [
            eventfd(0, EventfdFlags::CLOEXEC).unwrap(),
            eventfd(0, EventfdFlags::CLOEXEC).unwrap(),
            eventfd(0, EventfdFlags::CLOEXEC).unwrap(),
        ];
        let fds: Vec<_> = e.iter().map(|f| f.as_fd()).collect();
        assert_eq!(
            a.send(b"x", &fds, false),
            Err(SendError::TooManyFds { count: 3 })
        );
        assert_eq!(a.send(b"", &fds[..1], false), Err(SendError::NoData));
    }

    #[test]
    fn a_timeout_and_a_closed_peer_are_named() {
        let (a, mut b) = ScmStream::pair().unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            b.recv_exact(&mut buf, Some(Duration::ZERO)),
            Err(RecvError::TimedOut)
        );
        a.send(b"ab", &[], false).unwrap();
        drop(a);
        assert_eq!(b.recv_exact(&mut buf, None), Err(RecvError::PeerGone));
    }
}
