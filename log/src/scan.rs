//! Walking the bytes of segments: the cursor that validates each record in
//! its context, the classification of a segment's end (clean, torn,
//! corrupt), and the helpers readers and recovery share.

use std::collections::BTreeMap;
use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{
    self, FLAG_END_OF_BATCH, FLAGS_KNOWN, Frame, HeaderError, RECORD_HEADER_LEN, RawRecord,
    SEGMENT_HEADER_LEN, SegmentHeader,
};
use crate::fs::{Fs, SegmentBytes};
use crate::index_file::{self, IndexPoint};
use crate::{CorruptionKind, LogError, Lsn};

/// The name of the directory holding segments.
pub(crate) const SEGMENTS_DIR: &str = "segments";
const SEGMENT_EXT: &str = ".seg";
pub(crate) const TEMP_EXT: &str = ".tmp";

pub(crate) fn segment_file_name(base: Lsn) -> String {
    format!("{base:020}{SEGMENT_EXT}")
}

/// Parses `<20 digits>.seg`; anything else is not a segment.
pub(crate) fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(SEGMENT_EXT)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment file known by its base LSN (from its name).
#[derive(Clone, Debug)]
pub(crate) struct SegRef {
    pub base: Lsn,
    pub path: PathBuf,
    /// Bytes already loaded (a reader's copy of the last segment), if any.
    pub bytes: Option<SegmentBytes>,
    /// How many bytes to map; `None` means the file's length when loaded.
    pub len: Option<u64>,
}

/// Lists the segments of `seg_dir`, sorted by base LSN.
pub(crate) fn list_segments(fs: &dyn Fs, seg_dir: &Path) -> Result<Vec<SegRef>, LogError> {
    let names = fs
        .list_dir(seg_dir)
        .map_err(|e| LogError::io(seg_dir, "list directory", e))?;
    let mut segs: Vec<SegRef> = names
        .iter()
        .filter_map(|n| {
            parse_segment_name(n).map(|base| SegRef {
                base,
                path: seg_dir.join(n),
                bytes: None,
                len: None,
            })
        })
        .collect();
    // A segment is read whole and, for the last, written and truncated: a
    // link could point it anywhere (a FIFO or /dev/zero would hang a reader
    // or exhaust its memory), so only regular files are segments.
    for s in &segs {
        let what = fs
            .not_regular(&s.path)
            .map_err(|e| LogError::io(&s.path, "stat", e))?;
        if let Some(found) = what {
            return Err(LogError::NotRegularFile {
                path: s.path.clone(),
                found,
            });
        }
    }
    segs.sort_by_key(|s| s.base);
    Ok(segs)
}

pub(crate) fn load(fs: &dyn Fs, seg: &SegRef) -> Result<SegmentBytes, LogError> {
    if let Some(b) = &seg.bytes {
        return Ok(b.clone());
    }
    let len = match seg.len {
        Some(l) => l,
        None => fs
            .file_len(&seg.path)
            .map_err(|e| LogError::io(&seg.path, "stat", e))?,
    };
    fs.map(&seg.path, len)
        .map_err(|e| LogError::io(&seg.path, "map", e))
}

/// Decodes a segment's header and checks it against its file name.
pub(crate) fn check_header(
    path: &Path,
    name_base: Lsn,
    data: &[u8],
) -> Result<SegmentHeader, LogError> {
    let h = format::decode_segment_header(data).map_err(|e| match e {
        HeaderError::Newer(version) => LogError::NewerFormat {
            path: path.to_owned(),
            version,
            supported: format::FORMAT_VERSION,
        },
        HeaderError::Corrupt(detail) => corruption(path, 0, name_base, detail),
    })?;
    if h.base_lsn != name_base {
        return Err(corruption(
            path,
            0,
            name_base,
            CorruptionKind::BadHeader {
                reason: format!(
                    "the file name says base LSN {name_base}, the header says {}",
                    h.base_lsn
                ),
            },
        ));
    }
    Ok(h)
}

pub(crate) fn corruption(path: &Path, offset: u64, lsn: Lsn, detail: CorruptionKind) -> LogError {
    LogError::Corruption {
        segment: path.to_owned(),
        offset,
        lsn,
        detail,
    }
}

/// Where a walk through one segment stands.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    /// Offset of the next record.
    pub off: usize,
    /// LSN the next record must have.
    pub lsn: Lsn,
    /// Checksum the next record must chain to.
    pub prev: u32,
    /// Offset just past the last record that ended a batch (or the header).
    pub batch_end_off: usize,
    /// LSN after that record: the first LSN of the open batch.
    pub batch_end_lsn: Lsn,
    /// Checksum of that record (or the header's chain value).
    pub batch_end_crc: u32,
}

