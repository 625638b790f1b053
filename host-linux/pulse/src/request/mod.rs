//! Typed requests: one decoder per command a server serves
//! ([`Request::decode`]), each reading the packet after its command and
//! tag as the negotiated version encodes it and refusing trailing bytes.
//! A request that decodes can still be one the server refuses (unknown
//! index, bad spec): that is the handler's `ERROR` reply; a request that
//! does not decode is a [`TagError`], which closes the connection.
//!
//! | file | what it holds |
//! |---|---|
//! | this file | [`Request`] and the small bodies: object references, volumes, mutes, names, proplists, stream channels, latency queries, buffer attributes |
//! | [`stream`] | [`stream::CreatePlayback`] and [`stream::CreateRecord`], with PulseAudio's checks |
//! | [`sample`] | the sample cache's [`sample::CreateUpload`] and [`sample::PlaySample`], with PulseAudio's checks |

pub mod sample;
pub mod stream;

use crate::commands::Command;
use crate::tagstruct::{CVolume, Proplist, TagError, TagReader, Timeval};

pub use sample::{CreateUpload, PlaySample};
pub use stream::{CreatePlayback, CreateRecord};

/// Length of the AUTH cookie (§1.4).
pub const COOKIE_LEN: usize = 256;

/// A sink or source named by index or by name (PulseAudio's
/// "index-or-name": `index` is `0xFFFFFFFF` when the name is meant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// The index (`0xFFFFFFFF`: by name).
    pub index: u32,
    /// The name.
    pub name: Option<String>,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// AUTH: protocol version and flags, the cookie.
    Auth {
        /// `version | flags` (§1.4).
        version_and_flags: u32,
        /// [`COOKIE_LEN`] bytes.
        cookie: Vec<u8>,
    },
    /// SET_CLIENT_NAME (v13: a proplist).
    SetClientName(Proplist),
    /// REGISTER_MEMFD_SHMID: the pool's id (its fd comes with the frame).
    RegisterMemfdShmid(u32),
    /// ENABLE_SRBCHANNEL, the client's ack (no body).
    EnableSrbchannel,
    /// A client's REPLY or ERROR (the body is not read).
    ClientReply,
    /// A command without a body: GET_SERVER_INFO, the *_INFO_LIST
    /// commands, STAT.
    Bare,
    /// GET_SINK_INFO / GET_SOURCE_INFO.
    DeviceInfo(DeviceRef),
    /// LOOKUP_SINK / LOOKUP_SOURCE: a name.
    Lookup(String),
    /// An object by index: GET_CLIENT_INFO, GET_SINK_INPUT_INFO,
    /// GET_SOURCE_OUTPUT_INFO, KILL_SINK_INPUT, KILL_SOURCE_OUTPUT.
    ByIndex(u32),
    /// SUBSCRIBE: the facility mask.
    Subscribe(u32),
    /// SET_SINK_VOLUME / SET_SOURCE_VOLUME.
    SetDeviceVolume {
        /// Which device.
        device: DeviceRef,
        /// The new volume.
        volume: CVolume,
    },
    /// SET_SINK_MUTE / SET_SOURCE_MUTE.
    SetDeviceMute {
        /// Which device.
        device: DeviceRef,
        /// Muted or not.
        muted: bool,
    },
    /// SET_SINK_INPUT_VOLUME / SET_SOURCE_OUTPUT_VOLUME.
    SetStreamVolume {
        /// The sink input or source output.
        index: u32,
        /// The new volume.
        volume: CVolume,
    },
    /// SET_SINK_INPUT_MUTE / SET_SOURCE_OUTPUT_MUTE.
    SetStreamMute {
        /// The sink input or source output.
        index: u32,
        /// Muted or not.
        muted: bool,
    },
    /// SET_DEFAULT_SINK / SET_DEFAULT_SOURCE: a name (absent: unset).
    SetDefault(Option<String>),
    /// UPDATE_CLIENT_PROPLIST.
    UpdateClientProplist {
        /// `PA_UPDATE_SET` (0), `MERGE` (1) or `REPLACE` (2); unchecked.
        mode: u32,
        /// The properties.
        props: Proplist,
    },
    /// REMOVE_CLIENT_PROPLIST: the keys.
    RemoveClientProplist(Vec<String>),
    /// CREATE_PLAYBACK_STREAM.
    CreatePlayback(Box<CreatePlayback>),
    /// CREATE_RECORD_STREAM.
    CreateRecord(Box<CreateRecord>),
    /// A stream command with only its channel: DELETE_*_STREAM,
    /// FINISH_UPLOAD_STREAM, DRAIN_PLAYBACK_STREAM, FLUSH_*, TRIGGER_PLAYBACK_STREAM,
    /// PREBUF_PLAYBACK_STREAM.
    Stream(u32),
    /// GET_PLAYBACK_LATENCY / GET_RECORD_LATENCY.
    GetLatency {
        /// The stream's channel.
        channel: u32,
        /// The client's clock when it asked.
        client_now: Timeval,
    },
    /// CORK_PLAYBACK_STREAM / CORK_RECORD_STREAM.
    Cork {
        /// The stream's channel.
        channel: u32,
        /// Cork (true) or uncork.
        cork: bool,
    },
    /// SET_PLAYBACK_STREAM_BUFFER_ATTR.
    SetPlaybackBufferAttr {
        /// The stream's channel.
        channel: u32,
        /// Requested maximum length.
        maxlength: u32,
        /// Requested target length.
        tlength: u32,
        /// Requested prebuffer.
        prebuf: u32,
        /// Requested minimum request.
        minreq: u32,
    },
    /// SET_RECORD_STREAM_BUFFER_ATTR.
    SetRecordBufferAttr {
        /// The stream's channel.
        channel: u32,
        /// Requested maximum length.
        maxlength: u32,
        /// Requested fragment size.
        fragsize: u32,
    },
    /// UPDATE_*_STREAM_SAMPLE_RATE.
    UpdateSampleRate {
        /// The stream's channel.
        channel: u32,
        /// The new rate.
        rate: u32,
    },
    /// SET_*_STREAM_NAME.
    SetStreamName {
        /// The stream's channel.
        channel: u32,
        /// The new name.
        name: String,
    },
    /// UPDATE_*_STREAM_PROPLIST.
    UpdateStreamProplist {
        /// The stream's channel.
        channel: u32,
        /// The update mode (unchecked).
        mode: u32,
        /// The properties.
        props: Proplist,
    },
    /// LOAD_MODULE: a module name and its argument string.
    LoadModule {
        /// The module's name.
        name: String,
        /// Its arguments.
        argument: Option<String>,
    },
    /// UNLOAD_MODULE: the module index.
    UnloadModule(u32),
    /// MOVE_SINK_INPUT / MOVE_SOURCE_OUTPUT: a stream and where to.
    MoveStream {
        /// The sink input or source output.
        index: u32,
        /// The sink or source to move it to.
        device: DeviceRef,
    },
    /// SUSPEND_SINK / SUSPEND_SOURCE (index `0xFFFFFFFF` and no name:
    /// every sink or source).
    Suspend {
        /// Which device.
        device: DeviceRef,
        /// Suspend (true) or resume.
        suspend: bool,
    },
    /// SEND_OBJECT_MESSAGE (v35): to an object path, a message and its
    /// parameters.
    ObjectMessage {
        /// The object (`/core`, …).
        path: String,
        /// The message (`list-handlers`, …).
        message: String,
        /// Its parameters.
        params: Option<String>,
    },
    /// CREATE_UPLOAD_STREAM.
    CreateUpload(Box<CreateUpload>),
    /// PLAY_SAMPLE.
    PlaySample(Box<PlaySample>),
    /// REMOVE_SAMPLE: the entry's name.
    RemoveSample(String),
    /// GET_SAMPLE_INFO: an entry by index, or by name when the index is
    /// `0xFFFFFFFF`.
    SampleInfo(DeviceRef),
    /// REMOVE_*_STREAM_PROPLIST.
    RemoveStreamProplist {
        /// The stream's channel.
        channel: u32,
        /// The keys.
        keys: Vec<String>,
    },
}

