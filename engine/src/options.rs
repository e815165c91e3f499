//! How an engine is opened: durability, recovery, snapshots, limits, clock.

use runlog_log::{LogOptions, RecoveryMode, SyncPolicy};
use runlog_projections::{Lsn, Timestamp};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The engine's source of time. Every event is stamped with `now()`;
/// staleness windows are measured with it. Tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A clock before 1970 reads as 0 rather than failing a command.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Timestamp(millis)
    }
}

/// A clock that moves only when told to. Cloning it shares the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicU64::new(start.0)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Options for [`crate::Engine::open`].
///
/// # What each sync policy can lose
///
/// - [`SyncPolicy::Always`] (the default): nothing acknowledged. Every
///   command returns only once its record is fdatasync'ed; concurrent
///   commands share fsyncs (group commit).
/// - [`SyncPolicy::Interval`] / [`SyncPolicy::Bytes`]: the commands since
///   the last sync. A sync happens when a command arrives after the interval
///   has passed (or the byte budget is spent); there is no background timer,
///   so a quiet engine holds its last commands unsynced until the next
///   command, `close`, or [`crate::Engine::snapshot`]. Until a sync, the log
///   buffers up to 256 KiB in user space, so a process crash — not only a
///   power cut — can lose those commands.
/// - [`SyncPolicy::Never`]: everything not yet synced by the OS, and up to
///   256 KiB of the most recent commands still in the log's user-space
///   buffer even on a process crash. Closing or dropping the engine writes
///   the buffer out.
///
/// Whatever is lost is lost from the end: recovery keeps a prefix of whole
/// commands.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Durability of each command. Default: [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// How the log treats damage found at open. Default:
    /// [`RecoveryMode::TolerateTornTail`].
    pub recovery: RecoveryMode,
    /// Largest record (one encoded event) accepted. Default 16 MiB.
    pub record_size_max: u32,
    /// Size at which a log segment is sealed and a new one begun. Default
    /// 64 MiB.
    pub segment_size_max: u64,
    /// Zeros the log keeps written ahead of its last record, at most, so
    /// that a durable command's fdatasync flushes data only, not the file's
    /// size. Default 1 MiB; 0 turns it off. Cut off again when a segment is
    /// sealed or the engine closed. See
    /// [`runlog_log::LogOptions::preallocate_size_max`].
    pub preallocate_size_max: u64,
    /// Write a snapshot of the views after this many events. 0 disables.
    /// Default 100 000.
    pub snapshot_every_events: u64,
    /// Write a snapshot after this many bytes of log. 0 disables. Default
    /// 64 MiB.
    pub snapshot_every_bytes: u64,
    /// Write a snapshot when the engine is closed. Default true.
    pub snapshot_on_close: bool,
    /// Snapshots kept on disk (older ones are deleted). Default 2.
    pub snapshots_kept: usize,
    /// Keep every segment forever (the log is the audit trail). When false,
    /// segments wholly covered by a durable snapshot, and holding no input
    /// or checkpoint of an unfinished job, are deleted; a finished job
    /// whose input went with them can no longer be continued
    /// ([`crate::EngineError::InputDropped`]). Default true.
    pub keep_full_history: bool,
    /// A submit with a fingerprint attaches to the newest unfinished job
    /// with that fingerprint only if it is younger than this. Default 24 h.
    pub fingerprint_staleness: Duration,
    /// A run interrupted after this many resumes is failed at open instead
    /// of being offered again. Default 3.
    pub recovery_attempts_max: u32,
    /// The host's code version, recorded with each run started and used to
    /// flag resumes on other code.
    pub code_version: Option<String>,
    /// The clock that stamps events. Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        let log = LogOptions::default();
        Self {
            sync: log.sync,
            recovery: log.recovery,
            record_size_max: log.record_size_max,
            segment_size_max: log.segment_size_max,
            preallocate_size_max: log.preallocate_size_max,
            snapshot_every_events: 100_000,
            snapshot_every_bytes: 64 << 20,
            snapshot_on_close: true,
            snapshots_kept: 2,
            keep_full_history: true,
            fingerprint_staleness: Duration::from_secs(24 * 60 * 60),
            recovery_attempts_max: 3,
            code_version: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl Options {
    /// The log's share of the options.
    pub(crate) fn log_options(&self) -> LogOptions {
        LogOptions {
            record_size_max: self.record_size_max,
            segment_size_max: self.segment_size_max,
            sync: self.sync,
            recovery: self.recovery,
            preallocate_size_max: self.preallocate_size_max,
        }
    }
}

/// How far a read-only open replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AsOf {
    /// Everything the log holds now (whole batches only).
    #[default]
    Latest,
    /// Events with an LSN below this one: the views as they were just
    /// before it.
    Lsn(Lsn),
    /// Events stamped at or before this time. Replay stops at the first
    /// event stamped later.
    Time(Timestamp),
}
