//! Why this file exists: a data directory is input. An auditor opens a copy
//! someone sent; a disk returns garbage; a tool or a person leaves files
//! where they do not belong. Whatever bytes and names are in it, every entry
//! point — `Engine::open`, `ReadOnly::open`, and every command of the
//! `runlog` binary — must answer with a typed error or a correct recovery:
//! never a panic (exit 101), never a hang, never an allocation that follows
//! a length read from disk.
//!
//! Each case builds a directory from a small valid one (three segments and
//! a snapshot) and damages it one way; the table says what each entry point
//! must answer, exactly where that is deterministic. The binary runs under
//! `ulimit -v` (512 MiB of address space) so that an allocation sized by a
//! hostile length would abort it instead of passing unnoticed.

// Test code: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use runlog::log::{Log, LogError, LogOptions, LogReader};
use runlog::{
    AsOf, Engine, EngineError, JobOutcome, Options, Query, ReadOnly, Step, Submit, Usage,
};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_runlog");

/// The exit codes README.md documents for failures.
const DOCUMENTED: [i32; 6] = [1, 2, 3, 4, 5, 8];

// ---- building directories ---------------------------------------------------

fn options() -> Options {
    let mut o = support::options().0;
    o.segment_size_max = 4096;
    o.snapshot_every_events = 0;
    o.snapshot_every_bytes = 0;
    o
}

/// A small valid data directory: jobs with steps across three or more
/// segments, a snapshot, then a few more events after it.
fn build_valid(dir: &Path, tag: &str) {
    build_valid_from(dir, tag, support::T0);
}

