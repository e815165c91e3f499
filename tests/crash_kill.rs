//! Why this file exists: a process killed with SIGKILL at any moment —
//! mid-command, mid-fsync, mid-rollover, mid-snapshot, mid-recovery — must
//! lose nothing it acknowledged. The simulated file system of
//! `tests/log_crash.rs` tears bytes below the log; this test kills a real
//! process running the real engine on a real disk.
//!
//! The invariant, checked after every kill: every command the child
//! acknowledged (printed after the engine returned, under
//! `SyncPolicy::Always`) is in the log exactly — the event at its LSN is the
//! one the child asked for (from a child with three threads sharing fsyncs,
//! an event of its job with the same digest), a step's checkpoint gives back its exact payload,
//! a job its exact input — and the views an open builds (newest snapshot +
//! replay + the batch interrupting what was in flight) equal a fresh fold of
//! the recovered events; the runs that open interrupted are exactly those a
//! read-only open found in flight; and a second open changes nothing (same
//! views, same LSN, no byte cut, nothing new interrupted).
//!
//! How: the test binary re-executes itself (`kill_child`, inert unless
//! `RUNLOG_KILL_CHILD_DIR` is set) as the child; the child runs a seeded mix
//! of every command — submits, runs, steps with checkpoints of 0 B to
//! 600 KiB across 64 KiB segments, phases, delegation and child return,
//! input requested and provided, completions, failures, resumes,
//! continuations, finished and cancelled jobs, external statuses, snapshots
//! — and prints `ack` lines. The
//! parent kills it after a seeded number of acknowledgements plus a seeded
//! delay (or during start-up and recovery), checks, and starts the next child
//! in the same directory, so that a recovered log is recovered again. Every
//! third directory runs its children on three threads; every third other
//! one drops history (`keep_full_history = false`). While a child runs on a
//! log that exists, a thread of the parent opens it read-only over and over
//! and checks each open's views against a fresh fold of what it read.
//!
//! CI runs a bounded slice: 50 directories × 4 kills, cut short after 50 s
//! (once 100 kills are done) on a busy machine. The long version:
//!
//! ```sh
//! RUNLOG_KILL_ITERATIONS=5000 cargo test --release -p runlog --test crash_kill -- --nocapture
//! ```
//!
//! `RUNLOG_KILL_SEED=N` starts at seed N (a failure prints the seed and the
//! command that repeats it; kill timing depends on the machine, so a repeat
//! replays the same workload and kill points, not the same instant).

// Test code: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use runlog::projections::Projections;
use runlog::{
    AsOf, Change, CheckpointId, Engine, EngineError, JobFilter, JobId, JobOutcome, ManualClock,
    Options, Query, ReadOnly, RunId, RunStatus, Step, Submit, SubmitOutcome, SyncPolicy, Timestamp,
    Usage,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::TempDir;

const CHILD_DIR: &str = "RUNLOG_KILL_CHILD_DIR";
const CHILD_SEED: &str = "RUNLOG_KILL_CHILD_SEED";
const CHILD_LIFE: &str = "RUNLOG_KILL_CHILD_LIFE";
/// Kills per directory: each child after the first opens a recovered log.
const KILLS_PER_DIR: u64 = 4;
/// A child stops by itself after this many commands (it is normally killed
/// long before).
const CHILD_COMMANDS_MAX: u64 = 400;

// ---- seeded randomness ----------------------------------------------------

/// splitmix64: small, seedable, good enough to pick actions.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

/// The bytes of a payload, regenerated from its seed and length.
fn payload(seed: u64, len: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

/// A payload length: mostly small, some of several KiB, a few larger than
/// a segment (64 KiB), so that rollover and one-record segments happen.
fn payload_len(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=59 => rng.below(600),
        60..=89 => 1024 + rng.below(12 << 10),
        90..=97 => (16 << 10) + rng.below(60 << 10),
        _ => (100 << 10) + rng.below(500 << 10),
    }
}

/// What identifies an event in the log: its job and change, serialized.
/// The child computes it from what it asked for, the parent from what it
/// finds at the acknowledged LSN.
fn digest(job: &JobId, change: &Change) -> u32 {
    let bytes = serde_json::to_vec(&(job.as_str(), change)).unwrap();
    crc32fast::hash(&bytes)
}

/// Whether a directory's children drop history: every third seed runs with
/// `keep_full_history = false`, so snapshots delete covered segments.
fn retention(seed: u64) -> bool {
    seed.is_multiple_of(3)
}

/// How many threads a child runs commands from: three in every third
/// directory (not those with retention), so that kills land among commits
/// sharing an fsync. Their acknowledgements carry no LSN.
fn threads(seed: u64) -> u64 {
    if seed % 3 == 1 { 3 } else { 1 }
}

fn options(clock: ManualClock, retention: bool) -> Options {
    let mut o = Options::default();
    o.keep_full_history = !retention;
    o.sync = SyncPolicy::Always;
    o.segment_size_max = 64 << 10;
    o.snapshot_every_events = 40;
    o.snapshot_every_bytes = 0;
    o.clock = Arc::new(clock);
    o
}

// ---- the child --------------------------------------------------------------

/// The child's entry point: inert in a normal test run; the parent runs it
/// as `<this test binary> kill_child --exact` with `RUNLOG_KILL_CHILD_DIR`.
#[test]
fn kill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let life: u64 = std::env::var(CHILD_LIFE).unwrap().parse().unwrap();
    let code = match child(Path::new(&dir), seed, life) {
        Ok(()) => 0,
        Err(e) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "error\t{e}");
            let _ = out.flush();
            3
        }
    };
    std::process::exit(code);
}

