//! Unit tests of the writer and reader on the simulated file system: the
//! basic promises (round trip, reopen, rollover, torn tail cut, lock) that
//! every other test builds on. The crash, fault and corruption suites live
//! under the root `tests/log_*.rs`.

use std::path::Path;
use std::sync::Arc;

use crate::fs::{Fs, FsFile};
use crate::sim::{SimFs, Tear};
use crate::{Log, LogError, LogOptions, LogReader, RecoveryMode, SyncPolicy};

fn small() -> LogOptions {
    LogOptions {
        segment_size_max: 256,
        ..LogOptions::default()
    }
}

/// Options under which nothing is synced unless asked: what a test tears.
fn never_synced() -> LogOptions {
    LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    }
}

fn all(log: &Log) -> Vec<Vec<u8>> {
    log.iter_from(log.first_lsn())
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect()
}

pub(crate) fn open(fs: &Arc<dyn Fs>, o: LogOptions) -> Log {
    Log::open_with(Arc::clone(fs), Path::new("/d"), o)
        .expect("open")
        .0
}

#[test]
fn round_trip_across_rollovers_and_reopen() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, small());
    let mut want = Vec::new();
    for i in 0..50u32 {
        let a = format!("rec-{i}-a").into_bytes();
        let b = format!("rec-{i}-b").into_bytes();
        let got = log.append(&[&a, &b]).expect("append");
        assert_eq!(got.first, u64::from(i) * 2);
        want.push(a);
        want.push(b);
    }
    assert_eq!(all(&log), want);
    assert_eq!(log.read(17).expect("read"), want[17]);
    assert_eq!(log.durable_lsn(), 100);
    drop(log);
    let (log, rep) = Log::open_with(Arc::clone(&fs), "/d", small()).expect("reopen");
    assert!(rep.segments > 5, "{rep:?}");
    assert_eq!(rep.torn_tail, None);
    assert_eq!(rep.next_lsn, 100);
    assert_eq!(all(&log), want);
    let r = LogReader::open_with(Arc::clone(&fs), "/d", small()).expect("reader");
    let v = r.verify(|_, _| {}).expect("verify");
    assert!(matches!(v.outcome, crate::VerifyOutcome::Intact), "{v:?}");
    assert_eq!(v.records, 100);
}

#[test]
fn second_writer_is_locked_out() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let _log = open(&fs, small());
    let err = Log::open_with(Arc::clone(&fs), "/d", small()).expect_err("locked");
    assert!(err.is_locked(), "{err}");
}

#[test]
fn unsynced_batch_is_cut_as_torn_tail() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let opts = never_synced();
    let log = open(&fs, opts.clone());
    log.append(&[b"one"]).expect("append");
    log.sync().expect("sync");
    log.append(&[b"two", b"three"]).expect("append");
    log.iter_from(0)
        .expect("flush through a read")
        .for_each(drop);
    // Keep the unsynced batch's first 40 bytes: a torn batch.
    sim.restart(Tear::KeepUnsynced(40));
    drop(log);
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..opts.clone()
    };
    let err = Log::open_with(Arc::clone(&fs), "/d", strict).expect_err("strict");
    assert!(err.is_torn_tail(), "{err}");
    let (log, rep) = Log::open_with(Arc::clone(&fs), "/d", opts.clone()).expect("open");
    let torn = rep.torn_tail.expect("torn tail reported");
    assert_eq!(torn.bytes, 40);
    assert_eq!(torn.records_dropped, 1);
    assert!(sim.read_file(&torn.side_file.expect("side file")).is_some());
    assert_eq!(all(&log), vec![b"one".to_vec()]);
    log.append(&[b"four"]).expect("append after recovery");
    drop(log);
    let (log, rep) = Log::open_with(Arc::clone(&fs), "/d", opts).expect("reopen");
    assert_eq!(rep.torn_tail, None);
    assert_eq!(all(&log), vec![b"one".to_vec(), b"four".to_vec()]);
}

