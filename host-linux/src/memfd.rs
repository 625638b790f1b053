//! [`SealedMemfd`]: shared memory that cannot shrink under a mapping.
//!
//! **Creating** ([`SealedMemfd::create`]): `memfd_create` with `MFD_CLOEXEC |
//! MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL` (retried without `MFD_NOEXEC_SEAL`
//! when a kernel older than 6.3 answers `EINVAL`), `ftruncate` to the size,
//! then the seals `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, all before the
//! fd can leave the process. No write seal: libpulse maps every memfd it is
//! given read-write (`pa-native-protocol.md` §4.2), and so do our peers.
//!
//! **Importing** ([`SealedMemfd::import`]) a memfd a peer sent: it must be a
//! memfd (regular file answering `F_GET_SEALS`) backed by shmem (not
//! `MFD_HUGETLB`: see [`ImportError::NotShmem`]), carry at least
//! [`REQUIRED_SEALS`] and no write seal (we map it writable), and be at least
//! the claimed size. Each failure is its own [`ImportError`] variant. After
//! the checks nothing the peer does to the file can make our mapping SIGBUS.
//!
//! Peer memfds that are *not* sealed (libpulse's pool) are never mapped:
//! see [`crate::pool::UnsealedPool`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;

use crate::fdkind::{classify, FdKind};
use crate::mapping::{MapError, SharedMapping};

/// The seals a shared block must carry before it is mapped by anyone.
pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// Seals that would forbid the writable shared mapping both sides need.
const WRITE_SEALS: SealFlags = SealFlags::WRITE.union(SealFlags::FUTURE_WRITE);

/// The largest memfd this crate creates or imports (1 GiB, libpulse's limit
/// too): bounds what a peer can make us map.
pub const MAX_MEMFD_LEN: u64 = 1 << 30;

/// Why a memfd could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The length is zero or above [`MAX_MEMFD_LEN`].
    #[error("memfd length {len} is not in 1..={max}", max = MAX_MEMFD_LEN)]
    BadLength {
        /// The length asked for.
        len: u64,
    },
    /// `memfd_create` failed.
    #[error("memfd_create failed: {0}")]
    Create(Errno),
    /// `ftruncate` failed.
    #[error("sizing the memfd to {len} bytes failed: {errno}")]
    Resize {
        /// The length asked for.
        len: u64,
        /// What the kernel said.
        errno: Errno,
    },
    /// Adding the seals failed.
    #[error("sealing the memfd failed: {0}")]
    Seal(Errno),
}

/// Why a received memfd was refused. The fd is closed in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The descriptor is not a memfd at all.
    #[error("expected a memfd, got a {kind}")]
    NotMemfd {
        /// What arrived instead.
        kind: FdKind,
    },
    /// The memfd was created without `MFD_ALLOW_SEALING` (or sealed shut
    /// without the seals we need): it can never carry them.
    #[error("memfd does not support sealing (created without MFD_ALLOW_SEALING); seals {seals:?}")]
    NoSealingSupport {
        /// The seals it has.
        seals: SealFlags,
    },
    /// The memfd lacks some of [`REQUIRED_SEALS`]; a peer could shrink it
    /// under our mapping.
    #[error("memfd is not sealed: missing {missing:?}")]
    NotSealed {
        /// The seals that are missing.
        missing: SealFlags,
    },
    /// The memfd carries a write seal, so it cannot be mapped writable.
    #[error("memfd is write-sealed ({seals:?}); a shared block must be writable")]
    WriteSealed {
        /// The seals it has.
        seals: SealFlags,
    },
    /// The memfd is shorter than the peer claimed.
    #[error("memfd has {size} bytes, peer claimed {claimed}")]
    TooSmall {
        /// Its real size.
        size: u64,
        /// The size the peer announced.
        claimed: u64,
    },
    /// The claimed size is zero or above [`MAX_MEMFD_LEN`].
    #[error("claimed memfd length {claimed} is not in 1..={max}", max = MAX_MEMFD_LEN)]
    BadClaim {
        /// The size the peer announced.
        claimed: u64,
    },
    /// The memfd is not backed by shmem (tmpfs): in practice an
    /// `MFD_HUGETLB` memfd. Its mappings come in huge pages, so a mapping of
    /// the claimed length cannot be unmapped again (`munmap` of a length
    /// that is not a huge-page multiple fails with `EINVAL`) and would leak,
    /// huge pages included, for the life of the process.
    #[error(
        "memfd is not shmem-backed (filesystem magic {fs_magic:#x}); huge-page memfds are refused"
    )]
    NotShmem {
        /// The `f_type` of the file's filesystem (`HUGETLBFS_MAGIC` is
        /// `0x958458f6`).
        fs_magic: u32,
    },
    /// `fstat`, `fstatfs` or `F_GET_SEALS` failed unexpectedly.
    #[error("inspecting the memfd failed: {0}")]
    Inspect(Errno),
}

