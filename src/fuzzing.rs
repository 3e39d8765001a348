//! The bodies of the fuzz targets in `fuzz/`, kept here so that two drivers share them:
//!
//! - `cargo +nightly fuzz run TARGET` (libFuzzer, `fuzz/fuzz_targets/TARGET.rs`) explores new
//!   inputs;
//! - `tests/fuzz_corpus.rs` replays the committed corpora (`fuzz/corpus/TARGET/`) and the saved
//!   crashes (`fuzz/regressions/TARGET/`) on stable, in every `cargo test`.
//!
//! Each body takes the raw fuzzer input, returns normally when every property holds (or when the
//! input is not usable, e.g. bytes that do not decode), and panics with a message that says what
//! broke and on what when a property fails. The targets:
//!
//! - [`merge_laws`]: the CRDT law checker (`converge_conformance::laws`) over a fuzzer-built trace
//!   for one of converge-core's types (see [`crate::adapters`]).
//! - [`decode`]: the wire format (`converge_core::wire`) on arbitrary bytes, for every core type:
//!   decoding may refuse, never panic, and a decoded value must round-trip to a fixed point in the
//!   binary encoding, in JSON, and across the two.
//! - [`replica_msg`]: the replica's peer-message decoder (`converge_core::replica::PeerMsg`) and
//!   a replica receiving the bytes from its peers.

use crate::adapters::{
    BoundedSubject, GCounterSubject, LwwSubject, MvSubject, OrSetSubject, PnCounterSubject,
};
use arbitrary::{Arbitrary, Unstructured};
use converge_conformance::laws::{Subject, Trace, check_trace_all};
use converge_core::wire::{self, WireError};
use converge_core::{
    BoundedCounter, CausalContext, Dvv, GCounter, Hlc, HlcTimestamp, LwwRegister, MvRegister,
    OrSet, PnCounter, VectorClock,
};
use std::fmt::Debug;

/// Longest trace [`merge_laws`] runs: each law replays the whole trace, so this bounds the time
/// one input takes. `converge laws` searches traces of up to 60 steps by default.
pub const MAX_TRACE_STEPS: usize = 64;

/// The built-in subjects [`merge_laws`] chooses from, by `selector % SUBJECTS`.
pub const SUBJECTS: u8 = 6;

/// Fuzz target `merge_laws`: every CRDT law on one fuzzer-built trace.
///
/// The input is read through [`arbitrary::Unstructured`]: one selector byte picks the subject
/// (g-counter, pn-counter, or-set, lww-register, mv-register, bounded-counter, by
/// `selector % 6`), the rest is a [`Trace`], cut to [`MAX_TRACE_STEPS`] steps. Input the trace
/// cannot be built from is ignored.
///
/// # Panics
/// When a law fails on the trace: the message names the subject and the law, says how it broke
/// and spells the trace out.
pub fn merge_laws(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(selector) = u8::arbitrary(&mut u) else {
        return;
    };
    let Ok(mut trace) = Trace::arbitrary_take_rest(u) else {
        return;
    };
    trace.steps.truncate(MAX_TRACE_STEPS);
    match selector % SUBJECTS {
        0 => laws_hold(&GCounterSubject, &trace),
        1 => laws_hold(&PnCounterSubject, &trace),
        2 => laws_hold(&OrSetSubject, &trace),
        3 => laws_hold(&LwwSubject, &trace),
        4 => laws_hold(&MvSubject, &trace),
        _ => laws_hold(&BoundedSubject, &trace),
    }
}

fn laws_hold<S: Subject>(subject: &S, trace: &Trace) {
    if let Err((law, message)) = check_trace_all(subject, trace) {
        panic!(
            "merge_laws: the {} law fails for {}: {message}\non trace:\n{}",
            law.name(),
            subject.name(),
            trace.describe(subject.kind()),
        );
    }
}

/// Fuzz target `decode`: the wire format of every core type on arbitrary bytes.
///
/// For each of [`VectorClock`], [`CausalContext`], [`Dvv`], [`HlcTimestamp`], [`Hlc`],
/// [`GCounter`], [`PnCounter`], [`BoundedCounter`], `OrSet<u8>`, `OrSet<String>`, `LwwRegister<u64>` and
/// `MvRegister<u64>`: if `data` decodes as a binary frame (and, when it is UTF-8, as JSON) to a
/// value `v`, then re-encoding `v` must decode to `v` again, and encoding that must give the same
/// bytes (a fixed point). `v` must also round-trip through the other encoding. Refusing to decode
/// is fine; a panic inside the decoder is the bug this looks for.
///
/// # Panics
/// When a decoded value does not round-trip: the message names the type, the encoding and the
/// step that failed, with the values and encodings involved.
pub fn decode(data: &[u8]) {
    let text = std::str::from_utf8(data).ok();
    round_trips::<VectorClock>("VectorClock", data, text);
    round_trips::<CausalContext>("CausalContext", data, text);
    round_trips::<Dvv>("Dvv", data, text);
    round_trips::<HlcTimestamp>("HlcTimestamp", data, text);
    round_trips::<Hlc>("Hlc", data, text);
    round_trips::<GCounter>("GCounter", data, text);
    round_trips::<PnCounter>("PnCounter", data, text);
    round_trips::<BoundedCounter>("BoundedCounter", data, text);
    round_trips::<OrSet<u8>>("OrSet<u8>", data, text);
    round_trips::<OrSet<String>>("OrSet<String>", data, text);
    round_trips::<LwwRegister<u64>>("LwwRegister<u64>", data, text);
    round_trips::<MvRegister<u64>>("MvRegister<u64>", data, text);
}

