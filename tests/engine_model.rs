//! Why this file exists: the engine's promise is that an acknowledged
//! command survives any crash and that its views are always the fold of its
//! log. The log's own crash tests (`log_crash.rs`) prove the first for
//! opaque records; this one drives the whole engine — commands, snapshots,
//! clean closes — on the simulated file system, crashing it at random sync
//! points with unsynced bytes dropped or torn, failing writes and fsyncs
//! with EIO, ENOSPC and short writes, and checking after every reopen
//! against a model (`tests/checks/model.rs`).
//!
//! The long version: `PROPTEST_CASES=5000 cargo test --test engine_model
//! --release -- --nocapture`.

mod checks;

use checks::model::{self, FaultKind, Op, Setup, Stats, TearKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use std::cell::RefCell;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Small indexes mostly (the newest jobs and runs), sometimes an unknown id.
fn idx() -> impl Strategy<Value = u8> {
    prop_oneof![14 => 0u8..3, 1 => any::<u8>(), 1 => Just(255u8)]
}

fn fault() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FaultKind::Eio),
        Just(FaultKind::Enospc),
        Just(FaultKind::Short)
    ]
}

fn tear() -> impl Strategy<Value = TearKind> {
    prop_oneof![
        Just(TearKind::Drop),
        any::<u8>().prop_map(TearKind::Keep),
        (any::<u8>(), any::<u8>()).prop_map(|(k, z)| TearKind::Zeros(k, z)),
        Just(TearKind::All),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), bytes(24), proptest::option::of(0u8..4), any::<bool>()).prop_map(
            |(key, input, fingerprint, force_new)| Op::Submit { key, input, fingerprint, force_new }
        ),
        1 => idx().prop_map(|job| Op::ResubmitJob { job }),
        7 => (idx(), proptest::option::weighted(0.2, idx()))
            .prop_map(|(job, from)| Op::StartRun { job, from }),
        2 => (idx(), proptest::option::weighted(0.3, idx()))
            .prop_map(|(run, from)| Op::ResumeRun { run, from }),
        8 => (idx(), bytes(48), any::<u16>(), proptest::option::weighted(0.3, 0u8..4), any::<bool>())
            .prop_map(|(run, payload, tokens, phase, engine_makes_id)| Op::Step {
                run, payload, tokens, phase, engine_makes_id
            }),
        2 => (idx(), 0u8..4).prop_map(|(run, position)| Op::CompletePhase { run, position }),
        2 => idx().prop_map(|run| Op::Delegate { run }),
        2 => idx().prop_map(|child| Op::ReturnChild { child }),
        2 => idx().prop_map(|run| Op::RequestInput { run }),
        2 => (idx(), bytes(16)).prop_map(|(run, input)| Op::ProvideInput { run, input }),
        3 => (idx(), bytes(16)).prop_map(|(run, output)| Op::CompleteRun { run, output }),
        1 => (idx(), any::<bool>()).prop_map(|(run, retryable)| Op::FailRun { run, retryable }),
        1 => (idx(), any::<bool>()).prop_map(|(run, panic)| Op::InterruptRun { run, panic }),
        4 => (idx(), any::<bool>()).prop_map(|(job, failed)| Op::FinishJob { job, failed }),
        1 => idx().prop_map(|job| Op::CancelJob { job }),
        1 => (idx(), any::<u8>()).prop_map(|(job, status)| Op::Observe { job, status }),
        3 => Just(Op::Snapshot),
        2 => (0u16..2000).prop_map(|millis| Op::Tick { millis }),
        1 => (0u16..3000).prop_map(|millis| Op::ClockBack { millis }),
        2 => any::<u8>().prop_map(|at_sync| Op::ArmCrash { at_sync }),
        1 => (any::<u8>(), fault()).prop_map(|(n, fault)| Op::ArmWriteFault { n, fault }),
        1 => (any::<u8>(), fault()).prop_map(|(n, fault)| Op::ArmSyncFault { n, fault }),
        2 => (tear(), proptest::option::weighted(0.3, any::<u8>()))
            .prop_map(|(tear, crash_in_open)| Op::Reopen { tear, crash_in_open }),
        1 => tear().prop_map(|tear| Op::CloseReopen { tear }),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    let sizes = (any::<u16>(), any::<u8>(), any::<u8>(), any::<u8>());
    (sizes, any::<bool>(), any::<bool>(), any::<u8>()).prop_map(
        |(
            (segment_size, snapshot_every, snapshots_kept, attempts_max),
            drop_history,
            on_close,
            sync,
        )| {
            Setup {
                sync,
                segment_size,
                drop_history,
                snapshot_every,
                snapshot_on_close: on_close,
                snapshots_kept,
                attempts_max,
            }
        },
    )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Invariant: after any sequence of commands, crashes at a sync point (with
/// unsynced bytes dropped, torn or zero-filled), injected EIO/ENOSPC/short
/// writes and reopens, the log holds exactly the acknowledged events
/// followed by a prefix of whole unacknowledged batches, the engine's views
/// equal a plain fold of it, and a poisoned engine acknowledges nothing
/// until reopened.
#[test]
fn engine_survives_crashes_and_faults_as_the_model_says() {
    let config = Config {
        cases: cases(),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/engine_model.proptest-regressions",
        ))),
        ..Config::default()
    };
    let totals = RefCell::new(Stats::default());
    let strategy = (setup(), proptest::collection::vec(op(), 1..80));
    // The generator must reach what the invariant is about; if a change
    // made it stop crashing or failing, this test would prove nothing.
    // The seed is random: per 256 cases, runs here reached 140-190
    // crashes, 55-105 faults and 5-31 reopens after a drop, and once only
    // one such reopen. So a round that falls short of the bounds below is
    // followed by another round of as many new cases, up to
    // COVERAGE_ROUNDS_MAX, and the bounds are checked against all the cases
    // run: a generator that truly stopped reaching a case still fails, a
    // seed that was merely unlucky does not.
    const COVERAGE_ROUNDS_MAX: u64 = 4;
    let per_round = u64::from(cases());
    let mut rounds = 0;
    let t = loop {
        rounds += 1;
        // A runner of its own each round: one runner runs its cases once.
        let mut runner = TestRunner::new(config.clone());
        let result = runner.run(&strategy, |(setup, ops)| {
            let stats = model::run(&setup, &ops);
            totals.borrow_mut().add(&stats);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        let t = *totals.borrow();
        if covered(&t, per_round * rounds).is_ok() || rounds == COVERAGE_ROUNDS_MAX {
            break t;
        }
    };
    eprintln!(
        "engine model: {} cases in {rounds} round(s); {} commands acknowledged, {} refused; {} crashes ({} inside an open); \
         {} injected faults surfaced; {} reopens checked; unacknowledged batches: {} recovered whole, {} lost; \
         {} commands refused by a poisoned engine; {} reopens of a log whose first segments were dropped; \
         {} acknowledged events lost unsynced (lossy sync policies)",
        per_round * rounds,
        t.acked,
        t.refused,
        t.crashes,
        t.crashes_in_open,
        t.faults,
        t.reopens,
        t.unacked_recovered,
        t.unacked_lost,
        t.poisoned_refusals,
        t.reopens_after_drop,
        t.unsynced_lost
    );
    if let Err(short) = covered(&t, per_round * rounds) {
        panic!("{short}: {t:?}");
    }
}

/// Whether `cases` cases reached enough of what the model test is about:
/// crashes, faults, reopens after segments were dropped, acknowledged
/// commands. Says which fell short.
fn covered(t: &Stats, cases: u64) -> Result<(), &'static str> {
    if t.crashes < cases / 8 {
        return Err("too few crashes");
    }
    if t.faults < cases / 16 {
        return Err("too few faults");
    }
    if t.reopens_after_drop < cases / 128 {
        return Err("too few reopens after segments were dropped");
    }
    if t.acked < cases * 5 {
        return Err("too few acknowledged commands");
    }
    Ok(())
}

