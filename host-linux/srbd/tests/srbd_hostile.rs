//! End-to-end: hostile clients against the built `srbd`, while a
//! well-behaved `pacat` (Debian's, libpulse 16.1) plays beside them.
//!
//! A raw client written here connects to the socket, authenticates (AUTH
//! version 35, 256-byte cookie), names itself and then misbehaves at the
//! frame layer (descriptor lengths 0 and above 16 MiB, bad flags, an
//! oversized frame, a frame cut short), in packets (a wrong tag type,
//! truncated values, trailing bytes, an unknown command), with invalid
//! CREATE_PLAYBACK_STREAM sample specs, and with other clients' streams
//! (memblocks for channels it does not own, DRAIN/DELETE of them).
//!
//! For every case this proves: the misbehaving connection gets the
//! protocol's answer (ERROR with the expected code, or the connection
//! closed where the protocol drops it) and, where it is answered, stays
//! usable; the daemon stays up and `pactl info` works; no stream is
//! created by a refused request; and the bystander is unaffected: it
//! exits 0 and the daemon's WAV output holds exactly its frames (every
//! one, at its level) and nothing the hostile client sent.
//!
//! The SHM fast path gets its own hostile client: it negotiates SHM +
//! memfd in AUTH, sends its pool memfd with SCM_RIGHTS
//! (REGISTER_MEMFD_SHMID) and then block references that are unknown,
//! out of bounds, overflowing `u32`, empty, misaligned, POSIX, too long,
//! or point into a pool it shrank; it registers pipes, sockets, no fd, two
//! fds, a duplicate id, 17 pools, and attaches fds to GET_SERVER_INFO. Each
//! is a named error in the daemon's log (or, for the stray fds, ignored
//! and closed at once), the connection is closed where the protocol
//! drops it, the daemon never takes SIGBUS, the bystander plays on, and
//! the daemon's fd count returns to its baseline. A valid reference is
//! played (its frames are in the WAV output) and RELEASEd.
//!
//! The srbchannel gets a client of its own ([`RingClient`]): it takes
//! srbd's offer as libpulse does (maps the sealed ring memfd, adopts the
//! client ends with srb-core, acknowledges) and first proves it really
//! talks through the ring (GET_SERVER_INFO there and back, both rings
//! wrapped, nothing on the socket). Then it sets either ring's count to
//! -1, 2^31 and capacity + 1, srbd's and its own fdsem words to nonsense,
//! storms fd0, acknowledges with a wrong tag or twice, writes a bad
//! descriptor into the ring, and sends REGISTER_MEMFD_SHMID through it (no
//! fd can travel there). Each closes that connection with its named error
//! (each close bound to its case), while two well-behaved ring clients
//! keep doing round trips beside it; nonsense in the header's capacity
//! and ring offsets, which srbd never reads back, is ignored. The
//! bystander (itself on an srbchannel) plays on, and srbd's fd count and
//! ring mappings (`/proc/<srbd>/maps`) return to their baseline. Checked
//! by mutation: a daemon that ignores ring errors, corrupt words on its
//! writing side, or bad acks fails these tests.
//!
//! `pacat`/`pactl` must be installed (`scripts/test-srbd.sh` installs
//! `pulseaudio-utils`); without them these tests fail, they do not skip.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Child;

use common::srbd::{
    f32le_bytes, log_field, poll_until, wait_bounded, Daemon, Feeder, Wav, DEADLINE,
};
use srb_pulse::pstream::{
    flags, Descriptor, CONTROL_CHANNEL, DESCRIPTOR_LEN, FRAME_SIZE_MAX_ALLOW,
};
use srb_pulse::sample::SampleFormat;
use srb_pulse::tagstruct::{Proplist, SampleSpec, TagReader, TagWriter};

// Command numbers and error codes of the native protocol (§6.1, §1.7).
const ERROR: u32 = 0;
const REPLY: u32 = 2;
const CREATE_PLAYBACK_STREAM: u32 = 3;
const DELETE_PLAYBACK_STREAM: u32 = 4;
const DELETE_RECORD_STREAM: u32 = 6;
const AUTH: u32 = 8;
const SET_CLIENT_NAME: u32 = 9;
const DRAIN_PLAYBACK_STREAM: u32 = 12;
const GET_SERVER_INFO: u32 = 20;
const GET_SINK_INFO: u32 = 21;
const REGISTER_MEMFD_SHMID: u32 = 103;
const NO_TAG: u32 = 0xFFFF_FFFF;
/// AUTH version word flags: SHM and memfd possible (§1.4).
const AUTH_SHM_MEMFD: u32 = 0xC000_0000;

const ERR_COMMAND: u32 = 2;
const ERR_INVALID: u32 = 3;
const ERR_NOENTITY: u32 = 5;
const ERR_PROTOCOL: u32 = 7;

const INVALID_INDEX: u32 = 0xFFFF_FFFF;
const FLOAT32LE: SampleFormat = SampleFormat::Float32Le;

/// The bystander's level; hostile memblocks carry [`HOSTILE`], so either
/// value (or their sum) in the output tells who was played.
const BYSTANDER: f32 = 0.25;
const HOSTILE: f32 = 0.0625;

/// What the daemon answered to a request.
#[derive(Debug)]
enum Answer {
    /// REPLY: the payload after command and tag.
    Reply(Vec<u8>),
    /// ERROR with this code.
    Error(u32),
    /// The connection was closed (EOF or reset) before an answer.
    Closed,
}

/// A hand-made native-protocol client.
struct Raw {
    s: UnixStream,
    next_tag: u32,
    /// What the client is waiting for, for failure messages.
    doing: String,
    /// The AUTH reply's version word (flags included).
    auth_reply: u32,
    /// Block ids the daemon RELEASEd, in order.
    releases: Vec<u32>,
}

impl Raw {
    /// Connects, authenticates (version 35, no SHM) and names itself.
    fn connect(d: &Daemon) -> Self {
        Self::connect_with(d, 35)
    }

    /// Connects, authenticates with SHM + memfd asked for (version 35) and
    /// names itself; the daemon must offer both (we run as its uid).
    fn connect_shm(d: &Daemon) -> Self {
        let raw = Self::connect_with(d, AUTH_SHM_MEMFD | 35);
        assert_eq!(
            raw.auth_reply,
            AUTH_SHM_MEMFD | 35,
            "SHM + memfd offered to a local client of our uid"
        );
        raw
    }

    /// Connects, authenticates with `version_and_flags` and names itself.
    fn connect_with(d: &Daemon, version_and_flags: u32) -> Self {
        let s = UnixStream::connect(&d.socket).expect("connect to srbd");
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.set_write_timeout(Some(DEADLINE)).unwrap();
        let mut raw = Self {
            s,
            next_tag: 0,
            doing: "AUTH".to_owned(),
            auth_reply: 0,
            releases: Vec::new(),
        };
        let tag = raw.command(AUTH, |w| {
            w.put_u32(version_and_flags).put_arbitrary(&[0x5A; 256]);
        });
        match raw.answer(tag) {
            Answer::Reply(p) => {
                let mut r = TagReader::new(&p);
                let v = r.get_u32().expect("AUTH reply version");
                assert_eq!(v & 0xFFFF, 35, "negotiated version");
                raw.auth_reply = v;
            }
            other => panic!("AUTH: {other:?}\n{}", d.log()),
        }
        let tag = raw.command(SET_CLIENT_NAME, |w| {
            let mut p = Proplist::new();
            p.set_str("application.name", "srb-hostile").unwrap();
            w.put_proplist(&p);
        });
        match raw.answer(tag) {
            Answer::Reply(p) => {
                let index = TagReader::new(&p).get_u32().expect("client index");
                assert_ne!(index, INVALID_INDEX);
            }
            other => panic!("SET_CLIENT_NAME: {other:?}\n{}", d.log()),
        }
        raw
    }

    fn tag(&mut self) -> u32 {
        let t = self.next_tag;
        self.next_tag += 1;
        t
    }