#[test]
fn typed_errors_for_bad_appends() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(
        &fs,
        LogOptions {
            record_size_max: 8,
            ..LogOptions::default()
        },
    );
    assert!(matches!(log.append(&[]), Err(LogError::EmptyBatch)));
    assert!(matches!(
        log.append(&[b"123456789"]),
        Err(LogError::RecordTooLarge { size: 9, max: 8 })
    ));
    assert!(matches!(
        log.read(0),
        Err(LogError::LsnOutOfRange {
            lsn: 0,
            first: 0,
            next: 0
        })
    ));
}

#[test]
fn a_smaller_record_limit_refuses_a_big_last_record_instead_of_cutting_it() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, LogOptions::default());
    log.append(&[&[1u8; 10]]).expect("append");
    log.append(&[&[2u8; 100]]).expect("append");
    drop(log);
    let small = LogOptions {
        record_size_max: 50,
        ..LogOptions::default()
    };
    let err = Log::open_with(Arc::clone(&fs), "/d", small).expect_err("limit too small");
    assert!(err.is_corruption(), "{err}");
    let (log, rep) = Log::open_with(Arc::clone(&fs), "/d", LogOptions::default()).expect("open");
    assert_eq!((rep.next_lsn, rep.torn_tail), (2, None));
    assert_eq!(log.read(1).expect("read"), vec![2u8; 100]);
}

#[test]
fn commit_past_the_end_returns() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, LogOptions::default());
    log.write(&[b"a"]).expect("write");
    log.commit(u64::MAX).expect("commit clamps to what exists");
    assert_eq!(log.durable_lsn(), 1);
}

#[test]
fn sync_policies_make_records_durable_when_they_promise() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, never_synced());
    log.append(&[b"a"]).expect("append");
    assert_eq!(log.durable_lsn(), 0, "Never does not sync on commit");
    log.sync().expect("sync");
    assert_eq!(log.durable_lsn(), 1, "sync() syncs whatever the policy");
    drop(log);
    let bytes = LogOptions {
        sync: SyncPolicy::Bytes(100),
        ..LogOptions::default()
    };
    let log = open(&fs, bytes);
    log.append(&[&[0u8; 10]]).expect("append");
    assert_eq!(log.durable_lsn(), 1, "under the byte threshold");
    log.append(&[&[0u8; 80]]).expect("append");
    assert_eq!(log.durable_lsn(), 3, "threshold passed: synced");
    drop(log);
    let interval = LogOptions {
        sync: SyncPolicy::Interval(std::time::Duration::ZERO),
        ..LogOptions::default()
    };
    let log = open(&fs, interval);
    log.append(&[b"b"]).expect("append");
    assert_eq!(log.durable_lsn(), 4, "interval passed: synced");
}

#[test]
fn reads_stay_right_after_the_segment_they_indexed_is_sealed() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, small());
    log.append(&[b"first"]).expect("append");
    // Index the active segment while it holds one record.
    assert_eq!(log.read(0).expect("read"), b"first");
    for i in 1..40u8 {
        log.append(&[&[i; 20]]).expect("append");
    }
    // Record 1 went into the first segment after it was indexed; the
    // segment has been sealed since.
    assert_eq!(log.read(1).expect("read"), vec![1u8; 20]);
    for lsn in 0..40u64 {
        let want = if lsn == 0 {
            b"first".to_vec()
        } else {
            vec![lsn as u8; 20]
        };
        assert_eq!(log.read(lsn).expect("read"), want, "lsn {lsn}");
    }
}

#[test]
fn retention_on_a_log_with_only_the_active_segment_drops_nothing() {
    // Regression (found by the model test in tests/log_roundtrip.rs): this
    // indexed past the sealed list and panicked.
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, LogOptions::default());
    log.append(&[b"a"]).expect("append");
    assert_eq!(log.drop_segments_below(5).expect("drop"), 0);
    assert_eq!(log.read(0).expect("read"), b"a");
}