impl Cursor {
    /// Why a segment whose header is `next` cannot follow the segment this
    /// cursor ended: its base LSN leaves a gap, or its chain value is not
    /// this segment's last checksum. `None` when it continues it.
    pub(crate) fn continued_by(&self, next: &SegmentHeader) -> Option<CorruptionKind> {
        if next.base_lsn != self.lsn {
            Some(CorruptionKind::LsnGap {
                expected: self.lsn,
                found: next.base_lsn,
            })
        } else if next.chain != self.prev {
            Some(CorruptionKind::ChainBroken {
                expected: self.prev,
                found: next.chain,
            })
        } else {
            None
        }
    }
}

/// A bad record found by the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bad {
    pub offset: u64,
    pub lsn: Lsn,
    pub kind: CorruptionKind,
}

impl Bad {
    pub(crate) fn into_error(self, path: &Path) -> LogError {
        corruption(path, self.offset, self.lsn, self.kind)
    }
}

impl Cursor {
    pub(crate) fn at_start(h: &SegmentHeader) -> Cursor {
        Cursor {
            off: SEGMENT_HEADER_LEN,
            lsn: h.base_lsn,
            prev: h.chain,
            batch_end_off: SEGMENT_HEADER_LEN,
            batch_end_lsn: h.base_lsn,
            batch_end_crc: h.chain,
        }
    }

    /// True when the cursor sits between batches.
    pub(crate) fn at_batch_boundary(&self) -> bool {
        self.lsn == self.batch_end_lsn
    }

    /// Steps over the next record if it is whole, its checksum holds, and it
    /// is what this cursor expects next: this LSN (never `Lsn::MAX`), chained
    /// to this checksum, no unknown flag, at this batch position. The hot
    /// path of every walk. `None` leaves the cursor where it was, at the end
    /// of `data` or at a record [`Cursor::step`] will say is wrong.
    #[inline(always)]
    pub(crate) fn advance(&mut self, data: &[u8], max: u32) -> Option<Frame> {
        let f = format::valid_frame(data, self.off, max)?;
        let position = self.lsn.wrapping_sub(self.batch_end_lsn);
        if f.lsn != self.lsn
            || f.lsn == Lsn::MAX
            || f.prev != self.prev
            || f.flags & !FLAGS_KNOWN != 0
            || u64::from(f.batch_index) != position
        {
            return None;
        }
        self.off = f.end;
        // Cannot overflow: a record claiming Lsn::MAX was refused above.
        self.lsn = self.lsn.wrapping_add(1);
        self.prev = f.crc;
        if f.flags & FLAG_END_OF_BATCH != 0 {
            self.batch_end_off = f.end;
            self.batch_end_lsn = self.lsn;
            self.batch_end_crc = f.crc;
        }
        Some(f)
    }

    /// Validates and steps over the next record. `Ok(None)` at the exact end
    /// of `data`.
    #[inline]
    pub(crate) fn step<'a>(
        &mut self,
        data: &'a [u8],
        max: u32,
    ) -> Result<Option<RawRecord<'a>>, Bad> {
        let start = self.off;
        if let Some(f) = self.advance(data, max) {
            let payload_start = start + RECORD_HEADER_LEN;
            return Ok(Some(RawRecord {
                crc: f.crc,
                prev: f.prev,
                flags: f.flags,
                lsn: f.lsn,
                batch_index: f.batch_index,
                payload_start,
                // In bounds: `valid_frame` found the whole record in `data`.
                payload: data.get(payload_start..f.end).unwrap_or(&[]),
                end: f.end,
            }));
        }
        self.step_checked(data, max)
    }

    /// [`Cursor::step`] the long way, every check spelled out with its
    /// error: taken only at the end of the bytes or at a bad record.
    #[cold]
    #[inline(never)]
    fn step_checked<'a>(&mut self, data: &'a [u8], max: u32) -> Result<Option<RawRecord<'a>>, Bad> {
        if self.off >= data.len() {
            return Ok(None);
        }
        let bad = |kind| Bad {
            offset: self.off as u64,
            lsn: self.lsn,
            kind,
        };
        let r = format::parse_record(data, self.off, max).map_err(bad)?;
        if r.lsn == Lsn::MAX {
            return Err(bad(CorruptionKind::LsnExhausted { lsn: r.lsn }));
        }
        if r.lsn != self.lsn {
            return Err(bad(CorruptionKind::LsnGap {
                expected: self.lsn,
                found: r.lsn,
            }));
        }
        if r.prev != self.prev {
            return Err(bad(CorruptionKind::ChainBroken {
                expected: self.prev,
                found: r.prev,
            }));
        }
        if r.flags & !FLAGS_KNOWN != 0 {
            return Err(bad(CorruptionKind::BadFlags { flags: r.flags }));
        }
        let position = self.lsn.wrapping_sub(self.batch_end_lsn);
        if u64::from(r.batch_index) != position {
            return Err(bad(CorruptionKind::BatchMismatch {
                expected: position,
                found: r.batch_index,
            }));
        }
        self.off = r.end;
        // Cannot overflow: a record claiming Lsn::MAX was refused above.
        self.lsn = self.lsn.wrapping_add(1);
        self.prev = r.crc;
        if r.flags & FLAG_END_OF_BATCH != 0 {
            self.batch_end_off = r.end;
            self.batch_end_lsn = self.lsn;
            self.batch_end_crc = r.crc;
        }
        Ok(Some(r))
    }
}

