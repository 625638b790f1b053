//! The command table: every command srbd serves, its handler, and whether
//! it is allowed before AUTH (as PulseAudio's and pipewire-pulse's command
//! tables have it). [`crate::control::session::Session::handle_packet`]
//! decodes the command and tag, looks the command up here and calls the
//! handler; a command that is not in the table gets `ERROR(NOTSUPPORTED)`
//! (or nothing, without a tag), a command that needs AUTH before it
//! `ERROR(ACCESS)`, an unknown number `ERROR(COMMAND)`.
//!
//! Handlers take the request's reader positioned after the tag and return
//! the reply to send (if any); a malformed request is a
//! [`HandleError`] that closes the connection, a well-formed bad one an
//! `ERROR` reply.

use std::os::fd::OwnedFd;

use srb_pulse::commands::{Command, PaError, NO_TAG};
use srb_pulse::pstream::Frame;
use srb_pulse::request::Request;
use srb_pulse::tagstruct::{TagReader, TagWriter};

use crate::control::session::{error, HandleError, Session};

/// Who may send a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Also before AUTH (only AUTH itself).
    Anyone,
    /// Only an authorised client.
    Authorised,
}

/// One request as the handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The command.
    pub cmd: Command,
    /// Its tag (`NO_TAG`: no reply wanted).
    pub tag: u32,
    /// The negotiated protocol version (0 before AUTH).
    pub version: u32,
    /// The whole packet (for size limits).
    pub packet: &'a [u8],
}

/// A command handler: the request decoded by [`Request::decode`].
pub type Handler = fn(&mut Session, Call<'_>, Request) -> Result<Option<TagWriter>, HandleError>;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The command.
    pub cmd: Command,
    /// Who may send it.
    pub access: Access,
    /// What serves it.
    pub handler: Handler,
}

macro_rules! table {
    ($($access:ident $handler:path => [$($cmd:ident),* $(,)?];)*) => {
        /// Every command srbd serves.
        pub static COMMANDS: &[Entry] = &[
            $($(Entry { cmd: Command::$cmd, access: Access::$access, handler: $handler },)*)*
        ];
    };
}

table! {
    Anyone Session::on_auth => [Auth];
    Authorised Session::on_reply => [Reply, Error];
    Authorised Session::on_set_client_name => [SetClientName];
    Authorised Session::on_register_memfd_shmid => [RegisterMemfdShmid];
    Authorised Session::on_enable_srbchannel => [EnableSrbchannel];
    Authorised Session::on_introspect => [
        GetServerInfo, GetSinkInfo, GetSinkInfoList, GetSourceInfo, GetSourceInfoList,
        LookupSink, LookupSource, GetClientInfo, GetClientInfoList, GetSinkInputInfo,
        GetSinkInputInfoList, GetSourceOutputInfo, GetSourceOutputInfoList,
        GetModuleInfo, GetModuleInfoList, GetCardInfoList, Stat, Subscribe,
        SetSinkVolume, SetSinkMute, SetSourceVolume, SetSourceMute, SetSinkInputVolume,
        SetSinkInputMute, SetSourceOutputVolume, SetSourceOutputMute, SetDefaultSink,
        SetDefaultSource, KillSinkInput, KillSourceOutput, UpdateClientProplist,
        RemoveClientProplist,
    ];
    Authorised Session::on_server => [
        LoadModule, UnloadModule, SuspendSink, SuspendSource, MoveSinkInput, MoveSourceOutput,
        SendObjectMessage,
    ];
    Authorised Session::on_sample => [
        CreateUploadStream, DeleteUploadStream, FinishUploadStream, PlaySample, RemoveSample,
        GetSampleInfo, GetSampleInfoList,
    ];
    Authorised Session::on_stream => [
        CreatePlaybackStream, DeletePlaybackStream, CreateRecordStream, DeleteRecordStream,
        DrainPlaybackStream, GetPlaybackLatency, GetRecordLatency, CorkPlaybackStream,
        FlushPlaybackStream, TriggerPlaybackStream, PrebufPlaybackStream,
        CorkRecordStream, FlushRecordStream, SetPlaybackStreamBufferAttr,
        SetRecordStreamBufferAttr, UpdatePlaybackStreamSampleRate,
        UpdateRecordStreamSampleRate, SetPlaybackStreamName, SetRecordStreamName,
        UpdatePlaybackStreamProplist, UpdateRecordStreamProplist,
        RemovePlaybackStreamProplist, RemoveRecordStreamProplist,
    ];
}

/// The table row of `cmd` (`None`: not served).
pub fn lookup(cmd: Command) -> Option<&'static Entry> {
    // A linear scan of ~70 rows: a few dozen ns, less than decoding the
    // packet; no lazily built index to get wrong.
    COMMANDS.iter().find(|e| e.cmd == cmd)
}

