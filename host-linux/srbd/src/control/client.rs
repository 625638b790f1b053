//! One client connection on the control loop ([`Client`]): its socket,
//! the frame reassembly of the socket and of the srbchannel ring, its
//! [`Session`] and its [`Outbound`] queue, and how one round of serving it
//! goes ([`Client::serve`]).
//!
//! **Input.** A unix connection ([`Transport::Unix`]) is read with
//! `recvmsg` ([`ScmStream::try_recv`]) never past the end of the frame
//! being assembled ([`FrameDecoder::wanted`]): the kernel hands over fds
//! with the first read that touches the bytes they were sent with, so the
//! fds queued when a frame completes are exactly the ones sent with it
//! (§3.8). `MSG_CTRUNC` (more fds than a frame may carry) closes the
//! connection. TCP connections ([`Transport::Tcp`]) are read plainly and
//! never get SHM. One round reads at most one buffer's worth from each
//! input: the loop is level-triggered, so the rest is served next round,
//! after the other clients.
//!
//! **Deadlines.** A client not authorised [`AUTH_TIMEOUT`] after it
//! connected, or whose frame is not complete [`FRAME_TIMEOUT`] after its
//! first byte, is closed ([`DeadlineError`]); the loop's one timerfd
//! fires at [`Client::next_deadline`].
//!
//! **The srbchannel's semaphore.** Between rounds a client with a ring is
//! *parked* ([`Client::park`]): srbd counts as waiting on its semaphore, so
//! the client's next post writes fd0 and wakes the loop. A round starts by
//! ending that wait ([`Outbound::after_poll`]).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::control::outbound::{Outbound, SendError};
use crate::control::session::{
    HandleError, Peer, Session, AUTH_TIMEOUT, FRAME_TIMEOUT, MAX_FRAME_PAYLOAD,
};
use crate::control::srbchannel::SrbError;
use crate::engine::notice::Notice;
use crate::Server;
use srb_linux::scm::{RecvError, ScmStream};
use srb_pulse::pstream::{FrameDecoder, FrameError};

/// Encoded replies are handed to the outbound queue once this many bytes
/// are pending, so one read full of requests builds no larger buffer.
const OUT_FLUSH_AT: usize = 64 * 1024;
/// With more than this waiting to be sent, a client gets no more record
/// audio: it stays in its streams, which drop their oldest audio when
/// full, so a client that stops reading (Ctrl-Z on `parec`) is kept and
/// resumes, and only control output can fill the queue to its cap.
pub const RECORD_BACKLOG: usize = 256 * 1024;

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
    pub fn socket(&self) -> Arc<OwnedFd> {
        match self {
            Transport::Unix(s) => s.socket().clone(),
            Transport::Tcp(fd) => fd.clone(),
        }
    }
}

/// Bounds on how long a connection may take for things.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From accept to a successful AUTH.
    pub auth: Duration,
    /// From a frame's first byte to its last.
    pub frame: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            auth: AUTH_TIMEOUT,
            frame: FRAME_TIMEOUT,
        }
    }
}