/// [`build_valid`] with the clock starting at `t0` (ms since the epoch).
fn build_valid_from(dir: &Path, tag: &str, t0: u64) {
    let mut o = options();
    o.clock = std::sync::Arc::new(runlog::ManualClock::new(runlog::Timestamp(t0)));
    let (engine, _) = Engine::open(dir, o).unwrap();
    for i in 0..6 {
        let job = engine
            .submit(Submit::new(
                format!("agent-{tag}"),
                format!("input {tag} {i}"),
            ))
            .unwrap()
            .job;
        let run = engine.start_run(&job, None).unwrap();
        for s in 0..3u8 {
            engine
                .record_step(&job, &run, Step::new(vec![s; 400], Usage::default()))
                .unwrap();
        }
        engine.complete_run(&job, &run, "done").unwrap();
        engine.finish_job(&job, JobOutcome::Completed).unwrap();
        if i == 3 {
            engine.snapshot().unwrap();
        }
    }
    drop(engine); // no close: no second snapshot
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn write_at(path: &Path, at: usize, bytes: &[u8]) {
    let mut data = std::fs::read(path).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Appends `payload` as one whole, correctly checksummed record: the log
/// accepts it, whatever it holds.
fn append_record(dir: &Path, payload: &[u8]) {
    let (log, _) = Log::open(
        dir,
        LogOptions {
            segment_size_max: 4096,
            ..LogOptions::default()
        },
    )
    .unwrap();
    log.append(&[payload]).unwrap();
}

/// The payload of the record at `lsn`.
fn record(dir: &Path, lsn: u64) -> Vec<u8> {
    LogReader::open(dir, LogOptions::default())
        .unwrap()
        .read(lsn)
        .unwrap()
}

/// A snapshot file per FORMAT.md (file version 2), with correct
/// checksums over `body` and over the header.
fn snapshot_bytes(lsn: u64, body_len: u64, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 48];
    h[0..8].copy_from_slice(b"RUNLOGSN");
    h[8..12].copy_from_slice(&2u32.to_le_bytes());
    h[16..24].copy_from_slice(&lsn.to_le_bytes());
    h[24..32].copy_from_slice(&support::T0.to_le_bytes());
    h[32..40].copy_from_slice(&body_len.to_le_bytes());
    h[40..44].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    let crc = crc32fast::hash(&h[..44]);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(body);
    h
}

fn put_snapshot(dir: &Path, lsn: u64, bytes: &[u8]) -> PathBuf {
    let p = dir.join("snapshots").join(format!("{lsn:020}.snap"));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A 32-byte segment header per FORMAT.md with a correct checksum.
fn segment_header(version: u32, flags: u32, base: u64, chain: u32) -> Vec<u8> {
    let mut h = vec![0u8; 32];
    h[0..8].copy_from_slice(b"RUNLOGSG");
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    h[24..28].copy_from_slice(&chain.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A 28-byte record frame header with a correct checksum over `payload`.
fn frame(prev: u32, len: u32, flags: u32, lsn: u64, index: u32, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 28];
    h[4..8].copy_from_slice(&prev.to_le_bytes());
    h[8..12].copy_from_slice(&len.to_le_bytes());
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&lsn.to_le_bytes());
    h[24..28].copy_from_slice(&index.to_le_bytes());
    let mut c = crc32fast::Hasher::new_with_initial(prev);
    c.update(&h[8..28]);
    c.update(payload);
    h[0..4].copy_from_slice(&c.finalize().to_le_bytes());
    h.extend_from_slice(payload);
    h
}

/// Seeded bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---- what each entry point answered ------------------------------------------

/// A short, stable name for an open's outcome.
fn class<T>(r: &Result<T, EngineError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(EngineError::Log(e)) => match e {
            LogError::Corruption { .. } => "corruption".into(),
            LogError::NotALog { .. } => "not-a-log".into(),
            LogError::NewerFormat { .. } => "newer-format".into(),
            LogError::Io { .. } => "io".into(),
            LogError::Locked { .. } => "locked".into(),
            LogError::NotRegularFile { .. } => "not-regular".into(),
            other => format!("log: {other}"),
        },
        Err(EngineError::BadEvent { .. }) => "bad-event".into(),
        Err(EngineError::Replay { .. }) => "replay".into(),
        Err(EngineError::NoSuchDirectory { .. }) => "no-such-directory".into(),
        Err(EngineError::HistoryMissing { .. }) => "history-missing".into(),
        Err(EngineError::NewerEventFormat { .. }) => "newer-event-format".into(),
        Err(other) => format!("other: {other}"),
    }
}

/// One damaged directory and what every entry point must answer.
struct Case {
    name: &'static str,
    damage: fn(&Path),
    /// `Engine::open` (on its own copy: it may repair).
    engine: &'static str,
    /// `ReadOnly::open`.
    read_only: &'static str,
    /// Exit status of `verify`.
    verify: i32,
    /// Exit status of `recover` (on its own copy).
    recover: i32,
    /// A phrase stderr of the listing commands must hold when they fail.
    says: &'static str,
}

/// The exit status the listing commands give after a read-only open with
/// this outcome (`job_specific`: the command names an unknown job).
fn listing_code(read_only: &str, job_specific: bool) -> i32 {
    match read_only {
        "ok" if job_specific => 3,
        "ok" => 0,
        "corruption" | "bad-event" | "replay" | "history-missing" => 4,
        // not-a-log, not-regular, io, newer formats
        _ => 8,
    }
}

/// Runs the binary with its address space limited, so that a hostile length
/// followed by an allocation aborts instead of passing unnoticed.
fn runlog(args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg("ulimit -v 524288 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args);
    c.output().unwrap()
}

fn check_cli(case: &str, dir: &Path, args: &[&str], want: i32, says: &str) {
    let mut argv: Vec<&std::ffi::OsStr> = vec![std::ffi::OsStr::new(args[0]), dir.as_os_str()];
    argv.extend(args[1..].iter().map(std::ffi::OsStr::new));
    let o = runlog(&argv);
    let err = String::from_utf8_lossy(&o.stderr);
    let code = o.status.code();
    assert!(
        code.is_some_and(|c| c != 101),
        "{case}: runlog {args:?} died: {:?}\n{err}",
        o.status
    );
    assert_eq!(code, Some(want), "{case}: runlog {args:?}: {err}");
    let json_verdict = args[0] == "verify" && args.contains(&"--json") && want == 4;
    if json_verdict {
        // verify --json reports corruption as its verdict, on stdout.
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["outcome"], "corrupt", "{case}: {v}");
        assert_eq!(v["exit_code"], 4, "{case}: {v}");
    }
    if want != 0 && !(args[0] == "verify" && want == 1) && !json_verdict {
        let code = code.unwrap_or(0);
        assert!(DOCUMENTED.contains(&code), "{case}: {args:?} exit {code}");
        assert!(
            err.starts_with("runlog: ") && err.trim_end().lines().count() == 1,
            "{case}: runlog {args:?}: not one sentence: {err}"
        );
        if want != 3 {
            assert!(
                err.contains(says),
                "{case}: runlog {args:?} lacks {says:?}: {err}"
            );
        }
    }
}

const CASES: &[Case] = &[
    Case {
        name: "an empty directory",
        damage: |d| {
            std::fs::remove_dir_all(d).unwrap();
            std::fs::create_dir(d).unwrap();
        },
        engine: "ok",
        read_only: "not-a-log",
        verify: 8,
        recover: 8,
        says: "has no segments directory",
    },
    Case {
        name: "an empty segments directory",
        damage: |d| {
            for s in segments(d) {
                std::fs::remove_file(s).unwrap();
            }
        },
        // Snapshots remain, but they cover more than the (new, empty) log.
        engine: "ok",
        read_only: "not-a-log",
        verify: 8,
        recover: 0,
        says: "holds no segment",
    },
    Case {
        name: "an empty last segment",
        damage: |d| {
            std::fs::write(segments(d).last().unwrap(), b"").unwrap();
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "bad segment header",
    },
    Case {
        name: "an empty first segment",
        damage: |d| std::fs::write(&segments(d)[0], b"").unwrap(),
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "bad segment header",
    },
    Case {
        name: "random bytes for the last segment",
        damage: |d| std::fs::write(segments(d).last().unwrap(), noise(7, 5000)).unwrap(),
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "bad segment header",
    },
    Case {
        name: "random bytes after the first segment's header",
        damage: |d| {
            let s = &segments(d)[0];
            let len = std::fs::metadata(s).unwrap().len() as usize;
            write_at(s, 32, &noise(9, len - 32));
            for s in snapshots(d) {
                std::fs::remove_file(s).unwrap();
            }
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "corruption in segment",
    },
    Case {
        name: "a record length of 4 GiB in a sealed segment",
        damage: |d| {
            write_at(&segments(d)[0], 32 + 8, &0xFFFF_FFF0u32.to_le_bytes());
            // Without the snapshot, open must read it.
            for s in snapshots(d) {
                std::fs::remove_file(s).unwrap();
            }
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "exceeds record_size_max",
    },
    Case {
        name: "a record length of 4 GiB at the tail",
        damage: |d| {
            let last = segments(d).last().unwrap().clone();
            append(&last, &frame(0, 0xFFFF_FFF0, 1, 1 << 40, 0, b""));
        },
        // Nothing valid follows it: a torn tail, cut by the writer.
        engine: "ok",
        read_only: "ok",
        verify: 1,
        recover: 0,
        says: "",
    },
    Case {
        name: "a checksummed record of garbage (not an event)",
        damage: |d| append_record(d, &[1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0xAA]),
        engine: "bad-event",
        read_only: "bad-event",
        verify: 4,
        recover: 4,
        says: "is not a valid event",
    },
    Case {
        name: "a checksummed event whose string claims 2^60 bytes",
        damage: |d| {
            let mut p = vec![1u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
            p.extend_from_slice(b"job");
            append_record(d, &p)
        },
        engine: "bad-event",
        read_only: "bad-event",
        verify: 4,
        recover: 4,
        says: "is not a valid event",
    },
    Case {
        name: "a checksummed empty record",
        damage: |d| append_record(d, &[]),
        engine: "bad-event",
        read_only: "bad-event",
        verify: 4,
        recover: 4,
        says: "empty record",
    },
    Case {
        name: "a checksummed record from a newer event format",
        damage: |d| append_record(d, &[9, 1, 2, 3]),
        engine: "newer-event-format",
        read_only: "newer-event-format",
        verify: 8,
        recover: 8,
        says: "newer version of runlog",
    },
    Case {
        name: "a valid event that does not fold (a job created twice)",
        damage: |d| {
            let first = record(d, 0);
            append_record(d, &first)
        },
        engine: "replay",
        read_only: "replay",
        verify: 4,
        recover: 4,
        says: "does not replay",
    },
    Case {
        name: "a segment from another log in the middle",
        damage: |d| {
            let other = TempDir::new("other-log");
            build_valid(other.path(), "other");
            let mine = segments(d);
            let theirs = segments(other.path());
            std::fs::copy(&theirs[1], &mine[1]).unwrap();
            for s in snapshots(d) {
                std::fs::remove_file(s).unwrap();
            }
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "corruption in segment",
    },
    Case {
        name: "the last segment from another log",
        damage: |d| {
            let other = TempDir::new("other-log-last");
            build_valid(other.path(), "other");
            let mine = segments(d);
            let theirs = segments(other.path());
            // Same name, so same base LSN: only the chain tells them apart.
            assert_eq!(mine.len(), theirs.len());
            std::fs::copy(theirs.last().unwrap(), mine.last().unwrap()).unwrap();
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "checksum chain broken",
    },
    Case {
        name: "an LSN gap: a middle segment missing",
        damage: |d| {
            std::fs::remove_file(&segments(d)[1]).unwrap();
            for s in snapshots(d) {
                std::fs::remove_file(s).unwrap();
            }
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "LSN gap",
    },
    Case {
        name: "an LSN gap: only later segments left",
        damage: |d| {
            std::fs::remove_file(&segments(d)[0]).unwrap();
            for s in snapshots(d) {
                std::fs::remove_file(s).unwrap();
            }
        },
        engine: "history-missing",
        read_only: "history-missing",
        verify: 4,
        recover: 4,
        says: "no valid snapshot covers",
    },
    Case {
        name: "a segment header that lies about its base LSN",
        damage: |d| {
            let s = segments(d).last().unwrap().clone();
            write_at(&s, 0, &segment_header(1, 0, 3, 0));
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "the header says",
    },
    Case {
        name: "a segment header from a newer format",
        damage: |d| {
            let s = segments(d)[0].clone();
            write_at(&s, 0, &segment_header(99, 0, 0, 0));
        },
        engine: "newer-format",
        read_only: "newer-format",
        verify: 8,
        recover: 8,
        says: "newer than the supported version",
    },
    Case {
        name: "a segment header with unknown flags",
        damage: |d| {
            let s = segments(d)[0].clone();
            write_at(&s, 0, &segment_header(1, 0xFFFF_FFFF, 0, 0));
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "bad segment header",
    },
    Case {
        name: "a truncated snapshot",
        damage: |d| {
            let s = snapshots(d)[0].clone();
            let len = std::fs::metadata(&s).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&s)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "a snapshot of valid checksums over garbage",
        damage: |d| {
            let s = snapshots(d)[0].clone();
            let lsn = snapshot_lsn(&s);
            let body = noise(3, 3000);
            put_snapshot(d, lsn, &snapshot_bytes(lsn, 3000, &body));
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "a snapshot whose body claims 2^60 jobs",
        damage: |d| {
            let s = snapshots(d)[0].clone();
            let lsn = snapshot_lsn(&s);
            // A preamble of this build's body version alone (64 bytes,
            // the whole head), its checksum right, claiming 2^60 job
            // records.
            let mut body = vec![0u8; 64];
            body[0] = runlog::projections::SNAPSHOT_FORMAT_VERSION;
            body[8..16].copy_from_slice(&64u64.to_le_bytes());
            body[40..48].copy_from_slice(&(1u64 << 60).to_le_bytes());
            let crc = crc32fast::hash(&body[8..]);
            body[4..8].copy_from_slice(&crc.to_le_bytes());
            put_snapshot(d, lsn, &snapshot_bytes(lsn, body.len() as u64, &body));
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "a snapshot whose header claims a body of 2^64-1 bytes",
        damage: |d| {
            let s = snapshots(d)[0].clone();
            let lsn = snapshot_lsn(&s);
            put_snapshot(d, lsn, &snapshot_bytes(lsn, u64::MAX, b"x"));
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "a valid snapshot that claims a future LSN",
        damage: |d| {
            let s = snapshots(d)[0].clone();
            let bytes = std::fs::read(&s).unwrap();
            let body = &bytes[48..];
            put_snapshot(
                d,
                1 << 40,
                &snapshot_bytes(1 << 40, body.len() as u64, body),
            );
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "a valid snapshot under an earlier LSN's name",
        damage: |d| {
            let s = snapshots(d)[0].clone();
            let lsn = snapshot_lsn(&s);
            let bytes = std::fs::read(&s).unwrap();
            // Header and name agree on lsn - 5, but the views hold more.
            let body = &bytes[48..];
            std::fs::remove_file(&s).unwrap();
            put_snapshot(
                d,
                lsn - 5,
                &snapshot_bytes(lsn - 5, body.len() as u64, body),
            );
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "an empty snapshot and empty temporary files",
        damage: |d| {
            std::fs::write(d.join("snapshots").join(format!("{:020}.snap", 3)), b"").unwrap();
            std::fs::write(d.join("snapshots").join("x.snap.tmp"), b"").unwrap();
            std::fs::write(d.join("segments").join("00000000000000000100.seg.tmp"), b"").unwrap();
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "odd and non-UTF-8 file names",
        damage: |d| {
            use std::ffi::OsStr;
            for dir in ["segments", "snapshots"] {
                let base = d.join(dir);
                for name in [
                    &b"\xff\xfe.seg"[..],
                    b"0000000000000000000\xff.seg",
                    b"-0000000000000000001.seg",
                    b"99999999999999999999.seg",
                    b"0000000000000000000a.snap",
                    b"00000000000000000000.seg\n",
                    b" 00000000000000000000.snap",
                    b"\xe2\x80\xae00000000000000000000.seg",
                ] {
                    std::fs::write(base.join(OsStr::from_bytes(name)), b"junk").unwrap();
                }
            }
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "a directory where the last segment should be",
        damage: |d| {
            let s = segments(d).last().unwrap().clone();
            std::fs::remove_file(&s).unwrap();
            std::fs::create_dir(&s).unwrap();
        },
        engine: "not-regular",
        read_only: "not-regular",
        verify: 8,
        recover: 8,
        says: "not a regular file",
    },
    Case {
        name: "a directory where a sealed segment should be",
        damage: |d| {
            let s = segments(d)[0].clone();
            std::fs::remove_file(&s).unwrap();
            std::fs::create_dir(&s).unwrap();
        },
        engine: "not-regular",
        read_only: "not-regular",
        verify: 8,
        recover: 8,
        says: "not a regular file",
    },
    Case {
        name: "a directory where the snapshot should be",
        damage: |d| {
            let s = snapshots(d)[0].clone();
            std::fs::remove_file(&s).unwrap();
            std::fs::create_dir(&s).unwrap();
        },
        engine: "ok",
        read_only: "ok",
        verify: 0,
        recover: 0,
        says: "",
    },
    Case {
        name: "a directory where LOCK should be",
        damage: |d| {
            let _ = std::fs::remove_file(d.join("LOCK"));
            std::fs::create_dir(d.join("LOCK")).unwrap();
        },
        engine: "io",
        read_only: "ok",
        verify: 0,
        recover: 8,
        says: "",
    },
    Case {
        name: "a file where the segments directory should be",
        damage: |d| {
            std::fs::remove_dir_all(d.join("segments")).unwrap();
            std::fs::write(d.join("segments"), b"not a directory").unwrap();
        },
        engine: "io",
        read_only: "io",
        verify: 8,
        recover: 8,
        says: "segments",
    },
    Case {
        name: "a torn tail and a file where the torn directory should be",
        damage: |d| {
            append(segments(d).last().unwrap(), &noise(5, 100));
            std::fs::write(d.join("torn"), b"in the way").unwrap();
        },
        engine: "io",
        read_only: "ok",
        verify: 1,
        recover: 8,
        says: "",
    },
    Case {
        name: "a FIFO where the last segment should be",
        damage: |d| {
            let s = segments(d).last().unwrap().clone();
            std::fs::remove_file(&s).unwrap();
            let ok = Command::new("mkfifo").arg(&s).status().unwrap().success();
            assert!(ok, "mkfifo");
        },
        engine: "not-regular",
        read_only: "not-regular",
        verify: 8,
        recover: 8,
        says: "not a regular file",
    },
    Case {
        name: "a symbolic link to /dev/zero for the last segment",
        damage: |d| {
            let s = segments(d).last().unwrap().clone();
            std::fs::remove_file(&s).unwrap();
            std::os::unix::fs::symlink("/dev/zero", &s).unwrap();
        },
        engine: "not-regular",
        read_only: "not-regular",
        verify: 8,
        recover: 8,
        says: "is a symbolic link, not a regular file",
    },
    Case {
        name: "an extra segment at the end of the LSN space",
        damage: |d| {
            let base = u64::MAX;
            let mut bytes = segment_header(1, 0, base, 0);
            bytes.extend(frame(0, 3, 1, base, 0, b"abc"));
            std::fs::write(d.join("segments").join(format!("{base:020}.seg")), bytes).unwrap();
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "corruption in segment",
    },
    Case {
        name: "a lone segment at the end of the LSN space",
        damage: |d| {
            for s in segments(d) {
                std::fs::remove_file(s).unwrap();
            }
            for s in snapshots(d) {
                std::fs::remove_file(s).unwrap();
            }
            let base = u64::MAX - 1;
            let mut bytes = segment_header(1, 0, base, 0);
            let first = frame(0, 3, 1, base, 0, b"abc");
            let crc = u32::from_le_bytes(first[0..4].try_into().unwrap());
            bytes.extend(&first);
            bytes.extend(frame(crc, 3, 1, base + 1, 0, b"def"));
            std::fs::write(d.join("segments").join(format!("{base:020}.seg")), bytes).unwrap();
        },
        engine: "corruption",
        read_only: "corruption",
        verify: 4,
        recover: 4,
        says: "the end of the LSN space",
    },
];

fn snapshot_lsn(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.trim_end_matches(".snap").parse().unwrap()
}

/// Commands that take a job id, with an id no directory holds.
const JOB_COMMANDS: &[&[&str]] = &[
    &["show", "job-none"],
    &["checkpoints", "job-none"],
    &["checkpoint", "job-none", "cp-none"],
];

#[test]
fn every_entry_point_gives_a_typed_error_or_recovers_for_every_damaged_directory() {
    let base = TempDir::new("hostile-base");
    let valid = base.join("valid");
    build_valid(&valid, "base");
    assert!(segments(&valid).len() >= 3, "{:?}", segments(&valid));
    assert_eq!(snapshots(&valid).len(), 1);
    let mut cli_runs = 0;
    let mut failures = Vec::new();
    for case in CASES {
        let result = std::panic::catch_unwind(|| check_case(case, &valid));
        match result {
            Ok(runs) => cli_runs += runs,
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
            ),
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{} hostile directories, {cli_runs} runs of the binary",
        CASES.len()
    );
}

/// Runs every entry point on `case`; returns how many times it ran the binary.
fn check_case(case: &Case, valid: &Path) -> usize {
    {
        let work = TempDir::new("hostile");
        let make = |name: &str| {
            let d = work.join(name);
            copy_dir(valid, &d);
            (case.damage)(&d);
            d
        };
        let name = case.name;

        // In process: each open on its own copy (the writer may repair).
        let d = make("engine");
        let r = Engine::open(&d, options());
        assert_eq!(
            class(&r),
            case.engine,
            "{name}: Engine::open: {:?}",
            r.err()
        );
        if let Ok((engine, _)) = r {
            // Whatever it recovered folds from scratch to the same views.
            let views = engine.with_views(Clone::clone);
            drop(engine);
            let again = ReadOnly::open(&d, options(), AsOf::Latest).unwrap();
            assert!(again.with_views(|v| v == &views), "{name}");
        }
        let d = make("read-only");
        let r = ReadOnly::open(&d, options(), AsOf::Latest);
        assert_eq!(
            class(&r),
            case.read_only,
            "{name}: ReadOnly::open: {:?}",
            r.err()
        );

        // Every command of the binary, read-only ones on one copy.
        let says = case.says;
        let job_code = listing_code(case.read_only, true);
        let list_code = listing_code(case.read_only, false);
        check_cli(name, &d, &["jobs"], list_code, says);
        check_cli(name, &d, &["jobs", "--json"], list_code, says);
        check_cli(name, &d, &["interrupted"], list_code, says);
        check_cli(name, &d, &["events"], list_code, says);
        check_cli(
            name,
            &d,
            &["events", "--json", "--job", "job-none"],
            job_code,
            says,
        );
        check_cli(
            name,
            &d,
            &["replay", "--until-lsn", "1000000"],
            list_code,
            says,
        );
        for args in JOB_COMMANDS {
            check_cli(name, &d, args, job_code, says);
        }
        let svg = work.join("out.svg");
        check_cli(
            name,
            &d,
            &["timeline", "job-none", "--out", svg.to_str().unwrap()],
            job_code,
            says,
        );
        check_cli(name, &d, &["verify"], case.verify, says);
        check_cli(name, &d, &["verify", "--json"], case.verify, says);
        let d = make("recover");
        check_cli(name, &d, &["recover"], case.recover, says);
        // Salvage keeps a valid prefix of whatever it is given: afterwards
        // the directory verifies intact.
        let d = make("salvage");
        let o = runlog(&["recover".as_ref(), d.as_os_str(), "--salvage".as_ref()]);
        let salvaged = o.status.code();
        assert!(
            salvaged.is_some_and(|c| c == 0 || DOCUMENTED.contains(&c)),
            "{name}: recover --salvage: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        if salvaged == Some(0) {
            let o = runlog(&["verify".as_ref(), d.as_os_str()]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{name}: verify after salvage: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        if salvaged == Some(4) {
            // The remedy that just failed is not offered again.
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!err.contains("keep"), "{name}: {err}");
        }
        let d = make("demo");
        let o = runlog(&[
            "demo".as_ref(),
            d.as_os_str(),
            "--jobs".as_ref(),
            "1".as_ref(),
        ]);
        let demo = o.status.code();
        assert!(
            demo.is_some_and(|c| c == 0 || DOCUMENTED.contains(&c)),
            "{name}: demo: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        // 13 commands above, salvage, demo, and verify after a salvage.
        15 + usize::from(salvaged == Some(0))
    }
}

#[test]
fn a_file_or_nothing_where_the_directory_should_be() {
    let scratch = TempDir::new("not-a-dir");
    let file = scratch.join("file");
    std::fs::write(&file, b"a file").unwrap();
    let err = ReadOnly::open(&file, options(), AsOf::Latest).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a runlog log: it is a file, not a directory",
            file.display()
        )
    );
    assert!(matches!(
        Engine::open(&file, options()),
        Err(EngineError::Log(LogError::Io {
            op: "create directory",
            ..
        }))
    ));
    let missing = scratch.join("missing");
    let err = ReadOnly::open(&missing, options(), AsOf::Latest).unwrap_err();
    assert!(matches!(err, EngineError::NoSuchDirectory { .. }), "{err}");
    assert!(!missing.exists());
    for cmd in ["jobs", "verify", "recover", "events", "interrupted"] {
        let o = Command::new(BIN)
            .args([cmd, file.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(8), "{cmd}: {err}");
        assert!(err.contains("is not a directory"), "{cmd}: {err}");
    }
    let o = Command::new(BIN)
        .args(["demo", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(8), "{o:?}");
}

/// A salvage cuts the log below a snapshot's LSN; the writer then appends
/// new, different events at those LSNs. Once the log is long again, the old
/// snapshot fits every check — and must not be believed: it folds events
/// that are no longer in the log.
#[test]
fn a_snapshot_from_before_a_salvage_is_never_loaded_over_new_history() {
    let scratch = TempDir::new("stale-snapshot");
    let dir = scratch.join("data");
    build_valid(&dir, "before");
    let (engine, _) = Engine::open(&dir, options()).unwrap();
    let stale = engine.snapshot().unwrap();
    drop(engine);
    // Damage a record in the second segment, then salvage: the log now
    // ends well below the snapshot's LSN.
    let second = segments(&dir)[1].clone();
    write_at(&second, 32 + 30, b"\xde\xad");
    let mut salvage = options();
    salvage.recovery = runlog::RecoveryMode::Salvage;
    let (engine, report) = Engine::open(&dir, salvage).unwrap();
    assert!(report.recovery.salvaged.is_some());
    assert!(engine.next_lsn() < stale.lsn);
    // New history, past the old snapshot's LSN.
    while engine.next_lsn() < stale.lsn + 10 {
        let job = engine.submit(Submit::new("after", "new")).unwrap().job;
        engine.start_run(&job, None).unwrap();
    }
    drop(engine); // no snapshot of the new history
    let (engine, report) = Engine::open(&dir, options()).unwrap();
    let mut fresh = runlog::projections::Projections::new();
    engine
        .for_each_event(0, |lsn, e| {
            fresh.apply(lsn, &e).unwrap();
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_ne!(
        report.snapshot.as_ref().map(|s| &s.path),
        Some(&stale.path),
        "the stale snapshot was loaded"
    );
    assert!(
        engine.with_views(|v| v == &fresh),
        "views differ from the log"
    );
    drop(engine);
    let o = Command::new(BIN)
        .args(["verify", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A snapshot copied from another log of the same length passes every
/// check of its own file; it must not be loaded over this log's history.
#[test]
fn a_snapshot_from_another_log_is_never_loaded() {
    let scratch = TempDir::new("foreign-snapshot");
    let mine = scratch.join("mine");
    let theirs = scratch.join("theirs");
    build_valid(&mine, "mine");
    // Another instance, started an hour later: other ids and times.
    build_valid_from(&theirs, "theirs", support::T0 + 3_600_000);
    let ours = snapshots(&mine)[0].clone();
    let foreign = snapshots(&theirs)[0].clone();
    assert_eq!(ours.file_name(), foreign.file_name(), "same LSN");
    std::fs::copy(&foreign, &ours).unwrap();

    let ro = ReadOnly::open(&mine, options(), AsOf::Latest).unwrap();
    assert!(ro.report().snapshot.is_none(), "{:?}", ro.report());
    assert_eq!(ro.report().snapshots_skipped.len(), 1);
    assert!(
        ro.report().snapshots_skipped[0]
            .reason
            .starts_with("does not match the log: its last event is not the log's event at LSN"),
        "{:?}",
        ro.report().snapshots_skipped
    );
    let mut fresh = runlog::projections::Projections::new();
    ro.for_each_event(0, |l, e| {
        fresh.apply(l, &e).unwrap();
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        ro.with_views(|v| v == &fresh),
        "read-only: views of another log"
    );
    drop(ro);
    let (engine, report) = Engine::open(&mine, options()).unwrap();
    assert!(report.snapshot.is_none(), "{report:?}");
    assert!(
        engine.with_views(|v| v == &fresh),
        "writer: views of another log"
    );
}

/// Seeded random damage: one to three edits (bit flips, random ranges,
/// zeroed ranges, cuts, appended garbage, a range copied elsewhere) to
/// segments and snapshots. Whatever the bytes, each open either gives a
/// typed error or views that equal a fresh fold of the log it recovered,
/// and a second writer's open changes nothing.
#[test]
fn random_damage_gives_a_typed_error_or_a_correct_recovery() {
    let iterations = std::env::var("RUNLOG_HOSTILE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300u64);
    let first_seed = std::env::var("RUNLOG_HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let base = TempDir::new("random-base");
    let valid = base.join("valid");
    build_valid(&valid, "base");
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    for seed in first_seed..first_seed + iterations {
        let work = TempDir::new("random");
        let make = |name: &str| {
            let d = work.join(name);
            copy_dir(&valid, &d);
            damage(&d, seed);
            d
        };
        let d = make("engine");
        let result = std::panic::catch_unwind(|| {
            let r = Engine::open(&d, options());
            let class = class(&r);
            if let Ok((engine, _)) = r {
                let views = engine.with_views(Clone::clone);
                let next = engine.next_lsn();
                let first = LogReader::open(&d, LogOptions::default())
                    .map(|r| r.first_lsn())
                    .unwrap_or(1);
                // Damage in a sealed segment that the open did not need to
                // read (a snapshot covers it) is found when it is read, as
                // a typed error: by a full read here, and by a later open
                // whose replay crosses it.
                let mut latent = false;
                if first == 0 {
                    let mut fresh = runlog::projections::Projections::new();
                    let read = engine.for_each_event(0, |l, e| {
                        fresh.apply(l, &e).unwrap();
                        std::ops::ControlFlow::Continue(())
                    });
                    match read {
                        Ok(()) => {
                            assert!(views == fresh, "writer's views differ from a fresh fold")
                        }
                        Err(e) => {
                            assert!(e.is_corruption(), "{e}");
                            latent = true;
                        }
                    }
                }
                drop(engine);
                let (again, report) = match Engine::open(&d, options()) {
                    Err(e) if latent && e.is_corruption() => return class,
                    r => r.unwrap(),
                };
                assert!(report.recovery.torn_tail.is_none() && report.interrupted.is_empty());
                assert_eq!(again.next_lsn(), next);
                assert!(again.with_views(|v| v == &views), "second open differs");
            }
            class
        });
        let repeat = format!(
            "seed {seed} (RUNLOG_HOSTILE_SEED={seed} RUNLOG_HOSTILE_ITERATIONS=1 \
             cargo test -p runlog --test hostile_dirs random)"
        );
        let engine_class =
            result.unwrap_or_else(|_| panic!("{repeat}: Engine::open panicked or was wrong"));
        let d = make("read-only");
        let result = std::panic::catch_unwind(|| {
            let r = ReadOnly::open(&d, options(), AsOf::Latest);
            let class = class(&r);
            if let Ok(ro) = &r
                && ro.log().first_lsn() == 0
            {
                let mut fresh = runlog::projections::Projections::new();
                let folded = ro.for_each_event(0, |l, e| match fresh.apply(l, &e) {
                    Ok(()) => std::ops::ControlFlow::Continue(()),
                    Err(_) => std::ops::ControlFlow::Break(()),
                });
                // A later record may be damaged; an open that replayed from
                // a snapshot found that out only now.
                if folded.is_ok() && fresh.last_lsn() == ro.with_views(|v| v.last_lsn()) {
                    assert!(ro.with_views(|v| v == &fresh), "read-only views differ");
                }
            }
            class
        });
        let ro_class =
            result.unwrap_or_else(|_| panic!("{repeat}: ReadOnly::open panicked or was wrong"));
        for c in [&engine_class, &ro_class] {
            assert!(
                !c.starts_with("other") && !c.starts_with("log:"),
                "seed {seed}: untyped outcome {c}"
            );
        }
        if seed % 10 == 0 {
            for args in [&["jobs"][..], &["verify"], &["events", "--json"]] {
                let mut argv: Vec<&std::ffi::OsStr> = vec![args[0].as_ref(), d.as_os_str()];
                argv.extend(args[1..].iter().map(std::ffi::OsStr::new));
                let o = runlog(&argv);
                let code = o.status.code();
                assert!(
                    code.is_some_and(|c| c == 0 || DOCUMENTED.contains(&c)),
                    "seed {seed}: runlog {args:?}: {:?} {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        *outcomes
            .entry(format!("{engine_class} / {ro_class}"))
            .or_default() += 1;
    }
    println!("random damage, Engine::open / ReadOnly::open: {outcomes:?}");
}

/// Applies seeded damage to the segments and snapshots of `dir`.
fn damage(dir: &Path, seed: u64) {
    let mut rng = noise(seed.wrapping_mul(0x9E37_79B9) ^ 0xABCD, 64)
        .into_iter()
        .cycle();
    let mut next = move |n: usize| -> usize {
        let b = [rng.next(), rng.next(), rng.next(), rng.next()].map(|b| b.unwrap_or(0));
        u32::from_le_bytes(b) as usize % n.max(1)
    };
    let mut files = segments(dir);
    files.extend(snapshots(dir));
    for _ in 0..1 + next(3) {
        let f = files[next(files.len())].clone();
        let mut bytes = std::fs::read(&f).unwrap();
        let len = bytes.len().max(1);
        match next(6) {
            0 => {
                for _ in 0..1 + next(4) {
                    let at = next(len);
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << next(8);
                    }
                }
            }
            1 => {
                let at = next(len);
                let n = next(200).min(bytes.len().saturating_sub(at));
                let junk = noise(seed + at as u64, n);
                bytes[at..at + n].copy_from_slice(&junk);
            }
            2 => {
                let at = next(len);
                let n = next(300).min(bytes.len().saturating_sub(at));
                bytes[at..at + n].fill(0);
            }
            3 => bytes.truncate(next(len)),
            4 => bytes.extend(noise(seed, next(500))),
            _ => {
                let from = next(len);
                let n = next(400).min(bytes.len().saturating_sub(from));
                let piece = bytes[from..from + n].to_vec();
                let to = next(len);
                let end = (to + n).min(bytes.len());
                bytes[to..end].copy_from_slice(&piece[..end - to]);
            }
        }
        std::fs::write(&f, bytes).unwrap();
    }
}

/// A last segment followed by a long run of zeros (a sparse file, or a file
/// system that extended it before a crash): zeros and nothing else after
/// the last batch are unused space (FORMAT.md, "Preallocated space"),
/// checked at memory speed, not a torn tail; the writer's open keeps them
/// and its close cuts them off. With a valid frame of a later batch after
/// the zeros, the search for it crosses them as fast and still finds it.
#[test]
fn a_long_zero_filled_tail_is_crossed_quickly_and_searched_exactly() {
    let scratch = TempDir::new("zero-tail");
    let dir = scratch.join("data");
    build_valid(&dir, "zeros");
    let last = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len + (128 << 20)).unwrap(); // sparse: no disk used
    drop(f);
    let started = std::time::Instant::now();
    let ro = ReadOnly::open(&dir, options(), AsOf::Latest).unwrap();
    let took = started.elapsed();
    assert_eq!(ro.report().log_next_lsn, 42);
    let v = ro.log().verify(|_, _| {}).unwrap();
    assert!(
        matches!(v.outcome, runlog::log::VerifyOutcome::Intact),
        "{:?}",
        v.outcome
    );
    assert_eq!(v.next_lsn, 42);
    // Byte by byte, 128 MiB took minutes; crossing the zeros takes well
    // under a second even in a debug build.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    drop(ro);
    let (engine, report) = Engine::open(&dir, options()).unwrap();
    assert_eq!(report.recovery.torn_tail, None);
    assert_eq!(report.recovery.unused_bytes, 128 << 20);
    assert_eq!(engine.next_lsn(), 42);
    drop(engine);
    assert_eq!(std::fs::metadata(&last).unwrap().len(), len);
    assert!(!dir.join("torn").exists());

    // A valid frame of a later batch just after a run of zeros, at an odd
    // offset: valid data after damage is corruption, not a torn tail.
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len).unwrap();
    drop(f);
    let mut tail = vec![0u8; (1 << 20) + 3];
    tail.extend(frame(0x1234_5678, 5, 1, 50, 0, b"later"));
    append(&last, &tail);
    let err = ReadOnly::open(&dir, options(), AsOf::Latest).unwrap_err();
    assert!(
        matches!(
            &err,
            EngineError::Log(LogError::Corruption { offset, detail: runlog::log::CorruptionKind::Zeroed, .. }) if *offset == len
        ),
        "{err:?}"
    );
}

/// Torn tails are kept, never deleted: two crashes that tear the log at the
/// same offset (the write after the first cut torn again) keep both tails.
#[test]
fn a_second_torn_tail_at_the_same_offset_keeps_the_first() {
    let scratch = TempDir::new("torn-twice");
    let dir = scratch.join("data");
    build_valid(&dir, "torn");
    let last = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let mut kept = Vec::new();
    for (round, tail) in [noise(1, 77), noise(2, 91), noise(1, 77)]
        .iter()
        .enumerate()
    {
        append(&last, tail);
        let (engine, report) = Engine::open(&dir, options()).unwrap();
        let t = report.recovery.torn_tail.clone().unwrap();
        assert_eq!(t.offset, len, "round {round}");
        let side = t.side_file.unwrap();
        assert_eq!(&std::fs::read(&side).unwrap(), tail, "round {round}");
        kept.push(side);
        drop(engine); // nothing in flight: nothing written at the cut
        assert_eq!(std::fs::metadata(&last).unwrap().len(), len);
    }
    // The first two tails differ and both are kept; the third repeats the
    // first (a recovery run again after a crash) and reuses its file.
    assert_ne!(kept[0], kept[1]);
    assert_eq!(kept[2], kept[0]);
    assert_eq!(std::fs::read(&kept[0]).unwrap(), noise(1, 77));
    assert_eq!(std::fs::read(&kept[1]).unwrap(), noise(2, 91));
    assert_eq!(std::fs::read_dir(dir.join("torn")).unwrap().count(), 2);
}

/// What salvage sets aside is kept: a second salvage whose segments or cut
/// bear the names of an earlier one's (the log regrew through the same
/// LSNs) keeps both.
#[test]
fn a_second_salvage_keeps_what_the_first_set_aside() {
    let scratch = TempDir::new("salvage-twice");
    let dir = scratch.join("data");
    build_valid(&dir, "salvage");
    let segs = segments(&dir);
    assert!(segs.len() >= 3);
    // Damage a record in the first segment: the rest of it and every later
    // segment go to quarantine.
    write_at(&segs[0], 32 + 30, b"\xde\xad");
    let q = dir.join("quarantine");
    std::fs::create_dir(&q).unwrap();
    let earlier: Vec<PathBuf> = segs[1..]
        .iter()
        .map(|s| q.join(s.file_name().unwrap()))
        .collect();
    for (i, p) in earlier.iter().enumerate() {
        std::fs::write(p, format!("set aside by an earlier salvage {i}")).unwrap();
    }
    let mut o = options();
    o.recovery = runlog::RecoveryMode::Salvage;
    let (_engine, report) = Engine::open(&dir, o).unwrap();
    let s = report.recovery.salvaged.unwrap();
    for (i, p) in earlier.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(p).unwrap(),
            format!("set aside by an earlier salvage {i}")
        );
    }
    assert_eq!(s.segments_moved.len(), segs.len() - 1);
    for (moved, original) in s.segments_moved.iter().zip(&segs[1..]) {
        let name = format!("{}.1", original.file_name().unwrap().to_str().unwrap());
        assert_eq!(moved, &q.join(name));
        assert!(moved.is_file());
    }
}
