//! `clock-read`: what it costs a client to learn where the audio clock is,
//! by asking the server over the protocol and, for srbd, by reading its
//! state page.
//!
//! ```text
//! clock-read [--server SPEC] [--control PATH] [--requests N] [--warmup N]
//!            [--batch N] [--batches N] [--settle SECS] [--verbose]
//! ```
//!
//! 1. Connects with the real libpulse (standard mainloop) to `--server`
//!    (default: libpulse's choice, `$PULSE_SERVER` first) and opens a
//!    playback stream, s16le 48 kHz stereo, 20 ms target length, **not
//!    corked**: a corked stream's clock stands still, so only a playing
//!    stream asks the question a player really asks (where is playback
//!    now?). It plays silence: whenever libpulse's write callback says the
//!    server wants data, the loop writes as many zero bytes as the stream
//!    can take.
//! 2. Protocol: `--warmup` (200) then `--requests` (10,000)
//!    `pa_stream_update_timing_info` calls, one after another; each sends
//!    GET_PLAYBACK_LATENCY and its time is from the call to its callback
//!    (what `pa_stream_get_time` needs to be current).
//! 3. Page (only with `--control PATH`, srbd's control socket): receives
//!    the state page (`StatePage::connect`) and times, in batches of
//!    `--batch` (1000) reads, `--batches` (1000) batches after a tenth as
//!    many unrecorded, (a) reading the clock, `sink_clock(0)` +
//!    `position_at(monotonic_ns())`, and (b) a whole `snapshot()`. The
//!    per-read time is each batch's mean; the median and p99 are over the
//!    batches. Between batches (untimed) the mainloop runs once without
//!    blocking, so the stream keeps playing.
//! 4. Clock agreement (with `--control`): at about 30 points spread over
//!    the run, and once more after `--settle` (1) seconds of plain playing,
//!    one timing update, then the stream's time (`pa_stream_get_time`) and
//!    the page's interpolated sink position (in µs). The two count from
//!    different origins (the stream's start, the sink's), so what must
//!    hold is that their difference stays put: `clock_offset_spread_us`
//!    is its max − min over the checks, expected within a few mixer
//!    periods (the stream's time moves in whole periods, the page's is
//!    interpolated), and `clock_drift_us` the last check's minus the
//!    first's. Printed, not asserted (`--verbose`: every check on stderr).
//!
//! One line on stdout:
//!
//! ```text
//! requests=10000 protocol_median_us=.. protocol_p99_us=.. page_clock_median_ns=.. page_clock_p99_ns=..
//!   page_snapshot_median_ns=.. page_snapshot_p99_ns=.. ratio=.. page_sink_state=running
//!   clock_checks=.. clock_span_s=.. clock_offset_spread_us=.. clock_drift_us=..
//! ```
//!
//! `ratio` is the protocol median over the page clock median; without
//! `--control` the line ends after `protocol_p99_us` with `page=none`.

use std::cell::Cell;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use libpulse_binding::context::Context;
use libpulse_binding::def::BufferAttr;
use libpulse_binding::mainloop::standard::Mainloop;
use libpulse_binding::sample::{Format, Spec};
use libpulse_binding::stream::{FlagSet, SeekMode, State, Stream};
use pulse_bench::{connect, iterate, nanos, quantile, wait_reply, wait_until};
use srb_linux::state_page::{monotonic_ns, SnapshotError, StatePage};

/// The stream's format: s16le, 48 kHz, stereo.
const SPEC: Spec = Spec {
    format: Format::S16le,
    rate: 48_000,
    channels: 2,
};
/// Bytes per second of [`SPEC`].
const BYTES_PER_SEC: u32 = 48_000 * 2 * 2;
/// The stream's target length: 20 ms.
const TLENGTH: u32 = BYTES_PER_SEC / 50;
/// Clock checks spread over each measured phase.
const CHECKS_PER_PHASE: usize = 10;

#[derive(Parser, Debug)]
#[command(about = "GET_PLAYBACK_LATENCY round trips vs reading srbd's state page")]
struct Args {
    /// The server (libpulse syntax, e.g. unix:/run/user/1000/pulse/native).
    #[arg(long)]
    server: Option<String>,
    /// srbd's control socket: also measure reading the state page.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Timed GET_PLAYBACK_LATENCY round trips.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Untimed round trips first.
    #[arg(long, default_value_t = 200)]
    warmup: u32,
    /// Page reads per timed batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Timed batches per kind of page read.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    batches: u32,
    /// Seconds of plain playing before the last clock check.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Print each clock check's offset (page − stream, µs) on stderr.
    #[arg(long)]
    verbose: bool,
    /// Seconds to wait for the connection and for the stream to play.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
}

/// A connected context with one playing stream of silence.
struct Player {
    ml: Mainloop,
    ctx: Context,
    stream: Stream,
    /// Set by the write callback: the server wants data.
    asked: Rc<Cell<bool>>,
    silence: Vec<u8>,
}

