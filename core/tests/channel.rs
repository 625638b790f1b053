//! Both sides of a channel in two threads, both layouts, both directions:
//! an echo of a long pattern through small rings, with each side sleeping in
//! `wait` (without a timeout) whenever it cannot make progress. A lost
//! wake-up leaves a side waiting for ever, which the watchdog turns into a
//! failure (it aborts the test process after `HANG`); a lost or reordered
//! byte fails an assertion.

mod common;

use std::time::Duration;

use srb_core::layout::{pa, srb};
use srb_core::{Ends, RingConsumer, RingProducer, SpinSignal, SrbChannel, WaitDecision, Woken};

use common::{pattern, with_watchdog, Mem};

/// When an echo is considered hung: far beyond the few seconds it takes on
/// a loaded machine.
const HANG: Duration = Duration::from_secs(120);

/// Side A sends `total` bytes of the pattern in odd-sized writes; side B
/// echoes everything back; A checks the echo. Both block when stuck.
fn echo<P, C>(a: Ends<P, C>, b: Ends<P, C>, total: u64)
where
    P: RingProducer + Send,
    C: RingConsumer + Send,
{
    let (wake_a, wake_b) = (SpinSignal::new(), SpinSignal::new());
    let mut a = SrbChannel::new(a, &wake_b, &wake_a);
    let mut b = SrbChannel::new(b, &wake_a, &wake_b);
    // No timeout: a wait ends only when the peer posts, so a lost wake-up
    // hangs (and the watchdog fails the test) instead of being papered over
    // by a timed retry.
    let timeout = None;
    with_watchdog(HANG, "echo", || {
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut buf = vec![0u8; 777];
                let (mut pending, mut got) = (0usize, 0u64);
                let mut echoed = 0u64;
                while echoed < total {
                    let mut progress = false;
                    if pending == 0 {
                        pending = b.read(&mut buf).unwrap();
                        got += pending as u64;
                        progress |= pending > 0;
                    }
                    if pending > 0 {
                        let start = (got - echoed) as usize;
                        let w = b.write(&buf[pending - start..pending]).unwrap();
                        echoed += w as u64;
                        progress |= w > 0;
                        if echoed == got {
                            pending = 0;
                        }
                    }
                    if !progress {
                        b.wait(timeout).unwrap();
                    }
                }
            });
            let (mut sent, mut back) = (0u64, 0u64);
            let mut out = vec![0u8; 1000];
            let mut inb = vec![0u8; 333];
            let mut chunk = 1usize;
            while back < total {
                let mut progress = false;
                if sent < total {
                    chunk = chunk % 997 + 1;
                    let n = chunk.min((total - sent) as usize);
                    for (i, x) in out[..n].iter_mut().enumerate() {
                        *x = pattern(sent + i as u64);
                    }
                    let w = a.write(&out[..n]).unwrap();
                    sent += w as u64;
                    progress |= w > 0;
                }
                let r = a.read(&mut inb).unwrap();
                for (i, x) in inb[..r].iter().enumerate() {
                    assert_eq!(
                        *x,
                        pattern(back + i as u64),
                        "echoed byte {}",
                        back + i as u64
                    );
                }
                back += r as u64;
                progress |= r > 0;
                if !progress {
                    a.wait(timeout).unwrap();
                }
            }
        })
    });
}

#[test]
fn pa_channel_echoes_through_small_rings() {
    for len in [64usize, 200, 4096] {
        let mem = Mem::new(len);
        // SAFETY: fresh memory; one server, one client.
        let (_, server) = unsafe { pa::init_server(mem.block()) }.unwrap();
        // SAFETY: as above.
        let (_, client) = unsafe { pa::adopt_client(mem.block()) }.unwrap();
        echo(server, client, 20 * len as u64);
        let mem = Mem::new(len);
        // SAFETY: as above.
        let (_, server) = unsafe { pa::init_server(mem.block()) }.unwrap();
        // SAFETY: as above.
        let (_, client) = unsafe { pa::adopt_client(mem.block()) }.unwrap();
        echo(client, server, 20 * len as u64);
    }
}

#[test]
fn srb_channel_echoes_through_small_rings() {
    for cap in [1u32, 16, 1024] {
        let mem = Mem::new(srb::block_len(cap));
        // SAFETY: fresh memory; one creator, one attacher.
        let (_, creator) = unsafe { srb::create_at(mem.block(), cap, u32::MAX - 5000) }.unwrap();
        // SAFETY: as above.
        let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
        echo(creator, attacher, 50_000);
        let mem = Mem::new(srb::block_len(cap));
        // SAFETY: as above.
        let (_, creator) = unsafe { srb::create(mem.block(), cap) }.unwrap();
        // SAFETY: as above.
        let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
        echo(attacher, creator, 50_000);
    }
}