/// One line to the parent, flushed before the next command starts: once a
/// line is out, the parent may rely on it.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A parent that stopped reading has killed us anyway.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Acknowledges the event just appended: the command returned, so it is
/// durable. `extra` carries what the parent checks through the views.
fn ack(engine: &Engine, job: &JobId, change: &Change, extra: &str) {
    // With one thread the event just appended is the log's last; with
    // several, another thread's may have followed it.
    let lsn = if THREADED.load(std::sync::atomic::Ordering::Relaxed) {
        "-".to_owned()
    } else {
        (engine.next_lsn() - 1).to_string()
    };
    say(&format!(
        "ack\t{lsn}\t{job}\t{:08x}\t{}\t{extra}",
        digest(job, change),
        change.kind()
    ));
}

/// Treats a refusal by the state machine as "nothing happened" (the workload
/// picks from views, and a pick may be refused); anything else is a failure.
fn refused<T>(r: Result<T, EngineError>) -> Result<Option<T>, String> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(EngineError::Transition(_)) => Ok(None),
        Err(e) => Err(format!("command failed: {e}")),
    }
}

/// Set in a child running commands from several threads.
static THREADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn child(dir: &Path, seed: u64, life: u64) -> Result<(), String> {
    let clock = ManualClock::new(Timestamp(support::T0 + life * 86_400_000));
    let (engine, _) = Engine::open(dir, options(clock.clone(), retention(seed)))
        .map_err(|e| format!("open: {e}"))?;
    // End the line libtest began ("test kill_child ... ") first.
    say("");
    say("opened");
    let n_threads = threads(seed);
    THREADED.store(n_threads > 1, std::sync::atomic::Ordering::Relaxed);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..n_threads)
            .map(|t| {
                let (engine, clock) = (&engine, &clock);
                s.spawn(move || {
                    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(life) ^ (t << 40));
                    for n in 0..CHILD_COMMANDS_MAX {
                        clock.advance(Duration::from_millis(rng.below(4000)));
                        // n stays unique across threads: it names fingerprints.
                        act(engine, &mut rng, seed, life, t * 1_000_000 + n)?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "a worker panicked".to_owned())??;
        }
        Ok::<(), String>(())
    })?;
    say("done");
    Ok(())
}

