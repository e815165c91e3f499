//! Why this file exists: group commit hands the lead of the next fsync from
//! caller to caller. The callers an fsync woke are gathered before the next
//! one starts: the first back sleeps as the gatherer with a deadline, the
//! others queue behind it, and the last one back leads in its place; a
//! gatherer whose deadline passes leads itself; a leader whose fsync left
//! callers queued hands the lead to the oldest of them; a caller that finds
//! the log poisoned wakes every sleeper. All sleepers share two wake-up
//! words, so a wake-up says nothing by itself: each caller checks its own
//! flag. A mistake in any hand-over strands a
//! committer (a hang) or acknowledges a record that is not durable. These
//! tests drive every hand-over with many threads, some of which come back
//! late or never, under a watchdog so that a hang fails the test instead of
//! the CI job.

mod support;

use runlog::{Engine, EngineError, Query, Step, Submit, Usage};
use runlog_log::{
    Fault, Fs, FsFile, LockGuard, Log, LogError, LogOptions, SegmentBytes, SimFs, SyncPolicy,
};
use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use support::TempDir;

/// How long a test may run before it is taken for a hang.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `f` on its own thread and fails if it does not finish within
/// [`WATCHDOG`]: a committer stranded by a lost wake-up hangs forever.
fn with_watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("{what}: a committer was stranded (group commit hung)"))
}

/// The simulated file system with fsyncs that take as long as a disk's,
/// so that gathers have deadlines of a real length and callers queue
/// behind a gatherer (the simulated fsync alone returns at once).
#[derive(Debug)]
struct SlowSync(SimFs);

/// How long a simulated file fsync takes.
const SYNC_TIME: Duration = Duration::from_micros(300);

#[derive(Debug)]
struct SlowFile(Arc<dyn FsFile>);

