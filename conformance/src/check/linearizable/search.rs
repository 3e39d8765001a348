//! The per-key search for a linearization: Wing & Gong's, with Lowe's memoization, over a
//! doubly linked list of call and return entries, with the refinements the checker's module doc
//! describes (the prefix-with-holes set, reads first, lazy and interchangeable indefinite
//! operations).
//!
//! Invariants: [`search`] is exact (it answers `Linearizable` or `Violation` only when it has
//! shown it, and `Exhausted` when it ran out of steps), each configuration is explored at most
//! once (the [`Cache`] records them), and every move it makes is undone from its [`Frame`] on
//! backtracking, so the list is whole again when the search ends.

use super::cache::Cache;
use super::ints::{FastMap, NIL, to_u32};
use super::ops::{Act, KOp};

/// The list's sentinel head node.
const HEAD: u32 = 0;

/// What a search found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SearchVerdict {
    Linearizable,
    Violation,
    Exhausted,
}

/// A verdict and the steps it took.
pub(super) struct SearchResult {
    pub(super) verdict: SearchVerdict,
    pub(super) steps: u64,
    /// The latest return time at which the search was stuck: the time of the first remaining
    /// return in the configuration that got furthest. On a violation, this is where it surfaces
    /// (see [`report_violation`](super::explain::report_violation)).
    pub(super) frontier: u64,
}

/// Where the search is among the moves of the current configuration: a node of the list, and for
/// its operation whether it was tried directly and which chains of indefinite operations were.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    node: u32,
    stage: Stage,
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// The operation leaves the value as it is and is the only move tried (see
    /// [`Search::enter`]); it has not been tried yet.
    Forced,
    /// The only move worth trying from this configuration has been tried.
    Exhausted,
    /// The operation alone has not been tried.
    Direct,
    /// Tried alone; its chains have not been listed.
    Chains,
    /// Its chains are `chains[start..end]`; `pos` is the next one to try.
    ChainList { start: u32, pos: u32, end: u32 },
}

/// One move on the search path, with what is needed to undo it.
struct Frame {
    /// The call node of the completed operation linearized.
    node: u32,
    /// The chain of indefinite classes taken before it: `chains[chain.0..chain.1]`.
    chain: (u32, u32),
    /// The register before the move.
    state: Option<i64>,
    /// `m` before the move.
    m: u32,
    /// Where to continue in the parent configuration.
    resume: Cursor,
    /// The chain arena's length when the move was made: the parent's chains end there.
    arena_len: u32,
}

/// The per-key search state. Completed operations are numbered `0..n` in invocation order;
/// indefinite ones are grouped into classes (same write value, or same cas `from` and `to`).
struct Search {
    acts: Vec<Act>,
    // The doubly linked list of call and return entries. Node 0 is the head.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Operation number of each node.
    node_op: Vec<u32>,
    /// Whether the node is a return entry.
    node_ret: Vec<bool>,
    /// The time of each node.
    node_time: Vec<u64>,
    /// For a call node, its return node.
    partner: Vec<u32>,

    /// Per class: what its operations do.
    class_act: Vec<Act>,
    /// Per class: its operations' invocation times, ascending: `class_invokes[class_start[c]..]`.
    class_start: Vec<u32>,
    class_len: Vec<u32>,
    class_invokes: Vec<u64>,
    /// The class of indefinite writes of a value.
    write_class: FastMap<i64, u32>,
    /// The classes of indefinite cas to a value.
    cas_to: FastMap<i64, Vec<u32>>,

    // The current configuration.
    m: u32,
    holes: Vec<u32>,
    state: Option<i64>,
    /// Operations used per class: the earliest-invoked ones.
    used_dense: Vec<u32>,
    /// The nonzero entries of `used_dense`, by class.
    used: Vec<(u32, u32)>,

    cache: Cache,
    /// Chains of classes, each stored as its length followed by its classes.
    chains: Vec<u32>,
    steps: u64,
    max_steps: u64,
    frontier: u64,
}

/// Searches for a linearization of `ops`, all on one key.
pub(super) fn search(ops: &[KOp], max_steps: u64) -> SearchResult {
    let mut s = Search::new(ops, max_steps);
    let verdict = s.run();
    SearchResult {
        verdict,
        steps: s.steps,
        frontier: s.frontier,
    }
}

