//! Where a connection's outgoing frames go ([`Outbound`]): the socket, or
//! the client's srbchannel ring once the client acknowledged it
//! (`pa-native-protocol.md` §5.2, §5.7), through one bounded FIFO. It also
//! owns the ring's reading and waking side, so a connection has one object
//! to ask.
//!
//! **Nothing here waits.** Socket writes use `MSG_DONTWAIT`; ring writes
//! take what fits. Whatever is left waits in the queue, in order, until the
//! socket is writable again (the control loop then watches it for
//! `EPOLLOUT`) or the client drains its ring (its post wakes srbd's
//! semaphore). A client whose queue passes [`MAX_QUEUED`] has stopped
//! reading: [`SendError::Overflow`] closes it, and nobody else waited.
//!
//! **Order.** Bytes queued before the ring took over still go to the
//! socket, before the first ring byte: the client sees every socket frame
//! before the first ring frame, as when the switch happens in its reading
//! order. Frames that carry fds (the srbchannel offer itself) always go
//! over the socket with their own `sendmsg`
//! ([`crate::control::srbchannel::SrbLink::send_offer`]), and only when
//! nothing else is queued.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::SendFlags;

use crate::control::session::{Session, SrbEvent};
use crate::control::srbchannel::{SrbError, SrbLink, SrbStats};
use srb_linux::scm::ScmStream;

/// A client with more than this many bytes waiting to be sent has stopped
/// reading and is closed (about 10 s of float32 stereo 48 kHz record data).
pub const MAX_QUEUED: usize = 4 << 20;

/// Why sending to a client failed; every variant closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The client stopped reading: its queue passed the cap.
    #[error("client stopped reading: {queued} bytes queued (cap {cap})")]
    Overflow {
        /// Bytes waiting.
        queued: usize,
        /// [`MAX_QUEUED`].
        cap: usize,
    },
    /// The srbchannel offer (fds) could not go out at once because the
    /// socket was not writable.
    #[error("srbchannel offer could not be sent without waiting ({queued} bytes queued)")]
    OfferBlocked {
        /// Bytes waiting.
        queued: usize,
    },
    /// A socket error (the client is gone).
    #[error("socket: {0}")]
    Io(Errno),
    /// The srbchannel failed (setup, ring corruption, a wrong ack).
    #[error("srbchannel: {0}")]
    Srb(#[from] SrbError),
}

/// A connection's way out: socket, srbchannel and the queue before both.
#[derive(Debug)]
pub struct Outbound {
    socket: Arc<OwnedFd>,
    srb: Option<SrbLink>,
    /// Bytes waiting, oldest first, from `head` on.
    queue: Vec<u8>,
    head: usize,
    /// How many of the waiting bytes (from `head`) are bound for the
    /// socket; the rest go through the ring.
    to_socket: usize,
}

impl Outbound {
    /// Frames go to `socket` until the srbchannel takes over.
    pub fn new(socket: Arc<OwnedFd>) -> Self {
        Self {
            socket,
            srb: None,
            queue: Vec::new(),
            head: 0,
            to_socket: 0,
        }
    }

    fn ring_active(&self) -> bool {
        self.srb.as_ref().is_some_and(SrbLink::is_active)
    }

