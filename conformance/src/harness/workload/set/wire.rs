//! A set workload on the wire: the names it uses ([`SetShape`]) and what a read reply says,
//! parsed into a set ([`read_set`]) or its canonical value ([`canonical`]).
//!
//! Invariant: a parsed set is sorted and without repeats, and every element is an integer (the
//! workloads add nothing else), so equal states give equal sets and equal final values.

use crate::harness::body::Kind;
use crate::harness::history::Body;
use serde_json::{Value, json};

/// The names a set workload uses on the wire.
#[derive(Clone, Copy, Debug)]
pub(in crate::harness::workload) struct SetShape {
    /// The workload's name on the command line.
    pub(in crate::harness::workload) name: &'static str,
    /// The request type that adds one element: `add` or `broadcast`.
    pub(in crate::harness::workload) add: &'static str,
    /// The add request of one element: `add {element}` or `broadcast {message}`.
    pub(in crate::harness::workload) adding: fn(i64) -> Kind,
    /// The `read_ok` field holding the set: `value` or `messages`.
    pub(in crate::harness::workload) read_field: &'static str,
}

/// The set a read reply holds, sorted and without repeats, or what is wrong with it.
pub(in crate::harness::workload) fn read_set(
    reply: &Body,
    field: &str,
) -> Result<Vec<i64>, String> {
    let Some(list) = reply.read_field(field) else {
        return Err(format!("read_ok without `{field}`"));
    };
    let Some(items) = list.as_array() else {
        return Err(format!("`{field}` is not a list: {}", cut(list)));
    };
    let mut set = Vec::with_capacity(items.len());
    for item in items {
        match item.as_i64() {
            Some(x) => set.push(x),
            None => {
                return Err(format!(
                    "`{field}` holds {}, which no add wrote (every element is an integer)",
                    cut(item)
                ));
            }
        }
    }
    set.sort_unstable();
    set.dedup();
    Ok(set)
}

/// The canonical value of a read: its set as a sorted JSON list, or `None` if malformed.
pub(in crate::harness::workload) fn canonical(reply: &Body, field: &str) -> Option<Value> {
    read_set(reply, field).ok().map(|set| json!(set))
}

fn cut(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}
