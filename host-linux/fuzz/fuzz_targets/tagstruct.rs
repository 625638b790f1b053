//! The tagstruct decoder (§2): every typed getter and `get_value` on
//! arbitrary bytes. Nothing may panic, every successful read consumes
//! bytes, and what `get_value` reads encodes back to bytes that decode to
//! the same values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use srb_pulse::tagstruct::{TagReader, TagWriter};

/// Calls getter `k` (0..=17); whether it succeeded.
fn get(r: &mut TagReader<'_>, k: u8) -> bool {
    match k {
        0 => r.get_u32().is_ok(),
        1 => r.get_u8().is_ok(),
        2 => r.get_u64().is_ok(),
        3 => r.get_s64().is_ok(),
        4 => r.get_usec().is_ok(),
        5 => r.get_bool().is_ok(),
        6 => r.get_string().is_ok(),
        7 => r.get_nonnull_string("fuzz").is_ok(),
        8 => r.get_arbitrary(16).is_ok(),
        9 => r.get_arbitrary_max(1024).is_ok(),
        10 => r.get_sample_spec().is_ok(),
        11 => r.get_channel_map().is_ok(),
        12 => r.get_cvolume().is_ok(),
        13 => r.get_volume().is_ok(),
        14 => r.get_timeval().is_ok(),
        15 => r.get_proplist().is_ok(),
        16 => r.get_format_info().is_ok(),
        _ => r.get_value().is_ok(),
    }
}

fuzz_target!(|data: &[u8]| {
    // Each getter over the whole input.
    for k in 0..=17u8 {
        let mut r = TagReader::new(data);
        while !r.is_empty() {
            let before = r.remaining();
            if !get(&mut r, k) {
                break;
            }
            assert!(r.remaining() < before, "getter {k} read nothing");
        }
        let _ = r.finish();
    }
    // A getter sequence chosen by the input itself: byte 0 is a seed.
    if let Some((&seed, rest)) = data.split_first() {
        let mut r = TagReader::new(rest);
        let mut k = seed;
        while !r.is_empty() && get(&mut r, k % 18) {
            k = k.wrapping_mul(31).wrapping_add(7);
        }
    }
    // get_value round trip.
    let mut r = TagReader::new(data);
    let mut values = Vec::new();
    while !r.is_empty() {
        match r.get_value() {
            Ok(v) => values.push(v),
            Err(_) => break,
        }
    }
    let mut w = TagWriter::new();
    for v in &values {
        w.put_value(v);
    }
    let mut again = TagReader::new(w.as_bytes());
    for v in &values {
        assert_eq!(&again.get_value().expect("re-encoded value decodes"), v);
    }
    again.finish().expect("nothing after the re-encoded values");
});
