//! The binary encoding of the consensus messages (carried in routed peer messages) and of an
//! acceptor's per-key record (carried in the durable state).
//!
//! # Invariants
//! - Decoding never panics and builds only well-formed values: a decision decodes as instance 0
//!   with nothing, or as a later instance with both its value and the proposal that chose it
//!   ([`Decision::is_valid`] holds by construction); a record's accepted ballot is at most its
//!   promise, or the record is refused.
//! - What decodes re-encodes to the same bytes.
//!
//! Semantic checks that need state (is the sender an acceptor, does `base` precede the
//! instance) are the acceptor's and the proposer's, which count and ignore what fails them.

use super::codec::{DecodeError, Reader, put_key, put_replica, put_varint, read_key, read_replica};
use super::state::{put_scalar, read_scalar};
use crate::consensus::{Ballot, Decision, KeyRecord, Msg, Proposal};

const PREPARE: u8 = 0;
const PROMISE: u8 = 1;
const ACCEPT: u8 = 2;
const ACCEPTED: u8 = 3;
const NACK: u8 = 4;
const COMMIT: u8 = 5;

fn put_ballot(out: &mut Vec<u8>, b: Ballot) {
    put_varint(out, b.round);
    put_replica(out, b.proposer);
}

fn read_ballot(r: &mut Reader<'_>) -> Result<Ballot, DecodeError> {
    Ok(Ballot {
        round: r.varint()?,
        proposer: read_replica(r)?,
    })
}

fn put_proposal(out: &mut Vec<u8>, p: &Proposal) {
    put_ballot(out, p.id);
    put_scalar(out, &p.value);
}

fn read_proposal(r: &mut Reader<'_>) -> Result<Proposal, DecodeError> {
    Ok(Proposal {
        id: read_ballot(r)?,
        value: read_scalar(r)?,
    })
}

/// A decision: its instance, then (for every instance but 0) the proposal that chose it.
fn put_decision(out: &mut Vec<u8>, d: &Decision) {
    put_varint(out, d.instance);
    if let (Some(id), Some(value)) = (d.id, &d.value) {
        put_proposal(
            out,
            &Proposal {
                id,
                value: value.clone(),
            },
        );
    }
}

fn read_decision(r: &mut Reader<'_>) -> Result<Decision, DecodeError> {
    let instance = r.varint()?;
    if instance == 0 {
        return Ok(Decision::default());
    }
    let p = read_proposal(r)?;
    Ok(Decision::chosen(instance, &p))
}

fn put_accepted(out: &mut Vec<u8>, a: &Option<(Ballot, Proposal)>) {
    match a {
        None => out.push(0),
        Some((b, p)) => {
            out.push(1);
            put_ballot(out, *b);
            put_proposal(out, p);
        }
    }
}

fn read_accepted(r: &mut Reader<'_>) -> Result<Option<(Ballot, Proposal)>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some((read_ballot(r)?, read_proposal(r)?))),
        t => Err(DecodeError::UnknownTag(t)),
    }
}

/// Appends a consensus message.
pub(crate) fn put_msg(out: &mut Vec<u8>, m: &Msg) {
    match m {
        Msg::Prepare {
            key,
            instance,
            ballot,
            base,
        } => {
            out.push(PREPARE);
            put_key(out, key);
            put_varint(out, *instance);
            put_ballot(out, *ballot);
            put_decision(out, base);
        }
        Msg::Promise {
            key,
            instance,
            ballot,
            accepted,
        } => {
            out.push(PROMISE);
            put_key(out, key);
            put_varint(out, *instance);
            put_ballot(out, *ballot);
            put_accepted(out, accepted);
        }
        Msg::Accept {
            key,
            instance,
            ballot,
            proposal,
            base,
        } => {
            out.push(ACCEPT);
            put_key(out, key);
            put_varint(out, *instance);
            put_ballot(out, *ballot);
            put_proposal(out, proposal);
            put_decision(out, base);
        }
        Msg::Accepted {
            key,
            instance,
            ballot,
            id,
        } => {
            out.push(ACCEPTED);
            put_key(out, key);
            put_varint(out, *instance);
            put_ballot(out, *ballot);
            put_ballot(out, *id);
        }
        Msg::Nack {
            key,
            instance,
            ballot,
            higher,
        } => {
            out.push(NACK);
            put_key(out, key);
            put_varint(out, *instance);
            put_ballot(out, *ballot);
            put_ballot(out, *higher);
        }
        Msg::Commit { key, decision } => {
            out.push(COMMIT);
            put_key(out, key);
            put_decision(out, decision);
        }
    }
}

