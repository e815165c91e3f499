//! The snapshot form of [`Projections`]: a small head that a restore
//! reads whole, a base of fixed-width job records that stays in the
//! (mapped) file and is read a chunk of 64 jobs at a time when one of its
//! jobs is first used, and each job's runs and checkpoints as a separate
//! detail, kept as bytes until it is first used; or, for a job whose
//! events the log keeps, only the LSNs of those events, its runs and
//! checkpoints rebuilt from the log when first used ([`SnapshotDetails`]).
//!
//! Version 5. Every integer is fixed-width little-endian; strings are
//! UTF-8 bytes whose lengths are in the job's record. FORMAT.md gives the
//! same layout as tables.
//!
//! ```text
//! body     = head ‖ base ‖ details
//! head     = preamble (80 bytes) ‖ keys ‖ unfinished ‖ live
//! preamble = version: u8 (5) ‖ 3 zero bytes ‖ head_crc: u32
//!            ‖ head_len: u64 ‖ events_applied: u64 ‖ last_lsn: u64
//!            ‖ has_last_lsn: u8 (0 or 1) ‖ 3 zero bytes ‖ key_count: u32
//!            ‖ job_count: u64 ‖ unfinished_count: u64 ‖ live_count: u64
//!            ‖ details_at: u64 ‖ ids_crc: u32 ‖ 4 zero bytes
//! keys       = key_count × (len: u32 ‖ bytes): the distinct job keys
//! unfinished = unfinished_count × position: u32, increasing: the jobs
//!              whose status is running
//! live       = live_count × (job: u32 ‖ run: u32 ‖ status: u8), in
//!              (job, run) order: the runs in flight or interrupted
//! base     = chunks ‖ ids ‖ regions, from head_len to details_at
//! chunks   = ⌈job_count / 64⌉ × (region_at: u64 ‖ detail_at: u64
//!            ‖ crc: u32 ‖ 4 zero bytes): per chunk of 64 jobs, where its
//!            region starts (from the first region), where its first
//!            detail starts (from details_at), and its region's CRC-32
//! ids      = job_count × (id_at: u64 ‖ id_len: u32 ‖ position: u32),
//!            sorted by id: where each job's id is (from the body's start)
//! region   = per chunk: its 128-byte job records (the R_ offsets below)
//!            ‖ its text: per job, in job order, its id ‖ fingerprint
//!            ‖ finish message ‖ external detail
//! details  = every job's detail, in job order, detail_len bytes each,
//!            ending exactly at the end of the body
//! detail   = [lsns_len: varint ‖ lsns] (if flag bit 3) ‖ [encoded]
//! lsns     = one LEB128 varint per event of the job after its first
//!            (its JobCreated, at input_lsn): its distance from the one
//!            before, at least 1; the last is at the record's last_lsn
//! encoded  = runs: seq of run ‖ checkpoints: seq of checkpoint, in the
//!            codec's serde format (postcard in the engine); empty only
//!            after lsns, when the runs and checkpoints are rebuilt from
//!            the log
//! run        = the fields of RunView in order, without `job`
//! checkpoint = id ‖ run: u32 (position of its run in the job's runs)
//!              ‖ delta: Usage ‖ phase ‖ payload: PayloadRef ‖ at
//! ```
//!
//! A job rebuilt from the log has its events, read through the
//! [`EventSource`] the restore was given, applied to empty views: the
//! transitions that made the job make its detail again. Each event must
//! be the job's and apply, and the job they make must have the summary
//! the record gives, its run count, and no run in flight or interrupted
//! (such jobs are written encoded, since an open reads their runs).
//!
//! The head is bytes `0..head_len`; `head_crc` is the CRC-32 of bytes
//! `8..head_len`. A restore reads the head only, then materializes the
//! jobs it lists (unfinished: attach by fingerprint looks for them; live:
//! the engine reads those runs at open, so their details are decoded
//! too): its cost follows the head, not the number of jobs.
//!
//! Every other part is checked when first used, each with its own CRC-32:
//! a chunk (its region) when one of its jobs is materialized, the id
//! index on the first lookup by id, a detail when it is first decoded. A
//! chunk's records are checked as a restore of the whole head once did:
//! each field's range (a status, a flag, a key index), unused fields zero,
//! the strings and the details filling their spans exactly, `live_count`
//! agreeing with `live`, a running status exactly for the jobs
//! `unfinished` lists. A failure is a [`DetailError`] at the query that
//! reached the job, never a view.
//!
//! A lookup by id binary-searches the id index in the file, then
//! compares the id of the job it names. It trusts the index to be sorted
//! and to name each job once (the writer makes it so; CRCs catch damage):
//! an index crafted otherwise gives a miss or a typed error, never a read
//! out of the body. Ids are not checked unique at restore: that would read
//! every one.
//!
//! Left out because the log's transitions fix them: a run's and a
//! checkpoint's job (the job holding it), a checkpoint's run id (its run's
//! position instead), a checkpoint's step (its position + 1) and cumulative
//! usage (the saturating sum of the deltas up to it).
//!
//! What a detail says and what its summary says must agree: when a detail
//! is decoded, its checksum, its runs' count, its runs in flight or
//! interrupted, and the sums of its checkpoints' deltas are checked against
//! the summary, and any difference is a [`DetailError`], as is a detail
//! that does not decode or has bytes left over.
//!
//! Writing a snapshot gives the same bytes whichever jobs were used since
//! the restore. A chunk of the base that nobody used is written from its
//! records without being materialized: checked as materializing it would
//! check it, its records, text and details copied, but for each key's
//! index (this snapshot's key table) and a detail cut to its event LSNs
//! (its length and checksum). A chunk that is materialized, or shares its
//! place with jobs created since, or whose jobs need their details decoded
//! to be written in the form asked for, or that fails a check, is written
//! from its views, which reports a failure as before.
//!
//! The version is read before anything else, so a snapshot of another
//! version is refused by number, never misread. Versions 1 to 4 are
//! refused like any other: the engine then replays the log.

