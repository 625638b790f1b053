//! PLAY_SAMPLE's sink inputs: a cached entry played once into the sink,
//! mixed with the other streams, as a server-owned sink input (no client;
//! listed while it plays, with its `new` and `remove` events).
//!
//! The mixer sees an ordinary playback stream ([`PlaybackInput`]): a ring
//! it reads each period. The control loop tops the ring up from the
//! entry's shared bytes as room appears (the mixer raises the players'
//! [`Notice`] every period it plays), asks for a
//! drain once every byte is in, and unlists the player when the mixer
//! reports the drain done, or at once when it was killed. The mixer never
//! allocates or waits for a player; the entry's bytes are never copied
//! whole (a removed entry keeps playing from its shared copy).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use srb_pulse::commands::PaError;
use srb_pulse::request::sample::VOLUME_INVALID;
use srb_pulse::tagstruct::{CVolume, Proplist, VOLUME_NORM};

use crate::control::introspect::stream_gains;
use crate::control::registry::SinkInput;
use crate::control::sample_cache::Entry;
use crate::control::server_info::INVALID_INDEX;
use crate::control::sinks::SinkEntry;
use crate::engine::audio::convert::PlaybackConverter;
use crate::engine::mixer::PlaybackInput;
use crate::engine::notice::{Bell, Notice};
use crate::engine::stream::PlaybackShared;
use crate::Server;

/// Samples playing at once, server-wide (each is a mixer stream).
pub const MAX_PLAYERS: usize = 32;
/// The most a player's ring holds (the rest waits in the entry).
pub const PLAYER_RING: usize = 64 * 1024;

/// One entry playing.
#[derive(Debug)]
pub struct Player {
    data: Arc<[u8]>,
    pos: usize,
    ring: rtrb::Producer<u8>,
    shared: Arc<PlaybackShared>,
    drain: Option<u32>,
}

impl Player {
    /// Moves what fits of the rest of the entry into the ring; once all
    /// of it is in, starts the drain. Whether the player is finished
    /// (drained, or killed).
    fn pump(&mut self) -> bool {
        // Relaxed: set by KILL_SINK_INPUT on this thread.
        if self.shared.killed.load(Ordering::Relaxed) {
            return true;
        }
        let rest = &self.data[self.pos..];
        if !rest.is_empty() {
            let (done, _) = self.ring.push_partial_slice(rest);
            self.pos += done.len();
        }
        if self.pos == self.data.len() && self.drain.is_none() {
            // Release: the mixer sees every byte pushed before the drain.
            self.drain = Some(self.shared.drain_seq.fetch_add(1, Ordering::Release) + 1);
        }
        // Acquire pairs with the mixer's Release store.
        let drained = self.shared.drained_seq.load(Ordering::Acquire);
        self.drain.is_some_and(|seq| drained == seq)
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        // Relaxed: the mixer drops its end at its next period.
        self.shared.closed.store(true, Ordering::Relaxed);
    }
}

/// The samples playing now, server-wide.
#[derive(Debug)]
pub struct SamplePlayers {
    players: Mutex<Vec<Player>>,
    /// Raised by the mixer (a player's ring has room, a drain finished)
    /// and by KILL_SINK_INPUT of a player: the control loop then calls
    /// [`SamplePlayers::poll`].
    notice: Arc<Notice>,
}

fn lock(m: &Mutex<Vec<Player>>) -> MutexGuard<'_, Vec<Player>> {
    // Only pushes and removals: a panicked holder left nothing half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SamplePlayers {
    /// None playing; they wake the control loop through `bell`.
    pub fn new(bell: Arc<Bell>) -> Self {
        Self {
            players: Mutex::new(Vec::new()),
            notice: Arc::new(Notice::new(bell)),
        }
    }

    /// The players' flag for the control loop.
    pub fn notice(&self) -> &Arc<Notice> {
        &self.notice
    }

    /// How many play now.
    pub fn len(&self) -> usize {
        lock(&self.players).len()
    }

    /// Whether none plays.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Plays `entry` on `sink` at `volume` (one value for every channel;
    /// [`VOLUME_INVALID`]: full volume, the entry having none of its own)
    /// with `props` over the entry's; the new sink input's index.
    pub fn play(
        &self,
        server: &Server,
        sink: &SinkEntry,
        entry: &Entry,
        volume: u32,
        props: &Proplist,
    ) -> Result<u32, PaError> {
        if self.len() >= MAX_PLAYERS {
            tracing::info!(
                sample = %entry.name,
                "PLAY_SAMPLE refused: {MAX_PLAYERS} samples already playing"
            );
            return Err(PaError::TooLarge);
        }
        let engine = sink.engine.clone();
        let sink_index = sink.index();
        let sink = engine.config();
        let converter = PlaybackConverter::new(
            entry.spec,
            &entry.map,
            sink.spec.rate,
            &sink.map,
            sink.period_frames,
        )
        .map_err(|e| {
            tracing::warn!(%e, sample = %entry.name, "no converter for sample");
            PaError::NotSupported
        })?;
        let v = if volume == VOLUME_INVALID {
            VOLUME_NORM
        } else {
            volume
        };
        let volume = CVolume::new(&vec![v; usize::from(entry.spec.channels)])
            .map_err(|_| PaError::Invalid)?;
        // PulseAudio's sink input properties: the name as media.name and
        // event.id, then the entry's, then the request's.
        let mut merged = Proplist::new();
        let _ = merged.set_str("media.name", &entry.name);
        let _ = merged.set_str("event.id", &entry.name);
        for (k, val) in entry.props.entries().iter().chain(props.entries()) {
            let _ = merged.set(k, val);
        }
        let index = server.next_sink_input();
        let shared = Arc::new(PlaybackShared::new(index, self.notice.clone(), 0, false));
        shared.gains.set(&stream_gains(&volume, sink.spec.channels));
        let (producer, consumer) = rtrb::RingBuffer::new(entry.data.len().min(PLAYER_RING));
        let mut player = Player {
            data: entry.data.clone(),
            pos: 0,
            ring: producer,
            shared: shared.clone(),
            drain: None,
        };
        player.pump();
        server.registry.add_sink_input(
            index,
            SinkInput {
                client: INVALID_INDEX,
                spec: entry.spec,
                map: entry.map.clone(),
                volume,
                muted: false,
                props: merged,
                shared: shared.clone(),
                sink: sink_index,
                pinned: false,
            },
        );
        engine.add_playback(PlaybackInput {
            shared,
            ring: consumer,
            converter,
        });
        tracing::info!(sample = %entry.name, index, "sample playing");
        lock(&self.players).push(player);
        Ok(index)
    }

    /// Tops up every player and unlists the finished ones (the control loop
    /// calls this when the players' notice was raised).
    pub fn poll(&self, server: &Server) {
        let done: Vec<Player> = {
            let mut players = lock(&self.players);
            let mut done = Vec::new();
            let mut i = 0;
            while i < players.len() {
                if players[i].pump() {
                    done.push(players.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            done
        };
        for p in done {
            let index = p.shared.index;
            drop(p);
            server.registry.remove_sink_input(index);
            tracing::debug!(index, "sample finished");
        }
    }
}
