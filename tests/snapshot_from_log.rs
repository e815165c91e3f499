//! While the log keeps every segment, a snapshot holds a finished job's
//! runs and checkpoints as the LSNs of its events, and they are rebuilt
//! from the log when first read. These tests exist so that this can never
//! change an answer: views opened from such a snapshot (by the writer, by
//! a read-only open, as of an LSN, and copied out and kept after the
//! engine closed) answer exactly like a full replay for jobs of every
//! shape; an event of one job damaged in the log is a typed error for
//! that job alone; and with `keep_full_history` off, snapshots hold the
//! runs in full, so the views reopen exactly once the segments are gone.

mod support;

use runlog::{
    AsOf, Engine, EngineError, ExternalStatus, JobFilter, JobId, JobOutcome, Options, Projections,
    Query, ReadOnly, Step, Submit,
};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use support::{TempDir, options, usage};

fn quiet_options() -> Options {
    let (mut opts, _) = options();
    opts.snapshot_every_events = 0;
    opts.snapshot_every_bytes = 0;
    opts.snapshot_on_close = true;
    opts
}

/// Jobs in every shape, most of them finished (so held by their events):
/// with phases, a delegated child that recorded steps, continued after
/// finishing (twice), resumed from a checkpoint, failed, cancelled, with
/// an external status; one waiting for input and one in flight (held in
/// full). Returns the job ids.
fn workload(engine: &Engine, tag: &str) -> Vec<JobId> {
    let mut jobs = Vec::new();
    for i in 0..8u64 {
        let job = engine
            .submit(Submit::new("agent", format!("{tag} {i}")).fingerprint(format!("{tag}-{i}")))
            .expect("submit")
            .job;
        let run = engine.start_run(&job, None).expect("start");
        let mut cps = Vec::new();
        for s in 0..(i + 3) {
            let mut step = Step::new(vec![s as u8; 50], usage(s + i));
            if i == 1 {
                step = step.phase((s / 2) as u32);
            }
            cps.push(engine.record_step(&job, &run, step).expect("step"));
            if i == 1 && s % 2 == 1 {
                engine
                    .complete_phase(&job, &run, (s / 2) as u32, "same name", vec![9; 3])
                    .expect("phase");
            }
        }
        let finish = |outcome| engine.finish_job(&job, outcome).expect("finish");
        match i {
            2 => {
                let child = engine.delegate(&job, &run).expect("delegate");
                for s in 0..3 {
                    engine
                        .record_step(&job, &child, Step::new(vec![s; 20], usage(7)))
                        .expect("child step");
                }
                engine.complete_run(&job, &child, "child done").expect("c");
                engine.return_child(&job, &run, &child).expect("return");
                engine.complete_run(&job, &run, "done").expect("complete");
                finish(JobOutcome::Completed);
            }
            3 => {
                // Continued twice after finishing, the second time from a
                // checkpoint of its first run.
                engine.complete_run(&job, &run, "first").expect("complete");
                finish(JobOutcome::Completed);
                let again = engine.start_run(&job, None).expect("continue");
                engine
                    .record_step(&job, &again, Step::new(b"more".to_vec(), usage(1)))
                    .expect("step");
                engine.fail_run(&job, &again, "flaky", true).expect("fail");
                finish(JobOutcome::Failed {
                    error: "flaky".into(),
                });
                let third = engine
                    .start_run(&job, Some(cps[1].clone()))
                    .expect("resume from a checkpoint");
                engine.complete_run(&job, &third, "third").expect("c");
                finish(JobOutcome::Completed);
            }
            4 => engine.cancel_job(&job, "not needed").expect("cancel"),
            5 => engine.request_input(&job, &run, "which?").expect("ask"),
            // 6: left in flight: interrupted at close, held in full.
            6 => {}
            _ => {
                engine.complete_run(&job, &run, "done").expect("complete");
                finish(JobOutcome::Completed);
            }
        }
        engine
            .observe_external(&job, ExternalStatus::Completed, format!("poll {i}"))
            .ok();
        jobs.push(job);
    }
    jobs
}

