//! The writer: open and recover a data directory, turn commands into events,
//! append them, apply them.

use crate::codec;
use crate::error::EngineError;
use crate::files::Files;
use crate::options::Options;
use crate::query::{LogEvents, Query, Source, sealed};
use crate::replay::{Stop, replay};
use crate::snapshot::{self, SkippedSnapshot};
use runlog_log::{Log, LogError, RecoveryReport};
use runlog_projections::{
    Change, CheckpointId, Event, EventSource, ExternalStatus, FailCause, InterruptReason, JobId,
    JobOutcome, JobStatus, Lsn, Projections, Refusal, Resumability, RunId, RunStatus,
    SnapshotDetails, Timestamp, TransitionError, Usage,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An open, writable data directory: the embedded runlog.
///
/// `Send + Sync`: share it (`Arc<Engine>` or `&Engine` in scoped threads)
/// and call it from many threads at once. Commands are ordered by one lock
/// that is held while a command is checked, written to the log (not
/// synced) and applied to the views; the fsync happens after the lock is
/// released, so commands from many threads share fsyncs (group commit) and
/// each still returns only once its own record is durable.
///
/// Views are served from memory under a read lock that writers take only
/// to apply an event, never across an fsync.
#[derive(Debug)]
pub struct Engine {
    dir: PathBuf,
    /// Shared with the views restored from a snapshot, which read the
    /// events of jobs the snapshot holds by their LSNs (weakly: see
    /// `LogEvents`).
    log: Arc<Log>,
    /// Where snapshots are written: the log's file system.
    files: Files,
    views: RwLock<Projections>,
    order: Mutex<Order>,
    snapshotting: Mutex<()>,
    /// Records below this LSN may be gone: the log's first LSN at open,
    /// raised (under the ordering lock) before a snapshot drops segments.
    /// A finished job whose input lies below it is not continued.
    history_floor: AtomicU64,
    options: Options,
}

/// What the ordering lock protects besides the order itself.
#[derive(Debug)]
struct Order {
    /// Timestamp of the last event: events are stamped no earlier than it,
    /// so timestamps never go backwards in the log even if the clock does.
    last_at: Timestamp,
    events_since_snapshot: u64,
    bytes_since_snapshot: u64,
    /// The record of the command being written: one buffer reused by every
    /// command, so encoding allocates nothing under the lock.
    record: Vec<u8>,
}

/// A record buffer that grew beyond this (a large payload) is given back
/// after its command instead of being kept for the next one.
const RECORD_BUFFER_KEPT_MAX: usize = 64 * 1024;

/// What opening a data directory found and did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OpenReport {
    /// What log recovery found: a torn tail cut (and where its bytes were
    /// kept), or what salvage set aside.
    pub recovery: RecoveryReport,
    /// The snapshot the views were loaded from, if any.
    pub snapshot: Option<SnapshotUsed>,
    /// Snapshots passed over (damaged, or not matching the log), and why.
    pub snapshots_skipped: Vec<SkippedSnapshot>,
    /// Events replayed from the log after the snapshot.
    pub events_replayed: u64,
    /// Runs that were in flight when the directory was last closed or
    /// crashed: now recorded as interrupted (or failed, when their recovery
    /// attempts ran out), with their resumability.
    pub interrupted: Vec<InterruptedRun>,
}

/// A snapshot used at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotUsed {
    /// The file.
    pub path: PathBuf,
    /// The views held every event below this LSN.
    pub lsn: Lsn,
}

/// A run found in flight at open or close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterruptedRun {
    /// Its job.
    pub job: JobId,
    /// The run.
    pub run: RunId,
    /// What it was doing when found.
    pub was: RunStatus,
    /// What it is now: interrupted, or failed when out of attempts.
    pub now: RunStatus,
    /// Whether it can be resumed, and if not, why.
    pub resumability: Resumability,
}

/// A snapshot written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The file.
    pub path: PathBuf,
    /// It holds every event below this LSN.
    pub lsn: Lsn,
    /// Segments deleted because the snapshot covers them (only when
    /// `keep_full_history` is false).
    pub segments_dropped: u64,
}

/// How a submit treats an earlier job with the same fingerprint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SubmitPolicy {
    /// Attach to the newest unfinished job with the fingerprint if it is
    /// younger than the staleness window; otherwise create a job.
    #[default]
    AttachOrCreate,
    /// Always create a new job.
    ForceNew,
    /// Re-attach to this job, whatever its fingerprint or age.
    Resume(JobId),
}

/// A job to submit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Submit {
    /// Which agent or workflow the job runs.
    pub key: String,
    /// The job's input, kept for its whole life.
    pub input: Vec<u8>,
    /// Idempotency key: a command and its arguments, or an explicit key.
    pub fingerprint: Option<String>,
    /// What to do with an earlier job with the same fingerprint.
    pub policy: SubmitPolicy,
}

