//! The register checks' tests: on random histories the linear check must report what a
//! quadratic reference computation of the same relations did, and the suffix index behind it
//! must find the two least of every suffix.

use super::seen::suffix_two_least;
use super::*;
use crate::harness::history::Delivery;
use crate::harness::message::ErrorCode;

// The check as it was before it was made linear (commit d8d14cf), verbatim but for its
// name: the reference the new one must agree with, message for message.
fn reference(register: &Register, history: &History, nodes: usize) -> Vec<Check> {
    let writes: BTreeMap<i64, &Event> = history
        .events
        .iter()
        .filter(|e| e.kind() == "write")
        .filter_map(|e| written(e).map(|v| (v, e)))
        .collect();
    let attempted = |v: &i64| {
        writes
            .get(v)
            .is_some_and(|e| !matches!(e.outcome, Outcome::Fail { .. }))
    };
    let mut problems: Vec<String> = Vec::new();

    // What each node definitely had, as (time it had it, value), from its acknowledged
    // writes and its successful reads.
    let mut had: BTreeMap<usize, Vec<(u64, i64)>> = BTreeMap::new();
    let mut finals: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
    for e in &history.events {
        let Some(reply) = e.reply() else { continue };
        let Some(done) = e.complete_seq else { continue };
        match e.kind() {
            "write" => {
                if let Some(v) = written(e) {
                    had.entry(e.node).or_default().push((done, v));
                }
            }
            "read" => match register.values(reply) {
                Ok(values) => {
                    if let Some(phantom) = values.iter().find(|v| !attempted(v)) {
                        problems.push(format!(
                            "n{} read {phantom}, which no write could have written",
                            e.node
                        ));
                    }
                    for &v in &values {
                        had.entry(e.node).or_default().push((done, v));
                    }
                    if e.phase == Phase::Final {
                        finals.insert(e.node, values);
                    }
                }
                Err(why) => problems.push(format!("n{}: {why}", e.node)),
            },
            _ => {}
        }
    }
    // Writes an acknowledged later write definitely saw: they are superseded for good.
    let mut superseded: BTreeMap<i64, i64> = BTreeMap::new();
    // (node, when its acknowledgement was seen, value it superseded, superseding value)
    let mut local: Vec<(usize, u64, i64, i64)> = Vec::new();
    for (&v, w) in &writes {
        if !matches!(w.outcome, Outcome::Ok { .. }) {
            continue;
        }
        for &(t, old) in had.get(&w.node).map(Vec::as_slice).unwrap_or(&[]) {
            // The harness saw the reply (or the read) before it sent the later write.
            if t < w.invoke_seq && old != v {
                superseded.entry(old).or_insert(v);
                if let Some(done) = w.complete_seq {
                    local.push((w.node, done, old, v));
                }
            }
        }
    }
    // A node that acknowledged a write which superseded `old` must never show `old` again:
    // its own state already held something newer.
    //
    // `local` can hold a pair per write and earlier value of a node, so it is searched
    // through an index rather than scanned per read: by (node, superseded value), the
    // positions in `local` in order, each with the least acknowledgement time up to it. The
    // first position acknowledged before a read is then a binary search, and the earliest of
    // those over the read's values is the entry a scan of `local` would have found first.
    let by_old = LocalIndex::new(&local);
    for e in history.events.iter().filter(|e| e.kind() == "read") {
        let Some(values) = e.reply().and_then(|r| register.values(r).ok()) else {
            continue;
        };
        let first = by_old.first(e.node, e.invoke_seq, &values);
        if let Some(&(_, _, old, by)) = first.and_then(|i| local.get(i)) {
            problems.push(format!(
                "n{} read {old} after it had acknowledged write {by}, made when it already had {old}",
                e.node
            ));
            break;
        }
    }
    for (node, values) in &finals {
        for v in values {
            if let Some(by) = superseded.get(v) {
                problems.push(format!(
                    "n{node}'s final read shows {v}, but write {by} at n{} was made after that node had {v}, so {by} supersedes it",
                    writes[by].node
                ));
            }
        }
    }
    let any_acked = writes
        .values()
        .any(|w| matches!(w.outcome, Outcome::Ok { .. }));
    if any_acked && let Some((node, _)) = finals.iter().find(|(_, v)| v.is_empty()) {
        problems.push(format!(
            "n{node}'s final read is empty although writes were acknowledged"
        ));
    }
    let name = match register.flavor {
        Flavor::Lww => "lww-winner",
        Flavor::Mv => "mv-siblings",
    };
    // A multi-value register keeps every write nothing could have superseded.
    if register.flavor == Flavor::Mv {
        let reach = history.reach(nodes);
        let index: BTreeMap<*const Event, usize> = history
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| (e as *const Event, i))
            .collect();
        for (&v, w) in &writes {
            if !matches!(w.outcome, Outcome::Ok { .. }) {
                continue;
            }
            let could_be_seen = writes.values().any(|other| {
                !std::ptr::eq(*other, *w)
                    && !matches!(other.outcome, Outcome::Fail { .. })
                    && index
                        .get(&(*other as *const Event))
                        .and_then(|&i| reach[i].get(w.node).copied().flatten())
                        .is_some_and(|t| t >= w.invoke_seq)
            });
            if !could_be_seen {
                for (node, values) in &finals {
                    if !values.contains(&v) {
                        problems.push(format!(
                            "n{node}'s final read lacks {v}, an acknowledged write no other write could have seen"
                        ));
                    }
                }
            }
        }
    }
    verdicts(name, &finals, problems, nodes)
}

