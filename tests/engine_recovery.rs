//! Recovery through the engine: a process killed between commands (the
//! engine dropped without close, the tail of the log cut or torn), damaged
//! and lying snapshots, records from a newer version, a second writer, and
//! the read-only open beside a live writer and back in time. Whatever
//! happens, every acknowledged command is there and the views equal a
//! fresh replay.

mod support;

use runlog::{
    AsOf, Engine, EngineError, JobFilter, JobOutcome, Projections, Query, ReadOnly, RunStatus,
    Step, Submit, Timestamp, Usage,
};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use support::{TempDir, last_segment, options};

/// Runs a small workload; returns the job ids acknowledged, in order.
fn workload(engine: &Engine, jobs: usize) -> Vec<runlog::JobId> {
    let mut acked = Vec::new();
    for i in 0..jobs {
        let job = engine
            .submit(Submit::new("agent", format!("input {i}")).fingerprint(format!("fp{i}")))
            .expect("submit")
            .job;
        let run = engine.start_run(&job, None).expect("start");
        for s in 0..3u64 {
            engine
                .record_step(
                    &job,
                    &run,
                    Step::new(
                        vec![s as u8; 300],
                        Usage {
                            input_tokens: 10 * s,
                            output_tokens: s,
                            cost_micros: 0,
                        },
                    ),
                )
                .expect("step");
        }
        engine.complete_run(&job, &run, "done").expect("complete");
        engine
            .finish_job(&job, JobOutcome::Completed)
            .expect("finish");
        acked.push(job);
    }
    acked
}

/// A copy of the views, for comparison (equality ignores index order).
fn fingerprint_views(q: &impl Query) -> Projections {
    q.with_views(Projections::clone)
}

/// Compares views without printing them all on failure.
fn assert_same(a: &Projections, b: &Projections, what: &str) {
    assert!(a == b, "{what}: the views differ");
}