/// Every answer the query API gives about `jobs`, as text: each job with
/// its runs and checkpoints, its run tree, its latest checkpoint, and each
/// checkpoint with its payload read from the log.
fn answers(q: &impl Query, jobs: &[JobId]) -> String {
    let mut out = format!("{:?}\n{:?}\n", q.jobs(&JobFilter::all()), q.interrupted());
    for job in jobs {
        out += &job_answers(q, job);
    }
    out
}

fn job_answers(q: &impl Query, job: &JobId) -> String {
    let mut out = format!("job {job}: {:?}\n", q.job(job).map(|j| j.detail().cloned()));
    out += &format!("  tree {:?}\n", q.run_tree(job));
    out += &format!("  checkpoints {:?}\n", q.checkpoints(job));
    out += &format!("  latest {:?}\n", q.latest_checkpoint(job));
    out += &format!("  events {:?}\n", q.job_events(job));
    if let Ok(view) = q.job(job) {
        let detail = view.detail().expect("a queried job is decoded");
        for cp in detail.checkpoints() {
            let found = q.checkpoint(job, &cp.id).map(|c| (c.view, c.payload));
            out += &format!("  checkpoint {found:?}\n");
        }
        for run in detail.runs() {
            out += &format!("  resumability {:?}\n", q.resumability(job, &run.id));
        }
    }
    out
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

fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

#[test]
fn jobs_held_by_their_events_answer_like_a_full_replay() {
    let dir = TempDir::new("fromlog");
    let (engine, _) = Engine::open(dir.path(), quiet_options()).expect("open");
    let mut jobs = workload(&engine, "a");
    engine.close().expect("close");

    // The snapshot names the events of the finished jobs instead of
    // holding their runs and checkpoints: a snapshot of the same views
    // holding them in full (on a copy, without full history) is larger by
    // more than 20 bytes for each of their 60-odd checkpoints.
    let snaps = files_in(&dir.join("snapshots"), "snap");
    assert_eq!(snaps.len(), 1);
    let snap_len = std::fs::metadata(&snaps[0]).expect("stat").len();
    let replay = without_snapshots(dir.path());
    {
        let copy = without_snapshots(dir.path());
        let mut opts = quiet_options();
        opts.keep_full_history = false;
        opts.snapshot_on_close = false;
        let (engine, _) = Engine::open(copy.path(), opts).expect("open copy");
        let full = engine.snapshot().expect("snapshot in full");
        let full_len = std::fs::metadata(&full.path).expect("stat").len();
        assert!(
            snap_len + 60 * 20 < full_len,
            "{snap_len} bytes, in full {full_len}"
        );
    }

    let opts = quiet_options();
    {
        let lazy = ReadOnly::open(dir.path(), opts.clone(), AsOf::Latest).expect("read-only");
        let full = ReadOnly::open(replay.path(), opts.clone(), AsOf::Latest).expect("replay");
        assert!(lazy.report().snapshot.is_some(), "the snapshot is used");
        assert!(full.report().snapshot.is_none());
        assert_eq!(answers(&lazy, &jobs), answers(&full, &jobs));
        assert!(lazy.with_views(Projections::clone) == full.with_views(Projections::clone));
        // As of the snapshot's LSN: the same snapshot, nothing replayed.
        let at = lazy.report().next_lsn;
        let lazy = ReadOnly::open(dir.path(), opts.clone(), AsOf::Lsn(at)).expect("as of");
        let full = ReadOnly::open(replay.path(), opts.clone(), AsOf::Lsn(at)).expect("as of");
        assert!(lazy.report().snapshot.is_some());
        assert_eq!(answers(&lazy, &jobs), answers(&full, &jobs));
    }

    // The writer: answers, then commands on jobs it has not decoded yet
    // (continuing finished ones), then views copied out and kept after it
    // closed, which must read alike without holding the directory's lock.
    let (lazy, report) = Engine::open(dir.path(), opts.clone()).expect("open");
    let (full, _) = Engine::open(replay.path(), opts.clone()).expect("open replay");
    assert!(report.snapshot.is_some());
    for (i, job) in jobs.iter().enumerate() {
        if i % 2 == 0 {
            for engine in [&lazy, &full] {
                let run = engine.start_run(job, None);
                if let Ok(run) = run {
                    engine
                        .record_step(job, &run, Step::new(b"later".to_vec(), usage(2)))
                        .expect("step");
                    engine.complete_run(job, &run, "later").expect("complete");
                }
            }
        }
    }
    jobs.extend(workload(&lazy, "b"));
    workload(&full, "b");
    assert_eq!(answers(&lazy, &jobs), answers(&full, &jobs));
    lazy.close().expect("close");
    full.close().expect("close");

    let (lazy, _) = Engine::open(dir.path(), opts.clone()).expect("reopen");
    let (full, _) = Engine::open(replay.path(), opts.clone()).expect("reopen replay");
    let kept = lazy.with_views(Projections::clone);
    drop(lazy);
    let (reopened, _) = Engine::open(dir.path(), opts).expect("the lock was released");
    drop(reopened);
    for job in &jobs {
        let want = full.job(job).expect("job");
        let got = kept.job(job).expect("readable").expect("kept job");
        assert_eq!(got.detail(), want.detail(), "{job}, read after close");
    }
}

/// Options with small segments, so that the log has several.
fn small_segments(keep_full_history: bool) -> Options {
    let mut opts = quiet_options();
    opts.segment_size_max = 4096;
    opts.preallocate_size_max = 0;
    opts.keep_full_history = keep_full_history;
    opts
}

/// Finished jobs, each written whole before the next begins.
fn finished_jobs(engine: &Engine, n: u64) -> Vec<JobId> {
    (0..n)
        .map(|i| {
            let job = engine
                .submit(Submit::new("agent", format!("input {i}")))
                .expect("submit")
                .job;
            let run = engine.start_run(&job, None).expect("start");
            for s in 0..4 {
                engine
                    .record_step(&job, &run, Step::new(vec![s; 60], usage(u64::from(s))))
                    .expect("step");
            }
            engine.complete_run(&job, &run, "done").expect("complete");
            engine
                .finish_job(&job, JobOutcome::Completed)
                .expect("finish");
            job
        })
        .collect()
}

#[test]
fn a_damaged_event_of_one_job_is_a_typed_error_for_that_job_alone() {
    let dir = TempDir::new("damaged-event");
    let opts = small_segments(true);
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let jobs = finished_jobs(&engine, 40);
    engine.close().expect("close");
    let before = ReadOnly::open(dir.path(), opts.clone(), AsOf::Latest).expect("read-only");
    let expected: Vec<String> = jobs.iter().map(|j| job_answers(&before, j)).collect();

    // The last record of the first segment: the walk of a sealed segment
    // meets nothing after it, so only that record fails to read.
    let segments = files_in(&dir.join("segments"), "seg");
    assert!(segments.len() > 2, "{} segments", segments.len());
    let second_base: u64 = segments[1]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment is named by its first LSN");
    let damaged_lsn = second_base - 1;
    let mut victim = None;
    before
        .for_each_event(damaged_lsn, |_, event| {
            victim = Some(event.job);
            ControlFlow::Break(())
        })
        .expect("read");
    let victim = victim.expect("an event there");
    drop(before);
    let mut bytes = std::fs::read(&segments[0]).expect("read segment");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&segments[0], &bytes).expect("write segment");

    let read_only = ReadOnly::open(dir.path(), opts.clone(), AsOf::Latest).expect("read-only");
    let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("open");
    assert!(report.snapshot.is_some());
    for q in [&read_only as &dyn Check, &engine] {
        q.check(&jobs, &expected, &victim);
    }
    drop(engine);

    // Without full history a snapshot holds every job's runs in full:
    // the damaged job's cannot be rebuilt, and is copied as it was (still
    // failing, typed) rather than making the snapshot unwritable.
    let mut no_history = opts;
    no_history.keep_full_history = false;
    let (engine, _) = Engine::open(dir.path(), no_history.clone()).expect("open");
    // Read before the snapshot drops the segments the events are in.
    let views = engine.with_views(Projections::clone);
    for job in views.jobs() {
        let _rebuilt_or_typed_error = job.map(|j| j.detail().is_ok());
    }
    engine.snapshot().expect("written despite the damaged job");
    drop(engine);
    let (engine, report) = Engine::open(dir.path(), no_history).expect("reopen");
    assert!(report.snapshot.is_some());
    for job in &jobs {
        let got = engine.with_views(|v| v.job(job).expect("readable").map(|j| j.detail().cloned()));
        let want = views
            .job(job)
            .expect("readable")
            .map(|j| j.detail().cloned());
        if job == &victim {
            assert!(matches!(got, Some(Err(_))), "{job}: {got:?}");
        } else {
            assert_eq!(got, want, "{job}");
        }
    }
}

