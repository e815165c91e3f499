//! Durable commands (`SyncPolicy::Always`) from several threads, the
//! compare harness's durable-16-writers workload outside it, for counting
//! what a group-commit cycle costs (context switches, futex calls, CPU and
//! instructions per command):
//!
//! ```sh
//! cargo build --release --example command_profile
//! target/release/examples/command_profile 16 40
//! perf stat -e task-clock,context-switches,cpu-migrations target/release/examples/command_profile 16 40
//! strace -f -c -e trace=futex,fdatasync,pwrite64 target/release/examples/command_profile 16 40
//! valgrind --tool=callgrind target/release/examples/command_profile 16 10
//! ```
//!
//! Arguments: threads (default 16), jobs per thread (default 40). Each job
//! is the harness's: submit, start a run, 10 steps with 200-byte
//! checkpoints, complete the run, finish the job (14 commands). Prints the
//! commands and commands per second. The data directory goes under
//! `$TMPDIR` and is removed.

use runlog::{Engine, JobOutcome, Options, Step, Submit, Usage};
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::Instant;

/// Commands per job: submit, start, 10 steps, complete, finish.
const COMMANDS_PER_JOB: u64 = 14;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("command_profile: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let jobs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(40);
    let dir = std::env::temp_dir().join(format!("runlog-command-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = Options::default();
    options.snapshot_on_close = false;
    let (engine, _) = Engine::open(&dir, options)?;
    let barrier = Barrier::new(threads + 1);
    let payload = "p".repeat(200);
    let start = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (engine, barrier, payload) = (&engine, &barrier, &payload);
                s.spawn(move || {
                    barrier.wait();
                    for j in 0..jobs {
                        let input = format!("input {t} {j}");
                        let job = engine.submit(Submit::new("agent", input))?.job;
                        let run = engine.start_run(&job, None)?;
                        for step in 0..10u64 {
                            let usage = Usage {
                                input_tokens: 100 + step,
                                output_tokens: 20,
                                cost_micros: 3,
                            };
                            let step = Step::new(payload.as_bytes().to_vec(), usage);
                            engine.record_step(&job, &run, step)?;
                        }
                        engine.complete_run(&job, &run, "done")?;
                        engine.finish_job(&job, JobOutcome::Completed)?;
                    }
                    Ok::<(), runlog::EngineError>(())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut result = Ok(());
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e.to_string()),
                Err(_) => result = Err("a writer thread panicked".to_owned()),
            }
        }
        result.map(|()| start)
    })?;
    let secs = start.elapsed().as_secs_f64();
    let commands = threads as u64 * jobs * COMMANDS_PER_JOB;
    println!(
        "{threads} threads, {commands} commands in {secs:.3} s: {:.0} commands/s",
        commands as f64 / secs
    );
    engine.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
