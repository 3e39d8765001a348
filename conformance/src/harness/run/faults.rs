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
        if let Some(window) = self.history.faults.last_mut()
            && window.healed_after_seq.is_none()
        {
            window.healed_after_seq = Some(self.seq);
        }
        if self.faulty
            && let Some(span) = self.fault_spans.last_mut()
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
            if std::mem::take(&mut self.nodes[node].killed) && self.start_node(node) {
                // A restarted node has lost its setup (broadcast's topology) with everything
                // else; it gets it again right after its new `init`.
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
