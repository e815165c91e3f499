//! Opens a data directory the way `benches/engine.rs` does, once per run,
//! so that open can be profiled by instruction count (callgrind is not
//! disturbed by other work on the machine, a wall clock is).
//!
//! ```sh
//! cargo run --release --example open_profile -- build DIR EVENTS [snapshot]
//! valgrind --tool=callgrind target/release/examples/open_profile open DIR
//! cargo run --release --example open_profile -- time DIR RUNS
//! cargo run --release --example open_profile -- cold DIR JOBS
//! valgrind --tool=callgrind target/release/examples/open_profile all DIR 1
//! cargo run --release --example open_profile -- all DIR RUNS
//! cargo run --release --example open_profile -- details DIR RUNS
//! cargo run --release --example open_profile -- probe DIR RUNS
//! ```
//!
//! `build` writes the bench's mix (per job: submit, start, 8 steps of
//! 200-byte checkpoints, complete, finish; 12 events) up to EVENTS events,
//! with `snapshot` taking a snapshot 100 jobs (1,200 events) before the
//! end, as `benches/engine.rs` does. `open` opens
//! once and prints what it found; `time` opens RUNS times and prints each
//! open's milliseconds and the median.
//!
//! `cold` writes the compare harness's cold-start set (per job: submit,
//! start, 10 steps of 200-byte checkpoints with varied usage, complete,
//! finish; one snapshot on close) for JOBS jobs; `all` times what that
//! harness times there, "open + all jobs with their totals" (open, then
//! `jobs(&JobFilter::all())`), RUNS times, and prints the median.
//! `details` opens the directory and then reads every job's latest
//! checkpoint (the first read of each job's runs and checkpoints after an
//! open: decoded from the snapshot, or rebuilt from the log's events),
//! RUNS times, and prints the median time per job.
//! `probe` opens the directory and lists every job, then reads the latest
//! checkpoint of the job in the middle of the list and that checkpoint's
//! payload (the first reads of the log after an open, from the middle of
//! a sealed segment), RUNS times, and prints the medians of the open with
//! the listing and of the two reads.

use runlog::{Engine, JobFilter, JobOutcome, Options, Query, Step, Submit, SyncPolicy, Usage};
use std::process::ExitCode;
use std::time::Instant;

const EVENTS_PER_JOB: u64 = 12;

