//! Read-only access: `LogReader` (no lock, never writes, works beside a live
//! writer), the owned-record iterator, and verify.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::format::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::fs::{Fs, RealFs, SegmentBytes};
use crate::scan::{
    self, Ending, SEGMENTS_DIR, SegIndex, SegRef, SegmentRecords, Walker, check_header,
};
use crate::{LogError, LogOptions, Lsn, Record, TornTail, VerifyOutcome, VerifyReport};

/// Reads one byte of every 4 KiB page of `bytes`, so that the kernel maps
/// the pages of a freshly mapped segment (each fault maps a page and, with
/// Linux's fault-around, its neighbours) on this thread rather than on the
/// one that checks the segment. Harmless on bytes already in memory.
fn prefault(bytes: &[u8]) {
    const PAGE_LEN: usize = 4096;
    let mut x = 0u8;
    for b in bytes.iter().step_by(PAGE_LEN) {
        x ^= *b;
    }
    std::hint::black_box(x);
}

/// Waits for a helper thread's [`scan::load`] of `seg`.
fn join_load(
    helper: std::thread::ScopedJoinHandle<'_, Result<SegmentBytes, LogError>>,
    seg: &SegRef,
) -> Result<SegmentBytes, LogError> {
    helper.join().unwrap_or_else(|_| {
        Err(LogError::io(
            &seg.path,
            "map",
            std::io::Error::other("the thread mapping this segment panicked"),
        ))
    })
}

/// Owned records in LSN order. After an error it yields nothing more.
pub struct Records {
    walker: Walker,
    done: bool,
}

impl Records {
    pub(crate) fn new(walker: Walker) -> Records {
        Records {
            walker,
            done: false,
        }
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Iterator for Records {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.walker.next() {
            Ok(Some((lsn, range))) => Some(Ok(Record {
                lsn,
                payload: self.walker.bytes()[range].to_vec(),
            })),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A read-only view of a log: takes no lock and never writes a byte, so it
/// works on a copy, on a log a live writer is appending to, or on read-only
/// media. It sees the log as it was when opened, up to the last whole batch.
pub struct LogReader {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: LogOptions,
    segs: Vec<SegRef>,
    /// The last segment's whole file as read at open (torn bytes included,
    /// for verify). Held as a copy rather than a map so that a writer that
    /// later cuts a torn tail cannot pull bytes from under a map.
    last_len: u64,
    first: Lsn,
    end: Lsn,
    /// Per-segment record offsets: the last segment's seeded by the walk
    /// at open, the others built on first use.
    index: Mutex<BTreeMap<Lsn, SegIndex>>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.dir)
            .field("first_lsn", &self.first)
            .field("next_lsn", &self.end)
            .finish_non_exhaustive()
    }
}

/// Reads and walks the last segment, where a live writer may be writing.
///
/// A writer fills the zeros it preallocated ahead of its last record while
/// this reader copies the file, and the copy goes page by page: it can hold
/// zeros where a batch was being written and, a page later, batches
/// written just after. The walk then sees zeros with valid records after
/// them, which in a stable file is damage. So a last segment that walks to
/// damage is read again, after a short pause, up to
/// `LAST_SEGMENT_READS` times: a write in flight has landed by then and the
/// walk goes past it; damage on disk is the same every time, and is
/// reported once two reads in a row find it at the same place.
fn read_last_segment(
    fs: &dyn Fs,
    path: &Path,
    base: Lsn,
    options: &LogOptions,
) -> Result<(Vec<u8>, SegmentHeader, scan::SegmentScan, Vec<usize>), LogError> {
    let mut seen: Option<scan::Bad> = None;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let data = fs
            .read_all(path)
            .map_err(|e| LogError::io(path, "read", e))?;
        let h = check_header(path, base, &data)?;
        let mut offsets = Vec::new();
        let s = scan::scan_segment_with(&data, &h, options.record_size_max, true, |off| {
            offsets.push(off);
        });
        let Ending::Corrupt(bad) = s.ending else {
            return Ok((data, h, s, offsets));
        };
        if seen.as_ref() == Some(&bad) || attempt >= LAST_SEGMENT_READS {
            return Err(bad.into_error(path));
        }
        seen = Some(bad);
        std::thread::sleep(Duration::from_millis(u64::from(attempt)));
    }
}

/// Reads of the last segment before damage found in it is believed (see
/// [`read_last_segment`]).
const LAST_SEGMENT_READS: u32 = 5;

impl LogReader {
    /// Opens the log in `dir` read-only. Only `record_size_max` of `options`
    /// matters; a torn tail is simply where the reader's log ends.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<LogReader, LogError> {
        LogReader::open_inner(Arc::new(RealFs), dir.as_ref(), options)
    }

