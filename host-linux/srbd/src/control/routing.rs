//! Where streams play and record: adding and removing sinks, moving a
//! sink input or source output to another device (MOVE_SINK_INPUT /
//! MOVE_SOURCE_OUTPUT), and the default sink and source, whose change
//! moves every stream that did not ask for a device (PulseAudio 15+).
//!
//! A move hands the stream's queue from one mixer to the other through
//! their command channels ([`crate::engine::mixer::Engine::move_playback`]):
//! the old mixer releases it at a period boundary, the new one adopts it
//! at its next, so nothing the client sent is lost or played twice and
//! the gap is at most one period. A source output moved to a sink of
//! another shape gets a new ring there instead, which its connection
//! switches to once the old one is drained (`move_across_shapes`); a
//! `monitor_stream` tap follows its input, and a loopback's output moves
//! between sinks of the same shape only. Events follow PulseAudio 16.1's
//! (observed with `pactl subscribe`): the stream's `change`, the sinks'
//! state `change`s; a default change posts the server's `change`; a sink
//! removed moves its streams to the default sink, then posts `remove` on
//! its monitor and on itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::control::introspect::stream_gains;
use crate::control::registry::{event, facility, SourceOutput};
use crate::control::server_info::INVALID_INDEX;
use crate::control::sinks::SinkEntry;
use crate::engine::audio::convert::PlaybackConverter;
use crate::engine::audio::peaks::Capture;
use crate::engine::state_page::PageSink;
use crate::engine::stream::NextRing;
use crate::Server;
use srb_pulse::commands::PaError;

/// Whether two sinks mix in the same shape (a stream's converter and a
/// record ring serve both unchanged).
fn same_shape(a: &SinkEntry, b: &SinkEntry) -> bool {
    let (x, y) = (a.engine.config(), b.engine.config());
    x.spec == y.spec && x.map == y.map && x.period_frames == y.period_frames
}

/// Moves record stream `index` (entry `o`) from `from` to `to`, which mix
/// in different shapes: a new ring on `to`, queued for the stream's
/// connection, then `from` drops its end (in that order, so the connection
/// finds the new ring when it learns the old one is done).
fn move_across_shapes(
    index: u32,
    o: &mut SourceOutput,
    from: &SinkEntry,
    to: &SinkEntry,
) -> Result<(), PaError> {
    if o.client == INVALID_INDEX {
        // A loopback's output: its module holds the ring, not a connection.
        return Err(PaError::NotSupported);
    }
    let sink = to.engine.config();
    Capture::new(false, sink.spec.rate, &sink.map, o.spec, &o.map)
        .map_err(|_| PaError::NotSupported)?;
    let ring = to.engine.add_record(o.shared.clone(), None);
    let next = NextRing {
        ring,
        sink: sink.spec,
        sink_map: sink.map.clone(),
        client_map: o.map.clone(),
    };
    match o.shared.next.lock() {
        Ok(mut q) => q.push_back(next),
        Err(p) => p.into_inner().push_back(next),
    }
    o.shared
        .gains
        .set(&stream_gains(&o.volume, sink.spec.channels));
    from.engine.detach_record(index);
    Ok(())
}

impl Server {
    /// Lists a new sink and its monitor: `new` on the source, then on the
    /// sink (PulseAudio's order).
    pub fn add_sink(&self, entry: Arc<SinkEntry>) {
        self.registry.add_device(
            entry.index(),
            entry.source_index(),
            entry.engine.shared().clone(),
        );
        self.sinks.add(entry.clone());
        let config = entry.engine.config();
        self.engine.page_add(PageSink {
            sink: (entry.index(), entry.sink.name.clone()),
            monitor: (entry.source_index(), entry.monitor.name.clone()),
            spec: config.spec,
            period_frames: config.period_frames,
            shared: entry.engine.shared().clone(),
        });
        self.registry
            .post(facility::SOURCE, event::NEW, entry.source_index());
        // A capture source's sink half is hidden: no event for it.
        if !entry.capture {
            self.registry
                .post(facility::SINK, event::NEW, entry.index());
            tracing::info!(sink = %entry.sink.name, index = entry.index(), "sink added");
        }
    }

