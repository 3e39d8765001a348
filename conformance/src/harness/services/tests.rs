//! The services' tests: each service's semantics by example, errors and totality, and properties
//! over random requests and dice (determinism, staleness bounds, convergence).

use super::protocol::canonical;
use super::*;
use crate::harness::message::ErrorCode;
use proptest::prelude::*;
use serde_json::json;

/// A dice that always picks the last option: the newest `seq-kv` state, no `lww-kv` sync and
/// always the last `lww-kv` replica. Every service is linearizable under it.
fn top(n: u64) -> u64 {
    n.saturating_sub(1)
}

/// A dice that always picks the first option: the stalest `seq-kv` state allowed.
fn bottom(_: u64) -> u64 {
    0
}

/// A dice that plays back a script, cycling; an empty script always rolls 0.
struct Script {
    rolls: Vec<u64>,
    at: usize,
}

impl Dice for Script {
    fn below(&mut self, n: u64) -> u64 {
        let slot = self.at % self.rolls.len().max(1);
        self.at += 1;
        self.rolls.get(slot).copied().unwrap_or(0) % n
    }
}

/// A seeded splitmix64 generator: a fair dice for runs that need many rolls.
struct SplitMix(u64);

impl Dice for SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

const KV: [&str; 3] = ["lin-kv", "seq-kv", "lww-kv"];

/// The code of an error reply, or `None` for any other reply.
fn code(reply: &Value) -> Option<u64> {
    (reply["type"] == "error").then(|| reply["code"].as_u64().unwrap_or(u64::MAX))
}

/// Everything but the counters, which every request changes.
fn state(s: &Services) -> (BTreeMap<String, Value>, SeqKv, LwwKv, u64) {
    (s.lin.clone(), s.seq.clone(), s.lww.clone(), s.next_ts)
}

#[test]
fn every_kv_service_reads_writes_and_compares_and_sets() {
    const KEY_DOES_NOT_EXIST: u64 = ErrorCode::KeyDoesNotExist.code();
    const PRECONDITION_FAILED: u64 = ErrorCode::PreconditionFailed.code();
    for dest in KV {
        let mut s = Services::new();
        let mut req = |body: Value| s.handle("n1", dest, &body, 0, &mut top);

        let r = req(json!({"type": "read", "msg_id": 1, "key": "x"}));
        assert_eq!(code(&r), Some(KEY_DOES_NOT_EXIST), "{dest}: {r}");
        assert_eq!(r["in_reply_to"], 1);
        assert!(r["text"].is_string());
        let r = req(json!({"type": "write", "msg_id": 2, "key": "x", "value": 1}));
        assert_eq!(r, json!({"type": "write_ok", "in_reply_to": 2}), "{dest}");
        let r = req(json!({"type": "read", "msg_id": 3, "key": "x"}));
        assert_eq!(r, json!({"type": "read_ok", "in_reply_to": 3, "value": 1}));

        let r = req(json!({"type": "cas", "msg_id": 4, "key": "x", "from": 1, "to": 2}));
        assert_eq!(r, json!({"type": "cas_ok", "in_reply_to": 4}), "{dest}");
        let r = req(json!({"type": "cas", "key": "x", "from": 1, "to": 3}));
        assert_eq!(code(&r), Some(PRECONDITION_FAILED), "{dest}: {r}");
        assert_eq!(r["text"], "expected 1, but had 2");
        // `create_if_not_exists` only matters for a missing key.
        let r = req(json!({"type": "cas", "key": "x", "from": 1, "to": 3,
                           "create_if_not_exists": true}));
        assert_eq!(code(&r), Some(PRECONDITION_FAILED), "{dest}: {r}");
        let r = req(json!({"type": "read", "key": "x"}));
        assert_eq!(r, json!({"type": "read_ok", "value": 2}), "{dest}");

        let r = req(json!({"type": "cas", "key": "y", "from": 0, "to": 1}));
        assert_eq!(code(&r), Some(KEY_DOES_NOT_EXIST), "{dest}: {r}");
        let r = req(json!({"type": "cas", "key": "y", "from": 0, "to": 1,
                           "create_if_not_exists": false}));
        assert_eq!(code(&r), Some(KEY_DOES_NOT_EXIST), "{dest}: {r}");
        let r = req(json!({"type": "cas", "key": "y", "from": 0, "to": 1,
                           "create_if_not_exists": true}));
        assert_eq!(r, json!({"type": "cas_ok"}), "{dest}");
        let r = req(json!({"type": "read", "key": "y"}));
        assert_eq!(r["value"], 1, "{dest}");
    }
}

