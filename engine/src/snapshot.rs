//! Snapshot files: the projections as of an LSN, so an open need not replay
//! the whole log.
//!
//! ```text
//! snapshots/<lsn, 20 digits>.snap
//!
//! offset  size  field
//!      0     8  magic "RUNLOGSN"
//!      8     4  format version, u32 LE (2)
//!     12     4  reserved, zero
//!     16     8  lsn, u64 LE: the views hold every event with a lower LSN
//!     24     8  last_at, u64 LE: timestamp of the last event included
//!     32     8  body_len, u64 LE
//!     40     4  body_crc, u32 LE: CRC-32 (IEEE) of the body
//!     44     4  header_crc, u32 LE: CRC-32 of bytes 0..44
//!     48     …  body: the views' snapshot form
//! ```
//!
//! The body is the snapshot form of the views (`SNAPSHOT_FORMAT_VERSION` of
//! runlog-projections, its version byte first; FORMAT.md): a small head
//! (keys, unfinished jobs, live runs) with its own CRC-32, a base of job
//! records in chunks of 64 with a CRC-32 each and an index of the jobs by
//! id, then each job's runs and checkpoints as a separate detail with its
//! own CRC-32: the runs and checkpoints encoded, or, while the log keeps
//! every segment (`keep_full_history`), only the LSNs of the job's events,
//! which the views read back through the log (`query::LogEvents`) and
//! apply when the job is first used. An open checks the whole body's CRC
//! on a second thread while this one restores the head and the jobs it
//! lists, so that a damaged snapshot is skipped as a whole (an older one
//! or the log is used) at the cost of the slower of the two, not their
//! sum. It keeps the file mapped (`mmap.rs`; read, on the simulated file
//! system): every other job is materialized from it, its chunk checked
//! again against its CRC, when first used, and a job's detail is checked
//! against its own CRC and decoded (or rebuilt from the log) when first
//! used. Version 1 files (body versions up to 3) are refused by number,
//! and so are bodies of version 4; the log is replayed instead.
//!
//! What the transitions fix, such as a checkpoint's step and its copies of
//! its job's and run's ids, is left out and recomputed. A body of another
//! version, whose head fails its checksum, or whose parts do not fit
//! together, is refused at open, so that snapshot is skipped and an older
//! one or the log is used; a job record or detail that fails later is a
//! typed error (`EngineError::DetailUnreadable`), never a wrong view.
//!
//! A snapshot is written to `<name>.tmp`, fsync'ed, renamed, and the
//! directory fsync'ed: it is either wholly there or not at all. A snapshot
//! that fails any check is skipped, never believed: the log is the truth.

use crate::error::EngineError;
use crate::files::{Files, WriteFailure};
use runlog_projections::{
    EventSource, Lsn, Projections, SnapshotBody, SnapshotCodec, SnapshotDetails, Timestamp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The snapshot body's serde format: postcard.
pub(crate) struct Postcard;

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

const MAGIC: &[u8; 8] = b"RUNLOGSN";
/// Version 2: the body is of version 4 or later (a head and details with
/// their own CRC-32s), and the header still checksums it whole.
const VERSION: u32 = 2;
const OFFSET_LSN: usize = 16;
const OFFSET_LAST_AT: usize = OFFSET_LSN + 8;
const OFFSET_BODY_LEN: usize = OFFSET_LAST_AT + 8;
const OFFSET_BODY_CRC: usize = OFFSET_BODY_LEN + 8;
const OFFSET_HEADER_CRC: usize = OFFSET_BODY_CRC + 4;
const HEADER_LEN: usize = OFFSET_HEADER_CRC + 4;
const _: () = assert!(HEADER_LEN == 48);

/// The directory snapshots live in, inside a data directory.
pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

fn file_name(lsn: Lsn) -> String {
    format!("{lsn:020}.snap")
}

/// A snapshot loaded from disk.
pub(crate) struct Loaded {
    pub path: PathBuf,
    pub lsn: Lsn,
    pub last_at: Timestamp,
    pub state: Projections,
}

/// A snapshot passed over at open, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
}