use crate::error::DetailError;
use crate::event::{ExternalStatus, InterruptReason};
use crate::event_lsns::{self, EventLsns, EventSource};
use crate::state::Projections;
use crate::types::{CheckpointId, JobId, Lsn, PayloadRef, RunId, Timestamp, Usage};
use crate::view::{
    CheckpointView, Detail, ExternalObservation, FinishReason, IdIndex, JobDetail, JobStatus,
    JobSummary, JobView, LazyDetail, PhaseView, RunError, RunStatus, RunView, SnapshotSource,
    split_lsns,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Version of the snapshot form of the views. Bumped when that form
/// changes; a snapshot of any other version is refused.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 5;

/// The bytes of a snapshot file, shared by the views restored from it
/// while any job's detail is undecoded: a `Vec<u8>` read from the file, or
/// a map of it (the engine's choice; these bytes are only read).
pub type SnapshotFile = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// The serde format a snapshot's details are written in. The engine uses
/// postcard; the projections crate itself depends on serde only.
pub trait SnapshotCodec: 'static {
    /// Appends the encoding of `value` to `out`.
    fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String>;
    /// Decodes a value from the front of `bytes`, returning it and how many
    /// bytes it took.
    fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String>;
    /// The CRC-32 (IEEE) of `bytes`, as the head and every detail store
    /// it. Supplied by the codec so that this crate needs serde only; the
    /// engine uses crc32fast.
    fn checksum(bytes: &[u8]) -> u32;
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
    /// The head's checksum does not match its bytes.
    HeadChecksum {
        /// The checksum the body stores.
        stored: u32,
        /// The checksum of the head's bytes.
        computed: u32,
    },
    /// The head does not parse, or its parts do not fit together.
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
            SnapshotError::HeadChecksum { stored, computed } => write!(
                f,
                "snapshot head checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
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

// The preamble: the head's first bytes, at fixed offsets.
const P_VERSION: usize = 0;
const P_HEAD_CRC: usize = 4;
const P_HEAD_LEN: usize = P_HEAD_CRC + 4;
const P_EVENTS: usize = P_HEAD_LEN + 8;
const P_LAST_LSN: usize = P_EVENTS + 8;
const P_HAS_LAST_LSN: usize = P_LAST_LSN + 8;
const P_KEY_COUNT: usize = P_HAS_LAST_LSN + 4;
const P_JOB_COUNT: usize = P_KEY_COUNT + 4;
const P_UNFINISHED_COUNT: usize = P_JOB_COUNT + 8;
const P_LIVE_COUNT: usize = P_UNFINISHED_COUNT + 8;
const P_DETAILS_AT: usize = P_LIVE_COUNT + 8;
const P_IDS_CRC: usize = P_DETAILS_AT + 8;
const P_ZERO: usize = P_IDS_CRC + 4;
const PREAMBLE_LEN: usize = P_ZERO + 4;
/// Where the head's checksum starts: everything after the checksum.
const CRC_FROM: usize = P_HEAD_LEN;
const _: () = assert!(P_VERSION < P_HEAD_CRC && PREAMBLE_LEN == 80);

/// Jobs per chunk of the base: the unit a restore materializes views in,
/// with one checksum per chunk.
const CHUNK_JOBS: usize = 64;
// A chunk table entry.
const C_REGION_AT: usize = 0;
const C_DETAIL_AT: usize = C_REGION_AT + 8;
const C_CRC: usize = C_DETAIL_AT + 8;
const C_ZERO: usize = C_CRC + 4;
const CHUNK_ENTRY_LEN: usize = C_ZERO + 4;
const _: () = assert!(CHUNK_ENTRY_LEN == 24);
// An id index entry.
const I_ID_AT: usize = 0;
const I_ID_LEN: usize = I_ID_AT + 8;
const I_POSITION: usize = I_ID_LEN + 4;
const ID_ENTRY_LEN: usize = I_POSITION + 4;
const _: () = assert!(ID_ENTRY_LEN == 16);
/// Bytes of an `unfinished` entry: a job position.
const UNFINISHED_LEN: usize = 4;

// A job record: fixed-width fields first, then 32-bit lengths, then bytes.
const R_INPUT_LSN: usize = 0;
const R_INPUT_LEN: usize = R_INPUT_LSN + 8;
const R_TOTAL_STEPS: usize = R_INPUT_LEN + 8;
const R_INPUT_TOKENS: usize = R_TOTAL_STEPS + 8;
const R_OUTPUT_TOKENS: usize = R_INPUT_TOKENS + 8;
const R_COST_MICROS: usize = R_OUTPUT_TOKENS + 8;
const R_STARTED_AT: usize = R_COST_MICROS + 8;
const R_FINISHED_AT: usize = R_STARTED_AT + 8;
const R_LAST_LSN: usize = R_FINISHED_AT + 8;
const R_EXTERNAL_AT: usize = R_LAST_LSN + 8;
const R_DETAIL_LEN: usize = R_EXTERNAL_AT + 8;
const R_DETAIL_CRC: usize = R_DETAIL_LEN + 8;
const R_RUNS: usize = R_DETAIL_CRC + 4;
const R_ID_LEN: usize = R_RUNS + 4;
const R_KEY: usize = R_ID_LEN + 4;
const R_FINGERPRINT_LEN: usize = R_KEY + 4;
const R_FINISH_LEN: usize = R_FINGERPRINT_LEN + 4;
const R_EXTERNAL_LEN: usize = R_FINISH_LEN + 4;
const R_LIVE_COUNT: usize = R_EXTERNAL_LEN + 4;
const R_STATUS: usize = R_LIVE_COUNT + 4;
const R_FLAGS: usize = R_STATUS + 1;
const R_FINISH: usize = R_FLAGS + 1;
const R_EXTERNAL_STATUS: usize = R_FINISH + 1;
const R_ZERO: usize = R_EXTERNAL_STATUS + 1;
/// Bytes of a job record.
const JOB_LEN: usize = 128;
const _: () = assert!(R_ZERO + 4 == JOB_LEN);

/// `flags` bits: which optional fields are present.
const F_FINISHED_AT: u8 = 1;
const F_FINGERPRINT: u8 = 2;
const F_EXTERNAL: u8 = 4;
/// The detail starts with the job's event LSNs (`event_lsns.rs`).
const F_LSNS: u8 = 8;
const F_ALL: u8 = F_FINISHED_AT | F_FINGERPRINT | F_EXTERNAL | F_LSNS;

/// Bytes of a `live` entry: job position u32, run position u32, status u8.
const LIVE_LEN: usize = 9;
/// Smallest key entry: its length alone.
const KEY_MIN_LEN: usize = 4;

type Record = [u8; JOB_LEN];

fn le32<const N: usize>(b: &[u8; N], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le64<const N: usize>(b: &[u8; N], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn put32(b: &mut Record, at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut Record, at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

// The numbers the format gives each status: a value's position here.
const JOB_STATUSES: [JobStatus; 4] = [
    JobStatus::Running,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];
const RUN_STATUSES: [RunStatus; 6] = [
    RunStatus::Running,
    RunStatus::AwaitingInput,
    RunStatus::Delegating,
    RunStatus::Interrupted,
    RunStatus::Completed,
    RunStatus::Failed,
];
const EXTERNAL_STATUSES: [ExternalStatus; 4] = [
    ExternalStatus::Pending,
    ExternalStatus::Running,
    ExternalStatus::Completed,
    ExternalStatus::Failed,
];

/// The index of `value` in `all`, as stored: the tables above are the
/// format, not the enums' declaration order.
fn index_of<T: PartialEq>(all: &[T], value: &T) -> u8 {
    // Every table lists every variant, so the position is found; the
    // tables are shorter than 256.
    all.iter().position(|v| v == value).unwrap_or_default() as u8
}

const FINISH_NONE: u8 = 0;
const FINISH_COMPLETED: u8 = 1;
const FINISH_FAILED: u8 = 2;
const FINISH_CANCELLED: u8 = 3;

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

/// A string's length as the head stores it.
fn len32(s: &str, what: &str) -> Result<u32, String> {
    u32::try_from(s.len()).map_err(|_| format!("its {what} is longer than u32::MAX bytes"))
}

/// How a snapshot holds the runs and checkpoints of its jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotDetails {
    /// Every job's runs and checkpoints, encoded: the snapshot needs
    /// nothing else. For logs whose covered segments may be dropped.
    Full,
    /// A job with no run in flight or interrupted whose first event is at
    /// or after `first_lsn`, and whose event LSNs the views know, is held
    /// as those LSNs alone: its runs and checkpoints are a fold of those
    /// events, rebuilt from the log (through an [`EventSource`]) when first
    /// used. Every event from `first_lsn` on must stay in the log for as
    /// long as the snapshot may be restored.
    FromLog {
        /// The log's first LSN: jobs that began before it are held in full.
        first_lsn: Lsn,
    },
}

/// A snapshot body as [`Projections::to_snapshot_body_with`] encodes it: its
/// head (with the chunk table and the id index), its job records, and its
/// details, to be written one after the other. The body is their
/// concatenation; the two big parts are kept apart so that writing a
/// snapshot never copies them into one buffer.
#[derive(Debug)]
pub struct SnapshotBody {
    head: Vec<u8>,
    regions: Vec<u8>,
    details: Vec<u8>,
}

impl SnapshotBody {
    /// The body's parts, in file order.
    pub fn parts(&self) -> [&[u8]; 3] {
        [&self.head, &self.regions, &self.details]
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.regions.len() + self.details.len()
    }

    /// True for an empty body (never the case for an encoded one: its
    /// head has a preamble).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body as one buffer.
    pub fn concat(self) -> Vec<u8> {
        let mut out = self.head;
        out.reserve_exact(self.regions.len() + self.details.len());
        out.extend_from_slice(&self.regions);
        out.extend_from_slice(&self.details);
        out
    }
}

/// A job's id, where it is written (in the regions), and its position.
type IdEntry<'a> = (&'a str, usize, u32);

/// Sorts `ids` (one per job, in position order) by id, which is how the
/// id index lists them (by bytes, as `str` orders). The jobs of the base
/// the views were restored from are put in order by that base's own
/// index, checked as it is read (each position below the base's length,
/// each id after the one before, as many as the base has jobs: a sorted
/// permutation); the jobs created since are sorted alone and the two
/// merged. That is linear in the base, where a sort of every id is
/// n log n comparisons of strings (some 15 ms at 83,333 jobs). An index
/// that fails a check is not used: everything is sorted.
fn sort_ids<'a>(base: Option<&Base>, mut ids: Vec<IdEntry<'a>>) -> Vec<IdEntry<'a>> {
    let base_len = base.map_or(0, Base::len).min(ids.len());
    let from_index = base.and_then(Base::positions_by_id).and_then(|positions| {
        let mut sorted: Vec<IdEntry<'a>> = Vec::with_capacity(base_len);
        for position in positions {
            let entry = *ids.get(..base_len)?.get(position)?;
            if sorted.last().is_some_and(|last| last.0 >= entry.0) {
                return None;
            }
            sorted.push(entry);
        }
        (sorted.len() == base_len).then_some(sorted)
    });
    let Some(from_base) = from_index else {
        ids.sort_unstable_by(|a, b| a.0.cmp(b.0));
        return ids;
    };
    let mut created = ids.split_off(base_len);
    created.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut merged = Vec::with_capacity(from_base.len() + created.len());
    let (mut a, mut b) = (
        from_base.into_iter().peekable(),
        created.into_iter().peekable(),
    );
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(entry) => merged.push(entry),
            None => return merged,
        }
    }
}

/// Where each part of a snapshot being written goes, and what the head
/// lists, gathered job by job.
#[derive(Default)]
struct Writer<'a> {
    keys: Vec<&'a str>,
    key_index: HashMap<&'a str, u32>,
    unfinished: Vec<u8>,
    lives: Vec<u8>,
    chunks: Vec<u8>,
    regions: Vec<u8>,
    /// The current chunk's records and text, until it is full.
    records: Vec<u8>,
    text: Vec<u8>,
    /// Each job's id, where it is in `regions`, and its position.
    ids: Vec<IdEntry<'a>>,
    details: Vec<u8>,
    /// Where the current chunk's first detail starts in `details`.
    chunk_details_at: usize,
}

