//! Test support: a simulated file system that keeps, for every file, what was
//! written and what is durable, and can crash or fail on demand.
//!
//! Model (stated so tests know what they exercise): a file's durable copy is
//! its contents (and length) at its last `sync_data`; a directory entry
//! (create, rename, remove) is durable once its parent directory was synced;
//! directories themselves are durable at once. A crash ([`SimFs::restart`])
//! keeps the durable names and, per file, the durable bytes with whatever
//! part of the unsynced changes the chosen [`Tear`] keeps. The unsynced
//! changes are the written contents from the first byte where they differ
//! from the durable ones; they persist as a prefix of that, in file order,
//! over the durable bytes, the way a file system that writes back in order
//! leaves them. So an unsynced append (records, or the zeros of preallocated
//! space) may be lost or kept in part; an unsynced overwrite of durable
//! bytes (records written over preallocated zeros) may land in part, the
//! old bytes after it; an unsynced `set_len` that shortened the file is
//! kept only by [`Tear::KeepAll`], the file otherwise keeping its durable
//! length. Files opened before a restart belong to a process that is gone:
//! every write, sync or `set_len` through them fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{Fs, FsFile, LockGuard, SegmentBytes};

/// An injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with EIO and changes nothing.
    Eio,
    /// The call fails with ENOSPC and changes nothing.
    Enospc,
    /// A write stores only the first half of its bytes, then fails (EIO).
    /// On a sync it behaves like `Eio`.
    ShortWrite,
}

/// What a crash does with bytes written but not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// Power loss: every unsynced byte is gone.
    DropUnsynced,
    /// Power loss part way through write-back: up to this many unsynced
    /// bytes of each file survive, in file order from its first changed byte.
    KeepUnsynced(u64),
    /// Like `KeepUnsynced(keep)`, then, in a file that was growing, `zeros`
    /// zero bytes after what is kept (a file system that extended the file
    /// before the data landed).
    KeepThenZeros {
        /// Unsynced bytes kept per file.
        keep: u64,
        /// Zero bytes appended after them.
        zeros: u64,
    },
    /// A process crash: the OS keeps everything written.
    KeepAll,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_inode: u64,
    locks: BTreeMap<PathBuf, u64>,
    epoch: u64,
    syncs: u64,
    writes: u64,
    crash_at_sync: Option<u64>,
    write_fault: Option<(u64, Fault)>,
    sync_fault: Option<(u64, Fault)>,
    crashed: bool,
}

/// A simulated file system for crash and fault tests. Clones share state.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn crashed_err() -> io::Error {
    io::Error::other("simulated crash: the machine is down")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found (sim)", path.display()),
    )
}

