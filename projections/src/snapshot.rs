//! The snapshot form of [`Projections`]: the views, without what can be
//! derived from them, behind a version.
//!
//! Version 2 (postcard shown; any serde format works the same way):
//!
//! ```text
//! snapshot   = version: u8 (2) ‖ events_applied: u64 ‖ last_lsn: Option<u64>
//!              ‖ jobs: seq of job
//! job        = id ‖ key ‖ input: PayloadRef ‖ fingerprint ‖ status
//!              ‖ started_at ‖ finished_at ‖ finish ‖ external
//!              ‖ runs: seq of run ‖ checkpoints: seq of checkpoint ‖ last_lsn
//! run        = the fields of RunView in order, without `job`
//! checkpoint = id ‖ run: u32 (position of its run in the job's runs)
//!              ‖ delta: Usage ‖ phase ‖ payload: PayloadRef ‖ at
//! ```
//!
//! Left out because the log's transitions fix them: a run's and a
//! checkpoint's job (the job holding it), a checkpoint's run id (its run's
//! position instead), a checkpoint's step (its position + 1) and cumulative
//! usage (the saturating sum of the deltas up to it), and a job's
//! `total_steps` and `usage` (the same over all its checkpoints). Fewer
//! strings to decode and allocate is what makes a restore fast; fewer
//! stored facts is fewer ways for a snapshot to disagree with itself.
//!
//! The version is read before anything else, so a snapshot of another
//! version is refused by number, never misread. Version 1 (postcard of the
//! whole views) is refused like any other: the engine then replays the log.

use crate::event::InterruptReason;
use crate::state::Projections;
use crate::types::{CheckpointId, JobId, Lsn, PayloadRef, RunId, Timestamp, Usage};
use crate::view::{
    CheckpointView, ExternalObservation, FinishReason, IdIndex, JobStatus, JobView, PhaseView,
    RunError, RunStatus, RunView,
};
use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

/// Version of the snapshot form of the views. Bumped when that form
/// changes; a snapshot of any other version is refused.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 2;

/// The version byte: refuses any other version as soon as it is read.
struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(SNAPSHOT_FORMAT_VERSION)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let version = u8::deserialize(deserializer)?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(de::Error::custom(format_args!(
                "snapshot format version {version} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION})"
            )));
        }
        Ok(Version)
    }
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    version: Version,
    events_applied: u64,
    last_lsn: Option<Lsn>,
    jobs: Seq<'a, JobView>,
}

#[derive(Deserialize)]
struct SnapshotIn {
    // Declared first so it is decoded first: nothing after it is looked at
    // under another version.
    #[allow(dead_code)]
    version: Version,
    events_applied: u64,
    last_lsn: Option<Lsn>,
    jobs: Vec<JobIn>,
}

/// A slice serialized item by item through its snapshot form.
struct Seq<'a, T>(&'a [T]);

impl Serialize for Seq<'_, JobView> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(JobOut))
    }
}

impl Serialize for Seq<'_, RunView> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(RunOut))
    }
}

/// A job's checkpoints, with the job to find each one's run in.
struct Checkpoints<'a>(&'a JobView);

impl Serialize for Checkpoints<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let job = self.0;
        let mut out = Vec::with_capacity(job.checkpoints.len());
        for cp in &job.checkpoints {
            // Every checkpoint was recorded by a run of its job.
            let run = job
                .run_position(cp.run.as_str())
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| {
                    ser::Error::custom(format_args!(
                        "checkpoint {} of job {} names run {}, not a run of the job",
                        cp.id, job.id, cp.run
                    ))
                })?;
            out.push(CheckpointOut {
                id: &cp.id,
                run,
                delta: cp.delta,
                phase: cp.phase,
                payload: cp.payload,
                at: cp.at,
            });
        }
        serializer.collect_seq(out)
    }
}

struct JobOut<'a>(&'a JobView);

impl Serialize for JobOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let j = self.0;
        JobFields {
            id: &j.id,
            key: &j.key,
            input: j.input,
            fingerprint: &j.fingerprint,
            status: j.status,
            started_at: j.started_at,
            finished_at: j.finished_at,
            finish: &j.finish,
            external: &j.external,
            runs: Seq(&j.runs),
            checkpoints: Checkpoints(j),
            last_lsn: j.last_lsn,
        }
        .serialize(serializer)
    }
}

#[derive(Serialize)]
struct JobFields<'a> {
    id: &'a JobId,
    key: &'a str,
    input: PayloadRef,
    fingerprint: &'a Option<String>,
    status: JobStatus,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    finish: &'a Option<FinishReason>,
    external: &'a Option<ExternalObservation>,
    runs: Seq<'a, RunView>,
    checkpoints: Checkpoints<'a>,
    last_lsn: Lsn,
}

#[derive(Deserialize)]
struct JobIn {
    id: JobId,
    key: String,
    input: PayloadRef,
    fingerprint: Option<String>,
    status: JobStatus,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    finish: Option<FinishReason>,
    external: Option<ExternalObservation>,
    runs: Vec<RunIn>,
    checkpoints: Vec<CheckpointIn>,
    last_lsn: Lsn,
}

struct RunOut<'a>(&'a RunView);