impl<'a> Writer<'a> {
    /// Ends the current chunk: its records then its text become its region.
    fn end_chunk<C: SnapshotCodec>(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let region_at = self.regions.len();
        self.regions.extend_from_slice(&self.records);
        self.regions.extend_from_slice(&self.text);
        let crc = C::checksum(&self.regions[region_at..]);
        let mut entry = [0u8; CHUNK_ENTRY_LEN];
        entry[C_REGION_AT..C_REGION_AT + 8].copy_from_slice(&(region_at as u64).to_le_bytes());
        entry[C_DETAIL_AT..C_DETAIL_AT + 8]
            .copy_from_slice(&(self.chunk_details_at as u64).to_le_bytes());
        entry[C_CRC..C_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        self.chunks.extend_from_slice(&entry);
        self.records.clear();
        self.text.clear();
        self.chunk_details_at = self.details.len();
    }

    /// Adds `job`, at `position` of a chunk of `chunk_jobs` jobs, from its
    /// view: its record, its strings, its detail and what the head lists
    /// of it.
    fn push_job<C: SnapshotCodec>(
        &mut self,
        position: u32,
        job: &'a JobView,
        chunk_jobs: usize,
        details_form: SnapshotDetails,
    ) -> Result<(), SnapshotError> {
        let unwritable = |job: &JobView, reason: String| {
            SnapshotError::Unwritable(DetailError {
                job: job.id.clone(),
                reason,
            })
        };
        let before = self.details.len();
        let from_log = held_from_log(details_form, job.input.lsn);
        let (runs, live, crc, lsns) = match write_as_restored(job, from_log, TypeId::of::<C>()) {
            Some(Restored::Copy(lazy)) => {
                let bytes = lazy
                    .bytes()
                    .ok_or_else(|| unwritable(job, "detail out of its body".into()))?;
                self.details.extend_from_slice(bytes);
                // A detail still lazy has no live runs (see LazyDetail).
                let lsns = matches!(job.detail.events, EventLsns::InSnapshot);
                (lazy.run_count, Vec::new(), lazy.crc, lsns)
            }
            Some(Restored::Lsns(lazy, list)) => {
                push_lsn_list(&mut self.details, list);
                let crc = C::checksum(&self.details[before..]);
                (lazy.run_count, Vec::new(), crc, true)
            }
            None => {
                let detail = job.detail().map_err(SnapshotError::Unwritable)?;
                let live = live_runs(&detail.runs).map_err(|e| unwritable(job, e))?;
                let list = job.detail.lsn_list();
                if let Some(list) = list {
                    push_lsn_list(&mut self.details, list);
                }
                // Without its events' LSNs, or with runs the open reads,
                // a job is held in full.
                if !(from_log && live.is_empty() && list.is_some()) {
                    let out = detail_out(job, detail).map_err(|e| unwritable(job, e))?;
                    C::encode_into(&out, &mut self.details).map_err(|e| unwritable(job, e))?;
                }
                let runs = u32::try_from(detail.runs.len())
                    .map_err(|_| unwritable(job, "more than u32::MAX runs".into()))?;
                let crc = C::checksum(&self.details[before..]);
                (runs, live, crc, list.is_some())
            }
        };
        let key = self.key(&job.key).map_err(|e| unwritable(job, e))?;
        let mut r = [0u8; JOB_LEN];
        put64(&mut r, R_INPUT_LSN, job.input.lsn);
        put64(&mut r, R_INPUT_LEN, job.input.len);
        put64(&mut r, R_TOTAL_STEPS, job.total_steps);
        put64(&mut r, R_INPUT_TOKENS, job.usage.input_tokens);
        put64(&mut r, R_OUTPUT_TOKENS, job.usage.output_tokens);
        put64(&mut r, R_COST_MICROS, job.usage.cost_micros);
        put64(&mut r, R_STARTED_AT, job.started_at.0);
        put64(&mut r, R_LAST_LSN, job.last_lsn);
        put64(&mut r, R_DETAIL_LEN, (self.details.len() - before) as u64);
        put32(&mut r, R_DETAIL_CRC, crc);
        put32(&mut r, R_RUNS, runs);
        put32(&mut r, R_KEY, key);
        r[R_STATUS] = index_of(&JOB_STATUSES, &job.status);
        if !job.status.is_finished() {
            self.unfinished.extend_from_slice(&position.to_le_bytes());
        }
        let mut flags = 0;
        self.push_id(job.id.as_str(), position, chunk_jobs);
        put32(
            &mut r,
            R_ID_LEN,
            len32(job.id.as_str(), "id").map_err(|e| unwritable(job, e))?,
        );
        if let Some(at) = job.finished_at {
            flags |= F_FINISHED_AT;
            put64(&mut r, R_FINISHED_AT, at.0);
        }
        if let Some(fp) = &job.fingerprint {
            flags |= F_FINGERPRINT;
            self.text.extend_from_slice(fp.as_bytes());
            put32(
                &mut r,
                R_FINGERPRINT_LEN,
                len32(fp, "fingerprint").map_err(|e| unwritable(job, e))?,
            );
        }
        let (finish, message) = match &job.finish {
            None => (FINISH_NONE, ""),
            Some(FinishReason::Completed) => (FINISH_COMPLETED, ""),
            Some(FinishReason::Failed(m)) => (FINISH_FAILED, m.as_str()),
            Some(FinishReason::Cancelled(m)) => (FINISH_CANCELLED, m.as_str()),
        };
        r[R_FINISH] = finish;
        self.text.extend_from_slice(message.as_bytes());
        put32(
            &mut r,
            R_FINISH_LEN,
            len32(message, "finish message").map_err(|e| unwritable(job, e))?,
        );
        if let Some(ext) = &job.external {
            flags |= F_EXTERNAL;
            r[R_EXTERNAL_STATUS] = index_of(&EXTERNAL_STATUSES, &ext.status);
            put64(&mut r, R_EXTERNAL_AT, ext.at.0);
            self.text.extend_from_slice(ext.detail.as_bytes());
            put32(
                &mut r,
                R_EXTERNAL_LEN,
                len32(&ext.detail, "external detail").map_err(|e| unwritable(job, e))?,
            );
        }
        if lsns {
            flags |= F_LSNS;
        }
        r[R_FLAGS] = flags;
        // Fewer live runs than runs, which fit a u32.
        put32(&mut r, R_LIVE_COUNT, live.len() as u32);
        for (run, status) in live {
            self.lives.extend_from_slice(&position.to_le_bytes());
            self.lives.extend_from_slice(&run.to_le_bytes());
            self.lives.push(index_of(&RUN_STATUSES, &status));
        }
        self.records.extend_from_slice(&r);
        Ok(())
    }

    /// The index of `key` in the head's key table, added if it is new:
    /// keys are listed in the order of their first job.
    fn key(&mut self, key: &'a str) -> Result<u32, String> {
        if let Some(&k) = self.key_index.get(key) {
            return Ok(k);
        }
        let k = u32::try_from(self.keys.len()).map_err(|_| "more than u32::MAX keys".to_owned())?;
        self.keys.push(key);
        self.key_index.insert(key, k);
        Ok(k)
    }

    /// Starts the text of the job at `position`, of a chunk of
    /// `chunk_jobs` jobs, with its id, and notes where the id is for the
    /// id index.
    fn push_id(&mut self, id: &'a str, position: u32, chunk_jobs: usize) {
        // The region's records come first: this job's strings start after
        // the chunk's last record.
        let id_at = self.regions.len() + chunk_jobs * JOB_LEN + self.text.len();
        self.ids.push((id, id_at, position));
        self.text.extend_from_slice(id.as_bytes());
    }

    /// Adds a job of the base from its record, as [`Base::copied`] gives
    /// it: the bytes [`Writer::push_job`] would write for its view,
    /// without the view. Its record is the one it was restored from, but
    /// for its key's index, which follows this snapshot's key table, and,
    /// for a detail written as its event LSNs alone, the detail's length
    /// and checksum. Such a job is finished and has no live runs, so the
    /// head lists nothing of it.
    fn push_copied<C: SnapshotCodec>(
        &mut self,
        position: u32,
        job: Copied<'a>,
        chunk_jobs: usize,
    ) -> Result<(), SnapshotError> {
        let f = &job.fields;
        let unwritable = |reason: String| {
            SnapshotError::Unwritable(DetailError {
                job: JobId::from(f.id),
                reason,
            })
        };
        let mut r = *f.r;
        put32(&mut r, R_KEY, self.key(f.key).map_err(unwritable)?);
        match job.detail {
            Form::Copy => self.details.extend_from_slice(job.bytes),
            Form::Lsns => {
                let before = self.details.len();
                push_lsn_list(&mut self.details, job.bytes);
                let crc = C::checksum(&self.details[before..]);
                put64(&mut r, R_DETAIL_LEN, (self.details.len() - before) as u64);
                put32(&mut r, R_DETAIL_CRC, crc);
            }
        }
        self.push_id(f.id, position, chunk_jobs);
        for text in f.text_after_id() {
            self.text.extend_from_slice(text.as_bytes());
        }
        self.records.extend_from_slice(&r);
        Ok(())
    }
}

impl Projections {
    /// Encodes the views in the snapshot form (see the module docs of
    /// `snapshot.rs`) with codec `C` for the details, every job's runs and
    /// checkpoints in full ([`SnapshotDetails::Full`]). Views that were
    /// never used since a restore give the same bytes as views that all
    /// were; a chunk of jobs nobody used is written from its records, not
    /// materialized, when that gives those bytes (module docs).
    pub fn to_snapshot<C: SnapshotCodec>(&self) -> Result<Vec<u8>, SnapshotError> {
        self.to_snapshot_with::<C>(SnapshotDetails::Full)
    }

    /// [`Projections::to_snapshot`], holding the jobs' runs and checkpoints
    /// as `details` says. A job whose detail was never decoded since it
    /// was restored with the same codec is copied as the bytes it was
    /// restored from, with their checksum, unless a shorter form is asked
    /// for; so is one whose detail failed, so that the failure stays
    /// detected.
    pub fn to_snapshot_with<C: SnapshotCodec>(
        &self,
        details_form: SnapshotDetails,
    ) -> Result<Vec<u8>, SnapshotError> {
        self.to_snapshot_body_with::<C>(details_form)
            .map(SnapshotBody::concat)
    }

