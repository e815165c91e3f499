//! The transition table, exhaustively: every event kind tried in every run
//! and job state, against the expected answer written out as a table. A
//! transition the docs allow must be accepted; every other pair must be
//! refused with the right reason and leave the views unchanged. This guards
//! against a state machine that drifts from its documented table.

mod common;
use common::{parse_event, run_script};
use runlog_projections::{BlockedReason, Refusal};

/// How each state is reached. Run `r1` of job `j` is the subject; `c` is a
/// child of `r1` where one exists.
const SETUPS: &[(&str, &str)] = &[
    ("running", "create j\nstart j r1"),
    ("awaiting", "create j\nstart j r1\nask j r1 q"),
    ("delegating", "create j\nstart j r1\ndelegate j r1 c"),
    (
        "delegating-done",
        "create j\nstart j r1\ndelegate j r1 c\ncomplete j c",
    ),
    ("interrupted", "create j\nstart j r1\ninterrupt j r1"),
    (
        "interrupted-awaiting",
        "create j\nstart j r1\nask j r1 q\ninterrupt j r1",
    ),
    ("completed", "create j\nstart j r1\ncomplete j r1"),
    ("failed", "create j\nstart j r1\nfail j r1"),
    (
        "job-completed",
        "create j\nstart j r1\ncomplete j r1\nfinish j completed",
    ),
    (
        "job-failed",
        "create j\nstart j r1\nfail j r1\nfinish j failed",
    ),
    ("job-cancelled", "create j\nstart j r1\nfinish j cancelled"),
];

/// The events tried in each state.
const EVENTS: &[(&str, &str)] = &[
    ("step", "step j r1 new-cp in=1 out=1"),
    ("phase", "phase j r1 0 p"),
    ("deleg", "delegate j r1 c2"),
    ("return", "return j r1 c"),
    ("ask", "ask j r1 q"),
    ("answer", "answer j r1 a"),
    ("complete", "complete j r1"),
    ("fail", "fail j r1"),
    ("interrupt", "interrupt j r1"),
    ("resume", "resume j r1"),
    ("start", "start j r9"),
    ("finish", "finish j completed"),
    ("cancel", "finish j cancelled"),
    ("external", "external j running"),
];

/// Expected answers. ok: accepted. Otherwise the refusal: fin = run
/// finished, nr = run not running, nai = not awaiting input, nwc = not
/// waiting for that child, cnf = child not finished, nres = not resumable,
/// rif = runs in flight, jf = job finished, jc = job cancelled.
const TABLE: &str = "
setup                 step phase deleg return ask answer complete fail interrupt resume start finish cancel external
running               ok   ok    ok    nwc    ok  nai    ok       ok   ok        nres   ok    rif    ok     ok
awaiting              nr   nr    nr    nwc    nr  ok     nr       ok   ok        nres   ok    rif    ok     ok
delegating            nr   nr    nr    cnf    nr  nai    nr       ok   ok        nres   ok    rif    ok     ok
delegating-done       nr   nr    nr    ok     nr  nai    nr       ok   ok        nres   ok    rif    ok     ok
interrupted           nr   nr    nr    nwc    nr  nai    nr       ok   nr        ok     ok    ok     ok     ok
interrupted-awaiting  nr   nr    nr    nwc    nr  ok     nr       ok   nr        nres   ok    ok     ok     ok
completed             fin  fin   fin   nwc    fin nai    fin      fin  fin       nres   ok    ok     ok     ok
failed                fin  fin   fin   nwc    fin nai    fin      fin  fin       nres   ok    ok     ok     ok
job-completed         jf   jf    jf    jf     jf  jf     jf       jf   jf        jf     ok    jf     ok     ok
job-failed            jf   jf    jf    jf     jf  jf     jf       jf   jf        jf     ok    jf     ok     ok
job-cancelled         jc   jc    jc    jc     jc  jc     jc       jc   jc        jc     jc    jc     jc     jc
";

fn code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::RunFinished => "fin",
        Refusal::RunNotRunning => "nr",
        Refusal::NotAwaitingInput => "nai",
        Refusal::NotWaitingForChild { .. } => "nwc",
        Refusal::ChildNotFinished { .. } => "cnf",
        Refusal::NotResumable(_) => "nres",
        Refusal::RunsInFlight { .. } => "rif",
        Refusal::JobFinished => "jf",
        Refusal::JobCancelled => "jc",
        other => panic!("unexpected refusal in the table: {other:?}"),
    }
}