/// The checks of the damaged-event test, for either kind of open.
trait Check {
    fn check(&self, jobs: &[JobId], expected: &[String], victim: &JobId);
}

impl<Q: Query> Check for Q {
    fn check(&self, jobs: &[JobId], expected: &[String], victim: &JobId) {
        // The listing needs no detail: every job is there, with its totals.
        assert_eq!(
            self.jobs(&JobFilter::all()).expect("listed").len(),
            jobs.len()
        );
        for (job, want) in jobs.iter().zip(expected) {
            if job == victim {
                for err in [
                    self.job(job).err(),
                    self.checkpoints(job).err(),
                    self.latest_checkpoint(job).err(),
                ] {
                    let Some(EngineError::DetailUnreadable(e)) = err else {
                        panic!("{job}: expected DetailUnreadable, got {err:?}");
                    };
                    assert_eq!(&e.job, job);
                    assert!(e.reason.contains("cannot be read"), "{e}");
                }
            } else {
                assert_eq!(&job_answers(self, job), want, "{job}");
            }
        }
    }
}

#[test]
fn without_full_history_snapshots_hold_details_and_reopen_exactly_after_segments_drop() {
    let dir = TempDir::new("no-history");
    let opts = small_segments(false);
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let jobs = finished_jobs(&engine, 40);
    let views = engine.with_views(Projections::clone);
    let info = engine.snapshot().expect("snapshot");
    assert!(info.segments_dropped > 0, "segments dropped");
    drop(engine);

    // The checkpoints' payloads went with their segments; the views, each
    // job's runs and checkpoints, must reopen exactly without them.
    let read_only = ReadOnly::open(dir.path(), opts.clone(), AsOf::Latest).expect("read-only");
    assert!(read_only.report().snapshot.is_some());
    let (engine, _) = Engine::open(dir.path(), opts).expect("open");
    for job in &jobs {
        let want = views
            .job(job)
            .expect("readable")
            .expect("job")
            .detail()
            .expect("decoded");
        for got in [read_only.job(job), engine.job(job)] {
            assert_eq!(got.expect("job").detail(), Ok(want), "{job}");
        }
    }
    assert!(read_only.with_views(|v| v == &views));
    assert!(engine.with_views(|v| v == &views));
}

