//! The event vocabulary, format version 1.
//!
//! An event is one transition of one job. Events are serde types; the engine
//! encodes them (postcard) behind a format version byte, so a log written by
//! a newer vocabulary is refused as "written by a newer version", not
//! misparsed. Adding a variant or a field is a new format version.

use crate::types::{CheckpointId, JobId, RunId, Timestamp, Usage, bytes};
use serde::{Deserialize, Serialize};

/// The version of this event vocabulary. The engine writes it in front of
/// every encoded event and refuses a record whose version is higher.
pub const EVENT_FORMAT_VERSION: u8 = 1;

/// One transition of one job, stamped with the time the engine gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When the engine recorded the event (milliseconds since the Unix epoch).
    pub at: Timestamp,
    /// The job the event belongs to.
    pub job: JobId,
    /// What happened.
    pub change: Change,
}

/// What an event says happened. The transition table in the crate docs says
/// in which states each one is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A job is created. Its input is kept, unchanged, for the job's whole life.
    JobCreated {
        /// Which agent or workflow the job runs.
        key: String,
        /// The job's original input, opaque bytes.
        #[serde(with = "bytes")]
        input: Vec<u8>,
        /// Idempotency key: resubmitting with it attaches to this job while
        /// the job is unfinished.
        fingerprint: Option<String>,
    },
    /// A top-level run starts: the job's first run, a follow-up turn of a
    /// finished job (continuation), or a fresh run resuming from a checkpoint.
    RunStarted {
        /// The new run.
        run: RunId,
        /// A checkpoint of the same job this run starts from.
        resume_from: Option<CheckpointId>,
        /// The host's code version, so a resume on other code can be flagged.
        code_version: Option<String>,
    },
    /// A step is recorded: a checkpoint, with what the step alone spent.
    StepRecorded {
        /// The run that took the step.
        run: RunId,
        /// The checkpoint's id, unique within the job.
        checkpoint: CheckpointId,
        /// What this step spent (a delta, never a running total).
        usage: Usage,
        /// Position of the phase the step belongs to, if any.
        phase: Option<u32>,
        /// The checkpoint payload (messages, state), opaque bytes.
        #[serde(with = "bytes")]
        payload: Vec<u8>,
    },
    /// A phase of a multi-phase run completed. Phases are identified by
    /// position; two phases may share a name.
    PhaseCompleted {
        /// The run.
        run: RunId,
        /// The phase's position in the run, from 0.
        position: u32,
        /// The phase's name (not unique).
        name: String,
        /// The phase's output, opaque bytes.
        #[serde(with = "bytes")]
        output: Vec<u8>,
    },
    /// A run delegates to a new child run and waits for it. The child starts
    /// running with the parent's code version.
    Delegated {
        /// The parent run.
        run: RunId,
        /// The new child run.
        child: RunId,
    },
    /// A finished child run's result returns to its waiting parent.
    ChildReturned {
        /// The parent run.
        run: RunId,
        /// The child it was waiting for.
        child: RunId,
    },
    /// A run waits for outside input (a human approval, say).
    InputRequested {
        /// The run.
        run: RunId,
        /// What it asks for.
        prompt: String,
    },
    /// The input a run waits for arrives.
    InputProvided {
        /// The run.
        run: RunId,
        /// The input, opaque bytes.
        #[serde(with = "bytes")]
        input: Vec<u8>,
    },
    /// A run completes.
    RunCompleted {
        /// The run.
        run: RunId,
        /// Its output, opaque bytes.
        #[serde(with = "bytes")]
        output: Vec<u8>,
    },
    /// A run fails.
    RunFailed {
        /// The run.
        run: RunId,
        /// What went wrong, for people.
        error: String,
        /// Whether the host thinks a retry could succeed.
        retryable: bool,
        /// Who decided the run failed.
        cause: FailCause,
    },
    /// A run stops without finishing: a shutdown, a crash found at recovery,
    /// or a panic in host code. An interrupted run may be resumed.
    RunInterrupted {
        /// The run.
        run: RunId,
        /// Why it stopped.
        reason: InterruptReason,
    },
    /// An interrupted run is resumed. One recovery attempt is counted unless
    /// the run was interrupted by a clean shutdown.
    RunResumed {
        /// The run.
        run: RunId,
        /// A checkpoint of the same job to resume from, if any.
        from: Option<CheckpointId>,
        /// The code version of the resuming host.
        code_version: Option<String>,
        /// Resume even if the code version differs from the run's.
        allow_code_change: bool,
        /// The bound on recovery attempts in force when the engine issued
        /// the resume. Recorded in the event so a replay never depends on
        /// today's options.
        attempts_max: u32,
    },
    /// The job finishes.
    JobFinished {
        /// How.
        outcome: JobOutcome,
    },
    /// A remote system reported the job's status (a ledger reconciles it).
    ExternalStatusObserved {
        /// The reported status.
        status: ExternalStatus,
        /// Free text from the remote system.
        detail: String,
    },
}

