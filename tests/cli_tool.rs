//! Why this file exists: the `runlog` binary is what operators and auditors
//! trust when they look into a data directory, so its contract is tested
//! from the outside, on the built binary: the JSON shapes scripts depend on,
//! verify's fsck-like exit codes on an intact, torn, corrupt and empty
//! directory, recover then verify, read-only commands that change not one
//! byte, a crashed demo whose runs `interrupted` lists, the writer lock
//! between two demos, and errors that are one sentence, never a panic.

// Test helpers unwrap: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_runlog");

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("runlog-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runlog(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Runs a command that must succeed and returns its stdout.
fn ok(args: &[&str]) -> String {
    let o = runlog(args);
    assert_eq!(code(&o), 0, "runlog {args:?} failed: {}", stderr(&o));
    stdout(&o)
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// Asserts a failure: the exit status, one line on stderr naming `needle`.
fn fails(args: &[&str], status: i32, needle: &str) {
    let o = runlog(args);
    let err = stderr(&o);
    assert_eq!(code(&o), status, "runlog {args:?}: {err}");
    assert!(
        err.contains(needle),
        "stderr of {args:?} lacks {needle:?}: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "not one sentence: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn demo(dir: &Path, extra: &[&str]) -> String {
    let d = dir.to_str().unwrap();
    let mut args = vec!["demo", d, "--jobs", "6", "--seed", "3"];
    args.extend_from_slice(extra);
    ok(&args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|t| {
        t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T' && t.as_bytes()[4] == b'-'
    })
}

/// Every file under `dir` with a hash of its bytes.
fn hashes(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(p, (bytes.len() as u64, h.finish()));
            }
        }
    }
    out
}

fn segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

fn first_job(dir: &Path) -> String {
    let jobs = json(&["jobs", s(dir), "--json"]);
    jobs[jobs.as_array().unwrap().len() - 1]["job_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn demo_commits_each_job_and_jobs_json_has_the_documented_shape() {
    let t = Scratch::new("shape");
    let dir = t.path("data");
    let out = demo(&dir, &[]);
    let committed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("committed "))
        .collect();
    assert_eq!(committed.len(), 6, "{out}");
    assert!(
        out.contains("runlog jobs") || out.contains("-- jobs"),
        "{out}"
    );

    let jobs = json(&["jobs", s(&dir), "--json"]);
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 6);
    for j in jobs {
        assert!(j["job_id"].as_str().unwrap().starts_with("job-"));
        assert!(
            committed.contains(&format!("committed {}", j["job_id"].as_str().unwrap()).as_str())
        );
        assert!(j["key"].is_string());
        assert!(j["status"].is_string());
        assert!(j["total_steps"].as_u64().unwrap() > 0);
        let u = &j["usage"];
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap()
        );
        assert!(is_rfc3339(&j["started_at"]), "{j}");
        assert!(is_rfc3339(&j["finished_at"]), "{j}");
    }
    // Filters.
    let failed = json(&["jobs", s(&dir), "--status", "failed", "--json"]);
    assert!(
        failed
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "failed")
    );
    let key = jobs[0]["key"].as_str().unwrap();
    let by_key = json(&["jobs", s(&dir), "--key", key, "--json"]);
    assert!(!by_key.as_array().unwrap().is_empty());
    assert!(by_key.as_array().unwrap().iter().all(|j| j["key"] == key));
    // The table names its columns.
    let table = ok(&["jobs", s(&dir)]);
    assert!(table.starts_with("JOB ID"), "{table}");
}

#[test]
fn demo_is_deterministic_for_a_seed() {
    let t = Scratch::new("determinism");
    let (a, b) = (t.path("a"), t.path("b"));
    demo(&a, &[]);
    demo(&b, &[]);
    assert_eq!(
        ok(&["jobs", s(&a), "--json"]),
        ok(&["jobs", s(&b), "--json"])
    );
    assert_eq!(
        ok(&["events", s(&a), "--json"]),
        ok(&["events", s(&b), "--json"])
    );
    assert_eq!(
        std::fs::read(segment(&a)).unwrap(),
        std::fs::read(segment(&b)).unwrap()
    );
}

