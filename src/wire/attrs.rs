//! File attributes as version 3 carries them: each field present only when its flag is.

use super::reader::{DecodeError, Reader};
use super::*;
use bytes::BufMut;
use nix::sys::stat::FileStat;

/// The `ATTRS` structure. Extended pairs a client sends are read and ignored, as
/// OpenSSH does; this server never sends any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    /// uid and gid travel together.
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// atime and mtime travel together, as u32 seconds.
    pub times: Option<(u32, u32)>,
}

impl Attrs {
    /// No attribute at all: a SETSTAT with these changes nothing, and succeeds
    /// without looking at the path, as in OpenSSH.
    pub fn is_empty(&self) -> bool {
        self.size.is_none()
            && self.uid_gid.is_none()
            && self.permissions.is_none()
            && self.times.is_none()
    }

    /// The attributes OpenSSH reports for a file: size, owner, full mode with the
    /// file-type bits, and times truncated to u32 seconds.
    pub fn from_stat(st: &FileStat) -> Attrs {
        Attrs {
            size: Some(st.st_size as u64),
            uid_gid: Some((st.st_uid, st.st_gid)),
            permissions: Some(st.st_mode),
            times: Some((st.st_atime as u32, st.st_mtime as u32)),
        }
    }

    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if self.size.is_some() {
            f |= SSH_FILEXFER_ATTR_SIZE;
        }
        if self.uid_gid.is_some() {
            f |= SSH_FILEXFER_ATTR_UIDGID;
        }
        if self.permissions.is_some() {
            f |= SSH_FILEXFER_ATTR_PERMISSIONS;
        }
        if self.times.is_some() {
            f |= SSH_FILEXFER_ATTR_ACMODTIME;
        }
        f
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Attrs, DecodeError> {
        let flags = r.u32()?;
        let mut a = Attrs::default();
        if flags & SSH_FILEXFER_ATTR_SIZE != 0 {
            a.size = Some(r.u64()?);
        }
        if flags & SSH_FILEXFER_ATTR_UIDGID != 0 {
            a.uid_gid = Some((r.u32()?, r.u32()?));
        }
        if flags & SSH_FILEXFER_ATTR_PERMISSIONS != 0 {
            a.permissions = Some(r.u32()?);
        }
        if flags & SSH_FILEXFER_ATTR_ACMODTIME != 0 {
            a.times = Some((r.u32()?, r.u32()?));
        }
        if flags & SSH_FILEXFER_ATTR_EXTENDED != 0 {
            let count = r.u32()?;
            // Each pair takes at least 8 bytes, so a bogus count runs out of input
            // quickly; nothing is allocated for it.
            for _ in 0..count {
                // The name is a C string to OpenSSH (a NUL inside is malformed); the
                // value may be anything.
                r.path()?;
                r.string()?;
            }
        }
        Ok(a)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.flags());
        if let Some(size) = self.size {
            out.put_u64(size);
        }
        if let Some((uid, gid)) = self.uid_gid {
            out.put_u32(uid);
            out.put_u32(gid);
        }
        if let Some(perm) = self.permissions {
            out.put_u32(perm);
        }
        if let Some((atime, mtime)) = self.times {
            out.put_u32(atime);
            out.put_u32(mtime);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = Attrs {
            size: Some(1 << 40),
            uid_gid: Some((1, 2)),
            permissions: Some(0o100644),
            times: Some((3, 4)),
        };
        let mut buf = Vec::new();
        a.encode(&mut buf);
        assert_eq!(buf.len(), 4 + 8 + 8 + 4 + 8);
        assert_eq!(Attrs::decode(&mut Reader::new(&buf)), Ok(a));
        for cut in 0..buf.len() {
            assert!(Attrs::decode(&mut Reader::new(&buf[..cut])).is_err());
        }
    }

    #[test]
    fn extended_pairs_are_skipped() {
        let mut buf = Vec::new();
        buf.put_u32(SSH_FILEXFER_ATTR_EXTENDED | SSH_FILEXFER_ATTR_PERMISSIONS);
        buf.put_u32(0o644);
        buf.put_u32(1);
        buf.put_u32(1);
        buf.put_u8(b'k');
        buf.put_u32(0);
        let a = Attrs::decode(&mut Reader::new(&buf)).unwrap();
        assert_eq!(a.permissions, Some(0o644));
        let mut huge = Vec::new();
        huge.put_u32(SSH_FILEXFER_ATTR_EXTENDED);
        huge.put_u32(u32::MAX);
        assert!(Attrs::decode(&mut Reader::new(&huge)).is_err());
    }
}
