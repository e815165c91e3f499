//! The seven problems of DESIGN.md, each as a concrete scenario through the
//! engine's public API, checked after a reopen too: these are the failures
//! real agent runtimes shipped, and the engine exists so that they cannot
//! happen.

mod support;

use runlog::{
    BlockedReason, Engine, EngineError, FailCause, InterruptReason, JobFilter, JobOutcome,
    JobStatus, Query, Refusal, Resumability, RunStatus, Step, Submit, SubmitOutcome, Usage,
};
use std::sync::Arc;
use std::time::Duration;
use support::{TempDir, options};

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cost_micros: 0,
    }
}

/// Problem 1: the job exists from its first command; totals are updated as
/// runs end and equal the sum of step deltas: parent 3 steps + child 2 steps
/// is 5 steps, not 8.
#[test]
fn p1_job_persisted_at_creation_and_totals_never_double_counted() {
    let dir = TempDir::new("p1");
    let (opts, _) = options();
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let job = engine
        .submit(Submit::new("researcher", "topic"))
        .expect("submit")
        .job;
    assert_eq!(engine.job(&job).expect("job").status, JobStatus::Running);

    let parent = engine.start_run(&job, None).expect("start");
    for i in 1..=3 {
        engine
            .record_step(
                &job,
                &parent,
                Step::new(vec![b'p'; 200], usage(100 * i, 10)),
            )
            .expect("parent step");
    }
    let child = engine.delegate(&job, &parent).expect("delegate");
    for _ in 0..2 {
        engine
            .record_step(&job, &child, Step::new(vec![b'c'; 200], usage(7, 3)))
            .expect("child step");
    }
    engine
        .complete_run(&job, &child, "child out")
        .expect("child done");
    let after_child = engine.job(&job).expect("job");
    assert_eq!(after_child.total_steps, 5);
    engine.return_child(&job, &parent, &child).expect("return");
    engine
        .complete_run(&job, &parent, "out")
        .expect("parent done");
    engine
        .finish_job(&job, JobOutcome::Completed)
        .expect("finish");

    let check = |q: &dyn Fn() -> runlog::JobView| {
        let view = q();
        assert_eq!(view.total_steps, 5);
        assert_eq!(view.usage, usage(600 + 14, 30 + 6));
        assert_eq!(view.status, JobStatus::Completed);
        let checkpoints = view.detail().expect("detail decodes").checkpoints();
        let steps: Vec<u64> = checkpoints.iter().map(|c| c.step).collect();
        assert_eq!(steps, [1, 2, 3, 4, 5]);
        assert_eq!(checkpoints[4].usage, view.usage);
    };
    check(&|| engine.job(&job).expect("job"));
    drop(engine);
    let (engine, _) = Engine::open(dir.path(), opts).expect("reopen");
    check(&|| engine.job(&job).expect("job"));
    let listed = engine.jobs(&JobFilter::default()).expect("jobs readable");
    assert_eq!(listed.len(), 1);
    assert_eq!((&*listed[0].key, listed[0].total_steps), ("researcher", 5));
}

