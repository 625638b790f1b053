//! The sample cache: named, immutable sounds clients upload once and play
//! many times (event sounds), and the upload streams that fill it.
//!
//! An upload ([`Upload`]) is a write-only stream on one connection: the
//! client names its length at CREATE_UPLOAD_STREAM, sends that many bytes
//! as memblocks (inline or SHM, through the same frame paths as playback
//! data), and FINISH_UPLOAD_STREAM turns them into an [`Entry`], replacing
//! one of the same name (which keeps its index). DELETE_UPLOAD_STREAM or
//! the client's disconnect discards an unfinished upload.
//!
//! **Caps.** PulseAudio bounds an entry at 16 MiB and the cache not at
//! all; srbd must bound hostile clients, so every byte an upload may bring
//! is reserved at CREATE_UPLOAD_STREAM ([`Reservation`]) against two caps:
//! [`TOTAL_BYTES`] for the whole cache (entries plus reservations) and
//! [`CLIENT_BYTES`] for what one client has reserved plus the entries it
//! uploaded (entries stay, and stay counted, after their uploader leaves:
//! the total cap bounds those). A request past either cap is refused with
//! `ERROR(TOOLARGE)` and an `info` log line; the connection stays usable.
//! Memory follows what was sent: an upload's buffer grows as data arrives.
//!
//! Entries are played by the `sample_player` module; the commands are in
//! `sample_cmds`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use srb_pulse::commands::PaError;
use srb_pulse::tagstruct::{ChannelMap, Proplist, SampleSpec};

/// Bytes the whole cache may hold: entries plus uploads in flight.
pub const TOTAL_BYTES: usize = 16 * 1024 * 1024;
/// Bytes one client may have in uploads in flight plus entries it uploaded.
pub const CLIENT_BYTES: usize = 4 * 1024 * 1024;
/// Unfinished uploads one connection may have open at once.
pub const MAX_UPLOADS: usize = 8;

/// One cached sound.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its name (unique in the cache).
    pub name: String,
    /// Sample spec of `data`.
    pub spec: SampleSpec,
    /// Channel map.
    pub map: ChannelMap,
    /// The upload stream's properties, merged with its client's.
    pub props: Proplist,
    /// The sound, whole frames; shared with the players playing it.
    pub data: Arc<[u8]>,
    /// The client that uploaded it (charged against its cap).
    pub owner: u32,
}

impl Entry {
    /// How long it plays, in µs.
    pub fn duration_usec(&self) -> u64 {
        let frame = self.spec.frame_size().unwrap_or(1).max(1) as u64;
        let frames = self.data.len() as u64 / frame;
        frames * 1_000_000 / u64::from(self.spec.rate.max(1))
    }
}

/// Why an upload's bytes were not all kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The client sent more than the length it announced.
    #[error("upload on channel {channel} overflowed: {extra} bytes past its {length}")]
    Overflow {
        /// The upload's channel.
        channel: u32,
        /// The announced length.
        length: usize,
        /// Bytes beyond it, dropped.
        extra: u64,
    },
}

/// What the cache holds and has promised.
#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<u32, Entry>,
    next_index: u32,
    /// Bytes reserved by uploads in flight, per client.
    reserved: BTreeMap<u32, usize>,
}

impl Inner {
    fn entry_bytes(&self) -> usize {
        self.entries.values().map(|e| e.data.len()).sum()
    }

    fn reserved_bytes(&self) -> usize {
        self.reserved.values().sum()
    }

    fn client_bytes(&self, client: u32) -> usize {
        let owned: usize = self
            .entries
            .values()
            .filter(|e| e.owner == client)
            .map(|e| e.data.len())
            .sum();
        owned + self.reserved.get(&client).copied().unwrap_or(0)
    }

    fn unreserve(&mut self, client: u32, bytes: usize) {
        if let Some(r) = self.reserved.get_mut(&client) {
            *r = r.saturating_sub(bytes);
            if *r == 0 {
                self.reserved.remove(&client);
            }
        }
    }
}

/// The server's sample cache.
#[derive(Debug)]
pub struct SampleCache {
    inner: Mutex<Inner>,
    total_cap: usize,
    client_cap: usize,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // Every update leaves the maps consistent before it can panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes reserved for one upload; given back when dropped (an upload
/// discarded or finished).
#[derive(Debug)]
pub struct Reservation {
    cache: Arc<SampleCache>,
    client: u32,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            lock(&self.cache.inner).unreserve(self.client, self.bytes);
        }
    }
}

/// Usage figures, for STAT and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Entries.
    pub entries: usize,
    /// Bytes in entries (STAT's `scache_size`).
    pub entry_bytes: usize,
    /// Bytes reserved by uploads in flight.
    pub reserved_bytes: usize,
}

impl SampleCache {
    /// An empty cache with the default caps ([`TOTAL_BYTES`],
    /// [`CLIENT_BYTES`]).
    pub fn new() -> Self {
        Self::with_caps(TOTAL_BYTES, CLIENT_BYTES)
    }