/// `TMPFS_MAGIC`: the filesystem of every ordinary memfd.
const TMPFS_MAGIC: u32 = 0x0102_1994;

/// A memfd sealed against shrinking and growing, of a known length.
#[derive(Debug)]
pub struct SealedMemfd {
    fd: OwnedFd,
    len: u64,
}

impl SealedMemfd {
    /// Creates, sizes and seals a memfd of `len` bytes (see the module docs).
    /// `name` shows in `/proc/PID/fd` and `/proc/PID/maps`.
    pub fn create(name: &str, len: u64) -> Result<Self, CreateError> {
        if len == 0 || len > MAX_MEMFD_LEN {
            return Err(CreateError::BadLength { len });
        }
        let fd = create_unsealed(name)?;
        rustix::fs::ftruncate(&fd, len).map_err(|errno| CreateError::Resize { len, errno })?;
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS).map_err(CreateError::Seal)?;
        Ok(Self { fd, len })
    }

    /// Checks a memfd a peer sent and keeps it if it is safe to map
    /// `claimed` bytes of it. On error the fd is closed.
    pub fn import(fd: OwnedFd, claimed: u64) -> Result<Self, ImportError> {
        if claimed == 0 || claimed > MAX_MEMFD_LEN {
            return Err(ImportError::BadClaim { claimed });
        }
        check_shmem(fd.as_fd())?;
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(ImportError::Inspect)?;
        let missing = REQUIRED_SEALS.difference(seals);
        if !missing.is_empty() {
            // F_SEAL_SEAL without SHRINK/GROW: no one can ever add them.
            // That is what a memfd created without MFD_ALLOW_SEALING looks like.
            if seals.contains(SealFlags::SEAL) {
                return Err(ImportError::NoSealingSupport { seals });
            }
            return Err(ImportError::NotSealed { missing });
        }
        if seals.intersects(WRITE_SEALS) {
            return Err(ImportError::WriteSealed { seals });
        }
        // The size is read after the seals: with SHRINK and GROW in place
        // it can no longer change.
        let st = rustix::fs::fstat(&fd).map_err(ImportError::Inspect)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size < claimed {
            return Err(ImportError::TooSmall { size, claimed });
        }
        Ok(Self { fd, len: claimed })
    }

    /// The length that was created or claimed (and checked).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the length is zero (never true: empty memfds are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps the whole length shared and writable.
    pub fn map(&self) -> Result<Arc<SharedMapping>, MapError> {
        SharedMapping::map(self.fd.as_fd(), self.len)
    }

    /// Gives the descriptor back (to send it, or to close it after mapping).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for SealedMemfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether a received fd is a memfd on shmem (tmpfs): the checks before
/// anything else about it, shared by [`SealedMemfd::import`] and the
/// state page's reader. Fails with [`ImportError::NotMemfd`],
/// [`ImportError::NotShmem`] or [`ImportError::Inspect`].
pub fn check_shmem(fd: BorrowedFd<'_>) -> Result<(), ImportError> {
    let kind = classify(fd).map_err(ImportError::Inspect)?;
    if kind != FdKind::Memfd {
        return Err(ImportError::NotMemfd { kind });
    }
    // Only shmem and hugetlbfs files answer F_GET_SEALS; refuse the
    // latter (see `NotShmem`). Magic numbers are 32-bit; `f_type` is a
    // wider, possibly signed word on some targets, hence the casts.
    let fs = rustix::fs::fstatfs(fd).map_err(ImportError::Inspect)?;
    #[allow(clippy::unnecessary_cast)]
    let fs_magic = fs.f_type as u64 as u32;
    if fs_magic != TMPFS_MAGIC {
        return Err(ImportError::NotShmem { fs_magic });
    }
    Ok(())
}

