//! Replay: folding the log's records into the views, at open and for a
//! read-only view as of a point.
//!
//! Each record goes through two stages: the log checks it and the codec
//! decodes it into a borrowed [`EventRef`] (the first), then the views
//! apply it (the second). The two cost about the same, so when a segment
//! holds enough records to pay for a thread, the first stage runs on a
//! helper thread and hands the second batches of events in LSN order
//! (`pipelined`); otherwise — a small segment, a process limited to one
//! CPU, or no thread to be had — one thread does both (`sequential`).
//! Both give the same views, the same count and the same error: the first
//! failure in LSN order — a bad record, an event that does not decode or
//! is of a newer format, or a refused transition — ends the replay, and
//! nothing after it is applied.

use crate::codec;
use crate::error::EngineError;
use crate::query::Source;
use runlog_log::SegmentRecords;
use runlog_projections::{EventRef, Lsn, Projections, Timestamp};
use std::ops::ControlFlow;
use std::sync::mpsc::{self, Receiver, SyncSender};

/// When replay stops.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stop {
    Never,
    /// Before this LSN.
    BeforeLsn(Lsn),
    /// Before the first event stamped after this time.
    AfterTime(Timestamp),
}

/// Bytes left in a segment from which its replay is pipelined. Starting and
/// joining a thread costs some tens of microseconds; 256 KiB is about a
/// thousand events of 200-byte checkpoints, a millisecond of work.
pub(crate) const PIPELINE_BYTES_MIN: usize = 256 * 1024;

/// Events per batch handed from the first stage to the second: enough that
/// the hand-over (a channel send, often a wake-up of the other thread) is
/// rare — 256 made eight times the context switches for no fewer
/// instructions — and a batch (about 120 bytes an event) is 240 KiB.
const BATCH_LEN: usize = 2048;

/// Events in the first batch of a segment, which the second stage waits
/// for.
const BATCH_LEN_FIRST: usize = 64;

/// Decoded batches the first stage may run ahead of the second by: 16 of
/// 2,048 events (about 4 MB) are about 10 ms of applying, so that the second
/// stage does not run dry while the first waits for a CPU on a busy
/// machine (with 4, it held 2.5 ms; 16 made a third fewer context
/// switches per 1M-event open on the shared test machine).
const BATCHES_AHEAD: usize = 16;

/// Events of one batch, each with its LSN.
type Batch<'s> = Vec<(Lsn, EventRef<'s>)>;

/// Replays the log from `from` into `views`. Returns the number of events
/// applied; `last_at` is the timestamp of the last one.
pub(crate) fn replay(
    source: &dyn Source,
    views: &mut Projections,
    from: Lsn,
    stop: Stop,
    last_at: &mut Timestamp,
) -> Result<u64, EngineError> {
    replay_with(source, views, from, stop, last_at, PIPELINE_BYTES_MIN, true)
}

/// [`replay`], pipelining the segments that have at least
/// `pipeline_bytes_min` bytes left to walk — if `check_cpus`, only when
/// this process may run on two CPUs or more (asked once, and only when a
/// segment is big enough, as asking reads the process's CPU limits).
pub(crate) fn replay_with(
    source: &dyn Source,
    views: &mut Projections,
    from: Lsn,
    stop: Stop,
    last_at: &mut Timestamp,
    pipeline_bytes_min: usize,
    check_cpus: bool,
) -> Result<u64, EngineError> {
    let mut fold = Fold {
        views,
        last_at,
        applied: 0,
        failure: None,
    };
    let mut two_cpus = (!check_cpus).then_some(true);
    source.scan_segments_from(from, &mut |records| {
        if records.bytes_left() >= pipeline_bytes_min
            && *two_cpus.get_or_insert_with(|| {
                std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
            })
            && let Some(flow) = pipelined(records, &mut fold, stop)
        {
            return flow;
        }
        sequential(records, &mut fold, stop)
    })?;
    match fold.failure {
        Some(e) => Err(e),
        None => Ok(fold.applied),
    }
}

