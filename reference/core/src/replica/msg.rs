//! Peer messages and their validated binary encoding.
//!
//! # Frame
//! ```text
//! +------+---------+-----+--------------------------------------------+
//! | 0xC7 | version | tag | body (per tag; batches may be LZ4-compressed) |
//! +------+---------+-----+--------------------------------------------+
//! ```
//! A batch body starts with a flags byte: bit 0 set means the rest is a varint uncompressed
//! length followed by an LZ4 block of `count, entries…`; clear means `count, entries…` as is.
//! The announced length is checked against the message limit before anything is allocated, and
//! the block must decompress to exactly that length. An acked batch (tag 7) is an ack's body
//! followed by a batch body: the sender's cumulative acknowledgement riding on the entries it
//! was sending anyway, so that two neighbours writing to each other exchange half the messages.
//!
//! # Invariants
//! - [`PeerMsg::decode`] never panics, allocates at most what the limit allows, and refuses
//!   trailing bytes, unknown tags and values that break an invariant (see `codec`).
//! - What decodes re-encodes (uncompressed) to bytes that decode to the same message.
//!
//! Semantic checks that need the receiver's state (is the sender a neighbour, does a Merkle node
//! exist, does an ack claim writes that were never issued) are made by the replica on receipt.

use super::api::Key;
use super::codec::{
    DecodeError, Reader, put_key, put_replica, put_varint, put_vv, read_key, read_replica, read_vv,
};
use super::oplog::Entry;
use super::state::{KeyState, put_state, read_state};
use crate::{ReplicaId, VectorClock};

/// First byte of every peer message.
pub const MSG_MAGIC: u8 = 0xC7;
/// The message format version this build speaks. Version 2 added each entry's causal
/// dependencies (`Entry::deps`, flagged in the low bit of the stamp's logical counter); a
/// version-1 peer's messages are refused as [`DecodeError::UnsupportedVersion`], never misread
/// (a version-1 entry would otherwise read with its logical counter halved, or as one with
/// dependencies).
pub const MSG_VERSION: u8 = 2;
/// Message size limit [`PeerMsg::decode`] applies.
pub const DEFAULT_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

const TAG_BATCH: u8 = 1;
const TAG_ACK: u8 = 2;
const TAG_ROUTED: u8 = 3;
const TAG_AE_PROBE: u8 = 4;
const TAG_AE_DIFF: u8 = 5;
const TAG_AE_KEYS: u8 = 6;
const TAG_ACKED_BATCH: u8 = 7;

const ROUTED_QUERY: u8 = 0;
const ROUTED_QUERY_REPLY: u8 = 1;
/// A consensus message (see `strong`); a peer of a build without consensus refuses the tag
/// rather than misreading it.
const ROUTED_CONSENSUS: u8 = 5;
const ROUTED_RIGHTS_ASK: u8 = 2;

/// One message between neighbouring replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerMsg {
    /// Oplog entries, of one or more origins, each origin's in sequence order.
    Batch(Vec<Entry>),
    /// The sender's frontier after applying a batch: a cumulative acknowledgement.
    Ack(Ack),
    /// A batch that also carries the sender's cumulative acknowledgement: what a replica sends
    /// when it owes a neighbour an ack and has entries for it at the same time.
    AckedBatch {
        /// The acknowledgement, as [`PeerMsg::Ack`] would carry it.
        ack: Ack,
        /// The entries, as [`PeerMsg::Batch`] would carry them.
        entries: Vec<Entry>,
    },
    /// A point-to-point message, relayed hop by hop along the topology's routes.
    Routed(Routed),
    /// Anti-entropy: the puller's Merkle hashes of some nodes of one level.
    AeProbe(AeProbe),
    /// Anti-entropy: which of the probed nodes differ at the responder.
    AeDiff(AeDiff),
    /// Anti-entropy: the responder's states of every key in the differing leaves.
    AeKeys(AeKeys),
}

/// A cumulative acknowledgement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ack {
    /// For each origin, the highest sequence number the sender has applied in order (and made
    /// durable).
    pub frontier: VectorClock,
    /// What the sender knows of other replicas' frontiers, so that quorum waits work when the
    /// writer is not linked to every replica. Empty in a full mesh, where every replica hears
    /// every ack first-hand. Sorted by replica, unique.
    pub table: Vec<(ReplicaId, VectorClock)>,
}