#[test]
fn srb_writer_notifies_only_a_reader_that_sleeps() {
    // The fdsem's point: no notification, not even a post, while the reader
    // is busy; exactly one when it announced a sleep.
    let mem = Mem::new(srb::block_len(64));
    // SAFETY: fresh memory; one creator, one attacher.
    let (_, creator) = unsafe { srb::create(mem.block(), 64) }.unwrap();
    // SAFETY: as above.
    let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
    let (wake_c, wake_a) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    let mut c = SrbChannel::new(creator, &wake_a, &wake_c);
    let mut a = SrbChannel::new(attacher, &wake_c, &wake_a);
    let take = |s: &SpinSignal| srb_core::Wait::try_take(&mut &*s).unwrap();
    let sem = 6 * srb::LINE; // the attacher's semaphore
    let (waiting, signalled, in_pipe) = (sem, sem + 4, sem + 8);

    c.write(b"one").unwrap();
    assert_eq!(take(&wake_a), 0, "reader not waiting: no notification");
    assert_eq!(mem.load_i32(signalled), 0, "and no post");
    // Data is there: the re-check after announcing the sleep cancels it.
    assert_eq!(a.before_wait().unwrap(), WaitDecision::DontSleep);
    assert_eq!(mem.load_i32(waiting), 0, "announcement withdrawn");
    let mut buf = [0u8; 8];
    assert_eq!(a.read(&mut buf).unwrap(), 3);
    // Empty now: the reader may sleep...
    assert_eq!(a.before_wait().unwrap(), WaitDecision::OkToSleep);
    assert_eq!(mem.load_i32(waiting), 1);
    // ...so the next writes notify exactly once.
    c.write(b"two").unwrap();
    c.write(b"three").unwrap();
    assert_eq!(mem.load_i32(in_pipe), 1);
    a.after_wait().unwrap();
    assert_eq!(mem.load_i32(in_pipe), 0);
    assert_eq!(mem.load_i32(waiting), 0);
    assert_eq!(take(&wake_a), 0, "after_wait consumed the notification");
    assert_eq!(a.read(&mut buf).unwrap(), 8);
    assert_eq!(&buf, b"twothree");
}

/// A request/reply round trip on the `srb` layout with the requester
/// asleep: reading its request must not wake it (it waits for the reply,
/// not for space, and would only find the reply ring empty and sleep
/// again); the reply wakes it exactly once. Layout version 1 woke it after
/// the read too: two notifications per round trip.
#[test]
fn srb_reader_does_not_wake_a_writer_that_waits_for_the_reply() {
    let mem = Mem::new(srb::block_len(64));
    // SAFETY: fresh memory; one creator, one attacher.
    let (_, creator) = unsafe { srb::create(mem.block(), 64) }.unwrap();
    // SAFETY: as above.
    let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
    let (wake_c, wake_a) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    let mut c = SrbChannel::new(creator, &wake_a, &wake_c);
    let mut a = SrbChannel::new(attacher, &wake_c, &wake_a);
    let take = |s: &SpinSignal| srb_core::Wait::try_take(&mut &*s).unwrap();
    let c_sem = 5 * srb::LINE; // the creator's semaphore
    let c_wants_space = c_sem + 12;
    let mut buf = [0u8; 8];

    assert_eq!(c.write(b"request").unwrap(), 7, "the request fits");
    // The requester sleeps waiting for the reply, not for space.
    assert_eq!(c.before_wait().unwrap(), WaitDecision::OkToSleep);
    assert_eq!(mem.load_i32(c_sem), 1, "counted as waiting");
    assert_eq!(mem.load_i32(c_wants_space), 0, "but not for space");
    assert_eq!(a.read(&mut buf).unwrap(), 7);
    assert_eq!(take(&wake_c), 0, "reading the request does not wake it");
    assert_eq!(mem.load_i32(c_sem + 4), 0, "nor posts it");
    assert_eq!(a.write(b"reply").unwrap(), 5);
    assert_eq!(mem.load_i32(c_sem + 8), 1, "the reply notifies it, once");
    assert_eq!(c.after_poll(true).unwrap(), Woken::Notified);
    assert_eq!(c.read(&mut buf).unwrap(), 5);

    // A writer cut short announces the wait for space, and the read that
    // frees space wakes it; its end of the sleep withdraws the announcement.
    assert_eq!(c.write(&[1; 100]).unwrap(), 64, "the ring is full");
    assert_eq!(c.before_wait().unwrap(), WaitDecision::OkToSleep);
    assert_eq!(mem.load_i32(c_wants_space), 1, "waits for space");
    assert_eq!(a.read(&mut buf).unwrap(), 8);
    assert_eq!(mem.load_i32(c_sem + 8), 1, "the read notifies it");
    assert_eq!(c.after_poll(true).unwrap(), Woken::Notified);
    assert_eq!(mem.load_i32(c_wants_space), 0, "announcement withdrawn");
}

