//! # srb-linux: the Linux host of srb
//!
//! Binds [`srb_core`]'s shared ring-buffer channel to Linux: sealed memfd
//! blocks, eventfd and futex implementations of [`srb_core::Notify`] and
//! [`srb_core::Wait`], fd passing with `SCM_RIGHTS`/`SCM_CREDENTIALS`, the
//! private runtime-directory socket, a versioned handshake that joins two
//! processes with a [`channel::Channel`], and the epoll event loop
//! ([`reactor`]) that a server runs every connection on. It is transport
//! only: the PulseAudio protocol is `srb-pulse` (`host-linux/pulse/`) and
//! the daemon is `srbd` (`host-linux/srbd/`); both sit on top of this crate
//! and nothing here knows about them.
//!
//! ## Where things live
//!
//! | module | what it holds |
//! |---|---|
//! | [`memfd`] | [`memfd::SealedMemfd`]: create (CLOEXEC, ALLOW_SEALING, NOEXEC_SEAL with fallback; sealed SHRINK, GROW, SEAL) and import-check peer memfds ([`memfd::ImportError`]) |
//! | [`mapping`] | [`mapping::SharedMapping`]: one shared mapping, `Arc`-owned, unmapped on last drop; hands out `Block`s and atomic words, never references |
//! | [`pool`] | [`pool::UnsealedPool`]: `pread`-only access to unsealed peer memfds (libpulse's pool), so truncation gives an error, not SIGBUS |
//! | [`fdkind`] | [`fdkind::FdKind`] and [`fdkind::classify`]: what a received fd really is |
//! | [`timer`] | [`timer::periodic`]: the timerfd clock of srbd's sink and of `dsp-sim` |
//! | [`signal`] | [`signal::NotifyError`], [`signal::WaitError`] and [`signal::PeerWatch`] (hang-up detection), shared by both signal kinds |
//! | [`eventfd`] | [`eventfd::Eventfd`] (`Notify`) and [`eventfd::EventfdWait`] (`Wait`, pollable): blocking counter-mode eventfds, read with `RWF_NOWAIT` |
//! | [`futex`] | [`futex::FutexNotify`] and [`futex::FutexWait`]: a shared (not private) futex counter word in the mapping; not pollable |
//! | [`scm`] | [`scm::ScmStream`]: unix stream with fds and credentials, exact control buffers, per-connection fd FIFO, `MSG_CTRUNC` handling |
//! | [`frame`] | the control frame format (`kind`, `length`, payload) read one frame at a time so fds belong to exactly one frame |
//! | [`runtime_dir`] | [`runtime_dir::RuntimeDir`]: `$XDG_RUNTIME_DIR/srb` or `/tmp/srb-<uid>`, 0700 and ours or refused |
//! | [`listener`] | [`listener::Listener`]: lock file, stale socket removal, `SO_PEERCRED` on accept, systemd socket activation; [`listener::connect`] |
//! | [`handshake`] | [`handshake::create`] / [`handshake::accept`]: the versioned offer (layout pa/srb, signal eventfd/futex, lengths, capacity) and its checks |
//! | [`channel`] | [`channel::Channel`]: one side's channel owning mapping, signals and socket; blocking helpers that end in `PeerGone` |
//! | [`reactor`] | [`reactor::Reactor`]: the epoll event loop (tokens, level-triggered readiness); [`reactor::Alarm`]: one timerfd for all of a loop's deadlines |
//! | [`state_page`] | [`state_page::StatePageWriter`] / [`state_page::StatePage`]: srbd's read-only, seqlocked page of live figures, and its `control` socket ([`state_page::StatePageServer`]) |
//! | [`echo`] | the checksummed echo exchange used by the `srb-echo` peer binary and the tests |
//!
//! ## Rules this crate keeps
//!
//! - **Every syscall goes through `rustix`**; there is no hand-written libc
//!   call.
//! - **Shared memory and socket bytes are hostile input.** Peer-writable
//!   memory is reached only through raw pointers with atomic or volatile
//!   operations (or by srb-core under its own rules); memfds we map are
//!   sealed against shrinking so a peer cannot SIGBUS us; unsealed peer
//!   memory is only `pread`.
//! - **Every received fd is an `OwnedFd` at once**; its kind and count are
//!   checked against what the frame takes, and whatever nobody claims is
//!   closed. `MSG_CTRUNC` is an error that closes every fd received.
//! - **No hang on a vanished peer**: blocking waits watch the connection
//!   socket and return `PeerGone`.
//!
//! ## Example: a channel between two threads over a socket pair
//!
//! ```
//! use srb_linux::handshake::{self, ChannelConfig, LayoutKind, SignalKind};
//! use srb_linux::scm::ScmStream;
//!
//! let (a, b) = ScmStream::pair().unwrap();
//! let cfg = ChannelConfig { layout: LayoutKind::Srb, signal: SignalKind::Eventfd, capacity: 4096 };
//! let attacher = std::thread::spawn(move || {
//!     let mut ch = handshake::accept(b, None).unwrap();
//!     let mut buf = [0u8; 5];
//!     ch.read_exact(&mut buf, None).unwrap();
//!     buf
//! });
//! let mut ch = handshake::create(a, cfg, None).unwrap();
//! ch.write_all(b"hello", None).unwrap();
//! assert_eq!(&attacher.join().unwrap(), b"hello");
//! ```
#![warn(missing_docs)]

pub mod channel;
pub mod echo;
pub mod eventfd;
pub mod fdkind;
pub mod frame;
pub mod futex;
pub mod handshake;
pub mod listener;
pub mod mapping;
pub mod memfd;
pub mod pool;
pub mod reactor;
pub mod runtime_dir;
pub mod scm;
pub mod signal;
pub mod state_page;
pub mod timer;
