//! Why this file exists: a log written by any released format version must
//! keep replaying (STYLE item 13). These are the golden bytes of format
//! version 1 — the worked example of FORMAT.md — checked both ways: today's
//! writer must still produce exactly them, and today's reader must still read
//! them; and a damaged twin must still be refused with a located error.

use std::path::{Path, PathBuf};

use runlog_log::{Log, LogError, LogOptions, LogReader, RecoveryMode, VerifyOutcome};

/// `segments/00000000000000000000.seg` after appending `["hi"]`, then
/// `["run", "log"]`, to a fresh log (format version 1).
const GOLDEN_V1: [u8; 124] = [
    0x52, 0x55, 0x4e, 0x4c, 0x4f, 0x47, 0x53, 0x47, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x57, 0xfa, 0x8d, 0xd0,
    0xd2, 0xf6, 0x61, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x69, 0x1f, 0xd5,
    0xc9, 0x7e, 0xd2, 0xf6, 0x61, 0xf0, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x72, 0x75, 0x6e, 0x7b, 0x5e, 0xc7,
    0x17, 0x1f, 0xd5, 0xc9, 0x7e, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x6c, 0x6f, 0x67,
];

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        TempDir(std::env::temp_dir().join(format!("runlog-{name}-{}-{nanos}", std::process::id())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn install(dir: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(dir.join("segments")).expect("mkdir");
    std::fs::write(dir.join("segments").join(format!("{:020}.seg", 0)), bytes).expect("write");
}

#[test]
fn the_writer_still_writes_the_golden_v1_bytes() {
    let dir = TempDir::new("golden-write");
    {
        let (log, _) = Log::open(&dir.0, LogOptions::default()).expect("open");
        log.append(&[b"hi"]).expect("append");
        log.append(&[b"run", b"log"]).expect("append");
    }
    let seg = std::fs::read(dir.0.join("segments").join(format!("{:020}.seg", 0))).expect("read");
    assert_eq!(seg, GOLDEN_V1);
    assert_eq!(runlog_log::FORMAT_VERSION, 1);
}

#[test]
fn the_golden_v1_log_still_replays() {
    let dir = TempDir::new("golden-read");
    install(&dir.0, &GOLDEN_V1);
    let want = vec![b"hi".to_vec(), b"run".to_vec(), b"log".to_vec()];
    let reader = LogReader::open(&dir.0, LogOptions::default()).expect("reader");
    let got: Vec<Vec<u8>> = reader
        .iter_from(0)
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect();
    assert_eq!(got, want);
    let v = reader.verify(|_, _| {}).expect("verify");
    assert!(matches!(v.outcome, VerifyOutcome::Intact), "{v:?}");
    assert_eq!((v.records, v.bytes, v.next_lsn), (3, 124, 3));
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..LogOptions::default()
    };
    let (log, report) = Log::open(&dir.0, strict).expect("strict open");
    assert_eq!(report.next_lsn, 3);
    assert_eq!(log.read(1).expect("read"), b"run");
}

#[test]
fn the_damaged_golden_twin_is_refused_with_a_location() {
    let dir = TempDir::new("golden-damaged");
    let mut twin = GOLDEN_V1;
    // One bit of record 0's payload ("hi" at offset 60): damage before a
    // later batch, so corruption, not a torn tail.
    twin[60] ^= 0x01;
    install(&dir.0, &twin);
    let err = Log::open(&dir.0, LogOptions::default()).expect_err("damaged");
    let LogError::Corruption { offset, lsn, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((*offset, *lsn), (32, 0));
    assert!(
        err.to_string()
            .contains("00000000000000000000.seg at offset 32 (LSN 0)"),
        "{err}"
    );
    // Refused, and nothing was changed.
    let seg = std::fs::read(dir.0.join("segments").join(format!("{:020}.seg", 0))).expect("read");
    assert_eq!(seg, twin);
}
