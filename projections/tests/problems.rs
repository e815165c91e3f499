//! One scenario for each of the seven problems in DESIGN.md, as an event
//! script and the views it must fold to. These are the failures real agent
//! runtimes shipped (double-counted steps, a resume from a foreign
//! checkpoint, runs never finalized, a lost input, a false "ready", a
//! duplicated submit); each must be impossible to express wrongly here.

mod common;
use common::check;

/// Problem 1: a job exists from its first event and its totals are sums of
/// step deltas. Parent 3 steps + child 2 steps is 5 steps, not 3 + 5 = 8.
#[test]
fn p1_totals_sum_deltas_across_delegation_and_continuation() {
    check(
        r#"
        create j1 key=researcher input=topic
        start j1 r1
        step j1 r1 c1 in=100 out=10
        step j1 r1 c2 in=200 out=20
        step j1 r1 c3 in=300 out=30
        delegate j1 r1 r2
        step j1 r2 c4 in=10 out=1
        step j1 r2 c5 in=20 out=2 cost=7
        complete j1 r2
        return j1 r1 r2
        complete j1 r1
        finish j1 completed
        # a follow-up turn: the job reopens and keeps counting
        start j1 r3
        step j1 r3 c6 in=1 out=1
        complete j1 r3
        finish j1 completed
        "#,
        r#"
        job j1 completed key=researcher steps=6 usage=631/64/$7 input=@0+5
          run r1 completed steps=3 usage=600/60 (blocked: finished)
            run r2 completed steps=2 usage=30/3/$7 (blocked: finished)
          run r3 completed steps=1 usage=1/1 (blocked: finished)
          checkpoint c1 step=1 run=r1 delta=100/10 total=100/10 @2
          checkpoint c2 step=2 run=r1 delta=200/20 total=300/30 @3
          checkpoint c3 step=3 run=r1 delta=300/30 total=600/60 @4
          checkpoint c4 step=4 run=r2 delta=10/1 total=610/61 @6
          checkpoint c5 step=5 run=r2 delta=20/2/$7 total=630/63/$7 @7
          checkpoint c6 step=6 run=r3 delta=1/1 total=631/64/$7 @13
        "#,
    );
}

/// Problem 2: checkpoints are addressed as (job, checkpoint); a resume
/// names the job and refuses another job's checkpoint.
#[test]
fn p2_resume_from_needs_a_checkpoint_of_the_same_job() {
    check(
        r#"
        create j1 input=a
        create j2 input=b
        start j1 r1
        step j1 r1 c1 in=1 out=1
        step j1 r1 c2 in=1 out=1
        fail j1 r1 retryable
        start j2 r1
        step j2 r1 d1 in=5 out=5
        ! start j1 r2 from=d1
        start j1 r2 from=c1
        step j1 r2 c3 in=2 out=2
        "#,
        r#"
        job j1 running key=agent steps=3 usage=4/4 input=@0+1
          run r1 failed steps=2 usage=2/2 (blocked: finished)
          run r2 running steps=1 usage=2/2 from=c1 (blocked: still in flight)
          checkpoint c1 step=1 run=r1 delta=1/1 total=1/1 @3
          checkpoint c2 step=2 run=r1 delta=1/1 total=2/2 @4
          checkpoint c3 step=3 run=r2 delta=2/2 total=4/4 @10
        job j2 running key=agent steps=1 usage=5/5 input=@1+1
          run r1 running steps=1 usage=5/5 (blocked: still in flight)
          checkpoint d1 step=1 run=r1 delta=5/5 total=5/5 @7
        in flight: j1/r2 j2/r1
        refused `start j1 r2 from=d1`: refused run_started for job j1, run r2 (job running): checkpoint d1 is not a checkpoint of this job
        "#,
    );
}

/// Problem 3: every exit is finalized: an early return (abandoned), a panic
/// (interrupted), and a resume that keeps failing is bounded.
#[test]
fn p3_finalized_on_every_exit_and_resume_attempts_bounded() {
    check(
        r#"
        create j1
        start j1 early
        fail j1 early cause=abandoned
        start j1 panicky
        interrupt j1 panicky reason=panic
        start j1 flaky
        interrupt j1 flaky
        resume j1 flaky
        interrupt j1 flaky
        resume j1 flaky
        interrupt j1 flaky
        resume j1 flaky
        interrupt j1 flaky
        ! resume j1 flaky
        fail j1 flaky cause=exhausted
        ! resume j1 flaky
        # clean shutdowns are not failed attempts: resumed four times, never exhausted
        start j1 nightly
        interrupt j1 nightly reason=shutdown
        resume j1 nightly
        interrupt j1 nightly reason=shutdown
        resume j1 nightly
        interrupt j1 nightly reason=shutdown
        resume j1 nightly
        interrupt j1 nightly reason=shutdown
        resume j1 nightly
        complete j1 nightly
        "#,
        r#"
        job j1 running key=agent steps=0 usage=0/0 input=@0+0
          run early failed steps=0 usage=0/0 (blocked: finished)
          run panicky interrupted steps=0 usage=0/0 (resumable)
          run flaky failed steps=0 usage=0/0 attempts=3 (blocked: recovery attempts exhausted (3 of 3))
          run nightly completed steps=0 usage=0/0 (blocked: finished)
        interrupted: j1/panicky
        refused `resume j1 flaky`: refused run_resumed for job j1, run flaky (job running, run interrupted): the run is not resumable: recovery attempts exhausted (3 of 3)
        refused `resume j1 flaky`: refused run_resumed for job j1, run flaky (job running, run failed): the run is not resumable: recovery attempts exhausted (3 of 3)
        "#,
    );
}

