//! The writer: recovery on open, framing and buffering appends, preallocated
//! space ahead of the active segment's last record, rollover, group commit,
//! reads of what it wrote, and retention.

use std::collections::{BTreeMap, VecDeque};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::format::{self, RECORD_HEADER_LEN, RecordFields, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::fs::{Fs, FsFile, LockGuard, RealFs, SegmentBytes};
use crate::index_file::{self, INDEX_STEP, IndexPoint};
use crate::reader::Records;
use crate::scan::{
    self, Cursor, Ending, SEGMENTS_DIR, SegIndex, SegRef, TEMP_EXT, Walker, check_header,
    segment_file_name,
};
use crate::wake::WakeWord;
use crate::{
    Appended, LogError, LogOptions, Lsn, RecoveryMode, RecoveryReport, Salvaged, SyncPolicy,
    TornTail,
};

/// The user-space buffer is written to the file once it holds this much.
/// Large enough that a write syscall carries hundreds of small records.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// A batch frames each record's position in a u32.
const BATCH_RECORDS_MAX: u64 = u32::MAX as u64;
/// How long a gatherer waits for just-woken committers to call in again, at
/// most: half the last fsync, capped here. Waiting longer than a fraction of
/// an fsync would cost more than a separate fsync for the stragglers.
const GATHER_WAIT_MAX: Duration = Duration::from_millis(2);
/// The first step of preallocated space in a segment; steps then grow with
/// the segment up to `LogOptions::preallocate_size_max`, so that a small log
/// pays little for its first extension and a large one few extensions.
const PREALLOCATE_STEP_MIN: u64 = 64 * 1024;
/// Preallocated space ends on a multiple of this, the usual block size, so
/// that no block is left half written.
const PREALLOCATE_ALIGN: u64 = 4096;
/// Zeros for preallocation, written this many at a time.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The log's writer. `Send + Sync`: any number of threads may append at once.
pub struct Log {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    seg_dir: PathBuf,
    options: LogOptions,
    inner: Mutex<Inner>,
    sync: Mutex<SyncState>,
    poisoned: AtomicBool,
    next_lsn: AtomicU64,
    first_lsn: AtomicU64,
    durable_lsn: AtomicU64,
    read_cache: Mutex<BTreeMap<Lsn, SegIndex>>,
    /// Queued committers sleep on this word, the gatherer on the other, so
    /// that waking the one does not wake the others.
    queue_word: WakeWord,
    gather_word: WakeWord,
    _lock: LockGuard,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("next_lsn", &self.next_lsn())
            .field("durable_lsn", &self.durable_lsn())
            .finish_non_exhaustive()
    }
}

struct Active {
    base: Lsn,
    path: PathBuf,
    file: Arc<dyn FsFile>,
    /// The segment's logical end: bytes of header and records in the file.
    /// Records are written here; everything after it is zeros.
    file_len: u64,
    /// How long the file may be: zeros were written (or found at open) from
    /// `file_len` up to here. At least `file_len`.
    allocated: u64,
    /// No more zeros go into this segment: it is being sealed or closed, or
    /// an extension failed.
    extend_stopped: bool,
    /// Index points of the batches this writer framed into the segment,
    /// about one per `INDEX_STEP` bytes, for its index file once sealed. A
    /// segment recovered at open starts with none: points for the records
    /// written since are as good, reads before the first one walk from the
    /// segment's start.
    points: Vec<IndexPoint>,
}

impl Active {
    /// A segment holding its header and nothing else.
    fn fresh(base: Lsn, path: PathBuf, file: Arc<dyn FsFile>) -> Active {
        let len = SEGMENT_HEADER_LEN as u64;
        Active {
            base,
            path,
            file,
            file_len: len,
            allocated: len,
            extend_stopped: false,
            points: Vec::new(),
        }
    }

    /// Notes that a batch starts at `point`; it becomes an index point if
    /// it is at least `INDEX_STEP` bytes past the last one (or the header).
    fn batch_starts(&mut self, point: IndexPoint) {
        let last = self
            .points
            .last()
            .map_or(SEGMENT_HEADER_LEN as u64, |p| p.off);
        if point.off >= last.saturating_add(INDEX_STEP) {
            self.points.push(point);
        }
    }

    /// Cuts preallocated zeros off the end of the file, so that it ends
    /// after its last record. Not synced here. Returns whether it cut.
    fn trim(&mut self) -> std::io::Result<bool> {
        if self.allocated <= self.file_len {
            return Ok(false);
        }
        self.file.set_len(self.file_len)?;
        self.allocated = self.file_len;
        Ok(true)
    }
}

struct Inner {
    /// Sealed segments, oldest first.
    sealed: Vec<(Lsn, PathBuf)>,
    active: Active,
    /// Framed records not yet written to the file; always whole batches.
    buf: Vec<u8>,
    /// Checksum of the last record framed.
    prev: u32,
    next_lsn: Lsn,
    /// Every record below this is in the file (not just the buffer).
    flushed_lsn: Lsn,
    last_sync: Instant,
    unsynced_bytes: u64,
}

impl Inner {
    fn size(&self) -> u64 {
        self.active.file_len + self.buf.len() as u64
    }
}

struct SyncState {
    durable: Lsn,
    syncing: bool,
    /// Callers asleep until an fsync covers them or they are to lead one.
    waiters: VecDeque<Waiter>,
    /// The caller asleep, with a deadline, while the callers the last fsync
    /// woke come back; the last one back leads the next fsync in its place,
    /// and it leads itself at the deadline if they do not all come back.
    /// Only while no fsync is in flight.
    gatherer: Option<Waiter>,
    /// Callers the last fsync woke that have not called in again since.
    expected_back: usize,
    /// How long the last fsync took.
    last_fsync: Duration,
}

struct Waiter {
    upto: Lsn,
    signal: Arc<AtomicU8>,
    /// Sleeps on `Log::gather_word` (it became the gatherer), not on
    /// `Log::queue_word`; for its whole wait, even once taken over.
    gathering: bool,
}

/// A queued committer's wake-up flag: not yet woken, woken because an fsync
/// covered it (or the writer failed), or woken to lead the next fsync.
const WAKE_PENDING: u8 = 0;
const WAKE_COVERED: u8 = 1;
const WAKE_LEAD: u8 = 2;

/// Queues a caller until an fsync covers `upto`; returns its wake-up flag.
fn queue(waiters: &mut VecDeque<Waiter>, upto: Lsn) -> Arc<AtomicU8> {
    let signal = Arc::new(AtomicU8::new(WAKE_PENDING));
    waiters.push_back(Waiter {
        upto,
        signal: Arc::clone(&signal),
        gathering: false,
    });
    signal
}