impl Submit {
    /// A job for `key` with `input`, no fingerprint.
    pub fn new(key: impl Into<String>, input: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            input: input.into(),
            fingerprint: None,
            policy: SubmitPolicy::AttachOrCreate,
        }
    }

    /// Sets the fingerprint.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// Creates a new job even if one with the fingerprint is in flight.
    pub fn force_new(mut self) -> Self {
        self.policy = SubmitPolicy::ForceNew;
        self
    }

    /// Re-attaches to `job` instead of creating one.
    pub fn resume(mut self, job: JobId) -> Self {
        self.policy = SubmitPolicy::Resume(job);
        self
    }
}

/// What a submit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// A new job was created.
    Created,
    /// An unfinished job with the same fingerprint was found; nothing was
    /// written.
    Attached,
    /// The job named by [`SubmitPolicy::Resume`] was found.
    Resumed,
}

/// The job a submit gave, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The job.
    pub job: JobId,
    /// Whether it was created, attached to, or resumed.
    pub outcome: SubmitOutcome,
}

/// One step of a run: a checkpoint and what the step spent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// The checkpoint's id; the engine makes one when `None`.
    pub checkpoint: Option<CheckpointId>,
    /// What this step alone spent (a delta, not a running total).
    pub usage: Usage,
    /// The phase position the step belongs to.
    pub phase: Option<u32>,
    /// The checkpoint payload: messages, state; opaque bytes.
    pub payload: Vec<u8>,
}

impl Step {
    /// A step with this payload and usage.
    pub fn new(payload: impl Into<Vec<u8>>, usage: Usage) -> Self {
        Self {
            checkpoint: None,
            usage,
            phase: None,
            payload: payload.into(),
        }
    }

    /// Names the checkpoint.
    pub fn checkpoint(mut self, id: impl Into<CheckpointId>) -> Self {
        self.checkpoint = Some(id.into());
        self
    }

    /// Puts the step in a phase.
    pub fn phase(mut self, position: u32) -> Self {
        self.phase = Some(position);
        self
    }
}

/// What a command decided to do, under the ordering lock.
enum Decision<T> {
    /// Append this event, then return the value.
    Write(Event, T),
    /// Write nothing; return the value once everything below `wait_for` is
    /// durable (it may name an event another thread appended).
    Nothing { value: T, wait_for: Option<Lsn> },
}

impl Engine {
    /// Opens (creating if needed) the data directory `dir` for writing.
    ///
    /// Takes the writer lock, recovers the log (per `options.recovery`),
    /// loads the newest valid snapshot, replays the log after it, then
    /// records every run found in flight as interrupted — or failed, when
    /// it has used `recovery_attempts_max` resumes — in one atomic batch.
    pub fn open(
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<(Engine, OpenReport), EngineError> {
        let dir = dir.as_ref().to_path_buf();
        let (log, recovery) = Log::open(&dir, options.log_options())?;
        Engine::open_on(dir, options, Files::Real, log, recovery)
    }

    /// [`Engine::open`] on a given file system (test support, feature
    /// `sim`): the log and the snapshots both live on `fs`, so a simulated
    /// crash or fault reaches everything the engine writes.
    #[cfg(feature = "sim")]
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: Options,
        fs: std::sync::Arc<dyn runlog_log::Fs>,
    ) -> Result<(Engine, OpenReport), EngineError> {
        let dir = dir.as_ref().to_path_buf();
        let (log, recovery) = Log::open_with(fs.clone(), &dir, options.log_options())?;
        Engine::open_on(dir, options, Files::Sim(fs), log, recovery)
    }

    /// The rest of an open, once the log is recovered.
    fn open_on(
        dir: PathBuf,
        options: Options,
        files: Files,
        log: Log,
        recovery: RecoveryReport,
    ) -> Result<(Engine, OpenReport), EngineError> {
        let log = Arc::new(log);
        let events = LogEvents::writer(&log, &files, options.log_options());
        let (
            Start {
                views,
                last_at,
                snapshot: snapshot_used,
                mut snapshots_skipped,
                ..
            },
            events_replayed,
        ) = start_and_replay(
            &files,
            &dir,
            &*log,
            &events,
            log.first_lsn(),
            log.next_lsn(),
            None,
            Stop::Never,
        )?;
        snapshot::remove_beyond(&files, &dir, log.next_lsn(), &mut snapshots_skipped)?;
        snapshot::prune(&files, &dir, options.snapshots_kept);
        let first_lsn = log.first_lsn();

        let engine = Engine {
            dir,
            log,
            files,
            views: RwLock::new(views),
            order: Mutex::new(Order {
                last_at,
                events_since_snapshot: events_replayed,
                bytes_since_snapshot: 0,
                record: Vec::with_capacity(1024),
            }),
            snapshotting: Mutex::new(()),
            history_floor: AtomicU64::new(first_lsn),
            options,
        };
        let interrupted = engine.interrupt_in_flight(InterruptReason::Crash)?;
        Ok((
            engine,
            OpenReport {
                recovery,
                snapshot: snapshot_used,
                snapshots_skipped,
                events_replayed,
                interrupted,
            },
        ))
    }

