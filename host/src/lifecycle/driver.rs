//! The async driver: performs the decisions of [`super::decide`] and [`super::bake`] through the
//! ports, stage by stage, and says how the run ended.
//!
//! This file holds the stage loop and the steps of one stage; the rest of a run has a file each:
//! the environment lock as the run takes and holds it (`hold`), the pre-checks, watermark and
//! bake (`checks`), the automatic rollback and how failures are told (`revert`, whose
//! apply-and-wait the on-demand [`super::rollback`] shares), and the post-deployment migrations
//! and history records (`ledger`).
//!
//! # Guarantees
//! - Nothing changes in a stage before its lock is held and its pre-checks passed.
//! - The lock is renewed while a stage works; if it is lost, the run stops changing the cluster.
//! - Every lock this run took is released when it returns, whatever the outcome.
//! - A failed rollout or bake rolls back to the previous version, unless post-deployment
//!   migrations forbid it; then the run says so and stops.

mod checks;
mod hold;
mod ledger;
mod revert;

use crate::context::{DeployContext, EventKind, WorkloadVersion};
use crate::exit::Outcome;
use crate::version::Version;

use super::decide::{self, StageAction};
use super::plan::{Plan, StagePlan};
use super::ports::{
    Checks, Cluster, Completion, Holder, Migration, Notify, Phase, PortError, Reporter, StageEnd,
    StageLive,
};

/// How a deploy run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    /// Every stage serves the target (or the run stopped after `--until`).
    Done {
        /// Stages this run deployed.
        deployed: Vec<String>,
        /// Stages already at the target.
        skipped: Vec<String>,
    },
    /// Stopped before a manual stage.
    AwaitingApproval {
        /// The stage waiting.
        stage: String,
    },
    /// Stopped before changing anything in `stage`.
    Blocked {
        /// The stage.
        stage: String,
        /// Why.
        reason: String,
    },
    /// Someone else held the environment's lock for longer than the run would wait.
    LockTimeout {
        /// The environment.
        environment: String,
        /// Who held it.
        holder: Holder,
    },
    /// The stage failed; it was rolled back where a rollback was due.
    Failed {
        /// The stage.
        stage: String,
        /// Why.
        reason: String,
        /// The version serving again, when rolled back.
        rolled_back_to: Option<Version>,
    },
    /// A rollback failed or was refused: a human must act.
    RollbackFailed {
        /// The stage.
        stage: String,
        /// Why.
        reason: String,
    },
}

impl DeployOutcome {
    /// The documented exit outcome.
    pub fn outcome(&self) -> Outcome {
        match self {
            DeployOutcome::Done { .. } | DeployOutcome::AwaitingApproval { .. } => Outcome::Done,
            DeployOutcome::Blocked { .. } => Outcome::Blocked,
            DeployOutcome::LockTimeout { .. } => Outcome::LockTimeout,
            DeployOutcome::Failed { .. } => Outcome::Failed,
            DeployOutcome::RollbackFailed { .. } => Outcome::RollbackFailed,
        }
    }
}

