//! Hostile peers during the handshake: every bad memfd, wrong fd kind,
//! wrong fd count and truncated control message gets its own named error,
//! and every fd received is closed again (the process's fd count returns
//! to its baseline).
//!
//! The tests in this file take one lock so that no other test opens or
//! closes fds while one of them counts.

mod common;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::IoSlice;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use srb_linux::eventfd::Eventfd;
use srb_linux::fdkind::FdKind;
use srb_linux::frame::{send_frame, FrameError};
use srb_linux::handshake::{
    self, ChannelConfig, HandshakeError, LayoutKind, Offer, SignalKind, FRAME_ACCEPT,
    FRAME_EVENTFDS, FRAME_OFFER,
};
use srb_linux::memfd::{create_unsealed_memfd, ImportError, SealedMemfd};
use srb_linux::scm::{ClaimError, RecvError, ScmStream};

static FD_LOCK: Mutex<()> = Mutex::new(());

/// A valid offer for a 4096-byte srb ring with futex signals in 8192 bytes.
fn offer(signal: SignalKind) -> Offer {
    let block_len = srb_core::layout::srb::block_len(4096) as u64;
    let (signal_offset, memfd_len) = match signal {
        SignalKind::Futex => (block_len.div_ceil(128) * 128, 16384),
        SignalKind::Eventfd => (0, 16384),
    };
    Offer {
        layout: LayoutKind::Srb,
        signal,
        capacity: 4096,
        memfd_len,
        block_offset: 0,
        block_len,
        signal_offset,
    }
}

/// Runs `hostile` against an attacher and returns the attacher's error,
/// checking that the fd count is back at its baseline afterwards.
fn attacher_refuses(hostile: impl FnOnce(&ScmStream)) -> HandshakeError {
    let _guard = FD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let baseline = common::fd_count();
    let err = {
        let (evil, ours) = ScmStream::pair().unwrap();
        hostile(&evil);
        let err = match handshake::accept(ours, Some(common::HANDSHAKE)) {
            Ok(_) => panic!("hostile offer accepted"),
            Err(e) => e,
        };
        drop(evil);
        err
    };
    assert_eq!(common::fd_count(), baseline, "fds leaked after {err}");
    err
}

