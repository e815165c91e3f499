//! The views a host asks about: jobs, runs, checkpoints, resumability.
//!
//! Views hold no payload bytes, only [`PayloadRef`]s into the log.

use crate::error::DetailError;
use crate::event::{ExternalStatus, FailCause, InterruptReason};
use crate::event_lsns::{EventLsns, EventSource, push_varint, read_varint};
use crate::snapshot::SnapshotFile;
use crate::types::{CheckpointId, JobId, Lsn, PayloadRef, RunId, Timestamp, Usage};
use serde::{Deserialize, Serialize};
use std::any::TypeId;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Created and not finished: runs may start, step, wait or be interrupted.
    Running,
    /// Finished successfully; may be continued with a new run.
    Completed,
    /// Finished with a failure; may be continued with a new run.
    Failed,
    /// Cancelled: final, no event is accepted afterwards.
    Cancelled,
}

impl JobStatus {
    /// Every status, in a fixed order.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Whether the job has finished (completed, failed or cancelled).
    pub fn is_finished(self) -> bool {
        self != JobStatus::Running
    }

    /// A stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    /// Executing: it may record steps and phases, delegate, wait or finish.
    Running,
    /// Waiting for outside input.
    AwaitingInput,
    /// Waiting for a child run it delegated to.
    Delegating,
    /// Stopped without finishing (shutdown, crash, panic); may be resumed.
    Interrupted,
    /// Finished successfully. Terminal.
    Completed,
    /// Finished with a failure. Terminal.
    Failed,
}

impl RunStatus {
    /// Whether the run has finished (completed or failed).
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed)
    }

    /// Whether the run was in flight: executing or waiting, as a crash would
    /// find it.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::AwaitingInput | RunStatus::Delegating
        )
    }

    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::AwaitingInput => "awaiting_input",
            RunStatus::Delegating => "delegating",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a run can be resumed now, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resumability {
    /// A resume of this run would be accepted.
    Resumable,
    /// A resume would be refused, for this reason.
    Blocked {
        /// Why.
        reason: BlockedReason,
    },
}

impl Resumability {
    /// Whether the run is resumable.
    pub fn is_resumable(&self) -> bool {
        matches!(self, Resumability::Resumable)
    }
}

/// Why a run cannot be resumed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockedReason {
    /// The run is still in flight; nothing to resume.
    InFlight,
    /// The run finished (completed or failed).
    Finished,
    /// The run waits for outside input; provide it first.
    AwaitingInput,
    /// The run waits for a child run to return.
    WaitingForChild {
        /// The child.
        child: RunId,
    },
    /// The run was failed because its recovery attempts ran out, or a resume
    /// now would exceed the bound.
    AttemptsExhausted {
        /// Resumes already made.
        attempts: u32,
        /// The bound.
        max: u32,
    },
    /// The run's parent finished; nobody waits for this run's result.
    ParentFinished,
    /// The job finished; continue it with a new run instead.
    JobFinished,
    /// The job was cancelled.
    JobCancelled,
    /// The run was started by other code than the resuming host's.
    CodeVersionDiffers {
        /// What the run was started with.
        recorded: Option<String>,
        /// What the resuming host runs.
        current: Option<String>,
    },
}

impl fmt::Display for BlockedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockedReason::InFlight => f.write_str("still in flight"),
            BlockedReason::Finished => f.write_str("finished"),
            BlockedReason::AwaitingInput => f.write_str("awaiting input"),
            BlockedReason::WaitingForChild { child } => {
                write!(f, "waiting for child run {child}")
            }
            BlockedReason::AttemptsExhausted { attempts, max } => {
                write!(f, "recovery attempts exhausted ({attempts} of {max})")
            }
            BlockedReason::ParentFinished => f.write_str("parent run finished"),
            BlockedReason::JobFinished => f.write_str("job finished"),
            BlockedReason::JobCancelled => f.write_str("job cancelled"),
            BlockedReason::CodeVersionDiffers { recorded, current } => write!(
                f,
                "code version differs (run: {}, host: {})",
                recorded.as_deref().unwrap_or("none"),
                current.as_deref().unwrap_or("none")
            ),
        }
    }
}

