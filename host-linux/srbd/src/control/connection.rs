//! One client connection: the frame decoder, the AUTH → SET_CLIENT_NAME →
//! commands state machine ([`Session`], pure) and the socket loop around
//! it ([`serve`]).
//!
//! **Input.** A unix connection ([`Transport::Unix`]) is read with
//! `recvmsg` ([`ScmStream::try_recv`]) never past the end of the frame
//! being assembled ([`FrameDecoder::wanted`]): the kernel hands over fds
//! with the first read that touches the bytes they were sent with, so the
//! fds queued when a frame completes are exactly the ones sent with it
//! (§3.8). They go to [`Session::handle_frame_with_fds`], and whatever its
//! handler does not claim (only REGISTER_MEMFD_SHMID takes one) is closed
//! at once. `MSG_CTRUNC` (more fds than a frame may carry) closes the
//! connection. TCP connections ([`Transport::Tcp`]) are read plainly and
//! never get SHM. A frame that is not complete [`FRAME_TIMEOUT`] after
//! its first byte closes the connection ([`ConnError::FrameStalled`]).
//!
//! **AUTH** offers SHM + memfd by [`offer_shm`] (§1.5); the decoder then
//! accepts SHM frames, handled by [`crate::control::shm`]. Right after the AUTH
//! reply an SHM client is offered the srbchannel ([`SrbEvent::Offer`],
//! carried out by [`Outbound::sync`]); its ack switches the connection's
//! writes to the ring. The loop polls the ring's eventfd beside the socket
//! and reads the ring with its own frame reassembly every round.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::control::outbound::Outbound;
use crate::control::playback::Playback;
use crate::control::record::Record;
use crate::control::server_info::PROTOCOL_VERSION;
use crate::control::shm::{ReleaseQueue, ShmError, ShmImports, ShmStats};
use crate::control::srbchannel::SrbError;
use crate::control::wake::Waker;
use crate::Server;
use srb_linux::scm::{RecvError, ScmStream};
use srb_pulse::commands::{Command, PaError, NO_TAG};
#[cfg(test)]
use srb_pulse::pstream::DESCRIPTOR_LEN;
use srb_pulse::pstream::{Frame, FrameDecoder, FrameError, SeekMode};
use srb_pulse::tagstruct::{TagError, TagReader, TagWriter};

/// Length of the AUTH cookie (§1.4).
pub const COOKIE_LEN: usize = 256;
/// The lowest client version served (SET_CLIENT_NAME takes a proplist from
/// 13 on; older clients get `ERROR(VERSION)`).
pub const MIN_VERSION: u32 = 13;
/// A connection that is not authorised by then is dropped (§1.2).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a blocked read wakes up to check timeouts and shutdown.
const READ_TICK: Duration = Duration::from_millis(500);
/// How long one send may block before the client counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A frame must be complete this long after its first byte arrived, or
/// the connection is closed: a client that stops in the middle of a frame
/// must not hold its connection (and slot) forever.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// The AUTH flag "SHM possible" (client) / "SHM offered" (server) (§1.4).
pub const AUTH_SHM: u32 = 0x8000_0000;
/// The AUTH flag "memfd possible" / "memfd offered" (§1.4).
pub const AUTH_MEMFD: u32 = 0x4000_0000;
/// The lowest negotiated version memfd is offered to (§1.5, §9 row 10:
/// version 31 clients must not get it).
pub const MIN_MEMFD_VERSION: u32 = 32;
/// Largest frame payload accepted (libpulse sends audio in blocks of at
/// most 64 KiB; packets are small).
pub const MAX_FRAME_PAYLOAD: u32 = 1024 * 1024;
/// Largest SET_CLIENT_NAME packet whose proplist is kept. Every client's
/// proplist goes into each GET_CLIENT_INFO_LIST reply, so without a cap 64
/// clients could make that reply exceed the frame limit (failing every
/// asker) or cost each request tens of MiB. libpulse sends well under 4 KiB.
pub const MAX_CLIENT_PROPS: usize = 64 * 1024;
/// The default of how long (config `spin_us`) a connection thread keeps
/// polling the srbchannel ring before it sleeps, when the client's last
/// request followed srbd's last reply within this window (a client issuing
/// requests back to back). It yields the CPU between looks: a client on
/// the same CPU runs at once, and one on the other CPU finds srbd awake,
/// which saves a cross-CPU wake-up (tens of µs on a VM). Streaming
/// clients, whose ring input comes a period apart, never trigger it.
pub const SPIN_WINDOW: Duration = Duration::from_micros(100);
/// Encoded replies are sent once this many bytes are pending, so one read
/// full of requests cannot buffer more than this plus one reply.
const OUT_FLUSH_AT: usize = 64 * 1024;

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The frame layer refused the stream.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// A packet could not be parsed.
    #[error("malformed packet: {0}")]
    Packet(#[from] TagError),
    /// The peer closed the socket in the middle of a frame.
    #[error("peer closed mid-frame ({0} bytes buffered)")]
    Truncated(usize),
    /// No AUTH within [`AUTH_TIMEOUT`].
    #[error("not authorised within {0:?}")]
    AuthTimeout(Duration),
    /// A send blocked for longer than the send timeout.
    #[error("client stopped reading (send timed out)")]
    SendTimeout,
    /// A frame was started and not completed within [`FRAME_TIMEOUT`].
    #[error("frame not completed within {after:?} ({buffered} bytes buffered)")]
    FrameStalled {
        /// Bytes of the frame received.
        buffered: usize,
        /// The limit.
        after: Duration,
    },
    /// Receiving failed: `MSG_CTRUNC` (too many fds), too many fds queued,
    /// or a socket error.
    #[error("receive: {0}")]
    Recv(RecvError),
    /// A REGISTER_MEMFD_SHMID or SHM reference was refused.
    #[error("shm: {0}")]
    Shm(#[from] ShmError),
    /// The srbchannel failed: its setup, an ack that answers no offer, or
    /// a corrupt count or fdsem word in the shared block.
    #[error("srbchannel: {0}")]
    Srb(#[from] SrbError),
    /// Another socket error.
    #[error("socket error: {0}")]
    Io(Errno),
}

/// What a handled frame asks of the connection's [`Outbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrbEvent {
    /// AUTH negotiated SHM + memfd and the srbchannel is allowed: offer it
    /// right after the AUTH reply.
    Offer,
    /// The client acknowledged ENABLE_SRBCHANNEL with this tag.
    Ack(u32),
}

/// Who is on the other end, for AUTH.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A local client (SO_PEERCRED): accepted if it runs as our uid or root.
    Unix {
        /// Its uid.
        uid: u32,
    },
    /// A TCP client: accepted if it presents `cookie` (`None`: anonymous
    /// access is allowed).
    Tcp {
        /// Its address.
        addr: std::net::SocketAddr,
        /// The cookie it must present.
        cookie: Option<Box<[u8; COOKIE_LEN]>>,
    },
}

/// Whether AUTH offers SHM + memfd (§1.5): only when the client asked for
/// both (`version_and_flags` has [`AUTH_SHM`] and [`AUTH_MEMFD`]), the
/// negotiated version is at least [`MIN_MEMFD_VERSION`], the peer is local
/// and runs as the server's uid (root included only if the server is
/// root: SHM must not leak data between users), and the server allows it
/// (config `shm`). Otherwise the client uses the inline path; POSIX shm is
/// never offered.
pub fn offer_shm(
    version_and_flags: u32,
    negotiated: u32,
    peer: &Peer,
    server_uid: u32,
    allowed: bool,
) -> bool {
    let asked = version_and_flags & (AUTH_SHM | AUTH_MEMFD) == AUTH_SHM | AUTH_MEMFD;
    let same_user = matches!(peer, Peer::Unix { uid } if *uid == server_uid);
    allowed && asked && negotiated >= MIN_MEMFD_VERSION && same_user
}

/// The per-client protocol state, without I/O: frames in, encoded reply
/// frames out.
#[derive(Debug)]
pub struct Session {
    pub(super) server: Arc<Server>,
    peer: Peer,
    pub(super) client_index: u32,
    version: Option<u32>,
    name: Option<String>,
    /// The client's memfd imports, once SHM + memfd was negotiated.
    pub(super) shm: Option<ShmImports>,
    /// The fds that came with the frame being handled (see
    /// [`Session::handle_frame_with_fds`]).
    frame_fds: Vec<OwnedFd>,
    /// Where SHM blocks are copied to.
    pub(super) shm_buf: Vec<u8>,
    /// RELEASE frames of copied SHM blocks, waiting to go out with the
    /// next outgoing frames ([`ReleaseQueue`]).
    pub releases: ReleaseQueue,
    /// What the last frame asks of the connection's srbchannel.
    srb_event: Option<SrbEvent>,
    /// Wakes this connection's thread (mixer events, other clients).
    pub(super) waker: Arc<Waker>,
    /// Playback streams by channel id.
    pub(super) playbacks: BTreeMap<u32, Playback>,
    /// Record streams by channel id.
    pub(super) records: BTreeMap<u32, Record>,
    pub(super) next_playback_channel: u32,
    pub(super) next_record_channel: u32,
}

