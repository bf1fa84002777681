//! Verdicts on workloads, by the rules `kubectl rollout status` and `kubectl wait` use: pure
//! functions over one object, plus small polling helpers for tests.
//!
//! `kube::runtime::conditions::is_deployment_completed` can fire on the previous rollout, and
//! `is_job_completed` never fires for a failed Job; these functions avoid both traps.
//!
//! Deliberately a second implementation: tagship has its own rollout rule
//! (`tagship::cluster::RolloutState`, and its own `PROGRESS_DEADLINE_EXCEEDED`). This one is
//! written independently from kubectl's rule so the tests and `deploy-bench` have an oracle to
//! check tagship against; do not merge the two or make one call the other.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica runs the current template and is available.
    Complete,
    /// Still rolling out; the text says what it waits for.
    Progressing(String),
    /// The rollout failed; the text is the condition's reason (e.g. `ProgressDeadlineExceeded`).
    Failed(String),
}

/// Reason the deployment controller gives when a rollout missed `progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// kubectl's rollout-status rule for a Deployment.
pub fn deployment_rollout(d: &Deployment) -> Rollout {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status.as_ref() else {
        return Rollout::Progressing("no status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Rollout::Progressing("waiting for the controller to observe the new spec".into());
    }
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
    });
    if deadline_exceeded {
        return Rollout::Failed(PROGRESS_DEADLINE_EXCEEDED.into());
    }
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted {
        return Rollout::Progressing(format!("{updated} of {wanted} updated replicas"));
    }
    if replicas > updated {
        return Rollout::Progressing(format!(
            "{} old replicas pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Rollout::Progressing(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Rollout::Complete
}

/// How a Job ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Condition `Complete=True`.
    Complete,
    /// Condition `Failed=True`.
    Failed,
}

/// The Job's outcome, or `None` while it runs.
pub fn job_outcome(job: &Job) -> Option<JobOutcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let is = |kind: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    if is("Complete") {
        Some(JobOutcome::Complete)
    } else if is("Failed") {
        Some(JobOutcome::Failed)
    } else {
        None
    }
}

/// Polls Deployment `name` until its rollout is complete or failed, or `timeout` passes.
pub async fn wait_for_rollout(
    api: &Api<Deployment>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Rollout> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let verdict = deployment_rollout(&api.get(name).await?);
        if !matches!(verdict, Rollout::Progressing(_)) {
            return Ok(verdict);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("deployment `{name}` still rolling out after {timeout:?}: {verdict:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls Job `name` until it completes or fails, or `timeout` passes.
pub async fn wait_for_job(
    api: &Api<Job>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<JobOutcome> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(outcome) = job_outcome(&api.get(name).await?) {
            return Ok(outcome);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("job `{name}` neither complete nor failed after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(json: &str) -> Deployment {
        serde_json::from_str(json).expect("deployment")
    }

    #[test]
    fn a_status_for_an_older_generation_is_never_complete() {
        let d = deployment(
            r#"{"metadata": {"generation": 3}, "spec": {"replicas": 1, "selector": {}, "template": {}},
                "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}"#,
        );
        assert!(matches!(deployment_rollout(&d), Rollout::Progressing(_)));
    }

    #[test]
    fn old_replicas_keep_a_rollout_in_progress() {
        let d = deployment(
            r#"{"metadata": {"generation": 2}, "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}}"#,
        );
        assert_eq!(
            deployment_rollout(&d),
            Rollout::Progressing("1 old replicas pending termination".into())
        );
    }

    #[test]
    fn all_updated_and_available_is_complete_and_a_missed_deadline_is_failed() {
        let done = deployment(
            r#"{"metadata": {"generation": 2}, "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}}"#,
        );
        assert_eq!(deployment_rollout(&done), Rollout::Complete);
        let failed = deployment(
            r#"{"metadata": {"generation": 2}, "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                  "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}}"#,
        );
        assert_eq!(
            deployment_rollout(&failed),
            Rollout::Failed(PROGRESS_DEADLINE_EXCEEDED.into())
        );
    }

    #[test]
    fn a_job_is_finished_only_by_a_true_complete_or_failed_condition() {
        let job = |conditions: &str| -> Job {
            serde_json::from_str(&format!(r#"{{"status": {{"conditions": {conditions}}}}}"#))
                .expect("job")
        };
        assert_eq!(job_outcome(&job("[]")), None);
        assert_eq!(
            job_outcome(&job(r#"[{"type": "Complete", "status": "True"}]"#)),
            Some(JobOutcome::Complete)
        );
        assert_eq!(
            job_outcome(&job(r#"[{"type": "Failed", "status": "True"}]"#)),
            Some(JobOutcome::Failed)
        );
    }
}
