//! `srbd`: serves libpulse clients (PulseAudio native protocol) on a unix
//! socket, and optionally TCP. Foreground only; logs go to stderr,
//! filtered by `RUST_LOG`.
//!
//! ```text
//! srbd [--socket PATH] [--tcp ADDR:PORT] [--config FILE] [--output null|wav:PATH]
//!      [--format NAME] [--rate HZ] [--channels N] [--period-frames N] [--sink-name NAME]
//! ```
//!
//! Without `--socket` it listens on `native` in the srb runtime directory.
//! On start it prints `PULSE_SERVER=unix:<path>` on stdout. SIGINT or
//! SIGTERM ends it: clients see a disconnect, the wav output is finalized
//! and the socket removed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use srb_linux::listener::Listener;
use srb_linux::runtime_dir::RuntimeDir;
use srb_linux::srbd::config::{format_name, Config, FileConfig};
use srb_linux::srbd::engine::{Engine, SinkConfig};
use srb_linux::srbd::{self, server_info::ServerInfo, Server};

/// Serves PulseAudio clients (pactl, pacat, paplay, parec, ...).
#[derive(Debug, Parser)]
#[command(name = "srbd", version)]
struct Args {
    /// The socket to listen on; its directory must be ours and 0700.
    /// Default: `native` in the srb runtime directory.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Also serve TCP clients here (inline audio only; they must present
    /// the cookie unless `tcp_anonymous = true` in the config).
    #[arg(long, value_name = "ADDR:PORT")]
    tcp: Option<SocketAddr>,
    /// Settings file (TOML); options given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output backend: `null` or `wav:PATH`.
    #[arg(long, value_name = "SPEC")]
    output: Option<String>,
    /// Sink sample format (PulseAudio names: s16le, float32le, ...).
    #[arg(long, value_name = "NAME")]
    format: Option<String>,
    /// Sink sample rate in Hz.
    #[arg(long, value_name = "HZ")]
    rate: Option<u32>,
    /// Sink channel count.
    #[arg(long, value_name = "N")]
    channels: Option<u8>,
    /// Frames per mixer period (64..=4096; default 10 ms).
    #[arg(long, value_name = "N")]
    period_frames: Option<usize>,
    /// Sink name.
    #[arg(long, value_name = "NAME")]
    sink_name: Option<String>,
}

fn config(args: Args) -> Result<Config, String> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p).map_err(|e| e.to_string())?,
        None => FileConfig::default(),
    };
    let cli = FileConfig {
        socket: args.socket,
        tcp: args.tcp,
        tcp_anonymous: None,
        sink_name: args.sink_name,
        format: args.format,
        rate: args.rate,
        channels: args.channels,
        period_frames: args.period_frames,
        output: args.output,
    };
    file.overlay(cli).resolve().map_err(|e| e.to_string())
}

fn bind(socket: &Option<PathBuf>) -> Result<Listener, String> {
    match socket {
        Some(path) => {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(format!("--socket {}: not a file path", path.display()));
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
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = match config(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("srbd: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match bind(&cfg.socket) {
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
    let engine = match Engine::start(SinkConfig {
        spec: cfg.spec,
        map: cfg.map.clone(),
        period_frames: cfg.period_frames,
        output: cfg.output.clone(),
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("srbd: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        sink = %cfg.sink_name,
        format = format_name(cfg.spec.format),
        rate = cfg.spec.rate,
        channels = cfg.spec.channels,
        period_frames = cfg.period_frames,
        output = %cfg.output,
        "sink ready"
    );
    let info = ServerInfo::from_env(&cfg.sink_name, cfg.spec, cfg.map.clone());
    let server = Arc::new(Server::new(info, engine));
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("srbd: cannot watch signals: {e}");
            return ExitCode::from(1);
        }
    };
    let tcp = match cfg.tcp {
        None => None,
        Some(addr) => match srbd::tcp::serve(addr, cfg.tcp_anonymous, &server) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("srbd: --tcp {addr}: {e}");
                return ExitCode::from(1);
            }
        },
    };
    {
        let server = server.clone();
        let path = path.clone();
        let tcp_addr = tcp.as_ref().map(|t| t.local_addr());
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "shutting down");
                server.request_stop();
                srbd::wake(&path);
                if let Some(a) = tcp_addr {
                    srbd::tcp::wake(a);
                }
            }
        });
    }
    println!("PULSE_SERVER=unix:{}", path.display());
    if let Some(t) = &tcp {
        println!("PULSE_SERVER=tcp:{}", t.local_addr());
    }
    let result = srbd::run(&listener, &server);
    drop(listener);
    if let Some(t) = tcp {
        t.join();
    }
    // Connection threads hold the server; wait for them to leave so the
    // engine stops (and the wav output is finalized) exactly once, here.
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srbd: accept: {e}");
            ExitCode::from(1)
        }
    };
    srbd::shutdown(server);
    code
}