/// How a segment's bytes end.
#[derive(Clone, Debug)]
pub(crate) enum Ending {
    /// The last batch is complete: either the last byte ends it, or (last
    /// segment only) only zeros follow it, space the writer preallocated.
    Clean,
    /// An incomplete last batch with nothing valid after it.
    Torn,
    /// A bad record with a later batch after it, or any damage in a sealed
    /// segment.
    Corrupt(Bad),
}

/// The result of walking a whole segment. `cursor` stands at the end of the
/// last complete batch.
#[derive(Clone, Debug)]
pub(crate) struct SegmentScan {
    pub cursor: Cursor,
    pub ending: Ending,
    /// Valid records after the last complete batch.
    pub records_dropped: u64,
}

/// Walks every record of a segment. `last` says whether it is the log's last
/// segment, the only place a torn tail can be.
pub(crate) fn scan_segment(data: &[u8], h: &SegmentHeader, max: u32, last: bool) -> SegmentScan {
    scan_segment_with(data, h, max, last, |_| {})
}

/// [`scan_segment`], calling `checked(offset)` for each record it checked
/// and stepped over, in order (record `base + i` is the `i`-th call), so
/// that the walk at open can seed a [`SegIndex`] with
/// [`SegIndex::from_scan`] instead of the index walking the segment again.
pub(crate) fn scan_segment_with(
    data: &[u8],
    h: &SegmentHeader,
    max: u32,
    last: bool,
    mut checked: impl FnMut(usize),
) -> SegmentScan {
    let mut c = Cursor::at_start(h);
    let failure = loop {
        let off = c.off;
        if c.advance(data, max).is_some() {
            checked(off);
            continue;
        }
        match c.step_checked(data, max) {
            Ok(Some(_)) => checked(off),
            Ok(None) => break None,
            Err(bad) => break Some(bad),
        }
    };
    let records_dropped = c.lsn.wrapping_sub(c.batch_end_lsn);
    // Zeros and nothing else after the last complete batch of the last
    // segment are space the writer preallocated (FORMAT.md, "Preallocated
    // space"): the end of the log, not damage. With nothing but zeros there,
    // no valid data can follow.
    let unused_space = last
        && matches!(&failure, Some(bad) if matches!(bad.kind, CorruptionKind::Zeroed)
            && bad.offset == c.batch_end_off as u64)
        && all_zero(data.get(c.batch_end_off..).unwrap_or(&[]));
    let ending = match failure {
        _ if unused_space => Ending::Clean,
        None if c.at_batch_boundary() => Ending::Clean,
        None if last => Ending::Torn,
        None => Ending::Corrupt(Bad {
            offset: c.off as u64,
            lsn: c.lsn,
            kind: CorruptionKind::IncompleteBatch,
        }),
        Some(bad) if !last || !could_be_torn(&bad.kind) => Ending::Corrupt(bad),
        // A whole, checksummed record longer than this reader's limit was
        // written by a writer with a larger limit: refuse, never cut it.
        Some(bad) if whole_frame_over_limit(data, &bad) => Ending::Corrupt(bad),
        Some(bad) => {
            // usize offsets: bad.offset came from a usize.
            let from = usize::try_from(bad.offset).unwrap_or(usize::MAX);
            if later_batch_exists(data, from, bad.lsn, c.batch_end_lsn, max) {
                Ending::Corrupt(bad)
            } else {
                Ending::Torn
            }
        }
    };
    c.off = c.batch_end_off;
    c.lsn = c.batch_end_lsn;
    c.prev = c.batch_end_crc;
    SegmentScan {
        cursor: c,
        ending,
        records_dropped,
    }
}

