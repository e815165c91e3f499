//! Helpers shared by the engine's integration tests: a temporary data
//! directory, a manual clock, and options that use it.

#![allow(dead_code)]

use runlog::{ManualClock, Options, Timestamp, Usage};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("runlog-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory that does not exist yet.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 2026-01-01T00:00:00Z in milliseconds.
pub const T0: u64 = 1_767_225_600_000;

/// Options with a manual clock starting at `T0`, and the clock.
pub fn options() -> (Options, ManualClock) {
    let clock = ManualClock::new(Timestamp(T0));
    let mut options = Options::default();
    options.clock = Arc::new(clock.clone());
    (options, clock)
}

/// A step's usage that differs with `n`: `n` tokens in, half as many out.
pub fn usage(n: u64) -> Usage {
    Usage {
        input_tokens: n,
        output_tokens: n / 2,
        cost_micros: n * 3,
    }
}

/// The segment files of a data directory (or of a log's), oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .expect("segments dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments
}

/// The last segment file of a data directory.
pub fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().expect("at least one segment")
}
