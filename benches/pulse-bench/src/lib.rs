//! What the pulse-bench programs share: driving libpulse's standard
//! mainloop ([`iterate`], [`connect`] with a deadline, [`wait_reply`]) and
//! nearest-rank [`quantile`]s.
//!
//! | program | what it measures |
//! |---|---|
//! | `pa-latency` | GET_SERVER_INFO round trips through libpulse (`benches/pulse-compare.sh`) |
//! | `clock-read` | the audio clock: GET_PLAYBACK_LATENCY round trips vs reading srbd's state page (`benches/clock-compare.sh`) |
//! | `eventfd-floor` | a raw eventfd ping-pong between two threads: the floor of any round trip |
//! | `plot` | latency distributions of several servers into one SVG |
//!
//! Errors are strings: each program prints one line and exits non-zero.

use std::cell::Cell;
use std::time::{Duration, Instant};

use libpulse_binding::context::{Context, FlagSet, State};
use libpulse_binding::mainloop::standard::{IterateResult, Mainloop};
use libpulse_binding::operation::{Operation, State as OpState};

/// Runs the mainloop once, blocking in poll when `block`, and returns how
/// many sources it dispatched; an error or a quit ends the program.
pub fn iterate(ml: &mut Mainloop, block: bool) -> Result<u32, String> {
    match ml.iterate(block) {
        IterateResult::Success(n) => Ok(n),
        IterateResult::Quit(r) => Err(format!("mainloop quit ({})", r.0)),
        IterateResult::Err(e) => Err(format!("mainloop: {e}")),
    }
}

/// Iterates the mainloop until `ready` says yes (or fails), at most
/// `timeout`: non-blocking iterations, with a 1 ms pause when nothing was
/// dispatched, so the deadline holds even if the server never answers.
/// For untimed phases (connecting, starting a stream).
pub fn wait_until(
    ml: &mut Mainloop,
    timeout: Duration,
    what: &str,
    mut ready: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !ready()? {
        if Instant::now() >= deadline {
            return Err(format!("{what}: not done within {timeout:?}"));
        }
        if iterate(ml, false)? == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

/// Connects a context named `name` to `server` (`None`: libpulse's own
/// choice, `$PULSE_SERVER` first), without autospawn, and waits until it is
/// ready, at most `timeout`.
pub fn connect(
    ml: &mut Mainloop,
    server: Option<&str>,
    name: &str,
    timeout: Duration,
) -> Result<Context, String> {
    let mut ctx =
        Context::new(ml, name).ok_or_else(|| "cannot create a libpulse context".to_owned())?;
    ctx.connect(server, FlagSet::NOAUTOSPAWN, None)
        .map_err(|e| format!("connect {server:?}: {e}"))?;
    wait_until(
        ml,
        timeout,
        &format!("connection to {server:?}"),
        || match ctx.get_state() {
            State::Ready => Ok(true),
            State::Failed | State::Terminated => {
                Err(format!("connection to {server:?} failed: {}", ctx.errno()))
            }
            _ => Ok(false),
        },
    )?;
    Ok(ctx)
}

/// Iterates the mainloop (blocking) until `done` is set by the reply
/// callback of `op`; a cancelled operation or a lost connection is an
/// error.
pub fn wait_reply<T: ?Sized>(
    ml: &mut Mainloop,
    ctx: &Context,
    op: &Operation<T>,
    done: &Cell<bool>,
) -> Result<(), String> {
    while !done.get() {
        if op.get_state() == OpState::Cancelled {
            return Err(format!("request cancelled: {}", ctx.errno()));
        }
        if matches!(ctx.get_state(), State::Failed | State::Terminated) {
            return Err(format!("connection lost: {}", ctx.errno()));
        }
        iterate(ml, true)?;
    }
    Ok(())
}

/// A duration in nanoseconds, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The value at quantile `q` (0..=1) of sorted, non-empty `v`, nearest rank.
pub fn quantile<T: Copy>(v: &[T], q: f64) -> T {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&v, 0.0), 1);
        assert_eq!(quantile(&[7], 0.9), 7);
    }

    #[test]
    fn nearest_rank_of_floats() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 100.0);
        assert_eq!(quantile(&v, 0.99), 198.0);
        assert_eq!(quantile(&v, 1.0), 200.0);
    }
}
