//! [`Channel`]: one side of an srb channel between two processes.
//!
//! A channel is made by the handshake ([`crate::handshake::create`] on the
//! side that owns the memory, [`crate::handshake::accept`] on the other). It
//! owns everything the channel needs, so it is safe to use on its own:
//!
//! - the [`SharedMapping`] of the block (an `Arc`, dropped *after* the ring
//!   ends that point into it),
//! - the two signals (eventfds or futex words),
//! - the connection socket, kept open so that each side notices the other's
//!   exit: every blocking wait polls it and ends in
//!   [`ChannelIoError::PeerGone`] instead of hanging.
//!
//! Both layouts of srb-core (`pa`, `srb`) and both signal kinds work behind
//! the same API. `write` and `read` move bytes, not messages, and may be
//! partial; [`Channel::write_all`] and [`Channel::read_exact`] are the
//! blocking helpers. A full-duplex peer that both writes and reads must not
//! block in `write_all` while its own receive ring is full and the peer
//! does the same (both would wait for space forever): drive both directions
//! from one loop ([`Channel::write`], [`Channel::read`], then
//! [`Channel::wait`] when neither made progress), as the `srb-echo` helper
//! does.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use srb_core::ring::{pa, srb};
use srb_core::{ChannelError, Corrupt, SrbChannel, WaitDecision, Woken};

use crate::eventfd::{Eventfd, EventfdWait};
use crate::futex::{FutexNotify, FutexWait};
use crate::mapping::SharedMapping;
use crate::scm::ScmStream;
use crate::signal::{NotifyError, WaitError};

/// Which block layout a channel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutKind {
    /// PulseAudio's `srbheader` (srb-core `layout::pa`).
    Pa = 1,
    /// srb's own layout (srb-core `layout::srb`).
    Srb = 2,
}

/// Which signals wake the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// Two eventfds, passed with the offer. Pollable.
    Eventfd = 1,
    /// Two futex words in the memfd. Not pollable.
    Futex = 2,
}

impl LayoutKind {
    pub(crate) fn from_wire(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Pa),
            2 => Some(Self::Srb),
            _ => None,
        }
    }
}

impl SignalKind {
    pub(crate) fn from_wire(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Eventfd),
            2 => Some(Self::Futex),
            _ => None,
        }
    }
}

/// Why a channel operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelIoError {
    /// The peer closed its end or exited.
    #[error("peer is gone")]
    PeerGone,
    /// A blocking helper's timeout passed with no progress.
    #[error("timed out")]
    TimedOut,
    /// Shared memory held an impossible value: drop the peer.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// Waking the peer failed.
    #[error(transparent)]
    Notify(NotifyError),
    /// Waiting failed.
    #[error(transparent)]
    Wait(WaitError),
}

impl From<ChannelError<NotifyError>> for ChannelIoError {
    fn from(e: ChannelError<NotifyError>) -> Self {
        match e {
            ChannelError::Corrupt(c) => Self::Corrupt(c),
            ChannelError::Signal(s) => Self::Notify(s),
        }
    }
}

impl From<ChannelError<WaitError>> for ChannelIoError {
    fn from(e: ChannelError<WaitError>) -> Self {
        match e {
            ChannelError::Corrupt(c) => Self::Corrupt(c),
            ChannelError::Signal(WaitError::PeerGone) => Self::PeerGone,
            ChannelError::Signal(s) => Self::Wait(s),
        }
    }
}

type PaCh<N, W> = SrbChannel<pa::Producer, pa::Consumer, N, W>;
type SrbCh<N, W> = SrbChannel<srb::Producer, srb::Consumer, N, W>;

/// The four layout × signal combinations.
#[derive(Debug)]
pub(crate) enum Inner {
    PaEventfd(PaCh<Eventfd, EventfdWait>),
    PaFutex(PaCh<FutexNotify, FutexWait>),
    SrbEventfd(SrbCh<Eventfd, EventfdWait>),
    SrbFutex(SrbCh<FutexNotify, FutexWait>),
}

/// Runs `$body` with `$ch` bound to whichever channel `$inner` holds.
macro_rules! with_inner {
    ($inner:expr, $ch:ident => $body:expr) => {
        match $inner {
            Inner::PaEventfd($ch) => $body,
            Inner::PaFutex($ch) => $body,
            Inner::SrbEventfd($ch) => $body,
            Inner::SrbFutex($ch) => $body,
        }
    };
}

