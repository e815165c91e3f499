//! The checks the fuzz targets run (`fuzz/fuzz_targets/*.rs` include this
//! module by path) and that `tests/fuzz_seeds.rs` runs on every checked-in
//! seed, so the corpus is an ordinary test too. Each takes raw bytes and
//! panics on a violated invariant; a typed error is never a violation.

#![allow(dead_code)]

pub mod model;

use arbitrary::{Arbitrary, Unstructured};
use runlog_engine::{AsOf, Engine, Event, Options, Projections, Query, ReadOnly};
use runlog_log::{Log, LogOptions, LogReader, RecoveryMode, SimFs};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// The data directory on the simulated file system.
const DIR: &str = "/f";

fn seg_path(base: u64) -> PathBuf {
    Path::new(DIR)
        .join("segments")
        .join(format!("{base:020}.seg"))
}

/// The records from the log's first LSN until the first one that fails
/// (a tolerant open checks sealed segments lazily, so a damaged one shows
/// up here, as a typed error), and whether one failed.
fn payloads(log: &Log) -> (Vec<Vec<u8>>, bool) {
    let Ok(iter) = log.iter_from(log.first_lsn()) else {
        return (Vec::new(), true);
    };
    let mut out = Vec::new();
    for r in iter {
        match r {
            Ok(r) => out.push(r.payload),
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Raw bytes as segment files of a data directory, through every entry
/// point of the log.
///
/// `data[0]` picks the layout: even, all of `data[1..]` is the first
/// segment; odd, `data[1..]` is cut into up to four segments at lengths
/// given by the bytes that follow, each named by an LSN from its cut byte.
/// Invariant: no panic; after a tolerant open succeeds, a second open finds
/// no torn tail and reads back the same records (recovery is idempotent),
/// and if a strict open (which checks every segment) then succeeds, every
/// record reads back without error.
pub fn log_bytes(data: &[u8]) {
    let sim = SimFs::new();
    let Some((&layout, rest)) = data.split_first() else {
        return;
    };
    if layout % 2 == 0 {
        sim.write_file(&seg_path(0), rest);
    } else {
        let mut rest = rest;
        let mut base = 0u64;
        for _ in 0..4 {
            let Some((&cut, tail)) = rest.split_first() else {
                break;
            };
            let len = (usize::from(cut) * 4).min(tail.len());
            sim.write_file(&seg_path(base), &tail[..len]);
            base += u64::from(cut % 8);
            rest = &tail[len..];
            if rest.is_empty() {
                break;
            }
        }
    }
    let options = LogOptions {
        record_size_max: 1 << 16,
        ..LogOptions::default()
    };
    if let Ok(reader) = LogReader::open_with(sim.handle(), DIR, options.clone()) {
        let _ = reader.verify(|_, _| {});
        if let Ok(iter) = reader.iter_from(reader.first_lsn()) {
            for r in iter {
                if r.is_err() {
                    break;
                }
            }
        }
        let _ = reader.read(reader.first_lsn());
        let _ = reader.read(reader.next_lsn().saturating_sub(1));
    }
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..options.clone()
    };
    drop(Log::open_with(sim.handle(), DIR, strict.clone()));
    let Ok((log, _)) = Log::open_with(sim.handle(), DIR, options.clone()) else {
        return;
    };
    let first = payloads(&log);
    drop(log);
    let (log, report) = match Log::open_with(sim.handle(), DIR, options.clone()) {
        Ok(opened) => opened,
        Err(e) => panic!("a recovered log does not reopen: {e}"),
    };
    assert!(
        report.torn_tail.is_none(),
        "a second open found a torn tail: {report:?}"
    );
    assert_eq!(payloads(&log), first, "a second open read other records");
    drop(log);
    if let Ok((log, _)) = Log::open_with(sim.handle(), DIR, strict) {
        assert_eq!(
            payloads(&log),
            (first.0, false),
            "a log that passes a strict open reads back whole"
        );
    }
}

fn events(q: &impl Query) -> Result<Vec<Event>, runlog_engine::EngineError> {
    let mut out = Vec::new();
    q.for_each_event(0, |_, e| {
        out.push(e);
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

fn fold(events: &[Event]) -> Projections {
    let mut p = Projections::new();
    for (lsn, e) in events.iter().enumerate() {
        if let Err(err) = p.apply(lsn as u64, e) {
            panic!("an event the engine replayed does not fold: {err}");
        }
    }
    p
}

/// Asks every query of every job, for panics.
fn ask_everything(q: &impl Query) {
    let jobs = q.with_views(|v| {
        v.jobs()
            .map(|j| j.expect("jobs materialize").clone())
            .collect::<Vec<_>>()
    });
    for job in &jobs {
        let _ = q.run_tree(&job.id);
        let _ = q.job_input(&job.id);
        let _ = q.job_events(&job.id);
        let _ = q.latest_checkpoint(&job.id);
        for cp in q.checkpoints(&job.id).unwrap_or_default() {
            let _ = q.checkpoint(&job.id, &cp.id);
        }
        if let Ok(detail) = job.detail() {
            for run in detail.runs() {
                let _ = q.resumability(&job.id, &run.id);
            }
        }
    }
    let _ = q.interrupted();
}

/// Raw bytes as event records: `data[0]` is a separator, and `data[1..]`
/// split at it gives up to 16 records, each appended as its own batch to a
/// fresh log, then read back through the engine.
///
/// Invariant: no panic; a read-only open and a writable open agree on
/// whether the records are events; when they are, each one's views are a
/// plain fold of the events it reads back, and every query answers.
pub fn event_bytes(data: &[u8]) {
    let Some((&sep, rest)) = data.split_first() else {
        return;
    };
    let records: Vec<&[u8]> = rest.split(|b| *b == sep).take(16).collect();
    let sim = SimFs::new();
    {
        let Ok((log, _)) = Log::open_with(sim.handle(), DIR, LogOptions::default()) else {
            panic!("a fresh simulated log does not open");
        };
        for r in &records {
            if let Err(e) = log.append(&[r]) {
                panic!("append to a fresh simulated log failed: {e}");
            }
        }
    }
    let ro = ReadOnly::open_with(DIR, Options::default(), AsOf::Latest, sim.handle());
    if let Ok(ro) = &ro {
        let evs = events(ro).unwrap_or_else(|e| panic!("replayed events do not read back: {e}"));
        assert!(
            ro.with_views(Projections::clone) == fold(&evs),
            "read-only views differ from the fold of their events"
        );
        ask_everything(ro);
    }
    let rw = Engine::open_with(DIR, Options::default(), sim.handle());
    assert_eq!(
        ro.is_ok(),
        rw.is_ok(),
        "read-only and writable opens disagree: {:?} / {:?}",
        ro.as_ref().err(),
        rw.as_ref().err()
    );
    if let Ok((engine, _)) = rw {
        let evs =
            events(&engine).unwrap_or_else(|e| panic!("replayed events do not read back: {e}"));
        assert!(
            engine.with_views(Projections::clone) == fold(&evs),
            "engine views differ from the fold of their events"
        );
        ask_everything(&engine);
    }
}

/// Raw bytes as an `Arbitrary` setup and sequence of commands, crashes and
/// faults, run through the engine on the simulated file system and checked
/// against the model (see `model`).
pub fn engine_ops(data: &[u8]) {
    if let Some((setup, ops)) = engine_ops_input(data) {
        model::run(&setup, &ops);
    }
}

/// The setup and ops an `engine_ops` input stands for (at most 64 ops).
pub fn engine_ops_input(data: &[u8]) -> Option<(model::Setup, Vec<model::Op>)> {
    let mut u = Unstructured::new(data);
    let setup = model::Setup::arbitrary(&mut u).ok()?;
    let mut ops = Vec::new();
    while ops.len() < 64 && !u.is_empty() {
        match model::Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    Some((setup, ops))
}