/// The second stage: the views and what has been applied to them.
struct Fold<'v> {
    views: &'v mut Projections,
    last_at: &'v mut Timestamp,
    applied: u64,
    /// Why the replay ended early, if it failed.
    failure: Option<EngineError>,
}

impl Fold<'_> {
    /// Applies one event; breaks, keeping the refusal, if it is refused.
    #[inline]
    fn apply(&mut self, lsn: Lsn, event: &EventRef<'_>) -> ControlFlow<()> {
        if let Err(source) = self.views.apply_ref(lsn, event) {
            self.failure = Some(EngineError::Replay {
                lsn,
                source: Box::new(source),
            });
            return ControlFlow::Break(());
        }
        *self.last_at = event.at;
        self.applied += 1;
        ControlFlow::Continue(())
    }
}

/// What the first stage makes of one record.
enum Decoded<'a> {
    Event(EventRef<'a>),
    /// The replay stops before this record (`Stop`).
    Stop,
    Failed(EngineError),
}

/// The first stage's part after the log's checks: decode, and the stops.
/// The LSN stop comes before decoding, the time stop after, as the time is
/// in the event.
#[inline]
fn decode(lsn: Lsn, bytes: &[u8], stop: Stop) -> Decoded<'_> {
    if let Stop::BeforeLsn(end) = stop
        && lsn >= end
    {
        return Decoded::Stop;
    }
    let event = match codec::decode_ref(lsn, bytes) {
        Ok(event) => event,
        Err(e) => return Decoded::Failed(e),
    };
    if let Stop::AfterTime(t) = stop
        && event.at > t
    {
        return Decoded::Stop;
    }
    Decoded::Event(event)
}

/// Both stages on this thread, one record after the other.
fn sequential(
    records: &mut SegmentRecords<'_>,
    fold: &mut Fold<'_>,
    stop: Stop,
) -> ControlFlow<()> {
    for (lsn, bytes) in records {
        match decode(lsn, bytes, stop) {
            Decoded::Event(event) => fold.apply(lsn, &event)?,
            Decoded::Stop => return ControlFlow::Break(()),
            Decoded::Failed(e) => {
                fold.failure = Some(e);
                return ControlFlow::Break(());
            }
        }
    }
    ControlFlow::Continue(())
}

/// How the first stage ended.
enum FirstEnd {
    /// It took every record the segment had for it.
    Done,
    /// At a `Stop`.
    Stopped,
    /// At a record that did not decode; the events before it were sent.
    Failed(EngineError),
    /// The second stage stopped taking batches (it met a refusal).
    Cancelled,
}

/// The first stage on a helper thread, the second on this one. `None` if no
/// thread could be started; nothing was taken from `records` then.
fn pipelined<'s>(
    records: &mut SegmentRecords<'s>,
    fold: &mut Fold<'_>,
    stop: Stop,
) -> Option<ControlFlow<()>> {
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch<'s>>(BATCHES_AHEAD);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch<'s>>();
        let first = std::thread::Builder::new()
            .name("runlog-replay-decode".to_owned())
            .spawn_scoped(scope, move || {
                first_stage(records, stop, &full_tx, &empty_rx)
            })
            .ok()?;
        let mut refused = false;
        'batches: for mut batch in full_rx.iter() {
            // By reference: moving each event out would copy it again.
            for (lsn, event) in &batch {
                if fold.apply(*lsn, event).is_break() {
                    refused = true;
                    break 'batches;
                }
            }
            batch.clear();
            // The first stage may have finished: a batch it will not reuse
            // is simply dropped.
            let _ = empty_tx.send(batch);
        }
        // A first stage still running stops at its next send.
        drop(full_rx);
        let end = match first.join() {
            Ok(end) => end,
            // Decoding panics on no input; were it to, the panic goes on as
            // it would have on this thread.
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if refused {
            return Some(ControlFlow::Break(()));
        }
        Some(match end {
            FirstEnd::Done => ControlFlow::Continue(()),
            FirstEnd::Stopped | FirstEnd::Cancelled => ControlFlow::Break(()),
            FirstEnd::Failed(e) => {
                fold.failure = Some(e);
                ControlFlow::Break(())
            }
        })
    })
}

