//! runlog-log: a segmented, append-only, checksummed record log.
//!
//! What it is for: storing opaque byte records durably, in order, each with a
//! log sequence number (LSN), and giving them back exactly — or a typed error
//! that says where the bytes on disk went wrong.
//!
//! What it is not for: it knows nothing of jobs, runs or events; it does not
//! interpret payloads. That is `runlog-projections` and `runlog-engine`.