/// `memfd_create` with `MFD_NOEXEC_SEAL` when the kernel knows it.
fn create_unsealed(name: &str) -> Result<OwnedFd, CreateError> {
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    match rustix::fs::memfd_create(name, base | MemfdFlags::NOEXEC_SEAL) {
        Ok(fd) => Ok(fd),
        // Kernels before 6.3 do not know MFD_NOEXEC_SEAL and say EINVAL.
        Err(Errno::INVAL) => rustix::fs::memfd_create(name, base).map_err(CreateError::Create),
        Err(e) => Err(CreateError::Create(e)),
    }
}

/// A memfd of `len` bytes with no seals: what libpulse's pool looks like.
/// For tests and for [`crate::pool::UnsealedPool`] users that want one.
pub fn create_unsealed_memfd(name: &str, len: u64) -> Result<OwnedFd, CreateError> {
    let fd = create_unsealed(name)?;
    rustix::fs::ftruncate(&fd, len).map_err(|errno| CreateError::Resize { len, errno })?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_memfds_carry_exactly_the_required_seals_and_no_write_seal() {
        let m = SealedMemfd::create("t", 8192).unwrap();
        let seals = rustix::fs::fcntl_get_seals(&m).unwrap();
        assert!(seals.contains(REQUIRED_SEALS));
        assert!(!seals.intersects(WRITE_SEALS));
        assert_eq!(rustix::fs::fstat(&m).unwrap().st_size, 8192);
        // Sealed: cannot shrink, cannot grow.
        assert_eq!(rustix::fs::ftruncate(&m, 4096), Err(Errno::PERM));
        assert_eq!(rustix::fs::ftruncate(&m, 16384), Err(Errno::PERM));
    }

    #[test]
    fn a_created_memfd_imports_and_maps() {
        let m = SealedMemfd::create("t", 4096).unwrap();
        let dup = rustix::io::fcntl_dupfd_cloexec(&m, 0).unwrap();
        let imported = SealedMemfd::import(dup, 4096).unwrap();
        let a = m.map().unwrap();
        let b = imported.map().unwrap();
        drop(imported);
        a.write_volatile(100, b"shared").unwrap();
        let mut buf = [0u8; 6];
        b.read_volatile(100, &mut buf).unwrap();
        assert_eq!(&buf, b"shared");
    }

    /// Regression: a sealed `MFD_HUGETLB` memfd used to pass the import
    /// checks; mapping it (where huge pages are available) gave a mapping
    /// `munmap` refuses to remove, leaked for the life of the process.
    #[test]
    fn a_sealed_hugetlb_memfd_is_refused() {
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING | MemfdFlags::HUGETLB;
        let fd = match rustix::fs::memfd_create("huge", flags) {
            Ok(fd) => fd,
            // No hugetlbfs in this kernel: such a memfd cannot be sent either.
            Err(Errno::INVAL | Errno::NOSYS) => {
                eprintln!("no MFD_HUGETLB on this kernel; nothing to refuse");
                return;
            }
            Err(e) => panic!("memfd_create(MFD_HUGETLB): {e}"),
        };
        let huge = u64::try_from(rustix::fs::fstat(&fd).unwrap().st_blksize).unwrap();
        rustix::fs::ftruncate(&fd, huge).unwrap();
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS).unwrap();
        assert_eq!(
            SealedMemfd::import(fd, 4096).unwrap_err(),
            ImportError::NotShmem {
                fs_magic: 0x9584_58f6
            }
        );
    }

    #[test]
    fn lengths_out_of_range_are_refused() {
        assert_eq!(
            SealedMemfd::create("t", 0).unwrap_err(),
            CreateError::BadLength { len: 0 }
        );
        let m = SealedMemfd::create("t", 4096).unwrap();
        assert_eq!(
            SealedMemfd::import(m.into_fd(), MAX_MEMFD_LEN + 1).unwrap_err(),
            ImportError::BadClaim {
                claimed: MAX_MEMFD_LEN + 1
            }
        );
    }
}