    /// [`Projections::to_snapshot_with`], the body left in its parts, for a
    /// writer that writes them one after the other: the same bytes without
    /// copying the job records and details into one buffer.
    pub fn to_snapshot_body_with<C: SnapshotCodec>(
        &self,
        details_form: SnapshotDetails,
    ) -> Result<SnapshotBody, SnapshotError> {
        let job_count = self.job_count();
        if u32::try_from(job_count).is_err() {
            return Err(malformed("more than u32::MAX jobs"));
        }
        let mut w = Writer {
            records: Vec::with_capacity(CHUNK_JOBS * JOB_LEN),
            ids: Vec::with_capacity(job_count),
            ..Writer::default()
        };
        // A chunk of the base that nobody used is written from its records,
        // not materialized, when that gives the same bytes (`Base::copied`).
        let base = self.base();
        let mut position = 0;
        while position < job_count {
            let chunk_first = position - position % CHUNK_JOBS;
            let chunk_jobs = CHUNK_JOBS.min(job_count - chunk_first);
            if position % CHUNK_JOBS == 0 {
                w.end_chunk::<C>();
                let copied = base.and_then(|base| {
                    base.copied::<C>(position / CHUNK_JOBS, chunk_jobs, details_form)
                });
                if let Some(copied) = copied {
                    for job in copied {
                        // Checked above: every position fits a u32.
                        w.push_copied::<C>(position as u32, job, chunk_jobs)?;
                        position += 1;
                    }
                    continue;
                }
            }
            let job = self.job_at(position).map_err(SnapshotError::Unwritable)?;
            // Checked above: every position fits a u32.
            w.push_job::<C>(position as u32, job, chunk_jobs, details_form)?;
            position += 1;
        }
        w.end_chunk::<C>();

        let key_bytes: usize = w.keys.iter().map(|k| KEY_MIN_LEN + k.len()).sum();
        let head_len = PREAMBLE_LEN + key_bytes + w.unfinished.len() + w.lives.len();
        let ids_len = job_count * ID_ENTRY_LEN;
        let regions_at = head_len + w.chunks.len() + ids_len;
        let details_at = regions_at + w.regions.len();
        let mut body = Vec::with_capacity(regions_at);
        body.resize(PREAMBLE_LEN, 0);
        body[P_VERSION] = SNAPSHOT_FORMAT_VERSION;
        body[P_HEAD_LEN..P_HEAD_LEN + 8].copy_from_slice(&(head_len as u64).to_le_bytes());
        body[P_EVENTS..P_EVENTS + 8].copy_from_slice(&self.events_applied().to_le_bytes());
        if let Some(lsn) = self.last_lsn() {
            body[P_LAST_LSN..P_LAST_LSN + 8].copy_from_slice(&lsn.to_le_bytes());
            body[P_HAS_LAST_LSN] = 1;
        }
        // At most one key per job, and jobs fit in memory: a u32 holds it
        // (checked above when each key was added).
        body[P_KEY_COUNT..P_KEY_COUNT + 4].copy_from_slice(&(w.keys.len() as u32).to_le_bytes());
        body[P_JOB_COUNT..P_JOB_COUNT + 8].copy_from_slice(&(job_count as u64).to_le_bytes());
        body[P_UNFINISHED_COUNT..P_UNFINISHED_COUNT + 8]
            .copy_from_slice(&((w.unfinished.len() / UNFINISHED_LEN) as u64).to_le_bytes());
        body[P_LIVE_COUNT..P_LIVE_COUNT + 8]
            .copy_from_slice(&((w.lives.len() / LIVE_LEN) as u64).to_le_bytes());
        body[P_DETAILS_AT..P_DETAILS_AT + 8].copy_from_slice(&(details_at as u64).to_le_bytes());
        for key in &w.keys {
            let len = u32::try_from(key.len())
                .map_err(|_| malformed("a key is longer than u32::MAX bytes"))?;
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(key.as_bytes());
        }
        body.extend_from_slice(&w.unfinished);
        body.extend_from_slice(&w.lives);
        body.extend_from_slice(&w.chunks);
        let ids = sort_ids(self.base(), std::mem::take(&mut w.ids));
        let ids_at = body.len();
        for (id, at, position) in &ids {
            body.extend_from_slice(&((regions_at + at) as u64).to_le_bytes());
            // The id's length was checked against u32 when it was written.
            body.extend_from_slice(&(id.len() as u32).to_le_bytes());
            body.extend_from_slice(&position.to_le_bytes());
        }
        let ids_crc = C::checksum(&body[ids_at..]);
        body[P_IDS_CRC..P_IDS_CRC + 4].copy_from_slice(&ids_crc.to_le_bytes());
        let crc = C::checksum(&body[CRC_FROM..head_len]);
        body[P_HEAD_CRC..P_HEAD_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(
            body.len(),
            regions_at,
            "the head, chunks and ids end where the records start"
        );
        Ok(SnapshotBody {
            head: body,
            regions: std::mem::take(&mut w.regions),
            details: std::mem::take(&mut w.details),
        })
    }

    /// Restores views from a snapshot body written by
    /// [`Projections::to_snapshot`] with codec `C`: the body is
    /// `file[body_at..]` (the whole file is taken so that the body need not
    /// be copied out of it). Checks the version and the head, and
    /// materializes the views of jobs that are unfinished or have runs in
    /// flight or interrupted (their details decoded); every other job
    /// stays the snapshot's bytes until first used (module docs).
    pub fn from_snapshot<C: SnapshotCodec>(
        file: Vec<u8>,
        body_at: usize,
    ) -> Result<Self, SnapshotError> {
        Self::from_snapshot_file::<C>(Arc::new(file), body_at)
    }

    /// [`Projections::from_snapshot`] on shared bytes, such as a map of the
    /// file: the views keep `file` while any job is not materialized or
    /// any job's detail is undecoded. Reads the head and the chunks of the
    /// jobs it lists, so its cost follows those, not the number of jobs.
    pub fn from_snapshot_file<C: SnapshotCodec>(
        file: SnapshotFile,
        body_at: usize,
    ) -> Result<Self, SnapshotError> {
        Self::from_snapshot_file_with::<C>(file, body_at, None)
    }

    /// [`Projections::from_snapshot_file`], reading the events of jobs the
    /// snapshot holds by their LSNs ([`SnapshotDetails::FromLog`]) from
    /// `events` when their runs and checkpoints are first used. Without
    /// a source, such a job's detail is a [`DetailError`]. The views keep
    /// the source while any such job is undecoded.
    pub fn from_snapshot_file_with<C: SnapshotCodec>(
        file: SnapshotFile,
        body_at: usize,
        events: Option<Arc<dyn EventSource>>,
    ) -> Result<Self, SnapshotError> {
        let whole: &[u8] = (*file).as_ref();
        let body = whole
            .get(body_at..)
            .ok_or_else(|| malformed(format!("no body at byte {body_at}")))?;
        let version = *body
            .first()
            .ok_or_else(|| malformed("an empty body, without a version"))?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion { found: version });
        }
        let pre: &[u8; PREAMBLE_LEN] = body.first_chunk().ok_or_else(|| {
            malformed(format!(
                "{} bytes, shorter than the {PREAMBLE_LEN}-byte preamble",
                body.len()
            ))
        })?;
        let head_len = usize::try_from(le64(pre, P_HEAD_LEN))
            .ok()
            .filter(|&len| (PREAMBLE_LEN..=body.len()).contains(&len))
            .ok_or_else(|| {
                malformed(format!(
                    "the head claims {} bytes, the body has {}",
                    le64(pre, P_HEAD_LEN),
                    body.len()
                ))
            })?;
        let head = &body[..head_len];
        let stored = le32(pre, P_HEAD_CRC);
        let computed = C::checksum(&head[CRC_FROM..]);
        if stored != computed {
            return Err(SnapshotError::HeadChecksum { stored, computed });
        }
        if pre[1..P_HEAD_CRC] != [0; 3]
            || pre[P_HAS_LAST_LSN + 1..P_KEY_COUNT] != [0; 3]
            || pre[P_ZERO..] != [0; 4]
        {
            return Err(malformed("a reserved byte of the preamble is not zero"));
        }
        let last_lsn = match (pre[P_HAS_LAST_LSN], le64(pre, P_LAST_LSN)) {
            (0, 0) => None,
            (1, lsn) => Some(lsn),
            (flag, lsn) => {
                return Err(malformed(format!(
                    "last LSN {lsn} with presence byte {flag}"
                )));
            }
        };
        let events_applied = le64(pre, P_EVENTS);
        let mut rest = &head[PREAMBLE_LEN..];

        // Keys: a count checked against the bytes before anything is
        // reserved for it.
        let key_count = le32(pre, P_KEY_COUNT) as usize;
        if key_count > rest.len() / KEY_MIN_LEN {
            return Err(malformed(format!(
                "{key_count} keys claimed in {} bytes",
                rest.len()
            )));
        }
        let mut keys: Vec<Arc<str>> = Vec::with_capacity(key_count);
        for k in 0..key_count {
            let (len, after) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| malformed(format!("key {k} is cut short")))?;
            let len = u32::from_le_bytes(*len) as usize;
            let bytes = after
                .get(..len)
                .ok_or_else(|| malformed(format!("key {k} claims {len} bytes")))?;
            let key = std::str::from_utf8(bytes)
                .map_err(|_| malformed(format!("key {k} is not UTF-8")))?;
            keys.push(Arc::from(key));
            rest = &after[len..];
        }

        // The lists the head ends with must fill it exactly.
        let (unfinished_count, live_count) =
            (le64(pre, P_UNFINISHED_COUNT), le64(pre, P_LIVE_COUNT));
        let fits = usize::try_from(unfinished_count).ok().and_then(|u| {
            let live = usize::try_from(live_count).ok()?;
            let bytes = u
                .checked_mul(UNFINISHED_LEN)?
                .checked_add(live.checked_mul(LIVE_LEN)?)?;
            (bytes == rest.len()).then_some(u * UNFINISHED_LEN)
        });
        let Some(unfinished_len) = fits else {
            return Err(malformed(format!(
                "{unfinished_count} unfinished jobs and {live_count} live runs claimed, the head leaves {} bytes",
                rest.len()
            )));
        };
        let (unfinished, lives) = rest.split_at(unfinished_len);

        // The base: its parts' sizes follow from the job count, checked
        // against the body before anything is reserved for them.
        let job_count = usize::try_from(le64(pre, P_JOB_COUNT))
            .ok()
            .filter(|&n| u32::try_from(n).is_ok())
            .ok_or_else(|| malformed(format!("{} jobs claimed", le64(pre, P_JOB_COUNT))))?;
        let chunk_count = job_count.div_ceil(CHUNK_JOBS);
        let details_at = usize::try_from(le64(pre, P_DETAILS_AT)).ok();
        let layout = details_at.and_then(|details_at| {
            let ids_at = head_len.checked_add(chunk_count.checked_mul(CHUNK_ENTRY_LEN)?)?;
            let regions_at = ids_at.checked_add(job_count.checked_mul(ID_ENTRY_LEN)?)?;
            let records_end = regions_at.checked_add(job_count.checked_mul(JOB_LEN)?)?;
            (records_end <= details_at && details_at <= body.len()).then_some((ids_at, regions_at))
        });
        let (Some((ids_at, regions_at)), Some(details_at)) = (layout, details_at) else {
            return Err(malformed(format!(
                "{job_count} jobs and details at byte {} do not fit a body of {} bytes",
                le64(pre, P_DETAILS_AT),
                body.len()
            )));
        };

        let (unfinished, _) = unfinished.as_chunks::<UNFINISHED_LEN>();
        let unfinished: Vec<u32> = unfinished.iter().map(|e| u32::from_le_bytes(*e)).collect();
        if let Some(w) = unfinished.windows(2).find(|w| w[0] >= w[1]) {
            return Err(malformed(format!(
                "unfinished jobs out of order: {} then {}",
                w[0], w[1]
            )));
        }
        if let Some(&last) = unfinished.last()
            && last as usize >= job_count
        {
            return Err(malformed(format!(
                "unfinished job {last} of {job_count} jobs"
            )));
        }

        // Live runs, grouped by job: (job, its runs and their statuses).
        let (lives, _) = lives.as_chunks::<LIVE_LEN>();
        let mut live: Vec<(usize, Vec<(u32, RunStatus)>)> = Vec::new();
        let mut last: Option<(u32, u32)> = None;
        for e in lives {
            let job = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let run = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let status = RUN_STATUSES.get(e[8] as usize).copied();
            let ok = status.is_some_and(|s| s.is_in_flight() || s == RunStatus::Interrupted);
            match status {
                Some(status)
                    if ok && (job as usize) < job_count && last.is_none_or(|l| l < (job, run)) =>
                {
                    match live.last_mut() {
                        Some((j, runs)) if *j == job as usize => runs.push((run, status)),
                        _ => live.push((job as usize, vec![(run, status)])),
                    }
                    last = Some((job, run));
                }
                _ => {
                    return Err(malformed(format!(
                        "live run {run} (status {}) of job {job}, of {job_count} jobs, after {last:?}",
                        e[8]
                    )));
                }
            }
        }

        let source = Arc::new(SnapshotSource {
            file: Arc::clone(&file),
            decode: decode_detail_with::<C>,
            checksum: C::checksum,
            format: TypeId::of::<C>(),
            events,
        });
        let live_counts = live
            .iter()
            .map(|(job, runs)| (*job as u32, runs.len() as u32))
            .collect();
        let base = Base {
            source,
            layout: Arc::new(BaseLayout {
                len: job_count,
                keys,
                body_at,
                chunks_at: body_at + head_len,
                ids_at: body_at + ids_at,
                regions_at: body_at + regions_at,
                regions_len: details_at - regions_at,
                details_at: body_at + details_at,
                details_len: body.len() - details_at,
                ids_crc: le32(pre, P_IDS_CRC),
                unfinished: unfinished.clone(),
                live_counts,
            }),
            slots: (0..chunk_count).map(|_| OnceLock::new()).collect(),
            regions_passed: (0..chunk_count).map(|_| OnceLock::new()).collect(),
            ids_checked: OnceLock::new(),
        };
        Projections::from_base(base, &unfinished, live, events_applied, last_lsn)
    }
}

/// What every job of a base shares, fixed at restore.
struct BaseLayout {
    /// Number of jobs in the base.
    len: usize,
    keys: Vec<Arc<str>>,
    /// Where the body starts in the file.
    body_at: usize,
    // Where each part starts in the file, and how long the regions and the
    // details are (the chunk table and the id index follow from `len`).
    chunks_at: usize,
    ids_at: usize,
    regions_at: usize,
    regions_len: usize,
    details_at: usize,
    details_len: usize,
    ids_crc: u32,
    /// Positions of the jobs the head lists as unfinished, in order.
    unfinished: Vec<u32>,
    /// (position, live runs) of each job the head lists live runs of.
    live_counts: Vec<(u32, u32)>,
}

