//! Why this file exists: the writer keeps zeros written ahead of its last
//! record (preallocated space, FORMAT.md), so that a commit's fdatasync has
//! no file size to journal. Those zeros must never be taken for records or
//! for damage, must never stay in a sealed segment, and must not outlive
//! the writer: each case here crashes, reopens, seals or closes a log that
//! has them, and checks exactly what is on disk and what is read back.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

mod support;
use support::TempDir;

use runlog_log::{
    Log, LogError, LogOptions, LogReader, PREALLOCATE_SIZE_LIMIT, RecoveryMode, SimFs, SyncPolicy,
    Tear, VerifyOutcome,
};

const DIR: &str = "/log";
const HEADER_LEN: usize = 32;
const RECORD_HEADER_LEN: usize = 28;
/// The first step of preallocated space in a segment.
const STEP_MIN: usize = 64 * 1024;

fn options(recovery: RecoveryMode) -> LogOptions {
    LogOptions {
        recovery,
        ..LogOptions::default()
    }
}

fn segments(sim: &SimFs) -> Vec<PathBuf> {
    sim.files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect()
}

/// Files recovery or salvage set aside.
fn side_files(sim: &SimFs) -> Vec<PathBuf> {
    sim.files()
        .into_iter()
        .filter(|p| p.starts_with("/log/torn") || p.starts_with("/log/quarantine"))
        .collect()
}

fn read_all(log: &Log) -> Vec<Vec<u8>> {
    log.iter_from(log.first_lsn())
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect()
}

/// The logical length of a segment holding exactly `records`: its header
/// and their frames.
fn logical_len(records: &[Vec<u8>]) -> usize {
    HEADER_LEN
        + records
            .iter()
            .map(|r| RECORD_HEADER_LEN + r.len())
            .sum::<usize>()
}

/// Batch `i`: one to three records of varied lengths.
fn batch(i: usize) -> Vec<Vec<u8>> {
    (0..=i % 3)
        .map(|j| format!("batch {i} record {j} {}", "x".repeat(i % 7)).into_bytes())
        .collect()
}

fn refs(b: &[Vec<u8>]) -> Vec<&[u8]> {
    b.iter().map(Vec::as_slice).collect()
}

fn append(log: &Log, b: &[Vec<u8>]) {
    log.append(&refs(b)).expect("append");
}

/// Appends batches `0..n` and returns their records.
fn append_batches(log: &Log, n: usize) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    for i in 0..n {
        let b = batch(i);
        append(log, &b);
        records.extend(b);
    }
    records
}

fn open(sim: &SimFs, o: LogOptions) -> (Log, runlog_log::RecoveryReport) {
    Log::open_with(sim.handle(), DIR, o).expect("open")
}

/// A writer killed with zeros ahead of its last record leaves a log that
/// every mode opens with exactly its records: no torn tail, no side file,
/// the zeros reported as unused space and then filled by the next records.
#[test]
fn preallocated_zeros_reopen_under_every_mode_with_exactly_their_records() {
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::Strict,
        RecoveryMode::Salvage,
    ] {
        let sim = SimFs::new();
        let (log, _) = open(&sim, options(RecoveryMode::Strict));
        let mut want = append_batches(&log, 20);
        let seg = segments(&sim)[0].clone();
        let logical = logical_len(&want);
        let data = sim.read_file(&seg).expect("segment");
        // One step, written by the first flush: 64 KiB past its end,
        // rounded up to 4 KiB.
        let first_end = logical_len(&batch(0));
        assert_eq!(data.len(), (first_end + STEP_MIN).next_multiple_of(4096));
        assert!(data[logical..].iter().all(|&b| b == 0));
        // The process is killed: every byte written survives, and the
        // writer never closed.
        sim.restart(Tear::KeepAll);
        drop(log);

        let (log, report) = open(&sim, options(mode));
        assert_eq!(report.torn_tail, None, "{mode:?}");
        assert_eq!(report.salvaged, None, "{mode:?}");
        assert_eq!(report.next_lsn, want.len() as u64, "{mode:?}");
        assert_eq!(
            report.unused_bytes,
            (data.len() - logical) as u64,
            "{mode:?}"
        );
        assert_eq!(read_all(&log), want, "{mode:?}");
        assert_eq!(side_files(&sim), Vec::<PathBuf>::new(), "{mode:?}");
        // The next record goes where the zeros begin, not after them.
        append(&log, &[b"after".to_vec()]);
        let start = logical + RECORD_HEADER_LEN;
        assert_eq!(
            &sim.read_file(&seg).expect("segment")[start..start + 5],
            b"after"
        );
        want.push(b"after".to_vec());
        drop(log);
        // Closing cut the zeros off.
        assert_eq!(
            sim.read_file(&seg).expect("segment").len(),
            logical_len(&want)
        );
        let (log, report) = open(&sim, options(RecoveryMode::Strict));
        assert_eq!(report.unused_bytes, 0);
        assert_eq!(read_all(&log), want, "{mode:?}");
    }
}

