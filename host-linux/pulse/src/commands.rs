//! Command numbers (protocol doc §6.1) and error codes (§1.7).

macro_rules! commands {
    ($($(#[$doc:meta])* $name:ident = $n:literal,)*) => {
        /// A native-protocol command number (the first `u32` of a packet).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Command {
            $($(#[$doc])* #[allow(missing_docs)] $name = $n,)*
        }

        impl Command {
            /// The command with this number, if there is one.
            pub fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($n => Some(Self::$name),)*
                    _ => None,
                }
            }
        }
    };
}

commands! {
    Error = 0,
    Timeout = 1,
    Reply = 2,
    CreatePlaybackStream = 3,
    DeletePlaybackStream = 4,
    CreateRecordStream = 5,
    DeleteRecordStream = 6,
    Exit = 7,
    Auth = 8,
    SetClientName = 9,
    LookupSink = 10,
    LookupSource = 11,
    DrainPlaybackStream = 12,
    Stat = 13,
    GetPlaybackLatency = 14,
    CreateUploadStream = 15,
    DeleteUploadStream = 16,
    FinishUploadStream = 17,
    PlaySample = 18,
    RemoveSample = 19,
    GetServerInfo = 20,
    GetSinkInfo = 21,
    GetSinkInfoList = 22,
    GetSourceInfo = 23,
    GetSourceInfoList = 24,
    GetModuleInfo = 25,
    GetModuleInfoList = 26,
    GetClientInfo = 27,
    GetClientInfoList = 28,
    GetSinkInputInfo = 29,
    GetSinkInputInfoList = 30,
    GetSourceOutputInfo = 31,
    GetSourceOutputInfoList = 32,
    GetSampleInfo = 33,
    GetSampleInfoList = 34,
    Subscribe = 35,
    SetSinkVolume = 36,
    SetSinkInputVolume = 37,
    SetSourceVolume = 38,
    SetSinkMute = 39,
    SetSourceMute = 40,
    CorkPlaybackStream = 41,
    FlushPlaybackStream = 42,
    TriggerPlaybackStream = 43,
    SetDefaultSink = 44,
    SetDefaultSource = 45,
    SetPlaybackStreamName = 46,
    SetRecordStreamName = 47,
    KillClient = 48,
    KillSinkInput = 49,
    KillSourceOutput = 50,
    LoadModule = 51,
    UnloadModule = 52,
    /// Obsolete.
    AddAutoload = 53,
    /// Obsolete.
    RemoveAutoload = 54,
    /// Obsolete.
    GetAutoloadInfo = 55,
    /// Obsolete.
    GetAutoloadInfoList = 56,
    GetRecordLatency = 57,
    CorkRecordStream = 58,
    FlushRecordStream = 59,
    PrebufPlaybackStream = 60,
    Request = 61,
    Overflow = 62,
    Underflow = 63,
    PlaybackStreamKilled = 64,
    RecordStreamKilled = 65,
    SubscribeEvent = 66,
    MoveSinkInput = 67,
    MoveSourceOutput = 68,
    SetSinkInputMute = 69,
    SuspendSink = 70,
    SuspendSource = 71,
    SetPlaybackStreamBufferAttr = 72,
    SetRecordStreamBufferAttr = 73,
    UpdatePlaybackStreamSampleRate = 74,
    UpdateRecordStreamSampleRate = 75,
    PlaybackStreamSuspended = 76,
    RecordStreamSuspended = 77,
    PlaybackStreamMoved = 78,
    RecordStreamMoved = 79,
    UpdateRecordStreamProplist = 80,
    UpdatePlaybackStreamProplist = 81,
    UpdateClientProplist = 82,
    RemoveRecordStreamProplist = 83,
    RemovePlaybackStreamProplist = 84,
    RemoveClientProplist = 85,
    Started = 86,
    Extension = 87,
    GetCardInfo = 88,
    GetCardInfoList = 89,
    SetCardProfile = 90,
    ClientEvent = 91,
    PlaybackStreamEvent = 92,
    RecordStreamEvent = 93,
    PlaybackBufferAttrChanged = 94,
    RecordBufferAttrChanged = 95,
    SetSinkPort = 96,
    SetSourcePort = 97,
    SetSourceOutputVolume = 98,
    SetSourceOutputMute = 99,
    SetPortLatencyOffset = 100,
    EnableSrbchannel = 101,
    DisableSrbchannel = 102,
    RegisterMemfdShmid = 103,
    SendObjectMessage = 104,
}

/// One past the highest command number libpulse 16.1 knows.
pub const COMMAND_MAX: u32 = 105;

/// The tag of server-initiated packets (and of client packets that want no
/// reply).
pub const NO_TAG: u32 = 0xFFFF_FFFF;

/// An error code carried by an `ERROR` reply (§1.7). Never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PaError {
    /// Access denied.
    Access = 1,
    /// Unknown command.
    Command = 2,
    /// Invalid argument.
    Invalid = 3,
    /// No such entity.
    NoEntity = 5,
    /// Protocol error.
    Protocol = 7,
    /// PA_ERR_MODINITFAILED: a module failed to load (or does not exist).
    ModInitFailed = 14,
    /// Bad state.
    BadState = 15,
    /// Incompatible protocol version.
    Version = 17,
    /// `PA_ERR_TOOLARGE`: a request above a size limit.
    TooLarge = 18,
    /// Operation not supported.
    NotSupported = 19,
    /// Not implemented.
    NotImplemented = 23,
}

impl PaError {
    /// The wire value.
    pub fn code(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_dense() {
        for n in 0..COMMAND_MAX {
            let c = Command::from_u32(n).unwrap_or_else(|| panic!("no command {n}"));
            assert_eq!(c as u32, n);
        }
        assert_eq!(Command::from_u32(COMMAND_MAX), None);
        assert_eq!(Command::from_u32(u32::MAX), None);
    }

    #[test]
    fn doc_numbers() {
        assert_eq!(Command::Auth as u32, 8);
        assert_eq!(Command::GetServerInfo as u32, 20);
        assert_eq!(Command::GetCardInfoList as u32, 89);
        assert_eq!(Command::RegisterMemfdShmid as u32, 103);
        assert_eq!(PaError::NotSupported.code(), 19);
    }
}
