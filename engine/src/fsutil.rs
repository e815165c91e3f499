//! Owner-only files and directories, directory fsync, and reads that refuse
//! symlinks. Checkpoints hold prompts and outputs: nobody else may read them.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates a file with mode 0600, replacing whatever held the name. The
/// old entry is removed and the file created with `O_EXCL`, which never
/// follows a symbolic link: a link planted at a temporary name must not make
/// the engine overwrite a file outside the data directory.
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Fsyncs a directory so that a rename or a new file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Maps a whole regular file read-only, refusing a symlink: a planted link
/// must not make the engine read (or trust) a file outside the data
/// directory. An empty file is not mapped. See
/// `mmap.rs` for why the map stays sound (snapshot files only).
pub(crate) fn map_regular_snapshot(path: &Path) -> io::Result<runlog_projections::SnapshotFile> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file (symlinks are refused)",
        ));
    }
    let file = File::open(path)?;
    // What was opened, not what the name held a moment before.
    let opened = file.metadata()?;
    if !opened.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file (symlinks are refused)",
        ));
    }
    if opened.len() == 0 {
        return Ok(std::sync::Arc::new(Vec::<u8>::new()));
    }
    Ok(std::sync::Arc::new(crate::mmap::map_snapshot(&file)?))
}
