//! Why this file exists: recovery must never lose an acknowledged record
//! silently and never keep a partial batch. It guards the two ways that go
//! wrong in other write-ahead logs: a damaged record in the middle of the
//! log being "recovered" by truncating everything after it, and a torn last
//! batch being half kept. Every case damages a small multi-segment log on
//! the simulated file system and checks exactly what opening gives back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use runlog_log::{
    CorruptionKind, Fs, Log, LogError, LogOptions, LogReader, RecoveryMode, SimFs, SyncPolicy,
    VerifyOutcome,
};

const DIR: &str = "/log";
const HEADER_LEN: usize = 32;
const RECORD_HEADER_LEN: usize = 28;

fn options(mode: RecoveryMode) -> LogOptions {
    LogOptions {
        segment_size_max: 220,
        sync: SyncPolicy::Always,
        recovery: mode,
        ..LogOptions::default()
    }
}

/// A small log: batches of 1 to 3 records spread over several segments.
struct Fixture {
    sim: SimFs,
    /// Every batch, in order.
    batches: Vec<Vec<Vec<u8>>>,
    /// For each batch: its segment file and the offset just past it.
    ends: Vec<(PathBuf, usize)>,
}

fn last_segment(sim: &SimFs) -> PathBuf {
    sim.files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .expect("a segment")
}