/// `local` of [`Register::check`] indexed by (node, superseded value): the positions in `local`,
/// in order, each with the least acknowledgement time up to it (non-increasing along a list).
struct LocalIndex(BTreeMap<(usize, i64), Vec<(usize, u64)>>);

impl LocalIndex {
    fn new(local: &[(usize, u64, i64, i64)]) -> Self {
        let mut by_old: BTreeMap<(usize, i64), Vec<(usize, u64)>> = BTreeMap::new();
        for (i, &(n, done, old, _)) in local.iter().enumerate() {
            let positions = by_old.entry((n, old)).or_default();
            let least = positions.last().map_or(done, |&(_, m)| m.min(done));
            positions.push((i, least));
        }
        LocalIndex(by_old)
    }

    /// The first position in `local` of `node` acknowledged before `before` whose superseded
    /// value is one of `values`: what `local.iter().position(..)` finds, by binary searches.
    fn first(&self, node: usize, before: u64, values: &BTreeSet<i64>) -> Option<usize> {
        values
            .iter()
            .filter_map(|&v| {
                let positions = self.0.get(&(node, v))?;
                let k = positions.partition_point(|&(_, least)| least >= before);
                positions.get(k).map(|&(i, _)| i)
            })
            .min()
    }
}

/// A random register history on three nodes (and now and then an operation at a node the
/// check is not told about): writes of fresh values (now and then a repeated or missing one),
/// reads that show what their node holds or, in some histories, anything written so far or
/// never written, every outcome, messages between nodes and a service, and final reads.
/// Nodes keep a register each and learn of each other through the messages, so some
/// histories pass and the others fail in every way the check can tell.
fn history(dice: &mut SeededDice, mv: bool) -> History {
    let nodes = 3;
    let chaos = [0.0, 0.0, 0.05, 0.3][dice.below(4) as usize];
    let mut seq = 0u64;
    let mut tick = |dice: &mut SeededDice| {
        // Now and then two observations share a place, so that ties are compared too.
        seq += dice.below(3);
        seq
    };
    // What each node holds: its siblings.
    let mut holds: Vec<Vec<i64>> = vec![Vec::new(); nodes];
    let mut written: Vec<i64> = Vec::new();
    let mut next = 0i64;
    let mut events = Vec::new();
    let mut deliveries = Vec::new();
    let show = |set: &[i64]| -> Value {
        if mv {
            json!(set)
        } else {
            set.iter().max().map_or(Value::Null, |v| json!(v))
        }
    };
    let ops = 5 + dice.below(40);
    for k in 0..ops + 3 {
        let final_phase = k >= ops;
        let node = if final_phase {
            (k - ops) as usize
        } else if dice.chance(0.03) {
            nodes
        } else {
            dice.below(nodes as u64) as usize
        };
        let invoke = tick(dice);
        let write = !final_phase && dice.chance(0.6);
        let (request, reply) = if write {
            next += 1;
            let value = if dice.chance(chaos / 3.0) && !written.is_empty() {
                written[dice.below(written.len() as u64) as usize]
            } else {
                next
            };
            written.push(value);
            if node < nodes && !dice.chance(chaos) {
                holds[node] = vec![value];
            }
            let request = if dice.chance(0.02) {
                json!({"type": "write", "key": "r", "value": "x"})
            } else {
                json!({"type": "write", "key": "r", "value": value})
            };
            (request, json!({"type": "write_ok"}))
        } else {
            let mut set = holds.get(node).cloned().unwrap_or_default();
            if dice.chance(chaos) && !written.is_empty() {
                set = vec![written[dice.below(written.len() as u64) as usize]];
            }
            if dice.chance(chaos / 2.0) {
                set.push(1000 + dice.below(3) as i64);
            }
            set.sort_unstable();
            let value = if dice.chance(0.02) {
                json!("garbage")
            } else {
                show(&set)
            };
            (
                json!({"type": "read", "key": "r"}),
                json!({"type": "read_ok", "value": value}),
            )
        };
        let complete = tick(dice);
        let outcome = match dice.below(10) {
            0 => Outcome::Fail {
                code: ErrorCode::KeyDoesNotExist.code(),
            },
            1 => Outcome::Info {
                reason: "no reply".into(),
            },
            _ => Outcome::Ok {
                reply: reply.as_object().cloned().unwrap_or_default().into(),
            },
        };
        let replied = !matches!(outcome, Outcome::Info { .. }) || dice.chance(0.2);
        events.push(Event {
            client: node,
            node,
            request: request.as_object().cloned().unwrap_or_default().into(),
            invoke_ms: invoke,
            complete_ms: replied.then_some(complete),
            invoke_seq: invoke,
            complete_seq: (replied && !dice.chance(0.05)).then_some(complete),
            outcome,
            phase: if final_phase {
                Phase::Final
            } else {
                Phase::Main
            },
            during_fault: false,
        });
        // Replication: now and then a node sends what it holds to another (or through a
        // service, party 3), which merges it in later.
        for _ in 0..dice.below(3) {
            let from = dice.below(nodes as u64 + 1) as usize;
            let to = dice.below(nodes as u64 + 1) as usize;
            if from == to {
                continue;
            }
            let sent = tick(dice);
            let delivered = sent + dice.below(6);
            deliveries.push(Delivery {
                from,
                to,
                sent_seq: sent,
                delivered_seq: delivered,
            });
            if from < nodes && to < nodes && !dice.chance(chaos) {
                let mut merged = holds[to].clone();
                merged.extend(holds[from].iter().copied());
                merged.sort_unstable();
                merged.dedup();
                if !mv {
                    merged = merged.last().copied().into_iter().collect();
                }
                holds[to] = merged;
            }
        }
        if final_phase {
            // Before the final reads, everything reaches everyone.
            let all: Vec<i64> = holds.iter().flatten().copied().collect();
            let mut all = all;
            all.sort_unstable();
            all.dedup();
            for h in &mut holds {
                *h = if mv {
                    all.clone()
                } else {
                    all.last().copied().into_iter().collect()
                };
            }
        }
    }
    History {
        events,
        deliveries,
        ..History::default()
    }
}