#[test]
fn every_event_in_every_state_matches_the_table() {
    let mut lines = TABLE.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header.len(), EVENTS.len() + 1);
    for (column, (name, _)) in header[1..].iter().zip(EVENTS) {
        assert_eq!(column, name, "table columns follow EVENTS");
    }
    let mut rows = 0;
    let mut mismatches = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let setup = SETUPS
            .iter()
            .find(|(name, _)| *name == cells[0])
            .unwrap_or_else(|| panic!("no setup named {}", cells[0]))
            .1;
        rows += 1;
        for ((event_name, event_line), expected) in EVENTS.iter().zip(&cells[1..]) {
            let (mut state, applied, _) = run_script(setup);
            let before = state.clone();
            let event = parse_event(event_line, 9_999);
            let got = match state.apply(applied.len() as u64, &event) {
                Ok(()) => "ok",
                Err(e) => {
                    assert_eq!(state, before, "refused {event_name} changed the views");
                    code(&e.refusal)
                }
            };
            if got != *expected {
                mismatches.push(format!(
                    "{} / {event_name}: expected {expected}, got {got}",
                    cells[0]
                ));
            }
        }
    }
    assert_eq!(rows, SETUPS.len(), "every setup has a row");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Refusals the table cannot show: ids that exist or do not, and checks on
/// an event's own arguments.
#[test]
fn identity_and_argument_refusals() {
    let cases: &[(&str, &str, Refusal)] = &[
        ("", "step j r1 c1", Refusal::UnknownJob),
        ("create j", "create j", Refusal::JobExists),
        ("create j", "step j nobody c1", Refusal::UnknownRun),
        ("create j\nstart j r1", "start j r1", Refusal::RunExists),
        (
            "create j\nstart j r1\nstart j r2",
            "delegate j r1 r2",
            Refusal::RunExists,
        ),
        (
            "create j\nstart j r1\nstep j r1 c1",
            "step j r1 c1",
            Refusal::CheckpointExists {
                checkpoint: "c1".into(),
            },
        ),
        (
            "create j\nstart j r1\nphase j r1 4 build",
            "phase j r1 4 build-again",
            Refusal::PhaseAlreadyCompleted { position: 4 },
        ),
        (
            "create j\ncreate k\nstart k r1\nstep k r1 foreign",
            "start j r1 from=foreign",
            Refusal::UnknownCheckpoint {
                checkpoint: "foreign".into(),
            },
        ),
        (
            "create j\ncreate k\nstart k r1\nstep k r1 foreign\nstart j r1\ninterrupt j r1",
            "resume j r1 from=foreign",
            Refusal::UnknownCheckpoint {
                checkpoint: "foreign".into(),
            },
        ),
        (
            "create j\nstart j r1\ndelegate j r1 c\ncomplete j c",
            "return j r1 other",
            Refusal::NotWaitingForChild {
                child: "other".into(),
            },
        ),
        (
            "create j\nstart j r1 code=v1\ninterrupt j r1",
            "resume j r1 code=v2",
            Refusal::NotResumable(BlockedReason::CodeVersionDiffers {
                recorded: Some("v1".into()),
                current: Some("v2".into()),
            }),
        ),
        (
            "create j\nstart j r1\ninterrupt j r1",
            "resume j r1 max=0",
            Refusal::NotResumable(BlockedReason::AttemptsExhausted {
                attempts: 0,
                max: 0,
            }),
        ),
        (
            "create j\nstart j r1\ndelegate j r1 c\nfail j r1\ninterrupt j c",
            "resume j c",
            Refusal::NotResumable(BlockedReason::ParentFinished),
        ),
    ];
    for (setup, line, expected) in cases {
        let (mut state, applied, _) = run_script(setup);
        let before = state.clone();
        let err = state
            .apply(applied.len() as u64, &parse_event(line, 9_999))
            .expect_err(line);
        assert_eq!(&err.refusal, expected, "`{line}` after `{setup}`");
        assert_eq!(state, before, "`{line}` was refused but changed the views");
    }
}

/// What the table marks `ok` with a code change must still be possible when
/// the host says so.
#[test]
fn a_resume_on_other_code_is_accepted_when_allowed() {
    let (state, _, _) = run_script(
        "create j\nstart j r1 code=v1\ninterrupt j r1\nresume j r1 code=v2 allow\nstep j r1 c1",
    );
    let run = state
        .run(&"j".into(), &"r1".into())
        .expect("detail decodes")
        .expect("run");
    assert_eq!(run.code_version.as_deref(), Some("v2"));
    assert_eq!(run.recovery_attempts, 1);
    assert_eq!(run.steps, 1);
}

/// A refusal names job, run, state and event in one sentence.
#[test]
fn a_transition_error_reads_as_one_sentence() {
    let (mut state, _, _) = run_script("create j\nstart j r1\ncomplete j r1");
    let err = state
        .apply(3, &parse_event("step j r1 c1", 5))
        .expect_err("step on a finished run");
    assert_eq!(
        err.to_string(),
        "refused step_recorded for job j, run r1 (job running, run completed): the run has finished"
    );
}
