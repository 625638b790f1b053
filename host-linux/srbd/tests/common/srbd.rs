//! The `srbd` end-to-end harness: a private directory, the built `srbd`
//! started on a socket in it, Debian's real `pactl`/`pacat`/`paplay`/
//! `parec` run against it in an isolated environment, and the helpers the
//! stream tests share (WAV files, generated signals, bounded polling).
//!
//! Every wait is bounded by [`DEADLINE`]; it is only there so a broken
//! daemon fails a test instead of hanging it. Nothing here measures speed.
//! A missing client tool fails the test with a message saying what to
//! install; it never skips.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use rustix::process::Signal;

/// Bound on every wait (daemon start, one client run, a polled condition,
/// daemon exit). Only there so a broken server fails the test instead of
/// hanging it.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Pause between two looks at a polled condition.
pub const POLL: Duration = Duration::from_millis(20);

/// The daemon's sink and monitor names by default.
pub const SINK: &str = "srb_output";
/// The monitor source of [`SINK`].
pub const MONITOR: &str = "srb_output.monitor";

/// A fresh 0700 directory with `xdg/`, `home/`, `pulse/` and a
/// `client.conf` that forbids autospawn; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
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

/// Sends `sig` to process `pid` (a child we started). Errors (the process
/// is already gone) are ignored.
pub fn signal_pid(pid: u32, sig: Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Sends `sig` to `child`.
pub fn signal(child: &Child, sig: Signal) {
    signal_pid(child.id(), sig);
}

/// Waits for `child` at most [`DEADLINE`]; kills it on expiry.
pub fn wait_bounded(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: wait failed: {e}")),
        Err(_) => {
            signal_pid(pid, Signal::KILL);
            panic!("{what}: still running after {DEADLINE:?}");
        }
    }
}

/// Polls `f` every [`POLL`] until it returns `Some`, at most [`DEADLINE`];
/// panics with `what` (and `context()`) on expiry.
pub fn poll_until<T>(
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= DEADLINE {
            panic!("{what}: not within {DEADLINE:?}\n{}", context());
        }
        std::thread::sleep(POLL);
    }
}

/// Removes ANSI colour escapes (`ESC [ … letter`) from a log.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The program `name` on PATH; fails the test (does not skip) when missing.
pub fn find_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: these tests need Debian's pulseaudio-utils \
                 (pactl, pacat, paplay, parec); run scripts/test-srbd.sh, which installs it"
            )
        })
}

/// The `pactl` on PATH; fails the test (does not skip) when missing.
pub fn find_pactl() -> PathBuf {
    find_tool("pactl")
}

/// Which fast path the daemon offers. SHM with the srbchannel is the
/// daemon's default; the stream tests run in all three modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shm {
    /// The default (`--shm on --srbchannel on`): libpulse clients of our
    /// uid send memfd block references, and every frame without fds goes
    /// through the srbchannel ring.
    Ring,
    /// `--srbchannel off`: memfd block references, frames over the socket.
    On,
    /// `--shm off`: every client copies its audio into the socket.
    Off,
}

impl Shm {
    /// The daemon arguments that select the mode.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Shm::Ring => &["--shm", "on", "--srbchannel", "on"],
            Shm::On => &["--shm", "on", "--srbchannel", "off"],
            Shm::Off => &["--shm", "off"],
        }
    }
}