#[test]
fn a_segment_claiming_the_last_lsn_does_not_panic() {
    use crate::format::{RecordFields, SegmentHeader, encode_record, encode_segment_header};
    let sim = SimFs::new();
    let base = u64::MAX;
    let mut seg = encode_segment_header(SegmentHeader {
        base_lsn: base,
        chain: 0,
    })
    .to_vec();
    let f = RecordFields {
        prev: 0,
        lsn: base,
        batch_index: 0,
        end_of_batch: true,
    };
    encode_record(&mut seg, &f, b"x");
    let path = Path::new("/d/segments").join(format!("{base:020}.seg"));
    crate::fs::Fs::create_dir_all(&sim, Path::new("/d/segments")).expect("mkdir");
    sim.write_file(&path, &seg);
    let err = Log::open_with(sim.handle(), "/d", LogOptions::default()).expect_err("refused");
    assert!(err.is_corruption(), "{err}");
    let err = LogReader::open_with(sim.handle(), "/d", LogOptions::default()).expect_err("refused");
    assert!(err.is_corruption(), "{err}");
}

/// `verify` maps each next segment on a helper thread while it checks the
/// current one; damage in a middle segment must still be reported there,
/// with the segments before it counted and nothing after it believed.
#[test]
fn verify_reports_damage_in_a_middle_segment_where_it_is() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, small());
    for i in 0..60u32 {
        log.append(&[format!("record {i}").as_bytes()])
            .expect("append");
    }
    drop(log);
    let segs = segment_files(&sim);
    assert!(segs.len() > 6, "{segs:?}");
    let middle = &segs[segs.len() / 2];
    let mut data = sim.read_file(middle).expect("segment");
    let last = data.len() - 1;
    data[last] ^= 0x01;
    sim.write_file(middle, &data);
    let r = LogReader::open_with(Arc::clone(&fs), "/d", small()).expect("reader");
    let mut calls = 0;
    let v = r.verify(|_, _| calls += 1).expect("verify");
    let crate::VerifyOutcome::Corrupt(LogError::Corruption { segment, .. }) = &v.outcome else {
        panic!("{v:?}")
    };
    assert_eq!(segment, middle);
    assert_eq!(v.segments, segs.len() as u64 / 2 + 1);
    // One call before the first segment, one after each segment checked.
    assert_eq!(calls, segs.len() / 2 + 2);
}

// A scan from an LSN inside a segment starts there from the segment's read
// index (seeded by the walk at open for the last segment, built on demand
// for a sealed one) instead of walking the segment from its start. The
// tests below hold it to what the walk from the start gives: the same
// records, the same index, the same errors.

/// Options whose segments hold a dozen records or so.
pub(crate) fn segmented() -> LogOptions {
    LogOptions {
        segment_size_max: 512,
        ..LogOptions::default()
    }
}

