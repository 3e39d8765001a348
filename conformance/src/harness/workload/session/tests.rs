//! The session checks' tests: on random histories, the checks must report what two references
//! did: an element-by-element pass (`reference`), and the checks as they were before they
//! stopped copying sets (`old`).

use super::check::{added, element, read_set};
use super::*;
use crate::harness::check::Verdict;
use crate::harness::history::{Event, History, Outcome, Phase};
use crate::harness::message::ErrorCode;
use serde_json::json;
use std::collections::BTreeSet;

fn event(client: usize, node: usize, request: Value, at: u64, reply: Value) -> Event {
    let Value::Object(reply) = reply else {
        unreachable!("replies here are objects")
    };
    Event {
        client,
        node,
        request: request.as_object().cloned().unwrap_or_default().into(),
        invoke_ms: at,
        complete_ms: Some(at + 1),
        invoke_seq: 2 * at,
        complete_seq: Some(2 * at + 1),
        outcome: Outcome::Ok {
            reply: reply.into(),
        },
        phase: Phase::Main,
        during_fault: false,
    }
}

fn set_of(e: &Event) -> Option<BTreeSet<i64>> {
    read_set(e).map(|v| v.into_iter().collect())
}

/// The session checks as they were before they stopped copying sets per element (commit
/// d8d14cf), verbatim: the reference for every check's verdict and message.
mod old {
    use super::super::SESSION;
    use crate::harness::check::{Check, Verdict};
    use crate::harness::history::{Event, History, Outcome};
    use std::collections::{BTreeMap, BTreeSet};

    /// What an element's writer had shown before adding it.
    struct BeforeAdd {
        /// The writer's earlier acknowledged adds (monotonic writes).
        adds: BTreeSet<i64>,
        /// What the writer had last read (writes follow reads).
        read: BTreeSet<i64>,
        /// The writer.
        client: usize,
        /// Which of the writer's adds this was (1, 2, ...): a later one's `adds` contain an
        /// earlier one's.
        nth: usize,
    }

