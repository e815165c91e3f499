//! Output helpers: tables for people, times in RFC 3339, numbers with
//! separators, and the shared read-only open.

use super::fail::{self, Failure};
use runlog::{AsOf, Options, ReadOnly, Timestamp, Usage};
use std::io::{self, Write};
use std::path::Path;

/// Opens `dir` read-only (no lock, no writes) as of `as_of`.
pub fn open(dir: &Path, as_of: AsOf) -> Result<ReadOnly, Failure> {
    fail::existing_dir(dir)?;
    ReadOnly::open(dir, Options::default(), as_of).map_err(|e| Failure::engine(dir, e))
}

/// A buffered, locked stdout for text and JSON, with control characters
/// escaped (see [`Escaped`]). Errors (a closed pipe) propagate as
/// [`Failure`]s instead of the panics `println!` would give.
pub fn stdout() -> Escaped<io::BufWriter<io::StdoutLock<'static>>> {
    Escaped(raw_stdout())
}

/// A buffered, locked stdout that passes bytes through untouched: for a
/// checkpoint's raw payload only.
pub fn raw_stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::new(io::stdout().lock())
}

/// Whether `c` must not reach a terminal as it is: a control character
/// (C0, DEL, C1) other than the newline and tab our own output uses.
fn is_hostile(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Writes `c` as a JSON-style `\u001b` escape: readable in text, and inside
/// a JSON string the same character, so JSON output keeps its meaning.
fn escape(out: &mut String, c: char) {
    use std::fmt::Write as _;
    let _ = write!(out, "\\u{:04x}", u32::from(c));
}

/// A writer that escapes control characters on their way to stdout.
///
/// Ids, keys, prompts and errors come from the log, and a log may come from
/// anyone: an escape sequence in a job's key must not retitle, clear or
/// rewrite the terminal of the auditor listing it. serde_json escapes C0
/// characters itself, so in JSON this only touches DEL and C1 characters,
/// and only inside strings, where `\u00XX` means the same character.
#[derive(Debug)]
pub struct Escaped<W: Write>(W);

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // Fast path: no C0 control but newline and tab, no DEL, and no 0xC2
        // (the lead byte of every C1 character in UTF-8).
        if !buf
            .iter()
            .any(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7F || b == 0xC2)
        {
            return self.0.write_all(buf);
        }
        // write_fmt hands over whole `str` pieces, so a character is never
        // split between two calls.
        let text = String::from_utf8_lossy(buf);
        let mut out = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if is_hostile(c) {
                escape(&mut out, c);
            } else {
                out.push(c);
            }
        }
        self.0.write_all(out.as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `s` with every control character escaped, newlines and tabs too: for a
/// table cell or a one-line message, whose shape a newline would break.
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_control() {
            escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A table: a header row and rows of cells; numeric columns align right.
pub struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; a column named with a leading `>` is
    /// right-aligned (the `>` is not printed).
    pub fn new(columns: &[&'static str]) -> Self {
        Table {
            header: columns.iter().map(|c| c.trim_start_matches('>')).collect(),
            right: columns.iter().map(|c| c.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        // A newline in a cell (a job key from the log) would forge a row.
        let cells = cells
            .into_iter()
            .map(|c| match clean(&c) {
                std::borrow::Cow::Borrowed(_) => c,
                std::borrow::Cow::Owned(o) => o,
            })
            .collect();
        self.rows.push(cells);
    }

    pub fn print(&self, w: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |w: &mut dyn Write, cells: &[String]| -> io::Result<()> {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if self.right.get(i).copied().unwrap_or(false) {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < cells.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            writeln!(w, "{}", s.trim_end())
        };
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        line(w, &header)?;
        for row in &self.rows {
            line(w, row)?;
        }
        Ok(())
    }
}

/// 1234567 as "1,234,567".
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Cost in micro-units as "$0.0123".
pub fn cost(micros: u64) -> String {
    format!("${}.{:04}", micros / 1_000_000, (micros % 1_000_000) / 100)
}

/// A usage as JSON.
pub fn usage_json(u: &Usage) -> serde_json::Value {
    serde_json::json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "total_tokens": u.total_tokens(),
        "cost_micros": u.cost_micros,
    })
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A civil date to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parts(t: Timestamp) -> (i64, u32, u32, u64, u64, u64, u64) {
    let ms = t.0;
    let secs = ms / 1000;
    let (y, mo, d) = civil((secs / 86_400) as i64);
    let sod = secs % 86_400;
    (y, mo, d, sod / 3600, (sod / 60) % 60, sod % 60, ms % 1000)
}

/// RFC 3339 in UTC with milliseconds: `2026-03-02T09:00:00.000Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let (y, mo, d, h, mi, s, ms) = parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// For tables: `2026-03-02 09:00:00`.
pub fn human_time(t: Timestamp) -> String {
    let (y, mo, d, h, mi, s, _) = parts(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// Time of day only: `09:00:00`.
pub fn clock_time(t: Timestamp) -> String {
    let (_, _, _, h, mi, s, _) = parts(t);
    format!("{h:02}:{mi:02}:{s:02}")
}

/// A duration in milliseconds as "1h 02m", "3m 20s" or "12s".
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s / 60) % 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Parses `--until-time`: milliseconds since the epoch, or RFC 3339
/// (`2026-03-02T09:30:00Z`, `2026-03-02T09:30:00.250+01:00`; a space may
/// stand for the `T`; no zone means UTC).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(Timestamp);
    }
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<u64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (h, mi, sec) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let first3: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = first3.parse().ok()?;
    }
    let offset_min: i64 = match s.get(i..)? {
        "" | "Z" | "z" => 0,
        zone => {
            let zb = zone.as_bytes();
            if zb.len() != 6 || zb[3] != b':' {
                return None;
            }
            let sign = match zb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = zone.get(1..3)?.parse().ok()?;
            let om: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (oh * 60 + om)
        }
    };
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + sec) as i64 - offset_min * 60;
    let ms = secs.checked_mul(1000)?.checked_add(millis as i64)?;
    u64::try_from(ms).ok().map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = Timestamp(1_772_442_000_123);
        assert_eq!(rfc3339(t), "2026-03-02T09:00:00.123Z");
        assert_eq!(parse_time(&rfc3339(t)), Some(t));
        assert_eq!(
            parse_time("2026-03-02T10:00:00.123+01:00"),
            Some(Timestamp(1_772_442_000_123))
        );
        assert_eq!(parse_time("1772442000123"), Some(t));
        assert_eq!(parse_time("2026-13-02T10:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(0), "0");
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(cost(1_234_567), "$1.2345");
    }
}