/// A completed phase of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseView {
    /// Position in the run, from 0. This, not the name, identifies the phase.
    pub position: u32,
    /// Name (two phases may share one).
    pub name: String,
    /// Where its output lives.
    pub output: PayloadRef,
    /// When it completed.
    pub at: Timestamp,
}

/// Why and how a run failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// What went wrong.
    pub message: String,
    /// Whether a retry could succeed.
    pub retryable: bool,
    /// Who decided.
    pub cause: FailCause,
}

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunView {
    /// The run's id.
    pub id: RunId,
    /// Its job.
    pub job: JobId,
    /// The run that delegated to it, if any.
    pub parent: Option<RunId>,
    /// Runs it delegated to, in order.
    pub children: Vec<RunId>,
    /// Where it stands.
    pub status: RunStatus,
    /// When it started.
    pub started_at: Timestamp,
    /// When it completed or failed.
    pub finished_at: Option<Timestamp>,
    /// The code version it runs.
    pub code_version: Option<String>,
    /// The checkpoint it started or was last resumed from.
    pub resumed_from: Option<CheckpointId>,
    /// Completed phases, in the order they completed.
    pub phases: Vec<PhaseView>,
    /// Resumes made after a crash or panic interrupted the run (resumes
    /// after a clean shutdown do not count).
    pub recovery_attempts: u32,
    /// What it waits for, while it waits for input (also while interrupted).
    pub awaiting_input: Option<String>,
    /// The child it waits for, while delegating (also while interrupted).
    pub waiting_on_child: Option<RunId>,
    /// Steps this run recorded.
    pub steps: u64,
    /// What this run's steps spent.
    pub usage: Usage,
    /// Why it was last interrupted.
    pub interrupted_by: Option<InterruptReason>,
    /// Why it failed.
    pub error: Option<RunError>,
    /// Where its output lives, once completed.
    pub output: Option<PayloadRef>,
}

impl RunView {
    /// Whether the phase at `position` completed: a resuming host skips it.
    pub fn phase_completed(&self, position: u32) -> bool {
        self.phases.iter().any(|p| p.position == position)
    }
}

/// One checkpoint: a recorded step of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckpointView {
    /// Its id, unique within the job.
    pub id: CheckpointId,
    /// Its job.
    pub job: JobId,
    /// The run that recorded it.
    pub run: RunId,
    /// Step number, cumulative within the job, from 1.
    pub step: u64,
    /// What the step alone spent.
    pub delta: Usage,
    /// What the job had spent up to and including this step.
    pub usage: Usage,
    /// The phase position it belongs to.
    pub phase: Option<u32>,
    /// Where its payload lives.
    pub payload: PayloadRef,
    /// When it was recorded.
    pub at: Timestamp,
}

/// A status a remote system reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalObservation {
    /// The status.
    pub status: ExternalStatus,
    /// The remote system's words.
    pub detail: String,
    /// When it was observed.
    pub at: Timestamp,
}

/// How a finished job ended, with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// Completed.
    Completed,
    /// Failed, with the error.
    Failed(String),
    /// Cancelled, with the reason.
    Cancelled(String),
}

/// A job: its identity, input and totals, with its runs and checkpoints
/// behind [`JobView::detail`].
///
/// The fields here are what a job listing needs. A job restored from a
/// snapshot keeps its runs and checkpoints as the snapshot's bytes until
/// they are first asked for ([`JobView::detail`]); an open therefore costs
/// the job summaries, not every checkpoint. Decoding is done once and
/// cached; it can fail only if the snapshot was written wrong or altered
/// under a recomputed checksum, and then it fails with a [`DetailError`],
/// never with a wrong view.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobView {
    /// The job's id.
    pub id: JobId,
    /// Which agent or workflow it runs. Shared: jobs restored from one
    /// snapshot with the same key hold one string, and a listing copies a
    /// reference count, not the string.
    pub key: Arc<str>,
    /// Where its original input lives. Set at creation, never changed.
    pub input: PayloadRef,
    /// Its idempotency key (shared, like `key`).
    pub fingerprint: Option<Arc<str>>,
    /// Where it stands.
    pub status: JobStatus,
    /// Number of steps recorded in the job, across all its runs.
    pub total_steps: u64,
    /// Sum of every step's usage delta in the job.
    pub usage: Usage,
    /// When it was created.
    pub started_at: Timestamp,
    /// When it last finished; cleared when continued.
    pub finished_at: Option<Timestamp>,
    /// How it last finished.
    pub finish: Option<FinishReason>,
    /// The last status a remote system reported.
    pub external: Option<ExternalObservation>,
    /// LSN of the last event applied to the job.
    pub last_lsn: Lsn,
    pub(crate) detail: Detail,
}

