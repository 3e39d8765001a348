//! The loop's fault windows: drawing a fault and applying it (a partition, a kill aimed at the
//! node's next acknowledged update, a pause, moved clocks), and healing everything at the end of
//! the window.
//!
//! Invariants: every choice comes from the fault stream, so the same seed and schedule give the
//! same faults; a window that drew a kill always kills; healing restarts every killed node (and
//! sends it its setup again), resumes every paused one and undoes every clock move.

use super::{ArmedKill, Loop, Pending, kill_aim_ms};
use crate::harness::history::FaultWindow;
use crate::harness::nemesis::{Fault, clock_plan, partition};
use crate::harness::report::FaultSpan;

impl Loop<'_> {
    /// Alternates fault windows and healthy windows: each fault window applies one of the
    /// windowed faults, drawn from the fault stream.
    pub(super) fn toggle_fault(&mut self) {
        if self.faulty {
            self.heal_all();
            return;
        }
        let kinds: Vec<Fault> = self
            .config
            .faults
            .iter()
            .copied()
            .filter(|f| f.windowed())
            .collect();
        let n = self.config.nodes;
        match kinds[self.fault_dice.below(kinds.len() as u64) as usize] {
            Fault::Kill => {
                let node = self.fault_dice.below(n as u64) as usize;
                self.faults_applied.push(format!("kill:n{node}"));
                // The kill lands right after the node next acknowledges an update, or at the
                // aim bound: a random moment in a quiet node's life is usually one with nothing
                // in flight, while the moment after an acknowledgement is the one where a node
                // that acknowledges before replicating or persisting holds a write nobody else
                // has. A correct node has already written what makes the write survive (its
                // messages to peers precede its reply on its output, and the harness has them).
                let by_ms = self.backend.now_ms() + kill_aim_ms(self.config.fault_window_ms);
                self.armed_kill = Some(ArmedKill { node, by_ms });
            }
            Fault::Pause => {
                let node = self.fault_dice.below(n as u64) as usize;
                self.faults_applied.push(format!("pause:n{node}"));
                self.nodes[node].paused = true;
                self.backend.pause(node);
            }
            Fault::Clock => {
                let plan = clock_plan(n, &mut self.fault_dice);
                self.faults_applied.push(plan.name());
                let changes = self.clock.begin(&plan, self.backend.now_ms());
                self.set_clocks(changes);
            }
            _ => {
                let p = partition(n, &mut self.fault_dice);
                self.faults_applied.push(format!("partition:{}", p.kind));
                self.net.cut_links(p.cut);
                self.partitioned = true;
            }
        }
        self.faulty = true;
        let now = self.backend.now_ms();
        self.fault_spans.push(FaultSpan {
            fault: self.faults_applied.last().cloned().unwrap_or_default(),
            start_ms: now.saturating_sub(self.main_start_ms),
            end_ms: now.saturating_sub(self.main_start_ms),
        });
        // The window is recorded for reports and diagrams; it starts after the last observation.
        self.history.faults.push(FaultWindow {
            fault: self.faults_applied.last().cloned().unwrap_or_default(),
            after_seq: self.seq,
            healed_after_seq: None,
        });
    }

    /// Draws the rolling upgrade: which nodes get the other build, in which order (a stream of
    /// its own, so upgrades never shift the fault draws), each at an even share of the main
    /// phase. At most `nodes - 1`: one node keeps the first build to the end.
    pub(super) fn plan_upgrades(&mut self) {
        let n = self.config.nodes;
        let count = self.config.upgrades.min(n.saturating_sub(1));
        if count == 0 {
            return;
        }
        let mut dice = crate::harness::rng::SeededDice::fork(self.config.seed, 7);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = dice.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let share = self.config.time_limit_ms / (count as u64 + 1);
        for (k, &node) in order.iter().take(count).enumerate() {
            self.upgrade_plan
                .push_back((self.main_start_ms + share * (k as u64 + 1), node));
        }
    }

    /// Replaces node `node` by the other build on its data: the backend switches it, then it is
    /// killed and started again at once (a rolling upgrade keeps each node's downtime short). A
    /// node the nemesis killed restarts with the new build when its window heals.
    pub(super) fn upgrade(&mut self, node: usize) {
        if let Err(e) = self.backend.upgrade(node) {
            return self.note_backend_error(e);
        }
        let name = format!("upgrade:n{node}");
        let now = self.backend.now_ms().saturating_sub(self.main_start_ms);
        self.faults_applied.push(name.clone());
        // An instant in the diagrams and reports, not a window.
        self.fault_spans.push(FaultSpan {
            fault: name.clone(),
            start_ms: now,
            end_ms: now,
        });
        self.history.faults.push(FaultWindow {
            fault: name,
            after_seq: self.seq,
            healed_after_seq: Some(self.seq),
        });
        if self.nodes[node].killed {
            return;
        }
        if std::mem::take(&mut self.nodes[node].paused) {
            self.backend.resume(node);
        }
        self.backend.kill(node);
        self.restart(node);
    }

    /// Starts node `node` again: a fresh `init`, then its setup (broadcast's topology), which a
    /// restarted node has lost with everything else.
    fn restart(&mut self, node: usize) {
        if !self.start_node(node) {
            return;
        }
        for (to, mut body) in self.workload.setup(&self.ids) {
            if to == node {
                let id = self.msg_id();
                body.msg_id = Some(id);
                self.pending
                    .insert(id, (Pending::Setup(node), self.backend.now_ms()));
                self.send_from_client("c-init", node, body);
            }
        }
    }

    /// Deals the armed kill, if any.
    pub(super) fn fire_kill(&mut self) {
        if let Some(ArmedKill { node, .. }) = self.armed_kill.take() {
            self.nodes[node].killed = true;
            self.backend.kill(node);
        }
    }

    /// Ends every fault: heals the network, resumes paused nodes, restarts killed ones.
    pub(super) fn heal_all(&mut self) {
        // A kill still waiting for its moment when the window closes is dealt now, so a window
        // that drew a kill always kills (the aim bound is far shorter than a window, so this
        // only happens when the main phase ends early).
        self.fire_kill();
        // The window closes before restarted nodes get their new `init`, which is observed after.
        // The window to close is the last one opened; upgrades, recorded as instants in the
        // same lists, are passed over.
        let is_window = |fault: &str| !fault.starts_with("upgrade:");
        if let Some(window) = self
            .history
            .faults
            .iter_mut()
            .rev()
            .find(|w| is_window(&w.fault))
            && window.healed_after_seq.is_none()
        {
            window.healed_after_seq = Some(self.seq);
        }
        if self.faulty
            && let Some(span) = self
                .fault_spans
                .iter_mut()
                .rev()
                .find(|s| is_window(&s.fault))
        {
            span.end_ms = self.backend.now_ms().saturating_sub(self.main_start_ms);
        }
        self.net.heal();
        self.partitioned = false;
        let changes = self.clock.heal();
        self.set_clocks(changes);
        for node in 0..self.config.nodes {
            if std::mem::take(&mut self.nodes[node].paused) {
                self.backend.resume(node);
            }
            if std::mem::take(&mut self.nodes[node].killed) {
                self.restart(node);
            }
        }
        self.faulty = false;
    }

    /// Moves node clocks as the clock nemesis says: `(node, offset in ms)`.
    pub(super) fn set_clocks(&mut self, changes: Vec<(usize, i64)>) {
        for (node, offset_ms) in changes {
            if let Err(e) = self.backend.set_clock_offset(node, offset_ms) {
                self.note_backend_error(e);
            }
        }
    }
}
