//! A model of the engine on the simulated file system, shared by the
//! proptest state machine (`tests/engine_model.rs`), the `engine_ops` fuzz
//! target and its seed test.
//!
//! The model runs commands, crashes and injected faults against an engine
//! opened with `Engine::open_with` on a `SimFs`, and predicts every event
//! the engine writes. It keeps:
//!
//! - `acked`: the events of every acknowledged command, in log order: after
//!   any reopen the log must start with exactly these;
//! - `pending`: the batches of commands that failed with an I/O error (or
//!   were cut by a crash): after a reopen the log may hold a prefix of
//!   these, each whole or not at all;
//! - `views`: a plain fold of `acked` into a fresh `Projections`, which the
//!   engine's views must equal after every command and every reopen.
//!
//! Every check is an `assert!`: a violation is a panic, which the fuzzer
//! reports as a crash and proptest shrinks.

#![allow(dead_code)]

use arbitrary::Arbitrary;
use runlog_engine::{
    AsOf, Change, CheckpointId, Engine, EngineError, Event, FailCause, InterruptReason, JobId,
    JobOutcome, JobStatus, ManualClock, Options, Projections, Query, ReadOnly, RunId, RunStatus,
    Step, Submit, SubmitOutcome, SyncPolicy, Timestamp, Usage,
};
use runlog_engine::{Clock, ExternalStatus, Lsn};
use runlog_log::{Fault, SimFs, Tear};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

/// The data directory on the simulated file system.
pub const DIR: &str = "/data";

/// A placeholder for an id or message the engine makes and the model cannot
/// know, in an event of a command that failed.
const ANY: &str = "\u{0}<made by the engine>";

/// How a test configures the engine.
#[derive(Arbitrary, Clone, Debug)]
pub struct Setup {
    /// Segment size (small, so segments roll over often).
    pub segment_size: u16,
    /// Let snapshots drop the segments they cover (`keep_full_history`
    /// false).
    pub drop_history: bool,
    /// Automatic snapshot every this many events (0: never).
    pub snapshot_every: u8,
    /// Snapshot on a clean close.
    pub snapshot_on_close: bool,
    /// Snapshots kept.
    pub snapshots_kept: u8,
    /// Recovery attempts before a run is failed at open.
    pub attempts_max: u8,
    /// Sync policy: mostly `Always`; 4 is `Bytes(200)`, 5 is `Never`
    /// (modulo 6), whose acknowledged commands a crash may lose from the end.
    pub sync: u8,
}

/// A fault to inject.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum FaultKind {
    /// EIO.
    Eio,
    /// ENOSPC.
    Enospc,
    /// Half the bytes, then EIO.
    Short,
}

impl FaultKind {
    fn fault(self) -> Fault {
        match self {
            FaultKind::Eio => Fault::Eio,
            FaultKind::Enospc => Fault::Enospc,
            FaultKind::Short => Fault::ShortWrite,
        }
    }
}

/// What a crash does to unsynced bytes.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum TearKind {
    /// All unsynced bytes lost.
    Drop,
    /// The first `n` unsynced bytes of each file kept.
    Keep(u8),
    /// `keep` bytes then `zeros` zeros.
    Zeros(u8, u8),
    /// Process crash: everything written kept.
    All,
}

impl TearKind {
    fn tear(self) -> Tear {
        match self {
            TearKind::Drop => Tear::DropUnsynced,
            TearKind::Keep(n) => Tear::KeepUnsynced(u64::from(n)),
            TearKind::Zeros(keep, zeros) => Tear::KeepThenZeros {
                keep: u64::from(keep),
                zeros: u64::from(zeros) + 1,
            },
            TearKind::All => Tear::KeepAll,
        }
    }
}

/// One step of a test. Indexes pick among the jobs, runs and checkpoints the
/// model knows (newest first, modulo their number); 255 names one that does
/// not exist.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// Submit a job (with a fingerprint out of a few, to hit attaches).
    Submit {
        key: u8,
        input: Vec<u8>,
        fingerprint: Option<u8>,
        force_new: bool,
    },
    /// Submit with `SubmitPolicy::Resume`.
    ResubmitJob { job: u8 },
    /// Start a top-level run, maybe resuming from a checkpoint (of any job).
    StartRun { job: u8, from: Option<u8> },
    /// Resume an interrupted run.
    ResumeRun { run: u8, from: Option<u8> },
    /// Record a step.
    Step {
        run: u8,
        payload: Vec<u8>,
        tokens: u16,
        phase: Option<u8>,
        engine_makes_id: bool,
    },
    /// Complete a phase.
    CompletePhase { run: u8, position: u8 },
    /// Delegate to a child run.
    Delegate { run: u8 },
    /// Return a child to its parent.
    ReturnChild { child: u8 },
    /// Ask for input.
    RequestInput { run: u8 },
    /// Provide input.
    ProvideInput { run: u8, input: Vec<u8> },
    /// Complete a run.
    CompleteRun { run: u8, output: Vec<u8> },
    /// Fail a run.
    FailRun { run: u8, retryable: bool },
    /// Interrupt a run.
    InterruptRun { run: u8, panic: bool },
    /// Finish a job.
    FinishJob { job: u8, failed: bool },
    /// Cancel a job.
    CancelJob { job: u8 },
    /// Record an external status.
    Observe { job: u8, status: u8 },
    /// Write a snapshot (syncs the log first).
    Snapshot,
    /// Move the clock forward.
    Tick { millis: u16 },
    /// Move the clock back (a host whose clock steps back): events are
    /// still stamped no earlier than the last one.
    ClockBack { millis: u16 },
    /// Crash the machine at the k-th sync from now.
    ArmCrash { at_sync: u8 },
    /// Fail the n-th write from now.
    ArmWriteFault { n: u8, fault: FaultKind },
    /// Fail the n-th file sync from now.
    ArmSyncFault { n: u8, fault: FaultKind },
    /// Drop the engine (a crash as far as it knows), restart the machine
    /// with `tear`, and reopen — maybe crashing during the open too.
    Reopen {
        tear: TearKind,
        crash_in_open: Option<u8>,
    },
    /// Close cleanly, restart with `tear`, reopen.
    CloseReopen { tear: TearKind },
}

