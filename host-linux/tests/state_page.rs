//! The state page across processes and against hostile servers: a reader
//! process never gets a torn snapshot from a writer publishing
//! continuously; the fd a client receives cannot be written or resized;
//! every garbled page gives its named error; the control socket serves our
//! uid only; `srb-top --once --json` prints what was published.

mod common;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use srb_linux::memfd::ImportError;
use srb_linux::state_page::client::receive_page_fd;
use srb_linux::state_page::layout::{
    self, checksum, header, PAGE_LEN, PAYLOAD_OFFSET, PAYLOAD_WORDS, SEQ_OFFSET,
};
use srb_linux::state_page::{
    DspStats, Name, OpenError, ServeError, Snapshot, SnapshotError, StatePage, StatePageServer,
    StatePageWriter, StreamState, StreamStats, Table, MAX_CHANNELS,
};

use common::TempDir;

/// A bound on every wait for a peer, so a broken peer fails the test
/// instead of hanging it.
const PEER_WAIT: Duration = Duration::from_secs(60);

/// Waits (bounded) until the listening socket is readable, then serves
/// one connection.
fn serve_one(server: &StatePageServer, page: &StatePageWriter) -> Result<(), ServeError> {
    let mut fds = [PollFd::new(server, PollFlags::IN)];
    let ts = rustix::time::Timespec {
        tv_sec: PEER_WAIT.as_secs() as i64,
        tv_nsec: 0,
    };
    let n = rustix::event::poll(&mut fds, Some(&ts)).expect("poll");
    assert_eq!(n, 1, "no client connected within {PEER_WAIT:?}");
    server.accept_and_send(page.fd())
}

fn bind(dir: &TempDir) -> StatePageServer {
    StatePageServer::bind(&dir.0.join("control")).expect("bind the control socket")
}

/// The snapshot of version `i`: every field derived from `i`, counts and
/// names varying, so a reader can recompute all of it from
/// `published_ns == i` and any mix of two versions shows.
fn version(i: u64) -> Snapshot {
    const NAMES: [&str; 4] = [
        "srb_output",
        "a",
        "ünïcode-sink",
        "a-name-of-exactly-32-bytes-long!",
    ];
    let mut s = Snapshot::new();
    s.published_ns = i;
    let stream = |k: u64, base: u32| StreamStats {
        index: base + k as u32,
        name: Name::new(NAMES[((i + k) % 4) as usize]),
        state: [
            StreamState::Running,
            StreamState::Idle,
            StreamState::Suspended,
        ][((i + k) % 3) as usize],
        rate: 48_000 + k as u32,
        channels: 2,
        latency_us: (i as u32) ^ (k as u32),
        position: i * 1000 + k,
        clock_ns: i * 7 + k,
        periods: i,
        xruns: i / 3,
        late: i / 5,
    };
    for k in 0..(1 + i % 8) {
        s.push_sink(stream(k, 0)).unwrap();
    }
    for k in 0..(i % 9) {
        s.push_source(stream(k, 100)).unwrap();
    }
    for k in 0..(i % 5) {
        let mut d = DspStats {
            pid: k as u32 + 1,
            periods: i,
            mean_ns: (i % 1000) as u32,
            worst_ns: (i % 1000) as u32 + k as u32,
            deadline_misses: i / 7,
            restarts: k as u32,
            ..DspStats::default()
        };
        let ch = ((i + k) % (MAX_CHANNELS as u64 + 1)) as usize;
        let peaks: Vec<f32> = (0..ch)
            .map(|c| (i % 100) as f32 / 100.0 + c as f32)
            .collect();
        d.set_peaks(&peaks).unwrap();
        s.push_dsp(d).unwrap();
    }
    s
}

const CHILD_ENV: &str = "SRB_STATE_PAGE_CHILD";
const COUNT_ENV: &str = "SRB_STATE_PAGE_SNAPSHOTS";

/// How many snapshots the reader process takes: 2 million in release
/// builds (scripts/test-linux.sh), 200 000 in debug ones.
fn snapshots() -> u64 {
    std::env::var(COUNT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            200_000
        } else {
            2_000_000
        })
}

