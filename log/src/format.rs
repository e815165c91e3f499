//! The bytes on disk: segment header and record frame, built from named
//! offsets. `FORMAT.md` is the prose version of this file; keep them in step.

use crate::{CorruptionKind, Lsn};

/// The first eight bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RUNLOGSG";
/// The format version this build writes and the newest it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

// Segment header: each offset follows from the one before.
const HDR_MAGIC: usize = 0;
const HDR_VERSION: usize = HDR_MAGIC + SEGMENT_MAGIC.len();
const HDR_FLAGS: usize = HDR_VERSION + 4;
const HDR_BASE_LSN: usize = HDR_FLAGS + 4;
const HDR_CHAIN: usize = HDR_BASE_LSN + 8;
const HDR_CRC: usize = HDR_CHAIN + 4;
/// Bytes in a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = HDR_CRC + 4;

// Record frame header.
const REC_CRC: usize = 0;
const REC_PREV: usize = REC_CRC + 4;
const REC_LEN: usize = REC_PREV + 4;
const REC_FLAGS: usize = REC_LEN + 4;
const REC_LSN: usize = REC_FLAGS + 4;
const REC_BATCH_INDEX: usize = REC_LSN + 8;
/// Bytes in a record's frame header, before the payload.
pub(crate) const RECORD_HEADER_LEN: usize = REC_BATCH_INDEX + 4;

/// Record flag: this record ends its batch.
pub(crate) const FLAG_END_OF_BATCH: u32 = 1;
/// Every flag bit version 1 defines; any other bit set is corruption.
pub(crate) const FLAGS_KNOWN: u32 = FLAG_END_OF_BATCH;

const _: () = assert!(SEGMENT_HEADER_LEN == 32);
const _: () = assert!(RECORD_HEADER_LEN == 28);
// The record checksum comes first and the chain value right after it; the
// checksum covers everything after the chain value.
const _: () = assert!(REC_CRC == 0 && REC_PREV == 4 && HDR_CRC + 4 == SEGMENT_HEADER_LEN);

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// LSN of the segment's first record.
    pub base_lsn: Lsn,
    /// Checksum of the previous segment's last record (0 for the first
    /// segment of a log); the first record's `prev` must equal it.
    pub chain: u32,
}