/// Why reading a client's input failed; every variant closes it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The frame layer refused the stream.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer closed the socket in the middle of a frame.
    #[error("peer closed mid-frame ({0} bytes buffered)")]
    Truncated(usize),
    /// Receiving failed: `MSG_CTRUNC` (too many fds), too many fds queued,
    /// or a socket error.
    #[error("receive: {0}")]
    Recv(RecvError),
    /// A plain read failed (TCP).
    #[error("socket error: {0}")]
    Io(Errno),
    /// The srbchannel ring could not be read (a corrupt count).
    #[error("srbchannel: {0}")]
    Srb(#[from] SrbError),
    /// A frame was read and handling it failed.
    #[error(transparent)]
    Handle(#[from] HandleError),
}

/// A deadline the client missed.
#[derive(Debug, thiserror::Error)]
pub enum DeadlineError {
    /// No AUTH within the limit.
    #[error("not authorised within {0:?}")]
    AuthTimeout(Duration),
    /// A frame was started and not completed within the limit.
    #[error("frame not completed within {after:?} ({buffered} bytes buffered)")]
    FrameStalled {
        /// Bytes of the frame received.
        buffered: usize,
        /// The limit.
        after: Duration,
    },
}

/// Why a connection was closed (other than the client leaving).
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    /// Its input was refused.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Sending to it failed (it stopped reading, or is gone).
    #[error(transparent)]
    Send(#[from] SendError),
    /// It missed a deadline.
    #[error(transparent)]
    Deadline(#[from] DeadlineError),
    /// Serving it panicked (a bug): this client is closed, the others
    /// keep being served.
    #[error("internal error while serving this client: {0}")]
    Panicked(String),
}

impl From<HandleError> for CloseReason {
    fn from(e: HandleError) -> Self {
        CloseReason::Read(ReadError::Handle(e))
    }
}

impl From<SrbError> for CloseReason {
    fn from(e: SrbError) -> Self {
        CloseReason::Read(ReadError::Srb(e))
    }
}

/// What woke a client this round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events {
    /// The socket has input (or end of file).
    pub readable: bool,
    /// The socket has room again.
    pub writable: bool,
    /// The srbchannel's fd0 was posted.
    pub ring: bool,
}

impl Events {
    /// Both sets of events.
    pub fn merge(self, o: Events) -> Events {
        Events {
            readable: self.readable || o.readable,
            writable: self.writable || o.writable,
            ring: self.ring || o.ring,
        }
    }
}

/// A connection's input side (the socket's, or the srbchannel ring's):
/// the frame decoder and when the frame being assembled started.
#[derive(Debug)]
struct Input {
    decoder: FrameDecoder,
    frame_started: Option<Instant>,
}

/// One client on the control loop.
#[derive(Debug)]
pub struct Client {
    transport: Transport,
    session: Session,
    ob: Outbound,
    input: Input,
    ring_input: Input,
    started: Instant,
    limits: Limits,
    /// The ring's read budget ran out: serve again without sleeping.
    again: bool,
    /// When srbd last answered ring input.
    last_answer: Option<Instant>,
    /// The client's last ring input came within the spin window after
    /// srbd's answer: a client issuing requests back to back.
    spin: bool,
    out: Vec<u8>,
}

impl Client {
    /// A new connection; registers the client with the server.
    pub fn new(
        transport: Transport,
        peer: Peer,
        server: Arc<Server>,
        notice: Arc<Notice>,
        limits: Limits,
    ) -> Self {
        let ob = Outbound::new(transport.socket());
        Self {
            transport,
            session: Session::with_peer(server, peer, notice),
            ob,
            input: Input::new(false),
            // Frames from the srbchannel ring: their own reassembly
            // (§5.5), SHM frames allowed (the ring exists only for SHM
            // clients).
            ring_input: Input::new(true),
            started: Instant::now(),
            limits,
            again: false,
            last_answer: None,
            spin: false,
            out: Vec::new(),
        }
    }

    /// The protocol state.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The client's flag for the mixer and other clients.
    pub fn notice(&self) -> &Arc<Notice> {
        self.session.notice()
    }

    /// The socket, for the loop to watch.
    pub fn socket(&self) -> BorrowedFd<'_> {
        match &self.transport {
            Transport::Unix(s) => s.as_fd(),
            Transport::Tcp(fd) => fd.as_fd(),
        }
    }

    /// The srbchannel's fd0, once offered.
    pub fn ring_fd(&self) -> Option<BorrowedFd<'_>> {
        self.ob.wait_fd()
    }

    /// Whether output waits for the socket to become writable.
    pub fn wants_writable(&self) -> bool {
        self.ob.wants_writable()
    }

    /// Whether the client must be served again before the loop sleeps.
    pub fn again(&self) -> bool {
        self.again
    }

    /// Whether the loop should keep looking at this client's ring for a
    /// moment before it sleeps (see [`Client::serve`]).
    pub fn spinning(&self) -> bool {
        self.spin
    }

    /// Bytes the client's ring holds now.
    pub fn ring_available(&mut self) -> Result<usize, CloseReason> {
        Ok(self.ob.ring_available()?)
    }

    /// The earliest instant at which something is due for this client:
    /// its AUTH deadline, a stalled frame's, queued RELEASEs.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.input.deadline(self.limits.frame);
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                d = Some(d.map_or(x, |d| d.min(x)));
            }
        };
        take(self.ring_input.deadline(self.limits.frame));
        if self.session.version().is_none() {
            take(Some(self.started + self.limits.auth));
        }
        take(self.session.releases.due_in().map(|r| Instant::now() + r));
        d
    }

    fn check_deadlines(&self) -> Result<(), DeadlineError> {
        if self.session.version().is_none() && self.started.elapsed() >= self.limits.auth {
            return Err(DeadlineError::AuthTimeout(self.limits.auth));
        }
        self.input.check_stall(self.limits.frame)?;
        self.ring_input.check_stall(self.limits.frame)
    }

    /// One round: ends the semaphore wait, checks deadlines, reads what
    /// the socket and the ring hold (one buffer's worth each), handles the
    /// frames, collects what the streams and subscriptions have to say,
    /// and sends it all with one queue write (one ring write, one wake-up
    /// of the client). `Ok(false)`: the client closed the connection.
    pub fn serve(
        &mut self,
        ev: Events,
        scratch: &mut [u8],
        spin_window: Duration,
    ) -> Result<bool, CloseReason> {
        self.ob.after_poll(ev.ring)?;
        self.check_deadlines()?;
        if ev.readable {
            let open = match &mut self.transport {
                Transport::Unix(stream) => self.input.read_unix(
                    stream,
                    &mut self.session,
                    &mut self.ob,
                    &mut self.out,
                    scratch,
                )?,
                Transport::Tcp(sock) => {
                    let open = self.input.read_plain(
                        sock,
                        &mut self.session,
                        &mut self.ob,
                        &mut self.out,
                        scratch,
                    )?;
                    // A TCP client never gets an offer; an ack is an error.
                    self.ob.sync(&mut self.session, None, &mut self.out)?;
                    open
                }
            };
            if !open {
                return Ok(false);
            }
        }
        let (ring_frames, more) =
            self.ring_input
                .read_ring(&mut self.session, &mut self.ob, &mut self.out, scratch)?;
        if ring_frames > 0 {
            self.spin = self.last_answer.is_some_and(|t| t.elapsed() < spin_window);
        }
        // Record audio waits in its stream (and the oldest is dropped)
        // while the client has not read what it was sent.
        let audio_room = RECORD_BACKLOG.saturating_sub(self.ob.queued() + self.out.len());
        self.session.poll_streams(&mut self.out, audio_room)?;
        if !self.session.releases.is_empty()
            && (!self.out.is_empty() || self.session.releases.due_in() == Some(Duration::ZERO))
        {
            self.session.releases.flush(&mut self.out);
        }
        if !self.out.is_empty() {
            self.ob.send(&self.out)?;
            self.out.clear();
            if ring_frames > 0 {
                self.last_answer = Some(Instant::now());
            }
        }
        if self.ob.queued() > 0 {
            self.ob.flush()?;
        }
        self.again = more;
        Ok(true)
    }

    /// Before the loop sleeps: counts srbd as waiting on the client's
    /// semaphore. `Ok(false)`: the client posted, or data or space is
    /// waiting in its ring: serve it again instead.
    pub fn park(&mut self) -> Result<bool, CloseReason> {
        if self.again {
            return Ok(false);
        }
        self.spin = false;
        Ok(self.ob.before_poll()?)
    }

    /// Logs how the connection ended.
    pub fn log_end(&self, result: &Result<(), CloseReason>) {
        let index = self.session.client_index();
        let name = self.session.name().unwrap_or("-");
        let version = self.session.version().unwrap_or(0);
        let stats = self.session.shm_stats();
        let shm = stats.is_some();
        let shm_refs = stats.map_or(0, |s| s.refs);
        let shm_bytes = stats.map_or(0, |s| s.bytes);
        let srb = self.ob.srb_stats();
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
            Err(e) => tracing::warn!(
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
            ),
        }
    }
}