/// Who or what decided that a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailCause {
    /// The host reported the failure.
    Reported,
    /// The host's code returned without finishing a guarded run.
    Abandoned,
    /// The run was interrupted more times than `attempts_max` allows.
    RecoveryAttemptsExhausted,
}

/// Why a run stopped without finishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InterruptReason {
    /// The host shut down cleanly while the run was in flight.
    Shutdown,
    /// Recovery found the run in flight after a crash.
    Crash,
    /// The host's code panicked inside a guarded run.
    Panic,
}

/// How a job finished.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobOutcome {
    /// The job did what it was for. It may be continued with a new run.
    Completed,
    /// The job failed. It may be continued with a new run.
    Failed {
        /// What went wrong.
        error: String,
    },
    /// The job was cancelled. Nothing may happen to it afterwards.
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// A status reported for a job by a remote system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExternalStatus {
    /// Accepted, not started.
    Pending,
    /// Running remotely.
    Running,
    /// Completed remotely.
    Completed,
    /// Failed remotely.
    Failed,
}

impl Change {
    /// The event's kind as a stable snake_case name (for listings and JSON).
    pub fn kind(&self) -> &'static str {
        self.as_ref().kind()
    }

    /// The run the event is about, if it is about one.
    pub fn run(&self) -> Option<&RunId> {
        match self {
            Change::JobCreated { .. }
            | Change::JobFinished { .. }
            | Change::ExternalStatusObserved { .. } => None,
            Change::RunStarted { run, .. }
            | Change::StepRecorded { run, .. }
            | Change::PhaseCompleted { run, .. }
            | Change::Delegated { run, .. }
            | Change::ChildReturned { run, .. }
            | Change::InputRequested { run, .. }
            | Change::InputProvided { run, .. }
            | Change::RunCompleted { run, .. }
            | Change::RunFailed { run, .. }
            | Change::RunInterrupted { run, .. }
            | Change::RunResumed { run, .. } => Some(run),
        }
    }
}

/// An [`Event`] that borrows its strings and bytes: what replay decodes a
/// log record into, so that nothing is copied out of the record unless a
/// view keeps it. The same wire form as [`Event`], field for field and
/// variant for variant; [`Event::as_ref`] gives one for an owned event,
/// and [`crate::Projections`] applies both through it, so the transition
/// rules exist once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef<'a> {
    /// When the engine recorded the event (milliseconds since the Unix epoch).
    pub at: Timestamp,
    /// The job the event belongs to.
    pub job: &'a str,
    /// What happened.
    #[serde(borrow)]
    pub change: ChangeRef<'a>,
}

