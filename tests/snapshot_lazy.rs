//! An open with a snapshot reads its head only; each job's summary stays
//! snapshot bytes until the job is first used, and its runs and
//! checkpoints until they are. These tests exist so that laziness can
//! never change an answer: an engine opened from a snapshot answers every
//! query exactly like one opened by a full replay, before and after new
//! commands on jobs it has not read yet; and a snapshot whose job records
//! or detail bytes lie under valid checksums gives a typed error or is
//! skipped, never a wrong view and never a panic.

mod support;

use runlog::projections::Refusal;
use runlog::{
    Engine, EngineError, ExternalStatus, JobFilter, JobId, JobOutcome, Options, Projections, Query,
    Step, Submit,
};
use std::path::Path;
use support::{TempDir, options, usage};

fn quiet_options() -> Options {
    let (mut opts, _) = options();
    opts.snapshot_every_events = 0;
    opts.snapshot_every_bytes = 0;
    opts.snapshot_on_close = false;
    opts
}

/// Jobs in every shape: finished, failed, cancelled, continued, with a
/// delegation, waiting for input, in flight (interrupted at the next
/// open), with fingerprints. Returns the job ids.
fn mixed_workload(engine: &Engine, tag: &str) -> Vec<JobId> {
    let mut jobs = Vec::new();
    for i in 0..6u64 {
        let job = engine
            .submit(Submit::new("agent", format!("{tag} {i}")).fingerprint(format!("{tag}-fp{i}")))
            .expect("submit")
            .job;
        let run = engine.start_run(&job, None).expect("start");
        for s in 0..(i + 2) {
            engine
                .record_step(&job, &run, Step::new(vec![s as u8; 40], usage(s + i)))
                .expect("step");
        }
        match i {
            0 => {
                engine.complete_run(&job, &run, "done").expect("complete");
                engine
                    .finish_job(&job, JobOutcome::Completed)
                    .expect("finish");
            }
            1 => {
                engine.fail_run(&job, &run, "boom", true).expect("fail");
                engine
                    .finish_job(
                        &job,
                        JobOutcome::Failed {
                            error: "boom".into(),
                        },
                    )
                    .expect("finish");
            }
            2 => {
                let child = engine.delegate(&job, &run).expect("delegate");
                engine
                    .record_step(&job, &child, Step::new(b"child".to_vec(), usage(9)))
                    .expect("child step");
                engine.complete_run(&job, &child, "child done").expect("c");
                engine.return_child(&job, &run, &child).expect("return");
                engine.complete_run(&job, &run, "done").expect("complete");
                engine
                    .finish_job(&job, JobOutcome::Completed)
                    .expect("finish");
            }
            3 => {
                engine
                    .request_input(&job, &run, "which one?")
                    .expect("request");
            }
            4 => engine.cancel_job(&job, "not needed").expect("cancel"),
            // 5: left running, so the next open interrupts it.
            _ => {}
        }
        engine
            .observe_external(&job, ExternalStatus::Running, format!("poll {i}"))
            .ok();
        jobs.push(job);
    }
    jobs
}

/// Every answer the query API gives about the data directory, as text.
fn answers(q: &impl Query, jobs: &[JobId]) -> String {
    let mut out = format!("{:?}\n", q.jobs(&JobFilter::all()));
    out += &format!("{:?}\n", q.interrupted());
    for job in jobs {
        out += &format!("job {job}: {:?}\n", q.job(job).map(|j| j.detail().cloned()));
        out += &format!("  tree {:?}\n", q.run_tree(job));
        out += &format!("  checkpoints {:?}\n", q.checkpoints(job));
        out += &format!("  latest {:?}\n", q.latest_checkpoint(job));
        if let Ok(view) = q.job(job) {
            let detail = view.detail().expect("a queried job is decoded");
            for cp in detail.checkpoints() {
                let found = q.checkpoint(job, &cp.id).map(|c| (c.view, c.payload));
                out += &format!("  checkpoint {found:?}\n");
            }
            for run in detail.runs() {
                out += &format!("  run {:?}\n", q.run(job, &run.id));
                out += &format!("  resumability {:?}\n", q.resumability(job, &run.id));
            }
            if let Some(fp) = &view.fingerprint {
                // Compared by value: a JobView's Debug shows whether its
                // detail is still snapshot bytes, which is the point of
                // the test to vary.
                let found = q.job_for_fingerprint(fp);
                let same = found.as_ref() == Some(&view);
                out += &format!("  fp {:?} same={same}\n", found.map(|j| j.id));
            }
        }
    }
    out
}

