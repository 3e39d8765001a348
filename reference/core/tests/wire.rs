//! The wire format, pinned: insta snapshots of both encodings of representative values, schema
//! evolution (unknown fields ignored), and decoding that never panics on arbitrary bytes.

use converge_core::wire::{self, WireError};
use converge_core::{
    BoundedCounter, CausalContext, Dot, Dvv, GCounter, Hlc, HlcTimestamp, LwwRegister, MvRegister,
    OrSet, PnCounter, ReplicaId, VectorClock,
};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::fmt::Write as _;

const A: ReplicaId = ReplicaId(1);
const B: ReplicaId = ReplicaId(2);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Both encodings of `value`, after checking each round-trips.
fn encodings<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> String {
    let bytes = wire::to_bytes(value);
    let json = wire::to_json(value);
    assert_eq!(
        &wire::from_bytes::<T>(&bytes).expect("binary round trip"),
        value
    );
    assert_eq!(
        &wire::from_json::<T>(&json).expect("JSON round trip"),
        value
    );
    format!("json: {json}\nbin:  {}", hex(&bytes))
}

fn sample_orset() -> OrSet<String> {
    let mut a = OrSet::new();
    a.add(A, "apple".to_string());
    a.add(A, "pear".to_string());
    let mut b = OrSet::new();
    b.join_from(&a);
    b.remove(&"pear".to_string());
    b.add(B, "fig".to_string());
    // A delta that arrived ahead of a gap leaves a dot in the cloud.
    let mut ahead = OrSet::new();
    ahead.add(ReplicaId(3), "kiwi".to_string());
    let later = ahead.add(ReplicaId(3), "plum".to_string());
    b.join_from(&later);
    b
}

trait JoinFrom {
    fn join_from(&mut self, other: &Self);
}

impl<T: converge_core::Lattice> JoinFrom for T {
    fn join_from(&mut self, other: &Self) {
        self.join(other.clone());
    }
}

#[test]
fn encodings_of_representative_values_are_pinned() {
    let vc: VectorClock = [(A, 5), (B, 3), (ReplicaId(3), 2)].into_iter().collect();
    let mut counter = GCounter::new();
    counter.increment(A, 5).unwrap();
    counter.increment(B, 6).unwrap();
    let mut pn = PnCounter::new();
    pn.increment(A, 10).unwrap();
    pn.decrement(B, 4).unwrap();
    let mut bounded = BoundedCounter::new();
    bounded.increment(A, 7).unwrap();
    bounded.transfer(A, B, 3).unwrap();
    bounded.decrement(B, 2).unwrap();
    let mut lww = LwwRegister::new();
    lww.set(
        B,
        HlcTimestamp::new(1_764_000_000_000, 2),
        "blue".to_string(),
    );
    let mut mv = MvRegister::new();
    mv.write(A, "x".to_string());
    let mut other = MvRegister::new();
    other.write(B, "y".to_string());
    mv.join_from(&other);
    let mut hlc = Hlc::new(250);
    hlc.now(1_764_000_000_000).unwrap();
    let dvv = Dvv::new(Dot::new(A, 4), [(B, 2)].into_iter().collect()).unwrap();
    let ctx = CausalContext::from_dots([Dot::new(A, 1), Dot::new(A, 2), Dot::new(B, 5)]);

    let mut out = String::new();
    let mut section = |name: &str, body: String| {
        let _ = writeln!(out, "## {name}\n{body}\n");
    };
    section("vector clock", encodings(&vc));
    section("causal context", encodings(&ctx));
    section("dvv", encodings(&dvv));
    section("hlc", encodings(&hlc));
    section("g-counter", encodings(&counter));
    section("pn-counter", encodings(&pn));
    section("bounded-counter", encodings(&bounded));
    section("or-set", encodings(&sample_orset()));
    section("lww-register", encodings(&lww));
    section("mv-register", encodings(&mv));
    insta::assert_snapshot!(out);
}

#[test]
fn unknown_fields_are_ignored_in_both_encodings() {
    // A newer peer added a field; this build must still read the value.
    let json = r#"{"p":{"1":4},"n":{},"added_in_v2":{"anything":[1,2,3]}}"#;
    let pn: PnCounter = wire::from_json(json).unwrap();
    assert_eq!(pn.value(), 4);

    #[derive(Serialize)]
    struct Newer<'a> {
        p: &'a GCounter,
        n: &'a GCounter,
        added_in_v2: Vec<u32>,
    }
    let mut p = GCounter::new();
    p.increment(A, 4).unwrap();
    let bytes = wire::to_bytes(&Newer {
        p: &p,
        n: &GCounter::new(),
        added_in_v2: vec![7, 8],
    });
    let decoded: PnCounter = wire::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.value(), 4);
}

#[test]
fn invariant_breaking_values_are_refused_with_a_reason() {
    // A sibling dot the register's context does not contain.
    let json = r#"{"siblings":[{"dvv":{"dot":[1,2],"past":{}},"value":7}],"ctx":{"vv":{"1":1},"cloud":[]}}"#;
    let err = wire::from_json::<MvRegister<u64>>(json).unwrap_err();
    assert!(err.to_string().contains("causal context"), "{err}");
    // A dotted version vector whose past covers its own dot.
    let json = r#"{"dot":[1,2],"past":{"1":2}}"#;
    assert!(wire::from_json::<Dvv>(json).is_err());
    // A length prefix far beyond the input is an error, not a huge allocation.
    let mut bytes = vec![
        wire::MAGIC,
        wire::VERSION,
        0x7b,
        0x7f,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
    ];
    bytes.extend_from_slice(b"abc");
    assert!(matches!(
        wire::from_bytes::<String>(&bytes),
        Err(WireError::Malformed(_))
    ));
}

/// Decodes `bytes` as `T`; whatever decodes must re-encode to a fixed point.
fn decode_is_total<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(value) = wire::from_bytes::<T>(bytes) {
        let again = wire::to_bytes(&value);
        let back: T = wire::from_bytes(&again).expect("re-encoded value decodes");
        assert_eq!(back, value);
        assert_eq!(wire::to_bytes(&back), again);
    }
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    // Mostly well-formed headers, so the CBOR body decoder is what gets exercised.
    (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..96)).prop_map(|(header, body)| {
        if header {
            [vec![wire::MAGIC, wire::VERSION], body].concat()
        } else {
            body
        }
    })
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in frame()) {
        decode_is_total::<VectorClock>(&bytes);
        decode_is_total::<CausalContext>(&bytes);
        decode_is_total::<Dvv>(&bytes);
        decode_is_total::<GCounter>(&bytes);
        decode_is_total::<PnCounter>(&bytes);
        decode_is_total::<BoundedCounter>(&bytes);
        decode_is_total::<OrSet<u8>>(&bytes);
        decode_is_total::<LwwRegister<u64>>(&bytes);
        decode_is_total::<MvRegister<u64>>(&bytes);
    }

    #[test]
    fn flipping_a_byte_of_a_valid_frame_never_panics(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = wire::to_bytes(&sample_orset());
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
        decode_is_total::<OrSet<String>>(&bytes);
    }
}
