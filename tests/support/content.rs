//! File content for transfer tests: deterministic pseudo-random bytes, a checksum, and
//! comparisons that report where two byte strings differ instead of dumping them.

use std::io::Read;
use std::path::Path;

pub const MIB: usize = 1024 * 1024;

/// `len` bytes from a splitmix64 generator seeded with `seed`: incompressible-looking,
/// different for every seed, and the same on every run.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x5851_f42d_4c95_7f2d;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `pseudo_random(seed, len)` to `path` and returns the bytes written.
pub fn write_random_file(path: &Path, seed: u64, len: usize) -> Vec<u8> {
    let data = pseudo_random(seed, len);
    std::fs::write(path, &data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    data
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits, over `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_update(FNV_OFFSET, bytes)
}

fn fnv1a64_update(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a 64 and length of a file's content, read in chunks.
pub fn file_checksum(path: &Path) -> (u64, u64) {
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; MIB];
    let (mut h, mut len) = (FNV_OFFSET, 0u64);
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return (h, len);
        }
        h = fnv1a64_update(h, &buf[..n]);
        len += n as u64;
    }
}

/// Panics, saying where, unless `actual == expected`.
#[track_caller]
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first_diff = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{what}: content differs: {} bytes, expected {}; first difference at offset {first_diff}",
        actual.len(),
        expected.len()
    );
}

/// Panics unless the file at `path` holds exactly `expected`.
#[track_caller]
pub fn assert_file_content(path: &Path, expected: &[u8]) {
    let actual = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_same_bytes(&actual, expected, &path.display().to_string());
}