    /// Closes the engine cleanly: records runs still in flight as
    /// interrupted by a shutdown (such resumes do not count as recovery
    /// attempts), makes everything durable, and writes a snapshot if
    /// `snapshot_on_close`. Dropping an engine without `close` is a crash
    /// as far as the log is concerned: the next open will find the runs in
    /// flight and interrupt them as crashed.
    pub fn close(self) -> Result<Vec<InterruptedRun>, EngineError> {
        let interrupted = self.interrupt_in_flight(InterruptReason::Shutdown)?;
        self.log.sync()?;
        if self.options.snapshot_on_close {
            self.snapshot()?;
        }
        Ok(interrupted)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the engine was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The LSN the next event will get.
    pub fn next_lsn(&self) -> Lsn {
        self.log.next_lsn()
    }

    // ---- commands -------------------------------------------------------

    /// Submits a job, or finds the one it should attach to.
    ///
    /// With a fingerprint and [`SubmitPolicy::AttachOrCreate`], the newest
    /// unfinished job with that fingerprint younger than
    /// `fingerprint_staleness` is returned and nothing is written. The
    /// decision and the creation happen under one lock, so concurrent
    /// submits of one fingerprint create exactly one job.
    pub fn submit(&self, submit: Submit) -> Result<Submitted, EngineError> {
        let staleness =
            u64::try_from(self.options.fingerprint_staleness.as_millis()).unwrap_or(u64::MAX);
        // The closure owns the submit: its key, input and fingerprint move
        // into the event instead of being copied under the ordering lock.
        self.command(move |views, lsn, at| {
            let Submit {
                key,
                input,
                fingerprint,
                policy,
            } = submit;
            match &policy {
                SubmitPolicy::Resume(job) => {
                    let Some(view) = views.job(job)? else {
                        return Err(EngineError::UnknownJob { job: job.clone() });
                    };
                    return Ok(Decision::Nothing {
                        value: Submitted {
                            job: job.clone(),
                            outcome: SubmitOutcome::Resumed,
                        },
                        wait_for: Some(view.last_lsn + 1),
                    });
                }
                SubmitPolicy::AttachOrCreate => {
                    let existing = fingerprint
                        .as_deref()
                        .and_then(|fp| views.newest_unfinished_with_fingerprint(fp))
                        .filter(|job| at.0.saturating_sub(job.started_at.0) <= staleness);
                    if let Some(job) = existing {
                        // The job may have been created by a thread whose
                        // fsync is still in flight: wait for it too.
                        return Ok(Decision::Nothing {
                            value: Submitted {
                                job: job.id.clone(),
                                outcome: SubmitOutcome::Attached,
                            },
                            wait_for: Some(job.input.lsn + 1),
                        });
                    }
                }
                SubmitPolicy::ForceNew => {}
            }
            let job = make_id::<JobId>("job", lsn, at);
            Ok(Decision::Write(
                Event {
                    at,
                    job: job.clone(),
                    change: Change::JobCreated {
                        key,
                        input,
                        fingerprint,
                    },
                },
                Submitted {
                    job,
                    outcome: SubmitOutcome::Created,
                },
            ))
        })
    }

    /// Starts a top-level run in `job`: its first run, a continuation of a
    /// finished job (a follow-up turn), or — with `resume_from` — a fresh
    /// run resuming from one of the job's checkpoints. A checkpoint of
    /// another job is refused with [`EngineError::CheckpointOfAnotherJob`];
    /// a finished job whose input a snapshot dropped (`keep_full_history`
    /// off) with [`EngineError::InputDropped`].
    pub fn start_run(
        &self,
        job: &JobId,
        resume_from: Option<CheckpointId>,
    ) -> Result<RunId, EngineError> {
        self.command(|views, lsn, at| {
            // A job never runs without its original input (DESIGN, problem
            // 5). Unfinished jobs keep theirs; a finished one may have lost
            // it to retention, and then cannot be continued.
            if let Some(view) = views.job(job)?
                && matches!(view.status, JobStatus::Completed | JobStatus::Failed)
            {
                let kept_from = self.history_floor.load(Ordering::Acquire);
                if view.input.lsn < kept_from {
                    return Err(EngineError::InputDropped {
                        job: job.clone(),
                        input_lsn: view.input.lsn,
                        kept_from,
                    });
                }
            }
            if let Some(cp) = &resume_from {
                check_checkpoint_owner(views, job, cp)?;
            }
            let run = make_id::<RunId>("run", lsn, at);
            Ok(Decision::Write(
                Event {
                    at,
                    job: job.clone(),
                    change: Change::RunStarted {
                        run: run.clone(),
                        resume_from: resume_from.clone(),
                        code_version: self.options.code_version.clone(),
                    },
                },
                run,
            ))
        })
    }

    /// Resumes an interrupted run (one recovery attempt is counted unless a
    /// clean shutdown interrupted it), optionally from a checkpoint of the
    /// same job. Refused unless [`Query::resumability`] says `Resumable`.
    pub fn resume_run(
        &self,
        job: &JobId,
        run: &RunId,
        from: Option<CheckpointId>,
    ) -> Result<(), EngineError> {
        self.command(|views, _, at| {
            if let Some(cp) = &from {
                check_checkpoint_owner(views, job, cp)?;
            }
            Ok(Decision::Write(
                Event {
                    at,
                    job: job.clone(),
                    change: Change::RunResumed {
                        run: run.clone(),
                        from: from.clone(),
                        code_version: self.options.code_version.clone(),
                        allow_code_change: false,
                        attempts_max: self.options.recovery_attempts_max,
                    },
                },
                (),
            ))
        })
    }

    /// Records a step: a checkpoint with its payload and what the step
    /// spent. Returns the checkpoint's id.
    pub fn record_step(
        &self,
        job: &JobId,
        run: &RunId,
        step: Step,
    ) -> Result<CheckpointId, EngineError> {
        // The closure owns the step: its payload moves into the event.
        self.command(move |_, lsn, at| {
            let checkpoint = step
                .checkpoint
                .unwrap_or_else(|| make_id::<CheckpointId>("cp", lsn, at));
            Ok(Decision::Write(
                Event {
                    at,
                    job: job.clone(),
                    change: Change::StepRecorded {
                        run: run.clone(),
                        checkpoint: checkpoint.clone(),
                        usage: step.usage,
                        phase: step.phase,
                        payload: step.payload,
                    },
                },
                checkpoint,
            ))
        })
    }

    /// Records that the phase at `position` completed. Phases are
    /// identified by position; two may share a name.
    pub fn complete_phase(
        &self,
        job: &JobId,
        run: &RunId,
        position: u32,
        name: impl Into<String>,
        output: impl Into<Vec<u8>>,
    ) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::PhaseCompleted {
                run: run.clone(),
                position,
                name: name.into(),
                output: output.into(),
            },
        )
    }

    /// Delegates from `run` to a new child run and returns the child's id.
    /// The parent waits (`Delegating`) until [`Engine::return_child`].
    pub fn delegate(&self, job: &JobId, run: &RunId) -> Result<RunId, EngineError> {
        self.command(|_, lsn, at| {
            let child = make_id::<RunId>("run", lsn, at);
            Ok(Decision::Write(
                Event {
                    at,
                    job: job.clone(),
                    change: Change::Delegated {
                        run: run.clone(),
                        child: child.clone(),
                    },
                },
                child,
            ))
        })
    }

    /// Returns a finished child's result to its waiting parent.
    pub fn return_child(&self, job: &JobId, run: &RunId, child: &RunId) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::ChildReturned {
                run: run.clone(),
                child: child.clone(),
            },
        )
    }

    /// Makes `run` wait for outside input.
    pub fn request_input(
        &self,
        job: &JobId,
        run: &RunId,
        prompt: impl Into<String>,
    ) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::InputRequested {
                run: run.clone(),
                prompt: prompt.into(),
            },
        )
    }

    /// Gives `run` the input it waits for.
    pub fn provide_input(
        &self,
        job: &JobId,
        run: &RunId,
        input: impl Into<Vec<u8>>,
    ) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::InputProvided {
                run: run.clone(),
                input: input.into(),
            },
        )
    }

    /// Completes a run with its output.
    pub fn complete_run(
        &self,
        job: &JobId,
        run: &RunId,
        output: impl Into<Vec<u8>>,
    ) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::RunCompleted {
                run: run.clone(),
                output: output.into(),
            },
        )
    }

    /// Fails a run.
    pub fn fail_run(
        &self,
        job: &JobId,
        run: &RunId,
        error: impl Into<String>,
        retryable: bool,
    ) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::RunFailed {
                run: run.clone(),
                error: error.into(),
                retryable,
                cause: FailCause::Reported,
            },
        )
    }

    /// Records that a run stopped without finishing.
    pub fn interrupt_run(
        &self,
        job: &JobId,
        run: &RunId,
        reason: InterruptReason,
    ) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::RunInterrupted {
                run: run.clone(),
                reason,
            },
        )
    }

    /// Finishes a job as completed or failed (no run may be in flight).
    /// A finished job can be continued with [`Engine::start_run`].
    pub fn finish_job(&self, job: &JobId, outcome: JobOutcome) -> Result<(), EngineError> {
        self.write_change(job, Change::JobFinished { outcome })
    }

    /// Cancels a job: final, nothing is accepted for it afterwards.
    pub fn cancel_job(&self, job: &JobId, reason: impl Into<String>) -> Result<(), EngineError> {
        self.finish_job(
            job,
            JobOutcome::Cancelled {
                reason: reason.into(),
            },
        )
    }

    /// Records a status a remote system reported for the job.
    pub fn observe_external(
        &self,
        job: &JobId,
        status: ExternalStatus,
        detail: impl Into<String>,
    ) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::ExternalStatusObserved {
                status,
                detail: detail.into(),
            },
        )
    }

    /// Fails a run on behalf of its guard (see [`crate::RunGuard`]).
    pub(crate) fn abandon_run(&self, job: &JobId, run: &RunId) -> Result<(), EngineError> {
        self.write_change(
            job,
            Change::RunFailed {
                run: run.clone(),
                error: "the run's guard was dropped before the run finished".into(),
                retryable: true,
                cause: FailCause::Abandoned,
            },
        )
    }

    /// Writes a snapshot of the views now: the log is synced first, so the
    /// snapshot covers only durable events. When `keep_full_history` is
    /// false, segments the snapshot covers are then dropped, except those
    /// holding an input or checkpoint of an unfinished job.
    pub fn snapshot(&self) -> Result<SnapshotInfo, EngineError> {
        let _one_at_a_time = lock(&self.snapshotting);
        let (lsn, last_at, body, keep_from) = {
            let mut order = lock(&self.order);
            let lsn = self.log.next_lsn();
            self.log.sync()?;
            let views = read(&self.views);
            // While the log keeps every segment, a job's runs and
            // checkpoints are the fold of its events there: the snapshot
            // names them. Segments it covers may otherwise be dropped
            // after it, so it holds them in full.
            let details = if self.options.keep_full_history {
                SnapshotDetails::FromLog {
                    first_lsn: self.log.first_lsn(),
                }
            } else {
                SnapshotDetails::Full
            };
            let body = snapshot::encode(&views, details)?;
            let keep_from = views
                .jobs_with_status(JobStatus::Running)?
                .map(|j| j.input.lsn)
                .min()
                .unwrap_or(lsn)
                .min(lsn);
            order.events_since_snapshot = 0;
            order.bytes_since_snapshot = 0;
            if !self.options.keep_full_history {
                // Raised before the drop, under the ordering lock: a job
                // continued after this point has its input above it.
                self.history_floor.fetch_max(keep_from, Ordering::AcqRel);
            }
            (lsn, order.last_at, body, keep_from)
        };
        let path = snapshot::write(&self.files, &self.dir, lsn, last_at, &body)?;
        let segments_dropped = if self.options.keep_full_history {
            0
        } else {
            self.log.drop_segments_below(keep_from)?
        };
        snapshot::prune(&self.files, &self.dir, self.options.snapshots_kept);
        Ok(SnapshotInfo {
            path,
            lsn,
            segments_dropped,
        })
    }

    // ---- the write path -------------------------------------------------

    fn write_change(&self, job: &JobId, change: Change) -> Result<(), EngineError> {
        self.command(move |_, _, at| {
            Ok(Decision::Write(
                Event {
                    at,
                    job: job.clone(),
                    change,
                },
                (),
            ))
        })
    }

    /// Runs one command: under the ordering lock, `decide` looks at the
    /// views (given the LSN the event will get and its timestamp) and
    /// returns an event; the event is checked, written and applied; then,
    /// outside the lock, the command waits until it is durable.
    fn command<T>(
        &self,
        decide: impl FnOnce(&Projections, Lsn, Timestamp) -> Result<Decision<T>, EngineError>,
    ) -> Result<T, EngineError> {
        // The event written, dropped (its payload freed) once the lock is
        // released: nothing but ordering work is done under it.
        let written: Option<Event>;
        let (value, wait_for, snapshot_due) = {
            let mut order = lock(&self.order);
            let at = Timestamp(self.options.clock.now().0.max(order.last_at.0));
            let lsn = self.log.next_lsn();
            let views = read(&self.views);
            match decide(&views, lsn, at)? {
                Decision::Nothing { value, wait_for } => {
                    written = None;
                    (value, wait_for, false)
                }
                Decision::Write(event, value) => {
                    // Checked once: nothing can be applied between this
                    // check and the apply below, both under the ordering
                    // lock, so the apply reuses what the check resolved.
                    let checked = views.check_for_apply(&event)?;
                    drop(views);
                    let order = &mut *order;
                    codec::encode_into(&event, &mut order.record)?;
                    let appended = self.log.write(&[&order.record])?;
                    let record_len = order.record.len();
                    if order.record.capacity() > RECORD_BUFFER_KEPT_MAX {
                        order.record = Vec::new();
                    }
                    write(&self.views)
                        .apply_checked(appended.first, &event, checked)
                        .map_err(refused_after_check(appended.first))?;
                    order.last_at = event.at;
                    order.events_since_snapshot += 1;
                    order.bytes_since_snapshot += record_len as u64;
                    let due = self.snapshot_due(order);
                    written = Some(event);
                    (value, Some(appended.next), due)
                }
            }
        };
        drop(written);
        if let Some(upto) = wait_for {
            self.log.commit(upto)?;
        }
        if snapshot_due {
            // The command is durable whatever happens here; a failed
            // automatic snapshot is retried at the next threshold, and an
            // explicit `snapshot()` reports the error.
            let _ = self.snapshot();
        }
        Ok(value)
    }

    fn snapshot_due(&self, order: &Order) -> bool {
        let every_events = self.options.snapshot_every_events;
        let every_bytes = self.options.snapshot_every_bytes;
        (every_events > 0 && order.events_since_snapshot >= every_events)
            || (every_bytes > 0 && order.bytes_since_snapshot >= every_bytes)
    }

    /// Records every run in flight as interrupted (or failed, when out of
    /// recovery attempts) in one atomic batch.
    fn interrupt_in_flight(
        &self,
        reason: InterruptReason,
    ) -> Result<Vec<InterruptedRun>, EngineError> {
        let mut order = lock(&self.order);
        let at = Timestamp(self.options.clock.now().0.max(order.last_at.0));
        let max = self.options.recovery_attempts_max;
        let (events, found): (Vec<Event>, Vec<(JobId, RunId, RunStatus)>) = {
            let views = read(&self.views);
            views
                .in_flight_runs()
                .map(|run| {
                    let change = if reason == InterruptReason::Crash && run.recovery_attempts >= max
                    {
                        Change::RunFailed {
                            run: run.id.clone(),
                            error: format!(
                                "interrupted again after {} recovery attempts (the bound is {max})",
                                run.recovery_attempts
                            ),
                            retryable: false,
                            cause: FailCause::RecoveryAttemptsExhausted,
                        }
                    } else {
                        Change::RunInterrupted {
                            run: run.id.clone(),
                            reason,
                        }
                    };
                    let event = Event {
                        at,
                        job: run.job.clone(),
                        change,
                    };
                    (event, (run.job.clone(), run.id.clone(), run.status))
                })
                .unzip()
        };
        if events.is_empty() {
            return Ok(Vec::new());
        }
        {
            let views = read(&self.views);
            for event in &events {
                // Each event is about a different run, so checking each
                // against the state before the batch is checking the batch.
                views.check(event)?;
            }
        }
        let encoded = events
            .iter()
            .map(codec::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let batch: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let appended = self.log.write(&batch)?;
        {
            let mut views = write(&self.views);
            for (i, event) in events.iter().enumerate() {
                let lsn = appended.first + i as u64;
                views.apply(lsn, event).map_err(refused_after_check(lsn))?;
            }
        }
        order.last_at = at;
        order.events_since_snapshot += events.len() as u64;
        drop(order);
        self.log.commit(appended.next)?;

        let views = read(&self.views);
        let code = self.options.code_version.as_deref();
        Ok(found
            .into_iter()
            .filter_map(|(job, run, was)| {
                // These runs were in the in-flight index, whose jobs have
                // their detail decoded: neither call fails.
                let view = views.run(&job, &run).ok().flatten()?;
                let resumability = views.resumability(&job, &run, code, max).ok().flatten()?;
                Some(InterruptedRun {
                    now: view.status,
                    job,
                    run,
                    was,
                    resumability,
                })
            })
            .collect())
    }
}

