//! Property tests of the wire format, run in-process against the library: truncated
//! and mutated request packets, attribute and reply round trips. Inputs come from a
//! small seeded PRNG, so every run checks the same cases; set `PROP_SEED` to try
//! others. The same request encoder and decode oracle (`packets`) serve the fuzz
//! targets in fuzz/, and `prop_fuzz_corpus_is_current` keeps their seed corpus in
//! step with the samples here.

pub mod packets;
pub mod session;

use packets::*;
use sftp_server::output::Out;
use sftp_server::wire::{self, Attrs, CheckFileForm, Reader, Request};
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// splitmix64: small, fast, and good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn new(stream: u64) -> Rng {
        let seed = std::env::var("PROP_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5f7f_2024_u64);
        Rng(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn u32(&mut self) -> u32 {
        // Edge values half the time: they are where decoders go wrong.
        if self.coin() {
            [0, 1, 3, 4, 0x7fff_ffff, 0x8000_0000, u32::MAX][self.below(7)]
        } else {
            self.next() as u32
        }
    }

    fn u64(&mut self) -> u64 {
        if self.coin() {
            [0, 1, u32::MAX as u64, i64::MAX as u64, u64::MAX][self.below(5)]
        } else {
            self.next()
        }
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// A path-like string: no NUL byte (the decoder refuses those in paths).
    fn path(&mut self) -> Vec<u8> {
        let parts: [&[u8]; 8] = [b"a", b"dir", b"..", b".", b"", b"~", b"\xff\xfe", b" x"];
        let n = self.below(5);
        let mut p: Vec<u8> = (0..n)
            .map(|_| parts[self.below(parts.len())].to_vec())
            .collect::<Vec<_>>()
            .join(&b'/');
        if self.coin() {
            p.insert(0, b'/');
        }
        p
    }

    fn attrs(&mut self) -> Attrs {
        Attrs {
            size: self.coin().then(|| self.u64()),
            uid_gid: self.coin().then(|| (self.u32(), self.u32())),
            permissions: self.coin().then(|| self.u32()),
            times: self.coin().then(|| (self.u32(), self.u32())),
        }
    }
}

/// Random field contents for one random request to borrow from.
struct Fields {
    p: [Vec<u8>; 2],
    h: [Vec<u8>; 2],
    data: Vec<u8>,
    ids: [Vec<u8>; 2],
    name: Vec<u8>,
}

impl Fields {
    fn new(rng: &mut Rng) -> Fields {
        let ids = |rng: &mut Rng| {
            let mut v = rng.bytes(24);
            v.truncate(v.len() / 4 * 4);
            v
        };
        // Extension names are C strings: no NUL.
        let mut name: Vec<u8> = rng.bytes(12).into_iter().map(|b| b.max(1)).collect();
        if sftp_server::requests::extension(&name).is_some() {
            name.push(b'!');
        }
        Fields {
            p: [rng.path(), rng.path()],
            h: [rng.bytes(12), rng.bytes(12)],
            data: rng.bytes(40),
            ids: [ids(rng), ids(rng)],
            name,
        }
    }
}

/// How many kinds of request `random_request` makes (every variant of `Request`).
const KINDS: usize = 34;

fn random_request<'a>(rng: &mut Rng, kind: usize, f: &'a Fields) -> Request<'a> {
    use Request::*;
    let id = rng.u32();
    let (p0, p1, h0, h1) = (&f.p[0][..], &f.p[1][..], &f.h[0][..], &f.h[1][..]);
    match kind {
        0 => Init { version: rng.u32() },
        1 => Open {
            id,
            filename: p0,
            pflags: rng.u32(),
            attrs: rng.attrs(),
        },
        2 => Close { id, handle: h0 },
        3 => Read {
            id,
            handle: h0,
            offset: rng.u64(),
            len: rng.u32(),
        },
        4 => Write {
            id,
            handle: h0,
            offset: rng.u64(),
            data: &f.data,
        },
        5 => Lstat { id, path: p0 },
        6 => Fstat { id, handle: h0 },
        7 => SetStat {
            id,
            path: p0,
            attrs: rng.attrs(),
        },
        8 => FSetStat {
            id,
            handle: h0,
            attrs: rng.attrs(),
        },
        9 => OpenDir { id, path: p0 },
        10 => ReadDir { id, handle: h0 },
        11 => Remove { id, filename: p0 },
        12 => Mkdir {
            id,
            path: p0,
            attrs: rng.attrs(),
        },
        13 => Rmdir { id, path: p0 },
        14 => RealPath { id, path: p0 },
        15 => Stat { id, path: p0 },
        16 => Rename {
            id,
            oldpath: p0,
            newpath: p1,
        },
        17 => ReadLink { id, path: p0 },
        18 => Symlink {
            id,
            targetpath: p0,
            linkpath: p1,
        },
        19 => PosixRename {
            id,
            oldpath: p0,
            newpath: p1,
        },
        20 => StatVfs { id, path: p0 },
        21 => FStatVfs { id, handle: h0 },
        22 => Hardlink {
            id,
            oldpath: p0,
            newpath: p1,
        },
        23 => Fsync { id, handle: h0 },
        24 => LSetStat {
            id,
            path: p0,
            attrs: rng.attrs(),
        },
        25 => Limits { id },
        26 => ExpandPath { id, path: p0 },
        27 => CopyData {
            id,
            read_from_handle: h0,
            read_from_offset: rng.u64(),
            read_data_length: rng.u64(),
            write_to_handle: h1,
            write_to_offset: rng.u64(),
        },
        28 => HomeDirectory { id, username: p0 },
        29 => UsersGroupsById {
            id,
            uids: &f.ids[0],
            gids: &f.ids[1],
        },
        30 => {
            let form = [
                CheckFileForm::Name,
                CheckFileForm::Handle,
                CheckFileForm::Paramiko,
            ][rng.below(3)];
            CheckFile {
                id,
                form,
                // A handle is any bytes; a name is a path.
                target: if form == CheckFileForm::Name { p0 } else { h0 },
                hash_algorithm_list: &f.data,
                start_offset: rng.u64(),
                length: rng.u64(),
                block_size: rng.u32(),
            }
        }
        31 => CopyFile {
            id,
            source_path: p0,
            destination_path: p1,
            overwrite_destination: rng.coin(),
        },
        32 => UnknownExtended { id, name: &f.name },
        _ => {
            let ptype = loop {
                let t = rng.next() as u8;
                if !is_known_type(t) {
                    break t;
                }
            };
            Unknown { id, ptype }
        }
    }
}

