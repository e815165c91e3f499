//! runlog measured side by side with what agent runtimes keep their jobs in
//! today: a SQLite run store, a JSON file per checkpoint, a JSON-lines
//! ledger (issue 6).
//!
//! ```sh
//! cargo run --release --example compare -- [--quick] [--json]
//! # sizes and profiling: [--jobs N] [--cold-jobs N] [--rounds N] [--dir PATH]
//! #                      [--only WORKLOAD] [--system NAME]...
//! ```
//!
//! Every system runs the same workload (`model.rs`) in the same process,
//! in alternation (the order rotates each round, so drift in the machine's
//! load falls on every system alike), with the same durability: every
//! command is durable before it returns, except `sqlite-normal`, which is
//! there to show what giving that up buys. Each figure is the median of the
//! rounds; each ratio is taken against runlog's median in the same run,
//! oriented so that above 1 means runlog is ahead.
//!
//! Before measuring, every system writes a small data set and answers the
//! two cold-start questions; if any answer differs from runlog's (or from
//! what the workload must give), the harness exits non-zero: a comparison
//! of systems that answer differently is worthless. The cold-start data
//! sets are checked the same way in every round.

mod json_files;
mod json_lines;
mod model;
mod report;
mod runlog_sys;
mod sqlite_sys;

use model::{
    COMMANDS_PER_JOB, Latest, Reader, Res, STEPS_PER_JOB, Totals, Writer, expected_totals, payload,
    probe_index, step_usage,
};
use report::{Better, Results};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// The systems, in the order of the table's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Runlog,
    SqliteFull,
    SqliteNormal,
    JsonFiles,
    JsonLines,
}

const SYSTEMS: [System; 5] = [
    System::Runlog,
    System::SqliteFull,
    System::SqliteNormal,
    System::JsonFiles,
    System::JsonLines,
];

/// Small checkpoints, and the 4 KiB ones of workload (b).
const PAYLOAD_SMALL: usize = 200;
const PAYLOAD_LARGE: usize = 4096;
/// Writer threads of workload (c).
const WRITERS_MANY: usize = 16;
/// Jobs in the startup agreement check; written by 4 threads, so the
/// check covers concurrent writers too.
const AGREEMENT_JOBS: u64 = 24;
const AGREEMENT_WRITERS: usize = 4;
/// A bulk writer commits a batch every this many jobs.
const BULK_BATCH_JOBS: u64 = 1000;

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Runlog => "runlog",
            System::SqliteFull => "sqlite-full",
            System::SqliteNormal => "sqlite-normal",
            System::JsonFiles => "json-files",
            System::JsonLines => "json-lines",
        }
    }

    /// Writes `jobs` jobs into the empty directory `dir`.
    fn write(
        self,
        dir: &Path,
        jobs: u64,
        writers: usize,
        size: Payloads,
        bulk: bool,
    ) -> Res<Written> {
        match self {
            System::Runlog => drive(
                runlog_sys::RunlogWriter::open(dir, bulk)?,
                jobs,
                writers,
                size,
                bulk,
            ),
            System::SqliteFull => drive(
                sqlite_sys::SqliteWriter::open(dir, sqlite_sys::Sync::Full, bulk)?,
                jobs,
                writers,
                size,
                bulk,
            ),
            System::SqliteNormal => drive(
                sqlite_sys::SqliteWriter::open(dir, sqlite_sys::Sync::Normal, bulk)?,
                jobs,
                writers,
                size,
                bulk,
            ),
            System::JsonFiles => drive(
                json_files::FilesWriter::open(dir, bulk)?,
                jobs,
                writers,
                size,
                bulk,
            ),
            System::JsonLines => drive(
                json_lines::LinesWriter::open(dir, bulk)?,
                jobs,
                writers,
                size,
                bulk,
            ),
        }
    }

    /// Opens `dir` cold and answers the two questions.
    fn cold(self, dir: &Path, probe: &str) -> Res<Cold> {
        match self {
            System::Runlog => cold::<runlog_sys::RunlogReader>(dir, probe),
            System::SqliteFull | System::SqliteNormal => {
                cold::<sqlite_sys::SqliteReader>(dir, probe)
            }
            System::JsonFiles => cold::<json_files::FilesReader>(dir, probe),
            System::JsonLines => cold::<json_lines::LinesReader>(dir, probe),
        }
    }
}