impl sealed::Access for Engine {
    fn views<R>(&self, f: impl FnOnce(&Projections) -> R) -> R {
        f(&read(&self.views))
    }

    fn source(&self) -> &dyn Source {
        &*self.log
    }

    fn options(&self) -> &Options {
        &self.options
    }
}

impl Query for Engine {}

/// The error for an event checked under the ordering lock and then refused
/// when applied at `lsn`. That would mean the views changed between check
/// and apply, which the lock rules out; it is reported rather than
/// panicked on.
fn refused_after_check(lsn: Lsn) -> impl FnOnce(TransitionError) -> EngineError {
    move |source| EngineError::Replay {
        lsn,
        source: Box::new(source),
    }
}

/// Gives the clear error for a resume from a checkpoint: unknown, or
/// belonging to another job.
fn check_checkpoint_owner(
    views: &Projections,
    job: &JobId,
    checkpoint: &CheckpointId,
) -> Result<(), EngineError> {
    let Some(view) = views.job(job)? else {
        return Err(EngineError::UnknownJob { job: job.clone() });
    };
    if view.detail()?.checkpoint(checkpoint).is_some() {
        return Ok(());
    }
    // Only on this error path: find who owns it, to say so. A job (or a
    // job's detail) that cannot be read owns nothing that can be named.
    let owns = |j: &&runlog_projections::JobView| {
        j.detail().is_ok_and(|d| d.checkpoint(checkpoint).is_some())
    };
    match views.jobs().filter_map(Result::ok).find(owns) {
        Some(owner) => Err(EngineError::CheckpointOfAnotherJob {
            job: job.clone(),
            checkpoint: checkpoint.clone(),
            owner: owner.id.clone(),
        }),
        None => Err(EngineError::UnknownCheckpoint {
            job: job.clone(),
            checkpoint: checkpoint.clone(),
        }),
    }
}