/// One command, picked from the views.
fn act(engine: &Engine, rng: &mut Rng, seed: u64, life: u64, n: u64) -> Result<(), String> {
    let running = engine
        .jobs(&JobFilter::all().status(runlog::JobStatus::Running))
        .expect("jobs readable");
    if running.len() < 3 || rng.chance(6) {
        let len = if rng.chance(10) {
            rng.below(40 << 10)
        } else {
            rng.below(400)
        };
        let pseed = rng.next();
        let change = Change::JobCreated {
            key: format!("agent-{}", rng.below(4)),
            input: payload(pseed, len),
            fingerprint: Some(format!("fp-{seed}-{life}-{n}")),
        };
        let Change::JobCreated {
            key,
            input,
            fingerprint,
        } = &change
        else {
            unreachable!()
        };
        let mut submit = Submit::new(key.clone(), input.clone());
        if let Some(fp) = fingerprint {
            submit = submit.fingerprint(fp.clone());
        }
        let s = engine.submit(submit).map_err(|e| format!("submit: {e}"))?;
        if s.outcome != SubmitOutcome::Created {
            return Err(format!("a fresh fingerprint attached: {s:?}"));
        }
        ack(engine, &s.job, &change, &format!("{pseed}\t{len}"));
        return Ok(());
    }
    if rng.chance(3) {
        let info = engine.snapshot().map_err(|e| format!("snapshot: {e}"))?;
        say(&format!("snap\t{}", info.lsn));
        return Ok(());
    }
    // Continue a finished job with a new run, maybe from a checkpoint (not
    // under retention: a finished job's input may be gone, by design).
    if !retention(seed) && rng.chance(4) {
        let done = engine
            .jobs(&JobFilter::all().status(runlog::JobStatus::Completed))
            .expect("jobs readable");
        if let Some(j) = rng.pick(&done) {
            let from = engine
                .latest_checkpoint(&j.id)
                .map_err(|e| e.to_string())?
                .map(|c| c.id);
            return start(engine, &j.id, from);
        }
    }
    let Some(j) = rng.pick(&running) else {
        return Ok(());
    };
    if rng.chance(2) {
        // A remote system's status, or (rarely) a cancel: final for the job.
        let (status, detail) = (runlog::ExternalStatus::Running, format!("poll {n}"));
        let change = Change::ExternalStatusObserved {
            status,
            detail: detail.clone(),
        };
        if refused(engine.observe_external(&j.id, status, detail))?.is_some() {
            ack(engine, &j.id, &change, "");
        }
        return Ok(());
    }
    if rng.chance(1) {
        let reason = format!("cancelled by child {life}");
        let change = Change::JobFinished {
            outcome: JobOutcome::Cancelled {
                reason: reason.clone(),
            },
        };
        if refused(engine.cancel_job(&j.id, reason))?.is_some() {
            ack(engine, &j.id, &change, "");
        }
        return Ok(());
    }
    let job = engine.job(&j.id).map_err(|e| e.to_string())?;
    let detail = job.detail().map_err(|e| e.to_string())?;
    let in_flight: Vec<_> = detail
        .runs()
        .iter()
        .filter(|r| r.status.is_in_flight())
        .cloned()
        .collect();
    let Some(run) = rng.pick(&in_flight).cloned() else {
        // Nothing in flight: provide awaited input, resume, finish or start.
        for r in detail.runs() {
            if r.status == RunStatus::Interrupted && r.awaiting_input.is_some() {
                return provide(engine, rng, &job.id, &r.id);
            }
        }
        let resumable: Vec<RunId> = detail
            .runs()
            .iter()
            .filter(|r| {
                engine
                    .resumability(&job.id, &r.id)
                    .is_ok_and(|x| x.is_resumable())
            })
            .map(|r| r.id.clone())
            .collect();
        if let Some(r) = rng.pick(&resumable)
            && rng.chance(70)
        {
            let from = if rng.chance(30) {
                rng.pick(detail.checkpoints()).map(|c| c.id.clone())
            } else {
                None
            };
            let change = Change::RunResumed {
                run: r.clone(),
                from: from.clone(),
                code_version: None,
                allow_code_change: false,
                attempts_max: engine.options().recovery_attempts_max,
            };
            if refused(engine.resume_run(&job.id, r, from))?.is_some() {
                ack(engine, &job.id, &change, "");
            }
            return Ok(());
        }
        if job.total_steps >= 3 && rng.chance(40) {
            let outcome = if rng.chance(80) {
                JobOutcome::Completed
            } else {
                JobOutcome::Failed {
                    error: format!("gave up after {} steps", job.total_steps),
                }
            };
            let change = Change::JobFinished {
                outcome: outcome.clone(),
            };
            if refused(engine.finish_job(&job.id, outcome))?.is_some() {
                ack(engine, &job.id, &change, "");
            }
            return Ok(());
        }
        let from = if rng.chance(30) {
            rng.pick(detail.checkpoints()).map(|c| c.id.clone())
        } else {
            None
        };
        return start(engine, &job.id, from);
    };
    let id = job.id.clone();
    match run.status {
        RunStatus::AwaitingInput => provide(engine, rng, &id, &run.id),
        RunStatus::Delegating => {
            let Some(child) = run.waiting_on_child.clone() else {
                return Ok(());
            };
            let status = engine.run(&id, &child).map_err(|e| e.to_string())?.status;
            if status.is_terminal() {
                let change = Change::ChildReturned {
                    run: run.id.clone(),
                    child: child.clone(),
                };
                if refused(engine.return_child(&id, &run.id, &child))?.is_some() {
                    ack(engine, &id, &change, "");
                }
            } else if status == RunStatus::Interrupted {
                // The child was interrupted (by an earlier kill) and cannot
                // resume: fail it so that the parent can go on.
                fail(engine, &id, &child)?;
            }
            Ok(())
        }
        _ => running_action(engine, rng, &id, &run),
    }
}

