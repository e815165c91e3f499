//! The snapshot form of [`Projections`]: job summaries first, then each
//! job's runs and checkpoints as a separate detail, so that a restore
//! decodes the summaries and leaves every detail as bytes until it is
//! first used.
//!
//! Version 3, in a [`SnapshotCodec`]'s serde format (postcard in the
//! engine):
//!
//! ```text
//! body       = version: u8 (3) ‖ head ‖ details
//! head       = events_applied: u64 ‖ last_lsn: Option<u64> ‖ jobs: seq of job
//! job        = id ‖ key ‖ input: PayloadRef ‖ fingerprint ‖ status
//!              ‖ total_steps: u64 ‖ usage: Usage ‖ started_at ‖ finished_at
//!              ‖ finish ‖ external ‖ last_lsn ‖ runs: u32 (how many)
//!              ‖ live: seq of (u32 position, RunStatus)
//!              ‖ detail_len: u64
//! details    = every job's detail, in job order, each detail_len bytes,
//!              nothing after the last
//! detail     = runs: seq of run ‖ checkpoints: seq of checkpoint
//! run        = the fields of RunView in order, without `job`
//! checkpoint = id ‖ run: u32 (position of its run in the job's runs)
//!              ‖ delta: Usage ‖ phase ‖ payload: PayloadRef ‖ at
//! ```
//!
//! `live` lists the runs that are in flight or interrupted, in position
//! order: the indexes of runs a crash interrupted and runs to interrupt
//! at open are rebuilt from it without decoding any detail (the jobs it
//! names are decoded at restore, since the engine reads their runs at
//! open). `runs`, `total_steps` and `usage` answer a job listing.
//!
//! Left out because the log's transitions fix them: a run's and a
//! checkpoint's job (the job holding it), a checkpoint's run id (its run's
//! position instead), a checkpoint's step (its position + 1) and cumulative
//! usage (the saturating sum of the deltas up to it).
//!
//! What a detail says and what its summary says must agree: when a detail
//! is decoded, its runs' count, its runs in flight or interrupted, and the
//! sums of its checkpoints' deltas are compared with the summary, and any
//! difference is a [`DetailError`], as is a detail that does not decode or
//! has bytes left over. A restore checks the head whole: the version, every
//! `detail_len` against the bytes left, the details filling the body
//! exactly, `live` positions in order, below `runs` and naming a live
//! status, job ids unique.
//!
//! The version is read before anything else, so a snapshot of another
//! version is refused by number, never misread. Versions 1 (postcard of the
//! whole views) and 2 (one record per job, everything decoded at restore)
//! are refused like any other: the engine then replays the log.

use crate::error::DetailError;
use crate::event::InterruptReason;
use crate::state::Projections;
use crate::types::{CheckpointId, JobId, Lsn, PayloadRef, RunId, Timestamp, Usage};
use crate::view::{
    CheckpointView, Detail, ExternalObservation, FinishReason, IdIndex, JobDetail, JobHead,
    JobStatus, JobView, LazyDetail, PhaseView, RunError, RunStatus, RunView,
};
use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

/// Version of the snapshot form of the views. Bumped when that form
/// changes; a snapshot of any other version is refused.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 3;

/// The bytes of a snapshot file, shared by the views restored from it
/// while any job's detail is undecoded: a `Vec<u8>` read from the file, or
/// a map of it (the engine's choice; these bytes are only read).
pub type SnapshotFile = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// The serde format a snapshot body is written in. The engine uses
/// postcard; the projections crate itself depends on serde only.
pub trait SnapshotCodec: 'static {
    /// Appends the encoding of `value` to `out`.
    fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String>;
    /// Decodes a value from the front of `bytes`, returning it and how many
    /// bytes it took.
    fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String>;
    /// Decodes a value from the front of `bytes` through `seed`, returning
    /// it and how many bytes it took.
    fn decode_prefix_seed<'de, S: DeserializeSeed<'de>>(
        seed: S,
        bytes: &'de [u8],
    ) -> Result<(S::Value, usize), String>;
}