/// A [`Change`] that borrows its strings and bytes. Each variant has the
/// fields of the [`Change`] variant of the same name, in the same order;
/// ids are `&str`, opaque bytes `&[u8]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeRef<'a> {
    /// See [`Change::JobCreated`].
    JobCreated {
        /// As in [`Change::JobCreated`].
        key: &'a str,
        /// As in [`Change::JobCreated`].
        input: &'a [u8],
        /// As in [`Change::JobCreated`].
        #[serde(borrow)]
        fingerprint: Option<&'a str>,
    },
    /// See [`Change::RunStarted`].
    RunStarted {
        /// As in [`Change::RunStarted`].
        run: &'a str,
        /// As in [`Change::RunStarted`].
        #[serde(borrow)]
        resume_from: Option<&'a str>,
        /// As in [`Change::RunStarted`].
        #[serde(borrow)]
        code_version: Option<&'a str>,
    },
    /// See [`Change::StepRecorded`].
    StepRecorded {
        /// As in [`Change::StepRecorded`].
        run: &'a str,
        /// As in [`Change::StepRecorded`].
        checkpoint: &'a str,
        /// As in [`Change::StepRecorded`].
        usage: Usage,
        /// As in [`Change::StepRecorded`].
        phase: Option<u32>,
        /// As in [`Change::StepRecorded`].
        payload: &'a [u8],
    },
    /// See [`Change::PhaseCompleted`].
    PhaseCompleted {
        /// As in [`Change::PhaseCompleted`].
        run: &'a str,
        /// As in [`Change::PhaseCompleted`].
        position: u32,
        /// As in [`Change::PhaseCompleted`].
        name: &'a str,
        /// As in [`Change::PhaseCompleted`].
        output: &'a [u8],
    },
    /// See [`Change::Delegated`].
    Delegated {
        /// As in [`Change::Delegated`].
        run: &'a str,
        /// As in [`Change::Delegated`].
        child: &'a str,
    },
    /// See [`Change::ChildReturned`].
    ChildReturned {
        /// As in [`Change::ChildReturned`].
        run: &'a str,
        /// As in [`Change::ChildReturned`].
        child: &'a str,
    },
    /// See [`Change::InputRequested`].
    InputRequested {
        /// As in [`Change::InputRequested`].
        run: &'a str,
        /// As in [`Change::InputRequested`].
        prompt: &'a str,
    },
    /// See [`Change::InputProvided`].
    InputProvided {
        /// As in [`Change::InputProvided`].
        run: &'a str,
        /// As in [`Change::InputProvided`].
        input: &'a [u8],
    },
    /// See [`Change::RunCompleted`].
    RunCompleted {
        /// As in [`Change::RunCompleted`].
        run: &'a str,
        /// As in [`Change::RunCompleted`].
        output: &'a [u8],
    },
    /// See [`Change::RunFailed`].
    RunFailed {
        /// As in [`Change::RunFailed`].
        run: &'a str,
        /// As in [`Change::RunFailed`].
        error: &'a str,
        /// As in [`Change::RunFailed`].
        retryable: bool,
        /// As in [`Change::RunFailed`].
        cause: FailCause,
    },
    /// See [`Change::RunInterrupted`].
    RunInterrupted {
        /// As in [`Change::RunInterrupted`].
        run: &'a str,
        /// As in [`Change::RunInterrupted`].
        reason: InterruptReason,
    },
    /// See [`Change::RunResumed`].
    RunResumed {
        /// As in [`Change::RunResumed`].
        run: &'a str,
        /// As in [`Change::RunResumed`].
        #[serde(borrow)]
        from: Option<&'a str>,
        /// As in [`Change::RunResumed`].
        #[serde(borrow)]
        code_version: Option<&'a str>,
        /// As in [`Change::RunResumed`].
        allow_code_change: bool,
        /// As in [`Change::RunResumed`].
        attempts_max: u32,
    },
    /// See [`Change::JobFinished`].
    JobFinished {
        /// As in [`Change::JobFinished`].
        #[serde(borrow)]
        outcome: JobOutcomeRef<'a>,
    },
    /// See [`Change::ExternalStatusObserved`].
    ExternalStatusObserved {
        /// As in [`Change::ExternalStatusObserved`].
        status: ExternalStatus,
        /// As in [`Change::ExternalStatusObserved`].
        detail: &'a str,
    },
}

/// A [`JobOutcome`] that borrows its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcomeRef<'a> {
    /// See [`JobOutcome::Completed`].
    Completed,
    /// See [`JobOutcome::Failed`].
    Failed {
        /// What went wrong.
        error: &'a str,
    },
    /// See [`JobOutcome::Cancelled`].
    Cancelled {
        /// Why.
        reason: &'a str,
    },
}

impl Event {
    /// The event as an [`EventRef`], borrowing from `self`.
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            at: self.at,
            job: self.job.as_str(),
            change: self.change.as_ref(),
        }
    }
}