/// Where checkpoint payloads come from.
#[derive(Clone, Copy)]
enum Payloads<'a> {
    /// Made before the clock starts: `[job][step - 1]`.
    Made(&'a [Vec<String>]),
    /// Made as needed (bulk data sets, which are not timed).
    OfSize(usize),
}

impl Payloads<'_> {
    fn get(&self, index: u64, step: u64) -> Cow<'_, str> {
        match self {
            Payloads::Made(p) => {
                let job = usize::try_from(index).unwrap_or(usize::MAX);
                let step = usize::try_from(step - 1).unwrap_or(usize::MAX);
                match p.get(job).and_then(|j| j.get(step)) {
                    Some(s) => Cow::Borrowed(s.as_str()),
                    // Only reached if the table was made too small; still correct.
                    None => Cow::Owned(payload(index, step as u64 + 1, PAYLOAD_SMALL)),
                }
            }
            Payloads::OfSize(size) => Cow::Owned(payload(index, step, *size)),
        }
    }
}

fn make_payloads(jobs: u64, size: usize) -> Vec<Vec<String>> {
    (0..jobs)
        .map(|i| (1..=STEPS_PER_JOB).map(|s| payload(i, s, size)).collect())
        .collect()
}

/// What a write left: how long the commands took, and each job's ref (the
/// id a host would keep), by job index.
struct Written {
    elapsed: Duration,
    refs: Vec<String>,
}

/// One job's commands, in order.
fn one_job<W: Writer>(w: &W, index: u64, payloads: Payloads<'_>) -> Res<String> {
    let mut job = w.submit(index)?;
    w.start_run(&mut job)?;
    for step in 1..=STEPS_PER_JOB {
        w.record_step(
            &mut job,
            step,
            &payloads.get(index, step),
            step_usage(index, step),
        )?;
    }
    w.complete_run(&mut job)?;
    w.finish_job(&mut job)?;
    Ok(W::job_ref(&job))
}

/// The jobs one writer thread wrote: each job's index and its reference.
type JobRefs = Vec<(u64, String)>;

/// Runs `jobs` jobs on `writers` threads sharing `w` (thread `t` takes
/// jobs `t`, `t + writers`, …), timing the commands only; then closes.
fn drive<W: Writer>(
    w: W,
    jobs: u64,
    writers: usize,
    payloads: Payloads<'_>,
    bulk: bool,
) -> Res<Written> {
    let stride = u64::try_from(writers)?;
    // The clock starts once every writer thread exists and waits at the
    // barrier: creating sixteen threads is not a command, and it would
    // weigh most on the shortest run.
    let ready = Barrier::new(writers + 1);
    let (results, start): (Vec<Res<JobRefs>>, Instant) = thread::scope(|s| {
        let handles: Vec<_> = (0..stride)
            .map(|t| {
                let (w, ready) = (&w, &ready);
                s.spawn(move || -> Res<JobRefs> {
                    ready.wait();
                    let mut refs = Vec::new();
                    let mut index = t;
                    while index < jobs {
                        refs.push((index, one_job(w, index, payloads)?));
                        if bulk && index % BULK_BATCH_JOBS == BULK_BATCH_JOBS - 1 {
                            w.batch_boundary()?;
                        }
                        index += stride;
                    }
                    Ok(refs)
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        let results = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a writer thread panicked".into()))
            })
            .collect();
        (results, start)
    });
    let elapsed = start.elapsed();
    w.close()?;
    let mut refs = vec![String::new(); usize::try_from(jobs)?];
    for r in results {
        for (index, job_ref) in r? {
            refs[usize::try_from(index)?] = job_ref;
        }
    }
    Ok(Written { elapsed, refs })
}

/// A cold open's answers and times.
struct Cold {
    /// Open, then "all jobs with their totals".
    open_all: Duration,
    /// "Latest checkpoint of job X", right after.
    latest: Duration,
    /// "All jobs with their totals" again, on the open store.
    all_again: Duration,
    totals: Vec<(String, Totals)>,
    answer: Option<Latest>,
}

fn cold<R: Reader>(dir: &Path, probe: &str) -> Res<Cold> {
    let start = Instant::now();
    let reader = R::open(dir)?;
    let rows = reader.all_jobs()?;
    let open_all = start.elapsed();
    let start = Instant::now();
    let answer = reader.latest_checkpoint(probe)?;
    let latest = start.elapsed();
    let start = Instant::now();
    let again = reader.all_jobs()?;
    let all_again = start.elapsed();
    drop(again);
    reader.close()?;
    Ok(Cold {
        open_all,
        latest,
        all_again,
        totals: R::rows_to_totals(rows),
        answer,
    })
}

/// Checks a cold answer against what the workload must give: every job
/// with its totals, and the probe job's last checkpoint. Agreeing with the
/// model is agreeing with runlog, which is checked against it first.
fn check(system: &str, what: &str, cold: &Cold, refs: &[String], size: usize) -> Res<()> {
    let by_ref: HashMap<&str, u64> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i as u64))
        .collect();
    if cold.totals.len() != refs.len() {
        return Err(format!(
            "{system} ({what}): {} jobs listed, {} written",
            cold.totals.len(),
            refs.len()
        )
        .into());
    }
    for (job_ref, totals) in &cold.totals {
        let index = by_ref
            .get(job_ref.as_str())
            .ok_or_else(|| format!("{system} ({what}): listed a job never written: {job_ref}"))?;
        let want = expected_totals(*index);
        if *totals != want {
            return Err(format!(
                "{system} ({what}): job {index} has totals {totals:?}, the workload gives {want:?}"
            )
            .into());
        }
    }
    let probe = probe_index(refs.len() as u64);
    let want = Latest {
        step: STEPS_PER_JOB,
        usage: expected_totals(probe).usage,
        payload: payload(probe, STEPS_PER_JOB, size).into_bytes(),
    };
    if cold.answer.as_ref() != Some(&want) {
        return Err(format!(
            "{system} ({what}): latest checkpoint of job {probe} is {:?}, expected step {} with usage {:?}",
            cold.answer.as_ref().map(|l| (l.step, l.usage, l.payload.len())),
            want.step,
            want.usage
        )
        .into());
    }
    Ok(())
}

