//! Playback streams, connection side: the CREATE_PLAYBACK_STREAM request
//! (§6.5), its validation and reply, and the flow control of §7.3: the
//! server asks for data with REQUEST, the client never writes more than it
//! was asked for, so the server owns the queue depth.
//!
//! Per stream the connection keeps `written` (bytes that entered the queue)
//! and `outstanding` (bytes requested but not yet received). The queue is
//! a ring the mixer reads, sized by [`ring_capacity`] (`tlength` and two
//! `minreq`, not `maxlength`), and behind it a backlog on the control side
//! for whatever a client sends beyond that, up to `maxlength`: memory
//! follows what the client sent. After every
//! write and every mixer wake-up, `missing = tlength - queued -
//! outstanding`; a REQUEST for it goes out when it reaches `minreq` (or at
//! once while prebuffering).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::stream::PlaybackShared;
use srb_pulse::attr::PlaybackAttr;
use srb_pulse::commands::{Command, NO_TAG};
use srb_pulse::tagstruct::{SampleSpec, TagWriter};

/// Most DRAIN requests one stream may have pending.
pub const MAX_PENDING_DRAINS: usize = 16;

pub use srb_pulse::request::stream::{CreatePlayback, ENCODING_PCM, MAX_FORMATS};

/// What the connection keeps per playback stream.
pub struct Playback {
    /// The channel id of this stream on its connection.
    pub channel: u32,
    /// Sample spec.
    pub spec: SampleSpec,
    /// The final buffer attributes.
    pub attr: PlaybackAttr,
    /// Whether UPDATE_PLAYBACK_STREAM_SAMPLE_RATE is allowed.
    pub variable_rate: bool,
    /// Shared with the mixer.
    pub shared: Arc<PlaybackShared>,
    ring: rtrb::Producer<u8>,
    /// Bytes that entered the ring.
    written: u64,
    /// What the client sent beyond the ring's room, oldest first: moved
    /// into the ring as the mixer frees it. Memory grows with what the
    /// client actually sent (never past `maxlength` in all), not with
    /// `maxlength`.
    backlog: std::collections::VecDeque<u8>,
    outstanding: i64,
    started_seen: u32,
    underflows_seen: u32,
    /// Pending drains: the reply tag and, once every byte sent before the
    /// drain is in the ring, the mixer's drain sequence number.
    drains: Vec<(u32, Option<u32>)>,
    /// Counts the ring in `pactl stat` while the stream lives.
    pub buffer: Option<crate::engine::buffers::BufferLease>,
    /// The shared `moved` counter as last told to the client
    /// (STREAM_MOVED).
    pub moved_seen: u32,
}

/// The ring a playback stream gets: room for `tlength` plus two `minreq`
/// (what a client that follows REQUESTs has in flight), at least
/// [`MIN_RING`], at most `maxlength`. A client that sends more (it may, up
/// to `maxlength`) has the rest kept in its stream's backlog.
pub fn ring_capacity(attr: &PlaybackAttr) -> usize {
    let want = u64::from(attr.tlength) + 2 * u64::from(attr.minreq);
    want.max(MIN_RING as u64)
        .min(u64::from(attr.maxlength).max(1)) as usize
}

/// The smallest playback ring.
pub const MIN_RING: usize = 16 * 1024;

impl std::fmt::Debug for Playback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playback")
            .field("channel", &self.channel)
            .field("index", &self.shared.index)
            .field("attr", &self.attr)
            .field("written", &self.written)
            .finish()
    }
}

fn notify(cmd: Command, channel: u32) -> TagWriter {
    let mut w = TagWriter::command(cmd as u32, NO_TAG);
    w.put_u32(channel);
    w
}

impl Playback {
    /// A stream whose ring (capacity `attr.maxlength`) feeds the mixer
    /// through `ring`'s consumer; `missing` of the reply is `attr.tlength`.
    pub fn new(
        channel: u32,
        spec: SampleSpec,
        attr: PlaybackAttr,
        variable_rate: bool,
        shared: Arc<PlaybackShared>,
        ring: rtrb::Producer<u8>,
    ) -> Self {
        Self {
            channel,
            spec,
            attr,
            variable_rate,
            shared,
            ring,
            written: 0,
            backlog: std::collections::VecDeque::new(),
            outstanding: i64::from(attr.tlength),
            started_seen: 0,
            underflows_seen: 0,
            drains: Vec::new(),
            buffer: None,
            moved_seen: 0,
        }
    }

    /// Bytes that entered the queue (the write index): the ring's and the
    /// backlog's.
    pub fn written(&self) -> u64 {
        self.written + self.backlog.len() as u64
    }

