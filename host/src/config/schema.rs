//! The validated configuration: what `tagship.toml` means once parsed, with every default
//! filled in and every relative path resolved against the file's directory.
//!
//! Plain data only; reading lives in `read.rs`, cross-checks in `validate.rs`. The field docs
//! here are the reference for `tagship.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::version::TagTemplate;

/// A parsed and validated `tagship.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this configuration was read from (as given); relative paths inside it were
    /// resolved against its directory.
    pub path: PathBuf,
    /// `kubeconfig`: the kubeconfig file for every stage without its own. Optional; when
    /// absent the Kubernetes client's default applies (`$KUBECONFIG`, else `~/.kube/config`).
    /// Relative paths are resolved against the configuration file's directory; `~` is not
    /// expanded.
    pub kubeconfig: Option<PathBuf>,
    /// `[component]`: what is deployed.
    pub component: Component,
    /// `[lock]`: the deploy lock, one Lease per environment.
    pub lock: Lock,
    /// `[migrations]`: database migration Jobs around the rollout.
    pub migrations: Migrations,
    /// `[plugins.NAME]`: the plugins stages may use, by name.
    pub plugins: BTreeMap<String, Plugin>,
    /// `[[stage]]`: the stages in deploy order. Never empty; stages of one environment are
    /// consecutive.
    pub stages: Vec<Stage>,
}

/// `[component]`: the service being deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// `name`: the component's name, used in messages, reports and audit annotations.
    /// Required.
    pub name: String,
    /// `image`: the image repository without a tag, e.g.
    /// `registry.example.com/gitlab-container-registry`. Required.
    pub image: String,
    /// `tag`: how a version becomes the image tag; must contain `{{version}}` exactly once.
    /// Default `{{version}}`.
    pub tag: TagTemplate,
    /// `pin`: `tag` (default) applies `image:tag`; `digest` resolves the tag's digest through
    /// the registry's HTTP API before the apply and applies `image:tag@sha256:…`, so every pod
    /// of the release runs the same bytes even if the tag is moved.
    pub pin: Pin,
    /// `registry_url`: the base URL of the registry's HTTP API that `pin = "digest"` asks, e.g.
    /// `https://registry.example.com`. Optional; default `https://` and the image's registry
    /// host (Docker Hub's API for an image without one).
    pub registry_url: Option<String>,
    /// `registry_user_env` and `registry_password_env`: the names of the environment variables
    /// holding the registry credentials `pin = "digest"` uses (e.g. `CI_REGISTRY_USER` and
    /// `CI_REGISTRY_PASSWORD`). Optional; default: anonymous pulls. Both or neither.
    pub registry_credentials: Option<(String, String)>,
}

/// How an image is referred to in the pod template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pin {
    /// `tag`: `repository:tag`.
    #[default]
    Tag,
    /// `digest`: `repository:tag@sha256:…`, the digest the registry gives for the tag.
    Digest,
}

/// `[lock]`: the deploy lock. Each environment has its own Lease
/// (`coordination.k8s.io/v1`) in the first cluster of its first stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// `name`: the Lease's name; `{{environment}}` is replaced by the environment's name and
    /// the result must be a valid Kubernetes name. Default `tagship-{{environment}}`.
    pub name: String,
    /// `namespace`: the namespace of every environment's Lease. Optional; default: the
    /// namespace of the environment's first stage (see [`Config::lock_namespace`]).
    pub namespace: Option<String>,
    /// `ttl`: how long a Lease stays valid without renewal; renewed every `ttl / 3` while a
    /// command works. At least `15s`. Default `2m`.
    pub ttl: Duration,
    /// `wait`: how long `deploy` waits for a lock another holder has. Default `30m`.
    pub wait: Duration,
}

/// `[migrations]`: database migrations run as Kubernetes Jobs with the target image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrations {
    /// `[migrations.pre]`: runs in the first stage of each environment, before the apply.
    /// Optional.
    pub pre: Option<Migration>,
    /// `[migrations.post]`: runs after the last stage of each environment (or after the
    /// stages named in `after_stage`) once it is healthy. Optional.
    pub post: Option<PostMigration>,
}

