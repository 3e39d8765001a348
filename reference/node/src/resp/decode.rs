//! The RESP2 decoder, sans IO: bytes in, [`Command`]s out, within [`Limits`].
//!
//! # Invariants
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Command {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
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
}
