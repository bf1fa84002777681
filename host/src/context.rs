//! The deploy context: what is deployed, where, and what runs there now.
//!
//! This is the runner's own, serde-friendly form. Plugins receive it converted to the WIT type
//! `tagship:plugin/types.deploy-context`; `tagship plugin run --input` reads it as JSON.

use serde::{Deserialize, Serialize};

/// The live version of one container of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadVersion {
    /// Kubeconfig context (cluster).
    #[serde(default)]
    pub cluster: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Deployment name.
    pub workload: String,
    /// Container name.
    pub container: String,
    /// Full image reference.
    pub image: String,
    /// Component version carried by the image, when known.
    #[serde(default)]
    pub version: Option<String>,
}

/// What is being deployed, where, and what runs there now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployContext {
    /// The component, e.g. `registry`.
    pub component: String,
    /// The target version, e.g. `v3.1.0`.
    pub version: String,
    /// The version live before this deploy.
    #[serde(default)]
    pub previous_version: Option<String>,
    /// The stage, e.g. `gstg-cny`.
    pub stage: String,
    /// The stage's environment, e.g. `gstg`.
    pub environment: String,
    /// The CI pipeline running the deploy.
    #[serde(default)]
    pub pipeline_url: Option<String>,
    /// Live versions of each workload of the stage.
    #[serde(default)]
    pub workloads: Vec<WorkloadVersion>,
    /// The application's version (for compat checks).
    #[serde(default)]
    pub app_version: Option<String>,
}

impl DeployContext {
    /// The clusters its workloads live in, each once, in order.
    pub fn clusters(&self) -> Vec<&str> {
        let mut clusters: Vec<&str> = Vec::new();
        for w in &self.workloads {
            if !clusters.contains(&w.cluster.as_str()) {
                clusters.push(&w.cluster);
            }
        }
        clusters
    }

    /// The same context narrowed to the workloads of `cluster`: what a check of one cluster of
    /// a stage receives.
    #[must_use]
    pub fn for_cluster(&self, cluster: &str) -> DeployContext {
        DeployContext {
            workloads: self
                .workloads
                .iter()
                .filter(|w| w.cluster == cluster)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// The value its workloads share for `field` (their cluster, their namespace), when they
    /// share one: what `{{cluster}}` and `{{namespace}}` mean in a plugin's configuration.
    pub fn shared(&self, field: impl Fn(&WorkloadVersion) -> &str) -> Option<&str> {
        let mut values = self.workloads.iter().map(field);
        let first = values.next()?;
        values.all(|v| v == first).then_some(first)
    }
}

/// The git ref of the application at `app_version`, as an app pipeline names its version: a
/// commit SHA is its own ref; a GitLab auto-deploy version
/// (`17.5.202411201400-abc123def45.1a2b3c4d5e6`) names the app's commit first; any other version
/// is its tag. What `{{app_ref}}` means in a plugin's configuration (e.g. where the app declares
/// the registry version it needs). The guest SDK's `template` module has the same rule.
pub fn app_ref(app_version: &str) -> &str {
    let hex = |s: &str| s.len() >= 7 && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex(app_version) {
        return app_version;
    }
    let auto_deploy = app_version.split_once('-').and_then(|(core, shas)| {
        let numbers: Vec<&str> = core.split('.').collect();
        let dated = numbers.len() == 3
            && numbers
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && numbers[2].len() == 12;
        let (app, other) = shas.split_once('.')?;
        (dated && hex(app) && hex(other)).then_some(app)
    });
    auto_deploy.unwrap_or(app_version)
}

/// The shape of the deploy context, for `--help` texts.
pub const DEPLOY_CONTEXT_HELP: &str = r#"The input is the deploy context as JSON:
  {"component": "registry", "version": "v3.1.0", "stage": "gstg-cny", "environment": "gstg",
   "previous_version": "v3.0.0",            (optional)
   "pipeline_url": "https://...",           (optional)
   "app_version": "v17.5.0",                (optional; compat checks use it)
   "workloads": [{"cluster": "gstg", "namespace": "gitlab", "workload": "registry",
                  "container": "registry", "image": "reg/registry:v3.0.0-gitlab",
                  "version": "v3.0.0"}]}     (optional)"#;

/// The kinds of deploy events notifiers receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A deploy run started.
    DeployStarted,
    /// Every stage of the run finished successfully.
    DeploySucceeded,
    /// The run failed.
    DeployFailed,
    /// Work on a stage started.
    StageStarted,
    /// A stage finished successfully.
    StageSucceeded,
    /// A stage failed.
    StageFailed,
    /// The run stopped before a manual stage.
    AwaitingApproval,
    /// A rollback started.
    RollbackStarted,
    /// The previous version serves again.
    RollbackSucceeded,
    /// The rollback did not complete.
    RollbackFailed,
    /// The rollback was refused.
    RollbackRefused,
    /// A pre-check blocked the stage.
    CheckBlocked,
    /// The run waits for the lock.
    LockWaiting,
    /// A test event (`tagship plugin run` on a notifier).
    Test,
}

impl EventKind {
    /// Every kind a deploy sends (not [`EventKind::Test`]), in the order of the WIT enum.
    pub const SENT: [EventKind; 13] = [
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
    ];