/// A writer whose last write was cut short by a full ring may sleep until
/// the reader frees space, and must not sleep once it has.
fn blocked_writer_wakes_for_space<P: RingProducer, C: RingConsumer>(
    w_ends: Ends<P, C>,
    r_ends: Ends<P, C>,
) {
    let (sig_w, sig_r) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    let mut w = SrbChannel::new(w_ends, &sig_r, &sig_w);
    let mut r = SrbChannel::new(r_ends, &sig_w, &sig_r);
    let big = vec![1u8; 100_000];
    let n = w.write(&big).unwrap();
    assert!(n > 0 && n < big.len(), "ring filled up");
    // Nothing to read and no space: sleep is allowed...
    assert_eq!(w.before_wait().unwrap(), WaitDecision::OkToSleep);
    // ...and the reader freeing space posts the sleeping writer.
    let mut buf = vec![0u8; 100];
    assert_eq!(r.read(&mut buf).unwrap(), 100);
    assert_eq!(
        srb_core::Wait::try_take(&mut &sig_w).unwrap(),
        1,
        "writer notified"
    );
    w.after_wait().unwrap();
    // The freed space is itself a reason not to sleep, post or no post.
    assert_eq!(w.before_wait().unwrap(), WaitDecision::DontSleep);
    assert_eq!(w.write(&big[n..]).unwrap(), 100);
    // A writer that was not cut short sleeps although space exists.
    let mut tiny = vec![0u8; 50];
    assert_eq!(r.read(&mut tiny).unwrap(), 50);
    assert_eq!(w.write(&big[..10]).unwrap(), 10);
    // (A `pa` reader posted when it read from a full ring; that post is
    // consumed first, as a spurious wake-up.)
    let mut d = w.before_wait().unwrap();
    if d == WaitDecision::DontSleep {
        d = w.before_wait().unwrap();
    }
    assert_eq!(d, WaitDecision::OkToSleep);
    w.after_wait().unwrap();
}

#[test]
fn blocked_writer_wakes_for_space_pa() {
    let mem = Mem::new(4096);
    // SAFETY: fresh memory; one server, one client.
    let (_, s) = unsafe { pa::init_server(mem.block()) }.unwrap();
    // SAFETY: as above.
    let (_, c) = unsafe { pa::adopt_client(mem.block()) }.unwrap();
    blocked_writer_wakes_for_space(s, c);
}

#[test]
fn blocked_writer_wakes_for_space_srb() {
    let mem = Mem::new(srb::block_len(1024));
    // SAFETY: fresh memory; one creator, one attacher.
    let (_, cr) = unsafe { srb::create(mem.block(), 1024) }.unwrap();
    // SAFETY: as above.
    let (_, at) = unsafe { srb::attach(mem.block()) }.unwrap();
    blocked_writer_wakes_for_space(at, cr);
}

#[test]
fn wait_writable_ignores_unread_data_and_wakes_for_space() {
    let mem = Mem::new(256);
    // SAFETY: fresh memory; one server, one client.
    let (_, server) = unsafe { pa::init_server(mem.block()) }.unwrap();
    // SAFETY: as above.
    let (_, client) = unsafe { pa::adopt_client(mem.block()) }.unwrap();
    let (sig_s, sig_c) = (SpinSignal::with_budget(10), SpinSignal::with_budget(10));
    let mut s = SrbChannel::new(server, &sig_c, &sig_s);
    let mut c = SrbChannel::new(client, &sig_s, &sig_c);
    let big = vec![7u8; 1000];
    let n = s.write(&big).unwrap();
    assert!(n > 0 && n < big.len(), "the server's ring filled up");
    // The client sends a request the server has not read yet.
    assert_eq!(c.write(b"request").unwrap(), 7);
    // That write posted the server: the first wait is cut short by it...
    assert_eq!(
        s.wait_writable(Some(Duration::ZERO)).unwrap(),
        Woken::Pending
    );
    // ...but the unread request does not keep the writer awake, where the
    // general `wait` would return at once.
    assert_eq!(
        s.wait_writable(Some(Duration::ZERO)).unwrap(),
        Woken::TimedOut
    );
    assert_eq!(s.wait(Some(Duration::ZERO)).unwrap(), Woken::Pending);
    // The client draining the full ring posts the sleeping writer.
    let mut buf = vec![0u8; 64];
    assert_eq!(c.read(&mut buf).unwrap(), 64);
    let woke = s.wait_writable(Some(Duration::ZERO)).unwrap();
    assert_ne!(woke, Woken::TimedOut, "space freed: no sleep");
    assert_eq!(s.write(&big[n..]).unwrap(), 64);
}

