//! `seq-kv`: a sequentially consistent store, as one global history of writes with a view per
//! client.
//!
//! Invariants (see the module doc of `services` for the whole contract): writes and `cas` act on
//! the newest state and move their client's view there; a read picks a version between its
//! client's view and the newest, at most `window` behind the newest, and moves the view there;
//! views never move back.

use super::dice::{Dice, roll};
use super::protocol::{Failure, Request, check_cas, read_ok, reply};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `seq-kv`'s state: one global history of writes, kept per key, and each client's view.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct SeqKv {
    /// Writes so far: version `v` is the state after the first `v` writes.
    latest: u64,
    /// Per key, its writes as `(version, value)` in ascending version order; the key's value at
    /// version `v` is the last entry at or before `v`. Entries superseded before every version a
    /// read may still pick are dropped.
    pub(super) history: BTreeMap<String, Vec<(u64, Value)>>,
    /// Per client, the version it last observed. Never above `latest`, never decreasing.
    views: BTreeMap<String, u64>,
}

impl SeqKv {
    /// The key's value in the newest state.
    fn current(&self, key: &str) -> Option<&Value> {
        self.history.get(key).and_then(|h| h.last()).map(|(_, v)| v)
    }

    /// Reads `key` for `node` at a version picked by `dice` between the node's view (or the
    /// oldest version the window keeps) and the newest, and moves the node's view there. Also
    /// says whether the newest state would have answered differently.
    fn read(
        &mut self,
        node: &str,
        key: &str,
        window: u64,
        dice: &mut dyn Dice,
    ) -> (Option<Value>, bool) {
        let view = self.views.get(node).copied().unwrap_or(0);
        let floor = view.max(self.latest.saturating_sub(window));
        let span = self.latest.saturating_sub(floor);
        let at = floor + roll(dice, span.saturating_add(1));
        self.views.insert(node.to_owned(), at);
        let history = self.history.get(key).map_or(&[][..], Vec::as_slice);
        let seen = history.partition_point(|(v, _)| *v <= at);
        let value = seen
            .checked_sub(1)
            .and_then(|i| history.get(i))
            .map(|(_, v)| v.clone());
        (value, seen != history.len())
    }

    /// Writes `value` to `key` in a new newest state, which `node` then has seen.
    fn write(&mut self, node: &str, key: String, value: Value, window: u64) {
        self.latest += 1;
        let floor = self.latest.saturating_sub(window);
        let history = self.history.entry(key).or_default();
        history.push((self.latest, value));
        // No read picks a version below `floor` any more, and the last entry at or before it
        // answers for all versions from `floor` up to the next entry; the ones before it are dead.
        let dead = history
            .partition_point(|(v, _)| *v <= floor)
            .saturating_sub(1);
        history.drain(..dead);
        self.views.insert(node.to_owned(), self.latest);
    }

    /// Moves `node`'s view to the newest state, which it has just observed.
    fn catch_up(&mut self, node: &str) {
        self.views.insert(node.to_owned(), self.latest);
    }

    /// Answers a request from `src`, counting a read that the newest state would have answered
    /// differently in `stale_reads`.
    pub(super) fn serve(
        &mut self,
        src: &str,
        request: Request,
        window: u64,
        dice: &mut dyn Dice,
        stale_reads: &mut u64,
    ) -> Result<Map<String, Value>, Failure> {
        match request {
            Request::Read { key } => {
                let (value, stale) = self.read(src, &key, window, dice);
                *stale_reads += u64::from(stale);
                value.map(read_ok).ok_or_else(Failure::missing)
            }
            Request::Write { key, value } => {
                self.write(src, key, value, window);
                Ok(reply("write_ok"))
            }
            Request::Cas {
                key,
                from,
                to,
                create,
            } => {
                // A cas acts on the newest state whether it succeeds or not, so its client's view
                // moves there either way: a failed cas has still observed the newest value.
                if let Err(failure) = check_cas(self.current(&key), &from, create) {
                    self.catch_up(src);
                    return Err(failure);
                }
                self.write(src, key, to, window);
                Ok(reply("cas_ok"))
            }
            Request::Ts => Err(Failure::not_supported("ts")),
        }
    }
}
