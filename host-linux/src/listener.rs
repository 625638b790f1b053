//! [`Listener`]: the listening unix socket, its lock file, and systemd
//! socket activation; [`connect`] for clients.
//!
//! # One instance per directory
//!
//! [`Listener::bind`] takes `<dir>/<name>.lock` with a non-blocking
//! exclusive `flock` first; a second instance gets
//! [`ListenError::AlreadyRunning`] and touches nothing. Only while holding
//! the lock does it look at a socket already at the path: one that accepts
//! a connection belongs to a live server that does not use our lock (e.g.
//! PulseAudio on `pulse/native`) and is left alone
//! ([`ListenError::LiveServer`]); one that refuses is stale (left by a
//! crashed server) and is removed, if that path really is a socket. Then it
//! binds and listens. On drop it removes its socket and its lock file,
//! then releases the lock (closing the lock fd).
//!
//! # Socket activation
//!
//! [`Listener::from_systemd`] takes the socket systemd passed: when
//! `LISTEN_PID` is our pid and `LISTEN_FDS` is 1, fd 3 is a listening unix
//! stream socket. [`parse_listen_env`] holds the rules and is tested on its
//! own. The variables are left in the environment (changing the environment
//! is not thread-safe); `LISTEN_PID` keeps children from taking the fd.
//!
//! # Accepting
//!
//! [`Listener::accept`] returns the connection as an [`ScmStream`] together
//! with the peer's `SO_PEERCRED` credentials, so the caller can refuse
//! shared memory to other users.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, UCred};

use crate::runtime_dir::RuntimeDir;
use crate::scm::ScmStream;

/// The fd systemd passes first (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

/// Why a listening socket could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    /// Another instance holds the lock.
    #[error("another instance is running (lock {lock} is held)", lock = lock.display())]
    AlreadyRunning {
        /// The lock file.
        lock: PathBuf,
    },
    /// Opening or locking the lock file failed.
    #[error("cannot lock {path}: {errno}", path = path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// Something that is not a socket sits where the socket belongs.
    #[error("{path} exists and is not a socket; not removing it", path = path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A server answers on the path already (one that does not take our
    /// lock file).
    #[error("a server is already listening on {path}", path = path.display())]
    LiveServer {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket name is not a plain file name.
    #[error("bad socket name {0:?}")]
    BadName(String),
    /// Creating, binding or listening failed.
    #[error("cannot listen on {path}: {errno}", path = path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
}

/// Why socket activation could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    /// A variable is not a number.
    #[error("{var}={value:?} is not a number")]
    BadValue {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// More than one socket was passed; this daemon serves one.
    #[error("LISTEN_FDS={count}; exactly one socket is supported")]
    TooManySockets {
        /// How many were passed.
        count: u32,
    },
    /// fd 3 is not a listening unix stream socket.
    #[error("fd 3 is not a listening unix stream socket")]
    NotAListeningSocket,
    /// The activated socket was already taken by this process.
    #[error("the activated socket was already taken")]
    AlreadyTaken,
    /// Inspecting fd 3 failed.
    #[error("inspecting fd 3 failed: {0}")]
    Inspect(Errno),
}

/// Parses `LISTEN_PID`/`LISTEN_FDS`: how many sockets systemd passed to
/// the process `our_pid`. `Ok(None)` when activation is not in use or the
/// variables are meant for another process.
pub fn parse_listen_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    our_pid: u32,
) -> Result<Option<u32>, ActivationError> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(None);
    };
    let pid: u32 = pid.trim().parse().map_err(|_| ActivationError::BadValue {
        var: "LISTEN_PID",
        value: pid.to_owned(),
    })?;
    if pid != our_pid {
        return Ok(None);
    }
    let count: u32 = fds.trim().parse().map_err(|_| ActivationError::BadValue {
        var: "LISTEN_FDS",
        value: fds.to_owned(),
    })?;
    match count {
        0 => Ok(None),
        1 => Ok(Some(1)),
        count => Err(ActivationError::TooManySockets { count }),
    }
}

/// Whether `fd` is a listening unix stream socket.
pub fn is_listening_unix_stream(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    use rustix::net::sockopt;
    if FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode) != FileType::Socket {
        return Ok(false);
    }
    Ok(sockopt::socket_domain(fd)? == AddressFamily::UNIX
        && sockopt::socket_type(fd)? == SocketType::STREAM
        && sockopt::socket_acceptconn(fd)?)
}

/// A listening unix stream socket (see the module docs).
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    /// The socket path we bound and must remove (None when activated).
    path: Option<PathBuf>,
    /// The lock file and its fd; closing the fd releases the lock. `Drop`
    /// removes the socket and the file while still holding it.
    lock: Option<(PathBuf, OwnedFd)>,
}

