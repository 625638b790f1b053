//! Buffer attributes: what a client asked for (`0xFFFFFFFF` = "server
//! chooses") turned into the values a stream runs with (protocol doc §7.4,
//! §7.5). Pure functions; the rules are PulseAudio's, written from the
//! doc's description.

/// "Server chooses" in a buffer-attribute field.
pub const DEFAULT: u32 = 0xFFFF_FFFF;
/// The largest queue a stream may have (PulseAudio's memblockq limit).
pub const MAX_LENGTH: u32 = 4 * 1024 * 1024;
/// Default target length, in milliseconds.
pub const DEFAULT_TLENGTH_MS: u64 = 2000;
/// Default minimum request, in milliseconds.
pub const DEFAULT_MINREQ_MS: u64 = 20;
/// Default record fragment, in milliseconds.
pub const DEFAULT_FRAGSIZE_MS: u64 = 2000;

/// Final playback attributes, in bytes, each a whole number of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaybackAttr {
    /// Queue capacity: writes beyond it overflow.
    pub maxlength: u32,
    /// Target fill: the server requests data up to this level.
    pub tlength: u32,
    /// Playback starts once this much is queued.
    pub prebuf: u32,
    /// The smallest request the server sends.
    pub minreq: u32,
}

/// Final record attributes, in bytes, each a whole number of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAttr {
    /// Queue capacity on the client side.
    pub maxlength: u32,
    /// The largest chunk the server sends at once.
    pub fragsize: u32,
}

/// `ms` milliseconds of audio in bytes, rounded down to frames.
pub fn ms_to_bytes(ms: u64, rate: u32, frame: u32) -> u32 {
    let frames = ms * u64::from(rate) / 1000;
    u32::try_from(frames * u64::from(frame)).unwrap_or(u32::MAX)
}

/// Microseconds that `bytes` of audio last.
pub fn bytes_to_usec(bytes: u64, rate: u32, frame: u32) -> u64 {
    if rate == 0 || frame == 0 {
        return 0;
    }
    (bytes / u64::from(frame)).saturating_mul(1_000_000) / u64::from(rate)
}

fn round_down(v: u32, frame: u32) -> u32 {
    v - v % frame
}

fn round_up(v: u32, frame: u32) -> u32 {
    v.div_ceil(frame).saturating_mul(frame)
}

fn fix_maxlength(maxlength: u32, frame: u32) -> u32 {
    let m = if maxlength == DEFAULT || maxlength > MAX_LENGTH {
        MAX_LENGTH
    } else {
        maxlength
    };
    round_down(m, frame).max(frame)
}

/// The attributes a playback stream runs with. `frame` is the client's
/// frame size (> 0), `rate` its sample rate.
pub fn fix_playback(
    maxlength: u32,
    tlength: u32,
    prebuf: u32,
    minreq: u32,
    rate: u32,
    frame: u32,
) -> PlaybackAttr {
    let frame = frame.max(1);
    let maxlength = fix_maxlength(maxlength, frame);
    let tlength = if tlength == DEFAULT || tlength == 0 {
        ms_to_bytes(DEFAULT_TLENGTH_MS, rate, frame)
    } else {
        tlength
    };
    let mut tlength = round_up(tlength, frame).clamp(frame, maxlength);
    let minreq = if minreq == DEFAULT || minreq == 0 {
        ms_to_bytes(DEFAULT_MINREQ_MS, rate, frame).min(round_down(tlength / 4, frame))
    } else {
        minreq
    };
    // Clamped before any arithmetic: a client's minreq near u32::MAX must
    // not overflow `minreq + frame` below (found by fuzzing).
    let minreq = round_down(minreq.min(maxlength), frame).max(frame);
    // The target must leave room for at least one request above minreq.
    if tlength < minreq + frame {
        tlength = (minreq + frame).min(maxlength);
    }
    let minreq = if tlength < minreq + frame {
        // Only when maxlength is tiny: shrink minreq instead.
        round_down(tlength.saturating_sub(frame), frame).max(frame)
    } else {
        minreq
    };
    let prebuf_max = (tlength + frame).saturating_sub(minreq);
    let prebuf = if prebuf == DEFAULT || prebuf > prebuf_max {
        prebuf_max
    } else {
        round_down(prebuf, frame)
    };
    PlaybackAttr {
        maxlength,
        tlength,
        prebuf,
        minreq,
    }
}