    /// Stores the write index where other clients' introspection reads it.
    fn publish_written(&self) {
        // Relaxed: a figure for info replies, not a hand-over.
        self.shared.written.store(self.written(), Ordering::Relaxed);
    }

    /// Bytes waiting in the control side's backlog.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Moves what the backlog holds into the ring as far as it has room;
    /// then starts the drains that waited for it.
    fn pump(&mut self) {
        while !self.backlog.is_empty() {
            let (a, _) = self.backlog.as_slices();
            let n = {
                let (done, _) = self.ring.push_partial_slice(a);
                done.len()
            };
            if n == 0 {
                break;
            }
            self.written += n as u64;
            self.backlog.drain(..n);
        }
        self.publish_written();
        if self.backlog.is_empty() {
            if self.backlog.capacity() > 0 {
                self.backlog = std::collections::VecDeque::new();
            }
            for d in self.drains.iter_mut().filter(|d| d.1.is_none()) {
                // Release: the mixer sees every byte written before the
                // drain.
                d.1 = Some(self.shared.drain_seq.fetch_add(1, Ordering::Release) + 1);
            }
        }
    }

    /// Bytes the mixer consumed (the read index).
    pub fn read_index(&self) -> u64 {
        // Acquire pairs with the mixer's Release store.
        self.shared.read_index.load(Ordering::Acquire)
    }

    /// Queues client audio. Whatever does not fit in `maxlength` is
    /// dropped; returns an OVERFLOW notification then.
    pub fn push(&mut self, data: &[u8]) -> Option<TagWriter> {
        self.push_counted(data, data.len())
    }

