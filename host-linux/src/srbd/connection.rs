//! One client connection: the frame decoder, the AUTH → SET_CLIENT_NAME →
//! commands state machine ([`Session`], pure) and the blocking socket loop
//! around it ([`serve`]).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::commands::{Command, PaError, NO_TAG};
use super::playback::Playback;
use super::record::Record;
use super::server_info::PROTOCOL_VERSION;
use super::wake::Waker;
use super::Server;
#[cfg(test)]
use crate::pulse::pstream::DESCRIPTOR_LEN;
use crate::pulse::pstream::{Frame, FrameDecoder, FrameError, SeekMode};
use crate::pulse::tagstruct::{TagError, TagReader, TagWriter};

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
/// Largest frame payload accepted (libpulse sends audio in blocks of at
/// most 64 KiB; packets are small).
pub const MAX_FRAME_PAYLOAD: u32 = 1024 * 1024;
/// Largest SET_CLIENT_NAME packet whose proplist is kept. Every client's
/// proplist goes into each GET_CLIENT_INFO_LIST reply, so without a cap 64
/// clients could make that reply exceed the frame limit (failing every
/// asker) or cost each request tens of MiB. libpulse sends well under 4 KiB.
pub const MAX_CLIENT_PROPS: usize = 64 * 1024;
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
    /// Another socket error.
    #[error("socket error: {0}")]
    Io(Errno),
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

/// The per-client protocol state, without I/O: frames in, encoded reply
/// frames out.
#[derive(Debug)]
pub struct Session {
    pub(super) server: Arc<Server>,
    peer: Peer,
    pub(super) client_index: u32,
    version: Option<u32>,
    name: Option<String>,
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

