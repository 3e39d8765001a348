//! The RESP2 face, sans IO: a bounded incremental decoder, an encoder, and the per-connection
//! [`Session`] that maps Redis commands onto [`Request`]s and [`Reply`]s back onto RESP.
//!
//! Nothing here reads a socket or a clock: the TCP shell (`server`) feeds bytes in and writes the
//! bytes that come out, so every rule below is unit-tested without a network.
//!
//! # Decoder invariants
//! - [`decode`] never panics and never allocates more than the command it returns, which the
//!   [`Limits`] bound: `array_len_max` arguments of at most `bulk_bytes_max` bytes each (an
//!   inline command's arguments: at most `line_bytes_max` together), and no header or inline
//!   line longer than `line_bytes_max`. A length above a limit is refused as
//!   soon as its header is complete, before any of its payload arrives.
//! - It is *restartable*: it looks only at the bytes it is given and consumes nothing until a
//!   whole command is there, so a command split at any byte boundary decodes to the same result
//!   as the whole command (a unit test splits at every boundary).
//! - After an error the stream cannot be resynchronised (RESP has no frame marker): the shell
//!   replies `-ERR Protocol error: ...` and closes the connection, as redis-server does.
//!
//! # Session invariants
//! - Replies come back in request order: the shell awaits the replica's replies in the order it
//!   submitted the requests, and a command whose answer depends on earlier replies (a
//!   [`is_barrier`] command) is submitted only once every earlier one is answered.
//! - Every reply's session token is merged into the connection's token and every request carries
//!   it, so a connection never reads older than what it wrote or read before, even after it
//!   moved to another region with `TOKEN SET`.

use converge_core::CausalContext;
use converge_core::replica::{
    ClientError, Consistency, Done, Key, KeyKind, Op, Reply, Request, Scalar, SessionToken, Value,
};
use std::collections::{BTreeMap, VecDeque};

// ------------------------------------------------------------------------------------------
// Decoder
// ------------------------------------------------------------------------------------------

/// The bounds on one decoded command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest bulk string (one argument).
    pub bulk_bytes_max: usize,
    /// The most arguments in one command.
    pub array_len_max: usize,
    /// The longest header line (`*N`, `$N`) or inline command.
    pub line_bytes_max: usize,
    /// The most bytes one whole command may take on the wire: what bounds a connection's read
    /// buffer (plus one read), since `array_len_max × bulk_bytes_max` alone is far too much.
    pub command_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: 1 << 20,
            array_len_max: 4_096,
            line_bytes_max: 64 * 1024,
            command_bytes_max: 8 << 20,
        }
    }
}

/// Why bytes are not a RESP command. The stream is unusable afterwards.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A header or inline line longer than the limit (or not terminated within it).
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    /// An array with more elements than the limit.
    #[error("array of {0} elements is too long")]
    ArrayTooLong(u64),
    /// A bulk string longer than the limit.
    #[error("bulk string of {0} bytes is too long")]
    BulkTooLong(u64),
    /// A length that is not a non-negative decimal integer.
    #[error("invalid length")]
    BadLength,
    /// An array element that is not a bulk string (clients send commands as bulk arrays).
    #[error("expected '$', got {0:?}")]
    ExpectedBulk(char),
    /// A command whose announced lengths add up to more than the limit.
    #[error("command longer than {0} bytes")]
    CommandTooLong(usize),
    /// A bulk string not followed by CRLF.
    #[error("bulk string not terminated by CRLF")]
    BadTerminator,
    /// An inline command with an unbalanced quote.
    #[error("unbalanced quotes in inline command")]
    UnbalancedQuotes,
}

impl DecodeError {
    /// A short, stable label for metrics (`bad_inputs_total{kind=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::LineTooLong(_) => "resp_line_too_long",
            DecodeError::ArrayTooLong(_) => "resp_array_too_long",
            DecodeError::BulkTooLong(_) => "resp_bulk_too_long",
            DecodeError::BadLength => "resp_bad_length",
            DecodeError::ExpectedBulk(_) => "resp_expected_bulk",
            DecodeError::CommandTooLong(_) => "resp_command_too_long",
            DecodeError::BadTerminator => "resp_bad_terminator",
            DecodeError::UnbalancedQuotes => "resp_unbalanced_quotes",
        }
    }
}

/// One decoded command: its arguments, the name first. Empty for a blank inline line.
pub type Command = Vec<Vec<u8>>;

