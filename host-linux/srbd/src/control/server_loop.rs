//! The control loop ([`ServerLoop`]): one thread, one epoll
//! ([`srb_linux::reactor::Reactor`]), every client.
//!
//! It watches the listeners (unix, TCP), every client socket and
//! srbchannel fd0, the mixer's [`Bell`], a signal pipe (SIGINT, SIGTERM),
//! the `control` socket that hands out the state page
//! ([`ServerLoop::serve_state_page`]), and one timerfd ([`Alarm`]) armed
//! for the earliest deadline of all (AUTH and frame deadlines, RELEASE
//! batching, accept back-off, the statistics log, the DSP-miss log). It owns every [`Client`]; no other thread touches a
//! client's state, so nothing here takes a lock a client could hold.
//!
//! One iteration:
//!
//! 1. **Wait** (`epoll_wait`), without blocking if a client must be served
//!    again (its ring budget ran out or its semaphore said data waits).
//! 2. **Collect**: the bell rang → take every client's [`Notice`]
//!    (flags the mixer set this period); the alarm fired → the clients
//!    whose deadline passed; listeners → accept; sockets and fd0s → their
//!    clients.
//! 3. **Serve** each collected client once ([`Client::serve`]): read,
//!    handle, answer, one queue write. A client that fails is closed with
//!    a logged reason; nobody else waits for it.
//! 4. **Spin** (loop-wide ring polling): if a client answered this round
//!    had sent its request within the spin window of srbd's previous
//!    answer (a client issuing requests back to back), keep looking at
//!    those clients' rings, yielding the CPU between looks, for at most
//!    the window (`spin_us`) before sleeping: its next request is then
//!    served without a wake-up.
//! 5. **Park** the served clients on their srbchannel semaphores
//!    ([`Client::park`]) and re-arm the alarm.
//!
//! **Admission.** At most `max_clients` clients are served; one more is
//! accepted and closed at once with a log line. When accept fails for
//! lack of fds or memory the listener is taken out of the loop for
//! [`ACCEPT_BACKOFF`] (logged once per pause) instead of being reported
//! ready again and again.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use srb_linux::listener::Listener;
use srb_linux::reactor::{Alarm, Interest, Reactor, Ready};
use srb_linux::state_page::{ServeError, StatePageServer};

use crate::control::client::{Client, CloseReason, Events, Limits, Transport};
use crate::control::session::{Peer, COOKIE_LEN};
use crate::dsp::restart::RestartHandle;
use crate::engine::alsa::CountersSnapshot;
use crate::engine::dsp_clock::{DspCounters, MISS_LOG_INTERVAL};
use crate::engine::notice::{Bell, Notice};
use crate::Server;

/// How long a listener rests after accept ran out of fds or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The default of `max_clients`.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Accepts per listener per iteration (the rest wait for the next one).
const ACCEPTS_PER_ROUND: usize = 64;
/// Bytes read per input per round: also the shared read buffer's size.
const READ_BUDGET: usize = 64 * 1024;

const TOKEN_BELL: u64 = 0;
const TOKEN_ALARM: u64 = 1;
const TOKEN_SIGNALS: u64 = 2;
const TOKEN_CONTROL: u64 = 3;
const TOKEN_LISTENER: u64 = 8;
/// Client tokens: `generation << 32 | CLIENT_BASE + slot * 2 + (1 for
/// fd0)`. The generation tells an event for a closed client from one for
/// the client that took its slot since.
const CLIENT_BASE: u64 = 1 << 16;

/// Why the control loop could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// Creating or using the epoll, the timerfd or a registration failed.
    #[error("event loop: {0}")]
    Reactor(Errno),
    /// The signal pipe could not be set up.
    #[error("signal pipe: {0}")]
    Signals(std::io::Error),
    /// A TCP listener could not be set up.
    #[error("tcp: {0}")]
    Tcp(std::io::Error),
    /// A second state page was offered.
    #[error("the state page is already served")]
    PageTwice,
}

