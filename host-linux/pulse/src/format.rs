//! Format negotiation (protocol ≥ 21): a client may create a stream with
//! an invalid sample spec and a list of [`FormatInfo`]s instead, each an
//! encoding with properties whose values are small JSON texts:
//! `format.sample_format` (`"s16le"`), `format.rate` (`44100`),
//! `format.channels` (`2`), `format.channel_map`
//! (`"front-left,front-right"`), any of them possibly a list (`[ 44100,
//! 48000 ]`, `[ "s16le", "float32le" ]`) or an integer range (`{ "min":
//! 8000, "max": 96000 }`), or absent.
//!
//! [`negotiate`] picks the first PCM entry that yields a valid spec and
//! fixes it: a fixed value is taken, a list or range gives the server's
//! own value when it is allowed (else the first list entry, or the range
//! clamped), an absent property the server's value (as PulseAudio's
//! `pa_format_info_to_sample_spec2` falls back to the sink's). Non-PCM
//! entries are skipped; none usable is `NOTSUPPORTED`. The chosen entry is
//! returned with fixed values, for the reply.

use crate::commands::PaError;
use crate::sample::SampleFormat;
use crate::tagstruct::{ChannelMap, FormatInfo, Proplist, SampleSpec, CHANNELS_MAX};

/// `PA_ENCODING_PCM`.
pub const ENCODING_PCM: u8 = 1;

/// The property keys of a PCM format.
pub const SAMPLE_FORMAT: &str = "format.sample_format";
/// The rate property.
pub const RATE: &str = "format.rate";
/// The channel count property.
pub const CHANNELS: &str = "format.channels";
/// The channel map property.
pub const CHANNEL_MAP: &str = "format.channel_map";

/// A format property's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A list of integers.
    IntList(Vec<i64>),
    /// A list of strings.
    StrList(Vec<String>),
    /// An integer range, both ends included.
    IntRange {
        /// The smallest value.
        min: i64,
        /// The largest value.
        max: i64,
    },
}

/// Why a property value is not one of the shapes above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed format property value {0:?}")]
pub struct BadValue(pub String);

/// Parses a property value (the JSON subset PulseAudio writes).
pub fn parse_value(text: &str) -> Result<PropValue, BadValue> {
    let bad = || BadValue(text.chars().take(64).collect());
    let s = text.trim();
    let string = |s: &str| -> Option<String> {
        let inner = s.strip_prefix('"')?.strip_suffix('"')?;
        (!inner.contains('"') && !inner.contains('\\')).then(|| inner.to_owned())
    };
    let int = |s: &str| s.trim().parse::<i64>().ok();
    if let Some(v) = string(s) {
        return Ok(PropValue::Str(v));
    }
    if let Some(v) = int(s) {
        return Ok(PropValue::Int(v));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let items: Vec<&str> = inner.split(',').map(str::trim).collect();
        if items.is_empty() || items.iter().any(|i| i.is_empty()) {
            return Err(bad());
        }
        if let Some(v) = items.iter().map(|i| int(i)).collect::<Option<Vec<_>>>() {
            return Ok(PropValue::IntList(v));
        }
        if let Some(v) = items.iter().map(|i| string(i)).collect::<Option<Vec<_>>>() {
            return Ok(PropValue::StrList(v));
        }
        return Err(bad());
    }
    if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let (mut min, mut max) = (None, None);
        for field in inner.split(',') {
            let (k, v) = field.split_once(':').ok_or_else(bad)?;
            match string(k.trim()).as_deref() {
                Some("min") => min = int(v),
                Some("max") => max = int(v),
                _ => return Err(bad()),
            }
        }
        return match (min, max) {
            (Some(min), Some(max)) if min <= max => Ok(PropValue::IntRange { min, max }),
            _ => Err(bad()),
        };
    }
    Err(bad())
}

