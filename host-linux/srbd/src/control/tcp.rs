//! `--tcp ADDR:PORT`: the same protocol for clients on other machines.
//! Audio always goes inline over TCP (never shared memory). A TCP client
//! must present the server's cookie in AUTH (the 256-byte file libpulse
//! reads, `~/.config/pulse/cookie`, copied to the client machine) unless
//! `tcp_anonymous = true`; there are no peer credentials to check.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::control::connection::{self, Peer, COOKIE_LEN};
use crate::{Server, Slot, MAX_CONNECTIONS};

/// A running TCP accept loop.
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl TcpServer {
    /// The address it listens on (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the accept loop to end (after [`Server::request_stop`]
    /// and [`wake`]).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::warn!("tcp accept thread panicked");
        }
    }
}

/// Where the cookie lives: `$PULSE_COOKIE`, else
/// `$XDG_CONFIG_HOME/pulse/cookie`, else `$HOME/.config/pulse/cookie`.
pub fn cookie_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PULSE_COOKIE") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("pulse").join("cookie"))
}

/// Reads the cookie at `path` (default [`cookie_path`]), creating it
/// (0600, random) if it does not exist.
pub fn load_or_create_cookie(path: Option<&Path>) -> io::Result<[u8; COOKIE_LEN]> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path
        .map(Path::to_path_buf)
        .or_else(cookie_path)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no HOME for the cookie"))?;
    let mut cookie = [0u8; COOKIE_LEN];
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            f.read_exact(&mut cookie)?;
            Ok(cookie)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            rustix::rand::getrandom(&mut cookie, rustix::rand::GetRandomFlags::empty())
                .map_err(io::Error::from)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            io::Write::write_all(&mut f, &cookie)?;
            tracing::info!(path = %path.display(), "created a new cookie");
            Ok(cookie)
        }
        Err(e) => Err(e),
    }
}

/// Starts serving TCP clients on `addr`; unless `anonymous`, they must
/// present the cookie at `cookie` (default [`cookie_path`]).
pub fn serve(
    addr: SocketAddr,
    anonymous: bool,
    cookie: Option<&Path>,
    server: &Arc<Server>,
) -> io::Result<TcpServer> {
    let cookie = if anonymous {
        None
    } else {
        Some(load_or_create_cookie(cookie)?)
    };
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, anonymous, "serving TCP clients");
    let server = server.clone();
    let thread = std::thread::Builder::new()
        .name("srbd-tcp".into())
        .spawn(move || accept_loop(&listener, cookie, &server))?;
    Ok(TcpServer { addr, thread })
}

fn accept_loop(listener: &TcpListener, cookie: Option<[u8; COOKIE_LEN]>, server: &Arc<Server>) {
    let mut n: u64 = 0;
    loop {
        let accepted = listener.accept();
        if server.stopping() {
            return;
        }
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%e, "tcp accept failed; continuing");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        if server.active_connections() >= MAX_CONNECTIONS {
            tracing::warn!(%addr, "too many connections; refused");
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%e, "TCP_NODELAY");
        }
        n += 1;
        let fd = Arc::new(OwnedFd::from(stream));
        let slot = Slot::take(server.clone());
        let peer = Peer::Tcp {
            addr,
            cookie: cookie.map(Box::new),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("srbd-tcp-{n}"))
            .spawn(move || {
                let slot = slot;
                connection::serve(connection::Transport::Tcp(fd), peer, slot.server().clone());
            });
        if let Err(e) = spawned {
            tracing::warn!(%e, "cannot spawn a connection thread; connection dropped");
        }
    }
}

/// Wakes the accept loop by connecting to it.
pub fn wake(addr: SocketAddr) {
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(
            match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            },
            addr.port(),
        )
    } else {
        addr
    };
    if let Err(e) = TcpStream::connect(target) {
        tracing::debug!(%e, "tcp wake-up connect failed");
    }
}