fn send_offer(s: &ScmStream, o: &Offer, fds: &[BorrowedFd<'_>]) {
    send_frame(s, FRAME_OFFER, &o.encode(), fds, false).unwrap();
}

#[test]
fn an_unsealed_memfd_is_refused() {
    let e = attacher_refuses(|s| {
        let fd = create_unsealed_memfd("evil", 16384).unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[fd.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Import(ImportError::NotSealed {
            missing: SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
        })
    );
}

#[test]
fn a_memfd_sealed_without_shrink_is_refused() {
    let e = attacher_refuses(|s| {
        let fd = create_unsealed_memfd("evil", 16384).unwrap();
        rustix::fs::fcntl_add_seals(&fd, SealFlags::GROW).unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[fd.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Import(ImportError::NotSealed {
            missing: SealFlags::SHRINK | SealFlags::SEAL
        })
    );
}

#[test]
fn a_memfd_shorter_than_claimed_is_refused() {
    let e = attacher_refuses(|s| {
        let m = SealedMemfd::create("short", 8192).unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[m.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Import(ImportError::TooSmall {
            size: 8192,
            claimed: 16384
        })
    );
}

#[test]
fn a_memfd_created_without_allow_sealing_is_refused() {
    let e = attacher_refuses(|s| {
        let fd = rustix::fs::memfd_create("nosealing", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 16384).unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[fd.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Import(ImportError::NoSealingSupport {
            seals: SealFlags::SEAL
        })
    );
}

#[test]
fn a_pipe_where_a_memfd_belongs_is_named() {
    let e = attacher_refuses(|s| {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[r.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Claim(ClaimError::BadFdType {
            slot: 0,
            expected: FdKind::Memfd,
            found: FdKind::Pipe
        })
    );
}

#[test]
fn a_socket_where_a_memfd_belongs_is_named() {
    let e = attacher_refuses(|s| {
        let (a, _b) = ScmStream::pair().unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[a.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Claim(ClaimError::BadFdType {
            slot: 0,
            expected: FdKind::Memfd,
            found: FdKind::Socket
        })
    );
}

#[test]
fn a_memfd_where_an_eventfd_belongs_is_named() {
    let e = attacher_refuses(|s| {
        let m = SealedMemfd::create("block", 16384).unwrap();
        send_offer(s, &offer(SignalKind::Eventfd), &[m.as_fd()]);
        let efd = Eventfd::new().unwrap();
        send_frame(s, FRAME_EVENTFDS, &[], &[m.as_fd(), efd.as_fd()], false).unwrap();
    });
    assert_eq!(
        e,
        HandshakeError::Claim(ClaimError::BadFdType {
            slot: 0,
            expected: FdKind::Eventfd,
            found: FdKind::Memfd
        })
    );
}

#[test]
fn more_fds_than_the_frame_takes_are_refused() {
    let e = attacher_refuses(|s| {
        let m = SealedMemfd::create("block", 16384).unwrap();
        let extra = SealedMemfd::create("extra", 4096).unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[m.as_fd(), extra.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Claim(ClaimError::WrongFdCount {
            expected: 1,
            got: 2
        })
    );
}

#[test]
fn too_few_eventfds_are_refused() {
    let e = attacher_refuses(|s| {
        let m = SealedMemfd::create("block", 16384).unwrap();
        send_offer(s, &offer(SignalKind::Eventfd), &[m.as_fd()]);
        let efd = Eventfd::new().unwrap();
        send_frame(s, FRAME_EVENTFDS, &[], &[efd.as_fd()], false).unwrap();
    });
    assert_eq!(
        e,
        HandshakeError::Claim(ClaimError::WrongFdCount {
            expected: 2,
            got: 1
        })
    );
}

#[test]
fn truncated_control_data_closes_every_fd() {
    let e = attacher_refuses(|s| {
        // Three fds in one message: more than the receiver's control buffer
        // holds, so the kernel sets MSG_CTRUNC. Sent with raw sendmsg, since
        // ScmStream::send refuses to send more than MAX_FDS_PER_FRAME.
        let fds: Vec<OwnedFd> = (0..3)
            .map(|_| SealedMemfd::create("m", 16384).unwrap().into_fd())
            .collect();
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&FRAME_OFFER.to_le_bytes());
        bytes.extend_from_slice(&(handshake::OFFER_LEN as u32).to_le_bytes());
        bytes.extend_from_slice(&offer(SignalKind::Futex).encode());
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
        rustix::net::sendmsg(
            s,
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .unwrap();
    });
    assert!(
        matches!(
            e,
            HandshakeError::Frame(FrameError::Recv(RecvError::Truncated { closed: 2 }))
        ),
        "{e:?}"
    );
}

#[test]
fn fds_on_a_frame_that_takes_none_are_refused() {
    let _guard = FD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let baseline = common::fd_count();
    let err = {
        let (evil, ours) = ScmStream::pair().unwrap();
        // The hostile attacher's "accept" arrives with an fd attached. It is
        // queued before the creator even sends its offer; the creator reads
        // it as the answer.
        let efd = Eventfd::new().unwrap();
        let mut ok = [0u8; 8];
        ok[0..4].copy_from_slice(&handshake::MAGIC.to_le_bytes());
        ok[4..6].copy_from_slice(&handshake::VERSION.to_le_bytes());
        send_frame(&evil, FRAME_ACCEPT, &ok, &[efd.as_fd()], false).unwrap();
        let cfg = ChannelConfig {
            layout: LayoutKind::Pa,
            signal: SignalKind::Eventfd,
            capacity: 4096,
        };
        let err = match handshake::create(ours, cfg, Some(common::HANDSHAKE)) {
            Ok(_) => panic!("accept with an fd was taken"),
            Err(e) => e,
        };
        drop(evil);
        err
    };
    assert_eq!(common::fd_count(), baseline, "fds leaked after {err}");
    assert_eq!(
        err,
        HandshakeError::Claim(ClaimError::WrongFdCount {
            expected: 0,
            got: 1
        })
    );
}

/// A peer still on `srb` layout version 1 (whose reader woke its writer
/// after every read, and whose writer never announces a wait for space)
/// must not be mixed with version 2: the attacher refuses its block by name.
#[test]
fn an_srb_block_of_layout_version_1_is_refused() {
    let e = attacher_refuses(|s| {
        let m = SealedMemfd::create("block", 16384).unwrap();
        // The start of a version-1 header: magic "srb1", version 1.
        let mut head = *b"srb1\0\0\0\0";
        head[4..].copy_from_slice(&1u32.to_le_bytes());
        m.map().unwrap().write_volatile(0, &head).unwrap();
        send_offer(s, &offer(SignalKind::Futex), &[m.as_fd()]);
    });
    assert_eq!(
        e,
        HandshakeError::Attach(srb_core::AttachError::BadVersion { found: 1 })
    );
}

#[test]
fn a_well_formed_offer_is_accepted_and_released_without_leaks() {
    let _guard = FD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let baseline = common::fd_count();
    {
        let (a, b) = ScmStream::pair().unwrap();
        let cfg = ChannelConfig {
            layout: LayoutKind::Srb,
            signal: SignalKind::Eventfd,
            capacity: 4096,
        };
        std::thread::scope(|s| {
            let attacher = s.spawn(|| handshake::accept(b, Some(common::HANDSHAKE)));
            let mut creator = handshake::create(a, cfg, Some(common::HANDSHAKE)).unwrap();
            let mut attacher = attacher.join().unwrap().unwrap();
            creator.write_all(b"ping", None).unwrap();
            let mut buf = [0u8; 4];
            attacher.read_exact(&mut buf, None).unwrap();
            assert_eq!(&buf, b"ping");
            assert!(creator.wait_fd().is_some());
        });
    }
    assert_eq!(common::fd_count(), baseline);
}