fn start(engine: &Engine, job: &JobId, from: Option<CheckpointId>) -> Result<(), String> {
    let Some(run) = refused(engine.start_run(job, from.clone()))? else {
        return Ok(());
    };
    let change = Change::RunStarted {
        run,
        resume_from: from,
        code_version: None,
    };
    ack(engine, job, &change, "");
    Ok(())
}

fn provide(engine: &Engine, rng: &mut Rng, job: &JobId, run: &RunId) -> Result<(), String> {
    let input = payload(rng.next(), rng.below(300));
    let change = Change::InputProvided {
        run: run.clone(),
        input: input.clone(),
    };
    if refused(engine.provide_input(job, run, input))?.is_some() {
        ack(engine, job, &change, "");
    }
    Ok(())
}

fn fail(engine: &Engine, job: &JobId, run: &RunId) -> Result<(), String> {
    let change = Change::RunFailed {
        run: run.clone(),
        error: format!("{run} hit a rate limit"),
        retryable: true,
        cause: runlog::FailCause::Reported,
    };
    if refused(engine.fail_run(job, run, format!("{run} hit a rate limit"), true))?.is_some() {
        ack(engine, job, &change, "");
    }
    Ok(())
}

fn running_action(
    engine: &Engine,
    rng: &mut Rng,
    job: &JobId,
    run: &runlog::RunView,
) -> Result<(), String> {
    let r = run.id.clone();
    match rng.below(100) {
        0..=59 => {
            let len = payload_len(rng);
            let pseed = rng.next();
            let usage = Usage {
                input_tokens: rng.below(5000),
                output_tokens: rng.below(900),
                cost_micros: rng.below(10_000),
            };
            let phase = rng.chance(30).then(|| rng.below(4) as u32);
            let mut step = Step::new(payload(pseed, len), usage);
            if let Some(p) = phase {
                step = step.phase(p);
            }
            let Some(cp) = refused(engine.record_step(job, &r, step))? else {
                return Ok(());
            };
            let change = Change::StepRecorded {
                run: r,
                checkpoint: cp.clone(),
                usage,
                phase,
                payload: payload(pseed, len),
            };
            ack(engine, job, &change, &format!("{cp}\t{pseed}\t{len}"));
        }
        60..=67 => {
            let position = rng.below(6) as u32;
            let output = payload(rng.next(), rng.below(200));
            let change = Change::PhaseCompleted {
                run: r.clone(),
                position,
                name: format!("phase {}", position % 3),
                output: output.clone(),
            };
            let done =
                engine.complete_phase(job, &r, position, format!("phase {}", position % 3), output);
            if refused(done)?.is_some() {
                ack(engine, job, &change, "");
            }
        }
        68..=73 if run.parent.is_none() => {
            let Some(child) = refused(engine.delegate(job, &r))? else {
                return Ok(());
            };
            let change = Change::Delegated { run: r, child };
            ack(engine, job, &change, "");
        }
        74..=79 => {
            let prompt = format!("approve step {} of {r}?", run.steps);
            let change = Change::InputRequested {
                run: r.clone(),
                prompt: prompt.clone(),
            };
            if refused(engine.request_input(job, &r, prompt))?.is_some() {
                ack(engine, job, &change, "");
            }
        }
        80..=93 => {
            let output = payload(rng.next(), rng.below(2000));
            let change = Change::RunCompleted {
                run: r.clone(),
                output: output.clone(),
            };
            if refused(engine.complete_run(job, &r, output))?.is_some() {
                ack(engine, job, &change, "");
            }
        }
        _ => fail(engine, job, &r)?,
    }
    Ok(())
}

