//! The event codec: one log record is one event.
//!
//! ```text
//! record payload = version: u8 (EVENT_FORMAT_VERSION) ‖ postcard(Event)
//! ```
//!
//! The version comes first so that a record written by a newer vocabulary is
//! refused by number before postcard ever looks at it.

use crate::error::EngineError;
use runlog_projections::{EVENT_FORMAT_VERSION, Event, EventRef, Lsn};
use serde::Deserialize;

/// Encodes an event as a log record payload.
pub(crate) fn encode(event: &Event) -> Result<Vec<u8>, EngineError> {
    let mut out = Vec::with_capacity(128);
    encode_into(event, &mut out)?;
    Ok(out)
}

/// Encodes an event as a log record payload into `out`, which is cleared
/// first: the command path reuses one buffer instead of allocating one per
/// event under the ordering lock.
pub(crate) fn encode_into(event: &Event, out: &mut Vec<u8>) -> Result<(), EngineError> {
    out.clear();
    out.push(EVENT_FORMAT_VERSION);
    postcard::to_io(event, &mut *out).map_err(|e| EngineError::Encode {
        detail: e.to_string(),
    })?;
    Ok(())
}

/// Decodes the record at `lsn` into an event.
pub(crate) fn decode(lsn: Lsn, bytes: &[u8]) -> Result<Event, EngineError> {
    decode_as(lsn, bytes)
}

/// Decodes the record at `lsn` into an event that borrows its strings and
/// bytes from `bytes`: the same checks as [`decode`], no allocation.
pub(crate) fn decode_ref(lsn: Lsn, bytes: &[u8]) -> Result<EventRef<'_>, EngineError> {
    decode_as(lsn, bytes)
}

fn decode_as<'a, T: Deserialize<'a>>(lsn: Lsn, bytes: &'a [u8]) -> Result<T, EngineError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(EngineError::BadEvent {
            lsn,
            detail: "empty record".into(),
        });
    };
    if version > EVENT_FORMAT_VERSION {
        return Err(EngineError::NewerEventFormat {
            lsn,
            version,
            supported: EVENT_FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(EngineError::BadEvent {
            lsn,
            detail: "event format version 0 does not exist".into(),
        });
    }
    let (event, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| EngineError::BadEvent {
            lsn,
            detail: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(EngineError::BadEvent {
            lsn,
            detail: format!("{} bytes after the event", rest.len()),
        });
    }
    Ok(event)
}