/// `attr` raised so that a server that mixes in periods of `period`
/// bytes (in the client's frames) can serve it: `tlength` at least one
/// period plus one `minreq` in flight, `maxlength` at least that, and
/// `prebuf` (when it was the default, the largest allowed) at least a
/// period, so playback starts. Below that a stream would wait forever for
/// a period's worth of audio the client is never asked for. The raised
/// values go back to the client in the reply, as PulseAudio adjusts them.
pub fn playback_for_period(attr: PlaybackAttr, period: u32, frame: u32) -> PlaybackAttr {
    let frame = frame.max(1);
    let period = round_up(period, frame).max(frame);
    let want = period.saturating_add(attr.minreq);
    if attr.tlength >= want {
        return attr;
    }
    let old_prebuf_max = (attr.tlength + frame).saturating_sub(attr.minreq);
    let tlength = want;
    let maxlength = attr.maxlength.max(tlength);
    let prebuf_max = (tlength + frame).saturating_sub(attr.minreq);
    let prebuf = if attr.prebuf >= old_prebuf_max {
        prebuf_max
    } else {
        attr.prebuf.min(prebuf_max)
    };
    PlaybackAttr {
        maxlength,
        tlength,
        prebuf,
        minreq: attr.minreq,
    }
}

/// `attr` with `fragsize` raised to one period of `period` bytes (in the
/// client's frames): the server delivers whole periods, so that is what
/// the client gets and what the reply says.
pub fn record_for_period(attr: RecordAttr, period: u32, frame: u32) -> RecordAttr {
    let frame = frame.max(1);
    let period = round_up(period, frame).max(frame);
    let fragsize = attr.fragsize.max(period);
    RecordAttr {
        maxlength: attr.maxlength.max(fragsize),
        fragsize,
    }
}