/// The summary of one job a listing shows: its numbers and shared
/// strings, without its runs, checkpoints or finish message.
///
/// [`Projections::job_rows`](crate::Projections::job_rows) reads the rows
/// of jobs restored from a snapshot and not used since straight from the
/// snapshot's records, without materializing their views.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobSummary {
    /// The job's id.
    pub id: JobId,
    /// Which agent or workflow it runs (the view's shared string).
    pub key: Arc<str>,
    /// Where it stands.
    pub status: JobStatus,
    /// Steps recorded across all its runs.
    pub total_steps: u64,
    /// Sum of its steps' usage.
    pub usage: Usage,
    /// When it was created.
    pub started_at: Timestamp,
    /// When it last finished.
    pub finished_at: Option<Timestamp>,
    /// Its idempotency key.
    pub fingerprint: Option<Arc<str>>,
    /// Number of runs.
    pub runs: usize,
}

impl From<&JobView> for JobSummary {
    /// Copies the numbers; the strings are shared with the view.
    fn from(job: &JobView) -> Self {
        Self {
            id: job.id.clone(),
            key: Arc::clone(&job.key),
            status: job.status,
            total_steps: job.total_steps,
            usage: job.usage,
            started_at: job.started_at,
            finished_at: job.finished_at,
            fingerprint: job.fingerprint.clone(),
            runs: job.run_count(),
        }
    }
}

impl PartialEq for JobView {
    /// Equal summaries and equal details. A detail that cannot be decoded
    /// equals nothing but the same error.
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.key == other.key
            && self.input == other.input
            && self.fingerprint == other.fingerprint
            && self.status == other.status
            && self.total_steps == other.total_steps
            && self.usage == other.usage
            && self.started_at == other.started_at
            && self.finished_at == other.finished_at
            && self.finish == other.finish
            && self.external == other.external
            && self.last_lsn == other.last_lsn
            && self.detail() == other.detail()
    }
}

impl Eq for JobView {}

impl Serialize for JobView {
    /// The job with its runs and checkpoints, as one record (for JSON
    /// output and the like; the snapshot form is another). Fails if the
    /// detail cannot be decoded.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let detail = self.detail().map_err(serde::ser::Error::custom)?;
        let mut s = serializer.serialize_struct("JobView", 14)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("key", &*self.key)?;
        s.serialize_field("input", &self.input)?;
        s.serialize_field("fingerprint", &self.fingerprint.as_deref())?;
        s.serialize_field("status", &self.status)?;
        s.serialize_field("total_steps", &self.total_steps)?;
        s.serialize_field("usage", &self.usage)?;
        s.serialize_field("started_at", &self.started_at)?;
        s.serialize_field("finished_at", &self.finished_at)?;
        s.serialize_field("finish", &self.finish)?;
        s.serialize_field("external", &self.external)?;
        s.serialize_field("runs", &detail.runs)?;
        s.serialize_field("checkpoints", &detail.checkpoints)?;
        s.serialize_field("last_lsn", &self.last_lsn)?;
        s.end()
    }
}