impl Serialize for RunOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        RunFields {
            id: &r.id,
            parent: &r.parent,
            children: &r.children,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            code_version: &r.code_version,
            resumed_from: &r.resumed_from,
            phases: &r.phases,
            recovery_attempts: r.recovery_attempts,
            awaiting_input: &r.awaiting_input,
            waiting_on_child: &r.waiting_on_child,
            steps: r.steps,
            usage: r.usage,
            interrupted_by: r.interrupted_by,
            error: &r.error,
            output: r.output,
        }
        .serialize(serializer)
    }
}

#[derive(Serialize)]
struct RunFields<'a> {
    id: &'a RunId,
    parent: &'a Option<RunId>,
    children: &'a [RunId],
    status: RunStatus,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    code_version: &'a Option<String>,
    resumed_from: &'a Option<CheckpointId>,
    phases: &'a [PhaseView],
    recovery_attempts: u32,
    awaiting_input: &'a Option<String>,
    waiting_on_child: &'a Option<RunId>,
    steps: u64,
    usage: Usage,
    interrupted_by: Option<InterruptReason>,
    error: &'a Option<RunError>,
    output: Option<PayloadRef>,
}

#[derive(Deserialize)]
struct RunIn {
    id: RunId,
    parent: Option<RunId>,
    children: Vec<RunId>,
    status: RunStatus,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    code_version: Option<String>,
    resumed_from: Option<CheckpointId>,
    phases: Vec<PhaseView>,
    recovery_attempts: u32,
    awaiting_input: Option<String>,
    waiting_on_child: Option<RunId>,
    steps: u64,
    usage: Usage,
    interrupted_by: Option<InterruptReason>,
    error: Option<RunError>,
    output: Option<PayloadRef>,
}

#[derive(Serialize)]
struct CheckpointOut<'a> {
    id: &'a CheckpointId,
    run: u32,
    delta: Usage,
    phase: Option<u32>,
    payload: PayloadRef,
    at: Timestamp,
}

#[derive(Deserialize)]
struct CheckpointIn {
    id: CheckpointId,
    run: u32,
    delta: Usage,
    phase: Option<u32>,
    payload: PayloadRef,
    at: Timestamp,
}

impl Serialize for Projections {
    /// The snapshot form (see the module docs of `snapshot.rs`): the views
    /// without what they imply, behind a version. Indexes are rebuilt on
    /// restore.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SnapshotOut {
            version: Version,
            events_applied: self.events_applied(),
            last_lsn: self.last_lsn(),
            jobs: Seq(self.job_views()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Projections {
    /// Restores a snapshot, refusing another version, a checkpoint naming
    /// a run its job does not have, or ids that collide.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let snapshot = SnapshotIn::deserialize(deserializer)?;
        let mut jobs = Vec::with_capacity(snapshot.jobs.len());
        for job in snapshot.jobs {
            jobs.push(restore_job(job).map_err(de::Error::custom)?);
        }
        Projections::from_views(jobs, snapshot.events_applied, snapshot.last_lsn)
            .map_err(de::Error::custom)
    }
}

/// Puts back what the snapshot left out, and the job's run and checkpoint
/// indexes, refusing duplicate ids.
fn restore_job(job: JobIn) -> Result<JobView, String> {
    let mut view = JobView {
        id: job.id,
        key: job.key,
        input: job.input,
        fingerprint: job.fingerprint,
        status: job.status,
        total_steps: 0,
        usage: Usage::default(),
        started_at: job.started_at,
        finished_at: job.finished_at,
        finish: job.finish,
        external: job.external,
        runs: Vec::with_capacity(job.runs.len()),
        checkpoints: Vec::with_capacity(job.checkpoints.len()),
        last_lsn: job.last_lsn,
        run_index: IdIndex::default(),
        checkpoint_index: IdIndex::default(),
    };
    for run in job.runs {
        if view.run_position(run.id.as_str()).is_some() {
            return Err(format!("run {} appears twice in job {}", run.id, view.id));
        }
        view.runs.push(RunView {
            id: run.id,
            job: view.id.clone(),
            parent: run.parent,
            children: run.children,
            status: run.status,
            started_at: run.started_at,
            finished_at: run.finished_at,
            code_version: run.code_version,
            resumed_from: run.resumed_from,
            phases: run.phases,
            recovery_attempts: run.recovery_attempts,
            awaiting_input: run.awaiting_input,
            waiting_on_child: run.waiting_on_child,
            steps: run.steps,
            usage: run.usage,
            interrupted_by: run.interrupted_by,
            error: run.error,
            output: run.output,
        });
        view.run_index.push_last(&view.runs, |r| &r.id);
    }
    for cp in job.checkpoints {
        if view.checkpoint_position(cp.id.as_str()).is_some() {
            return Err(format!(
                "checkpoint {} appears twice in job {}",
                cp.id, view.id
            ));
        }
        let Some(run) = usize::try_from(cp.run).ok().and_then(|i| view.runs.get(i)) else {
            return Err(format!(
                "checkpoint {} of job {} names run {} of {}",
                cp.id,
                view.id,
                cp.run,
                view.runs.len()
            ));
        };
        // The same sums the StepRecorded transition makes.
        view.total_steps = view.total_steps.saturating_add(1);
        view.usage = view.usage.plus(cp.delta);
        view.checkpoints.push(CheckpointView {
            id: cp.id,
            job: view.id.clone(),
            run: run.id.clone(),
            step: view.total_steps,
            delta: cp.delta,
            usage: view.usage,
            phase: cp.phase,
            payload: cp.payload,
            at: cp.at,
        });
        view.checkpoint_index
            .push_last(&view.checkpoints, |c| &c.id);
    }
    Ok(view)
}