/// Runs `plan` to its outcome through the ports.
pub async fn deploy<C: Cluster, K: Checks, N: Notify, R: Reporter>(
    plan: &Plan,
    cluster: &C,
    checks: &K,
    notify: &N,
    reporter: &R,
) -> DeployOutcome {
    let mut run = Run {
        plan,
        cluster,
        checks,
        notify,
        reporter,
        locked: None,
    };
    let start_ctx = run.context(None, None, &StageLive::default());
    notify
        .send(
            None,
            EventKind::DeployStarted,
            &start_ctx,
            &format!("deploying {} {}", plan.component, plan.target),
        )
        .await;
    let outcome = run.stages().await;
    run.release().await;
    let (kind, message) = match &outcome {
        DeployOutcome::Done { .. } => (
            EventKind::DeploySucceeded,
            format!("{} {} deployed", plan.component, plan.target),
        ),
        DeployOutcome::AwaitingApproval { stage } => (
            EventKind::AwaitingApproval,
            format!(
                "`{stage}` awaits approval: {}",
                approve_command(plan, stage)
            ),
        ),
        DeployOutcome::Blocked { stage, reason } => (
            EventKind::DeployFailed,
            format!("blocked before `{stage}`: {reason}"),
        ),
        DeployOutcome::LockTimeout {
            environment,
            holder,
        } => (
            EventKind::DeployFailed,
            format!("the lock of `{environment}` is held by {holder}"),
        ),
        DeployOutcome::Failed { stage, reason, .. } => (
            EventKind::DeployFailed,
            format!("`{stage}` failed: {reason}"),
        ),
        DeployOutcome::RollbackFailed { stage, reason } => (
            EventKind::DeployFailed,
            format!("`{stage}` needs a human: {reason}"),
        ),
    };
    // The run's last event names the stage it stopped in, when it stopped in one.
    let stopped_in = match &outcome {
        DeployOutcome::AwaitingApproval { stage }
        | DeployOutcome::Blocked { stage, .. }
        | DeployOutcome::Failed { stage, .. }
        | DeployOutcome::RollbackFailed { stage, .. } => {
            plan.stages.iter().find(|s| s.name == *stage)
        }
        DeployOutcome::LockTimeout { environment, .. } => {
            plan.stages.iter().find(|s| s.environment == *environment)
        }
        DeployOutcome::Done { .. } => None,
    };
    let end_ctx = run.context(stopped_in, None, &StageLive::default());
    notify.send(None, kind, &end_ctx, &message).await;
    outcome
}

/// The command that continues a run stopped before `stage`: the command line the run was
/// started with (its configuration and every flag) plus `--approve STAGE`.
pub fn approve_command(plan: &Plan, stage: &str) -> String {
    let run = if plan.command.is_empty() {
        let target = plan.target.to_string();
        super::plan::CommandLine::new(["deploy", "--version", target.as_str()])
    } else {
        plan.command.clone()
    };
    run.with(&["--approve", stage]).to_string()
}

pub(super) struct Run<'a, C, K, N, R> {
    pub(super) plan: &'a Plan,
    pub(super) cluster: &'a C,
    pub(super) checks: &'a K,
    pub(super) notify: &'a N,
    pub(super) reporter: &'a R,
    /// The environment whose lock this run holds.
    pub(super) locked: Option<String>,
}

/// Why a stage did not finish; turned into a [`DeployOutcome`] by the stage loop.
type StageResult = Result<StageEnd, DeployOutcome>;

/// A stage to deploy, as re-read once its environment's lock is held.
struct Relocked {
    /// The version it served before (none: nothing of ours ran).
    previous: Option<Version>,
    /// The target is already applied (an earlier run stopped during its rollout): wait for the
    /// rollout instead of changing anything before it.
    resume: bool,
    /// The stage as read.
    live: StageLive,
}