/// A fresh replay of the whole log, ignoring snapshots.
fn fresh_replay(dir: &Path) -> Projections {
    let copy = TempDir::new("fresh");
    copy_dir(&dir.join("segments"), &copy.join("segments"));
    let ro = ReadOnly::open(copy.path(), options().0, AsOf::Latest).expect("replay");
    assert!(ro.report().snapshot.is_none());
    fingerprint_views(&ro)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn killed_between_commands_then_tail_cut_or_torn_keeps_every_acknowledged_command() {
    for damage in ["none", "garbage", "zeros", "cut-inside-a-partial-write"] {
        let dir = TempDir::new("kill");
        let (opts, _) = options();
        let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
        let acked = workload(&engine, 5);
        let job = engine
            .submit(Submit::new("agent", "in flight"))
            .expect("submit")
            .job;
        let run = engine.start_run(&job, None).expect("start");
        drop(engine); // killed: no close, no snapshot

        let seg = last_segment(dir.path());
        let len = std::fs::metadata(&seg).expect("meta").len();
        let mut f = OpenOptions::new()
            .append(true)
            .open(&seg)
            .expect("open seg");
        match damage {
            "garbage" => f.write_all(&[0xA5; 37]).expect("write"),
            "zeros" => f.write_all(&[0; 4096]).expect("write"),
            "cut-inside-a-partial-write" => {
                // A write of 64 bytes that a crash stopped after 20.
                f.write_all(&[0x11; 20]).expect("write")
            }
            _ => {}
        }
        drop(f);

        let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("reopen");
        // Zeros alone after the last batch are unused preallocated space
        // (FORMAT.md), not a torn tail.
        assert_eq!(
            report.recovery.torn_tail.is_some(),
            damage != "none" && damage != "zeros",
            "{damage}: {report:?}"
        );
        assert_eq!(
            report.recovery.unused_bytes,
            if damage == "zeros" { 4096 } else { 0 },
            "{damage}"
        );
        if let Some(torn) = &report.recovery.torn_tail {
            assert_eq!(
                torn.offset, len,
                "{damage}: cut exactly where the damage starts"
            );
            assert_eq!(torn.records_dropped, 0);
        }
        for id in &acked {
            let view = engine.job(id).expect("acknowledged job is there");
            assert_eq!(view.total_steps, 3, "{damage}");
            assert_eq!(view.status, runlog::JobStatus::Completed);
        }
        assert_eq!(
            engine.run(&job, &run).expect("run").status,
            RunStatus::Interrupted
        );
        let views = fingerprint_views(&engine);
        // Ten more commands, then a second open: nothing changes but them.
        workload(&engine, 2);
        engine.close().expect("close");
        let (engine, report) = Engine::open(dir.path(), opts).expect("third open");
        assert!(report.recovery.torn_tail.is_none());
        assert!(report.interrupted.is_empty());
        assert_eq!(
            engine.jobs(&JobFilter::all()).expect("jobs readable").len(),
            8
        );
        assert!(views.events_applied() < fingerprint_views(&engine).events_applied());
        assert_same(
            &fingerprint_views(&engine),
            &fresh_replay(dir.path()),
            damage,
        );
    }
}

#[test]
fn a_snapshot_gives_the_same_views_as_a_full_replay_and_a_damaged_one_is_skipped() {
    let dir = TempDir::new("snap");
    let (mut opts, _) = options();
    opts.snapshot_every_events = 0;
    opts.snapshot_every_bytes = 0;
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    workload(&engine, 3);
    let first = engine.snapshot().expect("snapshot 1");
    workload(&engine, 3);
    let second = engine.snapshot().expect("snapshot 2");
    workload(&engine, 1);
    let expected = fingerprint_views(&engine);
    drop(engine);

    let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(second.lsn));
    assert_same(&fingerprint_views(&engine), &expected, "after reopen");
    drop(engine);

    // Flip the last byte of the newest snapshot (in its last job's
    // detail, which an open does not otherwise read): the file's body
    // checksum fails, the snapshot is skipped, the older one is used, the
    // views are the same.
    let original = std::fs::read(&second.path).expect("read");
    let mut bytes = original.clone();
    *bytes.last_mut().expect("a body") ^= 0x40;
    std::fs::write(&second.path, &bytes).expect("write");
    let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(first.lsn));
    assert_eq!(report.snapshots_skipped.len(), 1);
    assert_eq!(report.snapshots_skipped[0].reason, "body checksum mismatch");
    assert_same(&fingerprint_views(&engine), &expected, "after reopen");
    drop(engine);

    // Flip a byte in the head of the body (its events count, body bytes
    // 16..24) and recompute the file's checksums around it: the head's own
    // checksum fails, and the snapshot is skipped the same way.
    let mut bytes = original;
    bytes[48 + 16] ^= 0x40;
    reseal_file(&mut bytes);
    std::fs::write(&second.path, &bytes).expect("write");
    let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(first.lsn));
    assert_eq!(report.snapshots_skipped.len(), 1);
    assert!(
        report.snapshots_skipped[0]
            .reason
            .starts_with("snapshot head checksum mismatch (stored 0x"),
        "{}",
        report.snapshots_skipped[0].reason
    );
    assert_same(&fingerprint_views(&engine), &expected, "after reopen");
    drop(engine);

    // A snapshot that claims more than the log holds (the log lost its
    // tail, say) is not believed.
    let future = dir
        .join("snapshots")
        .join(format!("{:020}.snap", 1_000_000));
    std::fs::copy(&first.path, &future).expect("copy");
    let (engine, report) = Engine::open(dir.path(), opts).expect("reopen");
    assert!(
        report
            .snapshots_skipped
            .iter()
            .any(|s| s.path == future && s.reason.contains("past the end of the log")),
        "{:?}",
        report.snapshots_skipped
    );
    assert_same(&fingerprint_views(&engine), &expected, "after reopen");
}

