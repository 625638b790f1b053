//! `srbd`: serves libpulse clients (PulseAudio native protocol) on a unix
//! socket, and optionally TCP. Foreground only; logs go to stderr,
//! filtered by `RUST_LOG`.
//!
//! ```text
//! srbd [--socket PATH] [--tcp ADDR:PORT] [--config FILE] [--output null|wav:PATH|alsa[:DEVICE]] [--input alsa[:DEVICE]]
//!      [--format NAME] [--rate HZ] [--channels N] [--period-frames N] [--sink-name NAME]
//!      [--dsp on|off] [--dsp-chain SPEC] [--dsp-program PATH]
//!      [--dsp-fallback silence|bypass] [--dsp-stall-timeout-ms N] [--rt-priority N]
//!      [--shm on|off] [--srbchannel on|off] [--spin-us N] [--max-clients N]
//! ```
//!
//! By default it spawns the `dsp-sim` peer (found beside `srbd`), which
//! clocks the sink and processes every period. A period the DSP misses
//! plays silence (or, with an empty chain or `--dsp-fallback bypass`, the
//! unprocessed mix) and is counted; the DSP is restarted only when it dies
//! or makes no progress for `--dsp-stall-timeout-ms` (see
//! `srbd::engine::dsp_clock`). The mixer thread and the DSP ask for
//! `SCHED_FIFO` at `--rt-priority` (default 5, as PulseAudio; 0: off) and
//! carry on at normal priority if refused.
//!
//! Where it listens: the socket systemd passed (socket activation,
//! `LISTEN_FDS`/`LISTEN_PID`; see `dist/srbd.socket`); else `--socket
//! PATH`; else where libpulse clients look without any configuration,
//! `$PULSE_RUNTIME_PATH/native` or `$XDG_RUNTIME_DIR/pulse/native` (with
//! neither set, `/tmp/srb-<uid>/native`). A socket already there that
//! answers belongs to a running server (PulseAudio, say): srbd then exits
//! with a message naming it; one that does not answer is stale and is
//! replaced. On start it prints `PULSE_SERVER=unix:<path>` on stdout (not
//! when socket-activated). SIGINT or SIGTERM ends it: clients see a
//! disconnect, the wav output is finalized, the socket and its lock file
//! are removed.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use srb_linux::listener::{ListenError, Listener};
use srb_linux::runtime_dir::RuntimeDir;
use std::sync::mpsc;
use std::time::Duration;

use srb_linux::state_page::{self, StatePageServer, StatePageWriter};
use srbd::config::{format_name, Config, FileConfig};
use srbd::control::server_loop::ServerLoop;
use srbd::control::tcp::load_or_create_cookie;
use srbd::dsp::board::{BoardConfig, DEFAULT_QEMU};
use srbd::dsp::link::DspLink;
use srbd::dsp::supervisor::{default_program, DspConfig, Supervisor};
use srbd::engine::alsa::default::{choose_default, Choice};
use srbd::engine::dsp_clock::DspPolicy;
use srbd::engine::mixer::{Engine, EngineOptions, SinkConfig};
use srbd::engine::output::OutputSpec;
use srbd::engine::state_page::PageSetup;
use srbd::{self, server_info::ServerInfo, Server};

