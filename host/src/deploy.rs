//! Wires a deploy: the configuration becomes a [`Plan`], and the lifecycle's ports are served by
//! the real adapters: [`KubeCluster`] for `Cluster`, [`PluginHost`] for `Checks` and `Notify`.
//!
//! Architecture invariant: decisions stay in `lifecycle`; this module only translates (config →
//! plan, version ↔ image, port calls → adapter calls) and never decides what a deploy does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use futures::future::join_all;
use tokio::sync::OnceCell;

use crate::cluster::{
    Holder as KubeHolder, JobOutcome, JobSpec, KubeCluster, LockAttempt as KubeLock, RolloutOutcome,
};
use crate::config::{self, Config, OnUnknown, Stage};
use crate::context::{DeployContext, Event, EventKind};
use crate::lifecycle::ports::{
    ApplyPreview, CheckOutcome, CheckResult, Checks, Cluster, Completion, HistoryRecord, Holder,
    ImageChange, JobPreview, LockAttempt, Migration, Notify, PortError, Reporter, StageLive,
    WorkloadLive,
};
use crate::lifecycle::{BakePlan, CommandLine, Gate, Plan, StagePlan, UnknownPolicy, shell_quoted};
use crate::plugins::{
    Grants, Limits, Plugin, PluginError, PluginHost, PluginKind, PluginSpec, Source,
};
use crate::verdict::HealthStatus;
use crate::version::{Version, image_repository, image_tag};

/// Annotation: the component version tagship applied.
pub const ANNOTATION_VERSION: &str = "tagship.io/version";
/// Annotation: the version before it (what a rollback returns to).
pub const ANNOTATION_PREVIOUS: &str = "tagship.io/previous-version";
/// Annotation: the pipeline that applied it.
pub const ANNOTATION_PIPELINE: &str = "tagship.io/pipeline-url";
/// Annotation: who applied it.
pub const ANNOTATION_BY: &str = "tagship.io/deployed-by";
/// Annotation: when.
pub const ANNOTATION_AT: &str = "tagship.io/deployed-at";
/// Key of the post-deployment migration watermark in the environment's state.
pub const WATERMARK_KEY: &str = "post_migrated_version";

/// Options of a deploy run from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Manual stages approved.
    pub approve: BTreeSet<String>,
    /// Stop after this stage.
    pub until: Option<String>,
    /// Allow deploying below the live version.
    pub allow_downgrade: bool,
    /// Allow deploying below the post-deployment migration watermark.
    pub force: bool,
    /// Identifies the run.
    pub deploy_id: String,
    /// The pipeline running it.
    pub pipeline_url: Option<String>,
    /// The application's version for compat checks.
    pub app_version: Option<String>,
    /// The command line of the run, for the follow-up commands it prints.
    pub command: CommandLine,
}

/// Resolves the configuration into the lifecycle's plan.
pub fn plan(config: &Config, target: Version, options: &RunOptions) -> Plan {
    let post_stages = config.post_migration_stages();
    let environments = config.environments();
    let stages = config
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let env = environments.iter().find(|e| e.stages.contains(&i));
            StagePlan {
                name: s.name.clone(),
                environment: s.environment.clone(),
                gate: match s.gate {
                    config::Gate::Auto => Gate::Auto,
                    config::Gate::Manual => Gate::Manual,
                },
                first_of_environment: env.is_some_and(|e| e.stages.start == i),
                last_of_environment: env.is_some_and(|e| e.stages.end == i + 1),
                post_migrations_after: post_stages.contains(&i),
                pre_checks: s.pre_checks.clone(),
                bake: s.bake.as_ref().map(|b| BakePlan {
                    checks: b.checks.clone(),
                    duration: b.duration,
                    interval: b.interval,
                    initial_delay: b.initial_delay,
                    failure_limit: b.failure_limit,
                    consecutive_error_limit: b.consecutive_error_limit,
                    unknown: match b.unknown {
                        OnUnknown::Fail => UnknownPolicy::Fail,
                        OnUnknown::Pass => UnknownPolicy::Pass,
                        OnUnknown::Wait => UnknownPolicy::Wait,
                    },
                }),
            }
        })
        .collect();
    Plan {
        component: config.component.name.clone(),
        target,
        stages,
        approved: options.approve.clone(),
        until: options.until.clone(),
        downgrade: match (options.allow_downgrade, options.force) {
            (false, _) => crate::lifecycle::Downgrade::Refused,
            (true, false) => crate::lifecycle::Downgrade::Allowed,
            (true, true) => crate::lifecycle::Downgrade::BelowWatermark,
        },
        pre_migrations: config.migrations.pre.is_some(),
        post_migrations: config.migrations.post.is_some(),
        lock_wait: config.lock.wait,
        lock_ttl: config.lock.ttl,
        deploy_id: options.deploy_id.clone(),
        pipeline_url: options.pipeline_url.clone(),
        app_version: options.app_version.clone(),
        command: options.command.clone(),
    }
}