    /// Queues `gap` bytes of silence (a seek past the write index); an
    /// OVERFLOW notification if they did not fit. They count as sent.
    pub fn push_silence(&mut self, gap: u64) -> Option<TagWriter> {
        let byte = self.spec.format.silence_byte();
        let mut left = gap;
        let chunk = [byte; 4096];
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if let Some(w) = self.push(&chunk[..n]) {
                return Some(w);
            }
            left -= n as u64;
        }
        None
    }

    /// [`Playback::push`] of `data`, counted as `sent` bytes against what
    /// was requested (a rewrite sends more than it adds).
    pub fn push_counted(&mut self, data: &[u8], sent: usize) -> Option<TagWriter> {
        self.outstanding -= sent as i64;
        let rest = if self.backlog.is_empty() {
            let (done, rest) = self.ring.push_partial_slice(data);
            self.written += done.len() as u64;
            rest
        } else {
            data
        };
        // At most `maxlength` queued in all (§7.4); the rest is dropped.
        let queued = self.written().saturating_sub(self.read_index());
        let room = u64::from(self.attr.maxlength).saturating_sub(queued) as usize;
        let keep = rest.len().min(room);
        self.backlog.extend(&rest[..keep]);
        let rest = &rest[keep..];
        self.publish_written();
        if rest.is_empty() {
            None
        } else {
            tracing::debug!(
                channel = self.channel,
                dropped = rest.len(),
                "playback overflow"
            );
            Some(notify(Command::Overflow, self.channel))
        }
    }

    /// FLUSH: everything queued so far is dropped.
    pub fn flush(&mut self) {
        self.backlog.clear();
        // Release: the mixer reads the ring up to here after seeing it.
        self.shared.flush_to.store(self.written, Ordering::Release);
        self.publish_written();
    }

    /// DRAIN: `tag` is answered once all queued audio was played. At most
    /// [`MAX_PENDING_DRAINS`] may wait; returns false (refused) beyond.
    pub fn drain(&mut self, tag: u32) -> bool {
        if self.drains.len() >= MAX_PENDING_DRAINS {
            return false;
        }
        // Started once the backlog is in the ring (see `pump`).
        self.drains.push((tag, None));
        self.pump();
        true
    }

    /// Applies new buffer attributes (the ring keeps its capacity, so
    /// `maxlength` cannot grow past the original).
    pub fn set_attr(&mut self, mut a: PlaybackAttr) {
        let cap = self.attr.maxlength;
        a.maxlength = a.maxlength.min(cap);
        a.tlength = a.tlength.min(a.maxlength);
        a.prebuf = a.prebuf.min(a.tlength);
        a.minreq = a.minreq.min(a.tlength);
        // Relaxed: read once per period by the mixer. Never more than the
        // ring holds, or the stream would never start.
        let ring = self.ring.buffer().capacity() as u32;
        self.shared
            .prebuf
            .store(a.prebuf.min(ring), Ordering::Relaxed);
        self.attr = a;
    }

    /// The notifications and replies due now: STARTED, UNDERFLOW, drain
    /// REPLYs, then a REQUEST if one is due.
    pub fn poll(&mut self, version: u32, out: &mut Vec<TagWriter>) {
        self.pump();
        let s = &self.shared;
        // Acquire pairs with the mixer's Release increments.
        let started = s.started.load(Ordering::Acquire);
        if started != self.started_seen {
            self.started_seen = started;
            if version >= 13 {
                out.push(notify(Command::Started, self.channel));
            }
        }
        let underflows = s.underflows.load(Ordering::Acquire);
        if underflows != self.underflows_seen {
            self.underflows_seen = underflows;
            let mut w = notify(Command::Underflow, self.channel);
            if version >= 23 {
                let at = s.underflow_at.load(Ordering::Relaxed);
                w.put_s64(i64::try_from(at).unwrap_or(i64::MAX));
            }
            out.push(w);
        }
        let drained = s.drained_seq.load(Ordering::Acquire);
        self.drains.retain(|&(tag, seq)| {
            let Some(seq) = seq else {
                return true;
            };
            // Wrapping comparison: drained has reached seq.
            let done = drained.wrapping_sub(seq) as i32 >= 0 && drained != 0;
            if done {
                out.push(TagWriter::command(Command::Reply as u32, tag));
            }
            !done
        });
        if let Some(w) = self.request() {
            out.push(w);
        }
    }

    /// A REQUEST for the missing bytes if one is due (§7.3).
    fn request(&mut self) -> Option<TagWriter> {
        let queued = self.written().saturating_sub(self.read_index());
        let missing = i64::from(self.attr.tlength) - queued as i64 - self.outstanding;
        let prebuffering = self.shared.prebuffering.load(Ordering::Relaxed);
        if missing <= 0 || (missing < i64::from(self.attr.minreq) && !prebuffering) {
            return None;
        }
        let n = u32::try_from(missing).unwrap_or(u32::MAX);
        self.outstanding += i64::from(n);
        let mut w = notify(Command::Request, self.channel);
        w.put_u32(n);
        Some(w)
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        // Relaxed: the mixer drops its end at its next period.
        self.shared.closed.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::notice::{Bell, Notice};
    use srb_pulse::tagstruct::TagReader;

    fn stream(tlength: u32, minreq: u32, prebuf: u32) -> (Playback, rtrb::Consumer<u8>) {
        let attr = PlaybackAttr {
            maxlength: 4096,
            tlength,
            prebuf,
            minreq,
        };
        let shared = Arc::new(PlaybackShared::new(
            0,
            Arc::new(Notice::new(Arc::new(Bell::new().unwrap()))),
            prebuf,
            false,
        ));
        let (p, c) = rtrb::RingBuffer::new(attr.maxlength as usize);
        let spec = SampleSpec {
            format: srb_pulse::sample::SampleFormat::S16Le,
            channels: 2,
            rate: 48_000,
        };
        (Playback::new(7, spec, attr, false, shared, p), c)
    }

    #[test]
    fn the_ring_follows_tlength_and_a_backlog_holds_the_rest_up_to_maxlength() {
        let attr = PlaybackAttr {
            maxlength: 4 << 20,
            tlength: 1920,
            prebuf: 1920,
            minreq: 480,
        };
        assert_eq!(ring_capacity(&attr), MIN_RING);
        let big = PlaybackAttr {
            tlength: 384_000,
            ..attr
        };
        assert_eq!(ring_capacity(&big), 384_000 + 960);
        let small = PlaybackAttr {
            maxlength: 1000,
            tlength: 1000,
            prebuf: 0,
            minreq: 100,
        };
        assert_eq!(ring_capacity(&small), 1000);

        // A 1 KiB ring with maxlength 4 KiB: 3 KiB wait in the backlog.
        let shared = Arc::new(PlaybackShared::new(
            0,
            Arc::new(Notice::new(Arc::new(Bell::new().unwrap()))),
            0,
            false,
        ));
        let a = PlaybackAttr {
            maxlength: 4096,
            tlength: 1024,
            prebuf: 0,
            minreq: 256,
        };
        let (prod, mut cons) = rtrb::RingBuffer::new(1024);
        let spec = SampleSpec {
            format: srb_pulse::sample::SampleFormat::S16Le,
            channels: 2,
            rate: 48_000,
        };
        let mut p = Playback::new(1, spec, a, false, shared.clone(), prod);
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        // 4096 fit (ring + backlog), 904 overflow.
        assert!(p.push(&data).is_some(), "OVERFLOW past maxlength");
        assert_eq!((p.written(), p.backlog()), (4096, 3072));
        // A drain waits for the backlog to be in the ring.
        assert!(p.drain(9));
        assert_eq!(shared.drain_seq.load(Ordering::Relaxed), 0);
        let mut got = Vec::new();
        let mut out = Vec::new();
        while got.len() < 4096 {
            let n = cons.slots();
            let chunk = cons.read_chunk(n).unwrap();
            got.extend(chunk);
            shared.read_index.store(got.len() as u64, Ordering::Relaxed);
            p.poll(35, &mut out);
        }
        assert_eq!(
            &got[..],
            &data[..4096],
            "order kept across ring and backlog"
        );
        assert_eq!(p.backlog(), 0);
        assert_eq!(shared.drain_seq.load(Ordering::Relaxed), 1, "drain started");
        // FLUSH drops the backlog too.
        p.push(&data[..3000]);
        assert!(p.backlog() > 0);
        p.flush();
        assert_eq!(p.backlog(), 0);
    }

    fn commands(out: &[TagWriter]) -> Vec<(u32, Vec<u32>)> {
        out.iter()
            .map(|w| {
                let mut r = TagReader::new(w.as_bytes());
                let cmd = r.get_u32().unwrap();
                let _tag = r.get_u32().unwrap();
                let mut args = Vec::new();
                while let Ok(v) = r.get_u32() {
                    args.push(v);
                }
                (cmd, args)
            })
            .collect()
    }

    #[test]
    fn requests_refill_to_tlength_in_minreq_steps() {
        let (mut p, mut c) = stream(1000, 200, 0);
        p.shared.prebuffering.store(false, Ordering::Relaxed);
        let mut out = Vec::new();
        // Nothing is missing: the reply's `missing` covered tlength.
        p.poll(35, &mut out);
        assert!(out.is_empty());
        assert!(p.push(&[1; 1000]).is_none());
        p.poll(35, &mut out);
        assert!(out.is_empty());
        // The mixer consumes 100: below minreq, no request.
        c.read_chunk(100).unwrap().commit_all();
        p.shared.read_index.store(100, Ordering::Relaxed);
        p.poll(35, &mut out);
        assert!(out.is_empty());
        // 250 consumed: one REQUEST for exactly that.
        c.read_chunk(150).unwrap().commit_all();
        p.shared.read_index.store(250, Ordering::Relaxed);
        p.poll(35, &mut out);
        assert_eq!(
            commands(&out),
            vec![(Command::Request as u32, vec![7, 250])]
        );
        out.clear();
        p.poll(35, &mut out);
        assert!(out.is_empty(), "not requested twice");
    }

    #[test]
    fn overflow_drops_the_excess_and_notifies() {
        let (mut p, _c) = stream(1000, 200, 0);
        assert!(p.push(&[0; 4000]).is_none());
        let w = p.push(&[0; 200]).expect("overflow");
        assert_eq!(commands(&[w]), vec![(Command::Overflow as u32, vec![7])]);
        assert_eq!(p.written(), 4096);
    }

    #[test]
    fn drain_reply_waits_for_the_mixer() {
        let (mut p, _c) = stream(1000, 200, 0);
        assert!(p.drain(41));
        let mut out = Vec::new();
        p.poll(35, &mut out);
        assert!(commands(&out)
            .iter()
            .all(|(c, _)| *c != Command::Reply as u32));
        let seq = p.shared.drain_seq.load(Ordering::Relaxed);
        p.shared.drained_seq.store(seq, Ordering::Relaxed);
        out.clear();
        p.poll(35, &mut out);
        let mut r = TagReader::new(out[0].as_bytes());
        assert_eq!(r.get_u32().unwrap(), Command::Reply as u32);
        assert_eq!(r.get_u32().unwrap(), 41);
    }

    #[test]
    fn started_and_underflow_are_forwarded_once() {
        let (mut p, _c) = stream(1000, 200, 0);
        p.shared.started.store(1, Ordering::Relaxed);
        p.shared.underflows.store(1, Ordering::Relaxed);
        p.shared.underflow_at.store(96, Ordering::Relaxed);
        let mut out = Vec::new();
        p.poll(35, &mut out);
        let cmds = commands(&out);
        assert_eq!(cmds[0], (Command::Started as u32, vec![7]));
        assert_eq!(cmds[1].0, Command::Underflow as u32);
        let mut r = TagReader::new(out[1].as_bytes());
        r.get_u32().unwrap();
        r.get_u32().unwrap();
        r.get_u32().unwrap();
        assert_eq!(r.get_s64().unwrap(), 96);
        out.clear();
        p.poll(35, &mut out);
        assert!(out.iter().all(|w| {
            let c = commands(std::slice::from_ref(w))[0].0;
            c != Command::Started as u32 && c != Command::Underflow as u32
        }));
    }
}
