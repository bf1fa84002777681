//! What a stage checks: its pre-checks before any change, the migration watermark before a
//! downgrade, and the bake after the rollout.

use std::fmt::Write as _;

use tokio::time::Instant;

use crate::context::{DeployContext, EventKind};
use crate::lifecycle::bake::{self, Round, Tally};
use crate::lifecycle::decide;
use crate::lifecycle::plan::{BakePlan, Downgrade, StagePlan};
use crate::lifecycle::ports::{
    CheckOutcome, CheckResult, Checks, Cluster, Notify, Phase, Reporter, StageLive, bake_label,
};

use super::{DeployOutcome, Run};

impl<C: Cluster, K: Checks, N: Notify, R: Reporter> Run<'_, C, K, N, R> {
    pub(super) async fn pre_checks(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
    ) -> Result<(), DeployOutcome> {
        if stage.pre_checks.is_empty() {
            return Ok(());
        }
        self.reporter.phase(&stage.name, Phase::PreChecks);
        self.reporter.step(
            Some(&stage.name),
            &format!("pre-checks: {}", stage.pre_checks.join(", ")),
        );
        let results = self.run_checks(stage, &stage.pre_checks, ctx).await;
        self.reporter
            .checked(&stage.name, Phase::PreChecks, None, &results);
        if let Err(reason) = decide::pre_check_verdict(&results) {
            self.notify
                .send(Some(stage), EventKind::CheckBlocked, ctx, &reason)
                .await;
            return Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!("pre-checks: {reason}"),
            });
        }
        Ok(())
    }

    /// The post-deployment migration watermark rule, for a deploy as for a rollback: nothing
    /// moves a stage below the migrations that ran in its environment without `--force`. Only a
    /// downgrade (a version older than one live) can: a deploy upwards reads no watermark.
    pub(super) async fn watermark_allows(
        &self,
        stage: &StagePlan,
        live: &StageLive,
    ) -> Result<(), DeployOutcome> {
        let downgrade = live
            .workloads
            .iter()
            .any(|w| w.version.as_ref().is_some_and(|v| *v > self.plan.target));
        if !downgrade {
            return Ok(());
        }
        let mark = self
            .cluster
            .watermark(&stage.environment)
            .await
            .map_err(|e| DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!(
                    "cannot read the post-deployment migration watermark; nothing was changed: {e}"
                ),
            })?;
        let Some(mark) = mark.filter(|m| self.plan.target < *m) else {
            return Ok(());
        };
        if self.plan.downgrade == Downgrade::BelowWatermark {
            self.reporter.step(
                Some(&stage.name),
                &format!(
                    "--force: deploying {} below the post-deployment migrations of {mark}",
                    self.plan.target
                ),
            );
            return Ok(());
        }
        Err(DeployOutcome::RollbackFailed {
            stage: stage.name.clone(),
            reason: format!(
                "refused: post-deployment migrations of {mark} have run in environment `{}`, and {} is older; deploying it is as unsafe as rolling back to it (forward-fix instead, or `--allow-downgrade --force` if you know the schema allows it); nothing was changed",
                stage.environment, self.plan.target
            ),
        })
    }

    /// The context of `stage` after its rollout, so the bake's checks see the workloads as they
    /// are now; `before` (the context from before the change) when the stage cannot be read.
    pub(super) async fn rolled_out(
        &self,
        stage: &StagePlan,
        before: &DeployContext,
    ) -> DeployContext {
        match self.cluster.live(stage).await {
            Ok(live) => DeployContext {
                workloads: self.context(Some(stage), None, &live).workloads,
                ..before.clone()
            },
            Err(e) => {
                self.reporter.step(
                    Some(&stage.name),
                    &format!("could not re-read the stage for the bake's checks (they get the state from before the change): {e}"),
                );
                before.clone()
            }
        }
    }

    pub(super) async fn run_checks(
        &self,
        stage: &StagePlan,
        names: &[String],
        ctx: &DeployContext,
    ) -> Vec<CheckResult> {
        check_per_cluster(self.checks, stage, names, ctx).await
    }

    pub(super) async fn bake(
        &self,
        stage: &StagePlan,
        plan: &BakePlan,
        ctx: &DeployContext,
    ) -> Result<Tally, String> {
        // The bake begins at its phase: rounds are labelled by the time since then, its initial
        // delay included, in the lines, the reports and the progress alike.
        let total = plan.initial_delay + plan.duration;
        let phase = Phase::Bake { duration: total };
        let began = Instant::now();
        self.reporter.phase(&stage.name, phase);
        let pace = if plan.initial_delay.is_zero() {
            format!("checking every {}s", plan.interval.as_secs())
        } else {
            format!(
                "checking every {}s after an initial delay of {}s",
                plan.interval.as_secs(),
                plan.initial_delay.as_secs()
            )
        };
        self.reporter.step(
            Some(&stage.name),
            &format!("baking for {}s, {pace}", total.as_secs()),
        );
        tokio::time::sleep(plan.initial_delay).await;
        let started = Instant::now();
        let mut tally = Tally::default();
        loop {
            let results = self.run_checks(stage, &plan.checks, ctx).await;
            let at = began.elapsed();
            self.reporter
                .checked(&stage.name, phase, Some(at), &results);
            for r in &results {
                let (word, why) = match &r.outcome {
                    CheckOutcome::Pass => ("pass", None),
                    CheckOutcome::Fail(why) => ("FAIL", Some(why)),
                    CheckOutcome::Unknown(why) => ("unknown", Some(why)),
                    CheckOutcome::Errored(why) => ("error", Some(why)),
                };
                let mut text = format!("{}: {} {word}", bake_label(at, total), r.check);
                if let Some(cluster) = &r.cluster {
                    let _ = write!(text, " in {cluster}");
                }
                if let Some(why) = why {
                    let _ = write!(text, ": {why}");
                }
                self.reporter.step(Some(&stage.name), &text);
            }
            if let Round::Fail(why) = bake::assess(plan, &mut tally, &results) {
                return Err(why);
            }
            if started.elapsed() + plan.interval > plan.duration {
                break;
            }
            tokio::time::sleep(plan.interval).await;
        }
        if tally.passed == 0 {
            return Err("no round of checks passed during the bake".into());
        }
        Ok(tally)
    }
}

/// Runs the checks `names` of `stage` once per cluster of `ctx`, concurrently, each with the
/// context of that cluster's workloads only (so `{{cluster}}` in a plugin's configuration names
/// it); every result names its cluster. A context without workloads is checked once, as a whole.
pub async fn check_per_cluster<K: Checks>(
    checks: &K,
    stage: &StagePlan,
    names: &[String],
    ctx: &DeployContext,
) -> Vec<CheckResult> {
    let clusters = ctx.clusters();
    if clusters.is_empty() {
        return checks.run(stage, names, ctx).await;
    }
    let rounds = clusters.into_iter().map(|cluster| async move {
        let local = ctx.for_cluster(cluster);
        let mut results = checks.run(stage, names, &local).await;
        for r in &mut results {
            r.cluster = Some(cluster.to_owned());
        }
        results
    });
    futures::future::join_all(rounds)
        .await
        .into_iter()
        .flatten()
        .collect()
}
