//! Fuzz target `peer_frame`: converge-node's peer-link frame decoder
//! (`converge_node::frame::decode`) on arbitrary bytes.
//!
//! Shared by the libFuzzer target (`fuzz/fuzz_targets/peer_frame.rs`) and the stable corpus
//! replay (`tests/fuzz_corpus.rs`), which both include this file by path.
//!
//! The input's first byte picks the maximum frame size (bits 0–1: the smallest legal `Hello`,
//! 64 bytes, 4 KiB or 1 MiB) and its second the read sizes; the rest is the peer's byte stream.
//! Properties:
//! - decoding never panics and always makes progress;
//! - the stream read in pieces decodes exactly as the stream read at once (restartable);
//! - no frame is larger than the maximum;
//! - every decoded frame re-encodes to exactly the bytes it was decoded from (the framing is
//!   canonical), so the encoder and decoder agree.

use converge_node::frame::{self, Frame};

// `split.rs`, which every driver declares once at its root beside this body.
use super::split;

/// The frame-size maxima the selector picks from.
const MAX_FRAME_BYTES: [usize; 4] = [frame::HELLO_FRAME_BYTES, 64, 4096, 1 << 20];

/// Stream bytes looked at, bounding one input's time.
const STREAM_BYTES_MAX: usize = 8 * 1024;

/// The `peer_frame` fuzz target's body; see the module docs.
///
/// # Panics
/// When a property fails, naming it and the input.
pub fn peer_frame(data: &[u8]) {
    let [selector, seed, stream @ ..] = data else {
        return;
    };
    let stream = &stream[..stream.len().min(STREAM_BYTES_MAX)];
    let max = MAX_FRAME_BYTES[usize::from(selector & 3)];
    let decode = |buf: &[u8]| frame::decode(buf, max);

    let whole = split::run([stream], decode);
    let pieces = split::run(split::chunks(stream, *seed), decode);
    assert_eq!(
        whole, pieces,
        "the stream decodes differently read at once and in pieces (seed {seed}, max {max}), \
         stream {stream:?}"
    );

    let mut at = 0;
    for (decoded, used) in &whole.items {
        assert!(
            *used <= 4 + max,
            "a {used}-byte frame over the maximum {max}"
        );
        let encoded = match decoded {
            Frame::Hello {
                sender,
                fingerprint,
                incarnation,
                extensions,
            } => frame::encode_hello_with(*sender, *fingerprint, *incarnation, extensions),
            Frame::Welcome => frame::encode_welcome(),
            Frame::Refused { known } => frame::encode_refused(*known),
            Frame::Data { stamp, payload } => match frame::encode_data(*stamp, payload) {
                Some(bytes) => bytes,
                None => panic!("a decoded {}-byte payload does not encode", payload.len()),
            },
        };
        assert_eq!(
            encoded.as_slice(),
            &stream[at..at + used],
            "{decoded:?} re-encodes to other bytes than it came from"
        );
        at += used;
    }
}
