//! Runs one request sequence against OpenSSH's sftp-server and ours in lock-step, each in
//! its own copy of one scratch tree, and compares every reply and, at the end, the trees.
//!
//! Layout of a pair's scratch directory: `t/` is the tree the fixture builds; `a/r` and
//! `b/r` are exact copies of it (`tree::copy`: `cp -a`, but through descriptors, since
//! the tree has paths longer than PATH_MAX). OpenSSH's server runs in `a/r/w`, ours in
//! `b/r/w`. The copy's root, the one masked in names and written `{ROOT}` in requests,
//! is `a` (`b`): two levels of `..` from the working directory, and symbolic links the
//! run makes there, stay inside each server's own copy.
//!
//! Each request goes to OpenSSH first, then to ours, and is followed by a barrier (an
//! unknown extended request both answer at once), so that "no reply" is seen without
//! waiting for a timeout. A request OpenSSH cannot decode goes alone: OpenSSH's server
//! would read its missing fields from the barrier.
//!
//! Masked before comparing, and nothing else: handle bytes; times (and the date column
//! of long names) that fall in the run's own time span ("now": set by the run, never
//! by the fixture, whose times are fixed); the copy's absolute root in names; the
//! free-space counters of statvfs replies (they move with every file the machine
//! writes). Differences that remain are errors unless an entry of `allowed::ALLOWED`
//! accepts them. Inode numbers are never compared (SFTP v3 does not carry them).
//!
//! Confined (`Pair::with`), ours runs with `--root` set to its copy and starts in the
//! same directory as OpenSSH's; paths are then shown on both sides as the confined
//! client sees them (OpenSSH's copy root becomes `/`), see [`View`].
//!
//! When a session ends (a server exits, or an allowed difference leaves the two
//! sessions apart), both servers are restarted on the same copies, after comparing the
//! trees or, if OpenSSH may have changed its copy where ours did not, after copying
//! OpenSSH's tree over ours.

use super::allowed::{self, Allowed};
use super::ops::{H, Op, Q, ROOT, Resolve, Step, replace};
use super::tree;
use crate::support::raw::*;
use crate::support::{Scratch, Server, server_bin, wait_bounded};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// OpenSSH's server, the reference.
pub const OPENSSH_BIN: &str = "/usr/lib/openssh/sftp-server";
/// Where the fixture's tree lies inside each copy.
pub const TREE: &str = "r";
/// The working directory inside the fixture's tree.
pub const WORK: &str = "w";
/// Both servers get the same options: log to stderr (discarded), a fixed umask.
const ARGS: &[&str] = &["-e", "-u", "022"];
const BARRIER_ID: u32 = 0xB0B0_B0B0;
const BARRIER_NAME: &[u8] = b"barrier@diff.invalid";
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for anything after a packet of an unknown type. OpenSSH's server
/// answers nothing after one, not even the barrier.
const SILENCE_WAIT: Duration = Duration::from_millis(500);
/// READDIR calls in one listing before the harness gives up on it.
const MAX_READDIR_CALLS: usize = 2000;
/// Failure messages show at most this many of the last steps.
const MAX_HISTORY_SHOWN: usize = 5000;
/// Replaces a time that lies in the run's own time span.
pub const NOW: u32 = 0x7fff_fffe;

/// `SFTP_DIFF_VERBOSE=1`: print every step and OpenSSH's outcome (and ours where it
/// differs) as the run goes.
fn verbose() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var_os("SFTP_DIFF_VERBOSE").is_some_and(|v| v != "0"))
}

/// Ids the scenarios must not use: the barrier's.
pub fn reserved_id(id: u32) -> bool {
    id == BARRIER_ID
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// How a session stood after a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Still serving: the barrier was answered.
    Alive,
    /// The server closed the connection and exited with this status.
    Exited(Option<i32>),
    /// Nothing more within `REPLY_TIMEOUT`.
    Timeout,
    /// Nothing more within `SILENCE_WAIT` after a packet of a type the server does not
    /// know: the server is taken to ignore the rest of the session.
    Silent,
    /// A reply that is not SFTP v3.
    Broken(String),
}

/// Everything one server sent in answer to one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub replies: Vec<Reply>,
    pub end: End,
}

impl Outcome {
    /// The single STATUS the server sent, if that is all it sent and it is alive.
    pub fn only_status(&self) -> Option<(u32, u32, &[u8])> {
        match (&self.replies[..], &self.end) {
            ([Reply::Status { id, code, msg, .. }], End::Alive) => Some((*id, *code, msg)),
            _ => None,
        }
    }
}

