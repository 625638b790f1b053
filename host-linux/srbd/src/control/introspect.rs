//! Introspection and control commands: server, sink, source, client,
//! sink-input and source-output info; lookups; STAT and SUBSCRIBE; sink,
//! source and stream volumes and mutes; defaults; kills; client proplist
//! updates. Record layouts follow libpulse 16.1's parser (§6.3, §6.4).

use std::sync::atomic::Ordering;

use std::sync::Arc;

use crate::control::device_state::State;
use crate::control::modules;
use crate::control::registry::{SinkInput, SourceOutput};
use crate::control::server_info::{DevicePair, Latency, DRIVER, INVALID_INDEX};
use crate::control::session::{error, reply, HandleError, Session, MAX_CLIENT_PROPS};
use crate::control::sinks::SinkEntry;
use crate::engine::stream::PlaybackShared;
use crate::linear_gains;
use srb_pulse::commands::{Command, PaError};
use srb_pulse::reply::{self, DeviceKind};
use srb_pulse::request::{DeviceRef, Request};
use srb_pulse::tagstruct::{CVolume, FormatInfo, Proplist, SampleSpec, TagWriter};

/// `PA_UPDATE_SET`, `PA_UPDATE_MERGE`, `PA_UPDATE_REPLACE`.
const UPDATE_SET: u32 = 0;
const UPDATE_MERGE: u32 = 1;
const UPDATE_REPLACE: u32 = 2;

/// The per-sink-channel gains for a stream volume: per channel when the
/// stream has the sink's channel count, else one gain (the mean) for all.
pub fn stream_gains(v: &CVolume, sink_channels: u8) -> Vec<f32> {
    let g = linear_gains(v);
    if v.channels() == sink_channels || g.is_empty() {
        g
    } else {
        vec![g.iter().sum::<f32>() / g.len() as f32]
    }
}

/// Applies a proplist update in `mode` (SET, MERGE or REPLACE).
pub fn update_proplist(target: &mut Proplist, mode: u32, new: &Proplist) -> Result<(), PaError> {
    match mode {
        UPDATE_SET => *target = new.clone(),
        UPDATE_MERGE | UPDATE_REPLACE => {
            for (k, v) in new.entries() {
                if mode == UPDATE_MERGE && target.get(k).is_some() {
                    continue;
                }
                target.set(k, v).map_err(|_| PaError::Invalid)?;
            }
        }
        _ => return Err(PaError::Invalid),
    }
    Ok(())
}

fn write_client(w: &mut TagWriter, version: u32, index: u32, props: &Proplist) {
    reply::ClientInfo {
        index,
        name: props.get_str("application.name").unwrap_or("(unnamed)"),
        owner_module: INVALID_INDEX,
        driver: DRIVER,
        props,
    }
    .encode(w, version);
}

/// PCM, the format every stream has.
pub(super) fn pcm() -> &'static FormatInfo {
    static PCM: std::sync::OnceLock<FormatInfo> = std::sync::OnceLock::new();
    PCM.get_or_init(|| FormatInfo {
        encoding: crate::control::playback::ENCODING_PCM,
        props: Proplist::new(),
    })
}

/// Bytes a playback stream holds in srbd (written, not yet played or
/// flushed): its buffer latency, as PulseAudio counts the stream's queue.
fn playback_queued(s: &PlaybackShared) -> u64 {
    // Relaxed: figures for an info reply; the two need not be from the
    // same instant.
    let written = s.written.load(Ordering::Relaxed);
    let read = s
        .read_index
        .load(Ordering::Relaxed)
        .max(s.flush_to.load(Ordering::Relaxed));
    written.saturating_sub(read)
}

/// `bytes` of `spec` audio in microseconds (0 for an unusable spec).
fn bytes_usec(bytes: u64, spec: SampleSpec) -> u64 {
    let frame = spec.frame_size().unwrap_or(0) as u64;
    if frame == 0 || spec.rate == 0 {
        return 0;
    }
    bytes / frame * 1_000_000 / u64::from(spec.rate)
}

fn resample_method(spec_rate: u32, sink_rate: u32) -> &'static str {
    if spec_rate == sink_rate {
        "copy"
    } else {
        "rubato"
    }
}

