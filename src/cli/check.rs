//! `verify` (read-only, fsck-like exit status) and `recover` (opens for
//! writing: cuts a torn tail, records interrupted runs, or salvages).

use super::fail::{self, CORRUPT, Failure, OPERATIONAL, TORN_TAIL};
use super::out::{self, num};
use runlog::log::{LogError, LogOptions, LogReader, VerifyOutcome};
use runlog::projections::Projections;
use runlog::{AsOf, Engine, EngineError, JobStatus, Options, Query, RecoveryMode};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;

/// Logs smaller than this verify too fast for a progress bar to help.
const PROGRESS_BYTES_MIN: u64 = 32 << 20;

fn progress_bar(total: u64, what: &'static str) -> indicatif::ProgressBar {
    if total < PROGRESS_BYTES_MIN || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

/// What replaying every event found, when the bytes checked out.
struct Replayed {
    events: u64,
    from: u64,
    jobs: Vec<(JobStatus, usize)>,
    snapshot: Option<String>,
}

/// Decodes every event from the first retained LSN, folds them into fresh
/// views, and compares those with the views a normal open builds (from the
/// newest snapshot plus the tail): a snapshot that disagrees with the log
/// is caught here.
fn replay_all(dir: &Path) -> Result<Replayed, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let first = ro.log().first_lsn();
    let end = ro.log().next_lsn();
    let mut fresh = Projections::new();
    let mut refused = None;
    let mut events = 0u64;
    let bar = progress_bar(end.saturating_sub(first), "replaying");
    if end > first {
        ro.for_each_event(first, |lsn, event| {
            if let Err(e) = fresh.apply(lsn, &event) {
                refused = Some(format!(
                    "the event at LSN {lsn} in {} does not replay: {e}",
                    dir.display()
                ));
                return ControlFlow::Break(());
            }
            events += 1;
            if events.is_multiple_of(4096) {
                bar.set_position(events);
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| Failure::engine(dir, e))?;
    }
    bar.finish_and_clear();
    if let Some(why) = refused {
        return Err(Failure::new(CORRUPT, why));
    }
    let snapshot = ro
        .report()
        .snapshot
        .as_ref()
        .map(|s| s.path.display().to_string());
    // With the full history on disk the fresh fold must equal the views
    // the open built; with dropped segments only the snapshot covers the
    // start, and the tail replay the open did is the check.
    if first == 0 && !ro.with_views(|v| v == &fresh) {
        return Err(Failure::new(
            CORRUPT,
            format!(
                "the views loaded from snapshot {} disagree with a full replay of the log in {}",
                snapshot.as_deref().unwrap_or("(none)"),
                dir.display()
            ),
        ));
    }
    let jobs = ro
        .with_views(|v| {
            JobStatus::ALL
                .iter()
                .map(|s| Ok((*s, v.count_with_status(*s)?)))
                .collect::<Result<Vec<_>, EngineError>>()
        })
        .map_err(|e| Failure::engine(dir, e))?;
    Ok(Replayed {
        events,
        from: first,
        jobs,
        snapshot,
    })
}

/// `runlog verify`: 0 intact, 1 torn tail only, 4 corruption, 8 not a
/// runlog directory or I/O error. Never writes.
pub fn verify(dir: &Path, json: bool) -> Result<u8, Failure> {
    fail::existing_dir(dir)?;
    let reader = match LogReader::open(dir, LogOptions::default()) {
        Ok(r) => r,
        Err(e @ LogError::Corruption { .. }) => return corrupt(dir, &e, None, json),
        Err(e) => return Err(Failure::log(dir, e)),
    };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let report = reader
        .verify(|done, total| {
            let b = bar.get_or_insert_with(|| progress_bar(total, "checking"));
            b.set_position(done);
        })
        .map_err(|e| Failure::log(dir, e))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let base = json!({
        "dir": dir.display().to_string(),
        "segments": report.segments,
        "records": report.records,
        "bytes": report.bytes,
        "next_lsn": report.next_lsn,
    });
    let torn = match report.outcome {
        VerifyOutcome::Corrupt(e @ LogError::Corruption { .. }) => {
            return corrupt(dir, &e, Some(base), json);
        }
        VerifyOutcome::Corrupt(e) => return Err(Failure::log(dir, e)),
        VerifyOutcome::TornTail(t) => Some(t),
        VerifyOutcome::Intact => None,
    };
    let replayed = match replay_all(dir) {
        Ok(r) => r,
        Err(f) if f.code == CORRUPT && json => {
            let mut v = base;
            v["outcome"] = json!("corrupt");
            v["corruption"] = json!({"detail": f.message});
            v["exit_code"] = json!(CORRUPT);
            print_json(&v)?;
            return Ok(CORRUPT);
        }
        Err(f) => return Err(f),
    };
    let code = if torn.is_some() { TORN_TAIL } else { 0 };
    if json {
        let mut v = base;
        v["outcome"] = json!(if torn.is_some() {
            "torn_tail"
        } else {
            "intact"
        });
        v["events_replayed"] = json!(replayed.events);
        v["snapshot"] = json!(replayed.snapshot);
        v["torn_tail"] = json!(torn.as_ref().map(|t| json!({
            "segment": t.segment.display().to_string(),
            "offset": t.offset,
            "bytes": t.bytes,
            "records_dropped": t.records_dropped,
        })));
        v["exit_code"] = json!(code);
        print_json(&v)?;
        return Ok(code);
    }
    let mut w = out::stdout();
    writeln!(w, "verify {}", dir.display())?;
    writeln!(
        w,
        "  segments  {} ({} bytes)",
        report.segments,
        num(report.bytes)
    )?;
    writeln!(
        w,
        "  records   {}: checksums, LSN sequence and chain check out",
        num(report.records)
    )?;
    let snap = replayed
        .snapshot
        .as_deref()
        .map_or_else(String::new, |s| format!("; the views match snapshot {s}"));
    writeln!(
        w,
        "  events    {} decoded and replayed from LSN {}{snap}",
        num(replayed.events),
        replayed.from
    )?;
    let jobs: Vec<String> = replayed
        .jobs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    if !jobs.is_empty() {
        writeln!(w, "  jobs      {}", jobs.join(", "))?;
    }
    match &torn {
        None => writeln!(w, "intact")?,
        Some(t) => writeln!(
            w,
            "torn tail: {} bytes at offset {} of {} ({} whole records of an incomplete batch); \
             nothing acknowledged is lost, and `runlog recover` (or any writer's open) cuts it",
            num(t.bytes),
            t.offset,
            t.segment.display(),
            t.records_dropped
        )?,
    }
    w.flush()?;
    Ok(code)
}

fn print_json(v: &Value) -> Result<(), Failure> {
    let mut w = out::stdout();
    serde_json::to_writer_pretty(&mut w, v).map_err(std::io::Error::from)?;
    writeln!(w)?;
    w.flush()?;
    Ok(())
}

/// Reports corruption: exit 4, with segment, offset and LSN.
fn corrupt(dir: &Path, e: &LogError, base: Option<Value>, json: bool) -> Result<u8, Failure> {
    if json {
        let mut v = base.unwrap_or_else(|| json!({"dir": dir.display().to_string()}));
        v["outcome"] = json!("corrupt");
        v["corruption"] = match e {
            LogError::Corruption {
                segment,
                offset,
                lsn,
                detail,
            } => json!({
                "segment": segment.display().to_string(),
                "offset": offset,
                "lsn": lsn,
                "detail": detail.to_string(),
            }),
            other => json!({"detail": other.to_string()}),
        };
        v["exit_code"] = json!(CORRUPT);
        print_json(&v)?;
        return Ok(CORRUPT);
    }
    Err(Failure::new(
        CORRUPT,
        format!("{e}; `runlog recover --salvage` keeps the valid prefix and sets the rest aside"),
    ))
}

/// `runlog recover`.
pub fn recover(dir: &Path, salvage: bool, json: bool) -> Result<u8, Failure> {
    fail::existing_dir(dir)?;
    // The writer's open would create a log in any directory; recovering
    // one that holds none is a mistake to report, not to act on.
    if !dir.join("segments").is_dir() {
        return Err(Failure::new(
            OPERATIONAL,
            format!(
                "{} is not a runlog data directory: it has no segments directory",
                dir.display()
            ),
        ));
    }
    let mut options = Options::default();
    options.recovery = if salvage {
        RecoveryMode::Salvage
    } else {
        RecoveryMode::TolerateTornTail
    };
    let (engine, report) = match Engine::open(dir, options) {
        Ok(x) => x,
        Err(e @ EngineError::Log(LogError::Corruption { .. })) if !salvage => {
            return Err(Failure::new(
                CORRUPT,
                format!(
                    "{}; nothing was changed: `runlog recover --salvage` keeps the valid prefix and moves the rest to a quarantine file",
                    Failure::engine(dir, e).message
                ),
            ));
        }
        Err(e) => return Err(Failure::engine(dir, e)),
    };
    let interrupted = report.interrupted.clone();
    let next_lsn = engine.next_lsn();
    engine.close().map_err(|e| Failure::engine(dir, e))?;
    let torn = report.recovery.torn_tail.as_ref();
    let salvaged = report.recovery.salvaged.as_ref();
    if json {
        let v = json!({
            "dir": dir.display().to_string(),
            "next_lsn": next_lsn,
            "torn_tail": torn.map(|t| json!({
                "segment": t.segment.display().to_string(),
                "offset": t.offset,
                "bytes": t.bytes,
                "records_dropped": t.records_dropped,
                "side_file": t.side_file.as_ref().map(|p| p.display().to_string()),
            })),
            "unused_bytes": report.recovery.unused_bytes,
            "salvaged": salvaged.map(|s| json!({
                "segment": s.segment.display().to_string(),
                "offset": s.offset,
                "lsn": s.lsn,
                "bytes": s.bytes,
                "quarantine_file": s.quarantine_file.display().to_string(),
                "reason": s.reason,
                "segments_moved": s.segments_moved.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            })),
            "interrupted": interrupted.iter().map(|r| json!({
                "job_id": r.job.as_str(),
                "run_id": r.run.as_str(),
                "was": r.was.name(),
                "now": r.now.name(),
                "resumable": r.resumability.is_resumable(),
                "reason": match &r.resumability {
                    runlog::Resumability::Resumable => None,
                    runlog::Resumability::Blocked { reason } => Some(reason.to_string()),
                },
            })).collect::<Vec<_>>(),
            "events_replayed": report.events_replayed,
        });
        print_json(&v)?;
        return Ok(0);
    }
    let mut w = out::stdout();
    writeln!(w, "recovered {}", dir.display())?;
    match torn {
        None => writeln!(w, "  torn tail    none")?,
        Some(t) => writeln!(
            w,
            "  torn tail    cut {} bytes ({} whole records of an incomplete batch) at offset {} of {}; kept in {}",
            num(t.bytes),
            t.records_dropped,
            t.offset,
            t.segment.display(),
            t.side_file
                .as_ref()
                .map_or_else(|| "(not kept)".to_owned(), |p| p.display().to_string())
        )?,
    }
    if report.recovery.unused_bytes > 0 {
        writeln!(
            w,
            "  unused       {} bytes of preallocated zeros after the last batch (not a tail; cut off at close)",
            num(report.recovery.unused_bytes)
        )?;
    }
    if let Some(s) = salvaged {
        writeln!(
            w,
            "  salvaged     set aside {} bytes from LSN {} on (offset {} of {}) in {}; {} later segments moved; reason: {}",
            num(s.bytes),
            s.lsn,
            s.offset,
            s.segment.display(),
            s.quarantine_file.display(),
            s.segments_moved.len(),
            s.reason
        )?;
    }
    if interrupted.is_empty() {
        writeln!(w, "  interrupted  none")?;
    } else {
        writeln!(
            w,
            "  interrupted  {} runs were in flight:",
            interrupted.len()
        )?;
        for r in &interrupted {
            let resume = match &r.resumability {
                runlog::Resumability::Resumable => "resumable".to_owned(),
                runlog::Resumability::Blocked { reason } => format!("not resumable: {reason}"),
            };
            writeln!(
                w,
                "    {} {}  was {}, now {} ({})",
                out::clean(r.job.as_str()),
                out::clean(r.run.as_str()),
                r.was.name(),
                r.now.name(),
                out::clean(&resume)
            )?;
        }
    }
    writeln!(w, "  log          ends at LSN {next_lsn}")?;
    w.flush()?;
    Ok(0)
}
