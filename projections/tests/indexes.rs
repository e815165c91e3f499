//! A job finds its runs and checkpoints by scanning a short list and by
//! hashing a long one (past 16 items). These tests exist so that the switch
//! from one to the other cannot lose or invent an item: every id is found
//! on both sides of the switch, a duplicate is refused on both sides, and a
//! state restored from a snapshot finds the same items.

mod common;

use runlog_projections::*;

const N: usize = 40;

fn event(at: u64, change: Change) -> Event {
    Event {
        at: Timestamp(at),
        job: JobId::from("j"),
        change,
    }
}

/// Checkpoint `c{i}` of run `r`, with no usage and no payload.
fn step(i: usize) -> Change {
    Change::StepRecorded {
        run: RunId::from("r"),
        checkpoint: CheckpointId::from(format!("c{i}")),
        usage: Usage::default(),
        phase: None,
        payload: Vec::new(),
    }
}

/// A job whose first run records `N` steps and delegates to `N` children
/// one after the other.
fn big_job() -> (Projections, Lsn) {
    let mut p = Projections::new();
    let mut lsn = 0;
    let mut apply = |p: &mut Projections, change: Change| {
        p.apply(lsn, &event(lsn, change)).expect("accepted");
        lsn += 1;
    };
    apply(
        &mut p,
        Change::JobCreated {
            key: "agent".into(),
            input: Vec::new(),
            fingerprint: None,
        },
    );
    apply(
        &mut p,
        Change::RunStarted {
            run: RunId::from("r"),
            resume_from: None,
            code_version: None,
        },
    );
    for i in 0..N {
        apply(&mut p, step(i));
    }
    for i in 0..N {
        let child = RunId::from(format!("child{i}"));
        apply(
            &mut p,
            Change::Delegated {
                run: RunId::from("r"),
                child: child.clone(),
            },
        );
        apply(
            &mut p,
            Change::RunCompleted {
                run: child.clone(),
                output: Vec::new(),
            },
        );
        apply(
            &mut p,
            Change::ChildReturned {
                run: RunId::from("r"),
                child,
            },
        );
    }
    (p, lsn)
}

fn assert_finds_everything(p: &Projections) {
    let job = p.job(&JobId::from("j")).expect("readable").expect("job");
    let job = job.detail().expect("detail decodes");
    assert_eq!(job.checkpoints().len(), N);
    assert_eq!(job.runs().len(), N + 1);
    for i in 0..N {
        let cp = job
            .checkpoint(&CheckpointId::from(format!("c{i}")))
            .expect("checkpoint");
        assert_eq!(cp.step, i as u64 + 1);
        let run = job.run(&RunId::from(format!("child{i}"))).expect("run");
        assert_eq!(run.id.as_str(), format!("child{i}"));
        assert_eq!(run.parent, Some(RunId::from("r")));
    }
    assert!(job.checkpoint(&CheckpointId::from("c40")).is_none());
    assert!(job.run(&RunId::from("child40")).is_none());
    assert_eq!(job.run(&RunId::from("r")).map(|r| r.steps), Some(N as u64));
}

#[test]
fn every_run_and_checkpoint_is_found_past_the_switch() {
    let (p, _) = big_job();
    assert_finds_everything(&p);
}

#[test]
fn duplicates_are_refused_on_both_sides_of_the_switch() {
    let (mut p, lsn) = big_job();
    for i in [0, 15, 16, 17, 39] {
        let step = event(lsn, step(i));
        let err = p.apply(lsn, &step).expect_err("duplicate checkpoint");
        assert_eq!(
            err.refusal,
            Refusal::CheckpointExists {
                checkpoint: CheckpointId::from(format!("c{i}"))
            }
        );
        let delegate = event(
            lsn,
            Change::Delegated {
                run: RunId::from("r"),
                child: RunId::from(format!("child{i}")),
            },
        );
        let err = p.apply(lsn, &delegate).expect_err("duplicate run");
        assert_eq!(err.refusal, Refusal::RunExists);
        assert_eq!(err.run, Some(RunId::from(format!("child{i}"))));
    }
    assert_eq!(p.events_applied(), lsn);
}

#[test]
fn a_restored_snapshot_finds_the_same_items() {
    let (p, _) = big_job();
    let bytes = common::snapshot(&p);
    let restored = common::restore(&bytes).expect("restore");
    assert_finds_everything(&restored);
    assert_eq!(restored, p);
}