impl Session {
    fn write_sink_input(&self, w: &mut TagWriter, version: u32, index: u32, s: &SinkInput) {
        let entry = self.server.sinks.by_index(s.sink);
        let engine = entry.as_ref().map_or(&self.server.engine, |e| &e.engine);
        let rate = engine.config().spec.rate;
        reply::StreamInfo {
            index,
            name: s.props.get_str("media.name").unwrap_or("(unnamed)"),
            owner_module: INVALID_INDEX,
            client: s.client,
            device: s.sink,
            sample_spec: s.spec,
            channel_map: &s.map,
            volume: &s.volume,
            muted: s.muted,
            buffer_usec: bytes_usec(playback_queued(&s.shared), s.spec),
            device_usec: engine.sink_latency_usec(),
            resample_method: resample_method(s.spec.rate, rate),
            driver: DRIVER,
            props: &s.props,
            // Relaxed: a status flag.
            corked: s.shared.corked.load(Ordering::Relaxed),
            format: pcm(),
        }
        .encode_sink_input(w, version);
    }

    fn write_source_output(&self, w: &mut TagWriter, version: u32, index: u32, s: &SourceOutput) {
        let rate = self
            .server
            .sinks
            .by_source_index(s.source)
            .map_or(self.server.info.monitor.sample_spec.rate, |e| {
                e.monitor.sample_spec.rate
            });
        reply::StreamInfo {
            index,
            name: s.props.get_str("media.name").unwrap_or("(unnamed)"),
            owner_module: INVALID_INDEX,
            client: s.client,
            device: s.source,
            sample_spec: s.spec,
            channel_map: &s.map,
            volume: &s.volume,
            muted: s.muted,
            // Relaxed: a figure the owning connection stored.
            buffer_usec: bytes_usec(s.shared.queued.load(Ordering::Relaxed), s.spec),
            // The source's own latency (see GET_RECORD_LATENCY).
            device_usec: 0,
            resample_method: resample_method(s.spec.rate, rate),
            driver: DRIVER,
            props: &s.props,
            // Relaxed: a status flag.
            corked: s.shared.corked.load(Ordering::Relaxed),
            format: pcm(),
        }
        .encode_source_output(w, version);
    }

    /// The sink (`false`) or monitor source (`true`) named by index or
    /// name, as GET_*_INFO and SET_SINK/SOURCE_* address it (neither: the
    /// default, as PulseAudio's name registry answers a NULL name; the
    /// OSS emulation asks this way).
    pub(super) fn device(
        &self,
        monitor: bool,
        index: u32,
        name: Option<&str>,
    ) -> Result<Arc<SinkEntry>, PaError> {
        if index != INVALID_INDEX && name.is_some() {
            return Err(PaError::Invalid);
        }
        self.server
            .sinks
            .lookup(monitor, index, name)
            .ok_or(PaError::NoEntity)
    }

    fn write_device(&self, w: &mut TagWriter, version: u32, entry: &SinkEntry, monitor: bool) {
        let mut st = entry.state(monitor);
        // The state follows the streams and suspends, on the control side
        // (`control::device_state`): a suspended sink suspends its monitor.
        let states = self.server.registry.device_states_of(entry.index());
        let state = if monitor { states.monitor } else { states.sink };
        st.suspended = state == State::Suspended;
        let running = state == State::Running;
        let engine = &entry.engine;
        let latency = Latency {
            // The monitor's own latency is 0: it has each period the
            // moment it is rendered (see GET_RECORD_LATENCY).
            now_usec: if monitor {
                0
            } else {
                engine.sink_latency_usec()
            },
            configured_usec: engine.period_usec(),
        };
        let kind = if monitor {
            DeviceKind::Source
        } else {
            DeviceKind::Sink
        };
        DevicePair {
            sink: &entry.sink,
            monitor: &entry.monitor,
            module: entry.module,
            source_only: entry.capture,
        }
        .write(w, version, kind, &st, running, latency);
    }