/// Decodes the first command in `buf`: `Ok(Some((command, consumed)))` when a whole command is
/// there, `Ok(None)` when more bytes are needed, `Err` when the bytes can never be a command.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Command, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return decode_inline(buf, limits);
    }
    let Some((n, mut pos)) = header(buf, 0, limits)? else {
        return Ok(None);
    };
    // `*-1` (a null array) and `*0` carry no command; redis-server skips them likewise.
    let n = match n {
        Len::Null => return Ok(Some((Vec::new(), pos))),
        Len::Some(n) => n,
    };
    if n > limits.array_len_max as u64 {
        return Err(DecodeError::ArrayTooLong(n));
    }
    // First pass: check that every element is complete without allocating, so an incomplete
    // command costs no allocation however often it is retried.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let n = n as usize;
    for _ in 0..n {
        let Some(&tag) = buf.get(pos) else {
            return Ok(None);
        };
        if tag != b'$' {
            return Err(DecodeError::ExpectedBulk(char::from(tag)));
        }
        let Some((len, after)) = header(buf, pos, limits)? else {
            return Ok(None);
        };
        let len = match len {
            Len::Null => return Err(DecodeError::BadLength),
            Len::Some(l) if l > limits.bulk_bytes_max as u64 => {
                return Err(DecodeError::BulkTooLong(l));
            }
            Len::Some(l) => l as usize,
        };
        let end = after + len;
        if end + 2 > limits.command_bytes_max {
            return Err(DecodeError::CommandTooLong(limits.command_bytes_max));
        }
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(DecodeError::BadTerminator);
        }
        if spans.capacity() == 0 {
            spans.reserve_exact(n);
        }
        spans.push((after, end));
        pos = end + 2;
    }
    let cmd = spans.iter().map(|&(a, b)| buf[a..b].to_vec()).collect();
    Ok(Some((cmd, pos)))
}

enum Len {
    Null,
    Some(u64),
}

/// Parses the `*N\r\n` or `$N\r\n` header at `at`: the length and the position after the CRLF.
fn header(buf: &[u8], at: usize, limits: &Limits) -> Result<Option<(Len, usize)>, DecodeError> {
    let Some(line_end) = find_crlf(buf, at, limits)? else {
        return Ok(None);
    };
    let digits = &buf[at + 1..line_end];
    if digits == b"-1" {
        return Ok(Some((Len::Null, line_end + 2)));
    }
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::BadLength);
    }
    let n = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Ok(Some((Len::Some(n), line_end + 2)))
}

/// The position of the CRLF ending the line that starts at `at`, bounded by the line limit.
fn find_crlf(buf: &[u8], at: usize, limits: &Limits) -> Result<Option<usize>, DecodeError> {
    let window_end = buf.len().min(at.saturating_add(limits.line_bytes_max + 2));
    let window = &buf[at..window_end];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(at + i)),
        None if window.len() >= limits.line_bytes_max + 2 => {
            Err(DecodeError::LineTooLong(limits.line_bytes_max))
        }
        None => Ok(None),
    }
}

