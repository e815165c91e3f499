//! Why this file exists: the engine checks a command's event under its
//! ordering lock, writes it, then applies it reusing what the check
//! resolved (`Projections::check_for_apply`, `apply_checked`), so that the
//! job's id is hashed and the transition table consulted once per command.
//! Applying through a check must give exactly the views `apply` gives, and
//! a check that went stale (another event applied in between) must be made
//! again, never trusted.

mod common;
use common::{parse_event, render, run_script};
use runlog_projections::{Projections, Refusal};

/// A script with every kind of target: job creation, runs, a child run,
/// steps, phases, input, interruption, resume, completion, finishing.
const SCRIPT: &str = "
create j
start j r1
step j r1 cp1 in=3 out=1
phase j r1 0 plan
delegate j r1 c
step j c cp2 in=2 out=2
complete j c
return j r1 c
ask j r1 q
answer j r1 a
interrupt j r1
resume j r1
step j r1 cp3 in=1 out=1
complete j r1
create k
start k r2
fail k r2
finish j completed
external k running
";

/// Every event of the script, applied through `check_for_apply` and
/// `apply_checked`, gives the same views as applying it with `apply`.
#[test]
fn applying_through_the_check_gives_the_views_apply_gives() {
    let (expected, events, refusals) = run_script(SCRIPT);
    assert!(refusals.is_empty(), "{refusals:?}");
    let mut views = Projections::new();
    for (lsn, event) in &events {
        let checked = views.check_for_apply(event).expect("check");
        views.apply_checked(*lsn, event, checked).expect("apply");
    }
    assert_eq!(views, expected);
    assert_eq!(render(&views), render(&expected));
    assert_eq!(views.events_applied(), events.len() as u64);
}

/// A step checked while its run was running, then the run completed: the
/// stale check is made again, the step refused exactly as `apply` refuses
/// it, and the views are left as they were.
#[test]
fn a_check_made_stale_by_another_event_is_made_again() {
    let (mut views, events, _) = run_script("create j\nstart j r1");
    let step = parse_event("step j r1 cp1 in=1 out=1", 2000);
    let checked = views.check_for_apply(&step).expect("check");
    let complete = parse_event("complete j r1", 2001);
    views
        .apply(events.len() as u64, &complete)
        .expect("complete");
    let before = views.clone();
    let lsn = events.len() as u64 + 1;
    let via_check = views
        .apply_checked(lsn, &step, checked)
        .expect_err("a step of a completed run");
    let via_apply = before
        .clone()
        .apply(lsn, &step)
        .expect_err("a step of a completed run");
    assert_eq!(via_check.refusal, Refusal::RunFinished);
    assert_eq!(via_check.job.as_str(), "j");
    assert_eq!(via_check.run.as_ref().map(|r| r.as_str()), Some("r1"));
    assert_eq!(via_check, via_apply);
    assert_eq!(
        via_check.to_string(),
        via_apply.to_string(),
        "the same refusal, word for word"
    );
    assert_eq!(views, before);
}

/// Two copies of the same views, each with one more event applied (so the
/// same number of events): a step checked on the copy whose run is still
/// running, handed with that token to the copy whose run completed, is
/// checked again there and refused exactly as `apply` refuses it; a token
/// is never taken for a copy's.
#[test]
fn a_check_made_on_other_views_is_made_again() {
    let (base, events, _) = run_script("create j\nstart j r1");
    let lsn = events.len() as u64;
    let mut running = base.clone();
    running
        .apply(lsn, &parse_event("step j r1 cp1 in=1 out=1", 2000))
        .expect("step");
    let mut completed = base.clone();
    completed
        .apply(lsn, &parse_event("complete j r1", 2000))
        .expect("complete");
    assert_eq!(running.events_applied(), completed.events_applied());

    let step = parse_event("step j r1 cp2 in=1 out=1", 2001);
    let checked = running
        .check_for_apply(&step)
        .expect("a step of a running run");
    let before = completed.clone();
    let via_check = completed
        .apply_checked(lsn + 1, &step, checked)
        .expect_err("a step of a completed run");
    let via_apply = before
        .clone()
        .apply(lsn + 1, &step)
        .expect_err("a step of a completed run");
    assert_eq!(via_check.refusal, Refusal::RunFinished);
    assert_eq!(via_check, via_apply);
    assert_eq!(completed, before, "nothing applied");

    // A clone of the views a token was made on is other views too: the
    // token's check is made again there (and passes, the clone being
    // equal), giving the same views as applying on the original.
    let checked = running.check_for_apply(&step).expect("check");
    let mut copy = running.clone();
    copy.apply_checked(lsn + 1, &step, checked).expect("apply");
    running.apply(lsn + 1, &step).expect("apply");
    assert_eq!(copy, running);
}