/// One side of a channel between two processes (see the module docs).
#[derive(Debug)]
pub struct Channel {
    // Field order is drop order: the ring ends go before the mapping.
    inner: Inner,
    stream: ScmStream,
    mapping: Arc<SharedMapping>,
    layout: LayoutKind,
    signal: SignalKind,
    /// A duplicate of the eventfd this side waits on, for poll loops. (It
    /// predates `SrbChannel::waiter`, which could lend the fd instead; the
    /// duplicate costs one fd per channel and is closed with it.)
    poll_fd: Option<OwnedFd>,
}

impl Channel {
    pub(crate) fn new(
        inner: Inner,
        stream: ScmStream,
        mapping: Arc<SharedMapping>,
        layout: LayoutKind,
        signal: SignalKind,
        poll_fd: Option<OwnedFd>,
    ) -> Self {
        Self {
            inner,
            stream,
            mapping,
            layout,
            signal,
            poll_fd,
        }
    }

    /// The block layout.
    pub fn layout(&self) -> LayoutKind {
        self.layout
    }

    /// The signal kind.
    pub fn signal(&self) -> SignalKind {
        self.signal
    }

    /// Bytes per ring.
    pub fn capacity(&self) -> usize {
        with_inner!(&self.inner, ch => ch.capacity())
    }

    /// The mapping the block lives in.
    pub fn mapping(&self) -> &Arc<SharedMapping> {
        &self.mapping
    }

    /// The connection socket (still open, for liveness and fd frames).
    pub fn stream(&mut self) -> &mut ScmStream {
        &mut self.stream
    }

    /// The eventfd this side waits on, for poll loops (`None` for futex
    /// signals, which cannot be polled; see [`crate::futex`]).
    pub fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.poll_fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Writes as much of `src` as fits now; returns how much (maybe 0).
    pub fn write(&mut self, src: &[u8]) -> Result<usize, ChannelIoError> {
        Ok(with_inner!(&mut self.inner, ch => ch.write(src)?))
    }

    /// Reads what is there, up to `dst.len()`; returns how much (maybe 0).
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, ChannelIoError> {
        Ok(with_inner!(&mut self.inner, ch => ch.read(dst)?))
    }

    /// Bytes readable now.
    pub fn available(&mut self) -> Result<usize, ChannelIoError> {
        Ok(with_inner!(&mut self.inner, ch => ch.available()?))
    }

    /// Bytes writable now.
    pub fn free(&mut self) -> Result<usize, ChannelIoError> {
        Ok(with_inner!(&mut self.inner, ch => ch.free()?))
    }

    /// Sleeps until the peer posts (data written or space freed), unless a
    /// post is pending, the timeout passes, or the peer is gone.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Woken, ChannelIoError> {
        Ok(with_inner!(&mut self.inner, ch => ch.wait(timeout)?))
    }

    /// For poll loops on [`wait_fd`](Self::wait_fd): announce a sleep.
    pub fn before_wait(&mut self) -> Result<WaitDecision, ChannelIoError> {
        Ok(with_inner!(&mut self.inner, ch => ch.before_wait()?))
    }

    /// For poll loops: end a sleep [`before_wait`](Self::before_wait) allowed.
    pub fn after_wait(&mut self) -> Result<(), ChannelIoError> {
        with_inner!(&mut self.inner, ch => ch.after_wait()?);
        Ok(())
    }

    /// Writes all of `src`, waiting for space when the ring is full. Each
    /// wait may last `timeout`; one that passes with no progress is
    /// [`ChannelIoError::TimedOut`].
    pub fn write_all(
        &mut self,
        mut src: &[u8],
        timeout: Option<Duration>,
    ) -> Result<(), ChannelIoError> {
        while !src.is_empty() {
            let n = self.write(src)?;
            src = &src[n..];
            if n == 0 && self.wait(timeout)? == Woken::TimedOut {
                return Err(ChannelIoError::TimedOut);
            }
        }
        Ok(())
    }

    /// Fills `dst`, waiting for data. Timeouts as for
    /// [`write_all`](Self::write_all).
    pub fn read_exact(
        &mut self,
        mut dst: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(), ChannelIoError> {
        while !dst.is_empty() {
            let n = self.read(dst)?;
            dst = &mut dst[n..];
            if n == 0 && self.wait(timeout)? == Woken::TimedOut {
                return Err(ChannelIoError::TimedOut);
            }
        }
        Ok(())
    }
}