/// A message for a replica that may not be a neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Routed {
    /// The replica that wrote it.
    pub src: ReplicaId,
    /// The replica it is for.
    pub dst: ReplicaId,
    /// Hops left; a relay drops a message whose budget is spent (a routing loop cannot live).
    pub ttl: u8,
    /// The payload.
    pub body: RoutedBody,
}

/// What a routed message carries: the two halves of a quorum query, a bounded counter's ask
/// for rights, or a consensus message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RoutedBody {
    /// "Send me your state of `key`" for quorum operation `op` of the source.
    Query {
        /// The querier's operation id.
        op: u64,
        /// The key.
        key: Key,
    },
    /// The answer.
    QueryReply {
        /// The querier's operation id.
        op: u64,
        /// The responder's state of the key, `None` if absent.
        state: Option<KeyState>,
        /// The responder's horizon: its state is built from entries at or below it.
        horizon: VectorClock,
    },
    /// A message between a proposer and an acceptor of the consensus registers.
    Consensus(crate::consensus::Msg),
    /// "Transfer me rights on bounded counter `key`": the source waits to withdraw and lacks
    /// `amount` rights (at least 1). The destination answers, if it has spare rights, with a
    /// transfer: an ordinary logged write that reaches the source through replication (see
    /// `requests::escrow`).
    RightsAsk {
        /// The bounded counter.
        key: Key,
        /// The rights the source lacks; never 0.
        amount: u64,
        /// The rights the destination had transferred to the source so far, as the source's
        /// state shows them: a destination whose own total is higher has a grant on its way and
        /// does not grant again.
        seen: u64,
    },
}

/// The puller's hashes of nodes at one level of the Merkle tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AeProbe {
    /// The puller's round id.
    pub round: u64,
    /// The level (0 is the root).
    pub level: u8,
    /// `(node index, hash)`, indices strictly increasing.
    pub nodes: Vec<(u32, u64)>,
}

/// The responder's answer to a probe above the leaves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AeDiff {
    /// The puller's round id.
    pub round: u64,
    /// The level probed.
    pub level: u8,
    /// Indices of the probed nodes whose hashes differ, strictly increasing.
    pub differing: Vec<u32>,
    /// On the answer to the root probe only: the responder's frontier and horizon at that
    /// moment, which the puller may claim once the round completes.
    pub claim: Option<AeClaim>,
}

/// A responder's frontier and horizon at the start of a round.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AeClaim {
    /// Its frontier.
    pub frontier: VectorClock,
    /// Its horizon.
    pub horizon: VectorClock,
}

/// The responder's states of the keys in the differing leaves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AeKeys {
    /// The puller's round id.
    pub round: u64,
    /// Keys and states.
    pub states: Vec<(Key, KeyState)>,
    /// The responder's horizon when it sent them.
    pub horizon: VectorClock,
    /// Whether every differing leaf was shipped whole (false when the key cap cut it short).
    pub complete: bool,
}

impl PeerMsg {
    /// Every key whose name or data this message carries: the keys of its complete (not
    /// redacted) entries, of the states anti-entropy ships, of routed quorum queries, rights
    /// asks and consensus messages. What a residency check inspects (the simulator does so on
    /// every transmit): a message that names none of a pin's keys carries none of their data,
    /// except a routed `QueryReply`, which answers a `Query` that named its key on the way in.
    pub fn keys(&self) -> Vec<&[u8]> {
        fn entries(es: &[Entry]) -> Vec<&[u8]> {
            es.iter().filter(|e| !e.redacted).map(|e| &*e.key).collect()
        }
        match self {
            PeerMsg::Batch(es) | PeerMsg::AckedBatch { entries: es, .. } => entries(es),
            PeerMsg::Ack(_) | PeerMsg::AeProbe(_) | PeerMsg::AeDiff(_) => Vec::new(),
            PeerMsg::AeKeys(k) => k.states.iter().map(|(k, _)| &**k).collect(),
            PeerMsg::Routed(r) => match &r.body {
                RoutedBody::Query { key, .. } | RoutedBody::RightsAsk { key, .. } => {
                    vec![&**key]
                }
                RoutedBody::Consensus(m) => vec![&**m.key()],
                RoutedBody::QueryReply { .. } => Vec::new(),
            },
        }
    }

