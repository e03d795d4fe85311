//! check-file (draft-ietf-secsh-filexfer-extensions-00): digests of a range of a file,
//! computed where the file is, so a client can verify a transfer without reading the
//! file back. The range is read in large blocks from the page cache into one buffer
//! of fixed size, so memory stays bounded whatever the length asked for; the reply,
//! one digest per block, is bounded by the packet limit.

use super::{Answer, OpResult};
use crate::handles::Object;
use crate::logging::Bytes;
use crate::logit;
use crate::output::{Out, put_string};
use crate::server::Session;
use crate::status::{Status, StatusCode};
use crate::wire::{CheckFileForm, MAX_FRAME};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::{Mode, SFlag, fstat};
use sha2::Digest;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// What VERSION advertises with `check-file`: the algorithms, in our preference.
pub const ALGORITHM_LIST: &str = "md5,sha1,sha224,sha256,sha384,sha512,crc32";

/// Bytes read per pread(2): large enough that the system call is noise next to the
/// hashing, small enough to stay in the CPU's cache between the copy and the hash.
const CHUNK: usize = 256 * 1024;

/// The draft's smallest block size (other than 0, one hash over the whole range).
const MIN_BLOCK_SIZE: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Crc32,
}

impl Algorithm {
    const ALL: [Algorithm; 7] = [
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Sha224,
        Algorithm::Sha256,
        Algorithm::Sha384,
        Algorithm::Sha512,
        Algorithm::Crc32,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha224 => "sha224",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
            Algorithm::Crc32 => "crc32",
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha1 => 20,
            Algorithm::Sha224 => 28,
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
            Algorithm::Crc32 => 4,
        }
    }

    /// The first algorithm of a client's comma-separated list that this server has.
    pub fn choose(list: &[u8]) -> Option<Algorithm> {
        list.split(|&b| b == b',').find_map(|name| {
            let name = name.trim_ascii();
            Algorithm::ALL
                .into_iter()
                .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
        })
    }
}

/// One running digest.
enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    fn new(a: Algorithm) -> Hasher {
        match a {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
            Hasher::Crc32(h) => h.update(data),
        }
    }

    /// Appends the digest; CRC-32 big-endian, as its hexadecimal form is written
    /// (`crc32(1)`, ProFTPD).
    fn finish(self, out: &mut Vec<u8>) {
        match self {
            Hasher::Md5(h) => out.extend_from_slice(&h.finalize()),
            Hasher::Sha1(h) => out.extend_from_slice(&h.finalize()),
            Hasher::Sha224(h) => out.extend_from_slice(&h.finalize()),
            Hasher::Sha256(h) => out.extend_from_slice(&h.finalize()),
            Hasher::Sha384(h) => out.extend_from_slice(&h.finalize()),
            Hasher::Sha512(h) => out.extend_from_slice(&h.finalize()),
            Hasher::Crc32(h) => out.extend_from_slice(&h.finalize().to_be_bytes()),
        }
    }
}

/// What to hash, as the request gives it.
#[derive(Debug, Clone, Copy)]
pub struct Range<'a> {
    pub algorithms: &'a [u8],
    pub start: u64,
    /// 0: to the end of the file.
    pub length: u64,
    /// 0: one digest over the whole range.
    pub block_size: u32,
}

/// The digests that fit in one reply after its fixed part: the packet limit is the
/// one every client enforces (256 KiB, OpenSSH's and WinSCP's).
fn max_digests(form: CheckFileForm, alg: Algorithm) -> u64 {
    let mut fixed = 4 + 1 + 4 + 4 + alg.name().len();
    if form == CheckFileForm::Paramiko {
        fixed += 4 + "check-file".len();
    }
    ((MAX_FRAME - fixed) / alg.digest_len()) as u64
}

