//! Queries, shared by the writer ([`crate::Engine`]) and the read-only open
//! ([`crate::ReadOnly`]): one implementation over the views and the log.

use crate::codec;
use crate::error::EngineError;
use crate::files::Files;
use runlog_log::{Log, LogOptions, LogReader};
use runlog_log::{LogError, SegmentRecords};
use runlog_projections::{
    Change, CheckpointId, CheckpointView, Event, EventRef, EventSource, JobDetail, JobId,
    JobStatus, JobSummary, JobView, Lsn, Projections, Resumability, RunId, RunView,
};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

/// Where records are read from: the writer's log or a read-only reader.
pub trait Source {
    /// Calls `f` for each record from `from` on, until it breaks.
    fn scan_from(
        &self,
        from: Lsn,
        f: &mut dyn FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), LogError>;
    /// Calls `f` with the records of each segment from `from` on, until it
    /// breaks; the payloads borrow the segment's bytes (for replay's
    /// pipeline, `crate::replay`).
    fn scan_segments_from(
        &self,
        from: Lsn,
        f: &mut dyn FnMut(&mut SegmentRecords<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError>;
    /// One record's bytes.
    fn read_record(&self, lsn: Lsn) -> Result<Vec<u8>, LogError>;
}

/// The log's writer and its read-only reader have the same reading
/// methods; both are sources through them.
macro_rules! log_source {
    ($log:ty) => {
        impl Source for $log {
            fn scan_from(
                &self,
                from: Lsn,
                f: &mut dyn FnMut(Lsn, &[u8]) -> ControlFlow<()>,
            ) -> Result<(), LogError> {
                self.scan(from, f)
            }

            fn scan_segments_from(
                &self,
                from: Lsn,
                f: &mut dyn FnMut(&mut SegmentRecords<'_>) -> ControlFlow<()>,
            ) -> Result<(), LogError> {
                self.scan_segments(from, f)
            }

            fn read_record(&self, lsn: Lsn) -> Result<Vec<u8>, LogError> {
                self.read(lsn)
            }
        }
    };
}

log_source!(runlog_log::Log);
log_source!(runlog_log::LogReader);

/// The log as the views restored from a snapshot read it: the events of
/// jobs the snapshot holds by their LSNs, read and decoded when their runs
/// and checkpoints are first used.
// One per open, behind an `Arc`: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LogEvents {
    /// A read-only open's reader, kept by the views (it takes no lock).
    Reader(Arc<LogReader>),
    /// The writer's log, held weakly: views copied out of an engine and
    /// kept after it closed must not keep the log, and its lock, alive.
    /// They read the events through a read-only reader of the directory
    /// instead, opened once on first need: every event a snapshot names
    /// was durable before the snapshot was written.
    Writer {
        log: Weak<Log>,
        dir: PathBuf,
        files: Files,
        options: LogOptions,
        reader: OnceLock<Result<LogReader, String>>,
    },
}

impl LogEvents {
    /// The events of a read-only open's reader.
    pub(crate) fn reader(reader: &Arc<LogReader>) -> Arc<dyn EventSource> {
        Arc::new(LogEvents::Reader(Arc::clone(reader)))
    }

    /// The events of the writer's log in `dir`, on `files`.
    pub(crate) fn writer(
        log: &Arc<Log>,
        files: &Files,
        options: LogOptions,
    ) -> Arc<dyn EventSource> {
        Arc::new(LogEvents::Writer {
            log: Arc::downgrade(log),
            dir: log.dir().to_path_buf(),
            files: files.clone(),
            options,
            reader: OnceLock::new(),
        })
    }

    /// The bytes of the record at `lsn`.
    fn record(&self, lsn: Lsn) -> Result<Vec<u8>, String> {
        let read = match self {
            LogEvents::Reader(reader) => reader.read(lsn),
            LogEvents::Writer {
                log,
                dir,
                files,
                options,
                reader,
            } => match log.upgrade() {
                Some(log) => log.read(lsn),
                None => {
                    let reader = reader.get_or_init(|| {
                        open_reader(files, dir, options.clone()).map_err(|e| {
                            format!("the log was closed, and reopening it failed: {e}")
                        })
                    });
                    match reader {
                        Ok(reader) => reader.read(lsn),
                        Err(e) => return Err(e.clone()),
                    }
                }
            },
        };
        read.map_err(|e| e.to_string())
    }
}

/// A read-only reader of the log in `dir`, on `files`.
fn open_reader(files: &Files, dir: &Path, options: LogOptions) -> Result<LogReader, LogError> {
    match files {
        Files::Real => LogReader::open(dir, options),
        #[cfg(feature = "sim")]
        Files::Sim(fs) => LogReader::open_with(Arc::clone(fs), dir, options),
    }
}

impl EventSource for LogEvents {
    fn with_event(&self, lsn: Lsn, f: &mut dyn FnMut(&EventRef<'_>)) -> Result<(), String> {
        let bytes = self.record(lsn)?;
        let event = codec::decode_ref(lsn, &bytes).map_err(|e| e.to_string())?;
        f(&event);
        Ok(())
    }
}

pub(crate) mod sealed {
    use super::Source;
    use crate::options::Options;
    use runlog_projections::Projections;

    /// What a queryable type gives the shared queries. Sealed: only this
    /// crate's types implement [`super::Query`].
    pub trait Access {
        fn views<R>(&self, f: impl FnOnce(&Projections) -> R) -> R;
        fn source(&self) -> &dyn Source;
        fn options(&self) -> &Options;
    }
}

/// Which jobs to list, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// Only jobs with this key.
    pub key: Option<String>,
    /// Skip this many matching jobs (newest first).
    pub offset: usize,
    /// At most this many jobs. Default 100.
    pub limit: usize,
}

impl Default for JobFilter {
    fn default() -> Self {
        Self {
            status: None,
            key: None,
            offset: 0,
            limit: 100,
        }
    }
}

impl JobFilter {
    /// Every job, newest first, without a limit.
    pub fn all() -> Self {
        Self {
            limit: usize::MAX,
            ..Self::default()
        }
    }

    /// Only jobs with this status.
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only jobs with this key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// A page: skip `offset`, return at most `limit`.
    pub fn page(mut self, offset: usize, limit: usize) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }
}

/// A checkpoint with its payload, read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The checkpoint's view.
    pub view: CheckpointView,
    /// Its payload bytes.
    pub payload: Vec<u8>,
}

