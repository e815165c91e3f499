//! Unit tests of the writer and reader on the simulated file system: the
//! basic promises (round trip, reopen, rollover, torn tail cut, lock) that
//! every other test builds on. The crash, fault and corruption suites live
//! under the root `tests/log_*.rs`.

use std::path::Path;
use std::sync::Arc;

use crate::fs::Fs;
use crate::sim::{SimFs, Tear};
use crate::{Log, LogError, LogOptions, LogReader, RecoveryMode, SyncPolicy};

fn small() -> LogOptions {
    LogOptions {
        segment_size_max: 256,
        ..LogOptions::default()
    }
}

fn all(log: &Log) -> Vec<Vec<u8>> {
    log.iter_from(log.first_lsn())
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect()
}

fn open(fs: &Arc<dyn Fs>, o: LogOptions) -> Log {
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
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
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
    let never = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let log = open(&fs, never);
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
    let mut segs: Vec<_> = sim
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
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
