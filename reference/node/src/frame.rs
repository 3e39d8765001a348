//! Peer frames: the length-delimited framing of the replication links, sans IO.
//!
//! Every frame is a 4-byte big-endian body length, then the body; the body's first byte is its
//! kind:
//! - `Hello` (kind 1), the first frame on every link, from the dialer: magic `CVGP`, version,
//!   the sender's replica id, the cluster fingerprint (a hash of the member list, see
//!   `config`) and the sender's incarnation (the nonce its store drew when it was created; 0 for
//!   a node without a data directory). A receiver refuses a link whose magic, version,
//!   fingerprint or sender it does not expect, so a misconfigured peer never feeds it payloads
//!   meant for another cluster.
//!   After those fixed fields a `Hello` may carry **extensions**, at most
//!   [`HELLO_EXTENSIONS_MAX`] bytes of `type (u8) | length (u8) | value` entries: a receiver
//!   checks they are well formed and ignores the types it does not know. That is the rule that
//!   lets a rolling upgrade mix builds: a change that only *adds* an extension is add-only (an
//!   older node still links with a newer one); any other change to the framing bumps
//!   [`VERSION`], and nodes of different versions refuse each other's links — which
//!   `converge certify --upgrade-bin` catches (docs/certify.md § Rolling upgrades).
//! - `Welcome` (kind 3) and `Refused` (kind 4), the acceptor's only frames, written back on the
//!   link once it has checked the `Hello`: `Welcome` when it accepted the sender's incarnation,
//!   `Refused` with the incarnation it knows when it knows another one (the sender lost its
//!   disk and must not reuse its identity; see docs/protocol.md § identity).
//! - `Data` (kind 2): the sender's HLC stamp when it queued the frame (the receiver observes it
//!   and derives the replication lag in ms from it), then one `Replica` payload, opaque here
//!   (the replica validates it).
//!
//! # Invariants
//! - [`decode`] never panics, consumes nothing until a whole frame is there (so it is
//!   restartable at any byte boundary), and refuses a length above the maximum from the
//!   4-byte header alone, before the body arrives: a peer cannot make the node buffer more than
//!   `max_frame_bytes` plus one read.
//! - An error is final for the link: the reader logs it, counts it and closes the connection.

/// The first bytes of a `Hello`.
pub const MAGIC: [u8; 4] = *b"CVGP";
/// The framing version; bumped on any incompatible change. Version 2 added the incarnation to
/// the `Hello` and the `Welcome` and `Refused` answers. The `wire-breaking` feature builds a
/// node that claims version 3 without any other change: a deliberately incompatible build, so
/// the rolling-upgrade nemesis can show it splits a mixed cluster (for testing the testers).
#[cfg(not(feature = "wire-breaking"))]
pub const VERSION: u8 = 2;
/// See the default build's `VERSION`.
#[cfg(feature = "wire-breaking")]
pub const VERSION: u8 = 3;

/// Most extension bytes a `Hello` may carry after its fixed fields.
pub const HELLO_EXTENSIONS_MAX: usize = 256;
/// Extension type 1: the sender's build features, a u64 bit set (informational). Only builds
/// with the `wire-next` feature send it: the add-only change the rolling-upgrade test deploys.
pub const EXT_BUILD_FEATURES: u8 = 1;

/// The extensions this build's `Hello` carries.
fn own_extensions() -> Vec<u8> {
    if cfg!(feature = "wire-next") {
        let mut ext = vec![EXT_BUILD_FEATURES, 8];
        ext.extend_from_slice(&1u64.to_be_bytes());
        ext
    } else {
        Vec::new()
    }
}

const KIND_HELLO: u8 = 1;
const KIND_DATA: u8 = 2;
const KIND_WELCOME: u8 = 3;
const KIND_REFUSED: u8 = 4;
const HELLO_LEN: usize = 1 + 4 + 1 + 8 + 8 + 8;
const REFUSED_LEN: usize = 1 + 8;
/// The largest frame a link may carry before its `Hello` is verified: the `Hello` itself. A
/// reader passes this as the maximum for the first frame, so a connection that has not said who
/// it is cannot make the node buffer more than this plus one read.
pub const HELLO_FRAME_BYTES: usize = HELLO_LEN + HELLO_EXTENSIONS_MAX;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The link's first frame.
    Hello {
        /// The dialing replica.
        sender: u64,
        /// The hash of the cluster description the sender runs with.
        fingerprint: u64,
        /// The nonce the sender's store drew when it was created; 0: the sender keeps no store.
        incarnation: u64,
        /// The extension entries, as they came (well formed; unknown types kept, not read).
        extensions: Vec<u8>,
    },
    /// The acceptor's answer to a `Hello` it accepted.
    Welcome,
    /// The acceptor's answer to a `Hello` whose incarnation is not the one it first accepted
    /// from that sender: the sender restarted on a store that forgot its earlier life.
    Refused {
        /// The incarnation the acceptor knows of the sender.
        known: u64,
    },
    /// A replication payload.
    Data {
        /// The sender's HLC stamp (packed, see `shared::clock::Stamp`).
        stamp: u64,
        /// One `Replica` payload for `handle_message`.
        payload: Vec<u8>,
    },
}

