//! What the benchmark deploys to: its namespaces with their Deployments ([`Place`]), their
//! `tagship.toml` in each [`Layout`], and the loopback [`Sink`] its plugins talk to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::IMAGE;
use crate::fixtures::kubectl::{Kubectl, stdout_if_success};
use crate::fixtures::manifests::{DEPLOYMENT, bench_deployment};
use crate::harness::{Environment, TestNamespace, unique_word};

/// A loopback HTTP server standing in for what the plugins talk to: every request gets a `200`
/// (`/min`: `v0.1.0`, the minimum registry version for `rails-compat`; anything else:
/// `{"status":"ok"}`, a healthy `/healthz`, an accepted webhook, Slack post or GitLab note), and
/// is counted.
pub(super) struct Sink {
    pub(super) address: String,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // `rails-compat`'s minimum registry version, below every version deployed here.
                let body = if uri.path() == "/min" {
                    "v0.1.0"
                } else {
                    r#"{"status":"ok"}"#
                };
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            requests,
            task,
        })
    }

    pub(super) fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One namespace of the benchmark with `count` Deployments, live at `v1.0.0`, in one or more
/// clusters of the environment.
pub(super) struct Place {
    pub(super) ns: TestNamespace,
    pub(super) names: Vec<String>,
    pub(super) dir: PathBuf,
    /// The clusters (kubeconfig contexts) it is in; the first is the environment's first.
    pub(super) contexts: Vec<String>,
    pub(super) kubeconfig: PathBuf,
}

/// How a place's `tagship.toml` lays its Deployments out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// One stage with every Deployment, no checks, no bake.
    OneStage,
    /// One stage per Deployment (in one environment), no checks, no bake.
    StagePerDeployment,
    /// One stage, six plugins: two health checks and a compat check as pre-checks, the health
    /// checks in a bake, three notifiers.
    SixPlugins,
    /// One stage baked by one health check (a component file) that GETs Prometheus's
    /// `/-/healthy`.
    CheckBake,
}

impl Place {
    /// Creates `bench-WORD-SUFFIX` with `count` Deployments in the first `clusters` clusters,
    /// created by `kubectl apply`, with `--server-side` when `server_side`; waits for their
    /// rollouts.
    pub(super) async fn create(
        env: &Environment,
        suffix: &str,
        count: usize,
        server_side: bool,
        clusters: usize,
    ) -> anyhow::Result<Self> {
        if env.contexts.len() < clusters {
            bail!(
                "this part needs {clusters} clusters and the environment has {}\nhint: tests/cluster/down, then tests/cluster/up --clusters {clusters}",
                env.contexts.len()
            );
        }
        let ns = env
            .namespace_named(&format!("bench-{}-{suffix}", unique_word()))
            .await?;
        let dir = std::env::temp_dir().join(&ns.name);
        std::fs::create_dir_all(&dir)?;
        let names: Vec<String> = if count == 1 {
            vec![DEPLOYMENT.to_owned()]
        } else {
            (0..count).map(|i| format!("registry-{i}")).collect()
        };
        let place = Self {
            ns,
            names,
            dir,
            contexts: env.contexts[..clusters].to_vec(),
            kubeconfig: env.kubeconfig.clone(),
        };
        for context in &place.contexts[1..] {
            kubectl_ok(
                env,
                &["--context", context, "create", "namespace", &place.ns.name],
            )?;
        }
        let manifest = place.write_manifest("v1.0.0-gitlab")?;
        for context in &place.contexts {
            let mut args = vec!["--context", context, "apply", "-f", path_str(&manifest)?];
            if server_side {
                args.push("--server-side");
            }
            kubectl_ok(env, &args)?;
        }
        for context in &place.contexts {
            for name in &place.names {
                kubectl_ok(
                    env,
                    &[
                        "--context",
                        context,
                        "rollout",
                        "status",
                        &format!("deployment/{name}"),
                        "-n",
                        &place.ns.name,
                        "--timeout=120s",
                    ],
                )?;
            }
        }
        Ok(place)
    }

    pub(super) fn write_manifest(&self, tag: &str) -> anyhow::Result<PathBuf> {
        let items: Vec<Value> = self
            .names
            .iter()
            .map(|n| bench_deployment(n, &self.ns.name, tag))
            .collect();
        let path = self.dir.join(format!("deployments-{tag}.json"));
        std::fs::write(
            &path,
            json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
        )?;
        Ok(path)
    }

    /// A one-stage `tagship.toml` for these Deployments: no checks, no bake, no migrations.
    pub(super) fn write_config(&self, env: &Environment) -> anyhow::Result<PathBuf> {
        self.write_config_as(env, Layout::OneStage, None)
    }

