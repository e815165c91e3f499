//! The read-only listings: jobs, show, checkpoints, checkpoint,
//! interrupted, events, replay. None takes a lock or writes a byte.

use super::fail::Failure;
use super::out::{self, Table, num};
use runlog::projections::{FinishReason, Projections};
use runlog::{
    AsOf, Change, CheckpointId, CheckpointView, Event, InterruptReason, JobFilter, JobId,
    JobStatus, JobSummary, Query, ReadOnly, Resumability, RunNode, RunStatus, RunView, Usage,
};
use serde_json::{Value, json};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

fn job_json(j: &JobSummary) -> Value {
    json!({
        "job_id": j.id.as_str(),
        "key": &*j.key,
        "status": j.status.name(),
        "total_steps": j.total_steps,
        "usage": out::usage_json(&j.usage),
        "started_at": out::rfc3339(j.started_at),
        "finished_at": j.finished_at.map(out::rfc3339),
        "fingerprint": j.fingerprint.as_deref(),
        "runs": j.runs,
    })
}

fn print_jobs(jobs: &[JobSummary], json: bool) -> Result<(), Failure> {
    let mut w = out::stdout();
    if json {
        let all: Vec<Value> = jobs.iter().map(job_json).collect();
        serde_json::to_writer_pretty(&mut w, &all).map_err(std::io::Error::from)?;
        writeln!(w)?;
    } else if jobs.is_empty() {
        writeln!(w, "no jobs")?;
    } else {
        let mut t = Table::new(&[
            "JOB ID", "KEY", "STATUS", ">STEPS", ">IN", ">OUT", ">TOKENS", "STARTED", "FINISHED",
        ]);
        for j in jobs {
            t.row(vec![
                j.id.to_string(),
                j.key.to_string(),
                j.status.name().to_owned(),
                num(j.total_steps),
                num(j.usage.input_tokens),
                num(j.usage.output_tokens),
                num(j.usage.total_tokens()),
                out::human_time(j.started_at),
                j.finished_at
                    .map_or_else(|| "-".to_owned(), out::human_time),
            ]);
        }
        t.print(&mut w)?;
    }
    w.flush()?;
    Ok(())
}

/// `runlog jobs`.
pub fn jobs(
    dir: &Path,
    status: Option<JobStatus>,
    key: Option<String>,
    json: bool,
) -> Result<u8, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let mut filter = JobFilter::all();
    filter.status = status;
    filter.key = key;
    let jobs = ro.jobs(&filter).map_err(|e| Failure::engine(dir, e))?;
    print_jobs(&jobs, json)?;
    Ok(0)
}

/// `runlog replay`.
pub fn replay(
    dir: &Path,
    until_lsn: Option<u64>,
    until_time: Option<&str>,
    json: bool,
) -> Result<u8, Failure> {
    let as_of = match (until_lsn, until_time) {
        (Some(lsn), _) => AsOf::Lsn(lsn),
        (None, Some(t)) => AsOf::Time(out::parse_time(t).ok_or_else(|| {
            Failure::new(
                2,
                format!(
                    "--until-time {t:?} is not a time: give RFC 3339 (2026-03-02T09:30:00Z) or milliseconds since the epoch"
                ),
            )
        })?),
        (None, None) => {
            return Err(Failure::new(2, "give --until-lsn N or --until-time T"));
        }
    };
    let ro = out::open(dir, as_of)?;
    let jobs = ro
        .jobs(&JobFilter::all())
        .map_err(|e| Failure::engine(dir, e))?;
    if !json {
        let r = ro.report();
        let mut w = out::stdout();
        let when = if r.next_lsn == 0 {
            "before the first event".to_owned()
        } else {
            format!("last event {}", out::human_time(r.last_at))
        };
        writeln!(
            w,
            "{} as of LSN {} ({when}); the log now holds {} events\n",
            dir.display(),
            r.next_lsn,
            r.log_next_lsn
        )?;
        w.flush()?;
    }
    print_jobs(&jobs, json)?;
    Ok(0)
}