/// The wire functions for one concrete type. The root crate does not depend on serde itself, so
/// the generic helpers below name this trait instead of serde's, and `wire_types!` implements it
/// for each decoded type by calling `converge_core::wire` at that type.
trait Wire: Sized + PartialEq + Debug {
    fn from_bytes(bytes: &[u8]) -> Result<Self, WireError>;
    fn to_bytes(&self) -> Vec<u8>;
    fn from_json(text: &str) -> Result<Self, WireError>;
    fn to_json(&self) -> String;
}

macro_rules! wire_types {
    ($($t:ty),* $(,)?) => {
        $(
            impl Wire for $t {
                fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
                    wire::from_bytes(bytes)
                }
                fn to_bytes(&self) -> Vec<u8> {
                    wire::to_bytes(self)
                }
                fn from_json(text: &str) -> Result<Self, WireError> {
                    wire::from_json(text)
                }
                fn to_json(&self) -> String {
                    wire::to_json(self)
                }
            }
        )*
    };
}

wire_types!(
    VectorClock,
    CausalContext,
    Dvv,
    HlcTimestamp,
    Hlc,
    GCounter,
    PnCounter,
    BoundedCounter,
    OrSet<u8>,
    OrSet<String>,
    LwwRegister<u64>,
    MvRegister<u64>,
);

/// The round-trip properties of [`decode`] for one type: `data` as a binary frame, `text` (the
/// same input, if it is UTF-8) as JSON.
fn round_trips<T: Wire>(ty: &str, data: &[u8], text: Option<&str>) {
    if let Ok(v) = T::from_bytes(data) {
        binary_fixed_point(ty, &v);
        json_fixed_point(ty, &v);
    }
    if let Some(Ok(v)) = text.map(T::from_json) {
        json_fixed_point(ty, &v);
        binary_fixed_point(ty, &v);
    }
}

/// `v` encodes to bytes that decode to `v`, and those re-encode to the same bytes.
fn binary_fixed_point<T: Wire>(ty: &str, v: &T) {
    let bytes = v.to_bytes();
    let w = match T::from_bytes(&bytes) {
        Ok(w) => w,
        Err(e) => panic!(
            "decode: {ty}: the binary encoding of a decoded value does not decode: {e}\n  \
             value:    {v:?}\n  encoding: {bytes:02x?}"
        ),
    };
    assert!(
        w == *v,
        "decode: {ty}: binary round trip changes the value\n  value:    {v:?}\n  \
         encoding: {bytes:02x?}\n  decodes:  {w:?}"
    );
    let again = w.to_bytes();
    assert!(
        again == bytes,
        "decode: {ty}: binary encoding is not a fixed point\n  value:   {v:?}\n  \
         first:   {bytes:02x?}\n  second:  {again:02x?}"
    );
}

/// `v` encodes to JSON that decodes to `v`, and that re-encodes to the same text.
fn json_fixed_point<T: Wire>(ty: &str, v: &T) {
    let json = v.to_json();
    let w = match T::from_json(&json) {
        Ok(w) => w,
        Err(e) => panic!(
            "decode: {ty}: the JSON encoding of a decoded value does not decode: {e}\n  \
             value: {v:?}\n  JSON:  {json}"
        ),
    };
    assert!(
        w == *v,
        "decode: {ty}: JSON round trip changes the value\n  value:   {v:?}\n  \
         JSON:    {json}\n  decodes: {w:?}"
    );
    let again = w.to_json();
    assert!(
        again == json,
        "decode: {ty}: JSON encoding is not a fixed point\n  value:  {v:?}\n  \
         first:  {json}\n  second: {again}"
    );
}

/// The replica's peer messages on arbitrary bytes: decoding may refuse, never panic; a decoded
/// message re-encodes to a fixed point; and a replica fed the bytes as a message from a peer never
/// panics, and changes neither its keyspace nor its frontier when the bytes do not decode.
pub fn replica_msg(data: &[u8]) {
    use converge_core::ReplicaId;
    use converge_core::replica::{Config, PeerMsg, Replica};
    match PeerMsg::decode(data) {
        Ok(msg) => {
            let bytes = msg.encode();
            let again = PeerMsg::decode(&bytes)
                .unwrap_or_else(|e| panic!("{msg:?} re-encodes to bytes that fail: {e}"));
            assert_eq!(again, msg, "PeerMsg does not round-trip");
            assert_eq!(
                again.encode(),
                bytes,
                "PeerMsg encoding is not a fixed point"
            );
        }
        Err(_) => {
            let mut replica = Replica::new(Config::grid(0, 3, 1), 1_000)
                .expect("a 3-region grid is a valid configuration");
            let before = replica.clone();
            replica.handle_message(1_001, ReplicaId(1), data);
            assert_eq!(
                replica.root_hash(),
                before.root_hash(),
                "refused bytes changed the keyspace"
            );
            assert_eq!(replica.frontier(), before.frontier());
            assert!(
                replica.poll_reply().is_none(),
                "refused bytes answered a client"
            );
        }
    }
    // Whatever decodes is also delivered, from every peer, to a replica that has state.
    let mut replica = Replica::new(Config::grid(0, 3, 1), 1_000).expect("a 3-region grid is valid");
    for from in [1, 2, 7] {
        replica.handle_message(1_001, ReplicaId(from), data);
        replica.drain(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_accept_empty_and_trivial_input() {
        merge_laws(&[]);
        merge_laws(&[0]);
        decode(&[]);
        decode(b"{}");
        decode(&wire::to_bytes(&GCounter::new()));
    }
}
