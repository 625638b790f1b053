//! One client's protocol state ([`Session`]): the AUTH → SET_CLIENT_NAME
//! → commands state machine, without I/O. Frames go in
//! ([`Session::handle_frame_with_fds`]), encoded frames come out; the
//! connection around it ([`crate::control::client`]) reads and writes the
//! socket and the srbchannel, and the control loop
//! ([`crate::control::server_loop`]) runs every connection.
//!
//! **Fds.** The fds that arrived with a frame go to
//! [`Session::handle_frame_with_fds`]; whatever its handler does not claim
//! (only REGISTER_MEMFD_SHMID takes one) is closed at once.
//!
//! **AUTH** offers SHM + memfd by [`offer_shm`] (§1.5); the decoder then
//! accepts SHM frames, handled by [`crate::control::shm`]. Right after the
//! AUTH reply an SHM client is offered the srbchannel ([`SrbEvent::Offer`],
//! carried out by [`crate::control::outbound::Outbound::sync`]); its ack
//! switches the connection's writes to the ring.
//!
//! **Commands** are dispatched through one table,
//! [`crate::control::dispatch`], which also says which commands are allowed
//! before AUTH.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

pub use crate::control::limits::{
    AUTH_TIMEOUT, COOKIE_LEN, FRAME_TIMEOUT, MAX_CLIENT_PROPS, MAX_FRAME_PAYLOAD,
    MIN_MEMFD_VERSION, MIN_VERSION, SPIN_WINDOW,
};
use crate::control::playback::Playback;
use crate::control::record::Record;
use crate::control::server_info::PROTOCOL_VERSION;
use crate::control::shm::{ReleaseQueue, ShmError, ShmImports, ShmStats};
use crate::control::srbchannel::SrbError;
use crate::engine::notice::Notice;
use crate::Server;
use srb_pulse::commands::{Command, PaError};
use srb_pulse::pstream::{Frame, FrameError, SeekMode};
use srb_pulse::tagstruct::{TagError, TagWriter};

/// The AUTH flag "SHM possible" (client) / "SHM offered" (server) (§1.4).
pub const AUTH_SHM: u32 = 0x8000_0000;
/// The AUTH flag "memfd possible" / "memfd offered" (§1.4).
pub const AUTH_MEMFD: u32 = 0x4000_0000;

