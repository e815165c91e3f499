//! Property tests of the fold. Random event sequences over small id spaces
//! (so that delegation, continuation, resume and refusals all happen often)
//! are applied in order; each test checks one invariant, stated above it.

mod common;

use proptest::prelude::*;
use runlog_projections::*;
use std::collections::HashMap;

/// One random operation: (op, job, run, other, number).
type Op = (u8, u8, u8, u8, u16);

/// Operation kinds, weighted so that runs get created, interrupted, resumed
/// and returned to often enough for the invariants to bite.
const KINDS: &[u8] = &[
    0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 4, 4, 4, 5, 5, 5, 6, 7, 7, 8, 8, 8, 9, 10, 10, 11, 11, 11, 12, 13,
];

/// Every sequence starts with two jobs, each with a running run, so that
/// most random events find something to act on.
const PROLOGUE: &[Op] = &[
    (0, 0, 0, 0, 0),
    (0, 1, 1, 0, 0),
    (1, 0, 0, 0, 1),
    (1, 1, 0, 0, 1),
];

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = (
        prop::sample::select(KINDS),
        0u8..2,
        0u8..4,
        0u8..4,
        0u16..40,
    );
    prop::collection::vec(op, 0..150).prop_map(|ops| [PROLOGUE, &ops].concat())
}

fn event(op: Op, at: u64) -> Event {
    let (kind, j, r, o, n) = op;
    let run = RunId::from(format!("r{r}"));
    let other = RunId::from(format!("r{o}"));
    let cp = |k: u16| CheckpointId::from(format!("c{k}"));
    // Mostly one code version, sometimes another, so resumes are usually
    // allowed and sometimes flagged.
    let code = |k: u16| Some(if k.is_multiple_of(7) { "v-new" } else { "v" }.to_string());
    let change = match kind {
        0 => Change::JobCreated {
            key: "agent".into(),
            input: format!("input of j{j}").into_bytes(),
            fingerprint: Some(format!("f{}", r % 2)),
        },
        1 => Change::RunStarted {
            run,
            resume_from: (n.is_multiple_of(2)).then(|| cp(n / 2)),
            code_version: code(n),
        },
        2 => Change::StepRecorded {
            run,
            checkpoint: cp(n),
            usage: Usage {
                input_tokens: u64::from(n) * 7,
                output_tokens: u64::from(o),
                cost_micros: u64::from(n % 3),
            },
            phase: Some(u32::from(o)),
            payload: vec![o; usize::from(n % 5)],
        },
        3 => Change::PhaseCompleted {
            run,
            position: u32::from(o),
            name: "same-name".into(),
            output: Vec::new(),
        },
        4 => Change::Delegated { run, child: other },
        5 => Change::ChildReturned { run, child: other },
        6 => Change::InputRequested {
            run,
            prompt: "ok?".into(),
        },
        7 => Change::InputProvided {
            run,
            input: b"yes".to_vec(),
        },
        8 => Change::RunCompleted {
            run,
            output: Vec::new(),
        },
        9 => Change::RunFailed {
            run,
            error: "boom".into(),
            retryable: n.is_multiple_of(2),
            cause: FailCause::Reported,
        },
        10 => Change::RunInterrupted {
            run,
            reason: InterruptReason::Crash,
        },
        11 => Change::RunResumed {
            run,
            from: (n.is_multiple_of(3)).then(|| cp(n)),
            code_version: code(n),
            allow_code_change: n.is_multiple_of(5),
            attempts_max: 3,
        },
        12 => Change::JobFinished {
            outcome: match n % 10 {
                0 => JobOutcome::Cancelled {
                    reason: "stop".into(),
                },
                1 => JobOutcome::Failed {
                    error: "gave up".into(),
                },
                _ => JobOutcome::Completed,
            },
        },
        _ => Change::ExternalStatusObserved {
            status: ExternalStatus::Running,
            detail: String::new(),
        },
    };
    Event {
        at: Timestamp(at),
        job: JobId::from(format!("j{j}")),
        change,
    }
}

/// The fold of a sequence, with the accepted events and their LSNs.
struct Trace {
    state: Projections,
    accepted: Vec<(Lsn, Event)>,
    refused_changed_state: bool,
}

fn fold(ops: &[Op]) -> Trace {
    let mut state = Projections::new();
    let mut accepted = Vec::new();
    let mut refused_changed_state = false;
    for (i, op) in ops.iter().enumerate() {
        let e = event(*op, 1_000 + i as u64);
        let before = state.clone();
        match state.apply(i as Lsn, &e) {
            Ok(()) => accepted.push((i as Lsn, e)),
            Err(_) => refused_changed_state |= state != before,
        }
    }
    Trace {
        state,
        accepted,
        refused_changed_state,
    }
}

