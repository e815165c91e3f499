//! runlog-projections: the event vocabulary of runlog and the pure folds that
//! turn a sequence of events into job, run and checkpoint views.
//!
//! What it is for: saying what happened to a job in a form that can be
//! replayed forever, deciding which event is valid in which state, and
//! answering what a host asks: a job with its totals, its run tree and
//! checkpoints, the runs a crash interrupted and whether each can resume, the
//! newest unfinished job for a fingerprint.
//!
//! What it is not for: I/O, clocks or randomness. It never touches a file and
//! never reads the time; the engine gives every event its timestamp and its
//! position in the log. The same events in the same order always give equal
//! views: that is what makes a replay an audit.
//!
//! # Transition table
//!
//! Every event names a job; run events name a run of that job. An event not
//! allowed here is refused with a [`TransitionError`] and changes nothing.
//! Nothing at all is accepted for a cancelled job.
//!
//! | event | accepted when | effect |
//! |---|---|---|
//! | `JobCreated` | no job has the id | job `Running`; input kept for life |
//! | `RunStarted` | job not cancelled; run id new; `resume_from` is a checkpoint of this job | run `Running`; a `Completed`/`Failed` job reopens to `Running` (continuation) |
//! | `StepRecorded` | job `Running`; run `Running`; checkpoint id new in the job | step and usage added to run and job; checkpoint appended in step order |
//! | `PhaseCompleted` | job `Running`; run `Running`; position not completed yet in the run | phase recorded by position |
//! | `Delegated` | job `Running`; run `Running`; child id new | run `Delegating`; child `Running` |
//! | `ChildReturned` | job `Running`; run waits for this child (`Delegating`, or `Interrupted` while waiting); child `Completed`/`Failed` | `Delegating` → `Running`; an interrupted parent stays `Interrupted`, no longer waiting |
//! | `InputRequested` | job `Running`; run `Running` | run `AwaitingInput` |
//! | `InputProvided` | job `Running`; run waits for input (`AwaitingInput`, or `Interrupted` while waiting) | `AwaitingInput` → `Running`; an interrupted run stays `Interrupted`, no longer waiting |
//! | `RunCompleted` | job `Running`; run `Running` | run `Completed` (terminal) |
//! | `RunFailed` | job `Running`; run not `Completed`/`Failed` | run `Failed` (terminal) |
//! | `RunInterrupted` | job `Running`; run `Running`, `AwaitingInput` or `Delegating` | run `Interrupted`, keeping what it waited for |
//! | `RunResumed` | job `Running`; run `Interrupted`, not waiting for input or a child, parent not finished, fewer than `attempts_max` counted resumes so far (unless a clean shutdown interrupted it), same code version (or `allow_code_change`); `from` is a checkpoint of this job | run `Running`; one recovery attempt counted unless the interruption was a shutdown |
//! | `JobFinished` (completed, failed) | job `Running`; no run `Running`, `AwaitingInput` or `Delegating` | job `Completed` / `Failed` |
//! | `JobFinished` (cancelled) | job not cancelled | job `Cancelled`: final |
//! | `ExternalStatusObserved` | job not cancelled | remote status recorded |
//!
//! Resumability ([`Projections::resumability`]) runs the very check that
//! `RunResumed` runs, so a run reported [`Resumability::Resumable`] is always
//! accepted.
//!
//! ```text
//! job:  Running ──JobFinished──> Completed | Failed ──RunStarted──> Running
//!       Running | Completed | Failed ──JobFinished(cancelled)──> Cancelled
//! run:  Running ⇄ AwaitingInput, Running ⇄ Delegating,
//!       Running | AwaitingInput | Delegating ──RunInterrupted──> Interrupted
//!       Interrupted ──RunResumed──> Running
//!       Running ──RunCompleted──> Completed;  any non-terminal ──RunFailed──> Failed
//! ```
//!
//! The crate README has the same machine as a Mermaid diagram.
//!
//! # Usage accounting
//!
//! Events carry deltas; views sum them. A job's `total_steps` is the number
//! of `StepRecorded` events in it and its `usage` the sum of their deltas,
//! whatever delegation, continuation or resume happened. A checkpoint's
//! `step` and `usage` are the job's totals up to and including it.
//!
//! # Memory
//!
//! Views keep no payload bytes: an input, checkpoint or output is a
//! [`PayloadRef`] (16 bytes) into the log. Ids ([`JobId`], [`RunId`],
//! [`CheckpointId`]) are shared strings: a checkpoint's copy of its job's
//! and run's id costs a reference count, not a string. A job finds its runs
//! and checkpoints by scanning them while it has few (up to 16) and keeps a
//! hash index (boxed) beside the list only past that. A job's key and
//! fingerprint are shared strings too: jobs restored from one snapshot
//! share one string per key. The replay path decodes events borrowed
//! ([`EventRef`]) and copies out only what a view keeps.
//! Measured on x86_64: a [`JobView`] is 336 bytes (its detail,
//! [`JobDetail`] of 64 bytes, where a snapshot keeps that detail, 32, and
//! the list of its events' LSNs, 24, inline), a [`RunView`] 296 and a
//! [`CheckpointView`] 136, each plus one heap string per id it
//! introduces. The LSN list holds a varint per event after the job's
//! first, a byte each for events of one job written close together
//! (`examples/engine_memory.rs` prints the total); it lets a snapshot
//! name a job's events instead of holding its runs and checkpoints, and
//! [`JobView::event_lsns`] read them back without a scan. Views restored from a snapshot
//! ([`Projections::from_snapshot`]) keep the snapshot file in memory (the
//! engine maps it) and its jobs as its bytes, materializing a job's view
//! (with the 63 others of its chunk) when it is first used and decoding
//! its detail when that is first used; a job fully used costs what a
//! replayed one does.
//! Measured end to end (`examples/engine_memory.rs`, heap after replaying
//! 100 000 jobs of one run each, allocator slack included): about 1.7 KiB
//! per job with its run, and about 190 bytes per checkpoint.

mod error;
mod event;
mod event_lsns;
mod snapshot;
mod state;
mod types;
mod view;

pub use error::{DetailError, Refusal, StateFound, TransitionError};
pub use event::{
    Change, ChangeRef, EVENT_FORMAT_VERSION, Event, EventRef, ExternalStatus, FailCause,
    InterruptReason, JobOutcome, JobOutcomeRef,
};
pub use event_lsns::EventSource;
pub use snapshot::{
    SNAPSHOT_FORMAT_VERSION, SnapshotBody, SnapshotCodec, SnapshotDetails, SnapshotError,
    SnapshotFile,
};
pub use state::{Checked, Projections};
pub use types::{CheckpointId, JobId, Lsn, PayloadRef, RunId, Timestamp, Usage};
pub use view::{
    BlockedReason, CheckpointView, ExternalObservation, FinishReason, JobDetail, JobStatus,
    JobSummary, JobView, PhaseView, Resumability, RunError, RunStatus, RunView,
};