/// An id made of a prefix, the LSN of the event that creates it (unique in
/// a log) and its timestamp in base 36 (so an id given out for an event a
/// crash then lost is not handed out again for another).
///
/// Made under the ordering lock for every step, so it is formatted on the
/// stack and allocated once, by the id itself.
fn make_id<I: for<'a> From<&'a str>>(prefix: &str, lsn: Lsn, at: Timestamp) -> I {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    /// Digits of a u64 in base 10, at most.
    const LSN_DIGITS_MAX: usize = 20;
    /// Digits of a u64 in base 36, at most.
    const STAMP_DIGITS_MAX: usize = 13;
    /// The longest prefix the engine uses ("job", "run", "cp").
    const PREFIX_LEN_MAX: usize = 3;
    const ID_LEN_MAX: usize = PREFIX_LEN_MAX + 1 + LSN_DIGITS_MAX + 1 + STAMP_DIGITS_MAX;
    const _: () = assert!(36u128.pow(STAMP_DIGITS_MAX as u32) > u64::MAX as u128);
    const _: () = assert!(10u128.pow(LSN_DIGITS_MAX as u32) > u64::MAX as u128);

    // Written backwards from the end of the buffer: the stamp first, then
    // '-', the LSN, '-', the prefix. ID_LEN_MAX bounds every part, so no
    // index below goes out of the buffer.
    let mut out = [0u8; ID_LEN_MAX];
    let mut at_end = ID_LEN_MAX;
    let mut put = |b: u8| {
        at_end -= 1;
        out[at_end] = b;
    };
    for (v, base) in [(at.0, 36), (lsn, 10)] {
        let mut v = v;
        loop {
            put(DIGITS[(v % base) as usize]);
            v /= base;
            if v == 0 {
                break;
            }
        }
        put(b'-');
    }
    prefix.bytes().take(PREFIX_LEN_MAX).rev().for_each(put);
    // Every byte written is ASCII: the prefixes are ASCII literals and the
    // digits come from DIGITS.
    I::from(std::str::from_utf8(&out[at_end..]).unwrap_or(""))
}

