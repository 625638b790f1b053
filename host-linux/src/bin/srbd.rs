//! `srbd`: serves libpulse clients (PulseAudio native protocol) on a unix
//! socket. Foreground only; logs go to stderr, filtered by `RUST_LOG`.
//!
//! ```text
//! srbd [--socket PATH]
//! ```
//!
//! Without `--socket` it listens on `native` in the srb runtime directory.
//! On start it prints `PULSE_SERVER=unix:<path>` on stdout. SIGINT or
//! SIGTERM ends it and removes the socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use srb_linux::listener::Listener;
use srb_linux::runtime_dir::RuntimeDir;
use srb_linux::srbd::{self, server_info::ServerInfo, Server};

/// Serves PulseAudio clients (pactl, pacat, ...) on a unix socket.
#[derive(Debug, Parser)]
#[command(name = "srbd", version)]
struct Args {
    /// The socket to listen on; its directory must be ours and 0700.
    /// Default: `native` in the srb runtime directory.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let bound = match &args.socket {
        Some(path) => {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                eprintln!("srbd: --socket {}: not a file path", path.display());
                return ExitCode::from(2);
            };
            let dir = if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            };
            RuntimeDir::open(dir)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    Listener::bind(&d, &name.to_string_lossy()).map_err(|e| e.to_string())
                })
        }
        None => RuntimeDir::open_default()
            .map_err(|e| e.to_string())
            .and_then(|d| Listener::bind(&d, "native").map_err(|e| e.to_string())),
    };
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            eprintln!("srbd: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(path) = listener.path().map(|p| p.to_path_buf()) else {
        eprintln!("srbd: listener has no path");
        return ExitCode::from(1);
    };
    let server = Arc::new(Server::new(ServerInfo::from_env()));
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("srbd: cannot watch signals: {e}");
            return ExitCode::from(1);
        }
    };
    {
        let server = server.clone();
        let path = path.clone();
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "shutting down");
                server.request_stop();
                srbd::wake(&path);
            }
        });
    }
    println!("PULSE_SERVER=unix:{}", path.display());
    let result = srbd::run(&listener, &server);
    drop(listener);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srbd: accept: {e}");
            ExitCode::from(1)
        }
    }
}
