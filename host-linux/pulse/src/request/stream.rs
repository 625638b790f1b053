//! CREATE_PLAYBACK_STREAM (§6.5) and CREATE_RECORD_STREAM (§6.6): the
//! two requests with version-dependent bodies, decoded as the client's
//! negotiated version encodes them, and checked as PulseAudio checks them
//! (the `ERROR` code for a request that decodes but cannot be served).

use crate::attr;
use crate::commands::PaError;
use crate::tagstruct::{
    CVolume, ChannelMap, FormatInfo, Proplist, SampleSpec, TagError, TagReader,
};

/// `PA_ENCODING_PCM`.
pub const ENCODING_PCM: u8 = 1;
/// Most formats a client may offer in one request.
pub const MAX_FORMATS: u8 = 16;

/// A decoded CREATE_PLAYBACK_STREAM request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePlayback {
    /// Sample spec.
    pub spec: SampleSpec,
    /// Channel map.
    pub map: ChannelMap,
    /// Sink by index (`0xFFFFFFFF`: by name or default).
    pub sink_index: u32,
    /// Sink by name.
    pub sink_name: Option<String>,
    /// Requested maximum length.
    pub maxlength: u32,
    /// Start corked.
    pub corked: bool,
    /// Requested target length.
    pub tlength: u32,
    /// Requested prebuffer.
    pub prebuf: u32,
    /// Requested minimum request.
    pub minreq: u32,
    /// Initial volume.
    pub volume: CVolume,
    /// `variable_rate` (v12): UPDATE_PLAYBACK_STREAM_SAMPLE_RATE allowed.
    pub variable_rate: bool,
    /// `start_muted` (v13).
    pub start_muted: bool,
    /// `adjust_latency` (v13).
    pub adjust_latency: bool,
    /// Stream properties (v13).
    pub props: Proplist,
    /// `volume_set` (v14).
    pub volume_set: bool,
    /// `early_requests` (v14).
    pub early_requests: bool,
    /// `muted_set` (v15).
    pub muted_set: bool,
    /// `passthrough` (v18).
    pub passthrough: bool,
    /// Offered formats (v21).
    pub formats: Vec<FormatInfo>,
}

impl CreatePlayback {
    /// Decodes the request body (after command and tag) as `version`
    /// encodes it; trailing bytes are an error.
    pub fn parse(r: &mut TagReader<'_>, version: u32) -> Result<Self, TagError> {
        let spec = r.get_sample_spec()?;
        let map = r.get_channel_map()?;
        let sink_index = r.get_u32()?;
        let sink_name = r.get_string()?.map(str::to_owned);
        let maxlength = r.get_u32()?;
        let corked = r.get_bool()?;
        let tlength = r.get_u32()?;
        let prebuf = r.get_u32()?;
        let minreq = r.get_u32()?;
        let _syncid = r.get_u32()?;
        let volume = r.get_cvolume()?;
        let mut c = Self {
            spec,
            map,
            sink_index,
            sink_name,
            maxlength,
            corked,
            tlength,
            prebuf,
            minreq,
            volume,
            variable_rate: false,
            start_muted: false,
            adjust_latency: false,
            props: Proplist::new(),
            volume_set: true,
            early_requests: false,
            muted_set: false,
            passthrough: false,
            formats: Vec::new(),
        };
        if version >= 12 {
            // no_remap, no_remix, fix_format, fix_rate, fix_channels, no_move
            for _ in 0..6 {
                r.get_bool()?;
            }
            c.variable_rate = r.get_bool()?;
        }
        if version >= 13 {
            c.start_muted = r.get_bool()?;
            c.adjust_latency = r.get_bool()?;
            c.props = r.get_proplist()?;
        }
        if version >= 14 {
            c.volume_set = r.get_bool()?;
            c.early_requests = r.get_bool()?;
        }
        if version >= 15 {
            c.muted_set = r.get_bool()?;
            let _dont_inhibit_auto_suspend = r.get_bool()?;
            let _fail_on_suspend = r.get_bool()?;
        }
        if version >= 17 {
            let _relative_volume = r.get_bool()?;
        }
        if version >= 18 {
            c.passthrough = r.get_bool()?;
        }
        if version >= 21 {
            let n = r.get_u8()?;
            if n > MAX_FORMATS {
                return Err(TagError::TooLong {
                    what: "format list",
                    len: usize::from(n),
                    max: usize::from(MAX_FORMATS),
                });
            }
            for _ in 0..n {
                c.formats.push(r.get_format_info()?);
            }
        }
        r.finish()?;
        Ok(c)
    }

    /// Checks what libpulse and PulseAudio check (§6.5); the error code
    /// for the ERROR reply on failure.
    pub fn validate(&self) -> Result<(), PaError> {
        if self.sink_index != attr::DEFAULT && self.sink_name.is_some() {
            return Err(PaError::Invalid);
        }
        if self.passthrough {
            return Err(PaError::NotSupported);
        }
        if !self.formats.is_empty() && !self.formats.iter().any(|f| f.encoding == ENCODING_PCM) {
            return Err(PaError::NotSupported);
        }
        self.spec.check().map_err(|_| PaError::Invalid)?;
        self.map.check().map_err(|_| PaError::Invalid)?;
        if self.map.channels() != self.spec.channels {
            return Err(PaError::Invalid);
        }
        if self.volume.channels() != self.spec.channels {
            return Err(PaError::Invalid);
        }
        self.volume.check().map_err(|_| PaError::Invalid)?;
        Ok(())
    }
}