/// Where a replay begins: the newest usable snapshot, or the empty views
/// at the log's first LSN.
pub(crate) struct Start {
    pub views: Projections,
    pub from: Lsn,
    pub last_at: Timestamp,
    pub snapshot: Option<SnapshotUsed>,
    pub snapshots_skipped: Vec<SkippedSnapshot>,
}

/// Picks the starting views for a log whose records span
/// `[first_lsn, end)`, with snapshots no later than `not_after`. Without a
/// snapshot, a log whose first segments were dropped cannot be replayed:
/// that is `HistoryMissing`, never views with jobs missing.
// The log is passed twice, as records to check the snapshot against and
// as events for the views to keep: one more than clippy's count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    files: &Files,
    dir: &Path,
    source: &dyn Source,
    events: &Arc<dyn EventSource>,
    first_lsn: Lsn,
    end: Lsn,
    not_after: Option<Timestamp>,
    refused: &[SkippedSnapshot],
) -> Result<Start, EngineError> {
    let matches_log =
        |lsn, last_at, views: &Projections| last_event_matches(source, lsn, last_at, views);
    let (loaded, snapshots_skipped) = snapshot::load_newest(
        files,
        dir,
        first_lsn,
        end,
        not_after,
        &matches_log,
        refused,
        events,
    );
    match loaded {
        Some(l) => Ok(Start {
            views: l.state,
            from: l.lsn,
            last_at: l.last_at,
            snapshot: Some(SnapshotUsed {
                path: l.path,
                lsn: l.lsn,
            }),
            snapshots_skipped,
        }),
        None if first_lsn > 0 => Err(EngineError::HistoryMissing {
            dir: dir.to_path_buf(),
            first_lsn,
        }),
        None => Ok(Start {
            views: Projections::new(),
            from: first_lsn,
            last_at: Timestamp(0),
            snapshot: None,
            snapshots_skipped,
        }),
    }
}

