//! Why this file exists: sealed segments carry a sparse index file
//! (`<base>.idx`, FORMAT.md "Index files") that single-record reads and
//! scans start walking from. It is a hint, so these tests hold that a read
//! gives exactly what it gives without the file, whatever the file holds
//! (missing, damaged, of another segment, lying under a valid CRC) and
//! whether or not writing it failed or a crash tore it; with the one
//! difference FORMAT.md states: a read that starts from an index point
//! does not walk over damage before that point. The hostile files that
//! need a real file system (a directory, a link, a FIFO, a huge sparse
//! file) are in the root `tests/log_index.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{SEGMENT_HEADER_LEN, parse_record};
use crate::fs::{Fs, FsFile};
use crate::index_file::{self, INDEX_STEP, IndexPoint, index_path};
use crate::sim::{SimFs, Tear};
use crate::tests::{
    Hook, Hooked, base_of, expected_from, fill, open, read_back, scanned, segment_files,
};
use crate::{CorruptionKind, Log, LogError, LogOptions, LogReader};

/// Segments of 4 KiB: with the unit tests' 256-byte index step, a dozen
/// index points each.
fn indexed() -> LogOptions {
    LogOptions {
        segment_size_max: 4096,
        ..LogOptions::default()
    }
}

/// What reads of `lsns` give, in that order; an error as its `Debug` text,
/// which names its variant and every field (segment, offset, LSN, detail).
type Reads = Vec<Result<Vec<u8>, String>>;

fn reads(read: impl Fn(u64) -> Result<Vec<u8>, LogError>, lsns: &[u64]) -> Reads {
    lsns.iter()
        .map(|&l| read(l).map_err(|e| format!("{e:?}")))
        .collect()
}

/// The records of `lsns`, read back right.
fn exact(want: &[Vec<u8>], lsns: &[u64]) -> Reads {
    lsns.iter().map(|&l| Ok(want[l as usize].clone())).collect()
}

fn reader(fs: &Arc<dyn Fs>) -> LogReader {
    LogReader::open_with(Arc::clone(fs), "/d", indexed()).expect("reader")
}

/// The index points of the segment at `seg`, from its index file.
fn points_of(sim: &SimFs, seg: &Path) -> Vec<IndexPoint> {
    let bytes = sim.read_file(&index_path(seg)).expect("index file");
    let len = sim.read_file(seg).expect("segment").len() as u64;
    index_file::decode(&bytes, base_of(seg), len).expect("a valid index file")
}

fn files_ending(sim: &SimFs, suffix: &str) -> Vec<PathBuf> {
    sim.files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// A log of 300 batches in segments of 4 KiB, closed; its payloads.
fn written(fs: &Arc<dyn Fs>) -> Vec<Vec<u8>> {
    fill(&open(fs, indexed()), 300)
}

#[test]
fn every_record_reads_back_through_the_index_files_and_without_them() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let want = written(&fs);
    let segs = segment_files(&sim);
    assert!(segs.len() >= 5, "{segs:?}");
    let max = indexed().record_size_max;
    // Each sealed segment's index file names batch starts as a walk meets
    // them, at least a step apart; the active segment has none.
    for seg in &segs[..segs.len() - 1] {
        let data = sim.read_file(seg).expect("segment");
        let points = points_of(&sim, seg);
        assert!(points.len() >= 8, "{seg:?}: {points:?}");
        let mut last = SEGMENT_HEADER_LEN as u64;
        for p in &points {
            let r = parse_record(&data, usize::try_from(p.off).expect("offset"), max)
                .expect("a record at the point");
            assert_eq!((r.lsn, r.prev, r.batch_index), (p.lsn, p.prev, 0), "{p:?}");
            assert!(p.off >= last + INDEX_STEP, "{p:?} after {last}");
            last = p.off;
        }
    }
    assert_eq!(sim.read_file(&index_path(&segs[segs.len() - 1])), None);

    let end = want.len() as u64;
    let down: Vec<u64> = (0..end).rev().collect();
    let all = exact(&want, &down);
    // A record after an index point is read without walking its segment
    // from the start.
    let seg = &segs[2];
    let late = points_of(&sim, seg).last().expect("points").lsn + 1;
    let r = reader(&fs);
    assert_eq!(r.read(late).expect("read"), want[late as usize]);
    let state = r.index_state(base_of(seg)).expect("index");
    assert!(state.offsets.is_empty() && state.points >= 8, "{state:?}");
    assert_eq!(reads(|l| r.read(l), &down), all, "a fresh reader");
    let log = open(&fs, indexed());
    assert_eq!(log.read(late).expect("read"), want[late as usize]);
    let state = log.index_state(base_of(seg)).expect("index");
    assert!(state.offsets.is_empty() && state.points >= 8, "{state:?}");
    assert_eq!(reads(|l| log.read(l), &down), all, "a reopened writer");
    for from in (0..=end).step_by(7) {
        let expected = expected_from(&want, from, end);
        let (got, err) = scanned(&log, from);
        assert_eq!(
            (got, err.is_none()),
            (expected.clone(), true),
            "from {from}"
        );
        let (got, err) = read_back(&reader(&fs), from);
        assert_eq!((got, err.is_none()), (expected, true), "reader from {from}");
    }
    drop(log);

    // Without index files: the same records, walked from segment starts.
    for p in files_ending(&sim, ".idx") {
        fs.remove_file(&p).expect("remove");
    }
    let r = reader(&fs);
    assert_eq!(reads(|l| r.read(l), &down), all, "a reader without index");
    assert_eq!(r.index_state(base_of(seg)).expect("index").points, 0);
    let log = open(&fs, indexed());
    assert_eq!(reads(|l| log.read(l), &down), all, "a writer without index");
}