    /// Bytes waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len() - self.head
    }

    /// Whether the connection waits for its socket to become writable.
    pub fn wants_writable(&self) -> bool {
        self.to_socket > 0
    }

    /// Sends `bytes` after whatever is queued: as much as goes now, the
    /// rest queued.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut rest = bytes;
        if self.queued() == 0 {
            let n = if self.ring_active() {
                self.write_ring(rest)?
            } else {
                self.write_socket(rest)?
            };
            rest = &rest[n..];
        }
        if rest.is_empty() {
            return Ok(());
        }
        if self.queued() + rest.len() > MAX_QUEUED {
            return Err(SendError::Overflow {
                queued: self.queued() + rest.len(),
                cap: MAX_QUEUED,
            });
        }
        if !self.ring_active() {
            self.to_socket += rest.len();
        }
        self.queue.extend_from_slice(rest);
        Ok(())
    }

    /// Sends as much of the queue as goes now (after the socket became
    /// writable, or the client drained its ring).
    pub fn flush(&mut self) -> Result<(), SendError> {
        while self.to_socket > 0 {
            let end = self.head + self.to_socket;
            let n = write_socket(&self.socket, &self.queue[self.head..end])?;
            if n == 0 {
                break;
            }
            self.head += n;
            self.to_socket -= n;
        }
        if self.to_socket == 0 && self.queued() > 0 && self.ring_active() {
            let (head, queue) = (self.head, std::mem::take(&mut self.queue));
            let n = self.write_ring(&queue[head..]);
            self.queue = queue;
            self.head += n?;
        }
        if self.head == self.queue.len() {
            self.queue.clear();
            self.head = 0;
            // A burst may have grown the queue: give the memory back.
            if self.queue.capacity() > 64 * 1024 {
                self.queue.shrink_to(64 * 1024);
            }
        } else if self.head > self.queue.len() / 2 {
            self.queue.drain(..self.head);
            self.head = 0;
        }
        Ok(())
    }

    fn write_socket(&mut self, bytes: &[u8]) -> Result<usize, SendError> {
        write_socket(&self.socket, bytes)
    }

    fn write_ring(&mut self, bytes: &[u8]) -> Result<usize, SendError> {
        match &mut self.srb {
            Some(link) => Ok(link.write(bytes)?),
            None => Ok(0),
        }
    }

    /// Carries out what the last handled frame asked of the srbchannel:
    /// sends the offer after what is pending (`out` first), or switches
    /// writes to the ring on the client's ack. `stream` is the unix
    /// connection (`None` for TCP, which is never offered a ring).
    pub fn sync(
        &mut self,
        session: &mut Session,
        stream: Option<&ScmStream>,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        match session.take_srb_event() {
            None => Ok(()),
            Some(SrbEvent::Offer) => {
                let Some(stream) = stream else {
                    return Ok(());
                };
                if self.srb.is_some() {
                    return Ok(());
                }
                self.send(out)?;
                out.clear();
                if self.queued() > 0 {
                    return Err(SendError::OfferBlocked {
                        queued: self.queued(),
                    });
                }
                let (link, offer) = SrbLink::create(self.socket.clone())?;
                let (shm_id, tag) = (offer.shm_id(), offer.tag());
                SrbLink::send_offer(stream, offer)?;
                // The round ends by parking the client on the new
                // semaphore: from then on its first post wakes the loop.
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

    /// Whether the srbchannel was offered (its ring is then read).
    pub fn has_ring(&self) -> bool {
        self.srb.is_some()
    }

    /// The srbchannel's counters, once offered.
    pub fn srb_stats(&self) -> Option<SrbStats> {
        self.srb.as_ref().map(SrbLink::stats)
    }

    /// Reads what the client's ring holds (0 without a ring).
    pub fn read_ring(&mut self, dst: &mut [u8]) -> Result<usize, SrbError> {
        match &mut self.srb {
            Some(link) => link.read(dst),
            None => Ok(0),
        }
    }

    /// Bytes the client's ring holds now (0 without a ring).
    pub fn ring_available(&mut self) -> Result<usize, SrbError> {
        match &mut self.srb {
            Some(link) => link.available(),
            None => Ok(0),
        }
    }

    /// The fd the control loop watches for the client's posts (fd0).
    pub fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.srb.as_ref().map(SrbLink::wait_fd)
    }

    /// Announces that srbd sleeps on its semaphore (the client posts fd0
    /// from now on); `false` if the client posted or data or space is
    /// waiting (serve the connection again, do not sleep on it).
    pub fn before_poll(&mut self) -> Result<bool, SrbError> {
        match &mut self.srb {
            Some(link) => link.before_poll(),
            None => Ok(true),
        }
    }

    /// Ends the sleep [`Outbound::before_poll`] announced; `ready`: fd0
    /// was reported readable (its notifications are consumed and
    /// checked).
    pub fn after_poll(&mut self, ready: bool) -> Result<(), SrbError> {
        match &mut self.srb {
            Some(link) => link.after_poll(ready),
            None => Ok(()),
        }
    }
}

/// One non-blocking send; the bytes it took (0: the socket is full).
fn write_socket(fd: &OwnedFd, bytes: &[u8]) -> Result<usize, SendError> {
    loop {
        match rustix::net::send(fd, bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(0),
            Err(e) => return Err(SendError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Arc<OwnedFd>, OwnedFd) {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        (Arc::new(a), b)
    }

    fn drain(fd: &OwnedFd) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match rustix::net::recv(fd, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((0, _)) | Err(Errno::AGAIN) => return got,
                Ok((n, _)) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_full_socket_queues_in_order_and_never_blocks() {
        let (srv, client) = pair();
        let mut ob = Outbound::new(srv);
        let mut want = Vec::new();
        // Far more than the socket buffer: each send returns at once.
        for i in 0..400u32 {
            let chunk: Vec<u8> = (0..4096u32).map(|j| (i * 31 + j) as u8).collect();
            ob.send(&chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        assert!(ob.queued() > 0 && ob.wants_writable());
        let mut got = drain(&client);
        while ob.queued() > 0 {
            ob.flush().unwrap();
            got.extend(drain(&client));
        }
        assert!(!ob.wants_writable());
        assert!(got == want, "reordered or lost bytes");
    }

    #[test]
    fn a_client_that_stops_reading_overflows_with_a_named_error() {
        let (srv, _client) = pair();
        let mut ob = Outbound::new(srv);
        let chunk = vec![7u8; 64 * 1024];
        let e = loop {
            if let Err(e) = ob.send(&chunk) {
                break e;
            }
        };
        assert!(
            matches!(e, SendError::Overflow { queued, cap } if queued > cap && cap == MAX_QUEUED),
            "{e}"
        );
        assert!(ob.queued() <= MAX_QUEUED);
    }

    #[test]
    fn a_gone_client_is_an_io_error() {
        let (srv, client) = pair();
        drop(client);
        let mut ob = Outbound::new(srv);
        assert!(matches!(ob.send(b"x"), Err(SendError::Io(_))));
    }
}
