//! The tests' oracle: linearizability by its definition, trying every order, for a handful of
//! operations. It shares no code with the checker, so agreeing with it means something.

use super::super::{KvOp, KvOutcome, Operation};
use std::collections::BTreeMap;

/// Whether `history` is linearizable, by trying every order: the definition, for a handful
/// of operations. It shares no code with the checker.
pub(super) fn brute_force(history: &[Operation]) -> bool {
    let ops: Vec<&Operation> = history
        .iter()
        .filter(|o| match o.outcome {
            KvOutcome::Fail => false,
            KvOutcome::Unknown => !matches!(o.op, KvOp::Read { .. }),
            KvOutcome::Ok(_) => true,
        })
        .collect();
    fn go(ops: &[&Operation], done: &mut Vec<bool>, state: &mut BTreeMap<u64, i64>) -> bool {
        let pending = |o: &Operation| o.outcome != KvOutcome::Unknown;
        if ops.iter().zip(done.iter()).all(|(o, &d)| d || !pending(o)) {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            let o = ops[i];
            // Nothing left may have completed before this one was invoked.
            let blocked = ops
                .iter()
                .zip(done.iter())
                .any(|(p, &d)| !d && pending(p) && p.complete_ns.is_some_and(|c| c < o.invoke_ns));
            if blocked {
                continue;
            }
            let key = o.op.key();
            let before = state.get(&key).copied();
            let after = match (o.op, o.outcome) {
                (KvOp::Read { .. }, KvOutcome::Ok(v)) if v == before => before,
                (KvOp::Read { .. }, _) => continue,
                (KvOp::Write { value, .. }, _) => Some(value),
                (KvOp::Cas { from, to, .. }, _) if before == Some(from) => Some(to),
                (KvOp::Cas { .. }, KvOutcome::Unknown) => before,
                (KvOp::Cas { .. }, _) => continue,
            };
            if let Some(v) = after {
                state.insert(key, v);
            }
            done[i] = true;
            let found = go(ops, done, state);
            done[i] = false;
            match before {
                Some(v) => state.insert(key, v),
                None => state.remove(&key),
            };
            if found {
                return true;
            }
        }
        false
    }
    go(&ops, &mut vec![false; ops.len()], &mut BTreeMap::new())
}

// ---- Properties ----