// ---- the parent -------------------------------------------------------------

/// One acknowledged command, as the child printed it.
#[derive(Clone, Debug)]
struct Ack {
    /// `None` from a child with several threads.
    lsn: Option<u64>,
    job: JobId,
    digest: u32,
    kind: String,
    extra: Vec<String>,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut f = line.split('\t');
    if f.next()? != "ack" {
        return None;
    }
    Some(Ack {
        lsn: match f.next()? {
            "-" => None,
            l => Some(l.parse().ok()?),
        },
        job: JobId::from(f.next()?),
        digest: u32::from_str_radix(f.next()?, 16).ok()?,
        kind: f.next()?.to_owned(),
        extra: f.filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    })
}

/// What one child did before it died.
#[derive(Debug, Default)]
struct Life {
    acks: Vec<Ack>,
    snapshots: Vec<u64>,
    opened: bool,
    /// Read-only opens checked beside the live child.
    audits: u64,
    /// How long after its start the child said it had opened the engine.
    opened_after: Option<Duration>,
    done: bool,
    error: Option<String>,
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after it was started: during start-up, open and recovery.
    Start(Duration),
    /// This long after its n-th acknowledgement.
    AfterAck(u64, Duration),
}

/// `open_us`: how long a child took to start and open, last time; a kill
/// at start lands anywhere from process start-up to the end of recovery.
fn kill_at(rng: &mut Rng, open_us: u64) -> KillAt {
    if rng.chance(15) {
        KillAt::Start(Duration::from_micros(rng.below(open_us + open_us / 4)))
    } else {
        KillAt::AfterAck(rng.below(80), Duration::from_micros(rng.below(3000)))
    }
}

/// Runs one child in `dir` and kills it; returns what it printed.
fn run_child(dir: &Path, seed: u64, life: u64, at: KillAt) -> Life {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["kill_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .env(CHILD_LIFE, life.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // An auditor beside the live writer, in directories that keep their
    // history and once the log exists: read-only opens that take no lock
    // must see whole batches that fold to the views they load.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let auditor = (life > 0 && !retention(seed)).then(|| {
        let (dir, stop) = (dir.to_path_buf(), Arc::clone(&stop));
        std::thread::spawn(move || audit(&dir, seed, &stop))
    });
    let stdout = child.stdout.take().unwrap();
    // Read on a thread, so that a kill at a fixed time does not wait for a
    // line; the lines written before the kill stay readable in the pipe.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut life_ = Life::default();
    let mut killed = false;
    let deadline = started + Duration::from_secs(60);
    let note = |line: &str, l: &mut Life| {
        if let Some(a) = parse_ack(line) {
            l.acks.push(a);
        } else if let Some(lsn) = line.strip_prefix("snap\t") {
            l.snapshots.push(lsn.parse().unwrap());
        } else if line == "opened" {
            l.opened = true;
            l.opened_after = Some(started.elapsed());
        } else if line == "done" {
            l.done = true;
        } else if let Some(e) = line.strip_prefix("error\t") {
            l.error = Some(e.to_owned());
        }
    };
    match at {
        KillAt::Start(d) => {
            std::thread::sleep(d);
            let _ = child.kill();
            killed = true;
        }
        KillAt::AfterAck(n, d) => loop {
            let now = Instant::now();
            assert!(now < deadline, "seed {seed}: the child hung");
            match rx.recv_timeout(deadline - now) {
                Ok(line) => {
                    note(&line, &mut life_);
                    if life_.acks.len() as u64 > n || life_.done || life_.error.is_some() {
                        std::thread::sleep(d);
                        let _ = child.kill();
                        killed = true;
                        break;
                    }
                }
                Err(_) => break,
            }
        },
    }
    if !killed {
        let _ = child.kill();
    }
    let _ = child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(a) = auditor {
        match a.join().unwrap() {
            Ok(n) => life_.audits = n,
            Err(e) => life_.error = Some(format!("read-only open beside the writer: {e}")),
        }
    }
    let _ = reader.join();
    for line in rx.try_iter() {
        note(&line, &mut life_);
    }
    life_
}

