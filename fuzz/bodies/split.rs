//! Feeding a restartable decoder the same bytes whole or in pieces, as a socket would.
//!
//! Shared by the `resp` and `peer_frame` bodies: each driver (a fuzz target, the stable replay)
//! includes this file by `#[path]` once, as `split`, at its root.

/// What a connection's read loop makes of a byte stream: every item decoded, then the error
/// that ended the stream (if any) and how many bytes were left undecoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<T, E> {
    /// The items, with the bytes each consumed, in order.
    pub items: Vec<(T, usize)>,
    /// The error that ended decoding, if one did.
    pub error: Option<E>,
    /// Bytes buffered and not decoded at the end, when no error ended the stream. After an error
    /// it is 0: a decoder refuses as soon as it can (a length over a limit, from the header
    /// alone), so how much was buffered by then depends on the reads, and the link is closed.
    pub leftover: usize,
}

/// Runs `decode` the way the node's read loops do: append each chunk to a buffer, decode every
/// whole item it holds, drop the consumed bytes, stop for good at the first error.
///
/// # Panics
/// When `decode` claims to consume nothing or more bytes than it was given.
pub fn run<'a, T, E>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Decoded<T, E> {
    let mut buf: Vec<u8> = Vec::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decode(&buf) {
                Ok(Some((item, used))) => {
                    assert!(
                        used > 0 && used <= buf.len(),
                        "decoder consumed {used} of {} buffered bytes",
                        buf.len()
                    );
                    buf.drain(..used);
                    items.push((item, used));
                }
                Ok(None) => break,
                Err(error) => {
                    return Decoded {
                        items,
                        error: Some(error),
                        leftover: 0,
                    };
                }
            }
        }
    }
    Decoded {
        items,
        error: None,
        leftover: buf.len(),
    }
}

/// Cuts `data` into pieces whose lengths come from `seed`: every byte alone when `seed` is 0,
/// otherwise pseudo-random lengths of 1 to 16 bytes (xorshift, so a corpus file always splits
/// the same way).
pub fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut state = u64::from(seed) | 0x9e37_79b9_7f4a_7c00;
    let mut rest = data;
    while !rest.is_empty() {
        let len = if seed == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1 + (state % 16) as usize
        };
        let (head, tail) = rest.split_at(len.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}
