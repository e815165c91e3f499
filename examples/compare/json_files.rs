//! One JSON file per checkpoint and a `job.json` per job, each written to a
//! temporary name, fsync'ed, renamed, and the directory fsync'ed: the way a
//! file-per-checkpoint agent runtime keeps its state durable.
//!
//! Layout: `jobs/<index>/job.json` and `jobs/<index>/ckpt-<step>.json`.
//! `job.json` is rewritten at submit, run start, run end and job end, so
//! every command leaves something durable; the job's totals in it are
//! brought up to date at run end.
//!
//! In bulk mode (cold-start data sets only) nothing is fsync'ed, and only
//! the final `job.json` and the last checkpoint of each job are written:
//! a million small files would take this machine minutes to create and
//! delete. The cold-start questions read exactly those files.

use crate::model::{
    AGENT_KEY, Latest, Reader, Res, STEPS_PER_JOB, Totals, Writer, add, job_input, now_millis,
};
use runlog::Usage;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const JOB_FILE: &str = "job.json";
const CHECKPOINT_PREFIX: &str = "ckpt-";

#[derive(Serialize, Deserialize)]
pub struct JobDoc {
    id: u64,
    key: String,
    input: String,
    status: String,
    created_at: u64,
    finished_at: Option<u64>,
    total_steps: u64,
    usage: Usage,
    runs: Vec<RunDoc>,
}

#[derive(Serialize, Deserialize)]
pub struct RunDoc {
    id: u32,
    status: String,
    started_at: u64,
    ended_at: Option<u64>,
    output: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointDoc {
    job: u64,
    run: u32,
    step: u64,
    at: u64,
    delta: Usage,
    usage: Usage,
    payload: String,
}

fn checkpoint_name(step: u64) -> String {
    // Zero-padded so that names sort by step.
    format!("{CHECKPOINT_PREFIX}{step:06}.json")
}

/// Writes `bytes` to `dir/name` atomically: temporary file, fdatasync,
/// rename, directory fsync. In bulk mode, a plain write.
fn write_file(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> Res<()> {
    if !durable {
        fs::write(dir.join(name), bytes)?;
        return Ok(());
    }
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The file store.
pub struct FilesWriter {
    jobs: PathBuf,
    bulk: bool,
}

/// A job's document, kept by the writer between commands.
pub struct FilesJob {
    dir: PathBuf,
    doc: JobDoc,
    /// Usage summed over the steps so far; copied into `doc` at run end.
    usage: Usage,
    steps: u64,
}

impl FilesWriter {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path, bulk: bool) -> Res<Self> {
        let jobs = dir.join("jobs");
        fs::create_dir_all(&jobs)?;
        if !bulk {
            File::open(dir)?.sync_all()?;
        }
        Ok(Self { jobs, bulk })
    }

    fn write_job(&self, job: &FilesJob) -> Res<()> {
        let bytes = serde_json::to_vec(&job.doc)?;
        write_file(&job.dir, JOB_FILE, &bytes, !self.bulk)
    }
}

impl Writer for FilesWriter {
    type Job = FilesJob;

    fn submit(&self, index: u64) -> Res<FilesJob> {
        let dir = self.jobs.join(index.to_string());
        fs::create_dir(&dir)?;
        let job = FilesJob {
            dir,
            doc: JobDoc {
                id: index,
                key: AGENT_KEY.to_string(),
                input: job_input(index),
                status: "queued".to_string(),
                created_at: now_millis(),
                finished_at: None,
                total_steps: 0,
                usage: Usage::default(),
                runs: Vec::new(),
            },
            usage: Usage::default(),
            steps: 0,
        };
        if !self.bulk {
            // The new directory's entry must be durable before its files.
            File::open(&self.jobs)?.sync_all()?;
            self.write_job(&job)?;
        }
        Ok(job)
    }

    fn start_run(&self, job: &mut FilesJob) -> Res<()> {
        job.doc.status = "running".to_string();
        job.doc.runs.push(RunDoc {
            id: 1,
            status: "running".to_string(),
            started_at: now_millis(),
            ended_at: None,
            output: None,
        });
        if !self.bulk {
            self.write_job(job)?;
        }
        Ok(())
    }

    fn record_step(&self, job: &mut FilesJob, step: u64, payload: &str, usage: Usage) -> Res<()> {
        job.usage = add(job.usage, usage);
        job.steps += 1;
        if self.bulk && step != STEPS_PER_JOB {
            return Ok(());
        }
        let doc = CheckpointDoc {
            job: job.doc.id,
            run: 1,
            step,
            at: now_millis(),
            delta: usage,
            usage: job.usage,
            payload: payload.to_string(),
        };
        let bytes = serde_json::to_vec(&doc)?;
        write_file(&job.dir, &checkpoint_name(step), &bytes, !self.bulk)
    }

    fn complete_run(&self, job: &mut FilesJob) -> Res<()> {
        let now = now_millis();
        if let Some(run) = job.doc.runs.last_mut() {
            run.status = "completed".to_string();
            run.ended_at = Some(now);
            run.output = Some("done".to_string());
        }
        job.doc.total_steps = job.steps;
        job.doc.usage = job.usage;
        if !self.bulk {
            self.write_job(job)?;
        }
        Ok(())
    }

    fn finish_job(&self, job: &mut FilesJob) -> Res<()> {
        job.doc.status = "completed".to_string();
        job.doc.finished_at = Some(now_millis());
        self.write_job(job)
    }

    fn job_ref(job: &FilesJob) -> String {
        job.doc.id.to_string()
    }

    fn close(self) -> Res<()> {
        Ok(())
    }
}

/// A cold reader: lists the job directories and reads each `job.json`.
pub struct FilesReader {
    jobs: PathBuf,
}

impl Reader for FilesReader {
    type Rows = Vec<JobDoc>;

    fn open(dir: &Path) -> Res<Self> {
        Ok(Self {
            jobs: dir.join("jobs"),
        })
    }

    fn all_jobs(&self) -> Res<Vec<JobDoc>> {
        let mut docs = Vec::new();
        for entry in fs::read_dir(&self.jobs)? {
            let bytes = fs::read(entry?.path().join(JOB_FILE))?;
            docs.push(serde_json::from_slice::<JobDoc>(&bytes)?);
        }
        Ok(docs)
    }

    fn rows_to_totals(rows: Vec<JobDoc>) -> Vec<(String, Totals)> {
        rows.into_iter()
            .map(|d| {
                let totals = Totals {
                    steps: d.total_steps,
                    usage: d.usage,
                };
                (d.id.to_string(), totals)
            })
            .collect()
    }

    fn latest_checkpoint(&self, job_ref: &str) -> Res<Option<Latest>> {
        let dir = self.jobs.join(job_ref);
        let mut newest: Option<String> = None;
        for entry in fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            // Leftover temporary files are not checkpoints.
            if name.starts_with(CHECKPOINT_PREFIX)
                && name.ends_with(".json")
                && newest.as_ref().is_none_or(|n| name > *n)
            {
                newest = Some(name);
            }
        }
        let Some(name) = newest else {
            return Ok(None);
        };
        let doc: CheckpointDoc = serde_json::from_slice(&fs::read(dir.join(name))?)?;
        Ok(Some(Latest {
            step: doc.step,
            usage: doc.usage,
            payload: doc.payload.into_bytes(),
        }))
    }

    fn close(self) -> Res<()> {
        Ok(())
    }
}
