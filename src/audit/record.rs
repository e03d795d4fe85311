//! One audit record and its two encodings: a JSON object on one line, and journald's
//! native protocol (the same fields, upper-cased, prefixed `SFTP_`).

/// The longest path a record carries; a longer one (only a failed request can name
/// one) is cut there and `<field>_truncated` says so. With it a record stays under
/// 32 KiB, one write(2) and one datagram.
const MAX_PATH: usize = 4096;

/// A field's value.
pub enum Value {
    Str(String),
    Text(&'static str),
    U64(u64),
    Bool(bool),
    /// A path as bytes: written as a string, and where it is not UTF-8 also as
    /// `<field>_b64` (standard base64 of the exact bytes).
    Path(Vec<u8>),
    /// Permission bits, written as four octal digits ("0644").
    Mode(u32),
    /// OPEN's flags, written with OpenSSH's names ("WRITE,CREATE,TRUNCATE").
    Flags(u32),
}

/// OpenSSH's names of the open flags, in its order.
const FLAG_NAMES: [(u32, &str); 6] = [
    (crate::wire::SSH_FXF_READ, "READ"),
    (crate::wire::SSH_FXF_WRITE, "WRITE"),
    (crate::wire::SSH_FXF_APPEND, "APPEND"),
    (crate::wire::SSH_FXF_CREAT, "CREATE"),
    (crate::wire::SSH_FXF_TRUNC, "TRUNCATE"),
    (crate::wire::SSH_FXF_EXCL, "EXCL"),
];

impl Value {
    /// The text of a mode or flags value.
    fn text(&self, out: &mut Vec<u8>) {
        match self {
            Value::Mode(m) => {
                for shift in [9, 6, 3, 0] {
                    out.push(b'0' + ((m >> shift) & 7) as u8);
                }
            }
            Value::Flags(f) => {
                let mut first = true;
                for (bit, name) in FLAG_NAMES {
                    if f & bit != 0 {
                        if !std::mem::take(&mut first) {
                            out.push(b',');
                        }
                        out.extend_from_slice(name.as_bytes());
                    }
                }
            }
            _ => {}
        }
    }
}

/// A record: its event, whether the operation worked, and its own fields.
pub struct Record {
    event: &'static str,
    /// `None`: it worked. Else the status name sent and the OS's text, if any.
    failure: Option<(&'static str, Option<String>)>,
    fields: Vec<(&'static str, Value)>,
    /// The journal's MESSAGE, where it is more than the event's name: an
    /// OpenSSH-style line.
    message: Option<String>,
}

/// The fields every record of a session carries.
pub struct Common<'a> {
    pub sid: &'a str,
    pub seq: u64,
    pub pid: u32,
    pub user: &'a str,
    pub uid: u32,
    pub client: &'a str,
}

impl Record {
    pub fn new(event: &'static str) -> Record {
        Record {
            event,
            failure: None,
            fields: Vec::with_capacity(12),
            message: None,
        }
    }

    pub fn field(mut self, name: &'static str, value: Value) -> Record {
        self.fields.push((name, value));
        self
    }

    pub fn path(self, name: &'static str, path: &[u8]) -> Record {
        self.field(name, Value::Path(path.to_vec()))
    }

    /// As `path`, taking the bytes it is given.
    pub fn path_owned(self, name: &'static str, path: Vec<u8>) -> Record {
        self.field(name, Value::Path(path))
    }

    pub fn u64(self, name: &'static str, v: u64) -> Record {
        self.field(name, Value::U64(v))
    }

    pub fn text(self, name: &'static str, v: &'static str) -> Record {
        self.field(name, Value::Text(v))
    }

    pub fn bool(self, name: &'static str, v: bool) -> Record {
        self.field(name, Value::Bool(v))
    }

    /// The operation failed: `status` is the SFTP status name sent, `error` the OS's
    /// text where an OS error was the cause.
    /// The record's paths as the client sees them (not a symlink's target text).
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.fields.iter().filter_map(|(name, v)| match v {
            Value::Path(p) if *name != "target" => Some(p.as_slice()),
            _ => None,
        })
    }

    pub fn failed(mut self, status: &'static str, error: Option<String>) -> Record {
        self.failure = Some((status, error));
        self
    }

    pub fn message(mut self, message: String) -> Record {
        self.message = Some(message);
        self
    }

