//! The fold: [`Projections`] applies events, enforcing the transition table,
//! and keeps the views and their indexes.

use crate::error::{DetailError, Refusal, StateFound, TransitionError};
use crate::event::{ChangeRef, Event, EventRef, FailCause, InterruptReason, JobOutcomeRef};
use crate::snapshot::{Base, RowCache, SnapshotError};
use crate::types::{CheckpointId, JobId, Lsn, PayloadRef, RunId, Usage};
use crate::view::{
    BlockedReason, CheckpointView, Detail, ExternalObservation, FinishReason, JobDetail, JobStatus,
    JobSummary, JobView, PhaseView, Resumability, RunError, RunStatus, RunView,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock, Weak};

/// The job-id index. Job ids come from hosts and from logs an auditor may
/// be handed, so the hasher must not let crafted ids collide: std's
/// SipHash, keyed per map from the process's random state. (A faster
/// keyed hasher would save a few instructions per job at restore, at the
/// cost of a dependency this crate, serde only, does not take.)
type JobIndex = HashMap<JobId, usize>;

/// The job, run and checkpoint views of a log, and their indexes.
///
/// Built by applying events in log order. Pure: no I/O, no clock.
#[derive(Clone, Debug, Default)]
pub struct Projections {
    /// Jobs restored from a snapshot, at positions `0..base.len()`: kept
    /// as the snapshot's bytes and materialized when first used.
    base: Option<Base>,
    /// Jobs created since the snapshot (every job, without one), in
    /// creation order, at positions from the base's length on. Every
    /// index below holds positions.
    jobs: Vec<JobView>,
    /// Positions of the jobs in `jobs`; the base's are found through the
    /// snapshot's id index.
    by_id: JobIndex,
    /// Unfinished (running) jobs: kept always, as the base lists its own.
    running: BTreeSet<usize>,
    /// Completed, failed and cancelled jobs: built by a scan of every job
    /// when first asked for (materializing every job), kept from then on.
    finished: OnceLock<Result<[BTreeSet<usize>; 3], DetailError>>,
    /// Unfinished jobs per fingerprint, in creation order (newest last).
    unfinished_by_fingerprint: HashMap<Arc<str>, BTreeSet<usize>>,
    /// (job, run) of runs that are interrupted in a job that is not cancelled.
    interrupted: BTreeSet<(usize, usize)>,
    /// (job, run) of runs that are running or waiting.
    in_flight: BTreeSet<(usize, usize)>,
    events_applied: u64,
    last_lsn: Option<Lsn>,
    /// The job the last applied event was about. Events of one job tend to
    /// follow each other, and comparing one id is cheaper than hashing it.
    /// Only a hint: a miss falls back to `by_id`.
    recent_job: usize,
    /// Which views these are, for [`Checked`] tokens.
    identity: Identity,
}

/// The identity of one set of views: a heap allocation whose address no
/// other live set shares. A clone gets its own, so a [`Checked`] token
/// made on one set is never taken as made on a copy of it.
#[derive(Debug, Default)]
struct Identity(Arc<()>);

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity(Arc::new(()))
    }
}

impl PartialEq for Projections {
    /// Equal views (a job that cannot be materialized equals only the
    /// same error). The indexes are functions of the views, so they need
    /// not be compared.
    fn eq(&self, other: &Self) -> bool {
        self.job_count() == other.job_count()
            && self.jobs().zip(other.jobs()).all(|(a, b)| a == b)
            && self.events_applied == other.events_applied
            && self.last_lsn == other.last_lsn
    }
}

impl Eq for Projections {}

/// The jobs and runs an event resolved to, checked and ready to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Target {
    job: usize,
    run: Option<usize>,
}

/// An event [`Projections::check_for_apply`] accepted: what it resolved to,
/// and how many events the views had applied then. Handed to
/// [`Projections::apply_checked`], it saves resolving and checking the
/// event a second time.
#[derive(Debug)]
#[must_use]
pub struct Checked {
    target: Target,
    events_applied: u64,
    /// The views it was made on. Holding it keeps their identity's
    /// allocation, and so its address, from being reused by other views.
    owner: Weak<()>,
}

impl Projections {
    /// Empty views: the state before the first event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `event` against the transition table without changing anything.
    pub fn check(&self, event: &Event) -> Result<(), TransitionError> {
        self.validate(&event.as_ref()).map(drop)
    }

    /// [`Projections::check`], keeping what the check resolved for
    /// [`Projections::apply_checked`].
    pub fn check_for_apply(&self, event: &Event) -> Result<Checked, TransitionError> {
        let target = self.validate(&event.as_ref())?;
        Ok(Checked {
            target,
            events_applied: self.events_applied,
            owner: Arc::downgrade(&self.identity.0),
        })
    }

