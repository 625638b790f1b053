//! [`UnsealedPool`]: reading a peer's memfd that cannot be trusted to stay put.
//!
//! libpulse hands the server its 64 MiB memory pool as an **unsealed** memfd
//! (`pa-native-protocol.md` §4.1, §4.3) and may `ftruncate` it at any time.
//! Touching a mapping past the new end raises SIGBUS. PulseAudio guards with
//! a SIGBUS handler; we never map such a file. [`UnsealedPool::read_at`]
//! copies with `pread`, which returns a short read (here an error) when the
//! file shrank, never a signal. All bounds arithmetic is in `u64`, so a
//! hostile `(offset, length)` pair cannot overflow into range.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;

use crate::fdkind::{classify, FdKind};

/// Why a peer's pool memfd was refused. The fd is closed in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolImportError {
    /// The descriptor is not a memfd.
    #[error("expected a memfd, got a {kind}")]
    NotMemfd {
        /// What arrived instead.
        kind: FdKind,
    },
    /// Its size is zero, above the limit, or not a multiple of 8 (the
    /// checks libpulse's own importer makes).
    #[error("pool size {size} is not a non-zero multiple of 8 up to {max}")]
    BadSize {
        /// The size `fstat` reported.
        size: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// `fstat` failed.
    #[error("inspecting the pool memfd failed: {0}")]
    Inspect(Errno),
}

/// Why [`UnsealedPool::read_at`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolReadError {
    /// The range does not lie within the size registered at import.
    #[error("range {offset}+{len} is outside the pool of {size} bytes")]
    OutOfBounds {
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// The pool's size at import.
        size: u64,
    },
    /// The file ended early: the peer shrank it after registering it.
    #[error("pool shrank: read {got} of {wanted} bytes at {offset}")]
    Truncated {
        /// Start of the range.
        offset: u64,
        /// Bytes asked for.
        wanted: u64,
        /// Bytes the file still had.
        got: u64,
    },
    /// `pread` failed.
    #[error("pread failed: {0}")]
    Io(Errno),
}

/// A peer's unsealed memfd, read with `pread` only.
#[derive(Debug)]
pub struct UnsealedPool {
    fd: OwnedFd,
    size: u64,
}

impl UnsealedPool {
    /// Checks that `fd` is a memfd of a sane size (at most `max_size`) and
    /// keeps it. Seals are not required and not trusted.
    pub fn import(fd: OwnedFd, max_size: u64) -> Result<Self, PoolImportError> {
        let kind = classify(fd.as_fd()).map_err(PoolImportError::Inspect)?;
        if kind != FdKind::Memfd {
            return Err(PoolImportError::NotMemfd { kind });
        }
        let st = rustix::fs::fstat(&fd).map_err(PoolImportError::Inspect)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size == 0 || size > max_size || size % 8 != 0 {
            return Err(PoolImportError::BadSize {
                size,
                max: max_size,
            });
        }
        Ok(Self { fd, size })
    }

    /// The size the pool had when it was imported.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the pool is empty (never true: empty pools are refused).
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Fills `buf` from the pool at `offset`. The range must lie within the
    /// size seen at import; if the peer shrank the file since, the result is
    /// [`PoolReadError::Truncated`], never a signal.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), PoolReadError> {
        let len = buf.len() as u64;
        let in_bounds = offset.checked_add(len).is_some_and(|end| end <= self.size);
        if !in_bounds {
            return Err(PoolReadError::OutOfBounds {
                offset,
                len,
                size: self.size,
            });
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            match rustix::io::pread(&self.fd, &mut buf[done..], at) {
                Ok(0) => {
                    return Err(PoolReadError::Truncated {
                        offset,
                        wanted: len,
                        got: done as u64,
                    })
                }
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(PoolReadError::Io(e)),
            }
        }
        Ok(())
    }
}

impl AsFd for UnsealedPool {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfd::create_unsealed_memfd;

    fn pool_with(bytes: &[u8]) -> (UnsealedPool, OwnedFd) {
        let fd = create_unsealed_memfd("pool", bytes.len() as u64).unwrap();
        rustix::io::pwrite(&fd, bytes, 0).unwrap();
        let ours = rustix::io::fcntl_dupfd_cloexec(&fd, 0).unwrap();
        (UnsealedPool::import(fd, 1 << 20).unwrap(), ours)
    }

    #[test]
    fn reads_inside_the_pool_return_its_bytes() {
        let data: Vec<u8> = (0..64u8).collect();
        let (pool, _) = pool_with(&data);
        let mut buf = [0u8; 8];
        pool.read_at(56, &mut buf).unwrap();
        assert_eq!(buf, [56, 57, 58, 59, 60, 61, 62, 63]);
        pool.read_at(64, &mut []).unwrap();
    }

    #[test]
    fn ranges_past_the_end_or_overflowing_are_refused() {
        let (pool, _) = pool_with(&[0u8; 64]);
        let mut buf = [0u8; 8];
        assert_eq!(
            pool.read_at(57, &mut buf),
            Err(PoolReadError::OutOfBounds {
                offset: 57,
                len: 8,
                size: 64
            })
        );
        assert_eq!(
            pool.read_at(u64::MAX - 3, &mut buf),
            Err(PoolReadError::OutOfBounds {
                offset: u64::MAX - 3,
                len: 8,
                size: 64
            })
        );
    }

    #[test]
    fn a_pool_the_peer_shrank_gives_truncated_not_sigbus() {
        let (pool, peer) = pool_with(&[7u8; 4096]);
        rustix::fs::ftruncate(&peer, 1000).unwrap();
        let mut buf = [0u8; 100];
        assert_eq!(
            pool.read_at(950, &mut buf),
            Err(PoolReadError::Truncated {
                offset: 950,
                wanted: 100,
                got: 50
            })
        );
        assert_eq!(
            pool.read_at(2000, &mut buf),
            Err(PoolReadError::Truncated {
                offset: 2000,
                wanted: 100,
                got: 0
            })
        );
    }

    #[test]
    fn odd_sizes_and_non_memfds_are_refused() {
        let fd = create_unsealed_memfd("pool", 12).unwrap();
        assert_eq!(
            UnsealedPool::import(fd, 1 << 20).unwrap_err(),
            PoolImportError::BadSize {
                size: 12,
                max: 1 << 20
            }
        );
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(
            UnsealedPool::import(r, 1 << 20).unwrap_err(),
            PoolImportError::NotMemfd { kind: FdKind::Pipe }
        );
    }
}
