//! The proposer against in-process acceptors: each outcome, the backoff, the bounds and the
//! round high-water mark.

use super::super::acceptor::Acceptor;
use super::*;

const KEY: &[u8] = b"seat-5a";

fn proposer(me: u64) -> Proposer {
    let mut c = ProposerConfig::new(ReplicaId(me), (0..3).map(ReplicaId).collect());
    c.attempts_max = 3;
    c.seed = 7;
    Proposer::new(c, 0).expect("a valid configuration")
}

fn seat(to: i64) -> Cas {
    Cas {
        key: KEY.into(),
        from: None,
        to: Scalar::Int(to),
        base: None,
    }
}

/// Everything the proposer sends now, after taking its durable change as a shell must.
fn sent(p: &mut Proposer) -> Vec<(ReplicaId, Msg)> {
    let _ = p.take_durable();
    std::iter::from_fn(|| p.poll_transmit()).collect()
}

/// Delivers `msgs` to the acceptors whose ids `deliver` admits and hands their replies back
/// to the proposer, until nothing is left to deliver.
fn pump(
    p: &mut Proposer,
    acceptors: &mut [Acceptor],
    mut msgs: Vec<(ReplicaId, Msg)>,
    deliver: impl Fn(ReplicaId) -> bool,
) {
    while !msgs.is_empty() {
        let mut replies = Vec::new();
        for (to, m) in msgs.drain(..) {
            if !deliver(to) {
                continue;
            }
            let a = &mut acceptors[to.0 as usize];
            a.handle(p.config().me, m);
            let _ = a.take_durable();
            while let Some((_, r)) = a.poll_transmit() {
                replies.push((to, r));
            }
        }
        for (from, r) in replies {
            let now = p.now_ms();
            p.handle(now, from, r);
            msgs.extend(sent(p));
        }
    }
}

fn acceptors() -> Vec<Acceptor> {
    (0..3).map(|a| Acceptor::new(ReplicaId(a))).collect()
}