/// What a handle argument named on each side when the request was sent.
#[derive(Clone, Debug)]
pub struct HandleUse {
    /// The handle was obtained and has since been closed (on both sides).
    pub closed: bool,
    /// The OPEN flags of the step that gave the handle (None: an OPENDIR's handle, or
    /// made-up bytes).
    pub pflags: Option<u32>,
    /// For a closed handle: the later step whose open handle OpenSSH's bytes now name.
    pub openssh_reaches: Option<usize>,
}

/// One step as sent: the request, the packets each server got, and its handles.
pub struct Sent<'a> {
    pub step: &'a Step,
    /// Ours runs confined to its copy (`--root`).
    pub confined: bool,
    /// (packet type, body) for OpenSSH and for ours.
    pub packets: [(u8, Vec<u8>); 2],
    pub handles: Vec<HandleUse>,
}

/// The result of a step that did not fail.
#[derive(Clone, Copy, Debug)]
pub enum Verdict {
    Same,
    Allowed(&'static Allowed),
}

/// A difference that no mask and no allowed entry explains.
#[derive(Debug)]
pub struct Mismatch {
    /// The step index, None for session start and the final tree comparison.
    pub step: Option<usize>,
    pub what: String,
}

/// How a side's server sees its copy, and how its paths are shown for comparison.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum View {
    /// Unconfined, with an unconfined partner: the copy's absolute root is shown as
    /// `ROOT`.
    Marked,
    /// Unconfined, with a confined partner: paths are shown as the confined server
    /// names them, the copy's root as `/`.
    Inside,
    /// Confined to the copy with `--root`: its paths are shown as they are.
    Confined,
}

/// One server in its copy of the tree.
pub struct Side {
    bin: PathBuf,
    pub root: PathBuf,
    root_bytes: Vec<u8>,
    view: View,
    server: Option<Server>,
    client: Option<Client>,
    /// The handle each step got, by step index.
    handles: HashMap<usize, Vec<u8>>,
    /// Open handles: their bytes and the step that got them.
    live: HashMap<Vec<u8>, usize>,
}

impl Resolve for Side {
    fn path(&self, p: &[u8]) -> Vec<u8> {
        match self.view {
            View::Marked | View::Inside => replace(p, ROOT, &self.root_bytes),
            View::Confined if p == ROOT => b"/".to_vec(),
            View::Confined => replace(p, ROOT, b""),
        }
    }
    fn handle(&self, h: &H) -> Vec<u8> {
        match h {
            H::Of(step) => self.handles.get(step).cloned().unwrap_or_default(),
            H::Bytes(b) => b.clone(),
        }
    }
}

impl Side {
    fn new(bin: PathBuf, root: PathBuf, view: View) -> Side {
        Side {
            bin,
            root_bytes: root.as_os_str().as_bytes().to_vec(),
            root,
            view,
            server: None,
            client: None,
            handles: HashMap::new(),
            live: HashMap::new(),
        }
    }

    /// A path or link text from this side's server as the comparison shows it.
    pub fn shown(&self, s: &[u8]) -> Vec<u8> {
        match self.view {
            View::Marked => replace(s, &self.root_bytes, ROOT),
            View::Inside if s == self.root_bytes.as_slice() => b"/".to_vec(),
            View::Inside => match s.strip_prefix(self.root_bytes.as_slice()) {
                Some(rest) if rest.starts_with(b"/") => rest.to_vec(),
                _ => s.to_vec(),
            },
            View::Confined => s.to_vec(),
        }
    }

    /// Starts a session and returns its answer to INIT.
    fn start(&mut self) -> Outcome {
        let root = self
            .root
            .to_str()
            .expect("scratch paths are UTF-8")
            .to_string();
        let start = format!("/{TREE}/{WORK}");
        let mut args = ARGS.to_vec();
        if self.view == View::Confined {
            args.extend(["--root", &root, "-d", &start]);
        }
        let server = Server::spawn_with(
            &self.bin,
            &self.root.join(TREE).join(WORK),
            &args,
            Stdio::null(),
        );
        let client = Client::new(server.sock.try_clone().expect("dup socket"));
        client.set_timeout(REPLY_TIMEOUT);
        self.server = Some(server);
        self.client = Some(client);
        self.live.clear();
        let init = frame(SSH_FXP_INIT, &3u32.to_be_bytes());
        let mut replies = Vec::new();
        let end = self.exchange(&init, &mut replies);
        Outcome { replies, end }
    }

    /// Ends the session (EOF on its input) and returns the exit status.
    fn stop(&mut self) -> Option<Option<i32>> {
        self.client = None;
        self.live.clear();
        self.server.take().map(|s| s.finish().code())
    }

    fn alive(&self) -> bool {
        self.server.is_some()
    }