/// The negotiated version for a client's AUTH `version_and_flags` (§1.4,
/// §1.5): the low 16 bits (the high ones are flags from version 13 on),
/// capped at ours. Results below [`MIN_VERSION`] are refused by AUTH.
pub fn negotiate(version_and_flags: u32) -> u32 {
    (version_and_flags & 0xFFFF).min(PROTOCOL_VERSION)
}

pub(super) fn reply(tag: u32) -> TagWriter {
    TagWriter::command(Command::Reply as u32, tag)
}

pub(super) fn error(tag: u32, e: PaError) -> TagWriter {
    let mut w = TagWriter::command(Command::Error as u32, tag);
    w.put_u32(e.code());
    w
}

impl Session {
    /// A session for a peer with this uid; registers the client.
    pub fn new(server: Arc<Server>, peer_uid: u32, waker: Arc<Waker>) -> Self {
        Self::with_peer(server, Peer::Unix { uid: peer_uid }, waker)
    }

    /// A session for any kind of peer; registers the client.
    pub fn with_peer(server: Arc<Server>, peer: Peer, waker: Arc<Waker>) -> Self {
        let client_index = server.register_client();
        Self {
            server,
            peer,
            client_index,
            version: None,
            name: None,
            shm: None,
            frame_fds: Vec::new(),
            shm_buf: Vec::new(),
            releases: ReleaseQueue::default(),
            srb_event: None,
            waker,
            playbacks: BTreeMap::new(),
            records: BTreeMap::new(),
            next_playback_channel: 0,
            next_record_channel: 0,
        }
    }

    /// The negotiated version, once authorised.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// The client index.
    pub fn client_index(&self) -> u32 {
        self.client_index
    }

    /// The client's `application.name`, once given.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether SHM + memfd was negotiated (the frame decoder must then
    /// accept SHM frames).
    pub fn shm_negotiated(&self) -> bool {
        self.shm.is_some()
    }

    /// What the client imported through SHM so far (`None`: no SHM).
    pub fn shm_stats(&self) -> Option<ShmStats> {
        self.shm.as_ref().map(ShmImports::stats)
    }

    /// What the last handled frame asks of the srbchannel (taken: asked once).
    pub fn take_srb_event(&mut self) -> Option<SrbEvent> {
        self.srb_event.take()
    }

    /// The fds of the frame being handled, taken by the handler that
    /// consumes them.
    pub(super) fn take_frame_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.frame_fds)
    }

    /// [`Session::handle_frame`] for a frame that arrived with `fds`. The
    /// handler that takes fds (REGISTER_MEMFD_SHMID) claims them; every fd
    /// left over is closed here, whatever the outcome: fds on frames that
    /// take none are ignored, never kept.
    pub fn handle_frame_with_fds(
        &mut self,
        frame: Frame,
        fds: Vec<OwnedFd>,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        self.frame_fds = fds;
        let result = self.handle_frame(frame, out);
        let left = std::mem::take(&mut self.frame_fds);
        if !left.is_empty() {
            tracing::debug!(
                client = self.client_index,
                n = left.len(),
                "closing received fds no handler claimed"
            );
        }
        drop(left);
        result
    }

    /// Handles one frame; appends the encoded frames to send to `out`.
    pub fn handle_frame(&mut self, frame: Frame, out: &mut Vec<u8>) -> Result<(), ConnError> {
        match frame {
            Frame::Packet(p) => {
                if let Some(w) = self.handle_packet(&p)? {
                    Frame::Packet(w.into_bytes()).encode_into(out)?;
                }
            }
            Frame::Memblock(m) => match self.playbacks.get_mut(&m.channel) {
                Some(p) => push_playback(p, m.offset, m.seek, &m.data, out)?,
                None => tracing::debug!(
                    channel = m.channel,
                    len = m.data.len(),
                    "memblock for no stream of this client, ignored"
                ),
            },
            Frame::ShmRef(f) => self.shm_ref(f, out)?,
            Frame::Release { block_id } | Frame::Revoke { block_id } => {
                // We export no blocks to clients (record data goes inline).
                tracing::debug!(
                    client = self.client_index,
                    block_id,
                    "RELEASE/REVOKE of a block never exported, ignored"
                );
            }
        }
        Ok(())
    }

    /// Handles one packet; the reply to send, if any.
    pub fn handle_packet(&mut self, packet: &[u8]) -> Result<Option<TagWriter>, ConnError> {
        let mut r = TagReader::new(packet);
        let command = r.get_u32()?;
        let tag = r.get_u32()?;
        let Some(cmd) = Command::from_u32(command) else {
            tracing::debug!(command, tag, "unknown command");
            return Ok((tag != NO_TAG).then(|| error(tag, PaError::Command)));
        };
        let Some(version) = self.version else {
            return match cmd {
                Command::Auth => self.auth(tag, &mut r).map(Some),
                _ => {
                    tracing::debug!(?cmd, "command before AUTH");
                    Ok((tag != NO_TAG).then(|| error(tag, PaError::Access)))
                }
            };
        };
        let w = match cmd {
            Command::Reply | Command::Error => {
                tracing::debug!(?cmd, tag, "client reply to nothing, ignored");
                return Ok(None);
            }
            Command::Auth => Some(error(tag, PaError::BadState)),
            Command::SetClientName => {
                let props = r.get_proplist()?;
                r.finish()?;
                if packet.len() > MAX_CLIENT_PROPS {
                    tracing::warn!(
                        client = self.client_index,
                        len = packet.len(),
                        max = MAX_CLIENT_PROPS,
                        "client proplist too large; refused"
                    );
                    return Ok(Some(error(tag, PaError::TooLarge)));
                }
                let name = props
                    .get_str("application.name")
                    .unwrap_or("(unnamed)")
                    .to_owned();
                if self.name.is_none() {
                    tracing::info!(
                        client = self.client_index,
                        name = %name,
                        version,
                        "client ready"
                    );
                }
                self.server.set_client(self.client_index, props);
                self.name = Some(name);
                let mut w = reply(tag);
                w.put_u32(self.client_index);
                Some(w)
            }
            Command::RegisterMemfdShmid => {
                self.register_memfd(&mut r)?;
                None
            }
            Command::EnableSrbchannel => {
                // The client's ack (§5.2): no reply; the connection checks
                // the tag against its offer.
                r.finish()?;
                self.srb_event = Some(SrbEvent::Ack(tag));
                None
            }
            _ if crate::control::introspect::handles(cmd) => {
                self.introspect(cmd, tag, &mut r, version, packet.len())?
            }
            _ if crate::control::streams::handles(cmd) => {
                self.stream_command(cmd, tag, &mut r, version, packet.len())?
            }
            _ => self.unsupported(cmd, tag),
        };
        Ok(w)
    }

    /// The fallback for commands no handler took.
    pub(super) fn unsupported(&self, cmd: Command, tag: u32) -> Option<TagWriter> {
        match cmd {
            _ if tag == NO_TAG => {
                tracing::debug!(?cmd, "unsupported command without a tag, ignored");
                None
            }
            _ => {
                tracing::debug!(?cmd, tag, "unsupported command");
                Some(error(tag, PaError::NotSupported))
            }
        }
    }

    fn auth(&mut self, tag: u32, r: &mut TagReader<'_>) -> Result<TagWriter, ConnError> {
        let raw = r.get_u32()?;
        let cookie = r.get_arbitrary(COOKIE_LEN)?;
        r.finish()?;
        match &self.peer {
            Peer::Unix { uid } if *uid != self.server.uid && *uid != 0 => {
                tracing::warn!(peer_uid = uid, "AUTH refused: another user");
                return Ok(error(tag, PaError::Access));
            }
            Peer::Tcp {
                addr,
                cookie: Some(want),
            } if cookie != want.as_slice() => {
                tracing::warn!(%addr, "AUTH refused: wrong cookie");
                return Ok(error(tag, PaError::Access));
            }
            _ => {}
        }
        let version = negotiate(raw);
        if version < MIN_VERSION {
            tracing::warn!(client_version = raw, "AUTH refused: version too old");
            return Ok(error(tag, PaError::Version));
        }
        self.version = Some(version);
        let shm = offer_shm(raw, version, &self.peer, self.server.uid, self.server.shm);
        tracing::debug!(
            client = self.client_index,
            client_version = raw & 0xFFFF,
            client_shm = raw & AUTH_SHM != 0,
            client_memfd = raw & AUTH_MEMFD != 0,
            version,
            shm,
            "authorised"
        );
        let mut w = reply(tag);
        if shm {
            // The reply goes out before any later frame is handled, and
            // the decoder accepts SHM frames from the next frame on.
            self.shm = Some(ShmImports::new());
            w.put_u32(version | AUTH_SHM | AUTH_MEMFD);
            if self.server.srbchannel {
                self.srb_event = Some(SrbEvent::Offer);
            }
        } else {
            w.put_u32(version);
        }
        Ok(w)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for (_, p) in std::mem::take(&mut self.playbacks) {
            self.server.registry.remove_sink_input(p.shared.index);
        }
        for (_, r) in std::mem::take(&mut self.records) {
            self.server.registry.remove_source_output(r.shared.index);
        }
        self.server.remove_client(self.client_index);
    }
}