/// Opens `dir`, whose one snapshot `snap` the open must refuse for a
/// reason `reason_ok` accepts, and checks that its views equal those of a
/// full replay of `replay` (a copy of `dir` without snapshots). Returns
/// the engine opened on `dir`.
fn open_refusing(
    dir: &Path,
    replay: &Path,
    snap: &Path,
    reason_ok: impl Fn(&str) -> bool,
) -> Engine {
    let (engine, report) = Engine::open(dir, quiet_options()).expect("open");
    assert_eq!(report.snapshot, None, "the snapshot is refused");
    assert_eq!(report.snapshots_skipped.len(), 1);
    assert_eq!(report.snapshots_skipped[0].path, snap);
    let reason = &report.snapshots_skipped[0].reason;
    assert!(reason_ok(reason), "{reason}");
    let (full, _) = Engine::open(replay, quiet_options()).expect("full");
    assert!(engine.with_views(Projections::clone) == full.with_views(Projections::clone));
    engine
}

/// A copy of `dir` with its segments only: opening it replays the whole log.
fn without_snapshots(dir: &Path) -> TempDir {
    let copy = TempDir::new("replay");
    let to = copy.join("segments");
    std::fs::create_dir_all(&to).expect("mkdir");
    for entry in std::fs::read_dir(dir.join("segments")).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
    copy
}

/// The same commands on both engines, on jobs the lazy one has not
/// decoded: a continuation of a finished job, a resume, a cancel, an
/// observation, a new job.
fn more_commands(engine: &Engine, jobs: &[JobId]) {
    let run = engine.start_run(&jobs[0], None).expect("continue");
    engine
        .record_step(&jobs[0], &run, Step::new(b"again".to_vec(), usage(5)))
        .expect("step");
    engine
        .complete_run(&jobs[0], &run, "done")
        .expect("complete");
    engine
        .finish_job(&jobs[0], JobOutcome::Completed)
        .expect("finish");
    engine
        .observe_external(&jobs[1], ExternalStatus::Completed, "remote done")
        .expect("observe");
    engine.cancel_job(&jobs[2], "late cancel").expect("cancel");
    let interrupted = engine.interrupted();
    for r in interrupted.iter().filter(|r| r.resumability.is_resumable()) {
        engine
            .resume_run(&r.run.job, &r.run.id, None)
            .expect("resume");
    }
    engine
        .submit(Submit::new("agent", "new after open"))
        .expect("submit");
}

