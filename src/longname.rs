//! The `ls -l` style line READDIR sends as each entry's long name, byte for byte as
//! OpenSSH's server writes it, because WinSCP, FileZilla and others parse it:
//! mode string, link count, owner, group, size, date (with the six-months rule, in
//! the server's local time) and name.

use nix::libc;
use nix::sys::stat::FileStat;
use std::collections::HashMap;
use std::io::Write;

/// Half a year, in seconds: older (or future) times show the year instead of the time.
const SIX_MONTHS: i64 = 365 * 24 * 60 * 60 / 2;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// User and group names by id, looked up once each per session.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
}

impl Names {
    /// The user's name, or the number when the id has no name.
    pub fn user(&mut self, uid: u32) -> &[u8] {
        self.users.entry(uid).or_insert_with(|| {
            match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                Ok(Some(u)) => u.name.into_bytes(),
                _ => uid.to_string().into_bytes(),
            }
        })
    }

    /// The group's name, or the number when the id has no name.
    pub fn group(&mut self, gid: u32) -> &[u8] {
        self.groups.entry(gid).or_insert_with(|| {
            match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
                Ok(Some(g)) => g.name.into_bytes(),
                _ => gid.to_string().into_bytes(),
            }
        })
    }
}

/// Appends the long name of `name` with status `st` to `out`, given the current time.
pub fn write(out: &mut Vec<u8>, name: &[u8], st: &FileStat, names: &mut Names, now: i64) {
    let start = out.len();
    mode_string(out, st.st_mode);
    // The mode string is followed by a space (BSD strmode's), then "%3s " link count.
    let _ = write!(out, " {:>3} ", st.st_nlink);
    pad(out, names.user(st.st_uid), 8);
    out.push(b' ');
    pad(out, names.group(st.st_gid), 8);
    let _ = write!(out, " {:>8} ", st.st_size as u64);
    date(out, st.st_mtime, now);
    out.push(b' ');
    out.extend_from_slice(name);
    // OpenSSH formats into a 1024-byte buffer; match its truncation.
    out.truncate(start + (out.len() - start).min(1023));
}

/// Left-aligned in at least `width` columns, as `%-*s`.
fn pad(out: &mut Vec<u8>, s: &[u8], width: usize) {
    out.extend_from_slice(s);
    for _ in s.len()..width {
        out.push(b' ');
    }
}

/// The ten-character mode string plus a trailing space, as BSD `strmode`.
fn mode_string(out: &mut Vec<u8>, mode: u32) {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => b'd',
        libc::S_IFCHR => b'c',
        libc::S_IFBLK => b'b',
        libc::S_IFREG => b'-',
        libc::S_IFLNK => b'l',
        libc::S_IFSOCK => b's',
        libc::S_IFIFO => b'p',
        _ => b'?',
    };
    out.push(kind);
    let bit = |m: u32, c: u8| if mode & m != 0 { c } else { b'-' };
    let exec = |x: u32, special: u32, set: u8, unset: u8| match (mode & x != 0, mode & special != 0)
    {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => b'x',
        (false, false) => b'-',
    };
    out.extend_from_slice(&[
        bit(0o400, b'r'),
        bit(0o200, b'w'),
        exec(0o100, 0o4000, b's', b'S'),
        bit(0o040, b'r'),
        bit(0o020, b'w'),
        exec(0o010, 0o2000, b's', b'S'),
        bit(0o004, b'r'),
        bit(0o002, b'w'),
        exec(0o001, 0o1000, b't', b'T'),
        b' ',
    ]);
}

/// `%b %e %H:%M` for times in the last six months, `%b %e  %Y` otherwise, in local
/// time; nothing when the time cannot be converted.
fn date(out: &mut Vec<u8>, mtime: i64, now: i64) {
    let Some(tm) = local_time(mtime) else {
        return;
    };
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("???");
    if now - SIX_MONTHS < mtime && now >= mtime {
        let _ = write!(
            out,
            "{} {:>2} {:02}:{:02}",
            month, tm.tm_mday, tm.tm_hour, tm.tm_min
        );
    } else {
        let _ = write!(out, "{} {:>2}  {}", month, tm.tm_mday, tm.tm_year + 1900);
    }
}

/// `%Y%m%d-%H:%M:%S` in local time, as OpenSSH's log lines show times.
pub fn stamp(t: i64) -> String {
    match local_time(t) {
        Some(tm) => format!(
            "{:04}{:02}{:02}-{:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        ),
        None => String::new(),
    }
}

fn local_time(t: i64) -> Option<libc::tm> {
    let t = t as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::uninit();
    // SAFETY: localtime_r writes the whole struct on success and returns null on
    // failure; both pointers are valid for the call.
    let r = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if r.is_null() {
        None
    } else {
        // SAFETY: initialised by the successful call above.
        Some(unsafe { tm.assume_init() })
    }
}

/// Reads the time zone once (localtime_r does not promise to).
pub fn init_time_zone() {
    unsafe extern "C" {
        fn tzset();
    }
    // SAFETY: tzset takes no arguments and only reads the environment.
    unsafe { tzset() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings() {
        let s = |m| {
            let mut v = Vec::new();
            mode_string(&mut v, m);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(s(0o100644), "-rw-r--r-- ");
        assert_eq!(s(0o040755), "drwxr-xr-x ");
        assert_eq!(s(0o120777), "lrwxrwxrwx ");
        assert_eq!(s(0o104755), "-rwsr-xr-x ");
        assert_eq!(s(0o102644), "-rw-r-Sr-- ");
        assert_eq!(s(0o041777), "drwxrwxrwt ");
        assert_eq!(s(0o041776), "drwxrwxrwT ");
    }
}