/// Whether views said to hold every event below `lsn`, the last stamped
/// `last_at`, are views of this log: the log's event at `lsn - 1` must be
/// the last one they applied — same timestamp, and its job's last event.
/// A snapshot from another log, or from before a salvage rewrote this one,
/// fails here rather than being loaded under the wrong history. When that
/// record was dropped by retention only the LSNs can be checked.
fn last_event_matches(
    source: &dyn Source,
    lsn: Lsn,
    last_at: Timestamp,
    views: &Projections,
) -> Result<(), String> {
    let Some(last) = lsn.checked_sub(1) else {
        return match views.last_lsn() {
            None => Ok(()),
            Some(l) => Err(format!("its views include LSN {l}, not below its LSN 0")),
        };
    };
    if views.last_lsn() != Some(last) {
        return Err(format!(
            "its views end at LSN {:?}, not at LSN {last}",
            views.last_lsn()
        ));
    }
    let bytes = match source.read_record(last) {
        Ok(bytes) => bytes,
        Err(LogError::LsnOutOfRange { first, .. }) if last < first => return Ok(()),
        Err(e) => {
            return Err(format!(
                "the log's record at LSN {last} cannot be read: {e}"
            ));
        }
    };
    let event = codec::decode(last, &bytes).map_err(|e| e.to_string())?;
    let ends_job = match views.job(&event.job) {
        Ok(job) => job.is_some_and(|j| j.last_lsn == last),
        Err(e) => return Err(e.to_string()),
    };
    if event.at != last_at || !ends_job {
        return Err(format!(
            "its last event is not the log's event at LSN {last} (another log's snapshot, or one from before the log was rewritten)"
        ));
    }
    Ok(())
}