/// What a run exercised, summed over cases for the closing report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Commands acknowledged.
    pub acked: u64,
    /// Commands refused by the state machine (nothing written).
    pub refused: u64,
    /// Simulated crashes that happened (machine down before a reopen).
    pub crashes: u64,
    /// Crashes that happened inside an open.
    pub crashes_in_open: u64,
    /// Injected write/fsync faults that surfaced as a command error.
    pub faults: u64,
    /// Reopens checked.
    pub reopens: u64,
    /// Unacknowledged batches found whole in the log after a reopen.
    pub unacked_recovered: u64,
    /// Unacknowledged batches not found (lost, as allowed).
    pub unacked_lost: u64,
    /// Commands refused because the engine was poisoned.
    pub poisoned_refusals: u64,
    /// Reopens of a log whose first segments a snapshot had dropped.
    pub reopens_after_drop: u64,
    /// Acknowledged but unsynced events a crash took (lossy sync policies).
    pub unsynced_lost: u64,
}

impl Stats {
    /// Adds another run's figures.
    pub fn add(&mut self, o: &Stats) {
        self.acked += o.acked;
        self.refused += o.refused;
        self.crashes += o.crashes;
        self.crashes_in_open += o.crashes_in_open;
        self.faults += o.faults;
        self.reopens += o.reopens;
        self.unacked_recovered += o.unacked_recovered;
        self.unacked_lost += o.unacked_lost;
        self.poisoned_refusals += o.poisoned_refusals;
        self.reopens_after_drop += o.reopens_after_drop;
        self.unsynced_lost += o.unsynced_lost;
    }
}

/// The engine under test and the model of what it must hold.
pub struct Harness {
    sim: SimFs,
    clock: ManualClock,
    options: Options,
    engine: Option<Engine>,
    /// Events of acknowledged commands, in log order.
    acked: Vec<Event>,
    /// How many of `acked` are certainly durable: all of them under
    /// `SyncPolicy::Always`; under a lossy policy, those before the last
    /// sync the model knows of (a snapshot, a close).
    durable: usize,
    /// Positions in `acked` where a batch ends: a crash keeps whole batches.
    batch_ends: std::collections::BTreeSet<usize>,
    /// Every acknowledged command is durable (`SyncPolicy::Always`).
    always: bool,
    /// Batches of commands that failed after they may have been written.
    pending: Vec<Vec<Event>>,
    /// A plain fold of `acked`.
    views: Projections,
    jobs: Vec<JobId>,
    runs: Vec<(JobId, RunId)>,
    checkpoints: Vec<(JobId, CheckpointId)>,
    /// The engine returned a log error: it must refuse everything until
    /// reopened.
    poisoned: bool,
    next_checkpoint: u64,
    /// Statistics.
    pub stats: Stats,
}

/// Runs `ops` from an empty directory and returns what they exercised.
pub fn run(setup: &Setup, ops: &[Op]) -> Stats {
    let mut h = Harness::new(setup);
    for op in ops {
        h.step(op);
    }
    // Every run ends with a crash-free reopen, so the last ops are checked.
    h.step(&Op::Reopen {
        tear: TearKind::Drop,
        crash_in_open: None,
    });
    h.stats
}

fn usage(tokens: u16) -> Usage {
    Usage {
        input_tokens: u64::from(tokens),
        output_tokens: u64::from(tokens / 3),
        cost_micros: 0,
    }
}

fn pick<T: Clone>(items: &[T], i: u8) -> Option<T> {
    if items.is_empty() || i == 255 {
        return None;
    }
    Some(items[items.len() - 1 - usize::from(i) % items.len()].clone())
}

/// `expected` with its placeholders replaced by what `got` holds there.
fn fill(expected: &Event, got: &Event) -> Event {
    let mut e = expected.clone();
    if e.job.as_str() == ANY {
        e.job = got.job.clone();
    }
    match (&mut e.change, &got.change) {
        (Change::RunStarted { run, .. }, Change::RunStarted { run: g, .. })
            if run.as_str() == ANY =>
        {
            *run = g.clone();
        }
        (Change::Delegated { child, .. }, Change::Delegated { child: g, .. })
            if child.as_str() == ANY =>
        {
            *child = g.clone();
        }
        (Change::StepRecorded { checkpoint, .. }, Change::StepRecorded { checkpoint: g, .. })
            if checkpoint.as_str() == ANY =>
        {
            *checkpoint = g.clone();
        }
        (Change::RunFailed { error, .. }, Change::RunFailed { error: g, .. }) if error == ANY => {
            *error = g.clone();
        }
        _ => {}
    }
    e
}

