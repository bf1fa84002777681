//! Jobs (migrations): build one's pod from a workload's pod template, run it to completion,
//! idempotently by name, and clean up after it.
//!
//! # Guarantees
//!
//! - A Job that already completed under the same name is not run again.
//! - A Job that failed under the same name is deleted and created afresh, so a re-run retries.
//! - A Job still running under the same name is waited for, not duplicated.
//! - A Job that succeeded is deleted once its result is read (with its pods); when one fails,
//!   it is kept for `kubectl logs` and every older failed Job of the same labels is deleted,
//!   so the namespace holds at most the last failed one.
//! - The Job's pod never carries the workload's labels, so no Deployment or Service selects it.
//!
//! # Caveats
//!
//! The name is the identity: callers derive it from everything that matters (image, command,
//! environment) so that a different Job never reuses another's name.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions, PropagationPolicy};
use serde_json::{Value, json};

use super::retry;
use super::watch::watch_until;
use super::{ClusterError, FIELD_MANAGER, KubeCluster, KubeError, Object};

/// A Job to run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobSpec {
    /// The Job's name: deterministic (the same work has the same name), DNS-1123, at most 63
    /// characters.
    pub name: String,
    /// The Job's pod spec (`spec.template.spec`), e.g. from [`migration_pod`]; its
    /// `restartPolicy` is set to `Never`.
    pub pod: Value,
    /// Retries of a failed pod before the Job fails. Migrations use 0: never retried blindly.
    pub backoff_limit: i32,
    /// Labels of the Job and its pod; also what finds the older Jobs of the same work to clean
    /// up.
    pub labels: BTreeMap<String, String>,
}

/// What a migration runs, in a workload's pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationRun {
    /// The container of the pod template the migration runs as.
    pub container: String,
    /// Its image (the component at the target version).
    pub image: String,
    /// Init containers whose image changes (those running the component), by name.
    pub init_images: BTreeMap<String, String>,
    /// The container's command; it replaces the workload's.
    pub command: Vec<String>,
    /// The container's arguments; they replace the workload's.
    pub args: Vec<String>,
    /// Environment variables set on top of the container's own.
    pub env: BTreeMap<String, String>,
    /// The pod's service account instead of the workload's.
    pub service_account: Option<String>,
}

/// Pod-level fields of a workload's pod template a migration pod keeps: what it needs to reach
/// the same configuration, secrets and database, on the same kind of node.
const POD_FIELDS: &[&str] = &[
    "volumes",
    "initContainers",
    "serviceAccountName",
    "automountServiceAccountToken",
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "affinity",
    "securityContext",
    "priorityClassName",
    "hostAliases",
    "dnsPolicy",
    "dnsConfig",
    "enableServiceLinks",
    "runtimeClassName",
    "schedulerName",
];

/// Container fields a migration container does not take from the workload's: it serves no
/// traffic and is not probed.
const DROPPED_CONTAINER_FIELDS: &[&str] = &[
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "command",
    "args",
];

/// Why a migration pod cannot be built from a pod template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template has no container of that name.
    #[error("has no container `{container}` (it has: {has})")]
    NoContainer {
        /// The container asked for.
        container: String,
        /// The containers it has, comma-separated.
        has: String,
    },
    /// The template is not a pod spec.
    #[error("has a pod template tagship cannot read")]
    Unreadable,
}