    /// Writes raw bytes; false if the daemon has gone (closed or reset).
    fn send(&mut self, bytes: &[u8]) -> bool {
        match self.s.write_all(bytes) {
            Ok(()) => true,
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                false
            }
            Err(e) => panic!("write to srbd: {e}"),
        }
    }

    /// Writes `bytes` with `fds` attached to the first byte (SCM_RIGHTS,
    /// `msg_controllen` exactly `CMSG_SPACE(n * 4)`); false if the daemon
    /// has gone.
    fn send_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> bool {
        if fds.is_empty() {
            return self.send(bytes);
        }
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(
            control.push(rustix::net::SendAncillaryMessage::ScmRights(fds)),
            "at most 2 fds per message"
        );
        let sent = loop {
            match rustix::net::sendmsg(
                &self.s,
                &[rustix::io::IoSlice::new(bytes)],
                &mut control,
                rustix::net::SendFlags::NOSIGNAL,
            ) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => return false,
                Err(e) => panic!("sendmsg to srbd: {e}"),
            }
        };
        self.send(&bytes[sent..])
    }

    /// Sends `payload` as a packet frame with `fds` attached.
    fn packet_fds(&mut self, payload: &[u8], fds: &[BorrowedFd<'_>]) -> bool {
        let d = Descriptor {
            length: payload.len() as u32,
            channel: CONTROL_CHANNEL,
            ..Descriptor::default()
        };
        let mut bytes = d.encode().to_vec();
        bytes.extend_from_slice(payload);
        self.send_fds(&bytes, fds)
    }

    /// REGISTER_MEMFD_SHMID (tag -1, no reply) with `fds` attached.
    fn register(&mut self, shm_id: u32, fds: &[BorrowedFd<'_>]) -> bool {
        let mut w = TagWriter::command(REGISTER_MEMFD_SHMID, NO_TAG);
        w.put_u32(shm_id);
        self.packet_fds(w.as_bytes(), fds)
    }

    /// An SHM reference frame (§3.4) with descriptor `flags`.
    fn shm_ref(&mut self, channel: u32, r: [u32; 4], flags: u32) -> bool {
        let d = Descriptor {
            length: 16,
            channel,
            flags,
            ..Descriptor::default()
        };
        let mut bytes = d.encode().to_vec();
        for w in r {
            bytes.extend_from_slice(&w.to_be_bytes());
        }
        self.send(&bytes)
    }

    /// Reads until the daemon RELEASEs `block_id`.
    fn wait_release(&mut self, block_id: u32) {
        self.doing = format!("RELEASE of block {block_id}");
        while !self.releases.contains(&block_id) {
            assert!(
                self.read_frame().is_some(),
                "closed before releasing block {block_id}"
            );
        }
    }

    /// Sends `payload` as a packet frame (control channel, no flags).
    fn packet(&mut self, payload: &[u8]) -> bool {
        let d = Descriptor {
            length: payload.len() as u32,
            channel: CONTROL_CHANNEL,
            ..Descriptor::default()
        };
        let mut bytes = d.encode().to_vec();
        bytes.extend_from_slice(payload);
        self.send(&bytes)
    }

    /// Sends `command` with a fresh tag and `body`; returns the tag.
    fn command(&mut self, command: u32, body: impl FnOnce(&mut TagWriter)) -> u32 {
        let tag = self.tag();
        let mut w = TagWriter::command(command, tag);
        body(&mut w);
        self.packet(w.as_bytes());
        tag
    }

    /// Sends an inline memblock frame (seek RELATIVE, offset 0).
    fn memblock(&mut self, channel: u32, data: &[u8]) -> bool {
        let d = Descriptor {
            length: data.len() as u32,
            channel,
            ..Descriptor::default()
        };
        let mut bytes = d.encode().to_vec();
        bytes.extend_from_slice(data);
        self.send(&bytes)
    }

    /// The next frame, or `None` once the daemon closed the connection.
    fn read_frame(&mut self) -> Option<(Descriptor, Vec<u8>)> {
        let mut desc = [0u8; DESCRIPTOR_LEN];
        if !self.read_exact(&mut desc) {
            return None;
        }
        let d = Descriptor::decode(&desc);
        assert!(
            d.length <= FRAME_SIZE_MAX_ALLOW,
            "srbd sent a frame of {} bytes",
            d.length
        );
        let mut payload = vec![0u8; d.length as usize];
        if !self.read_exact(&mut payload) {
            return None;
        }
        if d.flags == flags::SHM_RELEASE {
            assert_eq!(d.length, 0, "RELEASE with a payload");
            self.releases.push(d.offset_hi);
        }
        Some((d, payload))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> bool {
        match self.s.read_exact(buf) {
            Ok(()) => true,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                false
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "{}: srbd neither answered nor closed within {DEADLINE:?}",
                    self.doing
                )
            }
            Err(e) => panic!("read from srbd: {e}"),
        }
    }

    /// Reads until the REPLY or ERROR for `tag` (skipping notifications and
    /// memblocks), or until the connection closes.
    fn answer(&mut self, tag: u32) -> Answer {
        self.doing = format!("the answer to tag {tag}");
        loop {
            let Some((d, payload)) = self.read_frame() else {
                return Answer::Closed;
            };
            if d.channel != CONTROL_CHANNEL || d.flags != 0 {
                continue;
            }
            let mut r = TagReader::new(&payload);
            let (Ok(cmd), Ok(t)) = (r.get_u32(), r.get_u32()) else {
                panic!("srbd sent a packet without command and tag: {payload:02x?}");
            };
            if t != tag {
                continue;
            }
            match cmd {
                REPLY => return Answer::Reply(payload[10..].to_vec()),
                ERROR => {
                    let code = r.get_u32().expect("ERROR code");
                    r.finish().expect("nothing after the ERROR code");
                    return Answer::Error(code);
                }
                other => panic!("answer to tag {tag} is command {other}"),
            }
        }
    }

    /// Whether the connection still works: GET_SERVER_INFO is answered
    /// (true) or the connection is closed (false). Anything else fails.
    fn usable(&mut self) -> bool {
        let tag = self.tag();
        let w = TagWriter::command(GET_SERVER_INFO, tag);
        if !self.packet(w.as_bytes()) {
            return false;
        }
        match self.answer(tag) {
            Answer::Reply(_) => true,
            Answer::Closed => false,
            other => panic!("GET_SERVER_INFO after the misbehaviour: {other:?}"),
        }
    }

    /// The daemon must close this connection (EOF or reset; any frames
    /// before that are skipped).
    fn expect_closed(&mut self, what: &str) {
        self.doing = format!("{what} (the connection must be closed)");
        while self.read_frame().is_some() {}
    }
}

/// A request the protocol answers with ERROR or by closing: either is
/// accepted (ERROR only with one of `codes`); if answered, the
/// connection must still serve GET_SERVER_INFO.
fn refused_or_closed(raw: &mut Raw, tag: u32, codes: &[u32], what: &str) {
    match raw.answer(tag) {
        Answer::Error(code) => {
            assert!(
                codes.contains(&code),
                "{what}: ERROR {code}, want one of {codes:?}"
            );
            assert!(raw.usable(), "{what}: connection unusable after ERROR");
        }
        Answer::Closed => {}
        Answer::Reply(p) => panic!("{what}: accepted (REPLY {p:02x?})"),
    }
}

/// A v35 CREATE_PLAYBACK_STREAM (§6.5) with the sample spec, channel map
/// and volume count given raw (so invalid ones can be sent), then
/// `trailing` bytes.
fn create_playback(
    tag: u32,
    spec: SampleSpec,
    map: &[u8],
    volumes: usize,
    trailing: &[u8],
) -> Vec<u8> {
    let mut w = TagWriter::command(CREATE_PLAYBACK_STREAM, tag);
    w.put_sample_spec(&spec);
    let mut p = w.into_bytes();
    p.push(b'm');
    p.push(map.len() as u8);
    p.extend_from_slice(map);
    let mut w = TagWriter::new();
    w.put_u32(INVALID_INDEX) // sink index
        .put_string(None) // sink name
        .put_u32(INVALID_INDEX) // maxlength
        .put_bool(false) // corked
        .put_u32(INVALID_INDEX) // tlength
        .put_u32(INVALID_INDEX) // prebuf
        .put_u32(INVALID_INDEX) // minreq
        .put_u32(0); // syncid
    p.extend_from_slice(w.as_bytes());
    p.push(b'v');
    p.push(volumes as u8);
    for _ in 0..volumes {
        p.extend_from_slice(&0x1_0000u32.to_be_bytes());
    }
    let mut w = TagWriter::new();
    // v12: no_remap, no_remix, fix_format, fix_rate, fix_channels,
    // no_move, variable_rate; v13: start_muted, adjust_latency.
    for _ in 0..9 {
        w.put_bool(false);
    }
    let mut props = Proplist::new();
    props.set_str("application.name", "srb-hostile").unwrap();
    props.set_str("media.name", "hostile").unwrap();
    w.put_proplist(&props);
    // v14: volume_set, early_requests; v15: muted_set,
    // dont_inhibit_auto_suspend, fail_on_suspend; v17: relative_volume;
    // v18: passthrough.
    for _ in 0..7 {
        w.put_bool(false);
    }
    w.put_u8(0); // v21: no formats
    p.extend_from_slice(w.as_bytes());
    p.extend_from_slice(trailing);
    p
}

fn f32_stereo_48k() -> SampleSpec {
    SampleSpec {
        format: FLOAT32LE,
        channels: 2,
        rate: 48_000,
    }
}

/// Creates a valid playback stream (float32le stereo 48 kHz); returns its
/// channel and sink-input index, after checking the reply as libpulse
/// does.
fn create_valid(raw: &mut Raw) -> (u32, u32) {
    let tag = raw.tag();
    raw.packet(&create_playback(tag, f32_stereo_48k(), &[1, 2], 2, &[]));
    let p = match raw.answer(tag) {
        Answer::Reply(p) => p,
        other => panic!("valid CREATE_PLAYBACK_STREAM: {other:?}"),
    };
    let mut r = TagReader::new(&p);
    let channel = r.get_u32().unwrap();
    let index = r.get_u32().unwrap();
    assert_ne!(channel, INVALID_INDEX);
    assert_ne!(index, INVALID_INDEX);
    let _missing = r.get_u32().unwrap();
    for _ in 0..4 {
        r.get_u32().unwrap(); // maxlength, tlength, prebuf, minreq
    }
    assert_eq!(r.get_sample_spec().unwrap(), f32_stereo_48k());
    assert_eq!(r.get_channel_map().unwrap().positions(), &[1, 2]);
    assert_ne!(r.get_u32().unwrap(), INVALID_INDEX, "sink index");
    assert_eq!(r.get_string().unwrap(), Some("srb_output"));
    r.get_bool().unwrap(); // suspended
    r.get_usec().unwrap(); // configured sink latency
    r.get_format_info().unwrap();
    r.finish()
        .expect("nothing after the CREATE_PLAYBACK_STREAM reply");
    (channel, index)
}

/// A daemon with WAV output and a well-behaved pacat playing DC
/// [`BYSTANDER`] beside the hostile client.
struct Scene {
    d: Daemon,
    pacat: Child,
    feeder: Feeder,
    /// The bystander's sink-input index.
    bystander: u32,
}

impl Scene {
    fn start(tag: &str) -> Self {
        let d = Daemon::start_args(
            tag,
            &[
                "--output",
                "wav:{dir}/out.wav",
                "--format",
                "float32le",
                "--rate",
                "48000",
                "--channels",
                "2",
            ],
        );
        let mut pacat = d.spawn_pacat(&[
            "--raw",
            "--format=float32le",
            "--rate=48000",
            "--channels=2",
            "--client-name=srb-bystander",
        ]);
        let feeder = Feeder::start(
            pacat.stdin.take().unwrap(),
            f32le_bytes(&vec![BYSTANDER; 8192 * 2]),
        );
        let bystander =
            d.wait_while_running("the bystander's sink input", &mut [&mut pacat], || {
                let l = d.list_short("sink-inputs");
                (l.len() == 1).then(|| l[0][0].parse::<u32>().expect("sink input index"))
            });
        Self {
            d,
            pacat,
            feeder,
            bystander,
        }
    }

    /// Sink inputs listed now.
    fn sink_inputs(&self) -> usize {
        self.d.list_short("sink-inputs").len()
    }