    /// The uncompressed encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![MSG_MAGIC, MSG_VERSION];
        match self {
            PeerMsg::Batch(entries) => {
                out.push(TAG_BATCH);
                put_plain_batch(&mut out, entries);
            }
            PeerMsg::Ack(ack) => {
                out.push(TAG_ACK);
                put_ack(&mut out, ack);
            }
            PeerMsg::AckedBatch { ack, entries } => {
                out.push(TAG_ACKED_BATCH);
                put_ack(&mut out, ack);
                put_plain_batch(&mut out, entries);
            }
            PeerMsg::Routed(m) => {
                out.push(TAG_ROUTED);
                put_replica(&mut out, m.src);
                put_replica(&mut out, m.dst);
                out.push(m.ttl);
                match &m.body {
                    RoutedBody::Query { op, key } => {
                        out.push(ROUTED_QUERY);
                        put_varint(&mut out, *op);
                        put_key(&mut out, key);
                    }
                    RoutedBody::QueryReply { op, state, horizon } => {
                        out.push(ROUTED_QUERY_REPLY);
                        put_varint(&mut out, *op);
                        match state {
                            None => out.push(0),
                            Some(s) => {
                                out.push(1);
                                put_state(&mut out, s);
                            }
                        }
                        put_vv(&mut out, horizon);
                    }
                    RoutedBody::Consensus(msg) => {
                        out.push(ROUTED_CONSENSUS);
                        super::strong_codec::put_msg(&mut out, msg);
                    }
                    RoutedBody::RightsAsk { key, amount, seen } => {
                        out.push(ROUTED_RIGHTS_ASK);
                        put_key(&mut out, key);
                        put_varint(&mut out, *amount);
                        put_varint(&mut out, *seen);
                    }
                }
            }
            PeerMsg::AeProbe(p) => {
                out.push(TAG_AE_PROBE);
                put_varint(&mut out, p.round);
                out.push(p.level);
                put_varint(&mut out, p.nodes.len() as u64);
                for &(i, h) in &p.nodes {
                    put_varint(&mut out, u64::from(i));
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            PeerMsg::AeDiff(d) => {
                out.push(TAG_AE_DIFF);
                put_varint(&mut out, d.round);
                out.push(d.level);
                put_varint(&mut out, d.differing.len() as u64);
                for &i in &d.differing {
                    put_varint(&mut out, u64::from(i));
                }
                match &d.claim {
                    None => out.push(0),
                    Some(c) => {
                        out.push(1);
                        put_vv(&mut out, &c.frontier);
                        put_vv(&mut out, &c.horizon);
                    }
                }
            }
            PeerMsg::AeKeys(k) => {
                out.push(TAG_AE_KEYS);
                put_varint(&mut out, k.round);
                put_varint(&mut out, k.states.len() as u64);
                for (key, state) in &k.states {
                    put_key(&mut out, key);
                    put_state(&mut out, state);
                }
                put_vv(&mut out, &k.horizon);
                out.push(u8::from(k.complete));
            }
        }
        out
    }

    /// Decodes and validates a message with the default size limit; never panics.
    pub fn decode(bytes: &[u8]) -> Result<PeerMsg, DecodeError> {
        Self::decode_with_limit(bytes, DEFAULT_MESSAGE_BYTES_MAX)
    }

    /// Decodes and validates a message no larger than `max_bytes`, compressed or not.
    pub fn decode_with_limit(bytes: &[u8], max_bytes: usize) -> Result<PeerMsg, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLong(bytes.len() as u64));
        }
        let mut r = Reader::new(bytes);
        let magic = r.u8()?;
        if magic != MSG_MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let version = r.u8()?;
        if version != MSG_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let msg = match r.u8()? {
            TAG_BATCH => PeerMsg::Batch(read_batch_body(&mut r, max_bytes)?),
            TAG_ACK => PeerMsg::Ack(read_ack(&mut r)?),
            TAG_ACKED_BATCH => {
                let ack = read_ack(&mut r)?;
                let entries = read_batch_body(&mut r, max_bytes)?;
                PeerMsg::AckedBatch { ack, entries }
            }
            TAG_ROUTED => {
                let src = read_replica(&mut r)?;
                let dst = read_replica(&mut r)?;
                let ttl = r.u8()?;
                let body = match r.u8()? {
                    ROUTED_QUERY => RoutedBody::Query {
                        op: r.varint()?,
                        key: read_key(&mut r)?,
                    },
                    ROUTED_QUERY_REPLY => {
                        let op = r.varint()?;
                        let state = match r.u8()? {
                            0 => None,
                            1 => Some(read_state(&mut r)?),
                            t => return Err(DecodeError::UnknownTag(t)),
                        };
                        RoutedBody::QueryReply {
                            op,
                            state,
                            horizon: read_vv(&mut r)?,
                        }
                    }
                    ROUTED_CONSENSUS => {
                        RoutedBody::Consensus(super::strong_codec::read_msg(&mut r)?)
                    }
                    ROUTED_RIGHTS_ASK => {
                        let key = read_key(&mut r)?;
                        let amount = r.varint()?;
                        if amount == 0 {
                            return Err(DecodeError::Invalid("rights ask for nothing"));
                        }
                        RoutedBody::RightsAsk {
                            key,
                            amount,
                            seen: r.varint()?,
                        }
                    }
                    t => return Err(DecodeError::UnknownTag(t)),
                };
                PeerMsg::Routed(Routed {
                    src,
                    dst,
                    ttl,
                    body,
                })
            }
            TAG_AE_PROBE => {
                let round = r.varint()?;
                let level = r.u8()?;
                let n = r.count(9)?;
                let mut nodes = Vec::with_capacity(n);
                for _ in 0..n {
                    let i = r.u32()?;
                    let mut h = [0u8; 8];
                    for b in &mut h {
                        *b = r.u8()?;
                    }
                    if nodes.last().is_some_and(|&(l, _)| l >= i) {
                        return Err(DecodeError::Invalid("probe nodes not increasing"));
                    }
                    nodes.push((i, u64::from_le_bytes(h)));
                }
                PeerMsg::AeProbe(AeProbe {
                    round,
                    level,
                    nodes,
                })
            }
            TAG_AE_DIFF => {
                let round = r.varint()?;
                let level = r.u8()?;
                let n = r.count(1)?;
                let mut differing = Vec::with_capacity(n);
                for _ in 0..n {
                    let i = r.u32()?;
                    if differing.last().is_some_and(|&l| l >= i) {
                        return Err(DecodeError::Invalid("differing nodes not increasing"));
                    }
                    differing.push(i);
                }
                let claim = match r.u8()? {
                    0 => None,
                    1 => Some(AeClaim {
                        frontier: read_vv(&mut r)?,
                        horizon: read_vv(&mut r)?,
                    }),
                    t => return Err(DecodeError::UnknownTag(t)),
                };
                PeerMsg::AeDiff(AeDiff {
                    round,
                    level,
                    differing,
                    claim,
                })
            }
            TAG_AE_KEYS => {
                let round = r.varint()?;
                let n = r.count(2)?;
                let mut states = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = read_key(&mut r)?;
                    states.push((key, read_state(&mut r)?));
                }
                let horizon = read_vv(&mut r)?;
                let complete = match r.u8()? {
                    0 => false,
                    1 => true,
                    t => return Err(DecodeError::UnknownTag(t)),
                };
                PeerMsg::AeKeys(AeKeys {
                    round,
                    states,
                    horizon,
                    complete,
                })
            }
            t => return Err(DecodeError::UnknownTag(t)),
        };
        r.finish()?;
        Ok(msg)
    }
}