/// Runs `check` on `input`; a panic is re-raised with the input in hex, so that a
/// failure can be replayed.
#[track_caller]
fn with_input(what: &str, input: &[u8], check: impl FnOnce()) {
    if let Err(e) = catch_unwind(AssertUnwindSafe(check)) {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{what}: input {input:02x?}: {msg}");
    }
}

/// Every strict prefix of `packet` (whose whole decodes to `req`) is an error, with
/// the type and id the prefix holds.
fn assert_prefixes_fail(packet: &[u8], req: &Request<'_>) {
    assert_eq!(wire::decode(packet).as_ref(), Ok(req), "whole packet");
    for cut in 0..packet.len() {
        let prefix = &packet[..cut];
        match wire::decode(prefix) {
            Ok(r) => panic!("prefix of {cut} of {} bytes decoded: {r:?}", packet.len()),
            Err(bad) => {
                assert_eq!(bad.ptype, prefix.first().copied().unwrap_or(0));
                let id_known = cut >= 5 && packet[0] != SSH_FXP_INIT;
                assert_eq!(bad.id, id_known.then(|| req.id().unwrap()), "id at {cut}");
            }
        }
        check_decode(prefix);
    }
}

#[test]
fn prop_samples_cover_every_request_and_extension() {
    let samples = samples();
    let mut seen: Vec<_> = samples.iter().filter_map(|(_, r)| r.op()).collect();
    seen.dedup();
    let table: Vec<_> = sftp_server::requests::REQUESTS
        .iter()
        .map(|r| r.op)
        .collect();
    assert_eq!(
        seen, table,
        "one sample per row of the request table, in order"
    );
    for (name, req) in &samples {
        let enc = encode(req);
        with_input(name, &enc, || check_decode(&enc));
    }
}

#[test]
fn prop_every_truncated_prefix_of_every_request_is_an_error() {
    for (name, req) in samples() {
        let packet = encode(&req);
        with_input(name, &packet, || assert_prefixes_fail(&packet, &req));
    }
}

#[test]
fn prop_random_requests_round_trip_and_their_prefixes_fail() {
    let mut rng = Rng::new(1);
    for i in 0..4000 {
        let f = Fields::new(&mut rng);
        let req = random_request(&mut rng, i % KINDS, &f);
        let packet = encode(&req);
        with_input("random request", &packet, || {
            assert_prefixes_fail(&packet, &req);
            // Trailing bytes are ignored, as OpenSSH ignores them.
            let mut longer = packet.clone();
            longer.extend_from_slice(&[0xff; 9]);
            assert_eq!(
                wire::decode(&longer),
                Ok(req.clone()),
                "with trailing bytes"
            );
            check_decode(&longer);
        });
    }
}