fn keys(r: &mut TagReader<'_>) -> Result<Vec<String>, TagError> {
    let mut keys = Vec::new();
    while let Some(k) = r.get_string()? {
        keys.push(k.to_owned());
    }
    Ok(keys)
}

fn device(r: &mut TagReader<'_>) -> Result<DeviceRef, TagError> {
    Ok(DeviceRef {
        index: r.get_u32()?,
        name: r.get_string()?.map(str::to_owned),
    })
}

/// The flags SET_*_STREAM_BUFFER_ATTR carries from v13 (adjust_latency)
/// and v14 (early_requests); read and not used.
fn attr_flags(r: &mut TagReader<'_>, version: u32) -> Result<(), TagError> {
    if version >= 13 {
        r.get_bool()?;
    }
    if version >= 14 {
        r.get_bool()?;
    }
    Ok(())
}

impl Request {
    /// Decodes the body of `cmd` (the reader is past command and tag) as
    /// `version` encodes it. `Ok(None)`: a command this decoder does not
    /// know (the server does not serve it). Trailing bytes are an error.
    pub fn decode(
        cmd: Command,
        r: &mut TagReader<'_>,
        version: u32,
    ) -> Result<Option<Request>, TagError> {
        use Command as C;
        let req = match cmd {
            C::Reply | C::Error => return Ok(Some(Request::ClientReply)),
            C::Auth => Request::Auth {
                version_and_flags: r.get_u32()?,
                cookie: r.get_arbitrary(COOKIE_LEN)?.to_vec(),
            },
            C::SetClientName => Request::SetClientName(r.get_proplist()?),
            C::RegisterMemfdShmid => Request::RegisterMemfdShmid(r.get_u32()?),
            C::EnableSrbchannel => Request::EnableSrbchannel,
            C::GetServerInfo
            | C::GetSinkInfoList
            | C::GetSourceInfoList
            | C::GetClientInfoList
            | C::GetSinkInputInfoList
            | C::GetSourceOutputInfoList
            | C::GetModuleInfoList
            | C::GetCardInfoList
            | C::GetSampleInfoList
            | C::Stat => Request::Bare,
            C::GetSinkInfo | C::GetSourceInfo => Request::DeviceInfo(device(r)?),
            C::LookupSink | C::LookupSource => {
                Request::Lookup(r.get_nonnull_string("device name")?.to_owned())
            }
            C::GetClientInfo
            | C::GetSinkInputInfo
            | C::GetSourceOutputInfo
            | C::GetModuleInfo
            | C::KillSinkInput
            | C::KillSourceOutput => Request::ByIndex(r.get_u32()?),
            C::Subscribe => Request::Subscribe(r.get_u32()?),
            C::SetSinkVolume | C::SetSourceVolume => Request::SetDeviceVolume {
                device: device(r)?,
                volume: r.get_cvolume()?,
            },
            C::SetSinkMute | C::SetSourceMute => Request::SetDeviceMute {
                device: device(r)?,
                muted: r.get_bool()?,
            },
            C::SetSinkInputVolume | C::SetSourceOutputVolume => Request::SetStreamVolume {
                index: r.get_u32()?,
                volume: r.get_cvolume()?,
            },
            C::SetSinkInputMute | C::SetSourceOutputMute => Request::SetStreamMute {
                index: r.get_u32()?,
                muted: r.get_bool()?,
            },
            C::SetDefaultSink | C::SetDefaultSource => {
                Request::SetDefault(r.get_string()?.map(str::to_owned))
            }
            C::UpdateClientProplist => Request::UpdateClientProplist {
                mode: r.get_u32()?,
                props: r.get_proplist()?,
            },
            C::RemoveClientProplist => Request::RemoveClientProplist(keys(r)?),
            // These two check the trailing bytes themselves.
            C::CreatePlaybackStream => {
                return Ok(Some(Request::CreatePlayback(Box::new(
                    CreatePlayback::parse(r, version)?,
                ))))
            }
            C::CreateRecordStream => {
                return Ok(Some(Request::CreateRecord(Box::new(CreateRecord::parse(
                    r, version,
                )?))))
            }
            C::CreateUploadStream => {
                return Ok(Some(Request::CreateUpload(Box::new(CreateUpload::parse(
                    r, version,
                )?))))
            }
            C::PlaySample => {
                return Ok(Some(Request::PlaySample(Box::new(PlaySample::parse(
                    r, version,
                )?))))
            }
            C::RemoveSample => {
                Request::RemoveSample(r.get_nonnull_string("sample name")?.to_owned())
            }
            C::GetSampleInfo => Request::SampleInfo(device(r)?),
            C::DeletePlaybackStream
            | C::DeleteRecordStream
            | C::DeleteUploadStream
            | C::FinishUploadStream
            | C::DrainPlaybackStream
            | C::FlushPlaybackStream
            | C::FlushRecordStream
            | C::TriggerPlaybackStream
            | C::PrebufPlaybackStream => Request::Stream(r.get_u32()?),
            C::GetPlaybackLatency | C::GetRecordLatency => Request::GetLatency {
                channel: r.get_u32()?,
                client_now: r.get_timeval()?,
            },
            C::CorkPlaybackStream | C::CorkRecordStream => Request::Cork {
                channel: r.get_u32()?,
                cork: r.get_bool()?,
            },
            C::SetPlaybackStreamBufferAttr => {
                let req = Request::SetPlaybackBufferAttr {
                    channel: r.get_u32()?,
                    maxlength: r.get_u32()?,
                    tlength: r.get_u32()?,
                    prebuf: r.get_u32()?,
                    minreq: r.get_u32()?,
                };
                attr_flags(r, version)?;
                req
            }
            C::SetRecordStreamBufferAttr => {
                let req = Request::SetRecordBufferAttr {
                    channel: r.get_u32()?,
                    maxlength: r.get_u32()?,
                    fragsize: r.get_u32()?,
                };
                attr_flags(r, version)?;
                req
            }
            C::UpdatePlaybackStreamSampleRate | C::UpdateRecordStreamSampleRate => {
                Request::UpdateSampleRate {
                    channel: r.get_u32()?,
                    rate: r.get_u32()?,
                }
            }
            C::SetPlaybackStreamName | C::SetRecordStreamName => Request::SetStreamName {
                channel: r.get_u32()?,
                name: r.get_nonnull_string("stream name")?.to_owned(),
            },
            C::UpdatePlaybackStreamProplist | C::UpdateRecordStreamProplist => {
                Request::UpdateStreamProplist {
                    channel: r.get_u32()?,
                    mode: r.get_u32()?,
                    props: r.get_proplist()?,
                }
            }
            C::RemovePlaybackStreamProplist | C::RemoveRecordStreamProplist => {
                Request::RemoveStreamProplist {
                    channel: r.get_u32()?,
                    keys: keys(r)?,
                }
            }
            C::LoadModule => Request::LoadModule {
                name: r.get_nonnull_string("module name")?.to_owned(),
                argument: r.get_string()?.map(str::to_owned),
            },
            C::UnloadModule => Request::UnloadModule(r.get_u32()?),
            C::MoveSinkInput | C::MoveSourceOutput => Request::MoveStream {
                index: r.get_u32()?,
                device: device(r)?,
            },
            C::SuspendSink | C::SuspendSource => Request::Suspend {
                device: device(r)?,
                suspend: r.get_bool()?,
            },
            C::SendObjectMessage => Request::ObjectMessage {
                path: r.get_nonnull_string("object path")?.to_owned(),
                message: r.get_nonnull_string("message")?.to_owned(),
                params: r.get_string()?.map(str::to_owned),
            },
            _ => return Ok(None),
        };
        if !matches!(req, Request::ClientReply) {
            r.finish()?;
        }
        Ok(Some(req))
    }