/// Why one format entry could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not PCM.
    #[error("encoding {0} is not PCM")]
    NotPcm(u8),
    /// A property value is malformed.
    #[error(transparent)]
    Bad(#[from] BadValue),
    /// A property has the wrong shape or an impossible value.
    #[error("{key}: {why}")]
    Invalid {
        /// The property.
        key: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

fn prop(props: &Proplist, key: &str) -> Result<Option<PropValue>, BadValue> {
    props.get_str(key).map(parse_value).transpose()
}

fn pick_int(v: &PropValue, want: i64, key: &'static str) -> Result<i64, EntryError> {
    let invalid = |why| EntryError::Invalid { key, why };
    match v {
        PropValue::Int(i) => Ok(*i),
        PropValue::IntList(l) if l.contains(&want) => Ok(want),
        PropValue::IntList(l) => l.first().copied().ok_or(invalid("empty list")),
        PropValue::IntRange { min, max } => Ok(want.clamp(*min, *max)),
        _ => Err(invalid("not an integer")),
    }
}

/// The spec, map and fixed format of one entry, or why not.
pub fn fix_entry(
    f: &FormatInfo,
    sink: &SampleSpec,
    sink_map: &ChannelMap,
) -> Result<(SampleSpec, ChannelMap, FormatInfo), EntryError> {
    if f.encoding != ENCODING_PCM {
        return Err(EntryError::NotPcm(f.encoding));
    }
    let format = match prop(&f.props, SAMPLE_FORMAT)? {
        None => sink.format,
        Some(PropValue::Str(s)) => SampleFormat::from_name(&s).ok_or(EntryError::Invalid {
            key: SAMPLE_FORMAT,
            why: "unknown sample format",
        })?,
        Some(PropValue::StrList(l)) => {
            let known: Vec<SampleFormat> = l
                .iter()
                .filter_map(|s| SampleFormat::from_name(s))
                .collect();
            if known.contains(&sink.format) {
                sink.format
            } else {
                *known.first().ok_or(EntryError::Invalid {
                    key: SAMPLE_FORMAT,
                    why: "no known sample format in the list",
                })?
            }
        }
        Some(_) => {
            return Err(EntryError::Invalid {
                key: SAMPLE_FORMAT,
                why: "not a string",
            })
        }
    };
    let rate = match prop(&f.props, RATE)? {
        None => i64::from(sink.rate),
        Some(v) => pick_int(&v, i64::from(sink.rate), RATE)?,
    };
    let channels = match prop(&f.props, CHANNELS)? {
        None => i64::from(sink.channels),
        Some(v) => pick_int(&v, i64::from(sink.channels), CHANNELS)?,
    };
    let spec = SampleSpec {
        format,
        channels: u8::try_from(channels)
            .ok()
            .filter(|c| (1..=CHANNELS_MAX).contains(c))
            .ok_or(EntryError::Invalid {
                key: CHANNELS,
                why: "out of range",
            })?,
        rate: u32::try_from(rate).map_err(|_| EntryError::Invalid {
            key: RATE,
            why: "out of range",
        })?,
    };
    if spec.check().is_err() {
        return Err(EntryError::Invalid {
            key: RATE,
            why: "not a valid sample spec",
        });
    }
    let map = match prop(&f.props, CHANNEL_MAP)? {
        Some(PropValue::Str(names)) => {
            let m = parse_channel_map(&names).ok_or(EntryError::Invalid {
                key: CHANNEL_MAP,
                why: "unknown channel position",
            })?;
            if m.channels() != spec.channels {
                return Err(EntryError::Invalid {
                    key: CHANNEL_MAP,
                    why: "channel count differs",
                });
            }
            m
        }
        Some(_) => {
            return Err(EntryError::Invalid {
                key: CHANNEL_MAP,
                why: "not a string",
            })
        }
        None if spec.channels == sink.channels => sink_map.clone(),
        None => default_map(spec.channels),
    };
    let mut props = Proplist::new();
    // Short ASCII values under the proplist's limits: cannot fail.
    let _ = props.set_str(SAMPLE_FORMAT, &format!("\"{}\"", format.name()));
    let _ = props.set_str(RATE, &spec.rate.to_string());
    let _ = props.set_str(CHANNELS, &spec.channels.to_string());
    let _ = props.set_str(CHANNEL_MAP, &format!("\"{}\"", map_names(&map)));
    Ok((
        spec,
        map,
        FormatInfo {
            encoding: ENCODING_PCM,
            props,
        },
    ))
}

/// Picks the first usable PCM entry of `formats` (see the module docs);
/// `sink`/`sink_map` fill what an entry leaves open. `NOTSUPPORTED` when
/// no entry is PCM, `INVALID` when PCM entries exist but none is usable.
pub fn negotiate(
    formats: &[FormatInfo],
    sink: &SampleSpec,
    sink_map: &ChannelMap,
) -> Result<(SampleSpec, ChannelMap, FormatInfo), PaError> {
    let mut pcm_seen = false;
    for f in formats {
        match fix_entry(f, sink, sink_map) {
            Ok(chosen) => return Ok(chosen),
            Err(EntryError::NotPcm(_)) => {}
            Err(_) => pcm_seen = true,
        }
    }
    Err(if pcm_seen {
        PaError::Invalid
    } else {
        PaError::NotSupported
    })
}

/// PulseAudio's channel position names, by position number.
const POSITIONS: [&str; 51] = [
    "mono",
    "front-left",
    "front-right",
    "front-center",
    "rear-center",
    "rear-left",
    "rear-right",
    "lfe",
    "front-left-of-center",
    "front-right-of-center",
    "side-left",
    "side-right",
    "aux0",
    "aux1",
    "aux2",
    "aux3",
    "aux4",
    "aux5",
    "aux6",
    "aux7",
    "aux8",
    "aux9",
    "aux10",
    "aux11",
    "aux12",
    "aux13",
    "aux14",
    "aux15",
    "aux16",
    "aux17",
    "aux18",
    "aux19",
    "aux20",
    "aux21",
    "aux22",
    "aux23",
    "aux24",
    "aux25",
    "aux26",
    "aux27",
    "aux28",
    "aux29",
    "aux30",
    "aux31",
    "top-center",
    "top-front-left",
    "top-front-right",
    "top-front-center",
    "top-rear-left",
    "top-rear-right",
    "top-rear-center",
];

/// A channel map from PulseAudio's comma-separated position names
/// (`pa_channel_map_parse`, names only).
pub fn parse_channel_map(names: &str) -> Option<ChannelMap> {
    let positions: Option<Vec<u8>> = names
        .split(',')
        .map(|n| {
            POSITIONS
                .iter()
                .position(|p| *p == n.trim())
                .map(|i| i as u8)
        })
        .collect();
    ChannelMap::new(&positions?).ok()
}

/// The names of a channel map's positions, comma-separated.
pub fn map_names(map: &ChannelMap) -> String {
    map.positions()
        .iter()
        .map(|&p| POSITIONS.get(usize::from(p)).copied().unwrap_or("invalid"))
        .collect::<Vec<_>>()
        .join(",")
}

/// PulseAudio's default map for `channels` (ALSA's order for the usual
/// counts, AUX positions beyond).
pub fn default_map(channels: u8) -> ChannelMap {
    let positions: Vec<u8> = match channels {
        1 => vec![0],
        2 => vec![1, 2],
        3 => vec![1, 2, 7],
        4 => vec![1, 2, 5, 6],
        5 => vec![1, 2, 5, 6, 7],
        6 => vec![1, 2, 5, 6, 3, 7],
        8 => vec![1, 2, 5, 6, 3, 7, 10, 11],
        n => (0..n).map(|i| 12 + i).collect(),
    };
    // At most 32 positions, all valid.
    ChannelMap::new(&positions).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(pairs: &[(&str, &str)]) -> FormatInfo {
        let mut props = Proplist::new();
        for (k, v) in pairs {
            props.set_str(k, v).unwrap();
        }
        FormatInfo {
            encoding: ENCODING_PCM,
            props,
        }
    }

    fn sink() -> (SampleSpec, ChannelMap) {
        (
            SampleSpec {
                format: SampleFormat::Float32Le,
                channels: 2,
                rate: 48_000,
            },
            default_map(2),
        )
    }

    #[test]
    fn values_of_every_shape() {
        assert_eq!(parse_value("44100"), Ok(PropValue::Int(44100)));
        assert_eq!(parse_value("\"s16le\""), Ok(PropValue::Str("s16le".into())));
        assert_eq!(
            parse_value("[ 44100, 48000 ]"),
            Ok(PropValue::IntList(vec![44100, 48000]))
        );
        assert_eq!(
            parse_value("[ \"s16le\", \"float32le\" ]"),
            Ok(PropValue::StrList(vec!["s16le".into(), "float32le".into()]))
        );
        assert_eq!(
            parse_value("{ \"min\": 8000, \"max\": 96000 }"),
            Ok(PropValue::IntRange {
                min: 8000,
                max: 96000
            })
        );
        for bad in [
            "",
            "[",
            "[]",
            "[1,]",
            "{ \"min\": 9, \"max\": 1 }",
            "{\"x\": 1}",
            "s16le",
            "\"a\"b\"",
        ] {
            assert!(parse_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fixed_lists_ranges_and_absent_properties() {
        let (ss, map) = sink();
        // GStreamer's fixed entry.
        let (s, m, f) = negotiate(
            &[pcm(&[
                (SAMPLE_FORMAT, "\"s16le\""),
                (RATE, "44100"),
                (CHANNELS, "1"),
                (CHANNEL_MAP, "\"mono\""),
            ])],
            &ss,
            &map,
        )
        .unwrap();
        assert_eq!(
            (s.format, s.rate, s.channels),
            (SampleFormat::S16Le, 44100, 1)
        );
        assert_eq!(m.positions(), &[0]);
        assert_eq!(f.props.get_str(RATE), Some("44100"));
        // Lists and ranges take the sink's values when allowed.
        let (s, m, _) = negotiate(
            &[pcm(&[
                (SAMPLE_FORMAT, "[ \"s16le\", \"float32le\" ]"),
                (RATE, "{ \"min\": 8000, \"max\": 96000 }"),
                (CHANNELS, "[ 1, 2 ]"),
            ])],
            &ss,
            &map,
        )
        .unwrap();
        assert_eq!(s, ss);
        assert_eq!(m, map);
        // ...else the first entry, or the range's nearest end.
        let (s, m, _) = negotiate(
            &[pcm(&[
                (SAMPLE_FORMAT, "[ \"s24le\", \"s16le\" ]"),
                (RATE, "{ \"min\": 8000, \"max\": 22050 }"),
                (CHANNELS, "[ 6 ]"),
            ])],
            &ss,
            &map,
        )
        .unwrap();
        assert_eq!(
            (s.format, s.rate, s.channels),
            (SampleFormat::S24Le, 22050, 6)
        );
        assert_eq!(m, default_map(6));
        // Nothing given: the sink's spec.
        assert_eq!(negotiate(&[pcm(&[])], &ss, &map).unwrap().0, ss);
    }

    #[test]
    fn non_pcm_only_is_notsupported_and_malformed_is_invalid() {
        let (ss, map) = sink();
        let ac3 = FormatInfo {
            encoding: 2,
            props: Proplist::new(),
        };
        assert_eq!(
            negotiate(std::slice::from_ref(&ac3), &ss, &map),
            Err(PaError::NotSupported)
        );
        assert_eq!(negotiate(&[], &ss, &map), Err(PaError::NotSupported));
        for bad in [
            (RATE, "fast"),
            (RATE, "\"44100\""),
            (RATE, "0"),
            (CHANNELS, "99"),
            (SAMPLE_FORMAT, "\"pcm\""),
            (SAMPLE_FORMAT, "3"),
            (CHANNEL_MAP, "\"front-left\""),
            (CHANNEL_MAP, "\"up,down\""),
        ] {
            assert_eq!(
                negotiate(&[ac3.clone(), pcm(&[bad])], &ss, &map),
                Err(PaError::Invalid),
                "{bad:?}"
            );
        }
        // A bad entry before a good one: the good one is taken.
        let (s, _, _) =
            negotiate(&[pcm(&[(RATE, "fast")]), pcm(&[(RATE, "8000")])], &ss, &map).unwrap();
        assert_eq!(s.rate, 8000);
    }

    #[test]
    fn channel_map_names_round_trip() {
        for n in 1..=32 {
            let m = default_map(n);
            assert_eq!(m.channels(), n);
            assert_eq!(parse_channel_map(&map_names(&m)), Some(m));
        }
    }
}