    /// The kind's name as configuration and JSON spell it, e.g. `deploy-started`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
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
}

/// One deploy event, as notifiers receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Identifies the deploy run.
    pub deploy_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// The context at that moment.
    pub context: DeployContext,
    /// A one-line human summary.
    pub message: String,
}

/// Now as RFC 3339 UTC, without pulling a date crate for one line.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `time` as RFC 3339 UTC, whole seconds.
#[allow(
    clippy::many_single_char_names,
    reason = "the names of the published algorithm"
)]
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (hour, minute, second) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the Unix era.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_context_parses_with_every_optional_field_empty() {
        let ctx: DeployContext = serde_json::from_str(
            r#"{"component":"registry","version":"v3.1.0","stage":"gstg-cny","environment":"gstg"}"#,
        )
        .unwrap();
        assert_eq!(ctx.stage, "gstg-cny");
        assert!(ctx.workloads.is_empty());
        assert_eq!(ctx.app_version, None);
    }

    #[test]
    fn a_cluster_s_context_holds_its_own_workloads_and_names_what_they_share() {
        let w = |cluster: &str, namespace: &str| WorkloadVersion {
            cluster: cluster.into(),
            namespace: namespace.into(),
            workload: "registry".into(),
            container: "registry".into(),
            image: "r:v1".into(),
            version: Some("v1".into()),
        };
        let ctx: DeployContext = DeployContext {
            workloads: vec![w("a", "gitlab"), w("b", "gitlab"), w("a", "gitlab")],
            ..serde_json::from_str(
                r#"{"component":"r","version":"v2","stage":"gprd","environment":"gprd"}"#,
            )
            .unwrap()
        };
        assert_eq!(ctx.clusters(), ["a", "b"]);
        assert_eq!(ctx.shared(|w| &w.cluster), None, "two clusters");
        assert_eq!(ctx.shared(|w| &w.namespace), Some("gitlab"));
        let b = ctx.for_cluster("b");
        assert_eq!(b.workloads.len(), 1);
        assert_eq!(b.shared(|w| &w.cluster), Some("b"));
        assert_eq!(b.stage, "gprd");
        assert_eq!(
            DeployContext {
                workloads: vec![],
                ..b
            }
            .shared(|w| &w.cluster),
            None,
            "no workloads, nothing shared"
        );
    }

    #[test]
    fn the_app_s_ref_is_its_commit_or_its_tag() {
        for (version, reference) in [
            ("0123abc", "0123abc"),
            (
                "6ad5ca9a8b51f3d9b1fe1d0a3e1f4e3b4a5c6d7e",
                "6ad5ca9a8b51f3d9b1fe1d0a3e1f4e3b4a5c6d7e",
            ),
            ("17.5.202411201400-abc123def45.1a2b3c4d5e6", "abc123def45"),
            ("v17.5.0", "v17.5.0"),
            ("17.5.0-rc42", "17.5.0-rc42"),
            (
                "17.5.2024-abc123def45.1a2b3c4d5e6",
                "17.5.2024-abc123def45.1a2b3c4d5e6",
            ),
        ] {
            assert_eq!(app_ref(version), reference, "{version}");
        }
    }

    #[test]
    fn event_names_are_their_serde_names() {
        for kind in EventKind::SENT.into_iter().chain([EventKind::Test]) {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }

    #[test]
    fn an_unknown_field_is_rejected_by_name() {
        let err = serde_json::from_str::<DeployContext>(
            r#"{"component":"r","version":"v1","stage":"s","environment":"e","stag":"x"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `stag`"), "{err}");
    }
}
