//! A clock for ALSA devices that have none.
//!
//! alsa-lib's `null` plugin (alone or under a `file` plugin, which is how
//! the tests record what srbd plays) takes and makes samples as fast as it
//! is asked: its `avail` is the whole buffer again right after each write.
//! A sink clocked by such a device would spin at 100 % CPU (PulseAudio's
//! ALSA sink wrote hundreds of MB in seconds over it). Such a device is
//! recognised in two ways, and then paced by a timerfd at the nominal
//! period (`period_frames / rate`), so a period is written or read no
//! faster than real time:
//!
//! * before opening, from its configuration: every final slave is `null`
//!   ([`super::route::Route::unpaced`]);
//! * while running, by [`Unpaced`]: `avail` is the whole buffer right
//!   after a period was written (or read) [`Unpaced::STREAK`] times in a
//!   row, which a device with a clock of its own never shows for long.
//!
//! One [`Pacer::wait`] is one period; late ticks are credited (up to
//! [`Pacer::MAX_CREDIT`]), so the long-run rate is the nominal one.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::time::Timespec;

/// A timerfd ticking once per nominal period.
///
/// Ticks the caller was too late for are kept as credit (at most
/// [`Pacer::MAX_CREDIT`]) and handed out by the next waits without
/// sleeping, so over time the device moves periods at the nominal rate
/// even when one wait came late.
#[derive(Debug)]
pub struct Pacer {
    timer: OwnedFd,
    credit: u64,
}

impl Pacer {
    /// A pacer for periods of `period_frames` frames at `rate` Hz.
    pub fn new(period_frames: usize, rate: u32) -> Result<Self, Errno> {
        let ns = srb_linux::timer::period_ns(period_frames, rate);
        Ok(Self {
            timer: srb_linux::timer::periodic(ns, true)?,
            credit: 0,
        })
    }

    /// The most late ticks kept: a longer stall is not made up for.
    pub const MAX_CREDIT: u64 = 8;

    /// Takes the expirations counted in the timerfd's 8 bytes: one for
    /// this wait, the rest as credit.
    fn take(&mut self, buf: [u8; 8]) -> bool {
        let n = u64::from_ne_bytes(buf);
        self.credit = n.saturating_sub(1).min(Self::MAX_CREDIT);
        true
    }

    /// Waits for the next tick, at most `timeout`; `Ok(false)` on timeout.
    /// Missed ticks are consumed together: one call, one period.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, Errno> {
        if self.credit > 0 {
            self.credit -= 1;
            return Ok(true);
        }
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.timer, &mut buf) {
            Ok(_) => return Ok(self.take(buf)),
            Err(Errno::AGAIN) => {}
            Err(e) => return Err(e),
        }
        let mut fds = [PollFd::new(&self.timer, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        loop {
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(false),
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
        match rustix::io::read(&self.timer, &mut buf) {
            Ok(_) => Ok(self.take(buf)),
            Err(Errno::AGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The timerfd (for a caller that polls it with other descriptors).
    pub fn fd(&self) -> impl AsFd + '_ {
        &self.timer
    }
}

/// The run-time test for a device without a clock: counts the periods in
/// a row after which `avail` was the whole buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpaced {
    streak: u32,
}

impl Unpaced {
    /// How many periods in a row make a device unpaced.
    pub const STREAK: u32 = 8;

    /// Records `avail` (frames) right after a period was written or read;
    /// true once the device has shown [`Self::STREAK`] whole buffers in a
    /// row.
    pub fn observe(&mut self, avail: usize, buffer_frames: usize) -> bool {
        if avail >= buffer_frames {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 0;
        }
        self.streak >= Self::STREAK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn unpaced_needs_a_streak() {
        let mut u = Unpaced::default();
        for _ in 0..Unpaced::STREAK - 1 {
            assert!(!u.observe(960, 960));
        }
        assert!(
            !u.observe(480, 960),
            "a partly full buffer resets the streak"
        );
        for _ in 0..Unpaced::STREAK - 1 {
            assert!(!u.observe(1000, 960));
        }
        assert!(u.observe(960, 960));
    }

    #[test]
    fn late_ticks_are_credited_up_to_the_cap() {
        let mut p = Pacer::new(48_000 * 3600, 48_000).unwrap();
        assert!(p.take(10u64.to_ne_bytes()));
        for _ in 0..Pacer::MAX_CREDIT {
            assert!(p.wait(Duration::ZERO).unwrap(), "credited tick");
        }
        assert!(!p.wait(Duration::ZERO).unwrap(), "credit is capped");
    }

    #[test]
    fn pacer_ticks_and_times_out() {
        // One tick per 1 ms: the first wait returns a tick.
        let mut p = Pacer::new(48, 48_000).unwrap();
        assert!(p.wait(Duration::from_secs(10)).unwrap());
        // One tick per hour: a zero timeout returns no tick.
        let mut p = Pacer::new(48_000 * 3600, 48_000).unwrap();
        let t = Instant::now();
        assert!(!p.wait(Duration::ZERO).unwrap());
        assert!(t.elapsed() < Duration::from_secs(3600));
    }
}