impl Listener {
    /// Takes the lock `<dir>/<name>.lock`, removes a stale socket, binds
    /// `<dir>/<name>` and listens.
    pub fn bind(dir: &RuntimeDir, name: &str) -> Result<Self, ListenError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(ListenError::BadName(name.to_owned()));
        }
        let lock_path = dir.path().join(format!("{name}.lock"));
        let lock = take_lock(&lock_path)?;
        let path = dir.path().join(name);
        remove_stale_socket(&path)?;
        let bind_err = |errno| ListenError::Bind {
            path: path.clone(),
            errno,
        };
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(bind_err)?;
        let addr = SocketAddrUnix::new(&path).map_err(bind_err)?;
        rustix::net::bind(&fd, &addr).map_err(bind_err)?;
        let listener = Self {
            fd,
            path: Some(path.clone()),
            lock: Some((lock_path, lock)),
        };
        rustix::net::listen(&listener.fd, 128).map_err(bind_err)?;
        tracing::info!(path = %path.display(), "listening");
        Ok(listener)
    }

    /// The socket systemd passed, if this process was socket-activated.
    pub fn from_systemd() -> Result<Option<Self>, ActivationError> {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        let our_pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        if parse_listen_env(pid.as_deref(), fds.as_deref(), our_pid)?.is_none() {
            return Ok(None);
        }
        // Relaxed is enough: the flag only guards against taking fd 3
        // twice; it publishes no other data.
        if TAKEN.swap(true, Ordering::Relaxed) {
            return Err(ActivationError::AlreadyTaken);
        }
        // SAFETY: `borrow_raw` needs fd 3 to be open for as long as the
        // borrow lives. LISTEN_PID names this process, so by the
        // sd_listen_fds(3) contract systemd passed fd 3 open to us, and
        // TAKEN (set above) means nothing else in this process has taken
        // ownership of it and could close it under us. `fcntl_getfd` is only
        // a check of that contract (EBADF if the environment lied), not what
        // makes the borrow sound.
        let borrowed = unsafe { BorrowedFd::borrow_raw(LISTEN_FDS_START) };
        rustix::io::fcntl_getfd(borrowed).map_err(ActivationError::Inspect)?;
        if !is_listening_unix_stream(borrowed).map_err(ActivationError::Inspect)? {
            return Err(ActivationError::NotAListeningSocket);
        }
        // SAFETY: systemd passed fd 3 to this process (LISTEN_PID is ours),
        // it is open and a listening socket (checked), and TAKEN makes this
        // the only owner in the process.
        let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
            .map_err(ActivationError::Inspect)?;
        tracing::info!("using the socket-activated listener (fd 3)");
        Ok(Some(Self {
            fd,
            path: None,
            lock: None,
        }))
    }

    /// Accepts one connection; returns it with the peer's credentials.
    pub fn accept(&self) -> Result<(ScmStream, UCred), Errno> {
        let fd = loop {
            match rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC) {
                Err(Errno::INTR | Errno::CONNABORTED) => {}
                r => break r?,
            }
        };
        let creds = rustix::net::sockopt::socket_peercred(&fd)?;
        Ok((ScmStream::new(fd)?, creds))
    }

    /// The socket path (None for an activated socket).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Still holding the lock: no other instance can have bound the path.
        if let Some(path) = &self.path {
            if let Err(e) = rustix::fs::unlink(path) {
                tracing::warn!(path = %path.display(), %e, "cannot remove socket");
            }
        }
        // The lock file goes too, before the lock is released: an instance
        // that opens it now gets a fresh file and its own lock.
        if let Some((path, _fd)) = &self.lock {
            if let Err(e) = rustix::fs::unlink(path) {
                tracing::warn!(path = %path.display(), %e, "cannot remove lock file");
            }
        }
    }
}

fn take_lock(path: &Path) -> Result<OwnedFd, ListenError> {
    let err = |errno| ListenError::Lock {
        path: path.to_owned(),
        errno,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(err)?;
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(fd),
        Err(Errno::WOULDBLOCK) => Err(ListenError::AlreadyRunning {
            lock: path.to_owned(),
        }),
        Err(e) => Err(err(e)),
    }
}

fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    match rustix::fs::lstat(path) {
        Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(ListenError::Bind {
            path: path.to_owned(),
            errno,
        }),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Socket => {
            if connect(path).is_ok() {
                return Err(ListenError::LiveServer {
                    path: path.to_owned(),
                });
            }
            tracing::info!(path = %path.display(), "removing stale socket");
            rustix::fs::unlink(path).map_err(|errno| ListenError::Bind {
                path: path.to_owned(),
                errno,
            })
        }
        Ok(_) => Err(ListenError::NotASocket {
            path: path.to_owned(),
        }),
    }
}

