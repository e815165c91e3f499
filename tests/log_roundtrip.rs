//! Why this file exists: the log's everyday contract, through the public
//! API only — records come back exactly as appended, in LSN order, by every
//! read path, across rollovers and reopens; on a real disk with owner-only
//! permissions and a writer lock; beside a live writer; after retention.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use proptest::prelude::*;
use runlog_log::{
    Log, LogError, LogOptions, LogReader, RecoveryMode, SimFs, SyncPolicy, VerifyOutcome,
};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("runlog-{name}-{}-{nanos}", std::process::id()));
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn payloads(log: &Log) -> Vec<Vec<u8>> {
    log.iter_from(log.first_lsn())
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Invariant: every read path returns exactly the appended payloads at
    /// the LSNs append gave, before and after reopen, whatever the batch
    /// shapes and however many rollovers they cause.
    #[test]
    fn random_batches_round_trip_across_rollovers(
        batches in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..90), 1..5),
            1..40,
        ),
        segment_size_max in 64u64..600,
        probes in prop::collection::vec(any::<prop::sample::Index>(), 1..10),
    ) {
        let sim = SimFs::new();
        let opts = LogOptions { segment_size_max, sync: SyncPolicy::Never, ..LogOptions::default() };
        let (log, _) = Log::open_with(sim.handle(), "/p", opts.clone()).expect("open");
        let mut want: Vec<Vec<u8>> = Vec::new();
        for b in &batches {
            let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
            let a = log.append(&refs).expect("append");
            prop_assert_eq!(a.first, want.len() as u64);
            prop_assert_eq!(a.next, (want.len() + b.len()) as u64);
            want.extend(b.iter().cloned());
        }
        prop_assert_eq!(&payloads(&log), &want);
        for p in &probes {
            let lsn = p.index(want.len());
            prop_assert_eq!(&log.read(lsn as u64).expect("read"), &want[lsn]);
            let mut seen = Vec::new();
            log.scan(lsn as u64, |l, bytes| {
                seen.push((l, bytes.to_vec()));
                if seen.len() == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            }).expect("scan");
            for (l, bytes) in &seen {
                prop_assert_eq!(bytes, &want[*l as usize]);
            }
            prop_assert_eq!(seen.first().map(|s| s.0), Some(lsn as u64));
        }
        log.sync().expect("sync");
        drop(log);
        let strict = LogOptions { recovery: RecoveryMode::Strict, ..opts.clone() };
        let (log, report) = Log::open_with(sim.handle(), "/p", strict).expect("reopen");
        prop_assert_eq!(report.next_lsn, want.len() as u64);
        prop_assert_eq!(&payloads(&log), &want);
        drop(log);
        let reader = LogReader::open_with(sim.handle(), "/p", opts).expect("reader");
        let v = reader.verify(|_, _| {}).expect("verify");
        prop_assert!(matches!(v.outcome, VerifyOutcome::Intact));
        prop_assert_eq!(v.records, want.len() as u64);
        let got: Vec<Vec<u8>> = reader.iter_from(0).expect("iter").map(|r| r.expect("rec").payload).collect();
        prop_assert_eq!(&got, &want);
    }
}

