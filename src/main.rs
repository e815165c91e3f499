//! `runlog`: look into a runlog data directory without writing code — list
//! jobs, show what a job did and what it cost, list what a crash
//! interrupted, verify and recover the log, replay the views to a past
//! moment, draw a job's timeline — and run the demo workload.
//!
//! Everything here goes through the engine's public API (`runlog::*`); the
//! library stays a facade and holds no CLI code.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