fn resumability_text(r: &Resumability) -> String {
    match r {
        Resumability::Resumable => "resumable".to_owned(),
        Resumability::Blocked { reason } => format!("no: {reason}"),
    }
}

fn resumability_json(r: &Resumability) -> Value {
    match r {
        Resumability::Resumable => json!({"resumable": true, "reason": null}),
        Resumability::Blocked { reason } => {
            json!({"resumable": false, "reason": reason.to_string()})
        }
    }
}

fn run_json(ro: &ReadOnly, node: &RunNode) -> Value {
    let r = &node.run;
    let resumability = ro
        .resumability(&r.job, &r.id)
        .map(|x| resumability_json(&x))
        .unwrap_or(Value::Null);
    json!({
        "run_id": r.id.as_str(),
        "parent": r.parent.as_ref().map(|p| p.as_str()),
        "status": r.status.name(),
        "steps": r.steps,
        "usage": out::usage_json(&r.usage),
        "started_at": out::rfc3339(r.started_at),
        "finished_at": r.finished_at.map(out::rfc3339),
        "resumed_from": r.resumed_from.as_ref().map(|c| c.as_str()),
        "recovery_attempts": r.recovery_attempts,
        "awaiting_input": r.awaiting_input,
        "waiting_on_child": r.waiting_on_child.as_ref().map(|c| c.as_str()),
        "interrupted_by": r.interrupted_by.map(interrupt_name),
        "error": r.error.as_ref().map(|e| json!({"message": e.message, "retryable": e.retryable})),
        "phases": r.phases.iter().map(|p| json!({"position": p.position, "name": p.name, "at": out::rfc3339(p.at)})).collect::<Vec<_>>(),
        "resumability": resumability,
        "children": node.children.iter().map(|c| run_json(ro, c)).collect::<Vec<_>>(),
    })
}

fn checkpoint_json(c: &CheckpointView) -> Value {
    json!({
        "step": c.step,
        "checkpoint_id": c.id.as_str(),
        "run_id": c.run.as_str(),
        "phase": c.phase,
        "delta": out::usage_json(&c.delta),
        "usage": out::usage_json(&c.usage),
        "payload_bytes": c.payload.len,
        "at": out::rfc3339(c.at),
    })
}

fn interrupt_name(r: InterruptReason) -> &'static str {
    match r {
        InterruptReason::Shutdown => "shutdown",
        InterruptReason::Crash => "crash",
        InterruptReason::Panic => "panic",
    }
}

fn run_state(r: &RunView) -> String {
    let mut s = r.status.name().to_owned();
    match r.status {
        RunStatus::Interrupted => {
            if let Some(why) = r.interrupted_by {
                s = format!("interrupted ({})", interrupt_name(why));
            }
        }
        RunStatus::Failed => {
            if let Some(e) = &r.error {
                let mut why: String = e.message.chars().take(40).collect();
                if e.message.chars().count() > 40 {
                    why.push('…');
                }
                s = format!("failed: {why}");
            }
        }
        _ => {}
    }
    s
}

fn tree_rows(ro: &ReadOnly, node: &RunNode, depth: usize, t: &mut Table) {
    let r = &node.run;
    let mut name = format!("{}{}", "  ".repeat(depth), r.id);
    if let Some(cp) = &r.resumed_from {
        name.push_str(&format!(" (from {cp})"));
    }
    let ended = r
        .finished_at
        .map_or_else(|| "-".to_owned(), out::clock_time);
    let resume = ro
        .resumability(&r.job, &r.id)
        .map_or_else(|_| "-".to_owned(), |x| resumability_text(&x));
    t.row(vec![
        name,
        run_state(r),
        num(r.steps),
        num(r.usage.total_tokens()),
        out::clock_time(r.started_at),
        ended,
        resume,
    ]);
    for c in &node.children {
        tree_rows(ro, c, depth + 1, t);
    }
}