impl Change {
    /// The change as a [`ChangeRef`], borrowing from `self`.
    pub fn as_ref(&self) -> ChangeRef<'_> {
        match self {
            Change::JobCreated {
                key,
                input,
                fingerprint,
            } => ChangeRef::JobCreated {
                key,
                input,
                fingerprint: fingerprint.as_deref(),
            },
            Change::RunStarted {
                run,
                resume_from,
                code_version,
            } => ChangeRef::RunStarted {
                run: run.as_str(),
                resume_from: resume_from.as_ref().map(CheckpointId::as_str),
                code_version: code_version.as_deref(),
            },
            Change::StepRecorded {
                run,
                checkpoint,
                usage,
                phase,
                payload,
            } => ChangeRef::StepRecorded {
                run: run.as_str(),
                checkpoint: checkpoint.as_str(),
                usage: *usage,
                phase: *phase,
                payload,
            },
            Change::PhaseCompleted {
                run,
                position,
                name,
                output,
            } => ChangeRef::PhaseCompleted {
                run: run.as_str(),
                position: *position,
                name,
                output,
            },
            Change::Delegated { run, child } => ChangeRef::Delegated {
                run: run.as_str(),
                child: child.as_str(),
            },
            Change::ChildReturned { run, child } => ChangeRef::ChildReturned {
                run: run.as_str(),
                child: child.as_str(),
            },
            Change::InputRequested { run, prompt } => ChangeRef::InputRequested {
                run: run.as_str(),
                prompt,
            },
            Change::InputProvided { run, input } => ChangeRef::InputProvided {
                run: run.as_str(),
                input,
            },
            Change::RunCompleted { run, output } => ChangeRef::RunCompleted {
                run: run.as_str(),
                output,
            },
            Change::RunFailed {
                run,
                error,
                retryable,
                cause,
            } => ChangeRef::RunFailed {
                run: run.as_str(),
                error,
                retryable: *retryable,
                cause: *cause,
            },
            Change::RunInterrupted { run, reason } => ChangeRef::RunInterrupted {
                run: run.as_str(),
                reason: *reason,
            },
            Change::RunResumed {
                run,
                from,
                code_version,
                allow_code_change,
                attempts_max,
            } => ChangeRef::RunResumed {
                run: run.as_str(),
                from: from.as_ref().map(CheckpointId::as_str),
                code_version: code_version.as_deref(),
                allow_code_change: *allow_code_change,
                attempts_max: *attempts_max,
            },
            Change::JobFinished { outcome } => ChangeRef::JobFinished {
                outcome: match outcome {
                    JobOutcome::Completed => JobOutcomeRef::Completed,
                    JobOutcome::Failed { error } => JobOutcomeRef::Failed { error },
                    JobOutcome::Cancelled { reason } => JobOutcomeRef::Cancelled { reason },
                },
            },
            Change::ExternalStatusObserved { status, detail } => {
                ChangeRef::ExternalStatusObserved {
                    status: *status,
                    detail,
                }
            }
        }
    }
}

impl<'a> ChangeRef<'a> {
    /// The event's kind as a stable snake_case name, as [`Change::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            ChangeRef::JobCreated { .. } => "job_created",
            ChangeRef::RunStarted { .. } => "run_started",
            ChangeRef::StepRecorded { .. } => "step_recorded",
            ChangeRef::PhaseCompleted { .. } => "phase_completed",
            ChangeRef::Delegated { .. } => "delegated",
            ChangeRef::ChildReturned { .. } => "child_returned",
            ChangeRef::InputRequested { .. } => "input_requested",
            ChangeRef::InputProvided { .. } => "input_provided",
            ChangeRef::RunCompleted { .. } => "run_completed",
            ChangeRef::RunFailed { .. } => "run_failed",
            ChangeRef::RunInterrupted { .. } => "run_interrupted",
            ChangeRef::RunResumed { .. } => "run_resumed",
            ChangeRef::JobFinished { .. } => "job_finished",
            ChangeRef::ExternalStatusObserved { .. } => "external_status_observed",
        }
    }

    /// The run the event is about, if it is about one.
    pub fn run(&self) -> Option<&'a str> {
        match *self {
            ChangeRef::JobCreated { .. }
            | ChangeRef::JobFinished { .. }
            | ChangeRef::ExternalStatusObserved { .. } => None,
            ChangeRef::RunStarted { run, .. }
            | ChangeRef::StepRecorded { run, .. }
            | ChangeRef::PhaseCompleted { run, .. }
            | ChangeRef::Delegated { run, .. }
            | ChangeRef::ChildReturned { run, .. }
            | ChangeRef::InputRequested { run, .. }
            | ChangeRef::InputProvided { run, .. }
            | ChangeRef::RunCompleted { run, .. }
            | ChangeRef::RunFailed { run, .. }
            | ChangeRef::RunInterrupted { run, .. }
            | ChangeRef::RunResumed { run, .. } => Some(run),
        }
    }
}
