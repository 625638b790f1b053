//! The sample cache's commands (their rows are in
//! [`crate::control::dispatch::COMMANDS`]): CREATE_UPLOAD_STREAM,
//! DELETE_UPLOAD_STREAM, FINISH_UPLOAD_STREAM, PLAY_SAMPLE,
//! REMOVE_SAMPLE, GET_SAMPLE_INFO and GET_SAMPLE_INFO_LIST, answered as
//! PulseAudio 16.1 answers them. The cache and its caps are
//! [`crate::control::sample_cache`]; playing is
//! [`crate::control::sample_player`].

use srb_pulse::commands::{Command, PaError};
use srb_pulse::reply;
use srb_pulse::request::{CreateUpload, DeviceRef, PlaySample, Request};
use srb_pulse::tagstruct::{CVolume, Proplist, TagWriter};

use crate::control::dispatch::Call;
use crate::control::registry::{event, facility};
use crate::control::sample_cache::{Entry, Upload, MAX_UPLOADS};
use crate::control::server_info::INVALID_INDEX;
use crate::control::session::{error, reply, HandleError, Session, MAX_CLIENT_PROPS};

/// `props` with every key of `from` it lacks (PulseAudio's
/// `PA_UPDATE_MERGE`).
fn merged(mut props: Proplist, from: &Proplist) -> Proplist {
    for (k, v) in from.entries() {
        if props.get(k).is_none() {
            let _ = props.set(k, v);
        }
    }
    props
}

/// An entry's properties as PulseAudio 16.1 lists them: `media.role` =
/// `event` first, then the upload's, then its client's that are missing.
fn entry_props(upload: Proplist, client: &Proplist) -> Proplist {
    let mut p = Proplist::new();
    let _ = p.set_str("media.role", "event");
    merged(p, &merged(upload, client))
}

fn write_entry(w: &mut TagWriter, version: u32, index: u32, e: &Entry) {
    let none = CVolume::default();
    reply::SampleInfo {
        index,
        name: &e.name,
        // Uploaded entries have no volume of their own ("(invalid)").
        volume: &none,
        duration_usec: e.duration_usec(),
        sample_spec: e.spec,
        channel_map: &e.map,
        bytes: u32::try_from(e.data.len()).unwrap_or(u32::MAX),
        lazy: false,
        filename: None,
        props: &e.props,
    }
    .encode(w, version);
}

