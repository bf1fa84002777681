//! The ports the driver acts through. Named for their role; the implementations are named for
//! their technology (`KubeCluster`, `PluginHost`) and live in the adapters.
//!
//! `Err` from a port means infrastructure failed (the API server is unreachable); what a check
//! found is data ([`CheckOutcome`]), never an `Err`.

use crate::context::{DeployContext, EventKind};
use crate::version::Version;

use super::plan::StagePlan;

/// Infrastructure failed; the message names the object and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    message: String,
    permanent: bool,
}

impl PortError {
    /// A failure that may pass (the server is down, overloaded, or the network failed).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure that asking again will not change (a missing namespace, a forbidden verb): a
    /// person must fix something first.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    /// Whether asking again cannot help.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// One workload container (or init container) of a stage as it is live now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadLive {
    /// Kubeconfig context.
    pub cluster: String,
    /// The namespace of the workload.
    pub namespace: String,
    /// `deployment/container`, for messages.
    pub name: String,
    /// The full image reference live now.
    pub image: String,
    /// The component version its image carries; `None` when the tag is not one of ours.
    pub version: Option<Version>,
    /// The version tagship recorded as previous when it last applied (annotation).
    pub previous: Option<Version>,
    /// The rollout is complete by kubectl's rule.
    pub complete: bool,
    /// Its Deployment is paused (`kubectl rollout pause`): a change would not roll out.
    pub paused: bool,
    /// Another field manager (Helm, kubectl, a controller) set its image after tagship's
    /// deploy: what it serves, who set it and when, against what tagship deployed.
    pub drift: Option<String>,
}

/// A stage as it is live now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StageLive {
    /// Every workload container of every cluster of the stage.
    pub workloads: Vec<WorkloadLive>,
}

impl StageLive {
    /// The clusters the stage's workloads were read in, each once, in the order read.
    pub fn clusters(&self) -> Vec<&str> {
        let mut clusters: Vec<&str> = Vec::new();
        for w in &self.workloads {
            if !clusters.contains(&w.cluster.as_str()) {
                clusters.push(&w.cluster);
            }
        }
        clusters
    }
}

/// Who holds a lock (one type for the whole crate).
pub use crate::holder::Holder;

/// The result of one attempt to take an environment's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// Ours now (or already).
    Acquired,
    /// Someone else has it.
    Held(Holder),
}

/// How a rollout or a migration Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Done.
    Succeeded,
    /// Failed, with the reason the cluster gave (e.g. `ProgressDeadlineExceeded`).
    Failed(String),
}

/// Which migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// Before the apply, in the first stage of an environment.
    Pre,
    /// After the configured stage is healthy.
    Post,
}

/// What one check said.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// Passed.
    Pass,
    /// Failed, with the reason.
    Fail(String),
    /// Could not decide (no data).
    Unknown(String),
    /// The check itself could not run (plugin crashed, errored, was denied).
    Errored(String),
}

/// One check's name and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The plugin's name.
    pub check: String,
    /// The cluster (kubeconfig context) it was asked about; `None` for a check of the whole
    /// stage (one with no workload read).
    pub cluster: Option<String>,
    /// What it said.
    pub outcome: CheckOutcome,
}

impl CheckResult {
    /// The check as messages name it: `` `health` `` or `` `health` in `local-2` ``.
    pub fn subject(&self) -> String {
        match &self.cluster {
            Some(cluster) => format!("`{}` in `{cluster}`", self.check),
            None => format!("`{}`", self.check),
        }
    }
}

/// One line of a stage's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryRecord {
    /// The deploy run.
    pub deploy_id: String,
    /// What happened: `deployed`, `rolled-back`, `failed`.
    pub action: &'static str,
    /// The version live after it.
    pub version: String,
    /// The version before it.
    pub previous: Option<String>,
    /// Why, for failures and rollbacks.
    pub reason: Option<String>,
    /// The pipeline.
    pub pipeline_url: Option<String>,
}