/// Encodes the views as a snapshot body. Done under the engine's ordering
/// lock, so the body matches the LSN it is written under.
/// `details` says how jobs' runs and checkpoints are held: as the LSNs of
/// their events when the log keeps them.
pub(crate) fn encode(
    state: &Projections,
    details: SnapshotDetails,
) -> Result<SnapshotBody, EngineError> {
    state
        .to_snapshot_body_with::<Postcard>(details)
        .map_err(|e| EngineError::Encode {
            detail: e.to_string(),
        })
}

/// Writes a snapshot body (views holding every event below `lsn`)
/// atomically. The caller has made the log durable up to `lsn` first, so a
/// snapshot never covers events a crash could lose.
pub(crate) fn write(
    files: &Files,
    data_dir: &Path,
    lsn: Lsn,
    last_at: Timestamp,
    body: &SnapshotBody,
) -> Result<PathBuf, EngineError> {
    let dir = dir(data_dir);
    files
        .create_dir(&dir)
        .map_err(|source| EngineError::SnapshotIo {
            path: dir.clone(),
            op: "create directory",
            source,
        })?;
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[OFFSET_LSN..OFFSET_LSN + 8].copy_from_slice(&lsn.to_le_bytes());
    header[OFFSET_LAST_AT..OFFSET_LAST_AT + 8].copy_from_slice(&last_at.0.to_le_bytes());
    header[OFFSET_BODY_LEN..OFFSET_BODY_LEN + 8]
        .copy_from_slice(&(body.len() as u64).to_le_bytes());
    let mut body_crc = crc32fast::Hasher::new();
    for part in body.parts() {
        body_crc.update(part);
    }
    header[OFFSET_BODY_CRC..OFFSET_BODY_CRC + 4]
        .copy_from_slice(&body_crc.finalize().to_le_bytes());
    let header_crc = crc32fast::hash(&header[..OFFSET_HEADER_CRC]);
    header[OFFSET_HEADER_CRC..].copy_from_slice(&header_crc.to_le_bytes());

    let path = dir.join(file_name(lsn));
    let tmp = dir.join(format!("{}.tmp", file_name(lsn)));
    files
        .write_durably(&dir, &tmp, &path, &{
            let [head, records, details] = body.parts();
            [&header[..], head, records, details]
        })
        .map_err(
            |WriteFailure { op, path, source }| EngineError::SnapshotIo {
                path: path.to_path_buf(),
                op,
                source,
            },
        )?;
    Ok(path)
}

/// Snapshot files in the directory, newest (highest LSN) first.
pub(crate) fn list(files: &Files, data_dir: &Path) -> Vec<(Lsn, PathBuf)> {
    let dir = dir(data_dir);
    let mut found: Vec<(Lsn, PathBuf)> = files
        .list(&dir)
        .into_iter()
        .filter_map(|name| {
            let digits = name.strip_suffix(".snap")?;
            if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, dir.join(&name)))
        })
        .collect();
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    found
}

/// What a loaded snapshot's (lsn, last_at, views) must satisfy to belong
/// to the log it is loaded for; `Err` says why not.
pub(crate) type MatchesLog<'a> = dyn Fn(Lsn, Timestamp, &Projections) -> Result<(), String> + 'a;

