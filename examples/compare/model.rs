//! The workload every system runs, and the two interfaces a system
//! implements: a writer of commands and a cold reader.
//!
//! Every job is one agent job: submitted, one run started, `STEPS_PER_JOB`
//! steps each with a checkpoint payload and the tokens it spent, the run
//! completed, the job finished. That is `COMMANDS_PER_JOB` commands, each
//! of which a system must have made durable before it returns (unless the
//! writer was opened in bulk mode, which only the cold-start data sets use).

use runlog::Usage;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The harness's error: any system's error, as text with its source.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Steps (checkpoints) recorded in each job's one run.
pub const STEPS_PER_JOB: u64 = 10;
/// Submit, start run, the steps, complete run, finish job.
pub const COMMANDS_PER_JOB: u64 = 4 + STEPS_PER_JOB;

/// The job whose latest checkpoint the cold-start question asks for, as an
/// index into the jobs written (the middle one, so no system is helped by
/// it being first or last in a file).
pub fn probe_index(jobs: u64) -> u64 {
    jobs / 2
}

/// The agent or workflow every job runs.
pub const AGENT_KEY: &str = "researcher";

/// A job's input: what the host submitted.
pub fn job_input(index: u64) -> String {
    format!("job {index}: find what the sources say about topic {index}")
}

/// What step `step` (from 1) of job `index` spent: varied, so that totals
/// differ between jobs and a system that drops or doubles a step is caught.
pub fn step_usage(index: u64, step: u64) -> Usage {
    let input_tokens = 800 + (index * 31 + step * 7) % 97;
    let output_tokens = 120 + (index + step * 5) % 13;
    Usage {
        input_tokens,
        output_tokens,
        cost_micros: input_tokens * 3 + output_tokens * 15,
    }
}

/// A checkpoint payload of exactly `size` bytes of printable ASCII (agent
/// state is usually JSON text; plain ASCII also needs no escaping, so the
/// JSON baselines store it as is).
pub fn payload(index: u64, step: u64, size: usize) -> String {
    let head = format!("{{\"job\":{index},\"step\":{step},\"messages\":\"");
    let mut s = String::with_capacity(size);
    s.push_str(&head);
    let filler = b"the quick brown fox reads the tool output and plans the next call ";
    let mut k = usize::try_from(index + step).unwrap_or(0);
    while s.len() < size {
        s.push(char::from(filler[k % filler.len()]));
        k += 1;
    }
    s.truncate(size);
    s
}

/// A job's totals, as "all jobs with their totals" answers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Steps recorded.
    pub steps: u64,
    /// Sum of the steps' usage.
    pub usage: Usage,
}

/// A job's latest checkpoint, as "latest checkpoint of job X" answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latest {
    /// Step number within the job, from 1.
    pub step: u64,
    /// The job's usage up to and including this step.
    pub usage: Usage,
    /// The checkpoint's payload.
    pub payload: Vec<u8>,
}

/// The totals job `index` must have once all its steps are recorded.
pub fn expected_totals(index: u64) -> Totals {
    let mut usage = Usage::default();
    for step in 1..=STEPS_PER_JOB {
        usage = add(usage, step_usage(index, step));
    }
    Totals {
        steps: STEPS_PER_JOB,
        usage,
    }
}

/// Sum of two usages.
pub fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        cost_micros: a.cost_micros + b.cost_micros,
    }
}

/// Milliseconds since the epoch, for the baselines' timestamps.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One system's writer. Each command returns once it is durable (unless
/// the writer was opened in bulk mode). Shared by all writer threads.
pub trait Writer: Sync {
    /// What the writer keeps about a job between commands (its ids).
    type Job: Send;

    /// Creates job `index` with [`job_input`].
    fn submit(&self, index: u64) -> Res<Self::Job>;
    /// Starts the job's run.
    fn start_run(&self, job: &mut Self::Job) -> Res<()>;
    /// Records a step (from 1) with its checkpoint payload.
    fn record_step(&self, job: &mut Self::Job, step: u64, payload: &str, usage: Usage) -> Res<()>;
    /// Completes the run.
    fn complete_run(&self, job: &mut Self::Job) -> Res<()>;
    /// Finishes the job as completed.
    fn finish_job(&self, job: &mut Self::Job) -> Res<()>;
    /// The id a host would keep to ask about this job later.
    fn job_ref(job: &Self::Job) -> String;
    /// Bulk mode only: a point where a batch may be committed.
    fn batch_boundary(&self) -> Res<()> {
        Ok(())
    }
    /// Closes the store, making everything durable.
    fn close(self) -> Res<()>;
}

/// One system's cold reader: a process that opens the data and answers.
pub trait Reader: Sized {
    /// The native answer to "all jobs with their totals".
    type Rows;

    /// Opens the data directory (for SQLite: the connection).
    fn open(dir: &Path) -> Res<Self>;
    /// "All jobs with their totals", in the system's own form.
    fn all_jobs(&self) -> Res<Self::Rows>;
    /// The answer as (job ref, totals), for the agreement check only.
    fn rows_to_totals(rows: Self::Rows) -> Vec<(String, Totals)>;
    /// "The latest checkpoint of job `job_ref`", with its payload.
    fn latest_checkpoint(&self, job_ref: &str) -> Res<Option<Latest>>;
    /// Closes what `open` opened.
    fn close(self) -> Res<()>;
}
