//! The SHM reference validator (§4.3) and the import that uses it: for
//! any reference, segment size and frame size, an accepted range lies
//! inside the segment, is non-empty, whole frames and at most the limit;
//! a refused one names why. The import reads exactly the accepted range
//! from a real (unsealed, sometimes shrunk) memfd with `pread`.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use srb_pulse::pstream::{SeekMode, ShmRef, ShmRefFrame};
use srbd::control::shm::{validate, ShmError, ShmImports, ShmRefError, MAX_REF_LEN};

/// The pool the imports read: 64 KiB, registered once per thread; the
/// second fd lets an input shrink and regrow it.
struct Pool {
    imports: ShmImports,
    peer: std::os::fd::OwnedFd,
    buf: Vec<u8>,
}

const POOL_LEN: u64 = 65_536;

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new({
        let fd = srb_linux::memfd::create_unsealed_memfd("fuzz-pool", POOL_LEN).unwrap();
        let pattern: Vec<u8> = (0..POOL_LEN).map(|i| (i % 251) as u8).collect();
        rustix::io::pwrite(&fd, &pattern, 0).unwrap();
        let peer = rustix::io::fcntl_dupfd_cloexec(&fd, 0).unwrap();
        let mut imports = ShmImports::new();
        imports.register(1, vec![fd]).unwrap();
        Pool { imports, peer, buf: Vec::new() }
    });
}

fn u32_at(d: &[u8], i: usize) -> u32 {
    let mut b = [0u8; 4];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let r = ShmRef {
        block_id: u32_at(data, 0),
        shm_id: u32_at(data, 4),
        index: u32_at(data, 8),
        length: u32_at(data, 12),
    };
    let segment = u64::from(u32_at(data, 16)) | u64::from(u32_at(data, 20)) << 32;
    let frame = u32_at(data, 24) % 300;
    match validate(&r, segment, frame) {
        Ok((offset, len)) => {
            assert_eq!(offset, u64::from(r.index));
            assert_eq!(len as u64, u64::from(r.length));
            assert!(len > 0 && len as u64 <= u64::from(MAX_REF_LEN));
            assert_eq!(len as u64 % u64::from(frame), 0);
            assert!(offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= segment));
        }
        Err(ShmRefError::Empty { .. }) => assert_eq!(r.length, 0),
        Err(ShmRefError::NoFrameSize) => assert_eq!(frame, 0),
        Err(ShmRefError::Misaligned { .. }) => assert_ne!(r.length % frame, 0),
        Err(ShmRefError::TooLarge { .. }) => assert!(r.length > MAX_REF_LEN),
        Err(ShmRefError::OutOfBounds { .. }) => {
            assert!(u64::from(r.index) + u64::from(r.length) > segment)
        }
    }
    // The import path on a real pool: shm id 1 is registered, others not.
    let flags = data.get(28).copied().unwrap_or(0);
    let f = ShmRefFrame {
        channel: 0,
        offset: 0,
        seek: SeekMode::Relative,
        memfd: flags & 1 == 0,
        writable: false,
        shm: ShmRef {
            shm_id: if flags & 2 == 0 { 1 } else { r.shm_id },
            // Mostly near the pool so reads happen.
            index: if flags & 4 == 0 {
                r.index % 70_000
            } else {
                r.index
            },
            length: if flags & 8 == 0 {
                r.length % 70_000
            } else {
                r.length
            },
            ..r
        },
    };
    let frame = frame.max(1);
    POOL.with(|p| {
        let p = &mut *p.borrow_mut();
        // Sometimes the client shrinks its pool first.
        let shrunk = flags & 16 != 0;
        if shrunk {
            rustix::fs::ftruncate(&p.peer, u64::from(u32_at(data, 29)) % POOL_LEN).unwrap();
        }
        match p.imports.import(&f, frame, &mut p.buf) {
            Ok(()) => {
                assert_eq!(p.buf.len() as u64, u64::from(f.shm.length));
                let start = u64::from(f.shm.index);
                for (i, b) in p.buf.iter().enumerate() {
                    assert_eq!(u64::from(*b), (start + i as u64) % 251);
                }
                let _ = p.imports.release(f.shm.block_id);
            }
            Err(ShmError::Read { .. }) => assert!(shrunk),
            Err(_) => {}
        }
        assert_eq!(p.imports.outstanding(), 0);
        if shrunk {
            // Restore the pool for the next input.
            rustix::fs::ftruncate(&p.peer, POOL_LEN).unwrap();
            let pattern: Vec<u8> = (0..POOL_LEN).map(|i| (i % 251) as u8).collect();
            rustix::io::pwrite(&p.peer, &pattern, 0).unwrap();
        }
    });
});