    /// What one client did, in order: its acknowledged adds and successful reads.
    struct ClientLog<'a> {
        events: Vec<&'a Event>,
    }

    fn read_set(e: &Event) -> Option<BTreeSet<i64>> {
        if e.kind() != "read" {
            return None;
        }
        // Malformed reads are reported by the shared `set-full` check; here they show nothing.
        e.reply()
            .and_then(|r| crate::harness::workload::set::read_set(r, SESSION.read_field).ok())
            .map(|v| v.into_iter().collect())
    }

    fn element(e: &Event) -> Option<i64> {
        e.request.element()
    }

    fn added(e: &Event) -> Option<i64> {
        (e.kind() == "add" && matches!(e.outcome, Outcome::Ok { .. }))
            .then(|| element(e))
            .flatten()
    }

    /// The four session guarantees, plus tokens on every reply.
    pub(super) fn session_checks(history: &History) -> Vec<Check> {
        let mut clients: BTreeMap<usize, ClientLog<'_>> = BTreeMap::new();
        for e in &history.events {
            clients
                .entry(e.client)
                .or_insert(ClientLog { events: Vec::new() })
                .events
                .push(e);
        }
        let missing_token = history
            .events
            .iter()
            .find(|e| e.reply().is_some_and(|r| r.token.is_none()));
        let tokens = Check::from_bool("tokens", false, missing_token.is_none(), || {
            format!(
                "reply without a token: {:?}",
                missing_token.map(|e| &e.outcome)
            )
        });

        let mut ryw = None;
        let mut mr = None;
        // For each element: the client that added it and everything that client must have shown
        // before it (its earlier acknowledged adds, and what it had read).
        let mut before_add: BTreeMap<i64, BeforeAdd> = BTreeMap::new();
        // Per client: whether what it had read at each of its adds contains what it had read at its
        // previous add (true unless monotonic reads failed), so that the latest add covers them all.
        let mut reads_nested: BTreeMap<usize, bool> = BTreeMap::new();
        for (client, log) in &clients {
            let mut my_adds: BTreeSet<i64> = BTreeSet::new();
            let mut last_read: Option<BTreeSet<i64>> = None;
            let mut adds = 0usize;
            let mut nested = true;
            let mut read_at_last_add: Option<BTreeSet<i64>> = None;
            for e in &log.events {
                if let Some(seen) = read_set(e) {
                    if ryw.is_none() && !my_adds.is_subset(&seen) {
                        let lost: Vec<&i64> = my_adds.difference(&seen).take(5).collect();
                        ryw = Some(format!(
                            "client c{client} read at n{} without its own earlier adds {lost:?}",
                            e.node
                        ));
                    }
                    if let Some(prev) = &last_read
                        && mr.is_none()
                        && !prev.is_subset(&seen)
                    {
                        let gone: Vec<&i64> = prev.difference(&seen).take(5).collect();
                        mr = Some(format!(
                            "client c{client} read at n{} lost {gone:?} that its previous read returned",
                            e.node
                        ));
                    }
                    last_read = Some(seen);
                }
                if e.kind() == "add"
                    && let Some(element) = element(e)
                {
                    let read = last_read.clone().unwrap_or_default();
                    if let Some(prev) = &read_at_last_add {
                        nested &= prev.is_subset(&read);
                    }
                    read_at_last_add = Some(read.clone());
                    adds += 1;
                    before_add.insert(
                        element,
                        BeforeAdd {
                            adds: my_adds.clone(),
                            read,
                            client: *client,
                            nth: adds,
                        },
                    );
                }
                if let Some(element) = added(e) {
                    my_adds.insert(element);
                }
            }
            reads_nested.insert(*client, nested);
        }
        let mut mw = None;
        let mut wfr = None;
        for e in &history.events {
            if mw.is_some() && wfr.is_some() {
                // Both found: nothing below could change them.
                break;
            }
            let Some(seen) = read_set(e) else { continue };
            // A fast pass that decides whether this read breaks either guarantee. A client's adds
            // only grow, so of the elements shown that one client added, the latest add's earlier
            // adds contain every other's: checking it checks them all. The same holds for what the
            // client had read when its reads are nested; otherwise every element is checked.
            let mut latest: BTreeMap<usize, &BeforeAdd> = BTreeMap::new();
            let mut every_read = false;
            for element in &seen {
                let Some(b) = before_add.get(element) else {
                    continue;
                };
                let slot = latest.entry(b.client).or_insert(b);
                if b.nth > slot.nth {
                    *slot = b;
                }
                every_read |= !reads_nested.get(&b.client).copied().unwrap_or(false);
            }
            let mw_ok = mw.is_some() || latest.values().all(|b| b.adds.is_subset(&seen));
            let wfr_ok =
                wfr.is_some() || (!every_read && latest.values().all(|b| b.read.is_subset(&seen)));
            if mw_ok && wfr_ok {
                continue;
            }
            // Something is wrong here (or the reads were not nested): the element-by-element pass
            // names the first element at fault, in ascending order, as it always has.
            for element in &seen {
                let Some(b) = before_add.get(element) else {
                    continue;
                };
                if mw.is_none() && !b.adds.is_subset(&seen) {
                    let missing: Vec<&i64> = b.adds.difference(&seen).take(5).collect();
                    mw = Some(format!(
                        "read by c{} at n{} shows {element} but not {missing:?}, added before it by the same client",
                        e.client, e.node
                    ));
                }
                if wfr.is_none() && !b.read.is_subset(&seen) {
                    let missing: Vec<&i64> = b.read.difference(&seen).take(5).collect();
                    wfr = Some(format!(
                        "read by c{} at n{} shows {element} but not {missing:?}, which its writer had read before adding it",
                        e.client, e.node
                    ));
                }
            }
        }
        let verdict = |found: Option<String>| match found {
            None => Verdict::Pass,
            Some(detail) => Verdict::Fail { detail },
        };
        vec![
            tokens,
            Check::new("read-your-writes", false, verdict(ryw)),
            Check::new("monotonic-reads", false, verdict(mr)),
            Check::new("monotonic-writes", false, verdict(mw)),
            Check::new("writes-follow-reads", false, verdict(wfr)),
        ]
    }
}

/// The element-by-element monotonic-writes and writes-follow-reads pass as it was before the
/// fast pass: the reference the fast pass must agree with, message for message.
fn reference(history: &History) -> (Option<String>, Option<String>) {
    let mut clients: BTreeMap<usize, Vec<&Event>> = BTreeMap::new();
    for e in &history.events {
        clients.entry(e.client).or_default().push(e);
    }
    let mut before_add: BTreeMap<i64, (BTreeSet<i64>, BTreeSet<i64>)> = BTreeMap::new();
    for events in clients.values() {
        let mut my_adds = BTreeSet::new();
        let mut last_read: Option<BTreeSet<i64>> = None;
        for e in events {
            if let Some(seen) = set_of(e) {
                last_read = Some(seen);
            }
            if e.kind() == "add"
                && let Some(element) = element(e)
            {
                before_add.insert(
                    element,
                    (my_adds.clone(), last_read.clone().unwrap_or_default()),
                );
            }
            if let Some(element) = added(e) {
                my_adds.insert(element);
            }
        }
    }
    let (mut mw, mut wfr) = (None, None);
    for e in &history.events {
        let Some(seen) = set_of(e) else { continue };
        for element in &seen {
            let Some((earlier_adds, had_read)) = before_add.get(element) else {
                continue;
            };
            if mw.is_none() && !earlier_adds.is_subset(&seen) {
                let missing: Vec<&i64> = earlier_adds.difference(&seen).take(5).collect();
                mw = Some(format!(
                    "read by c{} at n{} shows {element} but not {missing:?}, added before it by the same client",
                    e.client, e.node
                ));
            }
            if wfr.is_none() && !had_read.is_subset(&seen) {
                let missing: Vec<&i64> = had_read.difference(&seen).take(5).collect();
                wfr = Some(format!(
                    "read by c{} at n{} shows {element} but not {missing:?}, which its writer had read before adding it",
                    e.client, e.node
                ));
            }
        }
    }
    (mw, wfr)
}

