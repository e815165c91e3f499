//! Failures: one sentence for stderr and the exit status that goes with it.

use runlog::EngineError;
use runlog::log::LogError;
use std::io;
use std::path::Path;

/// Exit status: the log has only a torn tail (verify).
pub const TORN_TAIL: u8 = 1;
/// Exit status: no such job or checkpoint.
pub const NOT_FOUND: u8 = 3;
/// Exit status: corruption that needs salvage.
pub const CORRUPT: u8 = 4;
/// Exit status: the directory is locked by a live writer.
pub const LOCKED: u8 = 5;
/// Exit status: not a runlog directory, a newer format, or an I/O error.
pub const OPERATIONAL: u8 = 8;

/// Why a command failed, said once, with its exit status.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub code: u8,
    /// One sentence naming the path or id involved.
    pub message: String,
    broken_pipe: bool,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            broken_pipe: false,
        }
    }

    /// Stdout was closed by the reader (`runlog events | head`): not an
    /// error worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }

    /// An engine error met while working on `dir`.
    pub fn engine(dir: &Path, e: EngineError) -> Self {
        let dir_s = dir.display();
        match e {
            EngineError::Log(log) => Failure::log(dir, log),
            EngineError::NoSuchDirectory { path } => {
                Failure::new(OPERATIONAL, format!("{} does not exist", path.display()))
            }
            e @ (EngineError::UnknownJob { .. }
            | EngineError::UnknownRun { .. }
            | EngineError::UnknownCheckpoint { .. }) => {
                Failure::new(NOT_FOUND, format!("{e} in {dir_s}"))
            }
            // Salvage cuts the log at damaged bytes; these records' bytes
            // are sound, so it cannot help, and must not be suggested.
            e @ (EngineError::BadEvent { .. } | EngineError::Replay { .. }) => Failure::new(
                CORRUPT,
                format!(
                    "{e} (in {dir_s}; the record's checksum holds, so it was written this way: \
                     `runlog events` shows the history up to it, and `recover --salvage` cannot remove it)"
                ),
            ),
            e @ EngineError::HistoryMissing { .. } => Failure::new(
                CORRUPT,
                format!(
                    "{e} (restore the dropped segments, or a snapshot that covers them, into {dir_s})"
                ),
            ),
            // The snapshot's copy of the job's runs is damaged, or the
            // events of the job that the snapshot names are unreadable in
            // the log. In the first case an open without that snapshot
            // replays the log; `verify` tells the cases apart.
            e @ EngineError::DetailUnreadable(_) => Failure::new(
                CORRUPT,
                format!(
                    "{e} (in {dir_s}; if `runlog verify` finds the log intact, move the newest \
                     file in snapshots/ aside and the next open replays the log instead)"
                ),
            ),
            e @ EngineError::NewerEventFormat { .. } => {
                Failure::new(OPERATIONAL, format!("{e} (in {dir_s})"))
            }
            e => Failure::new(OPERATIONAL, format!("{e} (in {dir_s})")),
        }
    }

    /// A log error met while working on `dir`.
    pub fn log(dir: &Path, e: LogError) -> Self {
        match e {
            LogError::Locked { .. } => Failure::new(
                LOCKED,
                format!(
                    "{} is locked by a live writer (another process holds its LOCK file)",
                    dir.display()
                ),
            ),
            LogError::NotALog { path, reason } => Failure::new(
                OPERATIONAL,
                format!(
                    "{} is not a runlog data directory: {reason}",
                    path.display()
                ),
            ),
            e @ LogError::Corruption { .. } => Failure::new(
                CORRUPT,
                format!("{e}; `runlog recover --salvage` can keep the valid prefix"),
            ),
            e => Failure::new(OPERATIONAL, e.to_string()),
        }
    }

    /// An I/O error on `path` while doing `what`.
    pub fn io(what: &str, path: &Path, e: &io::Error) -> Self {
        Failure::new(
            OPERATIONAL,
            format!("could not {what} {}: {e}", path.display()),
        )
    }
}

impl From<io::Error> for Failure {
    /// Writing to stdout failed. A closed pipe ends the command quietly.
    fn from(e: io::Error) -> Self {
        let broken_pipe = e.kind() == io::ErrorKind::BrokenPipe;
        Failure {
            code: OPERATIONAL,
            message: format!("could not write to stdout: {e}"),
            broken_pipe,
        }
    }
}

/// Checks that `dir` is an existing directory, before a read-only open
/// that would otherwise give a less direct error.
pub fn existing_dir(dir: &Path) -> Result<(), Failure> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::new(
            OPERATIONAL,
            format!("{} is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Failure::new(
            OPERATIONAL,
            format!("{} does not exist", dir.display()),
        )),
        Err(e) => Err(Failure::io("read", dir, &e)),
    }
}
