//! Why this file exists: the writer's `LOCK` is an flock, which belongs to
//! the open file; a child process forked by any thread shares that file
//! until it execs. An embedder that closes and reopens its engine while
//! another thread spawns processes must not be told that another writer
//! holds the directory.

// Test code: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use runlog::{Engine, Submit};
use std::sync::atomic::{AtomicBool, Ordering};
use support::TempDir;

#[test]
fn reopening_while_another_thread_spawns_processes_is_never_refused_as_locked() {
    let dir = TempDir::new("lock-spawn");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::process::Command::new("/bin/true").status();
                }
            });
        }
        let mut refused = 0;
        for i in 0..300 {
            match Engine::open(dir.path(), support::options().0) {
                Ok((engine, _)) => {
                    if i % 50 == 0 {
                        engine.submit(Submit::new("a", "b")).unwrap();
                    }
                    drop(engine);
                }
                Err(e) if e.to_string().contains("locked") => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(refused, 0, "reopens refused as locked");
    });
}
