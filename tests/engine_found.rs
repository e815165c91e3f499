//! Why this file exists: each test here is a bug the crash, fault and fuzz
//! suite (`tests/engine_model.rs`, `fuzz/`) found, reduced to the few
//! public calls that show it, so it stays fixed without the suite's
//! randomness.

mod support;

use runlog::{Engine, EngineError, JobOutcome, Query, Submit};
use support::{TempDir, options};

/// Found by the engine model (keep_full_history off): a finished job could
/// be continued after a snapshot had dropped the segment holding its input,
/// giving a running job whose original input no longer exists. Continuing
/// it is now refused with a typed error, and the job stays as it was.
#[test]
fn a_finished_job_whose_input_was_dropped_is_not_continued() {
    let dir = TempDir::new("found-input-dropped");
    let (mut opts, _) = options();
    opts.keep_full_history = false;
    opts.segment_size_max = 256;
    opts.snapshot_every_events = 0;
    opts.snapshot_every_bytes = 0;
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let old = engine
        .submit(Submit::new("agent", b"the original input".to_vec()))
        .expect("submit")
        .job;
    engine
        .finish_job(&old, JobOutcome::Completed)
        .expect("finish");
    // Enough later records that the old job's segment is sealed.
    for i in 0..8 {
        engine
            .submit(Submit::new("agent", vec![b'x'; 40 + i]).force_new())
            .expect("submit");
    }
    let info = engine.snapshot().expect("snapshot");
    assert!(info.segments_dropped > 0, "{info:?}");
    assert!(
        engine.job_input(&old).is_err(),
        "the finished job's input went with its segment"
    );

    let before = engine.next_lsn();
    let err = engine
        .start_run(&old, None)
        .expect_err("continuing a job without its input");
    assert!(
        matches!(&err, EngineError::InputDropped { job, .. } if job == &old),
        "{err}"
    );
    assert_eq!(engine.next_lsn(), before, "nothing was written");
    assert_eq!(
        engine.job(&old).expect("job").status,
        runlog::JobStatus::Completed
    );

    // The same after a reopen, where the log itself starts past the input.
    drop(engine);
    let (engine, _) = Engine::open(dir.path(), opts).expect("reopen");
    let err = engine.start_run(&old, None).expect_err("still refused");
    assert!(matches!(err, EngineError::InputDropped { .. }), "{err}");
}