    /// Applies `event`, which [`Projections::check_for_apply`] accepted on
    /// these views, without checking it again when nothing was applied
    /// since (the views are then as they were checked); otherwise, or if
    /// the token was made on other views (a clone included), it is checked
    /// again, as [`Projections::apply`] does. The same event must be
    /// passed to both: debug builds check it again anyway and assert that
    /// it resolves to the same job and run.
    pub fn apply_checked(
        &mut self,
        lsn: Lsn,
        event: &Event,
        checked: Checked,
    ) -> Result<(), TransitionError> {
        let same_views = checked.owner.as_ptr() == Arc::as_ptr(&self.identity.0);
        if !same_views || checked.events_applied != self.events_applied {
            return self.apply(lsn, event);
        }
        let event = event.as_ref();
        debug_assert_eq!(
            self.validate(&event).ok(),
            Some(checked.target),
            "apply_checked was given another event than the one checked"
        );
        self.commit(checked.target, lsn, &event);
        Ok(())
    }

    /// Applies `event`, found at `lsn` in the log. A refused event returns a
    /// [`TransitionError`] and leaves every view exactly as it was.
    pub fn apply(&mut self, lsn: Lsn, event: &Event) -> Result<(), TransitionError> {
        self.apply_ref(lsn, &event.as_ref())
    }

    /// [`Projections::apply`] for a borrowed event, as replay decodes it:
    /// the same checks and the same views (both go through this one
    /// implementation), and only what the views keep is copied out of the
    /// event.
    pub fn apply_ref(&mut self, lsn: Lsn, event: &EventRef<'_>) -> Result<(), TransitionError> {
        let target = self.validate(event)?;
        self.commit(target, lsn, event);
        Ok(())
    }

    /// Applies a validated event: the one place where views change.
    fn commit(&mut self, target: Target, lsn: Lsn, event: &EventRef<'_>) {
        self.recent_job = target.job;
        self.mutate(target, lsn, event);
        self.events_applied += 1;
        self.last_lsn = Some(lsn);
    }

    /// Number of events applied.
    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    /// LSN of the last event applied.
    pub fn last_lsn(&self) -> Option<Lsn> {
        self.last_lsn
    }

    /// Number of jobs.
    pub fn job_count(&self) -> usize {
        self.base_len() + self.jobs.len()
    }

    /// One job; `Ok(None)` when no job has the id. Fails when the job
    /// was restored from a snapshot whose bytes for it cannot be read
    /// (the job is materialized from them on first use).
    pub fn job(&self, id: &JobId) -> Result<Option<&JobView>, DetailError> {
        match self.position_of(id.as_str())? {
            Some(i) => self.job_at(i).map(Some),
            None => Ok(None),
        }
    }

    /// Every job, oldest first. Reverse it for newest first. A job
    /// restored from a snapshot is materialized as the iterator reaches
    /// it, and is an error if its bytes cannot be read.
    pub fn jobs(
        &self,
    ) -> impl DoubleEndedIterator<Item = Result<&JobView, DetailError>> + ExactSizeIterator {
        (0..self.job_count()).map(|i| self.job_at(i))
    }

    /// Jobs with one status, oldest first. Reverse it for newest first.
    /// For a finished status, the first call materializes every job, and
    /// fails if one cannot be read.
    pub fn jobs_with_status(
        &self,
        status: JobStatus,
    ) -> Result<impl DoubleEndedIterator<Item = &JobView>, DetailError> {
        let set = self.status_set(status)?;
        // Every job of an index is materialized: the running ones at
        // restore or creation, the others by the scan that built theirs.
        Ok(set.iter().filter_map(|&i| self.job_loaded(i)))
    }