/// A kubeconfig file (None: the default) and a context (None: its current one).
type ConnectionKey = (Option<std::path::PathBuf>, Option<String>);

/// Serves the `Cluster` port with one [`KubeCluster`] per kubeconfig context.
pub struct KubePorts<'a> {
    config: &'a Config,
    holder: KubeHolder,
    /// Where rollout progress goes.
    reporter: &'a (dyn Reporter + Sync),
    connections: Mutex<HashMap<ConnectionKey, std::sync::Arc<OnceCell<KubeCluster>>>>,
    /// Digests resolved for `pin = "digest"`, by `repository:tag`: asked once per run, so every
    /// cluster, workload and migration of a release runs the same image.
    digests: tokio::sync::Mutex<HashMap<String, String>>,
    /// The time to live of the locks this run takes (default `[lock].ttl`).
    lock_ttl: std::time::Duration,
}

/// A lock request that failed, with what to fix when asking again cannot help: the lock's
/// namespace is missing, or the credentials may not use Leases there.
fn lock_error(e: &crate::cluster::ClusterError, context: &str, ns: &str) -> PortError {
    let told = crate::report::one_line(e);
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
fn port<E: std::error::Error>(e: E) -> PortError {
    PortError::new(crate::report::one_line(&e))
}

impl<'a> KubePorts<'a> {
    /// Ports for `config`, taking locks as `holder`.
    pub fn new(config: &'a Config, holder: KubeHolder) -> Self {
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

    fn stage(&self, name: &str) -> Result<&'a Stage, PortError> {
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
    async fn clusters(&self, stage: &Stage) -> Result<Vec<KubeCluster>, PortError> {
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
    async fn image(&self, stage: &Stage, version: &Version) -> Result<String, PortError> {
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
            (ANNOTATION_BY.to_owned(), self.holder.id.clone()),
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

/// Whether the image of `container` was set by someone else after tagship deployed: the
/// Deployment carries tagship's version annotation, the image's owner (by `managedFields`) is
/// another field manager, and the image is not that version. Said as people need it:
/// "serves v3.0.0, set by field manager `helm` at T; tagship deployed v3.1.0 at T'".
fn drift(
    live: &crate::cluster::LiveDeployment,
    container: &str,
    serving: Option<&Version>,
) -> Option<String> {
    let deployed = live.annotations.get(ANNOTATION_VERSION)?;
    let owner = live.image_owners.get(container)?;
    if owner.manager == crate::cluster::FIELD_MANAGER
        || serving.is_some_and(|v| v.as_str() == deployed.as_str())
    {
        return None;
    }
    let serves = serving.map_or_else(
        || format!("`{}`", live.image_of(container).map_or("", String::as_str)),
        ToString::to_string,
    );
    let when = |at: Option<&String>| at.map(|t| format!(" at {t}")).unwrap_or_default();
    Some(format!(
        "serves {serves}, set by field manager `{}`{}; tagship deployed {deployed}{}",
        owner.manager,
        when(owner.time.as_ref()),
        when(live.annotations.get(ANNOTATION_AT))
    ))
}

/// The containers (and init containers) of `live` whose image tagship sets for `workload`:
/// those it names, each of which must run one of `repositories`; by default every one running
/// one of them. The error completes a sentence about the Deployment ("… has no container …").
fn component_containers(
    workload: &config::Workload,
    live: &crate::cluster::LiveDeployment,
    repositories: &[&str],
) -> Result<Vec<String>, String> {
    let is_component = |image: &str| repositories.contains(&image_repository(image));
    let has = || {
        live.all_images()
            .map(|(name, image)| format!("`{name}` ({image})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if workload.containers.is_empty() {
        let containers: Vec<String> = live
            .all_images()
            .filter(|(_, image)| is_component(image))
            .map(|(name, _)| name.clone())
            .collect();
        if containers.is_empty() {
            return Err(format!(
                "runs no container of the component's image {} (it has: {}); name the container in `containers` of the workload, or fix the image repository (`image` in [component] or the stage)",
                crate::config::quoted_list(repositories.iter().copied()),
                has()
            ));
        }
        return Ok(containers);
    }
    for name in &workload.containers {
        match live.image_of(name) {
            None => {
                return Err(format!(
                    "has no container `{name}` (it has: {}); fix `containers` of the workload",
                    has()
                ));
            }
            Some(image) if !is_component(image) => {
                return Err(format!(
                    "has container `{name}` running `{image}`, not the component's image {}; tagship changes only the component's containers: remove `{name}` from `containers` of the workload",
                    crate::config::quoted_list(repositories.iter().copied())
                ));
            }
            Some(_) => {}
        }
    }
    Ok(workload.containers.clone())
}

impl Cluster for KubePorts<'_> {
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

    async fn try_lock(&self, environment: &str) -> Result<LockAttempt, PortError> {
        let (cluster, ns) = self.home(environment).await?;
        let lease = self.config.lease_name(environment);
        match cluster
            .lock_try_acquire(&ns, &lease, &self.holder, self.lock_ttl)
            .await
            .map_err(|e| lock_error(&e, cluster.context(), &ns))?
        {
            KubeLock::Acquired => Ok(LockAttempt::Acquired),
            KubeLock::Held(info) => Ok(LockAttempt::Held(Holder {
                who: info.holder,
                reason: info.reason,
                pipeline_url: info.pipeline_url,
                since: info.since,
            })),
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

    async fn record(&self, plan: &StagePlan, record: HistoryRecord) -> Result<(), PortError> {
        let stage = self.stage(&plan.name)?;
        let cluster = self.clusters(stage).await?.remove(0);
        let mut entry = serde_json::to_value(&record).map_err(port)?;
        entry["at"] = serde_json::Value::String(crate::context::now_rfc3339());
        let (by, run) = crate::holder::holder_parts(&self.holder.id);
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

/// A migration Job ready to run, and what it is for people.
struct MigrationJob {
    cluster: KubeCluster,
    namespace: String,
    spec: JobSpec,
    timeout: std::time::Duration,
    preview: JobPreview,
}

impl KubePorts<'_> {
    /// The workload and container a migration Job runs as (`wanted`, else the first container
    /// of the component's image in the stage's first workload), with the workload's pod
    /// template.
    async fn migration_source(
        &self,
        stage: &Stage,
        cluster: &KubeCluster,
        wanted: Option<&config::ContainerRef>,
        label: &str,
    ) -> Result<(String, String, crate::cluster::PodTemplate), PortError> {
        let ns = &stage.namespace;
        let repositories = self.config.component_repositories(stage);
        let runs_component = |image: &str| repositories.contains(&image_repository(image));
        let where_ = format!(
            "`container` of [migrations.{label}] in {}",
            self.config.path.display()
        );
        let candidates: Vec<&str> = match wanted.and_then(|c| c.deployment.as_deref()) {
            Some(deployment) => vec![deployment],
            None => stage.deployment_names(),
        };
        for deployment in candidates {
            let template = cluster.pod_template(ns, deployment).await.map_err(port)?;
            let containers = pod_containers(&template, false);
            let container = match wanted {
                Some(wanted) => containers
                    .iter()
                    .find(|(name, _)| *name == wanted.container),
                None => containers.iter().find(|(_, image)| runs_component(image)),
            };
            if let Some((name, _)) = container {
                return Ok((deployment.to_owned(), name.clone(), template));
            }
            if wanted.is_none() {
                // By default the stage's first workload is the one.
                return Err(PortError::new(format!(
                    "the migration Job runs in a workload's pod, and deployment `{deployment}` in namespace `{ns}` of cluster `{}` runs no container of the component's image {}; name one with {where_}",
                    cluster.context(),
                    crate::config::quoted_list(repositories.iter().copied())
                )));
            }
        }
        let wanted = wanted.map(|c| c.container.as_str()).unwrap_or_default();
        Err(PortError::new(format!(
            "no workload of stage `{}` has a container `{wanted}` for the migration Job (in namespace `{ns}` of cluster `{}`); fix {where_}",
            stage.name,
            cluster.context()
        )))
    }

    /// The migration Job `kind` of `version` in the stage: built from the pod template of the
    /// workload container `[migrations.*].container` names (by default the first container of
    /// the component's image in the stage's first workload), in the stage's first cluster.
    /// `None` when no such migration is configured.
    async fn migration(
        &self,
        plan: &StagePlan,
        kind: Migration,
        version: &Version,
    ) -> Result<Option<MigrationJob>, PortError> {
        let stage = self.stage(&plan.name)?;
        let (job, label) = match kind {
            Migration::Pre => (self.config.migrations.pre.as_ref(), "pre"),
            Migration::Post => (self.config.migrations.post.as_ref().map(|p| &p.job), "post"),
        };
        let Some(job) = job else {
            return Ok(None);
        };
        let cluster = self.clusters(stage).await?.remove(0);
        let ns = &stage.namespace;
        let repositories = self.config.component_repositories(stage);
        let runs_component = |image: &str| repositories.contains(&image_repository(image));
        let (deployment, container, template) = self
            .migration_source(stage, &cluster, job.container.as_ref(), label)
            .await?;
        let image = self.image(stage, version).await?;
        let init_images = pod_containers(&template, true)
            .into_iter()
            .filter(|(_, old)| runs_component(old))
            .map(|(name, _)| (name, image.clone()))
            .collect();
        let run = crate::cluster::MigrationRun {
            container: container.clone(),
            image: image.clone(),
            init_images,
            command: job.command.clone(),
            args: job.args.clone(),
            env: job.env.clone(),
            service_account: job.service_account.clone(),
        };
        let pod = crate::cluster::migration_pod(&template.spec, &run).map_err(|e| {
            PortError::new(format!(
                "cannot build the migration Job from deployment `{deployment}` in namespace `{ns}`: it {e}"
            ))
        })?;
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "tagship".to_owned(),
            ),
            (
                "tagship.io/component".to_owned(),
                self.config.component.name.clone(),
            ),
            ("tagship.io/migration".to_owned(), label.to_owned()),
        ]);
        // A Job pod the Deployment's selector matches would be counted (and deleted) as one of
        // its replicas, and a Service would send it traffic.
        if !template.selector.is_empty()
            && template
                .selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        {
            return Err(PortError::new(format!(
                "the selector of deployment `{deployment}` in namespace `{ns}` matches the migration Job's labels {labels:?}; give the Deployment a selector of its own"
            )));
        }
        let spec = JobSpec {
            name: job_name(
                &self.config.component.name,
                label,
                version,
                &stage.environment,
            ),
            pod,
            backoff_limit: i32::try_from(job.backoff_limit).unwrap_or(0),
            labels,
        };
        let preview = describe_job(&cluster, ns, &spec, &format!("{deployment}/{container}"));
        Ok(Some(MigrationJob {
            cluster,
            namespace: ns.clone(),
            spec,
            timeout: job.timeout,
            preview,
        }))
    }
}

/// The (name, image) of each container of `template`, or of each init container.
fn pod_containers(template: &crate::cluster::PodTemplate, init: bool) -> Vec<(String, String)> {
    let list = if init { "initContainers" } else { "containers" };
    template.spec[list]
        .as_array()
        .map(|containers| {
            containers
                .iter()
                .filter_map(|c| {
                    Some((
                        c["name"].as_str()?.to_owned(),
                        c["image"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `spec` as people check it before it runs: where it runs, as what, with which environment
/// (names and sources, never values) and volumes.
fn describe_job(cluster: &KubeCluster, ns: &str, spec: &JobSpec, from: &str) -> JobPreview {
    let pod = &spec.pod;
    let container = &pod["containers"][0];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut command = strings(&container["command"]);
    command.extend(strings(&container["args"]));
    let env = env_sources(&container["env"]);
    let volumes = volumes_mounted(&pod["volumes"], &container["volumeMounts"]);
    let init_containers = pod["initContainers"]
        .as_array()
        .map(|inits| {
            inits
                .iter()
                .map(|c| {
                    format!(
                        "{} ({})",
                        c["name"].as_str().unwrap_or_default(),
                        c["image"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    JobPreview {
        cluster: cluster.context().to_owned(),
        namespace: ns.to_owned(),
        name: spec.name.clone(),
        from: from.to_owned(),
        image: container["image"].as_str().unwrap_or_default().to_owned(),
        command,
        init_containers,
        env,
        volumes,
        service_account: pod["serviceAccountName"].as_str().map(str::to_owned),
    }
}

/// Each env entry as `NAME` and where its value comes from (never the value).
fn env_sources(env: &serde_json::Value) -> Vec<String> {
    env.as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    let name = e["name"].as_str().unwrap_or_default();
                    let from = &e["valueFrom"];
                    let source = if let Some(r) = from.get("secretKeyRef") {
                        format!(
                            "from secret `{}` key `{}`",
                            r["name"].as_str().unwrap_or_default(),
                            r["key"].as_str().unwrap_or_default()
                        )
                    } else if let Some(r) = from.get("configMapKeyRef") {
                        format!(
                            "from configmap `{}` key `{}`",
                            r["name"].as_str().unwrap_or_default(),
                            r["key"].as_str().unwrap_or_default()
                        )
                    } else if let Some(r) = from.get("fieldRef") {
                        format!(
                            "from field `{}`",
                            r["fieldPath"].as_str().unwrap_or_default()
                        )
                    } else if from.is_object() {
                        "from a reference".to_owned()
                    } else {
                        "(a value)".to_owned()
                    };
                    format!("{name} {source}")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Each volume as `name (kind `source`) at mount paths` of the container's `mounts`.
fn volumes_mounted(volumes: &serde_json::Value, mounts: &serde_json::Value) -> Vec<String> {
    let mounts: Vec<(String, String)> = mounts
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| {
                    Some((
                        m["name"].as_str()?.to_owned(),
                        m["mountPath"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    volumes
        .as_array()
        .map(|volumes| {
            volumes
                .iter()
                .filter_map(|v| {
                    let name = v["name"].as_str()?;
                    let kind = v.as_object()?.keys().find(|k| *k != "name")?.clone();
                    let source = v[&kind]["name"]
                        .as_str()
                        .or_else(|| v[&kind]["secretName"].as_str())
                        .map(|s| format!(" `{s}`"))
                        .unwrap_or_default();
                    let at = mounts
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, path)| path.as_str())
                        .collect::<Vec<_>>();
                    let at = if at.is_empty() {
                        " (not mounted in the migration container)".to_owned()
                    } else {
                        format!(" at {}", at.join(", "))
                    };
                    Some(format!("{name} ({kind}{source}){at}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A Job name that is the same for the same migration of the same version (so a re-run reuses
/// a completed Job), DNS-1123 and at most 63 characters.
fn job_name(component: &str, kind: &str, version: &Version, environment: &str) -> String {
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(format!(
        "{component}/{kind}/{version}/{environment}"
    )));
    let clean: String = version
        .as_str()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = format!("{component}-{kind}-migrate-{clean}");
    name.truncate(54);
    format!("{}-{}", name.trim_end_matches('-'), &hash[..8])
}

/// Serves `Checks` and `Notify` with plugins loaded once per (plugin, stage).
pub struct PluginPorts<'a> {
    config: &'a Config,
    host: PluginHost,
    loaded: Mutex<HashMap<(String, String), std::sync::Arc<Plugin>>>,
    /// (deploy, stage, event) already sent: each event reaches each notifier once.
    sent: tokio::sync::Mutex<BTreeSet<(String, String, String)>>,
    deploy_id: String,
}

impl<'a> PluginPorts<'a> {
    /// Ports loading plugins of `config` into `host`.
    pub fn new(config: &'a Config, host: PluginHost, deploy_id: String) -> Self {
        PluginPorts {
            config,
            host,
            loaded: Mutex::new(HashMap::new()),
            sent: tokio::sync::Mutex::new(BTreeSet::new()),
            deploy_id,
        }
    }

    /// Loads every plugin the configuration names, so a plugin that cannot load is a usage error
    /// before anything changes.
    pub fn preload(&self) -> Result<(), PluginError> {
        for stage in &self.config.stages {
            let uses = stage
                .pre_checks
                .iter()
                .map(|n| {
                    (
                        n,
                        "pre-check",
                        &[PluginKind::HealthCheck, PluginKind::CompatCheck][..],
                    )
                })
                .chain(
                    stage
                        .bake
                        .iter()
                        .flat_map(|b| &b.checks)
                        .map(|n| (n, "bake check", &[PluginKind::HealthCheck][..])),
                )
                .chain(
                    stage
                        .notify
                        .iter()
                        .map(|n| (n, "notifier", &[PluginKind::Notifier][..])),
                );
            for (name, role, kinds) in uses {
                let plugin = self.plugin(name, &stage.name)?;
                let hears_events = self.config.plugin(name).is_some_and(|p| p.events.is_some());
                if hears_events && plugin.kind() != PluginKind::Notifier {
                    return Err(PluginError::Settings {
                        plugin: name.clone(),
                        reason: format!(
                            "`events` is for notifiers, and this is a {} plugin; remove it",
                            plugin.kind().world()
                        ),
                    });
                }
                if !kinds.contains(&plugin.kind()) {
                    return Err(PluginError::WrongKind {
                        plugin: name.clone(),
                        actual: plugin.kind().world(),
                        expected: role,
                    });
                }
            }
        }
        Ok(())
    }

    /// The kind of plugin `name` (loading it for `stage` if needed).
    pub fn kind_of(&self, name: &str, stage: &str) -> Result<PluginKind, PluginError> {
        Ok(self.plugin(name, stage)?.kind())
    }

    fn plugin(&self, name: &str, stage: &str) -> Result<std::sync::Arc<Plugin>, PluginError> {
        let key = (name.to_owned(), stage.to_owned());
        if let Some(plugin) = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Ok(plugin.clone());
        }
        let settings = self
            .config
            .plugin(name)
            .ok_or_else(|| PluginError::Settings {
                plugin: name.to_owned(),
                reason: "not defined under [plugins]".into(),
            })?;
        let stage_config = self
            .config
            .stage(stage)
            .and_then(|s| self.config.plugin_settings(s, name))
            .unwrap_or_default();
        let mut grants = Grants::none()
            .with_hosts(&settings.allow_hosts)
            .map_err(|reason| PluginError::Settings {
                plugin: name.to_owned(),
                reason,
            })?;
        for secret in &settings.secrets {
            grants = grants.with_secret(secret, std::env::var(secret).ok());
        }
        let defaults = Limits::default();
        let limits = Limits {
            memory_bytes: settings
                .limits
                .memory_mib
                .map_or(defaults.memory_bytes, |m| (m as usize) << 20),
            cpu: settings.limits.cpu.unwrap_or(defaults.cpu),
            wall: settings.limits.wall.unwrap_or(defaults.wall),
            ..defaults
        };
        let source = match &settings.source {
            config::PluginSource::Builtin(n) => Source::Builtin(n.clone()),
            config::PluginSource::File(p) => Source::File(p.clone()),
        };
        let plugin = std::sync::Arc::new(self.host.load(PluginSpec {
            name: name.to_owned(),
            source,
            config: stage_config,
            grants,
            limits,
        })?);
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, plugin.clone());
        Ok(plugin)
    }
}

impl Checks for PluginPorts<'_> {
    async fn run(
        &self,
        stage: &StagePlan,
        checks: &[String],
        ctx: &DeployContext,
    ) -> Vec<CheckResult> {
        let runs = checks.iter().map(|name| async move {
            let outcome = match self.plugin(name, &stage.name) {
                Err(e) => CheckOutcome::Errored(e.to_string()),
                Ok(plugin) => match plugin.kind() {
                    PluginKind::HealthCheck => match plugin.check_health(ctx).await {
                        Ok(report) => match report.status {
                            HealthStatus::Healthy => CheckOutcome::Pass,
                            HealthStatus::Unhealthy => CheckOutcome::Fail(report.reason),
                            HealthStatus::Unknown => CheckOutcome::Unknown(report.reason),
                        },
                        Err(e) => CheckOutcome::Errored(e.to_string()),
                    },
                    PluginKind::CompatCheck => match plugin.check_compat(ctx).await {
                        Ok(report) if report.compatible => CheckOutcome::Pass,
                        Ok(report) => CheckOutcome::Fail(report.reasons.join("; ")),
                        Err(e) => CheckOutcome::Errored(e.to_string()),
                    },
                    PluginKind::Notifier => {
                        CheckOutcome::Errored(format!("plugin `{name}` is a notifier, not a check"))
                    }
                },
            };
            CheckResult {
                check: name.clone(),
                cluster: None,
                outcome,
            }
        });
        join_all(runs).await
    }
}

impl Notify for PluginPorts<'_> {
    async fn send(
        &self,
        stage: Option<&StagePlan>,
        kind: EventKind,
        ctx: &DeployContext,
        message: &str,
    ) {
        let stage_name = stage.map(|s| s.name.clone()).unwrap_or_default();
        let kind_name = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if !self
            .sent
            .lock()
            .await
            .insert((self.deploy_id.clone(), stage_name.clone(), kind_name))
        {
            return;
        }
        // A deploy-level event goes to every notifier any stage names; a stage event to its own.
        let names: BTreeSet<&String> = match stage {
            Some(s) => self
                .config
                .stage(&s.name)
                .map(|s| s.notify.iter().collect())
                .unwrap_or_default(),
            None => self.config.stages.iter().flat_map(|s| &s.notify).collect(),
        };
        // Each notifier hears the kinds its `events` names (default: all).
        let names: BTreeSet<&String> = names
            .into_iter()
            .filter(|name| {
                self.config
                    .plugin(name)
                    .and_then(|p| p.events.as_ref())
                    .is_none_or(|events| events.contains(&kind))
            })
            .collect();
        let event = Event {
            kind,
            deploy_id: self.deploy_id.clone(),
            timestamp: crate::context::now_rfc3339(),
            context: ctx.clone(),
            message: message.to_owned(),
        };
        let context_stage = if stage_name.is_empty() {
            self.config
                .stages
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_default()
        } else {
            stage_name
        };
        let sends = names.into_iter().map(|name| {
            let event = &event;
            let context_stage = &context_stage;
            async move {
                match self.plugin(name, context_stage) {
                    Ok(plugin) => {
                        if let Err(e) = plugin.notify(event).await {
                            tracing::warn!("notifier `{name}` failed (the deploy goes on): {e}");
                        }
                    }
                    Err(e) => tracing::warn!("notifier `{name}` could not be loaded: {e}"),
                }
            }
        });
        // Notifiers are independent: one slow or failing notifier does not hold up another.
        join_all(sends).await;
    }
}

/// Prints each step as a line on stderr: `HH:MM:SS [stage] message`.
pub use crate::progress::Lines as LineReporter;

/// The default lock holder of a deploy run.
pub fn holder(reason: String) -> KubeHolder {
    KubeHolder {
        id: default_holder(),
        reason,
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
    }
}

/// This run's holder identity: who runs it and which run it is, `WHO#RUN` (see
/// [`crate::holder::holder_parts`]).
///
/// Who: `TAGSHIP_HOLDER`, else the GitLab user (`GITLAB_USER_LOGIN`), else `USER@HOSTNAME`.
/// The run: in a GitLab CI job, its pipeline and job name, so the same job run again (a retry)
/// takes over its own lock; elsewhere a random id per process, so two terminals of one person
/// are two holders, and Ctrl-C in one never releases the other's lock.
pub fn default_holder() -> String {
    format!("{}#{}", holder_who(), run_id())
}

/// Who runs tagship, for the lock and the history.
pub fn holder_who() -> String {
    if let Ok(holder) = std::env::var("TAGSHIP_HOLDER") {
        return holder;
    }
    if let Ok(user) = std::env::var("GITLAB_USER_LOGIN") {
        return user;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = fs_err::read_to_string("/etc/hostname")
        .map_or_else(|_| "localhost".into(), |h| h.trim().to_owned());
    format!("{user}@{host}")
}

/// Which run this is: `pipeline-ID/JOB` in GitLab CI, else `run-` and a random id (fixed for
/// the life of the process).
fn run_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        if let (Ok(pipeline), Ok(job)) = (
            std::env::var("CI_PIPELINE_ID"),
            std::env::var("CI_JOB_NAME"),
        ) {
            return format!("pipeline-{pipeline}/{job}");
        }
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        format!("run-{:08x}", hasher.finish() & 0xffff_ffff)
    })
    .clone()
}
