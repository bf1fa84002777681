//! JSON views of the contract's records, for webhook bodies and messages.
//!
//! Field names are `snake_case`; optional fields are `null` when absent; an event kind is its WIT
//! name (`stage-started`). The shape of [`event`]:
//!
//! ```json
//! {"kind": "stage-succeeded", "deploy_id": "…", "timestamp": "2026-01-01T00:00:00Z",
//!  "message": "…",
//!  "context": {"component": "registry", "version": "v3.1.0", "previous_version": "v3.0.0",
//!              "stage": "gstg-cny", "environment": "gstg", "pipeline_url": null,
//!              "app_version": null,
//!              "workloads": [{"cluster": "…", "namespace": "…", "workload": "…",
//!                             "container": "…", "image": "…", "version": "v3.0.0"}]}}
//! ```

use serde_json::{Value, json};

use crate::bindings::tagship::plugin::types::{
    DeployContext, Event, EventKind, HealthStatus, WorkloadVersion,
};

/// The WIT name of an event kind, e.g. `stage-started`.
#[must_use]
pub fn event_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::DeployStarted => "deploy-started",
        EventKind::DeploySucceeded => "deploy-succeeded",
        EventKind::DeployFailed => "deploy-failed",
        EventKind::StageStarted => "stage-started",
        EventKind::StageSucceeded => "stage-succeeded",
        EventKind::StageFailed => "stage-failed",
        EventKind::AwaitingApproval => "awaiting-approval",
        EventKind::RollbackStarted => "rollback-started",
        EventKind::RollbackSucceeded => "rollback-succeeded",
        EventKind::RollbackFailed => "rollback-failed",
        EventKind::RollbackRefused => "rollback-refused",
        EventKind::CheckBlocked => "check-blocked",
        EventKind::LockWaiting => "lock-waiting",
        EventKind::Test => "test",
    }
}

/// The event kind named `name` (its WIT name), if any.
#[must_use]
pub fn event_kind_from_name(name: &str) -> Option<EventKind> {
    ALL_EVENT_KINDS
        .iter()
        .copied()
        .find(|kind| event_kind_name(*kind) == name.trim())
}

/// Every event kind, in WIT order.
pub const ALL_EVENT_KINDS: [EventKind; 14] = [
    EventKind::DeployStarted,
    EventKind::DeploySucceeded,
    EventKind::DeployFailed,
    EventKind::StageStarted,
    EventKind::StageSucceeded,
    EventKind::StageFailed,
    EventKind::AwaitingApproval,
    EventKind::RollbackStarted,
    EventKind::RollbackSucceeded,
    EventKind::RollbackFailed,
    EventKind::RollbackRefused,
    EventKind::CheckBlocked,
    EventKind::LockWaiting,
    EventKind::Test,
];

/// A human phrase for an event kind, e.g. `stage succeeded`.
#[must_use]
pub fn event_kind_phrase(kind: EventKind) -> String {
    event_kind_name(kind).replace('-', " ")
}

/// The WIT name of a health status (`healthy`, `unhealthy`, `unknown`).
#[must_use]
pub fn health_status_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Unhealthy => "unhealthy",
        HealthStatus::Unknown => "unknown",
    }
}

/// JSON of one workload's live version.
#[must_use]
pub fn workload(w: &WorkloadVersion) -> Value {
    json!({
        "cluster": w.cluster,
        "namespace": w.namespace,
        "workload": w.workload,
        "container": w.container,
        "image": w.image,
        "version": w.version,
    })
}

/// JSON of a deploy context.
#[must_use]
pub fn context(ctx: &DeployContext) -> Value {
    json!({
        "component": ctx.component,
        "version": ctx.version,
        "previous_version": ctx.previous_version,
        "stage": ctx.stage,
        "environment": ctx.environment,
        "pipeline_url": ctx.pipeline_url,
        "app_version": ctx.app_version,
        "workloads": ctx.workloads.iter().map(workload).collect::<Vec<_>>(),
    })
}

/// JSON of an event (shape in the module docs).
#[must_use]
pub fn event(event: &Event) -> Value {
    json!({
        "kind": event_kind_name(event.kind),
        "deploy_id": event.deploy_id,
        "timestamp": event.timestamp,
        "message": event.message,
        "context": context(&event.context),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            kind: EventKind::StageSucceeded,
            deploy_id: "d-1".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            message: "done".into(),
            context: DeployContext {
                component: "registry".into(),
                version: "v3.1.0".into(),
                previous_version: None,
                stage: "gstg-cny".into(),
                environment: "gstg".into(),
                pipeline_url: Some("https://ci/p/1".into()),
                workloads: vec![WorkloadVersion {
                    cluster: "gstg".into(),
                    namespace: "gitlab-cny".into(),
                    workload: "registry".into(),
                    container: "registry".into(),
                    image: "r/registry:v3.0.0-gitlab".into(),
                    version: Some("v3.0.0".into()),
                }],
                app_version: None,
            },
        }
    }

    #[test]
    fn an_event_serializes_with_snake_case_fields_and_kebab_case_kind() {
        let value = event(&sample());
        assert_eq!(value["kind"], "stage-succeeded");
        assert_eq!(value["deploy_id"], "d-1");
        assert_eq!(value["context"]["previous_version"], Value::Null);
        assert_eq!(value["context"]["pipeline_url"], "https://ci/p/1");
        assert_eq!(value["context"]["workloads"][0]["version"], "v3.0.0");
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in ALL_EVENT_KINDS {
            assert_eq!(event_kind_from_name(event_kind_name(kind)), Some(kind));
        }
        assert_eq!(event_kind_from_name("nope"), None);
    }
}