pub fn check_file(
    s: &mut Session,
    out: &mut Out,
    id: u32,
    form: CheckFileForm,
    target: &[u8],
    range: Range<'_>,
) -> OpResult {
    let opened: OwnedFd;
    let (fd, path): (BorrowedFd<'_>, &[u8]) = match form {
        CheckFileForm::Name => {
            // Followed to its target, as stat and open follow it; non-blocking so a
            // FIFO cannot stall the session before it is refused below.
            opened = s.paths.open(
                target,
                OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
                Mode::empty(),
            )?;
            (opened.as_fd(), target)
        }
        CheckFileForm::Handle | CheckFileForm::Paramiko => match s.handles.get(target) {
            Some(
                h @ crate::handles::Handle {
                    object: Object::File { fd, .. },
                    ..
                },
            ) => (fd.as_fd(), &h.path[..]),
            _ => return Err(Status::FAILURE),
        },
    };
    logit!(
        Info,
        "check-file \"{}\" algorithms \"{}\" off {} len {} block-size {}",
        Bytes(path),
        Bytes(range.algorithms),
        range.start,
        range.length,
        range.block_size
    );
    if form != CheckFileForm::Name {
        // The handle must allow what READ would: reading.
        let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
        if fl & OFlag::O_ACCMODE == OFlag::O_WRONLY {
            return Err(Status::PERMISSION_DENIED);
        }
    }
    let Some(alg) = Algorithm::choose(range.algorithms) else {
        return Err(Status::with_text(
            StatusCode::FAILURE,
            "No supported hash algorithm in the list",
        ));
    };
    if range.block_size != 0 && range.block_size < MIN_BLOCK_SIZE {
        return Err(Status::with_text(
            StatusCode::FAILURE,
            "Block size must be 0 or at least 256",
        ));
    }
    let st = fstat(fd)?;
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => {}
        SFlag::S_IFDIR => return Err(Errno::EISDIR.into()),
        _ => {
            return Err(Status::with_text(StatusCode::FAILURE, "Not a regular file"));
        }
    }
    // The range ends at the end of the file as it is now.
    let size = st.st_size as u64;
    let start = range.start.min(size);
    let end = match range.length {
        0 => size,
        n => range.start.saturating_add(n).min(size),
    };
    let len = end - start;
    let blocks = match range.block_size {
        0 => 1,
        b => len.div_ceil(b as u64).max(1),
    };
    let fit = max_digests(form, alg);
    if blocks > fit {
        logit!(
            Error,
            "check-file \"{}\": block size {} needs {} {} digests, a reply holds {}",
            Bytes(path),
            range.block_size,
            blocks,
            alg.name(),
            fit
        );
        return Err(Status::with_text(
            StatusCode::FAILURE,
            "Block size too small: the digests of the range do not fit in one reply",
        ));
    }
    let mut result = Ok(0);
    out.extended_reply(id, |b| {
        if form == CheckFileForm::Paramiko {
            put_string(b, b"check-file");
        }
        put_string(b, alg.name().as_bytes());
        result = digests(fd, alg, start, len, range.block_size, b);
    });
    // On an error the dispatcher drops the reply begun above.
    let hashed = result?;
    if form != CheckFileForm::Name
        && let Some(h) = s.handles.get_mut(target)
    {
        h.bytes_read += hashed;
    }
    Ok(Answer::Sent)
}

/// Appends the digest of each `block_size` block of `len` bytes from `start` (one
/// digest over all of it when `block_size` is 0, and over nothing when `len` is 0);
/// returns the bytes read. A file that shrinks meanwhile ends the range early.
fn digests(
    fd: BorrowedFd<'_>,
    alg: Algorithm,
    start: u64,
    len: u64,
    block_size: u32,
    out: &mut Vec<u8>,
) -> Result<u64, Status> {
    let block = match block_size {
        0 => len,
        b => b as u64,
    };
    let mut buf = vec![0u8; (len.min(CHUNK as u64) as usize).max(1)];
    let mut pos = start;
    let end = start + len;
    let mut h = Hasher::new(alg);
    let mut left = block;
    let mut fed = false;
    let mut emitted = false;
    while pos < end {
        let want = buf.len().min((end - pos) as usize);
        let off = i64::try_from(pos).map_err(|_| Status::from(Errno::EINVAL))?;
        let n = match nix::sys::uio::pread(fd, &mut buf[..want], off) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            let take = data.len().min(left.min(usize::MAX as u64) as usize);
            h.update(&data[..take]);
            fed = true;
            data = &data[take..];
            left -= take as u64;
            if left == 0 {
                std::mem::replace(&mut h, Hasher::new(alg)).finish(out);
                emitted = true;
                fed = false;
                left = block;
            }
        }
        pos += n as u64;
    }
    // The last, short block; or the empty range, whose digest is that of nothing.
    if fed || !emitted {
        h.finish(out);
    }
    Ok(pos - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_first_known_algorithm() {
        assert_eq!(
            Algorithm::choose(b"sha3-256,SHA256,md5"),
            Some(Algorithm::Sha256)
        );
        assert_eq!(Algorithm::choose(b"crc32"), Some(Algorithm::Crc32));
        assert_eq!(Algorithm::choose(b"sha3-256,,x"), None);
        assert_eq!(Algorithm::choose(b""), None);
    }

    #[test]
    fn advertised_list_names_every_algorithm() {
        let names: Vec<_> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(ALGORITHM_LIST, names.join(","));
    }

    #[test]
    fn digest_lengths_match_the_hashers() {
        for a in Algorithm::ALL {
            let mut v = Vec::new();
            Hasher::new(a).finish(&mut v);
            assert_eq!(v.len(), a.digest_len(), "{}", a.name());
        }
    }
}