/// The reader process of the stress test (run by the parent, with the
/// control socket in `SRB_STATE_PAGE_CHILD`; a no-op otherwise). One
/// seqlock attempt per `snapshot()`, so every retry is counted here.
#[test]
fn stress_reader_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let page = StatePage::connect(Path::new(&path))
        .expect("receive the page")
        .with_tries(1);
    let want = snapshots();
    let (mut ok, mut busy, mut torn, mut moved) = (0u64, 0u64, 0u64, 0u64);
    let mut last = 0;
    while ok < want {
        assert!(
            ok + busy + torn < 1000 * want,
            "no progress: {ok} snapshots in {} attempts",
            ok + busy + torn
        );
        match page.snapshot() {
            Ok(s) => {
                let i = s.published_ns;
                assert!(
                    s.sequence() >= last || last - s.sequence() > 1 << 30,
                    "went backwards"
                );
                if s.sequence() != last {
                    moved += 1;
                }
                last = s.sequence();
                let expected = version(i);
                assert_eq!(s.sinks(), expected.sinks(), "sinks of version {i}");
                assert_eq!(s.sources(), expected.sources(), "sources of version {i}");
                assert_eq!(s.dsps(), expected.dsps(), "dsps of version {i}");
                ok += 1;
            }
            Err(SnapshotError::Busy { .. }) => busy += 1,
            Err(SnapshotError::Torn { .. }) => torn += 1,
            Err(e) => panic!("invalid snapshot returned: {e}"),
        }
    }
    println!("STATS ok={ok} busy={busy} torn={torn} versions_seen={moved}");
}

#[test]
fn a_reader_in_another_process_never_sees_a_torn_snapshot() {
    let dir = TempDir::new("stress");
    let server = bind(&dir);
    let mut writer = StatePageWriter::create("srb-state-test").unwrap();
    writer.publish(&version(1));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stress_reader_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, server.path().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the reader process");
    serve_one(&server, &writer).expect("serve the reader");
    // Publish continuously (every field changes each time) until the
    // reader has taken its snapshots.
    let mut i = 1u64;
    let status = loop {
        for _ in 0..256 {
            i += 1;
            writer.publish(&version(i));
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    // libtest may print "test ... " on the same line before ours.
    let stats = out
        .lines()
        .find_map(|l| l.find("STATS ").map(|at| &l[at..]))
        .unwrap_or("no stats");
    eprintln!("{stats}; the writer published {i} versions");
    assert!(status.success(), "the reader process failed: {out}");
    assert!(stats.contains(&format!("ok={}", snapshots())), "{stats}");
}

#[test]
fn a_client_receives_the_page_and_reads_what_was_published() {
    let dir = TempDir::new("serve");
    let server = bind(&dir);
    let mut writer = StatePageWriter::create("srb-state-test").unwrap();
    writer.publish(&version(42));
    let path = server.path().unwrap().to_owned();
    let client = std::thread::spawn(move || StatePage::connect(&path));
    serve_one(&server, &writer).unwrap();
    let page = client.join().unwrap().expect("connect");
    let s = page.snapshot().unwrap();
    assert_eq!(s.sequence(), writer.sequence());
    assert_eq!(s.sinks(), version(42).sinks());
    assert_eq!(s.dsps(), version(42).dsps());
    // The clock fast path agrees with the full snapshot.
    let c = page.sink_clock(0).unwrap();
    assert_eq!((c.position, c.clock_ns, c.rate), (42_000, 294, 48_000));
    assert_eq!(
        page.sink_clock(7).unwrap_err(),
        SnapshotError::NoSuchSink { slot: 7 },
        "slot 7 unused in version 42 (3 sinks)"
    );
    assert_eq!(
        page.sink_clock(8).unwrap_err(),
        SnapshotError::NoSuchSink { slot: 8 }
    );
    // Later publications show without reconnecting.
    writer.publish(&version(43));
    assert_eq!(page.snapshot().unwrap().published_ns, 43);
    // A duplicate fd (for a serving thread) opens the same page.
    let again = StatePage::open(writer.dup_fd().unwrap()).unwrap();
    assert_eq!(again.snapshot().unwrap().published_ns, 43);
    // Nothing pending: a named error, not a block.
    assert_eq!(
        server.accept_and_send(writer.fd()),
        Err(ServeError::NoPendingConnection)
    );
}

#[test]
fn the_received_fd_cannot_be_mapped_writable_written_or_resized() {
    let dir = TempDir::new("seals");
    let server = bind(&dir);
    let writer = StatePageWriter::create("srb-state-test").unwrap();
    let path = server.path().unwrap().to_owned();
    let client = std::thread::spawn(move || receive_page_fd(&path, PEER_WAIT));
    serve_one(&server, &writer).unwrap();
    let fd = client.join().unwrap().expect("receive");
    // SAFETY: a fresh mapping at a kernel-chosen address, unmapped at once.
    let writable = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            PAGE_LEN,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )
    };
    assert_eq!(
        writable.err(),
        Some(Errno::PERM),
        "mmap(PROT_WRITE, MAP_SHARED)"
    );
    assert_eq!(rustix::fs::ftruncate(&fd, 0), Err(Errno::PERM), "shrink");
    assert_eq!(
        rustix::fs::ftruncate(&fd, 2 * PAGE_LEN as u64),
        Err(Errno::PERM),
        "grow"
    );
    assert_eq!(
        rustix::io::pwrite(&fd, b"x", 0),
        Err(Errno::PERM),
        "write()"
    );
    // A read-only mapping cannot be made writable afterwards either.
    // SAFETY: as above.
    let ro = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            PAGE_LEN,
            ProtFlags::READ,
            MapFlags::SHARED,
            &fd,
            0,
        )
    }
    .expect("read-only mapping");
    // SAFETY: `ro` is the mapping just made, of PAGE_LEN bytes.
    let mp = unsafe { rustix::mm::mprotect(ro, PAGE_LEN, rustix::mm::MprotectFlags::WRITE) };
    assert_eq!(mp, Err(Errno::ACCESS), "mprotect(PROT_WRITE)");
    // SAFETY: as above; nothing uses it after.
    unsafe { rustix::mm::munmap(ro, PAGE_LEN) }.unwrap();
    // The seals themselves cannot be removed or extended.
    assert_eq!(
        rustix::fs::fcntl_add_seals(&fd, SealFlags::WRITE),
        Err(Errno::PERM)
    );
    StatePage::open(fd).expect("and it opens as a page");
}

