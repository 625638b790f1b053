//! [`periodic`]: a monotonic timerfd that expires every period, the clock
//! of srbd's sink and of the `dsp-sim` peer.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// A close-on-exec monotonic timerfd expiring every `period_ns`
/// nanoseconds from now (non-blocking reads with `nonblocking`).
pub fn periodic(period_ns: u64, nonblocking: bool) -> Result<OwnedFd, Errno> {
    let mut flags = TimerfdFlags::CLOEXEC;
    if nonblocking {
        flags |= TimerfdFlags::NONBLOCK;
    }
    let fd = timerfd_create(TimerfdClockId::Monotonic, flags)?;
    let period = Timespec {
        tv_sec: (period_ns / 1_000_000_000) as _,
        tv_nsec: (period_ns % 1_000_000_000) as _,
    };
    timerfd_settime(
        &fd,
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: period,
            it_value: period,
        },
    )?;
    Ok(fd)
}

/// Nanoseconds of `frames` frames at `rate` Hz.
pub fn period_ns(frames: usize, rate: u32) -> u64 {
    frames as u64 * 1_000_000_000 / u64::from(rate.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(period_ns(480, 48_000), 10_000_000);
        let t = periodic(1_000_000, false).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 8);
        assert!(u64::from_ne_bytes(buf) >= 1);
        let t = periodic(1_000_000_000, true).unwrap();
        assert_eq!(rustix::io::read(&t, &mut buf), Err(Errno::AGAIN));
    }
}