/// A listening socket the loop accepts from.
#[derive(Debug)]
enum Listening {
    /// The unix socket (SO_PEERCRED on accept).
    Unix(Listener),
    /// A TCP socket, and the cookie its clients must present (`None`:
    /// anonymous).
    Tcp {
        listener: TcpListener,
        cookie: Option<Box<[u8; COOKIE_LEN]>>,
    },
}

impl Listening {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Listening::Unix(l) => l.as_fd(),
            Listening::Tcp { listener, .. } => listener.as_fd(),
        }
    }
}

/// A client in its slot.
#[derive(Debug)]
struct Slot {
    client: Client,
    generation: u32,
    /// The interest the socket is registered with.
    writable: bool,
    /// Whether fd0 of its srbchannel is registered.
    ring: bool,
    /// The deadline pushed to the heap for it (stale entries are skipped).
    deadline: Option<Instant>,
    /// Collected this iteration, with these events.
    pending: Option<Events>,
}

/// How a client left the loop, for tests and the log.
pub type Ended = (u32, Result<(), CloseReason>);

/// The control loop.
#[derive(Debug)]
pub struct ServerLoop {
    server: Arc<Server>,
    reactor: Reactor,
    alarm: Alarm,
    bell: Arc<Bell>,
    listeners: Vec<Listening>,
    /// Listeners taken out of the loop until this instant (accept
    /// back-off).
    paused_until: Option<Instant>,
    signals: Option<UnixStream>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    generation: u32,
    clients: usize,
    max_clients: usize,
    limits: Limits,
    deadlines: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    /// Clients to serve this iteration.
    pending: Vec<usize>,
    /// Clients to serve again before sleeping.
    again: Vec<usize>,
    scratch: Vec<u8>,
    ready: Vec<(u64, Ready)>,
    stats: Option<(Duration, Instant)>,
    restarts: Option<RestartHandle>,
    /// The `control` socket and the state page fd it hands out.
    page: Option<(StatePageServer, OwnedFd)>,
    /// When to look at the DSP's missed periods next, and the count last
    /// logged (only while a DSP runs).
    misses: Option<(Instant, u64)>,
    /// When to look at the ALSA output's counters next, and what they were
    /// at the last look (only with an ALSA output).
    alsa: Option<(Instant, CountersSnapshot)>,
    /// Keep the ends of closed clients (tests).
    record_ends: bool,
    ended: Vec<Ended>,
}

impl ServerLoop {
    /// A loop for `server`, woken by its engine's bell.
    pub fn new(server: Arc<Server>) -> Result<Self, LoopError> {
        let reactor = Reactor::new().map_err(LoopError::Reactor)?;
        let alarm = Alarm::new().map_err(LoopError::Reactor)?;
        let bell = server.engine.bell().clone();
        reactor
            .add(&*bell, TOKEN_BELL, Interest::READ)
            .map_err(LoopError::Reactor)?;
        reactor
            .add(alarm.fd(), TOKEN_ALARM, Interest::READ)
            .map_err(LoopError::Reactor)?;
        let max_clients = server.max_clients;
        let alsa = server
            .engine
            .alsa()
            .map(|(_, c)| (Instant::now() + MISS_LOG_INTERVAL, c.snapshot()));
        Ok(Self {
            server,
            reactor,
            alarm,
            bell,
            listeners: Vec::new(),
            paused_until: None,
            signals: None,
            slots: Vec::new(),
            free: Vec::new(),
            generation: 0,
            clients: 0,
            max_clients,
            limits: Limits::default(),
            deadlines: BinaryHeap::new(),
            pending: Vec::new(),
            again: Vec::new(),
            scratch: vec![0u8; READ_BUDGET],
            ready: Vec::with_capacity(srb_linux::reactor::EVENTS_PER_WAIT),
            stats: None,
            restarts: None,
            page: None,
            misses: None,
            alsa,
            record_ends: false,
            ended: Vec::new(),
        })
    }

    /// Other deadlines (tests).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Keeps how each client ended, for [`ServerLoop::take_ended`] (tests).
    pub fn record_ends(mut self) -> Self {
        self.record_ends = true;
        self
    }

