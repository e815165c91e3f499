//! The seam between the log and the file system (STYLE item 9). The real
//! implementation is `RealFs`; tests use `SimFs`, which can crash and fail.

use std::any::Any;
use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The file-system operations the log uses. Implemented by [`RealFs`] and,
/// for tests, by `SimFs`.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents, owner-only (0700).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory (not sorted).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// True if the path exists (file or directory).
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Creates a new, empty file, owner-only (0600), replacing any old one
    /// (a symbolic link is replaced, never followed).
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Opens an existing file for writing.
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Renames a file, replacing the target.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The file's length in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// The file's first `len` bytes, mapped when possible. The file must be
    /// at least `len` bytes long and never truncated below it while mapped.
    fn map(&self, path: &Path, len: u64) -> io::Result<SegmentBytes>;
    /// The file's whole contents, copied into memory.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Takes an exclusive advisory lock on `path` (creating it 0600), or
    /// `None` if someone else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
    /// What is at `path`, without following a symbolic link: `None` for a
    /// regular file, else what it is ("a symbolic link", "a directory", ...).
    /// A file system without links or special files (the simulated one) has
    /// only regular files.
    fn not_regular(&self, _path: &Path) -> io::Result<Option<&'static str>> {
        Ok(None)
    }
    /// The whole contents of `path` if it is a regular file of at most
    /// `len_max` bytes; `None` if nothing is there, if it is anything but a
    /// regular file (a symbolic link is not followed, and nothing else is
    /// opened), or if it is longer. Never allocates more than `len_max`
    /// bytes. For small side files that are only hints.
    fn read_small(&self, path: &Path, len_max: u64) -> io::Result<Option<Vec<u8>>> {
        if !self.exists(path)? || self.not_regular(path)?.is_some() {
            return Ok(None);
        }
        if self.file_len(path)? > len_max {
            return Ok(None);
        }
        let bytes = self.read_all(path)?;
        Ok((bytes.len() as u64 <= len_max).then_some(bytes))
    }
}

/// An open file the log writes to.
pub trait FsFile: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset`, or fails.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// A held lock; dropping it releases the lock.
pub struct LockGuard {
    _held: Box<dyn Any + Send + Sync>,
}

impl LockGuard {
    /// Wraps whatever value releases the lock when dropped.
    pub fn new(held: impl Any + Send + Sync) -> LockGuard {
        LockGuard {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

/// Bytes of a segment: a read-only map or an owned copy. Cheap to clone.
#[derive(Clone)]
pub struct SegmentBytes(Arc<BytesInner>);

enum BytesInner {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl SegmentBytes {
    /// Bytes held in memory.
    pub fn from_vec(bytes: Vec<u8>) -> SegmentBytes {
        SegmentBytes(Arc::new(BytesInner::Owned(bytes)))
    }
}

impl Deref for SegmentBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &*self.0 {
            BytesInner::Map(m) => m,
            BytesInner::Owned(v) => v,
        }
    }
}

impl fmt::Debug for SegmentBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentBytes({} bytes)", self.len())
    }
}

/// The real file system: `std::fs`, reads through memmap2.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(File);

impl FsFile for RealFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(0o700).create(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        // Remove whatever is there and create with O_EXCL, which never
        // follows a symbolic link: a link planted at a temporary name must
        // not make the log truncate and write a file outside its directory.
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        Ok(Arc::new(RealFile(f)))
    }
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let f = OpenOptions::new().write(true).open(path)?;
        Ok(Arc::new(RealFile(f)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
    fn map(&self, path: &Path, len: u64) -> io::Result<SegmentBytes> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("segment too large to map"))?;
        if len == 0 {
            return Ok(SegmentBytes::from_vec(Vec::new()));
        }
        let file = File::open(path)?;
        let map = crate::mmap::map_prefix(&file, len)?;
        Ok(SegmentBytes(Arc::new(BytesInner::Map(map))))
    }
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        // Opening follows links and creates their targets: refuse a link.
        if let Some(what) = self.not_regular(path)?.filter(|w| *w == SYMLINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the lock file is {what}, which is refused"),
            ));
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // An flock belongs to the open file, and a child forked by any
        // thread of a process shares the file until it execs (close-on-exec
        // closes it only then): a writer reopened right after a close may
        // find the lock held for that instant by a child being spawned.
        // Only a lock still held after a short wait is another writer's.
        let mut wait = Duration::from_millis(1);
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(Some(LockGuard::new(f))),
                Err(std::fs::TryLockError::WouldBlock) if wait <= LOCK_WAIT_MAX => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
    fn read_small(&self, path: &Path, len_max: u64) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        // Looked at before it is opened: opening a FIFO would wait for a
        // writer, and a link could lead anywhere.
        let seen = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !seen.file_type().is_file() || seen.len() > len_max {
            return Ok(None);
        }
        let mut options = OpenOptions::new();
        options.read(true);
        // Should the name change hands after the look above, the open
        // still neither waits on a FIFO nor follows a link (where the
        // flags are at hand); a regular file reads as usual without
        // blocking.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::OFlags;
            // O_NONBLOCK | O_NOFOLLOW fit an i32: both are small bits.
            options.custom_flags((OFlags::NONBLOCK | OFlags::NOFOLLOW).bits() as i32);
        }
        let file = options.open(path)?;
        // Checked again on what was opened, in case the name changed hands
        // in between; then exactly that many bytes are read, whatever the
        // file does meanwhile.
        let opened = file.metadata()?;
        if !opened.file_type().is_file() || opened.len() > len_max {
            return Ok(None);
        }
        let len = usize::try_from(opened.len()).map_err(io::Error::other)?;
        let mut bytes = vec![0; len];
        (&file).read_exact(&mut bytes)?;
        Ok(Some(bytes))
    }
    fn not_regular(&self, path: &Path) -> io::Result<Option<&'static str>> {
        let t = match std::fs::symlink_metadata(path) {
            Ok(m) => m.file_type(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        use std::os::unix::fs::FileTypeExt;
        Ok(if t.is_file() {
            None
        } else if t.is_symlink() {
            Some(SYMLINK)
        } else if t.is_dir() {
            Some("a directory")
        } else if t.is_fifo() {
            Some("a FIFO")
        } else if t.is_socket() {
            Some("a socket")
        } else if t.is_block_device() || t.is_char_device() {
            Some("a device")
        } else {
            Some("an unknown kind of file")
        })
    }
}

/// The longest single wait for a `LOCK` held by someone else before it is
/// reported as held: waits of 1, 2, 4, … ms up to this, about 130 ms in all.
const LOCK_WAIT_MAX: Duration = Duration::from_millis(64);

/// How [`Fs::not_regular`] names a symbolic link.
const SYMLINK: &str = "a symbolic link";