proptest! {
    /// A job's total steps equal its step events and its usage equals the
    /// sum of their deltas, whatever delegation, continuation or resume did.
    #[test]
    fn totals_equal_the_sum_of_deltas(ops in ops()) {
        let t = fold(&ops);
        let mut expected: HashMap<JobId, (u64, Usage)> = HashMap::new();
        for (_, e) in &t.accepted {
            if let Change::StepRecorded { usage, .. } = &e.change {
                let entry = expected.entry(e.job.clone()).or_default();
                entry.0 += 1;
                entry.1 = entry.1.plus(*usage);
            }
        }
        for job in t.state.jobs().map(|j| j.expect("materializes")) {
            let (steps, usage) = expected.get(&job.id).copied().unwrap_or_default();
            prop_assert_eq!(job.total_steps, steps);
            prop_assert_eq!(job.usage, usage);
            let runs = job.detail().expect("detail decodes").runs();
            prop_assert_eq!(runs.iter().map(|r| r.steps).sum::<u64>(), steps);
        }
    }

    /// A job's input is the one its creation event carried, after any events.
    #[test]
    fn a_jobs_input_never_changes(ops in ops()) {
        let t = fold(&ops);
        for (lsn, e) in &t.accepted {
            if let Change::JobCreated { input, .. } = &e.change {
                let job = t.state.job(&e.job).expect("readable").expect("created job exists");
                prop_assert_eq!(job.input, PayloadRef { lsn: *lsn, len: input.len() as u64 });
            }
        }
    }

    /// No run has more than one terminal (completed or failed) event.
    #[test]
    fn each_run_has_at_most_one_terminal_event(ops in ops()) {
        let t = fold(&ops);
        let mut terminal: HashMap<(JobId, RunId), u32> = HashMap::new();
        for (_, e) in &t.accepted {
            if let Change::RunCompleted { run, .. } | Change::RunFailed { run, .. } = &e.change {
                *terminal.entry((e.job.clone(), run.clone())).or_default() += 1;
            }
        }
        prop_assert!(terminal.values().all(|&n| n <= 1), "{terminal:?}");
    }

    /// A job's checkpoints come out numbered 1, 2, 3… with cumulative usage
    /// equal to the running sum of their deltas.
    #[test]
    fn checkpoints_come_out_in_step_order(ops in ops()) {
        let t = fold(&ops);
        for job in t.state.jobs().map(|j| j.expect("materializes")) {
            let job = job.detail().expect("detail decodes");
            let mut sum = Usage::default();
            for (i, cp) in job.checkpoints().iter().enumerate() {
                sum = sum.plus(cp.delta);
                prop_assert_eq!(cp.step, i as u64 + 1);
                prop_assert_eq!(cp.usage, sum);
                prop_assert_eq!(job.checkpoint(&cp.id), Some(cp));
            }
            prop_assert_eq!(job.latest_checkpoint(), job.checkpoints().last());
        }
    }

    /// Replaying the accepted events into fresh views gives equal views.
    #[test]
    fn replaying_the_same_events_gives_equal_views(ops in ops()) {
        let t = fold(&ops);
        let mut again = Projections::new();
        for (lsn, e) in &t.accepted {
            prop_assert!(again.apply(*lsn, e).is_ok(), "an accepted event was refused on replay");
        }
        prop_assert_eq!(common::render(&again), common::render(&t.state));
        prop_assert_eq!(again, t.state);
    }

    /// An event the table refuses leaves the views equal to before.
    #[test]
    fn a_refused_event_changes_nothing(ops in ops()) {
        prop_assert!(!fold(&ops).refused_changed_state);
    }

    /// Snapshot then restore gives equal views and equal answers from the
    /// rebuilt indexes.
    #[test]
    fn snapshot_then_restore_gives_an_equal_state(ops in ops()) {
        let t = fold(&ops);
        let bytes = common::snapshot(&t.state);
        let restored = common::restore(&bytes).expect("restore");
        prop_assert_eq!(common::render(&restored), common::render(&t.state));
        for status in JobStatus::ALL {
            prop_assert_eq!(restored.count_with_status(status).expect("readable"), t.state.count_with_status(status).expect("readable"));
        }
        prop_assert_eq!(&restored, &t.state);
        // The restored state keeps folding exactly like the original.
        let (mut a, mut b) = (restored, t.state);
        for (i, op) in ops.iter().enumerate() {
            let e = event(*op, 5_000 + i as u64);
            prop_assert_eq!(a.apply(10_000 + i as Lsn, &e).is_ok(), b.apply(10_000 + i as Lsn, &e).is_ok());
        }
        prop_assert_eq!(a, b);
    }

    /// A snapshot that holds jobs by their event LSNs, restored over the
    /// events it names, gives the views it was written from: equal views,
    /// the same snapshot written again before anything is decoded, a full
    /// snapshot that restores alone, and views that keep folding alike.
    #[test]
    fn a_snapshot_from_the_log_restores_exactly(ops in ops()) {
        let t = fold(&ops);
        let bytes = common::snapshot_from_log(&t.state);
        let restored = common::restore_from_log(&bytes, &t.accepted).expect("restore");
        prop_assert_eq!(common::snapshot_from_log(&restored), bytes);
        prop_assert_eq!(common::render(&restored), common::render(&t.state));
        prop_assert_eq!(&restored, &t.state);
        let full = common::snapshot(&restored);
        prop_assert_eq!(&common::restore(&full).expect("restore in full"), &t.state);
        let (mut a, mut b) = (restored, t.state);
        let mut log = t.accepted;
        for (i, op) in ops.iter().enumerate() {
            let e = event(*op, 5_000 + i as u64);
            let lsn = 10_000 + i as Lsn;
            let accepted = a.apply(lsn, &e).is_ok();
            prop_assert_eq!(accepted, b.apply(lsn, &e).is_ok());
            if accepted {
                log.push((lsn, e));
            }
        }
        prop_assert_eq!(&a, &b);
        let again = common::restore_from_log(&common::snapshot_from_log(&a), &log).expect("again");
        prop_assert_eq!(again, b);
    }

    /// An event and its borrowed form (what replay decodes) have the same
    /// bytes, and decoding those bytes borrowed gives the borrowed form.
    #[test]
    fn a_borrowed_event_has_the_bytes_of_its_owned_event(ops in ops()) {
        for (i, op) in ops.iter().enumerate() {
            let e = event(*op, i as u64);
            let owned = postcard::to_stdvec(&e).expect("serialize");
            let borrowed = postcard::to_stdvec(&e.as_ref()).expect("serialize");
            prop_assert_eq!(&owned, &borrowed);
            let decoded: EventRef<'_> = postcard::from_bytes(&owned).expect("decode");
            prop_assert_eq!(decoded, e.as_ref());
            prop_assert_eq!(decoded.change.kind(), e.change.kind());
        }
    }

    /// A run is reported resumable exactly when a resume of it is accepted.
    #[test]
    fn resumable_exactly_when_a_resume_is_accepted(ops in ops()) {
        let t = fold(&ops);
        for job in t.state.jobs().map(|j| j.expect("materializes")) {
            for run in job.detail().expect("detail decodes").runs() {
                for code in [None, Some("v"), Some("v-new")] {
                    let reported = t
                        .state
                        .resumability(&job.id, &run.id, code, 3)
                        .expect("detail decodes")
                        .expect("exists");
                    let mut probe = t.state.clone();
                    let resume = Event {
                        at: Timestamp(9_999),
                        job: job.id.clone(),
                        change: Change::RunResumed {
                            run: run.id.clone(),
                            from: None,
                            code_version: code.map(str::to_owned),
                            allow_code_change: false,
                            attempts_max: 3,
                        },
                    };
                    let accepted = probe.apply(9_999, &resume).is_ok();
                    prop_assert_eq!(reported.is_resumable(), accepted, "{:?}", reported);
                }
            }
        }
    }
}

/// The fold of `ops`, and its snapshot body with the byte at `at` XORed
/// with `xor`.
fn edited_body(ops: &[Op], at: prop::sample::Index, xor: u8) -> (Trace, Vec<u8>) {
    let t = fold(ops);
    let mut body = common::snapshot(&t.state);
    let i = at.index(body.len());
    body[i] ^= xor;
    (t, body)
}

/// Replaces the one occurrence of `from` in `bytes` by `to`, same length.
fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at: Vec<usize> = (0..bytes.len().saturating_sub(from.len() - 1))
        .filter(|&i| &bytes[i..i + from.len()] == from)
        .collect();
    assert_eq!(at.len(), 1, "{from:?} occurs once in the snapshot");
    let mut out = bytes.to_vec();
    out[at[0]..at[0] + to.len()].copy_from_slice(to);
    out
}

