//! The srbchannel with a libpulse client (`pa-native-protocol.md` §5): a
//! shared ring-buffer channel that carries every pstream frame without
//! fds once both sides switched to it, so a request and its reply cost two
//! ring writes and at most two eventfd wake-ups instead of socket
//! round trips.
//!
//! **Setup** ([`SrbLink::create`], [`SrbLink::send_offer`]), right after
//! the AUTH reply of a client that negotiated SHM + memfd:
//! 1. a fresh memfd of [`RING_BLOCK_LEN`] bytes, sealed against shrinking
//!    and growing before its fd leaves the process, mapped, and given a
//!    PulseAudio `srbheader` by `srb_core::layout::pa` (capacity 32744 per
//!    ring; libpulse accepts any geometry that fits the block);
//! 2. two blocking counter-mode eventfds: fd0, which srbd waits on, and
//!    fd1, which the client waits on. fd1 is never made non-blocking: the
//!    file status flags are shared with the client's copy, whose fdsem
//!    flush does a blocking read (§5.6);
//! 3. `REGISTER_MEMFD_SHMID(shm_id)` with the memfd and `ENABLE_SRBCHANNEL`
//!    (tag) with `[fd0, fd1]`, each in its own `sendmsg` that starts at
//!    the frame's descriptor (§3.8), then the writable memfd block
//!    reference (block [`RING_BLOCK_ID`], index 0) on channel 0.
//!
//! **Switch-over.** The client acknowledges with `ENABLE_SRBCHANNEL(tag)`
//! over the socket; a wrong tag or a second ack is
//! [`SrbError::UnexpectedAck`]. From then on srbd writes to the ring
//! ([`SrbLink::acknowledge`]); its socket sends are blocking, so nothing is
//! left queued for the socket when it switches. It reads the ring from the
//! offer on, and right after activation: the client may have written
//! before srbd was waiting (§5.2).
//!
//! **Waking.** PulseAudio's fdsem scheme exactly: [`SrbLink::before_poll`]
//! announces a sleep on the server's semaphore (or says there is work),
//! the connection polls fd0 with its socket, and [`SrbLink::after_poll`]
//! ends the sleep. Writes post the client's semaphore after every ring
//! write, as libpulse expects. A writer that finds the ring full waits
//! with [`srb_core::SrbChannel::wait_writable`] for the client to drain
//! it, up to the send timeout.
//!
//! **Hostile clients.** The client can write anything into the block.
//! Capacity and ring offsets are kept in private memory and never read
//! back; every count and fdsem word read from the block is validated by
//! srb-core, and an impossible one is [`ChannelIoError::Corrupt`], which
//! closes that connection only. An eventfd storm (writes to fd0 without
//! the fdsem's `in_pipe` accounting) is caught the same way. Nothing read
//! from the block is ever used as an index without validation.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::io::Errno;
use srb_core::layout::pa::{self, Geometry};
use srb_core::ring::pa::{Consumer, Producer};
use srb_core::{AttachError, SrbChannel, WaitDecision};

use srb_linux::channel::ChannelIoError;
use srb_linux::eventfd::{Eventfd, EventfdWait};
use srb_linux::mapping::{MapError, RangeError, SharedMapping};
use srb_linux::memfd::{CreateError, SealedMemfd};
use srb_linux::scm::{ScmStream, SendError};
use srb_linux::signal::PeerWatch;
use srb_pulse::commands::{Command, NO_TAG};
use srb_pulse::pstream::{Frame, FrameError, ShmRef, ShmRefFrame};
use srb_pulse::tagstruct::TagWriter;

/// Bytes of the memfd that holds the header and both rings.
pub const RING_BLOCK_LEN: u64 = 64 * 1024;
/// The block id of the ring block reference (the only block srbd exports
/// on a connection, so any id is fresh).
pub const RING_BLOCK_ID: u32 = 1;

type PaChannel = SrbChannel<Producer, Consumer, Eventfd, EventfdWait>;