#[test]
fn a_lazy_open_answers_every_query_like_a_full_replay() {
    let dir = TempDir::new("lazy");
    let opts = quiet_options();
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let mut jobs = mixed_workload(&engine, "a");
    engine.snapshot().expect("snapshot");
    // Events after the snapshot, about jobs it holds: the replay of the
    // tail decodes those jobs, the others stay bytes.
    engine
        .observe_external(&jobs[0], ExternalStatus::Completed, "after the snapshot")
        .expect("observe");
    let run = engine.start_run(&jobs[1], None).expect("continue");
    engine
        .record_step(&jobs[1], &run, Step::new(b"tail".to_vec(), usage(1)))
        .expect("step");
    jobs.extend(mixed_workload(&engine, "b"));
    engine.snapshot().expect("second snapshot");
    jobs.extend(mixed_workload(&engine, "c"));
    drop(engine); // killed: runs in flight are interrupted at the next open

    let replay_dir = without_snapshots(dir.path());
    let (lazy, lazy_report) = Engine::open(dir.path(), opts.clone()).expect("lazy open");
    let (full, full_report) = Engine::open(replay_dir.path(), opts).expect("full open");
    assert!(lazy_report.snapshot.is_some(), "the snapshot is used");
    assert!(full_report.snapshot.is_none());
    assert_eq!(lazy_report.interrupted, full_report.interrupted);

    // Listing first: it must not need any detail.
    assert_eq!(
        lazy.jobs(&JobFilter::all()).expect("jobs readable"),
        full.jobs(&JobFilter::all()).expect("jobs readable"),
        "job listing"
    );
    assert_eq!(answers(&lazy, &jobs), answers(&full, &jobs));
    assert!(
        lazy.with_views(Projections::clone) == full.with_views(Projections::clone),
        "views"
    );

    // New commands on jobs the lazy engine decoded only for the answers
    // above; then on a freshly opened lazy engine where nothing is decoded.
    more_commands(&lazy, &jobs);
    more_commands(&full, &jobs);
    assert_eq!(answers(&lazy, &jobs), answers(&full, &jobs));
    lazy.snapshot().expect("snapshot after commands");
    drop(lazy);
    drop(full);

    let (lazy, _) = Engine::open(dir.path(), quiet_options()).expect("reopen lazy");
    let (full, _) = Engine::open(replay_dir.path(), quiet_options()).expect("reopen full");
    more_commands(&lazy, &jobs[6..]);
    more_commands(&full, &jobs[6..]);
    assert_eq!(answers(&lazy, &jobs), answers(&full, &jobs));
    assert!(
        lazy.with_views(Projections::clone) == full.with_views(Projections::clone),
        "views after commands on undecoded jobs"
    );
}

/// Which checksums [`corrupt`] recomputes after its change.
#[derive(Clone, Copy)]
enum Reseal {
    /// None: damage on disk, which the file's body checksum catches.
    Nothing,
    /// The file's body and header checksums only, as if the file had been
    /// rewritten around a changed detail: the detail's own CRC catches it.
    FileOnly,
    /// Every checksum: a snapshot written wrong, which only the checks of
    /// what the detail says against its summary can catch.
    All,
}

/// Finds `pattern` once in `bytes` (past the header), changes the byte at
/// `pattern.len() - 1 + shift` to `to`, and recomputes the checksums
/// `reseal` names (FORMAT.md, "Snapshot files"): the body starts at byte
/// 48 ([`reseal_body`]); the file header holds the body's CRC (bytes
/// 40..44) and its own (44..48, over 0..44).
fn corrupt(path: &Path, pattern: &[u8], to: u8, reseal: Reseal) {
    let mut bytes = std::fs::read(path).expect("read");
    let at: Vec<usize> = (48..bytes.len() - pattern.len())
        .filter(|&i| &bytes[i..i + pattern.len()] == pattern)
        .collect();
    assert_eq!(at.len(), 1, "the pattern occurs once in the snapshot");
    let i = at[0] + pattern.len() - 1;
    assert_ne!(bytes[i], to);
    bytes[i] = to;
    if let Reseal::All = reseal {
        reseal_body(&mut bytes[48..]);
    }
    if let Reseal::FileOnly | Reseal::All = reseal {
        let crc = crc32fast::hash(&bytes[48..]);
        bytes[40..44].copy_from_slice(&crc.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..44]);
        bytes[44..48].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(path, &bytes).expect("write");
}