/// One chunk's views, or why its bytes give none.
type Slot = OnceLock<Result<Box<[JobView]>, DetailError>>;

/// The jobs of a restored snapshot, at positions `0..len`: kept as the
/// snapshot's bytes, and materialized as views a chunk of
/// [`CHUNK_JOBS`] at a time when first used. A chunk's bytes are checked
/// (its checksum, then each record as a restore of the whole head once
/// did) when it is materialized; a chunk that fails gives a
/// [`DetailError`] for each of its jobs, never a view.
#[derive(Clone)]
pub(crate) struct Base {
    source: Arc<SnapshotSource>,
    layout: Arc<BaseLayout>,
    slots: Vec<Slot>,
    /// Whether the id index passed its checksum, checked on first lookup.
    ids_checked: OnceLock<Result<(), String>>,
    /// Set for each chunk whose region passed its checksum: a listing
    /// reads a chunk's records again each time, and the mapped bytes do
    /// not change under it. A failure is not kept; it is found again.
    regions_passed: Vec<OnceLock<()>>,
}

impl fmt::Debug for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Base")
            .field("len", &self.layout.len)
            .field(
                "chunks_materialized",
                &self.slots.iter().filter(|s| s.get().is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

/// The name a [`DetailError`] gives a job whose id cannot be read.
fn position_name(position: usize) -> JobId {
    JobId::from(format!("#{position}"))
}

impl Base {
    /// Number of jobs.
    pub(crate) fn len(&self) -> usize {
        self.layout.len
    }

    /// The view at `position` if its chunk is materialized (and well).
    pub(crate) fn loaded(&self, position: usize) -> Option<&JobView> {
        match self.slots.get(position / CHUNK_JOBS)?.get()? {
            Ok(jobs) => jobs.get(position % CHUNK_JOBS),
            Err(_) => None,
        }
    }

    /// The view at `position`, materializing its chunk if needed.
    pub(crate) fn get(&self, position: usize) -> Result<&JobView, DetailError> {
        let chunk = position / CHUNK_JOBS;
        let slot = self.slots.get(chunk).ok_or_else(|| DetailError {
            job: position_name(position),
            reason: format!("no job at position {position} of {}", self.len()),
        })?;
        match slot.get_or_init(|| self.load_chunk(chunk)) {
            Ok(jobs) => jobs.get(position % CHUNK_JOBS).ok_or_else(|| DetailError {
                job: position_name(position),
                reason: format!("no job at position {position} of {}", self.len()),
            }),
            Err(e) => Err(e.clone()),
        }
    }

    /// The view at `position`, for a change, if its chunk is materialized.
    pub(crate) fn get_mut(&mut self, position: usize) -> Option<&mut JobView> {
        match self.slots.get_mut(position / CHUNK_JOBS)?.get_mut()? {
            Ok(jobs) => jobs.get_mut(position % CHUNK_JOBS),
            Err(_) => None,
        }
    }

    /// The position of the job with id `id`, found by a binary search of
    /// the id index; the job found is materialized, and its id compared.
    /// An index that is not sorted gives a miss, one that names another
    /// job a [`DetailError`]; neither can point out of the body.
    pub(crate) fn find(&self, id: &str) -> Result<Option<usize>, DetailError> {
        let l = &*self.layout;
        let fail = |reason: String| DetailError {
            job: JobId::from(id),
            reason,
        };
        let file: &[u8] = (*self.source.file).as_ref();
        let entries = self.id_index().map_err(fail)?;
        let body = file.get(l.body_at..).unwrap_or_default();
        let mut out_of_body = None;
        let found = entries.binary_search_by(|e| {
            let at = usize::try_from(le64(e, I_ID_AT)).unwrap_or(usize::MAX);
            let len = le32(e, I_ID_LEN) as usize;
            match body.get(at..at.saturating_add(len)) {
                Some(key) => key.cmp(id.as_bytes()),
                None => {
                    out_of_body = Some((at, len));
                    // Ends the search toward one side; the error wins.
                    std::cmp::Ordering::Less
                }
            }
        });
        if let Some((at, len)) = out_of_body {
            return Err(fail(format!(
                "the snapshot's id index names {len} bytes at byte {at}, out of the body"
            )));
        }
        let Some(entry) = found.ok().and_then(|k| entries.get(k)) else {
            return Ok(None);
        };
        let position = le32(entry, I_POSITION) as usize;
        let job = self.get(position)?;
        if job.id.as_str() != id {
            return Err(fail(format!(
                "the snapshot's id index names job #{position}, whose id is {}",
                job.id
            )));
        }
        Ok(Some(position))
    }

    /// The id index's entries, once its checksum is checked.
    fn id_index(&self) -> Result<&[[u8; ID_ENTRY_LEN]], String> {
        let l = &*self.layout;
        let file: &[u8] = (*self.source.file).as_ref();
        // In the body: checked at restore.
        let ids = file
            .get(l.ids_at..l.ids_at + l.len * ID_ENTRY_LEN)
            .ok_or_else(|| "the id index is out of the body".to_owned())?;
        let checked = self.ids_checked.get_or_init(|| {
            let computed = (self.source.checksum)(ids);
            if computed == l.ids_crc {
                Ok(())
            } else {
                Err(format!(
                    "the snapshot's id index fails its checksum (stored {:#010x}, computed {computed:#010x})",
                    l.ids_crc
                ))
            }
        });
        checked.clone()?;
        Ok(ids.as_chunks::<ID_ENTRY_LEN>().0)
    }

    /// The base's positions in the order its id index lists them, if the
    /// index passes its checksum (the caller checks what it trusts).
    fn positions_by_id(&self) -> Option<impl Iterator<Item = usize> + '_> {
        let entries = self.id_index().ok()?;
        Some(entries.iter().map(|e| le32(e, I_POSITION) as usize))
    }

    /// The views of chunk `chunk`, from its bytes.
    fn load_chunk(&self, chunk: usize) -> Result<Box<[JobView]>, DetailError> {
        let jobs = self.decode_chunk(chunk, |fields| fields.into_view(&self.source))?;
        Ok(jobs.into_boxed_slice())
    }

    /// The listing row of the job at `position`: from its view if its
    /// chunk is materialized, else from its record, through `cache`, which
    /// keeps the rows of the last chunk read so (a listing walks a chunk's
    /// positions one after another), each to be taken once: a cache is
    /// for one walk that reaches each position at most once. A chunk that
    /// fails gives the error materializing it would, and is not
    /// materialized.
    pub(crate) fn row(
        &self,
        position: usize,
        cache: &mut RowCache,
    ) -> Result<JobSummary, DetailError> {
        let chunk = position / CHUNK_JOBS;
        let missing = || DetailError {
            job: position_name(position),
            reason: format!("no job at position {position} of {}", self.len()),
        };
        let slot = self.slots.get(chunk).ok_or_else(missing)?;
        match slot.get() {
            Some(Ok(jobs)) => jobs
                .get(position % CHUNK_JOBS)
                .map(JobSummary::from)
                .ok_or_else(missing),
            Some(Err(e)) => Err(e.clone()),
            None => {
                if cache.chunk != Some(chunk) {
                    cache.rows = self.decode_chunk(chunk, |fields| Some(fields.row()));
                    cache.chunk = Some(chunk);
                }
                match &mut cache.rows {
                    // A listing reaches each position once: the row is
                    // taken, not copied.
                    Ok(rows) => rows
                        .get_mut(position % CHUNK_JOBS)
                        .and_then(Option::take)
                        .ok_or_else(missing),
                    Err(e) => Err(e.clone()),
                }
            }
        }
    }

    /// Chunk `chunk`'s records, checked (the chunk's checksum, then each
    /// record as [`ChunkReader::fields`] does), each made into a `T` by
    /// `each`.
    fn decode_chunk<'s, T>(
        &'s self,
        chunk: usize,
        mut each: impl FnMut(Fields<'s>) -> T,
    ) -> Result<Vec<T>, DetailError> {
        let l = &*self.layout;
        let first = chunk * CHUNK_JOBS;
        let fail = |reason: String| DetailError {
            job: position_name(first),
            reason: format!("its chunk, of jobs from #{first}: {reason}"),
        };
        let count = CHUNK_JOBS.min(l.len.saturating_sub(first));
        let file: &[u8] = (*self.source.file).as_ref();
        let entry = |c: usize| -> Option<&[u8; CHUNK_ENTRY_LEN]> {
            file.get(l.chunks_at + c * CHUNK_ENTRY_LEN..)?.first_chunk()
        };
        let this = entry(chunk).ok_or_else(|| fail("its table entry is out of the body".into()))?;
        if this[C_ZERO..] != [0; 4] {
            return Err(fail(
                "reserved bytes of its table entry are not zero".into(),
            ));
        }
        // A chunk ends where the next one starts; the last, where its part
        // of the body does.
        let (region_end, detail_end) = match entry(chunk + 1) {
            Some(next) if chunk + 1 < self.slots.len() => {
                (le64(next, C_REGION_AT), le64(next, C_DETAIL_AT))
            }
            _ => (l.regions_len as u64, l.details_len as u64),
        };
        let (region_at, detail_at) = (le64(this, C_REGION_AT), le64(this, C_DETAIL_AT));
        if region_at > region_end
            || region_end > l.regions_len as u64
            || detail_at > detail_end
            || detail_end > l.details_len as u64
        {
            return Err(fail(format!(
                "bytes {region_at}..{region_end} of {} and details {detail_at}..{detail_end} of {}",
                l.regions_len, l.details_len
            )));
        }
        // Within `regions_len` and `details_len`, which fit the body.
        let region = file
            .get(l.regions_at + region_at as usize..l.regions_at + region_end as usize)
            .ok_or_else(|| fail("its region is out of the body".into()))?;
        let passed = self.regions_passed.get(chunk);
        if passed.and_then(OnceLock::get).is_none() {
            let stored = le32(this, C_CRC);
            let computed = (self.source.checksum)(region);
            if stored != computed {
                return Err(fail(format!(
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )));
            }
            if let Some(passed) = passed {
                let _ = passed.set(());
            }
        }
        let (records, text) = region
            .split_at_checked(count * JOB_LEN)
            .ok_or_else(|| fail(format!("{} bytes for {count} records", region.len())))?;
        let text = std::str::from_utf8(text)
            .map_err(|e| fail(format!("its text is not UTF-8 at byte {}", e.valid_up_to())))?;
        let (records, _) = records.as_chunks::<JOB_LEN>();
        let mut reader = ChunkReader {
            text,
            keys: &l.keys,
            details_at: l.details_at + detail_at as usize,
            details_left: (detail_end - detail_at) as usize,
        };
        let mut jobs = Vec::with_capacity(count);
        for (k, record) in records.iter().enumerate() {
            let position = first + k;
            let listed = Listed {
                unfinished: l.unfinished.binary_search(&(position as u32)).is_ok(),
                live: l
                    .live_counts
                    .binary_search_by_key(&(position as u32), |e| e.0)
                    .ok()
                    .and_then(|i| l.live_counts.get(i))
                    .map_or(0, |e| e.1),
            };
            let fields = reader
                .fields(record, listed)
                .map_err(|(id, reason)| DetailError {
                    job: id.unwrap_or_else(|| position_name(position)),
                    reason: format!("its record: {reason}"),
                })?;
            jobs.push(each(fields));
        }
        if !reader.text.is_empty() || reader.details_left != 0 {
            return Err(fail(format!(
                "{} bytes of text and {} of details left after its last job",
                reader.text.len(),
                reader.details_left
            )));
        }
        Ok(jobs)
    }
}

/// A job of the base to be written from its record, not its view
/// ([`Base::copied`], [`Writer::push_copied`]).
struct Copied<'a> {
    fields: Fields<'a>,
    /// How its detail is written.
    detail: Form,
    /// Its detail's bytes ([`Form::Copy`]), or the event LSN list they
    /// start with ([`Form::Lsns`]).
    bytes: &'a [u8],
}