    /// Sends `packet` and the barrier; collects replies until the barrier's answer.
    fn exchange(&mut self, packet: &[u8], replies: &mut Vec<Reply>) -> End {
        let Some(client) = self.client.as_mut() else {
            return End::Exited(None);
        };
        let typ = packet.get(4).copied().unwrap_or(0);
        let unknown = !allowed::known_type(typ);
        let barrier = Request::Extended {
            name: BARRIER_NAME,
            data: b"",
        }
        .encode(BARRIER_ID);
        // A server that has just exited cannot be written to; what it sent is still read.
        if !unknown && !allowed::decodes(typ, &packet[5.min(packet.len())..]) {
            // Alone, so that OpenSSH's server, which reads a short request's missing
            // fields from whatever follows it in its buffer, finds nothing there.
            // Both servers answer such a request at once, with a reply or by exiting.
            let _ = client.try_send_raw(packet);
            client.set_timeout(REPLY_TIMEOUT);
            match client.recv() {
                Ok(r) => replies.push(r),
                Err(RecvError::Timeout) => {}
                Err(RecvError::Eof | RecvError::Truncated) => return self.closed(),
                Err(RecvError::Malformed(m)) => {
                    self.stop();
                    return End::Broken(m);
                }
                Err(RecvError::Io(e)) => {
                    self.stop();
                    return End::Broken(e.to_string());
                }
            }
            let _ = client.try_send_raw(&barrier);
        } else {
            client.set_timeout(if unknown { SILENCE_WAIT } else { REPLY_TIMEOUT });
            let mut out = packet.to_vec();
            out.extend(barrier);
            let _ = client.try_send_raw(&out);
        }
        let end = until_barrier(client, unknown, replies);
        match end {
            End::Alive | End::Timeout => end,
            End::Silent => {
                self.stop();
                end
            }
            End::Exited(_) => self.closed(),
            End::Broken(_) => {
                self.stop();
                end
            }
        }
    }

    /// The server closed the connection: its exit status.
    fn closed(&mut self) -> End {
        self.client = None;
        let mut server = self.server.take().expect("server");
        End::Exited(wait_bounded(&mut server.child, REPLY_TIMEOUT).code())
    }

    /// Sends one step; a READDIR step repeats until a reply other than NAME.
    fn run(&mut self, index: usize, step: &Step) -> ((u8, Vec<u8>), Outcome) {
        let (typ, body) = step.op.encode(step.id, self);
        let packet = frame(typ, &body);
        let mut replies = Vec::new();
        let mut calls = 0;
        let end = loop {
            calls += 1;
            let end = self.exchange(&packet, &mut replies);
            let listing = matches!(step.op, Op::Readdir(_))
                && end == End::Alive
                && matches!(replies.last(), Some(Reply::Name { .. }));
            if !listing || calls >= MAX_READDIR_CALLS {
                break end;
            }
        };
        self.track(index, &step.op, &replies);
        ((typ, body), Outcome { replies, end })
    }

    /// Sends `steps` (well-formed requests of known types) in one write with the
    /// barrier after the last, and gives each step the replies that carry its id.
    /// `first` is the first step's index.
    fn run_many(&mut self, first: usize, steps: &[Step]) -> (Vec<(u8, Vec<u8>)>, Vec<Outcome>) {
        let packets: Vec<(u8, Vec<u8>)> = steps.iter().map(|s| s.op.encode(s.id, self)).collect();
        let mut replies = Vec::new();
        let end = match self.client.as_mut() {
            None => End::Exited(None),
            Some(client) => {
                let mut bytes = Vec::new();
                for (typ, body) in &packets {
                    bytes.extend(frame(*typ, body));
                }
                bytes.extend(
                    Request::Extended {
                        name: BARRIER_NAME,
                        data: b"",
                    }
                    .encode(BARRIER_ID),
                );
                client.set_timeout(REPLY_TIMEOUT);
                let _ = client.try_send_raw(&bytes);
                until_barrier(client, false, &mut replies)
            }
        };
        let end = match end {
            End::Exited(_) => self.closed(),
            End::Broken(_) | End::Silent => {
                self.stop();
                end
            }
            End::Alive | End::Timeout => end,
        };
        // Replies must come in the order of the requests: each step takes those
        // with its id up to the first with another id.
        let mut rest = replies.into_iter().peekable();
        let mut outcomes: Vec<Outcome> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let mut mine = Vec::new();
                while let Some(r) = rest.next_if(|r| r.id() == Some(step.id)) {
                    mine.push(r);
                }
                self.track(first + i, &step.op, &mine);
                Outcome {
                    replies: mine,
                    end: end.clone(),
                }
            })
            .collect();
        let stray: Vec<Reply> = rest.collect();
        if !stray.is_empty()
            && let Some(last) = outcomes.last_mut()
        {
            // Replies out of order or to no request: shown with the last step.
            last.end = End::Broken(format!("replies out of order: {stray:?}"));
        }
        // A run ends at a READDIR, whose listing is then read to the end as in a
        // step-by-step run: the two servers put different numbers of entries in a
        // reply, so one READDIR each would not list the same.
        if let (Some(step), Some((typ, body)), Some(last)) =
            (steps.last(), packets.last(), outcomes.last_mut())
            && matches!(step.op.base(), Op::Readdir(_))
        {
            let packet = frame(*typ, body);
            let mut calls = 1;
            while last.end == End::Alive
                && matches!(last.replies.last(), Some(Reply::Name { .. }))
                && calls < MAX_READDIR_CALLS
            {
                calls += 1;
                last.end = self.exchange(&packet, &mut last.replies);
            }
        }
        (packets, outcomes)
    }

    /// Keeps the handle tables: which step got which handle, which are open.
    fn track(&mut self, index: usize, op: &Op, replies: &[Reply]) {
        match (op.base(), replies) {
            (Op::Open(..) | Op::Opendir(_), [Reply::Handle { handle, .. }]) => {
                self.handles.insert(index, handle.clone());
                self.live.insert(handle.clone(), index);
            }
            (
                Op::Close(h),
                [
                    Reply::Status {
                        code: SSH_FX_OK, ..
                    },
                ],
            ) => {
                let bytes = self.handle(h);
                self.live.remove(&bytes);
            }
            _ => {}
        }
    }
}