/// Serves PulseAudio clients (pactl, pacat, paplay, parec, ...).
#[derive(Debug, Parser)]
#[command(name = "srbd", version)]
struct Args {
    /// The socket to listen on; its directory must be ours and 0700.
    /// Default: `native` in the srb runtime directory.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The `control` socket that hands the read-only state page to local
    /// clients of our uid (`srb-top`). Default: `control` in the srb
    /// runtime directory.
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Also serve TCP clients here (inline audio only; they must present
    /// the cookie unless `tcp_anonymous = true` in the config).
    #[arg(long, value_name = "ADDR:PORT")]
    tcp: Option<SocketAddr>,
    /// Settings file (TOML); options given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output backend: `null`, `wav:PATH` or `alsa[:DEVICE]` (an ALSA
    /// playback device, which also clocks the sink). Default: the first
    /// sound card, else `null`.
    #[arg(long, value_name = "SPEC")]
    output: Option<String>,
    /// A capture source on an ALSA device: `alsa[:DEVICE]` (listed as
    /// `alsa_input.DEVICE`, clocked by the device). Default: none.
    #[arg(long, value_name = "SPEC")]
    input: Option<String>,
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
    /// Run the `dsp-sim` peer, which then clocks and processes the sink
    /// (default on; `off` keeps srbd's own timerfd clock). `board:ELF`:
    /// the peer is that Cortex-M4F firmware (`srb-board-dsp-peer`) under
    /// QEMU's mps2-an386 instead, sharing its PSRAM as a file.
    #[arg(long, value_name = "on|off|board:ELF", value_parser = dsp_arg)]
    dsp: Option<DspArg>,
    /// The DSP's processing chain, e.g. `gain:-6dB,peak:1000Hz:q1.0:+3dB`
    /// (default: none, bit-exact).
    #[arg(long, value_name = "SPEC")]
    dsp_chain: Option<String>,
    /// The `dsp-sim` program (default: beside srbd, else on PATH).
    #[arg(long, value_name = "PATH")]
    dsp_program: Option<PathBuf>,
    /// What a period the DSP missed plays: `silence`, or `bypass` (the
    /// unprocessed mix). Default: bypass with an empty chain, silence with
    /// a chain.
    #[arg(long, value_name = "silence|bypass")]
    dsp_fallback: Option<String>,
    /// A DSP that makes no progress this long (milliseconds) is declared
    /// dead and restarted (default 1000).
    #[arg(long, value_name = "N")]
    dsp_stall_timeout_ms: Option<u64>,
    /// SCHED_FIFO priority for the mixer thread and the DSP (1..=99;
    /// default 5; 0: normal scheduling). Refused without privilege, with
    /// one log line.
    #[arg(long, value_name = "N")]
    rt_priority: Option<u8>,
    /// Offer the SHM fast path (memfd pools) to local clients of our uid
    /// (default on; `off`: every client copies audio through the socket).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    shm: Option<bool>,
    /// Offer the srbchannel (a shared ring for all frames) to clients that
    /// got SHM (default on; `off`: frames go through the socket).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    srbchannel: Option<bool>,
    /// Microseconds a connection keeps polling a chatty client's
    /// srbchannel ring before sleeping (default 100; 0: never; at most
    /// 1000).
    #[arg(long, value_name = "N")]
    spin_us: Option<u64>,
    /// Clients served at once (default 1024); one more is refused with a
    /// log line.
    #[arg(long, value_name = "N")]
    max_clients: Option<usize>,
}

/// The value of `--dsp`.
#[derive(Debug, Clone)]
enum DspArg {
    /// `on` / `off`: `dsp-sim`, or no DSP.
    OnOff(bool),
    /// `board:ELF`: the board peer running this firmware.
    Board(PathBuf),
}

fn dsp_arg(s: &str) -> Result<DspArg, String> {
    match s.strip_prefix("board:") {
        Some("") => Err("board: needs the firmware's path (board:ELF)".into()),
        Some(elf) => Ok(DspArg::Board(elf.into())),
        None => on_off(s).map(DspArg::OnOff),
    }
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

fn config(args: Args) -> Result<Config, String> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p).map_err(|e| e.to_string())?,
        None => FileConfig::default(),
    };
    let cli = FileConfig {
        socket: args.socket,
        control_socket: args.control_socket,
        tcp: args.tcp,
        tcp_anonymous: None,
        cookie: None,
        sink_name: args.sink_name,
        format: args.format,
        rate: args.rate,
        channels: args.channels,
        period_frames: args.period_frames,
        output: args.output,
        input: args.input,
        dsp: args.dsp.map(|d| !matches!(d, DspArg::OnOff(false))),
        dsp_chain: args.dsp_chain,
        dsp_program: args.dsp_program,
        dsp_fallback: args.dsp_fallback,
        dsp_stall_timeout_ms: args.dsp_stall_timeout_ms,
        rt_priority: args.rt_priority,
        stats_interval: None,
        shm: args.shm,
        srbchannel: args.srbchannel,
        spin_us: args.spin_us,
        max_clients: args.max_clients,
        modules: None,
    };
    file.overlay(cli).resolve().map_err(|e| e.to_string())
}

