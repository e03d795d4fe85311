//! The reply encoder: every reply is appended to one output buffer that the event
//! loop writes out in one call per batch. Lengths are written as placeholders and
//! patched when the body is complete, so nothing is built twice.

use super::*;
use bytes::BufMut;
use std::mem::MaybeUninit;

/// Replies waiting to be written to the client.
#[derive(Debug, Default)]
pub struct Out {
    buf: Vec<u8>,
}

/// A NAME reply under construction: entries are appended, the count patched at the end.
#[derive(Debug)]
pub struct NameList {
    start: usize,
    count_at: usize,
    count: u32,
}

impl Out {
    pub fn with_capacity(n: usize) -> Out {
        Out {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Drops the first `n` bytes (they have been written to the client).
    pub fn consume(&mut self, n: usize) {
        if n >= self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..n);
        }
    }

    /// Where the next reply starts; [`Out::rollback`] returns to it.
    pub fn mark(&self) -> usize {
        self.buf.len()
    }

    /// Forgets everything written since `mark` (a reply begun by an operation that
    /// then failed).
    pub fn rollback(&mut self, mark: usize) {
        self.buf.truncate(mark);
    }

    /// Starts a reply: a length placeholder, the type and the id.
    fn begin(&mut self, ptype: u8, id: u32) -> usize {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_u8(ptype);
        self.buf.put_u32(id);
        start
    }

    fn finish(&mut self, start: usize) {
        patch_len(&mut self.buf, start);
    }

    /// The raw buffer, for encoders that write a body in place.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub fn version(&mut self, version: u32, extensions: &[(&str, &str)]) {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_u8(SSH_FXP_VERSION);
        self.buf.put_u32(version);
        for (name, data) in extensions {
            put_string(&mut self.buf, name.as_bytes());
            put_string(&mut self.buf, data.as_bytes());
        }
        self.finish(start);
    }

    pub fn status(&mut self, id: u32, code: u32, message: &str) {
        let start = self.begin(SSH_FXP_STATUS, id);
        self.buf.put_u32(code);
        put_string(&mut self.buf, message.as_bytes());
        put_string(&mut self.buf, b"");
        self.finish(start);
    }

    pub fn handle(&mut self, id: u32, handle: &[u8]) {
        let start = self.begin(SSH_FXP_HANDLE, id);
        put_string(&mut self.buf, handle);
        self.finish(start);
    }

    pub fn attrs(&mut self, id: u32, attrs: &Attrs) {
        let start = self.begin(SSH_FXP_ATTRS, id);
        attrs.encode(&mut self.buf);
        self.finish(start);
    }

    /// An EXTENDED_REPLY whose body `body` writes.
    pub fn extended_reply(&mut self, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
        let start = self.begin(SSH_FXP_EXTENDED_REPLY, id);
        body(&mut self.buf);
        self.finish(start);
    }

    /// A DATA reply of at most `max` bytes that `fill` writes straight into the output
    /// buffer (for READ: the file data is copied once, from the kernel to here).
    /// `fill` returns how many bytes it wrote; on error, or when it wrote none,
    /// nothing is left in the buffer and the result says what happened.
    pub fn data<E>(
        &mut self,
        id: u32,
        max: usize,
        fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let start = self.begin(SSH_FXP_DATA, id);
        let len_at = self.buf.len();
        self.buf.put_u32(0);
        self.buf.reserve(max);
        let spare = &mut self.buf.spare_capacity_mut()[..max];
        match fill(spare) {
            Ok(n) if n > 0 => {
                let n = n.min(max);
                // SAFETY: `fill` initialised the first `n` bytes of the spare capacity
                // (it returned their count, and `n <= max <= spare capacity`).
                unsafe { self.buf.set_len(self.buf.len() + n) };
                self.buf[len_at..len_at + 4].copy_from_slice(&(n as u32).to_be_bytes());
                self.finish(start);
                Ok(n)
            }
            other => {
                self.buf.truncate(start);
                other
            }
        }
    }

    /// Starts a NAME reply.
    pub fn names(&mut self, id: u32) -> NameList {
        let start = self.begin(SSH_FXP_NAME, id);
        let count_at = self.buf.len();
        self.buf.put_u32(0);
        NameList {
            start,
            count_at,
            count: 0,
        }
    }
}

impl NameList {
    /// Appends one entry; `longname` writes the long name in place.
    pub fn push(
        &mut self,
        out: &mut Out,
        name: &[u8],
        longname: impl FnOnce(&mut Vec<u8>),
        attrs: &Attrs,
    ) {
        put_string(&mut out.buf, name);
        let at = out.buf.len();
        out.buf.put_u32(0);
        longname(&mut out.buf);
        let n = (out.buf.len() - at - 4) as u32;
        out.buf[at..at + 4].copy_from_slice(&n.to_be_bytes());
        attrs.encode(&mut out.buf);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes this reply holds so far.
    pub fn size(&self, out: &Out) -> usize {
        out.buf.len() - self.start
    }

    pub fn finish(self, out: &mut Out) {
        out.buf[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_be_bytes());
        out.finish(self.start);
    }

    /// Drops the whole reply (no entries to send).
    pub fn abandon(self, out: &mut Out) {
        out.buf.truncate(self.start);
    }
}

/// Appends an SSH `string`: a u32 length and the bytes.
pub fn put_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.put_u32(s.len() as u32);
    buf.put_slice(s);
}

/// Writes the frame length of the packet starting at `start`.
fn patch_len(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_golden_bytes() {
        let mut out = Out::default();
        out.status(7, 2, "No such file");
        let expect: &[u8] = b"\0\0\0\x1d\x65\0\0\0\x07\0\0\0\x02\0\0\0\x0cNo such file\0\0\0\0";
        assert_eq!(out.as_bytes(), expect);
    }

    #[test]
    fn data_is_patched_or_rolled_back() {
        let mut out = Out::default();
        let n = out
            .data(1, 10, |buf| {
                for b in buf[..3].iter_mut() {
                    b.write(b'x');
                }
                Ok::<_, ()>(3)
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(out.as_bytes(), b"\0\0\0\x0c\x67\0\0\0\x01\0\0\0\x03xxx");
        let before = out.len();
        assert_eq!(out.data(2, 10, |_| Err::<usize, _>(5)), Err(5));
        assert_eq!(out.data(2, 10, |_| Ok::<_, ()>(0)), Ok(0));
        assert_eq!(out.len(), before);
    }

    #[test]
    fn name_list() {
        let mut out = Out::default();
        let mut names = out.names(3);
        names.push(
            &mut out,
            b"a",
            |b| b.extend_from_slice(b"la"),
            &Attrs::default(),
        );
        names.finish(&mut out);
        let expect: &[u8] = b"\0\0\0\x18\x68\0\0\0\x03\0\0\0\x01\0\0\0\x01a\0\0\0\x02la\0\0\0\0";
        assert_eq!(out.as_bytes(), expect);
    }
}
