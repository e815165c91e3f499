//! Replay of logs big enough to take the two-thread pipeline (a segment
//! with 256 KiB or more left to walk, `engine/src/replay.rs`), through the
//! public API. The pipeline decodes ahead of what it applies, on another
//! thread; these tests pin that the first failure in LSN order is still
//! the error, with its LSN, that the events before it are all there, and
//! that `as_of` by LSN and by time stops at exactly the same event as a
//! small log's one-thread replay does.

mod support;

use runlog::{AsOf, Engine, EngineError, JobFilter, JobOutcome, Query, ReadOnly, Step, Submit};
use runlog::{Options, Timestamp, Usage};
use std::path::Path;
use std::time::Duration;
use support::{T0, TempDir, options};

/// Events per job of the workload: submit, start, 10 steps, complete,
/// finish.
const EVENTS_PER_JOB: u64 = 14;

/// Options with no snapshot ever, so that every open replays the whole log.
fn no_snapshots(mut o: Options) -> Options {
    o.snapshot_every_events = 0;
    o.snapshot_every_bytes = 0;
    o.snapshot_on_close = false;
    o
}

/// Writes `jobs` jobs of 10 steps of 2 KiB checkpoints (about 29 KiB a
/// job), one second apart on the manual clock, and closes the engine.
/// Returns the job ids in order.
fn big_log(dir: &Path, jobs: u64) -> Vec<runlog::JobId> {
    let (opts, clock) = options();
    let (engine, _) = Engine::open(dir, no_snapshots(opts)).expect("open");
    let mut ids = Vec::new();
    for i in 0..jobs {
        let job = engine
            .submit(Submit::new("agent", format!("input {i}")))
            .expect("submit")
            .job;
        let run = engine.start_run(&job, None).expect("start");
        for s in 0..10 {
            let usage = Usage {
                input_tokens: 10 + s,
                output_tokens: 1,
                cost_micros: 0,
            };
            engine
                .record_step(&job, &run, Step::new(vec![s as u8; 2048], usage))
                .expect("step");
        }
        engine.complete_run(&job, &run, "done").expect("complete");
        engine
            .finish_job(&job, JobOutcome::Completed)
            .expect("finish");
        ids.push(job);
        clock.advance(Duration::from_secs(1));
    }
    engine.close().expect("close");
    ids
}

/// Appends one raw record; returns its LSN.
fn append_raw(dir: &Path, record: &[u8]) -> u64 {
    let (log, _) = runlog::log::Log::open(dir, runlog::log::LogOptions::default()).expect("log");
    log.append(&[record]).expect("append").first
}

#[test]
fn a_record_of_a_newer_format_deep_in_a_big_log_fails_at_its_lsn() {
    let dir = TempDir::new("pipeline-newer");
    big_log(dir.path(), 40);
    let bad = append_raw(dir.path(), &[2, 0, 0, 0]);
    assert_eq!(bad, 40 * EVENTS_PER_JOB);
    let err = Engine::open(dir.path(), no_snapshots(options().0)).expect_err("newer");
    assert_eq!(
        err.to_string(),
        format!(
            "the record at LSN {bad} was written by a newer version of runlog (event format 2; this build reads up to 1)"
        )
    );
    let err = ReadOnly::open(dir.path(), options().0, AsOf::Latest).expect_err("newer");
    assert!(
        matches!(err, EngineError::NewerEventFormat { lsn, version: 2, supported: 1 } if lsn == bad),
        "{err}"
    );
    // Everything before it replays, up to the last event.
    let ro = ReadOnly::open(dir.path(), options().0, AsOf::Lsn(bad)).expect("as of");
    assert_eq!(ro.report().events_replayed, bad);
    assert_eq!(ro.report().next_lsn, bad);
    assert_eq!(ro.jobs(&JobFilter::all()).expect("jobs readable").len(), 40);
}

#[test]
fn an_undecodable_record_deep_in_a_big_log_fails_at_its_lsn() {
    let dir = TempDir::new("pipeline-undecodable");
    big_log(dir.path(), 40);
    let bad = append_raw(dir.path(), &[1, 0xff]);
    let err = ReadOnly::open(dir.path(), options().0, AsOf::Latest).expect_err("bad event");
    assert!(
        matches!(&err, EngineError::BadEvent { lsn, .. } if *lsn == bad),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the record at LSN {bad} is not a valid event: Hit the end of buffer, expected more data"
        )
    );
}

#[test]
fn as_of_an_lsn_and_a_time_in_a_big_log_stop_at_the_same_event() {
    let dir = TempDir::new("pipeline-as-of");
    let ids = big_log(dir.path(), 40);
    // 17 whole jobs and the first 5 events of the 18th.
    let lsn = 17 * EVENTS_PER_JOB + 5;
    let ro = ReadOnly::open(dir.path(), options().0, AsOf::Lsn(lsn)).expect("as of lsn");
    assert_eq!(ro.report().events_replayed, lsn);
    assert_eq!(ro.report().next_lsn, lsn);
    let listed: Vec<_> = ro
        .jobs(&JobFilter::all())
        .expect("jobs readable")
        .into_iter()
        .rev()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, ids[..18]);
    assert_eq!(ro.checkpoints(&ids[17]).expect("checkpoints").len(), 3);

    // Job i's events are stamped T0 + i seconds: as of T0 + 25 s, jobs 0..=25.
    let t = Timestamp(T0 + 25_000);
    let ro = ReadOnly::open(dir.path(), options().0, AsOf::Time(t)).expect("as of time");
    assert_eq!(ro.report().events_replayed, 26 * EVENTS_PER_JOB);
    assert_eq!(ro.report().last_at, t);
    assert_eq!(ro.jobs(&JobFilter::all()).expect("jobs readable").len(), 26);
}