/// True if every byte is zero. Compares 16 bytes at a time: a preallocated
/// tail, or a sparse one, may be many megabytes.
pub(crate) fn all_zero(bytes: &[u8]) -> bool {
    let (wide, rest) = bytes.as_chunks::<16>();
    wide.iter().all(|w| u128::from_ne_bytes(*w) == 0) && rest.iter().all(|&b| b == 0)
}

/// Could a crash during a write have produced this? Only a frame that does
/// not parse or checksum can be a torn write. A frame whose checksum holds
/// but whose LSN, chain link, flags or batch position is wrong was written
/// whole and is wrong: that is corruption (or tampering), wherever it is.
fn could_be_torn(kind: &CorruptionKind) -> bool {
    matches!(
        kind,
        CorruptionKind::Truncated { .. }
            | CorruptionKind::Zeroed
            | CorruptionKind::ChecksumMismatch { .. }
            | CorruptionKind::LengthTooLarge { .. }
    )
}

/// True if the bad record is only "too long for `record_size_max`" but is
/// otherwise a whole frame whose checksum holds. Reads only bytes already in
/// memory; allocates nothing.
fn whole_frame_over_limit(data: &[u8], bad: &Bad) -> bool {
    if !matches!(bad.kind, CorruptionKind::LengthTooLarge { .. }) {
        return false;
    }
    let off = usize::try_from(bad.offset).unwrap_or(usize::MAX);
    format::parse_record(data, off, u32::MAX).is_ok()
}

/// Is there, somewhere after a bad record at `from` (which should have had
/// LSN `expected`), a valid record of a batch *later* than the open one
/// (whose first LSN is `open_batch`)? If so the bad bytes are damage in the
/// middle of the log, not a torn tail. Valid records of the open batch itself
/// do not count: a flip in the last batch is still a torn last batch.
///
/// A record is valid here if its own checksum holds (seeded with the `prev`
/// it stores). Candidates are filtered cheaply first: an LSN in the range
/// the remaining bytes could hold, a length within limits, no zero header.
fn later_batch_exists(data: &[u8], from: usize, expected: Lsn, open_batch: Lsn, max: u32) -> bool {
    let room = (data.len().saturating_sub(from) / RECORD_HEADER_LEN) as u64 + 1;
    let last_start = data.len().saturating_sub(RECORD_HEADER_LEN);
    let mut q = from + 1;
    while q <= last_start {
        // A header of 28 zero bytes is never a record (its checksum cannot
        // hold), so a run of zeros — a zero-filled or sparse tail, possibly
        // gigabytes — is crossed at memory speed, not one offset at a time.
        if data[q] == 0 && data[q..q + RECORD_HEADER_LEN].iter().all(|&b| b == 0) {
            match data[q..].iter().position(|&b| b != 0) {
                // The first header that can hold this non-zero byte.
                Some(z) => q += z + 1 - RECORD_HEADER_LEN,
                None => break,
            }
            continue;
        }
        if let Some((lsn, index, len)) = format::peek_lsn_index(data, q) {
            let plausible = lsn >= expected
                && lsn - expected <= room
                && u64::from(index) <= lsn
                && len <= max
                && (len as usize) <= data.len() - q - RECORD_HEADER_LEN;
            if plausible
                && let Ok(r) = format::parse_record(data, q, max)
                && r.lsn - u64::from(r.batch_index) != open_batch
            {
                return true;
            }
        }
        q += 1;
    }
    false
}

/// A pull-style walk over records `from..end` across segments, checking
/// every record, the chain between segments and LSN continuity.
pub(crate) struct Walker {
    fs: Arc<dyn Fs>,
    segs: Vec<SegRef>,
    next_seg: usize,
    cur: Option<(SegmentBytes, PathBuf)>,
    cursor: Cursor,
    from: Lsn,
    end: Lsn,
    max: u32,
}

impl Walker {
    /// `segs` must be sorted and non-empty when `from < end`; the walk starts
    /// in the last segment whose base is at most `from`.
    pub(crate) fn new(fs: Arc<dyn Fs>, segs: Vec<SegRef>, from: Lsn, end: Lsn, max: u32) -> Walker {
        let start = segs.iter().rposition(|s| s.base <= from).unwrap_or(0);
        let cursor = Cursor {
            off: 0,
            lsn: from,
            prev: 0,
            batch_end_off: 0,
            batch_end_lsn: from,
            batch_end_crc: 0,
        };
        Walker {
            fs,
            segs,
            next_seg: start,
            cur: None,
            cursor,
            from,
            end,
            max,
        }
    }