fn options() -> Options {
    let mut o = Options::default();
    o.sync = SyncPolicy::Never;
    o.snapshot_every_events = 0;
    o.snapshot_every_bytes = 0;
    o.snapshot_on_close = false;
    o
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["build", dir, events] => build(dir, events, false),
        ["build", dir, events, "snapshot"] => build(dir, events, true),
        ["open", dir] => open(dir).map(|ms| println!("{ms:.1} ms")),
        ["time", dir, runs] => time(dir, runs),
        ["cold", dir, jobs] => cold(dir, jobs),
        ["all", dir, runs] => all(dir, runs),
        ["details", dir, runs] => details(dir, runs),
        ["probe", dir, runs] => probe(dir, runs),
        _ => Err(
            "usage: open_profile build DIR EVENTS [snapshot] | open DIR | time DIR RUNS \
                 | cold DIR JOBS | all DIR RUNS | details DIR RUNS | probe DIR RUNS"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn number(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

fn build(dir: &str, events: &str, snapshot: bool) -> Result<(), String> {
    let jobs = number(events)? / EVENTS_PER_JOB;
    let (engine, _) = Engine::open(dir, options()).map_err(|e| e.to_string())?;
    let payload = vec![0x5a; 200];
    let err = |e: runlog::EngineError| e.to_string();
    for i in 0..jobs {
        if snapshot && i == jobs.saturating_sub(100) {
            engine.snapshot().map_err(err)?;
        }
        let job = engine
            .submit(Submit::new("agent", format!("input {i}")))
            .map_err(err)?
            .job;
        let run = engine.start_run(&job, None).map_err(err)?;
        for s in 0..8 {
            let usage = Usage {
                input_tokens: 100 + s,
                output_tokens: 20,
                cost_micros: 0,
            };
            engine
                .record_step(&job, &run, Step::new(payload.clone(), usage))
                .map_err(err)?;
        }
        engine.complete_run(&job, &run, "done").map_err(err)?;
        engine
            .finish_job(&job, JobOutcome::Completed)
            .map_err(err)?;
    }
    engine.close().map_err(err)?;
    Ok(())
}

/// Opens once; returns the milliseconds the open took.
fn open(dir: &str) -> Result<f64, String> {
    let start = Instant::now();
    let (engine, report) = Engine::open(dir, options()).map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let jobs = engine.with_views(|v| v.job_count());
    eprintln!(
        "jobs={jobs} snapshot={} events_replayed={}",
        report.snapshot.is_some(),
        report.events_replayed
    );
    Ok(ms)
}

fn time(dir: &str, runs: &str) -> Result<(), String> {
    let mut all = Vec::new();
    for _ in 0..number(runs)? {
        all.push(open(dir)?);
    }
    print_median(all);
    Ok(())
}

/// Prints the median of `times` (milliseconds) and every time, sorted.
fn print_median(mut times: Vec<f64>) {
    times.sort_by(f64::total_cmp);
    let line: Vec<String> = times.iter().map(|ms| format!("{ms:.1}")).collect();
    println!(
        "median {:.1} ms  (all: {})",
        times.get(times.len() / 2).copied().unwrap_or(0.0),
        line.join(" ")
    );
}

/// The compare harness's cold-start set: 10 steps of 200 bytes per job,
/// usage varied per job and step, one snapshot on close.
fn cold(dir: &str, jobs: &str) -> Result<(), String> {
    let jobs = number(jobs)?;
    let mut o = options();
    o.snapshot_on_close = true;
    let (engine, _) = Engine::open(dir, o).map_err(|e| e.to_string())?;
    let err = |e: runlog::EngineError| e.to_string();
    for i in 0..jobs {
        let input = format!("job {i}: find what the sources say about topic {i}");
        let job = engine
            .submit(Submit::new("researcher", input))
            .map_err(err)?
            .job;
        let run = engine.start_run(&job, None).map_err(err)?;
        for s in 1..=10u64 {
            let input_tokens = 800 + (i * 31 + s * 7) % 97;
            let output_tokens = 120 + (i + s * 5) % 13;
            let usage = Usage {
                input_tokens,
                output_tokens,
                cost_micros: input_tokens * 3 + output_tokens * 15,
            };
            let mut payload = format!("{{\"job\":{i},\"step\":{s},\"messages\":\"");
            payload.extend(std::iter::repeat_n(
                'x',
                200usize.saturating_sub(payload.len()),
            ));
            engine
                .record_step(&job, &run, Step::new(payload.into_bytes(), usage))
                .map_err(err)?;
        }
        engine.complete_run(&job, &run, "done").map_err(err)?;
        engine
            .finish_job(&job, JobOutcome::Completed)
            .map_err(err)?;
    }
    engine.close().map_err(err)?;
    Ok(())
}

/// Opens `dir` and lists every job with its totals, RUNS times, as the
/// compare harness's cold start does; prints each time and the median.
fn all(dir: &str, runs: &str) -> Result<(), String> {
    let mut o = options();
    o.snapshot_on_close = false;
    let mut times = Vec::new();
    for _ in 0..number(runs)? {
        let start = Instant::now();
        let (engine, report) = Engine::open(dir, o.clone()).map_err(|e| e.to_string())?;
        let rows = engine.jobs(&JobFilter::all()).map_err(|e| e.to_string())?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let steps: u64 = rows.iter().map(|j| j.total_steps).sum();
        eprintln!(
            "jobs={} steps={steps} snapshot={} events_replayed={} {ms:.1} ms",
            rows.len(),
            report.snapshot.is_some(),
            report.events_replayed
        );
        drop(rows);
        engine.close().map_err(|e| e.to_string())?;
        times.push(ms);
    }
    print_median(times);
    Ok(())
}

/// Opens `dir`, then reads every job's latest checkpoint once, RUNS
/// times; prints the median microseconds per job (the open not counted).
fn details(dir: &str, runs: &str) -> Result<(), String> {
    let mut o = options();
    o.snapshot_on_close = false;
    let mut times = Vec::new();
    for _ in 0..number(runs)? {
        let (engine, report) = Engine::open(dir, o.clone()).map_err(|e| e.to_string())?;
        let rows = engine.jobs(&JobFilter::all()).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut found = 0usize;
        for row in &rows {
            if engine
                .latest_checkpoint(&row.id)
                .map_err(|e| e.to_string())?
                .is_some()
            {
                found += 1;
            }
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / rows.len().max(1) as f64;
        eprintln!(
            "jobs={} with a checkpoint={found} snapshot={} {us:.2} us per job",
            rows.len(),
            report.snapshot.is_some()
        );
        drop(rows);
        engine.close().map_err(|e| e.to_string())?;
        times.push(us);
    }
    let mut sorted = times;
    sorted.sort_by(f64::total_cmp);
    println!(
        "median {:.2} us per job",
        sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
    );
    Ok(())
}

/// Opens `dir` and lists every job, then reads the middle job's latest
/// checkpoint and its payload, RUNS times; prints the medians of the
/// open with the listing (ms) and of the two reads (us).
fn probe(dir: &str, runs: &str) -> Result<(), String> {
    let mut o = options();
    o.snapshot_on_close = false;
    let err = |e: runlog::EngineError| e.to_string();
    let (mut opens, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..number(runs)? {
        let start = Instant::now();
        let (engine, _) = Engine::open(dir, o.clone()).map_err(err)?;
        let rows = engine.jobs(&JobFilter::all()).map_err(err)?;
        opens.push(start.elapsed().as_secs_f64() * 1e3);
        let job = &rows.get(rows.len() / 2).ok_or("no jobs")?.id;
        let start = Instant::now();
        let view = engine
            .latest_checkpoint(job)
            .map_err(err)?
            .ok_or("the job has no checkpoint")?;
        let checkpoint = engine.checkpoint(job, &view.id).map_err(err)?;
        let us = start.elapsed().as_secs_f64() * 1e6;
        eprintln!(
            "jobs={} job={job} checkpoint={} payload={} bytes: {us:.0} us",
            rows.len(),
            view.id,
            checkpoint.payload.len()
        );
        reads.push(us);
        drop(rows);
        engine.close().map_err(err)?;
    }
    reads.sort_by(f64::total_cmp);
    let line: Vec<String> = reads.iter().map(|us| format!("{us:.0}")).collect();
    print!("open + all jobs: ");
    print_median(opens);
    println!(
        "latest checkpoint + its payload of the middle job: median {:.0} us  (all: {})",
        reads.get(reads.len() / 2).copied().unwrap_or(0.0),
        line.join(" ")
    );
    Ok(())
}