    /// [`LogReader::open`] on a given file system (test support: pass a `SimFs`).
    #[cfg(any(test, feature = "sim"))]
    pub fn open_with(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        options: LogOptions,
    ) -> Result<LogReader, LogError> {
        LogReader::open_inner(fs, dir.as_ref(), options)
    }

    fn open_inner(fs: Arc<dyn Fs>, dir: &Path, options: LogOptions) -> Result<LogReader, LogError> {
        let seg_dir = dir.join(SEGMENTS_DIR);
        let present = fs
            .exists(&seg_dir)
            .map_err(|e| LogError::io(&seg_dir, "stat", e))?;
        if !present {
            return Err(LogError::NotALog {
                path: dir.to_owned(),
                reason: "it has no segments directory".to_owned(),
            });
        }
        let mut segs = scan::list_segments(fs.as_ref(), &seg_dir)?;
        let Some(last) = segs.last_mut() else {
            return Err(LogError::NotALog {
                path: dir.to_owned(),
                reason: "its segments directory holds no segment".to_owned(),
            });
        };
        let (data, h, s, offsets) =
            read_last_segment(fs.as_ref(), &last.path, last.base, &options)?;
        let end = s.cursor.lsn;
        let last_len = data.len() as u64;
        let bytes = SegmentBytes::from_vec(data);
        last.bytes = Some(bytes.clone());
        // The open's walk seeds the last segment's index, so that neither a
        // read nor a scan from inside that segment walks it again.
        let seeded = SegIndex::from_scan(last.path.clone(), &h, bytes, offsets, s.cursor);
        let index = BTreeMap::from([(last.base, seeded)]);
        let n = segs.len();
        for seg in &mut segs[..n - 1] {
            let len = fs
                .file_len(&seg.path)
                .map_err(|e| LogError::io(&seg.path, "stat", e))?;
            let head = fs
                .map(&seg.path, len.min(SEGMENT_HEADER_LEN as u64))
                .map_err(|e| LogError::io(&seg.path, "map", e))?;
            check_header(&seg.path, seg.base, &head)?;
            seg.len = Some(len);
        }
        let first = segs.first().map_or(0, |s| s.base);
        Ok(LogReader {
            fs,
            dir: dir.to_owned(),
            options,
            segs,
            last_len,
            first,
            end,
            index: Mutex::new(index),
        })
    }