    /// Fails unless only the bystander's sink input exists.
    fn assert_only_bystander(&self, what: &str) {
        let l = self.d.list_short("sink-inputs");
        assert!(
            l.len() == 1 && l[0][0] == self.bystander.to_string(),
            "{what}: sink inputs {l:?}, want only the bystander's {}",
            self.bystander
        );
    }

    /// Ends the scene (hostile connections must be dropped before): the
    /// daemon is up, `pactl info` works, the bystander exits 0, no client
    /// or stream is left, and the output holds exactly the bystander.
    fn finish(self) {
        self.finish_with_hostile(0);
    }

    /// [`Scene::finish`], where exactly `hostile_frames` frames of
    /// [`HOSTILE`] (alone or summed with the bystander) were legitimately
    /// played by the hostile client.
    fn finish_with_hostile(mut self, hostile_frames: u64) {
        self.d.assert_running();
        let info = self.d.pactl_ok(&["info"]);
        assert!(info.contains("Server Name: srbd"), "{info}");
        let written = self.feeder.finish(2);
        let out = wait_bounded(self.pacat, "bystander pacat");
        self.d.assert_exit_ok(&out, "bystander pacat");
        let d = &self.d;
        d.wait_for("only the asking client listed", || {
            (d.list_short("clients").len() == 1).then_some(())
        });
        d.wait_for("no sink input left", || {
            d.list_short("sink-inputs").is_empty().then_some(())
        });
        self.d.assert_running();
        assert!(
            !self.d.log().contains("panicked"),
            "srbd panicked:\n{}",
            self.d.log()
        );
        self.d.stop_ok();

        let wav = Wav::read(&self.d.path("out.wav"));
        let mut played = 0u64;
        let mut hostile = 0u64;
        let allowed: &[f32] = if hostile_frames == 0 {
            &[0.0, BYSTANDER]
        } else {
            &[0.0, BYSTANDER, HOSTILE, BYSTANDER + HOSTILE]
        };
        for (n, f) in wav.frames().enumerate() {
            assert!(
                f.iter().all(|&s| s == f[0]) && allowed.contains(&f[0]),
                "output frame {n} is {f:?}: only {allowed:?} may be played \
                 (the bystander is {BYSTANDER}, hostile data {HOSTILE})"
            );
            if f[0] == BYSTANDER || f[0] == BYSTANDER + HOSTILE {
                played += 1;
            }
            if f[0] == HOSTILE || f[0] == BYSTANDER + HOSTILE {
                hostile += 1;
            }
        }
        assert_eq!(
            played,
            written / 8,
            "every frame of the bystander must be played once"
        );
        assert_eq!(
            hostile, hostile_frames,
            "frames of the hostile client's valid audio in the output"
        );
    }

    /// The daemon's fd count with only the bystander connected (after the
    /// `pactl` calls of [`Scene::start`] have left).
    fn fd_baseline(&self) -> usize {
        self.d.settled_fd_count(1)
    }

    /// Waits until the daemon's fd count is back at `baseline` and it
    /// holds none of the memfds the hostile client made.
    fn assert_fds_back(&self, baseline: usize) {
        poll_until(
            "the daemon's fd count back at its baseline, no hostile memfd held",
            || {
                let ours = self.d.fd_targets().iter().any(|t| t.contains(POOL_NAME));
                (!ours && self.d.fd_count() <= baseline).then_some(())
            },
            || {
                format!(
                    "baseline {baseline}, now {}:\n{}\nsrbd log:\n{}",
                    self.d.fd_count(),
                    self.d.fd_targets().join("\n"),
                    self.d.log()
                )
            },
        );
    }

    /// Fails unless the daemon logged a closed connection naming `reason`.
    fn assert_closed_for(&self, reason: &str) {
        self.d
            .wait_for(&format!("a connection closed for {reason:?}"), || {
                self.d
                    .log()
                    .lines()
                    .any(|l| l.contains("connection closed") && l.contains(reason))
                    .then_some(())
            });
    }
}

/// The name of every memfd the hostile client makes (it shows in
/// `/proc/<srbd>/fd` if the daemon keeps one).
const POOL_NAME: &str = "srb-hostile-pool";
/// The hostile client's pool id.
const POOL_ID: u32 = 0x5EED_0001;
/// Its size: 2 MiB (sparse).
const POOL_LEN: u64 = 2 << 20;

/// A memfd pool like libpulse's (unsealed, sealing allowed) of `len` bytes.
fn pool(len: u64) -> OwnedFd {
    let fd = rustix::fs::memfd_create(
        POOL_NAME,
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .expect("memfd_create");
    rustix::fs::ftruncate(&fd, len).expect("size the pool");
    fd
}

/// A hostile SHM client with a playback stream and its pool registered:
/// (client, stream channel, pool fd).
fn shm_client(scene: &Scene) -> (Raw, u32, OwnedFd) {
    let mut raw = Raw::connect_shm(&scene.d);
    let (channel, _) = create_valid(&mut raw);
    let fd = pool(POOL_LEN);
    assert!(raw.register(POOL_ID, &[fd.as_fd()]), "REGISTER_MEMFD_SHMID");
    assert!(raw.usable(), "usable after registering a valid pool");
    (raw, channel, fd)
}

/// A pipe whose read end does not block: a read sees EOF (`Ok(0)`) once
/// every write end is closed (the daemon closed the copy it received),
/// `EAGAIN` while one is still open (the daemon kept it).
fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    use rustix::pipe::{pipe_with, PipeFlags};
    pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).expect("pipe")
}

/// An SHM reference's descriptor flags: data, memfd block, seek RELATIVE.
const REF_FLAGS: u32 = flags::SHM_DATA | flags::SHM_MEMFD_BLOCK;

#[test]
fn shm_valid_reference_is_played_and_released() {
    let scene = Scene::start("h-shm-ok");
    let baseline = scene.fd_baseline();
    let (mut raw, channel, fd) = shm_client(&scene);
    // 4800 frames (0.1 s) of HOSTILE at offset 64, where libpulse puts the
    // data of its first slot.
    let frames = 4_800u32;
    let data = f32le_bytes(&vec![HOSTILE; frames as usize * 2]);
    rustix::io::pwrite(&fd, &data, 64).expect("fill the pool");
    assert!(raw.shm_ref(channel, [5, POOL_ID, 64, frames * 8], REF_FLAGS));
    raw.wait_release(5);
    assert_eq!(raw.releases, [5], "exactly one RELEASE, for block 5");
    // DRAIN plays out what the stream holds: the referenced frames.
    let tag = raw.command(DRAIN_PLAYBACK_STREAM, |w| {
        w.put_u32(channel);
    });
    assert!(
        matches!(raw.answer(tag), Answer::Reply(_)),
        "DRAIN of the SHM-fed stream"
    );
    let tag = raw.command(DELETE_PLAYBACK_STREAM, |w| {
        w.put_u32(channel);
    });
    assert!(matches!(raw.answer(tag), Answer::Reply(_)), "DELETE");
    drop(raw);
    drop(fd);
    scene
        .d
        .wait_for("the client's SHM reference counted in the log", || {
            scene
                .d
                .log()
                .lines()
                .any(|l| {
                    l.contains("client disconnected")
                        && common::srbd::log_field(l, "shm_refs") == Some("1")
                        && common::srbd::log_field(l, "shm_bytes") == Some("38400")
                })
                .then_some(())
        });
    scene.assert_fds_back(baseline);
    scene.finish_with_hostile(u64::from(frames));
}

#[test]
fn shm_bad_references_close_the_connection() {
    let scene = Scene::start("h-shm-refs");
    let baseline = scene.fd_baseline();
    let len = POOL_LEN as u32;
    let cases: [(&str, [u32; 4], u32, &str); 8] = [
        (
            "unknown shm id",
            [1, POOL_ID + 1, 64, 64],
            REF_FLAGS,
            "not registered on this connection",
        ),
        (
            "out of bounds",
            [1, POOL_ID, len - 8, 16],
            REF_FLAGS,
            "ends past the segment",
        ),
        (
            "index + length overflowing u32",
            [1, POOL_ID, 0xFFFF_FF00, 0x200],
            REF_FLAGS,
            "4294967040+512 ends past the segment",
        ),
        ("zero length", [1, POOL_ID, 64, 0], REF_FLAGS, "length 0"),
        (
            "misaligned length",
            [1, POOL_ID, 64, 12],
            REF_FLAGS,
            "not a multiple of the frame size 8",
        ),
        (
            "POSIX shm reference",
            [1, POOL_ID, 64, 64],
            flags::SHM_DATA,
            "POSIX shm segment",
        ),
        (
            "longer than a frame may be",
            [1, POOL_ID, 0, 2 << 20],
            REF_FLAGS,
            "above the maximum",
        ),
        (
            "bad SHM flag combination",
            [1, POOL_ID, 64, 64],
            flags::SHM_MEMFD_BLOCK,
            "bad SHM flag combination",
        ),
    ];
    for (what, r, flags, reason) in cases {
        let (mut raw, channel, fd) = shm_client(&scene);
        rustix::io::pwrite(&fd, &f32le_bytes(&[HOSTILE; 64]), 0).unwrap();
        raw.shm_ref(channel, r, flags);
        raw.expect_closed(what);
        assert!(raw.releases.is_empty(), "{what}: nothing to RELEASE");
        scene.d.assert_running();
        scene.assert_closed_for(reason);
    }
    scene.assert_only_bystander("after the bad references");
    scene.assert_fds_back(baseline);
    scene.finish();
}

#[test]
fn shm_truncated_pool_is_an_error_not_sigbus() {
    let scene = Scene::start("h-shm-trunc");
    let baseline = scene.fd_baseline();
    // Shrunk below the reference, and to nothing: both inside the size the
    // pool had when it was registered.
    for (shrink_to, index) in [(4096u64, 65_536u32), (4096, 4_000), (0, 64)] {
        let (mut raw, channel, fd) = shm_client(&scene);
        rustix::io::pwrite(&fd, &f32le_bytes(&[HOSTILE; 256]), 0).unwrap();
        rustix::fs::ftruncate(&fd, shrink_to).expect("shrink the pool");
        raw.shm_ref(channel, [9, POOL_ID, index, 1024], REF_FLAGS);
        raw.expect_closed("reference into a shrunk pool");
        scene.d.assert_running();
        scene.assert_closed_for("pool shrank");
    }
    assert!(
        !scene.d.log().contains("SIGBUS"),
        "no SIGBUS:\n{}",
        scene.d.log()
    );
    scene.assert_fds_back(baseline);
    scene.finish();
}

