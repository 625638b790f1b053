//! [`FdKind`]: what a file descriptor received from a peer really is.
//!
//! A peer that sends a pipe where a memfd belongs, or a memfd where an
//! eventfd belongs, must get a named error, not a confusing failure later.
//! [`classify`] looks at the descriptor without trusting the peer:
//!
//! - `fstat` gives the file type (FIFO, socket, directory, devices, regular);
//! - a regular file whose `F_GET_SEALS` succeeds is a memfd (more exactly a
//!   shmem or hugetlbfs file: tmpfs files answer too; hugetlbfs ones, which
//!   cannot be mapped and unmapped at page granularity, are refused by
//!   [`crate::memfd::SealedMemfd::import`]); one whose `F_GET_SEALS` fails
//!   is an ordinary file;
//! - anonymous inodes have no file type; `readlink("/proc/self/fd/N")`
//!   names them (`anon_inode:[eventfd]`).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::fs::FileType;
use rustix::io::Errno;

/// The kind of a file descriptor, as far as this crate cares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FdKind {
    /// A memfd (a shmem-backed regular file that answers `F_GET_SEALS`).
    Memfd,
    /// An eventfd.
    Eventfd,
    /// A pipe or FIFO.
    Pipe,
    /// A socket.
    Socket,
    /// A regular file that is not a memfd.
    RegularFile,
    /// A directory.
    Directory,
    /// A character or block device.
    Device,
    /// Another anonymous inode, with the name the kernel gives it
    /// (for example `[timerfd]`, `[eventpoll]`).
    AnonInode(String),
    /// Anything else (including anonymous inodes when `/proc` is missing).
    Other,
}

impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdKind::Memfd => f.write_str("memfd"),
            FdKind::Eventfd => f.write_str("eventfd"),
            FdKind::Pipe => f.write_str("pipe"),
            FdKind::Socket => f.write_str("socket"),
            FdKind::RegularFile => f.write_str("regular file"),
            FdKind::Directory => f.write_str("directory"),
            FdKind::Device => f.write_str("device"),
            FdKind::AnonInode(name) => write!(f, "anonymous inode {name}"),
            FdKind::Other => f.write_str("unknown file kind"),
        }
    }
}

/// Finds out what `fd` is (see the module docs for how).
pub fn classify(fd: BorrowedFd<'_>) -> Result<FdKind, Errno> {
    let st = rustix::fs::fstat(fd)?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            if rustix::fs::fcntl_get_seals(fd).is_ok() {
                FdKind::Memfd
            } else {
                FdKind::RegularFile
            }
        }
        FileType::Fifo => FdKind::Pipe,
        FileType::Socket => FdKind::Socket,
        FileType::Directory => FdKind::Directory,
        FileType::CharacterDevice | FileType::BlockDevice => FdKind::Device,
        FileType::Symlink => FdKind::Other,
        FileType::Unknown => anon_inode_kind(fd),
    })
}

/// Names an anonymous inode through `/proc/self/fd`.
fn anon_inode_kind(fd: BorrowedFd<'_>) -> FdKind {
    let path = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    match rustix::fs::readlinkat(rustix::fs::CWD, path, Vec::new()) {
        Ok(target) => match target.to_bytes().strip_prefix(b"anon_inode:") {
            Some(b"[eventfd]") => FdKind::Eventfd,
            Some(name) => FdKind::AnonInode(String::from_utf8_lossy(name).into_owned()),
            None => FdKind::Other,
        },
        Err(_) => FdKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{eventfd, EventfdFlags};
    use rustix::fs::MemfdFlags;

    #[test]
    fn every_kind_the_protocol_meets_is_named() {
        let efd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        assert_eq!(classify(efd.as_fd()), Ok(FdKind::Eventfd));
        let mfd = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC).unwrap();
        assert_eq!(classify(mfd.as_fd()), Ok(FdKind::Memfd));
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(classify(r.as_fd()), Ok(FdKind::Pipe));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(classify(a.as_fd()), Ok(FdKind::Socket));
        let dir = std::fs::File::open("/").unwrap();
        assert_eq!(classify(dir.as_fd()), Ok(FdKind::Directory));
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(classify(null.as_fd()), Ok(FdKind::Device));
        let exe = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(classify(exe.as_fd()), Ok(FdKind::RegularFile));
        let ep = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).unwrap();
        assert_eq!(
            classify(ep.as_fd()),
            Ok(FdKind::AnonInode("[eventpoll]".into()))
        );
    }
}