/// Loads the newest snapshot that passes every check and fits the log:
/// its LSN lies within `[first_lsn, next_lsn]`, `matches_log` accepts it,
/// and, with `not_after`, its last event is no later than that time.
/// Returns what was skipped too.
///
/// `refused` are snapshots found unusable after they loaded (a job's detail
/// that failed while the log after it was replayed), with why: they are
/// skipped and reported.
// Each argument is one check the snapshot must pass or what it keeps;
// bundling them would only name the bundle.
#[allow(clippy::too_many_arguments)]
pub(crate) fn load_newest(
    files: &Files,
    data_dir: &Path,
    first_lsn: Lsn,
    next_lsn: Lsn,
    not_after: Option<Timestamp>,
    matches_log: &MatchesLog<'_>,
    refused: &[SkippedSnapshot],
    events: &Arc<dyn EventSource>,
) -> (Option<Loaded>, Vec<SkippedSnapshot>) {
    let mut skipped = Vec::new();
    for (lsn, path) in list(files, data_dir) {
        if let Some(refused) = refused.iter().find(|r| r.path == path) {
            skipped.push(refused.clone());
            continue;
        }
        if lsn > next_lsn {
            skipped.push(SkippedSnapshot {
                path,
                reason: format!("covers up to LSN {lsn}, past the end of the log ({next_lsn})"),
            });
            continue;
        }
        if lsn < first_lsn {
            // Older than the retained log; an older snapshot is no better.
            skipped.push(SkippedSnapshot {
                path,
                reason: format!("covers up to LSN {lsn}, before the log's first LSN {first_lsn}"),
            });
            continue;
        }
        match read(files, &path, lsn, events) {
            Ok(loaded) if not_after.is_some_and(|t| loaded.last_at > t) => {
                skipped.push(SkippedSnapshot {
                    path,
                    reason: "newer than the time asked for".into(),
                })
            }
            Ok(loaded) => match matches_log(loaded.lsn, loaded.last_at, &loaded.state) {
                Ok(()) => return (Some(loaded), skipped),
                Err(reason) => skipped.push(SkippedSnapshot {
                    path,
                    reason: format!("does not match the log: {reason}"),
                }),
            },
            Err(reason) => skipped.push(SkippedSnapshot { path, reason }),
        }
    }
    (None, skipped)
}

/// Reads and checks one snapshot file.
/// Jobs held as their event LSNs read them from `events`.
fn read(
    files: &Files,
    path: &Path,
    name_lsn: Lsn,
    events: &Arc<dyn EventSource>,
) -> Result<Loaded, String> {
    let file = files
        .read_snapshot(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let bytes: &[u8] = (*file).as_ref();
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| format!("{} bytes, shorter than the header", bytes.len()))?;
    let u32_at =
        |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[o..o + 8]);
        u64::from_le_bytes(b)
    };
    if &header[0..8] != MAGIC {
        return Err("not a runlog snapshot (bad magic)".into());
    }
    let header_crc = crc32fast::hash(&header[..OFFSET_HEADER_CRC]);
    if header_crc != u32_at(OFFSET_HEADER_CRC) {
        return Err("header checksum mismatch".into());
    }
    let version = u32_at(8);
    if version != VERSION {
        return Err(format!(
            "snapshot format version {version} is not supported"
        ));
    }
    let lsn = u64_at(OFFSET_LSN);
    if lsn != name_lsn {
        return Err(format!(
            "its header says LSN {lsn}, its name says {name_lsn}"
        ));
    }
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    if body.len() as u64 != u64_at(OFFSET_BODY_LEN) {
        return Err(format!(
            "body is {} bytes, header says {}",
            body.len(),
            u64_at(OFFSET_BODY_LEN)
        ));
    }
    if u32_at(12) != 0 {
        return Err("a reserved header field is not zero".into());
    }
    // The views keep the file: each job's runs and checkpoints are checked
    // and decoded from it when first used. The body's version is checked
    // by number first, then its head's checksum; the whole body's checksum
    // is checked beside that, and a mismatch wins over anything the
    // restore found, since nothing read from damaged bytes is meaningful.
    let last_at = Timestamp(u64_at(OFFSET_LAST_AT));
    let (body_crc, state) = crc_beside(body, || {
        Projections::from_snapshot_file_with::<Postcard>(
            Arc::clone(&file),
            HEADER_LEN,
            Some(Arc::clone(events)),
        )
    });
    if body_crc != u32_at(OFFSET_BODY_CRC) {
        return Err("body checksum mismatch".into());
    }
    let state = state.map_err(|e| e.to_string())?;
    // A snapshot's views hold exactly the events below its LSN.
    if state.last_lsn().is_some_and(|last| last >= lsn) {
        return Err(format!(
            "its views include LSN {}, not below its LSN {lsn}",
            state.last_lsn().unwrap_or_default()
        ));
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        lsn,
        last_at,
        state,
    })
}