#[test]
fn a_record_from_a_newer_event_format_is_a_clear_error() {
    let dir = TempDir::new("newer");
    {
        let (log, _) =
            runlog::log::Log::open(dir.path(), runlog::log::LogOptions::default()).expect("log");
        log.append(&[&[2u8, 0, 0, 0]]).expect("append");
    }
    let err = Engine::open(dir.path(), options().0).expect_err("newer version");
    assert!(
        matches!(
            err,
            EngineError::NewerEventFormat {
                lsn: 0,
                version: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the record at LSN 0 was written by a newer version of runlog (event format 2; this build reads up to 1)"
    );
}

#[test]
fn a_second_writer_is_refused_and_a_refused_command_writes_nothing() {
    let dir = TempDir::new("locked");
    let (engine, _) = Engine::open(dir.path(), options().0).expect("open");
    let err = Engine::open(dir.path(), options().0).expect_err("locked");
    assert!(
        matches!(err, EngineError::Log(runlog::log::LogError::Locked { .. })),
        "{err}"
    );
    let job = engine.submit(Submit::new("a", "b")).expect("submit").job;
    let run = engine.start_run(&job, None).expect("start");
    engine.complete_run(&job, &run, "x").expect("complete");
    let before = engine.next_lsn();
    assert!(matches!(
        engine.complete_run(&job, &run, "again"),
        Err(EngineError::Transition(_))
    ));
    assert!(matches!(
        engine.record_step(&job, &"no-such-run".into(), Step::default()),
        Err(EngineError::Transition(_))
    ));
    assert_eq!(engine.next_lsn(), before);
    // A record over the limit is a typed error and writes nothing either.
    let running = engine.start_run(&job, None).expect("continue the job");
    let before = engine.next_lsn();
    let err = engine
        .record_step(
            &job,
            &running,
            Step::new(vec![0; 17 << 20], Usage::default()),
        )
        .expect_err("too large");
    assert!(
        matches!(
            err,
            EngineError::Log(runlog::log::LogError::RecordTooLarge { .. })
        ),
        "{err}"
    );
    assert_eq!(engine.next_lsn(), before);
}

#[test]
fn read_only_beside_a_live_writer_and_back_in_time() {
    let dir = TempDir::new("ro");
    let (opts, clock) = options();
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let early = workload(&engine, 2);
    let lsn_mid = engine.next_lsn();
    clock.advance(Duration::from_secs(3600));
    let time_mid = Timestamp(clock_now(&clock) - 1);
    let late = workload(&engine, 2);

    // Beside the live writer: no lock taken, everything written so far seen.
    let ro = ReadOnly::open(dir.path(), opts.clone(), AsOf::Latest).expect("read-only");
    assert_eq!(ro.jobs(&JobFilter::all()).expect("jobs readable").len(), 4);
    assert_same(
        &fingerprint_views(&ro),
        &fingerprint_views(&engine),
        "read-only",
    );
    assert_eq!(
        ro.checkpoint(&late[1], &ro.checkpoints(&late[1]).expect("cps")[2].id)
            .expect("payload")
            .payload,
        vec![2u8; 300]
    );

    for as_of in [AsOf::Lsn(lsn_mid), AsOf::Time(time_mid)] {
        let past = ReadOnly::open(dir.path(), opts.clone(), as_of).expect("as of");
        let ids: Vec<_> = past
            .jobs(&JobFilter::all())
            .expect("jobs readable")
            .into_iter()
            .rev()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, early, "{as_of:?}");
        assert_eq!(past.report().next_lsn, lsn_mid, "{as_of:?}");
    }
    // The writer still works: the reader took no lock.
    workload(&engine, 1);
    assert!(matches!(
        ReadOnly::open(dir.join("missing"), opts, AsOf::Latest),
        Err(EngineError::NoSuchDirectory { .. })
    ));
}

fn clock_now(clock: &runlog::ManualClock) -> u64 {
    use runlog::Clock;
    clock.now().0
}

#[test]
fn dropping_history_keeps_what_unfinished_jobs_need_and_reopens_from_the_snapshot() {
    let dir = TempDir::new("retention");
    let (mut opts, _) = options();
    opts.keep_full_history = false;
    opts.segment_size_max = 4096;
    opts.snapshot_every_events = 0;
    opts.snapshot_every_bytes = 0;
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    let finished = workload(&engine, 20);
    let open_job = engine
        .submit(Submit::new("agent", "still needed"))
        .expect("submit")
        .job;
    workload(&engine, 5);
    // Segments, and the index files of the sealed ones.
    let count = |ext: &str| {
        std::fs::read_dir(dir.join("segments"))
            .expect("dir")
            .filter(|e| e.as_ref().expect("entry").path().extension() == Some(ext.as_ref()))
            .count()
    };
    let (segments_before, indexes_before) = (count("seg"), count("idx"));
    assert_eq!(indexes_before, segments_before - 1);
    let info = engine.snapshot().expect("snapshot");
    assert!(info.segments_dropped > 0, "{info:?}");
    let dropped = info.segments_dropped as usize;
    assert_eq!(segments_before - count("seg"), dropped);
    assert_eq!(indexes_before - count("idx"), dropped);
    // The unfinished job's input is still readable; an old finished job's
    // checkpoint payload is gone, with a typed error rather than a panic.
    assert_eq!(engine.job_input(&open_job).expect("input"), b"still needed");
    let old_cp = engine.checkpoints(&finished[0]).expect("cps")[0].id.clone();
    let err = engine
        .checkpoint(&finished[0], &old_cp)
        .expect_err("dropped");
    assert!(matches!(err, EngineError::Log(_)), "{err}");
    let expected = fingerprint_views(&engine);
    drop(engine);

    let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(info.lsn));
    assert_same(&fingerprint_views(&engine), &expected, "after retention");
    drop(engine);

    // Without the snapshot the dropped history cannot be rebuilt: a clear
    // error, not views missing jobs.
    std::fs::remove_file(&info.path).expect("remove snapshot");
    let err = Engine::open(dir.path(), opts).expect_err("history missing");
    assert!(matches!(err, EngineError::HistoryMissing { .. }), "{err}");
}