#[test]
fn keys_and_values_are_arbitrary_json_compared_by_json_equality() {
    for dest in KV {
        let mut s = Services::new();
        let mut req = |body: Value| s.handle("n1", dest, &body, 0, &mut top);
        let key = json!({"b": 1, "a": [1, "two", null]});
        let value = json!({"nested": [true, {"z": 0.5}]});
        req(json!({"type": "write", "key": key, "value": value}));
        // The same key with its members in another order is the same key.
        let reordered = json!({"a": [1, "two", null], "b": 1});
        let r = req(json!({"type": "read", "key": reordered}));
        assert_eq!(r["value"], value, "{dest}");
        // A string and a number are different keys.
        req(json!({"type": "write", "key": 1, "value": "number"}));
        req(json!({"type": "write", "key": "1", "value": "string"}));
        let r = req(json!({"type": "read", "key": 1}));
        assert_eq!(r["value"], "number", "{dest}");
        // `null` is a value like any other.
        req(json!({"type": "write", "key": "n", "value": null}));
        let r = req(json!({"type": "read", "key": "n"}));
        assert_eq!(r, json!({"type": "read_ok", "value": null}), "{dest}");
        // A cas compares values by JSON equality too.
        let r = req(json!({"type": "cas", "key": key, "to": 7,
                           "from": {"nested": [true, {"z": 0.5}]}}));
        assert_eq!(r, json!({"type": "cas_ok"}), "{dest}");
    }
}

