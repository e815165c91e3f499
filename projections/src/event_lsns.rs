//! Where a job's events are in the log: the list of their LSNs that each
//! job keeps, so that a snapshot can name a job's events instead of
//! holding the runs and checkpoints they fold to, and the trait through
//! which such a job's events are read back.
//!
//! A job's first event is its `JobCreated`, at the LSN its input names;
//! the list holds each later event as its distance from the one before,
//! an unsigned LEB128 varint (1 byte for a distance below 128, 2 below
//! 16 384). Distances are at least 1: LSNs only grow. A job with one run
//! of ten steps, written without other jobs in between, costs 14 bytes.

use crate::event::EventRef;
use crate::types::Lsn;

/// Reads events back from the log by LSN, for the jobs a snapshot restored
/// without their runs and checkpoints (see [`crate::SnapshotDetails`]).
/// The engine implements it over its log and its event codec; this crate
/// never does I/O itself.
pub trait EventSource: Send + Sync {
    /// Calls `f` with the event at `lsn`, decoded (it may borrow the
    /// record's bytes). An event that cannot be read or decoded is an
    /// error that says why; `f` is then not called.
    fn with_event(&self, lsn: Lsn, f: &mut dyn FnMut(&EventRef<'_>)) -> Result<(), String>;
}

/// The most bytes a u64 takes as a LEB128 varint.
const VARINT_LEN_MAX: usize = 10;
const _: () = assert!(VARINT_LEN_MAX * 7 >= 64);

/// Appends `v` to `out` as an unsigned LEB128 varint.
pub(crate) fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint from the front of `bytes`: the value and
/// the bytes it took. `None` if it is cut short, longer than ten bytes or
/// past u64.
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(VARINT_LEN_MAX) {
        let bits = u64::from(b & 0x7f);
        // The tenth byte holds bit 63 alone.
        if i == VARINT_LEN_MAX - 1 && b > 1 {
            return None;
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The LSNs of a job's events, from its first at `first`, with the
/// distances `list` holds; each item fails (and ends the walk) when the
/// list is malformed: a varint cut short or too long, a distance of 0,
/// an LSN past u64.
pub(crate) fn lsns(first: Lsn, list: &[u8]) -> impl Iterator<Item = Result<Lsn, String>> + '_ {
    let mut at = 0usize;
    let mut lsn = Some(first);
    let mut started = false;
    std::iter::from_fn(move || {
        let current = lsn?;
        if !started {
            started = true;
            return Some(Ok(current));
        }
        let rest = list.get(at..).filter(|r| !r.is_empty())?;
        let next = match read_varint(rest) {
            Some((0, _)) => Err(format!("a distance of 0 after LSN {current}")),
            Some((d, used)) => {
                at += used;
                current
                    .checked_add(d)
                    .ok_or_else(|| format!("a distance of {d} after LSN {current} is past u64"))
            }
            None => Err(format!("a malformed distance at byte {at} of the list")),
        };
        lsn = next.as_ref().ok().copied();
        Some(next)
    })
}

/// The LSN of the last event of a list that starts at `first`, checking
/// the whole list as [`lsns`] does.
pub(crate) fn last_lsn(first: Lsn, list: &[u8]) -> Result<Lsn, String> {
    let mut last = first;
    for lsn in lsns(first, list) {
        last = lsn?;
    }
    Ok(last)
}

/// The list of a job's event LSNs, as a job keeps it in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EventLsns {
    /// The distances, after the job's first event (see the module docs).
    Listed(Vec<u8>),
    /// In the snapshot the job was restored from, in its detail (the
    /// job's `LazyDetail`): the job has had no event since.
    InSnapshot,
    /// Not known: the job was restored from a snapshot that did not list
    /// them, or was given an LSN no greater than its last. Such a job is
    /// written to a snapshot with its runs and checkpoints in full.
    Unknown,
}

impl EventLsns {
    /// A new job's: its first event alone.
    pub(crate) fn new() -> Self {
        EventLsns::Listed(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_what_is_not_one() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_varint(&mut out, v);
            assert_eq!(read_varint(&out), Some((v, out.len())), "{v}");
        }
        assert_eq!(read_varint(&[]), None);
        assert_eq!(read_varint(&[0x80]), None, "cut short");
        assert_eq!(read_varint(&[0xff; 10]), None, "past u64");
        assert_eq!(read_varint(&[0x80; 11]), None, "too long");
    }

    #[test]
    fn lsns_walk_the_distances_and_stop_at_the_first_fault() {
        let mut list = Vec::new();
        for d in [1, 200, 3] {
            push_varint(&mut list, d);
        }
        let got: Result<Vec<_>, _> = lsns(10, &list).collect();
        assert_eq!(got, Ok(vec![10, 11, 211, 214]));
        assert_eq!(last_lsn(10, &list), Ok(214));
        assert_eq!(last_lsn(7, &[]), Ok(7));
        assert!(last_lsn(10, &[1, 0]).is_err(), "a distance of 0");
        assert!(last_lsn(10, &[1, 0x80]).is_err(), "cut short");
        let mut huge = Vec::new();
        push_varint(&mut huge, u64::MAX);
        assert!(last_lsn(10, &huge).is_err(), "past u64");
    }
}