/// Reads replies into `replies` until the barrier's answer; how the server ended up.
/// After a packet of an `unknown` type, a silence means it ignores the rest.
fn until_barrier(client: &mut Client, unknown: bool, replies: &mut Vec<Reply>) -> End {
    loop {
        match client.recv() {
            Ok(Reply::Status {
                id: BARRIER_ID,
                code: SSH_FX_OP_UNSUPPORTED,
                ..
            }) => return End::Alive,
            Ok(r) => replies.push(r),
            Err(RecvError::Eof) => return End::Exited(None),
            Err(RecvError::Truncated) => return End::Broken("truncated packet".into()),
            Err(RecvError::Timeout) if unknown => return End::Silent,
            Err(RecvError::Timeout) => return End::Timeout,
            Err(RecvError::Malformed(m)) => return End::Broken(m),
            Err(RecvError::Io(e)) => return End::Broken(e.to_string()),
        }
    }
}

/// The two servers, their copies, and the history of the run.
pub struct Pair {
    /// Removed with the pair.
    _scratch: Scratch,
    /// OpenSSH's, then ours.
    pub sides: [Side; 2],
    /// Start of the run's time span (less a margin): times from here on are "now".
    t0: u64,
    /// The last `MAX_HISTORY_SHOWN` steps, as printed in failure messages (a seed and a
    /// length replay a random run whole).
    history: VecDeque<String>,
    /// Steps so far.
    count: usize,
    /// Whether each step was an OPENDIR (its handle, if any, is a directory's).
    dirs: Vec<bool>,
    /// For each step, its OPEN flags if it is an OPEN.
    opens: Vec<Option<u32>>,
    /// Sessions started (a session ends when a server closes the connection).
    pub sessions: usize,
    /// Allowed differences met, by step.
    pub allowed_seen: Vec<(usize, &'static str)>,
}

impl Pair {
    /// Builds the tree with `fixture` (which must create `WORK` inside the directory it
    /// is given), copies it into each copy as `TREE` and starts both servers.
    pub fn new(tag: &str, fixture: fn(&Path)) -> Result<Pair, Mismatch> {
        Pair::with(tag, fixture, false)
    }

    /// As [`Pair::new`]; with `confined`, our server runs with `--root` set to its
    /// copy (starting in the same directory as OpenSSH's), and paths on both sides
    /// are shown relative to the copy.
    pub fn with(tag: &str, fixture: fn(&Path), confined: bool) -> Result<Pair, Mismatch> {
        let t0 = now_secs() - 2;
        let scratch = Scratch::new(&format!("diff-{tag}"));
        let template = scratch.path().join("t");
        std::fs::create_dir(&template).expect("template dir");
        fixture(&template);
        let a = scratch.path().join("a");
        let b = scratch.path().join("b");
        for copy in [&a, &b] {
            std::fs::create_dir(copy).expect("copy dir");
            tree::copy(&template, &copy.join(TREE), None);
        }
        let views = match confined {
            false => [View::Marked, View::Marked],
            true => [View::Inside, View::Confined],
        };
        let sides = [
            Side::new(PathBuf::from(OPENSSH_BIN), a, views[0]),
            Side::new(server_bin(), b, views[1]),
        ];
        let mut pair = Pair {
            _scratch: scratch,
            sides,
            t0,
            history: VecDeque::new(),
            count: 0,
            dirs: Vec::new(),
            opens: Vec::new(),
            sessions: 0,
            allowed_seen: Vec::new(),
        };
        pair.start_sessions()?;
        Ok(pair)
    }

