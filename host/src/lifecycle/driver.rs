//! The async driver: performs the decisions of [`super::decide`] and [`super::bake`] through the
//! ports, stage by stage, and says how the run ended.
//!
//! # Guarantees
//! - Nothing changes in a stage before its lock is held and its pre-checks passed.
//! - The lock is renewed while a stage works; if it is lost, the run stops changing the cluster.
//! - Every lock this run took is released when it returns, whatever the outcome.
//! - A failed rollout or bake rolls back to the previous version, unless post-deployment
//!   migrations forbid it; then the run says so and stops.

use std::fmt::Write as _;

use tokio::time::Instant;

use crate::context::{DeployContext, EventKind, WorkloadVersion};
use crate::exit::Outcome;
use crate::version::Version;

use super::bake::{self, Round, Tally};
use super::decide::{self, RollbackDecision, StageAction};
use super::lock::{EnvironmentLock, LockFailure};
use super::plan::{Plan, StagePlan};
use super::ports::{
    CheckOutcome, CheckResult, Checks, Cluster, Completion, HistoryRecord, Holder, Migration,
    Notify, Phase, PortError, Reporter, StageEnd, StageLive, bake_label,
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
type StageResult = Result<bool, DeployOutcome>;

impl<'a, C: Cluster, K: Checks, N: Notify, R: Reporter> Run<'a, C, K, N, R> {
    async fn stages(&mut self) -> DeployOutcome {
        let mut deployed = Vec::new();
        let mut skipped = Vec::new();
        for stage in &self.plan.stages {
            let result = self.stage(stage).await;
            let end = match result {
                Ok(true) => StageEnd::Deployed,
                Ok(false) => StageEnd::AlreadyThere,
                Err(_) => StageEnd::Stopped,
            };
            self.reporter.stage_done(&stage.name, end);
            match result {
                Ok(true) => deployed.push(stage.name.clone()),
                Ok(false) => skipped.push(stage.name.clone()),
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

    pub(super) fn infra(stage: &StagePlan, error: &PortError) -> DeployOutcome {
        DeployOutcome::Failed {
            stage: stage.name.clone(),
            reason: error.to_string(),
            rolled_back_to: None,
        }
    }

    /// One stage; `Ok(true)` when this run deployed it, `Ok(false)` when it was already done.
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
                Ok(false)
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

    /// The lock of `stage`'s environment, as this run takes and renews it.
    pub(super) fn environment_lock<'s>(&self, stage: &'s StagePlan) -> EnvironmentLock<'s, C, R>
    where
        'a: 's,
    {
        EnvironmentLock::new(
            self.cluster,
            self.reporter,
            &stage.environment,
            Some(&stage.name),
            self.plan.lock_wait,
            self.plan.lock_ttl,
        )
    }

    /// Runs `work` on `stage` while renewing its environment's lock (which this run holds); stops
    /// it when the lock is lost.
    pub(super) async fn hold<T>(
        &self,
        stage: &StagePlan,
        work: impl std::future::Future<Output = Result<T, DeployOutcome>>,
    ) -> Result<T, DeployOutcome> {
        match self.environment_lock(stage).hold(work).await {
            Ok(result) => result,
            Err(lost) => Err(DeployOutcome::Failed {
                stage: stage.name.clone(),
                reason: format!(
                    "the lock of `{}` {lost}; stopped changing the cluster",
                    stage.environment
                ),
                rolled_back_to: None,
            }),
        }
    }

    /// Takes the lock of `stage`'s environment (releasing another environment's this run held),
    /// waiting up to `[lock].wait`.
    pub(super) async fn lock(&mut self, stage: &StagePlan) -> Result<(), DeployOutcome> {
        if self.locked.as_deref() == Some(stage.environment.as_str()) {
            return Ok(());
        }
        self.release().await;
        self.reporter.phase(&stage.name, Phase::Lock);
        let wait = self.plan.lock_wait;
        let told = async |holder: &Holder| {
            let message = format!(
                "the lock of `{}` is held by {holder}; waiting up to {}s",
                stage.environment,
                wait.as_secs()
            );
            self.reporter.step(Some(&stage.name), &message);
            let ctx = self.context(Some(stage), None, &StageLive::default());
            self.notify
                .send(Some(stage), EventKind::LockWaiting, &ctx, &message)
                .await;
        };
        match self.environment_lock(stage).acquire(told).await {
            Ok(()) => {
                self.reporter.step(
                    Some(&stage.name),
                    &format!("holding the lock of `{}`", stage.environment),
                );
                self.locked = Some(stage.environment.clone());
                Ok(())
            }
            Err(LockFailure::Held(holder)) => Err(DeployOutcome::LockTimeout {
                environment: stage.environment.clone(),
                holder,
            }),
            Err(LockFailure::Unavailable(reason)) => Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!("{reason}; nothing was changed"),
            }),
        }
    }

    pub(super) async fn release(&mut self) {
        if let Some(environment) = self.locked.take() {
            match self.cluster.unlock(&environment).await {
                Ok(()) => self
                    .reporter
                    .step(None, &format!("released the lock of `{environment}`")),
                Err(e) => self.reporter.step(
                    None,
                    &format!(
                        "could not release the lock of `{environment}` (it expires on its own): {e}"
                    ),
                ),
            }
        }
    }

    /// Re-reads the stage once the lock is held: someone may have changed it meanwhile.
    /// `Ok(None)`: already at the target.
    async fn after_lock(
        &self,
        stage: &StagePlan,
    ) -> Result<Option<(Option<Version>, bool, StageLive)>, DeployOutcome> {
        let live = self
            .cluster
            .live(stage)
            .await
            .map_err(|e| Self::infra(stage, &e))?;
        match decide::stage_action(self.plan, stage, &live) {
            StageAction::Deploy { previous, resume } => Ok(Some((previous, resume, live))),
            StageAction::Skip => {
                self.reporter.step(
                    Some(&stage.name),
                    "already at the target after waiting for the lock",
                );
                self.ensure_recorded(stage, &live).await;
                Ok(None)
            }
            StageAction::RefuseDowngrade { live: newer } => Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!(
                    "{newer} went live while this run waited for the lock, and it is newer than {}; nothing was changed (deploying an older version needs --allow-downgrade)",
                    self.plan.target
                ),
            }),
            StageAction::RefusePaused {
                cluster,
                namespace,
                workload,
            } => Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!(
                    "while this run waited for the lock, {}",
                    decide::paused_reason(&cluster, &namespace, &workload)
                ),
            }),
            StageAction::RefuseUnknown { unreadable } => Err(DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!(
                    "{unreadable} (changed while this run waited for the lock), so it may run something newer than {}; nothing was changed (deploying over it needs --allow-downgrade)",
                    self.plan.target
                ),
            }),
            // Checked before the lock was taken; only the gate could say this.
            StageAction::AwaitApproval => Err(DeployOutcome::AwaitingApproval {
                stage: stage.name.clone(),
            }),
        }
    }

    async fn deploy_stage(&self, stage: &StagePlan) -> StageResult {
        let Some((previous, resume, live)) = self.after_lock(stage).await? else {
            return Ok(false);
        };
        self.watermark_allows(stage, &live).await?;
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
        Ok(true)
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
                Err(e) => return Err(Self::infra(stage, &e)),
            }
        }
        Ok(())
    }

    async fn pre_checks(
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
    async fn watermark_allows(
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
        if self.plan.downgrade == super::plan::Downgrade::BelowWatermark {
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
    async fn rolled_out(&self, stage: &StagePlan, before: &DeployContext) -> DeployContext {
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

    async fn run_checks(
        &self,
        stage: &StagePlan,
        names: &[String],
        ctx: &DeployContext,
    ) -> Vec<CheckResult> {
        check_per_cluster(self.checks, stage, names, ctx).await
    }

    async fn bake(
        &self,
        stage: &StagePlan,
        plan: &super::plan::BakePlan,
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

    async fn roll_back(
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
                self.notify
                    .send(Some(stage), EventKind::RollbackFailed, ctx, &why)
                    .await;
                self.record(stage, "failed", &self.plan.target, to, Some(&why))
                    .await;
                return DeployOutcome::RollbackFailed {
                    stage: stage.name.clone(),
                    reason: why,
                };
            }
        };
        if let RollbackDecision::Refused(why) =
            decide::rollback_decision(to, watermark.as_ref(), false)
        {
            let why = format!("{reason}; rollback refused: {why}");
            self.reporter.step(Some(&stage.name), &why);
            self.notify
                .send(Some(stage), EventKind::RollbackRefused, ctx, &why)
                .await;
            self.record(stage, "failed", &self.plan.target, to, Some(&why))
                .await;
            return DeployOutcome::RollbackFailed {
                stage: stage.name.clone(),
                reason: why,
            };
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
        let result = match self.cluster.apply(stage, to, Some(&self.plan.target)).await {
            Ok(()) => self.cluster.wait_rollout(stage).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(Completion::Succeeded) => {
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
            Ok(Completion::Failed(why)) => {
                self.rollback_failed(stage, ctx, to, &reason, &why).await
            }
            Err(e) => {
                self.rollback_failed(stage, ctx, to, &reason, &e.to_string())
                    .await
            }
        }
    }

    /// The apply failed: when it changed nothing (the stage reads as before), the stage failed
    /// with nothing applied; when it changed part of the stage (or the stage cannot be read to
    /// tell), the stage is rolled back, so it never stays on two versions.
    async fn apply_failed(
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

    async fn rollback_failed(
        &self,
        stage: &StagePlan,
        ctx: &DeployContext,
        to: &Version,
        reason: &str,
        why: &str,
    ) -> DeployOutcome {
        let why = format!("{reason}; the rollback to {to} failed too: {why}");
        self.reporter.step(Some(&stage.name), &why);
        self.notify
            .send(Some(stage), EventKind::RollbackFailed, ctx, &why)
            .await;
        self.record(stage, "failed", &self.plan.target, Some(to), Some(&why))
            .await;
        DeployOutcome::RollbackFailed {
            stage: stage.name.clone(),
            reason: why,
        }
    }

    async fn stage_failed(
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

    /// Whether post-deployment migrations are due after `stage` and the watermark says they
    /// have not run for the target.
    async fn post_migrations_pending(&self, stage: &StagePlan) -> Result<bool, DeployOutcome> {
        if !(stage.post_migrations_after && self.plan.post_migrations) {
            return Ok(false);
        }
        let mark = self
            .cluster
            .watermark(&stage.environment)
            .await
            .map_err(|e| Self::infra(stage, &e))?;
        Ok(mark.is_none_or(|m| m < self.plan.target))
    }

    /// Post-deployment migrations after `stage`, unless the watermark shows they ran.
    async fn post_migrations_if_due(
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
            .map_err(|e| Self::infra(stage, &e))?;
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
                    .map_err(|e| Self::infra(stage, &e))?;
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
            Err(e) => Err(Self::infra(stage, &e)),
        }
    }

    /// A stage found serving the target must have it in its history: a run killed (or unable
    /// to write) after the rollout but before its record left it out; this writes it.
    async fn ensure_recorded(&self, stage: &StagePlan, live: &StageLive) {
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

    pub(super) async fn record(
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

    pub(super) fn context(
        &self,
        stage: Option<&StagePlan>,
        previous: Option<&Version>,
        live: &StageLive,
    ) -> DeployContext {
        context_for(self.plan, stage, previous, live)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lifecycle::BakePlan;
    use crate::lifecycle::testing::{
        Call, FakeChecks, FakeCluster, FakeNotify, Lines, bake, plan, stage,
    };

    fn three_stages() -> Vec<StagePlan> {
        let mut cny = stage("gstg-cny", "gstg", false);
        cny.last_of_environment = false;
        let mut gstg = stage("gstg", "gstg", false);
        gstg.first_of_environment = false;
        let gprd = stage("gprd", "gprd", true);
        vec![cny, gstg, gprd]
    }

    fn cluster_at(version: &str) -> FakeCluster {
        FakeCluster::with(&[
            ("gstg-cny", &[version]),
            ("gstg", &[version, version]),
            ("gprd", &[version, version]),
        ])
    }

    async fn run(plan: &Plan, cluster: &FakeCluster) -> (DeployOutcome, FakeNotify, Lines) {
        let notify = FakeNotify::default();
        let lines = Lines::default();
        let outcome = deploy(plan, cluster, &FakeChecks::default(), &notify, &lines).await;
        (outcome, notify, lines)
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_walks_the_stages_and_stops_at_the_manual_gate_until_approved() {
        let cluster = cluster_at("v1.0.0");
        let mut p = plan("v2.0.0", three_stages());
        p.command = crate::lifecycle::CommandLine::new([
            "deploy",
            "--config",
            "ci/tagship.toml",
            "--version",
            "v2.0.0",
            "--allow-downgrade",
        ]);
        let (outcome, notify, lines) = run(&p, &cluster).await;
        assert_eq!(
            outcome,
            DeployOutcome::AwaitingApproval {
                stage: "gprd".into()
            }
        );
        assert_eq!(outcome.outcome(), Outcome::Done);
        assert_eq!(cluster.versions("gstg"), ["v2.0.0", "v2.0.0"]);
        assert_eq!(cluster.versions("gprd"), ["v1.0.0", "v1.0.0"]);
        // The command to go on is the one that ran, configuration and flags included.
        assert!(lines.contains(
            "continue with: tagship deploy --config ci/tagship.toml --version v2.0.0 --allow-downgrade --approve gprd"
        ));
        assert_eq!(notify.kinds().last(), Some(&EventKind::AwaitingApproval));

        let mut approved = p.clone();
        approved.approved.insert("gprd".into());
        let (outcome, notify, _) = run(&approved, &cluster).await;
        assert_eq!(
            outcome,
            DeployOutcome::Done {
                deployed: vec!["gprd".into()],
                skipped: vec!["gstg-cny".into(), "gstg".into()]
            }
        );
        assert_eq!(cluster.versions("gprd"), ["v2.0.0", "v2.0.0"]);
        assert_eq!(
            notify.kinds(),
            [
                EventKind::DeployStarted,
                EventKind::StageStarted,
                EventKind::StageSucceeded,
                EventKind::DeploySucceeded
            ]
        );
        let history = cluster.history.lock().unwrap();
        assert_eq!(
            history
                .iter()
                .filter(|(_, r)| r.action == "deployed")
                .count(),
            3
        );
    }

    #[tokio::test(start_paused = true)]
    async fn running_the_same_deploy_again_changes_nothing() {
        let cluster = cluster_at("v2.0.0");
        let mut p = plan("v2.0.0", three_stages());
        p.approved.insert("gprd".into());
        let (outcome, _, lines) = run(&p, &cluster).await;
        assert!(matches!(outcome, DeployOutcome::Done { ref deployed, .. } if deployed.is_empty()));
        assert!(cluster.applies().is_empty());
        assert!(
            !cluster
                .calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| matches!(c, Call::Lock(_))),
            "no lock is taken for nothing"
        );
        assert!(lines.contains("already serving v2.0.0"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stage_found_at_the_target_without_its_record_gets_one_once() {
        // An earlier run rolled out v2.0.0 everywhere and was killed before recording it.
        let cluster = cluster_at("v2.0.0");
        let mut p = plan("v2.0.0", three_stages());
        p.approved.insert("gprd".into());
        let (_, _, lines) = run(&p, &cluster).await;
        assert!(lines.contains("an earlier run applied it but did not record it"));
        {
            let history = cluster.history.lock().unwrap();
            assert_eq!(history.len(), 3, "{history:?}");
            assert!(history.iter().all(|(_, r)| {
                r.action == "deployed"
                    && r.version == "v2.0.0"
                    && r.reason
                        .as_deref()
                        .is_some_and(|why| why.contains("stopped before recording"))
            }));
        }
        // A second re-run finds the records and writes nothing.
        let (_, _, lines) = run(&p, &cluster).await;
        assert!(!lines.contains("did not record it"));
        assert_eq!(cluster.history.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_rollout_is_rolled_back_and_later_stages_are_untouched() {
        let cluster = cluster_at("v1.0.0");
        let (outcome, notify, _) = run(&plan("v2.0.0-crashloop", three_stages()), &cluster).await;
        match &outcome {
            DeployOutcome::Failed {
                stage,
                reason,
                rolled_back_to,
            } => {
                assert_eq!(stage, "gstg-cny");
                assert!(reason.contains("ProgressDeadlineExceeded"), "{reason}");
                assert_eq!(
                    rolled_back_to.as_ref().map(ToString::to_string).as_deref(),
                    Some("v1.0.0")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(outcome.outcome(), Outcome::Failed);
        assert_eq!(cluster.versions("gstg-cny"), ["v1.0.0"]);
        assert_eq!(
            cluster.applies(),
            [
                ("gstg-cny".into(), "v2.0.0-crashloop".into()),
                ("gstg-cny".into(), "v1.0.0".into())
            ]
        );
        let kinds = notify.kinds();
        assert!(
            kinds.contains(&EventKind::RollbackStarted)
                && kinds.contains(&EventKind::RollbackSucceeded)
        );
        assert!(
            cluster
                .calls
                .lock()
                .unwrap()
                .contains(&Call::Unlock("gstg".into())),
            "the lock is released on failure"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_apply_that_fails_part_way_is_rolled_back_recorded_and_told() {
        let cluster = cluster_at("v1.0.0");
        cluster.apply_fails.lock().unwrap().insert("v2.0.0".into());
        let mut stages = three_stages();
        stages.remove(0);
        stages[0].first_of_environment = true;
        let (outcome, notify, _) = run(&plan("v2.0.0", stages), &cluster).await;
        match &outcome {
            DeployOutcome::Failed {
                stage,
                reason,
                rolled_back_to,
            } => {
                assert_eq!(stage, "gstg");
                assert!(
                    reason.contains("apply failed") && reason.contains("422"),
                    "{reason}"
                );
                assert_eq!(
                    rolled_back_to.as_ref().map(ToString::to_string).as_deref(),
                    Some("v1.0.0")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cluster.versions("gstg"),
            ["v1.0.0", "v1.0.0"],
            "not two versions"
        );
        let kinds = notify.kinds();
        for kind in [
            EventKind::StageFailed,
            EventKind::RollbackStarted,
            EventKind::RollbackSucceeded,
        ] {
            assert!(kinds.contains(&kind), "{kind:?}: {kinds:?}");
        }
        let history = cluster.history.lock().unwrap();
        assert!(
            history
                .iter()
                .any(|(s, r)| s == "gstg" && r.action == "rolled-back" && r.version == "v1.0.0"),
            "{history:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_apply_that_changed_nothing_fails_the_stage_without_a_rollback() {
        let cluster = cluster_at("v1.0.0");
        cluster
            .apply_refused
            .lock()
            .unwrap()
            .insert("v2.0.0".into());
        let (outcome, notify, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Failed { reason, rolled_back_to: None, .. }
                if reason.contains("nothing was applied")),
            "{outcome:?}"
        );
        assert!(!notify.kinds().contains(&EventKind::RollbackStarted));
        assert!(notify.kinds().contains(&EventKind::StageFailed));
        assert_eq!(cluster.history.lock().unwrap()[0].1.action, "failed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_that_fails_is_recorded() {
        let cluster = cluster_at("v1.0.0");
        cluster.apply_fails.lock().unwrap().insert("v1.0.0".into());
        let (outcome, notify, _) = run(&plan("v2.0.0-crashloop", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::RollbackFailed { reason, .. }
                if reason.contains("the rollback to v1.0.0 failed too")),
            "{outcome:?}"
        );
        assert!(notify.kinds().contains(&EventKind::RollbackFailed));
        let history = cluster.history.lock().unwrap();
        assert!(
            history.iter().any(|(_, r)| r.action == "failed"
                && r.reason
                    .as_deref()
                    .is_some_and(|w| w.contains("failed too"))),
            "{history:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_bake_is_rolled_back() {
        let cluster = cluster_at("v2.0.0");
        let mut stages = three_stages();
        stages[0].bake = Some(bake());
        let (outcome, _, lines) = run(&plan("v3.0.0-errors", stages), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Failed { reason, .. } if reason.contains("bake failed")),
            "{outcome:?}"
        );
        assert_eq!(cluster.versions("gstg-cny"), ["v2.0.0"]);
        assert!(lines.contains("health FAIL"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stage_over_two_clusters_is_checked_per_cluster_and_one_unhealthy_cluster_rolls_all_back()
     {
        let cluster = cluster_at("v1.0.0");
        let mut stages = three_stages();
        stages[1].bake = Some(BakePlan {
            checks: vec!["health".into(), "unhealthy-in-cluster-1".into()],
            ..bake()
        });
        let checks = FakeChecks::default();
        let lines = Lines::default();
        let outcome = deploy(
            &plan("v2.0.0", stages),
            &cluster,
            &checks,
            &FakeNotify::default(),
            &lines,
        )
        .await;
        match &outcome {
            DeployOutcome::Failed {
                stage,
                reason,
                rolled_back_to,
            } => {
                assert_eq!(stage, "gstg");
                assert!(
                    reason.contains("`unhealthy-in-cluster-1` in `cluster-1`: error ratio"),
                    "{reason}"
                );
                assert!(!reason.contains("cluster-0"), "{reason}");
                assert_eq!(
                    rolled_back_to.as_ref().map(ToString::to_string).as_deref(),
                    Some("v1.0.0")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cluster.versions("gstg"),
            ["v1.0.0", "v1.0.0"],
            "the rollback covers every cluster of the stage"
        );
        assert!(lines.contains("unhealthy-in-cluster-1 FAIL in cluster-1: error ratio"));
        assert!(lines.contains("health pass in cluster-0"));
        // The bake's checks were asked per cluster, each about its own workloads as they are
        // after the rollout.
        let contexts = checks.contexts.lock().unwrap();
        let baked: Vec<&DeployContext> = contexts.iter().filter(|c| c.stage == "gstg").collect();
        assert_eq!(baked.len(), 2, "one call per cluster");
        for ctx in baked {
            assert_eq!(ctx.workloads.len(), 1, "{ctx:?}");
            let w = &ctx.workloads[0];
            assert_eq!(w.version.as_deref(), Some("v2.0.0"));
            assert_eq!(w.image, "registry.example.com/registry:v2.0.0-gitlab");
            assert_eq!(w.namespace, "gstg");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_bake_checks_every_interval_for_its_duration() {
        let cluster = cluster_at("v1.0.0");
        let mut stages = three_stages();
        stages[0].bake = Some(bake());
        let checks = FakeChecks::default();
        let started = Instant::now();
        let outcome = deploy(
            &plan("v2.0.0", stages),
            &cluster,
            &checks,
            &FakeNotify::default(),
            &Lines::default(),
        )
        .await;
        assert!(
            matches!(outcome, DeployOutcome::AwaitingApproval { .. }),
            "{outcome:?}"
        );
        assert_eq!(
            checks.runs.lock().unwrap().len(),
            7,
            "rounds at 0, 10, ..., 60 s: the last at the end of the bake"
        );
        assert!(started.elapsed() >= Duration::from_mins(1));
    }

    #[tokio::test(start_paused = true)]
    async fn bake_rounds_are_labelled_from_the_bake_s_beginning_in_lines_and_report_alike() {
        // Given a bake of 30 s every 10 s, after an initial delay of 10 s
        let cluster = cluster_at("v1.0.0");
        let mut stages = three_stages();
        stages[0].bake = Some(BakePlan {
            initial_delay: Duration::from_secs(10),
            duration: Duration::from_secs(30),
            ..bake()
        });
        let p = plan("v2.0.0", stages);
        let journal = crate::journal::Journal::new(Box::new(Lines::default()));
        let outcome = deploy(
            &p,
            &cluster,
            &FakeChecks::default(),
            &FakeNotify::default(),
            &journal,
        )
        .await;
        let ending = crate::journal::Ending::of(&outcome, String::new());
        let finished = journal.finish();
        let report = crate::journal::RunReport {
            plan: &p,
            finished: &finished,
            ending: &ending,
        }
        .json();

        // Then the first round, made after the delay, is at 10 s of 40 s, the last at 40 s
        let steps: Vec<&str> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["message"].as_str())
            .filter(|m| m.starts_with("bak"))
            .collect();
        assert_eq!(
            steps,
            [
                "baking for 40s, checking every 10s after an initial delay of 10s",
                "bake 10s/40s: health pass in cluster-0",
                "bake 20s/40s: health pass in cluster-0",
                "bake 30s/40s: health pass in cluster-0",
                "bake 40s/40s: health pass in cluster-0",
            ]
        );
        // And the report labels the same rounds the same way
        let rounds: Vec<(&str, u64)> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["phase"] == "bake")
            .map(|c| {
                (
                    c["round"].as_str().unwrap(),
                    c["bake_seconds"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rounds,
            [
                ("bake 10s/40s", 10),
                ("bake 20s/40s", 20),
                ("bake 30s/40s", 30),
                ("bake 40s/40s", 40)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_pre_check_blocks_with_nothing_changed() {
        let cluster = cluster_at("v1.0.0");
        let mut stages = three_stages();
        stages[0].pre_checks = vec!["unhealthy-now".into()];
        let (outcome, notify, _) = run(&plan("v2.0.0", stages.clone()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { stage, .. } if stage == "gstg-cny"),
            "{outcome:?}"
        );
        assert_eq!(outcome.outcome(), Outcome::Blocked);
        assert!(cluster.applies().is_empty());
        assert!(notify.kinds().contains(&EventKind::CheckBlocked));

        stages[0].pre_checks = vec!["broken".into()];
        let (outcome, _, _) = run(&plan("v2.0.0", stages), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("could not run")),
            "{outcome:?}"
        );
        assert!(
            cluster.applies().is_empty(),
            "a crashing check fails closed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_pre_deployment_migration_stops_the_stage_with_nothing_applied() {
        let cluster = cluster_at("v1.0.0");
        let mut p = plan("v2.0.0-fail", three_stages());
        p.pre_migrations = true;
        let (outcome, _, _) = run(&p, &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Failed { reason, rolled_back_to: None, .. } if reason.contains("nothing was applied")),
            "{outcome:?}"
        );
        assert!(cluster.applies().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pre_migrations_run_once_per_environment_and_post_migrations_set_the_watermark() {
        let cluster = cluster_at("v1.0.0");
        let mut stages = three_stages();
        stages[1].post_migrations_after = true;
        let mut p = plan("v2.0.0", stages);
        p.pre_migrations = true;
        p.post_migrations = true;
        p.until = Some("gstg".into());
        let (outcome, _, _) = run(&p, &cluster).await;
        assert!(matches!(outcome, DeployOutcome::Done { .. }), "{outcome:?}");
        let migrations: Vec<_> = cluster
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| matches!(c, Call::Migrate { .. }))
            .cloned()
            .collect();
        assert_eq!(
            migrations,
            [
                Call::Migrate {
                    stage: "gstg-cny".into(),
                    kind: Migration::Pre,
                    version: "v2.0.0".into()
                },
                Call::Migrate {
                    stage: "gstg".into(),
                    kind: Migration::Post,
                    version: "v2.0.0".into()
                },
            ]
        );
        assert_eq!(
            cluster.watermarks.lock().unwrap()["gstg"].to_string(),
            "v2.0.0"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_below_the_watermark_is_refused_with_the_reason() {
        let cluster = cluster_at("v1.0.0");
        cluster
            .watermarks
            .lock()
            .unwrap()
            .insert("gstg".into(), "v1.5.0".parse().unwrap());
        let (outcome, notify, _) = run(&plan("v2.0.0-crashloop", three_stages()), &cluster).await;
        match &outcome {
            DeployOutcome::RollbackFailed { reason, .. } => assert!(
                reason.contains("post-deployment migrations of v1.5.0"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(outcome.outcome(), Outcome::RollbackFailed);
        assert!(notify.kinds().contains(&EventKind::RollbackRefused));
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lock_is_waited_for_then_times_out_naming_the_holder() {
        let cluster = cluster_at("v1.0.0");
        *cluster.held_by.lock().unwrap() = Some(Holder {
            who: "rails-auto-deploy".into(),
            reason: Some("deploying the app".into()),
            pipeline_url: Some("https://ci.example/p/9".into()),
            since: None,
        });
        let started = Instant::now();
        let (outcome, notify, lines) = run(&plan("v2.0.0", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::LockTimeout { holder, .. } if holder.who == "rails-auto-deploy"),
            "{outcome:?}"
        );
        assert_eq!(outcome.outcome(), Outcome::LockTimeout);
        assert!(started.elapsed() >= Duration::from_mins(1));
        assert!(lines.contains("held by `rails-auto-deploy` (deploying the app)"));
        assert_eq!(
            notify
                .kinds()
                .iter()
                .filter(|k| **k == EventKind::LockWaiting)
                .count(),
            1,
            "told once"
        );
        assert!(cluster.applies().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_that_cannot_be_taken_blocks_at_once_when_asking_again_cannot_help() {
        let cluster = cluster_at("v1.0.0");
        *cluster.lock_error.lock().unwrap() = Some(PortError::permanent(
            "namespace `locks` does not exist; create it",
        ));
        let started = Instant::now();
        let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { stage, reason }
                if stage == "gstg-cny" && reason.contains("create it") && reason.contains("nothing was changed")),
            "{outcome:?}"
        );
        assert_eq!(outcome.outcome(), Outcome::Blocked);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(*cluster.lock_requests.lock().unwrap(), 1);
        assert!(cluster.applies().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_that_keeps_failing_is_tried_within_the_wait_without_spinning() {
        let cluster = cluster_at("v1.0.0");
        *cluster.lock_error.lock().unwrap() = Some(PortError::new("the API server answered 503"));
        let started = Instant::now();
        let (outcome, _, lines) = run(&plan("v2.0.0", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("503")),
            "{outcome:?}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_mins(1) && took < Duration::from_secs(63),
            "{took:?}"
        );
        let requests = *cluster.lock_requests.lock().unwrap();
        assert!(
            (30..=32).contains(&requests),
            "one try per 2 s of the wait: {requests}"
        );
        assert_eq!(
            lines
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("cannot read the lock"))
                .count(),
            1,
            "said once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stage_already_deployed_runs_its_missing_post_migrations_under_the_lock() {
        // A run applied v2.0.0 everywhere and failed in gstg's post-deployment migrations.
        let cluster = cluster_at("v2.0.0");
        let mut stages = three_stages();
        stages[1].post_migrations_after = true;
        let mut p = plan("v2.0.0", stages);
        p.post_migrations = true;
        p.until = Some("gstg".into());
        let (outcome, _, _) = run(&p, &cluster).await;
        assert!(matches!(outcome, DeployOutcome::Done { .. }), "{outcome:?}");
        let calls = cluster.calls.lock().unwrap().clone();
        let lock = calls.iter().position(|c| *c == Call::Lock("gstg".into()));
        let migrate = calls.iter().position(|c| {
            matches!(
                c,
                Call::Migrate {
                    kind: Migration::Post,
                    ..
                }
            )
        });
        assert!(lock.is_some() && lock < migrate, "{calls:?}");
        assert_eq!(
            cluster.watermarks.lock().unwrap()["gstg"].to_string(),
            "v2.0.0"
        );
        assert!(cluster.holding.lock().unwrap().is_empty(), "released");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_that_cannot_be_renewed_for_its_whole_time_to_live_stops_the_run() {
        let cluster = cluster_at("v1.0.0");
        let mut stages = three_stages();
        stages[0].bake = Some(bake());
        let mut p = plan("v2.0.0", stages);
        p.lock_ttl = Duration::from_secs(15);
        let notify = FakeNotify::default();
        let lines = Lines::default();
        let checks = FakeChecks::default();
        let run = deploy(&p, &cluster, &checks, &notify, &lines);
        let outage = async {
            // The lock is taken, then every request fails from 5 s on.
            tokio::time::sleep(Duration::from_secs(5)).await;
            *cluster.lock_error.lock().unwrap() = Some(PortError::new("connection refused"));
        };
        let (outcome, ()) = tokio::join!(run, outage);
        assert!(
            matches!(&outcome, DeployOutcome::Failed { reason, .. }
                if reason.contains("could not be renewed before it expired") && reason.contains("stopped changing")),
            "{outcome:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lock_stops_the_run() {
        let cluster = cluster_at("v1.0.0");
        let mut stages = three_stages();
        stages[0].bake = Some(bake());
        *cluster.lose_lock_after.lock().unwrap() = Some(1);
        let (outcome, _, _) = run(&plan("v2.0.0", stages), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Failed { reason, .. } if reason.contains("taken over by `intruder`")),
            "{outcome:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_deployment_is_refused_before_any_change_naming_how_to_resume_it() {
        let cluster = cluster_at("v1.0.0");
        cluster.paused.lock().unwrap().insert("gstg-cny".into());
        let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { stage, reason }
                if stage == "gstg-cny" && reason.contains("is paused")
                    && reason.contains("kubectl --context cluster-0 -n gstg-cny rollout resume deployment/gitlab-registry")),
            "{outcome:?}"
        );
        assert_eq!(outcome.outcome(), Outcome::Blocked);
        assert!(
            cluster.calls.lock().unwrap().is_empty(),
            "not even the lock"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_downgrade_below_the_watermark_is_refused_as_a_rollback_is_unless_forced() {
        let cluster = cluster_at("v3.0.0");
        for env in ["gstg", "gprd"] {
            cluster
                .watermarks
                .lock()
                .unwrap()
                .insert(env.into(), "v3.0.0".parse().unwrap());
        }
        let mut p = plan("v2.0.0", three_stages());
        p.downgrade = crate::lifecycle::plan::Downgrade::Allowed;
        let (outcome, _, _) = run(&p, &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::RollbackFailed { reason, .. }
                if reason.contains("post-deployment migrations of v3.0.0") && reason.contains("--force")),
            "{outcome:?}"
        );
        assert_eq!(outcome.outcome(), Outcome::RollbackFailed);
        assert!(cluster.applies().is_empty());

        p.downgrade = crate::lifecycle::plan::Downgrade::BelowWatermark;
        let (outcome, _, lines) = run(&p, &cluster).await;
        assert!(
            matches!(outcome, DeployOutcome::AwaitingApproval { .. }),
            "{outcome:?}"
        );
        assert_eq!(cluster.versions("gstg-cny"), ["v2.0.0"]);
        assert!(lines.contains("--force: deploying v2.0.0 below"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_downgrade_is_refused_before_any_change() {
        let cluster = cluster_at("v3.0.0");
        let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("--allow-downgrade")),
            "{outcome:?}"
        );
        assert!(cluster.applies().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_version_that_went_live_while_waiting_for_the_lock_is_not_overwritten() {
        let cluster = cluster_at("v1.0.0");
        *cluster.changed_while_waiting.lock().unwrap() =
            Some(("gstg-cny".into(), vec!["v3.0.0".parse().unwrap()]));
        let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { reason, .. }
                if reason.contains("v3.0.0 went live while this run waited for the lock")
                    && reason.contains("--allow-downgrade")),
            "{outcome:?}"
        );
        assert!(cluster.applies().is_empty());
        assert_eq!(cluster.versions("gstg-cny"), ["v3.0.0"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupted_run_is_finished_by_running_it_again() {
        // The earlier run applied v2.0.0 to gstg-cny and was killed during the rollout.
        let cluster = cluster_at("v1.0.0");
        cluster
            .live
            .lock()
            .unwrap()
            .insert("gstg-cny".into(), vec!["v2.0.0".parse().unwrap()]);
        cluster
            .previous
            .lock()
            .unwrap()
            .insert("gstg-cny".into(), "v1.0.0".parse().unwrap());
        cluster.incomplete.lock().unwrap().insert("gstg-cny".into());
        let mut stages = three_stages();
        stages[0].pre_checks = vec!["unhealthy-now".into()];
        let (outcome, _, lines) = run(&plan("v2.0.0", stages), &cluster).await;
        assert!(
            matches!(outcome, DeployOutcome::AwaitingApproval { .. }),
            "{outcome:?}"
        );
        assert!(lines.contains("resuming"));
        assert_eq!(cluster.versions("gstg"), ["v2.0.0", "v2.0.0"]);
    }
}
