//! The control loop with real sockets: deadlines, malformed input, fds
//! on the right frame, `MSG_CTRUNC`, the srbchannel offer, each ending in
//! the named close reason.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::control::client::{CloseReason, DeadlineError, Limits, ReadError, Transport};
use crate::control::outbound::SendError;
use crate::control::server_loop::ServerLoop;
use crate::control::session::tests::*;
use crate::control::session::{Peer, AUTH_TIMEOUT, FRAME_TIMEOUT, MAX_FRAME_PAYLOAD};
use crate::control::srbchannel::SrbError;
use crate::Server;
use srb_linux::scm::{RecvError, ScmStream};
use srb_pulse::commands::{Command, NO_TAG};
use srb_pulse::pstream::{Frame, FrameDecoder, DESCRIPTOR_LEN};
use srb_pulse::tagstruct::{TagReader, TagWriter};

fn limits(auth: Duration, frame: Duration) -> Limits {
    Limits { auth, frame }
}

/// Runs a control loop serving `transport` on a thread until the
/// client is gone; returns how it ended.
fn spawn_loop(
    transport: impl FnOnce() -> Transport + Send + 'static,
    srv: Arc<Server>,
    l: Limits,
) -> std::thread::JoinHandle<Result<(), CloseReason>> {
    std::thread::spawn(move || {
        let mut lp = ServerLoop::new(srv.clone())
            .unwrap()
            .with_limits(l)
            .record_ends();
        lp.add_client(transport(), Peer::Unix { uid: srv.uid })
            .unwrap();
        lp.run_until_idle(Duration::from_secs(60)).unwrap();
        let mut ended = lp.take_ended();
        assert_eq!(ended.len(), 1, "the client ended within 60 s");
        ended.pop().unwrap().1
    })
}

/// Runs a control loop on a unix socketpair end in a thread.
fn spawn_unix(
    b: std::os::unix::net::UnixStream,
    srv: Arc<Server>,
    l: Limits,
) -> std::thread::JoinHandle<Result<(), CloseReason>> {
    spawn_loop(
        move || Transport::Unix(ScmStream::new(b.into()).unwrap()),
        srv,
        l,
    )
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
    assert!(matches!(
        t.join().unwrap(),
        Err(CloseReason::Deadline(DeadlineError::AuthTimeout(_)))
    ));
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
    assert!(matches!(
        t.join().unwrap(),
        Err(CloseReason::Read(ReadError::Frame(_)))
    ));

    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = spawn_loop(
        move || Transport::Tcp(Arc::new(b.into())),
        server(),
        limits(AUTH_TIMEOUT, FRAME_TIMEOUT),
    );
    a.write_all(&garbage).unwrap();
    assert!(matches!(
        t.join().unwrap(),
        Err(CloseReason::Read(ReadError::Frame(_)))
    ));
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
            matches!(r, Err(CloseReason::Deadline(DeadlineError::FrameStalled { buffered, .. })) if buffered == cut
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
    assert!(matches!(
        t.join().unwrap(),
        Err(CloseReason::Read(ReadError::Truncated(4)))
    ));
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

fn fd_client(srv: Arc<Server>) -> (FdClient, std::thread::JoinHandle<Result<(), CloseReason>>) {
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
        Err(CloseReason::Send(SendError::Srb(SrbError::UnexpectedAck { tag: t }))) if t == tag ^ 1
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
        Err(CloseReason::Send(SendError::Srb(SrbError::UnexpectedAck {
            tag: 5
        })))
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
        matches!(
            r,
            Err(CloseReason::Read(ReadError::Recv(
                RecvError::Truncated { .. }
            )))
        ),
        "{r:?}"
    );
}