    /// The steps whose handles are open now (in both sessions), and whether each is a
    /// directory's.
    pub fn open_handles(&self) -> Vec<(usize, bool)> {
        let [a, b] = &self.sides;
        let mut v: Vec<(usize, bool)> = b
            .live
            .values()
            .filter(|step| {
                a.handles
                    .get(step)
                    .is_some_and(|x| a.live.get(x) == Some(step))
            })
            .map(|&step| (step, self.dirs[step]))
            .collect();
        v.sort();
        v
    }

    pub fn steps(&self) -> usize {
        self.count
    }

    fn start_sessions(&mut self) -> Result<(), Mismatch> {
        self.sessions += 1;
        let a = self.sides[0].start();
        let b = without_own_extensions(self.sides[1].start());
        if a != b || a.end != End::Alive {
            return Err(Mismatch {
                step: None,
                what: format!(
                    "INIT of session {}:\n  OpenSSH: {}\n  ours:    {}",
                    self.sessions,
                    show(&a),
                    show(&b)
                ),
            });
        }
        Ok(())
    }

    /// Ends both sessions and starts new ones. With `resync`, OpenSSH's copy replaces
    /// ours first (the sessions had diverged); otherwise the trees are compared.
    fn restart(&mut self, resync: bool) -> Result<(), Mismatch> {
        self.sides[0].stop();
        self.sides[1].stop();
        if resync {
            let [a, b] = &self.sides;
            std::fs::remove_dir_all(&b.root).expect("remove our copy");
            // Symlink targets into OpenSSH's copy point into ours, as ours names it.
            let ours: &[u8] = match b.view {
                View::Confined => b"",
                _ => &b.root_bytes,
            };
            tree::copy(&a.root, &b.root, Some((&a.root_bytes, ours)));
            tree::atime_from_mtime(&a.root);
        } else {
            self.compare_trees()?;
        }
        self.start_sessions()
    }

    /// After a mismatch: our copy becomes OpenSSH's again and both sessions restart,
    /// so that a run can go on looking for further differences.
    pub fn recover(&mut self) {
        if let Err(m) = self.restart(true) {
            panic!("{}", self.report("cannot restart after a difference", &m));
        }
    }

    fn window(&self) -> (u64, u64) {
        (self.t0, now_secs() + 2)
    }

    /// What each handle argument of `op` names right now.
    fn handle_uses(&self, op: &Op) -> Vec<HandleUse> {
        let [a, b] = &self.sides;
        op.handles()
            .into_iter()
            .map(|h| match h {
                H::Of(step) => {
                    let (ha, hb) = (a.handles.get(step), b.handles.get(step));
                    let open_a = ha.is_some_and(|x| a.live.get(x) == Some(step));
                    let open_b = hb.is_some_and(|x| b.live.get(x) == Some(step));
                    let closed = ha.is_some() && hb.is_some() && !open_a && !open_b;
                    HandleUse {
                        closed,
                        pflags: self.opens.get(*step).copied().flatten(),
                        openssh_reaches: if closed {
                            ha.and_then(|x| a.live.get(x).copied())
                        } else {
                            None
                        },
                    }
                }
                H::Bytes(_) => HandleUse {
                    closed: false,
                    pflags: None,
                    openssh_reaches: None,
                },
            })
            .collect()
    }

    /// Notes a step in the history before it is sent; its index.
    fn record(&mut self, step: &Step) -> usize {
        assert!(!reserved_id(step.id), "id {} is the barrier's", step.id);
        let index = self.count;
        self.count += 1;
        if self.history.len() == MAX_HISTORY_SHOWN {
            self.history.pop_front();
        }
        self.history.push_back(step.to_string());
        self.dirs.push(matches!(step.op.base(), Op::Opendir(_)));
        self.opens.push(match step.op.base() {
            Op::Open(_, pflags, _) => Some(*pflags),
            _ => None,
        });
        index
    }

    /// Runs one step on both servers and compares what they sent.
    pub fn step(&mut self, step: Step) -> Result<Verdict, Mismatch> {
        let index = self.record(&step);
        let handles = self.handle_uses(&step.op);
        let (pa, oa) = self.sides[0].run(index, &step);
        let (pb, ob) = self.sides[1].run(index, &step);
        let verdict = self.judge(index, &step, [pa, pb], handles, [oa, ob])?;
        self.after(index, &[verdict])?;
        Ok(verdict)
    }