#[test]
fn shm_bad_registrations_close_the_connection() {
    let scene = Scene::start("h-shm-reg");
    let baseline = scene.fd_baseline();
    // A pipe, a socket, no fd, two fds instead of one memfd.
    let (pipe_rd, pipe_wr) = nonblocking_pipe();
    let (sock_a, _sock_b) = UnixStream::pair().unwrap();
    let (one, two) = (pool(4096), pool(4096));
    let cases: [(&str, Vec<BorrowedFd<'_>>, &str); 4] = [
        (
            "a pipe",
            vec![pipe_wr.as_fd()],
            "expected a memfd, got a pipe",
        ),
        (
            "a socket",
            vec![sock_a.as_fd()],
            "expected a memfd, got a socket",
        ),
        ("no fd", vec![], "carried 0 fds"),
        ("two fds", vec![one.as_fd(), two.as_fd()], "carried 2 fds"),
    ];
    for (what, fds, reason) in cases {
        let mut raw = Raw::connect_shm(&scene.d);
        raw.register(POOL_ID, &fds);
        raw.expect_closed(what);
        scene.assert_closed_for(reason);
    }
    // The daemon kept no copy of the pipe: with ours gone, its read end
    // sees EOF.
    drop(pipe_wr);
    let mut b = [0u8; 1];
    assert_eq!(rustix::io::read(&pipe_rd, &mut b), Ok(0), "pipe closed");
    // The same id twice.
    let (mut raw, _, _fd) = shm_client(&scene);
    let again = pool(4096);
    raw.register(POOL_ID, &[again.as_fd()]);
    raw.expect_closed("duplicate id");
    scene.assert_closed_for("id already registered");
    // Sixteen pools are fine, a seventeenth is not.
    let mut raw = Raw::connect_shm(&scene.d);
    let pools: Vec<OwnedFd> = (0..17).map(|_| pool(65_536)).collect();
    for (i, p) in pools.iter().enumerate().take(16) {
        assert!(raw.register(POOL_ID + i as u32, &[p.as_fd()]));
    }
    assert!(raw.usable(), "16 pools registered");
    raw.register(POOL_ID + 16, &[pools[16].as_fd()]);
    raw.expect_closed("17th pool");
    scene.assert_closed_for("more than 16 segments");
    // A memfd on a connection that did not negotiate SHM.
    let mut raw = Raw::connect(&scene.d);
    assert_eq!(raw.auth_reply, 35, "no SHM asked for, none offered");
    raw.register(POOL_ID, &[one.as_fd()]);
    raw.expect_closed("REGISTER without SHM");
    scene.assert_closed_for("did not negotiate SHM");
    drop(raw);
    scene.d.assert_running();
    scene.assert_fds_back(baseline);
    scene.finish();
}

#[test]
fn fds_on_frames_that_take_none_are_closed_and_ignored() {
    let scene = Scene::start("h-shm-fds");
    let baseline = scene.fd_baseline();
    for shm in [false, true] {
        let mut raw = if shm {
            Raw::connect_shm(&scene.d)
        } else {
            Raw::connect(&scene.d)
        };
        // GET_SERVER_INFO with a pipe's write end and a memfd: answered as
        // usual, and both fds closed at once.
        let (rd, wr) = nonblocking_pipe();
        let m = pool(4096);
        let tag = raw.tag();
        let w = TagWriter::command(GET_SERVER_INFO, tag);
        assert!(raw.packet_fds(w.as_bytes(), &[wr.as_fd(), m.as_fd()]));
        drop(wr);
        assert!(
            matches!(raw.answer(tag), Answer::Reply(_)),
            "GET_SERVER_INFO with fds (shm {shm})"
        );
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&rd, &mut b), Ok(0), "pipe closed at once");
        // An inline memblock carrying an fd, for a stream it owns.
        let (channel, _) = create_valid(&mut raw);
        let d = Descriptor {
            length: 64,
            channel,
            ..Descriptor::default()
        };
        let mut bytes = d.encode().to_vec();
        bytes.extend_from_slice(&[0; 64]);
        assert!(raw.send_fds(&bytes, &[m.as_fd()]));
        assert!(raw.usable(), "usable after a memblock with an fd");
        let tag = raw.command(DELETE_PLAYBACK_STREAM, |w| {
            w.put_u32(channel);
        });
        assert!(matches!(raw.answer(tag), Answer::Reply(_)));
        drop(raw);
    }
    scene.assert_fds_back(baseline);
    scene.finish();
}

#[test]
fn valid_create_playback_stream_is_accepted() {
    // The control for the cases below: the hand-made request is right.
    let scene = Scene::start("h-valid");
    let mut raw = Raw::connect(&scene.d);
    let (channel, index) = create_valid(&mut raw);
    assert_ne!(index, scene.bystander);
    scene.d.wait_for("the raw client's sink input", || {
        (scene.sink_inputs() == 2).then_some(())
    });
    let tag = raw.command(DELETE_PLAYBACK_STREAM, |w| {
        w.put_u32(channel);
    });
    match raw.answer(tag) {
        Answer::Reply(p) => assert!(p.is_empty(), "DELETE reply {p:02x?}"),
        other => panic!("DELETE of its own stream: {other:?}"),
    }
    scene.d.wait_for("the raw client's sink input gone", || {
        (scene.sink_inputs() == 1).then_some(())
    });
    assert!(raw.usable());
    drop(raw);
    scene.finish();
}

#[test]
fn bad_descriptors_close_only_that_connection() {
    let scene = Scene::start("h-desc");
    let cases: [(&str, Descriptor, usize); 6] = [
        (
            "packet length 0",
            Descriptor {
                channel: CONTROL_CHANNEL,
                ..Descriptor::default()
            },
            0,
        ),
        ("memblock length 0", Descriptor::default(), 0),
        (
            "length 16 MiB + 1",
            Descriptor {
                length: FRAME_SIZE_MAX_ALLOW + 1,
                channel: CONTROL_CHANNEL,
                ..Descriptor::default()
            },
            64,
        ),
        (
            "length u32::MAX",
            Descriptor {
                length: u32::MAX,
                ..Descriptor::default()
            },
            64,
        ),
        (
            "packet with flags",
            Descriptor {
                length: 10,
                channel: CONTROL_CHANNEL,
                flags: 1,
                ..Descriptor::default()
            },
            10,
        ),
        (
            "SHM reference without SHM",
            Descriptor {
                length: 16,
                flags: 0xA000_0000,
                ..Descriptor::default()
            },
            16,
        ),
    ];
    for (what, d, payload) in cases {
        let mut raw = Raw::connect(&scene.d);
        let mut bytes = d.encode().to_vec();
        bytes.resize(DESCRIPTOR_LEN + payload, 0);
        raw.send(&bytes);
        raw.expect_closed(what);
        scene.d.assert_running();
    }
    // A memblock with seek mode 4 (only 0..=3 exist).
    let mut raw = Raw::connect(&scene.d);
    let d = Descriptor {
        length: 8,
        flags: 4,
        ..Descriptor::default()
    };
    let mut bytes = d.encode().to_vec();
    bytes.extend_from_slice(&[0; 8]);
    raw.send(&bytes);
    raw.expect_closed("seek mode 4");
    scene.finish();
}

#[test]
fn oversized_frames_are_refused_or_skipped() {
    let scene = Scene::start("h-big");
    // A memblock of the largest length the protocol allows, for a channel
    // this client does not own.
    let mut raw = Raw::connect(&scene.d);
    let block = f32le_bytes(&vec![HOSTILE; FRAME_SIZE_MAX_ALLOW as usize / 4]);
    if raw.memblock(0, &block) {
        raw.usable();
    }
    drop(raw);
    // A 4 MiB packet: GET_SERVER_INFO followed by 4 MiB of trailing bytes.
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.tag();
    let mut w = TagWriter::command(GET_SERVER_INFO, tag);
    w.put_arbitrary(&vec![0x42; 4 << 20]);
    if raw.packet(w.as_bytes()) {
        refused_or_closed(
            &mut raw,
            tag,
            &[ERR_INVALID, ERR_PROTOCOL],
            "4 MiB GET_SERVER_INFO",
        );
    }
    drop(raw);
    scene.finish();
}

#[test]
fn bad_tag_types_are_refused() {
    let scene = Scene::start("h-tags");
    // GET_SINK_INFO with its index as `B` (u8) instead of `L`.
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.tag();
    let mut w = TagWriter::command(GET_SINK_INFO, tag);
    w.put_u8(0).put_string(None);
    raw.packet(w.as_bytes());
    refused_or_closed(&mut raw, tag, &[ERR_INVALID, ERR_PROTOCOL], "u8 for u32");
    // An unknown tag byte after GET_SERVER_INFO's header.
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.tag();
    let mut p = TagWriter::command(GET_SERVER_INFO, tag).into_bytes();
    p.extend_from_slice(&[b'Z', 0, 0, 0, 1]);
    raw.packet(&p);
    refused_or_closed(&mut raw, tag, &[ERR_INVALID, ERR_PROTOCOL], "tag 'Z'");
    // The command itself as a string: there is no tag to answer.
    let mut raw = Raw::connect(&scene.d);
    let mut w = TagWriter::new();
    w.put_string(Some("GET_SERVER_INFO")).put_u32(77);
    raw.packet(w.as_bytes());
    raw.usable();
    drop(raw);
    scene.finish();
}