/// `runlog show`.
pub fn show(dir: &Path, job_id: &str, json: bool) -> Result<u8, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let id = JobId::from(job_id);
    let fail = |e| Failure::engine(dir, e);
    let job = ro.job(&id).map_err(fail)?;
    let detail = job.detail().map_err(|e| fail(e.into()))?;
    let tree = ro.run_tree(&id).map_err(fail)?;
    let input = ro.job_input(&id).map_err(fail)?;
    let finish = job.finish.as_ref().map(|f| match f {
        FinishReason::Completed => ("completed", None),
        FinishReason::Failed(e) => ("failed", Some(e.clone())),
        FinishReason::Cancelled(e) => ("cancelled", Some(e.clone())),
    });
    let mut w = out::stdout();
    if json {
        let v = json!({
            "job_id": job.id.as_str(),
            "key": &*job.key,
            "status": job.status.name(),
            "fingerprint": job.fingerprint.as_deref(),
            "input": String::from_utf8_lossy(&input),
            "input_bytes": input.len(),
            "total_steps": job.total_steps,
            "usage": out::usage_json(&job.usage),
            "started_at": out::rfc3339(job.started_at),
            "finished_at": job.finished_at.map(out::rfc3339),
            "finish": finish.as_ref().map(|(o, e)| json!({"outcome": o, "reason": e})),
            "external": job.external.as_ref().map(|x| json!({"status": format!("{:?}", x.status).to_lowercase(), "detail": x.detail, "at": out::rfc3339(x.at)})),
            "runs": tree.iter().map(|n| run_json(&ro, n)).collect::<Vec<_>>(),
            "checkpoints": detail.checkpoints().iter().map(checkpoint_json).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut w, &v).map_err(std::io::Error::from)?;
        writeln!(w)?;
        w.flush()?;
        return Ok(0);
    }
    let input_text = String::from_utf8_lossy(&input);
    let preview: String = input_text.chars().take(90).collect();
    let ellipsis = if input_text.chars().count() > 90 {
        "…"
    } else {
        ""
    };
    // Every string below comes from the log: one line each, whatever it holds.
    let clean = out::clean;
    writeln!(w, "job          {}", clean(job.id.as_str()))?;
    writeln!(w, "key          {}", clean(&job.key))?;
    let mut status = job.status.name().to_owned();
    if let Some((_, Some(reason))) = &finish {
        status.push_str(&format!(": {reason}"));
    }
    writeln!(w, "status       {}", clean(&status))?;
    writeln!(
        w,
        "input        {}{ellipsis} ({} bytes)",
        clean(&preview),
        input.len()
    )?;
    if let Some(fp) = &job.fingerprint {
        writeln!(w, "fingerprint  {}", clean(fp))?;
    }
    writeln!(w, "steps        {}", num(job.total_steps))?;
    writeln!(w, "tokens       {}", spent(&job.usage, ""))?;
    writeln!(w, "started      {}", out::human_time(job.started_at))?;
    if let Some(f) = job.finished_at {
        writeln!(
            w,
            "finished     {} (after {})",
            out::human_time(f),
            out::duration(f.0.saturating_sub(job.started_at.0))
        )?;
    }
    if let Some(x) = &job.external {
        writeln!(
            w,
            "external     {:?}: {} ({})",
            x.status,
            clean(&x.detail),
            out::human_time(x.at)
        )?;
    }
    writeln!(w, "\nruns (delegated runs indented under their parent)")?;
    let mut t = Table::new(&[
        "RUN", "STATUS", ">STEPS", ">TOKENS", "STARTED", "ENDED", "RESUME",
    ]);
    for node in &tree {
        tree_rows(&ro, node, 0, &mut t);
    }
    t.print(&mut w)?;
    writeln!(w, "\ncheckpoints")?;
    checkpoint_table(detail.checkpoints(), &mut w)?;
    w.flush()?;
    Ok(0)
}