impl JobView {
    /// The job's runs and checkpoints, decoded from the snapshot on first
    /// use (then cached). Fails only when the snapshot's bytes for this job
    /// do not decode or disagree with the job's summary.
    pub fn detail(&self) -> Result<&JobDetail, DetailError> {
        match self.detail.loaded.get_or_init(|| self.decode_detail()) {
            Ok(detail) => Ok(detail),
            Err(e) => Err(e.clone()),
        }
    }

    /// Number of runs, without decoding the detail.
    pub fn run_count(&self) -> usize {
        match (self.detail.loaded.get(), &self.detail.lazy) {
            (Some(Ok(detail)), _) => detail.runs.len(),
            (_, Some(lazy)) => lazy.run_count as usize,
            (_, None) => 0,
        }
    }

    /// The LSNs of the job's events, in log order (its `JobCreated` first),
    /// when the views know them: for every job whose events they applied,
    /// and for a job restored from a snapshot that named them. `None` for
    /// a job restored from a snapshot that did not (or whose list there
    /// does not read). Costs no decoding of the job's runs.
    pub fn event_lsns(&self) -> Option<Vec<Lsn>> {
        let list = self.detail.lsn_list()?;
        crate::event_lsns::lsns(self.input.lsn, list)
            .collect::<Result<Vec<_>, _>>()
            .ok()
    }

    /// The detail if it is decoded already (and decoded well).
    pub(crate) fn loaded_detail(&self) -> Option<&JobDetail> {
        match self.detail.loaded.get() {
            Some(Ok(detail)) => Some(detail),
            _ => None,
        }
    }

    fn decode_detail(&self) -> Result<JobDetail, DetailError> {
        match &self.detail.lazy {
            Some(lazy) => crate::snapshot::decode_detail(self, lazy, &[]),
            None => Ok(JobDetail::default()),
        }
    }
}

/// A job's runs and checkpoints: decoded, or still the snapshot's bytes.
#[derive(Clone, Debug)]
pub(crate) struct Detail {
    /// The decoded detail, or why it does not decode. Set at most once.
    pub loaded: OnceLock<Result<JobDetail, DetailError>>,
    /// Where the detail's bytes are, for a job restored from a snapshot.
    /// Inline, not boxed: a restore makes one per job, and an allocation
    /// each would cost more than the bytes.
    pub lazy: Option<LazyDetail>,
    /// The LSNs of the job's events, so that a snapshot can name them
    /// instead of holding the runs and checkpoints they fold to.
    pub events: EventLsns,
}

impl Detail {
    /// The detail of a new job: no runs, no checkpoints, nothing to decode.
    pub(crate) fn empty() -> Self {
        Detail {
            loaded: OnceLock::from(Ok(JobDetail::default())),
            lazy: None,
            events: EventLsns::new(),
        }
    }

    /// Notes that the job's event at `lsn` was applied, its event before
    /// being at `before`. The job's detail was decoded by the event's
    /// check, so a list still in the snapshot is taken from bytes whose
    /// checksum was verified.
    pub(crate) fn note_event(&mut self, before: Lsn, lsn: Lsn) {
        if let EventLsns::InSnapshot = self.events {
            self.events = match self.lazy.as_ref().and_then(LazyDetail::listed_lsns) {
                Some(list) => EventLsns::Listed(list.to_vec()),
                None => EventLsns::Unknown,
            };
        }
        if let EventLsns::Listed(list) = &mut self.events {
            match lsn.checked_sub(before).filter(|d| *d > 0) {
                Some(d) => push_varint(list, d),
                // Views given LSNs out of order (a caller's choice, not
                // the engine's) cannot name their events.
                None => self.events = EventLsns::Unknown,
            }
        }
    }

    /// The job's detail in the snapshot and, when it starts with the
    /// job's event LSNs, their list and the rest of the detail after it.
    pub(crate) fn snapshot_lsns(&self) -> Option<(&[u8], &[u8])> {
        match self.events {
            EventLsns::InSnapshot => self.lazy.as_ref().and_then(LazyDetail::split_lsns),
            _ => None,
        }
    }