#[test]
fn a_cas_is_prepared_accepted_and_committed_by_a_majority() {
    let mut accs = acceptors();
    let mut p = proposer(9);
    let op = p.cas(0, seat(1)).expect("room for the operation");
    let msgs = sent(&mut p);
    assert_eq!(msgs.len(), 3, "a prepare to every acceptor");
    // One acceptor is unreachable: a majority of two is enough.
    pump(&mut p, &mut accs, msgs, |a| a.0 != 2);
    let outcome = p.poll_outcome().expect("the operation ended");
    assert_eq!(outcome.op, op);
    assert_eq!(
        outcome.result,
        Ok(CasOk {
            instance: 1,
            previous: None
        })
    );
    for a in &accs[..2] {
        assert_eq!(a.record(KEY).decided.value, Some(Scalar::Int(1)));
    }
    assert_eq!(p.in_flight(), 0);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn a_precondition_fails_definitely_and_only_once_a_majority_showed_the_value() {
    let mut accs = acceptors();
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    let msgs = sent(&mut p);
    pump(&mut p, &mut accs, msgs, |_| true);
    assert!(p.poll_outcome().is_some_and(|o| o.result.is_ok()));
    // A second set-if-absent starts at the absent key: the acceptors answer with the
    // decision, and a majority of promises at instance 2 shows the seat taken.
    let mut q = proposer(8);
    q.cas(0, seat(2)).expect("room");
    let msgs = sent(&mut q);
    let mut replies = Vec::new();
    for (to, m) in msgs {
        accs[to.0 as usize].handle(ReplicaId(8), m);
        while let Some((_, r)) = accs[to.0 as usize].poll_transmit() {
            replies.push((to, r));
        }
    }
    // One acceptor's word is not a quorum's: no outcome yet.
    let (from, r) = replies.remove(0);
    q.handle(0, from, r);
    assert!(q.poll_outcome().is_none());
    let msgs = sent(&mut q);
    assert!(
        msgs.iter()
            .all(|(_, m)| matches!(m, Msg::Prepare { instance: 2, .. }))
    );
    pump(&mut q, &mut accs, msgs, |_| true);
    let o = q.poll_outcome().expect("ended");
    assert_eq!(
        o.result,
        Err(CasError::PreconditionFailed {
            current: Some(Scalar::Int(1))
        })
    );
    assert!(o.proposals.is_empty(), "nothing was proposed");
}

#[test]
fn no_majority_in_phase_1_is_a_definite_failure_after_the_last_attempt() {
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    let mut attempts = 0;
    while let Some(t) = p.poll_timeout() {
        attempts += sent(&mut p)
            .iter()
            .filter(|(to, m)| to.0 == 0 && matches!(m, Msg::Prepare { .. }))
            .count();
        p.handle_timeout(t);
    }
    assert_eq!(attempts, 3, "attempts_max prepares, then the end");
    let o = p.poll_outcome().expect("ended");
    assert_eq!(o.result, Err(CasError::Unavailable { attempts: 3 }));
    assert!(o.result.as_ref().is_err_and(CasError::is_definite));
}

/// Hands `m` to acceptor `to` as a shell would and returns its replies.
fn ask(accs: &mut [Acceptor], from: u64, to: ReplicaId, m: Msg) -> Vec<(ReplicaId, Msg)> {
    let a = &mut accs[to.0 as usize];
    a.handle(ReplicaId(from), m);
    let _ = a.take_durable();
    std::iter::from_fn(|| a.poll_transmit())
        .map(|(_, r)| (to, r))
        .collect()
}

/// Runs `p`'s phase 1 on every acceptor and returns its phase-2 accepts, undelivered.
fn through_phase_1(p: &mut Proposer, accs: &mut [Acceptor]) -> Vec<(ReplicaId, Msg)> {
    let me = p.config().me.0;
    for (to, m) in sent(p) {
        for (from, r) in ask(accs, me, to, m) {
            p.handle(0, from, r);
        }
    }
    let accepts = sent(p);
    assert!(accepts.iter().all(|(_, m)| matches!(m, Msg::Accept { .. })));
    accepts
}

#[test]
fn an_unconfirmed_phase_2_is_indefinite() {
    let mut accs = acceptors();
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    // The accepts reach one acceptor only, and no `Accepted` comes back; every later
    // attempt is lost.
    let accepts = through_phase_1(&mut p, &mut accs);
    let _ = ask(&mut accs, 9, accepts[0].0, accepts[0].1.clone());
    while let Some(t) = p.poll_timeout() {
        let _ = sent(&mut p);
        p.handle_timeout(t);
    }
    let o = p.poll_outcome().expect("ended");
    assert_eq!(o.result, Err(CasError::Indefinite { attempts: 3 }));
    assert_eq!(o.proposals.len(), 1);
}

#[test]
fn a_higher_ballot_backs_off_with_jitter_and_retries_above_it() {
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    let ballot = match &sent(&mut p)[0].1 {
        Msg::Prepare { ballot, .. } => *ballot,
        m => panic!("expected a prepare, got {m:?}"),
    };
    let higher = Ballot {
        round: 40,
        proposer: ReplicaId(3),
    };
    p.handle(
        5,
        ReplicaId(1),
        Msg::Nack {
            key: KEY.into(),
            instance: 1,
            ballot,
            higher,
        },
    );
    assert!(sent(&mut p).is_empty(), "nothing is sent while backing off");
    let retry = p.poll_timeout().expect("a backoff is armed");
    let min = p.config().backoff_min_ms;
    assert!((5 + min / 2..=5 + min).contains(&retry), "{retry}");
    p.handle_timeout(retry);
    match &sent(&mut p)[0].1 {
        Msg::Prepare { ballot, .. } => assert_eq!(ballot.round, 41),
        m => panic!("expected a prepare, got {m:?}"),
    }
}

#[test]
fn an_accepted_proposal_is_re_proposed_and_the_operation_moves_to_the_next_instance() {
    let mut accs = acceptors();
    // Proposer 8's seat is accepted by acceptor 0 only; then proposer 9 comes.
    let mut q = proposer(8);
    q.cas(0, seat(8)).expect("room");
    let accepts = through_phase_1(&mut q, &mut accs);
    let _ = ask(&mut accs, 8, accepts[0].0, accepts[0].1.clone());
    let mut p = proposer(9);
    p.cas(0, seat(9)).expect("room");
    let msgs = sent(&mut p);
    pump(&mut p, &mut accs, msgs, |_| true);
    // 8's seat was re-proposed and chosen at instance 1; 9's set-if-absent then failed at
    // instance 2, definitely, having proposed nothing of its own.
    for a in &accs {
        assert_eq!(a.record(KEY).decided.value, Some(Scalar::Int(8)));
    }
    let o = p.poll_outcome().expect("ended");
    assert_eq!(
        o.result,
        Err(CasError::PreconditionFailed {
            current: Some(Scalar::Int(8))
        })
    );
    assert!(o.proposals.is_empty());
    // Proposer 8 learns that its proposal was chosen from the first acceptor it asks again.
    let t = q.poll_timeout().expect("8 waits for its phase 2");
    q.handle_timeout(t);
    let t = q.poll_timeout().expect("8 backs off");
    q.handle_timeout(t);
    let msgs = sent(&mut q);
    pump(&mut q, &mut accs, msgs, |_| true);
    let o = q.poll_outcome().expect("ended");
    assert_eq!(
        o.result,
        Ok(CasOk {
            instance: 1,
            previous: None
        })
    );
}

#[test]
fn operations_beyond_in_flight_max_are_refused() {
    let mut c = ProposerConfig::new(ReplicaId(9), vec![ReplicaId(0)]);
    c.in_flight_max = 2;
    let mut p = Proposer::new(c, 0).expect("valid");
    p.cas(0, seat(1)).expect("room");
    p.cas(0, seat(2)).expect("room");
    assert_eq!(p.cas(0, seat(3)), Err(Refused::Busy { in_flight_max: 2 }));
    assert_eq!(p.in_flight(), 2);
}

#[test]
fn rounds_are_persisted_before_use_and_a_restart_resumes_above_them() {
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    let durable = p.take_durable().expect("the first round reserves a block");
    let first = match p.poll_transmit() {
        Some((_, Msg::Prepare { ballot, .. })) => ballot,
        m => panic!("expected a prepare, got {m:?}"),
    };
    assert!(first.round < durable.rounds_below);
    let mut q = Proposer::recover(p.config().clone(), durable, 0).expect("valid");
    q.cas(0, seat(1)).expect("room");
    let _ = q.take_durable();
    match q.poll_transmit() {
        Some((_, Msg::Prepare { ballot, .. })) => {
            assert!(ballot.round >= durable.rounds_below, "a ballot was reused")
        }
        m => panic!("expected a prepare, got {m:?}"),
    }
}

#[test]
fn a_read_learns_the_value_from_a_majority_without_proposing() {
    let mut accs = acceptors();
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    let msgs = sent(&mut p);
    pump(&mut p, &mut accs, msgs, |_| true);
    assert!(p.poll_outcome().is_some_and(|o| o.result.is_ok()));
    // A reader that knows nothing starts at the absent key and is taught the decision.
    let mut q = proposer(8);
    q.submit(0, KEY.into(), Want::Read, None).expect("room");
    let msgs = sent(&mut q);
    pump(&mut q, &mut accs, msgs, |a| a.0 != 0);
    let o = q.poll_outcome().expect("ended");
    assert_eq!(
        o.result,
        Ok(CasOk {
            instance: 1,
            previous: Some(Scalar::Int(1))
        })
    );
    assert!(o.proposals.is_empty(), "a read proposes nothing");
    for a in &accs {
        assert_eq!(
            a.record(KEY).accepted,
            None,
            "nothing was accepted for the read"
        );
    }
}

#[test]
fn a_read_that_finds_an_accepted_proposal_finishes_it_first() {
    let mut accs = acceptors();
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    // The writer's accepts reach two acceptors and it hears nothing back: its value may be
    // chosen, so a read must not answer "absent" from a majority that includes one of them.
    let accepts = through_phase_1(&mut p, &mut accs);
    for (to, m) in accepts.into_iter().filter(|(to, _)| to.0 != 2) {
        let _ = ask(&mut accs, 9, to, m);
    }
    let mut q = proposer(8);
    q.submit(0, KEY.into(), Want::Read, None).expect("room");
    let msgs = sent(&mut q);
    pump(&mut q, &mut accs, msgs, |a| a.0 != 0);
    // The writer's ballot is above the reader's first one: the reader backs off and retries.
    let o = loop {
        if let Some(o) = q.poll_outcome() {
            break o;
        }
        let t = q.poll_timeout().expect("the read is still running");
        q.handle_timeout(t);
        let msgs = sent(&mut q);
        pump(&mut q, &mut accs, msgs, |a| a.0 != 0);
    };
    assert_eq!(
        o.result,
        Ok(CasOk {
            instance: 1,
            previous: Some(Scalar::Int(1))
        })
    );
    assert_eq!(
        accs[1].record(KEY).decided.value,
        Some(Scalar::Int(1)),
        "the writer's proposal was chosen on the way"
    );
}

#[test]
fn a_set_replaces_whatever_the_key_holds() {
    let mut accs = acceptors();
    let mut p = proposer(9);
    p.cas(0, seat(1)).expect("room");
    let msgs = sent(&mut p);
    pump(&mut p, &mut accs, msgs, |_| true);
    assert!(p.poll_outcome().is_some_and(|o| o.result.is_ok()));
    let mut q = proposer(8);
    let base = Some(accs[0].record(KEY).decided);
    q.submit(0, KEY.into(), Want::Set(Scalar::Int(5)), base)
        .expect("room");
    let msgs = sent(&mut q);
    pump(&mut q, &mut accs, msgs, |_| true);
    let o = q.poll_outcome().expect("ended");
    assert_eq!(
        o.result,
        Ok(CasOk {
            instance: 2,
            previous: Some(Scalar::Int(1))
        })
    );
    assert_eq!(accs[1].record(KEY).decided.value, Some(Scalar::Int(5)));
}
