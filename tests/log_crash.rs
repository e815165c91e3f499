//! Why this file exists: the log's durability promise is only as good as its
//! behaviour when the machine dies or the disk fails mid-commit. These tests
//! run workloads on the simulated file system, crash it at every sync point
//! (or fail a write or fsync), tear the unsynced bytes several ways, reopen,
//! and check the one invariant that matters:
//!
//! after reopen, the recovered records are exactly the acknowledged batches,
//! plus possibly a prefix of whole unacknowledged batches, in order; and a
//! writer that saw an I/O error never acknowledges anything again.

use std::sync::{Arc, Mutex};
use std::thread;

use runlog_log::{Fault, Log, LogError, LogOptions, RecoveryMode, SimFs, SyncPolicy, Tear};

const DIR: &str = "/data/log";

fn options() -> LogOptions {
    LogOptions {
        segment_size_max: 300,
        ..LogOptions::default()
    }
}

fn batch(i: usize) -> Vec<Vec<u8>> {
    (0..1 + i % 3)
        .map(|j| format!("batch {i} record {j} {}", "#".repeat(i % 7)).into_bytes())
        .collect()
}

fn read_all(sim: &SimFs, mode: RecoveryMode) -> Vec<Vec<u8>> {
    let opts = LogOptions {
        recovery: mode,
        ..options()
    };
    let (log, _) = Log::open_with(sim.handle(), DIR, opts).expect("reopen after crash");
    let out = log
        .iter_from(log.first_lsn())
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect();
    // A clean reopen must also pass the strict, every-segment check.
    drop(log);
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..options()
    };
    Log::open_with(sim.handle(), DIR, strict).expect("strict open after recovery");
    out
}

/// Runs batches until the first error; returns how many were acknowledged
/// and how many were attempted. Checks that a failed writer stays failed.
fn workload(log: &Log, batches: usize) -> (usize, usize) {
    for i in 0..batches {
        let b = batch(i);
        let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
        if let Err(e) = log.append(&refs) {
            assert!(matches!(e, LogError::Io { .. } | LogError::Poisoned), "{e}");
            for _ in 0..3 {
                let again = log.append(&[b"after failure"]);
                assert!(matches!(again, Err(LogError::Poisoned)), "{again:?}");
            }
            assert!(log.sync().is_err());
            return (i, i + 1);
        }
    }
    (batches, batches)
}

/// The invariant: `got` is batches `0..m` for some `acked <= m <= attempted`.
fn check(got: &[Vec<u8>], acked: usize, attempted: usize, at: &str) {
    let mut want: Vec<Vec<u8>> = Vec::new();
    let mut ok = false;
    for m in 0..=attempted {
        if m >= acked && got == want.as_slice() {
            ok = true;
            break;
        }
        want.extend(batch(m));
    }
    assert!(
        ok,
        "{at}: recovered {} records, acked {acked} batches, attempted {attempted}",
        got.len()
    );
}

const TEARS: [Tear; 5] = [
    Tear::DropUnsynced,
    Tear::KeepUnsynced(17),
    Tear::KeepUnsynced(90),
    Tear::KeepThenZeros {
        keep: 40,
        zeros: 64,
    },
    Tear::KeepAll,
];

#[test]
fn a_crash_at_every_sync_loses_nothing_acknowledged() {
    const BATCHES: usize = 40;
    // Count the syncs a full run makes, then crash at each one in turn.
    let total = {
        let sim = SimFs::new();
        let (log, _) = Log::open_with(sim.handle(), DIR, options()).expect("open");
        let before = sim.sync_count();
        assert_eq!(workload(&log, BATCHES), (BATCHES, BATCHES));
        sim.sync_count() - before
    };
    assert!(total > BATCHES as u64, "rollovers add syncs: {total}");
    for k in 1..=total {
        for tear in TEARS {
            let sim = SimFs::new();
            let (log, _) = Log::open_with(sim.handle(), DIR, options()).expect("open");
            sim.crash_at_sync(k);
            let (acked, attempted) = workload(&log, BATCHES);
            assert!(sim.crashed(), "sync {k} never came");
            sim.restart(tear);
            drop(log);
            let got = read_all(&sim, RecoveryMode::TolerateTornTail);
            check(
                &got,
                acked,
                attempted,
                &format!("crash at sync {k}, {tear:?}"),
            );
        }
    }
}

#[test]
fn write_and_fsync_failures_poison_and_lose_nothing_acknowledged() {
    const BATCHES: usize = 30;
    let faults = [Fault::Eio, Fault::Enospc, Fault::ShortWrite];
    for n in 1..=35u64 {
        for fault in faults {
            for on_sync in [false, true] {
                for tear in [Tear::DropUnsynced, Tear::KeepAll] {
                    let sim = SimFs::new();
                    let (log, _) = Log::open_with(sim.handle(), DIR, options()).expect("open");
                    if on_sync {
                        sim.fail_sync_in(n, fault);
                    } else {
                        sim.fail_write_in(n, fault);
                    }
                    let (acked, attempted) = workload(&log, BATCHES);
                    drop(log);
                    sim.restart(tear);
                    let got = read_all(&sim, RecoveryMode::TolerateTornTail);
                    let at = format!(
                        "{fault:?} at {} {n}, {tear:?}",
                        if on_sync { "sync" } else { "write" }
                    );
                    check(&got, acked, attempted, &at);
                }
            }
        }
    }
}

