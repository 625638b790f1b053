//! The sample cache's requests: CREATE_UPLOAD_STREAM (a write-only
//! stream whose bytes become a named cache entry at
//! FINISH_UPLOAD_STREAM) and PLAY_SAMPLE (play an entry on a sink), with
//! PulseAudio's checks. REMOVE_SAMPLE and GET_SAMPLE_INFO are small
//! enough to live in [`super::Request`].
//!
//! Wire bodies (after command and tag), as libpulse 16.1 sends them:
//!
//! | command | body |
//! |---|---|
//! | CREATE_UPLOAD_STREAM (15) | `s name` (may be null: the proplist's `event.id` or `media.name` names it), `a spec`, `m map`, `L length`, `[v13] P props` |
//! | DELETE_UPLOAD_STREAM (16), FINISH_UPLOAD_STREAM (17) | `L channel` |
//! | PLAY_SAMPLE (18) | `L sink index`, `s sink name`, `L volume` (`PA_VOLUME_INVALID`: the entry's own), `s sample name`, `[v13] P props` |
//! | REMOVE_SAMPLE (19) | `s name` |
//! | GET_SAMPLE_INFO (33) | `L index`, `s name` (by name when the index is `0xFFFFFFFF`) |
//!
//! The upload's data arrives as memblocks on the channel the reply names
//! (`L channel`, `L length`), exactly like a playback stream's.

use super::DeviceRef;
use crate::commands::PaError;
use crate::tagstruct::{ChannelMap, Proplist, SampleSpec, TagError, TagReader};

/// The largest entry PulseAudio accepts (`PA_SCACHE_ENTRY_SIZE_MAX`, 16 MiB).
pub const MAX_ENTRY_BYTES: u32 = 16 * 1024 * 1024;

/// Longest name PulseAudio's name registry accepts (`PA_NAME_MAX` less its
/// terminating NUL).
pub const MAX_NAME_LEN: usize = 127;

/// `PA_VOLUME_INVALID`: "no volume given" in PLAY_SAMPLE.
pub const VOLUME_INVALID: u32 = u32::MAX;

/// Whether `name` is one PulseAudio's name registry accepts for a sample:
/// 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `.`, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A decoded CREATE_UPLOAD_STREAM request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUpload {
    /// The entry's name as sent (may be absent: see [`CreateUpload::name`]).
    pub name: Option<String>,
    /// Sample spec of the uploaded bytes.
    pub spec: SampleSpec,
    /// Channel map.
    pub map: ChannelMap,
    /// Exactly how many bytes the client will upload.
    pub length: u32,
    /// The stream's properties (v13); before v13 the name is `media.name`.
    pub props: Proplist,
}

impl CreateUpload {
    /// Decodes the body as `version` encodes it; trailing bytes are an error.
    pub fn parse(r: &mut TagReader<'_>, version: u32) -> Result<Self, TagError> {
        let name = r.get_string()?.map(str::to_owned);
        let spec = r.get_sample_spec()?;
        let map = r.get_channel_map()?;
        let length = r.get_u32()?;
        let mut props = Proplist::new();
        if version >= 13 {
            props = r.get_proplist()?;
        } else if let Some(n) = &name {
            // Before v13 the name is the stream's only property; one that
            // cannot be stored is refused later by `name()`.
            let _ = props.set_str("media.name", n);
        }
        r.finish()?;
        Ok(Self {
            name,
            spec,
            map,
            length,
            props,
        })
    }

