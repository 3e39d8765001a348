//! A RESP2 client for the cluster backend: commands out as arrays of bulk strings, replies in as
//! [`Reply`], over a blocking socket with a deadline on every read and write.
//!
//! Why not a client crate: the harness talks to subjects it does not trust, and must bound what a
//! reply may make it allocate (a `$999999999` header must not reserve a gigabyte), keep the exact
//! error words a subject answered (`-UNAVAILABLE`, `-READONLY`, `-TIMEOUT`: which are definite is
//! the mapping's business, not a client library's), and tell nil from empty. RESP2 is a small
//! grammar; the decoder below is bounded in depth, element count and bytes.
//!
//! Invariants: a reply never allocates more than [`REPLY_BYTES_MAX`] of data; every read and
//! write is bounded by the deadline given; a connection that saw a protocol error or an I/O
//! error is never reused (the caller drops it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Most bytes of data one reply may carry (bulk strings and lines together).
pub const REPLY_BYTES_MAX: usize = 16 << 20;
/// Most elements of one array reply, nested ones included.
const ELEMENTS_MAX: usize = 1 << 20;
/// Deepest nesting of arrays.
const DEPTH_MAX: usize = 8;
/// Longest header or simple line.
const LINE_MAX: usize = 64 << 10;

/// A decoded reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`: the whole line after the dash.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` bytes.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*n` elements.
    Array(Vec<Reply>),
}

impl Reply {
    /// The error's first word (`UNAVAILABLE`, `READONLY`, `ERR`), if this is an error.
    pub fn error_word(&self) -> Option<&str> {
        match self {
            Reply::Error(line) => Some(line.split_whitespace().next().unwrap_or("")),
            _ => None,
        }
    }
}

/// Why a round trip failed, split by what the caller may conclude about the command.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Nothing was sent: the command certainly did not run.
    #[error("not sent: {0}")]
    NotSent(std::io::Error),
    /// Sent, but no complete reply arrived (timeout, reset, EOF): it may have run.
    #[error("no reply: {0}")]
    NoReply(std::io::Error),
    /// The subject answered something that is not RESP, or more than the bounds allow.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// One connection to a node's client port.
pub struct Connection {
    reader: BufReader<TcpStream>,
    /// Reply data read so far for the reply being decoded.
    budget: usize,
    elements: usize,
}

impl Connection {
    /// Connects within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream),
            budget: 0,
            elements: 0,
        })
    }

    /// Whether the connection still looks open: nothing unread and no end or error waiting. A
    /// pooled connection whose node was killed and restarted is found dead here, before a
    /// command is sent into it (which would make the command's outcome unknown).
    pub fn alive(&self) -> bool {
        let stream = self.reader.get_ref();
        if !self.reader.buffer().is_empty() || stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let open =
            matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).is_ok() && open
    }

    /// Sends every command of `commands` in one write (a pipeline) and reads one reply each,
    /// all before `deadline`.
    pub fn pipeline(
        &mut self,
        commands: &[Vec<Vec<u8>>],
        deadline: Instant,
    ) -> Result<Vec<Reply>, RespError> {
        let mut out = Vec::new();
        for command in commands {
            encode(command, &mut out);
        }
        let stream = self.reader.get_mut();
        stream
            .set_write_timeout(Some(remaining(deadline).map_err(RespError::NotSent)?))
            .map_err(RespError::NotSent)?;
        // A write that fails part way may have delivered a whole command: from the first byte
        // on, the outcome is unknown. A failed write of nothing at all is only "not sent" when
        // the socket says so before any byte left, which a blocking write_all cannot tell us;
        // so a write failure counts as not sent only for a connection error seen before it.
        if let Err(e) = stream.write_all(&out) {
            return Err(match e.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotConnected => {
                    RespError::NotSent(e)
                }
                _ => RespError::NoReply(e),
            });
        }
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            self.budget = 0;
            self.elements = 0;
            replies.push(self.read_reply(deadline, 0)?);
        }
        Ok(replies)
    }

    fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, RespError> {
        self.reader
            .get_mut()
            .set_read_timeout(Some(remaining(deadline).map_err(RespError::NoReply)?))
            .map_err(RespError::NoReply)?;
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(LINE_MAX as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(RespError::NoReply)?;
        if n == 0 {
            return Err(RespError::NoReply(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            )));
        }
        if !line.ends_with(b"\r\n") {
            return Err(RespError::Protocol(format!(
                "a line of more than {LINE_MAX} bytes, or without CRLF"
            )));
        }
        line.truncate(line.len() - 2);
        self.charge(line.len())?;
        Ok(line)
    }

    fn charge(&mut self, bytes: usize) -> Result<(), RespError> {
        self.budget += bytes;
        if self.budget > REPLY_BYTES_MAX {
            return Err(RespError::Protocol(format!(
                "a reply of more than {REPLY_BYTES_MAX} bytes"
            )));
        }
        Ok(())
    }

    fn read_reply(&mut self, deadline: Instant, depth: usize) -> Result<Reply, RespError> {
        let line = self.read_line(deadline)?;
        let (&tag, rest) = line
            .split_first()
            .ok_or_else(|| RespError::Protocol("an empty reply line".into()))?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        let number = || -> Result<i64, RespError> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| RespError::Protocol(format!("bad number {:?}", text())))
        };
        match tag {
            b'+' => Ok(Reply::Simple(text())),
            b'-' => Ok(Reply::Error(text())),
            b':' => Ok(Reply::Int(number()?)),
            b'$' => {
                let len = number()?;
                if len < 0 {
                    return Ok(Reply::Nil);
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                // Charged before reading: the header alone cannot make the harness allocate.
                self.charge(len)?;
                let mut data = vec![0; len + 2];
                self.reader
                    .read_exact(&mut data)
                    .map_err(RespError::NoReply)?;
                if !data.ends_with(b"\r\n") {
                    return Err(RespError::Protocol("a bulk string without CRLF".into()));
                }
                data.truncate(len);
                Ok(Reply::Bulk(data))
            }
            b'*' => {
                let len = number()?;
                if len < 0 {
                    return Ok(Reply::Nil);
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                self.elements = self.elements.saturating_add(len);
                if self.elements > ELEMENTS_MAX || depth >= DEPTH_MAX {
                    return Err(RespError::Protocol(format!(
                        "an array reply over {ELEMENTS_MAX} elements or {DEPTH_MAX} levels"
                    )));
                }
                let mut items = Vec::with_capacity(len.min(1024));
                for _ in 0..len {
                    items.push(self.read_reply(deadline, depth + 1)?);
                }
                Ok(Reply::Array(items))
            }
            other => Err(RespError::Protocol(format!(
                "a reply starting with byte {other:#04x}"
            ))),
        }
    }
}