#[test]
fn a_segment_indexed_while_active_takes_its_index_points_once_sealed() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, indexed());
    log.append(&[b"first"]).expect("append");
    // Index the active segment while it holds one record.
    assert_eq!(log.read(0).expect("read"), b"first");
    let mut want = vec![b"first".to_vec()];
    want.extend(fill(&log, 300));
    let segs = segment_files(&sim);
    let late = points_of(&sim, &segs[0]).last().expect("points").lsn + 1;
    assert_eq!(log.read(late).expect("read"), want[late as usize]);
    let state = log.index_state(0).expect("index");
    assert!(state.points >= 8, "{state:?}");
    assert_eq!(
        state.offsets.len(),
        1,
        "walked from the start: record 0 only"
    );
    let lsns: Vec<u64> = (0..base_of(&segs[1])).rev().collect();
    assert_eq!(reads(|l| log.read(l), &lsns), exact(&want, &lsns));
}

#[test]
fn hostile_index_files_read_as_no_index_file() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let want = written(&fs);
    let segs = segment_files(&sim);
    let (seg, next) = (&segs[1], &segs[2]);
    let (base, len) = (
        base_of(seg),
        sim.read_file(seg).expect("segment").len() as u64,
    );
    let idx = index_path(seg);
    let good = sim.read_file(&idx).expect("index file");
    let points = points_of(&sim, seg);
    let lie = |f: &dyn Fn(&mut IndexPoint)| {
        let mut p = points.clone();
        f(&mut p[3]);
        index_file::encode(base, len, &p)
    };
    let flipped = {
        let mut b = good.clone();
        b[40] ^= 0x01;
        b
    };
    // The first six are refused whole when loaded; the others are taken,
    // and their points fail when walked from.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped byte", flipped),
        ("cut short", good[..good.len() - 7].to_vec()),
        ("empty", Vec::new()),
        ("another base", index_file::encode(base + 1, len, &points)),
        (
            "a longer segment",
            index_file::encode(base, len + 1, &points),
        ),
        (
            "a shorter segment",
            index_file::encode(base, len - 1, &points),
        ),
        ("an offset inside a record", lie(&|p| p.off += 5)),
        ("a wrong chain value", lie(&|p| p.prev ^= 0x5a)),
        ("a wrong LSN", lie(&|p| p.lsn += 1)),
        ("a point one record late", {
            let mut p = points.clone();
            let data = sim.read_file(seg).expect("segment");
            // The last point's record may be the segment's last.
            p.pop();
            for q in &mut p {
                let r = parse_record(&data, q.off as usize, u32::MAX).expect("record");
                *q = IndexPoint {
                    lsn: q.lsn + 1,
                    off: r.end as u64,
                    prev: r.crc,
                };
            }
            index_file::encode(base, len, &p)
        }),
        ("the next segment's points", {
            index_file::encode(base, len, &points_of(&sim, next))
        }),
    ];
    let all: Vec<u64> = (0..want.len() as u64).rev().collect();
    let in_seg: Vec<u64> = (base..base_of(next)).collect();
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        sim.write_file(&idx, &bytes);
        let r = reader(&fs);
        r.read(base).expect("read");
        let taken = r.index_state(base).expect("index").points;
        assert_eq!(taken == 0, i < 6, "{what}: {taken} points taken");
        assert_eq!(reads(|l| r.read(l), &all), exact(&want, &all), "{what}");
        let log = open(&fs, indexed());
        assert_eq!(
            reads(|l| log.read(l), &in_seg),
            exact(&want, &in_seg),
            "{what}"
        );
        for &from in &in_seg {
            let expected = expected_from(&want, from, want.len() as u64);
            let (got, err) = scanned(&log, from);
            assert_eq!((got, err.is_none()), (expected, true), "{what} from {from}");
        }
    }
}

