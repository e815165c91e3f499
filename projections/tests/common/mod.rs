//! A small script language for events and a plain-text rendering of the
//! views, so a projection test is a script and the text it must fold to
//! (rust-analyzer's `check(input, expect)` style): adding a case is adding
//! data.
//!
//! One event per line; `#` starts a comment. The n-th event gets LSN n
//! (from 0) and timestamp 1000 + n. A line starting with `!` must be
//! refused; the refusal is rendered after the views.
//!
//! ```text
//! create J key=K input=TEXT [fp=F]      start J R [from=C] [code=V]
//! step J R C in=N out=N [cost=N] [phase=P] [payload=TEXT]
//! phase J R POS NAME                    delegate J R CHILD
//! return J R CHILD                      ask J R PROMPT
//! answer J R TEXT                       complete J R
//! fail J R [retryable] [cause=reported|abandoned|exhausted]
//! interrupt J R [reason=crash|shutdown|panic]
//! resume J R [from=C] [code=V] [allow] [max=N]
//! finish J completed|failed|cancelled   external J pending|running|completed|failed
//! ```

#![allow(dead_code)]

use runlog_projections::*;
use std::collections::HashMap;
use std::fmt::Write;

/// The engine's snapshot codec, postcard, for snapshot tests.
pub struct Postcard;

impl SnapshotCodec for Postcard {
    fn encode_into<T: serde::Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        let buf = std::mem::take(out);
        *out = postcard::to_extend(value, buf).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn decode_prefix<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String> {
        let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
        Ok((value, bytes.len() - rest.len()))
    }

    fn checksum(bytes: &[u8]) -> u32 {
        crc32fast::hash(bytes)
    }
}

/// The snapshot body of `state`, in postcard.
pub fn snapshot(state: &Projections) -> Vec<u8> {
    state.to_snapshot::<Postcard>().expect("snapshot")
}

/// Views restored from a postcard snapshot body.
pub fn restore(body: &[u8]) -> Result<Projections, SnapshotError> {
    Projections::from_snapshot::<Postcard>(body.to_vec(), 0)
}

/// The events a fold applied, as the log that a snapshot holding jobs by
/// their event LSNs reads them back from.
pub struct MemoryLog(pub HashMap<Lsn, Event>);

impl MemoryLog {
    /// The log of `events`, each at its LSN.
    pub fn of(events: &[(Lsn, Event)]) -> std::sync::Arc<dyn EventSource> {
        std::sync::Arc::new(MemoryLog(events.iter().cloned().collect()))
    }
}

