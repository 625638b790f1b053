//! `SCHED_FIFO`, `mlockall` and prefaulted buffers: keeping a period
//! thread on the CPU and its memory resident.
//!
//! A sound server's period thread should not wait behind a compiler or a
//! browser: it asks the kernel for the real-time `SCHED_FIFO` policy at a
//! configured priority (`rt_priority`, 1..=99; 0 leaves the thread alone).
//! The kernel refuses without privilege (`EPERM`: no `CAP_SYS_NICE` and an
//! `RLIMIT_RTPRIO` below the priority — 0 on most desktops). A refusal is
//! not an error: [`request_fifo`] logs one line saying what was refused and
//! why, and the caller carries on at normal priority.
//!
//! [`lock_memory`] (`mlockall(MCL_CURRENT | MCL_FUTURE)`) keeps the
//! process's pages resident, so a period never waits for a page-in; it is
//! also refused without privilege (`RLIMIT_MEMLOCK`), with one log line.

use rustix::io::Errno;

/// The highest `SCHED_FIFO` priority Linux accepts.
pub const MAX_PRIORITY: u8 = 99;

/// What [`request_fifo`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtOutcome {
    /// Priority 0 was asked for: the thread keeps its policy.
    Off,
    /// The thread now runs `SCHED_FIFO` at this priority.
    Granted(u8),
    /// The kernel refused; the thread keeps its normal policy.
    Refused(Errno),
}

/// Asks for `SCHED_FIFO` at `priority` for the calling thread (0: does
/// nothing). `who` names the thread in the one log line this writes.
pub fn request_fifo(who: &str, priority: u8) -> RtOutcome {
    if priority == 0 {
        return RtOutcome::Off;
    }
    report(who, priority, set_fifo(priority))
}

/// Logs the outcome of a `SCHED_FIFO` request (one line) and names it.
/// Apart from [`request_fifo`] so the refusal branch can be tested with an
/// injected error (as root the kernel grants the request).
pub fn report(who: &str, priority: u8, result: Result<(), Errno>) -> RtOutcome {
    match result {
        Ok(()) => {
            tracing::info!(who, priority, "real-time scheduling: SCHED_FIFO granted");
            RtOutcome::Granted(priority)
        }
        Err(e) => {
            let why = if e == Errno::PERM {
                "no privilege (RLIMIT_RTPRIO too low and no CAP_SYS_NICE)"
            } else {
                "refused"
            };
            tracing::warn!(
                who,
                priority,
                error = %e,
                "real-time scheduling: SCHED_FIFO {why}; running at normal priority"
            );
            RtOutcome::Refused(e)
        }
    }
}

/// `pthread_setschedparam(pthread_self(), SCHED_FIFO, priority)`.
fn set_fifo(priority: u8) -> Result<(), Errno> {
    if priority > MAX_PRIORITY {
        return Err(Errno::INVAL);
    }
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `pthread_self()` is the calling thread, alive for the call;
    // `param` is a valid, initialized sched_param the call only reads.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(rc))
    }
}

/// Locks every current and future page of the process in memory
/// (`mlockall(MCL_CURRENT | MCL_FUTURE)`); one log line either way.
/// Returns whether it worked.
pub fn lock_memory(who: &str) -> bool {
    use rustix::mm::{mlockall, MlockAllFlags};
    match mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE) {
        Ok(()) => {
            tracing::info!(who, "memory locked (mlockall)");
            true
        }
        Err(e) => {
            tracing::warn!(who, error = %e, "mlockall refused; pages may be swapped out");
            false
        }
    }
}

/// `n` copies of `value` with every page written once at creation: a
/// zeroed `Vec` comes from `calloc`, whose large blocks are fresh mappings
/// that fault their pages in on first touch — which would otherwise be
/// the first period.
pub fn prefaulted<T: Copy>(n: usize, value: T) -> Vec<T> {
    // `malloc` then an explicit fill (a memset at worst), never `calloc`'s
    // untouched zero pages.
    let mut v = Vec::with_capacity(n);
    v.resize(n, value);
    v
}

/// The scheduling policy of thread `tid` of process `pid` as the kernel
/// reports it (field 41 of `/proc/PID/task/TID/stat`: 0 normal, 1
/// `SCHED_FIFO`, 2 `SCHED_RR`, ...), or `None` if it cannot be read.
pub fn thread_policy(pid: u32, tid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat_policy(&stat)
}

/// Field 41 (`policy`) of a `/proc/…/stat` line. The second field (the
/// command name, in parentheses) may hold spaces, so fields are counted
/// after its closing parenthesis.
pub fn stat_policy(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come fields 3, 4, …: field 41 is the 39th.
    rest.split_whitespace().nth(38)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_off_and_the_refusal_branch_names_the_error() {
        assert_eq!(request_fifo("test", 0), RtOutcome::Off);
        assert_eq!(
            report("test", 5, Err(Errno::PERM)),
            RtOutcome::Refused(Errno::PERM)
        );
        assert_eq!(report("test", 5, Ok(())), RtOutcome::Granted(5));
        assert_eq!(set_fifo(100), Err(Errno::INVAL));
    }

    #[test]
    fn the_policy_field_is_found_past_a_command_with_spaces() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[41 - 3] = "1".into();
        let line = format!("1234 (a b) c) {}", fields.join(" "));
        assert_eq!(stat_policy(&line), Some(1));
        let me = std::process::id();
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        // This test thread runs the normal policy (tests never ask for
        // real time).
        assert_eq!(thread_policy(me, tid), Some(0));
    }
}