fn detail(checks: &[Check], name: &str) -> Option<String> {
    match &checks.iter().find(|c| c.name == name)?.verdict {
        Verdict::Fail { detail } => Some(detail.clone()),
        _ => None,
    }
}

/// A random session history: three clients (or more) add fresh elements and read sets that
/// are what was added so far, now and then missing a few (so that every guarantee sometimes
/// fails, and reads are sometimes not nested), some of them malformed or without a token.
fn random_history(dice: &mut SeededDice, ops: u64) -> History {
    let mut events = Vec::new();
    let mut added: Vec<i64> = Vec::new();
    // Per history, how often a read misses an element: never, rarely or often.
    let loss = [0.0, 0.0, 0.02, 0.1, 0.3][dice.below(5) as usize];
    let clients = 3 + dice.below(3);
    for at in 0..ops {
        let client = dice.below(clients) as usize;
        let node = dice.below(3) as usize;
        let mut e = if dice.chance(0.4) {
            // Now and then an element is added again, which the workload never does.
            let x = if dice.chance(0.03) && !added.is_empty() {
                added[dice.below(added.len() as u64) as usize]
            } else {
                added.len() as i64
            };
            added.push(x);
            let req = json!({"type": "add", "element": x});
            event(client, node, req, at, json!({"type": "add_ok", "token": 1}))
        } else {
            let set: Vec<i64> = added
                .iter()
                .copied()
                .filter(|_| !dice.chance(loss))
                .collect();
            let reply = if dice.chance(0.01) {
                json!({"type": "read_ok", "value": "x", "token": 1})
            } else {
                json!({"type": "read_ok", "value": set, "token": 1})
            };
            event(client, node, json!({"type": "read"}), at, reply)
        };
        match dice.below(40) {
            0 => {
                e.outcome = Outcome::Fail {
                    code: ErrorCode::TemporarilyUnavailable.code(),
                }
            }
            1 => {
                e.outcome = Outcome::Info {
                    reason: "no reply".into(),
                }
            }
            2 => {
                e.outcome = Outcome::Ok {
                    reply: json!({"type": "add_ok"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default()
                        .into(),
                }
            }
            _ => {}
        }
        events.push(e);
    }
    History {
        events,
        ..History::default()
    }
}

#[test]
fn the_fast_pass_reports_what_the_element_by_element_pass_did() {
    let (mut failing, mut passing) = (0, 0);
    for seed in 0..1000u64 {
        let mut dice = SeededDice::new(seed);
        let history = random_history(&mut dice, 60);
        let checks = session_checks(&history);
        let got = (
            detail(&checks, "monotonic-writes"),
            detail(&checks, "writes-follow-reads"),
        );
        let want = reference(&history);
        assert_eq!(
            got, want,
            "seed {seed}; reproduce: cargo test -p converge-conformance the_fast_pass"
        );
        if want == (None, None) {
            passing += 1;
        } else {
            failing += 1;
        }
    }
    // Both kinds of history were drawn, so both paths were compared.
    assert!(
        failing > 20 && passing > 20,
        "{failing} failing, {passing} passing"
    );
}

#[test]
fn the_checks_without_copies_report_what_the_checks_with_copies_did() {
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..2000u64 {
        let mut dice = SeededDice::new(seed);
        let ops = 1 + dice.below(80);
        let history = random_history(&mut dice, ops);
        let got = session_checks(&history);
        let want = old::session_checks(&history);
        assert_eq!(
            got, want,
            "seed {seed}; reproduce: cargo test -p converge-conformance the_checks_without_copies"
        );
        let session = Session::default();
        assert_eq!(
            session.check(&history, 3)[..3],
            crate::harness::workload::set::tests::old::check_sets(&SESSION, &history, 3)[..],
            "seed {seed}; reproduce: cargo test -p converge-conformance the_checks_without_copies"
        );
        for c in &want {
            if matches!(c.verdict, Verdict::Fail { .. }) {
                *failed.entry(c.name.clone()).or_default() += 1;
            }
        }
    }
    // Every check failed in some histories and passed in others.
    for name in [
        "tokens",
        "read-your-writes",
        "monotonic-reads",
        "monotonic-writes",
        "writes-follow-reads",
    ] {
        let n = failed.get(name).copied().unwrap_or(0);
        assert!((20..1980).contains(&n), "{failed:?}");
    }
}
