//! Fakes of the ports for driver tests, faithful to what the real adapters do: a version whose
//! text contains `crashloop` fails its rollout, `errors` fails health checks, `fail` fails its
//! migration Job (the same conventions as the kubelet stand-in and the traffic simulator).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::context::{DeployContext, EventKind};
use crate::version::Version;

use super::plan::{BakePlan, Gate, Plan, StagePlan, UnknownPolicy};
use super::ports::{
    ApplyPreview, CheckOutcome, CheckResult, Checks, Completion, HistoryRecord, Holder,
    ImageChange, JobPreview, Ledger, LockAttempt, Locks, Migration, Migrations, Notify, PortError,
    Reporter, StageLive, WorkloadLive, Workloads,
};

pub(crate) fn stage(name: &str, environment: &str, manual: bool) -> StagePlan {
    StagePlan {
        name: name.into(),
        environment: environment.into(),
        gate: if manual { Gate::Manual } else { Gate::Auto },
        first_of_environment: true,
        last_of_environment: true,
        post_migrations_after: false,
        pre_checks: vec![],
        bake: None,
        notify: vec![],
    }
}

pub(crate) fn bake() -> BakePlan {
    BakePlan {
        checks: vec!["health".into()],
        duration: Duration::from_mins(1),
        interval: Duration::from_secs(10),
        initial_delay: Duration::ZERO,
        failure_limit: 0,
        consecutive_error_limit: 4,
        unknown: UnknownPolicy::Fail,
    }
}

pub(crate) fn plan(target: &str, stages: Vec<StagePlan>) -> Plan {
    Plan {
        component: "registry".into(),
        target: target.parse().expect("valid version"),
        stages,
        approved: BTreeSet::new(),
        until: None,
        downgrade: super::plan::Downgrade::Refused,
        pre_migrations: false,
        post_migrations: false,
        lock_wait: Duration::from_mins(1),
        lock_ttl: Duration::from_mins(2),
        notifier_events: std::collections::BTreeMap::new(),
        deploy_id: "test-run".into(),
        pipeline_url: Some("https://ci.example/pipelines/1".into()),
        app_version: None,
        command: crate::lifecycle::CommandLine::default(),
    }
}

/// Everything the fake cluster was asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Apply {
        stage: String,
        version: String,
    },
    Migrate {
        stage: String,
        kind: Migration,
        version: String,
    },
    Lock(String),
    Unlock(String),
    ValidateApply {
        stage: String,
        version: String,
    },
}

#[derive(Default)]
pub(crate) struct FakeCluster {
    /// stage → versions live, one per workload.
    pub live: Mutex<BTreeMap<String, Vec<Version>>>,
    /// stage → rollout incomplete (an interrupted run).
    pub incomplete: Mutex<BTreeSet<String>>,
    /// stage → previous version annotation.
    pub previous: Mutex<BTreeMap<String, Version>>,
    pub held_by: Mutex<Option<Holder>>,
    /// Every lock request fails with this (a missing namespace, a forbidden verb, an outage).
    pub lock_error: Mutex<Option<PortError>>,
    /// How many lock requests were made.
    pub lock_requests: Mutex<usize>,
    /// Versions whose apply fails part-way: the stage's first workload takes it, then the
    /// API server refuses the next.
    pub apply_fails: Mutex<BTreeSet<String>>,
    /// Versions whose apply is refused before it changes anything.
    pub apply_refused: Mutex<BTreeSet<String>>,
    /// Stages whose Deployments are paused.
    pub paused: Mutex<BTreeSet<String>>,
    /// After this many successful lock calls, someone takes the lock over.
    pub lose_lock_after: Mutex<Option<usize>>,
    pub watermarks: Mutex<BTreeMap<String, Version>>,
    /// When the lock is taken, another deployer's change lands first: stage → versions.
    pub changed_while_waiting: Mutex<Option<(String, Vec<Version>)>>,
    pub history: Mutex<Vec<(String, HistoryRecord)>>,
    pub calls: Mutex<Vec<Call>>,
    /// The environments whose lock this run holds now, as the real Lease would say.
    pub holding: Mutex<BTreeSet<String>>,
}

impl FakeCluster {
    /// Fails the test when `what` changes `environment` without holding its lock: every path
    /// that changes a cluster must take it first.
    fn require_lock(&self, environment: &str, what: &str) {
        assert!(
            self.holding.lock().unwrap().contains(environment),
            "{what} in environment `{environment}` without holding its lock"
        );
    }

    pub(crate) fn with(stages: &[(&str, &[&str])]) -> Self {
        let fake = FakeCluster::default();
        for (stage, versions) in stages {
            fake.live.lock().unwrap().insert(
                (*stage).into(),
                versions.iter().map(|v| v.parse().unwrap()).collect(),
            );
        }
        fake
    }

    pub(crate) fn versions(&self, stage: &str) -> Vec<String> {
        self.live.lock().unwrap()[stage]
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    pub(crate) fn applies(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| match c {
                Call::Apply { stage, version } => Some((stage.clone(), version.clone())),
                _ => None,
            })
            .collect()
    }
}