    /// Starts the walk at `from` from `idx`, the index of the segment the
    /// walk starts in, instead of walking that segment from its start to
    /// `from`; see [`SegIndex::cursor_at`] for how the first record returned
    /// is still checked and chained exactly as the walk from the start would
    /// check it. Does nothing (the walk starts at the segment's start, as
    /// without an index) unless `from` lies after that segment's first
    /// record, the walk has not begun, `idx` is that segment's and covers
    /// as many bytes as the walk would load, and `idx` finds a start.
    pub(crate) fn start_from_index(&mut self, idx: &mut SegIndex) {
        if self.cur.is_some() || self.from >= self.end {
            return;
        }
        let Some(seg) = self.segs.get(self.next_seg) else {
            return;
        };
        let covered = seg.len.is_none_or(|len| idx.len() >= len);
        if seg.base != idx.base || self.from <= seg.base || !covered {
            return;
        }
        if let Some(cursor) = idx.cursor_at(self.from, self.max) {
            self.cur = Some((idx.bytes.clone(), seg.path.clone()));
            self.cursor = cursor;
            self.next_seg += 1;
        }
    }

    /// The segment the walk starts in, if [`Walker::start_from_index`]
    /// could start it after that segment's first record.
    pub(crate) fn start_segment(&self) -> Option<&SegRef> {
        let seg = self.segs.get(self.next_seg)?;
        (self.cur.is_none() && self.from < self.end && seg.base < self.from).then_some(seg)
    }

    /// The bytes of the current segment; ranges from `next` index into it.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |(b, _)| b)
    }

    fn open_next(&mut self) -> Result<(), LogError> {
        let first = self.cur.is_none();
        let Some(seg) = self.segs.get(self.next_seg).cloned() else {
            let path = self
                .cur
                .as_ref()
                .map(|(_, p)| p.clone())
                .unwrap_or_default();
            return Err(corruption(
                &path,
                self.cursor.off as u64,
                self.cursor.lsn,
                CorruptionKind::MissingRecords {
                    expected: self.end,
                    found: self.cursor.lsn,
                },
            ));
        };
        self.next_seg += 1;
        let bytes = load(self.fs.as_ref(), &seg)?;
        let h = check_header(&seg.path, seg.base, &bytes)?;
        if !first {
            if h.base_lsn != self.cursor.lsn {
                return Err(corruption(
                    &seg.path,
                    0,
                    self.cursor.lsn,
                    CorruptionKind::LsnGap {
                        expected: self.cursor.lsn,
                        found: h.base_lsn,
                    },
                ));
            }
            if h.chain != self.cursor.prev {
                return Err(corruption(
                    &seg.path,
                    0,
                    self.cursor.lsn,
                    CorruptionKind::ChainBroken {
                        expected: self.cursor.prev,
                        found: h.chain,
                    },
                ));
            }
        }
        self.cursor = Cursor::at_start(&h);
        self.cur = Some((bytes, seg.path));
        Ok(())
    }

    /// Makes the current segment one with records left to walk: at the end
    /// of a segment, checks that it ended a batch and opens the next one
    /// (checking that it continues this one). `false` at the end of the
    /// walk.
    fn ensure_segment(&mut self) -> Result<bool, LogError> {
        loop {
            if self.cur.is_some() && self.cursor.lsn >= self.end {
                return Ok(false);
            }
            if self.cur.is_none() && self.from >= self.end {
                return Ok(false);
            }
            let exhausted = match &self.cur {
                None => true,
                Some((b, _)) => self.cursor.off >= b.len(),
            };
            if !exhausted {
                return Ok(true);
            }
            if let Some((_, path)) = &self.cur
                && !self.cursor.at_batch_boundary()
            {
                return Err(corruption(
                    path,
                    self.cursor.off as u64,
                    self.cursor.lsn,
                    CorruptionKind::IncompleteBatch,
                ));
            }
            self.open_next()?;
        }
    }

    /// The next record at or after `from`, as its LSN and payload range.
    pub(crate) fn next(&mut self) -> Result<Option<(Lsn, Range<usize>)>, LogError> {
        loop {
            if !self.ensure_segment()? {
                return Ok(None);
            }
            let Some((bytes, path)) = &self.cur else {
                continue;
            };
            if let Some(rec) = take(bytes, &mut self.cursor, self.from, self.end, self.max)
                .map_err(|bad| bad.into_error(path))?
            {
                return Ok(Some(rec));
            }
        }
    }

    /// Walks to the end, handing `f` the records of one segment at a time
    /// (see [`SegmentRecords`]). Stops early, with `Ok`, when `f` breaks.
    pub(crate) fn scan_segments(
        mut self,
        mut f: impl FnMut(&mut SegmentRecords<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        while self.ensure_segment()? {
            let Some((bytes, path)) = &self.cur else {
                return Ok(());
            };
            let mut records = SegmentRecords {
                data: bytes,
                path,
                cursor: self.cursor,
                from: self.from,
                end: self.end,
                max: self.max,
                error: None,
            };
            if f(&mut records).is_break() {
                return Ok(());
            }
            // What `f` did not take is still checked: the walk never skips
            // a record unchecked.
            while records.next().is_some() {}
            if let Some(e) = records.error {
                return Err(e);
            }
            self.cursor = records.cursor;
        }
        Ok(())
    }
}