/// Sleeps on `word` until `signal` is set, or until `deadline` if one is
/// given; returns the flag (`WAKE_PENDING` when the deadline passed). The
/// word wakes every sleeper on it: the flag, not the wake-up, says whether
/// this caller was woken.
fn park_until(signal: &AtomicU8, word: &WakeWord, deadline: Option<Instant>) -> u8 {
    loop {
        let seen = word.seen();
        match signal.load(Ordering::Acquire) {
            WAKE_PENDING => match deadline {
                None => word.wait(seen, None),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return WAKE_PENDING;
                    }
                    word.wait(seen, Some(d - now));
                }
            },
            how => return how,
        }
    }
}

/// Sets each waiter's flag, then wakes the words they sleep on: one system
/// call per word, however many sleep on it.
fn wake_all<'a>(log: &Log, woken: impl IntoIterator<Item = (&'a Waiter, u8)>) {
    let (mut queued, mut gathering) = (false, false);
    for (w, how) in woken {
        w.signal.store(how, Ordering::Release);
        if w.gathering {
            gathering = true;
        } else {
            queued = true;
        }
    }
    if queued {
        log.queue_word.wake_all();
    }
    if gathering {
        log.gather_word.wake_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Our critical sections leave the state consistent at every await-free
    // step, and the poison flag below covers failed I/O; a panic elsewhere
    // while holding a lock must not make every later call panic too.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Log {
    /// Opens (creating if missing, 0700) the log in `dir`: takes the `LOCK`,
    /// then recovers per `options.recovery`.
    pub fn open(
        dir: impl AsRef<Path>,
        options: LogOptions,
    ) -> Result<(Log, RecoveryReport), LogError> {
        Log::open_inner(Arc::new(RealFs), dir.as_ref(), options)
    }

    /// [`Log::open`] on a given file system (test support: pass a `SimFs`).
    #[cfg(any(test, feature = "sim"))]
    pub fn open_with(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        options: LogOptions,
    ) -> Result<(Log, RecoveryReport), LogError> {
        Log::open_inner(fs, dir.as_ref(), options)
    }

    fn open_inner(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: LogOptions,
    ) -> Result<(Log, RecoveryReport), LogError> {
        options.validate()?;
        let seg_dir = dir.join(SEGMENTS_DIR);
        fs.create_dir_all(dir)
            .map_err(|e| LogError::io(dir, "create directory", e))?;
        let lock_path = dir.join("LOCK");
        let guard = fs
            .try_lock(&lock_path)
            .map_err(|e| LogError::io(&lock_path, "lock", e))?
            .ok_or(LogError::Locked { path: lock_path })?;
        fs.create_dir_all(&seg_dir)
            .map_err(|e| LogError::io(&seg_dir, "create directory", e))?;
        let rec = recover(fs.as_ref(), dir, &seg_dir, &options)?;
        let mut read_cache = BTreeMap::new();
        if let Some(index) = rec.index {
            read_cache.insert(rec.active.base, index);
        }
        let now = Instant::now();
        let inner = Inner {
            sealed: rec.sealed,
            active: rec.active,
            buf: Vec::with_capacity(FLUSH_THRESHOLD + 4096),
            prev: rec.prev,
            next_lsn: rec.report.next_lsn,
            flushed_lsn: rec.report.next_lsn,
            last_sync: now,
            unsynced_bytes: 0,
        };
        let log = Log {
            fs,
            dir: dir.to_owned(),
            seg_dir,
            options,
            inner: Mutex::new(inner),
            sync: Mutex::new(SyncState {
                durable: rec.report.next_lsn,
                syncing: false,
                waiters: VecDeque::new(),
                gatherer: None,
                expected_back: 0,
                last_fsync: Duration::ZERO,
            }),
            poisoned: AtomicBool::new(false),
            next_lsn: AtomicU64::new(rec.report.next_lsn),
            first_lsn: AtomicU64::new(rec.report.first_lsn),
            durable_lsn: AtomicU64::new(rec.report.next_lsn),
            read_cache: Mutex::new(read_cache),
            queue_word: WakeWord::default(),
            gather_word: WakeWord::default(),
            _lock: guard,
        };
        Ok((log, rec.report))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The LSN the next record will get.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn.load(Ordering::Acquire)
    }

    /// The lowest LSN still retained.
    pub fn first_lsn(&self) -> Lsn {
        self.first_lsn.load(Ordering::Acquire)
    }

    /// Every LSN below this is synced to stable storage.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn.load(Ordering::Acquire)
    }

    fn check_poison(&self) -> Result<(), LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(LogError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Marks the writer failed. Nothing is written or acknowledged after this.
    fn poison(&self, e: LogError) -> LogError {
        self.poisoned.store(true, Ordering::Release);
        e
    }

    /// Writes `batch` and waits until it is durable as the sync policy
    /// promises. The records get LSNs `first..next`, atomically: after a
    /// crash either all of them are in the log or none.
    pub fn append(&self, batch: &[&[u8]]) -> Result<Appended, LogError> {
        let a = self.write(batch)?;
        self.commit(a.next)?;
        Ok(a)
    }

    /// Frames `batch`, gives it LSNs and buffers it for the file, without
    /// waiting for durability; [`Log::commit`] does that.
    pub fn write(&self, batch: &[&[u8]]) -> Result<Appended, LogError> {
        self.check_poison()?;
        if batch.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        if batch.len() as u64 > BATCH_RECORDS_MAX {
            return Err(LogError::BatchTooLarge {
                records: batch.len() as u64,
                max: BATCH_RECORDS_MAX,
            });
        }
        let max = self.options.record_size_max;
        let mut bytes = 0u64;
        for p in batch {
            if p.len() as u64 > u64::from(max) {
                return Err(LogError::RecordTooLarge {
                    size: p.len() as u64,
                    max,
                });
            }
            bytes += (RECORD_HEADER_LEN + p.len()) as u64;
        }
        let mut inner = lock(&self.inner);
        // Checked again under the lock: a rollover or flush by another
        // thread may have failed since.
        self.check_poison()?;
        if inner.size() > SEGMENT_HEADER_LEN as u64
            && inner.size() + bytes > self.options.segment_size_max
        {
            self.roll_over(&mut inner)?;
        }
        let first = inner.next_lsn;
        // Only a crafted log can bring the LSN near 2^64; refuse, never wrap.
        if first.checked_add(batch.len() as u64).is_none() {
            return Err(LogError::LsnOutOfRange {
                lsn: u64::MAX,
                first: self.first_lsn(),
                next: first,
            });
        }
        let point = IndexPoint {
            lsn: first,
            off: inner.size(),
            prev: inner.prev,
        };
        inner.active.batch_starts(point);
        let last_index = batch.len() - 1;
        for (i, p) in batch.iter().enumerate() {
            let fields = RecordFields {
                prev: inner.prev,
                lsn: first + i as u64,
                // i < batch.len() <= u32::MAX, checked above.
                batch_index: u32::try_from(i).unwrap_or(u32::MAX),
                end_of_batch: i == last_index,
            };
            inner.prev = format::encode_record(&mut inner.buf, &fields, p);
        }
        let next = first + batch.len() as u64;
        inner.next_lsn = next;
        inner.unsynced_bytes += bytes;
        self.next_lsn.store(next, Ordering::Release);
        if inner.buf.len() >= FLUSH_THRESHOLD {
            self.flush(&mut inner)?;
        }
        Ok(Appended { first, next })
    }

    /// Writes the buffer to the active segment. A failure poisons: the file
    /// may hold part of the buffer, and retrying could write it twice.
    fn flush(&self, inner: &mut Inner) -> Result<(), LogError> {
        if inner.buf.is_empty() {
            return Ok(());
        }
        self.check_poison()?;
        let Inner { active, buf, .. } = &mut *inner;
        active
            .file
            .write_all_at(buf, active.file_len)
            .map_err(|e| self.poison(LogError::io(&active.path, "write", e)))?;
        active.file_len += buf.len() as u64;
        active.allocated = active.allocated.max(active.file_len);
        buf.clear();
        inner.flushed_lsn = inner.next_lsn;
        self.preallocate(&mut inner.active);
        Ok(())
    }

    /// Keeps zeros written ahead of the active segment's last record, so
    /// that records land on blocks that are allocated and initialized and
    /// the `fdatasync` that commits them has no metadata to journal
    /// (`LogOptions::preallocate_size_max`).
    ///
    /// Where the cost lands: this runs at the end of a flush, under the
    /// writer lock, which also keeps a rollover from cutting the file back
    /// meanwhile. It writes a step only when less than half a step is left,
    /// so once per half step of records (thousands of small ones); the step
    /// grows with the segment, from 64 KiB to the option's size. The zeros
    /// are not synced here: the next commit's `fdatasync` carries them, and
    /// the file's new size, once.
    ///
    /// A failed extension is not an error and does not poison: no record is
    /// in those bytes, and a failed write of zeros leaves zeros or nothing
    /// past the logical end. The segment is just not extended again; like
    /// any, it is cut back to its last record when sealed or closed.
    fn preallocate(&self, active: &mut Active) {
        let max = self.options.preallocate_size_max;
        if max == 0 || self.options.sync == SyncPolicy::Never || active.extend_stopped {
            return;
        }
        let end = active.file_len;
        let step = end.clamp(PREALLOCATE_STEP_MIN.min(max), max);
        if active.allocated >= end.saturating_add(step / 2) {
            return;
        }
        // Never past the segment's size limit: records stop before it.
        let target = end
            .saturating_add(step)
            .checked_next_multiple_of(PREALLOCATE_ALIGN)
            .unwrap_or(u64::MAX)
            .min(self.options.segment_size_max);
        let mut at = active.allocated;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            // n <= ZEROS.len(), a usize.
            let zeros = &ZEROS[..usize::try_from(n).unwrap_or(ZEROS.len())];
            if active.file.write_all_at(zeros, at).is_err() {
                active.extend_stopped = true;
                // The file may reach anywhere up to `target` now.
                active.allocated = target;
                return;
            }
            at += n;
            active.allocated = at;
        }
    }

    /// Seals the active segment (flush, fdatasync) and starts the next one;
    /// the new segment is durable in the directory before anything in it is
    /// acknowledged.
    ///
    /// The old segment is cut back to its last record before that sync, so
    /// that a sealed segment ends exactly after a batch (FORMAT.md); until
    /// the sync returns it is still the last segment, where zeros after the
    /// last batch are allowed.
    fn roll_over(&self, inner: &mut Inner) -> Result<(), LogError> {
        inner.active.extend_stopped = true;
        self.flush(inner)?;
        inner
            .active
            .trim()
            .map_err(|e| self.poison(LogError::io(&inner.active.path, "truncate", e)))?;
        inner
            .active
            .file
            .sync_data()
            .map_err(|e| self.poison(LogError::io(&inner.active.path, "fdatasync", e)))?;
        let base = inner.next_lsn;
        let (file, path) = create_segment(self.fs.as_ref(), &self.seg_dir, base, inner.prev)
            .map_err(|e| self.poison(e))?;
        let old = std::mem::replace(&mut inner.active, Active::fresh(base, path, file));
        // The sealed segment's index file is a hint: a failure to write it
        // costs later reads speed and nothing else, so it is not an error.
        let _ = index_file::write(
            self.fs.as_ref(),
            &old.path,
            old.base,
            old.file_len,
            &old.points,
        );
        inner.sealed.push((old.base, old.path));
        inner.last_sync = Instant::now();
        inner.unsynced_bytes = 0;
        // Everything before the new segment is synced now.
        let mut s = lock(&self.sync);
        if s.durable < base {
            s.durable = base;
            self.durable_lsn.store(base, Ordering::Release);
        }
        Ok(())
    }

    /// Returns once every record below `upto` is as durable as the sync
    /// policy promises. Under `Always` concurrent callers share fsyncs.
    pub fn commit(&self, upto: Lsn) -> Result<(), LogError> {
        self.check_poison()?;
        match self.options.sync {
            SyncPolicy::Always => self.group_sync(upto),
            SyncPolicy::Never => Ok(()),
            SyncPolicy::Interval(d) => {
                let due = lock(&self.inner).last_sync.elapsed() >= d;
                if due { self.group_sync(upto) } else { Ok(()) }
            }
            SyncPolicy::Bytes(n) => {
                let due = lock(&self.inner).unsynced_bytes >= n;
                if due { self.group_sync(upto) } else { Ok(()) }
            }
        }
    }

    /// Forces an fdatasync of everything written so far, whatever the policy.
    pub fn sync(&self) -> Result<(), LogError> {
        self.check_poison()?;
        let next = lock(&self.inner).next_lsn;
        self.group_sync(next)
    }

    /// Group commit: a caller whose records are not yet durable either leads
    /// the next fsync (which covers everything written until it starts) or,
    /// while one is in flight, queues and sleeps. When an fsync ends, its
    /// leader marks the queued callers it covered and wakes them with one
    /// system call (`wake::WakeWord`); a queued caller it did not cover may
    /// wake too, sees its flag unset and sleeps again.
    ///
    /// Callers just woken usually append again at once. The next fsync is
    /// therefore held back (at most half an fsync) until as many callers
    /// have come back as the last fsync woke, its leader included, so that
    /// it covers them all.
    /// Without this the first caller back would sync alone while the rest
    /// queue behind it, and the committers would split into cohorts that
    /// alternate, each fsync covering a fraction of them. The first caller
    /// back sleeps as the gatherer, with the deadline; the others queue
    /// behind it; the last one back, already running, leads the fsync
    /// itself, so no sleeping leader has to be woken and scheduled before
    /// the disk is busy again. A lone writer never waits: its fsyncs wake
    /// nobody.
    ///
    /// Queued callers are always someone's charge: the leader of the fsync
    /// in flight, the gatherer (or the caller that takes its place), or a
    /// caller handed the lead. A caller that finds the log poisoned wakes
    /// every sleeper before it returns, so none waits for an fsync that
    /// will not come.
    fn group_sync(&self, upto: Lsn) -> Result<(), LogError> {
        // Nothing at or past next_lsn exists to be synced; waiting for it
        // would lead fsyncs forever.
        let upto = upto.min(self.next_lsn());
        let mut s = lock(&self.sync);
        // The last caller back takes the gatherer's place, even if its own
        // records are durable already: the queue behind the gatherer is
        // then its charge.
        let mut take_over = false;
        if s.expected_back > 0 {
            s.expected_back -= 1;
            take_over = s.expected_back == 0 && s.gatherer.is_some();
        }
        // Set when this caller is charged with the queue even though its own
        // records may be durable: it was handed the lead, or it led the last
        // fsync and callers that wrote during it are still queued.
        let mut must_lead = false;
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                let st = &mut *s;
                let sleepers: Vec<Waiter> =
                    st.waiters.drain(..).chain(st.gatherer.take()).collect();
                drop(s);
                wake_all(self, sleepers.iter().map(|w| (w, WAKE_COVERED)));
                return Err(LogError::Poisoned);
            }
            let covered = s.durable >= upto;
            let orphaned = !s.syncing && s.gatherer.is_none() && !s.waiters.is_empty();
            if covered && !take_over && !(must_lead && orphaned) {
                return Ok(());
            }
            if s.syncing {
                // The fsync in flight's leader wakes this caller: covered,
                // or handed the lead of the next one.
                let signal = queue(&mut s.waiters, upto);
                drop(s);
                match park_until(&signal, &self.queue_word, None) {
                    WAKE_COVERED if self.durable_lsn() >= upto => return self.check_poison(),
                    how => must_lead = how == WAKE_LEAD,
                }
                take_over = false;
                s = lock(&self.sync);
                continue;
            }
            if s.expected_back > 0 && !take_over {
                if s.gatherer.is_some() {
                    // The gatherer, or the last caller back in its place,
                    // leads the fsync that covers this one.
                    let signal = queue(&mut s.waiters, upto);
                    drop(s);
                    match park_until(&signal, &self.queue_word, None) {
                        WAKE_COVERED if self.durable_lsn() >= upto => {
                            return self.check_poison();
                        }
                        how => must_lead = how == WAKE_LEAD,
                    }
                    s = lock(&self.sync);
                    continue;
                }
                let wait = (s.last_fsync / 2).min(GATHER_WAIT_MAX);
                let deadline = Instant::now() + wait;
                let signal = Arc::new(AtomicU8::new(WAKE_PENDING));
                s.gatherer = Some(Waiter {
                    upto,
                    signal: Arc::clone(&signal),
                    gathering: true,
                });
                drop(s);
                let mut how = park_until(&signal, &self.gather_word, Some(deadline));
                s = lock(&self.sync);
                if how == WAKE_PENDING {
                    let still_gathering = s
                        .gatherer
                        .as_ref()
                        .is_some_and(|g| Arc::ptr_eq(&g.signal, &signal));
                    if still_gathering {
                        // The deadline passed before everyone came back:
                        // lead for whoever did (nothing to lead when this
                        // caller is covered and nobody queued).
                        s.gatherer = None;
                        s.expected_back = 0;
                        must_lead = true;
                        continue;
                    }
                    // The last caller back took this caller's place and
                    // queued it (or woke it, covered): wait to be woken.
                    drop(s);
                    how = park_until(&signal, &self.gather_word, None);
                    s = lock(&self.sync);
                }
                if how == WAKE_COVERED && s.durable >= upto {
                    drop(s);
                    return self.check_poison();
                }
                must_lead = how == WAKE_LEAD;
                continue;
            }
            // Lead: everyone expected is back, or nobody was expected, or
            // the gather's deadline passed.
            take_over = false;
            s.expected_back = 0;
            let mut covered_early = None;
            if let Some(g) = s.gatherer.take() {
                // The gatherer joins this fsync, or, when a previous fsync
                // covered it already (a leader charged with the queue),
                // goes back to work at once.
                if g.upto <= s.durable {
                    covered_early = Some(g);
                } else {
                    s.waiters.push_back(g);
                }
            }
            s.syncing = true;
            drop(s);
            if let Some(g) = covered_early {
                wake_all(self, [(&g, WAKE_COVERED)]);
            }
            let started = Instant::now();
            let result = self.flush_and_sync();
            s = lock(&self.sync);
            s.last_fsync = started.elapsed();
            if let Ok(durable) = result
                && durable > s.durable
            {
                s.durable = durable;
                self.durable_lsn.store(durable, Ordering::Release);
            }
            let durable = s.durable;
            let failed = result.is_err() || self.poisoned.load(Ordering::Acquire);
            // Covered callers are moved here under the lock and woken after
            // it is dropped, all with one wake of the queue's word
            // (`wake_all`): callers woken early would otherwise find the
            // lock held.
            let mut woken: Vec<Waiter> = Vec::new();
            for w in std::mem::take(&mut s.waiters) {
                if failed || w.upto <= durable {
                    woken.push(w);
                } else {
                    s.waiters.push_back(w);
                }
            }
            s.syncing = false;
            // Callers still queued wrote during that fsync. The oldest of
            // them is handed the lead, with the others in its charge; it
            // gathers the callers just woken and this one, then leads (or
            // the last one back does). This caller, covered, returns at once
            // with a record of its next command for the next fsync, rather
            // than gathering with nothing of its own in it while the one
            // handed the lead sleeps: that cost every fsync one of sixteen
            // writers.
            let handed = if failed { None } else { s.waiters.pop_front() };
            must_lead = false;
            // The next fsync waits for the callers just woken and for this
            // one: a committer that led one fsync usually commits again, and
            // an fsync started without it would leave it to sync alone.
            s.expected_back = if failed { 0 } else { woken.len() + 1 };
            drop(s);
            wake_all(
                self,
                woken
                    .iter()
                    .map(|w| (w, WAKE_COVERED))
                    .chain(handed.iter().map(|w| (w, WAKE_LEAD))),
            );
            result?;
            s = lock(&self.sync);
        }
    }

    /// Flushes the buffer, then fdatasyncs the active segment outside the
    /// writer lock so appends continue meanwhile. Returns the LSN below
    /// which everything is now durable.
    fn flush_and_sync(&self) -> Result<Lsn, LogError> {
        let (file, path, target) = {
            let mut inner = lock(&self.inner);
            self.flush(&mut inner)?;
            inner.last_sync = Instant::now();
            inner.unsynced_bytes = 0;
            (
                Arc::clone(&inner.active.file),
                inner.active.path.clone(),
                inner.flushed_lsn,
            )
        };
        // Records below `target` are in this file or in sealed segments,
        // which were synced when sealed; a rollover meanwhile does not
        // invalidate this handle.
        file.sync_data()
            .map_err(|e| self.poison(LogError::io(&path, "fdatasync", e)))?;
        Ok(target)
    }

    /// Flushes the buffer (if not poisoned) and returns the segments and the
    /// LSN end a read may see.
    fn read_view(&self) -> Result<(Vec<SegRef>, Lsn), LogError> {
        let mut inner = lock(&self.inner);
        if !self.poisoned.load(Ordering::Acquire) {
            self.flush(&mut inner)?;
        }
        let mut segs: Vec<SegRef> = inner
            .sealed
            .iter()
            .map(|(base, path)| SegRef {
                base: *base,
                path: path.clone(),
                bytes: None,
                len: None,
            })
            .collect();
        segs.push(SegRef {
            base: inner.active.base,
            path: inner.active.path.clone(),
            bytes: None,
            len: Some(inner.active.file_len),
        });
        Ok((segs, inner.flushed_lsn))
    }

    fn check_range(&self, from: Lsn, end: Lsn, allow_end: bool) -> Result<(), LogError> {
        let first = self.first_lsn();
        if from < first || from > end || (from == end && !allow_end) {
            return Err(LogError::LsnOutOfRange {
                lsn: from,
                first,
                next: end,
            });
        }
        Ok(())
    }

    /// Owned records from `from` to the last record written at the time of
    /// the call, across segments. A `from` inside a segment is found from
    /// that segment's read index (see [`Log::read`]), not by walking the
    /// segment from its start; every record returned is checked as by that
    /// walk, chained to the record before it.
    pub fn iter_from(&self, from: Lsn) -> Result<Records, LogError> {
        let (segs, end) = self.read_view()?;
        self.check_range(from, end, true)?;
        Ok(Records::new(self.walker(segs, from, end)))
    }

    /// A walk over `from..end` that starts at `from` from the read index of
    /// the segment it starts in (seeded at open for the active segment,
    /// built here for a sealed one), not by walking that segment from its
    /// start; see [`Walker::start_from_index`].
    fn walker(&self, segs: Vec<SegRef>, from: Lsn, end: Lsn) -> Walker {
        let mut w = Walker::new(
            Arc::clone(&self.fs),
            segs,
            from,
            end,
            self.options.record_size_max,
        );
        if let Some(seg) = w.start_segment().cloned() {
            // Any failure to index is left to the walk from the segment's
            // start, which reports it exactly as it did without an index.
            let _ = self.with_index(&seg, |idx| {
                w.start_from_index(idx);
                Ok(())
            });
        }
        w
    }

    /// Calls `f` with each record from `from` on, without copying payloads;
    /// stops early when `f` breaks. Starts as [`Log::iter_from`] does.
    pub fn scan(
        &self,
        from: Lsn,
        mut f: impl FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        let (segs, end) = self.read_view()?;
        self.check_range(from, end, true)?;
        let mut w = self.walker(segs, from, end);
        while let Some((lsn, range)) = w.next()? {
            if f(lsn, &w.bytes()[range]).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// [`Log::scan`] one segment at a time: calls `f` with the records of
    /// each segment from `from` on, as an iterator whose payloads borrow
    /// the segment's bytes (see [`crate::SegmentRecords`]); stops early when `f`
    /// breaks. Records `f` leaves untaken are checked before the next
    /// segment.
    pub fn scan_segments(
        &self,
        from: Lsn,
        f: impl FnMut(&mut crate::SegmentRecords<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        let (segs, end) = self.read_view()?;
        self.check_range(from, end, true)?;
        self.walker(segs, from, end).scan_segments(f)
    }

    /// One record's payload. Reads are served from a per-segment index of
    /// record offsets: the active segment's is seeded by the walk at open,
    /// a sealed segment's is built on first use.
    pub fn read(&self, lsn: Lsn) -> Result<Vec<u8>, LogError> {
        let (segs, end) = {
            let inner = lock(&self.inner);
            if lsn < inner.flushed_lsn {
                // Fast path: the record is in the file already; only its
                // segment is needed, and nothing has to be flushed.
                let (base, path, len) = if lsn >= inner.active.base {
                    let a = &inner.active;
                    (a.base, a.path.clone(), Some(a.file_len))
                } else {
                    match inner.sealed.iter().rev().find(|(base, _)| *base <= lsn) {
                        Some((base, path)) => (*base, path.clone(), None),
                        None => return Err(self.out_of_range(lsn, inner.next_lsn)),
                    }
                };
                let seg = SegRef {
                    base,
                    path,
                    bytes: None,
                    len,
                };
                (vec![seg], inner.flushed_lsn)
            } else {
                drop(inner);
                self.read_view()?
            }
        };
        self.check_range(lsn, end, false)?;
        let Some(seg) = segs.into_iter().rev().find(|s| s.base <= lsn) else {
            return Err(self.out_of_range(lsn, end));
        };
        let max = self.options.record_size_max;
        let payload =
            self.with_index(&seg, |idx| Ok(idx.payload(lsn, max)?.map(<[u8]>::to_vec)))?;
        payload.ok_or_else(|| self.out_of_range(lsn, end))
    }

    /// Calls `f` with the read index of `seg`, built on first use and kept.
    fn with_index<R>(
        &self,
        seg: &SegRef,
        f: impl FnOnce(&mut SegIndex) -> Result<R, LogError>,
    ) -> Result<R, LogError> {
        let mut cache = lock(&self.read_cache);
        if let Some(idx) = cache.get_mut(&seg.base) {
            // An index built while its segment was active covers only the
            // bytes written then: extend it once the file has grown, and
            // once more when the segment has been sealed since.
            let stale = match seg.len {
                Some(len) => len > idx.len(),
                None => !idx.sealed(),
            };
            if stale {
                let bytes = scan::load(self.fs.as_ref(), seg)?;
                idx.grow(bytes);
                if seg.len.is_none() {
                    idx.seal(self.fs.as_ref());
                }
            }
            return f(idx);
        }
        let bytes = scan::load(self.fs.as_ref(), seg)?;
        let mut idx = SegIndex::new(seg.path.clone(), seg.base, bytes)?;
        if seg.len.is_none() {
            idx.seal(self.fs.as_ref());
        }
        let result = f(&mut idx);
        cache.insert(seg.base, idx);
        result
    }

    /// The read index of the segment based at `base`, if one is kept.
    #[cfg(test)]
    pub(crate) fn index_state(&self, base: Lsn) -> Option<scan::IndexState> {
        lock(&self.read_cache).get(&base).map(SegIndex::state)
    }

    fn out_of_range(&self, lsn: Lsn, next: Lsn) -> LogError {
        LogError::LsnOutOfRange {
            lsn,
            first: self.first_lsn(),
            next,
        }
    }

    /// Deletes whole sealed segments whose records all lie below `lsn` and
    /// fsyncs the directory. Returns how many were deleted. The active
    /// segment is never deleted. An iterator created earlier that has not yet
    /// reached a deleted segment gets an I/O error when it does.
    pub fn drop_segments_below(&self, lsn: Lsn) -> Result<u64, LogError> {
        let mut inner = lock(&self.inner);
        let mut dropped = 0u64;
        // A sealed segment's records all lie below the next segment's base;
        // `bases[i]` is the base of the segment after `sealed[i]`.
        let bases: Vec<Lsn> = inner
            .sealed
            .iter()
            .map(|(b, _)| *b)
            .skip(1)
            .chain(std::iter::once(inner.active.base))
            .take(inner.sealed.len())
            .collect();
        let count = bases
            .iter()
            .take_while(|next_base| **next_base <= lsn)
            .count();
        let mut failure = None;
        for _ in 0..count {
            let (base, path) = inner.sealed[0].clone();
            // Oldest first, and forgotten only once deleted, so a failure
            // leaves the log's view matching the directory. Its index file
            // goes first, so that none outlives its segment.
            index_file::remove(self.fs.as_ref(), &path);
            if let Err(e) = self.fs.remove_file(&path) {
                failure = Some(LogError::io(&path, "remove segment", e));
                break;
            }
            inner.sealed.remove(0);
            lock(&self.read_cache).remove(&base);
            dropped += 1;
        }
        if dropped > 0 {
            let first = inner.sealed.first().map_or(inner.active.base, |(b, _)| *b);
            self.first_lsn.store(first, Ordering::Release);
            self.fs
                .sync_dir(&self.seg_dir)
                .map_err(|e| LogError::io(&self.seg_dir, "fsync directory", e))?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(dropped),
        }
    }
}

impl Drop for Log {
    /// Writes out what is still buffered, cuts the preallocated zeros off
    /// the active segment so that a closed log uses no extra disk, and,
    /// unless the policy is `Never`, syncs both. Best effort: errors have
    /// nowhere to go (zeros left behind are unused space to the next open),
    /// and a poisoned writer writes nothing.
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::Acquire) {
            return;
        }
        let mut inner = lock(&self.inner);
        inner.active.extend_stopped = true;
        let had_unsynced = !inner.buf.is_empty() || inner.unsynced_bytes > 0;
        if self.flush(&mut inner).is_err() {
            return;
        }
        let trimmed = inner.active.trim().unwrap_or(false);
        if (had_unsynced || trimmed) && self.options.sync != SyncPolicy::Never {
            let _ = inner.active.file.sync_data();
        }
    }
}