impl Base {
    /// The jobs of chunk `chunk`, to be written from their records instead
    /// of their views, when that gives the same bytes: `chunk_jobs` is the
    /// number of jobs of the snapshot's chunk at the same positions, and
    /// `details_form` the snapshot's. The records are checked as
    /// materializing them would check them (the chunk's checksum, then
    /// [`ChunkReader::fields`]), and the chunk stays unmaterialized.
    ///
    /// `None`, for the caller to write the chunk's views, when the chunk
    /// is materialized (its views may have changed since); when the
    /// snapshot's chunk is not this chunk alone (jobs created since the
    /// restore follow a last chunk that was not full); when the chunk
    /// fails a check (materializing it reports the failure); or when a
    /// job is unfinished or has live runs (the head lists those, and the
    /// restore materialized them anyway) or has a detail that
    /// [`write_as_restored`] would decode, or rebuild from the log.
    fn copied<C: SnapshotCodec>(
        &self,
        chunk: usize,
        chunk_jobs: usize,
        details_form: SnapshotDetails,
    ) -> Option<Vec<Copied<'_>>> {
        if self.slots.get(chunk)?.get().is_some() {
            return None;
        }
        let first = chunk * CHUNK_JOBS;
        if CHUNK_JOBS.min(self.len().saturating_sub(first)) != chunk_jobs {
            return None;
        }
        let file: &[u8] = (*self.source.file).as_ref();
        let format = TypeId::of::<C>();
        let jobs = self
            .decode_chunk(chunk, |fields| {
                let r = fields.r;
                if !fields.status.is_finished() || le32(r, R_LIVE_COUNT) != 0 {
                    return None;
                }
                let bytes = file.get(fields.detail.clone())?;
                // What the job's view would say of its detail: its events
                // are `InSnapshot` exactly when the flag is set.
                let split = match r[R_FLAGS] & F_LSNS {
                    0 => None,
                    _ => split_lsns(bytes),
                };
                let only_lsns = split.is_some_and(|(_, rest)| rest.is_empty());
                let from_log = held_from_log(details_form, le64(r, R_INPUT_LSN));
                if only_lsns && !from_log {
                    return None;
                }
                // Never decoded: it cannot have failed.
                let detail = restored_form(
                    Some(bytes),
                    le32(r, R_DETAIL_CRC),
                    &self.source,
                    split,
                    false,
                    from_log,
                    format,
                )?;
                let bytes = match detail {
                    Form::Copy => bytes,
                    Form::Lsns => split?.0,
                };
                Some(Copied {
                    fields,
                    detail,
                    bytes,
                })
            })
            .ok()?;
        jobs.into_iter().collect()
    }

    /// Number of chunks materialized as views.
    #[cfg(test)]
    fn materialized_chunks(&self) -> usize {
        self.slots.iter().filter(|s| s.get().is_some()).count()
    }
}

/// The rows of the chunk a listing read last from its records.
#[derive(Debug)]
pub(crate) struct RowCache {
    chunk: Option<usize>,
    rows: Result<Vec<Option<JobSummary>>, DetailError>,
}

impl Default for RowCache {
    fn default() -> Self {
        Self {
            chunk: None,
            rows: Ok(Vec::new()),
        }
    }
}

/// What the head says of one job, for its record to agree with.
struct Listed {
    /// Listed as unfinished.
    unfinished: bool,
    /// Runs listed as live.
    live: u32,
}

/// Reads one chunk's job records in order, taking each job's strings from
/// the chunk's text and its detail's span from the details.
struct ChunkReader<'a> {
    /// The chunk's text not yet taken (checked UTF-8 as a whole).
    text: &'a str,
    keys: &'a [Arc<str>],
    /// Where the next job's detail starts, in the file.
    details_at: usize,
    /// The chunk's detail bytes not yet claimed.
    details_left: usize,
}

impl<'a> ChunkReader<'a> {
    /// The next `len` bytes of the text, which must end on a character
    /// boundary.
    fn text(&mut self, len: u32, what: &str) -> Result<&'a str, String> {
        let (taken, rest) = self.text.split_at_checked(len as usize).ok_or_else(|| {
            format!(
                "{what} claims {len} bytes of the {} left, or ends inside a character",
                self.text.len()
            )
        })?;
        self.text = rest;
        Ok(taken)
    }

    /// The next job's record, checked, with its strings taken from the
    /// text and its detail's span claimed. Fails with the job's id when
    /// that much could be read.
    fn fields(
        &mut self,
        r: &'a Record,
        listed: Listed,
    ) -> Result<Fields<'a>, (Option<JobId>, String)> {
        let id = self
            .text(le32(r, R_ID_LEN), "a job id")
            .map_err(|e| (None, e))?;
        let bad = |what: String| (Some(JobId::from(id)), what);
        let flags = r[R_FLAGS];
        let status = *JOB_STATUSES
            .get(r[R_STATUS] as usize)
            .ok_or_else(|| bad(format!("status {}", r[R_STATUS])))?;
        if status.is_finished() == listed.unfinished {
            return Err(bad(format!(
                "status {status}, and the head lists it as unfinished: {}",
                listed.unfinished
            )));
        }
        let key = self
            .keys
            .get(le32(r, R_KEY) as usize)
            .ok_or_else(|| bad(format!("key {} of {}", le32(r, R_KEY), self.keys.len())))?;
        if flags & !F_ALL != 0 || r[R_ZERO..] != [0; 4] {
            return Err(bad(format!("flags {flags:#x} or reserved bytes not zero")));
        }
        // Absent fields are zero, so that views have one encoding.
        let finished_at = match flags & F_FINISHED_AT {
            0 if le64(r, R_FINISHED_AT) == 0 => None,
            0 => return Err(bad("a finish time without its flag".into())),
            _ => Some(Timestamp(le64(r, R_FINISHED_AT))),
        };
        let fingerprint = match flags & F_FINGERPRINT {
            0 if le32(r, R_FINGERPRINT_LEN) == 0 => None,
            0 => return Err(bad("a fingerprint without its flag".into())),
            _ => Some(
                self.text(le32(r, R_FINGERPRINT_LEN), "a fingerprint")
                    .map_err(bad)?,
            ),
        };
        let finish_len = le32(r, R_FINISH_LEN);
        let finish = match r[R_FINISH] {
            FINISH_NONE | FINISH_COMPLETED if finish_len != 0 => {
                return Err(bad("a finish message without a failure".into()));
            }
            FINISH_NONE => None,
            FINISH_COMPLETED => Some(FinishIn::Completed),
            FINISH_FAILED => Some(FinishIn::Failed(
                self.text(finish_len, "a finish message").map_err(bad)?,
            )),
            FINISH_CANCELLED => Some(FinishIn::Cancelled(
                self.text(finish_len, "a finish message").map_err(bad)?,
            )),
            other => return Err(bad(format!("finish kind {other}"))),
        };
        let external = match flags & F_EXTERNAL {
            0 if le64(r, R_EXTERNAL_AT) == 0
                && le32(r, R_EXTERNAL_LEN) == 0
                && r[R_EXTERNAL_STATUS] == 0 =>
            {
                None
            }
            0 => return Err(bad("an external status without its flag".into())),
            _ => Some((
                *EXTERNAL_STATUSES
                    .get(r[R_EXTERNAL_STATUS] as usize)
                    .ok_or_else(|| bad(format!("external status {}", r[R_EXTERNAL_STATUS])))?,
                self.text(le32(r, R_EXTERNAL_LEN), "an external detail")
                    .map_err(bad)?,
            )),
        };
        let live_count = le32(r, R_LIVE_COUNT);
        if live_count != listed.live {
            return Err(bad(format!(
                "{live_count} live runs, the head lists {}",
                listed.live
            )));
        }
        let len = usize::try_from(le64(r, R_DETAIL_LEN))
            .ok()
            .filter(|&len| len <= self.details_left)
            .ok_or_else(|| {
                bad(format!(
                    "claims {} detail bytes, at most {} are left",
                    le64(r, R_DETAIL_LEN),
                    self.details_left
                ))
            })?;
        let detail_at = self.details_at;
        self.details_at += len;
        self.details_left -= len;
        Ok(Fields {
            r,
            id,
            key,
            status,
            finished_at,
            fingerprint,
            finish,
            external,
            detail: detail_at..detail_at + len,
        })
    }
}

