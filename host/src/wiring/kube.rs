//! `KubePorts`: the `Cluster` port served by one [`KubeCluster`] per kubeconfig context (reads,
//! server-side applies, rollouts, locks, history).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures::future::join_all;
use tokio::sync::OnceCell;

use crate::cluster::{JobOutcome, KubeCluster, LockAttempt as KubeLock, RolloutOutcome};
use crate::config::{self, Config, Stage};
use crate::lifecycle::ports::{
    ApplyPreview, Completion, HistoryRecord, Holder, ImageChange, JobPreview, Ledger, LockAttempt,
    Locks, Migration, Migrations, PortError, Reporter, StageLive, WorkloadLive, Workloads,
};
use crate::lifecycle::{StagePlan, shell_quoted};
use crate::version::{Version, image_tag};

use super::containers::{component_containers, drift};
use super::{
    ANNOTATION_AT, ANNOTATION_BY, ANNOTATION_PIPELINE, ANNOTATION_PREVIOUS, ANNOTATION_VERSION,
    WATERMARK_KEY,
};

/// A kubeconfig file (None: the default) and a context (None: its current one).
type ConnectionKey = (Option<std::path::PathBuf>, Option<String>);

/// Serves the `Cluster` port with one [`KubeCluster`] per kubeconfig context.
pub struct KubePorts<'a> {
    pub(super) config: &'a Config,
    pub(super) holder: Holder,
    /// Where rollout progress goes.
    pub(super) reporter: &'a (dyn Reporter + Sync),
    pub(super) connections: Mutex<HashMap<ConnectionKey, std::sync::Arc<OnceCell<KubeCluster>>>>,
    /// Digests resolved for `pin = "digest"`, by `repository:tag`: asked once per run, so every
    /// cluster, workload and migration of a release runs the same image.
    pub(super) digests: tokio::sync::Mutex<HashMap<String, String>>,
    /// The time to live of the locks this run takes (default `[lock].ttl`).
    pub(super) lock_ttl: std::time::Duration,
}

/// A lock request that failed, with what to fix when asking again cannot help: the lock's
/// namespace is missing, or the credentials may not use Leases there.
pub(super) fn lock_error(e: &crate::cluster::ClusterError, context: &str, ns: &str) -> PortError {
    let told = crate::terminal::one_line(e);
    match e.status() {
        Some(404) => PortError::permanent(format!(
            "{told}; the lock's namespace `{ns}` does not exist in cluster `{context}`: create it (`kubectl --context {context} create namespace {ns}`) or set `namespace` in [lock]"
        )),
        Some(401 | 403) => PortError::permanent(format!(
            "{told}; the credentials of cluster `{context}` may not use Leases in namespace `{ns}`: grant the verbs get, create and update on `leases` (API group coordination.k8s.io) in `{ns}`, e.g. with a Role and a RoleBinding"
        )),
        Some(400 | 405 | 415 | 422) => PortError::permanent(told),
        _ => PortError::new(told),
    }
}

/// A port error carrying the whole cause chain ("cannot load kubeconfig: file not found").
pub(super) fn port<E: std::error::Error>(e: E) -> PortError {
    PortError::new(crate::terminal::one_line(&e))
}

impl<'a> KubePorts<'a> {
    /// Ports for `config`, taking locks as `holder`.
    pub fn new(config: &'a Config, holder: Holder) -> Self {
        KubePorts {
            config,
            holder,
            reporter: &crate::progress::Lines,
            connections: Mutex::new(HashMap::new()),
            digests: tokio::sync::Mutex::new(HashMap::new()),
            lock_ttl: config.lock.ttl,
        }
    }

    /// Locks are taken for `ttl` instead of `[lock].ttl` (`tagship lock acquire --ttl`).
    #[must_use]
    pub fn with_lock_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Rollout progress goes to `reporter` (default: plain lines on stderr).
    #[must_use]
    pub fn with_reporter(mut self, reporter: &'a (dyn Reporter + Sync)) -> Self {
        self.reporter = reporter;
        self
    }