/// Opens `dir` read-only again and again until `stop`, checking each time
/// that the views loaded (snapshot + tail) equal a fresh fold of the records
/// the reader sees. Returns how many opens it checked.
fn audit(dir: &Path, seed: u64, stop: &std::sync::atomic::AtomicBool) -> Result<u64, String> {
    let opts = options(ManualClock::new(Timestamp(support::T0)), retention(seed));
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let ro = ReadOnly::open(dir, opts.clone(), AsOf::Latest).map_err(|e| e.to_string())?;
        if ro.with_views(Projections::clone) != fold(&ro)? {
            return Err("views differ from a fresh fold".into());
        }
        n += 1;
    }
    Ok(n)
}

/// A fresh fold of every event in the log, from LSN 0.
fn fold(q: &impl Query) -> Result<Projections, String> {
    let mut p = Projections::new();
    let mut refused = None;
    q.for_each_event(0, |lsn, e| match p.apply(lsn, &e) {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => {
            refused = Some(format!("LSN {lsn} does not fold: {err}"));
            ControlFlow::Break(())
        }
    })
    .map_err(|e| format!("reading the events: {e}"))?;
    refused.map_or(Ok(p), Err)
}

/// Sizes of every file in the data directory, recursively.
fn sizes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), m.len());
            }
        }
    }
    out
}

fn segment_sizes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    sizes(&dir.join("segments"))
}

/// Tallies over a whole run, to show what the kills exercised.
#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    acks: u64,
    torn_tails: u64,
    interrupted: u64,
    killed_before_open: u64,
    killed_creating: u64,
    history_dropped: u64,
    threaded_acks: u64,
    audits: u64,
    snapshots_used: u64,
    segments_max: usize,
}