    /// The job's event LSNs as the list of distances after its first
    /// event, if known. A list still in the snapshot is given as its
    /// bytes are there: for a job whose detail was never decoded, not yet
    /// checked against its checksum.
    pub(crate) fn lsn_list(&self) -> Option<&[u8]> {
        match &self.events {
            EventLsns::Listed(list) => Some(list),
            EventLsns::InSnapshot => self.lazy.as_ref().and_then(LazyDetail::listed_lsns),
            EventLsns::Unknown => None,
        }
    }
}

/// What every job restored from one snapshot shares: the file and how its
/// details are decoded.
pub(crate) struct SnapshotSource {
    /// The snapshot file.
    pub file: SnapshotFile,
    /// Decodes a detail in the format the body was written in.
    pub decode: crate::snapshot::DecodeDetail,
    /// The body's checksum function ([`crate::SnapshotCodec::checksum`]).
    pub checksum: fn(&[u8]) -> u32,
    /// That format, so that a snapshot in the same format copies the bytes.
    pub format: TypeId,
    /// Where the events of the jobs the snapshot names by their LSNs are
    /// read back from, if the restore was given a source.
    pub events: Option<Arc<dyn EventSource>>,
}

/// A job's detail as bytes of a snapshot body, with what its summary says
/// of it, to check against once decoded. A job whose summary lists runs
/// in flight or interrupted is decoded at restore, so a detail still
/// lazy has none: the summary says so by construction.
#[derive(Clone)]
pub(crate) struct LazyDetail {
    /// The snapshot, shared by every job restored from it.
    pub source: Arc<SnapshotSource>,
    /// This job's detail: `file[start..end]`.
    pub start: usize,
    pub end: usize,
    /// CRC-32 of those bytes, checked before they are decoded.
    pub crc: u32,
    /// Runs, as the summary says.
    pub run_count: u32,
    // Whether the detail starts with the job's event LSNs (flag bit 3 of
    // its record) is not kept here but in the job's `EventLsns`
    // (`InSnapshot` exactly then, until the job's first event, which
    // comes after its detail was decoded): a restore makes one of these
    // per job, and a flag would add 8 bytes of padding to each.
}

impl LazyDetail {
    /// The detail's bytes, unchecked.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        (*self.source.file).as_ref().get(self.start..self.end)
    }

    /// The event LSN list at the front of a detail that starts with one
    /// (its job's list is `InSnapshot`), and the rest after it, if it is
    /// framed right (its contents are not checked here).
    pub(crate) fn split_lsns(&self) -> Option<(&[u8], &[u8])> {
        split_lsns(self.bytes()?)
    }

    /// The event LSN list at the front of the detail, if there is one.
    pub(crate) fn listed_lsns(&self) -> Option<&[u8]> {
        self.split_lsns().map(|(list, _)| list)
    }
}

/// A detail's event LSN list, framed by its length at the front of
/// `bytes`, and the rest after it, if it is framed right (its contents are
/// not checked here).
pub(crate) fn split_lsns(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, used) = read_varint(bytes)?;
    let len = usize::try_from(len).ok()?;
    let rest = &bytes[used..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

impl fmt::Debug for LazyDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyDetail")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("crc", &self.crc)
            .field("run_count", &self.run_count)
            .finish_non_exhaustive()
    }
}

/// A job's runs and checkpoints.
#[derive(Clone, Debug, Default)]
pub struct JobDetail {
    pub(crate) runs: Vec<RunView>,
    pub(crate) checkpoints: Vec<CheckpointView>,
    pub(crate) run_index: IdIndex<RunId>,
    pub(crate) checkpoint_index: IdIndex<CheckpointId>,
}

impl PartialEq for JobDetail {
    /// Equal lists; the indexes are functions of them.
    fn eq(&self, other: &Self) -> bool {
        self.runs == other.runs && self.checkpoints == other.checkpoints
    }
}

impl Eq for JobDetail {}

impl JobDetail {
    /// The job's runs, in the order they started. Delegation makes them a
    /// tree through `parent` and `children`.
    pub fn runs(&self) -> &[RunView] {
        &self.runs
    }

    /// The job's checkpoints, in step order.
    pub fn checkpoints(&self) -> &[CheckpointView] {
        &self.checkpoints
    }

