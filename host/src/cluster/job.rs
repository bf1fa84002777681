//! Jobs (migrations): run one to completion, idempotently by name.
//!
//! # Guarantees
//!
//! - A Job that already completed under the same name is not run again.
//! - A Job that failed under the same name is deleted and created afresh, so a re-run retries.
//! - A Job still running under the same name is waited for, not duplicated.
//!
//! # Caveats
//!
//! The name is the identity: callers derive it from everything that matters (image, command,
//! environment) so that a different Job never reuses another's name.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, PostParams, Preconditions, PropagationPolicy};
use serde_json::{Value, json};

use super::retry;
use super::watch::watch_until;
use super::{ClusterError, FIELD_MANAGER, KubeCluster, Object};

/// Name of the Job's single container.
pub const JOB_CONTAINER: &str = "job";

/// A Job to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobSpec {
    /// The Job's name: deterministic (the same work has the same name), DNS-1123, at most 63
    /// characters.
    pub name: String,
    /// The container image.
    pub image: String,
    /// The container's command; empty: the image's entrypoint.
    pub command: Vec<String>,
    /// The container's arguments; empty: the image's.
    pub args: Vec<String>,
    /// Environment variables of the container.
    pub env: BTreeMap<String, String>,
    /// The pod's service account; `None`: the namespace's default.
    pub service_account: Option<String>,
    /// Retries of a failed pod before the Job fails. Migrations use 0: never retried blindly.
    pub backoff_limit: i32,
    /// Labels of the Job and its pod.
    pub labels: BTreeMap<String, String>,
}

/// How a [`KubeCluster::run_job`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Condition `Complete=True`.
    Succeeded,
    /// Condition `Failed=True`.
    Failed {
        /// The condition's reason and message, e.g. `BackoffLimitExceeded: Job has reached the
        /// specified backoff limit`.
        reason: String,
    },
    /// The timeout passed first; the Job keeps running.
    TimedOut,
}

/// The Job's outcome, `None` while it runs. Waits for `Complete` **or** `Failed`: a failed Job
/// never becomes complete.
pub fn job_outcome(job: &Job) -> Option<JobOutcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if holds("Complete").is_some() {
        return Some(JobOutcome::Succeeded);
    }
    holds("Failed").map(|c| JobOutcome::Failed {
        reason: match (c.reason.as_deref(), c.message.as_deref()) {
            (Some(reason), Some(message)) => format!("{reason}: {message}"),
            (Some(text), None) | (None, Some(text)) => text.to_owned(),
            (None, None) => "failed".to_owned(),
        },
    })
}

/// The Job object sent to the server: only fields a 1.20 server knows.
fn job_body(ns: &str, spec: &JobSpec) -> Value {
    let env: Vec<Value> = spec
        .env
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let mut container = json!({ "name": JOB_CONTAINER, "image": spec.image });
    if !spec.command.is_empty() {
        container["command"] = json!(spec.command);
    }
    if !spec.args.is_empty() {
        container["args"] = json!(spec.args);
    }
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    let mut pod = json!({ "restartPolicy": "Never", "containers": [container] });
    if let Some(account) = &spec.service_account {
        pod["serviceAccountName"] = json!(account);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": spec.name, "namespace": ns, "labels": spec.labels },
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "template": { "metadata": { "labels": spec.labels }, "spec": pod },
        },
    })
}

impl KubeCluster {
    /// Runs `job` in `ns` until it completes or fails, or `timeout` passes (the whole call,
    /// including deleting a failed predecessor).
    ///
    /// An existing complete Job of the same name is [`JobOutcome::Succeeded`] without running
    /// again; an existing failed one is deleted (propagation `Background`) and created afresh; a
    /// running one is waited for.
    pub async fn run_job(
        &self,
        ns: &str,
        job: &JobSpec,
        timeout: Duration,
    ) -> Result<JobOutcome, ClusterError> {
        tokio::time::timeout(timeout, self.run_job_inner(ns, job))
            .await
            .unwrap_or(Ok(JobOutcome::TimedOut))
    }