    pub(super) fn stage(&self, name: &str) -> Result<&'a Stage, PortError> {
        self.config
            .stage(name)
            .ok_or_else(|| PortError::new(format!("no stage `{name}` in the configuration")))
    }

    async fn connect(
        &self,
        stage: &Stage,
        context: Option<&str>,
    ) -> Result<KubeCluster, PortError> {
        let key = (
            self.config
                .kubeconfig_for(stage)
                .map(std::path::Path::to_path_buf),
            context.map(str::to_owned),
        );
        let cell = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let cluster = cell
            .get_or_try_init(|| async {
                KubeCluster::connect(key.0.as_deref(), key.1.as_deref()).await
            })
            .await
            .map_err(port)?;
        Ok(cluster.clone())
    }

    /// Every cluster of a stage (its contexts; none configured means the current context).
    pub(super) async fn clusters(&self, stage: &Stage) -> Result<Vec<KubeCluster>, PortError> {
        if stage.clusters.is_empty() {
            return Ok(vec![self.connect(stage, None).await?]);
        }
        let mut out = Vec::new();
        for context in &stage.clusters {
            out.push(self.connect(stage, Some(context)).await?);
        }
        Ok(out)
    }

    /// Where an environment's lock and state live: its first stage's first cluster.
    async fn home(&self, environment: &str) -> Result<(KubeCluster, String), PortError> {
        let first = self
            .config
            .stages
            .iter()
            .find(|s| s.environment == environment)
            .ok_or_else(|| PortError::new(format!("no stage is in environment `{environment}`")))?;
        let ns = self
            .config
            .lock_namespace(environment)
            .unwrap_or(&first.namespace)
            .to_owned();
        let cluster = self
            .connect(first, first.clusters.first().map(String::as_str))
            .await?;
        Ok((cluster, ns))
    }

    /// The image of `version` in `stage`: its repository (the stage's own `image`, else the
    /// component's) and tag, with the tag's digest when `pin = "digest"`.
    pub(super) async fn image(
        &self,
        stage: &Stage,
        version: &Version,
    ) -> Result<String, PortError> {
        let repository = self.config.repository_for(stage);
        let tag = self.config.component.tag.render(version);
        let reference = format!("{repository}:{tag}");
        if self.config.component.pin == config::Pin::Tag {
            return Ok(reference);
        }
        let mut digests = self.digests.lock().await;
        if let Some(digest) = digests.get(&reference) {
            return Ok(format!("{reference}@{digest}"));
        }
        let component = &self.config.component;
        let credentials = match &component.registry_credentials {
            Some((user, password)) => {
                let read = |name: &str| {
                    std::env::var(name).map_err(|_| {
                        PortError::new(format!(
                            "`registry_user_env`/`registry_password_env` in [component] of {} name the environment variable `{name}`, which is not set",
                            self.config.path.display()
                        ))
                    })
                };
                Some(crate::registry::Credentials {
                    user: read(user)?,
                    password: read(password)?,
                })
            }
            None => None,
        };
        // `registry_url` is the component's registry; a stage's own `image` (a mirror) is
        // asked at its own host.
        let base_url = match stage.image {
            Some(_) => None,
            None => component.registry_url.as_deref(),
        };
        let target = crate::registry::Repository::of(repository, base_url);
        let digest = crate::registry::resolve_digest(&target, &tag, credentials.as_ref())
            .await
            .map_err(|e| PortError::new(format!("cannot pin `{reference}` by digest: {e}")))?;
        self.reporter.step(
            Some(&stage.name),
            &format!("`{reference}` is {digest} (pin = \"digest\")"),
        );
        digests.insert(reference.clone(), digest.clone());
        Ok(format!("{reference}@{digest}"))
    }

    /// Applies `version` to every workload of every cluster of the stage, concurrently;
    /// `dry_run` asks the server to validate only. Says which images change.
    async fn apply_all(
        &self,
        plan: &StagePlan,
        version: &Version,
        previous: Option<&Version>,
        dry_run: bool,
    ) -> Result<ApplyPreview, PortError> {
        let stage = self.stage(&plan.name)?;
        let image = self.image(stage, version).await?;
        let annotations = self.annotations(version, previous);
        let clusters = self.clusters(stage).await?;
        let names = stage.deployment_names();
        let repositories = self.config.component_repositories(stage);
        let changes = Mutex::new(Vec::new());
        let (names, annotations_sent) = (&names, &annotations);
        let applies = clusters.iter().map(|cluster| {
            // The containers of each workload, named by the apply's own read (which the stage's
            // first read already checked: an error here means it changed since, and the
            // workload is left alone).
            let images_of = |live: &crate::cluster::LiveDeployment| {
                let containers = stage
                    .workloads
                    .iter()
                    .find(|w| w.deployment == live.name)
                    .and_then(|w| component_containers(w, live, &repositories).ok())
                    .unwrap_or_default();
                let mut changes = changes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                containers
                    .into_iter()
                    .map(|container| {
                        let before = live.image_of(&container).cloned().unwrap_or_default();
                        if before != image {
                            changes.push(ImageChange {
                                cluster: cluster.context().to_owned(),
                                workload: live.name.clone(),
                                container: container.clone(),
                                before,
                                after: image.clone(),
                            });
                        }
                        (container, image.clone())
                    })
                    .collect()
            };
            async move {
                cluster
                    .apply_images_each(
                        &stage.namespace,
                        names,
                        images_of,
                        annotations_sent,
                        dry_run,
                    )
                    .await
            }
        });
        for result in join_all(applies).await {
            result.map_err(port)?;
        }
        let mut changes = changes
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        changes.sort_by(|a, b| {
            (&a.cluster, &a.workload, &a.container).cmp(&(&b.cluster, &b.workload, &b.container))
        });
        Ok(ApplyPreview {
            changes,
            annotations,
        })
    }

    /// The audit annotations an apply of `version` writes (the empty ones left out).
    fn annotations(
        &self,
        version: &Version,
        previous: Option<&Version>,
    ) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::from([
            (ANNOTATION_VERSION.to_owned(), version.to_string()),
            (ANNOTATION_BY.to_owned(), self.holder.who.clone()),
            (ANNOTATION_AT.to_owned(), crate::context::now_rfc3339()),
            (
                ANNOTATION_PREVIOUS.to_owned(),
                previous.map(ToString::to_string).unwrap_or_default(),
            ),
            (
                ANNOTATION_PIPELINE.to_owned(),
                self.holder.pipeline_url.clone().unwrap_or_default(),
            ),
        ]);
        annotations.retain(|_, v| !v.is_empty());
        annotations
    }

    /// Who holds the lock of `environment`, if anyone (read only).
    pub async fn lock_status(
        &self,
        environment: &str,
    ) -> Result<Option<crate::cluster::LockInfo>, PortError> {
        let (cluster, ns) = self.home(environment).await?;
        cluster
            .lock_status(&ns, &self.config.lease_name(environment))
            .await
            .map_err(port)
    }

    /// Releases the lock of `environment` if this holder holds it; whether it did.
    pub async fn release_lock(&self, environment: &str) -> Result<bool, PortError> {
        let (cluster, ns) = self.home(environment).await?;
        cluster
            .lock_release(&ns, &self.config.lease_name(environment), &self.holder)
            .await
            .map_err(|e| lock_error(&e, cluster.context(), &ns))
    }

    /// The history of `stage`, oldest first.
    pub async fn history(&self, stage: &str) -> Result<Vec<serde_json::Value>, PortError> {
        let stage = self.stage(stage)?;
        let cluster = self.clusters(stage).await?.remove(0);
        cluster
            .history(&stage.namespace, &stage.name)
            .await
            .map_err(port)
    }

    fn version_of(&self, image: &str) -> Option<Version> {
        image_tag(image).and_then(|tag| self.config.component.tag.parse_tag(tag))
    }
}