#[test]
fn truncated_packets_are_refused() {
    let scene = Scene::start("h-trunc");
    // GET_SINK_INFO whose name string has no NUL.
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.tag();
    let mut p = TagWriter::command(GET_SINK_INFO, tag).into_bytes();
    p.extend_from_slice(&[b'L', 0xFF, 0xFF, 0xFF, 0xFF, b't']);
    p.extend_from_slice(b"srb_out");
    raw.packet(&p);
    refused_or_closed(
        &mut raw,
        tag,
        &[ERR_INVALID, ERR_PROTOCOL],
        "string without NUL",
    );
    // GET_SINK_INFO whose index stops after two bytes.
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.tag();
    let mut p = TagWriter::command(GET_SINK_INFO, tag).into_bytes();
    p.extend_from_slice(&[b'L', 0, 0]);
    raw.packet(&p);
    refused_or_closed(&mut raw, tag, &[ERR_INVALID, ERR_PROTOCOL], "cut u32");
    // CREATE_PLAYBACK_STREAM cut in its middle.
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.tag();
    let full = create_playback(tag, f32_stereo_48k(), &[1, 2], 2, &[]);
    raw.packet(&full[..full.len() / 2]);
    refused_or_closed(&mut raw, tag, &[ERR_INVALID, ERR_PROTOCOL], "cut CREATE");
    scene.assert_only_bystander("after a cut CREATE_PLAYBACK_STREAM");
    // A packet of a command and no tag.
    let mut raw = Raw::connect(&scene.d);
    let mut w = TagWriter::new();
    w.put_u32(GET_SERVER_INFO);
    raw.packet(w.as_bytes());
    raw.usable();
    // A frame cut short, then our side shut: the daemon must close.
    let mut raw = Raw::connect(&scene.d);
    let d = Descriptor {
        length: 100,
        channel: CONTROL_CHANNEL,
        ..Descriptor::default()
    };
    let mut bytes = d.encode().to_vec();
    bytes.extend_from_slice(&[b'L', 0, 0, 0, 20, b'L', 0, 0, 0, 9]);
    raw.send(&bytes);
    raw.s.shutdown(Shutdown::Write).unwrap();
    raw.expect_closed("frame cut short");
    drop(raw);
    scene.finish();
}

#[test]
fn trailing_bytes_are_refused() {
    let scene = Scene::start("h-trail");
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.tag();
    raw.packet(&create_playback(
        tag,
        f32_stereo_48k(),
        &[1, 2],
        2,
        &[b'L', 0, 0, 0, 0],
    ));
    refused_or_closed(
        &mut raw,
        tag,
        &[ERR_INVALID, ERR_PROTOCOL],
        "CREATE_PLAYBACK_STREAM with trailing bytes",
    );
    scene.assert_only_bystander("after a CREATE_PLAYBACK_STREAM with trailing bytes");
    let mut raw = Raw::connect(&scene.d);
    let tag = raw.command(GET_SERVER_INFO, |w| {
        w.put_u32(0);
    });
    refused_or_closed(
        &mut raw,
        tag,
        &[ERR_INVALID, ERR_PROTOCOL],
        "GET_SERVER_INFO with trailing bytes",
    );
    drop(raw);
    scene.finish();
}

#[test]
fn unknown_commands_get_error_2_and_the_connection_stays_usable() {
    let scene = Scene::start("h-unknown");
    let mut raw = Raw::connect(&scene.d);
    for command in [105, 200, 0x7FFF_FFFF, 0xFFFF_FFFE] {
        let tag = raw.command(command, |w| {
            w.put_u32(1);
        });
        match raw.answer(tag) {
            Answer::Error(code) => assert_eq!(code, ERR_COMMAND, "command {command}"),
            other => panic!("unknown command {command}: {other:?}"),
        }
    }
    assert!(raw.usable(), "connection unusable after unknown commands");
    drop(raw);
    scene.finish();
}

#[test]
fn bad_sample_specs_are_refused() {
    let scene = Scene::start("h-spec");
    let spec = |format: SampleFormat, channels, rate| SampleSpec {
        format,
        channels,
        rate,
    };
    let aux33: Vec<u8> = (12..45).collect();
    let cases: Vec<(&str, SampleSpec, Vec<u8>, usize)> = vec![
        (
            "format 99",
            spec(SampleFormat::Unknown(99), 2, 48_000),
            vec![1, 2],
            2,
        ),
        (
            "format 13",
            spec(SampleFormat::Unknown(13), 2, 48_000),
            vec![1, 2],
            2,
        ),
        ("channels 0", spec(FLOAT32LE, 0, 48_000), vec![], 0),
        ("rate 0", spec(FLOAT32LE, 2, 0), vec![1, 2], 2),
        ("rate 384001", spec(FLOAT32LE, 2, 384_001), vec![1, 2], 2),
        ("channels 33", spec(FLOAT32LE, 33, 48_000), aux33, 33),
        (
            "map of 1 for 2 channels",
            spec(FLOAT32LE, 2, 48_000),
            vec![0],
            2,
        ),
        (
            "map of 3 for 2 channels",
            spec(FLOAT32LE, 2, 48_000),
            vec![1, 2, 3],
            2,
        ),
        (
            "volume of 1 for 2 channels",
            spec(FLOAT32LE, 2, 48_000),
            vec![1, 2],
            1,
        ),
        (
            "channel position 51",
            spec(FLOAT32LE, 2, 48_000),
            vec![1, 51],
            2,
        ),
    ];
    for (what, ss, map, volumes) in cases {
        let mut raw = Raw::connect(&scene.d);
        let tag = raw.tag();
        raw.packet(&create_playback(tag, ss, &map, volumes, &[]));
        match raw.answer(tag) {
            Answer::Error(code) => {
                assert_eq!(code, ERR_INVALID, "{what}");
                assert!(raw.usable(), "{what}: connection unusable after ERROR");
            }
            Answer::Closed => {}
            Answer::Reply(p) => panic!("{what}: accepted (REPLY {p:02x?})"),
        }
        scene.assert_only_bystander(what);
    }
    scene.finish();
}

#[test]
fn memblocks_for_channels_the_client_does_not_own_are_never_played() {
    let scene = Scene::start("h-memblock");
    let block = f32le_bytes(&vec![HOSTILE; 8192 * 2]);
    // A client without streams: channel 0 (every connection's first
    // stream), a few more, the bystander's sink-input index, far ones.
    let mut targets = vec![0, 1, 2, 3, scene.bystander, 0x7FFF_FFFF, 0xFFFF_FFFE];
    targets.sort_unstable();
    targets.dedup();
    let mut raw = Raw::connect(&scene.d);
    for &ch in &targets {
        if !raw.memblock(ch, &block) {
            break;
        }
    }
    raw.usable();
    drop(raw);
    // A client with a stream of its own, writing to every other channel.
    let mut raw = Raw::connect(&scene.d);
    let (own, _) = create_valid(&mut raw);
    for &ch in targets.iter().chain([own + 1, own.wrapping_sub(1)].iter()) {
        // 0xFFFFFFFF would make the frame a packet, not a memblock.
        if ch == own || ch == CONTROL_CHANNEL {
            continue;
        }
        if !raw.memblock(ch, &block) {
            break;
        }
    }
    // DRAIN plays out whatever its own stream holds: nothing, unless the
    // daemon queued the stray blocks there.
    let tag = raw.command(DRAIN_PLAYBACK_STREAM, |w| {
        w.put_u32(own);
    });
    match raw.answer(tag) {
        Answer::Reply(_) => {
            let tag = raw.command(DELETE_PLAYBACK_STREAM, |w| {
                w.put_u32(own);
            });
            assert!(
                matches!(raw.answer(tag), Answer::Reply(_)),
                "DELETE of its own stream"
            );
        }
        Answer::Closed => {}
        Answer::Error(code) => panic!("DRAIN of its own stream: ERROR {code}"),
    }
    drop(raw);
    scene.finish();
}

#[test]
fn drain_and_delete_of_another_clients_stream_are_noentity() {
    let scene = Scene::start("h-noentity");
    let mut raw = Raw::connect(&scene.d);
    let mut channels = vec![0, 1, scene.bystander];
    channels.sort_unstable();
    channels.dedup();
    for &ch in &channels {
        for (command, name) in [
            (DRAIN_PLAYBACK_STREAM, "DRAIN"),
            (DELETE_PLAYBACK_STREAM, "DELETE_PLAYBACK_STREAM"),
            (DELETE_RECORD_STREAM, "DELETE_RECORD_STREAM"),
        ] {
            let tag = raw.command(command, |w| {
                w.put_u32(ch);
            });
            match raw.answer(tag) {
                Answer::Error(code) => assert_eq!(code, ERR_NOENTITY, "{name} {ch}"),
                other => panic!("{name} of channel {ch} (not ours): {other:?}"),
            }
        }
    }
    assert!(raw.usable());
    scene.assert_only_bystander("after DRAIN/DELETE of streams not ours");
    // With a stream of its own, the neighbouring channels are still not
    // its own.
    let (own, _) = create_valid(&mut raw);
    for ch in [own + 1, own + 2] {
        let tag = raw.command(DRAIN_PLAYBACK_STREAM, |w| {
            w.put_u32(ch);
        });
        match raw.answer(tag) {
            Answer::Error(code) => assert_eq!(code, ERR_NOENTITY, "DRAIN {ch}"),
            other => panic!("DRAIN of channel {ch} (not ours): {other:?}"),
        }
    }
    let tag = raw.command(DELETE_PLAYBACK_STREAM, |w| {
        w.put_u32(own);
    });
    assert!(matches!(raw.answer(tag), Answer::Reply(_)), "DELETE own");
    drop(raw);
    scene.finish();
}

// ---------------------------------------------------------------------
// The srbchannel: a client that takes the ring and then scribbles on it.

type ClientRing = srb_core::SrbChannel<
    srb_core::ring::pa::Producer,
    srb_core::ring::pa::Consumer,
    srb_linux::eventfd::Eventfd,
    srb_linux::eventfd::EventfdWait,
>;

const ENABLE_SRBCHANNEL: u32 = 101;
/// The ring memfd's name: it shows in `/proc/<srbd>/maps` per mapping.
const RING_NAME: &str = "srbd-srbchannel";
/// The tag of a [`RingClient`]'s SET_CLIENT_NAME.
const NAME_TAG: u32 = 1;
/// The client name of [`RingClient`]s that misbehave.
const HOSTILE_NAME: &str = "srb-ring-hostile";
/// Bytes per ring of srbd's block (`srbchannel.rs`: 64 KiB less header).
const RING_CAPACITY: u32 = 32_744;