#[test]
fn show_checkpoints_checkpoint_and_events() {
    let t = Scratch::new("show");
    let dir = t.path("data");
    demo(&dir, &[]);
    let jobs = json(&["jobs", s(&dir), "--json"]);
    // The demo's fourth job delegates, fails, and resumes from a checkpoint.
    let job = jobs[2]["job_id"].as_str().unwrap().to_owned();
    let v = json(&["show", s(&dir), &job, "--json"]);
    assert_eq!(v["job_id"], job.as_str());
    let runs = v["runs"].as_array().unwrap();
    assert!(runs.len() >= 2, "{v}");
    assert!(
        runs.iter()
            .any(|r| !r["children"].as_array().unwrap().is_empty()),
        "no delegation: {v}"
    );
    assert!(runs.iter().any(|r| r["status"] == "failed"));
    assert!(runs.iter().any(|r| r["resumed_from"].is_string()));
    for r in runs {
        assert!(r["resumability"]["resumable"].is_boolean());
    }
    let text = ok(&["show", s(&dir), &job]);
    assert!(
        text.contains("runs") && text.contains("checkpoints") && text.contains("no: finished"),
        "{text}"
    );

    let cps = json(&["checkpoints", s(&dir), &job, "--json"]);
    let cps = cps.as_array().unwrap();
    assert_eq!(cps.len() as u64, v["total_steps"].as_u64().unwrap());
    for (i, c) in cps.iter().enumerate() {
        assert_eq!(c["step"].as_u64().unwrap(), i as u64 + 1);
        assert!(c["checkpoint_id"].is_string() && c["run_id"].is_string());
    }
    let last = cps.last().unwrap();
    assert_eq!(last["usage"]["total_tokens"], v["usage"]["total_tokens"]);
    let cp = last["checkpoint_id"].as_str().unwrap();
    let o = runlog(&["checkpoint", s(&dir), &job, cp, "--payload"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        o.stdout.len() as u64,
        last["payload_bytes"].as_u64().unwrap()
    );
    assert!(o.stdout.len() > 1024, "checkpoints should be a few KiB");
    assert!(ok(&["checkpoint", s(&dir), &job, cp]).contains("step"));
    fails(&["checkpoint", s(&dir), &job, "cp-nope"], 3, "cp-nope");
    fails(&["show", s(&dir), "job-nope"], 3, "job-nope");

    // Events: one JSON object per line, in LSN order; --job and --from filter.
    let all = ok(&["events", s(&dir), "--json"]);
    let lines: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 20);
    for (i, e) in lines.iter().enumerate() {
        assert_eq!(e["lsn"].as_u64().unwrap(), i as u64);
        assert!(is_rfc3339(&e["at"]) && e["kind"].is_string() && e["job_id"].is_string());
    }
    let mine = ok(&["events", s(&dir), "--job", &job, "--json"]);
    assert!(
        mine.lines()
            .all(|l| l.contains(&format!("\"job_id\":\"{job}\"")))
    );
    assert!(mine.lines().any(|l| l.contains("\"kind\":\"delegated\"")));
    let tail = ok(&["events", s(&dir), "--from", "10", "--json"]);
    assert_eq!(tail.lines().count(), lines.len() - 10);
    assert!(ok(&["events", s(&dir)]).starts_with("    LSN"));
}