    /// This place's `tagship.toml` in `layout`. `with`: for [`Layout::SixPlugins`], the
    /// loopback sink (host:port) its plugins talk to; for [`Layout::CheckBake`], the check's
    /// component file.
    pub(super) fn write_config_as(
        &self,
        env: &Environment,
        layout: Layout,
        with: Option<&str>,
    ) -> anyhow::Result<PathBuf> {
        let workload = |n: &str| format!("{{ deployment = \"{n}\", containers = [\"registry\"] }}");
        let clusters = self
            .contexts
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let stage = |name: &str, workloads: &str, extra: &str| {
            format!(
                r#"
[[stage]]
name = "{name}"
environment = "bench"
clusters = [{clusters}]
namespace = "{ns}"
workloads = [{workloads}]
rollout_timeout = "120s"
{extra}"#,
                ns = self.ns.name,
            )
        };
        let mut text = format!(
            r#"kubeconfig = "{kubeconfig}"

[component]
name = "registry"
image = "{IMAGE}"
tag = "{{{{version}}}}-gitlab"

[lock]
namespace = "{ns}"
ttl = "30s"
wait = "30s"
"#,
            kubeconfig = path_str(&env.kubeconfig)?,
            ns = self.ns.name,
        );
        match layout {
            Layout::OneStage => {
                let all: Vec<String> = self.names.iter().map(|n| workload(n)).collect();
                text.push_str(&stage("bench", &all.join(", "), ""));
            }
            Layout::StagePerDeployment => {
                for (i, name) in self.names.iter().enumerate() {
                    text.push_str(&stage(&format!("bench-{i}"), &workload(name), ""));
                }
            }
            Layout::CheckBake => {
                let plugin = with.context("the check-bake layout needs the check's file")?;
                text.push_str(&check_bake_plugin(env, plugin));
                text.push_str(&stage(
                    "bench",
                    &workload(&self.names[0]),
                    "[stage.bake]\nchecks = [\"check\"]\nduration = \"3s\"\ninterval = \"1s\"\ninitial_delay = \"0s\"\n",
                ));
            }
            Layout::SixPlugins => {
                let sink = with.context("the six-plugin layout needs the sink's address")?;
                text.push_str(&six_plugins(env, sink));
                text.push_str(&stage(
                    "bench",
                    &workload(&self.names[0]),
                    r#"pre_checks = ["prometheus", "http", "compat"]
notify = ["webhook", "slack", "gitlab"]
[stage.bake]
checks = ["prometheus", "http"]
duration = "3s"
interval = "1s"
initial_delay = "0s"
"#,
                ));
            }
        }
        let path = self.dir.join("tagship.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // The first cluster's namespace goes with `ns`.
        for context in &self.contexts[1..] {
            Kubectl::new(&self.kubeconfig)
                .context(context)
                .delete_namespace_in_background(&self.ns.name);
        }
    }
}

/// The six plugins of [`Layout::SixPlugins`]: Prometheus's health and five that talk to `sink`.
fn six_plugins(env: &Environment, sink: &str) -> String {
    format!(
        r#"
[plugins.prometheus]
source = "builtin:prometheus-health"
allow_hosts = ["{prometheus}"]
config = {{ url = "{prom_url}", query = "vector(1)", pass = "== 1" }}

[plugins.http]
source = "builtin:http-health"
allow_hosts = ["{sink}"]
config = {{ url = "http://{sink}/healthz" }}

[plugins.compat]
source = "builtin:rails-compat"
allow_hosts = ["{sink}"]
config = {{ min_version_url = "http://{sink}/min" }}

[plugins.webhook]
source = "builtin:webhook-notify"
allow_hosts = ["{sink}"]
config = {{ url = "http://{sink}/webhook" }}

[plugins.slack]
source = "builtin:slack-notify"
allow_hosts = ["{sink}"]
secrets = ["SLACK_WEBHOOK_URL"]

[plugins.gitlab]
source = "builtin:gitlab-notify"
allow_hosts = ["{sink}"]
secrets = ["GITLAB_TOKEN"]
config = {{ api_url = "http://{sink}/api/v4", project = "1", issue_iid = "1" }}
"#,
        prometheus = env.prometheus_url.trim_start_matches("http://"),
        prom_url = env.prometheus_url,
    )
}

/// `[plugins.check]`: the health check in `plugin` (a component file), granted Prometheus,
/// `GET`ting its `/-/healthy`.
fn check_bake_plugin(env: &Environment, plugin: &str) -> String {
    format!(
        "\n[plugins.check]\nsource = \"{plugin}\"\nallow_hosts = [\"{grant}\"]\nconfig = {{ url = \"{url}/-/healthy\" }}\n",
        grant = env.prometheus_url.trim_start_matches("http://"),
        url = env.prometheus_url,
    )
}

/// `path` as text, or an error naming it.
pub(crate) fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("not UTF-8: {}", path.display()))
}

/// [`Environment::kubectl`] that must succeed; its stdout.
pub(super) fn kubectl_ok(env: &Environment, args: &[&str]) -> anyhow::Result<String> {
    match stdout_if_success(&env.kubectl(args)?) {
        Ok(stdout) => Ok(stdout),
        Err(stderr) => bail!("kubectl {}: {stderr}", args.join(" ")),
    }
}