/// Invariant (regression, found by the `engine_ops` fuzz target): under
/// `SyncPolicy::Never` the batch an open writes for the runs in flight is
/// not durable, so a later power loss may take it; what the restarted disk
/// held before that open may not be lost. (The fuzz seed that found it
/// decodes to other ops once `Op` changes; this list keeps it.)
#[test]
fn an_opens_own_batch_is_not_durable_under_a_lossy_policy() {
    let setup = Setup {
        segment_size: 40139,
        drop_history: false,
        snapshot_every: 72,
        snapshot_on_close: true,
        snapshots_kept: 217,
        attempts_max: 60,
        sync: 227, // SyncPolicy::Never
    };
    let ops = [
        Op::Submit {
            key: 142,
            input: vec![],
            fingerprint: Some(216),
            force_new: false,
        },
        Op::Reopen {
            tear: TearKind::Keep(123),
            crash_in_open: Some(6),
        },
        Op::ArmCrash { at_sync: 166 },
        Op::Tick { millis: 36482 },
        Op::StartRun {
            job: 181,
            from: None,
        },
        Op::Submit {
            key: 0,
            input: vec![],
            fingerprint: None,
            force_new: false,
        },
        Op::Submit {
            key: 0,
            input: vec![],
            fingerprint: None,
            force_new: false,
        },
        Op::Submit {
            key: 0,
            input: vec![],
            fingerprint: None,
            force_new: false,
        },
        Op::Submit {
            key: 0,
            input: vec![],
            fingerprint: None,
            force_new: false,
        },
        Op::Submit {
            key: 0,
            input: vec![],
            fingerprint: None,
            force_new: true,
        },
        Op::RequestInput { run: 150 },
        Op::ArmWriteFault {
            n: 113,
            fault: FaultKind::Short,
        },
        Op::ProvideInput {
            run: 146,
            input: vec![],
        },
        Op::Reopen {
            tear: TearKind::Drop,
            crash_in_open: Some(15),
        },
        Op::StartRun {
            job: 79,
            from: Some(79),
        },
        Op::Reopen {
            tear: TearKind::Drop,
            crash_in_open: Some(44),
        },
        Op::InterruptRun {
            run: 203,
            panic: true,
        },
        Op::ReturnChild { child: 79 },
        Op::Submit {
            key: 0,
            input: vec![],
            fingerprint: None,
            force_new: false,
        },
    ];
    let stats = model::run(&setup, &ops);
    // The case only matters if it still crashes inside an open and loses
    // unsynced events.
    assert!(stats.crashes_in_open >= 1, "{stats:?}");
    assert!(stats.unsynced_lost >= 1, "{stats:?}");
}

/// Invariant (regression, found by the long model run): a crash while a
/// snapshot drops the segments it covers fails the snapshot with a log
/// error but does not poison the log — the snapshot is written and the
/// removal loses nothing — and a clean close that has nothing left to
/// write may then succeed; every later write still fails until reopened.
#[test]
fn a_crash_while_dropping_segments_fails_the_snapshot_only() {
    let setup = Setup {
        segment_size: 27651,
        drop_history: true,
        snapshot_every: 103,
        snapshot_on_close: false,
        snapshots_kept: 0,
        attempts_max: 0,
        sync: 130, // SyncPolicy::Bytes
    };
    let submit = Op::Submit {
        key: 0,
        input: vec![],
        fingerprint: None,
        force_new: false,
    };
    let start = Op::StartRun { job: 0, from: None };
    let ops = [
        submit,
        start.clone(),
        start,
        Op::CancelJob { job: 0 },
        Op::ArmCrash { at_sync: 171 },
        Op::Snapshot,
        Op::CloseReopen {
            tear: TearKind::Drop,
        },
    ];
    let stats = model::run(&setup, &ops);
    assert_eq!(stats.crashes, 1, "{stats:?}");
}