    async fn run_job_inner(&self, ns: &str, spec: &JobSpec) -> Result<JobOutcome, ClusterError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let object = Object::new("job", ns, &spec.name);
        let existing = retry::retry(&self.server, || api.get_opt(&spec.name))
            .await
            .map_err(|err| object.api_error("read", err))?;
        match existing.as_ref().map(|job| (job, job_outcome(job))) {
            Some((_, Some(JobOutcome::Succeeded))) => return Ok(JobOutcome::Succeeded),
            Some((old, Some(_))) => {
                tracing::info!(%object, "deleting the failed job to run it again");
                self.delete_job(&api, object, old).await?;
                self.create_job(&api, object, ns, spec).await?;
            }
            Some((_, None)) => tracing::info!(%object, "job already running; waiting for it"),
            None => self.create_job(&api, object, ns, spec).await?,
        }
        let watched: Api<Job> = Api::namespaced(self.watcher.clone(), ns);
        watch_until(&watched, &self.server, object, job_outcome).await
    }

    async fn create_job(
        &self,
        api: &Api<Job>,
        object: Object<'_>,
        ns: &str,
        spec: &JobSpec,
    ) -> Result<(), ClusterError> {
        let body: Job =
            serde_json::from_value(job_body(ns, spec)).map_err(|err| ClusterError::Corrupt {
                what: format!("the spec of {object}"),
                reason: err.to_string(),
            })?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        // Retried on transient failures: the name is the Job's identity, so a create that landed
        // but whose answer was lost comes back as 409 below, never as a second Job.
        match retry::retry(&self.server, || api.create(&params, &body)).await {
            // Someone created it first (another runner, or our retried request): wait for theirs.
            Err(err) if retry::is_conflict(&err) => Ok(()),
            Err(err) => Err(object.api_error("create", err)),
            Ok(_) => Ok(()),
        }
    }

    /// Deletes the failed Job `old` and waits until its name is free.
    async fn delete_job(
        &self,
        api: &Api<Job>,
        object: Object<'_>,
        old: &Job,
    ) -> Result<(), ClusterError> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: old.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match retry::retry(&self.server, || api.delete(object.name, &params)).await {
            Ok(_) => {}
            // Gone already, or replaced by someone else (precondition failed): nothing to delete.
            Err(err) if retry::is_not_found(&err) || retry::is_conflict(&err) => {}
            Err(err) => return Err(object.api_error("delete", err)),
        }
        // Background propagation removes the Job object at once (its pods follow); wait for the
        // name to be free before creating the new Job under it.
        let mut attempt = 0;
        loop {
            let current = retry::retry(&self.server, || api.get_opt(object.name))
                .await
                .map_err(|err| object.api_error("read", err))?;
            match current {
                Some(job) if job.metadata.uid == old.metadata.uid => {
                    attempt += 1;
                    tokio::time::sleep(retry::backoff(attempt.min(4))).await;
                }
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &Value) -> Job {
        serde_json::from_value(json!({ "metadata": { "name": "m" }, "status": status }))
            .expect("a job")
    }

    #[test]
    fn job_outcome_waits_for_complete_or_failed() {
        let failed = json!({ "failed": 1, "conditions": [{ "type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit" }] });
        let table = [
            ("no status yet", json!({}), None),
            ("running", json!({ "active": 1 }), None),
            (
                "complete",
                json!({ "succeeded": 1, "conditions": [{ "type": "Complete", "status": "True" }] }),
                Some(JobOutcome::Succeeded),
            ),
            (
                "failed",
                failed,
                Some(JobOutcome::Failed {
                    reason: "BackoffLimitExceeded: Job has reached the specified backoff limit"
                        .into(),
                }),
            ),
            (
                "a false condition is not an outcome",
                json!({ "conditions": [{ "type": "Failed", "status": "False" }] }),
                None,
            ),
        ];
        for (what, status, expected) in table {
            assert_eq!(job_outcome(&job(&status)), expected, "{what}");
        }
    }

    #[test]
    fn the_job_body_holds_only_what_the_spec_says() {
        let spec = JobSpec {
            name: "migrate-abc".into(),
            image: "r:v2".into(),
            command: vec![],
            args: vec!["migrate".into(), "up".into()],
            env: [("A".to_owned(), "1".to_owned())].into(),
            service_account: None,
            backoff_limit: 0,
            labels: [("app".to_owned(), "registry".to_owned())].into(),
        };
        assert_eq!(
            job_body("gitlab", &spec),
            json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": { "name": "migrate-abc", "namespace": "gitlab", "labels": { "app": "registry" } },
                "spec": { "backoffLimit": 0, "template": {
                    "metadata": { "labels": { "app": "registry" } },
                    "spec": { "restartPolicy": "Never", "containers": [{ "name": "job", "image": "r:v2",
                        "args": ["migrate", "up"], "env": [{ "name": "A", "value": "1" }] }] } } },
            })
        );
    }
}