impl<C: Cluster, K: Checks, N: Notify, R: Reporter> Run<'_, C, K, N, R> {
    async fn stages(&mut self) -> DeployOutcome {
        let mut deployed = Vec::new();
        let mut skipped = Vec::new();
        for stage in &self.plan.stages {
            let result = self.stage(stage).await;
            let end = match &result {
                Ok(end) => *end,
                Err(_) => StageEnd::Stopped,
            };
            self.reporter.stage_done(&stage.name, end);
            match result {
                Ok(StageEnd::Deployed) => deployed.push(stage.name.clone()),
                Ok(_) => skipped.push(stage.name.clone()),
                Err(outcome) => return outcome,
            }
            if stage.last_of_environment {
                self.release().await;
            }
            if self.plan.until.as_deref() == Some(stage.name.as_str()) {
                self.reporter
                    .step(Some(&stage.name), "stopping here as asked (--until)");
                break;
            }
        }
        DeployOutcome::Done { deployed, skipped }
    }

    /// One stage: [`StageEnd::Deployed`] when this run deployed it, [`StageEnd::AlreadyThere`]
    /// when it was already done.
    async fn stage(&mut self, stage: &StagePlan) -> StageResult {
        let live = self
            .cluster
            .live(stage)
            .await
            .map_err(|e| DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!("cannot read the stage; nothing was changed: {e}"),
            })?;
        match decide::stage_action(self.plan, stage, &live) {
            StageAction::Skip => {
                self.reporter.step(
                    Some(&stage.name),
                    &format!("already serving {}, nothing to do", self.plan.target),
                );
                self.ensure_recorded(stage, &live).await;
                // A run that applied the stage may have stopped before (or failed in) its
                // post-deployment migrations: they change the database, so under the lock too.
                if self.post_migrations_pending(stage).await? {
                    self.lock(stage).await?;
                    self.hold(stage, self.post_migrations_if_due(stage, &live))
                        .await?;
                }
                Ok(StageEnd::AlreadyThere)
            }
            StageAction::RefuseDowngrade { live: newer } => Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!(
                    "{newer} is live, newer than {}; deploying an older version needs --allow-downgrade (or use `tagship rollback`)",
                    self.plan.target
                ),
            }),
            StageAction::RefusePaused {
                cluster,
                namespace,
                workload,
            } => Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: decide::paused_reason(&cluster, &namespace, &workload),
            }),
            StageAction::RefuseUnknown { unreadable } => Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!(
                    "{unreadable}, so it may run something newer than {}; deploying over it needs --allow-downgrade",
                    self.plan.target
                ),
            }),
            StageAction::AwaitApproval => {
                self.reporter.step(
                    Some(&stage.name),
                    &format!(
                        "awaiting approval; continue with: {}",
                        approve_command(self.plan, &stage.name)
                    ),
                );
                Err(DeployOutcome::AwaitingApproval {
                    stage: stage.name.clone(),
                })
            }
            StageAction::Deploy { .. } => {
                self.lock(stage).await?;
                let work = self.deploy_stage(stage);
                self.hold(stage, work).await
            }
        }
    }

    async fn deploy_stage(&self, stage: &StagePlan) -> StageResult {
        let Some(relocked) = self.after_lock(stage).await? else {
            return Ok(StageEnd::AlreadyThere);
        };
        let Relocked {
            previous,
            resume,
            live,
        } = relocked;
        self.watermark_allows(stage, &live).await?;
        self.report_drift(stage, &live);
        let ctx = self.context(Some(stage), previous.as_ref(), &live);
        let from = previous
            .as_ref()
            .map_or_else(|| "nothing".to_owned(), ToString::to_string);
        self.notify
            .send(
                Some(stage),
                EventKind::StageStarted,
                &ctx,
                &format!("{from} → {}", self.plan.target),
            )
            .await;

        if resume {
            self.reporter.step(
                Some(&stage.name),
                "resuming: the target is already applied, waiting for its rollout",
            );
        } else {
            self.before_change(stage, &ctx).await?;
        }

        self.reporter.phase(&stage.name, Phase::Rollout);
        self.reporter
            .step(Some(&stage.name), &format!("applying {}", self.plan.target));
        // An apply that failed part-way (one cluster or Deployment refused) may have left the
        // stage on two versions: it is rolled back like a failed rollout (an apply of the
        // previous version changes only what the failed apply changed).
        if let Err(e) = self
            .cluster
            .apply(stage, &self.plan.target, previous.as_ref())
            .await
        {
            return Err(self.apply_failed(stage, &ctx, previous.as_ref(), &e).await);
        }
        match self.cluster.wait_rollout(stage).await {
            Ok(Completion::Succeeded) => self.reporter.step(Some(&stage.name), "rollout complete"),
            Ok(Completion::Failed(why)) => {
                return Err(self
                    .roll_back(
                        stage,
                        &ctx,
                        previous.as_ref(),
                        format!("rollout failed: {why}"),
                    )
                    .await);
            }
            Err(e) => {
                return Err(self
                    .roll_back(stage, &ctx, previous.as_ref(), format!("rollout: {e}"))
                    .await);
            }
        }
        if let Some(bake) = &stage.bake
            && let Err(why) = self
                .bake(stage, bake, &self.rolled_out(stage, &ctx).await)
                .await
        {
            return Err(self
                .roll_back(
                    stage,
                    &ctx,
                    previous.as_ref(),
                    format!("bake failed: {why}"),
                )
                .await);
        }
        self.record(
            stage,
            "deployed",
            &self.plan.target,
            previous.as_ref(),
            None,
        )
        .await;
        self.notify
            .send(
                Some(stage),
                EventKind::StageSucceeded,
                &ctx,
                &format!("serving {}", self.plan.target),
            )
            .await;
        self.reporter
            .step(Some(&stage.name), &format!("serving {}", self.plan.target));
        self.post_migrations_if_due(stage, &live).await?;
        Ok(StageEnd::Deployed)
    }

    /// Says which workloads drifted from what tagship applied (someone changed them since):
    /// the apply puts the target back.
    fn report_drift(&self, stage: &StagePlan, live: &StageLive) {
        for w in live.workloads.iter().filter(|w| w.drift.is_some()) {
            self.reporter.step(
                Some(&stage.name),
                &format!(
                    "drift: `{}` in `{}` {}; applying {} again",
                    w.name,
                    w.cluster,
                    w.drift.as_deref().unwrap_or_default(),
                    self.plan.target
                ),
            );
        }
    }

    /// Pre-checks, then pre-deployment migrations where due: everything before the apply.
    async fn before_change(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
    ) -> Result<(), DeployOutcome> {
        self.pre_checks(stage, ctx).await?;
        if stage.first_of_environment && self.plan.pre_migrations {
            self.reporter.phase(&stage.name, Phase::PreMigrations);
            self.reporter
                .step(Some(&stage.name), "running pre-deployment migrations");
            match self
                .cluster
                .migrate(stage, Migration::Pre, &self.plan.target)
                .await
            {
                Ok(Completion::Succeeded) => {}
                Ok(Completion::Failed(why)) => {
                    let reason =
                        format!("pre-deployment migrations failed: {why}; nothing was applied");
                    return Err(self.stage_failed(stage, ctx, reason).await);
                }
                Err(e) => return Err(Self::port_failed(stage, &e)),
            }
        }
        Ok(())
    }
}