impl FsFile for SlowFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        thread::sleep(SYNC_TIME);
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Fs for SlowSync {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.0.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.0.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.0.exists(path)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        Ok(Arc::new(SlowFile(self.0.create(path)?)))
    }
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        Ok(Arc::new(SlowFile(self.0.open_write(path)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.0.sync_dir(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.0.file_len(path)
    }
    fn map(&self, path: &Path, len: u64) -> io::Result<SegmentBytes> {
        self.0.map(path, len)
    }
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.read_all(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        self.0.try_lock(path)
    }
}

/// The engine and the log are shared between threads by reference: both
/// must stay `Send + Sync` whatever their locks become.
#[test]
fn engine_and_log_are_send_and_sync() {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<Engine>();
    shared_between_threads::<Log>();
}

/// Every append acknowledged under `SyncPolicy::Always` is durable when it
/// returns and readable afterwards, whatever mix of prompt, late and
/// departed committers the gather meets.
#[test]
fn late_and_departing_committers_are_never_stranded() {
    const THREADS: u8 = 16;
    let dir = TempDir::new("group-commit-late");
    let path = dir.path().to_path_buf();
    let acked = with_watchdog("late and departing committers", move || {
        let opts = LogOptions {
            sync: SyncPolicy::Always,
            ..LogOptions::default()
        };
        let (log, _) = Log::open(&path, opts).expect("open");
        let acked = Mutex::new(Vec::new());
        thread::scope(|s| {
            for t in 0..THREADS {
                let (log, acked) = (&log, &acked);
                s.spawn(move || {
                    // Thread t appends 10 + 4t records: the early finishers
                    // never come back, so gathers that expect them must end
                    // at their deadline. Every third thread pauses between
                    // appends, so it comes back after the others.
                    for i in 0..10 + 4 * u32::from(t) {
                        let payload = [&[t][..], &i.to_le_bytes()[..]].concat();
                        let a = log.append(&[&payload]).expect("append");
                        assert!(log.durable_lsn() >= a.next, "acknowledged before durable");
                        acked.lock().expect("lock").push((a.first, payload));
                        if t % 3 == 0 {
                            thread::sleep(Duration::from_micros(200 * u64::from(i % 4)));
                        }
                    }
                });
            }
        });
        assert_eq!(log.durable_lsn(), log.next_lsn());
        acked.into_inner().expect("lock")
    });
    let expected: usize = (0..THREADS).map(|t| 10 + 4 * usize::from(t)).sum();
    assert_eq!(acked.len(), expected);
    let (log, _) = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    assert_eq!(log.next_lsn(), expected as u64);
    for (lsn, payload) in acked {
        assert_eq!(log.read(lsn).expect("read"), payload);
    }
}

/// Once an fsync fails, every committer returns an error (none is left
/// asleep behind a gatherer or a leader) and nothing is acknowledged after
/// the failure; everything acknowledged before it survives a restart. With
/// small segments the failing fsync is often a rollover's, made by a writer
/// while other committers are gathered.
#[test]
fn a_failed_fsync_wakes_every_committer_and_acknowledges_nothing_after() {
    const THREADS: u8 = 12;
    let cases = [1u64, 2, 5, 9, 17, 40]
        .into_iter()
        .flat_map(|k| [(k, 400u64), (k, LogOptions::default().segment_size_max)]);
    for (fail_at, segment_size_max) in cases {
        let outcome = with_watchdog("failed fsync", move || {
            let sim = SimFs::new();
            let opts = LogOptions {
                sync: SyncPolicy::Always,
                segment_size_max,
                ..LogOptions::default()
            };
            let slow: Arc<dyn Fs> = Arc::new(SlowSync(sim.clone()));
            let (log, _) = Log::open_with(slow, "/data/log", opts.clone()).expect("open");
            sim.fail_sync_in(fail_at, Fault::Eio);
            let acked = Mutex::new(Vec::new());
            let errors = Mutex::new(Vec::new());
            thread::scope(|s| {
                for t in 0..THREADS {
                    let (log, acked, errors) = (&log, &acked, &errors);
                    s.spawn(move || {
                        for i in 0..200u32 {
                            let payload = [&[t][..], &i.to_le_bytes()[..]].concat();
                            match log.append(&[&payload]) {
                                Ok(a) => acked.lock().expect("lock").push((a.first, payload)),
                                Err(e) => {
                                    errors.lock().expect("lock").push(e);
                                    return;
                                }
                            }
                        }
                    });
                }
            });
            let errors = errors.into_inner().expect("lock");
            let acked = acked.into_inner().expect("lock");
            // No append succeeds once the log is poisoned.
            let after = log.append(&[b"after"]);
            drop(log);
            sim.restart(runlog_log::Tear::KeepUnsynced(0));
            let (log, _) = Log::open_with(sim.handle(), "/data/log", opts).expect("reopen");
            let survived = acked
                .iter()
                .all(|(lsn, payload)| log.read(*lsn).ok().as_ref() == Some(payload));
            (errors, acked.len(), after, survived)
        });
        let (errors, acked, after, survived) = outcome;
        assert_eq!(
            errors.len(),
            usize::from(THREADS),
            "fail at sync {fail_at}, segments of {segment_size_max} B"
        );
        for e in &errors {
            assert!(
                matches!(e, LogError::Poisoned | LogError::Io { .. }),
                "fail at sync {fail_at}, segments of {segment_size_max} B: {e:?}"
            );
        }
        assert!(
            matches!(after, Err(LogError::Poisoned)),
            "fail at sync {fail_at}, segments of {segment_size_max} B: {after:?}"
        );
        assert!(
            acked < usize::from(THREADS) * 200,
            "fail at sync {fail_at}, segments of {segment_size_max} B"
        );
        assert!(
            survived,
            "fail at sync {fail_at}, segments of {segment_size_max} B: an acknowledged record was lost"
        );
    }
}

/// Sixteen threads driving the engine: every acknowledged command is in the
/// log after a reopen, each job's events are in the log in the order its
/// thread's commands were acknowledged, and the views agree with the log.
#[test]
fn sixteen_engine_writers_every_acknowledgement_is_logged_in_order() {
    const THREADS: usize = 16;
    const JOBS: usize = 3;
    const STEPS: usize = 6;
    let dir = TempDir::new("group-commit-engine");
    let path = dir.path().to_path_buf();
    let acked = with_watchdog("sixteen engine writers", move || {
        let (opts, _clock) = support::options();
        let (engine, _) = Engine::open(&path, opts).expect("open");
        let acked = Mutex::new(Vec::new());
        thread::scope(|s| {
            for t in 0..THREADS {
                let (engine, acked) = (&engine, &acked);
                s.spawn(move || {
                    for j in 0..JOBS {
                        let job = engine
                            .submit(Submit::new("agent", format!("input {t} {j}")))
                            .expect("submit")
                            .job;
                        let run = engine.start_run(&job, None).expect("start");
                        let mut checkpoints = Vec::new();
                        for step in 0..STEPS as u64 {
                            let usage = Usage {
                                input_tokens: step + 1,
                                output_tokens: 1,
                                cost_micros: 0,
                            };
                            let payload = format!("{t} {j} {step}").into_bytes();
                            checkpoints.push(
                                engine
                                    .record_step(&job, &run, Step::new(payload, usage))
                                    .expect("step"),
                            );
                        }
                        engine.complete_run(&job, &run, "done").expect("complete");
                        acked.lock().expect("lock").push((t, job, checkpoints));
                    }
                });
            }
        });
        engine.close().expect("close");
        acked.into_inner().expect("lock")
    });
    assert_eq!(acked.len(), THREADS * JOBS);
    let (opts, _clock) = support::options();
    let (engine, _) = Engine::open(dir.path(), opts).expect("reopen");
    for (t, job, checkpoints) in &acked {
        let events = engine.job_events(job).expect("events");
        // submit, start, the steps, complete: in LSN order, as acknowledged.
        assert_eq!(events.len(), STEPS + 3, "thread {t} job {job}");
        assert!(events.windows(2).all(|w| w[0].0 < w[1].0));
        let logged: Vec<String> = events
            .iter()
            .filter_map(|(_, e)| match &e.change {
                runlog::projections::Change::StepRecorded { checkpoint, .. } => {
                    Some(checkpoint.to_string())
                }
                _ => None,
            })
            .collect();
        let acknowledged: Vec<String> = checkpoints.iter().map(ToString::to_string).collect();
        assert_eq!(logged, acknowledged, "thread {t} job {job}");
        let viewed: Vec<(String, u64)> = engine
            .checkpoints(job)
            .expect("checkpoints")
            .iter()
            .map(|c| (c.id.to_string(), c.step))
            .collect();
        let expected: Vec<(String, u64)> = acknowledged.into_iter().zip(1..).collect();
        assert_eq!(viewed, expected, "thread {t} job {job}");
        let summary = engine.job(job).expect("job");
        assert_eq!(summary.total_steps, STEPS as u64, "thread {t} job {job}");
    }
    let payload = engine
        .checkpoint(&acked[0].1, &acked[0].2[0])
        .expect("checkpoint")
        .payload;
    assert_eq!(payload, format!("{} 0 0", acked[0].0).into_bytes());
    let unknown = engine.checkpoints(&runlog::JobId::from("job-none"));
    assert!(
        matches!(unknown, Err(EngineError::UnknownJob { .. })),
        "{unknown:?}"
    );
}

/// A crash at any fsync (the sync does not happen and every later call
/// fails) loses nothing that was acknowledged: a committer returns only
/// after an fsync that started after its write has returned, whoever led
/// it and whoever it was handed to. Every committer returns, with an error
/// once the machine is down; some write during the fsync that crashes and
/// some pause or stop early, so the crash meets queued callers, a gatherer
/// and callers handed the lead.
#[test]
fn a_crash_at_any_fsync_loses_nothing_acknowledged() {
    const THREADS: u8 = 16;
    for crash_at in [1u64, 2, 3, 6, 11, 25, 60] {
        let (acked, errors, survived) = with_watchdog("crash at an fsync", move || {
            let sim = SimFs::new();
            let opts = LogOptions {
                sync: SyncPolicy::Always,
                ..LogOptions::default()
            };
            let slow: Arc<dyn Fs> = Arc::new(SlowSync(sim.clone()));
            let (log, _) = Log::open_with(slow, "/data/log", opts.clone()).expect("open");
            sim.crash_at_sync(crash_at);
            let acked = Mutex::new(Vec::new());
            let errors = Mutex::new(0usize);
            thread::scope(|s| {
                for t in 0..THREADS {
                    let (log, acked, errors) = (&log, &acked, &errors);
                    s.spawn(move || {
                        for i in 0..20 + 5 * u32::from(t) {
                            let payload = [&[t][..], &i.to_le_bytes()[..]].concat();
                            match log.append(&[&payload]) {
                                Ok(a) => acked.lock().expect("lock").push((a.first, payload)),
                                Err(_) => {
                                    *errors.lock().expect("lock") += 1;
                                    return;
                                }
                            }
                            if t % 4 == 1 {
                                thread::sleep(Duration::from_micros(150 * u64::from(i % 3)));
                            }
                        }
                    });
                }
            });
            drop(log);
            sim.restart(runlog_log::Tear::DropUnsynced);
            let (log, _) = Log::open_with(sim.handle(), "/data/log", opts).expect("reopen");
            let acked = acked.into_inner().expect("lock");
            let survived = acked
                .iter()
                .filter(|(lsn, payload)| log.read(*lsn).ok().as_ref() == Some(payload))
                .count();
            (acked.len(), errors.into_inner().expect("lock"), survived)
        });
        assert_eq!(
            survived, acked,
            "crash at sync {crash_at}: an acknowledged record was lost"
        );
        // A thread ends early only by an error; one that finished all its
        // appends before the crash has none. The crash comes before the
        // first threads are done for every `crash_at` here.
        assert!(errors > 0, "crash at sync {crash_at}: nobody saw the crash");
    }
}

/// Sixteen committers share fsyncs: with fsyncs as slow as a disk's, the
/// callers woken by one fsync are gathered into the next, so there are far
/// fewer fsyncs than commits. A loose bound (two commits per fsync, where
/// sixteen is usual) so that a loaded machine does not fail it; it fails
/// when committers sync alone or split into small cohorts.
#[test]
fn sixteen_committers_share_fsyncs() {
    const THREADS: u8 = 16;
    const APPENDS: u32 = 60;
    let (commits, syncs) = with_watchdog("sixteen committers", move || {
        let sim = SimFs::new();
        let opts = LogOptions {
            sync: SyncPolicy::Always,
            ..LogOptions::default()
        };
        let slow: Arc<dyn Fs> = Arc::new(SlowSync(sim.clone()));
        let (log, _) = Log::open_with(slow, "/data/log", opts).expect("open");
        let before = sim.sync_count();
        thread::scope(|s| {
            for t in 0..THREADS {
                let log = &log;
                s.spawn(move || {
                    for i in 0..APPENDS {
                        let payload = [&[t][..], &i.to_le_bytes()[..]].concat();
                        let a = log.append(&[&payload]).expect("append");
                        assert!(log.durable_lsn() >= a.next, "acknowledged before durable");
                    }
                });
            }
        });
        let syncs = sim.sync_count() - before;
        (u64::from(THREADS) * u64::from(APPENDS), syncs)
    });
    assert!(
        syncs * 2 <= commits,
        "{syncs} fsyncs for {commits} commits: committers are not sharing fsyncs"
    );
}
