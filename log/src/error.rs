//! The crate's one error type, and the kinds of corruption it can name.

use std::io;
use std::path::PathBuf;

use crate::{Lsn, TornTail};

/// Everything that can go wrong in the log. Each variant says what was wrong
/// and where, so a caller can tell a torn tail from corruption in the middle.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum LogError {
    /// An operating-system call failed.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What the log was doing ("open", "write", "fdatasync", ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another writer holds the directory's `LOCK` (still, after a wait of
    /// about 130 ms).
    #[error("the log at {} is locked by another writer", path.display())]
    Locked {
        /// The `LOCK` file.
        path: PathBuf,
    },
    /// An earlier write or fsync failed; nothing more is written or acknowledged.
    #[error(
        "the log writer is poisoned by an earlier write or fsync failure; reopen the log to continue"
    )]
    Poisoned,
    /// `append`/`write` was given no records.
    #[error("a batch needs at least one record, and this one was empty")]
    EmptyBatch,
    /// A record is larger than `record_size_max`.
    #[error("a record of {size} bytes exceeds record_size_max of {max} bytes")]
    RecordTooLarge {
        /// The record's size in bytes.
        size: u64,
        /// The configured limit.
        max: u32,
    },
    /// A batch has more records than one batch can frame.
    #[error("a batch of {records} records exceeds the limit of {max} records per batch")]
    BatchTooLarge {
        /// The number of records in the batch.
        records: u64,
        /// The limit.
        max: u64,
    },
    /// Bytes on disk are damaged somewhere a crash cannot explain.
    #[error("corruption in segment {} at offset {offset} (LSN {lsn}): {detail}", segment.display())]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset in the segment where the damage starts.
        offset: u64,
        /// The LSN the log expected at that offset.
        lsn: Lsn,
        /// What was wrong.
        detail: CorruptionKind,
    },
    /// Under [`RecoveryMode::Strict`](crate::RecoveryMode::Strict): the last
    /// batch is incomplete.
    #[error(
        "torn tail in segment {} at offset {}: {} bytes holding {} records of an incomplete batch",
        .0.segment.display(), .0.offset, .0.bytes, .0.records_dropped
    )]
    TornTail(TornTail),
    /// A segment was written by a newer format version than this build reads.
    #[error(
        "{} was written by log format version {version}, newer than the supported version {supported}",
        path.display()
    )]
    NewerFormat {
        /// The segment file.
        path: PathBuf,
        /// The version found.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The directory is not a runlog log.
    #[error("{} is not a runlog log: {reason}", path.display())]
    NotALog {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A segment's name is not a regular file (a symbolic link, a
    /// directory, a FIFO, a device): it is refused rather than followed.
    #[error("{} is {found}, not a regular file; segments must be regular files", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        found: &'static str,
    },
    /// An LSN outside `first..next` was asked for.
    #[error("LSN {lsn} is not in the log, which holds LSNs {first}..{next}")]
    LsnOutOfRange {
        /// The LSN asked for.
        lsn: Lsn,
        /// The lowest LSN retained.
        first: Lsn,
        /// The LSN the next record will get.
        next: Lsn,
    },
    /// The options cannot work.
    #[error("invalid log options: {reason}")]
    InvalidOptions {
        /// Why.
        reason: String,
    },
}

impl LogError {
    /// True for [`LogError::Corruption`]: damage a crash cannot explain.
    pub fn is_corruption(&self) -> bool {
        matches!(self, LogError::Corruption { .. })
    }

    /// True for [`LogError::TornTail`].
    pub fn is_torn_tail(&self) -> bool {
        matches!(self, LogError::TornTail(_))
    }

    /// True for [`LogError::Locked`].
    pub fn is_locked(&self) -> bool {
        matches!(self, LogError::Locked { .. })
    }

    /// True for [`LogError::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        matches!(self, LogError::Poisoned)
    }

    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> LogError {
        LogError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// What exactly was wrong with the bytes at a [`LogError::Corruption`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The record's checksum does not match its bytes.
    #[error("record checksum mismatch: stored {expected:#010x}, computed {found:#010x}")]
    ChecksumMismatch {
        /// The checksum stored in the record.
        expected: u32,
        /// The checksum computed from the bytes.
        found: u32,
    },
    /// A record (or segment) has the wrong LSN.
    #[error("LSN gap: expected LSN {expected}, found {found}")]
    LsnGap {
        /// The LSN that should come next.
        expected: Lsn,
        /// The LSN found.
        found: Lsn,
    },
    /// A record's length field is over `record_size_max`.
    #[error("record length {len} exceeds record_size_max {max}")]
    LengthTooLarge {
        /// The length field.
        len: u64,
        /// The configured limit.
        max: u32,
    },
    /// A record runs past the end of the segment file.
    #[error("record runs past the end of the segment: needs {needed} bytes, {available} remain")]
    Truncated {
        /// Bytes the record needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// Zeros where a record header should be.
    #[error("zero-filled bytes where a record header should be")]
    Zeroed,
    /// The segment header is damaged or inconsistent.
    #[error("bad segment header: {reason}")]
    BadHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// A record (or segment header) does not chain to the checksum before it.
    #[error(
        "checksum chain broken: expected previous checksum {expected:#010x}, found {found:#010x}"
    )]
    ChainBroken {
        /// The checksum of the record before.
        expected: u32,
        /// The chain value stored.
        found: u32,
    },
    /// A record has flag bits this version does not define.
    #[error("unknown record flags {flags:#x}")]
    BadFlags {
        /// The flags field.
        flags: u32,
    },
    /// A record's position in its batch does not follow from the records before.
    #[error("batch position {found} where {expected} was expected")]
    BatchMismatch {
        /// The position that follows from the records before.
        expected: u64,
        /// The position stored.
        found: u32,
    },
    /// A sealed segment ends inside a batch.
    #[error("segment ends inside a batch: its last record is not marked end-of-batch")]
    IncompleteBatch,
    /// A record claims the very last LSN (2^64 - 1), after which no record
    /// could follow; only a crafted file does that.
    #[error("record claims LSN {lsn}, the end of the LSN space")]
    LsnExhausted {
        /// The LSN claimed.
        lsn: Lsn,
    },
    /// A segment that the directory listing says exists is missing or the
    /// log ends before an LSN it should hold.
    #[error("log ends at LSN {found} but records up to LSN {expected} were expected")]
    MissingRecords {
        /// The LSN that should exist.
        expected: Lsn,
        /// Where the records stop.
        found: Lsn,
    },
}