    /// One of its runs.
    pub fn run(&self, id: &RunId) -> Option<&RunView> {
        self.run_position(id.as_str())
            .and_then(|i| self.runs.get(i))
    }

    /// One of its checkpoints.
    pub fn checkpoint(&self, id: &CheckpointId) -> Option<&CheckpointView> {
        self.checkpoint_position(id.as_str())
            .and_then(|i| self.checkpoints.get(i))
    }

    /// Where the run `id` is in `runs`.
    pub(crate) fn run_position(&self, id: &str) -> Option<usize> {
        self.run_index.find(&self.runs, id, |r| &r.id)
    }

    /// The job's own copy of checkpoint id `id` (a reference count, not a
    /// new string), or a new id if the job has no such checkpoint.
    pub(crate) fn checkpoint_id(&self, id: &str) -> CheckpointId {
        match self
            .checkpoint_position(id)
            .and_then(|i| self.checkpoints.get(i))
        {
            Some(cp) => cp.id.clone(),
            None => CheckpointId::from(id),
        }
    }

    /// Where the checkpoint `id` is in `checkpoints`.
    pub(crate) fn checkpoint_position(&self, id: &str) -> Option<usize> {
        self.checkpoint_index.find(&self.checkpoints, id, |c| &c.id)
    }

    /// The checkpoint with the highest step number.
    pub fn latest_checkpoint(&self) -> Option<&CheckpointView> {
        self.checkpoints.last()
    }

    /// Top-level runs (no parent), in start order: the roots of the run tree.
    pub fn root_runs(&self) -> impl Iterator<Item = &RunView> {
        self.runs.iter().filter(|r| r.parent.is_none())
    }
}

/// Finds an item of one job's list (its runs, its checkpoints) by id.
///
/// Most jobs have a handful of runs and checkpoints: for them a scan of the
/// list is cheaper than hashing the id, and costs no memory. Past
/// [`IdIndex::SCAN_MAX`] items the index keeps a `HashMap` with std's
/// randomly keyed hasher, so a log crafted with colliding ids (a hostile log
/// is input: auditors replay copies) cannot make lookups degrade, and a scan
/// never exceeds `SCAN_MAX` comparisons. The map is boxed: every job holds
/// two indexes and few jobs need a map, so a pointer (8 bytes) instead of a
/// map (48) keeps a [`JobView`] small, which a restore of many jobs feels.
#[derive(Clone, Debug)]
pub(crate) struct IdIndex<K> {
    // The box is the point: its size, not where the map's entries live.
    #[allow(clippy::box_collection)]
    map: Option<Box<HashMap<K, usize>>>,
}

impl<K> Default for IdIndex<K> {
    fn default() -> Self {
        Self { map: None }
    }
}

impl<K> PartialEq for IdIndex<K> {
    /// Always equal: an index is a function of the list it indexes, so two
    /// views are equal when their lists are.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<K> Eq for IdIndex<K> {}

impl<K: Borrow<str> + Hash + Eq + Clone> IdIndex<K> {
    /// Lists up to this long are scanned; longer ones are hashed.
    pub(crate) const SCAN_MAX: usize = 16;

    /// The position in `items` of the item whose id is `id`.
    pub(crate) fn find<T>(&self, items: &[T], id: &str, key: impl Fn(&T) -> &K) -> Option<usize> {
        match &self.map {
            Some(map) => map.get(id).copied(),
            None => items.iter().position(|item| key(item).borrow() == id),
        }
    }

    /// Indexes the last item of `items`, just pushed. The caller has made
    /// sure its id is new.
    pub(crate) fn push_last<T>(&mut self, items: &[T], key: impl Fn(&T) -> &K) {
        match &mut self.map {
            Some(map) => {
                if let Some(last) = items.last() {
                    map.insert(key(last).clone(), items.len() - 1);
                }
            }
            None if items.len() > Self::SCAN_MAX => {
                self.map = Some(Box::new(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (key(item).clone(), i))
                        .collect(),
                ));
            }
            None => {}
        }
    }
}