#[test]
fn concurrent_committers_lose_nothing_acknowledged_in_a_crash() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 25;
    for k in [3u64, 7, 12, 20, 33] {
        let sim = SimFs::new();
        let (log, _) = Log::open_with(sim.handle(), DIR, options()).expect("open");
        sim.crash_at_sync(k);
        let acked = Mutex::new(Vec::new());
        thread::scope(|s| {
            for t in 0..THREADS {
                let log = &log;
                let acked = &acked;
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        let b = [format!("t{t} b{i} first"), format!("t{t} b{i} second")];
                        if log.append(&[b[0].as_bytes(), b[1].as_bytes()]).is_err() {
                            return;
                        }
                        acked.lock().expect("lock").push(b[0].clone());
                    }
                });
            }
        });
        sim.restart(Tear::KeepUnsynced(50));
        drop(log);
        let got = read_all(&sim, RecoveryMode::TolerateTornTail);
        // Whole batches only: records come in (first, second) pairs.
        assert_eq!(got.len() % 2, 0, "crash at {k}");
        for pair in got.chunks(2) {
            let first = String::from_utf8(pair[0].clone()).expect("utf8");
            let second = String::from_utf8(pair[1].clone()).expect("utf8");
            assert_eq!(first.replace("first", "second"), second, "crash at {k}");
        }
        let got: Vec<String> = got
            .iter()
            .map(|p| String::from_utf8(p.clone()).expect("utf8"))
            .collect();
        for a in acked.lock().expect("lock").iter() {
            assert!(got.contains(a), "crash at {k}: acknowledged {a} lost");
        }
    }
}

#[test]
fn a_crash_during_recovery_is_survived_and_recovery_is_idempotent() {
    // Build a log with a torn tail: the last batch half written.
    let base = || {
        let sim = SimFs::new();
        let opts = LogOptions {
            sync: SyncPolicy::Never,
            ..options()
        };
        let (log, _) = Log::open_with(sim.handle(), DIR, opts).expect("open");
        for i in 0..12 {
            let b = batch(i);
            let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
            log.append(&refs).expect("append");
        }
        log.sync().expect("sync");
        let b = batch(12);
        let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
        log.append(&refs).expect("append");
        log.iter_from(0).expect("flush").for_each(drop);
        sim.restart(Tear::KeepUnsynced(30));
        drop(log);
        sim
    };
    let want: Vec<Vec<u8>> = (0..12).flat_map(batch).collect();
    for k in 1..=6 {
        for tear in [Tear::DropUnsynced, Tear::KeepAll] {
            let sim = base();
            sim.crash_at_sync(k);
            let first = Log::open_with(sim.handle(), DIR, options());
            let crashed = sim.crashed();
            drop(first);
            sim.restart(tear);
            let got = read_all(&sim, RecoveryMode::TolerateTornTail);
            assert_eq!(
                got, want,
                "crash at recovery sync {k} ({crashed}), {tear:?}"
            );
        }
    }
}

#[test]
fn an_interrupted_rollover_leaves_no_trace() {
    // Sync 1 of a rollover seals the old segment, 2 syncs the new header,
    // 3 syncs the directory after the rename.
    for k in 1..=3 {
        let sim = SimFs::new();
        let opts = LogOptions {
            segment_size_max: 100,
            ..options()
        };
        let (log, _) = Log::open_with(sim.handle(), DIR, opts.clone()).expect("open");
        log.append(&[&[7u8; 60]]).expect("append");
        sim.crash_at_sync(k);
        assert!(log.append(&[&[8u8; 60]]).is_err());
        sim.restart(Tear::KeepAll);
        drop(log);
        let (log, report) = Log::open_with(sim.handle(), DIR, opts).expect("reopen");
        assert!(report.segments <= 2);
        let got: Vec<Vec<u8>> = log
            .iter_from(0)
            .expect("iter")
            .map(|r| r.expect("record").payload)
            .collect();
        assert_eq!(got, vec![vec![7u8; 60]], "crash at rollover sync {k}");
        assert!(
            sim.files()
                .iter()
                .all(|p| !p.to_string_lossy().ends_with(".tmp")),
            "temporary segment left behind at {k}"
        );
        let _ = Arc::strong_count(&sim.handle());
    }
}

#[test]
fn group_commit_never_strands_committers_across_rollovers() {
    // Rollovers sync too, so a caller handed the lead may find its own
    // records durable already; it must still lead for the callers queued
    // behind it. Tiny segments make rollovers frequent; a watchdog turns a
    // stranded committer (a hang) into a failure.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let sim = SimFs::new();
        let opts = LogOptions {
            segment_size_max: 120,
            ..options()
        };
        let (log, _) = Log::open_with(sim.handle(), DIR, opts).expect("open");
        thread::scope(|s| {
            for t in 0..8u8 {
                let log = &log;
                s.spawn(move || {
                    for i in 0..150u8 {
                        let a = log.write(&[&[t, i], &[i; 30]]).expect("write");
                        log.commit(a.next).expect("commit");
                        assert!(log.durable_lsn() >= a.next);
                    }
                });
            }
        });
        let _ = done_tx.send(log.next_lsn());
    });
    let next = done_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a committer was stranded: group commit hung");
    assert_eq!(next, 8 * 150 * 2);
}