/// Why handling a frame failed; every variant closes the connection (a
/// bad request that the protocol answers with `ERROR` is not an error
/// here).
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A reply could not be framed (larger than a frame may be).
    #[error("reply not framed: {0}")]
    Frame(#[from] FrameError),
    /// A packet could not be parsed.
    #[error("malformed packet: {0}")]
    Packet(#[from] TagError),
    /// A REGISTER_MEMFD_SHMID or SHM reference was refused.
    #[error("shm: {0}")]
    Shm(#[from] ShmError),
    /// The srbchannel failed: its setup, an ack that answers no offer, or
    /// a corrupt count or fdsem word in the shared block.
    #[error("srbchannel: {0}")]
    Srb(#[from] SrbError),
}

/// What a handled frame asks of the connection's [`crate::control::outbound::Outbound`].
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

impl Peer {
    /// Who it is, for the log (never the cookie).
    pub fn describe(&self) -> String {
        match self {
            Peer::Unix { uid } => format!("unix uid {uid}"),
            Peer::Tcp { addr, .. } => format!("tcp {addr}"),
        }
    }
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
    pub(super) peer: Peer,
    pub(super) client_index: u32,
    pub(super) version: Option<u32>,
    pub(super) name: Option<String>,
    /// The client's memfd imports, once SHM + memfd was negotiated.
    pub(super) shm: Option<ShmImports>,
    /// The fds that came with the frame being handled (see
    /// [`Session::handle_frame_with_fds`]).
    pub(super) frame_fds: Vec<OwnedFd>,
    /// Where SHM blocks are copied to.
    pub(super) shm_buf: Vec<u8>,
    /// RELEASE frames of copied SHM blocks, waiting to go out with the
    /// next outgoing frames ([`ReleaseQueue`]).
    pub releases: ReleaseQueue,
    /// What the last frame asks of the connection's srbchannel.
    pub(super) srb_event: Option<SrbEvent>,
    /// This client's flag for the control loop (mixer events, other
    /// clients' handlers).
    pub(super) notice: Arc<Notice>,
    /// Playback streams by channel id.
    pub(super) playbacks: BTreeMap<u32, Playback>,
    /// Record streams by channel id.
    pub(super) records: BTreeMap<u32, Record>,
    /// Upload streams by channel id (numbered with the playback streams).
    pub(super) uploads: BTreeMap<u32, crate::control::sample_cache::Upload>,
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
    pub fn new(server: Arc<Server>, peer_uid: u32, notice: Arc<Notice>) -> Self {
        Self::with_peer(server, Peer::Unix { uid: peer_uid }, notice)
    }

    /// A session for any kind of peer; registers the client.
    pub fn with_peer(server: Arc<Server>, peer: Peer, notice: Arc<Notice>) -> Self {
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
            notice,
            playbacks: BTreeMap::new(),
            records: BTreeMap::new(),
            uploads: BTreeMap::new(),
            next_playback_channel: 0,
            next_record_channel: 0,
        }
    }

    /// The negotiated version, once authorised.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// This client's flag for the control loop.
    pub fn notice(&self) -> &Arc<Notice> {
        &self.notice
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
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.uploads.is_empty() {
            let n = self.uploads.len();
            // Their reservations go back to the cache as they drop.
            self.uploads.clear();
            let usage = self.server.samples.usage();
            tracing::info!(
                client = self.client_index,
                uploads = n,
                reserved = usage.reserved_bytes,
                cache_bytes = usage.entry_bytes,
                "unfinished uploads discarded"
            );
        }
        for (_, p) in std::mem::take(&mut self.playbacks) {
            self.server.registry.remove_sink_input(p.shared.index);
        }
        for (_, r) in std::mem::take(&mut self.records) {
            self.server.registry.remove_source_output(r.shared.index);
        }
        self.server.remove_client(self.client_index);
    }
}

impl Session {
    /// The frame size of the stream a memblock on `channel` feeds (a
    /// playback or upload stream of this client); `None`: no such stream.
    pub(super) fn block_frame_size(&self, channel: u32) -> Option<u32> {
        let spec = match (self.playbacks.get(&channel), self.uploads.get(&channel)) {
            (Some(p), _) => p.spec,
            (None, Some(u)) => u.spec,
            (None, None) => return None,
        };
        Some(
            spec.frame_size()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        )
    }

    /// Delivers an inline or SHM memblock's bytes to the stream on
    /// `channel`: a playback stream's queue ([`push_playback`]) or an
    /// upload's buffer; a block for no stream of this client is ignored.
    pub(super) fn push_block(
        &mut self,
        channel: u32,
        offset: i64,
        seek: SeekMode,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), HandleError> {
        if let Some(p) = self.playbacks.get_mut(&channel) {
            return push_playback(p, offset, seek, data, out);
        }
        match self.uploads.get_mut(&channel) {
            Some(u) => {
                if let Err(e) = u.push(data) {
                    tracing::info!(client = self.client_index, %e, "upload data dropped");
                }
            }
            None => tracing::debug!(
                channel,
                len = data.len(),
                "memblock for no stream of this client, ignored"
            ),
        }
        Ok(())
    }
}

/// Queues client audio of an inline or SHM memblock into its stream at
/// the write position its seek names (§3.4: relative to the write index,
/// absolute, relative to the read index, or to the end); an OVERFLOW
/// notification goes to `out` if it did not fit.
///
/// A position past the write index leaves a gap of silence; a position
/// before it (GStreamer's `pulsesink` rewrites what it sent) keeps what is
/// already queued and appends only the part of `data` beyond the write
/// index: audio handed to the mixer's ring is not taken back.
pub(super) fn push_playback(
    p: &mut Playback,
    offset: i64,
    seek: SeekMode,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), HandleError> {
    let written = i128::from(p.written());
    let target = i128::from(offset)
        + match seek {
            SeekMode::Relative | SeekMode::RelativeEnd => written,
            SeekMode::Absolute => 0,
            SeekMode::RelativeOnRead => i128::from(p.read_index()),
        };
    let notice = if target > written {
        let gap = u64::try_from(target - written).unwrap_or(u64::MAX);
        p.push_silence(gap).or_else(|| p.push(data))
    } else {
        let skip = usize::try_from(written - target).unwrap_or(usize::MAX);
        if skip > 0 {
            tracing::trace!(channel = p.channel, skip, "rewrite of queued audio: kept");
        }
        p.push_counted(data.get(skip..).unwrap_or(&[]), data.len())
    };
    if let Some(w) = notice {
        Frame::Packet(w.into_bytes()).encode_into(out)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control::server_info::INVALID_INDEX;
    use srb_pulse::commands::NO_TAG;
    use srb_pulse::pstream::FrameDecoder;
    use srb_pulse::tagstruct::Proplist;
    use srb_pulse::tagstruct::TagReader;

    pub(crate) fn server() -> Arc<Server> {
        crate::test_server()
    }

    pub(crate) fn waker() -> Arc<Notice> {
        Arc::new(Notice::new(Arc::new(
            crate::engine::notice::Bell::new().unwrap(),
        )))
    }

    fn session() -> Session {
        let s = server();
        let uid = s.uid;
        Session::new(s, uid, waker())
    }

    pub(crate) fn packet(cmd: u32, tag: u32, body: impl FnOnce(&mut TagWriter)) -> Vec<u8> {
        let mut w = TagWriter::command(cmd, tag);
        body(&mut w);
        w.into_bytes()
    }

    pub(crate) fn auth_packet(version: u32) -> Vec<u8> {
        packet(Command::Auth as u32, 0, |w| {
            w.put_u32(version).put_arbitrary(&[7; COOKIE_LEN]);
        })
    }

    /// Sends `p` and returns the reply's reader positioned after the tag.
    pub(crate) fn call(s: &mut Session, p: &[u8]) -> Vec<u8> {
        s.handle_packet(p).unwrap().expect("a reply").into_bytes()
    }

    pub(crate) fn expect_reply(bytes: &[u8], tag: u32) -> TagReader<'_> {
        let mut r = TagReader::new(bytes);
        assert_eq!(r.get_u32().unwrap(), Command::Reply as u32);
        assert_eq!(r.get_u32().unwrap(), tag);
        r
    }

    pub(crate) fn expect_error(bytes: &[u8], tag: u32, e: PaError) {
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

    pub(crate) fn ready(version: u32) -> Session {
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
        assert!(matches!(s.handle_packet(&p), Err(HandleError::Packet(_))));
    }

    #[test]
    fn short_packet_is_a_protocol_error() {
        let mut s = session();
        assert!(matches!(
            s.handle_packet(&[b'L', 0, 0, 0]),
            Err(HandleError::Packet(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_a_protocol_error() {
        let mut s = ready(35);
        let p = packet(Command::GetServerInfo as u32, 2, |w| {
            w.put_u32(1);
        });
        assert!(matches!(s.handle_packet(&p), Err(HandleError::Packet(_))));
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
        let p = packet(Command::AddAutoload as u32, 6, |w| {
            w.put_string(Some("x")).put_u32(0);
        });
        expect_error(&call(&mut s, &p), 6, PaError::NotSupported);
        let p = packet(Command::LoadModule as u32, 8, |w| {
            w.put_string(Some("module-bogus")).put_string(None);
        });
        expect_error(&call(&mut s, &p), 8, PaError::ModInitFailed);
        let p = packet(Command::LoadModule as u32, 9, |w| {
            w.put_string(Some("module-null-sink"))
                .put_string(Some("bogus=1"));
        });
        expect_error(&call(&mut s, &p), 9, PaError::ModInitFailed);
        let p = packet(Command::EnableSrbchannel as u32, NO_TAG, |_| {});
        assert!(s.handle_packet(&p).unwrap().is_none());
        let p = packet(Command::Auth as u32, 7, |w| {
            w.put_u32(35).put_arbitrary(&[0; COOKIE_LEN]);
        });
        expect_error(&call(&mut s, &p), 7, PaError::BadState);
    }

    #[test]
    fn killing_a_loopback_stream_unloads_the_loopback() {
        let mut s = ready(35);
        let server = s.server.clone();
        crate::control::modules::load(&server, "module-null-sink", "sink_name=a").unwrap();
        crate::control::modules::load(&server, "module-loopback", "source=a.monitor").unwrap();
        let input = server.registry.sink_inputs()[0].0;
        let p = packet(Command::KillSinkInput as u32, 3, |w| {
            w.put_u32(input);
        });
        expect_reply(&call(&mut s, &p), 3);
        let left: Vec<&str> = server.modules.list().iter().map(|m| m.1).collect();
        assert_eq!(left, ["module-null-sink"]);
        assert!(server.registry.sink_inputs().is_empty());
        assert!(server.registry.source_outputs().is_empty());
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
        // Index-or-name as PulseAudio reads it: a number in the name is an
        // index, an empty or absent name the default device.
        for (tag, index, name) in [
            (8, INVALID_INDEX, Some("0")),
            (9, INVALID_INDEX, Some("")),
            (10, INVALID_INDEX, None),
        ] {
            for cmd in [Command::GetSinkInfo, Command::GetSourceInfo] {
                let b = call(&mut s, &q(cmd, tag, index, name));
                assert_eq!(
                    expect_reply(&b, tag).get_u32().unwrap(),
                    0,
                    "{cmd:?} {name:?}"
                );
            }
        }
        let b = call(
            &mut s,
            &q(Command::GetSinkInfo, 11, INVALID_INDEX, Some("1")),
        );
        expect_error(&b, 11, PaError::NoEntity);
        let vol = srb_pulse::tagstruct::CVolume::new(&[0x8000, 0x8000]).unwrap();
        for (tag, name) in [(12, Some("0")), (13, None), (14, Some(""))] {
            let b = call(
                &mut s,
                &packet(Command::SetSinkVolume as u32, tag, |w| {
                    w.put_u32(INVALID_INDEX).put_string(name).put_cvolume(&vol);
                }),
            );
            expect_reply(&b, tag);
        }
        for (tag, name) in [(15, Some("0")), (16, None)] {
            let b = call(
                &mut s,
                &packet(Command::SetDefaultSource as u32, tag, |w| {
                    w.put_string(name);
                }),
            );
            expect_reply(&b, tag);
        }
    }

    /// A v35 CREATE_PLAYBACK_STREAM body as pacat sends it, with `spec`.
    pub(crate) fn create_playback(
        tag: u32,
        format: u8,
        channels: u8,
        rate: u32,
        map: &[u8],
    ) -> Vec<u8> {
        create_playback_with_formats(tag, format, channels, rate, map, &[])
    }

    /// [`create_playback`] offering `formats` (v21 format negotiation).
    pub(crate) fn create_playback_with_formats(
        tag: u32,
        format: u8,
        channels: u8,
        rate: u32,
        map: &[u8],
        formats: &[srb_pulse::tagstruct::FormatInfo],
    ) -> Vec<u8> {
        use srb_pulse::tagstruct::{CVolume, ChannelMap, SampleSpec};
        packet(Command::CreatePlaybackStream as u32, tag, |w| {
            w.put_sample_spec(&SampleSpec {
                format: srb_pulse::sample::SampleFormat::from_wire(format),
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
            w.put_bool(false)
                .put_bool(false)
                .put_u8(formats.len() as u8);
            for f in formats {
                w.put_format_info(f);
            }
        })
    }

    #[test]
    fn format_negotiation_picks_pcm_and_refuses_by_name() {
        use srb_pulse::tagstruct::FormatInfo;
        let f = |enc: u8, pairs: &[(&str, &str)]| {
            let mut props = Proplist::new();
            for (k, v) in pairs {
                props.set_str(k, v).unwrap();
            }
            FormatInfo {
                encoding: enc,
                props,
            }
        };
        let mut s = ready(35);
        // Lists and a range: the sink's own spec is chosen and returned.
        let req = create_playback_with_formats(
            2,
            0xFF,
            0,
            0,
            &[],
            &[
                f(2, &[]),
                f(
                    1,
                    &[
                        ("format.sample_format", "[ \"s16le\", \"float32le\" ]"),
                        ("format.rate", "{ \"min\": 8000, \"max\": 96000 }"),
                        ("format.channels", "[ 1, 2 ]"),
                    ],
                ),
            ],
        );
        let b = call(&mut s, &req);
        let mut r = expect_reply(&b, 2);
        for _ in 0..7 {
            r.get_u32().unwrap();
        }
        let ss = r.get_sample_spec().unwrap();
        assert_eq!(
            (ss.format, ss.channels, ss.rate),
            (srb_pulse::sample::SampleFormat::Float32Le, 2, 48_000)
        );
        assert_eq!(r.get_channel_map().unwrap().positions(), &[1, 2]);
        r.get_u32().unwrap();
        r.get_string().unwrap();
        r.get_bool().unwrap();
        r.get_usec().unwrap();
        let chosen = r.get_format_info().unwrap();
        assert_eq!(chosen.props.get_str("format.rate"), Some("48000"));
        r.finish().unwrap();
        // Only non-PCM: NOTSUPPORTED; a malformed PCM entry: INVALID; the
        // connection stays (the next request is answered).
        let b = call(
            &mut s,
            &create_playback_with_formats(3, 0xFF, 0, 0, &[], &[f(2, &[]), f(6, &[])]),
        );
        expect_error(&b, 3, PaError::NotSupported);
        let b = call(
            &mut s,
            &create_playback_with_formats(
                4,
                0xFF,
                0,
                0,
                &[],
                &[f(1, &[("format.rate", "{ \"min\": 9 }")])],
            ),
        );
        expect_error(&b, 4, PaError::Invalid);
        let b = call(&mut s, &packet(Command::GetServerInfo as u32, 5, |_| {}));
        expect_reply(&b, 5);
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
        assert_eq!(
            (ss.format, ss.channels, ss.rate),
            (srb_pulse::sample::SampleFormat::S16Le, 2, 44_100)
        );
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
        assert!(matches!(s.handle_packet(&p), Err(HandleError::Packet(_))));
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
        s.poll_streams(&mut out, usize::MAX).unwrap();
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

    pub(crate) fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
        use rustix::pipe::{pipe_with, PipeFlags};
        pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap()
    }

    pub(crate) fn f32_block(v: f32, samples: usize) -> Vec<u8> {
        std::iter::repeat_n(v.to_le_bytes(), samples)
            .flatten()
            .collect()
    }

    pub(crate) fn set_name(tag: u32) -> Vec<u8> {
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
            matches!(r, Err(HandleError::Shm(ShmError::NotNegotiated))),
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
            Err(HandleError::Shm(ShmError::FdCount { got: 0, .. }))
        ));
        let r = s.handle_frame_with_fds(register(1), vec![memfd(64), memfd(64)], &mut out);
        assert!(matches!(
            r,
            Err(HandleError::Shm(ShmError::FdCount { got: 2, .. }))
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
            Err(HandleError::Shm(ShmError::Duplicate { shm_id: 5 }))
        ));
        let r = s.handle_frame_with_fds(register(16), vec![memfd(64)], &mut out);
        assert!(matches!(
            r,
            Err(HandleError::Shm(ShmError::TooManySegments { shm_id: 16 }))
        ));
        // Trailing bytes are a malformed packet.
        let p = packet(Command::RegisterMemfdShmid as u32, NO_TAG, |w| {
            w.put_u32(99).put_u32(0);
        });
        let r = s.handle_frame_with_fds(Frame::Packet(p), vec![memfd(64)], &mut out);
        assert!(matches!(r, Err(HandleError::Packet(_))));
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
            assert!(matches!(e, Err(HandleError::Shm(_))), "{what}: {e:?}");
            assert!(o.is_empty(), "{what}: nothing sent");
        }
        let mut posix = r(4, 9, 64, 8);
        if let Frame::ShmRef(f) = &mut posix {
            f.memfd = false;
        }
        assert!(matches!(
            s.handle_frame(posix, &mut out),
            Err(HandleError::Shm(ShmError::PosixRef { .. }))
        ));
        // The client shrinks its pool: a named error, no SIGBUS.
        rustix::fs::ftruncate(&peer, 4096).unwrap();
        let e = s.handle_frame(r(5, 9, 8192, 64), &mut out).unwrap_err();
        assert!(e.to_string().contains("pool shrank"), "{e}");
    }
}