    /// Listing rows of every job, or of the jobs with one status, newest
    /// first: what [`JobSummary::from`] makes of each job
    /// [`Projections::jobs`] (or [`Projections::jobs_with_status`])
    /// yields, in reverse. A job restored from a snapshot and not used
    /// since is read from the snapshot's record, a chunk at a time, and
    /// is not materialized; one whose bytes cannot be read is the error
    /// materializing it gives. A status filter fails as
    /// [`Projections::jobs_with_status`] does (for a finished status, the
    /// first call still materializes every job).
    pub fn job_rows(
        &self,
        status: Option<JobStatus>,
    ) -> Result<impl Iterator<Item = Result<JobSummary, DetailError>> + '_, DetailError> {
        let positions: Box<dyn Iterator<Item = usize> + '_> = match status {
            Some(status) => Box::new(self.status_set(status)?.iter().rev().copied()),
            None => Box::new((0..self.job_count()).rev()),
        };
        let mut cache = RowCache::default();
        Ok(positions.map(move |i| match &self.base {
            Some(base) if i < base.len() => base.row(i, &mut cache),
            _ => self.job_at(i).map(JobSummary::from),
        }))
    }

    /// Number of jobs with one status; fails as
    /// [`Projections::jobs_with_status`] does.
    pub fn count_with_status(&self, status: JobStatus) -> Result<usize, DetailError> {
        Ok(self.status_set(status)?.len())
    }

    /// The positions of the jobs with one status.
    fn status_set(&self, status: JobStatus) -> Result<&BTreeSet<usize>, DetailError> {
        let Some(finished) = finished_index(status) else {
            return Ok(&self.running);
        };
        let sets = self.finished.get_or_init(|| {
            let mut sets: [Vec<usize>; 3] = Default::default();
            for (i, job) in self.jobs().enumerate() {
                if let Some(s) = finished_index(job?.status) {
                    sets[s].push(i);
                }
            }
            // Positions come in order: the sets are built in bulk.
            Ok(sets.map(|positions| positions.into_iter().collect()))
        });
        match sets {
            Ok(sets) => Ok(&sets[finished]),
            Err(e) => Err(e.clone()),
        }
    }

    /// The jobs restored from a snapshot, if these views were.
    pub(crate) fn base(&self) -> Option<&Base> {
        self.base.as_ref()
    }

    /// Number of jobs restored from a snapshot and kept as its bytes.
    fn base_len(&self) -> usize {
        self.base.as_ref().map_or(0, Base::len)
    }

    /// The job at position `i`, materialized if it is not yet.
    pub(crate) fn job_at(&self, i: usize) -> Result<&JobView, DetailError> {
        match &self.base {
            Some(base) if i < base.len() => base.get(i),
            _ => self
                .jobs
                .get(i - self.base_len())
                .ok_or_else(|| DetailError {
                    job: JobId::from(format!("#{i}")),
                    reason: format!("no job at position {i} of {}", self.job_count()),
                }),
        }
    }

    /// The job at position `i` if it is materialized.
    fn job_loaded(&self, i: usize) -> Option<&JobView> {
        match &self.base {
            Some(base) if i < base.len() => base.loaded(i),
            _ => self.jobs.get(i - self.base_len()),
        }
    }

    /// The job at position `i`, to change, if it is materialized (every
    /// job an event is validated for is).
    fn job_mut(&mut self, i: usize) -> Option<&mut JobView> {
        let base_len = self.base_len();
        match &mut self.base {
            Some(base) if i < base_len => base.get_mut(i),
            _ => self.jobs.get_mut(i - base_len),
        }
    }

    /// The position of the job with id `id`: among the jobs created since
    /// the snapshot, then in the snapshot's id index.
    fn position_of(&self, id: &str) -> Result<Option<usize>, DetailError> {
        if let Some(&i) = self.by_id.get(id) {
            return Ok(Some(i));
        }
        match &self.base {
            Some(base) => base.find(id),
            None => Ok(None),
        }
    }

    /// The newest unfinished job created with this fingerprint.
    ///
    /// Its `started_at` lets the engine apply a staleness window.
    pub fn newest_unfinished_with_fingerprint(&self, fingerprint: &str) -> Option<&JobView> {
        self.unfinished_by_fingerprint
            .get(fingerprint)
            .and_then(|jobs| jobs.last())
            // Unfinished jobs are materialized at restore or creation.
            .and_then(|&i| self.job_loaded(i))
    }

    /// One run; `Ok(None)` when the job or the run does not exist. Fails
    /// when the job's detail cannot be read ([`JobView::detail`]).
    pub fn run(&self, job: &JobId, run: &RunId) -> Result<Option<&RunView>, DetailError> {
        match self.job(job)? {
            None => Ok(None),
            Some(j) => Ok(j.detail()?.run(run)),
        }
    }

    /// One checkpoint, addressed as (job id, checkpoint id); `Ok(None)`
    /// when the job or the checkpoint does not exist. Fails when the job's
    /// detail cannot be read.
    pub fn checkpoint(
        &self,
        job: &JobId,
        checkpoint: &CheckpointId,
    ) -> Result<Option<&CheckpointView>, DetailError> {
        match self.job(job)? {
            None => Ok(None),
            Some(j) => Ok(j.detail()?.checkpoint(checkpoint)),
        }
    }

    /// Runs interrupted and not since resumed or failed, in jobs that are
    /// not cancelled, by job creation order.
    pub fn interrupted_runs(&self) -> impl Iterator<Item = &RunView> {
        self.interrupted
            .iter()
            .filter_map(|&(j, r)| self.run_at(j, r))
    }

    /// Runs running or waiting (for input or a child): what a crash finds in
    /// flight.
    pub fn in_flight_runs(&self) -> impl Iterator<Item = &RunView> {
        self.in_flight
            .iter()
            .filter_map(|&(j, r)| self.run_at(j, r))
    }

    /// Whether a resume of the run by a host on `code_version`, under a bound
    /// of `attempts_max` recovery attempts, would be accepted — and if not,
    /// why. `Ok(None)` when the job or run does not exist; an error when
    /// the job's detail cannot be read.
    ///
    /// This is the same check the `RunResumed` transition makes, so a run
    /// reported resumable is never refused.
    pub fn resumability(
        &self,
        job: &JobId,
        run: &RunId,
        code_version: Option<&str>,
        attempts_max: u32,
    ) -> Result<Option<Resumability>, DetailError> {
        let Some(job) = self.job(job)? else {
            return Ok(None);
        };
        let detail = job.detail()?;
        let Some(run) = detail.run(run) else {
            return Ok(None);
        };
        Ok(Some(
            match resume_block(job, detail, run, code_version, attempts_max, false) {
                None => Resumability::Resumable,
                Some(reason) => Resumability::Blocked { reason },
            },
        ))
    }

    /// A run of the in-flight or interrupted indexes. Every job those
    /// name has its detail decoded: at restore for the jobs a snapshot
    /// lists with such runs, and by the event that made any other run so.
    fn run_at(&self, job: usize, run: usize) -> Option<&RunView> {
        self.job_loaded(job)
            .and_then(JobView::loaded_detail)
            .and_then(|d| d.runs.get(run))
    }

    /// Resolves the event's job and run and checks the transition table.
    fn validate(&self, event: &EventRef<'_>) -> Result<Target, TransitionError> {
        let kind = event.change.kind();
        // Ids are only made (allocated) on this, the refusing, path.
        let refuse = |state: StateFound, run: Option<&str>, refusal: Refusal| TransitionError {
            job: JobId::from(event.job),
            run: run.map(RunId::from),
            state,
            event: kind,
            refusal,
        };

        let job_idx = match self.job_loaded(self.recent_job) {
            Some(job) if job.id.as_str() == event.job => Some(self.recent_job),
            // A job of the base is materialized by its lookup; one whose
            // bytes cannot be read accepts nothing, not even a creation
            // under its id.
            _ => self.position_of(event.job).map_err(|e| {
                refuse(
                    StateFound::NoJob,
                    event.change.run(),
                    Refusal::DetailUnreadable(e),
                )
            })?,
        };
        if let ChangeRef::JobCreated { .. } = event.change {
            return match job_idx.and_then(|i| self.job_loaded(i)) {
                Some(job) => Err(refuse(
                    StateFound::Job(job.status),
                    None,
                    Refusal::JobExists,
                )),
                // A new job goes at the end of the list.
                None => Ok(Target {
                    job: self.job_count(),
                    run: None,
                }),
            };
        }
        let Some((ji, job)) = job_idx.and_then(|i| self.job_loaded(i).map(|j| (i, j))) else {
            return Err(refuse(
                StateFound::NoJob,
                event.change.run(),
                Refusal::UnknownJob,
            ));
        };
        let job_state = StateFound::Job(job.status);
        if job.status == JobStatus::Cancelled {
            return Err(refuse(job_state, event.change.run(), Refusal::JobCancelled));
        }
        // Every remaining event reads or changes the job's runs: a job
        // restored from a snapshot has them decoded here, once, and one
        // whose detail cannot be read accepts nothing.
        let detail = job
            .detail()
            .map_err(|e| refuse(job_state, event.change.run(), Refusal::DetailUnreadable(e)))?;
        let has_checkpoint = |cp: Option<&str>| match cp {
            Some(cp) if detail.checkpoint_position(cp).is_none() => {
                Err(Refusal::UnknownCheckpoint {
                    checkpoint: CheckpointId::from(cp),
                })
            }
            _ => Ok(()),
        };

        match event.change {
            ChangeRef::RunStarted {
                run, resume_from, ..
            } => {
                if detail.run_position(run).is_some() {
                    return Err(refuse(job_state, Some(run), Refusal::RunExists));
                }
                has_checkpoint(resume_from).map_err(|r| refuse(job_state, Some(run), r))?;
                // A finished (not cancelled) job accepts a new run: a
                // continuation, which reopens it.
                return Ok(Target {
                    job: ji,
                    run: Some(detail.runs.len()),
                });
            }
            ChangeRef::JobFinished { outcome } => {
                if !matches!(outcome, JobOutcomeRef::Cancelled { .. }) {
                    if job.status.is_finished() {
                        return Err(refuse(job_state, None, Refusal::JobFinished));
                    }
                    let count = detail
                        .runs
                        .iter()
                        .filter(|r| r.status.is_in_flight())
                        .count();
                    if count > 0 {
                        return Err(refuse(job_state, None, Refusal::RunsInFlight { count }));
                    }
                }
                return Ok(Target { job: ji, run: None });
            }
            ChangeRef::ExternalStatusObserved { .. } => return Ok(Target { job: ji, run: None }),
            // JobCreated returned above; the rest are run events.
            _ => {}
        }

        // Every remaining event is about a run of a job that is running.
        let Some(run_id) = event.change.run() else {
            return Ok(Target { job: ji, run: None });
        };
        if job.status.is_finished() {
            return Err(refuse(job_state, Some(run_id), Refusal::JobFinished));
        }
        let Some((ri, run)) = detail
            .run_position(run_id)
            .and_then(|i| detail.runs.get(i).map(|r| (i, r)))
        else {
            return Err(refuse(job_state, Some(run_id), Refusal::UnknownRun));
        };
        let state = StateFound::Run(job.status, run.status);
        let refuse = |refusal: Refusal| refuse(state, Some(run_id), refusal);
        let must_be_running = || match run.status {
            RunStatus::Running => Ok(()),
            s if s.is_terminal() => Err(refuse(Refusal::RunFinished)),
            _ => Err(refuse(Refusal::RunNotRunning)),
        };

        match event.change {
            ChangeRef::StepRecorded { checkpoint, .. } => {
                must_be_running()?;
                if detail.checkpoint_position(checkpoint).is_some() {
                    return Err(refuse(Refusal::CheckpointExists {
                        checkpoint: CheckpointId::from(checkpoint),
                    }));
                }
            }
            ChangeRef::PhaseCompleted { position, .. } => {
                must_be_running()?;
                if run.phase_completed(position) {
                    return Err(refuse(Refusal::PhaseAlreadyCompleted { position }));
                }
            }
            ChangeRef::Delegated { child, .. } => {
                must_be_running()?;
                if detail.run_position(child).is_some() {
                    return Err(TransitionError {
                        run: Some(RunId::from(child)),
                        ..refuse(Refusal::RunExists)
                    });
                }
            }
            ChangeRef::ChildReturned { child, .. } => {
                if run.waiting_on_child.as_ref().map(RunId::as_str) != Some(child) {
                    return Err(refuse(Refusal::NotWaitingForChild {
                        child: RunId::from(child),
                    }));
                }
                let finished = detail
                    .run_position(child)
                    .and_then(|i| detail.runs.get(i))
                    .is_some_and(|c| c.status.is_terminal());
                if !finished {
                    return Err(refuse(Refusal::ChildNotFinished {
                        child: RunId::from(child),
                    }));
                }
            }
            ChangeRef::InputRequested { .. } | ChangeRef::RunCompleted { .. } => must_be_running()?,
            ChangeRef::InputProvided { .. } => {
                if run.awaiting_input.is_none() {
                    return Err(refuse(Refusal::NotAwaitingInput));
                }
            }
            ChangeRef::RunFailed { .. } => {
                if run.status.is_terminal() {
                    return Err(refuse(Refusal::RunFinished));
                }
            }
            ChangeRef::RunInterrupted { .. } => {
                if !run.status.is_in_flight() {
                    return Err(refuse(if run.status.is_terminal() {
                        Refusal::RunFinished
                    } else {
                        Refusal::RunNotRunning
                    }));
                }
            }
            ChangeRef::RunResumed {
                from,
                code_version,
                allow_code_change,
                attempts_max,
                ..
            } => {
                has_checkpoint(from).map_err(refuse)?;
                if let Some(reason) = resume_block(
                    job,
                    detail,
                    run,
                    code_version,
                    attempts_max,
                    allow_code_change,
                ) {
                    return Err(refuse(Refusal::NotResumable(reason)));
                }
            }
            ChangeRef::JobCreated { .. }
            | ChangeRef::RunStarted { .. }
            | ChangeRef::JobFinished { .. }
            | ChangeRef::ExternalStatusObserved { .. } => {}
        }
        Ok(Target {
            job: ji,
            run: Some(ri),
        })
    }

    /// Applies a validated event. Never fails: every check was made by
    /// `validate` against this same state.
    fn mutate(&mut self, target: Target, lsn: Lsn, event: &EventRef<'_>) {
        let at = event.at;
        let payload = |bytes: &[u8]| PayloadRef {
            lsn,
            len: bytes.len() as u64,
        };
        let ji = target.job;

        match event.change {
            ChangeRef::JobCreated {
                key,
                input,
                fingerprint,
            } => {
                let id = JobId::from(event.job);
                self.by_id.insert(id.clone(), ji);
                self.jobs.push(JobView {
                    id,
                    key: Arc::from(key),
                    input: payload(input),
                    fingerprint: fingerprint.map(Arc::from),
                    status: JobStatus::Running,
                    total_steps: 0,
                    usage: Usage::default(),
                    started_at: at,
                    finished_at: None,
                    finish: None,
                    external: None,
                    last_lsn: lsn,
                    detail: Detail::empty(),
                });
                self.index_status(ji, None, JobStatus::Running);
                return;
            }
            ChangeRef::RunStarted {
                run,
                resume_from,
                code_version,
            } => {
                if self.job_loaded(ji).map(|j| j.status) != Some(JobStatus::Running) {
                    // A continuation reopens the finished job.
                    self.set_job_status(ji, JobStatus::Running);
                    let Some(job) = self.job_mut(ji) else { return };
                    job.finished_at = None;
                    job.finish = None;
                }
                let Some(job) = self.job_mut(ji) else { return };
                let job_id = job.id.clone();
                let Some(detail) = validated_detail(job) else {
                    return;
                };
                let ri = detail.runs.len();
                let resumed_from = resume_from.map(|cp| detail.checkpoint_id(cp));
                detail.runs.push(new_run(
                    RunId::from(run),
                    job_id,
                    None,
                    at,
                    code_version.map(str::to_owned),
                    resumed_from,
                ));
                detail.run_index.push_last(&detail.runs, |r| &r.id);
                self.in_flight.insert((ji, ri));
            }
            ChangeRef::JobFinished { outcome } => {
                let (status, reason) = match outcome {
                    JobOutcomeRef::Completed => (JobStatus::Completed, FinishReason::Completed),
                    JobOutcomeRef::Failed { error } => {
                        (JobStatus::Failed, FinishReason::Failed(error.to_owned()))
                    }
                    JobOutcomeRef::Cancelled { reason } => (
                        JobStatus::Cancelled,
                        FinishReason::Cancelled(reason.to_owned()),
                    ),
                };
                self.set_job_status(ji, status);
                let Some(job) = self.job_mut(ji) else { return };
                job.finished_at = Some(at);
                job.finish = Some(reason);
                if status == JobStatus::Cancelled {
                    // Nothing in a cancelled job is in flight or resumable.
                    let runs = job.run_count();
                    for ri in 0..runs {
                        self.in_flight.remove(&(ji, ri));
                        self.interrupted.remove(&(ji, ri));
                    }
                }
            }
            ChangeRef::ExternalStatusObserved { status, detail } => {
                if let Some(job) = self.job_mut(ji) {
                    job.external = Some(ExternalObservation {
                        status,
                        detail: detail.to_owned(),
                        at,
                    });
                }
            }
            change => {
                // validate() resolved a run for every remaining event.
                let Some(ri) = target.run else { return };
                self.mutate_run(ji, ri, lsn, at, change);
            }
        }
        if let Some(job) = self.job_mut(ji) {
            job.detail.note_event(job.last_lsn, lsn);
            job.last_lsn = lsn;
        }
    }

    /// The one job of views that hold exactly one, and no snapshot's,
    /// taken out of them.
    pub(crate) fn into_only_job(mut self) -> Option<JobView> {
        match (&self.base, self.jobs.len()) {
            (None, 1) => self.jobs.pop(),
            _ => None,
        }
    }

    fn mutate_run(
        &mut self,
        ji: usize,
        ri: usize,
        lsn: Lsn,
        at: crate::Timestamp,
        change: ChangeRef<'_>,
    ) {
        let payload = |bytes: &[u8]| PayloadRef {
            lsn,
            len: bytes.len() as u64,
        };
        let Some(job) = self.job_mut(ji) else { return };
        let job_id = job.id.clone();
        let (total_steps, usage_so_far) = (&mut job.total_steps, &mut job.usage);
        let Some(job) = job.detail.loaded.get_mut().and_then(|d| d.as_mut().ok()) else {
            return;
        };
        match change {
            ChangeRef::StepRecorded {
                checkpoint,
                usage,
                phase,
                payload: bytes,
                ..
            } => {
                *total_steps += 1;
                *usage_so_far = usage_so_far.plus(usage);
                let run = &mut job.runs[ri];
                run.steps += 1;
                run.usage = run.usage.plus(usage);
                let view = CheckpointView {
                    id: CheckpointId::from(checkpoint),
                    job: job_id,
                    run: run.id.clone(),
                    step: *total_steps,
                    delta: usage,
                    usage: *usage_so_far,
                    phase,
                    payload: payload(bytes),
                    at,
                };
                job.checkpoints.push(view);
                job.checkpoint_index.push_last(&job.checkpoints, |c| &c.id);
            }
            ChangeRef::PhaseCompleted {
                position,
                name,
                output,
                ..
            } => job.runs[ri].phases.push(PhaseView {
                position,
                name: name.to_owned(),
                output: payload(output),
                at,
            }),
            ChangeRef::Delegated { child, .. } => {
                let child = RunId::from(child);
                let parent = &mut job.runs[ri];
                parent.status = RunStatus::Delegating;
                parent.waiting_on_child = Some(child.clone());
                parent.children.push(child.clone());
                let child_run = new_run(
                    child,
                    job_id,
                    Some(parent.id.clone()),
                    at,
                    parent.code_version.clone(),
                    None,
                );
                let ci = job.runs.len();
                job.runs.push(child_run);
                job.run_index.push_last(&job.runs, |r| &r.id);
                self.in_flight.insert((ji, ci));
            }
            ChangeRef::ChildReturned { .. } => {
                let run = &mut job.runs[ri];
                run.waiting_on_child = None;
                if run.status == RunStatus::Delegating {
                    run.status = RunStatus::Running;
                }
            }
            ChangeRef::InputRequested { prompt, .. } => {
                let run = &mut job.runs[ri];
                run.status = RunStatus::AwaitingInput;
                run.awaiting_input = Some(prompt.to_owned());
            }
            ChangeRef::InputProvided { .. } => {
                let run = &mut job.runs[ri];
                run.awaiting_input = None;
                if run.status == RunStatus::AwaitingInput {
                    run.status = RunStatus::Running;
                }
            }
            ChangeRef::RunCompleted { output, .. } => {
                let run = &mut job.runs[ri];
                run.status = RunStatus::Completed;
                run.finished_at = Some(at);
                run.output = Some(payload(output));
                self.in_flight.remove(&(ji, ri));
            }
            ChangeRef::RunFailed {
                error,
                retryable,
                cause,
                ..
            } => {
                let run = &mut job.runs[ri];
                run.status = RunStatus::Failed;
                run.finished_at = Some(at);
                run.error = Some(RunError {
                    message: error.to_owned(),
                    retryable,
                    cause,
                });
                self.in_flight.remove(&(ji, ri));
                self.interrupted.remove(&(ji, ri));
            }
            ChangeRef::RunInterrupted { reason, .. } => {
                let run = &mut job.runs[ri];
                run.status = RunStatus::Interrupted;
                run.interrupted_by = Some(reason);
                self.in_flight.remove(&(ji, ri));
                self.interrupted.insert((ji, ri));
            }
            ChangeRef::RunResumed {
                from, code_version, ..
            } => {
                if let Some(from) = from {
                    let from = job.checkpoint_id(from);
                    job.runs[ri].resumed_from = Some(from);
                }
                let run = &mut job.runs[ri];
                // Resumable implies no pending input or child: it runs again.
                run.status = RunStatus::Running;
                // A clean shutdown is not a failed attempt: only resumes
                // after a crash or panic count toward `attempts_max`.
                if run.interrupted_by != Some(InterruptReason::Shutdown) {
                    run.recovery_attempts = run.recovery_attempts.saturating_add(1);
                }
                run.code_version = code_version.map(str::to_owned);
                self.interrupted.remove(&(ji, ri));
                self.in_flight.insert((ji, ri));
            }
            ChangeRef::JobCreated { .. }
            | ChangeRef::RunStarted { .. }
            | ChangeRef::JobFinished { .. }
            | ChangeRef::ExternalStatusObserved { .. } => {}
        }
    }

    fn set_job_status(&mut self, ji: usize, status: JobStatus) {
        let Some(job) = self.job_mut(ji) else { return };
        let old = job.status;
        job.status = status;
        self.index_status(ji, Some(old), status);
    }

    /// Moves job `ji` between the status and fingerprint indexes. The
    /// finished statuses' sets are kept only once they are built: until
    /// then, the scan that builds them reads the views as they are.
    fn index_status(&mut self, ji: usize, old: Option<JobStatus>, new: JobStatus) {
        let mut finished = self.finished.get_mut().and_then(|s| s.as_mut().ok());
        if let Some(old) = old {
            match (finished_index(old), finished.as_mut()) {
                (None, _) => drop(self.running.remove(&ji)),
                (Some(s), Some(sets)) => drop(sets[s].remove(&ji)),
                (Some(_), None) => {}
            }
        }
        match (finished_index(new), finished) {
            (None, _) => drop(self.running.insert(ji)),
            (Some(s), Some(sets)) => drop(sets[s].insert(ji)),
            (Some(_), None) => {}
        }
        let Some(fp) = self.job_loaded(ji).and_then(|j| j.fingerprint.clone()) else {
            return;
        };
        if new.is_finished() {
            if let Some(set) = self.unfinished_by_fingerprint.get_mut(&fp) {
                set.remove(&ji);
                if set.is_empty() {
                    self.unfinished_by_fingerprint.remove(&fp);
                }
            }
        } else {
            self.unfinished_by_fingerprint
                .entry(fp)
                .or_default()
                .insert(ji);
        }
    }

    /// Views restored from a snapshot: `base` holds its jobs as bytes.
    /// Materializes the jobs the head lists as unfinished (`unfinished`,
    /// in order) and indexes them by fingerprint; materializes the jobs
    /// with runs in flight or interrupted (`live`: job position and its
    /// live runs, in job order), decodes their details and checks them
    /// against that list; the indexes hand out those runs.
    pub(crate) fn from_base(
        mut base: Base,
        unfinished: &[u32],
        live: Vec<(usize, Vec<(u32, RunStatus)>)>,
        events_applied: u64,
        last_lsn: Option<Lsn>,
    ) -> Result<Self, SnapshotError> {
        let unreadable = |e: DetailError| SnapshotError::Malformed {
            reason: e.to_string(),
        };
        let mut state = Projections {
            events_applied,
            last_lsn,
            ..Projections::default()
        };
        for &ji in unfinished {
            let ji = ji as usize;
            // Materializing checks that the record says it is unfinished.
            let job = base.get(ji).map_err(unreadable)?;
            state.running.insert(ji);
            if let Some(fp) = &job.fingerprint {
                state
                    .unfinished_by_fingerprint
                    .entry(fp.clone())
                    .or_default()
                    .insert(ji);
            }
        }
        for (ji, runs) in live {
            base.get(ji).map_err(unreadable)?;
            let Some(job) = base.get_mut(ji) else {
                continue;
            };
            // Decoded now, and checked against the runs the summary lists:
            // a detail still lazy afterwards has no live runs.
            if let Some(lazy) = &job.detail.lazy {
                let detail = crate::snapshot::decode_detail(job, lazy, &runs)
                    .map_err(SnapshotError::Detail)?;
                job.detail.loaded = OnceLock::from(Ok(detail));
            }
            // Nothing in a cancelled job is in flight or resumable.
            if job.status == JobStatus::Cancelled {
                continue;
            }
            for (ri, status) in runs {
                let ri = ri as usize;
                if status == RunStatus::Interrupted {
                    state.interrupted.insert((ji, ri));
                } else {
                    state.in_flight.insert((ji, ri));
                }
            }
        }
        state.base = Some(base);
        Ok(state)
    }
}