fn build(batch_count: usize) -> Fixture {
    let sim = SimFs::new();
    let (log, _) = Log::open_with(sim.handle(), DIR, options(RecoveryMode::Strict)).expect("open");
    let mut batches = Vec::new();
    let mut ends = Vec::new();
    for i in 0..batch_count {
        let batch: Vec<Vec<u8>> = (0..=(i % 3))
            .map(|j| format!("b{i}r{j}-{}", "x".repeat(i % 5)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        log.append(&refs).expect("append");
        let seg = last_segment(&sim);
        // Counted, not read off the file: while the log is open, the active
        // segment runs on with preallocated zeros.
        let start = match ends.last() {
            Some((p, end)) if *p == seg => *end,
            _ => HEADER_LEN,
        };
        let len = start
            + batch
                .iter()
                .map(|r| RECORD_HEADER_LEN + r.len())
                .sum::<usize>();
        ends.push((seg, len));
        batches.push(batch);
    }
    drop(log);
    // Closing cut the zeros off: every segment ends after its last batch.
    for (i, (seg, end)) in ends.iter().enumerate() {
        if ends.get(i + 1).is_none_or(|(next, _)| next != seg) {
            assert_eq!(sim.read_file(seg).expect("segment").len(), *end);
        }
    }
    Fixture { sim, batches, ends }
}

/// A copy of a simulated file system, to damage without touching the original.
fn copy(sim: &SimFs) -> SimFs {
    let out = SimFs::new();
    for p in sim.files() {
        if let Some(parent) = p.parent() {
            out.create_dir_all(parent).expect("mkdir");
        }
        out.write_file(&p, &sim.read_file(&p).expect("file"));
    }
    out
}

fn flat(batches: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
    batches.iter().flatten().cloned().collect()
}

/// Opens and reads everything; the first error from either.
fn open_and_read(fs: Arc<dyn Fs>, mode: RecoveryMode) -> Result<(Log, Vec<Vec<u8>>), LogError> {
    let (log, _) = Log::open_with(fs, DIR, options(mode))?;
    let mut out = Vec::new();
    for r in log.iter_from(log.first_lsn())? {
        out.push(r?.payload);
    }
    Ok((log, out))
}

#[test]
fn truncating_the_last_segment_anywhere_keeps_exactly_the_whole_batches() {
    let fx = build(14);
    let last = last_segment(&fx.sim);
    let full = fx.sim.read_file(&last).expect("last");
    let first_in_last = fx.ends.iter().position(|(p, _)| *p == last).expect("batch");
    for cut in 0..=full.len() {
        let sim = copy(&fx.sim);
        sim.write_file(&last, &full[..cut]);
        let result = open_and_read(sim.handle(), RecoveryMode::TolerateTornTail);
        if cut < HEADER_LEN {
            // A segment's header is synced before the segment is renamed into
            // place, so a short header cannot come from a crash: corruption.
            let err = result.expect_err("short header is an error");
            assert!(err.is_corruption(), "cut {cut}: {err}");
            continue;
        }
        let whole = fx
            .ends
            .iter()
            .filter(|(p, end)| *p != last || *end <= cut)
            .count();
        assert!(whole >= first_in_last);
        let (log, got) = result.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(got, flat(&fx.batches[..whole]), "cut {cut}");
        let mut want = got;
        for k in 0..10u8 {
            let p = vec![k; usize::from(k) * 3];
            log.append(&[&p]).expect("append after recovery");
            want.push(p);
        }
        drop(log);
        let (_, again) = open_and_read(sim.handle(), RecoveryMode::Strict).expect("reopen");
        assert_eq!(again, want, "cut {cut}");
    }
}

/// Where the last batch of the log starts, in the last segment.
fn last_batch_start(fx: &Fixture) -> usize {
    let n = fx.ends.len();
    let (last, _) = &fx.ends[n - 1];
    match fx.ends.get(n.wrapping_sub(2)) {
        Some((p, end)) if p == last => *end,
        _ => HEADER_LEN,
    }
}

#[test]
fn a_flipped_bit_truncates_only_in_the_last_batch_and_is_corruption_elsewhere() {
    let fx = build(9);
    let last = last_segment(&fx.sim);
    let tail_start = last_batch_start(&fx);
    let all = flat(&fx.batches);
    let without_last = flat(&fx.batches[..fx.batches.len() - 1]);
    let mut cases = 0;
    for path in fx.sim.files() {
        if path.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let data = fx.sim.read_file(&path).expect("segment");
        for bit in 0..data.len() * 8 {
            cases += 1;
            let mut damaged = data.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let sim = copy(&fx.sim);
            sim.write_file(&path, &damaged);
            let in_last_batch = path == last && bit / 8 >= tail_start;
            let strict = open_and_read(copy(&sim).handle(), RecoveryMode::Strict);
            let tolerate = open_and_read(sim.handle(), RecoveryMode::TolerateTornTail);
            let at = format!("{} byte {} bit {}", path.display(), bit / 8, bit % 8);
            if in_last_batch {
                let (_, got) = tolerate.unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(got, without_last, "{at}");
                let err = strict.expect_err("strict refuses a torn tail");
                assert!(err.is_torn_tail(), "{at}: {err}");
            } else {
                let err = tolerate.err().unwrap_or_else(|| panic!("{at}: no error"));
                assert!(err.is_corruption(), "{at}: {err}");
                let err = strict
                    .err()
                    .unwrap_or_else(|| panic!("{at}: no strict error"));
                assert!(err.is_corruption(), "{at}: {err}");
            }
        }
    }
    assert!(cases > 4000, "{cases} cases");
    assert!(!all.is_empty());
}

/// Re-seals a record after an edit: recomputes its chained checksum (seeded
/// with `prev`, over the bytes after `prev`; FORMAT.md).
fn reseal(seg: &mut [u8], off: usize) {
    let len = u32::from_le_bytes(seg[off + 8..off + 12].try_into().expect("4 bytes")) as usize;
    let prev = u32::from_le_bytes(seg[off + 4..off + 8].try_into().expect("4 bytes"));
    let mut h = crc32fast::Hasher::new_with_initial(prev);
    h.update(&seg[off + 8..off + RECORD_HEADER_LEN + len]);
    seg[off..off + 4].copy_from_slice(&h.finalize().to_le_bytes());
}

/// Offsets of every record in a segment (trusting it: it is undamaged).
fn record_offsets(seg: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while off < seg.len() {
        out.push(off);
        let len = u32::from_le_bytes(seg[off + 8..off + 12].try_into().expect("4 bytes")) as usize;
        off += RECORD_HEADER_LEN + len;
    }
    out
}

#[test]
fn an_edit_with_a_recomputed_checksum_is_still_caught_by_lsn_and_chain() {
    let fx = build(9);
    let last = last_segment(&fx.sim);
    let segs: Vec<PathBuf> = fx
        .sim
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    let mut cases = 0;
    for path in &segs {
        let data = fx.sim.read_file(path).expect("segment");
        let offsets = record_offsets(&data);
        for (i, &off) in offsets.iter().enumerate() {
            if *path == last && i + 1 == offsets.len() {
                // Nothing follows the log's very last record, so nothing can
                // vouch for it: the chain protects every record but that one
                // (FORMAT.md says so).
                continue;
            }
            // Edit the payload's first byte, then the LSN field.
            for field in [RECORD_HEADER_LEN, 16] {
                cases += 1;
                let mut damaged = data.clone();
                damaged[off + field] ^= 0x01;
                reseal(&mut damaged, off);
                let sim = copy(&fx.sim);
                sim.write_file(path, &damaged);
                let err = open_and_read(sim.handle(), RecoveryMode::TolerateTornTail)
                    .err()
                    .unwrap_or_else(|| {
                        panic!("{} record {i} field {field}: no error", path.display())
                    });
                let LogError::Corruption { detail, .. } = &err else {
                    panic!("{} record {i}: {err}", path.display());
                };
                assert!(
                    matches!(
                        detail,
                        CorruptionKind::ChainBroken { .. } | CorruptionKind::LsnGap { .. }
                    ),
                    "{err}"
                );
            }
        }
    }
    assert!(cases > 20);
}

#[test]
fn a_zeroed_sector_in_the_middle_is_an_error() {
    let sim = SimFs::new();
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let (log, _) = Log::open_with(sim.handle(), DIR, opts.clone()).expect("open");
    for i in 0..200u32 {
        log.append(&[format!("record number {i}").as_bytes()])
            .expect("append");
    }
    drop(log);
    let seg = last_segment(&sim);
    let mut data = sim.read_file(&seg).expect("segment");
    assert!(data.len() > 3000);
    data[1024..1536].fill(0);
    sim.write_file(&seg, &data);
    let err = Log::open_with(sim.handle(), DIR, opts).expect_err("zeroed sector");
    assert!(err.is_corruption(), "{err}");
    let err = LogReader::open_with(sim.handle(), DIR, LogOptions::default()).expect_err("reader");
    assert!(err.is_corruption(), "{err}");
}

/// Garbage after the last batch is a torn tail; zeros and nothing else
/// there are unused preallocated space (FORMAT.md, "Preallocated space"):
/// nothing is cut or set aside under any mode.
#[test]
fn garbage_after_the_tail_is_cut_cleanly_and_zeros_are_unused_space() {
    let fx = build(9);
    let last = last_segment(&fx.sim);
    let data = fx.sim.read_file(&last).expect("segment");
    let mut noise = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    for tail in [vec![0u8; 4096], noise, vec![0xff; 100], vec![0u8; 5]] {
        let sim = copy(&fx.sim);
        let mut damaged = data.clone();
        damaged.extend_from_slice(&tail);
        sim.write_file(&last, &damaged);
        let r = LogReader::open_with(sim.handle(), DIR, LogOptions::default()).expect("reader");
        let v = r.verify(|_, _| {}).expect("verify");
        if tail.iter().all(|&b| b == 0) {
            assert!(matches!(v.outcome, VerifyOutcome::Intact), "{v:?}");
            assert_eq!(v.next_lsn, flat(&fx.batches).len() as u64);
            for mode in [
                RecoveryMode::Strict,
                RecoveryMode::Salvage,
                RecoveryMode::TolerateTornTail,
            ] {
                let sim = copy(&sim);
                let (log, report) = Log::open_with(sim.handle(), DIR, options(mode)).expect("open");
                assert_eq!(report.torn_tail, None, "{mode:?}");
                assert_eq!(report.salvaged, None, "{mode:?}");
                assert_eq!(report.unused_bytes, tail.len() as u64, "{mode:?}");
                let got: Vec<Vec<u8>> = log
                    .iter_from(0)
                    .expect("iter")
                    .map(|r| r.expect("record").payload)
                    .collect();
                assert_eq!(got, flat(&fx.batches), "{mode:?}");
                drop(log);
                // Nothing set aside; closing cut the zeros off again.
                assert!(
                    sim.files()
                        .iter()
                        .all(|p| !p.starts_with("/log/torn") && !p.starts_with("/log/quarantine")),
                    "{:?}",
                    sim.files()
                );
                assert_eq!(sim.read_file(&last).expect("segment"), data);
            }
            continue;
        }
        assert!(matches!(v.outcome, VerifyOutcome::TornTail(_)), "{v:?}");
        let (log, report) =
            Log::open_with(sim.handle(), DIR, options(RecoveryMode::TolerateTornTail))
                .expect("open");
        let torn = report.torn_tail.expect("cut reported");
        assert_eq!(torn.bytes, tail.len() as u64);
        assert_eq!(torn.records_dropped, 0);
        assert_eq!(torn.offset, data.len() as u64);
        let side = torn.side_file.expect("side file");
        assert_eq!(sim.read_file(&side).expect("side file kept"), tail);
        let got: Vec<Vec<u8>> = log
            .iter_from(0)
            .expect("iter")
            .map(|r| r.expect("record").payload)
            .collect();
        assert_eq!(got, flat(&fx.batches));
    }
}

#[test]
fn hostile_lengths_give_typed_errors_without_allocating() {
    let fx = build(9);
    let last = last_segment(&fx.sim);
    let data = fx.sim.read_file(&last).expect("segment");
    let off = record_offsets(&data)[0];
    for len in [u32::MAX, u32::MAX - 27, 1 << 30, data.len() as u32 + 1] {
        let mut damaged = data.clone();
        // The checksum is left as it was: a hostile length must be refused
        // before anything trusts it, checksum or not.
        damaged[off + 8..off + 12].copy_from_slice(&len.to_le_bytes());
        let sim = copy(&fx.sim);
        sim.write_file(&last, &damaged);
        let err = open_and_read(sim.handle(), RecoveryMode::Strict).expect_err("error");
        assert!(err.is_corruption() || err.is_torn_tail(), "{len}: {err}");
        let reader = LogReader::open_with(sim.handle(), DIR, LogOptions::default());
        if let Ok(r) = reader {
            let v = r.verify(|_, _| {}).expect("verify");
            assert!(!matches!(v.outcome, VerifyOutcome::Intact), "{len}");
        }
    }
}

#[test]
fn a_corrupt_sealed_segment_is_found_by_reads_and_by_strict_open() {
    let fx = build(9);
    let first = fx.ends[0].0.clone();
    let mut data = fx.sim.read_file(&first).expect("segment");
    data[HEADER_LEN + RECORD_HEADER_LEN] ^= 0x40;
    let sim = copy(&fx.sim);
    sim.write_file(&first, &data);
    // The default open walks only the last segment; the damage surfaces as a
    // located error on the first read that crosses it.
    let err = open_and_read(sim.handle(), RecoveryMode::TolerateTornTail).expect_err("error");
    let LogError::Corruption {
        segment,
        offset,
        lsn,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (segment.as_path(), *offset, *lsn),
        (first.as_path(), HEADER_LEN as u64, 0)
    );
    let msg = err.to_string();
    assert!(msg.contains("offset 32") && msg.contains("LSN 0"), "{msg}");
    let err = open_and_read(sim.handle(), RecoveryMode::Strict).expect_err("error");
    assert!(err.is_corruption(), "{err}");
    let r = LogReader::open_with(sim.handle(), DIR, LogOptions::default()).expect("reader");
    let v = r.verify(|_, _| {}).expect("verify");
    assert!(
        matches!(v.outcome, VerifyOutcome::Corrupt(ref e) if e.is_corruption()),
        "{v:?}"
    );
    let _ = Path::new(DIR);
}

#[test]
fn salvage_keeps_the_valid_prefix_and_quarantines_the_rest() {
    let fx = build(9);
    let (first, first_end) = fx.ends[0].clone();
    let mut data = fx.sim.read_file(&first).expect("segment");
    // Damage the second batch of the first segment.
    data[first_end + 30] ^= 0x01;
    let sim = copy(&fx.sim);
    sim.write_file(&first, &data);
    let (log, report) =
        Log::open_with(sim.handle(), DIR, options(RecoveryMode::Salvage)).expect("salvage");
    let s = report.salvaged.expect("salvage report");
    assert_eq!(s.segment, first);
    assert_eq!(s.offset, first_end as u64);
    assert_eq!(s.lsn, 1);
    assert!(!s.segments_moved.is_empty());
    let q = sim.read_file(&s.quarantine_file).expect("quarantine file");
    assert_eq!(q, data[first_end..]);
    let got: Vec<Vec<u8>> = log
        .iter_from(0)
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect();
    assert_eq!(got, flat(&fx.batches[..1]));
    log.append(&[b"after salvage"]).expect("append");
    drop(log);
    let (_, got) = open_and_read(sim.handle(), RecoveryMode::Strict).expect("clean after salvage");
    assert_eq!(got.len(), 2);
}