fn read_entries(r: &mut Reader<'_>) -> Result<Vec<Entry>, DecodeError> {
    let n = r.count(6)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(Entry::read(r)?);
    }
    Ok(entries)
}

pub(crate) fn put_ack(out: &mut Vec<u8>, ack: &Ack) {
    put_ack_parts(out, &ack.frontier, ack.table.iter().map(|(r, vv)| (*r, vv)));
}

/// An ack's body from its parts (`table` sorted by replica), so that a replica encodes its ack
/// from its own clocks without cloning them into an [`Ack`].
pub(crate) fn put_ack_parts<'a, I>(out: &mut Vec<u8>, frontier: &VectorClock, table: I)
where
    I: Iterator<Item = (ReplicaId, &'a VectorClock)> + Clone,
{
    put_vv(out, frontier);
    put_varint(out, table.clone().count() as u64);
    for (r, vv) in table {
        put_replica(out, r);
        put_vv(out, vv);
    }
}

/// The frame of an ack, from its parts (see [`put_ack_parts`]).
pub(crate) fn ack_frame<'a, I>(frontier: &VectorClock, table: I) -> Vec<u8>
where
    I: Iterator<Item = (ReplicaId, &'a VectorClock)> + Clone,
{
    let mut out = vec![MSG_MAGIC, MSG_VERSION, TAG_ACK];
    put_ack_parts(&mut out, frontier, table);
    out
}

fn read_ack(r: &mut Reader<'_>) -> Result<Ack, DecodeError> {
    let frontier = read_vv(r)?;
    let n = r.count(2)?;
    let mut table: Vec<(ReplicaId, VectorClock)> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = read_replica(r)?;
        if table.last().is_some_and(|(l, _)| *l >= id) {
            return Err(DecodeError::Invalid("ack table not increasing"));
        }
        table.push((id, read_vv(r)?));
    }
    Ok(Ack { frontier, table })
}

/// A batch body, uncompressed: the flags byte (0), the count, the entries.
fn put_plain_batch(out: &mut Vec<u8>, entries: &[Entry]) {
    out.push(0);
    put_varint(out, entries.len() as u64);
    for e in entries {
        e.encode_into(out);
    }
}

/// A batch body after its tag (and, in an acked batch, after the ack): the flags byte, then the
/// entries, plain or LZ4-compressed. Reads to the end of the message.
fn read_batch_body(r: &mut Reader<'_>, max_bytes: usize) -> Result<Vec<Entry>, DecodeError> {
    match r.u8()? {
        0 => read_entries(r),
        1 => {
            let raw_len = r.varint()?;
            if raw_len > max_bytes as u64 {
                return Err(DecodeError::TooLong(raw_len));
            }
            let mut raw = vec![0u8; raw_len as usize];
            let n = lz4_flex::block::decompress_into(r.rest(), &mut raw)
                .map_err(|_| DecodeError::Decompress)?;
            if n != raw.len() {
                return Err(DecodeError::Decompress);
            }
            let mut inner = Reader::new(&raw);
            let entries = read_entries(&mut inner)?;
            inner.finish()?;
            Ok(entries)
        }
        f => Err(DecodeError::UnknownTag(f)),
    }
}

/// Builds the frame of a batch from its encoded entries (`body` = the entries, `count` of
/// them), compressing when the body reaches `threshold` bytes and compression pays. With `ack`
/// (an ack's encoded body, see [`put_ack`]) the frame is an acked batch.
pub(crate) fn batch_frame(
    count: usize,
    body: &[u8],
    threshold: usize,
    ack: Option<&[u8]>,
) -> Vec<u8> {
    let header = |flags: u8, out: &mut Vec<u8>| {
        out.extend_from_slice(&[MSG_MAGIC, MSG_VERSION]);
        match ack {
            None => out.push(TAG_BATCH),
            Some(ack) => {
                out.push(TAG_ACKED_BATCH);
                out.extend_from_slice(ack);
            }
        }
        out.push(flags);
    };
    let ack_len = ack.map_or(0, <[u8]>::len);
    let mut plain = Vec::with_capacity(body.len() + 10);
    put_varint(&mut plain, count as u64);
    plain.extend_from_slice(body);
    if plain.len() >= threshold {
        let mut out = Vec::with_capacity(ack_len + 16);
        header(1, &mut out);
        put_varint(&mut out, plain.len() as u64);
        let start = out.len();
        out.resize(
            start + lz4_flex::block::get_maximum_output_size(plain.len()),
            0,
        );
        if let Ok(n) = lz4_flex::block::compress_into(&plain, &mut out[start..])
            && n < plain.len()
        {
            out.truncate(start + n);
            return out;
        }
    }
    let mut out = Vec::with_capacity(ack_len + plain.len() + 4);
    header(0, &mut out);
    out.extend_from_slice(&plain);
    out
}