/// A run and the runs it delegated to, recursively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunNode {
    /// The run.
    pub run: RunView,
    /// Its children, in delegation order.
    pub children: Vec<RunNode>,
}

/// An interrupted run with its resumability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableRun {
    /// The run.
    pub run: RunView,
    /// Whether this host (its code version, its attempts bound) can resume
    /// it, and if not, why.
    pub resumability: Resumability,
}

/// Questions a host asks of a data directory. Implemented by
/// [`crate::Engine`] and [`crate::ReadOnly`]; sealed.
pub trait Query: sealed::Access {
    /// Runs `f` on the views, under the read lock: for questions the other
    /// methods do not answer, without copying.
    fn with_views<R>(&self, f: impl FnOnce(&Projections) -> R) -> R {
        self.views(f)
    }

    /// Jobs matching `filter`, newest first. Fails when a job the page
    /// reaches was restored from a snapshot whose bytes for it cannot be
    /// read ([`EngineError::DetailUnreadable`]).
    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, EngineError> {
        self.views(|v| {
            // Rows, not views: a job restored from a snapshot and not used
            // since is listed from its record, without materializing it.
            let rows = v.job_rows(filter.status)?;
            // Sized for the page at once: a listing of every job would
            // otherwise grow by doubling, copying its rows each time.
            let most = rows.size_hint().0.saturating_sub(filter.offset);
            let mut out = Vec::with_capacity(most.min(filter.limit));
            let mut skipped = 0;
            for row in rows {
                let row = row?;
                if filter.key.as_deref().is_some_and(|k| *row.key != *k) {
                    continue;
                }
                if skipped < filter.offset {
                    skipped += 1;
                    continue;
                }
                if out.len() == filter.limit {
                    break;
                }
                out.push(row);
            }
            Ok(out)
        })
    }

