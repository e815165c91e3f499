//! Why this file exists: a sealed segment's index file (`<base>.idx`,
//! FORMAT.md "Index files") is read by every reader of the log, so a name
//! planted there must never make a read hang (a FIFO opened for reading
//! waits for a writer), allocate or read without bound (a huge sparse
//! file), follow a link out of the directory, or fail: each of these reads
//! exactly as no index file does. The unit tests in `log/src/index_tests.rs`
//! cover damaged and lying index files on the simulated file system, which
//! has no links or special files.

mod support;

use std::path::Path;

use runlog_log::{Log, LogOptions, LogReader, SyncPolicy};
use support::{TempDir, segments};

/// Segments of 512 KiB, a few index points each (one per 64 KiB).
fn options() -> LogOptions {
    LogOptions {
        segment_size_max: 512 * 1024,
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    }
}

/// Record `i`: 1000 bytes, its number then filler.
fn payload(i: u64) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.resize(1000, (i % 251) as u8);
    p
}

const RECORDS: u64 = 3000;

fn write(dir: &Path) {
    let (log, _) = Log::open(dir, options()).expect("open");
    for i in (0..RECORDS).step_by(2) {
        log.append(&[&payload(i), &payload(i + 1)]).expect("append");
    }
}

/// Every record reads back exactly, through a fresh reader and a reopened
/// writer, in an order that starts each segment in its middle.
fn reads_back(dir: &Path, what: &str) {
    let reader = LogReader::open(dir, options()).expect("reader");
    for i in (0..RECORDS).rev() {
        assert_eq!(reader.read(i).expect("read"), payload(i), "{what}: {i}");
    }
    let (log, _) = Log::open(dir, options()).expect("reopen");
    for i in (0..RECORDS).rev() {
        assert_eq!(log.read(i).expect("read"), payload(i), "{what}: {i}");
    }
}

#[test]
fn planted_index_files_read_as_none() {
    let dir = TempDir::new("log-index");
    write(dir.path());
    let segs = segments(dir.path());
    assert!(segs.len() >= 5, "{segs:?}");
    let idx = |seg: &Path| seg.with_extension("idx");
    for seg in &segs[..segs.len() - 1] {
        assert!(idx(seg).is_file(), "{seg:?} has an index file");
    }
    assert!(!idx(&segs[segs.len() - 1]).exists());
    reads_back(dir.path(), "index files as written");

    // A valid index file elsewhere, for a link to point at.
    let target = dir.join("elsewhere.idx");
    std::fs::copy(idx(&segs[1]), &target).expect("copy");
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    type Plant = Box<dyn Fn(&Path)>;
    let (t, f) = (target.clone(), fifo.clone());
    let cases: Vec<(&str, Plant)> = vec![
        (
            "a directory",
            Box::new(|p| std::fs::create_dir(p).expect("mkdir")),
        ),
        (
            "a link to a valid index file",
            Box::new(move |p| std::os::unix::fs::symlink(&t, p).expect("symlink")),
        ),
        (
            "a link to a FIFO",
            Box::new(move |p| std::os::unix::fs::symlink(&f, p).expect("symlink")),
        ),
        (
            "a FIFO",
            Box::new(|p| {
                let made = std::process::Command::new("mkfifo")
                    .arg(p)
                    .status()
                    .expect("mkfifo");
                assert!(made.success());
            }),
        ),
        (
            "a sparse file of 1 GiB",
            Box::new(|p| {
                let f = std::fs::File::create(p).expect("create");
                f.set_len(1 << 30).expect("set_len");
            }),
        ),
    ];
    for (what, plant) in cases {
        let p = idx(&segs[1]);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir(&p).expect("rmdir"),
            Ok(_) => std::fs::remove_file(&p).expect("rm"),
            Err(_) => {}
        }
        plant(&p);
        reads_back(dir.path(), what);
    }

    // Retention gets past a planted name it cannot remove as a file (the
    // directory), and removes the index files of what it drops.
    let p = idx(&segs[1]);
    std::fs::remove_file(&p).expect("rm");
    std::fs::create_dir(&p).expect("mkdir");
    let (log, _) = Log::open(dir.path(), options()).expect("open");
    let base = |s: &Path| -> u64 {
        s.file_stem()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("base")
    };
    assert_eq!(log.drop_segments_below(base(&segs[3])).expect("drop"), 3);
    assert!(!idx(&segs[0]).exists() && !idx(&segs[2]).exists());
    assert!(idx(&segs[3]).is_file());
    for i in base(&segs[3])..RECORDS {
        assert_eq!(log.read(i).expect("read"), payload(i), "{i}");
    }
}