#[test]
fn real_disk_round_trip_with_owner_only_permissions() {
    let dir = TempDir::new("perm");
    let opts = LogOptions {
        segment_size_max: 4096,
        ..LogOptions::default()
    };
    let (log, report) = Log::open(dir.path().join("log"), opts.clone()).expect("open");
    assert_eq!((report.next_lsn, report.segments), (0, 1));
    let mut want = Vec::new();
    for i in 0..40u32 {
        let p = vec![i as u8; 300];
        log.append(&[&p]).expect("append");
        want.push(p);
    }
    assert_eq!(log.durable_lsn(), 40);
    assert_eq!(payloads(&log), want);
    let second = Log::open(dir.path().join("log"), opts.clone()).expect_err("second writer");
    assert!(matches!(second, LogError::Locked { .. }), "{second}");
    drop(log);
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let root = dir.path().join("log");
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("segments")), 0o700);
    assert_eq!(mode(&root.join("LOCK")), 0o600);
    let segs: Vec<PathBuf> = std::fs::read_dir(root.join("segments"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(segs.len() > 2);
    for s in &segs {
        assert_eq!(mode(s), 0o600, "{}", s.display());
    }
    let (log, report) = Log::open(&root, opts).expect("reopen after the lock is released");
    assert_eq!(report.next_lsn, 40);
    assert_eq!(log.read(39).expect("read"), want[39]);
}

#[test]
fn write_then_commit_and_many_committers() {
    let dir = TempDir::new("commit");
    let (log, _) = Log::open(dir.path(), LogOptions::default()).expect("open");
    let a = log.write(&[b"x", b"y"]).expect("write");
    assert_eq!(log.next_lsn(), 2);
    // Readable before it is durable: reads see everything written.
    assert_eq!(log.read(a.first + 1).expect("read"), b"y");
    log.commit(a.next).expect("commit");
    assert!(log.durable_lsn() >= a.next);
    let lsns = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for t in 0..8u8 {
            let log = &log;
            let lsns = &lsns;
            s.spawn(move || {
                for i in 0..20u8 {
                    let a = log.append(&[&[t, i]]).expect("append");
                    assert!(log.durable_lsn() >= a.next);
                    lsns.lock().expect("lock").push((a.first, [t, i]));
                }
            });
        }
    });
    let lsns = lsns.into_inner().expect("lock");
    let distinct: BTreeSet<u64> = lsns.iter().map(|(l, _)| *l).collect();
    assert_eq!(distinct.len(), 160);
    for (lsn, p) in lsns {
        assert_eq!(log.read(lsn).expect("read"), p);
    }
    assert_eq!(log.durable_lsn(), log.next_lsn());
}

#[test]
fn a_reader_beside_a_live_writer_sees_only_whole_batches() {
    let dir = TempDir::new("live");
    let opts = LogOptions {
        segment_size_max: 64 * 1024,
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir.path(), opts.clone()).expect("open");
    let log = Arc::new(log);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) && i < 4_000 {
                let rec = |j: u8| {
                    let mut v = vec![j; 700];
                    v[..4].copy_from_slice(&i.to_le_bytes());
                    v
                };
                log.append(&[&rec(0), &rec(1), &rec(2)]).expect("append");
                i += 1;
            }
        })
    };
    let mut seen_growth = 0;
    for _ in 0..15 {
        let r = LogReader::open(dir.path(), opts.clone()).expect("reader");
        let n = r.next_lsn();
        assert_eq!(n % 3, 0, "a reader saw part of a batch");
        let mut count = 0u64;
        r.scan(0, |lsn, p| {
            assert_eq!(p.len(), 700);
            assert_eq!(u64::from(p[4]), lsn % 3);
            assert_eq!(
                u64::from(u32::from_le_bytes([p[0], p[1], p[2], p[3]])),
                lsn / 3
            );
            count += 1;
            ControlFlow::Continue(())
        })
        .expect("scan");
        assert_eq!(count, n);
        let v = r.verify(|_, _| {}).expect("verify");
        assert!(
            matches!(
                v.outcome,
                VerifyOutcome::Intact | VerifyOutcome::TornTail(_)
            ),
            "{v:?}"
        );
        if n > 0 {
            seen_growth += 1;
        }
        thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(seen_growth > 0);
}

#[test]
fn retention_drops_whole_old_segments_only() {
    let sim = SimFs::new();
    let opts = LogOptions {
        segment_size_max: 200,
        ..LogOptions::default()
    };
    let (log, _) = Log::open_with(sim.handle(), "/r", opts.clone()).expect("open");
    for i in 0..30u8 {
        log.append(&[&[i; 40]]).expect("append");
    }
    assert_eq!(log.drop_segments_below(0).expect("drop none"), 0);
    let dropped = log.drop_segments_below(10).expect("drop");
    assert!(dropped > 0);
    let first = log.first_lsn();
    assert!(first > 0 && first <= 10, "first {first}");
    assert!(matches!(log.read(0), Err(LogError::LsnOutOfRange { .. })));
    assert_eq!(log.read(first).expect("read"), vec![first as u8; 40]);
    assert_eq!(payloads(&log).len() as u64, 30 - first);
    // Everything below the active segment can go; the active one stays.
    log.drop_segments_below(u64::MAX).expect("drop all sealed");
    assert!(log.first_lsn() <= 29);
    assert_eq!(log.read(29).expect("last record"), vec![29u8; 40]);
    drop(log);
    let (log, report) = Log::open_with(sim.handle(), "/r", opts).expect("reopen");
    assert_eq!(report.next_lsn, 30);
    assert_eq!(report.first_lsn, log.first_lsn());
}

