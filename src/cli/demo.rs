//! `runlog demo`: a simulated agent workload, deterministic for a seed.
//!
//! The engine's clock is a [`ManualClock`] moved by the workload itself, so
//! a seed gives the same jobs, ids (they hold the LSN and the timestamp)
//! and times on every machine.

use super::SyncArg;
use super::fail::{Failure, OPERATIONAL};
use super::out::{self, num};
use runlog::{
    CheckpointId, Engine, ExternalStatus, JobId, JobOutcome, ManualClock, Options, RunId, Step,
    Submit, SubmitOutcome, SyncPolicy, Timestamp, Usage,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// 2026-03-02T09:00:00Z: the simulated morning the demo starts on.
const START: Timestamp = Timestamp(1_772_442_000_000);
/// Jobs `--crash` leaves in flight.
const CRASH_JOBS: u32 = 3;

/// What `runlog demo` was asked to do.
pub struct Settings {
    pub dir: PathBuf,
    pub jobs: u32,
    pub seed: u64,
    pub sync: SyncArg,
    pub crash: bool,
    pub pace_ms: u64,
    pub segment_size: Option<u64>,
}

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const AGENTS: [(&str, &[&str]); 5] = [
    (
        "researcher",
        &[
            "Compare vector databases for a 50M-document corpus",
            "Summarize last quarter's incident reports for payments-api",
            "Find prior art on speculative decoding for small models",
        ],
    ),
    (
        "coder",
        &[
            "Fix the flaky test in billing/invoice_test.go",
            "Add retries with jitter to the webhook sender",
            "Migrate the settings page from class components to hooks",
        ],
    ),
    (
        "reviewer",
        &[
            "Review PR #4182: connection pool rewrite",
            "Review PR #4190: rate limiter for the public API",
        ],
    ),
    (
        "triage",
        &[
            "Triage the 37 new issues labelled needs-triage",
            "Group this week's crash reports by stack signature",
        ],
    ),
    (
        "writer",
        &[
            "Draft the release notes for v2.14",
            "Write the postmortem for the 2026-02-27 outage",
        ],
    ),
];

const WORDS: [&str; 32] = [
    "the",
    "service",
    "retries",
    "latency",
    "p99",
    "regression",
    "cache",
    "token",
    "budget",
    "request",
    "timeout",
    "upstream",
    "deploy",
    "rollback",
    "schema",
    "index",
    "query",
    "shard",
    "replica",
    "commit",
    "review",
    "patch",
    "test",
    "flaky",
    "metric",
    "alert",
    "incident",
    "customer",
    "invoice",
    "webhook",
    "queue",
    "worker",
];

const TOOLS: [&str; 5] = ["search", "read_file", "run_tests", "grep", "http_get"];

const FAILURES: [&str; 3] = [
    "tool call http_get timed out after 30s (upstream 504)",
    "model returned malformed JSON for the tool arguments",
    "rate limited by the model provider (429), retry budget spent",
];

struct Demo {
    engine: Engine,
    clock: ManualClock,
    rng: Rng,
    pace: Duration,
    sync_always: bool,
    steps: u64,
    attached: u32,
    committed: Vec<JobId>,
}

impl Demo {
    /// Simulated time passes: between `lo` and `hi` seconds.
    fn wait(&mut self, lo: u64, hi: u64) {
        let ms = self.rng.range(lo * 1000, hi * 1000);
        self.clock.advance(Duration::from_millis(ms));
    }

    /// A checkpoint payload of a few KiB: the conversation so far, as a
    /// host would persist it.
    fn payload(&mut self, task: &str, step: u64) -> Vec<u8> {
        let target = self.rng.range(2 * 1024, 6 * 1024) as usize;
        let mut s = format!(
            "{{\"task\":{task:?},\"step\":{step},\"messages\":[{{\"role\":\"system\",\"content\":\"You are a careful agent. Use tools; cite what you read.\"}}"
        );
        while s.len() < target {
            let role = if self.rng.next().is_multiple_of(3) {
                "tool"
            } else {
                "assistant"
            };
            let tool = *self.rng.pick(&TOOLS);
            let n = self.rng.range(12, 40);
            let words: Vec<&str> = (0..n).map(|_| *self.rng.pick(&WORDS)).collect();
            s.push_str(&format!(
                ",{{\"role\":\"{role}\",\"tool\":\"{tool}\",\"content\":\"{}\"}}",
                words.join(" ")
            ));
        }
        s.push_str("]}");
        s.into_bytes()
    }

    fn step(
        &mut self,
        job: &JobId,
        run: &RunId,
        task: &str,
        phase: Option<u32>,
    ) -> Result<CheckpointId, Failure> {
        self.wait(3, 45);
        if !self.pace.is_zero() {
            std::thread::sleep(self.pace);
        }
        self.steps += 1;
        let payload = self.payload(task, self.steps);
        let input_tokens = payload.len() as u64 / 4 + self.rng.range(300, 2500);
        let output_tokens = self.rng.range(40, 900);
        let usage = Usage {
            input_tokens,
            output_tokens,
            // $3 per million input tokens, $15 per million output tokens.
            cost_micros: input_tokens * 3 + output_tokens * 15,
        };
        let mut step = Step::new(payload, usage);
        if let Some(p) = phase {
            step = step.phase(p);
        }
        self.cmd(|e| e.record_step(job, run, step))
    }

    fn steps(
        &mut self,
        job: &JobId,
        run: &RunId,
        task: &str,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<CheckpointId>, Failure> {
        let n = self.rng.range(lo, hi);
        (0..n).map(|_| self.step(job, run, task, None)).collect()
    }

    fn fail(&self, e: runlog::EngineError) -> Failure {
        Failure::engine(self.engine.dir(), e)
    }

    fn output(&mut self, what: &str) -> Vec<u8> {
        format!(
            "{{\"result\":\"{what}\",\"confidence\":0.{}}}",
            self.rng.range(60, 98)
        )
        .into_bytes()
    }

    /// Finishes the job and, under `--sync always`, says it is durable.
    fn finish(&mut self, job: &JobId, outcome: JobOutcome) -> Result<(), Failure> {
        self.wait(1, 5);
        self.cmd(|e| e.finish_job(job, outcome))?;
        self.committed.push(job.clone());
        // Under `--sync always` the finish returned only once durable; under
        // the other policies it may still be in the page cache or buffered.
        let word = if self.sync_always {
            "committed"
        } else {
            "finished"
        };
        let mut w = out::stdout();
        writeln!(w, "{word} {job}")?;
        w.flush()?;
        Ok(())
    }

    /// Runs one engine command, turning its error into the CLI's failure.
    fn cmd<T>(
        &self,
        command: impl FnOnce(&Engine) -> Result<T, runlog::EngineError>,
    ) -> Result<T, Failure> {
        command(&self.engine).map_err(|e| self.fail(e))
    }

    /// Completes `run` with a small output saying `what`.
    fn complete(&mut self, job: &JobId, run: &RunId, what: &str) -> Result<(), Failure> {
        let o = self.output(what);
        self.cmd(|e| e.complete_run(job, run, o))
    }

    /// The run hands a sub-task to a child run: the child records `lo` to
    /// `hi` steps and completes with `what`, and its result returns to the
    /// waiting parent a moment later.
    fn sub_task(
        &mut self,
        job: &JobId,
        run: &RunId,
        task: &str,
        (lo, hi): (u64, u64),
        what: &str,
    ) -> Result<(), Failure> {
        let child = self.cmd(|e| e.delegate(job, run))?;
        self.steps(job, &child, task, lo, hi)?;
        self.complete(job, &child, what)?;
        self.wait(1, 3);
        self.cmd(|e| e.return_child(job, run, &child))
    }

    /// The run asks a human, who answers `answer` after `lo` to `hi`
    /// seconds.
    fn approval(
        &mut self,
        job: &JobId,
        run: &RunId,
        prompt: String,
        (lo, hi): (u64, u64),
        answer: &[u8],
    ) -> Result<(), Failure> {
        self.cmd(|e| e.request_input(job, run, prompt))?;
        self.wait(lo, hi);
        self.cmd(|e| e.provide_input(job, run, answer.to_vec()))
    }

    /// A killed `agent run --wait` submits the same command line again:
    /// it attaches to the running job instead of starting a second one.
    fn resubmit(
        &mut self,
        key: &str,
        task: &str,
        fingerprint: String,
        job: &JobId,
    ) -> Result<(), Failure> {
        let again = self.cmd(|e| {
            e.submit(Submit::new(key, task.as_bytes().to_vec()).fingerprint(fingerprint))
        })?;
        if again.outcome == SubmitOutcome::Attached && again.job == *job {
            self.attached += 1;
        }
        Ok(())
    }

    /// One job of the workload; the scenario follows from its index.
    fn job(&mut self, index: u32, in_flight: bool) -> Result<(), Failure> {
        let (key, tasks) = AGENTS[(self.rng.next() % AGENTS.len() as u64) as usize];
        let task = *self.rng.pick(tasks);
        // The fingerprint is the command line a wrapper would run.
        let fingerprint = format!("agent run {key} --task {task:?} --n {index}");
        self.wait(20, 400);
        let job = self
            .cmd(|e| {
                e.submit(
                    Submit::new(key, task.as_bytes().to_vec()).fingerprint(fingerprint.clone()),
                )
            })?
            .job;
        self.wait(1, 4);
        let run = self.cmd(|e| e.start_run(&job, None))?;
        if in_flight {
            return self.leave_in_flight(index, &job, &run, task);
        }
        match index % 6 {
            // Plain: a few steps, done (one in four fails for good).
            0 => {
                self.steps(&job, &run, task, 3, 6)?;
                if index % 12 == 6 {
                    let why = *self.rng.pick(&FAILURES);
                    self.cmd(|e| e.fail_run(&job, &run, why, false))?;
                    let error = why.to_owned();
                    self.finish(&job, JobOutcome::Failed { error })?;
                } else {
                    self.complete(&job, &run, "done")?;
                    self.finish(&job, JobOutcome::Completed)?;
                }
            }
            // Delegation: the run hands a sub-task to a child run and
            // waits for it; a killed `--wait` resubmits and attaches.
            1 => {
                self.steps(&job, &run, task, 1, 2)?;
                self.resubmit(key, task, fingerprint, &job)?;
                for _ in 0..self.rng.range(1, 2) {
                    self.sub_task(&job, &run, task, (2, 4), "sub-task done")?;
                }
                self.steps(&job, &run, task, 1, 2)?;
                self.complete(&job, &run, "merged")?;
                self.finish(&job, JobOutcome::Completed)?;
            }
            // A human approves the plan before the run goes on.
            2 => {
                self.steps(&job, &run, task, 2, 3)?;
                let prompt = format!("Approve the plan for: {task}?");
                let answer = b"approved; keep the diff small";
                self.approval(&job, &run, prompt, (120, 1800), answer)?;
                self.steps(&job, &run, task, 2, 3)?;
                self.complete(&job, &run, "done after approval")?;
                self.finish(&job, JobOutcome::Completed)?;
            }
            // A run fails; a fresh run resumes from the checkpoint before
            // the failing step. A resubmit meanwhile attaches.
            // This one shows most of it in one job: a child run, a failure,
            // a resubmit that attaches, a fresh run resuming from a
            // checkpoint, and a wait for approval.
            3 => {
                let mut cps = self.steps(&job, &run, task, 1, 2)?;
                self.sub_task(&job, &run, task, (2, 3), "sources collected")?;
                cps.extend(self.steps(&job, &run, task, 2, 3)?);
                let why = *self.rng.pick(&FAILURES);
                self.wait(5, 30);
                self.cmd(|e| e.fail_run(&job, &run, why, true))?;
                self.resubmit(key, task, fingerprint, &job)?;
                self.wait(10, 60);
                let from = cps.get(cps.len().saturating_sub(2)).cloned();
                let retry = self.cmd(|e| e.start_run(&job, from))?;
                self.steps(&job, &retry, task, 1, 2)?;
                let prompt = format!("Approve the final answer for: {task}?");
                self.approval(&job, &retry, prompt, (240, 900), b"approved")?;
                self.steps(&job, &retry, task, 1, 2)?;
                self.complete(&job, &retry, "done on retry")?;
                self.finish(&job, JobOutcome::Completed)?;
            }
            // Finished, then continued with a follow-up turn; remote status
            // observed on the way.
            4 => {
                let status = "remote sandbox sb-7 running";
                self.cmd(|e| e.observe_external(&job, ExternalStatus::Running, status))?;
                self.steps(&job, &run, task, 2, 4)?;
                self.complete(&job, &run, "first answer")?;
                self.wait(1, 5);
                self.cmd(|e| e.finish_job(&job, JobOutcome::Completed))?;
                self.wait(300, 3600);
                let follow_up = self.cmd(|e| e.start_run(&job, None))?;
                self.steps(&job, &follow_up, task, 1, 3)?;
                self.complete(&job, &follow_up, "follow-up answer")?;
                let status = "remote sandbox sb-7 exited 0";
                self.cmd(|e| e.observe_external(&job, ExternalStatus::Completed, status))?;
                self.finish(&job, JobOutcome::Completed)?;
            }
            // Two phases; a deploy interrupts the run between them and it
            // resumes at the phase boundary.
            _ => {
                for _ in 0..self.rng.range(2, 3) {
                    self.step(&job, &run, task, Some(0))?;
                }
                self.cmd(|e| e.complete_phase(&job, &run, 0, "gather", b"notes".to_vec()))?;
                self.cmd(|e| e.interrupt_run(&job, &run, runlog::InterruptReason::Shutdown))?;
                self.wait(60, 300);
                self.cmd(|e| e.resume_run(&job, &run, None))?;
                for _ in 0..self.rng.range(2, 3) {
                    self.step(&job, &run, task, Some(1))?;
                }
                self.cmd(|e| e.complete_phase(&job, &run, 1, "draft", b"draft".to_vec()))?;
                self.complete(&job, &run, "drafted")?;
                self.finish(&job, JobOutcome::Completed)?;
            }
        }
        Ok(())
    }
    /// `--crash`: a job caught mid-step, one waiting for approval, one
    /// waiting on a child run that is mid-step.
    fn leave_in_flight(
        &mut self,
        index: u32,
        job: &JobId,
        run: &RunId,
        task: &str,
    ) -> Result<(), Failure> {
        self.steps(job, run, task, 1, 3)?;
        match index % 3 {
            0 => {}
            1 => {
                let prompt = format!("Approve the plan for: {task}?");
                self.cmd(|e| e.request_input(job, run, prompt))?;
            }
            _ => {
                let child = self.cmd(|e| e.delegate(job, run))?;
                self.steps(job, &child, task, 1, 2)?;
            }
        }
        Ok(())
    }
}

/// Leaves a partial batch at the tail of the last segment, as a crash in
/// the middle of a write would: the first part of a copy of the last
/// record's frame (FORMAT.md: a 28-byte header whose length field says how
/// many payload bytes follow), so the frame ends before its length says.
fn tear_tail(dir: &Path) -> Result<u64, Failure> {
    const SEGMENT_HEADER_LEN: usize = 32;
    const RECORD_HEADER_LEN: usize = 28;
    const LEN_AT: usize = 8;
    let seg_dir = dir.join("segments");
    let entries = std::fs::read_dir(&seg_dir).map_err(|e| Failure::io("list", &seg_dir, &e))?;
    let last = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .ok_or_else(|| {
            Failure::new(
                OPERATIONAL,
                format!("{} holds no segment", seg_dir.display()),
            )
        })?;
    let bytes = std::fs::read(&last).map_err(|e| Failure::io("read", &last, &e))?;
    // Walk the frames to find where the last one starts.
    let mut at = SEGMENT_HEADER_LEN;
    let mut last_frame = None;
    while let Some(len) = bytes
        .get(at + LEN_AT..at + LEN_AT + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|b| u32::from_le_bytes(b) as usize)
    {
        let end = at + RECORD_HEADER_LEN + len;
        if end > bytes.len() {
            break;
        }
        last_frame = Some(at..end);
        at = end;
    }
    let Some(frame) = last_frame else {
        return Ok(0);
    };
    let frame = &bytes[frame];
    let partial = &frame[..(frame.len() / 2)
        .max(RECORD_HEADER_LEN + 1)
        .min(frame.len() - 1)];
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .map_err(|e| Failure::io("open", &last, &e))?;
    f.write_all(partial)
        .and_then(|()| f.sync_data())
        .map_err(|e| Failure::io("write", &last, &e))?;
    Ok(partial.len() as u64)
}

/// `runlog demo`.
pub fn run(s: &Settings) -> Result<u8, Failure> {
    // Refuse to scatter a log into a directory that holds something else.
    if s.dir.exists() {
        let is_log = s.dir.join("segments").is_dir();
        let empty = std::fs::read_dir(&s.dir)
            .map_err(|e| Failure::io("read", &s.dir, &e))?
            .next()
            .is_none();
        if !is_log && !empty {
            return Err(Failure::new(
                OPERATIONAL,
                format!(
                    "{} is not empty and is not a runlog data directory; give a new or empty directory",
                    s.dir.display()
                ),
            ));
        }
    }
    // Appending to an existing log: the simulated day goes on after its
    // last event, so timestamps keep moving forward.
    let start = runlog::ReadOnly::open(&s.dir, Options::default(), runlog::AsOf::Latest)
        .ok()
        .map_or(START, |ro| {
            Timestamp(START.0.max(ro.report().last_at.0.saturating_add(60_000)))
        });
    let clock = ManualClock::new(start);
    let mut options = Options::default();
    options.clock = Arc::new(clock.clone());
    options.sync = match s.sync {
        SyncArg::Always => SyncPolicy::Always,
        SyncArg::Interval => SyncPolicy::Interval(Duration::from_millis(100)),
        SyncArg::Never => SyncPolicy::Never,
    };
    if let Some(bytes) = s.segment_size {
        options.segment_size_max = bytes;
    }
    let (engine, report) = Engine::open(&s.dir, options).map_err(|e| Failure::engine(&s.dir, e))?;
    let mut demo = Demo {
        engine,
        clock,
        rng: Rng(s.seed ^ 0x005E_ED0F_2026),
        pace: Duration::from_millis(s.pace_ms),
        sync_always: s.sync == SyncArg::Always,
        steps: 0,
        attached: 0,
        committed: Vec::new(),
    };
    let extra = if s.crash { CRASH_JOBS } else { 0 };
    for i in 0..s.jobs + extra {
        demo.job(i, i >= s.jobs)?;
    }
    let summary = demo.engine.with_views_summary();
    let Demo {
        engine,
        steps,
        attached,
        committed,
        ..
    } = demo;
    let mut torn = 0;
    if s.crash {
        // Dropping the engine without `close` is a crash as far as the log
        // is concerned: the runs stay in flight.
        drop(engine);
        torn = tear_tail(&s.dir)?;
    } else {
        engine.close().map_err(|e| Failure::engine(&s.dir, e))?;
    }

    let dir = s.dir.display();
    let runlog = if std::env::var_os("CARGO").is_some() {
        "cargo run --release --"
    } else {
        "runlog"
    };
    let mut w = out::stdout();
    writeln!(w)?;
    writeln!(
        w,
        "demo: {} jobs into {dir} (seed {}, sync {}): {} steps, {} tokens, {}",
        s.jobs + extra,
        s.seed,
        match s.sync {
            SyncArg::Always => "always",
            SyncArg::Interval => "interval",
            SyncArg::Never => "never",
        },
        num(steps),
        num(summary.tokens),
        out::cost(summary.cost)
    )?;
    writeln!(
        w,
        "      {} finished ({} failed), {} resubmits attached to a running job instead of starting a new one",
        committed.len(),
        summary.failed,
        attached
    )?;
    if !report.interrupted.is_empty() {
        writeln!(
            w,
            "      (opening found {} runs in flight and interrupted them)",
            report.interrupted.len()
        )?;
    }
    if s.crash {
        writeln!(
            w,
            "      crashed on purpose: {CRASH_JOBS} jobs left in flight and a partial batch of {torn} bytes at the tail"
        )?;
    }
    // The fourth job fails and resumes from a checkpoint: the one worth a look.
    let example = committed
        .get(3)
        .or(committed.first())
        .map_or("<job id>", |j| j.as_str());
    writeln!(w, "\nLook further:")?;
    writeln!(w, "  {runlog} jobs {dir}")?;
    writeln!(w, "  {runlog} show {dir} {example}")?;
    writeln!(w, "  {runlog} events {dir} --job {example}")?;
    writeln!(w, "  {runlog} timeline {dir} {example} --out timeline.svg")?;
    if s.crash {
        writeln!(w, "  {runlog} interrupted {dir}")?;
        writeln!(w, "  {runlog} verify {dir}        # exit 1: a torn tail")?;
        writeln!(w, "  {runlog} recover {dir}")?;
    } else {
        writeln!(w, "  {runlog} verify {dir}")?;
    }
    w.flush()?;
    Ok(0)
}

/// Totals for the summary line.
struct Summary {
    tokens: u64,
    cost: u64,
    failed: usize,
}

trait SummaryExt {
    fn with_views_summary(&self) -> Summary;
}

impl SummaryExt for Engine {
    fn with_views_summary(&self) -> Summary {
        use runlog::Query;
        // A job that cannot be read counts nothing in this summary:
        // `runlog check` is what reports it.
        self.with_views(|v| Summary {
            tokens: v.jobs().flatten().map(|j| j.usage.total_tokens()).sum(),
            cost: v.jobs().flatten().map(|j| j.usage.cost_micros).sum(),
            failed: v
                .count_with_status(runlog::JobStatus::Failed)
                .unwrap_or_default(),
        })
    }
}