/// The attributes a record stream runs with.
pub fn fix_record(maxlength: u32, fragsize: u32, rate: u32, frame: u32) -> RecordAttr {
    let frame = frame.max(1);
    let maxlength = fix_maxlength(maxlength, frame);
    let fragsize = if fragsize == DEFAULT || fragsize == 0 {
        ms_to_bytes(DEFAULT_FRAGSIZE_MS, rate, frame)
    } else {
        fragsize
    };
    let fragsize = round_down(fragsize, frame).clamp(frame, maxlength);
    RecordAttr {
        maxlength,
        fragsize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pacat_defaults_match_pulseaudio() {
        // §7.4: observed 4194304 / 352800 / 349276 / 3528 for s16le 2ch 44.1 kHz.
        let a = fix_playback(DEFAULT, DEFAULT, DEFAULT, DEFAULT, 44_100, 4);
        assert_eq!(
            a,
            PlaybackAttr {
                maxlength: 4_194_304,
                tlength: 352_800,
                prebuf: 349_276,
                minreq: 3528,
            }
        );
    }

    #[test]
    fn record_default_fragsize_is_two_seconds() {
        let a = fix_record(DEFAULT, DEFAULT, 44_100, 4);
        assert_eq!(a.fragsize, 352_800);
        assert_eq!(a.maxlength, MAX_LENGTH);
        let a = fix_record(DEFAULT, 88_200, 44_100, 4);
        assert_eq!(a.fragsize, 88_200);
    }

    #[test]
    fn explicit_values_are_kept_when_sane() {
        let a = fix_playback(DEFAULT, 19_200, 0, 3_840, 48_000, 8);
        assert_eq!((a.tlength, a.prebuf, a.minreq), (19_200, 0, 3_840));
    }

    #[test]
    fn oversized_and_odd_values_are_fixed() {
        let a = fix_playback(u32::MAX - 1, 7, 5, 3, 48_000, 8);
        assert_eq!(a.maxlength, MAX_LENGTH);
        assert_eq!(a.minreq, 8);
        assert_eq!(a.tlength, 16);
        assert_eq!(a.prebuf, 0);
    }

    #[test]
    fn extreme_requests_never_overflow() {
        // The fuzzer's find: minreq 0xFFFFFFFD with a 4-byte frame made
        // `minreq + frame` overflow.
        for minreq in [u32::MAX - 2, u32::MAX - 1, u32::MAX - 128, 1 << 31] {
            for frame in [1, 4, 8, 128] {
                for tlength in [DEFAULT, 0, 1, u32::MAX - 1] {
                    let a = fix_playback(DEFAULT, tlength, u32::MAX - 1, minreq, 44_100, frame);
                    assert!(a.minreq >= frame && a.minreq <= a.maxlength, "{a:?}");
                    assert!(a.tlength >= frame && a.tlength <= a.maxlength, "{a:?}");
                    assert!(a.prebuf <= a.tlength + frame, "{a:?}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn invariants_hold_for_any_request(
            maxlength in any::<u32>(), tlength in any::<u32>(), prebuf in any::<u32>(),
            minreq in any::<u32>(), rate in 1u32..=384_000, frame in 1u32..=128,
        ) {
            let a = fix_playback(maxlength, tlength, prebuf, minreq, rate, frame);
            for v in [a.maxlength, a.tlength, a.prebuf, a.minreq] {
                prop_assert_eq!(v % frame, 0);
            }
            prop_assert!(a.maxlength <= MAX_LENGTH.max(frame));
            prop_assert!(a.minreq >= frame);
            prop_assert!(a.tlength >= frame && a.tlength <= a.maxlength);
            prop_assert!(a.prebuf <= a.tlength + frame);
            let r = fix_record(maxlength, tlength, rate, frame);
            prop_assert!(r.fragsize >= frame && r.fragsize <= r.maxlength);
            prop_assert_eq!(r.fragsize % frame, 0);
        }
    }

    #[test]
    fn latencies_below_a_period_are_raised_to_the_smallest_that_plays() {
        // pacat --latency-msec=5, s16 stereo 48 kHz, 10 ms periods.
        let a = fix_playback(DEFAULT, 960, DEFAULT, DEFAULT, 48_000, 4);
        assert_eq!((a.tlength, a.minreq), (960, 240));
        let b = playback_for_period(a, 1920, 4);
        assert_eq!(b.tlength, 1920 + 240);
        assert_eq!(b.prebuf, b.tlength + 4 - b.minreq, "default prebuf follows");
        assert!(b.prebuf >= 1920, "a full period before playback starts");
        assert!(b.maxlength >= b.tlength);
        // Enough already: unchanged.
        let big = fix_playback(DEFAULT, 19_200, DEFAULT, DEFAULT, 48_000, 4);
        assert_eq!(playback_for_period(big, 1920, 4), big);
        // A tiny maxlength is raised too, an explicit small prebuf kept.
        let tiny = fix_playback(400, 400, 8, 100, 48_000, 4);
        let c = playback_for_period(tiny, 1920, 4);
        assert!(c.maxlength >= c.tlength && c.tlength >= 1920 + c.minreq);
        assert_eq!(c.prebuf, 8);
        // Record: whole periods.
        let r = fix_record(DEFAULT, 960, 48_000, 4);
        assert_eq!(record_for_period(r, 1920, 4).fragsize, 1920);
        let r = fix_record(DEFAULT, 38_400, 48_000, 4);
        assert_eq!(record_for_period(r, 1920, 4), r);
    }
}
