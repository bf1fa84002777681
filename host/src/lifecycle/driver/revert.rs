//! The automatic rollback: a stage whose apply, rollout or bake failed goes back to the version
//! it served, unless the post-deployment migrations forbid it; and how each failure is told and
//! recorded.

use crate::context::{DeployContext, EventKind};
use crate::lifecycle::decide::{self, RollbackDecision};
use crate::lifecycle::plan::StagePlan;
use crate::lifecycle::ports::{Cluster, Completion, Notify, Phase, PortError, Reporter};
use crate::version::Version;

use super::{DeployOutcome, Run};

impl<C: Cluster, K, N: Notify, R: Reporter> Run<'_, C, K, N, R> {
    pub(super) async fn roll_back(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
        to: Option<&Version>,
        reason: String,
    ) -> DeployOutcome {
        self.reporter.phase(&stage.name, Phase::Rollback);
        self.reporter
            .step(Some(&stage.name), &format!("{reason}; rolling back"));
        self.notify
            .send(Some(stage), EventKind::StageFailed, ctx, &reason)
            .await;
        let watermark = match self.cluster.watermark(&stage.environment).await {
            Ok(mark) => mark,
            Err(e) => {
                let why = format!(
                    "{reason}; rollback not attempted: cannot read the migration watermark: {e}"
                );
                return self
                    .gave_up(stage, ctx, EventKind::RollbackFailed, to, why)
                    .await;
            }
        };
        if let RollbackDecision::Refused(why) =
            decide::rollback_decision(to, watermark.as_ref(), false)
        {
            let why = format!("{reason}; rollback refused: {why}");
            self.reporter.step(Some(&stage.name), &why);
            return self
                .gave_up(stage, ctx, EventKind::RollbackRefused, to, why)
                .await;
        }
        let Some(to) = to else {
            unreachable!("rollback_decision refuses a missing version")
        };
        self.notify
            .send(
                Some(stage),
                EventKind::RollbackStarted,
                ctx,
                &format!("rolling back to {to}"),
            )
            .await;
        match self.revert(stage, to, &self.plan.target).await {
            Ok(()) => {
                self.reporter.step(
                    Some(&stage.name),
                    &format!("rolled back: serving {to} again"),
                );
                self.notify
                    .send(
                        Some(stage),
                        EventKind::RollbackSucceeded,
                        ctx,
                        &format!("serving {to} again"),
                    )
                    .await;
                self.record(
                    stage,
                    "rolled-back",
                    to,
                    Some(&self.plan.target),
                    Some(&reason),
                )
                .await;
                DeployOutcome::Failed {
                    stage: stage.name.clone(),
                    reason,
                    rolled_back_to: Some(to.clone()),
                }
            }
            Err(why) => self.rollback_failed(stage, ctx, to, &reason, &why).await,
        }
    }

    /// Applies `to` over `from` on `stage` and waits for its rollout: the move of both
    /// rollbacks, this automatic one and the on-demand `tagship rollback`
    /// ([`crate::lifecycle::rollback`]). `Err`: why it did not complete.
    pub(in crate::lifecycle) async fn revert(
        &self,
        stage: &StagePlan,
        to: &Version,
        from: &Version,
    ) -> Result<(), String> {
        let result = match self.cluster.apply(stage, to, Some(from)).await {
            Ok(()) => self.cluster.wait_rollout(stage).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(Completion::Succeeded) => Ok(()),
            Ok(Completion::Failed(why)) => Err(why),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The apply failed: when it changed nothing (the stage reads as before), the stage failed
    /// with nothing applied; when it changed part of the stage (or the stage cannot be read to
    /// tell), the stage is rolled back, so it never stays on two versions.
    pub(super) async fn apply_failed(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
        previous: Option<&Version>,
        error: &PortError,
    ) -> DeployOutcome {
        let applied_somewhere = match self.cluster.live(stage).await {
            Ok(live) => live
                .workloads
                .iter()
                .any(|w| w.version.as_ref() == Some(&self.plan.target)),
            Err(_) => true,
        };
        if applied_somewhere {
            self.roll_back(
                stage,
                ctx,
                previous,
                format!("apply failed part-way: {error}"),
            )
            .await
        } else {
            self.stage_failed(
                stage,
                ctx,
                format!("apply failed: {error}; nothing was applied"),
            )
            .await
        }
    }

    pub(super) async fn rollback_failed(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
        to: &Version,
        reason: &str,
        why: &str,
    ) -> DeployOutcome {
        let why = format!("{reason}; the rollback to {to} failed too: {why}");
        self.reporter.step(Some(&stage.name), &why);
        self.gave_up(stage, ctx, EventKind::RollbackFailed, Some(to), why)
            .await
    }

    /// The stage failed and stays on the target, its rollback to `to` not attempted, refused
    /// or failed (`why`): told as `kind`, recorded, and the run's outcome.
    async fn gave_up(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
        kind: EventKind,
        to: Option<&Version>,
        why: String,
    ) -> DeployOutcome {
        self.notify.send(Some(stage), kind, ctx, &why).await;
        self.record(stage, "failed", &self.plan.target, to, Some(&why))
            .await;
        DeployOutcome::RollbackFailed {
            stage: stage.name.clone(),
            reason: why,
        }
    }

    pub(super) async fn stage_failed(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
        reason: String,
    ) -> DeployOutcome {
        self.notify
            .send(Some(stage), EventKind::StageFailed, ctx, &reason)
            .await;
        self.record(stage, "failed", &self.plan.target, None, Some(&reason))
            .await;
        DeployOutcome::Failed {
            stage: stage.name.clone(),
            reason,
            rolled_back_to: None,
        }
    }
}