/// A decoded CREATE_RECORD_STREAM request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRecord {
    /// Sample spec.
    pub spec: SampleSpec,
    /// Channel map.
    pub map: ChannelMap,
    /// Source by index (`0xFFFFFFFF`: by name or default).
    pub source_index: u32,
    /// Source by name.
    pub source_name: Option<String>,
    /// Requested maximum length.
    pub maxlength: u32,
    /// Start corked.
    pub corked: bool,
    /// Requested fragment size.
    pub fragsize: u32,
    /// `PEAK_DETECT` (v13): deliver one peak per output sample instead of
    /// the audio (level meters).
    pub peak_detect: bool,
    /// `ADJUST_LATENCY` (v13).
    pub adjust_latency: bool,
    /// Stream properties (v13).
    pub props: Proplist,
    /// Record only this sink input (v13, `pa_stream_set_monitor_stream`);
    /// `0xFFFFFFFF`: the whole source.
    pub direct_on_input: u32,
    /// Offered formats (v22).
    pub formats: Vec<FormatInfo>,
    /// Initial volume (v22), if set.
    pub volume: Option<CVolume>,
    /// Initial mute (v22), if set.
    pub muted: Option<bool>,
    /// `passthrough` (v22).
    pub passthrough: bool,
}

impl CreateRecord {
    /// Decodes the request body (after command and tag) as `version`
    /// encodes it; trailing bytes are an error.
    pub fn parse(r: &mut TagReader<'_>, version: u32) -> Result<Self, TagError> {
        let spec = r.get_sample_spec()?;
        let map = r.get_channel_map()?;
        let source_index = r.get_u32()?;
        let source_name = r.get_string()?.map(str::to_owned);
        let maxlength = r.get_u32()?;
        let corked = r.get_bool()?;
        let fragsize = r.get_u32()?;
        let mut c = Self {
            spec,
            map,
            source_index,
            source_name,
            maxlength,
            corked,
            fragsize,
            peak_detect: false,
            adjust_latency: false,
            props: Proplist::new(),
            direct_on_input: attr::DEFAULT,
            formats: Vec::new(),
            volume: None,
            muted: None,
            passthrough: false,
        };
        if version >= 12 {
            for _ in 0..7 {
                r.get_bool()?;
            }
        }
        if version >= 13 {
            c.peak_detect = r.get_bool()?;
            c.adjust_latency = r.get_bool()?;
            c.props = r.get_proplist()?;
            c.direct_on_input = r.get_u32()?;
        }
        if version >= 14 {
            let _early_requests = r.get_bool()?;
        }
        if version >= 15 {
            let _dont_inhibit_auto_suspend = r.get_bool()?;
            let _fail_on_suspend = r.get_bool()?;
        }
        if version >= 22 {
            let n = r.get_u8()?;
            if n > MAX_FORMATS {
                return Err(TagError::TooLong {
                    what: "format list",
                    len: usize::from(n),
                    max: usize::from(MAX_FORMATS),
                });
            }
            for _ in 0..n {
                c.formats.push(r.get_format_info()?);
            }
            let volume = r.get_cvolume()?;
            let muted = r.get_bool()?;
            let volume_set = r.get_bool()?;
            let muted_set = r.get_bool()?;
            let _relative_volume = r.get_bool()?;
            c.passthrough = r.get_bool()?;
            c.volume = volume_set.then_some(volume);
            c.muted = muted_set.then_some(muted);
        }
        r.finish()?;
        Ok(c)
    }