/// Where each job's 128-byte record and its detail are in a snapshot file
/// (FORMAT.md, "Snapshot files": the body from byte 48; after the head,
/// one 24-byte chunk table entry per 64 jobs, where each chunk's region of
/// records starts and its first detail, then a 16-byte id index entry per
/// job, then the regions, then the details from `details_at` on), as
/// (record, detail, detail length), in job order.
fn layout(file: &[u8]) -> Vec<(usize, usize, usize)> {
    let body = 48;
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().expect("8")) as usize;
    let (head_len, jobs) = (u64_at(body + 8), u64_at(body + 40));
    let details_at = body + u64_at(body + 64);
    let chunks_at = body + head_len;
    let regions_at = chunks_at + jobs.div_ceil(64) * 24 + jobs * 16;
    (0..jobs)
        .scan(0, |detail, j| {
            let entry = chunks_at + j / 64 * 24;
            if j % 64 == 0 {
                *detail = details_at + u64_at(entry + 8);
            }
            let r = regions_at + u64_at(entry) + j % 64 * 128;
            let len = u64_at(r + 80);
            *detail += len;
            Some((r, *detail - len, len))
        })
        .collect()
}

/// Recomputes every checksum of a snapshot file edited in place: each
/// detail's, each chunk's (over its region: its records then its text,
/// up to the next chunk's or the details), the id index's, the head's,
/// the body's and the header's.
fn reseal_all(file: &mut [u8]) {
    for (record, detail, len) in layout(file) {
        let crc = crc32fast::hash(&file[detail..detail + len]);
        file[record + 88..record + 92].copy_from_slice(&crc.to_le_bytes());
    }
    let u64_at =
        |f: &[u8], at: usize| u64::from_le_bytes(f[at..at + 8].try_into().expect("8")) as usize;
    let body = 48;
    let (head_len, jobs) = (u64_at(file, body + 8), u64_at(file, body + 40));
    let details_at = body + u64_at(file, body + 64);
    let chunks = jobs.div_ceil(64);
    let chunks_at = body + head_len;
    let ids_at = chunks_at + chunks * 24;
    let regions_at = ids_at + jobs * 16;
    for c in 0..chunks {
        let entry = chunks_at + c * 24;
        let region = regions_at + u64_at(file, entry);
        let end = if c + 1 < chunks {
            regions_at + u64_at(file, entry + 24)
        } else {
            details_at
        };
        let crc = crc32fast::hash(&file[region..end]);
        file[entry + 16..entry + 20].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&file[ids_at..regions_at]);
    file[body + 72..body + 76].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&file[body + 8..body + head_len]);
    file[body + 4..body + 8].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&file[48..]);
    file[40..44].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&file[..44]);
    file[44..48].copy_from_slice(&crc.to_le_bytes());
}

