//! A deploy site on the local environment for end-to-end tests of the `tagship` binary: stage
//! namespaces with the registry's Deployment created in them "as Helm would" (in one or more
//! clusters), a `tagship.toml` written for them, and helpers to run the real binary and to read
//! the cluster back with `kubectl`, the independent witness.
//!
//! Needs the local environment: `tests/cluster/up` (with `--clusters 2` for tests that span two
//! clusters), then the variables of its `env` file exported (`set -a; . <state dir>/env; set +a`).
//! It never starts the environment and never runs cargo.
//!
//! Include it with `#[path = "support/site.rs"] mod site;`.
//!
//! ```ignore
//! let site = Site::builder("e2ex").clusters(&["local-1", "local-2"]).create();
//! let config = site.config().lock_wait("5s").pre_migration(&["migrate", "up"]).write();
//! let ran = deploy(&config, &["--version", "v2.0.0"]);
//! assert_eq!(ran.code, 0, "{}", ran.said);
//! assert_eq!(site.image("gstg"), image_of("v2.0.0"));
//! ```
//!
//! Every site has its own random prefix, so its namespaces (and therefore its Leases and history
//! `ConfigMap`s) are its own: tests run in parallel. Namespaces are deleted when the site is dropped.

#![allow(dead_code, reason = "each test crate uses part of this")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The image repository of the component in every site.
pub const IMAGE: &str = "registry.example.com/registry";
/// The Deployment every stage has.
pub const DEPLOYMENT: &str = "gitlab-registry";
/// The version every stage serves when the site is created (unless [`SiteBuilder::live`]).
pub const LIVE: &str = "v1.0.0";
/// The lock holder the binary runs as (`TAGSHIP_HOLDER`) unless a test says otherwise.
pub const HOLDER: &str = "e2e-test";

/// A variable of the environment's `env` file; panics saying how to get it when unset.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "run tests/cluster/up and export the variables of its env file \
             (`set -a; . <state dir>/env; set +a`): {name} is unset"
        )
    })
}

/// The contexts of the running environment (`TAGSHIP_CONTEXTS`), first is current.
pub fn contexts() -> Vec<String> {
    env("TAGSHIP_CONTEXTS")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `kubectl` against the environment's kubeconfig, in its current context (`local-1`).
pub fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env("TAGSHIP_KUBECONFIG"))
        .args(args)
        .output()
        .expect("run kubectl")
}

/// `kubectl` in kubeconfig context `context` (`local-1`, `local-2`, …).
pub fn kubectl_in(context: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env("TAGSHIP_KUBECONFIG"))
        .arg("--context")
        .arg(context)
        .args(args)
        .output()
        .expect("run kubectl")
}

/// [`kubectl`] that must succeed; its stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    expect_ok(args, &kubectl(args))
}

/// [`kubectl_in`] that must succeed; its stdout.
pub fn kubectl_ok_in(context: &str, args: &[&str]) -> String {
    expect_ok(args, &kubectl_in(context, args))
}

fn expect_ok(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A name no other test (or earlier run) uses: `prefix` plus a process- and call-unique number.
/// Keep `prefix` short, lowercase alphanumeric: namespaces derived from it must stay valid.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let n = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(nanos / 1000)
        .wrapping_add(
            COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(104_729),
        )
        % 1_000_000;
    format!("{prefix}{n}")
}

// ---------------------------------------------------------------------------------------------
// Running the binary

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Both, stdout first: what a user saw. Use it in assertion messages.
    pub said: String,
    /// Wall time of the run.
    pub took: Duration,
}

impl Ran {
    fn from_output(out: &Output, took: Duration) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        Ran {
            code: out.status.code().unwrap_or(-1),
            said: format!("{stdout}{stderr}"),
            stdout,
            stderr,
            took,
        }
    }
}