/// Problem 2: checkpoints are addressed as (job, checkpoint); resuming from
/// a checkpoint names the job and refuses another job's checkpoint, writing
/// nothing.
#[test]
fn p2_resume_from_requires_the_job_and_refuses_a_foreign_checkpoint() {
    let dir = TempDir::new("p2");
    let (engine, _) = Engine::open(dir.path(), options().0).expect("open");
    let a = engine.submit(Submit::new("agent", "a")).expect("a").job;
    let b = engine.submit(Submit::new("agent", "b")).expect("b").job;
    let ra = engine.start_run(&a, None).expect("run a");
    let cp_a1 = engine
        .record_step(
            &a,
            &ra,
            Step::new("state 1", usage(1, 1)).checkpoint("first"),
        )
        .expect("step");
    let cp_a2 = engine
        .record_step(&a, &ra, Step::new("state 2", usage(1, 1)))
        .expect("step");
    engine
        .fail_run(&a, &ra, "tool crashed", true)
        .expect("fail");
    let rb = engine.start_run(&b, None).expect("run b");
    let cp_b = engine
        .record_step(&b, &rb, Step::new("b state", usage(1, 1)))
        .expect("step");

    let before = engine.next_lsn();
    let err = engine
        .start_run(&a, Some(cp_b.clone()))
        .expect_err("a foreign checkpoint");
    match err {
        EngineError::CheckpointOfAnotherJob {
            job,
            checkpoint,
            owner,
        } => assert_eq!(
            (job, checkpoint, owner),
            (a.clone(), cp_b.clone(), b.clone())
        ),
        other => panic!("expected CheckpointOfAnotherJob, got {other}"),
    }
    assert_eq!(
        engine.next_lsn(),
        before,
        "a refused command writes nothing"
    );

    let resumed = engine
        .start_run(&a, Some(cp_a1.clone()))
        .expect("resume from own");
    assert_eq!(
        engine.run(&a, &resumed).expect("run").resumed_from,
        Some(cp_a1.clone())
    );
    // Cheap queries: latest, all in step order, one with its payload.
    assert_eq!(
        engine.latest_checkpoint(&a).expect("latest").map(|c| c.id),
        Some(cp_a2.clone())
    );
    let ids: Vec<_> = engine
        .checkpoints(&a)
        .expect("all")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [cp_a1.clone(), cp_a2]);
    let one = engine.checkpoint(&a, &cp_a1).expect("one");
    assert_eq!(one.payload, b"state 1");
    assert!(matches!(
        engine.checkpoint(&a, &cp_b),
        Err(EngineError::UnknownCheckpoint { .. })
    ));
}

/// Problem 3: an early return and a panic inside a guarded run are both
/// recorded; a run whose resume keeps crashing is failed after
/// `recovery_attempts_max` resumes instead of being offered forever.
#[test]
fn p3_every_exit_is_finalized_and_crash_loops_are_bounded() {
    let dir = TempDir::new("p3");
    let (opts, _) = options();
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let job = engine
        .submit(Submit::new("agent", "x"))
        .expect("submit")
        .job;

    fn host_code_that_returns_early(guard: &runlog::RunGuard<'_>) -> Result<(), &'static str> {
        guard
            .record_step(Step::new("s", Usage::default()))
            .map_err(|_| "step")?;
        Err("config file missing")
    }
    let early = {
        let guard = engine.start_guarded(&job, None).expect("start");
        let run = guard.run().clone();
        assert!(host_code_that_returns_early(&guard).is_err());
        run
    };
    let early = engine.run(&job, &early).expect("run");
    assert_eq!(early.status, RunStatus::Failed);
    assert_eq!(early.error.expect("error").cause, FailCause::Abandoned);

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let guard = engine.start_guarded(&job, None).expect("start");
        let run = guard.run().clone();
        let _keep = guard;
        std::panic::panic_any(run)
    }))
    .expect_err("the host code panicked");
    let panicked = panicked.downcast::<runlog::RunId>().expect("the run id");
    let view = engine.run(&job, &panicked).expect("run");
    assert_eq!(view.status, RunStatus::Interrupted);
    assert_eq!(view.interrupted_by, Some(InterruptReason::Panic));

    // A crash loop: the run is in flight at every crash (the engine is
    // dropped without close), resumed at every open.
    let flaky = engine.start_run(&job, None).expect("start");
    drop(engine);
    for attempt in 1..=3 {
        let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("reopen");
        let found = report
            .interrupted
            .iter()
            .find(|r| r.run == flaky)
            .expect("flaky was in flight");
        assert_eq!(found.now, RunStatus::Interrupted, "attempt {attempt}");
        assert_eq!(found.resumability, Resumability::Resumable);
        engine.resume_run(&job, &flaky, None).expect("resume");
        drop(engine);
    }
    let (engine, report) = Engine::open(dir.path(), opts).expect("reopen");
    let found = report
        .interrupted
        .iter()
        .find(|r| r.run == flaky)
        .expect("flaky was in flight");
    assert_eq!(found.now, RunStatus::Failed);
    assert_eq!(
        found.resumability,
        Resumability::Blocked {
            reason: BlockedReason::AttemptsExhausted {
                attempts: 3,
                max: 3
            }
        }
    );
    assert!(engine.interrupted().iter().all(|r| r.run.id != flaky));
    let err = engine
        .resume_run(&job, &flaky, None)
        .expect_err("exhausted");
    assert!(matches!(err, EngineError::Transition(_)), "{err}");
}

