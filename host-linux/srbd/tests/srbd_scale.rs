//! End-to-end: srbd serves many clients on one control thread.
//!
//! - 1000 idle connections (raw, and authorised) are held while `pactl
//!   info` still succeeds, and none of them is dropped (PulseAudio 16.1
//!   refuses the 65th client);
//! - the client past `--max-clients` is refused with a log line while the
//!   others keep working;
//! - with 64 streams playing srbd runs at most 4 threads besides the DSP
//!   child (one control thread, the mixer, the DSP supervisor, and room
//!   for one more), read from `/proc/PID/status`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::srbd::{strip_ansi, Daemon, DEADLINE};

/// The tests here hold over a thousand fds each: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // This process holds the client ends: more than the usual soft limit.
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim).expect("raise RLIMIT_NOFILE");
    }
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        have >= 2200,
        "RLIMIT_NOFILE hard limit {have} is too low for these tests"
    );
    g
}

/// An AUTH packet frame (protocol 35, no SHM) with tag `tag`.
fn auth_frame(tag: u32) -> Vec<u8> {
    let mut body = Vec::new();
    // command AUTH (8), tag, version, cookie: tagstruct u32 'L' values and
    // an arbitrary 'x' of 256 bytes.
    for v in [8u32, tag, 35] {
        body.push(b'L');
        body.extend_from_slice(&v.to_be_bytes());
    }
    body.push(b'x');
    body.extend_from_slice(&256u32.to_be_bytes());
    body.extend_from_slice(&[0u8; 256]);
    let mut f = Vec::new();
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&u32::MAX.to_be_bytes());
    f.extend_from_slice(&[0u8; 12]);
    f.extend_from_slice(&body);
    f
}

/// Reads one frame (descriptor and payload) from `s`.
fn read_frame(s: &mut UnixStream) -> Vec<u8> {
    let mut desc = [0u8; 20];
    s.read_exact(&mut desc).expect("frame descriptor");
    let len = u32::from_be_bytes(desc[..4].try_into().unwrap()) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("frame payload");
    payload
}

/// `n` connections to the daemon; with `auth`, each one authorised (its
/// AUTH reply read).
fn hold(d: &Daemon, n: usize, auth: bool) -> Vec<UnixStream> {
    let path = d.server().trim_start_matches("unix:").to_owned();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("connection {i} of {n} refused: {e}"));
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        if auth {
            s.write_all(&auth_frame(i as u32)).unwrap();
        }
        v.push(s);
    }
    if auth {
        for (i, s) in v.iter_mut().enumerate() {
            let reply = read_frame(s);
            // REPLY (2) with our tag.
            assert_eq!(&reply[..5], &[b'L', 0, 0, 0, 2], "AUTH reply of {i}");
            assert_eq!(
                &reply[5..10],
                &[&[b'L'][..], &(i as u32).to_be_bytes()].concat()[..]
            );
        }
    }
    v
}

/// None of `conns` was closed by the daemon: a non-blocking read finds
/// nothing to read (EOF would be `Ok(0)`).
fn assert_all_open(conns: &mut [UnixStream]) {
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("connection {i} was closed or sent data: {other:?}"),
        }
        s.set_nonblocking(false).unwrap();
    }
}

fn threads(pid: u32) -> usize {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads: line")
}