    /// An empty cache with these caps (bytes).
    pub fn with_caps(total: usize, per_client: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            total_cap: total,
            client_cap: per_client,
        }
    }

    /// Reserves `bytes` for an upload of `client`; `TOOLARGE` past a cap.
    pub fn reserve(self: &Arc<Self>, client: u32, bytes: usize) -> Result<Reservation, PaError> {
        let mut g = lock(&self.inner);
        let total = g.entry_bytes() + g.reserved_bytes();
        let mine = g.client_bytes(client);
        if total.saturating_add(bytes) > self.total_cap
            || mine.saturating_add(bytes) > self.client_cap
        {
            tracing::info!(
                client,
                bytes,
                cache = total,
                client_bytes = mine,
                total_cap = self.total_cap,
                client_cap = self.client_cap,
                "upload refused: sample cache cap"
            );
            return Err(PaError::TooLarge);
        }
        *g.reserved.entry(client).or_insert(0) += bytes;
        Ok(Reservation {
            cache: self.clone(),
            client,
            bytes,
        })
    }

    /// Stores a finished upload's entry, releasing its reservation in the
    /// same step; returns its index and whether it is new (false: it
    /// replaced an entry of the same name, which keeps its index).
    pub fn insert(&self, entry: Entry, mut reservation: Reservation) -> (u32, bool) {
        let mut g = lock(&self.inner);
        g.unreserve(reservation.client, reservation.bytes);
        reservation.bytes = 0;
        let old = g
            .entries
            .iter()
            .find(|(_, e)| e.name == entry.name)
            .map(|(i, _)| *i);
        match old {
            Some(i) => {
                g.entries.insert(i, entry);
                (i, false)
            }
            None => {
                let i = g.next_index;
                g.next_index = g.next_index.wrapping_add(1);
                g.entries.insert(i, entry);
                (i, true)
            }
        }
    }

    /// Removes the entry named `name`; its index (`None`: no such entry).
    /// Players already playing it keep their copy.
    pub fn remove(&self, name: &str) -> Option<u32> {
        let mut g = lock(&self.inner);
        let i = g
            .entries
            .iter()
            .find(|(_, e)| e.name == name)
            .map(|(i, _)| *i)?;
        g.entries.remove(&i);
        Some(i)
    }

    /// The entry of index `index`, or (index `0xFFFFFFFF`) named `name`.
    pub fn get(&self, index: u32, name: Option<&str>) -> Option<(u32, Entry)> {
        let g = lock(&self.inner);
        if index != crate::control::server_info::INVALID_INDEX {
            return g.entries.get(&index).map(|e| (index, e.clone()));
        }
        let name = name?;
        g.entries
            .iter()
            .find(|(_, e)| e.name == name)
            .map(|(i, e)| (*i, e.clone()))
    }

    /// Every entry, by index (the data is shared, not copied).
    pub fn entries(&self) -> Vec<(u32, Entry)> {
        lock(&self.inner)
            .entries
            .iter()
            .map(|(i, e)| (*i, e.clone()))
            .collect()
    }

    /// Current usage.
    pub fn usage(&self) -> Usage {
        let g = lock(&self.inner);
        Usage {
            entries: g.entries.len(),
            entry_bytes: g.entry_bytes(),
            reserved_bytes: g.reserved_bytes(),
        }
    }
}

impl Default for SampleCache {
    fn default() -> Self {
        Self::new()
    }
}

/// An upload stream in progress on one connection.
#[derive(Debug)]
pub struct Upload {
    /// Its channel (from the same numbering as playback streams).
    pub channel: u32,
    /// The entry's name.
    pub name: String,
    /// Sample spec.
    pub spec: SampleSpec,
    /// Channel map.
    pub map: ChannelMap,
    /// The stream's properties, merged with its client's.
    pub props: Proplist,
    /// The announced length.
    pub length: usize,
    /// What arrived so far (never more than `length`).
    pub data: Vec<u8>,
    /// Bytes sent past `length`, dropped.
    pub extra: u64,
    /// The cache bytes reserved for it.
    pub reservation: Reservation,
}