fn checkpoint_table(cps: &[CheckpointView], w: &mut impl Write) -> std::io::Result<()> {
    if cps.is_empty() {
        return writeln!(w, "no checkpoints");
    }
    let mut t = Table::new(&[
        ">STEP",
        "CHECKPOINT",
        "RUN",
        ">PHASE",
        ">+TOKENS",
        ">TOTAL",
        ">BYTES",
        "AT",
    ]);
    for c in cps {
        t.row(vec![
            c.step.to_string(),
            c.id.to_string(),
            c.run.to_string(),
            c.phase.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            num(c.delta.total_tokens()),
            num(c.usage.total_tokens()),
            num(c.payload.len),
            out::clock_time(c.at),
        ]);
    }
    t.print(w)
}

/// `runlog checkpoints`.
pub fn checkpoints(dir: &Path, job_id: &str, json: bool) -> Result<u8, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let cps = ro
        .checkpoints(&JobId::from(job_id))
        .map_err(|e| Failure::engine(dir, e))?;
    let mut w = out::stdout();
    if json {
        let all: Vec<Value> = cps.iter().map(checkpoint_json).collect();
        serde_json::to_writer_pretty(&mut w, &all).map_err(std::io::Error::from)?;
        writeln!(w)?;
    } else {
        checkpoint_table(&cps, &mut w)?;
    }
    w.flush()?;
    Ok(0)
}

/// `runlog checkpoint`.
pub fn checkpoint(dir: &Path, job_id: &str, cp_id: &str, payload: bool) -> Result<u8, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let cp = ro
        .checkpoint(&JobId::from(job_id), &CheckpointId::from(cp_id))
        .map_err(|e| Failure::engine(dir, e))?;
    if payload {
        let mut w = out::raw_stdout();
        w.write_all(&cp.payload)?;
        w.flush()?;
        return Ok(0);
    }
    let mut w = out::stdout();
    let c = &cp.view;
    writeln!(w, "job          {}", out::clean(c.job.as_str()))?;
    writeln!(w, "checkpoint   {}", out::clean(c.id.as_str()))?;
    writeln!(w, "step         {}", c.step)?;
    writeln!(w, "run          {}", out::clean(c.run.as_str()))?;
    if let Some(p) = c.phase {
        writeln!(w, "phase        {p}")?;
    }
    writeln!(w, "at           {}", out::human_time(c.at))?;
    writeln!(w, "this step    {}", spent(&c.delta, " tokens"))?;
    writeln!(w, "job so far   {}", spent(&c.usage, " tokens"))?;
    writeln!(
        w,
        "payload      {} bytes (print it with --payload)",
        num(cp.payload.len() as u64)
    )?;
    w.flush()?;
    Ok(0)
}

/// A run to list under `interrupted`, and what it will be once a writer
/// opens the directory.
struct Found {
    run: RunView,
    state: String,
    resumability: Resumability,
}

/// Runs still in flight in a read-only view were left so by a crash (or
/// belong to a live writer). Their resumability is what it will be once the
/// next writer's open records them as interrupted: computed by folding
/// exactly that event into a copy of the views — a pure fold, no I/O.
fn in_flight_as_recovered(v: &Projections, attempts_max: u32) -> Vec<Found> {
    let mut after = v.clone();
    let next = v.last_lsn().map_or(0, |l| l + 1);
    let runs: Vec<RunView> = v.in_flight_runs().cloned().collect();
    let mut found = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        let event = Event {
            at: run.started_at,
            job: run.job.clone(),
            change: Change::RunInterrupted {
                run: run.id.clone(),
                reason: InterruptReason::Crash,
            },
        };
        let applied = after.apply(next + i as u64, &event).is_ok();
        let resumability = if run.recovery_attempts >= attempts_max {
            Resumability::Blocked {
                reason: runlog::BlockedReason::AttemptsExhausted {
                    attempts: run.recovery_attempts,
                    max: attempts_max,
                },
            }
        } else if applied {
            after
                .resumability(&run.job, &run.id, None, attempts_max)
                .ok()
                .flatten()
                .unwrap_or(Resumability::Blocked {
                    reason: runlog::BlockedReason::InFlight,
                })
        } else {
            Resumability::Blocked {
                reason: runlog::BlockedReason::InFlight,
            }
        };
        found.push(Found {
            state: format!("in flight ({})", run.status.name()),
            run,
            resumability,
        });
    }
    found
}