/// The pod spec of a migration Job, from `template` (a workload's `spec.template.spec` as the
/// server returned it): the container `run.container` with its image, command, arguments and
/// environment from `run`, probes and ports dropped, as the only container; the pod's volumes,
/// init containers (those named in `run.init_images` at their new image), service account,
/// pull secrets, scheduling and security settings ([`POD_FIELDS`]); `restartPolicy: Never`.
/// Everything else of the template (its other containers, labels, annotations) is left out.
pub fn migration_pod(template: &Value, run: &MigrationRun) -> Result<Value, TemplateError> {
    let spec = template.as_object().ok_or(TemplateError::Unreadable)?;
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .ok_or(TemplateError::Unreadable)?;
    let Some(source) = containers
        .iter()
        .find(|c| c["name"].as_str() == Some(&run.container))
    else {
        let has: Vec<&str> = containers
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        return Err(TemplateError::NoContainer {
            container: run.container.clone(),
            has: has.join(", "),
        });
    };
    let mut container = source.clone();
    let fields = container.as_object_mut().ok_or(TemplateError::Unreadable)?;
    for field in DROPPED_CONTAINER_FIELDS {
        fields.remove(*field);
    }
    fields.insert("image".into(), json!(run.image));
    if !run.command.is_empty() {
        fields.insert("command".into(), json!(run.command));
    }
    if !run.args.is_empty() {
        fields.insert("args".into(), json!(run.args));
    }
    if !run.env.is_empty() {
        let mut env: Vec<Value> = fields
            .get("env")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // The migration's own values win over the workload's of the same name.
        env.retain(|e| e["name"].as_str().is_none_or(|n| !run.env.contains_key(n)));
        env.extend(
            run.env
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": value })),
        );
        fields.insert("env".into(), json!(env));
    }
    let mut pod = serde_json::Map::new();
    for field in POD_FIELDS {
        if let Some(value) = spec.get(*field) {
            pod.insert((*field).to_owned(), value.clone());
        }
    }
    if let Some(Value::Array(inits)) = pod.get_mut("initContainers") {
        for init in inits {
            let new = init["name"]
                .as_str()
                .and_then(|name| run.init_images.get(name));
            if let Some(image) = new {
                init["image"] = json!(image);
            }
        }
    }
    if let Some(account) = &run.service_account {
        pod.insert("serviceAccountName".into(), json!(account));
    }
    pod.insert("containers".into(), json!([container]));
    pod.insert("restartPolicy".into(), json!("Never"));
    Ok(Value::Object(pod))
}