impl Search {
    /// Builds the search over `ops`, which must be in invocation order (ties in any order).
    fn new(ops: &[KOp], max_steps: u64) -> Self {
        debug_assert!(ops.is_sorted_by_key(|op| op.invoke));
        let mut acts = Vec::new();
        // Calls are in invocation order already; returns are sorted, then the two are merged.
        let mut calls: Vec<(u64, u32)> = Vec::with_capacity(ops.len());
        let mut returns: Vec<(u64, u32)> = Vec::with_capacity(ops.len());
        let mut classes: FastMap<(bool, i64, i64), u32> = FastMap::default();
        let mut class_act = Vec::new();
        let mut per_class: Vec<Vec<u64>> = Vec::new();
        for op in ops {
            if let Some(ret) = op.ret {
                let i = to_u32(acts.len());
                acts.push(op.act);
                calls.push((op.invoke, i));
                returns.push((ret, i));
                continue;
            }
            let class_key = match op.act {
                Act::Write(v) => (true, v, v),
                // A cas from a value to itself changes nothing whether it happens or not.
                Act::Cas(from, to) if from != to => (false, from, to),
                Act::Cas(..) | Act::Read(_) => continue,
            };
            let class = *classes.entry(class_key).or_insert_with(|| {
                class_act.push(op.act);
                per_class.push(Vec::new());
                to_u32(per_class.len() - 1)
            });
            // Operations arrive in invocation order, so each class's list is ascending.
            per_class[class as usize].push(op.invoke);
        }
        returns.sort_unstable();
        // (time, 0 for a call or 1 for a return, operation number): at equal times calls come
        // first, so that an operation completing when another is invoked counts as concurrent.
        let mut entries: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * acts.len());
        let (mut c, mut r) = (0, 0);
        while c < calls.len() || r < returns.len() {
            if r == returns.len() || (c < calls.len() && calls[c].0 <= returns[r].0) {
                entries.push((calls[c].0, 0, calls[c].1));
                c += 1;
            } else {
                entries.push((returns[r].0, 1, returns[r].1));
                r += 1;
            }
        }

