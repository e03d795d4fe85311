//! The content of every file the benchmark reads or writes: each aligned 8-byte word
//! holds its own offset mixed with a per-file seed (little-endian), so a misplaced,
//! stale, duplicated or truncated chunk never passes the check.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

fn word(offset: u64, seed: u64) -> u64 {
    offset ^ seed.wrapping_mul(MIX)
}

fn byte(offset: u64, seed: u64) -> u8 {
    word(offset & !7, seed).to_le_bytes()[(offset & 7) as usize]
}

/// Bytes before the first word boundary at or after `offset`, at most `len`.
fn head_len(offset: u64, len: usize) -> usize {
    (offset.wrapping_neg() % 8).min(len as u64) as usize
}

/// Fills `buf` with the content at `offset` of the file made with `seed`.
pub fn fill(buf: &mut [u8], offset: u64, seed: u64) {
    let (head, rest) = buf.split_at_mut(head_len(offset, buf.len()));
    for (i, b) in head.iter_mut().enumerate() {
        *b = byte(offset + i as u64, seed);
    }
    let base = offset + head.len() as u64;
    let tail_base = base + (rest.len() & !7) as u64;
    let mut words = rest.chunks_exact_mut(8);
    for (k, w) in (&mut words).enumerate() {
        w.copy_from_slice(&word(base + 8 * k as u64, seed).to_le_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b = byte(tail_base + i as u64, seed);
    }
}

/// The whole content of a `size`-byte file made with `seed`.
pub fn content(size: u64, seed: u64) -> Vec<u8> {
    let mut buf = vec![0; size as usize];
    fill(&mut buf, 0, seed);
    buf
}

/// Whether `buf` is the content at `offset` of the file made with `seed`.
pub fn matches(buf: &[u8], offset: u64, seed: u64) -> bool {
    let (head, rest) = buf.split_at(head_len(offset, buf.len()));
    let mut diff = 0u64;
    for (i, &b) in head.iter().enumerate() {
        diff |= u64::from(b ^ byte(offset + i as u64, seed));
    }
    let base = offset + head.len() as u64;
    let words = rest.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        diff |= u64::from_le_bytes(w.try_into().unwrap()) ^ word(base + 8 * k as u64, seed);
    }
    let tail_base = base + (rest.len() & !7) as u64;
    for (i, &b) in tail.iter().enumerate() {
        diff |= u64::from(b ^ byte(tail_base + i as u64, seed));
    }
    diff == 0
}

/// The offset of the first byte of `buf` that differs, for error messages.
pub fn first_mismatch(buf: &[u8], offset: u64, seed: u64) -> Option<u64> {
    (0..buf.len() as u64).find(|&i| buf[i as usize] != byte(offset + i, seed))
}

/// Describes a mismatch of `buf` at `offset`, or `None` if it matches.
pub fn check(buf: &[u8], offset: u64, seed: u64) -> Option<String> {
    if matches(buf, offset, seed) {
        return None;
    }
    let at = first_mismatch(buf, offset, seed).unwrap_or(0);
    Some(format!(
        "wrong data at offset {} (in {} bytes from {offset})",
        offset + at,
        buf.len()
    ))
}

const IO_CHUNK: usize = 8 << 20;

/// Writes a file of `size` bytes made with `seed`.
pub fn create_file(path: &Path, size: u64, seed: u64) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; IO_CHUNK];
    let mut offset = 0;
    while offset < size {
        let n = (size - offset).min(IO_CHUNK as u64) as usize;
        fill(&mut buf[..n], offset, seed);
        file.write_all(&buf[..n])?;
        offset += n as u64;
    }
    Ok(())
}

/// Checks that the file at `path` is exactly `size` bytes made with `seed`.
pub fn verify_file(path: &Path, size: u64, seed: u64) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::open(path).map_err(fail)?;
    let actual = file.metadata().map_err(fail)?.len();
    if actual != size {
        return Err(format!(
            "{}: {actual} bytes, expected {size}",
            path.display()
        ));
    }
    let mut buf = vec![0u8; IO_CHUNK];
    let mut offset = 0;
    while offset < size {
        let n = (size - offset).min(IO_CHUNK as u64) as usize;
        file.read_exact(&mut buf[..n]).map_err(fail)?;
        if let Some(e) = check(&buf[..n], offset, seed) {
            return Err(format!("{}: {e}", path.display()));
        }
        offset += n as u64;
    }
    Ok(())
}