impl Input {
    /// An input whose decoder starts out accepting SHM frames or not.
    fn new(shm: bool) -> Self {
        let mut decoder = FrameDecoder::new(MAX_FRAME_PAYLOAD);
        decoder.set_shm_enabled(shm);
        Self {
            decoder,
            frame_started: None,
        }
    }

    /// When the frame being assembled times out.
    fn deadline(&self, limit: Duration) -> Option<Instant> {
        self.frame_started.map(|t| t + limit)
    }

    /// Fails once the frame being assembled is older than `limit`.
    fn check_stall(&self, limit: Duration) -> Result<(), DeadlineError> {
        match self.frame_started {
            Some(t) if t.elapsed() >= limit => Err(DeadlineError::FrameStalled {
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
        buf: &mut [u8],
    ) -> Result<bool, CloseReason> {
        let mut budget = buf.len();
        while budget > 0 {
            // After the frames were drained below, `wanted` is > 0.
            let want = self.decoder.wanted().clamp(1, budget);
            let n = match stream.try_recv(&mut buf[..want]) {
                Ok(None) => break,
                Ok(Some(n)) => n,
                Err(RecvError::PeerGone) if self.decoder.is_mid_frame() => {
                    return Err(ReadError::Truncated(self.decoder.buffered()).into())
                }
                Err(RecvError::PeerGone) => return Ok(false),
                Err(e) => return Err(ReadError::Recv(e).into()),
            };
            budget = budget.saturating_sub(n.max(1));
            self.decoder.push(&buf[..n]);
            let mut handled = 0;
            while let Some(frame) = self.decoder.next_frame().map_err(ReadError::from)? {
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
        // What is left in `out` goes with the round's one send.
        Ok(true)
    }

    /// Reads what the client's srbchannel ring holds (at most one
    /// buffer's worth) and handles each frame; such frames never carry
    /// fds. Returns how many frames were handled and whether the budget
    /// ran out (more may be waiting: serve again without sleeping).
    fn read_ring(
        &mut self,
        session: &mut Session,
        ob: &mut Outbound,
        out: &mut Vec<u8>,
        buf: &mut [u8],
    ) -> Result<(usize, bool), CloseReason> {
        if !ob.has_ring() {
            return Ok((0, false));
        }
        let mut frames = 0;
        let mut budget = buf.len();
        while budget > 0 {
            let n = ob.read_ring(&mut buf[..budget])?;
            if n == 0 {
                break;
            }
            budget -= n;
            self.decoder.push(&buf[..n]);
            let mut handled = 0;
            while let Some(frame) = self.decoder.next_frame().map_err(ReadError::from)? {
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

    /// Reads what the socket holds with one plain `read` (TCP: no fds)
    /// and handles every complete frame. `Ok(false)`: the client closed
    /// the connection between frames.
    fn read_plain(
        &mut self,
        fd: &OwnedFd,
        session: &mut Session,
        ob: &mut Outbound,
        out: &mut Vec<u8>,
        buf: &mut [u8],
    ) -> Result<bool, CloseReason> {
        let n = match rustix::io::read(fd, &mut *buf) {
            Ok(0) if self.decoder.is_mid_frame() => {
                return Err(ReadError::Truncated(self.decoder.buffered()).into())
            }
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(Errno::AGAIN | Errno::INTR) => return Ok(true),
            Err(e) => return Err(ReadError::Io(e).into()),
        };
        self.decoder.push(&buf[..n]);
        let mut handled = 0;
        while let Some(frame) = self.decoder.next_frame().map_err(ReadError::from)? {
            handled += 1;
            session.handle_frame(frame, out)?;
            self.decoder.set_shm_enabled(session.shm_negotiated());
            if out.len() >= OUT_FLUSH_AT {
                ob.send(out)?;
                out.clear();
            }
        }
        self.track(handled);
        Ok(true)
    }
}
