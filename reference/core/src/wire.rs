//! Standalone encodings of the clocks and CRDTs: a versioned, self-describing binary frame, and
//! JSON for humans. They are for values kept or exchanged outside a replica (tests, tools, the
//! fuzz targets' round trips); replication itself does not use them: `Replica` speaks its own
//! compact, validated message encoding (`replica::msg` over `replica::codec`), and the stdio
//! protocol is the Maelstrom face's JSON (`converge-node`).
//!
//! # Binary frame
//! ```text
//! +------+---------+------------------------+
//! | 0xCE | version | CBOR body (RFC 8949)   |
//! +------+---------+------------------------+
//! ```
//! The body is the serde form of the value, encoded as CBOR: self-describing, so a decoder
//! ignores map fields it does not know. That is the schema-evolution rule: fields are only ever
//! added (with a default), never renamed or re-typed. The version byte changes only for a change
//! that rule cannot express; a decoder refuses versions it does not speak rather than guess.
//!
//! # Invariants
//! - Decoding never panics: bad bytes give a [`WireError`].
//! - Decoding validates: every type refuses values that break its invariants (unsorted clocks,
//!   dots outside their context, …), so a decoded value is one the type could have produced.
//! - Encoding is deterministic, and a decoded value re-encodes to bytes that decode to it again.
//! - Memory is bounded by the input: a length prefix claiming more than the bytes that follow is
//!   an error, not an allocation.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// First byte of every binary frame.
pub const MAGIC: u8 = 0xCE;
/// The binary format version this build writes and reads.
pub const VERSION: u8 = 1;

/// Why bytes or text could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The input was empty or shorter than the frame header.
    #[error("truncated frame: {0} bytes, the header alone is 2")]
    Truncated(usize),
    /// The first byte is not [`MAGIC`]: not a converge frame.
    #[error("not a converge frame: first byte {0:#04x}, expected {MAGIC:#04x}")]
    BadMagic(u8),
    /// A version this build does not speak.
    #[error("unsupported wire version {0} (this build speaks version {VERSION})")]
    UnsupportedVersion(u8),
    /// The body is not valid CBOR for the type, or breaks one of its invariants.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// Bytes left over after the value.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    /// Not valid JSON for the type, or breaks one of its invariants.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes `value` as a binary frame.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![MAGIC, VERSION];
    // Writing into a Vec cannot fail for I/O reasons, and every converge type serializes without
    // error (no non-string map keys in JSON-only positions, no unsupported serde types).
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into a Vec cannot fail");
    out
}

/// Decodes a binary frame, validating the value.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let [magic, version, body @ ..] = bytes else {
        return Err(WireError::Truncated(bytes.len()));
    };
    if *magic != MAGIC {
        return Err(WireError::BadMagic(*magic));
    }
    if *version != VERSION {
        return Err(WireError::UnsupportedVersion(*version));
    }
    let mut rest = body;
    let value =
        ciborium::de::from_reader(&mut rest).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Trailing(rest.len()));
    }
    Ok(value)
}

/// Encodes `value` as JSON.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Every converge type serializes to JSON: maps keyed by non-strings use integer keys, which
    // serde_json writes as strings.
    serde_json::to_string(value).expect("converge types always serialize to JSON")
}

/// Decodes JSON, validating the value. Unknown fields are ignored.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, WireError> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GCounter, ReplicaId};

    #[test]
    fn header_errors_are_typed() {
        assert!(matches!(
            from_bytes::<GCounter>(&[]),
            Err(WireError::Truncated(0))
        ));
        assert!(matches!(
            from_bytes::<GCounter>(&[0, 1, 0xa0]),
            Err(WireError::BadMagic(0))
        ));
        assert!(matches!(
            from_bytes::<GCounter>(&[MAGIC, 9, 0xa0]),
            Err(WireError::UnsupportedVersion(9))
        ));
        let mut bytes = to_bytes(&GCounter::new());
        bytes.push(0);
        assert!(matches!(
            from_bytes::<GCounter>(&bytes),
            Err(WireError::Trailing(1))
        ));
    }

    #[test]
    fn a_counter_round_trips_both_encodings() {
        let mut c = GCounter::new();
        c.increment(ReplicaId(3), 5).unwrap();
        assert_eq!(from_bytes::<GCounter>(&to_bytes(&c)).unwrap(), c);
        assert_eq!(from_json::<GCounter>(&to_json(&c)).unwrap(), c);
    }
}