/// The directory libpulse clients look in when nothing is configured:
/// `$PULSE_RUNTIME_PATH`, else `$XDG_RUNTIME_DIR/pulse`; `None` with
/// neither set.
fn pulse_runtime_dir() -> Option<PathBuf> {
    let var = |k| std::env::var_os(k).filter(|v: &std::ffi::OsString| !v.is_empty());
    var("PULSE_RUNTIME_PATH")
        .map(PathBuf::from)
        .or_else(|| var("XDG_RUNTIME_DIR").map(|x| PathBuf::from(x).join("pulse")))
}

fn bind_in(dir: &std::path::Path, name: &str) -> Result<Listener, String> {
    let dir = RuntimeDir::open(dir).map_err(|e| e.to_string())?;
    Listener::bind(&dir, name).map_err(|e| match e {
        ListenError::LiveServer { path } => format!(
            "a server is already listening on {} (PulseAudio?): stop it, or start srbd \
             elsewhere with --socket PATH",
            path.display()
        ),
        e => e.to_string(),
    })
}

/// The listener: the socket-activated one, `--socket`, or the default.
fn bind(socket: &Option<PathBuf>) -> Result<Listener, String> {
    match Listener::from_systemd() {
        Ok(Some(l)) => return Ok(l),
        Ok(None) => {}
        Err(e) => return Err(format!("socket activation: {e}")),
    }
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
            bind_in(dir, &name.to_string_lossy())
        }
        None => match pulse_runtime_dir() {
            Some(dir) => bind_in(&dir, "native"),
            None => RuntimeDir::open_default()
                .map_err(|e| e.to_string())
                .and_then(|d| bind_in(d.path(), "native")),
        },
    }
}

/// The state page and the `control` socket that hands it out. Neither is
/// needed to serve clients: when either cannot be had (another srbd holds
/// the control socket, no memfd), srbd says so and runs without.
fn state_page(cfg: &Config) -> (Option<StatePageWriter>, Option<(StatePageServer, OwnedFd)>) {
    let path = cfg
        .control_socket
        .clone()
        .unwrap_or_else(state_page::default_control_path);
    let made = StatePageWriter::create("srbd-state")
        .map_err(|e| e.to_string())
        .and_then(|w| {
            let fd = w.dup_fd().map_err(|e| e.to_string())?;
            Ok((w, fd))
        })
        .and_then(|(w, fd)| {
            let server = StatePageServer::bind(&path).map_err(|e| e.to_string())?;
            Ok((w, server, fd))
        });
    match made {
        Ok((w, server, fd)) => {
            tracing::info!(control = %path.display(), "state page served (srb-top)");
            (Some(w), Some((server, fd)))
        }
        Err(e) => {
            tracing::warn!(control = %path.display(), %e, "no state page");
            (None, None)
        }
    }
}