/// [`start`], then [`replay`] up to `stop`. A snapshot whose job detail
/// fails to decode while the log after it is replayed is refused like a
/// snapshot that fails its checks: the next older one, or a full replay,
/// is used instead, and the refusal reported. Returns the views (at the
/// end of the replay) and the number of events replayed. Jobs a snapshot
/// holds as their event LSNs read them from `events`: `source` itself.
// As `start`: the log passed as records and as events.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_and_replay(
    files: &Files,
    dir: &Path,
    source: &dyn Source,
    events: &Arc<dyn EventSource>,
    first_lsn: Lsn,
    end: Lsn,
    not_after: Option<Timestamp>,
    stop: Stop,
) -> Result<(Start, u64), EngineError> {
    let mut refused: Vec<SkippedSnapshot> = Vec::new();
    loop {
        let mut begin = start(
            files, dir, source, events, first_lsn, end, not_after, &refused,
        )?;
        let Start {
            views,
            from,
            last_at,
            ..
        } = &mut begin;
        match replay(source, views, *from, stop, last_at) {
            Ok(replayed) => return Ok((begin, replayed)),
            Err(EngineError::Replay { lsn, source })
                if matches!(source.refusal, Refusal::DetailUnreadable(_)) =>
            {
                // Each round refuses one more snapshot, so this ends.
                let Some(used) = begin.snapshot else {
                    return Err(EngineError::Replay { lsn, source });
                };
                refused.push(SkippedSnapshot {
                    path: used.path,
                    reason: format!("the event at LSN {lsn} found: {}", source.refusal),
                });
            }
            Err(e) => return Err(e),
        }
    }
}

// Lock helpers. A panic while a lock is held cannot leave the views half
// changed (apply validates before it mutates and never panics), so a
// poisoned lock is safe to go on using.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids as they were formatted before `make_id` moved to the stack:
    /// the format is what hosts see, so it must not change.
    fn reference_id(prefix: &str, lsn: Lsn, at: Timestamp) -> String {
        let mut stamp = Vec::new();
        let mut t = at.0;
        loop {
            stamp.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(t % 36) as usize]);
            t /= 36;
            if t == 0 {
                break;
            }
        }
        stamp.reverse();
        format!("{prefix}-{lsn}-{}", String::from_utf8_lossy(&stamp))
    }

    #[test]
    fn make_id_formats_prefix_lsn_and_base36_stamp() {
        assert_eq!(
            make_id::<JobId>("job", 42, Timestamp(1_700_000_000_000)).as_str(),
            "job-42-loyw3v28"
        );
        assert_eq!(make_id::<RunId>("run", 0, Timestamp(0)).as_str(), "run-0-0");
        assert_eq!(
            make_id::<CheckpointId>("cp", u64::MAX, Timestamp(u64::MAX)).as_str(),
            "cp-18446744073709551615-3w5e11264sgsf"
        );
        for (lsn, at) in [
            (1, 35),
            (10, 36),
            (999, 1295),
            (123_456_789, 1_763_790_000_123),
        ] {
            for prefix in ["job", "run", "cp"] {
                assert_eq!(
                    make_id::<JobId>(prefix, lsn, Timestamp(at)).as_str(),
                    reference_id(prefix, lsn, Timestamp(at))
                );
            }
        }
    }
}
