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

use srb_pulse::commands::Command;
use srb_pulse::tagstruct::{TagReader, TagWriter};

use crate::control::session::{HandleError, Session};

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

/// A command handler.
pub type Handler =
    fn(&mut Session, Call<'_>, &mut TagReader<'_>) -> Result<Option<TagWriter>, HandleError>;

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
        GetModuleInfoList, GetCardInfoList, GetSampleInfoList, Stat, Subscribe,
        SetSinkVolume, SetSinkMute, SetSourceVolume, SetSourceMute, SetSinkInputVolume,
        SetSinkInputMute, SetSourceOutputVolume, SetSourceOutputMute, SetDefaultSink,
        SetDefaultSource, KillSinkInput, KillSourceOutput, UpdateClientProplist,
        RemoveClientProplist,
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
        assert!(lookup(Command::LoadModule).is_none());
    }
}
