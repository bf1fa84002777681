//! What a deploy is asked to do: the stages in order, resolved from the configuration and the
//! command line. Plain data.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::version::Version;

/// Whether a stage may be entered without a person's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Entered as soon as the previous stage succeeded.
    Auto,
    /// Entered only with `--approve STAGE`.
    Manual,
}

/// What an `unknown` health verdict means during the bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// Counts as a failure.
    Fail,
    /// Counts as a success.
    Pass,
    /// Counts as neither; the bake goes on checking.
    Wait,
}

/// The bake of a stage: health checks every `interval` for `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BakePlan {
    /// Health plugins to run at each interval.
    pub checks: Vec<String>,
    /// How long the stage must stay healthy.
    pub duration: Duration,
    /// Time between two rounds of checks.
    pub interval: Duration,
    /// Wait before the first round.
    pub initial_delay: Duration,
    /// Failed rounds tolerated; the bake fails when failures exceed it.
    pub failure_limit: u32,
    /// Check errors (a plugin that crashed or errored) in a row tolerated.
    pub consecutive_error_limit: u32,
    /// What `unknown` means.
    pub unknown: UnknownPolicy,
}

/// Whether a run may deploy a version older than the one live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Downgrade {
    /// Refused (the default): newer never loses to older.
    #[default]
    Refused,
    /// Allowed (`--allow-downgrade`), but not below the environment's post-deployment
    /// migration watermark.
    Allowed,
    /// Allowed below the watermark too (`--allow-downgrade --force`), as `tagship rollback
    /// --force` allows it.
    BelowWatermark,
}

/// One stage, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// Stage name, e.g. `gstg-cny`.
    pub name: String,
    /// Its environment, e.g. `gstg`.
    pub environment: String,
    /// Auto or manual.
    pub gate: Gate,
    /// True for the first stage of its environment: pre-deployment migrations run here.
    pub first_of_environment: bool,
    /// True for the last stage of its environment: its lock is released after it.
    pub last_of_environment: bool,
    /// True when post-deployment migrations run after this stage.
    pub post_migrations_after: bool,
    /// Plugins (health and compat) that must pass before anything changes.
    pub pre_checks: Vec<String>,
    /// The bake, if any.
    pub bake: Option<BakePlan>,
}

/// A whole deploy run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The component, e.g. `registry`.
    pub component: String,
    /// The version to deploy.
    pub target: Version,
    /// Stages in order.
    pub stages: Vec<StagePlan>,
    /// Manual stages approved for this run (`--approve`).
    pub approved: BTreeSet<String>,
    /// Stop after this stage (`--until`).
    pub until: Option<String>,
    /// Whether deploying below the live version is allowed.
    pub downgrade: Downgrade,
    /// Pre-deployment migrations are configured.
    pub pre_migrations: bool,
    /// Post-deployment migrations are configured.
    pub post_migrations: bool,
    /// How long to wait for an environment's lock held by someone else.
    pub lock_wait: Duration,
    /// The lock's time to live; it is renewed every third of it while the run works.
    pub lock_ttl: Duration,
    /// Identifies this run in events and history.
    pub deploy_id: String,
    /// The CI pipeline running it.
    pub pipeline_url: Option<String>,
    /// The application's version, for compat checks (`--app-version`), when known.
    pub app_version: Option<String>,
}