    /// One job, with its runs and checkpoints (decoded: the copy's
    /// [`JobView::detail`] does not fail).
    fn job(&self, job: &JobId) -> Result<JobView, EngineError> {
        self.views(|v| match v.job(job)? {
            None => Err(EngineError::UnknownJob { job: job.clone() }),
            Some(j) => {
                j.detail()?;
                Ok(j.clone())
            }
        })
    }

    /// One run.
    fn run(&self, job: &JobId, run: &RunId) -> Result<RunView, EngineError> {
        self.views(|v| match v.job(job)? {
            None => Err(EngineError::UnknownJob { job: job.clone() }),
            Some(j) => j
                .detail()?
                .run(run)
                .cloned()
                .ok_or_else(|| EngineError::UnknownRun {
                    job: job.clone(),
                    run: run.clone(),
                }),
        })
    }

    /// A job's runs as a tree: top-level runs in start order, each with the
    /// runs it delegated to.
    fn run_tree(&self, job: &JobId) -> Result<Vec<RunNode>, EngineError> {
        let job = self.job(job)?;
        let job = job.detail()?;
        fn node(job: &JobDetail, run: &RunView, depth: usize) -> RunNode {
            // Depth is bounded by the number of runs, so even views that
            // claimed a cycle could not recurse without end.
            let children = if depth > job.runs().len() {
                Vec::new()
            } else {
                run.children
                    .iter()
                    .filter_map(|c| job.run(c))
                    .map(|c| node(job, c, depth + 1))
                    .collect()
            };
            RunNode {
                run: run.clone(),
                children,
            }
        }
        Ok(job.root_runs().map(|r| node(job, r, 0)).collect())
    }

    /// A job's checkpoints in step order.
    fn checkpoints(&self, job: &JobId) -> Result<Vec<CheckpointView>, EngineError> {
        self.views(|v| match v.job(job)? {
            None => Err(EngineError::UnknownJob { job: job.clone() }),
            Some(j) => Ok(j.detail()?.checkpoints().to_vec()),
        })
    }

    /// A job's latest checkpoint (highest step), if it has any.
    fn latest_checkpoint(&self, job: &JobId) -> Result<Option<CheckpointView>, EngineError> {
        self.views(|v| match v.job(job)? {
            None => Err(EngineError::UnknownJob { job: job.clone() }),
            Some(j) => Ok(j.detail()?.latest_checkpoint().cloned()),
        })
    }

    /// One checkpoint, addressed as (job id, checkpoint id), with its
    /// payload read from the log.
    fn checkpoint(
        &self,
        job: &JobId,
        checkpoint: &CheckpointId,
    ) -> Result<Checkpoint, EngineError> {
        let view = self.views(|v| match v.job(job)? {
            None => Err(EngineError::UnknownJob { job: job.clone() }),
            Some(j) => j.detail()?.checkpoint(checkpoint).cloned().ok_or_else(|| {
                EngineError::UnknownCheckpoint {
                    job: job.clone(),
                    checkpoint: checkpoint.clone(),
                }
            }),
        })?;
        let lsn = view.payload.lsn;
        let payload = match read_event(self.source(), lsn)?.change {
            Change::StepRecorded { payload, .. } => payload,
            other => return Err(misplaced(lsn, "step_recorded", other.kind())),
        };
        Ok(Checkpoint { view, payload })
    }

