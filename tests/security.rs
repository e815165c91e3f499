//! Why this file exists: checkpoints hold prompts and outputs, so a data
//! directory must be readable by its owner only, whatever the umask; and a
//! directory may come from someone else (an audit of a copy), so nothing in
//! it — a symbolic link at a segment, snapshot, lock or temporary name — may
//! make runlog read, write or truncate a file outside it, and no id given on
//! the command line is ever used as a path.

// Test code: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use runlog::log::LogError;
use runlog::projections::Projections;
use runlog::{Engine, EngineError, JobOutcome, Query, Step, Submit, Usage};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_runlog");

/// Runs the binary with a umask that would make every file world-writable.
fn runlog_umask_000(args: &[&str]) -> Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every entry under `dir` (and `dir` itself) with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), m.is_dir(), m.permissions().mode() & 0o777));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn every_file_is_0600_and_every_directory_0700_whatever_the_umask() {
    let scratch = TempDir::new("modes");
    let data = scratch.join("data");
    // Segments (several), LOCK, snapshots, a torn tail's side file.
    let o = runlog_umask_000(&[
        "demo",
        s(&data),
        "--jobs",
        "3",
        "--crash",
        "--segment-size",
        "4096",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = runlog_umask_000(&["recover", s(&data)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // Quarantine: damage the first segment and salvage.
    let first = data.join("segments").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[200] ^= 0x55;
    std::fs::write(&first, &bytes).unwrap();
    let o = runlog_umask_000(&["recover", s(&data), "--salvage"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");

    let found = modes(&data);
    let names: Vec<String> = found
        .iter()
        .map(|(p, _, _)| p.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for want in ["LOCK", "segments", "snapshots", "torn", "quarantine"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for suffix in [".seg", ".snap", ".torn", ".bad"] {
        assert!(
            names.iter().any(|n| n.ends_with(suffix)),
            "no {suffix} file: {names:?}"
        );
    }
    for (path, is_dir, mode) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:o}", path.display());
    }
    // The same through the library, for the engine's own snapshot writer.
    let dir = scratch.join("lib");
    let (engine, _) = Engine::open(&dir, support::options().0).unwrap();
    engine.submit(Submit::new("a", "b")).unwrap();
    engine.close().unwrap();
    for (path, is_dir, mode) in modes(&dir) {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
}

/// A small valid data directory of several segments and one snapshot.
fn build(dir: &Path) {
    let mut o = support::options().0;
    o.segment_size_max = 4096;
    o.snapshot_every_events = 0;
    o.snapshot_every_bytes = 0;
    let (engine, _) = Engine::open(dir, o).unwrap();
    for i in 0..5 {
        let job = engine
            .submit(Submit::new("a", format!("in {i}")))
            .unwrap()
            .job;
        let run = engine.start_run(&job, None).unwrap();
        for _ in 0..3 {
            engine
                .record_step(&job, &run, Step::new(vec![7; 500], Usage::default()))
                .unwrap();
        }
        engine.complete_run(&job, &run, "ok").unwrap();
        engine.finish_job(&job, JobOutcome::Completed).unwrap();
    }
    engine.close().unwrap();
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

/// Moves `file` to `outside` and leaves a symbolic link to it in its place.
fn move_out_and_link(file: &Path, outside: &Path) {
    std::fs::rename(file, outside).unwrap();
    symlink(outside, file).unwrap();
}

/// `Engine::open` with the test options.
fn open(dir: &Path) -> (Engine, runlog::OpenReport) {
    Engine::open(dir, support::options().0).unwrap()
}

fn not_regular(e: &EngineError, path: &Path) -> bool {
    matches!(e, EngineError::Log(LogError::NotRegularFile { path: p, found: "a symbolic link" }) if p == path)
}

#[test]
fn a_symlinked_segment_is_refused_and_its_target_left_alone() {
    for which in ["last", "first"] {
        let scratch = TempDir::new("link-seg");
        let data = scratch.join("data");
        build(&data);
        let segs = segments(&data);
        assert!(segs.len() >= 3);
        let seg = if which == "last" {
            segs.last().unwrap().clone()
        } else {
            segs[0].clone()
        };
        let outside = scratch.join("outside.seg");
        move_out_and_link(&seg, &outside);
        // A torn tail in the target: following the link, the writer would
        // cut the outside file.
        let mut target = std::fs::read(&outside).unwrap();
        target.extend_from_slice(&[0xA5; 40]);
        std::fs::write(&outside, &target).unwrap();

        let err = Engine::open(&data, support::options().0).unwrap_err();
        assert!(not_regular(&err, &seg), "{which}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is a symbolic link, not a regular file; segments must be regular files",
                seg.display()
            )
        );
        let err =
            runlog::ReadOnly::open(&data, support::options().0, runlog::AsOf::Latest).unwrap_err();
        assert!(not_regular(&err, &seg), "{which}: {err:?}");
        assert_eq!(std::fs::read(&outside).unwrap(), target, "{which}");
        for cmd in ["jobs", "verify", "recover"] {
            let o = Command::new(BIN).args([cmd, s(&data)]).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(8), "{which} {cmd}: {err}");
            assert!(err.contains("is a symbolic link"), "{which} {cmd}: {err}");
        }
        assert_eq!(std::fs::read(&outside).unwrap(), target, "{which}");
    }
}

#[test]
fn a_symlinked_snapshot_is_skipped_and_the_log_replayed() {
    let scratch = TempDir::new("link-snap");
    let data = scratch.join("data");
    build(&data);
    let snap = std::fs::read_dir(data.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .unwrap();
    move_out_and_link(&snap, &scratch.join("outside.snap"));
    let (engine, report) = open(&data);
    assert!(report.snapshot.is_none(), "{report:?}");
    assert_eq!(report.snapshots_skipped.len(), 1, "{report:?}");
    assert_eq!(report.snapshots_skipped[0].path, snap);
    assert!(
        report.snapshots_skipped[0]
            .reason
            .contains("symlinks are refused"),
        "{report:?}"
    );
    assert_eq!(report.events_replayed, 5 * 7);
    let mut fresh = Projections::new();
    engine
        .for_each_event(0, |lsn, e| {
            fresh.apply(lsn, &e).unwrap();
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert!(engine.with_views(|v| v == &fresh));
}

#[test]
fn links_planted_at_lock_and_temporary_names_are_never_followed() {
    let scratch = TempDir::new("link-tmp");
    let data = scratch.join("data");
    build(&data);
    let precious = scratch.join("precious");
    std::fs::write(&precious, b"precious").unwrap();

    // LOCK pointing nowhere: opening would create the target.
    std::fs::remove_file(data.join("LOCK")).unwrap();
    let nowhere = scratch.join("created-by-lock");
    symlink(&nowhere, data.join("LOCK")).unwrap();
    let err = Engine::open(&data, support::options().0).unwrap_err();
    assert!(
        matches!(&err, EngineError::Log(LogError::Io { op: "lock", .. })),
        "{err:?}"
    );
    assert!(!nowhere.exists());
    std::fs::remove_file(data.join("LOCK")).unwrap();

    // A torn tail, with a link where its side file's temporary goes, and
    // one at a temporary segment name (removed at open).
    let last = segments(&data).pop().unwrap();
    let cut = std::fs::metadata(&last).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xA5; 33]).unwrap();
    drop(f);
    let torn = data.join("torn");
    std::fs::create_dir(&torn).unwrap();
    let side = format!(
        "{}.{cut:020}.torn",
        last.file_name().unwrap().to_str().unwrap()
    );
    symlink(&precious, torn.join(format!("{side}.tmp"))).unwrap();
    symlink(
        &precious,
        data.join("segments").join(format!("{:020}.seg.tmp", 999)),
    )
    .unwrap();

    let (engine, report) = open(&data);
    let t = report.recovery.torn_tail.as_ref().unwrap();
    assert_eq!(t.side_file.as_deref(), Some(torn.join(&side).as_path()));
    assert_eq!(std::fs::read(torn.join(&side)).unwrap(), vec![0xA5; 33]);
    assert!(
        std::fs::symlink_metadata(torn.join(&side))
            .unwrap()
            .is_file()
    );
    assert_eq!(report.recovery.temp_files_removed, 1);

    // A link where the next snapshot's temporary goes.
    let lsn = engine.next_lsn();
    let tmp = data.join("snapshots").join(format!("{lsn:020}.snap.tmp"));
    symlink(&precious, &tmp).unwrap();
    let info = engine.snapshot().unwrap();
    assert!(std::fs::symlink_metadata(&info.path).unwrap().is_file());
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious");
    drop(engine);
}

/// Ids that would mean something if used as a path.
const HOSTILE_IDS: &[&str] = &[
    "../../../../../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "..",
    ".",
    "",
    "../outside",
    "LOCK",
    "segments/00000000000000000000.seg",
    "job-0\nsecond line",
    "job-\u{1b}[31mred",
    "%2e%2e%2fetc",
    "\u{202e}dwssap/cte/",
];

#[test]
fn ids_on_the_command_line_are_never_used_as_paths() {
    let scratch = TempDir::new("ids");
    let data = scratch.join("data");
    build(&data);
    std::fs::write(scratch.join("outside"), b"outside").unwrap();
    let job = open(&data)
        .0
        .jobs(&runlog::JobFilter::all())
        .expect("jobs readable")[0]
        .id
        .to_string();
    let out = scratch.join("out.svg");
    let before = tree(scratch.path());
    let strace = Command::new("strace").arg("-V").output().is_ok();
    let mut runs = 0;
    for id in HOSTILE_IDS {
        let d = s(&data);
        let o = s(&out);
        let commands: Vec<(Vec<&str>, &str)> = vec![
            (vec!["show", d, id], "unknown job"),
            (vec!["show", d, id, "--json"], "unknown job"),
            (vec!["checkpoints", d, id], "unknown job"),
            (vec!["checkpoint", d, id, "cp-1"], "unknown job"),
            (vec!["checkpoint", d, &job, id], "has no checkpoint"),
            (
                vec!["checkpoint", d, &job, id, "--payload"],
                "has no checkpoint",
            ),
            (vec!["timeline", d, id, "--out", o], "unknown job"),
            (vec!["events", d, "--job", id], "unknown job"),
        ];
        for (args, says) in commands {
            let trace = scratch.join("trace");
            let o = if strace {
                Command::new("strace")
                    .args(["-f", "-qq", "-e", "trace=%file", "-o", s(&trace), BIN])
                    .args(&args)
                    .output()
                    .unwrap()
            } else {
                Command::new(BIN).args(&args).output().unwrap()
            };
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
            assert!(
                err.starts_with("runlog: ") && err.contains(says),
                "{args:?}: {err}"
            );
            if strace {
                let t = std::fs::read_to_string(&trace).unwrap();
                std::fs::remove_file(&trace).unwrap();
                // An id that names a real file of the directory ("LOCK")
                // is not told apart by its path; the exit status shows it
                // was looked up as an id.
                if id.len() > 2 && !data.join(id).exists() {
                    for line in t.lines().filter(|l| !l.contains("execve(")) {
                        assert!(
                            !line.contains(&format!("\"{id}"))
                                && !line.contains(&format!("/{id}\"")),
                            "{args:?} touched a path made of the id: {line}"
                        );
                    }
                }
                // Nothing outside the data directory and the system's own
                // files (the loader, /proc) is opened.
                for line in t
                    .lines()
                    .filter(|l| l.contains("open(") || l.contains("openat("))
                {
                    let Some(path) = line.split('"').nth(1) else {
                        continue;
                    };
                    if path.contains(".so") {
                        continue; // the loader searching LD_LIBRARY_PATH
                    }
                    assert!(
                        path.starts_with(s(&data))
                            || ["/etc/ld.so", "/lib", "/usr/lib", "/proc/", "/sys/"]
                                .iter()
                                .any(|p| path.starts_with(p)),
                        "{args:?} opened {path}"
                    );
                }
            }
            runs += 1;
        }
    }
    assert_eq!(tree(scratch.path()), before, "a command changed a file");
    assert!(!out.exists());
    println!("{runs} runs with hostile ids (strace: {strace})");
}

/// Every path under `dir` with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            out.push((p, Vec::new()));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// What a hostile log puts in a key, an error and a prompt: a title change,
/// a screen clear, a forged table row, a C1 control sequence introducer.
const HOSTILE_TEXT: &str = "agent\u{1b}]0;owned\u{7}\u{1b}[2J\nforged-row\u{9b}31m\u{7f}";

#[test]
fn text_from_the_log_never_reaches_the_terminal_as_control_characters() {
    let scratch = TempDir::new("escapes");
    let data = scratch.join("data");
    let (engine, _) = open(&data);
    let job = engine
        .submit(Submit::new(HOSTILE_TEXT, HOSTILE_TEXT).fingerprint(HOSTILE_TEXT))
        .unwrap()
        .job;
    let run = engine.start_run(&job, None).unwrap();
    engine.request_input(&job, &run, HOSTILE_TEXT).unwrap();
    drop(engine); // in flight: `interrupted` lists it
    let (engine, _) = open(&data);
    engine.fail_run(&job, &run, HOSTILE_TEXT, false).unwrap();
    engine
        .finish_job(
            &job,
            JobOutcome::Failed {
                error: HOSTILE_TEXT.into(),
            },
        )
        .unwrap();
    drop(engine);
    let d = s(&data);
    let id = job.to_string();
    for args in [
        vec!["jobs", d],
        vec!["show", d, &id],
        vec!["events", d],
        vec!["interrupted", d],
        vec!["replay", d, "--until-lsn", "3"],
        vec!["verify", d],
        vec!["show", d, HOSTILE_TEXT],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        for (what, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let bad: Vec<char> = text
                .chars()
                .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
                .collect();
            assert!(bad.is_empty(), "{args:?} {what}: {bad:?} in {text}");
            assert!(!text.contains("\nforged-row"), "{args:?} {what}: {text}");
        }
        if o.status.code() != Some(0) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
    let o = Command::new(BIN).args(["jobs", d]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(r"agent\u001b]0;owned\u0007\u001b[2J\u000aforged-row\u009b31m\u007f"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // JSON keeps the exact strings: the escapes are JSON's own.
    for args in [vec!["jobs", d, "--json"], vec!["show", d, &id, "--json"]] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        assert!(
            !o.stdout.iter().any(|&b| b == 0x1b || b == 0x7f),
            "{args:?}"
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let key = if args[0] == "jobs" {
            &v[0]["key"]
        } else {
            &v["key"]
        };
        assert_eq!(key.as_str(), Some(HOSTILE_TEXT), "{args:?}: {v}");
    }
    let o = Command::new(BIN)
        .args(["events", d, "--json"])
        .output()
        .unwrap();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let _: serde_json::Value = serde_json::from_str(line).unwrap();
    }
}
