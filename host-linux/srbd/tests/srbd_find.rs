//! End-to-end: clients find srbd without configuration.
//!
//! - With no `--socket`, srbd listens on `$XDG_RUNTIME_DIR/pulse/native`,
//!   where libpulse looks: `pactl` and `paplay` with no `PULSE_SERVER`
//!   reach it; a clean exit removes the socket and its lock file.
//! - A live server already there (one that does not take srbd's lock, as
//!   PulseAudio does not) is left alone: srbd exits with a message naming
//!   the socket and `--socket`. A stale socket file is replaced.
//! - Socket activation as systemd does it (`dist/srbd.socket`): srbd
//!   inherits a listening socket as fd 3 with `LISTEN_FDS=1` and
//!   `LISTEN_PID` set to its own pid, and a `paplay` plays through it.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::srbd::{
    find_tool, poll_until, signal, strip_ansi, wait_bounded, write_wav_f32, Daemon, TempDir,
};
use rustix::process::Signal;

/// `tool args…` as a user without any PulseAudio configuration: no
/// `PULSE_SERVER`, no `PULSE_RUNTIME_PATH`, only `XDG_RUNTIME_DIR`
/// (`server`: set `PULSE_SERVER` after all).
fn unconfigured(dir: &TempDir, tool: &str, args: &[&str], server: Option<&Path>) -> Output {
    let mut cmd = Command::new(find_tool(tool));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C")
        .env("HOME", dir.0.join("home"))
        .env("XDG_RUNTIME_DIR", dir.0.join("xdg"))
        .env("PULSE_CLIENTCONFIG", dir.0.join("client.conf"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = server {
        cmd.env("PULSE_SERVER", format!("unix:{}", s.display()));
    }
    wait_bounded(cmd.spawn().expect("spawn client"), tool)
}

fn tone(dir: &TempDir) -> std::path::PathBuf {
    let wav = dir.0.join("tone.wav");
    let samples: Vec<f32> = (0..9600).map(|i| (i as f32 * 0.05).sin() * 0.25).collect();
    write_wav_f32(&wav, 48_000, 2, &samples);
    wav
}

#[test]
fn clients_find_srbd_on_the_standard_socket_without_configuration() {
    let mut d = Daemon::start_with("find", false);
    let socket = d.dir.0.join("xdg").join("pulse").join("native");
    assert_eq!(d.socket, socket);
    let out = unconfigured(&d.dir, "pactl", &["info"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    assert!(text.contains("Server Name: srbd"), "{text}");
    assert!(
        text.contains(&format!("Server String: {}", socket.display())),
        "{text}"
    );
    let wav = tone(&d.dir);
    let out = unconfigured(&d.dir, "paplay", &[wav.to_str().unwrap()], None);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    let status = d.stop();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(!socket.exists(), "socket removed on exit");
    assert!(
        !socket.with_file_name("native.lock").exists(),
        "lock file removed on a clean exit"
    );
}

/// srbd started by hand with the test's runtime directory and no socket
/// argument; its exit.
fn srbd_unconfigured(dir: &TempDir, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_srbd"))
        .args(["--dsp", "off"])
        .args(extra)
        .env("XDG_RUNTIME_DIR", dir.0.join("xdg"))
        .env_remove("PULSE_RUNTIME_PATH")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn srbd")
}

#[test]
fn a_live_server_on_the_standard_socket_is_left_alone_and_a_stale_one_replaced() {
    let dir = TempDir::new("live");
    let pulse = dir.0.join("xdg").join("pulse");
    std::fs::create_dir(&pulse).unwrap();
    std::fs::set_permissions(&pulse, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let socket = pulse.join("native");
    // Another server, not srbd (no lock file of ours), listening there.
    let other = UnixListener::bind(&socket).unwrap();
    let out = wait_bounded(srbd_unconfigured(&dir, &[]), "srbd facing a live server");
    let err = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "srbd must not start: {err}");
    assert!(
        err.contains(&format!("already listening on {}", socket.display()))
            && err.contains("--socket"),
        "{err}"
    );
    assert!(socket.exists(), "the other server's socket is untouched");
    // The other server goes away and leaves its socket file: stale.
    drop(other);
    let mut srbd = srbd_unconfigured(&dir, &[]);
    let out = poll_until(
        "srbd to answer on the standard socket",
        || Some(unconfigured(&dir, "pactl", &["info"], None)).filter(|o| o.status.success()),
        String::new,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Server Name: srbd"));
    signal(&srbd, Signal::TERM);
    let status = srbd.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}

#[test]
fn socket_activation_as_systemd_does_it() {
    let dir = TempDir::new("activated");
    let path = dir.0.join("activated.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Inherited across exec, as systemd passes it.
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty()).unwrap();
    let n = listener.as_raw_fd();
    // `exec` keeps the shell's pid, so `$$` is srbd's pid: LISTEN_PID
    // names srbd, and the socket becomes its fd 3.
    let close = if n == 3 {
        String::new()
    } else {
        format!(" {n}<&-")
    };
    let script =
        format!("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" --dsp off 3<&{n}{close} 2>\"$1\"");
    let log = dir.0.join("srbd.log");
    let mut srbd = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_srbd"))
        .arg(&log)
        .env("XDG_RUNTIME_DIR", dir.0.join("xdg"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn srbd");
    // Our copy of the socket is not needed any more: srbd has its own.
    drop(listener);
    poll_until(
        "an answer on the activated socket",
        || {
            unconfigured(&dir, "pactl", &["info"], Some(&path))
                .status
                .success()
                .then_some(())
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    let wav = tone(&dir);
    let out = unconfigured(&dir, "paplay", &[wav.to_str().unwrap()], Some(&path));
    let text = strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
    assert!(out.status.success(), "{out:?}\n{text}");
    assert!(
        text.contains("using the socket-activated listener"),
        "{text}"
    );
    assert!(
        !dir.0.join("xdg").join("pulse").join("native").exists(),
        "an activated srbd binds nothing of its own"
    );
    signal(&srbd, Signal::TERM);
    let status = srbd.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(path.exists(), "the activated socket belongs to systemd");
}

#[test]
fn the_shipped_units_match_the_default_socket() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist");
    let socket = std::fs::read_to_string(root.join("srbd.socket")).expect("dist/srbd.socket");
    let service = std::fs::read_to_string(root.join("srbd.service")).expect("dist/srbd.service");
    assert!(
        socket
            .lines()
            .any(|l| l.trim() == "ListenStream=%t/pulse/native"),
        "{socket}"
    );
    assert!(
        service
            .lines()
            .any(|l| l.starts_with("ExecStart=") && l.trim_end().ends_with("/srbd")),
        "{service}"
    );
    assert!(service.contains("Requires=srbd.socket"), "{service}");
}
