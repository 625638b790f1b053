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
use crate::control::sample_player;
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
        if let Err(e) = self.device(false, p.sink.index, p.sink.name.as_deref()) {
            return error(tag, e);
        }
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
        match sample_player::play(&self.server, &self.server.samples, &entry, p.volume, &props) {
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
