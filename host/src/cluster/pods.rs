//! The pods of a rollout: what a new pod's status says about the release before the
//! Deployment's progress deadline does.
//!
//! A release whose containers crash-loop, cannot pull their image or cannot be configured
//! (a missing Secret key) never becomes available, but the Deployment controller reports that
//! only when `progressDeadlineSeconds` (600 s by default) has passed. The kubelet says it in the
//! pod's container statuses at once; [`pod_failure`] reads it there. Pure; the watch that feeds
//! it lives with the rollout ([`super::deployment`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Waiting reasons of a container that will not start without a change: the image cannot be
/// pulled or named, or the container cannot be configured (a missing Secret or `ConfigMap` key).
pub const NEVER_STARTS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The waiting reason of a container the kubelet restarts with a growing back-off.
pub const CRASH_LOOP: &str = "CrashLoopBackOff";

/// Why a pod of the release cannot run, as an on-call engineer would dig it out of
/// `kubectl describe pod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    /// The kubelet's word: `CrashLoopBackOff`, `ImagePullBackOff`, …, or `Restarted` for a
    /// container that restarted too often without being seen in back-off.
    pub reason: String,
    /// The pod, the container, its state and its last message.
    pub message: String,
}

/// Why `pod` cannot run, if it cannot: one of its containers (init containers first) waits
/// for a reason in [`NEVER_STARTS`], or has restarted more than `restarts_allowed` times (a
/// crash loop). A pod being deleted says nothing about the release.
pub fn pod_failure(pod: &PodView, restarts_allowed: u32) -> Option<PodFailure> {
    if pod.metadata.deleting {
        return None;
    }
    let name = pod.metadata.meta.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .map(|s| (s, "init container"))
        .chain(status.container_statuses.iter().map(|s| (s, "container")))
        .find_map(|(c, kind)| container_failure(name, kind, c, restarts_allowed))
}

fn container_failure(
    pod: &str,
    kind: &str,
    c: &ContainerStatusView,
    restarts_allowed: u32,
) -> Option<PodFailure> {
    let waiting = c.state.waiting.as_ref();
    let waiting_reason = waiting.and_then(|w| w.reason.as_deref()).unwrap_or("");
    let waiting_message = waiting
        .and_then(|w| w.message.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let last_exit = c.last_state.terminated.as_ref().map(|t| {
        let mut text = format!("it last exited {}", t.exit_code);
        if let Some(reason) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = write!(text, " ({reason})");
        }
        if let Some(message) = t
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            let _ = write!(text, ": {message}");
        }
        text
    });
    let subject = format!("pod `{pod}`: {kind} `{}`", c.name);
    if NEVER_STARTS.contains(&waiting_reason) {
        let mut message = format!("{subject} is waiting in {waiting_reason}");
        if let Some(said) = waiting_message {
            let _ = write!(message, ": {said}");
        }
        return Some(PodFailure {
            reason: waiting_reason.to_owned(),
            message,
        });
    }
    let restarts = u32::try_from(c.restart_count).unwrap_or(0);
    if restarts <= restarts_allowed {
        return None;
    }
    let times = if restarts == 1 { "once" } else { "times" };
    let restarted = if restarts == 1 {
        "restarted once".to_owned()
    } else {
        format!("restarted {restarts} {times}")
    };
    let (reason, mut message) = if waiting_reason == CRASH_LOOP {
        (
            CRASH_LOOP,
            format!("{subject} is in {CRASH_LOOP}, {restarted} ({restarts_allowed} allowed)"),
        )
    } else {
        (
            "Restarted",
            format!("{subject} has {restarted} ({restarts_allowed} allowed)"),
        )
    };
    if let Some(said) = waiting_message {
        let _ = write!(message, ": {said}");
    }
    if let Some(exit) = last_exit {
        let _ = write!(message, "; {exit}");
    }
    Some(PodFailure {
        reason: reason.to_owned(),
        message,
    })
}

/// The parts of a pod the rollout reads, decoded without the rest (a rollout's watch sees every
/// status write of every pod of the namespace).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodView {
    #[serde(deserialize_with = "pod_meta")]
    metadata: PodMeta,
    spec: Option<PodSpecView>,
    status: Option<PodStatusView>,
}

impl PodView {
    /// The Deployment whose `ReplicaSet` owns the pod: the owner's name without the
    /// `-<pod-template-hash>` the Deployment controller appends.
    pub fn deployment(&self) -> Option<&str> {
        let hash = self.metadata.template_hash.as_deref()?;
        let owner = self.metadata.replica_set.as_deref()?;
        owner.strip_suffix(hash)?.strip_suffix('-')
    }