/// One container image an apply changes (or would change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    /// Kubeconfig context.
    pub cluster: String,
    /// The Deployment.
    pub workload: String,
    /// The container (or init container).
    pub container: String,
    /// Its image now.
    pub before: String,
    /// Its image after the apply.
    pub after: String,
}

/// What an apply of a stage would change, as the server accepted it in a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplyPreview {
    /// Every image that would change, per cluster, workload and container.
    pub changes: Vec<ImageChange>,
    /// The annotations the apply writes on each Deployment.
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A migration Job as it would run: its pod as people check it (no values of env variables:
/// they may be secrets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobPreview {
    /// Kubeconfig context it runs in.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// The Job's name.
    pub name: String,
    /// The workload and container whose pod it runs in, `deployment/container`.
    pub from: String,
    /// The container's image.
    pub image: String,
    /// Command and arguments.
    pub command: Vec<String>,
    /// Init containers, `name (image)`.
    pub init_containers: Vec<String>,
    /// Environment variables by name, with where their value comes from (e.g. from secret
    /// `registry-db` key `password`), never the value.
    pub env: Vec<String>,
    /// Volumes, `name (kind source) at mount path`.
    pub volumes: Vec<String>,
    /// Its service account, when the pod names one.
    pub service_account: Option<String>,
}

/// The workloads of a stage, in all its clusters: read, apply (or validate an apply), and wait
/// for the rollout.
#[allow(
    async_fn_in_trait,
    reason = "used through generics only, never as a trait object"
)]
pub trait Workloads {
    /// Reads every workload of the stage (all its clusters).
    async fn live(&self, stage: &StagePlan) -> Result<StageLive, PortError>;
    /// Applies `version` to every workload of the stage (all clusters), recording `previous`.
    async fn apply(
        &self,
        stage: &StagePlan,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<(), PortError>;
    /// Validates the apply of `version` with the server's dry run (every workload, every
    /// cluster of the stage) and says what it would change; stores nothing.
    async fn validate_apply(
        &self,
        stage: &StagePlan,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<ApplyPreview, PortError>;
    /// Waits until every workload of the stage has rolled out, or one failed.
    async fn wait_rollout(&self, stage: &StagePlan) -> Result<Completion, PortError>;
}

/// The deploy lock of each environment.
#[allow(
    async_fn_in_trait,
    reason = "used through generics only, never as a trait object"
)]
pub trait Locks {
    /// One attempt to take (or renew) the environment's lock.
    async fn try_lock(&self, environment: &str) -> Result<LockAttempt, PortError>;
    /// Releases the environment's lock if this run holds it.
    async fn unlock(&self, environment: &str) -> Result<(), PortError>;
}

/// Database migrations: the Jobs that run them, and the watermark of the post-deployment ones.
#[allow(
    async_fn_in_trait,
    reason = "used through generics only, never as a trait object"
)]
pub trait Migrations {
    /// Runs migrations with `version`'s image in the stage and waits for them.
    async fn migrate(
        &self,
        stage: &StagePlan,
        kind: Migration,
        version: &Version,
    ) -> Result<Completion, PortError>;
    /// The migration Job `kind` would run in the stage for `version` (`None`: none is
    /// configured); with `validate`, the API server checks it with a dry run. Runs nothing.
    async fn migration_job(
        &self,
        stage: &StagePlan,
        kind: Migration,
        version: &Version,
        validate: bool,
    ) -> Result<Option<JobPreview>, PortError>;
    /// The environment's post-deployment migration watermark.
    async fn watermark(&self, environment: &str) -> Result<Option<Version>, PortError>;
    /// Sets the environment's watermark.
    async fn set_watermark(&self, environment: &str, version: &Version) -> Result<(), PortError>;
}