    /// Runs `steps` on both servers pipelined (all in one write, no barrier between
    /// them, as clients that keep many requests in flight send them) and compares
    /// each step's replies. The steps must be well-formed requests of known types.
    pub fn step_run(&mut self, steps: Vec<Step>) -> Result<Vec<Verdict>, Mismatch> {
        let first = self.count;
        let mut uses = Vec::new();
        for step in &steps {
            self.record(step);
            uses.push(self.handle_uses(&step.op));
        }
        let (pa, oa) = self.sides[0].run_many(first, &steps);
        let (pb, ob) = self.sides[1].run_many(first, &steps);
        let mut verdicts = Vec::new();
        let parts = steps.iter().zip(uses).zip(pa.into_iter().zip(pb));
        for (i, ((step, handles), (pa, pb))) in parts.enumerate() {
            let outcomes = [oa[i].clone(), ob[i].clone()];
            let verdict = self.judge(first + i, step, [pa, pb], handles, outcomes)?;
            let restarts = matches!(verdict, Verdict::Allowed(a) if a.ends_sessions);
            verdicts.push(verdict);
            // The steps after a difference that ends the sessions ran on trees that
            // differ by design (step by step they would run after the restart and
            // the resync): they are not compared.
            if restarts {
                break;
            }
        }
        self.after(first + steps.len().saturating_sub(1), &verdicts)?;
        Ok(verdicts)
    }

    /// Compares what the two servers sent for the step at `index`.
    fn judge(
        &mut self,
        index: usize,
        step: &Step,
        packets: [(u8, Vec<u8>); 2],
        handles: Vec<HandleUse>,
        [oa, ob]: [Outcome; 2],
    ) -> Result<Verdict, Mismatch> {
        let w = self.window();
        let ma = mask(&oa, &step.op, &self.sides[0], w);
        let mb = mask(&ob, &step.op, &self.sides[1], w);
        let sent = Sent {
            step,
            confined: self.sides[1].view == View::Confined,
            packets,
            handles,
        };
        let stalled = [&oa, &ob]
            .iter()
            .any(|o| matches!(o.end, End::Timeout | End::Broken(_)));
        let verdict = if stalled {
            None
        } else if ma == mb {
            Some(Verdict::Same)
        } else {
            allowed::find(&sent, &ma, &mb).map(Verdict::Allowed)
        };
        if verbose() {
            eprintln!("{index:>5}: {step}\n       OpenSSH: {}", show(&oa));
            if ma != mb {
                eprintln!("       ours:    {}", show(&ob));
            }
        }
        verdict.ok_or_else(|| Mismatch {
            step: Some(index),
            what: format!(
                "request: {step}\n  OpenSSH: {}\n  ours:    {}",
                show(&oa),
                show(&ob)
            ),
        })
    }

    /// After the steps up to `index`: restarts both sessions if one ended or an
    /// allowed difference ends them.
    fn after(&mut self, index: usize, verdicts: &[Verdict]) -> Result<(), Mismatch> {
        let mut resync = false;
        let mut ended = !self.sides[0].alive() || !self.sides[1].alive();
        for v in verdicts {
            if let Verdict::Allowed(a) = v {
                self.allowed_seen.push((index, a.name));
                ended |= a.ends_sessions;
                resync |= a.resync;
            }
        }
        if ended {
            self.restart(resync).map_err(|m| Mismatch {
                step: Some(index),
                what: format!("after the session ended at step {index}: {}", m.what),
            })?;
        }
        Ok(())
    }

    /// Ends both sessions (EOF), compares their exit statuses and then the trees.
    pub fn finish(&mut self) -> Result<(), Mismatch> {
        let a = self.sides[0].stop();
        let b = self.sides[1].stop();
        if a != b {
            return Err(Mismatch {
                step: None,
                what: format!("exit status at EOF: OpenSSH {a:?}, ours {b:?}"),
            });
        }
        self.compare_trees()
    }

    /// Compares the two copies: names, types, sizes, modes, owners, link counts,
    /// contents, symlink targets and modification times (unless "now").
    pub fn compare_trees(&self) -> Result<(), Mismatch> {
        let w = self.window();
        let [a, b] = &self.sides;
        let ta = tree::snapshot(&a.root, w, &|t| a.shown(t));
        let tb = tree::snapshot(&b.root, w, &|t| b.shown(t));
        if ta == tb {
            return Ok(());
        }
        let mut what = String::from("the trees differ:\n");
        let mut shown = 0;
        for (path, node) in &ta {
            if tb.get(path) != Some(node) && shown < 10 {
                let _ = writeln!(
                    what,
                    "  {}: OpenSSH {node:?}, ours {:?}",
                    Q(path),
                    tb.get(path)
                );
                shown += 1;
            }
        }
        for (path, node) in &tb {
            if !ta.contains_key(path) && shown < 10 {
                let _ = writeln!(what, "  {}: OpenSSH None, ours {node:?}", Q(path));
                shown += 1;
            }
        }
        Err(Mismatch { step: None, what })
    }

