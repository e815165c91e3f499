//! Writes a small log into the directory given as argument, reopens it, and
//! prints what recovery found: the quickest way to see the record log work
//! until the `runlog` command-line tool exists.
//!
//! ```text
//! cargo run --example log_roundtrip -- /tmp/runlog-demo
//! ```
//!
//! Run it twice on the same directory and the second run appends after the
//! records of the first. Damage the last segment file in between (truncate a
//! few bytes off it) and the second run reports the torn tail it cut.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use runlog_log::{Log, LogError, LogOptions, LogReader, VerifyOutcome};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: log_roundtrip <directory>");
        return ExitCode::from(2);
    };
    match run(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: PathBuf) -> Result<(), LogError> {
    let options = LogOptions {
        segment_size_max: 4096,
        ..LogOptions::default()
    };

    let (log, report) = Log::open(&dir, options.clone())?;
    println!("opened {}: {report:#?}", dir.display());
    let start = log.next_lsn();
    for i in 0..50u64 {
        let n = start + 2 * i;
        let first = format!("event {n}: job started");
        let second = format!("event {}: step recorded", n + 1);
        // One batch: both records survive a crash, or neither does.
        log.append(&[first.as_bytes(), second.as_bytes()])?;
    }
    println!(
        "appended 100 records as 50 batches: LSNs {start}..{}, durable up to {}",
        log.next_lsn(),
        log.durable_lsn()
    );
    drop(log);

    let (log, report) = Log::open(&dir, options.clone())?;
    println!("reopened: {report:#?}");
    let mut shown = 0;
    log.scan(log.next_lsn().saturating_sub(3), |lsn, payload| {
        println!("  {lsn}: {}", String::from_utf8_lossy(payload));
        shown += 1;
        ControlFlow::Continue(())
    })?;
    drop(log);

    let reader = LogReader::open(&dir, options)?;
    let verify = reader.verify(|_, _| {})?;
    let verdict = match &verify.outcome {
        VerifyOutcome::Intact => "intact".to_owned(),
        VerifyOutcome::TornTail(t) => format!("torn tail of {} bytes", t.bytes),
        VerifyOutcome::Corrupt(e) => format!("corrupt: {e}"),
    };
    println!(
        "verify: {} segments, {} records, {} bytes: {verdict}",
        verify.segments, verify.records, verify.bytes
    );
    Ok(())
}