    /// Handles an introspection command (its row in
    /// [`crate::control::dispatch::COMMANDS`]); the reply to send.
    pub(super) fn introspect(
        &mut self,
        cmd: Command,
        tag: u32,
        req: Request,
        version: u32,
        packet_len: usize,
    ) -> Result<Option<TagWriter>, HandleError> {
        let info = &self.server.info;
        let w = match (cmd, req) {
            (Command::GetServerInfo, _) => {
                let mut w = reply(tag);
                let sink = self.server.default_sink();
                let source = self.server.default_source();
                info.write_server_info_with(&mut w, version, &sink.sink.name, &source.monitor.name);
                w
            }
            (Command::GetSinkInfoList | Command::GetSourceInfoList, _) => {
                let mut w = reply(tag);
                let sources = cmd == Command::GetSourceInfoList;
                let entries = if sources {
                    self.server.sinks.all()
                } else {
                    self.server.sinks.sinks()
                };
                for e in entries {
                    self.write_device(&mut w, version, &e, sources);
                }
                w
            }
            (
                Command::GetSinkInfo | Command::GetSourceInfo,
                Request::DeviceInfo(DeviceRef { index, name }),
            ) => {
                let name = name.as_deref();
                let monitor = cmd == Command::GetSourceInfo;
                match self.device(monitor, index, name) {
                    Ok(e) => {
                        let mut w = reply(tag);
                        self.write_device(&mut w, version, &e, monitor);
                        w
                    }
                    Err(e) => error(tag, e),
                }
            }
            (Command::LookupSink | Command::LookupSource, Request::Lookup(name)) => {
                let name = name.as_str();
                let found = if cmd == Command::LookupSink {
                    self.server.sinks.sink(name).map(|e| e.index())
                } else {
                    self.server.sinks.source(name).map(|e| e.source_index())
                };
                match found {
                    Some(i) => {
                        let mut w = reply(tag);
                        w.put_u32(i);
                        w
                    }
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::GetClientInfoList, _) => {
                let mut w = reply(tag);
                for (index, props) in self.server.clients() {
                    write_client(&mut w, version, index, &props);
                }
                w
            }
            (Command::GetClientInfo, Request::ByIndex(index)) => {
                match self.server.clients().into_iter().find(|(i, _)| *i == index) {
                    Some((i, props)) => {
                        let mut w = reply(tag);
                        write_client(&mut w, version, i, &props);
                        w
                    }
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::GetSinkInputInfoList, _) => {
                let mut w = reply(tag);
                for (i, s) in self.server.registry.sink_inputs() {
                    self.write_sink_input(&mut w, version, i, &s);
                }
                w
            }
            (Command::GetSinkInputInfo, Request::ByIndex(index)) => {
                let all = self.server.registry.sink_inputs();
                match all.iter().find(|(i, _)| *i == index) {
                    Some((i, s)) => {
                        let mut w = reply(tag);
                        self.write_sink_input(&mut w, version, *i, s);
                        w
                    }
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::GetSourceOutputInfoList, _) => {
                let mut w = reply(tag);
                for (i, s) in self.server.registry.source_outputs() {
                    self.write_source_output(&mut w, version, i, &s);
                }
                w
            }
            (Command::GetSourceOutputInfo, Request::ByIndex(index)) => {
                let all = self.server.registry.source_outputs();
                match all.iter().find(|(i, _)| *i == index) {
                    Some((i, s)) => {
                        let mut w = reply(tag);
                        self.write_source_output(&mut w, version, *i, s);
                        w
                    }
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::GetModuleInfoList, _) => {
                let mut w = reply(tag);
                for (index, name, argument, sink) in self.server.modules.list() {
                    let n_used = modules::n_used(&self.server, sink);
                    modules::write_info(&mut w, version, index, name, &argument, n_used);
                }
                w
            }
            (Command::GetModuleInfo, Request::ByIndex(index)) => {
                let found = self
                    .server
                    .modules
                    .list()
                    .into_iter()
                    .find(|m| m.0 == index);
                match found {
                    Some((index, name, argument, sink)) => {
                        let mut w = reply(tag);
                        let n_used = modules::n_used(&self.server, sink);
                        modules::write_info(&mut w, version, index, name, &argument, n_used);
                        w
                    }
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::GetCardInfoList, _) => reply(tag),
            (Command::Stat, _) => {
                // Memblocks are srbd's stream rings (engine::buffers),
                // then the sample cache's size in bytes.
                let f = self.server.engine.shared().buffers.figures();
                let u32_of = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                let cache = self.server.samples.usage().entry_bytes;
                let mut w = reply(tag);
                w.put_u32(u32_of(f.live))
                    .put_u32(u32_of(f.live_bytes))
                    .put_u32(u32_of(f.total))
                    .put_u32(u32_of(f.total_bytes))
                    .put_u32(u32::try_from(cache).unwrap_or(u32::MAX));
                w
            }
            (Command::Subscribe, Request::Subscribe(mask)) => {
                self.server
                    .registry
                    .subscribe(self.client_index, mask, self.notice.clone());
                reply(tag)
            }
            (
                Command::SetSinkVolume | Command::SetSourceVolume,
                Request::SetDeviceVolume {
                    device: DeviceRef { index, name },
                    volume,
                },
            ) => {
                let name = name.as_deref();
                let monitor = cmd == Command::SetSourceVolume;
                match self.device(monitor, index, name) {
                    Err(e) => error(tag, e),
                    Ok(e)
                        if volume.check().is_err()
                            || volume.channels() != e.sink.sample_spec.channels =>
                    {
                        error(tag, PaError::Invalid)
                    }
                    Ok(e) => {
                        self.server
                            .set_device_state(&e, monitor, Some(volume), None);
                        reply(tag)
                    }
                }
            }
            (
                Command::SetSinkMute | Command::SetSourceMute,
                Request::SetDeviceMute {
                    device: DeviceRef { index, name },
                    muted,
                },
            ) => {
                let name = name.as_deref();
                let monitor = cmd == Command::SetSourceMute;
                match self.device(monitor, index, name) {
                    Err(e) => error(tag, e),
                    Ok(e) => {
                        self.server.set_device_state(&e, monitor, None, Some(muted));
                        reply(tag)
                    }
                }
            }
            (
                Command::SetSinkInputVolume | Command::SetSourceOutputVolume,
                Request::SetStreamVolume { index, volume },
            ) => {
                if volume.check().is_err() {
                    return Ok(Some(error(tag, PaError::Invalid)));
                }
                let sinks = &self.server.sinks;
                let channels_of = |e: Option<Arc<SinkEntry>>| {
                    e.map_or(info.sink.sample_spec.channels, |e| {
                        e.sink.sample_spec.channels
                    })
                };
                let done = if cmd == Command::SetSinkInputVolume {
                    self.server.registry.update_sink_input(index, |s| {
                        if volume.channels() != s.spec.channels {
                            return Err(PaError::Invalid);
                        }
                        let sink_channels = channels_of(sinks.by_index(s.sink));
                        s.shared.gains.set(&stream_gains(&volume, sink_channels));
                        s.volume = volume;
                        Ok(())
                    })
                } else {
                    self.server.registry.update_source_output(index, |s| {
                        if volume.channels() != s.spec.channels {
                            return Err(PaError::Invalid);
                        }
                        let sink_channels = channels_of(sinks.by_source_index(s.source));
                        s.shared.gains.set(&stream_gains(&volume, sink_channels));
                        s.volume = volume;
                        Ok(())
                    })
                };
                match done {
                    None => error(tag, PaError::NoEntity),
                    Some(Err(e)) => error(tag, e),
                    Some(Ok(())) => reply(tag),
                }
            }
            (
                Command::SetSinkInputMute | Command::SetSourceOutputMute,
                Request::SetStreamMute { index, muted },
            ) => {
                let done = if cmd == Command::SetSinkInputMute {
                    self.server.registry.update_sink_input(index, |s| {
                        s.shared.gains.set_muted(muted);
                        s.muted = muted;
                        Ok(())
                    })
                } else {
                    self.server.registry.update_source_output(index, |s| {
                        s.shared.gains.set_muted(muted);
                        s.muted = muted;
                        Ok(())
                    })
                };
                match done {
                    None => error(tag, PaError::NoEntity),
                    Some(_) => reply(tag),
                }
            }
            (Command::SetDefaultSink | Command::SetDefaultSource, Request::SetDefault(name)) => {
                let name = name.as_deref();
                // No name: the default stays the default.
                let n = name.unwrap_or("");
                let sinks = &self.server.sinks;
                if cmd == Command::SetDefaultSink {
                    match sinks.sink(n) {
                        Some(e) => {
                            self.server.set_default_sink(&e);
                            reply(tag)
                        }
                        None => error(tag, PaError::NoEntity),
                    }
                } else {
                    match sinks.source(n) {
                        Some(e) => {
                            self.server.set_default_source(&e);
                            reply(tag)
                        }
                        None => error(tag, PaError::NoEntity),
                    }
                }
            }
            (Command::KillSinkInput | Command::KillSourceOutput, Request::ByIndex(index)) => {
                let killed = if cmd == Command::KillSinkInput {
                    self.server.registry.update_sink_input(index, |s| {
                        // Relaxed: the owner's wake-up below carries it.
                        s.shared.killed.store(true, Ordering::Relaxed);
                        s.shared.notice.raise();
                        Err::<(), _>(PaError::NoEntity)
                    })
                } else {
                    self.server.registry.update_source_output(index, |s| {
                        s.shared.killed.store(true, Ordering::Relaxed);
                        s.shared.notice.raise();
                        Err::<(), _>(PaError::NoEntity)
                    })
                };
                // The closures "fail" so that no CHANGE event precedes the
                // REMOVE the owner posts. A loopback's stream has no client
                // to end it: its module is unloaded, as PulseAudio's
                // loopback unloads itself when a stream of it is killed.
                let playback = cmd == Command::KillSinkInput;
                if let Some(m) = modules::owner_of_stream(&self.server, playback, index) {
                    tracing::info!(module = m, index, "stream killed: its module unloaded");
                    modules::unload(&self.server, m);
                }
                match killed {
                    Some(_) => reply(tag),
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::UpdateClientProplist, Request::UpdateClientProplist { mode, props }) => {
                if packet_len > MAX_CLIENT_PROPS {
                    return Ok(Some(error(tag, PaError::TooLarge)));
                }
                let mut current = self
                    .server
                    .clients()
                    .into_iter()
                    .find(|(i, _)| *i == self.client_index)
                    .map(|(_, p)| p)
                    .unwrap_or_default();
                match update_proplist(&mut current, mode, &props) {
                    Ok(()) => {
                        self.server.set_client(self.client_index, current);
                        reply(tag)
                    }
                    Err(e) => error(tag, e),
                }
            }
            (Command::RemoveClientProplist, Request::RemoveClientProplist(keys)) => {
                let mut current = self
                    .server
                    .clients()
                    .into_iter()
                    .find(|(i, _)| *i == self.client_index)
                    .map(|(_, p)| p)
                    .unwrap_or_default();
                for k in &keys {
                    current.remove(k);
                }
                self.server.set_client(self.client_index, current);
                reply(tag)
            }
            // The table pairs each command with its decoder, so this is
            // never reached; a mismatch would be answered, not trusted.
            (cmd, _) => return Ok(self.unsupported(cmd, tag)),
        };
        Ok(Some(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proplist_update_modes() {
        let mut a = Proplist::new();
        a.set_str("x", "1").unwrap();
        a.set_str("y", "1").unwrap();
        let mut b = Proplist::new();
        b.set_str("y", "2").unwrap();
        b.set_str("z", "2").unwrap();
        let mut m = a.clone();
        update_proplist(&mut m, UPDATE_MERGE, &b).unwrap();
        assert_eq!(
            (m.get_str("x"), m.get_str("y"), m.get_str("z")),
            (Some("1"), Some("1"), Some("2"))
        );
        let mut m = a.clone();
        update_proplist(&mut m, UPDATE_REPLACE, &b).unwrap();
        assert_eq!((m.get_str("x"), m.get_str("y")), (Some("1"), Some("2")));
        let mut m = a.clone();
        update_proplist(&mut m, UPDATE_SET, &b).unwrap();
        assert_eq!((m.get_str("x"), m.get_str("y")), (None, Some("2")));
        assert_eq!(update_proplist(&mut a, 3, &b), Err(PaError::Invalid));
    }

    #[test]
    fn stream_gains_follow_channel_counts() {
        let v = CVolume::new(&[0x10000, 0]).unwrap();
        assert_eq!(stream_gains(&v, 2), vec![1.0, 0.0]);
        assert_eq!(stream_gains(&v, 6), vec![0.5]);
        let v = CVolume::new(&[0x10000]).unwrap();
        assert_eq!(stream_gains(&v, 2), vec![1.0]);
    }
}