/// Problem 4: after a crash every in-flight run is listed; phases are
/// completed by position, so two phases named alike both count.
#[test]
fn p4_interrupted_runs_listed_and_phases_by_position() {
    check(
        r#"
        create j1
        start j1 r1
        phase j1 r1 0 lint
        phase j1 r1 1 test
        phase j1 r1 2 lint
        ! phase j1 r1 1 test
        step j1 r1 c1 in=1 out=1 phase=3
        create j2
        start j2 r1
        ask j2 r1 approve?
        interrupt j1 r1
        interrupt j2 r1
        "#,
        r#"
        job j1 running key=agent steps=1 usage=1/1 input=@0+0
          run r1 interrupted steps=1 usage=1/1 phases=[0:lint,1:test,2:lint] (resumable)
          checkpoint c1 step=1 run=r1 delta=1/1 total=1/1 phase=3 @6
        job j2 running key=agent steps=0 usage=0/0 input=@7+0
          run r1 interrupted steps=0 usage=0/0 awaiting="approve?" (blocked: awaiting input)
        interrupted: j1/r1 j2/r1
        refused `phase j1 r1 1 test`: refused phase_completed for job j1, run r1 (job running, run running): phase 1 already completed
        "#,
    );
}

/// Problem 5: the input is set at creation and nothing later changes it.
#[test]
fn p5_input_is_kept_for_the_whole_life_of_the_job() {
    check(
        r#"
        create j1 input=the-real-input
        start j1 r1
        ask j1 r1 more?
        answer j1 r1 other-bytes
        step j1 r1 c1 in=1 out=1 payload=state
        interrupt j1 r1
        resume j1 r1
        complete j1 r1
        finish j1 completed
        start j1 r2
        ! create j1 input=overwrite
        "#,
        r#"
        job j1 running key=agent steps=1 usage=1/1 input=@0+14
          run r1 completed steps=1 usage=1/1 attempts=1 (blocked: finished)
          run r2 running steps=0 usage=0/0 (blocked: still in flight)
          checkpoint c1 step=1 run=r1 delta=1/1 total=1/1 @4
        in flight: j1/r2
        refused `create j1 input=overwrite`: refused job_created for job j1 (job running): a job with this id exists already
        "#,
    );
}

/// Problem 6: resumable only when a resume would be accepted: not while
/// awaiting input, waiting for a child, after the parent finished, or on
/// other code.
#[test]
fn p6_no_false_ready() {
    check(
        r#"
        create j1
        start j1 waits
        ask j1 waits ok?
        interrupt j1 waits
        ! resume j1 waits
        start j1 parent code=v1
        delegate j1 parent child
        interrupt j1 parent
        interrupt j1 child
        ! resume j1 parent code=v1
        ! resume j1 child code=v2
        resume j1 child code=v1
        complete j1 child
        return j1 parent child
        "#,
        r#"
        job j1 running key=agent steps=0 usage=0/0 input=@0+0
          run waits interrupted steps=0 usage=0/0 awaiting="ok?" (blocked: awaiting input)
          run parent interrupted steps=0 usage=0/0 (resumable)
            run child completed steps=0 usage=0/0 attempts=1 (blocked: finished)
        interrupted: j1/waits j1/parent
        refused `resume j1 waits`: refused run_resumed for job j1, run waits (job running, run interrupted): the run is not resumable: awaiting input
        refused `resume j1 parent code=v1`: refused run_resumed for job j1, run parent (job running, run interrupted): the run is not resumable: waiting for child run child
        refused `resume j1 child code=v2`: refused run_resumed for job j1, run child (job running, run interrupted): the run is not resumable: code version differs (run: v1, host: v2)
        "#,
    );
}

/// Problem 7: the newest unfinished job per fingerprint is indexed; a
/// finished job leaves the index and a continuation brings it back.
#[test]
fn p7_newest_unfinished_job_per_fingerprint() {
    check(
        r#"
        create j1 fp=vm-run
        create j2 fp=vm-run
        create j3 fp=other
        start j2 r1
        complete j2 r1
        finish j2 completed
        finish j3 cancelled
        ! external j3 completed
        external j1 running
        "#,
        r#"
        job j1 running key=agent steps=0 usage=0/0 input=@0+0 fp=vm-run external=Running
        job j2 completed key=agent steps=0 usage=0/0 input=@1+0 fp=vm-run
          run r1 completed steps=0 usage=0/0 (blocked: finished)
        job j3 cancelled key=agent steps=0 usage=0/0 input=@2+0 fp=other
        fingerprint other -> none
        fingerprint vm-run -> j1
        refused `external j3 completed`: refused external_status_observed for job j3 (job cancelled): the job was cancelled
        "#,
    );
    // Continuing the finished j2 reopens it: it is again the newest
    // unfinished job with its fingerprint.
    check(
        r#"
        create j1 fp=vm-run
        create j2 fp=vm-run
        start j2 r1
        complete j2 r1
        finish j2 completed
        start j2 r2
        "#,
        r#"
        job j1 running key=agent steps=0 usage=0/0 input=@0+0 fp=vm-run
        job j2 running key=agent steps=0 usage=0/0 input=@1+0 fp=vm-run
          run r1 completed steps=0 usage=0/0 (blocked: finished)
          run r2 running steps=0 usage=0/0 (blocked: still in flight)
        fingerprint vm-run -> j2
        in flight: j2/r2
        "#,
    );
}
