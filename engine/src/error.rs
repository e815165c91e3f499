//! The engine's one error type.

use runlog_log::LogError;
use runlog_projections::{CheckpointId, DetailError, JobId, Lsn, RunId, TransitionError};
use std::path::PathBuf;

/// What went wrong in an engine call. Each variant says what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The log refused or failed: I/O, corruption, a lock held by another
    /// writer, a poisoned writer, a record over the limit.
    #[error(transparent)]
    Log(#[from] LogError),

    /// The state machine refused the command; nothing was written.
    #[error(transparent)]
    Transition(Box<TransitionError>),

    /// A job restored from a snapshot cannot be read: its record
    /// (materialized on first use) fails its chunk's checks, or its runs
    /// and checkpoints (decoded on first use) do not decode or disagree
    /// with the job's summary: the snapshot was written wrong or altered
    /// under a recomputed checksum; or, for a job the snapshot names by
    /// its events' LSNs, those events cannot be read from the log or do
    /// not make the job its summary describes. Nothing was believed.
    /// Reopening without that snapshot (delete it) replays the log, which
    /// is the truth.
    #[error(transparent)]
    DetailUnreadable(#[from] DetailError),

    /// No job has this id.
    #[error("unknown job {job}")]
    UnknownJob {
        /// The id asked for.
        job: JobId,
    },

    /// The job has no run with this id.
    #[error("job {job} has no run {run}")]
    UnknownRun {
        /// The job.
        job: JobId,
        /// The run asked for.
        run: RunId,
    },

    /// The job has no checkpoint with this id.
    #[error("job {job} has no checkpoint {checkpoint}")]
    UnknownCheckpoint {
        /// The job.
        job: JobId,
        /// The checkpoint asked for.
        checkpoint: CheckpointId,
    },

    /// A resume named a checkpoint that belongs to another job. Checkpoints
    /// are addressed as (job id, checkpoint id).
    #[error("checkpoint {checkpoint} belongs to job {owner}, not to job {job}")]
    CheckpointOfAnotherJob {
        /// The job the resume was for.
        job: JobId,
        /// The checkpoint named.
        checkpoint: CheckpointId,
        /// The job it belongs to.
        owner: JobId,
    },

    /// A record could not be decoded into an event.
    #[error("the record at LSN {lsn} is not a valid event: {detail}")]
    BadEvent {
        /// Where.
        lsn: Lsn,
        /// What the decoder said.
        detail: String,
    },

    /// A record was written by a newer event vocabulary than this build
    /// reads.
    #[error(
        "the record at LSN {lsn} was written by a newer version of runlog (event format {version}; this build reads up to {supported})"
    )]
    NewerEventFormat {
        /// Where.
        lsn: Lsn,
        /// The record's version.
        version: u8,
        /// The newest this build reads.
        supported: u8,
    },

    /// An event in the log does not fold: the log holds a transition its own
    /// state machine refuses.
    #[error("the event at LSN {lsn} does not replay: {source}")]
    Replay {
        /// Where.
        lsn: Lsn,
        /// The refusal.
        source: Box<TransitionError>,
    },

    /// An event could not be encoded.
    #[error("could not encode an event: {detail}")]
    Encode {
        /// What the encoder said.
        detail: String,
    },

    /// The log's oldest segments were dropped and no snapshot covers them.
    #[error(
        "the log in {dir} starts at LSN {first_lsn}, and no valid snapshot covers the history before it"
    )]
    HistoryMissing {
        /// The data directory.
        dir: PathBuf,
        /// The log's first LSN.
        first_lsn: Lsn,
    },

    /// A finished job cannot be continued: with `keep_full_history` off, a
    /// snapshot dropped the segment holding its input, and a job never runs
    /// without its original input. Nothing was written.
    #[error(
        "job {job} cannot be continued: its input (LSN {input_lsn}) was dropped with the history below LSN {kept_from}"
    )]
    InputDropped {
        /// The job.
        job: JobId,
        /// Where its input was.
        input_lsn: Lsn,
        /// The log's history below this LSN may be gone.
        kept_from: Lsn,
    },

    /// A snapshot file could not be written or read.
    #[error("snapshot {path}: {op}: {source}")]
    SnapshotIo {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The data directory does not exist (read-only opens never create it).
    #[error("{path} does not exist")]
    NoSuchDirectory {
        /// The path given.
        path: PathBuf,
    },
}

impl From<TransitionError> for EngineError {
    fn from(e: TransitionError) -> Self {
        EngineError::Transition(Box::new(e))
    }
}

impl EngineError {
    /// Whether the error means the log on disk is damaged beyond a torn
    /// tail (salvage needed).
    pub fn is_corruption(&self) -> bool {
        matches!(self, EngineError::Log(LogError::Corruption { .. }))
            || matches!(
                self,
                EngineError::BadEvent { .. } | EngineError::Replay { .. }
            )
    }
}