#[test]
fn prop_nul_in_a_path_is_refused() {
    let mut rng = Rng::new(2);
    for (name, req) in samples() {
        let packet = encode(&req);
        // A NUL anywhere but at the very end (there it ends a C string, and is dropped).
        for path in paths(&req).into_iter().filter(|p| p.len() >= 2) {
            let at = field_offset(&packet, path);
            let mut bad = packet.clone();
            bad[at + rng.below(path.len() - 1)] = 0;
            with_input(name, &bad, || {
                let err = wire::decode(&bad).expect_err("a path with NUL must not decode");
                assert_eq!(err.error, wire::DecodeError::NulInString);
                assert_eq!(err.id, req.id());
            });
        }
    }
}

/// Where the bytes of the string `field` start in `packet` (after its length).
fn field_offset(packet: &[u8], field: &[u8]) -> usize {
    let mut needle = (field.len() as u32).to_be_bytes().to_vec();
    needle.extend_from_slice(field);
    packet
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("field in packet")
        + 4
}

/// One random change to a packet, of the kinds that break decoders: flipped bits,
/// edge-value lengths, inserted, removed and repeated bytes, cuts.
fn mutate(rng: &mut Rng, p: &mut Vec<u8>, other: &[u8]) {
    let at = |rng: &mut Rng, p: &Vec<u8>| rng.below(p.len() + 1);
    match rng.below(8) {
        0 if !p.is_empty() => {
            let i = rng.below(p.len());
            p[i] ^= 1 << rng.below(8);
        }
        1 if !p.is_empty() => {
            let i = rng.below(p.len());
            p[i] = [0, 1, 0x7f, 0x80, 0xff, b'/', b'.'][rng.below(7)];
        }
        2 if p.len() >= 4 => {
            let i = rng.below(p.len() - 3);
            let v = rng.u32().to_be_bytes();
            p[i..i + 4].copy_from_slice(&v);
        }
        3 => {
            let i = at(rng, p);
            let extra = rng.bytes(8);
            p.splice(i..i, extra);
        }
        4 if !p.is_empty() => {
            let i = rng.below(p.len());
            let n = rng.below(p.len() - i) + 1;
            p.drain(i..i + n);
        }
        5 => {
            let i = at(rng, p);
            p.truncate(i);
        }
        6 if !p.is_empty() => {
            let i = rng.below(p.len());
            let n = rng.below(p.len() - i) + 1;
            let copy = p[i..i + n].to_vec();
            let j = at(rng, p);
            p.splice(j..j, copy);
        }
        _ => {
            // Splice: our head, another packet's tail.
            let i = at(rng, p);
            let j = rng.below(other.len() + 1);
            p.truncate(i);
            p.extend_from_slice(&other[j..]);
        }
    }
}

#[test]
fn prop_random_mutations_of_valid_packets_never_panic() {
    let mut rng = Rng::new(3);
    let packets: Vec<Vec<u8>> = samples().iter().map(|(_, r)| encode(r)).collect();
    for round in 0..600 {
        for (k, base) in packets.iter().enumerate() {
            let mut p = base.clone();
            let other = &packets[(k + 1 + round) % packets.len()];
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut p, other);
            }
            with_input("mutated packet", &p, || check_decode(&p));
        }
    }
}

#[test]
fn prop_attrs_round_trip() {
    let mut rng = Rng::new(4);
    for _ in 0..5000 {
        let a = rng.attrs();
        let mut buf = Vec::new();
        a.encode(&mut buf);
        let mut ours = Vec::new();
        put_attrs(&mut ours, &a);
        assert_eq!(buf, ours, "encoding of {a:?}");
        let mut r = Reader::new(&buf);
        assert_eq!(Attrs::decode(&mut r), Ok(a));
        assert!(r.is_empty(), "decode reads the whole encoding");
        for cut in 0..buf.len() {
            assert!(
                Attrs::decode(&mut Reader::new(&buf[..cut])).is_err(),
                "prefix {cut} of {buf:02x?}"
            );
        }
        // Extended pairs are skipped whole, and unknown flag bits change nothing.
        let pairs = rng.below(3) as u32;
        let mut ext = buf.clone();
        let unknown = (rng.next() as u32) & 0x7fff_fff0;
        let flags = a.flags() | ATTR_EXTENDED | unknown;
        ext[..4].copy_from_slice(&flags.to_be_bytes());
        put_u32(&mut ext, pairs);
        for _ in 0..pairs {
            // The name is a C string (no NUL inside); the value is any bytes.
            let name: Vec<u8> = rng.bytes(6).into_iter().map(|b| b.max(1)).collect();
            put_str(&mut ext, &name);
            put_str(&mut ext, &rng.bytes(6));
        }
        let mut r = Reader::new(&ext);
        assert_eq!(Attrs::decode(&mut r), Ok(a), "with extensions: {ext:02x?}");
        assert!(r.is_empty());
        for cut in 0..ext.len() {
            assert!(Attrs::decode(&mut Reader::new(&ext[..cut])).is_err());
        }
    }
}

