//! Where the engine's own files — snapshots — are written and read.
//!
//! By default that is the real file system, through [`crate::fsutil`]
//! (owner-only modes, symlinked snapshots refused). With the `sim` feature
//! an engine opened by `Engine::open_with` keeps its snapshots on the same
//! `Fs` as its log, so a simulated crash tears a snapshot exactly as it
//! tears a segment: nothing the engine writes escapes the simulation.

use crate::fsutil;
use std::io::{self, Write};
use std::path::Path;
#[cfg(feature = "sim")]
use std::sync::Arc;

/// The file system the engine's snapshots live on.
#[derive(Clone, Debug, Default)]
pub(crate) enum Files {
    /// `std::fs`.
    #[default]
    Real,
    /// The log's file-system seam (test support).
    #[cfg(feature = "sim")]
    Sim(Arc<dyn runlog_log::Fs>),
}

/// A failed step of a durable write: what was being done, to which file.
pub(crate) struct WriteFailure<'a> {
    pub op: &'static str,
    pub path: &'a Path,
    pub source: io::Error,
}

impl Files {
    /// Creates `dir` and its parents, owner-only.
    pub(crate) fn create_dir(&self, dir: &Path) -> io::Result<()> {
        match self {
            Files::Real => fsutil::create_dir(dir),
            #[cfg(feature = "sim")]
            Files::Sim(fs) => fs.create_dir_all(dir),
        }
    }

    /// Writes `parts` to `tmp`, makes it durable, renames it to `path` and
    /// makes the rename durable (fsync of `dir`, the parent of both): after
    /// a crash `path` holds all of `parts` or does not exist.
    pub(crate) fn write_durably<'a>(
        &self,
        dir: &'a Path,
        tmp: &'a Path,
        path: &'a Path,
        parts: &[&[u8]],
    ) -> Result<(), WriteFailure<'a>> {
        let at = |op: &'static str, path: &'a Path| move |source| WriteFailure { op, path, source };
        match self {
            Files::Real => {
                let mut file = fsutil::create_file(tmp).map_err(at("create", tmp))?;
                for part in parts {
                    file.write_all(part).map_err(at("write", tmp))?;
                }
                file.sync_all().map_err(at("fsync", tmp))?;
                drop(file);
                std::fs::rename(tmp, path).map_err(at("rename", tmp))?;
                fsutil::sync_dir(dir).map_err(at("fsync directory", dir))
            }
            #[cfg(feature = "sim")]
            Files::Sim(fs) => {
                let file = fs.create(tmp).map_err(at("create", tmp))?;
                let mut offset = 0u64;
                for part in parts {
                    file.write_all_at(part, offset).map_err(at("write", tmp))?;
                    offset += part.len() as u64;
                }
                file.sync_data().map_err(at("fsync", tmp))?;
                drop(file);
                fs.rename(tmp, path).map_err(at("rename", tmp))?;
                fs.sync_dir(dir).map_err(at("fsync directory", dir))
            }
        }
    }

    /// The names of the entries of `dir`, unsorted; empty if it cannot be
    /// read (a missing snapshot directory is no snapshots).
    pub(crate) fn list(&self, dir: &Path) -> Vec<String> {
        match self {
            Files::Real => match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect(),
                Err(_) => Vec::new(),
            },
            #[cfg(feature = "sim")]
            Files::Sim(fs) => fs.list_dir(dir).unwrap_or_default(),
        }
    }

    /// A whole snapshot file, as shared bytes: mapped on the real file
    /// system, read on the simulated one. On the real file system a
    /// symlink is refused: a planted link must not make the engine read a
    /// file outside the data directory. (The simulated file system has no
    /// links.)
    pub(crate) fn read_snapshot(
        &self,
        path: &Path,
    ) -> io::Result<runlog_projections::SnapshotFile> {
        match self {
            Files::Real => fsutil::map_regular_snapshot(path),
            #[cfg(feature = "sim")]
            Files::Sim(fs) => Ok(Arc::new(fs.read_all(path)?)),
        }
    }

    /// Removes a file.
    pub(crate) fn remove(&self, path: &Path) -> io::Result<()> {
        match self {
            Files::Real => std::fs::remove_file(path),
            #[cfg(feature = "sim")]
            Files::Sim(fs) => fs.remove_file(path),
        }
    }

    /// Makes the entries of `dir` durable (fsync of the directory).
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self {
            Files::Real => fsutil::sync_dir(dir),
            #[cfg(feature = "sim")]
            Files::Sim(fs) => fs.sync_dir(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Files;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("runlog-engine-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// The real file system still refuses a planted symlink where a
    /// snapshot should be, and still writes a file it reads back.
    #[test]
    fn real_files_refuse_a_symlinked_snapshot() {
        let dir = temp_dir("symlink");
        let files = Files::Real;
        let path = dir.join("00000000000000000001.snap");
        files
            .write_durably(&dir, &dir.join("x.tmp"), &path, &[b"head", b"body"])
            .map_err(|f| f.source)
            .expect("write");
        let read = files.read_snapshot(&path).expect("read");
        assert_eq!((*read).as_ref(), b"headbody");
        assert_eq!(files.list(&dir), vec!["00000000000000000001.snap"]);

        let outside = dir.join("outside");
        std::fs::write(&outside, b"secret").expect("write outside");
        let link = dir.join("00000000000000000002.snap");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let err = files
            .read_snapshot(&link)
            .err()
            .expect("a symlink is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