fn thousand_idle_connections(auth: bool) {
    let _serial = serial();
    let d = Daemon::start_args(
        if auth { "1000-auth" } else { "1000-raw" },
        &["--dsp", "off"],
    );
    let mut conns = hold(&d, 1000, auth);
    let held = Instant::now();
    let info = d.pactl_ok(&["info"]);
    assert!(info.contains("Server Name: srbd"), "{info}");
    // Hold them at least 5 s, asking again meanwhile.
    while held.elapsed() < Duration::from_secs(5) {
        d.pactl_ok(&["list", "short", "sinks"]);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_all_open(&mut conns);
    let log = strip_ansi(&d.log());
    assert!(
        !log.contains("connection closed") && !log.contains("refused"),
        "a held connection was dropped or refused:\n{log}"
    );
    // One thread serves them all.
    assert!(threads(d.pid()) <= 4, "threads: {}", threads(d.pid()));
    drop(conns);
}

#[test]
fn a_thousand_raw_idle_connections_and_pactl_still_works() {
    thousand_idle_connections(false);
}

#[test]
fn a_thousand_authorised_idle_connections_and_pactl_still_works() {
    thousand_idle_connections(true);
}

#[test]
fn the_client_past_max_clients_is_refused_with_a_log_line() {
    let _serial = serial();
    let d = Daemon::start_args("max-clients", &["--dsp", "off", "--max-clients", "8"]);
    let mut conns = hold(&d, 8, true);
    // The ninth is accepted by the kernel, then closed by srbd: EOF.
    let path = d.server().trim_start_matches("unix:").to_owned();
    let mut extra = UnixStream::connect(&path).unwrap();
    extra.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut b = [0u8; 1];
    let n = extra.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "the client past the limit got data instead of EOF");
    d.wait_for("the refusal in the log", || {
        strip_ansi(&d.log())
            .lines()
            .find(|l| {
                l.contains("too many clients; connection refused") && l.contains("max_clients=8")
            })
            .map(str::to_owned)
    });
    assert_all_open(&mut conns);
    // A slot freed is a slot taken again.
    drop(conns.pop());
    d.wait_for("the freed slot", || {
        strip_ansi(&d.log())
            .contains("client disconnected")
            .then_some(())
    });
    let info = d.pactl_ok(&["info"]);
    assert!(info.contains("Server Name: srbd"), "{info}");
}

#[test]
fn client_1025_is_refused_by_default() {
    let _serial = serial();
    let d = Daemon::start_args("1025", &["--dsp", "off"]);
    let mut conns = hold(&d, 1024, false);
    let path = d.server().trim_start_matches("unix:").to_owned();
    let mut extra = UnixStream::connect(&path).unwrap();
    extra.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(extra.read(&mut b).unwrap_or(0), 0, "client 1025 was served");
    d.wait_for("the refusal in the log", || {
        strip_ansi(&d.log())
            .lines()
            .find(|l| {
                l.contains("too many clients; connection refused") && l.contains("max_clients=1024")
            })
            .map(str::to_owned)
    });
    assert_all_open(&mut conns);
}

#[test]
fn sixty_four_streams_on_at_most_four_threads_besides_the_dsp() {
    let _serial = serial();
    // The default configuration: the DSP peer on.
    let d = Daemon::start("64-streams");
    let pacats: Vec<_> = (0..64)
        .map(|i| {
            let mut c = d.spawn_pacat(&[
                "--playback",
                "--raw",
                "--latency-msec=10",
                "--rate=48000",
                "--channels=2",
                "--format=s16le",
                &format!("--client-name=scale-{i}"),
            ]);
            // Endless silence-free input: a feeder thread per stream would
            // be 64 threads here; a second of noise repeated is enough.
            let mut stdin = c.stdin.take().expect("pacat stdin");
            std::thread::spawn(move || {
                let chunk: Vec<u8> = (0..19_200u32).map(|j| (j * 7 + i) as u8).collect();
                while stdin.write_all(&chunk).is_ok() {}
            });
            c
        })
        .collect();
    d.wait_for("64 playing sink inputs", || {
        (d.list_short("sink-inputs").len() >= 64).then_some(())
    });
    // Sampled over a second of playing (any thread started for a stream
    // or a period would show), not a single look.
    let start = Instant::now();
    let mut most = 0;
    while start.elapsed() < Duration::from_secs(1) {
        most = most.max(threads(d.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        most <= 4,
        "srbd ran {most} threads with 64 streams; expected at most 4 besides the DSP child"
    );
    for mut c in pacats {
        let _ = c.kill();
        let _ = c.wait();
    }
}