fn main() -> ExitCode {
    srbd::logging::init();
    raise_fd_limit();
    let args = Args::parse();
    let board = match &args.dsp {
        Some(DspArg::Board(elf)) => Some(elf.clone()),
        _ => None,
    };
    let cfg = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("srbd: {e}");
            return ExitCode::from(2);
        }
    };
    // The first log lines say what srbd plays to, and why.
    let output = cfg.output.clone().unwrap_or_else(default_output);
    let listener = match bind(&cfg.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("srbd: {e}");
            return ExitCode::from(1);
        }
    };
    let path = listener.path().map(|p| p.to_path_buf());
    let (dsp, links) = start_dsp(&cfg, board, path.as_deref());
    let (page, control_page) = state_page(&cfg);
    let mut info = ServerInfo::from_env(&cfg.sink_name, cfg.spec, cfg.map.clone());
    let engine = match Engine::start_with(
        SinkConfig {
            spec: cfg.spec,
            map: cfg.map.clone(),
            period_frames: cfg.period_frames,
            output: output.clone(),
        },
        EngineOptions {
            dsp: links,
            policy: DspPolicy {
                fallback: cfg.dsp_fallback,
                stall_timeout: cfg.dsp_stall_timeout,
            },
            rt_priority: cfg.rt_priority,
            page: page.map(|writer| PageSetup {
                writer,
                sink: (info.sink.index, info.sink.name.clone()),
                monitor: (info.monitor.index, info.monitor.name.clone()),
                dsp: dsp.as_ref().map(Supervisor::restart_handle),
            }),
            ..EngineOptions::default()
        },
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("srbd: {e}");
            return ExitCode::from(1);
        }
    };
    // The sink runs at what an ALSA device took.
    let spec = engine.config().spec;
    info.sink.sample_spec = spec;
    info.monitor.sample_spec = spec;
    if let Some((facts, _)) = engine.alsa() {
        let desc = srbd::control::alsa_props::description(facts);
        info.sink.props = srbd::control::alsa_props::props(facts, &desc);
        info.monitor.description = format!("Monitor of {desc}");
        info.monitor.props = srbd::control::alsa_props::props(facts, &info.monitor.description);
        // Properties a client relies on: the monitor's class says what it is.
        let _ = info.monitor.props.set_str("device.class", "monitor");
        info.sink.description = desc;
    }
    tracing::info!(
        sink = %cfg.sink_name,
        format = format_name(spec.format),
        rate = spec.rate,
        channels = spec.channels,
        period_frames = engine.config().period_frames,
        output = %output,
        "sink ready"
    );
    let server = Arc::new(
        Server::new(info, engine)
            .with_shm(cfg.shm)
            .with_srbchannel(cfg.srbchannel)
            .with_spin(cfg.spin)
            .with_max_clients(cfg.max_clients)
            .with_rt_priority(cfg.rt_priority),
    );
    for m in &cfg.modules {
        if let Err(e) = srbd::control::modules::load(&server, &m.name, &m.args) {
            eprintln!("srbd: config module {} ({:?}): {e}", m.name, m.args);
            return ExitCode::from(2);
        }
    }
    if let Some(device) = &cfg.input {
        if let Err(e) = srbd::control::capture_source::add(&server, device) {
            eprintln!("srbd: --input alsa:{device}: {e}");
            return ExitCode::from(1);
        }
    }
    let mut control = match ServerLoop::new(server.clone()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("srbd: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = control
        .listen_unix(listener)
        .and_then(|()| control.watch_signals())
    {
        eprintln!("srbd: {e}");
        return ExitCode::from(1);
    }
    if let Some((server, fd)) = control_page {
        if let Err(e) = control.serve_state_page(server, fd) {
            eprintln!("srbd: {e}");
            return ExitCode::from(1);
        }
    }
    if dsp.is_some() {
        control = control.watch_dsp_misses();
    }
    if cfg.stats_interval > 0 {
        control = control.with_stats(
            Duration::from_secs(cfg.stats_interval),
            dsp.as_ref().map(Supervisor::restart_handle),
        );
    }
    let tcp = match cfg.tcp {
        None => None,
        Some(addr) => {
            let cookie = if cfg.tcp_anonymous {
                None
            } else {
                match load_or_create_cookie(cfg.cookie.as_deref()) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("srbd: --tcp {addr}: cookie: {e}");
                        return ExitCode::from(1);
                    }
                }
            };
            match control.listen_tcp(addr, cookie) {
                Ok(a) => Some(a),
                Err(e) => {
                    eprintln!("srbd: --tcp {addr}: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    if let Some(path) = &path {
        println!("PULSE_SERVER=unix:{}", path.display());
    }
    if let Some(a) = tcp {
        println!("PULSE_SERVER=tcp:{a}");
    }
    let code = match control.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srbd: {e}");
            ExitCode::from(1)
        }
    };
    drop(control);
    srbd::shutdown(server);
    if let Some(d) = dsp {
        d.stop();
    }
    code
}

/// Raises the soft limit on open files to the hard limit: every client
/// holds a socket (and with the srbchannel two eventfds and a memfd on
/// its side of the exchange), and 1024 clients need more than the usual
/// soft limit of 1024.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let (soft, hard) = (lim.current, lim.maximum);
    if soft == hard {
        return;
    }
    lim.current = hard;
    match setrlimit(Resource::Nofile, lim) {
        Ok(()) => tracing::info!(from = ?soft, to = ?hard, "raised the open-file limit"),
        Err(e) => tracing::warn!(%e, ?soft, "cannot raise the open-file limit"),
    }
}

