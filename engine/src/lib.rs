//! runlog-engine: the embedded API of runlog.
//!
//! What it is for: opening a data directory (lock, recover the log, load
//! the newest valid snapshot, replay the rest, interrupt what was in
//! flight), turning commands into events appended as atomic batches, and
//! answering queries from the projections — with a read-only open for tools
//! and audits.
//!
//! Cargo feature `sim` (test support, off by default) adds
//! `Engine::open_with` and `ReadOnly::open_with`, which run the engine —
//! its log and its snapshots — on a given `runlog_log::Fs`, such as the
//! simulated `SimFs` that crashes at the k-th sync and injects EIO, ENOSPC
//! and short writes. Enable it in `[dev-dependencies]` only.
//!
//! What it is not for: framing bytes on disk (that is `runlog-log`) or
//! deciding which transitions are legal (that is `runlog-projections`).
//!
//! ```no_run
//! use runlog_engine::{Engine, Options, Query, Step, Submit};
//! use runlog_projections::{JobOutcome, Usage};
//!
//! # fn main() -> Result<(), runlog_engine::EngineError> {
//! let (engine, report) = Engine::open("./runlog-data", Options::default())?;
//! for run in &report.interrupted {
//!     println!("interrupted: {} / {} ({:?})", run.job, run.run, run.resumability);
//! }
//! let job = engine.submit(Submit::new("researcher", "find X").fingerprint("research X"))?.job;
//! let run = engine.start_guarded(&job, None)?;
//! let usage = Usage { input_tokens: 120, output_tokens: 30, cost_micros: 0 };
//! run.record_step(Step::new(b"messages so far".to_vec(), usage))?;
//! run.complete(b"answer".to_vec())?;
//! engine.finish_job(&job, JobOutcome::Completed)?;
//! println!("{} steps", engine.job(&job)?.total_steps);
//! engine.close()?;
//! # Ok(())
//! # }
//! ```

mod codec;
mod engine;
mod error;
mod files;
mod fsutil;
mod guard;
#[allow(unsafe_code)]
mod mmap;
mod options;
mod query;
mod readonly;
mod replay;
mod snapshot;

pub use engine::{
    Engine, InterruptedRun, OpenReport, SnapshotInfo, SnapshotUsed, Step, Submit, SubmitOutcome,
    SubmitPolicy, Submitted,
};
pub use error::EngineError;
pub use guard::RunGuard;
pub use options::{AsOf, Clock, ManualClock, Options, SystemClock};
pub use query::{Checkpoint, JobFilter, Query, ResumableRun, RunNode};
pub use readonly::{ReadOnly, ReadReport};
pub use runlog_log::{RecoveryMode, SyncPolicy};
pub use runlog_projections::{
    BlockedReason, Change, CheckpointId, CheckpointView, Event, ExternalStatus, FailCause,
    InterruptReason, JobId, JobOutcome, JobStatus, JobSummary, JobView, Lsn, PayloadRef,
    Projections, Refusal, Resumability, RunId, RunStatus, RunView, StateFound, Timestamp,
    TransitionError, Usage,
};
pub use snapshot::SkippedSnapshot;