/// A snapshot body that cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The body is of another version of the snapshot form.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// The body does not decode, or its parts do not fit together.
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The detail of a job with runs in flight or interrupted (decoded at
    /// restore) cannot be read.
    Detail(DetailError),
    /// The body cannot be written: a job's detail cannot be read.
    Unwritable(DetailError),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::UnsupportedVersion { found } => write!(
                f,
                "snapshot body version {found} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION})"
            ),
            SnapshotError::Malformed { reason } => {
                write!(f, "snapshot body is malformed: {reason}")
            }
            SnapshotError::Detail(e) => write!(f, "{e}"),
            SnapshotError::Unwritable(e) => write!(f, "cannot write a snapshot: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

fn malformed(reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Malformed {
        reason: reason.into(),
    }
}

/// Decodes one job's detail bytes (the whole of them).
pub(crate) type DecodeDetail = fn(&[u8]) -> Result<DetailIn, String>;

fn decode_detail_with<C: SnapshotCodec>(bytes: &[u8]) -> Result<DetailIn, String> {
    let (detail, used) = C::decode_prefix::<DetailIn>(bytes)?;
    if used != bytes.len() {
        return Err(format!(
            "{} bytes left after the detail",
            bytes.len().saturating_sub(used)
        ));
    }
    Ok(detail)
}

#[derive(Serialize)]
struct HeadOut<'a> {
    events_applied: u64,
    last_lsn: Option<Lsn>,
    jobs: &'a [JobOut<'a>],
}

#[derive(Serialize)]
struct JobOut<'a> {
    id: &'a JobId,
    key: &'a str,
    input: PayloadRef,
    fingerprint: &'a Option<String>,
    status: JobStatus,
    total_steps: u64,
    usage: Usage,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    finish: &'a Option<FinishReason>,
    external: &'a Option<ExternalObservation>,
    last_lsn: Lsn,
    runs: u32,
    live: Vec<(u32, RunStatus)>,
    detail_len: u64,
}

#[derive(Deserialize)]
struct JobIn {
    id: JobId,
    key: String,
    input: PayloadRef,
    fingerprint: Option<String>,
    status: JobStatus,
    total_steps: u64,
    usage: Usage,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    finish: Option<FinishReason>,
    external: Option<ExternalObservation>,
    last_lsn: Lsn,
    runs: u32,
    live: Vec<(u32, RunStatus)>,
    detail_len: u64,
}

#[derive(Serialize)]
struct DetailOut<'a> {
    runs: Runs<'a>,
    checkpoints: Vec<CheckpointOut<'a>>,
}

/// A job's runs and checkpoints, as decoded from a snapshot.
#[derive(Deserialize)]
pub(crate) struct DetailIn {
    runs: Vec<RunIn>,
    checkpoints: Vec<CheckpointIn>,
}

/// A job's runs, serialized through their snapshot form.
struct Runs<'a>(&'a [RunView]);

impl Serialize for Runs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(RunOut))
    }
}

/// Runs in flight or interrupted, by position, as `live` lists them.
fn live_runs(runs: &[RunView]) -> Result<Vec<(u32, RunStatus)>, String> {
    let mut live = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if run.status.is_in_flight() || run.status == RunStatus::Interrupted {
            let i =
                u32::try_from(i).map_err(|_| format!("run {} past position u32::MAX", run.id))?;
            live.push((i, run.status));
        }
    }
    Ok(live)
}

/// The detail of `job` in its snapshot form.
fn detail_out<'a>(job: &JobView, detail: &'a JobDetail) -> Result<DetailOut<'a>, String> {
    let mut checkpoints = Vec::with_capacity(detail.checkpoints.len());
    for cp in &detail.checkpoints {
        // Every checkpoint was recorded by a run of its job.
        let run = detail
            .run_position(cp.run.as_str())
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| {
                format!(
                    "checkpoint {} of job {} names run {}, not a run of the job",
                    cp.id, job.id, cp.run
                )
            })?;
        checkpoints.push(CheckpointOut {
            id: &cp.id,
            run,
            delta: cp.delta,
            phase: cp.phase,
            payload: cp.payload,
            at: cp.at,
        });
    }
    Ok(DetailOut {
        runs: Runs(&detail.runs),
        checkpoints,
    })
}