/// Checks the next record of `data` at `cursor` and steps over it, skipping
/// records below `from`: the record's LSN and payload range, `None` at the
/// end of the bytes or at `end`, or why the record is bad.
#[inline(always)]
fn take(
    data: &[u8],
    cursor: &mut Cursor,
    from: Lsn,
    end: Lsn,
    max: u32,
) -> Result<Option<(Lsn, Range<usize>)>, Bad> {
    while cursor.lsn < end {
        match cursor.step(data, max)? {
            Some(r) if r.lsn >= from => return Ok(Some((r.lsn, r.payload_start..r.end))),
            Some(_) => {}
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The records of one segment, handed out by `Log::scan_segments` and
/// `LogReader::scan_segments`: an iterator of `(lsn, payload)` that checks
/// each record as it is taken, exactly as `scan` does. The payloads borrow
/// the segment's bytes for as long as this value is borrowed, so a caller
/// may hand them to another thread (`std::thread::scope`) and keep them
/// past the next call to [`Iterator::next`].
///
/// A bad record ends the iteration; the walk then returns its error, unless
/// the callback broke first (it stopped before that record, as far as the
/// walk is concerned).
pub struct SegmentRecords<'s> {
    data: &'s [u8],
    path: &'s Path,
    cursor: Cursor,
    from: Lsn,
    end: Lsn,
    max: u32,
    error: Option<LogError>,
}

impl SegmentRecords<'_> {
    /// Bytes of this segment not yet walked: a measure of the work left in
    /// it, for a caller deciding whether another thread would pay.
    pub fn bytes_left(&self) -> usize {
        self.data.len().saturating_sub(self.cursor.off)
    }
}

impl std::fmt::Debug for SegmentRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentRecords")
            .field("segment", &self.path)
            .field("next_lsn", &self.cursor.lsn)
            .finish_non_exhaustive()
    }
}

impl<'s> Iterator for SegmentRecords<'s> {
    type Item = (Lsn, &'s [u8]);

    #[inline]
    fn next(&mut self) -> Option<(Lsn, &'s [u8])> {
        if self.error.is_some() {
            return None;
        }
        let data = self.data;
        match take(data, &mut self.cursor, self.from, self.end, self.max) {
            // In bounds: `take` found the whole record in `data`.
            Ok(Some((lsn, range))) => Some((lsn, data.get(range).unwrap_or(&[]))),
            Ok(None) => None,
            Err(bad) => {
                self.error = Some(bad.into_error(self.path));
                None
            }
        }
    }
}

/// A [`SegIndex`]'s base LSN, and the offsets and cursor (offset, LSN,
/// chain, and the same three at the last batch end) of its walk from the
/// segment's start, for tests that compare indexes.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexState {
    pub base: Lsn,
    pub offsets: Vec<usize>,
    pub cursor: [u64; 6],
    /// Index points it holds, to start walks from.
    pub points: usize,
}

/// Records of one segment located by LSN from one starting point: the
/// segment's start, or a point of its index file.
struct Run {
    /// Where the run starts: between batches, before its first record.
    start: Cursor,
    /// `offsets[i]` is where record `start.lsn + i` starts.
    offsets: Vec<usize>,
    /// Where the walk from `start` stands.
    cursor: Cursor,
}

impl Run {
    fn new(start: Cursor) -> Run {
        Run {
            start,
            offsets: Vec::new(),
            cursor: start,
        }
    }

    /// Walks and indexes records up to and including `upto`, or to the
    /// end of `data`.
    fn index_to(&mut self, data: &[u8], upto: Lsn, max: u32) -> Result<(), Bad> {
        while self.cursor.lsn <= upto {
            let off = self.cursor.off;
            match self.cursor.step(data, max)? {
                Some(_) => self.offsets.push(off),
                None => break,
            }
        }
        Ok(())
    }

