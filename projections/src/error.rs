//! The errors of this crate: an event the transition table refuses, and a
//! job whose detail, restored from a snapshot, cannot be read.

use crate::types::{CheckpointId, JobId, RunId};
use crate::view::{BlockedReason, JobStatus, RunStatus};
use std::fmt;

/// An event the transition table does not allow. Applying it changed nothing.
///
/// It names the job, the run (when the event is about one), the state they
/// were in, the event refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionError {
    /// The job the event was for.
    pub job: JobId,
    /// The run the event was for, if any.
    pub run: Option<RunId>,
    /// The state found.
    pub state: StateFound,
    /// The refused event's kind (see [`crate::Change::kind`]).
    pub event: &'static str,
    /// Why it was refused.
    pub refusal: Refusal,
}

/// The state an event found its job and run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFound {
    /// No such job.
    NoJob,
    /// The job, with no such run (or the event is about the job alone).
    Job(JobStatus),
    /// The job and the run.
    Run(JobStatus, RunStatus),
}

impl fmt::Display for StateFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateFound::NoJob => f.write_str("no such job"),
            StateFound::Job(j) => write!(f, "job {j}"),
            StateFound::Run(j, r) => write!(f, "job {j}, run {r}"),
        }
    }
}

/// Why an event was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The job does not exist.
    UnknownJob,
    /// A job with this id exists already.
    JobExists,
    /// The run does not exist in the job.
    UnknownRun,
    /// A run with this id exists already in the job.
    RunExists,
    /// The job was cancelled: nothing may happen to it.
    JobCancelled,
    /// The job has finished; only a new run (continuation) or a cancel may follow.
    JobFinished,
    /// The job still has runs in flight, so it cannot finish.
    RunsInFlight {
        /// How many.
        count: usize,
    },
    /// The run is not executing (it is waiting, interrupted or finished).
    RunNotRunning,
    /// The run already finished.
    RunFinished,
    /// The checkpoint does not belong to this job.
    UnknownCheckpoint {
        /// The checkpoint named.
        checkpoint: CheckpointId,
    },
    /// A checkpoint with this id exists already in the job.
    CheckpointExists {
        /// The checkpoint named.
        checkpoint: CheckpointId,
    },
    /// The phase at this position already completed in the run.
    PhaseAlreadyCompleted {
        /// The position.
        position: u32,
    },
    /// The run is not waiting for this child.
    NotWaitingForChild {
        /// The child named.
        child: RunId,
    },
    /// The child has not finished yet.
    ChildNotFinished {
        /// The child named.
        child: RunId,
    },
    /// The run is not waiting for input.
    NotAwaitingInput,
    /// The run is not resumable.
    NotResumable(BlockedReason),
    /// The job's runs and checkpoints, restored from a snapshot, cannot be
    /// read: nothing about the job's runs can be decided.
    DetailUnreadable(DetailError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownJob => f.write_str("the job does not exist"),
            Refusal::JobExists => f.write_str("a job with this id exists already"),
            Refusal::UnknownRun => f.write_str("the run does not exist in this job"),
            Refusal::RunExists => f.write_str("a run with this id exists already in this job"),
            Refusal::JobCancelled => f.write_str("the job was cancelled"),
            Refusal::JobFinished => f.write_str("the job has finished"),
            Refusal::RunsInFlight { count } => write!(f, "{count} run(s) are still in flight"),
            Refusal::RunNotRunning => f.write_str("the run is not running"),
            Refusal::RunFinished => f.write_str("the run has finished"),
            Refusal::UnknownCheckpoint { checkpoint } => {
                write!(f, "checkpoint {checkpoint} is not a checkpoint of this job")
            }
            Refusal::CheckpointExists { checkpoint } => {
                write!(f, "checkpoint {checkpoint} exists already in this job")
            }
            Refusal::PhaseAlreadyCompleted { position } => {
                write!(f, "phase {position} already completed")
            }
            Refusal::NotWaitingForChild { child } => {
                write!(f, "the run is not waiting for child run {child}")
            }
            Refusal::ChildNotFinished { child } => write!(f, "child run {child} has not finished"),
            Refusal::NotAwaitingInput => f.write_str("the run is not waiting for input"),
            Refusal::NotResumable(reason) => write!(f, "the run is not resumable: {reason}"),
            Refusal::DetailUnreadable(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused {} for job {}", self.event, self.job)?;
        if let Some(run) = &self.run {
            write!(f, ", run {run}")?;
        }
        write!(f, " ({}): {}", self.state, self.refusal)
    }
}

impl std::error::Error for TransitionError {}

/// A job restored from a snapshot cannot be read: its record (kept as
/// snapshot bytes until the job is first used) fails its chunk's checksum
/// or does not parse; or its runs and checkpoints, kept as snapshot bytes
/// until first used, fail their own checksum, do not decode, or disagree
/// with the job's summary (its totals, its number of runs, its runs in
/// flight or interrupted); or, for a job the snapshot holds as the LSNs
/// of its events, those events cannot be read from the log, are not the
/// job's, do not apply, or do not make the job its summary describes.
///
/// Each detail carries its own CRC-32, checked when it is first decoded
/// (an open checks the summaries' checksum only, so that it need not read
/// every detail): a mismatch means the bytes were damaged on disk; any
/// other failure, that the snapshot was written wrong or altered under
/// recomputed checksums. Nothing was believed: every view
/// that depends on the detail refuses with this error. The log is the
/// truth: an open without that snapshot replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailError {
    /// The job; `#` and its position in the snapshot when even its id
    /// cannot be read.
    pub job: JobId,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for DetailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {} in the snapshot cannot be read: {}",
            self.job, self.reason
        )
    }
}

impl std::error::Error for DetailError {}
