//! SQLite as a run store: WAL mode, a table of events plus job, run and
//! checkpoint tables updated in the same transaction, one transaction per
//! command.
//!
//! With `synchronous=FULL` every commit fsyncs the WAL before it returns:
//! durable. With `NORMAL` the WAL is synced only at checkpoints, so a power
//! cut can lose the last commits: the row is there to show what giving up
//! that guarantee buys, not as an equal.
//!
//! Many threads share one connection behind a mutex. SQLite admits one
//! writer at a time whatever the number of connections, and a connection
//! per thread waits in the busy handler, which sleeps; one connection
//! behind a mutex is the faster of the two.

use crate::model::{AGENT_KEY, Latest, Reader, Res, Totals, Writer, job_input, now_millis};
use runlog::Usage;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// The database file inside a data directory.
const DB_FILE: &str = "runs.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    input BLOB NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    total_steps INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    output BLOB
);
CREATE TABLE IF NOT EXISTS checkpoints (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    step INTEGER NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    at INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    total_input_tokens INTEGER NOT NULL,
    total_output_tokens INTEGER NOT NULL,
    total_cost_micros INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (job_id, step)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    run_id INTEGER,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    body TEXT
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
";

/// Which `synchronous` setting the writer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// `synchronous=FULL`: every commit durable.
    Full,
    /// `synchronous=NORMAL`: commits durable only at WAL checkpoints.
    Normal,
}

/// The run store.
pub struct SqliteWriter {
    conn: Mutex<Connection>,
    bulk: bool,
}

/// A job's row ids.
pub struct SqliteJob {
    id: i64,
    run: i64,
}

/// SQLite integers are signed; every count here is far below `i64::MAX`.
fn sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A count read back; a negative one would be a bug of this file.
fn unsql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn lock(m: &Mutex<Connection>) -> Res<MutexGuard<'_, Connection>> {
    m.lock()
        .map_err(|_| "a writer thread panicked holding the connection".into())
}