/// Creates segment `base` durably: a temporary file gets the header and is
/// synced, then renamed into place, then the directory is synced.
fn create_segment(
    fs: &dyn Fs,
    seg_dir: &Path,
    base: Lsn,
    chain: u32,
) -> Result<(Arc<dyn FsFile>, PathBuf), LogError> {
    let name = segment_file_name(base);
    let path = seg_dir.join(&name);
    let tmp = seg_dir.join(format!("{name}{TEMP_EXT}"));
    let header = format::encode_segment_header(SegmentHeader {
        base_lsn: base,
        chain,
    });
    let file = fs
        .create(&tmp)
        .map_err(|e| LogError::io(&tmp, "create segment", e))?;
    file.write_all_at(&header, 0)
        .map_err(|e| LogError::io(&tmp, "write", e))?;
    file.sync_data()
        .map_err(|e| LogError::io(&tmp, "fdatasync", e))?;
    fs.rename(&tmp, &path)
        .map_err(|e| LogError::io(&path, "rename", e))?;
    fs.sync_dir(seg_dir)
        .map_err(|e| LogError::io(seg_dir, "fsync directory", e))?;
    Ok((file, path))
}

/// `dir/name`, or the first of `name.1`, `name.2`, … that does not exist.
fn unused_path(fs: &dyn Fs, dir: &Path, name: &str) -> Result<PathBuf, LogError> {
    let mut path = dir.join(name);
    for n in 1..=SIDE_FILE_VERSIONS_MAX {
        if !fs
            .exists(&path)
            .map_err(|e| LogError::io(&path, "stat", e))?
        {
            return Ok(path);
        }
        path = dir.join(format!("{name}.{n}"));
    }
    Err(LogError::io(
        &path,
        "choose a file name",
        std::io::Error::other("too many files of this name"),
    ))
}