fn fault_err(f: Fault) -> io::Error {
    match f {
        Fault::Enospc => io::Error::from_raw_os_error(28),
        Fault::Eio | Fault::ShortWrite => io::Error::from_raw_os_error(5),
    }
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// This file system as the handle `Log::open_with` takes.
    pub fn handle(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a bug in this
        // module; the state is still usable, so recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `k`-th sync from now (1 = the next one; file or directory)
    /// crashes the machine: it does not happen, it fails, and so does every
    /// later call until [`SimFs::restart`].
    pub fn crash_at_sync(&self, k: u64) {
        let mut s = self.lock();
        s.crash_at_sync = Some(s.syncs + k.max(1));
    }

    /// The `n`-th write from now (1 = the next one) fails with `fault`.
    pub fn fail_write_in(&self, n: u64, fault: Fault) {
        self.lock().write_fault = Some((n.max(1), fault));
    }

    /// The `n`-th file sync from now (1 = the next one) fails with `fault`.
    pub fn fail_sync_in(&self, n: u64, fault: Fault) {
        self.lock().sync_fault = Some((n.max(1), fault));
    }

    /// True once a crash happened and before `restart`.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Syncs done so far (file and directory).
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Writes done so far.
    pub fn write_count(&self) -> u64 {
        self.lock().writes
    }

    /// Power loss and reboot: applies `tear` to every file's unsynced bytes,
    /// forgets undurable directory entries, releases every lock and clears
    /// pending faults. Also usable without an earlier crash.
    pub fn restart(&self, tear: Tear) {
        let mut s = self.lock();
        if tear == Tear::KeepAll {
            // The process died, the machine did not: nothing is lost.
            s.durable_names = s.names.clone();
        }
        let live: BTreeSet<u64> = s.durable_names.values().copied().collect();
        s.inodes.retain(|id, _| live.contains(id));
        for inode in s.inodes.values_mut() {
            let kept = match tear {
                Tear::DropUnsynced => inode.durable.clone(),
                Tear::KeepAll => inode.data.clone(),
                Tear::KeepUnsynced(n) => crash_keep(inode, n, 0),
                Tear::KeepThenZeros { keep, zeros } => crash_keep(inode, keep, zeros),
            };
            inode.data = kept.clone();
            inode.durable = kept;
        }
        s.names = s.durable_names.clone();
        s.locks.clear();
        s.epoch += 1;
        s.crash_at_sync = None;
        s.write_fault = None;
        s.sync_fault = None;
        s.crashed = false;
    }

    /// A file's current (written) contents, for tests that damage logs.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let id = s.names.get(path)?;
        s.inodes.get(id).map(|i| i.data.clone())
    }

    /// Replaces a file's contents, durably, for tests that damage logs.
    pub fn write_file(&self, path: &Path, data: &[u8]) {
        let mut s = self.lock();
        let id = match s.names.get(path) {
            Some(id) => *id,
            None => {
                let id = s.next_inode;
                s.next_inode += 1;
                s.names.insert(path.to_owned(), id);
                s.durable_names.insert(path.to_owned(), id);
                id
            }
        };
        s.inodes.insert(
            id,
            Inode {
                data: data.to_vec(),
                durable: data.to_vec(),
            },
        );
    }

    /// Every file path, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().names.keys().cloned().collect()
    }
}

/// What a crash leaves of a file when up to `keep` bytes of its unsynced
/// changes land: the written bytes up to the first byte that differs from
/// the durable ones, then `keep` more of them, then the durable bytes after
/// those (a file keeps at least its durable length); then, if the file was
/// growing, `zeros` zero bytes.
fn crash_keep(inode: &Inode, keep: u64, zeros: u64) -> Vec<u8> {
    let (data, durable) = (&inode.data, &inode.durable);
    let first_change = data
        .iter()
        .zip(durable)
        .position(|(a, b)| a != b)
        .unwrap_or(data.len().min(durable.len()));
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let landed = first_change + keep.min(data.len() - first_change);
    let mut kept = data[..landed].to_vec();
    if durable.len() > landed {
        kept.extend_from_slice(&durable[landed..]);
    }
    // Zeros appear only where the file was being extended.
    if data.len() > durable.len() {
        kept.resize(kept.len() + usize::try_from(zeros).unwrap_or(0), 0);
    }
    kept
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    inode: u64,
    /// The boot it was opened in: after a restart the process that held it
    /// is gone, so it fails rather than write into the rebooted disk.
    epoch: u64,
}

fn stale_err() -> io::Error {
    io::Error::other("simulated crash: this file was opened before the restart")
}

