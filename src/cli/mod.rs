//! The command line: arguments, dispatch, and how errors become one
//! sentence on stderr and an exit status.

mod check;
mod demo;
mod fail;
mod inspect;
mod out;
mod timeline;

use clap::{Parser, Subcommand, ValueEnum};
use fail::Failure;
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Read-only commands (jobs, show, checkpoints, checkpoint, interrupted, events,
verify, replay, timeline) take no lock and never change a byte of the
directory: run them on a copy, or beside a live writer.

Exit status:
  0  success (verify: the log is intact)
  1  verify: only a torn tail, which opening would cut; nothing acknowledged is lost
  2  bad arguments
  3  no such job or checkpoint in the directory
  4  corruption that needs `runlog recover --salvage`
  5  the directory is locked by a live writer (recover, demo)
  8  not a runlog directory, written by a newer version, or an I/O error

Start with:
  runlog demo ./runlog-data
  runlog jobs ./runlog-data";

/// The durable, auditable record of agent and workflow jobs: look into a
/// runlog data directory.
#[derive(Debug, Parser)]
#[command(name = "runlog", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a simulated agent workload into DIR (start here).
    ///
    /// Jobs record steps with checkpoints of a few KiB and token usage,
    /// delegate to child runs, wait for input, fail and resume from a
    /// checkpoint, get continued, and are submitted with fingerprints (some
    /// resubmitted, which attaches to the running job). The same seed gives
    /// the same jobs, ids and timestamps.
    Demo {
        /// The data directory (created if missing; an existing runlog
        /// directory is appended to).
        dir: PathBuf,
        /// How many jobs to run.
        #[arg(long, default_value_t = 12)]
        jobs: u32,
        /// Seed of the simulated workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// When commands are fsynced. With `always`, each finished job is
        /// durable when its `committed <job id>` line is printed.
        #[arg(long, value_enum, default_value_t = SyncArg::Always)]
        sync: SyncArg,
        /// End like a crash mid-write: three more jobs are left in flight
        /// and a partial batch is left at the tail of the log.
        #[arg(long)]
        crash: bool,
        /// Sleep this many milliseconds of real time per step, to watch the
        /// log grow (the recorded times do not change).
        #[arg(long, default_value_t = 0, value_name = "MS")]
        pace: u64,
        /// Seal log segments at this many bytes (default 64 MiB); a small
        /// value shows segment rollover.
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(4096..))]
        segment_size: Option<u64>,
    },
    /// List jobs, newest first: id, key, status, steps, tokens, times.
    Jobs {
        /// The data directory.
        dir: PathBuf,
        /// Only jobs with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only jobs with this key (the agent or workflow name).
        #[arg(long)]
        key: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one job: totals, run tree, checkpoints, resumability.
    ///
    /// Delegated runs are indented under their parent; each run says
    /// whether it could be resumed now, and if not, why.
    Show {
        /// The data directory.
        dir: PathBuf,
        /// The job's id, as `runlog jobs` lists it.
        job_id: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List a job's checkpoints in step order: step, id, run, usage.
    Checkpoints {
        /// The data directory.
        dir: PathBuf,
        /// The job's id.
        job_id: String,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one checkpoint, addressed as (job id, checkpoint id).
    Checkpoint {
        /// The data directory.
        dir: PathBuf,
        /// The job's id.
        job_id: String,
        /// The checkpoint's id, as `runlog checkpoints` lists it.
        checkpoint_id: String,
        /// Write the checkpoint's payload, raw, to stdout.
        #[arg(long)]
        payload: bool,
    },
    /// List runs a crash interrupted, with whether each can be resumed.
    ///
    /// Runs recorded as interrupted are listed, and so are runs still in
    /// flight when no writer has opened the directory since the crash:
    /// their RESUME column says what they will be once one does.
    Interrupted {
        /// The data directory.
        dir: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the event history in log order.
    ///
    /// Streams: memory stays flat whatever the log's size.
    Events {
        /// The data directory.
        dir: PathBuf,
        /// Only this job's events.
        #[arg(long, value_name = "ID")]
        job: Option<String>,
        /// Start at this log sequence number.
        #[arg(long, value_name = "LSN", default_value_t = 0)]
        from: u64,
        /// One JSON object per line (lsn, at, kind, job_id, ...).
        #[arg(long)]
        json: bool,
    },
    /// Check the log's integrity without changing anything (like fsck).
    ///
    /// Checks every checksum, the LSN sequence and the chain, decodes every
    /// event and replays them from scratch, and compares the result with
    /// the views a normal open loads from the newest snapshot. Exit 0
    /// intact, 1 only a torn tail (nothing acknowledged is lost), 4
    /// corruption that needs salvage, 8 not a runlog directory or an I/O
    /// error. Shows progress on a terminal for large logs.
    Verify {
        /// The data directory.
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Open for writing and recover: cut a torn tail, interrupt runs.
    ///
    /// Cuts a torn tail (its bytes are kept in a side file), records runs
    /// in flight as interrupted, and reports both. On corruption nothing is
    /// changed (exit 4) unless --salvage.
    Recover {
        /// The data directory.
        dir: PathBuf,
        /// Keep the valid prefix and move everything from the first bad
        /// byte on into a quarantine file, reporting exactly what was set
        /// aside.
        #[arg(long)]
        salvage: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the jobs view as it was at a past point of the log.
    #[command(group = clap::ArgGroup::new("until").required(true))]
    Replay {
        /// The data directory.
        dir: PathBuf,
        /// Replay the events below this log sequence number.
        #[arg(long, value_name = "N", group = "until")]
        until_lsn: Option<u64>,
        /// Replay the events stamped at or before this time: RFC 3339
        /// (2026-03-02T09:30:00Z) or milliseconds since the epoch.
        #[arg(long, value_name = "T", group = "until")]
        until_time: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Draw one job's timeline as an SVG picture.
    ///
    /// Runs are bars on a time axis (delegated runs under their parents),
    /// checkpoints are ticks, waits and failures are marked, and the job's
    /// cumulative tokens are a line below.
    Timeline {
        /// The data directory.
        dir: PathBuf,
        /// The job's id.
        job_id: String,
        /// The SVG file to write.
        #[arg(long, value_name = "FILE.svg")]
        out: PathBuf,
    },
}

/// `--sync` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SyncArg {
    /// fsync every command before it returns.
    Always,
    /// fsync at most every 100 ms.
    Interval,
    /// Leave writing back to the OS.
    Never,
}

/// `--status` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StatusArg {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl StatusArg {
    fn status(self) -> runlog::JobStatus {
        match self {
            StatusArg::Running => runlog::JobStatus::Running,
            StatusArg::Completed => runlog::JobStatus::Completed,
            StatusArg::Failed => runlog::JobStatus::Failed,
            StatusArg::Cancelled => runlog::JobStatus::Cancelled,
        }
    }
}

/// Parses the arguments, runs the command, and turns its failure into one
/// sentence on stderr and an exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and
            // exit 0; real usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(f) if f.is_broken_pipe() => ExitCode::SUCCESS,
        Err(f) => {
            // One line, whatever ids or log contents the message quotes.
            eprintln!("runlog: {}", out::clean(&f.message));
            ExitCode::from(f.code)
        }
    }
}

fn run(command: Command) -> Result<u8, Failure> {
    match command {
        Command::Demo {
            dir,
            jobs,
            seed,
            sync,
            crash,
            pace,
            segment_size,
        } => demo::run(&demo::Settings {
            dir,
            jobs,
            seed,
            sync,
            crash,
            pace_ms: pace,
            segment_size,
        }),
        Command::Jobs {
            dir,
            status,
            key,
            json,
        } => inspect::jobs(&dir, status.map(StatusArg::status), key, json),
        Command::Show { dir, job_id, json } => inspect::show(&dir, &job_id, json),
        Command::Checkpoints { dir, job_id, json } => inspect::checkpoints(&dir, &job_id, json),
        Command::Checkpoint {
            dir,
            job_id,
            checkpoint_id,
            payload,
        } => inspect::checkpoint(&dir, &job_id, &checkpoint_id, payload),
        Command::Interrupted { dir, json } => inspect::interrupted(&dir, json),
        Command::Events {
            dir,
            job,
            from,
            json,
        } => inspect::events(&dir, job.as_deref(), from, json),
        Command::Verify { dir, json } => check::verify(&dir, json),
        Command::Recover { dir, salvage, json } => check::recover(&dir, salvage, json),
        Command::Replay {
            dir,
            until_lsn,
            until_time,
            json,
        } => inspect::replay(&dir, until_lsn, until_time.as_deref(), json),
        Command::Timeline { dir, job_id, out } => timeline::run(&dir, &job_id, &out),
    }
}
