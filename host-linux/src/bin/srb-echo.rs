//! `srb-echo`: the peer process of the transport tests.
//!
//! ```text
//! srb-echo SOCKET_PATH echo   connect, accept a channel, echo messages until the end marker
//! srb-echo SOCKET_PATH hold   connect, accept a channel, then block reading until killed
//! ```
//!
//! Exit status: 0 on success, 1 on a usage error, 2 on a failed handshake,
//! 3 on a failed exchange (with the error on stderr).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use srb_linux::{echo, handshake, listener};

/// How long one wait may last before the exchange counts as stalled.
const STALL: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (path, mode) = match args.as_slice() {
        [_, path, mode] if mode == "echo" || mode == "hold" => (path, mode.as_str()),
        _ => {
            eprintln!("usage: srb-echo SOCKET_PATH echo|hold");
            return ExitCode::from(1);
        }
    };
    let stream = match listener::connect(Path::new(path)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("srb-echo: connect {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ch = match handshake::accept(stream, Some(STALL)) {
        Ok(ch) => ch,
        Err(e) => {
            eprintln!("srb-echo: handshake: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match mode {
        "echo" => echo::serve_echo(&mut ch, Some(STALL)).map(|stats| {
            eprintln!(
                "srb-echo: echoed {} messages, {} bytes; slept {} times, {} pending",
                stats.messages, stats.bytes, stats.slept, stats.pending
            );
        }),
        _ => {
            let mut buf = [0u8; 1];
            ch.read_exact(&mut buf, None).map_err(echo::EchoError::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srb-echo: {e}");
            ExitCode::from(3)
        }
    }
}