/// Why bytes are not a frame. The link is closed afterwards.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length header announces more than the maximum.
    #[error("frame of {0} bytes exceeds the maximum")]
    TooLong(u64),
    /// An empty body (no kind byte).
    #[error("empty frame")]
    Empty,
    /// An unknown kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A `Hello` of the wrong size or with a wrong magic.
    #[error("malformed hello")]
    BadHello,
    /// A `Hello` of another framing version.
    #[error("unsupported framing version {0}")]
    Version(u8),
    /// A `Data` frame too short to hold its stamp.
    #[error("data frame too short")]
    ShortData,
    /// A `Welcome` or `Refused` of the wrong size.
    #[error("malformed answer to a hello")]
    BadAnswer,
}

impl FrameError {
    /// A short, stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::TooLong(_) => "frame_too_long",
            FrameError::Empty => "frame_empty",
            FrameError::UnknownKind(_) => "frame_unknown_kind",
            FrameError::BadHello => "frame_bad_hello",
            FrameError::Version(_) => "frame_version",
            FrameError::ShortData => "frame_short_data",
            FrameError::BadAnswer => "frame_bad_answer",
        }
    }
}

/// Encodes this build's `Hello`.
pub fn encode_hello(sender: u64, fingerprint: u64, incarnation: u64) -> Vec<u8> {
    encode_hello_with(sender, fingerprint, incarnation, &own_extensions())
}

/// Encodes a `Hello` with these extension bytes (at most [`HELLO_EXTENSIONS_MAX`]; the caller
/// passes well-formed entries, as [`decode`] gave them).
pub fn encode_hello_with(
    sender: u64,
    fingerprint: u64,
    incarnation: u64,
    extensions: &[u8],
) -> Vec<u8> {
    let len = HELLO_LEN + extensions.len().min(HELLO_EXTENSIONS_MAX);
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(KIND_HELLO);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&sender.to_be_bytes());
    out.extend_from_slice(&fingerprint.to_be_bytes());
    out.extend_from_slice(&incarnation.to_be_bytes());
    out.extend_from_slice(&extensions[..extensions.len().min(HELLO_EXTENSIONS_MAX)]);
    out
}

/// Whether `ext` is a sequence of whole `type | length | value` entries.
fn extensions_well_formed(mut ext: &[u8]) -> bool {
    while !ext.is_empty() {
        let Some(&len) = ext.get(1) else {
            return false;
        };
        let Some(rest) = ext.get(2 + usize::from(len)..) else {
            return false;
        };
        ext = rest;
    }
    true
}

/// Encodes a `Welcome`.
pub fn encode_welcome() -> Vec<u8> {
    let mut out = 1u32.to_be_bytes().to_vec();
    out.push(KIND_WELCOME);
    out
}

/// Encodes a `Refused` naming the incarnation the acceptor knows.
pub fn encode_refused(known: u64) -> Vec<u8> {
    let mut out = (REFUSED_LEN as u32).to_be_bytes().to_vec();
    out.push(KIND_REFUSED);
    out.extend_from_slice(&known.to_be_bytes());
    out
}