/// A reply as the client would decode it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Version(u32, Vec<(Vec<u8>, Vec<u8>)>),
    Status(u32, u32, Vec<u8>),
    Handle(u32, Vec<u8>),
    Data(u32, Vec<u8>),
    Name(u32, Vec<(Vec<u8>, Vec<u8>, Attrs)>),
    Attrs(u32, Attrs),
    Extended(u32, Vec<u8>),
}

/// Splits `bytes` into frames and decodes each, checking that every field is there
/// and nothing is left over.
fn parse_replies(bytes: &[u8]) -> Vec<Reply> {
    let mut r = Reader::new(bytes);
    let mut replies = Vec::new();
    while !r.is_empty() {
        let frame = r.string().expect("frame within the buffer");
        let mut f = Reader::new(frame);
        let ptype = f.u8().expect("type");
        let id = f.u32().expect("id or version");
        let s = |f: &mut Reader<'_>| f.string().expect("string").to_vec();
        let reply = match ptype {
            wire::SSH_FXP_VERSION => {
                let mut ext = Vec::new();
                while !f.is_empty() {
                    ext.push((s(&mut f), s(&mut f)));
                }
                Reply::Version(id, ext)
            }
            wire::SSH_FXP_STATUS => {
                let code = f.u32().expect("code");
                let msg = s(&mut f);
                assert_eq!(f.string(), Ok(&b""[..]), "language tag");
                Reply::Status(id, code, msg)
            }
            wire::SSH_FXP_HANDLE => Reply::Handle(id, s(&mut f)),
            wire::SSH_FXP_DATA => Reply::Data(id, s(&mut f)),
            wire::SSH_FXP_NAME => {
                let n = f.u32().expect("count");
                let entries = (0..n)
                    .map(|_| {
                        let name = s(&mut f);
                        let long = s(&mut f);
                        (name, long, Attrs::decode(&mut f).expect("attrs"))
                    })
                    .collect();
                Reply::Name(id, entries)
            }
            wire::SSH_FXP_ATTRS => Reply::Attrs(id, Attrs::decode(&mut f).expect("attrs")),
            wire::SSH_FXP_EXTENDED_REPLY => Reply::Extended(id, f.rest().to_vec()),
            t => panic!("unknown reply type {t}"),
        };
        assert!(f.is_empty(), "bytes left in {reply:?}");
        replies.push(reply);
    }
    replies
}

