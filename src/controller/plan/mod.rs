//! The plan step: the decisions of one reconcile, computed once from the spec
//! and the snapshot. The builder gets [`Planned::plan`]; the status gets
//! [`Planned::rollout`], so both see the same migration phase and first-rollout state.

pub mod primary;
mod rollout;
mod secrets;

pub use rollout::{MigrationPhase, current_image, ready_replicas};
pub use secrets::lost_message as lost_credentials;

use super::observe::Snapshot;
use crate::api::WebCluster;
use crate::desired::Plan;

/// The plan of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// What the builder needs.
    pub plan: Plan,
    /// Where the rollout stands, for the status.
    pub rollout: Rollout,
}

/// Where the app's rollout stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollout {
    /// The migration of `spec.app.image`.
    pub migration: MigrationPhase,
    /// The app Deployment does not exist yet or still waits for its first rollout.
    pub first_rollout_pending: bool,
}

/// Plans one reconcile: generated values completed (new ones drawn once; none
/// while values are lost and their Secrets withheld), then the rollout decisions.
pub fn plan(cluster: &WebCluster, snapshot: &Snapshot) -> Planned {
    let generated = secrets::complete(cluster, &snapshot.credentials);
    let withhold = generated.is_none();
    let mut planned = rollout::decide(cluster, snapshot, generated.unwrap_or_default());
    planned.plan.withhold_credentials = withhold;
    planned
}