/// Member order inside a serde_json object depends on a crate feature, so canonical keys are
/// checked on objects built in both orders.
#[test]
fn canonical_keys_ignore_member_order() {
    let mut ab = Map::new();
    ab.insert("a".into(), 1.into());
    ab.insert("b".into(), json!([{"y": 2, "x": 1}]));
    let mut ba = Map::new();
    ba.insert("b".into(), json!([{"x": 1, "y": 2}]));
    ba.insert("a".into(), 1.into());
    let canonical_ab = canonical(&Value::Object(ab));
    assert_eq!(canonical_ab, canonical(&Value::Object(ba)));
    assert_eq!(canonical_ab, r#"{"a":1,"b":[{"x":1,"y":2}]}"#);
    assert_ne!(canonical(&json!(1)), canonical(&json!(1.0)));
    assert_ne!(canonical(&json!(1)), canonical(&json!("1")));
}

#[test]
fn unsupported_and_malformed_requests_are_answered_with_errors() {
    const MALFORMED: u64 = ErrorCode::MalformedRequest.code();
    const NOT_SUPPORTED: u64 = ErrorCode::NotSupported.code();
    let mut cases = vec![
        ("lin-tso", json!({"type": "read", "key": 1}), NOT_SUPPORTED),
        ("lin-tso", json!({"type": "frob"}), NOT_SUPPORTED),
    ];
    for dest in KV {
        cases.extend([
            (dest, json!({"type": "ts"}), NOT_SUPPORTED),
            (dest, json!({"type": "frob"}), NOT_SUPPORTED),
            (dest, json!({"type": "read_ok"}), NOT_SUPPORTED),
            (dest, json!({"type": "read"}), MALFORMED),
            (dest, json!({"type": "write", "key": 1}), MALFORMED),
            (dest, json!({"type": "write", "value": 1}), MALFORMED),
            (dest, json!({"type": "cas", "key": 1, "to": 1}), MALFORMED),
            (dest, json!({"type": "cas", "key": 1, "from": 1}), MALFORMED),
            (dest, json!({"type": "cas", "from": 1, "to": 1}), MALFORMED),
            (
                dest,
                json!({"type": "cas", "key": 1, "from": 1, "to": 2,
                       "create_if_not_exists": "yes"}),
                MALFORMED,
            ),
        ]);
    }
    for dest in Service::ALL.map(Service::name) {
        cases.extend([
            (dest, json!({}), MALFORMED),
            (dest, json!({"type": 3}), MALFORMED),
        ]);
    }
    for (dest, mut body, expected) in cases {
        body["msg_id"] = json!(7);
        let mut s = Services::new();
        let before = state(&s);
        let r = s.handle("n1", dest, &body, 0, &mut top);
        assert_eq!(code(&r), Some(expected), "{dest} {body}: {r}");
        assert_eq!(r["in_reply_to"], 7, "{dest} {body}: {r}");
        assert!(r["text"].is_string());
        assert_eq!(state(&s), before, "{dest} {body} changed the state");
        assert_eq!(
            s.stats()[&Service::from_name(dest).unwrap_or(Service::LinKv)].errors,
            1
        );
    }
    // Without a usable msg_id there is nothing to reply to.
    let unnumbered = [
        json!(5),
        json!([]),
        json!("read"),
        json!(null),
        json!({"type": "ts", "msg_id": -1}),
        json!({"type": "ts", "msg_id": "1"}),
    ];
    for body in unnumbered {
        let r = Services::new().handle("n1", "lin-tso", &body, 0, &mut top);
        assert_eq!(code(&r), Some(MALFORMED), "{body}: {r}");
        assert!(r.get("in_reply_to").is_none(), "{body}: {r}");
    }
    // A request without a msg_id is still served.
    let r = Services::new().handle("n1", "lin-tso", &json!({"type": "ts"}), 0, &mut top);
    assert_eq!(r, json!({"type": "ts_ok", "ts": 0}));
}

#[test]
fn a_dest_that_is_no_service_is_node_not_found_and_not_counted() {
    assert!(Service::ALL.iter().all(|s| Services::is_service(s.name())));
    assert!(!Services::is_service("n1"));
    assert!(!Services::is_service("lin_kv"));
    let mut s = Services::new();
    let r = s.handle(
        "n1",
        "n2",
        &json!({"type": "read", "msg_id": 3}),
        0,
        &mut top,
    );
    assert_eq!(code(&r), Some(ErrorCode::NodeNotFound.code()));
    assert_eq!(r["in_reply_to"], 3);
    let r = s.handle("n1", "n2", &json!(null), 0, &mut top);
    assert_eq!(code(&r), Some(ErrorCode::NodeNotFound.code()));
    assert!(s.stats().values().all(|st| *st == ServiceStats::default()));
}

#[test]
fn lin_tso_counts_up_from_zero_across_clients() {
    let mut s = Services::new();
    let mut dice = SplitMix(1);
    let mut last = None;
    for i in 0..100u64 {
        let node = format!("n{}", i % 3);
        // Other services' traffic does not disturb the oracle.
        let write = json!({"type": "write", "key": i, "value": i});
        s.handle(&node, "lww-kv", &write, i, &mut dice);
        let r = s.handle(
            &node,
            "lin-tso",
            &json!({"type": "ts", "msg_id": i}),
            i,
            &mut dice,
        );
        assert_eq!(r["type"], "ts_ok");
        assert_eq!(r["in_reply_to"], i);
        let ts = r["ts"].as_u64();
        assert_eq!(ts, Some(i));
        assert!(ts > last);
        last = ts;
    }
    assert_eq!(s.stats()[&Service::LinTso].requests, 100);
}

#[test]
fn seq_kv_reads_may_be_stale_but_never_older_than_what_the_reader_saw() {
    let mut s = Services::new();
    let mut req =
        |node: &str, body: Value, dice: &mut dyn Dice| s.handle(node, "seq-kv", &body, 0, dice);
    let write = |v: u64| json!({"type": "write", "key": "x", "value": v});
    let read = || json!({"type": "read", "key": "x"});
    req("n1", write(1), &mut top);
    req("n2", write(2), &mut top);
    // n3 has seen nothing: the stalest choice is the empty store.
    let r = req("n3", read(), &mut bottom);
    assert_eq!(code(&r), Some(ErrorCode::KeyDoesNotExist.code()), "{r}");
    // n1 saw its own write, so it reads at least that.
    assert_eq!(req("n1", read(), &mut bottom)["value"], 1);
    // Once n3 has seen the newest state, it never reads an older one.
    assert_eq!(req("n3", read(), &mut top)["value"], 2);
    assert_eq!(req("n3", read(), &mut bottom)["value"], 2);
    // A cas acts on the newest state, and its client has seen that state afterwards, even
    // when the cas fails.
    let r = req(
        "n1",
        json!({"type": "cas", "key": "x", "from": 1, "to": 3}),
        &mut bottom,
    );
    assert_eq!(r["text"], "expected 1, but had 2");
    assert_eq!(req("n1", read(), &mut bottom)["value"], 2);
    let stats = s.stats()[&Service::SeqKv];
    assert_eq!(stats.stale_reads, 2, "n3's miss and n1's read of 1");
    assert_eq!((stats.requests, stats.errors), (8, 2));
}

#[test]
fn seq_kv_staleness_is_bounded_by_the_window() {
    let window = |seq_kv_window| {
        Services::with_config(ServiceConfig {
            seq_kv_window,
            ..ServiceConfig::default()
        })
    };
    let read = json!({"type": "read", "key": "x"});
    let mut s = window(3);
    for v in 1..=10u64 {
        let write = json!({"type": "write", "key": "x", "value": v});
        s.handle("n1", "seq-kv", &write, 0, &mut top);
    }
    assert_eq!(s.handle("n2", "seq-kv", &read, 0, &mut bottom)["value"], 7);
    // Pruning keeps exactly the versions the window can still reach.
    assert_eq!(s.seq.history[&canonical(&json!("x"))].len(), 4);
    let mut linear = window(0);
    let write = json!({"type": "write", "key": "x", "value": 1});
    linear.handle("n1", "seq-kv", &write, 0, &mut top);
    assert_eq!(
        linear.handle("n2", "seq-kv", &read, 0, &mut bottom)["value"],
        1
    );
}

#[test]
fn lww_kv_reads_may_be_stale_and_the_later_time_wins() {
    // With syncs off, a request rolls once: for its replica.
    let mut s = Services::with_config(ServiceConfig {
        lww_sync_percent: 0,
        ..ServiceConfig::default()
    });
    let mut req = |body: Value, now: u64, replica: u64| {
        s.handle("n1", "lww-kv", &body, now, &mut |_| replica)
    };
    let write = |v: &str| json!({"type": "write", "key": "x", "value": v});
    let read = || json!({"type": "read", "key": "x"});
    req(write("a"), 10, 0);
    let r = req(read(), 10, 1);
    assert_eq!(code(&r), Some(ErrorCode::KeyDoesNotExist.code()), "{r}");
    // A cas acts on the replica it reaches.
    let r = req(
        json!({"type": "cas", "key": "x", "from": "a", "to": "c"}),
        10,
        2,
    );
    assert_eq!(code(&r), Some(ErrorCode::KeyDoesNotExist.code()), "{r}");
    // Replica 1 writes after replica 0 but with an earlier clock: after gossip, the time
    // decides, and until then replica 1 serves its own write.
    req(write("b"), 5, 1);
    assert_eq!(req(read(), 5, 1)["value"], "b");
    s.settle();
    let mut req = |body: Value, now: u64, replica: u64| {
        s.handle("n1", "lww-kv", &body, now, &mut |_| replica)
    };
    for replica in 0..3 {
        assert_eq!(req(read(), 5, replica)["value"], "a", "replica {replica}");
    }
    // A replica's own newer write wins there even when the caller's clock went back.
    req(write("c"), 1, 1);
    assert_eq!(req(read(), 1, 1)["value"], "c");
    s.settle();
    assert_eq!(
        s.handle("n1", "lww-kv", &read(), 1, &mut bottom)["value"],
        "c"
    );
    // The miss at replica 1 and replica 1's read of its own "b"; a cas is no read.
    assert_eq!(s.stats()[&Service::LwwKv].stale_reads, 2);
}

#[test]
fn one_lww_replica_is_linearizable() {
    let mut s = Services::with_config(ServiceConfig {
        lww_replicas: 0,
        ..ServiceConfig::default()
    });
    assert_eq!(s.lww.replicas.len(), 1);
    let mut dice = SplitMix(5);
    for v in 0..20u64 {
        let write = json!({"type": "write", "key": "x", "value": v});
        s.handle("n1", "lww-kv", &write, 0, &mut dice);
        let r = s.handle(
            "n2",
            "lww-kv",
            &json!({"type": "read", "key": "x"}),
            0,
            &mut dice,
        );
        assert_eq!(r["value"], v);
    }
}

#[test]
fn handle_message_swaps_src_and_dest() {
    let mut s = Services::new();
    let message = json!({"src": "n1", "dest": "lin-tso", "body": {"type": "ts", "msg_id": 4}});
    let reply = s.handle_message(&message, 0, &mut top);
    let expected = json!({"src": "lin-tso", "dest": "n1",
                          "body": {"type": "ts_ok", "in_reply_to": 4, "ts": 0}});
    assert_eq!(reply, Some(expected));
    let to_node = json!({"src": "n1", "dest": "n2", "body": {}});
    assert_eq!(s.handle_message(&to_node, 0, &mut top), None);
    assert_eq!(
        s.handle_message(&json!({"dest": "lin-kv"}), 0, &mut top),
        None
    );
    let reply = s.handle_message(&json!({"src": "n1", "dest": "lin-kv"}), 0, &mut top);
    let malformed = Some(ErrorCode::MalformedRequest.code());
    assert_eq!(reply.and_then(|r| code(&r["body"])), malformed);
}

#[test]
fn the_same_rolls_give_the_same_run() {
    let run = || {
        let mut s = Services::new();
        let mut dice = SplitMix(42);
        let mut replies = Vec::new();
        for i in 0..300u64 {
            let dest = ["lin-kv", "seq-kv", "lww-kv", "lin-tso"][(i % 4) as usize];
            let node = format!("n{}", i % 3);
            let body = match i % 5 {
                0 | 1 => json!({"type": "write", "key": i % 7, "value": i}),
                2 => json!({"type": "cas", "key": i % 7, "from": i - 1, "to": i}),
                _ => json!({"type": "read", "key": i % 7}),
            };
            replies.push(s.handle(&node, dest, &body, i / 10, &mut dice));
        }
        (replies, s)
    };
    let (replies, services) = run();
    let (again, services_again) = run();
    assert_eq!(replies, again);
    assert_eq!(services, services_again);
}

/// Field names of requests, and a few others.
fn field_name() -> impl Strategy<Value = String> {
    let known = [
        "type",
        "msg_id",
        "key",
        "value",
        "from",
        "to",
        "create_if_not_exists",
        "in_reply_to",
    ];
    prop_oneof![
        prop::sample::select(known.to_vec()).prop_map(String::from),
        "[a-z_]{0,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let kinds = ["read", "write", "cas", "ts", "read_ok", "error"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(kinds.to_vec()).prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..7)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Bodies that are often nearly requests: an object with some of the request fields.
fn body() -> impl Strategy<Value = Value> {
    let kinds = ["read", "write", "cas", "ts"];
    let kind = prop_oneof![
        prop::sample::select(kinds.to_vec()).prop_map(Value::from),
        json_value(),
    ];
    let msg_id = prop_oneof![(0u64..100).prop_map(Value::from), json_value()];
    let near = (
        prop::option::of(kind),
        prop::option::of(msg_id),
        prop::collection::vec((field_name(), json_value()), 0..6),
    )
        .prop_map(|(kind, msg_id, mut members)| {
            members.extend(kind.map(|k| ("type".to_owned(), k)));
            members.extend(msg_id.map(|id| ("msg_id".to_owned(), id)));
            Value::Object(members.into_iter().collect())
        });
    prop_oneof![json_value(), near]
}

fn dest() -> impl Strategy<Value = String> {
    let known = ["seq-kv", "lin-kv", "lww-kv", "lin-tso", "n1"];
    prop_oneof![
        prop::sample::select(known.to_vec()).prop_map(String::from),
        ".{0,8}",
    ]
}

/// The model's value of `key` after the first `at` writes of `log`, a list of `(key, value)`.
fn value_at(log: &[(u64, u64)], key: u64, at: u64) -> Option<u64> {
    let writes = usize::try_from(at).map_or(log.len(), |at| at.min(log.len()));
    log[..writes]
        .iter()
        .rev()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary bodies to arbitrary destinations never panic; every reply is a typed object
    /// that echoes a valid msg_id; and error 1, 10 or 12 leaves every service as it was.
    #[test]
    fn arbitrary_bodies_never_panic(
        requests in prop::collection::vec((dest(), ".{0,3}", body(), any::<u64>()), 1..24),
        rolls in prop::collection::vec(any::<u64>(), 0..8),
    ) {
        let mut s = Services::new();
        let mut dice = Script { rolls, at: 0 };
        for (dest, src, body, now) in requests {
            let before = state(&s);
            let r = s.handle(&src, &dest, &body, now, &mut dice);
            prop_assert!(r["type"].is_string(), "{}", r);
            let msg_id = body.get("msg_id").and_then(Value::as_u64);
            prop_assert_eq!(r.get("in_reply_to").and_then(Value::as_u64), msg_id);
            if let Some(c) = code(&r) {
                prop_assert!(r["text"].is_string());
                prop_assert!([1, 10, 12, 20, 22].contains(&c), "{}", r);
                if [1, 10, 12].contains(&c) {
                    prop_assert!(state(&s) == before, "{} changed the state", r);
                }
            }
        }
    }

    /// seq-kv against a model of its global history: every read returns the state at some
    /// version no older than what its client saw (its own writes included) and no older than
    /// the window allows, and every cas acts on the newest state.
    #[test]
    fn seq_kv_reads_are_monotonic_and_see_own_writes(
        ops in prop::collection::vec(
            (0usize..3, 0u8..3, 0u64..3, any::<bool>(), any::<bool>()),
            1..60,
        ),
        rolls in prop::collection::vec(any::<u64>(), 1..16),
    ) {
        const WINDOW: u64 = 4;
        let mut s = Services::with_config(ServiceConfig {
            seq_kv_window: WINDOW,
            ..ServiceConfig::default()
        });
        let mut dice = Script { rolls, at: 0 };
        // The model: the successful writes in order, and the version each node last saw.
        let mut log: Vec<(u64, u64)> = Vec::new();
        let mut seen = [0u64; 3];
        for (i, (node, op, key, hit, create)) in ops.into_iter().enumerate() {
            let value = 100 + i as u64;
            let name = format!("n{node}");
            let latest = log.len() as u64;
            let body = match op {
                0 => json!({"type": "write", "key": key, "value": value}),
                1 => {
                    let current = value_at(&log, key, latest);
                    // A hit names the current value; a miss names one never written.
                    let from = if hit { current.unwrap_or(0) } else { 1 };
                    json!({"type": "cas", "key": key, "from": from, "to": value,
                           "create_if_not_exists": create})
                }
                _ => json!({"type": "read", "key": key}),
            };
            let r = s.handle(&name, "seq-kv", &body, 0, &mut dice);
            match op {
                0 | 1 => {
                    let ok = match value_at(&log, key, latest) {
                        _ if op == 0 => true,
                        Some(current) => body["from"] == current,
                        None => create,
                    };
                    prop_assert_eq!(r["type"] != "error", ok, "{} -> {}", body, r);
                    if ok {
                        log.push((key, value));
                    }
                    seen[node] = log.len() as u64;
                }
                _ => {
                    let got = r.get("value").and_then(Value::as_u64);
                    let floor = seen[node].max(latest.saturating_sub(WINDOW));
                    let at = (floor..=latest).find(|&at| value_at(&log, key, at) == got);
                    prop_assert!(at.is_some(), "{} read {} below version {}", name, r, floor);
                    seen[node] = at.unwrap_or(floor);
                }
            }
        }
    }

    /// lww-kv: replicas that keep gossiping come to hold the join of all their writes, which
    /// is what settling gives.
    #[test]
    fn lww_kv_converges(
        writes in prop::collection::vec((0u64..4, 0u64..4, 0u64..50), 1..40),
        seed in any::<u64>(),
    ) {
        let mut s = Services::new();
        let mut dice = SplitMix(seed);
        for (i, (node, key, now)) in writes.into_iter().enumerate() {
            let write = json!({"type": "write", "key": key, "value": i});
            let r = s.handle(&format!("n{node}"), "lww-kv", &write, now, &mut dice);
            prop_assert_eq!(&r["type"], "write_ok");
        }
        let mut settled = s.clone();
        settled.settle();
        let converged = |s: &Services| s.lww.replicas.windows(2).all(|w| w[0].map == w[1].map);
        prop_assert!(converged(&settled));
        let mut requests = 0;
        while !converged(&s) {
            requests += 1;
            prop_assert!(requests < 10_000, "no convergence after {} requests", requests);
            s.handle("n9", "lww-kv", &json!({"type": "read", "key": 0}), 50, &mut dice);
        }
        for (ours, theirs) in s.lww.replicas.iter().zip(&settled.lww.replicas) {
            prop_assert_eq!(&ours.map, &theirs.map);
        }
    }
}
