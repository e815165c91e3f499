//! runlog: the durable, auditable record of agent and workflow jobs.
//!
//! This facade re-exports the embedded API of `runlog-engine` (open,
//! commands, queries, run guards, the read-only open) with the event and
//! view types of `runlog-projections`, and the record log as [`log`].
//!
//! What it is not for: anything beyond re-exporting and the `runlog`
//! command-line tool; the code lives in the `runlog-log`,
//! `runlog-projections` and `runlog-engine` crates.

pub use runlog_engine::*;
pub use runlog_log as log;
pub use runlog_projections as projections;