    /// Removes sink `index`: its streams move to the default sink (the
    /// default falls back if it was this one), then `remove` is posted on
    /// its monitor and on it, and its mixer stops. srbd's own sink is
    /// never removed.
    pub fn remove_sink(&self, index: u32) {
        let was_default = self.default_sink().index() == index;
        let was_default_source = self.default_source().index() == index;
        let Some(gone) = self.sinks.remove(index) else {
            return;
        };
        if was_default || was_default_source {
            self.registry
                .post(facility::SERVER, event::CHANGE, INVALID_INDEX);
        }
        let to = self.default_sink();
        let to_source = self.default_source();
        for (i, s) in self.registry.sink_inputs() {
            if s.sink == index {
                if let Err(e) = self.move_input(i, &gone, &to, None) {
                    tracing::warn!(input = i, ?e, "stream of a removed sink not moved");
                }
            }
        }
        for (i, s) in self.registry.source_outputs() {
            if s.source == gone.source_index() && s.direct_on_input.is_none() {
                if let Err(e) = self.move_output(i, &gone, &to_source, None) {
                    tracing::warn!(output = i, ?e, "killing a stream of a removed source");
                    self.registry.update_source_output(i, |o| {
                        // Relaxed: the owner's wake-up below carries it.
                        o.shared.killed.store(true, Ordering::Relaxed);
                        o.shared.notice.raise();
                        Err::<(), _>(PaError::NoEntity)
                    });
                }
            }
        }
        self.registry.remove_device(index);
        self.engine.page_remove(index);
        self.registry
            .post(facility::SOURCE, event::REMOVE, gone.source_index());
        self.registry.post(facility::SINK, event::REMOVE, index);
        tracing::info!(sink = %gone.sink.name, index, "sink removed");
        // The mixer stops when the last reference goes (its streams'
        // moves, sent before, are still delivered: `Engine::stop`).
        if let Err(e) = gone.engine.stop() {
            tracing::warn!(%e, "removed sink's output did not finish cleanly");
        }
    }

    /// MOVE_SINK_INPUT: moves sink input `index` to `to`; it is pinned
    /// there unless `to` is the default sink (PulseAudio 15+).
    pub fn move_sink_input(&self, index: u32, to: &Arc<SinkEntry>) -> Result<(), PaError> {
        let input = self
            .registry
            .sink_inputs()
            .into_iter()
            .find(|(i, _)| *i == index);
        let (_, s) = input.ok_or(PaError::NoEntity)?;
        let from = self.sinks.by_index(s.sink).ok_or(PaError::NoEntity)?;
        let pin = to.index() != self.default_sink().index();
        self.move_input(index, &from, to, Some(pin))
    }

    /// MOVE_SOURCE_OUTPUT: moves source output `index` to `to`'s monitor.
    pub fn move_source_output(&self, index: u32, to: &Arc<SinkEntry>) -> Result<(), PaError> {
        let output = self
            .registry
            .source_outputs()
            .into_iter()
            .find(|(i, _)| *i == index);
        let (_, s) = output.ok_or(PaError::NoEntity)?;
        let from = self
            .sinks
            .by_source_index(s.source)
            .ok_or(PaError::NoEntity)?;
        let pin = to.source_index() != self.default_source().source_index();
        self.move_output(index, &from, to, Some(pin))
    }

    /// SET_DEFAULT_SINK: the default becomes `to`; every unpinned sink
    /// input moves there.
    pub fn set_default_sink(&self, to: &Arc<SinkEntry>) {
        self.sinks.set_default_sink(&to.sink.name);
        self.registry
            .post(facility::SERVER, event::CHANGE, INVALID_INDEX);
        for (i, s) in self.registry.sink_inputs() {
            if !s.pinned && s.sink != to.index() {
                if let Some(from) = self.sinks.by_index(s.sink) {
                    if let Err(e) = self.move_input(i, &from, to, None) {
                        tracing::warn!(input = i, ?e, "unpinned stream not moved");
                    }
                }
            }
        }
        tracing::info!(sink = %to.sink.name, "default sink set");
    }