impl Player {
    fn open(server: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let mut ml = Mainloop::new().ok_or_else(|| "cannot create a mainloop".to_owned())?;
        let mut ctx = connect(&mut ml, server, "clock-read", timeout)?;
        let mut stream = Stream::new(&mut ctx, "clock-read", &SPEC, None)
            .ok_or_else(|| format!("cannot create a stream: {}", ctx.errno()))?;
        let asked = Rc::new(Cell::new(false));
        {
            let asked = Rc::clone(&asked);
            stream.set_write_callback(Some(Box::new(move |_| asked.set(true))));
        }
        let attr = BufferAttr {
            maxlength: u32::MAX,
            tlength: TLENGTH,
            prebuf: u32::MAX,
            minreq: u32::MAX,
            fragsize: u32::MAX,
        };
        stream
            .connect_playback(None, Some(&attr), FlagSet::NOFLAGS, None, None)
            .map_err(|e| format!("connect_playback: {e}"))?;
        wait_until(&mut ml, timeout, "playback stream", || {
            match stream.get_state() {
                State::Ready => Ok(true),
                State::Failed | State::Terminated => {
                    Err(format!("playback stream failed: {}", ctx.errno()))
                }
                _ => Ok(false),
            }
        })?;
        let mut player = Player {
            ml,
            ctx,
            stream,
            asked,
            silence: vec![0; TLENGTH as usize],
        };
        player.asked.set(true);
        player.feed()?;
        Ok(player)
    }

    /// Writes silence if the server asked for data: all the stream takes.
    fn feed(&mut self) -> Result<(), String> {
        if !self.asked.replace(false) {
            return Ok(());
        }
        let mut want = self.stream.writable_size().unwrap_or(0);
        while want > 0 {
            let n = want.min(self.silence.len());
            self.stream
                .write_copy(&self.silence[..n], 0, SeekMode::Relative)
                .map_err(|e| format!("write: {e}"))?;
            want -= n;
        }
        Ok(())
    }

    /// One mainloop iteration without blocking, then [`Player::feed`].
    fn pump(&mut self) -> Result<u32, String> {
        let n = iterate(&mut self.ml, false)?;
        self.feed()?;
        Ok(n)
    }

    /// One GET_PLAYBACK_LATENCY round trip (`pa_stream_update_timing_info`
    /// to its callback).
    fn update(&mut self) -> Result<Duration, String> {
        let done = Rc::new(Cell::new(false));
        let ok = Rc::new(Cell::new(false));
        let start = Instant::now();
        let op = {
            let (done, ok) = (Rc::clone(&done), Rc::clone(&ok));
            self.stream
                .update_timing_info(Some(Box::new(move |success| {
                    ok.set(success);
                    done.set(true);
                })))
        };
        wait_reply(&mut self.ml, &self.ctx, &op, &done)?;
        let d = start.elapsed();
        if !ok.get() {
            return Err(format!("timing update failed: {}", self.ctx.errno()));
        }
        self.feed()?;
        Ok(d)
    }

    /// Whether the last timing update says the stream is playing.
    fn playing(&mut self) -> bool {
        self.stream
            .get_timing_info()
            .is_some_and(|t| t.playing != 0)
    }

    /// The stream's time after the last update, µs.
    fn time_us(&self) -> Result<u64, String> {
        match self.stream.get_time() {
            Ok(Some(t)) => Ok(t.0),
            Ok(None) => Err("the stream has no time yet".into()),
            Err(e) => Err(format!("get_time: {e}")),
        }
    }

    /// Keeps the stream playing for `d` (untimed).
    fn play_for(&mut self, d: Duration) -> Result<(), String> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.pump()? == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    fn close(mut self) {
        let _ = self.stream.disconnect();
        self.ctx.disconnect();
    }
}

/// The page's sink position minus the stream's time, µs, after one timing
/// update.
fn clock_offset(player: &mut Player, page: &StatePage) -> Result<i64, String> {
    player.update()?;
    let stream_us = player.time_us()?;
    let clock = page.sink_clock(0).map_err(|e| format!("sink_clock: {e}"))?;
    if clock.rate == 0 {
        return Err("the page's sink has rate 0".into());
    }
    let frames = clock.position_at(monotonic_ns());
    let page_us = u128::from(frames) * 1_000_000 / u128::from(clock.rate);
    Ok(i64::try_from(page_us).unwrap_or(i64::MAX) - i64::try_from(stream_us).unwrap_or(i64::MAX))
}