/// Recomputes the checksums of a version 5 snapshot body (FORMAT.md,
/// "Snapshot files"): each job's 128-byte record, in its chunk's region,
/// holds its detail's length (bytes 80..88) and CRC (88..92); each chunk's
/// table entry (24 bytes, from `head_len`) holds where its region and
/// first detail start and its region's CRC (16..20); the id index (16
/// bytes a job, after the table) has its CRC in the preamble (72..76); the
/// head's CRC (4..8) covers bytes 8..head_len.
fn reseal_body(body: &mut [u8]) {
    let u64_at = |b: &[u8], at: usize| {
        u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize
    };
    let head_len = u64_at(body, 8);
    let jobs = u64_at(body, 40);
    let details_at = u64_at(body, 64);
    let chunks = jobs.div_ceil(64);
    let ids_at = head_len + chunks * 24;
    let regions_at = ids_at + jobs * 16;
    for c in 0..chunks {
        let entry = head_len + c * 24;
        let region = regions_at + u64_at(body, entry);
        let region_end = if c + 1 < chunks {
            regions_at + u64_at(body, entry + 24)
        } else {
            details_at
        };
        let mut detail = details_at + u64_at(body, entry + 8);
        for k in 0..64.min(jobs - c * 64) {
            let record = region + k * 128;
            let len = u64_at(body, record + 80);
            let crc = crc32fast::hash(&body[detail..detail + len]);
            body[record + 88..record + 92].copy_from_slice(&crc.to_le_bytes());
            detail += len;
        }
        let crc = crc32fast::hash(&body[region..region_end]);
        body[entry + 16..entry + 20].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&body[ids_at..regions_at]);
    body[72..76].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&body[8..head_len]);
    body[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// A finished job with one checkpoint "cp-marker" of 77 input tokens, in a
/// snapshot; then `after` runs. Returns the job, the snapshot's path, and
/// the views a full replay gives.
fn marked_snapshot(dir: &Path, after: impl FnOnce(&Engine, &JobId)) -> (JobId, std::path::PathBuf) {
    marked_snapshot_with(dir, Reseal::All, after)
}

/// [`marked_snapshot`], with the checksums `reseal` names recomputed
/// after the change.
fn marked_snapshot_with(
    dir: &Path,
    reseal: Reseal,
    after: impl FnOnce(&Engine, &JobId),
) -> (JobId, std::path::PathBuf) {
    // Written without full history, so that the snapshot holds the runs
    // and checkpoints encoded (its one segment is kept: unfinished jobs
    // have their input there). The same lies in a job named by its events'
    // LSNs are tested in projections/tests/from_log.rs and
    // tests/snapshot_from_log.rs.
    let mut opts = quiet_options();
    opts.keep_full_history = false;
    let (engine, _) = Engine::open(dir, opts).expect("open");
    mixed_workload(&engine, "a");
    let job = engine
        .submit(Submit::new("agent", "marked"))
        .expect("submit")
        .job;
    let run = engine.start_run(&job, None).expect("start");
    let step = Step::new(b"x".to_vec(), usage(77)).checkpoint("cp-marker");
    engine.record_step(&job, &run, step).expect("step");
    engine.complete_run(&job, &run, "done").expect("complete");
    engine
        .finish_job(&job, JobOutcome::Completed)
        .expect("finish");
    let snap = engine.snapshot().expect("snapshot");
    after(&engine, &job);
    drop(engine);
    // In the job's detail: the checkpoint's id, its run's position (0),
    // then its delta, whose input tokens (77) become 78. The summary still
    // says 77.
    let mut pattern = vec![9u8];
    pattern.extend_from_slice(b"cp-marker");
    pattern.extend_from_slice(&[0, 77]);
    corrupt(&snap.path, &pattern, 78, reseal);
    (job, snap.path)
}

#[test]
fn a_corrupt_detail_under_valid_checksums_is_a_typed_error_never_a_view() {
    let dir = TempDir::new("lazy-corrupt");
    let (job, _) = marked_snapshot(dir.path(), |_, _| {});

    let (engine, report) = Engine::open(dir.path(), quiet_options()).expect("open");
    assert!(report.snapshot.is_some(), "the summaries are sound");
    // The listing reads summaries only.
    let listed = engine.jobs(&JobFilter::all()).expect("jobs readable");
    assert!(listed.iter().any(|j| j.id == job && j.usage == usage(77)));
    // Every path to the job's runs and checkpoints fails, typed.
    let detail_error = |r: Result<(), EngineError>| match r {
        Err(EngineError::DetailUnreadable(e)) => {
            assert_eq!(e.job, job);
            assert!(e.reason.contains("sum to"), "{e}");
        }
        other => panic!("expected DetailUnreadable, got {other:?}"),
    };
    detail_error(engine.job(&job).map(drop));
    detail_error(engine.run_tree(&job).map(drop));
    detail_error(engine.checkpoints(&job).map(drop));
    detail_error(engine.latest_checkpoint(&job).map(drop));
    detail_error(engine.checkpoint(&job, &"cp-marker".into()).map(drop));
    // A command on the job is refused and writes nothing.
    let next = engine.next_lsn();
    match engine.start_run(&job, None) {
        Err(EngineError::Transition(t)) => {
            assert!(matches!(t.refusal, Refusal::DetailUnreadable(_)), "{t}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(engine.next_lsn(), next);
    // Other jobs are untouched.
    for summary in engine.jobs(&JobFilter::all()).expect("jobs readable") {
        if summary.id != job {
            engine.job(&summary.id).expect("other jobs decode");
        }
    }
}

#[test]
fn a_corrupt_detail_met_while_replaying_the_tail_skips_that_snapshot() {
    let dir = TempDir::new("lazy-corrupt-tail");
    let (job, snap) = marked_snapshot(dir.path(), |engine, job| {
        // An event after the snapshot about the corrupt job: the replay
        // at open must decode its detail.
        engine
            .observe_external(job, ExternalStatus::Completed, "seen after")
            .expect("observe");
    });
    let replay_dir = without_snapshots(dir.path());
    let engine = open_refusing(dir.path(), replay_dir.path(), &snap, |r| {
        r.contains("cannot be read")
    });
    assert_eq!(engine.job(&job).expect("job").total_steps, 1);
}

/// A detail damaged on disk (no checksum recomputed) is caught by the file's
/// body checksum at open: the snapshot is skipped whole and the log
/// replayed, so every view is right, the damaged job's too.
#[test]
fn a_snapshot_damaged_on_disk_in_a_detail_is_skipped_at_open() {
    let dir = TempDir::new("lazy-damaged");
    let (job, snap) = marked_snapshot_with(dir.path(), Reseal::Nothing, |_, _| {});
    let replay_dir = without_snapshots(dir.path());
    let engine = open_refusing(dir.path(), replay_dir.path(), &snap, |r| {
        r == "body checksum mismatch"
    });
    let view = engine.job(&job).expect("the job decodes");
    assert_eq!(view.usage, usage(77));
}

/// A detail changed after the file's checksum was taken (here: the file's
/// checksums recomputed around the change, the detail's own not) is caught
/// by the detail's checksum when first read: the open uses the snapshot,
/// and the job's detail is a typed error naming the mismatch.
#[test]
fn a_detail_changed_under_the_file_checksum_fails_its_own_when_first_read() {
    let dir = TempDir::new("lazy-changed");
    let (job, _) = marked_snapshot_with(dir.path(), Reseal::FileOnly, |_, _| {});
    let (engine, report) = Engine::open(dir.path(), quiet_options()).expect("open");
    assert!(report.snapshot.is_some(), "the file's checksums hold");
    match engine.job(&job) {
        Err(EngineError::DetailUnreadable(e)) => {
            assert_eq!(e.job, job);
            assert!(e.reason.starts_with("checksum mismatch (stored 0x"), "{e}");
        }
        other => panic!("expected DetailUnreadable, got {other:?}"),
    }
    for summary in engine.jobs(&JobFilter::all()).expect("jobs readable") {
        if summary.id != job {
            engine.job(&summary.id).expect("other jobs decode");
        }
    }
}

/// `jobs` finished jobs (two chunks of the snapshot's base, of 64 jobs
/// each, when over 64), a snapshot, then `after`; the snapshot's file
/// then has the status byte of its first job's record set to 7, and
/// every checksum recomputed (an edit on purpose). Returns the jobs and
/// the snapshot's path.
fn bad_status_snapshot(
    dir: &Path,
    jobs: usize,
    after: impl FnOnce(&Engine, &[JobId]),
) -> (Vec<JobId>, std::path::PathBuf) {
    let (engine, _) = Engine::open(dir, quiet_options()).expect("open");
    let mut ids = Vec::new();
    for i in 0..jobs {
        let job = engine
            .submit(Submit::new("agent", format!("job {i}")))
            .expect("submit")
            .job;
        let run = engine.start_run(&job, None).expect("start");
        engine.complete_run(&job, &run, "done").expect("complete");
        engine
            .finish_job(&job, JobOutcome::Completed)
            .expect("finish");
        ids.push(job);
    }
    let snap = engine.snapshot().expect("snapshot");
    after(&engine, &ids);
    drop(engine);
    let mut bytes = std::fs::read(&snap.path).expect("read");
    let body = &mut bytes[48..];
    let u64_at = |b: &[u8], at: usize| {
        u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize
    };
    // The first chunk's region starts after the head, the chunk table and
    // the id index (FORMAT.md); its first record is the first job's.
    let (head_len, count) = (u64_at(body, 8), u64_at(body, 40));
    let first_record = head_len + count.div_ceil(64) * 24 + count * 16;
    assert_eq!(body[first_record + 120], 1, "the first job is completed");
    body[first_record + 120] = 7;
    reseal_body(body);
    let crc = crc32fast::hash(&bytes[48..]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..44]);
    bytes[44..48].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&snap.path, &bytes).expect("write");
    (ids, snap.path)
}

/// A job record whose status byte is out of range under valid checksums
/// is not read at open (the open reads the snapshot's head): the open
/// uses the snapshot, every query that reaches that record's chunk fails
/// typed, and the jobs of the other chunk answer as before.
#[test]
fn a_bad_job_record_under_valid_checksums_fails_the_queries_that_reach_it() {
    let dir = TempDir::new("lazy-bad-record");
    let (jobs, _) = bad_status_snapshot(dir.path(), 70, |_, _| {});
    let (engine, report) = Engine::open(dir.path(), quiet_options()).expect("open");
    assert!(report.snapshot.is_some(), "the head is sound");
    let bad_record = |r: Result<(), EngineError>| match r {
        Err(EngineError::DetailUnreadable(e)) => {
            assert!(e.reason.contains("its record: status 7"), "{e}")
        }
        other => panic!("expected DetailUnreadable, got {other:?}"),
    };
    bad_record(engine.job(&jobs[0]).map(drop));
    bad_record(engine.job(&jobs[63]).map(drop));
    bad_record(engine.jobs(&JobFilter::all()).map(drop));
    // The newest jobs are in the second chunk: a page of them is read
    // without the first.
    let mut newest = JobFilter::all();
    newest.limit = 5;
    let page = engine.jobs(&newest).expect("the second chunk is sound");
    let ids: Vec<&JobId> = page.iter().map(|s| &s.id).collect();
    assert_eq!(ids, jobs.iter().rev().take(5).collect::<Vec<_>>());
    assert_eq!(engine.job(&jobs[64]).expect("readable").total_steps, 0);
}

/// The same record met by the replay of an event after the snapshot:
/// the open refuses that snapshot and replays the log, so every view is
/// right, the job's too.
#[test]
fn a_bad_job_record_met_while_replaying_the_tail_skips_that_snapshot() {
    let dir = TempDir::new("lazy-bad-record-tail");
    let (jobs, snap) = bad_status_snapshot(dir.path(), 70, |engine, jobs| {
        engine
            .observe_external(&jobs[0], ExternalStatus::Completed, "seen after")
            .expect("observe");
    });
    let replay_dir = without_snapshots(dir.path());
    let engine = open_refusing(dir.path(), replay_dir.path(), &snap, |r| {
        r.contains("status 7")
    });
    assert!(engine.job(&jobs[0]).expect("job").external.is_some());
}
