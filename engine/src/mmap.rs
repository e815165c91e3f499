//! The one place in the engine that maps a file into memory, and so the one
//! module allowed `unsafe`.

use std::fs::File;
use std::io;

/// Maps the whole of `file`, a snapshot, read-only.
///
/// The caller has checked that `file` is a regular file of the snapshot
/// directory, opened after that check without following a link.
pub(crate) fn map_snapshot(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: memmap2 requires that the mapped bytes are not changed or
    // truncated by anyone while the map lives. Snapshot files guarantee it:
    // the engine writes a snapshot once, to `<name>.tmp`, fsyncs it and
    // renames it into place, and never opens a `.snap` file for writing
    // again. A later snapshot is a new file (a new inode) renamed over
    // nothing, and a pruned or replaced one is unlinked, which leaves a
    // mapped inode's bytes as they were until the map goes. The files are
    // owner-only (0600) in an owner-only directory, so another user cannot
    // write them either; changing them in place by hand under a running
    // engine is outside what the engine supports, as it is for the log's
    // segments. The map is read-only (`PROT_READ`), so the engine itself
    // cannot write through it.
    unsafe { memmap2::Mmap::map(file) }
}