/// A memfd holding `header`, sequence `seq` and `payload`, with `seals`,
/// of `len` bytes: what a hostile server could send.
fn page_fd(
    header: &[u32; layout::HEADER_WORDS],
    seq: u32,
    payload: &[u32; PAYLOAD_WORDS],
    seals: SealFlags,
    len: u64,
) -> OwnedFd {
    let fd = rustix::fs::memfd_create("hostile", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    let mut bytes = Vec::new();
    bytes.extend(header.iter().flat_map(|w| w.to_le_bytes()));
    assert_eq!(bytes.len(), SEQ_OFFSET);
    bytes.extend(seq.to_le_bytes());
    assert_eq!(bytes.len(), PAYLOAD_OFFSET);
    bytes.extend(payload.iter().flat_map(|w| w.to_le_bytes()));
    bytes.truncate(len as usize);
    assert_eq!(rustix::io::pwrite(&fd, &bytes, 0).unwrap(), bytes.len());
    rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    fd
}

const SEALS: SealFlags = srb_linux::state_page::writer::PAGE_SEALS;

fn valid_payload() -> [u32; PAYLOAD_WORDS] {
    let mut w = [0u32; PAYLOAD_WORDS];
    layout::encode(&version(12), &mut w);
    w
}

/// Opens a page with a valid header and `payload` changed by `f` (the
/// checksum recomputed unless `keep_checksum`), and takes a snapshot.
fn snapshot_of(f: impl Fn(&mut [u32; PAYLOAD_WORDS]), keep_checksum: bool) -> SnapshotError {
    let mut w = valid_payload();
    f(&mut w);
    if !keep_checksum {
        w[0] = checksum(&w);
    }
    let page = StatePage::open(page_fd(&header(), 2, &w, SEALS, PAGE_LEN as u64)).unwrap();
    page.snapshot().expect_err("a garbled page was accepted")
}

fn open_err(fd: OwnedFd) -> OpenError {
    StatePage::open(fd).expect_err("a hostile page was opened")
}

#[test]
fn hostile_pages_give_named_errors() {
    let ok = valid_payload();
    let len = PAGE_LEN as u64;
    // The untouched page is fine.
    let page = StatePage::open(page_fd(&header(), 2, &ok, SEALS, len)).unwrap();
    assert_eq!(page.snapshot().unwrap().published_ns, 12);

    let mut h = header();
    h[0] = u32::from_le_bytes(*b"evil");
    assert!(matches!(
        open_err(page_fd(&h, 2, &ok, SEALS, len)),
        OpenError::BadHeader { field: "magic", .. }
    ));
    let mut h = header();
    h[1] = 2;
    assert_eq!(
        open_err(page_fd(&h, 2, &ok, SEALS, len)),
        OpenError::BadHeader {
            field: "version",
            found: 2,
            expected: 1
        }
    );
    let mut h = header();
    h[3] = 1000;
    assert!(matches!(
        open_err(page_fd(&h, 2, &ok, SEALS, len)),
        OpenError::BadHeader {
            field: "sink capacity",
            found: 1000,
            ..
        }
    ));
    assert_eq!(
        open_err(page_fd(&header(), 2, &ok, SEALS, 1024)),
        OpenError::TooSmall { size: 1024 }
    );
    assert!(matches!(
        open_err(page_fd(&header(), 2, &ok, SealFlags::empty(), len)),
        OpenError::NotSealed { .. }
    ));
    let resizable_only = SealFlags::FUTURE_WRITE | SealFlags::SEAL;
    assert!(matches!(
        open_err(page_fd(&header(), 2, &ok, resizable_only, len)),
        OpenError::NotSealed { .. }
    ));
    let (r, _w) = rustix::pipe::pipe().unwrap();
    assert!(matches!(
        open_err(r),
        OpenError::Kind(ImportError::NotMemfd { .. })
    ));

    // Payload values, each with a valid checksum.
    let sinks_at = layout::SINKS_AT;
    assert_eq!(
        snapshot_of(|w| w[1] = 9, false),
        SnapshotError::BadCount {
            table: Table::Sinks,
            count: 9,
            max: 8
        }
    );
    assert_eq!(
        snapshot_of(|w| w[3] = u32::MAX, false),
        SnapshotError::BadCount {
            table: Table::Dsps,
            count: u32::MAX,
            max: 4
        }
    );
    assert_eq!(
        snapshot_of(|w| w[sinks_at + layout::stream::STATE] = 4, false),
        SnapshotError::BadState {
            table: Table::Sinks,
            slot: 0,
            value: 4
        }
    );
    assert_eq!(
        snapshot_of(|w| w[sinks_at + layout::stream::NAME] = 0x00ff_ff61, false),
        SnapshotError::BadName {
            table: Table::Sinks,
            slot: 0
        }
    );
    assert!(matches!(
        snapshot_of(|w| w[sinks_at + layout::stream::POSITION] ^= 1, true),
        SnapshotError::BadChecksum { .. }
    ));
    // A sequence stuck odd: bounded retries, then Busy.
    let page = StatePage::open(page_fd(&header(), 3, &ok, SEALS, len))
        .unwrap()
        .with_tries(50);
    assert_eq!(page.snapshot(), Err(SnapshotError::Busy { tries: 50 }));
    assert_eq!(page.sink_clock(0), Err(SnapshotError::Busy { tries: 50 }));
}

#[test]
fn srb_top_once_json_prints_what_was_published() {
    let dir = TempDir::new("top");
    let server = bind(&dir);
    let mut writer = StatePageWriter::create("srb-state-test").unwrap();
    let s = version(3); // 4 sinks, 3 sources, 3 DSPs
    writer.publish(&s);
    let top = Command::new(env!("CARGO_BIN_EXE_srb-top"))
        .arg("--control")
        .arg(server.path().unwrap())
        .args(["--once", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn srb-top");
    serve_one(&server, &writer).unwrap();
    let out = top.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "srb-top: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["sequence"], writer.sequence());
    assert_eq!(v["published_ns"], 3);
    let sinks = v["sinks"].as_array().unwrap();
    assert_eq!(sinks.len(), 4);
    assert_eq!(sinks[1]["name"], s.sinks()[1].name.as_str());
    assert_eq!(sinks[1]["position"], 3001);
    assert_eq!(sinks[1]["rate"], 48_001);
    assert_eq!(sinks[1]["state"], s.sinks()[1].state.as_str());
    assert_eq!(sinks[1]["clock_ns"], 22);
    let now = sinks[1]["position_now"].as_u64().unwrap();
    assert!(
        now >= 3001,
        "the interpolated position never runs backwards"
    );
    assert_eq!(v["sources"].as_array().unwrap().len(), 3);
    let dsps = v["dsps"].as_array().unwrap();
    assert_eq!(dsps.len(), 3);
    assert_eq!(dsps[2]["worst_ns"], 5);
    assert_eq!(dsps[2]["peaks"].as_array().unwrap().len(), 5);
}

#[test]
fn srb_top_without_a_server_fails_clearly() {
    let dir = TempDir::new("noserver");
    let out = Command::new(env!("CARGO_BIN_EXE_srb-top"))
        .arg("--control")
        .arg(dir.0.join("control"))
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no state page"), "{err}");
}

/// Another uid is refused: only when running as root, which can start
/// `srb-top` as `nobody` (the directory and socket are opened up for it,
/// so the uid check itself is what refuses it).
#[test]
fn another_uid_gets_no_page() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the uid check is covered by serve's unit test only");
        return;
    }
    let dir = TempDir::new("uid");
    let server = bind(&dir);
    let writer = StatePageWriter::create("srb-state-test").unwrap();
    let path = server.path().unwrap().to_owned();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let top = Command::new(env!("CARGO_BIN_EXE_srb-top"))
        .arg("--control")
        .arg(&path)
        .arg("--once")
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        serve_one(&server, &writer),
        Err(ServeError::WrongUid {
            peer: 65534,
            ours: 0
        })
    );
    let out = top.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let _ = writer.fd().as_fd();
}