/// A step's checkpoint and a job's input, acknowledged, read back through
/// the views with their exact bytes.
fn check_through_views(engine: &Engine, a: &Ack) -> Result<(), String> {
    match (a.kind.as_str(), a.extra.as_slice()) {
        ("step_recorded", [cp, seed, len]) => {
            let got = engine
                .checkpoint(&a.job, &CheckpointId::from(cp.as_str()))
                .map_err(|e| format!("acknowledged checkpoint {cp}: {e}"))?;
            if got.payload != payload(seed.parse().unwrap(), len.parse().unwrap()) {
                return Err(format!("checkpoint {cp} of {}: payload differs", a.job));
            }
        }
        ("job_created", [seed, len]) => {
            let got = engine.job_input(&a.job).map_err(|e| e.to_string())?;
            if got != payload(seed.parse().unwrap(), len.parse().unwrap()) {
                return Err(format!("input of {} differs", a.job));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Everything checked after one kill; `acks` holds every acknowledgement
/// made in this directory so far, by every child.
fn check(
    dir: &Path,
    seed: u64,
    acks: &[Ack],
    snaps: &[u64],
    tally: &mut Tally,
) -> Result<(), String> {
    let opts = options(ManualClock::new(Timestamp(support::T0)), retention(seed));
    // 1. A read-only open sees the recovered state without changing it; its
    //    views (snapshot + tail) equal a fresh fold.
    let before = sizes(dir);
    let ro = ReadOnly::open(dir, opts.clone(), AsOf::Latest)
        .map_err(|e| format!("read-only open: {e}"))?;
    let ro_views = ro.with_views(Projections::clone);
    // Under retention the log may start past LSN 0: only the snapshot
    // holds the history before it.
    let first = ro.log().first_lsn();
    if first > 0 {
        tally.history_dropped += 1;
    }
    if first == 0 && ro_views != fold(&ro)? {
        return Err("read-only open: views differ from a fresh fold".into());
    }
    let in_flight: BTreeSet<(String, String)> = ro_views
        .in_flight_runs()
        .map(|r| (r.job.to_string(), r.id.to_string()))
        .collect();
    let ro_next = ro.report().next_lsn;
    drop(ro);
    if sizes(dir) != before {
        return Err("the read-only open changed the directory".into());
    }

    // 2. The writer's open: interrupts exactly what was in flight, in one
    //    batch after the recovered end.
    let (engine, report) =
        Engine::open(dir, opts.clone()).map_err(|e| format!("first open: {e}"))?;
    if report.recovery.torn_tail.is_some() {
        tally.torn_tails += 1;
    }
    if report.snapshot.is_some() {
        tally.snapshots_used += 1;
    }
    let interrupted: BTreeSet<(String, String)> = report
        .interrupted
        .iter()
        .map(|r| (r.job.to_string(), r.run.to_string()))
        .collect();
    tally.interrupted += interrupted.len() as u64;
    if interrupted != in_flight {
        return Err(format!(
            "open interrupted {interrupted:?}, but {in_flight:?} were in flight"
        ));
    }
    let expected_next = ro_next + report.interrupted.len() as u64;
    if engine.next_lsn() != expected_next {
        return Err(format!(
            "after open the log ends at {}, expected {ro_next} + {} interrupts",
            engine.next_lsn(),
            report.interrupted.len()
        ));
    }
    let views = engine.with_views(Projections::clone);
    if first == 0 && views != fold(&engine)? {
        return Err("first open: views differ from a fresh fold of the log".into());
    }
    // Whatever the history: the writer's views are the read-only ones plus
    // the interrupt batch it appended.
    let mut expected = ro_views;
    let mut refused = None;
    engine
        .for_each_event(ro_next, |lsn, e| match expected.apply(lsn, &e) {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => {
                refused = Some(format!("interrupt at LSN {lsn} does not fold: {err}"));
                ControlFlow::Break(())
            }
        })
        .map_err(|e| e.to_string())?;
    if let Some(r) = refused {
        return Err(r);
    }
    if views != expected {
        return Err("first open: views differ from the read-only views + interrupts".into());
    }

    // 3. Every acknowledged command is there, exactly.
    let mut events = BTreeMap::new();
    engine
        .for_each_event(first, |lsn, e| {
            events.insert(lsn, e);
            ControlFlow::Continue(())
        })
        .map_err(|e| e.to_string())?;
    // Acknowledgements without an LSN (several threads) are matched by
    // content: each takes one event of its job with its digest.
    let mut unclaimed: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for e in events.values() {
        *unclaimed
            .entry((e.job.to_string(), digest(&e.job, &e.change)))
            .or_default() += 1;
    }
    for a in acks {
        let Some(lsn) = a.lsn else {
            let n = unclaimed
                .get_mut(&(a.job.to_string(), a.digest))
                .filter(|n| **n > 0)
                .ok_or_else(|| format!("acknowledged {} of {} is lost", a.kind, a.job))?;
            *n -= 1;
            check_through_views(&engine, a)?;
            continue;
        };
        if lsn < first {
            // Dropped by retention, which keeps what unfinished jobs need:
            // the job (and a step's checkpoint) is still in the views.
            let job = engine
                .job(&a.job)
                .map_err(|e| format!("acknowledged {} at LSN {lsn}: {e}", a.kind))?;
            if let ("step_recorded", [cp, ..]) = (a.kind.as_str(), a.extra.as_slice())
                && !job
                    .detail()
                    .map_err(|e| e.to_string())?
                    .checkpoints()
                    .iter()
                    .any(|c| c.id.as_str() == cp)
            {
                return Err(format!("checkpoint {cp} of {} is lost", a.job));
            }
            if job.status == runlog::JobStatus::Running {
                return Err(format!(
                    "{} is unfinished, but its record at LSN {lsn} was dropped",
                    a.job
                ));
            }
            continue;
        }
        let Some(e) = events.get(&lsn) else {
            return Err(format!("acknowledged {} at LSN {lsn} is lost", a.kind));
        };
        if e.job != a.job || digest(&e.job, &e.change) != a.digest {
            return Err(format!(
                "acknowledged {} of {} at LSN {lsn} reads back as {} of {}",
                a.kind,
                a.job,
                e.change.kind(),
                e.job
            ));
        }
        check_through_views(&engine, a)?;
    }
    if let Some(&newest) = snaps.iter().max() {
        let used = report.snapshot.as_ref().map(|s| s.lsn);
        if used.is_none_or(|u| u < newest) {
            return Err(format!(
                "a snapshot at LSN {newest} was acknowledged, the open used {used:?}"
            ));
        }
    }
    let next = engine.next_lsn();
    drop(engine); // a crash, as far as the log is concerned
    let after_first = segment_sizes(dir);
    tally.segments_max = tally.segments_max.max(after_first.len());

    // 4. A second open changes nothing.
    let (engine, report) = Engine::open(dir, opts).map_err(|e| format!("second open: {e}"))?;
    if let Some(t) = &report.recovery.torn_tail {
        return Err(format!("second open cut a torn tail: {t:?}"));
    }
    if !report.interrupted.is_empty() {
        return Err(format!("second open interrupted {:?}", report.interrupted));
    }
    if engine.next_lsn() != next || engine.with_views(Projections::clone) != views {
        return Err("second open: different views or end".into());
    }
    drop(engine);
    if segment_sizes(dir) != after_first {
        return Err("second open changed the segments".into());
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let asked = env_u64("RUNLOG_KILL_ITERATIONS");
    let kills = asked.unwrap_or(200);
    // The CI slice keeps to a time budget on a busy machine, once it has
    // done a useful minimum; a run that asks for a number does them all.
    let budget = asked.is_none().then_some((Duration::from_secs(50), 100));
    let first_seed = env_u64("RUNLOG_KILL_SEED").unwrap_or(1);
    let dirs = kills.div_ceil(KILLS_PER_DIR);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut open_us = 30_000;
    for seed in first_seed..first_seed + dirs {
        if let Some((time, kills_min)) = budget
            && started.elapsed() > time
            && tally.kills >= kills_min
        {
            println!("kill -9: time budget spent, stopping before seed {seed}");
            break;
        }
        let dir = TempDir::new(&format!("kill9-{seed}"));
        let data = dir.join("data");
        let mut rng = Rng::new(seed);
        let mut acks = Vec::new();
        let mut snaps = Vec::new();
        for life in 0..KILLS_PER_DIR {
            let at = kill_at(&mut rng, open_us);
            let l = run_child(&data, seed, life, at);
            let repeat = format!(
                "seed {seed}, child {life} killed {at:?}: repeat with \
                 RUNLOG_KILL_SEED={seed} RUNLOG_KILL_ITERATIONS={KILLS_PER_DIR} \
                 cargo test -p runlog --test crash_kill -- kill_9 --nocapture"
            );
            if let Some(e) = &l.error {
                panic!("{repeat}: the child failed: {e}");
            }
            tally.kills += 1;
            tally.acks += l.acks.len() as u64;
            tally.audits += l.audits;
            tally.threaded_acks += l.acks.iter().filter(|a| a.lsn.is_none()).count() as u64;
            if !l.opened {
                tally.killed_before_open += 1;
            }
            if let Some(d) = l.opened_after {
                open_us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            }
            acks.extend(l.acks);
            snaps.extend(l.snapshots);
            let created = std::fs::read_dir(data.join("segments")).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg")))
            });
            if !created {
                // Killed while the log was being created, before its first
                // segment was renamed into place: there is no log yet
                // (read-only opens say so), nothing was acknowledged, and
                // the next writer's open creates it.
                assert!(acks.is_empty(), "{repeat}: acks without a log");
                let opts = options(ManualClock::new(Timestamp(support::T0)), retention(seed));
                let (engine, _) = Engine::open(&data, opts)
                    .unwrap_or_else(|e| panic!("{repeat}: open after an aborted create: {e}"));
                assert_eq!(engine.next_lsn(), 0, "{repeat}");
                tally.killed_creating += 1;
                continue;
            }
            if let Err(e) = check(&data, seed, &acks, &snaps, &mut tally) {
                panic!("{repeat}: {e}");
            }
        }
    }
    println!(
        "kill -9: {} kills in {} directories, {:.1} s: {tally:?}",
        tally.kills,
        tally.kills.div_ceil(KILLS_PER_DIR),
        started.elapsed().as_secs_f64()
    );
    // The slice must have exercised what it claims to.
    assert!(tally.acks > tally.kills, "{tally:?}");
    assert!(tally.interrupted > 0, "{tally:?}");
    assert!(tally.snapshots_used > 0, "{tally:?}");
    assert!(tally.segments_max > 1, "{tally:?}");
    assert!(tally.history_dropped > 0, "{tally:?}");
    assert!(tally.threaded_acks > 0, "{tally:?}");
    assert!(tally.audits > 0, "{tally:?}");
}