/// How a connection's bytes arrive.
#[derive(Debug)]
pub enum Transport {
    /// A local client: fd-aware reads (SCM_RIGHTS), SHM possible.
    Unix(ScmStream),
    /// A TCP client: plain reads, never fds or SHM.
    Tcp(Arc<OwnedFd>),
}

impl Transport {
    /// The socket.
    fn socket(&self) -> Arc<OwnedFd> {
        match self {
            Transport::Unix(s) => s.socket().clone(),
            Transport::Tcp(fd) => fd.clone(),
        }
    }
}

/// Bounds on how long a connection may take for things.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// From accept to a successful AUTH.
    auth: Duration,
    /// From a frame's first byte to its last.
    frame: Duration,
}

/// Serves one accepted connection until the client leaves, a protocol
/// error, or server shutdown; logs how it ended. The fds it imported are
/// closed when it returns.
pub fn serve(mut transport: Transport, peer: Peer, server: Arc<Server>) {
    let waker = match Waker::new() {
        Ok(w) => Arc::new(w),
        Err(e) => {
            tracing::warn!(%e, "no eventfd for the connection; closed");
            return;
        }
    };
    let mut session = Session::with_peer(server.clone(), peer, waker);
    let index = session.client_index();
    let limits = Limits {
        auth: AUTH_TIMEOUT,
        frame: FRAME_TIMEOUT,
    };
    let mut outbound = Outbound::new(transport.socket(), SEND_TIMEOUT);
    let result = run(&mut transport, &mut session, &mut outbound, &server, limits);
    let name = session.name().unwrap_or("-").to_owned();
    let version = session.version().unwrap_or(0);
    let stats = session.shm_stats();
    let shm = stats.is_some();
    let shm_refs = stats.map_or(0, |s| s.refs);
    let shm_bytes = stats.map_or(0, |s| s.bytes);
    let srb = outbound.srb_stats();
    let srbchannel = srb.is_some_and(|s| s.active);
    let srb_in = srb.map_or(0, |s| s.bytes_in);
    let srb_out = srb.map_or(0, |s| s.bytes_out);
    match result {
        Ok(()) => tracing::info!(
            client = index,
            %name,
            version,
            shm,
            shm_refs,
            shm_bytes,
            srbchannel,
            srb_in,
            srb_out,
            "client disconnected"
        ),
        Err(e) => {
            tracing::warn!(
                client = index,
                %name,
                version,
                shm,
                shm_refs,
                shm_bytes,
                srbchannel,
                srb_in,
                srb_out,
                reason = %e,
                "connection closed"
            )
        }
    }
}

fn run(
    transport: &mut Transport,
    session: &mut Session,
    ob: &mut Outbound,
    server: &Server,
    limits: Limits,
) -> Result<(), ConnError> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::net::sockopt::{set_socket_timeout, Timeout};
    let fd = transport.socket();
    set_socket_timeout(&*fd, Timeout::Recv, Some(READ_TICK)).map_err(ConnError::Io)?;
    set_socket_timeout(&*fd, Timeout::Send, Some(SEND_TIMEOUT)).map_err(ConnError::Io)?;
    let started = Instant::now();
    let mut input = Input::new(false);
    // Frames from the srbchannel ring: their own reassembly (§5.5), SHM
    // frames allowed (the ring exists only for SHM clients).
    let mut ring_input = Input::new(true);
    let mut ring_more = false;
    // Ring polling before sleeping (SPIN_WINDOW): when srbd last answered
    // ring input, and whether the client's next input came within the
    // window.
    let mut last_answer: Option<Instant> = None;
    let mut spin = false;
    let mut out = Vec::new();
    let waker = session.waker.clone();
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: READ_TICK.as_nanos() as _,
    };
    let now = Timespec::default();
    loop {
        if spin && !ring_more {
            ob.spin_for_ring(server.spin)?;
        }
        // The ring's fdsem: announce the sleep (or learn there is work)
        // before polling its eventfd, end it after (§5.6).
        let may_sleep = ob.before_poll()? && !ring_more;
        let (readable, woken, ring_ready) = {
            let ring_fd = ob.wait_fd();
            let mut fds = [
                PollFd::new(&*fd, PollFlags::IN),
                PollFd::new(&*waker, PollFlags::IN),
                match &ring_fd {
                    Some(r) => PollFd::new(r, PollFlags::IN),
                    None => PollFd::new(&*fd, PollFlags::empty()),
                },
            ];
            let n = if ring_fd.is_some() { 3 } else { 2 };
            // Queued RELEASEs bound the sleep (shm::RELEASE_DELAY).
            let timeout = match session.releases.due_in() {
                _ if !may_sleep => now,
                Some(d) if d < READ_TICK => Timespec {
                    tv_sec: 0,
                    tv_nsec: d.as_nanos() as _,
                },
                _ => tick,
            };
            match poll(&mut fds[..n], Some(&timeout)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(ConnError::Io(e)),
            }
            (
                !fds[0].revents().is_empty(),
                !fds[1].revents().is_empty(),
                n == 3 && !fds[2].revents().is_empty(),
            )
        };
        ob.after_poll(ring_ready)?;
        // Checked on every wake-up, not only on idle ticks: a client that
        // keeps sending (unauthorised commands, a trickled frame) must not
        // hold its slot past the deadline.
        if session.version().is_none() && started.elapsed() >= limits.auth {
            return Err(ConnError::AuthTimeout(limits.auth));
        }
        if server.stopping() {
            return Ok(());
        }
        input.check_stall(limits.frame)?;
        ring_input.check_stall(limits.frame)?;
        if woken {
            waker.clear();
        }
        if readable {
            let open = match transport {
                Transport::Unix(stream) => input.read_unix(stream, session, ob, &mut out)?,
                Transport::Tcp(sock) => {
                    let open = input.read_plain(sock, session, &mut out, |b| ob.send(b))?;
                    // A TCP client never gets an offer; an ack is an error.
                    ob.sync(session, None, &mut out)?;
                    open
                }
            };
            if !open {
                return Ok(());
            }
        }
        let ring_frames;
        (ring_frames, ring_more) = ring_input.read_ring(session, ob, &mut out)?;
        if ring_frames > 0 {
            spin = last_answer.is_some_and(|t| t.elapsed() < server.spin);
        }
        session.poll_streams(&mut out)?;
        if !session.releases.is_empty()
            && (!out.is_empty() || session.releases.due_in() == Some(Duration::ZERO))
        {
            session.releases.flush(&mut out);
        }
        // One send per round: the replies, RELEASEs and notifications of
        // the round leave together (one ring write, one wake-up of the
        // client).
        if !out.is_empty() {
            ob.send(&out)?;
            out.clear();
            if ring_frames > 0 {
                last_answer = Some(Instant::now());
            }
        }
    }
}

/// A connection's input side (the socket's, or the srbchannel ring's):
/// the frame decoder, a read buffer and when the frame being assembled
/// started.
struct Input {
    decoder: FrameDecoder,
    buf: Vec<u8>,
    frame_started: Option<Instant>,
}

impl Input {
    /// An input whose decoder starts out accepting SHM frames or not.
    fn new(shm: bool) -> Self {
        let mut decoder = FrameDecoder::new(MAX_FRAME_PAYLOAD);
        decoder.set_shm_enabled(shm);
        Self {
            decoder,
            buf: vec![0u8; 64 * 1024],
            frame_started: None,
        }
    }

    /// Fails once the frame being assembled is older than `limit`.
    fn check_stall(&self, limit: Duration) -> Result<(), ConnError> {
        match self.frame_started {
            Some(t) if t.elapsed() >= limit => Err(ConnError::FrameStalled {
                buffered: self.decoder.buffered(),
                after: limit,
            }),
            _ => Ok(()),
        }
    }

    /// Notes when a frame started, after `handled` frames completed.
    fn track(&mut self, handled: usize) {
        if handled > 0 {
            self.frame_started = None;
        }
        if self.decoder.is_mid_frame() && self.frame_started.is_none() {
            self.frame_started = Some(Instant::now());
        }
    }