    /// The record as one line of JSON, `\n`-terminated, appended to `out`. `c.sid`
    /// and the rest of the session's fields come pre-encoded (`Common::encode`).
    pub fn json_line(&self, out: &mut Vec<u8>, seq: u64, pre: &Encoded) {
        let mut o = Json {
            buf: out,
            first: true,
        };
        o.buf.push(b'{');
        o.key("v");
        o.num(super::VERSION);
        o.key("ts");
        o.buf.push(b'"');
        timestamp_into(o.buf);
        o.buf.push(b'"');
        o.key("event");
        o.plain(self.event);
        o.buf.extend_from_slice(&pre.sid);
        o.key("seq");
        o.num(seq);
        o.buf.extend_from_slice(&pre.rest);
        o.key("status");
        o.plain(if self.failure.is_some() {
            "error"
        } else {
            "ok"
        });
        if let Some((status, error)) = &self.failure {
            o.key("sftp_status");
            o.plain(status);
            if let Some(e) = error {
                o.key("error");
                o.str(e);
            }
        }
        for (name, value) in &self.fields {
            match value {
                Value::Str(s) => {
                    o.key(name);
                    o.str(s);
                }
                // The server's own words: nothing in them to escape.
                Value::Text(s) => {
                    o.key(name);
                    o.plain(s);
                }
                Value::U64(n) => {
                    o.key(name);
                    o.num(*n);
                }
                Value::Bool(b) => {
                    o.key(name);
                    o.raw(if *b { "true" } else { "false" });
                }
                Value::Mode(_) | Value::Flags(_) => {
                    o.key(name);
                    o.buf.push(b'"');
                    value.text(o.buf);
                    o.buf.push(b'"');
                }
                Value::Path(p) => {
                    let (p, cut) = cut(p);
                    o.key(name);
                    match std::str::from_utf8(p) {
                        Ok(text) => o.str(text),
                        Err(_) => {
                            o.str(&String::from_utf8_lossy(p));
                            o.key(&format!("{name}_b64"));
                            o.str(&base64(p));
                        }
                    }
                    if cut {
                        o.key(&format!("{name}_truncated"));
                        o.raw("true");
                    }
                }
            }
        }
        o.buf.extend_from_slice(b"}\n");
    }