impl Workloads for KubePorts<'_> {
    async fn live(&self, plan: &StagePlan) -> Result<StageLive, PortError> {
        let stage = self.stage(&plan.name)?;
        let clusters = self.clusters(stage).await?;
        let names = stage.deployment_names();
        let repositories = self.config.component_repositories(stage);
        let reads = clusters
            .iter()
            .map(|cluster| cluster.deployments_owned(&stage.namespace, &names));
        let mut workloads = Vec::new();
        for (cluster, read) in clusters.iter().zip(join_all(reads).await) {
            let found = read.map_err(port)?;
            for workload in &stage.workloads {
                let live = found.get(&workload.deployment).ok_or_else(|| {
                    PortError::new(format!(
                        "deployment `{}` in namespace `{}` of cluster `{}` does not exist; create it (e.g. with Helm) before deploying",
                        workload.deployment,
                        stage.namespace,
                        cluster.context()
                    ))
                })?;
                // Found here, at the first read, a wrong container stops the stage before the
                // lock, the checks and the migrations.
                let containers =
                    component_containers(workload, live, &repositories).map_err(|problem| {
                        PortError::new(format!(
                            "deployment `{}` in namespace `{}` of cluster `{}` {problem} (in {})",
                            workload.deployment,
                            stage.namespace,
                            cluster.context(),
                            self.config.path.display()
                        ))
                    })?;
                let complete =
                    matches!(live.rollout_state(), crate::cluster::RolloutState::Complete);
                let previous = live
                    .annotations
                    .get(ANNOTATION_PREVIOUS)
                    .and_then(|v| v.parse().ok());
                for container in containers {
                    let image = live.image_of(&container).cloned().unwrap_or_default();
                    let version = self.version_of(&image);
                    workloads.push(WorkloadLive {
                        cluster: cluster.context().to_owned(),
                        namespace: stage.namespace.clone(),
                        name: format!("{}/{container}", workload.deployment),
                        drift: drift(live, &container, version.as_ref()),
                        version,
                        image,
                        previous: previous.clone(),
                        complete,
                        paused: live.paused,
                    });
                }
            }
        }
        Ok(StageLive { workloads })
    }

    async fn apply(
        &self,
        plan: &StagePlan,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<(), PortError> {
        self.apply_all(plan, version, previous, false).await?;
        Ok(())
    }

    async fn validate_apply(
        &self,
        plan: &StagePlan,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<ApplyPreview, PortError> {
        self.apply_all(plan, version, previous, true).await
    }

    async fn wait_rollout(&self, plan: &StagePlan) -> Result<Completion, PortError> {
        let stage = self.stage(&plan.name)?;
        let clusters = self.clusters(stage).await?;
        let names = stage.deployment_names();
        let waits = clusters.iter().map(|cluster| {
            let names = &names;
            async move {
                let context = cluster.context().to_owned();
                let reporter = self.reporter;
                let mut said: BTreeMap<String, String> = BTreeMap::new();
                // kubectl's words, once per change of each Deployment, and only for a status the
                // controller wrote for the current generation (an older one says nothing true).
                let mut progress = |live: &crate::cluster::LiveDeployment| {
                    let crate::cluster::RolloutState::Progressing { message } =
                        live.rollout_state()
                    else {
                        return;
                    };
                    if live.observed_generation < live.generation
                        || said.get(&live.name) == Some(&message)
                    {
                        return;
                    }
                    reporter.step(
                        Some(&plan.name),
                        &format!("rollout of `{}` in `{context}`: {message}", live.name),
                    );
                    said.insert(live.name.clone(), message);
                };
                let outcomes = cluster
                    .wait_rollouts(
                        &stage.namespace,
                        names,
                        stage.rollout_timeout,
                        stage.fail_fast.then_some(stage.restarts_allowed),
                        &mut progress,
                    )
                    .await
                    .map_err(port)?;
                let failures: Vec<String> = names
                    .iter()
                    .filter_map(|deployment| {
                        let name = format!(
                            "deployment `{deployment}` in cluster `{}`",
                            cluster.context()
                        );
                        match outcomes.get(*deployment)? {
                            RolloutOutcome::Complete | RolloutOutcome::Unfinished => None,
                            RolloutOutcome::PodFailed(failure) => {
                                Some(format!("{name}: {}", failure.message))
                            }
                            // The controller's message ends with a full stop; the line
                            // goes on ("…; rolling back").
                            RolloutOutcome::Failed { reason, message } => Some(format!(
                                "{name}: {reason}: {}",
                                message.trim_end_matches('.')
                            )),
                            RolloutOutcome::TimedOut => Some(format!(
                                "{name}: not rolled out within {}s",
                                stage.rollout_timeout.as_secs()
                            )),
                        }
                    })
                    .collect();
                Ok::<_, PortError>(failures)
            }
        });
        let failures: Vec<String> = join_all(waits)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        Ok(if failures.is_empty() {
            Completion::Succeeded
        } else {
            Completion::Failed(failures.join("; "))
        })
    }
}

impl Locks for KubePorts<'_> {
    async fn try_lock(&self, environment: &str) -> Result<LockAttempt, PortError> {
        let (cluster, ns) = self.home(environment).await?;
        let lease = self.config.lease_name(environment);
        match cluster
            .lock_try_acquire(&ns, &lease, &self.holder, self.lock_ttl)
            .await
            .map_err(|e| lock_error(&e, cluster.context(), &ns))?
        {
            KubeLock::Acquired => Ok(LockAttempt::Acquired),
            KubeLock::Held(info) => Ok(LockAttempt::Held(info.holder)),
        }
    }

    async fn unlock(&self, environment: &str) -> Result<(), PortError> {
        let (cluster, ns) = self.home(environment).await?;
        cluster
            .lock_release(&ns, &self.config.lease_name(environment), &self.holder)
            .await
            .map_err(|e| lock_error(&e, cluster.context(), &ns))?;
        Ok(())
    }
}

