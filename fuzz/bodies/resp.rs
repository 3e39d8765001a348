//! Fuzz target `resp`: converge-node's RESP2 decoder (`converge_node::resp::decode`) and the
//! per-connection `Session` on arbitrary bytes.
//!
//! Shared by the libFuzzer target (`fuzz/fuzz_targets/resp.rs`) and the stable corpus replay
//! (`tests/fuzz_corpus.rs`), which both include this file by path.
//!
//! The input's first byte picks the decoder limits (bit 0: small, to reach every limit, or the
//! defaults) and its second the read sizes; the rest is the client's byte stream. Properties:
//! - decoding never panics and always makes progress;
//! - the stream read in pieces (every byte alone, or 1–16 bytes at a time) decodes to exactly the
//!   commands, the error and the leftover of the stream read at once (the decoder is restartable);
//! - every decoded command respects the limits (argument count, argument length);
//! - a decoded command, re-encoded as a RESP array of bulk strings, decodes back to itself;
//! - the session handles every decoded command without panicking.

use converge_core::replica::Consistency;
use converge_node::resp::{self, Limits, Resp, Session};

// `split.rs`, which every driver declares once at its root beside this body.
use super::split;

/// Limits small enough for short inputs to hit each of them.
const SMALL: Limits = Limits {
    bulk_bytes_max: 16,
    array_len_max: 4,
    line_bytes_max: 24,
    // Below the largest array SMALL allows (4 arguments of 16 bytes: 96 bytes), so the total
    // limit is reached too; an inline line (at most 25 bytes) re-encodes within it.
    command_bytes_max: 64,
};

/// Stream bytes looked at: each split re-decodes the buffer, so this bounds an input's time.
const STREAM_BYTES_MAX: usize = 8 * 1024;

/// The `resp` fuzz target's body; see the module docs.
///
/// # Panics
/// When a property fails, naming it and the input.
pub fn resp(data: &[u8]) {
    let [selector, seed, stream @ ..] = data else {
        return;
    };
    let stream = &stream[..stream.len().min(STREAM_BYTES_MAX)];
    let limits = if selector & 1 == 1 {
        SMALL
    } else {
        Limits::default()
    };
    let decode = |buf: &[u8]| resp::decode(buf, &limits);

    let whole = split::run([stream], decode);
    let pieces = split::run(split::chunks(stream, *seed), decode);
    assert_eq!(
        whole, pieces,
        "the stream decodes differently read at once and in pieces (seed {seed}), limits {limits:?}, \
         stream {stream:?}"
    );

    let mut session = Session::new(Consistency::LocalOne);
    for (cmd, used) in &whole.items {
        assert!(
            cmd.len() <= limits.array_len_max,
            "{} arguments over the limit {limits:?}: {cmd:?}",
            cmd.len()
        );
        // Inline commands are bounded by the line limit rather than the bulk limit.
        let arg_max = limits.bulk_bytes_max.max(limits.line_bytes_max);
        assert!(
            cmd.iter().all(|arg| arg.len() <= arg_max),
            "an argument over the limits {limits:?}: {cmd:?}"
        );
        assert!(
            *used <= limits.command_bytes_max,
            "{used} bytes for one command"
        );

        if cmd.iter().all(|arg| arg.len() <= limits.bulk_bytes_max) {
            let mut wire = Vec::new();
            Resp::Array(cmd.iter().cloned().map(Resp::Bulk).collect()).encode(&mut wire);
            assert_eq!(
                resp::decode(&wire, &limits),
                Ok(Some((cmd.clone(), wire.len()))),
                "{cmd:?} does not round-trip through {wire:?}"
            );
        }

        // Commands only; replies need a replica. Bad arguments must be error replies.
        let _ = session.command(cmd);
    }
}