/// Where a finished status's set is in [`Projections`]'s `finished`;
/// `None` for running.
fn finished_index(status: JobStatus) -> Option<usize> {
    match status {
        JobStatus::Running => None,
        JobStatus::Completed => Some(0),
        JobStatus::Failed => Some(1),
        JobStatus::Cancelled => Some(2),
    }
}

/// The decoded detail of a job that `validate` accepted an event for:
/// validation decoded it (or refused the event), so this is `Some`.
fn validated_detail(job: &mut JobView) -> Option<&mut JobDetail> {
    job.detail.loaded.get_mut().and_then(|d| d.as_mut().ok())
}

/// Why a resume of `run` would be refused, or `None` if it would be
/// accepted. Shared by the `RunResumed` transition and
/// [`Projections::resumability`], so the two can never disagree.
fn resume_block(
    job: &JobView,
    detail: &JobDetail,
    run: &RunView,
    code_version: Option<&str>,
    attempts_max: u32,
    allow_code_change: bool,
) -> Option<BlockedReason> {
    if job.status == JobStatus::Cancelled {
        return Some(BlockedReason::JobCancelled);
    }
    match run.status {
        RunStatus::Interrupted => {}
        RunStatus::Running | RunStatus::AwaitingInput | RunStatus::Delegating => {
            return Some(BlockedReason::InFlight);
        }
        RunStatus::Completed => return Some(BlockedReason::Finished),
        RunStatus::Failed => {
            let exhausted = run
                .error
                .as_ref()
                .is_some_and(|e| e.cause == FailCause::RecoveryAttemptsExhausted);
            return Some(if exhausted {
                BlockedReason::AttemptsExhausted {
                    attempts: run.recovery_attempts,
                    max: attempts_max,
                }
            } else {
                BlockedReason::Finished
            });
        }
    }
    if job.status.is_finished() {
        return Some(BlockedReason::JobFinished);
    }
    if run.awaiting_input.is_some() {
        return Some(BlockedReason::AwaitingInput);
    }
    if let Some(child) = &run.waiting_on_child {
        return Some(BlockedReason::WaitingForChild {
            child: child.clone(),
        });
    }
    if let Some(parent) = &run.parent
        && detail.run(parent).is_none_or(|p| p.status.is_terminal())
    {
        return Some(BlockedReason::ParentFinished);
    }
    if run.interrupted_by != Some(InterruptReason::Shutdown)
        && run.recovery_attempts >= attempts_max
    {
        return Some(BlockedReason::AttemptsExhausted {
            attempts: run.recovery_attempts,
            max: attempts_max,
        });
    }
    if !allow_code_change && run.code_version.as_deref() != code_version {
        return Some(BlockedReason::CodeVersionDiffers {
            recorded: run.code_version.clone(),
            current: code_version.map(str::to_owned),
        });
    }
    None
}

fn new_run(
    id: RunId,
    job: JobId,
    parent: Option<RunId>,
    at: crate::Timestamp,
    code_version: Option<String>,
    resumed_from: Option<CheckpointId>,
) -> RunView {
    RunView {
        id,
        job,
        parent,
        children: Vec::new(),
        status: RunStatus::Running,
        started_at: at,
        finished_at: None,
        code_version,
        resumed_from,
        phases: Vec::new(),
        recovery_attempts: 0,
        awaiting_input: None,
        waiting_on_child: None,
        steps: 0,
        usage: Usage::default(),
        interrupted_by: None,
        error: None,
        output: None,
    }
}
