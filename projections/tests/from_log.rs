//! A snapshot may hold a job as the LSNs of its events, its runs and
//! checkpoints rebuilt from the log on first use. These tests exist so
//! that a list of LSNs that lies, under checksums that hold (another
//! job's event, an event past the log's end, LSNs that do not increase, a
//! list that skips an event), gives a typed error for that job alone,
//! never a wrong view and never a panic; and so that views restored
//! without a log say so rather than show a job without its runs.

mod common;

use runlog_projections::*;

/// Two jobs whose events interleave: `j` at LSNs 0, 2, 4, 6, 8 and `k`
/// at 1, 3, 5, 7, 9. Each one's detail in the snapshot is `04 02 02 02 02`.
const SCRIPT: &str = "
    create j key=a
    create k key=a
    start j r
    start k r
    step j r c1 in=5 out=2
    step k r c1 in=1 out=1
    complete j r
    complete k r
    finish j completed
    finish k completed
";

/// Offsets in the snapshot body of `SCRIPT`'s views (FORMAT.md, body
/// version 5): job `j`'s record, the first of the base's regions (after
/// the 80-byte preamble and the key "a", which end the head, then the
/// one chunk's table entry and the two jobs' id index entries), and its
/// last LSN in it; where the preamble says the details start.
const RECORD_J: usize = 80 + 4 + 1 + 24 + 2 * 16;
const LAST_LSN: usize = 64;
const DETAILS_AT: usize = 64;

/// Where the details start in `body`.
fn details_at(body: &[u8]) -> usize {
    u64::from_le_bytes(
        body[DETAILS_AT..DETAILS_AT + 8]
            .try_into()
            .expect("8 bytes"),
    ) as usize
}

/// The views of `SCRIPT`, their events, and their snapshot body holding
/// both jobs by their event LSNs.
fn setup() -> (Projections, Vec<(Lsn, Event)>, Vec<u8>) {
    let (state, events, _) = common::run_script(SCRIPT);
    let body = common::snapshot_from_log(&state);
    assert_eq!(RECORD_J + 2 * 128 + 2, details_at(&body));
    assert_eq!(body[details_at(&body)..], [4, 2, 2, 2, 2, 4, 2, 2, 2, 2]);
    (state, events, body)
}

/// `j`'s list replaced by `list` (4 bytes), its last LSN by `last`, the
/// checksums recomputed; restored over the script's events. Returns `j`'s
/// detail error, after checking that `k` still reads exactly.
fn lie(list: [u8; 4], last: Lsn) -> DetailError {
    let (state, events, mut body) = setup();
    let at = details_at(&body);
    body[at + 1..at + 5].copy_from_slice(&list);
    body[RECORD_J + LAST_LSN..RECORD_J + LAST_LSN + 8].copy_from_slice(&last.to_le_bytes());
    common::reseal(&mut body);
    let restored = common::restore_from_log(&body, &events).expect("the head holds");
    let (j, k) = (JobId::from("j"), JobId::from("k"));
    assert_eq!(
        restored.job(&k),
        state.job(&k),
        "the other job reads exactly"
    );
    let err = restored
        .job(&j)
        .expect("readable")
        .expect("j")
        .detail()
        .expect_err("a lying list");
    assert_eq!(err.job, j);
    // Nothing about j's runs can be decided either.
    let mut later = restored.clone();
    let refused = later
        .apply(100, &common::parse_event("start j r2", 2_000))
        .expect_err("refused");
    assert_eq!(refused.refusal, Refusal::DetailUnreadable(err.clone()));
    err
}

#[test]
fn an_honest_list_restores_exactly() {
    let (state, events, body) = setup();
    let restored = common::restore_from_log(&body, &events).expect("restore");
    assert_eq!(restored, state);
    assert_eq!(common::render(&restored), common::render(&state));
}

#[test]
fn a_list_naming_another_jobs_event_is_a_typed_error() {
    let err = lie([1, 3, 2, 2], 8);
    assert!(
        err.reason.contains("the event at LSN 1 is of job k"),
        "{err}"
    );
}

#[test]
fn a_list_past_the_end_of_the_log_is_a_typed_error() {
    let err = lie([2, 2, 2, 100], 106);
    assert!(
        err.reason
            .contains("its event at LSN 106 cannot be read: no event at LSN 106"),
        "{err}"
    );
}

#[test]
fn a_list_that_does_not_increase_is_a_typed_error() {
    let err = lie([2, 0, 4, 2], 8);
    assert!(err.reason.contains("a distance of 0 after LSN 2"), "{err}");
}

#[test]
fn a_list_ending_elsewhere_than_the_summary_is_a_typed_error() {
    let err = lie([2, 2, 2, 1], 8);
    assert!(
        err.reason
            .contains("its event LSNs end at 7, its summary says 8"),
        "{err}"
    );
}

/// A list that skips the job's step (distances 2, 4, 2, the first written
/// as the two-byte varint `82 00` to keep the length: LSNs 0, 2, 6, 8)
/// makes a job whose events all apply, but without the step its summary
/// counts.
#[test]
fn a_list_skipping_an_event_is_a_typed_error() {
    let err = lie([0x82, 0x00, 4, 2], 8);
    assert!(
        err.reason
            .contains("its events make a job whose total_steps differs from its summary"),
        "{err}"
    );
}

/// Views restored without a log to read from cannot rebuild a job held by
/// its event LSNs: a typed error, not a job without runs.
#[test]
fn without_a_log_a_job_held_by_its_events_is_a_typed_error() {
    let (state, _, body) = setup();
    let restored = common::restore(&body).expect("the head holds");
    let j = JobId::from("j");
    let err = restored
        .job(&j)
        .expect("readable")
        .expect("j")
        .detail()
        .expect_err("no log");
    assert!(err.reason.contains("no log to read them from"), "{err}");
    // The summary is right all the same.
    assert_eq!(
        common::summary(restored.job(&j).expect("readable").expect("j")),
        common::summary(state.job(&j).expect("readable").expect("j"))
    );
}
