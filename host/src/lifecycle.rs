//! The deploy lifecycle: what a deploy does, stage by stage, and why.
//!
//! Pure decisions live in [`decide`] and [`bake`] (no I/O, no clock, table-tested). The async
//! [`driver`] performs them through the small port traits of [`ports`] (`Cluster`, `Checks`,
//! `Notify`), and re-observes the cluster rather than trusting its memory, so a run killed at
//! any point is finished by running it again.
//!
//! Architecture invariant: this module imports no adapter (no kube, no wasmtime, no HTTP).

pub mod bake;
pub mod decide;
pub mod driver;
pub mod lock;
pub mod notify;
pub mod plan;
pub mod ports;
pub mod preview;
pub mod rollback;
#[cfg(test)]
pub(crate) mod testing;

pub use driver::{DeployOutcome, check_per_cluster, context_for, deploy};
pub use lock::{EnvironmentLock, LockFailure, LockLost};
pub use plan::{
    BakePlan, CommandLine, Downgrade, Gate, Plan, StagePlan, UnknownPolicy, shell_quoted,
};
pub use preview::{Action, StagePreview, preview};
pub use rollback::{RollbackRequest, rollback};