impl FsFile for SimFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        if s.crashed {
            return Err(crashed_err());
        }
        if s.epoch != self.epoch {
            return Err(stale_err());
        }
        s.writes += 1;
        let mut fault = None;
        if let Some((n, f)) = s.write_fault {
            if n <= 1 {
                s.write_fault = None;
                fault = Some(f);
            } else {
                s.write_fault = Some((n - 1, f));
            }
        }
        let len = match fault {
            None => buf.len(),
            Some(Fault::ShortWrite) => buf.len() / 2,
            Some(f) => return Err(fault_err(f)),
        };
        let inode = s.inodes.get_mut(&self.inode).ok_or_else(crashed_err)?;
        let off = usize::try_from(offset).map_err(io::Error::other)?;
        if inode.data.len() < off + len {
            inode.data.resize(off + len, 0);
        }
        inode.data[off..off + len].copy_from_slice(&buf[..len]);
        match fault {
            Some(f) => Err(fault_err(f)),
            None => Ok(()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.fs.lock();
        if !s.crashed && s.epoch != self.epoch {
            return Err(stale_err());
        }
        sync_gate(&mut s, true)?;
        if let Some(inode) = s.inodes.get_mut(&self.inode) {
            inode.durable = inode.data.clone();
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        if s.crashed {
            return Err(crashed_err());
        }
        if s.epoch != self.epoch {
            return Err(stale_err());
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if let Some(inode) = s.inodes.get_mut(&self.inode) {
            inode.data.resize(len, 0);
        }
        Ok(())
    }
}

/// Counts a sync and applies a pending crash or fault.
fn sync_gate(s: &mut State, file: bool) -> io::Result<()> {
    if s.crashed {
        return Err(crashed_err());
    }
    s.syncs += 1;
    if s.crash_at_sync == Some(s.syncs) {
        s.crashed = true;
        return Err(crashed_err());
    }
    if file && let Some((n, f)) = s.sync_fault {
        if n <= 1 {
            s.sync_fault = None;
            return Err(fault_err(f));
        }
        s.sync_fault = Some((n - 1, f));
    }
    Ok(())
}

struct SimLock {
    fs: SimFs,
    path: PathBuf,
    epoch: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.fs.lock();
        // A lock taken before a restart is gone already; do not release the
        // lock a later writer took on the same path.
        if s.epoch == self.epoch {
            s.locks.remove(&self.path);
        }
    }
}

impl SimFs {
    fn up(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = self.lock();
        if s.crashed {
            return Err(crashed_err());
        }
        Ok(s)
    }

    fn new_inode(s: &mut State, path: &Path) -> u64 {
        let id = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(id, Inode::default());
        s.names.insert(path.to_owned(), id);
        id
    }
}

fn parent_known(s: &State, path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() || s.dirs.contains(p) => Ok(()),
        _ => Err(not_found(path)),
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.up()?;
        for p in path.ancestors() {
            if !p.as_os_str().is_empty() {
                s.dirs.insert(p.to_owned());
            }
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let s = self.up()?;
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let files = s.names.keys().filter(|p| p.parent() == Some(path));
        let dirs = s.dirs.iter().filter(|p| p.parent() == Some(path));
        Ok(files
            .chain(dirs)
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.up()?;
        Ok(s.names.contains_key(path) || s.dirs.contains(path))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut s = self.up()?;
        parent_known(&s, path)?;
        let inode = match s.names.get(path) {
            Some(id) => {
                let id = *id;
                if let Some(i) = s.inodes.get_mut(&id) {
                    i.data.clear();
                }
                id
            }
            None => SimFs::new_inode(&mut s, path),
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            inode,
            epoch: s.epoch,
        }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let s = self.up()?;
        let inode = *s.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            inode,
            epoch: s.epoch,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.up()?;
        parent_known(&s, to)?;
        let id = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_owned(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.up()?;
        s.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        sync_gate(&mut s, false)?;
        let in_dir = |p: &PathBuf| p.parent() == Some(path);
        s.durable_names.retain(|p, _| !in_dir(p));
        let now: Vec<(PathBuf, u64)> = s
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        s.durable_names.extend(now);
        Ok(())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let s = self.up()?;
        let id = s.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(s.inodes.get(id).map_or(0, |i| i.data.len() as u64))
    }

    fn map(&self, path: &Path, len: u64) -> io::Result<SegmentBytes> {
        let mut data = self.read_all(path)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if data.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "map past the end of the file (sim)",
            ));
        }
        data.truncate(len);
        Ok(SegmentBytes::from_vec(data))
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.up()?;
        let id = s.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(s.inodes.get(id).map(|i| i.data.clone()).unwrap_or_default())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let mut s = self.up()?;
        parent_known(&s, path)?;
        if !s.names.contains_key(path) {
            SimFs::new_inode(&mut s, path);
        }
        if s.locks.contains_key(path) {
            return Ok(None);
        }
        let epoch = s.epoch;
        s.locks.insert(path.to_owned(), epoch);
        Ok(Some(LockGuard::new(SimLock {
            fs: self.clone(),
            path: path.to_owned(),
            epoch,
        })))
    }
}