#[test]
fn damage_is_reported_as_without_an_index_unless_a_read_starts_past_it() {
    let max = indexed().record_size_max;
    // Damage two records before an index point, then two after it.
    for shift in [-2i64, 2] {
        let sim = SimFs::new();
        let fs = sim.handle();
        let want = written(&fs);
        let segs = segment_files(&sim);
        let (seg, end) = (&segs[1], base_of(&segs[2]));
        let points = points_of(&sim, seg);
        let mid = points[points.len() / 2].lsn;
        let d = mid.checked_add_signed(shift).expect("lsn");
        let mut data = sim.read_file(seg).expect("segment");
        let mut off = SEGMENT_HEADER_LEN;
        for _ in base_of(seg)..d {
            off = parse_record(&data, off, max).expect("record").end;
        }
        let r_end = parse_record(&data, off, max).expect("record").end;
        data[r_end - 1] ^= 0x01;
        sim.write_file(seg, &data);
        let lsns: Vec<u64> = (base_of(seg)..end).collect();

        // Without the index file: the records before `d`, then the
        // checksum failure at `d` for every read at or after it.
        let idx = sim.read_file(&index_path(seg)).expect("index file");
        fs.remove_file(&index_path(seg)).expect("remove");
        let r = reader(&fs);
        let without = reads(|l| r.read(l), &lsns);
        for (&lsn, got) in lsns.iter().zip(&without) {
            if lsn < d {
                assert_eq!(got, &Ok(want[lsn as usize].clone()), "{lsn}");
            } else {
                let e = r.read(lsn).expect_err("damage");
                let at_d = matches!(&e, LogError::Corruption { segment, offset, lsn: l,
                    detail: CorruptionKind::ChecksumMismatch { .. } }
                    if segment == seg && *offset == off as u64 && *l == d);
                assert!(at_d, "{lsn}: {e:?}");
            }
        }
        sim.write_file(&index_path(seg), &idx);

        // With it, each read the first of its reader: exact data where an
        // index point lies after the damage and at or before the record,
        // else exactly the error a walk from the segment's start reports.
        let expected: Reads = lsns
            .iter()
            .zip(&without)
            .map(|(&lsn, w)| {
                if points.iter().any(|p| p.lsn > d && p.lsn <= lsn) {
                    Ok(want[lsn as usize].clone())
                } else {
                    w.clone()
                }
            })
            .collect();
        assert_ne!(
            expected, without,
            "shift {shift}: some read starts past the damage"
        );
        let fresh = reads(|l| reader(&fs).read(l), &lsns);
        assert_eq!(fresh, expected, "shift {shift}: fresh readers");
        let fresh = reads(|l| open(&fs, indexed()).read(l), &lsns);
        assert_eq!(fresh, expected, "shift {shift}: fresh writers");
        // Once a walk from an index point has met the damage, the segment
        // is read as if it had no index file.
        let r = reader(&fs);
        assert_eq!(
            reads(|l| r.read(l), &lsns),
            without,
            "shift {shift}: one reader"
        );
    }
}

#[test]
fn retention_removes_index_files_and_an_open_removes_temporary_ones() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let want = written(&fs);
    let segs = segment_files(&sim);
    let log = open(&fs, indexed());
    assert_eq!(log.drop_segments_below(base_of(&segs[3])).expect("drop"), 3);
    for seg in &segs[..3] {
        assert_eq!(sim.read_file(seg), None, "{seg:?}");
        assert_eq!(sim.read_file(&index_path(seg)), None, "{seg:?}");
    }
    for seg in &segs[3..segs.len() - 1] {
        assert!(sim.read_file(&index_path(seg)).is_some(), "{seg:?}");
    }
    let first = base_of(&segs[3]);
    let lsns: Vec<u64> = (first..want.len() as u64).collect();
    assert_eq!(reads(|l| log.read(l), &lsns), exact(&want, &lsns));
    drop(log);

    let mut tmp = index_path(&segs[4]).into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    sim.write_file(&tmp, b"half an index");
    let (log, report) = Log::open_with(Arc::clone(&fs), "/d", indexed()).expect("open");
    assert_eq!(report.temp_files_removed, 1);
    assert_eq!(sim.read_file(&tmp), None);
    assert_eq!(reads(|l| log.read(l), &lsns), exact(&want, &lsns));
}