/// One migration Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// `command`: the container's command (entrypoint), e.g.
    /// `["registry", "database", "migrate", "up", "--skip-post-deployment"]`. Required,
    /// non-empty.
    pub command: Vec<String>,
    /// `args`: the container's arguments. Default `[]`.
    pub args: Vec<String>,
    /// `env`: extra environment variables of the container, as a table of strings.
    /// Default `{}`.
    pub env: BTreeMap<String, String>,
    /// `service_account`: the Job's service account. Optional; default: the workload pod's.
    pub service_account: Option<String>,
    /// `backoff_limit`: retries of the Job's pod before the Job fails. Default `0`.
    pub backoff_limit: u32,
    /// `timeout`: how long the Job may run before it counts as failed. Default `10m`.
    pub timeout: Duration,
    /// `container`: the workload container whose pod the Job runs in, as `container` (in the
    /// first of the stage's workloads that has it) or `deployment/container`. The Job's pod is
    /// that Deployment's pod template: the container's env (with its Secret and `ConfigMap`
    /// references), envFrom, volume mounts, resources, security context and working directory,
    /// with its image at the target version and `command`/`args`/`env` from here; the pod's
    /// volumes, init containers (those running the component's image at the target version),
    /// service account, image pull secrets, node selector, tolerations, affinity, security
    /// context and priority class. Optional; default: the first container running the
    /// component's image in the stage's first workload.
    pub container: Option<ContainerRef>,
}

/// A container of a stage's workloads, as `[migrations.*].container` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The Deployment; `None`: the first of the stage's workloads that has the container.
    pub deployment: Option<String>,
    /// The container's name.
    pub container: String,
}

/// `[migrations.post]`: a [`Migration`] plus where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMigration {
    /// The Job, with the same keys as `[migrations.pre]`.
    pub job: Migration,
    /// `after_stage`: a stage name or a list of stage names; post-deployment migrations run
    /// after each of these stages, and only in their environments. At most one per
    /// environment. Default: the last stage of every environment.
    pub after_stage: Vec<String>,
}

/// `[plugins.NAME]`: one plugin. `NAME` is `[a-z0-9-]+` and is how stages refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The `NAME` of `[plugins.NAME]`.
    pub name: String,
    /// `source`: `builtin:NAME` for a plugin compiled into tagship, or the path of a `.wasm`
    /// component (relative to the configuration file's directory). Required.
    pub source: PluginSource,
    /// `config`: the plugin's settings, a table of strings (templates such as
    /// `{{environment}}` are rendered per call). Default `{}`.
    pub config: BTreeMap<String, String>,
    /// `allow_hosts`: the `host` or `host:port` destinations the plugin may reach over HTTP.
    /// Default `[]`: none.
    pub allow_hosts: Vec<String>,
    /// `secrets`: names of environment variables the plugin may read as secrets
    /// (`[A-Z_][A-Z0-9_]*`). Default `[]`.
    pub secrets: Vec<String>,
    /// `[plugins.NAME.limits]`: sandbox limits overriding tagship's defaults.
    pub limits: PluginLimits,
    /// `events`: for a notifier, the event kinds it hears (e.g. `["deploy-failed",
    /// "rollback-started"]`). Default: every kind.
    pub events: Option<std::collections::BTreeSet<crate::context::EventKind>>,
}

/// Where a plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// `builtin:NAME`: a plugin compiled into tagship.
    Builtin(String),
    /// A `.wasm` component file, resolved against the configuration file's directory.
    File(PathBuf),
}

/// `[plugins.NAME.limits]`: each limit is optional; `None` keeps tagship's default (64 MiB,
/// 5 s CPU, 30 s wall clock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginLimits {
    /// `memory_mib`: linear memory in MiB, `1..=1024`.
    pub memory_mib: Option<u32>,
    /// `cpu`: guest CPU time per call, e.g. `5s`.
    pub cpu: Option<Duration>,
    /// `wall`: wall-clock time per call including host I/O, e.g. `30s`.
    pub wall: Option<Duration>,
}

