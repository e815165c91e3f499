//! runlog: the durable, auditable record of agent and workflow jobs.
//!
//! This facade re-exports the public API of the runlog crates. Today that is
//! the record log; the engine's API joins it as it lands.
//!
//! What it is not for: anything beyond re-exporting; the code lives in the
//! `runlog-log`, `runlog-projections` and `runlog-engine` crates.

pub use runlog_log as log;
