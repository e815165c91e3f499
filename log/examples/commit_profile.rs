//! Durable appends (`SyncPolicy::Always`) from several threads, for looking
//! at group commit outside criterion:
//!
//! ```text
//! cargo build --release -p runlog-log --example commit_profile
//! target/release/examples/commit_profile 16 3200
//! strace -f -c --seccomp-bpf -e trace=fdatasync target/release/examples/commit_profile 16 3200
//! ```
//!
//! Arguments: threads (default 16), total commits (default 3200), then
//! `bare` to time a plain write + fdatasync loop of the same bytes instead.
//! Prints commits per second. The log goes under `$TMPDIR` and is removed.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Barrier;
use std::time::Instant;

use runlog_log::{Log, LogOptions, SyncPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let threads: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let total: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3200);
    let bare = args.get(3).is_some_and(|a| a == "bare");
    let dir = std::env::temp_dir().join(format!("runlog-commit-profile-{}", std::process::id()));
    let per_thread = total.div_ceil(threads.max(1));
    let record = [0x5au8; 128];
    let secs = if bare {
        std::fs::create_dir_all(&dir)?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("bare"))?;
        // The bytes of one framed 128-byte record.
        let rec = [0x5au8; 128 + 28];
        let start = Instant::now();
        for _ in 0..per_thread * threads {
            f.write_all(&rec)?;
            f.sync_data()?;
        }
        start.elapsed().as_secs_f64()
    } else {
        let opts = LogOptions {
            sync: SyncPolicy::Always,
            ..LogOptions::default()
        };
        let (log, _) = Log::open(&dir, opts)?;
        let barrier = Barrier::new(usize::try_from(threads)? + 1);
        let start = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (log, barrier) = (&log, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        for _ in 0..per_thread {
                            log.append(&[&record])?;
                        }
                        Ok::<(), runlog_log::LogError>(())
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            for w in workers {
                w.join().map_err(|_| "worker panicked")??;
            }
            Ok::<_, Box<dyn std::error::Error>>(start)
        })?;
        start.elapsed().as_secs_f64()
    };
    let _ = std::fs::remove_dir_all(&dir);
    let n = per_thread * threads;
    println!(
        "{} {threads} threads: {n} commits in {secs:.3} s = {:.0}/s",
        if bare { "bare" } else { "log" },
        n as f64 / secs
    );
    Ok(())
}
