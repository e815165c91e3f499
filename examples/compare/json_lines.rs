//! A JSON-lines ledger: one line per transition, appended to one file and
//! fdatasync'ed before the command returns.
//!
//! Writers share the file opened with `O_APPEND`: each line is one
//! `write` (atomic against the other appenders on a local file system), then
//! each writer calls `fdatasync` itself, without a lock, so the kernel may
//! fold concurrent syncs into one journal commit. That is the ledger at its
//! best; a lock around append-and-sync would serialise every sync.
//!
//! A cold reader replays the whole file, folding it into per-job totals and
//! the offset of each job's latest checkpoint line.

use crate::model::{AGENT_KEY, Latest, Reader, Res, Totals, Writer, add, job_input, now_millis};
use runlog::Usage;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const LEDGER_FILE: &str = "ledger.jsonl";

/// One line. `kind` says which transition; the other fields are present
/// when the transition has them.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    kind: &'a str,
    job: u64,
    at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    input: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    payload: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    output: Option<Cow<'a, str>>,
}

impl<'a> Line<'a> {
    fn new(kind: &'a str, job: u64) -> Self {
        Self {
            kind,
            job,
            at: now_millis(),
            run: None,
            step: None,
            delta: None,
            key: None,
            input: None,
            payload: None,
            output: None,
        }
    }
}

/// What the fold needs of a line: everything but the payload, which it
/// skips without copying.
#[derive(Deserialize)]
struct LineHead<'a> {
    kind: &'a str,
    job: u64,
    step: Option<u64>,
    delta: Option<Usage>,
}

/// The ledger.
pub struct LinesWriter {
    file: File,
    durable: bool,
}

impl LinesWriter {
    /// Opens (creating) the ledger in `dir`.
    pub fn open(dir: &Path, bulk: bool) -> Res<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LEDGER_FILE))?;
        if !bulk {
            File::open(dir)?.sync_all()?;
        }
        Ok(Self {
            file,
            durable: !bulk,
        })
    }

    fn append(&self, line: &Line<'_>) -> Res<()> {
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        (&self.file).write_all(&bytes)?;
        if self.durable {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

impl Writer for LinesWriter {
    type Job = u64;

    fn submit(&self, index: u64) -> Res<u64> {
        let input = job_input(index);
        let mut line = Line::new("job_created", index);
        line.key = Some(Cow::Borrowed(AGENT_KEY));
        line.input = Some(Cow::Borrowed(&input));
        self.append(&line)?;
        Ok(index)
    }

    fn start_run(&self, job: &mut u64) -> Res<()> {
        let mut line = Line::new("run_started", *job);
        line.run = Some(1);
        self.append(&line)
    }

    fn record_step(&self, job: &mut u64, step: u64, payload: &str, usage: Usage) -> Res<()> {
        let mut line = Line::new("step_recorded", *job);
        line.run = Some(1);
        line.step = Some(step);
        line.delta = Some(usage);
        line.payload = Some(Cow::Borrowed(payload));
        self.append(&line)
    }

    fn complete_run(&self, job: &mut u64) -> Res<()> {
        let mut line = Line::new("run_completed", *job);
        line.run = Some(1);
        line.output = Some(Cow::Borrowed("done"));
        self.append(&line)
    }

    fn finish_job(&self, job: &mut u64) -> Res<()> {
        self.append(&Line::new("job_finished", *job))
    }

    fn job_ref(job: &u64) -> String {
        job.to_string()
    }

    fn close(self) -> Res<()> {
        self.file.sync_data()?;
        Ok(())
    }
}

/// A job as the fold leaves it.
#[derive(Clone, Copy, Default)]
pub struct Folded {
    steps: u64,
    usage: Usage,
    latest_step: u64,
    latest_usage: Usage,
    /// Offset and length of the latest checkpoint's line.
    latest_line: Option<(u64, usize)>,
}

/// The ledger, replayed.
pub struct LinesReader {
    file: File,
    jobs: HashMap<u64, Folded>,
    /// Job ids in order of creation.
    order: Vec<u64>,
}

impl Reader for LinesReader {
    type Rows = Vec<(u64, Folded)>;

    fn open(dir: &Path) -> Res<Self> {
        let file = File::open(dir.join(LEDGER_FILE))?;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut jobs: HashMap<u64, Folded> = HashMap::new();
        let mut order = Vec::new();
        let mut buf = Vec::new();
        let mut offset = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            let head: LineHead<'_> = serde_json::from_slice(&buf)?;
            match head.kind {
                "job_created" => {
                    jobs.insert(head.job, Folded::default());
                    order.push(head.job);
                }
                "step_recorded" => {
                    let job = jobs
                        .get_mut(&head.job)
                        .ok_or_else(|| format!("step for unknown job {}", head.job))?;
                    job.steps += 1;
                    job.usage = add(job.usage, head.delta.unwrap_or_default());
                    job.latest_step = head.step.unwrap_or(job.steps);
                    job.latest_usage = job.usage;
                    job.latest_line = Some((offset, n));
                }
                _ => {}
            }
            offset += u64::try_from(n)?;
        }
        Ok(Self { file, jobs, order })
    }

    fn all_jobs(&self) -> Res<Vec<(u64, Folded)>> {
        Ok(self
            .order
            .iter()
            .filter_map(|id| self.jobs.get(id).map(|j| (*id, *j)))
            .collect())
    }

    fn rows_to_totals(rows: Vec<(u64, Folded)>) -> Vec<(String, Totals)> {
        rows.into_iter()
            .map(|(id, j)| {
                let totals = Totals {
                    steps: j.steps,
                    usage: j.usage,
                };
                (id.to_string(), totals)
            })
            .collect()
    }

    fn latest_checkpoint(&self, job_ref: &str) -> Res<Option<Latest>> {
        let id: u64 = job_ref.parse()?;
        let Some(job) = self.jobs.get(&id) else {
            return Ok(None);
        };
        let Some((offset, len)) = job.latest_line else {
            return Ok(None);
        };
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset)?;
        let line: Line<'_> = serde_json::from_slice(&buf)?;
        let payload = line.payload.ok_or("a step line without its payload")?;
        Ok(Some(Latest {
            step: job.latest_step,
            usage: job.latest_usage,
            payload: payload.into_owned().into_bytes(),
        }))
    }

    fn close(self) -> Res<()> {
        Ok(())
    }
}