/// Appends `batches` batches of 1, 2 or 3 records of varying length;
/// returns every payload, indexed by LSN.
pub(crate) fn fill(log: &Log, batches: u32) -> Vec<Vec<u8>> {
    let mut want = Vec::new();
    for b in 0..batches {
        let batch: Vec<Vec<u8>> = (0..=b % 3)
            .map(|i| format!("b{b}-r{i}-{}", "x".repeat((b % 7) as usize)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        log.append(&refs).expect("append");
        want.extend(batch);
    }
    want
}

/// What a walk from `from` gives: its records, then its error if any.
pub(crate) type Walked = (Vec<(u64, Vec<u8>)>, Option<LogError>);

pub(crate) fn scanned(log: &Log, from: u64) -> Walked {
    let mut got = Vec::new();
    let r = log.scan(from, |lsn, p| {
        got.push((lsn, p.to_vec()));
        std::ops::ControlFlow::Continue(())
    });
    (got, r.err())
}

pub(crate) fn read_back(r: &LogReader, from: u64) -> Walked {
    let mut got = Vec::new();
    for rec in r.iter_from(from).expect("iter_from") {
        match rec {
            Ok(rec) => got.push((rec.lsn, rec.payload)),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

pub(crate) fn expected_from(want: &[Vec<u8>], from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
    (from..to).map(|l| (l, want[l as usize].clone())).collect()
}

/// The segment files, oldest first.
pub(crate) fn segment_files(sim: &SimFs) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = sim
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

pub(crate) fn base_of(path: &Path) -> u64 {
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    crate::scan::parse_segment_name(name).expect("segment name")
}

/// The index a walk of the segment at `path` from its start builds, up to
/// and including record `last`.
fn walked_index(sim: &SimFs, path: &Path, last: u64) -> crate::scan::IndexState {
    let bytes = crate::fs::SegmentBytes::from_vec(sim.read_file(path).expect("segment"));
    let mut idx =
        crate::scan::SegIndex::new(path.to_owned(), base_of(path), bytes).expect("header");
    let max = LogOptions::default().record_size_max;
    assert!(idx.payload(last, max).expect("walk").is_some());
    idx.state()
}

#[test]
fn a_scan_from_inside_a_segment_returns_exactly_the_records_from_there() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let want = fill(&open(&fs, segmented()), 40);
    let (log, rep) = Log::open_with(Arc::clone(&fs), "/d", segmented()).expect("reopen");
    assert!(rep.segments >= 4, "{rep:?}");
    let reader = LogReader::open_with(Arc::clone(&fs), "/d", segmented()).expect("reader");
    let end = want.len() as u64;
    // Every start: each segment's first record, inside batches and at their
    // ends, in sealed segments and in the last one, and the end itself.
    for from in 0..=end {
        let expected = expected_from(&want, from, end);
        let got = scanned(&log, from);
        assert_eq!(
            (&got.0, got.1.is_none()),
            (&expected, true),
            "log from {from}"
        );
        let got = read_back(&reader, from);
        assert_eq!(
            (&got.0, got.1.is_none()),
            (&expected, true),
            "reader from {from}"
        );
    }
    // The active segment grows after its index was seeded: scans from old
    // and new LSNs see the records written since.
    let mut want = want;
    want.extend(fill(&log, 7));
    let end = want.len() as u64;
    for from in 0..=end {
        let got = scanned(&log, from);
        assert!(got.1.is_none(), "from {from}: {:?}", got.1);
        assert_eq!(got.0, expected_from(&want, from, end), "log from {from}");
    }
}

#[test]
fn the_index_seeded_at_open_is_the_one_a_walk_builds() {
    // Several segments, the last of them clean.
    let sim = SimFs::new();
    let fs = sim.handle();
    let want = fill(&open(&fs, segmented()), 30);
    let log = open(&fs, segmented());
    let reader = LogReader::open_with(Arc::clone(&fs), "/d", segmented()).expect("reader");
    let segs = segment_files(&sim);
    let last = segs.last().expect("segments");
    let walked = walked_index(&sim, last, want.len() as u64 - 1);
    assert!(walked.offsets.len() > 3, "{walked:?}");
    assert_eq!(log.index_state(base_of(last)), Some(walked.clone()));
    assert_eq!(reader.index_state(base_of(last)), Some(walked.clone()));
    // Sealed segments are not walked at open, so nothing is indexed there.
    assert_eq!(log.index_state(base_of(&segs[0])), None);
    assert_eq!(reader.index_state(base_of(&segs[0])), None);
    // Under Strict every segment is walked; the last one's index is the same.
    drop(log);
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..segmented()
    };
    let log = open(&fs, strict);
    assert_eq!(log.index_state(base_of(last)), Some(walked));
    assert_eq!(log.index_state(base_of(&segs[0])), None);

    // A torn last batch: the writer cuts it and its index covers what is
    // kept; a reader opened before the cut reads up to the same batch end.
    let sim = SimFs::new();
    let fs = sim.handle();
    let opts = never_synced();
    let log = open(&fs, opts.clone());
    let want = fill(&log, 6);
    log.sync().expect("sync");
    log.append(&[b"two", b"three"]).expect("append");
    log.iter_from(0).expect("flush").for_each(drop);
    sim.restart(Tear::KeepUnsynced(40));
    drop(log);
    let seg = segment_files(&sim).pop().expect("segment");
    let reader = LogReader::open_with(Arc::clone(&fs), "/d", opts.clone()).expect("reader");
    assert_eq!(reader.next_lsn(), want.len() as u64);
    let torn = walked_index(&sim, &seg, want.len() as u64 - 1);
    assert_eq!(reader.index_state(0), Some(torn.clone()));
    let (log, rep) = Log::open_with(Arc::clone(&fs), "/d", opts).expect("open");
    assert_eq!(rep.torn_tail.expect("torn tail cut").records_dropped, 1);
    let cut = walked_index(&sim, &seg, want.len() as u64 - 1);
    assert_eq!(cut, torn);
    assert_eq!(log.index_state(0), Some(cut));
    assert_eq!(
        scanned(&log, 3).0,
        expected_from(&want, 3, want.len() as u64)
    );
}

/// How a test damages record `k` of a sealed segment.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// One payload bit flipped: the checksum fails.
    Flip,
    /// Re-framed, checksum right, with another `prev`: the chain breaks.
    Chain,
    /// Re-framed, checksum right, one batch position on: a batch mismatch.
    Batch,
}

#[test]
fn a_scan_from_inside_a_sealed_segment_reports_damage_as_a_walk_from_its_start_does() {
    // ... unless it starts after an index point past the damage: that scan
    // does not walk over the damaged record (FORMAT.md, "Index files").
    use crate::CorruptionKind as K;
    use crate::format::{FLAG_END_OF_BATCH, RecordFields, encode_record, parse_record};
    let max = LogOptions::default().record_size_max;
    for damage in [Damage::Flip, Damage::Chain, Damage::Batch] {
        let sim = SimFs::new();
        let fs = sim.handle();
        let want = fill(&open(&fs, segmented()), 30);
        let segs = segment_files(&sim);
        assert!(segs.len() >= 3, "{segs:?}");
        let path = &segs[1];
        let base = base_of(path);
        let next_base = base_of(&segs[2]);
        let mut data = sim.read_file(path).expect("segment");
        // Damage the fifth record of the sealed segment.
        let k = base + 4;
        assert!(k + 2 < next_base, "{base}..{next_base}");
        let mut off = crate::format::SEGMENT_HEADER_LEN;
        for _ in base..k {
            off = parse_record(&data, off, max).expect("record").end;
        }
        let r = parse_record(&data, off, max).expect("record");
        let (payload, at, end) = (r.payload.to_vec(), off, r.end);
        let mut fields = RecordFields {
            prev: r.prev,
            lsn: r.lsn,
            batch_index: r.batch_index,
            end_of_batch: r.flags & FLAG_END_OF_BATCH != 0,
        };
        match damage {
            Damage::Flip => data[end - 1] ^= 0x01,
            Damage::Chain => fields.prev ^= 0x5a5a,
            Damage::Batch => fields.batch_index += 1,
        }
        if !matches!(damage, Damage::Flip) {
            let mut framed = Vec::new();
            encode_record(&mut framed, &fields, &payload);
            data[at..end].copy_from_slice(&framed);
        }
        sim.write_file(path, &data);

        // The walk from the segment's start: the records before `k`, then
        // the damage at `k`, where it is and of the kind made.
        let log = open(&fs, segmented());
        let (records, err) = scanned(&log, base);
        assert_eq!(records, expected_from(&want, base, k), "{damage:?}");
        let Some(LogError::Corruption {
            segment,
            offset,
            lsn,
            detail,
        }) = err
        else {
            panic!("{damage:?}: {err:?}")
        };
        assert_eq!((&segment, offset, lsn), (path, at as u64, k), "{damage:?}");
        let kind_made = match (damage, &detail) {
            (Damage::Flip, K::ChecksumMismatch { .. }) => true,
            (Damage::Chain, K::ChainBroken { expected, found }) => *found == *expected ^ 0x5a5a,
            (Damage::Batch, K::BatchMismatch { expected, found }) => {
                u64::from(*found) == expected + 1
            }
            _ => false,
        };
        assert!(kind_made, "{damage:?}: {detail:?}");
        drop(log);

        // From every LSN of the segment, with its index built by earlier
        // scans (a writer, a reader) and without (a fresh writer, a fresh
        // reader): the records from there to `k`, then the same error. A
        // start after `k` cannot be indexed past the damage and reports it
        // too, as the walk from the start does, unless an index point lies
        // between the damage and the start: then the scan starts from that
        // point and gives every record from the start on, each checked.
        let idx = sim.read_file(&crate::index_file::index_path(path));
        let points = crate::index_file::decode(&idx.expect("index file"), base, data.len() as u64)
            .expect("index points");
        let past_damage = |from: u64| points.iter().any(|p| p.lsn > k && p.lsn < from);
        assert!(
            (base..next_base).any(past_damage) && !past_damage(k + 1),
            "{points:?}"
        );
        let same = |who: &str, from: u64, (got, err): Walked| {
            if past_damage(from) {
                let all = expected_from(&want, from, want.len() as u64);
                assert_eq!((got, err.is_none()), (all, true), "{damage:?} from {from}");
                return;
            }
            assert_eq!(
                got,
                expected_from(&want, from.min(k), k),
                "{damage:?} from {from} ({who})"
            );
            match err {
                Some(LogError::Corruption {
                    segment: s,
                    offset: o,
                    lsn: l,
                    detail: d,
                }) => assert_eq!(
                    (&s, o, l, &d),
                    (&segment, offset, lsn, &detail),
                    "{damage:?} from {from} ({who})"
                ),
                other => panic!("{damage:?} from {from} ({who}): {other:?}"),
            }
        };
        let reader = LogReader::open_with(Arc::clone(&fs), "/d", segmented()).expect("reader");
        for from in base..next_base {
            let fresh = LogReader::open_with(Arc::clone(&fs), "/d", segmented()).expect("reader");
            same("fresh reader", from, read_back(&fresh, from));
            same("reader", from, read_back(&reader, from));
        }
        for from in base..next_base {
            same("fresh writer", from, scanned(&open(&fs, segmented()), from));
        }
        let log = open(&fs, segmented());
        for from in base..next_base {
            same("writer", from, scanned(&log, from));
        }
        // The scans built the sealed segment's index, up to the damage.
        let built = log.index_state(base).expect("index built by the scans");
        assert_eq!(built.offsets.len() as u64, k - base, "{damage:?}");
        // Later segments are not affected.
        assert_eq!(
            scanned(&log, next_base + 1).0,
            expected_from(&want, next_base + 1, want.len() as u64)
        );
    }
}

/// What a test changes in a file system: the calls it overrides, each
/// given the file system underneath; [`Hooked`] passes every other call
/// through unchanged.
pub(crate) trait Hook: Send + Sync + std::fmt::Debug {
    fn create(&self, fs: &dyn Fs, path: &Path) -> std::io::Result<Arc<dyn FsFile>> {
        fs.create(path)
    }
    fn rename(&self, fs: &dyn Fs, from: &Path, to: &Path) -> std::io::Result<()> {
        fs.rename(from, to)
    }
    fn read_all(&self, fs: &dyn Fs, path: &Path) -> std::io::Result<Vec<u8>> {
        fs.read_all(path)
    }
}

/// `inner` with the calls `hook` overrides changed.
#[derive(Debug)]
pub(crate) struct Hooked<H> {
    pub inner: Arc<dyn Fs>,
    pub hook: H,
}

impl<H: Hook> Fs for Hooked<H> {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn FsFile>> {
        self.hook.create(self.inner.as_ref(), path)
    }
    fn open_write(&self, path: &Path) -> std::io::Result<Arc<dyn FsFile>> {
        self.inner.open_write(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.hook.rename(self.inner.as_ref(), from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn file_len(&self, path: &Path) -> std::io::Result<u64> {
        self.inner.file_len(path)
    }
    fn map(&self, path: &Path, len: u64) -> std::io::Result<crate::fs::SegmentBytes> {
        self.inner.map(path, len)
    }
    fn read_all(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.hook.read_all(self.inner.as_ref(), path)
    }
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<crate::fs::LockGuard>> {
        self.inner.try_lock(path)
    }
}

/// Reads of one file return prepared copies first: what a reader's copy
/// of a segment holds when a writer writes during the copy (zeros where a
/// batch was being written, later batches after them).
#[derive(Debug)]
struct Racing {
    path: std::path::PathBuf,
    copies: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl Hook for Racing {
    fn read_all(&self, fs: &dyn Fs, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        if path == self.path && !copies.is_empty() {
            return Ok(copies.remove(0));
        }
        fs.read_all(path)
    }
}

/// A read-only open beside a live writer whose copy of the last segment
/// caught a batch in flight (zeros, then later batches) reads it again and
/// opens the whole log; the same zeros found on every read are damage, and
/// named as such.
#[test]
fn reader_beside_writer_rereads_a_batch_in_flight() {
    let sim: Arc<dyn Fs> = Arc::new(SimFs::new());
    // Preallocation needs a synced policy: the writer keeps zeros ahead.
    let log = open(&sim, LogOptions::default());
    let payload = [7u8; 100];
    for _ in 0..10 {
        let a = log.append(&[&payload]).expect("append");
        log.commit(a.next).expect("commit");
    }
    let seg = Path::new("/d/segments/00000000000000000000.seg");
    let whole = sim.read_all(seg).expect("read");
    // Record k starts at 32 + 128 k (28-byte frame, 100-byte payload).
    let in_flight = |k: usize| {
        let mut copy = whole.clone();
        copy[32 + 128 * k..32 + 128 * (k + 1)].fill(0);
        copy
    };
    assert!(whole.len() > 32 + 128 * 10, "zeros preallocated ahead");

    let racing = |copies: Vec<Vec<u8>>| -> Arc<dyn Fs> {
        Arc::new(Hooked {
            inner: Arc::clone(&sim),
            hook: Racing {
                path: seg.to_path_buf(),
                copies: std::sync::Mutex::new(copies),
            },
        })
    };
    // The writer finishes the batch between the two reads.
    let reader = LogReader::open_with(racing(vec![in_flight(5)]), "/d", LogOptions::default())
        .expect("a batch in flight is read again, not taken for damage");
    assert_eq!(reader.next_lsn(), 10);
    assert_eq!(reader.read(9).expect("read"), payload.to_vec());

    // A second race, further on, on the second read.
    let reader = LogReader::open_with(
        racing(vec![in_flight(3), in_flight(8)]),
        "/d",
        LogOptions::default(),
    )
    .expect("each read gets further");
    assert_eq!(reader.next_lsn(), 10);

    // The same zeros on two reads in a row: damage, at LSN 5.
    let err = LogReader::open_with(
        racing(vec![in_flight(5), in_flight(5)]),
        "/d",
        LogOptions::default(),
    )
    .expect_err("stable zeros are damage");
    match err {
        LogError::Corruption { lsn, offset, .. } => {
            assert_eq!((lsn, offset), (5, 32 + 128 * 5));
        }
        other => panic!("expected corruption at LSN 5, got {other:?}"),
    }
    drop(log);
}