#[test]
fn the_linear_check_reports_what_the_quadratic_one_did() {
    let mut verdicts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for seed in 0..3000u64 {
        let mut dice = SeededDice::new(seed);
        let mv = seed % 2 == 1;
        let register = Register::new(if mv { Flavor::Mv } else { Flavor::Lww });
        let history = history(&mut dice, mv);
        let nodes = 3;
        let got = register.check(&history, nodes);
        let want = reference(&register, &history, nodes);
        assert_eq!(
            got, want,
            "seed {seed}; reproduce: cargo test -p converge-conformance the_linear_check_reports"
        );
        let outcome = match &want[0].verdict {
            crate::harness::check::Verdict::Pass => "pass",
            crate::harness::check::Verdict::Fail { detail }
                if detail.contains("acknowledged write") && detail.contains("made when") =>
            {
                "fail: read after"
            }
            crate::harness::check::Verdict::Fail { detail } if detail.contains("supersedes") => {
                "fail: supersedes"
            }
            crate::harness::check::Verdict::Fail { detail }
                if detail.contains("no other write") =>
            {
                "fail: lacks"
            }
            crate::harness::check::Verdict::Fail { .. } => "fail: other",
            crate::harness::check::Verdict::Unknown { .. } => "unknown",
        };
        *verdicts
            .entry((if mv { "mv" } else { "lww" }, outcome))
            .or_default() += 1;
    }
    // Every kind of verdict was drawn for both flavors, so every path was compared.
    for flavor in ["lww", "mv"] {
        for outcome in [
            "pass",
            "fail: read after",
            "fail: supersedes",
            "fail: other",
        ] {
            assert!(
                verdicts.get(&(flavor, outcome)).copied().unwrap_or(0) >= 10,
                "{verdicts:?}"
            );
        }
    }
    assert!(
        verdicts.get(&("mv", "fail: lacks")).copied().unwrap_or(0) >= 10,
        "{verdicts:?}"
    );
}

#[test]
fn suffix_two_least_finds_the_two_least_of_every_suffix() {
    for seed in 0..200u64 {
        let mut dice = SeededDice::new(seed);
        let items: Vec<Option<u64>> = (0..dice.below(30))
            .map(|_| (!dice.chance(0.2)).then(|| dice.below(10)))
            .collect();
        let two = suffix_two_least(&items, |x| *x);
        for (k, least) in two.iter().enumerate() {
            let mut keys: Vec<(u64, usize)> = (k..items.len())
                .filter_map(|j| items[j].map(|x| (x, j)))
                .collect();
            keys.sort_unstable();
            let want: Vec<u64> = keys.iter().take(2).map(|&(x, _)| x).collect();
            let got: Vec<u64> = least.iter().flatten().map(|&j| items[j].unwrap()).collect();
            assert_eq!(got, want, "seed {seed}, suffix {k}: {items:?}");
            let positions: Vec<usize> = least.iter().flatten().copied().collect();
            assert!(positions.windows(2).all(|w| w[0] != w[1]), "seed {seed}");
        }
    }
}
