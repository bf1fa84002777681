//! What a stage leaves behind it: its post-deployment migrations (and their watermark) and its
//! history records.

use crate::context::EventKind;
use crate::lifecycle::plan::StagePlan;
use crate::lifecycle::ports::{
    Cluster, Completion, HistoryRecord, Migration, Notify, Phase, Reporter, StageLive,
};
use crate::version::Version;

use super::{DeployOutcome, Run};

impl<C: Cluster, K, N: Notify, R: Reporter> Run<'_, C, K, N, R> {
    /// Whether post-deployment migrations are due after `stage` and the watermark says they
    /// have not run for the target.
    pub(super) async fn post_migrations_pending(
        &self,
        stage: &StagePlan,
    ) -> Result<bool, DeployOutcome> {
        if !(stage.post_migrations_after && self.plan.post_migrations) {
            return Ok(false);
        }
        let mark = self
            .cluster
            .watermark(&stage.environment)
            .await
            .map_err(|e| Self::port_failed(stage, &e))?;
        Ok(mark.is_none_or(|m| m < self.plan.target))
    }

    /// Post-deployment migrations after `stage`, unless the watermark shows they ran.
    pub(super) async fn post_migrations_if_due(
        &self,
        stage: &StagePlan,
        live: &StageLive,
    ) -> Result<(), DeployOutcome> {
        if !(stage.post_migrations_after && self.plan.post_migrations) {
            return Ok(());
        }
        let mark = self
            .cluster
            .watermark(&stage.environment)
            .await
            .map_err(|e| Self::port_failed(stage, &e))?;
        if mark.as_ref().is_some_and(|m| *m >= self.plan.target) {
            return Ok(());
        }
        self.reporter.phase(&stage.name, Phase::PostMigrations);
        self.reporter
            .step(Some(&stage.name), "running post-deployment migrations");
        let ctx = self.context(Some(stage), None, live);
        match self
            .cluster
            .migrate(stage, Migration::Post, &self.plan.target)
            .await
        {
            Ok(Completion::Succeeded) => {
                self.cluster
                    .set_watermark(&stage.environment, &self.plan.target)
                    .await
                    .map_err(|e| Self::port_failed(stage, &e))?;
                self.reporter.step(
                    Some(&stage.name),
                    &format!(
                        "post-deployment migrations of {} done; rollbacks below it are refused",
                        self.plan.target
                    ),
                );
                Ok(())
            }
            Ok(Completion::Failed(why)) => {
                // The new version serves and is healthy; the schema is part-way. Rolling back
                // would not undo it: a human decides.
                let reason = format!(
                    "post-deployment migrations failed: {why}; {} keeps serving",
                    self.plan.target
                );
                self.notify
                    .send(Some(stage), EventKind::StageFailed, &ctx, &reason)
                    .await;
                Err(DeployOutcome::Failed {
                    stage: stage.name.clone(),
                    reason,
                    rolled_back_to: None,
                })
            }
            Err(e) => Err(Self::port_failed(stage, &e)),
        }
    }

    /// A stage found serving the target must have it in its history: a run killed (or unable
    /// to write) after the rollout but before its record left it out; this writes it.
    pub(super) async fn ensure_recorded(&self, stage: &StagePlan, live: &StageLive) {
        let record = HistoryRecord {
            deploy_id: self.plan.deploy_id.clone(),
            action: "deployed",
            version: self.plan.target.to_string(),
            previous: live
                .workloads
                .iter()
                .filter_map(|w| w.previous.clone())
                .max()
                .map(|v| v.to_string()),
            reason: Some(
                "found serving the target: the run that applied it stopped before recording it"
                    .into(),
            ),
            pipeline_url: self.plan.pipeline_url.clone(),
        };
        match self.cluster.record_if_missing(stage, record).await {
            Ok(true) => self.reporter.step(
                Some(&stage.name),
                "recorded the deploy in the stage's history (an earlier run applied it but did not record it)",
            ),
            Ok(false) => {}
            Err(e) => self.reporter.step(
                Some(&stage.name),
                &format!("could not check the stage's history: {e}"),
            ),
        }
    }

    pub(in crate::lifecycle) async fn record(
        &self,
        stage: &StagePlan,
        action: &'static str,
        version: &Version,
        previous: Option<&Version>,
        reason: Option<&str>,
    ) {
        let record = HistoryRecord {
            deploy_id: self.plan.deploy_id.clone(),
            action,
            version: version.to_string(),
            previous: previous.map(ToString::to_string),
            reason: reason.map(str::to_owned),
            pipeline_url: self.plan.pipeline_url.clone(),
        };
        if let Err(e) = self.cluster.record(stage, record).await {
            self.reporter.step(
                Some(&stage.name),
                &format!("could not write the stage's history: {e}"),
            );
        }
    }
}