/// Bytes a directory takes on disk (allocated blocks, as `du` counts).
fn disk_bytes(dir: &Path) -> Res<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += meta.blocks() * 512;
        if meta.is_dir() {
            total += disk_bytes(&entry.path())?;
        }
    }
    Ok(total)
}

/// Runs `f` on a runlog directory with its snapshots moved aside, so that
/// open replays the whole log; puts them back whatever `f` did.
fn without_snapshots<T>(dir: &Path, f: impl FnOnce() -> Res<T>) -> Res<T> {
    let snapshots = dir.join("snapshots");
    let aside = dir.join("snapshots-aside");
    fs::rename(&snapshots, &aside)?;
    let result = f();
    if snapshots.exists() {
        fs::remove_dir_all(&snapshots)?;
    }
    fs::rename(&aside, &snapshots)?;
    result
}

/// A fresh, empty directory for one system's data.
/// Waits until the disk has taken everything written so far (`sync(2)`).
/// Called after a measured run's files are deleted and before the next run
/// starts: on this kind of machine the deletion (thousands of files for
/// json-files, with online discard) and the write-back it leaves behind
/// would otherwise slow the first fsyncs of whichever system runs next,
/// and the shortest runs (runlog's) the most (docs/performance.md, step 15).
fn settle() {
    rustix::fs::sync();
}