/// How many side files may share one name (`name`, `name.1`, …).
const SIDE_FILE_VERSIONS_MAX: u32 = 1000;

/// Writes `bytes` durably to `dir/name` (temporary file, sync, rename,
/// directory sync). Used for side files, so a crash leaves either the old
/// state or the whole file; recovery may write the same file again.
///
/// Side files are kept, never replaced: when `name` holds other bytes (a
/// second tail torn at the same offset), `name.1`, `name.2`, … is used; a
/// name that already holds these bytes (recovery run again) is reused.
fn write_side_file(fs: &dyn Fs, dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, LogError> {
    fs.create_dir_all(dir)
        .map_err(|e| LogError::io(dir, "create directory", e))?;
    let mut path = dir.join(name);
    let mut n = 0u32;
    while fs
        .exists(&path)
        .map_err(|e| LogError::io(&path, "stat", e))?
    {
        // Compare lengths first: a planted file is not read into memory.
        let len = fs
            .file_len(&path)
            .map_err(|e| LogError::io(&path, "stat", e))?;
        if len == bytes.len() as u64
            && fs
                .read_all(&path)
                .map_err(|e| LogError::io(&path, "read", e))?
                == bytes
        {
            return Ok(path);
        }
        n += 1;
        if n > SIDE_FILE_VERSIONS_MAX {
            return Err(LogError::io(
                &path,
                "choose a side file name",
                std::io::Error::other("too many side files of this name"),
            ));
        }
        path = dir.join(format!("{name}.{n}"));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name)
        .to_owned();
    let tmp = dir.join(format!("{name}{TEMP_EXT}"));
    let f = fs
        .create(&tmp)
        .map_err(|e| LogError::io(&tmp, "create", e))?;
    f.write_all_at(bytes, 0)
        .map_err(|e| LogError::io(&tmp, "write", e))?;
    f.sync_data()
        .map_err(|e| LogError::io(&tmp, "fdatasync", e))?;
    fs.rename(&tmp, &path)
        .map_err(|e| LogError::io(&path, "rename", e))?;
    fs.sync_dir(dir)
        .map_err(|e| LogError::io(dir, "fsync directory", e))?;
    Ok(path)
}

/// Truncates a segment to `len` and syncs the truncation.
fn truncate_segment(fs: &dyn Fs, path: &Path, len: u64) -> Result<(), LogError> {
    let f = fs
        .open_write(path)
        .map_err(|e| LogError::io(path, "open", e))?;
    f.set_len(len)
        .map_err(|e| LogError::io(path, "truncate", e))?;
    f.sync_data()
        .map_err(|e| LogError::io(path, "fdatasync", e))
}

struct Recovered {
    sealed: Vec<(Lsn, PathBuf)>,
    active: Active,
    prev: u32,
    report: RecoveryReport,
    /// The active segment's read index, seeded from the walk at open.
    index: Option<SegIndex>,
}

/// The first damage found, and the valid prefix before it.
struct Damage {
    /// Index of the segment.
    seg: usize,
    /// Where its valid prefix (whole batches) ends.
    cut: u64,
    /// First LSN after the valid prefix.
    lsn: Lsn,
    /// Cursor at the cut (for the chain), when the header was readable.
    cursor: Option<Cursor>,
    error: LogError,
}

/// Opens the on-disk state: removes leftover temporary segments, checks
/// headers, walks the last segment (every segment under `Strict` and
/// `Salvage`), then cuts a torn tail or salvages per the mode.
fn recover(
    fs: &dyn Fs,
    dir: &Path,
    seg_dir: &Path,
    options: &LogOptions,
) -> Result<Recovered, LogError> {
    let max = options.record_size_max;
    let mut temp_files_removed = 0;
    let names = fs
        .list_dir(seg_dir)
        .map_err(|e| LogError::io(seg_dir, "list directory", e))?;
    for n in names.iter().filter(|n| n.ends_with(TEMP_EXT)) {
        // A temporary segment never held an acknowledged record: rollover
        // renames it into place before anything is written to it.
        let p = seg_dir.join(n);
        fs.remove_file(&p)
            .map_err(|e| LogError::io(&p, "remove temporary file", e))?;
        temp_files_removed += 1;
    }
    if temp_files_removed > 0 {
        fs.sync_dir(seg_dir)
            .map_err(|e| LogError::io(seg_dir, "fsync directory", e))?;
    }
    let mut segs = scan::list_segments(fs, seg_dir)?;
    if segs.is_empty() {
        let (file, path) = create_segment(fs, seg_dir, 0, 0)?;
        return Ok(Recovered {
            sealed: Vec::new(),
            active: Active::fresh(0, path, file),
            prev: 0,
            report: RecoveryReport {
                next_lsn: 0,
                first_lsn: 0,
                segments: 1,
                torn_tail: None,
                salvaged: None,
                temp_files_removed,
                unused_bytes: 0,
            },
            index: None,
        });
    }
    let full = options.recovery != RecoveryMode::TolerateTornTail;
    let n = segs.len();
    let mut damage: Option<Damage> = None;
    let mut torn: Option<(usize, u64, u64, u64)> = None; // seg, cut, bytes, dropped
    let mut last_cursor: Option<Cursor> = None;
    let mut prev_end: Option<Cursor> = None;
    // The last walked segment's logical end (after its last whole batch)
    // and its length on disk; they differ by the zeros of preallocated space.
    let mut last_len = 0u64;
    let mut last_alloc = 0u64;
    // The last segment's header, offsets as its walk checked them, and
    // bytes: the read index is seeded from them, so that neither the first
    // read nor a scan from an LSN inside it walks it again.
    let mut walked: Option<SegmentHeader> = None;
    let mut offsets: Vec<usize> = Vec::new();
    let mut walked_bytes: Option<SegmentBytes> = None;
    for (i, seg) in segs.iter().enumerate() {
        let is_last = i + 1 == n;
        let len = fs
            .file_len(&seg.path)
            .map_err(|e| LogError::io(&seg.path, "stat", e))?;
        let walk = full || is_last;
        let map_len = if walk {
            len
        } else {
            len.min(SEGMENT_HEADER_LEN as u64)
        };
        let bytes = fs
            .map(&seg.path, map_len)
            .map_err(|e| LogError::io(&seg.path, "map", e))?;
        let h = match check_header(&seg.path, seg.base, &bytes) {
            Ok(h) => h,
            Err(e) => {
                if options.recovery == RecoveryMode::Salvage && e.is_corruption() {
                    damage = Some(Damage {
                        seg: i,
                        cut: 0,
                        lsn: seg.base,
                        cursor: None,
                        error: e,
                    });
                    break;
                }
                return Err(e);
            }
        };
        if let Some(p) = prev_end {
            let detail = p.continued_by(&h);
            if let Some(detail) = detail {
                let e = scan::corruption(&seg.path, 0, p.lsn, detail);
                if options.recovery == RecoveryMode::Salvage {
                    damage = Some(Damage {
                        seg: i,
                        cut: 0,
                        lsn: p.lsn,
                        cursor: None,
                        error: e,
                    });
                    break;
                }
                return Err(e);
            }
        }
        if !walk {
            prev_end = None;
            continue;
        }
        let s = if is_last {
            scan::scan_segment_with(&bytes, &h, max, is_last, |off| offsets.push(off))
        } else {
            scan::scan_segment(&bytes, &h, max, is_last)
        };
        prev_end = Some(s.cursor);
        last_cursor = Some(s.cursor);
        last_len = s.cursor.off as u64;
        last_alloc = len;
        if is_last {
            walked = Some(h);
            walked_bytes = Some(bytes);
        }
        match s.ending {
            Ending::Clean => {}
            Ending::Torn => {
                let cut = s.cursor.off as u64;
                torn = Some((i, cut, len - cut, s.records_dropped));
            }
            Ending::Corrupt(bad) => {
                let e = bad.into_error(&seg.path);
                if options.recovery == RecoveryMode::Salvage {
                    damage = Some(Damage {
                        seg: i,
                        cut: s.cursor.off as u64,
                        lsn: s.cursor.lsn,
                        cursor: Some(s.cursor),
                        error: e,
                    });
                    break;
                }
                return Err(e);
            }
        }
    }

    let mut report = RecoveryReport {
        next_lsn: 0,
        first_lsn: segs[0].base,
        segments: 0,
        torn_tail: None,
        salvaged: None,
        temp_files_removed,
        unused_bytes: 0,
    };

    if let Some((i, cut, bytes, dropped)) = torn {
        let seg = &segs[i];
        let tail = TornTail {
            segment: seg.path.clone(),
            offset: cut,
            bytes,
            records_dropped: dropped,
            side_file: None,
        };
        match options.recovery {
            RecoveryMode::Strict => return Err(LogError::TornTail(tail)),
            RecoveryMode::TolerateTornTail => {
                let data = fs
                    .read_all(&seg.path)
                    .map_err(|e| LogError::io(&seg.path, "read", e))?;
                let cut_bytes = data
                    .get(usize::try_from(cut).unwrap_or(usize::MAX)..)
                    .unwrap_or(&[]);
                let name = format!("{}.{cut:020}.torn", segment_file_name(seg.base));
                let side = write_side_file(fs, &dir.join("torn"), &name, cut_bytes)?;
                // No map of a segment may live while it is truncated
                // (mmap.rs); what is kept is mapped again below.
                walked_bytes = None;
                truncate_segment(fs, &seg.path, cut)?;
                last_len = cut;
                last_alloc = cut;
                report.torn_tail = Some(TornTail {
                    side_file: Some(side),
                    ..tail
                });
            }
            RecoveryMode::Salvage => {
                let c = last_cursor.unwrap_or(Cursor::at_start(&SegmentHeader {
                    base_lsn: seg.base,
                    chain: 0,
                }));
                damage = Some(Damage {
                    seg: i,
                    cut,
                    lsn: c.lsn,
                    cursor: Some(c),
                    error: LogError::TornTail(tail),
                });
            }
        }
    }

    if let Some(d) = damage {
        // Salvage truncates and moves segments; its cursor is not the walk's.
        walked = None;
        walked_bytes = None;
        let (salvaged, kept_len, cursor) = salvage(fs, dir, &segs, d)?;
        report.salvaged = Some(salvaged);
        segs.truncate(segs.len().min(kept_len.0));
        last_cursor = cursor;
        last_len = kept_len.1;
        last_alloc = kept_len.1;
        if segs.is_empty() {
            // Even the first segment's header was bad: start afresh at its base.
            let base = report.first_lsn;
            let (file, path) = create_segment(fs, seg_dir, base, 0)?;
            report.next_lsn = base;
            report.segments = 1;
            return Ok(Recovered {
                sealed: Vec::new(),
                active: Active::fresh(base, path, file),
                prev: 0,
                report,
                index: None,
            });
        }
    }

    // The last remaining segment becomes the active one.
    let Some(last) = segs.last() else {
        return Err(LogError::NotALog {
            path: dir.to_owned(),
            reason: "no segments left after recovery".to_owned(),
        });
    };
    let cursor = match last_cursor {
        Some(c) => c,
        None => {
            // Salvage cut a later segment away whole; walk this one now.
            let bytes = fs
                .read_all(&last.path)
                .map_err(|e| LogError::io(&last.path, "read", e))?;
            let h = check_header(&last.path, last.base, &bytes)?;
            let s = scan::scan_segment(&bytes, &h, max, true);
            if !matches!(s.ending, Ending::Clean) {
                return Err(LogError::NotALog {
                    path: last.path.clone(),
                    reason: "salvage left a segment that does not end cleanly".to_owned(),
                });
            }
            last_len = s.cursor.off as u64;
            last_alloc = bytes.len() as u64;
            s.cursor
        }
    };
    let file = fs
        .open_write(&last.path)
        .map_err(|e| LogError::io(&last.path, "open", e))?;
    // What the last writer left may never have been synced (SyncPolicy::Never);
    // sync it so that durable_lsn starts out true. This makes the zeros of
    // preallocated space durable too: the writer then fills them, as the
    // writer that wrote them would have.
    file.sync_data()
        .map_err(|e| LogError::io(&last.path, "fdatasync", e))?;
    report.next_lsn = cursor.lsn;
    report.segments = segs.len() as u64;
    report.unused_bytes = last_alloc.saturating_sub(last_len);
    let active = Active {
        base: last.base,
        path: last.path.clone(),
        file,
        file_len: last_len,
        allocated: last_alloc.max(last_len),
        extend_stopped: false,
        points: Vec::new(),
    };
    let sealed = segs[..segs.len() - 1]
        .iter()
        .map(|s| (s.base, s.path.clone()))
        .collect();
    // The index holds the bytes up to the end of the last whole batch: the
    // walk's map when that is the whole of it, else (a torn tail was cut)
    // a new map of what is kept. Without a map the index is built when
    // first needed, as before.
    let index = walked.and_then(|h| {
        let bytes = match walked_bytes.filter(|b| b.len() == cursor.off) {
            Some(b) => b,
            None => fs.map(&last.path, cursor.off as u64).ok()?,
        };
        Some(SegIndex::from_scan(
            last.path.clone(),
            &h,
            bytes,
            offsets,
            cursor,
        ))
    });
    Ok(Recovered {
        sealed,
        active,
        prev: cursor.prev,
        report,
        index,
    })
}

/// What salvage kept: its report, (segments kept, length of the last kept
/// one), and the cursor at the end of what is kept.
type SalvageResult = (Salvaged, (usize, u64), Option<Cursor>);

/// Sets aside everything from the damage on: the damaged segment's bytes
/// after its valid prefix go to a quarantine file, later segments move into
/// the quarantine directory whole. Returns the report, (segments kept,
/// length of the last kept one), and the cursor at the end of what is kept.
fn salvage(fs: &dyn Fs, dir: &Path, segs: &[SegRef], d: Damage) -> Result<SalvageResult, LogError> {
    let qdir = dir.join("quarantine");
    let seg = &segs[d.seg];
    let data = fs
        .read_all(&seg.path)
        .map_err(|e| LogError::io(&seg.path, "read", e))?;
    let cut = usize::try_from(d.cut).unwrap_or(usize::MAX).min(data.len());
    let name = format!("{}.{:020}.bad", segment_file_name(seg.base), d.cut);
    let quarantine_file = write_side_file(fs, &qdir, &name, &data[cut..])?;
    let mut bytes = (data.len() - cut) as u64;
    let mut segments_moved = Vec::new();
    for later in &segs[d.seg + 1..] {
        bytes += fs.file_len(&later.path).unwrap_or(0);
        let name = later
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // An earlier salvage may have set aside a segment of this name (the
        // log regrew through the same LSNs): keep it too.
        let to = unused_path(fs, &qdir, &name)?;
        index_file::remove(fs, &later.path);
        fs.rename(&later.path, &to)
            .map_err(|e| LogError::io(&later.path, "move to quarantine", e))?;
        segments_moved.push(to);
    }
    // The segment is cut or removed: an index file of it would be stale.
    index_file::remove(fs, &seg.path);
    let kept = if cut == 0 {
        // The header itself is bad: the whole file goes.
        fs.remove_file(&seg.path)
            .map_err(|e| LogError::io(&seg.path, "remove", e))?;
        (d.seg, 0)
    } else {
        truncate_segment(fs, &seg.path, cut as u64)?;
        (d.seg + 1, cut as u64)
    };
    let seg_dir = seg.path.parent().unwrap_or(dir);
    fs.sync_dir(seg_dir)
        .map_err(|e| LogError::io(seg_dir, "fsync directory", e))?;
    fs.sync_dir(&qdir)
        .map_err(|e| LogError::io(&qdir, "fsync directory", e))?;
    let cursor = if cut == 0 { None } else { d.cursor };
    Ok((
        Salvaged {
            segment: seg.path.clone(),
            offset: d.cut,
            lsn: d.lsn,
            bytes,
            quarantine_file,
            reason: d.error.to_string(),
            segments_moved,
        },
        kept,
        cursor,
    ))
}
