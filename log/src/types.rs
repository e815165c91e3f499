//! Options, reports and the small value types of the public API.

use std::path::PathBuf;
use std::time::Duration;

use crate::LogError;

/// A log sequence number: the position of a record in the log, counted from 0.
pub type Lsn = u64;

/// How a log is opened and written.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// The largest payload accepted, in bytes (default 16 MiB). Checked before
    /// anything is allocated, on write and on read.
    pub record_size_max: u32,
    /// A segment that would grow past this many bytes is sealed and a new one
    /// started (default 64 MiB). A single batch larger than this still goes in
    /// one segment: batches never span segments.
    pub segment_size_max: u64,
    /// When appended records are made durable (default [`SyncPolicy::Always`]).
    pub sync: SyncPolicy,
    /// What opening does with a damaged tail (default
    /// [`RecoveryMode::TolerateTornTail`]).
    pub recovery: RecoveryMode,
    /// How much space, at most, the writer keeps written with zeros ahead of
    /// the active segment's last record (default 1 MiB; 0 turns it off; at
    /// most [`PREALLOCATE_SIZE_LIMIT`]). A record written over zeros that
    /// are already on disk changes no file metadata, so the `fdatasync` of
    /// a commit has only data to flush, not the file's new size (on ext4,
    /// no journal commit). The space grows with the segment, from 64 KiB up
    /// to this size, never past `segment_size_max`; it is written as part
    /// of a flush and made durable by the next sync, so its cost falls on
    /// one commit in thousands. A sealed segment is cut back to its last
    /// record, and so is the active one when the log is closed: a closed
    /// log uses no extra disk. Not used under [`SyncPolicy::Never`], which
    /// has no sync to spare.
    pub preallocate_size_max: u64,
}

/// The largest [`LogOptions::preallocate_size_max`] accepted: 1 GiB.
pub const PREALLOCATE_SIZE_LIMIT: u64 = 1 << 30;

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            record_size_max: 16 << 20,
            segment_size_max: 64 << 20,
            sync: SyncPolicy::Always,
            recovery: RecoveryMode::TolerateTornTail,
            preallocate_size_max: 1 << 20,
        }
    }
}

/// When appended records reach stable storage, and what a crash can lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every `append` (or `commit`) returns only after its bytes are
    /// fdatasync'ed. Concurrent committers share fsyncs (group commit).
    /// A crash loses nothing that was acknowledged.
    Always,
    /// `commit` syncs when this much time has passed since the last sync.
    /// A crash can lose what was acknowledged since then (and, on a process
    /// crash, what still sat in the writer's user-space buffer).
    Interval(Duration),
    /// `commit` syncs once this many bytes were written since the last sync.
    /// A crash can lose up to that many acknowledged bytes.
    Bytes(u64),
    /// Never sync on commit; the OS writes back when it likes. Records sit in
    /// a user-space buffer (up to 256 KiB) until it fills or the log is read,
    /// synced or dropped, so even a process crash can lose acknowledged records.
    Never,
}

/// What opening the writer does with damage it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Cut an incomplete last batch (kept in a side file and reported); any
    /// other damage is a [`LogError::Corruption`].
    #[default]
    TolerateTornTail,
    /// Any anomaly, a torn tail included, is an error. Every segment is checked.
    Strict,
    /// For the offline tool: keep the valid prefix, move everything from the
    /// first bad byte on into a quarantine file, and report it.
    Salvage,
}

/// The LSNs an append gave: records got `first..next`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// LSN of the batch's first record.
    pub first: Lsn,
    /// One past the batch's last record: the LSN the next record gets.
    pub next: Lsn,
}

/// One record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its payload, exactly as appended.
    pub payload: Vec<u8>,
}

/// What [`Log::open`](crate::Log::open) found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The LSN the next record will get.
    pub next_lsn: Lsn,
    /// The lowest LSN still retained.
    pub first_lsn: Lsn,
    /// How many segment files the log has after recovery.
    pub segments: u64,
    /// What was cut under `TolerateTornTail`; `None` when the tail was clean.
    pub torn_tail: Option<TornTail>,
    /// Under `Salvage`: exactly what was set aside.
    pub salvaged: Option<Salvaged>,
    /// Leftover temporary segment files (from a crash during rollover) removed.
    pub temp_files_removed: u64,
    /// Zero bytes found after the last complete batch of the last segment:
    /// space a writer had preallocated and not yet filled (see
    /// [`LogOptions::preallocate_size_max`]). Not a torn tail: nothing is
    /// cut or set aside, and the writer fills it with its next records.
    pub unused_bytes: u64,
}

/// An incomplete last batch: what was (or would be) cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the cut starts: the end of the last complete batch.
    pub offset: u64,
    /// How many bytes lie from there to the end of the file.
    pub bytes: u64,
    /// How many whole, valid records of the incomplete batch were cut.
    pub records_dropped: u64,
    /// Where the cut bytes were kept (`None` when nothing was written, as in
    /// a read-only verify or a `Strict` error).
    pub side_file: Option<PathBuf>,
}

/// What `Salvage` set aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Salvaged {
    /// The segment where the first bad byte was.
    pub segment: PathBuf,
    /// Where the kept prefix ends in it (the end of the last whole batch).
    pub offset: u64,
    /// The first LSN set aside.
    pub lsn: Lsn,
    /// Bytes set aside, later segments included.
    pub bytes: u64,
    /// The file holding the bytes cut from `segment`.
    pub quarantine_file: PathBuf,
    /// Why: the error that the damage would have given.
    pub reason: String,
    /// Later segments moved whole into the quarantine directory.
    pub segments_moved: Vec<PathBuf>,
}

/// The result of [`LogReader::verify`](crate::LogReader::verify).
#[derive(Debug)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Valid records found.
    pub records: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// One past the last valid record of a complete batch.
    pub next_lsn: Lsn,
    /// The verdict.
    pub outcome: VerifyOutcome,
}

/// The verdict of a verify.
#[derive(Debug)]
pub enum VerifyOutcome {
    /// Every byte checks out.
    Intact,
    /// The last batch is incomplete: what opening the writer would cut.
    TornTail(TornTail),
    /// Damage a crash cannot explain: a [`LogError::Corruption`] (or a header
    /// problem such as [`LogError::NewerFormat`]).
    Corrupt(LogError),
}

impl LogOptions {
    pub(crate) fn validate(&self) -> Result<(), LogError> {
        if self.segment_size_max <= crate::format::SEGMENT_HEADER_LEN as u64 {
            return Err(LogError::InvalidOptions {
                reason: format!(
                    "segment_size_max {} must be larger than the {}-byte segment header",
                    self.segment_size_max,
                    crate::format::SEGMENT_HEADER_LEN
                ),
            });
        }
        if self.preallocate_size_max > PREALLOCATE_SIZE_LIMIT {
            return Err(LogError::InvalidOptions {
                reason: format!(
                    "preallocate_size_max {} is over the limit of {PREALLOCATE_SIZE_LIMIT} bytes",
                    self.preallocate_size_max
                ),
            });
        }
        if let SyncPolicy::Bytes(0) = self.sync {
            return Err(LogError::InvalidOptions {
                reason: "SyncPolicy::Bytes needs a threshold above 0".to_owned(),
            });
        }
        Ok(())
    }
}