/// A snapshot whose jobs repeat an id, under recomputed checksums (an
/// edit on purpose): a restore does not read every id to find that out,
/// so what it lists is what the file says, and a lookup trusts the id
/// index. Here the index still says "j" then "k", but both of its entries
/// now lead to an id "j": a lookup of "j" finds the job listed first, one
/// of "k" is a miss (never a panic, never another job under "k"), and a
/// lookup of an id the index names under another job's record is a typed
/// error.
#[test]
fn a_snapshot_that_repeats_a_job_misses_or_fails_typed() {
    let (state, _, _) = common::run_script("create j\ncreate k");
    let body = common::snapshot(&state);
    assert_eq!(common::restore(&body).expect("restore"), state);
    // Job ids are bytes of their chunk's text, one after the other; the
    // checksums are recomputed, so only the restore's checks remain.
    let mut lying = replace_once(&body, b"jk", b"jj");
    common::reseal(&mut lying);
    let restored = common::restore(&lying).expect("the head is intact");
    let ids: Vec<String> = restored
        .jobs()
        .map(|j| j.expect("materializes").id.to_string())
        .collect();
    assert_eq!(ids, ["j", "j"]);
    let j = restored
        .job(&JobId::from("j"))
        .expect("readable")
        .expect("j");
    assert_eq!(j.id.as_str(), "j");
    assert_eq!(restored.job(&JobId::from("k")).expect("readable"), None);
    // The index's entry for "j" made to name the second job: it is
    // found, and its record says "k", so the lookup fails typed.
    let mut crossed = body.clone();
    // After the head (its length at bytes 8..16) and one chunk's entry.
    let head_len = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let ids_at = usize::try_from(head_len).expect("small") + 24;
    crossed[ids_at + 12..ids_at + 16].copy_from_slice(&1u32.to_le_bytes());
    common::reseal(&mut crossed);
    let restored = common::restore(&crossed).expect("the head is intact");
    let err = restored.job(&JobId::from("j")).expect_err("index names k");
    assert_eq!(err.job, JobId::from("j"));
    assert!(err.reason.contains("names job #1, whose id is k"), "{err}");
}

/// A snapshot whose checkpoint names a run its job does not have is
/// refused, not restored with a made-up run: here the job has a run in
/// flight, so its detail is decoded at restore and the restore fails.
#[test]
fn a_snapshot_checkpoint_naming_no_run_is_refused() {
    let (state, _, _) = common::run_script("create j\nstart j r\nstep j r c1");
    let body = common::snapshot(&state);
    assert_eq!(common::restore(&body).expect("restore"), state);
    // The checkpoint: its id "c1", then its run's position, 0.
    let mut lying = replace_once(&body, &[2, b'c', b'1', 0], &[2, b'c', b'1', 1]);
    common::reseal(&mut lying);
    let err = common::restore(&lying).expect_err("no such run");
    assert!(matches!(err, SnapshotError::Detail(_)), "{err:?}");
    assert!(
        err.to_string().ends_with("checkpoint c1 names run 1 of 1"),
        "{err}"
    );
}

/// A job whose detail is still bytes when first asked for, and whose
/// detail does not agree with its summary, gives a typed error on every
/// path that reads it, and refuses every event that needs it; the rest of
/// the views are unaffected.
#[test]
fn a_lazy_detail_that_disagrees_with_its_summary_is_an_error() {
    let (state, _, _) =
        common::run_script("create j\nstart j r\nstep j r c1 in=5\ncomplete j r\ncreate k");
    let body = common::snapshot(&state);
    assert_eq!(common::restore(&body).expect("restore"), state);
    // The checkpoint's delta: 5 input tokens become 6. The summary still
    // says 5.
    let mut lying = replace_once(&body, &[2, b'c', b'1', 0, 5], &[2, b'c', b'1', 0, 6]);
    common::reseal(&mut lying);
    let restored = common::restore(&lying).expect("summaries restore");
    let j = JobId::from("j");
    let job = restored.job(&j).expect("readable").expect("job j");
    assert_eq!(job.total_steps, 1);
    let err = job.detail().expect_err("detail disagrees");
    assert_eq!(err.job, j);
    assert!(err.reason.contains("sum to 1 steps"), "{err}");
    assert_eq!(restored.run(&j, &RunId::from("r")), Err(err.clone()));
    let mut later = restored.clone();
    let refused = later
        .apply(
            100,
            &Event {
                at: Timestamp(100),
                job: j.clone(),
                change: Change::RunStarted {
                    run: RunId::from("r2"),
                    resume_from: None,
                    code_version: None,
                },
            },
        )
        .expect_err("refused");
    assert_eq!(refused.refusal, Refusal::DetailUnreadable(err));
    assert_eq!(later.events_applied(), restored.events_applied());
    assert!(
        restored
            .job(&JobId::from("k"))
            .expect("readable")
            .expect("k")
            .detail()
            .is_ok()
    );
}

/// A snapshot from a newer build is refused by version, not misread.
#[test]
fn a_snapshot_of_a_newer_version_is_refused() {
    let (state, _, _) = common::run_script("create j");
    let mut body = common::snapshot(&state);
    assert_eq!(body[0], SNAPSHOT_FORMAT_VERSION);
    body[0] = SNAPSHOT_FORMAT_VERSION + 1;
    let err = common::restore(&body).expect_err("newer version");
    assert_eq!(
        err,
        SnapshotError::UnsupportedVersion {
            found: SNAPSHOT_FORMAT_VERSION + 1
        }
    );
}

/// The head is decoded straight into views, each job's detail placed by
/// the lengths claimed so far: a body cut short anywhere, or with bytes
/// after the last detail, is refused whole, never restored in part.
#[test]
fn a_body_cut_short_or_with_bytes_left_over_is_refused() {
    let (state, _, _) = common::run_script(
        "create j\nstart j r\nstep j r c1 in=5\ncomplete j r\ncreate k\nstart k q\nstep k q c2",
    );
    let body = common::snapshot(&state);
    assert_eq!(common::restore(&body).expect("restore"), state);
    for len in 0..body.len() {
        let err = common::restore(&body[..len]).expect_err("a body cut short");
        assert!(
            matches!(err, SnapshotError::Malformed { .. }),
            "{len}: {err:?}"
        );
    }
    let mut longer = body.clone();
    longer.push(0);
    let err = common::restore(&longer).expect_err("a byte left over");
    assert_eq!(
        err.to_string(),
        "snapshot body is malformed: job #0 in the snapshot cannot be read: its chunk, of jobs from #0: 0 bytes of text and 1 of details left after its last job"
    );
}

