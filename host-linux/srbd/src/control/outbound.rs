//! Where a connection's outgoing frames go ([`Outbound`]): the socket, or
//! the client's srbchannel ring once the client acknowledged it
//! (`pa-native-protocol.md` §5.2, §5.7). It also owns the ring's reading
//! and waking side, so the connection loop has one object to ask.
//!
//! Frames that carry fds (the srbchannel offer itself) always go over the
//! socket, with their own `sendmsg` ([`crate::control::srbchannel::SrbLink::send_offer`]).
//! Socket sends block until done (bounded by the socket's send timeout),
//! so when the ring takes over nothing is left queued for the socket and
//! the client sees every socket frame before the first ring frame.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;

use crate::control::connection::{ConnError, Session, SrbEvent};
use crate::control::srbchannel::{SrbError, SrbLink, SrbStats};
use srb_linux::scm::ScmStream;

/// The outgoing side of one connection.
#[derive(Debug)]
pub struct Outbound {
    socket: Arc<OwnedFd>,
    srb: Option<SrbLink>,
    /// How long a full ring may stay full before the client counts as stuck.
    timeout: Duration,
}

impl Outbound {
    /// Sends through `socket` until an srbchannel is set up; a send that
    /// cannot progress for `timeout` fails.
    pub fn new(socket: Arc<OwnedFd>, timeout: Duration) -> Self {
        Self {
            socket,
            srb: None,
            timeout,
        }
    }

    /// Sends `bytes` (whole frames, in order) through the ring if it is
    /// active, else through the socket.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        match &mut self.srb {
            Some(link) if link.is_active() => Ok(link.write_all(bytes, self.timeout)?),
            _ => send_all(&self.socket, bytes),
        }
    }

    /// Acts on what the last frame asked for: after AUTH, the srbchannel
    /// offer (only with `stream`, a unix connection; `out`, holding the
    /// AUTH reply, goes first); after the client's ack, the switch to the
    /// ring. An ack that answers no offer closes the connection.
    pub fn sync(
        &mut self,
        session: &mut Session,
        stream: Option<&ScmStream>,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        match session.take_srb_event() {
            None => Ok(()),
            Some(SrbEvent::Offer) => {
                let Some(stream) = stream else {
                    return Ok(());
                };
                if self.srb.is_some() {
                    return Ok(());
                }
                if !out.is_empty() {
                    send_all(&self.socket, out)?;
                    out.clear();
                }
                let (link, offer) = SrbLink::create(self.socket.clone())?;
                let (shm_id, tag) = (offer.shm_id(), offer.tag());
                SrbLink::send_offer(stream, offer)?;
                tracing::debug!(
                    client = session.client_index(),
                    shm_id,
                    tag,
                    capacity = link.capacity(),
                    "srbchannel offered"
                );
                self.srb = Some(link);
                Ok(())
            }
            Some(SrbEvent::Ack(tag)) => {
                let link = self.srb.as_mut().ok_or(SrbError::UnexpectedAck { tag })?;
                link.acknowledge(tag)?;
                tracing::debug!(
                    client = session.client_index(),
                    "srbchannel active: frames go through the ring"
                );
                Ok(())
            }
        }
    }

    /// Whether a ring exists (offered or active).
    pub fn has_ring(&self) -> bool {
        self.srb.is_some()
    }

    /// What went through the ring (`None`: never offered).
    pub fn srb_stats(&self) -> Option<SrbStats> {
        self.srb.as_ref().map(SrbLink::stats)
    }

    /// Reads from the client's ring (0 when there is none or it is empty).
    pub fn read_ring(&mut self, dst: &mut [u8]) -> Result<usize, ConnError> {
        match &mut self.srb {
            Some(link) => Ok(link.read(dst)?),
            None => Ok(0),
        }
    }

    /// Polls the client's ring for up to `window`, yielding the CPU
    /// between looks (a client on this CPU runs at once; with none
    /// runnable this is a busy poll); returns as soon as the ring holds
    /// data. Without a ring, returns at once.
    pub fn spin_for_ring(&mut self, window: Duration) -> Result<(), ConnError> {
        let Some(link) = &mut self.srb else {
            return Ok(());
        };
        let start = std::time::Instant::now();
        while link.available()? == 0 && start.elapsed() < window {
            std::thread::yield_now();
        }
        Ok(())
    }

    /// The ring's eventfd (fd0) to poll with the socket.
    pub fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.srb.as_ref().map(SrbLink::wait_fd)
    }

    /// Before polling: whether the poll may block (always, without a ring).
    pub fn before_poll(&mut self) -> Result<bool, ConnError> {
        match &mut self.srb {
            Some(link) => Ok(link.before_poll()?),
            None => Ok(true),
        }
    }

    /// After polling: ends the ring's announced sleep; `ready` is whether
    /// the poll reported the ring's eventfd readable.
    pub fn after_poll(&mut self, ready: bool) -> Result<(), ConnError> {
        match &mut self.srb {
            Some(link) => Ok(link.after_poll(ready)?),
            None => Ok(()),
        }
    }
}

/// Writes all of `bytes` to the socket (blocking, bounded by its send
/// timeout: `EAGAIN` means the client stopped reading).
pub(super) fn send_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), ConnError> {
    while !bytes.is_empty() {
        match rustix::net::send(fd, bytes, rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Err(ConnError::SendTimeout),
            Err(e) => return Err(ConnError::Io(e)),
        }
    }
    Ok(())
}