    /// Where record `lsn` starts, if this run has indexed it.
    fn offset(&self, lsn: Lsn) -> Option<usize> {
        let i = usize::try_from(lsn.checked_sub(self.start.lsn)?).ok()?;
        self.offsets.get(i).copied()
    }
}

/// One segment's records located by LSN, for repeated single-record reads.
///
/// Records are found by walking the segment, every record checked in
/// context, from its start or, in a sealed segment with an index file
/// (see `index_file`), from the last index point at or before the record:
/// each point used starts a run of its own, walked only as far as reads
/// need. A walk from an index point that fails, or does not reach the
/// record, drops every index point, and the record is looked for from the
/// segment's start: what is found then, and any error, is what a walk
/// from the start finds.
pub(crate) struct SegIndex {
    pub path: PathBuf,
    bytes: SegmentBytes,
    /// The run from the segment's start: it holds the records before the
    /// first index point (all of them, without points).
    start: Run,
    /// Index points after the records `start` has indexed, in increasing
    /// LSN; none for a segment without a usable index file.
    points: Vec<IndexPoint>,
    /// The runs from the points reads have used, by the point's LSN.
    from_points: BTreeMap<Lsn, Run>,
    base: Lsn,
    /// Built from the whole of a sealed segment (it will not grow); see
    /// [`SegIndex::seal`].
    sealed: bool,
}

impl SegIndex {
    /// True once [`SegIndex::seal`] was called.
    pub(crate) fn sealed(&self) -> bool {
        self.sealed
    }

    pub(crate) fn new(path: PathBuf, base: Lsn, bytes: SegmentBytes) -> Result<SegIndex, LogError> {
        let h = check_header(&path, base, &bytes)?;
        Ok(SegIndex {
            path,
            bytes,
            start: Run::new(Cursor::at_start(&h)),
            points: Vec::new(),
            from_points: BTreeMap::new(),
            base,
            sealed: false,
        })
    }