    /// Logs the DSP and sink counters every `interval` (with the DSP's
    /// restart count when a supervisor runs it).
    pub fn with_stats(mut self, interval: Duration, restarts: Option<RestartHandle>) -> Self {
        self.stats = Some((interval, Instant::now() + interval));
        self.restarts = restarts;
        self
    }

    /// Logs the DSP's missed periods (played as the fallback) at most once
    /// per [`MISS_LOG_INTERVAL`], with the count since the last line (the
    /// mixer only counts them).
    pub fn watch_dsp_misses(mut self) -> Self {
        self.misses = Some((Instant::now() + MISS_LOG_INTERVAL, 0));
        self
    }

    /// Hands `page` (the state page's fd) to each local client of our uid
    /// that connects to `server` (the `control` socket; `srb-top`).
    pub fn serve_state_page(
        &mut self,
        server: StatePageServer,
        page: OwnedFd,
    ) -> Result<(), LoopError> {
        if self.page.is_some() {
            return Err(LoopError::PageTwice);
        }
        self.reactor
            .add(&server, TOKEN_CONTROL, Interest::READ)
            .map_err(LoopError::Reactor)?;
        self.page = Some((server, page));
        Ok(())
    }

    /// Answers every pending `control` connection with the page; a refused
    /// or vanished client costs one log line, never a wait.
    fn hand_out_page(&self) {
        let Some((server, page)) = &self.page else {
            return;
        };
        for _ in 0..ACCEPTS_PER_ROUND {
            match server.accept_and_send(page.as_fd()) {
                Ok(()) => tracing::debug!("state page handed out"),
                Err(ServeError::NoPendingConnection) => return,
                Err(e @ ServeError::WrongUid { .. }) => tracing::info!(%e, "control socket"),
                Err(e) => tracing::debug!(%e, "control socket"),
            }
        }
    }

    /// Logs the DSP's missed periods when there are new ones.
    fn log_misses(&mut self, now: Instant) {
        let Some((at, logged)) = self.misses else {
            return;
        };
        if at > now {
            return;
        }
        let total = DspCounters::get(&self.server.engine.dsp().xruns);
        if total > logged {
            tracing::warn!(
                missed = total - logged,
                total,
                "DSP missed periods; played the fallback"
            );
        }
        self.misses = Some((now + MISS_LOG_INTERVAL, total));
    }

    /// Logs the ALSA output's xruns and short periods when there are new
    /// ones (the mixer only counts them), at most once per
    /// [`MISS_LOG_INTERVAL`].
    fn log_alsa(&mut self, now: Instant) {
        let Some((at, before)) = self.alsa else {
            return;
        };
        if at > now {
            return;
        }
        let Some((facts, counters)) = self.server.engine.alsa() else {
            return;
        };
        let snap = counters.snapshot();
        snap.log_changes(&before, &facts.name);
        self.alsa = Some((now + MISS_LOG_INTERVAL, snap));
    }

    /// Serves clients of the unix `listener`.
    pub fn listen_unix(&mut self, listener: Listener) -> Result<(), LoopError> {
        rustix::io::ioctl_fionbio(&listener, true).map_err(LoopError::Reactor)?;
        self.add_listener(Listening::Unix(listener))
    }