#[test]
fn verify_exit_codes_intact_torn_corrupt_empty() {
    let t = Scratch::new("verify");
    let dir = t.path("data");
    demo(&dir, &[]);
    assert_eq!(code(&runlog(&["verify", s(&dir)])), 0);
    let v = json(&["verify", s(&dir), "--json"]);
    assert_eq!(v["outcome"], "intact");

    // A truncated tail: the last record loses its end.
    let torn = t.path("torn");
    copy_dir(&dir, &torn);
    let seg = segment(&torn);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let o = runlog(&["verify", s(&torn)]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&runlog(&["verify", s(&torn), "--json"]))).unwrap();
    assert_eq!(v["outcome"], "torn_tail");

    // A flipped bit in the first record: corruption, located.
    let bad = t.path("bad");
    copy_dir(&dir, &bad);
    flip(&segment(&bad), 32 + 28 + 3);
    let o = runlog(&["verify", s(&bad)]);
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("offset") && stderr(&o).contains("LSN"),
        "{}",
        stderr(&o)
    );
    let o = runlog(&["verify", s(&bad), "--json"]);
    assert_eq!(code(&o), 4);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["outcome"], "corrupt");
    assert!(
        v["corruption"]["segment"].is_string() && v["corruption"]["lsn"].is_u64(),
        "{v}"
    );

    // Not a runlog directory; no directory at all.
    let empty = t.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&["verify", s(&empty)], 8, "not a runlog data directory");
    fails(&["verify", s(&t.path("missing"))], 8, "does not exist");
}

#[test]
fn verify_names_the_segment_when_an_early_one_of_several_is_corrupt() {
    let t = Scratch::new("segments");
    let dir = t.path("data");
    demo(&dir, &["--segment-size", "65536"]);
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{segs:?}");
    assert_eq!(code(&runlog(&["verify", s(&dir)])), 0);
    flip(&segs[0], 32 + 28 + 3);
    let o = runlog(&["verify", s(&dir), "--json"]);
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let first = segs[0].file_name().unwrap().to_str().unwrap();
    assert!(
        v["corruption"]["segment"]
            .as_str()
            .unwrap()
            .ends_with(first),
        "{v}"
    );
    assert_eq!(v["corruption"]["lsn"], 0, "{v}");
    fails(&["verify", s(&dir)], 4, first);
}