/// The `tagship` binary under test with `args`, as tests run it: holder [`HOLDER`], the plugin
/// cache in the target directory (shared by every test, so built-ins compile once), stdout and
/// stderr piped. Add `.env(..)` or `.env_remove(..)` as needed, then [`run`] or `.spawn()`.
pub fn tagship(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagship"));
    cmd.args(args)
        .env("TAGSHIP_HOLDER", HOLDER)
        .env(
            "TAGSHIP_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("tagship-cache"),
        )
        .env_remove("TAGSHIP_VERSION")
        .env_remove("TAGSHIP_CONFIG")
        .env_remove("CI_COMMIT_TAG")
        .env_remove("CI_PIPELINE_ID")
        // Plain lines unless a test asks for CI mode (`.env("CI", "true")`).
        .env_remove("CI")
        .env_remove("GITLAB_CI")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end.
pub fn run(cmd: &mut Command) -> Ran {
    let started = Instant::now();
    let out = cmd.output().expect("run tagship");
    Ran::from_output(&out, started.elapsed())
}

/// Waits for a child started from [`tagship`] (e.g. in the background) and collects its output.
pub fn finish(child: Child, started: Instant) -> Ran {
    let out = child.wait_with_output().expect("wait for tagship");
    Ran::from_output(&out, started.elapsed())
}

/// `tagship deploy --config CONFIG ARGS…` to its end.
pub fn deploy(config: &Path, args: &[&str]) -> Ran {
    run(&mut deploy_command(config, args))
}

/// The command of [`deploy`], not started: for runs in the background.
pub fn deploy_command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = tagship(&["deploy", "--config", path_str(config)]);
    cmd.args(args);
    cmd
}

/// `tagship SUBCOMMAND… ARGS… --config CONFIG` to its end, e.g.
/// `command(&config, &["lock", "acquire"], &["--stage", "gstg", "--holder", "rails"])`.
pub fn command(config: &Path, subcommand: &[&str], args: &[&str]) -> Ran {
    let mut cmd = tagship(subcommand);
    cmd.args(args).arg("--config").arg(config);
    run(&mut cmd)
}

/// A run of the binary in the background (e.g. a deploy waiting for a lock, or one to kill).
/// Killed with SIGKILL if still running when dropped, so a failing test leaves no process behind.
pub struct Background {
    child: Option<Child>,
    started: Instant,
}

impl Background {
    /// Starts `cmd` (from [`tagship`] or [`deploy_command`]).
    pub fn spawn(cmd: &mut Command) -> Self {
        Background {
            child: Some(cmd.spawn().expect("start tagship")),
            started: Instant::now(),
        }
    }

