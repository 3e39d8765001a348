//! The linearizable services: `lin-kv`, one current map that every request acts on, and
//! `lin-tso`, a counter.
//!
//! Invariant: neither rolls the dice, so their answers depend on the requests alone.

use super::protocol::{Failure, Request, check_cas, read_ok, reply};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Answers a `lin-kv` request against the one current map.
pub(super) fn serve_kv(
    lin: &mut BTreeMap<String, Value>,
    request: Request,
) -> Result<Map<String, Value>, Failure> {
    match request {
        Request::Read { key } => match lin.get(&key) {
            Some(value) => Ok(read_ok(value.clone())),
            None => Err(Failure::missing()),
        },
        Request::Write { key, value } => {
            lin.insert(key, value);
            Ok(reply("write_ok"))
        }
        Request::Cas {
            key,
            from,
            to,
            create,
        } => {
            check_cas(lin.get(&key), &from, create)?;
            lin.insert(key, to);
            Ok(reply("cas_ok"))
        }
        Request::Ts => Err(Failure::not_supported("ts")),
    }
}

/// Answers a `lin-tso` request: the `n`-th (from 0) gets `n`.
pub(super) fn serve_tso(next_ts: &mut u64) -> Map<String, Value> {
    let ts = *next_ts;
    *next_ts += 1;
    let mut reply = reply("ts_ok");
    reply.insert("ts".into(), ts.into());
    reply
}