/// A batch torn by a crash while it was written over preallocated zeros is
/// a torn tail like any: `Strict` refuses it, and the default mode cuts it
/// exactly at the batch's start, keeping the torn bytes and the zeros after
/// them in the side file, and every record before it.
#[test]
fn a_torn_batch_followed_by_preallocated_zeros_is_cut_exactly_at_its_start() {
    let torn_batch = vec![vec![0xA1; 40], vec![0xB2; 50], vec![0xC3; 60]];
    // Record ends within the batch: 68, 146 and 234 bytes.
    for (keep, whole_records) in [(1u64, 0u64), (60, 0), (100, 1), (200, 2), (233, 2)] {
        let sim = SimFs::new();
        let (log, _) = open(&sim, options(RecoveryMode::TolerateTornTail));
        let want = append_batches(&log, 5);
        let start = logical_len(&want);
        let seg = segments(&sim)[0].clone();
        let durable = sim.read_file(&seg).expect("segment");
        // Written, never committed: `write` frames it, a read writes it out.
        log.write(&refs(&torn_batch)).expect("write");
        log.iter_from(0).expect("flush").for_each(drop);
        let written = sim.read_file(&seg).expect("segment");
        // The crash keeps the first `keep` bytes of the batch exactly when
        // its first byte is not zero (the sim tears from the first changed
        // byte on).
        assert_ne!(
            written[start], 0,
            "pick a batch whose checksum starts non-zero"
        );
        sim.restart(Tear::KeepUnsynced(keep));
        drop(log);
        let on_disk = sim.read_file(&seg).expect("segment");
        let cut = usize::try_from(keep).expect("small");
        let mut expected = durable.clone();
        expected[start..start + cut].copy_from_slice(&written[start..start + cut]);
        assert_eq!(on_disk, expected, "keep {keep}");

        let err = Log::open_with(sim.handle(), DIR, options(RecoveryMode::Strict))
            .expect_err("strict refuses a torn tail");
        let LogError::TornTail(t) = &err else {
            panic!("keep {keep}: {err}")
        };
        assert_eq!((t.offset, t.side_file.clone()), (start as u64, None));
        let (log, report) = open(&sim, options(RecoveryMode::TolerateTornTail));
        let torn = report.torn_tail.expect("torn tail");
        assert_eq!(torn.offset, start as u64, "keep {keep}");
        assert_eq!(torn.bytes, (on_disk.len() - start) as u64, "keep {keep}");
        assert_eq!(torn.records_dropped, whole_records, "keep {keep}");
        let side = torn.side_file.expect("side file");
        assert_eq!(sim.read_file(&side).expect("side file"), &on_disk[start..]);
        assert_eq!(report.unused_bytes, 0);
        assert_eq!(read_all(&log), want, "keep {keep}");
        // The cut is durable and exact: the segment ends at the batch start
        // (until the writer writes again).
        assert_eq!(sim.read_file(&seg).expect("segment").len(), start);
    }
}