impl EventSource for MemoryLog {
    fn with_event(&self, lsn: Lsn, f: &mut dyn FnMut(&EventRef<'_>)) -> Result<(), String> {
        let event = self
            .0
            .get(&lsn)
            .ok_or_else(|| format!("no event at LSN {lsn}"))?;
        f(&event.as_ref());
        Ok(())
    }
}

/// The snapshot body of `state`, in postcard, holding every job it can
/// by its event LSNs (`SnapshotDetails::FromLog` from LSN 0).
pub fn snapshot_from_log(state: &Projections) -> Vec<u8> {
    state
        .to_snapshot_with::<Postcard>(SnapshotDetails::FromLog { first_lsn: 0 })
        .expect("snapshot")
}

/// Views restored from a postcard snapshot body, reading the events of
/// jobs it holds by their LSNs from `events`.
pub fn restore_from_log(
    body: &[u8],
    events: &[(Lsn, Event)],
) -> Result<Projections, SnapshotError> {
    Projections::from_snapshot_file_with::<Postcard>(
        std::sync::Arc::new(body.to_vec()),
        0,
        Some(MemoryLog::of(events)),
    )
}

/// Recomputes the checksums of a snapshot body edited in place, per
/// FORMAT.md's version 5 layout: each job's detail CRC in its 128-byte
/// record (bytes 88..92), each chunk's CRC in its table entry (bytes
/// 16..20, over its region), the id index's CRC (preamble bytes 72..76),
/// then the head's CRC (bytes 4..8, over bytes 8..head_len). What the edit
/// broke in the structure is left for the restore to find: what no longer
/// fits the body keeps its old CRC.
pub fn reseal(body: &mut [u8]) {
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8).map_or(u64::MAX, |b| {
            u64::from_le_bytes(b.try_into().expect("8 bytes"))
        })
    };
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4).map_or(u32::MAX, |b| {
            u32::from_le_bytes(b.try_into().expect("4 bytes"))
        })
    };
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let head_len = size(u64_at(body, 8));
    if head_len < 80 || head_len > body.len() {
        return;
    }
    let jobs = size(u64_at(body, 40)).min(1 << 20);
    let chunks = jobs.div_ceil(64);
    let ids_at = head_len + chunks * 24;
    let regions_at = ids_at + jobs * 16;
    let details_at = size(u64_at(body, 64));
    if regions_at + jobs * 128 > details_at || details_at > body.len() {
        let crc = crc32fast::hash(&body[8..head_len]);
        body[4..8].copy_from_slice(&crc.to_le_bytes());
        return;
    }
    for c in 0..chunks {
        let entry = head_len + c * 24;
        let region_at = regions_at.saturating_add(size(u64_at(body, entry)));
        let region_end = if c + 1 < chunks {
            regions_at.saturating_add(size(u64_at(body, entry + 24)))
        } else {
            details_at
        };
        let mut detail = details_at.saturating_add(size(u64_at(body, entry + 8)));
        let count = 64.min(jobs - c * 64);
        for k in 0..count {
            let record = region_at.saturating_add(k * 128);
            if record.saturating_add(128) > region_end.min(details_at) {
                break;
            }
            let len = size(u64_at(body, record + 80));
            let Some(bytes) = body.get(detail..detail.saturating_add(len)) else {
                break;
            };
            let crc = crc32fast::hash(bytes);
            body[record + 88..record + 92].copy_from_slice(&crc.to_le_bytes());
            detail += len;
        }
        if let Some(region) = body.get(region_at..region_end) {
            let crc = crc32fast::hash(region);
            body[entry + 16..entry + 20].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&body[ids_at..regions_at]);
    body[72..76].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&body[8..head_len]);
    body[4..8].copy_from_slice(&crc.to_le_bytes());
    let _ = u32_at;
}

/// A job's summary (every field but its detail) as text, to compare.
pub fn summary(job: &JobView) -> String {
    format!(
        "{} {} {:?} {:?} {} {} {:?} {:?} {:?} {:?} {:?} {} {}",
        job.id,
        job.key,
        job.input,
        job.fingerprint,
        job.status,
        job.total_steps,
        job.usage,
        job.started_at,
        job.finished_at,
        job.finish,
        job.external,
        job.last_lsn,
        job.run_count()
    )
}

/// The resume bound used when rendering resumability and by `resume`
/// without `max=`.
pub const ATTEMPTS_MAX: u32 = 3;