impl Workloads for FakeCluster {
    async fn live(&self, stage: &StagePlan) -> Result<StageLive, PortError> {
        let live = self.live.lock().unwrap();
        let versions = live
            .get(&stage.name)
            .ok_or_else(|| PortError::new(format!("no stage `{}`", stage.name)))?;
        let incomplete = self.incomplete.lock().unwrap().contains(&stage.name);
        let previous = self.previous.lock().unwrap().get(&stage.name).cloned();
        Ok(StageLive {
            workloads: versions
                .iter()
                .enumerate()
                .map(|(i, v)| WorkloadLive {
                    cluster: format!("cluster-{i}"),
                    namespace: stage.name.clone(),
                    name: "gitlab-registry/registry".into(),
                    image: format!("registry.example.com/registry:{v}-gitlab"),
                    version: Some(v.clone()),
                    previous: previous.clone(),
                    complete: !incomplete && !v.to_string().contains("crashloop"),
                    paused: self.paused.lock().unwrap().contains(&stage.name),
                    drift: None,
                })
                .collect(),
        })
    }

    async fn apply(
        &self,
        stage: &StagePlan,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<(), PortError> {
        self.require_lock(&stage.environment, "an apply");
        self.calls.lock().unwrap().push(Call::Apply {
            stage: stage.name.clone(),
            version: version.to_string(),
        });
        if self
            .apply_refused
            .lock()
            .unwrap()
            .contains(version.as_str())
        {
            return Err(PortError::new("the API server answered 503"));
        }
        let mut live = self.live.lock().unwrap();
        if self.apply_fails.lock().unwrap().contains(version.as_str()) {
            if let Some(first) = live.get_mut(&stage.name).and_then(|v| v.first_mut()) {
                *first = version.clone();
            }
            return Err(PortError::new(
                "cannot apply images to deployment `gitlab-registry` in namespace `gprd` of cluster `cluster-1`: the API server answered 422",
            ));
        }
        for v in live.get_mut(&stage.name).expect("stage exists") {
            *v = version.clone();
        }
        if let Some(previous) = previous {
            self.previous
                .lock()
                .unwrap()
                .insert(stage.name.clone(), previous.clone());
        }
        self.incomplete.lock().unwrap().remove(&stage.name);
        Ok(())
    }

    async fn validate_apply(
        &self,
        stage: &StagePlan,
        version: &Version,
        _previous: Option<&Version>,
    ) -> Result<ApplyPreview, PortError> {
        self.calls.lock().unwrap().push(Call::ValidateApply {
            stage: stage.name.clone(),
            version: version.to_string(),
        });
        if version.to_string().contains("invalid") {
            return Err(PortError::new(
                "the server refused the apply: spec.template.spec.containers[0].image: Invalid value",
            ));
        }
        let live = self.live(stage).await?;
        Ok(ApplyPreview {
            changes: live
                .workloads
                .iter()
                .map(|w| ImageChange {
                    cluster: w.cluster.clone(),
                    workload: "gitlab-registry".into(),
                    container: "registry".into(),
                    before: w.image.clone(),
                    after: format!("registry.example.com/registry:{version}-gitlab"),
                })
                .collect(),
            annotations: [("tagship.io/version".to_owned(), version.to_string())].into(),
        })
    }

    async fn wait_rollout(&self, stage: &StagePlan) -> Result<Completion, PortError> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let crashing = self.live.lock().unwrap()[&stage.name]
            .iter()
            .any(|v| v.to_string().contains("crashloop"));
        if crashing {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Completion::Failed("ProgressDeadlineExceeded".into()))
        } else {
            Ok(Completion::Succeeded)
        }
    }
}

impl Locks for FakeCluster {
    async fn try_lock(&self, environment: &str) -> Result<LockAttempt, PortError> {
        *self.lock_requests.lock().unwrap() += 1;
        if let Some(error) = self.lock_error.lock().unwrap().clone() {
            return Err(error);
        }
        let mut lose = self.lose_lock_after.lock().unwrap();
        if let Some(n) = lose.as_mut() {
            if *n == 0 {
                *self.held_by.lock().unwrap() = Some(Holder {
                    who: "intruder".into(),
                    reason: None,
                    pipeline_url: None,
                    since: None,
                });
            } else {
                *n -= 1;
            }
        }
        if let Some(holder) = self.held_by.lock().unwrap().clone() {
            self.holding.lock().unwrap().remove(environment);
            return Ok(LockAttempt::Held(holder));
        }
        self.holding.lock().unwrap().insert(environment.into());
        if let Some((stage, versions)) = self.changed_while_waiting.lock().unwrap().take() {
            self.live.lock().unwrap().insert(stage, versions);
        }
        self.calls
            .lock()
            .unwrap()
            .push(Call::Lock(environment.into()));
        Ok(LockAttempt::Acquired)
    }

    async fn unlock(&self, environment: &str) -> Result<(), PortError> {
        self.holding.lock().unwrap().remove(environment);
        self.calls
            .lock()
            .unwrap()
            .push(Call::Unlock(environment.into()));
        Ok(())
    }
}