    /// The entry's name: the one sent, else the proplist's `event.id`,
    /// else its `media.name` (as PulseAudio picks it).
    pub fn name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .or_else(|| self.props.get_str("event.id"))
            .or_else(|| self.props.get_str("media.name"))
    }

    /// PulseAudio's checks: a valid spec and map of the same channel
    /// count, a length of whole frames, not zero, at most
    /// [`MAX_ENTRY_BYTES`] (else `TOOLARGE`), and a valid name.
    pub fn validate(&self) -> Result<(), PaError> {
        self.spec.check().map_err(|_| PaError::Invalid)?;
        self.map.check().map_err(|_| PaError::Invalid)?;
        if self.map.channels() != self.spec.channels {
            return Err(PaError::Invalid);
        }
        let frame = self.spec.frame_size().ok_or(PaError::Invalid)?;
        if self.length == 0 || !(self.length as usize).is_multiple_of(frame) {
            return Err(PaError::Invalid);
        }
        if self.length > MAX_ENTRY_BYTES {
            return Err(PaError::TooLarge);
        }
        match self.name() {
            Some(n) if valid_name(n) => Ok(()),
            _ => Err(PaError::Invalid),
        }
    }
}

/// A decoded PLAY_SAMPLE request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaySample {
    /// The sink (index `0xFFFFFFFF` and no name: the default).
    pub sink: DeviceRef,
    /// One volume for every channel ([`VOLUME_INVALID`]: the entry's own,
    /// or full volume).
    pub volume: u32,
    /// The entry's name.
    pub name: String,
    /// Properties for the sink input (v13).
    pub props: Proplist,
}

impl PlaySample {
    /// Decodes the body as `version` encodes it; trailing bytes are an
    /// error, and so is a missing sample name.
    pub fn parse(r: &mut TagReader<'_>, version: u32) -> Result<Self, TagError> {
        let sink = DeviceRef {
            index: r.get_u32()?,
            name: r.get_string()?.map(str::to_owned),
        };
        let volume = r.get_u32()?;
        let name = r.get_nonnull_string("sample name")?.to_owned();
        let props = if version >= 13 {
            r.get_proplist()?
        } else {
            Proplist::new()
        };
        r.finish()?;
        Ok(Self {
            sink,
            volume,
            name,
            props,
        })
    }