/// A file holding `data` that no directory names, opened for reading (or, with
/// `write_only`, only for writing).
fn unlinked_file(data: &[u8], write_only: bool) -> std::fs::File {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("sftp-props-{}-{n}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(!write_only)
        .write(write_only)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

/// Writes one random reply into `out` and returns it, or writes one that is then
/// withdrawn (rolled back, abandoned, or a DATA whose read failed) and returns None.
fn random_reply(rng: &mut Rng, out: &mut Out) -> Option<Reply> {
    let id = rng.u32();
    Some(match rng.below(10) {
        0 => {
            let ext: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.below(3))
                .map(|_| (b"x@y".to_vec(), b"1".to_vec()))
                .collect();
            let strs: Vec<(String, String)> = ext
                .iter()
                .map(|(a, b)| {
                    (
                        String::from_utf8(a.clone()).unwrap(),
                        String::from_utf8(b.clone()).unwrap(),
                    )
                })
                .collect();
            let refs: Vec<(&str, &str)> =
                strs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            out.version(id, &refs);
            Reply::Version(id, ext)
        }
        1 => {
            let code = rng.below(9) as u32;
            let msg = ["", "Success", "No such file", "ümlaut"][rng.below(4)];
            out.status(id, code, msg);
            Reply::Status(id, code, msg.as_bytes().to_vec())
        }
        2 => {
            let h = rng.bytes(12);
            out.handle(id, &h);
            Reply::Handle(id, h)
        }
        3 => {
            let data = rng.bytes(300);
            let max = data.len() + rng.below(3);
            let file = unlinked_file(&data, false);
            let n = out.data(id, file.as_fd(), 0, max).unwrap();
            assert_eq!(n, data.len());
            if data.is_empty() {
                return None; // nothing read: no reply
            }
            Reply::Data(id, data)
        }
        4 => {
            // A descriptor that cannot be read: the reply is withdrawn.
            let file = unlinked_file(b"data", true);
            assert!(out.data(id, file.as_fd(), 0, 64).is_err());
            return None;
        }
        5 => {
            let mut list = out.names(id);
            let mut entries = Vec::new();
            for _ in 0..rng.below(4) {
                let (name, long, a) = (rng.bytes(8), rng.bytes(20), rng.attrs());
                list.push(out, &name, |b| b.extend_from_slice(&long), &a);
                entries.push((name, long, a));
            }
            assert_eq!(list.count() as usize, entries.len());
            if rng.below(4) == 0 {
                list.abandon(out);
                return None;
            }
            list.finish(out);
            Reply::Name(id, entries)
        }
        6 => {
            let a = rng.attrs();
            out.attrs(id, &a);
            Reply::Attrs(id, a)
        }
        7 => {
            let body = rng.bytes(40);
            out.extended_reply(id, |b| b.extend_from_slice(&body));
            Reply::Extended(id, body)
        }
        _ => {
            let mark = out.mark();
            out.status(id, 4, "Failure");
            out.handle(id, b"h");
            out.rollback(mark);
            return None;
        }
    })
}

#[test]
fn prop_reply_framing_round_trips_through_out() {
    let mut rng = Rng::new(5);
    for _ in 0..500 {
        let mut out = Out::default();
        let mut expect = Vec::new();
        for _ in 0..rng.below(12) {
            expect.extend(random_reply(&mut rng, &mut out));
        }
        let got = parse_replies(out.as_bytes());
        assert_eq!(got, expect);
        out.clear();
        assert!(out.is_empty());
    }
}

#[test]
fn prop_session_input_format_round_trips() {
    let mut rng = Rng::new(6);
    for _ in 0..500 {
        let header: [u8; SESSION_HEADER] = std::array::from_fn(|_| rng.next() as u8);
        let bodies: Vec<Vec<u8>> = (0..rng.below(6)).map(|_| rng.bytes(20)).collect();
        let input = session_input(header, &bodies);
        let (h, b) = split_session_input(&input);
        assert_eq!(h, header);
        assert_eq!(b, bodies);
    }
}

/// The fuzz targets' seed corpus: one file per request kind. Checked in under
/// fuzz/corpus/; `PROP_WRITE_CORPUS=1` rewrites it from the samples.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (name, req) in samples() {
        let body = encode(&req);
        files.push((format!("decode/{name}"), body.clone()));
        files.push((format!("session/{name}"), session_seed(&body)));
    }
    // The policy settings of the session header: read-only, and a table of 2 handles.
    let write = encode(&samples()[4].1);
    let mut ro = session_seed(&write);
    ro[0] = 0x01;
    files.push(("session/config-read-only".into(), ro));
    let mut small = session_seed(&write);
    small[0] = 0x02;
    files.push(("session/config-two-handles".into(), small));
    files
}

#[test]
fn prop_fuzz_corpus_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = std::env::var_os("PROP_WRITE_CORPUS").is_some();
    for (name, bytes) in corpus() {
        let path = root.join(&name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (PROP_WRITE_CORPUS=1 writes it)", path.display()));
        assert_eq!(
            on_disk, bytes,
            "{name} differs (PROP_WRITE_CORPUS=1 rewrites it)"
        );
    }
}

#[test]
fn prop_confined_packets_name_nothing_outside() {
    let mut rng = Rng::new(7);
    for i in 0..4000 {
        let f = Fields::new(&mut rng);
        let req = random_request(&mut rng, i % KINDS, &f);
        let mut packet = encode(&req);
        let trailing = rng.bytes(3);
        packet.extend_from_slice(&trailing);
        with_input("confined packet", &packet, || {
            let confined = session::confine(&packet);
            let again = wire::decode(&confined).expect("still decodes");
            assert_eq!(again.id(), req.id());
            assert_eq!(paths(&again).len(), paths(&req).len());
            for (p, orig) in paths(&again).into_iter().zip(paths(&req)) {
                assert!(session::is_confined(p), "{orig:?} became {p:?}");
                assert_eq!(p, session::confine_path(orig));
            }
            assert!(confined.ends_with(&trailing), "trailing bytes kept");
        });
    }
}