    /// Checks the request; the error code for the ERROR reply on failure.
    pub fn validate(&self) -> Result<(), PaError> {
        if self.source_index != attr::DEFAULT && self.source_name.is_some() {
            return Err(PaError::Invalid);
        }
        if self.passthrough {
            return Err(PaError::NotSupported);
        }
        if !self.formats.is_empty() && !self.formats.iter().any(|f| f.encoding == ENCODING_PCM) {
            return Err(PaError::NotSupported);
        }
        self.spec.check().map_err(|_| PaError::Invalid)?;
        self.map.check().map_err(|_| PaError::Invalid)?;
        if self.map.channels() != self.spec.channels {
            return Err(PaError::Invalid);
        }
        if let Some(v) = &self.volume {
            if v.channels() != self.spec.channels {
                return Err(PaError::Invalid);
            }
            v.check().map_err(|_| PaError::Invalid)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tagstruct::TagWriter;

    fn request_bytes(version: u32, f: impl FnOnce(&mut TagWriter)) -> Vec<u8> {
        let mut w = TagWriter::new();
        w.put_sample_spec(&SampleSpec {
            format: crate::sample::SampleFormat::S16Le,
            channels: 2,
            rate: 44_100,
        })
        .put_channel_map(&ChannelMap::new(&[1, 2]).unwrap())
        .put_u32(attr::DEFAULT)
        .put_string(None)
        .put_u32(attr::DEFAULT)
        .put_bool(false)
        .put_u32(attr::DEFAULT)
        .put_u32(attr::DEFAULT)
        .put_u32(attr::DEFAULT)
        .put_u32(0)
        .put_cvolume(&CVolume::new(&[0x10000, 0x10000]).unwrap());
        if version >= 12 {
            for _ in 0..7 {
                w.put_bool(false);
            }
        }
        if version >= 13 {
            w.put_bool(false)
                .put_bool(false)
                .put_proplist(&Proplist::new());
        }
        if version >= 14 {
            w.put_bool(false).put_bool(false);
        }
        if version >= 15 {
            w.put_bool(false).put_bool(false).put_bool(false);
        }
        if version >= 17 {
            w.put_bool(false);
        }
        if version >= 18 {
            w.put_bool(false);
        }
        if version >= 21 {
            w.put_u8(0);
        }
        f(&mut w);
        w.into_bytes()
    }

    #[test]
    fn parses_pacat_request_for_each_version() {
        for v in [13, 14, 15, 17, 18, 21, 32, 35] {
            let b = request_bytes(v, |_| {});
            let c = CreatePlayback::parse(&mut TagReader::new(&b), v).unwrap();
            assert_eq!(c.spec.rate, 44_100);
            assert_eq!(c.validate(), Ok(()));
        }
        let b = request_bytes(35, |w| {
            w.put_u32(1);
        });
        assert!(CreatePlayback::parse(&mut TagReader::new(&b), 35).is_err());
    }

    /// A CREATE_RECORD_STREAM body as libpulse 16.1 writes it at v35.
    fn record_bytes(peak: bool, direct_on_input: u32, formats: &[FormatInfo]) -> Vec<u8> {
        let mut w = TagWriter::new();
        w.put_sample_spec(&SampleSpec {
            format: crate::sample::SampleFormat::Float32Le,
            channels: 1,
            rate: 25,
        })
        .put_channel_map(&ChannelMap::new(&[0]).unwrap())
        .put_u32(attr::DEFAULT)
        .put_string(None)
        .put_u32(attr::DEFAULT)
        .put_bool(false)
        .put_u32(4);
        for _ in 0..7 {
            w.put_bool(false);
        }
        w.put_bool(peak)
            .put_bool(true)
            .put_proplist(&Proplist::new())
            .put_u32(direct_on_input);
        w.put_bool(false); // v14 early_requests
        w.put_bool(false).put_bool(false); // v15
        w.put_u8(formats.len() as u8);
        for f in formats {
            w.put_format_info(f);
        }
        w.put_cvolume(&CVolume::new(&[0x10000]).unwrap())
            .put_bool(false)
            .put_bool(false)
            .put_bool(false)
            .put_bool(false)
            .put_bool(false);
        w.into_bytes()
    }

    #[test]
    fn record_request_carries_peak_detect_monitor_stream_and_formats() {
        let b = record_bytes(true, 7, &[]);
        let c = CreateRecord::parse(&mut TagReader::new(&b), 35).unwrap();
        assert!(c.peak_detect && c.adjust_latency);
        assert_eq!((c.direct_on_input, c.fragsize), (7, 4));
        assert_eq!(c.validate(), Ok(()), "monitor_stream is served");
        let ac3 = FormatInfo {
            encoding: 2,
            props: Proplist::new(),
        };
        let b = record_bytes(false, attr::DEFAULT, std::slice::from_ref(&ac3));
        let c = CreateRecord::parse(&mut TagReader::new(&b), 35).unwrap();
        assert_eq!(c.formats, vec![ac3]);
        assert_eq!(c.validate(), Err(PaError::NotSupported), "no PCM offered");
        // v21 has no record formats: the same bytes have a tail too many.
        assert!(CreateRecord::parse(&mut TagReader::new(&b), 21).is_err());
    }

    #[test]
    fn validation_catches_what_pulseaudio_refuses() {
        let b = request_bytes(35, |_| {});
        let base = CreatePlayback::parse(&mut TagReader::new(&b), 35).unwrap();
        let mut c = base.clone();
        c.sink_index = 0;
        c.sink_name = Some("srb_output".into());
        assert_eq!(c.validate(), Err(PaError::Invalid));
        let mut c = base.clone();
        c.map = ChannelMap::new(&[0]).unwrap();
        assert_eq!(c.validate(), Err(PaError::Invalid));
        let mut c = base.clone();
        c.volume = CVolume::new(&[0x10000]).unwrap();
        assert_eq!(c.validate(), Err(PaError::Invalid));
        let mut c = base.clone();
        c.spec.rate = 0;
        assert_eq!(c.validate(), Err(PaError::Invalid));
        let mut c = base;
        c.passthrough = true;
        assert_eq!(c.validate(), Err(PaError::NotSupported));
    }
}