/// Reads a consensus message.
pub(crate) fn read_msg(r: &mut Reader<'_>) -> Result<Msg, DecodeError> {
    let tag = r.u8()?;
    let key = read_key(r)?;
    Ok(match tag {
        PREPARE => Msg::Prepare {
            key,
            instance: r.varint()?,
            ballot: read_ballot(r)?,
            base: read_decision(r)?,
        },
        PROMISE => Msg::Promise {
            key,
            instance: r.varint()?,
            ballot: read_ballot(r)?,
            accepted: read_accepted(r)?,
        },
        ACCEPT => Msg::Accept {
            key,
            instance: r.varint()?,
            ballot: read_ballot(r)?,
            proposal: read_proposal(r)?,
            base: read_decision(r)?,
        },
        ACCEPTED => Msg::Accepted {
            key,
            instance: r.varint()?,
            ballot: read_ballot(r)?,
            id: read_ballot(r)?,
        },
        NACK => Msg::Nack {
            key,
            instance: r.varint()?,
            ballot: read_ballot(r)?,
            higher: read_ballot(r)?,
        },
        COMMIT => Msg::Commit {
            key,
            decision: read_decision(r)?,
        },
        t => return Err(DecodeError::UnknownTag(t)),
    })
}

/// Appends an acceptor's record of one key.
pub(crate) fn put_record(out: &mut Vec<u8>, rec: &KeyRecord) {
    put_decision(out, &rec.decided);
    put_ballot(out, rec.promised);
    put_accepted(out, &rec.accepted);
}

/// Reads an acceptor's record, refusing one whose accepted ballot is above its promise.
pub(crate) fn read_record(r: &mut Reader<'_>) -> Result<KeyRecord, DecodeError> {
    let rec = KeyRecord {
        decided: read_decision(r)?,
        promised: read_ballot(r)?,
        accepted: read_accepted(r)?,
    };
    if rec
        .accepted
        .as_ref()
        .is_some_and(|(b, _)| *b > rec.promised)
    {
        return Err(DecodeError::Invalid("accepted ballot above the promise"));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaId;
    use crate::replica::{Key, Scalar};

    fn ballot(round: u64, p: u64) -> Ballot {
        Ballot {
            round,
            proposer: ReplicaId(p),
        }
    }

    fn key() -> Key {
        b"seat-5a".to_vec().into_boxed_slice()
    }

    fn every_msg() -> Vec<Msg> {
        let p = Proposal {
            id: ballot(3, 1),
            value: Scalar::bytes("alice"),
        };
        let d = Decision::chosen(
            4,
            &Proposal {
                id: ballot(2, 0),
                value: Scalar::Int(-7),
            },
        );
        vec![
            Msg::Prepare {
                key: key(),
                instance: 1,
                ballot: ballot(1, 2),
                base: Decision::default(),
            },
            Msg::Promise {
                key: key(),
                instance: 5,
                ballot: ballot(9, 1),
                accepted: Some((ballot(8, 0), p.clone())),
            },
            Msg::Promise {
                key: key(),
                instance: 5,
                ballot: ballot(9, 1),
                accepted: None,
            },
            Msg::Accept {
                key: key(),
                instance: 5,
                ballot: ballot(9, 1),
                proposal: p.clone(),
                base: d.clone(),
            },
            Msg::Accepted {
                key: key(),
                instance: 5,
                ballot: ballot(9, 1),
                id: p.id,
            },
            Msg::Nack {
                key: key(),
                instance: 5,
                ballot: ballot(9, 1),
                higher: ballot(10, 2),
            },
            Msg::Commit {
                key: key(),
                decision: d,
            },
        ]
    }

    #[test]
    fn every_message_round_trips_and_every_truncation_is_refused() {
        for m in every_msg() {
            let mut out = Vec::new();
            put_msg(&mut out, &m);
            let mut r = Reader::new(&out);
            assert_eq!(read_msg(&mut r).as_ref(), Ok(&m));
            assert_eq!(r.finish(), Ok(()));
            for cut in 0..out.len() {
                let mut r = Reader::new(&out[..cut]);
                assert!(read_msg(&mut r).is_err(), "{m:?} cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn a_record_with_an_accept_above_its_promise_is_refused() {
        let p = Proposal {
            id: ballot(3, 1),
            value: Scalar::Int(1),
        };
        let good = KeyRecord {
            decided: Decision::default(),
            promised: ballot(3, 1),
            accepted: Some((ballot(3, 1), p.clone())),
        };
        let mut out = Vec::new();
        put_record(&mut out, &good);
        assert_eq!(read_record(&mut Reader::new(&out)), Ok(good));
        let bad = KeyRecord {
            decided: Decision::default(),
            promised: ballot(2, 1),
            accepted: Some((ballot(3, 1), p)),
        };
        let mut out = Vec::new();
        put_record(&mut out, &bad);
        assert!(read_record(&mut Reader::new(&out)).is_err());
    }
}
