//! End-to-end: the built `srbd` binary against Debian's real `pactl`
//! (libpulse 16.1). `pactl` must be installed (`scripts/test-srbd.sh`
//! installs `pulseaudio-utils`); without it these tests fail, they do not
//! skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound on every wait (daemon start, one pactl run, daemon exit). Only
/// there so a broken server fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(60);

/// A fresh 0700 directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters.
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("srbd-e2e-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        for d in [p.clone(), p.join("xdg"), p.join("home"), p.join("pulse")] {
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::write(p.join("client.conf"), "autospawn = no\n").unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits for `child` at most [`DEADLINE`]; kills it on expiry.
fn wait_bounded(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: wait failed: {e}")),
        Err(_) => {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("{what}: still running after {DEADLINE:?}");
        }
    }
}

/// A running `srbd`; SIGTERMed on drop.
struct Daemon {
    child: Option<Child>,
    dir: TempDir,
    socket: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Starts srbd with `--socket <dir>/native`.
    fn start(tag: &str) -> Self {
        Self::start_with(tag, true)
    }

    /// Starts srbd; without `explicit` it picks its default socket, which
    /// must be `$XDG_RUNTIME_DIR/srb/native`.
    fn start_with(tag: &str, explicit: bool) -> Self {
        let dir = TempDir::new(tag);
        let stderr = dir.0.join("srbd.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_srbd"));
        let socket = if explicit {
            let socket = dir.0.join("native");
            cmd.arg("--socket").arg(&socket);
            socket
        } else {
            dir.0.join("xdg").join("srb").join("native")
        };
        let mut child = cmd
            .env("XDG_RUNTIME_DIR", dir.0.join("xdg"))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn srbd");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let d = Self {
            child: Some(child),
            dir,
            socket,
            stderr,
        };
        // Poll for the socket with a bounded deadline; between polls block
        // on srbd's stdout (it prints PULSE_SERVER once it listens).
        let start = Instant::now();
        let want = format!("PULSE_SERVER=unix:{}", d.socket.display());
        while !d.socket.exists() {
            let left = DEADLINE
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("no socket after {DEADLINE:?}\n{}", d.log()));
            match rx.recv_timeout(left) {
                Ok(line) => assert_eq!(line, want, "srbd's first line"),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("srbd exited before listening\n{}", d.log())
                }
            }
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Runs `pactl --server <ours> args…` in a clean environment.
    fn pactl(&self, args: &[&str]) -> Output {
        wait_bounded(self.spawn_pactl(args), &format!("pactl {args:?}"))
    }

    /// Starts `pactl --server <ours> args…` without waiting for it.
    fn spawn_pactl(&self, args: &[&str]) -> Child {
        Command::new(find_pactl())
            .arg("--server")
            .arg(self.server())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .env("HOME", self.dir.0.join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.0.join("xdg"))
            .env("PULSE_RUNTIME_PATH", self.dir.0.join("pulse"))
            .env("PULSE_CLIENTCONFIG", self.dir.0.join("client.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pactl")
    }

    /// `pactl args…` must succeed; returns its stdout.
    fn pactl_ok(&self, args: &[&str]) -> String {
        let out = self.pactl(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pactl {args:?} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}\nsrbd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout
    }

    /// SIGTERM and a bounded wait for the exit status.
    fn stop(&mut self) -> ExitStatus {
        let child = self.child.take().expect("running");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        wait_bounded(child, "srbd after SIGTERM").status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// The `pactl` on PATH; fails the test (does not skip) when missing.
fn find_pactl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("pactl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "pactl is not installed: these tests need Debian's pulseaudio-utils; \
                 run scripts/test-srbd.sh, which installs it"
            )
        })
}

#[test]
fn pactl_info_and_lists() {
    let d = Daemon::start("info");
    let info = d.pactl_ok(&["info"]);
    for want in [
        "Server Name: srbd",
        "Server Protocol Version: 35",
        "Default Sample Specification: float32le 2ch 48000Hz",
        "Default Channel Map: front-left,front-right",
        "Default Sink: srb_output",
        "Default Source: srb_output.monitor",
    ] {
        assert!(info.contains(want), "missing {want:?} in:\n{info}");
    }

    let sinks = d.pactl_ok(&["list", "sinks", "short"]);
    assert!(
        sinks.contains("0\tsrb_output\tsrbd\tfloat32le 2ch 48000Hz\t"),
        "{sinks}"
    );
    let sources = d.pactl_ok(&["list", "sources", "short"]);
    assert!(
        sources.contains("0\tsrb_output.monitor\tsrbd\tfloat32le 2ch 48000Hz\t"),
        "{sources}"
    );
    assert_eq!(d.pactl_ok(&["get-default-sink"]).trim(), "srb_output");
    assert_eq!(
        d.pactl_ok(&["get-default-source"]).trim(),
        "srb_output.monitor"
    );

    let long = d.pactl_ok(&["list", "sinks"]);
    for want in [
        "Name: srb_output",
        "Sample Specification: float32le 2ch 48000Hz",
        "Monitor Source: srb_output.monitor",
    ] {
        assert!(long.contains(want), "missing {want:?} in:\n{long}");
    }
    // Everything pactl can list, including the empty module and card lists.
    let all = d.pactl_ok(&["list"]);
    assert!(all.contains("Source #0"), "{all}");
    d.pactl_ok(&["stat"]);
    assert!(d.log().contains("client ready"), "{}", d.log());
}

#[test]
fn unsupported_command_is_an_error_reply() {
    let d = Daemon::start("unsupported");
    let out = d.pactl(&["set-sink-volume", "srb_output", "50%"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Not supported"), "{stderr}");
    // The server is still serving.
    d.pactl_ok(&["info"]);
}

#[test]
fn garbage_frame_disconnects_only_that_client() {
    let d = Daemon::start("garbage");
    let mut raw = UnixStream::connect(&d.socket).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    // A descriptor announcing an empty frame: refused by the frame layer.
    raw.write_all(&[0u8; 20]).unwrap();
    let mut buf = [0u8; 64];
    match raw.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected a disconnect, got {n} bytes"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("expected a disconnect, got {e}"),
    }
    let info = d.pactl_ok(&["info"]);
    assert!(info.contains("Server Name: srbd"), "{info}");
    assert!(d.log().contains("malformed frame"), "{}", d.log());
}

#[test]
fn sigterm_exits_cleanly_and_removes_the_socket() {
    let mut d = Daemon::start("sigterm");
    d.pactl_ok(&["info"]);
    let status = d.stop();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(!d.socket.exists());
}

#[test]
fn default_socket_is_in_the_runtime_dir() {
    let d = Daemon::start_with("default", false);
    let info = d.pactl_ok(&["info"]);
    assert!(info.contains("Default Sink: srb_output"), "{info}");
}

#[test]
fn several_clients_at_once() {
    let d = Daemon::start("many");
    let children: Vec<Child> = (0..8)
        .map(|_| d.spawn_pactl(&["list", "sinks", "short"]))
        .collect();
    for child in children {
        let out = wait_bounded(child, "concurrent pactl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}\n{}", d.log());
        assert!(stdout.contains("srb_output"), "{stdout}");
    }
}