    /// PulseAudio's checks: the sink by index or by name, not both; a
    /// volume that is valid or [`VOLUME_INVALID`]; a valid sample name.
    pub fn validate(&self) -> Result<(), PaError> {
        if self.sink.index != crate::attr::DEFAULT && self.sink.name.is_some() {
            return Err(PaError::Invalid);
        }
        if self.volume != VOLUME_INVALID && self.volume > crate::tagstruct::VOLUME_MAX {
            return Err(PaError::Invalid);
        }
        if !valid_name(&self.name) {
            return Err(PaError::Invalid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::SampleFormat;
    use crate::tagstruct::TagWriter;

    fn spec() -> SampleSpec {
        SampleSpec {
            format: SampleFormat::S16Le,
            channels: 2,
            rate: 48_000,
        }
    }

    fn upload_body(name: Option<&str>, length: u32, props: &Proplist, version: u32) -> Vec<u8> {
        let mut w = TagWriter::new();
        w.put_string(name)
            .put_sample_spec(&spec())
            .put_channel_map(&ChannelMap::new(&[1, 2]).unwrap())
            .put_u32(length);
        if version >= 13 {
            w.put_proplist(props);
        }
        w.into_bytes()
    }

    #[test]
    fn upload_decodes_by_version_and_names_itself_as_pulseaudio_does() {
        let mut p = Proplist::new();
        p.set_str("media.name", "bell").unwrap();
        let b = upload_body(None, 4800, &p, 35);
        let u = CreateUpload::parse(&mut TagReader::new(&b), 35).unwrap();
        assert_eq!((u.name(), u.length), (Some("bell"), 4800));
        assert_eq!(u.validate(), Ok(()));
        p.set_str("event.id", "ev").unwrap();
        let b = upload_body(None, 4800, &p, 35);
        let u = CreateUpload::parse(&mut TagReader::new(&b), 35).unwrap();
        assert_eq!(u.name(), Some("ev"), "event.id before media.name");
        let b = upload_body(Some("x"), 4800, &p, 35);
        let u = CreateUpload::parse(&mut TagReader::new(&b), 35).unwrap();
        assert_eq!(u.name(), Some("x"), "the explicit name first");
        // v12: no proplist; the name is media.name.
        let b = upload_body(Some("old"), 8, &p, 12);
        let u = CreateUpload::parse(&mut TagReader::new(&b), 12).unwrap();
        assert_eq!(u.props.get_str("media.name"), Some("old"));
        // v13 without the proplist, and trailing bytes: malformed.
        let b = upload_body(Some("x"), 8, &p, 12);
        assert!(CreateUpload::parse(&mut TagReader::new(&b), 13).is_err());
        let mut b = upload_body(Some("x"), 8, &p, 35);
        b.extend_from_slice(&[b'L', 0, 0, 0, 1]);
        assert!(CreateUpload::parse(&mut TagReader::new(&b), 35).is_err());
    }

    #[test]
    fn upload_checks() {
        let ok = CreateUpload {
            name: Some("a".into()),
            spec: spec(),
            map: ChannelMap::new(&[1, 2]).unwrap(),
            length: 4,
            props: Proplist::new(),
        };
        assert_eq!(ok.validate(), Ok(()));
        let with = |f: &dyn Fn(&mut CreateUpload)| {
            let mut u = ok.clone();
            f(&mut u);
            u.validate()
        };
        assert_eq!(with(&|u| u.length = 0), Err(PaError::Invalid));
        assert_eq!(
            with(&|u| u.length = 6),
            Err(PaError::Invalid),
            "half a frame"
        );
        assert_eq!(
            with(&|u| u.length = MAX_ENTRY_BYTES + 4),
            Err(PaError::TooLarge)
        );
        assert_eq!(
            with(&|u| u.map = ChannelMap::new(&[0]).unwrap()),
            Err(PaError::Invalid)
        );
        assert_eq!(with(&|u| u.spec.rate = 0), Err(PaError::Invalid));
        assert_eq!(with(&|u| u.name = None), Err(PaError::Invalid), "no name");
        assert_eq!(
            with(&|u| u.name = Some("a b".into())),
            Err(PaError::Invalid)
        );
        assert!(valid_name("bell-window_system.1"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(MAX_NAME_LEN + 1)));
        assert!(valid_name(&"x".repeat(MAX_NAME_LEN)));
    }

    #[test]
    fn play_sample_round_trip_and_checks() {
        let mut props = Proplist::new();
        props.set_str("media.role", "event").unwrap();
        let body = |version: u32, index: u32, sink: Option<&str>, volume: u32| {
            let mut w = TagWriter::new();
            w.put_u32(index)
                .put_string(sink)
                .put_u32(volume)
                .put_string(Some("bell"));
            if version >= 13 {
                w.put_proplist(&props);
            }
            w.into_bytes()
        };
        let b = body(35, u32::MAX, None, 0x8000);
        let p = PlaySample::parse(&mut TagReader::new(&b), 35).unwrap();
        assert_eq!(
            p,
            PlaySample {
                sink: DeviceRef {
                    index: u32::MAX,
                    name: None
                },
                volume: 0x8000,
                name: "bell".into(),
                props: props.clone(),
            }
        );
        assert_eq!(p.validate(), Ok(()));
        let b = body(12, 0, None, VOLUME_INVALID);
        let p = PlaySample::parse(&mut TagReader::new(&b), 12).unwrap();
        assert_eq!((p.props.len(), p.validate()), (0, Ok(())));
        let b = body(35, 0, Some("s"), 0);
        let p = PlaySample::parse(&mut TagReader::new(&b), 35).unwrap();
        assert_eq!(p.validate(), Err(PaError::Invalid), "index and name");
        let b = body(35, u32::MAX, None, crate::tagstruct::VOLUME_MAX + 1);
        let p = PlaySample::parse(&mut TagReader::new(&b), 35).unwrap();
        assert_eq!(p.validate(), Err(PaError::Invalid), "volume");
        let b = body(35, u32::MAX, None, 0);
        assert!(
            PlaySample::parse(&mut TagReader::new(&b), 12).is_err(),
            "trailing"
        );
    }
}