/// Each stage's history of deploys and rollbacks.
#[allow(
    async_fn_in_trait,
    reason = "used through generics only, never as a trait object"
)]
pub trait Ledger {
    /// Appends to the stage's history.
    async fn record(&self, stage: &StagePlan, record: HistoryRecord) -> Result<(), PortError>;
    /// Appends `record` unless the newest entry of the stage's history already says its
    /// version is live; `Ok(true)` when it appended.
    async fn record_if_missing(
        &self,
        stage: &StagePlan,
        record: HistoryRecord,
    ) -> Result<bool, PortError>;
}

/// Everything a deploy asks of the clusters of its stages: one port per capability (as
/// wasmtime-wasi has one host trait per interface), so code that needs one names only it
/// (the lock, [`super::EnvironmentLock`], needs [`Locks`]); a deploy or a rollback needs all.
pub trait Cluster: Workloads + Locks + Migrations + Ledger {}

impl<T: Workloads + Locks + Migrations + Ledger> Cluster for T {}

/// Health and compat checks.
#[allow(async_fn_in_trait, reason = "used through generics only")]
pub trait Checks {
    /// Runs each named check for the stage; one result per name, in order.
    async fn run(
        &self,
        stage: &StagePlan,
        checks: &[String],
        ctx: &DeployContext,
    ) -> Vec<CheckResult>;
}

/// Notifiers. Never fails and never blocks the deploy: a delivery failure is logged inside.
#[allow(async_fn_in_trait, reason = "used through generics only")]
pub trait Notify {
    /// Sends one event to the notifiers configured for its stage (or all, without a stage).
    async fn send(
        &self,
        stage: Option<&StagePlan>,
        kind: EventKind,
        ctx: &DeployContext,
        message: &str,
    );
}

/// A phase of a stage's work, for sections, progress and the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for and holding the environment's lock.
    Lock,
    /// Pre-checks.
    PreChecks,
    /// Pre-deployment migrations.
    PreMigrations,
    /// The server-side apply and the rollout.
    Rollout,
    /// The bake: health checks for `duration`.
    Bake {
        /// How long the bake lasts, from its beginning: its initial delay and its duration.
        duration: std::time::Duration,
    },
    /// Rolling back.
    Rollback,
    /// Post-deployment migrations.
    PostMigrations,
}

impl Phase {
    /// Its name in reports, e.g. `pre-checks`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Lock => "lock",
            Phase::PreChecks => "pre-checks",
            Phase::PreMigrations => "pre-deployment migrations",
            Phase::Rollout => "rollout",
            Phase::Bake { .. } => "bake",
            Phase::Rollback => "rollback",
            Phase::PostMigrations => "post-deployment migrations",
        }
    }
}

/// How a round of the bake is labelled everywhere (lines, reports, progress): its time since
/// the bake began, of the bake's whole length (`bake 10s/40s`), in whole seconds.
#[must_use]
pub fn bake_label(at: std::time::Duration, total: std::time::Duration) -> String {
    format!("bake {}s/{}s", at.as_secs(), total.as_secs())
}

/// How a stage ended in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageEnd {
    /// This run deployed it.
    Deployed,
    /// It already served the target.
    AlreadyThere,
    /// The run stopped in it (the run's outcome says why).
    Stopped,
}

/// What the run reports as it goes (terminal, CI log, JSON report).
pub trait Reporter {
    /// One step, as it happens.
    fn step(&self, stage: Option<&str>, message: &str);
    /// A phase of `stage` begins (it lasts until the next phase or the stage's end).
    fn phase(&self, _stage: &str, _phase: Phase) {}
    /// The results of one round of checks of `stage`, in `phase`. `at`: for a round of the
    /// bake, its time since the bake began (initial delay included), as [`bake_label`] shows it;
    /// `None` for pre-checks.
    fn checked(
        &self,
        _stage: &str,
        _phase: Phase,
        _at: Option<std::time::Duration>,
        _results: &[CheckResult],
    ) {
    }
    /// `stage` is over; the next step belongs to another stage.
    fn stage_done(&self, _stage: &str, _end: StageEnd) {}
}
