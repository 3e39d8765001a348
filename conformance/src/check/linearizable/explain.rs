//! What the checker says about a violation: where it surfaces, a witness shrunk from the history
//! around it, and an explanation in words.
//!
//! Invariant: the witness returned in [`Linearizability::NotLinearizable`] is not linearizable
//! on its own, so passing it back to [`super::check`] reports a violation again; see
//! [`shrink`] for the properties it keeps while shrinking.

use super::blatant::{Why, blatant};
use super::history::{Budget, Linearizability, Operation};
use super::ops::{Act, KOp, prefix};
use super::search::{SearchVerdict, search};
use std::collections::HashSet;

/// Finds where the violation on `key` surfaces, shrinks the operations around it and explains.
///
/// `frontier` is the failed search's
/// [`SearchResult::frontier`](super::search::SearchResult::frontier), and it is where the violation
/// surfaces: the prefix of the history cut just before it is linearizable, the one cut at it is
/// not. A configuration whose first remaining return is at `t` has linearized everything that
/// returned before `t`, and the part of its sequence up to the last of those is a linearization of
/// the prefix cut before `t` (an operation invoked later cannot precede one that had returned;
/// operations still running at the cut may or may not happen). Conversely a linearization of the
/// prefix cut at `t` would give the search a configuration past `t`, and the search, pruned as it
/// is, reaches some configuration past every point that any configuration passes: the reductions of
/// `Search::enter` and of indefinite operations turn partial sequences into partial sequences just
/// as they turn complete ones.
///
/// When `earliest` is false the budget ran out before the prefix cut just before `cut` could be
/// shown linearizable, and the report says so.
pub(super) fn report_violation(
    key: u64,
    ops: &[KOp],
    cut: u64,
    earliest: bool,
    history: &[Operation],
    budget: Budget,
) -> Linearizability {
    let base = prefix(ops, Some(cut));
    let (witness, shrunk) = shrink(&base, cut, earliest, budget);

    let mut minimal: Vec<Operation> = witness.iter().map(|op| history[op.orig].clone()).collect();
    minimal.sort_by_key(|op| (op.invoke_ns, op.complete_ns));
    let culprits: Vec<&Operation> = witness
        .iter()
        .filter(|op| op.ret == Some(cut))
        .map(|op| &history[op.orig])
        .collect();
    let culprit_list = culprits
        .iter()
        .map(|op| format!("`{op}`"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut explanation = if earliest {
        format!(
            "key {key} is not linearizable. Its history is linearizable until {culprit_list} \
             completes at {cut} ns, and not once it has.\n"
        )
    } else {
        format!(
            "key {key} is not linearizable once {culprit_list} completes at {cut} ns. (Whether it \
             was linearizable until then could not be decided within the search budget.)\n"
        )
    };
    if let Some(hint) = hint(&base, cut, history) {
        explanation.push_str(&hint);
        explanation.push('\n');
    }
    explanation.push_str(&format!(
        "These {} operations admit no order that respects real time and the register's \
         semantics{}:\n",
        minimal.len(),
        if shrunk {
            ""
        } else {
            " (the search budget ran out before they were shrunk to a minimum)"
        }
    ));
    for op in minimal.iter().take(EXPLAIN_OPS_MAX) {
        let mark = if culprits.contains(&op) {
            "   <- the violation surfaces here"
        } else {
            ""
        };
        explanation.push_str(&format!("  {op}{mark}\n"));
    }
    if minimal.len() > EXPLAIN_OPS_MAX {
        explanation.push_str(&format!(
            "  ... and {} more\n",
            minimal.len() - EXPLAIN_OPS_MAX
        ));
    }
    Linearizability::NotLinearizable {
        key,
        minimal,
        explanation,
    }
}

/// Most operations an explanation spells out; the witness itself is returned whole.
const EXPLAIN_OPS_MAX: usize = 100;

/// Most candidate sub-histories [`shrink`] tries.
const SHRINK_TRIES_MAX: usize = 10_000;

/// Shrinks `base` (a prefix cut at `cut` that is not linearizable) while it stays a witness:
/// not linearizable, linearizable once the operations completing at `cut` are left running, and
/// with a writer for every value read or cas-ed from that `base` has a writer for. Whole runs of
/// operations are dropped first, halving their length, then single ones until none can go
/// (delta debugging). Returns the witness and whether it is 1-minimal (the budget held).
///
/// When `base` is not known to be linearizable before `cut` (`earliest` is false), the second
/// property cannot be asked of the candidates either, and is dropped.
fn shrink(base: &[KOp], cut: u64, earliest: bool, budget: Budget) -> (Vec<KOp>, bool) {
    let written: HashSet<i64> = base.iter().filter_map(|op| op.act.writes()).collect();
    let mut spent = 0u64;
    let mut tries = 0usize;
    let max = budget.max_steps_per_key;
    let witness_ok = |candidate: &[KOp], spent: &mut u64| -> bool {
        let mut writes: HashSet<i64> = HashSet::new();
        for op in candidate {
            writes.extend(op.act.writes());
        }
        let closed = candidate.iter().all(|op| match op.act {
            // Only completed observers need a writer: indefinite ones can simply not happen.
            Act::Read(Some(v)) | Act::Cas(v, _) if op.ret.is_some() => {
                !written.contains(&v) || writes.contains(&v)
            }
            _ => true,
        });
        if !closed {
            return false;
        }
        if blatant(candidate).is_none() {
            let whole = search(candidate, max);
            *spent += whole.steps;
            if whole.verdict != SearchVerdict::Violation {
                return false;
            }
        }
        if !earliest {
            return true;
        }
        let before = search(&prefix(candidate, cut.checked_sub(1)), max);
        *spent += before.steps;
        before.verdict == SearchVerdict::Linearizable
    };
    let mut witness = base.to_vec();
    // Violations are local, so the latest-invoked operations are tried first, in windows that
    // double, before the whole prefix is shrunk: on a long history that saves searching halves
    // of it that cannot matter.
    let mut window = 8;
    while window < base.len() && spent <= max {
        let from = base.len() - window;
        let candidate: Vec<KOp> = base
            .iter()
            .enumerate()
            .filter(|&(k, op)| k >= from || op.ret == Some(cut))
            .map(|(_, op)| *op)
            .collect();
        tries += 1;
        if witness_ok(&candidate, &mut spent) {
            witness = candidate;
            break;
        }
        window *= 2;
    }
    let mut chunk = (witness.len() / 2).max(1);
    loop {
        let mut changed = false;
        let mut at = 0;
        while at < witness.len() {
            if spent > max || tries >= SHRINK_TRIES_MAX {
                return (witness, false);
            }
            let end = (at + chunk).min(witness.len());
            // The operations completing at the cut are where the violation surfaces: they stay.
            let candidate: Vec<KOp> = witness
                .iter()
                .enumerate()
                .filter(|&(k, op)| !(at..end).contains(&k) || op.ret == Some(cut))
                .map(|(_, op)| *op)
                .collect();
            if candidate.len() < witness.len() {
                tries += 1;
                if witness_ok(&candidate, &mut spent) {
                    witness = candidate;
                    changed = true;
                    continue;
                }
            }
            at = end;
        }
        if chunk > 1 {
            chunk /= 2;
        } else if !changed {
            return (witness, true);
        }
    }
}

/// A specific reason, when the violation is one that needs no search (see [`blatant`]).
fn hint(base: &[KOp], cut: u64, history: &[Operation]) -> Option<String> {
    let found = blatant(base).filter(|f| f.at == cut)?;
    let observer = &base[found.observer];
    let show = |k: usize| history[base[k].orig].to_string();
    let what = |v: i64| {
        if matches!(observer.act, Act::Read(_)) {
            format!("{v} was read")
        } else {
            format!("a cas from {v} succeeded")
        }
    };
    Some(match (found.why, observer.act.needs()) {
        (Why::NeverWritten, Some(v)) => {
            format!("Nothing invoked by then writes {v}, yet {}.", what(v))
        }
        (Why::Overwritten { writer, by }, Some(v)) => format!(
            "{} after every write of it had been overwritten: the last, `{}`, by `{}`, which \
             completed before `{}` began.",
            what(v),
            show(writer),
            show(by),
            show(found.observer)
        ),
        (Why::ReadAbsent { after }, _) => format!(
            "The key was read as absent although `{}` had completed before the read began, and \
             nothing deletes a key.",
            show(after)
        ),
        _ => return None,
    })
}