/// `[[stage]]`: one step of the rollout, in one environment, over one or more clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `name`: unique, a Kubernetes-style name (`[a-z0-9-]`, at most 63 characters), e.g.
    /// `gprd-cny`. Required.
    pub name: String,
    /// `environment`: the environment the stage belongs to (`[a-z0-9-]`); stages of one
    /// environment share its lock and its migrations, and must be consecutive. Required.
    pub environment: String,
    /// `clusters`: kubeconfig context names to deploy to, in order. Default `[]`: the
    /// kubeconfig's current context.
    pub clusters: Vec<String>,
    /// `kubeconfig`: this stage's kubeconfig, overriding the top-level one; relative to the
    /// configuration file's directory. Optional.
    pub kubeconfig: Option<PathBuf>,
    /// `namespace`: the namespace of the stage's workloads. Required.
    pub namespace: String,
    /// `workloads`: the Deployments to update, e.g.
    /// `[{ deployment = "gitlab-registry", containers = ["registry"] }]`. Required, non-empty.
    pub workloads: Vec<Workload>,
    /// `gate`: `auto` (default) or `manual` (the stage waits for `--approve NAME`).
    pub gate: Gate,
    /// `pre_checks`: plugins run before the stage is touched; any failure blocks it.
    /// Default `[]`.
    pub pre_checks: Vec<String>,
    /// `notify`: notifier plugins told about the stage's events. Default `[]`.
    pub notify: Vec<String>,
    /// `rollout_timeout`: how long the rollout may take (the Deployment's own
    /// `progressDeadlineSeconds` also applies). Default `10m`.
    pub rollout_timeout: Duration,
    /// `image`: this stage's image repository instead of `[component].image` (e.g. a
    /// production mirror). Optional.
    pub image: Option<String>,
    /// `fail_fast`: watch the pods of the new release during the rollout and fail it (rolling
    /// back) at the first pod that cannot run: a container in `CrashLoopBackOff` or restarted
    /// more than `restarts_allowed` times, `ImagePullBackOff`/`ErrImagePull`,
    /// `CreateContainerConfigError`, `InvalidImageName`. Default `true`; `false` leaves the
    /// verdict to the progress deadline and `rollout_timeout`.
    pub fail_fast: bool,
    /// `restarts_allowed`: container restarts of a new pod tolerated before `fail_fast` fails
    /// the rollout. Default `0`.
    pub restarts_allowed: u32,
    /// `[stage.bake]`: health checks after the rollout. Optional; without it the stage is done
    /// once rolled out.
    pub bake: Option<Bake>,
    /// `[stage.plugin_config.NAME]`: settings merged over `[plugins.NAME].config` for this
    /// stage only, e.g. a different `query`. Default: none.
    pub plugin_config: BTreeMap<String, BTreeMap<String, String>>,
}

/// One workload of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `deployment`: the Deployment's name. Required.
    pub deployment: String,
    /// `containers`: the containers (or init containers) whose image tagship sets; each must
    /// run the component's image. Default `[]`: every container and init container whose image
    /// repository is the component's (`[component].image`, or the stage's `image`); others
    /// (sidecars) are never touched.
    pub containers: Vec<String>,
}

impl Stage {
    /// The names of the stage's Deployments, in the order of `workloads`.
    pub fn deployment_names(&self) -> Vec<&str> {
        self.workloads
            .iter()
            .map(|w| w.deployment.as_str())
            .collect()
    }
}

/// Whether a stage starts on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Gate {
    /// `auto`: the stage starts when the previous one is done.
    #[default]
    Auto,
    /// `manual`: the run stops cleanly before this stage until it is approved with
    /// `--approve NAME`.
    Manual,
}

/// `[stage.bake]`: health checks every `interval` for `duration` after the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bake {
    /// `checks`: health plugins to run. Required, non-empty.
    pub checks: Vec<String>,
    /// `duration`: how long to bake. Required, more than `0s`.
    pub duration: Duration,
    /// `interval`: time between checks; more than `0s` and at most `duration`. Default `1m`.
    pub interval: Duration,
    /// `failure_limit`: failed checks allowed; the bake fails when failures exceed it.
    /// Default `0`.
    pub failure_limit: u32,
    /// `consecutive_error_limit`: check errors (a plugin crashed or returned an error) in a row
    /// allowed before the bake fails. Default `4`.
    pub consecutive_error_limit: u32,
    /// `unknown`: what an `unknown` verdict counts as. Default `fail`.
    pub unknown: OnUnknown,
    /// `initial_delay`: wait after the rollout before the first check. Default `0s`.
    pub initial_delay: Duration,
}

/// What an `unknown` verdict counts as during a bake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnUnknown {
    /// `fail`: as a failure.
    #[default]
    Fail,
    /// `pass`: as a success.
    Pass,
    /// `wait`: as neither; the bake keeps checking.
    Wait,
}
