//! Why this file exists: `scan_segments` (on `Log` and `LogReader`) lends
//! replay one segment's records at a time so that another thread can
//! decode them. It must give exactly what `scan` gives, in order, segment
//! by segment; it must never let a record go unchecked, even one its
//! callback did not take; and a callback that breaks must stop the walk.

mod support;

use runlog_log::{CorruptionKind, Log, LogError, LogOptions, LogReader, SyncPolicy};
use std::ops::ControlFlow;
use std::path::Path;
use support::TempDir;

/// 60 records of 100 bytes (record `i` is byte `i` repeated) in segments
/// of at most 1 KiB: 7 records (a 32-byte header and 7 of 128 bytes) a
/// segment.
fn write(dir: &Path) {
    let options = LogOptions {
        segment_size_max: 1024,
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir, options).expect("open");
    for i in 0..60u8 {
        log.append(&[&[i; 100]]).expect("append");
    }
    log.sync().expect("sync");
}

#[test]
fn scan_segments_gives_what_scan_gives_segment_by_segment() {
    let dir = TempDir::new("scan-segments");
    write(dir.path());
    let reader = LogReader::open(dir.path(), LogOptions::default()).expect("reader");
    let mut expected = Vec::new();
    reader
        .scan(5, |lsn, p| {
            expected.push((lsn, p.to_vec()));
            ControlFlow::Continue(())
        })
        .expect("scan");
    let mut segments: Vec<Vec<(u64, Vec<u8>)>> = Vec::new();
    reader
        .scan_segments(5, |records| {
            segments.push(records.map(|(lsn, p)| (lsn, p.to_vec())).collect());
            ControlFlow::Continue(())
        })
        .expect("scan_segments");
    // From LSN 5: the rest of the first segment, then 7 a segment.
    let lens: Vec<usize> = segments.iter().map(Vec::len).collect();
    assert_eq!(lens, [2, 7, 7, 7, 7, 7, 7, 7, 4]);
    assert_eq!(segments.concat(), expected);
    assert_eq!(expected.len(), 55);
    assert_eq!(expected[0], (5, vec![5u8; 100]));

    // The writer gives the same, and a break stops the walk.
    let (log, _) = Log::open(dir.path(), LogOptions::default()).expect("log");
    let mut seen = Vec::new();
    log.scan_segments(0, |records| {
        seen.extend(records.take(3).map(|(lsn, _)| lsn));
        ControlFlow::Break(())
    })
    .expect("scan_segments");
    assert_eq!(seen, [0, 1, 2]);
}

#[test]
fn a_record_the_callback_left_untaken_is_still_checked() {
    let dir = TempDir::new("scan-segments-corrupt");
    write(dir.path());
    // Flip a payload byte of record 11 (the fifth of the second segment).
    let second = dir.path().join("segments/00000000000000000007.seg");
    let mut bytes = std::fs::read(&second).expect("read");
    let at = bytes
        .windows(100)
        .position(|w| w == [11u8; 100])
        .expect("record 11");
    bytes[at] ^= 0xff;
    std::fs::write(&second, bytes).expect("write");

    let reader = LogReader::open(dir.path(), LogOptions::default()).expect("reader");
    let mut taken = Vec::new();
    let err = reader
        .scan_segments(0, |records| {
            taken.extend(records.take(2).map(|(lsn, _)| lsn));
            ControlFlow::Continue(())
        })
        .expect_err("corruption");
    assert_eq!(taken, [0, 1, 7, 8]);
    assert!(
        matches!(
            err,
            LogError::Corruption {
                lsn: 11,
                detail: CorruptionKind::ChecksumMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
}