/// Why the srbchannel could not be set up or failed.
#[derive(Debug, thiserror::Error)]
pub enum SrbError {
    /// The ring memfd could not be created.
    #[error("ring memfd: {0}")]
    Memfd(#[from] CreateError),
    /// The ring memfd could not be mapped.
    #[error("ring mapping: {0}")]
    Map(#[from] MapError),
    /// The ring block does not fit the mapping.
    #[error("ring block: {0}")]
    Range(#[from] RangeError),
    /// The header could not be laid out.
    #[error("ring header: {0}")]
    Layout(#[from] AttachError),
    /// An eventfd could not be made.
    #[error("eventfd: {0}")]
    Eventfd(Errno),
    /// An offer frame could not be encoded.
    #[error("offer frame: {0}")]
    Encode(#[from] FrameError),
    /// Sending the offer failed.
    #[error("sending the offer: {0}")]
    Send(#[from] SendError),
    /// An ENABLE_SRBCHANNEL from the client that answers no offer: a
    /// wrong tag, a second ack, or one on a connection that got no offer.
    #[error("ENABLE_SRBCHANNEL with tag {tag:#x} answers no offer")]
    UnexpectedAck {
        /// The tag the client sent.
        tag: u32,
    },
    /// A write to the ring before the client acknowledged it.
    #[error("ring write before the client's ack")]
    NotActive,
    /// The ring or its semaphores failed: a corrupt count or fdsem word
    /// (named by field), the client gone, or a full ring the client did
    /// not drain within the send timeout.
    #[error("ring: {0}")]
    Ring(#[from] ChannelIoError),
}

/// What [`SrbLink::create`] hands to [`SrbLink::send_offer`]: the fds the
/// client gets (closed once sent) and the announcement's ids.
#[derive(Debug)]
pub struct SrbOffer {
    memfd: SealedMemfd,
    fd0: Eventfd,
    fd1: Eventfd,
    shm_id: u32,
    tag: u32,
}

impl SrbOffer {
    /// The id the memfd is registered under.
    pub fn shm_id(&self) -> u32 {
        self.shm_id
    }

    /// The tag of ENABLE_SRBCHANNEL, which the client's ack must repeat.
    pub fn tag(&self) -> u32 {
        self.tag
    }
}

/// Counters for the disconnect log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrbStats {
    /// Whether the client acknowledged the channel.
    pub active: bool,
    /// Bytes read from the client's ring.
    pub bytes_in: u64,
    /// Bytes written to the client's ring.
    pub bytes_out: u64,
}

/// srbd's end of one client's srbchannel.
#[derive(Debug)]
pub struct SrbLink {
    // Field order is drop order: the ring ends before the mapping they
    // point into.
    chan: PaChannel,
    mapping: Arc<SharedMapping>,
    geometry: Geometry,
    tag: u32,
    state: State,
    stats: SrbStats,
    /// Whether `before_poll` announced a sleep that `after_poll` must end.
    announced: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Offered; reads allowed, writes wait for the ack.
    Offered,
    /// Acknowledged: frames without fds go through the ring.
    Active,
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A failure leaves zeros, which is still a valid id and tag (they
    // only need to be fresh on this connection).
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u32::from_ne_bytes(b)
}

impl SrbLink {
    /// Makes the block and eventfds for a client connected on `socket`
    /// (watched so that a wait for ring space ends when the client hangs
    /// up).
    pub fn create(socket: Arc<OwnedFd>) -> Result<(Self, SrbOffer), SrbError> {
        let memfd = SealedMemfd::create("srbd-srbchannel", RING_BLOCK_LEN)?;
        let mapping = memfd.map()?;
        // SAFETY: the block lies in `mapping`, which the link owns and drops
        // after the channel built from it; no reference into it is formed.
        let block = unsafe { mapping.block(0, RING_BLOCK_LEN as usize) }?;
        // SAFETY: the memfd has not left the process, so no one else uses
        // the block; these are its only server ends.
        let (geometry, ends) = unsafe { pa::init_server(block) }?;
        let fd0 = Eventfd::new().map_err(SrbError::Eventfd)?; // srbd waits
        let fd1 = Eventfd::new().map_err(SrbError::Eventfd)?; // the client waits
        let send0 = fd0.try_clone().map_err(SrbError::Eventfd)?;
        let send1 = fd1.try_clone().map_err(SrbError::Eventfd)?;
        let wait = EventfdWait::new(fd0, Some(PeerWatch::new(socket)));
        let tag = match random_u32() {
            NO_TAG => 0,
            t => t,
        };
        let link = Self {
            chan: SrbChannel::new(ends, fd1, wait),
            mapping,
            geometry,
            tag,
            state: State::Offered,
            stats: SrbStats::default(),
            announced: false,
        };
        let offer = SrbOffer {
            memfd,
            fd0: send0,
            fd1: send1,
            shm_id: random_u32(),
            tag,
        };
        Ok((link, offer))
    }

    /// Sends the offer over `stream` (§5.2): REGISTER_MEMFD_SHMID with the
    /// memfd, ENABLE_SRBCHANNEL with `[fd0, fd1]`, each starting its own
    /// `sendmsg`, then the writable block reference. The client's copies
    /// of the fds are closed here; the mapping and srbd's eventfds stay.
    pub fn send_offer(stream: &ScmStream, offer: SrbOffer) -> Result<(), SrbError> {
        let mut register = TagWriter::command(Command::RegisterMemfdShmid as u32, NO_TAG);
        register.put_u32(offer.shm_id);
        let register = Frame::Packet(register.into_bytes()).encode()?;
        stream.send(&register, &[offer.memfd.as_fd()], false)?;
        let enable = TagWriter::command(Command::EnableSrbchannel as u32, offer.tag);
        let enable = Frame::Packet(enable.into_bytes()).encode()?;
        stream.send(&enable, &[offer.fd0.as_fd(), offer.fd1.as_fd()], false)?;
        let block = Frame::ShmRef(ShmRefFrame {
            channel: 0,
            memfd: true,
            writable: true,
            shm: ShmRef {
                block_id: RING_BLOCK_ID,
                shm_id: offer.shm_id,
                index: 0,
                length: RING_BLOCK_LEN as u32,
            },
            ..ShmRefFrame::default()
        })
        .encode()?;
        stream.send(&block, &[], false)?;
        Ok(())
    }

    /// The client acknowledged with `tag`: writes go to the ring from now
    /// on. Anything but the first ack with the offered tag is an error.
    pub fn acknowledge(&mut self, tag: u32) -> Result<(), SrbError> {
        if self.state != State::Offered || tag != self.tag {
            return Err(SrbError::UnexpectedAck { tag });
        }
        self.state = State::Active;
        self.stats.active = true;
        Ok(())
    }

    /// Whether writes go through the ring.
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// Bytes per ring.
    pub fn capacity(&self) -> u32 {
        self.geometry.capacity
    }

    /// The shared mapping (for tests that play a client).
    pub fn mapping(&self) -> &Arc<SharedMapping> {
        &self.mapping
    }

    /// What went through the ring so far.
    pub fn stats(&self) -> SrbStats {
        self.stats
    }

    /// The eventfd srbd waits on (fd0), for the connection's poll.
    pub fn wait_fd(&self) -> BorrowedFd<'_> {
        self.chan.waiter().as_fd()
    }

    /// Reads what the client's ring holds, up to `dst.len()` bytes.
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, SrbError> {
        let n = self.chan.read(dst).map_err(ChannelIoError::from)?;
        self.stats.bytes_in += n as u64;
        Ok(n)
    }

    /// Bytes the client's ring holds now (one validated load of its count).
    pub fn available(&mut self) -> Result<usize, SrbError> {
        self.chan
            .available()
            .map_err(|c| SrbError::Ring(ChannelIoError::Corrupt(c)))
    }

    /// Writes as much of `bytes` as the client's ring takes now; returns
    /// how many. Never waits: what does not fit stays with the caller
    /// (the connection's output queue), and the client's post after it
    /// drains a full ring wakes srbd's semaphore, so the next round of the
    /// connection writes the rest.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, SrbError> {
        if self.state != State::Active {
            return Err(SrbError::NotActive);
        }
        let n = self.chan.write(bytes).map_err(ChannelIoError::from)?;
        self.stats.bytes_out += n as u64;
        Ok(n)
    }

    /// Before the connection polls: announces a sleep on srbd's semaphore
    /// and returns `true` if the poll may block; `false` if the client
    /// posted or its ring holds data (poll without blocking, then read).
    pub fn before_poll(&mut self) -> Result<bool, SrbError> {
        debug_assert!(!self.announced, "before_poll twice without after_poll");
        let sleep =
            self.chan.before_wait().map_err(ChannelIoError::from)? == WaitDecision::OkToSleep;
        self.announced = sleep;
        Ok(sleep)
    }

    /// After the poll: ends the sleep [`before_poll`](Self::before_poll)
    /// announced, if it did. `ready`: the poll reported fd0 readable; its
    /// notifications are then consumed, and more of them than the client
    /// announced (an eventfd storm) is [`ChannelIoError::Corrupt`]. (A
    /// storm while no sleep is announced makes the next poll return at
    /// once with fd0 ready, which ends there.)
    pub fn after_poll(&mut self, ready: bool) -> Result<(), SrbError> {
        if std::mem::take(&mut self.announced) {
            self.chan.after_poll(ready).map_err(ChannelIoError::from)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use srb_core::layout::pa::{READ_COUNT_OFFSET, READ_SEMDATA_OFFSET};
    use srb_core::Corrupt;
    use srb_pulse::pstream::{FrameDecoder, DESCRIPTOR_LEN};
    use srb_pulse::tagstruct::TagReader;
    use std::time::Duration;

    /// A client that received the offer: its own mapping of the memfd and
    /// its ends of the block (the roles libpulse takes).
    struct Client {
        chan: PaChannel,
        _map: Arc<SharedMapping>,
        shm_id: u32,
        tag: u32,
        block: ShmRefFrame,
    }

    fn next_frame(stream: &mut ScmStream) -> (Frame, Vec<OwnedFd>) {
        let mut d = FrameDecoder::new(1 << 20);
        d.set_shm_enabled(true);
        let mut desc = [0u8; DESCRIPTOR_LEN];
        let t = Some(Duration::from_secs(5));
        stream.recv_exact(&mut desc, t).unwrap();
        d.push(&desc);
        assert!(
            d.next_frame().unwrap().is_none(),
            "no frame without payload"
        );
        let mut payload = vec![0u8; d.wanted()];
        stream.recv_exact(&mut payload, t).unwrap();
        d.push(&payload);
        let f = d.next_frame().unwrap().expect("a whole frame");
        (f, stream.take_queued())
    }

    fn packet(f: Frame) -> (u32, u32, Vec<u8>) {
        let Frame::Packet(p) = f else {
            panic!("expected a packet, got {f:?}")
        };
        let mut r = TagReader::new(&p);
        let (cmd, tag) = (r.get_u32().unwrap(), r.get_u32().unwrap());
        (cmd, tag, p)
    }

    /// srbd's link and a client that took the offer over a socket pair.
    fn offered() -> (SrbLink, Client, ScmStream) {
        let (ours, mut theirs) = ScmStream::pair().unwrap();
        let (link, offer) = SrbLink::create(ours.socket().clone()).unwrap();
        SrbLink::send_offer(&ours, offer).unwrap();
        let (f, mut fds) = next_frame(&mut theirs);
        let (cmd, tag, p) = packet(f);
        assert_eq!((cmd, tag), (Command::RegisterMemfdShmid as u32, NO_TAG));
        let mut r = TagReader::new(&p[10..]);
        let shm_id = r.get_u32().unwrap();
        assert_eq!(fds.len(), 1, "REGISTER_MEMFD_SHMID carries the memfd alone");
        let memfd = SealedMemfd::import(fds.remove(0), RING_BLOCK_LEN).expect("a sealed memfd");
        let (f, fds) = next_frame(&mut theirs);
        let (cmd, tag, p) = packet(f);
        assert_eq!(cmd, Command::EnableSrbchannel as u32);
        assert_eq!(p.len(), 10, "ENABLE_SRBCHANNEL has no payload");
        assert_eq!(fds.len(), 2, "ENABLE_SRBCHANNEL carries fd0 and fd1");
        let mut fds = fds.into_iter();
        let fd0 = Eventfd::import(fds.next().unwrap()).unwrap();
        let fd1 = Eventfd::import(fds.next().unwrap()).unwrap();
        let fl = rustix::fs::fcntl_getfl(&fd1).unwrap();
        assert!(
            !fl.contains(rustix::fs::OFlags::NONBLOCK),
            "fd1 stays blocking"
        );
        let (f, fds) = next_frame(&mut theirs);
        assert!(fds.is_empty());
        let Frame::ShmRef(block) = f else {
            panic!("expected the ring block reference, got {f:?}")
        };
        assert_eq!(block.channel, 0);
        assert!(block.memfd && block.writable);
        assert_eq!(block.shm.shm_id, shm_id);
        assert_eq!(u64::from(block.shm.length), RING_BLOCK_LEN);
        let map = memfd.map().unwrap();
        // SAFETY: in the mapping, which the client keeps beside its ends.
        let b = unsafe { map.block(block.shm.index as usize, block.shm.length as usize) }.unwrap();
        // SAFETY: the header was written before the offer; one client.
        let (g, ends) = unsafe { pa::adopt_client(b) }.unwrap();
        assert_eq!(g, link.geometry);
        // The client posts fd0 (srbd waits on it) and waits on fd1.
        let chan = SrbChannel::new(ends, fd0, EventfdWait::new(fd1, None));
        let client = Client {
            chan,
            _map: map,
            shm_id,
            tag,
            block,
        };
        (link, client, theirs)
    }

    #[test]
    fn offer_is_register_enable_and_a_writable_block() {
        let (link, client, _s) = offered();
        assert_eq!(link.capacity(), 32744);
        assert_ne!(client.tag, NO_TAG);
        assert_eq!(client.block.shm.block_id, RING_BLOCK_ID);
        assert_eq!(client.block.shm.index, 0);
        assert!(client.shm_id == client.block.shm.shm_id);
    }

    #[test]
    fn frames_cross_both_ways_after_the_ack() {
        let (mut link, mut client, _s) = offered();
        // Before the ack srbd must not write...
        assert!(matches!(link.write(b"x"), Err(SrbError::NotActive)));
        // ...but reads: the client may write as soon as it has the block.
        assert_eq!(client.chan.write(b"hello").unwrap(), 5);
        assert!(!link.before_poll().unwrap(), "data waiting: do not sleep");
        link.after_poll(true).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(link.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        link.acknowledge(client.tag).unwrap();
        // A reply bigger than the ring: written in pieces while the client
        // drains it from another thread.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let want = big.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut b = vec![0u8; 4096];
            while got.len() < want.len() {
                let n = client.chan.read(&mut b).unwrap();
                got.extend_from_slice(&b[..n]);
                if n == 0 {
                    client.chan.wait(Some(Duration::from_secs(5))).unwrap();
                }
            }
            assert!(got == want, "the ring reordered or lost bytes");
            client
        });
        // As the control loop does it: write what fits, sleep on fd0
        // (the client posts after draining a full ring), write the rest.
        let mut rest = &big[..];
        while !rest.is_empty() {
            let n = link.write(rest).unwrap();
            rest = &rest[n..];
            if n == 0 && link.before_poll().unwrap() {
                let ts = rustix::time::Timespec {
                    tv_sec: 5,
                    tv_nsec: 0,
                };
                let ready = {
                    let fd = link.wait_fd();
                    let mut fds = [rustix::event::PollFd::new(
                        &fd,
                        rustix::event::PollFlags::IN,
                    )];
                    rustix::event::poll(&mut fds, Some(&ts)).unwrap() == 1
                };
                assert!(ready, "no wake-up after the client drained the ring");
                link.after_poll(ready).unwrap();
            } else if n == 0 {
                link.after_poll(false).unwrap();
            }
        }
        let _client = reader.join().unwrap();
        let st = link.stats();
        assert!(st.active);
        assert_eq!((st.bytes_in, st.bytes_out), (5, 200_000));
    }

    #[test]
    fn idle_link_lets_the_poll_sleep_and_a_client_write_wakes_fd0() {
        let (mut link, mut client, _s) = offered();
        assert!(link.before_poll().unwrap(), "nothing to do: sleep");
        client.chan.write(b"req").unwrap();
        let fd0 = link.wait_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd0,
            rustix::event::PollFlags::IN,
        )];
        let t = rustix::time::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&t)).unwrap();
        assert!(fds[0].revents().contains(rustix::event::PollFlags::IN));
        link.after_poll(true).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(link.read(&mut buf).unwrap(), 3);
    }

    #[test]
    fn wrong_or_second_ack_is_an_error() {
        let (mut link, client, _s) = offered();
        let wrong = client.tag.wrapping_add(1);
        assert!(matches!(
            link.acknowledge(wrong),
            Err(SrbError::UnexpectedAck { tag }) if tag == wrong
        ));
        link.acknowledge(client.tag).unwrap();
        assert!(matches!(
            link.acknowledge(client.tag),
            Err(SrbError::UnexpectedAck { .. })
        ));
    }

    fn store_i32(map: &SharedMapping, off: usize, v: i32) {
        let p = map.atomic_u32(off).unwrap();
        // SAFETY: an aligned word inside the live mapping, written atomically.
        unsafe { (*p).store(v as u32, std::sync::atomic::Ordering::SeqCst) };
    }

    fn corrupt(e: SrbError) -> Corrupt {
        match e {
            SrbError::Ring(ChannelIoError::Corrupt(c)) => c,
            e => panic!("expected a corrupt shared value, got {e}"),
        }
    }

    #[test]
    fn hostile_counts_are_named_errors() {
        for bad in [-1, i32::MIN, 32745, i32::MAX] {
            let (mut link, _client, _s) = offered();
            store_i32(link.mapping(), READ_COUNT_OFFSET, bad);
            let mut buf = [0u8; 64];
            let c = corrupt(link.read(&mut buf).unwrap_err());
            assert_eq!(c.value, i64::from(bad), "{c}");
        }
    }

    #[test]
    fn hostile_fdsem_words_are_named_errors() {
        // waiting, signalled, in_pipe of srbd's own semaphore.
        for (word, bad) in [(0, -5), (4, 7), (4, -1), (8, -3)] {
            let (mut link, _client, _s) = offered();
            store_i32(link.mapping(), READ_SEMDATA_OFFSET + word, bad);
            let e = link
                .before_poll()
                .and_then(|_| link.after_poll(true))
                .expect_err("a nonsense fdsem word");
            let c = corrupt(e);
            assert_eq!(c.value, i64::from(bad), "{c}");
        }
    }

    #[test]
    fn eventfd_storm_without_accounting_is_a_named_error() {
        let (mut link, client, _s) = offered();
        assert!(link.before_poll().unwrap());
        // The client hammers fd0 without raising in_pipe first.
        for _ in 0..1000 {
            srb_core::Notify::notify(client.chan.notifier()).unwrap();
        }
        let c = corrupt(link.after_poll(true).unwrap_err());
        assert_eq!(c.value, 0, "{c}");
    }

    #[test]
    fn a_client_that_never_drains_gets_short_writes_not_a_wait() {
        let (mut link, client, _s) = offered();
        link.acknowledge(client.tag).unwrap();
        let big = vec![0u8; 100_000];
        let n = link.write(&big).unwrap();
        assert_eq!(n, link.capacity() as usize, "fills the ring, no more");
        assert_eq!(link.write(&big).unwrap(), 0, "full: returns at once");
        // Full and blocked: the semaphore says sleep until the client posts.
        assert!(link.before_poll().unwrap());
        link.after_poll(false).unwrap();
    }
}