/// A crash after the writer wrote a new step of zeros (with a batch) but
/// before the sync that would have made them durable: whatever part of
/// them survives, the log reopens with every acknowledged record, the
/// unacknowledged batch whole or not at all, and zeros alone after the last
/// batch are unused space, never a torn tail.
#[test]
fn a_crash_after_an_extension_before_its_sync_loses_nothing_acknowledged() {
    let a = vec![vec![1u8; 100]];
    // Large enough that less than half a step is left after it: its flush
    // writes the next step of zeros too.
    let b = vec![vec![2u8; 40_000]];
    let end_a = logical_len(&a);
    let end_b = logical_len(&[a.clone(), b.clone()].concat());
    let first_alloc = (end_a + STEP_MIN).next_multiple_of(4096);
    let second_alloc = (end_b + STEP_MIN).next_multiple_of(4096);
    assert!(
        first_alloc < end_b + STEP_MIN / 2,
        "b must trigger an extension"
    );
    // (tear, b kept whole, torn tail bytes or None, unused bytes)
    let cases = [
        (Tear::DropUnsynced, false, None, first_alloc - end_a),
        (Tear::KeepUnsynced(10), false, Some(first_alloc - end_a), 0),
        (
            Tear::KeepUnsynced(40_000),
            false,
            Some(first_alloc - end_a),
            0,
        ),
        (
            Tear::KeepUnsynced(1 << 20),
            true,
            None,
            second_alloc - end_b,
        ),
        (
            Tear::KeepThenZeros {
                keep: 100,
                zeros: 5000,
            },
            false,
            Some(first_alloc + 5000 - end_a),
            0,
        ),
        (Tear::KeepAll, true, None, second_alloc - end_b),
    ];
    for (tear, b_kept, torn_bytes, unused) in cases {
        let sim = SimFs::new();
        let (log, _) = open(&sim, options(RecoveryMode::TolerateTornTail));
        append(&log, &a);
        let seg = segments(&sim)[0].clone();
        assert_eq!(sim.read_file(&seg).expect("segment").len(), first_alloc);
        sim.crash_at_sync(1);
        let err = log
            .append(&refs(&b))
            .expect_err("the commit's sync crashes");
        assert!(sim.crashed(), "{err}");
        assert_eq!(sim.read_file(&seg).expect("segment").len(), second_alloc);
        sim.restart(tear);
        drop(log);

        let (log, report) = open(&sim, options(RecoveryMode::TolerateTornTail));
        let want = if b_kept {
            [a.clone(), b.clone()].concat()
        } else {
            a.clone()
        };
        assert_eq!(read_all(&log), want, "{tear:?}");
        assert_eq!(
            report.torn_tail.as_ref().map(|t| (t.offset, t.bytes)),
            torn_bytes.map(|n| (end_a as u64, n as u64)),
            "{tear:?}"
        );
        assert_eq!(report.unused_bytes, unused as u64, "{tear:?}");
        assert_eq!(side_files(&sim).len(), usize::from(torn_bytes.is_some()));
        drop(log);
        let (log, report) = open(&sim, options(RecoveryMode::Strict));
        assert_eq!((report.torn_tail, report.unused_bytes), (None, 0));
        assert_eq!(read_all(&log), want, "{tear:?}");
    }
}

/// Rollover cuts the segment it seals back to its last record before the
/// sync that seals it: while the log is open, every sealed segment ends
/// exactly after its last batch, and the active one runs on with zeros up
/// to `segment_size_max`, never past it.
#[test]
fn rollover_seals_each_segment_at_its_exact_logical_end() {
    let sim = SimFs::new();
    let opts = LogOptions {
        segment_size_max: 4096,
        ..options(RecoveryMode::Strict)
    };
    let (log, _) = open(&sim, opts.clone());
    let mut per_segment: Vec<(PathBuf, Vec<Vec<u8>>)> = Vec::new();
    for i in 0..200 {
        let b = batch(i);
        append(&log, &b);
        let seg = segments(&sim).pop().expect("a segment");
        match per_segment.last_mut() {
            Some((p, records)) if *p == seg => records.extend(b),
            _ => per_segment.push((seg, b)),
        }
    }
    assert!(per_segment.len() >= 4, "{} segments", per_segment.len());
    let (active, sealed) = per_segment.split_last().expect("segments");
    for (seg, records) in sealed {
        let data = sim.read_file(seg).expect("segment");
        assert_eq!(data.len(), logical_len(records), "{}", seg.display());
    }
    let data = sim.read_file(&active.0).expect("segment");
    assert_eq!(data.len(), 4096);
    assert!(data[logical_len(&active.1)..].iter().all(|&b| b == 0));
    // A crash now: Strict, which checks every segment, finds them sound.
    sim.restart(Tear::KeepAll);
    drop(log);
    let (log, report) = open(&sim, opts);
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.unused_bytes, (4096 - logical_len(&active.1)) as u64);
    let want: Vec<Vec<u8>> = per_segment.into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(read_all(&log), want);
}