/// A hand-made client that takes srbd's srbchannel offer the way libpulse
/// does (§5.2): it maps the ring block, adopts the client ends with
/// srb-core, acknowledges, and from then on can talk through the ring,
/// or write anything into the block.
struct RingClient {
    s: srb_linux::scm::ScmStream,
    decoder: srb_pulse::pstream::FrameDecoder,
    ring: ClientRing,
    ring_decoder: srb_pulse::pstream::FrameDecoder,
    map: std::sync::Arc<srb_linux::mapping::SharedMapping>,
    /// The ENABLE_SRBCHANNEL tag.
    tag: u32,
    next_tag: u32,
}

impl RingClient {
    /// Connects with SHM + memfd, takes the offer, names itself
    /// [`HOSTILE_NAME`] and (if `ack`) acknowledges the channel and waits
    /// until srbd writes to the ring ([`RingClient::await_active`]).
    fn connect(d: &Daemon, ack: bool) -> Self {
        Self::connect_named(d, ack, HOSTILE_NAME)
    }

    /// [`RingClient::connect`] with the client name `name`.
    fn connect_named(d: &Daemon, ack: bool, name: &str) -> Self {
        use srb_pulse::pstream::{Frame, FrameDecoder};
        let sock = UnixStream::connect(&d.socket).expect("connect to srbd");
        let s = srb_linux::scm::ScmStream::new(OwnedFd::from(sock)).unwrap();
        let mut decoder = FrameDecoder::new(FRAME_SIZE_MAX_ALLOW);
        decoder.set_shm_enabled(true);
        let mut ring_decoder = FrameDecoder::new(FRAME_SIZE_MAX_ALLOW);
        ring_decoder.set_shm_enabled(true);
        let mut auth = TagWriter::command(AUTH, 0);
        auth.put_u32(AUTH_SHM_MEMFD | 35)
            .put_arbitrary(&[0x5A; 256]);
        send_packet(&s, auth.as_bytes(), &[]);
        let mut c = PartialClient { s, decoder };
        let (f, _) = c.next("the AUTH reply");
        assert!(matches!(f, Frame::Packet(_)), "{f:?}");
        let (f, mut fds) = c.next("REGISTER_MEMFD_SHMID");
        assert!(matches!(f, Frame::Packet(_)) && fds.len() == 1, "{f:?}");
        let memfd = srb_linux::memfd::SealedMemfd::import(fds.remove(0), 65_536)
            .expect("the ring memfd is sealed");
        let (f, fds) = c.next("ENABLE_SRBCHANNEL");
        let Frame::Packet(p) = f else {
            panic!("ENABLE_SRBCHANNEL expected, got {f:?}")
        };
        let mut r = TagReader::new(&p);
        assert_eq!(r.get_u32().unwrap(), ENABLE_SRBCHANNEL);
        let tag = r.get_u32().unwrap();
        assert_eq!(fds.len(), 2, "fd0 and fd1");
        let mut fds = fds.into_iter();
        let fd0 = srb_linux::eventfd::Eventfd::import(fds.next().unwrap()).unwrap();
        let fd1 = srb_linux::eventfd::Eventfd::import(fds.next().unwrap()).unwrap();
        let (f, _) = c.next("the ring block reference");
        let Frame::ShmRef(block) = f else {
            panic!("the ring block expected, got {f:?}")
        };
        let map = memfd.map().unwrap();
        // SAFETY: the block lies in `map`, which this client keeps as long as
        // the ring ends; nothing forms a reference into it.
        let b = unsafe { map.block(block.shm.index as usize, block.shm.length as usize) }.unwrap();
        // SAFETY: one client end per block.
        let (_, ends) = unsafe { srb_core::layout::pa::adopt_client(b) }.unwrap();
        let ring =
            srb_core::SrbChannel::new(ends, fd0, srb_linux::eventfd::EventfdWait::new(fd1, None));
        let PartialClient { s, decoder } = c;
        let mut rc = Self {
            s,
            decoder,
            ring,
            ring_decoder,
            map,
            tag,
            next_tag: 10,
        };
        let mut w = TagWriter::command(SET_CLIENT_NAME, NAME_TAG);
        let mut props = Proplist::new();
        props.set_str("application.name", name).unwrap();
        w.put_proplist(&props);
        send_packet(&rc.s, w.as_bytes(), &[]);
        if ack {
            rc.ack(tag);
            rc.await_active();
        }
        rc
    }

    /// Waits until srbd has switched its writes to the ring: a request
    /// sent over the socket after the ack must be answered in the ring
    /// (srbd handles socket frames in order, so the ack is in effect by
    /// then). Without this a request written into the ring right after
    /// the ack may be read before srbd has seen the ack (it reads the ring
    /// from the offer on, §5.2) and be answered, rightly, over the socket,
    /// where a client that reads only the ring never sees it.
    fn await_active(&mut self) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let w = TagWriter::command(GET_SERVER_INFO, tag);
        send_packet(&self.s, w.as_bytes(), &[]);
        self.ring_reply(tag);
    }

    /// ENABLE_SRBCHANNEL(tag) over the socket.
    fn ack(&mut self, tag: u32) {
        let w = TagWriter::command(ENABLE_SRBCHANNEL, tag);
        send_packet(&self.s, w.as_bytes(), &[]);
    }

    /// Writes `bytes` into the client→server ring, waiting for space.
    fn ring_write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = self.ring.write(bytes).expect("ring write");
            bytes = &bytes[n..];
            if n == 0 {
                self.ring.wait(Some(DEADLINE)).expect("wait for ring space");
            }
        }
    }

    /// GET_SERVER_INFO through the ring; the reply must come back through
    /// the ring.
    fn ring_round_trip(&mut self) {
        use srb_pulse::pstream::Frame;
        let tag = self.next_tag;
        self.next_tag += 1;
        let w = TagWriter::command(GET_SERVER_INFO, tag);
        let bytes = Frame::Packet(w.as_bytes().to_vec()).encode().unwrap();
        self.ring_write(&bytes);
        self.ring_reply(tag);
    }

    /// Reads srbd's ring until the REPLY to `tag` (other frames skipped).
    fn ring_reply(&mut self, tag: u32) {
        use srb_pulse::pstream::Frame;
        let started = std::time::Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(f) = self.ring_decoder.next_frame().expect("srbd's ring frames") {
                if let Frame::Packet(p) = f {
                    let mut r = TagReader::new(&p);
                    let (cmd, t) = (r.get_u32().unwrap(), r.get_u32().unwrap());
                    if t == tag {
                        assert_eq!(cmd, REPLY, "the answer to tag {tag} in the ring");
                        return;
                    }
                }
            }
            let n = self.ring.read(&mut buf).expect("ring read");
            self.ring_decoder.push(&buf[..n]);
            if n == 0 {
                assert!(
                    started.elapsed() < DEADLINE,
                    "no reply to tag {tag} through the ring within {DEADLINE:?}"
                );
                self.ring
                    .wait(Some(std::time::Duration::from_millis(100)))
                    .expect("ring wait");
            }
        }
    }

    /// Stores `value` into the shared block at `offset` (a 4-byte word).
    fn scribble(&self, offset: usize, value: u32) {
        let p = self.map.atomic_u32(offset).expect("a word of the block");
        // SAFETY: an aligned word inside the live mapping, stored atomically;
        // no reference to the shared memory is formed.
        unsafe { (*p).store(value, std::sync::atomic::Ordering::SeqCst) };
    }

    /// Loads the 4-byte word of the shared block at `offset`.
    fn word(&self, offset: usize) -> u32 {
        let p = self.map.atomic_u32(offset).expect("a word of the block");
        // SAFETY: an aligned word inside the live mapping, loaded atomically;
        // no reference to the shared memory is formed.
        unsafe { (*p).load(std::sync::atomic::Ordering::SeqCst) }
    }

    /// Reads the socket until the REPLY to `tag` (other frames skipped).
    fn socket_reply(&mut self, tag: u32) {
        use srb_pulse::pstream::Frame;
        loop {
            while let Some(f) = self.decoder.next_frame().expect("srbd's frames") {
                if let Frame::Packet(p) = f {
                    let mut r = TagReader::new(&p);
                    let (cmd, t) = (r.get_u32().unwrap(), r.get_u32().unwrap());
                    if t == tag {
                        assert_eq!(cmd, REPLY, "the answer to tag {tag} on the socket");
                        return;
                    }
                }
            }
            let mut buf = vec![0u8; self.decoder.wanted().max(1)];
            self.s
                .recv_exact(&mut buf, Some(DEADLINE))
                .unwrap_or_else(|e| panic!("the answer to tag {tag} on the socket: {e}"));
            self.decoder.push(&buf);
        }
    }

    /// (command, tag) of every packet srbd has sent over the socket that
    /// this client has not read yet, read without waiting: srbd's socket
    /// sends are whole and blocking, so whatever it sent there before its
    /// last ring write this client read is queued already.
    fn socket_packets_now(&mut self) -> Vec<(u32, u32)> {
        use srb_pulse::pstream::Frame;
        let mut got = Vec::new();
        loop {
            while let Some(f) = self.decoder.next_frame().expect("srbd's frames") {
                let Frame::Packet(p) = f else {
                    panic!("a frame other than a packet on the socket: {f:?}")
                };
                let mut r = TagReader::new(&p);
                got.push((r.get_u32().unwrap(), r.get_u32().unwrap()));
            }
            let mut buf = vec![0u8; self.decoder.wanted().max(1)];
            match self.s.try_recv(&mut buf) {
                Ok(Some(n)) => self.decoder.push(&buf[..n]),
                Ok(None) => break,
                Err(e) => panic!("the socket: {e}"),
            }
        }
        assert!(!self.decoder.is_mid_frame(), "half a frame on the socket");
        assert!(self.s.take_queued().is_empty(), "fds on the socket");
        got
    }

    /// Makes srbd look at the connection: a GET_SERVER_INFO over the
    /// socket (its answer, if any, is not awaited).
    fn poke(&mut self) {
        let w = TagWriter::command(GET_SERVER_INFO, 0xBEEF);
        send_packet(&self.s, w.as_bytes(), &[]);
    }

    /// The daemon must close this connection (frames before that skipped).
    fn expect_closed(&mut self, what: &str) {
        let mut c = PartialClient {
            s: std::mem::replace(&mut self.s, srb_linux::scm::ScmStream::pair().unwrap().0),
            decoder: std::mem::replace(&mut self.decoder, srb_pulse::pstream::FrameDecoder::new(1)),
        };
        while c.try_next(what).is_some() {}
    }
}

