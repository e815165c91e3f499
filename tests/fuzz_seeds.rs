//! Why this file exists: the fuzz targets under `fuzz/` need nightly flags
//! and libFuzzer, so CI does not run them; but the inputs they found worth
//! keeping — the checked-in seeds in `fuzz/seeds/<target>/`, including
//! every input that once crashed a target — must keep passing. This test
//! feeds each seed through the very check function its target runs
//! (`tests/checks/mod.rs`).

mod checks;

use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("seed dir entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn run_all(target: &str, check: fn(&[u8])) {
    let seeds = seeds(target);
    // A seed directory that lost its files would pass vacuously.
    assert!(
        seeds.len() >= 5,
        "only {} seeds for {target}; see fuzz/seeds/",
        seeds.len()
    );
    for (path, bytes) in seeds {
        eprintln!("{target}: {}", path.display());
        check(&bytes);
    }
}

/// Invariant: every log seed (a data directory's segments as raw bytes)
/// gives a typed error or an idempotent recovery, never a panic.
#[test]
fn log_bytes_seeds() {
    run_all("log_bytes", checks::log_bytes);
}

/// Invariant: every event seed (raw record payloads) is refused with a
/// typed error by both opens, or replays to views equal to the fold of its
/// events.
#[test]
fn event_bytes_seeds() {
    run_all("event_bytes", checks::event_bytes);
}

/// Invariant: every command-sequence seed satisfies the engine model
/// (acknowledged events survive, views are the fold, poison is final).
#[test]
fn engine_ops_seeds() {
    run_all("engine_ops", checks::engine_ops);
}

/// Prints what an `engine_ops` input stands for, to read a crash:
/// `ENGINE_OPS=path cargo test --test fuzz_seeds show -- --ignored --nocapture`
/// (add `MODEL_TRACE=1` to see the model's state before every op).
#[test]
#[ignore = "a debugging aid; needs ENGINE_OPS=<file>"]
fn show_engine_ops_input() {
    let path = std::env::var("ENGINE_OPS").expect("ENGINE_OPS=<file>");
    let bytes = std::fs::read(&path).expect("read the input");
    let (setup, ops) = checks::engine_ops_input(&bytes).expect("too short for a setup");
    eprintln!("{setup:#?}");
    for (i, op) in ops.iter().enumerate() {
        eprintln!("{i:3} {op:?}");
    }
    checks::engine_ops(&bytes);
}

/// Writes the starting seeds: real segments and real event records made by
/// the engine on the simulated file system, and pseudo-random command
/// bytes. Run once by hand (`cargo test --test fuzz_seeds -- --ignored`);
/// the fuzzers' own finds are added to the same directories.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand"]
fn write_starting_seeds() {
    use runlog_engine::{Engine, JobOutcome, Options, Step, Submit, Usage};
    use runlog_log::{LogOptions, LogReader, SimFs};

    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("seeds");
    for t in ["log_bytes", "event_bytes", "engine_ops"] {
        std::fs::create_dir_all(root.join(t)).expect("mkdir");
    }
    let write = |t: &str, name: &str, bytes: &[u8]| {
        std::fs::write(root.join(t).join(name), bytes).expect("write seed");
    };

    // A small workload with every common event kind.
    let sim = SimFs::new();
    let mut options = Options::default();
    options.segment_size_max = 400;
    let (engine, _) = Engine::open_with("/f", options, sim.handle()).expect("open");
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 3,
        cost_micros: 1,
    };
    let job = engine
        .submit(Submit::new("agent", b"input".to_vec()).fingerprint("fp"))
        .expect("submit")
        .job;
    let run = engine.start_run(&job, None).expect("start");
    let cp = engine
        .record_step(&job, &run, Step::new(b"state".to_vec(), usage).phase(0))
        .expect("step");
    engine
        .complete_phase(&job, &run, 0, "plan", b"plan".to_vec())
        .expect("phase");
    let child = engine.delegate(&job, &run).expect("delegate");
    engine
        .complete_run(&job, &child, b"sub".to_vec())
        .expect("child");
    engine.return_child(&job, &run, &child).expect("return");
    engine.request_input(&job, &run, "more?").expect("ask");
    engine
        .provide_input(&job, &run, b"yes".to_vec())
        .expect("answer");
    engine
        .complete_run(&job, &run, b"done".to_vec())
        .expect("complete");
    engine
        .finish_job(&job, JobOutcome::Completed)
        .expect("finish");
    let run2 = engine.start_run(&job, Some(cp)).expect("continue");
    engine.fail_run(&job, &run2, "boom", true).expect("fail");
    drop(engine);

    let reader = LogReader::open_with(sim.handle(), "/f", LogOptions::default()).expect("reader");
    let payloads: Vec<Vec<u8>> = reader
        .iter_from(0)
        .expect("iter")
        .map(|r| r.expect("record").payload)
        .collect();
    let segments: Vec<PathBuf> = sim
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    let first = sim.read_file(&segments[0]).expect("segment");
    let mut whole = vec![0u8];
    whole.extend_from_slice(&first);
    write("log_bytes", "first-segment", &whole);
    write("log_bytes", "torn-tail", &whole[..whole.len() - 7]);
    let mut zeros = whole.clone();
    zeros.extend_from_slice(&[0; 40]);
    write("log_bytes", "zero-tail", &zeros);
    let mut flipped = whole.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    write("log_bytes", "bit-flip", &flipped);
    write("log_bytes", "header-only", &whole[..whole.len().min(33)]);
    // Two segments in the multi-segment layout: [1, cut, bytes.., cut, bytes..]
    // with cut*4 bytes each (so the seed pads each to a multiple of 4).
    if let Some(second) = segments.get(1).and_then(|p| sim.read_file(p)) {
        let mut multi = vec![1u8];
        for seg in [&first, &second] {
            let cut = seg.len().div_ceil(4).min(255);
            multi.push(cut as u8);
            let mut s = seg.to_vec();
            s.resize(cut * 4, 0);
            multi.extend_from_slice(&s);
        }
        write("log_bytes", "two-segments", &multi);
    }

    // Event records, split by a byte none of them holds.
    let used: std::collections::BTreeSet<u8> = payloads.iter().flatten().copied().collect();
    let sep = (0..=255u8)
        .find(|b| !used.contains(b))
        .expect("a free byte");
    let join = |records: &[Vec<u8>]| {
        let mut out = vec![sep];
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            out.extend_from_slice(r);
        }
        out
    };
    write("event_bytes", "whole-workload", &join(&payloads));
    for (i, p) in payloads.iter().enumerate().take(8) {
        write(
            "event_bytes",
            &format!("prefix-{i:02}"),
            &join(&payloads[..=i]),
        );
        let _ = p;
    }
    let mut newer = payloads[0].clone();
    newer[0] = 2;
    write("event_bytes", "newer-version", &join(&[newer]));
    write("event_bytes", "out-of-order", &join(&[payloads[1].clone()]));

    // Command sequences: pseudo-random bytes (xorshift), various lengths.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for (i, len) in [64usize, 128, 256, 512, 1024, 2048].into_iter().enumerate() {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        write("engine_ops", &format!("random-{i}"), &bytes);
    }
}