    /// The last `n` steps, one a line.
    pub fn recent(&self, n: usize) -> String {
        let mut s = String::new();
        let first = self.count - self.history.len();
        let skip = self.history.len().saturating_sub(n);
        for (i, step) in self.history.iter().enumerate().skip(skip) {
            let _ = writeln!(s, "  {:>5}: {step}", first + i);
        }
        s
    }

    /// The whole history and the mismatch, for a failure message.
    pub fn report(&self, title: &str, m: &Mismatch) -> String {
        let mut s = format!("{title}\n");
        match m.step {
            Some(i) => {
                let _ = writeln!(s, "difference at step {i}:\n  {}", m.what);
            }
            None => {
                let _ = writeln!(s, "difference: {}", m.what);
            }
        }
        let _ = writeln!(s, "request history ({} steps):", self.count);
        let first = self.count - self.history.len();
        if first > 0 {
            let _ = writeln!(s, "  ({first} earlier steps not kept)");
        }
        s.push_str(&self.recent(MAX_HISTORY_SHOWN));
        if !self.allowed_seen.is_empty() {
            let _ = writeln!(s, "allowed differences met: {:?}", self.allowed_seen);
        }
        s
    }
}

pub fn in_window(t: u32, (from, to): (u64, u64)) -> bool {
    (from..=to).contains(&(t as u64))
}

fn mask_attrs(a: &Attrs, w: (u64, u64)) -> Attrs {
    let mut a = a.clone();
    if a.flags & SSH_FILEXFER_ATTR_ACMODTIME != 0 {
        // A symlink's access time moves whenever a path through it is resolved, and
        // the two servers resolve different paths for the same request (OpenSSH's
        // version 3 RENAME stats its target first, for one): not compared.
        let symlink =
            a.flags & SSH_FILEXFER_ATTR_PERMISSIONS != 0 && a.permissions & 0o170000 == 0o120000;
        if in_window(a.atime, w) || symlink {
            a.atime = NOW;
        }
        if in_window(a.mtime, w) {
            a.mtime = NOW;
        }
    }
    a
}

/// Replaces a symlink's size where paths are shown relative to the copy: a link made
/// with an absolute target into the copy holds the copy's real root on OpenSSH's side
/// and `/` on ours, and its size is that text's length.
const LINK_SIZE: u64 = u64::MAX - 1;

fn mask_link_size(a: &Attrs, side: &Side) -> Attrs {
    let mut a = a.clone();
    let link = a.flags & SSH_FILEXFER_ATTR_PERMISSIONS != 0 && a.permissions & 0o170000 == 0o120000;
    if side.view != View::Marked && link && a.flags & SSH_FILEXFER_ATTR_SIZE != 0 {
        a.size = LINK_SIZE;
    }
    a
}

/// Where the `n`th column (from 0) of an `ls -l` long name starts.
fn column(longname: &[u8], n: usize) -> usize {
    let mut i = 0;
    for _ in 0..n {
        while i < longname.len() && longname[i] != b' ' {
            i += 1;
        }
        while i < longname.len() && longname[i] == b' ' {
            i += 1;
        }
    }
    i
}

/// Replaces the size column of an `ls -l` long name (after mode, links, owner and
/// group).
fn mask_size(longname: &[u8]) -> Vec<u8> {
    let start = column(longname, 4);
    let mut end = start;
    while end < longname.len() && longname[end] != b' ' {
        end += 1;
    }
    let mut out = longname[..start].to_vec();
    out.extend_from_slice(b"<size>");
    out.extend_from_slice(&longname[end..]);
    out
}

/// Replaces the date column of an `ls -l` long name: mode, links, owner, group and
/// size come first, then the 12-byte date, then the name.
fn mask_date(longname: &[u8]) -> Vec<u8> {
    let i = column(longname, 5);
    if i + 12 > longname.len() {
        return longname.to_vec();
    }
    let mut out = longname[..i].to_vec();
    out.extend_from_slice(b"<now>       ");
    out.extend_from_slice(&longname[i + 12..]);
    out
}

/// The statvfs reply's free-block and free-inode counters (bfree, bavail, ffree, favail).
const STATVFS_FREE_FIELDS: [usize; 4] = [3, 4, 6, 7];

fn mask(o: &Outcome, op: &Op, side: &Side, w: (u64, u64)) -> Outcome {
    let statvfs = matches!(op.base(), Op::Statvfs(_) | Op::Fstatvfs(_));
    let replies = o
        .replies
        .iter()
        .map(|r| match r {
            Reply::Handle { id, .. } => Reply::Handle {
                id: *id,
                handle: b"<handle>".to_vec(),
            },
            Reply::Attrs { id, attrs } => Reply::Attrs {
                id: *id,
                attrs: mask_link_size(&mask_attrs(attrs, w), side),
            },
            Reply::Name { id, entries } => Reply::Name {
                id: *id,
                entries: entries
                    .iter()
                    .map(|e| {
                        let attrs = mask_attrs(&e.attrs, w);
                        let mut longname = side.shown(&e.longname);
                        if attrs.flags & SSH_FILEXFER_ATTR_ACMODTIME != 0 && attrs.mtime == NOW {
                            longname = mask_date(&longname);
                        }
                        let attrs = mask_link_size(&attrs, side);
                        if attrs.size == LINK_SIZE {
                            longname = mask_size(&longname);
                        }
                        NameEntry {
                            name: side.shown(&e.name),
                            longname,
                            attrs,
                        }
                    })
                    .collect(),
            },
            Reply::ExtendedReply { id, body } if statvfs && body.len() == 88 => {
                let mut body = body.clone();
                for f in STATVFS_FREE_FIELDS {
                    body[f * 8..f * 8 + 8].fill(0);
                }
                Reply::ExtendedReply { id: *id, body }
            }
            other => other.clone(),
        })
        .collect();
    Outcome {
        replies,
        end: o.end.clone(),
    }
}

/// An outcome for a failure message: long data shortened.
pub fn show(o: &Outcome) -> String {
    let mut s = String::new();
    for r in &o.replies {
        match r {
            Reply::Data { id, data } => {
                let head = &data[..data.len().min(48)];
                let _ = write!(s, "DATA id={id} {} bytes {}; ", data.len(), Q(head));
            }
            Reply::Status {
                id,
                code,
                msg,
                lang,
            } => {
                let _ = write!(
                    s,
                    "STATUS id={id} code={code} msg={} lang={}; ",
                    Q(msg),
                    Q(lang)
                );
            }
            Reply::Handle { id, handle } => {
                let _ = write!(s, "HANDLE id={id} {}; ", Q(handle));
            }
            Reply::Name { id, entries } => {
                let _ = write!(s, "NAME id={id} count={} [", entries.len());
                for e in entries {
                    let _ = write!(
                        s,
                        "{} {} {}, ",
                        Q(&e.name),
                        Q(&e.longname),
                        super::ops::A(&e.attrs)
                    );
                }
                s.push_str("]; ");
            }
            Reply::Attrs { id, attrs } => {
                let _ = write!(s, "ATTRS id={id} {}; ", super::ops::A(attrs));
            }
            Reply::ExtendedReply { id, body } => {
                let _ = write!(s, "EXTENDED_REPLY id={id} {}; ", Q(body));
            }
            Reply::Version {
                version,
                extensions,
            } => {
                let _ = write!(s, "VERSION {version} [");
                for (n, d) in extensions {
                    let _ = write!(s, "{}={}, ", Q(n), Q(d));
                }
                s.push_str("]; ");
            }
        }
    }
    let _ = write!(s, "then {:?}", o.end);
    s
}

/// Runs `steps` on a fresh pair over `fixture`, then compares the trees; panics with
/// the whole history at the first difference that is not allowed.
#[track_caller]
pub fn run_scenario(
    name: &str,
    fixture: fn(&Path),
    steps: Vec<Step>,
) -> Vec<(usize, &'static str)> {
    let mut pair = Pair::new(name, fixture).unwrap_or_else(|m| panic!("{name}: {}", m.what));
    for step in steps {
        if let Err(m) = pair.step(step) {
            panic!("{}", pair.report(&format!("scenario {name}"), &m));
        }
    }
    if let Err(m) = pair.finish() {
        panic!("{}", pair.report(&format!("scenario {name}"), &m));
    }
    pair.allowed_seen.clone()
}

/// The extensions only ours has (OpenSSH answers them OP_UNSUPPORTED): ours advertises
/// them after OpenSSH's, which are compared.
const OWN_EXTENSIONS: [&[u8]; 2] = [b"check-file", b"copy-file"];

/// Our VERSION less [`OWN_EXTENSIONS`], each of which must be there, last.
pub fn without_own_extensions(mut o: Outcome) -> Outcome {
    if let Some(Reply::Version { extensions, .. }) = o.replies.first_mut() {
        let keep = extensions.len().saturating_sub(OWN_EXTENSIONS.len());
        let own: Vec<&[u8]> = extensions[keep..].iter().map(|(n, _)| &n[..]).collect();
        if own == OWN_EXTENSIONS {
            extensions.truncate(keep);
        }
    }
    o
}