/// Problem 4: after a crash every in-flight run is listed; a multi-phase run
/// resumes at a phase boundary, completed phases known by position even when
/// two share a name.
#[test]
fn p4_boot_recovery_lists_in_flight_runs_and_phases_by_position() {
    let dir = TempDir::new("p4");
    let (opts, _) = options();
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let job = engine
        .submit(Submit::new("pipeline", "repo"))
        .expect("submit")
        .job;
    let run = engine.start_run(&job, None).expect("start");
    engine
        .complete_phase(&job, &run, 0, "lint", "ok")
        .expect("phase 0");
    engine
        .complete_phase(&job, &run, 1, "test", "ok")
        .expect("phase 1");
    engine
        .complete_phase(&job, &run, 2, "lint", "ok")
        .expect("phase 2, same name");
    let other = engine
        .submit(Submit::new("agent", "y"))
        .expect("submit")
        .job;
    let other_run = engine.start_run(&other, None).expect("start");
    drop(engine); // crash

    let (engine, report) = Engine::open(dir.path(), opts).expect("reopen");
    let mut found: Vec<_> = report.interrupted.iter().map(|r| r.run.clone()).collect();
    found.sort();
    let mut expected = vec![run.clone(), other_run];
    expected.sort();
    assert_eq!(found, expected);
    engine.resume_run(&job, &run, None).expect("resume");
    let view = engine.run(&job, &run).expect("run");
    let completed: Vec<(u32, &str)> = view
        .phases
        .iter()
        .map(|p| (p.position, p.name.as_str()))
        .collect();
    assert_eq!(completed, [(0, "lint"), (1, "test"), (2, "lint")]);
    let to_run: Vec<u32> = (0..5).filter(|p| !view.phase_completed(*p)).collect();
    assert_eq!(to_run, [3, 4]);
    assert!(
        engine
            .complete_phase(&job, &run, 2, "lint", "again")
            .is_err()
    );
    engine
        .complete_phase(&job, &run, 3, "lint", "ok")
        .expect("phase 3");
}

/// Problem 5: the job's original input survives every later event and a
/// recovery.
#[test]
fn p5_the_input_survives_everything() {
    let dir = TempDir::new("p5");
    let (opts, _) = options();
    let input = b"the real input \x00\xff with bytes".to_vec();
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let job = engine
        .submit(Submit::new("agent", input.clone()))
        .expect("submit")
        .job;
    let run = engine.start_run(&job, None).expect("start");
    engine.request_input(&job, &run, "approve?").expect("ask");
    engine
        .provide_input(&job, &run, "something else")
        .expect("answer");
    engine
        .record_step(&job, &run, Step::new("other bytes", usage(1, 1)))
        .expect("step");
    engine.snapshot().expect("snapshot");
    engine
        .complete_run(&job, &run, "output bytes")
        .expect("complete");
    assert_eq!(engine.job_input(&job).expect("input"), input);
    drop(engine);
    let (engine, report) = Engine::open(dir.path(), opts).expect("reopen");
    assert!(report.snapshot.is_some(), "the snapshot was used");
    assert_eq!(engine.job_input(&job).expect("input"), input);
}