/// The offsets of the clock checks and when the first was taken.
struct Checks {
    verbose: bool,
    offsets_us: Vec<i64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Checks {
    fn take(&mut self, player: &mut Player, page: Option<&StatePage>) -> Result<(), String> {
        if let Some(page) = page {
            let offset = clock_offset(player, page)?;
            if self.verbose {
                eprintln!("clock-read: page − stream = {offset} µs");
            }
            self.offsets_us.push(offset);
            let now = Instant::now();
            self.first.get_or_insert(now);
            self.last = Some(now);
        }
        Ok(())
    }

    fn summary(&self) -> String {
        let (Some(min), Some(max)) = (self.offsets_us.iter().min(), self.offsets_us.iter().max())
        else {
            return "clock_checks=0".into();
        };
        let span = match (self.first, self.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let drift = self.offsets_us.last().unwrap_or(min) - self.offsets_us[0];
        format!(
            "clock_checks={} clock_span_s={span:.2} clock_offset_spread_us={} clock_drift_us={drift}",
            self.offsets_us.len(),
            max - min
        )
    }
}

/// Per-read ns of `batches` timed batches of `batch` calls to `read`,
/// after a tenth as many untimed batches; the player runs between batches.
fn page_reads(
    args: &Args,
    player: &mut Player,
    page: &StatePage,
    checks: &mut Checks,
    read: impl Fn(&StatePage) -> Result<(), SnapshotError>,
) -> Result<Vec<f64>, String> {
    let warmup = args.batches.div_ceil(10);
    let every = args.batches.div_ceil(CHECKS_PER_PHASE as u32);
    let mut per_read = Vec::with_capacity(args.batches as usize);
    for i in 0..warmup + args.batches {
        let start = Instant::now();
        for _ in 0..args.batch {
            read(page).map_err(|e| format!("page read: {e}"))?;
        }
        let ns = nanos(start.elapsed()) as f64 / f64::from(args.batch);
        player.pump()?;
        if i >= warmup {
            per_read.push(ns);
            if (i - warmup + 1).is_multiple_of(every) {
                checks.take(player, Some(page))?;
            }
        }
    }
    per_read.sort_unstable_by(f64::total_cmp);
    Ok(per_read)
}

fn run(args: &Args) -> Result<(), String> {
    let timeout = Duration::from_secs_f64(args.connect_timeout);
    let page = match &args.control {
        Some(path) => Some(
            StatePage::connect(path)
                .map_err(|e| format!("state page at {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let mut player = Player::open(args.server.as_deref(), timeout)?;
    for _ in 0..args.warmup {
        player.update()?;
    }
    let deadline = Instant::now() + timeout;
    while !player.playing() {
        if Instant::now() >= deadline {
            return Err(format!(
                "the stream did not start playing within {timeout:?}"
            ));
        }
        player.play_for(Duration::from_millis(5))?;
        player.update()?;
    }

    let mut checks = Checks {
        verbose: args.verbose,
        offsets_us: Vec::new(),
        first: None,
        last: None,
    };
    checks.take(&mut player, page.as_ref())?;
    let every = args.requests.div_ceil(CHECKS_PER_PHASE as u32);
    let mut ns = Vec::with_capacity(args.requests as usize);
    for i in 0..args.requests {
        ns.push(nanos(player.update()?));
        if (i + 1).is_multiple_of(every) {
            checks.take(&mut player, page.as_ref())?;
        }
    }
    ns.sort_unstable();
    let us = |v: u64| v as f64 / 1000.0;
    let protocol_median = quantile(&ns, 0.5);
    let mut line = format!(
        "requests={} protocol_median_us={:.1} protocol_p99_us={:.1}",
        ns.len(),
        us(protocol_median),
        us(quantile(&ns, 0.99)),
    );

    match &page {
        None => line.push_str(" page=none"),
        Some(page) => {
            let clock = page_reads(args, &mut player, page, &mut checks, |p| {
                let c = p.sink_clock(0)?;
                black_box(c.position_at(monotonic_ns()));
                Ok(())
            })?;
            let snap = page_reads(args, &mut player, page, &mut checks, |p| {
                black_box(p.snapshot()?);
                Ok(())
            })?;
            player.play_for(Duration::from_secs_f64(args.settle))?;
            checks.take(&mut player, Some(page))?;
            let state = page
                .sink_clock(0)
                .map_err(|e| format!("sink_clock: {e}"))?
                .state;
            let clock_median = quantile(&clock, 0.5);
            line.push_str(&format!(
                " page_clock_median_ns={clock_median:.1} page_clock_p99_ns={:.1} \
                 page_snapshot_median_ns={:.1} page_snapshot_p99_ns={:.1} ratio={:.0} \
                 page_sink_state={state} {}",
                quantile(&clock, 0.99),
                quantile(&snap, 0.5),
                quantile(&snap, 0.99),
                protocol_median as f64 / clock_median,
                checks.summary(),
            ));
        }
    }
    println!("{line}");
    player.close();
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clock-read: {e}");
            ExitCode::FAILURE
        }
    }
}
