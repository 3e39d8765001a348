//! What converge's own reference node (`converge node --stdio`, and the simulator, which runs the
//! same face in process) serves of the harness's workloads.
//!
//! Invariant: [`NOT_YET_IN_REFERENCE`] is the one place that says which workloads the reference
//! lacks, and it agrees with the reference's own table of workloads (checked below), so a
//! workload the reference gains is switched on here with a one-line change.

/// The harness's workloads that the reference node does not serve yet. `converge certify
/// --suite` on the reference, and `converge sim`, leave them out of their defaults and refuse them
/// by name, rather than fail the reference for a workload it was never given. Empty since the
/// reference gained `bounded-counter` (issue 14): it serves every workload the harness has.
pub const NOT_YET_IN_REFERENCE: &[&str] = &[];

/// Whether the reference node serves `workload` (see [`NOT_YET_IN_REFERENCE`]).
pub fn serves(workload: &str) -> bool {
    !NOT_YET_IN_REFERENCE.contains(&workload)
}

/// Why the reference cannot run `workload`, for the command line's error.
pub fn lacks(workload: &str) -> String {
    format!("converge's reference node does not serve the {workload} workload yet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use converge_conformance::harness::workload::WORKLOADS;

    /// The list names exactly the harness's workloads that the reference's face lacks. When the
    /// harness gains a workload the reference does not serve, this fails until the list names
    /// it; when the reference gains it, until the list loses it.
    #[test]
    fn not_yet_in_reference_names_exactly_the_workloads_the_reference_face_lacks() {
        use converge_node::maelstrom::Workload;
        for w in WORKLOADS {
            assert_eq!(
                serves(w),
                Workload::from_name(w).is_some(),
                "{w}: NOT_YET_IN_REFERENCE disagrees with the reference's face"
            );
        }
        for w in NOT_YET_IN_REFERENCE {
            assert!(WORKLOADS.contains(w), "{w} is no harness workload");
        }
    }
}