/// A snapshot written by a build with another snapshot body version (here
/// version 3, the postcard head before the fixed-width one, and version 4,
/// the fixed-width head restored whole, which held every job's runs and
/// checkpoints, before the lazy base of version 5 that may name a job's
/// events in the log instead) or another file version (1, which
/// checksummed the whole body) is skipped by number, with checksums that
/// hold, and the log is replayed: never a misread view.
#[test]
fn a_snapshot_of_another_body_version_is_skipped_and_the_log_replayed() {
    let dir = TempDir::new("snapver");
    let (mut opts, _) = options();
    opts.snapshot_every_events = 0;
    opts.snapshot_every_bytes = 0;
    opts.snapshot_on_close = false;
    let (engine, _) = Engine::open(dir.path(), opts.clone()).expect("open");
    workload(&engine, 3);
    let snap = engine.snapshot().expect("snapshot");
    workload(&engine, 1);
    let expected = fingerprint_views(&engine);
    drop(engine);
    let original = std::fs::read(&snap.path).expect("read");

    // Body versions 3 and 4 under the same (version 2) file header, their
    // checksums recomputed (FORMAT.md, "Snapshot files").
    assert_eq!(original[48], runlog::projections::SNAPSHOT_FORMAT_VERSION);
    let body_version = |version: u8| {
        let mut bytes = original.clone();
        bytes[48] = version;
        reseal_file(&mut bytes);
        bytes
    };
    let (v3, v4) = (body_version(3), body_version(4));
    // File version 1, its header checksum (bytes 44..48, over 0..44) right.
    let mut old_file = original;
    old_file[8..12].copy_from_slice(&1u32.to_le_bytes());
    let header_crc = crc32fast::hash(&old_file[..44]);
    old_file[44..48].copy_from_slice(&header_crc.to_le_bytes());

    for (bytes, says) in [
        (
            v3,
            "snapshot body version 3 is not supported (this build reads 5)",
        ),
        (
            v4,
            "snapshot body version 4 is not supported (this build reads 5)",
        ),
        (old_file, "snapshot format version 1 is not supported"),
    ] {
        std::fs::write(&snap.path, &bytes).expect("write");
        let (engine, report) = Engine::open(dir.path(), opts.clone()).expect("reopen");
        assert_eq!(report.snapshot, None);
        assert_eq!(report.snapshots_skipped.len(), 1);
        assert_eq!(report.snapshots_skipped[0].path, snap.path);
        assert_eq!(report.snapshots_skipped[0].reason, says);
        assert_same(&fingerprint_views(&engine), &expected, "after replay");
    }
}

/// Recomputes a snapshot file's body checksum (bytes 40..44, over the body
/// from byte 48) and header checksum (44..48, over 0..44) after its body
/// was edited in place (FORMAT.md, "Snapshot files"), so that the body's
/// own checks are what judge the edit.
fn reseal_file(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[48..]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..44]);
    bytes[44..48].copy_from_slice(&crc.to_le_bytes());
}