impl Migrations for FakeCluster {
    async fn migrate(
        &self,
        stage: &StagePlan,
        kind: Migration,
        version: &Version,
    ) -> Result<Completion, PortError> {
        self.require_lock(&stage.environment, "a migration");
        self.calls.lock().unwrap().push(Call::Migrate {
            stage: stage.name.clone(),
            kind,
            version: version.to_string(),
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        if version.to_string().contains("fail") {
            Ok(Completion::Failed(
                "Job `registry-migrate` failed: BackoffLimitExceeded".into(),
            ))
        } else {
            Ok(Completion::Succeeded)
        }
    }

    async fn migration_job(
        &self,
        stage: &StagePlan,
        kind: Migration,
        version: &Version,
        _validate: bool,
    ) -> Result<Option<JobPreview>, PortError> {
        Ok(Some(JobPreview {
            cluster: "cluster-0".into(),
            namespace: stage.name.clone(),
            name: format!("registry-{kind:?}-migrate").to_lowercase(),
            from: "gitlab-registry/registry".into(),
            image: format!("registry.example.com/registry:{version}-gitlab"),
            command: vec!["registry".into(), "database".into(), "migrate".into()],
            ..JobPreview::default()
        }))
    }

    async fn watermark(&self, environment: &str) -> Result<Option<Version>, PortError> {
        Ok(self.watermarks.lock().unwrap().get(environment).cloned())
    }

    async fn set_watermark(&self, environment: &str, version: &Version) -> Result<(), PortError> {
        self.require_lock(environment, "the watermark");
        self.watermarks
            .lock()
            .unwrap()
            .insert(environment.into(), version.clone());
        Ok(())
    }
}

impl Ledger for FakeCluster {
    async fn record(&self, stage: &StagePlan, record: HistoryRecord) -> Result<(), PortError> {
        self.require_lock(&stage.environment, "a history record");
        self.history
            .lock()
            .unwrap()
            .push((stage.name.clone(), record));
        Ok(())
    }

    async fn record_if_missing(
        &self,
        stage: &StagePlan,
        record: HistoryRecord,
    ) -> Result<bool, PortError> {
        let mut history = self.history.lock().unwrap();
        let newest = history.iter().rev().find(|(s, _)| *s == stage.name);
        if newest.is_some_and(|(_, r)| r.version == record.version) {
            return Ok(false);
        }
        history.push((stage.name.clone(), record));
        Ok(true)
    }
}

/// Health checks that fail when the target contains `errors`; `broken` errors; `unhealthy-now` fails;
/// `unhealthy-in-CLUSTER` fails when asked about that cluster's workloads only.
#[derive(Default)]
pub(crate) struct FakeChecks {
    pub runs: Mutex<Vec<(String, String)>>,
    /// The context of every call.
    pub contexts: Mutex<Vec<DeployContext>>,
}

impl Checks for FakeChecks {
    async fn run(
        &self,
        stage: &StagePlan,
        checks: &[String],
        ctx: &DeployContext,
    ) -> Vec<CheckResult> {
        let mut out = Vec::new();
        self.contexts.lock().unwrap().push(ctx.clone());
        let only = ctx.shared(|w| &w.cluster).map(str::to_owned);
        for check in checks {
            self.runs
                .lock()
                .unwrap()
                .push((stage.name.clone(), check.clone()));
            // Stands for a health signal that turns bad once an `errors` release serves.
            let serving_errors = ctx.version.contains("errors");
            let outcome = match check.as_str() {
                "broken" => CheckOutcome::Errored("plugin `broken` crashed: wasm trap".into()),
                "unhealthy-now" => {
                    CheckOutcome::Fail("gitlab_deployment_health:service = 0".into())
                }
                name if name.strip_prefix("unhealthy-in-") == only.as_deref() => {
                    CheckOutcome::Fail("error ratio 0.30 > 0.05".into())
                }
                _ if serving_errors => CheckOutcome::Fail("error ratio 0.20 > 0.05".into()),
                _ => CheckOutcome::Pass,
            };
            out.push(CheckResult {
                check: check.clone(),
                cluster: None,
                outcome,
            });
        }
        out
    }
}

#[derive(Default)]
pub(crate) struct FakeNotify {
    pub events: Mutex<Vec<(Option<String>, EventKind)>>,
}

impl FakeNotify {
    pub(crate) fn kinds(&self) -> Vec<EventKind> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, k)| *k)
            .collect()
    }
}

impl Notify for FakeNotify {
    async fn send(
        &self,
        stage: Option<&StagePlan>,
        kind: EventKind,
        _ctx: &DeployContext,
        _message: &str,
    ) {
        self.events
            .lock()
            .unwrap()
            .push((stage.map(|s| s.name.clone()), kind));
    }
}

#[derive(Default)]
pub(crate) struct Lines(pub Mutex<Vec<String>>);

impl Lines {
    pub(crate) fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Reporter for Lines {
    fn step(&self, stage: Option<&str>, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("[{}] {message}", stage.unwrap_or("-")));
    }
}
