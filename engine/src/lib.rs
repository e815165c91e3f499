//! runlog-engine: the embedded API of runlog.
//!
//! What it is for: opening a data directory (lock, recover, snapshot, replay),
//! turning commands into events appended as atomic batches, and answering
//! queries from the projections.
//!
//! What it is not for: framing bytes on disk (that is `runlog-log`) or deciding
//! which transitions are legal (that is `runlog-projections`).