/// A list of event LSNs that lies under checksums that hold — naming
/// another job's event, an event past the log's end, LSNs that do not
/// increase — makes that job's runs and checkpoints a typed error at the
/// engine's API, while the open uses the snapshot and every other job
/// reads exactly.
#[test]
fn a_lying_list_of_event_lsns_is_a_typed_error_for_that_job() {
    let dir = TempDir::new("lying-lsns");
    let (engine, _) = Engine::open(dir.path(), quiet_options()).expect("open");
    let mut jobs = finished_jobs(&engine, 3);
    // Two jobs whose events alternate: the first one's list is 2, 2, 2, 2
    // (created, started, step, completed, finished).
    let (m, o) = (
        engine.submit(Submit::new("agent", "m")).expect("m").job,
        engine.submit(Submit::new("agent", "o")).expect("o").job,
    );
    let (rm, ro) = (
        engine.start_run(&m, None).expect("start"),
        engine.start_run(&o, None).expect("start"),
    );
    for (job, run) in [(&m, &rm), (&o, &ro)] {
        engine
            .record_step(job, run, Step::new(b"s".to_vec(), usage(3)))
            .expect("step");
    }
    for (job, run) in [(&m, &rm), (&o, &ro)] {
        engine.complete_run(job, run, "done").expect("complete");
    }
    for job in [&m, &o] {
        engine
            .finish_job(job, JobOutcome::Completed)
            .expect("finish");
    }
    let info = engine.snapshot().expect("snapshot");
    jobs.push(o.clone());
    let expected: Vec<String> = jobs.iter().map(|j| job_answers(&engine, j)).collect();
    drop(engine);
    let original = std::fs::read(&info.path).expect("read");
    let (record, detail, len) = layout(&original)[3];
    assert_eq!(original[detail..detail + len], [4, 2, 2, 2, 2], "m's list");
    let last_lsn = u64::from_le_bytes(original[record + 64..record + 72].try_into().expect("8"));

    for (list, last, says) in [
        ([1, 3, 2, 2], last_lsn, format!("is of job {o}")),
        ([2, 2, 2, 100], last_lsn + 98, "cannot be read".to_owned()),
        ([2, 0, 4, 2], last_lsn, "a distance of 0".to_owned()),
    ] {
        let mut file = original.clone();
        file[detail + 1..detail + 5].copy_from_slice(&list);
        file[record + 64..record + 72].copy_from_slice(&last.to_le_bytes());
        reseal_all(&mut file);
        std::fs::write(&info.path, &file).expect("write");
        let (engine, report) = Engine::open(dir.path(), quiet_options()).expect("open");
        assert!(report.snapshot.is_some(), "{list:?}: the head holds");
        match engine.job(&m) {
            Err(EngineError::DetailUnreadable(e)) => {
                assert_eq!(e.job, m);
                assert!(e.reason.contains(&says), "{list:?}: {e}");
            }
            other => panic!("{list:?}: expected DetailUnreadable, got {other:?}"),
        }
        for (job, want) in jobs.iter().zip(&expected) {
            assert_eq!(&job_answers(&engine, job), want, "{list:?}: {job}");
        }
    }
}
