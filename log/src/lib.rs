//! runlog-log: a segmented, append-only, checksummed record log.
//!
//! What it is for: storing opaque byte records durably, in order, each with a
//! log sequence number (LSN), and giving them back exactly — or a typed error
//! that says where the bytes on disk went wrong.
//!
//! What it is not for: it knows nothing of jobs, runs or events; it does not
//! interpret payloads. That is `runlog-projections` and `runlog-engine`.
//!
//! The on-disk format, its checksums and the recovery rules are specified
//! byte by byte in `FORMAT.md` at the repository root.
//!
//! - [`Log`] is the writer: one per directory (a `LOCK` file enforces it),
//!   `Send + Sync`, with group commit under [`SyncPolicy::Always`]. It keeps
//!   zeros written ahead of its last record, so that a commit's fdatasync
//!   flushes data and no file size ([`LogOptions::preallocate_size_max`]);
//!   they are cut off when a segment is sealed and when the log is closed.
//! - [`LogReader`] is read-only: no lock, never writes, works beside a live
//!   writer, and offers a full [`LogReader::verify`].
//! - Cargo feature `sim` (test support, off by default) exposes the
//!   file-system seam (`Fs`) and a simulated file system (`SimFs`) that can
//!   crash at the k-th sync, tear unsynced bytes and inject EIO, ENOSPC and
//!   short writes, with `Log::open_with` and `LogReader::open_with`. Enable it
//!   in `[dev-dependencies]` only.
//!
//! ```no_run
//! use runlog_log::{Log, LogOptions};
//! # fn main() -> Result<(), runlog_log::LogError> {
//! let (log, report) = Log::open("/tmp/my-log", LogOptions::default())?;
//! assert!(report.torn_tail.is_none());
//! let appended = log.append(&[b"hello", b"world"])?;
//! assert_eq!(log.read(appended.first)?, b"hello");
//! # Ok(()) }
//! ```

mod error;
mod format;
mod fs;
mod index_file;
#[allow(unsafe_code)]
mod mmap;
mod reader;
mod scan;
// Without the `sim` feature the simulated file system is compiled only for
// this crate's unit tests, which use part of it.
#[cfg(any(test, feature = "sim"))]
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
mod sim;
mod types;
mod wake;
mod writer;

#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod tests;

pub use error::{CorruptionKind, LogError};
pub use reader::{LogReader, Records};
pub use scan::SegmentRecords;
pub use types::{
    Appended, LogOptions, Lsn, PREALLOCATE_SIZE_LIMIT, Record, RecoveryMode, RecoveryReport,
    Salvaged, SyncPolicy, TornTail, VerifyOutcome, VerifyReport,
};
pub use writer::Log;

/// The newest on-disk format version this build reads and the one it writes.
pub const FORMAT_VERSION: u32 = format::FORMAT_VERSION;

#[cfg(feature = "sim")]
pub use fs::{Fs, FsFile, LockGuard, RealFs, SegmentBytes};
#[cfg(feature = "sim")]
pub use sim::{Fault, SimFs, Tear};