    /// Handles one frame; appends the encoded frames to send to `out`.
    pub fn handle_frame(&mut self, frame: Frame, out: &mut Vec<u8>) -> Result<(), ConnError> {
        match frame {
            Frame::Packet(p) => {
                if let Some(w) = self.handle_packet(&p)? {
                    Frame::Packet(w.into_bytes()).encode_into(out)?;
                }
            }
            Frame::Memblock(m) => match self.playbacks.get_mut(&m.channel) {
                Some(p) => {
                    if m.offset != 0 || m.seek != SeekMode::Relative {
                        tracing::debug!(
                            channel = m.channel,
                            offset = m.offset,
                            seek = ?m.seek,
                            "seeking writes are not supported; appended"
                        );
                    }
                    if let Some(w) = p.push(&m.data) {
                        Frame::Packet(w.into_bytes()).encode_into(out)?;
                    }
                }
                None => tracing::debug!(
                    channel = m.channel,
                    len = m.data.len(),
                    "memblock for no stream of this client, ignored"
                ),
            },
            other => {
                tracing::debug!(frame = ?other.descriptor(), "SHM frame ignored");
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
            _ if super::introspect::handles(cmd) => {
                self.introspect(cmd, tag, &mut r, version, packet.len())?
            }
            _ if super::streams::handles(cmd) => {
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
        tracing::debug!(
            client = self.client_index,
            client_version = raw & 0xFFFF,
            version,
            "authorised (no SHM offered)"
        );
        let mut w = reply(tag);
        // No SHM/memfd flags: the inline path only.
        w.put_u32(version);
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

/// Serves one accepted connection until the client leaves, a protocol
/// error, or server shutdown; logs how it ended.
pub fn serve(fd: Arc<OwnedFd>, peer: Peer, server: Arc<Server>) {
    let waker = match Waker::new() {
        Ok(w) => Arc::new(w),
        Err(e) => {
            tracing::warn!(%e, "no eventfd for the connection; closed");
            return;
        }
    };
    let mut session = Session::with_peer(server.clone(), peer, waker);
    let index = session.client_index();
    let result = run(&fd, &mut session, &server, AUTH_TIMEOUT);
    let name = session.name().unwrap_or("-").to_owned();
    let version = session.version().unwrap_or(0);
    match result {
        Ok(()) => tracing::info!(client = index, %name, version, "client disconnected"),
        Err(e) => {
            tracing::warn!(client = index, %name, version, reason = %e, "connection closed")
        }
    }
}

fn run(
    fd: &OwnedFd,
    session: &mut Session,
    server: &Server,
    auth_timeout: Duration,
) -> Result<(), ConnError> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::net::sockopt::{set_socket_timeout, Timeout};
    set_socket_timeout(fd, Timeout::Recv, Some(READ_TICK)).map_err(ConnError::Io)?;
    set_socket_timeout(fd, Timeout::Send, Some(SEND_TIMEOUT)).map_err(ConnError::Io)?;
    let started = Instant::now();
    let mut decoder = FrameDecoder::new(MAX_FRAME_PAYLOAD);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    let waker = session.waker.clone();
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: READ_TICK.as_nanos() as _,
    };
    loop {
        let mut fds = [
            PollFd::new(fd, PollFlags::IN),
            PollFd::new(&*waker, PollFlags::IN),
        ];
        match poll(&mut fds, Some(&tick)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(ConnError::Io(e)),
        }
        let readable = !fds[0].revents().is_empty();
        let woken = !fds[1].revents().is_empty();
        // Checked on every wake-up, not only on idle ticks: a client that
        // keeps sending (unauthorised commands, a trickled frame) must not
        // hold its slot past the deadline.
        if session.version().is_none() && started.elapsed() >= auth_timeout {
            return Err(ConnError::AuthTimeout(auth_timeout));
        }
        if server.stopping() {
            return Ok(());
        }
        if woken {
            waker.clear();
        }
        if readable {
            match rustix::io::read(fd, &mut buf[..]) {
                Ok(0) if decoder.is_mid_frame() => {
                    return Err(ConnError::Truncated(decoder.buffered()))
                }
                Ok(0) => return Ok(()),
                Ok(n) => {
                    decoder.push(&buf[..n]);
                    handle_frames(&mut decoder, session, &mut out, |b| send_all(fd, b))?;
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
        session.poll_streams(&mut out)?;
        if !out.is_empty() {
            send_all(fd, &out)?;
            out.clear();
        }
    }
}

/// Handles every complete frame in `decoder`, passing the encoded replies
/// to `send` whenever [`OUT_FLUSH_AT`] bytes are pending and at the end.
fn handle_frames(
    decoder: &mut FrameDecoder,
    session: &mut Session,
    out: &mut Vec<u8>,
    mut send: impl FnMut(&[u8]) -> Result<(), ConnError>,
) -> Result<(), ConnError> {
    while let Some(frame) = decoder.next_frame()? {
        session.handle_frame(frame, out)?;
        if out.len() >= OUT_FLUSH_AT {
            send(out)?;
            out.clear();
        }
    }
    if !out.is_empty() {
        send(out)?;
        out.clear();
    }
    Ok(())
}

fn send_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), ConnError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pulse::tagstruct::Proplist;
    use crate::srbd::server_info::INVALID_INDEX;

    fn server() -> Arc<Server> {
        crate::srbd::test_server()
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

    #[test]
    fn auth_reply_is_the_version_without_shm_flags() {
        let mut s = session();
        let b = call(&mut s, &auth_packet(0xC000_0023));
        let mut r = expect_reply(&b, 0);
        assert_eq!(r.get_u32().unwrap(), 35);
        r.finish().unwrap();
        assert_eq!(s.version(), Some(35));
    }

    #[test]
    fn auth_frame_bytes() {
        // Appendix A's AUTH reply, without the SHM/memfd flags.
        let mut s = session();
        let mut out = Vec::new();
        s.handle_frame(Frame::Packet(auth_packet(0xC000_0023)), &mut out)
            .unwrap();
        let mut want = crate::pulse::hex("0000000f ffffffff 00000000 00000000 00000000");
        want.extend(crate::pulse::hex("4c 00000002 4c 00000000 4c 00000023"));
        assert_eq!(out, want);
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
        use crate::pulse::tagstruct::{CVolume, ChannelMap, SampleSpec};
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
        for tag in 0..crate::srbd::streams::MAX_STREAMS as u32 {
            let b = call(&mut s, &create_playback(tag + 2, 5, 1, 48_000, &[0]));
            expect_reply(&b, tag + 2);
        }
        let b = call(&mut s, &create_playback(99, 5, 1, 48_000, &[0]));
        expect_error(&b, 99, PaError::TooLarge);
        drop(s);
    }

    #[test]
    fn sink_input_volume_and_subscribe_events() {
        use crate::pulse::tagstruct::CVolume;
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

    #[test]
    fn auth_deadline_holds_for_a_client_that_keeps_sending() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = server();
        let fd: OwnedFd = b.into();
        let mut session = Session::new(srv.clone(), srv.uid, waker());
        // The deadline has passed by the first wake-up.
        let t = std::thread::spawn(move || run(&fd, &mut session, &srv, Duration::ZERO));
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
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = server();
        let fd: OwnedFd = b.into();
        let mut session = Session::new(srv.clone(), srv.uid, waker());
        let t = std::thread::spawn(move || run(&fd, &mut session, &srv, AUTH_TIMEOUT));
        use std::io::Write;
        // A packet frame on a non-control channel with no SHM: refused.
        let mut a = a;
        a.write_all(&[
            0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 1, 2, 3, 4,
        ])
        .unwrap();
        assert!(matches!(t.join().unwrap(), Err(ConnError::Frame(_))));
    }
}
