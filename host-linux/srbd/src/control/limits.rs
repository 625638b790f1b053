//! What srbd allows one client: deadlines, sizes, versions. A leaf module:
//! everything in `control` may use it, it uses nothing.

use std::time::Duration;

/// Length of the AUTH cookie (§1.4).
pub const COOKIE_LEN: usize = 256;

/// The lowest client version served (SET_CLIENT_NAME takes a proplist from
/// 13 on; older clients get `ERROR(VERSION)`).
pub const MIN_VERSION: u32 = 13;

/// A connection that is not authorised by then is dropped (§1.2).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// A frame must be complete this long after its first byte arrived, or
/// the connection is closed: a client that stops in the middle of a frame
/// must not hold its connection (and slot) forever.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The lowest negotiated version memfd is offered to (§1.5, §9 row 10:
/// version 31 clients must not get it).
pub const MIN_MEMFD_VERSION: u32 = 32;

/// Largest frame payload accepted (libpulse sends audio in blocks of at
/// most 64 KiB; packets are small).
pub const MAX_FRAME_PAYLOAD: u32 = 1024 * 1024;

/// Largest SET_CLIENT_NAME packet whose proplist is kept. Every client's
/// proplist goes into each GET_CLIENT_INFO_LIST reply, so without a cap 64
/// clients could make that reply exceed the frame limit (failing every
/// asker) or cost each request tens of MiB. libpulse sends well under 4 KiB.
pub const MAX_CLIENT_PROPS: usize = 64 * 1024;

/// The default of how long (config `spin_us`) a connection thread keeps
/// polling the srbchannel ring before it sleeps, when the client's last
/// request followed srbd's last reply within this window (a client issuing
/// requests back to back). It yields the CPU between looks: a client on
/// the same CPU runs at once, and one on the other CPU finds srbd awake,
/// which saves a cross-CPU wake-up (tens of µs on a VM). Streaming
/// clients, whose ring input comes a period apart, never trigger it.
pub const SPIN_WINDOW: Duration = Duration::from_micros(100);