/// An inline command (what `telnet` and `nc` users type): one line split on blanks, with
/// double-quoted arguments (`\"` and `\\` escapes inside) for values holding blanks.
fn decode_inline(buf: &[u8], limits: &Limits) -> Result<Option<(Command, usize)>, DecodeError> {
    let window_end = buf.len().min(limits.line_bytes_max + 1);
    let Some(nl) = buf[..window_end].iter().position(|&b| b == b'\n') else {
        if window_end > limits.line_bytes_max {
            return Err(DecodeError::LineTooLong(limits.line_bytes_max));
        }
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        if args.len() == limits.array_len_max {
            return Err(DecodeError::ArrayTooLong(args.len() as u64 + 1));
        }
        let mut arg = Vec::new();
        if line[i] == b'"' {
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err(DecodeError::UnbalancedQuotes),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        arg.push(line[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        arg.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < line.len() && !line[i].is_ascii_whitespace() {
                arg.push(line[i]);
                i += 1;
            }
        }
        args.push(arg);
    }
    Ok(Some((args, nl + 1)))
}

// ------------------------------------------------------------------------------------------
// Encoder
// ------------------------------------------------------------------------------------------

/// A RESP2 value, as the node sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    /// `+text`
    Simple(&'static str),
    /// `-text` (the text starts with the error code, `ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:n`
    Int(i64),
    /// `$len bytes`
    Bulk(Vec<u8>),
    /// `$-1`
    Nil,
    /// `*n elements`
    Array(Vec<Resp>),
}

impl Resp {
    /// `-ERR text`.
    pub fn err(text: impl std::fmt::Display) -> Resp {
        Resp::Error(format!("ERR {text}"))
    }

    /// Appends the encoding to `out`. Error text never holds CR or LF (they are replaced), so a
    /// reply can never be read as two.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Resp::Simple(s) => line(out, b'+', s.as_bytes()),
            Resp::Error(s) => {
                let clean: Vec<u8> = s
                    .bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                    .collect();
                line(out, b'-', &clean);
            }
            Resp::Int(i) => line(out, b':', i.to_string().as_bytes()),
            Resp::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Resp::Nil => out.extend_from_slice(b"$-1\r\n"),
            Resp::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

// ------------------------------------------------------------------------------------------
// Session
// ------------------------------------------------------------------------------------------

/// The value DEL writes into a register: RESP only ever writes byte strings, so the integer 0
/// cannot be a value a client wrote, and reads show it as absent (nil). Being an ordinary
/// last-writer-wins write, a DEL and a concurrent SET resolve by timestamp like two SETs.
const TOMBSTONE: Scalar = Scalar::Int(0);

/// How many keys' MV-register read contexts a connection remembers for `MVSET`; beyond it the
/// oldest is forgotten (a later `MVSET` of it then replaces no sibling, which is safe: it adds one).
const MV_CONTEXTS_MAX: usize = 1_024;

/// What the shell does with one command.
#[derive(Debug)]
pub enum Step {
    /// Send this reply (in order).
    Reply(Resp),
    /// Submit this request to the replica; hand its reply and the [`Pending`] back to
    /// [`Session::reply`].
    Submit(Request, Pending),
    /// Send this reply, then close the connection (QUIT).
    Close(Resp),
    /// Nothing to answer (a blank line).
    Nothing,
}

/// A command waiting for the replica: what to make of its reply.
#[derive(Debug)]
pub struct Pending {
    kind: Kind,
    consistency: Consistency,
}

#[derive(Debug)]
enum Kind {
    /// GET: a register's value, or a counter's as decimal text.
    Get,
    /// SET, MVSET: `+OK`.
    Ok,
    /// INCRBY and friends: the counter after the increment.
    Counter,
    /// SADD/SREM with members still to send, counting changes.
    SetChange {
        key: Key,
        add: bool,
        rest: VecDeque<Scalar>,
        changed: i64,
    },
    /// SMEMBERS.
    Members,
    /// SISMEMBER.
    IsMember(Scalar),
    /// MVGET: remembers the context for the next MVSET of the key.
    MvGet(Key),
    /// DEL: the key in hand (read, or being cleared by the `writes` still to send), the keys
    /// still to delete, and how many were deleted.
    Del {
        current: Key,
        reading: bool,
        keys: VecDeque<Key>,
        deleted: i64,
        writes: VecDeque<Op>,
    },
}

/// The per-connection state: default consistency, session token, MV-register read contexts.
#[derive(Debug)]
pub struct Session {
    consistency: Consistency,
    token: SessionToken,
    mv_contexts: BTreeMap<Key, CausalContext>,
    mv_order: VecDeque<Key>,
}

/// Parses a level named in a command argument (any case: [`Consistency`]'s `FromStr`).
fn parse_consistency(s: &[u8]) -> Option<Consistency> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Whether a command's answer depends on the replies of the commands before it on the
/// connection (the token, an MV read context, a multi-step write), so the shell must have every
/// earlier reply in hand before it runs this one.
pub fn is_barrier(cmd: &[Vec<u8>]) -> bool {
    let Some(name) = cmd.first() else {
        return false;
    };
    let name = name.to_ascii_uppercase();
    match name.as_slice() {
        b"TOKEN" | b"DEL" | b"UNLINK" | b"MVSET" => true,
        // One request per member: only several members make a multi-step command.
        b"SADD" | b"SREM" => cmd.len() > 3,
        b"WITH" => cmd.get(2..).is_some_and(is_barrier),
        _ => false,
    }
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn wrong_args(name: &str) -> Step {
    Step::Reply(Resp::err(format!(
        "wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )))
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    const H: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [H[usize::from(b >> 4)], H[usize::from(b & 15)]])
        .collect()
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The RESP error for a replica error.
pub fn client_error(e: &ClientError) -> Resp {
    match e {
        ClientError::WrongType { .. } => {
            Resp::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
        }
        ClientError::Unavailable { level } => Resp::Error(format!(
            "UNAVAILABLE consistency level {} not met before the deadline",
            level
        )),
        ClientError::SessionTimeout => {
            Resp::Error("TRYAGAIN session token not covered before the deadline".into())
        }
        ClientError::BadToken => Resp::err("session token names a replica outside this cluster"),
        ClientError::Overloaded => Resp::Error("BUSY too many pending requests".into()),
        ClientError::Overflow => Resp::err("increment or decrement would overflow"),
        ClientError::ClockDrift => Resp::err("register stamped beyond the clock drift bound"),
    }
}

fn scalar_bytes(s: &Scalar) -> Vec<u8> {
    match s {
        Scalar::Bytes(b) => b.to_vec(),
        Scalar::Int(i) => i.to_string().into_bytes(),
    }
}

fn counter_int(v: i128) -> Resp {
    match i64::try_from(v) {
        Ok(i) => Resp::Int(i),
        Err(_) => Resp::err("counter value out of the 64-bit range"),
    }
}

fn wrongtype() -> Resp {
    client_error(&ClientError::WrongType {
        key: KeyKind::Lww,
        op: KeyKind::Lww,
    })
}

impl Session {
    /// A connection's session, with the node's default consistency level.
    pub fn new(consistency: Consistency) -> Session {
        Session {
            consistency,
            token: SessionToken::new(),
            mv_contexts: BTreeMap::new(),
            mv_order: VecDeque::new(),
        }
    }

    /// The connection's session token.
    pub fn token(&self) -> &SessionToken {
        &self.token
    }

    fn request(&self, key: &[u8], op: Op, consistency: Consistency) -> Request {
        Request {
            id: 0,
            key: key.into(),
            op,
            consistency,
            token: Some(self.token.clone()),
        }
    }

    fn submit(&self, key: &[u8], op: Op, consistency: Consistency, kind: Kind) -> Step {
        Step::Submit(
            self.request(key, op, consistency),
            Pending { kind, consistency },
        )
    }

    /// Runs one command: a reply now, or a request for the replica.
    pub fn command(&mut self, cmd: &[Vec<u8>]) -> Step {
        let Some(name) = cmd.first() else {
            // A blank inline line or an empty array: redis-server answers nothing.
            return Step::Nothing;
        };
        let name = upper(name);
        let args = &cmd[1..];
        if name == "WITH" {
            let (Some(level), Some(rest)) = (args.first(), args.get(1..)) else {
                return wrong_args("with");
            };
            let Some(level) = parse_consistency(level) else {
                return Step::Reply(Resp::err(
                    "WITH takes LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM",
                ));
            };
            if rest.is_empty() {
                return wrong_args("with");
            }
            return self.run(&upper(&rest[0]), &rest[1..], level);
        }
        let level = self.consistency;
        self.run(&name, args, level)
    }

    fn run(&mut self, name: &str, args: &[Vec<u8>], level: Consistency) -> Step {
        let n = args.len();
        let reply = |r: Resp| Step::Reply(r);
        match name {
            "PING" => match args {
                [] => reply(Resp::Simple("PONG")),
                [m] => reply(Resp::Bulk(m.clone())),
                _ => wrong_args(name),
            },
            "ECHO" => match args {
                [m] => reply(Resp::Bulk(m.clone())),
                _ => wrong_args(name),
            },
            "QUIT" => Step::Close(Resp::Simple("OK")),
            // Clients probe with HELLO for RESP3; an error makes them stay on RESP2.
            "HELLO" => reply(Resp::err("unknown command 'HELLO', this node speaks RESP2")),
            "SELECT" => match args {
                [db] if db.as_slice() == b"0" => reply(Resp::Simple("OK")),
                [_] => reply(Resp::err("DB index is out of range (only 0)")),
                _ => wrong_args(name),
            },
            "CLIENT" => match args.first().map(|a| upper(a)).as_deref() {
                Some("SETNAME") | Some("SETINFO") => reply(Resp::Simple("OK")),
                Some("GETNAME") => reply(Resp::Nil),
                _ => reply(Resp::err("CLIENT supports SETNAME, SETINFO and GETNAME")),
            },
            // redis-benchmark reads `save` and `appendonly`: the node persists every write
            // before acknowledging it, which is closest to `appendonly yes` with `fsync always`.
            "CONFIG" => match (args.first().map(|a| upper(a)).as_deref(), args.get(1)) {
                (Some("GET"), Some(p)) => match upper(p).as_str() {
                    "SAVE" => reply(Resp::Array(vec![
                        Resp::Bulk(b"save".to_vec()),
                        Resp::Bulk(Vec::new()),
                    ])),
                    "APPENDONLY" => reply(Resp::Array(vec![
                        Resp::Bulk(b"appendonly".to_vec()),
                        Resp::Bulk(b"yes".to_vec()),
                    ])),
                    _ => reply(Resp::Array(Vec::new())),
                },
                _ => reply(Resp::err("CONFIG supports GET only")),
            },
            "COMMAND" => reply(Resp::Array(Vec::new())),
            "CONSISTENCY" => match args {
                [] => reply(Resp::Bulk(self.consistency.name().into())),
                [l] => match parse_consistency(l) {
                    Some(c) => {
                        self.consistency = c;
                        reply(Resp::Simple("OK"))
                    }
                    None => reply(Resp::err(
                        "CONSISTENCY takes LOCAL_ONE, LOCAL_QUORUM or GLOBAL_QUORUM",
                    )),
                },
                _ => wrong_args(name),
            },
            "TOKEN" => match args {
                [] => reply(Resp::Bulk(hex(&self.token.encode()))),
                [sub, t] if upper(sub) == "SET" => {
                    match unhex(t).and_then(|b| SessionToken::decode(&b).ok()) {
                        Some(t) => {
                            self.token.merge(&t);
                            reply(Resp::Simple("OK"))
                        }
                        None => reply(Resp::err("invalid session token")),
                    }
                }
                [sub] if upper(sub) == "RESET" => {
                    self.token = SessionToken::new();
                    reply(Resp::Simple("OK"))
                }
                _ => reply(Resp::err("TOKEN takes no argument, SET <token> or RESET")),
            },
            "GET" => match args {
                [k] => self.submit(k, Op::Get, level, Kind::Get),
                _ => wrong_args(name),
            },
            "SET" => match args {
                [k, v] => self.submit(k, Op::Put(Scalar::bytes(v)), level, Kind::Ok),
                [_, _, ..] => reply(Resp::err("syntax error (SET takes no options here)")),
                _ => wrong_args(name),
            },
            "INCR" | "DECR" => match args {
                [k] => {
                    let by = if name == "INCR" { 1 } else { -1 };
                    self.submit(k, Op::PnAdd(by), level, Kind::Counter)
                }
                _ => wrong_args(name),
            },
            "INCRBY" | "DECRBY" => match args {
                [k, by] => {
                    let by = parse_i64(by).and_then(|b| {
                        if name == "DECRBY" {
                            b.checked_neg()
                        } else {
                            Some(b)
                        }
                    });
                    match by {
                        Some(by) => self.submit(k, Op::PnAdd(by), level, Kind::Counter),
                        None => reply(Resp::err("value is not an integer or out of range")),
                    }
                }
                _ => wrong_args(name),
            },
            "SADD" | "SREM" if n >= 2 => {
                let add = name == "SADD";
                let mut rest: VecDeque<Scalar> = args[1..].iter().map(Scalar::bytes).collect();
                let Some(first) = rest.pop_front() else {
                    return wrong_args(name);
                };
                let op = if add {
                    Op::SetAdd(first)
                } else {
                    Op::SetRemove(first)
                };
                let kind = Kind::SetChange {
                    key: args[0].as_slice().into(),
                    add,
                    rest,
                    changed: 0,
                };
                self.submit(&args[0], op, level, kind)
            }
            "SADD" | "SREM" => wrong_args(name),
            "SMEMBERS" => match args {
                [k] => self.submit(k, Op::Get, level, Kind::Members),
                _ => wrong_args(name),
            },
            "SISMEMBER" => match args {
                [k, m] => self.submit(k, Op::Get, level, Kind::IsMember(Scalar::bytes(m))),
                _ => wrong_args(name),
            },
            "MVGET" => match args {
                [k] => self.submit(k, Op::Get, level, Kind::MvGet(k.as_slice().into())),
                _ => wrong_args(name),
            },
            "MVSET" => match args {
                [k, v] => {
                    let seen = self
                        .mv_contexts
                        .get(k.as_slice())
                        .cloned()
                        .unwrap_or_default();
                    let op = Op::MvPut {
                        value: Scalar::bytes(v),
                        seen,
                    };
                    self.submit(k, op, level, Kind::Ok)
                }
                _ => wrong_args(name),
            },
            "DEL" | "UNLINK" if n >= 1 => {
                let mut keys: VecDeque<Key> = args.iter().map(|k| k.as_slice().into()).collect();
                let Some(first) = keys.pop_front() else {
                    return wrong_args(name);
                };
                let kind = Kind::Del {
                    current: first.clone(),
                    reading: true,
                    keys,
                    deleted: 0,
                    writes: VecDeque::new(),
                };
                self.submit(&first, Op::Get, level, kind)
            }
            "DEL" | "UNLINK" => wrong_args(name),
            _ => reply(Resp::err(format!(
                "unknown command '{}'",
                name.to_ascii_lowercase()
            ))),
        }
    }

    /// Takes the replica's reply to a submitted request: the RESP reply, or the next request of
    /// a multi-step command.
    pub fn reply(&mut self, pending: Pending, reply: Reply) -> Step {
        let done = match reply.result {
            Ok(done) => done,
            Err(e) => return Step::Reply(client_error(&e)),
        };
        let Done { value, token } = done;
        self.token.merge(&token);
        let level = pending.consistency;
        let out = match (pending.kind, value) {
            (Kind::Get, Value::Absent) => Resp::Nil,
            (Kind::Get, Value::Register(s)) if s == TOMBSTONE => Resp::Nil,
            (Kind::Get, Value::Register(s)) => Resp::Bulk(scalar_bytes(&s)),
            (Kind::Get, Value::Counter(c)) => Resp::Bulk(c.to_string().into_bytes()),
            (Kind::Ok, Value::Written) => Resp::Simple("OK"),
            (Kind::Counter, Value::Counter(c)) => counter_int(c),
            (
                Kind::SetChange {
                    key,
                    add,
                    mut rest,
                    changed,
                },
                Value::Changed(c),
            ) => {
                let changed = changed + i64::from(c);
                match rest.pop_front() {
                    None => Resp::Int(changed),
                    Some(m) => {
                        let op = if add { Op::SetAdd(m) } else { Op::SetRemove(m) };
                        let kind = Kind::SetChange {
                            key: key.clone(),
                            add,
                            rest,
                            changed,
                        };
                        return self.submit(&key, op, level, kind);
                    }
                }
            }
            (Kind::Members, Value::Absent) => Resp::Array(Vec::new()),
            (Kind::Members, Value::Set(ms)) => {
                Resp::Array(ms.iter().map(|m| Resp::Bulk(scalar_bytes(m))).collect())
            }
            (Kind::IsMember(_), Value::Absent) => Resp::Int(0),
            (Kind::IsMember(m), Value::Set(ms)) => Resp::Int(i64::from(ms.contains(&m))),
            (Kind::MvGet(_), Value::Absent) => Resp::Array(Vec::new()),
            (Kind::MvGet(key), Value::Siblings { values, context }) => {
                self.remember_mv(key, context);
                Resp::Array(
                    values
                        .iter()
                        .filter(|v| **v != TOMBSTONE)
                        .map(|v| Resp::Bulk(scalar_bytes(v)))
                        .collect(),
                )
            }
            (
                Kind::Del {
                    current,
                    reading,
                    keys,
                    deleted,
                    writes,
                },
                value,
            ) => {
                let value = if reading { Some(value) } else { None };
                return self.del_step(current, keys, deleted, writes, value, level);
            }
            _ => wrongtype(),
        };
        Step::Reply(out)
    }

    fn remember_mv(&mut self, key: Key, context: CausalContext) {
        if self.mv_contexts.insert(key.clone(), context).is_none() {
            self.mv_order.push_back(key);
            if self.mv_order.len() > MV_CONTEXTS_MAX
                && let Some(old) = self.mv_order.pop_front()
            {
                self.mv_contexts.remove(&old);
            }
        }
    }

    /// One step of DEL: `current` was read (`value` is its state) or one of its removals was
    /// applied (`writes` holds the rest); once its removals are done the next key is read,
    /// until none is left. A key counts as deleted if the read found it non-empty.
    fn del_step(
        &mut self,
        current: Key,
        mut keys: VecDeque<Key>,
        mut deleted: i64,
        mut writes: VecDeque<Op>,
        value: Option<Value>,
        level: Consistency,
    ) -> Step {
        // `value` is `None` when a removal was applied: nothing to plan.
        match value.unwrap_or(Value::Absent) {
            // A read: plan the removals that make the key read as deleted.
            Value::Absent => {}
            Value::Register(s) if s == TOMBSTONE => {}
            Value::Register(_) => {
                deleted += 1;
                writes.push_back(Op::Put(TOMBSTONE));
            }
            Value::Counter(c) => {
                deleted += 1;
                match i64::try_from(-c) {
                    Ok(by) if by != 0 => writes.push_back(Op::PnAdd(by)),
                    Ok(_) => {}
                    Err(_) => return Step::Reply(client_error(&ClientError::Overflow)),
                }
            }
            Value::Set(ms) => {
                if !ms.is_empty() {
                    deleted += 1;
                }
                writes.extend(ms.into_iter().map(Op::SetRemove));
            }
            Value::Siblings { values, context } => {
                if values.iter().any(|v| *v != TOMBSTONE) {
                    deleted += 1;
                    writes.push_back(Op::MvPut {
                        value: TOMBSTONE,
                        seen: context,
                    });
                }
            }
            // Not the reply to a read.
            Value::Changed(_) | Value::Written => {}
        }
        let next = match writes.pop_front() {
            Some(op) => Some((current, op, false)),
            None => keys.pop_front().map(|k| (k, Op::Get, true)),
        };
        match next {
            None => Step::Reply(Resp::Int(deleted)),
            Some((key, op, reading)) => self.submit(
                &key.clone(),
                op,
                level,
                Kind::Del {
                    current: key,
                    reading,
                    keys,
                    deleted,
                    writes,
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Command {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn enc(r: &Resp) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out);
        out
    }

    #[test]
    fn a_command_split_at_every_byte_decodes_the_same() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhe\r\no\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        let limits = Limits::default();
        let whole = {
            let mut out = Vec::new();
            let mut pos = 0;
            while let Some((cmd, used)) = decode(&wire[pos..], &limits).unwrap() {
                out.push(cmd);
                pos += used;
            }
            assert_eq!(pos, wire.len());
            out
        };
        assert_eq!(
            whole,
            vec![
                args(&["SET", "k", "he\r\no"]),
                args(&["PING"]),
                args(&["PING"])
            ]
        );
        for cut in 0..=wire.len() {
            // Feed the first `cut` bytes, decode what is there, then the rest.
            let mut buf = wire[..cut].to_vec();
            let mut got = Vec::new();
            let drain = |buf: &mut Vec<u8>, got: &mut Vec<Command>| {
                while let Some((cmd, used)) = decode(buf, &limits).unwrap() {
                    got.push(cmd);
                    buf.drain(..used);
                }
            };
            drain(&mut buf, &mut got);
            buf.extend_from_slice(&wire[cut..]);
            drain(&mut buf, &mut got);
            assert_eq!(got, whole, "split at byte {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn limits_are_refused_at_the_header() {
        let limits = Limits {
            bulk_bytes_max: 4,
            array_len_max: 2,
            line_bytes_max: 8,
            command_bytes_max: 20,
        };
        assert_eq!(
            decode(b"*3\r\n", &limits),
            Err(DecodeError::ArrayTooLong(3))
        );
        // The payload has not arrived; the header alone is refused.
        assert_eq!(
            decode(b"*1\r\n$5\r\n", &limits),
            Err(DecodeError::BulkTooLong(5))
        );
        assert_eq!(
            decode(b"*1\r\n$99999999999999999999\r\n", &limits),
            Err(DecodeError::LineTooLong(8))
        );
        assert_eq!(
            decode(b"*100000000", &limits),
            Err(DecodeError::LineTooLong(8))
        );
        assert_eq!(
            decode(b"PINGPINGPING", &limits),
            Err(DecodeError::LineTooLong(8))
        );
        assert_eq!(
            decode(b"*1\r\n$x\r\n", &limits),
            Err(DecodeError::BadLength)
        );
        assert_eq!(
            decode(b"*1\r\n:1\r\n", &limits),
            Err(DecodeError::ExpectedBulk(':'))
        );
        assert_eq!(
            decode(b"*1\r\n$1\r\nab\r\n", &limits),
            Err(DecodeError::BadTerminator)
        );
        assert_eq!(
            decode(b"\"a\r\n", &limits),
            Err(DecodeError::UnbalancedQuotes)
        );
        // Each argument within its limit, the whole over the command's.
        assert_eq!(
            decode(b"*2\r\n$4\r\nabcd\r\n$1\r\n", &limits),
            Err(DecodeError::CommandTooLong(20))
        );
        // At the limits exactly, everything passes.
        assert_eq!(
            decode(b"*2\r\n$4\r\nabcd\r\n$0\r\n\r\n", &limits).unwrap(),
            Some((args(&["abcd", ""]), 20))
        );
    }

    /// xorshift64*: a seeded generator, so a failure replays from the printed seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random commands (arrays and inline), encoded, cut into random reads, and random byte
    /// corruptions of them: decoding never panics, and uncorrupted streams decode to exactly the
    /// commands sent, whatever the cuts. `RESP_SEED=N` replays one seed.
    #[test]
    fn random_streams_decode_to_what_was_sent() {
        let seeds: Vec<u64> = match std::env::var("RESP_SEED") {
            Ok(s) => vec![s.parse().expect("RESP_SEED is a number")],
            Err(_) => (1..=300).collect(),
        };
        let limits = Limits {
            bulk_bytes_max: 64,
            array_len_max: 8,
            line_bytes_max: 128,
            command_bytes_max: 1024,
        };
        for seed in seeds {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut wire = Vec::new();
            let mut sent = Vec::new();
            for _ in 0..rng.below(8) + 1 {
                let n = rng.below(5) as usize + 1;
                let inline = rng.below(3) == 0;
                let cmd: Command = (0..n)
                    .map(|_| {
                        let len = rng.below(12) as usize;
                        (0..len)
                            .map(|_| {
                                if inline {
                                    b"abcXYZ019-_:"[rng.below(12) as usize]
                                } else {
                                    rng.next() as u8
                                }
                            })
                            .collect::<Vec<u8>>()
                    })
                    .filter(|a| !inline || !a.is_empty())
                    .collect();
                if inline {
                    if cmd.is_empty() {
                        continue;
                    }
                    wire.extend(cmd.join(&b' ').iter());
                    wire.extend_from_slice(b"\r\n");
                } else {
                    wire.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
                    for a in &cmd {
                        wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                        wire.extend_from_slice(a);
                        wire.extend_from_slice(b"\r\n");
                    }
                }
                sent.push(cmd);
            }
            let mut got = Vec::new();
            let mut buf = Vec::new();
            let mut at = 0;
            while at < wire.len() {
                let step = (rng.below(9) as usize + 1).min(wire.len() - at);
                buf.extend_from_slice(&wire[at..at + step]);
                at += step;
                loop {
                    match decode(&buf, &limits) {
                        Ok(Some((cmd, used))) => {
                            got.push(cmd);
                            buf.drain(..used);
                        }
                        Ok(None) => break,
                        Err(e) => panic!("seed {seed}: {e} (replay: RESP_SEED={seed})"),
                    }
                }
            }
            assert_eq!(got, sent, "seed {seed} (replay: RESP_SEED={seed})");
            assert!(buf.is_empty(), "seed {seed}: leftover bytes");
            // Corrupt a few bytes: any outcome but a panic is fine.
            if wire.is_empty() {
                continue;
            }
            let mut bad = wire.clone();
            for _ in 0..rng.below(4) + 1 {
                let i = rng.below(bad.len() as u64) as usize;
                bad[i] = rng.next() as u8;
            }
            let mut pos = 0;
            while let Ok(Some((_, used))) = decode(&bad[pos..], &limits) {
                assert!(used > 0, "seed {seed}: no progress");
                pos += used;
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic sweep: every prefix of some hostile inputs, all limits tiny.
        let limits = Limits {
            bulk_bytes_max: 3,
            array_len_max: 3,
            line_bytes_max: 5,
            command_bytes_max: 20,
        };
        let inputs: [&[u8]; 6] = [
            b"*-1\r\n*-2\r\n$-1\r\n",
            b"*1\r\n$-1\r\n",
            b"*18446744073709551615\r\n",
            b"\r\n\r\n\n\n \"\\",
            b"*2\r\n$1\r\na\r\n*",
            &[0xff, b'*', 0, b'\r', b'\n', b'$'],
        ];
        for input in inputs {
            for end in 0..=input.len() {
                let _ = decode(&input[..end], &limits);
            }
        }
    }

    #[test]
    fn inline_commands_split_on_blanks_and_honour_quotes() {
        let limits = Limits::default();
        assert_eq!(
            decode(b"set k \"a b\\\"c\"\r\n", &limits).unwrap(),
            Some((args(&["set", "k", "a b\"c"]), 16))
        );
        assert_eq!(decode(b"\r\n", &limits).unwrap(), Some((Vec::new(), 2)));
        assert_eq!(decode(b"GET k", &limits).unwrap(), None);
    }

    #[test]
    fn the_encoder_writes_resp2() {
        assert_eq!(enc(&Resp::Simple("OK")), b"+OK\r\n");
        assert_eq!(enc(&Resp::Int(-3)), b":-3\r\n");
        assert_eq!(enc(&Resp::Nil), b"$-1\r\n");
        assert_eq!(enc(&Resp::err("a\r\nb")), b"-ERR a  b\r\n");
        assert_eq!(
            enc(&Resp::Array(vec![Resp::Bulk(b"x".to_vec()), Resp::Int(1)])),
            b"*2\r\n$1\r\nx\r\n:1\r\n"
        );
    }

    fn done(value: Value) -> Reply {
        Reply {
            id: 0,
            result: Ok(Done {
                value,
                token: SessionToken::new(),
            }),
        }
    }

    fn submit(s: &mut Session, cmd: &[&str]) -> (Request, Pending) {
        match s.command(&args(cmd)) {
            Step::Submit(r, p) => (r, p),
            other => panic!("{cmd:?} gave {other:?}"),
        }
    }

    fn replied(step: Step) -> Resp {
        match step {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn commands_map_to_requests_and_replies_back() {
        let mut s = Session::new(Consistency::LocalOne);
        assert_eq!(replied(s.command(&args(&["ping"]))), Resp::Simple("PONG"));
        let (r, p) = submit(&mut s, &["INCRBY", "k", "5"]);
        assert_eq!((r.op, r.consistency), (Op::PnAdd(5), Consistency::LocalOne));
        assert_eq!(replied(s.reply(p, done(Value::Counter(5)))), Resp::Int(5));
        let (r, p) = submit(&mut s, &["WITH", "global_quorum", "GET", "k"]);
        assert_eq!((r.op, r.consistency), (Op::Get, Consistency::GlobalQuorum));
        assert_eq!(
            replied(s.reply(p, done(Value::Counter(5)))),
            Resp::Bulk(b"5".to_vec())
        );
        let (_, p) = submit(&mut s, &["GET", "s"]);
        assert_eq!(
            replied(s.reply(p, done(Value::Set(vec![])))),
            Resp::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
        );
        assert_eq!(
            replied(s.command(&args(&["CONSISTENCY", "LOCAL_QUORUM"]))),
            Resp::Simple("OK")
        );
        let (r, _) = submit(&mut s, &["GET", "k"]);
        assert_eq!(r.consistency, Consistency::LocalQuorum);
        assert!(matches!(
            replied(s.command(&args(&["NOPE"]))),
            Resp::Error(e) if e.starts_with("ERR unknown command")
        ));
    }

    #[test]
    fn multi_member_sadd_is_one_request_per_member() {
        let mut s = Session::new(Consistency::LocalOne);
        let (r, p) = submit(&mut s, &["SADD", "s", "a", "b"]);
        assert_eq!(r.op, Op::SetAdd(Scalar::bytes("a")));
        let Step::Submit(r, p) = s.reply(p, done(Value::Changed(true))) else {
            panic!("expected the second add");
        };
        assert_eq!(r.op, Op::SetAdd(Scalar::bytes("b")));
        assert_eq!(
            replied(s.reply(p, done(Value::Changed(false)))),
            Resp::Int(1)
        );
    }

    #[test]
    fn del_reads_then_clears_each_key() {
        let mut s = Session::new(Consistency::LocalOne);
        let (r, p) = submit(&mut s, &["DEL", "s", "r", "gone"]);
        assert_eq!(r.op, Op::Get);
        let set = Value::Set(vec![Scalar::bytes("a"), Scalar::bytes("b")]);
        let Step::Submit(r, p) = s.reply(p, done(set)) else {
            panic!()
        };
        assert_eq!(
            (&*r.key, r.op),
            (&b"s"[..], Op::SetRemove(Scalar::bytes("a")))
        );
        let Step::Submit(r, p) = s.reply(p, done(Value::Changed(true))) else {
            panic!()
        };
        assert_eq!(r.op, Op::SetRemove(Scalar::bytes("b")));
        let Step::Submit(r, p) = s.reply(p, done(Value::Changed(true))) else {
            panic!()
        };
        assert_eq!((&*r.key, r.op), (&b"r"[..], Op::Get));
        let Step::Submit(r, p) = s.reply(p, done(Value::Register(Scalar::bytes("v")))) else {
            panic!()
        };
        assert_eq!(r.op, Op::Put(TOMBSTONE));
        let Step::Submit(r, p) = s.reply(p, done(Value::Written)) else {
            panic!()
        };
        assert_eq!((&*r.key, r.op), (&b"gone"[..], Op::Get));
        assert_eq!(replied(s.reply(p, done(Value::Absent))), Resp::Int(2));
        // A deleted register reads as nil.
        let (_, p) = submit(&mut s, &["GET", "r"]);
        assert_eq!(
            replied(s.reply(p, done(Value::Register(TOMBSTONE)))),
            Resp::Nil
        );
    }

    #[test]
    fn tokens_round_trip_and_are_merged() {
        let mut s = Session::new(Consistency::LocalOne);
        let t = replied(s.command(&args(&["TOKEN"])));
        let Resp::Bulk(t) = t else { panic!() };
        let mut other = Session::new(Consistency::LocalOne);
        let set = vec![b"TOKEN".to_vec(), b"SET".to_vec(), t];
        assert_eq!(replied(other.command(&set)), Resp::Simple("OK"));
        assert!(matches!(
            replied(other.command(&args(&["TOKEN", "SET", "zz"]))),
            Resp::Error(_)
        ));
    }
}