/// The ids of the eventfds process `pid` holds (`eventfd-id` of
/// `/proc/PID/fdinfo`, unique per eventfd system-wide): two processes that
/// hold the same eventfd show the same id.
pub fn eventfd_ids(pid: u32) -> std::collections::BTreeSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy() == "anon_inode:[eventfd]")
        })
        .filter_map(|e| {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .ok()?;
            info.lines()
                .find_map(|l| l.strip_prefix("eventfd-id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

/// The `key=value` field `key` of a log line, if present.
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// A running `srbd`; SIGTERMed on drop.
pub struct Daemon {
    child: Option<Child>,
    pid: u32,
    pub dir: TempDir,
    pub socket: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Starts srbd with `--socket <dir>/native`.
    pub fn start(tag: &str) -> Self {
        Self::launch(tag, true, &[])
    }

    /// Starts srbd; without `explicit` it picks its default socket, which
    /// must be `$XDG_RUNTIME_DIR/pulse/native` (where libpulse looks).
    pub fn start_with(tag: &str, explicit: bool) -> Self {
        Self::launch(tag, explicit, &[])
    }

    /// Starts srbd with `--socket <dir>/native` and `args`, in which every
    /// `{dir}` is replaced by the daemon's private directory (e.g.
    /// `&["--output", "wav:{dir}/out.wav"]`; read it back with
    /// [`Daemon::path`]).
    pub fn start_args(tag: &str, args: &[&str]) -> Self {
        Self::launch(tag, true, args)
    }

    /// [`Daemon::start_args`] with `--shm on|off` first.
    pub fn start_mode(tag: &str, shm: Shm, args: &[&str]) -> Self {
        let mut all = shm.args().to_vec();
        all.extend_from_slice(args);
        Self::launch(tag, true, &all)
    }

    /// Starts srbd with `--socket <dir>/native`, `args` and no `--output`
    /// (srbd picks its default), with `env` added to its environment
    /// (`{dir}` replaced as in `args`): the default-device tests.
    pub fn start_default_output(tag: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::launch_with(tag, true, args, env, false)
    }

    fn launch(tag: &str, explicit: bool, args: &[&str]) -> Self {
        Self::launch_with(tag, explicit, args, &[], true)
    }

    fn launch_with(
        tag: &str,
        explicit: bool,
        args: &[&str],
        env: &[(&str, &str)],
        null_output: bool,
    ) -> Self {
        let dir = TempDir::new(tag);
        let stderr = dir.0.join("srbd.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_srbd"));
        let socket = if explicit {
            let socket = dir.0.join("native");
            cmd.arg("--socket").arg(&socket);
            socket
        } else {
            dir.0.join("xdg").join("pulse").join("native")
        };
        let dir_str = dir.0.to_str().expect("temp dir is UTF-8").to_owned();
        // Real-time scheduling stays off unless a test asks for it (the
        // binary's default is on, and tests run as root in CI).
        if !args.iter().any(|a| a.starts_with("--rt-priority")) {
            cmd.arg("--rt-priority=0");
        }
        // The null sink unless a test names an output (srbd's default is
        // the first sound card, which a test must not play to).
        if null_output && !args.iter().any(|a| a.starts_with("--output")) {
            cmd.args(["--output", "null"]);
        }
        cmd.args(args.iter().map(|a| a.replace("{dir}", &dir_str)));
        for (k, v) in env {
            cmd.env(k, v.replace("{dir}", &dir_str));
        }
        let mut child = cmd
            .env("XDG_RUNTIME_DIR", dir.0.join("xdg"))
            .env_remove("PULSE_RUNTIME_PATH")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
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
            pid: child.id(),
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
            let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_else(|| {
                panic!("no socket after {DEADLINE:?} (args {args:?})\n{}", d.log())
            });
            match rx.recv_timeout(left) {
                Ok(line) => assert_eq!(line, want, "srbd's first line"),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("srbd exited before listening (args {args:?})\n{}", d.log())
                }
            }
        }
        // The socket exists before the DSP peer is spawned; wait until the
        // daemon has settled which clock it runs on, so fd and socket
        // counts taken by a test do not race the peer's start.
        d.wait_for("the sink's clock (DSP attached or off)", || {
            let log = d.log();
            [
                "DSP attached",
                "DSP off",
                "DSP peer not started",
                "dsp-sim not found",
            ]
            .iter()
            .any(|m| log.contains(m))
            .then_some(())
        });
        d
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `name` inside the daemon's private directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// Where srbd's `control` socket is (its default, in the private
    /// `XDG_RUNTIME_DIR`).
    pub fn control_path(&self) -> PathBuf {
        self.dir.0.join("xdg").join("srb").join("control")
    }

    /// The state page srbd hands out on its `control` socket.
    pub fn state_page(&self) -> srb_linux::state_page::StatePage {
        srb_linux::state_page::StatePage::connect(&self.control_path())
            .unwrap_or_else(|e| panic!("state page: {e}\n{}", self.log()))
    }

    /// Everything srbd wrote to stderr so far (RUST_LOG=debug, no colours).
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }

    /// Log lines at level ERROR and panic messages.
    pub fn log_problems(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.split_whitespace().take(3).any(|t| t == "ERROR") || l.contains("panicked")
            })
            .map(str::to_owned)
            .collect()
    }

    /// Fails unless the log has no ERROR line and no panic.
    pub fn assert_log_clean(&self) {
        let problems = self.log_problems();
        assert!(
            problems.is_empty(),
            "srbd logged errors:\n{}\nfull log:\n{}",
            problems.join("\n"),
            self.log()
        );
    }

    /// How many log lines announce a stream created, and how many a
    /// stream deleted (a line naming a "stream" and "created"; a line
    /// naming a "stream" and "deleted"/"removed"/"destroyed").
    pub fn stream_events(&self) -> (usize, usize) {
        let log = self.log().to_lowercase();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("stream")).collect();
        let created = lines.iter().filter(|l| l.contains("created")).count();
        let deleted = lines
            .iter()
            .filter(|l| l.contains("deleted") || l.contains("removed") || l.contains("destroyed"))
            .count();
        (created, deleted)
    }

    /// The SHM references imported, summed over the connections that
    /// ended (each logs `shm_refs=N` when it closes), and how many
    /// connections negotiated SHM (`authorised ... shm=true`).
    pub fn shm_counts(&self) -> (u64, usize) {
        let log = self.log();
        let refs = log
            .lines()
            .filter(|l| l.contains("client disconnected") || l.contains("connection closed"))
            .filter_map(|l| log_field(l, "shm_refs")?.parse::<u64>().ok())
            .sum();
        let negotiated = log
            .lines()
            .filter(|l| l.contains("authorised") && log_field(l, "shm") == Some("true"))
            .count();
        (refs, negotiated)
    }

    /// Proves from the daemon's log which path the audio took: with
    /// [`Shm::Ring`] and [`Shm::On`] a client registered its memfd pool
    /// and SHM references were imported (waits for the connections to
    /// end); with [`Shm::Ring`] a client also moved frames both ways
    /// through an acknowledged srbchannel, and otherwise none was offered;
    /// with [`Shm::Off`] no connection negotiated SHM and nothing was
    /// imported.
    pub fn assert_transport(&self, shm: Shm) {
        if shm == Shm::Ring {
            self.wait_for("a client that used the srbchannel both ways", || {
                self.log()
                    .lines()
                    .filter(|l| {
                        l.contains("client disconnected") || l.contains("connection closed")
                    })
                    .any(|l| {
                        let n = |k| log_field(l, k).and_then(|v| v.parse::<u64>().ok());
                        log_field(l, "srbchannel") == Some("true")
                            && n("srb_in").is_some_and(|v| v > 0)
                            && n("srb_out").is_some_and(|v| v > 0)
                    })
                    .then_some(())
            });
        } else {
            let log = self.log();
            assert!(
                !log.contains("srbchannel offered"),
                "{shm:?}: an srbchannel was offered\n{log}"
            );
        }
        match shm {
            Shm::Ring | Shm::On => {
                self.wait_for("SHM references imported (shm_refs > 0 in the log)", || {
                    let (refs, negotiated) = self.shm_counts();
                    (refs > 0 && negotiated > 0 && self.log().contains("memfd pool registered"))
                        .then_some(())
                })
            }
            Shm::Off => {
                let (refs, negotiated) = self.shm_counts();
                let log = self.log();
                assert!(
                    refs == 0 && negotiated == 0 && !log.contains("memfd pool registered"),
                    "--shm off: {negotiated} connections negotiated SHM, {refs} refs imported\n{log}"
                );
                assert!(
                    log.lines()
                        .any(|l| l.contains("authorised") && log_field(l, "shm") == Some("false")),
                    "no client authorised (with shm=false) in the log:\n{log}"
                );
            }
        }
    }

    /// `unix:<socket>`, for PULSE_SERVER and `pactl --server`.
    pub fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// `tool` (pactl, pacat, paplay, parec) in a clean environment aimed
    /// at this daemon: PULSE_SERVER, private HOME/XDG_RUNTIME_DIR/
    /// PULSE_RUNTIME_PATH, a client.conf without autospawn, LC_ALL=C.
    /// stdin null, stdout and stderr piped.
    pub fn client(&self, tool: &str) -> Command {
        let mut cmd = Command::new(find_tool(tool));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .env("HOME", self.dir.0.join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.0.join("xdg"))
            .env("PULSE_RUNTIME_PATH", self.dir.0.join("pulse"))
            .env("PULSE_CLIENTCONFIG", self.dir.0.join("client.conf"))
            .env("PULSE_SERVER", self.server())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `pactl --server <ours> args…` in a clean environment.
    pub fn pactl(&self, args: &[&str]) -> Output {
        wait_bounded(self.spawn_pactl(args), &format!("pactl {args:?}"))
    }

    /// Starts `pactl --server <ours> args…` without waiting for it.
    pub fn spawn_pactl(&self, args: &[&str]) -> Child {
        self.client("pactl")
            .arg("--server")
            .arg(self.server())
            .args(args)
            .spawn()
            .expect("spawn pactl")
    }

    /// `pactl args…` must succeed; returns its stdout.
    pub fn pactl_ok(&self, args: &[&str]) -> String {
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

    /// The tab-separated fields of each line of `pactl list short <what>`.
    pub fn list_short(&self, what: &str) -> Vec<Vec<String>> {
        self.pactl_ok(&["list", "short", what])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// Starts `pacat args…` with stdin piped (feed it with [`Feeder`]).
    pub fn spawn_pacat(&self, args: &[&str]) -> Child {
        self.client("pacat")
            .args(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn pacat")
    }

    /// Starts `paplay args… file`.
    pub fn spawn_paplay(&self, file: &Path, args: &[&str]) -> Child {
        self.client("paplay")
            .args(args)
            .arg(file)
            .spawn()
            .expect("spawn paplay")
    }

    /// Runs `paplay file` to its end; it must exit 0.
    pub fn paplay_ok(&self, file: &Path) {
        let out = wait_bounded(
            self.spawn_paplay(file, &[]),
            &format!("paplay {}", file.display()),
        );
        self.assert_exit_ok(&out, &format!("paplay {}", file.display()));
    }

    /// Runs `gst-launch-1.0 -q PIPELINE…` aimed at the daemon; it must
    /// exit 0.
    pub fn gst(&self, pipeline: &[&str]) {
        let mut cmd = self.client("gst-launch-1.0");
        // GStreamer's registry cache lives under $HOME (the private one).
        cmd.env("GST_REGISTRY_FORK", "no").arg("-q").args(pipeline);
        let out = wait_bounded(cmd.spawn().expect("spawn gst-launch-1.0"), "gst-launch-1.0");
        self.assert_exit_ok(&out, &format!("gst-launch-1.0 {pipeline:?}"));
    }

    /// Starts `parec args…` writing what it records to `out`.
    pub fn spawn_parec(&self, args: &[&str], out: &Path) -> Child {
        self.client("parec")
            .args(args)
            .stdout(std::fs::File::create(out).expect("create recording"))
            .spawn()
            .expect("spawn parec")
    }

    /// Fails with the client's output and the daemon log unless `out`
    /// shows a zero exit.
    pub fn assert_exit_ok(&self, out: &Output, what: &str) {
        assert!(
            out.status.success(),
            "{what} failed: {:?}\nstdout:\n{}\nstderr:\n{}\nsrbd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Polls `f` until it returns `Some` (bounded by [`DEADLINE`]); the
    /// failure message carries the daemon log.
    pub fn wait_for<T>(&self, what: &str, f: impl FnMut() -> Option<T>) -> T {
        poll_until(what, f, || format!("srbd log:\n{}", self.log()))
    }

    /// Like [`Daemon::wait_for`], but fails at once if one of `clients`
    /// exits meanwhile (with its status and stderr), instead of waiting
    /// out the deadline for something that can no longer happen.
    pub fn wait_while_running<T>(
        &self,
        what: &str,
        clients: &mut [&mut Child],
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let mut exited = None;
        let found = poll_until(
            what,
            || {
                for c in clients.iter_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        let mut err = String::new();
                        if let Some(mut e) = c.stderr.take() {
                            let _ = std::io::Read::read_to_string(&mut e, &mut err);
                        }
                        exited = Some(format!("client exited with {status:?}; stderr:\n{err}"));
                        return Some(None);
                    }
                }
                f().map(Some)
            },
            || format!("srbd log:\n{}", self.log()),
        );
        found.unwrap_or_else(|| {
            panic!(
                "{what}: {}\nsrbd log:\n{}",
                exited.unwrap_or_default(),
                self.log()
            )
        })
    }

    /// The daemon's fd count once exactly `live` of the connections that
    /// authorised are still open: a client that has exited may not have
    /// been noticed by srbd yet, so a baseline taken at once can be high.
    pub fn settled_fd_count(&self, live: usize) -> usize {
        self.wait_for(&format!("{live} client connection(s) left"), || {
            let log = strip_ansi(&self.log());
            let started = log.matches(" authorised ").count();
            let ended = log.matches("client disconnected").count()
                + log.matches("connection closed").count();
            (started == ended + live).then(|| self.fd_count())
        })
    }

    /// Waits until the daemon's fd count equals `baseline`; the failure
    /// message lists what the daemon holds.
    pub fn wait_fds_back(&self, baseline: usize) {
        poll_until(
            "the daemon's fd count back at its baseline",
            || (self.fd_count() == baseline).then_some(()),
            || {
                format!(
                    "baseline {baseline}, now {}:\n{}\nsrbd log:\n{}",
                    self.fd_count(),
                    self.fd_targets().join("\n"),
                    self.log()
                )
            },
        );
    }

    /// The number of open fds of the daemon (entries of /proc/<pid>/fd).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("/proc/<srbd>/fd")
            .count()
    }

    /// What each open fd of the daemon points at (for failure messages).
    pub fn fd_targets(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| {
                        let target = std::fs::read_link(e.path())
                            .map(|t| t.display().to_string())
                            .unwrap_or_else(|e| format!("<{e}>"));
                        format!("{} -> {target}", e.file_name().to_string_lossy())
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Fails if the daemon has exited (it is then a zombie until reaped,
    /// or gone).
    pub fn assert_running(&self) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // The state is the field after the parenthesised command name.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if self.child.is_none() || matches!(state, None | Some("Z") | Some("X")) {
            panic!("srbd is not running (state {state:?})\n{}", self.log());
        }
    }

    /// SIGTERM and a bounded wait for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.child.take().expect("running");
        signal(&child, Signal::TERM);
        wait_bounded(child, "srbd after SIGTERM").status
    }

    /// SIGTERM; the daemon must exit 0 (it finalizes a WAV output).
    pub fn stop_ok(&mut self) {
        let status = self.stop();
        assert!(status.success(), "srbd exit: {status:?}\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// Writes one chunk into a client's stdin over and over from a thread
/// until [`Feeder::finish`] asks for a last few chunks, then closes stdin
/// (EOF: pacat drains and exits). The chunk should be a multiple of 4096
/// bytes so every pipe read pacat makes ends on a frame boundary.
pub struct Feeder {
    tx: mpsc::Sender<usize>,
    done: mpsc::Receiver<(u64, Option<std::io::Error>)>,
}

impl Feeder {
    pub fn start(mut stdin: ChildStdin, chunk: Vec<u8>) -> Self {
        let (tx, rx) = mpsc::channel::<usize>();
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let mut written = 0u64;
            let mut tail = None;
            let result = loop {
                match tail {
                    Some(0) => break (written, None),
                    Some(ref mut n) => *n -= 1,
                    None => match rx.try_recv() {
                        Ok(n) => {
                            tail = Some(n);
                            continue;
                        }
                        Err(mpsc::TryRecvError::Empty) => {}
                        Err(mpsc::TryRecvError::Disconnected) => break (written, None),
                    },
                }
                if let Err(e) = stdin.write_all(&chunk) {
                    break (written, Some(e));
                }
                written += chunk.len() as u64;
            };
            // Closes stdin before reporting.
            drop(stdin);
            let _ = done_tx.send(result);
        });
        Self { tx, done }
    }

    /// Writes `tail` more chunks, closes stdin and returns the bytes
    /// written in all. Fails if a write failed (the client went away) or
    /// the client stopped reading for [`DEADLINE`] (the server stopped
    /// asking it for data).
    pub fn finish(self, tail: usize) -> u64 {
        let _ = self.tx.send(tail);
        match self.done.recv_timeout(DEADLINE) {
            Ok((written, None)) => written,
            Ok((written, Some(e))) => {
                panic!("feeding the client failed after {written} bytes: {e}")
            }
            // The thread stays blocked in a pipe write until the client
            // dies (the daemon's drop ends it).
            Err(_) => panic!(
                "the client stopped reading its stdin for {DEADLINE:?}: \
                 the server no longer asks it for data"
            ),
        }
    }
}

/// A small deterministic generator (splitmix64), so signals are
/// reproducible without another dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A float sample never zero and never tiny: magnitude in
    /// [0.01, 0.9), random sign.
    pub fn sample_f32(&mut self) -> f32 {
        let m = 0.01 + 0.89 * self.unit();
        let s = if self.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
        (s * m) as f32
    }

    /// An s16 sample never zero: magnitude in [1, 30000], random sign.
    pub fn sample_i16(&mut self) -> i16 {
        let m = 1 + (self.next_u64() % 30_000) as i16;
        if self.next_u64() & 1 == 0 {
            m
        } else {
            -m
        }
    }
}

/// Little-endian bytes of float samples.
pub fn f32le_bytes(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Little-endian bytes of s16 samples.
pub fn s16le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn wav_writer(
    path: &Path,
    rate: u32,
    channels: u16,
    bits: u16,
    format: hound::SampleFormat,
) -> hound::WavWriter<std::io::BufWriter<std::fs::File>> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    };
    hound::WavWriter::create(path, spec).expect("create WAV")
}

/// Writes interleaved float32 samples as a WAV (IEEE float).
pub fn write_wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let mut w = wav_writer(path, rate, channels, 32, hound::SampleFormat::Float);
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// Writes interleaved s16 samples as a 16-bit PCM WAV.
pub fn write_wav_i16(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let mut w = wav_writer(path, rate, channels, 16, hound::SampleFormat::Int);
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// Writes interleaved unsigned 8-bit samples (128 = silence) as an 8-bit
/// PCM WAV. hound takes 8-bit samples as `i8` and stores `i8 + 128`.
pub fn write_wav_u8(path: &Path, rate: u32, channels: u16, samples: &[u8]) {
    let mut w = wav_writer(path, rate, channels, 8, hound::SampleFormat::Int);
    for &s in samples {
        w.write_sample((i16::from(s) - 128) as i8).unwrap();
    }
    w.finalize().unwrap();
}

/// A WAV read back as float samples (integers scaled to [-1, 1)).
#[derive(Debug)]
pub struct Wav {
    pub spec: hound::WavSpec,
    /// Interleaved samples.
    pub samples: Vec<f32>,
}

impl Wav {
    /// Reads `path`; fails the test with the reason if it is not a
    /// complete WAV.
    pub fn read(path: &Path) -> Self {
        let r = hound::WavReader::open(path)
            .unwrap_or_else(|e| panic!("{} is not a readable WAV: {e}", path.display()));
        let spec = r.spec();
        let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) => r
                .into_samples::<f32>()
                .map(|s| s.expect("sample"))
                .collect(),
            (hound::SampleFormat::Int, bits @ 8..=32) => {
                let scale = 1.0 / f64::from(1u32 << (bits - 1));
                r.into_samples::<i32>()
                    .map(|s| (f64::from(s.expect("sample")) * scale) as f32)
                    .collect()
            }
            other => panic!("{}: unexpected WAV sample type {other:?}", path.display()),
        };
        Self { spec, samples }
    }

    pub fn channels(&self) -> usize {
        usize::from(self.spec.channels)
    }

    /// The frames (one slice of `channels` samples each).
    pub fn frames(&self) -> std::slice::ChunksExact<'_, f32> {
        self.samples.chunks_exact(self.channels())
    }

    pub fn frame_count(&self) -> usize {
        self.samples.len() / self.channels()
    }
}

/// The maximal runs of `true` as `(start, length)`.
pub fn runs(flags: impl IntoIterator<Item = bool>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut n = 0;
    for (i, f) in flags.into_iter().enumerate() {
        match (f, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - s));
                start = None;
            }
            _ => {}
        }
        n = i + 1;
    }
    if let Some(s) = start {
        out.push((s, n - s));
    }
    out
}
