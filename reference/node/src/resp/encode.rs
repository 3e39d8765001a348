//! The RESP2 encoder: [`Resp`], a value as the node sends it, and its wire bytes.
//!
//! # Invariants
//! - Every value encodes to exactly one RESP2 reply: error text never holds CR or LF (they are
//!   replaced by blanks), and bulk strings are length-prefixed, so any bytes are safe in them.
//! - Encoding appends to the caller's buffer and never fails, so a pipeline's replies are
//!   gathered into one buffer and written with one syscall.

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

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Resp) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out);
        out
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
}