/// With `preallocate_size_max: 0` the file is never longer than its records,
/// open or closed; over the limit, the options are refused.
#[test]
fn preallocation_can_be_turned_off_and_is_bounded() {
    let sim = SimFs::new();
    let (log, _) = open(
        &sim,
        LogOptions {
            preallocate_size_max: 0,
            ..LogOptions::default()
        },
    );
    let mut want = Vec::new();
    for i in 0..10 {
        let b = batch(i);
        append(&log, &b);
        want.extend(b);
        let seg = &segments(&sim)[0];
        assert_eq!(
            sim.read_file(seg).expect("segment").len(),
            logical_len(&want)
        );
    }
    drop(log);
    let err = Log::open_with(
        sim.handle(),
        DIR,
        LogOptions {
            preallocate_size_max: PREALLOCATE_SIZE_LIMIT + 1,
            ..LogOptions::default()
        },
    )
    .expect_err("over the limit");
    assert!(
        matches!(&err, LogError::InvalidOptions { reason } if reason.contains("preallocate_size_max")),
        "{err}"
    );
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

/// On a real disk, beside a live writer: a read-only reader sees exactly
/// the records written so far, not the zeros after them, and its verify
/// finds the log intact. Once the writer is closed, each segment is exactly
/// its records long and takes the same disk blocks as the same log written
/// without preallocation.
#[test]
fn on_disk_a_reader_sees_the_records_and_a_closed_log_takes_no_extra_space() {
    let with = TempDir::new("prealloc-on");
    let without = TempDir::new("prealloc-off");
    for (dir, size) in [(with.path(), 1u64 << 20), (without.path(), 0)] {
        let opts = LogOptions {
            segment_size_max: 32 * 1024,
            // Preallocation is for logs that sync; a sync per 16 KiB keeps
            // the test quick.
            sync: SyncPolicy::Bytes(16 * 1024),
            preallocate_size_max: size,
            ..LogOptions::default()
        };
        let (log, _) = Log::open(dir, opts).expect("open");
        let mut want = Vec::new();
        for i in 0..1500 {
            let b = batch(i);
            append(&log, &b);
            want.extend(b);
            if i % 500 == 499 {
                log.sync().expect("sync");
                let r = LogReader::open(dir, LogOptions::default()).expect("reader");
                assert_eq!(r.next_lsn(), want.len() as u64);
                let got: Vec<Vec<u8>> = r
                    .iter_from(0)
                    .expect("iter")
                    .map(|x| x.expect("record").payload)
                    .collect();
                assert_eq!(got, want);
                let v = r.verify(|_, _| {}).expect("verify");
                assert!(matches!(v.outcome, VerifyOutcome::Intact), "{v:?}");
                assert_eq!(v.next_lsn, want.len() as u64);
                let last = segment_files(dir).pop().expect("segment");
                let len = std::fs::metadata(&last).expect("meta").len();
                if size > 0 {
                    // Zeros up to the segment's size limit, never past it.
                    assert_eq!(len, 32 * 1024, "the active segment runs on with zeros");
                }
            }
        }
        drop(log);
    }
    let (on, off) = (segment_files(with.path()), segment_files(without.path()));
    assert!(on.len() > 3, "{} segments", on.len());
    assert_eq!(
        on.iter().map(|p| p.file_name()).collect::<Vec<_>>(),
        off.iter().map(|p| p.file_name()).collect::<Vec<_>>()
    );
    for (a, b) in on.iter().zip(&off) {
        let (ma, mb) = (
            std::fs::metadata(a).expect("meta"),
            std::fs::metadata(b).expect("meta"),
        );
        assert_eq!(
            std::fs::read(a).expect("read"),
            std::fs::read(b).expect("read")
        );
        assert_eq!(
            (ma.len(), ma.blocks()),
            (mb.len(), mb.blocks()),
            "{}",
            a.display()
        );
    }
}