/// The first stage: takes the segment's records (the log checks each),
/// decodes them, and sends them on in batches, reusing the batches the
/// second stage sends back.
fn first_stage<'s>(
    records: &mut SegmentRecords<'s>,
    stop: Stop,
    full: &SyncSender<Batch<'s>>,
    empty: &Receiver<Batch<'s>>,
) -> FirstEnd {
    let mut batch = Vec::with_capacity(BATCH_LEN);
    // The second stage waits for the first batch: it is kept short, and
    // each one after is twice as long, up to `BATCH_LEN`.
    let mut len = BATCH_LEN_FIRST;
    let mut end = FirstEnd::Done;
    for (lsn, bytes) in records {
        match decode(lsn, bytes, stop) {
            Decoded::Event(event) => batch.push((lsn, event)),
            Decoded::Stop => {
                end = FirstEnd::Stopped;
                break;
            }
            Decoded::Failed(e) => {
                end = FirstEnd::Failed(e);
                break;
            }
        }
        if batch.len() >= len {
            len = (len * 2).min(BATCH_LEN);
            let next = empty
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH_LEN));
            if full.send(std::mem::replace(&mut batch, next)).is_err() {
                return FirstEnd::Cancelled;
            }
        }
    }
    if !batch.is_empty() && full.send(batch).is_err() {
        return FirstEnd::Cancelled;
    }
    end
}