    /// SET_DEFAULT_SOURCE: the default becomes `to`'s monitor; every
    /// unpinned source output moves there.
    pub fn set_default_source(&self, to: &Arc<SinkEntry>) {
        self.sinks.set_default_source(&to.monitor.name);
        self.registry
            .post(facility::SERVER, event::CHANGE, INVALID_INDEX);
        for (i, s) in self.registry.source_outputs() {
            if !s.pinned && s.direct_on_input.is_none() && s.source != to.source_index() {
                if let Some(from) = self.sinks.by_source_index(s.source) {
                    if let Err(e) = self.move_output(i, &from, to, None) {
                        tracing::warn!(output = i, ?e, "unpinned stream not moved");
                    }
                }
            }
        }
        tracing::info!(source = %to.monitor.name, "default source set");
    }

    /// Moves sink input `index` from `from` to `to` (`pin`: its new pinned
    /// flag, `None`: unchanged), with the record streams tapping it.
    fn move_input(
        &self,
        index: u32,
        from: &SinkEntry,
        to: &Arc<SinkEntry>,
        pin: Option<bool>,
    ) -> Result<(), PaError> {
        if from.index() == to.index() {
            // Moving to where it is: done, as PulseAudio answers; a move
            // by hand still pins it.
            if let Some(p) = pin {
                self.registry.update_sink_input(index, |s| {
                    s.pinned = p;
                    Ok(())
                });
            }
            return Ok(());
        }
        let shaped = same_shape(from, to);
        let taps: Vec<u32> = self
            .registry
            .source_outputs()
            .iter()
            .filter(|(_, o)| o.direct_on_input == Some(index))
            .map(|(i, _)| *i)
            .collect();
        if !taps.is_empty() && !shaped {
            // A tap's ring is in the sink's shape.
            return Err(PaError::NotSupported);
        }
        let sink = to.engine.config();
        let moved = self.registry.update_sink_input(index, |s| {
            let converter = if shaped {
                None
            } else {
                let c = PlaybackConverter::new(
                    s.spec,
                    &s.map,
                    sink.spec.rate,
                    &sink.map,
                    sink.period_frames,
                )
                .map_err(|_| PaError::NotSupported)?;
                s.shared
                    .gains
                    .set(&stream_gains(&s.volume, sink.spec.channels));
                Some(c)
            };
            from.engine.move_playback(index, &to.engine, converter);
            s.sink = to.index();
            if let Some(p) = pin {
                s.pinned = p;
            }
            s.shared.moved.fetch_add(1, Ordering::Release);
            s.shared.notice.raise();
            Ok(())
        });
        moved.ok_or(PaError::NoEntity)??;
        for t in taps {
            self.registry.update_source_output(t, |o| {
                from.engine.move_record(t, &to.engine);
                o.source = to.source_index();
                Ok(())
            });
        }
        self.registry.sync_states();
        tracing::info!(input = index, from = %from.sink.name, to = %to.sink.name, "sink input moved");
        Ok(())
    }

    /// Moves source output `index` from `from`'s monitor to `to`'s. Same
    /// shape: the ring moves as it is. Another shape (rate, channels, map
    /// or period): `from` stops feeding it, `to` feeds a new ring, and the
    /// stream's connection drains the old ring with its old converter
    /// before switching to the new one ([`crate::engine::stream::NextRing`]).
    /// A `monitor_stream` tap follows its input instead, and a loopback's
    /// output (no connection to switch rings) stays on same-shape moves.
    fn move_output(
        &self,
        index: u32,
        from: &SinkEntry,
        to: &Arc<SinkEntry>,
        pin: Option<bool>,
    ) -> Result<(), PaError> {
        let moved = self.registry.update_source_output(index, |o| {
            if o.direct_on_input.is_some() {
                // It records one sink input; it follows that input.
                return Err(PaError::NotSupported);
            }
            if from.index() != to.index() {
                if same_shape(from, to) {
                    from.engine.move_record(index, &to.engine);
                } else {
                    move_across_shapes(index, o, from, to)?;
                }
                o.source = to.source_index();
                o.shared.moved.fetch_add(1, Ordering::Release);
                o.shared.notice.raise();
            }
            if let Some(p) = pin {
                o.pinned = p;
            }
            Ok(())
        });
        moved.ok_or(PaError::NoEntity)??;
        self.registry.sync_states();
        tracing::info!(output = index, from = %from.monitor.name, to = %to.monitor.name, "source output moved");
        Ok(())
    }
}
