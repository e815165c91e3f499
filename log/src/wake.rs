//! A word that committers sleep on and a leader bumps to wake them all with
//! one system call: a futex on Linux (through rustix's safe wrappers), a
//! mutex and condition variable elsewhere.
//!
//! Why not one `Thread::unpark` per sleeper: at the end of an fsync the
//! leader wakes every caller it covered, about fifteen with sixteen
//! writers. Unparked one by one, each wake-up is a system call and often a
//! preemption of the leader by the thread it just woke, so the last caller
//! was woken 70–85 µs after the fsync returned, most of the time between
//! two fsyncs (docs/performance.md, step 12). One wake of the word makes
//! them all runnable at once.
//!
//! A sleeper reads the word, checks its own condition, and sleeps only if
//! the word still holds what it read; a waker changes the condition first,
//! then bumps the word, then wakes. So no wake-up is lost: a waker that
//! changed the condition after the sleeper checked it has also changed the
//! word before the sleeper could sleep on the old value. Wake-ups may be
//! spurious (a sleeper whose condition did not change is woken too): every
//! sleeper checks its condition again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct WakeWord {
    word: AtomicU32,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fallback: (std::sync::Mutex<()>, std::sync::Condvar),
}

impl WakeWord {
    /// The value to pass to [`WakeWord::wait`]; read it before checking the
    /// condition the sleep is for.
    pub(crate) fn seen(&self) -> u32 {
        self.word.load(Ordering::Acquire)
    }

    /// Wakes every sleeper. Call it after changing what they check.
    pub(crate) fn wake_all(&self) {
        self.word.fetch_add(1, Ordering::AcqRel);
        self.notify();
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl WakeWord {
    /// Sleeps while the word holds `seen`, at most `timeout`. May return
    /// early or spuriously; the caller checks its condition again.
    pub(crate) fn wait(&self, seen: u32, timeout: Option<Duration>) {
        use rustix::thread::futex;
        let timeout = timeout.map(|t| futex::Timespec {
            tv_sec: futex::Secs::try_from(t.as_secs()).unwrap_or(futex::Secs::MAX),
            // An i64 with rustix's raw-syscall backend, which it uses on
            // Linux unless asked for libc.
            tv_nsec: futex::Nsecs::from(t.subsec_nanos()),
        });
        // Every outcome (woken, the word changed, timed out, interrupted,
        // or an error) sends the caller back to its condition; none of them
        // can make it return before its condition holds.
        let _ = futex::wait(&self.word, futex::Flags::PRIVATE, seen, timeout.as_ref());
    }

    fn notify(&self) {
        use rustix::thread::futex;
        // The count is an i32 in the kernel: i32::MAX means everyone. A
        // failure could only be EFAULT or EINVAL, impossible for a word we
        // own; sleepers would then still wake at their deadlines, but only
        // the gatherer has one, so the error is not ignored silently in
        // debug builds.
        let woken = futex::wake(&self.word, futex::Flags::PRIVATE, i32::MAX as u32);
        debug_assert!(woken.is_ok(), "futex wake failed: {woken:?}");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl WakeWord {
    /// Sleeps while the word holds `seen`, at most `timeout`. May return
    /// early or spuriously; the caller checks its condition again.
    pub(crate) fn wait(&self, seen: u32, timeout: Option<Duration>) {
        let (m, c) = &self.fallback;
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the mutex that `notify` takes after the bump: a
        // bump after this check cannot notify before this thread waits.
        if self.word.load(Ordering::Acquire) != seen {
            return;
        }
        // The guard comes back to be dropped; a poisoned mutex guards no
        // data here, so its error is as good as its success.
        match timeout {
            None => drop(c.wait(g)),
            Some(t) => drop(c.wait_timeout(g, t)),
        }
    }

    fn notify(&self) {
        let (m, c) = &self.fallback;
        drop(m.lock().unwrap_or_else(|e| e.into_inner()));
        c.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::WakeWord;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// A sleeper whose condition is set by another thread wakes, and one
    /// with a timeout and no waker returns after about its timeout.
    #[test]
    fn wakes_sleepers_and_honours_timeouts() {
        let w = WakeWord::default();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let sleepers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        loop {
                            let seen = w.seen();
                            if done.load(Ordering::Acquire) {
                                return;
                            }
                            w.wait(seen, None);
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(20));
            done.store(true, Ordering::Release);
            w.wake_all();
            for t in sleepers {
                assert!(t.join().is_ok(), "a sleeper panicked");
            }
        });
        let started = Instant::now();
        let seen = w.seen();
        w.wait(seen, Some(Duration::from_millis(30)));
        assert!(started.elapsed() < Duration::from_secs(5));
        // A stale `seen` returns at once.
        w.wake_all();
        let started = Instant::now();
        w.wait(seen, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