/// Every event in a log from `first` on, in order.
fn events_from(q: &impl Query, first: Lsn) -> Vec<Event> {
    let mut out = Vec::new();
    q.for_each_event(first, |_, e| {
        out.push(e);
        ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("the recovered log does not read back: {e}"));
    out
}

/// A fresh fold of `events`.
fn fold(events: &[Event]) -> Projections {
    let mut p = Projections::new();
    for (lsn, e) in events.iter().enumerate() {
        p.apply(lsn as Lsn, e)
            .unwrap_or_else(|err| panic!("recovered event {lsn} does not fold: {err}"));
    }
    p
}

impl Harness {
    /// A fresh simulated machine with an engine opened on it.
    pub fn new(setup: &Setup) -> Harness {
        let clock = ManualClock::new(Timestamp(1_000_000));
        let mut options = Options::default();
        options.sync = match setup.sync % 6 {
            4 => SyncPolicy::Bytes(200),
            5 => SyncPolicy::Never,
            _ => SyncPolicy::Always,
        };
        options.segment_size_max = 256 + u64::from(setup.segment_size % 1024);
        options.record_size_max = 4096;
        options.snapshot_every_events = u64::from(setup.snapshot_every % 8);
        options.snapshot_every_bytes = 0;
        options.snapshot_on_close = setup.snapshot_on_close;
        options.snapshots_kept = 1 + usize::from(setup.snapshots_kept % 3);
        options.recovery_attempts_max = u32::from(setup.attempts_max % 3);
        options.fingerprint_staleness = Duration::from_millis(1500);
        options.code_version = Some("v1".into());
        options.keep_full_history = !setup.drop_history;
        options.clock = Arc::new(clock.clone());
        let mut h = Harness {
            sim: SimFs::new(),
            clock,
            options,
            engine: None,
            acked: Vec::new(),
            durable: 0,
            batch_ends: std::collections::BTreeSet::from([0]),
            always: setup.sync % 6 < 4,
            pending: Vec::new(),
            views: Projections::new(),
            jobs: Vec::new(),
            runs: Vec::new(),
            checkpoints: Vec::new(),
            poisoned: false,
            next_checkpoint: 0,
            stats: Stats::default(),
        };
        h.reopen(TearKind::All, None);
        h
    }

    fn now(&self) -> Timestamp {
        let last = self.acked.last().map_or(0, |e: &Event| e.at.0);
        Timestamp(self.clock.now().0.max(last))
    }

    /// Records an acknowledged batch; `synced` if the engine said it
    /// synced the log after it (always so under `SyncPolicy::Always`).
    fn ack_batch(&mut self, batch: Vec<Event>, synced: bool) {
        for e in batch {
            self.ack(e);
        }
        self.batch_ends.insert(self.acked.len());
        if synced || self.always {
            self.durable = self.acked.len();
        }
    }

    /// Forgets acknowledged events a crash took (lossy sync policies only):
    /// the model restarts from the first `keep`.
    fn truncate(&mut self, keep: usize) {
        assert!(
            !self.always && keep >= self.durable,
            "acknowledged durable events lost: {keep} of {} recovered ({} durable)",
            self.acked.len(),
            self.durable
        );
        self.stats.unsynced_lost += (self.acked.len() - keep) as u64;
        let kept = self.acked[..keep].to_vec();
        self.acked.clear();
        self.views = Projections::new();
        self.jobs.clear();
        self.runs.clear();
        self.checkpoints.clear();
        for e in kept {
            self.ack(e);
        }
        self.batch_ends.retain(|&b| b <= keep);
    }

    /// Records an acknowledged event in the model.
    fn ack(&mut self, event: Event) {
        let lsn = self.acked.len() as Lsn;
        self.views
            .apply(lsn, &event)
            .unwrap_or_else(|e| panic!("the engine acknowledged an event the fold refuses: {e}"));
        self.learn(&event);
        self.acked.push(event);
    }

    /// Remembers the ids an event introduces, so later ops can name them.
    fn learn(&mut self, event: &Event) {
        match &event.change {
            Change::JobCreated { .. } => self.jobs.push(event.job.clone()),
            Change::RunStarted { run, .. } => self.runs.push((event.job.clone(), run.clone())),
            Change::Delegated { child, .. } => {
                self.runs.push((event.job.clone(), child.clone()));
            }
            Change::StepRecorded { checkpoint, .. } => {
                self.checkpoints
                    .push((event.job.clone(), checkpoint.clone()));
            }
            _ => {}
        }
    }

    fn job(&self, i: u8) -> JobId {
        pick(&self.jobs, i).unwrap_or_else(|| JobId::from("job-unknown"))
    }

    fn run_of(&self, i: u8) -> (JobId, RunId) {
        pick(&self.runs, i).unwrap_or_else(|| (self.job(0), RunId::from("run-unknown")))
    }

    /// Like `run_of`, but for `i < 128` among the runs whose status is in
    /// `wanted` (when there are any), so that most commands are ones the
    /// state machine accepts; `i >= 128` may name any run, to test refusals.
    fn run_in(&self, i: u8, wanted: &[RunStatus]) -> (JobId, RunId) {
        if i >= 128 {
            return self.run_of(i);
        }
        let fits: Vec<(JobId, RunId)> = self
            .runs
            .iter()
            .filter(|(j, r)| {
                self.views
                    .run(j, r)
                    .expect("the model's views decode every job's detail")
                    .is_some_and(|v| wanted.contains(&v.status))
            })
            .cloned()
            .collect();
        pick(&fits, i).unwrap_or_else(|| self.run_of(i))
    }

    /// Like `job`, but for `i < 128` among the jobs still running.
    fn running_job(&self, i: u8) -> JobId {
        if i >= 128 {
            return self.job(i);
        }
        let fits: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|j| {
                self.views
                    .job(j)
                    .expect("model views are replayed")
                    .is_some_and(|v| v.status == JobStatus::Running)
            })
            .cloned()
            .collect();
        pick(&fits, i).unwrap_or_else(|| self.job(i))
    }

    fn checkpoint(&self, i: u8) -> CheckpointId {
        pick(&self.checkpoints, i).map_or_else(|| CheckpointId::from("cp-unknown"), |(_, c)| c)
    }

    fn event(&self, job: JobId, change: Change) -> Event {
        Event {
            at: self.now(),
            job,
            change,
        }
    }

    /// Runs one op and checks the engine against the model.
    pub fn step(&mut self, op: &Op) {
        if std::env::var("MODEL_TRACE").is_ok() {
            eprintln!(
                "acked {} durable {} pending {} poisoned {} crashed {} | {op:?}",
                self.acked.len(),
                self.durable,
                self.pending.len(),
                self.poisoned,
                self.sim.crashed()
            );
        }
        match op {
            Op::Tick { millis } => {
                self.clock
                    .advance(Duration::from_millis(u64::from(*millis)));
            }
            Op::ClockBack { millis } => {
                let now = self.clock.now().0;
                self.clock
                    .set(Timestamp(now.saturating_sub(u64::from(*millis))));
            }
            Op::ArmCrash { at_sync } => self.sim.crash_at_sync(u64::from(*at_sync % 12) + 1),
            Op::ArmWriteFault { n, fault } => {
                self.sim
                    .fail_write_in(u64::from(*n % 12) + 1, fault.fault());
            }
            Op::ArmSyncFault { n, fault } => {
                self.sim.fail_sync_in(u64::from(*n % 8) + 1, fault.fault());
            }
            Op::Reopen {
                tear,
                crash_in_open,
            } => {
                self.engine = None;
                self.reopen(*tear, *crash_in_open);
            }
            Op::CloseReopen { tear } => {
                self.close();
                self.reopen(*tear, None);
            }
            Op::Snapshot => self.snapshot(),
            Op::Submit { .. } | Op::ResubmitJob { .. } => self.submit(op),
            _ => self.command(op),
        }
    }

    fn engine(&self) -> &Engine {
        match &self.engine {
            Some(e) => e,
            None => panic!("the model always holds an open engine between ops"),
        }
    }

    /// A command that writes one event (or is refused).
    fn command(&mut self, op: &Op) {
        let before = self.engine().next_lsn();
        // The event the command should write, with placeholders for what
        // the engine makes, and the command's result (with the ids it made
        // filled in).
        let (expected, result): (Event, Result<Event, EngineError>) = match op {
            Op::StartRun { job, from } => {
                let job = self.job(*job);
                let from = from.map(|c| self.checkpoint(c));
                let e = self.event(
                    job.clone(),
                    Change::RunStarted {
                        run: RunId::from(ANY),
                        resume_from: from.clone(),
                        code_version: self.options.code_version.clone(),
                    },
                );
                let r = self.engine().start_run(&job, from).map(|run| {
                    let mut e = e.clone();
                    if let Change::RunStarted { run: r, .. } = &mut e.change {
                        *r = run;
                    }
                    e
                });
                (e, r)
            }
            Op::ResumeRun { run, from } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Interrupted]);
                let from = from.map(|c| self.checkpoint(c));
                let e = self.event(
                    job.clone(),
                    Change::RunResumed {
                        run: run.clone(),
                        from: from.clone(),
                        code_version: self.options.code_version.clone(),
                        allow_code_change: false,
                        attempts_max: self.options.recovery_attempts_max,
                    },
                );
                let r = self
                    .engine()
                    .resume_run(&job, &run, from)
                    .map(|()| e.clone());
                (e, r)
            }
            Op::Step {
                run,
                payload,
                tokens,
                phase,
                engine_makes_id,
            } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Running]);
                let id = if *engine_makes_id {
                    None
                } else {
                    self.next_checkpoint += 1;
                    Some(CheckpointId::from(format!("cp-m{}", self.next_checkpoint)))
                };
                let e = self.event(
                    job.clone(),
                    Change::StepRecorded {
                        run: run.clone(),
                        checkpoint: id.clone().unwrap_or_else(|| CheckpointId::from(ANY)),
                        usage: usage(*tokens),
                        phase: phase.map(|p| u32::from(p % 4)),
                        payload: payload.clone(),
                    },
                );
                let mut step = Step::new(payload.clone(), usage(*tokens));
                if let Some(id) = id {
                    step = step.checkpoint(id);
                }
                if let Some(p) = phase {
                    step = step.phase(u32::from(p % 4));
                }
                let r = self.engine().record_step(&job, &run, step).map(|cp| {
                    let mut e = e.clone();
                    if let Change::StepRecorded { checkpoint, .. } = &mut e.change {
                        *checkpoint = cp;
                    }
                    e
                });
                (e, r)
            }
            Op::CompletePhase { run, position } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Running]);
                let position = u32::from(position % 4);
                let name = format!("phase {}", position % 2);
                let e = self.event(
                    job.clone(),
                    Change::PhaseCompleted {
                        run: run.clone(),
                        position,
                        name: name.clone(),
                        output: vec![position as u8; 3],
                    },
                );
                let r = self
                    .engine()
                    .complete_phase(&job, &run, position, name, vec![position as u8; 3])
                    .map(|()| e.clone());
                (e, r)
            }
            Op::Delegate { run } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Running]);
                let e = self.event(
                    job.clone(),
                    Change::Delegated {
                        run: run.clone(),
                        child: RunId::from(ANY),
                    },
                );
                let r = self.engine().delegate(&job, &run).map(|child| {
                    let mut e = e.clone();
                    if let Change::Delegated { child: c, .. } = &mut e.change {
                        *c = child;
                    }
                    e
                });
                (e, r)
            }
            Op::ReturnChild { child } => {
                let (job, child) = self.run_in(*child, &[RunStatus::Completed, RunStatus::Failed]);
                let parent = self
                    .views
                    .run(&job, &child)
                    .expect("the model's views decode every job's detail")
                    .and_then(|r| r.parent.clone())
                    .unwrap_or_else(|| RunId::from("run-no-parent"));
                let e = self.event(
                    job.clone(),
                    Change::ChildReturned {
                        run: parent.clone(),
                        child: child.clone(),
                    },
                );
                let r = self
                    .engine()
                    .return_child(&job, &parent, &child)
                    .map(|()| e.clone());
                (e, r)
            }
            Op::RequestInput { run } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Running]);
                let prompt = format!("input for {run}?");
                let e = self.event(
                    job.clone(),
                    Change::InputRequested {
                        run: run.clone(),
                        prompt: prompt.clone(),
                    },
                );
                let r = self
                    .engine()
                    .request_input(&job, &run, prompt)
                    .map(|()| e.clone());
                (e, r)
            }
            Op::ProvideInput { run, input } => {
                let (job, run) = self.run_in(*run, &[RunStatus::AwaitingInput]);
                let e = self.event(
                    job.clone(),
                    Change::InputProvided {
                        run: run.clone(),
                        input: input.clone(),
                    },
                );
                let r = self
                    .engine()
                    .provide_input(&job, &run, input.clone())
                    .map(|()| e.clone());
                (e, r)
            }
            Op::CompleteRun { run, output } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Running]);
                let e = self.event(
                    job.clone(),
                    Change::RunCompleted {
                        run: run.clone(),
                        output: output.clone(),
                    },
                );
                let r = self
                    .engine()
                    .complete_run(&job, &run, output.clone())
                    .map(|()| e.clone());
                (e, r)
            }
            Op::FailRun { run, retryable } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Running]);
                let e = self.event(
                    job.clone(),
                    Change::RunFailed {
                        run: run.clone(),
                        error: "model says no".into(),
                        retryable: *retryable,
                        cause: FailCause::Reported,
                    },
                );
                let r = self
                    .engine()
                    .fail_run(&job, &run, "model says no", *retryable)
                    .map(|()| e.clone());
                (e, r)
            }
            Op::InterruptRun { run, panic } => {
                let (job, run) = self.run_in(*run, &[RunStatus::Running]);
                let reason = if *panic {
                    InterruptReason::Panic
                } else {
                    InterruptReason::Shutdown
                };
                let e = self.event(
                    job.clone(),
                    Change::RunInterrupted {
                        run: run.clone(),
                        reason,
                    },
                );
                let r = self
                    .engine()
                    .interrupt_run(&job, &run, reason)
                    .map(|()| e.clone());
                (e, r)
            }
            Op::FinishJob { job, failed } => {
                let job = self.running_job(*job);
                let outcome = if *failed {
                    JobOutcome::Failed {
                        error: "model failed it".into(),
                    }
                } else {
                    JobOutcome::Completed
                };
                let e = self.event(
                    job.clone(),
                    Change::JobFinished {
                        outcome: outcome.clone(),
                    },
                );
                let r = self.engine().finish_job(&job, outcome).map(|()| e.clone());
                (e, r)
            }
            Op::CancelJob { job } => {
                let job = self.running_job(*job);
                let e = self.event(
                    job.clone(),
                    Change::JobFinished {
                        outcome: JobOutcome::Cancelled {
                            reason: "model cancelled it".into(),
                        },
                    },
                );
                let r = self
                    .engine()
                    .cancel_job(&job, "model cancelled it")
                    .map(|()| e.clone());
                (e, r)
            }
            Op::Observe { job, status } => {
                let job = self.running_job(*job);
                let status = match status % 4 {
                    0 => ExternalStatus::Pending,
                    1 => ExternalStatus::Running,
                    2 => ExternalStatus::Completed,
                    _ => ExternalStatus::Failed,
                };
                let e = self.event(
                    job.clone(),
                    Change::ExternalStatusObserved {
                        status,
                        detail: "seen".into(),
                    },
                );
                let r = self
                    .engine()
                    .observe_external(&job, status, "seen")
                    .map(|()| e.clone());
                (e, r)
            }
            other => panic!("not a one-event command: {other:?}"),
        };
        self.settle(before, expected, result);
    }

    /// Checks a one-event command's result against the model.
    fn settle(&mut self, before: Lsn, expected: Event, result: Result<Event, EngineError>) {
        match result {
            Ok(event) => {
                assert!(!self.poisoned, "a poisoned engine acknowledged {event:?}");
                assert_eq!(
                    self.engine().next_lsn(),
                    before + 1,
                    "an acknowledged command wrote one event"
                );
                // (A crash in the automatic snapshot after the commit leaves
                // nothing readable until the restart; under a lossy policy
                // a read would flush the buffer the test means to lose.)
                if !self.sim.crashed() && self.always {
                    let written = self.read_event(before);
                    assert_eq!(
                        written, event,
                        "the event in the log is the one the command made"
                    );
                }
                self.ack_batch(vec![event], false);
                self.stats.acked += 1;
                self.check_views();
            }
            Err(e) => self.refused(before, vec![expected], e),
        }
    }

    /// A command failed: either refused (nothing written; the fold must
    /// agree it is refused), or an I/O failure (poisoned from now on, its
    /// batch unacknowledged).
    fn refused(&mut self, before: Lsn, batch: Vec<Event>, e: EngineError) {
        if self.poisoned {
            self.stats.poisoned_refusals += 1;
            return;
        }
        match e {
            EngineError::Log(_) => {
                if self.sim.crashed() {
                    // Counted as a crash at the reopen.
                } else {
                    self.stats.faults += 1;
                }
                self.poisoned = true;
                if !batch.is_empty() {
                    self.pending.push(batch);
                }
            }
            EngineError::Transition(_)
            | EngineError::UnknownJob { .. }
            | EngineError::UnknownRun { .. }
            | EngineError::UnknownCheckpoint { .. }
            | EngineError::CheckpointOfAnotherJob { .. }
            | EngineError::InputDropped { .. } => {
                assert_eq!(
                    self.engine().next_lsn(),
                    before,
                    "a refused command wrote nothing ({e})"
                );
                if let EngineError::Transition(_) = e {
                    for event in &batch {
                        assert!(
                            self.views.check(event).is_err(),
                            "the engine refused {event:?}, which the fold accepts"
                        );
                    }
                }
                self.stats.refused += 1;
                self.check_views();
            }
            other => panic!("unexpected error from a command: {other:?}"),
        }
    }

    fn read_event(&self, lsn: Lsn) -> Event {
        let mut found = None;
        self.engine()
            .for_each_event(lsn, |_, e| {
                found = Some(e);
                ControlFlow::Break(())
            })
            .unwrap_or_else(|e| panic!("the event just written does not read back: {e}"));
        found.unwrap_or_else(|| panic!("no event at LSN {lsn}"))
    }

    fn check_views(&self) {
        let engine_views = self.engine().with_views(Projections::clone);
        assert!(
            engine_views == self.views,
            "the engine's views differ from the fold of the acknowledged events"
        );
    }

    fn submit(&mut self, op: &Op) {
        let before = self.engine().next_lsn();
        let at = self.now();
        let (submit, predicted) = match op {
            Op::Submit {
                key,
                input,
                fingerprint,
                force_new,
            } => {
                let mut s = Submit::new(format!("agent-{}", key % 3), input.clone());
                let fp = fingerprint.map(|f| format!("fp-{}", f % 4));
                if let Some(fp) = &fp {
                    s = s.fingerprint(fp.clone());
                }
                let attach = if *force_new {
                    s = s.force_new();
                    None
                } else {
                    let staleness = self.options.fingerprint_staleness.as_millis() as u64;
                    fp.as_deref()
                        .and_then(|fp| self.views.newest_unfinished_with_fingerprint(fp))
                        .filter(|j| at.0.saturating_sub(j.started_at.0) <= staleness)
                        .map(|j| (j.id.clone(), SubmitOutcome::Attached))
                };
                let created = Event {
                    at,
                    job: JobId::from(ANY),
                    change: Change::JobCreated {
                        key: format!("agent-{}", key % 3),
                        input: input.clone(),
                        fingerprint: fp,
                    },
                };
                (s, attach.ok_or(created))
            }
            Op::ResubmitJob { job } => {
                let job = self.job(*job);
                (
                    Submit::new("agent-0", b"again".to_vec()).resume(job.clone()),
                    Ok((job, SubmitOutcome::Resumed)),
                )
            }
            other => panic!("not a submit: {other:?}"),
        };
        let result = self.engine().submit(submit);
        match (predicted, result) {
            (Ok((job, outcome)), Ok(got)) => {
                assert!(!self.poisoned, "a poisoned engine answered a submit");
                assert_eq!((got.job, got.outcome), (job, outcome));
                assert_eq!(self.engine().next_lsn(), before, "an attach writes nothing");
            }
            (Ok((job, SubmitOutcome::Resumed)), Err(EngineError::UnknownJob { job: j }))
                if !self.poisoned =>
            {
                assert_eq!(j, job);
                assert!(
                    self.views.job(&job).expect("readable").is_none(),
                    "resume of a known job refused"
                );
                self.stats.refused += 1;
            }
            (Ok(_), Err(e)) => self.refused(before, Vec::new(), e),
            (Err(created), Ok(got)) => {
                assert_eq!(got.outcome, SubmitOutcome::Created);
                let mut event = created;
                event.job = got.job;
                self.settle(before, event.clone(), Ok(event));
            }
            (Err(created), Err(e)) => self.refused(before, vec![created], e),
        }
    }

    fn snapshot(&mut self) {
        match self.engine().snapshot() {
            Ok(info) => {
                assert!(!self.poisoned, "a poisoned engine wrote a snapshot");
                assert_eq!(
                    info.lsn,
                    self.acked.len() as Lsn,
                    "a snapshot covers every event"
                );
                // A snapshot syncs the log first.
                self.ack_batch(Vec::new(), true);
            }
            // A snapshot file that could not be written is not a log
            // failure: the engine goes on. The log was synced before.
            Err(EngineError::SnapshotIo { .. }) => {
                self.ack_batch(Vec::new(), true);
                if !self.sim.crashed() {
                    self.stats.faults += 1;
                }
            }
            // The machine went down inside the snapshot. If that was in
            // dropping the covered segments, the snapshot is written and the
            // log is not poisoned (a failed removal loses nothing); either
            // way every later write fails, and `refused` sees that.
            Err(EngineError::Log(_)) if self.sim.crashed() && !self.poisoned => {}
            Err(e) => self.refused(self.acked.len() as Lsn, Vec::new(), e),
        }
    }

    /// The batch the engine writes for the runs in flight in `views`.
    fn interrupt_batch(&self, views: &Projections, reason: InterruptReason) -> Vec<Event> {
        let at = self.now();
        let max = self.options.recovery_attempts_max;
        views
            .in_flight_runs()
            .map(|run| Event {
                at,
                job: run.job.clone(),
                change: if reason == InterruptReason::Crash && run.recovery_attempts >= max {
                    Change::RunFailed {
                        run: run.id.clone(),
                        error: ANY.into(),
                        retryable: false,
                        cause: FailCause::RecoveryAttemptsExhausted,
                    }
                } else {
                    Change::RunInterrupted {
                        run: run.id.clone(),
                        reason,
                    }
                },
            })
            .collect()
    }

    fn close(&mut self) {
        let Some(engine) = self.engine.take() else {
            return;
        };
        let batch = self.interrupt_batch(&self.views, InterruptReason::Shutdown);
        match engine.close() {
            Ok(interrupted) => {
                assert!(!self.poisoned, "a poisoned engine closed cleanly");
                assert_eq!(interrupted.len(), batch.len());
                self.stats.acked += 1;
                self.ack_batch(batch, true);
            }
            // The shutdown batch was committed and synced; only the
            // snapshot failed.
            Err(EngineError::SnapshotIo { .. }) if !self.poisoned => {
                self.ack_batch(batch, true);
            }
            Err(e) => {
                if !self.poisoned {
                    assert!(matches!(e, EngineError::Log(_)), "close failed: {e}");
                    if !self.sim.crashed() {
                        self.stats.faults += 1;
                    }
                    if !batch.is_empty() {
                        self.pending.push(batch);
                    }
                } else {
                    self.stats.poisoned_refusals += 1;
                }
            }
        }
    }

    /// Restarts the machine and reopens, checking what was recovered.
    fn reopen(&mut self, tear: TearKind, crash_in_open: Option<u8>) {
        if self.sim.crashed() {
            self.stats.crashes += 1;
        }
        self.sim.restart(tear.tear());
        // What a restarted disk holds is durable. A read-only open sees it
        // (whole batches; the torn tail is where it stops), and its views
        // are the fold of it. (Before the first open there is no directory.)
        let mut on_disk = 0;
        if self.stats.reopens > 0 {
            let ro = self.read_only_history();
            let _ = self.match_prefix(&ro);
            on_disk = ro.len();
        }
        if let Some(k) = crash_in_open {
            self.sim.crash_at_sync(u64::from(k % 6) + 1);
            match Engine::open_with(DIR, self.options.clone(), self.sim.handle()) {
                Ok((engine, _)) => {
                    // The open got through before the crash point; the crash
                    // stays armed for the commands that follow. What the
                    // open recovered is checked like any reopen.
                    self.engine = Some(engine);
                    self.check_recovered(on_disk);
                    return;
                }
                Err(e) => {
                    assert!(
                        matches!(e, EngineError::Log(_) | EngineError::SnapshotIo { .. }),
                        "an open cut by a crash fails with an I/O error, not {e}"
                    );
                    self.stats.crashes_in_open += 1;
                    self.stats.crashes += 1;
                    self.sim.restart(tear.tear());
                    // The interrupt batch of the failed open may be there,
                    // after what that open recovered.
                    let recovered = self.read_only_history();
                    on_disk = recovered.len();
                    self.absorb(&recovered, on_disk);
                    let batch = self.interrupt_batch(&self.views, InterruptReason::Crash);
                    if !batch.is_empty() {
                        self.pending.push(batch);
                    }
                }
            }
        }
        let (engine, _) = Engine::open_with(DIR, self.options.clone(), self.sim.handle())
            .unwrap_or_else(|e| panic!("reopen after a crash failed: {e}"));
        self.engine = Some(engine);
        self.check_recovered(on_disk);
    }

    /// The whole history a log holds, given its events from its first LSN
    /// on: segments a snapshot covered may have been dropped, and those
    /// events can only be the acknowledged ones.
    fn history(&self, first: Lsn, events: Vec<Event>) -> Vec<Event> {
        let first = usize::try_from(first).unwrap_or(usize::MAX);
        assert!(
            first <= self.acked.len(),
            "the log starts at LSN {first}, after the {} acknowledged events",
            self.acked.len()
        );
        let mut full = self.acked[..first].to_vec();
        full.extend(events);
        full
    }

    /// The history of a read-only open of the current disk; its views must
    /// be the fold of it.
    fn read_only_history(&self) -> Vec<Event> {
        let ro = ReadOnly::open_with(DIR, self.options.clone(), AsOf::Latest, self.sim.handle())
            .unwrap_or_else(|e| panic!("read-only open after a crash failed: {e}"));
        let first = ro.log().first_lsn();
        let full = self.history(first, events_from(&ro, first));
        assert!(
            ro.with_views(Projections::clone) == fold(&full),
            "read-only views differ from the fold of the log"
        );
        full
    }

    /// Checks that `events` starts with the durable acknowledged events,
    /// then more acknowledged ones up to a batch boundary (all of them
    /// under `SyncPolicy::Always`), then — only if every acknowledged event
    /// is there — a prefix of whole pending batches. Returns how many
    /// acknowledged events are there, and where that prefix ends.
    fn match_prefix(&self, events: &[Event]) -> (usize, usize) {
        let durable = self.durable;
        assert!(
            events.len() >= durable,
            "acknowledged durable events lost: {} recovered, {durable} durable",
            events.len()
        );
        for (i, (got, want)) in events.iter().zip(&self.acked[..durable]).enumerate() {
            assert_eq!(
                got, want,
                "recovered event {i} differs from the acknowledged one"
            );
        }
        let mut kept = durable;
        while kept < self.acked.len() && events.get(kept) == Some(&self.acked[kept]) {
            kept += 1;
        }
        if kept < self.acked.len() {
            assert!(
                !self.always,
                "acknowledged event {kept} lost or changed: {:?} recovered, {:?} acknowledged",
                events.get(kept),
                self.acked[kept]
            );
            // Unsynced commands are lost from the end, whole batches at a
            // time: what follows the last whole batch is checked by the
            // caller (nothing, or the open's interrupt batch).
            let whole = self
                .batch_ends
                .range(..=kept)
                .next_back()
                .copied()
                .unwrap_or(0);
            return (whole, whole);
        }
        let mut at = kept;
        for batch in &self.pending {
            let Some(got) = events.get(at..at + batch.len()) else {
                break;
            };
            if !batch.iter().zip(got).all(|(w, g)| &fill(w, g) == g) {
                break;
            }
            at += batch.len();
        }
        (kept, at)
    }

    /// Takes what a restarted disk holds into the model: acknowledged
    /// events a crash took are forgotten (lossy policies), pending batches
    /// found whole become history, and the first `on_disk` events (what the
    /// restarted disk held) are durable. Returns where that history ends in
    /// `events`.
    fn absorb(&mut self, events: &[Event], on_disk: usize) -> usize {
        let (kept, held) = self.match_prefix(events);
        if kept < self.acked.len() {
            self.truncate(kept);
        }
        let mut at = self.acked.len();
        let pending = std::mem::take(&mut self.pending);
        for batch in pending {
            if at + batch.len() <= held {
                self.ack_batch(events[at..at + batch.len()].to_vec(), false);
                at += batch.len();
                self.stats.unacked_recovered += 1;
            } else {
                self.stats.unacked_lost += 1;
            }
        }
        assert_eq!(at, held);
        // Not the open's own batch, which a lossy policy leaves unsynced.
        self.durable = on_disk.min(self.acked.len());
        held
    }

    /// After an open: the log holds acked ++ a prefix of whole pending
    /// batches ++ the open's interrupt batch, and the views are its fold.
    fn check_recovered(&mut self, on_disk: usize) {
        self.stats.reopens += 1;
        let first = ReadOnly::open_with(DIR, self.options.clone(), AsOf::Latest, self.sim.handle())
            .unwrap_or_else(|e| panic!("read-only open beside the engine failed: {e}"))
            .log()
            .first_lsn();
        if first > 0 {
            self.stats.reopens_after_drop += 1;
        }
        let events = self.history(first, events_from(self.engine(), first));
        let held = self.absorb(&events, on_disk);
        // What follows is the open's own batch: every run in flight.
        let batch = self.interrupt_batch(&self.views, InterruptReason::Crash);
        let rest = &events[held..];
        assert_eq!(
            rest.len(),
            batch.len(),
            "after the recovered events the log holds exactly the open's interrupt batch"
        );
        for (want, got) in batch.iter().zip(rest) {
            assert_eq!(&fill(want, got), got, "the open's interrupt batch");
        }
        self.ack_batch(rest.to_vec(), false);
        self.poisoned = false;
        assert!(
            fold(&events) == self.views,
            "the model's fold differs from a fresh fold"
        );
        self.check_views();
        self.check_as_of(&events, first);
        self.check_payloads(&events, first);
    }

    /// Inputs and checkpoint payloads read back from the log as written.
    /// With full history every one must; otherwise those of every job
    /// still running must (the engine keeps the segments holding them).
    fn check_payloads(&self, history: &[Event], first: Lsn) {
        let engine = self.engine();
        for (lsn, e) in history.iter().enumerate() {
            let must = first == 0
                || self
                    .views
                    .job(&e.job)
                    .expect("model views are replayed")
                    .is_some_and(|j| j.status == JobStatus::Running);
            let (got, want) = match &e.change {
                Change::JobCreated { input, .. } => (engine.job_input(&e.job), input),
                Change::StepRecorded {
                    checkpoint,
                    payload,
                    ..
                } => (
                    engine.checkpoint(&e.job, checkpoint).map(|c| c.payload),
                    payload,
                ),
                _ => continue,
            };
            match got {
                Ok(got) => assert_eq!(&got, want, "payload of the event at LSN {lsn}"),
                Err(err) if !must => {
                    assert!(
                        (lsn as Lsn) < first,
                        "payload at LSN {lsn} unreadable: {err}"
                    )
                }
                Err(err) => panic!(
                    "payload at LSN {lsn} of a running job unreadable (log starts at {first}): {err}"
                ),
            }
        }
    }

    /// A read-only open replayed to a past point (an LSN, a time) shows
    /// the fold of the history up to it, snapshots or not.
    fn check_as_of(&self, history: &[Event], first: Lsn) {
        let n = history.len() / 2;
        let by_time = history.get(n).map(|e| e.at);
        let mut points = vec![(AsOf::Lsn(n as Lsn), n)];
        if let Some(t) = by_time {
            // Timestamps never go backwards, so the events at or before `t`
            // are a prefix.
            let upto = history.iter().take_while(|e| e.at <= t).count();
            points.push((AsOf::Time(t), upto));
        }
        for (as_of, upto) in points {
            match ReadOnly::open_with(DIR, self.options.clone(), as_of, self.sim.handle()) {
                Ok(ro) => assert!(
                    ro.with_views(Projections::clone) == fold(&history[..upto]),
                    "views as of {as_of:?} differ from the fold of the first {upto} events"
                ),
                // Dropped segments and no snapshot early enough.
                Err(EngineError::HistoryMissing { .. }) if first > 0 => {}
                Err(e) => panic!("read-only open as of {as_of:?} failed: {e}"),
            }
        }
    }
}
