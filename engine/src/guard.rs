//! Run guards: a run is finalized on every exit path of the host's code.

use crate::engine::{Engine, Step};
use crate::error::EngineError;
use crate::query::Query;
use runlog_projections::{CheckpointId, InterruptReason, JobId, RunId, RunStatus};

/// Finalizes a run when the host's code leaves it without finishing it.
///
/// Made by [`Engine::start_guarded`], [`Engine::resume_guarded`] or
/// [`Engine::guard`]. Finish the run with [`RunGuard::complete`] or
/// [`RunGuard::fail`]. If the guard is dropped first:
///
/// - during a panic, a running or waiting run is recorded as interrupted
///   (`Panic`): it may be resumed, and repeated crashes are bounded by
///   `recovery_attempts_max`;
/// - on an early return (an error, a `?`), a running run is recorded as
///   failed (`Abandoned`, retryable); a run waiting for input or for a child
///   is left waiting, since that wait is itself recorded;
/// - a run already finished is left alone.
///
/// Errors while finalizing in `drop` cannot be returned; the run is then
/// found in flight at the next open and interrupted there.
#[derive(Debug)]
#[must_use = "dropping the guard at once finalizes the run"]
pub struct RunGuard<'e> {
    engine: &'e Engine,
    job: JobId,
    run: RunId,
    armed: bool,
}

impl Engine {
    /// Starts a top-level run (see [`Engine::start_run`]) under a guard.
    pub fn start_guarded(
        &self,
        job: &JobId,
        resume_from: Option<CheckpointId>,
    ) -> Result<RunGuard<'_>, EngineError> {
        let run = self.start_run(job, resume_from)?;
        Ok(self.guard(job, &run))
    }

    /// Resumes an interrupted run (see [`Engine::resume_run`]) under a
    /// guard.
    pub fn resume_guarded(
        &self,
        job: &JobId,
        run: &RunId,
        from: Option<CheckpointId>,
    ) -> Result<RunGuard<'_>, EngineError> {
        self.resume_run(job, run, from)?;
        Ok(self.guard(job, run))
    }

    /// Guards a run that already exists (a delegated child, say).
    pub fn guard(&self, job: &JobId, run: &RunId) -> RunGuard<'_> {
        RunGuard {
            engine: self,
            job: job.clone(),
            run: run.clone(),
            armed: true,
        }
    }
}

impl<'e> RunGuard<'e> {
    /// The run's job.
    pub fn job(&self) -> &JobId {
        &self.job
    }

    /// The run.
    pub fn run(&self) -> &RunId {
        &self.run
    }

    /// The engine.
    pub fn engine(&self) -> &'e Engine {
        self.engine
    }

    /// Records a step of the run.
    pub fn record_step(&self, step: Step) -> Result<CheckpointId, EngineError> {
        self.engine.record_step(&self.job, &self.run, step)
    }

    /// Completes the run.
    pub fn complete(mut self, output: impl Into<Vec<u8>>) -> Result<(), EngineError> {
        let result = self.engine.complete_run(&self.job, &self.run, output);
        self.armed = result.is_err();
        result
    }

    /// Fails the run.
    pub fn fail(mut self, error: impl Into<String>, retryable: bool) -> Result<(), EngineError> {
        let result = self.engine.fail_run(&self.job, &self.run, error, retryable);
        self.armed = result.is_err();
        result
    }

    /// Leaves the run as it is (waiting for input, say) without finalizing
    /// it.
    pub fn detach(mut self) {
        self.armed = false;
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(run) = self.engine.run(&self.job, &self.run) else {
            return;
        };
        let panicking = std::thread::panicking();
        // Errors are dropped: see the type's docs.
        let _ = match run.status {
            RunStatus::Running | RunStatus::AwaitingInput | RunStatus::Delegating if panicking => {
                self.engine
                    .interrupt_run(&self.job, &self.run, InterruptReason::Panic)
            }
            RunStatus::Running => self.engine.abandon_run(&self.job, &self.run),
            _ => Ok(()),
        };
    }
}
