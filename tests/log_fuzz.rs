//! Why this file exists: any byte sequence on disk must give a clear error or
//! a correct recovery — never a panic, a huge allocation, or a silently wrong
//! view (DESIGN.md, "Errors and bad input"). Random bytes and random edits of
//! a real log go through every entry point on the simulated file system.

use std::path::Path;

use proptest::prelude::*;
use runlog_log::{Fs, Log, LogOptions, LogReader, RecoveryMode, SimFs, VerifyOutcome};

const DIR: &str = "/f";

fn seg_path(base: u64) -> std::path::PathBuf {
    Path::new(DIR)
        .join("segments")
        .join(format!("{base:020}.seg"))
}

/// A real two-segment log and its payloads.
fn real_log() -> (SimFs, Vec<Vec<u8>>) {
    let sim = SimFs::new();
    let opts = LogOptions {
        segment_size_max: 300,
        ..LogOptions::default()
    };
    let (log, _) = Log::open_with(sim.handle(), DIR, opts).expect("open");
    let mut all = Vec::new();
    for i in 0..12u8 {
        let b: Vec<Vec<u8>> = (0..=i % 2)
            .map(|j| vec![i ^ j; 5 + usize::from(i)])
            .collect();
        let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
        log.append(&refs).expect("append");
        all.extend(b);
    }
    (sim, all)
}

/// Runs every entry point; returns the records a tolerant open recovered,
/// if it succeeded and every read succeeded.
fn exercise(sim: &SimFs) -> Option<Vec<Vec<u8>>> {
    if let Ok(r) = LogReader::open_with(sim.handle(), DIR, LogOptions::default()) {
        let _ = r.verify(|_, _| {});
        if let Ok(it) = r.iter_from(r.first_lsn()) {
            for rec in it {
                if rec.is_err() {
                    break;
                }
            }
        }
        let _ = r.read(r.first_lsn());
    }
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..LogOptions::default()
    };
    let _ = Log::open_with(sim.handle(), DIR, strict);
    let (log, _) = Log::open_with(sim.handle(), DIR, LogOptions::default()).ok()?;
    let mut out = Vec::new();
    for rec in log.iter_from(log.first_lsn()).ok()? {
        out.push(rec.ok()?.payload);
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Invariant: arbitrary bytes as a segment never panic any entry point.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), keep_header in any::<bool>()) {
        let (real, _) = real_log();
        let sim = SimFs::new();
        sim.create_dir_all(&Path::new(DIR).join("segments")).expect("mkdir");
        let mut data = bytes;
        if keep_header {
            let head = real.read_file(&seg_path(0)).expect("segment");
            let n = data.len().min(32);
            data[..n].copy_from_slice(&head[..n]);
        }
        sim.write_file(&seg_path(0), &data);
        let _ = exercise(&sim);
    }

    /// Invariant: after random edits of a real log, a tolerant open either
    /// fails with an error or yields a prefix of the records written —
    /// never different records.
    #[test]
    fn random_edits_give_an_error_or_a_true_prefix(
        edits in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let (sim, all) = real_log();
        let segs: Vec<_> = sim.files().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
        prop_assert!(segs.len() >= 2);
        for (last, at, value) in edits {
            let path = if last { segs[segs.len() - 1].clone() } else { segs[0].clone() };
            let mut data = sim.read_file(&path).expect("segment");
            let i = at.index(data.len());
            data[i] = value;
            sim.write_file(&path, &data);
        }
        if let Some(at) = truncate {
            let path = segs[segs.len() - 1].clone();
            let data = sim.read_file(&path).expect("segment");
            sim.write_file(&path, &data[..at.index(data.len() + 1)]);
        }
        if let Some(got) = exercise(&sim) {
            prop_assert!(got.len() <= all.len());
            prop_assert_eq!(&got[..], &all[..got.len()]);
        }
    }
}

#[test]
fn the_harness_reads_an_undamaged_log_whole() {
    // Guards the property tests above against passing vacuously.
    let (sim, all) = real_log();
    assert_eq!(exercise(&sim), Some(all));
    let r = LogReader::open_with(sim.handle(), DIR, LogOptions::default()).expect("reader");
    let v = r.verify(|_, _| {}).expect("verify");
    assert!(matches!(v.outcome, VerifyOutcome::Intact), "{v:?}");
}
