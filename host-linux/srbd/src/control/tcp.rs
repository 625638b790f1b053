//! `--tcp ADDR:PORT`: the same protocol for clients on other machines.
//! Audio always goes inline over TCP (never shared memory). A TCP client
//! must present the server's cookie in AUTH (the 256-byte file libpulse
//! reads, `~/.config/pulse/cookie`, copied to the client machine) unless
//! `tcp_anonymous = true`; there are no peer credentials to check.

//!
//! The listener itself is one of the control loop's
//! ([`crate::control::server_loop::ServerLoop::listen_tcp`]); this file
//! holds the cookie.

use std::io;
use std::path::{Path, PathBuf};

use crate::control::session::COOKIE_LEN;

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