impl Session {
    /// The sample cache's commands.
    pub(super) fn on_sample(
        &mut self,
        c: Call<'_>,
        req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        let tag = c.tag;
        let w = match (c.cmd, req) {
            (Command::CreateUploadStream, Request::CreateUpload(u)) => {
                self.create_upload(tag, *u, c.packet.len())
            }
            (Command::DeleteUploadStream, Request::Stream(channel)) => {
                match self.uploads.remove(&channel) {
                    Some(u) => {
                        tracing::info!(
                            client = self.client_index,
                            channel,
                            bytes = u.data.len(),
                            "upload stream deleted"
                        );
                        reply(tag)
                    }
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::FinishUploadStream, Request::Stream(channel)) => {
                self.finish_upload(tag, channel)
            }
            (Command::PlaySample, Request::PlaySample(p)) => {
                self.play_sample(tag, *p, c.version, c.packet.len())
            }
            (Command::RemoveSample, Request::RemoveSample(name)) => {
                match self.server.samples.remove(&name) {
                    Some(index) => {
                        tracing::info!(client = self.client_index, %name, index, "sample removed");
                        self.server
                            .registry
                            .post(facility::SAMPLE_CACHE, event::REMOVE, index);
                        reply(tag)
                    }
                    None => error(tag, PaError::NoEntity),
                }
            }
            (Command::GetSampleInfo, Request::SampleInfo(DeviceRef { index, name })) => {
                if (index == INVALID_INDEX) == name.is_none() {
                    // Neither or both: PulseAudio's INVALID.
                    error(tag, PaError::Invalid)
                } else {
                    match self.server.samples.get(index, name.as_deref()) {
                        Some((i, e)) => {
                            let mut w = reply(tag);
                            write_entry(&mut w, c.version, i, &e);
                            w
                        }
                        None => error(tag, PaError::NoEntity),
                    }
                }
            }
            (Command::GetSampleInfoList, _) => {
                let mut w = reply(tag);
                for (i, e) in self.server.samples.entries() {
                    write_entry(&mut w, c.version, i, &e);
                }
                w
            }
            (cmd, _) => return Ok(self.unsupported(cmd, tag)),
        };
        Ok(Some(w))
    }

    fn create_upload(&mut self, tag: u32, u: CreateUpload, packet_len: usize) -> TagWriter {
        let client = self.client_index;
        if packet_len > MAX_CLIENT_PROPS || self.uploads.len() >= MAX_UPLOADS {
            tracing::info!(client, "upload refused: too many uploads or properties");
            return error(tag, PaError::TooLarge);
        }
        if let Err(e) = u.validate() {
            tracing::debug!(client, ?e, spec = ?u.spec, length = u.length, "upload refused");
            return error(tag, e);
        }
        let name = u.name().unwrap_or_default().to_owned();
        let length = u.length as usize;
        let reservation = match self.server.samples.reserve(client, length) {
            Ok(r) => r,
            Err(e) => return error(tag, e),
        };
        // The upload's properties, then its client's (PulseAudio merges).
        let own = self
            .server
            .clients()
            .into_iter()
            .find(|(i, _)| *i == client)
            .map(|(_, p)| p)
            .unwrap_or_default();
        let channel = self.next_playback_channel;
        self.next_playback_channel = self.next_playback_channel.wrapping_add(1);
        tracing::info!(client, channel, %name, length, spec = ?u.spec, "upload stream created");
        self.uploads.insert(
            channel,
            Upload {
                channel,
                name,
                spec: u.spec,
                map: u.map,
                props: entry_props(u.props, &own),
                length,
                data: Vec::new(),
                extra: 0,
                reservation,
            },
        );
        let mut w = reply(tag);
        reply::UploadCreated {
            channel,
            length: u.length,
        }
        .encode(&mut w);
        w
    }

    fn finish_upload(&mut self, tag: u32, channel: u32) -> TagWriter {
        let client = self.client_index;
        let Some(u) = self.uploads.remove(&channel) else {
            return error(tag, PaError::NoEntity);
        };
        let (name, got, extra) = (u.name.clone(), u.data.len(), u.extra);
        match u.finish(client) {
            Err(e) => {
                tracing::info!(client, channel, %name, got, extra, ?e, "upload refused at finish");
                error(tag, e)
            }
            Ok((entry, reservation)) => {
                let (index, new) = self.server.samples.insert(entry, reservation);
                let kind = if new { event::NEW } else { event::CHANGE };
                self.server
                    .registry
                    .post(facility::SAMPLE_CACHE, kind, index);
                let usage = self.server.samples.usage();
                tracing::info!(
                    client,
                    %name,
                    index,
                    bytes = got,
                    cache_bytes = usage.entry_bytes,
                    "sample stored"
                );
                reply(tag)
            }
        }
    }

    fn play_sample(
        &mut self,
        tag: u32,
        p: PlaySample,
        version: u32,
        packet_len: usize,
    ) -> TagWriter {
        if packet_len > MAX_CLIENT_PROPS {
            return error(tag, PaError::TooLarge);
        }
        if let Err(e) = p.validate() {
            return error(tag, e);
        }
        let sink = match self.device(false, p.sink.index, p.sink.name.as_deref()) {
            Ok(s) => s,
            Err(e) => return error(tag, e),
        };
        let Some((_, entry)) = self.server.samples.get(INVALID_INDEX, Some(&p.name)) else {
            tracing::debug!(client = self.client_index, name = %p.name, "PLAY_SAMPLE: no such sample");
            return error(tag, PaError::NoEntity);
        };
        let own = self
            .server
            .clients()
            .into_iter()
            .find(|(i, _)| *i == self.client_index)
            .map(|(_, props)| props)
            .unwrap_or_default();
        let props = merged(p.props, &own);
        match self
            .server
            .players
            .play(&self.server, &sink, &entry, p.volume, &props)
        {
            Ok(index) => {
                let mut w = reply(tag);
                if version >= 13 {
                    w.put_u32(index);
                }
                w
            }
            Err(e) => error(tag, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::session::tests::{call, expect_error, expect_reply, packet, ready};
    use srb_pulse::pstream::{Frame, Memblock, SeekMode};
    use srb_pulse::sample::SampleFormat;
    use srb_pulse::tagstruct::{ChannelMap, SampleSpec};

    fn create_upload(tag: u32, name: &str, length: u32) -> Vec<u8> {
        packet(Command::CreateUploadStream as u32, tag, |w| {
            w.put_string(Some(name))
                .put_sample_spec(&SampleSpec {
                    format: SampleFormat::S16Le,
                    channels: 2,
                    rate: 48_000,
                })
                .put_channel_map(&ChannelMap::new(&[1, 2]).unwrap())
                .put_u32(length)
                .put_proplist(&Proplist::new());
        })
    }

    fn channel_cmd(cmd: Command, tag: u32, channel: u32) -> Vec<u8> {
        packet(cmd as u32, tag, |w| {
            w.put_u32(channel);
        })
    }

    fn block(s: &mut Session, channel: u32, data: &[u8]) {
        let mut out = Vec::new();
        s.handle_frame(
            Frame::Memblock(Memblock {
                channel,
                offset: 0,
                seek: SeekMode::Relative,
                data: data.to_vec(),
            }),
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty(), "uploads are not flow-controlled");
    }

    /// Uploads `data` as `name`; the channel it used.
    fn upload(s: &mut Session, tag: u32, name: &str, data: &[u8]) -> u32 {
        let b = call(s, &create_upload(tag, name, data.len() as u32));
        let mut r = expect_reply(&b, tag);
        let channel = r.get_u32().unwrap();
        assert_eq!(r.get_u32().unwrap(), data.len() as u32);
        r.finish().unwrap();
        block(s, channel, data);
        let b = call(
            s,
            &channel_cmd(Command::FinishUploadStream, tag + 1, channel),
        );
        expect_reply(&b, tag + 1).finish().unwrap();
        channel
    }

    #[test]
    fn upload_finish_list_info_remove() {
        let mut s = ready(35);
        let subscribe = packet(Command::Subscribe as u32, 1, |w| {
            w.put_u32(1 << facility::SAMPLE_CACHE);
        });
        expect_reply(&call(&mut s, &subscribe), 1);
        let data: Vec<u8> = (0..19_200u32).map(|i| i as u8).collect();
        let ch = upload(&mut s, 2, "bell", &data);
        // Channels are numbered with playback streams.
        assert_eq!(s.next_playback_channel, ch + 1);
        let b = call(
            &mut s,
            &packet(Command::GetSampleInfo as u32, 4, |w| {
                w.put_u32(INVALID_INDEX).put_string(Some("bell"));
            }),
        );
        let mut r = expect_reply(&b, 4);
        assert_eq!(r.get_u32().unwrap(), 0);
        assert_eq!(r.get_string().unwrap(), Some("bell"));
        assert_eq!(r.get_cvolume().unwrap().channels(), 0);
        assert_eq!(r.get_usec().unwrap(), 100_000);
        r.get_sample_spec().unwrap();
        r.get_channel_map().unwrap();
        assert_eq!(r.get_u32().unwrap(), 19_200);
        assert!(!r.get_bool().unwrap());
        assert_eq!(r.get_string().unwrap(), None);
        let props = r.get_proplist().unwrap();
        assert_eq!(props.entries()[0].0, "media.role");
        assert_eq!(props.get_str("application.name"), Some("tester"));
        r.finish().unwrap();
        assert_eq!(&s.server.samples.entries()[0].1.data[..], &data[..]);
        // Again under the same name: replaced, same index, CHANGE.
        upload(&mut s, 5, "bell", &data[..4]);
        let b = call(
            &mut s,
            &packet(Command::GetSampleInfoList as u32, 7, |_| {}),
        );
        let mut r = expect_reply(&b, 7);
        assert_eq!(r.get_u32().unwrap(), 0);
        // Neither or both of index and name: INVALID; unknown: NOENTITY.
        for (tag, index, name, e) in [
            (8, INVALID_INDEX, None, PaError::Invalid),
            (9, 0, Some("bell"), PaError::Invalid),
            (10, 7, None, PaError::NoEntity),
        ] {
            let p = packet(Command::GetSampleInfo as u32, tag, |w| {
                w.put_u32(index).put_string(name);
            });
            expect_error(&call(&mut s, &p), tag, e);
        }
        let rm = |tag| {
            packet(Command::RemoveSample as u32, tag, |w| {
                w.put_string(Some("bell"));
            })
        };
        expect_reply(&call(&mut s, &rm(11)), 11);
        expect_error(&call(&mut s, &rm(12)), 12, PaError::NoEntity);
        let events: Vec<(u32, u32)> = s.server.registry.take_events(s.client_index());
        let sc = facility::SAMPLE_CACHE;
        assert_eq!(
            events,
            [
                (sc | event::NEW, 0),
                (sc | event::CHANGE, 0),
                (sc | event::REMOVE, 0)
            ]
        );
    }

    #[test]
    fn overflow_delete_unknown_and_caps() {
        let mut s = ready(35);
        let b = call(&mut s, &create_upload(2, "x", 8));
        let ch = expect_reply(&b, 2).get_u32().unwrap();
        block(&mut s, ch, &[1; 12]);
        expect_error(
            &call(&mut s, &channel_cmd(Command::FinishUploadStream, 3, ch)),
            3,
            PaError::TooLarge,
        );
        assert!(s.server.samples.entries().is_empty());
        // Finished or deleted channels are gone.
        for (tag, cmd) in [
            (4, Command::FinishUploadStream),
            (5, Command::DeleteUploadStream),
        ] {
            expect_error(
                &call(&mut s, &channel_cmd(cmd, tag, ch)),
                tag,
                PaError::NoEntity,
            );
        }
        let b = call(&mut s, &create_upload(6, "y", 8));
        let ch = expect_reply(&b, 6).get_u32().unwrap();
        assert_eq!(s.server.samples.usage().reserved_bytes, 8);
        expect_reply(
            &call(&mut s, &channel_cmd(Command::DeleteUploadStream, 7, ch)),
            7,
        );
        assert_eq!(s.server.samples.usage().reserved_bytes, 0);
        // Past the per-client cap: TOOLARGE, and the session goes on.
        let big = crate::control::sample_cache::CLIENT_BYTES as u32 + 4;
        expect_error(
            &call(&mut s, &create_upload(8, "z", big)),
            8,
            PaError::TooLarge,
        );
        expect_error(
            &call(&mut s, &create_upload(9, "a b", 4)),
            9,
            PaError::Invalid,
        );
        let b = call(&mut s, &create_upload(10, "w", 8));
        expect_reply(&b, 10);
        // A dropped session gives its reservation back.
        let srv = s.server.clone();
        assert_eq!(srv.samples.usage().reserved_bytes, 8);
        drop(s);
        assert_eq!(srv.samples.usage().reserved_bytes, 0);
    }

    #[test]
    fn play_sample_lists_a_server_owned_sink_input() {
        let mut s = ready(35);
        let data = vec![0u8; 1920];
        upload(&mut s, 2, "bell", &data);
        let play = |tag, name: &str, volume: u32| {
            packet(Command::PlaySample as u32, tag, |w| {
                w.put_u32(INVALID_INDEX)
                    .put_string(None)
                    .put_u32(volume)
                    .put_string(Some(name))
                    .put_proplist(&Proplist::new());
            })
        };
        let b = call(&mut s, &play(4, "bell", 0x8000));
        let mut r = expect_reply(&b, 4);
        let index = r.get_u32().unwrap();
        r.finish().unwrap();
        let inputs = s.server.registry.sink_inputs();
        let (i, si) = &inputs[0];
        assert_eq!((*i, si.client), (index, INVALID_INDEX));
        assert_eq!(si.volume.values(), &[0x8000, 0x8000]);
        assert_eq!(si.props.get_str("media.name"), Some("bell"));
        assert_eq!(si.props.get_str("event.id"), Some("bell"));
        assert!((si.shared.gains.get(0) - 0.125).abs() < 1e-6);
        expect_error(
            &call(&mut s, &play(5, "nope", 0x8000)),
            5,
            PaError::NoEntity,
        );
        let bad_sink = packet(Command::PlaySample as u32, 6, |w| {
            w.put_u32(9)
                .put_string(None)
                .put_u32(0x10000)
                .put_string(Some("bell"))
                .put_proplist(&Proplist::new());
        });
        expect_error(&call(&mut s, &bad_sink), 6, PaError::NoEntity);
        // Killed (pactl kill-sink-input): the players' notice is raised and
        // their poll unlists it.
        let kill = packet(Command::KillSinkInput as u32, 7, |w| {
            w.put_u32(index);
        });
        expect_reply(&call(&mut s, &kill), 7);
        assert!(s.server.players.notice().take());
        s.server.players.poll(&s.server);
        assert!(s.server.players.is_empty());
        assert!(s.server.registry.sink_inputs().is_empty());
    }
}