#[test]
fn an_index_file_torn_by_a_crash_reads_as_none() {
    let sim = SimFs::new();
    let fs = sim.handle();
    let log = open(&fs, indexed());
    let want = fill(&log, 300);
    // Index files are never synced: the crash leaves them empty, or
    // without a name, and the records are all there.
    sim.restart(Tear::DropUnsynced);
    drop(log);
    let segs = segment_files(&sim);
    assert!(segs.len() >= 5, "{segs:?}");
    for p in files_ending(&sim, ".idx") {
        assert_eq!(sim.read_file(&p), Some(Vec::new()), "{p:?}");
    }
    let lsns: Vec<u64> = (0..want.len() as u64).rev().collect();
    assert_eq!(reads(|l| reader(&fs).read(l), &lsns), exact(&want, &lsns));
    let log = open(&fs, indexed());
    assert_eq!(reads(|l| log.read(l), &lsns), exact(&want, &lsns));
}

/// Which step of writing an index file fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IndexFault {
    Create,
    /// Half the bytes are written, then EIO.
    Write,
    Rename,
}

/// Every index file write fails at one step (and nothing else fails).
#[derive(Debug)]
struct IndexWritesFail(IndexFault);

fn is_index(path: &Path) -> bool {
    let p = path.to_string_lossy();
    p.ends_with(".idx") || p.ends_with(".idx.tmp")
}

fn eio() -> std::io::Error {
    std::io::Error::from_raw_os_error(5)
}

#[derive(Debug)]
struct HalfWrites(Arc<dyn FsFile>);

impl FsFile for HalfWrites {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(&buf[..buf.len() / 2], offset)?;
        Err(eio())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
}

impl Hook for IndexWritesFail {
    fn create(&self, fs: &dyn Fs, path: &Path) -> std::io::Result<Arc<dyn FsFile>> {
        match self.0 {
            IndexFault::Create if is_index(path) => Err(eio()),
            IndexFault::Write if is_index(path) => Ok(Arc::new(HalfWrites(fs.create(path)?))),
            _ => fs.create(path),
        }
    }
    fn rename(&self, fs: &dyn Fs, from: &Path, to: &Path) -> std::io::Result<()> {
        if self.0 == IndexFault::Rename && is_index(to) {
            return Err(eio());
        }
        fs.rename(from, to)
    }
}

#[test]
fn a_failed_index_write_neither_poisons_the_log_nor_loses_a_record() {
    for fault in [IndexFault::Create, IndexFault::Write, IndexFault::Rename] {
        let sim = SimFs::new();
        let failing: Arc<dyn Fs> = Arc::new(Hooked {
            inner: sim.handle(),
            hook: IndexWritesFail(fault),
        });
        let log = open(&failing, indexed());
        // Every append succeeds (`fill` expects it) through many rollovers.
        let want = fill(&log, 300);
        let lsns: Vec<u64> = (0..want.len() as u64).rev().collect();
        assert_eq!(
            reads(|l| log.read(l), &lsns),
            exact(&want, &lsns),
            "{fault:?}"
        );
        let more = log.append(&[b"after"]).expect("append");
        drop(log);
        let sealed = segment_files(&sim).len() - 1;
        assert!(sealed >= 5, "{fault:?}");
        assert!(files_ending(&sim, ".idx").is_empty(), "{fault:?}");
        let temps = files_ending(&sim, ".idx.tmp").len();
        let expected_temps = if fault == IndexFault::Create {
            0
        } else {
            sealed
        };
        assert_eq!(temps, expected_temps, "{fault:?}");

        let fs = sim.handle();
        let (log, report) = Log::open_with(Arc::clone(&fs), "/d", indexed()).expect("open");
        assert_eq!(
            report.temp_files_removed, expected_temps as u64,
            "{fault:?}"
        );
        assert!(files_ending(&sim, ".tmp").is_empty(), "{fault:?}");
        assert_eq!(report.next_lsn, more.next, "{fault:?}");
        assert_eq!(
            reads(|l| log.read(l), &lsns),
            exact(&want, &lsns),
            "{fault:?}"
        );
        assert_eq!(reads(|l| reader(&fs).read(l), &lsns), exact(&want, &lsns));
    }
}