    /// A job's original input, read from the log.
    fn job_input(&self, job: &JobId) -> Result<Vec<u8>, EngineError> {
        let lsn = self.job(job)?.input.lsn;
        match read_event(self.source(), lsn)?.change {
            Change::JobCreated { input, .. } => Ok(input),
            other => Err(misplaced(lsn, "job_created", other.kind())),
        }
    }

    /// Calls `f` with each event from `from` on, in log order, until it
    /// breaks. Streams: memory does not grow with the log.
    fn for_each_event(
        &self,
        from: Lsn,
        mut f: impl FnMut(Lsn, Event) -> ControlFlow<()>,
    ) -> Result<(), EngineError> {
        let mut failure = None;
        self.source()
            .scan_from(from, &mut |lsn, bytes| match codec::decode(lsn, bytes) {
                Ok(event) => f(lsn, event),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            })?;
        failure.map_or(Ok(()), Err)
    }

    /// The events of one job, in log order: read one by one when the
    /// views know their LSNs (nearly always), else by a scan of the log
    /// from the job's first event.
    fn job_events(&self, job: &JobId) -> Result<Vec<(Lsn, Event)>, EngineError> {
        let view = self.job(job)?;
        if let Some(lsns) = view.event_lsns() {
            return lsns
                .into_iter()
                .map(|lsn| {
                    let event = read_event(self.source(), lsn)?;
                    if &event.job != job {
                        return Err(EngineError::BadEvent {
                            lsn,
                            detail: format!(
                                "the views list it as an event of job {job}, it is of job {}",
                                event.job
                            ),
                        });
                    }
                    Ok((lsn, event))
                })
                .collect();
        }
        let first = view.input.lsn;
        let mut events = Vec::new();
        self.for_each_event(first, |lsn, event| {
            if &event.job == job {
                events.push((lsn, event));
            }
            ControlFlow::Continue(())
        })?;
        Ok(events)
    }

    /// Interrupted runs (in jobs not cancelled), with whether this host can
    /// resume each.
    fn interrupted(&self) -> Vec<ResumableRun> {
        let code = self.options().code_version.as_deref();
        let max = self.options().recovery_attempts_max;
        self.views(|v| {
            v.interrupted_runs()
                .filter_map(|run| {
                    // Interrupted runs' jobs have their detail decoded.
                    let resumability = v
                        .resumability(&run.job, &run.id, code, max)
                        .ok()
                        .flatten()?;
                    Some(ResumableRun {
                        run: run.clone(),
                        resumability,
                    })
                })
                .collect()
        })
    }

    /// Whether this host can resume the run now, and if not, why.
    fn resumability(&self, job: &JobId, run: &RunId) -> Result<Resumability, EngineError> {
        let code = self.options().code_version.as_deref();
        let max = self.options().recovery_attempts_max;
        self.views(|v| v.resumability(job, run, code, max))?
            .ok_or_else(|| EngineError::UnknownRun {
                job: job.clone(),
                run: run.clone(),
            })
    }

    /// The newest unfinished job submitted with this fingerprint (whatever
    /// its age; compare `started_at` for a staleness window). Its detail is
    /// decoded first, so the copy's [`JobView::detail`] gives what the
    /// views hold, or the same error.
    fn job_for_fingerprint(&self, fingerprint: &str) -> Option<JobView> {
        self.views(|v| {
            let job = v.newest_unfinished_with_fingerprint(fingerprint)?;
            let _decoded_or_failed = job.detail();
            Some(job.clone())
        })
    }
}

fn read_event(source: &dyn Source, lsn: Lsn) -> Result<Event, EngineError> {
    let bytes = source.read_record(lsn)?;
    codec::decode(lsn, &bytes)
}

fn misplaced(lsn: Lsn, expected: &str, found: &str) -> EngineError {
    EngineError::BadEvent {
        lsn,
        detail: format!("expected a {expected} event there, found {found}"),
    }
}