/// Encodes a `Data` frame. `None` if the payload is too large for a 4-byte length (the replica's
/// message limit keeps payloads far below it).
pub fn encode_data(stamp: u64, payload: &[u8]) -> Option<Vec<u8>> {
    let body = 1 + 8 + payload.len();
    let len = u32::try_from(body).ok()?;
    let mut out = Vec::with_capacity(4 + body);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(KIND_DATA);
    out.extend_from_slice(&stamp.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Decodes the first frame of `buf`: `Ok(Some((frame, consumed)))`, `Ok(None)` if incomplete.
pub fn decode(buf: &[u8], max_frame_bytes: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(header);
    let len = u32::from_be_bytes(len) as usize;
    if len > max_frame_bytes {
        return Err(FrameError::TooLong(len as u64));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let frame = match body.first() {
        None => return Err(FrameError::Empty),
        Some(&KIND_HELLO) => {
            if body.len() < HELLO_LEN
                || body.len() > HELLO_LEN + HELLO_EXTENSIONS_MAX
                || body[1..5] != MAGIC
            {
                return Err(FrameError::BadHello);
            }
            if body[5] != VERSION {
                return Err(FrameError::Version(body[5]));
            }
            let extensions = &body[HELLO_LEN..];
            if !extensions_well_formed(extensions) {
                return Err(FrameError::BadHello);
            }
            match (u64_at(body, 6), u64_at(body, 14), u64_at(body, 22)) {
                (Some(sender), Some(fingerprint), Some(incarnation)) => Frame::Hello {
                    sender,
                    fingerprint,
                    incarnation,
                    extensions: extensions.to_vec(),
                },
                _ => return Err(FrameError::BadHello),
            }
        }
        Some(&KIND_WELCOME) if body.len() == 1 => Frame::Welcome,
        Some(&KIND_REFUSED) => match (body.len(), u64_at(body, 1)) {
            (REFUSED_LEN, Some(known)) => Frame::Refused { known },
            _ => return Err(FrameError::BadAnswer),
        },
        Some(&KIND_WELCOME) => return Err(FrameError::BadAnswer),
        Some(&KIND_DATA) => match u64_at(body, 1) {
            Some(stamp) => Frame::Data {
                stamp,
                payload: body[9..].to_vec(),
            },
            None => return Err(FrameError::ShortData),
        },
        Some(&k) => return Err(FrameError::UnknownKind(k)),
    };
    Ok(Some((frame, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_split_at_every_byte() {
        let mut wire = encode_hello(7, 0xdead_beef, 0x1234_5678_9abc);
        wire.extend(encode_data(42, b"payload").unwrap());
        wire.extend(encode_data(43, b"").unwrap());
        wire.extend(encode_welcome());
        wire.extend(encode_refused(99));
        let expect = vec![
            Frame::Hello {
                sender: 7,
                fingerprint: 0xdead_beef,
                incarnation: 0x1234_5678_9abc,
                extensions: own_extensions(),
            },
            Frame::Data {
                stamp: 42,
                payload: b"payload".to_vec(),
            },
            Frame::Data {
                stamp: 43,
                payload: Vec::new(),
            },
            Frame::Welcome,
            Frame::Refused { known: 99 },
        ];
        for cut in 0..=wire.len() {
            let mut buf = wire[..cut].to_vec();
            let mut got = Vec::new();
            for more in [&wire[..0], &wire[cut..]] {
                buf.extend_from_slice(more);
                while let Some((f, used)) = decode(&buf, 1024).unwrap() {
                    got.push(f);
                    buf.drain(..used);
                }
            }
            assert_eq!(got, expect, "split at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn unknown_extensions_are_carried_and_ignored_so_adding_one_is_add_only() {
        // What a later build may add: an entry of a type this build does not know.
        let later = encode_hello_with(
            4,
            5,
            6,
            &[EXT_BUILD_FEATURES, 8, 0, 0, 0, 0, 0, 0, 0, 1, 99, 0],
        );
        match decode(&later, HELLO_FRAME_BYTES) {
            Ok(Some((
                Frame::Hello {
                    sender,
                    fingerprint,
                    incarnation,
                    ..
                },
                used,
            ))) => {
                assert_eq!(
                    (sender, fingerprint, incarnation, used),
                    (4, 5, 6, later.len())
                );
            }
            other => panic!("a later build's hello must be accepted: {other:?}"),
        }
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert_eq!(decode(&[0, 0, 4, 1], 1024), Err(FrameError::TooLong(1025)));
        assert_eq!(decode(&[0, 0, 0, 0], 1024), Err(FrameError::Empty));
        assert_eq!(
            decode(&[0, 0, 0, 1, 9], 1024),
            Err(FrameError::UnknownKind(9))
        );
        assert_eq!(
            decode(&[0, 0, 0, 3, KIND_DATA, 1, 2], 1024),
            Err(FrameError::ShortData)
        );
        let mut hello = encode_hello(1, 2, 3);
        hello[5] = b'X';
        assert_eq!(decode(&hello, 1024), Err(FrameError::BadHello));
        let mut hello = encode_hello(1, 2, 3);
        hello[9] = 9;
        assert_eq!(decode(&hello, 1024), Err(FrameError::Version(9)));
        // A version-1 hello (no incarnation) is refused for its version, not misread.
        let mut old = encode_hello(1, 2, 3);
        old.truncate(old.len() - 8);
        old[..4].copy_from_slice(&22u32.to_be_bytes());
        old[9] = 1;
        assert_eq!(decode(&old, 1024), Err(FrameError::BadHello));
        assert_eq!(
            decode(&[0, 0, 0, 2, KIND_WELCOME, 0], 1024),
            Err(FrameError::BadAnswer)
        );
        assert_eq!(
            decode(&[0, 0, 0, 2, KIND_REFUSED, 0], 1024),
            Err(FrameError::BadAnswer)
        );
        // A hello with the most extensions is exactly the pre-hello maximum.
        let full = [[200u8, 254].as_slice(), &[7u8; 254]].concat();
        assert_eq!(full.len(), HELLO_EXTENSIONS_MAX);
        assert!(decode(&encode_hello_with(1, 2, 3, &full), HELLO_FRAME_BYTES).is_ok());
        // Extensions that are not whole entries are refused.
        let cut = encode_hello_with(1, 2, 3, &[1, 8, 0, 0]);
        assert_eq!(decode(&cut, 1024), Err(FrameError::BadHello));
        // Every prefix of garbage is either incomplete or an error, never a panic.
        let junk = [
            0u8, 0, 0, 20, 1, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        for end in 0..=junk.len() {
            let _ = decode(&junk[..end], 1024);
        }
    }
}
