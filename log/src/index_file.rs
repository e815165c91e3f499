//! The sparse index of a sealed segment, kept beside it in
//! `segments/<base>.idx` (FORMAT.md, "Index files"): about every
//! [`INDEX_STEP`] bytes of the segment, the LSN, offset and chain value of
//! a batch's first record, so that a read of one record starts walking near
//! it instead of at the segment's start.
//!
//! The file is a hint and nothing more: never synced, checked on every use,
//! and a missing, torn, stale or lying one costs speed, never a wrong answer
//! (the walk from an index point checks every record it steps over, and any
//! doubt sends the read back to the segment's start).

use std::io;
use std::path::{Path, PathBuf};

use crate::Lsn;
use crate::format::SEGMENT_HEADER_LEN;
use crate::fs::Fs;
use crate::scan::{Cursor, TEMP_EXT};

/// The writer records an index point at the first batch that starts at
/// least this many bytes after the last point (or after the segment's
/// header). A read walks at most about this much of a segment (and one
/// batch) from the point before its record. Unit tests use a small step so
/// that small segments get many points.
pub(crate) const INDEX_STEP: u64 = if cfg!(test) { 256 } else { 64 * 1024 };

/// The first four bytes of an index file.
const INDEX_MAGIC: [u8; 4] = *b"RLIX";
/// The index file version this build writes and the only one it reads.
const INDEX_VERSION: u32 = 1;

// Index file header: each offset follows from the one before.
const IDX_MAGIC: usize = 0;
const IDX_VERSION: usize = IDX_MAGIC + INDEX_MAGIC.len();
const IDX_BASE_LSN: usize = IDX_VERSION + 4;
const IDX_SEGMENT_LEN: usize = IDX_BASE_LSN + 8;
const IDX_COUNT: usize = IDX_SEGMENT_LEN + 8;
const INDEX_HEADER_LEN: usize = IDX_COUNT + 4;

// One index point.
const POINT_LSN: usize = 0;
const POINT_OFF: usize = POINT_LSN + 8;
const POINT_PREV: usize = POINT_OFF + 8;
const POINT_LEN: usize = POINT_PREV + 4;

/// The CRC-32 after the points.
const INDEX_CRC_LEN: usize = 4;

const _: () = assert!(INDEX_HEADER_LEN == 28 && POINT_LEN == 20);
// A point never sits inside the segment header, so the smallest step still
// moves past it.
const _: () = assert!(INDEX_STEP > SEGMENT_HEADER_LEN as u64);

/// A batch's first record, as a walk from the segment's start meets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexPoint {
    /// The record's LSN.
    pub lsn: Lsn,
    /// Its offset in the segment.
    pub off: u64,
    /// The checksum it must chain to: the `crc` of the record before it.
    pub prev: u32,
}

impl IndexPoint {
    /// The cursor a walk from the segment's start stands at just before
    /// this point's record, which starts a batch; `None` if the offset does
    /// not fit this machine's address space.
    pub(crate) fn cursor(&self) -> Option<Cursor> {
        let off = usize::try_from(self.off).ok()?;
        Some(Cursor {
            off,
            lsn: self.lsn,
            prev: self.prev,
            batch_end_off: off,
            batch_end_lsn: self.lsn,
            batch_end_crc: self.prev,
        })
    }
}

/// `segments/<base>.idx` for the segment at `segment` (`<base>.seg`).
pub(crate) fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// Most points a segment of `segment_len` bytes can have: the writer puts
/// them at least [`INDEX_STEP`] bytes apart.
fn points_max(segment_len: u64) -> u64 {
    segment_len / INDEX_STEP + 2
}