fn fresh(root: &Path, name: &str) -> Res<PathBuf> {
    let dir = root.join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The sizes of one run of the harness.
struct Plan {
    quick: bool,
    json: bool,
    rounds: usize,
    /// Jobs per round of the durable workloads.
    jobs: u64,
    /// Jobs in the cold-start data sets.
    cold_jobs: u64,
    root: PathBuf,
    /// Only this workload (for profiling one of them).
    only: Option<String>,
    /// Only these systems (for profiling); the agreement check runs all.
    systems: Vec<System>,
}

impl Plan {
    fn runs(&self, workload: &str) -> bool {
        self.only.as_deref().is_none_or(|w| w == workload)
    }

    /// The rotation of the chosen systems for round `round`.
    fn order(&self, round: usize) -> Vec<System> {
        let mut v = self.systems.clone();
        let n = v.len().max(1);
        v.rotate_left(round % n);
        v
    }
}

fn parse_args() -> Res<Plan> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut plan = Plan {
        quick,
        json: args.iter().any(|a| a == "--json"),
        rounds: if quick { 3 } else { 5 },
        jobs: if quick { 60 } else { 500 },
        cold_jobs: if quick { 10_000 } else { 100_000 },
        root: std::env::temp_dir().join(format!("runlog-compare-{}", std::process::id())),
        only: None,
        systems: SYSTEMS.to_vec(),
    };
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" | "--json" => {}
            "--jobs" => plan.jobs = value()?.parse()?,
            "--cold-jobs" => plan.cold_jobs = value()?.parse()?,
            "--rounds" => plan.rounds = value()?.parse()?,
            "--dir" => plan.root = PathBuf::from(value()?),
            "--only" => plan.only = Some(value()?.clone()),
            "--system" => {
                let name = value()?;
                let system = SYSTEMS
                    .into_iter()
                    .find(|s| s.name() == name)
                    .ok_or_else(|| format!("no system named {name}"))?;
                chosen.push(system);
            }
            _ => {
                return Err(format!(
                    "unknown argument {a}; usage: compare [--quick] [--json] [--jobs N] \
                     [--cold-jobs N] [--rounds N] [--dir PATH] [--only WORKLOAD] [--system NAME]..."
                )
                .into());
            }
        }
    }
    if !chosen.is_empty() {
        plan.systems = chosen;
    }
    if plan.jobs < 2 || plan.cold_jobs < 2 || plan.rounds == 0 {
        return Err("--jobs and --cold-jobs must be at least 2, --rounds at least 1".into());
    }
    Ok(plan)
}

