//! The one place that maps files into memory, and so the one module allowed
//! `unsafe`.

use std::fs::File;
use std::io;

/// Maps the first `len` bytes of `file` read-only.
///
/// Not populated up front: `MAP_POPULATE` walks every page a second time
/// after faulting it in, and cost 7% more CPU per verify of a 1 GiB log than
/// letting the first reads fault the pages in (with fault-around, one fault
/// per 16 pages). `LogReader::verify` faults the next segment in on a helper
/// thread instead.
///
/// The caller promises `len` is at most the file's length and that the file
/// is never truncated below `len` while the map lives.
pub(crate) fn map_prefix(file: &File, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: memmap2 requires that the mapped bytes are not changed or
    // truncated under the map by anyone while it lives. The log guarantees
    // this for the bytes we map: there is a single writer (held by the LOCK
    // file), it only ever appends past the end of what any map covers, it
    // never maps past the file length it observed, and it truncates a segment
    // only during recovery inside `Log::open`, before any map of that segment
    // exists in the process. Read-only `LogReader`s map only sealed segments,
    // which no writer truncates (except the offline `Salvage` mode, which the
    // docs say to run on a log nobody is reading). Deleting a mapped file
    // (retention) is harmless: the inode outlives the map.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}
