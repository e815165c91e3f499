//! Measures the memory the engine's views hold per job and per checkpoint.
//!
//! ```sh
//! cargo run --release --example engine_memory -- build DIR JOBS STEPS
//! cargo run --release --example engine_memory -- open DIR
//! ```
//!
//! `build` writes JOBS finished jobs of STEPS steps each (200-byte
//! checkpoints); `open` opens the directory (replaying it, no snapshot) and
//! prints the process's peak resident memory (VmHWM), its heap (RssAnon)
//! and the job and checkpoint counts. Comparing three directories (0 jobs; N jobs with 0
//! steps; N jobs with S steps) gives the bytes per job and per checkpoint.
//!
//! It also prints what the views spend on the LSNs of each job's events
//! (so that a snapshot can name them instead of holding the job's runs
//! and checkpoints): `event_lsn_list_bytes`, the lists' encoded bytes
//! summed over the jobs (one varint per event after the first), to which
//! each job adds its list's 24-byte `Vec` inline and the allocator's
//! rounding of the list.

use runlog::{Engine, JobFilter, JobOutcome, Options, Query, Step, Submit, SyncPolicy, Usage};
use std::process::ExitCode;

fn options() -> Options {
    let mut o = Options::default();
    o.sync = SyncPolicy::Never;
    o.snapshot_every_events = 0;
    o.snapshot_every_bytes = 0;
    o.snapshot_on_close = false;
    o
}

/// A `/proc/self/status` field in KiB: `VmHWM` is the peak resident set,
/// which includes the pages of the log's segments that replay mapped;
/// `RssAnon` is the heap alone, which is what the views hold.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["build", dir, jobs, steps] => build(dir, jobs, steps),
        ["open", dir] => open(dir),
        _ => Err("usage: engine_memory build DIR JOBS STEPS | open DIR".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn build(dir: &str, jobs: &str, steps: &str) -> Result<(), String> {
    let jobs: u64 = jobs.parse().map_err(|_| format!("not a number: {jobs}"))?;
    let steps: u64 = steps
        .parse()
        .map_err(|_| format!("not a number: {steps}"))?;
    let (engine, _) = Engine::open(dir, options()).map_err(|e| e.to_string())?;
    let payload = vec![0x5a; 200];
    for i in 0..jobs {
        let job = engine
            .submit(Submit::new("agent", format!("input {i}")))
            .map_err(|e| e.to_string())?
            .job;
        let run = engine.start_run(&job, None).map_err(|e| e.to_string())?;
        for _ in 0..steps {
            let usage = Usage {
                input_tokens: 100,
                output_tokens: 20,
                cost_micros: 0,
            };
            engine
                .record_step(&job, &run, Step::new(payload.clone(), usage))
                .map_err(|e| e.to_string())?;
        }
        engine
            .complete_run(&job, &run, "done")
            .map_err(|e| e.to_string())?;
        engine
            .finish_job(&job, JobOutcome::Completed)
            .map_err(|e| e.to_string())?;
    }
    engine.close().map_err(|e| e.to_string())?;
    Ok(())
}

fn open(dir: &str) -> Result<(), String> {
    let (engine, report) = Engine::open(dir, options()).map_err(|e| e.to_string())?;
    let jobs = engine
        .jobs(&JobFilter::all())
        .map_err(|e| e.to_string())?
        .len();
    let checkpoints: usize = engine.with_views(|v| {
        v.jobs()
            .flatten()
            .map(|j| j.detail().map_or(0, |d| d.checkpoints().len()))
            .sum()
    });
    // The encoded size of each job's list: a LEB128 varint per distance.
    let varint_len = |d: u64| (64 - d.leading_zeros()).div_ceil(7).max(1) as usize;
    let lsn_list_bytes: usize = engine.with_views(|v| {
        v.jobs()
            .flatten()
            .filter_map(|j| j.event_lsns())
            .map(|lsns| {
                lsns.windows(2)
                    .map(|w| varint_len(w[1] - w[0]))
                    .sum::<usize>()
            })
            .sum()
    });
    let kib = |field| status_kib(field).map_or("unknown".into(), |k| k.to_string());
    println!(
        "jobs={jobs} checkpoints={checkpoints} events_replayed={} event_lsn_list_bytes={lsn_list_bytes} peak_rss_kib={} rss_anon_kib={}",
        report.events_replayed,
        kib("VmHWM:"),
        kib("RssAnon:")
    );
    Ok(())
}