/// `runlog interrupted`.
pub fn interrupted(dir: &Path, json: bool) -> Result<u8, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let attempts_max = runlog::Options::default().recovery_attempts_max;
    let mut found: Vec<Found> = ro
        .interrupted()
        .into_iter()
        .map(|r| Found {
            state: format!(
                "interrupted ({})",
                r.run.interrupted_by.map_or("unknown", interrupt_name)
            ),
            run: r.run,
            resumability: r.resumability,
        })
        .collect();
    found.extend(ro.with_views(|v| in_flight_as_recovered(v, attempts_max)));
    let mut w = out::stdout();
    if json {
        let all: Vec<Value> = found
            .iter()
            .map(|f| {
                json!({
                    "job_id": f.run.job.as_str(),
                    "run_id": f.run.id.as_str(),
                    "parent": f.run.parent.as_ref().map(|p| p.as_str()),
                    "status": f.run.status.name(),
                    "in_flight": f.run.status.is_in_flight(),
                    "interrupted_by": f.run.interrupted_by.map(interrupt_name),
                    "steps": f.run.steps,
                    "recovery_attempts": f.run.recovery_attempts,
                    "awaiting_input": f.run.awaiting_input,
                    "waiting_on_child": f.run.waiting_on_child.as_ref().map(|c| c.as_str()),
                    "resumability": resumability_json(&f.resumability),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut w, &all).map_err(std::io::Error::from)?;
        writeln!(w)?;
    } else if found.is_empty() {
        writeln!(w, "no interrupted runs in {}", dir.display())?;
    } else {
        let mut t = Table::new(&["JOB ID", "RUN", "STATE", ">STEPS", "RESUME"]);
        for f in &found {
            t.row(vec![
                f.run.job.to_string(),
                f.run.id.to_string(),
                f.state.clone(),
                num(f.run.steps),
                resumability_text(&f.resumability),
            ]);
        }
        t.print(&mut w)?;
        if found.iter().any(|f| f.run.status.is_in_flight()) {
            writeln!(
                w,
                "\nRuns \"in flight\" were left so by a crash, unless a writer is still running: the next \
                 `runlog recover` (or any writer's open) records them as interrupted; RESUME says what they will be then."
            )?;
        }
    }
    w.flush()?;
    Ok(0)
}

/// What one event says, briefly, for the table and the JSON.
fn detail(change: &Change) -> (String, Value) {
    match change {
        Change::JobCreated {
            key,
            input,
            fingerprint,
        } => (
            format!("key {key}, input {} bytes", input.len()),
            json!({"key": key, "input_bytes": input.len(), "fingerprint": fingerprint}),
        ),
        Change::RunStarted { resume_from, .. } => (
            resume_from
                .as_ref()
                .map_or_else(String::new, |c| format!("from {c}")),
            json!({"resume_from": resume_from.as_ref().map(|c| c.as_str())}),
        ),
        Change::StepRecorded {
            checkpoint,
            usage,
            phase,
            payload,
            ..
        } => (
            format!(
                "{checkpoint}: +{} tokens, {} bytes",
                num(usage.total_tokens()),
                num(payload.len() as u64)
            ),
            json!({"checkpoint_id": checkpoint.as_str(), "usage": out::usage_json(usage), "phase": phase, "payload_bytes": payload.len()}),
        ),
        Change::PhaseCompleted { position, name, .. } => (
            format!("phase {position} ({name})"),
            json!({"position": position, "name": name}),
        ),
        Change::Delegated { child, .. } => (
            format!("to {child}"),
            json!({"child_run_id": child.as_str()}),
        ),
        Change::ChildReturned { child, .. } => (
            format!("from {child}"),
            json!({"child_run_id": child.as_str()}),
        ),
        Change::InputRequested { prompt, .. } => (prompt.clone(), json!({"prompt": prompt})),
        Change::InputProvided { input, .. } => (
            format!("{} bytes", input.len()),
            json!({"input_bytes": input.len()}),
        ),
        Change::RunCompleted { output, .. } => (
            format!("output {} bytes", output.len()),
            json!({"output_bytes": output.len()}),
        ),
        Change::RunFailed {
            error, retryable, ..
        } => (
            format!("{error}{}", if *retryable { " (retryable)" } else { "" }),
            json!({"error": error, "retryable": retryable}),
        ),
        Change::RunInterrupted { reason, .. } => (
            interrupt_name(*reason).to_owned(),
            json!({"reason": interrupt_name(*reason)}),
        ),
        Change::RunResumed { from, .. } => (
            from.as_ref()
                .map_or_else(String::new, |c| format!("from {c}")),
            json!({"from": from.as_ref().map(|c| c.as_str())}),
        ),
        Change::JobFinished { outcome } => {
            let (o, why) = match outcome {
                runlog::JobOutcome::Completed => ("completed", None),
                runlog::JobOutcome::Failed { error } => ("failed", Some(error.clone())),
                runlog::JobOutcome::Cancelled { reason } => ("cancelled", Some(reason.clone())),
            };
            (
                why.as_ref()
                    .map_or_else(|| o.to_owned(), |w| format!("{o}: {w}")),
                json!({"outcome": o, "reason": why}),
            )
        }
        Change::ExternalStatusObserved { status, detail } => (
            format!("{status:?}: {detail}"),
            json!({"status": format!("{status:?}").to_lowercase(), "detail": detail}),
        ),
    }
}

/// `runlog events`: streams, so memory stays flat however long the log.
pub fn events(dir: &Path, job: Option<&str>, from: u64, json: bool) -> Result<u8, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let job = job.map(JobId::from);
    let mut from = from.max(ro.log().first_lsn());
    if let Some(id) = &job {
        let view = ro.job(id).map_err(|e| Failure::engine(dir, e))?;
        from = from.max(view.input.lsn);
    }
    let end = ro.log().next_lsn();
    let mut w = out::stdout();
    if from >= end {
        w.flush()?;
        return Ok(0);
    }
    if !json {
        writeln!(
            w,
            "{:>7}  {:<19}  {:<22}  {:<22}  {:<16}  DETAIL",
            "LSN", "AT", "JOB", "RUN", "KIND"
        )?;
    }
    let mut write_error = None;
    ro.for_each_event(from, |lsn, event| {
        if job.as_ref().is_some_and(|j| j != &event.job) {
            return ControlFlow::Continue(());
        }
        let (text, extra) = detail(&event.change);
        let result = if json {
            let mut v = json!({
                "lsn": lsn,
                "at": out::rfc3339(event.at),
                "kind": event.change.kind(),
                "job_id": event.job.as_str(),
                "run_id": event.change.run().map(|r| r.as_str()),
            });
            if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
                obj.extend(more);
            }
            serde_json::to_writer(&mut w, &v)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(w))
        } else {
            let line = format!(
                "{lsn:>7}  {:<19}  {:<22}  {:<22}  {:<16}  {text}",
                out::human_time(event.at),
                event.job.as_str(),
                event.change.run().map_or("-", |r| r.as_str()),
                event.change.kind()
            );
            writeln!(w, "{}", out::clean(line.trim_end()))
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    })
    .map_err(|e| Failure::engine(dir, e))?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    w.flush()?;
    Ok(0)
}

/// `1,200 in + 300 out = 1,500{unit} ($0.0081)`: what a usage spent.
fn spent(u: &Usage, unit: &str) -> String {
    format!(
        "{} in + {} out = {}{unit} ({})",
        num(u.input_tokens),
        num(u.output_tokens),
        num(u.total_tokens()),
        out::cost(u.cost_micros)
    )
}