/// How a [`KubeCluster::run_job`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Condition `Complete=True`.
    Succeeded,
    /// Condition `Failed=True`.
    Failed {
        /// The condition's reason and message, e.g. `BackoffLimitExceeded: Job has reached the
        /// specified backoff limit`, and what its pod's container said when it ended, when it
        /// said something (its termination message, or its exit code and reason).
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

/// The Job object sent to the server: only fields a 1.20 server knows (the pod comes from one).
pub fn job_body(ns: &str, spec: &JobSpec) -> Value {
    let mut pod = spec.pod.clone();
    pod["restartPolicy"] = json!("Never");
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

/// [`job_body`] as a typed Job.
fn job_object(object: Object<'_>, ns: &str, spec: &JobSpec) -> Result<Job, ClusterError> {
    serde_json::from_value(job_body(ns, spec)).map_err(|err| ClusterError::Corrupt {
        what: format!("the spec of {object}"),
        reason: err.to_string(),
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
        let outcome = watch_until(&watched, &self.server, object, job_outcome).await?;
        match outcome {
            JobOutcome::Succeeded => {
                self.clean_up(&api, spec, None).await;
                Ok(JobOutcome::Succeeded)
            }
            JobOutcome::Failed { reason } => {
                self.clean_up(&api, spec, Some(&spec.name)).await;
                let said = self.pod_said(ns, &spec.name).await;
                Ok(JobOutcome::Failed {
                    reason: match said {
                        Some(said) => format!("{reason}; its pod said: {said}"),
                        None => reason,
                    },
                })
            }
            JobOutcome::TimedOut => Ok(JobOutcome::TimedOut),
        }
    }

    /// Validates `spec` with the server's dry run (`dryRun=All`): the API server checks the Job
    /// as it would create it, and stores nothing.
    pub async fn validate_job(&self, ns: &str, spec: &JobSpec) -> Result<(), ClusterError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let object = Object::new("job", ns, &spec.name);
        let body = job_object(object, ns, spec)?;
        let params = PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        match retry::retry(&self.server, || api.create(&params, &body)).await {
            // A Job of that name exists (a run in progress, or the last failed one, which a
            // real run replaces): the server validated the rest before saying so.
            Ok(_) => Ok(()),
            Err(err) if retry::is_conflict(&err) => Ok(()),
            Err(err) => Err(object.api_error("validate", err)),
        }
    }

    /// Deletes the finished Jobs of `spec`'s labels (its work, earlier runs included) but
    /// `keep`. A Job that cannot be deleted is left, and said with -v: clean-up never fails a
    /// migration.
    async fn clean_up(&self, api: &Api<Job>, spec: &JobSpec, keep: Option<&str>) {
        let selector: Vec<String> = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let params = ListParams::default().labels(&selector.join(","));
        let jobs = match retry::retry(&self.server, || api.list(&params)).await {
            Ok(jobs) => jobs.items,
            Err(err) => {
                tracing::info!(
                    "cannot list finished migration Jobs to clean up: {}",
                    KubeError(err)
                );
                return;
            }
        };
        let delete = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        for job in jobs {
            let name = job.metadata.name.clone().unwrap_or_default();
            if Some(name.as_str()) == keep || job_outcome(&job).is_none() {
                continue;
            }
            match retry::retry(&self.server, || api.delete(&name, &delete)).await {
                Ok(_) => tracing::debug!("deleted finished migration Job `{name}`"),
                Err(err) if retry::is_not_found(&err) => {}
                Err(err) => tracing::info!(
                    "cannot delete finished migration Job `{name}`: {}",
                    KubeError(err)
                ),
            }
        }
    }

    /// What the ended container of Job `job`'s pod said: its termination message, else its exit
    /// code and reason. `None` when no pod of it can be read or none ended.
    async fn pod_said(&self, ns: &str, job: &str) -> Option<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let params = ListParams::default().labels(&format!("job-name={job}"));
        let pods = retry::retry(&self.server, || api.list(&params))
            .await
            .ok()?;
        pods.items.iter().rev().find_map(|pod| {
            let status = pod.status.as_ref()?;
            status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
                .find_map(|c| {
                    let ended = c.state.as_ref()?.terminated.as_ref()?;
                    (ended.exit_code != 0).then(|| {
                        let message = ended.message.as_deref().map_or("", str::trim);
                        let how = format!(
                            "container `{}` exited {}{}",
                            c.name,
                            ended.exit_code,
                            ended
                                .reason
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        );
                        if message.is_empty() {
                            how
                        } else {
                            format!("{how}: {message}")
                        }
                    })
                })
        })
    }

    async fn create_job(
        &self,
        api: &Api<Job>,
        object: Object<'_>,
        ns: &str,
        spec: &JobSpec,
    ) -> Result<(), ClusterError> {
        let body = job_object(object, ns, spec)?;
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
    fn the_job_body_is_the_pod_given_that_never_restarts() {
        let spec = JobSpec {
            name: "migrate-abc".into(),
            pod: json!({ "containers": [{ "name": "registry", "image": "r:v2" }] }),
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
                    "spec": { "restartPolicy": "Never",
                        "containers": [{ "name": "registry", "image": "r:v2" }] } } },
            })
        );
    }

    /// The registry's pod as GitLab's chart renders it (trimmed): an init container of the
    /// registry's image, the registry with its config volume, Secret env and probes, a sidecar.
    fn chart_pod() -> Value {
        json!({
            "serviceAccountName": "registry",
            "imagePullSecrets": [{ "name": "pull" }],
            "securityContext": { "runAsUser": 1000, "fsGroup": 1000 },
            "nodeSelector": { "pool": "registry" },
            "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "registry" }],
            "affinity": { "nodeAffinity": {} },
            "priorityClassName": "gitlab-high",
            "terminationGracePeriodSeconds": 30,
            "volumes": [
                { "name": "config", "configMap": { "name": "registry-config" } },
                { "name": "etc", "emptyDir": {} },
            ],
            "initContainers": [
                { "name": "configure", "image": "reg/registry:v1.0.0-gitlab",
                  "command": ["sh", "/config/configure"],
                  "volumeMounts": [{ "name": "etc", "mountPath": "/registry" }] },
                { "name": "certificates", "image": "reg/certificates:v9" },
            ],
            "containers": [
                { "name": "registry", "image": "reg/registry:v1.0.0-gitlab",
                  "args": ["serve", "/etc/docker/registry/config.yml"],
                  "env": [
                      { "name": "REGISTRY_DATABASE_PASSWORD",
                        "valueFrom": { "secretKeyRef": { "name": "registry-db", "key": "password" } } },
                      { "name": "GOMAXPROCS", "value": "2" },
                  ],
                  "envFrom": [{ "configMapRef": { "name": "registry-env" } }],
                  "volumeMounts": [{ "name": "config", "mountPath": "/etc/docker/registry" }],
                  "resources": { "requests": { "cpu": "100m" } },
                  "securityContext": { "readOnlyRootFilesystem": true },
                  "workingDir": "/srv",
                  "ports": [{ "containerPort": 5000 }],
                  "livenessProbe": { "httpGet": { "path": "/debug/health", "port": 5001 } },
                  "readinessProbe": { "httpGet": { "path": "/debug/health", "port": 5001 } },
                  "lifecycle": { "preStop": { "exec": { "command": ["sleep", "5"] } } } },
                { "name": "sidecar", "image": "busybox:1.36" },
            ],
        })
    }

    #[test]
    fn a_migration_runs_in_the_workload_s_pod_with_its_own_command_and_no_probes() {
        let run = MigrationRun {
            container: "registry".into(),
            image: "reg/registry:v2.0.0-gitlab".into(),
            init_images: [(
                "configure".to_owned(),
                "reg/registry:v2.0.0-gitlab".to_owned(),
            )]
            .into(),
            command: vec![
                "registry".into(),
                "database".into(),
                "migrate".into(),
                "up".into(),
            ],
            args: vec![],
            env: [
                ("GOMAXPROCS".to_owned(), "1".to_owned()),
                ("EXTRA".to_owned(), "x".to_owned()),
            ]
            .into(),
            service_account: None,
        };
        let pod = migration_pod(&chart_pod(), &run).expect("a pod");
        assert_eq!(
            pod["containers"],
            json!([{ "name": "registry", "image": "reg/registry:v2.0.0-gitlab",
                "command": ["registry", "database", "migrate", "up"],
                "env": [
                    { "name": "REGISTRY_DATABASE_PASSWORD",
                      "valueFrom": { "secretKeyRef": { "name": "registry-db", "key": "password" } } },
                    { "name": "EXTRA", "value": "x" },
                    { "name": "GOMAXPROCS", "value": "1" },
                ],
                "envFrom": [{ "configMapRef": { "name": "registry-env" } }],
                "volumeMounts": [{ "name": "config", "mountPath": "/etc/docker/registry" }],
                "resources": { "requests": { "cpu": "100m" } },
                "securityContext": { "readOnlyRootFilesystem": true },
                "workingDir": "/srv" }]),
            "the workload's args are replaced, the sidecar is not there"
        );
        let whole = chart_pod();
        for field in POD_FIELDS.iter().filter(|f| **f != "initContainers") {
            assert_eq!(pod.get(*field), whole.get(*field), "{field}");
        }
        assert_eq!(
            pod["initContainers"][0]["image"],
            "reg/registry:v2.0.0-gitlab"
        );
        assert_eq!(
            pod["initContainers"][0]["command"],
            json!(["sh", "/config/configure"])
        );
        assert_eq!(
            pod["initContainers"][1]["image"], "reg/certificates:v9",
            "not the component"
        );
        assert_eq!(pod["restartPolicy"], "Never");
        assert!(pod.get("terminationGracePeriodSeconds").is_none());

        let own = MigrationRun {
            args: vec!["--dry-run".into()],
            service_account: Some("migrations".into()),
            ..run
        };
        let pod = migration_pod(&whole, &own).expect("a pod");
        assert_eq!(pod["containers"][0]["args"], json!(["--dry-run"]));
        assert_eq!(pod["serviceAccountName"], "migrations");
    }

    #[test]
    fn a_container_the_template_lacks_is_named_with_those_it_has() {
        let run = MigrationRun {
            container: "registyr".into(),
            ..MigrationRun::default()
        };
        assert_eq!(
            migration_pod(&chart_pod(), &run).unwrap_err().to_string(),
            "has no container `registyr` (it has: registry, sidecar)"
        );
        assert_eq!(
            migration_pod(&json!("nope"), &run),
            Err(TemplateError::Unreadable)
        );
    }
}