impl SqliteWriter {
    /// Opens (creating) the database in `dir`. In bulk mode `synchronous`
    /// is OFF and commands are grouped into large transactions.
    pub fn open(dir: &Path, sync: Sync, bulk: bool) -> Res<Self> {
        let conn = Connection::open(dir.join(DB_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match (bulk, sync) {
            (true, _) => "OFF",
            (false, Sync::Full) => "FULL",
            (false, Sync::Normal) => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.execute_batch(SCHEMA)?;
        if bulk {
            conn.execute_batch("BEGIN")?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            bulk,
        })
    }

    /// Runs one command as one transaction (in bulk mode, inside the
    /// current batch).
    fn command<T>(&self, f: impl FnOnce(&Connection) -> Res<T>) -> Res<T> {
        let conn = lock(&self.conn)?;
        if self.bulk {
            return f(&conn);
        }
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        match f(&conn) {
            Ok(v) => {
                conn.prepare_cached("COMMIT")?.execute([])?;
                Ok(v)
            }
            Err(e) => {
                // The command's error is the one worth reporting.
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn event(conn: &Connection, job: i64, run: Option<i64>, kind: &str, body: &str) -> Res<()> {
    conn.prepare_cached(
        "INSERT INTO events (job_id, run_id, kind, at, body) VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![job, run, kind, sql(now_millis()), body])?;
    Ok(())
}

impl Writer for SqliteWriter {
    type Job = SqliteJob;

    fn submit(&self, index: u64) -> Res<SqliteJob> {
        let input = job_input(index);
        self.command(|c| {
            c.prepare_cached(
                "INSERT INTO jobs (key, input, status, created_at) VALUES (?, ?, 'queued', ?)",
            )?
            .execute(params![AGENT_KEY, input.as_bytes(), sql(now_millis())])?;
            let id = c.last_insert_rowid();
            event(c, id, None, "job_created", "{}")?;
            Ok(SqliteJob { id, run: 0 })
        })
    }

    fn start_run(&self, job: &mut SqliteJob) -> Res<()> {
        job.run = self.command(|c| {
            c.prepare_cached(
                "INSERT INTO runs (job_id, status, started_at) VALUES (?, 'running', ?)",
            )?
            .execute(params![job.id, sql(now_millis())])?;
            let run = c.last_insert_rowid();
            c.prepare_cached("UPDATE jobs SET status = 'running' WHERE id = ?")?
                .execute([job.id])?;
            event(c, job.id, Some(run), "run_started", "{}")?;
            Ok(run)
        })?;
        Ok(())
    }

    fn record_step(&self, job: &mut SqliteJob, step: u64, payload: &str, usage: Usage) -> Res<()> {
        self.command(|c| {
            let (t_in, t_out, t_cost): (i64, i64, i64) = c
                .prepare_cached(
                    "UPDATE jobs SET total_steps = total_steps + 1,
                        input_tokens = input_tokens + ?1,
                        output_tokens = output_tokens + ?2,
                        cost_micros = cost_micros + ?3
                     WHERE id = ?4
                     RETURNING input_tokens, output_tokens, cost_micros",
                )?
                .query_row(
                    params![
                        sql(usage.input_tokens),
                        sql(usage.output_tokens),
                        sql(usage.cost_micros),
                        job.id
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            c.prepare_cached(
                "INSERT INTO checkpoints (job_id, step, run_id, at,
                    input_tokens, output_tokens, cost_micros,
                    total_input_tokens, total_output_tokens, total_cost_micros, payload)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                job.id,
                sql(step),
                job.run,
                sql(now_millis()),
                sql(usage.input_tokens),
                sql(usage.output_tokens),
                sql(usage.cost_micros),
                t_in,
                t_out,
                t_cost,
                payload.as_bytes()
            ])?;
            event(c, job.id, Some(job.run), "step_recorded", "{}")
        })
    }

    fn complete_run(&self, job: &mut SqliteJob) -> Res<()> {
        self.command(|c| {
            c.prepare_cached(
                "UPDATE runs SET status = 'completed', ended_at = ?, output = ? WHERE id = ?",
            )?
            .execute(params![sql(now_millis()), b"done".as_slice(), job.run])?;
            event(c, job.id, Some(job.run), "run_completed", "{}")
        })
    }

    fn finish_job(&self, job: &mut SqliteJob) -> Res<()> {
        self.command(|c| {
            c.prepare_cached("UPDATE jobs SET status = 'completed', finished_at = ? WHERE id = ?")?
                .execute(params![sql(now_millis()), job.id])?;
            event(c, job.id, None, "job_finished", "{}")
        })
    }

    fn job_ref(job: &SqliteJob) -> String {
        job.id.to_string()
    }

    fn batch_boundary(&self) -> Res<()> {
        if self.bulk {
            lock(&self.conn)?.execute_batch("COMMIT; BEGIN")?;
        }
        Ok(())
    }

    fn close(self) -> Res<()> {
        let conn = self
            .conn
            .into_inner()
            .map_err(|_| "a writer thread panicked holding the connection")?;
        if self.bulk {
            conn.execute_batch("COMMIT")?;
        }
        // Fold the WAL into the database, as a clean shutdown does, so the
        // bytes on disk are the database's own.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}

/// One row of "all jobs with their totals".
pub struct JobRow {
    id: i64,
    _key: String,
    _status: String,
    total_steps: u64,
    usage: Usage,
    _created_at: i64,
    _finished_at: Option<i64>,
}

/// A connection opened cold.
pub struct SqliteReader {
    conn: Connection,
}

impl Reader for SqliteReader {
    type Rows = Vec<JobRow>;

    fn open(dir: &Path) -> Res<Self> {
        let conn = Connection::open(dir.join(DB_FILE))?;
        Ok(Self { conn })
    }

    fn all_jobs(&self) -> Res<Vec<JobRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, key, status, total_steps, input_tokens, output_tokens, cost_micros,
                    created_at, finished_at
             FROM jobs ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(JobRow {
                id: r.get(0)?,
                _key: r.get(1)?,
                _status: r.get(2)?,
                total_steps: unsql(r.get(3)?),
                usage: Usage {
                    input_tokens: unsql(r.get(4)?),
                    output_tokens: unsql(r.get(5)?),
                    cost_micros: unsql(r.get(6)?),
                },
                _created_at: r.get(7)?,
                _finished_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn rows_to_totals(rows: Vec<JobRow>) -> Vec<(String, Totals)> {
        rows.into_iter()
            .map(|r| {
                let totals = Totals {
                    steps: r.total_steps,
                    usage: r.usage,
                };
                (r.id.to_string(), totals)
            })
            .collect()
    }

    fn latest_checkpoint(&self, job_ref: &str) -> Res<Option<Latest>> {
        let id: i64 = job_ref.parse()?;
        let latest = self
            .conn
            .prepare_cached(
                "SELECT step, total_input_tokens, total_output_tokens, total_cost_micros, payload
                 FROM checkpoints WHERE job_id = ? ORDER BY step DESC LIMIT 1",
            )?
            .query_row([id], |r| {
                Ok(Latest {
                    step: unsql(r.get(0)?),
                    usage: Usage {
                        input_tokens: unsql(r.get(1)?),
                        output_tokens: unsql(r.get(2)?),
                        cost_micros: unsql(r.get(3)?),
                    },
                    payload: r.get(4)?,
                })
            })
            .optional()?;
        Ok(latest)
    }

    fn close(self) -> Res<()> {
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}