/// A detail's bytes damaged on disk fail that detail's own checksum when
/// it is first decoded, as a typed error for that job only; the restore,
/// which reads only the head, succeeds and every other job is intact.
#[test]
fn a_damaged_detail_fails_its_own_checksum_when_first_used() {
    let (state, _, _) =
        common::run_script("create j\nstart j r\nstep j r c1 in=5\ncomplete j r\ncreate k");
    let body = common::snapshot(&state);
    let mut damaged = replace_once(&body, &[2, b'c', b'1', 0, 5], &[2, b'c', b'1', 0, 6]);
    let restored = common::restore(&damaged).expect("the head is intact");
    let j = JobId::from("j");
    let err = restored
        .job(&j)
        .expect("readable")
        .expect("job j")
        .detail()
        .expect_err("damaged");
    assert_eq!(err.job, j);
    assert!(
        err.reason.starts_with("checksum mismatch (stored 0x"),
        "{err}"
    );
    assert_eq!(
        restored
            .job(&JobId::from("k"))
            .expect("readable")
            .expect("k"),
        state.job(&JobId::from("k")).expect("readable").expect("k")
    );
    // The same damage in the head: the restore refuses the body whole.
    damaged = body.clone();
    damaged[60] ^= 1;
    let err = common::restore(&damaged).expect_err("head damaged");
    assert!(
        matches!(err, SnapshotError::HeadChecksum { stored, computed } if stored != computed),
        "{err:?}"
    );
}

/// Views with every optional field set (fingerprints, finish messages,
/// external observations, live runs of each kind, a cancelled job with a
/// live run) restore to exactly themselves.
#[test]
fn every_field_of_the_head_round_trips() {
    let (state, _, _) = common::run_script(
        "create a key=x fp=f1\nstart a r\nstep a r c1 in=3 out=4 cost=5\nask a r what?\n\
         create b key=y\nstart b r\ncomplete b r\nfinish b failed\nexternal b running\n\
         create c key=x fp=f2\nstart c r\ndelegate c r r2\ninterrupt c r2 reason=crash\n\
         create d\nstart d r\nfinish d cancelled\ncreate e key=y\nstart e r\ncomplete e r\nfinish e completed",
    );
    let body = common::snapshot(&state);
    let restored = common::restore(&body).expect("restore");
    assert_eq!(common::render(&restored), common::render(&state));
    assert_eq!(restored, state);
    assert_eq!(
        common::snapshot(&restored),
        body,
        "written again, the same bytes"
    );
}