    /// Whether every container and init container of the pod runs the image `images` (by
    /// name) gives it: whether it is a pod of that template's release.
    pub fn runs(&self, images: &BTreeMap<String, String>) -> bool {
        let Some(spec) = &self.spec else {
            return false;
        };
        let mut all = spec
            .init_containers
            .iter()
            .chain(&spec.containers)
            .peekable();
        all.peek().is_some()
            && all.all(|c| images.get(&c.name) == Some(&c.image.clone().unwrap_or_default()))
    }
}

#[derive(Debug, Clone, Default)]
struct PodMeta {
    meta: ObjectMeta,
    template_hash: Option<String>,
    replica_set: Option<String>,
    deleting: bool,
}

fn pod_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PodMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Meta {
        name: Option<String>,
        namespace: Option<String>,
        resource_version: Option<String>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        owner_references: Vec<Owner>,
        deletion_timestamp: Option<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Owner {
        kind: String,
        name: String,
    }
    let mut meta = Meta::deserialize(d)?;
    Ok(PodMeta {
        template_hash: meta.labels.remove("pod-template-hash"),
        replica_set: meta
            .owner_references
            .into_iter()
            .find(|o| o.kind == "ReplicaSet")
            .map(|o| o.name),
        deleting: meta.deletion_timestamp.is_some(),
        meta: ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            resource_version: meta.resource_version,
            ..ObjectMeta::default()
        },
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PodSpecView {
    #[serde(default)]
    containers: Vec<ContainerView>,
    #[serde(default, rename = "initContainers")]
    init_containers: Vec<ContainerView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ContainerView {
    name: String,
    image: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatusView {
    #[serde(default)]
    container_statuses: Vec<ContainerStatusView>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatusView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatusView {
    name: String,
    #[serde(default)]
    restart_count: i32,
    #[serde(default)]
    state: StateView,
    #[serde(default)]
    last_state: StateView,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct StateView {
    waiting: Option<WaitingView>,
    terminated: Option<TerminatedView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct WaitingView {
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TerminatedView {
    exit_code: i32,
    reason: Option<String>,
    message: Option<String>,
}

impl Resource for PodView {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind((): &()) -> Cow<'_, str> {
        Pod::kind(&())
    }
    fn group((): &()) -> Cow<'_, str> {
        Pod::group(&())
    }
    fn version((): &()) -> Cow<'_, str> {
        Pod::version(&())
    }
    fn plural((): &()) -> Cow<'_, str> {
        Pod::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(statuses: &Value) -> PodView {
        serde_json::from_value(json!({
            "metadata": { "name": "registry-7d9f-abcde", "namespace": "gitlab",
                "labels": { "app": "registry", "pod-template-hash": "7d9f" },
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "gitlab-registry-7d9f", "uid": "1" }] },
            "spec": { "initContainers": [{ "name": "configure", "image": "r:v2" }],
                "containers": [{ "name": "registry", "image": "r:v2" }, { "name": "sidecar", "image": "s:v9" }] },
            "status": statuses,
        }))
        .expect("a pod")
    }

    fn waiting(reason: &str, message: &str, restarts: i32) -> Value {
        json!({ "name": "registry", "restartCount": restarts,
            "state": { "waiting": { "reason": reason, "message": message } } })
    }

    /// (what, status, restarts allowed, expected reason and message).
    type Case<'a> = (&'a str, Value, u32, Option<(&'a str, &'a str)>);

    #[test]
    fn a_pod_that_cannot_run_is_named_with_its_container_state_and_message() {
        let crash = json!({ "name": "registry", "restartCount": 3,
            "state": { "waiting": { "reason": "CrashLoopBackOff",
                "message": "back-off 40s restarting failed container=registry" } },
            "lastState": { "terminated": { "exitCode": 1, "reason": "Error",
                "message": "open /etc/docker/registry/config.yml: no such file or directory" } } });
        let table: Vec<Case> = vec![
            (
                "running and ready",
                json!({ "containerStatuses": [{ "name": "registry", "restartCount": 0, "state": { "running": {} } }] }),
                0,
                None,
            ),
            ("not started yet", json!({}), 0, None),
            (
                "still creating",
                json!({ "containerStatuses": [waiting("ContainerCreating", "", 0)] }),
                0,
                None,
            ),
            (
                "crash loop past the restarts allowed",
                json!({ "containerStatuses": [crash.clone()] }),
                2,
                Some((
                    "CrashLoopBackOff",
                    "pod `registry-7d9f-abcde`: container `registry` is in CrashLoopBackOff, restarted 3 times (2 allowed): back-off 40s restarting failed container=registry; it last exited 1 (Error): open /etc/docker/registry/config.yml: no such file or directory",
                )),
            ),
            (
                "a crash loop within the restarts allowed",
                json!({ "containerStatuses": [crash] }),
                3,
                None,
            ),
            (
                "restarted without being seen in back-off",
                json!({ "containerStatuses": [{ "name": "registry", "restartCount": 1, "state": { "running": {} },
                    "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } } }] }),
                0,
                Some((
                    "Restarted",
                    "pod `registry-7d9f-abcde`: container `registry` has restarted once (0 allowed); it last exited 137 (OOMKilled)",
                )),
            ),
            (
                "a missing Secret key, however many restarts are allowed",
                json!({ "containerStatuses": [waiting("CreateContainerConfigError", "couldn't find key password in Secret gitlab/registry-db", 0)] }),
                100,
                Some((
                    "CreateContainerConfigError",
                    "pod `registry-7d9f-abcde`: container `registry` is waiting in CreateContainerConfigError: couldn't find key password in Secret gitlab/registry-db",
                )),
            ),
            (
                "an image that cannot be pulled",
                json!({ "containerStatuses": [waiting("ImagePullBackOff", "Back-off pulling image \"r:v2\"", 0)] }),
                0,
                Some((
                    "ImagePullBackOff",
                    "pod `registry-7d9f-abcde`: container `registry` is waiting in ImagePullBackOff: Back-off pulling image \"r:v2\"",
                )),
            ),
            (
                "an init container first",
                json!({ "initContainerStatuses": [{ "name": "configure", "restartCount": 2,
                    "state": { "waiting": { "reason": "CrashLoopBackOff" } } }],
                    "containerStatuses": [waiting("PodInitializing", "", 0)] }),
                0,
                Some((
                    "CrashLoopBackOff",
                    "pod `registry-7d9f-abcde`: init container `configure` is in CrashLoopBackOff, restarted 2 times (0 allowed)",
                )),
            ),
        ];
        for (what, status, allowed, expected) in table {
            let found = pod_failure(&pod(&status), allowed);
            assert_eq!(
                found
                    .as_ref()
                    .map(|f| (f.reason.as_str(), f.message.as_str())),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn a_pod_being_deleted_says_nothing_about_the_release() {
        let mut deleting: Value = json!({ "metadata": { "name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z" },
            "status": { "containerStatuses": [waiting("ImagePullBackOff", "", 0)] } });
        let view: PodView = serde_json::from_value(deleting.take()).expect("a pod");
        assert_eq!(pod_failure(&view, 0), None);
    }

    #[test]
    fn a_pod_knows_its_deployment_and_whether_it_runs_a_template() {
        let p = pod(&json!({}));
        assert_eq!(p.deployment(), Some("gitlab-registry"));
        let images = |registry: &str| -> BTreeMap<String, String> {
            [
                ("configure", registry),
                ("registry", registry),
                ("sidecar", "s:v9"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect()
        };
        assert!(p.runs(&images("r:v2")));
        assert!(!p.runs(&images("r:v1")), "the previous release's pod");
        let orphan: PodView =
            serde_json::from_value(json!({ "metadata": { "name": "p" } })).expect("a pod");
        assert_eq!(orphan.deployment(), None);
        assert!(!orphan.runs(&images("r:v2")));
    }

    #[test]
    fn the_view_reads_what_the_whole_pod_does() {
        let text = json!({
            "metadata": { "name": "registry-7d9f-abcde", "namespace": "gitlab",
                "labels": { "pod-template-hash": "7d9f" },
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gitlab-registry-7d9f", "uid": "1" }] },
            "spec": { "containers": [{ "name": "registry", "image": "r:v2" }] },
            "status": { "phase": "Running", "containerStatuses": [{ "name": "registry", "ready": false,
                "restartCount": 4, "image": "r:v2", "imageID": "", "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] },
        });
        let whole: Pod = serde_json::from_value(text.clone()).expect("a whole pod");
        let view: PodView = serde_json::from_value(text).expect("its view");
        let status = whole.status.expect("status");
        let c = &status.container_statuses.expect("statuses")[0];
        let failure = pod_failure(&view, 3).expect("a failure");
        assert!(
            failure
                .message
                .contains(&format!("restarted {} times", c.restart_count))
        );
        assert_eq!(
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref()),
            Some(failure.reason.as_str())
        );
    }
}