    /// Reads what the unix socket holds (at most one buffer's worth), never
    /// past the end of the frame being assembled, and handles each frame
    /// with the fds that arrived with it. `Ok(false)`: the client closed
    /// the connection between frames.
    fn read_unix(
        &mut self,
        stream: &mut ScmStream,
        session: &mut Session,
        ob: &mut Outbound,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnError> {
        let mut budget = self.buf.len();
        while budget > 0 {
            // After the frames were drained below, `wanted` is > 0.
            let want = self.decoder.wanted().clamp(1, budget);
            let n = match stream.try_recv(&mut self.buf[..want]) {
                Ok(None) => break,
                Ok(Some(n)) => n,
                Err(RecvError::PeerGone) if self.decoder.is_mid_frame() => {
                    return Err(ConnError::Truncated(self.decoder.buffered()))
                }
                Err(RecvError::PeerGone) => return Ok(false),
                Err(e) => return Err(ConnError::Recv(e)),
            };
            budget = budget.saturating_sub(n.max(1));
            self.decoder.push(&self.buf[..n]);
            let mut handled = 0;
            while let Some(frame) = self.decoder.next_frame()? {
                handled += 1;
                let fds = stream.take_queued();
                session.handle_frame_with_fds(frame, fds, out)?;
                self.decoder.set_shm_enabled(session.shm_negotiated());
                ob.sync(session, Some(stream), out)?;
                if out.len() >= OUT_FLUSH_AT {
                    ob.send(out)?;
                    out.clear();
                }
            }
            self.track(handled);
        }
        // What is left in `out` goes with the loop round's one send.
        Ok(true)
    }

    /// Reads what the client's srbchannel ring holds (at most one
    /// buffer's worth) and handles each frame; such frames never carry
    /// fds. Returns how many frames were handled and whether the budget
    /// ran out (more may be waiting: poll without sleeping).
    fn read_ring(
        &mut self,
        session: &mut Session,
        ob: &mut Outbound,
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), ConnError> {
        if !ob.has_ring() {
            return Ok((0, false));
        }
        let mut frames = 0;
        let mut budget = self.buf.len();
        while budget > 0 {
            let n = ob.read_ring(&mut self.buf[..budget])?;
            if n == 0 {
                break;
            }
            budget -= n;
            self.decoder.push(&self.buf[..n]);
            let mut handled = 0;
            while let Some(frame) = self.decoder.next_frame()? {
                handled += 1;
                frames += 1;
                session.handle_frame_with_fds(frame, Vec::new(), out)?;
                ob.sync(session, None, out)?;
                if out.len() >= OUT_FLUSH_AT {
                    ob.send(out)?;
                    out.clear();
                }
            }
            self.track(handled);
        }
        Ok((frames, budget == 0))
    }

    /// Reads what the socket holds with a plain `read` (TCP: no fds) and
    /// handles every complete frame. `Ok(false)`: the client closed the
    /// connection between frames.
    fn read_plain(
        &mut self,
        fd: &OwnedFd,
        session: &mut Session,
        out: &mut Vec<u8>,
        send: impl FnMut(&[u8]) -> Result<(), ConnError>,
    ) -> Result<bool, ConnError> {
        match rustix::io::read(fd, &mut self.buf[..]) {
            Ok(0) if self.decoder.is_mid_frame() => {
                Err(ConnError::Truncated(self.decoder.buffered()))
            }
            Ok(0) => Ok(false),
            Ok(n) => {
                self.decoder.push(&self.buf[..n]);
                let handled = handle_frames(&mut self.decoder, session, out, send)?;
                self.track(handled);
                Ok(true)
            }
            Err(Errno::AGAIN | Errno::INTR) => Ok(true),
            Err(e) => Err(ConnError::Io(e)),
        }
    }
}

/// Handles every complete frame in `decoder` (no fds), passing the encoded
/// replies to `send` whenever [`OUT_FLUSH_AT`] bytes are pending and at
/// the end; returns how many frames were handled.
fn handle_frames(
    decoder: &mut FrameDecoder,
    session: &mut Session,
    out: &mut Vec<u8>,
    mut send: impl FnMut(&[u8]) -> Result<(), ConnError>,
) -> Result<usize, ConnError> {
    let mut handled = 0;
    while let Some(frame) = decoder.next_frame()? {
        handled += 1;
        session.handle_frame(frame, out)?;
        decoder.set_shm_enabled(session.shm_negotiated());
        if out.len() >= OUT_FLUSH_AT {
            send(out)?;
            out.clear();
        }
    }
    if !out.is_empty() {
        send(out)?;
        out.clear();
    }
    Ok(handled)
}

/// Queues client audio of an inline or SHM memblock into its stream (seek
/// offsets are not supported: the data is appended); an OVERFLOW
/// notification goes to `out` if it did not fit.
pub(super) fn push_playback(
    p: &mut Playback,
    offset: i64,
    seek: SeekMode,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ConnError> {
    if offset != 0 || seek != SeekMode::Relative {
        tracing::debug!(
            channel = p.channel,
            offset,
            ?seek,
            "seeking writes are not supported; appended"
        );
    }
    if let Some(w) = p.push(data) {
        Frame::Packet(w.into_bytes()).encode_into(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::server_info::INVALID_INDEX;
    use srb_pulse::tagstruct::Proplist;
    use std::os::fd::AsFd;

    fn server() -> Arc<Server> {
        crate::test_server()
    }

    fn waker() -> Arc<Waker> {
        Arc::new(Waker::new().unwrap())
    }

    fn session() -> Session {
        let s = server();
        let uid = s.uid;
        Session::new(s, uid, waker())
    }

    fn packet(cmd: u32, tag: u32, body: impl FnOnce(&mut TagWriter)) -> Vec<u8> {
        let mut w = TagWriter::command(cmd, tag);
        body(&mut w);
        w.into_bytes()
    }

    fn auth_packet(version: u32) -> Vec<u8> {
        packet(Command::Auth as u32, 0, |w| {
            w.put_u32(version).put_arbitrary(&[7; COOKIE_LEN]);
        })
    }

    /// Sends `p` and returns the reply's reader positioned after the tag.
    fn call(s: &mut Session, p: &[u8]) -> Vec<u8> {
        s.handle_packet(p).unwrap().expect("a reply").into_bytes()
    }

    fn expect_reply(bytes: &[u8], tag: u32) -> TagReader<'_> {
        let mut r = TagReader::new(bytes);
        assert_eq!(r.get_u32().unwrap(), Command::Reply as u32);
        assert_eq!(r.get_u32().unwrap(), tag);
        r
    }

    fn expect_error(bytes: &[u8], tag: u32, e: PaError) {
        let mut r = TagReader::new(bytes);
        assert_eq!(r.get_u32().unwrap(), Command::Error as u32);
        assert_eq!(r.get_u32().unwrap(), tag);
        assert_eq!(r.get_u32().unwrap(), e.code());
        r.finish().unwrap();
    }

    /// A ready session that negotiated SHM + memfd.
    fn ready_shm() -> Session {
        let s = ready(0xC000_0023);
        assert!(s.shm_negotiated());
        s
    }

    fn ready(version: u32) -> Session {
        let mut s = session();
        let b = call(&mut s, &auth_packet(version));
        expect_reply(&b, 0);
        let b = call(
            &mut s,
            &packet(Command::SetClientName as u32, 1, |w| {
                let mut p = Proplist::new();
                p.set_str("application.name", "tester").unwrap();
                w.put_proplist(&p);
            }),
        );
        let mut r = expect_reply(&b, 1);
        assert_eq!(r.get_u32().unwrap(), s.client_index());
        r.finish().unwrap();
        s
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(0xC000_0023), 35);
        assert_eq!(negotiate(40), 35);
        assert_eq!(negotiate(0x8000_0014), 20);
        assert_eq!(negotiate(12), 12);
        assert_eq!(negotiate(0x8000_0008), 8);
    }

    /// A server that does (or, with `shm == false`, does not) offer SHM.
    fn server_with_shm(shm: bool) -> Arc<Server> {
        let mut srv = server();
        Arc::get_mut(&mut srv).expect("not shared yet").shm = shm;
        srv
    }

    #[test]
    fn auth_reply_without_shm_is_the_bare_version() {
        let srv = server_with_shm(false);
        let mut s = Session::new(srv.clone(), srv.uid, waker());
        let b = call(&mut s, &auth_packet(0xC000_0023));
        let mut r = expect_reply(&b, 0);
        assert_eq!(r.get_u32().unwrap(), 35);
        r.finish().unwrap();
        assert_eq!(s.version(), Some(35));
        assert!(!s.shm_negotiated());
        assert_eq!(s.shm_stats(), None);
    }

    #[test]
    fn auth_frame_bytes() {
        // Appendix A's AUTH reply: version 35 with SHM and memfd offered.
        let mut s = session();
        let mut out = Vec::new();
        s.handle_frame(Frame::Packet(auth_packet(0xC000_0023)), &mut out)
            .unwrap();
        let mut want = srb_pulse::hex("0000000f ffffffff 00000000 00000000 00000000");
        want.extend(srb_pulse::hex("4c 00000002 4c 00000000 4c c0000023"));
        assert_eq!(out, want);
        assert!(s.shm_negotiated());
    }

    #[test]
    fn offer_shm_for_every_combination() {
        let ours = 1000;
        let addr: std::net::SocketAddr = "127.0.0.1:4713".parse().unwrap();
        let peers = [
            ("same uid", Peer::Unix { uid: ours }, true),
            ("other uid", Peer::Unix { uid: ours + 1 }, false),
            ("root", Peer::Unix { uid: 0 }, false),
            ("tcp", Peer::Tcp { addr, cookie: None }, false),
        ];
        for flags in [0, AUTH_SHM, AUTH_MEMFD, AUTH_SHM | AUTH_MEMFD] {
            for client_version in [13, 30, 31, 32, 33, 35, 36, 0xFFFF] {
                let raw = flags | client_version;
                let negotiated = negotiate(raw);
                for (what, peer, same_user) in &peers {
                    for allowed in [false, true] {
                        let want = allowed
                            && flags == AUTH_SHM | AUTH_MEMFD
                            && negotiated >= 32
                            && *same_user;
                        assert_eq!(
                            offer_shm(raw, negotiated, peer, ours, allowed),
                            want,
                            "flags {flags:#x} version {client_version} peer {what} allowed {allowed}"
                        );
                    }
                }
            }
        }
        // A root server offers SHM to root clients.
        assert!(offer_shm(0xC000_0023, 35, &Peer::Unix { uid: 0 }, 0, true));
    }

    #[test]
    fn auth_reply_flags_follow_the_policy() {
        for allowed in [false, true] {
            for flags in [0, AUTH_SHM, AUTH_MEMFD, AUTH_SHM | AUTH_MEMFD] {
                for version in [31, 32, 35] {
                    let srv = server_with_shm(allowed);
                    let mut s = Session::new(srv.clone(), srv.uid, waker());
                    let b = call(&mut s, &auth_packet(flags | version));
                    let mut r = expect_reply(&b, 0);
                    let got = r.get_u32().unwrap();
                    r.finish().unwrap();
                    let offered = allowed && flags == AUTH_SHM | AUTH_MEMFD && version >= 32;
                    let want = if offered {
                        version | AUTH_SHM | AUTH_MEMFD
                    } else {
                        version
                    };
                    assert_eq!(
                        got, want,
                        "allowed {allowed} flags {flags:#x} version {version}"
                    );
                    assert_eq!(s.shm_negotiated(), offered);
                }
            }
        }
        // A TCP client never gets SHM, whatever it asks for.
        let srv = server();
        let peer = Peer::Tcp {
            addr: "127.0.0.1:4713".parse().unwrap(),
            cookie: None,
        };
        let mut s = Session::with_peer(srv, peer, waker());
        let b = call(&mut s, &auth_packet(0xC000_0023));
        assert_eq!(expect_reply(&b, 0).get_u32().unwrap(), 35);
        assert!(!s.shm_negotiated());
    }

    #[test]
    fn old_client_gets_version_error() {
        let mut s = session();
        expect_error(&call(&mut s, &auth_packet(12)), 0, PaError::Version);
        assert_eq!(s.version(), None);
    }

    #[test]
    fn other_user_gets_access_error() {
        let srv = server();
        let other = if srv.uid == 4242 { 4243 } else { 4242 };
        let mut s = Session::new(srv, other, waker());
        expect_error(&call(&mut s, &auth_packet(35)), 0, PaError::Access);
    }

    #[test]
    fn commands_before_auth_are_refused() {
        let mut s = session();
        let p = packet(Command::GetServerInfo as u32, 3, |_| {});
        expect_error(&call(&mut s, &p), 3, PaError::Access);
    }

    #[test]
    fn bad_cookie_length_is_a_protocol_error() {
        let mut s = session();
        let p = packet(Command::Auth as u32, 0, |w| {
            w.put_u32(35).put_arbitrary(&[0; 16]);
        });
        assert!(matches!(s.handle_packet(&p), Err(ConnError::Packet(_))));
    }

    #[test]
    fn short_packet_is_a_protocol_error() {
        let mut s = session();
        assert!(matches!(
            s.handle_packet(&[b'L', 0, 0, 0]),
            Err(ConnError::Packet(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_a_protocol_error() {
        let mut s = ready(35);
        let p = packet(Command::GetServerInfo as u32, 2, |w| {
            w.put_u32(1);
        });
        assert!(matches!(s.handle_packet(&p), Err(ConnError::Packet(_))));
    }

    #[test]
    fn server_info_after_ready() {
        let mut s = ready(35);
        let b = call(&mut s, &packet(Command::GetServerInfo as u32, 2, |_| {}));
        let mut r = expect_reply(&b, 2);
        assert_eq!(r.get_string().unwrap(), Some("srbd"));
    }

    #[test]
    fn unknown_and_unsupported_commands_get_errors() {
        let mut s = ready(35);
        expect_error(&call(&mut s, &packet(200, 5, |_| {})), 5, PaError::Command);
        let p = packet(Command::LoadModule as u32, 6, |w| {
            w.put_string(Some("module-null-sink")).put_string(None);
        });
        expect_error(&call(&mut s, &p), 6, PaError::NotSupported);
        let p = packet(Command::EnableSrbchannel as u32, NO_TAG, |_| {});
        assert!(s.handle_packet(&p).unwrap().is_none());
        let p = packet(Command::Auth as u32, 7, |w| {
            w.put_u32(35).put_arbitrary(&[0; COOKIE_LEN]);
        });
        expect_error(&call(&mut s, &p), 7, PaError::BadState);
    }

    #[test]
    fn sink_and_source_queries() {
        let mut s = ready(35);
        let q = |cmd: Command, tag, index: u32, name: Option<&str>| {
            packet(cmd as u32, tag, |w| {
                w.put_u32(index).put_string(name);
            })
        };
        let b = call(
            &mut s,
            &q(Command::GetSinkInfo, 2, INVALID_INDEX, Some("srb_output")),
        );
        let mut r = expect_reply(&b, 2);
        assert_eq!(r.get_u32().unwrap(), 0);
        assert_eq!(r.get_string().unwrap(), Some("srb_output"));
        let b = call(&mut s, &q(Command::GetSourceInfo, 3, 0, None));
        let mut r = expect_reply(&b, 3);
        r.get_u32().unwrap();
        assert_eq!(r.get_string().unwrap(), Some("srb_output.monitor"));
        let b = call(&mut s, &q(Command::GetSinkInfo, 4, 9, None));
        expect_error(&b, 4, PaError::NoEntity);
        let b = call(&mut s, &q(Command::GetSinkInfo, 5, 0, Some("srb_output")));
        expect_error(&b, 5, PaError::Invalid);
        let b = call(
            &mut s,
            &packet(Command::LookupSource as u32, 6, |w| {
                w.put_string(Some("@DEFAULT_MONITOR@"));
            }),
        );
        let mut r = expect_reply(&b, 6);
        assert_eq!(r.get_u32().unwrap(), 0);
        r.finish().unwrap();
        let b = call(
            &mut s,
            &packet(Command::LookupSink as u32, 7, |w| {
                w.put_string(Some("nope"));
            }),
        );
        expect_error(&b, 7, PaError::NoEntity);
    }

    /// A v35 CREATE_PLAYBACK_STREAM body as pacat sends it, with `spec`.
    fn create_playback(tag: u32, format: u8, channels: u8, rate: u32, map: &[u8]) -> Vec<u8> {
        use srb_pulse::tagstruct::{CVolume, ChannelMap, SampleSpec};
        packet(Command::CreatePlaybackStream as u32, tag, |w| {
            w.put_sample_spec(&SampleSpec {
                format,
                channels,
                rate,
            })
            .put_channel_map(&ChannelMap::new(map).unwrap())
            .put_u32(INVALID_INDEX)
            .put_string(None)
            .put_u32(INVALID_INDEX)
            .put_bool(false)
            .put_u32(INVALID_INDEX)
            .put_u32(INVALID_INDEX)
            .put_u32(INVALID_INDEX)
            .put_u32(0)
            .put_cvolume(&CVolume::new(&vec![0x10000; usize::from(channels)]).unwrap());
            for _ in 0..7 {
                w.put_bool(false);
            }
            w.put_bool(false)
                .put_bool(false)
                .put_proplist(&Proplist::new());
            w.put_bool(false).put_bool(false);
            w.put_bool(false).put_bool(false).put_bool(false);
            w.put_bool(false).put_bool(false).put_u8(0);
        })
    }

    #[test]
    fn playback_stream_lifecycle_and_errors() {
        let mut s = ready(35);
        let b = call(&mut s, &create_playback(2, 3, 2, 44_100, &[1, 2]));
        let mut r = expect_reply(&b, 2);
        let channel = r.get_u32().unwrap();
        let index = r.get_u32().unwrap();
        assert_eq!(r.get_u32().unwrap(), 352_800, "missing = tlength");
        assert_eq!(
            [
                r.get_u32().unwrap(),
                r.get_u32().unwrap(),
                r.get_u32().unwrap(),
                r.get_u32().unwrap()
            ],
            [4_194_304, 352_800, 349_276, 3528]
        );
        let ss = r.get_sample_spec().unwrap();
        assert_eq!((ss.format, ss.channels, ss.rate), (3, 2, 44_100));
        assert_eq!(r.get_channel_map().unwrap().positions(), &[1, 2]);
        assert_eq!(r.get_u32().unwrap(), 0);
        assert_eq!(r.get_string().unwrap(), Some("srb_output"));
        assert!(!r.get_bool().unwrap());
        r.get_usec().unwrap();
        r.get_format_info().unwrap();
        r.finish().unwrap();
        assert_eq!(s.server.registry.sink_inputs()[0].0, index);
        // Bad specs are refused with INVALID and create nothing.
        for (tag, (f, c, rate, map)) in [
            (99u8, 2u8, 44_100u32, &[1u8, 2][..]),
            (3, 2, 0, &[1, 2]),
            (3, 2, 44_100, &[0]),
            (3, 33, 44_100, &[1, 2]),
        ]
        .into_iter()
        .enumerate()
        {
            let tag = 10 + tag as u32;
            let p = if c > 32 {
                // A cvolume of 33 channels cannot be built; send 2 with a
                // spec that claims 33.
                let mut p = create_playback(tag, f, 2, rate, map);
                // The spec's channel byte sits after 'a' and the format.
                let at = p.iter().position(|&b| b == b'a').unwrap();
                p[at + 2] = c;
                p
            } else {
                create_playback(tag, f, c, rate, map)
            };
            expect_error(&call(&mut s, &p), tag, PaError::Invalid);
        }
        assert_eq!(s.server.registry.sink_inputs().len(), 1);
        // Another channel id is nobody's: NOENTITY.
        let p = packet(Command::DrainPlaybackStream as u32, 20, |w| {
            w.put_u32(channel + 1);
        });
        expect_error(&call(&mut s, &p), 20, PaError::NoEntity);
        // Trailing bytes after a valid request close the connection.
        let mut p = create_playback(21, 3, 2, 44_100, &[1, 2]);
        p.extend_from_slice(&[b'L', 0, 0, 0, 1]);
        assert!(matches!(s.handle_packet(&p), Err(ConnError::Packet(_))));
        let p = packet(Command::DeletePlaybackStream as u32, 22, |w| {
            w.put_u32(channel);
        });
        expect_reply(&call(&mut s, &p), 22).finish().unwrap();
        assert!(s.server.registry.sink_inputs().is_empty());
    }

    #[test]
    fn stream_limit_is_toolarge() {
        let mut s = ready(35);
        for tag in 0..crate::control::streams::MAX_STREAMS as u32 {
            let b = call(&mut s, &create_playback(tag + 2, 5, 1, 48_000, &[0]));
            expect_reply(&b, tag + 2);
        }
        let b = call(&mut s, &create_playback(99, 5, 1, 48_000, &[0]));
        expect_error(&b, 99, PaError::TooLarge);
        drop(s);
    }

    #[test]
    fn sink_input_volume_and_subscribe_events() {
        use srb_pulse::tagstruct::CVolume;
        let mut s = ready(35);
        let b = call(
            &mut s,
            &packet(Command::Subscribe as u32, 2, |w| {
                w.put_u32(1 << 2);
            }),
        );
        expect_reply(&b, 2);
        let b = call(&mut s, &create_playback(3, 3, 2, 48_000, &[1, 2]));
        let mut r = expect_reply(&b, 3);
        r.get_u32().unwrap();
        let index = r.get_u32().unwrap();
        let set = |tag, channels: usize| {
            packet(Command::SetSinkInputVolume as u32, tag, |w| {
                w.put_u32(index)
                    .put_cvolume(&CVolume::new(&vec![52_016; channels]).unwrap());
            })
        };
        expect_reply(&call(&mut s, &set(4, 2)), 4);
        expect_error(&call(&mut s, &set(5, 3)), 5, PaError::Invalid);
        let (_, si) = &s.server.registry.sink_inputs()[0];
        let g = si.shared.gains.get(0);
        assert!((g - 0.5).abs() < 1e-4, "{g}");
        let mut out = Vec::new();
        s.poll_streams(&mut out).unwrap();
        let mut d = FrameDecoder::new(MAX_FRAME_PAYLOAD);
        d.push(&out);
        let mut events = Vec::new();
        while let Some(Frame::Packet(p)) = d.next_frame().unwrap() {
            let mut r = TagReader::new(&p);
            if r.get_u32().unwrap() == Command::SubscribeEvent as u32 {
                r.get_u32().unwrap();
                events.push((r.get_u32().unwrap(), r.get_u32().unwrap()));
            }
        }
        assert_eq!(events, vec![(0x02, index), (0x12, index)]);
    }

    #[test]
    fn empty_lists_stat_subscribe_and_clients() {
        let mut s = ready(35);
        for (i, cmd) in [Command::GetModuleInfoList, Command::GetCardInfoList]
            .into_iter()
            .enumerate()
        {
            let tag = 10 + i as u32;
            let b = call(&mut s, &packet(cmd as u32, tag, |_| {}));
            expect_reply(&b, tag).finish().unwrap();
        }
        let b = call(&mut s, &packet(Command::Stat as u32, 20, |_| {}));
        let mut r = expect_reply(&b, 20);
        for _ in 0..5 {
            r.get_u32().unwrap();
        }
        r.finish().unwrap();
        let b = call(
            &mut s,
            &packet(Command::Subscribe as u32, 21, |w| {
                w.put_u32(0x02ff);
            }),
        );
        expect_reply(&b, 21).finish().unwrap();
        let b = call(
            &mut s,
            &packet(Command::GetClientInfoList as u32, 22, |_| {}),
        );
        let mut r = expect_reply(&b, 22);
        assert_eq!(r.get_u32().unwrap(), s.client_index());
        assert_eq!(r.get_string().unwrap(), Some("tester"));
        r.get_u32().unwrap();
        r.get_string().unwrap();
        r.get_proplist().unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn dropped_session_is_unlisted() {
        let srv = server();
        let s = Session::new(srv.clone(), srv.uid, waker());
        assert_eq!(srv.clients().len(), 1);
        drop(s);
        assert!(srv.clients().is_empty());
    }

    #[test]
    fn oversized_client_proplist_is_refused_and_not_stored() {
        let mut s = ready(35);
        let mut p = Proplist::new();
        p.set("a.big", &[b'x'; 40 * 1024]).unwrap();
        p.set("b.big", &[b'y'; 40 * 1024]).unwrap();
        let b = call(
            &mut s,
            &packet(Command::SetClientName as u32, 9, |w| {
                w.put_proplist(&p);
            }),
        );
        expect_error(&b, 9, PaError::TooLarge);
        let clients = s.server.clients();
        let (_, props) = clients
            .iter()
            .find(|(i, _)| *i == s.client_index())
            .unwrap();
        assert_eq!(props.get_str("application.name"), Some("tester"));
        assert!(props.get("a.big").is_none());
        // Just under the cap is still accepted.
        let mut p = Proplist::new();
        p.set("a.big", &[b'x'; 60 * 1024]).unwrap();
        let b = call(
            &mut s,
            &packet(Command::SetClientName as u32, 10, |w| {
                w.put_proplist(&p);
            }),
        );
        expect_reply(&b, 10);
    }

    #[test]
    fn replies_to_a_burst_of_requests_are_flushed_in_bounded_chunks() {
        let mut s = ready(35);
        let mut decoder = FrameDecoder::new(MAX_FRAME_PAYLOAD);
        let req = Frame::Packet(packet(Command::GetSinkInfoList as u32, 2, |_| {}))
            .encode()
            .unwrap();
        let count = 64 * 1024 / req.len();
        for _ in 0..count {
            decoder.push(&req);
        }
        let mut one = Vec::new();
        s.handle_frame(Frame::Packet(req[DESCRIPTOR_LEN..].to_vec()), &mut one)
            .unwrap();
        let mut chunks = Vec::new();
        let mut out = Vec::new();
        handle_frames(&mut decoder, &mut s, &mut out, |b| {
            chunks.push(b.len());
            Ok(())
        })
        .unwrap();
        assert!(out.is_empty());
        assert!(chunks.len() > 1, "{chunks:?}");
        assert!(chunks.iter().all(|&c| c < OUT_FLUSH_AT + one.len()));
        assert_eq!(chunks.iter().sum::<usize>(), count * one.len());
    }

    fn limits(auth: Duration, frame: Duration) -> Limits {
        Limits { auth, frame }
    }

    /// Runs a connection loop on a unix socketpair end in a thread.
    fn spawn_unix(
        b: std::os::unix::net::UnixStream,
        srv: Arc<Server>,
        l: Limits,
    ) -> std::thread::JoinHandle<Result<(), ConnError>> {
        let mut t = Transport::Unix(ScmStream::new(b.into()).unwrap());
        let mut session = Session::new(srv.clone(), srv.uid, waker());
        std::thread::spawn(move || {
            let mut ob = Outbound::new(t.socket(), SEND_TIMEOUT);
            run(&mut t, &mut session, &mut ob, &srv, l)
        })
    }

    #[test]
    fn auth_deadline_holds_for_a_client_that_keeps_sending() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = server();
        // The deadline has passed by the first wake-up.
        let t = spawn_unix(b, srv, limits(Duration::ZERO, FRAME_TIMEOUT));
        use std::io::{Read, Write};
        let mut a = a;
        let p = Frame::Packet(packet(Command::GetServerInfo as u32, 3, |_| {}))
            .encode()
            .unwrap();
        // A write may fail once the server has closed; that is the point.
        let _ = a.write_all(&p);
        let mut got = Vec::new();
        if let Err(e) = a.read_to_end(&mut got) {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        }
        assert!(got.is_empty(), "no ERROR reply past the deadline: {got:?}");
        assert!(matches!(t.join().unwrap(), Err(ConnError::AuthTimeout(_))));
    }

    #[test]
    fn garbage_frame_closes_the_connection() {
        use std::io::Write;
        // A frame with SHM flags on a connection without SHM: refused, on
        // the fd-aware (unix) and the plain (TCP) input alike.
        let garbage = [
            0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 1, 2, 3, 4,
        ];
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = spawn_unix(b, server(), limits(AUTH_TIMEOUT, FRAME_TIMEOUT));
        a.write_all(&garbage).unwrap();
        assert!(matches!(t.join().unwrap(), Err(ConnError::Frame(_))));

        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = server();
        let mut session = Session::new(srv.clone(), srv.uid, waker());
        let mut plain = Transport::Tcp(Arc::new(b.into()));
        let l = limits(AUTH_TIMEOUT, FRAME_TIMEOUT);
        let t = std::thread::spawn(move || {
            let mut ob = Outbound::new(plain.socket(), SEND_TIMEOUT);
            run(&mut plain, &mut session, &mut ob, &srv, l)
        });
        a.write_all(&garbage).unwrap();
        assert!(matches!(t.join().unwrap(), Err(ConnError::Frame(_))));
    }

    #[test]
    fn a_client_that_stops_mid_frame_is_closed() {
        use std::io::Write;
        for cut in [7, DESCRIPTOR_LEN, DESCRIPTOR_LEN + 3] {
            let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let t = spawn_unix(
                b,
                server(),
                limits(AUTH_TIMEOUT, Duration::from_millis(200)),
            );
            let frame = Frame::Packet(auth_packet(0xC000_0023)).encode().unwrap();
            a.write_all(&frame[..cut]).unwrap();
            // The client keeps its end open and sends nothing more.
            let r = t.join().unwrap();
            assert!(
                matches!(r, Err(ConnError::FrameStalled { buffered, .. }) if buffered == cut
                    || (cut == DESCRIPTOR_LEN && buffered == 0)
                    || (cut > DESCRIPTOR_LEN && buffered == cut - DESCRIPTOR_LEN)),
                "cut at {cut}: {r:?}"
            );
            drop(a);
        }
        // Cut short and closed: Truncated.
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = spawn_unix(b, server(), limits(AUTH_TIMEOUT, FRAME_TIMEOUT));
        a.write_all(&[0, 0, 0, 9]).unwrap();
        drop(a);
        assert!(matches!(t.join().unwrap(), Err(ConnError::Truncated(4))));
    }

    /// A client end of a socketpair speaking with fds.
    struct FdClient {
        s: ScmStream,
        decoder: FrameDecoder,
        /// The fds that came with the last frame (as libpulse attributes
        /// them: the reads never cross a frame boundary).
        fds: Vec<OwnedFd>,
    }

    impl FdClient {
        fn send(&self, frame: &Frame, fds: &[std::os::fd::BorrowedFd<'_>]) {
            self.s.send(&frame.encode().unwrap(), fds, false).unwrap();
        }

        /// The next frame from the server (`None`: closed).
        fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = self.decoder.next_frame().unwrap() {
                    self.fds = self.s.take_queued();
                    return Some(f);
                }
                let mut buf = [0u8; 4096];
                let n = self.decoder.wanted().min(buf.len());
                match self
                    .s
                    .recv_exact(&mut buf[..n], Some(Duration::from_secs(20)))
                {
                    Ok(()) => self.decoder.push(&buf[..n]),
                    Err(srb_linux::scm::RecvError::PeerGone) => return None,
                    Err(e) => panic!("{e}"),
                }
            }
        }

        /// The reply (or error) packet for `tag`, skipping notifications.
        fn answer(&mut self, tag: u32) -> Option<Vec<u8>> {
            loop {
                match self.next()? {
                    Frame::Packet(p) => {
                        let mut r = TagReader::new(&p);
                        r.get_u32().unwrap();
                        if r.get_u32().unwrap() == tag {
                            return Some(p);
                        }
                    }
                    _ => continue,
                }
            }
        }
    }

    fn fd_client(srv: Arc<Server>) -> (FdClient, std::thread::JoinHandle<Result<(), ConnError>>) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = spawn_unix(b, srv, limits(AUTH_TIMEOUT, FRAME_TIMEOUT));
        let mut decoder = FrameDecoder::new(MAX_FRAME_PAYLOAD);
        decoder.set_shm_enabled(true);
        let c = FdClient {
            s: ScmStream::new(a.into()).unwrap(),
            decoder,
            fds: Vec::new(),
        };
        (c, t)
    }

    /// The fds that came with the next frame, which must be `want`.
    fn expect_frame_fds(c: &mut FdClient, want: &str) -> (Frame, Vec<OwnedFd>) {
        let f = c.next().unwrap_or_else(|| panic!("closed before {want}"));
        (f, std::mem::take(&mut c.fds))
    }

    #[test]
    fn srbchannel_is_offered_after_the_auth_reply_and_switched_on_by_the_ack() {
        let (mut c, t) = fd_client(server());
        c.send(&Frame::Packet(auth_packet(0xC000_0023)), &[]);
        // AUTH reply, no fds.
        let (f, fds) = expect_frame_fds(&mut c, "the AUTH reply");
        assert!(matches!(f, Frame::Packet(_)) && fds.is_empty());
        // REGISTER_MEMFD_SHMID with exactly the memfd.
        let (f, fds) = expect_frame_fds(&mut c, "REGISTER_MEMFD_SHMID");
        let Frame::Packet(p) = f else { panic!("{f:?}") };
        let mut r = TagReader::new(&p);
        assert_eq!(r.get_u32().unwrap(), Command::RegisterMemfdShmid as u32);
        assert_eq!(r.get_u32().unwrap(), NO_TAG);
        assert_eq!(fds.len(), 1);
        assert_eq!(
            srb_linux::fdkind::classify(fds[0].as_fd()).unwrap(),
            srb_linux::fdkind::FdKind::Memfd
        );
        // ENABLE_SRBCHANNEL with fd0 and fd1.
        let (f, fds) = expect_frame_fds(&mut c, "ENABLE_SRBCHANNEL");
        let Frame::Packet(p) = f else { panic!("{f:?}") };
        let mut r = TagReader::new(&p);
        assert_eq!(r.get_u32().unwrap(), Command::EnableSrbchannel as u32);
        let tag = r.get_u32().unwrap();
        r.finish().unwrap();
        assert_eq!(fds.len(), 2);
        // The writable ring block, next, without fds.
        let (f, fds) = expect_frame_fds(&mut c, "the ring block reference");
        assert!(fds.is_empty());
        assert!(
            matches!(
                f,
                Frame::ShmRef(srb_pulse::pstream::ShmRefFrame {
                    channel: 0,
                    memfd: true,
                    writable: true,
                    ..
                })
            ),
            "{f:?}"
        );
        // An ack with the wrong tag closes the connection with a named error.
        let wrong = TagWriter::command(Command::EnableSrbchannel as u32, tag ^ 1);
        c.send(&Frame::Packet(wrong.into_bytes()), &[]);
        assert!(c.next().is_none(), "closed after a wrong ack");
        assert!(matches!(
            t.join().unwrap(),
            Err(ConnError::Srb(SrbError::UnexpectedAck { tag: t })) if t == tag ^ 1
        ));
    }

    #[test]
    fn srbchannel_off_sends_no_offer() {
        let mut srv = server();
        Arc::get_mut(&mut srv).expect("not shared yet").srbchannel = false;
        let (mut c, t) = fd_client(srv);
        c.send(&Frame::Packet(auth_packet(0xC000_0023)), &[]);
        let (f, fds) = expect_frame_fds(&mut c, "the AUTH reply");
        assert!(matches!(f, Frame::Packet(_)) && fds.is_empty());
        // An ack to nothing is an error too.
        let ack = TagWriter::command(Command::EnableSrbchannel as u32, 5);
        c.send(&Frame::Packet(ack.into_bytes()), &[]);
        assert!(c.next().is_none(), "closed after an unsolicited ack");
        assert!(matches!(
            t.join().unwrap(),
            Err(ConnError::Srb(SrbError::UnexpectedAck { tag: 5 }))
        ));
    }

    #[test]
    fn fds_reach_their_frame_and_unclaimed_ones_are_closed() {
        use srb_pulse::pstream::{ShmRef, ShmRefFrame};
        let (mut c, t) = fd_client(server());
        c.send(&Frame::Packet(auth_packet(0xC000_0023)), &[]);
        let p = c.answer(0).unwrap();
        assert_eq!(expect_reply(&p, 0).get_u32().unwrap(), 0xC000_0023);
        // A pipe's write end on GET_SERVER_INFO: answered, and the fd is
        // closed (our read end then sees EOF).
        let (rd, wr) = nonblocking_pipe();
        let q = Frame::Packet(packet(Command::GetServerInfo as u32, 1, |_| {}));
        c.send(&q, &[wr.as_fd()]);
        drop(wr);
        expect_reply(&c.answer(1).unwrap(), 1);
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&rd, &mut b), Ok(0), "unclaimed fd closed");
        // The pool memfd on REGISTER_MEMFD_SHMID, sent after an unrelated
        // frame in the same byte stream: attributed to REGISTER only.
        let pool = srb_linux::memfd::create_unsealed_memfd("pool", 65536).unwrap();
        rustix::io::pwrite(&pool, &f32_block(0.5, 16), 64).unwrap();
        let reg = Frame::Packet(packet(Command::RegisterMemfdShmid as u32, NO_TAG, |w| {
            w.put_u32(0x4c2e_67d8);
        }));
        c.send(&q, &[]);
        c.send(&reg, &[pool.as_fd()]);
        c.send(&Frame::Packet(set_name(2)), &[]);
        expect_reply(&c.answer(1).unwrap(), 1);
        expect_reply(&c.answer(2).unwrap(), 2);
        c.send(
            &Frame::Packet(create_playback(3, 5, 2, 48_000, &[1, 2])),
            &[],
        );
        let p = c.answer(3).unwrap();
        let channel = expect_reply(&p, 3).get_u32().unwrap();
        c.send(
            &Frame::ShmRef(ShmRefFrame {
                channel,
                memfd: true,
                shm: ShmRef {
                    block_id: 77,
                    shm_id: 0x4c2e_67d8,
                    index: 64,
                    length: 128,
                },
                ..ShmRefFrame::default()
            }),
            &[],
        );
        loop {
            match c.next().expect("a RELEASE") {
                Frame::Release { block_id } => {
                    assert_eq!(block_id, 77);
                    break;
                }
                Frame::Packet(_) => {}
                other => panic!("{other:?}"),
            }
        }
        drop(c);
        assert!(matches!(t.join().unwrap(), Ok(())));
    }

    #[test]
    fn msg_ctrunc_closes_the_connection() {
        let (c, t) = fd_client(server());
        let q = Frame::Packet(auth_packet(35)).encode().unwrap();
        let e: Vec<OwnedFd> = (0..3)
            .map(|_| rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap())
            .collect();
        let fds: Vec<_> = e.iter().map(|f| f.as_fd()).collect();
        // Three fds in one message: more than the receive buffer holds.
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            c.s.socket(),
            &[rustix::io::IoSlice::new(&q)],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )
        .unwrap();
        let r = t.join().unwrap();
        assert!(
            matches!(r, Err(ConnError::Recv(RecvError::Truncated { .. }))),
            "{r:?}"
        );
    }

    /// A pipe whose read end does not block: a read sees EOF (`Ok(0)`)
    /// once every write end is closed, `EAGAIN` while one is still open.
    fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
        use rustix::pipe::{pipe_with, PipeFlags};
        pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap()
    }

    fn f32_block(v: f32, samples: usize) -> Vec<u8> {
        std::iter::repeat_n(v.to_le_bytes(), samples)
            .flatten()
            .collect()
    }

    fn set_name(tag: u32) -> Vec<u8> {
        packet(Command::SetClientName as u32, tag, |w| {
            let mut p = Proplist::new();
            p.set_str("application.name", "tester").unwrap();
            w.put_proplist(&p);
        })
    }

    fn register(shm_id: u32) -> Frame {
        Frame::Packet(packet(Command::RegisterMemfdShmid as u32, NO_TAG, |w| {
            w.put_u32(shm_id);
        }))
    }

    fn memfd(len: u64) -> OwnedFd {
        srb_linux::memfd::create_unsealed_memfd("pool", len).unwrap()
    }

    #[test]
    fn register_memfd_shmid_in_the_session() {
        let mut out = Vec::new();
        // Not negotiated: a named error.
        let srv = server_with_shm(false);
        let mut s = Session::new(srv.clone(), srv.uid, waker());
        call(&mut s, &auth_packet(0xC000_0023));
        let r = s.handle_frame_with_fds(register(1), vec![memfd(64)], &mut out);
        assert!(
            matches!(r, Err(ConnError::Shm(ShmError::NotNegotiated))),
            "{r:?}"
        );
        // Negotiated: a pipe is refused by kind.
        let mut s = ready_shm();
        let (rd, _wr) = rustix::pipe::pipe().unwrap();
        let e = s
            .handle_frame_with_fds(register(1), vec![rd], &mut out)
            .unwrap_err();
        assert!(
            e.to_string().contains("expected a memfd, got a pipe"),
            "{e}"
        );
        // No fd, two fds.
        let mut s = ready_shm();
        let r = s.handle_frame_with_fds(register(1), vec![], &mut out);
        assert!(matches!(
            r,
            Err(ConnError::Shm(ShmError::FdCount { got: 0, .. }))
        ));
        let r = s.handle_frame_with_fds(register(1), vec![memfd(64), memfd(64)], &mut out);
        assert!(matches!(
            r,
            Err(ConnError::Shm(ShmError::FdCount { got: 2, .. }))
        ));
        // Sixteen are fine, the same id again or a 17th are not.
        let mut s = ready_shm();
        for id in 0..16 {
            s.handle_frame_with_fds(register(id), vec![memfd(64)], &mut out)
                .unwrap();
        }
        assert_eq!(s.shm_stats().unwrap().segments, 16);
        let r = s.handle_frame_with_fds(register(5), vec![memfd(64)], &mut out);
        assert!(matches!(
            r,
            Err(ConnError::Shm(ShmError::Duplicate { shm_id: 5 }))
        ));
        let r = s.handle_frame_with_fds(register(16), vec![memfd(64)], &mut out);
        assert!(matches!(
            r,
            Err(ConnError::Shm(ShmError::TooManySegments { shm_id: 16 }))
        ));
        // Trailing bytes are a malformed packet.
        let p = packet(Command::RegisterMemfdShmid as u32, NO_TAG, |w| {
            w.put_u32(99).put_u32(0);
        });
        let r = s.handle_frame_with_fds(Frame::Packet(p), vec![memfd(64)], &mut out);
        assert!(matches!(r, Err(ConnError::Packet(_))));
        assert!(out.is_empty(), "REGISTER_MEMFD_SHMID has no reply");
    }

    #[test]
    fn shm_refs_feed_the_stream_and_are_released() {
        use srb_pulse::pstream::{ShmRef, ShmRefFrame};
        let mut s = ready_shm();
        let pool = memfd(65536);
        rustix::io::pwrite(&pool, &f32_block(0.25, 64), 64).unwrap();
        let peer = rustix::io::fcntl_dupfd_cloexec(&pool, 0).unwrap();
        let mut out = Vec::new();
        s.handle_frame_with_fds(register(9), vec![pool], &mut out)
            .unwrap();
        let b = call(&mut s, &create_playback(2, 5, 2, 48_000, &[1, 2]));
        let channel = expect_reply(&b, 2).get_u32().unwrap();
        let r = |block_id, shm_id, index, length| {
            Frame::ShmRef(ShmRefFrame {
                channel,
                memfd: true,
                shm: ShmRef {
                    block_id,
                    shm_id,
                    index,
                    length,
                },
                ..ShmRefFrame::default()
            })
        };
        s.handle_frame(r(1, 9, 64, 256), &mut out).unwrap();
        // The RELEASE is queued to go out with the next frames.
        assert!(out.is_empty());
        assert_eq!(s.releases.len(), 1);
        s.releases.flush(&mut out);
        let want = Frame::Release { block_id: 1 }.encode().unwrap();
        assert_eq!(out, want);
        assert_eq!(s.playbacks[&channel].written(), 256);
        assert_eq!(
            s.shm_stats(),
            Some(ShmStats {
                segments: 1,
                refs: 1,
                bytes: 256
            })
        );
        // A reference for a channel without a stream is released unread.
        out.clear();
        s.handle_frame(
            Frame::ShmRef(ShmRefFrame {
                channel: channel + 1,
                memfd: true,
                shm: ShmRef {
                    block_id: 2,
                    shm_id: 1234,
                    index: 0,
                    length: 8,
                },
                ..ShmRefFrame::default()
            }),
            &mut out,
        )
        .unwrap();
        s.releases.flush(&mut out);
        assert_eq!(out, Frame::Release { block_id: 2 }.encode().unwrap());
        // Every bad reference closes the connection with a named error.
        for (what, f) in [
            ("unknown id", r(3, 10, 64, 8)),
            ("out of bounds", r(3, 9, 65536 - 8, 16)),
            ("u32 overflow", r(3, 9, 0xFFFF_FF00, 0x200)),
            ("misaligned", r(3, 9, 64, 12)),
        ] {
            let mut s2 = ready_shm();
            let mut o = Vec::new();
            let dup = rustix::io::fcntl_dupfd_cloexec(&peer, 0).unwrap();
            s2.handle_frame_with_fds(register(9), vec![dup], &mut o)
                .unwrap();
            let b = call(&mut s2, &create_playback(2, 5, 2, 48_000, &[1, 2]));
            assert_eq!(expect_reply(&b, 2).get_u32().unwrap(), channel);
            let e = s2.handle_frame(f, &mut o);
            assert!(matches!(e, Err(ConnError::Shm(_))), "{what}: {e:?}");
            assert!(o.is_empty(), "{what}: nothing sent");
        }
        let mut posix = r(4, 9, 64, 8);
        if let Frame::ShmRef(f) = &mut posix {
            f.memfd = false;
        }
        assert!(matches!(
            s.handle_frame(posix, &mut out),
            Err(ConnError::Shm(ShmError::PosixRef { .. }))
        ));
        // The client shrinks its pool: a named error, no SIGBUS.
        rustix::fs::ftruncate(&peer, 4096).unwrap();
        let e = s.handle_frame(r(5, 9, 8192, 64), &mut out).unwrap_err();
        assert!(e.to_string().contains("pool shrank"), "{e}");
    }
}
