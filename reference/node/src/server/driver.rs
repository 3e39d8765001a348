//! The driver: the one task that owns the [`Replica`].
//!
//! It takes inputs from one bounded channel (client requests, each with the id of its
//! [`Waiter`](crate::shared::Waiter); peer payloads), handles a batch of them (everything already
//! queued, up to `limits.batch_inputs_max`) and the timer from `poll_timeout`, then makes **one**
//! redb commit of the batch's `take_durable` delta on a blocking thread (the group commit), and
//! only then pushes the transmits into the peers' outboxes and completes the waiters with the
//! replies. While a commit runs the driver goes on handling the next batch in memory (commits
//! are pipelined one deep, see [`drive`]) and new inputs queue in the channel, so the commit rate
//! adapts to the load.
//!
//! # Invariants
//! - **The ordering rule** of `converge_core::replica::durable`: nothing a batch produced (a
//!   transmit or a reply) leaves the node before the batch's changes are on disk, so an
//!   acknowledged write survives `kill -9`. Outputs are polled from the replica only when a
//!   commit starts, and released only when it (and so every commit before it) has ended.
//! - Commits reach the store in order: at most one runs at a time.
//! - The replica is touched by this task alone, with no lock; the other tasks see its state
//!   only through the [`Stats`] snapshot published at most every [`STATS_EVERY`] and the log
//!   cursors.
//! - A commit that fails stops the node ([`ServerError`]) rather than acknowledge what it could
//!   not persist.
//! - A node on a store created by this start (see `state::Identity`) is silent until every peer
//!   has welcomed its incarnation: client requests are answered [`ClientError::Loading`] (a
//!   definite error: nothing was applied), peer payloads are dropped (go-back-N re-sends them)
//!   and the replica's timer does not run, so a region that lost its disk neither acknowledges
//!   a write under sequence numbers its peers hold nor answers a consensus message with the
//!   promises it forgot.

use super::error::ServerError;
use super::state::{Input, Node, now_ms};
use crate::frame;
use crate::store::{Store, StoreError};
use crate::sync::{Arc, Ordering, lock};
use converge_core::replica::{ClientError, DurableDelta, Output, Replica, Reply, Stats, Transmit};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::error;

/// How often the driver publishes the replica's stats for `/metrics`.
pub const STATS_EVERY: Duration = Duration::from_millis(200);
/// The longest the driver sleeps without checking its timer (a cap, not a poll: inputs wake it).
const TICK_MAX: Duration = Duration::from_millis(50);

fn handle(replica: &mut Replica, node: &Node, serving: bool, input: Input) {
    if !serving {
        // See the module documentation: nothing reaches the replica yet.
        if let Input::Request(r) = input {
            node.waiters.complete(
                r.id,
                Reply {
                    id: r.id,
                    result: Err(ClientError::Loading),
                },
            );
        }
        return;
    }
    match input {
        Input::Request(r) => replica.handle_request(now_ms(), r),
        Input::Peer { from, payload } => replica.handle_message(now_ms(), from, &payload),
    }
}

/// A group commit running on a blocking thread, and what its group produced: released only once
/// it (and every commit before it) is on disk.
struct InFlight {
    handle: tokio::task::JoinHandle<Result<(), StoreError>>,
    outputs: Outputs,
    inputs: u64,
    last_seq: u64,
    started: Instant,
}

/// What a group of inputs produced, held back until its commit.
#[derive(Default)]
struct Outputs {
    transmits: Vec<Transmit>,
    replies: Vec<Reply>,
}

impl Outputs {
    /// Everything the group produced: its durable delta, to commit first, and the messages and
    /// replies that wait for that commit.
    fn take(replica: &mut Replica) -> (Option<DurableDelta>, Outputs) {
        let mut delta = None;
        let mut o = Outputs::default();
        replica.drain(|out| match out {
            Output::Durable(d) => delta = Some(d),
            Output::Transmit(t) => o.transmits.push(t),
            Output::Reply(r) => o.replies.push(r),
        });
        (delta, o)
    }