/// Time left until `deadline`, or a timeout error if it has passed (a zero timeout would mean
/// "block forever" to the socket).
fn remaining(deadline: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "deadline passed",
        ))
    } else {
        Ok(left)
    }
}

/// Appends `command` to `out` as a RESP array of bulk strings.
pub fn encode(command: &[Vec<u8>], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
    for arg in command {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A command from words.
pub fn command<I, W>(words: I) -> Vec<Vec<u8>>
where
    I: IntoIterator<Item = W>,
    W: AsRef<[u8]>,
{
    words.into_iter().map(|w| w.as_ref().to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers every connection with `script` and then holds it open.
    fn serve(script: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(script);
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        addr
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(1)
    }

    #[test]
    fn every_reply_type_decodes() {
        let addr = serve(
            b"+OK\r\n-UNAVAILABLE not met\r\n:-3\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n:1\r\n*0\r\n",
        );
        let mut c = Connection::connect(addr, Duration::from_secs(1)).unwrap();
        let cmds = vec![command(["PING"]); 6];
        let r = c.pipeline(&cmds, soon()).unwrap();
        assert_eq!(r[0], Reply::Simple("OK".into()));
        assert_eq!(r[1].error_word(), Some("UNAVAILABLE"));
        assert_eq!(r[2], Reply::Int(-3));
        assert_eq!(r[3], Reply::Bulk(b"a\r\nb".to_vec()));
        assert_eq!(r[4], Reply::Nil);
        assert_eq!(
            r[5],
            Reply::Array(vec![Reply::Int(1), Reply::Array(vec![])])
        );
    }

    #[test]
    fn a_huge_bulk_header_is_refused_before_any_allocation() {
        let addr = serve(b"$999999999999\r\n");
        let mut c = Connection::connect(addr, Duration::from_secs(1)).unwrap();
        let err = c.pipeline(&[command(["GET", "k"])], soon()).unwrap_err();
        assert!(matches!(err, RespError::Protocol(_)), "{err}");
    }

    #[test]
    fn a_silent_server_is_no_reply_by_the_deadline() {
        let addr = serve(b"");
        let mut c = Connection::connect(addr, Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        let err = c
            .pipeline(
                &[command(["GET", "k"])],
                Instant::now() + Duration::from_millis(200),
            )
            .unwrap_err();
        assert!(matches!(err, RespError::NoReply(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let addr = serve(b"HTTP/1.1 400 Bad Request\r\n");
        let mut c = Connection::connect(addr, Duration::from_secs(1)).unwrap();
        let err = c.pipeline(&[command(["PING"])], soon()).unwrap_err();
        assert!(matches!(err, RespError::Protocol(_)), "{err}");
    }
}