impl Projections {
    /// Encodes the views in the snapshot form (see the module docs of
    /// `snapshot.rs`) with codec `C`. A job whose detail was never decoded
    /// since it was restored with the same codec is copied as the bytes it
    /// was restored from.
    pub fn to_snapshot<C: SnapshotCodec>(&self) -> Result<Vec<u8>, SnapshotError> {
        let unwritable = |job: &JobView, reason: String| {
            SnapshotError::Unwritable(DetailError {
                job: job.id.clone(),
                reason,
            })
        };
        let mut details = Vec::new();
        let mut jobs = Vec::with_capacity(self.job_count());
        for job in self.jobs() {
            let before = details.len();
            let (runs, live) = match (job.loaded_detail(), job.detail.lazy.as_deref()) {
                (None, Some(lazy)) if lazy.format == TypeId::of::<C>() => {
                    let bytes = (*lazy.file)
                        .as_ref()
                        .get(lazy.start..lazy.end)
                        .ok_or_else(|| unwritable(job, "detail out of its body".into()))?;
                    details.extend_from_slice(bytes);
                    (lazy.run_count, lazy.live.clone())
                }
                _ => {
                    let detail = job.detail().map_err(SnapshotError::Unwritable)?;
                    let out = detail_out(job, detail).map_err(|e| unwritable(job, e))?;
                    C::encode_into(&out, &mut details).map_err(|e| unwritable(job, e))?;
                    let runs = u32::try_from(detail.runs.len())
                        .map_err(|_| unwritable(job, "more than u32::MAX runs".into()))?;
                    (
                        runs,
                        live_runs(&detail.runs).map_err(|e| unwritable(job, e))?,
                    )
                }
            };
            jobs.push(JobOut {
                id: &job.id,
                key: &job.key,
                input: job.input,
                fingerprint: &job.fingerprint,
                status: job.status,
                total_steps: job.total_steps,
                usage: job.usage,
                started_at: job.started_at,
                finished_at: job.finished_at,
                finish: &job.finish,
                external: &job.external,
                last_lsn: job.last_lsn,
                runs,
                live,
                detail_len: (details.len() - before) as u64,
            });
        }
        let mut body = Vec::with_capacity(details.len() + 64 * jobs.len() + 32);
        C::encode_into(&SNAPSHOT_FORMAT_VERSION, &mut body).map_err(malformed)?;
        C::encode_into(
            &HeadOut {
                events_applied: self.events_applied(),
                last_lsn: self.last_lsn(),
                jobs: &jobs,
            },
            &mut body,
        )
        .map_err(malformed)?;
        body.extend_from_slice(&details);
        Ok(body)
    }

    /// Restores views from a snapshot body written by
    /// [`Projections::to_snapshot`] with codec `C`: the body is
    /// `file[body_at..]` (the whole file is taken so that the body need not
    /// be copied out of it). Decodes the version and the job summaries,
    /// checks how the parts fit (module docs), and keeps each job's runs
    /// and checkpoints as bytes of the file until first used — except for
    /// jobs with runs in flight or interrupted, decoded now.
    pub fn from_snapshot<C: SnapshotCodec>(
        file: Vec<u8>,
        body_at: usize,
    ) -> Result<Self, SnapshotError> {
        Self::from_snapshot_file::<C>(Arc::new(file), body_at)
    }

    /// [`Projections::from_snapshot`] on shared bytes, such as a map of the
    /// file: the views keep `file` while any job's detail is undecoded.
    pub fn from_snapshot_file<C: SnapshotCodec>(
        file: SnapshotFile,
        body_at: usize,
    ) -> Result<Self, SnapshotError> {
        let whole: &[u8] = (*file).as_ref();
        let body = whole
            .get(body_at..)
            .ok_or_else(|| malformed(format!("no body at byte {body_at}")))?;
        let (version, used) = C::decode_prefix::<u8>(body).map_err(malformed)?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion { found: version });
        }
        let rest = body.get(used..).unwrap_or_default();
        let seed = HeadSeed::<C> {
            codec: PhantomData,
            file: &file,
            left: rest.len(),
        };
        let (head, head_len) = C::decode_prefix_seed(seed, rest).map_err(malformed)?;
        let head = head?;
        // The details begin right after the head; the offsets the head
        // decode kept are from there, and are made offsets into `file`.
        let details_at = body_at.saturating_add(used).saturating_add(head_len);
        let details_len = whole.len().saturating_sub(details_at);
        if head.details_len > details_len {
            return Err(malformed(format!(
                "the jobs claim {} detail bytes, {details_len} are left",
                head.details_len
            )));
        }
        if head.details_len != details_len {
            return Err(malformed(format!(
                "{} bytes after the last job's detail",
                details_len - head.details_len
            )));
        }
        let mut jobs = head.jobs;
        for job in &mut jobs {
            if let Some(lazy) = job.detail.lazy.as_deref_mut() {
                lazy.start += details_at;
                lazy.end += details_at;
            }
        }
        Projections::from_views(jobs, head.events_applied, head.last_lsn)
    }
}