/// Connects to the listening socket at `path`.
pub fn connect(path: &Path) -> Result<ScmStream, Errno> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Err(Errno::INTR) => {}
            r => break r?,
        }
    }
    ScmStream::new(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_dir::tests::TempPath;

    #[test]
    fn listen_env_rules() {
        assert_eq!(parse_listen_env(None, None, 42), Ok(None));
        assert_eq!(parse_listen_env(Some("42"), None, 42), Ok(None));
        assert_eq!(parse_listen_env(None, Some("1"), 42), Ok(None));
        assert_eq!(
            parse_listen_env(Some("41"), Some("1"), 42),
            Ok(None),
            "another process's"
        );
        assert_eq!(parse_listen_env(Some("42"), Some("0"), 42), Ok(None));
        assert_eq!(parse_listen_env(Some("42"), Some("1"), 42), Ok(Some(1)));
        assert_eq!(
            parse_listen_env(Some("42"), Some("2"), 42),
            Err(ActivationError::TooManySockets { count: 2 })
        );
        assert_eq!(
            parse_listen_env(Some("x"), Some("1"), 42),
            Err(ActivationError::BadValue {
                var: "LISTEN_PID",
                value: "x".into()
            })
        );
        assert_eq!(
            parse_listen_env(Some("42"), Some("-1"), 42),
            Err(ActivationError::BadValue {
                var: "LISTEN_FDS",
                value: "-1".into()
            })
        );
    }

    #[test]
    fn only_listening_unix_stream_sockets_qualify_for_activation() {
        let t = TempPath::new("act");
        let dir = RuntimeDir::open(&t.0).unwrap();
        let l = Listener::bind(&dir, "s").unwrap();
        assert_eq!(is_listening_unix_stream(l.as_fd()), Ok(true));
        let (a, _b) = ScmStream::pair().unwrap();
        assert_eq!(is_listening_unix_stream(a.as_fd()), Ok(false));
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(is_listening_unix_stream(r.as_fd()), Ok(false));
    }

    #[test]
    fn a_second_instance_is_refused_while_the_first_holds_the_lock() {
        let t = TempPath::new("lock");
        let dir = RuntimeDir::open(&t.0).unwrap();
        let first = Listener::bind(&dir, "srbd").unwrap();
        assert_eq!(
            Listener::bind(&dir, "srbd").unwrap_err(),
            ListenError::AlreadyRunning {
                lock: t.0.join("srbd.lock")
            }
        );
        // The refused instance did not remove the live socket.
        assert!(t.0.join("srbd").exists());
        drop(first);
        assert!(!t.0.join("srbd").exists(), "socket removed on drop");
        assert!(!t.0.join("srbd.lock").exists(), "lock file removed on drop");
        Listener::bind(&dir, "srbd").unwrap();
    }

    #[test]
    fn a_live_server_that_ignores_our_lock_is_left_alone() {
        let t = TempPath::new("live");
        let dir = RuntimeDir::open(&t.0).unwrap();
        // Another server (PulseAudio, say) listening where we would.
        let other = std::os::unix::net::UnixListener::bind(t.0.join("native")).unwrap();
        assert_eq!(
            Listener::bind(&dir, "native").unwrap_err(),
            ListenError::LiveServer {
                path: t.0.join("native")
            }
        );
        assert!(t.0.join("native").exists(), "its socket is untouched");
        // Once it is gone, its socket file is stale and replaced.
        drop(other);
        Listener::bind(&dir, "native").unwrap();
    }

    #[test]
    fn a_stale_socket_is_replaced_and_other_files_are_not_touched() {
        let t = TempPath::new("stale");
        let dir = RuntimeDir::open(&t.0).unwrap();
        // A socket left behind by a crashed instance (bound, never removed).
        let stale = std::os::unix::net::UnixListener::bind(t.0.join("srbd")).unwrap();
        drop(stale);
        let l = Listener::bind(&dir, "srbd").unwrap();
        let c = connect(&t.0.join("srbd")).unwrap();
        let (mut s, creds) = l.accept().unwrap();
        assert_eq!(creds.uid, rustix::process::geteuid());
        c.send(b"hi", &[], false).unwrap();
        let mut buf = [0u8; 2];
        s.recv_exact(&mut buf, None).unwrap();
        assert_eq!(&buf, b"hi");
        std::fs::write(t.0.join("file"), b"x").unwrap();
        assert_eq!(
            Listener::bind(&dir, "file").unwrap_err(),
            ListenError::NotASocket {
                path: t.0.join("file")
            }
        );
        assert!(matches!(
            Listener::bind(&dir, "a/b"),
            Err(ListenError::BadName(_))
        ));
    }
}