impl Session {
    /// [`Session::handle_frame`] for a frame that arrived with `fds`. The
    /// handler that takes fds (REGISTER_MEMFD_SHMID) claims them; every fd
    /// left over is closed here, whatever the outcome: fds on frames that
    /// take none are ignored, never kept.
    pub fn handle_frame_with_fds(
        &mut self,
        frame: Frame,
        fds: Vec<OwnedFd>,
        out: &mut Vec<u8>,
    ) -> Result<(), HandleError> {
        self.frame_fds = fds;
        let result = self.handle_frame(frame, out);
        let left = std::mem::take(&mut self.frame_fds);
        if !left.is_empty() {
            tracing::debug!(
                client = self.client_index,
                n = left.len(),
                "closing received fds no handler claimed"
            );
        }
        drop(left);
        result
    }

    /// Handles one frame; appends the encoded frames to send to `out`.
    pub fn handle_frame(&mut self, frame: Frame, out: &mut Vec<u8>) -> Result<(), HandleError> {
        match frame {
            Frame::Packet(p) => {
                if let Some(w) = self.handle_packet(&p)? {
                    Frame::Packet(w.into_bytes()).encode_into(out)?;
                }
            }
            Frame::Memblock(m) => self.push_block(m.channel, m.offset, m.seek, &m.data, out)?,
            Frame::ShmRef(f) => self.shm_ref(f, out)?,
            Frame::Release { block_id } | Frame::Revoke { block_id } => {
                // We export no blocks to clients (record data goes inline).
                tracing::debug!(
                    client = self.client_index,
                    block_id,
                    "RELEASE/REVOKE of a block never exported, ignored"
                );
            }
        }
        Ok(())
    }

    /// Handles one packet through the command table
    /// ([`crate::control::dispatch`]); the reply to send, if any.
    pub fn handle_packet(&mut self, packet: &[u8]) -> Result<Option<TagWriter>, HandleError> {
        let mut r = TagReader::new(packet);
        let command = r.get_u32()?;
        let tag = r.get_u32()?;
        let Some(cmd) = Command::from_u32(command) else {
            tracing::debug!(command, tag, "unknown command");
            return Ok((tag != NO_TAG).then(|| error(tag, PaError::Command)));
        };
        tracing::trace!(client = self.client_index, ?cmd, tag, "request");
        let Some(entry) = lookup(cmd) else {
            return Ok(self.unsupported(cmd, tag));
        };
        if entry.access == Access::Authorised && self.version.is_none() {
            tracing::debug!(?cmd, "command before AUTH");
            return Ok((tag != NO_TAG).then(|| error(tag, PaError::Access)));
        }
        let call = Call {
            cmd,
            tag,
            version: self.version.unwrap_or(0),
            packet,
        };
        // One decoder per command (srb-pulse); a body that does not decode
        // closes the connection, whatever the handler would have said.
        let Some(req) = Request::decode(cmd, &mut r, call.version)? else {
            return Ok(self.unsupported(cmd, tag));
        };
        tracing::trace!(client = self.client_index, ?req, "decoded");
        (entry.handler)(self, call, req)
    }

    /// A REPLY or ERROR from the client: srbd asks clients nothing.
    pub(super) fn on_reply(
        &mut self,
        c: Call<'_>,
        _req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        tracing::debug!(cmd = ?c.cmd, tag = c.tag, "client reply to nothing, ignored");
        Ok(None)
    }

    /// Info, lookup, volume, mute, default, kill, subscribe and client
    /// proplist commands ([`crate::control::introspect`]).
    pub(super) fn on_introspect(
        &mut self,
        c: Call<'_>,
        req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        self.introspect(c.cmd, c.tag, req, c.version, c.packet.len())
    }

    /// Stream commands ([`crate::control::streams`]).
    pub(super) fn on_stream(
        &mut self,
        c: Call<'_>,
        req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        self.stream_command(c.cmd, c.tag, req, c.version, c.packet.len())
    }

    /// The fallback for commands no handler took.
    pub(super) fn unsupported(&self, cmd: Command, tag: u32) -> Option<TagWriter> {
        match cmd {
            _ if tag == NO_TAG => {
                tracing::info!(
                    client = self.client_index,
                    ?cmd,
                    "unsupported command without a tag, ignored"
                );
                None
            }
            _ => {
                tracing::info!(client = self.client_index, ?cmd, tag, "unsupported command");
                Some(error(tag, PaError::NotSupported))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_command_is_listed_once_and_only_auth_comes_before_auth() {
        let mut seen = HashSet::new();
        for e in COMMANDS {
            assert!(seen.insert(e.cmd), "{:?} listed twice", e.cmd);
            assert_eq!(
                e.access == Access::Anyone,
                e.cmd == Command::Auth,
                "{:?}: only AUTH is allowed before AUTH",
                e.cmd
            );
        }
        assert!(lookup(Command::GetServerInfo).is_some());
        // Served by nobody (yet): NOTSUPPORTED, not a crash.
        assert!(lookup(Command::AddAutoload).is_none());
    }
}