/// The head of a body as restored: jobs with their details still bytes at
/// offsets from the start of the details, and how many detail bytes the
/// jobs claim in all.
struct Head {
    events_applied: u64,
    last_lsn: Option<Lsn>,
    jobs: Vec<JobView>,
    details_len: usize,
}

/// Decodes the head straight into job views, without a list of decoded
/// summaries in between. The value is the head, or what is wrong with it:
/// a malformed job stops the decode with its own message (a serde error
/// would lose it).
struct HeadSeed<'a, C> {
    codec: PhantomData<fn() -> C>,
    file: &'a SnapshotFile,
    /// Bytes from the head's start to the body's end: no job can claim
    /// more detail bytes than that.
    left: usize,
}

impl<'de, C: SnapshotCodec> DeserializeSeed<'de> for HeadSeed<'_, C> {
    type Value = Result<Head, SnapshotError>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        const FIELDS: &[&str] = &["events_applied", "last_lsn", "jobs"];
        d.deserialize_struct("Head", FIELDS, self)
    }
}

impl<'de, C: SnapshotCodec> Visitor<'de> for HeadSeed<'_, C> {
    type Value = Result<Head, SnapshotError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a snapshot head")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let events_applied: u64 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let last_lsn: Option<Lsn> = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        let jobs = seq
            .next_element_seed(JobsSeed::<C> {
                codec: PhantomData,
                file: self.file,
                left: self.left,
            })?
            .ok_or_else(|| A::Error::invalid_length(2, &self))?;
        Ok(jobs.map(|(jobs, details_len)| Head {
            events_applied,
            last_lsn,
            jobs,
            details_len,
        }))
    }
}

/// The head's job list, each job made a view as it is decoded.
struct JobsSeed<'a, C> {
    codec: PhantomData<fn() -> C>,
    file: &'a SnapshotFile,
    left: usize,
}