/// The bytes of the index file of segment `base`, `segment_len` bytes long.
pub(crate) fn encode(base: Lsn, segment_len: u64, points: &[IndexPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_LEN + points.len() * POINT_LEN + INDEX_CRC_LEN);
    out.extend_from_slice(&INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&segment_len.to_le_bytes());
    // A segment has far fewer points than 2^32 (one per INDEX_STEP bytes).
    let count = u32::try_from(points.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for p in points {
        out.extend_from_slice(&p.lsn.to_le_bytes());
        out.extend_from_slice(&p.off.to_le_bytes());
        out.extend_from_slice(&p.prev.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The points of an index file, if it is the whole, intact index of the
/// segment based at `base` whose length is `segment_len`: magic, version,
/// base, segment length, its exact size for its count, its CRC, and points
/// strictly increasing in LSN and offset, at or after `base` and within
/// the segment's records. `None` (use no points) otherwise.
pub(crate) fn decode(bytes: &[u8], base: Lsn, segment_len: u64) -> Option<Vec<IndexPoint>> {
    if bytes.get(IDX_MAGIC..IDX_VERSION)? != INDEX_MAGIC
        || le_u32(bytes, IDX_VERSION)? != INDEX_VERSION
        || le_u64(bytes, IDX_BASE_LSN)? != base
        || le_u64(bytes, IDX_SEGMENT_LEN)? != segment_len
    {
        return None;
    }
    let count = u64::from(le_u32(bytes, IDX_COUNT)?);
    let crc_at = INDEX_HEADER_LEN + usize::try_from(count).ok()?.checked_mul(POINT_LEN)?;
    if count > points_max(segment_len) || bytes.len() != crc_at.checked_add(INDEX_CRC_LEN)? {
        return None;
    }
    let (covered, stored) = bytes.split_at(crc_at);
    if crc32fast::hash(covered) != le_u32(stored, 0)? {
        return None;
    }
    // `count` is bounded by the segment's length (checked above).
    let mut points: Vec<IndexPoint> = Vec::with_capacity(usize::try_from(count).ok()?);
    for raw in covered.get(INDEX_HEADER_LEN..)?.chunks_exact(POINT_LEN) {
        let p = IndexPoint {
            lsn: le_u64(raw, POINT_LSN)?,
            off: le_u64(raw, POINT_OFF)?,
            prev: le_u32(raw, POINT_PREV)?,
        };
        let in_order = points.last().is_none_or(|q| q.lsn < p.lsn && q.off < p.off);
        let in_segment = p.lsn >= base && p.off >= SEGMENT_HEADER_LEN as u64 && p.off < segment_len;
        if !in_order || !in_segment {
            return None;
        }
        points.push(p);
    }
    Some(points)
}

/// The points of the index file of the sealed segment at `segment`, based
/// at `base` and `segment_len` bytes long; none if the file is missing,
/// unreadable, not a regular file, larger than such an index can be, or
/// fails any check of [`decode`].
pub(crate) fn read(fs: &dyn Fs, segment: &Path, base: Lsn, segment_len: u64) -> Vec<IndexPoint> {
    let len_max = points_max(segment_len)
        .saturating_mul(POINT_LEN as u64)
        .saturating_add((INDEX_HEADER_LEN + INDEX_CRC_LEN) as u64);
    match fs.read_small(&index_path(segment), len_max) {
        Ok(Some(bytes)) => decode(&bytes, base, segment_len).unwrap_or_default(),
        Ok(None) | Err(_) => Vec::new(),
    }
}

/// Writes the index file of the sealed segment at `segment`: to a
/// temporary name, then renamed into place. Not synced: a crash may lose
/// it or leave it torn, and a torn one fails its CRC. A failure leaves at
/// most the temporary file, which the next open deletes.
pub(crate) fn write(
    fs: &dyn Fs,
    segment: &Path,
    base: Lsn,
    segment_len: u64,
    points: &[IndexPoint],
) -> io::Result<()> {
    let path = index_path(segment);
    let mut tmp = path.clone().into_os_string();
    tmp.push(TEMP_EXT);
    let tmp = PathBuf::from(tmp);
    let file = fs.create(&tmp)?;
    file.write_all_at(&encode(base, segment_len, points), 0)?;
    drop(file);
    fs.rename(&tmp, &path)
}

/// Removes the index file of the segment at `segment`, if there is one.
/// Best effort: a file left behind is a hint that fails its checks.
pub(crate) fn remove(fs: &dyn Fs, segment: &Path) {
    let _ = fs.remove_file(&index_path(segment));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<IndexPoint> {
        vec![
            IndexPoint {
                lsn: 12,
                off: 300,
                prev: 7,
            },
            IndexPoint {
                lsn: 20,
                off: 600,
                prev: 9,
            },
        ]
    }

    #[test]
    fn an_index_round_trips_and_its_size_is_exact() {
        let bytes = encode(10, 1000, &points());
        assert_eq!(bytes.len(), 28 + 2 * 20 + 4);
        assert_eq!(decode(&bytes, 10, 1000), Some(points()));
        assert_eq!(decode(&encode(10, 1000, &[]), 10, 1000), Some(Vec::new()));
    }

    #[test]
    fn an_index_of_another_segment_or_length_or_damaged_is_refused() {
        let bytes = encode(10, 1000, &points());
        assert_eq!(decode(&bytes, 11, 1000), None, "base");
        assert_eq!(decode(&bytes, 10, 1001), None, "segment length");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert_eq!(decode(&b, 10, 1000), None, "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n], 10, 1000), None, "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, 10, 1000), None, "a byte more");
    }

    #[test]
    fn points_out_of_order_or_outside_the_segment_are_refused_under_a_valid_crc() {
        let p = |lsn, off| IndexPoint { lsn, off, prev: 0 };
        let cases: [(&str, Vec<IndexPoint>); 6] = [
            ("lsn not increasing", vec![p(12, 300), p(12, 600)]),
            ("offset not increasing", vec![p(12, 600), p(20, 600)]),
            ("before the base", vec![p(9, 300)]),
            ("inside the header", vec![p(12, 31)]),
            ("at the segment's end", vec![p(12, 1000)]),
            ("past the segment", vec![p(12, u64::MAX)]),
        ];
        for (what, pts) in cases {
            assert_eq!(decode(&encode(10, 1000, &pts), 10, 1000), None, "{what}");
        }
        // More points than a segment of this length can have.
        let many: Vec<IndexPoint> = (0..points_max(1000) + 1)
            .map(|i| p(10 + i, 32 + i))
            .collect();
        assert_eq!(decode(&encode(10, 1000, &many), 10, 1000), None, "too many");
    }

    /// Points as a writer could make them: increasing, within a segment
    /// of `len` bytes based at 10, no more than such a segment can hold.
    fn written_points(len: u64) -> impl proptest::strategy::Strategy<Value = Vec<IndexPoint>> {
        use proptest::prelude::*;
        // A handful at most: points_max is small for a short segment.
        let most = usize::try_from(points_max(len)).unwrap_or(0);
        proptest::collection::btree_set(SEGMENT_HEADER_LEN as u64..len, 0..=most)
            .prop_flat_map(|offs| {
                let n = offs.len();
                (Just(offs), proptest::collection::vec(any::<u32>(), n))
            })
            .prop_map(|(offs, prevs)| {
                offs.into_iter()
                    .zip(prevs)
                    .enumerate()
                    .map(|(i, (off, prev))| IndexPoint {
                        lsn: 10 + 3 * i as u64,
                        off,
                        prev,
                    })
                    .collect()
            })
    }

    proptest::proptest! {
        /// Whatever the bytes, decode returns nothing or points a writer
        /// could have written for this segment, and never panics.
        #[test]
        fn any_bytes_decode_to_nothing_or_to_points_inside_the_segment(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            // Often a real header, so that the checks after it are reached.
            header in proptest::prelude::any::<bool>(),
        ) {
            let mut input = if header { encode(10, 1000, &[])[..28].to_vec() } else { Vec::new() };
            input.extend_from_slice(&bytes);
            if let Some(points) = decode(&input, 10, 1000) {
                proptest::prop_assert!(points.len() as u64 <= points_max(1000));
                for w in points.windows(2) {
                    proptest::prop_assert!(w[0].lsn < w[1].lsn && w[0].off < w[1].off);
                }
                for p in &points {
                    proptest::prop_assert!(p.lsn >= 10 && p.off >= 32 && p.off < 1000);
                }
            }
        }

        /// The points a writer makes come back from their file as they
        /// went in, and any one byte of that file changed loses them all.
        #[test]
        fn written_points_round_trip_and_one_changed_byte_refuses_them(
            points in written_points(1000),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            flip in 1u8..,
        ) {
            let bytes = encode(10, 1000, &points);
            proptest::prop_assert_eq!(decode(&bytes, 10, 1000), Some(points));
            let mut changed = bytes.clone();
            changed[at.index(bytes.len())] ^= flip;
            proptest::prop_assert_eq!(decode(&changed, 10, 1000), None);
        }
    }
}