/// What needs neither checks nor notifiers: the on-demand rollback shares these with a deploy.
impl<C, K, N, R> Run<'_, C, K, N, R> {
    /// A port could not be asked (a cluster did not answer): the stage failed with that error and
    /// nothing is rolled back, since the failure says nothing about the new version's health.
    pub(in crate::lifecycle) fn port_failed(stage: &StagePlan, error: &PortError) -> DeployOutcome {
        DeployOutcome::Failed {
            stage: stage.name.clone(),
            reason: error.to_string(),
            rolled_back_to: None,
        }
    }

    pub(in crate::lifecycle) fn context(
        &self,
        stage: Option<&StagePlan>,
        previous: Option<&Version>,
        live: &StageLive,
    ) -> DeployContext {
        context_for(self.plan, stage, previous, live)
    }
}

/// The context plugins receive for `stage` (none: the whole deploy) of `plan`.
pub fn context_for(
    plan: &Plan,
    stage: Option<&StagePlan>,
    previous: Option<&Version>,
    live: &StageLive,
) -> DeployContext {
    DeployContext {
        component: plan.component.clone(),
        version: plan.target.to_string(),
        previous_version: previous.map(ToString::to_string),
        stage: stage.map(|s| s.name.clone()).unwrap_or_default(),
        environment: stage.map(|s| s.environment.clone()).unwrap_or_default(),
        pipeline_url: plan.pipeline_url.clone(),
        workloads: live
            .workloads
            .iter()
            .map(|w| {
                let (workload, container) = w.name.split_once('/').unwrap_or((w.name.as_str(), ""));
                WorkloadVersion {
                    cluster: w.cluster.clone(),
                    namespace: w.namespace.clone(),
                    workload: workload.to_owned(),
                    container: container.to_owned(),
                    image: w.image.clone(),
                    version: w.version.as_ref().map(ToString::to_string),
                }
            })
            .collect(),
        app_version: plan.app_version.clone(),
    }
}

pub use checks::check_per_cluster;

#[cfg(test)]
mod tests;