    /// The record in journald's native protocol: `NAME=value` lines, or, where a
    /// value holds a newline, the name, a newline, the length (64-bit little-endian)
    /// and the bytes.
    pub fn journal(&self, c: &Common<'_>) -> Vec<u8> {
        let mut j = Vec::with_capacity(512);
        let status = if self.failure.is_some() {
            "error"
        } else {
            "ok"
        };
        let line = match (&self.message, self.event) {
            (Some(m), _) => m.clone(),
            (None, "transfer") => self.close_line(),
            (None, event) => event.to_string(),
        };
        let line = line.as_str();
        let message = match &self.failure {
            None => line.to_string(),
            Some((s, Some(e))) => format!("{line}: {s} ({e})"),
            Some((s, None)) => format!("{line}: {s}"),
        };
        put(&mut j, "MESSAGE", message.as_bytes());
        put(
            &mut j,
            "PRIORITY",
            if self.failure.is_some() { b"4" } else { b"6" },
        );
        put(&mut j, "SYSLOG_IDENTIFIER", b"sftp-server");
        put(&mut j, "MESSAGE_ID", message_id(self.event).as_bytes());
        put(&mut j, "SFTP_V", super::VERSION.to_string().as_bytes());
        put(&mut j, "SFTP_TS", timestamp().as_bytes());
        put(&mut j, "SFTP_EVENT", self.event.as_bytes());
        put(&mut j, "SFTP_SID", c.sid.as_bytes());
        put(&mut j, "SFTP_SEQ", c.seq.to_string().as_bytes());
        put(&mut j, "SFTP_PID", c.pid.to_string().as_bytes());
        put(&mut j, "SFTP_USER", c.user.as_bytes());
        put(&mut j, "SFTP_UID", c.uid.to_string().as_bytes());
        put(&mut j, "SFTP_CLIENT", c.client.as_bytes());
        put(&mut j, "SFTP_STATUS", status.as_bytes());
        if let Some((status, error)) = &self.failure {
            put(&mut j, "SFTP_SFTP_STATUS", status.as_bytes());
            if let Some(e) = error {
                put(&mut j, "SFTP_ERROR", e.as_bytes());
            }
        }
        for (name, value) in &self.fields {
            let key = format!("SFTP_{}", name.to_ascii_uppercase());
            match value {
                Value::Str(s) => put(&mut j, &key, s.as_bytes()),
                Value::Text(s) => put(&mut j, &key, s.as_bytes()),
                Value::U64(n) => put(&mut j, &key, n.to_string().as_bytes()),
                Value::Bool(b) => put(&mut j, &key, if *b { b"true" } else { b"false" }),
                Value::Mode(_) | Value::Flags(_) => {
                    let mut text = Vec::new();
                    value.text(&mut text);
                    put(&mut j, &key, &text);
                }
                // The journal takes any bytes: the path exactly as it is.
                Value::Path(p) => {
                    let (p, cut) = cut(p);
                    put(&mut j, &key, p);
                    if cut {
                        put(&mut j, &format!("{key}_TRUNCATED"), b"true");
                    }
                }
            }
        }
        j
    }
}

impl Record {
    /// OpenSSH's close line, for a transfer's journal MESSAGE.
    fn close_line(&self) -> String {
        let field = |name: &str| self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        let num = |name: &str| match field(name) {
            Some(Value::U64(n)) => *n,
            _ => 0,
        };
        let path = match field("path") {
            Some(Value::Path(p)) => String::from_utf8_lossy(p).into_owned(),
            _ => String::new(),
        };
        format!(
            "close \"{path}\" bytes read {} written {}",
            num("bytes_read"),
            num("bytes_written")
        )
    }
}

fn cut(p: &[u8]) -> (&[u8], bool) {
    match p.len() > MAX_PATH {
        true => (&p[..MAX_PATH], true),
        false => (p, false),
    }
}

/// A JSON object being written into a buffer: keys are the record's own plain
/// ASCII names; string values are escaped by serde_json.
struct Json<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl Json<'_> {
    fn key(&mut self, k: &str) {
        if !std::mem::take(&mut self.first) {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn str(&mut self, s: &str) {
        serde_json::to_writer(&mut *self.buf, s).expect("writing to memory");
    }

    fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// A string of the server's own that needs no escaping (names, statuses).
    fn plain(&mut self, s: &str) {
        debug_assert!(!s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
        self.buf.push(b'"');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }

    fn num(&mut self, n: u64) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// The session's own fields, encoded once for all its JSON records.
pub struct Encoded {
    /// `,"sid":"…"`
    sid: Vec<u8>,
    /// `,"pid":…,"user":"…","uid":…,"client":"…"`
    rest: Vec<u8>,
}

impl Common<'_> {
    pub fn encode(&self) -> Encoded {
        let mut sid = Vec::new();
        let mut o = Json {
            buf: &mut sid,
            first: false,
        };
        o.key("sid");
        o.str(self.sid);
        let mut rest = Vec::new();
        let mut o = Json {
            buf: &mut rest,
            first: false,
        };
        o.key("pid");
        o.num(self.pid.into());
        o.key("user");
        o.str(self.user);
        o.key("uid");
        o.num(self.uid.into());
        o.key("client");
        o.str(self.client);
        Encoded { sid, rest }
    }
}

fn put(j: &mut Vec<u8>, key: &str, value: &[u8]) {
    j.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        j.push(b'\n');
        j.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        j.push(b'=');
    }
    j.extend_from_slice(value);
    j.push(b'\n');
}

/// A fixed MESSAGE_ID for each kind of record, so that `journalctl MESSAGE_ID=...`
/// selects one kind.
fn message_id(event: &str) -> String {
    const KINDS: &[&str] = &[
        "session_start",
        "session_end",
        "transfer",
        "remove",
        "rmdir",
        "mkdir",
        "rename",
        "setstat",
        "symlink",
        "hardlink",
        "copy",
        "denied",
    ];
    let n = KINDS.iter().position(|k| *k == event).unwrap_or(0xff);
    format!("3a1f7c0e9d6b4e52a8c4d17f60b2e9{n:02x}")
}

/// Now, as RFC 3339 in UTC with microseconds: `2026-12-05T14:15:17.123456Z`.
pub fn timestamp() -> String {
    let mut s = Vec::with_capacity(27);
    timestamp_into(&mut s);
    String::from_utf8(s).expect("ASCII digits")
}

/// `timestamp()`, appended to `s`.
fn timestamp_into(s: &mut Vec<u8>) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil(days);
    let mut digits = |v: u64, n: u32, sep: u8| {
        for i in (0..n).rev() {
            s.push(b'0' + (v / 10u64.pow(i) % 10) as u8);
        }
        s.push(sep);
    };
    digits(y as u64, 4, b'-');
    digits(m.into(), 2, b'-');
    digits(day.into(), 2, b'T');
    digits(rem as u64 / 3600, 2, b':');
    digits(rem as u64 % 3600 / 60, 2, b':');
    digits(rem as u64 % 60, 2, b'.');
    digits(d.subsec_micros().into(), 6, b'Z');
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (days_from_civil
/// inverted, after Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, day)
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                s.push(A[(v >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_792), (2026, 12, 5));
        assert_eq!(civil(-1), (1969, 12, 31));
    }

    #[test]
    fn base64_of_bytes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\xff\xfe-bin"), "//4tYmlu");
    }

    #[test]
    fn json_line_escapes_and_marks_non_utf8_paths() {
        let c = Common {
            sid: "00",
            seq: 0,
            pid: 1,
            user: "u\"ser",
            uid: 0,
            client: "unix",
        };
        let mut line = Vec::new();
        Record::new("remove")
            .path("path", b"/a\nb\xff")
            .failed("NO_SUCH_FILE", None)
            .json_line(&mut line, 7, &c.encode());
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["user"], "u\"ser");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["status"], "error");
        assert_eq!(v["sftp_status"], "NO_SUCH_FILE");
        assert_eq!(v["path"], "/a\nb\u{fffd}");
        assert_eq!(v["path_b64"], base64(b"/a\nb\xff"));
        assert!(line.ends_with(b"}\n") && !line[..line.len() - 1].contains(&b'\n'));
    }
}
