//! Engine benchmarks for issue 4: open + replay of a log of the demo's mix
//! (200-byte checkpoints) with no snapshot and with a snapshot near the end
//! (100k vs 1M events; the same 1,200 events after the snapshot at both
//! lengths; and 1M events of long jobs, as many jobs as the mix's 100k),
//! and durable commands per second from 1 and from 16
//! threads. Run with `cargo bench --bench engine`; report medians and ratios
//! from one run.

#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use runlog::{Engine, JobOutcome, Options, Step, Submit, SyncPolicy, Usage};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per job in the mix: submit, start, 8 steps, complete, finish.
const EVENTS_PER_JOB: u64 = 12;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runlog-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn quiet_options(sync: SyncPolicy) -> Options {
    let mut o = Options::default();
    o.sync = sync;
    o.snapshot_every_events = 0;
    o.snapshot_every_bytes = 0;
    o.snapshot_on_close = false;
    o
}

/// Events written after the snapshot, at every log length: "a snapshot
/// near the end" leaves the same tail to replay whatever came before it,
/// as periodic snapshots (`snapshot_every_events`) bound the tail, not the
/// log's length.
const TAIL_EVENTS: u64 = 1_200;

/// Steps per job of the demo's mix (12 events a job).
const MIX_STEPS: u64 = EVENTS_PER_JOB - 4;

/// Steps per job of the long-jobs log: 120 events a job, so 1M events hold
/// as many jobs (8,333) as the mix's 100k.
const LONG_STEPS: u64 = 116;

/// Writes `events` events into `dir`, jobs of `steps` steps each (submit,
/// start, the steps, complete, finish); with `snapshot`, takes a snapshot
/// [`TAIL_EVENTS`] events before the end.
fn build_log(dir: &Path, events: u64, steps: u64, snapshot: bool) {
    let (engine, _) = Engine::open(dir, quiet_options(SyncPolicy::Never)).unwrap();
    let per_job = steps + 4;
    let jobs = events / per_job;
    let payload = vec![0x5a; 200];
    for i in 0..jobs {
        if snapshot && i == jobs.saturating_sub(TAIL_EVENTS / per_job) {
            engine.snapshot().unwrap();
        }
        let job = engine
            .submit(Submit::new("agent", format!("input {i}")))
            .unwrap()
            .job;
        let run = engine.start_run(&job, None).unwrap();
        for s in 0..steps {
            let usage = Usage {
                input_tokens: 100 + s,
                output_tokens: 20,
                cost_micros: 0,
            };
            engine
                .record_step(&job, &run, Step::new(payload.clone(), usage))
                .unwrap();
        }
        engine.complete_run(&job, &run, "done").unwrap();
        engine.finish_job(&job, JobOutcome::Completed).unwrap();
    }
    engine.close().unwrap();
}

fn open_replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // The demo's mix at two lengths, without and with a snapshot; then a
    // log as long as the second but of as many jobs as the first (long
    // jobs), to tell what an open with a snapshot grows with: the jobs it
    // restores, or the log.
    let cases = [
        (100_000u64, MIX_STEPS, false, "no-snapshot"),
        (100_000, MIX_STEPS, true, "with-snapshot"),
        (1_000_000, MIX_STEPS, false, "no-snapshot"),
        (1_000_000, MIX_STEPS, true, "with-snapshot"),
        (1_000_000, LONG_STEPS, true, "with-snapshot-long-jobs"),
    ];
    for (events, steps, snapshot, name) in cases {
        let dir = fresh_dir(&format!("open-{events}-{name}"));
        build_log(&dir, events, steps, snapshot);
        group.throughput(Throughput::Elements(events));
        group.bench_with_input(BenchmarkId::new(name, events), &dir, |b, dir| {
            // Open and replay are timed; dropping the engine (freeing
            // the views: 180 M instructions at 1M events) is not. The
            // engine holds the directory's lock, so each is dropped
            // before the next open.
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let (engine, report) =
                        Engine::open(dir, quiet_options(SyncPolicy::Never)).unwrap();
                    timed += start.elapsed();
                    assert_eq!(report.snapshot.is_some(), snapshot);
                    drop(engine);
                }
                timed
            })
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

fn durable_commands(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable-commands");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for threads in [1usize, 16] {
        let dir = fresh_dir(&format!("durable-{threads}"));
        let (engine, _) = Engine::open(&dir, quiet_options(SyncPolicy::Always)).unwrap();
        let engine = Arc::new(engine);
        let runs: Vec<_> = (0..threads)
            .map(|_| {
                let job = engine.submit(Submit::new("agent", "x")).unwrap().job;
                let run = engine.start_run(&job, None).unwrap();
                (job, run)
            })
            .collect();
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("record_step", threads), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for (job, run) in &runs {
                        let engine = &engine;
                        s.spawn(move || {
                            for _ in 0..iters {
                                engine
                                    .record_step(
                                        job,
                                        run,
                                        Step::new(vec![1u8; 200], Usage::default()),
                                    )
                                    .unwrap();
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        drop(engine);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, open_replay, durable_commands);
criterion_main!(benches);
