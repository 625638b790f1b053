//! [`RuntimeDir`]: the private directory the listening socket lives in.
//!
//! `$XDG_RUNTIME_DIR/srb/`, or `/tmp/srb-<uid>/` when `XDG_RUNTIME_DIR` is
//! unset. The directory is created `0700` if missing; an existing one must
//! be a real directory (not a symlink), owned by our effective uid, with mode
//! exactly `0700`, otherwise it is refused with an error naming the path and
//! what is wrong. It is never `chmod`ed or `chown`ed into shape: a directory
//! someone else prepared is not ours to trust.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;

/// Why the runtime directory was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    /// Creating it failed.
    #[error("cannot create {path}: {errno}", path = path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// `lstat` failed.
    #[error("cannot stat {path}: {errno}", path = path.display())]
    Stat {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// It exists but is not a directory (a symlink counts as not one).
    #[error("{path} is not a directory", path = path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Another user owns it.
    #[error("{path} is owned by uid {owner}, not by us (uid {ours})", path = path.display())]
    WrongOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// Its mode is not `0700`.
    #[error("{path} has mode {mode:04o}; it must be 0700", path = path.display())]
    BadMode {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// A checked private runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    /// Where the directory belongs, given `XDG_RUNTIME_DIR` and our uid.
    pub fn path_for(xdg_runtime_dir: Option<&OsStr>, uid: u32) -> PathBuf {
        match xdg_runtime_dir {
            Some(x) if !x.is_empty() => Path::new(x).join("srb"),
            _ => PathBuf::from(format!("/tmp/srb-{uid}")),
        }
    }

    /// The default directory for this process (from the environment).
    pub fn open_default() -> Result<Self, DirError> {
        let xdg = std::env::var_os("XDG_RUNTIME_DIR");
        let uid = rustix::process::geteuid().as_raw();
        Self::open(Self::path_for(xdg.as_deref(), uid))
    }

    /// Creates `path` (mode 0700) if it is missing, then checks it.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, DirError> {
        let path = path.into();
        match rustix::fs::mkdir(&path, Mode::RWXU) {
            // We just made it: give it exactly 0700. `mkdir` applies the
            // umask and inherits a set-group-ID bit from the parent, either
            // of which would make the check below refuse our own directory.
            Ok(()) => set_private_mode(&path).map_err(|errno| DirError::Create {
                path: path.clone(),
                errno,
            })?,
            Err(Errno::EXIST) => {}
            Err(errno) => return Err(DirError::Create { path, errno }),
        }
        let st = match rustix::fs::lstat(&path) {
            Ok(st) => st,
            Err(errno) => return Err(DirError::Stat { path, errno }),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(DirError::NotADirectory { path });
        }
        let ours = rustix::process::geteuid().as_raw();
        if st.st_uid != ours {
            return Err(DirError::WrongOwner {
                path,
                owner: st.st_uid,
                ours,
            });
        }
        let mode = st.st_mode & 0o7777;
        if mode != 0o700 {
            return Err(DirError::BadMode { path, mode });
        }
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `fchmod(0700)` on the directory at `path`, opened without following a
/// symlink (the check in [`RuntimeDir::open`] still runs afterwards).
fn set_private_mode(path: &Path) -> Result<(), Errno> {
    use rustix::fs::OFlags;
    let dir = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchmod(&dir, Mode::RWXU)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh, unique directory path under the temp dir, removed on drop.
    pub(crate) struct TempPath(pub PathBuf);

    impl TempPath {
        pub(crate) fn new(tag: &str) -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            // Relaxed: only uniqueness matters, no data is published.
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("srb-test-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            Self(p)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_path_follows_xdg_runtime_dir_or_falls_back_to_tmp() {
        assert_eq!(
            RuntimeDir::path_for(Some(OsStr::new("/run/user/1000")), 1000),
            PathBuf::from("/run/user/1000/srb")
        );
        assert_eq!(
            RuntimeDir::path_for(None, 1000),
            PathBuf::from("/tmp/srb-1000")
        );
        assert_eq!(
            RuntimeDir::path_for(Some(OsStr::new("")), 7),
            PathBuf::from("/tmp/srb-7")
        );
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let t = TempPath::new("create");
        let d = RuntimeDir::open(&t.0).unwrap();
        let st = rustix::fs::lstat(d.path()).unwrap();
        assert_eq!(st.st_mode & 0o7777, 0o700);
        // Opening it again accepts it as it is.
        assert_eq!(RuntimeDir::open(&t.0).unwrap(), d);
    }

    /// Regression: a directory we create under a set-group-ID parent
    /// inherits the bit (mode 02700) and used to be refused as `BadMode`.
    #[test]
    fn a_directory_created_under_a_setgid_parent_is_made_exactly_0700() {
        let t = TempPath::new("setgid");
        std::fs::create_dir(&t.0).unwrap();
        rustix::fs::chmod(&t.0, Mode::from_raw_mode(0o2700)).unwrap();
        let parent_mode = rustix::fs::lstat(&t.0).unwrap().st_mode & 0o7777;
        assert_eq!(parent_mode, 0o2700, "the parent carries S_ISGID");
        let d = RuntimeDir::open(t.0.join("srb")).unwrap();
        assert_eq!(rustix::fs::lstat(d.path()).unwrap().st_mode & 0o7777, 0o700);
    }

    #[test]
    fn a_directory_with_another_mode_is_refused_naming_path_and_mode() {
        let t = TempPath::new("mode");
        std::fs::create_dir(&t.0).unwrap();
        rustix::fs::chmod(&t.0, Mode::from_raw_mode(0o755)).unwrap();
        let e = RuntimeDir::open(&t.0).unwrap_err();
        assert_eq!(
            e,
            DirError::BadMode {
                path: t.0.clone(),
                mode: 0o755
            }
        );
        assert!(e.to_string().contains("0755"), "{e}");
        assert!(e.to_string().contains(&*t.0.to_string_lossy()), "{e}");
    }

    #[test]
    fn a_directory_owned_by_someone_else_is_refused() {
        let ours = rustix::process::geteuid().as_raw();
        let t = TempPath::new("owner");
        // As root, give a fresh directory away; otherwise "/" is root's.
        let (path, owner) = if ours == 0 {
            std::fs::create_dir(&t.0).unwrap();
            rustix::fs::chmod(&t.0, Mode::RWXU).unwrap();
            let nobody = rustix::process::Uid::from_raw(65534);
            rustix::fs::chown(&t.0, Some(nobody), None).unwrap();
            (t.0.clone(), 65534)
        } else {
            (PathBuf::from("/"), 0)
        };
        assert_eq!(
            RuntimeDir::open(&path),
            Err(DirError::WrongOwner { path, owner, ours })
        );
    }

    #[test]
    fn a_symlink_or_file_is_not_a_directory() {
        let t = TempPath::new("link");
        std::fs::create_dir(&t.0).unwrap();
        let target = t.0.join("real");
        std::fs::create_dir(&target).unwrap();
        let link = t.0.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(
            RuntimeDir::open(&link),
            Err(DirError::NotADirectory { path: link })
        );
    }
}