/// Parses one script line into an event at time `at`.
pub fn parse_event(line: &str, at: u64) -> Event {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut flags = HashMap::new();
    let mut positional = Vec::new();
    for w in &words[1..] {
        match w.split_once('=') {
            Some((k, v)) => {
                flags.insert(k.to_string(), v.to_string());
            }
            None => positional.push(w.to_string()),
        }
    }
    let arg = |i: usize| -> String {
        positional
            .get(i)
            .cloned()
            .unwrap_or_else(|| panic!("line `{line}`: missing argument {i}"))
    };
    let flag = |k: &str| flags.get(k).cloned();
    let num = |k: &str| flag(k).map_or(0, |v| v.parse::<u64>().expect("number"));
    let has = |w: &str| positional.iter().any(|p| p == w);
    let run = || RunId::from(arg(1));
    let change = match words[0] {
        "create" => Change::JobCreated {
            key: flag("key").unwrap_or_else(|| "agent".into()),
            input: flag("input").unwrap_or_default().into_bytes(),
            fingerprint: flag("fp"),
        },
        "start" => Change::RunStarted {
            run: run(),
            resume_from: flag("from").map(CheckpointId::from),
            code_version: flag("code"),
        },
        "step" => Change::StepRecorded {
            run: run(),
            checkpoint: CheckpointId::from(arg(2)),
            usage: Usage {
                input_tokens: num("in"),
                output_tokens: num("out"),
                cost_micros: num("cost"),
            },
            phase: flag("phase").map(|p| p.parse().expect("phase position")),
            payload: flag("payload").unwrap_or_default().into_bytes(),
        },
        "phase" => Change::PhaseCompleted {
            run: run(),
            position: arg(2).parse().expect("position"),
            name: arg(3),
            output: Vec::new(),
        },
        "delegate" => Change::Delegated {
            run: run(),
            child: RunId::from(arg(2)),
        },
        "return" => Change::ChildReturned {
            run: run(),
            child: RunId::from(arg(2)),
        },
        "ask" => Change::InputRequested {
            run: run(),
            prompt: arg(2),
        },
        "answer" => Change::InputProvided {
            run: run(),
            input: arg(2).into_bytes(),
        },
        "complete" => Change::RunCompleted {
            run: run(),
            output: Vec::new(),
        },
        "fail" => Change::RunFailed {
            run: run(),
            error: "boom".into(),
            retryable: has("retryable"),
            cause: match flag("cause").as_deref() {
                None | Some("reported") => FailCause::Reported,
                Some("abandoned") => FailCause::Abandoned,
                Some("exhausted") => FailCause::RecoveryAttemptsExhausted,
                Some(other) => panic!("unknown cause {other}"),
            },
        },
        "interrupt" => Change::RunInterrupted {
            run: run(),
            reason: match flag("reason").as_deref() {
                None | Some("crash") => InterruptReason::Crash,
                Some("shutdown") => InterruptReason::Shutdown,
                Some("panic") => InterruptReason::Panic,
                Some(other) => panic!("unknown reason {other}"),
            },
        },
        "resume" => Change::RunResumed {
            run: run(),
            from: flag("from").map(CheckpointId::from),
            code_version: flag("code"),
            allow_code_change: has("allow"),
            attempts_max: flag("max").map_or(ATTEMPTS_MAX, |m| m.parse().expect("max")),
        },
        "finish" => Change::JobFinished {
            outcome: match arg(1).as_str() {
                "completed" => JobOutcome::Completed,
                "failed" => JobOutcome::Failed {
                    error: "gave up".into(),
                },
                "cancelled" => JobOutcome::Cancelled {
                    reason: "operator".into(),
                },
                other => panic!("unknown outcome {other}"),
            },
        },
        "external" => Change::ExternalStatusObserved {
            status: match arg(1).as_str() {
                "pending" => ExternalStatus::Pending,
                "running" => ExternalStatus::Running,
                "completed" => ExternalStatus::Completed,
                "failed" => ExternalStatus::Failed,
                other => panic!("unknown status {other}"),
            },
            detail: String::new(),
        },
        other => panic!("unknown verb `{other}` in `{line}`"),
    };
    Event {
        at: Timestamp(at),
        job: JobId::from(words[1].to_string()),
        change,
    }
}

/// Runs a script: applies every line, checks that `!` lines are refused and
/// leave the state unchanged, and that the others are accepted. Returns the
/// state, the events applied (with their LSNs) and the refusals.
pub fn run_script(script: &str) -> (Projections, Vec<(Lsn, Event)>, Vec<String>) {
    let mut state = Projections::new();
    let mut applied = Vec::new();
    let mut refusals = Vec::new();
    let lines = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    for (n, line) in lines.enumerate() {
        let (expect_refusal, text) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let event = parse_event(text, 1000 + n as u64);
        let before = state.clone();
        match state.apply(n as Lsn, &event) {
            Ok(()) => {
                assert!(
                    !expect_refusal,
                    "`{text}` was accepted but should be refused"
                );
                applied.push((n as Lsn, event));
            }
            Err(e) => {
                assert!(expect_refusal, "`{text}` was refused: {e}");
                assert_eq!(state, before, "a refused event changed the views");
                refusals.push(format!("refused `{text}`: {e}"));
            }
        }
    }
    (state, applied, refusals)
}

fn usage(u: &Usage) -> String {
    let mut s = format!("{}/{}", u.input_tokens, u.output_tokens);
    if u.cost_micros != 0 {
        write!(s, "/${}", u.cost_micros).expect("writing to a String cannot fail");
    }
    s
}

fn resumability(state: &Projections, job: &JobId, run: &RunView) -> String {
    match state
        .resumability(job, &run.id, run.code_version.as_deref(), ATTEMPTS_MAX)
        .expect("detail decodes")
        .expect("run exists")
    {
        Resumability::Resumable => "resumable".into(),
        Resumability::Blocked { reason } => format!("blocked: {reason}"),
    }
}