impl Migrations for KubePorts<'_> {
    async fn migrate(
        &self,
        plan: &StagePlan,
        kind: Migration,
        version: &Version,
    ) -> Result<Completion, PortError> {
        let Some(migration) = self.migration(plan, kind, version).await? else {
            return Ok(Completion::Succeeded);
        };
        let job = format!(
            "Job `{}` in namespace `{}` of cluster `{}`",
            migration.spec.name,
            migration.namespace,
            migration.cluster.context()
        );
        // The stage's own kubeconfig, when it names one: kubectl's default may be another.
        let kubeconfig = self
            .stage(&plan.name)
            .ok()
            .and_then(|s| self.config.kubeconfig_for(s))
            .map(|path| format!("--kubeconfig {} ", shell_quoted(&path.to_string_lossy())))
            .unwrap_or_default();
        // In a pod kubectl finds the service account itself; it has no `in-cluster` context.
        let context = match migration.cluster.context() {
            crate::cluster::IN_CLUSTER => String::new(),
            context => format!("--context {} ", shell_quoted(context)),
        };
        let logs = format!(
            "see `kubectl {kubeconfig}{context}-n {} logs job/{}`",
            migration.namespace, migration.spec.name
        );
        match migration
            .cluster
            .run_job(&migration.namespace, &migration.spec, migration.timeout)
            .await
            .map_err(port)?
        {
            JobOutcome::Succeeded => Ok(Completion::Succeeded),
            JobOutcome::Failed { reason } => Ok(Completion::Failed(format!(
                "{job} failed: {reason}; {logs}"
            ))),
            JobOutcome::TimedOut => Ok(Completion::Failed(format!(
                "{job} did not finish within {}s (it keeps running); {logs}",
                migration.timeout.as_secs()
            ))),
        }
    }

    async fn migration_job(
        &self,
        plan: &StagePlan,
        kind: Migration,
        version: &Version,
        validate: bool,
    ) -> Result<Option<JobPreview>, PortError> {
        let Some(migration) = self.migration(plan, kind, version).await? else {
            return Ok(None);
        };
        if validate {
            migration
                .cluster
                .validate_job(&migration.namespace, &migration.spec)
                .await
                .map_err(port)?;
        }
        Ok(Some(migration.preview))
    }

    async fn watermark(&self, environment: &str) -> Result<Option<Version>, PortError> {
        let (cluster, ns) = self.home(environment).await?;
        let value = cluster
            .state_get(&ns, environment, WATERMARK_KEY)
            .await
            .map_err(port)?;
        value.map(|v| v.parse().map_err(port)).transpose()
    }

    async fn set_watermark(&self, environment: &str, version: &Version) -> Result<(), PortError> {
        let (cluster, ns) = self.home(environment).await?;
        cluster
            .state_set(&ns, environment, WATERMARK_KEY, version.as_str())
            .await
            .map_err(port)
    }
}