fn main() -> ExitCode {
    let plan = match parse_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = fs::create_dir_all(&plan.root)
        .map_err(Into::into)
        .and_then(|()| run(&plan));
    // The data sets are large; never leave them behind.
    if let Err(e) = fs::remove_dir_all(&plan.root) {
        eprintln!("could not remove {}: {e}", plan.root.display());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(plan: &Plan) -> Res<()> {
    let started = Instant::now();
    let progress = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    progress(&format!(
        "{} run: {} rounds, {} jobs x {} steps per durable round, {} jobs in the cold-start sets, data under {}",
        if plan.quick { "quick" } else { "full" },
        plan.rounds,
        plan.jobs,
        STEPS_PER_JOB,
        plan.cold_jobs,
        plan.root.display()
    ));

    agreement(plan)?;
    progress("agreement check passed: every system answers as runlog does");

    let mut results = Results::default();
    durable(plan, &mut results, &progress)?;
    cold_start(plan, &mut results, &progress)?;
    progress("done");

    let names: Vec<&'static str> = SYSTEMS.iter().map(|s| s.name()).collect();
    let table = results.markdown(&names);
    let targets = targets(&results);
    if plan.json {
        print!("{}", results.json_lines());
        eprintln!("\n{table}\n{targets}");
    } else {
        println!("{table}\n{targets}");
    }
    Ok(())
}

/// The two answers, jobs by index: comparable across systems.
type Answer = (Vec<(u64, Totals)>, Option<Latest>);

/// Startup check: a small data set per system, written by several threads,
/// opened cold, both questions answered and compared.
fn agreement(plan: &Plan) -> Res<()> {
    let payloads = make_payloads(AGREEMENT_JOBS, PAYLOAD_SMALL);
    let mut runlog_answer: Option<Answer> = None;
    for system in SYSTEMS {
        let dir = fresh(&plan.root, &format!("agree-{}", system.name()))?;
        let written = system.write(
            &dir,
            AGREEMENT_JOBS,
            AGREEMENT_WRITERS,
            Payloads::Made(&payloads),
            false,
        )?;
        let probe = &written.refs[usize::try_from(probe_index(AGREEMENT_JOBS))?];
        let answer = system.cold(&dir, probe)?;
        check(
            system.name(),
            "agreement",
            &answer,
            &written.refs,
            PAYLOAD_SMALL,
        )?;
        if system == System::Runlog {
            let replayed = without_snapshots(&dir, || system.cold(&dir, probe))?;
            check(
                "runlog without a snapshot",
                "agreement",
                &replayed,
                &written.refs,
                PAYLOAD_SMALL,
            )?;
        }
        // Beyond the model: the answers, by job index, equal runlog's.
        let by_index = by_index(&answer, &written.refs)?;
        match &runlog_answer {
            None => runlog_answer = Some((by_index, answer.answer)),
            Some((totals, latest)) => {
                if *totals != by_index || *latest != answer.answer {
                    return Err(format!("{} answers differently from runlog", system.name()).into());
                }
            }
        }
        fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn by_index(cold: &Cold, refs: &[String]) -> Res<Vec<(u64, Totals)>> {
    let index: HashMap<&str, u64> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i as u64))
        .collect();
    let mut out = cold
        .totals
        .iter()
        .map(|(r, t)| {
            index
                .get(r.as_str())
                .map(|i| (*i, *t))
                .ok_or_else(|| format!("unknown job {r}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// Workloads (a), (b), (c), and (e) on the data of (a).
fn durable(plan: &Plan, results: &mut Results, progress: &dyn Fn(&str)) -> Res<()> {
    let small = make_payloads(plan.jobs, PAYLOAD_SMALL);
    let large = make_payloads(plan.jobs, PAYLOAD_LARGE);
    let workloads: [(&'static str, usize, &[Vec<String>]); 3] = [
        ("durable-1-writer", 1, &small),
        ("durable-1-writer-4k", 1, &large),
        ("durable-16-writers", WRITERS_MANY, &small),
    ];
    for round in 0..plan.rounds {
        for (workload, writers, payloads) in workloads {
            if !plan.runs(workload) {
                continue;
            }
            for system in plan.order(round) {
                let dir = fresh(&plan.root, system.name())?;
                let written =
                    system.write(&dir, plan.jobs, writers, Payloads::Made(payloads), false)?;
                let commands = (plan.jobs * COMMANDS_PER_JOB) as f64;
                let per_s = commands / written.elapsed.as_secs_f64();
                results.add(
                    workload,
                    system.name(),
                    "commands/s",
                    "cmd/s",
                    Better::Higher,
                    per_s,
                );
                if workload == "durable-1-writer" {
                    let bytes = disk_bytes(&dir)? as f64;
                    results.add(
                        "disk-bytes",
                        system.name(),
                        "bytes per job, durable-1-writer data",
                        "B",
                        Better::Lower,
                        bytes / plan.jobs as f64,
                    );
                }
                fs::remove_dir_all(&dir)?;
                settle();
            }
            progress(&format!("round {}/{}: {workload}", round + 1, plan.rounds));
        }
    }
    Ok(())
}

/// Workload (d), and (e) on its data sets.
fn cold_start(plan: &Plan, results: &mut Results, progress: &dyn Fn(&str)) -> Res<()> {
    if !plan.runs("cold-start") && !plan.runs("disk-bytes") {
        return Ok(());
    }
    let mut sets = Vec::new();
    for system in plan.systems.iter().copied() {
        let dir = fresh(&plan.root, &format!("cold-{}", system.name()))?;
        let written = system.write(
            &dir,
            plan.cold_jobs,
            1,
            Payloads::OfSize(PAYLOAD_SMALL),
            true,
        )?;
        progress(&format!(
            "cold-start set of {} jobs built for {} in {:.1}s",
            plan.cold_jobs,
            system.name(),
            written.elapsed.as_secs_f64()
        ));
        // json-files' set holds only the files the questions read (see
        // json_files.rs), so its size says nothing.
        if system != System::JsonFiles {
            let mib = disk_bytes(&dir)? as f64 / (1024.0 * 1024.0);
            results.add(
                "disk-bytes",
                system.name(),
                "MiB, cold-start data set",
                "MiB",
                Better::Lower,
                mib,
            );
            if system == System::Runlog {
                // The snapshot is derived and optional; the log is what
                // must be kept.
                let log = disk_bytes(&dir.join("segments"))? as f64 / (1024.0 * 1024.0);
                results.add(
                    "disk-bytes",
                    system.name(),
                    "MiB, cold-start set, log only",
                    "MiB",
                    Better::Lower,
                    log,
                );
            }
        }
        sets.push((system, dir, written.refs));
    }
    // The sets were written without syncs: their write-back must not run
    // under the cold opens.
    settle();
    let probe = usize::try_from(probe_index(plan.cold_jobs))?;
    for round in 0..plan.rounds {
        for system in plan.order(round) {
            let Some((_, dir, refs)) = sets.iter().find(|(s, _, _)| *s == system) else {
                continue;
            };
            let c = system.cold(dir, &refs[probe])?;
            check(system.name(), "cold start", &c, refs, PAYLOAD_SMALL)?;
            let name = system.name();
            results.add(
                "cold-start",
                name,
                "open + all jobs with totals",
                "ms",
                Better::Lower,
                ms(c.open_all),
            );
            results.add(
                "cold-start",
                name,
                "then latest checkpoint of job X",
                "us",
                Better::Lower,
                us(c.latest),
            );
            results.add(
                "cold-start",
                name,
                "all jobs again, store open",
                "ms",
                Better::Lower,
                ms(c.all_again),
            );
            if system == System::Runlog {
                let c = without_snapshots(dir, || system.cold(dir, &refs[probe]))?;
                check(
                    "runlog without a snapshot",
                    "cold start",
                    &c,
                    refs,
                    PAYLOAD_SMALL,
                )?;
                results.add(
                    "cold-start",
                    name,
                    "open + all jobs, no snapshot (full replay)",
                    "ms",
                    Better::Lower,
                    ms(c.open_all),
                );
            }
        }
        progress(&format!("round {}/{}: cold-start", round + 1, plan.rounds));
    }
    for (_, dir, _) in sets {
        fs::remove_dir_all(dir)?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The issue's targets, each with the ratio this run measured.
fn targets(results: &Results) -> String {
    let ratio = |workload: &str, system: &str, metric: &str| -> Option<f64> {
        let m = results
            .measures
            .iter()
            .find(|m| m.workload == workload && m.system == system && m.metric == metric)?;
        results.ratio(m)
    };
    let mut out = String::from("Targets (runlog over the other, same run):\n");
    let mut line = |what: String, got: Option<f64>, want: f64| {
        let verdict = match got {
            Some(r) if r >= want => format!("{r:.2}x, met"),
            Some(r) => format!("{r:.2}x, MISSED"),
            None => "not measured".to_string(),
        };
        out.push_str(&format!("- {what}: want >= {want}x, got {verdict}\n"));
    };
    for w in ["durable-1-writer", "durable-1-writer-4k"] {
        line(
            format!("{w} vs sqlite-full"),
            ratio(w, "sqlite-full", "commands/s"),
            1.3,
        );
        line(
            format!("{w} vs json-files"),
            ratio(w, "json-files", "commands/s"),
            3.0,
        );
        line(
            format!("{w} vs json-lines"),
            ratio(w, "json-lines", "commands/s"),
            0.95,
        );
    }
    line(
        "durable-16-writers vs sqlite-full".into(),
        ratio("durable-16-writers", "sqlite-full", "commands/s"),
        10.0,
    );
    line(
        "durable-16-writers vs json-lines".into(),
        ratio("durable-16-writers", "json-lines", "commands/s"),
        5.0,
    );
    let cold = results
        .median("cold-start", "sqlite-full", "all jobs again, store open")
        .zip(results.median("cold-start", "runlog", "open + all jobs with totals"))
        .map(|(sqlite, runlog)| sqlite / runlog);
    line(
        "cold start with a snapshot (open + all jobs) vs sqlite-full's query on an open connection"
            .into(),
        cold,
        1.0,
    );
    line(
        "disk bytes vs sqlite-full (durable-1-writer data)".into(),
        ratio(
            "disk-bytes",
            "sqlite-full",
            "bytes per job, durable-1-writer data",
        ),
        1.0,
    );
    line(
        "disk bytes vs sqlite-full (cold-start set)".into(),
        ratio("disk-bytes", "sqlite-full", "MiB, cold-start data set"),
        1.0,
    );
    let log_only = results
        .median("disk-bytes", "sqlite-full", "MiB, cold-start data set")
        .zip(results.median("disk-bytes", "runlog", "MiB, cold-start set, log only"))
        .map(|(sqlite, runlog)| sqlite / runlog);
    line(
        "disk bytes, runlog's log without its snapshot vs sqlite-full (cold-start set)".into(),
        log_only,
        1.0,
    );
    out
}