/// Bodies below this size are checksummed on the calling thread: starting
/// a thread costs more than the checksum.
const CRC_THREAD_MIN: usize = 1 << 20;

/// The CRC-32 of `bytes`, computed on a second thread while `work` runs on
/// this one (on this one after `work`, for small inputs or when no thread
/// can be started).
fn crc_beside<T>(bytes: &[u8], work: impl FnOnce() -> T) -> (u32, T) {
    if bytes.len() < CRC_THREAD_MIN {
        let done = work();
        return (crc32fast::hash(bytes), done);
    }
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("runlog-snapshot-crc".into())
            .spawn_scoped(scope, || crc32fast::hash(bytes));
        let done = work();
        // The helper only hashes a slice and cannot panic; if it somehow
        // did, or never started, the checksum is taken here instead.
        let crc = match helper.map(|h| h.join()) {
            Ok(Ok(crc)) => crc,
            _ => crc32fast::hash(bytes),
        };
        (crc, done)
    })
}

/// Removes the snapshots whose LSN lies beyond `next_lsn`, the end of the
/// log a writer just opened, and notes it in their `skipped` entries.
///
/// Such a snapshot holds events the log no longer has (a salvage cut the
/// log below it, or a disk lost synced data). The writer is about to give
/// new, different events those LSNs; once the log is long enough the
/// snapshot would pass every check and be loaded over the new history, so
/// it goes now. A file that cannot be removed is reported in its entry, not
/// returned: the open goes on, the check that a snapshot ends with the
/// log's own last event still keeps it out, and the next writer's open
/// tries again. Once a file is removed, the directory is fsync'ed and a
/// failure of that fails the open.
pub(crate) fn remove_beyond(
    files: &Files,
    data_dir: &Path,
    next_lsn: Lsn,
    skipped: &mut [SkippedSnapshot],
) -> Result<(), EngineError> {
    let mut removed = false;
    for (lsn, path) in list(files, data_dir) {
        if lsn <= next_lsn {
            continue;
        }
        let outcome = match files.remove(&path) {
            Ok(()) => {
                removed = true;
                "; removed, since new events will take its LSNs".to_owned()
            }
            Err(e) => format!("; could not be removed ({e}), and will be again"),
        };
        if let Some(s) = skipped.iter_mut().find(|s| s.path == path) {
            s.reason.push_str(&outcome);
        }
    }
    if !removed {
        return Ok(());
    }
    // A removal that a crash could undo would bring the snapshot back
    // after new events took its LSNs: the open goes on only once it is
    // durable.
    let dir = dir(data_dir);
    files
        .sync_dir(&dir)
        .map_err(|source| EngineError::SnapshotIo {
            path: dir,
            op: "fsync directory",
            source,
        })
}

/// Deletes all but the newest `keep` snapshots, and leftover temporary
/// files. Failures are ignored: an extra snapshot costs disk, not
/// correctness.
pub(crate) fn prune(files: &Files, data_dir: &Path, keep: usize) {
    for (_, path) in list(files, data_dir).into_iter().skip(keep.max(1)) {
        let _ = files.remove(&path);
    }
    let dir = dir(data_dir);
    for name in files.list(&dir) {
        if name.ends_with(".snap.tmp") {
            let _ = files.remove(&dir.join(name));
        }
    }
}