fn render_run(out: &mut String, state: &Projections, job: &JobView, run: &RunView, depth: usize) {
    let indent = "  ".repeat(depth);
    write!(
        out,
        "{indent}run {} {} steps={} usage={}",
        run.id,
        run.status,
        run.steps,
        usage(&run.usage)
    )
    .expect("writing to a String cannot fail");
    if run.recovery_attempts > 0 {
        write!(out, " attempts={}", run.recovery_attempts).expect("infallible");
    }
    if !run.phases.is_empty() {
        let phases: Vec<String> = run
            .phases
            .iter()
            .map(|p| format!("{}:{}", p.position, p.name))
            .collect();
        write!(out, " phases=[{}]", phases.join(",")).expect("infallible");
    }
    if let Some(cp) = &run.resumed_from {
        write!(out, " from={cp}").expect("infallible");
    }
    if let Some(p) = &run.awaiting_input {
        write!(out, " awaiting={p:?}").expect("infallible");
    }
    writeln!(out, " ({})", resumability(state, &job.id, run)).expect("infallible");
    for child in &run.children {
        let detail = job.detail().expect("detail decodes");
        let child = detail.run(child).expect("children exist in their job");
        render_run(out, state, job, child, depth + 1);
    }
}

/// Renders the views as text: jobs (oldest first) with their run trees and
/// checkpoints, then the interrupted runs and in-flight runs.
pub fn render(state: &Projections) -> String {
    let mut out = String::new();
    for job in state.jobs().map(|j| j.expect("materializes")) {
        write!(
            out,
            "job {} {} key={} steps={} usage={} input=@{}+{}",
            job.id,
            job.status,
            job.key,
            job.total_steps,
            usage(&job.usage),
            job.input.lsn,
            job.input.len
        )
        .expect("infallible");
        if let Some(fp) = &job.fingerprint {
            write!(out, " fp={fp}").expect("infallible");
        }
        if let Some(ext) = &job.external {
            write!(out, " external={:?}", ext.status).expect("infallible");
        }
        writeln!(out).expect("infallible");
        let detail = job.detail().expect("detail decodes");
        for run in detail.root_runs() {
            render_run(&mut out, state, job, run, 1);
        }
        for cp in detail.checkpoints() {
            let phase = cp.phase.map_or(String::new(), |p| format!(" phase={p}"));
            writeln!(
                out,
                "  checkpoint {} step={} run={} delta={} total={}{} @{}",
                cp.id,
                cp.step,
                cp.run,
                usage(&cp.delta),
                usage(&cp.usage),
                phase,
                cp.payload.lsn
            )
            .expect("infallible");
        }
    }
    let fingerprints: std::collections::BTreeSet<&str> = state
        .jobs()
        .filter_map(|j| j.expect("materializes").fingerprint.as_deref())
        .collect();
    for fp in fingerprints {
        let newest = state
            .newest_unfinished_with_fingerprint(fp)
            .map_or("none".to_string(), |j| j.id.to_string());
        writeln!(out, "fingerprint {fp} -> {newest}").expect("infallible");
    }
    let interrupted: Vec<String> = state
        .interrupted_runs()
        .map(|r| format!("{}/{}", r.job, r.id))
        .collect();
    if !interrupted.is_empty() {
        writeln!(out, "interrupted: {}", interrupted.join(" ")).expect("infallible");
    }
    let in_flight: Vec<String> = state
        .in_flight_runs()
        .map(|r| format!("{}/{}", r.job, r.id))
        .collect();
    if !in_flight.is_empty() {
        writeln!(out, "in flight: {}", in_flight.join(" ")).expect("infallible");
    }
    out
}

/// Folds `script` and compares the rendering (plus refusals) with `expect`,
/// ignoring leading indentation common to `expect`'s lines.
pub fn check(script: &str, expect: &str) {
    let (state, _, refusals) = run_script(script);
    let mut actual = render(&state);
    for r in refusals {
        actual.push_str(&r);
        actual.push('\n');
    }
    let expect = dedent(expect);
    assert_eq!(
        actual.trim_end(),
        expect.trim_end(),
        "\n--- actual ---\n{actual}\n--- expected ---\n{expect}"
    );
}

fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.lines().skip_while(|l| l.trim().is_empty()).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}