/// The socket half of a client while the ring is not set up yet.
struct PartialClient {
    s: srb_linux::scm::ScmStream,
    decoder: srb_pulse::pstream::FrameDecoder,
}

impl PartialClient {
    /// The next frame and the fds that came with it (reads never cross a
    /// frame boundary, so fds belong to their frame); `None`: closed.
    fn try_next(&mut self, what: &str) -> Option<(srb_pulse::pstream::Frame, Vec<OwnedFd>)> {
        loop {
            if let Some(f) = self.decoder.next_frame().expect("srbd's frames") {
                return Some((f, self.s.take_queued()));
            }
            let mut buf = vec![0u8; self.decoder.wanted().max(1)];
            match self.s.recv_exact(&mut buf, Some(DEADLINE)) {
                Ok(()) => self.decoder.push(&buf),
                Err(srb_linux::scm::RecvError::PeerGone) => return None,
                Err(e) => panic!("{what}: {e}"),
            }
        }
    }

    fn next(&mut self, what: &str) -> (srb_pulse::pstream::Frame, Vec<OwnedFd>) {
        self.try_next(what)
            .unwrap_or_else(|| panic!("srbd closed before {what}"))
    }
}

/// One packet frame over the socket, `fds` attached to its first byte.
fn send_packet(s: &srb_linux::scm::ScmStream, payload: &[u8], fds: &[BorrowedFd<'_>]) {
    let d = Descriptor {
        length: payload.len() as u32,
        channel: CONTROL_CHANNEL,
        ..Descriptor::default()
    };
    let mut bytes = d.encode().to_vec();
    bytes.extend_from_slice(payload);
    // A daemon that already closed the connection is what some cases
    // expect; the close is checked separately.
    let _ = s.send(&bytes, fds, false);
}

/// How many mappings of srbchannel rings srbd holds.
fn ring_mappings(d: &Daemon) -> usize {
    std::fs::read_to_string(format!("/proc/{}/maps", d.pid()))
        .expect("/proc/<srbd>/maps")
        .lines()
        .filter(|l| l.contains(RING_NAME))
        .count()
}

/// srbd's complete "connection closed" log lines so far, oldest first (a
/// line still being written is left out).
fn closed_lines(d: &Daemon) -> Vec<String> {
    let log = d.log();
    let done = log.rfind('\n').map_or("", |n| &log[..n]);
    done.lines()
        .filter(|l| l.contains("connection closed"))
        .map(str::to_owned)
        .collect()
}

/// Waits for the connection close that follows the first `before` ones
/// and fails unless it is the only new one and names `reason`: the close
/// is bound to the case that caused it, so a reason that is a prefix of
/// an earlier case's ("value -2" of "value -2147483648") cannot match the
/// earlier line.
fn assert_next_close(d: &Daemon, before: usize, reason: &str) {
    let lines = d.wait_for(&format!("a connection closed for {reason:?}"), || {
        let l = closed_lines(d);
        (l.len() > before).then_some(l)
    });
    assert!(
        lines.len() == before + 1 && lines[before].contains(reason),
        "want exactly one new close, for {reason:?}; got:\n{}",
        lines[before..].join("\n")
    );
}

/// Waits until srbd logged `n` normal disconnects of clients named `name`
/// that had their srbchannel active; returns those lines.
fn wait_ring_disconnects(d: &Daemon, name: &str, n: usize) -> Vec<String> {
    d.wait_for(&format!("{n} ring client(s) {name} disconnected"), || {
        let lines: Vec<String> = d
            .log()
            .lines()
            .filter(|l| {
                l.contains("client disconnected")
                    && log_field(l, "name") == Some(name)
                    && log_field(l, "srbchannel") == Some("true")
            })
            .map(str::to_owned)
            .collect();
        (lines.len() >= n).then_some(lines)
    })
}

/// GET_SERVER_INFO round trips that move more than [`RING_CAPACITY`]
/// bytes through each ring (a request is 30 bytes, a reply about 100).
const WRAPPING_ROUND_TRIPS: usize = 1200;

/// Fails unless srbd's disconnect `line` counts more than a ring's
/// capacity read from and written to the ring (so both wrapped).
fn assert_both_rings_wrapped(line: &str) {
    for key in ["srb_in", "srb_out"] {
        let bytes: u64 = log_field(line, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {line:?}"));
        assert!(bytes > u64::from(RING_CAPACITY), "{key}: {line}");
    }
}

/// Waits until srbd holds exactly `want` ring mappings.
fn assert_ring_mappings(scene: &Scene, want: usize) {
    scene.d.wait_for(
        &format!("{want} srbchannel ring mapping(s) in srbd"),
        || (ring_mappings(&scene.d) == want).then_some(()),
    );
}

/// A client that takes srbd's offer really talks through the ring, so the
/// hostile cases below reach it: with the channel acknowledged,
/// [`WRAPPING_ROUND_TRIPS`] GET_SERVER_INFO requests written only into the
/// ring are answered only through the ring, and a request sent over the
/// socket is answered through the ring too (srbd writes everything there
/// once the channel is active): the socket carried nothing after the
/// offer but, at most, the reply to SET_CLIENT_NAME, sent before the ack
/// (it may also ride in the ring, §5.7). srbd logs the client's
/// disconnect with the channel active and more than a ring's capacity
/// counted each way (both rings wrapped). A request a second client
/// writes into the ring before its ack is answered too, over the socket
/// (srbd reads the ring from the offer on and writes to it only after the
/// ack, §5.2). srbd's fds and ring mappings go back to the bystander's.
#[test]
fn srbchannel_round_trip_through_the_ring() {
    use srb_core::layout::pa::CAPACITY_OFFSET;
    let scene = Scene::start("h-ring-ok");
    let baseline = scene.fd_baseline();
    let maps = ring_mappings(&scene.d);
    assert_eq!(maps, 1, "the bystander pacat has its ring mapped in srbd");
    let mut c = RingClient::connect(&scene.d, true);
    assert_eq!(c.word(CAPACITY_OFFSET), RING_CAPACITY, "srbd's ring header");
    for _ in 0..WRAPPING_ROUND_TRIPS {
        c.ring_round_trip();
    }
    c.poke();
    c.ring_reply(0xBEEF);
    let socket = c.socket_packets_now();
    assert!(
        socket.len() <= 1 && socket.iter().all(|&p| p == (REPLY, NAME_TAG)),
        "(command, tag) of the packets on the socket after the offer: {socket:?}"
    );
    assert_eq!(ring_mappings(&scene.d), maps + 1);
    drop(c);
    let lines = wait_ring_disconnects(&scene.d, HOSTILE_NAME, 1);
    assert_both_rings_wrapped(&lines[0]);
    // A request in the ring before the ack.
    let mut c = RingClient::connect(&scene.d, false);
    let w = TagWriter::command(GET_SERVER_INFO, 0xEA21);
    c.ring_write(
        &srb_pulse::pstream::Frame::Packet(w.as_bytes().to_vec())
            .encode()
            .unwrap(),
    );
    c.socket_reply(0xEA21);
    let tag = c.tag;
    c.ack(tag);
    c.await_active();
    c.ring_round_trip();
    drop(c);
    wait_ring_disconnects(&scene.d, HOSTILE_NAME, 2);
    assert_eq!(closed_lines(&scene.d), Vec::<String>::new());
    scene.assert_fds_back(baseline);
    assert_ring_mappings(&scene, maps);
    scene.finish();
}

/// Every count and fdsem word srbd reads back from the block, set to a
/// value the protocol cannot produce, closes that connection with the
/// field and value named. Read side: the client→server count at -1, 2^31
/// and capacity + 1, and srbd's own semaphore (waiting -5, signalled 7,
/// in_pipe -3), seen when the client makes srbd look (a request over the
/// socket). Write side: the server→client count at the same three values,
/// and the client's semaphore (signalled 7; waiting -5 with signalled 0),
/// which srbd reads when it posts after writing its answer. Each client
/// first proves its ring works (a round trip); each close is bound to its
/// case; the bystander plays on, srbd's fds return to baseline and every
/// hostile ring is unmapped.
#[test]
fn srbchannel_hostile_block_words_close_only_that_client() {
    use srb_core::layout::pa::{
        READ_COUNT_OFFSET, READ_SEMDATA_OFFSET, WRITE_COUNT_OFFSET, WRITE_SEMDATA_OFFSET,
    };
    let scene = Scene::start("h-ring-words");
    let baseline = scene.fd_baseline();
    let maps = ring_mappings(&scene.d);
    let mut cases: Vec<WordCase> = Vec::new();
    for (ring, offset) in [
        ("client→server", READ_COUNT_OFFSET),
        ("server→client", WRITE_COUNT_OFFSET),
    ] {
        for value in [u32::MAX, 1 << 31, RING_CAPACITY + 1] {
            cases.push((
                format!("{ring} ring count {value:#x}"),
                vec![(offset, value)],
                format!("count holds impossible value {}", value as i32),
            ));
        }
    }
    let fdsem = |name: &str, base: usize, stores: Vec<(usize, i32)>, reason: &str| {
        (
            format!("{name} fdsem: {stores:?}"),
            stores
                .into_iter()
                .map(|(word, v)| (base + word, v as u32))
                .collect(),
            reason.to_owned(),
        )
    };
    let ours = READ_SEMDATA_OFFSET;
    let theirs = WRITE_SEMDATA_OFFSET;
    // Word offsets in pa_fdsem_data: waiting 0, signalled 4, in_pipe 8.
    cases.extend([
        fdsem(
            "srbd's",
            ours,
            vec![(0, -5)],
            "fdsem waiting holds impossible value -5",
        ),
        fdsem(
            "srbd's",
            ours,
            vec![(4, 7)],
            "fdsem signalled holds impossible value 7",
        ),
        fdsem(
            "srbd's",
            ours,
            vec![(8, -3)],
            "fdsem in_pipe holds impossible value -3",
        ),
        fdsem(
            "the client's",
            theirs,
            vec![(4, 7)],
            "fdsem signalled holds impossible value 7",
        ),
        fdsem(
            "the client's",
            theirs,
            vec![(4, 0), (0, -5)],
            "fdsem waiting holds impossible value -5",
        ),
    ]);
    for (what, stores, reason) in cases {
        let before = closed_lines(&scene.d).len();
        let mut c = RingClient::connect(&scene.d, true);
        c.ring_round_trip();
        for (offset, value) in stores {
            c.scribble(offset, value);
        }
        c.poke();
        c.expect_closed(&what);
        assert_next_close(
            &scene.d,
            before,
            &format!("srbchannel: ring: shared memory corrupt: {reason}"),
        );
        scene.d.assert_running();
    }
    scene.assert_fds_back(baseline);
    assert_ring_mappings(&scene, maps);
    scene.finish();
}

/// The header words srbd never reads back are harmless: a client that
/// sets the capacity and both ring offsets to nonsense keeps a working
/// ring (srbd keeps its geometry in private memory; the
/// [`WRAPPING_ROUND_TRIPS`] after the scribble wrap both rings) and its
/// connection ends as a normal disconnect, not a close.
#[test]
fn srbchannel_header_geometry_scribbles_are_ignored() {
    use srb_core::layout::pa::{CAPACITY_OFFSET, READBUF_OFFSET_OFFSET, WRITEBUF_OFFSET_OFFSET};
    let scene = Scene::start("h-ring-geometry");
    let baseline = scene.fd_baseline();
    let maps = ring_mappings(&scene.d);
    let mut c = RingClient::connect(&scene.d, true);
    c.ring_round_trip();
    c.scribble(CAPACITY_OFFSET, u32::MAX);
    c.scribble(READBUF_OFFSET_OFFSET, 0xFFFF_FFF0);
    c.scribble(WRITEBUF_OFFSET_OFFSET, 0x7FFF_FFFF);
    for _ in 0..WRAPPING_ROUND_TRIPS {
        c.ring_round_trip();
    }
    drop(c);
    let lines = wait_ring_disconnects(&scene.d, HOSTILE_NAME, 1);
    assert_both_rings_wrapped(&lines[0]);
    assert_eq!(closed_lines(&scene.d), Vec::<String>::new());
    scene.assert_fds_back(baseline);
    assert_ring_mappings(&scene, maps);
    scene.finish();
}

/// fd0 written thousands of times without the fdsem's in_pipe accounting
/// (an eventfd storm that would otherwise keep srbd's poll ready and spin
/// its thread) closes that connection as a corrupt in_pipe; the
/// bystander plays on and the ring is unmapped.
#[test]
fn srbchannel_eventfd_storm_closes_only_that_client() {
    let scene = Scene::start("h-ring-storm");
    let baseline = scene.fd_baseline();
    let maps = ring_mappings(&scene.d);
    let before = closed_lines(&scene.d).len();
    let mut c = RingClient::connect(&scene.d, true);
    c.ring_round_trip();
    storm(&mut c);
    c.expect_closed("eventfd storm");
    assert_next_close(
        &scene.d,
        before,
        "srbchannel: ring: shared memory corrupt: fdsem in_pipe holds impossible value",
    );
    scene.assert_fds_back(baseline);
    assert_ring_mappings(&scene, maps);
    scene.finish();
}

/// A hostile ring client's case: what it does, the block words it stores
/// (offset, value) in this order, and the reason srbd must log.
type WordCase = (String, Vec<(usize, u32)>, String);

/// What a hostile ring client does, the misbehaviour itself, and the
/// reason srbd must log.
type Misbehaviour = (&'static str, fn(&mut RingClient), &'static str);

/// Writes fd0 10 000 times without raising in_pipe (stops early if the
/// daemon is gone, which it may be before the last write).
fn storm(c: &mut RingClient) {
    for _ in 0..10_000 {
        if srb_core::Notify::notify(c.ring.notifier()).is_err() {
            break;
        }
    }
}

/// The protocol's own messages misused on the srbchannel close that
/// connection with a named error: an ack with the wrong tag, a second ack
/// (after a working round trip), a descriptor no frame has (a length-0
/// packet) written into the ring, and REGISTER_MEMFD_SHMID sent through
/// the ring, where no fd can travel (the SHM registry's fd-count error).
/// The bystander plays on; fds and ring mappings return to baseline.
#[test]
fn srbchannel_bad_acks_and_ring_frames_close_only_that_client() {
    use srb_pulse::pstream::Frame;
    let scene = Scene::start("h-ring-frames");
    let baseline = scene.fd_baseline();
    let maps = ring_mappings(&scene.d);
    // An ack with the wrong tag.
    let before = closed_lines(&scene.d).len();
    let mut c = RingClient::connect(&scene.d, false);
    let wrong = c.tag ^ 1;
    c.ack(wrong);
    c.expect_closed("wrong-tag ack");
    assert_next_close(
        &scene.d,
        before,
        &format!("srbchannel: ENABLE_SRBCHANNEL with tag {wrong:#x} answers no offer"),
    );
    // A second ack.
    let before = closed_lines(&scene.d).len();
    let mut c = RingClient::connect(&scene.d, true);
    c.ring_round_trip();
    let tag = c.tag;
    c.ack(tag);
    c.expect_closed("second ack");
    assert_next_close(
        &scene.d,
        before,
        &format!("srbchannel: ENABLE_SRBCHANNEL with tag {tag:#x} answers no offer"),
    );
    // Garbage in the ring: a descriptor no frame has (length 0 packet).
    let before = closed_lines(&scene.d).len();
    let mut c = RingClient::connect(&scene.d, true);
    c.ring_round_trip();
    c.ring_write(&[0u8; DESCRIPTOR_LEN]);
    c.expect_closed("a bad descriptor through the ring");
    assert_next_close(&scene.d, before, "malformed frame");
    // REGISTER_MEMFD_SHMID through the ring, where no fd can travel.
    let before = closed_lines(&scene.d).len();
    let mut c = RingClient::connect(&scene.d, true);
    c.ring_round_trip();
    let mut w = TagWriter::command(REGISTER_MEMFD_SHMID, NO_TAG);
    w.put_u32(POOL_ID);
    c.ring_write(&Frame::Packet(w.as_bytes().to_vec()).encode().unwrap());
    c.expect_closed("REGISTER_MEMFD_SHMID through the ring");
    assert_next_close(
        &scene.d,
        before,
        &format!("REGISTER_MEMFD_SHMID {POOL_ID} carried 0 fds"),
    );
    scene.d.assert_running();
    scene.assert_fds_back(baseline);
    assert_ring_mappings(&scene, maps);
    scene.finish();
}

/// One client's corrupt ring is contained to its connection: two
/// well-behaved ring clients (beside the bystander pacat, itself on an
/// srbchannel) do GET_SERVER_INFO round trips through their rings
/// without pause, each in its own thread, while hostile ring clients one
/// after another corrupt their count, corrupt srbd's in_pipe, storm fd0
/// and write a bad descriptor. After each hostile close, every
/// well-behaved client completes a round trip begun after that close;
/// only the hostile connections are closed, the well-behaved ones end as
/// normal disconnects with their channel active, and fds and ring
/// mappings return to baseline.
#[test]
fn srbchannel_well_behaved_clients_keep_working_beside_hostile_ones() {
    use srb_core::layout::pa::{READ_COUNT_OFFSET, READ_SEMDATA_OFFSET};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    const GOOD_NAME: &str = "srb-ring-good";
    let scene = Scene::start("h-ring-beside");
    let baseline = scene.fd_baseline();
    let maps = ring_mappings(&scene.d);
    let stop = Arc::new(AtomicBool::new(false));
    let good: Vec<_> = (0..2)
        .map(|_| {
            let mut c = RingClient::connect_named(&scene.d, true, GOOD_NAME);
            c.ring_round_trip();
            let done = Arc::new(AtomicU64::new(0));
            let (stop, count) = (stop.clone(), done.clone());
            let t = std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    c.ring_round_trip();
                    count.fetch_add(1, SeqCst);
                }
                c
            });
            (done, t)
        })
        .collect();
    assert_ring_mappings(&scene, maps + 2);
    let hostile: [Misbehaviour; 4] = [
        (
            "ring count -1",
            |c| c.scribble(READ_COUNT_OFFSET, u32::MAX),
            "count holds impossible value -1",
        ),
        (
            "srbd's in_pipe -3",
            |c| c.scribble(READ_SEMDATA_OFFSET + 8, -3i32 as u32),
            "fdsem in_pipe holds impossible value -3",
        ),
        (
            "eventfd storm",
            storm,
            "fdsem in_pipe holds impossible value",
        ),
        (
            "a bad descriptor in the ring",
            |c| c.ring_write(&[0u8; DESCRIPTOR_LEN]),
            "malformed frame",
        ),
    ];
    for (what, misbehave, reason) in hostile {
        let before = closed_lines(&scene.d).len();
        let mut c = RingClient::connect(&scene.d, true);
        c.ring_round_trip();
        misbehave(&mut c);
        c.poke();
        c.expect_closed(what);
        assert_next_close(&scene.d, before, reason);
        for (i, (done, t)) in good.iter().enumerate() {
            // The round trip under way at the close may have begun before
            // it; the one after that begun after it.
            let at = done.load(SeqCst);
            poll_until(
                &format!("well-behaved ring client {i}: a round trip after {what}"),
                || (done.load(SeqCst) >= at + 2 || t.is_finished()).then_some(()),
                || format!("srbd log:\n{}", scene.d.log()),
            );
            assert!(
                !t.is_finished(),
                "well-behaved ring client {i} stopped beside {what}"
            );
        }
    }
    stop.store(true, SeqCst);
    for (_, t) in good {
        let mut c = t.join().expect("a well-behaved ring client failed");
        c.ring_round_trip();
        drop(c);
    }
    wait_ring_disconnects(&scene.d, GOOD_NAME, 2);
    let closed = closed_lines(&scene.d);
    assert!(
        closed.len() == hostile.len()
            && closed
                .iter()
                .all(|l| log_field(l, "name") == Some(HOSTILE_NAME)),
        "only the hostile connections closed:\n{}",
        closed.join("\n")
    );
    scene.assert_fds_back(baseline);
    assert_ring_mappings(&scene, maps);
    scene.finish();
}