proptest! {
    /// Any single byte of a valid body changed to any other value gives
    /// either a typed error at restore, or views whose job summaries are
    /// exactly the original's and whose every detail is exactly the
    /// original's or a typed error: never a wrong view, never a panic.
    #[test]
    fn a_body_with_one_byte_changed_restores_exactly_or_fails_typed(
        ops in ops(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (t, body) = edited_body(&ops, at, xor);
        if let Ok(restored) = common::restore(&body) {
            prop_assert_eq!(restored.job_count(), t.state.job_count());
            prop_assert_eq!(restored.events_applied(), t.state.events_applied());
            prop_assert_eq!(restored.last_lsn(), t.state.last_lsn());
            for (got, want) in restored.jobs().zip(t.state.jobs()) {
                let want = want.expect("the original materializes");
                // A job whose bytes were hit fails typed when first used.
                let Ok(got) = got else { continue };
                prop_assert_eq!(common::summary(got), common::summary(want));
                if let Ok(detail) = got.detail() {
                    prop_assert_eq!(detail, want.detail().expect("original decodes"));
                }
            }
        }
    }

    /// Any single byte of a valid body changed, and every checksum then
    /// recomputed (an edit made on purpose, past the CRCs): the restore
    /// gives a typed error or views, never a panic; views it gives have
    /// details that decode or fail typed, and write a snapshot that
    /// restores to equal views.
    #[test]
    fn a_body_edited_under_recomputed_checksums_restores_or_fails_typed(
        ops in ops(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (_, mut body) = edited_body(&ops, at, xor);
        common::reseal(&mut body);
        if let Ok(restored) = common::restore(&body) {
            let mut all_readable = true;
            for job in restored.jobs() {
                match job {
                    Ok(job) => drop(job.detail()),
                    Err(_typed) => all_readable = false,
                }
            }
            let written = restored.to_snapshot::<common::Postcard>();
            if all_readable {
                let written = written.expect("views that all materialize are written");
                let again = common::restore(&written).expect("written again");
                prop_assert_eq!(again, restored);
            } else {
                prop_assert!(written.is_err(), "a job that cannot be read is not written");
            }
        }
    }

    /// A body that names jobs' events, one byte changed and every
    /// checksum recomputed, restored over the events it was written from:
    /// a typed error at restore, or views whose details rebuild or fail
    /// typed (never a panic) and that write a snapshot restoring to equal
    /// views.
    #[test]
    fn a_body_naming_events_edited_under_recomputed_checksums_fails_typed(
        ops in ops(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let t = fold(&ops);
        let mut body = common::snapshot_from_log(&t.state);
        let i = at.index(body.len());
        body[i] ^= xor;
        common::reseal(&mut body);
        if let Ok(restored) = common::restore_from_log(&body, &t.accepted) {
            let mut all_readable = true;
            for job in restored.jobs() {
                // A job whose record does not read is not written; one
                // whose detail does not rebuild is, as it was restored.
                all_readable &= job.map(|j| j.detail().is_ok()).is_ok();
            }
            let written = restored
                .to_snapshot_with::<common::Postcard>(SnapshotDetails::FromLog { first_lsn: 0 });
            if all_readable {
                let written = written.expect("views that all materialize are written");
                let again =
                    common::restore_from_log(&written, &t.accepted).expect("written again");
                prop_assert_eq!(again, restored);
            } else {
                prop_assert!(written.is_err(), "a job that cannot be read is not written");
            }
        }
    }

    /// Arbitrary bytes under a preamble whose version, head length and
    /// head checksum are right (so that the restore reads them as a head)
    /// give a typed error or views, never a panic; any view they give has
    /// details that decode or fail with a typed error.
    #[test]
    fn arbitrary_bytes_under_a_valid_preamble_never_panic(
        head in prop::collection::vec(any::<u8>(), 64..600),
        details in prop::collection::vec(any::<u8>(), 0..200),
        jobs in 0u64..4,
        keys in 0u32..3,
    ) {
        let mut body = head;
        let head_len = body.len() as u64;
        body[0] = SNAPSHOT_FORMAT_VERSION;
        body[8..16].copy_from_slice(&head_len.to_le_bytes());
        body[36..40].copy_from_slice(&keys.to_le_bytes());
        body[40..48].copy_from_slice(&jobs.to_le_bytes());
        body.extend_from_slice(&details);
        let crc = crc32fast::hash(&body[8..head_len as usize]);
        body[4..8].copy_from_slice(&crc.to_le_bytes());
        if let Ok(restored) = common::restore(&body) {
            for job in restored.jobs() {
                let _decoded_or_typed_error = job.map(|j| j.detail().is_ok());
            }
            let _found_or_typed_error = restored.job(&JobId::from("j"));
        }
    }
}

/// The worked example of FORMAT.md ("Snapshot files"), byte for byte: if
/// this fails, the format changed and the page must change with it (and
/// `SNAPSHOT_FORMAT_VERSION` with both). The job is held by its event
/// LSNs, as the engine writes it while the log keeps every segment; held
/// in full, its detail is the second part shown there.
#[test]
fn a_snapshot_body_is_the_bytes_format_md_shows() {
    let (state, events, _) = common::run_script(
        "create j key=a\nstart j r\nstep j r c1 in=5 out=2\ncomplete j r\nfinish j completed",
    );
    let bytes = |hex: &str| -> Vec<u8> {
        hex.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect()
    };
    let want = bytes(
        "
        05 00 00 00 67 0e 37 00 55 00 00 00 00 00 00 00
        05 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00
        01 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        fe 00 00 00 00 00 00 00 7f 57 c0 aa 00 00 00 00
        01 00 00 00 61 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 ca 2e 02 9d 00 00 00 00 fd 00 00
        00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00
        00 00 00 00 00 05 00 00 00 00 00 00 00 02 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 e8 03 00
        00 00 00 00 00 ec 03 00 00 00 00 00 00 04 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 05 00 00
        00 00 00 00 00 58 5d c0 e4 01 00 00 00 01 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 01 09 01 00 00 00 00 00 6a 04 01
        01 01 01",
    );
    assert_eq!(common::snapshot_from_log(&state), want);
    let restored = common::restore_from_log(&want, &events).expect("restore");
    assert_eq!(restored, state);

    // In full: the same head (and head CRC), the chunk's CRC over its
    // changed region, detail_len 44 and its CRC in the record, and the
    // detail, its event LSNs first.
    let full = common::snapshot(&state);
    assert_eq!(full[..0x65], want[..0x65]);
    assert_eq!(full[0x65..0x69], 0x13b3_6186u32.to_le_bytes());
    assert_eq!(full[0x69..0xcd], want[0x69..0xcd]);
    assert_eq!(full[0xcd..0xd5], 44u64.to_le_bytes());
    assert_eq!(full[0xd5..0xd9], 0x40d3_2ff1u32.to_le_bytes());
    assert_eq!(full[0xd9..0xfe], want[0xd9..0xfe]);

    let detail = bytes(
        "
        04 01 01 01 01
        01 01 72 00 00 04 e9 07 01 eb 07
        00 00 00 00 00 00
        01 05 02 00 00 00 01 03 00
        01 02 63 31 00 05 02 00 00 02 00 ea 07",
    );
    assert_eq!(full[0xfe..], detail);
    assert_eq!(common::restore(&full).expect("restore"), state);
}

/// Ops over up to 200 jobs, so that a snapshot's base spans several
/// chunks of 64: a prologue creates `jobs` of them and starts a run in
/// every third, then random ops before the snapshot, then random steps
/// after it (an event, or a query: see [`lazy_step`]).
fn many_job_ops() -> impl Strategy<Value = (Vec<Op>, Vec<(u8, Op)>)> {
    let op = (
        prop::sample::select(KINDS),
        0u8..200,
        0u8..4,
        0u8..4,
        0u16..40,
    );
    (
        1u8..200,
        prop::collection::vec(op.clone(), 0..200),
        prop::collection::vec((0u8..8, op), 0..120),
    )
        .prop_map(|(jobs, before, after)| {
            let mut prologue = Vec::new();
            for j in 0..jobs {
                prologue.push((0, j, j % 4, 0, 0));
                if j % 3 == 0 {
                    prologue.push((1, j, 0, 0, 1));
                }
            }
            ([prologue, before].concat(), after)
        })
}

/// What `(kind, op)` of [`many_job_ops`] asks of the views, as text: a
/// lookup by id, a status listing and count, the newest unfinished job of
/// a fingerprint, one job of the full listing (newest first), the
/// interrupted and in-flight runs. Events are kinds 0 to 2.
fn lazy_query(state: &Projections, kind: u8, op: Op) -> String {
    let (_, j, r, _, n) = op;
    // A view as text: its summary and its runs and checkpoints (not its
    // Debug form, which shows whether the detail is still bytes).
    let show = |job: Option<&JobView>| {
        job.map(|job| {
            let detail = job.detail().map(|d| (d.runs(), d.checkpoints()));
            format!("{} {detail:?}", common::summary(job))
        })
    };
    match kind {
        3 => format!("{:?}", state.job(&JobId::from(format!("j{j}"))).map(&show)),
        4 => {
            let status = JobStatus::ALL[usize::from(r % 4)];
            let listed: Vec<String> = state
                .jobs_with_status(status)
                .expect("readable")
                .map(|j| j.id.to_string())
                .collect();
            format!(
                "{listed:?} {:?}",
                state.count_with_status(status).expect("readable")
            )
        }
        5 => format!(
            "{:?}",
            show(state.newest_unfinished_with_fingerprint(&format!("f{}", r % 2)))
        ),
        6 => format!(
            "{:?}",
            state
                .jobs()
                .rev()
                .nth(usize::from(n))
                .map(|job| show(Some(job.expect("readable"))))
        ),
        _ => {
            let runs = |it: &mut dyn Iterator<Item = &RunView>| -> Vec<String> {
                it.map(|r| format!("{}/{}", r.job, r.id)).collect()
            };
            format!(
                "{:?} {:?}",
                runs(&mut state.interrupted_runs()),
                runs(&mut state.in_flight_runs())
            )
        }
    }
}

/// Whether each status's listing holds exactly the jobs of that status,
/// in order (once a query has built the sets; a listing would build them).
fn status_sets_agree(state: &Projections) -> bool {
    JobStatus::ALL.iter().all(|&status| {
        let listed: Vec<&JobId> = match state.jobs_with_status(status) {
            Ok(jobs) => jobs.map(|j| &j.id).collect(),
            Err(_) => return false,
        };
        let filtered: Vec<&JobId> = state
            .jobs()
            .filter_map(Result::ok)
            .filter(|j| j.status == status)
            .map(|j| &j.id)
            .collect();
        listed == filtered
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Views restored from a snapshot, then queried and changed by events
    /// in any order, answer every query and end exactly as the views that
    /// replayed the same events with no snapshot.
    #[test]
    fn a_lazy_restore_answers_and_changes_like_a_replay((before, after) in many_job_ops()) {
        let t = fold(&before);
        let mut replayed = t.state;
        let body = common::snapshot(&replayed);
        let mut restored = common::restore(&body).expect("restore");
        for (i, (kind, op)) in after.into_iter().enumerate() {
            if kind <= 2 {
                let e = event(op, 100_000 + i as u64);
                let lsn = 100_000 + i as Lsn;
                prop_assert_eq!(restored.apply(lsn, &e), replayed.apply(lsn, &e));
            } else {
                prop_assert_eq!(
                    lazy_query(&restored, kind, op),
                    lazy_query(&replayed, kind, op)
                );
            }
        }
        // The status sets, built by a query in the steps above (or now),
        // were kept as the views changed.
        prop_assert!(status_sets_agree(&restored));
        prop_assert!(status_sets_agree(&replayed));
        prop_assert_eq!(common::render(&restored), common::render(&replayed));
        prop_assert_eq!(&restored, &replayed);
        prop_assert_eq!(common::snapshot(&restored), common::snapshot(&replayed));
    }

    /// A snapshot written from restored views whose jobs were never used,
    /// partly used, or all used (and their details decoded) has the same
    /// bytes as the snapshot they were restored from.
    #[test]
    fn a_snapshot_of_unmaterialized_views_has_the_bytes_of_materialized_ones(
        (before, after) in many_job_ops(),
    ) {
        let t = fold(&before);
        let body = common::snapshot(&t.state);
        let untouched = common::restore(&body).expect("restore");
        prop_assert_eq!(common::snapshot(&untouched), body.clone());
        let partly = common::restore(&body).expect("restore");
        for (kind, op) in after.iter().filter(|(kind, _)| *kind > 2) {
            let _ = lazy_query(&partly, *kind, *op);
        }
        prop_assert_eq!(common::snapshot(&partly), body.clone());
        let all = common::restore(&body).expect("restore");
        for job in all.jobs() {
            let _ = job.expect("materializes").detail().expect("decodes");
        }
        prop_assert_eq!(common::snapshot(&all), body);
    }

    /// A snapshot of many jobs (several chunks) that holds jobs by their
    /// event LSNs, restored over the events it names: written again
    /// before any job is used, or with every job materialized and no
    /// detail decoded, it has the same bytes (each job's list copied from
    /// the snapshot, its flag kept through its chunk's materialization);
    /// in full, the bytes of the replayed views; and queried and changed
    /// by events in any order, it answers and ends as the replayed views.
    #[test]
    fn a_lazy_restore_from_the_log_answers_changes_and_writes_like_a_replay(
        (before, after) in many_job_ops(),
    ) {
        let t = fold(&before);
        let mut replayed = t.state;
        let body = common::snapshot_from_log(&replayed);
        let untouched = common::restore_from_log(&body, &t.accepted).expect("restore");
        prop_assert_eq!(common::snapshot_from_log(&untouched), body.clone());
        for job in untouched.jobs() {
            let job = job.expect("materializes");
            let want = replayed.job(&job.id).expect("readable").expect("job").event_lsns();
            prop_assert!(want.is_some());
            prop_assert_eq!(job.event_lsns(), want);
        }
        prop_assert_eq!(common::snapshot_from_log(&untouched), body.clone());
        prop_assert_eq!(common::snapshot(&untouched), common::snapshot(&replayed));

        let mut restored = common::restore_from_log(&body, &t.accepted).expect("restore");
        let mut log = t.accepted;
        for (i, (kind, op)) in after.into_iter().enumerate() {
            if kind <= 2 {
                let e = event(op, 100_000 + i as u64);
                let lsn = 100_000 + i as Lsn;
                let applied = restored.apply(lsn, &e);
                prop_assert_eq!(&applied, &replayed.apply(lsn, &e));
                if applied.is_ok() {
                    log.push((lsn, e));
                }
            } else {
                prop_assert_eq!(
                    lazy_query(&restored, kind, op),
                    lazy_query(&replayed, kind, op)
                );
            }
        }
        prop_assert_eq!(&restored, &replayed);
        let written = common::snapshot_from_log(&restored);
        prop_assert_eq!(&written, &common::snapshot_from_log(&replayed));
        let again = common::restore_from_log(&written, &log).expect("again");
        prop_assert_eq!(again, replayed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any byte of a body of many jobs (several chunks, an id index of
    /// many entries) changed, and every checksum recomputed: the restore,
    /// and every query and event after it, give answers or typed errors,
    /// never a panic.
    #[test]
    fn a_many_job_body_edited_under_recomputed_checksums_never_panics(
        (before, after) in many_job_ops(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (_, mut body) = edited_body(&before, at, xor);
        common::reseal(&mut body);
        let Ok(mut restored) = common::restore(&body) else {
            return Ok(());
        };
        for (k, (kind, op)) in after.into_iter().enumerate() {
            let (_, j, r, _, n) = op;
            match kind {
                0..=2 => drop(restored.apply(200_000 + k as Lsn, &event(op, 200_000 + k as u64))),
                3 => drop(restored.job(&JobId::from(format!("j{j}"))).map(|j| j.map(JobView::detail))),
                4 => {
                    let status = JobStatus::ALL[usize::from(r % 4)];
                    drop(restored.jobs_with_status(status).map(Iterator::count));
                    drop(restored.count_with_status(status));
                }
                5 => drop(restored.newest_unfinished_with_fingerprint(&format!("f{}", r % 2))),
                6 => drop(restored.jobs().rev().nth(usize::from(n)).map(|j| j.map(JobView::detail))),
                _ => drop((restored.interrupted_runs().count(), restored.in_flight_runs().count())),
            }
        }
        drop(restored.to_snapshot::<common::Postcard>());
    }
}

/// Views of `jobs` finished jobs (each created, run, finished) and one
/// running job, "live", and their snapshot body.
fn finished_jobs(jobs: usize) -> (Projections, Vec<u8>) {
    let mut script = String::new();
    for j in 0..jobs {
        script.push_str(&format!(
            "create j{j:03}\nstart j{j:03} r\ncomplete j{j:03} r\nfinish j{j:03} completed\n"
        ));
    }
    script.push_str("create live\n");
    let (state, _, _) = common::run_script(&script);
    let body = common::snapshot(&state);
    (state, body)
}

/// Where the id index of `body` starts, and its entry count (FORMAT.md:
/// after the head and the chunk table).
fn id_index(body: &[u8]) -> (usize, usize) {
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let head_len = usize::try_from(u64_at(8)).expect("small");
    let jobs = usize::try_from(u64_at(40)).expect("small");
    (head_len + jobs.div_ceil(64) * 24, jobs)
}

/// A base whose id index is no longer sorted (reversed, under
/// recomputed checksums): every lookup finds the right job, misses, or
/// fails typed; none panics or reads out of the body. Most miss.
#[test]
fn an_unsorted_id_index_misses_or_fails_typed() {
    let (state, body) = finished_jobs(150);
    let (at, count) = id_index(&body);
    let mut lying = body.clone();
    let entries: Vec<Vec<u8>> = (0..count)
        .map(|k| body[at + k * 16..at + (k + 1) * 16].to_vec())
        .collect();
    for (k, entry) in entries.iter().rev().enumerate() {
        lying[at + k * 16..at + (k + 1) * 16].copy_from_slice(entry);
    }
    common::reseal(&mut lying);
    let restored = common::restore(&lying).expect("the head is intact");
    let mut misses = 0;
    for job in state.jobs() {
        let id = &job.expect("materializes").id;
        match restored.job(id) {
            Ok(Some(found)) => assert_eq!(&found.id, id),
            Ok(None) => misses += 1,
            Err(e) => assert_eq!(&e.job, id),
        }
    }
    assert!(misses > 100, "{misses} misses");
    // Listing does not go through the index: every job is there.
    assert_eq!(restored.jobs().filter(Result::is_ok).count(), 151);
    // A snapshot written from these views does not take the base's order
    // for the ids (it is checked, and fails): it sorts them, and gives
    // the original bytes.
    assert_eq!(common::snapshot(&restored), body);
}

/// A base whose id index names a position past the jobs, or an id span
/// out of the body (under recomputed checksums), fails the lookups that
/// reach it with a typed error.
#[test]
fn an_id_index_pointing_outside_fails_typed() {
    let (_, body) = finished_jobs(3);
    let (at, count) = id_index(&body);
    assert_eq!(count, 4);
    // The first entry ("j000") names job 99 of 4.
    let mut far = body.clone();
    far[at + 12..at + 16].copy_from_slice(&99u32.to_le_bytes());
    common::reseal(&mut far);
    let restored = common::restore(&far).expect("the head is intact");
    let err = restored.job(&JobId::from("j000")).expect_err("position 99");
    assert!(err.reason.contains("no job at position 99 of 4"), "{err}");
    // The same entry's id said to be at byte 2^40.
    let mut out = body.clone();
    out[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    common::reseal(&mut out);
    let restored = common::restore(&out).expect("the head is intact");
    let err = restored
        .job(&JobId::from("j000"))
        .expect_err("out of the body");
    assert!(err.reason.contains("out of the body"), "{err}");
}

/// A finished job's record with a status byte out of range, under
/// recomputed checksums: the restore (which does not read that record)
/// succeeds; every query that reaches the job, or its chunk, fails
/// typed; the running job, in another chunk, and its queries are intact;
/// the views cannot be written as a snapshot.
#[test]
fn a_bad_status_byte_in_the_base_fails_typed_when_reached() {
    let (state, body) = finished_jobs(100);
    // Job j010's record: the 11th of the first chunk's region, which
    // starts after the id index.
    let (at, count) = id_index(&body);
    let record = at + count * 16 + 10 * 128;
    assert_eq!(body[record + 120], 1, "j010 is completed");
    let mut lying = body.clone();
    lying[record + 120] = 7;
    common::reseal(&mut lying);
    let restored = common::restore(&lying).expect("the head is intact");
    let err = restored.job(&JobId::from("j010")).expect_err("status 7");
    assert_eq!(err.job, JobId::from("j010"));
    assert!(err.reason.contains("its record: status 7"), "{err}");
    // Its neighbours in the chunk fail with the same error.
    assert_eq!(
        restored.job(&JobId::from("j001")),
        Err(err.clone()),
        "one chunk, one error"
    );
    assert_eq!(
        restored.count_with_status(JobStatus::Completed),
        Err(err.clone())
    );
    assert!(restored.jobs_with_status(JobStatus::Failed).is_err());
    assert_eq!(restored.jobs().filter(Result::is_err).count(), 64);
    // The second chunk and the running job are intact.
    let live = restored
        .job(&JobId::from("live"))
        .expect("readable")
        .expect("live");
    assert_eq!(
        Some(live),
        state.job(&JobId::from("live")).expect("readable")
    );
    assert_eq!(
        restored.job(&JobId::from("j099")).expect("readable"),
        state.job(&JobId::from("j099")).expect("readable")
    );
    assert_eq!(restored.count_with_status(JobStatus::Running), Ok(1));
    assert!(matches!(
        restored.to_snapshot::<common::Postcard>(),
        Err(SnapshotError::Unwritable(_))
    ));
    // An event for the job is refused, and changes nothing.
    let mut later = restored.clone();
    let refused = later
        .apply(
            1_000,
            &Event {
                at: Timestamp(1_000),
                job: JobId::from("j010"),
                change: Change::RunStarted {
                    run: RunId::from("again"),
                    resume_from: None,
                    code_version: None,
                },
            },
        )
        .expect_err("refused");
    assert_eq!(refused.refusal, Refusal::DetailUnreadable(err));
    assert_eq!(later.events_applied(), restored.events_applied());
}

/// A chunk table entry whose offsets point past the body (under
/// recomputed checksums) fails the chunks that read it, typed. Three
/// chunks, the running job in the third (a restore materializes it): the
/// second chunk's region said to start at byte 2^40 (which ends the first
/// chunk there too) fails the first two chunks when reached; the same
/// done to the third chunk fails the restore; the first chunk's detail
/// offset moved fails the first chunk only.
#[test]
fn a_chunk_entry_pointing_outside_fails_typed() {
    let (_, body) = finished_jobs(150);
    let head_len = usize::try_from(u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")))
        .expect("small");
    let far = (1u64 << 40).to_le_bytes();
    let edited = |at: usize| {
        let mut b = body.clone();
        b[at..at + 8].copy_from_slice(&far);
        common::reseal(&mut b);
        b
    };
    let restored = common::restore(&edited(head_len + 24)).expect("the third chunk is intact");
    for (id, from) in [("j000", "#0"), ("j064", "#64")] {
        let err = restored.job(&JobId::from(id)).expect_err("out of the body");
        assert!(
            err.reason
                .contains(&format!("its chunk, of jobs from {from}")),
            "{err}"
        );
    }
    assert!(
        restored
            .job(&JobId::from("j149"))
            .expect("readable")
            .is_some()
    );
    match common::restore(&edited(head_len + 48)) {
        Err(SnapshotError::Malformed { reason }) => {
            assert!(reason.contains("its chunk, of jobs from #128"), "{reason}")
        }
        other => panic!("expected a malformed body, got {other:?}"),
    }
    let restored = common::restore(&edited(head_len + 8)).expect("the third chunk is intact");
    let err = restored.job(&JobId::from("j000")).expect_err("first chunk");
    assert!(err.reason.contains("its chunk, of jobs from #0"), "{err}");
    assert!(
        restored
            .job(&JobId::from("j064"))
            .expect("readable")
            .is_some()
    );
}

/// The listing rows of `state` the way a listing built them before
/// `job_rows`: each job materialized (newest first, or from its status's
/// set), then [`JobSummary::from`] its view. A status set that fails is one
/// error row.
fn rows_from_views(
    state: &Projections,
    status: Option<JobStatus>,
) -> Vec<Result<JobSummary, DetailError>> {
    match status {
        None => state
            .jobs()
            .rev()
            .map(|j| j.map(JobSummary::from))
            .collect(),
        Some(status) => match state.jobs_with_status(status) {
            Ok(jobs) => jobs.rev().map(|j| Ok(JobSummary::from(j))).collect(),
            Err(e) => vec![Err(e)],
        },
    }
}

/// The listing rows `job_rows` gives, in the same shape.
fn rows_listed(
    state: &Projections,
    status: Option<JobStatus>,
) -> Vec<Result<JobSummary, DetailError>> {
    match state.job_rows(status) {
        Ok(rows) => rows.collect(),
        Err(e) => vec![Err(e)],
    }
}

/// A page of rows with one key, as the engine's listing takes it: rows
/// of other keys skipped, then `offset` rows, then at most `limit`, an
/// error ending the page.
fn page(
    rows: Vec<Result<JobSummary, DetailError>>,
    key: Option<&str>,
    offset: usize,
    limit: usize,
) -> Result<Vec<JobSummary>, DetailError> {
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        if key.is_some_and(|k| *row.key != *k) {
            continue;
        }
        out.push(row);
    }
    Ok(out.into_iter().skip(offset).take(limit).collect())
}

/// How many chunks of the base are materialized, from the views' Debug
/// form (the base shows its count there).
fn chunks_materialized(state: &Projections) -> String {
    let debug = format!("{state:?}");
    debug
        .split("chunks_materialized: ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ', '}']).next())
        .unwrap_or("none")
        .to_owned()
}

/// Like [`many_job_ops`], but most jobs of the prologue finish (after a
/// run with a step, some with an external status), so that most chunks
/// of the base hold no unfinished job and stay bytes after a restore.
fn many_finished_job_ops() -> impl Strategy<Value = (Vec<Op>, Vec<(u8, Op)>)> {
    let op = (
        prop::sample::select(KINDS),
        0u8..=255,
        0u8..4,
        0u8..4,
        0u16..40,
    );
    let ops = prop::collection::vec(op, 0..20);
    (1u8..=255, 2u8..40, ops, many_job_ops()).prop_map(
        |(jobs, unfinished_every, ops, (_, after))| {
            let mut prologue = Vec::new();
            for j in 0..jobs {
                prologue.push((0, j, j % 4, 0, 0));
                prologue.push((1, j, 0, 0, 1));
                prologue.push((2, j, 0, j % 4, u16::from(j)));
                if j % 7 == 0 {
                    prologue.push((13, j, 0, 0, 0));
                }
                if j % unfinished_every != 0 {
                    prologue.push((8, j, 0, 0, 0));
                    prologue.push((12, j, 0, 0, u16::from(j)));
                }
            }
            // A few random ops after, so that a few chunks are materialized
            // at restore (a job continued is unfinished).
            ([prologue, ops].concat(), after)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For views restored from a snapshot, then queried and changed in any
    /// order, the rows `job_rows` lists (all jobs, by status, by key, in
    /// pages) are exactly those `JobSummary::from` makes of the materialized
    /// views, and listing them materializes no chunk.
    #[test]
    fn listing_rows_from_records_gives_the_rows_of_the_views(
        (before, after) in prop_oneof![many_job_ops(), many_finished_job_ops()],
        key in prop::sample::select(&["agent", "other"][..]),
        offset in 0usize..80,
        limit in 1usize..120,
    ) {
        let t = fold(&before);
        let body = common::snapshot(&t.state);
        // Two copies that take the same steps: one listed the old way
        // (which materializes), one the new way (which must not).
        let mut listed = common::restore(&body).expect("restore");
        let mut viewed = common::restore(&body).expect("restore");
        for (i, (kind, op)) in after.into_iter().enumerate() {
            if kind <= 2 {
                let e = event(op, 100_000 + i as u64);
                let lsn = 100_000 + i as Lsn;
                prop_assert_eq!(listed.apply(lsn, &e), viewed.apply(lsn, &e));
            } else if kind == 7 {
                let chunks = chunks_materialized(&listed);
                prop_assert_eq!(rows_listed(&listed, None), rows_from_views(&viewed, None));
                prop_assert_eq!(chunks_materialized(&listed), chunks);
            } else {
                prop_assert_eq!(lazy_query(&listed, kind, op), lazy_query(&viewed, kind, op));
            }
        }
        let chunks = chunks_materialized(&listed);
        let all = rows_listed(&listed, None);
        prop_assert_eq!(chunks_materialized(&listed), chunks);
        prop_assert_eq!(&all, &rows_from_views(&viewed, None));
        prop_assert_eq!(all.len(), listed.job_count());
        for status in [None, Some(JobStatus::Running), Some(JobStatus::Completed),
            Some(JobStatus::Failed), Some(JobStatus::Cancelled)]
        {
            prop_assert_eq!(rows_listed(&listed, status), rows_from_views(&viewed, status));
            for key in [None, Some(key)] {
                prop_assert_eq!(
                    page(rows_listed(&listed, status), key, offset, limit),
                    page(rows_from_views(&viewed, status), key, offset, limit)
                );
            }
        }
    }

    /// Any byte of a body of many jobs changed, and every checksum
    /// recomputed: where the restore succeeds, the rows `job_rows` lists
    /// are those of the materialized views, and a chunk that fails gives
    /// each of its jobs the same typed error materializing it gives.
    #[test]
    fn listing_rows_of_an_edited_body_fail_as_the_views_do(
        (before, _after) in many_finished_job_ops(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (_, mut body) = edited_body(&before, at, xor);
        common::reseal(&mut body);
        let (Ok(listed), Ok(viewed)) = (common::restore(&body), common::restore(&body)) else {
            return Ok(());
        };
        let first = rows_listed(&listed, None);
        prop_assert_eq!(&first, &rows_from_views(&viewed, None));
        // Listed again (chunks that passed their checksum are not summed
        // again), the same rows and errors.
        prop_assert_eq!(rows_listed(&listed, None), first);
        for status in JobStatus::ALL {
            prop_assert_eq!(
                rows_listed(&listed, Some(status)),
                rows_from_views(&viewed, Some(status))
            );
        }
    }
}

/// A finished job's record with a status byte out of range, under
/// recomputed checksums: listing the rows reads the running job and the
/// intact chunk, then gives each job of the bad chunk the typed error a
/// lookup of it gives, and materializes nothing new.
#[test]
fn listing_rows_reaching_a_bad_chunk_fails_typed() {
    let (state, body) = finished_jobs(100);
    let (at, count) = id_index(&body);
    let record = at + count * 16 + 10 * 128;
    assert_eq!(body[record + 120], 1, "j010 is completed");
    let mut lying = body;
    lying[record + 120] = 7;
    common::reseal(&mut lying);
    let restored = common::restore(&lying).expect("the head is intact");
    let chunks = chunks_materialized(&restored);
    assert_eq!(chunks, "1", "the running job's chunk");
    let rows = rows_listed(&restored, None);
    assert_eq!(chunks_materialized(&restored), chunks);
    assert_eq!(rows.len(), 101);
    let want: Vec<_> = state
        .jobs()
        .rev()
        .take(37)
        .map(|j| j.map(JobSummary::from))
        .collect();
    assert_eq!(rows[..37], want[..], "live and j099..j064 read");
    let err = restored.job(&JobId::from("j010")).expect_err("status 7");
    assert!(err.reason.contains("its record: status 7"), "{err}");
    assert!(
        rows[37..].iter().all(|r| r.as_ref() == Err(&err)),
        "{rows:?}"
    );
    assert_eq!(rows, rows_from_views(&restored, None));
    assert_eq!(
        rows_listed(&restored, Some(JobStatus::Completed)),
        vec![Err(err)]
    );
}