    /// The lowest LSN in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.first
    }

    /// One past the last record of the last whole batch seen at open.
    pub fn next_lsn(&self) -> Lsn {
        self.end
    }

    fn check_range(&self, from: Lsn, allow_end: bool) -> Result<(), LogError> {
        if from < self.first || from > self.end || (from == self.end && !allow_end) {
            return Err(LogError::LsnOutOfRange {
                lsn: from,
                first: self.first,
                next: self.end,
            });
        }
        Ok(())
    }

    /// A walk from `from` that starts there from the index of the segment
    /// it starts in; see [`Walker::start_from_index`].
    fn walker(&self, from: Lsn) -> Walker {
        let mut w = Walker::new(
            Arc::clone(&self.fs),
            self.segs.clone(),
            from,
            self.end,
            self.options.record_size_max,
        );
        if let Some(seg) = w.start_segment().cloned() {
            // Any failure to index is left to the walk from the segment's
            // start, which reports it exactly as it did without an index.
            let _ = self.with_index(&seg, |idx| {
                w.start_from_index(idx);
                Ok(())
            });
        }
        w
    }

    /// Owned records from `from` to the end seen at open. A `from` inside a
    /// segment is found from that segment's index, not by walking the
    /// segment from its start; every record returned is checked as by that
    /// walk, chained to the record before it.
    pub fn iter_from(&self, from: Lsn) -> Result<Records, LogError> {
        self.check_range(from, true)?;
        Ok(Records::new(self.walker(from)))
    }

    /// Calls `f` with each record from `from` on, without copying payloads;
    /// stops early when `f` breaks. Starts as [`LogReader::iter_from`] does.
    pub fn scan(
        &self,
        from: Lsn,
        mut f: impl FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        self.check_range(from, true)?;
        let mut w = self.walker(from);
        while let Some((lsn, range)) = w.next()? {
            if f(lsn, &w.bytes()[range]).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// [`LogReader::scan`] one segment at a time: calls `f` with the
    /// records of each segment from `from` on, as an iterator whose payloads
    /// borrow the segment's bytes (see [`SegmentRecords`]); stops early when
    /// `f` breaks. Records `f` leaves untaken are checked before the next
    /// segment.
    pub fn scan_segments(
        &self,
        from: Lsn,
        f: impl FnMut(&mut SegmentRecords<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        self.check_range(from, true)?;
        self.walker(from).scan_segments(f)
    }

    /// One record's payload, from its segment's index of record offsets
    /// (the last segment's seeded by the walk at open).
    pub fn read(&self, lsn: Lsn) -> Result<Vec<u8>, LogError> {
        self.check_range(lsn, false)?;
        let Some(seg) = self.segs.iter().rev().find(|s| s.base <= lsn) else {
            return Err(LogError::LsnOutOfRange {
                lsn,
                first: self.first,
                next: self.end,
            });
        };
        let max = self.options.record_size_max;
        let payload = self.with_index(seg, |idx| Ok(idx.payload(lsn, max)?.map(<[u8]>::to_vec)))?;
        payload.ok_or(LogError::LsnOutOfRange {
            lsn,
            first: self.first,
            next: self.end,
        })
    }

    /// The index of the segment based at `base`, if one is kept.
    #[cfg(test)]
    pub(crate) fn index_state(&self, base: Lsn) -> Option<scan::IndexState> {
        let cache = self.index.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(&base).map(SegIndex::state)
    }

    /// Calls `f` with the index of `seg`, built on first use and kept.
    fn with_index<R>(
        &self,
        seg: &SegRef,
        f: impl FnOnce(&mut SegIndex) -> Result<R, LogError>,
    ) -> Result<R, LogError> {
        let mut cache = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let idx = match cache.entry(seg.base) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let bytes = scan::load(self.fs.as_ref(), seg)?;
                let mut idx = SegIndex::new(seg.path.clone(), seg.base, bytes)?;
                // The last segment's index is seeded at open; any other is
                // of a sealed segment, which may have an index file.
                idx.seal(self.fs.as_ref());
                v.insert(idx)
            }
        };
        f(idx)
    }

    /// Checks every byte: header and record checksums, LSN continuity, the
    /// chain within and across segments, batch framing. Never writes.
    /// `progress(bytes_checked, bytes_total)` is called after each segment.
    ///
    /// Segments are checked one after another, in order, on the calling
    /// thread. While one is checked, a helper thread maps the next, faults
    /// its pages in, and unmaps the one before: the kernel's work per 4 KiB
    /// page costs about a third as much time as checking 128-byte records.
    pub fn verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport, LogError> {
        let max = self.options.record_size_max;
        let mut total = 0u64;
        for s in &self.segs {
            total += s.len.unwrap_or(self.last_len);
        }
        let mut report = VerifyReport {
            segments: 0,
            records: 0,
            bytes: 0,
            next_lsn: self.first,
            outcome: VerifyOutcome::Intact,
        };
        progress(0, total);
        let fs = self.fs.as_ref();
        std::thread::scope(|scope| {
            let mut prev: Option<scan::Cursor> = None;
            let n = self.segs.len();
            let mut ahead = None;
            let mut done: Option<SegmentBytes> = None;
            for (i, seg) in self.segs.iter().enumerate() {
                let is_last = i + 1 == n;
                let bytes = match ahead.take() {
                    Some(helper) => join_load(helper, seg)?,
                    None => scan::load(fs, seg)?,
                };
                if let Some(next) = self.segs.get(i + 1) {
                    let old = done.take();
                    // If no thread can be started, the next segment is
                    // simply mapped when its turn comes.
                    ahead = std::thread::Builder::new()
                        .name("runlog-verify-map".to_owned())
                        .spawn_scoped(scope, move || {
                            // Unmapping costs about as much as mapping; the
                            // helper does both.
                            drop(old);
                            let next = scan::load(fs, next)?;
                            prefault(&next);
                            Ok(next)
                        })
                        .ok();
                }
                report.segments += 1;
                let h = match check_header(&seg.path, seg.base, &bytes) {
                    Ok(h) => h,
                    Err(e) => {
                        report.outcome = VerifyOutcome::Corrupt(e);
                        return Ok(());
                    }
                };
                if let Some(p) = prev {
                    let detail = p.continued_by(&h);
                    if let Some(detail) = detail {
                        report.outcome =
                            VerifyOutcome::Corrupt(scan::corruption(&seg.path, 0, p.lsn, detail));
                        return Ok(());
                    }
                }
                let s = scan::scan_segment(&bytes, &h, max, is_last);
                report.records += s.cursor.lsn.wrapping_sub(h.base_lsn);
                report.next_lsn = s.cursor.lsn;
                report.bytes += bytes.len() as u64;
                progress(report.bytes, total);
                match s.ending {
                    Ending::Clean => {}
                    Ending::Torn => {
                        report.outcome = VerifyOutcome::TornTail(TornTail {
                            segment: seg.path.clone(),
                            offset: s.cursor.off as u64,
                            bytes: bytes.len() as u64 - s.cursor.off as u64,
                            records_dropped: s.records_dropped,
                            side_file: None,
                        });
                    }
                    Ending::Corrupt(bad) => {
                        report.outcome = VerifyOutcome::Corrupt(bad.into_error(&seg.path));
                        return Ok(());
                    }
                }
                prev = Some(s.cursor);
                done = Some(bytes);
            }
            Ok::<(), LogError>(())
        })?;
        Ok(report)
    }
}