/// How a job last finished, its message still in the chunk's text.
enum FinishIn<'a> {
    Completed,
    Failed(&'a str),
    Cancelled(&'a str),
}

/// One job's record, checked by [`ChunkReader::fields`], its strings
/// borrowed from the snapshot's bytes: made into a view when its chunk is
/// materialized, or into a listing row alone.
struct Fields<'a> {
    r: &'a Record,
    id: &'a str,
    key: &'a Arc<str>,
    status: JobStatus,
    finished_at: Option<Timestamp>,
    fingerprint: Option<&'a str>,
    finish: Option<FinishIn<'a>>,
    /// The external status and its detail (its time is in the record).
    external: Option<(ExternalStatus, &'a str)>,
    /// Where the job's detail is in the file.
    detail: std::ops::Range<usize>,
}

impl<'a> Fields<'a> {
    /// The job's strings after its id, in the order its chunk's text holds
    /// them: fingerprint, finish message, external detail (each empty when
    /// absent).
    fn text_after_id(&self) -> [&'a str; 3] {
        let message = match self.finish {
            Some(FinishIn::Failed(m) | FinishIn::Cancelled(m)) => m,
            Some(FinishIn::Completed) | None => "",
        };
        [
            self.fingerprint.unwrap_or_default(),
            message,
            self.external.map_or("", |(_, detail)| detail),
        ]
    }

    fn usage(&self) -> Usage {
        let r = self.r;
        Usage {
            input_tokens: le64(r, R_INPUT_TOKENS),
            output_tokens: le64(r, R_OUTPUT_TOKENS),
            cost_micros: le64(r, R_COST_MICROS),
        }
    }

    /// The job's listing row: what [`JobSummary::from`] takes from the view
    /// [`Fields::into_view`] makes, whose detail is not decoded, so its
    /// run count is the record's.
    fn row(&self) -> JobSummary {
        let r = self.r;
        JobSummary {
            id: JobId::from(self.id),
            key: Arc::clone(self.key),
            status: self.status,
            total_steps: le64(r, R_TOTAL_STEPS),
            usage: self.usage(),
            started_at: Timestamp(le64(r, R_STARTED_AT)),
            finished_at: self.finished_at,
            fingerprint: self.fingerprint.map(Arc::from),
            runs: le32(r, R_RUNS) as usize,
        }
    }

    /// The job's view, its detail still bytes.
    fn into_view(self, source: &Arc<SnapshotSource>) -> JobView {
        let r = self.r;
        let usage = self.usage();
        JobView {
            id: JobId::from(self.id),
            key: Arc::clone(self.key),
            input: PayloadRef {
                lsn: le64(r, R_INPUT_LSN),
                len: le64(r, R_INPUT_LEN),
            },
            fingerprint: self.fingerprint.map(Arc::from),
            status: self.status,
            total_steps: le64(r, R_TOTAL_STEPS),
            usage,
            started_at: Timestamp(le64(r, R_STARTED_AT)),
            finished_at: self.finished_at,
            finish: self.finish.map(|f| match f {
                FinishIn::Completed => FinishReason::Completed,
                FinishIn::Failed(m) => FinishReason::Failed(m.to_owned()),
                FinishIn::Cancelled(m) => FinishReason::Cancelled(m.to_owned()),
            }),
            external: self.external.map(|(status, detail)| ExternalObservation {
                status,
                detail: detail.to_owned(),
                at: Timestamp(le64(r, R_EXTERNAL_AT)),
            }),
            last_lsn: le64(r, R_LAST_LSN),
            detail: Detail {
                loaded: OnceLock::new(),
                events: if r[R_FLAGS] & F_LSNS != 0 {
                    EventLsns::InSnapshot
                } else {
                    EventLsns::Unknown
                },
                lazy: Some(LazyDetail {
                    source: Arc::clone(source),
                    start: self.detail.start,
                    end: self.detail.end,
                    crc: le32(r, R_DETAIL_CRC),
                    run_count: le32(r, R_RUNS),
                }),
            },
        }
    }
}

/// Decodes the detail of `job` from its bytes, after checking their
/// checksum; puts back what the snapshot left out and the run and
/// checkpoint indexes, and checks it against the job's summary, whose
/// runs in flight or interrupted are `live`. The summary has not changed
/// since the restore: every event about a job decodes its detail before it
/// changes anything.
pub(crate) fn decode_detail(
    job: &JobView,
    lazy: &LazyDetail,
    live: &[(u32, RunStatus)],
) -> Result<JobDetail, DetailError> {
    let fail = |reason: String| DetailError {
        job: job.id.clone(),
        reason,
    };
    let bytes = lazy
        .bytes()
        .ok_or_else(|| fail("detail out of its body".into()))?;
    let computed = (lazy.source.checksum)(bytes);
    if computed != lazy.crc {
        return Err(fail(format!(
            "checksum mismatch (stored {:#010x}, computed {computed:#010x})",
            lazy.crc
        )));
    }
    let encoded = if matches!(job.detail.events, EventLsns::InSnapshot) {
        let (list, rest) = lazy
            .split_lsns()
            .ok_or_else(|| fail("its list of event LSNs is cut short".into()))?;
        let last = event_lsns::last_lsn(job.input.lsn, list)
            .map_err(|e| fail(format!("its list of event LSNs is malformed: {e}")))?;
        if last != job.last_lsn {
            return Err(fail(format!(
                "its event LSNs end at {last}, its summary says {}",
                job.last_lsn
            )));
        }
        if rest.is_empty() {
            return rebuild_from_log(job, lazy, list, live);
        }
        rest
    } else {
        bytes
    };
    let detail =
        (lazy.source.decode)(encoded).map_err(|e| fail(format!("does not decode: {e}")))?;
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
    runs_agree(&view.runs, lazy, live, "").map_err(fail)?;
    Ok(view)
}

/// Checks a decoded or rebuilt detail's runs against what the job's
/// summary says of them: how many, and which are in flight or
/// interrupted. `made` starts the count's message ("its events make ").
fn runs_agree(
    runs: &[RunView],
    lazy: &LazyDetail,
    live: &[(u32, RunStatus)],
    made: &str,
) -> Result<(), String> {
    if runs.len() != lazy.run_count as usize {
        return Err(format!(
            "{made}{} runs, its summary says {}",
            runs.len(),
            lazy.run_count
        ));
    }
    let found = live_runs(runs)?;
    if found != live {
        return Err(format!(
            "runs in flight or interrupted {found:?}, its summary says {live:?}"
        ));
    }
    Ok(())
}

/// Rebuilds the runs and checkpoints of `job`, which a snapshot holds as
/// the LSNs of its events (`list`, checked: they end at the job's last
/// LSN), by applying those events, read from the log, to empty views:
/// the transitions that made the job make its detail again. Every event
/// must be the job's and apply, and the job they make must be the one the
/// summary describes: the same summary, runs and live runs.
fn rebuild_from_log(
    job: &JobView,
    lazy: &LazyDetail,
    list: &[u8],
    live: &[(u32, RunStatus)],
) -> Result<JobDetail, DetailError> {
    let fail = |reason: String| DetailError {
        job: job.id.clone(),
        reason,
    };
    let source = lazy.source.events.as_deref().ok_or_else(|| {
        fail(
            "its runs and checkpoints are in the log, and there is no log to read them from".into(),
        )
    })?;
    let mut fresh = Projections::new();
    for lsn in event_lsns::lsns(job.input.lsn, list) {
        let lsn = lsn.map_err(|e| fail(format!("its list of event LSNs is malformed: {e}")))?;
        let mut applied = Err(String::from("the log gave no event"));
        source
            .with_event(lsn, &mut |event| {
                applied = if event.job != job.id.as_str() {
                    Err(format!("the event at LSN {lsn} is of job {}", event.job))
                } else {
                    fresh
                        .apply_ref(lsn, event)
                        .map_err(|e| format!("the event at LSN {lsn} does not apply: {e}"))
                };
            })
            .map_err(|e| fail(format!("its event at LSN {lsn} cannot be read: {e}")))?;
        applied.map_err(fail)?;
    }
    let rebuilt = fresh
        .into_only_job()
        .ok_or_else(|| fail("its events do not make one job".into()))?;
    if let Some(field) = summary_differs(job, &rebuilt) {
        return Err(fail(format!(
            "its events make a job whose {field} differs from its summary"
        )));
    }
    let detail = match rebuilt.detail.loaded.into_inner() {
        Some(Ok(detail)) => detail,
        // A job made by applying events has its detail decoded.
        _ => return Err(fail("its events made no detail".into())),
    };
    runs_agree(&detail.runs, lazy, live, "its events make ").map_err(fail)?;
    Ok(detail)
}

/// The first field in which two job summaries differ, if any.
fn summary_differs(a: &JobView, b: &JobView) -> Option<&'static str> {
    let fields = [
        ("id", a.id == b.id),
        ("key", a.key == b.key),
        ("input", a.input == b.input),
        ("fingerprint", a.fingerprint == b.fingerprint),
        ("status", a.status == b.status),
        ("total_steps", a.total_steps == b.total_steps),
        ("usage", a.usage == b.usage),
        ("started_at", a.started_at == b.started_at),
        ("finished_at", a.finished_at == b.finished_at),
        ("finish", a.finish == b.finish),
        ("external", a.external == b.external),
        ("last_lsn", a.last_lsn == b.last_lsn),
    ];
    fields.iter().find(|(_, same)| !same).map(|(name, _)| *name)
}

/// What a job restored from a snapshot and not decoded since is written as,
/// without decoding it.
enum Restored<'a> {
    /// The bytes it was restored from, with their checksum and flags.
    Copy(&'a LazyDetail),
    /// Its event LSNs alone (the detail held them, with more).
    Lsns(&'a LazyDetail, &'a [u8]),
}

/// How `job` is written without decoding it, if it can be: `from_log`
/// says whether the snapshot may hold it as its event LSNs, `format` is
/// the snapshot's codec. `None`: decode it and write what it holds.
fn write_as_restored(job: &JobView, from_log: bool, format: TypeId) -> Option<Restored<'_>> {
    if job.loaded_detail().is_some() {
        return None;
    }
    let lazy = job.detail.lazy.as_ref()?;
    let split = job.detail.snapshot_lsns();
    let only_lsns = split.is_some_and(|(_, rest)| rest.is_empty());
    // Held by its LSNs alone and to be written in full: rebuilt now and
    // written decoded, or, if it cannot be, copied below as it is (the
    // snapshot can still be written, and the failure stays detected).
    if !from_log && only_lsns && job.detail().is_ok() {
        return None;
    }
    let failed = job.detail.loaded.get().is_some();
    let form = restored_form(
        lazy.bytes(),
        lazy.crc,
        &lazy.source,
        split,
        failed,
        from_log,
        format,
    )?;
    match form {
        Form::Copy => Some(Restored::Copy(lazy)),
        Form::Lsns => split.map(|(list, _)| Restored::Lsns(lazy, list)),
    }
}

/// How a detail still the bytes it was restored from is written without
/// decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Those bytes, with their checksum.
    Copy,
    /// The event LSN list they start with, alone.
    Lsns,
}

/// The form [`write_as_restored`] writes an undecoded detail in, if it can
/// be written undecoded: `bytes` are the detail, `crc` their stored
/// checksum, `source` the snapshot they are in, `split` its event LSN list
/// and the rest if it starts with one, `failed` whether decoding it was
/// tried and failed; `from_log` and `format` as [`write_as_restored`]
/// takes them. `None`: decode it. A detail held by its LSNs alone and to
/// be written in full is for the caller to rebuild first.
fn restored_form(
    bytes: Option<&[u8]>,
    crc: u32,
    source: &SnapshotSource,
    split: Option<(&[u8], &[u8])>,
    failed: bool,
    from_log: bool,
    format: TypeId,
) -> Option<Form> {
    let only_lsns = split.is_some_and(|(_, rest)| rest.is_empty());
    if from_log && !failed && !only_lsns && split.is_some() {
        // Written with a new checksum: only bytes that pass theirs.
        let intact = bytes.is_some_and(|b| (source.checksum)(b) == crc);
        if intact {
            return Some(Form::Lsns);
        }
    }
    // A detail that failed keeps failing, with its checksum: copied as it
    // is. So is one already in the form asked for, or in the same codec.
    let same_codec = source.format == format;
    (failed || (only_lsns && from_log) || (same_codec && !only_lsns)).then_some(Form::Copy)
}