/// Runs a hostile control server on `<dir>/control` that accepts one
/// connection and does `f` with it; returns what the client got.
fn against_fake_server(
    tag: &str,
    f: impl FnOnce(&srb_linux::scm::ScmStream) + Send + 'static,
) -> srb_linux::state_page::ConnectError {
    use srb_linux::listener::Listener;
    use srb_linux::runtime_dir::RuntimeDir;
    let dir = TempDir::new(tag);
    let listener = Listener::bind(&RuntimeDir::open(&dir.0).unwrap(), "control").unwrap();
    let path = listener.path().unwrap().to_owned();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        f(&stream);
        // Keep the connection open until the client is done with it.
        let mut buf = [0u8; 1];
        let _ = rustix::io::read(&stream, &mut buf);
    });
    let e = receive_page_fd(&path, PEER_WAIT).expect_err("a hostile hello was accepted");
    server.join().unwrap();
    e
}

#[test]
fn hostile_hellos_give_named_errors() {
    use srb_linux::frame::{send_frame, FrameError};
    use srb_linux::scm::{ClaimError, RecvError};
    use srb_linux::state_page::hello::{hello, FRAME_STATE_PAGE};
    use srb_linux::state_page::ConnectError;
    let memfd = || rustix::fs::memfd_create("x", MemfdFlags::CLOEXEC).unwrap();

    let e = against_fake_server("nofd", |s| {
        send_frame(s, FRAME_STATE_PAGE, &hello(), &[], false).unwrap();
    });
    assert_eq!(
        e,
        ConnectError::Fds(ClaimError::WrongFdCount {
            expected: 1,
            got: 0
        })
    );
    let e = against_fake_server("twofds", move |s| {
        let (a, b) = (memfd(), memfd());
        send_frame(
            s,
            FRAME_STATE_PAGE,
            &hello(),
            &[a.as_fd(), b.as_fd()],
            false,
        )
        .unwrap();
    });
    assert_eq!(
        e,
        ConnectError::Fds(ClaimError::WrongFdCount {
            expected: 1,
            got: 2
        })
    );
    let e = against_fake_server("eventfd", |s| {
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        send_frame(s, FRAME_STATE_PAGE, &hello(), &[efd.as_fd()], false).unwrap();
    });
    assert!(
        matches!(e, ConnectError::Fds(ClaimError::BadFdType { slot: 0, .. })),
        "{e:?}"
    );
    let e = against_fake_server("magic", move |s| {
        let mut h = hello();
        h[0] ^= 1;
        let m = memfd();
        send_frame(s, FRAME_STATE_PAGE, &h, &[m.as_fd()], false).unwrap();
    });
    assert!(
        matches!(
            e,
            ConnectError::BadHello {
                len: 12,
                version: 1,
                ..
            }
        ),
        "{e:?}"
    );
    let e = against_fake_server("kind", move |s| {
        let m = memfd();
        send_frame(s, 7, &hello(), &[m.as_fd()], false).unwrap();
    });
    assert!(matches!(e, ConnectError::BadHello { kind: 7, .. }), "{e:?}");
    let e = against_fake_server("threefds", move |s| {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        use std::mem::MaybeUninit;
        let fds = [memfd(), memfd(), memfd()];
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let mut bytes = Vec::new();
        bytes.extend(FRAME_STATE_PAGE.to_le_bytes());
        bytes.extend(12u32.to_le_bytes());
        bytes.extend(hello());
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
        rustix::net::sendmsg(
            s,
            &[rustix::io::IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .unwrap();
    });
    assert!(
        matches!(
            e,
            ConnectError::Recv(FrameError::Recv(RecvError::Truncated { .. }))
        ),
        "{e:?}"
    );
    let e = against_fake_server("hangup", |s| {
        rustix::net::shutdown(s, rustix::net::Shutdown::Both).unwrap();
    });
    assert_eq!(e, ConnectError::Recv(FrameError::Recv(RecvError::PeerGone)));
}