/// A wake-up object whose notifications fail on demand (an eventfd that a
/// hostile peer saturated, say): with `fail` set, nothing is delivered.
struct Flaky {
    sig: SpinSignal,
    fail: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn new() -> Self {
        Self {
            sig: SpinSignal::with_budget(10),
            fail: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn set_failing(&self, fail: bool) {
        self.fail.store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    fn taken(&self) -> u64 {
        srb_core::Wait::try_take(&mut &self.sig).unwrap()
    }
}

impl srb_core::Notify for Flaky {
    type Error = &'static str;
    fn notify(&self) -> Result<(), &'static str> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("saturated");
        }
        srb_core::Notify::notify(&self.sig).unwrap();
        Ok(())
    }
}

#[test]
fn a_failed_wake_after_a_write_keeps_the_bytes_and_is_retried() {
    let mem = Mem::new(4096);
    // SAFETY: fresh memory; one server, one client.
    let (_, server) = unsafe { pa::init_server(mem.block()) }.unwrap();
    // SAFETY: as above.
    let (_, client) = unsafe { pa::adopt_client(mem.block()) }.unwrap();
    let (to_client, sig_s) = (Flaky::new(), SpinSignal::with_budget(10));
    let mut s = SrbChannel::new(server, &to_client, &sig_s);
    let mut c = SrbChannel::new(client, &sig_s, &to_client.sig);
    let in_pipe = pa::WRITE_SEMDATA_OFFSET + 8; // the client waits on it
                                                // The client sleeps; the server's notification fails.
    assert_eq!(c.before_wait().unwrap(), WaitDecision::OkToSleep);
    to_client.set_failing(true);
    assert_eq!(s.write(b"hello"), Ok(5), "the bytes are in the ring: Ok");
    assert_eq!(mem.load_i32(in_pipe), 0, "no notification is announced");
    assert!(s.wake_owed());
    // Still failing: the retry fails first, and nothing more is written.
    assert_eq!(
        s.write(b"again"),
        Err(srb_core::ChannelError::Signal("saturated"))
    );
    assert_eq!(c.available().unwrap(), 5, "the failed call wrote nothing");
    // While the wake-up is owed, the server does not sleep.
    assert_eq!(s.before_wait().unwrap(), WaitDecision::DontSleep);
    // Repaired: the owed wake-up reaches the sleeping client.
    to_client.set_failing(false);
    s.flush_wake().unwrap();
    assert!(!s.wake_owed());
    assert_eq!(mem.load_i32(in_pipe), 1);
    assert_eq!(
        c.after_poll(true).unwrap(),
        Woken::Notified,
        "the sleeping client is woken"
    );
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn a_failed_wake_after_a_read_keeps_the_bytes_and_is_retried() {
    let mem = Mem::new(srb::block_len(64));
    // SAFETY: fresh memory; one creator, one attacher.
    let (_, creator) = unsafe { srb::create(mem.block(), 64) }.unwrap();
    // SAFETY: as above.
    let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
    let (to_writer, sig_r) = (Flaky::new(), SpinSignal::with_budget(10));
    let mut w = SrbChannel::new(creator, &sig_r, &to_writer.sig);
    let mut r = SrbChannel::new(attacher, &to_writer, &sig_r);
    let in_pipe = 5 * srb::LINE + 8; // the creator (writer) waits on it
                                     // The writer fills the ring and sleeps for space.
    assert_eq!(w.write(&[3; 100]).unwrap(), 64);
    assert_eq!(w.before_wait().unwrap(), WaitDecision::OkToSleep);
    // The reader takes bytes; waking the writer fails.
    to_writer.set_failing(true);
    let mut buf = [0u8; 16];
    assert_eq!(r.read(&mut buf), Ok(16), "the bytes are the caller's: Ok");
    assert_eq!(buf, [3; 16]);
    assert_eq!(mem.load_i32(in_pipe), 0, "no notification is announced");
    assert!(r.wake_owed());
    assert_eq!(
        r.read(&mut buf),
        Err(srb_core::ChannelError::Signal("saturated"))
    );
    assert_eq!(
        r.available().unwrap(),
        48,
        "the failed call consumed nothing"
    );
    assert_eq!(r.wait(None).unwrap(), Woken::Pending, "no sleep while owed");
    to_writer.set_failing(false);
    assert_eq!(r.read(&mut buf), Ok(16), "the retry succeeds first");
    assert!(!r.wake_owed());
    assert_eq!(mem.load_i32(in_pipe), 1);
    // One notification, exactly as announced: more would be `Corrupt`.
    assert_eq!(
        w.after_poll(true).unwrap(),
        Woken::Notified,
        "the sleeping writer is woken"
    );
    assert_eq!(mem.load_i32(in_pipe), 0);
    assert_eq!(to_writer.taken(), 0);
}