/// Problem 6: an interrupted run that was awaiting input is reported
/// blocked (awaiting input), not resumable, and a resume is refused; once
/// the input arrives it becomes resumable.
#[test]
fn p6_no_false_ready_after_recovery() {
    let dir = TempDir::new("p6");
    let (opts, _) = options();
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let job = engine
        .submit(Submit::new("agent", "z"))
        .expect("submit")
        .job;
    let run = engine.start_run(&job, None).expect("start");
    engine
        .request_input(&job, &run, "deploy to prod?")
        .expect("ask");
    drop(engine);

    let (engine, report) = Engine::open(dir.path(), opts).expect("reopen");
    let found = report
        .interrupted
        .iter()
        .find(|r| r.run == run)
        .expect("found");
    assert_eq!(found.was, RunStatus::AwaitingInput);
    assert_eq!(
        found.resumability,
        Resumability::Blocked {
            reason: BlockedReason::AwaitingInput
        }
    );
    let listed = engine.interrupted();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].resumability.is_resumable());
    let err = engine
        .resume_run(&job, &run, None)
        .expect_err("not resumable");
    match err {
        EngineError::Transition(e) => assert_eq!(
            e.refusal,
            Refusal::NotResumable(BlockedReason::AwaitingInput)
        ),
        other => panic!("{other}"),
    }
    engine
        .provide_input(&job, &run, "yes")
        .expect("input arrives");
    assert_eq!(
        engine.resumability(&job, &run).expect("run"),
        Resumability::Resumable
    );
    engine.resume_run(&job, &run, None).expect("resume");
}

/// Problem 7: idempotent submit: attach to the newest unfinished job with
/// the fingerprint inside the staleness window; a new job once it is stale
/// or finished; force-new; an explicit job id; and 8 threads submitting one
/// fingerprint create exactly one job.
#[test]
fn p7_fingerprint_attach_staleness_force_new_and_explicit_id() {
    let dir = TempDir::new("p7");
    let (mut opts, clock) = options();
    opts.fingerprint_staleness = Duration::from_secs(3600);
    let (engine, _) = Engine::open(dir.path(), opts).expect("open");
    let submit =
        || Submit::new("vm.run", "--vm-alias my-vm").fingerprint("vm.run --vm-alias my-vm");

    let first = engine.submit(submit()).expect("first");
    assert_eq!(first.outcome, SubmitOutcome::Created);
    clock.advance(Duration::from_secs(60));
    let again = engine.submit(submit()).expect("again");
    assert_eq!(
        (again.job.clone(), again.outcome),
        (first.job.clone(), SubmitOutcome::Attached)
    );

    let forced = engine.submit(submit().force_new()).expect("forced");
    assert_eq!(forced.outcome, SubmitOutcome::Created);
    assert_ne!(forced.job, first.job);
    // The newest unfinished job is the one attached to now.
    assert_eq!(engine.submit(submit()).expect("attach").job, forced.job);

    let explicit = engine
        .submit(submit().resume(first.job.clone()))
        .expect("explicit");
    assert_eq!(
        (explicit.job.clone(), explicit.outcome),
        (first.job.clone(), SubmitOutcome::Resumed)
    );
    assert!(matches!(
        engine.submit(submit().resume("job-nope".into())),
        Err(EngineError::UnknownJob { .. })
    ));

    clock.advance(Duration::from_secs(3601));
    let stale = engine.submit(submit()).expect("stale");
    assert_eq!(stale.outcome, SubmitOutcome::Created);

    engine
        .cancel_job(&stale.job, "done with it")
        .expect("cancel");
    let after_finish = engine.submit(submit()).expect("after finish");
    assert_eq!(after_finish.outcome, SubmitOutcome::Created);
    assert_ne!(after_finish.job, stale.job);
}

#[test]
fn p7_eight_threads_submitting_one_fingerprint_create_one_job() {
    let dir = TempDir::new("p7-threads");
    let (engine, _) = Engine::open(dir.path(), options().0).expect("open");
    let engine = Arc::new(engine);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let engine = Arc::clone(&engine);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                engine
                    .submit(Submit::new("cli", "args").fingerprint("same"))
                    .expect("submit")
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let created = results
        .iter()
        .filter(|r| r.outcome == SubmitOutcome::Created)
        .count();
    assert_eq!(created, 1);
    assert!(results.iter().all(|r| r.job == results[0].job));
    assert_eq!(
        engine.jobs(&JobFilter::all()).expect("jobs readable").len(),
        1
    );
}