impl Upload {
    /// Appends a memblock's bytes (its seek and offset are ignored, as
    /// PulseAudio ignores them for uploads). Bytes past the announced
    /// length are dropped; the first time that happens, the named error.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        let room = self.length - self.data.len();
        let keep = bytes.len().min(room);
        self.data.extend_from_slice(&bytes[..keep]);
        let dropped = (bytes.len() - keep) as u64;
        if dropped == 0 {
            return Ok(());
        }
        let first = self.extra == 0;
        self.extra += dropped;
        if first {
            Err(UploadError::Overflow {
                channel: self.channel,
                length: self.length,
                extra: self.extra,
            })
        } else {
            Ok(())
        }
    }

    /// The entry this upload makes, once finished: `TOOLARGE` if the
    /// client sent more than it announced, `INVALID` if it sent no whole
    /// frame. A short upload keeps the whole frames that arrived (as
    /// PulseAudio keeps what arrived).
    pub fn finish(mut self, owner: u32) -> Result<(Entry, Reservation), PaError> {
        if self.extra > 0 {
            return Err(PaError::TooLarge);
        }
        let frame = self.spec.frame_size().unwrap_or(1).max(1);
        self.data.truncate(self.data.len() / frame * frame);
        if self.data.is_empty() {
            return Err(PaError::Invalid);
        }
        let entry = Entry {
            name: self.name,
            spec: self.spec,
            map: self.map,
            props: self.props,
            data: Arc::from(self.data.into_boxed_slice()),
            owner,
        };
        Ok((entry, self.reservation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use srb_pulse::sample::SampleFormat;

    fn cache(total: usize, per_client: usize) -> Arc<SampleCache> {
        Arc::new(SampleCache::with_caps(total, per_client))
    }

    fn upload(c: &Arc<SampleCache>, client: u32, name: &str, length: usize) -> Upload {
        Upload {
            channel: 0,
            name: name.into(),
            spec: SampleSpec {
                format: SampleFormat::S16Le,
                channels: 2,
                rate: 48_000,
            },
            map: ChannelMap::new(&[1, 2]).unwrap(),
            props: Proplist::new(),
            length,
            data: Vec::new(),
            extra: 0,
            reservation: c.reserve(client, length).unwrap(),
        }
    }

    #[test]
    fn caps_count_reservations_and_entries_and_free_on_drop() {
        let c = cache(100, 40);
        let u = upload(&c, 1, "a", 40);
        assert_eq!(c.reserve(1, 4).err(), Some(PaError::TooLarge), "client cap");
        let v = upload(&c, 2, "b", 40);
        assert_eq!(c.reserve(3, 24).err(), Some(PaError::TooLarge), "total cap");
        drop(v);
        assert_eq!(c.usage().reserved_bytes, 40, "a dropped upload gives back");
        let mut u = u;
        u.push(&[1; 40]).unwrap();
        let (e, r) = u.finish(1).unwrap();
        assert_eq!(c.insert(e, r), (0, true));
        assert_eq!(
            c.usage(),
            Usage {
                entries: 1,
                entry_bytes: 40,
                reserved_bytes: 0,
            }
        );
        // The entry stays charged to its uploader.
        assert_eq!(c.reserve(1, 4).err(), Some(PaError::TooLarge));
        assert_eq!(c.remove("a"), Some(0));
        assert_eq!(c.remove("a"), None);
        assert!(c.reserve(1, 40).is_ok());
    }

    #[test]
    fn same_name_replaces_and_keeps_the_index() {
        let c = cache(1000, 1000);
        for (len, want) in [(8, (0, true)), (4, (0, false))] {
            let mut u = upload(&c, 1, "bell", len);
            u.push(&vec![7; len]).unwrap();
            let (e, r) = u.finish(1).unwrap();
            assert_eq!(c.insert(e, r), want);
        }
        let mut u = upload(&c, 1, "other", 4);
        u.push(&[0; 4]).unwrap();
        let (e, r) = u.finish(1).unwrap();
        assert_eq!(c.insert(e, r), (1, true));
        assert_eq!(c.get(0, None).unwrap().1.data.len(), 4);
        assert_eq!(c.get(u32::MAX, Some("other")).unwrap().0, 1);
        assert!(c.get(u32::MAX, Some("nope")).is_none());
        assert!(c.get(u32::MAX, None).is_none());
        assert_eq!(c.usage().entry_bytes, 8);
    }

    #[test]
    fn overflow_is_named_once_and_fails_the_finish() {
        let c = cache(1000, 1000);
        let mut u = upload(&c, 1, "x", 8);
        u.push(&[1; 6]).unwrap();
        assert_eq!(
            u.push(&[2; 6]),
            Err(UploadError::Overflow {
                channel: 0,
                length: 8,
                extra: 4
            })
        );
        assert_eq!(u.push(&[3; 4]), Ok(()), "named once");
        assert_eq!((u.data.len(), u.extra), (8, 8));
        assert_eq!(u.finish(1).err(), Some(PaError::TooLarge));
        assert_eq!(c.usage().reserved_bytes, 0);
        // Short: whole frames kept; nothing: refused.
        let mut u = upload(&c, 1, "y", 16);
        u.push(&[1; 6]).unwrap();
        assert_eq!(u.finish(1).unwrap().0.data.len(), 4);
        let u = upload(&c, 1, "z", 16);
        assert_eq!(u.finish(1).err(), Some(PaError::Invalid));
    }

    #[test]
    fn duration() {
        let c = cache(1_000_000, 1_000_000);
        let mut u = upload(&c, 1, "d", 19_200);
        u.push(&[0; 19_200]).unwrap();
        assert_eq!(u.finish(1).unwrap().0.duration_usec(), 100_000);
    }
}