    /// The stream channel a stream command names (`None` for other
    /// requests and for stream creation).
    pub fn channel(&self) -> Option<u32> {
        match self {
            Request::Stream(c)
            | Request::GetLatency { channel: c, .. }
            | Request::Cork { channel: c, .. }
            | Request::SetPlaybackBufferAttr { channel: c, .. }
            | Request::SetRecordBufferAttr { channel: c, .. }
            | Request::UpdateSampleRate { channel: c, .. }
            | Request::SetStreamName { channel: c, .. }
            | Request::UpdateStreamProplist { channel: c, .. }
            | Request::RemoveStreamProplist { channel: c, .. } => Some(*c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tagstruct::TagWriter;

    fn decode(
        cmd: Command,
        body: impl FnOnce(&mut TagWriter),
        version: u32,
    ) -> Result<Option<Request>, TagError> {
        let mut w = TagWriter::new();
        body(&mut w);
        let bytes = w.into_bytes();
        Request::decode(cmd, &mut TagReader::new(&bytes), version)
    }

    #[test]
    fn bodies_decode_by_command_and_version() {
        assert_eq!(
            decode(
                Command::GetSinkInfo,
                |w| {
                    w.put_u32(0).put_string(None);
                },
                35
            ),
            Ok(Some(Request::DeviceInfo(DeviceRef {
                index: 0,
                name: None
            })))
        );
        assert_eq!(
            decode(
                Command::SetSinkMute,
                |w| {
                    w.put_u32(u32::MAX).put_string(Some("s")).put_bool(true);
                },
                35
            ),
            Ok(Some(Request::SetDeviceMute {
                device: DeviceRef {
                    index: u32::MAX,
                    name: Some("s".into())
                },
                muted: true
            }))
        );
        assert_eq!(
            decode(
                Command::RemoveClientProplist,
                |w| {
                    w.put_string(Some("a"))
                        .put_string(Some("b"))
                        .put_string(None);
                },
                35
            ),
            Ok(Some(Request::RemoveClientProplist(vec![
                "a".into(),
                "b".into()
            ])))
        );
        // v12 buffer attributes carry no flags, v14 two.
        let attr = |w: &mut TagWriter| {
            w.put_u32(3).put_u32(1).put_u32(2).put_u32(3).put_u32(4);
        };
        let want = Some(Request::SetPlaybackBufferAttr {
            channel: 3,
            maxlength: 1,
            tlength: 2,
            prebuf: 3,
            minreq: 4,
        });
        assert_eq!(
            decode(Command::SetPlaybackStreamBufferAttr, attr, 12),
            Ok(want.clone())
        );
        assert!(
            decode(Command::SetPlaybackStreamBufferAttr, attr, 14).is_err(),
            "v14 needs the two flags"
        );
        assert_eq!(
            decode(
                Command::SetPlaybackStreamBufferAttr,
                |w| {
                    attr(w);
                    w.put_bool(false).put_bool(true);
                },
                14
            ),
            Ok(want)
        );
        assert_eq!(decode(Command::AddAutoload, |_| {}, 35), Ok(None));
        // The sample cache's small bodies.
        assert_eq!(
            decode(
                Command::GetSampleInfo,
                |w| {
                    w.put_u32(u32::MAX).put_string(Some("bell"));
                },
                35
            ),
            Ok(Some(Request::SampleInfo(DeviceRef {
                index: u32::MAX,
                name: Some("bell".into())
            })))
        );
        assert_eq!(
            decode(
                Command::RemoveSample,
                |w| {
                    w.put_string(Some("bell"));
                },
                35
            ),
            Ok(Some(Request::RemoveSample("bell".into())))
        );
        assert!(decode(
            Command::RemoveSample,
            |w| {
                w.put_string(None);
            },
            35
        )
        .is_err());
        for cmd in [Command::FinishUploadStream, Command::DeleteUploadStream] {
            assert_eq!(
                decode(
                    cmd,
                    |w| {
                        w.put_u32(4);
                    },
                    35
                ),
                Ok(Some(Request::Stream(4)))
            );
        }
        assert_eq!(
            decode(Command::GetSampleInfoList, |_| {}, 35),
            Ok(Some(Request::Bare))
        );
        assert_eq!(
            decode(
                Command::SuspendSink,
                |w| {
                    w.put_u32(u32::MAX).put_string(None).put_bool(true);
                },
                35
            ),
            Ok(Some(Request::Suspend {
                device: DeviceRef {
                    index: u32::MAX,
                    name: None
                },
                suspend: true
            }))
        );
    }

    #[test]
    fn trailing_bytes_and_short_bodies_are_errors() {
        assert!(decode(
            Command::GetServerInfo,
            |w| {
                w.put_u32(1);
            },
            35
        )
        .is_err());
        assert!(decode(Command::Subscribe, |_| {}, 35).is_err());
        assert!(
            decode(
                Command::LookupSink,
                |w| {
                    w.put_string(None);
                },
                35
            )
            .is_err(),
            "a name is required"
        );
        assert!(decode(
            Command::Auth,
            |w| {
                w.put_u32(35).put_arbitrary(&[0; 255]);
            },
            0
        )
        .is_err());
        // A client's REPLY is not read (it may carry anything).
        assert_eq!(
            decode(
                Command::Reply,
                |w| {
                    w.put_u32(9);
                },
                35
            ),
            Ok(Some(Request::ClientReply))
        );
    }
}