#[test]
fn recover_cuts_the_tail_or_salvages_and_then_verify_is_clean() {
    let t = Scratch::new("recover");
    let dir = t.path("data");
    demo(&dir, &["--crash"]);
    assert_eq!(code(&runlog(&["verify", s(&dir)])), 1);
    let r = json(&["recover", s(&dir), "--json"]);
    assert!(r["torn_tail"]["bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["torn_tail"]["side_file"].is_string(), "{r}");
    // The crashed demo's writer was dropped, which cut its preallocated
    // zeros off before the partial batch was written.
    assert_eq!(r["unused_bytes"], 0, "{r}");
    assert_eq!(r["interrupted"].as_array().unwrap().len(), 4, "{r}");
    assert_eq!(code(&runlog(&["verify", s(&dir)])), 0);
    let again = json(&["recover", s(&dir), "--json"]);
    assert!(again["torn_tail"].is_null() && again["interrupted"].as_array().unwrap().is_empty());

    // Corruption: recover changes nothing and exits 4; --salvage keeps the
    // valid prefix and says what it set aside.
    let bad = t.path("bad");
    demo(&bad, &[]);
    std::fs::remove_dir_all(bad.join("snapshots")).unwrap();
    let seg = segment(&bad);
    let len = std::fs::metadata(&seg).unwrap().len();
    flip(&seg, len / 2);
    let before = hashes(&bad);
    fails(&["recover", s(&bad)], 4, "--salvage");
    assert_eq!(
        before,
        hashes(&bad),
        "recover without --salvage changed the directory"
    );
    let r = json(&["recover", s(&bad), "--salvage", "--json"]);
    assert!(r["salvaged"]["bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["salvaged"]["quarantine_file"].is_string(), "{r}");
    assert_eq!(code(&runlog(&["verify", s(&bad)])), 0);

    let empty = t.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&["recover", s(&empty)], 8, "not a runlog data directory");
}

#[test]
fn read_only_commands_change_no_byte_and_crash_leaves_runs_in_flight() {
    let t = Scratch::new("readonly");
    let dir = t.path("data");
    let out = demo(&dir, &["--crash"]);
    assert!(out.contains("crashed"), "{out}");
    let d = s(&dir);
    let before = hashes(&dir);
    let job = first_job(&dir);
    let cps = json(&["checkpoints", d, &job, "--json"]);
    let cp = cps[0]["checkpoint_id"].as_str().unwrap().to_owned();
    let svg = t.path("t.svg");
    let interrupted = json(&["interrupted", d, "--json"]);
    for args in [
        vec!["jobs", d],
        vec!["jobs", d, "--json"],
        vec!["show", d, &job],
        vec!["show", d, &job, "--json"],
        vec!["checkpoints", d, &job],
        vec!["checkpoint", d, &job, &cp, "--payload"],
        vec!["interrupted", d],
        vec!["events", d, "--json"],
        vec!["events", d],
        vec!["replay", d, "--until-lsn", "20"],
        vec![
            "replay",
            d,
            "--until-time",
            "2026-03-02T10:00:00Z",
            "--json",
        ],
        vec!["timeline", d, &job, "--out", s(&svg)],
    ] {
        ok(&args);
    }
    assert_eq!(code(&runlog(&["verify", d])), 1);
    assert_eq!(
        before,
        hashes(&dir),
        "a read-only command changed the directory"
    );

    // The crash left three jobs' runs in flight (one of them delegating to
    // a running child).
    let runs = interrupted.as_array().unwrap();
    assert_eq!(runs.len(), 4, "{interrupted}");
    assert!(runs.iter().all(|r| r["in_flight"] == true));
    assert!(runs.iter().any(|r| r["status"] == "awaiting_input"));
    assert!(runs.iter().any(|r| r["status"] == "delegating"));
    assert!(runs.iter().any(|r| r["resumability"]["resumable"] == true));

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("cumulative tokens"));
}

#[test]
fn replay_shows_the_past() {
    let t = Scratch::new("replay");
    let dir = t.path("data");
    demo(&dir, &[]);
    let d = s(&dir);
    assert_eq!(
        json(&["replay", d, "--until-lsn", "0", "--json"]),
        Value::Array(vec![])
    );
    let early = json(&["replay", d, "--until-lsn", "3", "--json"]);
    assert_eq!(early.as_array().unwrap().len(), 1);
    assert_eq!(early[0]["status"], "running");
    let before = json(&[
        "replay",
        d,
        "--until-time",
        "2026-03-02T08:00:00Z",
        "--json",
    ]);
    assert!(before.as_array().unwrap().is_empty());
    let later = json(&[
        "replay",
        d,
        "--until-time",
        "2030-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(later, json(&["jobs", d, "--json"]));
    fails(&["replay", d, "--until-time", "yesterday"], 2, "yesterday");
    assert_eq!(code(&runlog(&["replay", d])), 2);
}

#[test]
fn a_second_demo_on_a_locked_directory_fails_with_the_lock_error() {
    let t = Scratch::new("lock");
    let dir = t.path("data");
    let mut first = Command::new(BIN)
        .args(["demo", s(&dir), "--jobs", "40", "--pace", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.starts_with("committed "), "{line}");
    let o = runlog(&["demo", s(&dir), "--jobs", "1"]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("locked by a live writer"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn errors_are_one_sentence_with_the_path_or_id() {
    let t = Scratch::new("errors");
    let missing = t.path("missing");
    fails(&["jobs", s(&missing)], 8, s(&missing));
    let not_dir = t.path("file");
    std::fs::write(&not_dir, b"x").unwrap();
    fails(&["jobs", s(&not_dir)], 8, "not a directory");
    let other = t.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"x").unwrap();
    fails(&["demo", s(&other)], 8, "not a runlog data directory");
    fails(
        &["interrupted", s(&other)],
        8,
        "not a runlog data directory",
    );

    // A segment written by a newer format version (header re-sealed so
    // only the version differs).
    let dir = t.path("data");
    demo(&dir, &[]);
    let seg = segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    fails(&["jobs", s(&dir)], 8, "newer");
    fails(&["verify", s(&dir)], 8, "newer");

    assert_eq!(code(&runlog(&["--help"])), 0);
    assert_eq!(code(&runlog(&["jobs"])), 2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn flip(file: &Path, at: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at as usize] ^= 0x10;
    std::fs::write(file, bytes).unwrap();
}
