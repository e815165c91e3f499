//! Format compatibility: a log written by format version 1 must replay to
//! exactly the same views forever, and its corrupted twin must keep failing
//! with the same located error. If a change to the log, the codec or the
//! projections breaks either, this test says so.
//!
//! The fixture under `tests/fixtures/v1/` was generated once by
//! [`write_golden`]; to regenerate it (only when a new format version is
//! introduced, never to make this test pass), run:
//!
//! ```sh
//! RUNLOG_WRITE_GOLDEN=1 cargo test -p runlog --test golden_v1 -- --test-threads=1
//! ```

mod support;

use runlog::{
    AsOf, Engine, ExternalStatus, InterruptReason, JobOutcome, Options, Projections, Query,
    ReadOnly, Step, Submit, Usage,
};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{TempDir, options};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// Small segments, so the fixture spans several of them.
fn golden_options() -> (Options, runlog::ManualClock) {
    let (mut opts, clock) = options();
    opts.segment_size_max = 1024;
    opts.snapshot_on_close = false;
    opts.snapshot_every_events = 0;
    opts.snapshot_every_bytes = 0;
    opts.code_version = Some("v1.0".into());
    (opts, clock)
}

/// Writes a log with every event kind of format version 1.
fn write_golden(dir: &Path) {
    let (opts, clock) = golden_options();
    let tick = || clock.advance(Duration::from_secs(1));
    let (e, _) = Engine::open(dir, opts).expect("open");
    let u = |i: u64, o: u64| Usage {
        input_tokens: i,
        output_tokens: o,
        cost_micros: i + o,
    };
    let j1 = e
        .submit(Submit::new("researcher", "what is X?").fingerprint("research X"))
        .expect("submit")
        .job;
    tick();
    let r1 = e.start_run(&j1, None).expect("start");
    tick();
    e.record_step(&j1, &r1, Step::new("plan", u(100, 20)).phase(0))
        .expect("step");
    tick();
    e.complete_phase(&j1, &r1, 0, "plan", "the plan")
        .expect("phase");
    tick();
    let child = e.delegate(&j1, &r1).expect("delegate");
    tick();
    e.record_step(
        &j1,
        &child,
        Step::new("search", u(50, 5)).checkpoint("search-1"),
    )
    .expect("child step");
    tick();
    e.complete_run(&j1, &child, "found it").expect("child done");
    tick();
    e.return_child(&j1, &r1, &child).expect("return");
    tick();
    e.request_input(&j1, &r1, "publish?").expect("ask");
    tick();
    e.provide_input(&j1, &r1, "yes").expect("answer");
    tick();
    e.complete_run(&j1, &r1, "X is Y").expect("complete");
    tick();
    e.finish_job(&j1, JobOutcome::Completed).expect("finish");
    tick();
    let r2 = e
        .start_run(&j1, Some("search-1".into()))
        .expect("continuation");
    tick();
    e.fail_run(&j1, &r2, "rate limited", true).expect("fail");
    tick();
    e.finish_job(
        &j1,
        JobOutcome::Failed {
            error: "gave up".into(),
        },
    )
    .expect("finish failed");
    tick();
    let j2 = e
        .submit(Submit::new("deployer", vec![0u8, 1, 2, 255]))
        .expect("j2")
        .job;
    tick();
    let r3 = e.start_run(&j2, None).expect("start");
    tick();
    e.record_step(&j2, &r3, Step::new(vec![7u8; 600], u(10, 1)))
        .expect("step");
    tick();
    e.interrupt_run(&j2, &r3, InterruptReason::Crash)
        .expect("interrupt");
    tick();
    e.resume_run(&j2, &r3, None).expect("resume");
    tick();
    e.record_step(&j2, &r3, Step::new(vec![8u8; 600], u(20, 2)))
        .expect("step");
    tick();
    e.observe_external(&j2, ExternalStatus::Running, "remote says running")
        .expect("external");
    tick();
    e.cancel_job(&j2, "operator stopped it").expect("cancel");
    tick();
    let j3 = e
        .submit(Submit::new("researcher", "in flight"))
        .expect("j3")
        .job;
    tick();
    e.start_run(&j3, None).expect("left running");
    drop(e); // a crash: j3's run is left in flight
}

