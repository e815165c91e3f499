//! runlog through its public engine API, `SyncPolicy::Always`.

use crate::model::{AGENT_KEY, Latest, Reader, Res, Totals, Writer, job_input};
use runlog::{
    Engine, JobFilter, JobId, JobOutcome, JobSummary, Options, Query, RunId, Step, Submit,
    SyncPolicy, Usage,
};
use std::path::Path;

/// Options for the measured writer: the defaults (sync always, snapshots
/// every 100 000 events and on close), as a host would open it.
fn durable_options() -> Options {
    Options::default()
}

/// Options for building a cold-start data set: no fsync per command, no
/// periodic snapshot, one snapshot on close. The bytes on disk are the
/// same as a durable writer's; only the wait is skipped.
fn bulk_options() -> Options {
    let mut o = Options::default();
    o.sync = SyncPolicy::Never;
    o.snapshot_every_events = 0;
    o.snapshot_every_bytes = 0;
    o.snapshot_on_close = true;
    o
}

/// Options for a cold open that only reads: closing must not write a
/// snapshot, or the "without a snapshot" case would make one.
fn reader_options() -> Options {
    let mut o = Options::default();
    o.snapshot_on_close = false;
    o
}

/// The engine as a writer.
pub struct RunlogWriter {
    engine: Engine,
}

/// A job's ids, as the host keeps them.
pub struct RunlogJob {
    job: JobId,
    run: Option<RunId>,
}

impl RunlogWriter {
    /// Opens `dir` durable, or in bulk mode.
    pub fn open(dir: &Path, bulk: bool) -> Res<Self> {
        let options = if bulk {
            bulk_options()
        } else {
            durable_options()
        };
        let (engine, _) = Engine::open(dir, options)?;
        Ok(Self { engine })
    }
}

impl RunlogJob {
    fn run(&self) -> Res<&RunId> {
        self.run.as_ref().ok_or_else(|| "no run started".into())
    }
}

impl Writer for RunlogWriter {
    type Job = RunlogJob;

    fn submit(&self, index: u64) -> Res<RunlogJob> {
        let job = self
            .engine
            .submit(Submit::new(AGENT_KEY, job_input(index)))?
            .job;
        Ok(RunlogJob { job, run: None })
    }

    fn start_run(&self, job: &mut RunlogJob) -> Res<()> {
        job.run = Some(self.engine.start_run(&job.job, None)?);
        Ok(())
    }

    fn record_step(&self, job: &mut RunlogJob, _step: u64, payload: &str, usage: Usage) -> Res<()> {
        let step = Step::new(payload.as_bytes().to_vec(), usage);
        self.engine.record_step(&job.job, job.run()?, step)?;
        Ok(())
    }

    fn complete_run(&self, job: &mut RunlogJob) -> Res<()> {
        self.engine.complete_run(&job.job, job.run()?, "done")?;
        Ok(())
    }

    fn finish_job(&self, job: &mut RunlogJob) -> Res<()> {
        self.engine.finish_job(&job.job, JobOutcome::Completed)?;
        Ok(())
    }

    fn job_ref(job: &RunlogJob) -> String {
        job.job.to_string()
    }

    fn close(self) -> Res<()> {
        self.engine.close()?;
        Ok(())
    }
}

/// A cold open of the engine: recover, load the snapshot (if any), replay.
pub struct RunlogReader {
    engine: Engine,
}

impl Reader for RunlogReader {
    type Rows = Vec<JobSummary>;

    fn open(dir: &Path) -> Res<Self> {
        let (engine, _) = Engine::open(dir, reader_options())?;
        Ok(Self { engine })
    }

    fn all_jobs(&self) -> Res<Vec<JobSummary>> {
        Ok(self.engine.jobs(&JobFilter::all())?)
    }

    fn rows_to_totals(rows: Vec<JobSummary>) -> Vec<(String, Totals)> {
        rows.into_iter()
            .map(|j| {
                let totals = Totals {
                    steps: j.total_steps,
                    usage: j.usage,
                };
                (j.id.to_string(), totals)
            })
            .collect()
    }

    fn latest_checkpoint(&self, job_ref: &str) -> Res<Option<Latest>> {
        let job = JobId::from(job_ref);
        let Some(view) = self.engine.latest_checkpoint(&job)? else {
            return Ok(None);
        };
        let checkpoint = self.engine.checkpoint(&job, &view.id)?;
        Ok(Some(Latest {
            step: view.step,
            usage: view.usage,
            payload: checkpoint.payload,
        }))
    }

    fn close(self) -> Res<()> {
        self.engine.close()?;
        Ok(())
    }
}