/// Whether a snapshot written as `details_form` may hold the job whose
/// input is at `input_lsn` as its event LSNs.
fn held_from_log(details_form: SnapshotDetails, input_lsn: Lsn) -> bool {
    match details_form {
        SnapshotDetails::Full => false,
        SnapshotDetails::FromLog { first_lsn } => input_lsn >= first_lsn,
    }
}

/// Appends a job's event LSN list, framed by its length.
fn push_lsn_list(out: &mut Vec<u8>, list: &[u8]) {
    event_lsns::push_varint(out, list.len() as u64);
    out.extend_from_slice(list);
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

/// Writing a snapshot of views restored from one writes the base's chunks
/// that nobody used from their records (`Base::copied`), and the bytes
/// must be those that writing every job's view gives: a snapshot written
/// right after a restore is the body restored, with no chunk
/// materialized; one written after some jobs changed or were added is
/// the one the same views, every job materialized first, give.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Change, Event, JobOutcome};
    use crate::types::{CheckpointId, RunId, Timestamp};

    /// The engine's codec, postcard, as the integration tests have it.
    struct Postcard;

    impl SnapshotCodec for Postcard {
        fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
            let buf = std::mem::take(out);
            *out = postcard::to_extend(value, buf).map_err(|e| e.to_string())?;
            Ok(())
        }

        fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String> {
            let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
            Ok((value, bytes.len() - rest.len()))
        }

        fn checksum(bytes: &[u8]) -> u32 {
            crc32fast::hash(bytes)
        }
    }

    /// Postcard under another name: a codec whose details a restore in
    /// postcard cannot take as its own.
    struct OtherCodec;

    impl SnapshotCodec for OtherCodec {
        fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
            Postcard::encode_into(value, out)
        }

        fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String> {
            Postcard::decode_prefix(bytes)
        }

        fn checksum(bytes: &[u8]) -> u32 {
            Postcard::checksum(bytes)
        }
    }

    /// The events of `jobs` jobs over a few keys, each run, stepped and
    /// finished in one of several ways (some with a fingerprint, a failure
    /// message or an external status), but for job 70, left running.
    fn events(jobs: usize) -> Vec<(Lsn, Event)> {
        let mut out = Vec::new();
        let mut push = |job: &str, change: Change| {
            let lsn = out.len() as Lsn;
            out.push((
                lsn,
                Event {
                    at: Timestamp(1000 + lsn),
                    job: JobId::from(job),
                    change,
                },
            ));
        };
        for i in 0..jobs {
            let job = format!("job-{:05}", (i * 7919) % 100_003);
            push(
                &job,
                Change::JobCreated {
                    key: format!("key-{}", i % 5),
                    input: vec![i as u8; i % 7],
                    fingerprint: (i % 3 == 0).then(|| format!("fp-{i}")),
                },
            );
            push(
                &job,
                Change::RunStarted {
                    run: RunId::from("r"),
                    resume_from: None,
                    code_version: None,
                },
            );
            push(
                &job,
                Change::StepRecorded {
                    run: RunId::from("r"),
                    checkpoint: CheckpointId::from("c"),
                    usage: Usage {
                        input_tokens: i as u64,
                        output_tokens: 2,
                        cost_micros: 3,
                    },
                    phase: None,
                    payload: vec![1, 2, 3],
                },
            );
            if i % 5 == 2 {
                push(
                    &job,
                    Change::ExternalStatusObserved {
                        status: ExternalStatus::Running,
                        detail: format!("external {i}"),
                    },
                );
            }
            if i == 70 {
                continue;
            }
            push(
                &job,
                Change::RunCompleted {
                    run: RunId::from("r"),
                    output: vec![9],
                },
            );
            let outcome = match i % 4 {
                0 => JobOutcome::Failed {
                    error: format!("error {i}"),
                },
                1 => JobOutcome::Cancelled {
                    reason: String::new(),
                },
                _ => JobOutcome::Completed,
            };
            push(&job, Change::JobFinished { outcome });
        }
        out
    }

    fn fold(events: &[(Lsn, Event)]) -> Projections {
        let mut state = Projections::new();
        for (lsn, event) in events {
            state.apply(*lsn, event).expect("the events apply");
        }
        state
    }

    fn restore(body: &[u8], events: &[(Lsn, Event)]) -> Projections {
        Projections::from_snapshot_file_with::<Postcard>(
            Arc::new(body.to_vec()),
            0,
            Some(Arc::new(Log(events.iter().cloned().collect()))),
        )
        .expect("the body restores")
    }

    struct Log(HashMap<Lsn, Event>);

    impl EventSource for Log {
        fn with_event(
            &self,
            lsn: Lsn,
            f: &mut dyn FnMut(&crate::event::EventRef<'_>),
        ) -> Result<(), String> {
            let event = self.0.get(&lsn).ok_or(format!("no event at {lsn}"))?;
            f(&event.as_ref());
            Ok(())
        }
    }

    fn materialized(state: &Projections) -> usize {
        state.base().map_or(0, Base::materialized_chunks)
    }

    /// `state` with every job materialized: what writing a snapshot did
    /// before chunks were copied.
    fn every_job_used(state: Projections) -> Projections {
        for job in state.jobs() {
            job.expect("every job reads");
        }
        state
    }

    fn body<C: SnapshotCodec>(state: &Projections, form: SnapshotDetails) -> Vec<u8> {
        state
            .to_snapshot_with::<C>(form)
            .expect("the snapshot writes")
    }

    const FROM_LOG: SnapshotDetails = SnapshotDetails::FromLog { first_lsn: 0 };

    #[test]
    fn a_snapshot_after_a_restore_copies_every_chunk_nobody_used() {
        // Three full chunks and a partial one; job 70 (chunk 1) running.
        let events = events(3 * CHUNK_JOBS + 10);
        let state = fold(&events);
        for form in [SnapshotDetails::Full, FROM_LOG] {
            let original = body::<Postcard>(&state, form);
            let restored = restore(&original, &events);
            assert_eq!(materialized(&restored), 1, "the running job's chunk");
            assert_eq!(body::<Postcard>(&restored, form), original, "{form:?}");
            assert_eq!(materialized(&restored), 1, "{form:?}: nothing copied");
            assert_eq!(
                body::<Postcard>(&every_job_used(restored), form),
                original,
                "{form:?}"
            );
        }
    }

    #[test]
    fn a_snapshot_in_another_form_or_after_changes_is_the_one_every_view_gives() {
        let jobs = 3 * CHUNK_JOBS + 10;
        let events = events(jobs);
        let state = fold(&events);
        let forms = [
            SnapshotDetails::Full,
            FROM_LOG,
            SnapshotDetails::FromLog {
                first_lsn: events.len() as Lsn / 2,
            },
        ];
        for written in forms {
            let original = body::<Postcard>(&state, written);
            for form in forms {
                let copied = restore(&original, &events);
                let used = every_job_used(restore(&original, &events));
                assert_eq!(
                    body::<Postcard>(&copied, form),
                    body::<Postcard>(&used, form),
                    "written {written:?}, rewritten {form:?}"
                );
                // Another codec's details are decoded, never copied.
                assert_eq!(
                    body::<OtherCodec>(&copied, form),
                    body::<OtherCodec>(&used, form),
                    "written {written:?}, rewritten {form:?} in another codec"
                );
            }
            // One job of chunk 0 changes and a job is added after the
            // partial last chunk: chunks 0 and 3 are written from views.
            let mut copied = restore(&original, &events);
            let mut used = every_job_used(restore(&original, &events));
            let first = events.iter().map(|(_, e)| e.job.clone()).next();
            let first = first.expect("there are events");
            let mut lsn = events.len() as Lsn;
            for state in [&mut copied, &mut used] {
                lsn = events.len() as Lsn;
                for change in [
                    Change::ExternalStatusObserved {
                        status: ExternalStatus::Completed,
                        detail: "seen".into(),
                    },
                    Change::JobCreated {
                        key: "key-new".into(),
                        input: vec![7],
                        fingerprint: None,
                    },
                ] {
                    let job = match change {
                        Change::JobCreated { .. } => JobId::from("job-new"),
                        _ => first.clone(),
                    };
                    let event = Event {
                        at: Timestamp(5000),
                        job,
                        change,
                    };
                    state.apply(lsn, &event).expect("the event applies");
                    lsn += 1;
                }
            }
            assert!(lsn > events.len() as Lsn);
            // Chunk 0 (changed) and 1 (its running job) are materialized;
            // chunk 3 now holds the new job too, and is written from its
            // views; chunk 2 is copied, in the form it was written in.
            assert_eq!(materialized(&copied), 2, "written {written:?}");
            assert_eq!(
                body::<Postcard>(&copied, written),
                body::<Postcard>(&used, written),
                "written {written:?}, changed, rewritten alike"
            );
            assert_eq!(materialized(&copied), 3, "written {written:?}");
            for form in forms {
                assert_eq!(
                    body::<Postcard>(&copied, form),
                    body::<Postcard>(&used, form),
                    "written {written:?}, changed, rewritten {form:?}"
                );
            }
        }
    }

    #[test]
    fn a_damaged_chunk_fails_the_snapshot_as_materializing_it_does() {
        let events = events(3 * CHUNK_JOBS + 10);
        let original = body::<Postcard>(&fold(&events), SnapshotDetails::Full);
        let pre: &[u8; PREAMBLE_LEN] = original.first_chunk().expect("a preamble");
        let head_len = le64(pre, P_HEAD_LEN) as usize;
        let jobs = le64(pre, P_JOB_COUNT) as usize;
        let regions_at =
            head_len + jobs.div_ceil(CHUNK_JOBS) * CHUNK_ENTRY_LEN + jobs * ID_ENTRY_LEN;
        let entry = head_len + 2 * CHUNK_ENTRY_LEN;
        let chunk2_at = regions_at + le64(pre_entry(&original, entry), C_REGION_AT) as usize;
        let mut damaged = original.clone();
        // A byte of chunk 2's first record (its input LSN): the chunk's
        // checksum fails.
        damaged[chunk2_at] ^= 1;
        let state = restore(&damaged, &events);
        let expected = state.jobs().nth(2 * CHUNK_JOBS).and_then(Result::err);
        let expected = expected.expect("chunk 2 fails");
        let state = restore(&damaged, &events);
        for form in [SnapshotDetails::Full, FROM_LOG] {
            assert_eq!(
                state.to_snapshot_with::<Postcard>(form).err(),
                Some(SnapshotError::Unwritable(expected.clone())),
                "{form:?}"
            );
        }
    }

    fn pre_entry(body: &[u8], at: usize) -> &[u8; CHUNK_ENTRY_LEN] {
        body.get(at..)
            .and_then(<[u8]>::first_chunk)
            .expect("the entry is in the body")
    }
}
