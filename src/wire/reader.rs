//! A bounds-checked reader over one packet body. Every read either returns a value
//! borrowed from or copied out of the body, or [`DecodeError`]; nothing the peer
//! claims is ever allocated.

use thiserror::Error;

/// What is wrong with a packet body.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    #[error("incomplete message")]
    Truncated,
    #[error("string contains a NUL byte")]
    NulInString,
}

/// Reads big-endian integers and length-prefixed strings from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A `string`: a u32 length and that many bytes, borrowed from the body.
    pub fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A string used as a path or a name: bytes, not necessarily UTF-8, never with a
    /// NUL byte inside (no system call could take it). As in OpenSSH, one NUL at the
    /// very end is a C string's terminator and is dropped.
    pub fn path(&mut self) -> Result<&'a [u8], DecodeError> {
        let s = self.string()?;
        let s = s.strip_suffix(&[0]).unwrap_or(s);
        if s.contains(&0) {
            return Err(DecodeError::NulInString);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_integers_and_strings() {
        let body = [0, 0, 0, 7, 0, 0, 0, 2, b'h', b'i', 1];
        let mut r = Reader::new(&body);
        assert_eq!(r.u32(), Ok(7));
        assert_eq!(r.string(), Ok(&b"hi"[..]));
        assert_eq!(r.u8(), Ok(1));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(DecodeError::Truncated));
    }

    #[test]
    fn huge_claimed_length_is_an_error() {
        let body = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(Reader::new(&body).string(), Err(DecodeError::Truncated));
    }

    #[test]
    fn nul_in_path_is_refused() {
        let body = [0, 0, 0, 3, b'a', 0, b'b'];
        assert_eq!(Reader::new(&body).path(), Err(DecodeError::NulInString));
        let body = [0, 0, 0, 2, b'a', 0];
        assert_eq!(Reader::new(&body).path(), Ok(&b"a"[..]));
    }
}