    /// The index of the records a [`scan_segment_with`] of this segment,
    /// whose header is `h`, checked: `offsets` as it reported them and
    /// `cursor` as it returned it (at the end of the last whole batch, so
    /// the records of an incomplete batch after it are left out). `bytes`
    /// must hold at least the bytes up to the cursor. The index is the one
    /// [`SegIndex::new`] would build by walking the same bytes; were the
    /// offsets not one per record up to the cursor, it starts empty instead.
    pub(crate) fn from_scan(
        path: PathBuf,
        h: &SegmentHeader,
        bytes: SegmentBytes,
        mut offsets: Vec<usize>,
        cursor: Cursor,
    ) -> SegIndex {
        let start = Cursor::at_start(h);
        let kept = cursor
            .lsn
            .checked_sub(h.base_lsn)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= offsets.len() && cursor.off <= bytes.len());
        let cursor = match kept {
            Some(n) => {
                offsets.truncate(n);
                cursor
            }
            None => {
                offsets.clear();
                start
            }
        };
        SegIndex {
            path,
            bytes,
            start: Run {
                start,
                offsets,
                cursor,
            },
            points: Vec::new(),
            from_points: BTreeMap::new(),
            base: h.base_lsn,
            sealed: false,
        }
    }

    /// Marks this the index of a sealed segment, whose bytes are now all
    /// there, and takes the points of its index file, if it has a usable
    /// one, as places to start walks from (the file describes the segment
    /// as it was sealed, so an active segment's index takes none). Points
    /// at records the walk from the start has already indexed are not
    /// needed.
    pub(crate) fn seal(&mut self, fs: &dyn Fs) {
        self.sealed = true;
        let mut points = index_file::read(fs, &self.path, self.base, self.len());
        let walked = self.start.cursor.lsn;
        points.retain(|p| p.lsn > walked);
        self.points = points;
        self.from_points.clear();
    }

    /// What the walk from the segment's start knows, for tests that
    /// compare two indexes.
    #[cfg(test)]
    pub(crate) fn state(&self) -> IndexState {
        let run = &self.start;
        let c = &run.cursor;
        IndexState {
            base: self.base,
            offsets: run.offsets.clone(),
            cursor: [
                c.off as u64,
                c.lsn,
                u64::from(c.prev),
                c.batch_end_off as u64,
                c.batch_end_lsn,
                u64::from(c.batch_end_crc),
            ],
            points: self.points.len(),
        }
    }

    /// Number of bytes this index has seen.
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Swaps in a longer view of the same file (the writer's active segment
    /// grows) and keeps the work already done.
    pub(crate) fn grow(&mut self, bytes: SegmentBytes) {
        if bytes.len() > self.bytes.len() {
            self.bytes = bytes;
        }
    }

    /// Indexes record `lsn`, if the segment holds it, and returns the run
    /// that holds it: `Some(point's LSN)` for the run from an index point,
    /// `None` for the run from the segment's start (also when the segment
    /// does not hold `lsn`). See [`SegIndex`] for the walk from an index
    /// point that fails.
    fn locate(&mut self, lsn: Lsn, max: u32) -> Result<Option<Lsn>, LogError> {
        let before = self.points.partition_point(|p| p.lsn <= lsn);
        if let Some(point) = before.checked_sub(1).and_then(|i| self.points.get(i)) {
            if let Some(start) = point.cursor() {
                let run = self
                    .from_points
                    .entry(point.lsn)
                    .or_insert_with(|| Run::new(start));
                if run.index_to(&self.bytes, lsn, max).is_ok() && run.offset(lsn).is_some() {
                    return Ok(Some(start.lsn));
                }
            }
            self.points.clear();
            self.from_points.clear();
        }
        self.start
            .index_to(&self.bytes, lsn, max)
            .map_err(|bad| bad.into_error(&self.path))?;
        Ok(None)
    }

    /// The run `locate` named.
    fn run(&self, run: Option<Lsn>) -> Option<&Run> {
        match run {
            None => Some(&self.start),
            Some(point) => self.from_points.get(&point),
        }
    }

    /// The payload of `lsn`, re-checked on every read.
    pub(crate) fn payload(&mut self, lsn: Lsn, max: u32) -> Result<Option<&[u8]>, LogError> {
        let i = self.locate(lsn, max)?;
        Ok(self.record(i, lsn, max)?.map(|r| r.payload))
    }

    /// Where a walk whose first record is `lsn` (after the segment's first
    /// record) starts: the cursor a walk from the segment's start would
    /// stand at just before `lsn`, found from the index, not by a walk.
    ///
    /// The chain is not taken on trust: the record before `lsn` is read at
    /// its indexed offset and checksummed again, and must be `lsn - 1`;
    /// its checksum is the `prev` that `lsn` must chain to, its end is where
    /// `lsn` must start, and its batch position (and the record that ended
    /// the batch before, read and checked the same way, or the start of the
    /// run the batch begins) gives the batch state `lsn`'s position is
    /// checked against. So the walk checks `lsn` and every record after it
    /// exactly as a walk from the start does. `None` (walk from the start,
    /// which reports any damage as it always did) if the records up to
    /// `lsn - 1` cannot be indexed or read back as indexed.
    pub(crate) fn cursor_at(&mut self, lsn: Lsn, max: u32) -> Option<Cursor> {
        let before = lsn.checked_sub(1).filter(|b| *b >= self.base)?;
        let i = self.locate(before, max).ok()?;
        let start = self.run(i)?.start;
        let r = self.record(i, before, max).ok()??;
        // A run's walk checks batch positions from its start, which is
        // between batches: the batch of `before` begins in the same run.
        let batch_end_lsn = if r.flags & FLAG_END_OF_BATCH != 0 {
            lsn
        } else {
            before
                .checked_sub(u64::from(r.batch_index))
                .filter(|s| *s >= start.lsn)?
        };
        let (batch_end_off, batch_end_crc) = if batch_end_lsn == lsn {
            (r.end, r.crc)
        } else if batch_end_lsn == start.lsn {
            (start.off, start.prev)
        } else {
            let b = self.record(i, batch_end_lsn - 1, max).ok()??;
            if b.flags & FLAG_END_OF_BATCH == 0 {
                return None;
            }
            (b.end, b.crc)
        };
        Some(Cursor {
            off: r.end,
            lsn,
            prev: r.crc,
            batch_end_off,
            batch_end_lsn,
            batch_end_crc,
        })
    }

    /// Record `lsn` as run `run` (see [`SegIndex::locate`]) indexed it,
    /// parsed and checksummed again; `None` if that run has not indexed it.
    fn record(
        &self,
        run: Option<Lsn>,
        lsn: Lsn,
        max: u32,
    ) -> Result<Option<RawRecord<'_>>, LogError> {
        let Some(off) = self.run(run).and_then(|r| r.offset(lsn)) else {
            return Ok(None);
        };
        let r = format::parse_record(&self.bytes, off, max)
            .map_err(|kind| corruption(&self.path, off as u64, lsn, kind))?;
        if r.lsn != lsn {
            return Err(corruption(
                &self.path,
                off as u64,
                lsn,
                CorruptionKind::LsnGap {
                    expected: lsn,
                    found: r.lsn,
                },
            ));
        }
        Ok(Some(r))
    }
}