    /// Serves TCP clients on `addr` (cookie required unless `cookie` is
    /// `None`); returns the bound address.
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        cookie: Option<[u8; COOKIE_LEN]>,
    ) -> Result<SocketAddr, LoopError> {
        let listener = TcpListener::bind(addr).map_err(LoopError::Tcp)?;
        listener.set_nonblocking(true).map_err(LoopError::Tcp)?;
        let local = listener.local_addr().map_err(LoopError::Tcp)?;
        tracing::info!(addr = %local, anonymous = cookie.is_none(), "serving TCP clients");
        self.add_listener(Listening::Tcp {
            listener,
            cookie: cookie.map(Box::new),
        })?;
        Ok(local)
    }

    fn add_listener(&mut self, l: Listening) -> Result<(), LoopError> {
        let token = TOKEN_LISTENER + self.listeners.len() as u64;
        self.reactor
            .add(l.fd(), token, Interest::READ)
            .map_err(LoopError::Reactor)?;
        self.listeners.push(l);
        Ok(())
    }

    /// Ends the loop on SIGINT or SIGTERM (through a pipe the handler
    /// writes: no other thread).
    pub fn watch_signals(&mut self) -> Result<(), LoopError> {
        let (rx, tx) = UnixStream::pair().map_err(LoopError::Signals)?;
        rx.set_nonblocking(true).map_err(LoopError::Signals)?;
        tx.set_nonblocking(true).map_err(LoopError::Signals)?;
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::low_level::pipe::register(
                sig,
                tx.try_clone().map_err(LoopError::Signals)?,
            )
            .map_err(LoopError::Signals)?;
        }
        self.reactor
            .add(&rx, TOKEN_SIGNALS, Interest::READ)
            .map_err(LoopError::Reactor)?;
        self.signals = Some(rx);
        Ok(())
    }

    /// Serves an already connected client (tests; socket activation of a
    /// connected socket).
    pub fn add_client(&mut self, transport: Transport, peer: Peer) -> Result<(), LoopError> {
        self.admit(transport, peer)
    }

    /// Clients served now.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// How the clients that left ended (with [`ServerLoop::record_ends`]).
    pub fn take_ended(&mut self) -> Vec<Ended> {
        std::mem::take(&mut self.ended)
    }

    /// Runs until the server is asked to stop (a signal, or
    /// [`Server::request_stop`]); then closes every client.
    pub fn run(&mut self) -> Result<(), LoopError> {
        while !self.server.stopping() {
            self.iterate(None)?;
        }
        tracing::info!(clients = self.clients, "stopping");
        self.close_all();
        Ok(())
    }

    /// Runs until no client is left or `limit` passed (tests).
    pub fn run_until_idle(&mut self, limit: Duration) -> Result<(), LoopError> {
        let end = Instant::now() + limit;
        while self.clients > 0 && Instant::now() < end && !self.server.stopping() {
            self.iterate(Some(end))?;
        }
        Ok(())
    }

    /// One wait and what it brought.
    fn iterate(&mut self, until: Option<Instant>) -> Result<(), LoopError> {
        let now = Instant::now();
        let next = self.next_deadline();
        let timeout = if !self.again.is_empty() {
            Some(Duration::ZERO)
        } else {
            let at = match (next, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            at.map(|t| t.saturating_duration_since(now))
        };
        self.alarm.arm(next).map_err(LoopError::Reactor)?;
        self.ready.clear();
        self.ready
            .extend(self.reactor.wait(timeout).map_err(LoopError::Reactor)?);
        for i in std::mem::take(&mut self.again) {
            self.collect(i, Events::default());
        }
        let mut ready = std::mem::take(&mut self.ready);
        for &(token, r) in &ready {
            match token {
                TOKEN_BELL => {
                    self.bell.clear();
                    self.take_notices();
                }
                TOKEN_ALARM => self.alarm.clear(),
                TOKEN_SIGNALS => self.on_signal(),
                TOKEN_CONTROL => self.hand_out_page(),
                t if t < CLIENT_BASE => self.accept((t - TOKEN_LISTENER) as usize),
                t => {
                    let slot = ((t & 0xFFFF_FFFF) - CLIENT_BASE) as usize;
                    let (i, ring) = (slot / 2, slot % 2 == 1);
                    let generation = (t >> 32) as u32;
                    let live =
                        matches!(self.slots.get(i), Some(Some(s)) if s.generation == generation);
                    if live {
                        let ev = if ring {
                            Events {
                                ring: true,
                                ..Events::default()
                            }
                        } else {
                            Events {
                                readable: r.readable || r.hangup,
                                writable: r.writable,
                                ring: false,
                            }
                        };
                        self.collect(i, ev);
                    }
                }
            }
        }
        ready.clear();
        self.ready = ready;
        self.due_deadlines();
        self.serve_pending();
        self.spin();
        Ok(())
    }

    fn collect(&mut self, i: usize, ev: Events) {
        if let Some(Some(s)) = self.slots.get_mut(i) {
            match &mut s.pending {
                Some(p) => *p = p.merge(ev),
                None => {
                    s.pending = Some(ev);
                    self.pending.push(i);
                }
            }
        }
    }

    /// The bell rang: the sample players and every client the mixer (or
    /// another client) marked.
    fn take_notices(&mut self) {
        // The sample players' flag: top their rings up, unlist the done.
        if self.server.players.notice().take() {
            self.server.players.poll(&self.server);
        }
        for i in 0..self.slots.len() {
            let marked = matches!(&self.slots[i], Some(s) if s.client.notice().take());
            if marked {
                self.collect(i, Events::default());
            }
        }
    }

    fn on_signal(&mut self) {
        if let Some(rx) = &self.signals {
            let mut buf = [0u8; 64];
            while matches!(rustix::io::read(rx, &mut buf), Ok(n) if n > 0) {}
        }
        tracing::info!("signal received: shutting down");
        self.server.request_stop();
    }

    fn serve_pending(&mut self) {
        let spin = self.server.spin;
        let mut pending = std::mem::take(&mut self.pending);
        for &i in &pending {
            let Some(Some(s)) = self.slots.get_mut(i) else {
                continue;
            };
            let ev = s.pending.take().unwrap_or_default();
            let result = serve_guarded(&mut s.client, ev, &mut self.scratch, spin);
            self.after_serve(i, result);
        }
        pending.clear();
        self.pending = pending;
    }

    /// After a client's round: close it, or update its registrations and
    /// deadline and park it (unless it spins or must be served again).
    fn after_serve(&mut self, i: usize, result: Result<bool, CloseReason>) {
        match result {
            Ok(true) => {}
            Ok(false) => return self.close(i, Ok(())),
            Err(e) => return self.close(i, Err(e)),
        }
        if let Err(e) = self.update(i) {
            return self.close(i, Err(e));
        }
        let Some(Some(s)) = self.slots.get_mut(i) else {
            return;
        };
        if s.client.spinning() && s.client.ring_fd().is_some() && !s.client.again() {
            // Parked after the spin (see `spin`).
            return;
        }
        match s.client.park() {
            Ok(true) => {}
            Ok(false) => self.again.push(i),
            Err(e) => self.close(i, Err(e)),
        }
    }

    /// Registers what a client's round changed: write interest, a newly
    /// offered srbchannel, its next deadline.
    fn update(&mut self, i: usize) -> Result<(), CloseReason> {
        let Some(Some(s)) = self.slots.get_mut(i) else {
            return Ok(());
        };
        let base = (u64::from(s.generation) << 32) | (CLIENT_BASE + 2 * i as u64);
        let want = s.client.wants_writable();
        if want != s.writable {
            let interest = if want {
                Interest::READ_WRITE
            } else {
                Interest::READ
            };
            if let Err(e) = self.reactor.modify(s.client.socket(), base, interest) {
                tracing::warn!(client = s.client.session().client_index(), %e, "epoll modify");
            }
            s.writable = want;
        }
        if !s.ring {
            if let Some(fd) = s.client.ring_fd() {
                if let Err(e) = self.reactor.add(fd, base + 1, Interest::READ) {
                    tracing::warn!(client = s.client.session().client_index(), %e, "epoll add fd0");
                }
                s.ring = true;
            }
        }
        let d = s.client.next_deadline();
        if d != s.deadline {
            s.deadline = d;
            if let Some(d) = d {
                self.deadlines.push(Reverse((d, i, s.generation)));
            }
        }
        Ok(())
    }

    /// Loop-wide ring polling: the clients that asked back to back get
    /// their next request served without a wake-up, for at most the spin
    /// window; then every one of them is parked.
    fn spin(&mut self) {
        let spinners: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(s) if s.client.spinning() && s.client.ring_fd().is_some() => Some(i),
                _ => None,
            })
            .collect();
        if spinners.is_empty() {
            return;
        }
        let window = self.server.spin;
        let start = Instant::now();
        let mut live = spinners.clone();
        while !live.is_empty() && start.elapsed() < window {
            let mut served = false;
            for &i in &live {
                let Some(Some(s)) = self.slots.get_mut(i) else {
                    continue;
                };
                match s.client.ring_available() {
                    Ok(0) => {}
                    Ok(_) => {
                        let r = serve_guarded(
                            &mut s.client,
                            Events::default(),
                            &mut self.scratch,
                            window,
                        );
                        served = true;
                        match r {
                            Ok(true) => {
                                if let Err(e) = self.update(i) {
                                    self.close(i, Err(e));
                                }
                            }
                            Ok(false) => self.close(i, Ok(())),
                            Err(e) => self.close(i, Err(e)),
                        }
                    }
                    Err(e) => self.close(i, Err(e)),
                }
            }
            live.retain(
                |&i| matches!(&self.slots[i], Some(s) if s.client.spinning() && !s.client.again()),
            );
            if !served {
                std::thread::yield_now();
            }
        }
        for i in spinners {
            let Some(Some(s)) = self.slots.get_mut(i) else {
                continue;
            };
            match s.client.park() {
                Ok(true) => {}
                Ok(false) => self.again.push(i),
                Err(e) => self.close(i, Err(e)),
            }
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        // Drop stale heap entries from the top.
        while let Some(Reverse((t, i, g))) = self.deadlines.peek().copied() {
            let current = matches!(self.slots.get(i), Some(Some(s)) if s.generation == g && s.deadline == Some(t));
            if current {
                break;
            }
            self.deadlines.pop();
        }
        let mut d = self.deadlines.peek().map(|Reverse((t, _, _))| *t);
        for x in [
            self.paused_until,
            self.stats.map(|(_, t)| t),
            self.misses.map(|(t, _)| t),
            self.alsa.map(|(t, _)| t),
        ]
        .into_iter()
        .flatten()
        {
            d = Some(d.map_or(x, |d| d.min(x)));
        }
        d
    }

    /// Collects the clients whose deadline passed; resumes paused
    /// listeners; logs the statistics.
    fn due_deadlines(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, i, g))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            let current = matches!(self.slots.get(i), Some(Some(s)) if s.generation == g && s.deadline == Some(t));
            if current {
                if let Some(Some(s)) = self.slots.get_mut(i) {
                    s.deadline = None;
                }
                self.collect(i, Events::default());
            }
        }
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
            for (n, l) in self.listeners.iter().enumerate() {
                if let Err(e) = self
                    .reactor
                    .add(l.fd(), TOKEN_LISTENER + n as u64, Interest::READ)
                {
                    tracing::error!(%e, "cannot resume accepting");
                }
            }
            tracing::info!("accepting clients again");
        }
        self.log_misses(now);
        self.log_alsa(now);
        if let Some((every, at)) = self.stats {
            if at <= now {
                self.stats = Some((every, now + every));
                self.log_stats();
            }
        }
    }

    fn log_stats(&self) {
        use std::sync::atomic::Ordering;
        let c = self.server.engine.dsp();
        let s = c.stats.load();
        let a = self.server.engine.alsa().map(|(_, c)| c.snapshot());
        tracing::info!(
            clients = self.clients,
            alsa_underruns = a.map(|a| a.underruns),
            alsa_failures = a.map(|a| a.failures),
            alsa_reopens = a.map(|a| a.reopens),
            alsa_discarded_periods = a.map(|a| a.discarded_periods),
            dsp_periods = s.map(|s| s.periods),
            worst_us = s.map(|s| s.worst_ns / 1000),
            mean_us = s.map(|s| s.mean_ns / 1000),
            dsp_deadline_misses = s.map(|s| s.deadline_misses),
            processed = c.processed.load(Ordering::Relaxed),
            late = c.late.load(Ordering::Relaxed),
            xruns = c.xruns.load(Ordering::Relaxed),
            skipped = self.server.engine.shared().skipped.load(Ordering::Relaxed),
            fallbacks = c.fallbacks.load(Ordering::Relaxed),
            restarts = self.restarts.as_ref().map(RestartHandle::restarts),
            periods = self.server.engine.shared().periods.load(Ordering::Relaxed),
            "stats"
        );
    }

    fn accept(&mut self, n: usize) {
        for _ in 0..ACCEPTS_PER_ROUND {
            let Some(l) = self.listeners.get(n) else {
                return;
            };
            let accepted = match l {
                Listening::Unix(l) => l.accept().map(|(stream, cred)| {
                    (
                        Transport::Unix(stream),
                        Peer::Unix {
                            uid: cred.uid.as_raw(),
                        },
                    )
                }),
                Listening::Tcp { listener, cookie } => match listener.accept() {
                    Ok((stream, addr)) => {
                        if let Err(e) = stream.set_nodelay(true) {
                            tracing::debug!(%e, "TCP_NODELAY");
                        }
                        Ok((
                            Transport::Tcp(Arc::new(OwnedFd::from(stream))),
                            Peer::Tcp {
                                addr,
                                cookie: cookie.clone(),
                            },
                        ))
                    }
                    Err(e) => Err(e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error)),
                },
            };
            match accepted {
                Ok((transport, peer)) => {
                    if self.clients >= self.max_clients {
                        tracing::warn!(
                            max_clients = self.max_clients,
                            peer = %peer.describe(),
                            "too many clients; connection refused"
                        );
                        continue;
                    }
                    if let Err(e) = self.admit(transport, peer) {
                        tracing::warn!(%e, "client not admitted");
                    }
                }
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR | Errno::CONNABORTED | Errno::PROTO | Errno::PERM) => {}
                Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                    tracing::warn!(
                        %e,
                        clients = self.clients,
                        "cannot accept a client (out of fds or memory); refusing new clients for {ACCEPT_BACKOFF:?}"
                    );
                    self.pause_accepting();
                    return;
                }
                Err(e) => {
                    tracing::warn!(%e, "accept failed");
                    return;
                }
            }
        }
    }

    fn pause_accepting(&mut self) {
        for l in &self.listeners {
            // Already removed: nothing to do.
            let _ = self.reactor.remove(l.fd());
        }
        self.paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
    }

    fn admit(&mut self, transport: Transport, peer: Peer) -> Result<(), LoopError> {
        let notice = Arc::new(Notice::new(self.bell.clone()));
        let client = Client::new(transport, peer, self.server.clone(), notice, self.limits);
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let token = (u64::from(generation) << 32) | (CLIENT_BASE + 2 * i as u64);
        if let Err(e) = self.reactor.add(client.socket(), token, Interest::READ) {
            self.free.push(i);
            return Err(LoopError::Reactor(e));
        }
        self.slots[i] = Some(Slot {
            client,
            generation,
            writable: false,
            ring: false,
            deadline: None,
            pending: None,
        });
        self.clients += 1;
        self.server.set_active_connections(self.clients);
        // Its AUTH deadline.
        if let Err(e) = self.update(i) {
            self.close(i, Err(e));
        }
        Ok(())
    }

    fn close(&mut self, i: usize, result: Result<(), CloseReason>) {
        let Some(s) = self.slots.get_mut(i).and_then(Option::take) else {
            return;
        };
        let _ = self.reactor.remove(s.client.socket());
        if let Some(fd) = s.client.ring_fd() {
            let _ = self.reactor.remove(fd);
        }
        s.client.log_end(&result);
        if self.record_ends {
            self.ended.push((s.client.session().client_index(), result));
        }
        // The session unlists the client and its streams as it drops.
        drop(s);
        self.free.push(i);
        self.clients -= 1;
        self.server.set_active_connections(self.clients);
    }

    fn close_all(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].is_some() {
                self.close(i, Ok(()));
            }
        }
    }
}

/// One round of a client, with a panic (a bug) turned into that client's
/// close reason instead of ending the loop and every other client.
fn serve_guarded(
    client: &mut Client,
    ev: Events,
    scratch: &mut [u8],
    spin: Duration,
) -> Result<bool, CloseReason> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        client.serve(ev, scratch, spin)
    }));
    r.unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        tracing::error!(client = client.session().client_index(), %what, "bug: serving a client panicked");
        Err(CloseReason::Panicked(what))
    })
}
