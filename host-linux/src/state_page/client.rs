//! The client side of the `control` socket: [`receive_page_fd`] and
//! [`StatePage::connect`].

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;

use super::hello::{FRAME_STATE_PAGE, HELLO_LEN, HELLO_MAGIC, HELLO_VERSION};
use super::layout::PAGE_LEN;
use super::reader::{OpenError, StatePage};
use crate::fdkind::FdKind;
use crate::frame::{recv_frame, FrameError};
use crate::listener;
use crate::runtime_dir::RuntimeDir;
use crate::scm::ClaimError;

/// How long [`StatePage::connect`] waits for the server's hello.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no page was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Nobody listens there (or connecting failed otherwise).
    #[error("connecting to {path}: {errno}", path = path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// The server runs as another user.
    #[error("the control socket's server is uid {peer}, not us (uid {ours})")]
    WrongServerUid {
        /// Its uid.
        peer: u32,
        /// Ours.
        ours: u32,
    },
    /// No frame arrived (timeout, hang-up, `MSG_CTRUNC`, too many fds...).
    #[error("receiving the hello: {0}")]
    Recv(#[from] FrameError),
    /// A frame that is not the hello this crate knows.
    #[error("unexpected hello: kind {kind:#x}, {len} bytes, magic {magic:#x}, version {version}, page {page_len} bytes")]
    BadHello {
        /// The frame kind.
        kind: u32,
        /// Its payload length.
        len: usize,
        /// The magic word (0 if the payload is short).
        magic: u32,
        /// The version word.
        version: u32,
        /// The page length word.
        page_len: u32,
    },
    /// The hello did not carry exactly one memfd.
    #[error("the hello's fds: {0}")]
    Fds(#[from] ClaimError),
    /// The page was refused.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// `$XDG_RUNTIME_DIR/srb/control` (or `/tmp/srb-<uid>/control` without
/// `XDG_RUNTIME_DIR`): where srbd's control socket is by default.
pub fn default_control_path() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR");
    let uid = rustix::process::geteuid().as_raw();
    RuntimeDir::path_for(xdg.as_deref(), uid).join("control")
}

fn word(b: &[u8], i: usize) -> u32 {
    b.get(i * 4..i * 4 + 4)
        .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// Connects to the control socket at `path`, checks that its server is our
/// uid, and receives the hello with exactly one memfd, which it returns
/// (unchecked: [`StatePage::open`] checks it). Waits at most `timeout`.
pub fn receive_page_fd(path: &Path, timeout: Duration) -> Result<OwnedFd, ConnectError> {
    let mut stream = listener::connect(path).map_err(|errno| ConnectError::Connect {
        path: path.to_owned(),
        errno,
    })?;
    let peer = stream
        .peer_credentials()
        .map_err(|errno| ConnectError::Connect {
            path: path.to_owned(),
            errno,
        })?
        .uid
        .as_raw();
    let ours = rustix::process::geteuid().as_raw();
    if peer != ours {
        return Err(ConnectError::WrongServerUid { peer, ours });
    }
    let f = recv_frame(&mut stream, Some(timeout))?;
    let p = &f.payload;
    let (magic, version, page_len) = (word(p, 0), word(p, 1), word(p, 2));
    if f.kind != FRAME_STATE_PAGE
        || p.len() != HELLO_LEN
        || magic != HELLO_MAGIC
        || version != HELLO_VERSION
        || page_len != PAGE_LEN as u32
    {
        stream.close_unclaimed();
        return Err(ConnectError::BadHello {
            kind: f.kind,
            len: p.len(),
            magic,
            version,
            page_len,
        });
    }
    let mut fds = stream.claim_exact(&[FdKind::Memfd])?;
    Ok(fds.remove(0))
}

impl StatePage {
    /// Receives the page from the control socket at `path`
    /// ([`receive_page_fd`], at most [`CONNECT_TIMEOUT`]) and opens it.
    pub fn connect(path: &Path) -> Result<StatePage, ConnectError> {
        let fd = receive_page_fd(path, CONNECT_TIMEOUT)?;
        Ok(StatePage::open(fd)?)
    }
}