impl Ledger for KubePorts<'_> {
    async fn record(&self, plan: &StagePlan, record: HistoryRecord) -> Result<(), PortError> {
        let stage = self.stage(&plan.name)?;
        let cluster = self.clusters(stage).await?.remove(0);
        let mut entry = serde_json::to_value(&record).map_err(port)?;
        entry["at"] = serde_json::Value::String(crate::context::now_rfc3339());
        let (by, run) = crate::holder::holder_parts(&self.holder.who);
        entry["by"] = serde_json::Value::String(by.to_owned());
        if let Some(run) = run {
            entry["run"] = serde_json::Value::String(run.to_owned());
        }
        cluster
            .history_append(&stage.namespace, &stage.name, entry)
            .await
            .map_err(port)
    }

    async fn record_if_missing(
        &self,
        plan: &StagePlan,
        record: HistoryRecord,
    ) -> Result<bool, PortError> {
        let newest = self.history(&plan.name).await?.pop();
        // By semver precedence, as every version compares (`3.1.0` is `v3.1.0`).
        let same = |recorded: &str| match (recorded.parse::<Version>(), record.version.parse()) {
            (Ok(a), Ok(b)) => a == b,
            _ => recorded == record.version,
        };
        if newest.is_some_and(|entry| entry["version"].as_str().is_some_and(same)) {
            return Ok(false);
        }
        self.record(plan, record).await?;
        Ok(true)
    }
}