    /// Its process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not finished").id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("not finished");
        child.try_wait().expect("poll tagship").is_none()
    }

    /// Kills it with SIGKILL (no chance to clean up: no lock release, nothing) and collects
    /// what it said until then.
    pub fn kill(mut self) -> Ran {
        let mut child = self.child.take().expect("not finished");
        child.kill().expect("SIGKILL tagship");
        finish(child, self.started)
    }

    /// Waits for its end.
    pub fn finish(mut self) -> Ran {
        finish(self.child.take().expect("not finished"), self.started)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `path` as text (test paths are UTF-8).
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

// ---------------------------------------------------------------------------------------------
// Namespaces

/// A namespace of its own in one cluster, deleted (without waiting) when dropped.
pub struct Namespace {
    /// Its name.
    pub name: String,
    /// The kubeconfig context it is in.
    pub context: String,
}

impl Namespace {
    /// Creates `name` in `context`.
    pub fn create(context: &str, name: &str) -> Self {
        kubectl_ok_in(context, &["create", "namespace", name]);
        Namespace {
            name: name.to_owned(),
            context: context.to_owned(),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if std::env::var_os("TAGSHIP_KUBECONFIG").is_none() {
            return;
        }
        let _ = kubectl_in(
            &self.context,
            &["delete", "namespace", &self.name, "--wait=false"],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sites

/// One `[[stage]]` of a site.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// `name`.
    pub name: String,
    /// `environment`.
    pub environment: String,
    /// `gate = "manual"` when true.
    pub manual: bool,
    /// `clusters`; `None`: the site's clusters ([`SiteBuilder::clusters`]).
    pub clusters: Option<Vec<String>>,
}

impl StageSpec {
    /// A stage that starts on its own.
    pub fn auto(name: &str, environment: &str) -> Self {
        StageSpec {
            name: name.to_owned(),
            environment: environment.to_owned(),
            manual: false,
            clusters: None,
        }
    }

    /// A stage behind a manual gate (`--approve NAME`).
    pub fn manual(name: &str, environment: &str) -> Self {
        StageSpec {
            manual: true,
            ..StageSpec::auto(name, environment)
        }
    }

    /// This stage spans these kubeconfig contexts instead of the site's.
    #[must_use]
    pub fn in_clusters(mut self, clusters: &[&str]) -> Self {
        self.clusters = Some(clusters.iter().map(|c| (*c).to_owned()).collect());
        self
    }
}

/// The default stages: `gstg-cny` and `gstg` (environment `gstg`), then `gprd` (environment
/// `gprd`) behind a manual gate.
pub fn default_stages() -> Vec<StageSpec> {
    vec![
        StageSpec::auto("gstg-cny", "gstg"),
        StageSpec::auto("gstg", "gstg"),
        StageSpec::manual("gprd", "gprd"),
    ]
}

/// An edit of a Deployment manifest, given the kubeconfig context it is for.
type DeploymentEdit = Box<dyn Fn(&str, &mut Value)>;

/// How to create a [`Site`]; from [`Site::builder`].
pub struct SiteBuilder {
    test: String,
    stages: Vec<StageSpec>,
    clusters: Vec<String>,
    live: Option<String>,
    edit: Option<DeploymentEdit>,
}

impl SiteBuilder {
    /// The stages, in deploy order. Default: [`default_stages`].
    #[must_use]
    pub fn stages(mut self, stages: Vec<StageSpec>) -> Self {
        self.stages = stages;
        self
    }

    /// The kubeconfig contexts of every stage without its own. Default `["local-1"]`.
    #[must_use]
    pub fn clusters(mut self, clusters: &[&str]) -> Self {
        self.clusters = clusters.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// The version the Deployments serve when created (image tag `VERSION-gitlab`). Default
    /// [`LIVE`]. `None`: create the namespaces only, no Deployment (e.g. for `tagship lock`).
    #[must_use]
    pub fn live(mut self, version: Option<&str>) -> Self {
        self.live = version.map(str::to_owned);
        self
    }

    /// Edits every Deployment manifest before it is applied, e.g.
    /// `|d| d["spec"]["minReadySeconds"] = json!(5)`. See [`deployment_manifest`] for the base.
    #[must_use]
    pub fn deployment(mut self, edit: impl Fn(&mut Value) + 'static) -> Self {
        self.edit = Some(Box::new(move |_, d| edit(d)));
        self
    }

    /// Edits every Deployment manifest before it is applied, knowing its kubeconfig context
    /// (`local-1`, …): for a cluster that differs from the others.
    #[must_use]
    pub fn deployment_in(mut self, edit: impl Fn(&str, &mut Value) + 'static) -> Self {
        self.edit = Some(Box::new(edit));
        self
    }

    /// Creates the namespaces in every cluster of their stage and, unless `live(None)`, the
    /// Deployments, and waits until every one is rolled out.
    pub fn create(self) -> Site {
        let stages: Vec<StageSpec> = self
            .stages
            .into_iter()
            .map(|mut s| {
                s.clusters.get_or_insert_with(|| self.clusters.clone());
                s
            })
            .collect();
        let mut site = Site {
            prefix: unique(&self.test),
            dir: tempfile::tempdir().expect("temporary directory"),
            stages,
            namespaces: Vec::new(),
        };
        let places: Vec<(String, String)> = site
            .stages
            .iter()
            .flat_map(|s| {
                let ns = site.ns(&s.name);
                site.clusters(&s.name)
                    .iter()
                    .map(move |c| (c.clone(), ns.clone()))
            })
            .collect();
        for (context, ns) in &places {
            site.namespaces.push(Namespace::create(context, ns));
            let path = site.dir.path().join(format!("{context}-{ns}-config.json"));
            std::fs::write(&path, configuration_manifests(ns).to_string())
                .expect("write manifests");
            kubectl_ok_in(context, &["apply", "-f", path_str(&path)]);
        }
        let Some(live) = self.live else {
            return site;
        };
        for (context, ns) in &places {
            let mut manifest = deployment_manifest(ns, &format!("{live}-gitlab"));
            if let Some(edit) = &self.edit {
                edit(context, &mut manifest);
            }
            let path = site.dir.path().join(format!("{context}-{ns}.json"));
            std::fs::write(&path, manifest.to_string()).expect("write manifest");
            kubectl_ok_in(context, &["apply", "-f", path_str(&path)]);
        }
        for stage in site.stage_names() {
            site.wait_rolled_out(&stage);
        }
        site
    }
}

/// The full image reference of `version`: `IMAGE:VERSION-gitlab`.
pub fn image_of(version: &str) -> String {
    format!("{IMAGE}:{version}-gitlab")
}

/// Gives the containers and init containers of the component's image in a Deployment manifest
/// the image `IMAGE:TAG` (e.g. `latest`, a tag that is no version of tagship's).
pub fn set_component_tag(deployment: &mut Value, tag: &str) {
    let spec = &mut deployment["spec"]["template"]["spec"];
    for list in ["initContainers", "containers"] {
        for container in spec[list].as_array_mut().into_iter().flatten() {
            if container["image"]
                .as_str()
                .is_some_and(|i| i.starts_with(&format!("{IMAGE}:")))
            {
                container["image"] = Value::String(format!("{IMAGE}:{tag}"));
            }
        }
    }
}

/// The Secret of the registry's database password (`registry-db`, key `password`).
pub const DB_SECRET: &str = "registry-db";
/// The `ConfigMap` of the registry's configuration (`registry-config`, key `config.yml`).
pub const CONFIG_MAP: &str = "registry-config";
/// Words that make the kubelet stand-in check what the registry needs (tests/README.md): its
/// database password in the environment and its configuration file, which the `configure`
/// init container writes from the `ConfigMap` into the pod's `emptyDir`.
pub const REGISTRY_NEEDS: [&str; 2] = [
    "requires-env=REGISTRY_DATABASE_PASSWORD",
    "requires-file=/etc/docker/registry/config.yml",
];

/// The registry's configuration and database password, as the chart's `ConfigMap` and Secret.
pub fn configuration_manifests(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "List",
        "items": [
            {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": CONFIG_MAP, "namespace": namespace },
                "data": { "config.yml": "version: 0.1\ndatabase:\n  enabled: true\n" }
            },
            {
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": DB_SECRET, "namespace": namespace },
                "stringData": { "password": "s3cret-db-password" }
            }
        ]
    })
}

/// The registry's Deployment as GitLab's Helm chart renders it (trimmed): 2 replicas; an init
/// container `configure` of the registry's image that writes `config.yml` from the
/// `registry-config` `ConfigMap` into an `emptyDir`; the `registry` container at `IMAGE:TAG`,
/// reading that file and its database password from the `registry-db` Secret, with probes and
/// a port; a `sidecar` (busybox) tagship must never touch; progress deadline 10 s.
pub fn deployment_manifest(namespace: &str, tag: &str) -> Value {
    let image = format!("{IMAGE}:{tag}");
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": DEPLOYMENT, "namespace": namespace,
            "labels": {"app": "registry", "app.kubernetes.io/managed-by": "Helm"}
        },
        "spec": {
            "replicas": 2, "progressDeadlineSeconds": 10,
            "selector": {"matchLabels": {"app": "registry"}},
            "template": {
                "metadata": {"labels": {"app": "registry"}},
                "spec": {
                    "volumes": [
                        {"name": "registry-config", "configMap": {"name": CONFIG_MAP}},
                        {"name": "registry-server-config", "emptyDir": {}}
                    ],
                    "initContainers": [{
                        "name": "configure", "image": image,
                        "command": ["sh", "/config/configure", "writes-file=/registry/config.yml"],
                        "volumeMounts": [
                            {"name": "registry-config", "mountPath": "/config"},
                            {"name": "registry-server-config", "mountPath": "/registry"}
                        ]
                    }],
                    "containers": [
                        {
                            "name": "registry", "image": image,
                            "args": ["serve", "/etc/docker/registry/config.yml",
                                REGISTRY_NEEDS[0], REGISTRY_NEEDS[1]],
                            "env": [{"name": "REGISTRY_DATABASE_PASSWORD", "valueFrom":
                                {"secretKeyRef": {"name": DB_SECRET, "key": "password"}}}],
                            "volumeMounts": [{"name": "registry-server-config",
                                "mountPath": "/etc/docker/registry", "readOnly": true}],
                            "ports": [{"containerPort": 5000, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/debug/health", "port": 5001}}
                        },
                        {"name": "sidecar", "image": "busybox:1.36"}
                    ]
                }
            }
        }
    })
}

/// Stage namespaces of one test, with the registry's Deployment, deleted when dropped.
pub struct Site {
    prefix: String,
    dir: tempfile::TempDir,
    stages: Vec<StageSpec>,
    namespaces: Vec<Namespace>,
}

impl Site {
    /// The default site: [`default_stages`] in `local-1`, serving [`LIVE`].
    /// `test` is a short lowercase prefix naming the test (e.g. `e2ea`).
    pub fn new(test: &str) -> Self {
        Site::builder(test).create()
    }

    /// A site to configure before [`SiteBuilder::create`].
    pub fn builder(test: &str) -> SiteBuilder {
        SiteBuilder {
            test: test.to_owned(),
            stages: default_stages(),
            clusters: vec!["local-1".to_owned()],
            live: Some(LIVE.to_owned()),
            edit: None,
        }
    }

    /// A directory of the test's own, deleted with the site.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The stage names in order.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.name.clone()).collect()
    }

    fn spec(&self, stage: &str) -> &StageSpec {
        self.stages
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("the site has no stage `{stage}`"))
    }

    /// The namespace of `stage`: `PREFIX-STAGE` (so `gstg-cny` ends in `-cny`, which the
    /// simulator reads as environment `…-gstg`, stage `cny`).
    pub fn ns(&self, stage: &str) -> String {
        format!("{}-{stage}", self.prefix)
    }

    /// The kubeconfig contexts of `stage`.
    pub fn clusters(&self, stage: &str) -> &[String] {
        self.spec(stage).clusters.as_deref().unwrap_or_default()
    }

    /// The first cluster (context) of `stage`: `local-1` unless it lists its own.
    pub fn first_cluster(&self, stage: &str) -> &str {
        self.clusters(stage)
            .first()
            .map_or("local-1", String::as_str)
    }

    /// `[lock].namespace`: the first stage's namespace (in its first cluster).
    pub fn lock_namespace(&self) -> String {
        self.ns(&self.stages[0].name)
    }

    /// The kubeconfig context where the lock lives: the first stage's first cluster.
    pub fn lock_cluster(&self) -> String {
        self.first_cluster(&self.stages[0].name).to_owned()
    }

    /// A `tagship.toml` for this site, to adjust and [`ConfigBuilder::write`].
    pub fn config(&self) -> ConfigBuilder<'_> {
        ConfigBuilder {
            site: self,
            lock_ttl: "30s".to_owned(),
            lock_wait: "5s".to_owned(),
            rollout_timeout: "60s".to_owned(),
            kubeconfig: None,
            health: true,
            top: Vec::new(),
            notify: Vec::new(),
            stage_extra: BTreeMap::new(),
            containers: None,
            component: Vec::new(),
            in_cluster: false,
        }
    }

    /// The `registry` container's image of `stage`'s Deployment in its first cluster.
    pub fn image(&self, stage: &str) -> String {
        self.image_in(self.first_cluster(stage), stage)
    }

    /// The `registry` container's image of `stage`'s Deployment in `cluster`.
    pub fn image_in(&self, cluster: &str, stage: &str) -> String {
        self.get_in(
            cluster,
            stage,
            "jsonpath={.spec.template.spec.containers[?(@.name==\"registry\")].image}",
        )
    }

    /// The Deployment's `metadata.resourceVersion` in `stage`'s first cluster.
    pub fn resource_version(&self, stage: &str) -> String {
        self.resource_version_in(self.first_cluster(stage), stage)
    }

    /// The Deployment's `metadata.resourceVersion` in `cluster`.
    pub fn resource_version_in(&self, cluster: &str, stage: &str) -> String {
        self.get_in(cluster, stage, "jsonpath={.metadata.resourceVersion}")
    }

    /// `kubectl get deployment … -o OUTPUT` for `stage` in `cluster`.
    pub fn get_in(&self, cluster: &str, stage: &str, output: &str) -> String {
        kubectl_ok_in(
            cluster,
            &[
                "get",
                "deployment",
                DEPLOYMENT,
                "-n",
                &self.ns(stage),
                "-o",
                output,
            ],
        )
    }

    /// The Deployment of `stage` in `cluster`, as JSON.
    pub fn deployment_in(&self, cluster: &str, stage: &str) -> Value {
        serde_json::from_str(&self.get_in(cluster, stage, "json")).expect("deployment json")
    }

    /// The Deployment's annotations in `stage`'s first cluster.
    pub fn annotations(&self, stage: &str) -> BTreeMap<String, String> {
        let d = self.deployment_in(self.first_cluster(stage), stage);
        serde_json::from_value(d["metadata"]["annotations"].clone()).unwrap_or_default()
    }

    /// Whether `stage`'s rollout in `cluster` is complete by kubectl's rule
    /// (`kubectl rollout status --watch=false`), with kubectl's words.
    pub fn rollout_in(&self, cluster: &str, stage: &str) -> (bool, String) {
        let out = kubectl_ok_in(
            cluster,
            &[
                "rollout",
                "status",
                &format!("deployment/{DEPLOYMENT}"),
                "-n",
                &self.ns(stage),
                "--watch=false",
            ],
        );
        (out.contains("successfully rolled out"), out)
    }

    /// Waits (up to 60 s) until `stage` is rolled out in every cluster of it.
    pub fn wait_rolled_out(&self, stage: &str) {
        for cluster in self.clusters(stage) {
            kubectl_ok_in(
                cluster,
                &[
                    "rollout",
                    "status",
                    &format!("deployment/{DEPLOYMENT}"),
                    "-n",
                    &self.ns(stage),
                    "--timeout=60s",
                ],
            );
        }
    }

    /// The history tagship recorded for `stage` (`ConfigMap` `tagship-history-STAGE` in the
    /// stage's namespace, first cluster), oldest first; empty when there is none.
    pub fn history(&self, stage: &str) -> Vec<Value> {
        let out = kubectl_in(
            self.first_cluster(stage),
            &[
                "get",
                "configmap",
                &format!("tagship-history-{stage}"),
                "-n",
                &self.ns(stage),
                "-o",
                "jsonpath={.data.history\\.json}",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || text.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str::<Value>(&text).expect("history is JSON") {
            Value::Array(entries) => entries,
            other => vec![other],
        }
    }

    /// Who holds `environment`'s Lease: the `WHO` of its `WHO#RUN` holder identity (a run's
    /// identity is the holder and which run it is); empty when free.
    pub fn lease_holder_who(&self, environment: &str) -> String {
        let id = self.lease_holder(environment);
        id.rsplit_once('#')
            .map_or(id.clone(), |(who, _)| who.to_owned())
    }

    /// The `spec.holderIdentity` of `environment`'s Lease (`tagship-ENV`); empty when free or
    /// when there is no Lease yet.
    pub fn lease_holder(&self, environment: &str) -> String {
        let out = kubectl_in(
            &self.lock_cluster(),
            &[
                "get",
                "lease",
                &format!("tagship-{environment}"),
                "-n",
                &self.lock_namespace(),
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// A `tagship.toml` for a [`Site`]; from [`Site::config`].
///
/// Defaults: `kubeconfig` = `$TAGSHIP_KUBECONFIG` (see [`ConfigBuilder::kubeconfig`]); component `registry`, image [`IMAGE`], tag
/// `{{version}}-gitlab`; `[lock]` in [`Site::lock_namespace`], ttl `30s`, wait `5s`; plugin
/// `health` (`builtin:prometheus-health` against `$TAGSHIP_PROMETHEUS_URL`, pass `== 1`) with, per
/// stage, the query `min(gitlab_deployment_health:service{namespace="NS"})`; every stage with
/// its clusters, namespace, workload `gitlab-registry` (its containers of the component's image by default: `configure`
/// and `registry`), gate and
/// `rollout_timeout = "60s"`. No bake, no pre-checks, no migrations, no notifiers.
pub struct ConfigBuilder<'a> {
    site: &'a Site,
    lock_ttl: String,
    lock_wait: String,
    rollout_timeout: String,
    kubeconfig: Option<PathBuf>,
    health: bool,
    top: Vec<String>,
    notify: Vec<String>,
    stage_extra: BTreeMap<String, Vec<String>>,
    containers: Option<Vec<String>>,
    component: Vec<String>,
    in_cluster: bool,
}

impl ConfigBuilder<'_> {
    /// Extra keys of `[component]`, e.g. `pin = "digest"`.
    #[must_use]
    pub fn component(mut self, keys: &str) -> Self {
        self.component.push(keys.to_owned());
        self
    }

    /// No `kubeconfig` and no `clusters`: the credentials are whatever tagship finds (a pod's
    /// service account, for the in-cluster test).
    #[must_use]
    pub fn in_cluster(mut self) -> Self {
        self.in_cluster = true;
        self
    }

    /// `containers` of every workload (default: none named, so the component's containers).
    #[must_use]
    pub fn containers(mut self, names: &[&str]) -> Self {
        self.containers = Some(names.iter().map(|n| (*n).to_owned()).collect());
        self
    }

    /// `[lock].ttl` (at least `15s`).
    #[must_use]
    pub fn lock_ttl(mut self, ttl: &str) -> Self {
        ttl.clone_into(&mut self.lock_ttl);
        self
    }

    /// `[lock].wait`: how long a deploy waits for someone else's lock.
    #[must_use]
    pub fn lock_wait(mut self, wait: &str) -> Self {
        wait.clone_into(&mut self.lock_wait);
        self
    }

    /// `rollout_timeout` of every stage.
    #[must_use]
    pub fn rollout_timeout(mut self, timeout: &str) -> Self {
        timeout.clone_into(&mut self.rollout_timeout);
        self
    }

    /// `kubeconfig`: this file instead of `$TAGSHIP_KUBECONFIG` (e.g. one whose server is a
    /// fault-injecting proxy). Its contexts must have the site's cluster names.
    #[must_use]
    pub fn kubeconfig(mut self, path: &Path) -> Self {
        self.kubeconfig = Some(path.to_owned());
        self
    }

    /// Leaves out the `health` plugin and its per-stage query.
    #[must_use]
    pub fn without_health(mut self) -> Self {
        self.health = false;
        self
    }

    /// Top-level TOML appended after `[plugins.health]`: whole tables such as
    /// `[migrations.post]` or `[plugins.NAME]`.
    #[must_use]
    pub fn toml(mut self, text: &str) -> Self {
        self.top.push(text.to_owned());
        self
    }

    /// `[migrations.pre]` with this `command` (the stand-in fails the Job when the image tag,
    /// command or arguments contain `fail`).
    #[must_use]
    pub fn pre_migration(self, command: &[&str]) -> Self {
        let text = format!("[migrations.pre]\ncommand = {}\n", toml_list(command));
        self.toml(&text)
    }

    /// `[migrations.post]` with this `command`, after the default stages (the last of each
    /// environment) or after `after_stage`.
    #[must_use]
    pub fn post_migration(self, command: &[&str], after_stage: Option<&str>) -> Self {
        let mut text = format!("[migrations.post]\ncommand = {}\n", toml_list(command));
        if let Some(stage) = after_stage {
            let _ = writeln!(text, "after_stage = \"{stage}\"");
        }
        self.toml(&text)
    }

    /// Plugin `name` = `builtin:webhook-notify` that POSTs each event to `url` (a loopback test
    /// server; its `host:port` is granted), notified by every stage.
    #[must_use]
    pub fn webhook(mut self, name: &str, url: &str) -> Self {
        let authority = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        self.notify.push(name.to_owned());
        self.toml(&format!(
            "[plugins.{name}]\nsource = \"builtin:webhook-notify\"\nallow_hosts = [\"{authority}\"]\nconfig = {{ url = \"{url}\" }}\n"
        ))
    }

    /// Adds notifier `name` (defined with [`ConfigBuilder::toml`]) to every stage's `notify`.
    #[must_use]
    pub fn notify(mut self, name: &str) -> Self {
        self.notify.push(name.to_owned());
        self
    }

    /// Extra TOML inside `stage`'s `[[stage]]`: keys first, then its sub-tables, e.g.
    /// `pre_checks = ["health"]` or `[stage.bake]\nchecks = ["health"]\nduration = "40s"`.
    /// Do not repeat a key the builder writes (see the type's docs).
    #[must_use]
    pub fn stage(mut self, stage: &str, text: &str) -> Self {
        self.site.spec(stage);
        self.stage_extra
            .entry(stage.to_owned())
            .or_default()
            .push(text.to_owned());
        self
    }

    /// `[stage.bake]` of `stage` with these keys, e.g. `checks = ["health"]\nduration = "40s"`.
    #[must_use]
    pub fn bake(self, stage: &str, keys: &str) -> Self {
        self.stage(stage, &format!("[stage.bake]\n{keys}\n"))
    }

    /// The configuration's text.
    pub fn text(&self) -> String {
        let site = self.site;
        let mut text = String::new();
        if !self.in_cluster {
            let _ = writeln!(
                text,
                "kubeconfig = \"{}\"\n",
                self.kubeconfig
                    .as_ref()
                    .map_or_else(|| env("TAGSHIP_KUBECONFIG"), |p| path_str(p).to_owned())
            );
        }
        let _ = write!(
            text,
            r#"[component]
name = "registry"
image = "{IMAGE}"
tag = "{{{{version}}}}-gitlab"
{component}

[lock]
namespace = "{lock_ns}"
ttl = "{ttl}"
wait = "{wait}"
"#,
            component = self.component.join("\n"),
            lock_ns = site.lock_namespace(),
            ttl = self.lock_ttl,
            wait = self.lock_wait,
        );
        if self.health {
            let prometheus = env("TAGSHIP_PROMETHEUS_URL");
            let grant = prometheus.trim_start_matches("http://");
            let _ = write!(
                text,
                "\n[plugins.health]\nsource = \"builtin:prometheus-health\"\nallow_hosts = [\"{grant}\"]\nconfig = {{ url = \"{prometheus}\", pass = \"== 1\" }}\n"
            );
        }
        for top in &self.top {
            text.push('\n');
            text.push_str(top);
        }
        for stage in &site.stages {
            let ns = site.ns(&stage.name);
            let clusters: Vec<&str> = site
                .clusters(&stage.name)
                .iter()
                .map(String::as_str)
                .collect();
            let _ = write!(
                text,
                r#"
[[stage]]
name = "{name}"
environment = "{environment}"
{clusters}namespace = "{ns}"
workloads = [{{ deployment = "{DEPLOYMENT}"{containers} }}]
rollout_timeout = "{timeout}"
"#,
                name = stage.name,
                environment = stage.environment,
                clusters = if self.in_cluster {
                    String::new()
                } else {
                    format!("clusters = {}\n", toml_list(&clusters))
                },
                timeout = self.rollout_timeout,
                containers = self
                    .containers
                    .as_ref()
                    .map(|c| {
                        let names: Vec<&str> = c.iter().map(String::as_str).collect();
                        format!(", containers = {}", toml_list(&names))
                    })
                    .unwrap_or_default(),
            );
            if stage.manual {
                text.push_str("gate = \"manual\"\n");
            }
            if !self.notify.is_empty() {
                let names: Vec<&str> = self.notify.iter().map(String::as_str).collect();
                let _ = writeln!(text, "notify = {}", toml_list(&names));
            }
            for extra in self.stage_extra.get(&stage.name).into_iter().flatten() {
                text.push_str(extra);
                text.push('\n');
            }
            if self.health {
                let _ = writeln!(
                    text,
                    "[stage.plugin_config.health]\nquery = 'min(gitlab_deployment_health:service{{namespace=\"{ns}\"}})'"
                );
            }
        }
        text
    }

    /// Writes the configuration to `tagship.toml` in the site's directory.
    pub fn write(self) -> PathBuf {
        self.write_as("tagship.toml")
    }

    /// Writes the configuration to `file_name` in the site's directory (several per test).
    pub fn write_as(self, file_name: &str) -> PathBuf {
        let path = self.site.dir().join(file_name);
        std::fs::write(&path, self.text()).expect("write tagship.toml");
        path
    }
}

/// `["a", "b"]`, TOML-quoted.
pub fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| serde_json::Value::String((*i).to_owned()).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// An instant query against `$TAGSHIP_PROMETHEUS_URL`: the values of the result vector, as
/// numbers (empty when the query matches nothing). Panics when Prometheus answers an error.
pub fn prometheus_values(query: &str) -> Vec<f64> {
    let base = env("TAGSHIP_PROMETHEUS_URL");
    let url = url::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)])
        .expect("query url");
    let body = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            reqwest::Client::new()
                .get(url.as_str())
                .timeout(Duration::from_secs(10))
                .send()
                .await?
                .text()
                .await
        })
        .unwrap_or_else(|e| panic!("query Prometheus at {base}: {e}"));
    let json: Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    assert_eq!(json["status"], "success", "{query}: {json}");
    json["data"]["result"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` every 500 ms until it is true or `timeout` passed; whether it became true.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