/// The views as stable text: no maps, every field a test cares about.
fn render(views: &Projections) -> String {
    let mut out = String::new();
    for job in views.jobs().map(|j| j.expect("jobs materialize")) {
        writeln!(
            out,
            "job {} key={} status={} steps={} usage={:?} input={:?} fp={:?} started={} finished={:?} finish={:?} external={:?}",
            job.id,
            job.key,
            job.status,
            job.total_steps,
            job.usage,
            job.input,
            job.fingerprint,
            job.started_at.0,
            job.finished_at.map(|t| t.0),
            job.finish,
            job.external.as_ref().map(|e| (e.status, e.detail.as_str())),
        )
        .expect("infallible");
        let detail = job.detail().expect("detail decodes");
        for run in detail.runs() {
            writeln!(
                out,
                "  run {} parent={:?} children={:?} status={} steps={} usage={:?} phases={:?} attempts={} from={:?} code={:?} error={:?} interrupted_by={:?} output={:?}",
                run.id,
                run.parent.as_ref().map(|p| p.as_str()),
                run.children.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                run.status,
                run.steps,
                run.usage,
                run.phases.iter().map(|p| (p.position, p.name.as_str())).collect::<Vec<_>>(),
                run.recovery_attempts,
                run.resumed_from.as_ref().map(|c| c.as_str()),
                run.code_version,
                run.error.as_ref().map(|e| (e.message.as_str(), e.retryable, e.cause)),
                run.interrupted_by,
                run.output,
            )
            .expect("infallible");
        }
        for cp in detail.checkpoints() {
            writeln!(
                out,
                "  checkpoint {} run={} step={} delta={:?} usage={:?} phase={:?} payload={:?} at={}",
                cp.id, cp.run, cp.step, cp.delta, cp.usage, cp.phase, cp.payload, cp.at.0
            )
            .expect("infallible");
        }
    }
    writeln!(
        out,
        "events={} last_lsn={:?}",
        views.events_applied(),
        views.last_lsn()
    )
    .expect("infallible");
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The corrupted twin: one bit flipped in the payload of an early record,
/// in a sealed segment.
fn corrupt(dir: &Path) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .collect();
    segments.sort();
    let first = &segments[0];
    let mut bytes = std::fs::read(first).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x08;
    std::fs::write(first, bytes).expect("write");
}

#[test]
fn golden_v1_log_replays_to_its_recorded_views() {
    let dir = fixture();
    if std::env::var_os("RUNLOG_WRITE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        write_golden(&dir.join("log"));
        // The lock file is not part of the fixture.
        let _ = std::fs::remove_file(dir.join("log/LOCK"));
        let views = ReadOnly::open(dir.join("log"), golden_options().0, AsOf::Latest)
            .expect("replay")
            .with_views(render);
        std::fs::write(dir.join("expected-views.txt"), views).expect("write views");
        copy_tree(&dir.join("log"), &dir.join("corrupted"));
        corrupt(&dir.join("corrupted"));
        let err = ReadOnly::open(dir.join("corrupted"), golden_options().0, AsOf::Latest)
            .expect_err("the corrupted twin fails");
        let message = relative(&err.to_string(), &dir.join("corrupted"));
        std::fs::write(dir.join("expected-error.txt"), format!("{message}\n"))
            .expect("write error");
    }

    let expected = std::fs::read_to_string(dir.join("expected-views.txt")).expect("expected views");
    // Read-only, in place: the fixture itself must not change.
    let ro = ReadOnly::open(dir.join("log"), golden_options().0, AsOf::Latest).expect("replay");
    assert_eq!(ro.with_views(render), expected);
    let mut kinds = std::collections::BTreeSet::new();
    ro.for_each_event(0, |_, event| {
        kinds.insert(event.change.kind());
        std::ops::ControlFlow::Continue(())
    })
    .expect("events");
    assert_eq!(
        kinds.len(),
        14,
        "every event kind of v1 is in the fixture: {kinds:?}"
    );

    // A writer opening a copy recovers it: j3's run was left in flight.
    let copy = TempDir::new("golden");
    copy_tree(&dir.join("log"), copy.path());
    let (engine, report) = Engine::open(copy.path(), golden_options().0).expect("open copy");
    assert!(report.recovery.torn_tail.is_none());
    assert_eq!(report.interrupted.len(), 1);
    assert_eq!(
        engine
            .job_input(&engine.jobs(&Default::default()).expect("jobs readable")[1].id)
            .expect("input"),
        [0u8, 1, 2, 255]
    );
}

/// An error message with the corrupted twin's directory written as
/// `<corrupted>`, so the expectation does not depend on where the repo is.
fn relative(message: &str, dir: &Path) -> String {
    message.replace(dir.to_str().expect("utf-8 path"), "<corrupted>")
}

#[test]
fn golden_v1_corrupted_twin_fails_with_its_recorded_error() {
    if std::env::var_os("RUNLOG_WRITE_GOLDEN").is_some() {
        // The other test is writing the fixture this one reads.
        return;
    }
    let dir = fixture();
    let expected = std::fs::read_to_string(dir.join("expected-error.txt")).expect("expected error");
    let err = ReadOnly::open(dir.join("corrupted"), golden_options().0, AsOf::Latest)
        .expect_err("corrupted");
    assert!(err.is_corruption(), "read-only: {err}");
    assert_eq!(
        format!("{}\n", relative(&err.to_string(), &dir.join("corrupted"))),
        expected,
        "read-only"
    );
    // A writer on a copy refuses it the same way, and changes nothing.
    let copy = TempDir::new("golden-corrupt");
    copy_tree(&dir.join("corrupted"), copy.path());
    let err = Engine::open(copy.path(), golden_options().0).expect_err("corrupted");
    assert!(err.is_corruption(), "writer: {err}");
    assert_eq!(
        format!("{}\n", relative(&err.to_string(), copy.path())),
        expected,
        "writer"
    );
}