#[test]
fn not_a_log_and_newer_format_are_typed() {
    let dir = TempDir::new("typed");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    let err = LogReader::open(dir.path(), LogOptions::default()).expect_err("empty dir");
    assert!(matches!(err, LogError::NotALog { .. }), "{err}");
    drop(Log::open(dir.path(), LogOptions::default()).expect("create"));
    // Rewrite the header as a version-2 writer would: same 32-byte layout.
    let seg = dir.path().join("segments").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).expect("write");
    let err = Log::open(dir.path(), LogOptions::default()).expect_err("newer");
    assert!(
        matches!(
            err,
            LogError::NewerFormat {
                version: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = LogReader::open(dir.path(), LogOptions::default()).expect_err("newer");
    assert!(matches!(err, LogError::NewerFormat { .. }), "{err}");
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<Vec<u8>>),
    Write(Vec<Vec<u8>>),
    Commit,
    Read(prop::sample::Index),
    Scan(prop::sample::Index),
    DropBelow(prop::sample::Index),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let batch = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 1..4);
    prop_oneof![
        4 => batch.clone().prop_map(Op::Append),
        2 => batch.prop_map(Op::Write),
        1 => Just(Op::Commit),
        3 => any::<prop::sample::Index>().prop_map(Op::Read),
        2 => any::<prop::sample::Index>().prop_map(Op::Scan),
        1 => any::<prop::sample::Index>().prop_map(Op::DropBelow),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Invariant: after any sequence of appends, reads, scans, retention and
    /// reopens, every read path agrees with a plain vector of the payloads
    /// (from the first retained LSN on).
    #[test]
    fn reads_agree_with_a_model_under_random_operations(
        ops in prop::collection::vec(op(), 1..60),
        segment_size_max in 100u64..400,
    ) {
        let sim = SimFs::new();
        let opts = LogOptions { segment_size_max, sync: SyncPolicy::Always, ..LogOptions::default() };
        let mut log = Log::open_with(sim.handle(), "/m", opts.clone()).expect("open").0;
        let mut model: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            let first = log.first_lsn() as usize;
            match op {
                Op::Append(b) => {
                    let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
                    let a = log.append(&refs).expect("append");
                    prop_assert_eq!(a.first as usize, model.len());
                    model.extend(b);
                    prop_assert!(log.durable_lsn() >= a.next);
                }
                Op::Write(b) => {
                    let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
                    log.write(&refs).expect("write");
                    model.extend(b);
                }
                Op::Commit => log.commit(log.next_lsn()).expect("commit"),
                Op::Read(i) if model.len() > first => {
                    let lsn = first + i.index(model.len() - first);
                    prop_assert_eq!(&log.read(lsn as u64).expect("read"), &model[lsn]);
                }
                Op::Scan(i) if model.len() > first => {
                    let from = first + i.index(model.len() - first);
                    let mut got = Vec::new();
                    log.scan(from as u64, |_, p| { got.push(p.to_vec()); ControlFlow::Continue(()) }).expect("scan");
                    prop_assert_eq!(&got[..], &model[from..]);
                }
                Op::DropBelow(i) => {
                    let lsn = i.index(model.len() + 1) as u64;
                    log.drop_segments_below(lsn).expect("drop");
                    prop_assert!(log.first_lsn() <= lsn.max(first as u64));
                }
                Op::Reopen => {
                    log.sync().expect("sync");
                    drop(log);
                    log = Log::open_with(sim.handle(), "/m", opts.clone()).expect("reopen").0;
                }
                Op::Read(_) | Op::Scan(_) => {}
            }
            prop_assert_eq!(log.next_lsn() as usize, model.len());
        }
        let first = log.first_lsn() as usize;
        prop_assert_eq!(&payloads(&log)[..], &model[first..]);
    }
}