/// Why a header could not be decoded.
#[derive(Debug)]
pub(crate) enum HeaderError {
    /// Damaged or not a segment.
    Corrupt(CorruptionKind),
    /// Written by a newer format version.
    Newer(u32),
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

pub(crate) fn encode_segment_header(h: SegmentHeader) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[HDR_MAGIC..HDR_VERSION].copy_from_slice(&SEGMENT_MAGIC);
    out[HDR_VERSION..HDR_FLAGS].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[HDR_FLAGS..HDR_BASE_LSN].copy_from_slice(&0u32.to_le_bytes());
    out[HDR_BASE_LSN..HDR_CHAIN].copy_from_slice(&h.base_lsn.to_le_bytes());
    out[HDR_CHAIN..HDR_CRC].copy_from_slice(&h.chain.to_le_bytes());
    let crc = crc32fast::hash(&out[..HDR_CRC]);
    out[HDR_CRC..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a header from the start of a segment file.
///
/// Every format version keeps these 32 bytes laid out as version 1 has them
/// (FORMAT.md, "Future versions"), so the checksum is checked first: a bit
/// flip in the version field is corruption, and only a header whose checksum
/// holds can claim to come from a newer version.
pub(crate) fn decode_segment_header(data: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let bad = |reason: &str| {
        HeaderError::Corrupt(CorruptionKind::BadHeader {
            reason: reason.to_owned(),
        })
    };
    if data.len() < SEGMENT_HEADER_LEN {
        return Err(bad("file is shorter than a segment header"));
    }
    if data[HDR_MAGIC..HDR_VERSION] != SEGMENT_MAGIC {
        return Err(bad("wrong magic bytes"));
    }
    let stored = u32_at(data, HDR_CRC);
    let computed = crc32fast::hash(&data[..HDR_CRC]);
    if stored != computed {
        return Err(bad(&format!(
            "header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let version = u32_at(data, HDR_VERSION);
    if version > FORMAT_VERSION {
        return Err(HeaderError::Newer(version));
    }
    if version != FORMAT_VERSION {
        return Err(bad(&format!("unknown format version {version}")));
    }
    let flags = u32_at(data, HDR_FLAGS);
    if flags != 0 {
        return Err(bad(&format!("unknown header flags {flags:#x}")));
    }
    Ok(SegmentHeader {
        base_lsn: u64_at(data, HDR_BASE_LSN),
        chain: u32_at(data, HDR_CHAIN),
    })
}

/// The chained record checksum: CRC-32 (IEEE) seeded with the previous
/// record's checksum (the `prev` field), over every byte of the frame after
/// `prev`. `prev` itself is covered through the seed only: CRC-32 folds its
/// initial state into the first four bytes it reads, so seeding with `prev`
/// and then hashing `prev` again would cancel out and leave it unprotected.
fn record_crc(prev: u32, covered: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(prev);
    h.update(covered);
    h.finalize()
}

/// What the writer knows about a record it is about to frame.
pub(crate) struct RecordFields {
    pub prev: u32,
    pub lsn: Lsn,
    pub batch_index: u32,
    pub end_of_batch: bool,
}

/// Appends one framed record to `out` and returns its checksum. The caller
/// has checked `payload.len() <= record_size_max <= u32::MAX`.
pub(crate) fn encode_record(out: &mut Vec<u8>, f: &RecordFields, payload: &[u8]) -> u32 {
    let len = u32::try_from(payload.len());
    debug_assert!(
        len.is_ok(),
        "payload length checked against record_size_max"
    );
    let len = len.unwrap_or(u32::MAX);
    let flags = if f.end_of_batch { FLAG_END_OF_BATCH } else { 0 };
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[REC_PREV..REC_LEN].copy_from_slice(&f.prev.to_le_bytes());
    h[REC_LEN..REC_FLAGS].copy_from_slice(&len.to_le_bytes());
    h[REC_FLAGS..REC_LSN].copy_from_slice(&flags.to_le_bytes());
    h[REC_LSN..REC_BATCH_INDEX].copy_from_slice(&f.lsn.to_le_bytes());
    h[REC_BATCH_INDEX..].copy_from_slice(&f.batch_index.to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = record_crc(f.prev, &out[start + REC_LEN..]);
    out[start..start + REC_PREV].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// A record frame whose checksum checked out. Its context (LSN, chain,
/// batch position) is not checked yet: that is the cursor's job.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawRecord<'a> {
    pub crc: u32,
    pub prev: u32,
    pub flags: u32,
    pub lsn: Lsn,
    pub batch_index: u32,
    pub payload_start: usize,
    pub payload: &'a [u8],
    /// Offset one past the record.
    pub end: usize,
}

/// Parses and checksums the record at `off`. The length is checked against
/// `max` and against the bytes present before it is used, and the checksum
/// is checked before any other field is believed.
#[inline]
pub(crate) fn parse_record(
    data: &[u8],
    off: usize,
    max: u32,
) -> Result<RawRecord<'_>, CorruptionKind> {
    let rest = data.get(off..).unwrap_or(&[]);
    if rest.len() < RECORD_HEADER_LEN {
        if !rest.is_empty() && rest.iter().all(|b| *b == 0) {
            return Err(CorruptionKind::Zeroed);
        }
        return Err(CorruptionKind::Truncated {
            needed: RECORD_HEADER_LEN as u64,
            available: rest.len() as u64,
        });
    }
    let h = &rest[..RECORD_HEADER_LEN];
    // A zeroed header fails the checks below anyway (its checksum cannot
    // match; see the unit test), so it is told apart only on that cold path.
    let zeroed = || h.iter().all(|b| *b == 0);
    let len = u32_at(h, REC_LEN);
    if len > max {
        return Err(CorruptionKind::LengthTooLarge {
            len: u64::from(len),
            max,
        });
    }
    let total = RECORD_HEADER_LEN as u64 + u64::from(len);
    if total > rest.len() as u64 {
        return Err(CorruptionKind::Truncated {
            needed: total,
            available: rest.len() as u64,
        });
    }
    // `total <= rest.len()`, so it fits in usize.
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    let stored = u32_at(h, REC_CRC);
    let prev = u32_at(h, REC_PREV);
    let computed = record_crc(prev, &rest[REC_LEN..total]);
    if stored != computed {
        if zeroed() {
            return Err(CorruptionKind::Zeroed);
        }
        return Err(CorruptionKind::ChecksumMismatch {
            expected: stored,
            found: computed,
        });
    }
    Ok(RawRecord {
        crc: stored,
        prev,
        flags: u32_at(h, REC_FLAGS),
        lsn: u64_at(h, REC_LSN),
        batch_index: u32_at(h, REC_BATCH_INDEX),
        payload_start: off + RECORD_HEADER_LEN,
        payload: &rest[RECORD_HEADER_LEN..total],
        end: off + total,
    })
}

/// A frame that [`valid_frame`] found whole, within the length limit, and
/// whose checksum holds; its context is not checked yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    pub crc: u32,
    pub prev: u32,
    pub flags: u32,
    pub lsn: Lsn,
    pub batch_index: u32,
    /// Offset one past the record.
    pub end: usize,
}

/// The hot path of every walk: the record at `off` if it passes every check
/// of [`parse_record`] (enough bytes for a header, `len <= max`, the payload
/// present, the checksum holds), in the same order, so nothing is trusted
/// before it is checked. Builds no error: on `None`, [`parse_record`] says
/// what is wrong. Kept apart from it because returning a rich error from the
/// per-record loop costs a third of the instructions of a 128-byte record.
#[inline(always)]
pub(crate) fn valid_frame(data: &[u8], off: usize, max: u32) -> Option<Frame> {
    let rest = data.get(off..)?;
    let h: &[u8; RECORD_HEADER_LEN] = rest.first_chunk()?;
    let len = u32::from_le_bytes(field(h, REC_LEN));
    if len > max {
        return None;
    }
    let total = RECORD_HEADER_LEN.checked_add(usize::try_from(len).ok()?)?;
    let covered = rest.get(REC_LEN..total)?;
    let crc = u32::from_le_bytes(field(h, REC_CRC));
    let prev = u32::from_le_bytes(field(h, REC_PREV));
    if record_crc(prev, covered) != crc {
        return None;
    }
    Some(Frame {
        crc,
        prev,
        flags: u32::from_le_bytes(field(h, REC_FLAGS)),
        lsn: u64::from_le_bytes(field(h, REC_LSN)),
        batch_index: u32::from_le_bytes(field(h, REC_BATCH_INDEX)),
        end: off + total,
    })
}

/// `N` bytes of a frame header from `at`; with constant offsets the bounds
/// are checked at compile time.
#[inline(always)]
fn field<const N: usize>(h: &[u8; RECORD_HEADER_LEN], at: usize) -> [u8; N] {
    let mut b = [0u8; N];
    b.copy_from_slice(&h[at..at + N]);
    b
}

/// A cheap pre-filter for the "is there a valid record later?" search: reads
/// the LSN and batch index of a would-be header without checking anything.
pub(crate) fn peek_lsn_index(data: &[u8], off: usize) -> Option<(Lsn, u32, u32)> {
    let h = data.get(off..off.checked_add(RECORD_HEADER_LEN)?)?;
    Some((
        u64_at(h, REC_LSN),
        u32_at(h, REC_BATCH_INDEX),
        u32_at(h, REC_LEN),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = SegmentHeader {
            base_lsn: 42,
            chain: 0xdead_beef,
        };
        let bytes = encode_segment_header(h);
        assert_eq!(decode_segment_header(&bytes).ok(), Some(h));
    }

    #[test]
    fn record_round_trips_and_detects_a_flip() {
        let mut out = Vec::new();
        let f = RecordFields {
            prev: 7,
            lsn: 3,
            batch_index: 0,
            end_of_batch: true,
        };
        let crc = encode_record(&mut out, &f, b"abc");
        let r = parse_record(&out, 0, 16).expect("just encoded");
        assert_eq!((r.crc, r.prev, r.lsn, r.payload), (crc, 7, 3, &b"abc"[..]));
        for byte in REC_PREV..out.len() {
            let mut bad = out.clone();
            bad[byte] ^= 1;
            assert!(
                matches!(
                    parse_record(&bad, 0, 16),
                    Err(CorruptionKind::ChecksumMismatch { .. }
                        | CorruptionKind::Truncated { .. }
                        | CorruptionKind::LengthTooLarge { .. })
                ),
                "flip in byte {byte} not caught"
            );
        }
    }

    #[test]
    fn an_all_zero_header_can_never_checksum() {
        // The "valid record later" search skips zero headers; that is sound
        // only because a zeroed frame never carries a matching checksum.
        assert_ne!(record_crc(0, &[0u8; RECORD_HEADER_LEN - REC_LEN]), 0);
    }
}