        let nodes = entries.len() + 1;
        let mut s = Search {
            next: (1..=to_u32(nodes))
                .map(|n| if n as usize == nodes { NIL } else { n })
                .collect(),
            prev: (0..to_u32(nodes)).map(|n| n.wrapping_sub(1)).collect(),
            node_op: vec![NIL; nodes],
            node_ret: vec![false; nodes],
            node_time: vec![0; nodes],
            partner: vec![NIL; nodes],
            class_start: Vec::with_capacity(per_class.len()),
            class_len: Vec::with_capacity(per_class.len()),
            class_invokes: Vec::new(),
            write_class: FastMap::default(),
            cas_to: FastMap::default(),
            m: 0,
            holes: Vec::new(),
            state: None,
            used_dense: vec![0; per_class.len()],
            used: Vec::new(),
            cache: Cache::new(acts.len()),
            chains: Vec::new(),
            steps: 0,
            max_steps,
            frontier: 0,
            acts,
            class_act,
        };
        let mut call_node = vec![NIL; s.acts.len()];
        for (k, &(time, kind, i)) in entries.iter().enumerate() {
            let node = k + 1;
            s.node_op[node] = i;
            s.node_time[node] = time;
            if kind == 0 {
                call_node[i as usize] = to_u32(node);
            } else {
                s.node_ret[node] = true;
                // A return sorts after its call (same or later time, and 1 > 0), so the call node
                // is known here.
                s.partner[call_node[i as usize] as usize] = to_u32(node);
            }
        }
        for (c, invokes) in per_class.into_iter().enumerate() {
            let c = to_u32(c);
            s.class_start.push(to_u32(s.class_invokes.len()));
            s.class_len.push(to_u32(invokes.len()));
            s.class_invokes.extend(invokes);
            match s.class_act[c as usize] {
                Act::Write(v) => {
                    s.write_class.insert(v, c);
                }
                Act::Cas(_, to) => s.cas_to.entry(to).or_default().push(c),
                Act::Read(_) => {}
            }
        }
        s
    }

    fn run(&mut self) -> SearchVerdict {
        let mut remaining = self.acts.len();
        let mut stack: Vec<Frame> = Vec::new();
        let mut cur = self.enter();
        loop {
            if remaining == 0 {
                // Indefinite operations left over may simply never take effect.
                return SearchVerdict::Linearizable;
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                return SearchVerdict::Exhausted;
            }
            let node = cur.node;
            // Every completed operation still unlinearized has its return in the list, and
            // `remaining > 0`, so the scan meets a return before the end; NIL is handled anyway.
            if node == NIL || self.node_ret[node as usize] || matches!(cur.stage, Stage::Exhausted)
            {
                // The scan reached a return whose operation was not linearized before it, or the
                // only move worth trying failed: nothing is left from this configuration, so undo
                // the last move.
                if node != NIL && self.node_ret[node as usize] {
                    self.frontier = self.frontier.max(self.node_time[node as usize]);
                }
                let Some(frame) = stack.pop() else {
                    return SearchVerdict::Violation;
                };
                self.undo(&frame);
                self.unlift(frame.node);
                remaining += 1;
                self.chains.truncate(frame.arena_len as usize);
                cur = frame.resume;
                continue;
            }
            let i = self.node_op[node as usize];
            let act = self.acts[i as usize];
            let mut chain = (0, 0);
            let next_state = match cur.stage {
                Stage::Direct => {
                    cur.stage = Stage::Chains;
                    act.step(self.state)
                }
                Stage::Forced => {
                    cur.stage = Stage::Exhausted;
                    act.step(self.state)
                }
                // Handled with the returns above.
                Stage::Exhausted => None,
                Stage::Chains => {
                    // Only an operation that needs a value the register does not hold can use a
                    // chain, and only if there are indefinite operations at all.
                    let target = match act.needs() {
                        Some(v) if !self.class_act.is_empty() && self.state != Some(v) => v,
                        _ => {
                            cur = Cursor {
                                node: self.next[node as usize],
                                stage: Stage::Direct,
                            };
                            continue;
                        }
                    };
                    let start = to_u32(self.chains.len());
                    self.list_chains(node, target);
                    cur.stage = Stage::ChainList {
                        start,
                        pos: start,
                        end: to_u32(self.chains.len()),
                    };
                    continue;
                }
                Stage::ChainList { start, pos, end } => {
                    if pos == end {
                        self.chains.truncate(start as usize);
                        cur = Cursor {
                            node: self.next[node as usize],
                            stage: Stage::Direct,
                        };
                        continue;
                    }
                    let len = self.chains[pos as usize];
                    chain = (pos + 1, pos + 1 + len);
                    cur.stage = Stage::ChainList {
                        start,
                        pos: chain.1,
                        end,
                    };
                    let mut state = self.state;
                    for k in chain.0..chain.1 {
                        state = self.class_effect(self.chains[k as usize], state);
                    }
                    act.step(state)
                }
            };
            let Some(next_state) = next_state else {
                continue;
            };
            let frame = Frame {
                node,
                chain,
                state: self.state,
                m: self.m,
                resume: cur,
                arena_len: to_u32(self.chains.len()),
            };
            self.apply(i, chain, next_state);
            if self
                .cache
                .insert(self.m, &self.holes, &self.used, self.state, &mut self.steps)
            {
                self.lift(node);
                remaining -= 1;
                stack.push(frame);
                cur = self.enter();
            } else {
                self.undo(&frame);
            }
        }
    }

    /// Where to start in a configuration just entered.
    ///
    /// A read of the current value (or a cas from a value to itself) that may be linearized now
    /// can be linearized first without loss: in any completion of this configuration, moving it
    /// to the front keeps every operation legal (it changes nothing, here or where it was), and
    /// keeps real time, since every operation that returned before it was invoked is linearized
    /// already (its return would precede this call in the list). So when there is one, it is the
    /// only move tried. Without this, concurrent reads of one value would be linearized in every
    /// subset and order.
    fn enter(&self) -> Cursor {
        let mut node = self.next[HEAD as usize];
        while node != NIL && !self.node_ret[node as usize] {
            let keeps = match self.acts[self.node_op[node as usize] as usize] {
                Act::Read(v) => v == self.state,
                Act::Cas(from, to) => from == to && self.state == Some(from),
                Act::Write(_) => false,
            };
            if keeps {
                return Cursor {
                    node,
                    stage: Stage::Forced,
                };
            }
            node = self.next[node as usize];
        }
        Cursor {
            node: self.next[HEAD as usize],
            stage: Stage::Direct,
        }
    }

    /// What an indefinite class's next operation does to `state`. Chains only contain classes
    /// whose operation applies (a cas's `from` is the value before it).
    fn class_effect(&self, class: u32, state: Option<i64>) -> Option<i64> {
        match self.class_act[class as usize] {
            Act::Write(v) => Some(v),
            Act::Cas(from, to) => {
                debug_assert_eq!(state, Some(from));
                Some(to)
            }
            Act::Read(_) => state,
        }
    }

    /// Linearizes completed operation `i` after the classes of `chain`, leaving `state`.
    fn apply(&mut self, i: u32, chain: (u32, u32), state: Option<i64>) {
        for k in chain.0..chain.1 {
            let c = self.chains[k as usize];
            self.used_dense[c as usize] += 1;
            match self.used.binary_search_by_key(&c, |&(class, _)| class) {
                Ok(at) => self.used[at].1 += 1,
                Err(at) => self.used.insert(at, (c, 1)),
            }
        }
        if i >= self.m {
            // Everything between the old `m` and `i` is unlinearized: new holes.
            self.holes.extend(self.m..i);
            self.m = i + 1;
        } else if let Ok(at) = self.holes.binary_search(&i) {
            self.holes.remove(at);
        }
        self.state = state;
    }

    /// Undoes the move recorded in `frame`, which linearized the operation of its node.
    fn undo(&mut self, frame: &Frame) {
        let i = self.node_op[frame.node as usize];
        if i >= frame.m {
            let added = (i - frame.m) as usize;
            self.holes.truncate(self.holes.len() - added);
        } else if let Err(at) = self.holes.binary_search(&i) {
            self.holes.insert(at, i);
        }
        self.m = frame.m;
        for k in frame.chain.0..frame.chain.1 {
            let c = self.chains[k as usize];
            self.used_dense[c as usize] -= 1;
            if let Ok(at) = self.used.binary_search_by_key(&c, |&(class, _)| class) {
                self.used[at].1 -= 1;
                if self.used[at].1 == 0 {
                    self.used.remove(at);
                }
            }
        }
        self.state = frame.state;
    }

    /// Removes a call node and its return from the list (dancing links: the nodes keep their own
    /// pointers, so [`Search::unlift`] puts them back in the reverse order).
    fn lift(&mut self, call: u32) {
        let ret = self.partner[call as usize];
        for node in [call, ret] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = n;
            if n != NIL {
                self.prev[n as usize] = p;
            }
        }
    }

    fn unlift(&mut self, call: u32) {
        let ret = self.partner[call as usize];
        for node in [ret, call] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = node;
            if n != NIL {
                self.prev[n as usize] = node;
            }
        }
    }

    /// Whether class `c` has an unused operation invoked by `time`.
    fn available(&self, c: u32, time: u64) -> bool {
        let used = self.used_dense[c as usize];
        used < self.class_len[c as usize]
            && self.class_invokes[(self.class_start[c as usize] + used) as usize] <= time
    }

    /// Appends to `chains` every chain of indefinite operations that can run now and takes the
    /// register from its current value to `Some(target)`: an optional write, then cas steps, with
    /// no value visited twice (a loop could be left out, and using fewer operations dominates).
    fn list_chains(&mut self, from_node: u32, target: i64) {
        // Indefinite operations may be linearized now if invoked by the first remaining return.
        let mut node = from_node;
        while node != NIL && !self.node_ret[node as usize] {
            node = self.next[node as usize];
        }
        let now = if node == NIL {
            u64::MAX
        } else {
            self.node_time[node as usize]
        };
        // A depth-first walk backwards from `target` over cas classes. `path[d]` is the value at
        // depth `d`, the class that leads from it to `path[d - 1]`, and the next candidate class
        // to try from it.
        struct Level {
            value: i64,
            via: u32,
            next_candidate: usize,
        }
        let mut path = vec![Level {
            value: target,
            via: NIL,
            next_candidate: 0,
        }];
        let mut entered = true;
        while let Some(level) = path.last() {
            self.steps += 1;
            let value = level.value;
            if entered {
                entered = false;
                if self.state == Some(value) {
                    // The walk reached the current value: the cas steps alone form a chain. (At
                    // depth 0 the caller has ruled this out.) Going further back would only
                    // leave the current value and return to it.
                    let steps: Vec<u32> = path[1..].iter().rev().map(|l| l.via).collect();
                    self.push_chain(None, &steps);
                    path.pop();
                    continue;
                }
                if let Some(&w) = self.write_class.get(&value)
                    && self.available(w, now)
                {
                    let steps: Vec<u32> = path[1..].iter().rev().map(|l| l.via).collect();
                    self.push_chain(Some(w), &steps);
                }
            }
            let candidates = self.cas_to.get(&value).map_or(&[][..], Vec::as_slice);
            let mut descended = false;
            let mut k = level.next_candidate;
            while k < candidates.len() {
                let c = candidates[k];
                k += 1;
                let Act::Cas(from, _) = self.class_act[c as usize] else {
                    continue;
                };
                if self.available(c, now) && path.iter().all(|l| l.value != from) {
                    let depth = path.len() - 1;
                    path[depth].next_candidate = k;
                    path.push(Level {
                        value: from,
                        via: c,
                        next_candidate: 0,
                    });
                    entered = true;
                    descended = true;
                    break;
                }
            }
            if !descended {
                path.pop();
            }
        }
    }

    fn push_chain(&mut self, write: Option<u32>, cas_steps: &[u32]) {
        self.chains
            .push(to_u32(cas_steps.len() + usize::from(write.is_some())));
        self.chains.extend(write);
        self.chains.extend_from_slice(cas_steps);
    }
}