impl<'de, C: SnapshotCodec> DeserializeSeed<'de> for JobsSeed<'_, C> {
    type Value = Result<(Vec<JobView>, usize), SnapshotError>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, C: SnapshotCodec> Visitor<'de> for JobsSeed<'_, C> {
    type Value = Result<(Vec<JobView>, usize), SnapshotError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of job summaries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A count from the file is a claim, not a fact: reserve no more
        // than a few thousand up front and let the list grow.
        let mut jobs = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        // Detail bytes claimed so far: offsets from the start of the
        // details. Each claim is checked against what the body has left.
        let mut offset = 0usize;
        while let Some(job) = seq.next_element::<JobIn>()? {
            match job_view::<C>(job, self.file, offset, self.left) {
                Ok(view) => {
                    if let Some(lazy) = view.detail.lazy.as_deref() {
                        offset = lazy.end;
                    }
                    jobs.push(view);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok((jobs, offset)))
    }
}

/// A decoded job summary as a view, its detail the `detail_len` bytes at
/// `offset` from the start of the details, checked to lie below `left`.
fn job_view<C: SnapshotCodec>(
    job: JobIn,
    file: &SnapshotFile,
    offset: usize,
    left: usize,
) -> Result<JobView, SnapshotError> {
    let remaining = left.saturating_sub(offset);
    let len = usize::try_from(job.detail_len)
        .ok()
        .filter(|&len| len <= remaining)
        .ok_or_else(|| {
            malformed(format!(
                "job {} claims {} detail bytes, at most {remaining} are left",
                job.id, job.detail_len
            ))
        })?;
    let mut last = None;
    for &(position, status) in &job.live {
        let live = status.is_in_flight() || status == RunStatus::Interrupted;
        if !live || position >= job.runs || last.is_some_and(|l| l >= position) {
            return Err(malformed(format!(
                "job {} lists run {position} ({status}) as live, of {} runs",
                job.id, job.runs
            )));
        }
        last = Some(position);
    }
    let lazy = LazyDetail {
        file: Arc::clone(file),
        start: offset,
        end: offset + len,
        decode: decode_detail_with::<C>,
        format: TypeId::of::<C>(),
        run_count: job.runs,
        live: job.live,
    };
    let head = JobHead {
        id: job.id,
        key: job.key,
        input: job.input,
        fingerprint: job.fingerprint,
        status: job.status,
        total_steps: job.total_steps,
        usage: job.usage,
        started_at: job.started_at,
        finished_at: job.finished_at,
        finish: job.finish,
        external: job.external,
        last_lsn: job.last_lsn,
    };
    Ok(head.into_view(Detail {
        loaded: OnceLock::new(),
        lazy: Some(Box::new(lazy)),
    }))
}

/// Decodes the detail of `job` from its bytes, puts back what the snapshot
/// left out and the run and checkpoint indexes, and checks it against the
/// job's summary. The summary has not changed since the restore: every
/// event about a job decodes its detail before it changes anything.
pub(crate) fn decode_detail(job: &JobView, lazy: &LazyDetail) -> Result<JobDetail, DetailError> {
    let fail = |reason: String| DetailError {
        job: job.id.clone(),
        reason,
    };
    let bytes = (*lazy.file)
        .as_ref()
        .get(lazy.start..lazy.end)
        .ok_or_else(|| fail("detail out of its body".into()))?;
    let detail = (lazy.decode)(bytes).map_err(|e| fail(format!("does not decode: {e}")))?;
    let mut view = JobDetail {
        runs: Vec::with_capacity(detail.runs.len()),
        checkpoints: Vec::with_capacity(detail.checkpoints.len()),
        run_index: IdIndex::default(),
        checkpoint_index: IdIndex::default(),
    };
    for run in detail.runs {
        if view.run_position(run.id.as_str()).is_some() {
            return Err(fail(format!("run {} appears twice", run.id)));
        }
        view.runs.push(RunView {
            id: run.id,
            job: job.id.clone(),
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
    let mut total_steps = 0u64;
    let mut usage = Usage::default();
    for cp in detail.checkpoints {
        if view.checkpoint_position(cp.id.as_str()).is_some() {
            return Err(fail(format!("checkpoint {} appears twice", cp.id)));
        }
        let Some(run) = usize::try_from(cp.run).ok().and_then(|i| view.runs.get(i)) else {
            return Err(fail(format!(
                "checkpoint {} names run {} of {}",
                cp.id,
                cp.run,
                view.runs.len()
            )));
        };
        // The same sums the StepRecorded transition makes.
        total_steps = total_steps.saturating_add(1);
        usage = usage.plus(cp.delta);
        view.checkpoints.push(CheckpointView {
            id: cp.id,
            job: job.id.clone(),
            run: run.id.clone(),
            step: total_steps,
            delta: cp.delta,
            usage,
            phase: cp.phase,
            payload: cp.payload,
            at: cp.at,
        });
        view.checkpoint_index
            .push_last(&view.checkpoints, |c| &c.id);
    }
    if total_steps != job.total_steps || usage != job.usage {
        return Err(fail(format!(
            "its checkpoints sum to {total_steps} steps and {usage:?}, its summary says {} and {:?}",
            job.total_steps, job.usage
        )));
    }
    if view.runs.len() != lazy.run_count as usize {
        return Err(fail(format!(
            "{} runs, its summary says {}",
            view.runs.len(),
            lazy.run_count
        )));
    }
    let live = live_runs(&view.runs).map_err(fail)?;
    if live != lazy.live {
        return Err(fail(format!(
            "runs in flight or interrupted {live:?}, its summary says {:?}",
            lazy.live
        )));
    }
    Ok(view)
}

struct RunOut<'a>(&'a RunView);

impl Serialize for RunOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
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