// Why these tests exist: the pipeline decodes ahead of what it applies, on
// another thread, so it could apply an event after a failure, report a
// later failure than the first, stop at the wrong point of an `as_of`, or
// lose a log error found ahead. Each test replays one log both ways
// (threshold `usize::MAX`: one thread; threshold 0: every segment
// pipelined) and asserts the exact outcome of both.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Postcard;
    use proptest::prelude::*;
    use runlog_log::{Log, LogError, LogOptions, LogReader, SyncPolicy};
    use runlog_projections::{Change, Event, JobId, JobOutcome, Usage};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let path = std::env::temp_dir()
                .join(format!("runlog-replay-{}-{name}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The events of job `j`: created, a run of `steps` steps, completed,
    /// finished; stamped from `at` on, one millisecond apart.
    fn job(j: u64, steps: u64, at: u64) -> Vec<Event> {
        let id = JobId::from(format!("job-{j}").as_str());
        let run = || format!("run-{j}").as_str().into();
        let mut changes = vec![
            Change::JobCreated {
                key: "agent".into(),
                input: format!("input {j}").into_bytes(),
                fingerprint: None,
            },
            Change::RunStarted {
                run: run(),
                resume_from: None,
                code_version: None,
            },
        ];
        for s in 0..steps {
            changes.push(Change::StepRecorded {
                run: run(),
                checkpoint: format!("cp-{j}-{s}").as_str().into(),
                usage: Usage {
                    input_tokens: s + 1,
                    output_tokens: 2,
                    cost_micros: 3,
                },
                phase: None,
                payload: vec![0x5a; 200],
            });
        }
        changes.push(Change::RunCompleted {
            run: run(),
            output: b"done".to_vec(),
        });
        changes.push(Change::JobFinished {
            outcome: JobOutcome::Completed,
        });
        changes
            .into_iter()
            .zip(at..)
            .map(|(change, at)| Event {
                at: Timestamp(at),
                job: id.clone(),
                change,
            })
            .collect()
    }

    /// `jobs` jobs of `steps` steps, encoded, the jobs interleaved two at
    /// a time so that replay moves between jobs.
    fn records(jobs: u64, steps: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 1_000;
        for pair in (0..jobs).collect::<Vec<_>>().chunks(2) {
            let evs: Vec<Vec<Event>> = pair
                .iter()
                .map(|&j| {
                    at += 100;
                    job(j, steps, at)
                })
                .collect();
            let longest = evs.iter().map(Vec::len).max().unwrap_or(0);
            for i in 0..longest {
                for e in &evs {
                    if let Some(e) = e.get(i) {
                        out.push(codec::encode(e).expect("encode"));
                    }
                }
            }
        }
        out
    }

    /// Writes one record per batch into a new log with small segments.
    fn write_log(dir: &Path, records: &[Vec<u8>], segment_size_max: u64) {
        let options = LogOptions {
            segment_size_max,
            sync: SyncPolicy::Never,
            ..LogOptions::default()
        };
        let (log, _) = Log::open(dir, options).expect("open log");
        for r in records {
            log.append(&[r]).expect("append");
        }
        log.sync().expect("sync");
    }

    /// What one replay gave: its result (as text: errors are not
    /// `PartialEq`), the views' snapshot body, the job views, the last
    /// timestamp.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        result: String,
        body: Vec<u8>,
        jobs: Vec<runlog_projections::JobView>,
        last_at: Timestamp,
    }

    /// Replays the log in `dir`. A reader that cannot open (corruption in
    /// the last segment, which it walks at open) is an outcome too.
    fn run(
        dir: &Path,
        stop: Stop,
        pipeline_bytes_min: usize,
    ) -> (Outcome, Result<u64, EngineError>) {
        let mut views = Projections::new();
        let mut last_at = Timestamp(0);
        let result = LogReader::open(dir, LogOptions::default())
            .map_err(EngineError::from)
            .and_then(|reader| {
                replay_with(
                    &reader,
                    &mut views,
                    0,
                    stop,
                    &mut last_at,
                    pipeline_bytes_min,
                    false,
                )
            });
        let outcome = Outcome {
            result: format!("{result:?}"),
            body: views.to_snapshot::<Postcard>().expect("snapshot body"),
            jobs: views
                .jobs()
                .map(|j| j.expect("replayed views materialize").clone())
                .collect(),
            last_at,
        };
        (outcome, result)
    }

    /// Replays `dir` both ways, asserts they agree, and returns the
    /// pipelined result.
    fn both(dir: &Path, stop: Stop) -> (Outcome, Result<u64, EngineError>) {
        let (sequential, _) = run(dir, stop, usize::MAX);
        let (pipelined, result) = run(dir, stop, 0);
        assert_eq!(pipelined, sequential);
        (pipelined, result)
    }

    const SEGMENT: u64 = 16 * 1024;

    #[test]
    fn a_clean_log_replays_the_same_both_ways() {
        let dir = TempDir::new("clean");
        let recs = records(40, 8);
        write_log(&dir.0, &recs, SEGMENT);
        let (outcome, result) = both(&dir.0, Stop::Never);
        assert_eq!(result.ok(), Some(recs.len() as u64));
        assert_eq!(outcome.jobs.len(), 40);
        // Job 39 was the last one started: its finish is the last event.
        assert_eq!(outcome.last_at, Timestamp(1_000 + 40 * 100 + 11));
    }

    /// A record at `n` replaced by `bad`: both ways fail at `n`, with the
    /// events before it applied and none after.
    fn fails_at(name: &str, n: usize, bad: Vec<u8>) -> (Outcome, EngineError) {
        let dir = TempDir::new(name);
        let mut recs = records(40, 8);
        recs[n] = bad;
        write_log(&dir.0, &recs, SEGMENT);
        let (outcome, result) = both(&dir.0, Stop::Never);
        let Err(e) = result else {
            panic!("the replay of {name} succeeded");
        };
        // The views hold exactly the events below `n`.
        let dir2 = TempDir::new(name);
        write_log(&dir2.0, &recs[..n], SEGMENT);
        let (prefix, _) = run(&dir2.0, Stop::Never, 0);
        assert_eq!(outcome.body, prefix.body);
        (outcome, e)
    }

    #[test]
    fn an_undecodable_event_fails_at_its_lsn_both_ways() {
        let (_, e) = fails_at("undecodable", 301, vec![1, 0xff, 0xff]);
        assert!(
            matches!(&e, EngineError::BadEvent { lsn: 301, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn a_newer_event_format_fails_at_its_lsn_both_ways() {
        let (_, e) = fails_at("newer", 333, vec![2, 0, 0]);
        assert!(
            matches!(
                e,
                EngineError::NewerEventFormat {
                    lsn: 333,
                    version: 2,
                    supported: 1
                }
            ),
            "{e:?}"
        );
    }

    /// An event about a job that does not exist.
    fn refused_step() -> Vec<u8> {
        let e = Event {
            at: Timestamp(5),
            job: JobId::from("no-such-job"),
            change: Change::RunCompleted {
                run: "no-such-run".into(),
                output: Vec::new(),
            },
        };
        codec::encode(&e).expect("encode")
    }

    #[test]
    fn a_refused_transition_fails_at_its_lsn_both_ways() {
        let (_, e) = fails_at("refused", 250, refused_step());
        assert!(
            matches!(&e, EngineError::Replay { lsn: 250, source } if source.refusal == runlog_projections::Refusal::UnknownJob),
            "{e:?}"
        );
    }

    /// The pipeline decodes ahead: a refusal must still win over a bad
    /// record after it, in the same batch or a later segment.
    #[test]
    fn a_refusal_wins_over_a_later_undecodable_event() {
        let dir = TempDir::new("refusal-first");
        let mut recs = records(40, 8);
        recs[100] = refused_step();
        recs[102] = vec![1, 0xff];
        recs[400] = vec![9];
        write_log(&dir.0, &recs, SEGMENT);
        let (outcome, result) = both(&dir.0, Stop::Never);
        assert!(
            matches!(result, Err(EngineError::Replay { lsn: 100, .. })),
            "{}",
            outcome.result
        );
    }

    /// Flips one payload byte of record `n` in its segment file, so that
    /// its checksum fails: corruption in a sealed segment.
    fn corrupt_record(dir: &Path, marker: &[u8]) {
        let segs = dir.join("segments");
        for entry in std::fs::read_dir(&segs).expect("segments") {
            let path = entry.expect("entry").path();
            let mut bytes = std::fs::read(&path).expect("read");
            if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
                bytes[at] ^= 0x01;
                std::fs::write(&path, bytes).expect("write");
                return;
            }
        }
        panic!("marker not found");
    }

    fn marked(recs: &mut [Vec<u8>], n: usize, j: u64) {
        let e = Event {
            at: Timestamp(7),
            job: JobId::from(format!("job-{j}").as_str()),
            change: Change::ExternalStatusObserved {
                status: runlog_projections::ExternalStatus::Running,
                detail: "MARKER-RECORD".into(),
            },
        };
        recs[n] = codec::encode(&e).expect("encode");
    }

    #[test]
    fn a_corrupt_record_fails_at_its_lsn_both_ways() {
        let dir = TempDir::new("corrupt");
        let mut recs = records(40, 8);
        marked(&mut recs, 200, 0);
        write_log(&dir.0, &recs, SEGMENT);
        corrupt_record(&dir.0, b"MARKER-RECORD");
        let (_, result) = both(&dir.0, Stop::Never);
        assert!(
            matches!(
                &result,
                Err(EngineError::Log(LogError::Corruption { lsn: 200, .. }))
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_refusal_wins_over_a_later_corrupt_record() {
        let dir = TempDir::new("refusal-corrupt");
        let mut recs = records(40, 8);
        recs[150] = refused_step();
        marked(&mut recs, 160, 0);
        write_log(&dir.0, &recs, SEGMENT);
        corrupt_record(&dir.0, b"MARKER-RECORD");
        let (_, result) = both(&dir.0, Stop::Never);
        assert!(
            matches!(result, Err(EngineError::Replay { lsn: 150, .. })),
            "{result:?}"
        );
    }

    #[test]
    fn as_of_an_lsn_lands_on_the_same_views_both_ways() {
        let dir = TempDir::new("as-of-lsn");
        let recs = records(40, 8);
        write_log(&dir.0, &recs, SEGMENT);
        for end in [0, 1, 255, 256, 257, 299, 300, recs.len() as u64] {
            let (outcome, result) = both(&dir.0, Stop::BeforeLsn(end));
            assert_eq!(result.ok(), Some(end), "as of {end}");
            let prefix = TempDir::new("as-of-lsn-prefix");
            write_log(&prefix.0, &recs[..end as usize], SEGMENT);
            let (expected, _) = run(&prefix.0, Stop::Never, usize::MAX);
            assert_eq!(outcome, expected, "as of {end}");
        }
    }

    #[test]
    fn as_of_a_time_lands_on_the_same_views_both_ways() {
        let dir = TempDir::new("as-of-time");
        let recs = records(40, 8);
        write_log(&dir.0, &recs, SEGMENT);
        let stamps: Vec<u64> = recs
            .iter()
            .enumerate()
            .map(|(n, r)| codec::decode(n as u64, r).expect("decode").at.0)
            .collect();
        for t in [0, 1_100, 1_101, 1_200, 2_000, 2_005, 9_999] {
            // The replay stops at the first event stamped after `t`.
            let applied = stamps.iter().take_while(|&&at| at <= t).count();
            let (outcome, result) = both(&dir.0, Stop::AfterTime(Timestamp(t)));
            assert_eq!(result.ok(), Some(applied as u64), "as of {t}");
            let prefix = TempDir::new("as-of-time-prefix");
            write_log(&prefix.0, &recs[..applied], SEGMENT);
            let (expected, _) = run(&prefix.0, Stop::Never, usize::MAX);
            assert_eq!(outcome, expected, "as of {t}");
        }
    }

    /// A record of a random log: a good event, or one of the failures.
    #[derive(Clone, Debug)]
    enum Fault {
        Undecodable,
        Newer,
        Refused,
        Corrupt,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Replaying any log, with any fault at any place and any stop,
        /// through the pipeline gives exactly the sequential fold's views,
        /// count, last timestamp and error.
        #[test]
        fn the_pipeline_equals_the_sequential_fold(
            jobs in 1u64..30,
            steps in 0u64..10,
            segment in 2_000u64..40_000,
            fault in proptest::option::of((0usize..400, prop_oneof![
                Just(Fault::Undecodable),
                Just(Fault::Newer),
                Just(Fault::Refused),
                Just(Fault::Corrupt),
            ])),
            stop in prop_oneof![
                Just(Stop::Never),
                (0u64..500).prop_map(Stop::BeforeLsn),
                (0u64..5_000).prop_map(|t| Stop::AfterTime(Timestamp(t))),
            ],
        ) {
            let dir = TempDir::new("prop");
            let mut recs = records(jobs, steps);
            let mut corrupt = false;
            if let Some((at, fault)) = fault {
                let n = at % recs.len();
                match fault {
                    Fault::Undecodable => recs[n] = vec![1, 0xff],
                    Fault::Newer => recs[n] = vec![3],
                    Fault::Refused => recs[n] = refused_step(),
                    Fault::Corrupt => {
                        marked(&mut recs, n, 0);
                        corrupt = true;
                    }
                }
            }
            write_log(&dir.0, &recs, segment);
            if corrupt {
                corrupt_record(&dir.0, b"MARKER-RECORD");
            }
            let (sequential, _) = run(&dir.0, stop, usize::MAX);
            let (pipelined, _) = run(&dir.0, stop, 0);
            prop_assert_eq!(pipelined, sequential);
        }
    }
}
