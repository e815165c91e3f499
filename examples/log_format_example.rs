//! Prints the worked hex example of FORMAT.md from a real log: writes two
//! batches (`["hi"]`, then `["run", "log"]`) into a fresh directory with the
//! real writer, then dumps the segment with every field labelled.
//!
//! ```text
//! cargo run --example log_format_example
//! ```

use std::path::PathBuf;

use runlog_log::{Log, LogOptions};

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::temp_dir().join(format!("runlog-format-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let (log, _) = Log::open(&dir, LogOptions::default())?;
        log.append(&[b"hi"])?;
        log.append(&[b"run", b"log"])?;
    }
    let seg = std::fs::read(dir.join("segments").join(format!("{:020}.seg", 0)))?;
    std::fs::remove_dir_all(&dir)?;

    println!("segments/00000000000000000000.seg, {} bytes:\n", seg.len());
    for (i, line) in seg.chunks(16).enumerate() {
        println!("{:04x}  {}", i * 16, hex(line));
    }
    println!("\nThe same bytes, field by field:\n");
    let row = |off: usize, len: usize, what: String| {
        println!("{off:04x}  {:<48} {what}", hex(&seg[off..off + len]));
    };
    row(0, 8, "magic \"RUNLOGSG\"".into());
    row(8, 4, format!("version {}", le32(&seg[8..])));
    row(12, 4, format!("flags {}", le32(&seg[12..])));
    row(16, 8, format!("base_lsn {}", le64(&seg[16..])));
    row(
        24,
        4,
        format!("chain {:#010x} (first segment)", le32(&seg[24..])),
    );
    row(
        28,
        4,
        format!("header_crc {:#010x} = crc32(bytes 0..28)", le32(&seg[28..])),
    );
    let mut off = 32;
    while off < seg.len() {
        let len = le32(&seg[off + 8..]) as usize;
        let lsn = le64(&seg[off + 16..]);
        println!("      -- record LSN {lsn} at offset {off} --");
        row(
            off,
            4,
            format!(
                "crc {:#010x} = crc32 seeded with prev, over {:#x}..{:#x}",
                le32(&seg[off..]),
                off + 8,
                off + 28 + len
            ),
        );
        row(off + 4, 4, format!("prev {:#010x}", le32(&seg[off + 4..])));
        row(off + 8, 4, format!("len {len}"));
        let flags = le32(&seg[off + 12..]);
        let end = if flags & 1 == 1 {
            " (END_OF_BATCH)"
        } else {
            ""
        };
        row(off + 12, 4, format!("flags {flags}{end}"));
        row(off + 16, 8, format!("lsn {lsn}"));
        row(
            off + 24,
            4,
            format!("batch_index {}", le32(&seg[off + 24..])),
        );
        if len > 0 {
            row(
                off + 28,
                len,
                format!(
                    "payload {:?}",
                    String::from_utf8_lossy(&seg[off + 28..off + 28 + len])
                ),
            );
        }
        off += 28 + len;
    }
    Ok(())
}