/// The output when none is named: the first real sound card (never one
/// that routes to a sound server), else the null sink; see
/// `srbd::engine::alsa::default`.
fn default_output() -> OutputSpec {
    match choose_default(alsa::Direction::Playback) {
        Choice::Alsa(name) => {
            tracing::info!(
                device = name,
                "no --output given: playing to the sound card {name}"
            );
            OutputSpec::Alsa(name)
        }
        Choice::Null { .. } => {
            tracing::info!("no --output given and no sound card to use: the null sink");
            OutputSpec::Null
        }
    }
}

/// Starts the DSP supervisor if the config asks for it; on failure srbd
/// keeps its own clock (logged).
fn start_dsp(
    cfg: &Config,
    board: Option<PathBuf>,
    socket: Option<&std::path::Path>,
) -> (Option<Supervisor>, Option<mpsc::Receiver<DspLink>>) {
    if !cfg.dsp {
        tracing::info!("DSP off: the sink runs on its own timerfd clock");
        return (None, None);
    }
    if let Some(elf) = board {
        return start_board(cfg, elf, socket);
    }
    let Some(program) = cfg.dsp_program.clone().or_else(default_program) else {
        tracing::warn!("dsp-sim not found beside srbd or on PATH; the sink runs on its own clock");
        return (None, None);
    };
    let (tx, rx) = mpsc::channel();
    let dsp_cfg = DspConfig {
        program,
        rate: cfg.spec.rate,
        channels: cfg.spec.channels,
        period_frames: cfg.period_frames,
        chain: cfg.dsp_chain.clone(),
        rt_priority: cfg.rt_priority,
    };
    started(cfg, Supervisor::start(dsp_cfg, tx), rx)
}

/// `--dsp board:ELF`: the board peer, its memory file in srbd's runtime
/// directory (the socket's).
fn start_board(
    cfg: &Config,
    elf: PathBuf,
    socket: Option<&std::path::Path>,
) -> (Option<Supervisor>, Option<mpsc::Receiver<DspLink>>) {
    let runtime_dir = match socket.and_then(|p| p.parent()) {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => match RuntimeDir::open_default() {
            Ok(d) => d.path().to_path_buf(),
            Err(e) => {
                tracing::warn!(%e, "no runtime directory for the board peer; the sink runs on its own clock");
                return (None, None);
            }
        },
    };
    let (tx, rx) = mpsc::channel();
    let dsp_cfg = DspConfig {
        program: elf,
        rate: cfg.spec.rate,
        channels: cfg.spec.channels,
        period_frames: cfg.period_frames,
        chain: cfg.dsp_chain.clone(),
        rt_priority: cfg.rt_priority,
    };
    let board = BoardConfig {
        qemu: DEFAULT_QEMU.into(),
        runtime_dir,
    };
    started(cfg, Supervisor::start_board(dsp_cfg, board, tx), rx)
}

/// Logs how starting the DSP went.
fn started(
    cfg: &Config,
    result: Result<Supervisor, srbd::dsp::link::DspError>,
    rx: mpsc::Receiver<DspLink>,
) -> (Option<Supervisor>, Option<mpsc::Receiver<DspLink>>) {
    match result {
        Ok(s) => {
            tracing::info!(
                chain = ?cfg.dsp_chain,
                fallback = cfg.dsp_fallback.name(),
                stall_timeout = ?cfg.dsp_stall_timeout,
                pid = ?s.child_pid(),
                "DSP peer started"
            );
            (Some(s), Some(rx))
        }
        Err(e) => {
            tracing::warn!(%e, "DSP peer not started; the sink runs on its own clock");
            (None, None)
        }
    }
}
