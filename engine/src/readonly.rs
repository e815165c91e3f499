//! The read-only open: for tools and audits.

use crate::engine::SnapshotUsed;
use crate::engine::{Start, start_and_replay};
use crate::error::EngineError;
use crate::files::Files;
use crate::options::{AsOf, Options};
use crate::query::{LogEvents, Query, Source, sealed};
use crate::replay::Stop;
use crate::snapshot::SkippedSnapshot;
use runlog_log::{LogError, LogReader};
use runlog_projections::{Lsn, Projections, Timestamp};
use std::path::Path;
use std::sync::Arc;

/// A data directory opened read-only, its views replayed up to a point.
///
/// Takes no lock and writes nothing — no truncation, no snapshot, no
/// interrupted runs recorded — so it works on a copy, on a directory a live
/// writer is appending to (it sees whole batches only), and on read-only
/// media. Runs in flight are shown as they were found, in flight.
#[derive(Debug)]
pub struct ReadOnly {
    /// Shared with the views restored from a snapshot, which read the
    /// events of jobs it holds by their LSNs.
    reader: Arc<LogReader>,
    views: Projections,
    options: Options,
    report: ReadReport,
}

/// What a read-only open found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadReport {
    /// The snapshot the views were loaded from, if any.
    pub snapshot: Option<SnapshotUsed>,
    /// Snapshots passed over, and why.
    pub snapshots_skipped: Vec<SkippedSnapshot>,
    /// Events replayed from the log after the snapshot.
    pub events_replayed: u64,
    /// The views hold every event below this LSN (up to the point asked).
    pub next_lsn: Lsn,
    /// The log's end when it was opened.
    pub log_next_lsn: Lsn,
    /// Timestamp of the last event in the views.
    pub last_at: Timestamp,
}

impl ReadOnly {
    /// Opens `dir` read-only and replays it up to `as_of`. Only the
    /// record limits, code version and attempts bound of `options` are
    /// used.
    pub fn open(
        dir: impl AsRef<Path>,
        options: Options,
        as_of: AsOf,
    ) -> Result<ReadOnly, EngineError> {
        let dir = dir.as_ref();
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(EngineError::Log(LogError::NotALog {
                    path: dir.to_path_buf(),
                    reason: "it is a file, not a directory".into(),
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EngineError::NoSuchDirectory {
                    path: dir.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(EngineError::Log(LogError::Io {
                    path: dir.to_path_buf(),
                    op: "stat",
                    source,
                }));
            }
        }
        let files = Files::Real;
        let reader = LogReader::open(dir, options.log_options())?;
        ReadOnly::open_on(dir, options, as_of, &files, reader)
    }

    /// [`ReadOnly::open`] on a given file system (test support, feature
    /// `sim`): the log and the snapshots are read from `fs`.
    #[cfg(feature = "sim")]
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: Options,
        as_of: AsOf,
        fs: std::sync::Arc<dyn runlog_log::Fs>,
    ) -> Result<ReadOnly, EngineError> {
        let dir = dir.as_ref();
        let files = Files::Sim(fs.clone());
        if !fs.exists(dir).unwrap_or(false) {
            return Err(EngineError::NoSuchDirectory {
                path: dir.to_path_buf(),
            });
        }
        let reader = LogReader::open_with(fs, dir, options.log_options())?;
        ReadOnly::open_on(dir, options, as_of, &files, reader)
    }

    /// The rest of a read-only open, once the log reader is open.
    fn open_on(
        dir: &Path,
        options: Options,
        as_of: AsOf,
        files: &Files,
        reader: LogReader,
    ) -> Result<ReadOnly, EngineError> {
        let reader = Arc::new(reader);
        let events = LogEvents::reader(&reader);
        let log_next_lsn = reader.next_lsn();
        let (end, not_after, stop) = match as_of {
            AsOf::Latest => (log_next_lsn, None, Stop::Never),
            AsOf::Lsn(lsn) => (lsn.min(log_next_lsn), None, Stop::BeforeLsn(lsn)),
            AsOf::Time(t) => (log_next_lsn, Some(t), Stop::AfterTime(t)),
        };
        let (
            Start {
                views,
                from,
                last_at,
                snapshot: snapshot_used,
                snapshots_skipped,
            },
            events_replayed,
        ) = start_and_replay(
            files,
            dir,
            &*reader,
            &events,
            reader.first_lsn(),
            end,
            not_after,
            stop,
        )?;
        let next_lsn = views.last_lsn().map_or(from, |l| l + 1);
        Ok(ReadOnly {
            reader,
            views,
            options,
            report: ReadReport {
                snapshot: snapshot_used,
                snapshots_skipped,
                events_replayed,
                next_lsn,
                log_next_lsn,
                last_at,
            },
        })
    }

    /// What the open found.
    pub fn report(&self) -> &ReadReport {
        &self.report
    }

    /// The log reader, for integrity checks.
    pub fn log(&self) -> &LogReader {
        &self.reader
    }
}

impl sealed::Access for ReadOnly {
    fn views<R>(&self, f: impl FnOnce(&Projections) -> R) -> R {
        f(&self.views)
    }

    fn source(&self) -> &dyn Source {
        &*self.reader
    }

    fn options(&self) -> &Options {
        &self.options
    }
}

impl Query for ReadOnly {}