    /// Sends the messages, then answers the clients.
    fn release(self, node: &Node) {
        for t in self.transmits {
            let Some(link) = node.links.get(&t.to.0) else {
                continue;
            };
            let stamp = node.clock.stamp(now_ms());
            let pushed = frame::encode_data(stamp.0, &t.payload).map(|f| link.outbox.push(f));
            if !matches!(pushed, Some(Ok(()))) {
                // Go-back-N re-sends what a full outbox or a cut link dropped.
                node.counters
                    .transmits_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        for reply in self.replies {
            // A waiter that timed out is gone; its reply is dropped.
            node.waiters.complete(reply.id, reply);
        }
    }
}

/// The driver loop: see the module documentation.
///
/// Commits are pipelined one deep: while group `k` is being committed, the driver goes on
/// handling inputs (group `k+1`, up to `batch_inputs_max`) in memory; when commit `k` ends it
/// releases group `k`'s outputs, then takes the durable delta and the outputs of everything
/// handled since and starts commit `k+1`. Outputs are polled from the replica only when a commit
/// starts (or when there is nothing to persist and no commit running), so every output is
/// released after the commit of the delta that covers the inputs before it — the ordering rule —
/// and commits reach the store in order.
pub(super) async fn drive(
    mut replica: Replica,
    store: Option<Arc<Store>>,
    mut rx: mpsc::Receiver<Input>,
    node: Arc<Node>,
) -> Result<(), ServerError> {
    let me = replica.id();
    let batch_max = node.config.limits.batch_inputs_max as u64;
    let mut last_stats = Instant::now() - STATS_EVERY;
    let mut inflight: Option<InFlight> = None;
    // Inputs handled since the last commit started (their outputs wait in the replica).
    let mut group = 0u64;
    // Whether inputs reach the replica (see the module documentation): a new store is marked
    // accepted on disk before the first one does, so a crash after it serves cannot make it
    // look new again, and a restart of a refused node cannot make it look accepted.
    let mut serving = !node.identity.fresh;
    loop {
        if !serving && node.serving() {
            if let Some(store) = &store {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.mark_accepted())
                    .await
                    .map_err(|e| ServerError::Commit(e.to_string()))??;
            }
            serving = true;
        }
        let now = now_ms();
        let wait = replica
            .poll_timeout()
            .map_or(TICK_MAX, |at| Duration::from_millis(at.saturating_sub(now)))
            .min(TICK_MAX);
        let commit_done = async {
            match inflight.as_mut() {
                Some(f) => (&mut f.handle).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = commit_done => {
                if let Some(f) = inflight.take() {
                    done.map_err(|e| ServerError::Commit(e.to_string()))?
                        .inspect_err(|e| error!(error = %e, "commit failed; stopping"))?;
                    let c = &node.counters;
                    c.group_commits.fetch_add(1, Ordering::Relaxed);
                    c.group_commit_inputs.fetch_add(f.inputs, Ordering::Relaxed);
                    c.commit_micros.fetch_add(
                        u64::try_from(f.started.elapsed().as_micros()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    node.cursors.durable(f.last_seq);
                    f.outputs.release(&node);
                }
            }
            // A full group waits for the running commit instead of growing the held outputs.
            input = rx.recv(), if group < batch_max => match input {
                Some(input) => {
                    handle(&mut replica, &node, serving, input);
                    group += 1;
                }
                // Every sender is gone: the node is shutting down.
                None => return Ok(()),
            },
            () = tokio::time::sleep(wait) => {}
        }
        // The group: whatever else is already queued, bounded.
        while group < batch_max {
            match rx.try_recv() {
                Ok(input) => {
                    handle(&mut replica, &node, serving, input);
                    group += 1;
                }
                Err(_) => break,
            }
        }
        let now = now_ms();
        if serving && replica.poll_timeout().is_some_and(|at| at <= now) {
            replica.handle_timeout(now);
        }
        if inflight.is_none() {
            // Persist the group (one commit, off the async workers), or release its outputs
            // now if it changed nothing durable: every earlier commit has ended.
            let last_seq = replica.frontier().get(me);
            node.cursors.append(last_seq);
            let (delta, outputs) = Outputs::take(&mut replica);
            match (delta, &store) {
                (Some(delta), Some(store)) => {
                    let store = store.clone();
                    inflight = Some(InFlight {
                        handle: tokio::task::spawn_blocking(move || store.apply(&delta)),
                        outputs,
                        inputs: group,
                        last_seq,
                        started: Instant::now(),
                    });
                }
                // Without a data directory the node is in memory only, by choice.
                _ => {
                    node.cursors.durable(last_seq);
                    outputs.release(&node);
                }
            }
            group = 0;
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            publish_stats(&node, replica.stats(), replica.frontier().get(me));
        }
    }
}

/// Publishes `stats` for `/metrics` and moves the peers' ack cursors; `last_seq` is the replica's
/// last local sequence number when the stats were taken.
fn publish_stats(node: &Node, stats: Stats, last_seq: u64) {
    // The replica counts what each peer still lacks from its current last sequence number; the
    // cursor clamps the ack to what was handed to the store.
    for &(peer, lag) in &stats.peer_lag {
        node.cursors.ack(peer.0, last_seq.saturating_sub(lag));
    }
    *lock(&node.counters.stats) = Some(stats);
}

#[cfg(test)]
mod tests {
    use super::super::state::testing;
    use super::*;
    use crate::frame::Frame;
    use converge_core::ReplicaId;
    use converge_core::replica::ClientError;

    fn transmit(to: u64, payload: &[u8]) -> Transmit {
        Transmit {
            to: ReplicaId(to),
            payload: payload.to_vec(),
        }
    }

    /// Every frame queued for peer `id`, decoded.
    fn queued(node: &Node, id: u64) -> Vec<Frame> {
        let mut batch = Vec::new();
        node.links[&id].outbox.take_batch(usize::MAX, &mut batch);
        batch
            .iter()
            .map(|f| frame::decode(f, usize::MAX).unwrap().unwrap().0)
            .collect()
    }

    #[tokio::test]
    async fn release_frames_the_transmits_and_completes_the_waiters() {
        let (node, _rx) = testing::node(testing::config());
        let waiter = node.waiters.register().unwrap();
        let outputs = Outputs {
            // Replica 9 is not a peer: its transmit is skipped, not counted as dropped.
            transmits: vec![transmit(1, b"a"), transmit(9, b"x"), transmit(1, b"b")],
            replies: vec![Reply {
                id: waiter.id(),
                result: Err(ClientError::Overloaded),
            }],
        };
        outputs.release(&node);
        let payloads: Vec<Vec<u8>> = queued(&node, 1)
            .into_iter()
            .map(|f| match f {
                Frame::Data { payload, .. } => payload,
                other => panic!("expected data, got {other:?}"),
            })
            .collect();
        assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()]);
        assert!(queued(&node, 2).is_empty());
        assert_eq!(node.counters.transmits_dropped.load(Ordering::Relaxed), 0);
        let reply = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap();
        assert_eq!(reply.result, Err(ClientError::Overloaded));
    }

    #[test]
    fn a_full_outbox_counts_the_transmit_as_dropped() {
        let mut config = testing::config();
        config.limits.outbox_frames_max = 1;
        let (node, _rx) = testing::node(config);
        Outputs {
            transmits: vec![transmit(1, b"a"), transmit(1, b"b"), transmit(2, b"c")],
            replies: vec![],
        }
        .release(&node);
        assert_eq!(node.counters.transmits_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(queued(&node, 1).len(), 1);
        assert_eq!(queued(&node, 2).len(), 1);
    }

    #[test]
    fn a_reply_for_a_gone_waiter_is_dropped() {
        let (node, _rx) = testing::node(testing::config());
        let id = node.waiters.register().unwrap().id();
        Outputs {
            transmits: vec![],
            replies: vec![Reply {
                id,
                result: Err(ClientError::Overloaded),
            }],
        }
        .release(&node);
        assert!(node.waiters.is_empty());
    }

    #[test]
    fn published_stats_move_the_ack_cursors_and_reach_metrics() {
        let (node, _rx) = testing::node(testing::config());
        node.cursors.append(10);
        let stats = Stats {
            keys: 7,
            peer_lag: vec![(ReplicaId(1), 3), (ReplicaId(2), 12)],
            ..Stats::default()
        };
        publish_stats(&node, stats.clone(), 10);
        // Peer 1 lacks 3 of 10 entries; peer 2 lacks more than there are, so it acked none.
        assert_eq!(node.cursors.lag_entries(1), Some(3));
        assert_eq!(node.cursors.lag_entries(2), Some(10));
        assert_eq!(*lock(&node.counters.stats), Some(stats));
    }
}
