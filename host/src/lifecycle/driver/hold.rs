//! The environment lock as a run takes it, holds it while a stage works, and releases it; and
//! the stage re-read once the lock is held.

use crate::context::EventKind;

use super::{DeployOutcome, Relocked, Run};
use crate::lifecycle::decide::{self, StageAction};
use crate::lifecycle::lock::{EnvironmentLock, LockFailure};
use crate::lifecycle::plan::StagePlan;
use crate::lifecycle::ports::{Cluster, Holder, Notify, Phase, Reporter, StageLive};

impl<'a, C: Cluster, K, N: Notify, R: Reporter> Run<'a, C, K, N, R> {
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
    pub(in crate::lifecycle) async fn hold<T>(
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
    pub(in crate::lifecycle) async fn lock(
        &mut self,
        stage: &StagePlan,
    ) -> Result<(), DeployOutcome> {
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

    pub(in crate::lifecycle) async fn release(&mut self) {
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
    pub(super) async fn after_lock(
        &self,
        stage: &StagePlan,
    ) -> Result<Option<Relocked>, DeployOutcome> {
        let live = self
            .cluster
            .live(stage)
            .await
            .map_err(|e| Self::port_failed(stage, &e))?;
        match decide::stage_action(self.plan, stage, &live) {
            StageAction::Deploy { previous, resume } => Ok(Some(Relocked {
                previous,
                resume,
                live,
            })),
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
}
