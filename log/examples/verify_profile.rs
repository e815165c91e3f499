//! A small, deterministic workload for profiling `LogReader::verify` under
//! callgrind (instruction counts do not depend on machine load):
//!
//! ```text
//! cargo build --release -p runlog-log --example verify_profile
//! valgrind --tool=callgrind target/release/examples/verify_profile 16 128
//! ```
//!
//! Arguments: log size in MiB (default 16), record payload bytes (default
//! 128), verify passes (default 1). The log is written once under
//! `$TMPDIR/runlog-verify-profile-<MiB>-<bytes>` and reused.

use std::path::PathBuf;

use runlog_log::{Log, LogOptions, LogReader, SyncPolicy, VerifyOutcome};

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), runlog_log::LogError> {
    let mib = arg(1, 16);
    let record_len = usize::try_from(arg(2, 128)).unwrap_or(128);
    let passes = arg(3, 1);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("runlog-verify-profile-{mib}-{record_len}"));
    if !dir.exists() {
        let (log, _) = Log::open(
            &dir,
            LogOptions {
                sync: SyncPolicy::Never,
                ..LogOptions::default()
            },
        )?;
        let rec = vec![0xa5u8; record_len];
        let batch: Vec<&[u8]> = vec![&rec; 16];
        let per_batch = (16 * (record_len + 28)) as u64;
        for _ in 0..(mib << 20) / per_batch {
            log.write(&batch)?;
        }
        log.sync()?;
    }
    let reader = LogReader::open(&dir, LogOptions::default())?;
    for _ in 0..passes {
        let v = reader.verify(|_, _| {})?;
        assert!(matches!(v.outcome, VerifyOutcome::Intact));
        println!("{} records, {} bytes", v.records, v.bytes);
    }
    Ok(())
}
